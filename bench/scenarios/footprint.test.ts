import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Footprint } from '../footprint.js';
import { emptyRun, type RunResult } from '../scenario.js';
import { footprintTables } from './footprint.js';

const MiB = 2 ** 20;
const fp = (pssMiB: number | null, rssMiB: number, cpu: number): Footprint => ({
  cpuPercent: cpu, cpuSeconds: cpu / 100, wallSeconds: 1, maxRssBytes: rssMiB * MiB, maxPssBytes: pssMiB === null ? null : pssMiB * MiB, maxProcesses: 1, samples: 2,
});
const runOf = (f: Record<string, Footprint>): RunResult => emptyRun('idle', ['sleep', '1'], f);
const bpf = new Map([[10, { programs: 2, maps: 3, programBytes: 1 * MiB, mapBytes: 99 * MiB, largestMaps: [] }]]);

test('footprint totals add BPF memory to the mesh only, and compare with the sidecars', () => {
  const configs = [
    { name: 'ebmesh, 10 workloads, idle', runs: [runOf({ daemon: fp(50, 80, 1) }), runOf({ daemon: fp(60, 90, 3) }), runOf({ daemon: fp(40, 70, 2) })] },
    { name: 'ebmesh + node proxy, 10 workloads, idle', runs: [runOf({ daemon: fp(50, 80, 1), 'node proxy': fp(null, 150, 4) })] },
    { name: 'sidecars, 10 workloads, idle', runs: [runOf({ sidecars: fp(50, 90, 4) })] },
  ];
  const { tables, bars } = footprintTables(configs, [10], bpf);
  const rows = tables[0]!.rows;
  assert.equal(rows.length, 3, 'no load rows: nothing was measured under load');
  for (const r of rows) assert.equal(r.length, tables[0]!.header.length);
  const [mesh, withProxy, side] = rows;
  // median daemon PSS 50 + BPF 100 = 150 MiB, over 10 workloads
  assert.deepEqual(mesh!.slice(0, 7), ['10', 'idle', 'ebmesh', '150.0 [140.0–160.0]', '15.00', '2.0 [1.0–3.0]', '0.20']);
  assert.equal(mesh![7], '×0.33');
  assert.equal(mesh![8], '×2.00');
  // the proxy has no PSS: its RSS counts instead
  assert.equal(withProxy![3], '300.0');
  assert.deepEqual(side!.slice(3, 9), ['50.0', '5.00', '4.0', '0.40', '×1.00', '×1.00']);
  assert.deepEqual(bars[0]!.bars, [], 'the plot shows runs under load only');
});
