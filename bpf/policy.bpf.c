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
 * policy change; see docs/policy.md).
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "ebmesh_abi.h"
#include "ebmesh_maps.h"
#include "policy.h"

#define SKB_PASS 1
#define SKB_DROP 0

#define EBM_SOCK_STREAM 1
#define EBM_TCP_FLAG_SYN 0x02
#define EBM_TCP_FLAG_ACK 0x10

/* Which hook a drop came from, in the event's flags. */
#define EGRESS_FLAGS  EBM_EV_F_PACKET
#define INGRESS_FLAGS (EBM_EV_F_PACKET | EBM_EV_F_INBOUND)

struct ebm_pkt {
	__u32 saddr, daddr;
	__u16 sport, dport;   /* network order, 0 for protocols without ports */
	__u8 proto;
	__u8 tcp_flags;
	__u8 first_frag;
};

/* -1 for what policy does not judge: IPv6 (no routes in the lab yet), and packets too short to parse. */
static __always_inline int parse(struct __sk_buff *skb, struct ebm_pkt *p)
{
	struct iphdr iph;
	__u8 l4[14];
	__u32 off;

	if (skb->protocol != bpf_htons(0x0800))
		return -1;
	if (bpf_skb_load_bytes(skb, 0, &iph, sizeof(iph)) < 0 || iph.version != 4)
		return -1;
	p->saddr = iph.saddr;
	p->daddr = iph.daddr;
	p->proto = iph.protocol;
	p->first_frag = (bpf_ntohs(iph.frag_off) & 0x1fff) == 0;
	off = (__u32)iph.ihl * 4;
	if (!p->first_frag)
		return 0;
	if (iph.protocol == IPPROTO_TCP) {
		if (bpf_skb_load_bytes(skb, off, l4, 14) < 0)
			return -1;
		p->tcp_flags = l4[13];
	} else if (iph.protocol == IPPROTO_UDP) {
		if (bpf_skb_load_bytes(skb, off, l4, 4) < 0)
			return -1;
	} else {
		return 0;
	}
	__builtin_memcpy(&p->sport, &l4[0], 2);
	__builtin_memcpy(&p->dport, &l4[2], 2);
	return 0;
}

static __always_inline int is_tcp_stream_socket(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;

	if (!sk)
		return 0;
	sk = bpf_sk_fullsock(sk);
	return sk && sk->type == EBM_SOCK_STREAM && sk->protocol == IPPROTO_TCP;
}

/*
 * Reports the drop. Each call site inlines its own copy of the event fill,
 * so a program funnels its denials into few sites (see the egress spoof check
 * for the one it keeps apart).
 */
static __always_inline int deny(struct __sk_buff *skb, struct ebm_pol_drop *ev, __u8 flags,
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
	ebm_emit_drop(ev);
	return SKB_DROP;
}

/*
 * A UDP datagram of this socket: judged in the direction of whoever started
 * its flow (the first judged packet wins and is remembered per socket and
 * peer), so a reply needs the side that started the flow to allow it.
 * Ingress rules speak of our port, egress rules of the peer's.
 */
static __always_inline int judge_udp(struct __sk_buff *skb, __u8 dir, __u32 subject, __u32 peer,
				     __u32 peer_addr, __u16 peer_port, __u16 local_port,
				     struct ebm_pol_result *res)
{
	struct ebm_pol_udp_flow_key fk = {
		.cookie = bpf_get_socket_cookie(skb), .peer_addr = peer_addr, .peer_port = peer_port,
	};
	struct ebm_pol_udp_flow *f = bpf_map_lookup_elem(&ebm_pol_udp_flows, &fk);

	if (dir == EBM_DIR_EGRESS && f && f->direction == EBM_DIR_INGRESS)
		/* A reply in a flow the peer started: our ingress from it still has to allow. */
		return peer == EBM_IDENTITY_HOST ||
		       ebm_pol_side(subject, EBM_DIR_INGRESS, peer, peer_addr, IPPROTO_UDP, f->local_port, res);
	if (dir == EBM_DIR_INGRESS && f && f->direction == EBM_DIR_EGRESS)
		/* A reply in a flow we started: our egress to the peer still has to allow. */
		return ebm_pol_side(subject, EBM_DIR_EGRESS, peer, peer_addr, IPPROTO_UDP, peer_port, res);
	if (!ebm_pol_side(subject, dir, peer, peer_addr, IPPROTO_UDP,
			  dir == EBM_DIR_INGRESS ? local_port : peer_port, res))
		return 0;
	if (!f) {
		struct ebm_pol_udp_flow v = { .direction = dir, .local_port = local_port };

		bpf_map_update_elem(&ebm_pol_udp_flows, &fk, &v, BPF_NOEXIST);
	}
	return 1;
}

