/**
 * The control plane of a mesh that spans nodes: the store (etcd, or the
 * embedded file), apply/delete/get for the CLI on the instance's API socket,
 * the CA, and for each node's agent, on a separate listener, its desired
 * state (long-poll), its status reports and its workloads' certificates.
 *
 * That listener speaks mutual TLS only (on TCP and on the lab's unix socket
 * alike): the control plane presents its own certificate
 * (spiffe://TD/ns/ebmesh-system/sa/controlplane, from the mesh CA) and asks
 * each agent for its node certificate; an agent proves which node it is with
 * it, and gets nothing of another node's: not its workloads' commands or env,
 * not their certificates. An agent's first node certificate comes for its
 * join token (join-tokens.ts), once. It never touches the kernel.
 */
import { formatCidr } from '../net/ipam.js';
import type { Server } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EventEmitter } from 'node:events';
import type { Store } from '../store/index.js';
import { EbmeshError } from '../errors.js';
import {
  NODES, deltaFor, desiredFor, isReady, nodeKey, nodePodSubnet, readSnapshot, readyEndpointCount, statusKey, validNodeName, wlKey, workloadIp, workloadNode,
  type NodeDesired, type NodeRecord, type Snapshot,
} from './index.js';
import { CertificateAuthority, createRoot, spiffeId, type IssuedSvid, type RootMaterial } from '../ca/index.js';
import { nodeSpiffeId, SYSTEM_NAMESPACE } from '../tunnel/ids.js';
import { privateDir, writePrivateFile } from '../host/private-files.js';
import { JoinTokens } from './join-tokens.js';
import { AgentListener, requireNodePeer } from './agent-listener.js';
import type { InstancePaths } from '../paths.js';
import { serve, startServer, stopServer, type CallContext, type Handlers } from '../api/server.js';
import { meshApi } from '../api/mesh.js';
import { agentApi, clusterAdminApi } from '../api/controlplane.js';
import type { ClusterStatus } from '../api/status.js';
import { meshHandlers } from './mesh-handlers.js';
import { RejectedLog } from './stored.js';

export interface ControlPlaneOptions {
  paths: InstancePaths;
  store: Store;
  storeDescription: string;
  /** The user's own CA (PEM files); otherwise one is made and kept in the state dir. */
  caCertFile?: string;
  caKeyFile?: string;
  svidTtlSeconds: number;
  /** Lifetime of a node's certificate, the agent's credential here (renewed at half of it). */
  nodeCertTtlSeconds?: number;
  /** Where agents reach us, in mutual TLS: a unix socket path, or HOST:PORT. */
  agentListen: string;
  /** `POST /v1/shutdown`: how the process stops. */
  shutdown: () => void;
}

export interface Heartbeat {
  at: string;
  pid?: number;
  appliedRevision?: number;
  lastReconcile?: { revision: number; at: string; error?: string };
  certs?: Array<{ workload: string; spiffeId: string; notAfter: string; renewals: number }>;
  identityError?: string;
  /** The node's mTLS tunnel endpoint (src/tunnel/endpoint.ts). */
  tunnel?: { listening?: boolean; spiffeId?: string; certExpiry?: string; sessions?: number; streams?: number; streamsDenied?: number; error?: string };
}

/** A node certificate's default lifetime: an agent may be down this long and still come back without a new join token. */
export const NODE_CERT_TTL_SECONDS = 30 * 86_400;

export class ControlPlane {
  readonly store: Store;
  ca!: CertificateAuthority;
  private joinTokens!: JoinTokens;
  private readonly changed = new EventEmitter();
  private revision = 0;
  private snap: Snapshot | undefined;
  private snapLoading: Promise<Snapshot> | undefined;
  private unwatch: (() => void) | undefined;
  /**
   * The keys each recent revision wrote, oldest first, so that an agent at
   * a revision we still cover gets only what changed since (logFloor: the
   * first revision after which the log is complete).
   */
  private log: Array<{ revision: number; keys: string[] }> = [];
  private logKeys = 0;
  private logFloor = 0;
  private agentListener: AgentListener | undefined;
  private adminServer: Server | undefined;
  readonly heartbeats = new Map<string, Heartbeat>();
  private readonly rejected = new RejectedLog((line) => process.stderr.write(line));
  readonly startedAt = new Date();

  constructor(readonly options: ControlPlaneOptions) {
    this.store = options.store;
    this.changed.setMaxListeners(0);
  }

