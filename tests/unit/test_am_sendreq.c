/*
 * Send requests of threads other than the progress thread
 * (src/transport/am.c): what they have on their way is counted against
 * RAYHPC_SEND_QUEUE_MAX until each send is done, whichever thread sent it
 * and whether that thread still runs. A singleton job sending to itself;
 * a send with a completion callback always takes a request (it never
 * leaves from the sending thread).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "rayhpc.h"
#include "transport/am.h"
#include "transport/transport.h"

#define ID       (RH_AM_ID_TEST_FIRST + 2)
#define THREADS  4
#define SENDS    3000

static _Atomic long received, done_ok, done_failed;

static rh_status_t on_msg(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    cr_assert_eq(msg->data_len, sizeof(long));
    atomic_fetch_add(&received, 1);
    return RH_OK;
}

static void on_done(void *arg, rh_status_t status)
{
    (void)arg;
    atomic_fetch_add(status == RH_OK ? &done_ok : &done_failed, 1);
}

static void setup(void)
{
    rh_init_params_t p = { .field_mask = RH_INIT_PARAM_FIELD_LOG_LEVEL,
                           .log_level = "error" };

    atomic_store(&received, 0);
    atomic_store(&done_ok, 0);
    atomic_store(&done_failed, 0);
    cr_assert_eq(rh_am_register(ID, 0, 8, on_msg, NULL), RH_OK);
    cr_assert_eq(rh_init(NULL, NULL, &p), RH_OK, "%s", rh_last_error());
}

static void teardown(void)
{
    cr_expect_eq(rh_finalize(), RH_OK, "%s", rh_last_error());
}

static const long payload = 42;

static void *sender(void *arg)
{
    long n = (long)(intptr_t)arg;

    for (long i = 0; i < n; i++) {
        /* waits for room as a submitter does */
        cr_assert_eq(rh_am_wait_room(0), RH_OK);
        cr_assert_eq(rh_am_send(0, ID, NULL, 0, &payload, sizeof(payload),
                                on_done, NULL), RH_OK, "%s", rh_last_error());
    }
    return NULL;
}

/* Until every send is done and counted off, and every message arrived:
 * a send to ourselves is done once UCX took its bytes, and its handler may
 * run later (60 s at most: a send lost, or a count never taken off, fails
 * the test instead of hanging it). */
static void wait_all_done(long want)
{
    struct timespec pause = { 0, 1000000 };

    for (int i = 0; i < 60000 && (atomic_load(&done_ok) +
                                  atomic_load(&done_failed) < want ||
                                  atomic_load(&received) < want ||
                                  rh_am_posted() != 0); i++) {
        nanosleep(&pause, NULL);
    }
    cr_assert_eq(atomic_load(&done_failed), 0);
    cr_assert_eq(atomic_load(&done_ok), want);
    cr_assert_eq(atomic_load(&received), want, "%ld received of %ld",
                 atomic_load(&received), want);
    cr_assert_eq(rh_am_posted(), 0, "%ld sends still counted as on their "
                 "way after all were done", rh_am_posted());
}

TestSuite(am_sendreq, .init = setup, .fini = teardown, .timeout = 120);

Test(am_sendreq, sends_of_several_threads_arrive_and_are_all_counted_off)
{
    pthread_t th[THREADS];

    for (int i = 0; i < THREADS; i++) {
        cr_assert_eq(pthread_create(&th[i], NULL, sender,
                                    (void *)(intptr_t)SENDS), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
    }
    wait_all_done((long)THREADS * SENDS);
}

/* Each thread ends before the next begins, with sends of its own still
 * on their way: they are counted off all the same. */
Test(am_sendreq, a_thread_takes_over_what_an_ended_one_left)
{
    long want = 0;

    for (int i = 0; i < 3 * THREADS; i++) {
        pthread_t th;

        cr_assert_eq(pthread_create(&th, NULL, sender, (void *)(intptr_t)
                                    (SENDS / 4 + i)), 0);
        pthread_join(th, NULL);
        want += SENDS / 4 + i;
    }
    wait_all_done(want);
}

/* The driver's own sends and a second start of the runtime in one
 * process: the counts begin again at zero. */
Test(am_sendreq, counts_begin_again_after_a_restart)
{
    sender((void *)(intptr_t)SENDS);
    wait_all_done(SENDS);
    cr_assert_eq(rh_finalize(), RH_OK, "%s", rh_last_error());
    atomic_store(&received, 0);
    atomic_store(&done_ok, 0);
    cr_assert_eq(rh_init(NULL, NULL, NULL), RH_OK, "%s", rh_last_error());
    /* rh_init's own first sends may be on their way still: a count left
     * over from the first run would never drain */
    for (int i = 0; i < 60000 && rh_am_posted() != 0; i++) {
        struct timespec pause = { 0, 1000000 };

        nanosleep(&pause, NULL);
    }
    cr_assert_eq(rh_am_posted(), 0, "%ld sends counted after the restart",
                 rh_am_posted());
    sender((void *)(intptr_t)SENDS);
    wait_all_done(SENDS);
}
