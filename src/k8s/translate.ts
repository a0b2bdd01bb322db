/**
 * Kubernetes objects into ebmesh's resources, purely: what a node agent's
 * Kubernetes source hands the plan. Pods become Workloads (adopted by their
 * cgroup on this node, external elsewhere), Services keep their ClusterIP,
 * EndpointSlices say each Service's backends, NetworkPolicies and Gateway
 * API routes (Service parents: GAMMA) and ebmesh's own kinds pass through
 * the same schemas as in ebmesh's store. An object that does not fit them is
 * left out and reported, with the field and why, so that it changes nothing
 * in the data path and its author can be told.
 */
import type { z } from 'zod';
import {
  MeshConfig, Namespace, Service, Workload, kinds,
  type AnyResource, type MeshConfigResource, type NamespaceResource, type ServiceResource, type WorkloadResource,
} from '../resources/index.js';
import { NetworkPolicy } from '../resources/networkpolicy.js';
import type { SliceEndpoint, WorkloadStatus } from '../controlplane/state.js';
import type { KubeObject } from './client.js';
import { MESH_OPT_OUT, SERVICE_NAME_LABEL, SERVICE_PROXY_NAME, type K8sEndpointSlice, type K8sPod, type K8sService } from './kinds.js';

/** An object left out, and why. */
export interface Problem {
  kind: string;
  namespace?: string;
  name: string;
  /** The field at fault, as a path ("spec.rules[0].backendRefs[1].port"). */
  field?: string;
  message: string;
}

const issuePath = (p: ReadonlyArray<string | number>): string =>
  p.map((s, i) => (typeof s === 'number' ? `[${s}]` : i ? `.${s}` : s)).join('');

/** A zod parse as a resource or the problems it found, each naming its field. */
function fit<S extends z.ZodTypeAny>(schema: S, obj: unknown, kind: string, meta: { name: string; namespace?: string }, problems: Problem[]): z.output<S> | undefined {
  const r = schema.safeParse(obj);
  if (r.success) return r.data as z.output<S>;
  for (const i of r.error.issues) problems.push({ kind, name: meta.name, ...(meta.namespace ? { namespace: meta.namespace } : {}), field: issuePath(i.path), message: i.message });
  return undefined;
}

/** The metadata ebmesh's schemas take: the rest is the API server's (uid, versions, managed fields). */
function meta(o: KubeObject, namespaced = true): { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> } {
  const { name, namespace, labels, annotations } = o.metadata;
  // kubectl's last-applied copy would make every object's annotations large: it is no annotation of the mesh.
  const ann = annotations ? Object.fromEntries(Object.entries(annotations).filter(([k]) => !k.startsWith('kubectl.kubernetes.io/'))) : undefined;
  return {
    name,
    ...(namespaced ? { namespace: namespace ?? 'default' } : {}),
    ...(labels && Object.keys(labels).length ? { labels } : {}),
    ...(ann && Object.keys(ann).length ? { annotations: ann } : {}),
  };
}

export function namespaceOf(o: KubeObject, problems: Problem[]): NamespaceResource | undefined {
  const { name, labels, annotations } = meta(o, false);
  return fit(Namespace, { apiVersion: 'v1', kind: 'Namespace', metadata: { name, ...(labels ? { labels } : {}), ...(annotations ? { annotations } : {}) } }, 'Namespace', { name }, problems);
}

/** Outside the mesh by a Namespace's or a Pod's own choice. */
export function optedOut(o: KubeObject | undefined): boolean {
  return o?.metadata.labels?.[MESH_OPT_OUT] === 'disabled' || o?.metadata.annotations?.[MESH_OPT_OUT] === 'disabled';
}

/** A pod's address of one family (a dual-stack pod has one of each in podIPs). */
function podIp(p: K8sPod, family: 4 | 6 = 4): string | undefined {
  const ips = [p.status?.podIP, ...(p.status?.podIPs ?? []).map((x) => x.ip)].filter((x): x is string => !!x);
  return family === 4 ? ips.find((ip) => ip.includes('.') && !ip.includes(':')) : ips.find((ip) => ip.includes(':') && !ip.includes('.'));
}

export interface PodView {
  workload: WorkloadResource;
  status: WorkloadStatus;
}

/**
 * A pod as a Workload. `cgroup`: its cgroup on this node, when it runs here
 * and is in the mesh (then it is adopted: the agent attaches to it); any
 * other pod with an address is external (a backend and a policy peer).
 * Pods without an address, on the host's network, or finished are none.
 */
