/**
 * computeFrontends, incrementally: the same answer, but each snapshot only
 * recomputes the Services that a change can have touched. A Service depends
 * on itself and on the workloads (and their status) it selects before or
 * after the change; workloads are found through an index by namespace and
 * label, Services through an index by namespace and the first label of their
 * selector (every label of a selector must be on a workload it selects, so
 * its first one is too).
 *
 * Routes and L7 policies (every other kind) decide which ports go to the
 * node proxy: any change among them recomputes every Service.
 *
 * Changes are found by identity: stores hand out frozen values and keep the
 * same object for a key until it is written again, so comparing references
 * finds every change. A store that copies on read is still answered right,
 * only with everything recomputed.
 */
import { matchesLabels, type AnyResource, type ServiceResource, type WorkloadResource } from '../resources/index.js';
import { frontendsOf, type DesiredFrontend } from './lb.js';
import { l7Ports } from './l7.js';
import { wlKey, type SliceEndpoint, type Snapshot, type WorkloadStatus } from './state.js';

const pairKey = (ns: string, k: string, v: string) => `${ns}\0${k}\0${v}`;

function addTo<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  let s = m.get(k);
  if (!s) m.set(k, (s = new Set()));
  s.add(v);
}
function removeFrom<K, V>(m: Map<K, Set<V>>, k: K, v: V): void {
  const s = m.get(k);
  if (s?.delete(v) && s.size === 0) m.delete(k);
}

/** The first (by key) label of a Service's selector; none for a selector that selects nothing. */
function selectorPair(s: ServiceResource): string | undefined {
  const sel = s.spec.selector;
  if (!sel) return undefined;
  const keys = Object.keys(sel);
  if (!keys.length) return undefined;
  const k = keys.reduce((a, b) => (b < a ? b : a));
  return pairKey(s.metadata.namespace, k, sel[k]!);
}

/** Workloads by namespace and label: which ones a selector can match, without scanning them all. */
export class WorkloadIndex {
  private byPair = new Map<string, Set<string>>();
  readonly workloads = new Map<string, WorkloadResource>();

  add(w: WorkloadResource): void {
    const key = wlKey(w);
    this.workloads.set(key, w);
    for (const [k, v] of Object.entries(w.metadata.labels ?? {})) addTo(this.byPair, pairKey(w.metadata.namespace, k, v), key);
  }

  remove(key: string): void {
    const w = this.workloads.get(key);
    if (!w) return;
    this.workloads.delete(key);
    for (const [k, v] of Object.entries(w.metadata.labels ?? {})) removeFrom(this.byPair, pairKey(w.metadata.namespace, k, v), key);
  }

  /** The workloads a Service selects, in namespace/name order (the store's, hence computeFrontends'). */
  selected(s: ServiceResource): WorkloadResource[] {
    const sel = s.spec.selector;
    if (!sel || !Object.keys(sel).length) return [];
    let smallest: Set<string> | undefined;
    for (const [k, v] of Object.entries(sel)) {
      const set = this.byPair.get(pairKey(s.metadata.namespace, k, v));
      if (!set) return [];
      if (!smallest || set.size < smallest.size) smallest = set;
    }
    const out: WorkloadResource[] = [];
    for (const key of smallest!) {
      const w = this.workloads.get(key)!;
      if (matchesLabels(sel, w.metadata.labels)) out.push(w);
    }
    return out.sort((a, b) => { const x = wlKey(a), y = wlKey(b); return x < y ? -1 : x > y ? 1 : 0; });
  }
}

export class FrontendIndex {
  private services = new Map<string, ServiceResource>();
  private svcByPair = new Map<string, Set<string>>();
  private readonly wl = new WorkloadIndex();
  private statuses = new Map<string, WorkloadStatus | undefined>();
  private cache = new Map<string, DesiredFrontend[]>();
  private others: AnyResource[] | undefined;
  /** The EndpointSlice endpoints each Service was last computed from (a source keeps unchanged ones as the same array). */
  private slices = new Map<string, readonly SliceEndpoint[] | undefined>();
  /** The node addresses the frontends were last computed with (NodePort Services have a frontend per address). */
  private nodeAddresses: string | undefined;
  /** Services recomputed by the last compute (for tests and status). */
  lastRecomputed = 0;

  /** The Services whose selector may match this workload. */
  private servicesOf(w: WorkloadResource, out: Set<string>): void {
    const ns = w.metadata.namespace;
    for (const [k, v] of Object.entries(w.metadata.labels ?? {})) {
      for (const s of this.svcByPair.get(pairKey(ns, k, v)) ?? []) out.add(s);
    }
  }

  compute(snap: Snapshot): DesiredFrontend[] {
    const dirty = new Set<string>();
    const others = [...snap.others.values()].flat();
    const othersChanged = !this.others || others.length !== this.others.length || others.some((r, i) => r !== this.others![i]);
    this.others = others;

    const seenSvc = new Set<string>();
    for (const s of snap.services) {
      const key = `${s.metadata.namespace}/${s.metadata.name}`;
      seenSvc.add(key);
      const prev = this.services.get(key);
      if (prev === s) continue;
      if (prev) { const p = selectorPair(prev); if (p) removeFrom(this.svcByPair, p, key); }
      const p = selectorPair(s);
      if (p) addTo(this.svcByPair, p, key);
      this.services.set(key, s);
      dirty.add(key);
    }
    for (const [key, prev] of this.services) {
      if (seenSvc.has(key)) continue;
      const p = selectorPair(prev);
      if (p) removeFrom(this.svcByPair, p, key);
      this.services.delete(key);
      this.cache.delete(key);
    }

    const seenWl = new Set<string>();
    for (const w of snap.workloads) {
      const key = wlKey(w);
      seenWl.add(key);
      const prev = this.wl.workloads.get(key);
      const st = snap.workloadStatus.get(key);
      if (prev === w && this.statuses.get(key) === st) continue;
      if (prev) { this.servicesOf(prev, dirty); this.wl.remove(key); }
      this.wl.add(w);
      this.statuses.set(key, st);
      this.servicesOf(w, dirty);
    }
    for (const [key, prev] of [...this.wl.workloads]) {
      if (seenWl.has(key)) continue;
      this.servicesOf(prev, dirty);
      this.wl.remove(key);
      this.statuses.delete(key);
    }

    if (othersChanged) for (const key of this.services.keys()) dirty.add(key);
    const addresses = (snap.nodeAddresses ?? []).join(',');
    if (addresses !== this.nodeAddresses) {
      for (const [key, s] of this.services) if (s.spec.type !== 'ClusterIP') dirty.add(key);
      this.nodeAddresses = addresses;
    }
    if (snap.endpointSlices) {
      for (const key of this.services.keys()) {
        const list = snap.endpointSlices.get(key);
        if (this.slices.get(key) !== list || !this.slices.has(key)) dirty.add(key);
        this.slices.set(key, list);
      }
      for (const key of [...this.slices.keys()]) if (!this.services.has(key)) this.slices.delete(key);
    }
    const l7 = dirty.size ? l7Ports(snap) : undefined;
    for (const key of dirty) {
      const s = this.services.get(key);
      if (s) this.cache.set(key, frontendsOf(snap, s, this.wl.selected(s), l7!));
    }
    this.lastRecomputed = dirty.size;

    const out: DesiredFrontend[] = [];
    for (const s of snap.services) out.push(...this.cache.get(`${s.metadata.namespace}/${s.metadata.name}`)!);
    return out;
  }
}
