/**
 * The desired state from a Kubernetes API server (the seam of source.ts):
 * informers on Namespaces, Nodes, Pods, Services, EndpointSlices,
 * NetworkPolicies, Gateway API routes and ebmesh's own kinds, translated
 * (src/k8s/translate.ts) into the Snapshot the plan takes.
 *
 * Translations are kept per object: the informers replace an object when it
 * changes and keep it otherwise, so an unchanged Service or Pod yields the
 * same resource object from one snapshot to the next, and the plan's caches
 * recompute only what changed. Local pods are adopted by their cgroup, found
 * from their UID and QoS class; a pod whose cgroup is not there yet is
 * looked for again on the next change (the kubelet makes it before the pod
 * has an address).
 */
import { EbmeshError } from '../errors.js';
import type { NodeRecord, SliceEndpoint, Snapshot, WorkloadStatus } from '../controlplane/index.js';
import type { AnyResource, MeshConfigResource, NamespaceResource, ServiceResource, WorkloadResource } from '../resources/index.js';
import { KubeClient, type KubeObject } from '../k8s/client.js';
import { Informer, objectKey } from '../k8s/informer.js';
import { COLLECTIONS, type CollectionName, type K8sEndpointSlice, type K8sNode, type K8sPod, type K8sService } from '../k8s/kinds.js';
import { findPodCgroup } from '../k8s/pod-cgroup.js';
import { ipFamilyOf } from '../resources/ip.js';
import type { StatusInputs } from '../k8s/status-writer.js';
import {
  endpointsOfSlices, meshOf, namespaceOf, optedOut, passThrough, routeOf, serviceOf, sliceService, workloadOfPod, type PodView, type Problem,
} from '../k8s/translate.js';
import type { DesiredStateSource } from './source.js';

export interface KubernetesSourceOptions {
  client: KubeClient;
  nodeName: string;
  /** The cgroup v2 root, where the kubelet's pod cgroups are found. */
  cgroupRoot: string;
  /** The value of service.kubernetes.io/service-proxy-name that names us. */
  proxyName: string;
  /** MeshConfig defaults from the install (the cluster's CIDRs); a MeshConfig object named "mesh" overrides them. */
  mesh: Partial<MeshConfigResource['spec']>;
}

type Collections = { [K in CollectionName]: Informer<KubeObject> };

/** How soon a local pod whose cgroup was not found is looked for again. */
const CGROUP_RECHECK_MS = 500;

export class KubernetesSource implements DesiredStateSource {
  readonly description: string;
  private readonly informers: Collections;
  private readonly watchers = new Set<() => void>();
  private revision = 0;
  private cached: Snapshot | undefined;
  /** Per object: its translation (objects are frozen and replaced on change, so identity tells). */
  private readonly translated = new WeakMap<KubeObject, { value: unknown; problems: Problem[] }>();
  private readonly podViews = new WeakMap<KubeObject, { cgroup: string | undefined; view: PodView | undefined; problems: Problem[] }>();
  /** Per Service: its slices as last seen, and their endpoints (the same array while they do not change). */
  private readonly sliceCache = new Map<string, { slices: readonly KubeObject[]; endpoints: readonly SliceEndpoint[] }>();
  private nodeList: NodeRecord[] = [];
  private nodeAddresses: readonly string[] = [];
  /** Objects left out of the last snapshot, with why. */
  problems: Problem[] = [];
  /** A local pod had an address but no cgroup yet: look again soon. */
  private cgroupsMissing = false;
  private recheck: NodeJS.Timeout | undefined;

  constructor(private readonly opts: KubernetesSourceOptions) {
    this.description = `Kubernetes: ${opts.client.access.description}`;
    const onChange = () => this.changed();
    const make = (name: CollectionName) => {
      const c = COLLECTIONS[name];
      return new Informer<KubeObject>(opts.client, { path: c.path, ...('optional' in c ? { optional: c.optional } : {}) }, onChange);
    };
    this.informers = Object.fromEntries((Object.keys(COLLECTIONS) as CollectionName[]).map((n) => [n, make(n)])) as Collections;
  }

  private changed(): void {
    this.revision++;
    this.cached = undefined;
    for (const w of this.watchers) w();
  }

