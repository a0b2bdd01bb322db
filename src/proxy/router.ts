/**
 * The per-request pipeline, in order (each step may end the request):
 *
 *   decide (route match, L7 authz, redirect, backend choice — plan.ts)
 *   → fault abort → rate limit → tenant admission (fair queue)
 *   → fault delay → body buffering (if it must be replayable)
 *   → mirror → forward with retries/timeouts/circuit breaker/outlier
 *   → response header filters → stream the response (and trailers) back.
 *
 * Errors thrown anywhere end up in one catch that turns them into answers
 * through responses.ts. The router is the last filter.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { BreakerOpen } from './circuit-breaker.js';
import type { CompiledRule, CompiledService } from './config.js';
import { channels, type RequestDoneEvent } from './events.js';
import { Shed } from './fair-queue.js';
import { applyHeaderModifier, decide, type Plan } from './plan.js';
import { rejection, type RejectReason, type Rejection } from './responses.js';
import type { RequestFacts } from './route-match.js';
import { endpointKey } from './dial.js';
import type { ProxyRuntime } from './runtime.js';
import { formatTraceparent, startRequestSpan, type Span } from './tracing.js';
import type { Endpoint, OriginalDestination } from './types.js';
import type { HeadBytes } from './h1-response.js';
import { dropsField, namedInConnection } from './hop-by-hop.js';
import { UpstreamError, type ClientPresence, type UpstreamRequest, type UpstreamResponse } from './upstream.js';
import { ExpectedError } from './expected-error.js';

export interface ConnContext {
  id: number;
  /** With the caller's address: upstream connections are opened and pooled for it (dial.ts). */
  client: OriginalDestination['client'];
  dst: Endpoint;
}

/** What the router needs from a response object; both http1 and http2-compat responses have it. */
export interface ResponseSink {
  headersSent: boolean;
  statusCode: number;
  writeHead(status: number, headers?: OutgoingHttpHeaders): unknown;
  /** HTTP/1 only: writeHead from an upstream HTTP/1 head as received (UpstreamResponse.rawHead). */
  writeHeadRaw?(status: number, raw: HeadBytes): unknown;
  /** false: wait for 'drain' before writing more. */
  write(chunk: Buffer): boolean;
  end(chunk?: string | Buffer): unknown;
  addTrailers(h: OutgoingHttpHeaders): void;
  once(ev: 'close' | 'finish' | 'drain', fn: () => void): unknown;
}

export interface Downstream {
  protocol: 'http1' | 'http2';
  method: string;
  /** Path and query as received. */
  url: string;
  authority: string;
  /** Lower-case, no pseudo-headers. May be built on first read (HTTP/1): read it only when needed. */
  readonly headers: IncomingHttpHeaders;
  /** The two fields every request needs, without touching `headers`. */
  contentType: string | undefined;
  traceparent: string | undefined;
  /** HTTP/1 only: the same headers as lines ready to forward (hop-by-hop, Host and traceparent left out). */
  forward?: { text: string; hasLength: boolean } | undefined;
  /** A Buffer when the whole body was already read (replayable as is). */
  body: Readable | Buffer | undefined;
  hasBody: boolean;
  conn: ConnContext;
  res: ResponseSink;
  /** Reset the client's stream/connection (after headers were sent there is no other way to signal failure). */
  abort(): void;
}

/** What routes match on. A class so that query and headers are built only if a rule reads them, cheaply. */
class Facts implements RequestFacts {
  readonly method: string;
  readonly host: string;
  readonly grpc: boolean;
  private params: URLSearchParams | undefined;

  constructor(
    private readonly ds: Downstream,
    readonly path: string,
    private readonly search: string,
  ) {
    this.method = ds.method;
    this.host = ds.authority;
    const ct = ds.contentType;
    this.grpc = ct !== undefined && ct.startsWith('application/grpc');
  }

  get query(): URLSearchParams {
    return (this.params ??= new URLSearchParams(this.search));
  }

  get headers(): RequestFacts['headers'] {
    return this.ds.headers;
  }
}

class NoEndpoint extends ExpectedError {}
class BodyTooLarge extends ExpectedError {}

