/**
 * The service map: who talks to whom, how much, how well, and what is
 * denied, over a recent window of flows. Pure: resources and flows in, a
 * graph out, so the API, the CLI and the tests compute it the same way.
 *
 * Nodes are every Service and Workload in the store (traffic or not) plus
 * one node per address outside the mesh that appears in a flow. A flow
 * through a Service adds two edges, client → service and service → the
 * backend the socket load balancer chose; a flow straight to a workload
 * adds one.
 *
 * What is counted: an HTTP exchange is a request; without HTTP on an edge,
 * each connection attempt (connect or drop) is. Accept and close events
 * describe connections already counted by their connect, so they are left
 * out. A failed connection on an edge with HTTP still counts, because it
 * never produced an HTTP exchange. Success = neither refused by the data
 * path nor answered 5xx. A connection denied by policy is neither a
 * request nor a failure: it is counted as denied, so a policy that works
 * does not paint its service red. Latency percentiles come from HTTP exchanges only
 * (a connection's lifetime is not a latency).
 */
import { matchesLabels, matchesSelector } from '../resources/selector.js';
import { flowFailed, type Flow } from './servicemap-flow.js';

export interface MapWorkload {
  namespace: string;
  name: string;
  labels?: Record<string, string>;
  serviceAccount?: string;
  ip?: string;
  /** Its IPv6 address, on a dual-stack mesh. */
  ipv6?: string;
  phase?: string;
  ready?: boolean;
}

export interface MapService {
  namespace: string;
  name: string;
  clusterIP?: string;
  /** Every VIP (a dual-stack Service has one per family), clusterIP first. */
  clusterIPs?: string[];
  selector?: Record<string, string>;
  ports: string[];
}

/** Any other resource: NetworkPolicy selects by spec.podSelector, routes attach by spec.parentRefs. */
export interface MapResource {
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: unknown;
}

export interface MapInput {
  /** ms since the epoch: the window ends here. */
  now: number;
  windowSeconds: number;
  workloads: MapWorkload[];
  services: MapService[];
  others: MapResource[];
  trustDomain?: string;
  /** undefined: the agent has no flow source (GET /v1/flows absent). */
  flows: Flow[] | undefined;
}

export interface Golden {
  /** Requests (or connections, without HTTP) in the window. */
  requests: number;
  /** per second over the window */
  rate: number;
  /** 0..1; null without traffic */
  successRate: number | null;
  denied: number;
  p50Ms: number | null;
  p99Ms: number | null;
}

export type NodeKind = 'service' | 'workload' | 'external';

export interface MapNode {
  id: string;
  kind: NodeKind;
  /** absent for addresses outside the mesh */
  namespace?: string;
  name: string;
  /** Inbound: what this node serves. */
  metrics: Golden;
  /** Outbound: what this node asks of others. */
  outbound: Golden;
  labels?: Record<string, string>;
  ip?: string;
  ports?: string[];
  phase?: string;
  ready?: boolean;
  /** service: its backends; workload: the services that select it (node ids). */
  workloads?: string[];
  services?: string[];
  /** workload: SPIFFE-style name of its service account, and identity numbers seen in flows. */
  identities?: { serviceAccount?: string; spiffe?: string; numeric: number[] };
  /** `namespace/name` of the NetworkPolicies whose podSelector selects it (a service: any of its backends). */
  policies?: string[];
  /** `Kind namespace/name` of the routes whose parentRefs name this service. */
  routes?: string[];
}

export type EdgeState = 'ok' | 'failing' | 'denied' | 'partly-denied' | 'idle';

export interface MapEdge {
  id: string;
  source: string;
  target: string;
  /** request: client to what it dialled; backend: service to the workload chosen. */
  kind: 'request' | 'backend';
  protocols: string[];
  metrics: Golden;
  state: EdgeState;
  lastSeen: string;
}

