#include "core/lineage_table.h"

#include <stdlib.h>

void rh_lineage_table_init(rh_lineage_table_t *tb, size_t max,
                           int (*detach)(rh_lineage_t *l),
                           void (*drop)(rh_lineage_t *l))
{
    pthread_mutexattr_t attr;

    /* Short sections taken by the progress thread and the releaser at
     * task rates: spin a little before sleeping. */
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&tb->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    tb->oldest = tb->newest = NULL;
    tb->bytes = 0;
    tb->max = max;
    tb->dropped = 0;
    atomic_store(&tb->added, 0);
    atomic_store(&tb->removed, 0);
    tb->detach = detach;
    tb->drop = drop;
}

/* One entry fewer; lock held. */
static void rh_lineage_removed_locked(rh_lineage_table_t *tb)
{
    atomic_store_explicit(&tb->removed,
                          atomic_load_explicit(&tb->removed,
                                               memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* The age list holds the entries whose task is not running, oldest
 * first; only they count against the bound (a running task's spec is
 * needed anyway, and at most RAYHPC_REMOTE_TASKS_MAX of them run). */
static void rh_lineage_link(rh_lineage_table_t *tb, rh_lineage_t *l)
{
    l->newer = NULL;
    l->older = tb->newest;
    if (tb->newest != NULL) {
        tb->newest->newer = l;
    } else {
        tb->oldest = l;
    }
    tb->newest = l;
    tb->bytes += l->bytes;
}

static void rh_lineage_unlink(rh_lineage_table_t *tb, rh_lineage_t *l)
{
    if (l->older != NULL) {
        l->older->newer = l->newer;
    } else {
        tb->oldest = l->newer;
    }
    if (l->newer != NULL) {
        l->newer->older = l->older;
    } else {
        tb->newest = l->older;
    }
    l->older = l->newer = NULL;
    tb->bytes -= l->bytes;
}

/* Takes the oldest entries out while over the bound, detached; returns
 * them as a list (through newer) to drop once the lock is let go. */
static rh_lineage_t *rh_lineage_trim_locked(rh_lineage_table_t *tb)
{
    rh_lineage_t *out = NULL;

    while (tb->oldest != NULL && tb->bytes > tb->max) {
        rh_lineage_t *l = tb->oldest;

        rh_lineage_unlink(tb, l);
        rh_lineage_removed_locked(tb);
        if (tb->detach != NULL && !tb->detach(l)) {
            l->out = 1;   /* released meanwhile: its releaser frees it */
            continue;
        }
        l->newer = out;
        out = l;
        tb->dropped++;
    }
    return out;
}

void rh_lineage_table_drop_list(rh_lineage_table_t *tb, rh_lineage_t *l)
{
    while (l != NULL) {
        rh_lineage_t *next = l->newer;

        tb->drop(l);
        l = next;
    }
}

void rh_lineage_table_add_running(rh_lineage_table_t *tb)
{
    atomic_fetch_add_explicit(&tb->added, 1, memory_order_relaxed);
}

void rh_lineage_table_add(rh_lineage_table_t *tb, rh_lineage_t *l)
{
    rh_lineage_t *out;

    l->older = l->newer = NULL;
    rh_lineage_table_add_running(tb);
    if (l->running) {
        return;
    }
    pthread_mutex_lock(&tb->lock);
    rh_lineage_link(tb, l);
    out = rh_lineage_trim_locked(tb);
    pthread_mutex_unlock(&tb->lock);
    rh_lineage_table_drop_list(tb, out);
}

void rh_lineage_table_run_locked(rh_lineage_table_t *tb, rh_lineage_t *l)
{
    if (!l->running) {
        rh_lineage_unlink(tb, l);
        l->running = 1;
    }
}

rh_lineage_t *rh_lineage_table_ran_locked(rh_lineage_table_t *tb,
                                          rh_lineage_t *l)
{
    if (!l->running) {
        return NULL;
    }
    l->running = 0;
    rh_lineage_link(tb, l);
    return rh_lineage_trim_locked(tb);
}

void rh_lineage_table_remove_locked(rh_lineage_table_t *tb, rh_lineage_t *l)
{
    if (l->out) {
        return;   /* a detach took it out, finding it released */
    }
    if (!l->running) {
        rh_lineage_unlink(tb, l);
    }
    rh_lineage_removed_locked(tb);
}

void rh_lineage_table_set_max(rh_lineage_table_t *tb, size_t max)
{
    rh_lineage_t *out;

    pthread_mutex_lock(&tb->lock);
    tb->max = max;
    out = rh_lineage_trim_locked(tb);
    pthread_mutex_unlock(&tb->lock);
    rh_lineage_table_drop_list(tb, out);
}

size_t rh_lineage_table_count(rh_lineage_table_t *tb)
{
    /* removed first: it never runs ahead of added, so a count taken
     * while entries come and go is off by those only, never negative. */
    long removed = atomic_load_explicit(&tb->removed, memory_order_acquire);
    long added = atomic_load_explicit(&tb->added, memory_order_acquire);

    return added > removed ? (size_t)(added - removed) : 0;
}

size_t rh_lineage_table_bytes(rh_lineage_table_t *tb)
{
    size_t n;

    pthread_mutex_lock(&tb->lock);
    n = tb->bytes;
    pthread_mutex_unlock(&tb->lock);
    return n;
}

void rh_lineage_table_fini(rh_lineage_table_t *tb)
{
    rh_lineage_t *out;

    pthread_mutex_lock(&tb->lock);
    for (out = NULL; tb->oldest != NULL; ) {
        rh_lineage_t *l = tb->oldest;

        rh_lineage_unlink(tb, l);
        rh_lineage_removed_locked(tb);
        if (tb->detach != NULL && !tb->detach(l)) {
            l->out = 1;
            continue;
        }
        l->newer = out;
        out = l;
    }
    pthread_mutex_unlock(&tb->lock);
    rh_lineage_table_drop_list(tb, out);
    pthread_mutex_destroy(&tb->lock);
}
