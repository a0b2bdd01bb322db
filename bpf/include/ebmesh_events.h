/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Emitting flow events. A program reserves a zeroed record, fills what it
 * knows and submits it; a full ring is counted (EBM_CNT_EVENTS_LOST) so the
 * agent can report every event it never saw. Nothing here blocks.
 */
#ifndef EBMESH_EVENTS_H
#define EBMESH_EVENTS_H

#include "ebmesh_maps.h"

static __always_inline struct ebm_flow_event *ebm_event_reserve(__u8 type)
{
	struct ebm_flow_event *e = bpf_ringbuf_reserve(&ebm_events, sizeof(*e), 0);

	if (!e) {
		ebm_count(EBM_CNT_EVENTS_LOST);
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->type = type;
	e->ts_ns = bpf_ktime_get_ns();
	return e;
}

/* No wakeup: the agent drains the ring on a short timer, so the data path
 * never pays for waking a reader (an irq_work per event at 10k events/s). */
static __always_inline void ebm_event_submit(struct ebm_flow_event *e)
{
	ebm_count(EBM_CNT_EVENTS_SENT);
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

#endif /* EBMESH_EVENTS_H */
