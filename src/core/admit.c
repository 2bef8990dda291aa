#include "core/admit.h"

#include <stdatomic.h>

#include "base/config.h"
#include "base/status.h"
#include "core/core.h"
#include "core/future.h"
#include "transport/am.h"
#include "transport/transport.h"

static _Atomic long rh_admit_n;
static _Atomic int rh_admit_waiters;

/* Waiters go on once a quarter of the places are free again: one wake-up
 * lets a batch of submits through instead of one per answer. */
static long rh_admit_low(void)
{
    long max = (long)rh_cfg.remote_tasks_max;

    return max - 1 - max / 4;
}

static int rh_admit_room(void *arg)
{
    (void)arg;
    return atomic_load_explicit(&rh_admit_n, memory_order_acquire) <=
           rh_admit_low();
}

rh_status_t rh_admit_take(int nonblock, const char *name)
{
    long max = (long)rh_cfg.remote_tasks_max;
    rh_status_t status = rh_am_wait_room(nonblock);

    if (status != RH_OK) {
        return rh_error_set(status, "task %s: %s", name, rh_last_error());
    }
    if (rh_likely(atomic_fetch_add(&rh_admit_n, 1) < max)) {
        return RH_OK;
    }
    if (rh_tp_on_progress_thread()) {
        return RH_OK;   /* over the bound, once: it cannot wait */
    }
    atomic_fetch_sub(&rh_admit_n, 1);
    if (nonblock) {
        return rh_error_set(RH_ERR_BUSY, "task %s: this rank has %ld tasks "
                            "on other ranks or with the global scheduler "
                            "(RAYHPC_REMOTE_TASKS_MAX); submit it again "
                            "once some are done", name, max);
    }
    atomic_fetch_add(&rh_admit_waiters, 1);
    for (;;) {
        /* A worker runs other tasks here: the answers we wait for may
         * need one of this rank's workers. */
        if (!rh_core_wait_until(rh_admit_room, NULL, 0) &&
            rh_core_ending_now()) {
            atomic_fetch_sub(&rh_admit_waiters, 1);
            return rh_error_set(RH_ERR_SHUTDOWN, "task %s: rh_finalize began "
                                "on another thread while this call waited "
                                "for room (RAYHPC_REMOTE_TASKS_MAX)", name);
        }
        if (atomic_fetch_add(&rh_admit_n, 1) < max) {
            break;
        }
        atomic_fetch_sub(&rh_admit_n, 1);
    }
    atomic_fetch_sub(&rh_admit_waiters, 1);
    return RH_OK;
}

void rh_admit_release(void)
{
    long n = atomic_fetch_sub(&rh_admit_n, 1) - 1;

    if (rh_unlikely(atomic_load(&rh_admit_waiters) != 0) &&
        n <= rh_admit_low()) {
        rh_future_notify();
    }
}

long rh_admit_out(void)
{
    return atomic_load_explicit(&rh_admit_n, memory_order_relaxed);
}