  /** Lists every collection once; then they stay watched. */
  async start(timeoutMs = 60_000): Promise<void> {
    const all = Promise.all(Object.values(this.informers).map((i) => i.start()));
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const waiting = Object.entries(this.informers).filter(([, i]) => !i.synced).map(([n, i]) => `${n}${i.lastError ? ` (${i.lastError})` : ''}`);
        reject(new EbmeshError('EBMESH_KUBERNETES', `no first list from ${this.opts.client.access.description} in ${timeoutMs / 1000}s: ${waiting.join(', ')}`));
      }, timeoutMs);
    });
    try {
      await Promise.race([all, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  private once<T>(o: KubeObject, make: (problems: Problem[]) => T | undefined): T | undefined {
    let t = this.translated.get(o);
    if (!t) {
      const problems: Problem[] = [];
      t = { value: make(problems), problems };
      this.translated.set(o, t);
    }
    this.problems.push(...t.problems);
    return t.value as T | undefined;
  }

  private pod(p: K8sPod, local: boolean, meshed: boolean): PodView | undefined {
    const qos = p.status?.qosClass;
    const cgroup = local && meshed && p.metadata.uid ? findPodCgroup(this.opts.cgroupRoot, p.metadata.uid, qos) : undefined;
    if (local && meshed && !cgroup && p.status?.podIP) this.cgroupsMissing = true;
    let t = this.podViews.get(p);
    if (!t || t.cgroup !== cgroup) {
      const problems: Problem[] = [];
      t = { cgroup, view: workloadOfPod(p, cgroup, problems), problems };
      this.podViews.set(p, t);
    }
    this.problems.push(...t.problems);
    return t.view;
  }

  private nodesOf(): NodeRecord[] {
    const nodes = [...this.informers.nodes.items.values()] as K8sNode[];
    nodes.sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
    return nodes.map((n, index) => {
      const addr = n.status?.addresses?.find((a) => a.type === 'InternalIP')?.address;
      const cidrs = n.spec?.podCIDRs ?? (n.spec?.podCIDR ? [n.spec.podCIDR] : []);
      const cidr = cidrs.find((c) => !c.includes(':'));
      const cidr6 = cidrs.find((c) => c.includes(':'));
      return { name: n.metadata.name, index, ...(cidr ? { podCIDR: cidr } : {}), ...(cidr6 ? { podCIDRv6: cidr6 } : {}), ...(addr ? { address: addr } : {}) };
    });
  }

  /** Where NodePort Services are served: every node's internal and external addresses, each once, sorted. */
  private addressesOfNodes(): string[] {
    const out = new Set<string>();
    for (const n of this.informers.nodes.items.values() as Iterable<K8sNode>) {
      for (const a of n.status?.addresses ?? []) if ((a.type === 'InternalIP' || a.type === 'ExternalIP') && ipFamilyOf(a.address)) out.add(a.address);
    }
    return [...out].sort();
  }

  private slices(byService: Map<string, KubeObject[]>, key: string): readonly SliceEndpoint[] {
    const slices = (byService.get(key) ?? []).sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
    const prev = this.sliceCache.get(key);
    if (prev && prev.slices.length === slices.length && prev.slices.every((s, i) => s === slices[i])) return prev.endpoints;
    const endpoints = endpointsOfSlices(slices as K8sEndpointSlice[]);
    this.sliceCache.set(key, { slices, endpoints });
    return endpoints;
  }

  private build(): Snapshot {
    this.problems = [];
    this.cgroupsMissing = false;
    const { informers: inf, opts } = this;
    const namespaces: NamespaceResource[] = [];
    const nsObjects = inf.namespaces.items;
    for (const o of nsObjects.values()) {
      const r = this.once(o, (p) => namespaceOf(o, p));
      if (r) namespaces.push(r);
    }
    const workloads: WorkloadResource[] = [];
    const workloadStatus = new Map<string, WorkloadStatus>();
    for (const o of inf.pods.items.values()) {
      const p = o as K8sPod;
      const meshed = !optedOut(nsObjects.get(p.metadata.namespace ?? '')) && !optedOut(p);
      const v = this.pod(p, p.spec.nodeName === opts.nodeName, meshed);
      if (!v) continue;
      workloads.push(v.workload);
      workloadStatus.set(objectKey(p), v.status);
    }
    const services: ServiceResource[] = [];
    for (const o of inf.services.items.values()) {
      const r = this.once(o, (p) => serviceOf(o as K8sService, opts.proxyName, p));
      if (r) services.push(r);
    }
    const byService = new Map<string, KubeObject[]>();
    for (const o of inf.endpointSlices.items.values()) {
      const key = sliceService(o as K8sEndpointSlice);
      if (!key) continue;
      const list = byService.get(key) ?? [];
      list.push(o);
      byService.set(key, list);
    }
    const endpointSlices = new Map<string, readonly SliceEndpoint[]>();
    for (const s of services) {
      const key = `${s.metadata.namespace}/${s.metadata.name}`;
      endpointSlices.set(key, this.slices(byService, key));
    }
    for (const key of [...this.sliceCache.keys()]) if (!endpointSlices.has(key)) this.sliceCache.delete(key);

    const others = new Map<string, AnyResource[]>();
    const add = (kind: string, r: AnyResource | undefined) => {
      if (!r) return;
      const list = others.get(kind) ?? [];
      list.push(r);
      others.set(kind, list);
    };
    for (const o of inf.networkPolicies.items.values()) add('NetworkPolicy', this.once(o, (p) => passThrough('NetworkPolicy', o, p)));
    for (const o of inf.trafficPolicies.items.values()) add('TrafficPolicy', this.once(o, (p) => passThrough('TrafficPolicy', o, p)));
    for (const o of inf.authorizationPolicies.items.values()) add('AuthorizationPolicy', this.once(o, (p) => passThrough('AuthorizationPolicy', o, p)));
    for (const o of inf.httpRoutes.items.values()) add('HTTPRoute', this.once(o, (p) => routeOf('HTTPRoute', o, p)));
    for (const o of inf.grpcRoutes.items.values()) add('GRPCRoute', this.once(o, (p) => routeOf('GRPCRoute', o, p)));

    const meshObject = inf.meshConfigs.items.get('mesh');
    const mesh = meshObject ? this.once(meshObject, (p) => meshOf(meshObject, opts.mesh, p))! : meshOf(undefined, opts.mesh, []);
    this.nodeList = this.nodesOf();
    const addresses = this.addressesOfNodes();
    if (addresses.join(',') !== this.nodeAddresses.join(',')) this.nodeAddresses = addresses;
    if (this.cgroupsMissing && !this.recheck) {
      this.recheck = setTimeout(() => { this.recheck = undefined; this.changed(); }, CGROUP_RECHECK_MS);
      this.recheck.unref();
    }
    return { revision: this.revision, mesh, namespaces, services, workloads, workloadStatus, others, endpointSlices, nodeAddresses: this.nodeAddresses };
  }

  async snapshot(): Promise<Snapshot> {
    this.cached ??= this.build();
    return this.cached;
  }

  watch(onChange: () => void): () => void {
    this.watchers.add(onChange);
    return () => this.watchers.delete(onChange);
  }

  /** The EndpointSlices of Service NAMESPACE/NAME as last seen (the agent dials its control plane's endpoints from them, not a VIP). */
  slicesOf(namespace: string, name: string): K8sEndpointSlice[] {
    const key = `${namespace}/${name}`;
    return ([...this.informers.endpointSlices.items.values()] as K8sEndpointSlice[]).filter((sl) => sliceService(sl) === key);
  }

  /** The kubelet owns pods' status. */
  async reportStatus(): Promise<void> {}

  nodes(): readonly NodeRecord[] {
    if (!this.cached) this.cached = this.build();
    return this.nodeList;
  }

  /** What the elected agent writes back (k8s/status-writer.ts) reads from here. */
  statusInputs(): StatusInputs {
    const inf = this.informers;
    const problemKind: Record<string, CollectionName> = {
      Pod: 'pods', Service: 'services', Namespace: 'namespaces', NetworkPolicy: 'networkPolicies', HTTPRoute: 'httpRoutes', GRPCRoute: 'grpcRoutes',
      TrafficPolicy: 'trafficPolicies', AuthorizationPolicy: 'authorizationPolicies', MeshConfig: 'meshConfigs',
    };
    return {
      routes: () => [
        ...[...inf.httpRoutes.items.values()].map((object) => ({ kind: 'HTTPRoute' as const, object })),
        ...[...inf.grpcRoutes.items.values()].map((object) => ({ kind: 'GRPCRoute' as const, object })),
      ],
      policies: () => [
        ...[...inf.trafficPolicies.items.values()].map((object) => ({ kind: 'TrafficPolicy' as const, object })),
        ...[...inf.authorizationPolicies.items.values()].map((object) => ({ kind: 'AuthorizationPolicy' as const, object })),
      ],
      services: () => {
        const out = new Map<string, Set<number>>();
        for (const o of inf.services.items.values()) out.set(objectKey(o), new Set(((o as K8sService).spec.ports ?? []).map((p) => p.port)));
        return out;
      },
      problems: () => {
        if (!this.cached) this.cached = this.build();
        return this.problems;
      },
      objectOf: (p) => {
        const c = problemKind[p.kind];
        return c ? inf[c].items.get(p.namespace ? `${p.namespace}/${p.name}` : p.name) : undefined;
      },
    };
  }

  /** The informers' health, for status. */
  health(): Record<string, { synced: boolean; objects: number; lists: number; relistsAfterGone: number; errors: number; lastError?: string }> {
    return Object.fromEntries(Object.entries(this.informers).map(([name, i]) => [name, {
      synced: i.synced, objects: i.items.size, ...i.stats, ...(i.lastError ? { lastError: i.lastError } : {}),
    }]));
  }

  async close(): Promise<void> {
    clearTimeout(this.recheck);
    await Promise.all(Object.values(this.informers).map((i) => i.stop()));
    this.opts.client.close();
  }
}
