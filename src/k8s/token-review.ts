/**
 * How an agent in a cluster proves which node it runs on: the projected
 * service-account token of its pod (audience `ebmesh`, short-lived, bound
 * to the pod), checked by the API server with a TokenReview. The node is
 * what the API server says the token is bound to
 * (`authentication.kubernetes.io/node-name` in the review's extra, given for
 * pod-bound tokens since Kubernetes 1.32), never what the agent says.
 *
 * The API server checks the signature, the expiry, the audience and that the
 * pod (and its node) the token is bound to still exist; here we check whose
 * token it is (the agents' ServiceAccount) and read the binding.
 */
import { EbmeshError } from '../errors.js';
import type { KubeClient } from './client.js';

/** The audience the agents' projected tokens carry and the control plane asks the API server to check. */
export const TOKEN_AUDIENCE = 'ebmesh';

const EXTRA_NODE = 'authentication.kubernetes.io/node-name';
const EXTRA_POD = 'authentication.kubernetes.io/pod-name';

/** The part of a TokenReview (authentication.k8s.io/v1) answer we read. */
export interface TokenReviewStatus {
  authenticated?: boolean;
  error?: string;
  audiences?: string[];
  user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
}

/** Whose token the control plane takes: the agents' ServiceAccount. */
export interface ExpectedAgent {
  namespace: string;
  serviceAccount: string;
  audience: string;
}

export interface ReviewedAgent {
  node: string;
  pod: string;
  /** system:serviceaccount:NS:SA */
  username: string;
}

const refused = (message: string) => new EbmeshError('EBMESH_UNAUTHENTICATED', message, {
  hint: 'an agent enrols with its pod\'s projected service-account token (audience ebmesh), of the agents\' ServiceAccount, bound to a pod on a node',
});

/** The node and pod a reviewed token is bound to, or a 401 saying what is wrong with it. Pure. */
export function agentOfReview(status: TokenReviewStatus | undefined, want: ExpectedAgent): ReviewedAgent {
  if (!status?.authenticated) {
    throw refused(`the API server did not authenticate the token${status?.error ? `: ${status.error}` : ''}`);
  }
  if (!status.audiences?.includes(want.audience)) {
    throw refused(`the token is not for audience ${want.audience} (the API server accepted it for ${status.audiences?.join(', ') || 'none'})`);
  }
  const username = status.user?.username ?? '';
  const expected = `system:serviceaccount:${want.namespace}:${want.serviceAccount}`;
  if (username !== expected) {
    throw refused(`the token is ${username || 'nobody'}'s, not the agents' (${expected})`);
  }
  const one = (key: string): string | undefined => {
    const v = status.user?.extra?.[key];
    return v?.length === 1 && v[0] ? v[0] : undefined;
  };
  const node = one(EXTRA_NODE);
  const pod = one(EXTRA_POD);
  if (!pod) throw refused(`the token of ${username} is not bound to a pod (no ${EXTRA_POD})`);
  if (!node) throw refused(`the token of ${username} (pod ${pod}) names no node (no ${EXTRA_NODE}; the API server gives it for pod-bound tokens since Kubernetes 1.32)`);
  return { node, pod, username };
}

/** Asks the API server about TOKEN (a TokenReview for the given audience) and reads the answer. */
export async function reviewAgentToken(client: KubeClient, token: string, want: ExpectedAgent): Promise<ReviewedAgent> {
  const review = await client.request<{ status?: TokenReviewStatus }>('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenReview',
    spec: { token, audiences: [want.audience] },
  });
  return agentOfReview(review.status, want);
}
