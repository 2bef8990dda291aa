/*
 * Waiting for futures: a worker runs the waiting task's own children while
 * it waits, or parks and leaves its core to a spare thread (sched/pool.c),
 * so nested gets neither deadlock nor starve the pool; other threads drive
 * the network themselves for a moment (an answer then needs no other
 * thread to arrive), then sleep between completions. A waiting task lends
 * its CPUs to the rank meanwhile, as Ray's blocked workers do: tasks that
 * ask for CPUs cannot then all sit in waits for children that no CPU is
 * left to run.
 */
#include <sched.h>

#include "base/completion.h"
#include "base/config.h"
#include "base/log.h"
#include "base/status.h"
#include "core/core.h"
#include "core/future.h"
#include "obs/timeline.h"
#include "sched/pool.h"
#include "transport/transport.h"

/* A thread that is not a worker drives the worker while it waits (what it
 * waits for mostly comes from the network): no progress thread has to be
 * scheduled to receive the answer, nor to wake us. Returns whether cond
 * held; 0 also when driving was not possible or its time ran out. */
static int rh_core_drive(int (*cond)(void *arg), void *arg, uint64_t deadline)
{
    /* RAYHPC_DRIVE_US: most answers come within a few round trips, and a
     * wait that lasts longer gives the worker back to the progress
     * thread. */
    uint64_t end = rh_time_ns() + rh_cfg.drive_us * 1000ull;
    int done = 0;

    if (rh_cfg.drive_us == 0 || !rh_tp_drive_begin()) {
        return 0;
    }
    if (deadline != 0 && deadline < end) {
        end = deadline;
    }
    for (unsigned round = 1, idle = 1; !(done = cond(arg)); round++) {
        /* Busy or not, the time is looked at: traffic for others must not
         * keep a wait with a deadline from ending. */
        if ((round & 15) == 0 && rh_time_ns() >= end) {
            break;
        }
        if (rh_tp_drive() > 0) {
            continue;
        }
        /* Nothing came, or another thread has the worker: on few cores
         * the peer we wait for may need ours. */
        if (rh_tp_idle_yield(idle++)) {
            sched_yield();
        }
        rh_cpu_relax();
    }
    /* Done: most callers come back with the next wait in a moment, and a
     * wake of the progress thread would cost them a futex call and, on
     * few cores, a turn of their core; one that does not is covered
     * within RH_TP_ASIDE_US. Not done: we sleep, the network is its. */
    if (done) {
        rh_tp_drive_leave();
    } else {
        rh_tp_drive_end();
    }
    return done;
}

/* The user's threads waiting in a call: rh_finalize ends their waits and
 * lets them leave before it frees what they read. One counts from its
 * first wait until the call returns (rh_core_call_begin/_end around the
 * calls that read futures after waiting), else until the wait ends. */
static _Atomic int rh_core_waiting, rh_core_ending;
static _Thread_local int rh_core_depth, rh_core_counted;
static _Thread_local int rh_core_finalizer;   /* its own waits go on */
static _Thread_local int rh_core_runtime;     /* ... and the runtime's */

void rh_core_runtime_thread(void)
{
    rh_core_runtime = 1;
}

void rh_core_call_begin(void)
{
    rh_core_depth++;
}

static void rh_core_uncount(void)
{
    rh_core_counted = 0;
    atomic_fetch_sub_explicit(&rh_core_waiting, 1, memory_order_release);
}

void rh_core_call_end(void)
{
    if (--rh_core_depth == 0 && rh_unlikely(rh_core_counted)) {
        rh_core_uncount();
    }
}

int rh_core_waiters(void)
{
    return atomic_load(&rh_core_waiting);
}

int rh_core_ending_now(void)
{
    return rh_unlikely(atomic_load_explicit(&rh_core_ending,
                                            memory_order_relaxed)) &&
           !rh_core_finalizer && !rh_core_runtime &&
           rh_pool_current() == NULL;
}

void rh_core_end_waits(int64_t timeout_ms)
{
    uint64_t end = rh_time_ns() + (uint64_t)timeout_ms * 1000000ull;

    rh_core_finalizer = 1;
    atomic_store(&rh_core_ending, 1);
    rh_future_notify();
    while (atomic_load_explicit(&rh_core_waiting, memory_order_acquire) >
           0) {
        if (rh_time_ns() >= end) {
            rh_warn("rh_finalize: %d thread(s) of this rank still in a "
                    "call after %lld ms; ending without them",
                    atomic_load(&rh_core_waiting), (long long)timeout_ms);
            return;
        }
        rh_future_notify();
        sched_yield();
    }
}

void rh_core_end_waits_over(void)
{
    atomic_store(&rh_core_ending, 0);
    rh_core_finalizer = 0;
}

typedef struct rh_core_cond {
    int  (*cond)(void *arg);
    void  *arg;
    int    held;
} rh_core_cond_t;

static int rh_core_cond_or_end(void *arg)
{
    rh_core_cond_t *c = arg;

    c->held = c->cond(c->arg);
    return c->held || rh_core_ending_now();
}

/* With RH_CORE_WAIT_KEEP a task's CPUs are not lent while it waits. */
#define RH_CORE_WAIT_KEEP (1u << 16)

static int rh_core_wait(int (*cond)(void *arg), void *arg, uint64_t deadline,
                        unsigned flags)
{
    rh_pool_t *pool = rh_pool_current();
    uint64_t tl0 = rh_tl_begin();
    int lent, done;

    if (pool == NULL && rh_core_runtime) {
        done = rh_core_drive(cond, arg, deadline) ||
               rh_future_block_until(cond, arg, deadline);
        rh_tl_end(RH_TL_WAIT, "wait", tl0, -1, 0);
        return done;
    }
    if (pool == NULL) {
        rh_core_cond_t c = { cond, arg, 0 };

        if (!rh_core_counted) {
            atomic_fetch_add_explicit(&rh_core_waiting, 1,
                                      memory_order_acquire);
            rh_core_counted = 1;
        }
        if (!rh_core_drive(rh_core_cond_or_end, &c, deadline)) {
            (void)rh_future_block_until(rh_core_cond_or_end, &c, deadline);
        }
        done = c.held;
        if (rh_core_depth == 0) {
            rh_core_uncount();
        }
        rh_tl_end(RH_TL_WAIT, "wait", tl0, -1, 0);
        return done;
    }
    lent = (flags & RH_CORE_WAIT_KEEP) ? 0 : rh_task_lend_cpus();
    /* The pool sleeps with a timeout when there is a deadline: a waiter
     * with nothing to run still gives up on time. */
    done = rh_pool_wait(pool, cond, arg, deadline,
                        flags & ~RH_CORE_WAIT_KEEP);
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

int rh_core_wait_until_keeping(int (*cond)(void *arg), void *arg,
                               uint64_t deadline)
{
    return rh_core_wait(cond, arg, deadline, RH_CORE_WAIT_KEEP);
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
        if ((deadline != 0 && rh_time_ns() >= deadline) ||
            rh_core_ending_now()) {
            return 0;
        }
    }
}
