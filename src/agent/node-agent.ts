/**
 * One node in the embedded default: control plane (store + apply) and agent
 * (lab, datapath) in one process. Every change in the store schedules one
 * reconcile; reconciles never overlap and coalesce while one runs.
 */
import { join } from 'node:path';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { EmbeddedStore, type Store } from '../store/index.js';
import {
  FrontendIndex, nodePodSubnet, readSnapshot, statusKey, defaultMesh, wlKey, isReady, selectedWorkloads, workloadIp,
  type Snapshot, type WorkloadStatus,
} from '../controlplane/index.js';
import { cgroup2Root, ensureBpffs, requireFeatures } from '../kernel/index.js';
import { Datapath, removeDatapath } from './datapath.js';
import { planLb } from './lb-plan.js';
import { PolicyAgent } from '../policy/policy-agent.js';
import type { EndpointRow } from '../policy/policy-plan.js';
import { policyWorld } from '../controlplane/policy.js';
import type { NodeRecord } from '../controlplane/nodes.js';
import { connectionMapSizes } from './map-sizes.js';
import { gatewayOf } from '../host/network.js';
import type { WorkloadResource } from '../resources/index.js';
import { Lab } from '../lab/runtime.js';
import { ensureBridge, ensureUnreachable, listNetns, deleteWorkloadNet, removeBridge, removeUnreachable } from '../host/network.js';
import { cgroupId, ensureCgroup, killCgroup, removeCgroupTree } from '../host/cgroup.js';
import { vethName, type InstancePaths } from '../paths.js';
import type { MeshConfigResource } from '../resources/index.js';
import { describeError } from '../errors.js';
import { formatCidr } from '../resources/ipv4.js';
import { Observer } from '../observe/observer.js';
import { NodeProxyWiring } from './node-proxy/wiring.js';
import { stopOwnedProxy } from '../proxy/control.js';
import { applyMtlsTables } from './mtls-maps.js';
import { localWorkloadIps, mtlsTables, nodeIndexOfPodIp, tunnelDestinations } from '../tunnel/mode.js';
import { ingressTablesFor } from '../policy/tunnel-ingress.js';
import type { CompiledTables } from '../policy/tables.js';
import { applyTunnelDestinations } from './mtls-maps.js';
import type { TunnelPush } from '../proxy/messages.js';
import { nodeAddress } from '../lab/cluster.js';
import { mustParseCidr } from '../net/ipam.js';

/** Unread bytes a shortcut peer may hold before writes take the normal path (or its SO_RCVBUF, if larger). */
const SHORTCUT_MIN_QUEUE = 1 << 20;

/** EBMESH_SHORTCUT_MAX_SOCKETS sizes the shortcut's sockhash when first made (tests fill it on purpose). */
function shortcutMaxEntries(): Record<string, number> | undefined {
  const n = Number(process.env.EBMESH_SHORTCUT_MAX_SOCKETS);
  return Number.isInteger(n) && n > 0 ? { ebm_sc_sockets: n, ebm_sc_peers: n } : undefined;
}

export interface ReconcileInfo {
  revision: number;
  at: string;
  lbOps: number;
  policyOps?: number;
  error?: string;
}

/** What differs for an agent of a multi-node mesh; the embedded default passes nothing. */
export interface NodeOptions {
  /** The node's view of the desired state (a mirror of the control plane's), instead of the embedded store. */
  store?: Store;
  /** The node's /24 of the pod CIDR. */
  nodeIndex?: number;
  /** Workloads route the whole pod CIDR through the node (other nodes' pods are behind it). */
  routePodCIDR?: boolean;
  /** Every node of the mesh (name, index), as the control plane last said: whose pods are where. */
  nodes?: () => readonly NodeRecord[];
}

export class NodeDaemon {
  store!: Store;
  datapath!: Datapath;
  lab!: Lab;
  policy!: PolicyAgent;
  observer: Observer | undefined;
  meshCgroup = '';
  private mesh: MeshConfigResource = defaultMesh;
  get meshConfig(): MeshConfigResource { return this.mesh; }
  private hostRoutes: string[] = [];
  private reconciling: Promise<void> | undefined;
  private dirty = false;
  private bridgeReady = false;
  private retry: NodeJS.Timeout | undefined;
  private unwatch: (() => void) | undefined;
  /** Desired LB frontends, recomputed per change rather than per snapshot (convergence). */
  private readonly frontends = new FrontendIndex();
  last: ReconcileInfo | undefined;
  readonly startedAt = new Date();
  /** The node proxy (issue 6): started once a Service has L7 rules. */
  readonly l7: NodeProxyWiring;
  /** The policy tables the proxy's tunnel endpoint last got. */
  private tunnelPolicy: CompiledTables | undefined;

