/*
 * Tasks forwarded between two nodes (ranks 0 and 1 on two virtual nodes,
 * one worker each):
 *
 *   remote_task_rtt      submit an empty task on rank 0 to run on node 1,
 *                        get its result: us per round trip;
 *                        remote_task_rtt/ucx: raw UCX AM round trip (twice
 *                        the one-way latency), same ranks, same run
 *   remote_tasks         empty tasks per second forwarded to node 1,
 *                        submitted in a stream then all got;
 *                        remote_tasks/ucx: raw 64 B AM message rate
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "perf.h"
#include "rayhpc.h"
#include "transport/transport.h"

static rh_status_t remote_empty(rh_task_ctx_t *ctx)
{
    (void)ctx;
    return RH_OK;
}

/* Returns its argument: the report's round trip against payload. */
static rh_status_t remote_echo(rh_task_ctx_t *ctx)
{
    size_t len;
    const void *p = rh_task_arg(ctx, 0, &len);

    return rh_task_return(ctx, 0, p, len);
}

static int setup_remote(void)
{
    return perf_am_setup() ||
           rh_register("perf_remote_empty", remote_empty, 0, 1) ||
           rh_register("perf_remote_echo", remote_echo, 1, 1);
}

/* The report's curve: us per task on node 1 that gets `size` bytes and
 * returns them, best of three (rank 0; rank 1 waits in perf_sync). */
static void series_rtt(int quick)
{
    static const size_t sizes[] = { 8, 64, 512, 4096, 32768 };
    static char buf[32768];
    rh_task_params_t p = perf_on_node(1);
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

                if (rh_remote("perf_remote_echo", &arg, 1, &p, &r) != RH_OK ||
                    rh_get(r, &v, &len, RH_TIMEOUT_INFINITE) != RH_OK) {
                    fprintf(stderr, "rayhpc-perf: remote echo: %s\n",
                            rh_last_error());
                    exit(1);
                }
                rh_release(r);
                rh_release(r);
            }
            perf_keep_best(&best, (perf_now() - t0) / iters * 1e6, 1);
            perf_sync();
        }
        if (rh_rank() == 0) {
            perf_print_point("rtt", "ours_remote_task", (double)sizes[i],
                             best);
        }
    }
}

static double ours_rtt(long iters)
{
    rh_task_params_t p = perf_on_node(1);
    const void *v;
    size_t len;
    rh_ref_t r;
    double t0, t = 0;

    rh_tp_set_progress_mode(RH_PROGRESS_POLLING);
    perf_sync();
    if (rh_rank() == 0) {
        t0 = perf_now();
        for (long i = 0; i < iters; i++) {
            rh_remote("perf_remote_empty", NULL, 0, &p, &r);
            rh_get(r, &v, &len, RH_TIMEOUT_INFINITE);
            rh_release(r);
            rh_release(r);
        }
        t = (perf_now() - t0) / (double)iters * 1e6;
    }
    perf_sync();
    return t;
}

/* Where the stream's time went in the best run, for the notes. */
static double rate_submit_s, rate_total_s;

static double ours_rate(long n)
{
    rh_task_params_t p = perf_on_node(1);
    rh_ref_t *refs = malloc((size_t)n * sizeof(*refs));
    const void *v;
    size_t len;
    double t0, t1, rate = 0;

    rh_tp_set_progress_mode(RH_PROGRESS_POLLING);
    perf_sync();
    if (rh_rank() == 0) {
        t0 = perf_now();
        for (long i = 0; i < n; i++) {
            rh_remote("perf_remote_empty", NULL, 0, &p, &refs[i]);
        }
        t1 = perf_now();
        for (long i = 0; i < n; i++) {
            rh_get(refs[i], &v, &len, RH_TIMEOUT_INFINITE);
            rh_release(refs[i]);
            rh_release(refs[i]);
        }
        rate = (double)n / (perf_now() - t0);
        if (rate_total_s == 0 || (double)n / rate < rate_total_s) {
            rate_total_s = (double)n / rate;
            rate_submit_s = t1 - t0;
        }
    }
    perf_sync();
    free(refs);
    return rate;
}

static int run_remote(const perf_group_t *g, const char *suffix,
                      int (*want)(const char *figure))
{
    char rtt_name[40], rate_name[40];
    int tcp = suffix[0] != '\0';
    long iters = tcp ? 2000 : 20000, n = tcp ? 20000 : 200000;
    long windows = tcp ? 500 : 4000;

    rate_total_s = rate_submit_s = 0;
    double o_rtt = 1e30, r_rtt = 1e30, o_rate = 0, r_rate = 0;
    int do_rtt, do_rate;

    (void)g;
    snprintf(rtt_name, sizeof(rtt_name), "remote_task_rtt%s", suffix);
    snprintf(rate_name, sizeof(rate_name), "remote_tasks%s", suffix);
    do_rtt = want(rtt_name);
    do_rate = want(rate_name);
    if ((!do_rtt && !do_rate) || perf_raw_open() != 0) {
        return !(do_rtt || do_rate) ? 0 : 1;
    }
    for (int trial = 0; trial < 3; trial++) {
        if (do_rtt) {
            perf_keep_best(&o_rtt, ours_rtt(iters), 1);
            perf_keep_best(&r_rtt, 2 * perf_raw_lat(iters), 1);
        }
        if (do_rate) {
            perf_keep_best(&o_rate, ours_rate(n), 0);
            perf_keep_best(&r_rate, perf_raw_rate(windows), 0);
        }
    }
    if (do_rtt && !tcp && perf_series()) {
        series_rtt(perf_series() == 1);
    }
    perf_raw_close();
    rh_tp_set_progress_mode(RH_PROGRESS_ADAPTIVE);
    if (do_rate) {
        rh_stats_t st;

        rh_stats(&st);
        printf("# remote_tasks%s: rank %d sent %llu messages coalesced in "
               "%llu batches\n", suffix, rh_rank(),
               (unsigned long long)st.msgs_batched,
               (unsigned long long)st.batches_sent);
    }
    if (rh_rank() == 0) {
        if (do_rtt) {
            perf_report("remote_task_rtt", suffix, o_rtt, r_rtt, "us", "ucx");
        }
        if (do_rate) {
            printf("# remote_tasks%s: submitting took %.3f us a task, the "
                   "whole stream %.3f us a task\n", suffix,
                   rate_submit_s / (double)n * 1e6,
                   rate_total_s / (double)n * 1e6);
            perf_report("remote_tasks", suffix, o_rate, r_rate, "per_s",
                        "ucx");
        }
    }
    return 0;
}

static const char *const remote_figures[] = { "remote_task_rtt",
                                              "remote_tasks", NULL };
static const char *const remote_tcp_figures[] = { "remote_task_rtt_tcp",
                                                  "remote_tasks_tcp", NULL };
/* One worker per rank: two ranks, their progress threads and workers
 * share this host's cores. */
static const char *const remote_env[] = { "RAYHPC_NUM_WORKERS=1", NULL };
static const char *const remote_tcp_env[] = { "RAYHPC_NUM_WORKERS=1",
                                              "UCX_TLS=tcp,self", NULL };

const perf_group_t perf_group_remote = {
    "remote", remote_figures, 2, remote_env, 1, 2, setup_remote, run_remote
};
const perf_group_t perf_group_remote_tcp = {
    "remote_tcp", remote_tcp_figures, 2, remote_tcp_env, 1, 2, setup_remote,
    run_remote
};
