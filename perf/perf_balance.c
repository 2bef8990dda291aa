/*
 * How evenly DEFAULT tasks spread (four ranks on four virtual nodes, one
 * worker each):
 *
 *   balance_dev_pct      rank 0 submits BALANCE_TASKS busy tasks of
 *                        BALANCE_TASK_US each with the DEFAULT strategy,
 *                        each returning the node it ran on, then gets them
 *                        all: the largest |share - mean| / mean over the
 *                        nodes, in percent (0: perfectly even)
 *   balance_tasks        the tasks per second of that run, submit to last
 *                        get (the ideal is nodes * 1e6 / BALANCE_TASK_US)
 *
 * No reference: the ideal is known.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/completion.h"
#include "perf.h"
#include "rayhpc.h"
#include "transport/am.h"

#define BALANCE_DONE     (RH_AM_ID_PERF_FIRST + 7)
#define BALANCE_TASKS    4000
#define BALANCE_TASK_US  100
#define BALANCE_TIMEOUT  120000   /* ms */

/* Ranks other than 0 stay out of rh_finalize until rank 0 is done, so that
 * they are plain, available nodes for the whole run. */
static rh_completion_t balance_done;

static rh_status_t on_done(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    (void)msg;
    rh_completion_signal(&balance_done, RH_OK);
    return RH_OK;
}

static double now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Spins for the nanoseconds of its argument; returns rh_node_id(). */
static rh_status_t busy(rh_task_ctx_t *ctx)
{
    const void *a = rh_task_arg(ctx, 0, NULL);
    uint64_t ns;
    double end;
    int32_t node = rh_node_id();

    memcpy(&ns, a, sizeof(ns));
    end = now_ns() + (double)ns;
    while (now_ns() < end) {
        rh_cpu_relax();
    }
    return rh_task_return(ctx, 0, &node, sizeof(node));
}

static int setup_balance(void)
{
    rh_completion_init(&balance_done);
    return rh_am_register(BALANCE_DONE, 0, 0, on_done, NULL) ||
           rh_register("perf_busy", busy, 1, 1);
}

/* Rank 0: runs the tasks, fills per-node counts; the seconds it took or
 * < 0 on failure. */
static double run_busy(long n, long *count, int nodes)
{
    rh_ref_t *refs = malloc((size_t)n * sizeof(*refs));
    uint64_t ns = BALANCE_TASK_US * 1000ull;
    rh_arg_t arg = rh_arg_bytes(&ns, sizeof(ns));
    const void *p;
    size_t len;
    int32_t node;
    long i, submitted = 0;
    double t0 = perf_now(), t = -1;

    for (i = 0; i < n; i++, submitted++) {
        if (rh_remote("perf_busy", &arg, 1, NULL, &refs[i]) != RH_OK) {
            fprintf(stderr, "rayhpc-perf: balance: rh_remote: %s\n",
                    rh_last_error());
            goto out;
        }
    }
    for (i = 0; i < n; i++) {
        rh_status_t s = rh_get(refs[i], &p, &len, BALANCE_TIMEOUT);

        if (s != RH_OK) {
            fprintf(stderr, "rayhpc-perf: balance: rh_get of task %ld: %s: "
                    "%s\n", i, rh_status_string(s), rh_last_error());
            goto out;
        }
        if (len != sizeof(node)) {
            fprintf(stderr, "rayhpc-perf: balance: task %ld returned %zu "
                    "bytes\n", i, len);
            rh_release(refs[i]);
            goto out;
        }
        memcpy(&node, p, sizeof(node));
        rh_release(refs[i]);
        if (node < 0 || node >= nodes) {
            fprintf(stderr, "rayhpc-perf: balance: task %ld ran on node "
                    "%d\n", i, (int)node);
            goto out;
        }
        count[node]++;
    }
    t = perf_now() - t0;
out:
    for (i = 0; i < submitted; i++) {
        rh_release(refs[i]);
    }
    free(refs);
    return t;
}

static int run_balance(const perf_group_t *g, const char *suffix,
                       int (*want)(const char *figure))
{
    int nodes = rh_num_nodes();
    long *count;
    double t, mean, dev = 0;

    (void)g;
    if (!want("balance_dev_pct") && !want("balance_tasks")) {
        return 0;
    }
    if (rh_rank() != 0) {
        /* Serve tasks until rank 0 has them all. */
        rh_completion_wait(&balance_done, -1);
        return 0;
    }
    count = calloc((size_t)nodes, sizeof(*count));
    t = run_busy(BALANCE_TASKS, count, nodes);
    for (int r = 1; r < rh_size(); r++) {
        rh_am_send_wait((uint32_t)r, BALANCE_DONE, NULL, 0, NULL, 0);
    }
    if (t < 0) {
        free(count);
        return 1;
    }
    mean = (double)BALANCE_TASKS / nodes;
    printf("# balance: %d tasks of %d us on %d nodes:", BALANCE_TASKS,
           BALANCE_TASK_US, nodes);
    for (int i = 0; i < nodes; i++) {
        double d = ((double)count[i] - mean) / mean * 100;

        printf(" %ld", count[i]);
        perf_keep_best(&dev, d < 0 ? -d : d, 0);
    }
    printf("\n");
    for (int i = 0; perf_series() && i < nodes; i++) {
        perf_print_point("balance", "tasks", i, (double)count[i]);
        perf_print_point("balance", "mean", i, mean);
    }
    /* One run gives both: print both whichever was asked for. */
    perf_print("balance_dev_pct", suffix, dev, "%");
    perf_print("balance_tasks", suffix, BALANCE_TASKS / t, "tasks/s");
    free(count);
    return 0;
}

static const char *const balance_figures[] = { "balance_dev_pct",
                                               "balance_tasks", NULL };
static const char *const balance_env[] = { "RAYHPC_NUM_WORKERS=1", NULL };

const perf_group_t perf_group_balance = {
    "balance", balance_figures, 4, balance_env, 0, 4, setup_balance,
    run_balance
};
