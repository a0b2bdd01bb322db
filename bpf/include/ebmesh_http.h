/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * HTTP/1.x exchanges from the first bytes of a write, shared by the two
 * places that see payload: cgroup_skb (segments through the TCP/IP stack)
 * and sk_msg (writes the same-node shortcut hands socket to socket, which
 * no skb ever carries). One parser and one pending table, so both paths
 * agree, and an exchange whose request took one path and whose response
 * took the other is still matched and reported once.
 *
 * A segment is described from its sender: src is who wrote the bytes.
 */
#ifndef EBMESH_HTTP_H
#define EBMESH_HTTP_H

#include "ebmesh_maps.h"
#include "ebmesh_events.h"
#include "family.h"
#include "lb.h"

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ebm_http_conn_key);
	__type(value, struct ebm_http_pending);
	__uint(max_entries, EBM_HTTP_PENDING_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_http_pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ebm_http_conn6_key);
	__type(value, struct ebm_http_pending);
	__uint(max_entries, EBM_CONNS6_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_http_pending6 SEC(".maps");


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

struct ebm_http_seg {
	struct ebm_addr saddr, daddr; /* network order: the writer, the reader; of the family the parser is given */
	__u16 sport, dport;
	__u64 cookie;           /* the observing socket */
	__u64 cgroup_id;
	int egress;             /* observed at the writer's socket */
	__u8 flags;             /* extra EBM_EV_F_* for the report */
	__u32 len;              /* bytes of this write in the scratch buffer (at most HTTP_PEEK) */
};

/* The key of a connection as its client sees it, in the family's pending map. */
union ebm_http_key {
	struct ebm_http_conn_key k4;
	struct ebm_http_conn6_key k6;
};

static __always_inline void ebm_http_key(int fam, union ebm_http_key *k, const struct ebm_addr *client, __u16 client_port,
					 const struct ebm_addr *server, __u16 server_port)
{
	if (fam == EBM_FAM6) {
		ebm_copy6(k->k6.client_ip, client->w);
		ebm_copy6(k->k6.server_ip, server->w);
		k->k6.client_port = client_port;
		k->k6.server_port = server_port;
		return;
	}
	k->k4.client_ip = client->w[0];
	k->k4.server_ip = server->w[0];
	k->k4.client_port = client_port;
	k->k4.server_port = server_port;
}

static __always_inline void *ebm_http_pending_map(int fam)
{
	return fam == EBM_FAM6 ? (void *)&ebm_http_pending6 : (void *)&ebm_http_pending;
}

static __always_inline void ebm_http_request(int fam, const struct ebm_http_seg *g, struct http_scratch *s,
					     int off, __u8 method)
{
	union ebm_http_key k = {};
	struct ebm_http_pending *cur;
	struct ebm_http_pending *p = &s->p;

	ebm_http_key(fam, &k, &g->saddr, g->sport, &g->daddr, g->dport);
	cur = bpf_map_lookup_elem(ebm_http_pending_map(fam), &k);
	int n = 0;

	/* Already seen by the other end of this connection: one report. A
	 * new request at the same end replaces an unanswered one. */
	if (cur && cur->cookie != g->cookie)
		return;
	__builtin_memset(p, 0, sizeof(*p));
	p->start_ns = bpf_ktime_get_ns();
	p->cookie = g->cookie;
	p->cgroup_id = g->cgroup_id;
	p->method = method;
	p->flags = (g->egress ? 0 : EBM_EV_F_SERVER) | g->flags;
	for (int i = 0; i < EBM_HTTP_PATH_MAX; i++) {
		__u8 c = s->buf[(off + i) & 127];

		/* Past `len` the scratch buffer holds an earlier write's bytes:
		 * a request line cut by its segment ends its path there. */
		if (off + i >= g->len || c == ' ' || c == '\r' || c == '\n' || c == 0)
			break;
		p->path[i] = c;
		n++;
	}
	p->path_len = n;
	if (g->egress) {
		struct ebm_addr vip = {};
		__u16 vport = 0;

		if (ebm_lb_revnat_get(fam, g->cookie, &g->daddr, g->dport, &vip, &vport)) {
			ebm_addr_store(fam, p->orig_daddr, &vip);
			p->orig_dport = vport;
		}
	}
	if (bpf_map_update_elem(ebm_http_pending_map(fam), &k, p, BPF_ANY))
		ebm_count(EBM_CNT_HTTP_PENDING_FULL);
}

static __always_inline void ebm_http_response(int fam, const struct ebm_http_seg *g, __u16 status)
{
	union ebm_http_key k = {};
	struct ebm_http_pending *p;
	struct ebm_flow_event *e;

	ebm_http_key(fam, &k, &g->daddr, g->dport, &g->saddr, g->sport);
	p = bpf_map_lookup_elem(ebm_http_pending_map(fam), &k);

	if (!p) /* the other end reported it, or the request predates us */
		return;
	e = ebm_event_reserve(EBM_EV_HTTP);
	if (e) {
		e->start_ns = p->start_ns;
		e->duration_ns = e->ts_ns - p->start_ns;
		e->cookie = p->cookie;
		e->cgroup_id = p->cgroup_id;
		ebm_addr_store(fam, e->saddr, &g->daddr);
		e->sport = g->dport;
		ebm_addr_store(fam, e->daddr, &g->saddr);
		e->dport = g->sport;
		ebm_copy6(e->orig_daddr, p->orig_daddr);
		e->orig_dport = p->orig_dport;
		e->proto = IPPROTO_TCP;
		e->flags = p->flags | g->flags;
		e->http_method = p->method;
		e->http_status = status;
		e->http_path_len = p->path_len;
		__builtin_memcpy(e->http_path, p->path, EBM_HTTP_PATH_MAX);
		if (p->orig_dport) {
			struct ebm_addr vip = {};
			struct ebm_lb4_frontend *fe;

			ebm_addr_load(fam, &vip, p->orig_daddr);
			fe = ebm_lb_frontend(fam, &vip, p->orig_dport, IPPROTO_TCP);
			if (fe)
				e->frontend_id = fe->id;
		}
		ebm_event_submit(e);
	}
	bpf_map_delete_elem(ebm_http_pending_map(fam), &k);
}

/* s->buf holds the first g->len bytes of the write (12 <= g->len <= HTTP_PEEK); `fam` a constant. */
static __always_inline void ebm_http_parse(int fam, const struct ebm_http_seg *g, struct http_scratch *s)
{
	__u8 method = 0;
	__u16 status = http_status(s->buf);
	int target;

	if (status) {
		ebm_http_response(fam, g, status);
		return;
	}
	target = http_method(s->buf, &method);
	if (target)
		ebm_http_request(fam, g, s, target, method);
}

#endif /* EBMESH_HTTP_H */
