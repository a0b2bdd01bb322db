/**
 * The one place where a cause on the data path becomes an answer. Every
 * error response the proxy itself makes goes through `reject()`, which picks
 * the status, counts it and publishes it. gRPC clients get a trailers-only
 * answer with the matching grpc-status, because they read that, not the
 * HTTP status.
 */
import { channels } from './events.js';

export type RejectReason =
  | 'bad_request'
  | 'denied'
  | 'no_route'
  | 'backend_invalid'
  | 'rate_limited'
  | 'no_endpoint'
  | 'overload'
  | 'circuit_open'
  | 'upstream_connect'
  | 'upstream_reset'
  | 'timeout'
  | 'fault_abort'
  | 'body_too_large';

const STATUS: Record<RejectReason, number> = {
  bad_request: 400,
  denied: 403,
  no_route: 404,
  body_too_large: 413,
  rate_limited: 429,
  backend_invalid: 500,
  upstream_connect: 503,
  upstream_reset: 502,
  no_endpoint: 503,
  overload: 503,
  circuit_open: 503,
  timeout: 504,
  fault_abort: 0, // the policy says which status
};

// https://github.com/grpc/grpc/blob/master/doc/http-grpc-status-mapping.md semantics
const GRPC_STATUS: Record<number, number> = { 400: 13, 403: 7, 404: 12, 413: 8, 429: 14, 500: 13, 502: 14, 503: 14, 504: 4 };

export interface Rejection {
  reason: RejectReason;
  status: number;
  headers: Record<string, string>;
  body: string;
}

export class Counters {
  readonly byReason: Record<string, number> = {};
  count(reason: string): void {
    this.byReason[reason] = (this.byReason[reason] ?? 0) + 1;
  }
}

export function rejection(
  reason: RejectReason,
  opts: { grpc: boolean; status?: number; detail?: string; extraHeaders?: Record<string, string>; service?: string | undefined; route?: string | undefined },
  counters: Counters,
): Rejection {
  const status = opts.status ?? STATUS[reason];
  counters.count(reason);
  if (channels.rejected.hasSubscribers) channels.rejected.publish({ reason, status, service: opts.service, route: opts.route, detail: opts.detail });
  const headers: Record<string, string> = { 'x-ebmesh-reason': reason, ...(opts.extraHeaders ?? {}) };
  const text = `${reason}${opts.detail ? `: ${opts.detail}` : ''}\n`;
  if (opts.grpc) {
    return {
      reason,
      status: 200,
      headers: { ...headers, 'content-type': 'application/grpc', 'grpc-status': String(GRPC_STATUS[status] ?? 2), 'grpc-message': encodeURIComponent(text.trim()) },
      body: '',
    };
  }
  return { reason, status, headers: { ...headers, 'content-type': 'text/plain; charset=utf-8' }, body: text };
}
