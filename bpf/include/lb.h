/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The load balancer's maps, for either family (family.h): frontends,
 * backends and the reverse translation, each with an IPv4 map and an IPv6
 * one. Callers pass the family as a constant, so each inlined copy touches
 * only its family's map.
 */
#ifndef EBMESH_LB_H
#define EBMESH_LB_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "ebmesh_abi.h"
#include "ebmesh_maps.h"
#include "family.h"

/* The frontend (VIP, port, proto), or NULL when the address is no Service. */
static __always_inline struct ebm_lb4_frontend *ebm_lb_frontend(int fam, const struct ebm_addr *vip, __u16 port, __u8 proto)
{
	if (fam == EBM_FAM6) {
		struct ebm_lb6_frontend_key k = { .port = port, .proto = proto };

		ebm_copy6(k.vip, vip->w);
		return bpf_map_lookup_elem(&ebm_lb6_frontends, &k);
	}
	struct ebm_lb4_frontend_key k = { .vip = vip->w[0], .port = port, .proto = proto };

	return bpf_map_lookup_elem(&ebm_lb4_frontends, &k);
}

/* A backend by id, copied out; 0 when it is gone (left the Service mid-update). */
static __always_inline int ebm_lb_backend(int fam, __u32 id, struct ebm_addr *ip, __u16 *port)
{
	if (fam == EBM_FAM6) {
		struct ebm_lb6_backend *b = bpf_map_lookup_elem(&ebm_lb6_backends, &id);

		if (!b)
			return 0;
		ebm_copy6(ip->w, b->ip);
		*port = b->port;
		return 1;
	}
	struct ebm_lb4_backend *b = bpf_map_lookup_elem(&ebm_lb4_backends, &id);

	if (!b)
		return 0;
	ip->w[0] = b->ip;
	*port = b->port;
	return 1;
}

/* Remembers that this socket's `to` stands for the VIP it dialled (getpeername, recvmsg, observe). */
static __always_inline void ebm_lb_revnat_put(int fam, __u64 cookie, const struct ebm_addr *to, __u16 to_port,
					      const struct ebm_addr *vip, __u16 vip_port)
{
	if (fam == EBM_FAM6) {
		struct ebm_lb6_revnat_key rk = { .cookie = cookie, .port = to_port };
		struct ebm_lb6_revnat rv = { .port = vip_port };

		ebm_copy6(rk.ip, to->w);
		ebm_copy6(rv.vip, vip->w);
		bpf_map_update_elem(&ebm_lb6_revnat, &rk, &rv, BPF_ANY);
		return;
	}
	struct ebm_lb4_revnat_key rk = { .cookie = cookie, .ip = to->w[0], .port = to_port };
	struct ebm_lb4_revnat rv = { .vip = vip->w[0], .port = vip_port };

	bpf_map_update_elem(&ebm_lb4_revnat, &rk, &rv, BPF_ANY);
}

/* The VIP this socket dialled to reach `to`: 1 and vip/vip_port set, or 0. */
static __always_inline int ebm_lb_revnat_get(int fam, __u64 cookie, const struct ebm_addr *to, __u16 to_port,
					     struct ebm_addr *vip, __u16 *vip_port)
{
	if (fam == EBM_FAM6) {
		struct ebm_lb6_revnat_key rk = { .cookie = cookie, .port = to_port };
		struct ebm_lb6_revnat *rv;

		ebm_copy6(rk.ip, to->w);
		rv = bpf_map_lookup_elem(&ebm_lb6_revnat, &rk);
		if (!rv)
			return 0;
		ebm_copy6(vip->w, rv->vip);
		*vip_port = rv->port;
		return 1;
	}
	struct ebm_lb4_revnat_key rk = { .cookie = cookie, .ip = to->w[0], .port = to_port };
	struct ebm_lb4_revnat *rv = bpf_map_lookup_elem(&ebm_lb4_revnat, &rk);

	if (!rv)
		return 0;
	vip->w[0] = rv->vip;
	*vip_port = rv->port;
	return 1;
}

#endif /* EBMESH_LB_H */
