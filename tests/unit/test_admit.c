/* The bound on tasks out on other ranks: places are taken up to the bound,
 * a non-blocking taker past it is refused with a sentence, a blocking one
 * waits until a place is given back, and every place comes back. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "base/config.h"
#include "base/status.h"
#include "core/admit.h"

static void setup(void)
{
    rh_config_defaults(&rh_cfg);
    rh_cfg.remote_tasks_max = 8;
}

TestSuite(admit, .init = setup);

Test(admit, non_blocking_taker_past_the_bound_gets_busy_and_a_sentence)
{
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(rh_admit_take(1, "t"), RH_OK);
    }
    cr_assert_eq(rh_admit_out(), 8);
    cr_assert_eq(rh_admit_take(1, "t"), RH_ERR_BUSY);
    cr_expect(strstr(rh_last_error(), "RAYHPC_REMOTE_TASKS_MAX") != NULL,
              "the refusal says why: %s", rh_last_error());
    cr_assert_eq(rh_admit_out(), 8, "a refusal takes no place");
    rh_admit_release();
    cr_assert_eq(rh_admit_take(1, "t"), RH_OK);
    for (int i = 0; i < 8; i++) {
        rh_admit_release();
    }
    cr_assert_eq(rh_admit_out(), 0);
}

static _Atomic int taken;

static void *blocking_taker(void *arg)
{
    (void)arg;
    if (rh_admit_take(0, "t") == RH_OK) {
        atomic_store(&taken, 1);
    }
    return NULL;
}

Test(admit, blocking_taker_waits_until_places_come_back)
{
    pthread_t th;

    for (int i = 0; i < 8; i++) {
        cr_assert_eq(rh_admit_take(0, "t"), RH_OK);
    }
    cr_assert_eq(pthread_create(&th, NULL, blocking_taker, NULL), 0);
    /* It cannot get a place until enough come back: give back all but
     * one; it goes on once a quarter of the bound is free. */
    cr_expect_eq(atomic_load(&taken), 0);
    for (int i = 0; i < 7; i++) {
        rh_admit_release();
    }
    pthread_join(th, NULL);
    cr_assert_eq(atomic_load(&taken), 1);
    cr_assert_eq(rh_admit_out(), 2);
    rh_admit_release();
    rh_admit_release();
}
