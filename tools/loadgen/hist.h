/*
 * Log-linear latency histogram (the HDR histogram idea): values below
 * 2^SUB_BITS nanoseconds get one bucket each; above, every power of two is
 * cut into 2^(SUB_BITS-1) equal buckets. With SUB_BITS = 8 a bucket is at
 * most 1/128 of its lower bound wide, and reporting its midpoint keeps the
 * error under 0.4%, well inside the 1% we promise.
 */
#ifndef LOADGEN_HIST_H
#define LOADGEN_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 8
#define HIST_MAX_EXP 41 /* 2^41 ns is about 36 minutes: longer is clamped */
#define HIST_HALF (1u << (HIST_SUB_BITS - 1))
#define HIST_BUCKETS ((HIST_MAX_EXP - HIST_SUB_BITS + 3) * HIST_HALF)

struct hist {
	uint64_t counts[HIST_BUCKETS];
	uint64_t total;
	uint64_t min_ns;
	uint64_t max_ns;
	double sum_ns;
	double sum_sq_ns;
};

void hist_init(struct hist *h);
void hist_record(struct hist *h, uint64_t ns);
/* p in [0, 100]; returns nanoseconds (bucket midpoint, clamped to min/max). */
double hist_percentile(const struct hist *h, double p);
double hist_mean(const struct hist *h);
double hist_stdev(const struct hist *h);

#endif
