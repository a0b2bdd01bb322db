import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { autogroupNiceFor, claimCpuShare, cpuWeightFor } from './cpu-share.js';

test('one group share per worker: the nice whose weight is nearest N times nice 0, and N times cpu.weight 100', () => {
  // Kernel weights: nice 0 = 1024, -3 = 1991, -5 = 3121, -6 = 3906, -9 = 7620.
  assert.deepEqual([1, 2, 3, 4, 8].map(autogroupNiceFor), [0, -3, -5, -6, -9]);
  assert.equal(autogroupNiceFor(1_000_000), -20);
  assert.deepEqual([1, 2, 64, 200].map(cpuWeightFor), [100, 200, 6400, 10_000]);
  assert.throws(() => autogroupNiceFor(0), /positive integer/);
  assert.throws(() => cpuWeightFor(1.5), /positive integer/);
});

test('claimCpuShare writes the autogroup nice and the cgroup weight where they exist, and reports what it could not set', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ebmesh-cpu-share-'));
  try {
    const autogroup = join(dir, 'autogroup');
    writeFileSync(autogroup, '/autogroup-1 nice 0\n');
    const cg = join(dir, 'cg');
    mkdirSync(cg);
    writeFileSync(join(cg, 'cpu.weight'), '100\n');
    assert.deepEqual(claimCpuShare(2, { autogroup, cgroupDir: cg }), { set: ['autogroup nice -3', `cpu.weight 200 on ${cg}`], failed: [] });
    assert.equal(readFileSync(autogroup, 'utf8'), '-3');
    assert.equal(readFileSync(join(cg, 'cpu.weight'), 'utf8'), '200');

    // A cgroup without the cpu controller has no cpu.weight: only the autogroup is set.
    assert.deepEqual(claimCpuShare(4, { autogroup, cgroupDir: dir }), { set: ['autogroup nice -6'], failed: [] });
    // A file that cannot be written (here a directory): reported, nothing thrown.
    const r = claimCpuShare(2, { autogroup: cg, cgroupDir: join(dir, 'none') });
    assert.deepEqual(r.set, []);
    assert.equal(r.failed.length, 1);
    assert.match(r.failed[0]!, /^autogroup nice -3: EISDIR/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
