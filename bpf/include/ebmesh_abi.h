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
 * Both families: every map keyed by an address has one map per family
 * (ebm_lb4_frontends and ebm_lb6_frontends, ...), keyed by a 4-byte or a
 * 16-byte address, so that an IPv4 lookup hashes and compares exactly what
 * it did before IPv6 (with one key widened to 16 bytes, every IPv4 lookup
 * would hash and compare 16 bytes instead of 4, and an LPM trie of both
 * families would hold 128-bit prefixes, the IPv4 ones behind ::ffff:). Maps
 * keyed by an id (slots, affinity, isolation, allow, endpoints, per-socket
 * state) are shared: ids are unique across the families. Values and event
 * records that must carry either family hold a 16-byte address, an IPv4
 * one written v4-mapped (::ffff:a.b.c.d) so user space reads one format,
 * and all zero meaning none.
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

/* ---- socket load balancing (IPv6): the same, with 16-byte addresses -------
 * A frontend's value is struct ebm_lb4_frontend for both families, and its
 * id keys the shared slots and affinity maps; a slot's backend id is looked
 * up in the backend map of the frontend's family. */

struct ebm_lb6_frontend_key {
	__u32 vip[4];   /* network order */
	__u16 port;     /* network order */
	__u8  proto;
	__u8  pad;
};
EBM_ASSERT_SIZE(struct ebm_lb6_frontend_key, 20);

struct ebm_lb6_backend {
	__u32 ip[4];    /* network order */
	__u16 port;     /* network order */
	__u8  proto;
	__u8  pad;
};
EBM_ASSERT_SIZE(struct ebm_lb6_backend, 20);

struct ebm_lb6_revnat_key {
	__u64 cookie;   /* socket cookie */
	__u32 ip[4];    /* backend, network order */
	__u16 port;     /* backend, network order */
	__u16 pad;
	__u32 pad2;
};
EBM_ASSERT_SIZE(struct ebm_lb6_revnat_key, 32);

struct ebm_lb6_revnat {
	__u32 vip[4];
	__u16 port;
	__u16 pad;
};
EBM_ASSERT_SIZE(struct ebm_lb6_revnat, 20);

/* ---- L7 redirect to the node proxy (bpf/include/l7_redirect.h) --------- */

/* Where the node proxy listens; one entry (key 0). port 0 = no proxy. It
 * listens on the node's address of each family: an IPv6 connection is
 * steered to ip6 (all zero: the node has no IPv6 address, and IPv6
 * connections are balanced as plain L4). */
struct ebm_l7_proxy {
	__u32 ip;       /* network order */
	__u16 port;     /* network order */
	__u16 pad;
	__u32 ip6[4];   /* network order */
};
EBM_ASSERT_SIZE(struct ebm_l7_proxy, 24);

/* What a steered connection meant to reach, and who asked: the value of
 * ebm_l7_pending (by cookie) and of both families' ebm_l7_conns. */
struct ebm_l7_orig {
	__u32 vip[4];    /* network order; IPv4 v4-mapped */
	__u16 port;      /* network order */
	__u16 flags;     /* EBM_L7_ORIG_F_* */
	__u32 pad;
	__u64 cgroup_id; /* the connecting process's cgroup: the client workload */
};
/* Cross-node mTLS: vip:port is a backend on another node, to be reached
 * through the tunnel by TCP passthrough (no L7 route involved). */
#define EBM_L7_ORIG_F_TUNNEL 1
EBM_ASSERT_SIZE(struct ebm_l7_orig, 32);

/* The client's end of a steered connection, as the proxy sees its peer. */
struct ebm_l7_conn_key {
	__u32 ip;       /* network order */
	__u16 port;     /* network order */
	__u16 pad;
};
EBM_ASSERT_SIZE(struct ebm_l7_conn_key, 8);

struct ebm_l7_conn6_key {
	__u32 ip[4];    /* network order */
	__u16 port;     /* network order */
	__u16 pad;
};
EBM_ASSERT_SIZE(struct ebm_l7_conn6_key, 20);

/* ---- counters ---------------------------------------------------------- */

