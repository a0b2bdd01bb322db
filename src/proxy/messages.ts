/**
 * What the agent and the node proxy process say to each other over the
 * proxy's control socket (one JSON message per line), and the primary to its
 * workers over node:cluster IPC: one place for the shapes, so the three
 * sides cannot drift.
 */
import type { ProxyRequestCounter } from './requests.js';
import type { TunnelFlow } from '../tunnel/index.js';
import type { IngressTables } from '../policy/tunnel-ingress.js';
import type { TunnelledFlow } from './tunnel-forward.js';
import { DEFAULT_LIMITS } from './limits.js';
import type { ProxyLimits, ProxyRoutingConfig, ProxyStats } from './types.js';
import type { RequestDoneEvent } from './events.js';

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
  /** Cross-node mTLS: present once the node has its SVID; the proxy then runs the node's tunnel endpoint too. */
  tunnel?: TunnelPush;
  /** The drain deadline (MeshConfig spec.proxy.drainTimeoutMs): workers left without their primary drain by it once replaced. */
  drainMs?: number;
}

export interface TunnelSentStats {
  streams: number;
  failed: number;
  noPeer: number;
  upstreams: number;
}

export interface TunnelPush {
  svidDir: string;
  trustDomain: string;
  /** [pod subnet CIDR, node name, tunnel endpoint host] */
  peers: Array<[string, string, string]>;
  /** [node name, pod subnet CIDR] of every node this agent knows: a peer may vouch only for callers in its own subnet. */
  nodes: Array<[string, string]>;
  /** This node's workload IPs: the only destinations the endpoint delivers to. */
  localIps: string[];
  /** Other nodes' workload IPs reached through the tunnel (the kernel's ebm_xnode_dsts): where the proxy's own upstream connections go through it too. */
  dsts: string[];
  /** The mesh's pod CIDR: plain connections to other nodes' workloads leave from the node's pod gateway, which they can answer. */
  podCidr: string;
  /** NetworkPolicy for this node's workloads' ingress, judged by the endpoint for each stream's caller (absent: nothing to judge yet). */
  policy?: IngressTables;
}

/**
 * Bumped whenever a message changes shape: an agent meeting a proxy of
 * another version hands over from it (a new generation of its own takes the
 * new connections) rather than talk past it. 3: the tunnel's vouching
 * tables; 4: drain (handover); 5: the tunnel endpoint in the workers.
 */
export const PROXY_PROTOCOL = 5;
/** The first protocol whose proxies understand `drain`: older ones are stopped after the drain deadline instead. */
export const DRAIN_PROTOCOL = 4;

/**
 * Node flags every proxy process starts with, before EBMESH_PROXY_NODE_FLAGS
 * (later flags win, so those can undo these).
 *
 * --no-parallel-scavenge: V8 clears the young generation with helper threads
 * by default, and the main thread waits for all of them. The proxy shares
 * the node's cores with the workloads it serves, so a helper is often not
 * running, and every request on that worker waits with it. Its young
 * generation is small (16 MiB), so scavenging it on the main thread costs
 * little. Measured on 2 cores under saturation: 25–29k against 20–23k
 * req/s, with a lower p99 (docs/node-proxy-in-the-mesh.md).
 */
export const PROXY_DEFAULT_NODE_FLAGS = '--no-parallel-scavenge';

/** How a proxy was started; an agent adopts a running proxy only if it would start the same one. */
export interface ProxyLaunch {
  host: string;
  /** The node's IPv6 address on the pod bridge, listened on too (a dual-stack mesh). */
  host6?: string;
  port: number;
  mapPins: string;
  /** 0: one per core (os.availableParallelism(), in main.ts). */
  workers: number;
  /** Extra node flags for the proxy processes (EBMESH_PROXY_NODE_FLAGS, e.g. --cpu-prof), space-separated; '' for none. */
  nodeFlags?: string;
  /**
   * The cgroup the proxy runs in, as /proc/PID/cgroup names it (a path under
   * the cgroup v2 root). The agent starts it there; the proxy reports where
   * it really is. Undefined in the agent's launch: wherever it was started.
   */
  cgroup?: string;
}