function stripHopByHop(h: IncomingHttpHeaders, keepTeTrailers: boolean): Record<string, string | string[] | undefined> {
  const named = namedInConnection(h['connection']);
  const out: Record<string, string | string[] | undefined> = {};
  for (const k in h) {
    if (k.charCodeAt(0) === 58 /* ':' */) continue;
    if (dropsField(k, named) && !(k === 'te' && keepTeTrailers && h[k] === 'trailers')) continue;
    out[k] = h[k];
  }
  return out;
}

async function readBody(body: Readable, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    n += (c as Buffer).length;
    if (n > max) throw new BodyTooLarge(`request body over ${max} bytes cannot be buffered for retry or mirror`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}

function sendRejection(ds: Downstream, r: Rejection): void {
  if (ds.res.headersSent) {
    ds.abort();
    return;
  }
  const headers: OutgoingHttpHeaders = { ...r.headers, 'content-length': Buffer.byteLength(r.body) };
  ds.res.writeHead(r.status, headers);
  ds.res.end(r.body);
}

interface Outcome {
  route: string | undefined;
  backend: string | undefined;
  endpoint: string | undefined;
  retries: number;
  reason: string | undefined;
}

export async function handleRequest(rt: ProxyRuntime, ds: Downstream): Promise<void> {
  const t0 = performance.now();
  const cfg = rt.config; // one snapshot for the whole request
  rt.requests++;
  const q = ds.url.indexOf('?');
  const pathOnly = q >= 0 ? ds.url.slice(0, q) : ds.url;
  const query = q >= 0 ? ds.url.slice(q) : '';
  const facts = new Facts(ds, pathOnly, query);
  const span = startRequestSpan(ds.traceparent, ds.method, pathOnly, t0);
  const out: Outcome = { route: undefined, backend: undefined, endpoint: undefined, retries: 0, reason: undefined };
  let plan: Plan | undefined;
  // 'close' comes once: after the answer ended, or when the client went away first.
  const client: ClientPresence = { gone: false, onGone: undefined };
  ds.res.once('close', () => {
    client.gone = true;
    client.onGone?.();
    finish(rt, ds, facts, span, out, plan, t0);
  });

  const reject = (reason: RejectReason, detail: string, extra?: { status?: number; headers?: Record<string, string> }): void => {
    out.reason = reason;
    const svc = plan?.service?.key;
    sendRejection(ds, rejection(reason, { grpc: facts.grpc, detail, status: extra?.status, extraHeaders: extra?.headers, service: svc, route: out.route }, rt.counters));
  };

  let release: (() => void) | undefined;
  try {
    plan = decide(cfg, ds.conn.dst, ds.conn.client, facts, query, rt.random);
    out.route = plan.rule?.id;
    if (plan.kind === 'reject') {
      if (plan.denied && channels.denied.hasSubscribers) {
        channels.denied.publish({ ...plan.denied, identity: ds.conn.client.identity, namespace: ds.conn.client.namespace, method: facts.method, path: facts.path, service: plan.service?.key });
      }
      reject(plan.reason, plan.detail, { headers: plan.headers });
      return;
    }
    if (plan.kind === 'redirect') {
      out.reason = 'redirect';
      ds.res.writeHead(plan.status, { location: plan.location, 'content-length': 0 });
      ds.res.end();
      return;
    }

    const traffic = plan.traffic;
    const fault = traffic?.fault;
    if (fault && fault.abortPercent > 0 && rt.random() * 100 < fault.abortPercent) {
      reject('fault_abort', 'injected fault', { status: fault.abortStatus });
      return;
    }
    // Per-client first: a client stopped by its own limit must not use up the shared bucket.
    if (traffic?.rateLimitPerClient && !rt.limiter.take(`${traffic.key}|client|${ds.conn.client.identity}`, traffic.rateLimitPerClient)) {
      reject('rate_limited', `per-client rate limit of ${traffic.key} for ${ds.conn.client.identity}`);
      return;
    }
    if (traffic?.rateLimitTotal && !rt.limiter.take(`${traffic.key}|total`, traffic.rateLimitTotal)) {
      reject('rate_limited', `rate limit of ${traffic.key}`);
      return;
    }
    const ns = ds.conn.client.namespace;
    release = rt.scheduler.tryAcquire(ns) ?? (await rt.scheduler.acquire(ns, client));
    if (fault && fault.delayMs > 0 && rt.random() * 100 < fault.delayPercent) await sleep(fault.delayMs);

    const rule = plan.rule;
    const mustReplay = ds.hasBody && (rule?.retry !== undefined || (rule?.mirrors.length ?? 0) > 0);
    const body: Buffer | Readable | undefined = !ds.hasBody || ds.body === undefined ? undefined : mustReplay && !Buffer.isBuffer(ds.body) ? await readBody(ds.body, cfg.limits.maxBufferedBodyBytes) : ds.body;

    const traceparent = formatTraceparent(span.traceId, span.spanId, span.sampled ? 1 : 0);
    // HTTP/1 to HTTP/1 with nothing to change: forward the client's header lines as they are, no header object.
    const asIs = ds.forward !== undefined && !rule?.requestHeaders && !plan.target?.requestHeaders && !rule?.mirrors.length && chooseProtocol(ds, plan.backend) === 'http1';
    const lines = asIs ? { text: `${ds.forward!.text}traceparent: ${traceparent}\r\n`, hasLength: ds.forward!.hasLength } : undefined;
    const headers = asIs ? {} : stripHopByHop(ds.headers, true);
    if (!asIs) {
      applyHeaderModifier(headers, rule?.requestHeaders);
      headers['traceparent'] = traceparent;
    }

    for (const m of rule?.mirrors ?? []) {
      if (m.target.service && !(body && !Buffer.isBuffer(body)) && rt.random() * 100 < m.percent) mirror(rt, ds, m.target.service, plan.path, plan.authority, headers, body as Buffer | undefined);
    }

    // The chosen backendRef's own filters come after the rule's, on a copy: the mirrors keep the rule's headers.
    const own = plan.target;
    const sent = own?.requestHeaders ? { ...headers } : headers;
    applyHeaderModifier(sent, own?.requestHeaders);

    const { resp, release: releaseBreaker } = await forward(rt, ds, plan, sent, lines, body, out, t0, client);
    // HTTP/1 both ways and no response header rule: the upstream's head is copied as received, no header object.
    if (resp.rawHead !== undefined && !rule?.responseHeaders && !own?.responseHeaders && ds.res.writeHeadRaw) ds.res.writeHeadRaw(resp.status, resp.rawHead);
    else {
      const respHeaders = stripHopByHop(resp.headers, false);
      applyHeaderModifier(respHeaders, rule?.responseHeaders);
      applyHeaderModifier(respHeaders, own?.responseHeaders);
      ds.res.writeHead(resp.status, respHeaders as OutgoingHttpHeaders);
    }
    const streaming = streamBack(ds, resp, client);
    if (streaming) await streaming;
    releaseBreaker();
  } catch (e) {
    // Nobody is left to answer: the work was stopped on purpose, the request was already accounted at 'close'.
    if (client.gone) return;
    if (e instanceof BreakerOpen) reject('circuit_open', e.message);
    else if (e instanceof Shed) reject('overload', e.message);
    else if (e instanceof NoEndpoint) reject('no_endpoint', e.message);
    else if (e instanceof BodyTooLarge) reject('body_too_large', e.message);
    else if (e instanceof UpstreamError) reject(e.kind === 'timeout' ? 'timeout' : e.kind === 'connect' ? 'upstream_connect' : 'upstream_reset', e.message);
    else reject('upstream_reset', e instanceof Error ? e.message : String(e));
  } finally {
    release?.();
  }
}

/**
 * Streams the upstream body to the client, then its trailers (gRPC's
 * grpc-status lives there). A body that came whole with the head is sent at
 * once: no promise to wait for then.
 */
function streamBack(ds: Downstream, resp: UpstreamResponse, client: ClientPresence): Promise<void> | undefined {
  if (resp.whole !== undefined) {
    if (!client.gone) ds.res.end(resp.whole);
    return undefined;
  }
  // A hand-rolled pipe: Readable.pipe() adds and removes seven listeners per
  // response, which costs more than forwarding a small body.
  return new Promise((resolve) => {
    const res = ds.res;
    const body = resp.body;
    let done = false;
    const stop = (): void => {
      done = true;
      body.off('data', onData);
      resolve();
    };
    // The client went away (before or during the body): stop the upstream
    // work too, and never wait for a 'drain' that cannot come — that would
    // hold the request's admission slot and breaker permit for good.
    const gone = (): void => {
      if (done) return;
      stop();
      resp.abort();
    };
    const onData = (chunk: Buffer): void => {
      if (!res.write(chunk)) {
        body.pause();
        res.once('drain', () => body.resume());
      }
    };
    if (client.gone) {
      gone();
      return;
    }
    client.onGone = gone;
    body.on('error', () => {
      if (done) return;
      stop();
      ds.abort();
    });
    body.on('data', onData);
    body.once('end', () => {
      if (done) return;
      void resp.trailers.then((t) => {
        if (done) return;
        if (t) {
          const clean = stripHopByHop(t, false);
          if (Object.keys(clean).length) ds.res.addTrailers(clean as OutgoingHttpHeaders);
        }
        stop();
        ds.res.end();
      });
    });
  });
}

function chooseProtocol(ds: Downstream, svc: CompiledService | undefined): 'http1' | 'http2' {
  const p = svc?.protocol ?? 'auto';
  return p === 'http1' || p === 'http2' ? p : ds.protocol;
}

/**
 * Sends the request, retrying per the rule's retry policy (Gateway API:
 * `attempts` retries on the listed `codes`, `backoff` doubling between
 * tries). Connect failures are retried once on another endpoint even
 * without a policy: the backend never saw the request. Only replayable
 * bodies (buffered or none) are ever sent twice.
 */
async function forward(
  rt: ProxyRuntime,
  ds: Downstream,
  plan: Extract<Plan, { kind: 'forward' }>,
  headers: Record<string, string | string[] | undefined>,
  lines: UpstreamRequest['lines'],
  body: Buffer | Readable | undefined,
  out: Outcome,
  t0: number,
  client: ClientPresence,
): Promise<{ resp: UpstreamResponse; release: () => void }> {
  const rule = plan.rule;
  const retry = rule?.retry;
  const deadline = rule?.requestTimeoutMs ? t0 + rule.requestTimeoutMs : Infinity;
  const replayable = body === undefined || Buffer.isBuffer(body);
  const backend = plan.backend;
  out.backend = backend?.key ?? `${plan.direct?.ip}:${plan.direct?.port}`;
  const outlier = backend?.traffic?.outlier;
  const peers = outlier && backend ? backend.endpoints.map(endpointKey) : NO_PEERS;
  // The endpoints of earlier attempts: a set is made only when a retry happens.
  let tried: Set<string> | undefined;
  const protocol = chooseProtocol(ds, backend);
  for (let attempt = 0; ; attempt++) {
    const remaining = deadline === Infinity ? Infinity : deadline - performance.now();
    if (remaining <= 0) throw new UpstreamError('timeout', `request timeout ${rule?.requestTimeoutMs}ms`, false);
    const endpoint = plan.direct ?? (backend ? rt.pickEndpoint(backend, tried ?? NONE_TRIED) : undefined);
    if (!endpoint) throw new NoEndpoint(`service ${backend?.key} has no endpoints`);
    const key = endpointKey(endpoint);
    out.endpoint = key;
    const breaker = backend?.traffic?.breaker;
    const release = breaker ? await rt.breakers.acquire(backend.key, breaker, protocol === 'http1') : NO_RELEASE;
    const perTry = Math.min(rule?.backendTimeoutMs || Infinity, remaining);
    const canRetry = replayable && retry !== undefined && attempt < retry.attempts;
    let resp: UpstreamResponse;
    try {
      resp = await rt.pool.request({
        endpoint,
        caller: ds.conn.client,
        protocol,
        method: ds.method,
        path: plan.path,
        authority: plan.authority,
        headers: headers as OutgoingHttpHeaders,
        lines,
        body,
        timeoutMs: Number.isFinite(perTry) ? Math.max(1, perTry) : 0,
        connectTimeoutMs: rt.config.limits.connectTimeoutMs,
        client,
      });
    } catch (e) {
      release();
      if (!(e instanceof UpstreamError)) throw e;
      if (outlier && backend && e.kind !== 'reset') rt.outliers.record(backend.key, key, false, outlier, peers);
      const retriableKind = e.kind === 'connect' || (e.kind === 'timeout' && retry?.codes.has(504)) || (e.kind === 'reset' && retry?.codes.has(502));
      const freeConnectRetry = e.safeToRetry && replayable && attempt === 0 && !plan.direct && (backend?.endpoints.length ?? 0) > 1;
      if ((retriableKind && canRetry) || freeConnectRetry) {
        (tried ??= new Set()).add(key);
        await backoff(out, retry, attempt, deadline);
        continue;
      }
      throw e;
    }
    if (outlier && backend) rt.outliers.record(backend.key, key, resp.status < 500, outlier, peers);
    if (retry?.codes.has(resp.status) && canRetry) {
      resp.body.resume();
      resp.abort();
      release();
      (tried ??= new Set()).add(key);
      await backoff(out, retry, attempt, deadline);
      continue;
    }
    return { resp, release };
  }
}

const NO_PEERS: readonly string[] = [];
const NONE_TRIED: ReadonlySet<string> = new Set();
const NO_RELEASE = (): void => {};

/** Before another attempt: the rule's backoff, doubling per attempt, never past the request's deadline. */
async function backoff(out: Outcome, retry: CompiledRule['retry'], attempt: number, deadline: number): Promise<void> {
  out.retries++;
  const wait = retry ? Math.min(retry.backoffMs * 2 ** attempt, Math.max(0, deadline - performance.now() - 1)) : 0;
  if (wait > 0) await sleep(wait);
}

function mirror(rt: ProxyRuntime, ds: Downstream, svc: CompiledService, path: string, authority: string, headers: Record<string, string | string[] | undefined>, body: Buffer | undefined): void {
  const endpoint = rt.pickEndpoint(svc, new Set());
  if (!endpoint) return;
  // Fire and forget: the mirror's answer and failures never reach the client.
  rt.pool
    .request({ endpoint, caller: ds.conn.client, protocol: chooseProtocol(ds, svc), method: ds.method, path, authority, headers: headers as OutgoingHttpHeaders, body, timeoutMs: 10_000, connectTimeoutMs: rt.config.limits.connectTimeoutMs })
    .then((r) => r.body.resume())
    .catch(() => rt.counters.count('mirror_failed'));
}

function finish(rt: ProxyRuntime, ds: Downstream, facts: RequestFacts, span: Span, out: Outcome, plan: Plan | undefined, t0: number): void {
  const status = ds.res.statusCode;
  const now = performance.now();
  const durationMs = now - t0;
  span.finish(now);
  if (rt.exporter && span.sampled) {
    span.error = status >= 500;
    Object.assign(span.attributes, {
    'http.request.method': facts.method,
    'url.path': facts.path,
    'http.response.status_code': status,
    'ebmesh.client.identity': ds.conn.client.identity,
    'ebmesh.client.namespace': ds.conn.client.namespace,
    'ebmesh.retries': out.retries,
    'network.protocol.version': ds.protocol === 'http2' ? '2' : '1.1',
    });
    if (plan?.service) span.attributes['ebmesh.service'] = plan.service.key;
    if (out.route) span.attributes['ebmesh.route'] = out.route;
    if (out.endpoint) span.attributes['server.address'] = out.endpoint;
    if (out.reason) span.attributes['ebmesh.reason'] = out.reason;
    rt.exporter.add(span);
  }
  if (channels.request.hasSubscribers) {
    const ev: RequestDoneEvent = {
      service: plan?.service?.key,
      route: out.route,
      backend: out.backend,
      endpoint: out.endpoint,
      method: facts.method,
      path: facts.path,
      status,
      retries: out.retries,
      durationMs,
      protocol: ds.protocol,
      client: ds.conn.client,
      reason: out.reason,
      traceId: span.traceId,
    };
    channels.request.publish(ev);
  }
}
