/**
 * The public shapes of the node proxy: what the agent hands in (ProxyConfig)
 * and what the socket-steering layer provides (ResolveOriginal).
 */
import type { Socket } from 'node:net';
import type { Dial } from './dial.js';
import type { HTTPRouteResource, GRPCRouteResource } from '../resources/gateway.js';
import type { TrafficPolicyResource, AuthorizationPolicyResource } from '../resources/traffic.js';

export interface Endpoint {
  ip: string;
  port: number;
  /** "ip:port", set where a service's endpoints are compiled (config.ts): the pools and outlier history key on it per request. */
  readonly key?: string;
}

/** Who is calling and where it meant to go, as the kernel recorded it at connect(). */
export interface OriginalDestination {
  dst: Endpoint;
  /** Cross-node mTLS: dst is a backend on another node, to be reached through the tunnel (TCP passthrough). */
  tunnel?: boolean;
  client: {
    /** spiffe-ish id (spiffe://td/ns/x/sa/y) or a workload name. */
    identity: string;
    namespace: string;
    /** The caller's address (the accepted socket's peer); carried to the receiving node of a tunnel. */
    ip?: string;
  };
}

/**
 * Called once per accepted connection, when its first bytes arrive (by then
 * the kernel has recorded the entry). undefined means "not steered by the
 * mesh": the connection is closed.
 */
export type ResolveOriginal = (socket: Socket) => OriginalDestination | undefined;

/**
 * How the proxy speaks to a service's endpoints. "auto" keeps the client's
 * protocol (h2 in, h2 out). "tcp" skips sniffing: bytes are passed through.
 */
export type ServiceProtocol = 'auto' | 'http1' | 'http2' | 'tcp';

/** One service port: a VIP:port the clients dial, and the endpoints behind it. */
export interface ServiceEntry {
  name: string;
  namespace: string;
  vip: string;
  /** The VIPs of its other families (a dual-stack Service): the same service at those addresses. */
  vips?: string[];
  port: number;
  protocol?: ServiceProtocol;
  endpoints: Endpoint[];
}

export interface ProxyLimits {
  /** Requests the whole proxy forwards at once; beyond it requests queue per tenant. */
  maxConcurrentRequests: number;
  /** Requests one client namespace may have in flight at once. */
  maxConcurrentPerNamespace: number;
  /** Requests one namespace may have waiting; beyond it they are shed (503). */
  maxQueuedPerNamespace: number;
  /** How long a request may wait for a slot before it is shed (503). */
  queueTimeoutMs: number;
  /** Largest request body kept in memory so it can be retried or mirrored. */
  maxBufferedBodyBytes: number;
  connectTimeoutMs: number;
  /** How long to wait for a client's first bytes before treating it as server-first TCP. */
  sniffTimeoutMs: number;
}

/** Everything NodeProxy.update() can change without dropping connections. */
export interface ProxyRoutingConfig {
  services: ServiceEntry[];
  httpRoutes?: HTTPRouteResource[];
  grpcRoutes?: GRPCRouteResource[];
  trafficPolicies?: TrafficPolicyResource[];
  authorizationPolicies?: AuthorizationPolicyResource[];
  limits?: Partial<ProxyLimits>;
}

export interface TracingConfig {
  /** OTLP/HTTP JSON traces URL, e.g. http://127.0.0.1:4318/v1/traces */
  otlpEndpoint: string;
  serviceName?: string;
  flushIntervalMs?: number;
  maxBatch?: number;
}

export interface ProxyConfig extends ProxyRoutingConfig {
  /** `hosts`: more addresses to listen on, the same port (the node's address of the other family). */
  listen: { host: string; port: number; hosts?: string[] };
  resolveOriginal: ResolveOriginal;
  tracing?: TracingConfig;
  /**
   * Takes a connection the kernel marked for the tunnel (with the bytes
   * already read); without it, such connections go out as plain TCP. The
   * promise settles when the connection has ended (the proxy counts it as
   * open until then: a drain waits for it).
   */
  forward?: (socket: Socket, head: Buffer, orig: OriginalDestination) => Promise<void>;
  /** Opens every upstream connection (default plain TCP); the agent's carries those to other nodes through the tunnel. */
  dial?: Dial;
}

export interface ProxyStats {
  /** Error responses by reason (denied, rate_limited, …). */
  responses: Record<string, number>;
  requests: number;
  connections: number;
  tcpPassthrough: number;
}

export interface NodeProxy {
  readonly address: { host: string; port: number };
  update(config: ProxyRoutingConfig): void;
  stats(): ProxyStats;
  /**
   * Hand over to a newer proxy: stop accepting, answer the HTTP/1 requests in
   * flight with `connection: close` and close idle keep-alive connections,
   * GOAWAY every HTTP/2 session; TCP pass-through and WebSocket connections
   * stay. Resolves when the last connection closed.
   */
  drain(): Promise<void>;
  /** Client connections open now. */
  readonly open: number;
  close(): Promise<void>;
}
