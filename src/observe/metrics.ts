/**
 * The agent's Prometheus metrics, fed one Flow at a time, except HTTP
 * exchanges (nearly every event under load): those are counted through the
 * series of their connection, resolved once (httpSeries, recordHttp).
 *
 * A connection whose both ends are mesh sockets on this node is reported by
 * both; metrics count it once, from the client's report (the server's counts
 * only when the client is not a mesh workload here).
 */
import type { Flow, FlowType } from './flow.js';
import { Counter, Gauge, Histogram, Registry, type HistogramSeries, type Labels } from '../net/prom.js';
import { formatHostPort } from '../resources/ip.js';

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

function who(f: Flow): Record<string, string> {
  return {
    source_namespace: f.source.namespace ?? '',
    source_workload: f.source.workload ?? '',
    destination_namespace: f.destination.namespace ?? '',
    destination_workload: f.destination.workload ?? '',
    destination_service: f.service ?? '',
  };
}

function seriesKey(l: Labels): string {
  return `${l.source_namespace}/${l.source_workload}>${l.destination_namespace}/${l.destination_workload}@${l.destination_service}`;
}

/** The name `top` files an exchange under: its Service, else its destination. */
export function goldenService(f: Flow): string {
  return f.service ?? (f.destination.workload ? `${f.destination.namespace}/${f.destination.workload}` : formatHostPort(f.destination.ip, f.destination.port));
}

/**
 * The series one client-server pair's HTTP exchanges land in, resolved once
 * (from a decoded Flow) so that each further exchange of the pair is a few
 * additions: the agent keeps one per connection.
 */
export interface HttpSeries {
  readonly service: string;
  readonly labels: Labels;
  readonly duration: HistogramSeries;
  /** Request counters by method name, then by status class (status / 100). */
  readonly requests: Map<string, Array<{ v: number } | undefined>>;
}

/** The one report of a connection or exchange that metrics count. */
export function countable(f: Flow): boolean {
  if (f.type === 'drop') return true;
  if (f.type === 'http') return true; // the kernel already reports each exchange once
  return f.observer === 'client' || !f.source.workload;
}

export interface Health {
  programs: number;
  maps: Array<{ map: string; entries: number; max: number }>;
  kernelCounters: Record<string, number>;
  userLost: number;
  subscribersDropped: number;
}

export class ObserveMetrics {
  readonly registry = new Registry();
  private readonly r = this.registry;
  readonly httpRequests = this.r.register(new Counter('ebmesh_http_requests_total', 'HTTP/1.x requests seen in the kernel, by status class.'));
  readonly httpDuration = this.r.register(new Histogram('ebmesh_http_request_duration_seconds', 'HTTP/1.x request latency, from the request seen to the response seen.', LATENCY_BUCKETS));
  readonly tcpOpened = this.r.register(new Counter('ebmesh_tcp_connections_opened_total', 'TCP connections established.'));
  readonly tcpClosed = this.r.register(new Counter('ebmesh_tcp_connections_closed_total', 'TCP connections closed, by how they ended.'));
  readonly tcpBytes = this.r.register(new Counter('ebmesh_tcp_bytes_total', 'TCP payload bytes of closed connections, by direction (to the destination or back to the source).'));
  readonly tcpRetrans = this.r.register(new Counter('ebmesh_tcp_retransmits_total', 'TCP segments retransmitted, from closed connections.'));
  readonly drops = this.r.register(new Counter('ebmesh_drops_total', 'Connections or packets refused by the data path, by reason.'));
  readonly events = this.r.register(new Counter('ebmesh_flow_events_total', 'Flow events the agent read from the kernel, by type.'));
  readonly lost = this.r.register(new Counter('ebmesh_flow_events_lost_total', 'Flow events lost: the ring buffer was full (where="kernel") or a reader was too slow (where="subscriber").'));
  readonly kernelCounters = this.r.register(new Counter('ebmesh_datapath_total', 'Data path counters kept by the kernel programs.'));
  readonly programs = this.r.register(new Gauge('ebmesh_agent_bpf_programs', 'BPF programs the agent has loaded.'));
  readonly mapEntries = this.r.register(new Gauge('ebmesh_agent_bpf_map_entries', 'Entries in each BPF map the agent manages.'));
  readonly mapMax = this.r.register(new Gauge('ebmesh_agent_bpf_map_max_entries', 'Capacity of each BPF map the agent manages.'));
  readonly rss = this.r.register(new Gauge('ebmesh_agent_resident_memory_bytes', "The agent's resident memory."));
  readonly cpu = this.r.register(new Counter('ebmesh_agent_cpu_seconds_total', 'CPU time the agent used.'));
  readonly up = this.r.register(new Gauge('ebmesh_agent_start_time_seconds', 'When the agent started, in seconds since the epoch.'));

