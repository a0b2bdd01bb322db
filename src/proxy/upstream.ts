/**
 * One request to one endpoint, over HTTP/1.1 (pooled keep-alive sockets) or
 * HTTP/2 with prior knowledge (one pooled session per endpoint). Both give
 * back the same UpstreamResponse so the router does not care which.
 */
import type http2 from 'node:http2';
import { H2_ERR, lazyHttp2 } from '../net/http2-lazy.js';
import { Readable } from 'node:stream';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { BodyFeed, type ResponseBody } from './body-feed.js';
import { H1Pool, headersFromRaw, type H1Exchange, type H1Handle } from './h1-client.js';
import type { HeadBytes, ResponseHead } from './h1-response.js';
import type { Endpoint } from './types.js';
import { dialKey, endpointKey, plainDial, type Caller, type Dial } from './dial.js';
import { ExpectedError } from './expected-error.js';

export class UpstreamError extends ExpectedError {
  constructor(
    readonly kind: 'connect' | 'timeout' | 'reset',
    message: string,
    /** True when the request provably never reached the backend. */
    readonly safeToRetry: boolean,
  ) {
    super(message);
  }
}

/**
 * The downstream client's presence. The router sets `gone` when the client
 * leaves; whoever is waiting for it on the client's behalf installs
 * `onGone` to stop that work (a queued admission, an upstream request).
 */
export interface ClientPresence {
  gone: boolean;
  onGone: (() => void) | undefined;
}

export interface UpstreamRequest {
  endpoint: Endpoint;
  /** Whom the request is made for (connections are opened and pooled per caller, see dial.ts). */
  caller: Caller;
  protocol: 'http1' | 'http2';
  method: string;
  path: string;
  authority: string;
  /** Lower-case, hop-by-hop headers already removed. */
  headers: OutgoingHttpHeaders;
  /**
   * HTTP/1.1 only: header lines ready to send instead of `headers` (the
   * client's own, checked by our parser), and whether they hold Content-Length.
   */
  lines?: { text: string; hasLength: boolean };
  /** A buffer (replayable) or a stream (one shot), or nothing. */
  body: Buffer | Readable | undefined;
  timeoutMs: number;
  connectTimeoutMs: number;
  /** Until the response head arrives, a client that leaves ends the request at once (its slot is freed) and the upstream exchange soon after. */
  client?: ClientPresence;
}

/** An HTTP/1.1 answer: its header object is built only if someone reads it (an HTTP/1 client without header rules never does). */
class H1UpstreamResponse implements UpstreamResponse {
  private built: IncomingHttpHeaders | undefined;
  readonly status: number;
  constructor(
    readonly rawHead: ResponseHead,
    readonly body: BodyFeed,
    readonly trailers: Promise<IncomingHttpHeaders | undefined>,
    readonly abort: () => void,
  ) {
    this.status = rawHead.status;
  }

  get headers(): IncomingHttpHeaders {
    return (this.built ??= headersFromRaw(this.rawHead.raw));
  }
}

const NO_TRAILERS: Promise<undefined> = Promise.resolve(undefined);

/**
 * An HTTP/1.1 answer whose Content-Length body came with its head in one
 * read (h1-response.ts): already complete, its connection already back in
 * the pool, so there is nothing to stream, wait for or abort. A body feed is
 * made only for a reader that wants one (a mirror's or a retried answer
 * being discarded).
 */
class WholeH1Response implements UpstreamResponse {
  private built: IncomingHttpHeaders | undefined;
  private feed: BodyFeed | undefined;
  readonly trailers = NO_TRAILERS;
  readonly status: number;
  constructor(
    readonly rawHead: ResponseHead,
    readonly whole: Buffer,
  ) {
    this.status = rawHead.status;
  }

  get headers(): IncomingHttpHeaders {
    return (this.built ??= headersFromRaw(this.rawHead.raw));
  }

  get body(): BodyFeed {
    if (!this.feed) {
      this.feed = new BodyFeed(() => {});
      if (this.whole.length) this.feed.push(this.whole);
      this.feed.end();
    }
    return this.feed;
  }

  abort(): void {}
}

const clientGone = (): UpstreamError => new UpstreamError('reset', 'the client went away before the answer', false);

/**
 * How long an HTTP/1 exchange whose client left may still run, unread:
 * closing the backend connection at once costs a reconnect, more than
 * letting a quick answer finish (the bench's abandoning clients made the
 * proxy spend 40% more CPU per request when every such exchange was cut).
 */
const ABANDON_GRACE_MS = 500;

