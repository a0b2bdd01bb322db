import { test } from 'node:test';
import assert from 'node:assert/strict';
import { agentOfReview, type TokenReviewStatus } from './token-review.js';
import { readyEndpointAddresses } from './endpoint-address.js';
import type { K8sEndpointSlice } from './kinds.js';
import { EbmeshError } from '../errors.js';

const want = { namespace: 'ebmesh-system', serviceAccount: 'ebmesh-agent', audience: 'ebmesh' };
const review = (over: Partial<TokenReviewStatus> = {}, extra: Record<string, string[]> = {}): TokenReviewStatus => ({
  authenticated: true,
  audiences: ['ebmesh'],
  user: {
    username: 'system:serviceaccount:ebmesh-system:ebmesh-agent',
    extra: { 'authentication.kubernetes.io/pod-name': ['ebmesh-agent-x1'], 'authentication.kubernetes.io/node-name': ['node-a'], ...extra },
  },
  ...over,
});
const refused = (re: RegExp) => (e: unknown) => e instanceof EbmeshError && e.code === 'EBMESH_UNAUTHENTICATED' && re.test(e.message);

test('a review of the agents\' pod-bound token names the node the API server bound it to', () => {
  assert.deepEqual(agentOfReview(review(), want), { node: 'node-a', pod: 'ebmesh-agent-x1', username: 'system:serviceaccount:ebmesh-system:ebmesh-agent' });
});

test('a token the API server did not authenticate, of another audience, of another account, or bound to no pod or node is refused, saying why', () => {
  assert.throws(() => agentOfReview(review({ authenticated: false, error: 'token has expired' }), want), refused(/did not authenticate the token: token has expired/));
  assert.throws(() => agentOfReview(undefined, want), refused(/did not authenticate/));
  assert.throws(() => agentOfReview(review({ audiences: ['other'] }), want), refused(/not for audience ebmesh/));
  assert.throws(() => agentOfReview(review({ audiences: [] }), want), refused(/accepted it for none/));
  assert.throws(() => agentOfReview(review({ user: { username: 'system:serviceaccount:demo:web', extra: review().user!.extra! } }), want),
    refused(/system:serviceaccount:demo:web's, not the agents' \(system:serviceaccount:ebmesh-system:ebmesh-agent\)/));
  assert.throws(() => agentOfReview(review({ user: { username: 'system:serviceaccount:ebmesh-system:ebmesh-agent' } }), want), refused(/not bound to a pod/));
  assert.throws(() => agentOfReview(review({}, { 'authentication.kubernetes.io/node-name': [] }), want), refused(/names no node/));
  // Two values are as good as none: the binding must be one node.
  assert.throws(() => agentOfReview(review({}, { 'authentication.kubernetes.io/node-name': ['node-a', 'node-b'] }), want), refused(/names no node/));
});

test('the control plane is dialled at ready IPv4 endpoints on its named port, in a stable order', () => {
  const slice = (over: Partial<K8sEndpointSlice>): K8sEndpointSlice => ({
    metadata: { name: 's', namespace: 'ebmesh-system', labels: { 'kubernetes.io/service-name': 'ebmesh-controlplane' } },
    addressType: 'IPv4', ports: [{ name: 'agents', port: 15012 }], endpoints: [], ...over,
  });
  const eps = readyEndpointAddresses([
    slice({ endpoints: [{ addresses: ['10.0.0.9'] }, { addresses: ['10.0.0.3'], conditions: { ready: true } }, { addresses: ['10.0.0.4'], conditions: { ready: false } }] }),
    slice({ addressType: 'IPv6', endpoints: [{ addresses: ['fd00::1'] }] }),
    slice({ ports: [{ name: 'other', port: 1 }], endpoints: [{ addresses: ['10.0.0.5'] }] }),
  ], 'agents');
  assert.deepEqual(eps, [{ host: '10.0.0.3', port: 15012 }, { host: '10.0.0.9', port: 15012 }]);
  assert.deepEqual(readyEndpointAddresses([], 'agents'), []);
});