export function workloadOfPod(p: K8sPod, cgroup: string | undefined, problems: Problem[]): PodView | undefined {
  const ip = podIp(p);
  const phase = p.status?.phase;
  if (!ip || p.spec.hostNetwork || phase === 'Succeeded' || phase === 'Failed') return undefined;
  const ports: Array<{ name?: string; containerPort: number; protocol: string }> = [];
  for (const c of [...(p.spec.initContainers ?? []), ...p.spec.containers]) {
    for (const port of c.ports ?? []) {
      const protocol = port.protocol ?? 'TCP';
      if (protocol !== 'TCP' && protocol !== 'UDP') continue; // SCTP: not served
      if (ports.some((q) => q.containerPort === port.containerPort && q.protocol === protocol)) continue;
      ports.push({ ...(port.name && !ports.some((q) => q.name === port.name) ? { name: port.name } : {}), containerPort: port.containerPort, protocol });
    }
  }
  const ipv6 = podIp(p, 6);
  const spec = {
    serviceAccount: p.spec.serviceAccountName ?? 'default',
    ...(p.spec.nodeName ? { node: p.spec.nodeName } : {}),
    ip,
    ...(ipv6 ? { ipv6 } : {}),
    ports,
    ...(cgroup ? { adopt: { cgroup } } : { external: true }),
  };
  const workload = fit(Workload, { apiVersion: 'ebmesh.io/v1alpha1', kind: 'Workload', metadata: meta(p), spec }, 'Pod', meta(p), problems);
  if (!workload) return undefined;
  const ready = p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
  return { workload, status: { phase: phase === 'Running' ? 'Running' : 'Pending', ready, ip } };
}

/**
 * A Service as the socket load balancer serves it: ClusterIP (of any type:
 * NodePort and LoadBalancer Services have one too), TCP and UDP ports, and
 * the node ports the API server allocated for NodePort and LoadBalancer ones.
 * Headless and ExternalName Services, and those another proxy serves, are
 * not ours.
 */
export function serviceOf(s: K8sService, proxyName: string, problems: Problem[]): ServiceResource | undefined {
  const ip = s.spec.clusterIP;
  if (!ip || ip === 'None' || s.spec.type === 'ExternalName') return undefined;
  const other = s.metadata.labels?.[SERVICE_PROXY_NAME];
  if (other !== undefined && other !== proxyName) return undefined;
  const type = s.spec.type === 'NodePort' || s.spec.type === 'LoadBalancer' ? s.spec.type : 'ClusterIP';
  const ports = (s.spec.ports ?? [])
    .filter((p) => (p.protocol ?? 'TCP') === 'TCP' || p.protocol === 'UDP')
    .map((p) => ({
      ...(p.name ? { name: p.name } : {}),
      port: p.port,
      ...(p.targetPort !== undefined ? { targetPort: p.targetPort } : {}),
      protocol: p.protocol ?? 'TCP',
      ...(p.appProtocol ? { appProtocol: p.appProtocol } : {}),
      ...(type !== 'ClusterIP' && p.nodePort ? { nodePort: p.nodePort } : {}),
    }));
  if (!ports.length) return undefined;
  const timeout = s.spec.sessionAffinityConfig?.clientIP?.timeoutSeconds;
  const spec = {
    type,
    clusterIP: ip,
    // A VIP per family where the cluster gave two (dual-stack), as the apiserver decided them.
    ...(s.spec.clusterIPs?.length ? { clusterIPs: s.spec.clusterIPs } : {}),
    ...(s.spec.ipFamilies?.length ? { ipFamilies: s.spec.ipFamilies } : {}),
    ...(s.spec.ipFamilyPolicy ? { ipFamilyPolicy: s.spec.ipFamilyPolicy } : {}),
    ports,
    ...(s.spec.selector ? { selector: s.spec.selector } : {}),
    sessionAffinity: s.spec.sessionAffinity === 'ClientIP' ? 'ClientIP' : 'None',
    ...(s.spec.sessionAffinity === 'ClientIP' && timeout ? { sessionAffinityConfig: { clientIP: { timeoutSeconds: timeout } } } : {}),
  };
  return fit(Service, { apiVersion: 'v1', kind: 'Service', metadata: meta(s), spec }, 'Service', meta(s), problems);
}

