/*
 * The GCS in steady state over real ranks: every rank writes its share of
 * NKEYS keys (pipelined, a window at a time), reads each back from its
 * shard's tail, and checks value and version; rank 0 then waits for every
 * rank's "done" key and reads other ranks' keys, which their writers had
 * acknowledged. Compare-and-swap and delete are checked on a contended key.
 *
 * usage: gcs_keys [NKEYS]   (default 100000)
 * Each rank first checks that the owner of a write may reuse its value
 * and op once done ran, even when done ran before the write's first send:
 * the write that leaves is the one asked for.
 *
 * Prints "GCS REUSE OK" and "GCS KEYS OK <n>" on each rank that verified
 * its keys and "GCS CROSS OK" on rank 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcs/gcs.h"
#include "rank_util.h"

#define WINDOW 256

static _Atomic long finished;

static void on_done(rh_gcs_op_t *op)
{
    (void)op;
    atomic_fetch_add(&finished, 1);
}

static int key_of(char *buf, size_t len, int rank, long i)
{
    return snprintf(buf, len, "k/%d/%ld", rank, i);
}

/* Values of several sizes, so some keys carry more than a header's worth. */
static size_t value_of(char *buf, size_t len, int rank, long i)
{
    size_t n = (size_t)snprintf(buf, len, "v/%d/%ld/", rank, i);
    size_t extra = (size_t)(i % 7) * 40;

    for (size_t j = 0; j < extra && n < len; j++) {
        buf[n++] = (char)('a' + (i + (long)j) % 26);
    }
    return n;
}

typedef struct slot {
    rh_gcs_op_t op;
    char        key[64];
    char        val[512];
} slot_t;

static slot_t slots[WINDOW];

static void wait_window(long target)
{
    if (rank_wait_count(&finished, target, 120.0) != 0) {
        fprintf(stderr, "rank %d: GCS answers stopped at %ld of %ld\n",
                rh_rank(), atomic_load(&finished), target);
        exit(1);
    }
}

static void write_all(int me, long nkeys, uint64_t *versions)
{
    for (long base = 0; base < nkeys; base += WINDOW) {
        long n = nkeys - base < WINDOW ? nkeys - base : WINDOW;

        atomic_store(&finished, 0);
        for (long j = 0; j < n; j++) {
            slot_t *s = &slots[j];

            memset(&s->op, 0, sizeof(s->op));
            s->op.table = RH_GCS_T_TEST;
            s->op.klen = (size_t)key_of(s->key, sizeof(s->key), me, base + j);
            s->op.key = s->key;
            s->op.vlen = value_of(s->val, sizeof(s->val), me, base + j);
            s->op.value = s->val;
            s->op.done = on_done;
            CHECK(rh_gcs_put_async(&s->op));
        }
        wait_window(n);
        for (long j = 0; j < n; j++) {
            if (slots[j].op.status != RH_OK || slots[j].op.version == 0) {
                fprintf(stderr, "rank %d: put %ld: %s, version %llu\n", me,
                        base + j, rh_status_string(slots[j].op.status),
                        (unsigned long long)slots[j].op.version);
                exit(1);
            }
            versions[base + j] = slots[j].op.version;
        }
    }
}

static void read_all(int me, int owner, long nkeys, long step,
                     const uint64_t *versions)
{
    char want[512];

    for (long base = 0; base < nkeys; base += WINDOW * step) {
        long n = 0;

        atomic_store(&finished, 0);
        for (long i = base; i < nkeys && n < WINDOW; i += step, n++) {
            slot_t *s = &slots[n];

            memset(&s->op, 0, sizeof(s->op));
            s->op.table = RH_GCS_T_TEST;
            s->op.klen = (size_t)key_of(s->key, sizeof(s->key), owner, i);
            s->op.key = s->key;
            s->op.done = on_done;
            CHECK(rh_gcs_get_async(&s->op));
        }
        wait_window(n);
        for (long j = 0; j < n; j++) {
            long i = base + j * step;
            slot_t *s = &slots[j];
            size_t wlen = value_of(want, sizeof(want), owner, i);

            if (s->op.status != RH_OK || s->op.out_len != wlen ||
                memcmp(s->op.out, want, wlen) != 0 ||
                (versions != NULL && s->op.version != versions[i])) {
                fprintf(stderr, "rank %d: key %d/%ld read back wrong: %s, "
                        "%zu bytes, version %llu\n", me, owner, i,
                        rh_status_string(s->op.status), s->op.out_len,
                        (unsigned long long)s->op.version);
                exit(1);
            }
            free(s->op.out);
        }
    }
}