  constructor(readonly paths: InstancePaths, readonly nodeName = 'node-1', readonly options: NodeOptions = {}) {
    this.l7 = new NodeProxyWiring(paths, Number(process.env.EBMESH_PROXY_WORKERS ?? 0) || undefined, options.nodeIndex ?? 0, process.env.EBMESH_PROXY_NODE_FLAGS ?? '');
  }

  private routeCheck: NodeJS.Timeout | undefined;

  async start(): Promise<void> {
    requireFeatures();
    ensureBpffs();
    this.meshCgroup = join(cgroup2Root(), this.paths.cgroupName);
    ensureCgroup(this.meshCgroup);
    mkdirSync(this.paths.stateDir, { recursive: true });
    this.store = this.options.store ?? new EmbeddedStore(this.paths.storeFile);
    const snap = await readSnapshot(this.store);
    this.mesh = snap.mesh;
    this.ensureHostRoutes(); // before anything could send to a VIP
    this.datapath = new Datapath(this.paths);
    const kept = this.datapath.load({ maxEntries: { ...connectionMapSizes(snap.mesh), ...shortcutMaxEntries() } });
    for (const k of kept) {
      process.stderr.write(`datapath: map ${k.name} keeps its pinned size ${k.pinned.maxEntries} (flags ${k.pinned.flags}) instead of ${k.wanted.maxEntries} (flags ${k.wanted.flags}): its entries are live state; the new size applies once the maps are made again (ebmesh down, then up)\n`);
    }
    this.policy = new PolicyAgent(this.datapath.policy, join(this.paths.stateDir, 'identities.json'));
    // Policy maps before the programs are (re)attached: a fresh node must
    // not run programs over empty tables while workloads already exist.
    await this.reconcilePolicy(snap);
    this.datapath.attach(this.meshCgroup, 'root');
    this.startObserver();
    this.lab = new Lab(
      this.paths,
      this.meshCgroup,
      () => nodePodSubnet(this.mesh, this.options.nodeIndex),
      () => this.mesh.spec.serviceCIDR,
      (ns, name, st) => void this.reportStatus(ns, name, st),
      this.options.routePodCIDR ? () => this.mesh.spec.podCIDR : undefined,
    );
    this.lab.onCgroup = (w, cg) => {
      const id = cgroupId(cg);
      const identity = this.policy.identityOf(w);
      if (id !== undefined && identity !== undefined) this.policy.putEndpoint({ cgroupId: id, identity, ...(w.spec.ip ? { ip: w.spec.ip } : {}) });
    };
    this.lab.restore(snap.workloads, snap.workloadStatus);
    this.unwatch = this.store.watch(() => this.schedule());
    await this.reconcileNow();
    // The safety routes are the host's, and anyone may remove them: put them back.
    this.routeCheck = setInterval(() => {
      try { this.ensureHostRoutes(); } catch (e) { process.stderr.write(`host routes: ${describeError(e)}\n`); }
    }, 5000);
    this.routeCheck.unref();
  }

  /** Flows and metrics: from the first event on; a failure here never stops the node. */
  private startObserver(): void {
    const dp = this.datapath;
    const observer = new Observer(this.paths, {
      ring: () => {
        const m = dp.rawMap('ebm_events');
        return { fd: m.fd, bytes: m.info.maxEntries };
      },
      identityOf: (w) => this.policy.identityOf(w),
      policyRefs: () => this.policy.tables?.refs ?? [],
      health: () => ({ programs: dp.programCount(), maps: dp.mapFill(), kernelCounters: dp.countersSnapshot() }),
    });
    // Cross-node mTLS streams are seen by the node proxy, not the kernel: both ends become flows with mtls=true.
    const hostPort = (a: string) => { const i = a.lastIndexOf(':'); return { ip: a.slice(0, i), port: Number(a.slice(i + 1)) }; };
    this.l7.tunnelSinks.push({
      received: (f) => observer.recordTunnel({
        time: new Date(Date.now() - f.durationMs).toISOString(), observer: 'server', source: { ip: f.sourceIp ?? '', port: 0 }, destination: f.dst,
        bytesToDestination: f.bytesIn, bytesToSource: f.bytesOut, durationMs: f.durationMs, peerIdentity: f.peerId,
        ...(f.sourceId ? { sourceIdentity: f.sourceId } : {}), ...(f.error ? { error: f.error } : {}), ...(f.denied ? { denied: f.denied } : {}),
      }),
      sent: (f) => observer.recordTunnel({
        time: f.at, observer: 'client', source: { ip: f.clientIp, port: f.clientPort }, destination: hostPort(f.dst),
        bytesToDestination: f.bytesOut, bytesToSource: f.bytesIn, durationMs: f.durationMs, sourceIdentity: f.client,
        ...(f.peerId ? { peerIdentity: f.peerId } : {}), ...(f.error ? { error: f.error } : {}),
      }),
    });
    try {
      observer.start();
      this.observer = observer;
      mkdirSync(this.paths.runDir, { recursive: true });
      observer.serveMetrics().catch((e) => process.stderr.write(`metrics: ${describeError(e)}\n`));
    } catch (e) {
      process.stderr.write(`observe: ${describeError(e)}\n`);
    }
  }

