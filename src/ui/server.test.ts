import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startUiServer } from './server.js';

// A stand-in node API on a unix socket: answers JSON, streams NDJSON, records what reached it.
const dir = mkdtempSync(join(tmpdir(), `ebmesh-ui-${process.pid}-`));
const sock = join(dir, 'api.sock');
const staticDir = join(dir, 'static');
const seen: string[] = [];
let api: Server;
let ui: Server;
let base = '';
let loginUrl = '';
const TOKEN = 'a-test-token-of-enough-length';
let cookieHeader = '';

before(async () => {
  mkdirSync(join(staticDir, 'assets'), { recursive: true });
  writeFileSync(join(staticDir, 'index.html'), '<!doctype html><title>ebmesh</title>');
  writeFileSync(join(staticDir, 'assets', 'app-1234.js'), 'console.log(1)');
  writeFileSync(join(dir, 'secret'), 'no');
  api = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (req.url?.startsWith('/v1/flows?follow=1')) {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write('{"n":1}\n');
      setTimeout(() => res.end('{"n":2}\n'), 50);
      return;
    }
    const body = JSON.stringify({ path: req.url });
    res.writeHead(req.url === '/v1/missing' ? 404 : 200, { 'content-type': 'application/json' });
    res.end(body);
  });
  await new Promise<void>((r) => api.listen(sock, r));
  const s = await startUiServer({ socketPath: sock, staticDir, port: 0, token: TOKEN });
  ui = s.server;
  base = s.url;
  loginUrl = s.loginUrl;
  cookieHeader = `ebmesh_ui_${new URL(base).port}=${TOKEN}`;
});

after(async () => {
  ui?.closeAllConnections();
  await new Promise((r) => ui?.close(r));
  await new Promise((r) => api?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

/** A request as the browser sends it once logged in (the cookie); cookie: null sends none. */
function get(path: string, opts: { method?: string; host?: string; cookie?: string | null; authorization?: string } = {}): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  const u = new URL(path, base);
  const headers: Record<string, string> = {
    ...(opts.host ? { host: opts.host } : {}),
    ...(opts.cookie === null ? {} : { cookie: opts.cookie ?? cookieHeader }),
    ...(opts.authorization ? { authorization: opts.authorization } : {}),
  };
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: opts.method ?? 'GET', headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('listens on the loopback and says where', () => {
  assert.match(base, /^http:\/\/127\.0\.0\.1:\d+\/$/);
});

test('serves the bundle; unknown app paths get the page, unknown files 404; no way out of the bundle', async () => {
  const index = await get('/');
  assert.equal(index.status, 200);
  assert.match(String(index.headers['content-type']), /text\/html/);
  assert.equal(index.headers['cache-control'], 'no-cache');
  const asset = await get('/assets/app-1234.js');
  assert.equal(asset.status, 200);
  assert.match(String(asset.headers['cache-control']), /immutable/);
  assert.equal((await get('/flows')).body, index.body);
  assert.equal((await get('/nope.js')).status, 404);
  for (const p of ['/../secret', '/%2e%2e/secret', '/assets/%2e%2e/%2e%2e/secret', '/..%2fsecret']) {
    assert.notEqual((await get(p)).body, 'no', p);
  }
});

test('forwards GET /api/* to the node socket, query included, status kept', async () => {
  const r = await get('/api/v1/servicemap?window=60');
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.body), { path: '/v1/servicemap?window=60' });
  assert.equal(r.headers['cache-control'], 'no-store');
  assert.equal((await get('/api/v1/missing')).status, 404);
});

test('streams NDJSON through as it comes', async () => {
  const r = await get('/api/v1/flows?follow=1');
  assert.equal(r.body, '{"n":1}\n{"n":2}\n');
  assert.match(String(r.headers['content-type']), /ndjson/);
});

test('read-only: anything but GET/HEAD never reaches the node', async () => {
  const before = seen.length;
  for (const m of ['POST', 'PUT', 'DELETE']) {
    const r = await get('/api/v1/apply', { method: m });
    assert.equal(r.status, 405);
    assert.equal(JSON.parse(r.body).error.code, 'EBMESH_READ_ONLY');
  }
  assert.equal(seen.length, before);
});

test('a Host that is not the loopback is refused (DNS rebinding)', async () => {
  const before = seen.length;
  assert.equal((await get('/api/v1/status', { host: 'evil.example:9900' })).status, 403);
  assert.equal((await get('/', { host: 'evil.example' })).status, 403);
  assert.equal((await get('/api/v1/status', { host: 'localhost:9900' })).status, 200);
  assert.equal(seen.length, before + 1);
});

test('without its token nothing is served: not the page, not the API; a wrong token is no better', async () => {
  const before = seen.length;
  for (const path of ['/', '/assets/app-1234.js', '/api/v1/status', '/api/v1/flows?follow=1']) {
    for (const opts of [{ cookie: null }, { cookie: `ebmesh_ui_${new URL(base).port}=wrong-token-wrong-token` }, { cookie: null, authorization: 'Bearer wrong-token-wrong-token' }] as const) {
      const r = await get(path, opts);
      assert.equal(r.status, 401, `${path} ${JSON.stringify(opts)}`);
      assert.doesNotMatch(r.body, /ebmesh<\/title>|console\.log|"path"/);
    }
  }
  const wrongInUrl = await get('/?token=wrong-token-wrong-token', { cookie: null });
  assert.equal(wrongInUrl.status, 401);
  assert.equal(wrongInUrl.headers['set-cookie'], undefined);
  assert.equal(seen.length, before, 'nothing reached the node');
  assert.equal(JSON.parse((await get('/api/v1/status', { cookie: null })).body).error.code, 'EBMESH_UNAUTHENTICATED');
});

test('the token in the address becomes a cookie (HttpOnly, SameSite=Strict) and leaves the address; a script may send it as a bearer', async () => {
  const u = new URL(loginUrl);
  const r = await get(`${u.pathname}flows${u.search}&window=60`, { cookie: null });
  assert.equal(r.status, 302);
  assert.equal(r.headers.location, '/flows?window=60');
  const set = String(r.headers['set-cookie']);
  assert.match(set, new RegExp(`^ebmesh_ui_${u.port}=${TOKEN};`));
  assert.match(set, /HttpOnly/);
  assert.match(set, /SameSite=Strict/);
  assert.equal((await get('/', { cookie: set.split(';')[0]! })).status, 200);
  assert.equal((await get('/api/v1/status', { cookie: null, authorization: `Bearer ${TOKEN}` })).status, 200);
});

test('a request-target that is no URL path gets an answer, and the server goes on', async () => {
  // new URL('//%F4%84%8F%89/', base) throws: it took the UI server down (found by fuzzing the node API's server).
  for (const path of ['//%F4%84%8F%89/', '//host/api/v1/status']) {
    const status = await new Promise<number>((resolve, reject) => {
      const u = new URL(base);
      const req = request({ host: u.hostname, port: u.port, path, headers: { authorization: `Bearer ${TOKEN}` } }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)); });
      req.on('error', reject);
      req.end();
    });
    assert.ok(status === 200 || status === 404, `${path}: ${status}`);
  }
  assert.equal((await get('/api/v1/status')).status, 200);
});

test('the node down is a 503 with a code the page can show', async () => {
  const s = await startUiServer({ socketPath: join(dir, 'absent.sock'), staticDir, port: 0, token: TOKEN });
  try {
    const u = new URL('/api/v1/status', s.url);
    const r = await fetch(u, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(r.status, 503);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'EBMESH_NOT_RUNNING');
  } finally {
    await new Promise((r) => s.server.close(r));
  }
});
