/*
 * The job's record and a spilled object's record outlive the death of a
 * replica: rank 0 reads the job's record (running, 4 ranks on 4 nodes,
 * this job's id, started in the last hour), then puts 12 MiB objects into
 * a 32 MiB store until the store spilled one, and reads that object's
 * record (owner 0, its size, node 0). It kills a member of the chain of
 * the object record's shard (its tail when that is not rank 0, else its
 * head), waits for the chain to re-form and reads both records back; then
 * it gets the spilled object (read back into the store) and sees its
 * record deleted. The job's end is written in rh_finalize: with
 * RAYHPC_GCS_DUMP=1 rank 0's dump says "gcs job state finished written 2
 * of 2".
 *
 * usage: gcs_records   (4 ranks on 4 nodes; RAYHPC_STORE_SIZE=32M and a
 * RAYHPC_SPILL_DIR)
 * Rank 0 prints "RECORDS OK" when all of that holds, else what did not.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core.h"
#include "core/job_record.h"
#include "core/object_record.h"
#include "gcs/gcs.h"
#include "kill_signal.h"
#include "rank_util.h"
#include "transport/am.h"

#define WAIT_S 60.0
#define OBJ_BYTES (12u << 20)
#define NOBJ 4

static rh_object_id_t id_of(rh_ref_t ref)
{
    rh_object_id_t id = { ref.hi, ref.lo };

    return id;
}

/* 1 when the job's record says this job runs on 4 ranks on 4 nodes. */
static int check_job(void)
{
    double end = rank_now() + WAIT_S;
    rh_job_record_t j;
    rh_status_t st;
    time_t now = time(NULL);

    while ((st = rh_job_record_read(&j)) == RH_ERR_NOT_FOUND &&
           rank_now() < end) {
        rank_nap();
    }
    if (st != RH_OK || j.state != RH_JOB_RUNNING || j.ranks != 4 ||
        j.nodes != 4 || strcmp(j.id, rh_core_job_id()) != 0 ||
        j.end_ms != 0 || j.start_ms / 1000 > (uint64_t)now ||
        j.start_ms / 1000 + 3600 < (uint64_t)now) {
        fprintf(stderr, "rank 0: job record: %s; state %d ranks %d nodes %d "
                "id %s start %llu\n", rh_status_string(st), j.state, j.ranks,
                j.nodes, j.id, (unsigned long long)j.start_ms);
        return 0;
    }
    return 1;
}

/* Waits for id's record on node 0 to be there (want 1) or gone (0). */
static int check_object(rh_object_id_t id, int want)
{
    double end = rank_now() + WAIT_S;
    rh_object_record_t r;
    rh_status_t st;

    for (;;) {
        st = rh_object_record_read(id, 0, &r);
        if (want && st == RH_OK) {
            if (r.owner != 0 || r.node != 0 || r.size != OBJ_BYTES) {
                fprintf(stderr, "rank 0: object record: owner %d node %d "
                        "size %llu\n", r.owner, r.node,
                        (unsigned long long)r.size);
                return 0;
            }
            return 1;
        }
        if (!want && st == RH_ERR_NOT_FOUND) {
            return 1;
        }
        if ((st != RH_OK && st != RH_ERR_NOT_FOUND) || rank_now() > end) {
            fprintf(stderr, "rank 0: object record (%s): %s\n",
                    want ? "there" : "gone", rh_status_string(st));
            return 0;
        }
        rank_nap();
    }
}

/* Puts objects until one is spilled: its index, -1 when none was. */
static int spill_one(rh_ref_t *refs)
{
    char *buf = malloc(OBJ_BYTES);

    if (buf == NULL) {
        return -1;
    }
    for (int i = 0; i < NOBJ; i++) {
        memset(buf, 'a' + i, OBJ_BYTES);
        CHECK(rh_put(buf, OBJ_BYTES, &refs[i]));
    }
    free(buf);
    /* The record is written once the spill committed: look at each. */
    for (double end = rank_now() + WAIT_S; rank_now() < end; rank_nap()) {
        for (int i = 0; i < NOBJ; i++) {
            rh_object_record_t r;

            if (rh_object_record_read(id_of(refs[i]), 0, &r) == RH_OK) {
                return i;
            }
        }
    }
    fprintf(stderr, "rank 0: no object's spill was recorded\n");
    return -1;
}

int main(int argc, char **argv)
{
    int me, n, chain[8], len, victim, ok, spilled;
    uint32_t shard;
    char key[96];
    rh_ref_t refs[NOBJ];

    CHECK(rank_kill_signals_register());
    CHECK(rh_init(&argc, &argv, NULL));
    me = rh_rank();
    n = rh_size();
    if (n != 4 || rh_num_nodes() != 4) {
        fprintf(stderr, "gcs_records runs on 4 ranks on 4 nodes\n");
        return 1;
    }
    if (me == 0) {
        const void *p;
        size_t plen;
        double end;

        ok = check_job();
        spilled = ok ? spill_one(refs) : -1;
        ok = ok && spilled >= 0 && check_object(id_of(refs[spilled]), 1);
        if (!ok) {
            printf("rank 0: RECORDS LOST\n");
            fflush(stdout);
            exit(1);
        }
        rh_object_record_key(id_of(refs[spilled]), 0, key, sizeof(key));
        shard = rh_gcs_shard_of(RH_GCS_T_OBJECT, key, strlen(key));
        len = rh_gcs_chain(shard, chain, 8);
        victim = chain[len - 1] != 0 ? chain[len - 1] : chain[0];
        printf("rank 0: records in, object %d's in shard %u, chain of %d; "
               "killing rank %d\n", spilled, shard, len, victim);
        fflush(stdout);
        CHECK(rh_am_send_wait((uint32_t)victim, DIE, NULL, 0, NULL, 0));
        end = rank_now() + WAIT_S;
        while (rh_gcs_chain(shard, chain, 8) == len && rank_now() < end) {
            rank_nap();
        }
        ok = check_job() && check_object(id_of(refs[spilled]), 1);
        /* Read back into the store: the spilled copy and its record go. */
        CHECK(rh_get(refs[spilled], &p, &plen, 30000));
        ok = ok && plen == OBJ_BYTES && ((const char *)p)[plen - 1] ==
             'a' + spilled;
        ok = ok && check_object(id_of(refs[spilled]), 0);
        printf("rank 0: %s\n", ok ? "RECORDS OK" : "RECORDS LOST");
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