/** A Service's endpoints from all its slices (IPv4 and IPv6 ones: a VIP takes those of its family), each address once. */
export function endpointsOfSlices(slices: readonly K8sEndpointSlice[]): SliceEndpoint[] {
  const out: SliceEndpoint[] = [];
  const seen = new Set<string>();
  for (const sl of slices) {
    if (sl.addressType !== 'IPv4' && sl.addressType !== 'IPv6') continue;
    const ports = (sl.ports ?? []).filter((p) => p.port !== undefined).map((p) => ({ name: p.name ?? '', port: p.port!, protocol: p.protocol ?? 'TCP' }));
    for (const e of sl.endpoints ?? []) {
      const ready = e.conditions?.ready ?? true;
      const serving = e.conditions?.serving ?? ready;
      const terminating = e.conditions?.terminating ?? false;
      const ref = e.targetRef?.kind === 'Pod' && e.targetRef.name ? `${e.targetRef.namespace ?? sl.metadata.namespace}/${e.targetRef.name}` : undefined;
      for (const ip of e.addresses) {
        const key = `${ip}|${ports.map((p) => `${p.name}:${p.port}/${p.protocol}`).join(',')}`;
        if (seen.has(key)) continue;
        seen.add(key);
        out.push({ ip, ports, ready, serving, terminating, ...(ref ? { workload: ref } : {}) });
      }
    }
  }
  return out;
}

/** namespace/name of the Service a slice belongs to. */
export function sliceService(sl: K8sEndpointSlice): string | undefined {
  const svc = sl.metadata.labels?.[SERVICE_NAME_LABEL];
  return svc ? `${sl.metadata.namespace}/${svc}` : undefined;
}

/** A route's Service parents: a route with a Gateway parent too is the gateway's for that part, and ours for its Service part. */
function serviceParents(spec: Record<string, unknown>): unknown[] {
  const parents = Array.isArray(spec.parentRefs) ? (spec.parentRefs as Array<Record<string, unknown>>) : [];
  return parents.filter((p) => p.kind === 'Service' && (p.group === undefined || p.group === '' || p.group === 'core'));
}

const PASS_THROUGH = {
  NetworkPolicy: { schema: NetworkPolicy, apiVersion: 'networking.k8s.io/v1' },
  TrafficPolicy: { schema: kinds.TrafficPolicy, apiVersion: 'ebmesh.io/v1alpha1' },
  AuthorizationPolicy: { schema: kinds.AuthorizationPolicy, apiVersion: 'ebmesh.io/v1alpha1' },
} as const;

/** The apiVersion of each kind ebmesh reads (items of a list do not carry theirs). */
export const API_VERSION: Record<string, string> = {
  Namespace: 'v1', Pod: 'v1', Service: 'v1', Node: 'v1',
  NetworkPolicy: 'networking.k8s.io/v1', HTTPRoute: 'gateway.networking.k8s.io/v1', GRPCRoute: 'gateway.networking.k8s.io/v1',
  TrafficPolicy: 'ebmesh.io/v1alpha1', AuthorizationPolicy: 'ebmesh.io/v1alpha1', MeshConfig: 'ebmesh.io/v1alpha1',
};

type PolicyPort = { protocol?: string };
type PolicyRule = { ports?: PolicyPort[] };
type PolicySpec = { policyTypes?: string[]; ingress?: PolicyRule[]; egress?: PolicyRule[] };

/**
 * A NetworkPolicy with its SCTP ports taken out. ebmesh judges TCP and UDP
 * only, so an SCTP port opens nothing it enforces; but the policy still
 * selects its pods, which are then isolated (left out whole, they would be
 * open to everything). A rule whose ports were all SCTP allows nothing and
 * goes; policyTypes is made explicit first, so removing an egress rule does
 * not change what the policy isolates.
 */
export function withoutSctp(spec: PolicySpec): PolicySpec {
  const sctp = (p: PolicyPort) => p.protocol === 'SCTP';
  const rules = (rs: PolicyRule[] | undefined) =>
    rs?.filter((r) => !r.ports?.length || !r.ports.every(sctp)).map((r) => (r.ports?.some(sctp) ? { ...r, ports: r.ports.filter((p) => !sctp(p)) } : r));
  if (![...(spec.ingress ?? []), ...(spec.egress ?? [])].some((r) => r.ports?.some(sctp))) return spec;
  const policyTypes = spec.policyTypes?.length ? spec.policyTypes : ['Ingress', ...(spec.egress?.length ? ['Egress'] : [])];
  return { ...spec, policyTypes, ...(spec.ingress ? { ingress: rules(spec.ingress) } : {}), ...(spec.egress ? { egress: rules(spec.egress) } : {}) };
}

