/**
 * mTLS mode per namespace, from the Namespace's annotation
 *   ebmesh.io/mtls: strict | permissive        (absent = permissive)
 * An annotation on the Namespace rather than a PeerAuthentication-like kind:
 * the mode is a property of the namespace and nothing finer (no per-workload
 * or per-port selectors to resolve, nothing to conflict), the Namespace kind
 * already exists, and Kubernetes users know the annotation idiom. If a finer
 * grain is ever needed, a resource can take precedence over the annotation.
 *
 * The kernel's tables (bpf/mtls.bpf.c): the IPs of workloads in strict
 * namespaces, and the sources they accept new connections from: the node's
 * own pod subnet (its workloads, and its gateway address, from which the
 * node's tunnel endpoint connects) and loopback. Both families: a strict
 * workload's IPv6 address is in the IPv6 tables, with the node's IPv6 pod
 * subnet and ::1 as sources.
 */
import type { Snapshot } from './state.js';
import { workloadIp } from './lb.js';
import { workloadAddresses } from './endpoints.js';
import { containsAddress, formatCidr, type Cidr } from '../net/ipam.js';
import { parseIp } from '../resources/ip.js';
import type { AnyResource } from '../resources/index.js';

export const MTLS_ANNOTATION = 'ebmesh.io/mtls';
/** disable: no tunnel for connections *to* this namespace from other nodes (plaintext, as before). */
export type MtlsMode = 'strict' | 'permissive' | 'disable';
const MODES: readonly string[] = ['strict', 'permissive', 'disable'];

export function namespaceMode(snap: Pick<Snapshot, 'namespaces'>, ns: string): MtlsMode {
  const v = snap.namespaces.find((n) => n.metadata.name === ns)?.metadata.annotations?.[MTLS_ANNOTATION];
  return v === 'strict' || v === 'disable' ? v : 'permissive';
}

export interface MtlsTables {
  /** Workload IPs in strict namespaces. */
  strict: string[];
  /** CIDRs strict workloads accept new connections from. */
  sources: string[];
}

export function mtlsTables(snap: Snapshot, localPodSubnet: Cidr, localPodSubnet6?: Cidr): MtlsTables {
  const strict = new Set<string>();
  for (const w of snap.workloads) {
    if (w.spec.external || namespaceMode(snap, w.metadata.namespace) !== 'strict') continue;
    for (const ip of workloadAddresses(snap, w)) strict.add(ip);
  }
  const sources6 = localPodSubnet6 ? [formatCidr(localPodSubnet6), '::1/128'] : [];
  return { strict: [...strict].sort(), sources: [formatCidr(localPodSubnet), '127.0.0.0/8', ...sources6] };
}

/**
 * Cross-node mTLS: the pod IPs of other nodes' workloads that connections
 * from this node reach through the node proxy and the tunnel (the kernel's
 * ebm_xnode_dsts). Every remote mesh workload unless its namespace says
 * disable; a permissive server accepts both, so the sender prefers mTLS.
 */
export function tunnelDestinations(snap: Snapshot, podCidr: Cidr, localPodSubnet: Cidr): string[] {
  const out = new Set<string>();
  for (const w of snap.workloads) {
    if (w.spec.external || namespaceMode(snap, w.metadata.namespace) === 'disable') continue;
    const ip = workloadIp(snap, w);
    if (ip && containsAddress(podCidr, ip) && !containsAddress(localPodSubnet, ip)) out.add(ip);
  }
  return [...out].sort();
}

/** The IPs of this node's workloads (their pod IPs are in its /24): where its tunnel endpoint may deliver. */
export function localWorkloadIps(snap: Snapshot, localPodSubnet: Cidr): string[] {
  const out = new Set<string>();
  for (const w of snap.workloads) {
    const ip = workloadIp(snap, w);
    if (ip && containsAddress(localPodSubnet, ip)) out.add(ip);
  }
  return [...out].sort();
}

/** The node that runs a pod IP: pods of node index i take the i-th /24 of podCIDR (docs/multinode.md). */
export function nodeIndexOfPodIp(podCidr: Cidr, ip: string): number | undefined {
  const a = parseIp(ip);
  if (a === undefined || !containsAddress(podCidr, ip)) return undefined;
  return Number((a.value - podCidr.addr) >> BigInt(a.family === 4 ? 8 : 64));
}

/** A Namespace's mTLS annotation, checked at apply. */
export function checkMtlsAnnotation(r: AnyResource): Array<{ field: string; message: string }> {
  const v = (r.metadata as { annotations?: Record<string, string> }).annotations?.[MTLS_ANNOTATION];
  return v === undefined || MODES.includes(v) ? [] : [{ field: `metadata.annotations["${MTLS_ANNOTATION}"]`, message: `must be strict, permissive or disable, not "${v}"` }];
}
