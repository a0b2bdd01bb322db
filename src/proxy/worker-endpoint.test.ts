import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mergeEndpointStatus } from './worker-endpoint.js';

test('the node\'s endpoint status from its workers\': listening if one listens, counters summed, the port and identity kept', () => {
  assert.equal(mergeEndpointStatus([undefined, undefined]), undefined);
  const a = { listening: false, port: 15008, spiffeId: 'spiffe://td/node/n1', sessions: 2, streams: 5, error: undefined };
  const b = { listening: true, port: 15008, spiffeId: 'spiffe://td/node/n1', sessions: 1, streams: 7, error: 'no cert yet' };
  assert.deepEqual(mergeEndpointStatus([a, undefined, b]), { listening: true, port: 15008, spiffeId: 'spiffe://td/node/n1', sessions: 3, streams: 12, error: 'no cert yet' });
});
