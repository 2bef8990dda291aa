/*
 * Waiting for futures: a worker lends itself to other tasks while it waits
 * (so nested gets never deadlock the pool), other threads sleep between
 * completions.
 */
#include "base/completion.h"
#include "core/core.h"
#include "core/future.h"
#include "sched/pool.h"

int rh_core_wait_until(int (*cond)(void *arg), void *arg, uint64_t deadline)
{
    rh_pool_t *pool = rh_pool_current();

    if (pool == NULL) {
        return rh_future_block_until(cond, arg, deadline);
    }
    /* The pool sleeps with a timeout when there is a deadline: a helper
     * with nothing to run still gives up on time. */
    return rh_pool_help_until_deadline(pool, cond, arg, deadline);
}

int rh_core_wait_until_polled(int (*cond)(void *arg), void *arg,
                              uint64_t deadline)
{
    for (;;) {
        uint64_t slice = rh_time_ns() + 1000000ull;

        if (deadline != 0 && slice > deadline) {
            slice = deadline;
        }
        if (rh_core_wait_until(cond, arg, slice)) {
            return 1;
        }
        if (deadline != 0 && rh_time_ns() >= deadline) {
            return 0;
        }
    }
}
