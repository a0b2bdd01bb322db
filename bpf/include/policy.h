/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Identity-based network policy: the verdict, shared by the socket hooks
 * (connect time, so a denied TCP connect fails at once) and the per-packet
 * hooks (policy.bpf.c: ingress from anywhere, raw sockets, UDP, spoofing).
 *
 * The lookups and their order are those of src/policy/verdict.ts, which
 * `ebmesh policy explain` runs in user space: the two must stay the same.
 */
#ifndef EBMESH_POLICY_H
#define EBMESH_POLICY_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "ebmesh_abi.h"
#include "ebmesh_maps.h"
#include "ebmesh_events.h"
#include "family.h"

#define EBM_FIRST_ALLOCATED_IDENTITY 256
/* How deep below the cgroup root a workload's cgroup may be. */
#define EBM_CGROUP_MAX_LEVEL 16

struct ebm_pol_result {
	__u32 policy_ref;
	__u16 rule;
	__u16 reason;
};

/* 127.0.0.0/8, or ::1. */
static __always_inline int ebm_is_loopback(int fam, const struct ebm_addr *a)
{
	if (fam == EBM_FAM6)
		return a->w[0] == 0 && a->w[1] == 0 && a->w[2] == 0 && a->w[3] == bpf_htonl(1);
	return (bpf_ntohl(a->w[0]) >> 24) == 127;
}

/* The ipcache of the address's family; a miss is the world. */
static __always_inline __u32 ebm_identity_of_addr(int fam, const struct ebm_addr *a)
{
	struct ebm_pol_identity *v;

	if (fam == EBM_FAM6) {
		struct ebm_pol_ipcache6_key k;

		ebm_copy6(k.addr, a->w);
		v = bpf_map_lookup_elem(&ebm_pol_ipcache6, &k);
	} else {
		struct ebm_pol_ipcache_key k = { .addr = a->w[0] };

		v = bpf_map_lookup_elem(&ebm_pol_ipcache, &k);
	}
	return v ? v->identity : EBM_IDENTITY_WORLD;
}

/* The ipBlock region of `peer_addr` for (subject, dir), from the cidr map of its family. */
static __always_inline struct ebm_pol_cidr *ebm_pol_region(int fam, __u32 subject, __u8 dir, const struct ebm_addr *peer_addr)
{
	if (fam == EBM_FAM6) {
		struct ebm_pol_cidr6_key k = {
			.prefixlen = EBM_POL_CIDR_FIXED_BITS + 128, .subject = subject, .direction = dir,
		};

		ebm_copy6(k.addr, peer_addr->w);
		return bpf_map_lookup_elem(&ebm_pol_cidr6, &k);
	}
	struct ebm_pol_cidr_key k = {
		.prefixlen = EBM_POL_CIDR_FIXED_BITS + 32, .subject = subject, .direction = dir, .addr = peer_addr->w[0],
	};

	return bpf_map_lookup_elem(&ebm_pol_cidr, &k);
}

/*
 * One side of a flow: may `subject` send to (egress) or receive from
 * (ingress) `peer` on proto/port? 1 allow, 0 deny with `res` filled in.
 */
