/*
 * The owner's lineage (Ray's ownership design): the spec of every task it
 * sent to another rank whose returns it still references, so that an
 * object lost with every copy can be rebuilt by running its task again.
 *
 * The table does not find entries: each hangs off the future block of its
 * task (src/core/lineage.c), found in O(1) through the future table and
 * let go with the block, so a task pays no hash insert, lookup or removal.
 * The table bounds their memory: the entries whose task is not running
 * are kept oldest first (by the end of their last run) and, past max bytes
 * of them, the oldest are dropped; a running task's entry is kept outside
 * the bound (it is needed to retry the task) and is not on any list, so
 * adding one takes no lock. An entry dropped for room is detached (under
 * the lock: whoever points at it lets go) and then dropped outside the
 * lock: dropping releases objects, which may end other entries.
 *
 * An entry's release (every return of its task let go) takes no lock
 * either: the owner claims the entry from its block and hands it to the
 * lock's next holder, who takes it out. A detach that finds the entry
 * claimed so meanwhile says so; the table then takes the entry out
 * without dropping it (its releaser frees it) and marks it out.
 */
#ifndef RH_CORE_LINEAGE_TABLE_H
#define RH_CORE_LINEAGE_TABLE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rh_lineage rh_lineage_t;
struct rh_lineage {
    rh_lineage_t *older, *newer;  /* the age list, while not running; the
                                   * drop list once dropped for room */
    uint64_t      counter;        /* the task's; never 0 */
    uint32_t      bytes;          /* counted against the bound */
    uint8_t       running;        /* a run is out: never dropped */
    uint8_t       out;            /* taken out while its release was on
                                   * its way (under the lock) */
};

typedef struct rh_lineage_table {
    pthread_mutex_t lock;
    rh_lineage_t   *oldest, *newest;
    size_t          bytes, max;   /* of the entries not running */
    long            dropped;      /* entries dropped for room, ever */
    /* Entries taken out, ever: written only under the lock (a load and a
     * store, no read-modify-write), read by anyone. */
    _Atomic long    removed;
    /* Under the lock: l is dropped for room; what points at it lets go.
     * Returns 0 when l's release claimed it first (then l is not
     * dropped: it is taken out and marked out, and its releaser frees
     * it). */
    int           (*detach)(rh_lineage_t *l);
    /* Outside the lock: frees l. */
    void          (*drop)(rh_lineage_t *l);
    /* Entries added, ever: bumped by the submitter without the lock, so
     * on a line of its own (the last) that only submitters write: a line
     * the releaser or the progress thread also wrote made every record
     * wait for it. The count in the table is added - removed. */
    _Alignas(64) _Atomic long added;
} rh_lineage_table_t;

void rh_lineage_table_init(rh_lineage_table_t *tb, size_t max,
                           int (*detach)(rh_lineage_t *l),
                           void (*drop)(rh_lineage_t *l));

/* Detaches and drops the entries not running, and frees the table; the
 * running ones are the caller's (rh_lineage_table_remove_locked them
 * first). */
void rh_lineage_table_fini(rh_lineage_table_t *tb);

/* Adds l (its counter, bytes and running set; the table bounds it from
 * now on). A running entry takes no lock. One not running is linked as the
 * newest, then the oldest entries are dropped while the table is over its
 * bound, l included. */
void rh_lineage_table_add(rh_lineage_table_t *tb, rh_lineage_t *l);

/* Counts an entry about to be added running, before any of it is written:
 * the count's atomic add is a full barrier, which after the writes of a
 * cold entry would wait for each of its lines. The entry is then the
 * caller's to set up (older and newer NULL, running 1), with no call of
 * rh_lineage_table_add. */
void rh_lineage_table_add_running(rh_lineage_table_t *tb);

/* l runs again (a retry or a rebuild): kept whatever the bound; with
 * tb->lock held. */
void rh_lineage_table_run_locked(rh_lineage_table_t *tb, rh_lineage_t *l);

/* Its run ended: l may be dropped for room again. With tb->lock held;
 * returns the entries dropped for room (l among them, maybe), detached,
 * for rh_lineage_table_drop_list once the lock is let go. */
rh_lineage_t *rh_lineage_table_ran_locked(rh_lineage_table_t *tb,
                                          rh_lineage_t *l);

/* Takes l out of the table (its objects were all released), unless a
 * detach found it released and took it out already (l->out); the caller
 * frees it. With tb->lock held. */
void rh_lineage_table_remove_locked(rh_lineage_table_t *tb, rh_lineage_t *l);

/* Drops a list from rh_lineage_table_ran_locked; without the lock. */
void rh_lineage_table_drop_list(rh_lineage_table_t *tb, rh_lineage_t *l);

/* A new bound, applied now. */
void rh_lineage_table_set_max(rh_lineage_table_t *tb, size_t max);

/* Entries kept now, and the bytes of those not running. */
size_t rh_lineage_table_count(rh_lineage_table_t *tb);
size_t rh_lineage_table_bytes(rh_lineage_table_t *tb);

#endif
