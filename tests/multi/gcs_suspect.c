/*
 * A master suspects the other ranks after a silence and then hears from
 * them again: the suspicion, never committed, is withdrawn, and a later
 * real death still re-forms the chains with a quorum.
 *
 * usage: gcs_suspect NWRITES   (4 ranks on 4 nodes, RAYHPC_GCS_SHARDS=2)
 * The masters are ranks 0, 1, 2; rank 0 leads. Rank 0 writes NWRITES
 * updates to keys of both shards, then turns deaf to the membership
 * messages (the GCS's test hook, as a starved progress thread would be)
 * until it suspects ranks 1, 2 and 3, the two other masters among them;
 * deaf to their votes too, it commits no proposal to drop them. It hears
 * them again and waits until it suspects none; then it has rank 3 (shard 1's
 * tail) kill itself, writes NWRITES more, and reads every key back: the
 * value of its last acknowledged write must be there, dead/3 recorded,
 * ranks 1 and 2 never dropped. Prints "GCS SUSPECT OK".
 *
 * usage: gcs_suspect NWRITES one
 * Rank 0, the leader, turns deaf to rank 1 alone (a master the others
 * still hear). It comes to suspect rank 1 and proposes to drop it; rank 2
 * hears rank 1 and refuses, so no configuration is committed and rank 1
 * stays in its chains. Still deaf to rank 1, rank 0 has rank 3 kill
 * itself: the drop of rank 3 (with rank 2's vote) re-forms the chains,
 * every acknowledged write reads back, and only dead/3 is recorded.
 * Prints "GCS DEAF OK".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gcs/gcs.h"
#include "rank_util.h"

#define KEYS 200
#define WINDOW 64
#define VICTIM 3

#include "gcs_stream.h"

static double timeout_s;

/* Writes nwrites updates, from value base + 1, a window at a time; a
 * write refused for want of a quorum (chains re-forming) is tried again
 * until ten timeouts passed. */
static void write_all(long base, long nwrites)
{
    double end = rank_now() + 10 * timeout_s;
    long done = 0;

    while (done < nwrites) {
        long n = nwrites - done < WINDOW ? nwrites - done : WINDOW;
        long ok = 0;

        if (stream_window(base, done, n) != 0) {
            exit(1);
        }
        for (long j = 0; j < n; j++) {
            if (slots[j].op.status == RH_OK) {
                if (slots[j].value > acked[slots[j].key]) {
                    acked[slots[j].key] = slots[j].value;
                }
                ok++;
            } else if (slots[j].op.status != RH_ERR_NO_QUORUM ||
                       rank_now() > end) {
                fprintf(stderr, "rank 0: write %ld failed: %s (%s)\n",
                        base + done + j, rh_status_string(slots[j].op.status),
                        rh_last_error());
                exit(1);
            }
        }
        if (ok == n) {
            done += n;
        } else {
            rank_nap();   /* the whole window again, in order */
        }
    }
}

/* Waits until rank 0 suspects (want 1) or no longer suspects (want 0)
 * each of ranks 1..3. */
static int wait_suspicion(int want, double limit_s)
{
    double end = rank_now() + limit_s;

    for (;;) {
        int held = 1;

        for (int r = 1; r <= VICTIM; r++) {
            held &= rh_gcs_test_suspects(r) == want;
        }
        if (held) {
            return 0;
        }
        if (rank_now() > end) {
            for (int r = 1; r <= VICTIM; r++) {
                if (rh_gcs_test_suspects(r) != want) {
                    fprintf(stderr, "rank 0: rank %d %s after %.0f s\n", r,
                            want ? "never suspected" : "still suspected",
                            limit_s);
                }
            }
            return -1;
        }
        rank_nap();
    }
}

/* Ranks 1 and 2 were never recorded dead, rank 3 was (waiting for the
 * record up to ten timeouts): 0, or -1 (printed). */
