/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Map definitions shared by the programs. Each map is pinned by name
 * (LIBBPF_PIN_BY_NAME) so that every object of a node, and every agent
 * generation, sees the same instance: the data path outlives user space.
 *
 * Maps that only user space writes (services, policy tables) are not
 * preallocated (BPF_F_NO_PREALLOC): they cost what they hold, not their
 * max_entries. Maps the programs write on the connection path stay
 * preallocated (no allocation in the hook, no failure under memory
 * pressure); user space sizes them when it first makes them.
 */
#ifndef EBMESH_MAPS_H
#define EBMESH_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "ebmesh_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct ebm_lb4_frontend_key);
	__type(value, struct ebm_lb4_frontend);
	__uint(max_entries, EBM_LB4_FRONTENDS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_lb4_frontends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct ebm_lb4_slot_key);
	__type(value, struct ebm_lb4_slot);
	__uint(max_entries, EBM_LB4_SLOTS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_lb4_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct ebm_lb4_backend);
	__uint(max_entries, EBM_LB4_BACKENDS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_lb4_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ebm_lb4_affinity_key);
	__type(value, struct ebm_lb4_affinity);
	__uint(max_entries, EBM_LB4_AFFINITY_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_lb4_affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ebm_lb4_revnat_key);
	__type(value, struct ebm_lb4_revnat);
	__uint(max_entries, EBM_LB4_REVNAT_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_lb4_revnat SEC(".maps");

/* IPv6 Services: the same maps keyed by 16-byte addresses (the value of a
 * frontend is the same struct; slots and affinity are shared, by id). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct ebm_lb6_frontend_key);
	__type(value, struct ebm_lb4_frontend);
	__uint(max_entries, EBM_LB4_FRONTENDS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_lb6_frontends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct ebm_lb6_backend);
	__uint(max_entries, EBM_LB4_BACKENDS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_lb6_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ebm_lb6_revnat_key);
	__type(value, struct ebm_lb6_revnat);
	__uint(max_entries, EBM_CONNS6_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_lb6_revnat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, EBM_CNT_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_counters SEC(".maps");

/* L7 redirect: the proxy's address, steered sockets by cookie until they
 * are established, then by the client's (ip, port) for the proxy to read. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct ebm_l7_proxy);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_l7_proxy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, __u64);
	__type(value, struct ebm_l7_orig);
	__uint(max_entries, EBM_L7_CONNS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_l7_pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ebm_l7_conn_key);
	__type(value, struct ebm_l7_orig);
	__uint(max_entries, EBM_L7_CONNS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_l7_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ebm_l7_conn6_key);
	__type(value, struct ebm_l7_orig);
	__uint(max_entries, EBM_CONNS6_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_l7_conns6 SEC(".maps");

/* ---- policy (issue 3) ---------------------------------------------------- */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct ebm_pol_ipcache_key);
	__type(value, struct ebm_pol_identity);
	__uint(max_entries, EBM_POL_IPCACHE_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_pol_ipcache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct ebm_pol_ipcache6_key);
	__type(value, struct ebm_pol_identity);
	__uint(max_entries, EBM_POL_IPCACHE_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_pol_ipcache6 SEC(".maps");

/* cgroup id -> the workload whose processes run in it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u64);
	__type(value, struct ebm_pol_endpoint);
	__uint(max_entries, EBM_POL_ENDPOINTS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_pol_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct ebm_pol_isolation_key);
	__type(value, struct ebm_pol_isolation);
	__uint(max_entries, EBM_POL_ISOLATION_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_pol_isolation SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ebm_pol_allow_key);
	__type(value, struct ebm_pol_allow);
	__uint(max_entries, EBM_POL_ALLOW_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_pol_allow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ebm_pol_cidr_key);
	__type(value, struct ebm_pol_cidr);
	__uint(max_entries, EBM_POL_CIDR_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_pol_cidr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ebm_pol_cidr6_key);
	__type(value, struct ebm_pol_cidr);
	__uint(max_entries, EBM_POL_CIDR_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_pol_cidr6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ebm_pol_udp_flow_key);
	__type(value, struct ebm_pol_udp_flow);
	__uint(max_entries, EBM_POL_UDP_FLOWS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_pol_udp_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ebm_pol_udp_flow6_key);
	__type(value, struct ebm_pol_udp_flow);
	__uint(max_entries, EBM_CONNS6_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_pol_udp_flows6 SEC(".maps");

/* Drops by enum ebm_reason. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, EBM_REASON_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_drops SEC(".maps");

/* Cross-node mTLS: remote-node workload IPs (or subnets) to tunnel. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ebm_mtls_src_key);
	__type(value, __u32);
	__uint(max_entries, EBM_XNODE_DSTS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_xnode_dsts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ebm_mtls_src6_key);
	__type(value, __u32);
	__uint(max_entries, EBM_XNODE_DSTS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_xnode_dsts6 SEC(".maps");

static __always_inline void ebm_count(enum ebm_counter c)
{
	__u32 key = c;
	__u64 *v = bpf_map_lookup_elem(&ebm_counters, &key);

	if (v)
		*v += 1;
}

/* ---- flow events (observe) ------------------------------------------- */

/* Every program's events to the agent, in order per CPU. Emit through
 * ebm_event_reserve()/ebm_event_submit() in ebmesh_events.h, which count
 * what the ring had no room for. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, EBM_EVENTS_RING_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_events SEC(".maps");

/* A ring buffer has no value type, so clang would leave struct
 * ebm_flow_event out of the BTF: this one-slot map carries it, for the
 * layout test and for bpftool. Nothing reads or writes it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct ebm_flow_event);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_event_layout SEC(".maps");

/* ---- same-node shortcut (issue 5) ------------------------------------ */

/* Bytes each socket sent and received socket to socket: written by the
 * shortcut's sk_msg, read by observe's close report. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ebm_sc_sock);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_sc_sock SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct ebm_sc_key);
	__type(value, struct ebm_sc_peer);
	__uint(max_entries, EBM_SC_SOCKETS_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_sc_peers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct ebm_sc6_key);
	__type(value, struct ebm_sc_peer);
	__uint(max_entries, EBM_CONNS6_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ebm_sc_peers6 SEC(".maps");

#endif /* EBMESH_MAPS_H */
