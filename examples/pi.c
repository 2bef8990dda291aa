/*
 * Flagship example: Monte Carlo pi as a map-reduce of remote functions.
 *
 *   rayhpc-run -n 2 ./examples/pi [TASKS] [SAMPLES_PER_TASK]
 *
 * Rank 0 (the driver) submits TASKS "sample" tasks, each throwing darts at
 * the unit square, then reduces their counts with a tree of "add" tasks
 * that take the sample tasks' futures as arguments: every task starts as
 * soon as its inputs exist, and the driver only waits for the root. A
 * first, smaller round warms up (workers started, connections made) and is
 * not timed. The count is checked against the same darts thrown serially.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rayhpc.h>

#include "example.h"

typedef struct {
    uint64_t seed;
    uint64_t samples;
} sample_arg_t;

/* Darts of seed that land in the quarter circle, out of samples. */
static uint64_t darts(uint64_t seed, uint64_t samples)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1, hits = 0;

    for (uint64_t i = 0; i < samples; i++) {
        double u, v;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        u = (double)(x >> 11) * 0x1.0p-53;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v = (double)(x >> 11) * 0x1.0p-53;
        hits += u * u + v * v <= 1.0;
    }
    return hits;
}

static rh_status_t sample(rh_task_ctx_t *ctx)
{
    sample_arg_t a;
    uint64_t hits;

    memcpy(&a, rh_task_arg(ctx, 0, NULL), sizeof(a));
    hits = darts(a.seed, a.samples);
    return rh_task_return(ctx, 0, &hits, sizeof(hits));
}

/* Sum of its uint64 arguments. */
static rh_status_t add(rh_task_ctx_t *ctx)
{
    uint64_t total = 0, v;

    for (int i = 0; i < rh_task_nargs(ctx); i++) {
        memcpy(&v, rh_task_arg(ctx, i, NULL), sizeof(v));
        total += v;
    }
    return rh_task_return(ctx, 0, &total, sizeof(total));
}

/* Reduces refs[0..n) to one ref with a tree of "add" tasks, 16 wide. */
static rh_status_t reduce(rh_ref_t *refs, int n, rh_ref_t *root)
{
    rh_arg_t args[16];
    rh_status_t st;

    while (n > 1) {
        int m = 0;

        for (int i = 0; i < n; i += 16) {
            int k = n - i < 16 ? n - i : 16;

            for (int j = 0; j < k; j++) {
                args[j] = rh_arg_ref(refs[i + j]);
            }
            st = rh_remote("add", args, k, NULL, &refs[m]);
            for (int j = 0; j < k; j++) {
                rh_release(args[j].ref);   /* the task holds what it needs */
            }
            if (st != RH_OK) {
                return st;
            }
            m++;
        }
        n = m;
    }
    *root = refs[0];
    return RH_OK;
}

/* Throws tasks x per_task darts; the darts inside the quarter circle in
 * *hits. */
static rh_status_t throw_darts(rh_ref_t *refs, int tasks, uint64_t per_task,
                               uint64_t *hits)
{
    rh_ref_t root;
    const void *p;
    size_t len;
    rh_status_t st;

    for (int i = 0; i < tasks; i++) {
        sample_arg_t a = { (uint64_t)i + 1, per_task };
        rh_arg_t arg = rh_arg_bytes(&a, sizeof(a));

        st = rh_remote("sample", &arg, 1, NULL, &refs[i]);
        if (st != RH_OK) {
            return st;
        }
    }
    st = reduce(refs, tasks, &root);
    if (st != RH_OK) {
        return st;
    }
    st = rh_get(root, &p, &len, RH_TIMEOUT_INFINITE);
    if (st == RH_OK) {
        memcpy(hits, p, sizeof(*hits));
        rh_release(root);
    }
    rh_release(root);
    return st;
}

int main(int argc, char **argv)
{
    int tasks;
    uint64_t per_task;
    rh_ref_t *refs;
    uint64_t hits, serial = 0;
    double t;
    int rc;

    if (rh_register("sample", sample, 1, 1) != RH_OK ||
        rh_register("add", add, -1, 1) != RH_OK ||
        rh_init(&argc, &argv, NULL) != RH_OK) {
        fprintf(stderr, "pi: %s\n", rh_last_error());
        return 1;
    }
    if (rh_rank() != 0) {
        /* Other ranks serve; tasks reach them once they are forwarded
         * between nodes. */
        return rh_finalize() == RH_OK ? 0 : 1;
    }
    tasks = (int)ex_arg(argc, argv, 1, 400, 1 << 24);
    per_task = (uint64_t)ex_arg(argc, argv, 2, 1000000, 1L << 40);
    if (tasks == 0 || per_task == 0) {
        rh_finalize();
        return 1;
    }
    refs = calloc((size_t)tasks, sizeof(*refs));
    if (refs == NULL ||
        throw_darts(refs, tasks < 16 ? tasks : 16, 1000, &hits) != RH_OK) {
        fprintf(stderr, "pi: %s\n", refs ? rh_last_error() : "no memory");
        return 1;
    }
    t = ex_now();
    if (throw_darts(refs, tasks, per_task, &hits) != RH_OK) {
        fprintf(stderr, "pi: %s\n", rh_last_error());
        return 1;
    }
    t = ex_now() - t;
    ex_note_oversubscribed("pi");
    printf("pi ~ %.6f from %" PRIu64 " M darts: %d sample tasks and their "
           "tree of add tasks on rank 0 of %d, after a warm-up: %.3f s, "
           "%.0f tasks/s, %.1f M darts/s\n",
           4.0 * (double)hits / ((double)per_task * tasks),
           per_task * (uint64_t)tasks / 1000000, tasks, rh_size(), t,
           tasks / t, (double)per_task * tasks / t / 1e6);
    free(refs);
    for (int i = 0; i < tasks; i++) {
        serial += darts((uint64_t)i + 1, per_task);
    }
    if (serial == hits) {
        printf("PI OK: %" PRIu64 " darts in the circle, as thrown serially\n",
               hits);
        rc = 0;
    } else {
        printf("PI WRONG: %" PRIu64 " darts in the circle, %" PRIu64 " "
               "thrown serially\n", hits, serial);
        rc = 1;
    }
    return rh_finalize() == RH_OK ? rc : 1;
}
