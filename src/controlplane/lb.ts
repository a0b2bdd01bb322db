/**
 * What the socket load balancer must hold, computed purely from a snapshot:
 * every (VIP, port, protocol) of every Service with its ready backends.
 */
import type { ServiceResource, WorkloadResource } from '../resources/index.js';
import { wlKey, type Snapshot } from './state.js';
import { l7Ports } from './l7.js';
import { ipFamilyOf } from '../resources/ip.js';
import { isReady, portBackends, resolveTargetPort, selectedWorkloads, serviceVips, workloadIp, type ServicePort } from './endpoints.js';

export { isReady, resolveTargetPort, selectedWorkloads, workloadIp };

export interface DesiredBackend {
  ip: string;
  port: number;
  workload: string; // namespace/name
}

export interface DesiredFrontend {
  service: string; // namespace/name
  portName?: string;
  vip: string;
  port: number;
  proto: 'TCP' | 'UDP';
  affinityTimeout?: number; // seconds, when sessionAffinity is ClientIP
  backends: DesiredBackend[];
  /** Has routes or L7 policy: connections go to the node proxy (issue 6). */
  l7?: boolean;
  /** A node address and node port of a NodePort or LoadBalancer Service, not a VIP. */
  nodePort?: boolean;
}

export function computeFrontends(snap: Snapshot): DesiredFrontend[] {
  const out: DesiredFrontend[] = [];
  const l7 = l7Ports(snap);
  for (const svc of snap.services) out.push(...frontendsOf(snap, svc, selectedWorkloads(svc, snap.workloads), l7));
  return out;
}

/**
 * One Service's frontends from its selected workloads: the body of
 * computeFrontends. A frontend per VIP and port; a VIP's backends are of its
 * family (an IPv6 VIP is served over IPv6). A NodePort or LoadBalancer
 * Service also has one per node address and node port, for the addresses of
 * a family it has a VIP in, with the same backends: a connect() to any
 * node's address at the node port is given a backend as a VIP's is.
 */
export function frontendsOf(snap: Snapshot, svc: ServiceResource, selected: WorkloadResource[], l7: ReturnType<typeof l7Ports>): DesiredFrontend[] {
  const out: DesiredFrontend[] = [];
  const service = `${svc.metadata.namespace}/${svc.metadata.name}`;
  const affinityTimeout = svc.spec.sessionAffinity === 'ClientIP' ? svc.spec.sessionAffinityConfig?.clientIP.timeoutSeconds ?? 10800 : undefined;
  const steered = (sp: ServicePort) => sp.protocol === 'TCP' && !!l7.get(service)?.(sp.port);
  // A port's backends of a family, computed once: its VIP and each node address of that family share them.
  const computed = new Map<string, DesiredBackend[]>();
  const backendsOf = (sp: ServicePort, family: 4 | 6): DesiredBackend[] => {
    const key = `${family}|${sp.port}/${sp.protocol}`;
    let b = computed.get(key);
    if (!b) computed.set(key, (b = portBackends(snap, svc, sp, selected, family)));
    return b;
  };
  const vips = serviceVips(svc);
  for (const { vip, family } of vips) for (const sp of svc.spec.ports) {
    out.push({
      service, portName: sp.name, vip, port: sp.port, proto: sp.protocol, affinityTimeout,
      backends: backendsOf(sp, family),
      ...(steered(sp) ? { l7: true } : {}),
    });
  }
  if (svc.spec.type === 'ClusterIP') return out;
  for (const addr of snap.nodeAddresses ?? []) {
    const family = ipFamilyOf(addr);
    if (!family || !vips.some((v) => v.family === family)) continue;
    for (const sp of svc.spec.ports) {
      if (!sp.nodePort) continue;
      out.push({
        service, portName: sp.name, vip: addr, port: sp.nodePort, proto: sp.protocol, affinityTimeout, nodePort: true,
        // The node proxy finds a Service by its VIP and port, so a port
        // with routes or L7 policy cannot be served at a node port yet:
        // no backend, refused at connect, never around its policy.
        backends: steered(sp) ? [] : backendsOf(sp, family),
      });
    }
  }
  return out;
}