export interface ServiceMap {
  at: string;
  windowSeconds: number;
  flowsAvailable: boolean;
  /** Flows in the window that took part (after leaving out accept/close). */
  flowsCounted: number;
  nodes: MapNode[];
  edges: MapEdge[];
}

export const serviceId = (ns: string, name: string) => `svc:${ns}/${name}`;
export const workloadId = (ns: string, name: string) => `wl:${ns}/${name}`;
export const externalId = (ip: string) => `ext:${ip}`;
export const edgeId = (source: string, target: string) => `${source}>${target}`;

class Tally {
  http = 0;
  httpFailed = 0;
  connOk = 0;
  connFailed = 0;
  denied = 0;
  latencies: number[] = [];
  protocols = new Set<string>();
  last = '';

  add(f: Flow): void {
    this.protocols.add(f.protocol);
    if (f.time > this.last) this.last = f.time;
    // A policy denial is the mesh doing its job, not the destination failing: counted apart, out of the success rate.
    if (f.verdict === 'denied') {
      this.denied++;
      return;
    }
    if (f.type === 'http' || (f.type === undefined && f.http)) {
      this.http++;
      if (flowFailed(f)) this.httpFailed++;
      if (f.latencyMs !== undefined) this.latencies.push(f.latencyMs);
    } else if (flowFailed(f)) this.connFailed++;
    else this.connOk++;
  }

  counts(): Counts {
    const requests = (this.http > 0 ? this.http : this.connOk) + this.connFailed;
    const failed = (this.http > 0 ? this.httpFailed : 0) + this.connFailed;
    return { requests, failed, denied: this.denied, latencies: this.latencies };
  }
}

interface Counts { requests: number; failed: number; denied: number; latencies: number[] }

/** Golden metrics of one edge, or of a node as the sum of its edges (each edge decides what a request is on it). */
function golden(parts: Counts[], windowSeconds: number): Golden {
  let requests = 0, failed = 0, denied = 0;
  const lat: number[] = [];
  for (const p of parts) {
    requests += p.requests; failed += p.failed; denied += p.denied;
    for (const l of p.latencies) lat.push(l);
  }
  lat.sort((a, b) => a - b);
  return {
    requests,
    rate: round(requests / windowSeconds, 3),
    successRate: requests ? round((requests - failed) / requests, 4) : null,
    denied,
    p50Ms: percentile(lat, 0.5),
    p99Ms: percentile(lat, 0.99),
  };
}

const round = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d;

/** Nearest-rank percentile of sorted values; null when there are none. */
export function percentile(sorted: number[], q: number): number | null {
  if (!sorted.length) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return round(sorted[i]!, 3);
}

/** The edges one flow belongs to, or [] when it is not counted. */
export interface Resolver {
  edgesOf(f: Flow): Array<{ source: string; target: string; kind: MapEdge['kind'] }>;
  externals: Set<string>;
}

