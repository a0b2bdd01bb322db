/**
 * Decide: everything one node must hold, computed from a snapshot of the
 * desired state as a pure function (no kernel, no files, no processes).
 * `apply.ts` then carries the plan out in one order. The only inputs beside
 * the snapshot are the node's context (names and places, fixed for the
 * agent's life) and a few observed facts (the identity table as allocated so
 * far, whether the node has its certificate).
 */
import { join } from 'node:path';
import {
  computeFrontends, computeProxyConfig, clientIdentities, meshRanges, nodePodSubnet, nodePodSubnet6, workloadIp, workloadIpv6,
  type ClientIdentity, type DesiredFrontend, type FrontendIndex, type NodeRecord, type Snapshot,
} from '../controlplane/index.js';
import { localWorkloadIps, mtlsTables, nodeIndexOfPodIp, tunnelDestinations, type MtlsTables } from '../controlplane/mtls-mode.js';
import { IDENTITY_HOST, policyWorldOf, type CompiledTables, type IdentityTable } from '../policy/index.js';
import { ingressTablesFor } from '../policy/tunnel-ingress.js';
import { decidePolicy, type CompileMemo, type PlannedEndpoint, type PolicyPlan } from '../policy/node-policy.js';
import type { MeshConfigResource, ServiceResource, WorkloadResource } from '../resources/index.js';
import { formatCidr, mustParseCidr, type Cidr } from '../net/ipam.js';
import type { ProxyRoutingConfig } from '../proxy/index.js';
import { DEFAULT_DRAIN_MS, type TunnelPush } from '../proxy/messages.js';
import { gatewayOf } from '../host/network.js';
import { labCgroupOf } from '../lab/runtime.js';

/** Unread bytes a shortcut peer may hold before writes take the normal path (or its SO_RCVBUF, if larger). */
export const SHORTCUT_MIN_QUEUE = 1 << 20;

/** What the agent knows about its node that no snapshot says. */
export interface NodeContext {
  nodeName: string;
  /** The node's /24 of the pod CIDR. */
  nodeIndex: number;
  /** Lab workloads route the whole pod CIDR through the node (other nodes' pods are behind it). */
  routePodCIDR: boolean;
  /** Every node of the mesh, as the desired state's source last said. */
  nodes: readonly NodeRecord[];
  /** A peer node's tunnel endpoint address, by its index. */
  nodeAddress: (index: number) => string;
  /** The cgroup v2 root, and the mesh cgroup the lab's workloads live under. */
  cgroupRoot: string;
  meshCgroup: string;
  /** Where the node's SVID (the tunnel's certificate) is kept. */
  svidDir: string;
  /**
   * The mesh is the node's service proxy (Kubernetes, in place of
   * kube-proxy): the socket load balancer also serves the host's own
   * sockets, from the cgroup root, and the host is an endpoint of policy.
   */
  serveHost?: boolean;
}

/** The socket load balancer's programs: what the host's own sockets get when the mesh is the node's service proxy. */
export const HOST_LB_PROGRAMS = ['ebm_connect4', 'ebm_connect6', 'ebm_sendmsg4', 'ebm_sendmsg6', 'ebm_recvmsg4', 'ebm_recvmsg6', 'ebm_getpeername4', 'ebm_getpeername6'] as const;
/** Link pins of the host's attachment. */
export const HOST_LINK_TAG = 'host';

/** Facts read from the node before planning. */
export interface Observed {
  /** The node has its SVID: cross-node mTLS can run. */
  nodeSvid: boolean;
  /** Security identities as allocated so far (persisted; ids survive restarts). */
  identities: IdentityTable;
}

/** Caches that give the same answers as the pure functions, faster (they hold no decision of their own). */
export interface PlanMemo {
  /** computeFrontends, per changed Service. */
  frontends?: FrontendIndex;
  /** The last policy compile: reused while its input is the same. */
  policy?: CompileMemo;
}

export interface ProxyPlan {
  routing: ProxyRoutingConfig;
  /** namespace/name:port of every Service port whose connections go to the proxy. */
  steered: string[];
  callers: ClientIdentity[];
  drainMs: number;
  /** Cross-node mTLS, once the node has its SVID. */
  tunnel?: TunnelPush;
}

