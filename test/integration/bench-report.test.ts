/**
 * The whole `ebmesh bench` machinery on the loopback scenario with a tiny
 * load: nginx on 127.0.0.1, loadgen, wrk when installed, report on disk.
 * Checks that the report is there and well formed, never the figures.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { runBench, loopbackScenario, type BenchReport } from '../../src/bench/index.js';
import { findNginx } from '../../src/bench/nginx.js';
import { checkMarkdownTables, checkWellFormedXml } from '../../src/bench/wellformed.js';

test('runBench --quick on loopback writes a well-formed report', { skip: findNginx() ? false : 'nginx is not installed (apt-get install -y nginx-light)', timeout: 120_000 }, async () => {
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
    assert.equal(json.options.quick, true);
    const s = json.scenarios[0]!;
    assert.equal(s.status, 'ok');
    assert.equal(s.result?.baseline, 'open loop 200/s');
    assert.ok(s.summaries.length >= 3);
    for (const c of s.summaries) assert.equal(c.runs, 2);
    // nginx was stopped and its temp prefix removed.
    const prefix = /-p (\S+)/.exec(s.result!.setup[0]!)?.[1];
    assert.ok(prefix && !existsSync(prefix), `nginx prefix ${prefix} was removed`);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