static __always_inline int ebm_pol_side(__u32 subject, __u8 dir, __u32 peer, int fam, const struct ebm_addr *peer_addr,
					__u8 proto, __u16 port_be, struct ebm_pol_result *res)
{
	struct ebm_pol_isolation_key ik = { .subject = subject, .direction = dir };
	struct ebm_pol_isolation *iso;
	struct ebm_pol_allow_key ak = {
		.prefixlen = EBM_POL_ALLOW_FIXED_BITS + 16,
		.subject = subject,
		.peer = peer,
		.direction = dir,
		.proto = proto,
		.port = port_be,
	};
	struct ebm_pol_cidr *c;

	iso = bpf_map_lookup_elem(&ebm_pol_isolation, &ik);
	if (!iso)
		return 1;
	if (bpf_map_lookup_elem(&ebm_pol_allow, &ak))
		return 1;
	ak.peer = EBM_IDENTITY_ANY;
	if (bpf_map_lookup_elem(&ebm_pol_allow, &ak))
		return 1;
	c = ebm_pol_region(fam, subject, dir, peer_addr);
	if (c && c->group) {
		ak.peer = c->group;
		if (bpf_map_lookup_elem(&ebm_pol_allow, &ak))
			return 1;
	}
	res->reason = dir == EBM_DIR_INGRESS ? EBM_REASON_POLICY_INGRESS : EBM_REASON_POLICY_EGRESS;
	if (c && !c->group && c->policy_ref) {
		res->policy_ref = c->policy_ref;   /* the except that carved the hole */
		res->rule = c->rule;
	} else {
		res->policy_ref = iso->policy_ref;
		res->rule = 0xffff;                /* no rule: the isolation default */
	}
	return 0;
}

/*
 * The workload a cgroup belongs to: its own entry, else its deepest listed
 * ancestor (down to the root, which is listed as the host where the mesh
 * also serves the host's own sockets). The cgroup is the socket's (`skb` given, per-packet hooks) or
 * the current task's (`skb` NULL, socket hooks): callers pass a constant, so
 * the inlined copy keeps only the helpers its program type may call.
 */
static __always_inline struct ebm_pol_endpoint *ebm_endpoint_of(struct __sk_buff *skb, __u64 *cgid)
{
	struct ebm_pol_endpoint *ep;
	__u64 id = skb ? bpf_skb_cgroup_id(skb) : bpf_get_current_cgroup_id();
	int level;

	*cgid = id;
	ep = bpf_map_lookup_elem(&ebm_pol_endpoints, &id);
	if (ep)
		return ep;
#pragma unroll
	for (level = EBM_CGROUP_MAX_LEVEL; level >= 0; level--) {
		id = skb ? bpf_skb_ancestor_cgroup_id(skb, level) : bpf_get_current_ancestor_cgroup_id(level);
		if (!id)
			continue;
		ep = bpf_map_lookup_elem(&ebm_pol_endpoints, &id);
		if (ep)
			return ep;
	}
	return NULL;
}

/* A workload's own address of `fam` (all zero: not known). */
static __always_inline void ebm_endpoint_addr(int fam, const struct ebm_pol_endpoint *ep, struct ebm_addr *a)
{
	if (fam == EBM_FAM6)
		ebm_copy6(a->w, ep->addr6);
	else
		a->w[0] = ep->addr;
}

/*
 * What a policy drop reports, gathered on the stack while judging: the
 * fields of struct ebm_flow_event that policy fills, so the record is only
 * written once, straight into the ring. Addresses are of the family the
 * caller passes to ebm_emit_drop().
 */
struct ebm_pol_drop {
	__u64 cookie;
	__u64 cgroup_id;
	struct ebm_addr saddr, daddr;  /* network order */
	__u16 sport, dport;            /* network order; sport 0 at connect time */
	struct ebm_addr orig_daddr;    /* the Service VIP dialled, zero if none */
	__u16 orig_dport;
	__u8  proto;
	__u8  flags;                   /* EBM_EV_F_*: which hook judged it */
	__u32 src_identity, dst_identity;
	__u32 policy_ref;
	__u16 rule;
	__u16 reason;                  /* enum ebm_reason */
	__u32 frontend_id;
};

