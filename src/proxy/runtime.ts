/**
 * The proxy's mutable state, kept apart from the immutable config so that
 * update() swaps the config and keeps buckets, breakers, outlier history,
 * queues and upstream pools. A request reads `config` once and keeps that
 * snapshot until it ends.
 */
import { CircuitBreakers } from './circuit-breaker.js';
import type { CompiledConfig, CompiledService } from './config.js';
import { FairScheduler } from './fair-queue.js';
import { OutlierDetector } from './outlier.js';
import { RateLimiter } from './rate-limit.js';
import { Counters } from './responses.js';
import type { OtlpExporter } from './tracing.js';
import type { Endpoint } from './types.js';
import { UpstreamPool } from './upstream.js';
import { endpointKey, plainDial, type Dial } from './dial.js';

export class ProxyRuntime {
  readonly limiter = new RateLimiter();
  readonly breakers = new CircuitBreakers();
  readonly outliers = new OutlierDetector();
  readonly pool: UpstreamPool;
  readonly counters = new Counters();
  readonly scheduler: FairScheduler;
  private readonly rr = new Map<string, number>();
  requests = 0;
  connections = 0;
  tcpPassthrough = 0;
  /** Handing over to a newer proxy: HTTP/1 connections close after their current request (node-proxy.ts drain()). */
  draining = false;
  /** Live HTTP/1 connections, so that drain() can reach the idle ones. */
  readonly http1 = new Set<{ drain(): void }>();

  constructor(
    public config: CompiledConfig,
    readonly exporter: OtlpExporter | undefined,
    readonly random: () => number = Math.random,
    /** How every upstream connection is opened (HTTP pools, pass-through, WebSocket). */
    readonly dial: Dial = plainDial,
  ) {
    this.pool = new UpstreamPool(dial);
    this.scheduler = new FairScheduler(config.limits);
  }

  swap(config: CompiledConfig): void {
    this.config = config;
    this.scheduler.setLimits(config.limits);
  }

  /**
   * Round-robin over the backend's endpoints, skipping ejected ones and the
   * ones this request already tried. When every endpoint is ejected we use
   * them anyway (Envoy's "panic" behaviour): a guess beats a certain 503.
   */
  pickEndpoint(svc: CompiledService, tried: ReadonlySet<string>): Endpoint | undefined {
    const eps = svc.endpoints;
    const n = eps.length;
    if (n === 0) return undefined;
    const start = this.rr.get(svc.key) ?? 0;
    this.rr.set(svc.key, (start + 1) % n);
    // One pass, no arrays: this runs for every request.
    let healthy: Endpoint | undefined;
    let untried: Endpoint | undefined;
    for (let i = 0; i < n; i++) {
      const e = eps[(start + i) % n]!;
      const key = endpointKey(e);
      const fresh = tried.size === 0 || !tried.has(key);
      if (!this.outliers.isEjected(key)) {
        if (fresh) return e;
        healthy ??= e;
      } else if (fresh) untried ??= e;
    }
    return healthy ?? untried ?? eps[start % n];
  }
}