export interface NodePlan {
  /** The snapshot planned from: observe names flows from it. */
  snapshot: Snapshot;
  revision: number;
  mesh: MeshConfigResource;
  /** Unreachable routes on the host: nothing for these CIDRs (both families) may leave it untranslated. */
  hostRoutes: string[];
  podSubnet: Cidr;
  /** The node's IPv6 pod subnet, on a dual-stack mesh. */
  podSubnet6?: Cidr;
  /** The lab's bridge is needed (lab workloads run here). */
  bridge: boolean;
  policy: PolicyPlan;
  proxy: ProxyPlan;
  /** Other nodes' pod IPs whose connections the kernel steers into the tunnel. */
  tunnelDsts: string[];
  frontends: DesiredFrontend[];
  shortcut: { enabled: boolean; subnet: string; subnet6?: string; minQueue: number };
  /** Lab workloads (with a command) this node runs. */
  lab: WorkloadResource[];
  /** Adopted cgroups, by the tag their links are pinned under. */
  adopt: Array<{ tag: string; cgroup: string }>;
  /** The cgroup root, where the host's sockets get the load balancer (serveHost). */
  hostLb?: string;
  mtls: MtlsTables;
  hosts: { workloads: WorkloadResource[]; services: ServiceResource[]; domain: string };
}

/** An adopted workload's cgroup, relative paths taken below the cgroup v2 root. */
export function adoptedCgroup(ctx: Pick<NodeContext, 'cgroupRoot'>, w: WorkloadResource): string | undefined {
  const cg = w.spec.adopt?.cgroup;
  if (cg === undefined) return undefined;
  return cg.startsWith('/') ? cg : join(ctx.cgroupRoot, cg);
}

/** The cgroup a workload of this node lives in: adopted, or the lab's. */
export function workloadCgroup(ctx: Pick<NodeContext, 'cgroupRoot' | 'meshCgroup'>, w: WorkloadResource): string | undefined {
  if (w.spec.adopt) return adoptedCgroup(ctx, w);
  return w.spec.command ? labCgroupOf(ctx.meshCgroup, w) : undefined;
}

function planPolicy(snap: Snapshot, ctx: NodeContext, observed: Observed, podSubnets: Cidr[], memo: PlanMemo): PolicyPlan {
  return decidePolicy({
    world: policyWorldOf(snap),
    identities: observed.identities,
    hostIps: podSubnets.map(gatewayOf),
    endpoints: (index) => {
      // The host, where the mesh serves its sockets too: the root cgroup, deepest ancestor of every process.
      const out: PlannedEndpoint[] = ctx.serveHost ? [{ workload: '(host)', cgroup: ctx.cgroupRoot, identity: IDENTITY_HOST }] : [];
      for (const w of snap.workloads) {
        const cgroup = workloadCgroup(ctx, w);
        const identity = index.of(w.metadata.namespace, w.metadata.labels);
        if (cgroup === undefined || identity === undefined) continue;
        const ip = workloadIp(snap, w);
        const ipv6 = workloadIpv6(snap, w);
        out.push({ workload: `${w.metadata.namespace}/${w.metadata.name}`, cgroup, identity, ...(ip ? { ip } : {}), ...(ipv6 ? { ipv6 } : {}) });
      }
      return out;
    },
  }, memo);
}

/**
 * Cross-node mTLS, once the node has its SVID: which remote pod IPs go
 * through the tunnel, and what the proxy needs to send into it and to run
 * the node's receiving endpoint (with this plan's policy tables).
 */
