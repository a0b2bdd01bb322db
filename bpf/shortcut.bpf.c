// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The same-node shortcut: between two mesh sockets on this node, a write
 * is handed straight to the peer socket's receive queue (sockmap), without
 * crossing TCP/IP, the veths and the bridge.
 *
 * A socket in the sockhash is not a plain TCP socket any more: the kernel
 * swaps its receive path for tcp_bpf_recvmsg (net/ipv4/tcp_bpf.c), which
 * differs from tcp_recvmsg where the application can see it:
 *  - a reader that sleeps in it returns EAGAIN on any wakeup that brings
 *    no data (its own FIN acknowledged, a reset, a signal, another thread's
 *    shutdown): a blocking recv() fails, and SO_RCVTIMEO ends early;
 *  - data in its sockmap queue ignores SO_RCVLOWAT, SO_PEEK_OFF, TCP_INQ
 *    and receive timestamps;
 *  - its FIONREAD counts the sockmap queue only, not TCP's receive queue.
 * So this program keeps every socket that may be used in those ways out of
 * the shortcut, and a socket that turns out to be used so leaves the
 * sockhash while nothing was ever redirected into it (then nothing can be
 * lost). What no program can observe beforehand (a reader that splices,
 * one that closes with data unread) is listed in docs/shortcut.md.
 *
 * sockops puts an established mesh socket whose both ends are in this
 * node's pod subnet of its family into that family's sockhash
 * (ebm_sc_sockets for IPv4, v4-mapped sockets included; ebm_sc_sockets6
 * for native IPv6), keyed by its own 4-tuple, when it cannot sleep in a
 * read: a connecting socket that is non-blocking, an
 * accepted one whose listener is non-blocking (what accept() will give is
 * unknown yet; a listener's mode is recorded at listen()), and only if its
 * peer is in too. The connection was admitted at connect() (load
 * balancing, policy): only established connections enter, so nothing is
 * decided here. The kernel removes a socket from the sockhash when it
 * closes.
 *
 * sk_msg runs on every write of such a socket and redirects it to the peer
 * found under the mirrored key, but only when that keeps the byte stream
 * in order and bounded, and the peer exact:
 *  - in order: a redirected write lands in the peer's psock queue, which
 *    the reader drains before its TCP receive queue. So a write may be
 *    redirected only when everything this socket sent the normal way has
 *    reached the peer (our write_seq == its rcv_nxt) and been read by it
 *    (its copied_seq == rcv_nxt). Otherwise it goes the normal way too,
 *    until the normal path is drained. (Normal after redirected is always in
 *    order: the psock queue is read first.)
 *  - bounded: the psock queue has no limit of its own (it is charged to
 *    the protocol's global memory only), so a slow reader would let a
 *    writer queue without end. When the peer holds more unread redirected
 *    bytes than max(its SO_RCVBUF, min_queue), writes go the normal way,
 *    where TCP flow control blocks the writer.
 *  - exact: the reader is non-blocking (or not accepted yet) and uses none
 *    of the receive options above; the writer is non-blocking (a blocking
 *    one reads blocking too: its writes go the normal way so that its own
 *    transmit runs sockops, which takes it out) and has not shut down its
 *    sending side (a write after shutdown(SHUT_WR) must fail with EPIPE).
 * A socket that receives data the normal way while it is in the sockhash
 * (the peer declined, or raced the handshake) leaves at that segment,
 * before the data is queued: members mark their normal-path segments with
 * a TCP option so that the receiver's sockops sees them (header prediction
 * would skip it otherwise).
 *
 * Every redirected byte is counted on both sockets (ebm_sc_sock), so
 * observe's close report stays exact, and HTTP start lines in redirected
 * writes are parsed here with observe's parser (cgroup_skb never sees
 * them).
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/socket.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>
#include "ebmesh_abi.h"
#include "ebmesh_maps.h"
#include "ebmesh_events.h"
#include "ebmesh_http.h"
#include "v4mapped.h"
#define EBM_TCP_CLOSE 7
#define EBM_TCP_LISTEN 10
#define EBM_O_NONBLOCK 04000
#define EBM_RCV_SHUTDOWN 1
#define EBM_SEND_SHUTDOWN 2

