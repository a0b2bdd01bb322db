/**
 * The TS mirror of bpf/include/ebmesh_abi.h: one declaration per struct,
 * in the same order and with the same field names as the C header.
 */
import { struct, scalar, u8, u16, u32, u64, port16, ipv4, ipv6, ipAny, bytes } from './struct.js';
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

// IPv6 Services: one map per family for the maps keyed by an address (ebmesh_abi.h says why).
export const Lb6FrontendKey = struct('ebm_lb6_frontend_key', { vip: ipv6, port: port16, proto: u8, pad: u8 });
export const Lb6Backend = struct('ebm_lb6_backend', { ip: ipv6, port: port16, proto: u8, pad: u8 });
export const Lb6RevnatKey = struct('ebm_lb6_revnat_key', { cookie: u64, ip: ipv6, port: port16, pad: u16, pad2: u32 });
export const Lb6Revnat = struct('ebm_lb6_revnat', { vip: ipv6, port: port16, pad: u16 });

// ---- policy (issue 3) ----
export const PolIpcacheKey = struct('ebm_pol_ipcache_key', { addr: ipv4 });
export const PolIpcache6Key = struct('ebm_pol_ipcache6_key', { addr: ipv6 });
export const PolIdentity = struct('ebm_pol_identity', { identity: u32 });
export const PolEndpoint = struct('ebm_pol_endpoint', { identity: u32, addr: ipv4, addr6: ipv6 });
export const PolIsolationKey = struct('ebm_pol_isolation_key', { subject: u32, direction: u8, pad: bytes(3) });
export const PolIsolation = struct('ebm_pol_isolation', { policy_ref: u32 });
export const PolAllowKey = struct('ebm_pol_allow_key', {
  prefixlen: u32, subject: u32, peer: u32, direction: u8, proto: u8, port: port16,
});
export const PolAllow = struct('ebm_pol_allow', { policy_ref: u32, rule: u16, pad: u16 });
export const PolCidrKey = struct('ebm_pol_cidr_key', { prefixlen: u32, subject: u32, direction: u8, pad: bytes(3), addr: ipv4 });
export const PolCidr6Key = struct('ebm_pol_cidr6_key', { prefixlen: u32, subject: u32, direction: u8, pad: bytes(3), addr: ipv6 });
export const PolCidr = struct('ebm_pol_cidr', { group: u32, policy_ref: u32, rule: u16, pad: u16 });
export const PolUdpFlowKey = struct('ebm_pol_udp_flow_key', { cookie: u64, peer_addr: ipv4, peer_port: port16, pad: u16 });
export const PolUdpFlow6Key = struct('ebm_pol_udp_flow6_key', { cookie: u64, peer_addr: ipv6, peer_port: port16, pad: u16, pad2: u32 });
export const PolUdpFlow = struct('ebm_pol_udp_flow', { direction: u8, pad: u8, local_port: port16, pad2: u32 });

/** ebm_flow_event.policy_rule when no rule decided (the isolation default). */
export const RULE_NONE = 0xffff;
/** EBM_REASON_MAX: entries of the ebm_drops per-CPU counters, indexed by enum ebm_reason. */
export const REASON_MAX = 64;

export const U32Key = scalar('__u32', u32);
export const U64Key = scalar('__u64', u64);
export const U64Value = scalar('__u64', u64);

export const FRONTEND_F_AFFINITY = 1 << 0;
export const FRONTEND_F_L7 = 1 << 1;

// L7 redirect to the node proxy (bpf/include/l7_redirect.h).
export const L7Proxy = struct('ebm_l7_proxy', { ip: ipv4, port: port16, pad: u16, ip6: ipv6 });
export const L7Orig = struct('ebm_l7_orig', { vip: ipAny, port: port16, flags: u16, pad: u32, cgroup_id: u64 });
export const L7_ORIG_F_TUNNEL = 1;
export const L7ConnKey = struct('ebm_l7_conn_key', { ip: ipv4, port: port16, pad: u16 });
export const L7Conn6Key = struct('ebm_l7_conn6_key', { ip: ipv6, port: port16, pad: u16 });

/** enum ebm_counter: index into the ebm_counters per-CPU array. */
export const Counter = {
  LB_TRANSLATED: 0,
  LB_NO_BACKEND: 1,
  LB_AFFINITY_HIT: 2,
  LB_SLOT_MISS: 3,
  LB_REVNAT_MISS: 4,
  EVENTS_LOST: 5,
  EVENTS_SENT: 6,
  HTTP_PENDING_FULL: 7,
  POL_ALLOWED: 8,
  POL_DENIED: 9,
  L7_REDIRECTED: 16,
  L7_NO_PROXY: 17,
  L7_ESTABLISHED: 18,
  MTLS_STRICT_DROP: 24,
  MTLS_TUNNELLED: 25,
  // 32..39: the same-node shortcut (issue 5)
  SC_INSERTED: 32,
  SC_MAP_FULL: 33,
  SC_REMOVED: 34,
  SC_REDIRECTED: 35,
  SC_REDIRECTED_BYTES: 36,
  SC_NORMAL: 37,
  SC_BACKPRESSURE: 38,
  SC_DECLINED: 39,
  SC_LEFT: 40,
} as const;
export const COUNTER_MAX = 64;

export const IPPROTO = { TCP: 6, UDP: 17 } as const;

