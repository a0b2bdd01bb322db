// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Flow and HTTP visibility with no proxy in the path.
 *
 * sockops reports each TCP connection of a mesh socket when it is
 * established and when it closes (bytes, lifetime, RTT, retransmits, read
 * from the kernel's own TCP state, so they cost nothing per packet).
 *
 * cgroup_skb reads the first bytes of each TCP segment's payload: a segment
 * that starts with an HTTP/1.x request line opens an exchange, one that
 * starts with a status line closes it. An exchange is keyed by the
 * connection as the client sees it, so when both ends are mesh sockets on
 * this node (four hooks see it) it is still reported exactly once.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/socket.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "ebmesh_abi.h"
#include "ebmesh_maps.h"
#include "ebmesh_events.h"
#include "ebmesh_http.h"
#include "family.h"
#include "lb.h"
#include "v4mapped.h"

/* TCP states (include/net/tcp_states.h, not a UAPI header). */
#define EBM_TCP_ESTABLISHED 1
#define EBM_TCP_SYN_SENT    2
#define EBM_TCP_FIN_WAIT2   5
#define EBM_TCP_TIME_WAIT   6
#define EBM_TCP_CLOSE       7
#define EBM_TCP_LAST_ACK    9
#define EBM_TCP_CLOSING     11

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ebm_sock_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_sock_info SEC(".maps");


/* ---- connections (sockops) -------------------------------------------- */

/* The connection's addresses as sockops shows them, in the family's form. */
static __always_inline void skops_addrs(int fam, struct bpf_sock_ops *skops, struct ebm_addr *local, struct ebm_addr *remote)
{
	/* One 4-byte load each: the verifier refuses clang's merged 8-byte load. */
	if (fam == EBM_FAM6) {
		local->w[0] = *(volatile __u32 *)&skops->local_ip6[0];
		local->w[1] = *(volatile __u32 *)&skops->local_ip6[1];
		local->w[2] = *(volatile __u32 *)&skops->local_ip6[2];
		local->w[3] = *(volatile __u32 *)&skops->local_ip6[3];
		remote->w[0] = *(volatile __u32 *)&skops->remote_ip6[0];
		remote->w[1] = *(volatile __u32 *)&skops->remote_ip6[1];
		remote->w[2] = *(volatile __u32 *)&skops->remote_ip6[2];
		remote->w[3] = *(volatile __u32 *)&skops->remote_ip6[3];
		return;
	}
	local->w[0] = *(volatile __u32 *)&skops->local_ip4;
	remote->w[0] = *(volatile __u32 *)&skops->remote_ip4;
}

static __always_inline void service_of(int fam, __u64 cookie, const struct ebm_addr *ip, __u16 port,
				       struct ebm_sock_info *si)
{
	struct ebm_addr vip = {};
	__u16 vport = 0;
	struct ebm_lb4_frontend *fe;

	if (!ebm_lb_revnat_get(fam, cookie, ip, port, &vip, &vport))
		return;
	ebm_addr_store(fam, si->orig_daddr, &vip);
	si->orig_dport = vport;
	fe = ebm_lb_frontend(fam, &vip, vport, IPPROTO_TCP);
	if (fe)
		si->frontend_id = fe->id;
}

static __always_inline void fill_tuple(int fam, struct ebm_flow_event *e, struct bpf_sock_ops *skops, int active)
{
	struct ebm_addr lip = {}, rip = {};
	__u16 lport = bpf_htons((__u16)skops->local_port);
	__u16 rport = (__u16)(skops->remote_port >> 16);

	skops_addrs(fam, skops, &lip, &rip);
	/* Source is always who dialled, whichever end observes it. */
	if (active) {
		ebm_addr_store(fam, e->saddr, &lip); e->sport = lport;
		ebm_addr_store(fam, e->daddr, &rip); e->dport = rport;
	} else {
		ebm_addr_store(fam, e->saddr, &rip); e->sport = rport;
		ebm_addr_store(fam, e->daddr, &lip); e->dport = lport;
	}
	e->proto = IPPROTO_TCP;
}

static __always_inline void on_connect(struct bpf_sock_ops *skops)
{
	struct ebm_sock_info *si;

	if (!skops->sk)
		return;
	si = bpf_sk_storage_get(&ebm_sock_info, skops->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!si)
		return;
	si->start_ns = bpf_ktime_get_ns();
	si->flags = EBM_EV_F_ACTIVE;
	/* A connect that never establishes is reported at its close. */
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

static __always_inline void on_established(int fam, struct bpf_sock_ops *skops, int active)
{
	struct ebm_sock_info *si = NULL;
	struct ebm_flow_event *e;
	__u64 cookie = bpf_get_socket_cookie(skops);

	if (skops->sk)
		si = bpf_sk_storage_get(&ebm_sock_info, skops->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (si) {
		if (!active)
			si->start_ns = bpf_ktime_get_ns();
		else if (!si->start_ns) /* connect() predates the agent */
			si->start_ns = bpf_ktime_get_ns();
		si->flags = active ? EBM_EV_F_ACTIVE : 0;
		si->established = 1;
		if (active) {
			struct ebm_addr lip = {}, rip = {};

			skops_addrs(fam, skops, &lip, &rip);
			service_of(fam, cookie, &rip, (__u16)(skops->remote_port >> 16), si);
		}
	}
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);

	e = ebm_event_reserve(active ? EBM_EV_CONNECT : EBM_EV_ACCEPT);
	if (!e)
		return;
	fill_tuple(fam, e, skops, active);
	e->cookie = cookie;
	e->flags = active ? EBM_EV_F_ACTIVE : 0;
	if (si) {
		e->start_ns = si->start_ns;
		ebm_copy6(e->orig_daddr, si->orig_daddr);
		e->orig_dport = si->orig_dport;
		e->frontend_id = si->frontend_id;
	}
	e->srtt_us = skops->srtt_us >> 3;
	ebm_event_submit(e);
}

struct sock_common___obs {
	unsigned long skc_flags; /* sk_flags */
} __attribute__((preserve_access_index));

#define EBM_SOCK_DONE 1 /* enum sock_flags: SOCK_DEAD, SOCK_DONE, ... */

static __always_inline int peer_fin(struct bpf_sock *sk)
{
	struct sock_common___obs *s = (void *)bpf_skc_to_tcp_sock(sk);

	return s && (s->skc_flags & (1UL << EBM_SOCK_DONE));
}

/* The bytes the same-node shortcut handed to this socket, kept under its own view of the connection (shortcut.bpf.c). */
static __always_inline struct ebm_sc_peer *sc_peer_of(int fam, struct bpf_sock_ops *skops)
{
	struct ebm_addr lip = {}, rip = {};
	__u16 lport = bpf_htons((__u16)skops->local_port);
	__u16 rport = (__u16)(skops->remote_port >> 16);

	skops_addrs(fam, skops, &lip, &rip);
	if (fam == EBM_FAM6) {
		struct ebm_sc6_key k = { .local_port = lport, .remote_port = rport };

		ebm_copy6(k.local_ip, lip.w);
		ebm_copy6(k.remote_ip, rip.w);
		return bpf_map_lookup_elem(&ebm_sc_peers6, &k);
	}
	struct ebm_sc_key k = { .local_ip = lip.w[0], .remote_ip = rip.w[0], .local_port = lport, .remote_port = rport };

	return bpf_map_lookup_elem(&ebm_sc_peers, &k);
}

static __always_inline void on_close(int fam, struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct ebm_sock_info *si;
	struct ebm_flow_event *e;
	__u32 old = skops->args[0];
	int active;

	if (!sk)
		return;
	si = bpf_sk_storage_get(&ebm_sock_info, sk, 0, 0);
	if (!si)
		return;
	active = si->flags & EBM_EV_F_ACTIVE;
	e = ebm_event_reserve(EBM_EV_CLOSE);
	if (!e)
		return;
	fill_tuple(fam, e, skops, active);
	e->cookie = bpf_get_socket_cookie(skops);
	e->flags = si->flags;
	e->start_ns = si->start_ns;
	e->duration_ns = e->ts_ns - si->start_ns;
	ebm_copy6(e->orig_daddr, si->orig_daddr);
	e->orig_dport = si->orig_dport;
	e->frontend_id = si->frontend_id;
	/* The kernel counts sequence space: the SYN (active side) and each
	 * FIN take one. An orderly close leaves from one of these states, with
	 * both FINs exchanged: report payload bytes only. */
	__u64 sent = skops->bytes_acked, recv = skops->bytes_received;
	int fins = old == EBM_TCP_FIN_WAIT2 || old == EBM_TCP_LAST_ACK || old == EBM_TCP_CLOSING ||
		   old == EBM_TCP_TIME_WAIT;

	if (active && si->established && sent)
		sent--;
	if (fins && sent)
		sent--;
	/* The peer's FIN is in bytes_received only if it came: a client that
	 * closes first leaves from FIN_WAIT2 as soon as its own FIN is acked,
	 * before the server's FIN (the kernel keeps waiting in a timewait
	 * socket). SOCK_DONE is set when the peer's FIN is received. */
	if (peer_fin(sk) && recv)
		recv--;
	/* Bytes the same-node shortcut moved socket to socket never reach
	 * the TCP counters: add them (they are not sequence space). */
	struct ebm_sc_sock *sc = bpf_sk_storage_get(&ebm_sc_sock, sk, 0, 0);

	if (sc && (sc->flags & EBM_SC_F_INSERTED || sc->sent || sc->received)) {
		struct ebm_sc_peer *pe = sc_peer_of(fam, skops);
		__u64 into = pe ? pe->received & ~EBM_SC_PEER_LEAVING : 0;

		sent += sc->sent;
		recv += sc->received + into;
		if (sc->sent || sc->received || into)
			e->flags |= EBM_EV_F_SHORTCUT;
	}
	e->bytes_sent = sent;
	e->bytes_received = recv;
	e->srtt_us = skops->srtt_us >> 3;
	e->retransmits = skops->total_retrans;
	if (!si->established) {
		/* Closed in SYN_SENT: refused (or timed out) by the peer. */
		e->verdict = EBM_VERDICT_ERROR;
		e->reason = EBM_REASON_CONN_REFUSED;
	} else if (old == EBM_TCP_ESTABLISHED) {
		/* An orderly close passes through the FIN states first. */
		e->verdict = EBM_VERDICT_ERROR;
		e->reason = EBM_REASON_CONN_RESET;
	}
	ebm_event_submit(e);
	/* Once reported, a socket never reports again. */
	bpf_sk_storage_delete(&ebm_sock_info, sk);
}

static __always_inline void sockops(int fam, struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		on_connect(skops);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		on_established(fam, skops, 1);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		on_established(fam, skops, 0);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == EBM_TCP_CLOSE)
			on_close(fam, skops);
		break;
	}
}

