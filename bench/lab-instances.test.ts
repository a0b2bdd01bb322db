import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchInstanceName, benchInstanceOwned, claimBenchInstance, findBenchInstances, type Place } from './lab-instances.js';
import { isEbmeshError } from '../src/errors.js';
import { validInstance } from '../src/paths.js';

const root = mkdtempSync(join(tmpdir(), 'ebmesh-labinst-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** Real directories shaped like the host's (state dirs, netns, cgroups), holding ENTRIES. */
function places(name: string, entries: { state?: string[]; netns?: string[]; cgroups?: string[] }): Place[] {
  const dir = (d: string, names: string[] = []) => {
    const p = join(root, name, d);
    mkdirSync(p, { recursive: true });
    for (const n of names) mkdirSync(join(p, n));
    return p;
  };
  const netns = dir('netns', entries.netns);
  return [
    { dir: dir('state', entries.state), prefix: '' },
    { dir: netns, prefix: 'ebm-' },
    { dir: netns, prefix: 'ebn-' },
    { dir: dir('cgroup', entries.cgroups), prefix: 'ebmesh.' },
  ];
}

/** A PID that no process has: a child's, once it has exited. */
async function deadPid(): Promise<number> {
  const c = spawn('true', { stdio: 'ignore' });
  await once(c, 'exit');
  return c.pid!;
}

test('a bench instance name carries the run\'s PID and stays a valid instance name for any PID', () => {
  assert.equal(benchInstanceName('lb', 1234), 'ebbench-lb-1234');
  // PID_MAX_LIMIT is 4194304: seven digits, with the longest tag in use.
  assert.ok(validInstance(benchInstanceName('proxy', 4_194_304)));
  assert.throws(() => benchInstanceName('Bad-Tag', 1), (e) => isEbmeshError(e, 'EBMESH_BENCH_INSTANCE') && /Bad-Tag/.test(e.message));
  assert.throws(() => benchInstanceName('x'.repeat(20), 1), (e) => isEbmeshError(e, 'EBMESH_BENCH_INSTANCE'));
});

test('leftovers of a scenario are found by name wherever an instance leaves them, and only that scenario\'s', () => {
  const found = findBenchInstances('lb', places('find', {
    state: ['ebbench-lb-12', 'ebbench-lb', 'ebbench-lbx-3', 'ebt-lb-4'],
    netns: ['ebm-ebbench-lb-34-bench.server', 'ebm-ebbench-lb-34-plain', 'ebn-ebbench-lb-78-node-1', 'ebm-ebbench-lbx-9-bench.client'],
    cgroups: ['ebmesh.ebbench-lb-56.node-1', 'ebmesh.ebbench-lb-12', 'ebmesh.ebt-x-1'],
  }));
  // Names without a PID (older builds) are not this scheme's to sweep.
  assert.deepEqual(found, [
    { instance: 'ebbench-lb-12', pid: 12 },
    { instance: 'ebbench-lb-34', pid: 34 },
    { instance: 'ebbench-lb-56', pid: 56 },
    { instance: 'ebbench-lb-78', pid: 78 },
  ]);
});

test('a lab is owned while the run that made it lives, and never by this process', async () => {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    assert.equal(benchInstanceOwned({ instance: `ebbench-t-${child.pid}`, pid: child.pid! }), true);
    assert.equal(benchInstanceOwned({ instance: `ebbench-t-${process.pid}`, pid: process.pid }), false);
    const dead = await deadPid();
    assert.equal(benchInstanceOwned({ instance: `ebbench-t-${dead}`, pid: dead }), false);
  } finally {
    child.kill();
    await once(child, 'exit');
  }
});

test('claiming takes down what crashed runs left, and refuses while another run of the scenario is going', async () => {
  const dead = await deadPid();
  const downed: string[] = [];
  const crashed = places('crashed', { state: [`ebbench-t-${dead}`], netns: [`ebm-ebbench-t-${process.pid}-bench.client`] });
  assert.equal(claimBenchInstance('t', (i) => downed.push(i), crashed), `ebbench-t-${process.pid}`);
  assert.deepEqual(downed.sort(), [`ebbench-t-${dead}`, `ebbench-t-${process.pid}`].sort());

  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    const busy = places('busy', { state: [`ebbench-t-${child.pid}`, `ebbench-t-${dead}`] });
    downed.length = 0;
    assert.throws(() => claimBenchInstance('t', (i) => downed.push(i), busy),
      (e) => isEbmeshError(e, 'EBMESH_BENCH_BUSY') && e.message.includes(`process ${child.pid}`) && !!e.hint);
    // Nothing is taken down when the claim is refused: not even the dead run's lab.
    assert.deepEqual(downed, []);
  } finally {
    child.kill();
    await once(child, 'exit');
  }
});