/** Calls `leave` when the client leaves before the head; returns false (after calling it) if it already left. */
function watchClient(c: ClientPresence | undefined, leave: () => void): boolean {
  if (!c) return true;
  if (c.gone) {
    leave();
    return false;
  }
  c.onGone = leave;
  return true;
}

export interface UpstreamResponse {
  status: number;
  /** Lower-case, as IncomingMessage has them. */
  readonly headers: IncomingHttpHeaders;
  /** HTTP/1.1 upstreams: the header lines to forward, as bytes, for a downstream that can copy them. */
  readonly rawHead?: HeadBytes;
  /** The whole body when it came with the head: a downstream may send it at once instead of reading `body`. */
  readonly whole?: Buffer;
  body: ResponseBody;
  /** Resolves when the body ends: the trailers, if any. */
  trailers: Promise<IncomingHttpHeaders | undefined>;
  abort(): void;
}

/**
 * One HTTP/1.1 request in flight, as one object rather than a closure per
 * callback: the exchange the pooled connection reports to, its timers, and
 * the settling of the caller's promise.
 */
class H1Call implements H1Exchange {
  private settled = false;
  private handle: H1Handle | undefined;
  private timer: NodeJS.Timeout | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private grace: NodeJS.Timeout | undefined;
  private body: BodyFeed | undefined;
  private endTrailers: ((t: IncomingHttpHeaders | undefined) => void) | undefined;

  constructor(
    private readonly r: UpstreamRequest,
    private readonly resolve: (resp: UpstreamResponse) => void,
    private readonly reject: (e: unknown) => void,
  ) {}

  start(pool: H1Pool): void {
    const r = this.r;
    let handle: H1Handle;
    try {
      handle = this.handle = pool.request(r.endpoint, r.caller, r.method, r.path, r.authority, r.headers, r.lines, r.body, this);
    } catch (e) {
      this.reject(e);
      return;
    }
    if (!watchClient(r.client, this.left)) return;
    if (r.timeoutMs > 0) this.timer = setTimeout(() => this.fail(new UpstreamError('timeout', `no response from ${endpointKey(r.endpoint)} in ${r.timeoutMs}ms`, false)), r.timeoutMs);
    // A reused keep-alive connection is already connected: no connect timer then.
    if (!handle.connected) this.connectTimer = setTimeout(() => !handle.connected && this.fail(new UpstreamError('connect', 'connect timeout', true)), r.connectTimeoutMs);
    if (r.body instanceof Readable) r.body.on('error', () => handle.abort());
  }

  private fail(e: UpstreamError, cut = true): void {
    clearTimeout(this.timer);
    clearTimeout(this.connectTimer);
    if (this.settled) return;
    this.settled = true;
    if (this.r.client) this.r.client.onGone = undefined;
    if (cut) this.handle?.abort();
    this.reject(e);
  }

  // The caller (and the admission slot) let go now; the exchange runs on, unread, for at most the grace.
  private readonly left = (): void => {
    if (this.settled) return;
    this.fail(clientGone(), false);
    this.grace = setTimeout(() => this.handle?.abort(), ABANDON_GRACE_MS);
    this.grace.unref();
  };

  onHead(head: ResponseHead, whole: Buffer | undefined): void {
    clearTimeout(this.timer);
    clearTimeout(this.connectTimer);
    if (this.settled) return;
    this.settled = true;
    if (this.r.client) this.r.client.onGone = undefined; // from here on the caller streams the body and watches the client
    if (whole) {
      this.resolve(new WholeH1Response(head, whole));
      return;
    }
    const handle = this.handle;
    const b = (this.body = new BodyFeed(() => handle?.resume()));
    const trailers = new Promise<IncomingHttpHeaders | undefined>((done) => (this.endTrailers = done));
    this.resolve(
      new H1UpstreamResponse(head, b, trailers, () => {
        handle?.abort();
        b.destroy();
        this.endTrailers?.(undefined);
      }),
    );
  }

  onBody(chunk: Buffer): boolean {
    return this.body?.push(chunk) ?? true;
  }

  onEnd(t: IncomingHttpHeaders | undefined): void {
    clearTimeout(this.grace);
    this.endTrailers?.(t && Object.keys(t).length ? t : undefined);
    this.body?.end();
  }

  onError(e: NodeJS.ErrnoException, connected: boolean, responded: boolean): void {
    clearTimeout(this.grace);
    if (responded) {
      this.body?.destroy(e);
      this.endTrailers?.(undefined);
      return;
    }
    const refused = !connected || e.code === 'ECONNREFUSED';
    this.fail(new UpstreamError(refused ? 'connect' : 'reset', `${e.code ?? ''} ${e.message}`.trim(), refused));
  }
}