/* The TCP option members put on their normal-path segments: an
 * experimental option (RFC 6994, kind 253) with our own 16-bit ExID. */
#define EBM_SC_OPT_KIND 253
#define EBM_SC_OPT_EXID 0xeb5c
#define EBM_SC_OPT_LEN 4

#define EBM_SC_CB_FLAGS (BPF_SOCK_OPS_STATE_CB_FLAG | BPF_SOCK_OPS_PARSE_UNKNOWN_HDR_OPT_CB_FLAG | \
			 BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG)
#define EBM_SC_HDR_FLAGS (BPF_SOCK_OPS_PARSE_UNKNOWN_HDR_OPT_CB_FLAG | BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG)

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__type(key, struct ebm_sc_key);
	__type(value, __u64);
	__uint(max_entries, EBM_SC_SOCKETS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_sc_sockets SEC(".maps");

/* IPv6 sockets: their own sockhash (the sk_msg program is attached to both). */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__type(key, struct ebm_sc6_key);
	__type(value, __u64);
	__uint(max_entries, EBM_CONNS6_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_sc_sockets6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct ebm_sc_config);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_sc_config SEC(".maps");

/* Listening mesh sockets, by network namespace, socket family and port: 1
 * when the listener was non-blocking at listen(). The family is the
 * socket's (an accepted socket has its listener's), so an AF_INET and an
 * IPV6_V6ONLY AF_INET6 listener on one port are told apart, and a
 * dual-stack listener is found for its v4-mapped children. Only this
 * program reads it. */
struct sc_listener_key {
	__u64 netns;
	__u32 port;             /* host order */
	__u32 family;           /* AF_INET or AF_INET6 */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct sc_listener_key);
	__type(value, __u32);
	__uint(max_entries, 4096);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_sc_listeners SEC(".maps");

/* Kernel fields read through BTF (CO-RE: offsets fixed at load). */
struct file___ebm {
	unsigned int f_flags;
} __attribute__((preserve_access_index));

struct socket___ebm {
	struct file___ebm *file;
} __attribute__((preserve_access_index));

struct sock_common___ebm {
	unsigned long skc_flags;
} __attribute__((preserve_access_index));

struct sock___ebm {
	struct sock_common___ebm __sk_common;
	int sk_rcvbuf;
	int sk_rcvlowat;
	int sk_peek_off;
	__u32 sk_tsflags;
	__u8 sk_shutdown;
	struct socket___ebm *sk_socket;
	void *sk_user_data;
} __attribute__((preserve_access_index));

struct tcp_sock___ebm {
	__u32 rcv_nxt;
	__u32 copied_seq;
	__u32 write_seq;
	__u64 bytes_received;
	__u8 recvmsg_inq: 1;
} __attribute__((preserve_access_index));

struct sk_psock___ebm {
	__u32 msg_tot_len;
} __attribute__((preserve_access_index));

enum sock_flags___ebm {
	SOCK_RCVTSTAMP___ebm = 11,
	SOCK_RCVTSTAMPNS___ebm = 12,
	SOCK_TIMESTAMPING_RX_SOFTWARE___ebm = 15,
};

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

/* sk_user_data carries flag bits below the psock pointer. */
#define EBM_SK_USER_DATA_PTRMASK (~7UL)

static __always_inline void count_add(enum ebm_counter c, __u64 n)
{
	__u32 key = c;
	__u64 *v = bpf_map_lookup_elem(&ebm_counters, &key);

	if (v)
		*v += n;
}

static __always_inline struct sock___ebm *sk_at(__u64 addr)
{
	return bpf_rdonly_cast((void *)addr, bpf_core_type_id_kernel(struct sock___ebm));
}

static __always_inline struct tcp_sock___ebm *tcp_at(__u64 addr)
{
	return bpf_rdonly_cast((void *)addr, bpf_core_type_id_kernel(struct tcp_sock___ebm));
}

/* Whether the socket at addr has a file (accepted, or made by socket())
 * and it is in blocking mode; -1 when it has no file yet. */
static __always_inline int sk_blocking(__u64 addr)
{
	struct socket___ebm *so = sk_at(addr)->sk_socket;
	struct file___ebm *f;

	if (!so)
		return -1;
	f = so->file;
	if (!f)
		return -1;
	return !(f->f_flags & EBM_O_NONBLOCK);
}

/* A reader that takes redirected data exactly as TCP would give it: it
 * cannot sleep in tcp_bpf_recvmsg, and none of the receive options the
 * sockmap queue ignores is set. A socket without a file yet was let in
 * because its listener is non-blocking. */
static __always_inline bool sc_reader_exact(__u64 addr)
{
	struct sock___ebm *sk = sk_at(addr);
	unsigned long rx_ts = (1UL << bpf_core_enum_value(enum sock_flags___ebm, SOCK_RCVTSTAMP___ebm)) |
			      (1UL << bpf_core_enum_value(enum sock_flags___ebm, SOCK_RCVTSTAMPNS___ebm)) |
			      (1UL << bpf_core_enum_value(enum sock_flags___ebm, SOCK_TIMESTAMPING_RX_SOFTWARE___ebm));
	struct tcp_sock___ebm *tp = tcp_at(addr);

	if (sk_blocking(addr) == 1)
		return false;
	if (sk->sk_rcvlowat > 1 || sk->sk_peek_off >= 0 || sk->sk_shutdown & EBM_RCV_SHUTDOWN)
		return false;
	if (sk->__sk_common.skc_flags & rx_ts || sk->sk_tsflags)
		return false;
	if (BPF_CORE_READ_BITFIELD_PROBED(tp, recvmsg_inq))
		return false;
	return true;
}

/* A writer whose writes may skip TCP: it does not read blocking, and it
 * may still send (else TCP's EPIPE must answer). */
static __always_inline bool sc_writer_exact(__u64 addr)
{
	return sk_blocking(addr) == 0 && !(sk_at(addr)->sk_shutdown & EBM_SEND_SHUTDOWN);
}

/* A connection's key in the family's maps. */
union sc_key {
	struct ebm_sc_key k4;
	struct ebm_sc6_key k6;
};

static __always_inline void *sc_peers(int fam)
{
	return fam == EBM_FAM6 ? (void *)&ebm_sc_peers6 : (void *)&ebm_sc_peers;
}

static __always_inline void *sc_sockets(int fam)
{
	return fam == EBM_FAM6 ? (void *)&ebm_sc_sockets6 : (void *)&ebm_sc_sockets;
}

/* This socket's key (its own view of the connection), or its peer's when
 * mirrored. */
static __always_inline void sc_key_of(int fam, struct bpf_sock_ops *skops, union sc_key *k, bool mirrored)
{
	__u16 lport = bpf_htons((__u16)skops->local_port), rport = (__u16)(skops->remote_port >> 16);

	if (fam == EBM_FAM6) {
		__u32 l[4], r[4];

		l[0] = *(volatile __u32 *)&skops->local_ip6[0];
		l[1] = *(volatile __u32 *)&skops->local_ip6[1];
		l[2] = *(volatile __u32 *)&skops->local_ip6[2];
		l[3] = *(volatile __u32 *)&skops->local_ip6[3];
		r[0] = *(volatile __u32 *)&skops->remote_ip6[0];
		r[1] = *(volatile __u32 *)&skops->remote_ip6[1];
		r[2] = *(volatile __u32 *)&skops->remote_ip6[2];
		r[3] = *(volatile __u32 *)&skops->remote_ip6[3];
#pragma unroll
		for (int i = 0; i < 4; i++) {
			k->k6.local_ip[i] = mirrored ? r[i] : l[i];
			k->k6.remote_ip[i] = mirrored ? l[i] : r[i];
		}
		k->k6.local_port = mirrored ? rport : lport;
		k->k6.remote_port = mirrored ? lport : rport;
		return;
	}
	__u32 lip = *(volatile __u32 *)&skops->local_ip4, rip = *(volatile __u32 *)&skops->remote_ip4;

	k->k4.local_ip = mirrored ? rip : lip;
	k->k4.remote_ip = mirrored ? lip : rip;
	k->k4.local_port = mirrored ? rport : lport;
	k->k4.remote_port = mirrored ? lport : rport;
}

/* The peers entry of a socket still in the sockhash, or NULL. */
static __always_inline struct ebm_sc_peer *sc_member(int fam, union sc_key *k)
{
	struct ebm_sc_peer *pe = bpf_map_lookup_elem(sc_peers(fam), k);

	return pe && pe->sk ? pe : NULL;
}

/*
 * Takes the socket under k out of the sockhash, so that it is a plain TCP
 * socket again (the kernel restores its protocol once nothing holds its
 * psock), if nothing was ever redirected into it: then its psock queue is
 * empty and no redirect into it can be under way, because a writer adds
 * its bytes to `received` before it redirects, and backs off if it finds
 * EBM_SC_PEER_LEAVING there (one atomic word: either the writer sees the
 * bit or this sees the bytes). A socket that was fed stays.
 */
static __always_inline bool sc_leave(int fam, union sc_key *k)
{
	struct ebm_sc_peer *pe = sc_member(fam, k);
	__u64 old;

	if (!pe)
		return false;
	old = __sync_fetch_and_or(&pe->received, EBM_SC_PEER_LEAVING);
	if (old & ~EBM_SC_PEER_LEAVING) {
		__sync_fetch_and_and(&pe->received, ~EBM_SC_PEER_LEAVING);
		return false;
	}
	bpf_map_delete_elem(sc_sockets(fam), k);
	pe->sk = 0;
	__sync_fetch_and_and(&pe->received, ~EBM_SC_PEER_LEAVING);
	ebm_count(EBM_CNT_SC_LEFT);
	return true;
}

/* This socket leaves, and its peer with it: a connection is short-circuited
 * whole or not at all (a member whose peer left would only ever receive
 * the normal way, and its FIONREAD would miss that). */
static __always_inline void sc_leave_pair(int fam, struct bpf_sock_ops *skops, struct ebm_sc_sock *ss)
{
	union sc_key self = {}, peer = {};

	sc_key_of(fam, skops, &self, false);
	sc_key_of(fam, skops, &peer, true);
	if (sc_leave(fam, &self)) {
		ss->flags |= EBM_SC_F_LEFT;
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags & ~EBM_SC_HDR_FLAGS);
	}
	sc_leave(fam, &peer);
}

