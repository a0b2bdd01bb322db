/**
 * Issue 5's acceptance: the same-node shortcut, on (the default), between
 * lab workloads, with real clients and servers (curl, h2load, iperf3, nginx)
 * and a socket test program (test/helpers/sockprog.py, non-blocking like the
 * event loops the shortcut carries) for the cases that break naive sockmap
 * redirection (test/integration/shortcut-compat.test.ts checks that no
 * socket, blocking or not, sees what plain TCP would not show it). Every
 * case checks the bytes end to end (sha256) and that the shortcut was
 * taken (its counters); observe's
 * reports stay exact. The sockhash is made small on purpose
 * (EBMESH_SHORTCUT_MAX_SOCKETS) so that the full-map case can fill it.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../src/paths.js';
import { TestMesh, serviceWithoutEndpoints } from '../helpers/mesh.js';
import { idleWorkload, nginxWorkload } from '../../bench/scenarios/mesh-lab.js';
import type { Flow } from '../../src/observe/flow.js';

const PROG = join(PACKAGE_ROOT, 'test/helpers/sockprog.py');
const MAX_SOCKETS = 512;
let mesh: TestMesh;
let www: string;
let bigSha: string;
let sinkIp: string;
const servers: ChildProcess[] = [];

function resources(root: string): string {
  return `apiVersion: v1
kind: Namespace
metadata: {name: sc}
---
${nginxWorkload('web', 'web', {
    namespace: 'sc', http: 'sendfile on; keepalive_requests 1000000;',
    locations: `location /ok { return 200 "ok\\n"; } location / { root ${root}; }`,
  })}---
${idleWorkload('sink', { namespace: 'sc' })}---
${idleWorkload('client', { namespace: 'sc' })}---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: sc}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: http}]}
`;
}

interface Counters { [k: string]: number }

function counters(): Counters {
  const st = JSON.parse(mesh.ok('status', '-o', 'json')) as { datapath: { counters: Counters } };
  return st.datapath.counters;
}

function peersEntries(): number {
  const st = JSON.parse(mesh.ok('status', '-o', 'json')) as { datapath: { maps: Array<{ map: string; entries: number }> } };
  return st.datapath.maps.find((m) => m.map === 'ebm_sc_peers')!.entries;
}

function delta(a: Counters, b: Counters, k: string): number {
  return (b[k] ?? 0) - (a[k] ?? 0);
}

function observe(...args: string[]): Flow[] {
  const out = mesh.ok('observe', '-o', 'json', '--last', '100000', ...args);
  return out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Flow);
}

/** Starts a server mode of the test program in a workload; resolves once it listens. */
async function server(workload: string, args: string[], seconds = 60): Promise<{ done: Promise<string> }> {
  const p = spawn(join(PACKAGE_ROOT, 'bin/ebmesh'), ['--instance', mesh.instance, 'exec', workload, '--', 'timeout', String(seconds), 'python3', PROG, ...args],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  servers.push(p);
  let out = '';
  p.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  // Until it listens or exits (its `timeout` bounds it): starting Python
  // through `ebmesh exec` takes seconds on a loaded machine.
  while (!out.includes('ready') && p.exitCode === null && p.signalCode === null) await new Promise((r) => setTimeout(r, 50));
  assert.ok(out.includes('ready'), `server ${args.join(' ')} did not start`);
  return { done: once(p, 'exit').then(() => out.replace('ready\n', '').trim()) };
}

function client(args: string[]): string {
  const r = mesh.sh('client', `timeout 120 python3 ${PROG} ${args.join(' ')}`);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  return r.stdout.trim();
}

before(() => {
  process.env.EBMESH_METRICS_ADDR = '127.0.0.1:0';
  process.env.EBMESH_SHORTCUT_MAX_SOCKETS = String(MAX_SOCKETS);
  mesh = new TestMesh('sc');
  www = join(mesh.dir, 'www');
  mkdirSync(www);
  chmodSync(mesh.dir, 0o755); // nginx's workers read it as nobody
  const big = randomBytes(24 << 20);
  writeFileSync(join(www, 'big'), big);
  bigSha = createHash('sha256').update(big).digest('hex');
  mesh.ok('up', '-f', mesh.meshConfigFile(), '-f', mesh.file('sc.yaml', resources(www)));
  delete process.env.EBMESH_SHORTCUT_MAX_SOCKETS;
  const w = JSON.parse(mesh.ok('get', 'workloads', 'sink', '-n', 'sc', '-o', 'json')) as { spec: { ip: string } } | Array<{ spec: { ip: string } }>;
  sinkIp = (Array.isArray(w) ? w[0]! : w).spec.ip;
});

after(() => {
  for (const p of servers) if (p.exitCode === null) p.kill();
  mesh?.down();
});

test('curl: a 24 MiB body arrives byte-exact through the shortcut, seen by observe from both ends', () => {
  const c0 = counters();
  const r = mesh.sh('client', 'curl -s http://web.sc/big | sha256sum; curl -s http://web.sc/big | sha256sum');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n').map((l) => l.split(' ')[0]), [bigSha, bigSha]);
  const c1 = counters();
  assert.ok(delta(c0, c1, 'sc_inserted') >= 4, JSON.stringify(c1));
  // How much goes socket to socket depends on how fast curl reads: when it
  // falls behind, writes take the normal path (backpressure) until drained.
  // That is the only reason a write of these connections may take it.
  assert.ok(delta(c0, c1, 'sc_redirected_bytes') > 1 << 20, `redirected ${delta(c0, c1, 'sc_redirected_bytes')} bytes`);
  assert.equal(delta(c0, c1, 'sc_declined'), 0, JSON.stringify(c1));
  assert.equal(delta(c0, c1, 'sc_left'), 0, JSON.stringify(c1));
  assert.ok(delta(c0, c1, 'sc_normal') === 0 || delta(c0, c1, 'sc_backpressure') > 0, JSON.stringify(c1));
  const http = observe('--protocol', 'http', '--to', 'sc/web').filter((f) => f.http!.path === '/big');
  assert.equal(http.length, 2, JSON.stringify(http));
  assert.ok(http.every((f) => f.http!.status === 200 && f.source.workload === 'client'));
  const closes = observe('--type', 'close', '--from', 'sc/client', '--to', 'sc/web');
  assert.equal(closes.length, 4);
  for (const c of closes) {
    assert.ok(c.shortcut, 'close report marks the shortcut');
    assert.ok(c.bytes!.toSource > 24 << 20 && c.bytes!.toSource < (24 << 20) + 1000, JSON.stringify(c.bytes));
  }
  // Both ends count the same bytes.
  const byPort = new Map<number, Flow[]>();
  for (const c of closes) byPort.set(c.source.port!, [...(byPort.get(c.source.port!) ?? []), c]);
  for (const [, pair] of byPort) assert.deepEqual(pair[0]!.bytes, pair[1]!.bytes);
});

test('observe: exact payload bytes both ways, from both ends, with the shortcut taken', async () => {
  const srv = await server('sink', ['serve-exact', '9001']);
  const c0 = counters();
  const [port, got] = client(['exact', sinkIp, '9001']).split(' ').map(Number);
  assert.equal(await srv.done, '100000');
  assert.equal(got, 5000);
  assert.ok(delta(c0, counters(), 'sc_redirected') > 0);
  const conn = observe('--type', 'close', '--from', 'sc/client', '--to', 'sc/sink').filter((f) => f.source.port === port);
  assert.equal(conn.length, 2);
  for (const c of conn) {
    assert.equal(c.verdict, 'FORWARDED');
    assert.deepEqual(c.bytes, { toDestination: 100000, toSource: 5000 }, `${c.observer}'s count`);
  }
});

test('h2load over HTTP/1.1 keep-alive: every request succeeds and is seen once', () => {
  const c0 = counters();
  const r = mesh.sh('client', 'h2load --h1 -n 2000 -c 10 http://web.sc/ok');
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /2000 succeeded/);
  const c1 = counters();
  assert.ok(delta(c0, c1, 'sc_redirected') >= 3900, `redirected ${delta(c0, c1, 'sc_redirected')} of ~4000 writes`);
  const http = observe('--protocol', 'http', '--from', 'client').filter((f) => f.http!.path === '/ok');
  assert.equal(http.length, 2000);
  assert.ok(http.every((f) => f.http!.status === 200 && f.destination.workload === 'web'));
});

