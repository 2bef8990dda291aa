/*
 * The lineage table: entries bounded, oldest dropped first past the bound,
 * running ones never (and added without the lock), each dropped one
 * detached under the lock and dropped outside it; one whose release
 * claimed it first taken out, not dropped.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "core/lineage_table.h"

static rh_lineage_table_t tb;
static uint64_t dropped[64], detached[64];
static long ndropped, ndetached;
/* An entry whose release claimed it before a drop for room (its detach
 * finds it so), as lineage.c's release does without the lock. */
static uint64_t released_counter;

static int detach(rh_lineage_t *l)
{
    /* Under the lock: whoever points at l lets go before anyone else
     * can find it. */
    cr_assert_neq(pthread_mutex_trylock(&tb.lock), 0,
                  "detach called without the table's lock");
    if (l->counter == released_counter) {
        return 0;
    }
    if (ndetached < 64) {
        detached[ndetached] = l->counter;
    }
    ndetached++;
    return 1;
}

static void drop(rh_lineage_t *l)
{
    /* Outside the lock: a drop may end other entries. */
    cr_assert_eq(pthread_mutex_trylock(&tb.lock), 0,
                 "drop called with the table's lock held");
    pthread_mutex_unlock(&tb.lock);
    if (ndropped < 64) {
        dropped[ndropped] = l->counter;
    }
    ndropped++;
    free(l);
}

static rh_lineage_t *entry(uint64_t counter, size_t bytes, int running)
{
    rh_lineage_t *l = calloc(1, sizeof(*l));

    cr_assert_not_null(l);
    l->counter = counter;
    l->bytes = bytes;
    l->running = running;
    return l;
}

static void setup(size_t max)
{
    ndropped = ndetached = 0;
    released_counter = 0;
    rh_lineage_table_init(&tb, max, detach, drop);
}

/* What lineage.c does when a run's answer comes. */
static void ran(rh_lineage_t *l)
{
    rh_lineage_t *out;

    pthread_mutex_lock(&tb.lock);
    out = rh_lineage_table_ran_locked(&tb, l);
    pthread_mutex_unlock(&tb.lock);
    rh_lineage_table_drop_list(&tb, out);
}

Test(lineage_table, keeps_entries_within_the_bound)
{
    setup(1000);
    for (uint64_t c = 1; c <= 5; c++) {
        rh_lineage_table_add(&tb, entry(c, 100, 0));
    }
    cr_expect_eq(rh_lineage_table_count(&tb), 5);
    cr_expect_eq(rh_lineage_table_bytes(&tb), 500);
    cr_expect_eq(ndropped, 0);
    rh_lineage_table_fini(&tb);
    cr_expect_eq(ndropped, 5);
    cr_expect_eq(ndetached, 5);
}

Test(lineage_table, drops_the_oldest_first_past_the_bound)
{
    setup(300);
    for (uint64_t c = 1; c <= 5; c++) {
        rh_lineage_table_add(&tb, entry(c, 100, 0));
    }
    cr_expect_eq(rh_lineage_table_count(&tb), 3);
    cr_expect_eq(rh_lineage_table_bytes(&tb), 300);
    cr_assert_eq(ndropped, 2);
    cr_expect_eq(dropped[0], 1);
    cr_expect_eq(dropped[1], 2);
    cr_assert_eq(ndetached, 2);
    cr_expect_eq(detached[0], 1);
    cr_expect_eq(detached[1], 2);
    cr_expect_eq(tb.dropped, 2);
    rh_lineage_table_fini(&tb);
}

Test(lineage_table, never_drops_a_running_entry)
{
    rh_lineage_t *one = entry(1, 100, 1), *two = entry(2, 100, 1);

    setup(150);
    rh_lineage_table_add(&tb, one);
    rh_lineage_table_add(&tb, two);
    /* Both run: kept, and not counted. */
    cr_expect_eq(rh_lineage_table_count(&tb), 2);
    cr_expect_eq(rh_lineage_table_bytes(&tb), 0);
    cr_expect_eq(ndropped, 0);
    ran(two);
    cr_expect_eq(ndropped, 0);
    cr_expect_eq(rh_lineage_table_bytes(&tb), 100);
    /* The second ended first: it is the oldest of those not running. */
    ran(one);
    cr_assert_eq(ndropped, 1);
    cr_expect_eq(dropped[0], 2);
    cr_expect_eq(rh_lineage_table_count(&tb), 1);
    /* Running again, it is out of the bound's reach. */
    rh_lineage_table_set_max(&tb, 1000);
    rh_lineage_table_add(&tb, entry(3, 100, 0));
    pthread_mutex_lock(&tb.lock);
    rh_lineage_table_run_locked(&tb, one);
    pthread_mutex_unlock(&tb.lock);
    rh_lineage_table_set_max(&tb, 0);
    cr_expect_eq(ndropped, 2);
    cr_expect_eq(dropped[1], 3);
    cr_expect_eq(rh_lineage_table_count(&tb), 1);
    /* A running entry is the caller's at the end. */
    pthread_mutex_lock(&tb.lock);
    rh_lineage_table_remove_locked(&tb, one);
    pthread_mutex_unlock(&tb.lock);
    free(one);
    rh_lineage_table_fini(&tb);
    cr_expect_eq(ndropped, 2);
    cr_expect_eq(rh_lineage_table_count(&tb), 0);
}