/* ---- sockops: enter the sockhash when established, leave when needed ---- */

/* Both ends in this node's pod subnet of the family (the IPv6 one unset:
 * no IPv6 shortcut). k is this socket's key. */
static __always_inline bool sc_both_local(int fam, const struct ebm_sc_config *cfg, const union sc_key *k)
{
	if (fam == EBM_FAM6) {
		if ((cfg->mask6[0] | cfg->mask6[1] | cfg->mask6[2] | cfg->mask6[3]) == 0)
			return false;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			if ((k->k6.local_ip[i] & cfg->mask6[i]) != cfg->subnet6[i] ||
			    (k->k6.remote_ip[i] & cfg->mask6[i]) != cfg->subnet6[i])
				return false;
		}
		return true;
	}
	return (k->k4.local_ip & cfg->mask) == cfg->subnet && (k->k4.remote_ip & cfg->mask) == cfg->subnet;
}

static __always_inline bool sc_config_allows(int fam, const union sc_key *k)
{
	__u32 zero = 0;
	struct ebm_sc_config *cfg = bpf_map_lookup_elem(&ebm_sc_config, &zero);

	return cfg && cfg->enabled && sc_both_local(fam, cfg, k);
}

static __always_inline void sc_listen(struct bpf_sock_ops *skops)
{
	__u32 zero = 0;
	struct ebm_sc_config *cfg = bpf_map_lookup_elem(&ebm_sc_config, &zero);
	struct sc_listener_key lk = {
		.netns = bpf_get_netns_cookie(skops), .port = skops->local_port, .family = skops->family,
	};
	__u32 nonblocking;

	if (!cfg || !cfg->enabled || !skops->sk)
		return;
	nonblocking = sk_blocking((__u64)skops->sk) == 0;
	bpf_map_update_elem(&ebm_sc_listeners, &lk, &nonblocking, BPF_ANY);
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

static __always_inline bool sc_listener_nonblocking(struct bpf_sock_ops *skops)
{
	struct sc_listener_key lk = {
		.netns = bpf_get_netns_cookie(skops), .port = skops->local_port, .family = skops->family,
	};
	__u32 *nb = bpf_map_lookup_elem(&ebm_sc_listeners, &lk);

	return nb && *nb;
}

static __always_inline void sc_established(int fam, struct bpf_sock_ops *skops, bool active)
{
	struct bpf_sock *sk = skops->sk;
	struct ebm_sc_sock *ss;
	struct ebm_sc_peer pe = {};
	union sc_key k = {}, pk = {};

	if (!sk)
		return;
	sc_key_of(fam, skops, &k, false);
	if (!sc_config_allows(fam, &k))
		return;
	sc_key_of(fam, skops, &pk, true);
	if (active) {
		/* A blocking socket would read through tcp_bpf_recvmsg. */
		if (sk_blocking((__u64)sk) != 0)
			return;
	} else {
		/* The connecting end enters first (it is established one
		 * round trip earlier): without it there is nothing to join,
		 * and what accept() will give is only known by the listener. */
		if (!sc_member(fam, &pk))
			return;
		if (!sc_listener_nonblocking(skops)) {
			sc_leave(fam, &pk);
			ebm_count(EBM_CNT_SC_DECLINED);
			return;
		}
	}
	ss = bpf_sk_storage_get(&ebm_sc_sock, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!ss)
		return;
	/* The address is only ever read through BTF (probe reads), and only
	 * while the entry exists: the socket's close deletes it. */
	pe.sk = (__u64)sk;
	if (bpf_map_update_elem(sc_peers(fam), &k, &pe, BPF_ANY)) {
		ebm_count(EBM_CNT_SC_MAP_FULL);
		if (!active)
			sc_leave(fam, &pk);
		return;
	}
	if (bpf_sock_hash_update(skops, sc_sockets(fam), &k, BPF_NOEXIST)) {
		bpf_map_delete_elem(sc_peers(fam), &k);
		ebm_count(EBM_CNT_SC_MAP_FULL);
		if (!active)
			sc_leave(fam, &pk);
		return;
	}
	ebm_count(EBM_CNT_SC_INSERTED);
	ss->flags |= EBM_SC_F_INSERTED;
	ss->cookie = bpf_get_socket_cookie(skops);
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | EBM_SC_CB_FLAGS);
}

