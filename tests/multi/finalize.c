/*
 * The end of a job right after nested tasks spread over every node: the
 * shape that once left rh_finalize waiting for its full timeout.
 *
 * usage: finalize [PARENTS [CHILDREN]]
 *   Rank 0 submits PARENTS tasks (default 64) with SPREAD; each submits
 *   CHILDREN (default 4) tasks of its own with SPREAD and sums their
 *   answers. Rank 0 checks the total, prints "FINALIZE WORK DONE AT t" and
 *   calls rh_finalize like every other rank; each rank then prints
 *   "FINALIZE RETURNED rank r AT t". t is CLOCK_MONOTONIC in seconds, the
 *   same clock for all ranks of a host, so the caller can tell how long the
 *   job took to end after its work was done.
 * usage: finalize waiter
 *   On rank 0 a thread waits, with no timeout, for a task that can never
 *   run (it asks for a resource no rank offers) while the main thread
 *   calls rh_finalize: the wait ends with RH_ERR_SHUTDOWN saying why, and
 *   the rank ends (nothing is read after it is freed); so do a thread in
 *   rh_actor_ready of an actor that can never be placed and one in
 *   rh_pg_wait of a group that can never be (they returned RH_ERR_TIMEOUT,
 *   though asked to wait for ever); a singleton job started after it
 *   waits as before: "FINALIZE WAITER OK".
 */
#include <pthread.h>
#include <string.h>

#include "core/core.h"
#include "rank_util.h"

static rh_task_params_t spread(void)
{
    rh_task_params_t p = { 0 };

    p.field_mask = RH_TASK_PARAM_FIELD_STRATEGY;
    p.strategy = RH_STRATEGY_SPREAD;
    return p;
}

static rh_status_t leaf(rh_task_ctx_t *ctx)
{
    int64_t v;

    memcpy(&v, rh_task_arg(ctx, 0, NULL), sizeof(v));
    v = v * 2 + 1;
    return rh_task_return(ctx, 0, &v, sizeof(v));
}

static rh_status_t parent(rh_task_ctx_t *ctx)
{
    int64_t base, children, total = 0;
    rh_task_params_t params = spread();
    rh_ref_t refs[64];

    memcpy(&base, rh_task_arg(ctx, 0, NULL), sizeof(base));
    memcpy(&children, rh_task_arg(ctx, 1, NULL), sizeof(children));
    for (int64_t i = 0; i < children; i++) {
        int64_t v = base + i;
        rh_arg_t a = rh_arg_bytes(&v, sizeof(v));
        rh_status_t st = rh_remote("leaf", &a, 1, &params, &refs[i]);

        if (st != RH_OK) {
            return rh_task_fail(ctx, "submitting a leaf: %s",
                                rh_last_error());
        }
    }
    for (int64_t i = 0; i < children; i++) {
        const void *p;
        size_t len;
        int64_t v;
        rh_status_t st = rh_get(refs[i], &p, &len, RH_TIMEOUT_INFINITE);

        if (st != RH_OK) {
            return rh_task_fail(ctx, "a leaf failed: %s", rh_last_error());
        }
        memcpy(&v, p, sizeof(v));
        total += v;
        rh_release(refs[i]);
        rh_release(refs[i]);
    }
    return rh_task_return(ctx, 0, &total, sizeof(total));
}

static int drive(int64_t parents, int64_t children)
{
    rh_task_params_t params = spread();
    rh_ref_t *refs = calloc((size_t)parents, sizeof(*refs));
    int64_t total = 0, expect = 0;

    if (refs == NULL) {
        return 1;
    }
    for (int64_t i = 0; i < parents; i++) {
        int64_t base = i * children;
        rh_arg_t a[2] = { rh_arg_bytes(&base, sizeof(base)),
                          rh_arg_bytes(&children, sizeof(children)) };

        CHECK(rh_remote("parent", a, 2, &params, &refs[i]));
        for (int64_t c = 0; c < children; c++) {
            expect += (base + c) * 2 + 1;
        }
    }
    for (int64_t i = 0; i < parents; i++) {
        const void *p;
        size_t len;
        int64_t v;

        CHECK(rh_get(refs[i], &p, &len, 120000));
        memcpy(&v, p, sizeof(v));
        total += v;
        rh_release(refs[i]);
        rh_release(refs[i]);
    }
    free(refs);
    if (total != expect) {
        fprintf(stderr, "finalize: total %lld, expected %lld\n",
                (long long)total, (long long)expect);
        return 1;
    }
    return 0;
}

static rh_ref_t never;
static rh_status_t waited;
static char waited_msg[256];

static void *waiter(void *arg)
{
    const void *p;
    size_t len;

    (void)arg;
    waited = rh_get(never, &p, &len, RH_TIMEOUT_INFINITE);
    snprintf(waited_msg, sizeof(waited_msg), "%s", rh_last_error());
    return NULL;
}

static rh_actor_t never_actor;
static rh_pg_t never_pg;
static rh_status_t waited_actor, waited_pg;

