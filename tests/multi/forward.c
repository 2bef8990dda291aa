/*
 * Tasks placed on other nodes (NODE_AFFINITY), driven by rank 0; the other
 * ranks serve them from inside rh_finalize.
 *
 * usage: forward check   where tasks run, a chain across nodes with growing
 *                        byte-exact values, errors across nodes, bad nodes:
 *                        prints "FORWARD OK".
 *        forward kill    the task on the last node kills its rank: the
 *                        driver's get fails with a message, no hang:
 *                        prints "FORWARD KILL OK".
 */
#include <signal.h>
#include <string.h>

#include "rank_util.h"

static rh_status_t where(rh_task_ctx_t *ctx)
{
    int32_t node = rh_node_id();

    return rh_task_return(ctx, 0, &node, sizeof(node));
}

/* Returns its argument with one more block of 1000 bytes appended, each
 * byte a function of its position. */
static rh_status_t grow(rh_task_ctx_t *ctx)
{
    size_t len;
    const uint8_t *in = rh_task_arg(ctx, 0, &len);
    uint8_t *out;
    rh_status_t st = rh_task_return_alloc(ctx, 0, len + 1000,
                                          (void **)&out);

    if (st != RH_OK) {
        return st;
    }
    if (len != 0) {
        memcpy(out, in, len);
    }
    for (size_t i = len; i < len + 1000; i++) {
        out[i] = (uint8_t)(i * 7 + 3);
    }
    return RH_OK;
}

static rh_status_t broken(rh_task_ctx_t *ctx)
{
    return rh_task_fail(ctx, "broken on node %d", rh_node_id());
}

static rh_status_t die(rh_task_ctx_t *ctx)
{
    (void)ctx;
    raise(SIGKILL);
    return RH_OK;
}


static int fail(const char *what)
{
    fprintf(stderr, "forward: %s (%s)\n", what, rh_last_error());
    return 1;
}

static int check(void)
{
    int nodes = rh_num_nodes();
    rh_ref_t r, prev;
    const void *p;
    size_t len;
    rh_task_params_t params;
    rh_arg_t arg;

    for (int n = 0; n < nodes; n++) {
        int32_t got;

        params = rank_on_node(n, 0);
        CHECK(rh_remote("where", NULL, 0, &params, &r));
        CHECK(rh_get(r, &p, &len, 60000));
        memcpy(&got, p, sizeof(got));
        if (got != n) {
            return fail("a task ran on the wrong node");
        }
        rh_release(r);
        rh_release(r);
    }
    /* a chain, each link on the next node, each consuming the last */
    arg = rh_arg_bytes(NULL, 0);
    params = rank_on_node(0, 0);
    CHECK(rh_remote("grow", &arg, 1, &params, &prev));
    for (int i = 1; i < 100; i++) {
        params = rank_on_node(i % nodes, 0);
        arg = rh_arg_ref(prev);
        CHECK(rh_remote("grow", &arg, 1, &params, &r));
        rh_release(prev);
        prev = r;
    }
    CHECK(rh_get(prev, &p, &len, 60000));
    if (len != 100000) {
        return fail("the chain's value has the wrong size");
    }
    for (size_t i = 0; i < len; i++) {
        if (((const uint8_t *)p)[i] != (uint8_t)(i * 7 + 3)) {
            return fail("the chain's value differs");
        }
    }
    rh_release(prev);
    rh_release(prev);
    /* an error made on another node arrives with its message */
    params = rank_on_node(nodes - 1, 0);
    CHECK(rh_remote("broken", NULL, 0, &params, &r));
    arg = rh_arg_ref(r);
    params = rank_on_node(0, 0);
    CHECK(rh_remote("grow", &arg, 1, &params, &prev));
    if (rh_get(prev, &p, &len, 60000) != RH_ERR_TASK_FAILED ||
        strstr(rh_last_error(), "broken on node") == NULL) {
        return fail("the remote error did not travel");
    }
    rh_release(r);
    rh_release(prev);
    /* nodes that do not exist */
    params = rank_on_node(nodes + 3, 0);
    if (rh_remote("where", NULL, 0, &params, &r) != RH_ERR_INVALID_PARAM ||
        strstr(rh_last_error(), "NODE_AFFINITY to node") == NULL) {
        return fail("a hard affinity to no node was accepted");
    }
    params = rank_on_node(nodes + 3, 1);
    CHECK(rh_remote("where", NULL, 0, &params, &r));
    CHECK(rh_get(r, &p, &len, 60000));
    if (*(const int32_t *)p != rh_node_id()) {
        return fail("a soft affinity to no node did not run here");
    }
    rh_release(r);
    rh_release(r);
    printf("FORWARD OK: %d nodes, a chain of 100 tasks across them, errors "
           "and bad nodes\n", nodes);
    return 0;
}

static int kill_check(void)
{
    rh_task_params_t params = rank_on_node(rh_num_nodes() - 1, 0);
    rh_ref_t r;
    const void *p;
    size_t len;
    rh_status_t st;

    /* Not run again elsewhere (tests/multi/ft_kill.c does that). */
    params.field_mask |= RH_TASK_PARAM_FIELD_MAX_RETRIES;
    params.max_retries = 0;
    CHECK(rh_remote("die", NULL, 0, &params, &r));
    st = rh_get(r, &p, &len, 60000);
    if (st != RH_ERR_TASK_FAILED || strstr(rh_last_error(), "failed while "
                                          "running task die") == NULL) {
        return fail("the death of the running rank did not fail the task");
    }
    printf("FORWARD KILL OK: %s\n", rh_last_error());
    rh_release(r);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "check";
    int rc = 0;
    rh_status_t st;

    CHECK(rh_register("where", where, 0, 1));
    CHECK(rh_register("grow", grow, 1, 1));
    CHECK(rh_register("broken", broken, 0, 1));
    CHECK(rh_register("die", die, 0, 1));
    CHECK(rh_init(&argc, &argv, NULL));
    if (rh_rank() == 0) {
        rc = strcmp(mode, "kill") == 0 ? kill_check() : check();
    }
    fflush(stdout);
    st = rh_finalize();
    /* In the kill test the dead rank is skipped; finalize still succeeds. */
    return rc != 0 ? rc : (st == RH_OK ? 0 : 1);
}
