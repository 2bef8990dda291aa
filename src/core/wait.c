/*
 * Waiting for futures: a worker lends itself to other tasks while it waits
 * (so nested gets never deadlock the pool), other threads sleep between
 * completions.
 */
#include "base/completion.h"
#include "core/core.h"
#include "core/future.h"
#include "sched/pool.h"

typedef struct rh_wait_ctx {
    int    (*cond)(void *arg);
    void    *arg;
    uint64_t deadline;
    int      met;
} rh_wait_ctx_t;

static int rh_wait_done(void *arg)
{
    rh_wait_ctx_t *w = arg;

    if (w->cond(w->arg)) {
        w->met = 1;
        return 1;
    }
    return w->deadline != 0 && rh_time_ns() >= w->deadline;
}

int rh_core_wait_until(int (*cond)(void *arg), void *arg, uint64_t deadline)
{
    rh_pool_t *pool = rh_pool_current();
    rh_wait_ctx_t w = { cond, arg, deadline, 0 };

    if (pool == NULL) {
        return rh_future_block_until(cond, arg, deadline);
    }
    rh_pool_help_until(pool, rh_wait_done, &w);
    return w.met;
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
