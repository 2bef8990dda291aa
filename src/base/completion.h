/*
 * A one-shot completion that one thread waits on and another signals: a
 * futex word, so waiting costs no lock and signalling one syscall only when
 * somebody sleeps on it.
 */
#ifndef RH_BASE_COMPLETION_H
#define RH_BASE_COMPLETION_H

#include <stdatomic.h>
#include <stdint.h>

#include "rayhpc.h"

typedef struct rh_completion {
    _Atomic uint32_t state;    /* 0 pending, 1 pending with a sleeper, 2 done */
    rh_status_t      status;
} rh_completion_t;

static inline void rh_completion_init(rh_completion_t *c)
{
    atomic_store_explicit(&c->state, 0, memory_order_relaxed);
    c->status = RH_OK;
}

static inline int rh_completion_done(rh_completion_t *c)
{
    return atomic_load_explicit(&c->state, memory_order_acquire) == 2;
}

/* Marks c done with status and wakes the waiter. */
void rh_completion_signal(rh_completion_t *c, rh_status_t status);

/* Waits until c is done or timeout_ms passes (< 0: forever). Returns the
 * signalled status, or RH_ERR_TIMEOUT. */
rh_status_t rh_completion_wait(rh_completion_t *c, int64_t timeout_ms);

/* Tells the core we are spinning (frees pipeline resources for a sibling
 * hyperthread). */
static inline void rh_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Monotonic clock in nanoseconds. */
uint64_t rh_time_ns(void);

#endif