export type ToProxy =
  | { type: 'hello'; protocol: number }
  | { type: 'config'; push: ProxyPush }
  | { type: 'stats?'; id: number }
  /** Teardown: the proxy exits (the agent also waits for its PID). */
  | { type: 'shutdown' }
  /**
   * A newer generation took over: keep accepting for graceMs (connects the
   * kernel already sent here), then stop accepting and let every connection
   * end; exit when the last one did or at deadlineMs (from now), cutting the
   * rest. Sent again (a new agent), it changes nothing.
   */
  | { type: 'drain'; graceMs: number; deadlineMs: number };

export interface ProxyProcessStats extends ProxyStats {
  workers: number;
  /** Worker processes started since the proxy began (restarts = this - workers). */
  workerStarts: number;
  configVersion: number;
  configErrors: number;
  /** Request events counted but not sent individually to the daemon (beyond the sample). */
  eventsDropped: number;
  /** Connections that arrived without a kernel record (closed). */
  unresolved: number;
  attributed: { cgroup: number; ip: number; unknown: number };
  /** The node's tunnel endpoint (listening, SPIFFE ID, certificate expiry, sessions, streams), when it runs. */
  tunnel?: Record<string, unknown>;
  /** Handing over: client connections still open in the workers. */
  draining?: { since: string; open: number };
  /** Streams the workers opened into the tunnel: opened, refused by the peer, no peer for the destination; upstreams: those the proxy opened to an L7-routed backend. */
  tunnelSent?: TunnelSentStats;
}

export type FromProxy =
  /** First line on every control connection: who answers, and whether its workers listen. */
  | { type: 'hello'; protocol: number; pid: number; launch: ProxyLaunch; ready: boolean; configured: boolean; since: string; build?: string; draining?: boolean }
  /** Last words of a drained proxy: how long the drain took, and how many connections the deadline cut. */
  | { type: 'drained'; ms: number; cut: number }
  | { type: 'ready'; host: string; port: number; workers: number }
  /** Exact counts for every request since the last message, and a sample of the requests. */
  | { type: 'requests'; counts: ProxyRequestCounter[]; events: RequestDoneEvent[] }
  | { type: 'stats'; id: number; stats: ProxyProcessStats }
  /** Cross-node mTLS streams that ended: received by this node's endpoint, or sent by a worker into the tunnel. */
  | { type: 'tunnel'; received: TunnelFlow[]; sent: TunnelledFlow[] };

/** Worker -> primary. */
export type FromWorker =
  | { type: 'hello' }
  | { type: 'listening' }
  | { type: 'requests'; counts: ProxyRequestCounter[]; events: RequestDoneEvent[]; dropped: number }
  /** Cross-node mTLS streams that ended in this worker: received by its endpoint, sent into the tunnel. */
  | { type: 'tunnel'; received: TunnelFlow[]; sent: TunnelledFlow[] }
  | {
    type: 'stats';
    stats: ProxyStats & {
      open: number; configVersion: number; configErrors: number; unresolved: number; attributed: { cgroup: number; ip: number; unknown: number }; tunnelSent: TunnelSentStats;
      /** The worker's tunnel endpoint, when it runs; tunnelBusy: its sessions and streams still open. */
      tunnel?: Record<string, unknown>; tunnelBusy: number;
    };
  };

/**
 * Primary -> worker. `drain`: a newer generation took over; let the tunnel
 * port go now, stop accepting after graceMs, exit once nothing is carried or
 * at deadlineMs.
 */
export type ToWorker = { type: 'config'; push: ProxyPush; workers: number } | { type: 'drain'; graceMs: number; deadlineMs: number };

export const PROXY_PORT = 15001;

/**
 * Two proxy generations may run at once during a handover, each on its own
 * listener: slot 0 on the base port, slot 1 on the next one. The kernel's
 * ebm_l7_proxy says which one is current; each handover takes the other slot.
 */
export type ProxySlot = 0 | 1;
export const slotPort = (basePort: number, slot: ProxySlot): number => basePort + slot;
export function slotOfPort(basePort: number, port: number | undefined): ProxySlot | undefined {
  return port === basePort ? 0 : port === basePort + 1 ? 1 : undefined;
}
/** How long a replaced proxy keeps its long-lived connections (MeshConfig spec.proxy.drainTimeoutMs). */
export const DEFAULT_DRAIN_MS = 30_000;
/** How long a replaced proxy still accepts: connects the kernel sent it just before the switch sit in its accept queue. */
export const DRAIN_ACCEPT_GRACE_MS = 1000;

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
