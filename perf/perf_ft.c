/*
 * What fault tolerance costs.
 *
 *   recovery             ms from a rank's death to a lost 64 MiB object
 *                        (a task's return, on that rank's node only)
 *                        readable again on rank 0, rebuilt from lineage;
 *                        5 ranks on 5 nodes, the victim ends abruptly.
 *                        recovery/rerun: that time less the failure
 *                        detection (measured: death to rank 0 seeing it),
 *                        over the first run of the task with its get, same
 *                        run (1.0: the rebuild costs one more run)
 *   actor_restart        ms from the death of an actor's rank (an actor
 *                        with max_restarts, on the node of rank 4 by
 *                        soft affinity) to the first call answered by the
 *                        restarted actor, on rank 0 (its owner), calls
 *                        made again while they fail; one trial, same run
 *                        as recovery (rank 4 is the victim left)
 *   remote_tasks_ft      empty tasks per second forwarded to node 1 (as
 *                        remote_tasks) with lineage kept (the default);
 *                        remote_tasks_ft/nolineage: against lineage only
 *                        while a task runs (RAYHPC_LINEAGE_MAX_BYTES=0),
 *                        remote_tasks_ft/noretry: against tasks that ask
 *                        for max_retries 0, which record nothing (the cost
 *                        before fault tolerance), same run; each ratio
 *                        the median of 10 rounds' (one run of each
 *                        variant a round, in turn)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/config.h"
#include "core/core.h"
#include "core/lineage.h"
#include "perf.h"
#include "rayhpc.h"
#include "transport/am.h"
#include "transport/transport.h"

#define FT_OBJ   ((size_t)64 << 20)
#define FT_DIE   (RH_AM_ID_TEST_FIRST + 20)
#define FT_VICTIMS 3   /* ranks 1..3, one per trial */

static rh_status_t ft_make(rh_task_ctx_t *ctx)
{
    void *p;
    rh_status_t st = rh_task_return_alloc(ctx, 0, FT_OBJ, &p);

    if (st == RH_OK) {
        memset(p, 0x5a, FT_OBJ);
    }
    return st;
}

static rh_status_t ft_empty(rh_task_ctx_t *ctx)
{
    (void)ctx;
    return RH_OK;
}

/* Ends this rank as a crash would: no finalize, no goodbye. */
static rh_status_t ft_on_die(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    (void)msg;
    fflush(stdout);
    _exit(0);
}

static rh_status_t ft_actor_init(rh_task_ctx_t *ctx, void **state)
{
    (void)ctx;
    *state = NULL;
    return RH_OK;
}

static rh_status_t ft_actor_ping(void *state, rh_task_ctx_t *ctx)
{
    int32_t rank = rh_rank();

    (void)state;
    return rh_task_return(ctx, 0, &rank, sizeof(rank));
}

static int setup_ft(void)
{
    static const rh_method_def_t methods[] = {
        { "ping", ft_actor_ping, 0, 1 }
    };
    rh_actor_class_t cls = { 0 };

    cls.init = ft_actor_init;
    cls.methods = methods;
    cls.num_methods = 1;
    return perf_am_setup() ||
           rh_register_actor("perf_ft_actor", &cls) ||
           rh_am_register(FT_DIE, 0, 0, ft_on_die, NULL) ||
           rh_register("perf_ft_make", ft_make, 0, 1) ||
           rh_register("perf_ft_empty", ft_empty, 0, 1);
}

static int ft_get_check(rh_ref_t r)
{
    const void *v;
    size_t len;
    rh_status_t st = rh_get(r, &v, &len, 120000);

    if (st != RH_OK || len != FT_OBJ || ((const uint8_t *)v)[len - 1] !=
        0x5a) {
        fprintf(stderr, "rayhpc-perf: recovery: get: %s (%s)\n",
                rh_status_string(st), rh_last_error());
        return -1;
    }
    rh_release(r);
    return 0;
}

/* One trial with victim rank v (alone on its node): the first run and
 * get, then a second object made there, the victim's death, and the get
 * that waits for its rebuild. Times in seconds. */
