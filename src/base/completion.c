#include "base/completion.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

uint64_t rh_time_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void rh_futex_wait(_Atomic uint32_t *word, uint32_t expected,
                          const struct timespec *timeout)
{
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, timeout, NULL, 0);
}

void rh_completion_signal(rh_completion_t *c, rh_status_t status)
{
    c->status = status;
    if (atomic_exchange_explicit(&c->state, 2, memory_order_acq_rel) == 1) {
        syscall(SYS_futex, &c->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
}

rh_status_t rh_completion_wait(rh_completion_t *c, int64_t timeout_ms)
{
    uint64_t deadline = timeout_ms < 0 ? 0 :
                        rh_time_ns() + (uint64_t)timeout_ms * 1000000ull;
    uint32_t state;

    /* A short spin catches completions that come within microseconds. */
    for (int i = 0; i < 2000; i++) {
        if (rh_completion_done(c)) {
            return c->status;
        }
        rh_cpu_relax();
    }
    for (;;) {
        struct timespec ts, *tsp = NULL;

        state = 0;
        if (!atomic_compare_exchange_strong_explicit(&c->state, &state, 1,
                                                     memory_order_acq_rel,
                                                     memory_order_acquire) &&
            state == 2) {
            return c->status;
        }
        if (timeout_ms >= 0) {
            uint64_t now = rh_time_ns();

            if (now >= deadline) {
                return RH_ERR_TIMEOUT;
            }
            ts.tv_sec = (time_t)((deadline - now) / 1000000000ull);
            ts.tv_nsec = (long)((deadline - now) % 1000000000ull);
            tsp = &ts;
        }
        rh_futex_wait(&c->state, 1, tsp);
    }
}
