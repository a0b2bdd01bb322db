/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * How the socket hooks show a socket's address: the IPv4 view of a socket,
 * whichever family it was opened with, and the native IPv6 view.
 *
 * An AF_INET6 socket that dials ::ffff:a.b.c.d (a v4-mapped address: gRPC's
 * C core and the JVM do, for every IPv4 destination) is an IPv4 socket in
 * all but name: its packets are IPv4 on the wire and the kernel keeps its
 * IPv4 addresses in the same fields as an AF_INET socket's. What differs is
 * where the socket hooks show the address: the AF_INET6 sock_addr hooks
 * (connect6, recvmsg6, getpeername6) carry it in user_ip6 as ::ffff:a.b.c.d,
 * and sockops reports family AF_INET6. These helpers let one body of logic
 * serve both: the socket programs pass EBM_SA_INET or EBM_SA_V4MAPPED as a
 * constant, so each inlined copy keeps only the context fields its attach
 * type may touch (the verifier refuses user_ip6 in a connect4 program and
 * user_ip4 in a connect6 one). A native IPv6 address (EBM_SA_INET6) is
 * the other family: the logic takes it with ebm_sa_family() (family.h).
 */
#ifndef EBMESH_V4MAPPED_H
#define EBMESH_V4MAPPED_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "family.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

/* How a sock_addr hook shows the socket's address. */
#define EBM_SA_INET     0 /* AF_INET hook: user_ip4 */
#define EBM_SA_V4MAPPED 1 /* AF_INET6 hook, v4-mapped address: user_ip6[3] */
#define EBM_SA_INET6    2 /* AF_INET6 hook, native IPv6: user_ip6[0..3] */

/* The family of the address a view shows (family.h): a v4-mapped one is IPv4. */
static __always_inline int ebm_sa_family(int view)
{
	return view == EBM_SA_INET6 ? EBM_FAM6 : EBM_FAM4;
}

/* ::ffff:0:0/96, word by word in network order. */
static __always_inline int ebm_ip6_words_v4mapped(__u32 w0, __u32 w1, __u32 w2)
{
	return w0 == 0 && w1 == 0 && w2 == bpf_htonl(0x0000ffff);
}

/* An AF_INET6 sock_addr hook: is the address ::ffff:a.b.c.d? */
static __always_inline int ebm_sa_is_v4mapped(struct bpf_sock_addr *ctx)
{
	return ebm_ip6_words_v4mapped(ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2]);
}

static __always_inline __u32 ebm_sa_ip4(struct bpf_sock_addr *ctx, int view)
{
	return view == EBM_SA_V4MAPPED ? ctx->user_ip6[3] : ctx->user_ip4;
}

/* The address the hook shows, in the view's family. */
static __always_inline void ebm_sa_addr(struct bpf_sock_addr *ctx, int view, struct ebm_addr *a)
{
	if (view == EBM_SA_INET6) {
		a->w[0] = ctx->user_ip6[0];
		a->w[1] = ctx->user_ip6[1];
		a->w[2] = ctx->user_ip6[2];
		a->w[3] = ctx->user_ip6[3];
		return;
	}
	a->w[0] = ebm_sa_ip4(ctx, view);
}

/*
 * Rewrites the destination (connect, sendmsg) or the shown peer (recvmsg,
 * getpeername). A v4-mapped address stays v4-mapped: only its last word is
 * the IPv4 address, and the ::ffff: prefix the hook was called with is
 * already in place, so the socket stays on its IPv4 path.
 */
static __always_inline void ebm_sa_set4(struct bpf_sock_addr *ctx, int view, __u32 ip, __u16 port)
{
	if (view == EBM_SA_V4MAPPED)
		ctx->user_ip6[3] = ip;
	else
		ctx->user_ip4 = ip;
	ctx->user_port = (__u32)port;
}

/* Rewrites the address in the view's family (ebm_sa_set4 for IPv4 views). */
static __always_inline void ebm_sa_set(struct bpf_sock_addr *ctx, int view, const struct ebm_addr *a, __u16 port)
{
	if (view != EBM_SA_INET6) {
		ebm_sa_set4(ctx, view, a->w[0], port);
		return;
	}
	ctx->user_ip6[0] = a->w[0];
	ctx->user_ip6[1] = a->w[1];
	ctx->user_ip6[2] = a->w[2];
	ctx->user_ip6[3] = a->w[3];
	ctx->user_port = (__u32)port;
}

/*
 * A TCP socket sockops reports: does it carry IPv4, so that local_ip4 and
 * remote_ip4 are its addresses? AF_INET, or AF_INET6 with a v4-mapped peer
 * (one that dialled ::ffff:a.b.c.d, or that a dual-stack listener accepted
 * from an IPv4 client). A native IPv6 socket is not: the kernel leaves a
 * placeholder in its IPv4 fields.
 */
static __always_inline int ebm_skops_is_ipv4(struct bpf_sock_ops *skops)
{
	if (skops->family == AF_INET)
		return 1;
	if (skops->family != AF_INET6)
		return 0;
	return ebm_ip6_words_v4mapped(skops->remote_ip6[0], skops->remote_ip6[1], skops->remote_ip6[2]);
}

#endif /* EBMESH_V4MAPPED_H */
