/**
 * Checks with errors that name the field. Single-object problems (bad cidr,
 * an except outside its block, SCTP, endPort with a named port…) are the
 * schema's; this adds the entry point for an object not coming from YAML,
 * and the cross-resource check the schema cannot make: a named port that no
 * workload the rule applies to declares, which Kubernetes accepts silently
 * and which then allows nothing.
 */
import { matchesSelector } from '../resources/selector.js';
import { NetworkPolicy } from '../resources/networkpolicy.js';
import { ResourceError, type Problem } from '../resources/parse.js';
import type { NamespaceResource, WorkloadResource } from '../resources/schemas.js';
import { namespaceLabelsOf, policyRef } from './world.js';

function fieldPath(path: ReadonlyArray<string | number>): string {
  return path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

/** Validates and defaults one NetworkPolicy object. Throws ResourceError (EBMESH_RESOURCE_INVALID). */
export function parseNetworkPolicy(raw: unknown, file = '<input>'): NetworkPolicy {
  const r = NetworkPolicy.safeParse(raw);
  if (r.success) return r.data;
  const meta = (raw as { metadata?: { name?: unknown; namespace?: unknown } } | null)?.metadata;
  const resource = `NetworkPolicy ${typeof meta?.namespace === 'string' ? meta.namespace : 'default'}/${String(meta?.name ?? '?')}`;
  throw new ResourceError(r.error.issues.map((i) => ({
    file, resource, field: fieldPath(i.path) || undefined,
    message: i.code === 'unrecognized_keys' ? `unknown field${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => `"${k}"`).join(', ')}` : i.message,
  })));
}

/**
 * Named ports in `policies` that no workload declares (with that protocol)
 * among those the port is resolved on: for ingress, the workloads the policy
 * selects; for egress, the workloads the rule's peers select (any workload
 * when the rule has no `to` or an ipBlock peer).
 */
export function checkNamedPorts(policies: readonly NetworkPolicy[], workloads: readonly WorkloadResource[], namespaces: readonly NamespaceResource[] = []): Problem[] {
  const problems: Problem[] = [];
  for (const p of policies) {
    const ns = p.metadata.namespace;
    const selected = workloads.filter((w) => w.metadata.namespace === ns && matchesSelector(p.spec.podSelector, w.metadata.labels));
    const sections = [
      { name: 'ingress', rules: (p.spec.ingress ?? []).map((r) => ({ peers: r.from, ports: r.ports })) },
      { name: 'egress', rules: (p.spec.egress ?? []).map((r) => ({ peers: r.to, ports: r.ports })) },
    ];
    for (const { name, rules } of sections) {
      rules.forEach((r, ri) => {
        r.ports?.forEach((port, pi) => {
          if (typeof port.port !== 'string') return;
          let candidates = selected;
          if (name === 'egress') {
            const peers = r.peers ?? [];
            candidates = peers.length === 0 || peers.some((x) => x.ipBlock)
              ? [...workloads]
              : workloads.filter((w) => peers.some((x) => (x.namespaceSelector
                ? matchesSelector(x.namespaceSelector, namespaceLabelsOf(namespaces, w.metadata.namespace))
                : w.metadata.namespace === ns) && matchesSelector(x.podSelector, w.metadata.labels)));
          }
          const found = candidates.some((w) => w.spec.ports.some((c) => c.name === port.port && c.protocol === port.protocol));
          if (!found) {
            problems.push({
              file: '<policies>', resource: `NetworkPolicy ${policyRef(p)}`, field: `spec.${name}[${ri}].ports[${pi}].port`,
              message: `named port "${port.port}" (${port.protocol}) is declared by no workload this rule applies to, so it allows nothing`,
            });
          }
        });
      });
    }
  }
  return problems;
}
