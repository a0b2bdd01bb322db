import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCurlTransfers } from './shortcut.js';

test('curl transfers: MiB/s over all of them, from bytes and seconds per transfer', () => {
  const r = parseCurlTransfers(`${16 << 20} 0.010000 200\n${16 << 20} 0.030000 200\n`, ['curl']);
  assert.equal(r.tool, 'curl');
  assert.ok(Math.abs(r.rate - 800) < 1e-6, String(r.rate));
});

test('curl transfers: a failed status or an unexpected line is an error, never a figure', () => {
  assert.throws(() => parseCurlTransfers('1000 0.1 404\n', ['curl']), /HTTP 404/);
  assert.throws(() => parseCurlTransfers('garbage\n', ['curl']), /unexpected line/);
  assert.throws(() => parseCurlTransfers('0 0.000000 200\n', ['curl']), /moved nothing/);
});
