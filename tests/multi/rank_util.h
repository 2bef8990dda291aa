/* Shared by the rank programs of the multi-rank tests. */
#ifndef RH_TESTS_RANK_UTIL_H
#define RH_TESTS_RANK_UTIL_H

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "rayhpc.h"

#define CHECK(_expr) \
    do { \
        rh_status_t _s = (_expr); \
        if (_s != RH_OK) { \
            fprintf(stderr, "rank %d: %s failed: %s (%s)\n", rh_rank(), \
                    #_expr, rh_status_string(_s), rh_last_error()); \
            exit(1); \
        } \
    } while (0)

/* Params that place a task on node `node` (NODE_AFFINITY; soft or hard). */
static inline rh_task_params_t rank_on_node(int node, int soft)
{
    rh_task_params_t p = { 0 };

    p.field_mask = RH_TASK_PARAM_FIELD_STRATEGY;
    p.strategy = RH_STRATEGY_NODE_AFFINITY;
    p.node = node;
    p.soft = soft;
    return p;
}

/* Params that place a task into bundle `bundle` of placement group pg. */
static inline rh_task_params_t rank_in_group(rh_pg_t pg, int bundle)
{
    rh_task_params_t p = { 0 };

    p.field_mask = RH_TASK_PARAM_FIELD_STRATEGY;
    p.strategy = RH_STRATEGY_PLACEMENT_GROUP;
    p.pg = pg;
    p.bundle = bundle;
    return p;
}

static inline double rank_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void rank_nap(void)
{
    struct timespec ts = {0, 200000};   /* 200 us */

    nanosleep(&ts, NULL);
}

/* Waits until *counter reaches target; gives up after timeout_s (a test
 * must fail, not hang). Returns 0 when reached. */
static inline int rank_wait_count(_Atomic long *counter, long target,
                                  double timeout_s)
{
    double end = rank_now() + timeout_s;

    while (atomic_load(counter) < target) {
        if (rank_now() > end) {
            return -1;
        }
        rank_nap();
    }
    return 0;
}

/* Deterministic payload byte i of the message src -> dst of a round. */
static inline unsigned char rank_pattern(int src, int dst, int round,
                                         size_t i)
{
    return (unsigned char)((size_t)src * 131u + (size_t)dst * 31u +
                           (size_t)round * 7u + i * 13u + (i >> 8));
}

#endif
