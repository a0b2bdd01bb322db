/**
 * Which Services need the node proxy, and the proxy's configuration, both
 * computed purely from a snapshot (issue 6). A Service needs the proxy when
 * an HTTPRoute/GRPCRoute names it as parent, or a TrafficPolicy /
 * AuthorizationPolicy targets it or one of its routes.
 */
import type {
  AuthorizationPolicyResource, GRPCRouteResource, HTTPRouteResource, TrafficPolicyResource, WorkloadResource,
} from '../resources/index.js';
import type { ProxyRoutingConfig, ServiceProtocol } from '../proxy/index.js';
import { wlKey, type Snapshot } from './state.js';
import { portBackends, selectedWorkloads, serviceVips, workloadIp, workloadIpv6 } from './endpoints.js';

const svcKey = (ns: string, name: string) => `${ns}/${name}`;

export interface L7Resources {
  httpRoutes: HTTPRouteResource[];
  grpcRoutes: GRPCRouteResource[];
  trafficPolicies: TrafficPolicyResource[];
  authorizationPolicies: AuthorizationPolicyResource[];
}

export function l7Resources(snap: Snapshot): L7Resources {
  const of = <T>(kind: string) => (snap.others.get(kind) ?? []) as T[];
  return {
    httpRoutes: of<HTTPRouteResource>('HTTPRoute'),
    grpcRoutes: of<GRPCRouteResource>('GRPCRoute'),
    trafficPolicies: of<TrafficPolicyResource>('TrafficPolicy'),
    authorizationPolicies: of<AuthorizationPolicyResource>('AuthorizationPolicy'),
  };
}

/**
 * Service (ns/name) -> which of its ports are steered. A route's parentRef
 * with a port steers that port only (GAMMA); everything else steers all.
 */
export function l7Ports(snap: Snapshot): Map<string, (port: number) => boolean> {
  const r = l7Resources(snap);
  const ports = new Map<string, Set<number> | 'all'>();
  const add = (key: string, port: number | undefined) => {
    const cur = ports.get(key);
    if (cur === 'all') return;
    if (port === undefined) ports.set(key, 'all');
    else ports.set(key, new Set([...(cur ?? []), port]));
  };
  const routeParents = new Map<string, Array<{ key: string; port: number | undefined }>>();
  for (const route of [...r.httpRoutes, ...r.grpcRoutes]) {
    const parents = route.spec.parentRefs.map((p) => ({ key: svcKey(p.namespace ?? route.metadata.namespace, p.name), port: p.port }));
    routeParents.set(`${route.kind}/${route.metadata.namespace}/${route.metadata.name}`, parents);
    for (const p of parents) add(p.key, p.port);
  }
  for (const pol of [...r.trafficPolicies, ...r.authorizationPolicies]) {
    const t = pol.spec.targetRef;
    if (t.kind === 'Service') add(svcKey(pol.metadata.namespace, t.name), undefined);
    else for (const p of routeParents.get(`${t.kind}/${pol.metadata.namespace}/${t.name}`) ?? []) add(p.key, p.port);
  }
  const out = new Map<string, (port: number) => boolean>();
  for (const [k, v] of ports) out.set(k, v === 'all' ? () => true : (port) => v.has(port));
  return out;
}

function serviceProtocol(appProtocol: string | undefined): ServiceProtocol {
  switch (appProtocol?.toLowerCase()) {
    case 'http': return 'http1';
    case 'kubernetes.io/h2c': case 'h2c': case 'http2': case 'grpc': return 'http2';
    case 'tcp': return 'tcp';
    default: return 'auto';
  }
}

/** A workload as a caller: how the proxy names it in policy and events. */
export interface ClientIdentity {
  namespace: string;
  name: string;
  serviceAccount: string;
  /** spiffe://<trust domain>/ns/<ns>/sa/<serviceAccount> */
  identity: string;
  ip: string | undefined;
  /** Its IPv6 address, on a dual-stack mesh. */
  ipv6?: string | undefined;
  /** The lab's cgroup of the workload, or the adopted one. */
  cgroup: string | undefined;
}

export function clientIdentities(snap: Snapshot): ClientIdentity[] {
  const td = snap.mesh.spec.trustDomain;
  return snap.workloads.map((w: WorkloadResource) => ({
    namespace: w.metadata.namespace,
    name: w.metadata.name,
    serviceAccount: w.spec.serviceAccount,
    identity: `spiffe://${td}/ns/${w.metadata.namespace}/sa/${w.spec.serviceAccount}`,
    ip: workloadIp(snap, w),
    ipv6: workloadIpv6(snap, w),
    cgroup: w.spec.adopt?.cgroup ?? snap.workloadStatus.get(wlKey(w))?.cgroup,
  }));
}

/**
 * The node proxy's routing config: every Service port (a route's backends
 * may be Services without rules of their own) with its ready endpoints, and
 * every L7 resource. The proxy validates it again when it compiles it. A
 * dual-stack Service is one service to the proxy, found at either VIP
 * (`vips`), whose endpoints are of the primary family: the proxy dials
 * whichever family, whatever the client used.
 */
export function computeProxyConfig(snap: Snapshot): ProxyRoutingConfig & { steered: string[] } {
  const services: ProxyRoutingConfig['services'] = [];
  const l7 = l7Ports(snap);
  const steered: string[] = [];
  for (const svc of snap.services) {
    const [primary, ...secondary] = serviceVips(svc);
    if (!primary) continue;
    const selected = snap.endpointSlices ? undefined : selectedWorkloads(svc, snap.workloads);
    const key = svcKey(svc.metadata.namespace, svc.metadata.name);
    for (const sp of svc.spec.ports) {
      if (sp.protocol !== 'TCP') continue;
      const endpoints = portBackends(snap, svc, sp, selected, primary.family).map(({ ip, port }) => ({ ip, port }));
      services.push({
        name: svc.metadata.name, namespace: svc.metadata.namespace, vip: primary.vip, ...(secondary.length ? { vips: secondary.map((v) => v.vip) } : {}),
        port: sp.port, protocol: serviceProtocol(sp.appProtocol), endpoints,
      });
      if (l7.get(key)?.(sp.port)) steered.push(`${key}:${sp.port}`);
    }
  }
  // The drain timeout is the agent's business (handover), not the proxy core's.
  const { drainTimeoutMs: _drain, ...limits } = snap.mesh.spec.proxy ?? {};
  return { services, ...l7Resources(snap), ...(snap.mesh.spec.proxy ? { limits } : {}), steered };
}
