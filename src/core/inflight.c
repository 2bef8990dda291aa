#include "core/inflight.h"

#include <pthread.h>
#include <stdlib.h>

/* Open addressing with linear probing; counter 0 marks a free slot. Deletes
 * shift the following entries back, so there are no tombstones. */
static pthread_mutex_t rh_if_lock = PTHREAD_MUTEX_INITIALIZER;
static rh_inflight_t *rh_if_tab;
static size_t rh_if_n, rh_if_cap;

static inline size_t rh_if_home(uint64_t counter, size_t cap)
{
    return (size_t)((counter * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1);
}

static void rh_if_place(rh_inflight_t *tab, size_t cap,
                        const rh_inflight_t *e)
{
    size_t i = rh_if_home(e->counter, cap);

    while (tab[i].counter != 0) {
        i = (i + 1) & (cap - 1);
    }
    tab[i] = *e;
}

static int rh_if_grow(void)
{
    size_t cap = rh_if_cap ? 2 * rh_if_cap : 256;
    rh_inflight_t *tab = calloc(cap, sizeof(*tab));

    if (tab == NULL) {
        return -1;
    }
    for (size_t i = 0; i < rh_if_cap; i++) {
        if (rh_if_tab[i].counter != 0) {
            rh_if_place(tab, cap, &rh_if_tab[i]);
        }
    }
    free(rh_if_tab);
    rh_if_tab = tab;
    rh_if_cap = cap;
    return 0;
}

int rh_inflight_put(const rh_inflight_t *e)
{
    int rc = 0;

    pthread_mutex_lock(&rh_if_lock);
    if (2 * (rh_if_n + 1) > rh_if_cap) {
        rc = rh_if_grow();
    }
    if (rc == 0) {
        rh_if_place(rh_if_tab, rh_if_cap, e);
        rh_if_n++;
    }
    pthread_mutex_unlock(&rh_if_lock);
    return rc;
}

/* Removes slot i, moving back the entries that probed past it. */
static void rh_if_remove(size_t i)
{
    size_t mask = rh_if_cap - 1, j = i;

    rh_if_tab[i].counter = 0;
    for (;;) {
        size_t home;

        j = (j + 1) & mask;
        if (rh_if_tab[j].counter == 0) {
            break;
        }
        home = rh_if_home(rh_if_tab[j].counter, rh_if_cap);
        /* Entry j may fill the hole at i when its home is not in (i, j]. */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            rh_if_tab[i] = rh_if_tab[j];
            rh_if_tab[j].counter = 0;
            i = j;
        }
    }
    rh_if_n--;
}

int rh_inflight_take(uint64_t counter, int rank, rh_inflight_t *out)
{
    int found = 0;

    if (counter == 0) {
        return 0;
    }
    pthread_mutex_lock(&rh_if_lock);
    for (size_t i = rh_if_cap ? rh_if_home(counter, rh_if_cap) : 0;
         rh_if_cap != 0 && rh_if_tab[i].counter != 0;
         i = (i + 1) & (rh_if_cap - 1)) {
        if (rh_if_tab[i].counter == counter) {
            if (rh_if_tab[i].rank == rank) {
                *out = rh_if_tab[i];
                rh_if_remove(i);
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
        if (rh_if_tab[i].counter != 0 && rh_if_tab[i].rank == rank) {
            *out = rh_if_tab[i];
            rh_if_remove(i);
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
        if (rh_if_tab[i].counter != 0) {
            drop(&rh_if_tab[i]);
        }
    }
    free(rh_if_tab);
    rh_if_tab = NULL;
    rh_if_n = rh_if_cap = 0;
    pthread_mutex_unlock(&rh_if_lock);
}
