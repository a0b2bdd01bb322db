// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The client side of a connection steered to the node proxy has just been
 * established: its source address is now known, so the record connect()
 * made under the socket cookie is republished under the client's
 * (ip, port), where the proxy looks it up for the socket it accepted.
 * A v4-mapped AF_INET6 client is published the same way: its connection is
 * IPv4 on the wire, and the proxy sees its IPv4 address.
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

	if (skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB || !ebm_skops_is_ipv4(skops))
		return 1;
	cookie = bpf_get_socket_cookie(skops);
	o = bpf_map_lookup_elem(&ebm_l7_pending, &cookie);
	if (!o)
		return 1;
	struct ebm_l7_conn_key k = {
		.ip = skops->local_ip4,
		.port = bpf_htons((__u16)skops->local_port), /* local_port is host order */
	};
	bpf_map_update_elem(&ebm_l7_conns, &k, o, BPF_ANY);
	bpf_map_delete_elem(&ebm_l7_pending, &cookie);
	ebm_count(EBM_CNT_L7_ESTABLISHED);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
