/** Prometheus text for the node proxy's process-wide counters. */
import { Counter, Gauge, Registry } from '../net/prom.js';
import type { ProxyProcessStats } from './messages.js';

export function renderProxyMetrics(s: ProxyProcessStats): string {
  const r = new Registry();
  r.register(new Counter('ebmesh_proxy_requests_total', 'Requests the node proxy handled.')).set({}, s.requests);
  r.register(new Counter('ebmesh_proxy_connections_total', 'Connections the kernel steered to the node proxy.')).set({}, s.connections);
  r.register(new Counter('ebmesh_proxy_tcp_passthrough_total', 'Steered connections passed through as TCP.')).set({}, s.tcpPassthrough);
  const responses = r.register(new Counter('ebmesh_proxy_responses_total', 'Answers the proxy made itself, by reason.'));
  for (const [reason, v] of Object.entries(s.responses)) responses.set({ reason }, v);
  r.register(new Gauge('ebmesh_proxy_workers', 'Worker processes running.')).set({}, s.workers);
  r.register(new Counter('ebmesh_proxy_worker_starts_total', 'Worker processes started (restarts included).')).set({}, s.workerStarts);
  r.register(new Counter('ebmesh_proxy_unresolved_connections_total', 'Connections without a kernel record (closed).')).set({}, s.unresolved);
  const callers = r.register(new Counter('ebmesh_proxy_callers_total', 'Steered connections by how the caller was named.'));
  for (const [by, v] of Object.entries(s.attributed)) callers.set({ by }, v);
  r.register(new Counter('ebmesh_proxy_events_dropped_total', 'Request events counted but not sent individually to the agent (beyond the sample).')).set({}, s.eventsDropped);
  return r.expose();
}
