/*
 * The GCS (3 ranks on 3 nodes, one shard, its chain ranks 0, 1, 2; rank 0
 * is the client and the head, rank 2 the tail):
 *
 *   gcs_write     us per acknowledged write, one at a time (client, head,
 *                 middle, tail, back to the client: three hops);
 *                 gcs_write/ucx_rtt: raw UCX AM round trip between ranks 0
 *                 and 1, same run (target <= 6 on a 2-core host, <= 3 with
 *                 a core for each runtime thread)
 *   host_switch   with gcs_write: us for one process to hand its core to
 *                 another (perf_host.c); a write holds two wherever the
 *                 host has fewer cores than the chain has ranks
 *   gcs_writes    acknowledged writes per second, pipelined (windows of
 *                 256) on the one chain; gcs_writes/target against 300,000/s
 *   gcs_reads     reads per second served by the shard's tail, pipelined;
 *                 gcs_reads/target against 1,000,000/s
 *   gcs_failover  ms from the death of a replica (the tail, rank 2; its own
 *                 job of 4 ranks on 4 nodes, one shard) to the first write
 *                 acknowledged by the re-formed chain, on rank 0, which
 *                 writes one key after another meanwhile; gcs_failover/
 *                 timeout against RAYHPC_FAILURE_TIMEOUT_MS (target <= 2)
 *
 * The three ranks' progress threads poll while the GCS is measured, as
 * they do for remote_task_rtt and actor_rtt (the raw UCX phase puts them
 * to sleep, and each trial sets the mode again): every trial measures the
 * same thing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "base/config.h"
#include "gcs/gcs.h"
#include "perf.h"
#include "rayhpc.h"
#include "transport/am.h"
#include "transport/transport.h"

#define GCS_TRIALS 3
#define GCS_WINDOW 256
#define GCS_KEYS   4096

static _Atomic long gcs_finished;
static rh_gcs_op_t gcs_ops[GCS_WINDOW];
static char gcs_keys[GCS_KEYS][16];

static void gcs_done(rh_gcs_op_t *op)
{
    (void)op;
    atomic_fetch_add_explicit(&gcs_finished, 1, memory_order_release);
}

static int gcs_fail(const char *what)
{
    fprintf(stderr, "rayhpc-perf: gcs: %s: %s\n", what, rh_last_error());
    return 1;
}

static double gcs_one_at_a_time(long n)
{
    uint64_t v = 0;
    double t0 = perf_now();

    for (long i = 0; i < n; i++) {
        const char *k = gcs_keys[i % GCS_KEYS];

        v++;
        if (rh_gcs_put(RH_GCS_T_TEST, k, strlen(k), &v, sizeof(v), NULL) !=
            RH_OK) {
            exit(gcs_fail("put"));
        }
    }
    return (perf_now() - t0) * 1e6 / (double)n;
}

/* n operations in windows of GCS_WINDOW; operations per second. */
static double gcs_stream(long n, int reads)
{
    static uint64_t v;
    double t0 = perf_now();

    for (long base = 0; base < n; base += GCS_WINDOW) {
        long w = n - base < GCS_WINDOW ? n - base : GCS_WINDOW;

        atomic_store(&gcs_finished, 0);
        for (long j = 0; j < w; j++) {
            rh_gcs_op_t *op = &gcs_ops[j];
            const char *k = gcs_keys[(base + j) % GCS_KEYS];

            memset(op, 0, sizeof(*op));
            op->table = RH_GCS_T_TEST;
            op->key = k;
            op->klen = strlen(k);
            op->done = gcs_done;
            if (!reads) {
                op->value = &v;
                op->vlen = sizeof(v);
            }
            if ((reads ? rh_gcs_get_async(op) : rh_gcs_put_async(op)) !=
                RH_OK) {
                exit(gcs_fail("async operation"));
            }
        }
        while (atomic_load_explicit(&gcs_finished, memory_order_acquire) <
               w) {
            sched_yield();   /* the chain's threads need the cores */
        }
        for (long j = 0; j < w; j++) {
            if (gcs_ops[j].status != RH_OK) {
                exit(gcs_fail(reads ? "read" : "write"));
            }
            free(gcs_ops[j].out);
        }
    }
    return (double)n / (perf_now() - t0);
}