/* Index into the per-CPU counter array. Append only. */
enum ebm_counter {
	EBM_CNT_LB_TRANSLATED = 0,   /* a VIP connect/sendmsg given a backend */
	EBM_CNT_LB_NO_BACKEND = 1,   /* VIP with no ready backend: refused */
	EBM_CNT_LB_AFFINITY_HIT = 2, /* backend taken from session affinity */
	EBM_CNT_LB_SLOT_MISS = 3,    /* slot vanished mid-update: refused */
	EBM_CNT_LB_REVNAT_MISS = 4,  /* reply from a backend we cannot map back */
	EBM_CNT_EVENTS_LOST = 5,     /* ring buffer full: a flow event was not written */
	EBM_CNT_EVENTS_SENT = 6,     /* flow events written to the ring buffer */
	EBM_CNT_HTTP_PENDING_FULL = 7, /* no room to remember a request: its response unmatched */
	/* -- policy (issue 3) -- */
	EBM_CNT_POL_ALLOWED = 8,     /* a new flow judged and allowed by policy */
	EBM_CNT_POL_DENIED = 9,      /* a new flow denied (reasons: ebm_drops) */
	/* L7 redirect: numbered from 16 so that parallel branches appending
	 * after 4 cannot collide with these. */
	EBM_CNT_L7_REDIRECTED = 16,  /* connect to an L7 frontend sent to the proxy */
	EBM_CNT_L7_NO_PROXY = 17,    /* L7 frontend but no proxy address: plain LB */
	EBM_CNT_L7_ESTABLISHED = 18, /* steered connection published for the proxy */
	/* mTLS strict mode (bpf/mtls.bpf.c): numbered from 24 so that parallel
	 * branches appending elsewhere cannot collide. */
	EBM_CNT_MTLS_STRICT_DROP = 24, /* plaintext connection to a strict workload refused */
	EBM_CNT_MTLS_TUNNELLED = 25,   /* connect to a remote-node workload steered to the node proxy for the tunnel */
	/* 32..39: the same-node shortcut (issue 5) */
	EBM_CNT_SC_INSERTED = 32,    /* an established mesh socket entered the sockhash */
	EBM_CNT_SC_MAP_FULL = 33,    /* no room in the sockhash: that socket takes the normal path */
	EBM_CNT_SC_REMOVED = 34,     /* a shortcut socket closed (the kernel removes it from the sockhash) */
	EBM_CNT_SC_REDIRECTED = 35,  /* writes handed straight to the peer socket */
	EBM_CNT_SC_REDIRECTED_BYTES = 36, /* their bytes */
	EBM_CNT_SC_NORMAL = 37,      /* writes of a shortcut socket sent the normal way (peer not there, or the normal path not drained yet) */
	EBM_CNT_SC_BACKPRESSURE = 38, /* writes sent the normal way because the peer's queue was full */
	EBM_CNT_SC_DECLINED = 39,    /* writes sent the normal way because one end uses its socket in a way the sockmap path cannot honour (blocking reads, SO_RCVLOWAT, ...) */
	EBM_CNT_SC_LEFT = 40,        /* sockets taken out of the sockhash before their close, to behave exactly as plain TCP */
	EBM_CNT_MAX = 64,
};

/* ---- flow events (observe) ------------------------------------------- */
/*
 * One record type for everything the data path reports to user space
 * through the ebm_events ring buffer: connections (connect, accept, close),
 * drops (load balancing, policy, ...) and HTTP exchanges. Owned by observe;
 * any program may emit one with ebm_event_reserve() (ebmesh_events.h).
 * Fields that do not apply to a type stay zero. Type, verdict and reason
 * codes are append-only.
 */
enum ebm_event_type {
	EBM_EV_CONNECT = 1,     /* this socket's connect() established */
	EBM_EV_ACCEPT = 2,      /* a connection to this socket established */
	EBM_EV_CLOSE = 3,       /* a connection ended: bytes, duration, rtt */
	EBM_EV_DROP = 4,        /* a connection or packet refused: see reason */
	EBM_EV_HTTP = 5,        /* one HTTP/1.x request matched with its response */
};

enum ebm_verdict {
	EBM_VERDICT_FORWARDED = 0,
	EBM_VERDICT_DROPPED = 1,
	EBM_VERDICT_ERROR = 2,  /* the peer or the stack failed it (refused, reset) */
	EBM_VERDICT_AUDIT = 3,  /* a policy would drop it, but it is in audit mode */
};

/* Why: for drops, and for connections that did not end well. Append only. */
enum ebm_reason {
	EBM_REASON_NONE = 0,
	EBM_REASON_NO_BACKEND = 1,      /* Service VIP with no ready backend */
	EBM_REASON_LB_SLOT_MISS = 2,    /* backend table changing under connect() */
	EBM_REASON_POLICY_EGRESS = 3,   /* denied by the source's egress policy */
	EBM_REASON_POLICY_INGRESS = 4,  /* denied by the destination's ingress policy */
	EBM_REASON_CONN_REFUSED = 5,    /* the peer answered the SYN with a reset */
	EBM_REASON_CONN_RESET = 6,      /* an established connection ended by a reset */
	EBM_REASON_SPOOFED_SOURCE = 7,  /* a workload sent from an address not its own */
	EBM_REASON_NO_IDENTITY = 8,     /* a socket in the mesh whose cgroup has no identity */
};
/* Per-reason drop counters (ebm_drops) are indexed by enum ebm_reason. */
#define EBM_REASON_MAX 64

