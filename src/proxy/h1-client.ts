/**
 * A lean HTTP/1.1 client for the proxy's upstream side: per-endpoint pools
 * of keep-alive sockets, without http.ClientRequest and http.Agent.
 * Profiling showed those two cost about half of the proxy's CPU per request
 * (listeners, timers and async hooks per request); this does one write per
 * request, and every answer is read by the one response reader
 * (h1-response.ts): Content-Length, chunked (with trailers),
 * close-delimited, HEAD, 1xx, 204/304.
 */
import { Readable } from 'node:stream';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Endpoint } from './types.js';
import { dialKey, plainDial, readsInto, type Caller, type Dial, type UpstreamStream } from './dial.js';
import { FramingError } from './h1-body.js';
import { TOKEN } from './http1-guard.js';
import { ResponseReader, type ResponseHead, type ResponseSink } from './h1-response.js';
import { owned, READ_BUFFER } from './read-into.js';

/** Response headers Node keeps only once (first wins), as IncomingMessage does. */
const SINGLE = new Set(['content-type', 'content-length', 'user-agent', 'referer', 'host', 'authorization', 'proxy-authorization', 'if-modified-since', 'if-unmodified-since', 'from', 'location', 'max-forwards', 'retry-after', 'etag', 'last-modified', 'server', 'age', 'expires']);

/** Adds one header the way IncomingMessage does: set-cookie as a list, singletons first-wins, others joined. */
export function addHeader(into: IncomingHttpHeaders, k: string, v: string): void {
  const cur = into[k];
  if (cur === undefined) into[k] = k === 'set-cookie' ? [v] : v;
  else if (k === 'set-cookie') (cur as string[]).push(v);
  else if (!SINGLE.has(k)) into[k] = `${cur as string}${k === 'cookie' ? '; ' : ', '}${v}`;
}

export function headersFromRaw(raw: readonly string[], into: IncomingHttpHeaders = {}): IncomingHttpHeaders {
  for (let i = 0; i + 1 < raw.length; i += 2) addHeader(into, raw[i]!.toLowerCase(), raw[i + 1]!);
  return into;
}

/** What Node's http.request refuses in a header value it writes (it sends other controls as they are); kept so the proxy writes what Node wrote. */
const UNWRITABLE = /[\r\n\0]/;
const NO_BODY_BY_DEFAULT = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']);

export interface H1Exchange {
  /**
   * Called once with the final (non-1xx) response head. `whole`: the body,
   * when it came complete with the head: onBody is not called for it.
   */
  onHead(head: ResponseHead, whole: Buffer | undefined): void;
  onBody(chunk: Buffer): boolean;
  onEnd(trailers: IncomingHttpHeaders | undefined): void;
  /** The connection failed before the response ended; `connected` says whether it ever connected, `responded` whether a head arrived. */
  onError(e: NodeJS.ErrnoException, connected: boolean, responded: boolean): void;
}

/** What the caller holds of the connection carrying its request. */
export interface H1Handle {
  /** Ends the exchange: the connection is closed. */
  abort(): void;
  /** The reader wants the body again after onBody said stop. */
  resume(): void;
  readonly connected: boolean;
}

/** One upstream connection with its response reader; carries one exchange at a time (and is that exchange's handle). */
class Conn implements H1Handle, ResponseSink {
  readonly socket: UpstreamStream;
  private readonly reader = new ResponseReader(this);
  ex: H1Exchange | undefined;
  connected = false;
  private responded = false;
  private keepAlive = false;
  private requestSent = false;
  private messageDone = false;
  private idleTimer: NodeJS.Timeout | undefined;
  private dead = false;

