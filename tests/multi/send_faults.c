/*
 * Messages lost on their way (RAYHPC_FAULT_SENDS=N on every rank: every Nth
 * send of each rank fails before it reaches UCX). Rank 0 places tasks on
 * the other nodes, small and large returns and chains across nodes; every
 * get must end with the right value or an error that says which rank and
 * why, within a time no answer takes, and the job must end normally.
 *
 * usage: send_faults   prints "SEND FAULTS OK: V values, E errors, L
 *                      sends lost" on rank 0 (L > 0: faults happened).
 */
#include <string.h>

#include "rank_util.h"
#include "transport/am.h"

#define SMALL_TASKS 3000
#define BIG_TASKS   60
#define BIG_LEN     (100u * 1024)   /* above RAYHPC_INLINE_MAX: pulled */
#define CHAINS      30
#define CHAIN_LEN   4
#define GET_MS      30000           /* far beyond any answer: a hang */

static rh_status_t triple(rh_task_ctx_t *ctx)
{
    uint64_t v;

    memcpy(&v, rh_task_arg(ctx, 0, NULL), sizeof(v));
    v = 3 * v + 1;
    return rh_task_return(ctx, 0, &v, sizeof(v));
}

/* BIG_LEN bytes, each a function of its place and the argument. */
static rh_status_t big(rh_task_ctx_t *ctx)
{
    uint64_t v;
    uint8_t *out;
    rh_status_t st;

    memcpy(&v, rh_task_arg(ctx, 0, NULL), sizeof(v));
    st = rh_task_return_alloc(ctx, 0, BIG_LEN, (void **)&out);
    if (st != RH_OK) {
        return st;
    }
    for (size_t i = 0; i < BIG_LEN; i++) {
        out[i] = (uint8_t)(i * 13 + v);
    }
    return RH_OK;
}

/* Its argument's first 8 bytes (a ref or bytes) plus one. */
static rh_status_t next(rh_task_ctx_t *ctx)
{
    uint64_t v;

    memcpy(&v, rh_task_arg(ctx, 0, NULL), sizeof(v));
    v++;
    return rh_task_return(ctx, 0, &v, sizeof(v));
}

static long values, errors;

static int fail(const char *what, long i)
{
    fprintf(stderr, "send_faults: %s (item %ld: %s)\n", what, i,
            rh_last_error());
    return 1;
}

/* Gets ref: 1 with its bytes, 0 after a clear error, -1 on a hang or an
 * error without a word about what failed. */
static int get_one(rh_ref_t r, const void **p, size_t *len)
{
    rh_status_t st = rh_get(r, p, len, GET_MS);

    if (st == RH_OK) {
        values++;
        return 1;
    }
    if (st == RH_ERR_TIMEOUT || strstr(rh_last_error(), "rank") == NULL) {
        return -1;
    }
    errors++;
    return 0;
}

static int drive(void)
{
    int nodes = rh_num_nodes();
    rh_ref_t refs[100];
    rh_task_params_t params;
    const void *p;
    size_t len;
    int got;

    for (long base = 0; base < SMALL_TASKS; base += 100) {
        for (long i = 0; i < 100; i++) {
            uint64_t v = (uint64_t)(base + i);
            rh_arg_t a = rh_arg_bytes(&v, sizeof(v));

            params = rank_on_node(1 + (int)(i % (nodes - 1)), 0);
            CHECK(rh_remote("triple", &a, 1, &params, &refs[i]));
        }
        for (long i = 0; i < 100; i++) {
            uint64_t v;

            if ((got = get_one(refs[i], &p, &len)) < 0) {
                return fail("a small task's get hung or failed unclearly",
                            base + i);
            }
            if (got) {
                memcpy(&v, p, sizeof(v));
                if (len != sizeof(v) || v != 3 * (uint64_t)(base + i) + 1) {
                    return fail("a small task returned a wrong value",
                                base + i);
                }
                rh_release(refs[i]);
            }
            rh_release(refs[i]);
        }
    }
    for (long i = 0; i < BIG_TASKS; i++) {
        uint64_t v = (uint64_t)i;
        rh_arg_t a = rh_arg_bytes(&v, sizeof(v));

        params = rank_on_node(1 + (int)(i % (nodes - 1)), 0);
        CHECK(rh_remote("big", &a, 1, &params, &refs[0]));
        if ((got = get_one(refs[0], &p, &len)) < 0) {
            return fail("a large return's get hung or failed unclearly", i);
        }
        if (got) {
            for (size_t k = 0; k < BIG_LEN; k++) {
                if (((const uint8_t *)p)[k] != (uint8_t)(k * 13 + v)) {
                    return fail("a large return differs", i);
                }
            }
            rh_release(refs[0]);
        }
        rh_release(refs[0]);
    }
    for (long c = 0; c < CHAINS; c++) {
        uint64_t v = (uint64_t)c * 100;
        rh_arg_t a = rh_arg_bytes(&v, sizeof(v));
        rh_ref_t prev, r;

        params = rank_on_node(1 + (int)(c % (nodes - 1)), 0);
        CHECK(rh_remote("next", &a, 1, &params, &prev));
        for (int k = 1; k < CHAIN_LEN; k++) {
            a = rh_arg_ref(prev);
            params = rank_on_node((int)((c + k) % nodes), 0);
            CHECK(rh_remote("next", &a, 1, &params, &r));
            rh_release(prev);
            prev = r;
        }
        if ((got = get_one(prev, &p, &len)) < 0) {
            return fail("a chain's get hung or failed unclearly", c);
        }
        if (got) {
            memcpy(&v, p, sizeof(v));
            if (v != (uint64_t)c * 100 + CHAIN_LEN) {
                return fail("a chain ended with a wrong value", c);
            }
            rh_release(prev);
        }
        rh_release(prev);
    }
    return 0;
}

int main(void)
{
    int rc = 0;

    CHECK(rh_register("triple", triple, 1, 1));
    CHECK(rh_register("big", big, 1, 1));
    CHECK(rh_register("next", next, 1, 1));
    CHECK(rh_init(NULL, NULL, NULL));
    if (rh_rank() == 0) {
        if (rh_num_nodes() < 2) {
            fprintf(stderr, "send_faults: needs two nodes or more\n");
            rc = 1;
        } else {
            rc = drive();
        }
        if (rc == 0) {
            printf("SEND FAULTS OK: %ld values, %ld errors, %llu sends "
                   "lost\n", values, errors,
                   (unsigned long long)atomic_load(&rh_am_stats()->injected));
            fflush(stdout);
        }
    }
    CHECK(rh_finalize());
    return rc;
}