static void *actor_waiter(void *arg)
{
    (void)arg;
    waited_actor = rh_actor_ready(never_actor, RH_TIMEOUT_INFINITE, NULL);
    return NULL;
}

static void *pg_waiter(void *arg)
{
    (void)arg;
    waited_pg = rh_pg_wait(never_pg, RH_TIMEOUT_INFINITE);
    return NULL;
}

static rh_status_t nothing_init(rh_task_ctx_t *ctx, void **state)
{
    (void)ctx;
    *state = NULL;
    return RH_OK;
}

static int waiter_mode(int argc, char **argv)
{
    rh_task_params_t p = { 0 };
    rh_actor_class_t cls = { 0 };
    rh_actor_params_t ap = { 0 };
    rh_bundle_t b = { 1, "unoffered=1" };
    pthread_t t, ta, tg;
    rh_status_t st;
    int ok;

    CHECK(rh_register("leaf", leaf, 1, 1));
    cls.init = nothing_init;
    CHECK(rh_register_actor("Nothing", &cls));
    CHECK(rh_init(&argc, &argv, NULL));
    if (rh_rank() != 0) {
        return rh_finalize() == RH_OK ? 0 : 1;
    }
    ap.field_mask = RH_ACTOR_PARAM_FIELD_RESOURCES;
    ap.resources = "unoffered=1";
    CHECK(rh_actor_create("Nothing", NULL, 0, &ap, &never_actor));
    CHECK(rh_pg_create(&b, 1, RH_PG_PACK, &never_pg));
    pthread_create(&ta, NULL, actor_waiter, NULL);
    pthread_create(&tg, NULL, pg_waiter, NULL);
    p.field_mask = RH_TASK_PARAM_FIELD_RESOURCES;
    p.resources = "unoffered=1";
    {
        int64_t v = 1;
        rh_arg_t a = rh_arg_bytes(&v, sizeof(v));

        CHECK(rh_remote("leaf", &a, 1, &p, &never));
    }
    pthread_create(&t, NULL, waiter, NULL);
    while (rh_core_waiters() < 3) {
        rank_nap();
    }
    st = rh_finalize();
    pthread_join(t, NULL);
    pthread_join(ta, NULL);
    pthread_join(tg, NULL);
    ok = st == RH_OK && waited == RH_ERR_SHUTDOWN &&
         strstr(waited_msg, "rh_finalize began") != NULL &&
         waited_actor == RH_ERR_SHUTDOWN && waited_pg == RH_ERR_SHUTDOWN;
    printf("FINALIZE WAITER: finalize %s, the waiting get %s (%s), "
           "rh_actor_ready %s, rh_pg_wait %s\n", rh_status_string(st),
           rh_status_string(waited), waited_msg,
           rh_status_string(waited_actor), rh_status_string(waited_pg));
    /* A later job of this process (a singleton) waits as before, on any
     * thread. */
    if (ok) {
        rh_init_params_t ip = { .field_mask = RH_INIT_PARAM_FIELD_BOOTSTRAP,
                                .bootstrap = "singleton" };
        int64_t v = 20;
        rh_arg_t a = rh_arg_bytes(&v, sizeof(v));

        CHECK(rh_init(&argc, &argv, &ip));
        CHECK(rh_remote("leaf", &a, 1, NULL, &never));
        pthread_create(&t, NULL, waiter, NULL);
        pthread_join(t, NULL);
        ok = waited == RH_OK;
        if (!ok) {
            printf("FINALIZE WAITER: a get of a later singleton: %s (%s)\n",
                   rh_status_string(waited), waited_msg);
        }
        CHECK(rh_finalize());
    }
    printf("FINALIZE WAITER %s\n", ok ? "OK" : "FAILED");
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    int64_t parents = argc > 1 ? atoll(argv[1]) : 64;
    int64_t children = argc > 2 ? atoll(argv[2]) : 4;
    int rc = 0, rank;
    rh_status_t st;

    if (argc > 1 && strcmp(argv[1], "waiter") == 0) {
        return waiter_mode(argc, argv);
    }

    if (parents < 1 || children < 1 || children > 64) {
        fprintf(stderr, "usage: finalize [PARENTS [CHILDREN (1..64)]]\n");
        return 2;
    }
    CHECK(rh_register("leaf", leaf, 1, 1));
    CHECK(rh_register("parent", parent, 2, 1));
    CHECK(rh_init(&argc, &argv, NULL));
    rank = rh_rank();
    if (rank == 0) {
        rc = drive(parents, children);
        printf("FINALIZE WORK DONE AT %.6f: %lld parents x %lld children "
               "over %d nodes\n", rank_now(), (long long)parents,
               (long long)children, rh_num_nodes());
        fflush(stdout);
    }
    st = rh_finalize();
    printf("FINALIZE RETURNED rank %d AT %.6f: %s\n", rank, rank_now(),
           rh_status_string(st));
    fflush(stdout);
    return rc != 0 ? rc : (st == RH_OK ? 0 : 1);
}