static int run_gcs(const perf_group_t *g, const char *suffix,
                   int (*want)(const char *figure))
{
    int do_write = want("gcs_write"), do_writes = want("gcs_writes");
    int do_reads = want("gcs_reads");
    long iters = 5000, n = 100000;
    double o_lat = 1e30, r_rtt = 1e30, o_writes = 0, o_reads = 0;
    int chain[4], len;

    (void)g;
    if (!do_write && !do_writes && !do_reads) {
        return 0;
    }
    len = rh_gcs_chain(0, chain, 4);
    if (rh_rank() == 2) {
        void *val;
        size_t vlen;

        /* Only ranks 0 and 1 measure; the tail serves until they are done
         * (it takes no part in the raw UCX phase). */
        rh_tp_set_progress_mode(RH_PROGRESS_POLLING);
        while (rh_gcs_get(RH_GCS_T_JOB, "perf/done", 9, &val, &vlen, NULL) ==
               RH_ERR_NOT_FOUND) {
            struct timespec ts = { 0, 10000000 };

            nanosleep(&ts, NULL);
        }
        free(val);
        rh_tp_set_progress_mode(RH_PROGRESS_ADAPTIVE);
        return 0;
    }
    if (perf_raw_open() != 0) {
        return 1;
    }
    for (int i = 0; i < GCS_KEYS; i++) {
        snprintf(gcs_keys[i], sizeof(gcs_keys[i]), "perf%d", i);
    }
    for (int trial = 0; trial < GCS_TRIALS; trial++) {
        rh_tp_set_progress_mode(RH_PROGRESS_POLLING);
        perf_sync();
        if (do_write) {
            if (rh_rank() == 0) {
                perf_keep_best(&o_lat, gcs_one_at_a_time(iters), 1);
            }
            perf_sync();
            perf_keep_best(&r_rtt, 2 * perf_raw_lat(20000), 1);
            rh_tp_set_progress_mode(RH_PROGRESS_POLLING);
            perf_sync();
        }
        if (rh_rank() == 0 && do_writes) {
            perf_keep_best(&o_writes, gcs_stream(n, 0), 0);
        }
        if (rh_rank() == 0 && do_reads) {
            perf_keep_best(&o_reads, gcs_stream(n, 1), 0);
        }
        perf_sync();
    }
    perf_raw_close();
    rh_tp_set_progress_mode(RH_PROGRESS_ADAPTIVE);
    if (rh_rank() == 0) {
        printf("# gcs: one shard, chain of %d (ranks %d, %d, %d on 3 nodes); "
               "rank 0 is the client and the head; best of %d runs\n", len,
               chain[0], len > 1 ? chain[1] : -1, len > 2 ? chain[2] : -1,
               GCS_TRIALS);
        if (do_write) {
            perf_report("gcs_write", suffix, o_lat, r_rtt, "us", "ucx_rtt");
            printf("# gcs_write/ucx_rtt: target <= 6 on a 2-core host, <= 3 "
                   "with a core for each runtime thread\n");
        }
        if (do_writes) {
            perf_print("gcs_writes", suffix, o_writes, "per_s");
            perf_print_ratio("gcs_writes", suffix, "target",
                             o_writes / 300000.0);
        }
        if (do_reads) {
            perf_print("gcs_reads", suffix, o_reads, "per_s");
            perf_print_ratio("gcs_reads", suffix, "target",
                             o_reads / 1000000.0);
        }
        if (rh_gcs_put(RH_GCS_T_JOB, "perf/done", 9, "1", 1, NULL) != RH_OK) {
            return gcs_fail("the end");
        }
        if (do_write) {
            double sw = 1e30;

            /* After the others stopped polling: the host alone. */
            for (int t = 0; t < GCS_TRIALS; t++) {
                perf_keep_best(&sw, perf_switch_lat(5000), 1);
            }
            perf_print("host_switch", suffix, sw, "us");
            /* Two of the three ranks share a core, and a write needs
             * both: the core goes from one to the other and back. */
            printf("# host_switch: one process handing its core to another "
                   "(futex, one core); with 3 ranks on 2 cores a write holds "
                   "at least two: gcs_write is %.1f of them\n", o_lat / sw);
        }
    }
    return 0;
}

