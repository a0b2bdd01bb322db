// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The client side of a connection steered to the node proxy has just been
 * established: its source address is now known, so the record connect()
 * made under the socket cookie is republished under the client's
 * (ip, port), where the proxy looks it up for the socket it accepted.
 * A v4-mapped AF_INET6 client is published the same way: its connection is
 * IPv4 on the wire, and the proxy sees its IPv4 address; a native IPv6
 * client under its IPv6 address, in the IPv6 map.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "ebmesh_abi.h"
#include "ebmesh_maps.h"
#include "v4mapped.h"

SEC("sockops")
int ebm_l7_sockops(struct bpf_sock_ops *skops)
{
	struct ebm_l7_orig *o;
	__u64 cookie;
	int v4;

	if (skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
		return 1;
	v4 = ebm_skops_is_ipv4(skops);
	if (!v4 && skops->family != AF_INET6)
		return 1;
	cookie = bpf_get_socket_cookie(skops);
	o = bpf_map_lookup_elem(&ebm_l7_pending, &cookie);
	if (!o)
		return 1;
	if (v4) {
		struct ebm_l7_conn_key k = {
			.ip = skops->local_ip4,
			.port = bpf_htons((__u16)skops->local_port), /* local_port is host order */
		};
		bpf_map_update_elem(&ebm_l7_conns, &k, o, BPF_ANY);
	} else {
		struct ebm_l7_conn6_key k = {
			.ip = { skops->local_ip6[0], skops->local_ip6[1], skops->local_ip6[2], skops->local_ip6[3] },
			.port = bpf_htons((__u16)skops->local_port),
		};
		bpf_map_update_elem(&ebm_l7_conns6, &k, o, BPF_ANY);
	}
	bpf_map_delete_elem(&ebm_l7_pending, &cookie);
	ebm_count(EBM_CNT_L7_ESTABLISHED);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
