/**
 * The sending end of the tunnel: one HTTP/2 session over TLS 1.3 per peer
 * node, made on first use, reused by every connection to that node, made
 * again when it fails or is closed. The server must present a node SVID of
 * this trust domain (of the node we meant, when we know it). When our own
 * certificate rotates, pooled sessions are drained: they finish their
 * streams with the old certificate, and new streams go to a new session
 * that presents the new one (a session must not outlive its certificate).
 *
 * The sessions and the bytes live in the native relay (src/relay); this
 * class decides who the peer must be and hands the relay each connection:
 * a socket pair for a stream JavaScript reads and writes (`open`), or the
 * caller's own TCP connection, whose bytes never enter JavaScript
 * (`forward`). A stream the peer refused unprocessed (REFUSED_STREAM, as in
 * its endpoint's handover) is opened again on a new session with the bytes
 * already sent.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { CredentialStore } from './credentials.js';
import { nodeOf, spiffeIdFromUris } from './ids.js';
import { authority, type Destination } from './protocol.js';
import { Ev, relay, type RelayEvent } from '../relay/index.js';

export interface Peer {
  /** The peer node's tunnel listener. */
  host: string;
  port: number;
  /** The node we expect to find there; any node of the trust domain when unset. */
  node?: string;
}

export interface OpenOptions {
  sourceId?: string;
  sourceIp?: string;
}

export interface TunnelClientOptions {
  credentials: CredentialStore;
  trustDomain: string;
  connectTimeoutMs?: number;
}

export class TunnelError extends Error {
  constructor(readonly status: number | undefined, message: string) {
    super(message);
  }
}

/** How a forwarded connection ended (bytes: from the caller, to the caller). */
export interface ForwardResult {
  bytesOut: number;
  bytesIn: number;
  durationMs: number;
  peerId: string | undefined;
  error?: string;
}

interface StreamState {
  key: string;
  dst: Destination;
  answered: boolean;
  peerId?: string;
  onAnswer(status: number, reason: string | null, peerId: string | undefined): void;
  onEnd(e: RelayEvent): void;
}

/** Events: 'session' ({peer, peerId}), 'sessionError' ({peer, error}). */
export class TunnelClient extends EventEmitter {
  private readonly r = relay();
  private readonly id: number;
  private readonly onRotate: () => void;
  /** The node each peer address must be, from the latest open() to it. */
  private readonly expect = new Map<string, Peer>();
  private readonly streams = new Map<number, StreamState>();
  /** Sessions made or being made, by id: the peer address each is for. */
  private readonly pooled = new Map<number, string>();
  private closed = false;
  readonly stats = { sessionsOpened: 0, sessionsFailed: 0, streams: 0, streamsFailed: 0 };

  constructor(private readonly opts: TunnelClientOptions) {
    super();
    this.id = this.r.b.clientNew(this.r.sink, opts.credentials.current.context, opts.connectTimeoutMs ?? 5000);
    this.r.on(this.id, (e) => this.onSessionEvent(e));
    this.onRotate = () => this.r.b.clientSetContext(this.id, opts.credentials.current.context);
    opts.credentials.on('rotate', this.onRotate);
  }

  private key(p: Peer): string {
    return `${p.host}:${p.port}`;
  }

  /** Sessions currently made or being made (for status and tests). */
  get sessions(): number {
    return this.pooled.size;
  }

  private checkServer(peer: Peer | undefined, uris: readonly string[]): { id: string } | { reason: string } {
    const id = spiffeIdFromUris(uris);
    if (!id) return { reason: 'tunnel peer presents no SPIFFE ID' };
    const node = nodeOf(id, this.opts.trustDomain);
    if (!node) return { reason: `tunnel peer ${id} is not a node of trust domain ${this.opts.trustDomain}` };
    if (peer?.node && node !== peer.node) return { reason: `tunnel peer is node ${node}, expected ${peer.node}` };
    return { id };
  }

  private onSessionEvent(e: RelayEvent): void {
    const peer = this.expect.get(this.pooled.get(e.id) ?? '');
    switch (e.type) {
      case Ev.SessionNew:
        this.stats.sessionsOpened++;
        this.pooled.set(e.id, e.s0 ?? '');
        break;
      case Ev.SessionVerify: {
        const v = this.checkServer(peer, e.list ?? []);
        this.r.b.sessionVerdict(e.id, 'id' in v, 'id' in v ? v.id : null, 'reason' in v ? v.reason : null);
        break;
      }
      case Ev.SessionReady:
        this.emit('session', { peer });
        break;
      case Ev.SessionFailed:
        this.pooled.delete(e.id);
        if (e.n1) {
          this.stats.sessionsFailed++;
          this.emit('sessionError', { peer, error: new Error(e.s0 ?? 'tunnel session failed') });
        }
        break;
    }
  }

  private track(id: number, st: StreamState): void {
    this.streams.set(id, st);
    this.r.on(id, (e) => {
      if (e.type === Ev.Answer) {
        st.answered = true;
        st.peerId = e.s1 ?? undefined;
        if (e.status !== 200) this.stats.streamsFailed++;
        st.onAnswer(e.status, e.s0, st.peerId);
      } else if (e.type === Ev.StreamEnd) {
        this.r.off(id);
        this.streams.delete(id);
        if (!st.answered) this.stats.streamsFailed++;
        st.onEnd(e);
      }
    });
  }