  constructor(
    private readonly pool: H1Pool,
    readonly key: string,
    ep: Endpoint,
    caller: Caller,
    dial: Dial,
  ) {
    this.socket = dial(ep, caller, { buffer: READ_BUFFER, callback: this.onRead });
    this.socket.setNoDelay?.(true);
    this.socket.once('connect', () => (this.connected = true));
    // A stream that is no TCP socket (the tunnel) could not take the read buffer: its chunks are its own.
    if (!readsInto(this.socket)) this.socket.on('data', (d: Buffer) => this.onBytes(d, true));
    this.socket.on('end', () => {
      // A close-delimited body ends here; any other response cut here failed.
      if (this.ex) {
        try {
          this.reader.end();
        } catch (e) {
          this.refuse(e);
        }
      }
      this.destroy();
    });
    this.socket.on('error', (e: NodeJS.ErrnoException) => this.fail(e));
    this.socket.on('close', () => this.fail(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })));
  }

  private readonly onRead = (n: number, buf: Uint8Array): boolean => {
    this.onBytes((buf as Buffer).subarray(0, n), false);
    return true; // pausing is pause()'s business (onBody)
  };

  /**
   * `own`: the chunk is ours to keep; otherwise it is READ_BUFFER's, reused
   * by the next read, and the reader hands out (and may hold) sub-arrays of
   * what it is fed: a body piece goes downstream later, maybe held by a slow
   * socket. So it is fed a copy, one per read, as llhttp copied body chunks.
   */
  private onBytes(d: Buffer, own: boolean): void {
    if (!this.ex) {
      this.destroy(); // bytes nobody asked for: the connection cannot be trusted
      return;
    }
    const c = own ? d : owned(d);
    try {
      if (!this.reader.feed(c)) this.destroy(); // more after the answer than an empty line
    } catch (e) {
      this.refuse(e);
    }
  }

  /** The reader refused the answer: the exchange fails and the connection closes. */
  private refuse(e: unknown): void {
    if (!(e instanceof FramingError)) throw e;
    this.fail(Object.assign(new Error(`malformed response: ${e.message}`), { code: 'EPROTO' }));
  }

  onHead(head: ResponseHead, whole: Buffer | undefined): void {
    if (head.status === 101) {
      this.fail(Object.assign(new Error('upstream switched protocols'), { code: 'EPROTO' }));
      return;
    }
    this.responded = true;
    this.keepAlive = head.keepAlive;
    this.ex?.onHead(head, whole);
  }

  onBody(b: Buffer): void {
    if (this.ex && !this.ex.onBody(b)) this.socket.pause();
  }

  onEnd(trailers: string[] | undefined): void {
    this.messageDone = true;
    const ex = this.ex;
    this.ex = undefined;
    if (this.keepAlive && this.requestSent) {
      // The reader may have paused us on the answer's last chunk: a pooled connection reads (for its next answer, or a stray byte or FIN).
      if (this.socket.isPaused()) this.socket.resume();
      this.pool.release(this);
    } else this.destroy();
    ex?.onEnd(trailers ? headersFromRaw(trailers) : undefined);
  }

  /** Writes the request; the socket stays ours until the response ends or fails. */
  send(ex: H1Exchange, method: string, head: string, body: Buffer | Readable | undefined, chunked: boolean): void {
    this.socket.ref?.();
    this.ex = ex;
    this.responded = false;
    this.messageDone = false;
    this.requestSent = false;
    this.reader.expect(method === 'HEAD');
    if (!(body instanceof Readable)) {
      this.socket.write(body && body.length ? Buffer.concat([Buffer.from(head, 'latin1'), body]) : head, 'latin1');
      this.requestSent = true;
      return;
    }
    this.socket.write(head, 'latin1');
    const onData = (c: Buffer): void => {
      if (!c.length) return;
      const ok = chunked ? (this.socket.cork(), this.socket.write(`${c.length.toString(16)}\r\n`), this.socket.write(c), this.socket.write('\r\n'), this.socket.uncork(), !this.socket.writableNeedDrain) : this.socket.write(c);
      if (!ok) {
        body.pause();
        this.socket.once('drain', () => body.resume());
      }
    };
    body.on('data', onData);
    body.once('end', () => {
      if (chunked) this.socket.write('0\r\n\r\n');
      this.requestSent = true;
      // The answer came before the body was all sent: reuse is off, close now.
      if (this.messageDone && !this.ex) this.destroy();
    });
    body.once('error', () => this.destroy());
  }

  abort(): void {
    this.destroy();
  }

  resume(): void {
    this.socket.resume();
  }

  idle(timeoutMs: number): void {
    this.socket.unref?.();
    // One timer per connection, re-armed each time it goes idle (not a new one per request); it does nothing while busy.
    if (this.idleTimer) this.idleTimer.refresh();
    else {
      this.idleTimer = setTimeout(() => this.ex === undefined && this.destroy(), timeoutMs);
      this.idleTimer.unref();
    }
  }

  private fail(e: NodeJS.ErrnoException): void {
    const ex = this.ex;
    this.ex = undefined;
    this.destroy();
    ex?.onError(e, this.connected, this.responded);
  }

  destroy(): void {
    if (this.dead) return;
    this.dead = true;
    clearTimeout(this.idleTimer);
    this.reader.stop();
    this.pool.forget(this);
    this.socket.destroy();
  }

  get alive(): boolean {
    return !this.dead && !this.socket.destroyed;
  }
}

