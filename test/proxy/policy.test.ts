import assert from 'node:assert/strict';
import diagnostics_channel from 'node:diagnostics_channel';
import { after, before, describe, it } from 'node:test';
import { dial, request, startBackend, startProxy, svc, to, type Backend, type Started } from './harness.js';

const authz = (name: string, action: 'ALLOW' | 'DENY', rules: object[]): never =>
  ({ apiVersion: 'ebmesh.io/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name, namespace: 'shop' }, spec: { targetRef: { kind: 'Service', name: 'orders' }, action, rules } }) as never;

describe('L7 authorization by identity', () => {
  let b: Backend, p: Started;
  before(async () => {
    b = await startBackend('orders');
    p = await startProxy({
      services: [svc('orders', '10.96.3.1', 80, [b], { namespace: 'shop' })],
      authorizationPolicies: [
        authz('no-debug', 'DENY', [{ name: 'block-debug', to: [{ paths: ['/debug/*'] }] }, { name: 'block-header', when: [{ name: 'x-evil', values: ['1'] }] }]),
        authz('readers', 'ALLOW', [
          { name: 'frontend-reads', from: [{ identities: ['spiffe://cluster.local/ns/web/sa/frontend'] }], to: [{ methods: ['GET'], paths: ['/orders*'] }] },
          { name: 'admin-all', from: [{ namespaces: ['ops'] }] },
        ]),
      ],
    });
  });
  after(async () => {
    await p.proxy.close();
    await b.close();
  });
  const frontend = to('10.96.3.1', 80, { identity: 'spiffe://cluster.local/ns/web/sa/frontend', namespace: 'web' });
  const ops = to('10.96.3.1', 80, { identity: 'spiffe://cluster.local/ns/ops/sa/admin', namespace: 'ops' });
  const stranger = to('10.96.3.1', 80, { identity: 'spiffe://cluster.local/ns/x/sa/y', namespace: 'x' });

  it('allows what an ALLOW rule matches', async () => {
    assert.equal((await request(p, frontend, { path: '/orders/1' })).status, 200);
    assert.equal((await request(p, ops, { method: 'DELETE', path: '/orders/1' })).status, 200);
  });

  it('denies everything else with 403, the rule in x-ebmesh-denied-by, and an event', async () => {
    const events: { policy: string; rule: string; identity: string }[] = [];
    const on = (m: unknown): void => void events.push(m as never);
    diagnostics_channel.subscribe('ebmesh:proxy:denied', on);
    const hits = b.hits;
    const r1 = await request(p, frontend, { method: 'POST', path: '/orders/1', body: 'x' });
    assert.equal(r1.status, 403);
    assert.equal(r1.headers['x-ebmesh-denied-by'], 'shop/readers/default-deny');
    const r2 = await request(p, ops, { path: '/debug/pprof' });
    assert.equal(r2.status, 403, 'DENY wins over ALLOW');
    assert.equal(r2.headers['x-ebmesh-denied-by'], 'shop/no-debug/block-debug');
    const r3 = await request(p, ops, { path: '/x', headers: { 'x-evil': '1' } });
    assert.equal(r3.headers['x-ebmesh-denied-by'], 'shop/no-debug/block-header');
    assert.equal((await request(p, stranger, { path: '/orders' })).status, 403);
    diagnostics_channel.unsubscribe('ebmesh:proxy:denied', on);
    assert.equal(b.hits, hits, 'nothing denied reached the backend');
    assert.equal(events.length, 4);
    assert.equal(events[1]!.rule, 'block-debug');
    assert.equal(events[3]!.identity, 'spiffe://cluster.local/ns/x/sa/y');
    assert.equal(p.proxy.stats().responses['denied'], 4);
  });
});

describe('multi-tenant fairness and overload', () => {
  it('a flooding namespace cannot starve another one', async () => {
    const slow = await startBackend('slow', (_q, res) => setTimeout(() => res.end('ok'), 100));
    const p = await startProxy({
      services: [svc('shared', '10.96.4.1', 80, [slow])],
      limits: { maxConcurrentRequests: 4, maxConcurrentPerNamespace: 4, queueTimeoutMs: 10_000 },
    });
    try {
      const noisy = to('10.96.4.1', 80, { identity: 'noisy', namespace: 'noisy' });
      const quiet = to('10.96.4.1', 80, { identity: 'quiet', namespace: 'quiet' });
      const t0 = Date.now();
      const flood = Array.from({ length: 40 }, () => request(p, noisy).then(() => Date.now() - t0));
      await new Promise((r) => setTimeout(r, 30)); // the flood is queued first
      const quietTimes = await Promise.all(Array.from({ length: 4 }, () => request(p, quiet).then((r) => (assert.equal(r.status, 200), Date.now() - t0))));
      const floodTimes = await Promise.all(flood);
      // FIFO would put quiet behind 40 noisy requests (~1s); round-robin
      // hands it every other free slot.
      assert.ok(Math.max(...quietTimes) < 500, `quiet finished at ${Math.max(...quietTimes)}ms`);
      assert.ok(Math.max(...floodTimes) > 900, 'the flood itself still takes its time');
    } finally {
      await p.proxy.close();
      await slow.close();
    }
  });

  it('sheds load with 503 when a tenant queue is full', async () => {
    const slow = await startBackend('slow', (_q, res) => setTimeout(() => res.end('ok'), 150));
    const p = await startProxy({
      services: [svc('shared', '10.96.4.2', 80, [slow])],
      limits: { maxConcurrentRequests: 2, maxConcurrentPerNamespace: 2, maxQueuedPerNamespace: 3 },
    });
    try {
      const codes = (await Promise.all(Array.from({ length: 10 }, () => request(p, to('10.96.4.2', 80))))).map((r) => r.status);
      assert.equal(codes.filter((c) => c === 200).length, 5);
      assert.equal(codes.filter((c) => c === 503).length, 5);
      assert.equal(p.proxy.stats().responses['overload'], 5);
    } finally {
      await p.proxy.close();
      await slow.close();
    }
  });

  it('gives the slot back when clients leave before their answer', async () => {
    // A body large enough that writing it to a gone client would wait for a 'drain' forever.
    const slow = await startBackend('slow', (_q, res) => setTimeout(() => res.end(Buffer.alloc(1 << 20)), 100));
    const p = await startProxy({
      services: [svc('shared', '10.96.4.3', 80, [slow])],
      limits: { maxConcurrentRequests: 1, maxConcurrentPerNamespace: 1, queueTimeoutMs: 2000 },
    });
    try {
      for (let i = 0; i < 3; i++) {
        const s = dial(p, to('10.96.4.3', 80));
        await new Promise<void>((r) => s.once('connect', () => r()));
        s.write('GET /leave HTTP/1.1\r\nHost: shared\r\n\r\n');
        await new Promise((r) => setTimeout(r, 30));
        s.destroy();
      }
      const r = await request(p, to('10.96.4.3', 80));
      assert.equal(r.status, 200, `answer after three clients left: ${r.status} ${r.headers['x-ebmesh-reason'] ?? ''}`);
      assert.equal(p.proxy.stats().responses['overload'], undefined);
    } finally {
      await p.proxy.close();
      await slow.close();
    }
  });
});
