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
#include <linux/tcp.h>
#include <linux/socket.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "ebmesh_abi.h"
#include "ebmesh_maps.h"
#include "ebmesh_events.h"

#ifndef AF_INET
#define AF_INET 2
#endif

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

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ebm_http_conn_key);
	__type(value, struct ebm_http_pending);
	__uint(max_entries, EBM_HTTP_PENDING_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_http_pending SEC(".maps");

/* ---- connections (sockops) -------------------------------------------- */

static __always_inline void service_of(__u64 cookie, __u32 ip, __u16 port,
				       struct ebm_sock_info *si)
{
	struct ebm_lb4_revnat_key rk = { .cookie = cookie, .ip = ip, .port = port };
	struct ebm_lb4_revnat *rv = bpf_map_lookup_elem(&ebm_lb4_revnat, &rk);
	struct ebm_lb4_frontend_key fk = {};
	struct ebm_lb4_frontend *fe;

	if (!rv)
		return;
	si->orig_daddr = rv->vip;
	si->orig_dport = rv->port;
	fk.vip = rv->vip;
	fk.port = rv->port;
	fk.proto = IPPROTO_TCP;
	fe = bpf_map_lookup_elem(&ebm_lb4_frontends, &fk);
	if (fe)
		si->frontend_id = fe->id;
}

static __always_inline void fill_tuple(struct ebm_flow_event *e, struct bpf_sock_ops *skops, int active)
{
	/* One 4-byte load each: the verifier refuses clang's merged 8-byte load. */
	__u32 lip = *(volatile __u32 *)&skops->local_ip4;
	__u32 rip = *(volatile __u32 *)&skops->remote_ip4;
	__u16 lport = bpf_htons((__u16)skops->local_port);
	__u16 rport = (__u16)(skops->remote_port >> 16);

	/* Source is always who dialled, whichever end observes it. */
	if (active) {
		e->saddr = lip; e->sport = lport; e->daddr = rip; e->dport = rport;
	} else {
		e->saddr = rip; e->sport = rport; e->daddr = lip; e->dport = lport;
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

static __always_inline void on_established(struct bpf_sock_ops *skops, int active)
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
		if (active)
			service_of(cookie, skops->remote_ip4, (__u16)(skops->remote_port >> 16), si);
	}
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);

	e = ebm_event_reserve(active ? EBM_EV_CONNECT : EBM_EV_ACCEPT);
	if (!e)
		return;
	fill_tuple(e, skops, active);
	e->cookie = cookie;
	e->flags = active ? EBM_EV_F_ACTIVE : 0;
	if (si) {
		e->start_ns = si->start_ns;
		e->orig_daddr = si->orig_daddr;
		e->orig_dport = si->orig_dport;
		e->frontend_id = si->frontend_id;
	}
	e->srtt_us = skops->srtt_us >> 3;
	ebm_event_submit(e);
}

static __always_inline void on_close(struct bpf_sock_ops *skops)
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
	fill_tuple(e, skops, active);
	e->cookie = bpf_get_socket_cookie(skops);
	e->flags = si->flags;
	e->start_ns = si->start_ns;
	e->duration_ns = e->ts_ns - si->start_ns;
	e->orig_daddr = si->orig_daddr;
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
	if (fins && recv)
		recv--;
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

SEC("sockops")
int ebm_sockops(struct bpf_sock_ops *skops)
{
	if (skops->family != AF_INET)
		return 1;
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		on_connect(skops);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		on_established(skops, 1);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		on_established(skops, 0);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == EBM_TCP_CLOSE)
			on_close(skops);
		break;
	}
	return 1;
}

/* ---- HTTP/1.x (cgroup_skb) --------------------------------------------- */

#define HTTP_PEEK 120 /* bytes of payload read: method, path prefix, status */

/* The request line's method, and where its target begins. */
static __always_inline int http_method(const __u8 *b, __u8 *method)
{
	__u32 w = b[0] | (b[1] << 8) | (b[2] << 16) | ((__u32)b[3] << 24);

#define W(a, b_, c, d) ((__u32)(a) | ((__u32)(b_) << 8) | ((__u32)(c) << 16) | ((__u32)(d) << 24))
	if (w == W('G', 'E', 'T', ' ')) { *method = EBM_HTTP_GET; return 4; }
	if (w == W('P', 'U', 'T', ' ')) { *method = EBM_HTTP_PUT; return 4; }
	if (w == W('P', 'O', 'S', 'T') && b[4] == ' ') { *method = EBM_HTTP_POST; return 5; }
	if (w == W('H', 'E', 'A', 'D') && b[4] == ' ') { *method = EBM_HTTP_HEAD; return 5; }
	if (w == W('P', 'A', 'T', 'C') && b[4] == 'H' && b[5] == ' ') { *method = EBM_HTTP_PATCH; return 6; }
	if (w == W('T', 'R', 'A', 'C') && b[4] == 'E' && b[5] == ' ') { *method = EBM_HTTP_TRACE; return 6; }
	if (w == W('D', 'E', 'L', 'E') && b[4] == 'T' && b[5] == 'E' && b[6] == ' ') { *method = EBM_HTTP_DELETE; return 7; }
	if (w == W('O', 'P', 'T', 'I') && b[4] == 'O' && b[5] == 'N' && b[6] == 'S' && b[7] == ' ') {
		*method = EBM_HTTP_OPTIONS; return 8;
	}
	if (w == W('C', 'O', 'N', 'N') && b[4] == 'E' && b[5] == 'C' && b[6] == 'T' && b[7] == ' ') {
		*method = EBM_HTTP_CONNECT; return 8;
	}
#undef W
	return 0;
}

