import assert from 'node:assert/strict';
import diagnostics_channel from 'node:diagnostics_channel';
import { after, describe, it } from 'node:test';
import { request, route, startBackend, startProxy, svc, to, type Backend, type Started } from './harness.js';

const cleanup: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanup.reverse()) await c();
});
async function backend(name: string, h?: Parameters<typeof startBackend>[1]): Promise<Backend> {
  const b = await startBackend(name, h);
  cleanup.push(() => b.close());
  return b;
}
async function proxy(cfg: Parameters<typeof startProxy>[0]): Promise<Started> {
  const p = await startProxy(cfg);
  cleanup.push(() => p.proxy.close());
  return p;
}
const policy = (name: string, target: string, spec: object): never =>
  ({ apiVersion: 'ebmesh.io/v1alpha1', kind: 'TrafficPolicy', metadata: { name, namespace: 'default' }, spec: { targetRef: { kind: 'Service', name: target }, ...spec } }) as never;

describe('weighted backends, timeouts, retries', () => {
  it('splits traffic by backendRef weight (canary 80/20, weight 0 gets nothing)', async () => {
    const [s, c, z] = [await backend('stable'), await backend('canary'), await backend('zero')];
    const p = await proxy({
      services: [svc('web', '10.96.1.1', 80, []), svc('stable', '10.96.1.2', 80, [s]), svc('canary', '10.96.1.3', 80, [c]), svc('zero', '10.96.1.4', 80, [z])],
      httpRoutes: [route('split', 'web', [{ backendRefs: [{ name: 'stable', port: 80, weight: 80 }, { name: 'canary', port: 80, weight: 20 }, { name: 'zero', port: 80, weight: 0 }] }])],
    });
    for (let i = 0; i < 200; i++) await request(p, to('10.96.1.1', 80));
    assert.equal(s.hits + c.hits, 200);
    assert.equal(z.hits, 0);
    assert.ok(c.hits > 15 && c.hits < 70, `canary got ${c.hits}/200, expected about 40`);
  });

  it('answers 504 when the backend is slower than timeouts.backendRequest / timeouts.request', async () => {
    const slow = await backend('slow', (_q, res) => setTimeout(() => res.end('late'), 400));
    const p = await proxy({
      services: [svc('slow', '10.96.1.10', 80, [slow])],
      httpRoutes: [route('slow', 'slow', [{ timeouts: { request: '150ms' }, backendRefs: [{ name: 'slow', port: 80 }] }])],
    });
    const t0 = Date.now();
    const r = await request(p, to('10.96.1.10', 80));
    assert.equal(r.status, 504);
    assert.equal(r.headers['x-ebmesh-reason'], 'timeout');
    assert.ok(Date.now() - t0 < 380, 'answered at the deadline, not when the backend finished');
    assert.equal(p.proxy.stats().responses['timeout'], 1);
  });

  it('retries on listed codes up to attempts, with the retry count in the event', async () => {
    let n = 0;
    const flaky = await backend('flaky', (_q, res) => {
      n++;
      res.statusCode = n <= 2 ? 503 : 200;
      res.end(`try ${n}`);
    });
    const p = await proxy({
      services: [svc('flaky', '10.96.1.20', 80, [flaky])],
      httpRoutes: [route('flaky', 'flaky', [{ retry: { codes: [503], attempts: 3, backoff: '10ms' }, backendRefs: [{ name: 'flaky', port: 80 }] }])],
    });
    const events: { retries: number }[] = [];
    const on = (m: unknown): void => void events.push(m as never);
    diagnostics_channel.subscribe('ebmesh:proxy:request', on);
    const r = await request(p, to('10.96.1.20', 80), { method: 'POST', body: 'payload' });
    await new Promise((res) => setTimeout(res, 20));
    diagnostics_channel.unsubscribe('ebmesh:proxy:request', on);
    assert.equal(r.status, 200);
    assert.equal(r.body, 'try 3');
    assert.equal(flaky.seen[2]!.body, 'payload', 'the buffered body is replayed');
    assert.equal(events.at(-1)!.retries, 2);
    // Without attempts left the failure is passed on.
    n = -10;
    const r2 = await request(p, to('10.96.1.20', 80));
    assert.equal(r2.status, 503);
  });
});

