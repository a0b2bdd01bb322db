/**
 * The receiving end of the tunnel: a TLS 1.3 listener that requires a client
 * certificate chained to the mesh's trust bundle and a SPIFFE ID of a node of
 * this trust domain. Each CONNECT stream is checked (`authorize`: the peer
 * node, the source workload it vouches for, the destination) and then
 * connected to its destination on this node; bytes are piped both ways with
 * half-close carried across (END_STREAM <-> FIN).
 */
import { EventEmitter } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { CredentialStore } from './credentials.js';
import { nodeOf, spiffeIdFromSan } from './ids.js';
import { ALPN, H_REASON, H_SOURCE_ID, H_SOURCE_IP, SESSION_WINDOW, SETTINGS, MAX_SESSION_MEMORY_MB, parseAuthority, type Destination } from './protocol.js';
import { pipeStream } from './pipe.js';
import { drainSession } from '../net/h2-drain.js';

export interface TunnelRequest {
  peerId: string;
  peerNode: string;
  sourceId: string | undefined;
  sourceIp: string | undefined;
  dst: Destination;
}

/** A refusal may name the NetworkPolicy that decided it (observe records it on the drop). */
export type Verdict = { allow: true } | { allow: false; reason: string; policy?: { ref: number; rule: number; name: string } };

export interface TunnelServerOptions {
  credentials: CredentialStore;
  trustDomain: string;
  /** Policy for one stream; default: allow. */
  authorize?: (r: TunnelRequest) => Verdict | Promise<Verdict>;
  /** How to reach a destination on this node; default net.connect. */
  dial?: (dst: Destination) => net.Socket;
}

export interface TunnelFlow extends TunnelRequest {
  bytesIn: number; // from the peer to the destination
  bytesOut: number;
  durationMs: number;
  error?: string;
  /** Refused before delivery (authorize said no): the reason is in `error`, the deciding NetworkPolicy here. */
  denied?: { policy?: { ref: number; rule: number; name: string } };
}

/**
 * Events: 'flow' (TunnelFlow, at the end of each stream), 'denied'
 * (TunnelRequest & {reason}), 'rejected' ({peerId, reason}: a session refused).
 */
export class TunnelServer extends EventEmitter {
  readonly server: http2.Http2SecureServer;
  readonly stats = { sessions: 0, sessionsRejected: 0, streams: 0, streamsDenied: 0, dialErrors: 0, active: 0 };
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly onRotate: () => void;

  constructor(private readonly opts: TunnelServerOptions) {
    super();
    const creds = opts.credentials;
    this.server = http2.createSecureServer({
      ...creds.current.options,
      requestCert: true,
      rejectUnauthorized: true,
      ALPNProtocols: [ALPN],
      allowHTTP1: false,
      settings: SETTINGS,
      maxSessionMemory: MAX_SESSION_MEMORY_MB,
    });
    // New handshakes take the rotated certificate; sessions already made keep theirs.
    this.onRotate = () => this.server.setSecureContext({ ...creds.current.options });
    creds.on('rotate', this.onRotate);
    this.server.on('session', (s) => this.onSession(s));
    this.server.on('stream', (stream, headers) => void this.onStream(stream, headers));
    this.server.on('tlsClientError', () => { this.stats.sessionsRejected++; });
    this.server.on('sessionError', () => undefined);
  }

