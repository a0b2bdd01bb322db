import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { analyzeScenario, pairedComparison } from './analysis.js';
import { describeMachine } from './machine.js';
import { writeReport, type BenchReport } from './report.js';
import type { RunResult, ScenarioResult } from './scenario.js';
import { latencyPercentilePlot, barPlot } from './svg.js';
import { checkMarkdownTables, checkWellFormedXml } from './wellformed.js';
import { checkReportJson } from './report-schema.js';
import { isEbmeshError } from '../src/errors.js';

function run(rate: number, p50: number, p99: number): RunResult {
  return {
    tool: 'ebmesh-loadgen',
    command: ['ebmesh-loadgen', '--url', 'http://127.0.0.1:1/', '--rate', '100'],
    rate,
    targetRate: 100,
    errors: 0,
    timeouts: 0,
    badStatus: 0,
    latencyUs: { mean: p50, p50, p90: p50 * 1.5, p99, p999: p99 * 2, max: p99 * 3 },
    distribution: [[0, p50 / 2], [50, p50], [90, p50 * 1.5], [99, p99], [99.9, p99 * 2], [100, p99 * 3]],
    belowTarget: false,
    clientCpu: 0.05,
    footprints: { 'server <a&b>': { cpuPercent: 10, cpuSeconds: 1, wallSeconds: 10, maxRssBytes: 1 << 20, maxPssBytes: 1 << 19, maxProcesses: 2, samples: 5 } },
  };
}

const result: ScenarioResult = {
  baseline: 'direct',
  configs: [
    { name: 'direct', description: 'no mesh', runs: [run(100, 50, 200), run(100, 55, 210)] },
    { name: 'mesh | "sockops"', description: 'with <mesh>', runs: [run(99, 70, 400), run(100, 72, 380)] },
  ],
  setup: ['server: nginx'],
  notes: ['a note with | pipe'],
  tables: [{ title: 'per <workload>', header: ['model', 'MiB'], rows: [['mesh | a', '1.0'], ['sidecars', '2.0']] }],
  bars: [{ name: 'memory & more', title: 'memory', unit: 'MiB', bars: [{ name: 'mesh', value: 1, low: 0.9, high: 1.1 }, { name: 'sidecars <x>', value: 2 }] }],
};

test('analysis computes ratios against the baseline', () => {
  const s = analyzeScenario('t', result);
  assert.equal(s[0]!.ratios.latency.p50?.value, 1);
  assert.ok(Math.abs(s[1]!.ratios.latency.p50!.value - 71 / 52.5) < 1e-9);
  assert.equal(s[1]!.ratios.latency.p50!.withinNoise, false);
  assert.equal(s[1]!.distribution?.length, 6);
});

test('analysis refuses a table row that does not fit its header', () => {
  const tables = [{ title: 'short', header: ['a', 'b'], rows: [['1', '2'], ['3']] }];
  assert.throws(() => analyzeScenario('t', { ...result, tables }), (e) => isEbmeshError(e, 'EBMESH_BENCH_RESULT_INVALID') && /row 2 of table "short"/.test(e.message));
});

test('a scenario may report tables alone, but not nothing', () => {
  const tables = [{ title: 't', header: ['what', 'ms'], rows: [['p50', '1.0']] }];
  assert.deepEqual(analyzeScenario('t', { baseline: '', configs: [], setup: [], notes: [], tables }), []);
  assert.throws(() => analyzeScenario('t', { baseline: '', configs: [], setup: [], notes: [] }), (e) => isEbmeshError(e, 'EBMESH_BENCH_RESULT_INVALID'));
});

test('analysis refuses a baseline that was not measured', () => {
  assert.throws(() => analyzeScenario('t', { ...result, baseline: 'nope' }), (e) => isEbmeshError(e, 'EBMESH_BENCH_RESULT_INVALID'));
});

