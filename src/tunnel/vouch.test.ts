import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CallerVouching, judgeStream } from './vouch.js';
import type { TunnelRequest } from './server.js';

const tables = {
  podCidr: '10.240.0.0/16',
  nodes: [['node-1', '10.240.0.0/24'], ['node-2', '10.240.1.0/24'], ['node-3', '10.240.2.0/24']] as const,
  identities: [
    ['10.240.1.5', { identity: 'spiffe://td/ns/a/sa/client' }],
    ['10.240.2.7', { identity: 'spiffe://td/ns/b/sa/admin' }],
  ] as const,
};
const v = new CallerVouching(tables);
const req = (peerNode: string, sourceIp?: string, sourceId?: string): TunnelRequest =>
  ({ peerId: `spiffe://td/ns/ebmesh-system/sa/node-${peerNode}`, peerNode, sourceIp, sourceId, dst: { ip: '10.240.0.9', port: 80 } });

test('a node may speak for the pods of its own subnet, with their own identity', () => {
  assert.deepEqual(v.check(req('node-2', '10.240.1.5', 'spiffe://td/ns/a/sa/client')), { ok: true, sourceIp: '10.240.1.5' });
  // A pod the receiver does not know yet (it converges later): the address stands, policy resolves it as the kernel would.
  assert.deepEqual(v.check(req('node-2', '10.240.1.99', 'spiffe://td/ns/a/sa/new')), { ok: true, sourceIp: '10.240.1.99' });
});

test('a node claiming another node\'s pod is refused, naming both', () => {
  const r = v.check(req('node-2', '10.240.2.7', 'spiffe://td/ns/b/sa/admin'));
  assert.equal(r.ok, false);
  assert.match(!r.ok ? r.reason : '', /node node-2 vouches for 10\.240\.2\.7, a pod address of node node-3/);
  // An address in the pod CIDR but in no node's subnet.
  assert.match((v.check(req('node-2', '10.240.9.1')) as { reason: string }).reason, /no node's pod subnet/);
  // A node the receiver does not know has no subnet to speak for.
  assert.equal(v.check(req('node-9', '10.240.1.5')).ok, false);
});

test('a node claiming the wrong identity for its own pod is refused', () => {
  const r = v.check(req('node-2', '10.240.1.5', 'spiffe://td/ns/b/sa/admin'));
  assert.equal(r.ok, false);
  assert.match(!r.ok ? r.reason : '', /claims spiffe:\/\/td\/ns\/b\/sa\/admin for 10\.240\.1\.5, which is spiffe:\/\/td\/ns\/a\/sa\/client/);
});

test('an address outside the pod CIDR is judged as an unnamed caller, whatever it names', () => {
  assert.deepEqual(v.check(req('node-2', '203.0.113.5')), { ok: true, sourceIp: undefined });
  assert.deepEqual(v.check(req('node-2', '127.0.0.1')), { ok: true, sourceIp: undefined });
  assert.deepEqual(v.check(req('node-2')), { ok: true, sourceIp: undefined });
});

test('judgeStream asks policy about the vouched caller only, and never when the claim is refused', () => {
  const asked: Array<string | undefined> = [];
  const policy = { judge: (r: { sourceIp: string | undefined }) => { asked.push(r.sourceIp); return { allow: true as const }; } };
  assert.equal(judgeStream(req('node-2', '10.240.1.5'), v, policy).allow, true);
  assert.equal(judgeStream(req('node-2', '203.0.113.5'), v, policy).allow, true);
  const refused = judgeStream(req('node-2', '10.240.2.7'), v, policy);
  assert.equal(refused.allow, false);
  assert.deepEqual(asked, ['10.240.1.5', undefined]);
  assert.equal(judgeStream(req('node-2', '10.240.1.5'), v, undefined).allow, true);
});
