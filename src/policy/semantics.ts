/**
 * NetworkPolicy semantics straight from the spec, on the objects themselves:
 * no identities, no tables, no flattening. It is deliberately naive (it
 * re-walks every policy per flow) so that it reads like the Kubernetes
 * documentation; tests cross-check the compiler + kernel-order verdict
 * against it. Shares only label matching and address parsing with the
 * compiler, which are not policy semantics.
 */
import { matchesSelector } from '../resources/selector.js';
import { cidrContainsIp, parseCidr, parseIp } from '../resources/ip.js';
import type { NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort } from '../resources/networkpolicy.js';
import type { WorkloadResource } from '../resources/schemas.js';
import { namespaceLabelsOf, policyRef, workloadAddress, workloadRef, type Endpoint, type Flow, type PolicyWorld } from './world.js';

interface Party { workload?: WorkloadResource; ip?: string }

export interface SpecSide {
  allowed: boolean;
  reason: 'loopback' | 'not-in-mesh' | 'not-isolated' | 'allowed' | 'isolated-no-rule';
  /** Every (policy, rule) that allows, in policy-name then rule order. */
  allowedBy: Array<{ policy: string; rule: number }>;
  /** Every policy that selects the subject for this direction. */
  isolatedBy: string[];
}

export interface SpecVerdict { allowed: boolean; egress: SpecSide; ingress: SpecSide }

function party(world: PolicyWorld, ep: Endpoint, family: 4 | 6): Party {
  if ('workload' in ep) {
    const w = world.workloads.find((x) => workloadRef(x) === ep.workload);
    if (!w) throw new Error(`no workload ${ep.workload}`);
    const ip = workloadAddress(w, family);
    return { workload: w, ...(ip ? { ip } : {}) };
  }
  const w = world.workloads.find((x) => x.spec.ip === ep.ip || x.spec.ipv6 === ep.ip);
  return w ? { workload: w, ip: ep.ip } : { ip: ep.ip };
}

function peerMatches(world: PolicyWorld, policy: NetworkPolicy, peer: NetworkPolicyPeer, other: Party): boolean {
  if (peer.ipBlock) {
    const ip = other.ip === undefined ? undefined : parseIp(other.ip);
    if (ip === undefined) return false;
    const inBlock = cidrContainsIp(parseCidr(peer.ipBlock.cidr)!, ip);
    return inBlock && !(peer.ipBlock.except ?? []).some((e) => cidrContainsIp(parseCidr(e)!, ip));
  }
  const w = other.workload;
  if (!w) return false; // selectors only ever select workloads
  if (peer.namespaceSelector) {
    if (!matchesSelector(peer.namespaceSelector, namespaceLabelsOf(world.namespaces, w.metadata.namespace))) return false;
  } else if (w.metadata.namespace !== policy.metadata.namespace) {
    return false;
  }
  // An absent podSelector next to a namespaceSelector means every pod there.
  return matchesSelector(peer.podSelector, w.metadata.labels);
}

function portMatches(ports: NetworkPolicyPort[] | undefined, dest: Party, proto: string, port: number): boolean {
  if (!ports || ports.length === 0) return true;
  return ports.some((p) => {
    if (p.protocol !== proto) return false;
    if (p.port === undefined) return true;
    if (typeof p.port === 'number') return port >= p.port && port <= (p.endPort ?? p.port);
    // A named port is the destination's container port of that name and protocol.
    return !!dest.workload?.spec.ports.some((c) => c.name === p.port && c.protocol === proto && c.containerPort === port);
  });
}

function side(world: PolicyWorld, subject: Party, other: Party, dir: 'Ingress' | 'Egress', proto: string, port: number): SpecSide {
  const w = subject.workload;
  if (!w) return { allowed: true, reason: 'not-in-mesh', allowedBy: [], isolatedBy: [] };
  const selecting = world.policies
    .filter((p) => p.metadata.namespace === w.metadata.namespace && matchesSelector(p.spec.podSelector, w.metadata.labels) && p.spec.policyTypes.includes(dir))
    .sort((a, b) => (policyRef(a) < policyRef(b) ? -1 : 1));
  if (selecting.length === 0) return { allowed: true, reason: 'not-isolated', allowedBy: [], isolatedBy: [] };
  const allowedBy: SpecSide['allowedBy'] = [];
  for (const p of selecting) {
    const rules = dir === 'Ingress'
      ? (p.spec.ingress ?? []).map((r) => ({ peers: r.from, ports: r.ports }))
      : (p.spec.egress ?? []).map((r) => ({ peers: r.to, ports: r.ports }));
    rules.forEach((r, i) => {
      const peerOk = !r.peers || r.peers.length === 0 || r.peers.some((peer) => peerMatches(world, p, peer, other));
      const dest = dir === 'Ingress' ? subject : other;
      if (peerOk && portMatches(r.ports, dest, proto, port)) allowedBy.push({ policy: policyRef(p), rule: i });
    });
  }
  return {
    allowed: allowedBy.length > 0,
    reason: allowedBy.length ? 'allowed' : 'isolated-no-rule',
    allowedBy,
    isolatedBy: selecting.map(policyRef),
  };
}

/** Whether `flow` is allowed under `world.policies`, by the letter of the spec. */
export function evaluateSpec(world: PolicyWorld, flow: Flow): SpecVerdict {
  // The family of an address endpoint, else the flow's (the spec knows no tables, only addresses).
  const family = 'ip' in flow.from ? (parseIp(flow.from.ip)?.family ?? 4) : 'ip' in flow.to ? (parseIp(flow.to.ip)?.family ?? 4) : flow.family ?? 4;
  const src = party(world, flow.from, family);
  const dst = party(world, flow.to, family);
  if (src.workload && src.workload === dst.workload) {
    const s: SpecSide = { allowed: true, reason: 'loopback', allowedBy: [], isolatedBy: [] };
    return { allowed: true, egress: s, ingress: s };
  }
  const egress = side(world, src, dst, 'Egress', flow.proto, flow.port);
  const ingress = side(world, dst, src, 'Ingress', flow.proto, flow.port);
  return { allowed: egress.allowed && ingress.allowed, egress, ingress };
}
