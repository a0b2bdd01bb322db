/**
 * The control plane of a Kubernetes cluster: the mesh CA, and nothing else.
 * Desired state comes to each agent from the API server itself; what the
 * cluster needs from ebmesh's side is identity, which no agent may hold
 * the keys of (one node taken would be every node's identity).
 *
 * - The CA's root lives in a Secret of the control plane's namespace (made
 *   at the first start, or the user's: keys ca.crt and ca.key); only the
 *   control plane's ServiceAccount may read it.
 * - The bundle (the root certificate) is published in a ConfigMap of that
 *   namespace: an agent reads it through the API server, which it already
 *   trusts, and pins it to know the control plane.
 * - An agent enrols with its pod's projected service-account token
 *   (audience ebmesh). A TokenReview says whose token it is and which node
 *   its pod is bound to (src/k8s/token-review.ts): that node, never the one
 *   the agent names, gets the node certificate. From then on the agent
 *   proves its node in mutual TLS, as outside a cluster (agent-listener.ts).
 * - SVIDs: the node's own, and spiffe://TD/ns/NS/sa/SA for a pod the API
 *   server says runs on that node, with that pod's service account.
 */
import { EbmeshError } from '../errors.js';
import { CertificateAuthority, createRoot, spiffeId, type IssuedSvid, type RootMaterial } from '../ca/index.js';
import { nodeSpiffeId, SYSTEM_NAMESPACE } from '../tunnel/ids.js';
import { serve, type Handlers } from '../api/server.js';
import { agentApi } from '../api/controlplane.js';
import { KubeError, type KubeClient, type KubeObject } from '../k8s/client.js';
import type { K8sPod } from '../k8s/kinds.js';
import { reviewAgentToken, TOKEN_AUDIENCE } from '../k8s/token-review.js';
import { AgentListener, requireNodePeer } from './agent-listener.js';

/** The routes a cluster's control plane serves agents: desired state and status go through the API server. */
export const clusterAgentApi = { enroll: agentApi.enroll, credential: agentApi.credential, svid: agentApi.svid };

export interface ClusterIdentityOptions {
  client: KubeClient;
  /** The namespace of the control plane, its CA Secret, its bundle ConfigMap and the agents' ServiceAccount. */
  namespace: string;
  agentServiceAccount: string;
  caSecret: string;
  bundleConfigMap: string;
  trustDomain: string;
  /** HOST:PORT (or a unix socket path, for tests). */
  listen: string;
  svidTtlSeconds: number;
  nodeCertTtlSeconds: number;
}

interface SecretObject extends KubeObject { data?: Record<string, string> }
interface ConfigMapObject extends KubeObject { data?: Record<string, string> }

/** A pod's SVID is refused in these phases: its containers are gone. */
const ENDED = new Set(['Succeeded', 'Failed']);

export class ClusterIdentity {
  ca!: CertificateAuthority;
  private listener: AgentListener | undefined;

  constructor(readonly options: ClusterIdentityOptions) {}

  async start(): Promise<void> {
    this.ca = await CertificateAuthority.load(await this.root());
    await this.publishBundle();
    this.listener = await AgentListener.start(this.ca, async () => this.options.trustDomain, this.options.listen, [serve(clusterAgentApi, this.handlers())]);
  }

  private get ns(): string {
    return this.options.namespace;
  }

  /** The CA's root from its Secret; made and stored there when there is none yet. */
  private async root(): Promise<RootMaterial> {
    const { client, caSecret } = this.options;
    const path = `/api/v1/namespaces/${this.ns}/secrets/${caSecret}`;
    const read = async (): Promise<RootMaterial | undefined> => {
      let s: SecretObject;
      try {
        s = await client.request<SecretObject>('GET', path);
      } catch (e) {
        if (e instanceof KubeError && e.status === 404) return undefined;
        throw e;
      }
      const cert = s.data?.['ca.crt'];
      const key = s.data?.['ca.key'];
      if (!cert || !key) throw new EbmeshError('EBMESH_CA_INVALID', `Secret ${this.ns}/${caSecret} has no ca.crt and ca.key`, { hint: 'give the CA as keys ca.crt and ca.key (PEM), or delete the Secret and let the control plane make one' });
      return { certPem: Buffer.from(cert, 'base64').toString('utf8'), keyPem: Buffer.from(key, 'base64').toString('utf8') };
    };
    const found = await read();
    if (found) return found;
    const root = await createRoot(this.options.trustDomain);
    try {
      await client.request('POST', `/api/v1/namespaces/${this.ns}/secrets`, {
        apiVersion: 'v1', kind: 'Secret', type: 'Opaque',
        metadata: { name: caSecret, namespace: this.ns, labels: { 'app.kubernetes.io/name': 'ebmesh', 'app.kubernetes.io/component': 'controlplane' } },
        data: { 'ca.crt': Buffer.from(root.certPem).toString('base64'), 'ca.key': Buffer.from(root.keyPem).toString('base64') },
      });
      process.stderr.write(`made the mesh CA for ${this.options.trustDomain}, kept in Secret ${this.ns}/${caSecret}\n`);
      return root;
    } catch (e) {
      // Another control plane made it first: use that one.
      if (e instanceof KubeError && e.status === 409) {
        const other = await read();
        if (other) return other;
      }
      throw e;
    }
  }

