/*
 * Waiting for futures: a worker runs the waiting task's own children while
 * it waits, or parks and leaves its core to a spare thread (sched/pool.c),
 * so nested gets neither deadlock nor starve the pool; other threads sleep
 * between completions. A waiting task lends its CPUs to the rank meanwhile,
 * as Ray's blocked workers do: tasks that ask for CPUs cannot then all sit
 * in waits for children that no CPU is left to run.
 */
#include "base/completion.h"
#include "core/core.h"
#include "core/future.h"
#include "obs/timeline.h"
#include "sched/pool.h"

static int rh_core_wait(int (*cond)(void *arg), void *arg, uint64_t deadline,
                        unsigned flags)
{
    rh_pool_t *pool = rh_pool_current();
    uint64_t tl0 = rh_tl_begin();
    int lent, done;

    if (pool == NULL) {
        done = rh_future_block_until(cond, arg, deadline);
        rh_tl_end(RH_TL_WAIT, "wait", tl0, -1, 0);
        return done;
    }
    lent = rh_task_lend_cpus();
    /* The pool sleeps with a timeout when there is a deadline: a waiter
     * with nothing to run still gives up on time. */
    done = rh_pool_wait(pool, cond, arg, deadline, flags);
    rh_task_reclaim_cpus(lent);
    rh_tl_end(RH_TL_WAIT, "wait", tl0, -1, 0);
    return done;
}

int rh_core_wait_until(int (*cond)(void *arg), void *arg, uint64_t deadline)
{
    return rh_core_wait(cond, arg, deadline, 0);
}

int rh_core_wait_until_pure(int (*cond)(void *arg), void *arg,
                            uint64_t deadline)
{
    return rh_core_wait(cond, arg, deadline, RH_POOL_WAIT_PURE);
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