/** NetworkPolicy and ebmesh's own kinds: the same schema as in ebmesh's store. */
export function passThrough(kind: keyof typeof PASS_THROUGH, o: KubeObject, problems: Problem[]): AnyResource | undefined {
  const raw = (o as { spec?: unknown }).spec;
  const spec = kind === 'NetworkPolicy' && raw && typeof raw === 'object' ? withoutSctp(raw as PolicySpec) : raw;
  const { schema, apiVersion } = PASS_THROUGH[kind];
  return fit(schema, { apiVersion, kind, metadata: meta(o), spec }, kind, meta(o), problems);
}

/** An HTTPRoute or GRPCRoute with a Service parent, cut to its Service parents; undefined when it has none (not the mesh's). */
export function routeOf(kind: 'HTTPRoute' | 'GRPCRoute', o: KubeObject, problems: Problem[]): AnyResource | undefined {
  const spec = { ...((o as { spec?: Record<string, unknown> }).spec ?? {}) };
  const parents = serviceParents(spec);
  if (!parents.length) return undefined;
  spec.parentRefs = parents;
  return fit(kinds[kind], { apiVersion: 'gateway.networking.k8s.io/v1', kind, metadata: meta(o), spec }, kind, meta(o), problems);
}

/** The MeshConfig: the cluster's object named "mesh" over the install's defaults (CIDRs from the Helm values). */
/**
 * The cluster's ranges as the agent's flags give them, in Kubernetes' form
 * (`--service-cluster-ip-range`, `--cluster-cidr`): one CIDR, or two of
 * different families separated by a comma, in either order. They become the
 * mesh's defaults (IPv6 ones make it dual-stack); a problem names the flag.
 */
export function clusterRanges(flags: { serviceCIDR?: string; podCIDR?: string }): { ranges: Partial<MeshConfigResource['spec']>; problems: string[] } {
  const ranges: Partial<MeshConfigResource['spec']> = {};
  const problems: string[] = [];
  const split = (flag: string, value: string | undefined, v4: 'serviceCIDR' | 'podCIDR', v6: 'serviceCIDRv6' | 'podCIDRv6'): void => {
    if (value === undefined) return;
    const parts = value.split(',').map((x) => x.trim());
    const six = parts.filter((x) => x.includes(':'));
    const four = parts.filter((x) => !x.includes(':'));
    const problem = parts.length > 2 || parts.some((x) => !x) ? 'is one CIDR or two separated by a comma'
      : six.length > 1 || four.length > 1 ? 'names two CIDRs of one family (dual-stack is one of each)'
        : !four.length ? 'has no IPv4 CIDR (an IPv6-only mesh is not supported)' : undefined;
    if (problem) {
      problems.push(`${flag}: "${value}" ${problem}`);
      return;
    }
    ranges[v4] = four[0]!;
    if (six.length) ranges[v6] = six[0]!;
  };
  split('--service-cidr', flags.serviceCIDR, 'serviceCIDR', 'serviceCIDRv6');
  split('--pod-cidr', flags.podCIDR, 'podCIDR', 'podCIDRv6');
  if (!problems.length) {
    const r = MeshConfig.safeParse({ apiVersion: 'ebmesh.io/v1alpha1', kind: 'MeshConfig', metadata: { name: 'mesh' }, spec: ranges });
    const flagOf = (field: string) => (field.startsWith('service') ? '--service-cidr' : '--pod-cidr');
    // Issues are at spec.FIELD: the flag and the field name say where.
    if (!r.success) for (const i of r.error.issues) problems.push(`${flagOf(String(i.path.at(-1) ?? ''))}: ${issuePath(i.path.slice(1))}: ${i.message}`);
  }
  return { ranges, problems };
}

export function meshOf(o: KubeObject | undefined, defaults: Partial<MeshConfigResource['spec']>, problems: Problem[]): MeshConfigResource {
  const base = MeshConfig.parse({ apiVersion: 'ebmesh.io/v1alpha1', kind: 'MeshConfig', metadata: { name: 'mesh' }, spec: defaults });
  if (!o) return base;
  const spec = { ...defaults, ...((o as { spec?: Record<string, unknown> }).spec ?? {}) };
  return fit(MeshConfig, { apiVersion: 'ebmesh.io/v1alpha1', kind: 'MeshConfig', metadata: { name: o.metadata.name }, spec }, 'MeshConfig', { name: o.metadata.name }, problems) ?? base;
}
