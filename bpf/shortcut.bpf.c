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

static __always_inline void sc_established(struct bpf_sock_ops *skops)
{
	__u32 zero = 0;
	struct ebm_sc_config *cfg = bpf_map_lookup_elem(&ebm_sc_config, &zero);
	struct bpf_sock *sk = skops->sk;
	struct ebm_sc_sock *ss;
	struct ebm_sc_peer pe = {};
	struct ebm_sc_key k = {};

	if (!cfg || !cfg->enabled || !sk)
		return;
	k.local_ip = *(volatile __u32 *)&skops->local_ip4;
	k.remote_ip = *(volatile __u32 *)&skops->remote_ip4;
	if ((k.local_ip & cfg->mask) != cfg->subnet || (k.remote_ip & cfg->mask) != cfg->subnet)
		return;
	k.local_port = bpf_htons((__u16)skops->local_port);
	k.remote_port = (__u16)(skops->remote_port >> 16);
	ss = bpf_sk_storage_get(&ebm_sc_sock, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!ss)
		return;
	/* The address is only ever read through BTF (probe reads), and only
	 * while the entry exists: the socket's close deletes it. */
	pe.sk = (__u64)sk;
	if (bpf_map_update_elem(&ebm_sc_peers, &k, &pe, BPF_ANY)) {
		ebm_count(EBM_CNT_SC_MAP_FULL);
		return;
	}
	if (bpf_sock_hash_update(skops, &ebm_sc_sockets, &k, BPF_NOEXIST)) {
		bpf_map_delete_elem(&ebm_sc_peers, &k);
		ebm_count(EBM_CNT_SC_MAP_FULL);
		return;
	}
	ebm_count(EBM_CNT_SC_INSERTED);
	ss->flags |= EBM_SC_F_INSERTED;
	ss->cookie = bpf_get_socket_cookie(skops);
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

static __always_inline void sc_closed(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct ebm_sc_sock *ss;
	struct ebm_sc_peer *pe;
	struct ebm_sc_key k = {};

	if (!sk)
		return;
	ss = bpf_sk_storage_get(&ebm_sc_sock, sk, 0, 0);
	if (!ss || !(ss->flags & EBM_SC_F_INSERTED))
		return;
	k.local_ip = *(volatile __u32 *)&skops->local_ip4;
	k.remote_ip = *(volatile __u32 *)&skops->remote_ip4;
	k.local_port = bpf_htons((__u16)skops->local_port);
	k.remote_port = (__u16)(skops->remote_port >> 16);
	pe = bpf_map_lookup_elem(&ebm_sc_peers, &k);
	if (pe) {
		/* Observe adds entry + storage: moving keeps the sum exact
		 * whichever program runs first. */
		ss->received += pe->received;
		bpf_map_delete_elem(&ebm_sc_peers, &k);
	}
	ebm_count(EBM_CNT_SC_REMOVED);
}

SEC("sockops")
int ebm_shortcut_sockops(struct bpf_sock_ops *skops)
{
	/* IPv4 connections, whichever family the socket: a dual-stack listener
	 * (iperf3, many servers) accepts IPv4 peers as v4-mapped AF_INET6
	 * sockets, and gRPC's C core and the JVM dial IPv4 from them; their
	 * IPv4 addresses are in *_ip4 as for AF_INET. */
	if (!ebm_skops_is_ipv4(skops))
		return 1;
	switch (skops->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		sc_established(skops);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == EBM_TCP_CLOSE)
			sc_closed(skops);
		break;
	}
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

static __always_inline void sc_http(struct sk_msg_md *msg, __u64 cookie)
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
	g.saddr = msg->local_ip4;
	g.daddr = msg->remote_ip4;
	g.sport = bpf_htons((__u16)msg->local_port);
	g.dport = (__u16)(msg->remote_port >> 16);
	g.cookie = cookie;
	g.egress = 1;
	g.flags = EBM_EV_F_SHORTCUT;
	g.len = n;
	ebm_http_parse(&g, s);
}

SEC("sk_msg")
int ebm_shortcut_msg(struct sk_msg_md *msg)
{
	struct ebm_sc_key peer_key = {};
	struct bpf_sock *self = msg->sk;
	struct ebm_sc_peer *pe;
	struct ebm_sc_sock *mine;
	__u32 size = msg->size;
	int verdict;

	if (!self)
		return SK_PASS;
	peer_key.local_ip = msg->remote_ip4;
	peer_key.remote_ip = msg->local_ip4;
	peer_key.local_port = (__u16)(msg->remote_port >> 16);
	peer_key.remote_port = bpf_htons((__u16)msg->local_port);
	pe = bpf_map_lookup_elem(&ebm_sc_peers, &peer_key);
	verdict = pe ? sc_decide(self, pe->sk, size) : SC_NORMAL;
	/* The sockhash is the authority: a peer that left it is not redirected to. */
	if (verdict == SC_REDIRECT &&
	    bpf_msg_redirect_hash(msg, &ebm_sc_sockets, &peer_key, BPF_F_INGRESS) != SK_PASS)
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
	sc_http(msg, mine ? mine->cookie : 0);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
