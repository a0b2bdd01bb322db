// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The same-node shortcut: between two mesh sockets on this node, a write
 * is handed straight to the peer socket's receive queue (sockmap), without
 * crossing TCP/IP, the veths and the bridge.
 *
 * sockops puts each established mesh socket whose both ends are in this
 * node's pod subnet into ebm_sc_sockets, keyed by its own 4-tuple. The
 * connection was admitted at connect() (load balancing, policy): only
 * established connections enter, so nothing is decided here. The kernel
 * removes a socket from the sockhash when it closes.
 *
 * sk_msg runs on every write of such a socket and redirects it to the peer
 * found under the mirrored key, but only when that keeps the byte stream
 * in order and bounded:
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
 * Every redirected byte is counted on both sockets (ebm_sc_sock), so
 * observe's close report stays exact, and HTTP start lines in redirected
 * writes are parsed here with observe's parser (cgroup_skb never sees
 * them).
 */
#include <linux/bpf.h>
#include <linux/in.h>
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

/* Kernel fields read through BTF (CO-RE: offsets fixed at load). */
struct tcp_sock___ebm {
	__u32 rcv_nxt;
	__u32 copied_seq;
	__u32 write_seq;
} __attribute__((preserve_access_index));

struct sock___ebm {
	int sk_rcvbuf;
	void *sk_user_data;
} __attribute__((preserve_access_index));

struct sk_psock___ebm {
	__u32 msg_tot_len;
} __attribute__((preserve_access_index));

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

/* ---- sockops: enter the sockhash when established ---------------------- */

/* A connection's key in the family's sockhash, as this socket sees it. */
union sc_key {
	struct ebm_sc_key k4;
	struct ebm_sc6_key k6;
};

static __always_inline void sc_key_of(int fam, struct bpf_sock_ops *skops, union sc_key *k)
{
	__u16 lport = bpf_htons((__u16)skops->local_port);
	__u16 rport = (__u16)(skops->remote_port >> 16);

	if (fam == EBM_FAM6) {
		k->k6.local_ip[0] = *(volatile __u32 *)&skops->local_ip6[0];
		k->k6.local_ip[1] = *(volatile __u32 *)&skops->local_ip6[1];
		k->k6.local_ip[2] = *(volatile __u32 *)&skops->local_ip6[2];
		k->k6.local_ip[3] = *(volatile __u32 *)&skops->local_ip6[3];
		k->k6.remote_ip[0] = *(volatile __u32 *)&skops->remote_ip6[0];
		k->k6.remote_ip[1] = *(volatile __u32 *)&skops->remote_ip6[1];
		k->k6.remote_ip[2] = *(volatile __u32 *)&skops->remote_ip6[2];
		k->k6.remote_ip[3] = *(volatile __u32 *)&skops->remote_ip6[3];
		k->k6.local_port = lport;
		k->k6.remote_port = rport;
		return;
	}
	k->k4.local_ip = *(volatile __u32 *)&skops->local_ip4;
	k->k4.remote_ip = *(volatile __u32 *)&skops->remote_ip4;
	k->k4.local_port = lport;
	k->k4.remote_port = rport;
}

/* Both ends in this node's pod subnet of the family (the IPv6 one unset: no IPv6 shortcut). */
static __always_inline int sc_both_local(int fam, const struct ebm_sc_config *cfg, const union sc_key *k)
{
	if (fam == EBM_FAM6) {
		if ((cfg->mask6[0] | cfg->mask6[1] | cfg->mask6[2] | cfg->mask6[3]) == 0)
			return 0;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			if ((k->k6.local_ip[i] & cfg->mask6[i]) != cfg->subnet6[i] || (k->k6.remote_ip[i] & cfg->mask6[i]) != cfg->subnet6[i])
				return 0;
		}
		return 1;
	}
	return (k->k4.local_ip & cfg->mask) == cfg->subnet && (k->k4.remote_ip & cfg->mask) == cfg->subnet;
}

static __always_inline void *sc_peers(int fam)
{
	return fam == EBM_FAM6 ? (void *)&ebm_sc_peers6 : (void *)&ebm_sc_peers;
}

static __always_inline void *sc_sockets(int fam)
{
	return fam == EBM_FAM6 ? (void *)&ebm_sc_sockets6 : (void *)&ebm_sc_sockets;
}