SEC("sockops")
int ebm_sockops(struct bpf_sock_ops *skops)
{
	/* IPv4 connections, also of AF_INET6 sockets with v4-mapped
	 * addresses (their local_ip4/remote_ip4 are set as for AF_INET), and
	 * native IPv6 ones. */
	if (ebm_skops_is_ipv4(skops))
		sockops(EBM_FAM4, skops);
	else if (skops->family == AF_INET6)
		sockops(EBM_FAM6, skops);
	return 1;
}

/* ---- HTTP/1.x (cgroup_skb; the parser is shared with sk_msg) ------- */

/* The segment's addresses and where its TCP header starts; -1 when it is no TCP of the family. */
static __always_inline int http_ip(int fam, struct __sk_buff *skb, struct ebm_http_seg *g, __u32 *off)
{
	if (fam == EBM_FAM6) {
		struct ipv6hdr ip6;

		/* TCP right after the fixed header: a request line never rides on extension headers in practice. */
		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) || ip6.version != 6 || ip6.nexthdr != IPPROTO_TCP)
			return -1;
		__builtin_memcpy(g->saddr.w, &ip6.saddr, 16);
		__builtin_memcpy(g->daddr.w, &ip6.daddr, 16);
		*off = sizeof(ip6);
		return 0;
	}
	struct iphdr ip;

	if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) || ip.version != 4 || ip.protocol != IPPROTO_TCP)
		return -1;
	g->saddr.w[0] = ip.saddr;
	g->daddr.w[0] = ip.daddr;
	*off = ip.ihl * 4;
	return 0;
}

