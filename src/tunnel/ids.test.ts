import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeOf, nodeSpiffeId, parseSpiffeId, spiffeIdFromSan, spiffeIdFromUris } from './ids.js';
import { parseAuthority } from './protocol.js';

test('node SPIFFE IDs: made, recognised, and nothing else passes for one', () => {
  const id = nodeSpiffeId('cluster.local', 'node-2');
  assert.equal(id, 'spiffe://cluster.local/ns/ebmesh-system/sa/node-node-2');
  assert.equal(nodeOf(id, 'cluster.local'), 'node-2');
  assert.equal(nodeOf(id, 'other.local'), undefined);
  assert.equal(nodeOf('spiffe://cluster.local/ns/demo/sa/node-x', 'cluster.local'), undefined);
  assert.equal(nodeOf('spiffe://cluster.local/ns/ebmesh-system/sa/web', 'cluster.local'), undefined);
  assert.equal(nodeOf('spiffe://cluster.local/ns/ebmesh-system/sa/node-', 'cluster.local'), undefined);
  assert.deepEqual(parseSpiffeId('spiffe://a.b/ns/n/sa/s'), { trustDomain: 'a.b', namespace: 'n', serviceAccount: 's' });
  assert.equal(parseSpiffeId('spiffe://a.b/ns/n/sa/s/extra'), undefined);
});

test('the SAN must carry exactly one SPIFFE URI', () => {
  assert.equal(spiffeIdFromSan('URI:spiffe://a/ns/b/sa/c'), 'spiffe://a/ns/b/sa/c');
  assert.equal(spiffeIdFromSan('DNS:x, URI:spiffe://a/ns/b/sa/c'), 'spiffe://a/ns/b/sa/c');
  assert.equal(spiffeIdFromSan('URI:spiffe://a/ns/b/sa/c, URI:spiffe://a/ns/b/sa/d'), undefined);
  assert.equal(spiffeIdFromSan(undefined), undefined);
  // The same rule on the URI list the relay reads out of a peer's certificate.
  assert.equal(spiffeIdFromUris(['https://x', 'spiffe://a/ns/b/sa/c']), 'spiffe://a/ns/b/sa/c');
  assert.equal(spiffeIdFromUris(['spiffe://a/ns/b/sa/c', 'spiffe://a/ns/b/sa/d']), undefined);
  assert.equal(spiffeIdFromUris([]), undefined);
});

test('CONNECT authorities are IPv4:port only', () => {
  assert.deepEqual(parseAuthority('10.244.1.5:8080'), { ip: '10.244.1.5', port: 8080 });
  for (const bad of ['10.244.1.5', 'example.com:80', '10.244.1.256:80', '10.0.0.1:0', '10.0.0.1:70000', undefined]) assert.equal(parseAuthority(bad), undefined, String(bad));
});