  /** Unreachable routes on the host for the service and pod CIDRs: nothing meant for them may leave. */
  private ensureHostRoutes(): void {
    const want = [this.mesh.spec.serviceCIDR, this.mesh.spec.podCIDR];
    for (const old of this.hostRoutes) if (!want.includes(old)) removeUnreachable(old);
    for (const c of want) ensureUnreachable(c);
    this.hostRoutes = want;
  }

  private async reportStatus(ns: string, name: string, st: WorkloadStatus | undefined): Promise<void> {
    const key = statusKey('Workload', ns, name);
    await this.store.commit([st ? { type: 'put', key, value: { ...st, node: this.nodeName } } : { type: 'delete', key }]);
  }

  schedule(): void {
    if (this.reconciling) {
      this.dirty = true;
      return;
    }
    this.reconciling = this.reconcileLoop().finally(() => (this.reconciling = undefined));
  }

  /** Runs a reconcile now (or joins the one running) and waits for it. */
  async reconcileNow(): Promise<void> {
    this.dirty = true;
    if (!this.reconciling) this.schedule();
    await this.reconciling;
  }

  private async reconcileLoop(): Promise<void> {
    do {
      this.dirty = false;
      const snap = await readSnapshot(this.store);
      try {
        await this.reconcile(snap);
      } catch (e) {
        this.last = { revision: snap.revision, at: new Date().toISOString(), lbOps: 0, error: describeError(e) };
        process.stderr.write(`reconcile at revision ${snap.revision} failed: ${describeError(e)}\n`);
        // A failure may be passing (a device still going away): try again soon.
        this.retry ??= setTimeout(() => { this.retry = undefined; this.schedule(); }, 1000);
        this.retry.unref();
      }
    } while (this.dirty);
  }

  /**
   * Cross-node mTLS (issue 7), once the node has its SVID: which remote pod
   * IPs go through the tunnel, and what the proxy needs to send into it and
   * to run the node's receiving endpoint.
   */
  private tunnelPlan(snap: Snapshot): { dsts: string[]; push?: TunnelPush } {
    const svidDir = join(this.paths.stateDir, 'node-svid');
    if (!existsSync(join(svidDir, 'cert.pem'))) return { dsts: [] };
    const pod = mustParseCidr(snap.mesh.spec.podCIDR);
    const local = nodePodSubnet(snap.mesh, this.options.nodeIndex);
    const dsts = tunnelDestinations(snap, pod, local);
    // Names of the nodes by index: the sender expects the right node at each
    // peer, and the receiver lets a peer speak only for its own pods.
    const names = new Map((this.options.nodes?.() ?? []).map((n) => [n.index, n.name]));
    const peers = new Map<number, [string, string, string]>();
    for (const ip of dsts) {
      const i = nodeIndexOfPodIp(pod, ip)!;
      // The lab's node addresses (src/lab/cluster.ts); real nodes would publish theirs in their node record.
      if (!peers.has(i)) peers.set(i, [formatCidr(nodePodSubnet(snap.mesh, i)), names.get(i) ?? '', nodeAddress(i)]);
    }
    names.set(this.options.nodeIndex ?? 0, this.nodeName);
    const nodes = [...names].map(([i, name]) => [name, formatCidr(nodePodSubnet(snap.mesh, i))] as [string, string]);
    const localIps = localWorkloadIps(snap, local);
    // The tables of this pass's policy reconcile when there are some yet (reconcile pushes again once they change).
    const tables = this.policy.tables;
    this.tunnelPolicy = tables;
    return {
      dsts,
      push: { svidDir, trustDomain: snap.mesh.spec.trustDomain, peers: [...peers.values()], nodes, localIps, dsts, podCidr: snap.mesh.spec.podCIDR, ...(tables ? { policy: ingressTablesFor(tables, localIps) } : {}) },
    };
  }

