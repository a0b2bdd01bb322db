import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { HostRoutes, safetyRoutesFile } from './apply.js';
import { teardownInstance } from './node-agent.js';
import { instancePaths } from '../paths.js';

const root = process.getuid?.() === 0;
// Ranges nothing on a test machine uses.
const V4 = '10.199.0.0/16';
const V6 = 'fd00:eb:19f::/112';
const unreachable = (cidr: string) => /^unreachable .*metric 4242/m.test(execFileSync('ip', [cidr.includes(':') ? '-6' : '-4', 'route', 'show', 'exact', cidr], { encoding: 'utf8' }));

test('safety routes are recorded as made: a later agent removes what it no longer wants, and teardown removes what was recorded with no MeshConfig to say it', { skip: !root && 'needs root (host routes)' }, async () => {
  const paths = instancePaths(`hr${process.pid}`);
  mkdirSync(paths.stateDir, { recursive: true, mode: 0o700 });
  const record = safetyRoutesFile(paths);
  try {
    new HostRoutes(record).ensure([V4, V6]);
    assert.ok(unreachable(V4) && unreachable(V6));
    assert.deepEqual(JSON.parse(readFileSync(record, 'utf8')), [V4, V6]);
    // A new agent of the instance (its cluster now IPv4 only) takes over the record.
    new HostRoutes(record).ensure([V4]);
    assert.ok(unreachable(V4));
    assert.ok(!unreachable(V6), 'the range no agent wants any more is gone');
    // A route removed behind the agent's back comes back on its first pass, whatever the record says.
    execFileSync('ip', ['route', 'del', 'unreachable', V4, 'metric', '4242']);
    new HostRoutes(record).ensure([V4]);
    assert.ok(unreachable(V4));
    // Teardown from the instance's names alone (a Kubernetes agent's ranges come from flags, not a stored MeshConfig).
    await teardownInstance(paths);
    assert.ok(!unreachable(V4));
    assert.ok(!existsSync(paths.stateDir));
  } finally {
    for (const c of [V4, V6]) if (unreachable(c)) execFileSync('ip', ['route', 'del', 'unreachable', c, 'metric', '4242']);
  }
});