/* The bound holds however many tasks run: none of them is walked. */
Test(lineage_table, many_running_entries_cost_nothing_to_trim)
{
    enum { N = 100000 };
    rh_lineage_t **l = malloc(N * sizeof(*l));

    cr_assert_not_null(l);
    setup(0);
    for (int c = 0; c < N; c++) {
        rh_lineage_table_add(&tb, l[c] = entry((uint64_t)c + 1, 64, 1));
    }
    cr_expect_eq(rh_lineage_table_count(&tb), N);
    for (int c = 0; c < N; c++) {
        ran(l[c]);
    }
    cr_expect_eq(rh_lineage_table_count(&tb), 0);
    cr_expect_eq(tb.dropped, N);
    cr_expect_eq(ndetached, N);
    rh_lineage_table_fini(&tb);
    free(l);
}

Test(lineage_table, a_zero_bound_keeps_only_running_tasks)
{
    rh_lineage_t *l = entry(7, 64, 1);

    setup(0);
    rh_lineage_table_add(&tb, l);
    cr_expect_eq(rh_lineage_table_count(&tb), 1);
    ran(l);
    cr_expect_eq(rh_lineage_table_count(&tb), 0);
    cr_expect_eq(ndropped, 1);
    rh_lineage_table_add(&tb, entry(8, 64, 0));
    cr_expect_eq(rh_lineage_table_count(&tb), 0, "an idle entry over a zero "
                 "bound goes at once");
    rh_lineage_table_fini(&tb);
}

Test(lineage_table, remove_takes_an_entry_out_whether_it_runs_or_not)
{
    rh_lineage_t *idle = entry(1, 10, 0), *busy = entry(2, 10, 1);

    setup(1u << 20);
    rh_lineage_table_add(&tb, idle);
    rh_lineage_table_add(&tb, busy);
    cr_expect_eq(rh_lineage_table_bytes(&tb), 10);
    pthread_mutex_lock(&tb.lock);
    rh_lineage_table_remove_locked(&tb, idle);
    rh_lineage_table_remove_locked(&tb, busy);
    pthread_mutex_unlock(&tb.lock);
    cr_expect_eq(rh_lineage_table_bytes(&tb), 0);
    cr_expect_eq(rh_lineage_table_count(&tb), 0);
    cr_expect_eq(ndropped, 0, "the caller frees what it removed");
    free(idle);
    free(busy);
    rh_lineage_table_fini(&tb);
    cr_expect_eq(ndropped, 0);
}

Test(lineage_table, many_entries_keep_their_order)
{
    setup(100 * 8);
    for (uint64_t c = 1; c <= 1000; c++) {
        rh_lineage_table_add(&tb, entry(c, 8, 0));
    }
    cr_expect_eq(rh_lineage_table_count(&tb), 100);
    pthread_mutex_lock(&tb.lock);
    cr_expect_eq(tb.oldest->counter, 901);
    cr_expect_eq(tb.newest->counter, 1000);
    pthread_mutex_unlock(&tb.lock);
    for (long i = 0; i < 64; i++) {
        cr_expect_eq(dropped[i], (uint64_t)i + 1, "dropped oldest first");
    }
    ndropped = 0;
    rh_lineage_table_fini(&tb);
    cr_expect_eq(ndropped, 100);
}

/* A submitter counts its entry before writing it, then sets it up running
 * itself: counted once, bounded like any other once its run ends. */
Test(lineage_table, an_entry_counted_before_it_is_written_runs_as_added)
{
    rh_lineage_t *l;

    setup(100);
    rh_lineage_table_add_running(&tb);
    l = entry(9, 64, 1);
    cr_expect_eq(rh_lineage_table_count(&tb), 1);
    cr_expect_eq(rh_lineage_table_bytes(&tb), 0);
    ran(l);
    cr_expect_eq(rh_lineage_table_count(&tb), 1);
    cr_expect_eq(rh_lineage_table_bytes(&tb), 64);
    rh_lineage_table_add(&tb, entry(10, 64, 0));
    cr_expect_eq(ndropped, 1, "over the bound: the oldest goes");
    cr_expect_eq(dropped[0], 9);
    cr_expect_eq(rh_lineage_table_count(&tb), 1);
    rh_lineage_table_fini(&tb);
}

/* A release claims its entry without the lock and hands it to the lock's
 * next holder; a drop for room that meets it first takes it out (its
 * bytes and count go) without dropping it or counting it dropped, and the
 * holder's removal after finds it out already. */
Test(lineage_table, a_released_entry_met_by_a_drop_is_taken_out_not_dropped)
{
    rh_lineage_t *one = entry(1, 100, 0), *two = entry(2, 100, 0);

    setup(250);
    rh_lineage_table_add(&tb, one);
    rh_lineage_table_add(&tb, two);
    released_counter = 1;   /* its release is on its way */
    rh_lineage_table_add(&tb, entry(3, 100, 0));
    cr_expect_eq(ndropped, 0, "the released entry is not dropped");
    cr_expect_eq(tb.dropped, 0, "nor counted as dropped for room");
    cr_expect_eq(ndetached, 0);
    cr_expect(one->out, "taken out, marked so");
    cr_expect_eq(rh_lineage_table_count(&tb), 2);
    cr_expect_eq(rh_lineage_table_bytes(&tb), 200);
    pthread_mutex_lock(&tb.lock);
    cr_expect_eq(tb.oldest, two, "the next oldest is the oldest");
    rh_lineage_table_remove_locked(&tb, one);   /* the release arrives */
    pthread_mutex_unlock(&tb.lock);
    cr_expect_eq(rh_lineage_table_count(&tb), 2, "counted out once");
    cr_expect_eq(rh_lineage_table_bytes(&tb), 200);
    free(one);
    /* Past the bound again: the oldest live entry goes as before. */
    rh_lineage_table_add(&tb, entry(4, 100, 0));
    cr_assert_eq(ndropped, 1);
    cr_expect_eq(dropped[0], 2);
    cr_expect_eq(tb.dropped, 1);
    rh_lineage_table_fini(&tb);
    cr_expect_eq(rh_lineage_table_count(&tb), 0);
}
