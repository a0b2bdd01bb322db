/**
 * An agent's identity in a Kubernetes cluster: it enrols with the cluster's
 * control plane (src/controlplane/cluster-identity.ts) using its pod's
 * projected service-account token (audience ebmesh; the kubelet rotates
 * it), pinning the CA bundle the control plane publishes in a ConfigMap
 * (read through the API server, which the agent trusts already). It then
 * holds a node certificate (credential.ts) and, like an agent outside a
 * cluster, keeps the node's SVID and an SVID per meshed pod of its node,
 * each renewed at half its life (identity.ts).
 *
 * The control plane is dialled at its Service's ready endpoints, from the
 * EndpointSlices the agent watches anyway: the agent is the node's service
 * proxy, so it may not depend on a VIP it programs itself.
 *
 * None of this holds up the data path: the agent serves Services and
 * policy while it waits for its control plane, and says so in its status.
 *
 *   STATE/credential/   the node certificate
 *   STATE/node-identity/ the node SVID (the cross-node tunnel does not use it in a cluster yet)
 *   STATE/svid/NS.POD/  the pods' SVIDs
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiClient, type Transport } from '../api/client.js';
import { nodeTransport, type Address } from '../api/node-transport.js';
import { EbmeshError, describeError } from '../errors.js';
import type { KubeClient, KubeObject } from '../k8s/client.js';
import { readyEndpointAddresses } from '../k8s/endpoint-address.js';
import { KubeError } from '../k8s/client.js';
import { NodeCredential, type JoinMaterial } from './credential.js';
import { IdentityManager } from './identity.js';
import type { KubernetesSource } from './kubernetes-source.js';
import type { NodeIdentityStatus } from '../api/status.js';

/** The control plane Service's port for agents. */
const AGENTS_PORT_NAME = 'agents';
/** How long a failed enrolment waits before the next try. */
const RETRY_MS = 5000;

export interface KubernetesIdentityOptions {
  client: KubeClient;
  source: KubernetesSource;
  nodeName: string;
  stateDir: string;
  /** The namespace of the control plane's Service and bundle ConfigMap (the agent's own). */
  namespace: string;
  service: string;
  bundleConfigMap: string;
  /** The projected service-account token (audience ebmesh). */
  tokenFile: string;
}

/** The pod's projected token and the bundle from the control plane's ConfigMap: never spent, the kubelet renews the token. */
export function projectedTokenJoin(o: Pick<KubernetesIdentityOptions, 'client' | 'namespace' | 'bundleConfigMap' | 'tokenFile'>): JoinMaterial {
  return {
    async read() {
      let token: string;
      try {
        token = readFileSync(o.tokenFile, 'utf8').trim();
      } catch (e) {
        throw new EbmeshError('EBMESH_UNAUTHENTICATED', `no projected service-account token at ${o.tokenFile}: ${(e as Error).message}`);
      }
      let cm: KubeObject & { data?: Record<string, string> };
      try {
        cm = await o.client.request('GET', `/api/v1/namespaces/${o.namespace}/configmaps/${o.bundleConfigMap}`);
      } catch (e) {
        if (e instanceof KubeError && e.status === 404) {
          throw new EbmeshError('EBMESH_CP_UNAVAILABLE', `ConfigMap ${o.namespace}/${o.bundleConfigMap} (the CA bundle) does not exist yet: the control plane has not started`);
        }
        throw e;
      }
      const caPem = cm.data?.['ca.crt'];
      if (!caPem) throw new EbmeshError('EBMESH_CA_INVALID', `ConfigMap ${o.namespace}/${o.bundleConfigMap} holds no ca.crt`);
      return { token, caPem };
    },
    spent: () => undefined,
    hint: 'the DaemonSet mounts a projected service-account token with audience ebmesh (the Helm chart does)',
  };
}

export class KubernetesIdentity {
  readonly credential: NodeCredential;
  readonly ids: IdentityManager;
  private readonly cp: ApiClient;
  private local: string[] = [];
  private unwatch: (() => void) | undefined;
  private stopped = false;
  private started: Promise<void> | undefined;
  /** The last failure to enrol, until one succeeds. */
  enrolError: string | undefined;

  constructor(private readonly o: KubernetesIdentityOptions) {
    this.credential = new NodeCredential(join(o.stateDir, 'credential'), o.nodeName, projectedTokenJoin(o));
    const peer = `the control plane (Service ${o.namespace}/${o.service})`;
    const opts = {
      peer,
      unreachable: (code: string | undefined) => new EbmeshError('EBMESH_CP_UNAVAILABLE', `${peer} is unreachable: ${code ?? 'no answer'}`),
    };
    // Each call dials an endpoint as the slices say now: the control plane's pod may have moved.
    const at = async () => nodeTransport({ ...(await this.address()), tls: () => this.credential.tls() }, opts);
    const transport: Transport = {
      peer,
      request: async (...a) => (await at()).request(...a),
      stream: async (...a) => (await at()).stream(...a),
    };
    this.cp = new ApiClient(transport, 30_000);
    this.ids = new IdentityManager(join(o.stateDir, 'svid'), o.nodeName, this.cp, () => this.local, join(o.stateDir, 'node-identity'));
  }

  private async address(): Promise<Address> {
    const eps = readyEndpointAddresses(this.o.source.slicesOf(this.o.namespace, this.o.service), AGENTS_PORT_NAME);
    if (!eps[0]) throw new EbmeshError('EBMESH_CP_UNAVAILABLE', `the control plane Service ${this.o.namespace}/${this.o.service} has no ready endpoint on port "${AGENTS_PORT_NAME}"`);
    return eps[0];
  }

  /** The meshed pods of this node (adopted by their cgroup): the ones that get SVIDs. */
  private async refreshLocal(): Promise<void> {
    const snap = await this.o.source.snapshot();
    this.local = snap.workloads.filter((w) => w.spec.node === this.o.nodeName && w.spec.adopt).map((w) => `${w.metadata.namespace}/${w.metadata.name}`);
  }

  /** Enrols (retrying until it works or stop), then keeps every certificate fresh. Returns at once. */
  start(): void {
    this.unwatch = this.o.source.watch(() => void this.refreshLocal().catch(() => undefined));
    this.started = (async () => {
      await this.refreshLocal();
      while (!this.stopped) {
        try {
          await this.credential.ensure(() => this.address(), this.cp.transport.peer, 30_000);
          this.enrolError = undefined;
          break;
        } catch (e) {
          this.enrolError = describeError(e);
          process.stderr.write(`identity: ${this.enrolError}\n`);
          await new Promise((r) => setTimeout(r, RETRY_MS).unref());
        }
      }
      if (this.stopped) return;
      this.credential.startRenewal(this.cp);
      await this.ids.start();
    })();
  }

  status(): NodeIdentityStatus {
    const error = this.enrolError ?? this.credential.lastError ?? this.ids.lastError;
    return {
      controlPlane: this.cp.transport.peer,
      ...(this.credential.notAfter ? { nodeCertExpiry: this.credential.notAfter } : {}),
      ...(error ? { error } : {}),
      svids: this.ids.list().map(({ workload, spiffeId, notAfter, renewals }) => ({ workload, spiffeId, notAfter, renewals })),
    };
  }

  /** A planned stop: the node SVID renewed for the next agent (IdentityManager.handOver), bounded by the caller. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unwatch?.();
    this.credential.stop();
    if (this.credential.notAfter) await this.ids.handOver();
    else this.ids.stop();
  }
}
