/**
 * What the daemon and the node proxy process say to each other over the
 * fork() IPC channel, and the primary to its workers: one place for the
 * shapes, so the three sides cannot drift.
 */
import { DEFAULT_LIMITS, type ProxyLimits, type ProxyRoutingConfig, type ProxyStats, type RequestDoneEvent } from '../../proxy/index.js';

/** A caller as the proxy names it; looked up by the kernel-recorded cgroup id, else by IP. */
export interface CallerEntry {
  identity: string;
  namespace: string;
  workload: string;
}

export interface ProxyPush {
  routing: ProxyRoutingConfig;
  /** [cgroup id (decimal string), caller] */
  byCgroup: Array<[string, CallerEntry]>;
  /** [ip, caller] */
  byIp: Array<[string, CallerEntry]>;
  /** Cross-node mTLS: the node SVID to present and where each remote pod subnet's tunnel endpoint is. */
  tunnel?: TunnelPush;
}

export interface TunnelPush {
  svidDir: string;
  trustDomain: string;
  /** [pod subnet CIDR, node name, tunnel endpoint host] */
  peers: Array<[string, string, string]>;
}

export type ToProxy =
  | { type: 'config'; push: ProxyPush }
  | { type: 'stats?'; id: number };

export interface ProxyProcessStats extends ProxyStats {
  workers: number;
  /** Worker processes started since the proxy began (restarts = this - workers). */
  workerStarts: number;
  configVersion: number;
  configErrors: number;
  /** Request events not sent to the daemon because a batch was full. */
  eventsDropped: number;
  /** Connections that arrived without a kernel record (closed). */
  unresolved: number;
  attributed: { cgroup: number; ip: number; unknown: number };
}

export type FromProxy =
  /** The process listens for messages now (earlier ones would be lost). */
  | { type: 'hello' }
  | { type: 'ready'; host: string; port: number; metricsPort: number; workers: number }
  | { type: 'requests'; events: RequestDoneEvent[] }
  | { type: 'stats'; id: number; stats: ProxyProcessStats }
  | { type: 'error'; message: string };

/** Worker -> primary. */
export type FromWorker =
  | { type: 'hello' }
  | { type: 'listening' }
  | { type: 'requests'; events: RequestDoneEvent[]; dropped: number }
  | { type: 'stats'; stats: ProxyStats & { configVersion: number; configErrors: number; unresolved: number; attributed: { cgroup: number; ip: number; unknown: number } } };

/** Primary -> worker. */
export type ToWorker = { type: 'config'; push: ProxyPush; workers: number };

export const PROXY_PORT = 15001;
export const PROXY_METRICS_PORT = 15020;

/**
 * Limits are per process, so with N workers each gets 1/N of every global
 * budget: concurrency, queues, total rate limits and breaker thresholds.
 * Per-client rate limits are divided too, which keeps them an upper bound
 * (one client's connections may land on different workers).
 */
export function divideForWorkers(routing: ProxyRoutingConfig, n: number): ProxyRoutingConfig {
  if (n <= 1) return routing;
  const div = (v: number) => Math.max(1, Math.floor(v / n));
  const limits: Partial<ProxyLimits> = { ...routing.limits };
  for (const k of ['maxConcurrentRequests', 'maxConcurrentPerNamespace', 'maxQueuedPerNamespace'] as const) {
    const base = limits[k] ?? DEFAULT_LIMITS[k];
    limits[k] = div(base);
  }
  const trafficPolicies = routing.trafficPolicies?.map((p) => {
    const s = structuredClone(p.spec);
    for (const b of [s.rateLimit?.total, s.rateLimit?.perClient]) {
      if (!b) continue;
      b.requests = div(b.requests);
      if (b.burst !== undefined) b.burst = div(b.burst);
    }
    if (s.circuitBreaker) {
      const cb = s.circuitBreaker as Record<string, number | undefined>;
      for (const k of Object.keys(cb)) if (typeof cb[k] === 'number') cb[k] = div(cb[k]!);
    }
    return { ...p, spec: s };
  });
  return { ...routing, limits, ...(trafficPolicies ? { trafficPolicies } : {}) };
}
