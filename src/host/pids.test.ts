import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { pidAlive, procStat, stopPid } from './pids.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const state = (pid: number) => procStat(pid)?.(3);
/** The wait status a zombie left (field 52 of /proc/PID/stat): the signal that ended it in its low 7 bits. */
const endedBySignal = (pid: number) => Number(procStat(pid)?.(52)) & 0x7f;

/**
 * A process whose parent never reaps it: sh starts a sleep, then becomes a
 * long sleep itself (exec), which never calls wait(). Killing the inner sleep
 * leaves a zombie, as a daemon reparented to a slow init does.
 */
async function unreapedChild(): Promise<{ inner: number; stop(): void }> {
  const outer = spawn('sh', ['-c', 'sleep 60 & echo $!; exec sleep 60'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const line = await new Promise<string>((resolve) => outer.stdout.once('data', (d: Buffer) => resolve(d.toString())));
  return { inner: Number(line.trim()), stop: () => outer.kill('SIGKILL') };
}

test('a running process is alive; once it exited it is not, though its parent has not reaped it yet', async () => {
  const c = await unreapedChild();
  try {
    assert.equal(pidAlive(c.inner), true);
    process.kill(c.inner, 'SIGKILL');
    while (state(c.inner) !== 'Z') await sleep(5);
    assert.ok(existsSync(`/proc/${c.inner}`), 'the zombie is still in /proc');
    assert.equal(pidAlive(c.inner), false);
  } finally {
    c.stop();
  }
});

// The grace outlasts the test's timeout: a stopPid that took the zombie for alive would wait it out, and the test fails.
test('stopPid returns once the process exited, without waiting for it to be reaped', { timeout: 15_000 }, async () => {
  const c = await unreapedChild();
  try {
    await stopPid(c.inner, 60_000);
    assert.equal(state(c.inner), 'Z', 'not reaped');
    assert.equal(endedBySignal(c.inner), 15, 'ended by the SIGTERM');
  } finally {
    c.stop();
  }
});

test('no PID, or one that does not exist, is not alive', () => {
  assert.equal(pidAlive(undefined), false);
  assert.equal(pidAlive(0), false);
  assert.equal(pidAlive(2 ** 22 + 1), false);
});
