/**
 * Overload: more offered than the proxy may forward. Behaviour only, no
 * timing assertions: every request ends in 200 or 503 within the test's
 * bound, work for clients that left is dropped, and the proxy answers
 * normally right after the load.
 */
import assert from 'node:assert/strict';
import type http from 'node:http';
import { describe, it } from 'node:test';
import { client, dial, request, startBackend, startProxy, svc, to, type Reply, type Started } from './harness.js';

/** Fails the test instead of hanging it: `what` must settle within `ms`. */
function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<never>((_r, reject) => (t = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}

/** Sends a request on its own connection and leaves (resets) after `ms` unless answered first. */
async function impatient(p: Started, vip: string, path: string, ms: number): Promise<number | 'left'> {
  const s = dial(p, to(vip, 80));
  s.on('error', () => {});
  await new Promise<void>((r) => s.once('connect', () => r()));
  s.write(`GET ${path} HTTP/1.1\r\nHost: shared\r\n\r\n`);
  return new Promise((resolve) => {
    let head = '';
    const t = setTimeout(() => {
      s.destroy();
      resolve('left');
    }, ms);
    s.on('data', (d: Buffer) => {
      head += d.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(head);
      if (m) {
        clearTimeout(t);
        s.destroy();
        resolve(Number(m[1]));
      }
    });
  });
}

describe('overload', () => {
  it('drops the queued and in-flight work of clients that left, then answers at once', async () => {
    // /hold is never answered by the backend: only cancellation can free its slot.
    const open = new Set<http.ServerResponse>();
    let cancelled = 0;
    const b = await startBackend('hold', (req, res) => {
      if (req.url !== '/hold') return void res.end('ok');
      open.add(res);
      res.on('close', () => {
        open.delete(res);
        cancelled++;
      });
    });
    const p = await startProxy({
      services: [svc('shared', '10.96.5.1', 80, [b])],
      // A queue wait far longer than the test: waiters must leave with their clients, not by timing out.
      limits: { maxConcurrentRequests: 4, maxConcurrentPerNamespace: 4, maxQueuedPerNamespace: 64, queueTimeoutMs: 600_000 },
    });
    try {
      // 4 take the slots, 20 queue behind them; all give up.
      const outcomes = await within(5000, 'impatient clients', Promise.all(Array.from({ length: 24 }, (_v, i) => impatient(p, '10.96.5.1', '/hold', 100 + (i % 5) * 20))));
      assert.ok(outcomes.every((o) => o === 'left'), `nobody gets an answer from /hold: ${outcomes.join(',')}`);
      // Every forwarded request is cancelled upstream when its client leaves
      // (a slot freed early may go to a waiter whose client is still there).
      await within(3000, 'upstream cancellation', (async () => {
        while (open.size > 0 || b.partial > 0) await new Promise((r) => setTimeout(r, 20));
      })());
      const forwarded = b.hits;
      assert.equal(cancelled, forwarded, 'each forwarded /hold was cancelled');
      assert.ok(forwarded < 24, `waiters whose clients left were dropped, not forwarded (${forwarded} of 24 forwarded)`);
      const r = await within(3000, 'request after the clients left', request(p, to('10.96.5.1', 80), { path: '/ok' }));
      assert.equal(r.status, 200);
      assert.equal(b.hits, forwarded + 1, 'no queued request of a gone client was forwarded late');
    } finally {
      await p.proxy.close();
      await b.close();
    }
  });

  it('under a bounded open-loop flood at about 3x capacity answers everything with 200 or 503, keeps the quiet tenant served, and recovers', async () => {
    // Capacity: 4 slots for the flooding namespace × 1 / 50 ms = 80 req/s.
    const b = await startBackend('slow', (_q, res) => setTimeout(() => res.end('ok'), 50));
    const p = await startProxy({
      services: [svc('shared', '10.96.5.2', 80, [b])],
      limits: { maxConcurrentRequests: 6, maxConcurrentPerNamespace: 4, maxQueuedPerNamespace: 8, queueTimeoutMs: 300 },
    });
    const noisy = to('10.96.5.2', 80, client('noisy', 'noisy'));
    const quiet = to('10.96.5.2', 80, client('quiet', 'quiet'));
    try {
      const flood: Promise<Reply>[] = [];
      // 250 req/s for 2 s, each on its own connection, so the proxy sees the whole offered load.
      const total = 500;
      for (let i = 0; i < total; i++) {
        flood.push(within(10_000, `flood request ${i}`, request(p, noisy, { path: `/f${i}` })));
        if (i % 10 === 9) await new Promise((r) => setTimeout(r, 40));
      }
      const quietAnswers: number[] = [];
      for (let i = 0; i < 10; i++) quietAnswers.push((await within(5000, `quiet request ${i}`, request(p, quiet))).status);
      const codes = (await Promise.all(flood)).map((r) => r.status);
      const ok = codes.filter((c) => c === 200).length;
      const shed = codes.filter((c) => c === 503).length;
      assert.equal(ok + shed, total, `only 200 and 503: ${[...new Set(codes)].join(',')}`);
      assert.ok(ok > 0 && shed > 0, `some served (${ok}) and the excess shed (${shed})`);
      assert.deepEqual(quietAnswers, Array(10).fill(200), 'the quiet tenant never waits behind the flood');
      const after = await within(3000, 'request after the flood', request(p, noisy, { path: '/after' }));
      assert.equal(after.status, 200);
    } finally {
      await p.proxy.close();
      await b.close();
    }
  });
});