/* "HTTP/1.x NNN": the status, or 0 when this is not a status line. */
static __always_inline __u16 http_status(const __u8 *b)
{
	__u16 s = 0;

	if (b[0] != 'H' || b[1] != 'T' || b[2] != 'T' || b[3] != 'P' || b[4] != '/' ||
	    b[5] != '1' || b[6] != '.' || b[8] != ' ')
		return 0;
	for (int i = 9; i < 12; i++) {
		if (b[i] < '0' || b[i] > '9')
			return 0;
		s = s * 10 + (b[i] - '0');
	}
	return s;
}

struct http_scratch {
	__u8 buf[128];
	struct ebm_http_pending p;
};

/* Too big for the stack with everything else: one per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct http_scratch);
	__uint(max_entries, 1);
} ebm_http_scratch SEC(".maps");

static __always_inline void on_request(struct __sk_buff *skb, struct http_scratch *s, int off,
				       __u8 method, const struct iphdr *ip, const struct tcphdr *th,
				       int egress)
{
	struct ebm_http_conn_key k = {
		.client_ip = ip->saddr, .server_ip = ip->daddr,
		.client_port = th->source, .server_port = th->dest,
	};
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct ebm_http_pending *cur = bpf_map_lookup_elem(&ebm_http_pending, &k);
	struct ebm_http_pending *p = &s->p;
	int n = 0;

	/* Already seen by the other end of this connection: one report. A
	 * new request at the same end replaces an unanswered one. */
	if (cur && cur->cookie != cookie)
		return;
	__builtin_memset(p, 0, sizeof(*p));
	p->start_ns = bpf_ktime_get_ns();
	p->cookie = cookie;
	p->cgroup_id = bpf_skb_cgroup_id(skb);
	p->method = method;
	p->flags = egress ? 0 : EBM_EV_F_SERVER;
	for (int i = 0; i < EBM_HTTP_PATH_MAX; i++) {
		__u8 c = s->buf[(off + i) & 127];

		if (off + i >= HTTP_PEEK || c == ' ' || c == '\r' || c == '\n' || c == 0)
			break;
		p->path[i] = c;
		n++;
	}
	p->path_len = n;
	if (egress) {
		struct ebm_lb4_revnat_key rk = { .cookie = cookie, .ip = ip->daddr, .port = th->dest };
		struct ebm_lb4_revnat *rv = bpf_map_lookup_elem(&ebm_lb4_revnat, &rk);

		if (rv) {
			p->orig_daddr = rv->vip;
			p->orig_dport = rv->port;
		}
	}
	if (bpf_map_update_elem(&ebm_http_pending, &k, p, BPF_ANY))
		ebm_count(EBM_CNT_HTTP_PENDING_FULL);
}

static __always_inline void on_response(__u16 status, const struct iphdr *ip, const struct tcphdr *th)
{
	struct ebm_http_conn_key k = {
		.client_ip = ip->daddr, .server_ip = ip->saddr,
		.client_port = th->dest, .server_port = th->source,
	};
	struct ebm_http_pending *p = bpf_map_lookup_elem(&ebm_http_pending, &k);
	struct ebm_flow_event *e;

	if (!p) /* the other end reported it, or the request predates us */
		return;
	e = ebm_event_reserve(EBM_EV_HTTP);
	if (e) {
		e->start_ns = p->start_ns;
		e->duration_ns = e->ts_ns - p->start_ns;
		e->cookie = p->cookie;
		e->cgroup_id = p->cgroup_id;
		e->saddr = k.client_ip;
		e->sport = k.client_port;
		e->daddr = k.server_ip;
		e->dport = k.server_port;
		e->orig_daddr = p->orig_daddr;
		e->orig_dport = p->orig_dport;
		e->proto = IPPROTO_TCP;
		e->flags = p->flags;
		e->http_method = p->method;
		e->http_status = status;
		e->http_path_len = p->path_len;
		__builtin_memcpy(e->http_path, p->path, EBM_HTTP_PATH_MAX);
		if (p->orig_daddr) {
			struct ebm_lb4_frontend_key fk = { .vip = p->orig_daddr, .port = p->orig_dport, .proto = IPPROTO_TCP };
			struct ebm_lb4_frontend *fe = bpf_map_lookup_elem(&ebm_lb4_frontends, &fk);

			if (fe)
				e->frontend_id = fe->id;
		}
		ebm_event_submit(e);
	}
	bpf_map_delete_elem(&ebm_http_pending, &k);
}

static __always_inline void http_skb(struct __sk_buff *skb, int egress)
{
	struct iphdr ip;
	struct tcphdr th;
	struct http_scratch *s;
	__u32 zero = 0;
	__u32 off, avail, n;
	__u8 method = 0;
	__u16 status;
	int target;

	if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) || ip.version != 4 || ip.protocol != IPPROTO_TCP)
		return;
	off = ip.ihl * 4;
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
	status = http_status(s->buf);
	if (status) {
		on_response(status, &ip, &th);
		return;
	}
	target = http_method(s->buf, &method);
	if (!target)
		return;
	if (n > 12 && bpf_skb_load_bytes(skb, off, s->buf, n))
		return;
	on_request(skb, s, target, method, &ip, &th, egress);
}

SEC("cgroup_skb/egress")
int ebm_http_egress(struct __sk_buff *skb)
{
	http_skb(skb, 1);
	return 1;
}

SEC("cgroup_skb/ingress")
int ebm_http_ingress(struct __sk_buff *skb)
{
	http_skb(skb, 0);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