export class UpstreamPool {
  private readonly sessions = new Map<string, http2.ClientHttp2Session>();
  private readonly h1pool: H1Pool;

  constructor(private readonly dial: Dial = plainDial) {
    this.h1pool = new H1Pool(256, 60_000, dial);
  }

  request(r: UpstreamRequest): Promise<UpstreamResponse> {
    return r.protocol === 'http2' ? this.h2(r) : this.h1(r);
  }

  private h1(r: UpstreamRequest): Promise<UpstreamResponse> {
    return new Promise((resolve, reject) => new H1Call(r, resolve, reject).start(this.h1pool));
  }

  private session(ep: Endpoint, caller: Caller, connectTimeoutMs: number): Promise<http2.ClientHttp2Session> {
    const key = dialKey(this.dial, ep, caller);
    const existing = this.sessions.get(key);
    if (existing && !existing.closed && !existing.destroyed) return Promise.resolve(existing);
    return new Promise((resolve, reject) => {
      const s = lazyHttp2().connect(`http://${ep.ip}:${ep.port}`, { createConnection: () => this.dial(ep, caller) });
      const forget = (): void => {
        if (this.sessions.get(key) === s) this.sessions.delete(key);
      };
      const t = setTimeout(() => {
        s.destroy();
        reject(new UpstreamError('connect', 'connect timeout', true));
      }, connectTimeoutMs);
      s.on('error', (e) => {
        clearTimeout(t);
        forget();
        reject(new UpstreamError('connect', e.message, true));
      });
      s.on('close', forget);
      s.on('goaway', forget);
      s.once('connect', () => {
        clearTimeout(t);
        s.unref(); // an idle pooled session must not keep the process alive
        resolve(s);
      });
      this.sessions.set(key, s);
    });
  }

  private async h2(r: UpstreamRequest): Promise<UpstreamResponse> {
    if (r.lines) throw new TypeError('ready header lines are for HTTP/1.1 upstreams only');
    const s = await this.session(r.endpoint, r.caller, r.connectTimeoutMs);
    return new Promise((resolve, reject) => {
      let settled = false;
      const stream = s.request(
        { ...r.headers, ':method': r.method, ':path': r.path, ':authority': r.authority, ':scheme': 'http' },
        { endStream: r.body === undefined || (Buffer.isBuffer(r.body) && r.body.length === 0) },
      );
      const timer = r.timeoutMs > 0 ? setTimeout(() => fail(new UpstreamError('timeout', `no response in ${r.timeoutMs}ms`, false)), r.timeoutMs) : undefined;
      const fail = (e: UpstreamError): void => {
        clearTimeout(timer);
        if (settled) return;
        settled = true;
        if (r.client) r.client.onGone = undefined;
        stream.close(H2_ERR.CANCEL);
        reject(e);
      };
      if (!watchClient(r.client, () => fail(clientGone()))) return; // an HTTP/2 stream is cancelled at once: that costs no connection
      stream.on('error', (e) => fail(new UpstreamError('reset', e.message, false)));
      stream.on('close', () => {
        // Closed before any response: REFUSED_STREAM means it was never processed.
        if (!settled) fail(new UpstreamError('reset', `stream closed (code ${stream.rstCode})`, stream.rstCode === H2_ERR.REFUSED_STREAM));
      });
      const trailers = new Promise<IncomingHttpHeaders | undefined>((done) => {
        stream.on('trailers', (t) => done(t));
        stream.on('close', () => done(undefined));
      });
      stream.on('response', (headers) => {
        clearTimeout(timer);
        if (settled) return;
        settled = true;
        if (r.client) r.client.onGone = undefined;
        const status = Number(headers[':status'] ?? 502);
        const clean: IncomingHttpHeaders = {};
        for (const [k, v] of Object.entries(headers)) if (!k.startsWith(':')) clean[k] = v as string | string[];
        resolve({ status, headers: clean, body: stream, trailers, abort: () => stream.close(H2_ERR.CANCEL) });
      });
      if (r.body instanceof Readable) {
        r.body.on('error', () => stream.close(H2_ERR.CANCEL));
        r.body.pipe(stream);
      } else if (r.body && r.body.length > 0) stream.end(r.body);
    });
  }

  close(): void {
    for (const s of this.sessions.values()) s.destroy();
    this.sessions.clear();
    this.h1pool.close();
  }
}
