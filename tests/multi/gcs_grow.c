/*
 * GCS chains grow back: the three original members of one chain die by
 * SIGKILL one after the other, mid-stream, and each time a live rank
 * joins the chain behind its tail, takes the shard's state and becomes
 * its tail. No acknowledged write may be lost, none applied twice, and a
 * subscriber sees each update once, in order, across every change. After
 * the third death only ranks that joined hold the shard: without growth
 * its data would be gone.
 *
 * usage: gcs_grow NWRITES [AT1 AT2 AT3]   (6 ranks on 4 nodes; shards: one
 * per node; ATn: the kill points, in writes, increasing; default 3, 5 and
 * 7 tenths of NWRITES)
 * Rank 0 picks the shard whose chain holds no master and not itself, and
 * writes NWRITES updates to 1000 keys of it, a window at a time. After 3,
 * 5 and 7 tenths of them (fixed kill points) it waits until the chain has
 * three live members again, reads every key back (from the tail, which
 * joined: the value of its last acknowledged write must be there), and
 * tells the next original member to kill itself. At the end it reads
 * every key back once more and checks what its subscription saw. Prints
 * "GCS GROW OK" and each chain it saw.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcs/gcs.h"
#include "rank_util.h"
#include "transport/am.h"

#define DIE (RH_AM_ID_TEST_FIRST + 8)
#define KEYS 1000
#define WINDOW 256
#define WAIT_S 60.0

static _Atomic long finished;
static _Atomic long updates, disorder;
static long last_seen[KEYS];
static long acked[KEYS];   /* the value of the last acknowledged write */
static char keys[KEYS][16];
static int dead[64];

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

/* Each key's values must come in the order they were written, once. */
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

/* The masters, from the GCS's snapshot lines. */
static int read_masters(int *m)
{
    char *text = NULL, *p;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    int n = 0;

    if (f == NULL) {
        return 0;
    }
    rh_gcs_snapshot(f);
    fclose(f);
    p = text != NULL ? strstr(text, "gcs masters") : NULL;
    if (p != NULL) {
        n = sscanf(p, "gcs masters %d %d %d", &m[0], &m[1], &m[2]);
    }
    free(text);
    return n;
}

/* Waits until shard's chain has three live members again: how many it has
 * (printed). */
static int await_grown(uint32_t shard, int *chain)
{
    double end = rank_now() + WAIT_S;
    int len;

    for (;;) {
        int live = 1;

        len = rh_gcs_chain(shard, chain, 8);
        for (int i = 0; i < len; i++) {
            live &= !dead[chain[i]];
        }
        if ((len == 3 && live) || rank_now() > end) {
            break;
        }
        rank_nap();
    }
    printf("rank 0: shard %u chain:", shard);
    for (int i = 0; i < len; i++) {
        printf(" %d", chain[i]);
    }
    printf(" (epoch %llu)\n", (unsigned long long)rh_gcs_epoch());
    fflush(stdout);
    return len;
}

/* Every key holds its last acknowledged value. */
static int read_back(void)
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

int main(int argc, char **argv)
{
    long nwrites = argc > 1 ? atol(argv[1]) : 100000;
    long done = 0;
    int masters[3], chain[8], orig[3], kills = 0;
    long at[3];
    uint32_t sub, shard = UINT32_MAX;

    for (int i = 0; i < 3; i++) {
        at[i] = argc > 4 ? atol(argv[2 + i]) : nwrites * (3 + 2 * i) / 10;
    }
    CHECK(rh_am_register(DIE, 0, 0, on_die, NULL));
    CHECK(rh_init(&argc, &argv, NULL));
    if (rh_size() != 6 || rh_num_nodes() != 4) {
        fprintf(stderr, "gcs_grow runs on 6 ranks on 4 nodes\n");
        return 1;
    }
    if (rh_rank() != 0) {
        CHECK(rh_finalize());
        return 0;
    }
    if (read_masters(masters) != 3) {
        fprintf(stderr, "rank 0: no masters in the GCS snapshot\n");
        return 1;
    }
    for (uint32_t s = 0; s < 4 && shard == UINT32_MAX; s++) {
        int len = rh_gcs_chain(s, chain, 8), clear = len == 3;

        for (int i = 0; i < len; i++) {
            clear &= chain[i] != 0 && chain[i] != masters[0] &&
                     chain[i] != masters[1] && chain[i] != masters[2];
        }
        if (clear) {
            shard = s;
            memcpy(orig, chain, sizeof(orig));
        }
    }
    if (shard == UINT32_MAX) {
        fprintf(stderr, "rank 0: no chain of 3 without a master\n");
        return 1;
    }
    printf("rank 0: masters %d %d %d; shard %u chain: %d %d %d\n",
           masters[0], masters[1], masters[2], shard, orig[0], orig[1],
           orig[2]);
    for (int i = 0, n = 0; n < KEYS; i++) {
        char k[16];

        snprintf(k, sizeof(k), "k%d", i);
        if (rh_gcs_shard_of(RH_GCS_T_TEST, k, strlen(k)) == shard) {
            memcpy(keys[n++], k, sizeof(k));
        }
    }
    CHECK(rh_gcs_subscribe(RH_GCS_T_TEST, RH_GCS_SUB_PREFIX, "k", 1,
                           on_update, NULL, &sub));
    while (done < nwrites) {
        long n = nwrites - done < WINDOW ? nwrites - done : WINDOW;

        if (kills < 3 && done >= at[kills]) {
            /* Grown back (after the first), every key there, then the
             * next original member dies. */
            if (kills > 0 && (await_grown(shard, chain) != 3 ||
                              !read_back())) {
                fprintf(stderr, "rank 0: the chain did not grow back, or "
                        "lost keys, after %d deaths\n", kills);
                return 1;
            }
            CHECK(rh_am_send_wait((uint32_t)orig[kills], DIE, NULL, 0, NULL,
                                  0));
            dead[orig[kills]] = 1;
            printf("rank 0: killed rank %d of shard %u's chain after %ld "
                   "writes\n", orig[kills], shard, done);
            fflush(stdout);
            kills++;
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
        done += n;
    }
    /* Only ranks that joined hold the shard now. */
    if (await_grown(shard, chain) != 3 || !read_back()) {
        fprintf(stderr, "rank 0: the chain did not grow back, or lost keys, "
                "after the third death\n");
        return 1;
    }
    if (rank_wait_count(&updates, nwrites, WAIT_S) != 0) {
        fprintf(stderr, "rank 0: the subscriber saw %ld of %ld updates\n",
                atomic_load(&updates), nwrites);
        return 1;
    }
    /* A last write through the grown chain: every update before it has
     * been published by the time its own is seen. */
    {
        long v = nwrites + 1;

        CHECK(rh_gcs_put(RH_GCS_T_TEST, keys[0], strlen(keys[0]), &v,
                         sizeof(v), NULL));
        if (rank_wait_count(&updates, nwrites + 1, WAIT_S) != 0) {
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
    printf("rank 0: GCS GROW OK: %ld writes, 3 original members dead, every "
           "key read back from members that joined, each update seen once "
           "in order\n", nwrites);
    fflush(stdout);
    CHECK(rh_finalize());
    return 0;
}
