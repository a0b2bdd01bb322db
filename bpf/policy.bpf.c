// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Per-packet network policy on cgroup_skb, for every socket of the mesh's
 * workloads. The TCP connect-time check (policy.h, from sock_lb's connect4)
 * judges what a workload's own TCP connects; this judges everything else:
 *
 *   - ingress of new connections and datagrams, whoever sent them (other
 *     nodes, the world, anything that bypassed connect());
 *   - UDP in both directions, with a per-socket flow table so that replies
 *     are judged as part of the flow their peer started;
 *   - raw sockets (any protocol, every packet is new traffic);
 *   - spoofing: a workload sends only from its own address.
 *
 * The subject is always the workload that owns the socket (by its cgroup),
 * never an address the packet claims; the peer is the ipcache identity of
 * the other address. TCP segments other than the opening SYN pass: the
 * connection was judged when it opened (established connections outlive a
 * policy change; see docs/policy.md). Both families, each through its own
 * maps (family.h); ICMPv6 passes as ICMP does, and before the source check,
 * since neighbour discovery is ICMPv6 from link-local addresses.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "ebmesh_abi.h"
#include "ebmesh_maps.h"
#include "family.h"
#include "policy.h"

#define SKB_PASS 1
#define SKB_DROP 0

#define EBM_SOCK_STREAM 1
#define EBM_TCP_FLAG_SYN 0x02
#define EBM_TCP_FLAG_ACK 0x10

#ifndef IPPROTO_ICMPV6
#define IPPROTO_ICMPV6 58
#endif

/* Which hook a drop came from, in the event's flags. */
#define EGRESS_FLAGS  EBM_EV_F_PACKET
#define INGRESS_FLAGS (EBM_EV_F_PACKET | EBM_EV_F_INBOUND)

struct ebm_pkt {
	struct ebm_addr saddr, daddr;
	__u16 sport, dport;   /* network order, 0 for protocols without ports */
	__u8 proto;
	__u8 tcp_flags;
	__u8 first_frag;
};

/* The ports (and TCP flags) of the transport header at `off`; -1 if the packet is too short. */
static __always_inline int parse_l4(struct __sk_buff *skb, __u32 off, struct ebm_pkt *p)
{
	__u8 l4[14];

	if (p->proto == IPPROTO_TCP) {
		if (bpf_skb_load_bytes(skb, off, l4, 14) < 0)
			return -1;
		p->tcp_flags = l4[13];
	} else if (p->proto == IPPROTO_UDP) {
		if (bpf_skb_load_bytes(skb, off, l4, 4) < 0)
			return -1;
	} else {
		return 0;
	}
	__builtin_memcpy(&p->sport, &l4[0], 2);
	__builtin_memcpy(&p->dport, &l4[2], 2);
	return 0;
}

static __always_inline int parse4(struct __sk_buff *skb, struct ebm_pkt *p)
{
	struct iphdr iph;

	if (bpf_skb_load_bytes(skb, 0, &iph, sizeof(iph)) < 0 || iph.version != 4)
		return -1;
	p->saddr.w[0] = iph.saddr;
	p->daddr.w[0] = iph.daddr;
	p->proto = iph.protocol;
	p->first_frag = (bpf_ntohs(iph.frag_off) & 0x1fff) == 0;
	if (!p->first_frag)
		return 0;
	return parse_l4(skb, (__u32)iph.ihl * 4, p);
}

/* IPv6 extension headers walked to find the transport header. */
#define EBM_IPV6_EXT_MAX 4
#define EBM_NEXTHDR_HOP      0
#define EBM_NEXTHDR_ROUTING  43
#define EBM_NEXTHDR_FRAGMENT 44
#define EBM_NEXTHDR_DEST     60

static __always_inline int parse6(struct __sk_buff *skb, struct ebm_pkt *p)
{
	struct ipv6hdr ip6;
	__u32 off = sizeof(ip6);
	__u8 next;

	if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) < 0 || ip6.version != 6)
		return -1;
	__builtin_memcpy(p->saddr.w, &ip6.saddr, 16);
	__builtin_memcpy(p->daddr.w, &ip6.daddr, 16);
	next = ip6.nexthdr;
	p->first_frag = 1;
