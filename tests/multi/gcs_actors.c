/*
 * The actor table's records in the GCS outlive the death of an actor's
 * rank, of an owner and of GCS replicas. Rank 0 creates: "keeper" (named,
 * detached, on node 1), "doomed" (on node 2), "phoenix" (restartable once,
 * soft affinity to node 2) and "victim" (on node 1, killed at once);
 * rank 3 creates "orphan" (detached, on node 1) and hands its handle over
 * through the GCS. Once every record reads as created, rank 0 kills
 * rank 3 (the orphan's owner, a replica of three of the four chains),
 * waits for the chains to re-form, then kills rank 2 (the doomed actor's
 * and the phoenix's rank, a replica too). It then reads each record back:
 * keeper alive on rank 1 with its name, doomed dead because its rank
 * failed, phoenix alive again off rank 2 after one restart, victim dead
 * as killed, orphan alive on rank 1 as its dead owner last wrote.
 *
 * usage: gcs_actors   (4 ranks on 4 nodes)
 * Rank 0 prints "ACTOR RECORDS OK" when all of that holds, else what did
 * not.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/actor_record.h"
#include "gcs/gcs.h"
#include "kill_signal.h"
#include "rank_util.h"
#include "transport/am.h"

#define WAIT_S 60.0

static rh_status_t box_init(rh_task_ctx_t *ctx, void **state)
{
    (void)ctx;
    *state = NULL;
    return RH_OK;
}

static rh_status_t box_get(void *state, rh_task_ctx_t *ctx)
{
    int64_t v = 42;

    (void)state;
    return rh_task_return(ctx, 0, &v, sizeof(v));
}

static const rh_method_def_t box_methods[] = { { "get", box_get, 0, 1 } };

static rh_actor_t create(int node, int soft, const char *name, int detached,
                         int max_restarts)
{
    rh_actor_params_t p = { 0 };
    rh_actor_t a;

    p.field_mask = RH_ACTOR_PARAM_FIELD_STRATEGY |
                   RH_ACTOR_PARAM_FIELD_DETACHED |
                   RH_ACTOR_PARAM_FIELD_MAX_RESTARTS;
    p.strategy = RH_STRATEGY_NODE_AFFINITY;
    p.node = node;
    p.soft = soft;
    p.detached = detached;
    p.max_restarts = max_restarts;
    if (name != NULL) {
        p.field_mask |= RH_ACTOR_PARAM_FIELD_NAME;
        p.name = name;
    }
    CHECK(rh_actor_create("Box", NULL, 0, &p, &a));
    CHECK(rh_actor_ready(a, 30000, NULL));
    return a;
}

/* Whether a's record reads state on rank (-1: any rank but not_rank) with
 * restarts, name and a reason that contains why. */
static int record_is(rh_actor_t a, int owner, int state, int rank,
                     int not_rank, uint32_t restarts, const char *name,
                     const char *why, int quiet)
{
    rh_actor_record_t rec;
    rh_status_t st = rh_actor_record_read(a, &rec);
    int ok = st == RH_OK && rec.owner == owner && rec.state == state &&
             (rank >= 0 ? rec.rank == rank : rec.rank != not_rank) &&
             rec.restarts == restarts && strcmp(rec.name, name) == 0 &&
             strstr(rec.why, why) != NULL;

    if (!ok && !quiet) {
        fprintf(stderr, "rank 0: actor %llx/%llx: %s: owner %d state %d "
                "rank %d restarts %u name \"%s\" why \"%s\"\n",
                (unsigned long long)a.hi, (unsigned long long)a.lo,
                rh_status_string(st), rec.owner, rec.state, rec.rank,
                rec.restarts, rec.name, rec.why);
    }
    return ok;
}

/* Waits up to WAIT_S for the record to read so; 1 when it did. */
static int wait_record(rh_actor_t a, int owner, int state, int rank,
                       int not_rank, uint32_t restarts, const char *name,
                       const char *why)
{
    double end = rank_now() + WAIT_S;

    while (!record_is(a, owner, state, rank, not_rank, restarts, name, why,
                      1)) {
        if (rank_now() > end) {
            return record_is(a, owner, state, rank, not_rank, restarts,
                             name, why, 0);
        }
        rank_nap();
    }
    return 1;
}