describe('TrafficPolicy: rate limits, circuit breaking, outlier detection, faults', () => {
  it('rate limits per client identity and in total with 429', async () => {
    const b = await backend('rl');
    const p = await proxy({
      services: [svc('rl', '10.96.2.1', 80, [b])],
      trafficPolicies: [policy('rl', 'rl', { rateLimit: { perClient: { requests: 3, per: '1m' }, total: { requests: 5, per: '1m' } } })],
    });
    const alice = to('10.96.2.1', 80, { identity: 'alice', namespace: 'a' });
    const bob = to('10.96.2.1', 80, { identity: 'bob', namespace: 'b' });
    const aliceCodes = [];
    for (let i = 0; i < 4; i++) aliceCodes.push((await request(p, alice)).status);
    assert.deepEqual(aliceCodes, [200, 200, 200, 429]);
    // bob has his own bucket, but the total (5) runs out after his second
    const bobCodes = [];
    for (let i = 0; i < 3; i++) bobCodes.push((await request(p, bob)).status);
    assert.deepEqual(bobCodes, [200, 200, 429]);
    assert.equal(p.proxy.stats().responses['rate_limited'], 2);
  });

  it('opens the circuit (503) beyond maxRequests + maxPendingRequests', async () => {
    const slow = await backend('cb', (_q, res) => setTimeout(() => res.end('ok'), 200));
    const p = await proxy({
      services: [svc('cb', '10.96.2.2', 80, [slow])],
      trafficPolicies: [policy('cb', 'cb', { circuitBreaker: { maxConnections: 2, maxRequests: 2, maxPendingRequests: 1 } })],
    });
    const codes = (await Promise.all(Array.from({ length: 6 }, () => request(p, to('10.96.2.2', 80))))).map((r) => r.status).sort();
    assert.deepEqual(codes, [200, 200, 200, 503, 503, 503]);
    assert.equal(p.proxy.stats().responses['circuit_open'], 3);
  });

  it('ejects an endpoint after consecutive 5xx and brings it back after the ejection time', async () => {
    let broken = true;
    const bad = await backend('bad', (_q, res) => {
      res.statusCode = broken ? 500 : 200;
      res.end('bad');
    });
    const good = await backend('good');
    const p = await proxy({
      services: [svc('od', '10.96.2.3', 80, [bad, good])],
      trafficPolicies: [policy('od', 'od', { outlierDetection: { consecutiveErrors: 2, baseEjectionTime: '300ms' } })],
    });
    const ejected: unknown[] = [];
    const on = (m: unknown): void => void ejected.push(m);
    diagnostics_channel.subscribe('ebmesh:proxy:ejected', on);
    for (let i = 0; i < 6; i++) await request(p, to('10.96.2.3', 80));
    assert.equal(bad.hits, 2, 'two failures, then ejected');
    const goodBefore = good.hits;
    for (let i = 0; i < 6; i++) assert.equal((await request(p, to('10.96.2.3', 80))).status, 200);
    assert.equal(good.hits - goodBefore, 6, 'all traffic to the healthy endpoint while ejected');
    assert.equal(ejected.length, 1);
    broken = false;
    await new Promise((r) => setTimeout(r, 350));
    for (let i = 0; i < 4; i++) await request(p, to('10.96.2.3', 80));
    assert.ok(bad.hits > 2, 'returned after the ejection time');
    diagnostics_channel.unsubscribe('ebmesh:proxy:ejected', on);
  });

  it('ejects on connect failures too (endpoint down)', async () => {
    const good = await backend('up');
    const down = await backend('down');
    await down.close(); // its port now refuses connections
    const p = await proxy({
      services: [svc('cf', '10.96.2.4', 80, [down, good])],
      trafficPolicies: [policy('cf', 'cf', { outlierDetection: { consecutiveErrors: 1, baseEjectionTime: '10s' } })],
    });
    for (let i = 0; i < 4; i++) assert.equal((await request(p, to('10.96.2.4', 80))).status, 200, 'a refused connect is retried on another endpoint');
  });

  it('injects aborts and delays', async () => {
    const b = await backend('f');
    const p = await proxy({
      services: [svc('fa', '10.96.2.5', 80, [b]), svc('fd', '10.96.2.6', 80, [b])],
      trafficPolicies: [policy('fa', 'fa', { fault: { abort: { httpStatus: 418, percentage: 100 } } }), policy('fd', 'fd', { fault: { delay: { fixedDelay: '200ms', percentage: 100 } } })],
    });
    const r = await request(p, to('10.96.2.5', 80));
    assert.equal(r.status, 418);
    assert.equal(b.hits, 0);
    const t0 = Date.now();
    assert.equal((await request(p, to('10.96.2.6', 80))).status, 200);
    assert.ok(Date.now() - t0 >= 190);
  });
});
