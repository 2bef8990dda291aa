/*
 * The node table and a placement group's record outlive the death of a
 * replica: every rank writes its records (rank/R, node/N, load/R) through
 * the GCS; rank 0 creates a STRICT_SPREAD group of 2 bundles and, once the
 * GCS holds every record and the group's placed record, kills a member of
 * the chain of the group's shard (its tail when that is not rank 0, else
 * its head). Once the chain re-formed, rank 0 reads back every rank's and
 * node's record (the dead rank's too), the group's placement (the nodes
 * rh_pg_bundle_node names), the dead rank's dead/R, and sees its own load
 * record beat again through the new chain; then it removes the group and
 * reads the record's removed state.
 *
 * usage: gcs_nodes   (4 ranks on 4 nodes)
 * Rank 0 prints "NODES OK" when all of that holds, else what did not.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/pgroup.h"
#include "gcs/gcs.h"
#include "kill_signal.h"
#include "rank_util.h"
#include "transport/am.h"

#define WAIT_S 60.0

/* The value of a node-table key as a string (malloc), waiting up to
 * WAIT_S for it to be written; NULL when it never was. */
static char *read_node(const char *key)
{
    double end = rank_now() + WAIT_S;

    for (;;) {
        void *v = NULL;
        size_t len = 0;
        rh_status_t st = rh_gcs_get(RH_GCS_T_NODE, key, strlen(key), &v,
                                    &len, NULL);

        if (st == RH_OK) {
            char *s = malloc(len + 1);

            if (s != NULL) {
                memcpy(s, v, len);
                s[len] = '\0';
            }
            free(v);
            return s;
        }
        if (st != RH_ERR_NOT_FOUND || rank_now() > end) {
            fprintf(stderr, "rank 0: %s: %s\n", key, rh_status_string(st));
            return NULL;
        }
        rank_nap();
    }
}

/* 1 when every rank's and node's record reads back as written. */
static int check_records(int n)
{
    int ok = 1;

    for (int r = 0; r < n; r++) {
        char key[32], want[64], *v;

        /* 4 ranks on 4 nodes: rank r is node r's only rank */
        snprintf(key, sizeof(key), "rank/%d", r);
        snprintf(want, sizeof(want), "rank %d node %d host ", r, r);
        v = read_node(key);
        if (v == NULL || strncmp(v, want, strlen(want)) != 0 ||
            strstr(v, " resources CPU=") == NULL) {
            fprintf(stderr, "rank 0: %s reads \"%s\"\n", key, v ? v : "");
            ok = 0;
        }
        free(v);
        snprintf(key, sizeof(key), "node/%d", r);
        snprintf(want, sizeof(want), " ranks %d", r);
        v = read_node(key);
        if (v == NULL || strncmp(v, "node ", 5) != 0 ||
            strlen(v) < strlen(want) ||
            strcmp(v + strlen(v) - strlen(want), want) != 0) {
            fprintf(stderr, "rank 0: %s reads \"%s\"\n", key, v ? v : "");
            ok = 0;
        }
        free(v);
    }
    return ok;
}

/* This rank's load beat number (0: none). */
static unsigned long long my_beat(void)
{
    char key[32], *v;
    unsigned long long beat = 0;
    int r;

    snprintf(key, sizeof(key), "load/%d", rh_rank());
    v = read_node(key);
    if (v == NULL || sscanf(v, "rank %d beat %llu backlog ", &r,
                            &beat) != 2 || r != rh_rank()) {
        fprintf(stderr, "rank 0: %s reads \"%s\"\n", key, v ? v : "");
        beat = 0;
    }
    free(v);
    return beat;
}

/* Waits for the group's record to reach state; 1 when it did. */
static int wait_record(rh_pg_t pg, int state, rh_pg_record_t *rec)
{
    double end = rank_now() + WAIT_S;
    rh_status_t st;

    for (;;) {
        st = rh_pg_record_read(pg, rec);
        if (st == RH_OK && rec->state == state) {
            return 1;
        }
        if (st == RH_OK) {
            rh_pg_record_free(rec);
        }
        if ((st != RH_OK && st != RH_ERR_NOT_FOUND) || rank_now() > end) {
            fprintf(stderr, "rank 0: group record: %s (%s)\n",
                    rh_status_string(st), rh_last_error());
            return 0;
        }
        rank_nap();
    }
}

