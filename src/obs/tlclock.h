/*
 * The timeline's clock: a cheap tick counter on the hot path, converted to
 * CLOCK_MONOTONIC nanoseconds only when the trace is written.
 *
 * The ticks are the TSC (rdtsc) on x86-64 when the CPU says it is
 * invariant (constant rate, runs in every C-state), the virtual counter
 * (cntvct_el0) on aarch64, and CLOCK_MONOTONIC itself elsewhere. On a VM a
 * clock_gettime costs 200-300 ns under load; a TSC read is a few ns. The
 * conversion is linear through two points where both clocks were read:
 * one at rh_tlclock_start, one at the first conversion after it, so the
 * rate is measured over the whole run (no calibration wait at start) and
 * a converted time lands on CLOCK_MONOTONIC: ranks of one host stay aligned.
 */
#ifndef RH_OBS_TLCLOCK_H
#define RH_OBS_TLCLOCK_H

#include <stdint.h>

#include "base/completion.h"
#include "base/status.h"

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

typedef enum rh_tlclock_source {
    RH_TLCLOCK_MONOTONIC = 0,   /* clock_gettime: ticks are ns already */
    RH_TLCLOCK_TSC,             /* x86-64 rdtsc, invariant TSC */
    RH_TLCLOCK_CNTVCT           /* aarch64 virtual counter */
} rh_tlclock_source_t;

/* Set by rh_tlclock_start before the threads that record start. */
extern rh_tlclock_source_t rh_tlclock_src;

/* Now, in ticks of the source chosen by rh_tlclock_start. */
static inline uint64_t rh_tlclock_now(void)
{
#if defined(__x86_64__)
    if (rh_likely(rh_tlclock_src == RH_TLCLOCK_TSC)) {
        return __rdtsc();
    }
#elif defined(__aarch64__)
    if (rh_likely(rh_tlclock_src == RH_TLCLOCK_CNTVCT)) {
        uint64_t v;

        __asm__ __volatile__("mrs %0, cntvct_el0" : "=r"(v));
        return v;
    }
#endif
    return rh_time_ns();
}

/* Chooses the source (force_monotonic: clock_gettime whatever the CPU)
 * and takes the first calibration point. */
void rh_tlclock_start(int force_monotonic);

/* The source chosen, as a word for logs and tests. */
const char *rh_tlclock_name(void);

/* Ticks -> CLOCK_MONOTONIC ns. The first call after rh_tlclock_start
 * takes the second calibration point (waiting until 1 ms has passed since
 * the first, for a rate good to about 1e-4); later calls reuse it. Not
 * for concurrent first calls: the writer of the trace converts alone. */
uint64_t rh_tlclock_ns(uint64_t ticks);

/* The ticks per second measured (0 before the first conversion). */
double rh_tlclock_hz(void);

#endif