static __always_inline void sc_closed(int fam, struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct ebm_sc_sock *ss;
	struct ebm_sc_peer *pe;
	union sc_key k = {};

	if (!sk)
		return;
	if (skops->args[0] == EBM_TCP_LISTEN) {
		struct sc_listener_key lk = {
			.netns = bpf_get_netns_cookie(skops), .port = skops->local_port, .family = skops->family,
		};

		bpf_map_delete_elem(&ebm_sc_listeners, &lk);
		return;
	}
	ss = bpf_sk_storage_get(&ebm_sc_sock, sk, 0, 0);
	if (!ss || !(ss->flags & EBM_SC_F_INSERTED))
		return;
	sc_key_of(fam, skops, &k, false);
	pe = bpf_map_lookup_elem(sc_peers(fam), &k);
	if (pe) {
		/* Observe adds entry + storage: moving keeps the sum exact
		 * whichever program runs first. */
		ss->received += pe->received & ~EBM_SC_PEER_LEAVING;
		bpf_map_delete_elem(sc_peers(fam), &k);
	}
	ebm_count(EBM_CNT_SC_REMOVED);
}

/* A segment that came the normal way with data in it: the sender marks
 * those with our option, so this runs before TCP queues the data. */
static __always_inline void sc_segment_in(int fam, struct bpf_sock_ops *skops)
{
	void *data = (void *)(long)skops->skb_data, *end = (void *)(long)skops->skb_data_end;
	struct tcphdr *th = data;
	struct ebm_sc_sock *ss;

	if (!skops->sk || (void *)(th + 1) > end)
		return;
	if (skops->skb_len <= (__u32)th->doff * 4)
		return;
	ss = bpf_sk_storage_get(&ebm_sc_sock, skops->sk, 0, 0);
	if (ss && (ss->flags & (EBM_SC_F_INSERTED | EBM_SC_F_LEFT)) == EBM_SC_F_INSERTED)
		sc_leave_pair(fam, skops, ss);
}

