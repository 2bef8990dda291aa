/*
 * The timeline: with RAYHPC_TIMELINE=FILE set, each thread records what it
 * did (tasks, actor calls, gets that waited, pulls, scheduler decisions,
 * spills) as complete events in a buffer of its own: no lock, no system
 * call, no allocation but one chunk when one fills (2 MiB huge pages after
 * the first). At rh_finalize
 * every rank writes its events to FILE.rankN and rank 0 merges the parts
 * into FILE, a Chrome/Perfetto trace ("traceEvents", pid = rank, tid = one
 * track per thread). With the timeline off a hook costs one predicted
 * branch on a global flag.
 */
#ifndef RH_OBS_TIMELINE_H
#define RH_OBS_TIMELINE_H

#include <stdint.h>

#include "base/status.h"
#include "obs/tlclock.h"

typedef enum rh_tl_kind {
    RH_TL_TASK = 0,     /* a task ran on this thread */
    RH_TL_CALL,         /* an actor method (or constructor) ran */
    RH_TL_WAIT,         /* a get or wait blocked this thread */
    RH_TL_PULL,         /* an object came from another node: bytes, source */
    RH_TL_FORWARD,      /* the scheduler sent a task to another rank */
    RH_TL_SCHED_SPILL,  /* the scheduler gave a task to the global one */
    RH_TL_SPILL,        /* the store wrote an object out: bytes */
    RH_TL_RESTORE,      /* the store read a spilled object back: bytes */
    RH_TL_KINDS
} rh_tl_kind_t;

/* Set once by rh_timeline_open before the runtime's threads start. */
extern int rh_tl_on;

/* Start of a span: the time (timeline clock ticks, src/obs/tlclock.h)
 * when the timeline is on, else 0. */
static inline uint64_t rh_tl_begin(void)
{
    return rh_unlikely(rh_tl_on) ? rh_tlclock_now() : 0;
}

void rh_tl_record(rh_tl_kind_t kind, const char *name, uint64_t t0,
                  int peer, uint64_t bytes);

/* Ends a span begun at t0 (rh_tl_begin): `name` is copied; peer is the
 * other rank (-1: none); bytes what moved (0: none). */
static inline void rh_tl_end(rh_tl_kind_t kind, const char *name,
                             uint64_t t0, int peer, uint64_t bytes)
{
    if (rh_unlikely(rh_tl_on)) {
        rh_tl_record(kind, name, t0, peer, bytes);
    }
}

/* For the store's spilling: one object of `bytes` written out (or read
 * back, restore != 0) between t0 and now. */
static inline void rh_tl_spill(uint64_t t0, uint64_t bytes, int restore)
{
    rh_tl_end(restore ? RH_TL_RESTORE : RH_TL_SPILL,
              restore ? "restore" : "spill", t0, -1, bytes);
}

/* rh_init: turns the timeline on when path is not empty. */
rh_status_t rh_timeline_open(const char *path, int rank);

/* rh_finalize, once the workers stopped: writes this rank's events to
 * PATH.rankN; node names the rank's track group. */
rh_status_t rh_timeline_write_part(int node);

/* Rank 0, once every rank wrote its part: merges PATH.rank0 ..
 * PATH.rank(size-1) into PATH and removes them. A part that is missing
 * (a rank died) is named in a warning and left out. */
rh_status_t rh_timeline_merge(int size);

/* Frees the buffers and turns the timeline off (after the threads end). */
void rh_timeline_close(void);

/* Events recorded on this rank so far and those dropped past the cap
 * (tests). */
void rh_timeline_counts(uint64_t *recorded, uint64_t *dropped);

#endif
