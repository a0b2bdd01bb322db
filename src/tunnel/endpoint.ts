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
  /**
   * Listen with SO_REUSEPORT, so that the next proxy generation's endpoint
   * listens beside this one during a handover and no peer is ever refused.
   * (An endpoint without it, of an older proxy, holds the port alone: the
   * next one binds as soon as it lets go, retrying every LISTEN_RETRY_MS.)
   */
  reusePort?: boolean;
}

const LISTEN_RETRY_MS = 50;

export class TunnelEndpoint {
  server: TunnelServer | undefined;
  credentials: CredentialStore | undefined;
  readonly recent: TunnelFlow[] = [];
  private timer: NodeJS.Timeout | undefined;
  private released = false;
  lastError: string | undefined;

  constructor(private readonly o: EndpointOptions) {}

  /** Starts as soon as the node SVID is there (the agent asks for it at start). */
  start(): void {
    const attempt = () => {
      if (this.server || this.released || !existsSync(join(this.o.svidDir, 'cert.pem'))) return;
      void this.listen().catch((e: Error) => {
        // Retried: what this attempt made goes (its certificate watcher too).
        this.lastError = e.message;
        void this.server?.close(true).catch(() => undefined);
        this.credentials?.close();
        this.server = undefined;
        this.credentials = undefined;
      });
    };
    this.timer = setInterval(attempt, LISTEN_RETRY_MS);
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
    const host = this.o.host ?? '0.0.0.0';
    const port = this.o.port ?? TUNNEL_PORT;
    await server.listen(port, host, { reusePort: !!this.o.reusePort });
    this.lastError = undefined;
  }

  /** Handover, first step: the new endpoint takes new sessions (it may already, beside us, with SO_REUSEPORT). */
  release(): void {
    this.released = true;
    clearInterval(this.timer);
    this.server?.stopListening();
  }

  /** Handover, second step: peers move their new streams to the new endpoint; ours finish. */
  goaway(): void {
    this.server?.goaway();
  }

  /** Sessions and streams still open here. */
  get busy(): number {
    return (this.server?.openSessions ?? 0) + (this.server?.stats.active ?? 0);
  }

  private record(f: TunnelFlow): void {
    this.recent.push(f);
    if (this.recent.length > 200) this.recent.shift();
    this.o.onFlow?.(f);
  }

  status(): Record<string, unknown> {
    const c = this.credentials?.current;
    return {
      listening: !!this.server?.listening, port: this.o.port ?? TUNNEL_PORT, error: this.lastError,
      spiffeId: c?.spiffeId, certExpiry: c?.notAfter.toISOString(), ...this.server?.stats,
    };
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.credentials?.close();
    await this.server?.close(true);
  }
}
