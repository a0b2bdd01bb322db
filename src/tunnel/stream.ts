/**
 * A tunnel CONNECT stream as its user sees it: one Duplex that survives a
 * refusal. HTTP/2 guarantees that a stream refused before any answer
 * (REFUSED_STREAM, or never sent because its session went away) was not
 * processed by the peer (RFC 9113, 8.7), so it is opened again, on whatever
 * session the pool gives then, and the bytes written before the answer are
 * written again. A peer endpoint handing over to its next generation refuses
 * the streams that cross its GOAWAY (src/net/h2-drain.ts); with this, no
 * tunnelled connection notices.
 *
 * Bytes written before the answer are kept (up to KEEP_MAX_BYTES; past it,
 * a refusal fails the stream as a plain HTTP/2 stream would) and dropped at
 * the first answer: from then on the stream is the peer's and is never
 * replayed.
 */
import http2 from 'node:http2';
import { Duplex } from 'node:stream';

/** What one attempt needs from the client: a new HTTP/2 stream, and whether its session got as far as connecting. */
export interface Attempt {
  stream: http2.ClientHttp2Stream;
  /** The attempt's session completed its handshake (a stream on a session that never did is not worth replaying). */
  connected: () => boolean;
  /** The SPIFFE ID its session's peer presented. */
  peerId: () => string | undefined;
  /** Its session's peer announced a graceful shutdown (GOAWAY, NO_ERROR, last stream id 2^31-1) before refusing anything. */
  goingAway: () => boolean;
}

export interface TunnelStreamOptions {
  /** Opens one attempt on the pool's current session for the peer. */
  open: () => Attempt;
  /** Whether a refused attempt may be made again now (the client is not closed). */
  mayReplay: () => boolean;
  /** The peer's answer to an attempt (its :status and headers). */
  onAnswer: (headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader, attempt: Attempt) => void;
  /** An attempt ended without an answer (its error, if it had one) and will not be made again. */
  onGiveUp: (error: Error | undefined, rstCode: number | undefined, attempts: number) => void;
  onReplay?: () => void;
}

/** At most this many attempts: refusals come from a peer going away, and the next session is a new peer. */
export const MAX_ATTEMPTS = 4;
/** Bytes written before the answer that are kept for a replay. */
export const KEEP_MAX_BYTES = 256 << 10;

export class TunnelStream extends Duplex {
  /** The last attempt's RST_STREAM code, once it closed. */
  rstCode: number | undefined;
  /** Attempts made (1 when nothing was refused). */
  attempts = 0;
  private current!: Attempt;
  private kept: Buffer[] | undefined = [];
  private keptBytes = 0;
  private answered = false;
  private ended = false;
  /** A write waiting for the current attempt's 'drain'. */
  private waiting: (() => void) | undefined;

  constructor(private readonly opts: TunnelStreamOptions) {
    super({ allowHalfOpen: true });
    this.attempt();
  }

  private get h2(): http2.ClientHttp2Stream {
    return this.current.stream;
  }

  private attempt(): void {
    this.attempts++;
    const a = this.opts.open();
    this.current = a;
    const s = a.stream;
    let error: Error | undefined;
    s.on('error', (e) => { error = e; });
    s.once('response', (h) => {
      if (Number(h[':status']) === 200) {
        this.answered = true;
        this.kept = undefined;
      }
      this.opts.onAnswer(h, a);
    });
    s.on('data', (d: Buffer) => {
      if (!this.push(d)) s.pause();
    });
    s.once('end', () => this.push(null));
    s.on('drain', () => this.release());
    s.once('close', () => this.attemptClosed(a, error));
    for (const b of this.kept ?? []) s.write(b);
    if (this.ended) s.end();
    // A write that waited for the refused attempt's 'drain' goes on once the new one takes the kept bytes.
    if (this.waiting && !s.writableNeedDrain) this.release();
  }

  private attemptClosed(a: Attempt, error: Error | undefined): void {
    if (a !== this.current || this.destroyed) return;
    const s = a.stream;
    // Refused by a peer going away (a handover), or never sent because our session closed after its GOAWAY. A
    // peer that refuses streams without announcing its shutdown first is rejecting us, not leaving: not asked again.
    const refused = (s.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM && a.goingAway()) || (s.pending && a.connected());
    if (!this.answered && refused && this.kept && this.attempts < MAX_ATTEMPTS && this.opts.mayReplay()) {
      this.opts.onReplay?.();
      this.attempt();
      return;
    }
    this.rstCode = s.rstCode;
    if (!this.answered) {
      this.opts.onGiveUp(error, s.rstCode, this.attempts);
      this.destroy(error);
      return;
    }
    if (error || (s.rstCode !== undefined && s.rstCode !== http2.constants.NGHTTP2_NO_ERROR)) {
      this.destroy(error);
      return;
    }
    // Closed cleanly: both ends are done; once the reader has taken what is left, so is this stream.
    if (this.readableEnded) this.destroy();
    else this.once('end', () => this.destroy());
  }

  private release(): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    if (!this.answered && this.kept) {
      this.keptBytes += chunk.length;
      if (this.keptBytes <= KEEP_MAX_BYTES) this.kept.push(chunk);
      else this.kept = undefined;
    }
    if (this.h2.write(chunk)) cb();
    else this.waiting = () => cb();
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.ended = true;
    this.h2.end();
    cb();
  }

  override _read(): void {
    this.h2.resume();
  }

  override _destroy(err: Error | null, cb: (e: Error | null) => void): void {
    const s = this.current?.stream;
    if (s && !s.destroyed) s.destroy();
    this.release();
    cb(err);
  }
}
