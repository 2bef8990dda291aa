/*
 * The owner's lineage (Ray's ownership design): the spec of every task it
 * sent to another rank whose returns it still references, keyed by the
 * task's counter, so that an object lost with every copy can be rebuilt by
 * running its task again.
 *
 * Memory is bounded: the entries whose task is not running are kept
 * oldest first (by the end of their last run) and, past max bytes of
 * them, the oldest are dropped; a running task's entry is kept outside
 * the bound (it is needed to retry the task). An entry never holds
 * the table's lock while its drop function runs: dropping releases
 * objects, which may end other entries.
 */
#ifndef RH_CORE_LINEAGE_TABLE_H
#define RH_CORE_LINEAGE_TABLE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "base/hashmap.h"

typedef struct rh_lineage rh_lineage_t;
struct rh_lineage {
    rh_lineage_t *older, *newer;  /* the age list, while not running */
    uint64_t      counter;        /* the task's; never 0 */
    size_t        bytes;          /* counted against the bound */
    int           running;        /* a run is out: never dropped */
};

typedef struct rh_lineage_table {
    pthread_mutex_t lock;
    rh_hmap_t       map;          /* counter -> rh_lineage_t * */
    rh_lineage_t   *oldest, *newest;
    size_t          bytes, max;   /* of the entries not running */
    long            dropped;      /* entries dropped for room, ever */
    void          (*drop)(rh_lineage_t *l);
} rh_lineage_table_t;

void rh_lineage_table_init(rh_lineage_table_t *tb, size_t max,
                           void (*drop)(rh_lineage_t *l));

/* Drops every entry (drop is called for each) and frees the table. */
void rh_lineage_table_fini(rh_lineage_table_t *tb);

/* Adds l (its counter, bytes and running set; the table owns it from now
 * on); then, when it is not running, drops the oldest entries while the
 * table is over its bound, l included. Returns -1 when out of
 * memory or the counter is in already (l is not added). */
int rh_lineage_table_add(rh_lineage_table_t *tb, rh_lineage_t *l);

/* The entry of counter, NULL when none; with tb->lock held. */
rh_lineage_t *rh_lineage_table_find_locked(rh_lineage_table_t *tb,
                                           uint64_t counter);

/* l runs again (a retry or a rebuild): kept whatever the bound; with
 * tb->lock held. */
void rh_lineage_table_run_locked(rh_lineage_table_t *tb, rh_lineage_t *l);

/* Takes the entry of counter out of the table and drops it (its objects
 * were all released); 0 when there was none. */
int rh_lineage_table_remove(rh_lineage_table_t *tb, uint64_t counter);

/* Its run ended: l may be dropped for room again, which happens now when
 * the table is over its bound. */
void rh_lineage_table_ran(rh_lineage_table_t *tb, uint64_t counter);

/* A new bound, applied now. */
void rh_lineage_table_set_max(rh_lineage_table_t *tb, size_t max);

/* Entries kept now, and the bytes of those not running. */
size_t rh_lineage_table_count(rh_lineage_table_t *tb);
size_t rh_lineage_table_bytes(rh_lineage_table_t *tb);

#endif
