import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireTools } from '../../test/helpers/tools.js';
import { EtcdStore, parseEtcdUrl, prefixEnd } from './etcd.js';
import { startEtcd, stopEtcd, type EtcdServer } from './etcd-server.js';
import { ensureEtcdPki, type EtcdTlsFiles } from './etcd-pki.js';
import type { WatchEvent } from './store.js';

const dir = mkdtempSync(join(tmpdir(), 'ebmesh-etcd-'));
let server: EtcdServer;
const stores: EtcdStore[] = [];
const tlsOf = (f: EtcdTlsFiles) => ({ ca: readFileSync(f.ca), cert: readFileSync(f.cert), key: readFileSync(f.key) });
const open = (prefix = `/t${process.pid}`) => {
  const s = new EtcdStore({ endpoint: server.endpoint, tls: tlsOf(server.client), prefix, retryMs: 50 });
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
  server = await startEtcd({ dataDir: join(dir, 'data'), pkiDir: join(dir, 'pki') });
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
  server = await startEtcd({ dataDir: server.dataDir, pkiDir: join(dir, 'pki'), clientPort: server.clientPort, peerPort: server.peerPort });
  for (let i = 2; i < 6; i++) await writer.commit([{ type: 'put', key: `/k/${i}`, value: i }]);
  await until(() => seen.length === 6);
  const revs = seen.map((e) => e.revision);
  assert.deepEqual(revs, [...revs].sort((a, b) => a - b));
  assert.equal(new Set(revs).size, revs.length);
  assert.deepEqual(seen.slice(2).map((e) => e.ops[0]), [2, 3, 4, 5].map((i) => ({ type: 'put', key: `/k/${i}`, value: i })));
  stop();
});

/** What etcd answers a raw HTTPS request made with these TLS options: its status, or the error that ended it. */
function rawHttps(port: number, path: string, tls: Record<string, unknown>): Promise<string> {
  return new Promise((resolve) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path, method: 'POST', agent: false, timeout: 5000, ...tls }, (res) => {
      res.resume();
      res.on('end', () => resolve(`HTTP ${res.statusCode}`));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code ?? e.message}`));
    req.end(JSON.stringify({ key: Buffer.from('/').toString('base64'), range_end: Buffer.from([0]).toString('base64') }));
  });
}

test('etcd refuses a client without a certificate, with one of another CA, and one that speaks plain HTTP', async () => {
  const mine = tlsOf(server.client);
  // The control plane's own certificate reads (the check of the check: the request itself is fine).
  assert.equal(await rawHttps(server.clientPort, '/v3/kv/range', mine), 'HTTP 200');
  // No certificate: the handshake fails (etcd requires one of its CA).
  assert.match(await rawHttps(server.clientPort, '/v3/kv/range', { ca: mine.ca }), /^error /);
  // A certificate of another CA (made like the real one, so only the CA differs).
  const stranger = tlsOf((await ensureEtcdPki(join(dir, 'stranger-pki'))).client);
  assert.match(await rawHttps(server.clientPort, '/v3/kv/range', { ...stranger, ca: mine.ca }), /^error /);
  // Plain HTTP on the client port reads nothing.
  const plain = await new Promise<string>((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port: server.clientPort, path: '/v3/kv/range', method: 'POST', timeout: 5000 }, (res) => {
      let t = '';
      res.on('data', (d) => (t += d));
      res.on('end', () => resolve(`HTTP ${res.statusCode} ${t}`));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code}`));
    req.end('{}');
  });
  assert.doesNotMatch(plain, /^HTTP 200/, plain);
  // The peer port asks for a certificate too.
  const peer = await new Promise<string>((resolve) => {
    const s = connect({ host: '127.0.0.1', port: server.peerPort, ca: mine.ca, servername: 'localhost' }, () => {
      // TLS 1.3: the server judges the (missing) client certificate after our side finished; a read tells.
      s.write('GET /members HTTP/1.1\r\nhost: x\r\n\r\n');
    });
    let got = '';
    s.on('data', (d) => (got += d));
    s.on('error', (e: NodeJS.ErrnoException) => resolve(`error ${e.code ?? e.message}`));
    s.on('close', () => resolve(got ? `read ${got.slice(0, 40)}` : 'closed'));
  });
  assert.doesNotMatch(peer, /^read HTTP\/1\.1 200/, peer);
});

test('the store refuses an etcd whose certificate its CA did not sign, and plain http:// endpoints', async () => {
  const stranger = tlsOf((await ensureEtcdPki(join(dir, 'stranger-pki'))).client);
  const s = new EtcdStore({ endpoint: server.endpoint, tls: { ...tlsOf(server.client), ca: stranger.ca }, prefix: '/x' });
  stores.push(s);
  await assert.rejects(s.revision(), (e: Error & { code?: string }) => e.code === 'EBMESH_TLS' && /TLS failed/.test(e.message));
  assert.throws(() => new EtcdStore({ endpoint: `http://127.0.0.1:${server.clientPort}`, tls: tlsOf(server.client) }), /over TLS only/);
});

test('--store names one member or every member of a cluster; a list item that is not HOST:PORT is refused by name', () => {
  const f = join(dir, 'any.pem');
  writeFileSync(f, 'x');
  const files = { ca: f, cert: f, key: f };
  assert.deepEqual(parseEtcdUrl('etcd+tls://127.0.0.1:2379', '/ebmesh/x', files).endpoints, ['https://127.0.0.1:2379']);
  const many = parseEtcdUrl('etcd+tls://10.0.0.1:2379,10.0.0.2:2379,etcd-3:2379/mesh/a', '/ebmesh/x', files);
  assert.deepEqual(many.endpoints, ['https://10.0.0.1:2379', 'https://10.0.0.2:2379', 'https://etcd-3:2379']);
  assert.equal(many.prefix, '/mesh/a');
  assert.throws(() => parseEtcdUrl('etcd+tls://10.0.0.1:2379,,10.0.0.2:2379', '/p', files), /"" is not HOST:PORT/);
  assert.throws(() => parseEtcdUrl('etcd+tls://10.0.0.1:2379,u@h:1', '/p', files), /"u@h:1" is not HOST:PORT/);
});
