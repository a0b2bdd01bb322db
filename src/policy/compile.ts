/**
 * NetworkPolicies -> the kernel's tables (layout and the reasons for it in
 * tables.ts). The union of all policies, per (subject identity, direction):
 *
 *   - isolation: selected by any policy of that direction;
 *   - allow entries for selector peers, one per matching peer identity;
 *   - allow entries with peer 0 for rules without from/to;
 *   - ipBlock peers as flattened CIDR regions, each pointing at a group of
 *     allow entries.
 *
 * Named ports are resolved here, against the workload that receives the
 * traffic: for ingress the subject's own ports, for egress each peer's (so
 * one egress rule expands per peer identity; for an ipBlock peer, per
 * workload address in the block, as a /32 region). Entries are deduplicated,
 * and entries that a broader entry of the same or the any-peer lookup already
 * covers are dropped: the kernel would allow the same traffic without them.
 */
import { EbmeshError } from '../errors.js';
import { matchesSelector } from '../resources/selector.js';
import { cidrContains, cidrContainsIp, formatCidr, parseCidr, parseIp, truncateCidr, type Cidr } from '../resources/ip.js';
import type { NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort } from '../resources/networkpolicy.js';
import type { WorkloadResource } from '../resources/schemas.js';
import { IDENTITY_ANY, IdentityIndex, buildIpCache, type IdentityTable } from './identity.js';
import {
  CIDR_GROUP_BIT, portBlockEnd, portRangeToPrefixes,
  type AllowEntry, type CidrEntry, type CompiledTables, type Direction, type IsolationEntry, type Proto,
} from './tables.js';
import { namespaceLabelsOf, policyRef, workloadRef, type PolicyWorld } from './world.js';

export interface CompileInput extends PolicyWorld {
  identities: IdentityTable;
  /** The node's own addresses, identity 1 in the ipcache. */
  hostIps?: readonly string[];
}

interface PortSpan { proto: Proto; lo: number; hi: number }

interface Subject {
  id: number;
  namespace: string;
  labels: Record<string, string>;
  workloads: WorkloadResource[];
}

interface CidrRule { cidr: Cidr; excepts: Cidr[]; spans: PortSpan[]; ref: number; rule: number }

const ALL_PORTS: PortSpan[] = [{ proto: 'TCP', lo: 0, hi: 65535 }, { proto: 'UDP', lo: 0, hi: 65535 }];

function sameSpans(a: PortSpan[], b: PortSpan[]): boolean {
  const k = (s: PortSpan[]) => s.map((x) => `${x.proto}:${x.lo}-${x.hi}`).sort().join(',');
  return k(a) === k(b);
}

/**
 * The port spans a rule's `ports` allow on traffic to `dest`. Absent or empty
 * `ports` is every port of every protocol; a port entry without a port is
 * every port of its protocol. A named port matches only a container port
 * of that name *and* protocol.
 */
function resolveSpans(ports: readonly NetworkPolicyPort[] | undefined, dest: WorkloadResource | undefined): PortSpan[] {
  if (!ports?.length) return ALL_PORTS;
  const out: PortSpan[] = [];
  for (const p of ports) {
    if (p.port === undefined) out.push({ proto: p.protocol, lo: 0, hi: 65535 });
    else if (typeof p.port === 'number') out.push({ proto: p.protocol, lo: p.port, hi: p.endPort ?? p.port });
    else {
      const cp = dest?.spec.ports.find((c) => c.name === p.port && c.protocol === p.protocol);
      if (cp) out.push({ proto: p.protocol, lo: cp.containerPort, hi: cp.containerPort });
    }
  }
  return out;
}

const hasNamedPort = (ports: readonly NetworkPolicyPort[] | undefined): boolean => !!ports?.some((p) => typeof p.port === 'string');

class Compiler {
  private readonly index: IdentityIndex;
  private readonly subjects: Subject[];
  private readonly refs: string[] = [''];
  private readonly isolation = new Map<string, IsolationEntry>();
  private readonly allow = new Map<string, AllowEntry>();
  private readonly cidrRules = new Map<string, { subject: number; direction: Direction; rules: CidrRule[] }>();
  private readonly groups = new Map<string, number>();
  private readonly warnings = new Set<string>();

