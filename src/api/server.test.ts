import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { EbmeshError } from '../errors.js';
import { ApiClient } from './client.js';
import { nodeTransport } from './node-transport.js';
import { defineRoute, defineStream, noInput } from './route.js';
import { serve, startServer, stopServer } from './server.js';

const table = {
  add: defineRoute({ method: 'POST', path: '/v1/add', input: z.object({ a: z.number(), b: z.number() }).strict(), output: z.object({ sum: z.number() }), summary: 'a + b' }),
  item: defineRoute({ method: 'GET', path: '/v1/items/:name', input: z.object({ name: z.string(), limit: z.coerce.number().int().default(5) }), output: z.object({ name: z.string(), limit: z.number() }), summary: 'one item' }),
  missing: defineRoute({ method: 'GET', path: '/v1/missing', input: noInput.passthrough(), output: z.object({}), summary: 'always not found' }),
  lies: defineRoute({ method: 'GET', path: '/v1/lies', input: noInput.passthrough(), output: z.object({ n: z.number() }), summary: 'answers out of contract' }),
  count: defineStream({ method: 'GET', path: '/v1/count', input: z.object({ to: z.coerce.number().int().min(1).max(10) }), output: z.object({ i: z.number() }), summary: 'a stream' }),
};

const dir = mkdtempSync(join(tmpdir(), `ebmesh-api-${process.pid}-`));
const socketPath = join(dir, 'run', 'api.sock');
const server = await startServer({ socketPath }, [serve(table, {
  add: async ({ a, b }) => ({ sum: a + b }),
  item: async ({ name, limit }) => ({ name, limit }),
  missing: async () => { throw new EbmeshError('EBMESH_NOT_FOUND', 'nothing here'); },
  // An answer out of its own contract, as a handler with a bug would give (JSON.parse is untyped).
  lies: async () => JSON.parse('{"n": "not a number"}'),
  count: ({ to }, res) => {
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    for (let i = 1; i <= to; i++) res.write(`${JSON.stringify({ i })}\n`);
    res.end();
  },
})]);
const client = new ApiClient(nodeTransport({ socketPath }, { peer: 'the test server', unreachable: () => new EbmeshError('EBMESH_NOT_RUNNING', 'down') }));
after(() => {
  stopServer(server);
  rmSync(dir, { recursive: true, force: true });
});

test('a call goes by its declaration: body, path parameters and query, typed and checked both ways', async () => {
  assert.deepEqual(await client.call(table.add, { a: 2, b: 3 }), { sum: 5 });
  assert.deepEqual(await client.call(table.item, { name: 'a b/c', limit: 7 }), { name: 'a b/c', limit: 7 });
  assert.deepEqual(await client.call(table.item, { name: 'x' }), { name: 'x', limit: 5 }, 'the schema default');
});

test('bad input is a 400 that names the field; an unknown field of a strict body too; nothing runs', async () => {
  await assert.rejects(client.call(table.add, { a: 2, b: JSON.parse('"x"') }), (e: EbmeshError) => e.code === 'EBMESH_USAGE' && /request\.b: Expected number/.test(e.message) && /POST \/v1\/add/.test(e.message));
  const raw = await nodeTransport({ socketPath }, { peer: 't', unreachable: () => new EbmeshError('EBMESH_NOT_RUNNING', 'down') })
    .request('POST', '/v1/add', JSON.stringify({ a: 1, b: 2, c: 3 }), 5000);
  assert.equal(raw.status, 400);
  assert.match(raw.text, /Unrecognized key\(s\) in object: 'c'/);
  const notJson = await nodeTransport({ socketPath }, { peer: 't', unreachable: () => new EbmeshError('EBMESH_NOT_RUNNING', 'down') })
    .request('POST', '/v1/add', '{', 5000);
  assert.equal(notJson.status, 400);
  assert.match(notJson.text, /EBMESH_USAGE.*not JSON/);
});

test('errors keep their code and the status the catalogue gives it; an unknown route is a 404; an answer out of contract is refused by the client', async () => {
  await assert.rejects(client.call(table.missing, {}), (e: EbmeshError) => e.code === 'EBMESH_NOT_FOUND' && e.message === 'nothing here');
  const raw = await nodeTransport({ socketPath }, { peer: 't', unreachable: () => new EbmeshError('EBMESH_NOT_RUNNING', 'down') }).request('GET', '/v1/nope', undefined, 5000);
  assert.equal(raw.status, 404);
  await assert.rejects(client.call(table.lies, {}), (e: EbmeshError) => e.code === 'EBMESH_API' && /answer out of contract: answer\.n/.test(e.message));
});

test('a stream route answers line by line, each line checked', async () => {
  const got: number[] = [];
  await client.follow(table.count, { to: 3 }, (x) => got.push(x.i));
  assert.deepEqual(got, [1, 2, 3]);
});

test('the socket is root\'s alone, in a directory only root can enter', () => {
  assert.equal(statSync(socketPath).mode & 0o777, 0o600);
  assert.equal(statSync(join(dir, 'run')).mode & 0o777, 0o700);
});

test('a server that is not there is the caller\'s own "unreachable" error', async () => {
  const gone = new ApiClient(nodeTransport({ socketPath: join(dir, 'nobody.sock') }, { peer: 'nobody', unreachable: () => new EbmeshError('EBMESH_NOT_RUNNING', 'not running') }));
  await assert.rejects(gone.call(table.add, { a: 1, b: 1 }), (e: EbmeshError) => e.code === 'EBMESH_NOT_RUNNING');
});
