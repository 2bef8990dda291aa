#include "core/inflight.h"

#include <pthread.h>
#include <stdlib.h>

/* Open addressing, slot = counter mod capacity: counters grow by one per
 * task and answers come back roughly in order, so the entries sit in
 * counter order and the hot part of the table stays in cache. A taken entry
 * leaves a tombstone (O(1); shifting the run behind it back would walk all
 * the tasks in flight); tombstones go when the table is rebuilt. */
#define RH_IF_EMPTY 0ull
#define RH_IF_TOMB  (~0ull)

static pthread_mutex_t rh_if_lock = PTHREAD_MUTEX_INITIALIZER;
static rh_inflight_t *rh_if_tab;
static size_t rh_if_n, rh_if_tombs, rh_if_cap;

static inline size_t rh_if_home(uint64_t counter, size_t cap)
{
    return (size_t)counter & (cap - 1);
}

static void rh_if_place(rh_inflight_t *tab, size_t cap,
                        const rh_inflight_t *e)
{
    size_t i = rh_if_home(e->counter, cap);

    while (tab[i].counter != RH_IF_EMPTY) {
        i = (i + 1) & (cap - 1);
    }
    tab[i] = *e;
}

/* Rebuilds the table without tombstones, twice as large when it is more
 * than a quarter full. */
static int rh_if_rebuild(void)
{
    size_t cap = rh_if_cap == 0 ? 256 :
                 4 * (rh_if_n + 1) > rh_if_cap ? 2 * rh_if_cap : rh_if_cap;
    rh_inflight_t *tab = calloc(cap, sizeof(*tab));

    if (tab == NULL) {
        return -1;
    }
    for (size_t i = 0; i < rh_if_cap; i++) {
        if (rh_if_tab[i].counter != RH_IF_EMPTY &&
            rh_if_tab[i].counter != RH_IF_TOMB) {
            rh_if_place(tab, cap, &rh_if_tab[i]);
        }
    }
    free(rh_if_tab);
    rh_if_tab = tab;
    rh_if_cap = cap;
    rh_if_tombs = 0;
    return 0;
}

int rh_inflight_put(const rh_inflight_t *e)
{
    int rc = 0;

    if (e->counter == RH_IF_EMPTY || e->counter == RH_IF_TOMB) {
        return -1;
    }
    pthread_mutex_lock(&rh_if_lock);
    if (2 * (rh_if_n + rh_if_tombs + 1) > rh_if_cap) {
        rc = rh_if_rebuild();
    }
    if (rc == 0) {
        rh_if_place(rh_if_tab, rh_if_cap, e);
        rh_if_n++;
    }
    pthread_mutex_unlock(&rh_if_lock);
    return rc;
}

static void rh_if_remove(size_t i, rh_inflight_t *out)
{
    *out = rh_if_tab[i];
    rh_if_tab[i].counter = RH_IF_TOMB;
    rh_if_n--;
    rh_if_tombs++;
}

int rh_inflight_take(uint64_t counter, int rank, rh_inflight_t *out)
{
    int found = 0;

    if (counter == RH_IF_EMPTY || counter == RH_IF_TOMB) {
        return 0;
    }
    pthread_mutex_lock(&rh_if_lock);
    for (size_t i = rh_if_cap ? rh_if_home(counter, rh_if_cap) : 0, k = 0;
         k < rh_if_cap && rh_if_tab[i].counter != RH_IF_EMPTY;
         i = (i + 1) & (rh_if_cap - 1), k++) {
        if (rh_if_tab[i].counter == counter) {
            if (rh_if_tab[i].rank == rank) {
                rh_if_remove(i, out);
                found = 1;
            }
            break;
        }
    }
    pthread_mutex_unlock(&rh_if_lock);
    return found;
}

int rh_inflight_take_rank(int rank, rh_inflight_t *out)
{
    int found = 0;

    pthread_mutex_lock(&rh_if_lock);
    for (size_t i = 0; i < rh_if_cap; i++) {
        if (rh_if_tab[i].counter != RH_IF_EMPTY &&
            rh_if_tab[i].counter != RH_IF_TOMB && rh_if_tab[i].rank == rank) {
            rh_if_remove(i, out);
            found = 1;
            break;
        }
    }
    pthread_mutex_unlock(&rh_if_lock);
    return found;
}

void rh_inflight_clear(void (*drop)(rh_inflight_t *e))
{
    pthread_mutex_lock(&rh_if_lock);
    for (size_t i = 0; i < rh_if_cap; i++) {
        if (rh_if_tab[i].counter != RH_IF_EMPTY &&
            rh_if_tab[i].counter != RH_IF_TOMB) {
            drop(&rh_if_tab[i]);
        }
    }
    free(rh_if_tab);
    rh_if_tab = NULL;
    rh_if_n = rh_if_tombs = rh_if_cap = 0;
    pthread_mutex_unlock(&rh_if_lock);
}