  constructor(private readonly input: CompileInput) {
    this.index = new IdentityIndex(input.identities);
    const byId = new Map<number, Subject>();
    for (const w of input.workloads) {
      const id = this.index.ofWorkload(w);
      const s = byId.get(id) ?? { id, namespace: w.metadata.namespace, labels: w.metadata.labels ?? {}, workloads: [] };
      s.workloads.push(w);
      byId.set(id, s);
    }
    this.subjects = [...byId.values()].sort((a, b) => a.id - b.id);
  }

  run(): CompiledTables {
    const policies = [...this.input.policies].sort((a, b) => (policyRef(a) < policyRef(b) ? -1 : policyRef(a) > policyRef(b) ? 1 : 0));
    for (const p of policies) this.policy(p);
    const cidr = this.flattenCidrs();
    return {
      ipcache: buildIpCache(this.input.workloads, this.input.identities, this.input.hostIps).map(({ ip, identity }) => ({ ip, identity })),
      isolation: [...this.isolation.values()].sort((a, b) => a.subject - b.subject || a.direction.localeCompare(b.direction)),
      allow: this.prunedAllow(),
      cidr,
      refs: this.refs,
      workloads: this.input.workloads
        .map((w) => ({ ref: workloadRef(w), identity: this.index.ofWorkload(w), ...(w.spec.ip ? { ip: w.spec.ip } : {}), ...(w.spec.ipv6 ? { ipv6: w.spec.ipv6 } : {}) }))
        .sort((a, b) => (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0)),
      warnings: [...this.warnings],
    };
  }

  private policy(p: NetworkPolicy): void {
    const ns = p.metadata.namespace;
    const ref = this.refs.push(policyRef(p)) - 1;
    const selected = this.subjects.filter((s) => s.namespace === ns && matchesSelector(p.spec.podSelector, s.labels));
    for (const subject of selected) {
      for (const type of p.spec.policyTypes) {
        const direction: Direction = type === 'Ingress' ? 'ingress' : 'egress';
        const key = `${subject.id}|${direction}`;
        if (!this.isolation.has(key)) this.isolation.set(key, { subject: subject.id, direction, policyRef: ref });
        // Rules of a direction the policy does not list are ignored, as upstream.
        const rules = direction === 'ingress'
          ? (p.spec.ingress ?? []).map((r) => ({ peers: r.from, ports: r.ports }))
          : (p.spec.egress ?? []).map((r) => ({ peers: r.to, ports: r.ports }));
        rules.forEach((r, i) => this.rule(subject, direction, ns, r.peers, r.ports, ref, i));
      }
    }
  }

  private rule(subject: Subject, direction: Direction, policyNs: string, peers: NetworkPolicyPeer[] | undefined, ports: NetworkPolicyPort[] | undefined, ref: number, rule: number): void {
    const emit = (peer: number, spans: PortSpan[]) => { for (const s of spans) this.addAllow(subject.id, peer, direction, s, ref, rule); };
    if (!peers?.length) {
      if (direction === 'ingress') emit(IDENTITY_ANY, this.spansFor(ports, subject, direction));
      else {
        if (!hasNamedPort(ports)) { emit(IDENTITY_ANY, resolveSpans(ports, undefined)); return; }
        // Numeric ports hold for any destination; named ones only for workloads that declare them.
        const numeric = ports!.filter((p) => typeof p.port !== 'string');
        if (numeric.length) emit(IDENTITY_ANY, resolveSpans(numeric, undefined));
        const named = ports!.filter((p) => typeof p.port === 'string');
        for (const peer of this.subjects) emit(peer.id, this.spansFor(named, peer, direction));
      }
      return;
    }
    for (const peer of peers) {
      if (peer.ipBlock) { this.ipBlock(subject, direction, peer.ipBlock, ports, ref, rule); continue; }
      for (const p of this.subjects) {
        const nsOk = peer.namespaceSelector
          ? matchesSelector(peer.namespaceSelector, namespaceLabelsOf(this.input.namespaces, p.namespace))
          : p.namespace === policyNs;
        if (!nsOk || !matchesSelector(peer.podSelector, p.labels)) continue;
        emit(p.id, this.spansFor(ports, direction === 'ingress' ? subject : p, direction));
      }
    }
  }

