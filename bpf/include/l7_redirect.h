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

#ifndef SOCK_STREAM
#define SOCK_STREAM 1
#endif

/*
 * Returns 1 (allow, destination rewritten) when the connection was sent to
 * the proxy, or -1 when the caller should balance it as usual: not TCP, or
 * no proxy configured on this node (the agent has not started it yet).
 */
static __always_inline int ebm_l7_redirect(struct bpf_sock_addr *ctx, const struct ebm_lb4_frontend_key *fk)
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
		.vip = fk->vip,
		.port = fk->port,
		.cgroup_id = bpf_get_current_cgroup_id(),
	};
	bpf_map_update_elem(&ebm_l7_pending, &cookie, &o, BPF_ANY);

	/* getpeername() must still show the VIP the client dialled. */
	struct ebm_lb4_revnat_key rk = { .cookie = cookie, .ip = px->ip, .port = px->port };
	struct ebm_lb4_revnat rv = { .vip = fk->vip, .port = fk->port };
	bpf_map_update_elem(&ebm_lb4_revnat, &rk, &rv, BPF_ANY);

	ctx->user_ip4 = px->ip;
	ctx->user_port = (__u32)px->port;
	ebm_count(EBM_CNT_L7_REDIRECTED);
	return 1;
}

#endif /* EBMESH_L7_REDIRECT_H */