  /** Label objects by series, reused so the writer's text cache hits. Bounded. */
  private readonly labelCache = new Map<string, Record<string, string>>();
  private readonly eventsByType = new Map<FlowType, { v: number }>();

  constructor() {
    this.up.set({}, Math.floor(Date.now() / 1000));
  }

  private labels(f: Flow, extra?: Record<string, string>): Labels {
    const base = who(f);
    const l = this.cached(seriesKey(base), () => base);
    return extra ? this.labelsOf(l, extra) : l;
  }

  /** The labels `base` (a pair's, from labels()) plus `extra`, shared like labels() shares them. */
  private labelsOf(base: Labels, extra: Record<string, string>): Labels {
    return this.cached(`${seriesKey(base)}|${Object.values(extra).join('|')}`, () => ({ ...base, ...extra }));
  }

  private cached(key: string, make: () => Labels): Labels {
    let l = this.labelCache.get(key);
    if (!l) {
      if (this.labelCache.size > 100_000) this.labelCache.clear();
      l = make();
      this.labelCache.set(key, l);
    }
    return l;
  }

  /** Counts one event read from the kernel (every event, countable or not). */
  countEvent(type: FlowType): void {
    let h = this.eventsByType.get(type);
    if (!h) {
      h = this.events.handle({ type });
      this.eventsByType.set(type, h);
    }
    h.v++;
  }

  /** The series of `f`'s client-server pair (f: an HTTP flow). */
  httpSeries(f: Flow): HttpSeries {
    const labels = this.labels(f);
    return { service: goldenService(f), labels, duration: this.httpDuration.handle(labels), requests: new Map() };
  }

  /** One HTTP exchange: what record() does for an HTTP flow, from its series and raw fields. */
  recordHttp(s: HttpSeries, method: string, status: number, latencyMs: number): void {
    this.countEvent('http');
    const cls = Math.floor(status / 100);
    let byClass = s.requests.get(method);
    if (!byClass) {
      byClass = [];
      s.requests.set(method, byClass);
    }
    let h = byClass[cls];
    if (!h) {
      h = this.httpRequests.handle(this.labelsOf(s.labels, { method, status_class: `${cls}xx` }));
      byClass[cls] = h;
    }
    h.v++;
    this.httpDuration.observeInto(s.duration, latencyMs / 1000);
  }

  record(f: Flow): void {
    if (f.type === 'http') {
      this.recordHttp(this.httpSeries(f), f.http!.method, f.http!.status, f.http!.latencyMs);
      return;
    }
    this.countEvent(f.type);
    if (!countable(f)) return;
    const l = this.labels(f);
    switch (f.type) {
      case 'connect':
      case 'accept':
        this.tcpOpened.inc(l);
        break;
      case 'close':
        this.tcpClosed.inc(this.labels(f, { result: f.verdict === 'FORWARDED' ? 'ok' : f.reason ?? 'error' }));
        this.tcpBytes.inc(this.labels(f, { direction: 'to_destination' }), f.bytes!.toDestination);
        this.tcpBytes.inc(this.labels(f, { direction: 'to_source' }), f.bytes!.toSource);
        if (f.retransmits) this.tcpRetrans.inc(l, f.retransmits);
        break;
      case 'drop':
        this.drops.inc(this.labels(f, { reason: f.reason ?? 'unknown' }));
        break;
    }
  }

  /** Refreshes what is read at scrape time rather than counted per event. */
  refresh(h: Health): void {
    this.programs.set({}, h.programs);
    this.mapEntries.reset();
    this.mapMax.reset();
    for (const m of h.maps) {
      this.mapEntries.set({ map: m.map }, m.entries);
      this.mapMax.set({ map: m.map }, m.max);
    }
    for (const [k, v] of Object.entries(h.kernelCounters)) {
      if (k === 'events_lost' || k === 'events_sent') continue;
      this.kernelCounters.set({ counter: k }, v);
    }
    this.lost.set({ where: 'kernel' }, h.kernelCounters.events_lost ?? 0);
    this.lost.set({ where: 'agent' }, h.userLost);
    this.lost.set({ where: 'subscriber' }, h.subscribersDropped);
    this.rss.set({}, process.memoryUsage.rss());
    const u = process.cpuUsage();
    this.cpu.set({}, (u.user + u.system) / 1e6);
  }
}
