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
 *
 * usage: gcs_grow NWRITES midjoin
 * A reconfiguration mid-join. Rank 0, the leader, holds joiners (the
 * GCS's test hook: they stay joining). The chain's head dies; a rank J
 * joins and takes the tail's state; writes go on and reach J from the
 * tail; then that tail dies too, mid-stream, while J is still joining.
 * The one member left, the new tail, must send J the whole state again
 * (not only what it kept): J says it caught up again under the new epoch.
 * Then joiners go free, the chain grows back to three, every key reads
 * back from the tail; the last original member dies, the chain grows back
 * again from J's copy, every key reads back once more and the subscriber
 * saw each update once, in order. Prints "GCS MIDJOIN OK".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcs/gcs.h"
#include "rank_util.h"

#define KEYS 1000
#define WINDOW 256
#define WAIT_S 60.0

#include "gcs_stream.h"

static int dead[64];

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

/* Writes the stream on up to upto: 0, or -1 (printed). */
static int write_upto(long *done, long upto)
{
    while (*done < upto) {
        long n = upto - *done < WINDOW ? upto - *done : WINDOW;

        if (stream_window(0, *done, n) != 0 ||
            stream_ack_window(*done, n) != 0) {
            return -1;
        }
        *done += n;
    }
    return 0;
}

static void kill_member(uint32_t shard, int rank, long done)
{
    CHECK(rh_am_send_wait((uint32_t)rank, DIE, NULL, 0, NULL, 0));
    dead[rank] = 1;
    printf("rank 0: killed rank %d of shard %u's chain after %ld writes\n",
           rank, shard, done);
    fflush(stdout);
}

/* Waits until rank, once dead, has left shard's chain in this rank's
 * configuration, then until a rank joining it said it caught up under
 * that configuration: that rank, or -1 (printed). */
static int await_caught(uint32_t shard, int gone)
{
    double end = rank_now() + WAIT_S;
    int chain[8], len, in = 1, j = -1;

    while (in && rank_now() < end) {
        len = rh_gcs_chain(shard, chain, 8);
        in = 0;
        for (int i = 0; i < len; i++) {
            in |= chain[i] == gone;
        }
        if (in) {
            rank_nap();
        }
    }
    while (!in && (j = rh_gcs_test_caught(shard)) < 0 && rank_now() < end) {
        rank_nap();
    }
    if (j < 0) {
        fprintf(stderr, "rank 0: %s\n", in ? "the dead rank stayed in the "
                "chain" : "no joining rank caught up");
    }
    return j;
}

static int mid_join(uint32_t shard, const int *orig, long nwrites)
{
    int chain[8], j, again;
    long done = 0;

    rh_gcs_test_hold_joins(1);
    if (write_upto(&done, nwrites / 5) != 0) {
        return 1;
    }
    kill_member(shard, orig[0], done);
    if (write_upto(&done, 2 * nwrites / 5) != 0 ||
        (j = await_caught(shard, orig[0])) < 0) {
        return 1;
    }
    printf("rank 0: rank %d caught up with shard %u, held joining\n", j,
           shard);
    /* These reach J from the tail, which then dies with writes in flight:
     * J's copy is the old tail's, which the new tail may be ahead of. */
    if (write_upto(&done, 3 * nwrites / 5) != 0) {
        return 1;
    }
    kill_member(shard, orig[2], done);
    if (write_upto(&done, 4 * nwrites / 5) != 0 ||
        (again = await_caught(shard, orig[2])) < 0) {
        return 1;
    }
    if (again != j) {
        fprintf(stderr, "rank 0: rank %d joins now, not rank %d\n", again,
                j);
        return 1;
    }
    printf("rank 0: rank %d caught up again with shard %u after its tail "
           "died mid-join\n", j, shard);
    fflush(stdout);
    rh_gcs_test_hold_joins(0);
    if (await_grown(shard, chain) != 3 || !stream_read_back()) {
        fprintf(stderr, "rank 0: the chain did not grow back, or lost keys, "
                "after a death mid-join\n");
        return 1;
    }
    /* Now only J's copy and those taken from it are left. */
    kill_member(shard, orig[1], done);
    if (write_upto(&done, nwrites) != 0 ||
        await_grown(shard, chain) != 3 || !stream_read_back() ||
        stream_check_updates(nwrites, WAIT_S) != 0) {
        fprintf(stderr, "rank 0: keys or updates lost once only ranks that "
                "joined hold the shard\n");
        return 1;
    }
    printf("rank 0: GCS MIDJOIN OK: %ld writes, a tail died while rank %d "
           "joined, every key read back from ranks that joined, each update "
           "seen once in order\n", nwrites, j);
    fflush(stdout);
    CHECK(rh_finalize());
    return 0;
}

int main(int argc, char **argv)
{
    long nwrites = argc > 1 ? atol(argv[1]) : 100000;
    long done = 0;
    int masters[3], chain[8], orig[3], kills = 0;
    long at[3];
    uint32_t sub, shard = UINT32_MAX;
    int midjoin = argc > 2 && strcmp(argv[2], "midjoin") == 0;

    for (int i = 0; i < 3; i++) {
        at[i] = argc > 4 ? atol(argv[2 + i]) : nwrites * (3 + 2 * i) / 10;
    }
    stream_start(&argc, &argv, 6, 4, "gcs_grow");
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
    stream_keys_of_shard(shard);
    CHECK(rh_gcs_subscribe(RH_GCS_T_TEST, RH_GCS_SUB_PREFIX, "k", 1,
                           on_update, NULL, &sub));
    if (midjoin) {
        if (masters[0] != 0) {
            fprintf(stderr, "rank 0: not the leader\n");
            return 1;
        }
        return mid_join(shard, orig, nwrites);
    }
    while (done < nwrites) {
        long n = nwrites - done < WINDOW ? nwrites - done : WINDOW;

        if (kills < 3 && done >= at[kills]) {
            /* Grown back (after the first), every key there, then the
             * next original member dies. */
            if (kills > 0 && (await_grown(shard, chain) != 3 ||
                              !stream_read_back())) {
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
        if (stream_window(0, done, n) != 0 ||
            stream_ack_window(done, n) != 0) {
            return 1;
        }
        done += n;
    }
    /* Only ranks that joined hold the shard now. */
    if (await_grown(shard, chain) != 3 || !stream_read_back()) {
        fprintf(stderr, "rank 0: the chain did not grow back, or lost keys, "
                "after the third death\n");
        return 1;
    }
    /* The last write goes through the grown chain. */
    if (stream_check_updates(nwrites, WAIT_S) != 0) {
        return 1;
    }
    printf("rank 0: GCS GROW OK: %ld writes, 3 original members dead, every "
           "key read back from members that joined, each update seen once "
           "in order\n", nwrites);
    fflush(stdout);
    CHECK(rh_finalize());
    return 0;
}