/* Counts the drop by reason and reports it; an event the ring has no room for is counted, never waited for. */
static __always_inline void ebm_emit_drop(int fam, const struct ebm_pol_drop *d)
{
	struct ebm_flow_event *e;
	__u32 key = d->reason;
	__u64 *v = bpf_map_lookup_elem(&ebm_drops, &key);

	if (v)
		*v += 1;
	ebm_count(EBM_CNT_POL_DENIED);
	e = ebm_event_reserve(EBM_EV_DROP);
	if (!e)
		return;
	e->cookie = d->cookie;
	e->cgroup_id = d->cgroup_id;
	ebm_addr_store(fam, e->saddr, &d->saddr);
	ebm_addr_store(fam, e->daddr, &d->daddr);
	e->sport = d->sport;
	e->dport = d->dport;
	ebm_addr_store(fam, e->orig_daddr, &d->orig_daddr);
	e->orig_dport = d->orig_dport;
	e->proto = d->proto;
	e->flags = d->flags;
	e->verdict = EBM_VERDICT_DROPPED;
	e->reason = d->reason;
	e->src_identity = d->src_identity;
	e->dst_identity = d->dst_identity;
	e->policy_ref = d->policy_ref;
	e->policy_rule = d->rule;
	e->frontend_id = d->frontend_id;
	ebm_event_submit(e);
}

/*
 * A new TCP connection, judged when the workload calls connect() and after
 * the socket load balancer chose the backend: the source's egress and,
 * when the destination is a workload (on any node: identities and tables
 * are global), the destination's ingress too, so that a connection its
 * ingress would refuse fails now instead of as a SYN dropped over there.
 * `vip`, when the socket LB translated this connect: what was dialled, so the
 * drop names the Service. 1 allow, 0 deny (the caller refuses the connect).
 */
static __always_inline int ebm_policy_connect(struct bpf_sock_addr *ctx, int fam, const struct ebm_addr *daddr, __u16 dport,
					      const struct ebm_addr *vip, __u16 vip_port, __u32 frontend_id)
{
	struct ebm_pol_drop ev = {};
	struct ebm_pol_result res = {};
	struct ebm_pol_endpoint *ep;
	struct ebm_addr self = {};
	__u32 peer;
	__u64 cgid;

	if (ctx->type != 1 /* SOCK_STREAM */ || ctx->protocol != IPPROTO_TCP)
		return 1; /* UDP and raw: judged per packet in policy.bpf.c */
	ep = ebm_endpoint_of(NULL, &cgid);
	ev.cgroup_id = cgid;
	ev.cookie = bpf_get_socket_cookie(ctx);
	ev.daddr = *daddr;
	ev.dport = dport;
	ev.proto = IPPROTO_TCP;
	ev.flags = EBM_EV_F_ACTIVE;
	if (vip) {
		ev.orig_daddr = *vip;
		ev.orig_dport = vip_port;
		ev.frontend_id = frontend_id;
	}
	if (!ep) {
		ev.reason = EBM_REASON_NO_IDENTITY;
		ebm_emit_drop(fam, &ev);
		return 0;
	}
	/* The node itself always reaches its workloads, as per packet (policy.bpf.c). */
	if (ep->identity == EBM_IDENTITY_HOST)
		return 1;
	ebm_endpoint_addr(fam, ep, &self);
	if (ebm_addr_eq(fam, daddr, &self) || ebm_is_loopback(fam, daddr))
		return 1; /* a workload may always reach itself */
	peer = ebm_identity_of_addr(fam, daddr);
	ev.saddr = self;
	ev.src_identity = ep->identity;
	ev.dst_identity = peer;
	if (!ebm_pol_side(ep->identity, EBM_DIR_EGRESS, peer, fam, daddr, IPPROTO_TCP, dport, &res))
		goto deny;
	if (peer >= EBM_FIRST_ALLOCATED_IDENTITY &&
	    !ebm_pol_side(peer, EBM_DIR_INGRESS, ep->identity, fam, &self, IPPROTO_TCP, dport, &res))
		goto deny;
	ebm_count(EBM_CNT_POL_ALLOWED);
	return 1;
deny:
	ev.reason = res.reason;
	ev.policy_ref = res.policy_ref;
	ev.rule = res.rule;
	ebm_emit_drop(fam, &ev);
	return 0;
}

#endif /* EBMESH_POLICY_H */
