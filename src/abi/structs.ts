/**
 * The TS mirror of bpf/include/ebmesh_abi.h: one declaration per struct,
 * in the same order and with the same field names as the C header.
 */
import { struct, scalar, u8, u16, u32, u64, port16, ipv4 } from './struct.js';
export type { ValueOf } from './struct.js';

export const Lb4FrontendKey = struct('ebm_lb4_frontend_key', {
  vip: ipv4, port: port16, proto: u8, pad: u8,
});
export const Lb4Frontend = struct('ebm_lb4_frontend', {
  id: u32, count: u16, flags: u16, affinity_timeout: u32, pad: u32,
});
export const Lb4SlotKey = struct('ebm_lb4_slot_key', { frontend_id: u32, slot: u32 });
export const Lb4Slot = struct('ebm_lb4_slot', { backend_id: u32 });
export const Lb4Backend = struct('ebm_lb4_backend', { ip: ipv4, port: port16, proto: u8, pad: u8 });
export const Lb4AffinityKey = struct('ebm_lb4_affinity_key', { netns_cookie: u64, frontend_id: u32, pad: u32 });
export const Lb4Affinity = struct('ebm_lb4_affinity', { backend_id: u32, pad: u32, last_used_ns: u64 });
export const Lb4RevnatKey = struct('ebm_lb4_revnat_key', { cookie: u64, ip: ipv4, port: port16, pad: u16 });
export const Lb4Revnat = struct('ebm_lb4_revnat', { vip: ipv4, port: port16, pad: u16 });

export const U32Key = scalar('__u32', u32);
export const U64Value = scalar('__u64', u64);

export const FRONTEND_F_AFFINITY = 1 << 0;
export const FRONTEND_F_L7 = 1 << 1;

// L7 redirect to the node proxy (bpf/include/l7_redirect.h).
export const L7Proxy = struct('ebm_l7_proxy', { ip: ipv4, port: port16, pad: u16 });
export const L7Orig = struct('ebm_l7_orig', { vip: ipv4, port: port16, pad: u16, cgroup_id: u64 });
export const L7ConnKey = struct('ebm_l7_conn_key', { ip: ipv4, port: port16, pad: u16 });
export const U64Key = scalar('__u64', u64);

/** enum ebm_counter: index into the ebm_counters per-CPU array. */
export const Counter = {
  LB_TRANSLATED: 0,
  LB_NO_BACKEND: 1,
  LB_AFFINITY_HIT: 2,
  LB_SLOT_MISS: 3,
  LB_REVNAT_MISS: 4,
  L7_REDIRECTED: 16,
  L7_NO_PROXY: 17,
  L7_ESTABLISHED: 18,
} as const;
export const COUNTER_MAX = 64;

export const IPPROTO = { TCP: 6, UDP: 17 } as const;

/** Every struct the C header declares, for the BTF layout test. */
export const abiStructs = [
  Lb4FrontendKey, Lb4Frontend, Lb4SlotKey, Lb4Slot, Lb4Backend,
  Lb4AffinityKey, Lb4Affinity, Lb4RevnatKey, Lb4Revnat,
  L7Proxy, L7Orig, L7ConnKey,
];