/* This socket sends a segment (so it runs the normal path): a blocking
 * socket leaves here, before its next read; a member whose peer never
 * joined leaves once that peer has sent something. A member's segments
 * carry our option, also before its peer has joined (a write racing the
 * handshake reaches a peer that is in by then). */
static __always_inline void sc_segment_out_len(int fam, struct bpf_sock_ops *skops)
{
	union sc_key self = {}, peer = {};
	struct ebm_sc_sock *ss;
	__u64 addr = (__u64)skops->sk;

	if (!addr)
		return;
	ss = bpf_sk_storage_get(&ebm_sc_sock, skops->sk, 0, 0);
	if (!ss || !(ss->flags & EBM_SC_F_INSERTED))
		return;
	sc_key_of(fam, skops, &self, false);
	sc_key_of(fam, skops, &peer, true);
	if (!sc_member(fam, &self))
		return;
	if (sk_blocking(addr) == 1 || (!sc_member(fam, &peer) && tcp_at(addr)->bytes_received)) {
		sc_leave_pair(fam, skops, ss);
		return;
	}
	bpf_reserve_hdr_opt(skops, EBM_SC_OPT_LEN, 0);
}

static __always_inline void sc_segment_out_write(struct bpf_sock_ops *skops)
{
	struct { __u8 kind, len; __u16 exid; } opt = {
		.kind = EBM_SC_OPT_KIND, .len = EBM_SC_OPT_LEN, .exid = bpf_htons(EBM_SC_OPT_EXID),
	};

	/* Fails harmlessly when no room was reserved for this segment. */
	bpf_store_hdr_opt(skops, &opt, sizeof(opt), 0);
}

