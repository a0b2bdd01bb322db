/**
 * The agent's Prometheus metrics, fed one Flow at a time. A connection whose
 * both ends are mesh sockets on this node is reported by both; metrics count
 * it once, from the client's report (the server's counts only when the
 * client is not a mesh workload here).
 */
import type { Flow } from './flow.js';
import { Counter, Gauge, Histogram, Registry } from './prom.js';

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

  constructor() {
    this.up.set({}, Math.floor(Date.now() / 1000));
  }

  private labels(f: Flow, extra: Record<string, string> = {}): Record<string, string> {
    const key = `${f.source.namespace}/${f.source.workload}|${f.destination.namespace}/${f.destination.workload}|${f.service}|${Object.values(extra).join('|')}`;
    let l = this.labelCache.get(key);
    if (!l) {
      if (this.labelCache.size > 100_000) this.labelCache.clear();
      l = { ...who(f), ...extra };
      this.labelCache.set(key, l);
    }
    return l;
  }

  record(f: Flow): void {
    this.events.inc({ type: f.type });
    if (!countable(f)) return;
    const l = this.labels(f);
    switch (f.type) {
      case 'http': {
        const status = f.http!.status;
        this.httpRequests.inc(this.labels(f, { method: f.http!.method, status_class: `${Math.floor(status / 100)}xx` }));
        this.httpDuration.observe(l, f.http!.latencyMs / 1000);
        break;
      }
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