/*
 * New traffic between the socket's workload (`subject`) and `peer`, seen by
 * the hook of direction `dir` (a constant: each program inlines its own
 * copy). 1 allow, 0 deny with `res` filled in.
 */
static __always_inline int judge(struct __sk_buff *skb, const struct ebm_pkt *p, __u8 dir, __u32 subject,
				 __u32 peer, struct ebm_pol_result *res)
{
	__u32 peer_addr = dir == EBM_DIR_EGRESS ? p->daddr : p->saddr;
	__u16 peer_port = dir == EBM_DIR_EGRESS ? p->dport : p->sport;
	__u16 local_port = dir == EBM_DIR_EGRESS ? p->sport : p->dport;

	if (p->proto == IPPROTO_TCP) {
		if ((p->tcp_flags & (EBM_TCP_FLAG_SYN | EBM_TCP_FLAG_ACK)) != EBM_TCP_FLAG_SYN)
			return 1; /* part of a connection judged when it opened, or a raw segment that opens nothing */
		return ebm_pol_side(subject, dir, peer, peer_addr, IPPROTO_TCP, p->dport, res);
	}
	if (p->proto == IPPROTO_UDP)
		return judge_udp(skb, dir, subject, peer, peer_addr, peer_port, local_port, res);
	/* Any other protocol: allowed only where this side is not isolated. */
	return ebm_pol_side(subject, dir, peer, peer_addr, p->proto, 0, res);
}

SEC("cgroup_skb/egress")
int ebm_policy_egress(struct __sk_buff *skb)
{
	struct ebm_pol_drop ev = {};
	struct ebm_pol_result res = {};
	struct ebm_pol_endpoint *ep;
	struct ebm_pkt p = {};
	__u32 peer;
	__u64 cgid;

	if (parse(skb, &p) < 0)
		return SKB_PASS;
	if (ebm_is_loopback(p.daddr) && ebm_is_loopback(p.saddr))
		return SKB_PASS;
	ep = ebm_endpoint_of(skb, &cgid);
	if (!ep) {
		res.reason = EBM_REASON_NO_IDENTITY;
		goto deny;
	}
	ev.src_identity = ep->identity;
	if (ep->addr && p.saddr != ep->addr) {
		res.reason = EBM_REASON_SPOOFED_SOURCE;
		/* Its own site: joined with the others it saves 130 instructions but
		 * costs the verifier ~800 more processed instructions (fewer paths pruned). */
		return deny(skb, &ev, EGRESS_FLAGS, &p, cgid, &res);
	}
	if (p.daddr == ep->addr)
		return SKB_PASS;
	peer = ebm_identity_of_addr(p.daddr);
	ev.dst_identity = peer;

	if (p.proto == IPPROTO_TCP && is_tcp_stream_socket(skb))
		return SKB_PASS; /* judged at connect(), or as a SYN at our ingress */
	if (p.proto == IPPROTO_ICMP)
		return SKB_PASS; /* errors and echo; NetworkPolicy speaks of TCP/UDP/SCTP */
	if (!p.first_frag)
		return SKB_PASS; /* the first fragment carried the verdict */
	if (judge(skb, &p, EBM_DIR_EGRESS, ep->identity, peer, &res))
		return SKB_PASS;
deny:
	return deny(skb, &ev, EGRESS_FLAGS, &p, cgid, &res);
}

SEC("cgroup_skb/ingress")
int ebm_policy_ingress(struct __sk_buff *skb)
{
	struct ebm_pol_drop ev = {};
	struct ebm_pol_result res = {};
	struct ebm_pol_endpoint *ep;
	struct ebm_pkt p = {};
	__u32 peer;
	__u64 cgid;

	if (parse(skb, &p) < 0)
		return SKB_PASS;
	if (ebm_is_loopback(p.saddr))
		return SKB_PASS;
	ep = ebm_endpoint_of(skb, &cgid);
	if (!ep) {
		res.reason = EBM_REASON_NO_IDENTITY;
		goto deny;
	}
	ev.dst_identity = ep->identity;
	if (p.saddr == ep->addr)
		return SKB_PASS;
	peer = ebm_identity_of_addr(p.saddr);
	ev.src_identity = peer;
	/* The node itself (health checks, the agent) always reaches its workloads. */
	if (peer == EBM_IDENTITY_HOST || p.proto == IPPROTO_ICMP || !p.first_frag)
		return SKB_PASS;
	if (judge(skb, &p, EBM_DIR_INGRESS, ep->identity, peer, &res))
		return SKB_PASS;
deny:
	return deny(skb, &ev, INGRESS_FLAGS, &p, cgid, &res);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