static __always_inline void sc_sockops(int fam, struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		sc_established(fam, skops, true);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		sc_established(fam, skops, false);
		break;
	case BPF_SOCK_OPS_PARSE_HDR_OPT_CB:
		sc_segment_in(fam, skops);
		break;
	case BPF_SOCK_OPS_HDR_OPT_LEN_CB:
		sc_segment_out_len(fam, skops);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == EBM_TCP_CLOSE)
			sc_closed(fam, skops);
		break;
	}
}

SEC("sockops")
int ebm_shortcut_sockops(struct bpf_sock_ops *skops)
{
	if (skops->family != AF_INET && skops->family != AF_INET6)
		return 1;
	/* A listener has no peer yet (a dual-stack one accepts either
	 * family), and the option's bytes are the same in both. */
	if (skops->op == BPF_SOCK_OPS_TCP_LISTEN_CB) {
		sc_listen(skops);
		return 1;
	}
	if (skops->op == BPF_SOCK_OPS_WRITE_HDR_OPT_CB) {
		sc_segment_out_write(skops);
		return 1;
	}
	/* IPv4 connections, whichever family the socket: a dual-stack listener
	 * (iperf3, many servers) accepts IPv4 peers as v4-mapped AF_INET6
	 * sockets, and gRPC's C core and the JVM dial IPv4 from them; their
	 * IPv4 addresses are in *_ip4 as for AF_INET. Native IPv6 connections
	 * go into the IPv6 maps, under the same rules. */
	if (ebm_skops_is_ipv4(skops))
		sc_sockops(EBM_FAM4, skops);
	else
		sc_sockops(EBM_FAM6, skops);
	return 1;
}

