/**
 * The desired state as the control plane reads it from the store: one
 * snapshot type, and the key layout of the store, in one place.
 */
import type { Store } from '../store/index.js';
import {
  MeshConfig, type AnyResource, type MeshConfigResource, type NamespaceResource, type ServiceResource, type WorkloadResource,
} from '../resources/index.js';
import { resourceKey } from '../resources/index.js';

export const RESOURCES = '/resources/';
export const STATUS = '/status/';

export function storeKey(r: AnyResource): string {
  return RESOURCES + resourceKey(r);
}

export function statusKey(kind: string, namespace: string, name: string): string {
  return `${STATUS}${kind}/${namespace}/${name}`;
}

export type WorkloadPhase = 'Pending' | 'Running' | 'Failed' | 'Succeeded';

export interface WorkloadStatus {
  phase: WorkloadPhase;
  /** Running and answering on its first TCP port (or has none). */
  ready?: boolean;
  /** Hash of the spec the process was started from. */
  sig?: string;
  ip?: string;
  pid?: number;
  netns?: string;
  cgroup?: string;
  message?: string;
  startedAt?: string;
  node?: string;
}

/** One endpoint of a Service as Kubernetes' EndpointSlices give it. */
export interface SliceEndpoint {
  ip: string;
  /** The slice's ports: a Service port picks its own by name ('' for an unnamed one) and protocol. */
  ports: ReadonlyArray<{ name: string; port: number; protocol: string }>;
  ready: boolean;
  serving: boolean;
  terminating: boolean;
  /** namespace/name of the pod behind it, when the slice names one. */
  workload?: string;
}

export interface Snapshot {
  revision: number;
  mesh: MeshConfigResource;
  namespaces: NamespaceResource[];
  services: ServiceResource[];
  workloads: WorkloadResource[];
  /** by `namespace/name` */
  workloadStatus: Map<string, WorkloadStatus>;
  /** Every other kind, by kind name (policies, routes…). */
  others: Map<string, AnyResource[]>;
  /**
   * Services' endpoints by namespace/name, when the source has them
   * (Kubernetes EndpointSlices): then they, not selectors over workloads,
   * say which backends a Service has. A source keeps the same array for a
   * Service whose endpoints did not change, so caches can tell.
   */
  endpointSlices?: ReadonlyMap<string, readonly SliceEndpoint[]>;
}

export const defaultMesh: MeshConfigResource = MeshConfig.parse({
  apiVersion: 'ebmesh.io/v1alpha1', kind: 'MeshConfig', metadata: { name: 'mesh' }, spec: {},
});

export async function readSnapshot(store: Store): Promise<Snapshot> {
  const revision = await store.revision();
  const resources = (await store.list<AnyResource>(RESOURCES)).map((e) => e.value);
  const statuses = await store.list<WorkloadStatus>(`${STATUS}Workload/`);
  const snap: Snapshot = {
    revision,
    mesh: defaultMesh,
    namespaces: [],
    services: [],
    workloads: [],
    workloadStatus: new Map(statuses.map((e) => [e.key.slice(`${STATUS}Workload/`.length), e.value])),
    others: new Map(),
  };
  for (const r of resources) {
    switch (r.kind) {
      case 'MeshConfig': snap.mesh = r; break;
      case 'Namespace': snap.namespaces.push(r); break;
      case 'Service': snap.services.push(r); break;
      case 'Workload': snap.workloads.push(r); break;
      default: {
        const list = snap.others.get((r as AnyResource).kind) ?? [];
        list.push(r);
        snap.others.set((r as AnyResource).kind, list);
      }
    }
  }
  return snap;
}

export function wlKey(w: { metadata: { namespace: string; name: string } }): string {
  return `${w.metadata.namespace}/${w.metadata.name}`;
}
