/*
 * A partition: ranks 0 and 1 (two of the three GCS masters) on one side,
 * ranks 2 and 3 on the other, every GCS message between them dropped (the
 * GCS's test hook). The side with a majority of the masters re-forms the
 * chains without the others and goes on writing; the other side's
 * replicas lose their lease and accept no write.
 *
 * usage: gcs_partition   (4 ranks on 4 nodes)
 * The majority side prints "MAJORITY WROTE n" and "DEATHS RECORDED"; the
 * minority side prints "MINORITY WROTE 0" when none of its writes was
 * accepted, stays alive until rank 0 says the majority is done (a message
 * outside the GCS; at most 200 timeouts) and prints "MINORITY LEAVING".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gcs/gcs.h"
#include "rank_util.h"
#include "transport/am.h"

#define READY (RH_AM_ID_TEST_FIRST + 9)
#define GO (RH_AM_ID_TEST_FIRST + 10)
#define DONE (RH_AM_ID_TEST_FIRST + 11)

#define NOPS 8
#define BOUNDARY 2

static _Atomic long finished;

static void on_done(rh_gcs_op_t *op)
{
    (void)op;
    atomic_fetch_add(&finished, 1);
}

/* Outside the GCS, which the partition cuts: every rank tells rank 0 it
 * is ready, rank 0 tells all to go. */
static _Atomic long readies, go, done;

static rh_status_t on_ready(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    (void)msg;
    atomic_fetch_add(&readies, 1);
    return RH_OK;
}

static rh_status_t on_go(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    (void)msg;
    atomic_store(&go, 1);
    return RH_OK;
}

static rh_status_t on_done_msg(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    (void)msg;
    atomic_store(&done, 1);
    return RH_OK;
}

static void barrier(int me, int n)
{
    CHECK(rh_am_send_wait(0, READY, NULL, 0, NULL, 0));
    if (me == 0) {
        if (rank_wait_count(&readies, n, 60.0) != 0) {
            fprintf(stderr, "rank 0: not every rank got ready\n");
            exit(1);
        }
        for (int r = 0; r < n; r++) {
            CHECK(rh_am_send_wait((uint32_t)r, GO, NULL, 0, NULL, 0));
        }
    }
    if (rank_wait_count(&go, 1, 60.0) != 0) {
        fprintf(stderr, "rank %d: no go\n", me);
        exit(1);
    }
}

/* NOPS writes at once, to keys of every shard; how many were accepted. */
static long write_round(int me, int round)
{
    static rh_gcs_op_t ops[NOPS];
    static char keys[NOPS][32];
    static long vals[NOPS];
    long ok = 0;

    atomic_store(&finished, 0);
    for (int i = 0; i < NOPS; i++) {
        memset(&ops[i], 0, sizeof(ops[i]));
        snprintf(keys[i], sizeof(keys[i]), "side%d/%d", me, i);
        vals[i] = round;
        ops[i].table = RH_GCS_T_TEST;
        ops[i].key = keys[i];
        ops[i].klen = strlen(keys[i]);
        ops[i].value = &vals[i];
        ops[i].vlen = sizeof(vals[i]);
        ops[i].done = on_done;
        CHECK(rh_gcs_put_async(&ops[i]));
    }
    if (rank_wait_count(&finished, NOPS, 120.0) != 0) {
        fprintf(stderr, "rank %d: writes never finished\n", me);
        exit(1);
    }
    for (int i = 0; i < NOPS; i++) {
        if (ops[i].status == RH_OK) {
            ok++;
        } else if (ops[i].status != RH_ERR_NO_QUORUM) {
            fprintf(stderr, "rank %d: write failed with %s\n", me,
                    rh_status_string(ops[i].status));
            exit(1);
        }
    }
    return ok;
}

int main(int argc, char **argv)
{
    const char *t = getenv("RAYHPC_FAILURE_TIMEOUT_MS");
    double timeout_s = (t != NULL ? atof(t) : 5000.0) / 1000.0;
    int me, n;

    CHECK(rh_am_register(READY, 0, 0, on_ready, NULL));
    CHECK(rh_am_register(GO, 0, 0, on_go, NULL));
    CHECK(rh_am_register(DONE, 0, 0, on_done_msg, NULL));
    CHECK(rh_init(&argc, &argv, NULL));
    me = rh_rank();
    n = rh_size();
    if (n != 4) {
        fprintf(stderr, "gcs_partition runs on 4 ranks\n");
        return 1;
    }
    barrier(me, n);
    rh_gcs_test_partition(BOUNDARY);
    if (me >= BOUNDARY) {
        struct timespec ts = { (time_t)(1.5 * timeout_s),
                               (long)((1.5 * timeout_s -
                                       (double)(time_t)(1.5 * timeout_s)) *
                                      1e9) };
        long wrote;

        /* Past the lease: a confirmation is good for half a timeout. */
        nanosleep(&ts, NULL);
        wrote = write_round(me, 1);
        printf("rank %d: MINORITY WROTE %ld\n", me, wrote);
        fflush(stdout);
        /* Alive until the majority is done, so that it can only have gone
         * on by the silence it saw, not by our processes ending: however
         * slow the host, not for a time. */
        (void)rank_wait_count(&done, 1, 200 * timeout_s);
        printf("rank %d: MINORITY LEAVING\n", me);
        fflush(stdout);
        /* Cut off from rank 0, which ends the job: leave. */
        _exit(wrote == 0 ? 0 : 1);
    }
    /* The majority: writes fail until the chains re-form, then go on.
     * Each step has its own bound, far past what it needs on a loaded
     * host (the minority waits for both). */
    {
        double end = rank_now() + 90 * timeout_s;
        long wrote = 0;
        void *val;
        size_t len;
        char key[32];

        while (wrote < NOPS && rank_now() < end) {
            wrote = write_round(me, 2);
        }
        printf("rank %d: MAJORITY WROTE %ld\n", me, wrote);
        fflush(stdout);
        end = rank_now() + 90 * timeout_s;
        for (int r = BOUNDARY; r < n; r++) {
            rh_status_t st;

            snprintf(key, sizeof(key), "dead/%d", r);
            while ((st = rh_gcs_get(RH_GCS_T_NODE, key, strlen(key), &val,
                                    &len, NULL)) == RH_ERR_NOT_FOUND &&
                   rank_now() < end) {
                rank_nap();
            }
            CHECK(st);
            free(val);
        }
        printf("rank %d: DEATHS RECORDED\n", me);
        fflush(stdout);
        /* The minority may leave: outside the GCS, which the partition
         * cuts (the transport still reaches it). */
        for (int r = BOUNDARY; me == 0 && r < n; r++) {
            (void)rh_am_send_wait((uint32_t)r, DONE, NULL, 0, NULL, 0);
        }
    }
    CHECK(rh_finalize());
    return 0;
}
