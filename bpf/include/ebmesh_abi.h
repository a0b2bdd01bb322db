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
#define EBM_FRONTEND_F_L7       (1u << 1) /* has L7 rules: steer to the node proxy */

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

/* ---- L7 redirect to the node proxy (bpf/include/l7_redirect.h) --------- */

/* Where the node proxy listens; one entry (key 0). port 0 = no proxy. */
struct ebm_l7_proxy {
	__u32 ip;       /* network order */
	__u16 port;     /* network order */
	__u16 pad;
};
EBM_ASSERT_SIZE(struct ebm_l7_proxy, 8);

/* What a steered connection meant to reach, and who asked. */
struct ebm_l7_orig {
	__u32 vip;       /* network order */
	__u16 port;      /* network order */
	__u16 pad;
	__u64 cgroup_id; /* the connecting process's cgroup: the client workload */
};
EBM_ASSERT_SIZE(struct ebm_l7_orig, 16);

/* The client's end of a steered connection, as the proxy sees its peer. */
struct ebm_l7_conn_key {
	__u32 ip;       /* network order */
	__u16 port;     /* network order */
	__u16 pad;
};
EBM_ASSERT_SIZE(struct ebm_l7_conn_key, 8);

/* ---- counters ---------------------------------------------------------- */

/* Index into the per-CPU counter array. Append only. */
enum ebm_counter {
	EBM_CNT_LB_TRANSLATED = 0,   /* a VIP connect/sendmsg given a backend */
	EBM_CNT_LB_NO_BACKEND = 1,   /* VIP with no ready backend: refused */
	EBM_CNT_LB_AFFINITY_HIT = 2, /* backend taken from session affinity */
	EBM_CNT_LB_SLOT_MISS = 3,    /* slot vanished mid-update: refused */
	EBM_CNT_LB_REVNAT_MISS = 4,  /* reply from a backend we cannot map back */
	/* L7 redirect: numbered from 16 so that parallel branches appending
	 * after 4 cannot collide with these. */
	EBM_CNT_L7_REDIRECTED = 16,  /* connect to an L7 frontend sent to the proxy */
	EBM_CNT_L7_NO_PROXY = 17,    /* L7 frontend but no proxy address: plain LB */
	EBM_CNT_L7_ESTABLISHED = 18, /* steered connection published for the proxy */
	EBM_CNT_MAX = 64,
};

/* ---- map sizes (user space reads them from the object, not from here) -- */

#define EBM_LB4_FRONTENDS_MAX 65536
#define EBM_LB4_SLOTS_MAX     262144
#define EBM_LB4_BACKENDS_MAX  65536
#define EBM_LB4_AFFINITY_MAX  65536
#define EBM_LB4_REVNAT_MAX    262144
#define EBM_L7_CONNS_MAX      262144

#endif /* EBMESH_ABI_H */
