/**
 * Cross-node mTLS in the node proxy: a connection the kernel marked for the
 * tunnel (its backend is on another node) becomes one CONNECT stream on the
 * pooled TunnelClient to that node's endpoint, carrying the caller's
 * identity; the connection is handed to the native relay, so its bytes
 * never enter JavaScript. A stream the peer refuses (policy, not its
 * workload) resets the client connection.
 *
 * The proxy's own upstream connections (an L7-routed Service whose chosen
 * backend is on another node) go the same way: `dial` opens them as CONNECT
 * streams on the same pooled client, for the caller the proxy routes for.
 */
import type { Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { CredentialStore, TunnelClient } from '../tunnel/index.js';
import { TUNNEL_PORT } from '../tunnel/protocol.js';
import { relayBinding, takeSocket, type Carried } from '../relay/index.js';
import { containsAddress, mustParseCidr, type Cidr } from '../net/ipam.js';
import { plainDial, plainDialFrom, type Caller, type Dial, type Endpoint, type OriginalDestination, type ReadInto, type UpstreamStream } from './index.js';
import type { TunnelPush } from './messages.js';

export interface TunnelledFlow {
  at: string;
  client: string;
  clientIp: string;
  clientPort: number;
  dst: string;
  peerNode: string;
  peerId?: string;
  bytesOut: number;
  bytesIn: number;
  durationMs: number;
  error?: string;
}

export class TunnelForwarder {
  private client: TunnelClient | undefined;
  private credentials: CredentialStore | undefined;
  private peers: Array<{ cidr: Cidr; node: string; host: string }> = [];
  private dsts: ReadonlySet<string> = new Set();
  private podCidr: Cidr | undefined;
  private readonly fromGateway: Dial;
  private key = '';
  /** streams/failed/noPeer: both paths; upstreams: the proxy's own (L7) connections among them. */
  readonly stats = { streams: 0, failed: 0, noPeer: 0, upstreams: 0 };

  /** localAddress: the proxy's listen address, the node's pod-subnet gateway. */
  constructor(private readonly onFlow: (f: TunnelledFlow) => void, localAddress?: string) {
    this.fromGateway = localAddress ? plainDialFrom(localAddress) : plainDial;
  }

  configure(t: TunnelPush | undefined): void {
    this.peers = (t?.peers ?? []).map(([c, node, host]) => ({ cidr: mustParseCidr(c), node, host }));
    this.dsts = new Set(t?.dsts ?? []);
    this.podCidr = t?.podCidr ? mustParseCidr(t.podCidr) : undefined;
    const key = t ? `${t.svidDir}|${t.trustDomain}` : '';
    if (key === this.key) return;
    this.client?.close();
    this.credentials?.close();
    this.client = undefined;
    this.credentials = undefined;
    this.key = key;
    if (!t) return;
    this.credentials = CredentialStore.fromDir(t.svidDir);
    this.client = new TunnelClient({ credentials: this.credentials, trustDomain: t.trustDomain, connectTimeoutMs: 3000 });
  }

  private peerOf(ip: string): { cidr: Cidr; node: string; host: string } | undefined {
    return this.peers.find((p) => containsAddress(p.cidr, ip));
  }

  async forward(socket: Socket, head: Buffer, orig: OriginalDestination): Promise<void> {
    const peer = this.peerOf(orig.dst.ip);
    if (!this.client || !peer) {
      // Fail closed: a connection meant for the tunnel never goes out in plaintext from here.
      this.stats.noPeer++;
      socket.resetAndDestroy();
      return;
    }
    const started = Date.now();
    const clientIp = socket.remoteAddress?.replace(/^::ffff:/, '') ?? '';
    const clientPort = socket.remotePort ?? 0;
    let taken: { fd: number; pending: Buffer };
    try {
      taken = takeSocket(socket);
    } catch {
      socket.destroy();
      return;
    }
    this.stats.streams++;
    const { response, done } = this.client.forward(
      taken.fd, { host: peer.host, port: TUNNEL_PORT, ...(peer.node ? { node: peer.node } : {}) }, orig.dst,
      { sourceId: orig.client.identity, sourceIp: clientIp }, taken.pending.length ? Buffer.concat([head, taken.pending]) : head,
    );
    let refused: string | undefined;
    response.catch((e: Error) => { refused = e.message; this.stats.failed++; });
    const r = await done;
    this.onFlow({
      at: new Date(started).toISOString(), client: orig.client.identity, clientIp, clientPort, dst: `${orig.dst.ip}:${orig.dst.port}`,
      peerNode: peer.node || peer.host, ...(r.peerId ? { peerId: r.peerId } : {}), bytesOut: r.bytesOut, bytesIn: r.bytesIn,
      durationMs: Date.now() - started, ...(refused ?? r.error ? { error: refused ?? r.error } : {}),
    });
  }

  /**
   * The proxy's dial: a backend the kernel would tunnel (another node's
   * workload whose namespace does not say disable) is reached through the
   * tunnel with the caller's identity, anything else over plain TCP. Fails
   * closed like forward(): no peer, no connection.
   */
  /** Whether a connection to ip goes through the tunnel (and so speaks for one caller). */
  tunnels(ip: string): boolean {
    return this.dsts.has(ip);
  }

  /** A whole connection to ep in the relay (TCP pass-through): through the tunnel, or plain, as dial() would open it. */
  carry(ep: Endpoint, caller: Caller, fd: number, head: Buffer): Promise<Carried> {
    if (!this.tunnels(ep.ip)) {
      const plain = this.podCidr && containsAddress(this.podCidr, ep.ip) ? this.fromGateway : plainDial;
      return plain.carry!(ep, caller, fd, head);
    }
    const peer = this.peerOf(ep.ip);
    if (!this.client || !peer) {
      this.stats.noPeer++;
      relayBinding().closeFd(fd);
      return Promise.resolve({ bytesIn: 0, bytesOut: 0, durationMs: 0, connected: false, error: `no tunnel to ${ep.ip}` });
    }
    this.stats.streams++;
    const { response, done } = this.client.forward(
      fd, { host: peer.host, port: TUNNEL_PORT, ...(peer.node ? { node: peer.node } : {}) }, ep, { sourceId: caller.identity, ...(caller.ip ? { sourceIp: caller.ip } : {}) }, head,
    );
    let answered = false;
    response.then(() => { answered = true; }, () => { this.stats.failed++; });
    return done.then((r) => ({ bytesIn: r.bytesOut, bytesOut: r.bytesIn, durationMs: r.durationMs, connected: answered, ...(r.error ? { error: r.error } : {}) }));
  }

  dial(ep: Endpoint, caller: Caller, into?: ReadInto): UpstreamStream {
    if (!this.tunnels(ep.ip)) {
      // A workload of another node in plaintext (its namespace says disable) answers only pod-CIDR sources.
      return this.podCidr && containsAddress(this.podCidr, ep.ip) ? this.fromGateway(ep, caller, into) : plainDial(ep, caller, into);
    }
    const peer = this.peerOf(ep.ip);
    if (!this.client || !peer) {
      this.stats.noPeer++;
      const dead = new PassThrough();
      process.nextTick(() => dead.destroy(Object.assign(new Error(`no tunnel to ${ep.ip}`), { code: 'EMTLSNOPEER' })));
      return dead;
    }
    const started = Date.now();
    this.stats.streams++;
    this.stats.upstreams++;
    const { stream, response, done } = this.client.open(
      { host: peer.host, port: TUNNEL_PORT, ...(peer.node ? { node: peer.node } : {}) }, ep, { sourceId: caller.identity, ...(caller.ip ? { sourceIp: caller.ip } : {}) },
    );
    let error: string | undefined;
    // 'connect' (see the proxy's dial contract) once the peer node delivered to the backend; a refusal before it is a connect error.
    response.then(() => { stream.emit('connect'); }, (e: Error) => { error = e.message; this.stats.failed++; stream.destroy(Object.assign(e, { code: 'EMTLSREFUSED' })); });
    void done.then((r) => this.onFlow({
      at: new Date(started).toISOString(), client: caller.identity, clientIp: caller.ip ?? '', clientPort: 0, dst: `${ep.ip}:${ep.port}`,
      peerNode: peer.node || peer.host, ...(r.peerId ? { peerId: r.peerId } : {}), bytesOut: r.bytesOut, bytesIn: r.bytesIn,
      durationMs: Date.now() - started, ...(error ?? r.error ? { error: error ?? r.error } : {}),
    }));
    return stream;
  }

  close(): void {
    this.client?.close();
    this.credentials?.close();
  }
}
