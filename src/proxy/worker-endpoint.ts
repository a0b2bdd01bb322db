/**
 * The node's receiving tunnel endpoint as each node proxy worker runs it:
 * every worker listens on the tunnel port (SO_REUSEPORT, the kernel spreads
 * peer sessions over them) with the node SVID, the node's workload IPs and
 * the ingress policy of the latest push. It lives in the workers rather than
 * the primary so that a primary killed with -9 takes no tunnel session with
 * it: the workers, orphaned, keep serving until the next generation took
 * over (./orphan.ts).
 */
import type { TunnelFlow } from '../tunnel/index.js';
import type { TunnelEndpoint } from '../tunnel/endpoint.js';
import { EndpointPolicy } from '../policy/tunnel-ingress.js';
import { CallerVouching, judgeStream } from '../tunnel/vouch.js';
import { describeError } from '../errors.js';
import type { ProxyPush } from './messages.js';

export class WorkerEndpoint {
  private endpoint: TunnelEndpoint | undefined;
  private svidDir = '';
  private push: ProxyPush | undefined;
  private localIps: ReadonlySet<string> = new Set();
  private policy: EndpointPolicy | undefined;
  private vouching: CallerVouching | undefined;
  /** One change at a time: two quick pushes must not start two endpoints. */
  private change = Promise.resolve();
  private released = false;

  constructor(private readonly onFlow: (f: TunnelFlow) => void) {}

  /** The latest push: its tables now, the endpoint started or replaced when the SVID directory changed. */
  configure(push: ProxyPush): void {
    this.push = push;
    const t = push.tunnel;
    this.localIps = new Set(t?.localIps ?? []);
    this.policy = t?.policy ? new EndpointPolicy(t.policy) : undefined;
    this.vouching = t ? new CallerVouching({ podCidr: t.podCidr, nodes: t.nodes, identities: push.byIp }) : undefined;
    this.change = this.change.then(() => this.reconcile()).catch((e: unknown) => {
      process.stderr.write(`node proxy worker ${process.pid}: tunnel endpoint: ${describeError(e)}\n`);
    });
  }

  private async reconcile(): Promise<void> {
    if (this.released) return;
    const t = this.push?.tunnel;
    if (this.endpoint && t?.svidDir === this.svidDir) return;
    await this.endpoint?.stop();
    this.endpoint = undefined;
    if (!t) return;
    // Loaded on first use: a node without mTLS never pays for TLS and HTTP/2 here.
    const { TunnelEndpoint } = await import('../tunnel/endpoint.js');
    this.svidDir = t.svidDir;
    this.endpoint = new TunnelEndpoint({
      svidDir: t.svidDir,
      trustDomain: () => this.push?.tunnel?.trustDomain ?? t.trustDomain,
      localIps: () => this.localIps,
      // No vouching tables yet (no config): nothing is delivered on a peer's word alone.
      authorize: (r) => (this.vouching ? judgeStream(r, this.vouching, this.policy) : { allow: false, reason: 'the endpoint has no mesh configuration yet' }),
      onFlow: this.onFlow,
      reusePort: true,
    });
    this.endpoint.start();
  }

  /** Handover, first step: the next generation's endpoints take the new sessions. */
  release(): void {
    this.released = true;
    this.endpoint?.release();
  }

  /** Handover, second step: peers move their new streams to the next generation; ours finish. */
  goaway(): void {
    this.endpoint?.goaway();
  }

  /** Sessions and streams still open. */
  get busy(): number {
    return this.endpoint?.busy ?? 0;
  }

  status(): Record<string, unknown> | undefined {
    return this.endpoint?.status();
  }

  async stop(): Promise<void> {
    this.released = true;
    await this.change;
    await this.endpoint?.stop();
  }
}

/**
 * One status for the node from its workers' endpoints: listening when any
 * listens, counters summed, the identity and certificate of the first.
 */
export function mergeEndpointStatus(all: Array<Record<string, unknown> | undefined>): Record<string, unknown> | undefined {
  const present = all.filter((s): s is Record<string, unknown> => !!s);
  if (!present.length) return undefined;
  const merged: Record<string, unknown> = { ...present[0] };
  merged.listening = present.some((s) => s.listening === true);
  merged.error = present.map((s) => s.error).find((e) => typeof e === 'string');
  for (const s of present.slice(1)) {
    for (const [k, v] of Object.entries(s)) if (typeof v === 'number' && typeof merged[k] === 'number' && k !== 'port') merged[k] = (merged[k] as number) + v;
  }
  return merged;
}
