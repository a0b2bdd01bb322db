/**
 * The desired state as the control plane reads it from the store: one
 * snapshot type, and the key layout of the store, in one place.
 */
import type { z } from 'zod';
import type { Store } from '../store/index.js';
import { checkStoredResource, checkStoredStatus, type RejectedEntry, type WorkloadStatusSchema } from './stored.js';
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

export type WorkloadStatus = z.infer<typeof WorkloadStatusSchema>;
export type WorkloadPhase = WorkloadStatus['phase'];

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
  /**
   * Every node's addresses, where NodePort and LoadBalancer Services are
   * served at their node ports (Kubernetes: each Node's InternalIP and
   * ExternalIP addresses), when the source has them; sorted, and the same
   * array while they do not change.
   */
  nodeAddresses?: readonly string[];
  /** Stored entries that failed their check (stored.ts): left out of everything above. */
  rejected?: RejectedEntry[];
}

export interface ReadOptions {
  /**
   * A node's view (controlplane/nodes.ts): the namespace/name of the
   * workloads it runs. Every other Workload is checked as another node's
   * (nothing to run); without it, every Workload is checked in full.
   */
  localWorkloads?: ReadonlySet<string>;
}

export const defaultMesh: MeshConfigResource = MeshConfig.parse({
  apiVersion: 'ebmesh.io/v1alpha1', kind: 'MeshConfig', metadata: { name: 'mesh' }, spec: {},
});

/** The desired state in STORE, every value checked again (stored.ts): what fails is in `rejected`, nowhere else. */
export async function readSnapshot(store: Store, opts: ReadOptions = {}): Promise<Snapshot> {
  const revision = await store.revision();
  const stored = await store.list<unknown>(RESOURCES);
  const storedStatuses = await store.list<unknown>(`${STATUS}Workload/`);
  const rejected: RejectedEntry[] = [];
  const workloadStatus = new Map<string, WorkloadStatus>();
  for (const e of storedStatuses) {
    const c = checkStoredStatus(e.value);
    if ('ok' in c) workloadStatus.set(e.key.slice(`${STATUS}Workload/`.length), c.ok);
    else rejected.push({ key: e.key, problem: c.problem });
  }
  const snap: Snapshot = {
    revision,
    mesh: defaultMesh,
    namespaces: [],
    services: [],
    workloads: [],
    workloadStatus,
    others: new Map(),
    rejected,
  };
  const local = opts.localWorkloads;
  for (const e of stored) {
    const remote = local !== undefined && e.key.startsWith(`${RESOURCES}Workload/`) && !local.has(e.key.slice(`${RESOURCES}Workload/`.length));
    const c = checkStoredResource(e.key, e.value, RESOURCES, remote);
    if (!('ok' in c)) {
      rejected.push({ key: e.key, problem: c.problem });
      continue;
    }
    const r = c.ok;
    switch (r.kind) {
      case 'MeshConfig': snap.mesh = r; break;
      case 'Namespace': snap.namespaces.push(r); break;
      case 'Service': snap.services.push(r); break;
      case 'Workload': snap.workloads.push(r); break;
      default: {
        const list = snap.others.get(r.kind) ?? [];
        list.push(r);
        snap.others.set(r.kind, list);
      }
    }
  }
  return snap;
}

export function wlKey(w: { metadata: { namespace: string; name: string } }): string {
  return `${w.metadata.namespace}/${w.metadata.name}`;
}