/* Every rank tries to create one key by compare-and-swap: one wins. */
static void contend(int me)
{
    char mine[16];
    void *val;
    size_t len;
    uint64_t v = 0;
    rh_status_t st;

    snprintf(mine, sizeof(mine), "%d", me);
    st = rh_gcs_cas(RH_GCS_T_TEST, "contended", 9, mine, strlen(mine), 0, &v);
    if (st != RH_OK && st != RH_ERR_CONFLICT) {
        CHECK(st);
    }
    CHECK(rh_gcs_get(RH_GCS_T_TEST, "contended", 9, &val, &len, NULL));
    if ((st == RH_OK) != (len == strlen(mine) && memcmp(val, mine, len) ==
                          0)) {
        fprintf(stderr, "rank %d: cas said %s but the key holds %.*s\n", me,
                rh_status_string(st), (int)len, (char *)val);
        exit(1);
    }
    free(val);
    if (st == RH_OK) {
        printf("rank %d: CAS WON\n", me);
    }
}

static char reuse_value[8];
static char reuse_other[32];
static _Atomic int reuse_status = 1;

/* The owner's next use of its op and buffer: another key, another value. */
static void on_reuse_done(rh_gcs_op_t *op)
{
    memcpy(reuse_value, "WRONG", 6);
    op->key = reuse_other;
    op->klen = strlen(reuse_other);
    atomic_store(&reuse_status, (int)op->status);
}

static void check_reuse(int me)
{
    char key[32];
    rh_gcs_op_t op;
    double end = rank_now() + 60.0;
    rh_status_t st;
    void *val = NULL;
    size_t len = 0;

    snprintf(key, sizeof(key), "reuse/%d", me);
    snprintf(reuse_other, sizeof(reuse_other), "reuse/%d/other", me);
    memcpy(reuse_value, "RIGHT", 6);
    memset(&op, 0, sizeof(op));
    op.table = RH_GCS_T_TEST;
    op.key = key;
    op.klen = strlen(key);
    op.value = reuse_value;
    op.vlen = 6;
    op.done = on_reuse_done;
    rh_gcs_test_fail_first();
    CHECK(rh_gcs_put_async(&op));
    if (atomic_load(&reuse_status) != RH_ERR_NO_QUORUM) {
        fprintf(stderr, "rank %d: the write was not failed before its "
                "send (%d)\n", me, atomic_load(&reuse_status));
        exit(1);
    }
    while ((st = rh_gcs_get(RH_GCS_T_TEST, key, strlen(key), &val, &len,
                            NULL)) == RH_ERR_NOT_FOUND && rank_now() < end) {
        rank_nap();
    }
    if (st != RH_OK || len != 6 || memcmp(val, "RIGHT", 6) != 0) {
        fprintf(stderr, "rank %d: %s holds %s, not what was asked\n", me,
                key, st == RH_OK ? (char *)val : rh_status_string(st));
        exit(1);
    }
    free(val);
    if (rh_gcs_get(RH_GCS_T_TEST, reuse_other, strlen(reuse_other), &val,
                   &len, NULL) != RH_ERR_NOT_FOUND) {
        fprintf(stderr, "rank %d: the owner's next key was written\n", me);
        exit(1);
    }
    printf("rank %d: GCS REUSE OK\n", me);
}

int main(int argc, char **argv)
{
    long nkeys = argc > 1 ? atol(argv[1]) : 100000;
    uint64_t *versions;
    int me, n;
    char dkey[32];
    void *val;
    size_t len;

    CHECK(rh_init(&argc, &argv, NULL));
    me = rh_rank();
    n = rh_size();
    nkeys /= n;
    versions = calloc((size_t)nkeys + 1, sizeof(*versions));
    if (versions == NULL) {
        return 1;
    }
    check_reuse(me);
    write_all(me, nkeys, versions);
    read_all(me, me, nkeys, 1, versions);
    printf("rank %d: GCS KEYS OK %ld\n", me, nkeys);
    contend(me);
    snprintf(dkey, sizeof(dkey), "done/%d", me);
    CHECK(rh_gcs_put(RH_GCS_T_TEST, dkey, strlen(dkey), "1", 1, NULL));

    if (me == 0) {
        for (int r = 0; r < n; r++) {
            double end = rank_now() + 120.0;
            rh_status_t st;

            snprintf(dkey, sizeof(dkey), "done/%d", r);
            while ((st = rh_gcs_get(RH_GCS_T_TEST, dkey, strlen(dkey), &val,
                                    &len, NULL)) == RH_ERR_NOT_FOUND &&
                   rank_now() < end) {
                rank_nap();
            }
            CHECK(st);
            free(val);
            read_all(me, r, nkeys, 97, NULL);
        }
        CHECK(rh_gcs_del(RH_GCS_T_TEST, "contended", 9));
        if (rh_gcs_del(RH_GCS_T_TEST, "contended", 9) != RH_ERR_NOT_FOUND ||
            rh_gcs_get(RH_GCS_T_TEST, "contended", 9, &val, &len, NULL) !=
            RH_ERR_NOT_FOUND) {
            fprintf(stderr, "rank 0: a deleted key is still there\n");
            return 1;
        }
        printf("rank 0: GCS CROSS OK\n");
    }
    free(versions);
    CHECK(rh_finalize());
    return 0;
}