#define EBM_EV_F_ACTIVE    (1u << 0) /* the observing socket dialled (client side) */
#define EBM_EV_F_SHORTCUT  (1u << 1) /* bytes went socket to socket (issue 5) */
#define EBM_EV_F_SERVER    (1u << 2) /* HTTP: first seen at the server's socket */
#define EBM_EV_F_PACKET    (1u << 3) /* drop: judged per packet (cgroup_skb), not at a socket call */
#define EBM_EV_F_INBOUND   (1u << 4) /* drop: the packet was arriving at the socket (ingress hook) */

enum ebm_http_method {
	EBM_HTTP_OTHER = 0,
	EBM_HTTP_GET = 1,
	EBM_HTTP_HEAD = 2,
	EBM_HTTP_POST = 3,
	EBM_HTTP_PUT = 4,
	EBM_HTTP_DELETE = 5,
	EBM_HTTP_PATCH = 6,
	EBM_HTTP_OPTIONS = 7,
	EBM_HTTP_CONNECT = 8,
	EBM_HTTP_TRACE = 9,
};

#define EBM_HTTP_PATH_MAX 64

/*
 * Addresses are 16 bytes for both families: an IPv4 one v4-mapped
 * (::ffff:a.b.c.d), so the family is in the address itself and one record
 * type serves both (a second event type would have doubled every consumer).
 */
struct ebm_flow_event {
	__u64 ts_ns;            /* bpf_ktime_get_ns() when emitted */
	__u64 start_ns;         /* connection established / request seen */
	__u64 cookie;           /* socket cookie of the observing socket */
	__u64 cgroup_id;        /* cgroup of the observing socket, 0 if unknown */
	__u64 bytes_sent;       /* close: bytes acked by the peer */
	__u64 bytes_received;   /* close: bytes received */
	__u64 duration_ns;      /* close: connection lifetime; http: latency */
	__u32 saddr[4];         /* network order; for http: the client */
	__u32 daddr[4];         /* network order; for http: the server */
	__u16 sport;            /* network order */
	__u16 dport;            /* network order */
	__u32 orig_daddr[4];    /* the Service VIP dialled, all zero if none */
	__u16 orig_dport;       /* network order */
	__u8  type;             /* enum ebm_event_type */
	__u8  proto;            /* IPPROTO_* */
	__u8  verdict;          /* enum ebm_verdict */
	__u8  flags;            /* EBM_EV_F_* */
	__u16 reason;           /* enum ebm_reason */
	__u32 src_identity;     /* 0 if unknown */
	__u32 dst_identity;     /* 0 if unknown */
	__u32 policy_ref;       /* policy that decided a drop, 0 if none */
	__u16 policy_rule;      /* rule index within it */
	__u16 http_status;      /* http: response status code */
	__u32 frontend_id;      /* ebm_lb4_frontend.id when orig_daddr != 0 */
	__u32 srtt_us;          /* close: smoothed RTT, microseconds */
	__u32 retransmits;      /* close: total retransmitted segments */
	__u8  http_method;      /* enum ebm_http_method */
	__u8  http_path_len;    /* valid bytes in http_path */
	__u16 pad;
	__u8  http_path[EBM_HTTP_PATH_MAX]; /* request target, truncated */
};
EBM_ASSERT_SIZE(struct ebm_flow_event, 216);

/* HTTP requests awaiting their response, keyed by the connection as seen
 * from the client, so that the client's and the server's socket (both in
 * the mesh on one node) agree on one entry and report the exchange once. */
struct ebm_http_conn_key {
	__u32 client_ip;        /* network order */
	__u32 server_ip;
	__u16 client_port;      /* network order */
	__u16 server_port;
	__u32 pad;
};
EBM_ASSERT_SIZE(struct ebm_http_conn_key, 16);

struct ebm_http_conn6_key {
	__u32 client_ip[4];     /* network order */
	__u32 server_ip[4];
	__u16 client_port;      /* network order */
	__u16 server_port;
};
EBM_ASSERT_SIZE(struct ebm_http_conn6_key, 36);

