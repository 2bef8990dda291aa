/*
 * Backpressure: rank 0 submits a burst of empty tasks to node 1 as fast as
 * it can, with a small RAYHPC_REMOTE_TASKS_MAX. Submitting waits for room,
 * so memory stays under a ceiling whatever the count, and every task runs
 * exactly once. Then the non-blocking flag: with every place taken by
 * tasks that wait for an argument, a non-blocking submit gets RH_ERR_BUSY
 * and a sentence, and loses nothing.
 *
 * usage: burst COUNT   2 ranks on 2 nodes; prints "BURST OK: COUNT tasks"
 *                      on rank 0 and "PEAK rank R: M MiB" on each rank;
 *                      a rank over CEILING_MIB fails.
 */
#include <stdint.h>
#include <string.h>

#include "rank_util.h"

#define CEILING_MIB 512
#define GATED 1024   /* RAYHPC_REMOTE_TASKS_MAX of the test: all held back
                    * for the non-blocking check */

static _Atomic uint64_t added, sum;
static _Atomic int gate_open;

/* The empty task of the burst: counts itself and its argument. */
static rh_status_t add(rh_task_ctx_t *ctx)
{
    uint64_t v;

    memcpy(&v, rh_task_arg(ctx, 0, NULL), sizeof(v));
    atomic_fetch_add(&added, 1);
    atomic_fetch_add(&sum, v);
    return RH_OK;
}

static rh_status_t total(rh_task_ctx_t *ctx)
{
    uint64_t out[2] = { atomic_load(&added), atomic_load(&sum) };

    (void)ctx;
    return rh_task_return(ctx, 0, out, sizeof(out));
}

/* Runs on rank 0 and ends once the driver opens the gate. */
static rh_status_t gate(rh_task_ctx_t *ctx)
{
    uint64_t one = 1;

    while (!atomic_load(&gate_open)) {
        rank_nap();
    }
    return rh_task_return(ctx, 0, &one, sizeof(one));
}

/* Peak resident memory of this process, from /proc/self/status. */
static long peak_mib(void)
{
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");

    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmHWM:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return kb < 0 ? -1 : kb / 1024;
}

static int fail(const char *what)
{
    fprintf(stderr, "burst: %s (%s)\n", what, rh_last_error());
    return 1;
}

static int wait_all_answered(void)
{
    double end = rank_now() + 120;
    rh_stats_t st;

    do {
        CHECK(rh_stats(&st));
        if (st.tasks_remote == 0) {
            return 0;
        }
        rank_nap();
    } while (rank_now() < end);
    return -1;
}

static int drive(uint64_t count)
{
    rh_task_params_t params = rank_on_node(1, 0);
    rh_task_params_t here = rank_on_node(0, 0);
    uint64_t got[2], expect = 0, extra = 0;
    rh_ref_t r, g, held[GATED];
    rh_arg_t a;
    const void *p;
    size_t len;
    rh_status_t st;
    double t0 = rank_now();

    for (uint64_t i = 0; i < count; i++) {
        a = rh_arg_bytes(&i, sizeof(i));
        CHECK(rh_remote("add", &a, 1, &params, NULL));
        expect += i;
    }
    if (wait_all_answered() != 0) {
        return fail("the burst's tasks were not all answered");
    }
    printf("burst of %llu tasks answered in %.2f s\n",
           (unsigned long long)count, rank_now() - t0);
    /* Non-blocking: every place taken by a task that waits for gate. */
    CHECK(rh_remote("gate", NULL, 0, &here, &g));
    a = rh_arg_ref(g);
    for (int i = 0; i < GATED; i++) {
        CHECK(rh_remote("total", &a, 1, &params, &held[i]));
    }
    params.field_mask |= RH_TASK_PARAM_FIELD_FLAGS;
    params.flags = RH_TASK_FLAG_NONBLOCK;
    a = rh_arg_bytes(&extra, sizeof(extra));
    st = rh_remote("add", &a, 1, &params, NULL);
    atomic_store(&gate_open, 1);
    if (st != RH_ERR_BUSY ||
        strstr(rh_last_error(), "RAYHPC_REMOTE_TASKS_MAX") == NULL) {
        return fail("a non-blocking submit past the bound was not refused");
    }
    for (int i = 0; i < GATED; i++) {
        CHECK(rh_get(held[i], &p, &len, 60000));
        rh_release(held[i]);
        rh_release(held[i]);
    }
    rh_release(g);
    /* Room again: the same submit goes through. */
    extra = 1;
    CHECK(rh_remote("add", &a, 1, &params, NULL));
    if (wait_all_answered() != 0) {
        return fail("the last task was not answered");
    }
    params.field_mask &= ~(uint64_t)RH_TASK_PARAM_FIELD_FLAGS;
    CHECK(rh_remote("total", NULL, 0, &params, &r));
    CHECK(rh_get(r, &p, &len, 60000));
    memcpy(got, p, sizeof(got));
    if (got[0] != count + 1 || got[1] != expect + 1) {
        fprintf(stderr, "burst: node 1 ran %llu tasks summing to %llu; "
                "expected %llu and %llu\n", (unsigned long long)got[0],
                (unsigned long long)got[1], (unsigned long long)count + 1,
                (unsigned long long)expect + 1);
        return 1;
    }
    rh_release(r);
    rh_release(r);
    printf("BURST OK: %llu tasks\n", (unsigned long long)count);
    return 0;
}

int main(int argc, char **argv)
{
    uint64_t count = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    int rc = 0, rank;
    long peak;

    CHECK(rh_register("add", add, 1, 0));
    CHECK(rh_register("total", total, -1, 1));
    CHECK(rh_register("gate", gate, 0, 1));
    CHECK(rh_init(&argc, &argv, NULL));
    rank = rh_rank();
    if (rank == 0) {
        rc = rh_num_nodes() < 2 ? fail("needs two nodes") : drive(count);
    }
    fflush(stdout);
    if (rh_finalize() != RH_OK && rc == 0) {
        rc = 1;
    }
    peak = peak_mib();
    printf("PEAK rank %d: %ld MiB (ceiling %d MiB)\n", rank, peak,
           CEILING_MIB);
    if (peak < 0 || peak >= CEILING_MIB) {
        rc = 1;
    }
    return rc;
}
