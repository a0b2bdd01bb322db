/**
 * The sending end of the tunnel: one HTTP/2 session over TLS 1.3 per peer
 * node, made on first use, reused by every connection to that node, made
 * again when it fails or is closed. The server must present a node SVID of
 * this trust domain (of the node we meant, when we know it). When our own
 * certificate rotates, pooled sessions are drained: they finish their
 * streams with the old certificate, and new streams go to a new session
 * that presents the new one (a session must not outlive its certificate).
 */
import { EventEmitter } from 'node:events';
import http2 from 'node:http2';
import tls from 'node:tls';
import type { CredentialStore } from './credentials.js';
import { nodeOf, spiffeIdFromSan } from './ids.js';
import { TunnelStream, type Attempt } from './stream.js';
import { MAX_STREAM_ID } from '../net/h2-drain.js';
import { ALPN, H_REASON, H_SOURCE_ID, H_SOURCE_IP, SESSION_WINDOW, SETTINGS, MAX_SESSION_MEMORY_MB, authority, type Destination } from './protocol.js';

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

interface Entry {
  session: http2.ClientHttp2Session;
  ready: Promise<void>;
  peerId?: string;
  /** Streams opened on it and not yet closed. */
  active: number;
  /** Its TLS and HTTP/2 handshakes completed. */
  connected: boolean;
  /** The peer announced a graceful shutdown (a GOAWAY that refuses nothing yet). */
  goingAway: boolean;
  /** Out of the pool: close once its last stream ends. */
  retiring?: boolean;
}

export class TunnelError extends Error {
  constructor(readonly status: number | undefined, message: string) {
    super(message);
  }
}

/** Events: 'session' ({peer, peerId}), 'sessionError' ({peer, error}). */
export class TunnelClient extends EventEmitter {
  private readonly pool = new Map<string, Entry>();
  private readonly onRotate: () => void;
  /** streamsReplayed: attempts made again after the peer refused them unprocessed (none of them failed a stream). */
  readonly stats = { sessionsOpened: 0, sessionsFailed: 0, streams: 0, streamsFailed: 0, streamsReplayed: 0 };
  private closed = false;

  constructor(private readonly opts: TunnelClientOptions) {
    super();
    this.onRotate = () => this.drain();
    opts.credentials.on('rotate', this.onRotate);
  }

  private key(p: Peer): string {
    return `${p.host}:${p.port}`;
  }

  /** Sessions currently pooled (for status and tests). */
  get sessions(): number {
    return this.pool.size;
  }

  private checkServer(peer: Peer, cert: tls.PeerCertificate): Error | undefined {
    const id = spiffeIdFromSan(cert.subjectaltname);
    if (!id) return new Error('tunnel peer presents no SPIFFE ID');
    const node = nodeOf(id, this.opts.trustDomain);
    if (!node) return new Error(`tunnel peer ${id} is not a node of trust domain ${this.opts.trustDomain}`);
    if (peer.node && node !== peer.node) return new Error(`tunnel peer is node ${node}, expected ${peer.node}`);
    return undefined;
  }

  private session(peer: Peer): Entry {
    const k = this.key(peer);
    const have = this.pool.get(k);
    if (have && !have.session.closed && !have.session.destroyed) return have;
    const creds = this.opts.credentials.current;
    const session = http2.connect(`https://${k}`, {
      settings: SETTINGS,
      maxSessionMemory: MAX_SESSION_MEMORY_MB,
      createConnection: () => tls.connect({
        host: peer.host,
        port: peer.port,
        secureContext: creds.context,
        minVersion: 'TLSv1.3',
        ALPNProtocols: [ALPN],
        servername: undefined,
        rejectUnauthorized: true,
        checkServerIdentity: (_h, cert) => this.checkServer(peer, cert),
      }),
    });
    this.stats.sessionsOpened++;
    const entry: Entry = {
      session,
      active: 0,
      connected: false,
      goingAway: false,
      ready: new Promise((resolve, reject) => {
        const t = setTimeout(() => { session.destroy(new Error(`tunnel to ${k}: no TLS session within ${this.opts.connectTimeoutMs ?? 5000} ms`)); }, this.opts.connectTimeoutMs ?? 5000);
        session.once('connect', () => {
          clearTimeout(t);
          entry.connected = true;
          entry.peerId = spiffeIdFromSan((session.socket as tls.TLSSocket).getPeerCertificate().subjectaltname);
          try { session.setLocalWindowSize(SESSION_WINDOW); } catch { /* closing */ }
          this.emit('session', { peer, peerId: entry.peerId });
          resolve();
        });
        session.once('close', () => { clearTimeout(t); reject(new Error(`tunnel to ${k} closed`)); });
      }),
    };
    entry.ready.catch(() => undefined);
    session.on('error', (e) => {
      this.stats.sessionsFailed++;
      this.emit('sessionError', { peer, error: e });
    });
    const forget = () => { if (this.pool.get(k) === entry) this.pool.delete(k); };
    session.once('close', forget);
    session.on('goaway', (code: number, lastStreamId: number) => {
      if (code === http2.constants.NGHTTP2_NO_ERROR && lastStreamId === MAX_STREAM_ID) entry.goingAway = true;
      forget();
    });
    this.pool.set(k, entry);
    return entry;
  }

