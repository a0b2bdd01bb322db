/**
 * Nodes of a mesh that spans several: each has a name and an index (its /24
 * of the pod CIDR), and what its agent may see is computed here, purely:
 * every Service and every endpoint (the socket LB of any node may pick any
 * backend), but the command, env, files and cgroup of only its own
 * workloads. Without registered nodes the mesh is the single embedded node.
 */
import type { AnyResource, MeshConfigResource, WorkloadResource } from '../resources/index.js';
import { nodePodSubnet } from './apply.js';
import { STATUS, storeKey, wlKey, type Snapshot, type WorkloadStatus } from './state.js';

export const NODES = '/nodes/';
export const DEFAULT_NODE = 'node-1';

export interface NodeRecord {
  name: string;
  index: number;
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
}

/** A workload of another node, as this node needs it: where it is and what it serves. */
export function remoteView(w: WorkloadResource): WorkloadResource {
  const { serviceAccount, node, ip, ports } = w.spec;
  return { ...w, spec: { serviceAccount, node, ip, ports, ...(w.spec.adopt || w.spec.external ? { external: true } : {}) } } as WorkloadResource;
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
  for (const [key, st] of snap.workloadStatus) {
    entries.push({ key: `${STATUS}Workload/${key}`, value: statusView(st, local.includes(key)) });
  }
  return { revision: snap.revision, node, nodes, local, entries };
}

/** Another node's process details are none of this node's business. */
function statusView(st: WorkloadStatus, mine: boolean): WorkloadStatus {
  if (mine) return st;
  const { phase, ready, ip, node } = st;
  return { phase, ready, ip, node };
}

