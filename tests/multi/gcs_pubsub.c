/*
 * GCS pub-sub over real ranks. Every rank subscribes to one key ("hot"),
 * to a prefix ("p/") and to the whole test table, then every rank writes
 * M updates of "hot", M of keys under "p/" and M under "q/", and deletes
 * one key. Each subscriber must see every update exactly once, and the
 * updates of each key in the order the chain applied them (versions rise,
 * and so do the values each writer gave "hot", one write at a time).
 *
 * usage: gcs_pubsub [M]   (default 2000)
 * Prints "PUBSUB OK key=K prefix=P table=T" on each rank.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "gcs/gcs.h"
#include "rank_util.h"

#define SLOTS 4096
#define WINDOW 128

typedef struct seen {
    _Atomic long n;
    long         bad;
    uint64_t     last_version[SLOTS];
    long         last_value[SLOTS][64];   /* per writer rank */
} seen_t;

static seen_t key_seen, prefix_seen, table_seen;
static _Atomic long finished;

static unsigned slot_of(const void *key, size_t len)
{
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i < len; i++) {
        h = (h ^ ((const uint8_t *)key)[i]) * 1099511628211ull;
    }
    return (unsigned)(rh_hash_mix64(h) % SLOTS);
}

/* Called on the progress thread, one subscription at a time. */
static void on_update(void *arg, const rh_gcs_update_t *u)
{
    seen_t *s = arg;
    unsigned slot = slot_of(u->key, u->klen);
    int writer;
    long value;

    if (u->op == 1) {
        if (u->version <= s->last_version[slot] ||
            sscanf((const char *)u->value, "%d:%ld", &writer, &value) != 2 ||
            writer < 0 || writer >= 64 ||
            (u->klen == 3 && value <= s->last_value[slot][writer])) {
            s->bad++;
        } else {
            s->last_value[slot][writer] = value;
        }
        s->last_version[slot] = u->version;
    }
    atomic_fetch_add(&s->n, 1);
}

static void on_done(rh_gcs_op_t *op)
{
    (void)op;
    atomic_fetch_add(&finished, 1);
}

typedef struct slot {
    rh_gcs_op_t op;
    char key[32], val[32];
} slot_t;

static slot_t ops[WINDOW];

/* Writes M updates of kind k (0 hot, 1 p/, 2 q/), a window at a time
 * (one at a time for "hot"). Values are "rank:i". */
static void write_updates(int me, long m, int k)
{
    for (long base = 0; base < m; base += WINDOW) {
        long n = m - base < WINDOW ? m - base : WINDOW;

        atomic_store(&finished, 0);
        for (long j = 0; j < n; j++) {
            long i = base + j;
            slot_t *s = &ops[j];

            memset(&s->op, 0, sizeof(s->op));
            if (k == 0) {
                snprintf(s->key, sizeof(s->key), "hot");
            } else {
                snprintf(s->key, sizeof(s->key), "%c/%d/%ld",
                         k == 1 ? 'p' : 'q', me, i % 5);
            }
            snprintf(s->val, sizeof(s->val), "%d:%ld", me, i + 1);
            s->op.table = RH_GCS_T_TEST;
            s->op.key = s->key;
            s->op.klen = strlen(s->key);
            s->op.value = s->val;
            s->op.vlen = strlen(s->val) + 1;
            s->op.done = on_done;
            CHECK(rh_gcs_put_async(&s->op));
            if (k == 0) {
                /* One key: one write in flight, so that this writer's
                 * values of it rise in the log too. */
                if (rank_wait_count(&finished, j + 1, 120.0) != 0) {
                    fprintf(stderr, "rank %d: no answer\n", me);
                    exit(1);
                }
            }
        }
        if (rank_wait_count(&finished, n, 120.0) != 0) {
            fprintf(stderr, "rank %d: GCS answers stopped\n", me);
            exit(1);
        }
        for (long j = 0; j < n; j++) {
            CHECK(ops[j].op.status);
        }
    }
}

