import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { sampleFootprint } from './footprint.js';

test('a footprint counts the descendants of its roots unless told not to', async () => {
  const child = spawn('sleep', ['5'], { stdio: 'ignore' });
  try {
    const tree = sampleFootprint([process.pid], 1000);
    const alone = sampleFootprint([process.pid], 1000, { descendants: false });
    assert.ok(tree.stop().maxProcesses >= 2);
    assert.equal(alone.stop().maxProcesses, 1);
  } finally {
    child.kill();
    await once(child, 'exit');
  }
});
