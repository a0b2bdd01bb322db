// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Socket-level service load balancing on the cgroup sock_addr hooks.
 *
 * A connect() or sendmsg() to a Service VIP is given a backend before the
 * first packet exists, so nothing downstream ever sees the VIP: no per-packet
 * NAT, no conntrack, no iptables. getpeername() and recvmsg() are translated
 * back so that applications still see the address they dialled.
 *
 * The logic is in sock_lb.h, once. The AF_INET6 hooks run it for a
 * v4-mapped address (::ffff:a.b.c.d: how gRPC's C core and the JVM dial
 * IPv4 from their AF_INET6 sockets) through the IPv4 maps, and for a native
 * IPv6 address through the IPv6 maps.
 *
 * sendmsg6 serves native IPv6 only: the kernel hands a UDP sendmsg() to a
 * v4-mapped address from an AF_INET6 socket to the IPv4 path, whose hook is
 * sendmsg4 (udpv6_sendmsg() calls udp_sendmsg() before the sendmsg6 hook;
 * a sendmsg6 program never sees a v4-mapped address).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "sock_lb.h"

SEC("cgroup/connect4")
int ebm_connect4(struct bpf_sock_addr *ctx)
{
	return ebm_lb_connect(ctx, EBM_SA_INET);
}

SEC("cgroup/connect6")
int ebm_connect6(struct bpf_sock_addr *ctx)
{
	if (ebm_sa_is_v4mapped(ctx))
		return ebm_lb_connect(ctx, EBM_SA_V4MAPPED);
	return ebm_lb_connect(ctx, EBM_SA_INET6);
}

SEC("cgroup/sendmsg4")
int ebm_sendmsg4(struct bpf_sock_addr *ctx)
{
	struct ebm_lb_judge judge = {};
	__u32 fe_id;

	return ebm_lb_translate(ctx, EBM_SA_INET, &fe_id, &judge);
}

SEC("cgroup/sendmsg6")
int ebm_sendmsg6(struct bpf_sock_addr *ctx)
{
	struct ebm_lb_judge judge = {};
	__u32 fe_id;

	if (ebm_sa_is_v4mapped(ctx))
		return SOCK_ADDR_ALLOW; /* never here: see above */
	return ebm_lb_translate(ctx, EBM_SA_INET6, &fe_id, &judge);
}

SEC("cgroup/recvmsg4")
int ebm_recvmsg4(struct bpf_sock_addr *ctx)
{
	return ebm_lb_reverse(ctx, EBM_SA_INET);
}

SEC("cgroup/recvmsg6")
int ebm_recvmsg6(struct bpf_sock_addr *ctx)
{
	if (ebm_sa_is_v4mapped(ctx))
		return ebm_lb_reverse(ctx, EBM_SA_V4MAPPED);
	return ebm_lb_reverse(ctx, EBM_SA_INET6);
}

SEC("cgroup/getpeername4")
int ebm_getpeername4(struct bpf_sock_addr *ctx)
{
	return ebm_lb_reverse(ctx, EBM_SA_INET);
}

SEC("cgroup/getpeername6")
int ebm_getpeername6(struct bpf_sock_addr *ctx)
{
	if (ebm_sa_is_v4mapped(ctx))
		return ebm_lb_reverse(ctx, EBM_SA_V4MAPPED);
	return ebm_lb_reverse(ctx, EBM_SA_INET6);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
