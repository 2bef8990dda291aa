/*
 * The owner's table of tasks running on other ranks, by running rank and
 * counter: a put takes no lock, the answer finds its entry in O(1)
 * (amortised; at once when answers come in the order of the puts), and the
 * death of a rank takes that rank's entries in O(their number). Counters
 * are never 0 or UINT64_MAX, and each is put once until it is taken.
 */
#ifndef RH_CORE_INFLIGHT_H
#define RH_CORE_INFLIGHT_H

#include <stdint.h>

#include "core/future.h"
#include "plasma/object_id.h"

typedef struct rh_inflight {
    uint64_t      counter;   /* never 0 */
    int           nreturns;
    int           rank;      /* running it */
    int           nheld;
    rh_future_t **held;      /* our objects sent by ref: kept until done */
    int             nborrowed;
    rh_object_id_t *borrowed;  /* others' objects it takes: borrowed until
                                * done */
    const char   *name;      /* the function's (registry entries stay) */
    int           admitted;  /* holds its submitter's place (core/admit.h) */
    int           is_call;   /* an actor's call: fails as RH_ERR_ACTOR_DEAD */
    int           kept;      /* a call kept for a resend (actor_resend.h) */
} rh_inflight_t;

/* Adds e (copied), any thread; -1 when out of memory (or no such rank). */
int rh_inflight_put(const rh_inflight_t *e);

/* Takes the entry of counter run by rank into *out; 0 when absent. */
int rh_inflight_take(uint64_t counter, int rank, rh_inflight_t *out);

/* Takes some entry run by rank; 0 when none is left. */
int rh_inflight_take_rank(int rank, rh_inflight_t *out);

/* Frees the table, handing each entry left to drop. */
void rh_inflight_clear(void (*drop)(rh_inflight_t *e));

#endif
