/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Both address families through one body of logic.
 *
 * The programs' logic (load balancing, policy, steering) is written once
 * and takes the family as a constant (EBM_FAM4 or EBM_FAM6) where it is
 * called; each inlined copy then keeps only its family's lookups, so the
 * IPv4 path looks up exactly the maps and keys it did before IPv6. What
 * differs by family is in the small helpers here and next to each map:
 * which map, how the key is laid out.
 *
 * An address travels as struct ebm_addr: IPv4 in w[0], IPv6 in all four
 * words, network order. Event records and values that carry either family
 * store 16 bytes, IPv4 v4-mapped (ebmesh_abi.h).
 */
#ifndef EBMESH_FAMILY_H
#define EBMESH_FAMILY_H

#include <linux/types.h>
#include <bpf/bpf_endian.h>

#define EBM_FAM4 4
#define EBM_FAM6 6

struct ebm_addr {
	__u32 w[4];
};

static __always_inline int ebm_addr_eq(int fam, const struct ebm_addr *a, const struct ebm_addr *b)
{
	if (fam == EBM_FAM4)
		return a->w[0] == b->w[0];
	return a->w[0] == b->w[0] && a->w[1] == b->w[1] && a->w[2] == b->w[2] && a->w[3] == b->w[3];
}

static __always_inline int ebm_addr_zero(int fam, const struct ebm_addr *a)
{
	if (fam == EBM_FAM4)
		return a->w[0] == 0;
	return (a->w[0] | a->w[1] | a->w[2] | a->w[3]) == 0;
}

static __always_inline void ebm_copy6(__u32 *dst, const __u32 *src)
{
	dst[0] = src[0];
	dst[1] = src[1];
	dst[2] = src[2];
	dst[3] = src[3];
}

/* An address into a 16-byte field of a record: IPv4 v4-mapped, none (0) all zero. */
static __always_inline void ebm_addr_store(int fam, __u32 *dst, const struct ebm_addr *a)
{
	if (fam == EBM_FAM6) {
		ebm_copy6(dst, a->w);
		return;
	}
	dst[0] = 0;
	dst[1] = 0;
	dst[2] = a->w[0] ? bpf_htonl(0x0000ffff) : 0;
	dst[3] = a->w[0];
}

/* The same, for an IPv4 address at hand. */
static __always_inline void ebm_addr4_store(__u32 *dst, __u32 ip)
{
	dst[0] = 0;
	dst[1] = 0;
	dst[2] = ip ? bpf_htonl(0x0000ffff) : 0;
	dst[3] = ip;
}

/* A 16-byte field read back as an address of `fam`. */
static __always_inline void ebm_addr_load(int fam, struct ebm_addr *a, const __u32 *src)
{
	if (fam == EBM_FAM6) {
		ebm_copy6(a->w, src);
		return;
	}
	a->w[0] = src[3];
}

#endif /* EBMESH_FAMILY_H */
