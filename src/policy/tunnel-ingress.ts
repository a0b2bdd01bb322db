/**
 * NetworkPolicy at the receiving tunnel endpoint. The endpoint delivers from
 * the node proxy's own address, so the destination's kernel hooks see the
 * proxy, not the caller: the endpoint judges the destination's ingress for
 * the caller instead, before it connects. The judgement is the one `policy
 * explain` and the kernel's crosscheck use (PolicyTables over the compiled
 * tables), with the caller resolved by its address through the ipcache as
 * the kernel would; only the rows the endpoint can need travel to the proxy.
 */
import { IDENTITY_WORLD } from './identity.js';
import { PolicyTables } from './verdict.js';
import type { CompiledTables } from './tables.js';
import type { TunnelRequest, Verdict } from '../tunnel/server.js';

/** The compiled tables cut down to the ingress of some workloads (this node's), with every address's identity. */
export type IngressTables = Omit<CompiledTables, 'warnings'>;

export function ingressTablesFor(t: CompiledTables, localIps: readonly string[]): IngressTables {
  const ips = new Set(localIps);
  const workloads = t.workloads.filter((w) => w.ip !== undefined && ips.has(w.ip));
  const subjects = new Set(workloads.map((w) => w.identity));
  const mine = <T extends { subject: number; direction: string }>(rows: readonly T[]) => rows.filter((r) => r.direction === 'ingress' && subjects.has(r.subject));
  return { ipcache: t.ipcache, isolation: mine(t.isolation), allow: mine(t.allow), cidr: mine(t.cidr), refs: t.refs, workloads };
}

export type PolicyVerdict = Verdict & { policy?: { ref: number; rule: number; name: string } };

export class EndpointPolicy {
  private readonly tables: PolicyTables;

  constructor(private readonly t: IngressTables) {
    this.tables = new PolicyTables({ ...t, warnings: [] });
  }

  /**
   * May the caller (by the address its node vouches for) reach the
   * destination workload here? A stream without a source address is judged
   * as coming from outside the mesh (world): an isolated destination refuses it.
   */
  judge(r: Pick<TunnelRequest, 'sourceIp' | 'dst'>): PolicyVerdict {
    const dst = this.tables.resolve({ ip: r.dst.ip });
    const src = r.sourceIp ? this.tables.resolve({ ip: r.sourceIp }) : { identity: IDENTITY_WORLD };
    if (src.workload !== undefined && src.workload === dst.workload) return { allow: true };
    const side = this.tables.side(dst, 'ingress', src, 'TCP', r.dst.port);
    if (side.allowed) return { allow: true };
    // The kernel reports the same: the except that carved the hole, else the isolating policy.
    const ref = side.cidr && side.cidr.group === 0 && side.cidr.policyRef ? side.cidr.policyRef : side.isolatedBy ?? 0;
    const rule = side.cidr && side.cidr.group === 0 && side.cidr.policyRef ? side.cidr.rule : 0xffff;
    const name = this.t.refs[ref] ?? `policy-${ref}`;
    return { allow: false, reason: `NetworkPolicy ${name} denies ingress to ${dst.workload ?? r.dst.ip} from ${r.sourceIp ?? 'an unnamed source'}`, policy: { ref, rule, name } };
  }
}
