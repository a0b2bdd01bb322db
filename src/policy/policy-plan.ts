/**
 * Decide, then act, for the policy maps: the compiled tables (and this
 * node's workload cgroups) encoded as the exact bytes the kernel maps should
 * hold, and the writes that take the maps from what they hold to that, as
 * pure functions.
 *
 * The maps are never cleared and refilled: an agent restart or a policy
 * change writes only the difference, in an order that keeps every moment
 * between the old verdicts and the new ones (never denying what both allow,
 * never allowing what both deny, per subject):
 *   1. addresses and endpoints (ipcache, cgroup -> identity) put;
 *   2. allow and cidr entries put (a new isolation finds its allows there);
 *   3. isolation put, then isolation deleted (a subject losing isolation
 *      allows everything before its allows go);
 *   4. cidr and allow entries deleted;
 *   5. endpoints and addresses deleted.
 */
import {
  PolAllow, PolAllowKey, PolCidr, PolCidr6Key, PolCidrKey, PolEndpoint, PolIdentity, PolIpcache6Key, PolIpcacheKey, PolIsolation, PolIsolationKey, U64Key,
} from '../abi/structs.js';
import { ipFamilyOf } from '../resources/ip.js';
import {
  ALLOW_KEY_FIXED_BITS, CIDR_KEY_FIXED_BITS, DIRECTION_CODE, PROTO_CODE, type CompiledTables,
} from './index.js';

/** The maps keyed by an address come per family (ipcache6, cidr6: 16-byte addresses). */
export const POLICY_MAPS = ['ipcache', 'ipcache6', 'endpoints', 'allow', 'cidr', 'cidr6', 'isolation'] as const;
export type PolicyMapName = (typeof POLICY_MAPS)[number];

/** Per map: key bytes (hex) -> value bytes (hex). */
export type PolicyMapContents = Record<PolicyMapName, Map<string, string>>;

export interface EndpointRow {
  /** The cgroup id (the cgroup directory's inode number). */
  cgroupId: bigint;
  identity: number;
  /** The workload's own address; undefined = not known (no spoofing check). */
  ip?: string;
  /** Its IPv6 address, likewise. */
  ipv6?: string;
}

export interface PolicyOp {
  map: PolicyMapName;
  op: 'put' | 'del';
  key: string;
  value?: string;
}

export const emptyPolicyContents = (): PolicyMapContents => ({
  ipcache: new Map(), ipcache6: new Map(), endpoints: new Map(), allow: new Map(), cidr: new Map(), cidr6: new Map(), isolation: new Map(),
});

const hex = (b: Buffer): string => b.toString('hex');
const portMask = (len: number): number => (len === 0 ? 0 : (0xffff << (16 - len)) & 0xffff);

/** An endpoint row as the map holds it. */
export function encodeEndpoint(e: EndpointRow): { key: string; value: string } {
  return { key: hex(U64Key.encode(e.cgroupId)), value: hex(PolEndpoint.encode({ identity: e.identity, addr: e.ip ?? '0.0.0.0', addr6: e.ipv6 ?? '::' })) };
}

export function encodePolicy(tables: CompiledTables, endpoints: readonly EndpointRow[]): PolicyMapContents {
  const out = emptyPolicyContents();
  for (const r of tables.ipcache) {
    const value = hex(PolIdentity.encode({ identity: r.identity }));
    if (ipFamilyOf(r.ip) === 6) out.ipcache6.set(hex(PolIpcache6Key.encode({ addr: r.ip })), value);
    else out.ipcache.set(hex(PolIpcacheKey.encode({ addr: r.ip })), value);
  }
  for (const e of endpoints) {
    const { key, value } = encodeEndpoint(e);
    out.endpoints.set(key, value);
  }
  for (const e of tables.isolation) {
    out.isolation.set(
      hex(PolIsolationKey.encode({ subject: e.subject, direction: DIRECTION_CODE[e.direction] })),
      hex(PolIsolation.encode({ policy_ref: e.policyRef })),
    );
  }
  for (const e of tables.allow) {
    out.allow.set(
      hex(PolAllowKey.encode({
        prefixlen: ALLOW_KEY_FIXED_BITS + e.portPrefixLen, subject: e.subject, peer: e.peer >>> 0,
        direction: DIRECTION_CODE[e.direction], proto: PROTO_CODE[e.proto], port: e.port & portMask(e.portPrefixLen),
      })),
      hex(PolAllow.encode({ policy_ref: e.policyRef, rule: e.rule, pad: 0 })),
    );
  }
  for (const e of tables.cidr) {
    const key = { prefixlen: CIDR_KEY_FIXED_BITS + e.prefixLen, subject: e.subject, direction: DIRECTION_CODE[e.direction], addr: e.addr };
    const value = hex(PolCidr.encode({ group: e.group >>> 0, policy_ref: e.policyRef, rule: e.rule, pad: 0 }));
    if (e.family === 6) out.cidr6.set(hex(PolCidr6Key.encode(key)), value);
    else out.cidr.set(hex(PolCidrKey.encode(key)), value);
  }
  return out;
}

export function planPolicy(current: PolicyMapContents, desired: PolicyMapContents): PolicyOp[] {
  const puts = (map: PolicyMapName): PolicyOp[] => {
    const ops: PolicyOp[] = [];
    for (const [key, value] of desired[map]) if (current[map].get(key) !== value) ops.push({ map, op: 'put', key, value });
    return ops;
  };
  const dels = (map: PolicyMapName): PolicyOp[] => {
    const ops: PolicyOp[] = [];
    for (const key of current[map].keys()) if (!desired[map].has(key)) ops.push({ map, op: 'del', key });
    return ops;
  };
  return [
    ...puts('ipcache'), ...puts('ipcache6'), ...puts('endpoints'), ...puts('allow'), ...puts('cidr'), ...puts('cidr6'),
    ...puts('isolation'), ...dels('isolation'),
    ...dels('cidr6'), ...dels('cidr'), ...dels('allow'), ...dels('endpoints'), ...dels('ipcache6'), ...dels('ipcache'),
  ];
}

/** The contents after `ops` (to keep a mirror without reading the maps back). */
export function applyToContents(c: PolicyMapContents, ops: readonly PolicyOp[]): void {
  for (const o of ops) {
    if (o.op === 'put') c[o.map].set(o.key, o.value!);
    else c[o.map].delete(o.key);
  }
}