  private refusal(key: string, dst: Destination, status: number, reason: string | null): TunnelError {
    return new TunnelError(status, `tunnel to ${authority(dst)} via ${key}: ${status}${reason ? ` (${reason})` : ''}`);
  }

  /**
   * A CONNECT stream to dst through the peer node, as a socket this thread
   * reads and writes. The stream is usable at once (bytes written before
   * the answer are buffered); `response` settles with the peer's answer: the
   * peer ID on 200, a TunnelError otherwise, and the stream is then destroyed.
   */
  open(peer: Peer, dst: Destination, o: OpenOptions = {}): { stream: net.Socket; response: Promise<{ peerId: string | undefined }>; done: Promise<ForwardResult> } {
    const key = this.key(peer);
    this.expect.set(key, peer);
    const b = this.r.b;
    const [mine, theirs] = b.socketPair();
    const stream = new net.Socket({ fd: mine, readable: true, writable: true, allowHalfOpen: true });
    this.stats.streams++;
    let settle!: { resolve(v: { peerId: string | undefined }): void; reject(e: Error): void };
    const response = new Promise<{ peerId: string | undefined }>((resolve, reject) => { settle = { resolve, reject }; });
    response.catch(() => undefined);
    let finish!: (r: ForwardResult) => void;
    const done = new Promise<ForwardResult>((resolve) => { finish = resolve; });
    if (this.closed) {
      b.closeFd(theirs);
      settle.reject(new TunnelError(undefined, 'the tunnel client is closed'));
      finish({ bytesOut: 0, bytesIn: 0, durationMs: 0, peerId: undefined, error: 'the tunnel client is closed' });
      stream.destroy();
      return { stream, response, done };
    }
    const id = b.streamOpen(this.r.sink, this.id, theirs, false, peer.host, peer.port, authority(dst), o.sourceId ?? null, o.sourceIp ?? null, null);
    const st: StreamState = {
      key, dst, answered: false,
      onAnswer: (status, reason, peerId) => {
        if (status === 200) {
          settle.resolve({ peerId });
          return;
        }
        settle.reject(this.refusal(key, dst, status, reason));
        stream.destroy();
      },
      onEnd: (e) => {
        if (!e.status) {
          settle.reject(new TunnelError(undefined, `tunnel stream to ${authority(dst)} closed before an answer (${e.s0 ?? 'no code'})`));
          stream.destroy();
        } else if (e.s0 && !this.closed) {
          // Reset after the answer: the reader sees an error, not a clean end (closing the client ends its streams quietly).
          stream.destroy(Object.assign(new Error(`tunnel stream to ${authority(dst)}: ${e.s0}`), { code: 'ERR_TUNNEL_STREAM' }));
        } else if (e.s0) {
          stream.destroy();
        }
        finish({ bytesOut: e.n1, bytesIn: e.n2, durationMs: e.ms, peerId: st.peerId, ...(e.s0 ? { error: e.s0 } : {}) });
      },
    };
    this.track(id, st);
    return { stream, response, done };
  }

  /**
   * The caller's TCP connection (`fd`, the relay's from now on, and the
   * bytes already read from it) into a CONNECT stream: its bytes never
   * enter JavaScript. A refusal or a failure resets the connection.
   */
  forward(fd: number, peer: Peer, dst: Destination, o: OpenOptions, head: Buffer): { response: Promise<{ peerId: string | undefined }>; done: Promise<ForwardResult> } {
    const key = this.key(peer);
    this.expect.set(key, peer);
    this.stats.streams++;
    let settle!: { resolve(v: { peerId: string | undefined }): void; reject(e: Error): void };
    const response = new Promise<{ peerId: string | undefined }>((resolve, reject) => { settle = { resolve, reject }; });
    response.catch(() => undefined);
    let finish!: (r: ForwardResult) => void;
    const done = new Promise<ForwardResult>((resolve) => { finish = resolve; });
    if (this.closed) {
      this.r.b.closeFd(fd);
      settle.reject(new TunnelError(undefined, 'the tunnel client is closed'));
      finish({ bytesOut: 0, bytesIn: 0, durationMs: 0, peerId: undefined, error: 'the tunnel client is closed' });
      return { response, done };
    }
    const id = this.r.b.streamOpen(this.r.sink, this.id, fd, true, peer.host, peer.port, authority(dst), o.sourceId ?? null, o.sourceIp ?? null, head.length ? head : null);
    const st: StreamState = {
      key, dst, answered: false,
      onAnswer: (status, reason, peerId) => (status === 200 ? settle.resolve({ peerId }) : settle.reject(this.refusal(key, dst, status, reason))),
      onEnd: (e) => {
        if (!e.status) settle.reject(new TunnelError(undefined, `tunnel stream to ${authority(dst)} closed before an answer (${e.s0 ?? 'no code'})`));
        finish({ bytesOut: e.n1, bytesIn: e.n2, durationMs: e.ms, peerId: st.peerId, ...(e.s0 ? { error: e.s0 } : {}) });
      },
    };
    this.track(id, st);
    return { response, done };
  }

  /**
   * Sessions made with the previous certificate take no new streams; they
   * close when their streams end (never at once: a stream still queued to
   * open on one must be answered, not refused).
   */
  drain(): void {
    this.r.b.clientSetContext(this.id, this.opts.credentials.current.context);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.opts.credentials.off('rotate', this.onRotate);
    this.r.b.clientClose(this.id);
    this.r.off(this.id);
    this.pooled.clear();
  }
}