  async start(): Promise<void> {
    const dir = privateDir(join(this.options.paths.stateDir, 'controlplane'));
    this.joinTokens = new JoinTokens(join(dir, 'join-tokens.json'));
    this.ca = await CertificateAuthority.load(await this.loadRoot(dir));
    this.revision = await this.store.revision();
    this.logFloor = this.revision;
    this.unwatch = this.store.watch((ev) => {
      this.revision = Math.max(this.revision, ev.revision);
      this.record(ev.revision, ev.ops.map((o) => o.key));
      this.snap = undefined;
      this.changed.emit('rev');
    });
    this.adminServer = await startServer({ socketPath: this.options.paths.apiSocket }, [
      serve(meshApi, meshHandlers(this.store, {
        // The agents converge on their own: a write is done once it is stored.
        afterWrite: async () => undefined,
        status: () => this.status(),
        shutdown: () => this.options.shutdown(),
      })),
      serve(clusterAdminApi, {
        addNode: ({ name }) => this.addNode(name),
        nodes: async () => ({ items: await this.nodes() }),
      }),
    ]);
    this.agentListener = await AgentListener.start(this.ca, async () => (await this.snapshot()).mesh.spec.trustDomain, this.options.agentListen, [serve(agentApi, this.agentHandlers())]);
  }

  private async loadRoot(dir: string): Promise<RootMaterial> {
    const { caCertFile, caKeyFile } = this.options;
    if (caCertFile || caKeyFile) {
      if (!caCertFile || !caKeyFile) throw new EbmeshError('EBMESH_USAGE', 'bring your own CA with both --ca-cert and --ca-key');
      return { certPem: readFileSync(caCertFile, 'utf8'), keyPem: readFileSync(caKeyFile, 'utf8') };
    }
    const certFile = join(dir, 'root.crt');
    const keyFile = join(dir, 'root.key');
    if (existsSync(certFile) && existsSync(keyFile)) return { certPem: readFileSync(certFile, 'utf8'), keyPem: readFileSync(keyFile, 'utf8') };
    const snap = await readSnapshot(this.store);
    const root = await createRoot(snap.mesh.spec.trustDomain);
    writePrivateFile(keyFile, root.keyPem);
    writePrivateFile(certFile, root.certPem);
    return root;
  }

  private record(revision: number, keys: string[]): void {
    if (keys.length === 0) {
      // The store lost track (etcd compaction, a re-list): nobody gets a delta across it.
      this.log = [];
      this.logKeys = 0;
      this.logFloor = revision;
      return;
    }
    this.log.push({ revision, keys });
    this.logKeys += keys.length;
    // Bounded: beyond it a full view is cheaper than a delta anyway.
    while (this.log.length > 1 && (this.logKeys > 50_000 || this.log.length > 2000)) {
      const old = this.log.shift()!;
      this.logKeys -= old.keys.length;
      this.logFloor = old.revision;
    }
  }

  /** The keys written in (after, upTo], or undefined when the log does not reach back to after or a node changed. */
  private changedSince(after: number, upTo: number): Set<string> | undefined {
    if (after <= 0 || after < this.logFloor || after > upTo) return undefined;
    const keys = new Set<string>();
    for (const e of this.log) {
      if (e.revision <= after || e.revision > upTo) continue;
      for (const k of e.keys) {
        if (k.startsWith(NODES)) return undefined;
        keys.add(k);
      }
    }
    return keys;
  }

  /** The caller is NODE's agent (agent-listener.ts). */
  private async authorize(call: CallContext, node: string): Promise<void> {
    requireNodePeer(call, node, (await this.snapshot()).mesh.spec.trustDomain);
  }

  /** A node certificate for the agent of NODE (the join token or the current certificate proved who asks). */
  private async issueNodeCert(node: string, csrPem: string): Promise<IssuedSvid & { bundlePem: string }> {
    await this.node(node);
    const td = (await this.snapshot()).mesh.spec.trustDomain;
    const svid = await this.ca.issue(csrPem, nodeSpiffeId(td, node), this.options.nodeCertTtlSeconds ?? NODE_CERT_TTL_SECONDS);
    return { ...svid, bundlePem: this.ca.bundlePem };
  }

  async snapshot(): Promise<Snapshot> {
    if (this.snap) return this.snap;
    this.snapLoading ??= readSnapshot(this.store).then((s) => {
      this.snapLoading = undefined;
      this.rejected.note(s.rejected);
      if (s.revision >= this.revision) this.snap = s;
      return s;
    }, (e) => { this.snapLoading = undefined; throw e; });
    return this.snapLoading;
  }

