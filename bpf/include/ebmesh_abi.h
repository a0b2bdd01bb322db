/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The one ABI between ebmesh's kernel programs and user space.
 *
 * Every map and every struct that crosses the kernel boundary is declared
 * here and nowhere else. User space mirrors each struct once, in
 * src/abi/structs.ts, and a test checks that mirror against the BTF of the
 * built objects, so a drift in size or offset fails the build, not the data
 * path. Addresses and ports are stored in network byte order, exactly as the
 * socket hooks see them, so the hot path never swaps bytes.
 *
 * Reason and counter codes are append-only: a code is never reused.
 */
#ifndef EBMESH_ABI_H
#define EBMESH_ABI_H

#include <linux/types.h>

#define EBM_ASSERT_SIZE(type, size) \
	_Static_assert(sizeof(type) == (size), "ABI size of " #type " changed")

/* ---- socket load balancing (IPv4) ------------------------------------ */

/* A frontend is one (VIP, port, protocol) of a Service. */
struct ebm_lb4_frontend_key {
	__u32 vip;      /* network order */
	__u16 port;     /* network order */
	__u8  proto;    /* IPPROTO_TCP / IPPROTO_UDP */
	__u8  pad;
};
EBM_ASSERT_SIZE(struct ebm_lb4_frontend_key, 8);

#define EBM_FRONTEND_F_AFFINITY (1u << 0) /* sessionAffinity: ClientIP */

struct ebm_lb4_frontend {
	__u32 id;               /* stable id; keys the slots of this frontend */
	__u16 count;            /* ready backends in slots 0..count-1 */
	__u16 flags;            /* EBM_FRONTEND_F_* */
	__u32 affinity_timeout; /* seconds, when EBM_FRONTEND_F_AFFINITY */
	__u32 pad;
};
EBM_ASSERT_SIZE(struct ebm_lb4_frontend, 16);

struct ebm_lb4_slot_key {
	__u32 frontend_id;
	__u32 slot;
};
EBM_ASSERT_SIZE(struct ebm_lb4_slot_key, 8);

struct ebm_lb4_slot {
	__u32 backend_id;
};
EBM_ASSERT_SIZE(struct ebm_lb4_slot, 4);

struct ebm_lb4_backend {
	__u32 ip;       /* network order */
	__u16 port;     /* network order */
	__u8  proto;
	__u8  pad;
};
EBM_ASSERT_SIZE(struct ebm_lb4_backend, 8);

/* Session affinity: the client is its network namespace, since at connect
 * time a socket has no source address yet but always has a netns. */
struct ebm_lb4_affinity_key {
	__u64 netns_cookie;
	__u32 frontend_id;
	__u32 pad;
};
EBM_ASSERT_SIZE(struct ebm_lb4_affinity_key, 16);

struct ebm_lb4_affinity {
	__u32 backend_id;
	__u32 pad;
	__u64 last_used_ns;     /* bpf_ktime_get_ns() */
};
EBM_ASSERT_SIZE(struct ebm_lb4_affinity, 16);

/* Reverse translation, so that getpeername()/recvmsg() show the VIP the
 * application dialled rather than the backend it was given. */
struct ebm_lb4_revnat_key {
	__u64 cookie;   /* socket cookie */
	__u32 ip;       /* backend, network order */
	__u16 port;     /* backend, network order */
	__u16 pad;
};
EBM_ASSERT_SIZE(struct ebm_lb4_revnat_key, 16);

struct ebm_lb4_revnat {
	__u32 vip;
	__u16 port;
	__u16 pad;
};
EBM_ASSERT_SIZE(struct ebm_lb4_revnat, 8);

/* ---- counters ---------------------------------------------------------- */

/* Index into the per-CPU counter array. Append only. */
enum ebm_counter {
	EBM_CNT_LB_TRANSLATED = 0,   /* a VIP connect/sendmsg given a backend */
	EBM_CNT_LB_NO_BACKEND = 1,   /* VIP with no ready backend: refused */
	EBM_CNT_LB_AFFINITY_HIT = 2, /* backend taken from session affinity */
	EBM_CNT_LB_SLOT_MISS = 3,    /* slot vanished mid-update: refused */
	EBM_CNT_LB_REVNAT_MISS = 4,  /* reply from a backend we cannot map back */
	/* -- policy (issue 3) -- */
	EBM_CNT_POL_ALLOWED = 5,     /* a new flow judged and allowed by policy */
	EBM_CNT_POL_DENIED = 6,      /* a new flow denied (reasons: ebm_drops) */
	EBM_CNT_POL_EVENT_LOST = 7,  /* ring buffer full: a drop event not emitted */
	EBM_CNT_MAX = 64,
};

/* ---- identity-based network policy (IPv4) ------------------------------
 *
 * Layout and the reasons for it: src/policy/tables.ts. Identities: 0 is the
 * any-peer wildcard of the allow map, 1 the node itself, 2 the world, 256
 * and up allocated per (namespace, labels); CIDR groups have the top bit.
 */
#define EBM_IDENTITY_ANY   0
#define EBM_IDENTITY_HOST  1
#define EBM_IDENTITY_WORLD 2
#define EBM_CIDR_GROUP_BIT 0x80000000u

enum ebm_direction {
	EBM_DIR_INGRESS = 0,
	EBM_DIR_EGRESS = 1,
};

/* ipcache: workload (and node) address -> identity. A miss is the world. */
struct ebm_pol_ipcache_key {
	__u32 addr;     /* network order */
};
EBM_ASSERT_SIZE(struct ebm_pol_ipcache_key, 4);

struct ebm_pol_identity {
	__u32 identity;
};
EBM_ASSERT_SIZE(struct ebm_pol_identity, 4);

/* A workload on this node, by the cgroup its processes run in: who a socket
 * belongs to, whatever address it claims. */
struct ebm_pol_endpoint {
	__u32 identity;
	__u32 addr;     /* the workload's own address, network order */
};
EBM_ASSERT_SIZE(struct ebm_pol_endpoint, 8);

struct ebm_pol_isolation_key {
	__u32 subject;
	__u8  direction; /* enum ebm_direction */
	__u8  pad[3];
};
EBM_ASSERT_SIZE(struct ebm_pol_isolation_key, 8);

struct ebm_pol_isolation {
	__u32 policy_ref; /* one policy that isolates, for drop reasons */
};
EBM_ASSERT_SIZE(struct ebm_pol_isolation, 4);

/* LPM: subject, peer, direction, proto exact (80 bits), port by prefix. */
#define EBM_POL_ALLOW_FIXED_BITS 80
struct ebm_pol_allow_key {
	__u32 prefixlen;
	__u32 subject;
	__u32 peer;     /* identity, EBM_IDENTITY_ANY, or a CIDR group */
	__u8  direction;
	__u8  proto;
	__u16 port;     /* network order, so the trie's bit order is port order */
};
EBM_ASSERT_SIZE(struct ebm_pol_allow_key, 16);

struct ebm_pol_allow {
	__u32 policy_ref;
	__u16 rule;
	__u16 pad;
};
EBM_ASSERT_SIZE(struct ebm_pol_allow, 8);

/* LPM: subject, direction exact (64 bits), address by prefix. */
#define EBM_POL_CIDR_FIXED_BITS 64
struct ebm_pol_cidr_key {
	__u32 prefixlen;
	__u32 subject;
	__u8  direction;
	__u8  pad[3];
	__u32 addr;     /* network order */
};
EBM_ASSERT_SIZE(struct ebm_pol_cidr_key, 16);

struct ebm_pol_cidr {
	__u32 group;      /* 0: an except hole; else the peer to look up in allow */
	__u32 policy_ref;
	__u16 rule;
	__u16 pad;
};
EBM_ASSERT_SIZE(struct ebm_pol_cidr, 12);

/* UDP has no connection: a socket's flows with a peer remember who started
 * them, so replies are judged as part of the flow, not as new traffic. */
struct ebm_pol_udp_flow_key {
	__u64 cookie;   /* socket cookie */
	__u32 peer_addr;
	__u16 peer_port;
	__u16 pad;
};
EBM_ASSERT_SIZE(struct ebm_pol_udp_flow_key, 16);

struct ebm_pol_udp_flow {
	__u8  direction; /* who started it: EBM_DIR_EGRESS = this socket */
	__u8  pad;
	__u16 local_port; /* network order; the judged port for ingress flows */
	__u32 pad2;
};
EBM_ASSERT_SIZE(struct ebm_pol_udp_flow, 8);

/* ==== shared: flow events and drop reasons ==============================
 * One record type for everything the data path reports through the
 * ebm_events ring buffer (policy drops now; connect/accept/close/HTTP
 * events from observability later: add event types and hooks, append-only,
 * and reuse the fields). Addresses and ports in network order.
 */
enum ebm_event_type {
	EBM_EV_DROP = 1,        /* a packet or a socket operation was refused */
};

enum ebm_hook {
	EBM_HOOK_CONNECT4 = 1,
	EBM_HOOK_SENDMSG4 = 2,
	EBM_HOOK_SKB_INGRESS = 3,
	EBM_HOOK_SKB_EGRESS = 4,
};

enum ebm_verdict {
	EBM_VERDICT_ALLOW = 0,
	EBM_VERDICT_DENY = 1,
};

/* Why something was dropped. Append only; codes are never reused. Also the
 * index into the ebm_drops per-CPU counters. */
enum ebm_drop_reason {
	EBM_DROP_NONE = 0,
	EBM_DROP_POLICY_EGRESS = 1,   /* source isolated for egress, no rule allows */
	EBM_DROP_POLICY_INGRESS = 2,  /* destination isolated for ingress, no rule allows */
	EBM_DROP_SPOOFED_SOURCE = 3,  /* a workload sent from an address not its own */
	EBM_DROP_NO_IDENTITY = 4,     /* a socket in the mesh whose cgroup has no identity */
	EBM_DROP_REASON_MAX = 64,
};

struct ebm_flow_event {
	__u64 ts_ns;          /* bpf_ktime_get_ns() */
	__u64 cookie;         /* socket cookie, 0 if none */
	__u64 cgroup_id;      /* the socket's cgroup */
	__u32 saddr;
	__u32 daddr;
	__u16 sport;          /* 0 when not known yet (connect time) */
	__u16 dport;
	__u8  type;           /* enum ebm_event_type */
	__u8  hook;           /* enum ebm_hook */
	__u8  proto;          /* IPPROTO_* */
	__u8  direction;      /* enum ebm_direction, of the judged subject */
	__u32 src_identity;
	__u32 dst_identity;
	__u32 policy_ref;     /* deciding (or isolating) policy, 0 none */
	__u16 rule;
	__u16 reason;         /* enum ebm_drop_reason */
	__u8  verdict;        /* enum ebm_verdict */
	__u8  pad[3];
	__u32 bytes;          /* packet length, 0 for socket operations */
};
EBM_ASSERT_SIZE(struct ebm_flow_event, 64);
/* ==== end shared ======================================================== */

/* ---- map sizes (user space reads them from the object, not from here) -- */

#define EBM_LB4_FRONTENDS_MAX 65536
#define EBM_LB4_SLOTS_MAX     262144
#define EBM_LB4_BACKENDS_MAX  65536
#define EBM_LB4_AFFINITY_MAX  65536
#define EBM_LB4_REVNAT_MAX    262144
#define EBM_POL_IPCACHE_MAX   65536
#define EBM_POL_ENDPOINTS_MAX 16384
#define EBM_POL_ISOLATION_MAX 65536
#define EBM_POL_ALLOW_MAX     1048576
#define EBM_POL_CIDR_MAX      262144
#define EBM_POL_UDP_FLOWS_MAX 262144
#define EBM_EVENTS_BYTES      (1 << 22)

#endif /* EBMESH_ABI_H */
