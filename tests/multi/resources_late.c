/*
 * One-CPU tasks that started before the rank's ledger counted anything
 * (no task had asked for more than a CPU yet) still hold their CPU once
 * it counts.
 *
 * usage: resources_late late|lend
 *   late: a one-CPU task runs; then a task asking for all the rank's CPUs
 *         is submitted. It must wait in the ledger until the first one
 *         ends, never run beside it: the first one goes on until it sees
 *         the big one waiting (or, wrongly, running).
 *   lend: a one-CPU task that started uncounted submits a task asking for
 *         all the CPUs and waits for it: waiting, it lends its CPU, so the
 *         child runs (else both would wait for each other).
 * Either way every CPU is free again at the end. Prints "LATE OK".
 */
#include <sched.h>
#include <string.h>

#include "core/core.h"
#include "rank_util.h"
#include "sched/pool.h"
#include "sched/resources.h"

#define SPIN_S 30.0   /* a failing run ends, it does not hang */

static int workers;
static _Atomic int in_use, over, big_started;
static _Atomic long small_started;

static void take(int cpus)
{
    if (atomic_fetch_add(&in_use, cpus) + cpus > workers) {
        atomic_store(&over, 1);
    }
}

static rh_status_t big(rh_task_ctx_t *ctx)
{
    int64_t v = 42;

    take(workers);
    atomic_store(&big_started, 1);
    atomic_fetch_sub(&in_use, workers);
    return rh_task_return(ctx, 0, &v, sizeof(v));
}

/* Runs until the big task is in the ledger's queue or has started. */
static rh_status_t small(rh_task_ctx_t *ctx)
{
    double end = rank_now() + SPIN_S;
    int64_t v = 7;

    take(1);
    atomic_store(&small_started, 1);
    while (rh_resources_waiting() == 0 && !atomic_load(&big_started)) {
        if (rank_now() > end) {
            atomic_fetch_sub(&in_use, 1);
            return rh_task_fail(ctx, "the big task neither waited nor ran "
                                "within %.0f s", SPIN_S);
        }
        sched_yield();
    }
    atomic_fetch_sub(&in_use, 1);
    return rh_task_return(ctx, 0, &v, sizeof(v));
}

static rh_task_params_t all_cpus(void)
{
    rh_task_params_t p = { 0 };

    p.field_mask = RH_TASK_PARAM_FIELD_NUM_CPUS;
    p.num_cpus = workers;
    return p;
}

static int64_t get_i64(rh_ref_t ref)
{
    const void *p;
    size_t len;
    int64_t v = -1;

    if (rh_get(ref, &p, &len, (int64_t)(SPIN_S * 1000)) != RH_OK) {
        fprintf(stderr, "rank %d: get failed: %s\n", rh_rank(),
                rh_last_error());
        rh_release(ref);
        return -1;
    }
    if (len == sizeof(v)) {
        memcpy(&v, p, sizeof(v));
    }
    rh_release(ref);
    rh_release(ref);
    return v;
}

/* Submits the big task from inside a task that started uncounted and
 * waits for it there. */
static rh_status_t parent(rh_task_ctx_t *ctx)
{
    rh_task_params_t p = all_cpus();
    rh_ref_t ref;
    int64_t v;

    if (rh_remote("big", NULL, 0, &p, &ref) != RH_OK) {
        return rh_task_fail(ctx, "submit: %s", rh_last_error());
    }
    v = get_i64(ref);
    if (v != 42) {
        return rh_task_fail(ctx, "the big child answered %lld",
                            (long long)v);
    }
    return rh_task_return(ctx, 0, &v, sizeof(v));
}

static int run_late(void)
{
    rh_task_params_t p = all_cpus();
    rh_ref_t small_ref, big_ref;
    int64_t s, b;

    CHECK(rh_remote("small", NULL, 0, NULL, &small_ref));
    if (rank_wait_count(&small_started, 1, SPIN_S) != 0) {
        fprintf(stderr, "the one-CPU task never started\n");
        return -1;
    }
    CHECK(rh_remote("big", NULL, 0, &p, &big_ref));
    s = get_i64(small_ref);
    b = get_i64(big_ref);
    if (s != 7 || b != 42) {
        fprintf(stderr, "answers %lld and %lld\n", (long long)s,
                (long long)b);
        return -1;
    }
    return 0;
}

static int run_lend(void)
{
    rh_ref_t ref;

    CHECK(rh_remote("parent", NULL, 0, NULL, &ref));
    if (get_i64(ref) != 42) {
        fprintf(stderr, "the parent did not answer 42\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "late";
    char free_now[256], want[32];
    size_t wlen;
    int bad;

    CHECK(rh_register("big", big, 0, 1));
    CHECK(rh_register("small", small, 0, 1));
    CHECK(rh_register("parent", parent, 0, 1));
    CHECK(rh_init(&argc, &argv, NULL));
    workers = rh_pool_num_workers(rh_core_pool());
    bad = strcmp(mode, "lend") == 0 ? run_lend() : run_late();
    /* A task gives its CPU back just after its returns are out. */
    wlen = (size_t)snprintf(want, sizeof(want), "CPU=%d", workers);
    for (double end = rank_now() + SPIN_S;;) {
        rh_resources_format(free_now, sizeof(free_now));
        if ((strncmp(free_now, want, wlen) == 0 &&
             (free_now[wlen] == ' ' || free_now[wlen] == '\0')) ||
            rank_now() > end) {
            break;
        }
        rank_nap();
    }
    if (bad == 0 && (strncmp(free_now, want, wlen) != 0 ||
                     (free_now[wlen] != ' ' && free_now[wlen] != '\0'))) {
        fprintf(stderr, "rank %d: free at the end: %s, not %s\n", rh_rank(),
                free_now, want);
        bad = 1;
    }
    if (bad || atomic_load(&over)) {
        fprintf(stderr, "rank %d: %s\n", rh_rank(), atomic_load(&over) ?
                "more CPUs held at once than the rank has" : "failed");
        return 1;
    }
    printf("LATE OK rank %d: %s on %d workers\n", rh_rank(), mode, workers);
    fflush(stdout);
    CHECK(rh_finalize());
    return 0;
}