export class H1Pool {
  private readonly idleByKey = new Map<string, Conn[]>();
  private readonly all = new Set<Conn>();

  constructor(
    private readonly maxIdlePerEndpoint = 256,
    private readonly idleTimeoutMs = 60_000,
    private readonly dial: Dial = plainDial,
  ) {}

  /**
   * Sends one request on a pooled (or new) connection. Throws synchronously
   * on a header that cannot be written (CR/LF/NUL in a value, a bad name).
   */
  request(
    ep: Endpoint,
    caller: Caller,
    method: string,
    path: string,
    authority: string,
    headers: OutgoingHttpHeaders,
    /** Ready header lines to send instead of `headers` (see UpstreamRequest.lines). */
    lines: { text: string; hasLength: boolean } | undefined,
    body: Buffer | Readable | undefined,
    ex: H1Exchange,
  ): H1Handle {
    let head = `${method} ${path} HTTP/1.1\r\nhost: ${authority}\r\n`;
    if (UNWRITABLE.test(path) || UNWRITABLE.test(authority)) throw new TypeError('invalid character in request line or host');
    let hasLength = false;
    if (lines) {
      head += lines.text;
      hasLength = lines.hasLength;
    } else {
      for (const k in headers) {
        const v = headers[k];
        if (v === undefined || k === 'host') continue;
        if (!TOKEN.test(k)) throw new TypeError(`invalid header name ${JSON.stringify(k)}`);
        if (k === 'content-length') hasLength = true;
        if (Array.isArray(v)) {
          for (const x of v) {
            if (UNWRITABLE.test(x)) throw new TypeError(`invalid character in header ${k}`);
            head += `${k}: ${x}\r\n`;
          }
        } else {
          const s = String(v);
          if (UNWRITABLE.test(s)) throw new TypeError(`invalid character in header ${k}`);
          head += `${k}: ${s}\r\n`;
        }
      }
    }
    let chunked = false;
    if (!hasLength) {
      if (body instanceof Readable) {
        chunked = true;
        head += 'transfer-encoding: chunked\r\n';
      } else if (body ? true : !NO_BODY_BY_DEFAULT.has(method)) head += `content-length: ${body?.length ?? 0}\r\n`;
    }
    head += '\r\n';
    const key = dialKey(this.dial, ep, caller);
    const idle = this.idleByKey.get(key);
    let conn: Conn | undefined;
    while (idle?.length) {
      const c = idle.pop()!;
      if (c.alive) {
        conn = c;
        break;
      }
    }
    if (!conn) {
      conn = new Conn(this, key, ep, caller, this.dial);
      this.all.add(conn);
    }
    conn.send(ex, method, head, body, chunked);
    return conn;
  }

  release(c: Conn): void {
    if (!c.alive) return;
    let idle = this.idleByKey.get(c.key);
    if (!idle) this.idleByKey.set(c.key, (idle = []));
    if (idle.length >= this.maxIdlePerEndpoint) {
      c.destroy();
      return;
    }
    c.idle(this.idleTimeoutMs);
    idle.push(c);
  }

  forget(c: Conn): void {
    this.all.delete(c);
    const idle = this.idleByKey.get(c.key);
    const i = idle ? idle.indexOf(c) : -1;
    if (i >= 0) idle!.splice(i, 1);
  }

  get size(): number {
    return this.all.size;
  }

  close(): void {
    for (const c of [...this.all]) c.destroy();
    this.idleByKey.clear();
  }
}