#pragma unroll
	for (int i = 0; i < EBM_IPV6_EXT_MAX; i++) {
		__u8 ext[8];

		if (next != EBM_NEXTHDR_HOP && next != EBM_NEXTHDR_ROUTING && next != EBM_NEXTHDR_FRAGMENT && next != EBM_NEXTHDR_DEST)
			break;
		if (bpf_skb_load_bytes(skb, off, ext, 8) < 0)
			return -1;
		if (next == EBM_NEXTHDR_FRAGMENT) {
			/* fragment offset: the top 13 bits of bytes 2-3 */
			p->first_frag = ((ext[2] << 5) | (ext[3] >> 3)) == 0;
			off += 8;
		} else {
			off += ((__u32)ext[1] + 1) * 8;
		}
		next = ext[0];
	}
	p->proto = next;
	if (!p->first_frag)
		return 0;
	return parse_l4(skb, off, p);
}

/* -1 for what policy does not judge: packets that are neither family, and packets too short to parse. */
static __always_inline int parse(struct __sk_buff *skb, int fam, struct ebm_pkt *p)
{
	return fam == EBM_FAM6 ? parse6(skb, p) : parse4(skb, p);
}

static __always_inline int is_tcp_stream_socket(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;

	if (!sk)
		return 0;
	sk = bpf_sk_fullsock(sk);
	return sk && sk->type == EBM_SOCK_STREAM && sk->protocol == IPPROTO_TCP;
}

/* Errors, echo and (IPv6) neighbour discovery: NetworkPolicy speaks of TCP/UDP/SCTP, and IPv6 needs ICMPv6 to work at all. */
static __always_inline int is_icmp(int fam, __u8 proto)
{
	return proto == (fam == EBM_FAM6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP);
}

/*
 * Reports the drop. Each call site inlines its own copy of the event fill,
 * so a program funnels its denials into few sites (see the egress spoof check
 * for the one it keeps apart).
 */
static __always_inline int deny(struct __sk_buff *skb, int fam, struct ebm_pol_drop *ev, __u8 flags,
				const struct ebm_pkt *p, __u64 cgid, const struct ebm_pol_result *res)
{
	ev->reason = res->reason;
	ev->policy_ref = res->policy_ref;
	ev->rule = res->rule;
	ev->flags = flags;
	ev->cookie = bpf_get_socket_cookie(skb);
	ev->cgroup_id = cgid;
	ev->saddr = p->saddr;
	ev->daddr = p->daddr;
	ev->sport = p->sport;
	ev->dport = p->dport;
	ev->proto = p->proto;
	ebm_emit_drop(fam, ev);
	return SKB_DROP;
}

/* Remembers or finds this socket's UDP flow with a peer, in the flow table of the peer's family. */
static __always_inline struct ebm_pol_udp_flow *udp_flow(struct __sk_buff *skb, int fam, const struct ebm_addr *peer_addr,
							 __u16 peer_port, const struct ebm_pol_udp_flow *put)
{
	__u64 cookie = bpf_get_socket_cookie(skb);

	if (fam == EBM_FAM6) {
		struct ebm_pol_udp_flow6_key k = { .cookie = cookie, .peer_port = peer_port };

		ebm_copy6(k.peer_addr, peer_addr->w);
		if (put) {
			bpf_map_update_elem(&ebm_pol_udp_flows6, &k, put, BPF_NOEXIST);
			return NULL;
		}
		return bpf_map_lookup_elem(&ebm_pol_udp_flows6, &k);
	}
	struct ebm_pol_udp_flow_key k = { .cookie = cookie, .peer_addr = peer_addr->w[0], .peer_port = peer_port };

	if (put) {
		bpf_map_update_elem(&ebm_pol_udp_flows, &k, put, BPF_NOEXIST);
		return NULL;
	}
	return bpf_map_lookup_elem(&ebm_pol_udp_flows, &k);
}

