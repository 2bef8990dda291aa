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

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "tasks";
    const char *node_id = getenv("RAYHPC_NODE_ID");
    int rc = 0, rank2 = -1;

    if (node_id != NULL && strcmp(node_id, "vnode2") == 0) {
        setenv("RAYHPC_RESOURCES", "GPU=1", 1);
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
