/**
 * Instrumentation points, as node:diagnostics_channel channels named
 * ebmesh:proxy:<event>. Metrics and logs subscribe; the data path only
 * publishes (and skips building the message when nobody listens).
 */
import diagnostics_channel from 'node:diagnostics_channel';

export const channels = {
  /** A request finished: RequestDoneEvent. */
  request: diagnostics_channel.channel('ebmesh:proxy:request'),
  /** An L7 authorization denial: { policy, rule, identity, namespace, method, path, service }. */
  denied: diagnostics_channel.channel('ebmesh:proxy:denied'),
  /** A request answered by the proxy itself with an error: { reason, status, service, route }. */
  rejected: diagnostics_channel.channel('ebmesh:proxy:rejected'),
  /** An endpoint ejected by outlier detection: { service, endpoint, forMs, ejections }. */
  ejected: diagnostics_channel.channel('ebmesh:proxy:ejected'),
  /** A TCP pass-through connection closed: { dst, upstream, bytesIn, bytesOut, durationMs }. */
  tcp: diagnostics_channel.channel('ebmesh:proxy:tcp'),
  /** A connection could not be handled (not steered, bad framing, sniff error): { reason, detail }. */
  connection: diagnostics_channel.channel('ebmesh:proxy:connection'),
  /** A configuration was applied: { version }. */
  config: diagnostics_channel.channel('ebmesh:proxy:config'),
} as const;

/** A connection-level event (see channels.connection). */
export function noteConnection(reason: string, detail: string): void {
  if (channels.connection.hasSubscribers) channels.connection.publish({ reason, detail });
}

export interface RequestDoneEvent {
  service: string | undefined;
  route: string | undefined;
  backend: string | undefined;
  endpoint: string | undefined;
  method: string;
  path: string;
  status: number;
  retries: number;
  durationMs: number;
  protocol: 'http1' | 'http2';
  client: { identity: string; namespace: string };
  reason: string | undefined;
  traceId: string;
}