  /**
   * A CONNECT stream to dst through the peer node. The stream is usable at
   * once (bytes written before the answer are buffered, and kept: a stream
   * the peer refuses unprocessed is opened again and they are written
   * again, see stream.ts); `response` settles with the peer's answer: the
   * peer ID on 200, a TunnelError otherwise, and the stream is then
   * destroyed.
   */
  open(peer: Peer, dst: Destination, o: OpenOptions = {}): { stream: TunnelStream; response: Promise<{ peerId: string | undefined }> } {
    const headers: http2.OutgoingHttpHeaders = { ':method': 'CONNECT', ':authority': authority(dst) };
    if (o.sourceId) headers[H_SOURCE_ID] = o.sourceId;
    if (o.sourceIp) headers[H_SOURCE_IP] = o.sourceIp;
    this.stats.streams++;
    let settle!: { resolve: (r: { peerId: string | undefined }) => void; reject: (e: Error) => void };
    const response = new Promise<{ peerId: string | undefined }>((resolve, reject) => { settle = { resolve, reject }; });
    response.catch(() => undefined);
    const fail = (e: Error) => { this.stats.streamsFailed++; settle.reject(e); };
    const stream: TunnelStream = new TunnelStream({
      open: () => this.attempt(peer, headers),
      mayReplay: () => !this.closed,
      onReplay: () => { this.stats.streamsReplayed++; },
      onAnswer: (h, a) => {
        const status = Number(h[':status']);
        if (status === 200) { settle.resolve({ peerId: a.peerId() }); return; }
        const reason = h[H_REASON];
        fail(new TunnelError(status, `tunnel to ${authority(dst)} via ${this.key(peer)}: ${status}${reason ? ` (${String(reason)})` : ''}`));
        stream.destroy();
      },
      onGiveUp: (error, rstCode, attempts) => fail(error ?? new TunnelError(undefined,
        `tunnel stream to ${authority(dst)} closed before an answer (${rstCode ?? 'no code'}${attempts > 1 ? `, after ${attempts} attempts` : ''})`)),
    });
    // A failure before the answer is reported through `response`; whoever pipes the stream listens for the rest.
    stream.on('error', () => undefined);
    return { stream, response };
  }

  /** One HTTP/2 stream for a TunnelStream, on the pool's current session to the peer. */
  private attempt(peer: Peer, headers: http2.OutgoingHttpHeaders): Attempt {
    const entry = this.session(peer);
    const stream = entry.session.request(headers, { endStream: false });
    entry.active++;
    stream.once('close', () => {
      entry.active--;
      if (entry.retiring && entry.active === 0) entry.session.close();
    });
    return { stream, connected: () => entry.connected, peerId: () => entry.peerId, goingAway: () => entry.goingAway };
  }

  /**
   * Sessions made with the previous certificate take no new streams; they
   * close when their streams end. Not close() at once: its GOAWAY would go
   * out ahead of a stream still queued to open, which nghttp2 then refuses
   * locally (REFUSED_STREAM) and its connection fails.
   */
  drain(): void {
    for (const [k, e] of this.pool) {
      this.pool.delete(k);
      e.retiring = true;
      if (e.active === 0) e.session.close();
    }
  }

  close(): void {
    this.closed = true;
    this.opts.credentials.off('rotate', this.onRotate);
    for (const e of this.pool.values()) e.session.destroy();
    this.pool.clear();
  }
}