function planTunnel(snap: Snapshot, ctx: NodeContext, observed: Observed, local: Cidr, tables: CompiledTables): { dsts: string[]; push?: TunnelPush } {
  if (!observed.nodeSvid) return { dsts: [] };
  const pod = mustParseCidr(snap.mesh.spec.podCIDR);
  const dsts = tunnelDestinations(snap, pod, local);
  // Names of the nodes by index: the sender expects the right node at each
  // peer, and the receiver lets a peer speak only for its own pods.
  const names = new Map(ctx.nodes.map((n) => [n.index, n.name]));
  const peers = new Map<number, [string, string, string]>();
  for (const ip of dsts) {
    const i = nodeIndexOfPodIp(pod, ip);
    if (i === undefined || peers.has(i)) continue;
    const rec = ctx.nodes.find((n) => n.index === i);
    peers.set(i, [formatCidr(nodeSubnetOf(snap.mesh, rec, i)), names.get(i) ?? '', rec?.address ?? ctx.nodeAddress(i)]);
  }
  names.set(ctx.nodeIndex, ctx.nodeName);
  const nodes = [...names].map(([i, name]) => [name, formatCidr(nodeSubnetOf(snap.mesh, ctx.nodes.find((n) => n.index === i), i))] as [string, string]);
  const localIps = localWorkloadIps(snap, local);
  return {
    dsts,
    push: {
      svidDir: ctx.svidDir, trustDomain: snap.mesh.spec.trustDomain, peers: [...peers.values()], nodes, localIps, dsts,
      podCidr: snap.mesh.spec.podCIDR, policy: ingressTablesFor(tables, localIps),
    },
  };
}

/** A node's pod subnet: its own where the source gives it, else its index's share of the mesh's. */
export function nodeSubnetOf(mesh: Snapshot['mesh'], rec: Pick<NodeRecord, 'index' | 'podCIDR'> | undefined, index: number): Cidr {
  return rec?.podCIDR ? mustParseCidr(rec.podCIDR) : nodePodSubnet(mesh, rec?.index ?? index);
}

/** Its IPv6 pod subnet in a dual-stack mesh: its own where the source gives it, else its index's share of the mesh's. */
export function nodeSubnet6Of(mesh: Snapshot['mesh'], rec: Pick<NodeRecord, 'index' | 'podCIDRv6'> | undefined, index: number): Cidr | undefined {
  if (!mesh.spec.podCIDRv6) return undefined;
  return rec?.podCIDRv6 ? mustParseCidr(rec.podCIDRv6, 6) : nodePodSubnet6(mesh, rec?.index ?? index);
}

export function planNode(snap: Snapshot, ctx: NodeContext, observed: Observed, memo: PlanMemo = {}): NodePlan {
  const mesh = snap.mesh;
  const own = ctx.nodes.find((n) => n.name === ctx.nodeName);
  const podSubnet = nodeSubnetOf(mesh, own, ctx.nodeIndex);
  const podSubnet6 = nodeSubnet6Of(mesh, own, ctx.nodeIndex);
  const policy = planPolicy(snap, ctx, observed, podSubnet6 ? [podSubnet, podSubnet6] : [podSubnet], memo);
  const tunnel = planTunnel(snap, ctx, observed, podSubnet, policy.tables);
  const { steered, ...routing } = computeProxyConfig(snap);
  const lab = snap.workloads.filter((w) => w.spec.command);
  const adopt: NodePlan['adopt'] = [];
  for (const w of snap.workloads) {
    const cgroup = adoptedCgroup(ctx, w);
    // bpffs refuses names with dots; DNS labels never hold "_".
    if (cgroup !== undefined) adopt.push({ tag: `adopt_${w.metadata.namespace}_${w.metadata.name}`, cgroup });
  }
  return {
    snapshot: snap,
    revision: snap.revision,
    mesh,
    hostRoutes: meshRanges(mesh),
    podSubnet,
    ...(podSubnet6 ? { podSubnet6 } : {}),
    bridge: lab.length > 0,
    policy,
    proxy: {
      routing, steered, callers: clientIdentities(snap),
      drainMs: mesh.spec.proxy?.drainTimeoutMs ?? DEFAULT_DRAIN_MS,
      ...(tunnel.push ? { tunnel: tunnel.push } : {}),
    },
    tunnelDsts: tunnel.dsts,
    frontends: memo.frontends ? memo.frontends.compute(snap) : computeFrontends(snap),
    shortcut: {
      enabled: mesh.spec.sameNodeShortcut, subnet: formatCidr(podSubnet), ...(podSubnet6 ? { subnet6: formatCidr(podSubnet6) } : {}),
      minQueue: SHORTCUT_MIN_QUEUE,
    },
    lab,
    adopt,
    ...(ctx.serveHost ? { hostLb: ctx.cgroupRoot } : {}),
    mtls: mtlsTables(snap, podSubnet, podSubnet6),
    hosts: { workloads: lab, services: snap.services, domain: mesh.spec.trustDomain },
  };
}