export function resolver(input: Pick<MapInput, 'workloads' | 'services'>): Resolver {
  const wlByIp = new Map<string, MapWorkload>();
  for (const w of input.workloads) for (const ip of [w.ip, w.ipv6]) if (ip) wlByIp.set(ip, w);
  const wlByRef = new Set(input.workloads.map((w) => workloadId(w.namespace, w.name)));
  const svcByIp = new Map<string, MapService>();
  for (const s of input.services) for (const ip of s.clusterIPs ?? (s.clusterIP ? [s.clusterIP] : [])) svcByIp.set(ip, s);
  const svcRefs = new Set(input.services.map((s) => serviceId(s.namespace, s.name)));
  const externals = new Set<string>();

  const place = (e: Flow['source']): string | undefined => {
    if (e.workload) {
      // a name the store does not know (deleted since) falls back to the address
      if (e.namespace && wlByRef.has(workloadId(e.namespace, e.workload))) return workloadId(e.namespace, e.workload);
      const byName = e.namespace ? [] : input.workloads.filter((w) => w.name === e.workload);
      if (byName.length === 1) return workloadId(byName[0]!.namespace, byName[0]!.name);
    }
    if (e.ip) {
      const w = wlByIp.get(e.ip);
      if (w) return workloadId(w.namespace, w.name);
      const s = svcByIp.get(e.ip);
      if (s) return serviceId(s.namespace, s.name);
      externals.add(e.ip);
      return externalId(e.ip);
    }
    return undefined;
  };

  return {
    externals,
    edgesOf(f) {
      if (f.type === 'accept' || f.type === 'close') return [];
      const src = place(f.source);
      const dst = place(f.destination);
      if (!src || !dst) return [];
      let svc: string | undefined;
      if (f.service) {
        svc = serviceId(f.service.namespace, f.service.name);
        const byIp = f.service.ip ? svcByIp.get(f.service.ip) : undefined;
        if (!svcRefs.has(svc) && byIp) svc = serviceId(byIp.namespace, byIp.name);
      } else if (dst.startsWith('svc:')) {
        // dialled a VIP and no backend was chosen (none ready, or refused before the choice)
        svc = dst;
      }
      if (!svc) return [{ source: src, target: dst, kind: 'request' }];
      const out: ReturnType<Resolver['edgesOf']> = [{ source: src, target: svc, kind: 'request' }];
      if (dst !== svc && (wlByRef.has(dst) || dst.startsWith('ext:'))) out.push({ source: svc, target: dst, kind: 'backend' });
      return out;
    },
  };
}

function inWindow(f: Flow, from: number, to: number): boolean {
  const t = Date.parse(f.time);
  return Number.isFinite(t) && t >= from && t <= to;
}

function policyRefs(others: MapResource[], ns: string, labels: Record<string, string> | undefined): string[] {
  return others
    .filter((r) => r.kind === 'NetworkPolicy' && (r.metadata.namespace ?? 'default') === ns)
    .filter((r) => matchesSelector((r.spec as { podSelector?: Parameters<typeof matchesSelector>[0] } | undefined)?.podSelector ?? {}, labels))
    .map((r) => `${r.metadata.namespace ?? 'default'}/${r.metadata.name}`)
    .sort();
}

function routeRefs(others: MapResource[], svc: MapService): string[] {
  return others
    .filter((r) => {
      const refs = (r.spec as { parentRefs?: Array<{ kind?: string; name?: string; namespace?: string }> } | undefined)?.parentRefs;
      const rns = r.metadata.namespace ?? 'default';
      return Array.isArray(refs) && refs.some((p) => p.kind === 'Service' && p.name === svc.name && (p.namespace ?? rns) === svc.namespace);
    })
    .map((r) => `${r.kind} ${r.metadata.namespace ?? 'default'}/${r.metadata.name}`)
    .sort();
}

