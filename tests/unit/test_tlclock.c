/* The timeline's clock: on this CPU it picks the cheap counter where the
 * CPU allows it; converted ticks never go back, land on CLOCK_MONOTONIC
 * and measure a sleep as CLOCK_MONOTONIC does; with clock_gettime forced
 * the ticks are the monotonic nanoseconds themselves. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "obs/tlclock.h"

#define SLEEP_NS 50000000ll   /* 50 ms */

static void nap(long long ns)
{
    struct timespec ts = { (time_t)(ns / 1000000000ll),
                           (long)(ns % 1000000000ll) };

    while (nanosleep(&ts, &ts) != 0) {
    }
}

static long long absdiff(uint64_t a, uint64_t b)
{
    return a > b ? (long long)(a - b) : (long long)(b - a);
}

Test(tlclock, the_cheap_counter_is_chosen_where_the_cpu_has_one)
{
    rh_tlclock_start(0);
#if defined(__aarch64__)
    cr_assert_str_eq(rh_tlclock_name(), "cntvct");
#elif defined(__x86_64__)
    {
        FILE *f = fopen("/proc/cpuinfo", "r");
        char line[4096];
        int nonstop = 0;

        while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
            if (strncmp(line, "flags", 5) == 0) {
                nonstop = strstr(line, " nonstop_tsc") != NULL;
                break;
            }
        }
        if (f != NULL) {
            fclose(f);
        }
        /* the kernel's nonstop_tsc is the same cpuid bit */
        cr_assert_str_eq(rh_tlclock_name(), nonstop ? "tsc" : "clock_gettime");
    }
#else
    cr_assert_str_eq(rh_tlclock_name(), "clock_gettime");
#endif
}

Test(tlclock, converted_ticks_follow_clock_monotonic_over_a_sleep)
{
    uint64_t k1, k2, m1, m2, n1, n2, prev = 0;

    rh_tlclock_start(0);
    m1 = rh_time_ns();
    k1 = rh_tlclock_now();
    nap(SLEEP_NS);
    m2 = rh_time_ns();
    k2 = rh_tlclock_now();
    n1 = rh_tlclock_ns(k1);
    n2 = rh_tlclock_ns(k2);
    /* Each point lands within 1 ms of the monotonic clock read beside it
     * (the reads are a few ns apart: the margin is for a preemption). */
    cr_assert_lt(absdiff(n1, m1), 1000000, "%s: %llu ns vs monotonic %llu",
                 rh_tlclock_name(), (unsigned long long)n1,
                 (unsigned long long)m1);
    cr_assert_lt(absdiff(n2, m2), 1000000, "%s: %llu ns vs monotonic %llu",
                 rh_tlclock_name(), (unsigned long long)n2,
                 (unsigned long long)m2);
    /* The sleep measures the same on both, to 2 %. */
    cr_assert_lt(absdiff(n2 - n1, m2 - m1), (long long)(m2 - m1) / 50,
                 "%s: the sleep took %llu ns, monotonic says %llu",
                 rh_tlclock_name(), (unsigned long long)(n2 - n1),
                 (unsigned long long)(m2 - m1));
    if (rh_tlclock_src != RH_TLCLOCK_MONOTONIC) {
        cr_assert_gt(rh_tlclock_hz(), 1e6, "a rate of %.0f Hz",
                     rh_tlclock_hz());
    }
    /* Monotonic: later ticks never convert to an earlier time. */
    for (int i = 0; i < 100000; i++) {
        uint64_t n = rh_tlclock_ns(rh_tlclock_now());

        cr_assert_geq(n, prev, "step %d went back: %llu after %llu", i,
                      (unsigned long long)n, (unsigned long long)prev);
        prev = n;
    }
}

Test(tlclock, forced_clock_gettime_ticks_are_monotonic_ns)
{
    uint64_t m, k;

    rh_tlclock_start(1);
    cr_assert_str_eq(rh_tlclock_name(), "clock_gettime");
    m = rh_time_ns();
    k = rh_tlclock_now();
    cr_assert_geq(k, m);
    cr_assert_lt(k - m, 1000000000ull);
    cr_assert_eq(rh_tlclock_ns(k), k);
}

Test(tlclock, a_start_anew_recalibrates)
{
    uint64_t k, m;

    rh_tlclock_start(0);
    (void)rh_tlclock_ns(rh_tlclock_now());
    nap(SLEEP_NS / 5);
    rh_tlclock_start(0);
    m = rh_time_ns();
    k = rh_tlclock_now();
    cr_assert_lt(absdiff(rh_tlclock_ns(k), m), 1000000);
}