// ---- flow events (observe) ------------------------------------------------

export const HTTP_PATH_MAX = 64;

/** struct ebm_flow_event: the one record of the ebm_events ring buffer; addresses of either family (IPv4 v4-mapped). */
export const FlowEvent = struct('ebm_flow_event', {
  ts_ns: u64, start_ns: u64, cookie: u64, cgroup_id: u64,
  bytes_sent: u64, bytes_received: u64, duration_ns: u64,
  saddr: ipAny, daddr: ipAny, sport: port16, dport: port16,
  orig_daddr: ipAny, orig_dport: port16,
  type: u8, proto: u8, verdict: u8, flags: u8, reason: u16,
  src_identity: u32, dst_identity: u32, policy_ref: u32, policy_rule: u16, http_status: u16,
  frontend_id: u32, srtt_us: u32, retransmits: u32,
  http_method: u8, http_path_len: u8, pad: u16, http_path: bytes(HTTP_PATH_MAX),
});
export const HttpConnKey = struct('ebm_http_conn_key', {
  client_ip: ipv4, server_ip: ipv4, client_port: port16, server_port: port16, pad: u32,
});
export const HttpConn6Key = struct('ebm_http_conn6_key', {
  client_ip: ipv6, server_ip: ipv6, client_port: port16, server_port: port16,
});
export const HttpPending = struct('ebm_http_pending', {
  start_ns: u64, cookie: u64, cgroup_id: u64, orig_daddr: ipAny, orig_dport: port16,
  method: u8, path_len: u8, flags: u8, pad: bytes(3), path: bytes(HTTP_PATH_MAX),
});
export const SockInfo = struct('ebm_sock_info', {
  start_ns: u64, orig_daddr: ipAny, orig_dport: port16, flags: u8, established: u8, frontend_id: u32,
});

/** enum ebm_event_type. Append only. */
export const EventType = { CONNECT: 1, ACCEPT: 2, CLOSE: 3, DROP: 4, HTTP: 5 } as const;
/** enum ebm_verdict. Append only. */
export const Verdict = { FORWARDED: 0, DROPPED: 1, ERROR: 2, AUDIT: 3 } as const;
/** enum ebm_reason. Append only: a code is never reused. */
export const Reason = {
  NONE: 0, NO_BACKEND: 1, LB_SLOT_MISS: 2, POLICY_EGRESS: 3, POLICY_INGRESS: 4, CONN_REFUSED: 5, CONN_RESET: 6,
  SPOOFED_SOURCE: 7, NO_IDENTITY: 8,
} as const;
/** EBM_EV_F_* */
export const EventFlag = { ACTIVE: 1 << 0, SHORTCUT: 1 << 1, SERVER: 1 << 2, PACKET: 1 << 3, INBOUND: 1 << 4 } as const;
/** enum ebm_http_method, in code order. */
export const HttpMethods = ['OTHER', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE'] as const;

/** Every struct the C header declares, for the BTF layout test. */
export const MtlsWorkloadKey = struct('ebm_mtls_workload_key', { ip: ipv4 });
export const MtlsSrcKey = struct('ebm_mtls_src_key', { prefixlen: u32, ip: ipv4 });
export const MtlsWorkload6Key = struct('ebm_mtls_workload6_key', { ip: ipv6 });
export const MtlsSrc6Key = struct('ebm_mtls_src6_key', { prefixlen: u32, ip: ipv6 });
export const MTLS_MODE = { PERMISSIVE: 0, STRICT: 1 } as const;

// ---- same-node shortcut (issue 5) ----------------------------------------

export const ScKey = struct('ebm_sc_key', { local_ip: ipv4, remote_ip: ipv4, local_port: port16, remote_port: port16 });
export const Sc6Key = struct('ebm_sc6_key', { local_ip: ipv6, remote_ip: ipv6, local_port: port16, remote_port: port16 });
export const ScConfig = struct('ebm_sc_config', { enabled: u32, subnet: ipv4, mask: ipv4, min_queue: u32, subnet6: ipv6, mask6: ipv6 });
export const ScSock = struct('ebm_sc_sock', { sent: u64, received: u64, cookie: u64, flags: u32, pad: u32 });
export const ScPeer = struct('ebm_sc_peer', { sk: u64, received: u64 });

export const abiStructs = [
  MtlsWorkloadKey, MtlsSrcKey, MtlsWorkload6Key, MtlsSrc6Key,
  Lb4FrontendKey, Lb4Frontend, Lb4SlotKey, Lb4Slot, Lb4Backend,
  Lb4AffinityKey, Lb4Affinity, Lb4RevnatKey, Lb4Revnat,
  Lb6FrontendKey, Lb6Backend, Lb6RevnatKey, Lb6Revnat,
  FlowEvent, HttpConnKey, HttpConn6Key, HttpPending, SockInfo,
  L7Proxy, L7Orig, L7ConnKey, L7Conn6Key,
  ScKey, Sc6Key, ScConfig, ScSock, ScPeer,
  PolIpcacheKey, PolIpcache6Key, PolIdentity, PolEndpoint, PolIsolationKey, PolIsolation, PolAllowKey, PolAllow,
  PolCidrKey, PolCidr6Key, PolCidr, PolUdpFlowKey, PolUdpFlow6Key, PolUdpFlow,
];
