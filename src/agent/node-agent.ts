/**
 * The node agent: one per node. It reads the desired state from a source
 * (source.ts), plans what the node must hold (plan.ts, pure) and applies it
 * (apply.ts): BPF programs and maps, the lab's workloads, the node proxy.
 * Every change of the source schedules one pass; passes never overlap and
 * coalesce while one runs.
 *
 * The agent never writes desired state. Stopping it leaves the data path in
 * place (pinned programs and maps, the detached node proxy, the workloads);
 * the next agent adopts all of it.
 */
import { join } from 'node:path';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { RejectedLog } from '../controlplane/stored.js';
import { FrontendIndex, isReady, meshRanges, nodePodSubnet, nodePodSubnet6, readyEndpointCount, wlKey, workloadIp, type NodeRecord, type Snapshot } from '../controlplane/index.js';
import { cgroup2Root, ensureBpffs, requireFeatures } from '../kernel/index.js';
import { Datapath, removeDatapath } from './datapath.js';
import { PolicyAgent } from '../policy/policy-agent.js';
import { connectionMapSizes } from './map-sizes.js';
import type { MeshConfigResource } from '../resources/index.js';
import { Lab } from '../lab/runtime.js';
import { deleteWorkloadNet, listNetns, removeBridge, removeUnreachable } from '../host/network.js';
import { cgroupId, ensureCgroup, killCgroup, removeCgroupTree } from '../host/cgroup.js';
import { vethName, type InstancePaths } from '../paths.js';
import { describeError } from '../errors.js';
import { privateDir } from '../host/private-files.js';
import { Observer } from '../observe/observer.js';
import { metricsListen } from '../observe/metrics-access.js';
import { renderProxyMetrics } from '../proxy/process-metrics.js';
import { NodeProxyWiring } from './node-proxy/wiring.js';
import { stopOwnedProxy } from '../proxy/control.js';
import type { NodeIdentityStatus, NodeStatus } from '../api/status.js';
import { applyPlan, HostRoutes, LabBridge, recordedSafetyRoutes, safetyRoutesFile, type NodeParts } from './apply.js';
import { planNode, type NodeContext, type PlanMemo } from './plan.js';
import type { DesiredStateSource } from './source.js';

/** EBMESH_SHORTCUT_MAX_SOCKETS sizes the shortcut's sockhash when first made (tests fill it on purpose). */
function shortcutMaxEntries(): Record<string, number> | undefined {
  const n = Number(process.env.EBMESH_SHORTCUT_MAX_SOCKETS);
  return Number.isInteger(n) && n > 0 ? { ebm_sc_sockets: n, ebm_sc_peers: n } : undefined;
}

/** How often the host's safety routes are put back (anyone may remove them). */
const ROUTE_CHECK_MS = 5000;

export interface ReconcileInfo {
  revision: number;
  at: string;
  lbOps: number;
  policyOps?: number;
  error?: string;
}

/** What differs between the agents of the embedded default and of a mesh of several nodes. */
export interface NodeAgentOptions {
  nodeName: string;
  /** The node's /24 of the pod CIDR. */
  nodeIndex: number;
  /** Lab workloads route the whole pod CIDR through the node (other nodes' pods are behind it). */
  routePodCIDR: boolean;
  /** A peer node's tunnel endpoint address, by its index. */
  nodeAddress: (index: number) => string;
  /**
   * In a Kubernetes cluster: the mesh is the node's service proxy (the host's
   * sockets get the load balancer too), and the CNI, not the mesh, makes the
   * pod bridge.
   */
  cluster?: boolean;
}

export class NodeAgent {
  datapath!: Datapath;
  lab!: Lab;
  policy!: PolicyAgent;
  observer: Observer | undefined;
  meshCgroup = '';
  private mesh: MeshConfigResource | undefined;
  private reconciling: Promise<void> | undefined;
  private dirty = false;
  private retry: NodeJS.Timeout | undefined;
  private unwatch: (() => void) | undefined;
  private routeCheck: NodeJS.Timeout | undefined;
  private readonly routes: HostRoutes;
  /** Incremental answers of the plan's pure functions (frontends per Service, the last policy compile). */
  private readonly memo: PlanMemo = { frontends: new FrontendIndex() };
  last: ReconcileInfo | undefined;
  readonly startedAt = new Date();
  /** The node's certificates, where a control plane issues them (set by the process that keeps them). */
  identityStatus: (() => NodeIdentityStatus) | undefined;
  /** The node proxy: started once a Service has L7 rules or the node has its SVID. */
  readonly l7: NodeProxyWiring;
  private readonly bridge: LabBridge;
  private readonly rejected = new RejectedLog((line) => process.stderr.write(line));