  private async reconcile(snap: Snapshot): Promise<void> {
    // The node proxy before the LB maps: a frontend is flagged L7 only once
    // the proxy listens where the kernel sends those connections.
    const xnode = this.tunnelPlan(snap);
    await this.l7.reconcile(snap, this.datapath, xnode.push);
    // Cross-node mTLS: steer remote destinations only once the proxy listens.
    const xnodeObj = this.datapath.objectWith('ebm_xnode_dsts');
    if (xnodeObj) applyTunnelDestinations(xnodeObj, this.l7.address ? xnode.dsts : []);
    // The kernel's tables first: they decide what connections do now, and
    // depend on nothing the lab does below.
    const frontends = this.frontends.compute(snap);
    const ops = planLb(this.datapath.lb.current(), frontends);
    this.datapath.lb.apply(ops);
    const policyOps = await this.reconcilePolicy(snap);

    this.datapath.configureShortcut({
      enabled: snap.mesh.spec.sameNodeShortcut, subnet: formatCidr(nodePodSubnet(snap.mesh, this.options.nodeIndex)), minQueue: SHORTCUT_MIN_QUEUE,
    });

    const meshChanged = snap.mesh.spec.serviceCIDR !== this.mesh.spec.serviceCIDR || snap.mesh.spec.podCIDR !== this.mesh.spec.podCIDR;
    this.mesh = snap.mesh;
    if (meshChanged) this.ensureHostRoutes();
    const lab = snap.workloads.filter((w) => w.spec.command);
    if (lab.length && (!this.bridgeReady || meshChanged)) {
      ensureBridge(this.paths.bridge, nodePodSubnet(this.mesh, this.options.nodeIndex));
      this.bridgeReady = true;
    }
    await this.lab.sync(snap.workloads);

    // Workloads the lab did not make join by their own cgroup.
    const adoptTags = new Set<string>();
    for (const w of snap.workloads) {
      if (!w.spec.adopt) continue;
      // bpffs refuses names with dots; DNS labels never hold "_".
      const tag = `adopt_${w.metadata.namespace}_${w.metadata.name}`;
      adoptTags.add(tag);
      const cg = w.spec.adopt.cgroup.startsWith('/') ? w.spec.adopt.cgroup : join(cgroup2Root(), w.spec.adopt.cgroup);
      this.datapath.attach(cg, tag);
    }
    for (const tag of this.datapath.attachedTags()) {
      if (tag.startsWith('adopt_') && !adoptTags.has(tag)) this.datapath.detach(tag);
    }

    // mTLS strict mode: which workloads refuse plaintext from outside the node.
    const mtlsObj = this.datapath.objectWith('ebm_mtls_workloads');
    if (mtlsObj) applyMtlsTables(mtlsObj, mtlsTables(snap, nodePodSubnet(this.mesh, this.options.nodeIndex)));

    this.lab.writeHosts(snap.workloads, snap.services, this.mesh.spec.trustDomain);
    // Cgroups the lab made in this pass got their endpoint entry before
    // their first process; this pass of the plan then keeps them.
    await this.reconcilePolicy(snap);
    // The tunnel endpoint judges NetworkPolicy with the tables this pass compiled, not the last pass's.
    if (xnode.push && this.policy.tables !== this.tunnelPolicy) await this.l7.reconcile(snap, this.datapath, this.tunnelPlan(snap).push);
    // After the policy pass: flows carry the identities it allocated.
    this.observer?.update(snap, frontends);
    this.last = { revision: snap.revision, at: new Date().toISOString(), lbOps: ops.length, policyOps };
    // A large change leaves hundreds of MB of garbage that an idle daemon
    // would keep for good (V8 collects under allocation pressure, and an
    // idle agent makes none): give it back now.
    if (ops.length > 1000) (globalThis as { gc?: () => void }).gc?.();
  }

  /** This node's workload cgroups with their identities (lab and adopted). */
  private endpoints(snap: Snapshot, identityOf: (w: WorkloadResource) => number | undefined): EndpointRow[] {
    const rows: EndpointRow[] = [];
    for (const w of snap.workloads) {
      const cg = w.spec.adopt
        ? (w.spec.adopt.cgroup.startsWith('/') ? w.spec.adopt.cgroup : join(cgroup2Root(), w.spec.adopt.cgroup))
        : w.spec.command ? this.lab?.cgroupOf(w) ?? join(this.meshCgroup, 'workloads', `${w.metadata.namespace}.${w.metadata.name}`) : undefined;
      const id = cg === undefined ? undefined : cgroupId(cg);
      const identity = identityOf(w);
      const ip = workloadIp(snap, w);
      if (id !== undefined && identity !== undefined) rows.push({ cgroupId: id, identity, ...(ip ? { ip } : {}) });
    }
    return rows;
  }

