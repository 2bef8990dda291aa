/*
 * A named actor outlives the death of a replica of the GCS shard that
 * holds its name: rank 0 creates the detached actor "survivor" on its own
 * node, then kills a member of that shard's chain (its tail when that is
 * not rank 0, else its head); afterwards rank 0 and the other survivors
 * still find the actor by name and call it.
 *
 * usage: gcs_named   (4 ranks on 4 nodes)
 * Prints "NAMED FOUND" on each rank that found it after the death.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcs/gcs.h"
#include "kill_signal.h"
#include "rank_util.h"
#include "transport/am.h"


static rh_status_t box_init(rh_task_ctx_t *ctx, void **state)
{
    size_t len;
    const int64_t *v = rh_task_arg(ctx, 0, &len);
    int64_t *s = malloc(sizeof(*s));

    if (s == NULL || len != sizeof(*v)) {
        free(s);
        return rh_task_fail(ctx, "box: bad argument");
    }
    *s = *v;
    *state = s;
    return RH_OK;
}

static rh_status_t box_get(void *state, rh_task_ctx_t *ctx)
{
    return rh_task_return(ctx, 0, state, sizeof(int64_t));
}

static void box_fini(void *state)
{
    free(state);
}

static const rh_method_def_t box_methods[] = { { "get", box_get, 0, 1 } };

/* Finds the actor by name and calls it: 1 when it answers 42. */
static int find_and_call(void)
{
    rh_actor_t a;
    rh_ref_t r;
    const void *p;
    size_t len;
    int64_t v = 0;
    rh_status_t st;

    st = rh_actor_get_named("survivor", &a);
    if (st != RH_OK) {
        fprintf(stderr, "rank %d: get_named: %s (%s)\n", rh_rank(),
                rh_status_string(st), rh_last_error());
        return 0;
    }
    CHECK(rh_actor_call(a, "get", NULL, 0, NULL, &r));
    CHECK(rh_get(r, &p, &len, 30000));
    if (len == sizeof(v)) {
        memcpy(&v, p, sizeof(v));
    }
    rh_release(r);
    CHECK(rh_actor_release(a));
    return v == 42;
}

int main(int argc, char **argv)
{
    rh_actor_class_t cls = { 0 };
    int me, n, chain[8], len, victim;
    uint32_t shard;

    cls.field_mask = RH_ACTOR_CLASS_FIELD_FINI;
    cls.init = box_init;
    cls.init_nargs = 1;
    cls.methods = box_methods;
    cls.num_methods = 1;
    cls.fini = box_fini;
    CHECK(rh_register_actor("Box", &cls));
    CHECK(rank_kill_signals_register());
    CHECK(rh_init(&argc, &argv, NULL));
    me = rh_rank();
    n = rh_size();
    shard = rh_gcs_shard_of(RH_GCS_T_ACTOR, "name/survivor", 13);
    len = rh_gcs_chain(shard, chain, 8);
    if (n != 4 || len < 2) {
        fprintf(stderr, "gcs_named runs on 4 ranks with chains of 2 or "
                "more\n");
        return 1;
    }
    victim = chain[len - 1] != 0 ? chain[len - 1] : chain[0];
    if (me == 0) {
        rh_actor_params_t p = { 0 };
        int64_t v = 42;
        rh_arg_t arg = rh_arg_bytes(&v, sizeof(v));
        rh_actor_t a;
        double end;

        p.field_mask = RH_ACTOR_PARAM_FIELD_NAME |
                       RH_ACTOR_PARAM_FIELD_DETACHED |
                       RH_ACTOR_PARAM_FIELD_STRATEGY;
        p.name = "survivor";
        p.detached = 1;
        p.strategy = RH_STRATEGY_NODE_AFFINITY;
        p.node = 0;
        CHECK(rh_actor_create("Box", &arg, 1, &p, &a));
        CHECK(rh_actor_ready(a, 30000, NULL));
        CHECK(rh_actor_release(a));
        printf("rank 0: name in shard %u, chain of %d; killing rank %d\n",
               shard, len, victim);
        fflush(stdout);
        CHECK(rh_am_send_wait((uint32_t)victim, DIE, NULL, 0, NULL, 0));
        /* The chain re-forms without it. */
        end = rank_now() + 60.0;
        while (rh_gcs_chain(shard, chain, 8) == len && rank_now() < end) {
            rank_nap();
        }
        if (find_and_call()) {
            printf("rank 0: NAMED FOUND\n");
        }
        fflush(stdout);
        for (int r = 1; r < n; r++) {
            if (r != victim) {
                CHECK(rh_am_send_wait((uint32_t)r, GO, NULL, 0, NULL, 0));
            }
        }
    } else if (me != victim) {
        if (rank_wait_count(&rank_go, 1, 120.0) != 0) {
            fprintf(stderr, "rank %d: no go\n", me);
            return 1;
        }
        if (find_and_call()) {
            printf("rank %d: NAMED FOUND\n", me);
        }
        fflush(stdout);
    }
    CHECK(rh_finalize());
    return 0;
}