/* 1 when the group's record names the nodes rh_pg_bundle_node does. After
 * a death the group's bundle on the dead rank is placed again: its record
 * and this rank's view of it change one after the other, so they are
 * looked at until they agree. */
static int check_placed(rh_pg_t pg)
{
    double end = rank_now() + WAIT_S;
    rh_pg_record_t rec;
    int ok;

    for (;;) {
        if (!wait_record(pg, RH_PG_REC_PLACED, &rec)) {
            return 0;
        }
        ok = rec.n == 2 && rec.owner == 0 &&
             rec.strategy == RH_PG_STRICT_SPREAD;
        for (int b = 0; ok && b < rec.n; b++) {
            int node = -1;

            CHECK(rh_pg_bundle_node(pg, b, &node));
            ok = rec.nodes[b] == node && rec.cpus[b] == 1;
        }
        rh_pg_record_free(&rec);
        if (ok) {
            return 1;
        }
        if (rank_now() > end) {
            fprintf(stderr, "rank 0: the group's record does not match its "
                    "placement\n");
            return 0;
        }
        rank_nap();
    }
}

int main(int argc, char **argv)
{
    int me, n, chain[8], len, victim, ok;
    uint32_t shard;
    char key[32];
    rh_bundle_t b[2] = { { 1, NULL }, { 1, NULL } };
    rh_pg_t pg;

    CHECK(rank_kill_signals_register());
    CHECK(rh_init(&argc, &argv, NULL));
    me = rh_rank();
    n = rh_size();
    if (n != 4 || rh_num_nodes() != 4) {
        fprintf(stderr, "gcs_nodes runs on 4 ranks on 4 nodes\n");
        return 1;
    }
    if (me == 0) {
        unsigned long long beat;
        char *v;
        double end;

        CHECK(rh_pg_create(b, 2, RH_PG_STRICT_SPREAD, &pg));
        CHECK(rh_pg_wait(pg, 30000));
        ok = check_records(n) && check_placed(pg) && my_beat() > 0;
        snprintf(key, sizeof(key), "pg/%llx", (unsigned long long)pg);
        shard = rh_gcs_shard_of(RH_GCS_T_PGROUP, key, strlen(key));
        len = rh_gcs_chain(shard, chain, 8);
        victim = chain[len - 1] != 0 ? chain[len - 1] : chain[0];
        printf("rank 0: records in, group in shard %u, chain of %d; "
               "killing rank %d\n", shard, len, victim);
        fflush(stdout);
        CHECK(rh_am_send_wait((uint32_t)victim, DIE, NULL, 0, NULL, 0));
        end = rank_now() + WAIT_S;
        while (rh_gcs_chain(shard, chain, 8) == len && rank_now() < end) {
            rank_nap();
        }
        ok = ok && check_records(n) && check_placed(pg);
        snprintf(key, sizeof(key), "dead/%d", victim);
        v = read_node(key);
        ok = ok && v != NULL;
        free(v);
        /* This rank's liveness goes on through the re-formed chains. */
        beat = my_beat();
        end = rank_now() + WAIT_S;
        while (ok && beat != 0 && my_beat() <= beat && rank_now() < end) {
            rank_nap();
        }
        ok = ok && beat != 0 && my_beat() > beat;
        if (ok) {
            rh_pg_record_t rec;

            CHECK(rh_pg_remove(pg));
            ok = wait_record(pg, RH_PG_REC_REMOVED, &rec);
            rh_pg_record_free(&rec);
        }
        printf("rank 0: %s\n", ok ? "NODES OK" : "NODES LOST");
        fflush(stdout);
        for (int r = 1; r < n; r++) {
            if (r != victim) {
                CHECK(rh_am_send_wait((uint32_t)r, GO, NULL, 0, NULL, 0));
            }
        }
    } else if (rank_wait_count(&rank_go, 1, 180.0) != 0) {
        fprintf(stderr, "rank %d: no go\n", me);
        return 1;
    }
    CHECK(rh_finalize());
    return 0;
}
