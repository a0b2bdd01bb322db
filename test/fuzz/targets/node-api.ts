/**
 * The node API as the embedded node daemon serves it (src/api/server.ts
 * with the real mesh and node route tables and their handlers), on a real
 * daemon (`ebmesh up`, root) of an instance of its own. Inputs: requests
 * made from the route tables — their methods and paths, path parameters,
 * query keys and body fields from each route's input schema — with odd
 * values, other methods, mangled paths (extra or missing segments,
 * %-escapes that decode to nothing, long ones), bodies that are not JSON
 * or not an object.
 *
 * What must hold: an answer within 5 s; a 200 is JSON (a stream is
 * NDJSON); anything else is `{ error: { code, message, where? } }` with a
 * catalogued code, never EBMESH_INTERNAL (a handler that threw), naming
 * what (the message) and where (the route, or the path in the message);
 * and the daemon answers its status afterwards.
 *
 * Left out: POST /v1/shutdown and /v1/proxy/restart (they stop or restart
 * what is being fuzzed, by design).
 */
import fc from 'fast-check';
import http from 'node:http';
import { z } from 'zod';
import { isErrorCode } from '../../../src/errors.js';
import { instancePaths } from '../../../src/paths.js';
import { meshApi } from '../../../src/api/mesh.js';
import { nodeApi } from '../../../src/api/node.js';
import { pathParams, type RouteSpec } from '../../../src/api/route.js';
import { TestMesh } from '../../helpers/mesh.js';
import { within, type FuzzTarget } from '../fuzz.js';

const LEFT_OUT = new Set(['POST /v1/shutdown', 'POST /v1/proxy/restart']);
const routes: RouteSpec[] = [...Object.values(meshApi), ...Object.values(nodeApi)].filter((r) => !LEFT_OUT.has(`${r.method} ${r.path}`));

interface Ctx { mesh: TestMesh; socket: string; n: number }
interface Input { method: string; path: string; query: Array<[string, string]>; body?: string }

/** The field names a route's input schema knows. */
function fieldsOf(r: RouteSpec): string[] {
  let s: z.ZodTypeAny = r.input;
  while (s instanceof z.ZodEffects) s = s.innerType();
  return s instanceof z.ZodObject ? Object.keys(s.shape as object) : [];
}

const oddString = fc.oneof(
  fc.constantFrom('', '0', '-1', '1', '20', '1e999', 'NaN', 'true', 'null', '1', '999999999999', 'demo/web', 'demo/web:80/TCP', 'svc:demo/web', 'x>y', '%', '%zz', '\u0000', 'é', 'a'.repeat(5000), '../../etc/passwd'),
  fc.string({ maxLength: 30 }),
);
const oddJson = fc.oneof(fc.jsonValue({ maxDepth: 3 }), oddString, fc.constantFrom(true, false, null, -1, 1.5, 2 ** 53));

function request(socketPath: string, i: Input): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const q = new URLSearchParams(i.query).toString();
    let answered = false;
    // A connection of its own (no agent), and the body framed (Node frames a GET's body by neither length nor chunks).
    const headers = { 'content-type': 'application/json', ...(i.body !== undefined ? { 'content-length': Buffer.byteLength(i.body) } : {}) };
    const req = http.request({ socketPath, agent: false, method: i.method, path: q ? `${i.path}?${q}` : i.path, headers }, (res) => {
      answered = true;
      let body = '';
      res.setEncoding('utf8');
      const stream = String(res.headers['content-type']).includes('ndjson');
      // A stream whose filter matches nothing yet sends no line: its headers are its answer, the lines come within a short wait or not at all.
      if (stream) setTimeout(() => res.destroy(), 300).unref();
      res.on('data', (d: string) => {
        body += d;
        // A stream answers line by line until one side closes: its first line is enough.
        if (stream && body.includes('\n')) res.destroy();
      });
      const done = () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body });
      res.on('end', done);
      res.on('close', done);
      res.on('error', () => undefined);
    });
    // A server may answer (a 404, a refusal) before it read the whole body and close: the rest of the body then meets EPIPE.
    req.on('error', (e: NodeJS.ErrnoException) => { if (e.code !== 'EPIPE' && e.code !== 'ECONNRESET') reject(e); });
    req.on('close', () => { if (!answered) reject(new Error(`${i.method} ${i.path}: the connection closed without an answer`)); });
    req.end(i.body);
  });
}

