/* The write stream of the GCS chain programs: rank 0 writes long values
 * (1, 2, 3, ...) to KEYS keys of the test table, a window of WINDOW
 * asynchronous puts at a time, keeps each key's last acknowledged value,
 * and reads every key back; a subscription can check that each update is
 * seen once, in order. DIE makes the receiver SIGKILL itself. The program
 * defines KEYS and WINDOW before it includes this. Rank 0 only. */
#ifndef RH_TESTS_GCS_STREAM_H
#define RH_TESTS_GCS_STREAM_H

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcs/gcs.h"
#include "rank_util.h"
#include "transport/am.h"

#if !defined(KEYS) || !defined(WINDOW)
#error "define KEYS and WINDOW before including gcs_stream.h"
#endif

#define DIE (RH_AM_ID_TEST_FIRST + 8)

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

static inline void on_done(rh_gcs_op_t *op)
{
    (void)op;
    atomic_fetch_add(&finished, 1);
}

static inline int key_index(const void *key, size_t len)
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

/* Each key's values must come in the order they were written, once. */
static inline void on_update(void *arg, const rh_gcs_update_t *u)
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

/* Registers DIE and starts the rank; a run on other than ranks ranks (on
 * nodes nodes, unless 0) exits 1, and every rank but 0 finalizes and exits
 * 0: rank 0 alone goes on. */
static inline void stream_start(int *argc, char ***argv, int ranks,
                                int nodes, const char *name)
{
    CHECK(rh_am_register(DIE, 0, 0, on_die, NULL));
    CHECK(rh_init(argc, argv, NULL));
    if (rh_size() != ranks || (nodes > 0 && rh_num_nodes() != nodes)) {
        if (nodes > 0) {
            fprintf(stderr, "%s runs on %d ranks on %d nodes\n", name, ranks,
                    nodes);
        } else {
            fprintf(stderr, "%s runs on %d ranks\n", name, ranks);
        }
        exit(1);
    }
    if (rh_rank() != 0) {
        CHECK(rh_finalize());
        exit(0);
    }
}

/* The first KEYS keys "k<i>" that fall in shard. */
static inline void stream_keys_of_shard(uint32_t shard)
{
    for (int i = 0, n = 0; n < KEYS; i++) {
        char k[16];

        snprintf(k, sizeof(k), "k%d", i);
        if (rh_gcs_shard_of(RH_GCS_T_TEST, k, strlen(k)) == shard) {
            memcpy(keys[n++], k, sizeof(k));
        }
    }
}

/* Writes n (at most WINDOW) updates, the done-th write of the stream
 * first, with values from base + done + 1, and waits until each is
 * answered: 0, or -1 (printed) if some never is. Each slot's op.status
 * says how its write went. */
static inline int stream_window(long base, long done, long n)
{
    atomic_store(&finished, 0);
    for (long j = 0; j < n; j++) {
        slot_t *s = &slots[j];

        memset(&s->op, 0, sizeof(s->op));
        s->key = (int)((done + j) % KEYS);
        s->value = base + done + j + 1;
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
        return -1;
    }
    return 0;
}

/* Records the window's n writes as acknowledged: 0, or -1 (printed) if
 * one failed. */
static inline int stream_ack_window(long done, long n)
{
    for (long j = 0; j < n; j++) {
        if (slots[j].op.status != RH_OK) {
            fprintf(stderr, "rank 0: write %ld failed: %s (%s)\n",
                    done + j, rh_status_string(slots[j].op.status),
                    rh_last_error());
            return -1;
        }
        acked[slots[j].key] = slots[j].value;
    }
    return 0;
}

/* Every key holds its last acknowledged value: 1, or 0 (printed). */
static inline int stream_read_back(void)
{
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
            return 0;
        }
    }
    return 1;
}

/* The subscriber saw each of nwrites updates once, in order: 0, or -1
 * (printed). A last write (nwrites + 1, to keys[0]) goes through the chain
 * as it is now: every update before it has been published by the time its
 * own is seen. */
static inline int stream_check_updates(long nwrites, double wait_s)
{
    long v = nwrites + 1;

    if (rank_wait_count(&updates, nwrites, wait_s) != 0) {
        fprintf(stderr, "rank 0: the subscriber saw %ld of %ld updates\n",
                atomic_load(&updates), nwrites);
        return -1;
    }
    CHECK(rh_gcs_put(RH_GCS_T_TEST, keys[0], strlen(keys[0]), &v, sizeof(v),
                     NULL));
    if (rank_wait_count(&updates, nwrites + 1, wait_s) != 0) {
        fprintf(stderr, "rank 0: the last update never came\n");
        return -1;
    }
    if (atomic_load(&updates) != nwrites + 1 || atomic_load(&disorder)) {
        fprintf(stderr, "rank 0: subscriber saw %ld updates for %ld writes, "
                "%ld out of order\n", atomic_load(&updates), nwrites + 1,
                atomic_load(&disorder));
        return -1;
    }
    return 0;
}

#endif