test('plots are well-formed SVG, also with awkward names and empty data', () => {
  const svgs = [
    latencyPercentilePlot('a <b> & c', [{ name: 'x & "y"', points: [[0, 10], [50, 20], [99.99, 5000], [100, 9000]] }]),
    latencyPercentilePlot('empty', []),
    barPlot('bars', 'req/s', [{ name: '<one>', value: 10, low: 9, high: 11, label: '×1.00' }, { name: 'two', value: 0 }]),
  ];
  for (const s of svgs) assert.equal(checkWellFormedXml(s), null, s);
  assert.notEqual(checkWellFormedXml('<svg><g></svg>'), null);
  assert.notEqual(checkWellFormedXml('<svg>a & b</svg>'), null);
});

test('writeReport writes Markdown, SVG and JSON that hold together', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ebmesh-report-test-'));
  try {
    const report: BenchReport = {
      tool: 'ebmesh bench',
      formatVersion: 1,
      startedAt: new Date(0).toISOString(),
      finishedAt: new Date(1000).toISOString(),
      invocation: ['ebmesh', 'bench', '--quick'],
      options: { quick: true, repeats: 2, noisyCv: 0.1 },
      machine: describeMachine([]),
      loadAverageAtEnd: [0.5, 0.25, 0.125],
      scenarios: [
        { name: 'demo', describe: 'demo', status: 'ok', error: null, durationS: 1, result, summaries: analyzeScenario('demo', result), figures: [] },
        { name: 'broken', describe: 'fails', status: 'failed', error: { code: 'X', message: 'boom', hint: 'try again' }, durationS: 0, result: null, summaries: [], figures: [] },
      ],
    };
    await writeReport(dir, report);
    const files = (await readdir(dir)).sort();
    assert.deepEqual(files, ['demo-latency.svg', 'demo-memory-more.svg', 'demo-throughput.svg', 'report.json', 'report.md']);
    for (const f of files.filter((x) => x.endsWith('.svg'))) {
      assert.equal(checkWellFormedXml(await readFile(path.join(dir, f), 'utf8')), null, f);
    }
    const json = JSON.parse(await readFile(path.join(dir, 'report.json'), 'utf8')) as BenchReport;
    assert.equal(checkReportJson(json), null);
    assert.equal(json.scenarios.length, 2);
    assert.deepEqual(json.scenarios[0]!.figures, ['demo-latency.svg', 'demo-throughput.svg', 'demo-memory-more.svg']);
    assert.match(checkReportJson({ ...json, loadAverageAtEnd: [1] }) ?? '', /loadAverageAtEnd/);
    assert.match(checkReportJson({ ...json, scenarios: [{ ...json.scenarios[0], status: 'maybe' }] }) ?? '', /scenarios\.0\.status/);
    const md = await readFile(path.join(dir, 'report.md'), 'utf8');
    assert.equal(checkMarkdownTables(md), null);
    assert.match(md, /boom/);
    assert.match(md, /\(demo-latency\.svg\)/);
    assert.match(md, /\| mesh \\\| a \| 1\.0 \|/, 'scenario tables are rendered, pipes escaped');
    assert.match(md, /load average at end \| 0\.50 0\.25 0\.13/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});


test('pairedComparison compares two configurations repeat by repeat', () => {
  const configs = [
    { name: 'a', description: '', runs: [run(100, 50, 2000), run(100, 50, 9000), run(100, 50, 12_500)] },
    { name: 'b', description: '', runs: [run(100, 60, 3000), run(100, 60, 4000), run(100, 60, 13_000)] },
    { name: 'short', description: '', runs: [run(100, 60, 3000)] },
  ];
  assert.equal(
    pairedComparison(configs, 'a', 'b', 'p99'),
    'p99, "a" vs "b", repeat by repeat (each pair in the same repeat): 2.00 vs 3.00 ms; 9.00 vs 4.00 ms; 12.5 vs 13.0 ms: "a" lower in 2 of 3.',
  );
  assert.equal(pairedComparison(configs, 'a', 'short', 'p99'), undefined);
  assert.equal(pairedComparison(configs, 'a', 'missing', 'p99'), undefined);
});
