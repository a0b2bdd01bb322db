/**
 * The API server on a real unix socket with a small route table: what the
 * node API's fuzzing found (test/fuzz/targets/node-api.ts) stays fixed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Server } from 'node:http';
import { z } from 'zod';
import { defineRoute } from './route.js';
import { serve, startServer, stopServer } from './server.js';

const dir = mkdtempSync(join(tmpdir(), `ebmesh-api-server-${process.pid}-`));
const socket = join(dir, 'api.sock');
const routes = {
  echo: defineRoute({ method: 'POST', path: '/v1/echo', input: z.object({ text: z.string() }).strict(), output: z.object({ text: z.string() }), summary: 'echo' }),
  status: defineRoute({ method: 'GET', path: '/v1/status', input: z.object({}).passthrough(), output: z.object({ ok: z.literal(true) }), summary: 'status' }),
};
let server: Server;

before(async () => {
  server = await startServer({ socketPath: socket }, [serve(routes, { echo: async ({ text }) => ({ text }), status: async () => ({ ok: true as const }) })]);
});
after(() => {
  stopServer(server);
  rmSync(dir, { recursive: true, force: true });
});

/** Raw bytes in, the whole answer out (the server closes or answers with a length). */
function raw(bytes: string): Promise<{ status: number; body: Record<string, any> }> {
  return new Promise((resolve, reject) => {
    const s = connect(socket);
    let text = '';
    s.on('data', (d) => { text += d; });
    s.on('error', reject);
    s.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      const body = text.slice(text.indexOf('\r\n\r\n') + 4);
      resolve({ status, body: JSON.parse(body) as Record<string, any> });
    });
    s.end(bytes);
  });
}

test('a request-target new URL() cannot read is a JSON 404, and the server goes on (it was an unhandled rejection)', async () => {
  const r = await raw('GET //////%F4%84%8F%89/?2E=1e999 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.equal(r.status, 404);
  assert.equal(r.body.error.code, 'EBMESH_NOT_FOUND');
  // "//host/v1/status" is not /v1/status.
  assert.equal((await raw('GET //host/v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).status, 404);
  assert.equal((await raw('GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).status, 200);
});

test('a body that is not a JSON object, or not JSON, names the route', async () => {
  for (const body of ['[1,2]', '{"text":', '"x"']) {
    const r = await raw(`POST /v1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
    assert.equal(r.status, 400, body);
    assert.equal(r.body.error.where, 'POST /v1/echo', body);
  }
});

test('what Node\'s HTTP parser refuses is answered as a JSON error too', async () => {
  const r = await raw('GET ?x=1 HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.equal(r.status, 400);
  assert.equal(r.body.error.code, 'EBMESH_USAGE');
  assert.equal(r.body.error.where, 'the request line and headers');
});
