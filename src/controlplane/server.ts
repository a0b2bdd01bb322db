/**
 * The control plane of a mesh that spans nodes: the store (etcd, or the
 * embedded file), apply/delete/get for the CLI on the instance's API socket,
 * the CA, and for each node's agent, on a separate listener, its desired
 * state (long-poll), its status reports and its workloads' certificates.
 * An agent proves which node it is with that node's join token, and gets
 * nothing of another node's: not its workloads' commands or env, not their
 * certificates. It never touches the kernel.
 */
import { formatCidr } from '../net/ipam.js';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Server } from 'node:http';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EventEmitter } from 'node:events';
import type { Store } from '../store/index.js';
import { EbmeshError, describeError } from '../errors.js';
import {
  NODES, deltaFor, desiredFor, isReady, nodeKey, nodePodSubnet, readSnapshot, readyEndpointCount, statusKey, validNodeName, wlKey, workloadIp, workloadNode,
  type NodeDesired, type NodeRecord, type Snapshot,
} from './index.js';
import { CertificateAuthority, createRoot, spiffeId, type IssuedSvid, type RootMaterial } from '../ca/index.js';
import { nodeSpiffeId, SYSTEM_NAMESPACE } from '../tunnel/ids.js';
import type { InstancePaths } from '../paths.js';
import { serve, startServer, stopServer, type Handlers } from '../api/server.js';
import { meshApi } from '../api/mesh.js';
import { agentApi, clusterAdminApi } from '../api/controlplane.js';
import { parseAddress } from '../api/node-transport.js';
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
  /** Where agents reach us: a unix socket path, or HOST:PORT. */
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

export class ControlPlane {
  readonly store: Store;
  ca!: CertificateAuthority;
  private secret!: Buffer;
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
  private agentServer: Server | undefined;
  private adminServer: Server | undefined;
  readonly heartbeats = new Map<string, Heartbeat>();
  private readonly rejected = new RejectedLog((line) => process.stderr.write(line));
  readonly startedAt = new Date();

  constructor(readonly options: ControlPlaneOptions) {
    this.store = options.store;
    this.changed.setMaxListeners(0);
  }

  async start(): Promise<void> {
    const dir = join(this.options.paths.stateDir, 'controlplane');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.secret = loadOrMake(join(dir, 'node-token.key'), () => randomBytes(32).toString('hex'));
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
    this.agentServer = await startServer(parseAddress(this.options.agentListen), [serve(agentApi, this.agentHandlers())]);
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
    writeFileSync(keyFile, root.keyPem, { mode: 0o600 });
    writeFileSync(certFile, root.certPem, { mode: 0o644 });
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

  /** The token an agent presents for a node: only who holds the control plane's key can make one. */
  nodeToken(node: string): string {
    return createHmac('sha256', this.secret).update(`node:${node}`).digest('hex');
  }

  private authorize(authorization: string | undefined, node: string): void {
    const got = Buffer.from((authorization ?? '').replace(/^Bearer /, ''));
    const want = Buffer.from(this.nodeToken(node));
    if (got.length !== want.length || !timingSafeEqual(got, want)) {
      throw new EbmeshError('EBMESH_FORBIDDEN', `not authorized as node ${node}`, { hint: 'an agent may only act for the node whose token it holds' });
    }
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

  async addNode(name: string): Promise<NodeRecord & { token: string }> {
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
    return { ...rec, token: this.nodeToken(name) };
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
    // mTLS tunnel: the node's own SVID (the token proved which node asks; see src/tunnel/ids.ts).
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
    const now = Date.now();
    return {
      role: 'controlplane',
      instance: this.options.paths.instance,
      pid: process.pid,
      startedAt: this.startedAt.toISOString(),
      store: this.options.storeDescription,
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

  /** The agents' routes: each call proves which node it is for with that node's token. */
  private agentHandlers(): Handlers<typeof agentApi> {
    return {
      desired: async ({ node, after, wait }, call) => {
        this.authorize(call.authorization, node);
        return this.desired(node, after, wait);
      },
      report: async ({ node, ops, heartbeat }, call) => {
        this.authorize(call.authorization, node);
        return this.reportStatus(node, { ...(ops ? { ops } : {}), ...(heartbeat ? { heartbeat } : {}) });
      },
      svid: async ({ node, workload, forNode, csrPem }, call) => {
        this.authorize(call.authorization, node);
        return this.issueSvid(node, { ...(workload !== undefined ? { workload } : {}), ...(forNode ? { node: true } : {}), csrPem });
      },
    };
  }

  async stop(): Promise<void> {
    this.unwatch?.();
    stopServer(this.adminServer);
    stopServer(this.agentServer);
    await this.store.close();
  }
}

function loadOrMake(file: string, make: () => string): Buffer {
  if (!existsSync(file)) writeFileSync(file, make(), { mode: 0o600 });
  return Buffer.from(readFileSync(file, 'utf8').trim());
}
