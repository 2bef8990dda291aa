/*
 * Actor calls (one worker per rank; the actors' method does nothing):
 *
 *   actor_rtt            rank 0 calls an actor on rank 1, on another node,
 *                        and gets the result, one call at a time: the median
 *                        us per round trip; actor_rtt/ucx: raw UCX AM round
 *                        trip (twice the one-way latency), same ranks, same
 *                        run (target <= 12 on a 2-core host, <= 5 with a
 *                        core for each runtime thread)
 *   actor_calls          calls per second to an actor on rank 0 itself,
 *                        made in a stream, then every result got;
 *                        actor_calls/target against 1,000,000 calls/s
 *   actor_calls_node     the same to an actor on the other rank of rank 0's
 *                        node (a group of its own: two ranks on one node)
 *   actor_calls_remote   the same to the actor on rank 1, on another node;
 *                        actor_calls_remote/ucx: raw UCX 64 B AM message rate
 *                        (target >= 0.2)
 *   actor_calls_nn       every rank streams calls to the actor of the next
 *                        rank, on the next node (4 ranks on 4 nodes): calls
 *                        per second of all of them together
 *   *_tcp                actor_rtt, actor_calls_remote over UCX_TLS=tcp,self
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "perf.h"
#include "rayhpc.h"
#include "transport/transport.h"

#define ACTOR_READY_MS 60000
#define ACTOR_TRIALS   3

static rh_status_t actor_init(rh_task_ctx_t *ctx, void **state)
{
    (void)ctx;
    *state = NULL;
    return RH_OK;
}

static rh_status_t actor_noop(void *state, rh_task_ctx_t *ctx)
{
    (void)state;
    (void)ctx;
    return RH_OK;
}

/* Returns its argument: the report's round trip against payload. */
static rh_status_t actor_echo(void *state, rh_task_ctx_t *ctx)
{
    size_t len;
    const void *p = rh_task_arg(ctx, 0, &len);

    (void)state;
    return rh_task_return(ctx, 0, p, len);
}

static const rh_method_def_t actor_methods[] = {
    { "noop", actor_noop, 0, 1 },
    { "echo", actor_echo, 1, 1 },
};

static const rh_actor_class_t actor_class = {
    .init = actor_init,
    .init_nargs = 0,
    .methods = actor_methods,
    .num_methods = 2,
};

static int setup_actor_nn(void)
{
    return rh_register_actor("PerfActor", &actor_class) != RH_OK;
}

/* The actor, and the raw UCX reference the ratios are taken against. */
static int setup_actor(void)
{
    return perf_am_setup() || setup_actor_nn();
}

static int actor_fail(const char *what)
{
    fprintf(stderr, "rayhpc-perf: rank %d: %s: %s\n", rh_rank(), what,
            rh_last_error());
    return 1;
}

/* An actor on node `node` (named when name is not NULL), constructed; its
 * rank in *rank. */