  /** Spans for traffic to `dest` (an identity's workloads), warning where they disagree on a named port. */
  private spansFor(ports: NetworkPolicyPort[] | undefined, dest: Subject, direction: Direction): PortSpan[] {
    if (!hasNamedPort(ports)) return resolveSpans(ports, undefined);
    const per = dest.workloads.map((w) => resolveSpans(ports, w));
    if (per.some((s) => !sameSpans(s, per[0]!))) {
      this.warnings.add(`workloads of identity ${dest.id} (${dest.namespace} ${JSON.stringify(dest.labels)}) resolve a named port differently; `
        + `${direction} rules allow the union of their port numbers for all of them`);
    }
    return per.flat();
  }

  private ipBlock(subject: Subject, direction: Direction, block: { cidr: string; except?: string[] }, ports: NetworkPolicyPort[] | undefined, ref: number, rule: number): void {
    const cidr = parseCidr(block.cidr);
    if (!cidr) throw new EbmeshError('EBMESH_POLICY_INVALID', `bad cidr ${block.cidr}`, { where: this.refs[ref] });
    const excepts = (block.except ?? []).map((e) => parseCidr(e)).filter((c): c is Cidr => !!c);
    const key = `${subject.id}|${direction}`;
    const bucket = this.cidrRules.get(key) ?? { subject: subject.id, direction, rules: [] };
    this.cidrRules.set(key, bucket);
    if (direction === 'ingress' || !hasNamedPort(ports)) {
      bucket.rules.push({ cidr, excepts, spans: this.spansFor(ports, subject, direction), ref, rule });
      return;
    }
    // Egress with named ports: numeric ones apply to the whole block; each
    // named one only to workload addresses in it, as exact /32 regions.
    const numeric = ports!.filter((p) => typeof p.port !== 'string');
    if (numeric.length) bucket.rules.push({ cidr, excepts, spans: resolveSpans(numeric, undefined), ref, rule });
    const named = ports!.filter((p) => typeof p.port === 'string');
    for (const w of this.input.workloads) {
      for (const text of workloadAddresses(w)) {
        const ip = parseIp(text);
        if (ip === undefined || !cidrContainsIp(cidr, ip) || excepts.some((e) => cidrContainsIp(e, ip))) continue;
        const spans = resolveSpans(named, w);
        if (spans.length) bucket.rules.push({ cidr: { family: ip.family, addr: ip.value, len: ip.family === 4 ? 32 : 128 }, excepts: [], spans, ref, rule });
      }
    }
  }

  private addAllow(subject: number, peer: number, direction: Direction, span: PortSpan, policyRef: number, rule: number): void {
    for (const { port, prefixLen } of portRangeToPrefixes(span.lo, span.hi)) {
      const key = `${subject}|${peer}|${direction}|${span.proto}|${port}/${prefixLen}`;
      // Policies are visited in name order and rules in index order, so the first writer is stable.
      if (!this.allow.has(key)) this.allow.set(key, { subject, peer, direction, proto: span.proto, port, portPrefixLen: prefixLen, policyRef, rule });
    }
  }

