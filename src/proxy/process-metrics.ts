/** Prometheus text for the node proxy's process-wide counters. */
import type { ProxyProcessStats } from './messages.js';

export function renderProxyMetrics(s: ProxyProcessStats): string {
  const lines = [
    '# HELP ebmesh_proxy_requests_total Requests the node proxy handled.',
    '# TYPE ebmesh_proxy_requests_total counter',
    `ebmesh_proxy_requests_total ${s.requests}`,
    '# HELP ebmesh_proxy_connections_total Connections the kernel steered to the node proxy.',
    '# TYPE ebmesh_proxy_connections_total counter',
    `ebmesh_proxy_connections_total ${s.connections}`,
    '# HELP ebmesh_proxy_tcp_passthrough_total Steered connections passed through as TCP.',
    '# TYPE ebmesh_proxy_tcp_passthrough_total counter',
    `ebmesh_proxy_tcp_passthrough_total ${s.tcpPassthrough}`,
    '# HELP ebmesh_proxy_responses_total Answers the proxy made itself, by reason.',
    '# TYPE ebmesh_proxy_responses_total counter',
    ...Object.entries(s.responses).map(([r, v]) => `ebmesh_proxy_responses_total{reason="${r}"} ${v}`),
    '# HELP ebmesh_proxy_workers Worker processes running.',
    '# TYPE ebmesh_proxy_workers gauge',
    `ebmesh_proxy_workers ${s.workers}`,
    '# HELP ebmesh_proxy_worker_starts_total Worker processes started (restarts included).',
    '# TYPE ebmesh_proxy_worker_starts_total counter',
    `ebmesh_proxy_worker_starts_total ${s.workerStarts}`,
    '# HELP ebmesh_proxy_unresolved_connections_total Connections without a kernel record (closed).',
    '# TYPE ebmesh_proxy_unresolved_connections_total counter',
    `ebmesh_proxy_unresolved_connections_total ${s.unresolved}`,
    '# HELP ebmesh_proxy_callers_total Steered connections by how the caller was named.',
    '# TYPE ebmesh_proxy_callers_total counter',
    ...Object.entries(s.attributed).map(([by, v]) => `ebmesh_proxy_callers_total{by="${by}"} ${v}`),
    '# HELP ebmesh_proxy_events_dropped_total Request events counted but not sent individually to the agent (beyond the sample).',
    '# TYPE ebmesh_proxy_events_dropped_total counter',
    `ebmesh_proxy_events_dropped_total ${s.eventsDropped}`,
  ];
  return lines.join('\n') + '\n';
}