static int check_deaths(void)
{
    for (int r = 1; r <= VICTIM; r++) {
        char key[32];
        void *val = NULL;
        size_t len;
        rh_status_t st;
        double end = rank_now() + 10 * timeout_s;

        snprintf(key, sizeof(key), "dead/%d", r);
        while ((st = rh_gcs_get(RH_GCS_T_NODE, key, strlen(key), &val, &len,
                                NULL)) == RH_ERR_NOT_FOUND &&
               r == VICTIM && rank_now() < end) {
            rank_nap();
        }
        free(val);
        if (st != (r == VICTIM ? RH_OK : RH_ERR_NOT_FOUND)) {
            fprintf(stderr, "rank 0: rank %d %s\n", r, r == VICTIM ?
                    "killed, its death never recorded" :
                    "alive, recorded dead");
            return -1;
        }
    }
    return 0;
}

/* Whether rank 1 is in shard 0's chain (ranks 0, 1, 2 at start). */
static int one_in_chain(void)
{
    int chain[8], n = rh_gcs_chain(0, chain, 8);

    for (int i = 0; i < n; i++) {
        if (chain[i] == 1) {
            return 1;
        }
    }
    return 0;
}

/* The leader deaf to master 1 alone: rank 2's refusal keeps rank 1. */
static int deaf_to_one(long nwrites)
{
    double end = rank_now() + 20 * timeout_s;

    rh_gcs_test_deaf_to(1);
    while (rh_gcs_test_refusals() == 0 && one_in_chain() &&
           rank_now() < end) {
        rank_nap();
    }
    if (!one_in_chain()) {
        fprintf(stderr, "rank 0: epoch %llu dropped rank 1 while rank 2 "
                "still heard it\n", (unsigned long long)rh_gcs_epoch());
        return -1;
    }
    if (rh_gcs_test_refusals() == 0) {
        fprintf(stderr, "rank 0: never proposed to drop rank 1\n");
        return -1;
    }
    printf("rank 0: rank 2 refused to drop rank 1\n");
    fflush(stdout);
    CHECK(rh_am_send_wait(VICTIM, DIE, NULL, 0, NULL, 0));
    write_all(nwrites, nwrites);
    if (!stream_read_back() || check_deaths() != 0) {
        return -1;
    }
    if (!one_in_chain()) {
        fprintf(stderr, "rank 0: rank 1 left shard 0's chain\n");
        return -1;
    }
    rh_gcs_test_deaf_to(-1);
    printf("rank 0: GCS DEAF OK: %ld writes, every one read back; rank %d "
           "dropped, rank 1 kept\n", 2 * nwrites, VICTIM);
    return 0;
}

int main(int argc, char **argv)
{
    const char *t = getenv("RAYHPC_FAILURE_TIMEOUT_MS");
    long nwrites = argc > 1 ? atol(argv[1]) : 2000;

    timeout_s = (t != NULL ? atof(t) : 5000.0) / 1000.0;
    stream_start(&argc, &argv, 4, 0, "gcs_suspect");
    for (int i = 0; i < KEYS; i++) {
        snprintf(keys[i], sizeof(keys[i]), "s%d", i);
    }
    write_all(0, nwrites);
    if (argc > 2 && strcmp(argv[2], "one") == 0) {
        if (deaf_to_one(nwrites) != 0) {
            return 1;
        }
        CHECK(rh_finalize());
        return 0;
    }
    rh_gcs_test_deaf(1);
    if (wait_suspicion(1, 20 * timeout_s) != 0) {
        return 1;
    }
    printf("rank 0: suspects ranks 1, 2, 3\n");
    fflush(stdout);
    rh_gcs_test_deaf(0);
    if (wait_suspicion(0, 10 * timeout_s) != 0) {
        fprintf(stderr, "rank 0: heard from again, the ranks stay "
                "suspects\n");
        return 1;
    }
    printf("rank 0: suspicion withdrawn\n");
    fflush(stdout);
    CHECK(rh_am_send_wait(VICTIM, DIE, NULL, 0, NULL, 0));
    write_all(nwrites, nwrites);
    if (!stream_read_back() || check_deaths() != 0) {
        return 1;
    }
    printf("rank 0: GCS SUSPECT OK: %ld writes, every one read back; rank "
           "%d dropped, ranks 1 and 2 kept\n", 2 * nwrites, VICTIM);
    CHECK(rh_finalize());
    return 0;
}
