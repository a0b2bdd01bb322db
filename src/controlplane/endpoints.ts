/**
 * Which workloads back a Service, and on which port: the selection both the
 * socket load balancer (lb.ts) and the node proxy's config (l7.ts) build on.
 */
import { matchesLabels, type ServiceResource, type WorkloadResource } from '../resources/index.js';
import { wlKey, type Snapshot } from './state.js';

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
