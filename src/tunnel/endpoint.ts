/**
 * A node's receiving tunnel endpoint as the agent runs it: the TunnelServer
 * on NODE_ADDRESS:15008 with the node SVID (hot-reloaded from the directory
 * the identity manager renews), delivering only to workloads of this node —
 * an authenticated peer node gets no further than that, so the endpoint is
 * never an open relay into the node's network.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CredentialStore } from './credentials.js';
import { TunnelServer, type TunnelFlow, type TunnelRequest, type Verdict } from './server.js';
import { TUNNEL_PORT } from './protocol.js';

export interface EndpointOptions {
  svidDir: string;
  trustDomain: () => string;
  /** IPs of this node's workloads. */
  localIps: () => ReadonlySet<string>;
  /** Further policy (source identity → destination), when there is one. */
  authorize?: (r: TunnelRequest) => Verdict;
  host?: string;
  port?: number;
  /** Every stream that ended, or was refused (`denied`): observe records it as an mTLS flow or a drop. */
  onFlow?: (f: TunnelFlow) => void;
}

export class TunnelEndpoint {
  server: TunnelServer | undefined;
  credentials: CredentialStore | undefined;
  readonly recent: TunnelFlow[] = [];
  private timer: NodeJS.Timeout | undefined;
  lastError: string | undefined;

  constructor(private readonly o: EndpointOptions) {}

  /** Starts as soon as the node SVID is there (the agent asks for it at start). */
  start(): void {
    const attempt = () => {
      if (this.server || !existsSync(join(this.o.svidDir, 'cert.pem'))) return;
      void this.listen().catch((e: Error) => { this.lastError = e.message; this.server = undefined; });
    };
    this.timer = setInterval(attempt, 250);
    this.timer.unref();
    attempt();
  }

  private async listen(): Promise<void> {
    this.credentials = CredentialStore.fromDir(this.o.svidDir);
    const server = new TunnelServer({
      credentials: this.credentials,
      trustDomain: this.o.trustDomain(),
      authorize: (r) => {
        if (!this.o.localIps().has(r.dst.ip)) return { allow: false, reason: `${r.dst.ip} is no workload of this node` };
        return this.o.authorize ? this.o.authorize(r) : { allow: true };
      },
    });
    this.server = server;
    server.on('flow', (f: TunnelFlow) => this.record(f));
    server.on('denied', (d: TunnelRequest & { reason: string; policy?: { ref: number; rule: number; name: string } }) => {
      const { reason, policy, ...req } = d;
      this.record({ ...req, bytesIn: 0, bytesOut: 0, durationMs: 0, error: reason, denied: policy ? { policy } : {} });
    });
    await server.listen(this.o.port ?? TUNNEL_PORT, this.o.host ?? '0.0.0.0');
    this.lastError = undefined;
  }

  private record(f: TunnelFlow): void {
    this.recent.push(f);
    if (this.recent.length > 200) this.recent.shift();
    this.o.onFlow?.(f);
  }

  status(): Record<string, unknown> {
    const c = this.credentials?.current;
    return {
      listening: !!this.server?.server.listening, port: this.o.port ?? TUNNEL_PORT, error: this.lastError,
      spiffeId: c?.spiffeId, certExpiry: c?.notAfter.toISOString(), ...this.server?.stats,
    };
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.credentials?.close();
    await this.server?.close(true);
  }
}
