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
#define KEYS 200
#define WINDOW 64
#define VICTIM 3

static _Atomic long finished;
static long acked[KEYS];   /* the value of the last acknowledged write */
static char keys[KEYS][16];
static double timeout_s;

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

typedef struct slot {
    rh_gcs_op_t op;
    long value;
    int key;
} slot_t;

static slot_t slots[WINDOW];

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

int main(int argc, char **argv)
{
    const char *t = getenv("RAYHPC_FAILURE_TIMEOUT_MS");
    long nwrites = argc > 1 ? atol(argv[1]) : 2000;

    timeout_s = (t != NULL ? atof(t) : 5000.0) / 1000.0;
    CHECK(rh_am_register(DIE, 0, 0, on_die, NULL));
    CHECK(rh_init(&argc, &argv, NULL));
    if (rh_size() != 4) {
        fprintf(stderr, "gcs_suspect runs on 4 ranks\n");
        return 1;
    }
    if (rh_rank() != 0) {
        CHECK(rh_finalize());
        return 0;
    }
    for (int i = 0; i < KEYS; i++) {
        snprintf(keys[i], sizeof(keys[i]), "s%d", i);
    }
    write_all(0, nwrites);
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
            return 1;
        }
    }
    printf("rank 0: GCS SUSPECT OK: %ld writes, every one read back; rank "
           "%d dropped, ranks 1 and 2 kept\n", 2 * nwrites, VICTIM);
    CHECK(rh_finalize());
    return 0;
}
