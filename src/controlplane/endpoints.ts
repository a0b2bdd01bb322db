/**
 * Which endpoints back a Service, and on which port: the selection both the
 * socket load balancer (lb.ts) and the node proxy's config (l7.ts) build on.
 * From EndpointSlices when the source gives them (Kubernetes), otherwise from
 * the Service's selector over the workloads (ebmesh's own store).
 */
import { matchesLabels, type ServiceResource, type WorkloadResource } from '../resources/index.js';
import { wlKey, type SliceEndpoint, type Snapshot } from './state.js';
import { ipFamilyOf } from '../resources/ip.js';

export type ServicePort = ServiceResource['spec']['ports'][number];

/** A backend of one Service port. */
export interface PortBackend {
  ip: string;
  port: number;
  /** namespace/name of the workload, or the address when none is known. */
  workload: string;
}

export function selectedWorkloads(svc: ServiceResource, workloads: WorkloadResource[]): WorkloadResource[] {
  return workloads.filter((w) => w.metadata.namespace === svc.metadata.namespace && matchesLabels(svc.spec.selector, w.metadata.labels));
}

/** targetPort resolved on one workload: a number, a name, or the port itself. */
export function resolveTargetPort(
  sp: ServiceResource['spec']['ports'][number],
  w: WorkloadResource,
): number | undefined {
  const tp = sp.targetPort ?? sp.port;
  if (typeof tp === 'number') return tp;
  return w.spec.ports.find((p) => p.name === tp && p.protocol === sp.protocol)?.containerPort;
}

export function isReady(snap: Snapshot, w: WorkloadResource): boolean {
  if (w.spec.adopt || w.spec.external) return true; // an adopted process group or an external endpoint is ready once declared
  const st = snap.workloadStatus.get(wlKey(w));
  return st?.phase === 'Running' && st.ready === true;
}

export function workloadIp(snap: Snapshot, w: WorkloadResource): string | undefined {
  return w.spec.ip ?? snap.workloadStatus.get(wlKey(w))?.ip;
}

export function workloadIpv6(snap: Snapshot, w: WorkloadResource): string | undefined {
  return w.spec.ipv6 ?? snap.workloadStatus.get(wlKey(w))?.ipv6;
}

/** A workload's address of one family: the backends of a VIP are of the VIP's family. */
export function workloadAddressOf(snap: Snapshot, w: WorkloadResource, family: 4 | 6): string | undefined {
  return family === 4 ? workloadIp(snap, w) : workloadIpv6(snap, w);
}

/** Every address of a workload (IPv4 first). */
export function workloadAddresses(snap: Snapshot, w: WorkloadResource): string[] {
  return [workloadIp(snap, w), workloadIpv6(snap, w)].filter((ip): ip is string => ip !== undefined);
}

/** A Service's VIPs, primary first, each with its family (a Service stored before dual-stack has only clusterIP). */
export function serviceVips(svc: ServiceResource): Array<{ vip: string; family: 4 | 6 }> {
  const ips = svc.spec.clusterIPs ?? (svc.spec.clusterIP ? [svc.spec.clusterIP] : []);
  return ips.map((vip) => ({ vip, family: ipFamilyOf(vip) ?? 4 }));
}

/**
 * The slice endpoints a Service port sends new connections to: the ready
 * ones; when none is ready, those still serving while they terminate (as
 * kube-proxy does, so a rollout's last pod keeps answering until it is gone).
 */
function sliceBackends(list: readonly SliceEndpoint[], sp: ServicePort, family: 4 | 6): PortBackend[] {
  const name = sp.name ?? '';
  const portOf = (e: SliceEndpoint) => e.ports.find((p) => p.name === name && p.protocol === sp.protocol)?.port;
  // A VIP is served by endpoints of its family (EndpointSlices come per address type).
  list = list.filter((e) => (ipFamilyOf(e.ip) ?? 4) === family);
  let use = list.filter((e) => e.ready);
  if (!use.length) use = list.filter((e) => e.serving && e.terminating);
  const out: PortBackend[] = [];
  for (const e of use) {
    const port = portOf(e);
    if (port !== undefined) out.push({ ip: e.ip, port, workload: e.workload ?? e.ip });
  }
  return out;
}

/**
 * The backends of one port of a Service in one family (a VIP's backends are
 * of its family), sorted and without duplicates; `selected` are its selected
 * workloads when already known.
 */
export function portBackends(snap: Snapshot, svc: ServiceResource, sp: ServicePort, selected?: readonly WorkloadResource[], family: 4 | 6 = 4): PortBackend[] {
  const key = `${svc.metadata.namespace}/${svc.metadata.name}`;
  let out: PortBackend[];
  if (snap.endpointSlices) {
    out = sliceBackends(snap.endpointSlices.get(key) ?? [], sp, family);
  } else {
    out = [];
    for (const w of selected ?? selectedWorkloads(svc, snap.workloads)) {
      if (!isReady(snap, w)) continue;
      const ip = workloadAddressOf(snap, w, family);
      const port = resolveTargetPort(sp, w);
      if (ip && port) out.push({ ip, port, workload: wlKey(w) });
    }
  }
  out.sort((a, b) => (a.ip === b.ip ? a.port - b.port : a.ip < b.ip ? -1 : 1));
  return out.filter((b, i) => i === 0 || b.ip !== out[i - 1]!.ip || b.port !== out[i - 1]!.port);
}

/** How many distinct ready endpoints a Service has (status). */
export function readyEndpointCount(snap: Snapshot, svc: ServiceResource): number {
  if (snap.endpointSlices) return new Set((snap.endpointSlices.get(`${svc.metadata.namespace}/${svc.metadata.name}`) ?? []).filter((e) => e.ready).map((e) => e.ip)).size;
  return selectedWorkloads(svc, snap.workloads).filter((w) => isReady(snap, w)).length;
}