/*
 * A UDP datagram of this socket: judged in the direction of whoever started
 * its flow (the first judged packet wins and is remembered per socket and
 * peer), so a reply needs the side that started the flow to allow it.
 * Ingress rules speak of our port, egress rules of the peer's.
 */
static __always_inline int judge_udp(struct __sk_buff *skb, int fam, __u8 dir, __u32 subject, __u32 peer,
				     const struct ebm_addr *peer_addr, __u16 peer_port, __u16 local_port,
				     struct ebm_pol_result *res)
{
	struct ebm_pol_udp_flow *f = udp_flow(skb, fam, peer_addr, peer_port, NULL);

	if (dir == EBM_DIR_EGRESS && f && f->direction == EBM_DIR_INGRESS)
		/* A reply in a flow the peer started: our ingress from it still has to allow. */
		return peer == EBM_IDENTITY_HOST ||
		       ebm_pol_side(subject, EBM_DIR_INGRESS, peer, fam, peer_addr, IPPROTO_UDP, f->local_port, res);
	if (dir == EBM_DIR_INGRESS && f && f->direction == EBM_DIR_EGRESS)
		/* A reply in a flow we started: our egress to the peer still has to allow. */
		return ebm_pol_side(subject, EBM_DIR_EGRESS, peer, fam, peer_addr, IPPROTO_UDP, peer_port, res);
	if (!ebm_pol_side(subject, dir, peer, fam, peer_addr, IPPROTO_UDP,
			  dir == EBM_DIR_INGRESS ? local_port : peer_port, res))
		return 0;
	if (!f) {
		struct ebm_pol_udp_flow v = { .direction = dir, .local_port = local_port };

		udp_flow(skb, fam, peer_addr, peer_port, &v);
	}
	return 1;
}

/*
 * New traffic between the socket's workload (`subject`) and `peer`, seen by
 * the hook of direction `dir` (a constant: each program inlines its own
 * copy). 1 allow, 0 deny with `res` filled in.
 */
static __always_inline int judge(struct __sk_buff *skb, int fam, const struct ebm_pkt *p, __u8 dir, __u32 subject,
				 __u32 peer, struct ebm_pol_result *res)
{
	const struct ebm_addr *peer_addr = dir == EBM_DIR_EGRESS ? &p->daddr : &p->saddr;
	__u16 peer_port = dir == EBM_DIR_EGRESS ? p->dport : p->sport;
	__u16 local_port = dir == EBM_DIR_EGRESS ? p->sport : p->dport;

	if (p->proto == IPPROTO_TCP) {
		if ((p->tcp_flags & (EBM_TCP_FLAG_SYN | EBM_TCP_FLAG_ACK)) != EBM_TCP_FLAG_SYN)
			return 1; /* part of a connection judged when it opened, or a raw segment that opens nothing */
		return ebm_pol_side(subject, dir, peer, fam, peer_addr, IPPROTO_TCP, p->dport, res);
	}
	if (p->proto == IPPROTO_UDP)
		return judge_udp(skb, fam, dir, subject, peer, peer_addr, peer_port, local_port, res);
	/* Any other protocol: allowed only where this side is not isolated. */
	return ebm_pol_side(subject, dir, peer, fam, peer_addr, p->proto, 0, res);
}

