/*
 * A GCS chain member dies by SIGKILL mid-stream; no acknowledged write may
 * be lost, none applied twice, and a subscriber sees each update once, in
 * order, across the reconfiguration.
 *
 * usage: gcs_kill ROLE KILL_AT NWRITES   (ROLE: head, middle or tail)
 * Run with 4 ranks on 4 nodes and RAYHPC_GCS_SHARDS=2: shard 1's chain is
 * ranks 1, 2, 3 (head, middle, tail), the masters are ranks 0, 1, 2.
 * Rank 0 writes NWRITES updates to 1000 keys of shard 1, a window at a
 * time, and after KILL_AT acknowledged writes tells the member of ROLE to
 * kill itself (the fixed kill point). It then reads every key back (the
 * value of its last acknowledged write must be there) and checks what its
 * subscription to the keys saw. Prints "GCS KILL OK" and the failover
 * time.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gcs/gcs.h"
#include "rank_util.h"
#include "transport/am.h"

#define DIE (RH_AM_ID_TEST_FIRST + 8)
#define KEYS 1000
#define WINDOW 256

static _Atomic long finished;
static _Atomic long updates, disorder;
static long last_seen[KEYS];
static long acked[KEYS];   /* the value of the last acknowledged write */
static char keys[KEYS][16];

static rh_status_t on_die(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    (void)msg;
    raise(SIGKILL);
    return RH_OK;
}

static void on_done(rh_gcs_op_t *op)
{
    (void)op;
    atomic_fetch_add(&finished, 1);
}

static int key_index(const void *key, size_t len)
{
    char buf[16];

    if (len == 0 || len >= sizeof(buf)) {
        return -1;
    }
    memcpy(buf, key, len);
    buf[len] = '\0';
    for (int i = 0; i < KEYS; i++) {
        if (strcmp(buf, keys[i]) == 0) {
            return i;
        }
    }
    return -1;
}

/* Each key's values must come in the order they were written. */
static void on_update(void *arg, const rh_gcs_update_t *u)
{
    int k = key_index(u->key, u->klen);
    long v;

    (void)arg;
    if (k < 0 || u->vlen != sizeof(v)) {
        atomic_fetch_add(&disorder, 1);
        return;
    }
    memcpy(&v, u->value, sizeof(v));
    if (v <= last_seen[k]) {
        atomic_fetch_add(&disorder, 1);
    }
    last_seen[k] = v;
    atomic_fetch_add(&updates, 1);
}

typedef struct slot {
    rh_gcs_op_t op;
    long value;
    int key;
} slot_t;

static slot_t slots[WINDOW];

int main(int argc, char **argv)
{
    const char *role = argc > 1 ? argv[1] : "middle";
    long kill_at = argc > 2 ? atol(argv[2]) : 30000;
    long nwrites = argc > 3 ? atol(argv[3]) : 100000;
    int victim = strcmp(role, "head") == 0 ? 1 :
                 strcmp(role, "tail") == 0 ? 3 : 2;
    double killed_at = 0, failover = -1;
    long done = 0;
    uint32_t sub;

    CHECK(rh_am_register(DIE, 0, 0, on_die, NULL));
    CHECK(rh_init(&argc, &argv, NULL));
    if (rh_size() != 4) {
        fprintf(stderr, "gcs_kill runs on 4 ranks\n");
        return 1;
    }
    if (rh_rank() != 0) {
        CHECK(rh_finalize());
        return 0;
    }
    /* 1000 keys of shard 1. */
    for (int i = 0, n = 0; n < KEYS; i++) {
        char k[16];

        snprintf(k, sizeof(k), "k%d", i);
        if (rh_gcs_shard_of(RH_GCS_T_TEST, k, strlen(k)) == 1) {
            memcpy(keys[n++], k, sizeof(k));
        }
    }
    CHECK(rh_gcs_subscribe(RH_GCS_T_TEST, RH_GCS_SUB_PREFIX, "k", 1,
                           on_update, NULL, &sub));
    while (done < nwrites) {
        long n = nwrites - done < WINDOW ? nwrites - done : WINDOW;

        if (killed_at == 0 && done >= kill_at) {
            CHECK(rh_am_send_wait((uint32_t)victim, DIE, NULL, 0, NULL, 0));
            killed_at = rank_now();
            printf("rank 0: killed the %s (rank %d) after %ld writes\n",
                   role, victim, done);
        }
        atomic_store(&finished, 0);
        for (long j = 0; j < n; j++) {
            slot_t *s = &slots[j];

            memset(&s->op, 0, sizeof(s->op));
            s->key = (int)((done + j) % KEYS);
            s->value = done + j + 1;
            s->op.table = RH_GCS_T_TEST;
            s->op.key = keys[s->key];
            s->op.klen = strlen(keys[s->key]);
            s->op.value = &s->value;
            s->op.vlen = sizeof(s->value);
            s->op.done = on_done;
            CHECK(rh_gcs_put_async(&s->op));
        }
        if (rank_wait_count(&finished, n, 120.0) != 0) {
            fprintf(stderr, "rank 0: writes unanswered\n");
            return 1;
        }
        for (long j = 0; j < n; j++) {
            if (slots[j].op.status != RH_OK) {
                fprintf(stderr, "rank 0: write %ld failed: %s (%s)\n",
                        done + j, rh_status_string(slots[j].op.status),
                        rh_last_error());
                return 1;
            }
            acked[slots[j].key] = slots[j].value;
        }
        if (killed_at != 0 && failover < 0) {
            failover = (rank_now() - killed_at) * 1000.0;
        }
        done += n;
    }
    for (int k = 0; k < KEYS; k++) {
        void *val;
        size_t len;
        long v;

        CHECK(rh_gcs_get(RH_GCS_T_TEST, keys[k], strlen(keys[k]), &val, &len,
                         NULL));
        memcpy(&v, val, sizeof(v));
        free(val);
        if (len != sizeof(v) || v != acked[k]) {
            fprintf(stderr, "rank 0: key %s holds %ld, acknowledged %ld\n",
                    keys[k], v, acked[k]);
            return 1;
        }
    }
    if (rank_wait_count(&updates, nwrites, 60.0) != 0) {
        fprintf(stderr, "rank 0: the subscriber saw %ld of %ld updates\n",
                atomic_load(&updates), nwrites);
        return 1;
    }
    /* A last write through the re-formed chain: every update before it
     * has been published by the time its own is seen. */
    {
        long v = nwrites + 1;

        CHECK(rh_gcs_put(RH_GCS_T_TEST, keys[0], strlen(keys[0]), &v,
                         sizeof(v), NULL));
        if (rank_wait_count(&updates, nwrites + 1, 60.0) != 0) {
            fprintf(stderr, "rank 0: the last update never came\n");
            return 1;
        }
    }
    if (atomic_load(&updates) != nwrites + 1 || atomic_load(&disorder)) {
        fprintf(stderr, "rank 0: subscriber saw %ld updates for %ld writes, "
                "%ld out of order\n", atomic_load(&updates), nwrites + 1,
                atomic_load(&disorder));
        return 1;
    }
    printf("rank 0: GCS KILL OK %s: %ld writes, every one read back, each "
           "update seen once in order; failover %.0f ms\n", role, nwrites,
           failover);
    CHECK(rh_finalize());
    return 0;
}
