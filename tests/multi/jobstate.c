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
 * With "remote", rank 0 then asks the job for its state as rayhpc-info
 * does from a host with none of its ranks: it reads the job's contact
 * record and asks each server in it from a UCX worker of its own (not the
 * job's), checks that each answer holds the 4 ranks and their 4 objects,
 * prints
 *   JOBSTATE REMOTE OK SERVERS
 * and opens the gate itself (for the TSan stage of tests/run-all.sh: the
 * servers' threads, the guest endpoints, in one job).
 *
 * usage: jobstate GATE [remote]
 */
#include <string.h>
#include <unistd.h>

#include "base/config.h"
#include "core/core.h"
#include "gcs/gcs.h"
#include "obs/jobcontact.h"
#include "obs/jobremote.h"
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

/* Lines of text that start with what. */
static int count_lines(const char *text, const char *what)
{
    int n = 0;

    for (const char *p = text; p != NULL && *p != '\0';
         p = strchr(p, '\n'), p = p != NULL ? p + 1 : NULL) {
        n += strncmp(p, what, strlen(what)) == 0;
    }
    return n;
}

/* Rank 0: every server of the contact record, asked from outside. */
static void ask_remote(void)
{
    char dir[512], path[1024], why[256];
    rh_jc_t c;

    if (!rh_jc_dir(rh_cfg.job_contact_dir, dir, sizeof(dir))) {
        fprintf(stderr, "jobstate: no contact record: %s\n", dir);
        exit(1);
    }
    rh_jc_path(dir, rh_core_job_id(), path, sizeof(path));
    CHECK(rh_jc_read(path, &c));
    if (c.n != rh_num_nodes()) {
        fprintf(stderr, "jobstate: %d servers in %s, not %d\n", c.n, path,
                rh_num_nodes());
        exit(1);
    }
    for (int i = 0; i < c.n; i++) {
        size_t len = 0;
        char *text = rh_jobremote_ask(c.servers[i].addr, c.servers[i].addr_len,
                                      c.servers[i].key, 5000, 20000, &len,
                                      why, sizeof(why));

        if (text == NULL || count_lines(text, "rank ") != rh_size() ||
            count_lines(text, "object ") != rh_size() ||
            count_lines(text, "unreachable ") != 0) {
            fprintf(stderr, "jobstate: server %d (rank %d): %s\n%s", i,
                    c.servers[i].rank, text == NULL ? why : "a partial "
                    "answer:", text != NULL ? text : "");
            exit(1);
        }
        free(text);
    }
    printf("JOBSTATE REMOTE OK %d\n", c.n);
    fflush(stdout);
    rh_jc_free(&c);
}

int main(int argc, char **argv)
{
    rh_ref_t block, after;
    rh_arg_t arg;
    char mark[4200];

    if (argc != 2 && (argc != 3 || strcmp(argv[2], "remote") != 0)) {
        fprintf(stderr, "usage: jobstate GATE [remote]\n");
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
        if (argc == 3) {
            FILE *fp;

            ask_remote();
            fp = fopen(gate, "w");
            if (fp != NULL) {
                fclose(fp);
            }
        }
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
