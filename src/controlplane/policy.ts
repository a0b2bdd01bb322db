/**
 * NetworkPolicy in the control plane: the cross-resource check at apply
 * (a named port nobody declares), and the policy world of a snapshot.
 */
import type { AnyResource, NamespaceResource, WorkloadResource } from '../resources/index.js';
import type { NetworkPolicy } from '../resources/networkpolicy.js';
import { checkNamedPorts, type PolicyWorld } from '../policy/index.js';
import type { Snapshot } from './state.js';
import { validators } from './validators.js';

validators.set('NetworkPolicy', (r, all) => {
  const workloads = all.filter((x): x is WorkloadResource => x.kind === 'Workload');
  const namespaces = all.filter((x): x is NamespaceResource => x.kind === 'Namespace');
  return checkNamedPorts([r as NetworkPolicy], workloads, namespaces).map((p) => ({ field: p.field, message: p.message }));
});

export function policiesOf(snap: Snapshot): NetworkPolicy[] {
  return (snap.others.get('NetworkPolicy') ?? []) as NetworkPolicy[];
}

export function policyWorld(snap: Snapshot): PolicyWorld {
  return { policies: policiesOf(snap), namespaces: snap.namespaces, workloads: snap.workloads };
}

export type { AnyResource };
