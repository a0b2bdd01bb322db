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
 * not TCP. The agent fills both maps (src/agent/mtls-maps.ts), and their
 * IPv6 twins for IPv6 connections: a strict workload's IPv6 address is as
 * closed as its IPv4 one.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
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

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct ebm_mtls_workload6_key);
	__type(value, __u32);
	__uint(max_entries, EBM_MTLS_WORKLOADS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_mtls_workloads6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ebm_mtls_src6_key);
	__type(value, __u32);
	__uint(max_entries, EBM_MTLS_SOURCES_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_mtls_sources6 SEC(".maps");

/* byte 13 of the TCP header: CWR ECE URG ACK PSH RST SYN FIN */
static __always_inline int opening_syn(struct __sk_buff *skb, __u32 tcp_off)
{
	__u8 flags;

	if (bpf_skb_load_bytes(skb, tcp_off + 13, &flags, 1))
		return 0;
	return (flags & 0x02) && !(flags & 0x10);
}

static __always_inline int ingress4(struct __sk_buff *skb)
{
	struct iphdr iph;

	if (bpf_skb_load_bytes(skb, 0, &iph, sizeof(iph)) || iph.protocol != IPPROTO_TCP)
		return 1;
	struct ebm_mtls_workload_key wk = { .ip = iph.daddr };
	__u32 *mode = bpf_map_lookup_elem(&ebm_mtls_workloads, &wk);
	if (!mode || *mode != EBM_MTLS_STRICT)
		return 1;
	if (!opening_syn(skb, iph.ihl * 4))
		return 1;
	struct ebm_mtls_src_key sk = { .prefixlen = 32, .ip = iph.saddr };
	if (bpf_map_lookup_elem(&ebm_mtls_sources, &sk))
		return 1;
	ebm_count(EBM_CNT_MTLS_STRICT_DROP);
	return 0;
}

/* The same for IPv6; TCP right after the fixed header (a SYN with extension headers is not mesh traffic). */
static __always_inline int ingress6(struct __sk_buff *skb)
{
	struct ipv6hdr ip6;
	struct ebm_mtls_workload6_key wk;
	struct ebm_mtls_src6_key sk = { .prefixlen = 128 };
	__u32 *mode;

	if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
		return 1;
	__builtin_memcpy(wk.ip, &ip6.daddr, 16);
	mode = bpf_map_lookup_elem(&ebm_mtls_workloads6, &wk);
	if (!mode || *mode != EBM_MTLS_STRICT)
		return 1;
	if (ip6.nexthdr != IPPROTO_TCP)
		return ip6.nexthdr == 58 /* ICMPv6 */ || ip6.nexthdr == IPPROTO_UDP;
	if (!opening_syn(skb, sizeof(ip6)))
		return 1;
	__builtin_memcpy(sk.ip, &ip6.saddr, 16);
	if (bpf_map_lookup_elem(&ebm_mtls_sources6, &sk))
		return 1;
	ebm_count(EBM_CNT_MTLS_STRICT_DROP);
	return 0;
}

SEC("cgroup_skb/ingress")
int ebm_mtls_ingress(struct __sk_buff *skb)
{
	if (skb->protocol == bpf_htons(ETH_P_IP))
		return ingress4(skb);
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return ingress6(skb);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