/* The value of both families' pending maps. */
struct ebm_http_pending {
	__u64 start_ns;
	__u64 cookie;           /* the socket that saw the request first */
	__u64 cgroup_id;
	__u32 orig_daddr[4];    /* the Service VIP dialled (IPv4 v4-mapped), all zero if none */
	__u16 orig_dport;
	__u8  method;
	__u8  path_len;
	__u8  flags;            /* EBM_EV_F_SERVER when first seen at the server */
	__u8  pad[3];
	__u8  path[EBM_HTTP_PATH_MAX];
};
EBM_ASSERT_SIZE(struct ebm_http_pending, 112);

/* Per-socket state kept by sockops from established to close. */
struct ebm_sock_info {
	__u64 start_ns;
	__u32 orig_daddr[4];    /* IPv4 v4-mapped, all zero if none */
	__u16 orig_dport;
	__u8  flags;            /* EBM_EV_F_* */
	__u8  established;
	__u32 frontend_id;
};
EBM_ASSERT_SIZE(struct ebm_sock_info, 32);

/* ---- same-node shortcut (issue 5) ------------------------------------ */

/* A shortcut socket in the ebm_sc_sockets sockhash, keyed by its own view
 * of the connection; the peer is found under the mirrored key. */
struct ebm_sc_key {
	__u32 local_ip;         /* network order */
	__u32 remote_ip;
	__u16 local_port;       /* network order */
	__u16 remote_port;
};
EBM_ASSERT_SIZE(struct ebm_sc_key, 12);

/* The same for IPv6 sockets, in ebm_sc_sockets6 and ebm_sc_peers6. */
struct ebm_sc6_key {
	__u32 local_ip[4];      /* network order */
	__u32 remote_ip[4];
	__u16 local_port;       /* network order */
	__u16 remote_port;
};
EBM_ASSERT_SIZE(struct ebm_sc6_key, 36);

/* The one entry of ebm_sc_config, written by the agent. All zero (as
 * created) means off: nothing enters the sockhash. */
struct ebm_sc_config {
	__u32 enabled;
	__u32 subnet;           /* this node's pod subnet, network order */
	__u32 mask;             /* network order */
	__u32 min_queue;        /* bytes a peer may hold unread before writes take the normal path (at least its SO_RCVBUF) */
	__u32 subnet6[4];       /* this node's IPv6 pod subnet; mask6 all zero: no IPv6 shortcut */
	__u32 mask6[4];
};
EBM_ASSERT_SIZE(struct ebm_sc_config, 48);

/* Per socket (sk storage): the bytes that went socket to socket, which
 * the TCP counters (bytes_acked/bytes_received) never see. Observe adds
 * them in the close event. */
struct ebm_sc_sock {
	__u64 sent;
	__u64 received;
	__u64 cookie;           /* socket cookie (sk_msg cannot ask for it) */
	__u32 flags;            /* EBM_SC_F_* */
	__u32 pad;
};
EBM_ASSERT_SIZE(struct ebm_sc_sock, 32);

#define EBM_SC_F_INSERTED (1u << 0) /* the socket is (was) in the sockhash */
#define EBM_SC_F_LEFT     (1u << 1) /* it left the sockhash before its close (EBM_CNT_SC_LEFT) */

/* Per shortcut socket, by its ebm_sc_key, for the peer's sk_msg: where the
 * socket is (read through BTF, never written: its queue and TCP state) and
 * the bytes handed to it. Its close moves `received` into its ebm_sc_sock
 * and deletes the entry; observe's close report adds both, so it is exact
 * whichever of the two sockops programs runs first. */
struct ebm_sc_peer {
	__u64 sk;               /* kernel address of the socket; 0 once it left the sockhash */
	__u64 received;         /* bytes redirected into it (readers mask EBM_SC_PEER_LEAVING) */
};
/* Set in `received` for the few instructions in which the socket decides
 * whether it may leave the sockhash: a writer adds its bytes before it
 * redirects and backs off when it sees the bit, the leaver sets the bit and
 * stays when it sees bytes. One atomic word, so no write can be redirected
 * into a socket that is leaving (bpf/shortcut.bpf.c, sc_leave). */
#define EBM_SC_PEER_LEAVING (1ULL << 63)
EBM_ASSERT_SIZE(struct ebm_sc_peer, 16);

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

struct ebm_pol_ipcache6_key {
	__u32 addr[4];  /* network order */
};
EBM_ASSERT_SIZE(struct ebm_pol_ipcache6_key, 16);

/* A workload on this node, by the cgroup its processes run in: who a socket
 * belongs to, whatever address it claims. */