static int actor_make(int node, const char *name, rh_actor_t *a, int *rank)
{
    rh_actor_params_t p;

    memset(&p, 0, sizeof(p));
    p.field_mask = RH_ACTOR_PARAM_FIELD_STRATEGY;
    p.strategy = RH_STRATEGY_NODE_AFFINITY;
    p.node = node;
    if (name != NULL) {
        p.field_mask |= RH_ACTOR_PARAM_FIELD_NAME;
        p.name = name;
    }
    if (rh_actor_create("PerfActor", NULL, 0, &p, a) != RH_OK) {
        return actor_fail("rh_actor_create");
    }
    if (rh_actor_ready(*a, ACTOR_READY_MS, rank) != RH_OK) {
        rh_actor_release(*a);
        return actor_fail("rh_actor_ready");
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* The mean of the best run's round trips, for the notes: the reference
 * is a mean too. */
static double rtt_mean_us, rtt_median_best;

/* The report's curve: mean us of a call of echo with `size` bytes each way
 * to actor a, best of three (rank 0; the others wait in perf_sync). */
static void series_rtt(rh_actor_t a, int quick)
{
    static const size_t sizes[] = { 8, 64, 512, 4096, 32768 };
    static char buf[32768];
    long iters = quick ? 500 : 5000;

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        rh_arg_t arg = rh_arg_bytes(buf, sizes[i]);
        double best = 1e30;

        if (quick && sizes[i] != 8 && sizes[i] != 4096) {
            continue;
        }
        for (int trial = 0; trial < (quick ? 1 : 3); trial++) {
            double t0;

            rh_tp_set_progress_mode(RH_PROGRESS_POLLING);
            perf_sync();
            t0 = perf_now();
            for (long k = 0; rh_rank() == 0 && k < iters; k++) {
                const void *v;
                size_t len;
                rh_ref_t r;

                if (rh_actor_call(a, "echo", &arg, 1, NULL, &r) != RH_OK ||
                    rh_get(r, &v, &len, RH_TIMEOUT_INFINITE) != RH_OK) {
                    actor_fail("actor echo");
                    exit(1);
                }
                rh_release(r);
                rh_release(r);
            }
            perf_keep_best(&best, (perf_now() - t0) / iters * 1e6, 1);
            perf_sync();
        }
        if (rh_rank() == 0) {
            perf_print_point("rtt", "ours_actor_call", (double)sizes[i],
                             best);
        }
    }
}

/* One call, its get: the median us of iters round trips (rank 0). */
static double ours_rtt(rh_actor_t a, long iters, double *times)
{
    const void *v;
    size_t len;
    rh_ref_t r;
    double t = 0;

    rh_tp_set_progress_mode(RH_PROGRESS_POLLING);
    perf_sync();
    if (rh_rank() == 0) {
        for (long i = 0; i < iters; i++) {
            double t0 = perf_now();

            if (rh_actor_call(a, "noop", NULL, 0, NULL, &r) != RH_OK ||
                rh_get(r, &v, &len, RH_TIMEOUT_INFINITE) != RH_OK) {
                actor_fail("actor_rtt");
                exit(1);
            }
            times[i] = perf_now() - t0;
            rh_release(r);
            rh_release(r);
        }
        qsort(times, (size_t)iters, sizeof(*times), cmp_double);
        t = times[iters / 2] * 1e6;
        {
            double sum = 0;

            for (long i = 0; i < iters; i++) {
                sum += times[i];
            }
            if (rtt_mean_us == 0 || t < rtt_median_best) {
                rtt_median_best = t;
                rtt_mean_us = sum / (double)iters * 1e6;
            }
        }
    }
    perf_sync();
    return t;
}

/* n calls in a stream, then every result got: calls per second. */
static double stream_calls(rh_actor_t a, long n, rh_ref_t *refs)
{
    const void *v;
    size_t len;
    double t0 = perf_now();

    for (long i = 0; i < n; i++) {
        if (rh_actor_call(a, "noop", NULL, 0, NULL, &refs[i]) != RH_OK) {
            actor_fail("actor call");
            exit(1);
        }
    }
    for (long i = 0; i < n; i++) {
        if (rh_get(refs[i], &v, &len, RH_TIMEOUT_INFINITE) != RH_OK) {
            actor_fail("actor call's result");
            exit(1);
        }
        rh_release(refs[i]);
        rh_release(refs[i]);
    }
    return (double)n / (perf_now() - t0);
}

/* The stream, made by rank 0 while rank 1 waits. */
static double ours_rate(rh_actor_t a, long n, rh_ref_t *refs)
{
    double rate = 0;

    rh_tp_set_progress_mode(RH_PROGRESS_POLLING);
    perf_sync();
    if (rh_rank() == 0) {
        rate = stream_calls(a, n, refs);
    }
    perf_sync();
    return rate;
}

static void print_target(const char *name, const char *suffix, double ratio,
                         const char *target)
{
    perf_print_ratio(name, suffix, "target", ratio);
    printf("# %s%s: target %s\n", name, suffix, target);
}

/* ---- actor, actor_tcp: ranks 0 and 1 on two nodes ------------------------ */

static int run_actor(const perf_group_t *g, const char *suffix,
                     int (*want)(const char *figure))
{
    char rtt_name[40], local_name[40], remote_name[40];
    int tcp = suffix[0] != '\0', rc = 0;
    long iters = tcp ? 2000 : 20000, n = tcp ? 20000 : 200000;
    long windows = tcp ? 500 : 4000;
    double o_rtt = 1e30, r_rtt = 1e30, o_local = 0, o_remote = 0,
           r_rate = 0;
    int do_rtt, do_local, do_remote, here = -1, there = -1;
    rh_actor_t near = { 0, 0 }, far = { 0, 0 };
    rh_ref_t *refs = malloc((size_t)n * sizeof(*refs));
    double *times = malloc((size_t)iters * sizeof(*times));

    (void)g;
    rtt_mean_us = rtt_median_best = 0;
    snprintf(rtt_name, sizeof(rtt_name), "actor_rtt%s", suffix);
    snprintf(local_name, sizeof(local_name), "actor_calls%s", suffix);
    snprintf(remote_name, sizeof(remote_name), "actor_calls_remote%s",
             suffix);
    do_rtt = want(rtt_name);
    do_local = !tcp && want(local_name);
    do_remote = want(remote_name);
    if ((!do_rtt && !do_local && !do_remote) || perf_raw_open() != 0) {
        free(refs);
        free(times);
        return !(do_rtt || do_local || do_remote) ? 0 : 1;
    }
    /* Rank 0 makes both actors: one on its own node (its own rank, the
     * only one there), one on node 1 (rank 1). */
    if (rh_rank() == 0 &&
        ((do_local && actor_make(0, NULL, &near, &here) != 0) ||
         ((do_rtt || do_remote) && actor_make(1, NULL, &far, &there) != 0))) {
        exit(1);
    }
    for (int trial = 0; trial < ACTOR_TRIALS; trial++) {
        if (do_rtt) {
            perf_keep_best(&o_rtt, ours_rtt(far, iters, times), 1);
            perf_keep_best(&r_rtt, 2 * perf_raw_lat(iters), 1);
        }
        if (do_local) {
            perf_keep_best(&o_local, ours_rate(near, n, refs), 0);
        }
        if (do_remote) {
            perf_keep_best(&o_remote, ours_rate(far, n, refs), 0);
            perf_keep_best(&r_rate, perf_raw_rate(windows), 0);
        }
    }
    if (do_rtt && !tcp && perf_series()) {
        series_rtt(far, perf_series() == 1);
    }
    perf_raw_close();
    rh_tp_set_progress_mode(RH_PROGRESS_ADAPTIVE);
    if (rh_rank() == 0) {
        if (do_rtt) {
            printf("# actor_rtt%s: median of %ld calls to the actor on rank "
                   "%d, best of %d runs (that run's mean: %.2f us; the "
                   "reference is a mean)\n", suffix, iters, there,
                   ACTOR_TRIALS, rtt_mean_us);
            perf_report("actor_rtt", suffix, o_rtt, r_rtt, "us", "ucx");
            printf("# actor_rtt%s/ucx: target <= 12 on a 2-core host, <= 5 "
                   "with a core for each runtime thread\n", suffix);
        }
        if (do_local) {
            printf("# actor_calls: %ld calls to the actor on rank %d (the "
                   "caller's), best of %d runs\n", n, here, ACTOR_TRIALS);
            perf_print("actor_calls", suffix, o_local, "per_s");
            print_target("actor_calls", suffix, o_local / 1e6,
                         ">= 1 (1,000,000 calls/s)");
        }
        if (do_remote) {
            printf("# actor_calls_remote%s: %ld calls to the actor on rank "
                   "%d, best of %d runs\n", suffix, n, there, ACTOR_TRIALS);
            perf_report("actor_calls_remote", suffix, o_remote, r_rate,
                        "per_s", "ucx");
            printf("# actor_calls_remote%s/ucx: target >= 0.2\n", suffix);
        }
        if (near.hi != 0 || near.lo != 0) {
            rh_actor_release(near);
        }
        if (far.hi != 0 || far.lo != 0) {
            rh_actor_release(far);
        }
    }
    free(refs);
    free(times);
    return rc;
}

/* ---- actor_node: two ranks of one node ----------------------------------- */

/* Rank 1 makes the actor (a DEFAULT actor stays on the rank that made it
 * while that rank has room), rank 0 finds it by name and calls it. */
static int run_actor_node(const perf_group_t *g, const char *suffix,
                          int (*want)(const char *figure))
{
    long n = 200000;
    rh_ref_t *refs;
    rh_actor_t a = { 0, 0 };
    int rank = -1;
    double best = 0;

    (void)g;
    if (!want("actor_calls_node")) {
        return 0;
    }
    if (rh_rank() == 1) {
        rh_actor_params_t p;

        memset(&p, 0, sizeof(p));
        p.field_mask = RH_ACTOR_PARAM_FIELD_NAME;
        p.name = "perf_node_actor";
        if (rh_actor_create("PerfActor", NULL, 0, &p, &a) != RH_OK ||
            rh_actor_ready(a, ACTOR_READY_MS, &rank) != RH_OK) {
            exit(actor_fail("rank 1's actor"));
        }
    }
    perf_sync();   /* the actor exists */
    if (rh_rank() == 0 &&
        (rh_actor_get_named("perf_node_actor", &a) != RH_OK ||
         rh_actor_ready(a, ACTOR_READY_MS, &rank) != RH_OK)) {
        exit(actor_fail("rh_actor_get_named"));
    }
    refs = malloc((size_t)n * sizeof(*refs));
    for (int trial = 0; trial < ACTOR_TRIALS; trial++) {
        perf_keep_best(&best, ours_rate(a, n, refs), 0);
    }
    free(refs);
    if (rh_rank() == 0) {
        printf("# actor_calls_node: %ld calls from rank 0 to the actor on "
               "rank %d of the same node, best of %d runs\n", n, rank,
               ACTOR_TRIALS);
        perf_print("actor_calls_node", suffix, best, "per_s");
        print_target("actor_calls_node", suffix, best / 1e6,
                     ">= 1 (1,000,000 calls/s)");
    }
    rh_actor_release(a);
    perf_sync();   /* both holds dropped before either rank finalizes */
    rh_tp_set_progress_mode(RH_PROGRESS_ADAPTIVE);
    return 0;
}

/* ---- actor_nn: every rank calls the next one's actor --------------------- */

static int run_actor_nn(const perf_group_t *g, const char *suffix,
                        int (*want)(const char *figure))
{
    int me = rh_rank(), n = rh_size(), rank = -1, peer_rank = -1;
    int next = (me + 1) % n;
    long calls = 50000;
    char name[32];
    rh_actor_t mine = { 0, 0 }, peer = { 0, 0 };
    rh_ref_t *refs;
    double best = 0;

    (void)g;
    if (!want("actor_calls_nn")) {
        return 0;
    }
    /* Spinning progress threads on every rank would take the cores from
     * the callers and the actors on a small host. */
    rh_tp_set_progress_mode(RH_PROGRESS_ADAPTIVE);
    snprintf(name, sizeof(name), "perf_nn_%d", me);
    if (actor_make(rh_node_id(), name, &mine, &rank) != 0) {
        exit(1);
    }
    perf_barrier();   /* every actor exists */
    snprintf(name, sizeof(name), "perf_nn_%d", next);
    if (rh_actor_get_named(name, &peer) != RH_OK ||
        rh_actor_ready(peer, ACTOR_READY_MS, &peer_rank) != RH_OK) {
        exit(actor_fail("rh_actor_get_named"));
    }
    refs = malloc((size_t)calls * sizeof(*refs));
    for (int trial = 0; trial < ACTOR_TRIALS; trial++) {
        double t0;

        perf_barrier();
        t0 = perf_now();
        stream_calls(peer, calls, refs);
        perf_barrier();
        perf_keep_best(&best, (double)calls * n / (perf_now() - t0), 0);
    }
    free(refs);
    if (me == 0) {
        printf("# actor_calls_nn: %d ranks on %d nodes, each streams %ld "
               "calls to the next rank's actor (rank 0's is on rank %d, it "
               "calls rank %d's); all calls together, best of %d runs\n",
               n, rh_num_nodes(), calls, rank, peer_rank, ACTOR_TRIALS);
        perf_print("actor_calls_nn", suffix, best, "per_s");
    }
    rh_actor_release(peer);
    perf_barrier();   /* no call left on the way to an actor */
    rh_actor_release(mine);
    return 0;
}

static const char *const actor_figures[] = { "actor_rtt", "actor_calls",
                                             "actor_calls_remote", NULL };
static const char *const actor_tcp_figures[] = { "actor_rtt_tcp",
                                                 "actor_calls_remote_tcp",
                                                 NULL };
static const char *const actor_node_figures[] = { "actor_calls_node", NULL };
static const char *const actor_nn_figures[] = { "actor_calls_nn", NULL };
static const char *const actor_env[] = { "RAYHPC_NUM_WORKERS=1", NULL };
static const char *const actor_tcp_env[] = { "RAYHPC_NUM_WORKERS=1",
                                             "UCX_TLS=tcp,self", NULL };

const perf_group_t perf_group_actor = {
    "actor", actor_figures, 2, actor_env, 1, 2, setup_actor, run_actor
};
const perf_group_t perf_group_actor_tcp = {
    "actor_tcp", actor_tcp_figures, 2, actor_tcp_env, 1, 2, setup_actor,
    run_actor
};
const perf_group_t perf_group_actor_node = {
    "actor_node", actor_node_figures, 2, actor_env, 1, 1, setup_actor,
    run_actor_node
};
const perf_group_t perf_group_actor_nn = {
    "actor_nn", actor_nn_figures, 4, actor_env, 0, 4, setup_actor_nn,
    run_actor_nn
};
