/**
 * The seam between a node agent and where its desired state comes from.
 *
 * Today's sources: the embedded store (one host), and a mirror of this
 * node's view kept by the control plane (a mesh of several nodes; see
 * remote-store.ts). A Kubernetes API server is the other kind: its source
 * lists and watches Pods, Services, EndpointSlices, NetworkPolicies and
 * routes and translates them into the same Snapshot.
 *
 * What each side owns:
 * - The source owns reading and translating: a snapshot is one consistent
 *   view (at one revision) of every resource this node needs, already
 *   validated; it owns the workloads' status where it keeps it, and the
 *   knowledge of the other nodes (names, indexes, addresses).
 * - The agent owns everything on the node: it plans from a snapshot
 *   (plan.ts) and applies the plan to the kernel, the lab and the node
 *   proxy (apply.ts). It never writes desired state.
 * A source calls `onChange` after any change and may call it more often than
 * needed: the agent coalesces and reads a fresh snapshot once per pass.
 */
import type { NodeRecord, Snapshot, WorkloadStatus } from '../controlplane/index.js';

export interface DesiredStateSource {
  /** For status and logs: "embedded store FILE", "control plane at ADDR". */
  readonly description: string;
  /** The desired state as one consistent view. */
  snapshot(): Promise<Snapshot>;
  /** Calls onChange after every change; returns a function that stops it. */
  watch(onChange: () => void): () => void;
  /** The status of a workload this node runs (the lab's processes), or its removal. */
  reportStatus(namespace: string, name: string, status: WorkloadStatus | undefined): Promise<void>;
  /** The nodes of the mesh (one node, this one, where there is no other). */
  nodes(): readonly NodeRecord[];
  close(): Promise<void>;
}
