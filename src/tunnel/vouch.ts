/**
 * What a peer node may claim about the caller of a stream. The tunnel proves
 * which node sent it (its node SVID); the caller's address and SPIFFE ID
 * travel in headers that only that node vouches for. A node can only speak
 * for the workloads it runs, so the receiver holds every claim against what
 * the mesh knows cluster-wide: pods of node i have addresses in the i-th
 * subnet of the pod CIDR, and each known pod address has one identity. A
 * node that claims another node's pod (stolen or buggy) is refused, so a
 * single compromised node cannot borrow the NetworkPolicy rights of callers
 * elsewhere in the mesh.
 */
import { containsAddress, mustParseCidr, type Cidr } from '../net/ipam.js';
import type { TunnelRequest, Verdict } from './server.js';
import type { EndpointPolicy } from '../policy/tunnel-ingress.js';

export interface VouchTables {
  /** The mesh's pod CIDR. */
  podCidr: string;
  /** [node name, its pod subnet] for every node of the mesh. */
  nodes: ReadonlyArray<readonly [string, string]>;
  /** [pod IP, SPIFFE ID] of the mesh's workloads. */
  identities: ReadonlyArray<readonly [string, { identity: string }]>;
}

/** The caller as the receiver will judge it: the claimed address only if the peer may speak for it. */
export type Vouched =
  | { ok: true; sourceIp: string | undefined }
  | { ok: false; reason: string };

export class CallerVouching {
  private readonly pod: Cidr;
  private readonly subnets: Array<{ node: string; cidr: Cidr }>;
  private readonly identityOf: Map<string, string>;

  constructor(t: VouchTables) {
    this.pod = mustParseCidr(t.podCidr);
    this.subnets = t.nodes.map(([node, cidr]) => ({ node, cidr: mustParseCidr(cidr) }));
    this.identityOf = new Map(t.identities.map(([ip, c]) => [ip, c.identity]));
  }

  private nodeOfPod(ip: string): string | undefined {
    return this.subnets.find((s) => containsAddress(s.cidr, ip))?.node;
  }

  check(r: Pick<TunnelRequest, 'peerNode' | 'sourceIp' | 'sourceId'>): Vouched {
    const ip = r.sourceIp;
    // An address outside the pod CIDR (a host process of the peer, loopback)
    // names no mesh workload: the caller is judged as an unnamed source, the
    // least a node can claim, never as whatever that address would match.
    if (ip === undefined || !containsAddress(this.pod, ip)) return { ok: true, sourceIp: undefined };
    const owner = this.nodeOfPod(ip);
    if (owner !== r.peerNode) {
      return { ok: false, reason: `node ${r.peerNode} vouches for ${ip}, ${owner ? `a pod address of node ${owner}` : 'an address of no node\'s pod subnet'}` };
    }
    const known = this.identityOf.get(ip);
    if (known !== undefined && r.sourceId !== undefined && r.sourceId !== known) {
      return { ok: false, reason: `node ${r.peerNode} claims ${r.sourceId} for ${ip}, which is ${known}` };
    }
    return { ok: true, sourceIp: ip };
  }
}

/**
 * The endpoint's judgement of one stream: the claim first, then the
 * destination's NetworkPolicy for the caller as vouched (absent tables: the
 * agent has sent none yet, nothing to judge).
 */
export function judgeStream(r: TunnelRequest, vouching: CallerVouching, policy: Pick<EndpointPolicy, 'judge'> | undefined): Verdict {
  const v = vouching.check(r);
  if (!v.ok) return { allow: false, reason: v.reason };
  return policy?.judge({ sourceIp: v.sourceIp, dst: r.dst }) ?? { allow: true };
}
