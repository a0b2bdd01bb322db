/**
 * kill -9 of one member of a three-member etcd cluster (TLS, client and peer
 * certificates) under a stream of applies to a control plane that knows
 * every member (--store etcd+tls://A,B,C): no apply fails, every applied
 * resource is in the store and nothing else, status names the member that
 * does not answer, and the member joins again with the data dir it had.
 *
 * No agents here: the data path reads nothing from etcd (faults.test.ts
 * shows it serving with the whole store down, docs/faults.md).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startEtcd, stopEtcd, type EtcdServer } from '../../src/store/etcd-server.js';
import { ensureEtcdPki } from '../../src/store/etcd-pki.js';
import { instanceClient, isRunning } from '../../src/cli/client.js';
import { meshApi } from '../../src/api/mesh.js';
import { PACKAGE_ROOT, instancePaths } from '../../src/paths.js';

const instance = `ebt-fe-${process.pid}`.slice(0, 30);
const paths = instancePaths(instance);
const dir = mkdtempSync(join(tmpdir(), 'ebmesh-etcd3-'));
const pkiDir = join(dir, 'pki');
const names = ['m0', 'm1', 'm2'];
let ports: Array<{ name: string; clientPort: number; peerPort: number }> = [];
const members: Array<EtcdServer | undefined> = [];
let cp: ChildProcess | undefined;
const client = () => instanceClient(paths, 20_000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function startMember(i: number, state: 'new' | 'existing' = 'new'): Promise<EtcdServer> {
  const m = ports[i]!;
  return startEtcd({
    dataDir: join(dir, m.name), pkiDir, clientPort: m.clientPort, peerPort: m.peerPort, timeoutMs: 30_000,
    cluster: { name: m.name, members: ports.map((p) => ({ name: p.name, peerPort: p.peerPort })), state },
  });
}

before(async () => {
  for (const name of names) ports.push({ name, clientPort: await freePort(), peerPort: await freePort() });
  // One CA for the three (they are started at once).
  await ensureEtcdPki(pkiDir);
  // One at a time would wait forever: a member is healthy once a quorum has a leader.
  members.push(...(await Promise.all(names.map((_, i) => startMember(i)))));
  const tls = members[0]!.client;
  const store = `etcd+tls://${ports.map((p) => `127.0.0.1:${p.clientPort}`).join(',')}`;
  cp = spawn(join(PACKAGE_ROOT, 'bin/ebmesh'), ['--instance', instance, 'controlplane', '--store', store,
    '--etcd-ca', tls.ca, '--etcd-cert', tls.cert, '--etcd-key', tls.key], { stdio: ['ignore', 'ignore', 'inherit'] });
  const until = Date.now() + 60_000;
  while (!(await isRunning(paths)) && Date.now() < until) await sleep(200);
  assert.ok(await isRunning(paths), 'the control plane answers');
  const n = 100 + (process.pid % 100);
  await client().call(meshApi.apply, { file: 'mesh.yaml', text: `apiVersion: ebmesh.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  serviceCIDR: 10.97.${n}.0/24\n  podCIDR: 10.245.${n}.0/24\n` });
});

after(async () => {
  if (cp?.pid) {
    cp.kill('SIGTERM');
    await new Promise((r) => { if (cp!.exitCode !== null) r(undefined); else cp!.once('exit', r); });
  }
  await Promise.all(members.map((m) => m && stopEtcd(m.pid, 'SIGKILL')));
  rmSync(dir, { recursive: true, force: true });
  rmSync(paths.stateDir, { recursive: true, force: true });
  rmSync(paths.runDir, { recursive: true, force: true });
});

const service = (name: string) => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: demo}
spec:
  ports: [{port: 80, targetPort: 8080}]
`;

test('kill -9 of one etcd member of three under applies: none fails, every one is stored, status names the member down', async () => {
  const applied: string[] = [];
  const failed: string[] = [];
  let i = 0;
  let running = true;
  const loop = (async () => {
    const end = Date.now() + 60_000;
    while (running && Date.now() < end) {
      const name = `s-${i++}`;
      try {
        await client().call(meshApi.apply, { file: `${name}.yaml`, text: service(name) });
        applied.push(name);
      } catch (e) {
        failed.push(`${name}: ${(e as Error).message}`);
      }
      await sleep(20);
    }
  })();
  // Kill the member the control plane speaks to first (the first given): its watch and its requests move on.
  await sleep(2000);
  const killed = members[0]!;
  process.kill(killed.pid, 'SIGKILL');
  await stopEtcd(killed.pid, 'SIGKILL');
  members[0] = undefined;
  const atKill = applied.length;
  // Applies go on while the member is down.
  const until = Date.now() + 30_000;
  while (applied.length < atKill + 20 && Date.now() < until) await sleep(100);
  const degraded = await client().call(meshApi.status, {});
  assert.equal(degraded.role, 'controlplane');
  const down = degraded.role === 'controlplane' ? degraded.storeMembers?.filter((m) => !m.healthy).map((m) => m.endpoint) : [];
  assert.deepEqual(down, [`https://127.0.0.1:${ports[0]!.clientPort}`], JSON.stringify(degraded.role === 'controlplane' && degraded.storeMembers));
  // The member comes back with its data dir and catches up.
  members[0] = await startMember(0, 'existing');
  const back = applied.length;
  while (applied.length < back + 20 && Date.now() < until + 30_000) await sleep(100);
  running = false;
  await loop;
  process.stdout.write(`# fault etcd member: applies ${applied.length + failed.length} (${applied.length - atKill} while a member was down), failed ${failed.length}\n`);
  assert.deepEqual(failed.slice(0, 5), []);
  assert.ok(applied.length > atKill + 20, `applies went on while the member was down (${atKill} before, ${applied.length} in all)`);
  const { items } = await client().call(meshApi.resources, { kind: 'Service', namespace: 'demo' });
  const stored = items.map((s) => (s as { metadata: { name: string } }).metadata.name).sort();
  assert.deepEqual(stored, [...applied].sort(), 'every applied Service is stored, and nothing else');
  const healed = await client().call(meshApi.status, {});
  assert.ok(healed.role === 'controlplane' && healed.storeMembers?.every((m) => m.healthy), JSON.stringify(healed));
});