test('iperf3 stays on plain TCP: it connects and listens in blocking mode, so neither end enters the sockhash', async () => {
  // A blocking socket in the sockhash would read through the kernel's
  // sockmap path, whose blocking recv() can return EAGAIN: the shortcut
  // leaves such sockets alone (test/integration/shortcut-compat.test.ts).
  const srv = spawn(join(PACKAGE_ROOT, 'bin/ebmesh'), ['--instance', mesh.instance, 'exec', 'sink', '--', 'timeout', '30', 'iperf3', '-s', '-1', '-p', '5201'], { stdio: 'ignore' });
  servers.push(srv);
  await new Promise((r) => setTimeout(r, 1000));
  const c0 = counters();
  const r = mesh.sh('client', `iperf3 -c ${sinkIp} -p 5201 -t 2 -J`);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const j = JSON.parse(r.stdout) as { end: { sum_received: { bytes: number } } };
  assert.ok(j.end.sum_received.bytes > 0);
  const c1 = counters();
  assert.equal(delta(c0, c1, 'sc_inserted'), 0, JSON.stringify(c1));
  assert.equal(delta(c0, c1, 'sc_redirected_bytes'), 0);
});

test('half-close: after shutdown(SHUT_WR) the other direction goes on, byte-exact', async () => {
  const srv = await server('sink', ['serve-halfclose', '9002']);
  const c0 = counters();
  assert.equal(client(['halfclose', sinkIp, '9002']), `ok ${3 << 20}`);
  assert.equal(await srv.done, String(1 << 20));
  const c1 = counters();
  assert.ok(delta(c0, c1, 'sc_redirected_bytes') > 0, JSON.stringify(c1));
});

