/**
 * The whole `ebmesh bench` machinery with tiny loads: the loopback scenario
 * (nginx on 127.0.0.1, loadgen, wrk when installed), then the mesh
 * scenarios footprint and sidecars in quick mode (their own instances,
 * namespaces, HAProxy sidecars). Checks that the report is there and well
 * formed (Markdown tables, SVG, report.json against its schema), never the
 * figures.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { runBench, loopbackScenario, type BenchReport } from '../../bench/index.js';
import { findNginx } from '../../bench/nginx.js';
import { checkMarkdownTables, checkWellFormedXml } from '../../bench/wellformed.js';
import { checkReportJson } from '../../bench/report-schema.js';
import { scenarios } from '../../bench/scenarios/index.js';
import { benchInstanceName, findBenchInstances } from '../../bench/lab-instances.js';
import { requireTools } from '../helpers/tools.js';

test('runBench --quick on loopback writes a well-formed report', { timeout: 120_000 }, async () => {
  requireTools('wrk');
  assert.ok(findNginx(), 'nginx is not installed: run sudo bash scripts/setup.sh');
  const out = await mkdtemp(path.join(os.tmpdir(), 'ebmesh-bench-test-'));
  const lines: string[] = [];
  try {
    const scenario = loopbackScenario({}, { rate: 200, connections: 2, durationS: 0.3, warmupS: 0.1 });
    const res = await runBench([scenario], { quick: true, outDir: out, json: false, repeats: 2, progress: (l) => lines.push(l) });
    assert.equal(res.ok, true, lines.join('\n'));
    assert.ok(lines.some((l) => l.includes('loopback')), 'progress mentions the scenario');

    const files = (await readdir(res.dir)).sort();
    assert.deepEqual(files, ['loopback-latency.svg', 'loopback-throughput.svg', 'report.json', 'report.md']);
    for (const f of files.filter((x) => x.endsWith('.svg'))) {
      assert.equal(checkWellFormedXml(await readFile(path.join(res.dir, f), 'utf8')), null, f);
    }
    const md = await readFile(path.join(res.dir, 'report.md'), 'utf8');
    assert.equal(checkMarkdownTables(md), null);
    assert.match(md, /^# ebmesh bench/);
    assert.match(md, /ebmesh-loadgen --url http:\/\/127\.0\.0\.1:\d+\/ --rate 200/, 'exact loadgen command is in the report');

    const json = JSON.parse(await readFile(path.join(res.dir, 'report.json'), 'utf8')) as BenchReport;
    assert.equal(checkReportJson(json), null);
    assert.equal(json.options.quick, true);
    const s = json.scenarios[0]!;
    assert.equal(s.status, 'ok');
    assert.equal(s.result?.baseline, 'open loop 200/s');
    assert.ok(s.summaries.length >= 3);
    assert.ok(s.summaries.some((c) => c.name === 'closed loop (wrk)'), 'the reference client ran');
    for (const c of s.summaries) assert.equal(c.runs, 2);
    // nginx was stopped and its temp prefix removed.
    const prefix = /-p (\S+)/.exec(s.result!.setup[0]!)?.[1];
    assert.ok(prefix && !existsSync(prefix), `nginx prefix ${prefix} was removed`);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

test('bench --quick footprint sidecars writes a well-formed report', { timeout: 600_000 }, async () => {
  requireTools('haproxy', 'bpftool');
  assert.ok(findNginx(), 'nginx is not installed: run sudo bash scripts/setup.sh');
  const out = await mkdtemp(path.join(os.tmpdir(), 'ebmesh-bench-test-'));
  const lines: string[] = [];
  try {
    const chosen = scenarios.filter((s) => s.name === 'footprint' || s.name === 'sidecars');
    assert.equal(chosen.length, 2, 'both scenarios are in the index');
    const res = await runBench(chosen, { quick: true, outDir: out, json: false, repeats: 2, progress: (l) => lines.push(l) });
    assert.equal(res.ok, true, lines.join('\n'));

    const files = (await readdir(res.dir)).sort();
    assert.deepEqual(files, [
      'footprint-latency.svg', 'footprint-memory.svg', 'footprint-throughput.svg', 'report.json', 'report.md',
      'sidecars-latency.svg', 'sidecars-throughput.svg',
    ]);
    for (const f of files.filter((x) => x.endsWith('.svg'))) {
      assert.equal(checkWellFormedXml(await readFile(path.join(res.dir, f), 'utf8')), null, f);
    }
    const md = await readFile(path.join(res.dir, 'report.md'), 'utf8');
    assert.equal(checkMarkdownTables(md), null);
    assert.match(md, /^## footprint$/m);
    assert.match(md, /^## sidecars$/m);
    assert.match(md, /^Footprint per node and per workload/m, 'the footprint table is rendered');
    assert.match(md, /ebmesh-loadgen --url http:\/\/[\d.]+:80\/ --rate \d+/, 'exact loadgen commands are in the report');

    const json = JSON.parse(await readFile(path.join(res.dir, 'report.json'), 'utf8')) as BenchReport;
    assert.equal(checkReportJson(json), null);
    const fp = json.scenarios.find((s) => s.name === 'footprint')!;
    const gs = json.scenarios.find((s) => s.name === 'sidecars')!;
    for (const s of [fp, gs]) assert.equal(s.status, 'ok', s.error?.message);
    // Every model at every state was measured, twice, and the table has one row for each.
    const names = fp.summaries.map((c) => c.name).sort();
    assert.deepEqual(names, ['ebmesh + node proxy', 'ebmesh', 'sidecars'].flatMap((m) => ['idle', 'load'].map((st) => `${m}, 3 workloads, ${st}`)).sort());
    for (const c of fp.summaries) assert.equal(c.runs, 2, c.name);
    assert.equal(fp.result!.tables![0]!.rows.length, 6);
    // What each model counts: the sidecars, or the daemon (and the node proxy when it carries the traffic).
    const labels = (name: string) => Object.keys(fp.summaries.find((c) => c.name === name)!.footprints).sort();
    assert.deepEqual(labels('sidecars, 3 workloads, load'), ['sidecars']);
    assert.deepEqual(labels('ebmesh, 3 workloads, load'), ['daemon']);
    assert.deepEqual(labels('ebmesh + node proxy, 3 workloads, load'), ['daemon', 'node proxy']);
    assert.deepEqual(gs.summaries.map((c) => c.name),
      ['no mesh', 'sidecars', 'ebmesh L4', 'ebmesh + HTTP visibility', 'ebmesh node proxy', 'ebmesh + HTTP visibility + shortcut', 'ebmesh node proxy + shortcut']);
    for (const c of gs.summaries) {
      assert.equal(c.runs, 2, c.name);
      assert.equal(c.baseline, 'no mesh');
    }
    // Each scenario ran in a lab of this run's own (another run's labs are not ours to judge), and removed it:
    // nothing named after it is left where `ebmesh down` looks (state, netns, cgroups, pins).
    for (const tag of ['fp', 'gs']) {
      assert.match(md, new RegExp(`ebmesh --instance ${benchInstanceName(tag)} up`));
      assert.deepEqual(findBenchInstances(tag).filter((b) => b.pid === process.pid), [], `leftovers of ${tag}`);
    }
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