/* Kills rank victim and waits until the configuration dropped it. */
static void kill_rank(int victim)
{
    uint64_t epoch = rh_gcs_epoch();
    double end = rank_now() + WAIT_S;

    printf("rank 0: killing rank %d\n", victim);
    fflush(stdout);
    CHECK(rh_am_send_wait((uint32_t)victim, DIE, NULL, 0, NULL, 0));
    while (rh_gcs_epoch() == epoch && rank_now() < end) {
        rank_nap();
    }
}

int main(int argc, char **argv)
{
    rh_actor_class_t cls = { 0 };
    int me, n, ok;

    cls.init = box_init;
    cls.methods = box_methods;
    cls.num_methods = 1;
    CHECK(rh_register_actor("Box", &cls));
    CHECK(rank_kill_signals_register());
    CHECK(rh_init(&argc, &argv, NULL));
    me = rh_rank();
    n = rh_size();
    if (n != 4 || rh_num_nodes() != 4) {
        fprintf(stderr, "gcs_actors runs on 4 ranks on 4 nodes\n");
        return 1;
    }
    if (me == 3) {
        rh_actor_t orphan = create(1, 0, NULL, 1, 0);

        CHECK(rh_gcs_put(RH_GCS_T_TEST, "orphan", 6, &orphan,
                         sizeof(orphan), NULL));
    }
    if (me == 0) {
        rh_actor_t keeper = create(1, 0, "keeper", 1, 0);
        rh_actor_t doomed = create(2, 0, NULL, 0, 0);
        rh_actor_t phoenix = create(2, 1, NULL, 0, 1);
        rh_actor_t victim = create(1, 0, NULL, 0, 0);
        rh_actor_t orphan;
        void *v = NULL;
        size_t len = 0;
        double end = rank_now() + WAIT_S;

        CHECK(rh_actor_kill(victim, 1));
        while (rh_gcs_get(RH_GCS_T_TEST, "orphan", 6, &v, &len, NULL) ==
               RH_ERR_NOT_FOUND && rank_now() < end) {
            rank_nap();
        }
        if (v == NULL || len != sizeof(orphan)) {
            fprintf(stderr, "rank 0: rank 3 handed no actor over\n");
            return 1;
        }
        memcpy(&orphan, v, sizeof(orphan));
        free(v);
        ok = wait_record(keeper, 0, RH_AT_ALIVE, 1, -1, 0, "keeper", "") &&
             wait_record(doomed, 0, RH_AT_ALIVE, 2, -1, 0, "", "") &&
             wait_record(phoenix, 0, RH_AT_ALIVE, 2, -1, 0, "", "") &&
             wait_record(victim, 0, RH_AT_DEAD, 1, -1, 0, "", "killed") &&
             wait_record(orphan, 3, RH_AT_ALIVE, 1, -1, 0, "", "");
        printf("rank 0: records in: %s\n", ok ? "yes" : "no");
        fflush(stdout);
        kill_rank(3);
        kill_rank(2);
        ok = ok &&
             wait_record(doomed, 0, RH_AT_DEAD, 2, -1, 0, "",
                         "its rank failed") &&
             wait_record(phoenix, 0, RH_AT_ALIVE, -1, 2, 1, "", "") &&
             wait_record(keeper, 0, RH_AT_ALIVE, 1, -1, 0, "keeper", "") &&
             wait_record(victim, 0, RH_AT_DEAD, 1, -1, 0, "", "killed") &&
             wait_record(orphan, 3, RH_AT_ALIVE, 1, -1, 0, "", "");
        printf("rank 0: %s\n", ok ? "ACTOR RECORDS OK" : "ACTOR RECORDS LOST");
        fflush(stdout);
        CHECK(rh_am_send_wait(1, GO, NULL, 0, NULL, 0));
        CHECK(rh_actor_release(doomed));
        CHECK(rh_actor_release(phoenix));
        CHECK(rh_actor_release(victim));
        CHECK(rh_actor_kill(keeper, 1));
        CHECK(rh_actor_release(keeper));
    } else if (rank_wait_count(&rank_go, 1, 180.0) != 0) {
        fprintf(stderr, "rank %d: no go\n", me);
        return 1;
    }
    CHECK(rh_finalize());
    return 0;
}
