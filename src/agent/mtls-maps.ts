/**
 * Writes the strict-mode tables (controlplane/mtls-mode.ts) into the pinned
 * maps of bpf/mtls.bpf.c, each entry into the map of its family: additions
 * before removals, so that a workload that stays strict is never briefly
 * open, and only what changed.
 */
import type { LoadedObject, TypedMap } from '../kernel/index.js';
import { MTLS_MODE, MtlsSrc6Key, MtlsSrcKey, MtlsWorkload6Key, MtlsWorkloadKey, U32Key } from '../abi/structs.js';
import { formatCidr, mustParseCidr } from '../net/ipam.js';
import { ipFamilyOf } from '../resources/ip.js';
import type { MtlsTables } from '../controlplane/mtls-mode.js';

type Family = 4 | 6;
const familyOf = (ip: string): Family => ipFamilyOf(ip) ?? 4;

/** A set of keys in one map per family, brought to what is wanted: puts first, then deletes. */
function sync<K>(maps: Record<Family, TypedMap<K, number>>, want: Map<string, { family: Family; key: K }>, name: (k: K) => string, value: number): number {
  let ops = 0;
  const have = new Map<string, { family: Family; key: K }>();
  for (const family of [4, 6] as const) for (const key of maps[family].keys()) have.set(name(key), { family, key });
  for (const [n, w] of want) if (!have.has(n)) { maps[w.family].set(w.key, value); ops++; }
  for (const [n, h] of have) if (!want.has(n)) { maps[h.family].delete(h.key); ops++; }
  return ops;
}

function lpmKeys(cidrs: readonly string[]): Map<string, { family: Family; key: { prefixlen: number; ip: string } }> {
  return new Map(cidrs.map((c) => {
    const p = mustParseCidr(c);
    const ip = formatCidr(p).split('/')[0]!;
    return [`${ip}/${p.len}`, { family: p.family, key: { prefixlen: p.len, ip } }];
  }));
}

export function applyMtlsTables(obj: LoadedObject, t: MtlsTables): number {
  const workloads = { 4: obj.map('ebm_mtls_workloads', MtlsWorkloadKey, U32Key), 6: obj.map('ebm_mtls_workloads6', MtlsWorkload6Key, U32Key) };
  const sources = { 4: obj.map('ebm_mtls_sources', MtlsSrcKey, U32Key), 6: obj.map('ebm_mtls_sources6', MtlsSrc6Key, U32Key) };
  // Sources first: a new strict workload finds its allowed sources already there.
  let ops = sync(sources, lpmKeys(t.sources), (k) => `${k.ip}/${k.prefixlen}`, 1);
  ops += sync(workloads, new Map(t.strict.map((ip) => [ip, { family: familyOf(ip), key: { ip } }])), (k) => k.ip, MTLS_MODE.STRICT);
  return ops;
}

/** Cross-node mTLS destinations (ebm_xnode_dsts, ebm_xnode_dsts6): additions first, then removals. */
export function applyTunnelDestinations(obj: LoadedObject, ips: readonly string[]): number {
  const maps = { 4: obj.map('ebm_xnode_dsts', MtlsSrcKey, U32Key), 6: obj.map('ebm_xnode_dsts6', MtlsSrc6Key, U32Key) };
  return sync(maps, lpmKeys(ips.map((ip) => `${ip}/${familyOf(ip) === 4 ? 32 : 128}`)), (k) => `${k.ip}/${k.prefixlen}`, 1);
}
