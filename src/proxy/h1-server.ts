/**
 * The HTTP/1.x server side on a raw socket: the proxy's strict parser
 * (h1-request.ts), one request at a time per connection (pipelined bytes
 * wait in the buffer), bodies handed to the router as sub-arrays of the
 * socket's chunks, and a response writer that puts head and body into one
 * writev. Node's http.Server did the same work through IncomingMessage,
 * ServerResponse, a header object per side and several timers and
 * listeners per request; profiling put about half of the proxy's CPU per
 * request there.
 */
import { STATUS_CODES, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import type net from 'node:net';
import { Readable } from 'node:stream';
import { noteConnection } from './events.js';
import { MAX_H2C_UPGRADE_BODY, upgradeToH2c } from './h2c-upgrade.js';
import { ChunkedReader, FramingError, LengthReader, type BodyReader } from './h1-body.js';
import { parseHead, type H1Head } from './h1-request.js';
import { MAX_HEAD_BYTES, type FramingProblem } from './http1-guard.js';
import { rejection } from './responses.js';
import { handleRequest, type ConnContext, type Downstream, type ResponseSink } from './router.js';
import type { ProxyRuntime } from './runtime.js';
import type { HeadBytes } from './h1-response.js';
import { tunnelUpgrade, writeRawRejection } from './websocket.js';
import { owned, readAsData, readInto } from './read-into.js';

const EMPTY = Buffer.alloc(0);
/** Keep-alive connections idle this long are closed (as Node's keepAliveTimeout). */
const IDLE_TIMEOUT_MS = 60_000;
/** A request head must arrive within this long of its first byte (as Node's headersTimeout). */
const HEAD_TIMEOUT_MS = 30_000;
/** How often a connection checks the two timeouts: one timer per connection, not one per request. */
const TICK_MS = 10_000;
/**
 * Draining: a keep-alive connection still idle this long after the drain
 * began is closed. One that carries requests meanwhile is closed by the
 * `connection: close` of its next answer instead, which no client can race.
 */
const DRAIN_IDLE_MS = 1000;
/** Pipelined bytes we hold while a response is in flight before we stop reading. */
const MAX_PIPELINED_BYTES = 4 * MAX_HEAD_BYTES;
const BAD_OUT = /[\r\n\0]/;
/** Bodies up to this size are copied behind the head into one buffer. */
const SMALL_BODY = 8192;

const statusLine = (status: number): string => `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;

function headerLine(k: string, v: string): string {
  if (BAD_OUT.test(v)) throw new TypeError(`invalid character in response header ${k}`);
  return `${k}: ${v}\r\n`;
}

let dateAt = 0;
let dateText = '';
function httpDate(): string {
  const now = Date.now();
  if (now - dateAt >= 1000) {
    dateAt = now - (now % 1000);
    dateText = new Date(dateAt).toUTCString();
  }
  return dateText;
}

/**
 * One response on an HTTP/1.x connection. Headers are lower-case (the
 * router's convention). Framing is ours: the upstream's Content-Length if
 * it sent one, else chunked for HTTP/1.1 clients and close-delimited for
 * HTTP/1.0 ones.
 */
export class H1Response implements ResponseSink {
  statusCode = 200;
  headersSent = false;
  /** Close the connection after this response. */
  closeAfter: boolean;
  /** The head, until it goes out with the first body bytes (or at end): our text, or an upstream's lines (written straight into the out buffer). */
  private head: string | BytesHead | undefined;
  private chunked = false;
  private noBody: boolean;
  private trailers: OutgoingHttpHeaders | undefined;
  private ended = false;
  private onClose: Array<() => void> = [];
  private onFinish: Array<() => void> = [];

  constructor(
    private readonly socket: net.Socket,
    isHead: boolean,
    private readonly minor: 0 | 1,
    keepAlive: boolean,
    private readonly done: (res: H1Response) => void,
  ) {
    this.noBody = isHead;
    this.closeAfter = !keepAlive;
  }

  writeHead(status: number, headers: OutgoingHttpHeaders = {}): this {
    if (this.headersSent) return this;
    let h = statusLine(status);
    let hasLength = false;
    let hasDate = false;
    for (const k in headers) {
      const v = headers[k];
      if (v === undefined) continue;
      // Connection and framing are this connection's business, not the message's.
      if (k === 'connection') {
        if (v === 'close') this.closeAfter = true;
        continue;
      }
      if (k === 'transfer-encoding') continue;
      if (k === 'content-length') hasLength = true;
      else if (k === 'date') hasDate = true;
      if (Array.isArray(v)) for (const x of v) h += headerLine(k, x);
      else h += headerLine(k, typeof v === 'string' ? v : String(v));
    }
    this.head = h + this.endHead(status, hasLength, hasDate);
    return this;
  }

  /**
   * writeHead from an upstream HTTP/1 head (h1-response.ts): its lines,
   * already checked and with hop-by-hop fields and those its Connection
   * field names left out, copied as they came.
   */
  writeHeadRaw(status: number, hb: HeadBytes): this {
    if (this.headersSent) return this;
    const line = statusLine(status);
    this.head = new BytesHead(line, hb, this.endHead(status, hb.hasLength, hb.hasDate));
    return this;
  }

  /** The pending head in a new buffer with `room` bytes left after it. */
  private takeHead(room: number): Buffer {
    const h = this.head!;
    this.head = undefined;
    if (typeof h === 'string') {
      const b = Buffer.allocUnsafe(h.length + room);
      b.write(h, 0, 'latin1');
      return b;
    }
    const b = Buffer.allocUnsafe(h.size + room);
    const at = h.lines.writeLines(b, b.write(h.line, 0, 'latin1'));
    b.write(h.tail, at, 'latin1');
    return b;
  }

  /** Settles the framing of this response; returns the head's last lines (ours) and its blank line. */
  private endHead(status: number, hasLength: boolean, hasDate: boolean): string {
    if (status < 200 || status === 204 || status === 304) this.noBody = true;
    let h = '';
    if (!hasLength && !this.noBody) {
      if (this.minor === 1) {
        this.chunked = true;
        h += 'transfer-encoding: chunked\r\n';
      } else this.closeAfter = true;
    }
    if (!hasDate) h += `date: ${httpDate()}\r\n`;
    if (this.closeAfter) h += 'connection: close\r\n';
    else if (this.minor === 0) h += 'connection: keep-alive\r\n';
    this.statusCode = status;
    this.headersSent = true;
    return `${h}\r\n`;
  }

  write(chunk: Buffer | string): boolean {
    if (this.ended) return false;
    if (!this.headersSent) this.writeHead(this.statusCode);
    const s = this.socket;
    const len = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    if (this.noBody || len === 0) return !s.writableNeedDrain;
    if (this.head !== undefined && !this.chunked && typeof chunk !== 'string' && len <= SMALL_BODY) {
      // The common small answer: head and body in one buffer, one plain write (cheaper than a writev of two).
      const b = this.takeHead(len);
      chunk.copy(b, b.length - len);
      return s.write(b);
    }
    s.cork();
    if (this.head !== undefined) s.write(this.takeHead(0));
    if (this.chunked) s.write(`${len.toString(16)}\r\n`, 'latin1');
    s.write(chunk);
    if (this.chunked) s.write('\r\n', 'latin1');
    s.uncork();
    return !s.writableNeedDrain;
  }

  addTrailers(h: OutgoingHttpHeaders): void {
    this.trailers = h;
  }

  end(chunk?: string | Buffer): this {
    if (this.ended) return this;
    if (!this.headersSent) this.writeHead(this.statusCode, { 'content-length': chunk === undefined ? 0 : Buffer.byteLength(chunk) });
    const s = this.socket;
    // The commonest answer (a whole small body, fixed length) is one write already: no cork then.
    const one = this.head !== undefined && !this.chunked && Buffer.isBuffer(chunk) && chunk.length > 0 && chunk.length <= SMALL_BODY;
    if (!one) s.cork();
    if (chunk !== undefined) this.write(chunk);
    if (this.head !== undefined) s.write(this.takeHead(0));
    if (this.chunked) {
      let t = '0\r\n';
      for (const k in this.trailers) {
        const v = this.trailers[k];
        if (v === undefined) continue;
        for (const x of Array.isArray(v) ? v : [String(v)]) if (!BAD_OUT.test(x)) t += `${k}: ${x}\r\n`;
      }
      s.write(`${t}\r\n`, 'latin1');
    }
    if (!one) s.uncork();
    this.ended = true;
    this.emit('finish');
    this.emit('close');
    this.done(this);
    return this;
  }

  /** The connection went away (or was taken over) before the response ended. */
  detach(): void {
    if (this.ended) return;
    this.ended = true;
    this.headersSent = true; // nothing more can be said on this connection
    this.emit('close');
  }

  once(ev: 'close' | 'finish' | 'drain', fn: () => void): this {
    if (ev === 'drain') this.socket.once('drain', fn);
    else (ev === 'close' ? this.onClose : this.onFinish).push(fn);
    return this;
  }

  private emit(ev: 'close' | 'finish'): void {
    const fns = ev === 'close' ? this.onClose : this.onFinish;
    if (ev === 'close') this.onClose = [];
    else this.onFinish = [];
    for (const fn of fns) fn();
  }
}

/** A head made of our status line, an upstream's lines (as bytes) and our own last lines. */
class BytesHead {
  readonly size: number;
  constructor(
    readonly line: string,
    readonly lines: HeadBytes,
    readonly tail: string,
  ) {
    this.size = line.length + lines.size + tail.length;
  }
}

/** One request as the router sees it. A class so that `headers` can be built on first read cheaply. */
class H1Downstream implements Downstream {
  readonly protocol = 'http1' as const;
  readonly method: string;
  readonly url: string;
  readonly authority: string;
  readonly contentType: string | undefined;
  readonly traceparent: string | undefined;
  readonly forward: H1Head['forward'];
  readonly hasBody: boolean;

  constructor(
    private readonly head: H1Head,
    readonly body: Buffer | Readable | undefined,
    readonly conn: ConnContext,
    readonly res: H1Response,
    private readonly socket: net.Socket,
  ) {
    this.method = head.method;
    this.url = head.url;
    this.authority = head.host ?? '';
    this.contentType = head.contentType;
    this.traceparent = head.traceparent;
    this.forward = head.forward;
    this.hasBody = body !== undefined;
  }

  get headers(): IncomingHttpHeaders {
    return this.head.headers;
  }

  abort(): void {
    this.socket.destroy();
  }
}

export interface H1Hooks {
  /** Takes over a socket that switched to HTTP/2 (h2c upgrade); `bytes` are what the h2 server must read first. */
  h2c(socket: net.Socket, conn: ConnContext, bytes: Buffer): void;
}

/** Serves HTTP/1.x on an attributed socket; `first` are the bytes the sniffer already read. */
export function serveHttp1(rt: ProxyRuntime, socket: net.Socket, conn: ConnContext, first: Buffer, hooks: H1Hooks): void {
  new H1Connection(rt, socket, conn, hooks).start(first);
}

class H1Connection {
  private buf: Buffer = EMPTY;
  private scanFrom = 0;
  private state: 'head' | 'busy' | 'closed' | 'upgraded' = 'head';
  /** The body being read, and where its bytes go (undefined: discarded, nobody reads it any more). */
  private body: BodyReader | undefined;
  private sink: Readable | undefined;
  private res: H1Response | undefined;
  private idleSince = performance.now();
  private headStarted = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly rt: ProxyRuntime,
    private readonly socket: net.Socket,
    private readonly conn: ConnContext,
    private readonly hooks: H1Hooks,
  ) {
    this.timer = setTimeout(this.tick, TICK_MS);
    this.timer.unref();
    // Bytes the sniffer left queued in the Readable still come as 'data'; later reads come to onRead.
    socket.on('data', this.onData);
    readInto(socket, this.onRead);
    socket.on('close', this.onClose);
    rt.http1.add(this);
    if (rt.draining) this.drain();
  }

  /** The proxy hands over: the answer in flight says `connection: close`, an idle connection is closed soon. */
  drain(): void {
    if (this.res && !this.res.headersSent) this.res.closeAfter = true;
    setTimeout(() => {
      if (this.state !== 'head' || this.buf.length) return;
      this.state = 'closed';
      this.socket.end();
      this.closeSoon();
    }, DRAIN_IDLE_MS).unref();
  }

  start(first: Buffer): void {
    if (first.length) this.onData(first);
    this.socket.resume();
  }

  private readonly tick = (): void => {
    if (this.state === 'closed' || this.state === 'upgraded') return;
    if (this.state === 'head') {
      const now = performance.now();
      if (this.buf.length && now - this.headStarted > HEAD_TIMEOUT_MS) {
        this.state = 'closed';
        noteConnection('head_timeout', `no complete request head in ${HEAD_TIMEOUT_MS} ms`);
        this.socket.end('HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
        this.closeSoon();
        return;
      }
      if (!this.buf.length && now - this.idleSince > IDLE_TIMEOUT_MS) {
        this.state = 'closed';
        this.socket.destroy();
        return;
      }
    }
    this.timer.refresh();
  };

  private readonly pushBody = (b: Buffer): void => {
    if (this.sink && !this.sink.push(b)) this.socket.pause();
  };

  // The read is READ_BUFFER's: heads, bodies and pipelined bytes all outlive it, so they come from a copy.
  private readonly onRead = (d: Buffer): boolean => {
    this.onData(owned(d));
    return true; // backpressure is pause()'s business (pushBody)
  };

  private readonly onData = (d: Buffer): void => {
    if (this.state === 'closed' || this.state === 'upgraded') return;
    if (this.body) {
      let used: number;
      try {
        used = this.body.feed(d, this.pushBody);
      } catch (e) {
        this.bodyFailed(e as FramingError);
        return;
      }
      if (this.body.done) this.bodyDone();
      if (used === d.length) return;
      d = d.subarray(used);
    }
    if (!this.buf.length && this.state === 'head') this.headStarted = performance.now();
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    if (this.state === 'head') this.parse();
    else if (this.buf.length > MAX_PIPELINED_BYTES) this.socket.pause();
  };

  private readonly onClose = (): void => {
    const wasOpen = this.state !== 'closed';
    this.state = 'closed';
    clearTimeout(this.timer);
    this.rt.http1.delete(this);
    if (this.sink && this.body) this.sink.destroy(new Error('client closed the connection during the request body'));
    this.sink = undefined;
    this.body = undefined;
    if (wasOpen) this.res?.detach();
  };

  private parse(): void {
    const r = parseHead(this.buf, 0, this.scanFrom);
    if (!r) {
      this.scanFrom = Math.max(0, this.buf.length - 3);
      return;
    }
    this.scanFrom = 0;
    if ('problem' in r) {
      this.refuse(r.problem);
      return;
    }
    const rest = this.buf.subarray(r.end);
    this.buf = EMPTY;
    this.dispatch(r.head, rest);
  }

  private dispatch(head: H1Head, rest: Buffer): void {
    if (head.method === 'CONNECT') {
      this.refuse({ reason: 'BadMethod', detail: 'CONNECT is not proxied' });
      return;
    }
    if (head.upgrade) {
      this.upgrade(head, rest);
      return;
    }
    const expect = head.expect;
    if (expect !== undefined && !(head.minor === 1 && expect.toLowerCase() === '100-continue')) {
      this.state = 'closed';
      writeRawRejection(this.socket, rejection('bad_request', { grpc: false, status: 417, detail: `Expect ${JSON.stringify(expect)} is not supported` }, this.rt.counters));
      this.closeSoon();
      return;
    }
    let body: Buffer | Readable | undefined;
    const f = head.framing;
    if (f.kind === 'length' && rest.length >= f.length) {
      // The whole body came with the head: hand it over as one buffer (replayable, one write upstream).
      body = rest.subarray(0, f.length);
      rest = rest.subarray(f.length);
    } else if (f.kind !== 'none') {
      this.body = f.kind === 'length' ? new LengthReader(f.length) : new ChunkedReader();
      const sink = new Readable({ read: () => this.socket.resume() });
      sink.on('error', () => {});
      this.sink = body = sink;
      if (expect !== undefined) this.socket.write('HTTP/1.1 100 Continue\r\n\r\n');
      if (rest.length) {
        let used: number;
        try {
          used = this.body.feed(rest, this.pushBody);
        } catch (e) {
          this.body = this.sink = undefined;
          this.refuse((e as FramingError).problem);
          return;
        }
        rest = rest.subarray(used);
        if (this.body.done) this.bodyDone();
      }
    }
    this.buf = rest;
    this.state = 'busy';
    const res = new H1Response(this.socket, head.method === 'HEAD', head.minor, head.keepAlive && !this.rt.draining, this.responded);
    this.res = res;
    const ds = new H1Downstream(head, body, this.conn, res, this.socket);
    void handleRequest(this.rt, ds);
  }

  private bodyDone(): void {
    this.body = undefined;
    const sink = this.sink;
    this.sink = undefined;
    sink?.push(null);
    // The answer went out before the body was all read: now the next request may start.
    if (this.state === 'busy' && !this.res) this.next();
  }

  private bodyFailed(e: FramingError): void {
    const sink = this.sink;
    this.body = this.sink = undefined;
    // Never let a half-framed body reach the backend as if complete: the upstream request is aborted.
    sink?.destroy(e);
    const res = this.res;
    if (res && !res.headersSent) {
      res.detach();
      this.refuse(e.problem);
    } else {
      noteConnection('bad_framing', e.message);
      this.state = 'closed';
      this.socket.destroy();
    }
  }

  private readonly responded = (res: H1Response): void => {
    if (this.res !== res) return;
    this.res = undefined;
    // Draining, with the head already sent without `connection: close`: the FIN after a whole answer.
    if (res.closeAfter || this.rt.draining) {
      this.state = 'closed';
      this.socket.end();
      this.closeSoon();
      return;
    }
    if (this.body) {
      // Keep reading the rest of the body, for nobody, to find where the next request starts.
      this.sink?.destroy();
      this.sink = undefined;
      this.socket.resume();
      return;
    }
    this.next();
  };

  private next(): void {
    this.state = 'head';
    this.idleSince = performance.now();
    if (this.socket.isPaused()) this.socket.resume();
    if (this.buf.length) {
      // Pipelined: parse on the next tick so a run of quick answers does not grow the stack.
      this.headStarted = this.idleSince;
      process.nextTick(() => this.state === 'head' && this.parse());
    }
  }

  /** 400 (431 for a head too large), then close: after a framing error the next bytes cannot be trusted. */
  private refuse(problem: FramingProblem): void {
    this.state = 'closed';
    noteConnection('bad_framing', `${problem.reason}: ${problem.detail}`);
    const r = rejection('bad_request', { grpc: false, detail: problem.reason, status: problem.reason === 'HeadTooLarge' ? 431 : undefined }, this.rt.counters);
    writeRawRejection(this.socket, r);
    this.closeSoon();
  }

  /** After our FIN, give the peer a moment to read the answer and close its side. */
  private closeSoon(): void {
    clearTimeout(this.timer);
    this.socket.resume(); // drain what the peer still sends, so the close is a FIN, not a reset
    setTimeout(() => this.socket.destroy(), 5000).unref();
  }

  private upgrade(head: H1Head, rest: Buffer): void {
    this.state = 'upgraded';
    // A tunnel now (WebSocket, h2c): drained as such, not as HTTP/1.
    this.rt.http1.delete(this);
    clearTimeout(this.timer);
    this.socket.off('data', this.onData);
    this.socket.pause();
    readAsData(this.socket);
    const proto = String(head.headers['upgrade']).toLowerCase();
    if (proto !== 'h2c') {
      tunnelUpgrade(this.rt, head, this.socket, rest, this.conn);
      return;
    }
    if (head.framing.kind === 'chunked' || (head.framing.kind === 'length' && head.framing.length > MAX_H2C_UPGRADE_BODY)) {
      writeRawRejection(this.socket, rejection('bad_request', { grpc: false, detail: 'h2c upgrade needs a Content-Length body of at most 64 KiB' }, this.rt.counters));
      return;
    }
    upgradeToH2c(head, this.socket, rest, 10_000).then(
      (bytes) => this.hooks.h2c(this.socket, this.conn, bytes),
      (e: Error) => {
        noteConnection('h2c_upgrade_failed', e.message);
        this.socket.destroy();
      },
    );
  }
}
