/**
 * The policy tables the kernel enforces: the layout proposed to bpf/ (the C
 * side mirrors these; the TS here is the user-space view, one object per map
 * entry, before encoding).
 *
 * Four maps. All are global (not per node): an identity means the same thing
 * everywhere, so one compiled set serves every node, and a node programs only
 * the entries whose subject runs on it if it wants to save memory.
 *
 * 1. ipcache — BPF_MAP_TYPE_HASH (and ipcache6, keyed by a 16-byte address)
 *      key   struct { __be32 addr; }                          4 bytes
 *      value struct { __u32 identity; }                       4 bytes
 *    Workload and node addresses are exact /32s, so a hash (O(1)) beats an
 *    LPM walk; a miss means identity 2 (world).
 *
 * 2. isolation — BPF_MAP_TYPE_HASH
 *      key   struct { __u32 subject; __u8 direction; __u8 pad[3]; }   8 bytes
 *      value struct { __u32 policy_ref; }                     4 bytes
 *    Present = the subject is selected by at least one policy of that
 *    direction, so traffic is denied unless an allow entry matches. Absent =
 *    not isolated, allow without further lookups (the common case costs one
 *    lookup). policy_ref names one isolating policy for drop reasons.
 *
 * 3. allow — BPF_MAP_TYPE_LPM_TRIE (BPF_F_NO_PREALLOC)
 *      key   struct { __u32 prefixlen;                       // 80 + port prefix bits
 *                     __u32 subject; __u32 peer;             // identities (peer 0 = any)
 *                     __u8 direction; __u8 proto;            // 0 ingress, 1 egress; IPPROTO_TCP/UDP
 *                     __be16 port; }                         // 4 + 12 bytes
 *      value struct { __u32 policy_ref; __u16 rule; __u16 pad; }  8 bytes
 *    The trie matches subject, peer, direction and protocol exactly (the
 *    first 80 bits) and the port by prefix: an exact port is /16, "all
 *    ports of a protocol" is /0, and an endPort range is split into the few
 *    aligned blocks that cover it exactly (at most 30), so ranges cost no
 *    per-port entries and no second map. Because every entry is an allow,
 *    "some entry matches" is "the longest match exists": one lookup answers.
 *    The port must be big-endian so the trie's bit order is port order.
 *    `peer` is looked up up to three times: the peer's identity, then 0
 *    (rules with no from/to: any peer, including world), then the CIDR group
 *    from the cidr map below. Groups have the top bit set so they can never
 *    be confused with an identity.
 *
 * 4. cidr — BPF_MAP_TYPE_LPM_TRIE (and cidr6, the same with a 16-byte address)
 *      key   struct { __u32 prefixlen;                       // 64 + address prefix bits
 *                     __u32 subject; __u8 direction; __u8 pad[3];
 *                     __be32 addr; }                          // 4 + 12 bytes
 *      value struct { __u32 group; __u32 policy_ref; __u16 rule; __u16 pad; }  12 bytes
 *    ipBlock peers. The compiler flattens every cidr and except of a
 *    subject's rules into disjoint regions so that the longest-prefix entry
 *    for an address alone decides which rules allow it: an except becomes a
 *    more specific entry whose group is 0 (deny-within-allow) or whose group
 *    holds only the ports of the other rules that still cover it. group
 *    then keys the allow map as the peer. policy_ref/rule name the except
 *    that carved a group-0 hole, for drop reasons.
 *
 * policy_ref indexes `refs` (user space only; 0 = none), so the kernel
 * carries 4 bytes, not a name, and a drop event can still name the policy.
 */

export type Direction = 'ingress' | 'egress';
export type Proto = 'TCP' | 'UDP';

export const DIRECTION_CODE: Readonly<Record<Direction, number>> = { ingress: 0, egress: 1 };
export const PROTO_CODE: Readonly<Record<Proto, number>> = { TCP: 6, UDP: 17 };

/** Peer ids with this bit are CIDR groups, not identities. */
export const CIDR_GROUP_BIT = 0x80000000;

/** Bits of the allow key fixed before the port: subject, peer, direction, proto. */
export const ALLOW_KEY_FIXED_BITS = 80;
/** Bits of the cidr key fixed before the address: subject, direction, pad. */
export const CIDR_KEY_FIXED_BITS = 64;

export interface IsolationEntry {
  subject: number;
  direction: Direction;
  policyRef: number;
}

export interface AllowEntry {
  subject: number;
  /** An identity, 0 for any peer, or a CIDR group (CIDR_GROUP_BIT set). */
  peer: number;
  direction: Direction;
  proto: Proto;
  /** Base of the port block; host order here, big-endian in the key. */
  port: number;
  /** 0..16: the block is [port, port + 2^(16 - portPrefixLen) - 1]. */
  portPrefixLen: number;
  policyRef: number;
  rule: number;
}

export interface CidrEntry {
  subject: number;
  direction: Direction;
  /** Which table: IPv4 regions in ebm_pol_cidr, IPv6 ones in ebm_pol_cidr6. */
  family: 4 | 6;
  /** Network address, as text. */
  addr: string;
  prefixLen: number;
  /** 0: no rule allows this region (an except); else a CIDR group for the allow map. */
  group: number;
  policyRef: number;
  rule: number;
}

export interface IpCacheRow {
  ip: string;
  identity: number;
}

/** A workload as the compiled tables see it; user space only (explain, tests). */
export interface CompiledWorkload {
  ref: string;
  identity: number;
  ip?: string;
  ipv6?: string;
}

export interface CompiledTables {
  ipcache: IpCacheRow[];
  isolation: IsolationEntry[];
  allow: AllowEntry[];
  cidr: CidrEntry[];
  /** policy_ref -> "namespace/name"; index 0 is "" (none). */
  refs: string[];
  workloads: CompiledWorkload[];
  /** Things that compiled but may not mean what the author thinks. */
  warnings: string[];
}

/** The last port of a block. */
export function portBlockEnd(port: number, prefixLen: number): number {
  return port + (1 << (16 - prefixLen)) - 1;
}

/**
 * Splits [lo, hi] into the fewest aligned power-of-two blocks, each an LPM
 * port prefix. Greedy from the low end is optimal for this (the classic
 * range-to-prefix split): at each step take the largest block that starts at
 * `lo`, is aligned there, and does not pass `hi`.
 */
export function portRangeToPrefixes(lo: number, hi: number): Array<{ port: number; prefixLen: number }> {
  const out: Array<{ port: number; prefixLen: number }> = [];
  let cur = lo;
  while (cur <= hi) {
    let size = 16;
    while (size > 0 && (cur % (1 << size) !== 0 || cur + (1 << size) - 1 > hi)) size--;
    out.push({ port: cur, prefixLen: 16 - size });
    cur += 1 << size;
  }
  return out;
}