export const nodeApiTarget: FuzzTarget<Input, Ctx> = {
  name: 'node-api',
  what: 'the embedded node daemon\'s API from its route tables: an answer within 5 s, JSON on 200, else an error with a catalogued code naming what and where, never EBMESH_INTERNAL',
  async setup() {
    const mesh = new TestMesh('fuzzapi');
    mesh.ok('up', '-f', mesh.meshConfigFile());
    return { mesh, socket: instancePaths(mesh.instance).apiSocket, n: 0 };
  },
  async teardown(ctx) {
    ctx.mesh.down();
  },
  seed: (text) => JSON.parse(text) as Input,
  inputs(seeds) {
    const fromRoute = fc.constantFrom(...routes).chain((r) => {
      const fields = fieldsOf(r);
      const params = pathParams(r.path);
      const key = fields.length ? fc.oneof({ arbitrary: fc.constantFrom(...fields), weight: 4 }, { arbitrary: fc.string({ maxLength: 8 }), weight: 1 }) : fc.string({ maxLength: 8 });
      const path = fc.tuple(fc.array(fc.oneof(oddString.map(encodeURIComponent), oddString), { minLength: params.length, maxLength: params.length }), fc.constantFrom('', '', '', '/', '/x', '//', '%2F'))
        .map(([vals, tail]) => { let k = 0; return r.path.replace(/:[A-Za-z0-9]+/g, () => vals[k++] ?? '') + tail; });
      const method = fc.oneof({ arbitrary: fc.constant(r.method), weight: 6 }, { arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'), weight: 1 });
      const query = fc.array(fc.tuple(key, oddString), { maxLength: 4 });
      const body = fc.oneof(
        fc.dictionary(key, oddJson, { maxKeys: 4 }).map((o) => JSON.stringify(o)),
        oddJson.map((v) => JSON.stringify(v)),
        fc.constantFrom('', '{', '{"a":', '[]', 'null', '"x"', '{"__proto__": {"x": 1}}', '\u0000', '{}'),
        fc.string({ maxLength: 40 }),
      );
      return fc.record({ method, path, query, body: fc.option(body, { nil: undefined }) });
    });
    const anyPath = fc.record({
      method: fc.oneof(fc.constantFrom('GET', 'POST'), fc.stringMatching(/^[A-Z]{1,8}$/)),
      path: fc.oneof(fc.constantFrom('/', '/v1', '/v1/', '/v2/status', '/v1/status/', '//v1/status', '/v1/../v1/status', '/v1/%', '/v1/%zz'), fc.webPath()),
      query: fc.array(fc.tuple(fc.string({ maxLength: 8 }), oddString), { maxLength: 3 }),
      body: fc.option(fc.string({ maxLength: 40 }), { nil: undefined }),
    });
    const made = fc.oneof({ arbitrary: fromRoute, weight: 8 }, { arbitrary: anyPath, weight: 2 });
    return seeds.length ? fc.oneof({ arbitrary: made, weight: 9 }, { arbitrary: fc.constantFrom(...seeds), weight: 1 }) : made;
  },
  async check(ctx, i) {
    const what = `${i.method} ${i.path}`;
    const r = await within(request(ctx.socket, i), 5000, `an answer to ${what}`);
    if (i.method === 'HEAD') return; // no body by definition
    if (r.status === 200) {
      const lines = r.type.includes('ndjson') ? r.body.split('\n').filter(Boolean) : [r.body];
      for (const l of lines) JSON.parse(l);
    } else {
      let body: { error?: { code?: unknown; message?: unknown; where?: unknown } };
      try {
        body = JSON.parse(r.body) as typeof body;
      } catch {
        throw new Error(`${what} answered ${r.status} with a body that is not JSON: ${JSON.stringify(r.body.slice(0, 120))}`);
      }
      const e = body.error;
      if (!e || !isErrorCode(e.code) || typeof e.message !== 'string' || !e.message) throw new Error(`${what} answered ${r.status} without a catalogued error: ${r.body.slice(0, 200)}`);
      if (e.code === 'EBMESH_INTERNAL') throw new Error(`${what} made a handler throw: ${e.message}`);
      const pathname = i.path.split('?')[0]!;
      if (!e.where && !e.message.includes(pathname) && !/^\S+:\d+: /.test(e.message)) throw new Error(`${what}: the error does not say where: ${r.body.slice(0, 200)}`);
    }
    if (++ctx.n % 25 === 0) {
      const st = await within(request(ctx.socket, { method: 'GET', path: '/v1/status', query: [] }), 5000, 'the status after the fuzzed requests');
      if (st.status !== 200) throw new Error(`the status answered ${st.status} after the fuzzed requests: ${st.body.slice(0, 200)}`);
    }
  },
};
