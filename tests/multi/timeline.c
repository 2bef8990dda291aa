/*
 * A job that leaves something of every kind on the timeline: rank 0 runs
 * tasks here and on node 1, reads objects made on node 1 (pulls into node
 * 0, one small enough to come inline), gives node 1 tasks a put of its own
 * as argument (pulls into node 1) and calls an actor on node 1. Then it
 * prints what the trace must agree with, from rh_stats of both ranks:
 *   TIMELINE tasks=N calls=C pulled0=B0 pulled1=B1
 *   TIMELINE OK
 * Run with RAYHPC_TIMELINE set, 2 ranks on 2 nodes (tests/check_timeline.sh
 * checks the file against these lines).
 */
#include <string.h>

#include "rank_util.h"

#define LOCAL_TASKS  100
#define REMOTE_TASKS 20
#define SUMS         4
#define MAKES        4
#define CALLS        10
#define PUT_LEN      (1u << 20)
#define MAKE_LEN     (256u << 10)
#define SMALL_LEN    1024u
#define WAIT_MS      20000

static rh_status_t tl_work(rh_task_ctx_t *ctx)
{
    uint64_t v = 7;

    return rh_task_return(ctx, 0, &v, sizeof(v));
}

/* The length of its argument: reading it pulls it to this node. */
static rh_status_t tl_sum(rh_task_ctx_t *ctx)
{
    size_t len;
    const uint8_t *p = rh_task_arg(ctx, 0, &len);
    uint64_t sum = 0;

    for (size_t i = 0; p != NULL && i < len; i++) {
        sum += p[i];
    }
    return rh_task_return(ctx, 0, &sum, sizeof(sum));
}

static rh_status_t tl_make(rh_task_ctx_t *ctx)
{
    size_t len;
    const uint64_t *want = rh_task_arg(ctx, 0, &len);
    void *p;
    rh_status_t s = rh_task_return_alloc(ctx, 0, (size_t)*want, &p);

    if (s == RH_OK) {
        memset(p, 3, (size_t)*want);
    }
    return s;
}

static rh_status_t tl_stats(rh_task_ctx_t *ctx)
{
    rh_stats_t st;
    rh_status_t s = rh_stats(&st);

    return s != RH_OK ? s : rh_task_return(ctx, 0, &st, sizeof(st));
}

static rh_status_t counter_init(rh_task_ctx_t *ctx, void **state)
{
    (void)ctx;
    *state = calloc(1, sizeof(uint64_t));
    return *state != NULL ? RH_OK : RH_ERR_NO_MEMORY;
}

static rh_status_t counter_add(void *state, rh_task_ctx_t *ctx)
{
    uint64_t *n = state;

    (*n)++;
    return rh_task_return(ctx, 0, n, sizeof(*n));
}

static void counter_fini(void *state)
{
    free(state);
}

static const rh_method_def_t counter_methods[] = {
    { "tl_add", counter_add, 0, 1 }
};
static const rh_actor_class_t counter_class = {
    .field_mask = RH_ACTOR_CLASS_FIELD_FINI,
    .init = counter_init,
    .init_nargs = 0,
    .methods = counter_methods,
    .num_methods = 1,
    .fini = counter_fini,
};

/* Gets ref (waiting), checks its length and drops both holds. */
static void get_len(rh_ref_t ref, size_t want)
{
    const void *p;
    size_t len;

    CHECK(rh_get(ref, &p, &len, WAIT_MS));
    if (len != want) {
        fprintf(stderr, "timeline: got %zu bytes, not %zu\n", len, want);
        exit(1);
    }
    CHECK(rh_release(ref));
    CHECK(rh_release(ref));
}

static void drive(void)
{
    rh_task_params_t on1 = rank_on_node(1, 0);
    rh_actor_params_t ap = { 0 };
    rh_ref_t refs[LOCAL_TASKS], put, ref;
    rh_arg_t arg;
    rh_actor_t actor;
    rh_stats_t st0, st1;
    const void *p;
    size_t len;

    for (int i = 0; i < LOCAL_TASKS; i++) {
        CHECK(rh_remote("tl_work", NULL, 0, NULL, &refs[i]));
    }
    for (int i = 0; i < LOCAL_TASKS; i++) {
        get_len(refs[i], sizeof(uint64_t));
    }
    for (int i = 0; i < REMOTE_TASKS; i++) {
        CHECK(rh_remote("tl_work", NULL, 0, &on1, &refs[i]));
    }
    for (int i = 0; i < REMOTE_TASKS; i++) {
        get_len(refs[i], sizeof(uint64_t));
    }
    /* node 1 reads a put of node 0 */
    {
        uint8_t *buf = malloc(PUT_LEN);

        memset(buf, 1, PUT_LEN);
        CHECK(rh_put(buf, PUT_LEN, &put));
        free(buf);
    }
    arg = rh_arg_ref(put);
    for (int i = 0; i < SUMS; i++) {
        CHECK(rh_remote("tl_sum", &arg, 1, &on1, &refs[i]));
    }
    for (int i = 0; i < SUMS; i++) {
        get_len(refs[i], sizeof(uint64_t));
    }
    CHECK(rh_release(put));
    /* node 0 reads what node 1 made: by RDMA, and one inline */
    for (int i = 0; i <= MAKES; i++) {
        uint64_t want = i < MAKES ? MAKE_LEN : SMALL_LEN;

        arg = rh_arg_bytes(&want, sizeof(want));
        CHECK(rh_remote("tl_make", &arg, 1, &on1, &ref));
        get_len(ref, (size_t)want);
    }
    ap.field_mask = RH_ACTOR_PARAM_FIELD_STRATEGY;
    ap.strategy = RH_STRATEGY_NODE_AFFINITY;
    ap.node = 1;
    CHECK(rh_actor_create("tl_counter", NULL, 0, &ap, &actor));
    for (int i = 0; i < CALLS; i++) {
        CHECK(rh_actor_call(actor, "tl_add", NULL, 0, NULL, &refs[i]));
    }
    for (int i = 0; i < CALLS; i++) {
        get_len(refs[i], sizeof(uint64_t));
    }
    CHECK(rh_actor_release(actor));
    CHECK(rh_remote("tl_stats", NULL, 0, &on1, &ref));
    CHECK(rh_get(ref, &p, &len, WAIT_MS));
    memcpy(&st1, p, sizeof(st1));
    CHECK(rh_release(ref));
    CHECK(rh_release(ref));
    CHECK(rh_stats(&st0));
    printf("TIMELINE tasks=%d calls=%d pulled0=%llu pulled1=%llu\n",
           LOCAL_TASKS + REMOTE_TASKS, CALLS,
           (unsigned long long)st0.bytes_pulled,
           (unsigned long long)st1.bytes_pulled);
    printf("TIMELINE OK\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    CHECK(rh_register("tl_work", tl_work, 0, 1));
    CHECK(rh_register("tl_sum", tl_sum, 1, 1));
    CHECK(rh_register("tl_make", tl_make, 1, 1));
    CHECK(rh_register("tl_stats", tl_stats, 0, 1));
    CHECK(rh_register_actor("tl_counter", &counter_class));
    CHECK(rh_init(&argc, &argv, NULL));
    if (rh_rank() == 0) {
        drive();
    }
    CHECK(rh_finalize());
    return 0;
}
