#include "hist.h"

#include <math.h>
#include <string.h>

void hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min_ns = UINT64_MAX;
}

static unsigned bucket_of(uint64_t v)
{
	if (v < (1u << HIST_SUB_BITS))
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v);
	if (e > HIST_MAX_EXP) {
		e = HIST_MAX_EXP;
		v = (2ull << HIST_MAX_EXP) - 1;
	}
	unsigned shift = e - (HIST_SUB_BITS - 1);
	return shift * HIST_HALF + (unsigned)(v >> shift);
}

/* Inverse of bucket_of: the half-open value range a bucket covers. */
static void bucket_range(unsigned idx, double *lo, double *width)
{
	if (idx < (1u << HIST_SUB_BITS)) {
		*lo = idx;
		*width = 1;
		return;
	}
	unsigned shift = idx / HIST_HALF - 1;
	unsigned sub = idx - shift * HIST_HALF;
	*lo = ldexp((double)sub, (int)shift);
	*width = ldexp(1.0, (int)shift);
}

void hist_record(struct hist *h, uint64_t ns)
{
	h->counts[bucket_of(ns)]++;
	h->total++;
	if (ns < h->min_ns)
		h->min_ns = ns;
	if (ns > h->max_ns)
		h->max_ns = ns;
	h->sum_ns += (double)ns;
	h->sum_sq_ns += (double)ns * (double)ns;
}

double hist_percentile(const struct hist *h, double p)
{
	if (h->total == 0)
		return 0;
	if (p <= 0)
		return (double)h->min_ns;
	if (p >= 100)
		return (double)h->max_ns;
	uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->total);
	if (rank == 0)
		rank = 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->counts[i];
		if (seen >= rank) {
			double lo, width;
			bucket_range(i, &lo, &width);
			double mid = width <= 1 ? lo : lo + width / 2;
			if (mid < (double)h->min_ns)
				mid = (double)h->min_ns;
			if (mid > (double)h->max_ns)
				mid = (double)h->max_ns;
			return mid;
		}
	}
	return (double)h->max_ns;
}

double hist_mean(const struct hist *h)
{
	return h->total ? h->sum_ns / (double)h->total : 0;
}

double hist_stdev(const struct hist *h)
{
	if (h->total < 2)
		return 0;
	double m = hist_mean(h);
	double var = h->sum_sq_ns / (double)h->total - m * m;
	return var > 0 ? sqrt(var) : 0;
}