  async nodes(): Promise<NodeRecord[]> {
    return (await this.store.list<NodeRecord>(NODES)).map((e) => e.value).sort((a, b) => a.index - b.index);
  }

  async addNode(name: string): Promise<NodeRecord & { token: string; bundlePem: string }> {
    if (!validNodeName(name)) throw new EbmeshError('EBMESH_USAGE', `invalid node name "${name}" (lower-case letters, digits and "-")`);
    const nodes = await this.nodes();
    let rec = nodes.find((n) => n.name === name);
    if (!rec) {
      const used = new Set(nodes.map((n) => n.index));
      let index = 0;
      while (used.has(index)) index++;
      rec = { name, index };
      await this.store.commit([{ type: 'put', key: nodeKey(name), value: rec }]);
    }
    return { ...rec, token: this.joinTokens.issue(name), bundlePem: this.ca.bundlePem };
  }

  private async node(name: string): Promise<NodeRecord> {
    const rec = (await this.nodes()).find((n) => n.name === name);
    if (!rec) throw new EbmeshError('EBMESH_NOT_FOUND', `node ${name} not found`);
    return rec;
  }

  /** Waits (up to waitS) for a revision after `after`, then answers with the node's desired state. */
  async desired(name: string, after: number, waitS: number): Promise<NodeDesired | { unchanged: true }> {
    const node = await this.node(name);
    if (this.revision <= after) {
      await new Promise<void>((resolve) => {
        const check = () => { if (this.revision > after) finish(); };
        const finish = () => { clearTimeout(t); this.changed.off('rev', check); resolve(); };
        const t = setTimeout(finish, waitS * 1000);
        this.changed.on('rev', check);
      });
      if (this.revision <= after) return { unchanged: true };
    }
    const snap = await this.snapshot();
    const nodes = await this.nodes();
    const changed = this.changedSince(after, snap.revision);
    return changed ? deltaFor(snap, node, nodes, after, changed) : desiredFor(snap, node, nodes);
  }

  async reportStatus(name: string, body: { ops?: Array<{ type: 'put' | 'delete'; key: string; value?: unknown }>; heartbeat?: Omit<Heartbeat, 'at'> }): Promise<{ revision: number }> {
    const nodes = await this.nodes();
    await this.node(name);
    if (body.heartbeat) this.heartbeats.set(name, { ...body.heartbeat, at: new Date().toISOString() });
    const ops = body.ops ?? [];
    if (!ops.length) return { revision: this.revision };
    const snap = await this.snapshot();
    const byKey = new Map(snap.workloads.map((w) => [statusKey('Workload', w.metadata.namespace, w.metadata.name), w]));
    for (const op of ops) {
      const w = byKey.get(op.key);
      // A status of a workload that is gone may be deleted by anyone who had it; any other write must be for a workload of this node.
      if (!w && op.type === 'delete') continue;
      if (!w || workloadNode(w, nodes) !== name) {
        throw new EbmeshError('EBMESH_FORBIDDEN', `node ${name} may not write ${op.key}`);
      }
    }
    const revision = await this.store.commit(ops.map((op) => (op.type === 'put' ? { type: 'put', key: op.key, value: { ...(op.value as object), node: name } } : { type: 'delete', key: op.key })));
    return { revision };
  }

  async issueSvid(name: string, body: { workload?: string; node?: boolean; csrPem: string }): Promise<IssuedSvid & { bundlePem: string }> {
    const nodes = await this.nodes();
    await this.node(name);
    const snap = await this.snapshot();
    // mTLS tunnel: the node's own SVID (its node certificate proved which node asks; see src/tunnel/ids.ts).
    if (body.node) {
      const svid = await this.ca.issue(body.csrPem, nodeSpiffeId(snap.mesh.spec.trustDomain, name), this.options.svidTtlSeconds);
      return { ...svid, bundlePem: this.ca.bundlePem };
    }
    const w = snap.workloads.find((x) => wlKey(x) === body.workload);
    if (!w) throw new EbmeshError('EBMESH_NOT_FOUND', `workload ${body.workload} not found`);
    if (workloadNode(w, nodes) !== name) {
      throw new EbmeshError('EBMESH_FORBIDDEN', `workload ${body.workload} does not run on node ${name}: its identity is not this node's to have`);
    }
    if (w.metadata.namespace === SYSTEM_NAMESPACE) {
      throw new EbmeshError('EBMESH_FORBIDDEN', `workload ${body.workload}: namespace ${SYSTEM_NAMESPACE} holds the nodes' identities, no workload's`);
    }
    const id = spiffeId(snap.mesh.spec.trustDomain, w.metadata.namespace, w.spec.serviceAccount);
    const svid = await this.ca.issue(body.csrPem, id, this.options.svidTtlSeconds);
    return { ...svid, bundlePem: this.ca.bundlePem };
  }

