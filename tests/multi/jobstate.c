/*
 * A job to look at with rayhpc-info --job (tests/check_jobstate.sh): every
 * rank puts one object of 1000 + 100 * rank bytes; rank 0 starts a task on
 * node 1 that runs until the gate file exists and a task that waits for its
 * return; it also writes JS_GCS_KEYS keys into the GCS's test table
 * (rayhpc-info --gcs counts them at the tails). Rank 0 prints
 *   JOBSTATE PUT RANK OBJECT SIZE     (one line per rank's object)
 *   JOBSTATE READY JOB
 * then every rank waits for the gate (60 s at most), and the job ends.
 *
 * usage: jobstate GATE
 */
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "gcs/gcs.h"
#include "plasma/object_id.h"
#include "rank_util.h"

#define GATE_WAIT_S 60
#define JS_GCS_KEYS 10

static const char *gate;

static int gate_open(void)
{
    return access(gate, F_OK) == 0;
}

/* Runs until the gate opens. */
static rh_status_t js_block(rh_task_ctx_t *ctx)
{
    double end = rank_now() + GATE_WAIT_S;
    uint64_t v = 1;

    while (!gate_open() && rank_now() < end) {
        rank_nap();
    }
    return rh_task_return(ctx, 0, &v, sizeof(v));
}

/* Waits for js_block's return (its argument). */
static rh_status_t js_after(rh_task_ctx_t *ctx)
{
    uint64_t v = 2;

    return rh_task_return(ctx, 0, &v, sizeof(v));
}

/* Puts this rank's object and keeps its hold: it lives until the end. */
static void put_here(void)
{
    char id[RH_OBJECT_ID_STRLEN];
    size_t len = 1000 + 100 * (size_t)rh_rank();
    char *buf = calloc(1, len);
    rh_ref_t ref;
    rh_object_id_t oid;

    if (buf == NULL) {
        exit(1);
    }
    CHECK(rh_put(buf, len, &ref));
    free(buf);
    oid.hi = ref.hi;
    oid.lo = ref.lo;
    printf("JOBSTATE PUT %d %s %zu\n", rh_rank(), rh_object_id_str(oid, id),
           len);
    fflush(stdout);
}

/* Waits (60 s at most) for a file. */
static void wait_for(const char *path)
{
    double end = rank_now() + GATE_WAIT_S;

    while (access(path, F_OK) != 0 && rank_now() < end) {
        rank_nap();
    }
}

int main(int argc, char **argv)
{
    rh_ref_t block, after;
    rh_arg_t arg;
    char mark[4200];

    if (argc != 2) {
        fprintf(stderr, "usage: jobstate GATE\n");
        return 2;
    }
    gate = argv[1];
    CHECK(rh_register("js_block", js_block, 0, 1));
    CHECK(rh_register("js_after", js_after, 1, 1));
    CHECK(rh_init(&argc, &argv, NULL));
    put_here();
    if (rh_rank() != 0) {
        /* GATE.R: this rank's put is in */
        FILE *fp;

        snprintf(mark, sizeof(mark), "%s.%d", gate, rh_rank());
        fp = fopen(mark, "w");
        if (fp != NULL) {
            fclose(fp);
        }
    } else {
        rh_task_params_t on1 = rank_on_node(1, 0);

        CHECK(rh_remote("js_block", NULL, 0, &on1, &block));
        arg = rh_arg_ref(block);
        CHECK(rh_remote("js_after", &arg, 1, NULL, &after));
        for (int i = 0; i < JS_GCS_KEYS; i++) {
            char key[32];
            int klen = snprintf(key, sizeof(key), "js/%d", i);

            CHECK(rh_gcs_put(RH_GCS_T_TEST, key, (size_t)klen, "v", 1,
                             NULL));
        }
        for (int r = 1; r < rh_size(); r++) {
            snprintf(mark, sizeof(mark), "%s.%d", gate, r);
            wait_for(mark);
        }
        printf("JOBSTATE READY %s\n", rh_core_job_id());
        fflush(stdout);
    }
    wait_for(gate);
    if (rh_rank() == 0) {
        const void *p;
        size_t len;

        CHECK(rh_get(after, &p, &len, 20000));
        CHECK(rh_release(after));
        CHECK(rh_release(after));
        CHECK(rh_release(block));
    }
    CHECK(rh_finalize());
    return 0;
}