  /** `fd`: a listening socket made elsewhere (SO_REUSEPORT, ../net/reuseport.ts) instead of host:port. */
  listen(port: number, host: string, fd?: number): Promise<{ port: number }> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      const onListening = () => {
        this.server.off('error', reject);
        this.server.on('error', (e) => this.emit('serverError', e));
        resolve({ port: (this.server.address() as net.AddressInfo).port });
      };
      if (fd === undefined) this.server.listen(port, host, onListening);
      else this.server.listen({ fd }, onListening);
    });
  }

  /**
   * Handing over to a newer endpoint: no new sessions here (sessions made
   * keep working); `goaway()` later sends their peers to the new one.
   */
  stopListening(): void {
    if (this.server.listening) this.server.close();
  }

  /** Peers open no new streams here (they make a new session) while the streams in flight finish. */
  goaway(): void {
    for (const s of this.sessions) drainSession(s);
  }

  /** Sessions still open (draining: the endpoint is done when none is). */
  get openSessions(): number {
    return this.sessions.size;
  }

  private peerOf(session: http2.Http2Session): { id: string; node: string } | { reason: string } {
    const sock = session.socket as TLSSocket;
    const id = spiffeIdFromSan(sock.getPeerCertificate?.()?.subjectaltname);
    if (!id) return { reason: 'peer certificate carries no SPIFFE ID' };
    const node = nodeOf(id, this.opts.trustDomain);
    if (!node) return { reason: `peer ${id} is not a node of trust domain ${this.opts.trustDomain}` };
    return { id, node };
  }

  private onSession(session: http2.ServerHttp2Session): void {
    session.on('error', () => undefined);
    const peer = this.peerOf(session);
    if ('reason' in peer) {
      this.stats.sessionsRejected++;
      this.emit('rejected', { peerId: spiffeIdFromSan((session.socket as TLSSocket).getPeerCertificate?.()?.subjectaltname), reason: peer.reason });
      session.destroy();
      return;
    }
    this.stats.sessions++;
    this.sessions.add(session);
    session.once('close', () => this.sessions.delete(session));
    session.once('connect', () => { try { session.setLocalWindowSize(SESSION_WINDOW); } catch { /* closing */ } });
  }

  private async onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): Promise<void> {
    stream.on('error', () => undefined);
    const peer = this.peerOf(stream.session!);
    if ('reason' in peer) { stream.close(http2.constants.NGHTTP2_REFUSED_STREAM); return; }
    const dst = parseAuthority(headers[':authority']);
    if (headers[':method'] !== 'CONNECT' || !dst) {
      stream.respond({ ':status': headers[':method'] !== 'CONNECT' ? 405 : 400 }, { endStream: true });
      return;
    }
    const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);
    const req: TunnelRequest = { peerId: peer.id, peerNode: peer.node, sourceId: one(headers[H_SOURCE_ID]), sourceIp: one(headers[H_SOURCE_IP]), dst };
    this.stats.streams++;
    let verdict: Verdict;
    try {
      verdict = this.opts.authorize ? await this.opts.authorize(req) : { allow: true };
    } catch (e) {
      verdict = { allow: false, reason: `policy error: ${(e as Error).message}` };
    }
    if (stream.destroyed) return;
    if (!verdict.allow) {
      this.stats.streamsDenied++;
      this.emit('denied', { ...req, reason: verdict.reason, ...(verdict.policy ? { policy: verdict.policy } : {}) });
      stream.respond({ ':status': 403, [H_REASON]: verdict.reason.slice(0, 200) }, { endStream: true });
      return;
    }
    const t0 = performance.now();
    const up = this.opts.dial ? this.opts.dial(dst) : net.connect({ host: dst.ip, port: dst.port, allowHalfOpen: true });
    up.setNoDelay(true);
    let connected = false;
    up.once('connect', () => {
      connected = true;
      if (stream.destroyed) { up.destroy(); return; }
      stream.respond({ ':status': 200 });
      this.stats.active++;
      pipeStream(stream, up, (r) => {
        this.stats.active--;
        this.emit('flow', { ...req, bytesIn: r.aToB, bytesOut: r.bToA, durationMs: performance.now() - t0, error: r.error } satisfies TunnelFlow);
      });
    });
    up.once('error', (e) => {
      if (connected) return; // pipeStream handles errors after connect
      this.stats.dialErrors++;
      if (!stream.destroyed && !stream.headersSent) stream.respond({ ':status': 502, [H_REASON]: (e as NodeJS.ErrnoException).code ?? 'dial failed' }, { endStream: true });
    });
    stream.once('close', () => { if (!connected) up.destroy(); });
  }

  /** Stops accepting; open streams finish unless `force`. */
  async close(force = false): Promise<void> {
    this.opts.credentials.off('rotate', this.onRotate);
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    for (const s of this.sessions) (force ? s.destroy() : s.close());
    await closed;
  }
}
