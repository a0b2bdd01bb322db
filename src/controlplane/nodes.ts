/**
 * Nodes of a mesh that spans several: each has a name and an index (its /24
 * of the pod CIDR), and what its agent may see is computed here, purely:
 * every Service and every endpoint (the socket LB of any node may pick any
 * backend), but the command, env, files and cgroup of only its own
 * workloads. Without registered nodes the mesh is the single embedded node.
 */
import type { AnyResource, MeshConfigResource, WorkloadResource } from '../resources/index.js';
import { mustParseCidr, subnet } from '../net/ipam.js';
import { RESOURCES, STATUS, storeKey, wlKey, type Snapshot, type WorkloadStatus } from './state.js';

/** A node's share of the pod CIDR: the index-th /24 (or the whole CIDR when it is smaller). */
export function nodePodSubnet(mesh: MeshConfigResource, nodeIndex = 0) {
  const pod = mustParseCidr(mesh.spec.podCIDR);
  return subnet(pod, Math.max(pod.len, 24), nodeIndex);
}

/** A node's share of the IPv6 pod CIDR of a dual-stack mesh: the index-th /64 (or the whole CIDR when it is smaller). */
export function nodePodSubnet6(mesh: MeshConfigResource, nodeIndex = 0) {
  if (!mesh.spec.podCIDRv6) return undefined;
  const pod = mustParseCidr(mesh.spec.podCIDRv6, 6);
  return subnet(pod, Math.max(pod.len, 64), nodeIndex);
}

/**
 * The mesh's address ranges, of both families: nothing for them may leave a
 * host or a namespace untranslated (the unreachable safety routes).
 */
export function meshRanges(mesh: MeshConfigResource): string[] {
  const { serviceCIDR, podCIDR, serviceCIDRv6, podCIDRv6 } = mesh.spec;
  return [serviceCIDR, podCIDR, ...(serviceCIDRv6 ? [serviceCIDRv6] : []), ...(podCIDRv6 ? [podCIDRv6] : [])];
}

export const NODES = '/nodes/';
export const DEFAULT_NODE = 'node-1';

export interface NodeRecord {
  name: string;
  index: number;
  /** The node's pod CIDR, where the source says it (Kubernetes: Node.spec.podCIDR); else its index's /24 of the mesh's pod CIDR. */
  podCIDR?: string;
  /** Its IPv6 pod CIDR, where the source says it (Kubernetes: the IPv6 entry of Node.spec.podCIDRs); else its index's /64 of the mesh's podCIDRv6. */
  podCIDRv6?: string;
  /** Where the node's tunnel endpoint listens, where the source says it. */
  address?: string;
}

export function nodeKey(name: string): string {
  return `${NODES}${name}`;
}

export function validNodeName(name: string): boolean {
  return /^[a-z][a-z0-9-]{0,20}$/.test(name);
}

/** The node a workload runs on: its spec.node, or the first node. */
export function workloadNode(w: WorkloadResource, nodes: readonly NodeRecord[]): string {
  if (w.spec.node) return w.spec.node;
  const first = [...nodes].sort((a, b) => a.index - b.index)[0];
  return first?.name ?? DEFAULT_NODE;
}

export function nodeIndex(name: string, nodes: readonly NodeRecord[]): number | undefined {
  if (nodes.length === 0) return 0;
  return nodes.find((n) => n.name === name)?.index;
}

export function nodeSubnet(mesh: MeshConfigResource, name: string, nodes: readonly NodeRecord[]) {
  const i = nodeIndex(name, nodes);
  return i === undefined ? undefined : nodePodSubnet(mesh, i);
}

export interface DesiredEntry {
  key: string;
  value: unknown;
}

/** What one node's agent receives: a mirror of the store's keys it may see. */
export interface NodeDesired {
  revision: number;
  node: NodeRecord;
  nodes: NodeRecord[];
  /** namespace/name of the workloads this node runs. */
  local: string[];
  entries: DesiredEntry[];
  /**
   * Instead of entries: the keys that changed since revision `from`, with
   * their value in this node's view (none: deleted). Only valid on top of
   * the view at exactly `from`; an agent that has another asks for a full one.
   */
  delta?: { from: number; ops: DesiredEntry[] };
}

