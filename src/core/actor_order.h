/*
 * One caller's calls to one actor, in the caller's order: calls carry the
 * caller's sequence numbers (1, 2, ...) and may arrive in any order (UCX
 * does not order eager and rendezvous messages; retried sends overtake);
 * each runs once every lower number ran or was skipped. Early ones wait in
 * a hash map by number. Not thread-safe: the progress thread owns it.
 */
#ifndef RH_CORE_ACTOR_ORDER_H
#define RH_CORE_ACTOR_ORDER_H

#include <stdint.h>

#include "base/hashmap.h"

typedef struct rh_order {
    uint64_t  next;    /* the number to run next */
    rh_hmap_t early;   /* seq -> item (RH_ORDER_SKIP: skipped) */
} rh_order_t;

/* What stands for a number that will never come. */
#define RH_ORDER_SKIP ((void *)1)

typedef void (*rh_order_run_fn)(void *arg, void *item);

void rh_order_init(rh_order_t *o);

/* Item seq arrived (RH_ORDER_SKIP: seq will never come): runs it, and the
 * early ones it unblocks, in order, through run (skips are not run).
 * Returns 0, or -1 when seq was used already (a repeat: nothing runs, the
 * item stays the caller's), -2 when out of memory (likewise). */
int rh_order_arrive(rh_order_t *o, uint64_t seq, void *item,
                    rh_order_run_fn run, void *arg);

/* The caller's numbers start at first (a restarted actor's callers say
 * so; next 0: not known yet, items wait): runs what waited from there.
 * A start at or below next changes nothing. */
void rh_order_start(rh_order_t *o, uint64_t first, rh_order_run_fn run,
                    void *arg);

/* Items waiting for a lower number. */
static inline size_t rh_order_waiting(const rh_order_t *o)
{
    return rh_hmap_count(&o->early);
}

/* Hands each waiting item (not the skips) to drop, then frees the map. */
void rh_order_fini(rh_order_t *o, rh_order_run_fn drop, void *arg);

#endif
