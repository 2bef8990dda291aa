/*
 * Figures of one rank: tasks and objects.
 *
 *   local_tasks          empty tasks per second, submit N then get all, all
 *                        the rank's workers; local_tasks/starpu: StarPU's
 *                        empty tasks with as many CPU workers, same run
 *   local_tasks_chain    the same for a chain of N dependent tasks
 *   local_tasks_lineage  local_tasks with lineage kept (the default);
 *                        local_tasks_lineage/nolineage: against
 *                        RAYHPC_LINEAGE_MAX_BYTES=0, same run, best of 4
 *                        each, taken in both orders (1.0: lineage costs
 *                        local tasks nothing; the remote side is
 *                        remote_tasks_ft)
 *   put_bw               rh_put of a 256 MiB object; put_bw/memcpy: a warm
 *                        memcpy of the same size
 *   get_lat              rh_get + rh_release of a sealed object, in us
 *   small_ops            put + get + release of 64 B objects per second
 *   task_scaling_N       per-task time and memory for N = 10K .. 10M
 *   task_waiting_N       N tasks that each ask for all the rank's CPUs
 *                        wait for resources while a first one holds them;
 *                        then they run one at a time: wall and CPU time per
 *                        task from the first release to the last get
 *                        (N = 10K, 100K)
 */
#include <malloc.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "perf.h"
#include "rayhpc.h"
#include "ref_starpu.h"
#include "sched/pool.h"
#include "sched/resources.h"
#include "base/config.h"
#include "core/core.h"
#include "core/lineage.h"

static rh_status_t empty(rh_task_ctx_t *ctx)
{
    (void)ctx;
    return RH_OK;
}

static rh_status_t pass(rh_task_ctx_t *ctx)
{
    (void)ctx;
    return RH_OK;
}

static int setup_tasks(void)
{
    return rh_register("perf_empty", empty, 0, 1) ||
           rh_register("perf_pass", pass, 1, 1);
}

/* Heap bytes in use (all arenas): what pending tasks cost, unlike RSS,
 * which a heap that kept freed pages hides. */
static long rss_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();

    return (long)(mi.uordblks + mi.hblkhd);
}

/* Submits n empty tasks, then gets (waits for) all of them. */
static double run_empty(long n, rh_ref_t *refs, long *rss_peak)
{
    double t0 = perf_now();
    const void *p;
    size_t len;

    for (long i = 0; i < n; i++) {
        if (rh_remote("perf_empty", NULL, 0, NULL, &refs[i]) != RH_OK) {
            fprintf(stderr, "rayhpc-perf: %s\n", rh_last_error());
            exit(1);
        }
    }
    if (rss_peak != NULL) {
        *rss_peak = rss_bytes();
    }
    for (long i = 0; i < n; i++) {
        rh_get(refs[i], &p, &len, RH_TIMEOUT_INFINITE);
        rh_release(refs[i]);
        rh_release(refs[i]);
    }
    return perf_now() - t0;
}

static double run_chain(long n)
{
    rh_ref_t prev, next;
    rh_arg_t arg;
    const void *p;
    size_t len;
    double t0 = perf_now();

    rh_remote("perf_empty", NULL, 0, NULL, &prev);
    for (long i = 1; i < n; i++) {
        arg = rh_arg_ref(prev);
        rh_remote("perf_pass", &arg, 1, NULL, &next);
        rh_release(prev);
        prev = next;
    }
    rh_get(prev, &p, &len, RH_TIMEOUT_INFINITE);
    rh_release(prev);
    rh_release(prev);
    return perf_now() - t0;
}

static void figure_local_tasks(int (*want)(const char *))
{
    const long n = 1000000;
    rh_ref_t *refs = malloc((size_t)n * sizeof(*refs));
    int workers = rh_pool_num_workers(rh_core_pool());
    double best = 1e30, best_chain = 1e30, ref, ref_chain;
    char err[256];

    if (!want("local_tasks") && !want("local_tasks_chain")) {
        free(refs);
        return;
    }
    for (int trial = 0; trial < 3; trial++) {
        perf_keep_best(&best, run_empty(n, refs, NULL), 1);
        perf_keep_best(&best_chain, run_chain(n), 1);
    }
    free(refs);
    ref = rh_ref_starpu_tasks_per_sec(workers, 200000, 0, err, sizeof(err));
    ref_chain = rh_ref_starpu_tasks_per_sec(workers, 200000, 1, err,
                                            sizeof(err));
    if (ref < 0 || ref_chain < 0) {
        perf_print("local_tasks", "", n / best, "tasks/s");
        perf_print("local_tasks_chain", "", n / best_chain, "tasks/s");
        printf("# local_tasks/starpu skipped: %s\n", err);
        return;
    }
    perf_report("local_tasks", "", n / best, ref, "tasks/s", "starpu");
    perf_report("local_tasks_chain", "", n / best_chain, ref_chain,
                "tasks/s", "starpu");
}

