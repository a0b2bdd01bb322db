/**
 * The daemon's record of what the node proxy did: counters by service,
 * route, backend and status class (with retries), and the most recent
 * request events. The seam for observe: `onProxyRequest(event)` is the one
 * function that receives each proxy request; when the flow history and
 * /metrics of the observe work land, it appends there too.
 */
import type { RequestDoneEvent } from './index.js';
import { Counter, Registry } from '../net/prom.js';

export interface ProxyRequestKey {
  service: string;
  route: string;
  backend: string;
  code: string; // 2xx, 4xx, 5xx…
}

export interface ProxyRequestCounter extends ProxyRequestKey {
  requests: number;
  retries: number;
  durationMsSum: number;
}

const RECENT = 1000;

export function countKey(e: RequestDoneEvent): ProxyRequestKey {
  return { service: e.service ?? '-', route: e.route ?? '-', backend: e.backend ?? '-', code: `${Math.floor(e.status / 100)}xx` };
}

function countOf(e: RequestDoneEvent): ProxyRequestCounter {
  return { ...countKey(e), requests: 1, retries: e.retries, durationMsSum: e.durationMs };
}

export class ProxyRequestLog {
  private readonly counters = new Map<string, ProxyRequestCounter>();
  private readonly recent: RequestDoneEvent[] = [];
  total = 0;
  /** Extra sinks (observe's history and metrics hang here). */
  readonly sinks: Array<(e: RequestDoneEvent) => void> = [];

  onProxyRequest(e: RequestDoneEvent): void {
    this.onProxyBatch([countOf(e)], [e]);
  }

  /**
   * What the proxy sends: exact counts for every request, plus a sample of
   * the requests themselves (at most a few hundred per worker per 250 ms:
   * serialising every event cost more than proxying it).
   */
  onProxyBatch(counts: readonly ProxyRequestCounter[], sample: readonly RequestDoneEvent[]): void {
    for (const n of counts) {
      this.total += n.requests;
      const id = `${n.service}|${n.route}|${n.backend}|${n.code}`;
      let c = this.counters.get(id);
      if (!c) this.counters.set(id, (c = { service: n.service, route: n.route, backend: n.backend, code: n.code, requests: 0, retries: 0, durationMsSum: 0 }));
      c.requests += n.requests;
      c.retries += n.retries;
      c.durationMsSum += n.durationMsSum;
    }
    for (const e of sample) this.record(e);
  }

  private record(e: RequestDoneEvent): void {
    this.recent.push(e);
    if (this.recent.length > RECENT) this.recent.splice(0, this.recent.length - RECENT);
    for (const s of this.sinks) s(e);
  }

  counterList(): ProxyRequestCounter[] {
    return [...this.counters.values()].sort((a, b) => (a.service + a.route + a.backend + a.code).localeCompare(b.service + b.route + b.backend + b.code));
  }

  recentEvents(limit = 100): RequestDoneEvent[] {
    return this.recent.slice(-limit);
  }

  /** Prometheus text, labelled like the kernel-observed request metrics. */
  metrics(): string {
    const r = new Registry();
    const requests = r.register(new Counter('ebmesh_l7_requests_total', 'Requests through the node proxy.'));
    const retries = r.register(new Counter('ebmesh_l7_retries_total', 'Retries the node proxy made.'));
    const duration = r.register(new Counter('ebmesh_l7_request_duration_ms_total', 'Time spent in requests, in milliseconds (divide by requests for the mean).'));
    for (const c of this.counterList()) {
      const labels = { service: c.service, route: c.route, backend: c.backend, code: c.code };
      requests.set(labels, c.requests);
      retries.set(labels, c.retries);
      duration.set(labels, Number(c.durationMsSum.toFixed(3)));
    }
    return r.expose();
  }
}