static __always_inline int egress(struct __sk_buff *skb, int fam)
{
	struct ebm_pol_drop ev = {};
	struct ebm_pol_result res = {};
	struct ebm_pol_endpoint *ep;
	struct ebm_pkt p = {};
	struct ebm_addr self = {};
	__u32 peer;
	__u64 cgid;

	if (parse(skb, fam, &p) < 0)
		return SKB_PASS;
	if (ebm_is_loopback(fam, &p.daddr) && ebm_is_loopback(fam, &p.saddr))
		return SKB_PASS;
	/* IPv6: before the source check, as neighbour discovery speaks from link-local and unspecified addresses. */
	if (fam == EBM_FAM6 && is_icmp(fam, p.proto))
		return SKB_PASS;
	ep = ebm_endpoint_of(skb, &cgid);
	if (!ep) {
		res.reason = EBM_REASON_NO_IDENTITY;
		goto deny;
	}
	ev.src_identity = ep->identity;
	ebm_endpoint_addr(fam, ep, &self);
	if (!ebm_addr_zero(fam, &self) && !ebm_addr_eq(fam, &p.saddr, &self)) {
		res.reason = EBM_REASON_SPOOFED_SOURCE;
		/* Its own site: joined with the others it saves 130 instructions but
		 * costs the verifier ~800 more processed instructions (fewer paths pruned). */
		return deny(skb, fam, &ev, EGRESS_FLAGS, &p, cgid, &res);
	}
	if (ebm_addr_eq(fam, &p.daddr, &self))
		return SKB_PASS;
	peer = ebm_identity_of_addr(fam, &p.daddr);
	ev.dst_identity = peer;

	if (p.proto == IPPROTO_TCP && is_tcp_stream_socket(skb))
		return SKB_PASS; /* judged at connect(), or as a SYN at our ingress */
	if (is_icmp(fam, p.proto))
		return SKB_PASS; /* errors and echo; NetworkPolicy speaks of TCP/UDP/SCTP */
	if (!p.first_frag)
		return SKB_PASS; /* the first fragment carried the verdict */
	if (judge(skb, fam, &p, EBM_DIR_EGRESS, ep->identity, peer, &res))
		return SKB_PASS;
deny:
	return deny(skb, fam, &ev, EGRESS_FLAGS, &p, cgid, &res);
}

static __always_inline int ingress(struct __sk_buff *skb, int fam)
{
	struct ebm_pol_drop ev = {};
	struct ebm_pol_result res = {};
	struct ebm_pol_endpoint *ep;
	struct ebm_pkt p = {};
	struct ebm_addr self = {};
	__u32 peer;
	__u64 cgid;

	if (parse(skb, fam, &p) < 0)
		return SKB_PASS;
	if (ebm_is_loopback(fam, &p.saddr))
		return SKB_PASS;
	if (fam == EBM_FAM6 && is_icmp(fam, p.proto))
		return SKB_PASS;
	ep = ebm_endpoint_of(skb, &cgid);
	if (!ep) {
		res.reason = EBM_REASON_NO_IDENTITY;
		goto deny;
	}
	ev.dst_identity = ep->identity;
	ebm_endpoint_addr(fam, ep, &self);
	if (ebm_addr_eq(fam, &p.saddr, &self))
		return SKB_PASS;
	peer = ebm_identity_of_addr(fam, &p.saddr);
	ev.src_identity = peer;
	/* The node itself (health checks, the agent) always reaches its workloads. */
	if (peer == EBM_IDENTITY_HOST || is_icmp(fam, p.proto) || !p.first_frag)
		return SKB_PASS;
	if (judge(skb, fam, &p, EBM_DIR_INGRESS, ep->identity, peer, &res))
		return SKB_PASS;
deny:
	return deny(skb, fam, &ev, INGRESS_FLAGS, &p, cgid, &res);
}

SEC("cgroup_skb/egress")
int ebm_policy_egress(struct __sk_buff *skb)
{
	if (skb->protocol == bpf_htons(ETH_P_IP))
		return egress(skb, EBM_FAM4);
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return egress(skb, EBM_FAM6);
	return SKB_PASS;
}

SEC("cgroup_skb/ingress")
int ebm_policy_ingress(struct __sk_buff *skb)
{
	if (skb->protocol == bpf_htons(ETH_P_IP))
		return ingress(skb, EBM_FAM4);
	if (skb->protocol == bpf_htons(ETH_P_IPV6))
		return ingress(skb, EBM_FAM6);
	return SKB_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
