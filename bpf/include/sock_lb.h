/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The socket load balancer's logic, once for every sock_addr hook: the
 * AF_INET hooks, the AF_INET6 hooks when the application dialled a
 * v4-mapped address (::ffff:a.b.c.d: IPv4), and the AF_INET6 hooks for a
 * native IPv6 address. Each function takes `view` (v4mapped.h), always a
 * constant at the call site, which says where the hook keeps the address
 * and, through it, the family (family.h) whose maps serve it; everything
 * else (Service lookup, affinity, policy, L7 steering, the mTLS tunnel,
 * refusal) is the same code, so every socket gets exactly what an IPv4 one
 * does.
 */
#ifndef EBMESH_SOCK_LB_H
#define EBMESH_SOCK_LB_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/errno.h>
#include <bpf/bpf_helpers.h>
#include "ebmesh_abi.h"
#include "ebmesh_maps.h"
#include "ebmesh_events.h"
#include "family.h"
#include "v4mapped.h"
#include "lb.h"
#include "l7_redirect.h"
#include "policy.h"

#define SOCK_ADDR_ALLOW  1
#define SOCK_ADDR_REJECT 0

/* Refuse like a closed port: an immediate ECONNREFUSED, never a timeout.
 * The refusal is a drop event, so observe shows who was refused and why. */
static __always_inline int ebm_lb_refuse(struct bpf_sock_addr *ctx, int view, const struct ebm_addr *vip,
					 const struct ebm_lb4_frontend *fe, enum ebm_counter why, enum ebm_reason reason)
{
	int fam = ebm_sa_family(view);
	struct ebm_flow_event *e;

	ebm_count(why);
	e = ebm_event_reserve(EBM_EV_DROP);
	if (e) {
		e->cookie = bpf_get_socket_cookie(ctx);
		e->cgroup_id = bpf_get_current_cgroup_id();
		ebm_addr_store(fam, e->daddr, vip);
		e->dport = (__u16)ctx->user_port;
		ebm_addr_store(fam, e->orig_daddr, vip);
		e->orig_dport = e->dport;
		e->proto = (__u8)ctx->protocol;
		e->verdict = EBM_VERDICT_DROPPED;
		e->reason = reason;
		e->frontend_id = fe->id;
		ebm_event_submit(e);
	}
	bpf_set_retval(-ECONNREFUSED);
	return SOCK_ADDR_REJECT;
}

/* The backend this client had for the frontend, while its affinity lasts: 1 and ip/port set. */
static __always_inline int ebm_lb_affinity_backend(int fam, const struct ebm_lb4_frontend *fe, struct ebm_lb4_affinity_key *akey,
						   __u64 now, struct ebm_addr *ip, __u16 *port)
{
	struct ebm_lb4_affinity *a;

	a = bpf_map_lookup_elem(&ebm_lb4_affinity, akey);
	if (!a)
		return 0;
	if (now - a->last_used_ns > (__u64)fe->affinity_timeout * 1000000000ull)
		return 0;
	/* The backend may have left the service since: then choose anew. */
	if (!ebm_lb_backend(fam, a->backend_id, ip, port))
		return 0;
	a->last_used_ns = now;
	ebm_count(EBM_CNT_LB_AFFINITY_HIT);
	return 1;
}

/* Where policy judges a connect: the address it ends up at, or for one
 * steered to the node proxy, the Service's backend in slot 0. */
struct ebm_lb_judge {
	struct ebm_addr ip;
	__u16 port;
	__u8 set;
};

/*
 * Gives a connect or sendmsg to a Service VIP its backend (or the node
 * proxy), rewriting the destination in place. `fe_id` gets the frontend's
 * id when it was a Service; `judge`, for a steered connect, the backend
 * policy judges it on. SOCK_ADDR_REJECT when it was refused.
 */
