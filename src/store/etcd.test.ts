import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireTools } from '../../test/helpers/tools.js';
import { EtcdStore, prefixEnd } from './etcd.js';
import { startEtcd, stopEtcd, type EtcdServer } from './etcd-server.js';
import type { WatchEvent } from './store.js';

const dir = mkdtempSync(join(tmpdir(), 'ebmesh-etcd-'));
let server: EtcdServer;
const stores: EtcdStore[] = [];
const open = (prefix = `/t${process.pid}`) => {
  const s = new EtcdStore({ endpoint: server.endpoint, prefix, retryMs: 50 });
  stores.push(s);
  return s;
};
const until = async (cond: () => boolean, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
};

before(async () => {
  requireTools('etcd');
  server = await startEtcd({ dataDir: join(dir, 'data') });
});
after(async () => {
  for (const s of stores) await s.close();
  if (server) await stopEtcd(server.pid);
  rmSync(dir, { recursive: true, force: true });
});

test('prefixEnd is the first key after every key with the prefix', () => {
  assert.equal(Buffer.from(prefixEnd('/a/'), 'base64').toString(), '/a0');
});

test('get, list by prefix, atomic commit with one revision', async () => {
  const s = open();
  const r0 = await s.revision();
  const r1 = await s.commit([
    { type: 'put', key: '/resources/Service/d/a', value: { n: 1 } },
    { type: 'put', key: '/resources/Service/d/b', value: { n: 2 } },
    { type: 'put', key: '/resources/Workload/d/w', value: { n: 3 } },
  ]);
  assert.ok(r1 > r0);
  assert.equal(await s.revision(), r1);
  assert.deepEqual((await s.get('/resources/Service/d/a'))?.value, { n: 1 });
  assert.equal((await s.get('/resources/Service/d/a'))?.modRevision, r1);
  assert.deepEqual((await s.list('/resources/Service/')).map((e) => e.key), ['/resources/Service/d/a', '/resources/Service/d/b']);
  const r2 = await s.commit([{ type: 'delete', key: '/resources/Service/d/a' }, { type: 'put', key: '/resources/Service/d/b', value: { n: 5 } }]);
  assert.equal(r2, r1 + 1);
  assert.equal(await s.get('/resources/Service/d/a'), undefined);
  // Another prefix (another mesh in the same etcd) sees none of it.
  assert.deepEqual(await open(`/other${process.pid}`).list('/'), []);
});

test('one commit may name a key twice: the last op wins, as in the embedded store', async () => {
  const s = open(`/dup${process.pid}`);
  const r = await s.commit([{ type: 'put', key: '/a', value: 1 }, { type: 'delete', key: '/a' }, { type: 'put', key: '/b', value: 1 }, { type: 'put', key: '/b', value: 2 }]);
  assert.equal(await s.get('/a'), undefined);
  assert.deepEqual(await s.get('/b'), { key: '/b', value: 2, modRevision: r });
});

test('watch delivers each revision once, in order, and resumes after etcd restarts', async () => {
  const writer = open(`/w${process.pid}`);
  const watcher = open(`/w${process.pid}`);
  const start = await writer.commit([{ type: 'put', key: '/k/0', value: 0 }]);
  const seen: WatchEvent[] = [];
  const stop = watcher.watch((ev) => seen.push(ev), start); // from a past revision: replays it
  await until(() => seen.length === 1);
  assert.deepEqual(seen[0], { revision: start, ops: [{ type: 'put', key: '/k/0', value: 0 }] });
  await writer.commit([{ type: 'put', key: '/k/1', value: 1 }, { type: 'delete', key: '/k/0' }]);
  await until(() => seen.length === 2);
  assert.deepEqual(seen[1]!.ops, [{ type: 'put', key: '/k/1', value: 1 }, { type: 'delete', key: '/k/0' }]);

  // Kill etcd under the watch, bring it back on the same data and ports,
  // write at once (before the watcher can have reconnected): nothing is lost.
  await stopEtcd(server.pid, 'SIGKILL');
  await assert.rejects(writer.commit([{ type: 'put', key: '/k/x', value: 0 }]), (e: Error & { code?: string }) => e.code === 'EBMESH_STORE_UNAVAILABLE');
  server = await startEtcd({ dataDir: server.dataDir, clientPort: server.clientPort, peerPort: server.peerPort });
  for (let i = 2; i < 6; i++) await writer.commit([{ type: 'put', key: `/k/${i}`, value: i }]);
  await until(() => seen.length === 6);
  const revs = seen.map((e) => e.revision);
  assert.deepEqual(revs, [...revs].sort((a, b) => a - b));
  assert.equal(new Set(revs).size, revs.length);
  assert.deepEqual(seen.slice(2).map((e) => e.ops[0]), [2, 3, 4, 5].map((i) => ({ type: 'put', key: `/k/${i}`, value: i })));
  stop();
});
