/**
 * The service map's input from a snapshot of the desired state and the
 * node's recent flows: workloads, services and routes by name, so the map
 * (servicemap.ts) can name what the flows connect.
 */
import { isReady, workloadIp, type Snapshot } from '../controlplane/index.js';
import type { Flow } from './servicemap-flow.js';
import type { MapInput } from './servicemap.js';

export function mapInput(snap: Snapshot, flows: Flow[] | undefined, windowSeconds: number, now = Date.now()): MapInput {
  return {
    now,
    windowSeconds,
    flows,
    trustDomain: snap.mesh.spec.trustDomain,
    workloads: snap.workloads.map((w) => ({
      namespace: w.metadata.namespace,
      name: w.metadata.name,
      labels: w.metadata.labels,
      serviceAccount: w.spec.serviceAccount,
      ip: workloadIp(snap, w),
      ...(w.spec.ipv6 ? { ipv6: w.spec.ipv6 } : {}),
      phase: w.spec.adopt ? 'Adopted' : snap.workloadStatus.get(`${w.metadata.namespace}/${w.metadata.name}`)?.phase ?? 'Pending',
      ready: isReady(snap, w),
    })),
    services: snap.services.map((s) => ({
      namespace: s.metadata.namespace,
      name: s.metadata.name,
      clusterIP: s.spec.clusterIP,
      ...(s.spec.clusterIPs && s.spec.clusterIPs.length > 1 ? { clusterIPs: s.spec.clusterIPs } : {}),
      selector: s.spec.selector,
      ports: s.spec.ports.map((p) => `${p.name ? `${p.name} ` : ''}${p.port}/${p.protocol}`),
    })),
    others: [...snap.others.values()].flat() as MapInput['others'],
  };
}