export function buildServiceMap(input: MapInput): ServiceMap {
  const from = input.now - input.windowSeconds * 1000;
  const res = resolver(input);
  const edgeTally = new Map<string, { e: Omit<MapEdge, 'metrics' | 'state' | 'lastSeen' | 'protocols'>; t: Tally }>();
  let counted = 0;
  for (const f of input.flows ?? []) {
    if (!inWindow(f, from, input.now)) continue;
    const edges = res.edgesOf(f);
    if (edges.length) counted++;
    for (const e of edges) {
      const id = edgeId(e.source, e.target);
      let slot = edgeTally.get(id);
      if (!slot) edgeTally.set(id, (slot = { e: { id, ...e }, t: new Tally() }));
      slot.t.add(f);
    }
  }

  const inbound = new Map<string, Counts[]>();
  const outbound = new Map<string, Counts[]>();
  const into = (m: Map<string, Counts[]>, k: string, c: Counts) => {
    if (!m.has(k)) m.set(k, []);
    m.get(k)!.push(c);
  };
  for (const { e, t } of edgeTally.values()) {
    const c = t.counts();
    into(inbound, e.target, c);
    // A service forwards what it receives: its backend edges are not its own asks.
    if (e.kind === 'request') into(outbound, e.source, c);
  }
  const g = (m: Map<string, Counts[]>, id: string) => golden(m.get(id) ?? [], input.windowSeconds);

  const svcOf = new Map<string, string[]>();
  const nodes: MapNode[] = [];
  for (const s of input.services) {
    const id = serviceId(s.namespace, s.name);
    const backends = input.workloads.filter((w) => w.namespace === s.namespace && matchesLabels(s.selector, w.labels));
    for (const w of backends) {
      const wid = workloadId(w.namespace, w.name);
      svcOf.set(wid, [...(svcOf.get(wid) ?? []), id]);
    }
    nodes.push({
      id, kind: 'service', namespace: s.namespace, name: s.name, metrics: g(inbound, id), outbound: g(outbound, id),
      ip: s.clusterIP, ports: s.ports,
      workloads: backends.map((w) => workloadId(w.namespace, w.name)).sort(),
      policies: [...new Set(backends.flatMap((w) => policyRefs(input.others, w.namespace, w.labels)))].sort(),
      routes: routeRefs(input.others, s),
    });
  }
  const numericIds = new Map<string, Set<number>>();
  for (const f of input.flows ?? []) {
    for (const e of [f.source, f.destination]) {
      if (e.identity === undefined || !e.namespace || !e.workload) continue;
      const id = workloadId(e.namespace, e.workload);
      if (!numericIds.has(id)) numericIds.set(id, new Set());
      numericIds.get(id)!.add(e.identity);
    }
  }
  for (const w of input.workloads) {
    const id = workloadId(w.namespace, w.name);
    const sa = w.serviceAccount ?? 'default';
    nodes.push({
      id, kind: 'workload', namespace: w.namespace, name: w.name, metrics: g(inbound, id), outbound: g(outbound, id),
      labels: w.labels, ip: w.ip, phase: w.phase, ready: w.ready,
      services: (svcOf.get(id) ?? []).sort(),
      identities: {
        serviceAccount: sa,
        spiffe: input.trustDomain ? `spiffe://${input.trustDomain}/ns/${w.namespace}/sa/${sa}` : undefined,
        numeric: [...(numericIds.get(id) ?? [])].sort((a, b) => a - b),
      },
      policies: policyRefs(input.others, w.namespace, w.labels),
    });
  }
  for (const ip of [...res.externals].sort()) {
    const id = externalId(ip);
    nodes.push({ id, kind: 'external', name: ip, ip, metrics: g(inbound, id), outbound: g(outbound, id) });
  }

  const edges: MapEdge[] = [...edgeTally.values()]
    .map(({ e, t }) => {
      const metrics = golden([t.counts()], input.windowSeconds);
      return { ...e, protocols: [...t.protocols].sort(), metrics, state: edgeState(metrics), lastSeen: t.last };
    })
    .sort((a, b) => a.id.localeCompare(b.id));

  return {
    at: new Date(input.now).toISOString(),
    windowSeconds: input.windowSeconds,
    flowsAvailable: input.flows !== undefined,
    flowsCounted: counted,
    nodes,
    edges,
  };
}

export function edgeState(m: Golden): EdgeState {
  if (m.denied > 0) return m.requests === 0 ? 'denied' : 'partly-denied';
  if (m.requests === 0) return 'idle';
  return (m.successRate ?? 1) < 0.95 ? 'failing' : 'ok';
}

/** The flows of one edge in the window, newest first. */
export function edgeFlows(input: Pick<MapInput, 'workloads' | 'services' | 'flows' | 'now' | 'windowSeconds'>, id: string, limit: number): Flow[] {
  const from = input.now - input.windowSeconds * 1000;
  const res = resolver(input);
  const out: Flow[] = [];
  for (const f of input.flows ?? []) {
    if (!inWindow(f, from, input.now)) continue;
    if (res.edgesOf(f).some((e) => edgeId(e.source, e.target) === id)) out.push(f);
  }
  out.sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : 0));
  return out.slice(0, limit);
}
