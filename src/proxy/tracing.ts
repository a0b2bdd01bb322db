/**
 * W3C trace context and a small OTLP/HTTP JSON span exporter. The proxy
 * continues the caller's trace (or starts one), makes one SERVER span per
 * request and forwards a traceparent naming that span as the parent.
 */
import { randomFillSync } from 'node:crypto';
import http from 'node:http';
import type https from 'node:https';
import { createRequire } from 'node:module';
import type { TracingConfig } from './types.js';

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

export interface TraceParent {
  traceId: string;
  spanId: string;
  flags: number;
}

export function parseTraceparent(v: string | undefined): TraceParent | undefined {
  if (!v) return undefined;
  const m = TRACEPARENT.exec(v.trim().toLowerCase());
  if (!m) return undefined;
  const [, version, traceId, spanId, flags, rest] = m;
  if (version === 'ff' || (version === '00' && rest)) return undefined;
  if (/^0+$/.test(traceId!) || /^0+$/.test(spanId!)) return undefined;
  return { traceId: traceId!, spanId: spanId!, flags: parseInt(flags!, 16) };
}

// Ids come from a pool refilled 64 KiB at a time: one getrandom() per ~2,700
// requests instead of two per request.
const pool = Buffer.alloc(64 * 1024);
let poolAt = pool.length;
function randomHex(bytes: number): string {
  if (poolAt + bytes > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const s = pool.toString('hex', poolAt, poolAt + bytes);
  poolAt += bytes;
  return s;
}
export const newTraceId = (): string => randomHex(16);
export const newSpanId = (): string => randomHex(8);

/** The flags byte as two hex digits, made once (a traceparent is formatted per request). */
const FLAGS_HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

export function formatTraceparent(traceId: string, spanId: string, flags: number): string {
  return `00-${traceId}-${spanId}-${FLAGS_HEX[flags & 0xff]!}`;
}

function toNanos(ms: number): bigint {
  return BigInt(Math.round((performance.timeOrigin + ms) * 1000)) * 1000n;
}

export type AttrValue = string | number | boolean;

export class Span {
  private spanName: string | undefined;
  endMs: number | undefined;
  private attrs: Record<string, AttrValue> | undefined;
  error = false;
  constructor(
    readonly traceId: string,
    readonly spanId: string,
    readonly parentSpanId: string | undefined,
    name: string | undefined,
    readonly sampled: boolean,
    private readonly method = '',
    private readonly path = '',
    /** performance.now() at start (and endMs at the end): converted to Unix nanoseconds only when exported. */
    readonly startMs = performance.now(),
  ) {
    this.spanName = name;
  }
  /** Made on first use: only an exported span gets attributes. */
  get attributes(): Record<string, AttrValue> {
    return (this.attrs ??= {});
  }
  /** "METHOD /path" unless named: built only for exported spans. */
  get name(): string {
    return (this.spanName ??= `${this.method} ${this.path}`);
  }
  set name(v: string) {
    this.spanName = v;
  }
  finish(at = performance.now()): void {
    this.endMs ??= at;
  }
}

/** Starts the proxy's span for a request from the incoming traceparent (if valid). */
export function startRequestSpan(traceparent: string | undefined, method: string, path: string, startMs = performance.now()): Span {
  const parent = parseTraceparent(traceparent);
  if (parent) return new Span(parent.traceId, newSpanId(), parent.spanId, undefined, (parent.flags & 1) === 1, method, path, startMs);
  // Starting the trace: both ids from one hex conversion.
  const ids = randomHex(24);
  return new Span(ids.slice(0, 32), ids.slice(32), undefined, undefined, true, method, path, startMs);
}

function attr(key: string, v: AttrValue): Record<string, unknown> {
  if (typeof v === 'number') return { key, value: Number.isInteger(v) ? { intValue: String(v) } : { doubleValue: v } };
  if (typeof v === 'boolean') return { key, value: { boolValue: v } };
  return { key, value: { stringValue: v } };
}

/**
 * Batches finished spans and POSTs them as OTLP JSON. Export failures are
 * counted and the batch dropped: tracing must never slow the data path.
 */
export class OtlpExporter {
  private batch: Span[] = [];
  private timer: NodeJS.Timeout;
  private inflight = new Set<Promise<void>>();
  dropped = 0;
  exported = 0;

  constructor(private readonly cfg: TracingConfig) {
    this.timer = setInterval(() => void this.flush(), cfg.flushIntervalMs ?? 1000);
    this.timer.unref();
  }

  add(span: Span): void {
    if (!span.sampled) return;
    if (this.batch.length >= 10_000) {
      this.dropped++;
      return;
    }
    this.batch.push(span);
    if (this.batch.length >= (this.cfg.maxBatch ?? 512)) void this.flush();
  }

  flush(): Promise<void> {
    if (this.batch.length === 0) return Promise.all(this.inflight).then(() => undefined);
    const spans = this.batch;
    this.batch = [];
    const body = JSON.stringify({
      resourceSpans: [
        {
          resource: { attributes: [attr('service.name', this.cfg.serviceName ?? 'ebmesh-proxy')] },
          scopeSpans: [
            {
              scope: { name: 'ebmesh.proxy' },
              spans: spans.map((s) => ({
                traceId: s.traceId,
                spanId: s.spanId,
                ...(s.parentSpanId ? { parentSpanId: s.parentSpanId } : {}),
                name: s.name,
                kind: 2, // SPAN_KIND_SERVER
                startTimeUnixNano: String(toNanos(s.startMs)),
                endTimeUnixNano: String(toNanos(s.endMs ?? s.startMs)),
                attributes: Object.entries(s.attributes).map(([k, v]) => attr(k, v)),
                status: { code: s.error ? 2 : 0 },
              })),
            },
          ],
        },
      ],
    });
    const p = this.post(body, spans.length).finally(() => this.inflight.delete(p));
    this.inflight.add(p);
    return Promise.all(this.inflight).then(() => undefined);
  }

  private post(body: string, n: number): Promise<void> {
    return new Promise((resolve) => {
      const url = new URL(this.cfg.otlpEndpoint);
      // node:https (and TLS with it) only for an https collector: most proxies never load it.
      const req = (url.protocol === 'https:' ? (createRequire(import.meta.url)('node:https') as typeof https) : http).request(
        url,
        { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, timeout: 5000 },
        (res) => {
          res.resume();
          res.on('end', () => {
            if ((res.statusCode ?? 500) < 300) this.exported += n;
            else this.dropped += n;
            resolve();
          });
          res.on('error', () => resolve());
        },
      );
      req.on('timeout', () => req.destroy(new Error('OTLP export timed out')));
      req.on('error', () => {
        this.dropped += n;
        resolve();
      });
      req.end(body);
    });
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }
}
