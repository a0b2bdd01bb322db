/**
 * The receiving end of the tunnel: a TLS 1.3 listener that requires a client
 * certificate chained to the mesh's trust bundle and a SPIFFE ID of a node of
 * this trust domain. Each CONNECT stream is checked (`authorize`: the peer
 * node, the source workload it vouches for, the destination) and then
 * connected to its destination on this node; bytes go both ways with
 * half-close carried across (END_STREAM <-> FIN).
 *
 * The sessions and the bytes live in the native relay (src/relay); this
 * class decides: which peers may hold a session, and what each stream gets.
 */
import { EventEmitter } from 'node:events';
import type { CredentialStore } from './credentials.js';
import { nodeOf, spiffeIdFromUris } from './ids.js';
import { parseAuthority, type Destination } from './protocol.js';
import { Ev, relay, type ListenerCounts, type RelayEvent } from '../relay/index.js';
import { EbmeshError } from '../errors.js';

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
}

export interface TunnelFlow extends TunnelRequest {
  bytesIn: number; // from the peer to the destination
  bytesOut: number;
  durationMs: number;
  error?: string;
  /** Refused before delivery (authorize said no): the reason is in `error`, the deciding NetworkPolicy here. */
  denied?: { policy?: { ref: number; rule: number; name: string } };
}

/** What the GOAWAY's two steps are apart: longer than any round trip between two nodes of a lab or a cluster. */
export const GOAWAY_GRACE_MS = 1000;

/**
 * Events: 'flow' (TunnelFlow, at the end of each stream), 'denied'
 * (TunnelRequest & {reason}), 'rejected' ({peerId, reason}: a session
 * refused), 'session' ({peerId, peerNode, serialNumber}: a session admitted).
 */
export class TunnelServer extends EventEmitter {
  readonly stats = { sessions: 0, sessionsRejected: 0, streams: 0, streamsDenied: 0, dialErrors: 0, active: 0 };
  private readonly r = relay();
  private readonly onRotate: () => void;
  private id = 0;
  private counts: ListenerCounts | undefined;
  private listeningNow = false;
  /** Admitted sessions' peers, by session id. */
  private readonly peers = new Map<number, { id: string; node: string }>();

  constructor(private readonly opts: TunnelServerOptions) {
    super();
    // New handshakes take the rotated certificate; sessions already made keep theirs.
    this.onRotate = () => { if (this.id) this.r.b.listenerSetContext(this.id, opts.credentials.current.context); };
    opts.credentials.on('rotate', this.onRotate);
  }

  /**
   * `reusePort`: listen with SO_REUSEPORT, so that the next proxy
   * generation's endpoint can listen beside this one during a handover.
   */
  listen(port: number, host: string, o: { reusePort?: boolean } = {}): Promise<{ port: number }> {
    const b = this.r.b;
    let lfd: number;
    try {
      lfd = b.listen(host, port, !!o.reusePort, 511);
    } catch (e) {
      return Promise.reject(new EbmeshError('EBMESH_SOCKET', `tunnel listener on ${host}:${port}: ${(e as Error).message}`, { cause: e }));
    }
    const bound = b.localPort(lfd);
    [this.id, this.counts] = b.listenerNew(this.r.sink, lfd, this.opts.credentials.current.context);
    this.r.on(this.id, (e) => this.onEvent(e));
    this.listeningNow = true;
    return Promise.resolve({ port: bound });
  }

  get listening(): boolean {
    return this.listeningNow;
  }

  /**
   * Handing over to a newer endpoint: no new sessions here (sessions made
   * keep working); `goaway()` later sends their peers to the new one.
   */
  stopListening(): void {
    if (!this.listeningNow) return;
    this.listeningNow = false;
    this.r.b.listenerStop(this.id);
  }

  /**
   * Peers open no new streams here (they make a new session) while the
   * streams in flight finish: a shutdown notice first, which refuses
   * nothing, and the real GOAWAY one round trip later (GOAWAY_GRACE_MS).
   */
  goaway(graceMs = GOAWAY_GRACE_MS): void {
    if (this.id) this.r.b.listenerGoaway(this.id, graceMs);
  }

