#include "core/lineage_table.h"

#include <stdlib.h>

void rh_lineage_table_init(rh_lineage_table_t *tb, size_t max,
                           void (*drop)(rh_lineage_t *l))
{
    pthread_mutex_init(&tb->lock, NULL);
    rh_hmap_init(&tb->map, sizeof(uint64_t), sizeof(rh_lineage_t *));
    tb->oldest = tb->newest = NULL;
    tb->bytes = 0;
    tb->max = max;
    tb->dropped = 0;
    tb->drop = drop;
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
    (void)rh_hmap_del(&tb->map, &l->counter, NULL);
}

/* Unlinks the oldest entries not running while over the bound; returns
 * them as a list (through newer) to drop once the lock is let go. */
static rh_lineage_t *rh_lineage_trim_locked(rh_lineage_table_t *tb)
{
    rh_lineage_t *out = NULL, *l = tb->oldest;

    while (l != NULL && tb->bytes > tb->max) {
        rh_lineage_t *next = l->newer;

        if (!l->running) {
            rh_lineage_unlink(tb, l);
            l->newer = out;
            out = l;
            tb->dropped++;
        }
        l = next;
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
    rh_lineage_t **slot, *out;
    int added;

    pthread_mutex_lock(&tb->lock);
    slot = rh_hmap_put(&tb->map, &l->counter, &added);
    if (slot == NULL || !added) {
        pthread_mutex_unlock(&tb->lock);
        return -1;
    }
    *slot = l;
    l->newer = NULL;
    l->older = tb->newest;
    if (tb->newest != NULL) {
        tb->newest->newer = l;
    } else {
        tb->oldest = l;
    }
    tb->newest = l;
    tb->bytes += l->bytes;
    out = rh_lineage_trim_locked(tb);
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

int rh_lineage_table_remove(rh_lineage_table_t *tb, uint64_t counter)
{
    rh_lineage_t *l;

    pthread_mutex_lock(&tb->lock);
    l = rh_lineage_table_find_locked(tb, counter);
    if (l != NULL) {
        rh_lineage_unlink(tb, l);
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
    if (l != NULL) {
        l->running = 0;
        out = rh_lineage_trim_locked(tb);
    }
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
    rh_lineage_t *l;

    pthread_mutex_lock(&tb->lock);
    l = tb->oldest;
    tb->oldest = tb->newest = NULL;
    tb->bytes = 0;
    rh_hmap_fini(&tb->map);
    pthread_mutex_unlock(&tb->lock);
    while (l != NULL) {
        rh_lineage_t *next = l->newer;

        tb->drop(l);
        l = next;
    }
    pthread_mutex_destroy(&tb->lock);
}
