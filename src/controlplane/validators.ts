/**
 * Cross-resource checks per kind (NetworkPolicy needs the workloads to
 * check named ports, a route needs its parent Service…), in one table.
 * Each returns problems; apply reports them all and changes nothing.
 */
import type { AnyResource, NamespaceResource, ServiceResource, WorkloadResource } from '../resources/index.js';
import type { NetworkPolicy } from '../resources/networkpolicy.js';
import { checkNamedPorts } from '../policy/index.js';
import { checkMtlsAnnotation } from './mtls-mode.js';

export interface FieldProblem {
  field?: string;
  message: string;
}

export type CrossCheck = (r: AnyResource, all: AnyResource[]) => FieldProblem[];

// A route's parent and backends, a policy's target, must exist.
import type { HTTPRouteResource, GRPCRouteResource, TrafficPolicyResource, AuthorizationPolicyResource } from '../resources/index.js';

function serviceExists(all: AnyResource[], namespace: string, name: string): boolean {
  return all.some((x) => x.kind === 'Service' && x.metadata.namespace === namespace && x.metadata.name === name);
}

function servicePortExists(all: AnyResource[], namespace: string, name: string, port: number): boolean {
  return all.some((x) => x.kind === 'Service' && x.metadata.namespace === namespace && x.metadata.name === name && x.spec.ports.some((p) => p.port === port));
}

function checkRoute(r: HTTPRouteResource | GRPCRouteResource, all: AnyResource[]): FieldProblem[] {
  const out: FieldProblem[] = [];
  const ns = r.metadata.namespace ?? 'default';
  r.spec.parentRefs.forEach((p, i) => {
    const pns = p.namespace ?? ns;
    if (!serviceExists(all, pns, p.name)) out.push({ field: `spec.parentRefs[${i}].name`, message: `Service ${pns}/${p.name} does not exist` });
    else if (p.port !== undefined && !servicePortExists(all, pns, p.name, p.port)) out.push({ field: `spec.parentRefs[${i}].port`, message: `Service ${pns}/${p.name} has no port ${p.port}` });
  });
  r.spec.rules.forEach((rule, i) => {
    const refs: Array<{ ref: { name: string; namespace?: string | undefined; port?: number | undefined }; field: string }> = [];
    rule.backendRefs?.forEach((b, j) => refs.push({ ref: b, field: `spec.rules[${i}].backendRefs[${j}]` }));
    rule.filters?.forEach((f, j) => {
      if (f.type === 'RequestMirror') refs.push({ ref: f.requestMirror.backendRef, field: `spec.rules[${i}].filters[${j}].requestMirror.backendRef` });
    });
    for (const { ref, field } of refs) {
      const bns = ref.namespace ?? ns;
      if (!serviceExists(all, bns, ref.name)) out.push({ field: `${field}.name`, message: `Service ${bns}/${ref.name} does not exist` });
      else if (ref.port !== undefined && !servicePortExists(all, bns, ref.name, ref.port)) out.push({ field: `${field}.port`, message: `Service ${bns}/${ref.name} has no port ${ref.port}` });
    }
  });
  return out;
}

function checkPolicyTarget(r: TrafficPolicyResource | AuthorizationPolicyResource, all: AnyResource[]): FieldProblem[] {
  const ns = r.metadata.namespace ?? 'default';
  const t = r.spec.targetRef;
  const found = all.some((x) => x.kind === t.kind && x.metadata.namespace === ns && x.metadata.name === t.name);
  return found ? [] : [{ field: 'spec.targetRef.name', message: `${t.kind} ${ns}/${t.name} does not exist` }];
}

function checkNetworkPolicy(r: NetworkPolicy, all: AnyResource[]): FieldProblem[] {
  const workloads = all.filter((x): x is WorkloadResource => x.kind === 'Workload');
  const namespaces = all.filter((x): x is NamespaceResource => x.kind === 'Namespace');
  return checkNamedPorts([r], workloads, namespaces).map((p) => ({ field: p.field, message: p.message }));
}

/**
 * A node port is the API server's to allocate (unique in the cluster, in its
 * range): ebmesh serves those of Services read from Kubernetes, and its own
 * store has no allocator, so a Service applied here is ClusterIP.
 */
function checkServiceType(r: ServiceResource): FieldProblem[] {
  return r.spec.type === 'ClusterIP' ? [] : [{ field: 'spec.type', message: `${r.spec.type} Services are served from Kubernetes, where the API server allocates their node ports; a Service applied to ebmesh is ClusterIP` }];
}

export const validators: ReadonlyMap<string, CrossCheck> = new Map<string, CrossCheck>([
  ['Service', (r) => checkServiceType(r as ServiceResource)],
  ['HTTPRoute', (r, all) => checkRoute(r as HTTPRouteResource, all)],
  ['GRPCRoute', (r, all) => checkRoute(r as GRPCRouteResource, all)],
  ['TrafficPolicy', (r, all) => checkPolicyTarget(r as TrafficPolicyResource, all)],
  ['AuthorizationPolicy', (r, all) => checkPolicyTarget(r as AuthorizationPolicyResource, all)],
  ['NetworkPolicy', (r, all) => checkNetworkPolicy(r as NetworkPolicy, all)],
  ['Namespace', (r) => checkMtlsAnnotation(r)],
]);