/* ---- sk_msg: hand writes to the peer socket ----------------------------- */

enum { SC_REDIRECT, SC_NORMAL, SC_BACKPRESSURE, SC_DECLINED };

static __always_inline int sc_decide(struct bpf_sock *self, __u64 peer_addr, __u32 size)
{
	__u32 zero = 0;
	struct ebm_sc_config *cfg = bpf_map_lookup_elem(&ebm_sc_config, &zero);
	struct tcp_sock___ebm *me = tcp_at((__u64)self);
	struct tcp_sock___ebm *tp;
	struct sk_psock___ebm *psock;
	__u64 ud;
	__u32 queued, limit;
	int rcvbuf;

	if (!sc_writer_exact((__u64)self) || !sc_reader_exact(peer_addr))
		return SC_DECLINED;
	tp = tcp_at(peer_addr);
	/* In order: all we sent the normal way has reached the peer, and the
	 * peer has read it (it reads its psock queue first). */
	if (me->write_seq != tp->rcv_nxt || tp->copied_seq != tp->rcv_nxt)
		return SC_NORMAL;
	/* Bounded: what the peer has not read yet. */
	ud = (__u64)sk_at(peer_addr)->sk_user_data & EBM_SK_USER_DATA_PTRMASK;
	if (!ud)
		return SC_NORMAL; /* no psock: the peer is leaving the sockhash */
	psock = bpf_rdonly_cast((void *)ud, bpf_core_type_id_kernel(struct sk_psock___ebm));
	queued = psock->msg_tot_len;
	rcvbuf = sk_at(peer_addr)->sk_rcvbuf;
	limit = rcvbuf > 0 ? rcvbuf : 0;
	if (cfg && cfg->min_queue > limit)
		limit = cfg->min_queue;
	if (queued && queued + size > limit)
		return SC_BACKPRESSURE;
	return SC_REDIRECT;
}

static __always_inline void sc_http(int fam, struct sk_msg_md *msg, __u64 cookie)
{
	void *data = msg->data, *end = msg->data_end;
	struct http_scratch *s;
	struct ebm_http_seg g = {};
	__u32 zero = 0;
	__u32 n;

	if (data + 12 > end)
		return;
	s = bpf_map_lookup_elem(&ebm_http_scratch, &zero);
	if (!s)
		return;
	/* One copy of the head, not a checked byte loop: this runs on every
	 * redirected write. */
	n = end - data;
	if (n > HTTP_PEEK)
		n = HTTP_PEEK;
	if (bpf_probe_read_kernel(s->buf, n, data))
		return;
	if (fam == EBM_FAM6) {
		g.saddr.w[0] = msg->local_ip6[0];
		g.saddr.w[1] = msg->local_ip6[1];
		g.saddr.w[2] = msg->local_ip6[2];
		g.saddr.w[3] = msg->local_ip6[3];
		g.daddr.w[0] = msg->remote_ip6[0];
		g.daddr.w[1] = msg->remote_ip6[1];
		g.daddr.w[2] = msg->remote_ip6[2];
		g.daddr.w[3] = msg->remote_ip6[3];
	} else {
		g.saddr.w[0] = msg->local_ip4;
		g.daddr.w[0] = msg->remote_ip4;
	}
	g.sport = bpf_htons((__u16)msg->local_port);
	g.dport = (__u16)(msg->remote_port >> 16);
	g.cookie = cookie;
	g.egress = 1;
	g.flags = EBM_EV_F_SHORTCUT;
	g.len = n;
	ebm_http_parse(fam, &g, s);
}