  /** Sessions still open (draining: the endpoint is done when none is). */
  get openSessions(): number {
    return this.counts ? this.r.b.listenerCounts(this.counts)[0] : 0;
  }

  private peerOf(uris: readonly string[]): { id: string; node: string } | { reason: string; id?: string } {
    const id = spiffeIdFromUris(uris);
    if (!id) return { reason: 'peer certificate carries no SPIFFE ID' };
    const node = nodeOf(id, this.opts.trustDomain);
    if (!node) return { reason: `peer ${id} is not a node of trust domain ${this.opts.trustDomain}`, id };
    return { id, node };
  }

  private onEvent(e: RelayEvent): void {
    switch (e.type) {
      case Ev.SessionVerify: {
        const peer = this.peerOf(e.list ?? []);
        if ('reason' in peer) {
          this.stats.sessionsRejected++;
          this.emit('rejected', { peerId: peer.id, reason: peer.reason });
          this.r.b.sessionVerdict(e.id, false, null, peer.reason);
          return;
        }
        this.stats.sessions++;
        this.peers.set(e.id, peer);
        this.r.b.sessionVerdict(e.id, true, peer.id, null);
        this.emit('session', { peerId: peer.id, peerNode: peer.node, serialNumber: e.s0 ?? '' });
        return;
      }
      case Ev.TlsError:
        this.stats.sessionsRejected++;
        return;
      case Ev.SessionClosed:
      case Ev.SessionFailed:
        this.peers.delete(e.id);
        return;
      case Ev.StreamRequest:
        void this.onStream(e);
        return;
    }
  }

  private async onStream(e: RelayEvent): Promise<void> {
    const b = this.r.b;
    const stream = e.id;
    const peer = this.peers.get(e.n1);
    if (!peer) { b.streamVerdict(stream, 503, 'session not admitted', null, 0); return; }
    const dst = parseAuthority(e.s1 ?? undefined);
    if (e.s0 !== 'CONNECT' || !dst) {
      b.streamVerdict(stream, e.s0 !== 'CONNECT' ? 405 : 400, null, null, 0);
      return;
    }
    const req: TunnelRequest = { peerId: peer.id, peerNode: peer.node, sourceId: e.s2 ?? undefined, sourceIp: e.s3 ?? undefined, dst };
    this.stats.streams++;
    let connected = false;
    let ended = false;
    this.r.on(stream, (x) => {
      if (x.type === Ev.StreamConnected) {
        connected = true;
        this.stats.active++;
      } else if (x.type === Ev.DialError) {
        this.stats.dialErrors++;
      } else if (x.type === Ev.StreamEnd) {
        ended = true;
        this.r.off(stream);
        if (!connected) return;
        this.stats.active--;
        this.emit('flow', { ...req, bytesIn: x.n2, bytesOut: x.n1, durationMs: x.ms, ...(x.s0 ? { error: x.s0 } : {}) } satisfies TunnelFlow);
      }
    });
    let verdict: Verdict;
    try {
      verdict = this.opts.authorize ? await this.opts.authorize(req) : { allow: true };
    } catch (err) {
      verdict = { allow: false, reason: `policy error: ${(err as Error).message}` };
    }
    if (ended) return;
    if (!verdict.allow) {
      this.stats.streamsDenied++;
      this.emit('denied', { ...req, reason: verdict.reason, ...(verdict.policy ? { policy: verdict.policy } : {}) });
      b.streamVerdict(stream, 403, verdict.reason.slice(0, 200), null, 0);
      return;
    }
    b.streamVerdict(stream, 200, null, dst.ip, dst.port);
  }

  /** Stops accepting; open streams finish unless `force`. */
  async close(force = false): Promise<void> {
    this.opts.credentials.off('rotate', this.onRotate);
    this.listeningNow = false;
    if (this.id) this.r.b.listenerClose(this.id, force);
  }
}