static int ft_trial(int v, double *first, double *detect, double *recover)
{
    rh_task_params_t p = perf_on_node(rh_core_node_of(v));
    rh_ref_t r, rets[2];
    int ready = 0;
    double t0;

    /* Soft: a task bound to the victim's node would fail its rebuild once
     * the node is gone. */
    p.soft = 1;
    t0 = perf_now();
    if (rh_remote("perf_ft_make", NULL, 0, &p, &r) != RH_OK ||
        ft_get_check(r) != 0) {
        return -1;
    }
    rh_release(r);
    *first = perf_now() - t0;
    /* The object to lose: made there, never copied here (its second,
     * empty return says it ended; a wait on the object would bring it
     * here). */
    p.field_mask |= RH_TASK_PARAM_FIELD_NUM_RETURNS;
    p.num_returns = 2;
    if (rh_remote("perf_ft_make", NULL, 0, &p, rets) != RH_OK) {
        return -1;
    }
    r = rets[0];
    if (rh_wait(&rets[1], 1, 1, 120000, &ready) != RH_OK || !ready) {
        rh_release(rets[1]);
        rh_release(r);
        return -1;
    }
    rh_release(rets[1]);
    t0 = perf_now();
    (void)rh_am_send((uint32_t)v, FT_DIE, NULL, 0, NULL, 0, NULL, NULL);
    while (rh_rank_alive(v) && perf_now() - t0 < 60) {
        usleep(100);
    }
    *detect = perf_now() - t0;
    if (ft_get_check(r) != 0) {
        return -1;
    }
    *recover = perf_now() - t0;
    rh_release(r);
    return 0;
}

static int run_recovery(void)
{
    double first, detect, recover, best = 1e30, best_ratio = 1e30;
    double b_first = 0, b_detect = 0;

    for (int v = 1; v <= FT_VICTIMS; v++) {
        if (ft_trial(v, &first, &detect, &recover) != 0) {
            return 1;
        }
        printf("# recovery trial %d: first run %.1f ms, detection %.1f ms, "
               "readable again after %.1f ms\n", v, first * 1e3,
               detect * 1e3, recover * 1e3);
        if (recover < best) {
            best = recover;
            b_first = first;
            b_detect = detect;
        }
        perf_keep_best(&best_ratio, (recover - detect) / first, 1);
    }
    printf("# recovery: best trial: first run %.1f ms, detection %.1f ms\n",
           b_first * 1e3, b_detect * 1e3);
    perf_print("recovery", "", best * 1e3, "ms");
    perf_print_ratio("recovery", "", "rerun", best_ratio);
    return 0;
}

/* The rank that answered a ping, or -1 with the call's status in *st. */
static int ft_ping(rh_actor_t a, rh_status_t *st)
{
    const void *v;
    size_t len;
    rh_ref_t r;
    int32_t rank = -1;

    *st = rh_actor_call(a, "ping", NULL, 0, NULL, &r);
    if (*st != RH_OK) {
        return -1;
    }
    *st = rh_get(r, &v, &len, 60000);
    if (*st == RH_OK) {
        memcpy(&rank, v, sizeof(rank));
    }
    rh_release(r);
    return rank;
}

static int run_actor_restart(void)
{
    const int v = 4;
    rh_actor_params_t ap = { 0 };
    rh_actor_t a;
    rh_status_t st;
    double t0, detect = 0, took;
    int rank;

    ap.field_mask = RH_ACTOR_PARAM_FIELD_STRATEGY |
                    RH_ACTOR_PARAM_FIELD_MAX_RESTARTS;
    ap.strategy = RH_STRATEGY_NODE_AFFINITY;
    ap.node = rh_core_node_of(v);
    ap.soft = 1;
    ap.max_restarts = -1;
    if (rh_actor_create("perf_ft_actor", NULL, 0, &ap, &a) != RH_OK ||
        ft_ping(a, &st) != v) {
        fprintf(stderr, "rayhpc-perf: actor_restart: the actor is not on "
                "rank %d: %s\n", v, rh_last_error());
        return 1;
    }
    t0 = perf_now();
    (void)rh_am_send((uint32_t)v, FT_DIE, NULL, 0, NULL, 0, NULL, NULL);
    while ((rank = ft_ping(a, &st)) < 0 && st == RH_ERR_ACTOR_DEAD &&
           perf_now() - t0 < 60) {
        if (detect == 0 && !rh_rank_alive(v)) {
            detect = perf_now() - t0;
        }
        usleep(200);   /* fewer sends to a rank that may be gone */
    }
    took = perf_now() - t0;
    if (rank < 0 || rank == v) {
        fprintf(stderr, "rayhpc-perf: actor_restart: %s (%s)\n",
                rh_status_string(st), rh_last_error());
        return 1;
    }
    printf("# actor_restart: rank %d died, the actor answered from rank %d "
           "after %.1f ms (death seen after %.1f ms)\n", v, rank,
           took * 1e3, detect * 1e3);
    perf_print("actor_restart", "", took * 1e3, "ms");
    (void)rh_actor_kill(a, 1);
    return 0;
}