  async status(): Promise<ClusterStatus> {
    const snap = await this.snapshot();
    const nodes = await this.nodes();
    const members = await this.options.store.members?.();
    const now = Date.now();
    return {
      role: 'controlplane',
      instance: this.options.paths.instance,
      pid: process.pid,
      startedAt: this.startedAt.toISOString(),
      store: this.options.storeDescription,
      ...(members?.length ? { storeMembers: members } : {}),
      revision: snap.revision,
      mesh: snap.mesh.spec,
      ...(snap.rejected?.length ? { rejected: snap.rejected } : {}),
      ca: { notAfter: this.ca.notAfter.toISOString(), svidTtlSeconds: this.options.svidTtlSeconds },
      nodes: nodes.map((n) => {
        const hb = this.heartbeats.get(n.name);
        const age = hb ? (now - Date.parse(hb.at)) / 1000 : undefined;
        const expiries = (hb?.certs ?? []).map((c) => c.notAfter).sort();
        return {
          name: n.name, index: n.index, podSubnet: formatCidr(nodePodSubnet(snap.mesh, n.index)),
          healthy: age !== undefined && age < 5, lastHeartbeat: hb?.at, heartbeatAgeSeconds: age,
          appliedRevision: hb?.appliedRevision, lastReconcileError: hb?.lastReconcile?.error, identityError: hb?.identityError,
          certs: hb?.certs?.length ?? 0, earliestCertExpiry: expiries[0],
          tunnel: hb?.tunnel,
          workloads: snap.workloads.filter((w) => workloadNode(w, nodes) === n.name).length,
        };
      }),
      workloads: snap.workloads.map((w) => {
        const st = snap.workloadStatus.get(wlKey(w));
        return {
          name: w.metadata.name, namespace: w.metadata.namespace, node: workloadNode(w, nodes), ip: workloadIp(snap, w),
          phase: w.spec.adopt ? 'Adopted' : w.spec.external ? 'External' : st?.phase ?? 'Pending', ready: isReady(snap, w), message: st?.message,
          identity: spiffeId(snap.mesh.spec.trustDomain, w.metadata.namespace, w.spec.serviceAccount),
        };
      }),
      services: snap.services.map((s) => ({
        name: s.metadata.name, namespace: s.metadata.namespace, clusterIP: s.spec.clusterIP,
        ports: s.spec.ports.map((p) => `${p.port}/${p.protocol}`),
        endpoints: readyEndpointCount(snap, s),
      })),
    };
  }

  /** The agents' routes: each call proves which node it is for with that node's certificate; enroll, with its join token. */
  private agentHandlers(): Handlers<typeof agentApi> {
    return {
      enroll: async ({ node, csrPem }, call) => {
        const token = /^Bearer (.+)$/.exec(call.authorization ?? '')?.[1];
        if (!token || !this.joinTokens.redeem(node, token)) {
          throw new EbmeshError('EBMESH_UNAUTHENTICATED', `no valid join token for node ${node}`, {
            hint: 'a join token enrols once; register the node again (POST /v1/nodes) for a new one',
          });
        }
        return this.issueNodeCert(node, csrPem);
      },
      credential: async ({ node, csrPem }, call) => {
        await this.authorize(call, node);
        return this.issueNodeCert(node, csrPem);
      },
      desired: async ({ node, after, wait }, call) => {
        await this.authorize(call, node);
        return this.desired(node, after, wait);
      },
      report: async ({ node, ops, heartbeat }, call) => {
        await this.authorize(call, node);
        return this.reportStatus(node, { ...(ops ? { ops } : {}), ...(heartbeat ? { heartbeat } : {}) });
      },
      svid: async ({ node, workload, forNode, csrPem }, call) => {
        await this.authorize(call, node);
        return this.issueSvid(node, { ...(workload !== undefined ? { workload } : {}), ...(forNode ? { node: true } : {}), csrPem });
      },
    };
  }

  async stop(): Promise<void> {
    this.unwatch?.();
    stopServer(this.adminServer);
    this.agentListener?.stop();
    await this.store.close();
  }
}
