/**
 * Cross-node mTLS in the node proxy: a connection the kernel marked for the
 * tunnel (its backend is on another node) becomes one CONNECT stream on the
 * pooled TunnelClient to that node's endpoint, carrying the caller's
 * identity, and bytes are piped both ways without parsing. A stream the
 * peer refuses (policy, not its workload) resets the client connection.
 */
import type { Socket } from 'node:net';
import { CredentialStore, TunnelClient } from '../../tunnel/index.js';
import { TUNNEL_PORT } from '../../tunnel/protocol.js';
import { pipeStream } from '../../tunnel/pipe.js';
import { containsAddress, mustParseCidr, type Cidr } from '../../net/ipam.js';
import type { OriginalDestination } from '../../proxy/index.js';
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
  private key = '';
  readonly stats = { streams: 0, failed: 0, noPeer: 0 };

  constructor(private readonly onFlow: (f: TunnelledFlow) => void) {}

  configure(t: TunnelPush | undefined): void {
    this.peers = (t?.peers ?? []).map(([c, node, host]) => ({ cidr: mustParseCidr(c), node, host }));
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

  forward(socket: Socket, head: Buffer, orig: OriginalDestination): void {
    const peer = this.peers.find((p) => containsAddress(p.cidr, orig.dst.ip));
    if (!this.client || !peer) {
      // Fail closed: a connection meant for the tunnel never goes out in plaintext from here.
      this.stats.noPeer++;
      socket.resetAndDestroy();
      return;
    }
    const started = Date.now();
    const clientIp = socket.remoteAddress?.replace(/^::ffff:/, '') ?? '';
    const clientPort = socket.remotePort ?? 0;
    this.stats.streams++;
    const { stream, response } = this.client.open(
      { host: peer.host, port: TUNNEL_PORT, ...(peer.node ? { node: peer.node } : {}) }, orig.dst,
      { sourceId: orig.client.identity, sourceIp: clientIp },
    );
    let peerId: string | undefined;
    let refused: string | undefined;
    response.then((r) => { peerId = r.peerId; }, (e: Error) => { refused = e.message; this.stats.failed++; socket.resetAndDestroy(); });
    if (head.length) stream.write(head);
    pipeStream(socket, stream, (r) => this.onFlow({
      at: new Date(started).toISOString(), client: orig.client.identity, clientIp, clientPort, dst: `${orig.dst.ip}:${orig.dst.port}`,
      peerNode: peer.node || peer.host, ...(peerId ? { peerId } : {}), bytesOut: r.aToB + head.length, bytesIn: r.bToA,
      durationMs: Date.now() - started, ...(refused ?? r.error ? { error: refused ?? r.error } : {}),
    }));
    socket.resume();
  }

  close(): void {
    this.client?.close();
    this.credentials?.close();
  }
}
