/* The owner's table of tasks in flight: every entry put is taken once,
 * whatever the order, and a rank's entries are all found when it dies. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/inflight.h"

static rh_inflight_t entry(uint64_t counter, int rank)
{
    rh_inflight_t e;

    memset(&e, 0, sizeof(e));
    e.counter = counter;
    e.rank = rank;
    e.nreturns = (int)(counter % 7);
    e.name = "task";
    return e;
}

static int dropped;

static void count_drop(rh_inflight_t *e)
{
    (void)e;
    dropped++;
}

Test(inflight, entries_come_back_once_in_any_order)
{
    enum { N = 50000 };
    uint64_t *order = malloc(N * sizeof(*order));
    rh_inflight_t e;

    for (uint64_t c = 1; c <= N; c++) {
        rh_inflight_t in = entry(c, (int)(c % 5));

        cr_assert_eq(rh_inflight_put(&in), 0);
        order[c - 1] = c;
    }
    /* a fixed shuffle, so that a failure reproduces */
    srand(7);
    for (size_t i = N - 1; i > 0; i--) {
        size_t j = (size_t)rand() % (i + 1);
        uint64_t t = order[i];

        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < N; i++) {
        uint64_t c = order[i];

        cr_assert_eq(rh_inflight_take(c, (int)((c + 1) % 5), &e), 0,
                     "counter %llu taken for the wrong rank",
                     (unsigned long long)c);
        cr_assert_eq(rh_inflight_take(c, (int)(c % 5), &e), 1,
                     "counter %llu lost", (unsigned long long)c);
        cr_assert_eq(e.counter, c);
        cr_assert_eq(e.nreturns, (int)(c % 7));
        cr_assert_eq(rh_inflight_take(c, (int)(c % 5), &e), 0,
                     "counter %llu taken twice", (unsigned long long)c);
    }
    free(order);
    dropped = 0;
    rh_inflight_clear(count_drop);
    cr_assert_eq(dropped, 0);
}

Test(inflight, a_dead_rank_gives_back_all_its_entries)
{
    rh_inflight_t e;
    int n3 = 0;

    for (uint64_t c = 1; c <= 1000; c++) {
        rh_inflight_t in = entry(c, c % 4 == 3 ? 3 : 1);

        cr_assert_eq(rh_inflight_put(&in), 0);
    }
    while (rh_inflight_take_rank(3, &e)) {
        cr_assert_eq(e.rank, 3);
        n3++;
    }
    cr_assert_eq(n3, 250);
    cr_assert_eq(rh_inflight_take(4, 1, &e), 1);
    dropped = 0;
    rh_inflight_clear(count_drop);
    cr_assert_eq(dropped, 749);
}

/* The index by rank forgets what the answers took: a dead rank gives back
 * exactly what was still in flight there, among many ranks. */
Test(inflight, a_dead_rank_gives_back_only_what_is_still_in_flight)
{
    enum { N = 100000, RANKS = 97 };
    rh_inflight_t e;
    int n = 0;

    for (uint64_t c = 1; c <= N; c++) {
        rh_inflight_t in = entry(c, (int)(c % RANKS));

        cr_assert_eq(rh_inflight_put(&in), 0);
    }
    for (uint64_t c = 5; c <= N; c += RANKS) {   /* rank 5's, answered */
        if ((c / RANKS) % 2 == 0) {
            cr_assert_eq(rh_inflight_take(c, 5, &e), 1);
        }
    }
    while (rh_inflight_take_rank(5, &e)) {
        cr_assert_eq(e.rank, 5);
        cr_assert_eq((e.counter / RANKS) % 2, 1, "counter %llu came back "
                     "twice", (unsigned long long)e.counter);
        n++;
    }
    cr_assert_eq(n, (N / RANKS + 1) / 2);
    cr_assert_eq(rh_inflight_take_rank(5, &e), 0);
    cr_assert_eq(rh_inflight_take(6, 6, &e), 1, "another rank's entry");
    dropped = 0;
    rh_inflight_clear(count_drop);
    cr_assert_eq(dropped, N - (N / RANKS + 1) - 1);
}

/* Puts from several threads while another takes: every entry is found by
 * its answer, also when answers come in another order than the puts (the
 * taker passes over entries that wait for later answers). */
enum { PUTTERS = 3, PER_PUTTER = 20000 };

static void *put_many(void *arg)
{
    uint64_t base = (uint64_t)(uintptr_t)arg;

    for (uint64_t i = 1; i <= PER_PUTTER; i++) {
        rh_inflight_t in = entry(base + i, 2);

        cr_assert_eq(rh_inflight_put(&in), 0);
    }
    return NULL;
}

Test(inflight, concurrent_puts_are_all_taken_in_any_order)
{
    pthread_t th[PUTTERS];
    rh_inflight_t e;
    int taken = 0;

    for (int i = 0; i < PUTTERS; i++) {
        cr_assert_eq(pthread_create(&th[i], NULL, put_many,
                                    (void *)(uintptr_t)((i + 1) * 1000000)),
                     0);
    }
    /* Every putter's counters, even ones first, while they are still put:
     * a counter not put yet is not found, and is looked for again. */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < PUTTERS; i++) {
            for (uint64_t k = 1 + (uint64_t)(pass == 0); k <= PER_PUTTER;
                 k += 2) {
                uint64_t c = (uint64_t)(i + 1) * 1000000 + k;

                while (!rh_inflight_take(c, 2, &e)) {
                    sched_yield();
                }
                cr_assert_eq(e.counter, c);
                cr_assert_eq(e.rank, 2);
                taken++;
            }
        }
    }
    for (int i = 0; i < PUTTERS; i++) {
        pthread_join(th[i], NULL);
    }
    cr_assert_eq(taken, PUTTERS * PER_PUTTER);
    cr_assert_eq(rh_inflight_take_rank(2, &e), 0, "an entry came back twice");
    dropped = 0;
    rh_inflight_clear(count_drop);
    cr_assert_eq(dropped, 0);
}