test('sendfile: a file sent with os.sendfile arrives byte-exact', async () => {
  const srv = await server('sink', ['serve-sendfile', '9003', join(www, 'big')]);
  const c0 = counters();
  assert.equal(client(['sendfile', sinkIp, '9003']), `${24 << 20} ${bigSha}`);
  assert.equal(await srv.done, String(24 << 20));
  assert.ok(delta(c0, counters(), 'sc_redirected_bytes') > 0);
});

test('RST: an abortive close resets the peer and leaves the sockhash clean', async () => {
  const before = peersEntries();
  const srv = await server('sink', ['serve-rst', '9004']);
  const c0 = counters();
  assert.equal(client(['rst', sinkIp, '9004']), 'ok');
  const out = await srv.done;
  assert.match(out, /^(reset|eof) 100000$/, out); // every byte before the reset was read
  await new Promise((r) => setTimeout(r, 300));
  const c1 = counters();
  assert.ok(delta(c0, c1, 'sc_redirected') > 0);
  assert.equal(delta(c0, c1, 'sc_removed'), delta(c0, c1, 'sc_inserted'));
  assert.equal(peersEntries(), before);
  const resets = observe('--type', 'close', '--from', 'sc/client', '--to', 'sc/sink').filter((f) => f.destination.port === 9004);
  assert.ok(resets.some((f) => f.reason === 'conn-reset'), JSON.stringify(resets));
});

