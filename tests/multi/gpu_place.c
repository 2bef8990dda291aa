/*
 * GPU placement over 3 nodes where only node 2 offers a GPU (by hand,
 * RAYHPC_RESOURCES=GPU=1; the job hides real devices with
 * CUDA_VISIBLE_DEVICES="", so every host behaves the same). Its tasks
 * then fail there, saying which rank took them: that is where the
 * scheduler placed them.
 *
 *   gpu_place tasks   half-GPU tasks from rank 0 all go to node 2
 *   gpu_place pg      a bundle reserving half a GPU lands on node 2, and a
 *                     task in it asks for the bundle's GPU there
 *   gpu_place nofit   a task asking for 2 GPUs, which no node has, waits
 *   gpu_place frac    node 1 offers GPU=0.5 too: quarter-GPU bundles fill
 *                     node 2's GPU, then node 1's half, then wait for room
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rank_util.h"

#define TASKS 12

static rh_status_t gpu_where(rh_task_ctx_t *ctx)
{
    int rank = rh_rank();

    return rh_task_return(ctx, 0, &rank, sizeof(rank));
}

/* The task behind r failed on the rank of node 2 with the no-GPU reason. */
static int failed_on_node2(rh_ref_t r, int rank2)
{
    const void *p;
    size_t len;
    char want[32];
    rh_status_t st = rh_get(r, &p, &len, 60000);

    snprintf(want, sizeof(want), "rank %d has none", rank2);
    if (st != RH_ERR_TASK_FAILED || strstr(rh_last_error(), want) == NULL) {
        fprintf(stderr, "gpu_place: expected a failure on rank %d, got %s: "
                "%s\n", rank2, rh_status_string(st), rh_last_error());
        return 1;
    }
    return 0;
}

static int tasks(int rank2)
{
    rh_task_params_t p = { .field_mask = RH_TASK_PARAM_FIELD_RESOURCES,
                           .resources = "GPU=0.5" };
    rh_ref_t r[TASKS];

    for (int i = 0; i < TASKS; i++) {
        CHECK(rh_remote("gpu_where", NULL, 0, &p, &r[i]));
    }
    for (int i = 0; i < TASKS; i++) {
        if (failed_on_node2(r[i], rank2) != 0) {
            return 1;
        }
        rh_release(r[i]);
    }
    printf("GPU_PLACE TASKS OK: %d half-GPU tasks all went to node 2\n",
           TASKS);
    return 0;
}

static int pg(int rank2)
{
    rh_bundle_t b[1] = { { 1, "GPU=0.5" } };
    rh_task_params_t p = { .field_mask = RH_TASK_PARAM_FIELD_RESOURCES |
                                         RH_TASK_PARAM_FIELD_STRATEGY,
                           .resources = "GPU=0.5",
                           .strategy = RH_STRATEGY_PLACEMENT_GROUP };
    rh_pg_t g;
    rh_ref_t r;
    int node = -1;

    CHECK(rh_pg_create(b, 1, RH_PG_STRICT_PACK, &g));
    CHECK(rh_pg_wait(g, 60000));
    CHECK(rh_pg_bundle_node(g, 0, &node));
    if (node != 2) {
        fprintf(stderr, "gpu_place: the GPU bundle is on node %d\n", node);
        return 1;
    }
    p.pg = g;
    p.bundle = 0;
    CHECK(rh_remote("gpu_where", NULL, 0, &p, &r));
    if (failed_on_node2(r, rank2) != 0) {
        return 1;
    }
    rh_release(r);
    CHECK(rh_pg_remove(g));
    printf("GPU_PLACE PG OK: the bundle's half GPU is on node 2, and its "
           "task ran there\n");
    return 0;
}

static int nofit(void)
{
    rh_task_params_t p = { .field_mask = RH_TASK_PARAM_FIELD_RESOURCES,
                           .resources = "GPU=2" };
    rh_ref_t r;
    int ready = -1;

    CHECK(rh_remote("gpu_where", NULL, 0, &p, &r));
    CHECK(rh_wait(&r, 1, 1, 500, &ready));
    if (ready != 0) {
        fprintf(stderr, "gpu_place: a task for 2 GPUs finished\n");
        return 1;
    }
    printf("GPU_PLACE NOFIT OK: still waiting after 500 ms\n");
    return 0;
}