struct ebm_pol_endpoint {
	__u32 identity;
	__u32 addr;     /* the workload's own address, network order; 0: not known */
	__u32 addr6[4]; /* its IPv6 address; all zero: not known */
};
EBM_ASSERT_SIZE(struct ebm_pol_endpoint, 24);

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

/* The same for IPv6 peers (ebm_pol_cidr6), the address by prefix after 64 fixed bits. */
struct ebm_pol_cidr6_key {
	__u32 prefixlen;
	__u32 subject;
	__u8  direction;
	__u8  pad[3];
	__u32 addr[4];  /* network order */
};
EBM_ASSERT_SIZE(struct ebm_pol_cidr6_key, 28);

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

struct ebm_pol_udp_flow6_key {
	__u64 cookie;   /* socket cookie */
	__u32 peer_addr[4];
	__u16 peer_port;
	__u16 pad;
	__u32 pad2;
};
EBM_ASSERT_SIZE(struct ebm_pol_udp_flow6_key, 32);

struct ebm_pol_udp_flow {
	__u8  direction; /* who started it: EBM_DIR_EGRESS = this socket */
	__u8  pad;
	__u16 local_port; /* network order; the judged port for ingress flows */
	__u32 pad2;
};
EBM_ASSERT_SIZE(struct ebm_pol_udp_flow, 8);

/* ---- map sizes (user space reads them from the object, not from here) -- */
/* The per-connection maps (reverse NAT, L7 steering, UDP policy flows, HTTP
 * exchanges) are resized by the agent from MeshConfig spec.datapath.connections
 * when it first makes them (src/agent/map-sizes.ts); these are the defaults. */

#define EBM_LB4_FRONTENDS_MAX 65536
#define EBM_LB4_SLOTS_MAX     262144
#define EBM_LB4_BACKENDS_MAX  65536
#define EBM_LB4_AFFINITY_MAX  65536
#define EBM_LB4_REVNAT_MAX    65536
#define EBM_EVENTS_RING_BYTES (8u << 20) /* ~47k events of 176 bytes */
#define EBM_HTTP_PENDING_MAX  65536
#define EBM_L7_CONNS_MAX      65536
/* The IPv6 per-connection maps (revnat6, l7_conns6, udp_flows6,
 * http_pending6) default to a quarter: they are preallocated whether the
 * mesh is dual-stack or not, and most of a node's connections are IPv4.
 * spec.datapath.connections sizes both families alike. */
#define EBM_CONNS6_MAX        16384

/* ---- mTLS strict mode (bpf/mtls.bpf.c) -------------------------------- */

#define EBM_MTLS_PERMISSIVE 0
#define EBM_MTLS_STRICT     1

/* A workload of this node by its IP: its namespace's mode. */
struct ebm_mtls_workload_key {
	__u32 ip;       /* network order */
};
EBM_ASSERT_SIZE(struct ebm_mtls_workload_key, 4);

struct ebm_mtls_workload6_key {
	__u32 ip[4];    /* network order */
};
EBM_ASSERT_SIZE(struct ebm_mtls_workload6_key, 16);

/* Sources a strict workload accepts connections from (LPM trie key). */
struct ebm_mtls_src_key {
	__u32 prefixlen; /* host order, as LPM tries want it */
	__u32 ip;        /* network order */
};
EBM_ASSERT_SIZE(struct ebm_mtls_src_key, 8);

struct ebm_mtls_src6_key {
	__u32 prefixlen; /* host order */
	__u32 ip[4];     /* network order */
};
EBM_ASSERT_SIZE(struct ebm_mtls_src6_key, 20);

#define EBM_MTLS_WORKLOADS_MAX 65536
#define EBM_MTLS_SOURCES_MAX   1024

/* Cross-node mTLS: destinations (pod IPs of other nodes, LPM key
 * ebm_mtls_src_key) whose connections go through the node proxy and the
 * tunnel. Value: a __u32, 1 = tunnel. Written by the agent. */
#define EBM_XNODE_DSTS_MAX 65536

#define EBM_SC_SOCKETS_MAX    65536 /* sockets, two per shortcut connection */

#define EBM_POL_IPCACHE_MAX   65536
#define EBM_POL_ENDPOINTS_MAX 16384
#define EBM_POL_ISOLATION_MAX 65536
#define EBM_POL_ALLOW_MAX     1048576
#define EBM_POL_CIDR_MAX      262144
#define EBM_POL_UDP_FLOWS_MAX 65536

#endif /* EBMESH_ABI_H */