test('backpressure: a slow reader bounds what the writer can queue; 64 MiB arrive intact', async () => {
  const srv = await server('sink', ['serve-slow', '9005', '1.5']);
  const c0 = counters();
  // TCP memory of the whole host (pages): a shortcut without backpressure
  // would queue the 64 MiB in the reader's socket while it sleeps.
  const tcpPages = () => Number(/TCP: .* mem (\d+)/.exec(readFileSync('/proc/net/sockstat', 'utf8'))![1]);
  const base = tcpPages();
  let peak = base;
  const sampler = setInterval(() => (peak = Math.max(peak, tcpPages())), 20);
  const run = spawn(join(PACKAGE_ROOT, 'bin/ebmesh'), ['--instance', mesh.instance, 'exec', 'client', '--', 'timeout', '120', 'python3', PROG, 'slow', sinkIp, '9005', '64'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  run.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await once(run, 'exit');
  const got = await srv.done;
  clearInterval(sampler);
  assert.equal(got, out.trim(), 'reader got what the writer sent');
  assert.match(got, /^67108864 [0-9a-f]{64}$/);
  const grew = (peak - base) * 4096;
  // Bounded as plain TCP is: the reader's receive buffer (2 MiB set, doubled
  // by the kernel; the shortcut queues no more than it) plus the writer's
  // largest send buffer, and slack for the host's other sockets; without
  // backpressure the 64 MiB would sit in the reader's queue.
  const wmemMax = Number(readFileSync('/proc/sys/net/ipv4/tcp_wmem', 'utf8').trim().split(/\s+/)[2]);
  const bound = 2 * (2 << 20) + wmemMax + (4 << 20);
  process.stdout.write(`# backpressure: host TCP memory grew by ${(grew / 1048576).toFixed(1)} MiB at most while 64 MiB crossed (bound ${(bound / 1048576).toFixed(1)} MiB)\n`);
  assert.ok(bound < 32 << 20, `this host's tcp_wmem maximum (${wmemMax}) is too large for the check to tell a bound from none`);
  assert.ok(grew < bound, `TCP memory grew by ${grew} bytes, more than ${bound}`);
  const c1 = counters();
  assert.ok(delta(c0, c1, 'sc_backpressure') > 0, JSON.stringify(c1));
  assert.ok(delta(c0, c1, 'sc_redirected') > 0);
});

test('200 concurrent connections, 256 KiB each way, all echoed intact', async () => {
  const srv = await server('sink', ['serve-echo', '9006'], 120);
  const c0 = counters();
  assert.equal(client(['echo', sinkIp, '9006', '200', String(256 << 10)]), '200 200');
  assert.ok(delta(c0, counters(), 'sc_redirected') >= 400);
  void srv;
});

test('churn: 2000 short connections, and the sockhash is empty again after', async () => {
  const before = peersEntries();
  const c0 = counters();
  assert.equal(client(['churn', sinkIp, '9006', '2000']), '2000 2000');
  await new Promise((r) => setTimeout(r, 500));
  const c1 = counters();
  assert.ok(delta(c0, c1, 'sc_inserted') >= 4000, JSON.stringify(c1));
  assert.equal(delta(c0, c1, 'sc_removed'), delta(c0, c1, 'sc_inserted'));
  assert.equal(peersEntries(), before);
});

test('a full sockhash: connections beyond it take the normal path, counted, all intact', async () => {
  const c0 = counters();
  // 400 connections at once are 800 mesh sockets: more than the 512 the sockhash holds.
  assert.equal(client(['echo', sinkIp, '9006', '400', String(64 << 10)]), '400 400');
  const c1 = counters();
  assert.ok(delta(c0, c1, 'sc_map_full') > 0, JSON.stringify(c1));
  assert.ok(delta(c0, c1, 'sc_inserted') <= MAX_SOCKETS);
  assert.match(mesh.ok('status'), /same-node shortcut: on; .*refused \(map full\) [1-9]/);
});

test('a Service without endpoints is still refused at connect (decided before the first byte)', () => {
  mesh.ok('apply', '-f', mesh.file('lazy.yaml', serviceWithoutEndpoints('sc')));
  const r = mesh.sh('client', 'curl -s -m 2 http://empty.sc/; echo rc=$?');
  assert.match(r.stdout, /rc=7/);
  assert.equal(observe('--verdict', 'dropped').filter((f) => f.service === 'sc/empty').length, 1);
});

test('sameNodeShortcut: false turns it off for new connections; traffic is unchanged', () => {
  const off = `apiVersion: ebmesh.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  serviceCIDR: ${mesh.serviceCIDR}\n  podCIDR: ${mesh.podCIDR}\n  sameNodeShortcut: false\n`;
  mesh.ok('apply', '-f', mesh.file('off.yaml', off));
  const c0 = counters();
  const r = mesh.sh('client', 'curl -s http://web.sc/big | sha256sum');
  assert.equal(r.stdout.split(' ')[0], bigSha);
  const c1 = counters();
  assert.equal(delta(c0, c1, 'sc_inserted'), 0);
  assert.equal(delta(c0, c1, 'sc_redirected'), 0);
  assert.match(mesh.ok('status'), /same-node shortcut: off/);
  mesh.ok('apply', '-f', mesh.meshConfigFile());
  mesh.sh('client', 'curl -s -o /dev/null http://web.sc/ok');
  assert.ok(delta(c1, counters(), 'sc_inserted') >= 2);
});