/* The peer's key (this socket's key mirrored) in the family's maps. */
static __always_inline void sc_peer_key(int fam, struct sk_msg_md *msg, union sc_key *k)
{
	__u16 lport = bpf_htons((__u16)msg->local_port);
	__u16 rport = (__u16)(msg->remote_port >> 16);

	if (fam == EBM_FAM6) {
		k->k6.local_ip[0] = msg->remote_ip6[0];
		k->k6.local_ip[1] = msg->remote_ip6[1];
		k->k6.local_ip[2] = msg->remote_ip6[2];
		k->k6.local_ip[3] = msg->remote_ip6[3];
		k->k6.remote_ip[0] = msg->local_ip6[0];
		k->k6.remote_ip[1] = msg->local_ip6[1];
		k->k6.remote_ip[2] = msg->local_ip6[2];
		k->k6.remote_ip[3] = msg->local_ip6[3];
		k->k6.local_port = rport;
		k->k6.remote_port = lport;
		return;
	}
	k->k4.local_ip = msg->remote_ip4;
	k->k4.remote_ip = msg->local_ip4;
	k->k4.local_port = rport;
	k->k4.remote_port = lport;
}

static __always_inline int sc_msg(int fam, struct sk_msg_md *msg)
{
	union sc_key peer_key = {};
	struct bpf_sock *self = msg->sk;
	struct ebm_sc_peer *pe;
	struct ebm_sc_sock *mine;
	__u32 size = msg->size;
	__u64 old;
	int verdict;

	if (!self)
		return SK_PASS;
	mine = bpf_sk_storage_get(&ebm_sc_sock, self, 0, BPF_SK_STORAGE_GET_F_CREATE);
	/* A socket that left may still be in a sendmsg that began before. */
	if (mine && mine->flags & EBM_SC_F_LEFT)
		return SK_PASS;
	sc_peer_key(fam, msg, &peer_key);
	pe = sc_member(fam, &peer_key);
	verdict = pe ? sc_decide(self, pe->sk, size) : SC_NORMAL;
	if (verdict == SC_REDIRECT && pe) {
		/* Announce the bytes before redirecting (see sc_leave). */
		old = __sync_fetch_and_add(&pe->received, size);
		if (old & EBM_SC_PEER_LEAVING) {
			__sync_fetch_and_sub(&pe->received, size);
			verdict = SC_NORMAL;
		} else if (bpf_msg_redirect_hash(msg, sc_sockets(fam), &peer_key, BPF_F_INGRESS) != SK_PASS) {
			/* The sockhash is the authority: a peer that left it is not redirected to. */
			__sync_fetch_and_sub(&pe->received, size);
			verdict = SC_NORMAL;
		}
	}
	if (verdict != SC_REDIRECT) {
		ebm_count(verdict == SC_BACKPRESSURE ? EBM_CNT_SC_BACKPRESSURE :
			  verdict == SC_DECLINED ? EBM_CNT_SC_DECLINED : EBM_CNT_SC_NORMAL);
		return SK_PASS;
	}
	if (mine)
		mine->sent += size; /* under our socket's lock */
	ebm_count(EBM_CNT_SC_REDIRECTED);
	count_add(EBM_CNT_SC_REDIRECTED_BYTES, size);
	sc_http(fam, msg, mine ? mine->cookie : 0);
	return SK_PASS;
}

/* Attached to both sockhashes: a socket's family says which maps hold it. */
SEC("sk_msg")
int ebm_shortcut_msg(struct sk_msg_md *msg)
{
	if (msg->family == AF_INET6 &&
	    !ebm_ip6_words_v4mapped(msg->remote_ip6[0], msg->remote_ip6[1], msg->remote_ip6[2]))
		return sc_msg(EBM_FAM6, msg);
	return sc_msg(EBM_FAM4, msg);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
