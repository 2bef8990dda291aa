/*
 * A caller's calls to a restartable actor with max_task_retries, kept
 * until they need no resend: the bytes of each call as first sent, in the
 * caller's sequence order, so that a restarted instance gets again, in
 * order, the calls its predecessor did not answer (or, with checkpoints,
 * the calls the last checkpoint did not cover).
 *
 * Sequence numbers are the caller's for the actor's whole life: a resent
 * call keeps its number, and the restarted instance hears from each caller
 * where its numbers start again (RH_ACTL_FROM) before it runs that
 * caller's calls. A call with max_task_retries 0 is never kept: the send
 * path pays one branch.
 *
 * One lock (internal) guards every list; it is taken after a cache entry's
 * lock, never before.
 */
#ifndef RH_CORE_ACTOR_RESEND_H
#define RH_CORE_ACTOR_RESEND_H

#include <stdint.h>

#include "core/inflight.h"
#include "core/task_internal.h"
#include "rayhpc.h"

typedef struct rh_kcall rh_kcall_t;

/* One caller's kept calls to one actor (part of its cache entry). */
typedef struct rh_resend {
    rh_actor_t  actor;
    int         retries;        /* max_task_retries; 0: nothing kept */
    int         until_covered;  /* answered calls stay until a checkpoint
                                 * covers them */
    uint64_t    covered;        /* the last checkpoint covers up to here */
    int         rank;           /* where calls go now; -1: not known */
    uint32_t    epoch;          /* ... that instance's restart count */
    rh_kcall_t *head, *tail;    /* by sequence number */
} rh_resend_t;

void rh_resend_init(rh_resend_t *r, rh_actor_t a);

/* The actor's max_task_retries (not 0) as its owner said, and whether
 * answered calls wait for a checkpoint. */
void rh_resend_setup(rh_resend_t *r, int retries, int until_covered);

/* t was given its sequence number (the cache entry's lock held): it is
 * kept from now on (t->call_keep), or, out of memory, not (a warning). */
void rh_resend_route(rh_resend_t *r, rh_task_t *t);

/* The actor is now at rank (restart count epoch, another instance than
 * the calls went to): tells it where this caller's numbers start again
 * (next: the number the next new call gets) and sends again the calls it
 * must see, in order. */
void rh_resend_placed(rh_resend_t *r, int rank, uint32_t epoch,
                      uint64_t next);

/* The actor's place is being asked again (its rank died). */
void rh_resend_unplaced(rh_resend_t *r);

/* The actor is dead for good: calls not answered fail with why. */
void rh_resend_dead(rh_resend_t *r, const char *why);

/* The owner stored a checkpoint that covers this caller's calls up to
 * seq. */
void rh_resend_covered(rh_resend_t *r, uint64_t seq);

/* Whether calls are kept for a resend (max_task_retries, not dead). */
int rh_resend_active(rh_resend_t *r);

/* Calls kept now. */
size_t rh_resend_kept(rh_resend_t *r);

/* Frees the kept calls (teardown: their futures go with the table). */
void rh_resend_clear(rh_resend_t *r);

/* ---- the forwarding path's side (forward.c), by the call's counter ---- */

/* t, a kept call, is being sent with this payload: it is copied. A call
 * numbered before a restart was heard of is aimed at the new instance
 * here (t->forward_to, t->call_epoch). Returns 0: not kept (send it as
 * any call), 1: kept, send it, 2: kept, but the new place is not known
 * yet: hand it to rh_actor_call_lost instead of sending it. */
int rh_actor_call_keep(rh_task_t *t, uint64_t counter, const void *payload,
                        size_t len);

/* A kept call was answered. */
void rh_actor_call_answered(uint64_t counter);

/* A kept call was lost with dead rank: 1 when it will be sent again (e,
 * its entry in flight, is taken over), 0 when it fails as before. */
int rh_actor_call_lost(uint64_t counter, int rank, rh_inflight_t *e);

/* A kept call will not be sent (an argument failed): its number is
 * skipped by whichever instance waits for it. 1: told already; 0: tell
 * t->forward_to as for any call. */
int rh_actor_call_skipped(rh_task_t *t);

/* actor.c: this caller's numbers start at first for the instance of
 * restart count epoch on dest. */
void rh_actor_call_from(int dest, rh_actor_t a, uint32_t epoch,
                        uint64_t first);

/* forward.c: sends a kept call again to dest for instance epoch, with e
 * (its entry in flight: objects held, or none once answered) put back in
 * flight; RH_OK, or the send's status with e taken back. */
rh_status_t rh_forward_call_resend(int dest, rh_actor_t a, uint64_t counter,
                                   uint64_t seq, uint32_t epoch,
                                   uint32_t method, uint32_t nargs,
                                   const void *payload, size_t len,
                                   rh_inflight_t *e);

/* forward.c: fails the returns of a call's entry with RH_ERR_ACTOR_DEAD
 * and msg, and lets go of what it held. */
void rh_forward_call_fail(rh_inflight_t *e, const char *msg);

#endif