static __always_inline void http_skb(int fam, struct __sk_buff *skb, int egress)
{
	struct tcphdr th;
	struct http_scratch *s;
	struct ebm_http_seg g = {};
	__u32 zero = 0;
	__u32 off = 0, avail, n;
	__u8 method = 0;
	__u16 status;

	if (http_ip(fam, skb, &g, &off))
		return;
	if (bpf_skb_load_bytes(skb, off, &th, sizeof(th)))
		return;
	off += th.doff * 4;
	if (skb->len <= off)
		return;
	avail = skb->len - off;
	if (avail < 12)
		return;
	n = avail > HTTP_PEEK ? HTTP_PEEK : avail;
	s = bpf_map_lookup_elem(&ebm_http_scratch, &zero);
	if (!s)
		return;
	/* Load 12 bytes first: most segments are neither start line. */
	if (bpf_skb_load_bytes(skb, off, s->buf, 12))
		return;
	g.sport = th.source;
	g.dport = th.dest;
	g.egress = egress;
	g.len = n;
	status = http_status(s->buf);
	if (status) {
		ebm_http_response(fam, &g, status);
		return;
	}
	if (!http_method(s->buf, &method))
		return;
	if (n > 12 && bpf_skb_load_bytes(skb, off, s->buf, n))
		return;
	g.cookie = bpf_get_socket_cookie(skb);
	g.cgroup_id = bpf_skb_cgroup_id(skb);
	ebm_http_parse(fam, &g, s);
}

SEC("cgroup_skb/egress")
int ebm_http_egress(struct __sk_buff *skb)
{
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		http_skb(EBM_FAM6, skb, 1);
	else
		http_skb(EBM_FAM4, skb, 1);
	return 1;
}

SEC("cgroup_skb/ingress")
int ebm_http_ingress(struct __sk_buff *skb)
{
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		http_skb(EBM_FAM6, skb, 0);
	else
		http_skb(EBM_FAM4, skb, 0);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