static void figure_local_tasks_lineage(int (*want)(const char *))
{
    const long n = 500000;
    rh_ref_t *refs;
    double kept = 1e30, none = 1e30;

    if (!want("local_tasks_lineage") ||
        (refs = malloc((size_t)n * sizeof(*refs))) == NULL) {
        return;
    }
    /* A run not counted, then in turn, one first and then the other
     * first: the second run of a pair was the faster whichever it was
     * (up to 1.4x here), which one order only would count as lineage's. */
    (void)run_empty(n, refs, NULL);
    for (int trial = 0; trial < 4; trial++) {
        for (int k = 0; k < 2; k++) {
            int keep = (k + trial) % 2 == 0;

            rh_lineage_set_max(keep ? rh_cfg.lineage_max_bytes : 0);
            perf_keep_best(keep ? &kept : &none, run_empty(n, refs, NULL),
                           1);
        }
    }
    rh_lineage_set_max(rh_cfg.lineage_max_bytes);
    free(refs);
    printf("# local_tasks_lineage: %.0f tasks/s with lineage kept, %.0f "
           "with RAYHPC_LINEAGE_MAX_BYTES=0\n", n / kept, n / none);
    perf_print("local_tasks_lineage", "", n / kept, "tasks/s");
    perf_print_ratio("local_tasks_lineage", "", "nolineage", none / kept);
}

static void figure_put_bw(int (*want)(const char *))
{
    const size_t size = 256u << 20;
    char *src = malloc(size), *dst = malloc(size);
    double best = 1e30, best_ref = 1e30;
    rh_ref_t r;

    if (!want("put_bw")) {
        free(src);
        free(dst);
        return;
    }
    memset(src, 1, size);
    memset(dst, 2, size);   /* warm: the reference pays no first touch */
    for (int trial = 0; trial < 5; trial++) {
        double t0 = perf_now();

        memcpy(dst, src, size);
        perf_keep_best(&best_ref, perf_now() - t0, 1);
        t0 = perf_now();
        if (rh_put(src, size, &r) != RH_OK) {
            fprintf(stderr, "rayhpc-perf: put_bw: %s\n", rh_last_error());
            break;
        }
        perf_keep_best(&best, perf_now() - t0, 1);
        rh_release(r);
    }
    perf_report("put_bw", "", size / best / (1 << 30),
                size / best_ref / (1 << 30), "GiB/s", "memcpy");
    free(src);
    free(dst);
}

static void figure_get_lat(int (*want)(const char *))
{
    const long n = 1000000;
    int64_t v = 42;
    rh_ref_t r;
    const void *p;
    size_t len;
    double t0;

    if (!want("get_lat") || rh_put(&v, sizeof(v), &r) != RH_OK) {
        return;
    }
    t0 = perf_now();
    for (long i = 0; i < n; i++) {
        rh_get(r, &p, &len, 0);
        rh_release(r);
    }
    perf_print("get_lat", "", (perf_now() - t0) / n * 1e6, "us");
    rh_release(r);
}

static void figure_small_ops(int (*want)(const char *))
{
    const long n = 1000000;
    char buf[64] = "small";
    rh_ref_t r;
    const void *p;
    size_t len;
    double t0;

    if (!want("small_ops")) {
        return;
    }
    t0 = perf_now();
    for (long i = 0; i < n; i++) {
        rh_put(buf, sizeof(buf), &r);
        rh_get(r, &p, &len, 0);
        rh_release(r);
        rh_release(r);
    }
    perf_print("small_ops", "", n / (perf_now() - t0), "ops/s");
}

static void figure_task_scaling(int (*want)(const char *))
{
    static const long sizes[] = { 10000, 100000, 1000000, 10000000 };
    static const char *const names[] = { "task_scaling_10K",
                                         "task_scaling_100K",
                                         "task_scaling_1M",
                                         "task_scaling_10M" };

    for (int i = 0; i < 4; i++) {
        long n = sizes[i], rss0, rss1;
        rh_ref_t *refs;
        double t;

        if (!want(names[i])) {
            continue;
        }
        refs = malloc((size_t)n * sizeof(*refs));
        memset(refs, 0, (size_t)n * sizeof(*refs));
        rss0 = rss_bytes();   /* after refs: the caller's array is not ours */
        t = run_empty(n, refs, &rss1);
        printf("%s %.4g us/task %.0f B/task\n", names[i], t / n * 1e6,
               (double)(rss1 - rss0) / n);
        fflush(stdout);
        free(refs);
    }
}

static _Atomic int cpus_held;

/* The ledger hands the driver the CPUs the last tasks still held. */
static void cpus_given(rh_res_waiter_t *w)
{
    (void)w;
    atomic_store(&cpus_held, 1);
}

static double cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

/* Holds every CPU of the rank in its ledger (as a running task would),
 * submits n tasks that each ask for all of them and waits until all n wait
 * in the ledger; then lets go and gets them all. Returns the wall time
 * from the release, the CPU time in *cpu. */
