import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import diagnostics_channel from 'node:diagnostics_channel';
import { request, route, startBackend, startProxy, svc, to, dial, type Backend, type Started } from './harness.js';

const VIP = '10.96.0.10';

describe('HTTP/1.1 proxying and routing', () => {
  let a: Backend, b: Backend, c: Backend, p: Started;
  before(async () => {
    a = await startBackend('a');
    b = await startBackend('b');
    c = await startBackend('c');
    p = await startProxy({
      services: [svc('web', VIP, 80, [a]), svc('web-b', '10.96.0.11', 80, [b]), svc('web-c', '10.96.0.12', 80, [c])],
      httpRoutes: [
        route('web', 'web', [
          { matches: [{ path: { type: 'PathPrefix', value: '/api' } }], backendRefs: [{ name: 'web-b', port: 80 }] },
          { matches: [{ path: { type: 'Exact', value: '/api/exact' } }], backendRefs: [{ name: 'web-c', port: 80 }] },
          { matches: [{ path: { type: 'PathPrefix', value: '/api' }, headers: [{ name: 'x-canary', value: 'yes' }] }], backendRefs: [{ name: 'web-c', port: 80 }] },
          { matches: [{ path: { type: 'RegularExpression', value: '/items/[0-9]+' } }], backendRefs: [{ name: 'web-c', port: 80 }] },
          { matches: [{ path: { type: 'PathPrefix', value: '/q' }, queryParams: [{ name: 'v', value: '2' }], method: 'POST' }], backendRefs: [{ name: 'web-c', port: 80 }] },
          {
            matches: [{ path: { type: 'PathPrefix', value: '/old' } }],
            filters: [{ type: 'RequestRedirect', requestRedirect: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/new' }, statusCode: 301 } }],
          },
          {
            matches: [{ path: { type: 'PathPrefix', value: '/rw' } }],
            filters: [
              { type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/v2' }, hostname: 'internal.example' } },
              { type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-set', value: 's' }], add: [{ name: 'x-add', value: 'a' }], remove: ['x-drop'] } },
              { type: 'ResponseHeaderModifier', responseHeaderModifier: { set: [{ name: 'x-resp', value: 'r' }], remove: ['x-backend'] } },
            ],
            backendRefs: [{ name: 'web-b', port: 80 }],
          },
          {
            // Filters on the backendRef only (Gateway API's MeshHTTPRouteBackendRequestHeaderModifier).
            matches: [{ path: { type: 'PathPrefix', value: '/per-backend' } }],
            backendRefs: [
              {
                name: 'web-c',
                port: 80,
                filters: [
                  { type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-set', value: 'c' }], add: [{ name: 'x-add', value: 'c' }], remove: ['x-drop'] } },
                  { type: 'ResponseHeaderModifier', responseHeaderModifier: { set: [{ name: 'x-resp', value: 'c' }] } },
                ],
              },
            ],
          },
          {
            // The rule's filters, then the chosen backendRef's.
            matches: [{ path: { type: 'PathPrefix', value: '/both' } }],
            filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-set', value: 'rule' }], add: [{ name: 'x-add', value: 'rule' }] } }],
            backendRefs: [{ name: 'web-b', port: 80, filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-set', value: 'b' }], add: [{ name: 'x-add', value: 'b' }] } }] }],
          },
          { matches: [{ path: { type: 'PathPrefix', value: '/' } }], backendRefs: [{ name: 'web', port: 80 }] },
        ]),
      ],
    });
  });
  after(async () => {
    await p.proxy.close();
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  it('routes by Gateway API precedence: exact > regex > prefix, longer prefix, more headers, method/query', async () => {
    const at = to(VIP, 80);
    assert.equal(JSON.parse((await request(p, at, { path: '/api/exact' })).body).backend, 'c');
    assert.equal(JSON.parse((await request(p, at, { path: '/api/other' })).body).backend, 'b');
    assert.equal(JSON.parse((await request(p, at, { path: '/api/other', headers: { 'x-canary': 'yes' } })).body).backend, 'c');
    assert.equal(JSON.parse((await request(p, at, { path: '/apix' })).body).backend, 'a', 'prefix matches whole path elements only');
    assert.equal(JSON.parse((await request(p, at, { path: '/items/42' })).body).backend, 'c');
    assert.equal(JSON.parse((await request(p, at, { path: '/items/abc' })).body).backend, 'a');
    assert.equal(JSON.parse((await request(p, at, { path: '/q?v=2', method: 'POST', body: 'x' })).body).backend, 'c');
    assert.equal(JSON.parse((await request(p, at, { path: '/q?v=2' })).body).backend, 'a', 'method must match too');
  });

  it('redirects, rewrites URL and host, and modifies request and response headers', async () => {
    const at = to(VIP, 80);
    const r = await request(p, at, { path: '/old/x?y=1', host: 'web.local:8080' });
    assert.equal(r.status, 301);
    assert.equal(r.headers.location, 'http://web.local:8080/new/x?y=1');
    const w = await request(p, at, { path: '/rw/thing?k=v', headers: { 'x-drop': '1', 'x-add': 'orig' } });
    const echo = JSON.parse(w.body);
    assert.equal(echo.backend, 'b');
    assert.equal(echo.url, '/v2/thing?k=v');
    assert.equal(echo.headers.host, 'internal.example');
    assert.equal(echo.headers['x-set'], 's');
    assert.equal(echo.headers['x-add'], 'orig, a');
    assert.equal(echo.headers['x-drop'], undefined);
    assert.equal(w.headers['x-resp'], 'r');
    assert.equal(w.headers['x-backend'], undefined);
  });

  it("applies a backendRef's own header filters to the requests it gets, after the rule's", async () => {
    const at = to(VIP, 80);
    const r = await request(p, at, { path: '/per-backend/x', headers: { 'x-drop': '1', 'x-set': 'orig', 'x-add': 'orig' } });
    const echo = JSON.parse(r.body);
    assert.equal(echo.backend, 'c');
    assert.equal(echo.headers['x-set'], 'c');
    assert.equal(echo.headers['x-add'], 'orig, c');
    assert.equal(echo.headers['x-drop'], undefined);
    assert.equal(r.headers['x-resp'], 'c');
    const both = JSON.parse((await request(p, at, { path: '/both' })).body);
    assert.equal(both.backend, 'b');
    assert.equal(both.headers['x-set'], 'b', "the backendRef's set comes last");
    assert.equal(both.headers['x-add'], 'rule, b');
  });

  it('keeps client connections alive and streams chunked bodies both ways', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set<unknown>();
    const orig = to(VIP, 80);
    const createConnection = (() => {
      const s = dial(p, orig);
      sockets.add(s);
      return s;
    }) as never;
    // http.Agent's createConnection is Node's own hook, absent from its typings.
    (agent as unknown as { createConnection: unknown }).createConnection = createConnection;
    for (let i = 0; i < 3; i++) {
      const r = await request(p, orig, { path: `/ka/${i}`, agent });
      assert.equal(r.status, 200);
    }
    assert.equal(sockets.size, 1, 'three requests over one client connection');
    // chunked request body (no content-length) is forwarded intact
    const body = await new Promise<string>((resolve, reject) => {
      const req = http.request({ method: 'POST', path: '/chunked', headers: { host: 'web' }, agent, createConnection }, (res) => {
        assert.equal(res.headers['transfer-encoding'], undefined === res.headers['content-length'] ? 'chunked' : res.headers['transfer-encoding']);
        let d = '';
        res.on('data', (c) => (d += c));
        res.on('end', () => resolve(d));
      });
      req.on('error', reject);
      req.write('hello ');
      setTimeout(() => req.end('world'), 20);
    });
    assert.equal(JSON.parse(body).body, 'hello world');
    assert.equal(JSON.parse(body).headers['transfer-encoding'], 'chunked');
    agent.destroy();
  });

  it('reloads routes with update() without dropping an open keep-alive connection', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    let dials = 0;
    const orig = to('10.96.0.11', 80);
    // http.Agent's createConnection is Node's own hook, absent from its typings.
    (agent as unknown as { createConnection: unknown }).createConnection = () => {
      dials++;
      return dial(p, orig);
    };
    assert.equal(JSON.parse((await request(p, orig, { path: '/x', agent })).body).backend, 'b');
    p.proxy.update({
      services: [svc('web', VIP, 80, [a]), svc('web-b', '10.96.0.11', 80, [b]), svc('web-c', '10.96.0.12', 80, [c])],
      httpRoutes: [route('b-to-c', 'web-b', [{ backendRefs: [{ name: 'web-c', port: 80 }] }])],
    });
    assert.equal(JSON.parse((await request(p, orig, { path: '/x', agent })).body).backend, 'c');
    assert.equal(dials, 1, 'same client connection before and after the update');
    assert.throws(() => p.proxy.update({ services: [], httpRoutes: [{ kind: 'HTTPRoute' } as never] }), { code: 'EBMESH_PROXY_CONFIG_INVALID' });
    assert.equal(JSON.parse((await request(p, orig, { path: '/x', agent })).body).backend, 'c', 'a bad update changes nothing');
    agent.destroy();
    p.proxy.update({
      services: [svc('web', VIP, 80, [a]), svc('web-b', '10.96.0.11', 80, [b]), svc('web-c', '10.96.0.12', 80, [c])],
    });
  });

  it('publishes a request-done event on ebmesh:proxy:request', async () => {
    const events: { route?: string; status: number; backend?: string }[] = [];
    const on = (m: unknown): void => void events.push(m as never);
    diagnostics_channel.subscribe('ebmesh:proxy:request', on);
    await request(p, to('10.96.0.12', 80), { path: '/evt' });
    await new Promise((r) => setTimeout(r, 20));
    diagnostics_channel.unsubscribe('ebmesh:proxy:request', on);
    assert.equal(events.length, 1);
    assert.equal(events[0]!.status, 200);
    assert.equal(events[0]!.backend, 'default/web-c');
  });
});