static __always_inline void sc_established(int fam, struct bpf_sock_ops *skops)
{
	__u32 zero = 0;
	struct ebm_sc_config *cfg = bpf_map_lookup_elem(&ebm_sc_config, &zero);
	struct bpf_sock *sk = skops->sk;
	struct ebm_sc_sock *ss;
	struct ebm_sc_peer pe = {};
	union sc_key k = {};

	if (!cfg || !cfg->enabled || !sk)
		return;
	sc_key_of(fam, skops, &k);
	if (!sc_both_local(fam, cfg, &k))
		return;
	ss = bpf_sk_storage_get(&ebm_sc_sock, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!ss)
		return;
	/* The address is only ever read through BTF (probe reads), and only
	 * while the entry exists: the socket's close deletes it. */
	pe.sk = (__u64)sk;
	if (bpf_map_update_elem(sc_peers(fam), &k, &pe, BPF_ANY)) {
		ebm_count(EBM_CNT_SC_MAP_FULL);
		return;
	}
	if (bpf_sock_hash_update(skops, sc_sockets(fam), &k, BPF_NOEXIST)) {
		bpf_map_delete_elem(sc_peers(fam), &k);
		ebm_count(EBM_CNT_SC_MAP_FULL);
		return;
	}
	ebm_count(EBM_CNT_SC_INSERTED);
	ss->flags |= EBM_SC_F_INSERTED;
	ss->cookie = bpf_get_socket_cookie(skops);
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

static __always_inline void sc_closed(int fam, struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct ebm_sc_sock *ss;
	struct ebm_sc_peer *pe;
	union sc_key k = {};

	if (!sk)
		return;
	ss = bpf_sk_storage_get(&ebm_sc_sock, sk, 0, 0);
	if (!ss || !(ss->flags & EBM_SC_F_INSERTED))
		return;
	sc_key_of(fam, skops, &k);
	pe = bpf_map_lookup_elem(sc_peers(fam), &k);
	if (pe) {
		/* Observe adds entry + storage: moving keeps the sum exact
		 * whichever program runs first. */
		ss->received += pe->received;
		bpf_map_delete_elem(sc_peers(fam), &k);
	}
	ebm_count(EBM_CNT_SC_REMOVED);
}

static __always_inline void sc_sockops(int fam, struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		sc_established(fam, skops);
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
	/* IPv4 connections, whichever family the socket: a dual-stack listener
	 * (iperf3, many servers) accepts IPv4 peers as v4-mapped AF_INET6
	 * sockets, and gRPC's C core and the JVM dial IPv4 from them; their
	 * IPv4 addresses are in *_ip4 as for AF_INET. Native IPv6 connections
	 * go into the IPv6 sockhash. */
	if (ebm_skops_is_ipv4(skops))
		sc_sockops(EBM_FAM4, skops);
	else if (skops->family == AF_INET6)
		sc_sockops(EBM_FAM6, skops);
	return 1;
}

/* ---- sk_msg: hand writes to the peer socket ----------------------------- */

enum { SC_REDIRECT, SC_NORMAL, SC_BACKPRESSURE };

static __always_inline int sc_decide(struct bpf_sock *self, __u64 peer_addr, __u32 size)
{
	__u32 zero = 0;
	struct ebm_sc_config *cfg = bpf_map_lookup_elem(&ebm_sc_config, &zero);
	struct tcp_sock___ebm *me = (void *)bpf_skc_to_tcp_sock(self);
	struct tcp_sock___ebm *tp;
	struct sk_psock___ebm *psock;
	__u64 ud;
	__u32 queued, limit;
	int rcvbuf;

	if (!me || !peer_addr)
		return SC_NORMAL;
	tp = bpf_rdonly_cast((void *)peer_addr, bpf_core_type_id_kernel(struct tcp_sock___ebm));
	/* In order: all we sent the normal way has reached the peer, and the
	 * peer has read it (it reads its psock queue first). */
	if (me->write_seq != tp->rcv_nxt || tp->copied_seq != tp->rcv_nxt)
		return SC_NORMAL;
	/* Bounded: what the peer has not read yet. */
	ud = (__u64)((struct sock___ebm *)tp)->sk_user_data & EBM_SK_USER_DATA_PTRMASK;
	if (!ud)
		return SC_NORMAL; /* no psock: the peer is leaving the sockhash */
	psock = bpf_rdonly_cast((void *)ud, bpf_core_type_id_kernel(struct sk_psock___ebm));
	queued = psock->msg_tot_len;
	rcvbuf = ((struct sock___ebm *)tp)->sk_rcvbuf;
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
	int verdict;

	if (!self)
		return SK_PASS;
	sc_peer_key(fam, msg, &peer_key);
	pe = bpf_map_lookup_elem(sc_peers(fam), &peer_key);
	verdict = pe ? sc_decide(self, pe->sk, size) : SC_NORMAL;
	/* The sockhash is the authority: a peer that left it is not redirected to. */
	if (verdict == SC_REDIRECT &&
	    bpf_msg_redirect_hash(msg, sc_sockets(fam), &peer_key, BPF_F_INGRESS) != SK_PASS)
		verdict = SC_NORMAL;
	if (verdict != SC_REDIRECT) {
		ebm_count(verdict == SC_BACKPRESSURE ? EBM_CNT_SC_BACKPRESSURE : EBM_CNT_SC_NORMAL);
		return SK_PASS;
	}
	if (pe)
		__sync_fetch_and_add(&pe->received, size);
	mine = bpf_sk_storage_get(&ebm_sc_sock, self, 0, BPF_SK_STORAGE_GET_F_CREATE);
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