  constructor(readonly paths: InstancePaths, readonly source: DesiredStateSource, readonly options: NodeAgentOptions) {
    this.bridge = new LabBridge(paths.bridge);
    this.routes = new HostRoutes(safetyRoutesFile(paths));
    this.l7 = new NodeProxyWiring(paths, Number(process.env.EBMESH_PROXY_WORKERS ?? 0) || undefined, process.env.EBMESH_PROXY_NODE_FLAGS ?? '', options.cluster === true);
  }

  get nodeName(): string {
    return this.options.nodeName;
  }

  private context(nodes: readonly NodeRecord[]): NodeContext {
    return {
      nodeName: this.options.nodeName,
      nodeIndex: this.options.nodeIndex,
      routePodCIDR: this.options.routePodCIDR,
      nodes,
      nodeAddress: this.options.nodeAddress,
      cgroupRoot: cgroup2Root(),
      meshCgroup: this.meshCgroup,
      svidDir: join(this.paths.stateDir, 'node-svid'),
      ...(this.options.cluster ? { serveHost: true } : {}),
    };
  }

  private plan(snap: Snapshot) {
    const ctx = this.context(this.source.nodes());
    return planNode(snap, ctx, { nodeSvid: existsSync(join(ctx.svidDir, 'cert.pem')), identities: this.policy.identities }, this.memo);
  }

  async start(): Promise<void> {
    requireFeatures();
    ensureBpffs(!this.options.cluster);
    this.meshCgroup = join(cgroup2Root(), this.paths.cgroupName);
    ensureCgroup(this.meshCgroup);
    privateDir(this.paths.stateDir);
    const snap = await this.source.snapshot();
    this.mesh = snap.mesh;
    this.routes.ensure(meshRanges(snap.mesh)); // before anything could send to a VIP
    this.datapath = new Datapath(this.paths);
    const kept = this.datapath.load({ maxEntries: { ...connectionMapSizes(snap.mesh), ...shortcutMaxEntries() } });
    for (const k of kept) {
      process.stderr.write(`datapath: map ${k.name} keeps its pinned size ${k.pinned.maxEntries} (flags ${k.pinned.flags}) instead of ${k.wanted.maxEntries} (flags ${k.wanted.flags}): its entries are live state; the new size applies once the maps are made again (ebmesh down, then up)\n`);
    }
    this.policy = new PolicyAgent(this.datapath.policy, join(this.paths.stateDir, 'identities.json'));
    this.lab = new Lab(
      this.paths,
      this.meshCgroup,
      () => {
        const mesh = this.currentMesh();
        const subnet6 = nodePodSubnet6(mesh, this.options.nodeIndex);
        return {
          subnet: this.podSubnet(), ...(subnet6 ? { subnet6 } : {}), unreachable: meshRanges(mesh),
          ...(this.options.routePodCIDR ? { podCIDR: mesh.spec.podCIDR } : {}),
        };
      },
      (ns, name, st) => void this.source.reportStatus(ns, name, st).catch((e) => process.stderr.write(`workload ${ns}/${name}: status not recorded: ${describeError(e)}\n`)),
    );
    // Policy maps before the programs are (re)attached: a fresh node must
    // not run programs over empty tables while workloads already exist.
    this.policy.apply(this.plan(snap).policy, cgroupId);
    this.datapath.attach(this.meshCgroup, 'root');
    this.startObserver();
    this.lab.restore(snap.workloads, snap.workloadStatus);
    this.unwatch = this.source.watch(() => this.schedule());
    await this.reconcileNow();
    this.routeCheck = setInterval(() => {
      try { this.routes.recheck(); } catch (e) { process.stderr.write(`host routes: ${describeError(e)}\n`); }
    }, ROUTE_CHECK_MS);
    this.routeCheck.unref();
  }

  private currentMesh(): MeshConfigResource {
    if (!this.mesh) throw new Error('the agent has not read its desired state yet');
    return this.mesh;
  }

