/**
 * The load generator against a real HTTP server on 127.0.0.1 (port 0), at
 * small rates and short durations. Needs the binary from `npm run build`.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { freePort } from './nginx.js';
import { runLoadgen, parseLoadgenOutput, loadgenOutputSchema } from './loadgen.js';
import { isEbmeshError } from '../src/errors.js';

interface TestServer {
  url: string;
  requests: number;
  connections: number;
  close(): Promise<void>;
}

async function serve(handler: (n: number, req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<TestServer> {
  const state = { requests: 0, connections: 0 };
  const server = http.createServer((req, res) => {
    state.requests++;
    handler(state.requests, req, res);
  });
  server.keepAliveTimeout = 30_000;
  server.on('connection', () => { state.connections++; });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/x`,
    get requests() { return state.requests; },
    get connections() { return state.connections; },
    close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

const servers: TestServer[] = [];
let ok: TestServer;
before(async () => {
  ok = await serve((_n, _req, res) => res.end('hello\n'));
  servers.push(ok);
});
after(async () => { await Promise.all(servers.map((s) => s.close())); });

test('open loop: every scheduled request is sent and answered, counts add up', async () => {
  const before = ok.requests;
  const r = await runLoadgen({ url: ok.url, rate: 200, durationS: 1, warmupS: 0.2, connections: 2 });
  assert.equal(r.mode, 'open');
  assert.equal(r.requests.scheduled, 200);
  assert.equal(r.requests.sent, 200);
  assert.equal(r.requests.completed, 200);
  assert.equal(r.requests.errors, 0);
  assert.equal(r.requests.timeouts, 0);
  assert.deepEqual(r.status, { '200': 200 });
  assert.equal(r.latencyUs.count, 200);
  // Warmup requests reach the server but stay out of the figures.
  assert.equal(ok.requests - before, 240);
  assert.equal(r.achievedRate, 200);
  assert.equal(r.belowTarget, false);
  const lat = r.latencyUs;
  assert.ok(lat.min <= lat.p50 && lat.p50 <= lat.p90 && lat.p90 <= lat.p99 && lat.p99 <= lat.p999 && lat.p999 <= lat.max);
  for (let i = 1; i < r.distribution.length; i++) assert.ok(r.distribution[i]![1] >= r.distribution[i - 1]![1]);
  assert.ok(r.command.includes('--rate'));
});

test('a stall is charged to every request scheduled behind it (no coordinated omission)', async () => {
  const slow = await serve((n, _req, res) => {
    if (n === 50) setTimeout(() => res.end('slow\n'), 200);
    else res.end('ok\n');
  });
  servers.push(slow);
  // One connection at 200/s: about 40 requests are scheduled during the 200 ms stall.
  const r = await runLoadgen({ url: slow.url, rate: 200, durationS: 1.5, warmupS: 0, connections: 1 });
  assert.equal(r.requests.completed, 300);
  assert.ok(r.latencyUs.max >= 190_000, `max ${r.latencyUs.max}`);
  // A client that timed from the actual send would see one slow request in
  // 300, leaving p99 and p90 near the normal latency.
  assert.ok(r.latencyUs.p99 >= 100_000, `p99 ${r.latencyUs.p99} µs`);
  assert.ok(r.latencyUs.p90 >= 10_000, `p90 ${r.latencyUs.p90} µs`);
});

test('chunked responses and HEAD are framed correctly', async () => {
  const chunked = await serve((_n, req, res) => {
    if (req.method === 'HEAD') { res.setHeader('content-length', '1000'); res.end(); return; }
    res.write('part one,');
    res.end('part two\n');
  });
  servers.push(chunked);
  const r = await runLoadgen({ url: chunked.url, rate: 100, durationS: 0.5, warmupS: 0, connections: 1 });
  assert.equal(r.requests.completed, 50);
  assert.equal(r.requests.errors, 0);
  const h = await runLoadgen({ url: chunked.url, rate: 100, durationS: 0.3, warmupS: 0, connections: 1, method: 'HEAD' });
  assert.equal(h.requests.completed, 30);
  assert.equal(h.requests.errors + h.requests.timeouts, 0);
});

test('--connect-each opens one connection per request', async () => {
  const s = await serve((_n, _req, res) => res.end('ok\n'));
  servers.push(s);
  const r = await runLoadgen({ url: s.url, rate: 100, durationS: 0.5, warmupS: 0, connections: 2, connectEach: true });
  assert.equal(r.requests.completed, 50);
  assert.equal(s.connections, 50);
  assert.equal(r.raw.connects, 50);
});

test('closed loop is bounded by --max-requests and reports no target', async () => {
  const r = await runLoadgen({ url: ok.url, rate: 0, durationS: 2, warmupS: 0, connections: 2, maxRequests: 300 });
  assert.equal(r.mode, 'closed');
  assert.equal(r.belowTarget, false);
  assert.ok(r.requests.completed > 0 && r.requests.completed <= 300, String(r.requests.completed));
  assert.ok(r.achievedRate > 0);
});

test('a refused connection is an error, not a hang', async () => {
  const port = await freePort();
  const r = await runLoadgen({ url: `http://127.0.0.1:${port}/`, rate: 50, durationS: 0.2, warmupS: 0, connections: 1, timeoutMs: 500 });
  assert.equal(r.requests.completed, 0);
  assert.equal(r.requests.errors, 10);
  assert.equal(r.errors.connect, 10);
  assert.equal(r.belowTarget, true);
});

test('a server that never answers produces timeouts within the bound', async () => {
  const mute = await serve(() => { /* never answers */ });
  servers.push(mute);
  const t0 = Date.now();
  const r = await runLoadgen({ url: mute.url, rate: 20, durationS: 0.5, warmupS: 0, connections: 2, timeoutMs: 200 });
  assert.equal(r.requests.completed, 0);
  assert.equal(r.requests.timeouts, 10);
  assert.ok(Date.now() - t0 < 5000);
});

