// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * mTLS strict mode, in the kernel: a workload whose namespace is strict
 * accepts new TCP connections only from where mesh traffic comes from —
 * its node's tunnel endpoint (the node proxy connects to it from the node's
 * address on the pod bridge, after the peer's certificate and policy were
 * checked) and the workloads of its own node (same-node mesh sockets).
 * Anything else (a plaintext client on another node or outside the mesh)
 * has its SYN dropped. Only connection openings are checked: replies to
 * connections the workload made itself pass, and so does anything that is
 * not TCP. The agent fills both maps (src/agent/mtls-maps.ts).
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "ebmesh_abi.h"
#include "ebmesh_maps.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct ebm_mtls_workload_key);
	__type(value, __u32);
	__uint(max_entries, EBM_MTLS_WORKLOADS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* written by user space only */
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_mtls_workloads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ebm_mtls_src_key);
	__type(value, __u32);
	__uint(max_entries, EBM_MTLS_SOURCES_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_mtls_sources SEC(".maps");

SEC("cgroup_skb/ingress")
int ebm_mtls_ingress(struct __sk_buff *skb)
{
	struct iphdr iph;
	__u8 flags;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return 1;
	if (bpf_skb_load_bytes(skb, 0, &iph, sizeof(iph)) || iph.protocol != IPPROTO_TCP)
		return 1;
	struct ebm_mtls_workload_key wk = { .ip = iph.daddr };
	__u32 *mode = bpf_map_lookup_elem(&ebm_mtls_workloads, &wk);
	if (!mode || *mode != EBM_MTLS_STRICT)
		return 1;
	/* byte 13 of the TCP header: CWR ECE URG ACK PSH RST SYN FIN */
	if (bpf_skb_load_bytes(skb, iph.ihl * 4 + 13, &flags, 1))
		return 1;
	if (!(flags & 0x02) || (flags & 0x10))
		return 1; /* not an opening SYN */
	struct ebm_mtls_src_key sk = { .prefixlen = 32, .ip = iph.saddr };
	if (bpf_map_lookup_elem(&ebm_mtls_sources, &sk))
		return 1;
	ebm_count(EBM_CNT_MTLS_STRICT_DROP);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