/** A workload of another node, as this node needs it: where it is and what it serves. */
export function remoteView(w: WorkloadResource): WorkloadResource {
  const { serviceAccount, node, ip, ipv6, ports } = w.spec;
  return { ...w, spec: { serviceAccount, node, ip, ...(ipv6 ? { ipv6 } : {}), ports, ...(w.spec.adopt || w.spec.external ? { external: true } : {}) } } as WorkloadResource;
}

export function desiredFor(snap: Snapshot, node: NodeRecord, nodes: NodeRecord[]): NodeDesired {
  const entries: DesiredEntry[] = [];
  const local: string[] = [];
  const all: AnyResource[] = [snap.mesh, ...snap.namespaces, ...snap.services];
  for (const list of snap.others.values()) all.push(...list);
  for (const r of all) entries.push({ key: storeKey(r), value: r });
  for (const w of snap.workloads) {
    const mine = workloadNode(w, nodes) === node.name;
    if (mine) local.push(wlKey(w));
    entries.push({ key: storeKey(w), value: mine ? w : remoteView(w) });
  }
  const localSet = new Set(local);
  for (const [key, st] of snap.workloadStatus) {
    entries.push({ key: `${STATUS}Workload/${key}`, value: statusView(st, localSet.has(key)) });
  }
  return { revision: snap.revision, node, nodes, local, entries };
}

const keyedCache = new WeakMap<Snapshot, Map<string, { kind: 'resource' | 'workload' | 'status'; value: unknown }>>();

/** Every key of a node view, with what it holds in the snapshot (once per snapshot: the nodes share it). */
function keyed(snap: Snapshot): Map<string, { kind: 'resource' | 'workload' | 'status'; value: unknown }> {
  let m = keyedCache.get(snap);
  if (m) return m;
  m = new Map();
  const all: AnyResource[] = [snap.mesh, ...snap.namespaces, ...snap.services];
  for (const list of snap.others.values()) all.push(...list);
  for (const r of all) m.set(storeKey(r), { kind: 'resource', value: r });
  for (const w of snap.workloads) m.set(storeKey(w), { kind: 'workload', value: w });
  for (const [key, st] of snap.workloadStatus) m.set(`${STATUS}Workload/${key}`, { kind: 'status', value: st });
  keyedCache.set(snap, m);
  return m;
}

const WL_PREFIX = `${RESOURCES}Workload/`;
const ST_PREFIX = `${STATUS}Workload/`;

/**
 * The change of a node's view from revision `from` to the snapshot's, given
 * the store keys written in between. Equal, applied to desiredFor at `from`,
 * to desiredFor now (a unit test checks it); a change of the node list
 * changes which workloads are whose, and needs a full view instead.
 */
export function deltaFor(snap: Snapshot, node: NodeRecord, nodes: NodeRecord[], from: number, changedKeys: Iterable<string>): NodeDesired {
  const m = keyed(snap);
  const local: string[] = [];
  for (const w of snap.workloads) if (workloadNode(w, nodes) === node.name) local.push(wlKey(w));
  const localSet = new Set(local);
  const keys = new Set<string>();
  for (const k of changedKeys) {
    keys.add(k);
    // Whose a workload is decides how its status is seen.
    if (k.startsWith(WL_PREFIX)) keys.add(ST_PREFIX + k.slice(WL_PREFIX.length));
  }
  const ops: DesiredEntry[] = [];
  for (const key of keys) {
    const e = m.get(key);
    if (!e) { ops.push({ key, value: undefined }); continue; }
    if (e.kind === 'resource') ops.push({ key, value: e.value });
    else if (e.kind === 'workload') {
      const w = e.value as WorkloadResource;
      ops.push({ key, value: localSet.has(wlKey(w)) ? w : remoteView(w) });
    } else ops.push({ key, value: statusView(e.value as WorkloadStatus, localSet.has(key.slice(ST_PREFIX.length))) });
  }
  return { revision: snap.revision, node, nodes, local, entries: [], delta: { from, ops } };
}

/** Another node's process details are none of this node's business. */
function statusView(st: WorkloadStatus, mine: boolean): WorkloadStatus {
  if (mine) return st;
  const { phase, ready, ip, ipv6, node } = st;
  return { phase, ready, ip, ipv6, node };
}