  private async reconcilePolicy(snap: Snapshot): Promise<number> {
    const hostIps = [gatewayOf(nodePodSubnet(snap.mesh, this.options.nodeIndex))];
    return this.policy.reconcile(policyWorld(snap), (idOf) => this.endpoints(snap, idOf), hostIps);
  }

  async status(): Promise<Record<string, unknown>> {
    const snap = await readSnapshot(this.store);
    return {
      instance: this.paths.instance,
      node: this.nodeName,
      pid: process.pid,
      startedAt: this.startedAt.toISOString(),
      revision: snap.revision,
      lastReconcile: this.last,
      memory: (({ rss, heapUsed, heapTotal, external }) => ({ rss, heapUsed, heapTotal, external }))(process.memoryUsage()),
      mesh: snap.mesh.spec,
      proxy: await this.l7.status(),
      datapath: {
        attached: this.datapath.attachedTags(),
        counters: this.datapath.countersSnapshot(),
        drops: this.datapath.policy.dropCounts(),
        maps: this.datapath.mapFill(),
      },
      observe: this.observer?.stats(),
      workloads: snap.workloads.map((w) => {
        const st = snap.workloadStatus.get(wlKey(w));
        return {
          name: w.metadata.name, namespace: w.metadata.namespace, ip: workloadIp(snap, w),
          phase: w.spec.adopt ? 'Adopted' : st?.phase ?? 'Pending', ready: isReady(snap, w), pid: st?.pid, message: st?.message,
        };
      }),
      services: snap.services.map((s) => ({
        name: s.metadata.name, namespace: s.metadata.namespace, clusterIP: s.spec.clusterIP,
        ports: s.spec.ports.map((p) => `${p.port}/${p.protocol}`),
        endpoints: selectedWorkloads(s, snap.workloads).filter((w) => isReady(snap, w)).length,
      })),
    };
  }

  /** Stops the daemon. With teardown, everything the instance made goes too. */
  async stop(teardown: boolean): Promise<void> {
    this.unwatch?.();
    clearInterval(this.routeCheck);
    await this.reconciling;
    await this.observer?.stop();
    await this.l7.stop(teardown);
    if (teardown) await this.lab.stopAll();
    this.datapath.close();
    await this.store.close();
    if (teardown) await teardownInstance(this.paths, this.mesh);
  }
}

/**
 * Removes everything an instance made, from its names alone: it works after
 * a crash, with or without a daemon.
 */
export async function teardownInstance(paths: InstancePaths, mesh?: MeshConfigResource): Promise<void> {
  let cfg = mesh;
  if (!cfg && existsSync(paths.storeFile)) {
    try {
      const raw = JSON.parse(readFileSync(paths.storeFile, 'utf8')) as { entries: Record<string, { value: MeshConfigResource }> };
      cfg = raw.entries['/resources/MeshConfig/mesh']?.value;
    } catch { /* a broken store: fall back to the defaults */ }
  }
  let meshCg: string | undefined;
  let proxyCg: string | undefined;
  try {
    const root = cgroup2Root();
    meshCg = join(root, paths.cgroupName);
    proxyCg = join(root, paths.proxyCgroupName);
  } catch { /* no cgroup v2: nothing there */ }
  if (meshCg) await killCgroup(meshCg);
  // The node proxy lives outside the mesh cgroup (it outlives agents): stopped by its PID, then anything left in its own cgroup.
  await stopOwnedProxy(paths);
  if (proxyCg) await killCgroup(proxyCg);
  removeDatapath(paths);
  for (const ns of listNetns(paths.netnsPrefix)) {
    const rest = ns.slice(paths.netnsPrefix.length);
    deleteWorkloadNet(ns, vethName(paths.instance, rest.replace('.', '/')));
  }
  removeBridge(paths.bridge);
  // Only the routes this instance is known to have made: another instance
  // may use the default ranges, and its safety routes must stay.
  if (cfg) {
    removeUnreachable(cfg.spec.serviceCIDR);
    removeUnreachable(cfg.spec.podCIDR);
  }
  if (meshCg) removeCgroupTree(meshCg);
  if (proxyCg) removeCgroupTree(proxyCg);
  rmSync(paths.stateDir, { recursive: true, force: true });
  rmSync(paths.runDir, { recursive: true, force: true });
}
