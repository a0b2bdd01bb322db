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

#ifndef SOCK_STREAM
#define SOCK_STREAM 1
#endif

/*
 * Returns 1 (allow, destination rewritten) when the connection was sent to
 * the proxy, or -1 when the caller should balance it as usual: not TCP, or
 * no proxy configured on this node (the agent has not started it yet).
 * `view` says how the hook shows the address (v4mapped.h).
 */
static __always_inline int ebm_l7_steer(struct bpf_sock_addr *ctx, int view, __u32 dst_ip, __u16 dst_port,
					__u32 shown_ip, __u16 shown_port, __u16 flags)
{
	__u32 zero = 0;
	struct ebm_l7_proxy *px;
	__u64 cookie;

	if (ctx->type != SOCK_STREAM)
		return -1;
	px = bpf_map_lookup_elem(&ebm_l7_proxy, &zero);
	if (!px || px->port == 0) {
		ebm_count(EBM_CNT_L7_NO_PROXY);
		return -1;
	}
	cookie = bpf_get_socket_cookie(ctx);

	struct ebm_l7_orig o = {
		.vip = dst_ip,
		.port = dst_port,
		.flags = flags,
		.cgroup_id = bpf_get_current_cgroup_id(),
	};
	bpf_map_update_elem(&ebm_l7_pending, &cookie, &o, BPF_ANY);

	/* getpeername() must still show the address the client dialled. */
	struct ebm_lb4_revnat_key rk = { .cookie = cookie, .ip = px->ip, .port = px->port };
	struct ebm_lb4_revnat rv = { .vip = shown_ip, .port = shown_port };
	bpf_map_update_elem(&ebm_lb4_revnat, &rk, &rv, BPF_ANY);

	ebm_sa_set4(ctx, view, px->ip, px->port);
	return 1;
}

static __always_inline int ebm_l7_redirect(struct bpf_sock_addr *ctx, int view, const struct ebm_lb4_frontend_key *fk)
{
	if (ebm_l7_steer(ctx, view, fk->vip, fk->port, fk->vip, fk->port, 0) < 0)
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
static __always_inline int ebm_xnode_tunnel(struct bpf_sock_addr *ctx, int view, __u32 dst_ip, __u16 dst_port,
					    __u32 shown_ip, __u16 shown_port)
{
	struct ebm_mtls_src_key k = { .prefixlen = 32, .ip = dst_ip };
	__u32 *on = bpf_map_lookup_elem(&ebm_xnode_dsts, &k);

	if (!on || *on != 1)
		return -1;
	if (ebm_l7_steer(ctx, view, dst_ip, dst_port, shown_ip, shown_port, EBM_L7_ORIG_F_TUNNEL) < 0)
		return -1;
	ebm_count(EBM_CNT_MTLS_TUNNELLED);
	return 1;
}

#endif /* EBMESH_L7_REDIRECT_H */