test('bad options fail with a stable code', async () => {
  await assert.rejects(runLoadgen({ url: 'http://localhost:80/', rate: 1, durationS: 0.1, connections: 1 }), (e) => isEbmeshError(e, 'EBMESH_BENCH_LOADGEN_FAILED') && /numeric IPv4/.test(e.message));
  await assert.rejects(runLoadgen({ url: 'http://[::1/', rate: 1, durationS: 0.1, connections: 1 }), (e) => isEbmeshError(e, 'EBMESH_BENCH_LOADGEN_FAILED') && /\[address\]/.test(e.message));
  await assert.rejects(runLoadgen({ url: 'http://[fd00::zz]:80/', rate: 1, durationS: 0.1, connections: 1 }), (e) => isEbmeshError(e, 'EBMESH_BENCH_LOADGEN_FAILED') && /numeric IPv6/.test(e.message));
  await assert.rejects(runLoadgen({ url: ok.url, rate: 1, durationS: 0.1, connections: 1, binary: '/nonexistent/loadgen' }), (e) => isEbmeshError(e, 'EBMESH_BENCH_LOADGEN_MISSING'));
});

test('output that breaks the schema is rejected with the field named', () => {
  assert.throws(() => parseLoadgenOutput('{"tool":"ebmesh-loadgen"}', []), (e) => isEbmeshError(e, 'EBMESH_BENCH_LOADGEN_OUTPUT'));
  assert.throws(() => parseLoadgenOutput('not json', []), (e) => isEbmeshError(e, 'EBMESH_BENCH_LOADGEN_OUTPUT'));
  assert.ok(loadgenOutputSchema);
});

test('an IPv6 URL ([::1]:port) is loaded over IPv6, the Host header as written', async () => {
  let host = '';
  let family = '';
  const server = http.createServer((req, res) => { host = req.headers.host ?? ''; family = req.socket.remoteFamily ?? ''; res.end('six\n'); });
  await new Promise<void>((r) => server.listen(0, '::1', r));
  try {
    const port = (server.address() as AddressInfo).port;
    const r = await runLoadgen({ url: `http://[::1]:${port}/x`, rate: 50, durationS: 0.2, warmupS: 0, connections: 1 });
    assert.equal(r.requests.completed, 10);
    assert.equal(r.requests.errors, 0);
    assert.equal(family, 'IPv6');
    assert.equal(host, `[::1]:${port}`);
  } finally {
    await new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); });
  }
});
