/**
 * What the socket load balancer must hold, computed purely from a snapshot:
 * every (VIP, port, protocol) of every Service with its ready backends.
 */
import type { ServiceResource, WorkloadResource } from '../resources/index.js';
import { wlKey, type Snapshot } from './state.js';
import { l7Ports } from './l7.js';
import { isReady, portBackends, resolveTargetPort, selectedWorkloads, serviceVips, workloadIp } from './endpoints.js';

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
 * family (an IPv6 VIP is served over IPv6).
 */
export function frontendsOf(snap: Snapshot, svc: ServiceResource, selected: WorkloadResource[], l7: ReturnType<typeof l7Ports>): DesiredFrontend[] {
  const out: DesiredFrontend[] = [];
  for (const { vip, family } of serviceVips(svc)) for (const sp of svc.spec.ports) {
    const backends: DesiredBackend[] = portBackends(snap, svc, sp, selected, family);
    out.push({
      service: `${svc.metadata.namespace}/${svc.metadata.name}`,
      portName: sp.name,
      vip,
      port: sp.port,
      proto: sp.protocol,
      affinityTimeout: svc.spec.sessionAffinity === 'ClientIP' ? svc.spec.sessionAffinityConfig?.clientIP.timeoutSeconds ?? 10800 : undefined,
      backends,
      ...(sp.protocol === 'TCP' && l7.get(`${svc.metadata.namespace}/${svc.metadata.name}`)?.(sp.port) ? { l7: true } : {}),
    });
  }
  return out;
}
