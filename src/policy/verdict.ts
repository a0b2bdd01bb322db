/**
 * The L4 verdict, computed from the compiled tables the way the kernel
 * computes it: the same lookups, in the same order, with the same
 * longest-prefix rules. This is the reference for the BPF program (its
 * tests replay the same flows) and what `policy explain` reports, so it must
 * never consult the NetworkPolicy objects: only the tables.
 *
 * Per flow, for each side that is a workload in the mesh:
 *   egress of the source (subject = source identity, peer = destination),
 *   ingress of the destination (subject = destination identity, peer = source);
 * both must allow. Per side:
 *   1. isolation[subject, dir] absent           -> allow ("not isolated")
 *   2. allow[subject, peer identity, dir, proto, port]  hit -> allow
 *   3. allow[subject, 0, dir, proto, port]               hit -> allow
 *   4. cidr[subject, dir, peer address] -> group g != 0, and
 *      allow[subject, g, dir, proto, port]               hit -> allow
 *   5. deny ("isolated, no rule allows")
 * A workload talking to its own address is always allowed (Kubernetes: a pod
 * can always reach itself), checked before anything else.
 */
import { EbmeshError } from '../errors.js';
import { formatIp, parseIp, prefixMask, type IpFamily } from '../resources/ip.js';
import { IDENTITY_ANY, IDENTITY_WORLD } from './identity.js';
import type { AllowEntry, CidrEntry, CompiledTables, Direction, Proto } from './tables.js';
import type { Endpoint, Flow } from './world.js';

/**
 * The family of a flow: that of an endpoint given as an address (both must
 * agree), else the one the flow names, else IPv4.
 */
export function flowFamily(flow: Flow): IpFamily {
  const of = (ep: Endpoint): IpFamily | undefined => {
    if (!('ip' in ep)) return undefined;
    const a = parseIp(ep.ip);
    if (!a) throw new EbmeshError('EBMESH_BAD_ADDRESS', `${ep.ip} is not an IPv4 or IPv6 address`);
    return a.family;
  };
  const from = of(flow.from);
  const to = of(flow.to);
  if (from !== undefined && to !== undefined && from !== to) {
    throw new EbmeshError('EBMESH_BAD_ADDRESS', `a flow is one family: ${(flow.from as { ip: string }).ip} is IPv${from}, ${(flow.to as { ip: string }).ip} IPv${to}`);
  }
  return from ?? to ?? flow.family ?? 4;
}

export type SideReason = 'loopback' | 'not-in-mesh' | 'not-isolated' | 'allowed' | 'isolated-no-rule';

export interface SideVerdict {
  allowed: boolean;
  reason: SideReason;
  /** The entry that allowed, when reason is "allowed". */
  entry?: AllowEntry;
  /** Which lookup hit: the peer's identity, the any-peer entry, or an ipBlock region. */
  via?: 'identity' | 'any-peer' | 'cidr';
  /** The region the peer address fell in, if the cidr lookup was made. */
  cidr?: CidrEntry;
  /** A policy that isolates the subject (the one the kernel would report on a drop). */
  isolatedBy?: number;
}

export interface Verdict {
  allowed: boolean;
  egress: SideVerdict;
  ingress: SideVerdict;
}

export interface ResolvedEndpoint {
  identity: number;
  ip?: string;
  /** namespace/name when the endpoint is a workload in the mesh. */
  workload?: string;
}

const portMask = (len: number): number => (len === 0 ? 0 : (0xffff << (16 - len)) & 0xffff);

export class PolicyTables {
  private readonly allow = new Map<string, AllowEntry>();
  private readonly cidr = new Map<string, CidrEntry>();
  private readonly isolated = new Map<string, number>();
  private readonly ipcache = new Map<string, number>();
  private readonly byRef = new Map<string, { identity: number; ip?: string; ipv6?: string }>();
  private readonly byIp = new Map<string, string>();

