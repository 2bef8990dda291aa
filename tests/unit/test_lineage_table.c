/*
 * The lineage table: entries by counter, oldest dropped first past the
 * bound, running ones never, and drop called outside the lock.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "core/lineage_table.h"

static rh_lineage_table_t tb;
static uint64_t dropped[64];
static long ndropped;

static void drop(rh_lineage_t *l)
{
    /* Outside the lock: a drop may end other entries. */
    cr_assert_eq(pthread_mutex_trylock(&tb.lock), 0,
                 "drop called with the table's lock held");
    pthread_mutex_unlock(&tb.lock);
    if (ndropped < 64) {
        dropped[ndropped++] = l->counter;
    }
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
    ndropped = 0;
    rh_lineage_table_init(&tb, max, drop);
}

Test(lineage_table, keeps_entries_within_the_bound)
{
    setup(1000);
    for (uint64_t c = 1; c <= 5; c++) {
        cr_assert_eq(rh_lineage_table_add(&tb, entry(c, 100, 0)), 0);
    }
    cr_expect_eq(rh_lineage_table_count(&tb), 5);
    cr_expect_eq(rh_lineage_table_bytes(&tb), 500);
    cr_expect_eq(ndropped, 0);
    pthread_mutex_lock(&tb.lock);
    cr_expect_not_null(rh_lineage_table_find_locked(&tb, 3));
    cr_expect_null(rh_lineage_table_find_locked(&tb, 6));
    pthread_mutex_unlock(&tb.lock);
    rh_lineage_table_fini(&tb);
    cr_expect_eq(ndropped, 5);
}

Test(lineage_table, drops_the_oldest_first_past_the_bound)
{
    setup(300);
    for (uint64_t c = 1; c <= 5; c++) {
        cr_assert_eq(rh_lineage_table_add(&tb, entry(c, 100, 0)), 0);
    }
    cr_expect_eq(rh_lineage_table_count(&tb), 3);
    cr_expect_eq(rh_lineage_table_bytes(&tb), 300);
    cr_assert_eq(ndropped, 2);
    cr_expect_eq(dropped[0], 1);
    cr_expect_eq(dropped[1], 2);
    cr_expect_eq(tb.dropped, 2);
    rh_lineage_table_fini(&tb);
}

Test(lineage_table, never_drops_a_running_entry)
{
    rh_lineage_t *l;

    setup(150);
    cr_assert_eq(rh_lineage_table_add(&tb, entry(1, 100, 1)), 0);
    cr_assert_eq(rh_lineage_table_add(&tb, entry(2, 100, 1)), 0);
    /* Both run: kept, and not counted. */
    cr_expect_eq(rh_lineage_table_count(&tb), 2);
    cr_expect_eq(rh_lineage_table_bytes(&tb), 0);
    cr_expect_eq(ndropped, 0);
    rh_lineage_table_ran(&tb, 2);
    cr_expect_eq(ndropped, 0);
    cr_expect_eq(rh_lineage_table_bytes(&tb), 100);
    /* The second ended first: it is the oldest of those not running. */
    rh_lineage_table_ran(&tb, 1);
    cr_assert_eq(ndropped, 1);
    cr_expect_eq(dropped[0], 2);
    cr_expect_eq(rh_lineage_table_count(&tb), 1);
    /* Running again, it is out of the bound's reach. */
    rh_lineage_table_set_max(&tb, 1000);
    cr_assert_eq(rh_lineage_table_add(&tb, entry(3, 100, 0)), 0);
    pthread_mutex_lock(&tb.lock);
    l = rh_lineage_table_find_locked(&tb, 1);
    cr_assert_not_null(l);
    rh_lineage_table_run_locked(&tb, l);
    pthread_mutex_unlock(&tb.lock);
    rh_lineage_table_set_max(&tb, 0);
    cr_expect_eq(ndropped, 2);
    cr_expect_eq(dropped[1], 3);
    cr_expect_eq(rh_lineage_table_count(&tb), 1);
    rh_lineage_table_fini(&tb);
    cr_expect_eq(ndropped, 3);
}

/* The bound holds however many tasks run: none of them is walked. */
Test(lineage_table, many_running_entries_cost_nothing_to_trim)
{
    setup(0);
    for (uint64_t c = 1; c <= 100000; c++) {
        cr_assert_eq(rh_lineage_table_add(&tb, entry(c, 64, 1)), 0);
    }
    for (uint64_t c = 1; c <= 100000; c++) {
        rh_lineage_table_ran(&tb, c);
    }
    cr_expect_eq(rh_lineage_table_count(&tb), 0);
    cr_expect_eq(tb.dropped, 100000);
    ndropped = 0;
    rh_lineage_table_fini(&tb);
}

Test(lineage_table, a_zero_bound_keeps_only_running_tasks)
{
    setup(0);
    cr_assert_eq(rh_lineage_table_add(&tb, entry(7, 64, 1)), 0);
    cr_expect_eq(rh_lineage_table_count(&tb), 1);
    rh_lineage_table_ran(&tb, 7);
    cr_expect_eq(rh_lineage_table_count(&tb), 0);
    cr_expect_eq(ndropped, 1);
    cr_assert_eq(rh_lineage_table_add(&tb, entry(8, 64, 0)), 0);
    cr_expect_eq(rh_lineage_table_count(&tb), 0, "an idle entry over a zero "
                 "bound goes at once");
    rh_lineage_table_fini(&tb);
}

Test(lineage_table, remove_drops_and_a_counter_is_in_once)
{
    rh_lineage_t *dup;

    setup(1u << 20);
    cr_assert_eq(rh_lineage_table_add(&tb, entry(1, 10, 0)), 0);
    dup = entry(1, 10, 0);
    cr_expect_eq(rh_lineage_table_add(&tb, dup), -1);
    free(dup);
    cr_expect_eq(rh_lineage_table_remove(&tb, 1), 1);
    cr_expect_eq(rh_lineage_table_remove(&tb, 1), 0);
    cr_expect_eq(ndropped, 1);
    cr_expect_eq(rh_lineage_table_bytes(&tb), 0);
    /* ran on an entry that is gone is harmless */
    rh_lineage_table_ran(&tb, 1);
    rh_lineage_table_fini(&tb);
}

Test(lineage_table, many_entries_keep_their_order)
{
    setup(100 * 8);
    for (uint64_t c = 1; c <= 1000; c++) {
        cr_assert_eq(rh_lineage_table_add(&tb, entry(c, 8, 0)), 0);
    }
    cr_expect_eq(rh_lineage_table_count(&tb), 100);
    pthread_mutex_lock(&tb.lock);
    cr_expect_eq(tb.oldest->counter, 901);
    cr_expect_eq(tb.newest->counter, 1000);
    for (uint64_t c = 901; c <= 1000; c++) {
        cr_expect_not_null(rh_lineage_table_find_locked(&tb, c));
    }
    pthread_mutex_unlock(&tb.lock);
    ndropped = 0;
    rh_lineage_table_fini(&tb);
}
