/**
 * Closing an HTTP/2 session without refusing a request.
 *
 * HTTP/2's graceful close is two GOAWAY frames: a shutdown notice (last
 * stream id 2^31-1: open no new streams here) and, once the peer has had
 * the time to read it, the real one naming the last stream processed (RFC
 * 9113, 6.8). Node's API cannot send the notice: its goaway() is nghttp2's
 * full GOAWAY, after which nghttp2 ignores every stream that arrives, and
 * the real GOAWAY then tells the peer those were never processed
 * (REFUSED_STREAM). The streams the peer sent before it read the first
 * GOAWAY would be refused.
 *
 * Where the session's bytes pass through our hands (the node proxy's
 * sessions run over a JS Duplex, prefixed-stream.ts), a ShutdownNotice puts
 * the notice on the wire between two frames, unknown to nghttp2, which so
 * goes on taking streams. A PING follows it: its answer comes after the
 * peer read the notice, so every stream the peer will ever open on this
 * session arrived before it, and the real GOAWAY (session.close(): the
 * streams in flight finish, then the session closes) refuses nothing.
 *
 * Without a notice (a session whose bytes Node reads natively), the first
 * GOAWAY is nghttp2's and a stream that crosses it is refused; the window is
 * the time between our first GOAWAY leaving and the peer reading it, and it
 * grows when this process's event loop is held up (h2-drain.test.ts shows
 * it). The mTLS tunnel's sessions are not Node's: the native relay sends
 * nghttp2's own shutdown notice (native/relay/tunnel.c), and its client
 * opens a stream refused unprocessed again with its bytes.
 */
import type http2 from 'node:http2';
import { H2_ERR } from './http2-lazy.js';

export const MAX_STREAM_ID = 2 ** 31 - 1;
/** Longer than any round trip between two nodes of a lab or a cluster. */
export const GOAWAY_GRACE_MS = 1000;
/** How long a notice waits for the peer's PING answer before the real GOAWAY goes anyway (a peer that slow is broken). */
export const NOTICE_ANSWER_MAX_MS = 10_000;

/** GOAWAY on stream 0: length 8, type 7, no flags; last stream id 2^31-1, NO_ERROR. */
const NOTICE_FRAME = Buffer.from([0, 0, 8, 7, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
const FRAME_HEADER = 9;

type Write = (chunk: Buffer, cb?: (e?: Error | null) => void) => void;

/**
 * The outbound bytes of a server's HTTP/2 session, followed frame by frame
 * (9-byte headers, their lengths) so that the shutdown notice goes in
 * between two frames, never inside one.
 */
export class ShutdownNotice {
  /** Payload bytes of the current frame still to pass. */
  private left = 0;
  /** Bytes of the current frame's header seen so far. */
  private readonly head = Buffer.alloc(FRAME_HEADER);
  private have = 0;
  private wanted = false;
  sent = false;

  constructor(private readonly write: Write) {}

  private get atBoundary(): boolean {
    return this.left === 0 && this.have === 0;
  }

  /** Follows CHUNK from FROM; with STOP, up to the first frame boundary. Returns where it stopped. */
  private follow(chunk: Buffer, from: number, stop: boolean): number {
    let pos = from;
    while (pos < chunk.length) {
      if (this.left > 0) {
        const n = Math.min(this.left, chunk.length - pos);
        this.left -= n;
        pos += n;
        continue;
      }
      if (stop && this.have === 0) return pos;
      const n = Math.min(FRAME_HEADER - this.have, chunk.length - pos);
      chunk.copy(this.head, this.have, pos, pos + n);
      this.have += n;
      pos += n;
      if (this.have === FRAME_HEADER) {
        this.left = this.head.readUIntBE(0, 3);
        this.have = 0;
      }
    }
    return pos;
  }

  private put(cb?: (e?: Error | null) => void): void {
    this.wanted = false;
    this.sent = true;
    this.write(NOTICE_FRAME, cb);
  }

  /** Passes the session's CHUNK on, with the notice in front of the first frame that starts after it was asked for. */
  pass(chunk: Buffer, cb: (e?: Error | null) => void): void {
    if (!this.wanted) {
      this.follow(chunk, 0, false);
      this.write(chunk, cb);
      return;
    }
    const at = this.follow(chunk, 0, true);
    if (!this.atBoundary) {
      this.write(chunk, cb); // the frame goes on past this chunk
      return;
    }
    if (at > 0) this.write(chunk.subarray(0, at));
    if (at === chunk.length) {
      this.put(cb);
      return;
    }
    this.put();
    this.follow(chunk, at, false);
    this.write(chunk.subarray(at), cb);
  }

  /** Puts the notice on the wire now, or after the frame being written. */
  send(): void {
    if (this.sent || this.wanted) return;
    if (this.atBoundary) this.put();
    else this.wanted = true;
  }
}

export interface DrainOptions {
  /** The session's notice, when its bytes pass through us; without, nghttp2's GOAWAY goes first. */
  notice?: ShutdownNotice;
  /** Without a notice: how long the peer has to read the first GOAWAY before the real one. */
  graceMs?: number;
}

export function drainSession(session: http2.Http2Session, opts: DrainOptions = {}): void {
  if (session.closed || session.destroyed) return;
  let done = false;
  const close = () => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    if (!session.closed && !session.destroyed) session.close();
  };
  const timer = setTimeout(close, opts.notice ? NOTICE_ANSWER_MAX_MS : opts.graceMs ?? GOAWAY_GRACE_MS);
  timer.unref();
  if (opts.notice) {
    opts.notice.send();
    try {
      // The answer comes once the peer read what went before it: the notice.
      session.ping((err) => { if (!err) close(); });
    } catch {
      close(); // closing already
    }
    return;
  }
  try {
    session.goaway(H2_ERR.NO_ERROR, MAX_STREAM_ID);
  } catch {
    // Already going away.
  }
}