  private podSubnet() {
    return nodePodSubnet(this.currentMesh(), this.options.nodeIndex);
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
      // The node proxy's counters come with the agent's: one scrape target per node, behind one token.
      observer.extraMetrics = async () => {
        const s = await this.l7.stats();
        return s ? renderProxyMetrics(s) : '';
      };
      // Ready as `ebmesh status` exits 0: the agent answers and its last reconcile did not fail.
      observer.readiness = () => !this.last?.error;
      privateDir(this.paths.runDir);
      const listen = metricsListen(this.paths);
      if (listen) observer.serveMetrics(listen).catch((e) => process.stderr.write(`metrics: ${describeError(e)}\n`));
    } catch (e) {
      process.stderr.write(`observe: ${describeError(e)}\n`);
    }
  }

  schedule(): void {
    if (this.reconciling) {
      this.dirty = true;
      return;
    }
    this.reconciling = this.reconcileLoop().finally(() => (this.reconciling = undefined));
  }

  /** Runs a pass now (or joins the one running) and waits for it. */
  async reconcileNow(): Promise<void> {
    this.dirty = true;
    if (!this.reconciling) this.schedule();
    await this.reconciling;
  }

  private parts(): NodeParts {
    return { datapath: this.datapath, policy: this.policy, proxy: this.l7, lab: this.lab, observer: this.observer, bridge: this.bridge, routes: this.routes };
  }

  private async reconcileLoop(): Promise<void> {
    do {
      this.dirty = false;
      let revision = 0;
      try {
        const snap = await this.source.snapshot();
        revision = snap.revision;
        this.rejected.note(snap.rejected);
        const plan = this.plan(snap);
        this.mesh = plan.mesh;
        const r = await applyPlan(plan, this.parts());
        this.last = { revision, at: new Date().toISOString(), ...r };
        // A large change leaves hundreds of MB of garbage that an idle agent
        // would keep for good (V8 collects under allocation pressure, and an
        // idle agent makes none): give it back now.
        if (r.lbOps > 1000) (globalThis as { gc?: () => void }).gc?.();
      } catch (e) {
        this.last = { revision, at: new Date().toISOString(), lbOps: 0, error: describeError(e) };
        process.stderr.write(`reconcile at revision ${revision} failed: ${describeError(e)}\n`);
        // A failure may be passing (a device still going away): try again soon.
        this.retry ??= setTimeout(() => { this.retry = undefined; this.schedule(); }, 1000);
        this.retry.unref();
      }
    } while (this.dirty);
  }

  async status(): Promise<NodeStatus> {
    const snap = await this.source.snapshot();
    const proxy = await this.l7.status();
    return {
      role: 'node',
      instance: this.paths.instance,
      node: this.nodeName,
      source: this.source.description,
      pid: process.pid,
      startedAt: this.startedAt.toISOString(),
      revision: snap.revision,
      ...(this.last ? { lastReconcile: this.last } : {}),
      ...(snap.rejected?.length ? { rejected: snap.rejected } : {}),
      memory: (({ rss, heapUsed, heapTotal, external }) => ({ rss, heapUsed, heapTotal, external }))(process.memoryUsage()),
      mesh: snap.mesh.spec,
      ...(proxy ? { proxy } : {}),
      datapath: {
        attached: this.datapath.attachedTags(),
        counters: this.datapath.countersSnapshot(),
        drops: this.datapath.policy.dropCounts(),
        maps: this.datapath.mapFill(),
      },
      ...(this.observer ? { observe: this.observer.stats() } : {}),
      ...(this.identityStatus ? { identity: this.identityStatus() } : {}),
      workloads: snap.workloads.map((w) => {
        const st = snap.workloadStatus.get(wlKey(w));
        const ip = workloadIp(snap, w);
        return {
          name: w.metadata.name, namespace: w.metadata.namespace, ...(ip ? { ip } : {}), ...(w.spec.ipv6 ? { ipv6: w.spec.ipv6 } : {}),
          phase: w.spec.adopt ? 'Adopted' : st?.phase ?? 'Pending', ready: isReady(snap, w),
          ...(st?.pid !== undefined ? { pid: st.pid } : {}), ...(st?.message ? { message: st.message } : {}),
        };
      }),
      services: snap.services.map((s) => ({
        name: s.metadata.name, namespace: s.metadata.namespace, ...(s.spec.clusterIP ? { clusterIP: s.spec.clusterIP } : {}),
        ...(s.spec.clusterIPs && s.spec.clusterIPs.length > 1 ? { clusterIPs: s.spec.clusterIPs } : {}),
        ports: s.spec.ports.map((p) => `${p.port}/${p.protocol}`),
        endpoints: readyEndpointCount(snap, s),
      })),
    };
  }

  /** Stops the agent. With teardown, everything the instance made goes too. */
  async stop(teardown: boolean): Promise<void> {
    this.unwatch?.();
    clearInterval(this.routeCheck);
    clearTimeout(this.retry);
    await this.reconciling;
    await this.observer?.stop();
    await this.l7.stop(teardown);
    if (teardown) await this.lab.stopAll();
    this.datapath.close();
    await this.source.close();
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
  // Only the routes this instance is known to have made (its MeshConfig's, and
  // those its agents recorded): another instance may use the default ranges,
  // and its safety routes must stay.
  for (const c of new Set([...(cfg ? meshRanges(cfg) : []), ...recordedSafetyRoutes(safetyRoutesFile(paths))])) removeUnreachable(c);
  if (meshCg) removeCgroupTree(meshCg);
  if (proxyCg) removeCgroupTree(proxyCg);
  rmSync(paths.stateDir, { recursive: true, force: true });
  rmSync(paths.runDir, { recursive: true, force: true });
}