static double run_waiting(long n, rh_ref_t *refs, double *cpu)
{
    rh_task_params_t params;
    double t0;
    const void *p;
    size_t len;
    rh_res_req_t all;
    rh_res_waiter_t me = { .retry = cpus_given };

    memset(&params, 0, sizeof(params));
    params.field_mask = RH_TASK_PARAM_FIELD_NUM_CPUS;
    params.num_cpus = rh_pool_num_workers(rh_core_pool());
    if (rh_resources_parse(NULL, params.num_cpus, &all) != RH_OK) {
        fprintf(stderr, "rayhpc-perf: %s\n", rh_last_error());
        exit(1);
    }
    /* The tasks of a run before may still be letting theirs go. */
    atomic_store(&cpus_held, 0);
    if (rh_resources_acquire(&all, &me)) {
        atomic_store(&cpus_held, 1);
    }
    while (!atomic_load(&cpus_held)) {
        sched_yield();
    }
    for (long i = 0; i < n; i++) {
        if (rh_remote("perf_empty", NULL, 0, &params, &refs[i]) != RH_OK) {
            fprintf(stderr, "rayhpc-perf: %s\n", rh_last_error());
            exit(1);
        }
    }
    while (rh_resources_waiting() < (size_t)n) {
        sched_yield();
    }
    t0 = perf_now();
    *cpu = cpu_seconds();
    rh_resources_release(&all);
    for (long i = 0; i < n; i++) {
        rh_get(refs[i], &p, &len, RH_TIMEOUT_INFINITE);
        rh_release(refs[i]);
        rh_release(refs[i]);
    }
    *cpu = cpu_seconds() - *cpu;
    return perf_now() - t0;
}

static void figure_task_waiting(int (*want)(const char *))
{
    static const long sizes[] = { 10000, 100000 };
    static const char *const names[] = { "task_waiting_10K",
                                         "task_waiting_100K" };

    for (int i = 0; i < 2; i++) {
        long n = sizes[i];
        rh_ref_t *refs;
        double wall, cpu;

        if (!want(names[i])) {
            continue;
        }
        refs = calloc((size_t)n, sizeof(*refs));
        wall = run_waiting(n, refs, &cpu);
        printf("%s %.4g us/task %.4g us_cpu/task\n", names[i],
               wall / n * 1e6, cpu / n * 1e6);
        fflush(stdout);
        free(refs);
    }
}

/* The report's curve: empty tasks per second against their number, ours
 * and StarPU's with as many workers (StarPU up to 1 M: 10 M takes it
 * minutes). */
static void series_tasks(int quick)
{
    static const long full[] = { 10000, 100000, 1000000, 10000000 };
    static const long short_[] = { 1000, 10000 };
    const long *sizes = quick ? short_ : full;
    int count = quick ? 2 : 4;
    int workers = rh_pool_num_workers(rh_core_pool());
    char err[256];

    for (int i = 0; i < count; i++) {
        long n = sizes[i];
        rh_ref_t *refs = calloc((size_t)n, sizeof(*refs));
        double best = 1e30, ref;

        if (refs == NULL) {
            return;
        }
        for (int trial = 0; trial < (n >= 10000000 ? 1 : 2); trial++) {
            perf_keep_best(&best, run_empty(n, refs, NULL), 1);
        }
        free(refs);
        perf_print_point("tasks", "ours", (double)n, (double)n / best);
        if (n > 1000000) {
            continue;
        }
        ref = rh_ref_starpu_tasks_per_sec(workers, n, 0, err, sizeof(err));
        if (ref < 0) {
            printf("# series tasks: StarPU skipped: %s\n", err);
        } else {
            perf_print_point("tasks", "starpu", (double)n, ref);
        }
    }
}

static int run_tasks(const perf_group_t *g, const char *suffix,
                     int (*want)(const char *figure))
{
    (void)g;
    (void)suffix;
    if (perf_series()) {
        series_tasks(perf_series() == 1);
    }
    figure_local_tasks(want);
    figure_local_tasks_lineage(want);
    figure_put_bw(want);
    figure_get_lat(want);
    figure_small_ops(want);
    figure_task_scaling(want);
    figure_task_waiting(want);   /* last: it turns resource counting on */
    return 0;
}

static const char *const task_figures[] = {
    "local_tasks", "local_tasks_chain", "local_tasks_lineage", "put_bw",
    "get_lat", "small_ops",
    "task_scaling_10K", "task_scaling_100K", "task_scaling_1M",
    "task_scaling_10M", "task_waiting_10K", "task_waiting_100K", NULL
};
static const char *const task_env[] = { "RAYHPC_STORE_SIZE=1G", NULL };

const perf_group_t perf_group_tasks = {
    "tasks", task_figures, 1, task_env, 0, 0, setup_tasks, run_tasks
};
