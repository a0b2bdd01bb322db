/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Steering to the node proxy, at connect().
 *
 * A frontend flagged EBM_FRONTEND_F_L7 has routes or L7 policy: its TCP
 * connections go to the node proxy instead of a backend. The proxy picks the
 * backend itself, so all the kernel keeps is where the client meant to go
 * and which cgroup asked. At connect() the source port is not known yet, so
 * the record is keyed by socket cookie first; the sockops program moves it
 * to the client's (ip, port) once the connection is established, which is
 * the one key the proxy can compute from an accepted socket.
 */
#ifndef EBMESH_L7_REDIRECT_H
#define EBMESH_L7_REDIRECT_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "ebmesh_abi.h"
#include "ebmesh_maps.h"
#include "v4mapped.h"
#include "lb.h"

#ifndef SOCK_STREAM
#define SOCK_STREAM 1
#endif

/*
 * Returns 1 (allow, destination rewritten) when the connection was sent to
 * the proxy, or -1 when the caller should balance it as usual: not TCP, or
 * no proxy configured on this node (the agent has not started it yet), or
 * none listening on the connection's family. `view` says how the hook shows
 * the address (v4mapped.h); an IPv6 connection goes to the proxy's IPv6
 * address, an IPv4 one (v4-mapped included) to its IPv4 address.
 */
static __always_inline int ebm_l7_steer(struct bpf_sock_addr *ctx, int view, const struct ebm_addr *dst, __u16 dst_port,
					const struct ebm_addr *shown, __u16 shown_port, __u16 flags)
{
	int fam = ebm_sa_family(view);
	__u32 zero = 0;
	struct ebm_l7_proxy *px;
	struct ebm_addr to = {};
	__u64 cookie;

	if (ctx->type != SOCK_STREAM)
		return -1;
	px = bpf_map_lookup_elem(&ebm_l7_proxy, &zero);
	if (!px || px->port == 0) {
		ebm_count(EBM_CNT_L7_NO_PROXY);
		return -1;
	}
	if (fam == EBM_FAM6) {
		ebm_copy6(to.w, px->ip6);
		if (ebm_addr_zero(fam, &to)) {
			ebm_count(EBM_CNT_L7_NO_PROXY);
			return -1;
		}
	} else {
		to.w[0] = px->ip;
	}
	cookie = bpf_get_socket_cookie(ctx);

	struct ebm_l7_orig o = {
		.port = dst_port,
		.flags = flags,
		.cgroup_id = bpf_get_current_cgroup_id(),
	};
	ebm_addr_store(fam, o.vip, dst);
	bpf_map_update_elem(&ebm_l7_pending, &cookie, &o, BPF_ANY);

	/* getpeername() must still show the address the client dialled. */
	ebm_lb_revnat_put(fam, cookie, &to, px->port, shown, shown_port);
	ebm_sa_set(ctx, view, &to, px->port);
	return 1;
}

static __always_inline int ebm_l7_redirect(struct bpf_sock_addr *ctx, int view, const struct ebm_addr *vip, __u16 port)
{
	if (ebm_l7_steer(ctx, view, vip, port, vip, port, 0) < 0)
		return -1;
	ebm_count(EBM_CNT_L7_REDIRECTED);
	return 1;
}

/*
 * Cross-node mTLS (issue 7): a connection whose destination (the backend
 * the LB just chose, or the pod IP dialled directly) is a workload of
 * another node with the tunnel on goes to the node proxy too, recording the
 * backend itself (flag TUNNEL): the proxy pipes the bytes into the mTLS
 * tunnel to that node, no L7 parsing. Same record, same sockops publish.
 * Without a proxy on this node it goes out in plaintext, as before.
 */
static __always_inline int ebm_xnode_tunnel(struct bpf_sock_addr *ctx, int view, const struct ebm_addr *dst, __u16 dst_port,
					    const struct ebm_addr *shown, __u16 shown_port)
{
	__u32 *on;

	if (ebm_sa_family(view) == EBM_FAM6) {
		struct ebm_mtls_src6_key k = { .prefixlen = 128 };

		ebm_copy6(k.ip, dst->w);
		on = bpf_map_lookup_elem(&ebm_xnode_dsts6, &k);
	} else {
		struct ebm_mtls_src_key k = { .prefixlen = 32, .ip = dst->w[0] };

		on = bpf_map_lookup_elem(&ebm_xnode_dsts, &k);
	}
	if (!on || *on != 1)
		return -1;
	if (ebm_l7_steer(ctx, view, dst, dst_port, shown, shown_port, EBM_L7_ORIG_F_TUNNEL) < 0)
		return -1;
	ebm_count(EBM_CNT_MTLS_TUNNELLED);
	return 1;
}

#endif /* EBMESH_L7_REDIRECT_H */
