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