/* ---- gcs_failover ---------------------------------------------------------- */

#define GCS_DIE (RH_AM_ID_TEST_FIRST + 21)

/* Ends this rank as a crash would: no finalize, no goodbye. */
static rh_status_t gcs_on_die(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    (void)msg;
    fflush(stdout);
    _exit(0);
}

static int setup_failover(void)
{
    return rh_am_register(GCS_DIE, 0, 0, gcs_on_die, NULL);
}

static int run_failover(const perf_group_t *g, const char *suffix,
                        int (*want)(const char *figure))
{
    int chain[4], len = rh_gcs_chain(0, chain, 4), victim;
    uint64_t v = 0, epoch0;
    double t0, took;
    char key[32];

    (void)g;
    if (!want("gcs_failover")) {
        return 0;
    }
    victim = len == 3 ? chain[2] : -1;
    if (rh_rank() != 0) {
        void *val;
        size_t vlen;

        /* Serve until rank 0 is done (the victim ends on its way). */
        while (rh_gcs_get(RH_GCS_T_JOB, "perf/done", 9, &val, &vlen, NULL) !=
               RH_OK) {
            struct timespec ts = { 0, 10000000 };

            nanosleep(&ts, NULL);
        }
        free(val);
        return 0;
    }
    if (victim <= 0) {
        fprintf(stderr, "rayhpc-perf: gcs_failover needs a chain of 3 "
                "without rank 0 as its tail\n");
        return 1;
    }
    /* The chain works before the death. */
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "fo%d", i);
        v++;
        if (rh_gcs_put(RH_GCS_T_TEST, key, strlen(key), &v, sizeof(v),
                       NULL) != RH_OK) {
            return gcs_fail("put before the death");
        }
    }
    epoch0 = rh_gcs_epoch();
    t0 = perf_now();
    if (rh_am_send((uint32_t)victim, GCS_DIE, NULL, 0, NULL, 0, NULL,
                   NULL) != RH_OK) {
        return gcs_fail("the victim");
    }
    for (long i = 0;; i++) {
        uint64_t epoch = rh_gcs_epoch();

        snprintf(key, sizeof(key), "fo%ld", i % 100);
        v++;
        if (rh_gcs_put(RH_GCS_T_TEST, key, strlen(key), &v, sizeof(v),
                       NULL) != RH_OK) {
            return gcs_fail("put across the death");
        }
        /* Sent under the new configuration: the re-formed chain took it. */
        if (epoch > epoch0) {
            break;
        }
    }
    took = perf_now() - t0;
    printf("# gcs_failover: rank %d (the tail of the chain %d %d %d) died; "
           "first write acknowledged by the re-formed chain after %.1f ms; "
           "failure timeout %llu ms\n", victim, chain[0], chain[1], chain[2],
           took * 1e3, (unsigned long long)rh_cfg.failure_timeout_ms);
    perf_print("gcs_failover", suffix, took * 1e3, "ms");
    perf_print_ratio("gcs_failover", suffix, "timeout",
                     took * 1e3 / (double)rh_cfg.failure_timeout_ms);
    if (rh_gcs_put(RH_GCS_T_JOB, "perf/done", 9, "1", 1, NULL) != RH_OK) {
        return gcs_fail("the end");
    }
    return 0;
}

static const char *const gcs_figures[] = { "gcs_write", "gcs_writes",
                                           "gcs_reads", NULL };
static const char *const gcs_env[] = { "RAYHPC_NUM_WORKERS=1",
                                       "RAYHPC_GCS_SHARDS=1", NULL };

const perf_group_t perf_group_gcs = {
    "gcs", gcs_figures, 3, gcs_env, 1, 3, perf_am_setup, run_gcs
};

static const char *const failover_figures[] = { "gcs_failover", NULL };
static const char *const failover_env[] = { "RAYHPC_NUM_WORKERS=1",
                                            "RAYHPC_GCS_SHARDS=1", NULL };

const perf_group_t perf_group_gcs_failover = {
    "gcs_failover", failover_figures, 4, failover_env, 0, 4, setup_failover,
    run_failover
};