/* A barrier through the GCS's job table. */
static void barrier(int me, int n, const char *name)
{
    char key[64];
    void *val;
    size_t len;

    snprintf(key, sizeof(key), "%s/%d", name, me);
    CHECK(rh_gcs_put(RH_GCS_T_JOB, key, strlen(key), "1", 1, NULL));
    for (int r = 0; r < n; r++) {
        double end = rank_now() + 120.0;
        rh_status_t st;

        snprintf(key, sizeof(key), "%s/%d", name, r);
        while ((st = rh_gcs_get(RH_GCS_T_JOB, key, strlen(key), &val, &len,
                                NULL)) == RH_ERR_NOT_FOUND &&
               rank_now() < end) {
            rank_nap();
        }
        CHECK(st);
        free(val);
    }
}

int main(int argc, char **argv)
{
    long m = argc > 1 ? atol(argv[1]) : 2000;
    uint32_t idk, idp, idt;
    int me, n;
    long want_key, want_prefix, want_table;
    char qkey[32];

    CHECK(rh_init(&argc, &argv, NULL));
    me = rh_rank();
    n = rh_size();
    CHECK(rh_gcs_subscribe(RH_GCS_T_TEST, RH_GCS_SUB_KEY, "hot", 3,
                           on_update, &key_seen, &idk));
    CHECK(rh_gcs_subscribe(RH_GCS_T_TEST, RH_GCS_SUB_PREFIX, "p/", 2,
                           on_update, &prefix_seen, &idp));
    CHECK(rh_gcs_subscribe(RH_GCS_T_TEST, RH_GCS_SUB_TABLE, NULL, 0,
                           on_update, &table_seen, &idt));
    if (rh_gcs_subscribe(RH_GCS_T_SUB, RH_GCS_SUB_TABLE, NULL, 0, on_update,
                         &table_seen, &idt) != RH_ERR_INVALID_PARAM) {
        fprintf(stderr, "rank %d: subscribed to the GCS's own table\n", me);
        return 1;
    }
    barrier(me, n, "subscribed");
    write_updates(me, m, 0);
    write_updates(me, m, 1);
    write_updates(me, m, 2);
    snprintf(qkey, sizeof(qkey), "q/%d/0", me);
    CHECK(rh_gcs_del(RH_GCS_T_TEST, qkey, strlen(qkey)));

    want_key = (long)n * m;
    want_prefix = (long)n * m;
    want_table = 3 * (long)n * m + n;
    if (rank_wait_count(&key_seen.n, want_key, 120.0) ||
        rank_wait_count(&prefix_seen.n, want_prefix, 120.0) ||
        rank_wait_count(&table_seen.n, want_table, 120.0)) {
        fprintf(stderr, "rank %d: updates missing: key %ld/%ld prefix "
                "%ld/%ld table %ld/%ld\n", me, atomic_load(&key_seen.n),
                want_key, atomic_load(&prefix_seen.n), want_prefix,
                atomic_load(&table_seen.n), want_table);
        return 1;
    }
    /* Everybody's updates are in: any more would be duplicates. */
    barrier(me, n, "seen");
    if (atomic_load(&key_seen.n) != want_key ||
        atomic_load(&prefix_seen.n) != want_prefix ||
        atomic_load(&table_seen.n) != want_table) {
        fprintf(stderr, "rank %d: updates seen twice: key %ld prefix %ld "
                "table %ld\n", me, atomic_load(&key_seen.n),
                atomic_load(&prefix_seen.n), atomic_load(&table_seen.n));
        return 1;
    }
    if (key_seen.bad || prefix_seen.bad || table_seen.bad) {
        fprintf(stderr, "rank %d: updates out of order: key %ld prefix %ld "
                "table %ld\n", me, key_seen.bad, prefix_seen.bad,
                table_seen.bad);
        return 1;
    }
    CHECK(rh_gcs_unsubscribe(idk));
    if (rh_gcs_unsubscribe(idk) != RH_ERR_INVALID_PARAM) {
        fprintf(stderr, "rank %d: unsubscribed twice\n", me);
        return 1;
    }
    printf("rank %d: PUBSUB OK key=%ld prefix=%ld table=%ld\n", me,
           atomic_load(&key_seen.n), atomic_load(&prefix_seen.n),
           atomic_load(&table_seen.n));
    barrier(me, n, "unsubscribed");
    CHECK(rh_finalize());
    return 0;
}