  constructor(readonly tables: CompiledTables) {
    for (const e of tables.allow) this.allow.set(`${e.subject}|${e.peer}|${e.direction}|${e.proto}|${e.port & portMask(e.portPrefixLen)}/${e.portPrefixLen}`, e);
    for (const e of tables.cidr) this.cidr.set(`${e.subject}|${e.direction}|${e.addr}/${e.prefixLen}`, e);
    for (const e of tables.isolation) this.isolated.set(`${e.subject}|${e.direction}`, e.policyRef);
    for (const e of tables.ipcache) this.ipcache.set(e.ip, e.identity);
    for (const w of tables.workloads) {
      this.byRef.set(w.ref, w);
      if (w.ip) this.byIp.set(w.ip, w.ref);
      if (w.ipv6) this.byIp.set(w.ipv6, w.ref);
    }
  }

  /** What the kernel knows of an endpoint: an address maps through the ipcache (of its family); a workload has its address of `family`. */
  resolve(ep: Endpoint, family: IpFamily = 4): ResolvedEndpoint {
    if ('workload' in ep) {
      const w = this.byRef.get(ep.workload);
      if (!w) throw new EbmeshError('EBMESH_POLICY_UNKNOWN_WORKLOAD', `no workload ${ep.workload}`);
      const ip = family === 4 ? w.ip : w.ipv6;
      return { identity: w.identity, ...(ip ? { ip } : {}), workload: ep.workload };
    }
    const a = parseIp(ep.ip);
    if (!a) throw new EbmeshError('EBMESH_BAD_ADDRESS', `${ep.ip} is not an IPv4 or IPv6 address`);
    const ip = formatIp(a);
    const workload = this.byIp.get(ip);
    return { identity: this.ipcache.get(ip) ?? IDENTITY_WORLD, ip, ...(workload ? { workload } : {}) };
  }

  private lookupAllow(subject: number, peer: number, direction: Direction, proto: Proto, port: number): AllowEntry | undefined {
    for (let len = 16; len >= 0; len--) {
      const e = this.allow.get(`${subject}|${peer}|${direction}|${proto}|${port & portMask(len)}/${len}`);
      if (e) return e;
    }
    return undefined;
  }

  private lookupCidr(subject: number, direction: Direction, ip: string): CidrEntry | undefined {
    const a = parseIp(ip)!;
    for (let len = a.family === 4 ? 32 : 128; len >= 0; len--) {
      const e = this.cidr.get(`${subject}|${direction}|${formatIp({ family: a.family, value: a.value & prefixMask(a.family, len) })}/${len}`);
      if (e) return e;
    }
    return undefined;
  }

  side(subject: ResolvedEndpoint, direction: Direction, peer: ResolvedEndpoint, proto: Proto, port: number): SideVerdict {
    if (!subject.workload) return { allowed: true, reason: 'not-in-mesh' };
    const isolatedBy = this.isolated.get(`${subject.identity}|${direction}`);
    if (isolatedBy === undefined) return { allowed: true, reason: 'not-isolated' };
    let entry = this.lookupAllow(subject.identity, peer.identity, direction, proto, port);
    if (entry) return { allowed: true, reason: 'allowed', entry, via: 'identity', isolatedBy };
    entry = this.lookupAllow(subject.identity, IDENTITY_ANY, direction, proto, port);
    if (entry) return { allowed: true, reason: 'allowed', entry, via: 'any-peer', isolatedBy };
    const region = peer.ip === undefined ? undefined : this.lookupCidr(subject.identity, direction, peer.ip);
    if (region && region.group !== 0) {
      entry = this.lookupAllow(subject.identity, region.group, direction, proto, port);
      if (entry) return { allowed: true, reason: 'allowed', entry, via: 'cidr', cidr: region, isolatedBy };
    }
    return { allowed: false, reason: 'isolated-no-rule', isolatedBy, ...(region ? { cidr: region } : {}) };
  }

  verdict(flow: Flow): Verdict {
    const family = flowFamily(flow);
    const src = this.resolve(flow.from, family);
    const dst = this.resolve(flow.to, family);
    const loop = src.workload !== undefined && src.workload === dst.workload;
    if (loop) {
      const side: SideVerdict = { allowed: true, reason: 'loopback' };
      return { allowed: true, egress: side, ingress: side };
    }
    const egress = this.side(src, 'egress', dst, flow.proto, flow.port);
    const ingress = this.side(dst, 'ingress', src, flow.proto, flow.port);
    return { allowed: egress.allowed && ingress.allowed, egress, ingress };
  }
}
