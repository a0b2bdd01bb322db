import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GoldenWindow } from './golden.js';

test('rate, success rate and percentiles over the window, to one bucket', () => {
  const g = new GoldenWindow(60);
  const t0 = 1_000_000;
  for (let i = 0; i < 1000; i++) g.record('demo/web', t0 + Math.floor(i / 100) * 1000, i % 100 === 50 ? 100 : 1, i % 100 !== 0);
  g.record('demo/other', t0, 5, true);
  const rows = g.rows(t0 + 9000, 10);
  assert.equal(rows[0]!.service, 'demo/web');
  assert.equal(rows[0]!.requests, 1000);
  assert.equal(rows[0]!.rps, 100);
  assert.equal(rows[0]!.successRate, 0.99);
  assert.ok(rows[0]!.p50Ms >= 1 && rows[0]!.p50Ms < 1.1, String(rows[0]!.p50Ms));
  assert.ok(rows[0]!.p99Ms >= 1 && rows[0]!.p99Ms < 1.1, String(rows[0]!.p99Ms));
  // Older seconds leave the window: at t0+15 s it holds seconds 6..9.
  assert.equal(g.rows(t0 + 15000, 10)[0]!.requests, 400);
  assert.deepEqual(g.rows(t0 + 100000, 10), []);
});
