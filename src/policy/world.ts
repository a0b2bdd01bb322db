/**
 * The inputs both policy evaluators share, and the few facts about them that
 * are not policy semantics (so sharing them does not make the two evaluators
 * agree by construction).
 */
import type { NamespaceResource, WorkloadResource } from '../resources/schemas.js';
import type { NetworkPolicy } from '../resources/networkpolicy.js';

export interface PolicyWorld {
  policies: readonly NetworkPolicy[];
  namespaces: readonly NamespaceResource[];
  workloads: readonly WorkloadResource[];
}

/** The policy world of a desired-state snapshot (whatever its source): its NetworkPolicies, namespaces and workloads. */
export function policyWorldOf(snap: {
  others: ReadonlyMap<string, readonly unknown[]>;
  namespaces: readonly NamespaceResource[];
  workloads: readonly WorkloadResource[];
}): PolicyWorld {
  return { policies: (snap.others.get('NetworkPolicy') ?? []) as NetworkPolicy[], namespaces: snap.namespaces, workloads: snap.workloads };
}

/** Kubernetes gives every namespace this label (immutable), so selectors may rely on it. */
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

/**
 * Labels of a namespace as selectors see them. A namespace with workloads but
 * no Namespace resource still exists (as in Kubernetes, where it could not
 * be otherwise) and has only the name label.
 */
export function namespaceLabelsOf(namespaces: readonly NamespaceResource[], name: string): Record<string, string> {
  const ns = namespaces.find((n) => n.metadata.name === name);
  return { ...(ns?.metadata.labels ?? {}), [NAMESPACE_NAME_LABEL]: name };
}

export const workloadRef = (w: WorkloadResource): string => `${w.metadata.namespace}/${w.metadata.name}`;
export const policyRef = (p: NetworkPolicy): string => `${p.metadata.namespace}/${p.metadata.name}`;

/** Where a flow starts or ends: a workload in the mesh, or just an address. */
export type Endpoint = { workload: string } | { ip: string };

export interface Flow {
  from: Endpoint;
  to: Endpoint;
  proto: 'TCP' | 'UDP';
  port: number;
  /**
   * The family the flow is carried over, which picks a workload's address
   * (ipBlocks see it). Implied by an endpoint given as an address; IPv4
   * when both are workloads and it is not given.
   */
  family?: 4 | 6;
}

/** A workload's address of one family, if it has one. */
export function workloadAddress(w: WorkloadResource, family: 4 | 6): string | undefined {
  return family === 4 ? w.spec.ip : w.spec.ipv6;
}
