#include "core/inflight.h"

#include <pthread.h>
#include <stdlib.h>

#include "base/hashmap.h"

/* The entries by counter, and an index by rank: each rank that runs tasks
 * of ours has the set of their counters, so that its death takes its
 * entries in O(their number), not a scan of every task in flight. */
#define RH_IF_BAD_COUNTER(c) ((c) == 0 || (c) == UINT64_MAX)

static pthread_mutex_t rh_if_lock = PTHREAD_MUTEX_INITIALIZER;
static rh_hmap_t rh_if_tab = RH_HMAP_INITIALIZER(sizeof(uint64_t),
                                                 sizeof(rh_inflight_t));
static rh_hmap_t rh_if_ranks = RH_HMAP_INITIALIZER(sizeof(int64_t),
                                                   sizeof(rh_hmap_t));

/* Drops counter from rank's set, and the set once empty. */
static void rh_if_unindex(int rank, uint64_t counter)
{
    int64_t r = rank;
    rh_hmap_t *set = rh_hmap_get(&rh_if_ranks, &r);

    if (set == NULL) {
        return;
    }
    (void)rh_hmap_del(set, &counter, NULL);
    if (rh_hmap_count(set) == 0) {
        rh_hmap_fini(set);
        (void)rh_hmap_del(&rh_if_ranks, &r, NULL);
    }
}

int rh_inflight_put(const rh_inflight_t *e)
{
    int64_t r = e->rank;
    rh_inflight_t *slot;
    rh_hmap_t *set;
    int added;

    if (RH_IF_BAD_COUNTER(e->counter)) {
        return -1;
    }
    pthread_mutex_lock(&rh_if_lock);
    slot = rh_hmap_put(&rh_if_tab, &e->counter, &added);
    if (slot == NULL || !added) {
        goto err_unlock;   /* out of memory, or a counter already here */
    }
    set = rh_hmap_put(&rh_if_ranks, &r, &added);
    if (set == NULL) {
        goto err_entry;
    }
    if (added) {
        rh_hmap_init(set, sizeof(uint64_t), 0);
    }
    if (rh_hmap_put(set, &e->counter, NULL) == NULL) {
        if (added) {
            (void)rh_hmap_del(&rh_if_ranks, &r, NULL);
        }
        goto err_entry;
    }
    *slot = *e;
    pthread_mutex_unlock(&rh_if_lock);
    return 0;

err_entry:
    (void)rh_hmap_del(&rh_if_tab, &e->counter, NULL);
err_unlock:
    pthread_mutex_unlock(&rh_if_lock);
    return -1;
}

int rh_inflight_take(uint64_t counter, int rank, rh_inflight_t *out)
{
    const rh_inflight_t *e;
    int found = 0;

    if (RH_IF_BAD_COUNTER(counter)) {
        return 0;
    }
    pthread_mutex_lock(&rh_if_lock);
    e = rh_hmap_get(&rh_if_tab, &counter);
    if (e != NULL && e->rank == rank) {
        (void)rh_hmap_del(&rh_if_tab, &counter, out);
        rh_if_unindex(rank, counter);
        found = 1;
    }
    pthread_mutex_unlock(&rh_if_lock);
    return found;
}

int rh_inflight_take_rank(int rank, rh_inflight_t *out)
{
    int64_t r = rank;
    rh_hmap_t *set;
    uint64_t counter;
    int found = 0;

    pthread_mutex_lock(&rh_if_lock);
    set = rh_hmap_get(&rh_if_ranks, &r);
    if (set != NULL && rh_hmap_pop(set, &counter, NULL)) {
        found = rh_hmap_del(&rh_if_tab, &counter, out);
        if (rh_hmap_count(set) == 0) {
            rh_hmap_fini(set);
            (void)rh_hmap_del(&rh_if_ranks, &r, NULL);
        }
    }
    pthread_mutex_unlock(&rh_if_lock);
    return found;
}

void rh_inflight_clear(void (*drop)(rh_inflight_t *e))
{
    rh_hmap_iter_t it;
    void *val;

    pthread_mutex_lock(&rh_if_lock);
    rh_hmap_iter_init(&it, &rh_if_tab);
    while (rh_hmap_iter_next(&it, NULL, &val)) {
        drop(val);
    }
    rh_hmap_fini(&rh_if_tab);
    rh_hmap_iter_init(&it, &rh_if_ranks);
    while (rh_hmap_iter_next(&it, NULL, &val)) {
        rh_hmap_fini(val);
    }
    rh_hmap_fini(&rh_if_ranks);
    pthread_mutex_unlock(&rh_if_lock);
}
