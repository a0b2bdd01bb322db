/**
 * Writes the strict-mode tables (src/tunnel/mode.ts) into the pinned maps of
 * bpf/mtls.bpf.c: additions before removals, so that a workload that stays
 * strict is never briefly open, and only what changed.
 */
import type { LoadedObject } from '../kernel/index.js';
import { MTLS_MODE, MtlsSrcKey, MtlsWorkloadKey, U32Key } from '../abi/structs.js';
import { formatCidr, mustParseCidr } from '../net/ipam.js';
import type { MtlsTables } from '../controlplane/mtls-mode.js';

export function applyMtlsTables(obj: LoadedObject, t: MtlsTables): number {
  const workloads = obj.map('ebm_mtls_workloads', MtlsWorkloadKey, U32Key);
  const sources = obj.map('ebm_mtls_sources', MtlsSrcKey, U32Key);
  let ops = 0;
  const wantSrc = new Map(t.sources.map((c) => { const p = mustParseCidr(c, 4); const ip = formatCidr(p).split('/')[0]!; return [`${ip}/${p.len}`, { prefixlen: p.len, ip }]; }));
  const haveSrc = new Set([...sources.keys()].map((k) => `${k.ip}/${k.prefixlen}`));
  for (const [k, v] of wantSrc) if (!haveSrc.has(k)) { sources.set(v, 1); ops++; }
  const haveWl = new Set([...workloads.keys()].map((k) => k.ip));
  for (const ip of t.strict) if (!haveWl.has(ip)) { workloads.set({ ip }, MTLS_MODE.STRICT); ops++; }
  const want = new Set(t.strict);
  for (const ip of haveWl) if (!want.has(ip)) { workloads.delete({ ip }); ops++; }
  for (const k of [...sources.keys()]) if (!wantSrc.has(`${k.ip}/${k.prefixlen}`)) { sources.delete(k); ops++; }
  return ops;
}

/** Cross-node mTLS destinations (ebm_xnode_dsts): additions first, then removals. */
export function applyTunnelDestinations(obj: LoadedObject, ips: readonly string[]): number {
  const m = obj.map('ebm_xnode_dsts', MtlsSrcKey, U32Key);
  const have = new Set([...m.keys()].map((k) => `${k.ip}/${k.prefixlen}`));
  const want = new Set(ips.map((ip) => `${ip}/32`));
  let ops = 0;
  for (const ip of ips) if (!have.has(`${ip}/32`)) { m.set({ prefixlen: 32, ip }, 1); ops++; }
  for (const k of [...m.keys()]) if (!want.has(`${k.ip}/${k.prefixlen}`)) { m.delete(k); ops++; }
  return ops;
}