  /**
   * Cuts each subject's ipBlock rules into regions at every cidr and except
   * boundary. For an address, the prefixes containing it form a chain, so
   * whether rule r covers it depends only on the longest boundary P that
   * contains it: r.cidr contains P and no except of r contains P. One
   * entry per boundary therefore makes the LPM answer exact. A region that
   * would answer the same as its parent is left out.
   */
  private flattenCidrs(): CidrEntry[] {
    const out: CidrEntry[] = [];
    for (const { subject, direction, rules } of [...this.cidrRules.values()]) {
      // Rules by their exact cidr, bounds by prefix: the prefixes containing
      // an address form a chain of at most 33 (IPv4) or 129 (IPv6), so every
      // "which contain P" question is a walk up that chain, not a scan of all
      // rules. The families never mix: an IPv6 region has only IPv6 parents.
      const rulesAt = new Map<string, CidrRule[]>();
      const bound = new Map<string, Cidr>();
      for (const r of rules) {
        const k = prefixKey(r.cidr);
        rulesAt.set(k, [...(rulesAt.get(k) ?? []), r]);
        for (const c of [r.cidr, ...r.excepts]) bound.set(prefixKey(c), c);
      }
      const bounds = [...bound.values()].sort((a, b) => a.family - b.family || a.len - b.len || (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0));
      const sigOf = new Map<string, string>();
      for (const P of bounds) {
        const containing: CidrRule[] = [];
        for (let len = 0; len <= P.len; len++) containing.push(...(rulesAt.get(prefixKey(truncateCidr(P, len))) ?? []));
        const covering = containing.filter((r) => !r.excepts.some((e) => cidrContains(e, P)));
        const spans = covering.flatMap((r) => r.spans.map((s) => ({ s, r })));
        // A set: one rule reached through two of its peers must not look like a different group.
        const sig = [...new Set(spans.map(({ s, r }) => `${s.proto}:${s.lo}-${s.hi}@${r.ref}.${r.rule}`))].sort().join(',');
        sigOf.set(prefixKey(P), sig);
        let parentSig = '';
        for (let len = P.len - 1; len >= 0; len--) {
          const q = sigOf.get(prefixKey(truncateCidr(P, len)));
          if (q !== undefined) { parentSig = q; break; }
        }
        if (parentSig === sig) continue;
        let group = 0;
        let ref = 0;
        let rule = 0;
        if (spans.length) {
          group = this.groups.get(sig) ?? (CIDR_GROUP_BIT | (this.groups.size + 1)) >>> 0;
          this.groups.set(sig, group);
          for (const { s, r } of spans) this.addAllow(subject, group, direction, s, r.ref, r.rule);
        } else {
          const carver = containing.find((r) => r.excepts.some((e) => cidrContains(e, P)));
          ref = carver?.ref ?? 0;
          rule = carver?.rule ?? 0;
        }
        out.push({ subject, direction, family: P.family, addr: formatCidr(P).split('/')[0]!, prefixLen: P.len, group, policyRef: ref, rule });
      }
    }
    return out.sort((a, b) => a.subject - b.subject || a.direction.localeCompare(b.direction) || a.family - b.family || a.prefixLen - b.prefixLen || (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0));
  }

  /**
   * Drops entries a broader one already answers for: same peer or the
   * any-peer lookup. Port blocks are prefixes, so "a broader block exists"
   * is a walk up at most 16 enclosing blocks in a set of keys.
   */
  private prunedAllow(): AllowEntry[] {
    const blocks = new Set<string>();
    const family = (e: AllowEntry, peer: number) => `${e.subject}|${peer}|${e.direction}|${e.proto}`;
    for (const e of this.allow.values()) blocks.add(`${family(e, e.peer)}|${e.port}/${e.portPrefixLen}`);
    const coveredIn = (e: AllowEntry, peer: number) => {
      for (let len = 0; len < e.portPrefixLen; len++) {
        const mask = len === 0 ? 0 : (0xffff << (16 - len)) & 0xffff;
        if (blocks.has(`${family(e, peer)}|${e.port & mask}/${len}`)) return true;
      }
      return false;
    };
    const kept = [...this.allow.values()].filter((e) =>
      !coveredIn(e, e.peer) && !(e.peer !== IDENTITY_ANY && (coveredIn(e, IDENTITY_ANY) || blocks.has(`${family(e, IDENTITY_ANY)}|${e.port}/${e.portPrefixLen}`))));
    return kept.sort((a, b) => a.subject - b.subject || a.direction.localeCompare(b.direction) || a.peer - b.peer
      || a.proto.localeCompare(b.proto) || a.port - b.port || a.portPrefixLen - b.portPrefixLen);
  }
}

/** Text naming a prefix exactly (family, address and length), for map keys. */
function prefixKey(c: Cidr): string {
  return `${c.family}|${c.addr}/${c.len}`;
}

/** A workload's addresses, of both families: named ports of an ipBlock peer resolve on each. */
function workloadAddresses(w: WorkloadResource): string[] {
  return [w.spec.ip, w.spec.ipv6].filter((ip): ip is string => ip !== undefined);
}

export function compilePolicies(input: CompileInput): CompiledTables {
  return new Compiler(input).run();
}
