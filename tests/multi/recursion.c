/*
 * Deep recursion through tasks: each task submits one child and gets its
 * value, so every level waits inside a task for the level below.
 *
 * usage: recursion chain DEPTH    children run where the scheduler puts
 *                                 them (on one rank: all here);
 *                                 "RECURSION CHAIN OK: depth DEPTH ...".
 *        recursion spread DEPTH   each child goes SPREAD, so every rank
 *                                 holds a share of the waiting levels;
 *                                 "RECURSION SPREAD OK: depth DEPTH ...".
 * Rank 0 drives; every rank runs tasks.
 */
#include <stdint.h>
#include <string.h>

#include "rank_util.h"

static int64_t arg_i64(rh_task_ctx_t *ctx, int i)
{
    int64_t v;

    memcpy(&v, rh_task_arg(ctx, i, NULL), sizeof(v));
    return v;
}

/* Gets an int64 and drops the get's hold and the submitter's. */
static rh_status_t take_i64(rh_ref_t r, int64_t *v)
{
    const void *p;
    size_t len;
    rh_status_t st = rh_get(r, &p, &len, RH_TIMEOUT_INFINITE);

    if (st == RH_OK) {
        memcpy(v, p, sizeof(*v));
        rh_release(r);
    }
    rh_release(r);
    return st;
}

/* deep(n, spread): 0 at the bottom, else deep(n - 1) + 1. */
static rh_status_t deep(rh_task_ctx_t *ctx)
{
    int64_t n = arg_i64(ctx, 0), spread = arg_i64(ctx, 1), v;
    rh_task_params_t params = { 0 };
    rh_ref_t r;
    rh_status_t st;

    if (n == 0) {
        return rh_task_return(ctx, 0, &n, sizeof(n));
    }
    n--;
    rh_arg_t args[2] = { rh_arg_bytes(&n, sizeof(n)),
                         rh_arg_bytes(&spread, sizeof(spread)) };
    if (spread) {
        params.field_mask = RH_TASK_PARAM_FIELD_STRATEGY;
        params.strategy = RH_STRATEGY_SPREAD;
    }
    if ((st = rh_remote("deep", args, 2, &params, &r)) != RH_OK ||
        (st = take_i64(r, &v)) != RH_OK) {
        /* The first failure's message reaches the driver unchanged. */
        return rh_task_fail(ctx, "%s", rh_last_error());
    }
    v++;
    return rh_task_return(ctx, 0, &v, sizeof(v));
}

static int run_deep(const char *mode, int64_t depth)
{
    int64_t spread = strcmp(mode, "spread") == 0, v = -1;
    rh_arg_t args[2] = { rh_arg_bytes(&depth, sizeof(depth)),
                         rh_arg_bytes(&spread, sizeof(spread)) };
    rh_ref_t r;
    double t0 = rank_now();

    CHECK(rh_remote("deep", args, 2, NULL, &r));
    CHECK(take_i64(r, &v));
    if (v != depth) {
        fprintf(stderr, "recursion %s: depth %lld gave %lld\n", mode,
                (long long)depth, (long long)v);
        return 1;
    }
    printf("RECURSION %s OK: depth %lld in %.2f s\n",
           spread ? "SPREAD" : "CHAIN", (long long)depth, rank_now() - t0);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "chain";
    int64_t depth = argc > 2 ? atoll(argv[2]) : 1000;
    int rc = 0;
    rh_status_t st;

    CHECK(rh_register("deep", deep, 2, 1));
    CHECK(rh_init(&argc, &argv, NULL));
    if (rh_rank() == 0) {
        if (strcmp(mode, "chain") == 0 || strcmp(mode, "spread") == 0) {
            rc = run_deep(mode, depth);
        } else {
            fprintf(stderr, "recursion: unknown mode '%s'\n", mode);
            rc = 2;
        }
    }
    fflush(stdout);
    st = rh_finalize();
    return rc != 0 ? rc : (st == RH_OK ? 0 : 1);
}