/* Whether every bundle of g is on node want. */
static int bundles_on(rh_pg_t g, int n, int want, const char *what)
{
    for (int i = 0; i < n; i++) {
        int node = -1;

        if (rh_pg_bundle_node(g, i, &node) != RH_OK || node != want) {
            fprintf(stderr, "gpu_place: %s: bundle %d on node %d, not %d "
                    "(%s)\n", what, i, node, want, rh_last_error());
            return 1;
        }
    }
    return 0;
}

/* Fractions of a GPU counted across nodes: four quarters take node 2's
 * whole GPU, two more can only go to node 1's half, a seventh fits
 * nowhere until the two are given back. */
static int frac(void)
{
    rh_bundle_t q[4] = { { 0, "GPU=0.25" }, { 0, "GPU=0.25" },
                         { 0, "GPU=0.25" }, { 0, "GPU=0.25" } };
    rh_pg_t whole, half, late;
    rh_status_t st;

    CHECK(rh_pg_create(q, 4, RH_PG_STRICT_PACK, &whole));
    CHECK(rh_pg_wait(whole, 60000));
    if (bundles_on(whole, 4, 2, "four quarters") != 0) {
        return 1;
    }
    CHECK(rh_pg_create(q, 2, RH_PG_STRICT_PACK, &half));
    CHECK(rh_pg_wait(half, 60000));
    if (bundles_on(half, 2, 1, "two more quarters") != 0) {
        return 1;
    }
    CHECK(rh_pg_create(q, 1, RH_PG_PACK, &late));
    st = rh_pg_wait(late, 500);
    if (st != RH_ERR_TIMEOUT) {
        fprintf(stderr, "gpu_place: a seventh quarter GPU was placed (%s) "
                "with every offered GPU reserved\n", rh_status_string(st));
        return 1;
    }
    CHECK(rh_pg_remove(half));
    CHECK(rh_pg_wait(late, 60000));
    if (bundles_on(late, 1, 1, "the seventh quarter") != 0) {
        return 1;
    }
    CHECK(rh_pg_remove(late));
    CHECK(rh_pg_remove(whole));
    printf("GPU_PLACE FRAC OK: 4 quarters filled node 2's GPU, 2 node 1's "
           "half, a seventh waited for them\n");
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "tasks";
    const char *node_id = getenv("RAYHPC_NODE_ID");
    int rc = 0, rank2 = -1;

    if (node_id != NULL && strcmp(node_id, "vnode2") == 0) {
        setenv("RAYHPC_RESOURCES", "GPU=1", 1);
    }
    if (node_id != NULL && strcmp(node_id, "vnode1") == 0 &&
        strcmp(mode, "frac") == 0) {
        setenv("RAYHPC_RESOURCES", "GPU=0.5", 1);
    }
    CHECK(rh_register("gpu_where", gpu_where, 0, 1));
    CHECK(rh_init(&argc, &argv, NULL));
    if (rh_rank() == 0) {
        /* one rank a node: node 2's is the last */
        rank2 = rh_size() - 1;
        if (rh_num_nodes() != 3 || rh_size() != 3) {
            fprintf(stderr, "gpu_place: run it as 3 ranks on 3 nodes\n");
            rc = 1;
        } else if (strcmp(mode, "tasks") == 0) {
            rc = tasks(rank2);
        } else if (strcmp(mode, "pg") == 0) {
            rc = pg(rank2);
        } else if (strcmp(mode, "nofit") == 0) {
            rc = nofit();
        } else if (strcmp(mode, "frac") == 0) {
            rc = frac();
        } else {
            fprintf(stderr, "gpu_place: unknown mode %s\n", mode);
            rc = 1;
        }
    }
    if (rh_finalize() != RH_OK) {
        rc = 1;
    }
    return rc;
}