static __always_inline int ebm_lb_translate(struct bpf_sock_addr *ctx, int view, __u32 *fe_id, struct ebm_lb_judge *judge)
{
	int fam = ebm_sa_family(view);
	struct ebm_addr vip = {};
	__u16 vport = (__u16)ctx->user_port;
	struct ebm_lb4_affinity_key akey = {};
	struct ebm_lb4_frontend *fe;
	struct ebm_addr bip = {};
	__u16 bport = 0;
	int have = 0;
	struct ebm_lb4_slot_key sk;
	struct ebm_lb4_slot *slot;
	__u32 backend_id = 0;
	__u64 now = 0;

	ebm_sa_addr(ctx, view, &vip);
	fe = ebm_lb_frontend(fam, &vip, vport, (__u8)ctx->protocol);
	if (!fe) {
		/* --- cross-node mTLS: a pod IP of another node dialled directly. */
		ebm_xnode_tunnel(ctx, view, &vip, vport, &vip, vport);
		return SOCK_ADDR_ALLOW;         /* not a service: untouched */
	}

	/* --- L7 (issue 6): a frontend with routes/L7 policy goes to the node
	 * proxy, which picks the backend; see l7_redirect.h. Before the
	 * backend count check: with no ready backend the proxy answers 503. */
	if (fe->flags & EBM_FRONTEND_F_L7) {
		if (ebm_l7_redirect(ctx, view, &vip, vport) > 0) {
			/* The proxy picks the backend later; policy judges the
			 * connect now, on the Service's first backend (a
			 * Service's backends share their labels in practice),
			 * so a steered connect is denied exactly when a plain
			 * one would be. */
			struct ebm_lb4_slot_key sk0 = { .frontend_id = fe->id, .slot = 0 };
			struct ebm_lb4_slot *s0 = bpf_map_lookup_elem(&ebm_lb4_slots, &sk0);

			if (s0 && fe->count > 0 && ebm_lb_backend(fam, s0->backend_id, &judge->ip, &judge->port))
				judge->set = 1;
			*fe_id = fe->id;
			return SOCK_ADDR_ALLOW;
		}
	}
	/* --- end L7 */

	if (fe->count == 0)
		return ebm_lb_refuse(ctx, view, &vip, fe, EBM_CNT_LB_NO_BACKEND, EBM_REASON_NO_BACKEND);

	if (fe->flags & EBM_FRONTEND_F_AFFINITY) {
		akey.netns_cookie = bpf_get_netns_cookie(ctx);
		akey.frontend_id = fe->id;
		now = bpf_ktime_get_ns();
		have = ebm_lb_affinity_backend(fam, fe, &akey, now, &bip, &bport);
	}

	if (!have) {
		sk.frontend_id = fe->id;
		sk.slot = bpf_get_prandom_u32() % fe->count;
		slot = bpf_map_lookup_elem(&ebm_lb4_slots, &sk);
		if (!slot)
			return ebm_lb_refuse(ctx, view, &vip, fe, EBM_CNT_LB_SLOT_MISS, EBM_REASON_LB_SLOT_MISS);
		backend_id = slot->backend_id;
		if (!ebm_lb_backend(fam, backend_id, &bip, &bport))
			return ebm_lb_refuse(ctx, view, &vip, fe, EBM_CNT_LB_SLOT_MISS, EBM_REASON_LB_SLOT_MISS);
		if (fe->flags & EBM_FRONTEND_F_AFFINITY) {
			struct ebm_lb4_affinity a = {
				.backend_id = backend_id,
				.last_used_ns = now,
			};
			bpf_map_update_elem(&ebm_lb4_affinity, &akey, &a, BPF_ANY);
		}
	}

	/* --- cross-node mTLS: the chosen backend is on another node, so the
	 * connection goes through the node proxy into the tunnel. */
	if (ebm_xnode_tunnel(ctx, view, &bip, bport, &vip, vport) > 0)
		return SOCK_ADDR_ALLOW;

	ebm_lb_revnat_put(fam, bpf_get_socket_cookie(ctx), &bip, bport, &vip, vport);
	ebm_sa_set(ctx, view, &bip, bport);
	*fe_id = fe->id;
	ebm_count(EBM_CNT_LB_TRANSLATED);
	return SOCK_ADDR_ALLOW;
}

/* getpeername() and recvmsg(): show the VIP the socket dialled, not its backend. */
static __always_inline int ebm_lb_reverse(struct bpf_sock_addr *ctx, int view)
{
	int fam = ebm_sa_family(view);
	struct ebm_addr to = {}, vip = {};
	__u16 vport = 0;

	ebm_sa_addr(ctx, view, &to);
	if (ebm_lb_revnat_get(fam, bpf_get_socket_cookie(ctx), &to, (__u16)ctx->user_port, &vip, &vport))
		ebm_sa_set(ctx, view, &vip, vport);
	return SOCK_ADDR_ALLOW;
}

/* connect(): translate, then judge by policy. */
static __always_inline int ebm_lb_connect(struct bpf_sock_addr *ctx, int view)
{
	int fam = ebm_sa_family(view);
	struct ebm_addr dialled = {}, now_ip = {};
	__u16 dialled_port = (__u16)ctx->user_port;
	struct ebm_lb_judge judge = {};
	__u32 fe_id = 0;

	ebm_sa_addr(ctx, view, &dialled);
	if (ebm_lb_translate(ctx, view, &fe_id, &judge) == SOCK_ADDR_REJECT)
		return SOCK_ADDR_REJECT;
	ebm_sa_addr(ctx, view, &now_ip);
	if (!judge.set) {
		judge.ip = now_ip;
		judge.port = (__u16)ctx->user_port;
	}
	/* After the translation: a Service is judged on the backend it got,
	 * exactly as a connect to that backend's address would be. EPERM, not
	 * ECONNREFUSED, so a policy denial is told apart from "no backend". */
	if (!ebm_policy_connect(ctx, fam, &judge.ip, judge.port, ebm_addr_eq(fam, &now_ip, &dialled) ? NULL : &dialled,
				dialled_port, fe_id)) {
		bpf_set_retval(-EPERM);
		return SOCK_ADDR_REJECT;
	}
	return SOCK_ADDR_ALLOW;
}

#endif /* EBMESH_SOCK_LB_H */
