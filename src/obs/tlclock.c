/*
 * The timeline's clock: the source chosen once, and the conversion of its
 * ticks to CLOCK_MONOTONIC nanoseconds through two calibration points.
 */
#include "obs/tlclock.h"

#include <time.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#define RH_TLC_MIN_SPAN_NS 1000000ull   /* between the two points */
#define RH_TLC_TRIES       5

rh_tlclock_source_t rh_tlclock_src;

typedef struct rh_tlc_point {
    uint64_t ticks;
    uint64_t ns;
} rh_tlc_point_t;

static struct {
    rh_tlc_point_t first;
    double         ns_per_tick;   /* 0: not calibrated yet */
} rh_tlc;

/* The invariant TSC runs at one rate in every P-, C- and T-state: only
 * then does a tick mean the same time on every core and all the time. */
static int rh_tlc_tsc_invariant(void)
{
#if defined(__x86_64__)
    unsigned a, b, c, d;

    /* gcc returns unsigned, clang int: compare as unsigned */
    if ((unsigned)__get_cpuid_max(0x80000000u, NULL) < 0x80000007u) {
        return 0;
    }
    __cpuid(0x80000007u, a, b, c, d);
    (void)a;
    (void)b;
    (void)c;
    return (d >> 8) & 1u;
#else
    return 0;
#endif
}

/* Both clocks at one instant: the monotonic read between two tick reads,
 * the tightest pair of a few (a preemption in between spoils one). */
static rh_tlc_point_t rh_tlc_sample(void)
{
    rh_tlc_point_t best = { 0, 0 };
    uint64_t best_gap = UINT64_MAX;

    for (int i = 0; i < RH_TLC_TRIES; i++) {
        uint64_t t0 = rh_tlclock_now();
        uint64_t ns = rh_time_ns();
        uint64_t t1 = rh_tlclock_now();

        if (t1 >= t0 && t1 - t0 < best_gap) {
            best_gap = t1 - t0;
            best.ticks = t0 + (t1 - t0) / 2;
            best.ns = ns;
        }
    }
    return best;
}

void rh_tlclock_start(int force_monotonic)
{
    rh_tlclock_src = RH_TLCLOCK_MONOTONIC;
    if (!force_monotonic) {
#if defined(__x86_64__)
        if (rh_tlc_tsc_invariant()) {
            rh_tlclock_src = RH_TLCLOCK_TSC;
        }
#elif defined(__aarch64__)
        rh_tlclock_src = RH_TLCLOCK_CNTVCT;   /* architected: constant rate */
#endif
    }
    rh_tlc.ns_per_tick = rh_tlclock_src == RH_TLCLOCK_MONOTONIC ? 1.0 : 0.0;
    rh_tlc.first = rh_tlclock_src == RH_TLCLOCK_MONOTONIC ?
                   (rh_tlc_point_t){ 0, 0 } : rh_tlc_sample();
}

const char *rh_tlclock_name(void)
{
    static const char *const names[] = { "clock_gettime", "tsc", "cntvct" };

    return names[rh_tlclock_src];
}

/* The rate from the first point to one taken now, at least 1 ms later. */
static void rh_tlc_calibrate(void)
{
    rh_tlc_point_t second;

    for (;;) {
        uint64_t now = rh_time_ns();

        if (now - rh_tlc.first.ns >= RH_TLC_MIN_SPAN_NS) {
            break;
        }
        {
            uint64_t left = RH_TLC_MIN_SPAN_NS - (now - rh_tlc.first.ns);
            struct timespec ts = { 0, (long)left };

            nanosleep(&ts, NULL);
        }
    }
    second = rh_tlc_sample();
    if (second.ticks > rh_tlc.first.ticks && second.ns > rh_tlc.first.ns) {
        rh_tlc.ns_per_tick = (double)(second.ns - rh_tlc.first.ns) /
                             (double)(second.ticks - rh_tlc.first.ticks);
    } else {
        /* A counter that did not advance cannot be converted: the times
         * come out as the first point's; never a crash or a huge value. */
        rh_tlc.ns_per_tick = 1e-12;
    }
}

uint64_t rh_tlclock_ns(uint64_t ticks)
{
    double d;

    if (rh_tlclock_src == RH_TLCLOCK_MONOTONIC) {
        return ticks;
    }
    if (rh_tlc.ns_per_tick == 0.0) {
        rh_tlc_calibrate();
    }
    d = ticks >= rh_tlc.first.ticks ?
        (double)(ticks - rh_tlc.first.ticks) * rh_tlc.ns_per_tick :
        -(double)(rh_tlc.first.ticks - ticks) * rh_tlc.ns_per_tick;
    if (d < 0 && (uint64_t)(-d) > rh_tlc.first.ns) {
        return 0;
    }
    return d < 0 ? rh_tlc.first.ns - (uint64_t)(-d) :
                   rh_tlc.first.ns + (uint64_t)d;
}

double rh_tlclock_hz(void)
{
    return rh_tlc.ns_per_tick > 0.0 ? 1e9 / rh_tlc.ns_per_tick : 0.0;
}
