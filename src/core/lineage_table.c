#include "core/lineage_table.h"

#include <stdlib.h>

void rh_lineage_table_init(rh_lineage_table_t *tb, size_t max,
                           void (*drop)(rh_lineage_t *l))
{
    pthread_mutexattr_t attr;

    /* Short sections taken by the submitter, the progress thread and the
     * releaser at task rates: spin a little before sleeping. */
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&tb->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    rh_hmap_init(&tb->map, sizeof(uint64_t), sizeof(rh_lineage_t *));
    tb->oldest = tb->newest = NULL;
    tb->bytes = 0;
    tb->max = max;
    tb->dropped = 0;
    tb->drop = drop;
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

/* Takes the oldest entries out while over the bound; returns them as a
 * list (through newer) to drop once the lock is let go. */
static rh_lineage_t *rh_lineage_trim_locked(rh_lineage_table_t *tb)
{
    rh_lineage_t *out = NULL;

    while (tb->oldest != NULL && tb->bytes > tb->max) {
        rh_lineage_t *l = tb->oldest;

        rh_lineage_unlink(tb, l);
        (void)rh_hmap_del(&tb->map, &l->counter, NULL);
        l->newer = out;
        out = l;
        tb->dropped++;
    }
    return out;
}

static void rh_lineage_drop_list(rh_lineage_table_t *tb, rh_lineage_t *l)
{
    while (l != NULL) {
        rh_lineage_t *next = l->newer;

        tb->drop(l);
        l = next;
    }
}

int rh_lineage_table_add(rh_lineage_table_t *tb, rh_lineage_t *l)
{
    rh_lineage_t **slot, *out = NULL;
    int added;

    pthread_mutex_lock(&tb->lock);
    slot = rh_hmap_put(&tb->map, &l->counter, &added);
    if (slot == NULL || !added) {
        pthread_mutex_unlock(&tb->lock);
        return -1;
    }
    *slot = l;
    l->older = l->newer = NULL;
    if (!l->running) {
        rh_lineage_link(tb, l);
        out = rh_lineage_trim_locked(tb);
    }
    pthread_mutex_unlock(&tb->lock);
    rh_lineage_drop_list(tb, out);
    return 0;
}

rh_lineage_t *rh_lineage_table_find_locked(rh_lineage_table_t *tb,
                                           uint64_t counter)
{
    rh_lineage_t **slot = rh_hmap_get(&tb->map, &counter);

    return slot != NULL ? *slot : NULL;
}

void rh_lineage_table_run_locked(rh_lineage_table_t *tb, rh_lineage_t *l)
{
    if (!l->running) {
        rh_lineage_unlink(tb, l);
        l->running = 1;
    }
}

int rh_lineage_table_remove(rh_lineage_table_t *tb, uint64_t counter)
{
    rh_lineage_t *l;

    pthread_mutex_lock(&tb->lock);
    l = rh_lineage_table_find_locked(tb, counter);
    if (l != NULL) {
        if (!l->running) {
            rh_lineage_unlink(tb, l);
        }
        (void)rh_hmap_del(&tb->map, &counter, NULL);
    }
    pthread_mutex_unlock(&tb->lock);
    if (l != NULL) {
        tb->drop(l);
    }
    return l != NULL;
}

void rh_lineage_table_ran(rh_lineage_table_t *tb, uint64_t counter)
{
    rh_lineage_t *l, *out = NULL;

    pthread_mutex_lock(&tb->lock);
    l = rh_lineage_table_find_locked(tb, counter);
    if (l != NULL && l->running) {
        l->running = 0;
        rh_lineage_link(tb, l);
        out = rh_lineage_trim_locked(tb);
    }
    pthread_mutex_unlock(&tb->lock);
    rh_lineage_drop_list(tb, out);
}

void rh_lineage_table_set_max(rh_lineage_table_t *tb, size_t max)
{
    rh_lineage_t *out;

    pthread_mutex_lock(&tb->lock);
    tb->max = max;
    out = rh_lineage_trim_locked(tb);
    pthread_mutex_unlock(&tb->lock);
    rh_lineage_drop_list(tb, out);
}

size_t rh_lineage_table_count(rh_lineage_table_t *tb)
{
    size_t n;

    pthread_mutex_lock(&tb->lock);
    n = rh_hmap_count(&tb->map);
    pthread_mutex_unlock(&tb->lock);
    return n;
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
    rh_lineage_t *l, *out = NULL;

    pthread_mutex_lock(&tb->lock);
    while (rh_hmap_pop(&tb->map, NULL, &l)) {
        l->newer = out;
        out = l;
    }
    rh_hmap_fini(&tb->map);
    tb->oldest = tb->newest = NULL;
    tb->bytes = 0;
    pthread_mutex_unlock(&tb->lock);
    rh_lineage_drop_list(tb, out);
    pthread_mutex_destroy(&tb->lock);
}