  /** The trust bundle in its ConfigMap, where agents read it. */
  private async publishBundle(): Promise<void> {
    const { client, bundleConfigMap } = this.options;
    const path = `/api/v1/namespaces/${this.ns}/configmaps/${bundleConfigMap}`;
    const body = (resourceVersion?: string) => ({
      apiVersion: 'v1', kind: 'ConfigMap',
      metadata: { name: bundleConfigMap, namespace: this.ns, ...(resourceVersion ? { resourceVersion } : {}), labels: { 'app.kubernetes.io/name': 'ebmesh', 'app.kubernetes.io/component': 'controlplane' } },
      data: { 'ca.crt': this.ca.bundlePem },
    });
    let current: ConfigMapObject | undefined;
    try {
      current = await client.request<ConfigMapObject>('GET', path);
    } catch (e) {
      if (!(e instanceof KubeError && e.status === 404)) throw e;
    }
    if (!current) await client.request('POST', `/api/v1/namespaces/${this.ns}/configmaps`, body());
    else if (current.data?.['ca.crt'] !== this.ca.bundlePem) await client.request('PUT', path, body(current.metadata.resourceVersion));
  }

  private async nodeCert(node: string, csrPem: string, ttl: number): Promise<IssuedSvid & { bundlePem: string }> {
    const svid = await this.ca.issue(csrPem, nodeSpiffeId(this.options.trustDomain, node), ttl);
    return { ...svid, bundlePem: this.ca.bundlePem };
  }

  /** The SVID of pod NS/NAME for NODE's agent: only if the API server says the pod runs on NODE. */
  private async podSvid(node: string, workload: string | undefined, csrPem: string): Promise<IssuedSvid & { bundlePem: string }> {
    const m = /^([a-z0-9-]+)\/([a-z0-9.-]+)$/.exec(workload ?? '');
    if (!m) throw new EbmeshError('EBMESH_USAGE', `workload: "${workload ?? ''}" is not NAMESPACE/POD`);
    const [, ns, name] = m as unknown as [string, string, string];
    if (ns === SYSTEM_NAMESPACE) {
      throw new EbmeshError('EBMESH_FORBIDDEN', `pod ${workload}: namespace ${SYSTEM_NAMESPACE} holds the nodes' identities, no pod's`);
    }
    let pod: K8sPod;
    try {
      pod = await this.options.client.request<K8sPod>('GET', `/api/v1/namespaces/${ns}/pods/${name}`);
    } catch (e) {
      if (e instanceof KubeError && e.status === 404) throw new EbmeshError('EBMESH_NOT_FOUND', `pod ${workload} not found`);
      throw e;
    }
    if (pod.spec.nodeName !== node) {
      throw new EbmeshError('EBMESH_FORBIDDEN', `pod ${workload} runs on ${pod.spec.nodeName ? `node ${pod.spec.nodeName}` : 'no node yet'}, not on ${node}: its identity is not this node's to have`);
    }
    if (ENDED.has(pod.status?.phase ?? '')) throw new EbmeshError('EBMESH_FORBIDDEN', `pod ${workload} has ended (${pod.status?.phase})`);
    const svid = await this.ca.issue(csrPem, spiffeId(this.options.trustDomain, ns, pod.spec.serviceAccountName ?? 'default'), this.options.svidTtlSeconds);
    return { ...svid, bundlePem: this.ca.bundlePem };
  }

  private handlers(): Handlers<typeof clusterAgentApi> {
    const td = this.options.trustDomain;
    return {
      enroll: async ({ node, csrPem }, call) => {
        const token = /^Bearer (.+)$/.exec(call.authorization ?? '')?.[1];
        if (!token) throw new EbmeshError('EBMESH_UNAUTHENTICATED', `no token: node ${node}'s agent enrols with its projected service-account token (Authorization: Bearer)`);
        const agent = await reviewAgentToken(this.options.client, token, { namespace: this.ns, serviceAccount: this.options.agentServiceAccount, audience: TOKEN_AUDIENCE });
        if (agent.node !== node) {
          throw new EbmeshError('EBMESH_FORBIDDEN', `the token is bound to pod ${agent.pod} on node ${agent.node}, not to node ${node}`, { hint: 'an agent enrols for the node its pod runs on' });
        }
        process.stderr.write(`enrolled node ${agent.node} (pod ${agent.pod})\n`);
        return this.nodeCert(agent.node, csrPem, this.options.nodeCertTtlSeconds);
      },
      credential: async ({ node, csrPem }, call) => {
        requireNodePeer(call, node, td);
        return this.nodeCert(node, csrPem, this.options.nodeCertTtlSeconds);
      },
      svid: async ({ node, workload, forNode, csrPem }, call) => {
        requireNodePeer(call, node, td);
        return forNode ? this.nodeCert(node, csrPem, this.options.svidTtlSeconds) : this.podSvid(node, workload, csrPem);
      },
    };
  }

  stop(): void {
    this.listener?.stop();
  }
}