static double ft_rate(long n, int noretry)
{
    rh_task_params_t p = perf_on_node(1);
    rh_ref_t *refs = malloc((size_t)n * sizeof(*refs));
    const void *v;
    size_t len;
    double t0, rate;

    if (refs == NULL) {
        return 0;
    }
    if (noretry) {
        p.field_mask |= RH_TASK_PARAM_FIELD_MAX_RETRIES;
        p.max_retries = 0;
    }
    t0 = perf_now();
    for (long i = 0; i < n; i++) {
        rh_remote("perf_ft_empty", NULL, 0, &p, &refs[i]);
    }
    for (long i = 0; i < n; i++) {
        rh_get(refs[i], &v, &len, RH_TIMEOUT_INFINITE);
        rh_release(refs[i]);
        rh_release(refs[i]);
    }
    rate = (double)n / (perf_now() - t0);
    free(refs);
    return rate;
}

static int perf_ft_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* The median of n values (sorted in place). */
static double perf_ft_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), perf_ft_cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#define FT_ROUNDS 10

static int run_overhead(void)
{
    const long n = 100000;
    double kept = 0, none = 0, noretry = 0;
    double r_none[FT_ROUNDS], r_noretry[FT_ROUNDS];

    rh_tp_set_progress_mode(RH_PROGRESS_POLLING);
    /* A run not counted, then rounds of the three variants, each first,
     * second and third in turn: a run after another was the faster
     * whatever it measured (up to 1.4x on the loaded 2-core host), which a
     * fixed order would have counted against the first variant, lineage
     * kept. The ratios are the median of each round's ratios: a round's
     * three runs take a second or so, over which the load of a shared
     * host changes less than over the whole figure, where the best of
     * each variant came from whichever second was quiet (0.87-1.28 between
     * runs of one build). */
    (void)ft_rate(n, 0);
    for (int trial = 0; trial < FT_ROUNDS; trial++) {
        double r[3];

        for (int k = 0; k < 3; k++) {
            int v = (k + trial) % 3;

            rh_lineage_set_max(v == 0 ? rh_cfg.lineage_max_bytes : 0);
            r[v] = ft_rate(n, v == 2);
        }
        perf_keep_best(&kept, r[0], 0);
        perf_keep_best(&none, r[1], 0);
        perf_keep_best(&noretry, r[2], 0);
        r_none[trial] = r[1] > 0 ? r[0] / r[1] : 0;
        r_noretry[trial] = r[2] > 0 ? r[0] / r[2] : 0;
    }
    rh_lineage_set_max(rh_cfg.lineage_max_bytes);
    rh_tp_set_progress_mode(RH_PROGRESS_ADAPTIVE);
    printf("# remote_tasks_ft: best %.0f per_s with lineage kept, %.0f with "
           "RAYHPC_LINEAGE_MAX_BYTES=0, %.0f with max_retries 0 (ratios of "
           "the bests %.3f, %.3f)\n", kept, none, noretry, kept / none,
           kept / noretry);
    perf_print("remote_tasks_ft", "", kept, "per_s");
    perf_print_ratio("remote_tasks_ft", "", "nolineage",
                     perf_ft_median(r_none, FT_ROUNDS));
    perf_print_ratio("remote_tasks_ft", "", "noretry",
                     perf_ft_median(r_noretry, FT_ROUNDS));
    return 0;
}

static int run_ft(const perf_group_t *g, const char *suffix,
                  int (*want)(const char *figure))
{
    int rc = 0;

    (void)suffix;
    if (rh_rank() != 0) {
        return 0;   /* the others serve from rh_finalize */
    }
    if (strcmp(g->name, "recovery") == 0 && want("recovery")) {
        rc = run_recovery();
    }
    if (strcmp(g->name, "recovery") == 0 && want("actor_restart")) {
        rc |= run_actor_restart();
    }
    if (strcmp(g->name, "ft_overhead") == 0 && want("remote_tasks_ft")) {
        rc |= run_overhead();
    }
    return rc;
}

static const char *const recovery_figures[] = { "recovery", "actor_restart",
                                                 NULL };
static const char *const overhead_figures[] = { "remote_tasks_ft", NULL };
/* One worker per rank; the detection of a dead rank on this host is its
 * pid check (RAYHPC_PEER_CHECK). */
static const char *const ft_env[] = { "RAYHPC_NUM_WORKERS=1", NULL };

const perf_group_t perf_group_recovery = {
    "recovery", recovery_figures, 5, ft_env, 0, 5, setup_ft, run_ft
};
const perf_group_t perf_group_ft_overhead = {
    "ft_overhead", overhead_figures, 2, ft_env, 1, 2, setup_ft, run_ft
};
