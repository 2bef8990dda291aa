/* The rerun queue of core/lineage: every retry queued is either run or, when
 * the rank ends during its backoff, handed to its drop, exactly once, so
 * that what it holds (a task, an argument's wait) never outlives the rank
 * unaccounted for. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "base/config.h"
#include "core/future.h"
#include "core/lineage.h"

static _Atomic int ran, dropped, started, go;

static void count_run(void *arg)
{
    (void)arg;
    atomic_fetch_add(&ran, 1);
}

static void count_drop(void *arg)
{
    (void)arg;
    atomic_fetch_add(&dropped, 1);
}

/* Keeps the rerun thread busy until the test lets it go. */
static void block_run(void *arg)
{
    (void)arg;
    atomic_store(&started, 1);
    while (!atomic_load(&go)) {
        sched_yield();
    }
}

static void setup(void)
{
    atomic_store(&ran, 0);
    atomic_store(&dropped, 0);
    atomic_store(&started, 0);
    atomic_store(&go, 0);
    rh_config_defaults(&rh_cfg);
    rh_cfg.retry_backoff_ms = 0;   /* due at once */
    rh_future_setup(0, NULL);
    cr_assert_eq(rh_lineage_setup(), RH_OK);
}

TestSuite(lineage_retry, .init = setup, .fini = rh_future_teardown);

Test(lineage_retry, a_due_retry_runs_its_function_and_is_not_dropped)
{
    cr_assert(rh_retry_later(1, count_run, count_drop, NULL));
    while (atomic_load(&ran) == 0) {
        sched_yield();
    }
    rh_lineage_teardown();
    cr_assert_eq(atomic_load(&ran), 1);
    cr_assert_eq(atomic_load(&dropped), 0);
}

static void *teardown_main(void *arg)
{
    (void)arg;
    rh_lineage_teardown();
    return NULL;
}

Test(lineage_retry, retries_still_queued_when_the_rank_ends_are_dropped)
{
    pthread_t th;
    int queued = 1;

    /* The thread is held in one retry while another waits behind it. */
    cr_assert(rh_retry_later(1, block_run, count_drop, NULL));
    while (!atomic_load(&started)) {
        sched_yield();
    }
    cr_assert(rh_retry_later(1, count_run, count_drop, NULL));
    cr_assert_eq(pthread_create(&th, NULL, teardown_main, NULL), 0);
    /* Until the teardown has stopped the queue, more may join it. */
    while (rh_retry_later(1, count_run, count_drop, NULL)) {
        queued++;
    }
    atomic_store(&go, 1);
    pthread_join(th, NULL);
    cr_assert_eq(atomic_load(&ran), 0);
    cr_assert_eq(atomic_load(&dropped), queued, "%d of %d queued retries "
                 "were dropped", atomic_load(&dropped), queued);
    cr_assert_not(rh_retry_later(1, count_run, count_drop, NULL),
                  "a retry is refused once the rank ended");
}

Test(lineage_retry, a_retry_without_a_drop_is_freed_at_teardown)
{
    /* The rerun thread is never started for this one's run: teardown
     * frees the entry (ASan sees a leak otherwise). */
    pthread_t th;

    cr_assert(rh_retry_later(1, block_run, NULL, NULL));
    while (!atomic_load(&started)) {
        sched_yield();
    }
    cr_assert(rh_retry_later(1, count_run, NULL, NULL));
    cr_assert_eq(pthread_create(&th, NULL, teardown_main, NULL), 0);
    while (rh_retry_later(1, count_run, NULL, NULL)) {
    }
    atomic_store(&go, 1);
    pthread_join(th, NULL);
    cr_assert_eq(atomic_load(&ran), 0);
}
