/*
 * Fault tolerance with real deaths: ranks are SIGKILLed at fixed points
 * while rank 0 (the driver) runs a task graph, and every rh_get of the
 * driver must return the right value, or, where recovery is impossible, the
 * right status within its timeout. Run with 8 ranks on 4 nodes.
 *
 * usage: ft_kill MODE
 *   mapreduce   64 maps, then 8 reduces of 8 maps each, over the 4 nodes:
 *               "FT MAPREDUCE OK sum S"
 *   recursion   a binary tree of tasks of depth 5 (63 tasks), each level
 *               submitted and waited for inside the level above: "FT
 *               RECURSION OK"
 *   lost_node   a task's return lives on node 3 only; both its ranks are
 *               killed: rebuilt from lineage ("FT LOST_NODE OK"), or, with
 *               RAYHPC_LINEAGE_MAX_BYTES=0, RH_ERR_OBJECT_LOST ("FT
 *               LOST_NODE LINEAGE DROPPED OK")
 *   exhausted   a task that kills every rank it runs on, max_retries 1:
 *               RH_ERR_TASK_FAILED after two deaths ("FT EXHAUSTED OK")
 *   owner_died  a put owned by another rank, whose owner is then killed:
 *               RH_ERR_OWNER_DIED ("FT OWNER_DIED OK")
 *   exceptions  a task bound to node 1 (NODE_AFFINITY, not soft) that
 *               fails there and would succeed elsewhere: with
 *               retry_exceptions each retry runs on node 1 again and the
 *               last run's error comes back, without it the first's; one
 *               that fails its first two runs in each process of node 1
 *               succeeds there within max_retries 4; one run here that
 *               fails twice, then succeeds: retried within max_retries
 *               ("FT EXCEPTIONS OK")
 *   exceptions_res (RAYHPC_RESOURCES=ftlic=1 on node 2 only) a task that
 *               asks for ftlic=1 and always fails, with retry_exceptions:
 *               every retry runs on node 2, the only one that offers it,
 *               and its error comes back ("FT EXCEPTIONS_RES OK"; before,
 *               a retry went to a rank without ftlic and waited there)
 *   lost_res    (RAYHPC_RESOURCES=ftlic=1 on node 2 only) a task that
 *               asks for ftlic=1 kills every rank it runs on: after both
 *               ranks of node 2 died no live rank offers ftlic, and it
 *               fails with RH_ERR_TASK_FAILED saying so ("FT LOST_RES OK";
 *               before, its rerun waited for ever on another rank)
 *   home_rerun  (3 ranks on 3 nodes) a task with soft affinity to node 1
 *               kills every rank it runs on but the driver's (max_retries
 *               -1): lost with rank 1, then with rank 2, it runs again on
 *               its owner, the last live rank, and returns 0 there ("FT
 *               HOME_RERUN OK"; before, it failed: "no other rank is
 *               left")
 *   rebuild_race threads get and release a return that lives on node 1
 *               while another thread reopens its future and completes it
 *               again, as a rebuild from lineage and its answer do, over
 *               and over: every get returns the value, and under TSan no
 *               getter races the rebuilds ("FT REBUILD_RACE OK")
 *   failmsg     a task that returns the status of a call that failed
 *               (without rh_task_fail), on node 1 and on the driver: the
 *               getter's message holds the call's reason ("FT TASKMSG OK")
 *   same_node_sealed, same_node_unsealed
 *               (4 ranks on 2 nodes) rank 1 is killed; a task on node 1
 *               writes its return (and seals it) and kills its rank: its
 *               rerun can only go to the other rank of node 1, where it
 *               meets that object and must take it over or replace it
 *               ("FT SAME_NODE SEALED OK", "... UNSEALED OK")
 *   same_node_live a task on node 1 finds its return being written in the
 *               node's store by a live process (a thread of its rank, as
 *               another run or a pull would) and returns the same value:
 *               its return waits for that object and takes it over
 *               ("FT SAME_NODE LIVE OK")
 *   pg_bundle   a STRICT_SPREAD group of 4 one-CPU bundles, one per node;
 *               the task in the bundle of node FT_PG_NODE (1 to 3, default
 *               3) kills its rank: the bundle is placed again on the other
 *               rank of that node and the task runs there; a task into it
 *               kills that rank too: no node is left for the bundle, so
 *               that task fails with RH_ERR_TASK_FAILED, rh_pg_wait and new
 *               tasks into the bundle with RH_ERR_PEER_FAILED, each naming
 *               the group and the rank, while the other bundles still run
 *               tasks ("FT PG_BUNDLE OK")
 *   pg_home     (RAYHPC_NUM_WORKERS=1) the same group with node 0's bundle
 *               on rank 1, rank 0's CPU taken by another group meanwhile,
 *               then freed; the task in that bundle kills rank 1: the
 *               bundle is placed again on rank 0, so the driver runs the
 *               lost task itself ("FT PG_HOME OK")
 *   pg_full     (RAYHPC_NUM_WORKERS=1) bundles hold the one CPU of ranks
 *               1 to 4 and 7; a task bound softly to node 3 kills rank
 *               6: its rerun must go to rank 5, the one rank but the
 *               driver left with a CPU to run it ("FT PG_FULL OK")
 *   pg_actor    (4 ranks on 4 nodes, RAYHPC_NUM_WORKERS=1,
 *               RAYHPC_RESOURCES=slot=1) actors hold
 *               the CPUs of ranks 2 and 3, one-bundle groups those of
 *               ranks 0 and 1; rank 1 dies in its group's task: no room
 *               for the bundle (the task fails, rh_pg_wait too); the actor
 *               of rank 3 is killed: the bundle goes to rank 3 and a task
 *               into it runs ("FT PG_ACTOR OK")
 *   driver      the map-reduce's maps and reduces are submitted, then the
 *               driver SIGKILLs itself after its first reduce's value
 *               ("FT DRIVER DIES"): the others must end by themselves,
 *               their rh_finalize returning RH_ERR_PEER_FAILED (a launcher
 *               that keeps the job going, such as srun, stops nobody)
 *   accounting  (no victim) a stream of 2000 tasks to node 1: while their
 *               returns are held, each has lineage, counted in the bytes
 *               of the answered ones; once released, none is left; with
 *               RAYHPC_LINEAGE_MAX_BYTES at 0 the answers drop it and
 *               count it dropped; then, with a 1 MiB bound that a window
 *               of 1000 held returns overflows, the answers drop the
 *               oldest for room while the driver releases them (a drop
 *               and a release meeting on one entry): every value right,
 *               nothing left at the end ("FT ACCOUNTING OK")
 * In mapreduce and recursion, victim j of FT_VICTIMS (default "3,6") is
 * killed by task FT_KILL_AT + 7 j (default 9; see maybe_kill), in the
 * middle of the graph (tests/soak.sh draws them at random).
 * Every rank prints "FT DONE rank R" after its rh_finalize; the driver
 * prints "FT FAIL ..." and exits 1 on a wrong value or status.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "rank_util.h"
#include "base/config.h"
#include "core/future.h"
#include "core/lineage.h"
#include "core/core.h"
#include "core/pgroup.h"
#include "core/placement.h"
#include "core/task_internal.h"
#include "plasma/store.h"
#include "plasma/object_id.h"
#include "transport/am.h"

#define FT_DIE    (RH_AM_ID_TEST_FIRST + 10)
#define OBJ_WORDS 1024          /* 8 KiB objects: above RAYHPC_INLINE_MAX */
#define TIMEOUT   (60 * 1000)

static int victims[8], nvictims, kill_at;

static void fail(const char *what, rh_status_t st)
{
    printf("FT FAIL %s: %s (%s)\n", what, rh_status_string(st),
           st != RH_OK ? rh_last_error() : "");
    fflush(stdout);
    exit(1);
}

/* The fixed kill points: the task numbered kill_at + 7 j (a map's index,
 * a reduce's 64 + its index, a tree task's heap index) kills victim j as
 * it starts, wherever it runs; its reruns find the victim dead already. */
static void maybe_kill(int64_t task)
{
    for (int j = 0; j < nvictims; j++) {
        if (task != kill_at + 7 * j) {
            continue;
        }
        if (victims[j] == rh_rank()) {
            printf("FT VICTIM rank %d dies in task %lld\n", rh_rank(),
                   (long long)task);
            fflush(stdout);
            raise(SIGKILL);
        }
        /* Not to a victim dead already (a rerun of this task): an
         * endpoint to a dead rank's shared memory can crash UCX's
         * keepalive (seen with UCX 1.13). */
        if (rh_rank_alive(victims[j])) {
            (void)rh_am_send((uint32_t)victims[j], FT_DIE, NULL, 0, NULL, 0,
                             NULL, NULL);
        }
    }
}

static rh_status_t on_die(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    (void)msg;
    printf("FT VICTIM rank %d dies on request\n", rh_rank());
    fflush(stdout);
    raise(SIGKILL);
    return RH_OK;
}

static int64_t arg_i64(rh_task_ctx_t *ctx, int i)
{
    int64_t v;

    memcpy(&v, rh_task_arg(ctx, i, NULL), sizeof(v));
    return v;
}

/* An object of OBJ_WORDS words, each v. */
static rh_status_t return_obj(rh_task_ctx_t *ctx, int64_t v)
{
    int64_t *p;
    rh_status_t st = rh_task_return_alloc(ctx, 0, OBJ_WORDS * sizeof(v),
                                          (void **)&p);

    for (int i = 0; st == RH_OK && i < OBJ_WORDS; i++) {
        p[i] = v;
    }
    return st;
}

/* The value of an object of return_obj, or -1 when it is not one. */
static int64_t obj_value(const void *data, size_t len)
{
    const int64_t *p = data;

    if (len != OBJ_WORDS * sizeof(int64_t)) {
        return -1;
    }
    for (int i = 1; i < OBJ_WORDS; i++) {
        if (p[i] != p[0]) {
            return -1;
        }
    }
    return p[0];
}

static rh_status_t get_value(rh_ref_t r, int64_t *v)
{
    const void *p;
    size_t len;
    rh_status_t st = rh_get(r, &p, &len, TIMEOUT);

    if (st == RH_OK) {
        *v = obj_value(p, len);
        rh_release(r);
    }
    return st;
}

static rh_status_t ft_map(rh_task_ctx_t *ctx)
{
    int64_t i = arg_i64(ctx, 0);

    maybe_kill(i);
    return return_obj(ctx, i * i + 1);
}

static rh_status_t ft_sum(rh_task_ctx_t *ctx)
{
    int64_t sum = 0;

    maybe_kill(arg_i64(ctx, 0));
    for (int i = 1; i < rh_task_nargs(ctx); i++) {
        size_t len;
        const void *d = rh_task_arg(ctx, i, &len);
        int64_t v = obj_value(d, len);

        if (v < 0) {
            return rh_task_fail(ctx, "argument %d is not a map's object",
                                i);
        }
        sum += v;
    }
    return return_obj(ctx, sum);
}

/* Task i goes to node i mod 4 (soft: anywhere once that node is gone),
 * so that every rank runs some, victims included. */
static rh_task_params_t spread(int64_t i)
{
    return rank_on_node((int)(i % 4), 1);
}

/* tree(d, k): 1 at the leaves, else tree(d-1, 2k) + tree(d-1, 2k+1) + 1:
 * 2^(d+1) - 1; k numbers the tree's tasks as a heap does. */
static rh_status_t ft_tree(rh_task_ctx_t *ctx)
{
    int64_t d = arg_i64(ctx, 0), k = arg_i64(ctx, 1), a, b;
    rh_ref_t r[2];
    rh_status_t st;

    maybe_kill(k);
    if (d == 0) {
        return return_obj(ctx, 1);
    }
    d--;
    for (int i = 0; i < 2; i++) {
        int64_t child = 2 * k + i;
        rh_task_params_t p = spread(child);
        rh_arg_t args[2] = { rh_arg_bytes(&d, sizeof(d)),
                             rh_arg_bytes(&child, sizeof(child)) };

        if ((st = rh_remote("ft_tree", args, 2, &p, &r[i])) != RH_OK) {
            return rh_task_fail(ctx, "submit: %s", rh_last_error());
        }
    }
    if ((st = get_value(r[0], &a)) != RH_OK ||
        (st = get_value(r[1], &b)) != RH_OK) {
        return rh_task_fail(ctx, "child: %s", rh_last_error());
    }
    rh_release(r[0]);
    rh_release(r[1]);
    if (a < 0 || b < 0) {
        return rh_task_fail(ctx, "a child's object is damaged");
    }
    return return_obj(ctx, a + b + 1);
}

static rh_status_t ft_suicide(rh_task_ctx_t *ctx)
{
    (void)ctx;
    printf("FT VICTIM rank %d dies running ft_suicide\n", rh_rank());
    fflush(stdout);
    raise(SIGKILL);
    return RH_OK;
}

/* Fails on node 1, succeeds elsewhere. */
static rh_status_t ft_picky(rh_task_ctx_t *ctx)
{
    if (rh_node_id() == 1) {
        return rh_task_fail(ctx, "ft_picky does not run on node 1 (rank %d)",
                            rh_rank());
    }
    return return_obj(ctx, 42);
}

/* Fails wherever it runs, saying on which node. */
static rh_status_t ft_nowhere(rh_task_ctx_t *ctx)
{
    return rh_task_fail(ctx, "ft_nowhere fails on node %d (rank %d)",
                        rh_node_id(), rh_rank());
}

/* Kills every rank it runs on but the driver's, where it returns 0. */
static rh_status_t ft_home(rh_task_ctx_t *ctx)
{
    if (rh_rank() != 0) {
        printf("FT VICTIM rank %d dies running ft_home\n", rh_rank());
        fflush(stdout);
        raise(SIGKILL);
    }
    return return_obj(ctx, 0);
}

/* Fails its first two runs in this process, then returns 42. */
static _Atomic int flaky_runs;

static rh_status_t ft_flaky(rh_task_ctx_t *ctx)
{
    int n = atomic_fetch_add(&flaky_runs, 1) + 1;

    if (n <= 2) {
        return rh_task_fail(ctx, "ft_flaky fails its run %d", n);
    }
    return return_obj(ctx, 42);
}

/* Returns, without rh_task_fail, the status of a call that failed and
 * said why (return 0 set twice). */
static rh_status_t ft_twice(rh_task_ctx_t *ctx)
{
    int64_t v = 1;
    rh_status_t st = rh_task_return(ctx, 0, &v, sizeof(v));

    return st != RH_OK ? st : rh_task_return(ctx, 0, &v, sizeof(v));
}

/* Its first run (no file at the path it is given) leaves its return in
 * the node's store, written (sealed too when asked: as a run that died
 * between its seal and its answer) and dies; a run that finds the file is
 * the rerun, on the same node, and returns the same value. */
static rh_status_t ft_leave(rh_task_ctx_t *ctx)
{
    int64_t seal = arg_i64(ctx, 0), *p;
    const char *path = rh_task_arg(ctx, 1, NULL);
    rh_object_id_t id = rh_object_id_make(ctx->task->ret_owner,
                                          ctx->task->ret_counter, 1);
    rh_status_t st;
    FILE *f;

    if (access(path, F_OK) == 0) {
        return return_obj(ctx, 99);
    }
    st = rh_task_return_alloc(ctx, 0, OBJ_WORDS * sizeof(*p), (void **)&p);
    if (st != RH_OK || !ctx->task->ret_foreign) {
        return rh_task_fail(ctx, "ft_leave runs for another rank");
    }
    for (int i = 0; i < OBJ_WORDS; i++) {
        p[i] = 99;
    }
    if (seal && rh_store_seal(rh_core_store(), id) != RH_OK) {
        return rh_task_fail(ctx, "seal: %s", rh_last_error());
    }
    if ((f = fopen(path, "w")) == NULL) {
        return rh_task_fail(ctx, "cannot write %s", path);
    }
    fclose(f);
    printf("FT VICTIM rank %d dies leaving its %s return\n", rh_rank(),
           seal ? "sealed" : "unsealed");
    fflush(stdout);
    raise(SIGKILL);
    return RH_OK;
}

/* (same_node_live) Another run of a task, as far as this node's store can
 * tell: it creates the task's return (OBJ_WORDS 99s), says so, and seals
 * it a moment later. */
typedef struct other_run {
    rh_object_id_t id;
    atomic_int     created;   /* 1: created; -1: could not */
} other_run_t;

static void *other_run(void *arg)
{
    other_run_t *o = arg;
    struct timespec ts = { 0, 200000000 };
    int64_t *p;

    if (rh_store_create(rh_core_store(), o->id, OBJ_WORDS * sizeof(*p),
                        (void **)&p) != RH_OK) {
        atomic_store(&o->created, -1);
        return NULL;
    }
    atomic_store(&o->created, 1);
    nanosleep(&ts, NULL);
    for (int i = 0; i < OBJ_WORDS; i++) {
        p[i] = 99;
    }
    if (rh_store_seal(rh_core_store(), o->id) != RH_OK) {
        fprintf(stderr, "ft_kill: seal: %s\n", rh_last_error());
    }
    return NULL;
}

/* (same_node_live) Returns OBJ_WORDS 99s once another run has begun
 * writing its return in this node's store (a pull of a copy looks the
 * same there): the return waits for that object and takes it over. */
static rh_status_t ft_beside(rh_task_ctx_t *ctx)
{
    other_run_t o = { rh_object_id_make(ctx->task->ret_owner,
                                        ctx->task->ret_counter, 1), 0 };
    pthread_t t;
    rh_status_t st;

    if (pthread_create(&t, NULL, other_run, &o) != 0) {
        return rh_task_fail(ctx, "pthread_create");
    }
    while (atomic_load(&o.created) == 0) {
        sched_yield();
    }
    st = atomic_load(&o.created) == 1 ? return_obj(ctx, 99) :
         rh_task_fail(ctx, "the other run could not create the return");
    pthread_join(t, NULL);
    return st;
}

/* A put of ours whose ref goes back to the driver; the put is never
 * released, so it lives as long as this rank. */
static rh_status_t ft_put_ref(rh_task_ctx_t *ctx)
{
    int64_t obj[OBJ_WORDS];
    rh_ref_t ref;
    rh_status_t st;

    for (int i = 0; i < OBJ_WORDS; i++) {
        obj[i] = 7;
    }
    st = rh_put(obj, sizeof(obj), &ref);
    if (st != RH_OK) {
        return rh_task_fail(ctx, "put: %s", rh_last_error());
    }
    return rh_task_return(ctx, 0, &ref, sizeof(ref));
}

/* Kills the rank it runs on when that is its argument, else returns 42. */
static rh_status_t ft_pg_step(rh_task_ctx_t *ctx)
{
    if (arg_i64(ctx, 0) == rh_rank()) {
        printf("FT VICTIM rank %d dies running ft_pg_step\n", rh_rank());
        fflush(stdout);
        raise(SIGKILL);
    }
    return return_obj(ctx, 42);
}

static void kill_rank(int r)
{
    double end = rank_now() + 60;

    CHECK(rh_am_send_wait((uint32_t)r, FT_DIE, NULL, 0, NULL, 0));
    while (rh_rank_alive(r) && rank_now() < end) {
        rank_nap();
    }
    if (rh_rank_alive(r)) {
        fail("a killed rank still looks alive", RH_ERR_TIMEOUT);
    }
}

static void wait_dead(void)
{
    double end = rank_now() + 60;

    for (int i = 0; i < nvictims; i++) {
        while (rh_rank_alive(victims[i]) && rank_now() < end) {
            rank_nap();
        }
        if (rh_rank_alive(victims[i])) {
            printf("FT FAIL victim rank %d never died\n", victims[i]);
            exit(1);
        }
    }
}

enum { MAPS = 64, PER = 8 };

/* The 64 maps and 8 reduces; returns the sum the reduces must give. */
static int64_t submit_mapreduce(rh_ref_t *maps, rh_ref_t *reds)
{
    rh_task_params_t p;
    int64_t expect = 0;

    for (int64_t i = 0; i < MAPS; i++) {
        rh_arg_t a = rh_arg_bytes(&i, sizeof(i));

        p = spread(i);
        CHECK(rh_remote("ft_map", &a, 1, &p, &maps[i]));
        expect += i * i + 1;
    }
    for (int j = 0; j < MAPS / PER; j++) {
        rh_arg_t a[PER + 1];
        int64_t id = MAPS + j;

        a[0] = rh_arg_bytes(&id, sizeof(id));
        for (int k = 0; k < PER; k++) {
            a[k + 1] = rh_arg_ref(maps[j * PER + k]);
        }
        p = spread(j + 1);
        CHECK(rh_remote("ft_sum", a, PER + 1, &p, &reds[j]));
    }
    return expect;
}

static void mapreduce(void)
{
    rh_ref_t maps[MAPS], reds[MAPS / PER];
    int64_t expect = submit_mapreduce(maps, reds), total = 0, v;
    rh_status_t st;

    for (int j = 0; j < MAPS / PER; j++) {
        if ((st = get_value(reds[j], &v)) != RH_OK) {
            fail("a reduce", st);
        }
        total += v;
    }
    wait_dead();
    /* The maps too, some of them lost with the victims by now. */
    for (int i = 0; i < MAPS; i++) {
        if ((st = get_value(maps[i], &v)) != RH_OK) {
            fail("a map", st);
        }
        if (v != (int64_t)i * i + 1) {
            printf("FT FAIL map %d is %lld\n", i, (long long)v);
            exit(1);
        }
    }
    if (total != expect) {
        printf("FT FAIL sum %lld, expected %lld\n", (long long)total,
               (long long)expect);
        exit(1);
    }
    printf("FT MAPREDUCE OK sum %lld\n", (long long)total);
}

/* The driver dies with its graph half done and its objects spread over
 * every node; no other rank is a victim here. */
static void driver_dies(void)
{
    rh_ref_t maps[MAPS], reds[MAPS / PER];
    int64_t v;
    rh_status_t st;

    (void)submit_mapreduce(maps, reds);
    if ((st = get_value(reds[0], &v)) != RH_OK) {
        fail("the first reduce", st);
    }
    printf("FT DRIVER DIES after a reduce of %lld\n", (long long)v);
    fflush(stdout);
    raise(SIGKILL);
}

static void recursion(void)
{
    int64_t d = 5, k = 1, v = 0;
    rh_task_params_t p = spread(k);
    rh_arg_t a[2] = { rh_arg_bytes(&d, sizeof(d)), rh_arg_bytes(&k, sizeof(k)) };
    rh_ref_t r;
    rh_status_t st;

    CHECK(rh_remote("ft_tree", a, 2, &p, &r));
    if ((st = get_value(r, &v)) != RH_OK) {
        fail("the tree", st);
    }
    wait_dead();
    if (v != 63) {
        printf("FT FAIL tree %lld, expected 63\n", (long long)v);
        exit(1);
    }
    printf("FT RECURSION OK value %lld\n", (long long)v);
}

static void lost_node(void)
{
    int64_t i = 5, v;
    /* Soft: bound to node 3, its rebuild would fail with it. */
    rh_task_params_t p = rank_on_node(3, 1);
    rh_arg_t a = rh_arg_bytes(&i, sizeof(i));
    const char *max = getenv("RAYHPC_LINEAGE_MAX_BYTES");
    int dropped = max != NULL && strcmp(max, "0") == 0;
    int ready = 0;
    rh_ref_t r, rets[2];
    rh_status_t st;
    double t0;

    /* Its second, empty return says it ended, with no copy of the first
     * here (a wait on that one brings it here): it lives on node 3
     * alone. */
    p.field_mask |= RH_TASK_PARAM_FIELD_NUM_RETURNS;
    p.num_returns = 2;
    CHECK(rh_remote("ft_map", &a, 1, &p, rets));
    r = rets[0];
    CHECK(rh_wait(&rets[1], 1, 1, TIMEOUT, &ready));
    rh_release(rets[1]);
    if (!ready) {
        fail("the map never ended", RH_ERR_TIMEOUT);
    }
    kill_rank(6);
    kill_rank(7);
    t0 = rank_now();
    st = get_value(r, &v);
    if (dropped) {
        if (st != RH_ERR_OBJECT_LOST ||
            strstr(rh_last_error(), "lineage was dropped") == NULL) {
            fail("a lost object without lineage", st);
        }
        printf("FT LOST_NODE LINEAGE DROPPED OK in %.0f ms: %s\n",
               (rank_now() - t0) * 1e3, rh_last_error());
        return;
    }
    if (st != RH_OK) {
        fail("a lost object with lineage", st);
    }
    if (v != i * i + 1) {
        printf("FT FAIL rebuilt value %lld\n", (long long)v);
        exit(1);
    }
    printf("FT LOST_NODE OK rebuilt in %.0f ms\n", (rank_now() - t0) * 1e3);
}

enum { RACE_GETTERS = 2, RACE_REBUILDS = 400 };

typedef struct {
    rh_ref_t        ref;
    int64_t         want;
    _Atomic int     done;
    _Atomic long    gets;
} race_t;

static void *race_getter(void *arg)
{
    race_t *x = arg;
    int64_t v;

    while (!atomic_load(&x->done)) {
        rh_status_t st = get_value(x->ref, &v);

        if (st != RH_OK) {
            fail("a get racing rebuilds", st);
        }
        if (v != x->want) {
            printf("FT FAIL a get racing rebuilds read %lld\n", (long long)v);
            exit(1);
        }
        atomic_fetch_add(&x->gets, 1);
    }
    return NULL;
}

/* The rebuild's side, as lineage.c and forward.c do it: the future goes
 * back to PENDING (rh_future_reopen), then the rerun's answer, "it stays
 * on the runner's node, this long", completes it again. */
static void race_rebuild(rh_ref_t ref, size_t len)
{
    rh_future_t *f = rh_future_find_hold((rh_object_id_t){ ref.hi, ref.lo });

    if (f == NULL) {
        fail("the racing object's future", RH_ERR_INVALID_REF);
    }
    if (rh_future_reopen(f)) {
        rh_future_complete(f, NULL, len, 0);
    }
    rh_future_unhold(f);
}

static void rebuild_race(void)
{
    int64_t i = 5;
    rh_task_params_t p = rank_on_node(1, 0);
    rh_arg_t a = rh_arg_bytes(&i, sizeof(i));
    pthread_t t[RACE_GETTERS];
    race_t x = { .want = i * i + 1 };
    int64_t v;

    CHECK(rh_remote("ft_map", &a, 1, &p, &x.ref));
    CHECK(get_value(x.ref, &v));
    if (v != x.want) {
        fail("the racing object's first value", RH_ERR_MALFORMED);
    }
    for (int k = 0; k < RACE_GETTERS; k++) {
        pthread_create(&t[k], NULL, race_getter, &x);
    }
    for (int k = 0; k < RACE_REBUILDS; k++) {
        race_rebuild(x.ref, OBJ_WORDS * sizeof(int64_t));
        while (atomic_load(&x.gets) <= k) {
            rank_nap();   /* a get between each two rebuilds, at least */
        }
    }
    atomic_store(&x.done, 1);
    for (int k = 0; k < RACE_GETTERS; k++) {
        pthread_join(t[k], NULL);
    }
    rh_release(x.ref);
    printf("FT REBUILD_RACE OK %d rebuilds, %ld gets\n", RACE_REBUILDS,
           atomic_load(&x.gets));
}

static void exhausted(void)
{
    rh_task_params_t p = rank_on_node(1, 0);
    rh_ref_t r;
    const void *d;
    size_t len;
    rh_status_t st;

    p.field_mask |= RH_TASK_PARAM_FIELD_MAX_RETRIES;
    p.max_retries = 1;
    CHECK(rh_remote("ft_suicide", NULL, 0, &p, &r));
    st = rh_get(r, &d, &len, TIMEOUT);
    if (st != RH_ERR_TASK_FAILED ||
        strstr(rh_last_error(), "no retry left") == NULL ||
        strstr(rh_last_error(), "ft_suicide") == NULL) {
        fail("a task that kills its ranks", st);
    }
    printf("FT EXHAUSTED OK: %s\n", rh_last_error());
    rh_release(r);
}

static rh_task_params_t ftlic_params(void)
{
    rh_task_params_t p = { 0 };

    p.field_mask = RH_TASK_PARAM_FIELD_RESOURCES;
    p.resources = "ftlic=1";
    return p;
}

static void exceptions_res(void)
{
    rh_task_params_t p = ftlic_params();
    rh_ref_t r;
    int64_t v = 0;
    rh_status_t st;

    p.field_mask |= RH_TASK_PARAM_FIELD_RETRY_EXCEPTIONS |
                    RH_TASK_PARAM_FIELD_MAX_RETRIES;
    p.retry_exceptions = 1;
    p.max_retries = 3;
    CHECK(rh_remote("ft_nowhere", NULL, 0, &p, &r));
    st = get_value(r, &v);
    if (st != RH_ERR_TASK_FAILED ||
        strstr(rh_last_error(), "ft_nowhere fails on node 2") == NULL) {
        fail("a failing task that asks for ftlic=1", st);
    }
    rh_release(r);
    printf("FT EXCEPTIONS_RES OK: %s\n", rh_last_error());
}

static void lost_res(void)
{
    rh_task_params_t p = ftlic_params();
    rh_ref_t r;
    int64_t v = 0;
    rh_status_t st;

    CHECK(rh_remote("ft_suicide", NULL, 0, &p, &r));
    st = get_value(r, &v);
    if (st != RH_ERR_TASK_FAILED ||
        strstr(rh_last_error(), "ft_suicide") == NULL ||
        strstr(rh_last_error(), "no live rank offers CPU=1,ftlic=1") == NULL) {
        fail("a task lost with every rank that offers ftlic", st);
    }
    rh_release(r);
    printf("FT LOST_RES OK: %s\n", rh_last_error());
}

static void home_rerun(void)
{
    rh_task_params_t p = rank_on_node(1, 1);
    rh_ref_t r;
    int64_t v = -1;
    rh_status_t st;

    p.field_mask |= RH_TASK_PARAM_FIELD_MAX_RETRIES;
    p.max_retries = -1;
    CHECK(rh_remote("ft_home", NULL, 0, &p, &r));
    if ((st = get_value(r, &v)) != RH_OK || v != 0) {
        fail("a task lost with every rank but its owner's", st);
    }
    rh_release(r);
    printf("FT HOME_RERUN OK\n");
}

static void owner_died(void)
{
    rh_task_params_t p = rank_on_node(2, 0);
    rh_ref_t r, put;
    const void *d;
    size_t len;
    int owner;
    char want[32];
    rh_status_t st;

    CHECK(rh_remote("ft_put_ref", NULL, 0, &p, &r));
    CHECK(rh_get(r, &d, &len, TIMEOUT));
    memcpy(&put, d, sizeof(put));
    rh_release(r);
    owner = (int)rh_object_id_owner((rh_object_id_t){ put.hi, put.lo });
    kill_rank(owner);
    st = rh_get(put, &d, &len, TIMEOUT);
    snprintf(want, sizeof(want), "rank %d", owner);
    if (st != RH_ERR_OWNER_DIED || strstr(rh_last_error(), want) == NULL) {
        fail("an object whose owner died", st);
    }
    printf("FT OWNER_DIED OK: %s\n", rh_last_error());
}

static void exceptions(void)
{
    rh_task_params_t p = rank_on_node(1, 0);
    rh_ref_t r;
    int64_t v = 0;
    rh_status_t st;

    /* Bound to node 1: its retries run there too, and fail there. */
    p.field_mask |= RH_TASK_PARAM_FIELD_RETRY_EXCEPTIONS;
    p.retry_exceptions = 1;
    CHECK(rh_remote("ft_picky", NULL, 0, &p, &r));
    st = get_value(r, &v);
    if (st != RH_ERR_TASK_FAILED ||
        strstr(rh_last_error(), "does not run on node 1") == NULL) {
        fail("a task bound to node 1 failing with retry_exceptions", st);
    }
    rh_release(r);
    /* Five runs on the two ranks of node 1: one makes its third. */
    p.field_mask |= RH_TASK_PARAM_FIELD_MAX_RETRIES;
    p.max_retries = 4;
    CHECK(rh_remote("ft_flaky", NULL, 0, &p, &r));
    if ((st = get_value(r, &v)) != RH_OK || v != 42) {
        fail("a flaky task bound to node 1 with retry_exceptions", st);
    }
    rh_release(r);
    p = rank_on_node(1, 0);
    CHECK(rh_remote("ft_picky", NULL, 0, &p, &r));
    st = get_value(r, &v);
    if (st != RH_ERR_TASK_FAILED ||
        strstr(rh_last_error(), "does not run on node 1") == NULL) {
        fail("a failing task without retry_exceptions", st);
    }
    rh_release(r);
    /* Run here, on the driver: three runs with max_retries 3 ... */
    p = rank_on_node(0, 0);
    p.field_mask |= RH_TASK_PARAM_FIELD_RETRY_EXCEPTIONS |
                    RH_TASK_PARAM_FIELD_MAX_RETRIES;
    p.retry_exceptions = 1;
    p.max_retries = 3;
    CHECK(rh_remote("ft_flaky", NULL, 0, &p, &r));
    if ((st = get_value(r, &v)) != RH_OK || v != 42 ||
        atomic_load(&flaky_runs) != 3) {
        fail("a flaky task run here with retry_exceptions", st);
    }
    rh_release(r);
    /* ... and its error after two with max_retries 1. */
    atomic_store(&flaky_runs, 0);
    p.max_retries = 1;
    CHECK(rh_remote("ft_flaky", NULL, 0, &p, &r));
    st = get_value(r, &v);
    if (st != RH_ERR_TASK_FAILED ||
        strstr(rh_last_error(), "fails its run 2") == NULL) {
        fail("a flaky task run here out of retries", st);
    }
    rh_release(r);
    printf("FT EXCEPTIONS OK\n");
}

/* A task that returns a failed call's status: its getter reads the
 * call's reason, run elsewhere (the answer carries it) and here. */
static void failmsg(void)
{
    for (int node = 1; node >= 0; node--) {
        rh_task_params_t p = rank_on_node(node, 0);
        rh_ref_t r;
        const void *d;
        size_t len;
        rh_status_t st;

        CHECK(rh_remote("ft_twice", NULL, 0, &p, &r));
        st = rh_get(r, &d, &len, TIMEOUT);
        if (st != RH_ERR_TASK_FAILED ||
            strstr(rh_last_error(), "task ft_twice failed: invalid "
                   "parameter: return 0 of task ft_twice is set already") ==
            NULL) {
            fail("a task returning a failed call's status", st);
        }
        printf("FT TASKMSG node %d: %s\n", node, rh_last_error());
        rh_release(r);
    }
    printf("FT TASKMSG OK\n");
}

/* (4 ranks on 2 nodes) Rank 1 dies, so that a rerun of a task lost on
 * node 1 has only node 1 left: there it meets the return the lost run
 * left in the node's store, sealed or not, and must take it over or
 * replace it. */
static void same_node(int seal)
{
    rh_task_params_t p = rank_on_node(1, 0);
    int64_t sealed = seal, v = 0;
    char path[128];
    rh_arg_t a[2];
    rh_ref_t r;
    rh_status_t st;

    snprintf(path, sizeof(path), "/tmp/rayhpc-ft-same-%d-%d", (int)getpid(),
             seal);
    a[0] = rh_arg_bytes(&sealed, sizeof(sealed));
    a[1] = rh_arg_bytes(path, strlen(path) + 1);
    (void)unlink(path);
    kill_rank(1);
    CHECK(rh_remote("ft_leave", a, 2, &p, &r));
    st = get_value(r, &v);
    (void)unlink(path);
    if (st != RH_OK || v != 99) {
        fail("a rerun on the node where its lost run left its return", st);
    }
    printf("FT SAME_NODE %s OK\n", seal ? "SEALED" : "UNSEALED");
}

/* A task's return is being written on its node by a live process
 * (another run of it; a pull of a copy is the same to the store): the
 * task's return waits for it and takes it over. */
static void same_node_live(void)
{
    rh_task_params_t p = rank_on_node(1, 0);
    int64_t v = 0;
    rh_ref_t r;
    rh_status_t st;

    CHECK(rh_remote("ft_beside", NULL, 0, &p, &r));
    st = get_value(r, &v);
    if (st != RH_OK || v != 99) {
        fail("a return another live run of the task writes on its node", st);
    }
    printf("FT SAME_NODE LIVE OK\n");
}

/* ft_pg_step(victim) into bundle b of pg. */
static rh_status_t pg_step(rh_pg_t pg, int b, int64_t victim, rh_ref_t *r)
{
    rh_task_params_t p = { 0 };
    rh_arg_t a = rh_arg_bytes(&victim, sizeof(victim));

    p.field_mask = RH_TASK_PARAM_FIELD_STRATEGY;
    p.strategy = RH_STRATEGY_PLACEMENT_GROUP;
    p.pg = pg;
    p.bundle = b;
    return rh_remote("ft_pg_step", &a, 1, &p, r);
}

/* The rank of bundle b once pg's record in the GCS says state and that
 * rank (want; -2: any, -1: placed nowhere): the global scheduler writes it
 * without waiting, so a reader may see the one before for a while. Fails
 * the test when it never does. */
static int pg_record_rank(rh_pg_t pg, int b, int state, int want)
{
    double end = rank_now() + 60;
    rh_pg_record_t rec;
    int r;

    for (;;) {
        rh_status_t st = rh_pg_record_read(pg, &rec);

        r = st == RH_OK && rec.ranks != NULL ? rec.ranks[b] : -1;
        if (st == RH_OK && rec.state == state && (want == -2 || r == want)) {
            rh_pg_record_free(&rec);
            return r;
        }
        if (st == RH_OK) {
            rh_pg_record_free(&rec);
        }
        if ((st != RH_OK && st != RH_ERR_NOT_FOUND) || rank_now() > end) {
            printf("FT FAIL the record of group %llu never had state %d "
                   "and rank %d for bundle %d (last: %d)\n",
                   (unsigned long long)pg, state, want, b, r);
            exit(1);
        }
        usleep(10000);
    }
}

static void pg_bundle(void)
{
    rh_bundle_t bs[4] = { { 1, NULL }, { 1, NULL }, { 1, NULL }, { 1, NULL } };
    rh_pg_t pg;
    rh_ref_t r;
    int64_t v = 0;
    const char *at = getenv("FT_PG_NODE");
    int b = -1, node = -1, r1, r2, x = at != NULL ? atoi(at) : 3;
    char gname[64], rname[32];
    rh_status_t st;

    if (x < 1 || x > 3) {
        fail("FT_PG_NODE is a node from 1 to 3", RH_ERR_INVALID_PARAM);
    }
    CHECK(rh_pg_create(bs, 4, RH_PG_STRICT_SPREAD, &pg));
    CHECK(rh_pg_wait(pg, TIMEOUT));
    for (int i = 0; i < 4 && b < 0; i++) {
        CHECK(rh_pg_bundle_node(pg, i, &node));
        b = node == x ? i : -1;
    }
    if (b < 0) {
        fail("no bundle on the node", RH_ERR_INVALID_PARAM);
    }
    r1 = pg_record_rank(pg, b, RH_PG_REC_PLACED, -2);
    /* Its rank dies running it: the bundle goes to the node's other rank,
     * the only one STRICT_SPREAD allows, and the task runs again there. */
    CHECK(pg_step(pg, b, r1, &r));
    if ((st = get_value(r, &v)) != RH_OK || v != 42) {
        fail("a task whose bundle's rank died running it", st);
    }
    rh_release(r);
    if ((st = rh_pg_wait(pg, TIMEOUT)) != RH_OK ||
        (st = rh_pg_bundle_node(pg, b, &node)) != RH_OK || node != x) {
        fail("the group after its bundle was placed again", st);
    }
    /* The node's other rank: ranks 2x and 2x + 1 make node x. */
    r2 = pg_record_rank(pg, b, RH_PG_REC_PLACED, r1 ^ 1);
    if (rh_core_node_of(r2) != x || !rh_rank_alive(r2)) {
        printf("FT FAIL bundle %d is on rank %d after rank %d died\n", b, r2,
               r1);
        exit(1);
    }
    CHECK(pg_step(pg, b, r1, &r));
    if ((st = get_value(r, &v)) != RH_OK || v != 42) {
        fail("a task into the bundle placed again", st);
    }
    rh_release(r);
    printf("FT PG_BUNDLE placed again on rank %d after rank %d died\n", r2,
           r1);
    /* Now the node is gone: no room for the bundle anywhere. */
    snprintf(gname, sizeof(gname), "placement group %llu",
             (unsigned long long)pg);
    snprintf(rname, sizeof(rname), "rank %d", r2);
    CHECK(pg_step(pg, b, r2, &r));
    st = get_value(r, &v);
    if (st != RH_ERR_TASK_FAILED || strstr(rh_last_error(), gname) == NULL ||
        strstr(rh_last_error(), rname) == NULL) {
        fail("a task whose bundle cannot be placed again", st);
    }
    printf("FT PG_BUNDLE lost: %s\n", rh_last_error());
    rh_release(r);
    st = rh_pg_wait(pg, TIMEOUT);
    if (st != RH_ERR_PEER_FAILED || strstr(rh_last_error(), gname) == NULL ||
        strstr(rh_last_error(), rname) == NULL) {
        fail("rh_pg_wait of a group that lost a bundle", st);
    }
    st = pg_step(pg, b, -1, &r);
    if (st != RH_ERR_PEER_FAILED || strstr(rh_last_error(), rname) == NULL) {
        fail("a task into a lost bundle", st);
    }
    (void)pg_record_rank(pg, b, RH_PG_REC_RESCHEDULING, -1);
    /* The bundles still placed run their tasks. */
    CHECK(pg_step(pg, (b + 1) % 4, -1, &r));
    if ((st = get_value(r, &v)) != RH_OK || v != 42) {
        fail("a task into a bundle of the group still placed", st);
    }
    rh_release(r);
    CHECK(rh_pg_remove(pg));
    printf("FT PG_BUNDLE OK\n");
}

/* A lost task whose bundle comes to its owner's own rank. */
static void pg_home(void)
{
    rh_bundle_t one = { 1, NULL };
    rh_bundle_t bs[4] = { { 1, NULL }, { 1, NULL }, { 1, NULL }, { 1, NULL } };
    rh_pg_t hold, pg;
    rh_ref_t r;
    int64_t v = 0;
    int b = -1, node = -1;
    rh_status_t st;

    /* Rank 0's one CPU goes to a group first, so that node 0's bundle of
     * the next one lands on rank 1. */
    CHECK(rh_pg_create(&one, 1, RH_PG_PACK, &hold));
    CHECK(rh_pg_wait(hold, TIMEOUT));
    (void)pg_record_rank(hold, 0, RH_PG_REC_PLACED, 0);
    CHECK(rh_pg_create(bs, 4, RH_PG_STRICT_SPREAD, &pg));
    CHECK(rh_pg_wait(pg, TIMEOUT));
    for (int i = 0; i < 4 && b < 0; i++) {
        CHECK(rh_pg_bundle_node(pg, i, &node));
        b = node == 0 ? i : -1;
    }
    if (b < 0) {
        fail("no bundle on node 0", RH_ERR_INVALID_PARAM);
    }
    (void)pg_record_rank(pg, b, RH_PG_REC_PLACED, 1);
    CHECK(rh_pg_remove(hold));
    CHECK(pg_step(pg, b, 1, &r));
    if ((st = get_value(r, &v)) != RH_OK || v != 42) {
        fail("a task whose bundle came to its owner's rank", st);
    }
    rh_release(r);
    (void)pg_record_rank(pg, b, RH_PG_REC_PLACED, 0);
    CHECK(rh_pg_remove(pg));
    printf("FT PG_HOME OK\n");
}

/* A lost task is not run again where bundles hold every CPU. */
static void pg_full(void)
{
    rh_bundle_t one = { 1, NULL };
    rh_pg_t hold[8];
    rh_task_params_t p = rank_on_node(3, 1);
    int64_t victim = 6, v = 0;
    rh_arg_t a = rh_arg_bytes(&victim, sizeof(victim));
    rh_ref_t r;
    rh_status_t st;

    /* One-bundle groups fill the ranks in order (PACK, first fit); those
     * of ranks 0, 5 and 6 go again. */
    for (int i = 0; i < 8; i++) {
        CHECK(rh_pg_create(&one, 1, RH_PG_PACK, &hold[i]));
        CHECK(rh_pg_wait(hold[i], TIMEOUT));
        (void)pg_record_rank(hold[i], 0, RH_PG_REC_PLACED, i);
    }
    CHECK(rh_pg_remove(hold[0]));
    CHECK(rh_pg_remove(hold[5]));
    CHECK(rh_pg_remove(hold[6]));
    /* Node 3's free rank is 6; it dies running the task, whose rerun
     * fits only on rank 5 (its affinity is soft: a hard one would keep it
     * on node 3, waiting for rank 7's bundle to go). */
    for (double end = rank_now() + 60; !rh_place_rank_fits(6, NULL); ) {
        if (rank_now() > end) {
            fail("rank 6 never looked free", RH_ERR_TIMEOUT);
        }
        usleep(10000);
    }
    CHECK(rh_remote("ft_pg_step", &a, 1, &p, &r));
    if ((st = get_value(r, &v)) != RH_OK || v != 42) {
        fail("a task lost where bundles hold the other ranks' CPUs", st);
    }
    rh_release(r);
    for (int i = 1; i < 8; i++) {
        if (i != 5 && i != 6) {
            CHECK(rh_pg_remove(hold[i]));
        }
    }
    printf("FT PG_FULL OK\n");
}

/* An actor that holds its CPUs for its life. */
static rh_status_t holder_init(rh_task_ctx_t *ctx, void **state)
{
    (void)ctx;
    *state = NULL;
    return RH_OK;
}

static rh_status_t holder_ping(void *state, rh_task_ctx_t *ctx)
{
    int64_t one = 1;

    (void)state;
    return rh_task_return(ctx, 0, &one, sizeof(one));
}

/* (4 ranks on 4 nodes, RAYHPC_NUM_WORKERS=1: one CPU each) Actors hold the
 * CPUs of ranks 2 and 3, groups those of ranks 0 and 1; rank 1 dies in its
 * group's task: no rank has room for the bundle (the task fails, the wait
 * too). The actor of rank 3 is killed: the bundle goes there, and the
 * group's wait and a task into it proceed. */
static void pg_actor(void)
{
    rh_bundle_t one = { 1, NULL };
    rh_actor_params_t ap;
    rh_actor_t act[2];
    rh_pg_t hold, pg;
    rh_ref_t r;
    int64_t v = 0;
    int rank = -1, node = -1;
    rh_status_t st;

    for (int i = 0; i < 2; i++) {
        memset(&ap, 0, sizeof(ap));
        ap.field_mask = RH_ACTOR_PARAM_FIELD_NUM_CPUS |
                        RH_ACTOR_PARAM_FIELD_RESOURCES |
                        RH_ACTOR_PARAM_FIELD_STRATEGY;
        ap.num_cpus = 1;
        ap.resources = "slot=1";   /* every rank offers one (the test's) */
        ap.strategy = RH_STRATEGY_NODE_AFFINITY;
        ap.node = 2 + i;
        CHECK(rh_actor_create("Holder", NULL, 0, &ap, &act[i]));
        CHECK(rh_actor_ready(act[i], TIMEOUT, &rank));
        if (rank != 2 + i) {
            fail("an actor not on its node's rank", RH_ERR_INVALID_PARAM);
        }
    }
    /* The global scheduler hears of them with their ranks' heartbeats. */
    for (double end = rank_now() + 60; rh_place_gs_actor_cpus(2) != 1 ||
         rh_place_gs_actor_cpus(3) != 1; usleep(10000)) {
        if (rank_now() > end) {
            fail("the actors' CPUs never reached the global scheduler",
                 RH_ERR_TIMEOUT);
        }
    }
    CHECK(rh_pg_create(&one, 1, RH_PG_PACK, &hold));
    CHECK(rh_pg_wait(hold, TIMEOUT));
    (void)pg_record_rank(hold, 0, RH_PG_REC_PLACED, 0);
    CHECK(rh_pg_create(&one, 1, RH_PG_PACK, &pg));
    CHECK(rh_pg_wait(pg, TIMEOUT));
    (void)pg_record_rank(pg, 0, RH_PG_REC_PLACED, 1);
    CHECK(pg_step(pg, 0, 1, &r));
    if ((st = get_value(r, &v)) != RH_ERR_TASK_FAILED) {
        fail("a task whose bundle found no room after its rank died", st);
    }
    rh_release(r);
    (void)pg_record_rank(pg, 0, RH_PG_REC_RESCHEDULING, -1);
    if ((st = rh_pg_wait(pg, TIMEOUT)) != RH_ERR_PEER_FAILED) {
        fail("the wait of a group whose bundle found no room", st);
    }
    printf("FT PG_ACTOR no room: %s\n", rh_last_error());
    CHECK(rh_actor_kill(act[1], 1));
    (void)pg_record_rank(pg, 0, RH_PG_REC_PLACED, 3);
    for (double end = rank_now() + 60;
         rh_pg_bundle_node(pg, 0, &node) != RH_OK; usleep(10000)) {
        if (rank_now() > end) {
            fail("the bundle placed again never reached the driver",
                 RH_ERR_TIMEOUT);
        }
    }
    CHECK(rh_pg_wait(pg, TIMEOUT));
    if (node != 3) {
        fail("the bundle is not where the actor's CPU was freed",
             RH_ERR_INVALID_PARAM);
    }
    CHECK(pg_step(pg, 0, -1, &r));
    if ((st = get_value(r, &v)) != RH_OK || v != 42) {
        fail("a task into the bundle placed again", st);
    }
    rh_release(r);
    CHECK(rh_pg_remove(pg));
    CHECK(rh_pg_remove(hold));
    CHECK(rh_actor_release(act[0]));
    CHECK(rh_actor_release(act[1]));
    printf("FT PG_ACTOR OK\n");
}

static void parse_victims(void)
{
    const char *v = getenv("FT_VICTIMS"), *k = getenv("FT_KILL_AT");
    char buf[64], *save = NULL;

    snprintf(buf, sizeof(buf), "%s", v ? v : "3,6");
    for (char *t = strtok_r(buf, ",", &save); t && nvictims < 8;
         t = strtok_r(NULL, ",", &save)) {
        victims[nvictims++] = atoi(t);
    }
    kill_at = k ? atoi(k) : 9;
}

/* Waits (a few seconds at most) for cond over the lineage table: an
 * answer completes its futures before its entry is handed on. */
static int lineage_settles(size_t count, int bytes_nonzero)
{
    for (int i = 0; i < 5000; i++) {
        if (rh_lineage_count() == count &&
            (rh_lineage_bytes() != 0) == bytes_nonzero) {
            return 1;
        }
        usleep(1000);
    }
    return 0;
}

#define FT_STREAM 2000

/* Specs of about 1.7 KiB (an argument padded past the index ft_map
 * reads) over a bound of 1 MiB, the least at which a release takes no
 * lock: the window
 * of held returns overflows it, so that the answers of new tasks drop the
 * oldest entries for room while the driver releases those very ones. */
#define FT_RACE_TASKS  3000
#define FT_RACE_WINDOW 1000
#define FT_RACE_PAD    1536

static void released_while_dropped(void)
{
    static rh_ref_t r[FT_RACE_TASKS];
    static uint8_t pad[FT_RACE_PAD];
    rh_task_params_t p = rank_on_node(1, 0);
    long dropped = rh_lineage_dropped();
    int64_t v;

    rh_lineage_set_max((size_t)1 << 20);
    for (int64_t i = 0; i < FT_RACE_TASKS + FT_RACE_WINDOW; i++) {
        if (i < FT_RACE_TASKS) {
            rh_arg_t a = rh_arg_bytes(pad, sizeof(pad));

            memcpy(pad, &i, sizeof(i));   /* what ft_map reads */
            CHECK(rh_remote("ft_map", &a, 1, &p, &r[i]));
        }
        if (i == FT_RACE_WINDOW - 1) {
            /* The whole window answered, whatever the pace of rank 1:
             * over the bound, so some of it was dropped for room. */
            for (int64_t k = 0; k < FT_RACE_WINDOW; k++) {
                rh_status_t st = get_value(r[k], &v);

                if (st != RH_OK || v != k * k + 1) {
                    printf("FT FAIL task %lld of the window over a 1 MiB "
                           "bound: %s, value %lld\n", (long long)k,
                           rh_status_string(st), (long long)v);
                    exit(1);
                }
            }
        }
        if (i >= FT_RACE_WINDOW) {
            int64_t k = i - FT_RACE_WINDOW;
            rh_status_t st = get_value(r[k], &v);

            if (st != RH_OK) {
                fail("a task of the stream over a 1 MiB bound", st);
            }
            if (v != k * k + 1) {
                printf("FT FAIL value %lld of task %lld over a 1 MiB "
                       "bound\n", (long long)v, (long long)k);
                exit(1);
            }
            rh_release(r[k]);
        }
    }
    if (!lineage_settles(0, 0) || rh_lineage_dropped() == dropped) {
        printf("FT FAIL %zu entries, %zu bytes left, %ld dropped for room "
               "over a 1 MiB bound\n", rh_lineage_count(),
               rh_lineage_bytes(), rh_lineage_dropped() - dropped);
        exit(1);
    }
    rh_lineage_set_max(rh_cfg.lineage_max_bytes);
}

static void accounting(void)
{
    static rh_ref_t r[FT_STREAM];
    rh_task_params_t p = rank_on_node(1, 0);
    long dropped = rh_lineage_dropped();
    int64_t v;

    for (int64_t i = 0; i < FT_STREAM; i++) {
        rh_arg_t a = rh_arg_bytes(&i, sizeof(i));

        CHECK(rh_remote("ft_map", &a, 1, &p, &r[i]));
    }
    for (int i = 0; i < FT_STREAM; i++) {
        const void *d;
        size_t len;

        CHECK(rh_get(r[i], &d, &len, TIMEOUT));
        if (obj_value(d, len) != (int64_t)i * i + 1) {
            printf("FT FAIL value %lld of task %d\n",
                   (long long)obj_value(d, len), i);
            exit(1);
        }
    }
    /* Every entry answered and linked: the bytes are all of theirs. */
    if (!lineage_settles(FT_STREAM, 1)) {
        printf("FT FAIL %zu entries, %zu bytes kept for %d tasks answered\n",
               rh_lineage_count(), rh_lineage_bytes(), FT_STREAM);
        exit(1);
    }
    for (int i = 0; i < FT_STREAM; i++) {
        rh_release(r[i]);
        rh_release(r[i]);
    }
    if (!lineage_settles(0, 0)) {
        printf("FT FAIL %zu entries, %zu bytes left after every release\n",
               rh_lineage_count(), rh_lineage_bytes());
        exit(1);
    }
    rh_lineage_set_max(0);
    for (int64_t i = 0; i < FT_STREAM; i++) {
        rh_arg_t a = rh_arg_bytes(&i, sizeof(i));

        CHECK(rh_remote("ft_map", &a, 1, &p, &r[i]));
    }
    for (int i = 0; i < FT_STREAM; i++) {
        rh_status_t st = get_value(r[i], &v);

        if (st != RH_OK) {
            fail("a task of the stream without lineage", st);
        }
        if (v != (int64_t)i * i + 1) {
            printf("FT FAIL value %lld of task %d without lineage\n",
                   (long long)v, i);
            exit(1);
        }
    }
    if (!lineage_settles(0, 0) ||
        rh_lineage_dropped() - dropped != FT_STREAM) {
        printf("FT FAIL %zu entries, %zu bytes, %ld dropped with no room "
               "for lineage\n", rh_lineage_count(), rh_lineage_bytes(),
               rh_lineage_dropped() - dropped);
        exit(1);
    }
    for (int i = 0; i < FT_STREAM; i++) {
        rh_release(r[i]);
    }
    released_while_dropped();
    printf("FT ACCOUNTING OK\n");
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "mapreduce";
    rh_status_t st;
    int me;

    parse_victims();
    if (strcmp(mode, "driver") == 0 || strncmp(mode, "same_node", 9) == 0 ||
        strcmp(mode, "pg_actor") == 0 || strcmp(mode, "accounting") == 0 ||
        strcmp(mode, "home_rerun") == 0) {
        nvictims = 0;
    }
    if ((strcmp(mode, "exceptions_res") == 0 ||
         strcmp(mode, "lost_res") == 0) && getenv("RAYHPC_NODE_ID") != NULL &&
        strcmp(getenv("RAYHPC_NODE_ID"), "vnode2") == 0) {
        setenv("RAYHPC_RESOURCES", "ftlic=1", 1);
    }
    CHECK(rh_am_register(FT_DIE, 0, 0, on_die, NULL));
    CHECK(rh_register("ft_map", ft_map, 1, 1));
    CHECK(rh_register("ft_sum", ft_sum, -1, 1));
    CHECK(rh_register("ft_tree", ft_tree, 2, 1));
    CHECK(rh_register("ft_suicide", ft_suicide, 0, 1));
    CHECK(rh_register("ft_picky", ft_picky, 0, 1));
    CHECK(rh_register("ft_flaky", ft_flaky, 0, 1));
    CHECK(rh_register("ft_nowhere", ft_nowhere, 0, 1));
    CHECK(rh_register("ft_home", ft_home, 0, 1));
    CHECK(rh_register("ft_put_ref", ft_put_ref, 0, 1));
    CHECK(rh_register("ft_twice", ft_twice, 0, 1));
    CHECK(rh_register("ft_leave", ft_leave, 2, 1));
    CHECK(rh_register("ft_beside", ft_beside, 0, 1));
    {
        static const rh_method_def_t holder_methods[] = {
            { "ping", holder_ping, 0, 1 },
        };
        rh_actor_class_t cls = { 0 };

        cls.init = holder_init;
        cls.init_nargs = 0;
        cls.methods = holder_methods;
        cls.num_methods = 1;
        CHECK(rh_register_actor("Holder", &cls));
    }
    CHECK(rh_register("ft_pg_step", ft_pg_step, 1, 1));
    CHECK(rh_init(&argc, &argv, NULL));
    me = rh_rank();
    for (int i = 0; i < nvictims; i++) {
        if (victims[i] <= 0 || victims[i] >= rh_size()) {
            fprintf(stderr, "ft_kill: victims are ranks 1 to %d\n",
                    rh_size() - 1);
            return 2;
        }
    }
    if (me == 0) {
        if (strcmp(mode, "mapreduce") == 0) {
            mapreduce();
        } else if (strcmp(mode, "recursion") == 0) {
            recursion();
        } else if (strcmp(mode, "lost_node") == 0) {
            lost_node();
        } else if (strcmp(mode, "rebuild_race") == 0) {
            rebuild_race();
        } else if (strcmp(mode, "exhausted") == 0) {
            exhausted();
        } else if (strcmp(mode, "owner_died") == 0) {
            owner_died();
        } else if (strcmp(mode, "exceptions") == 0) {
            exceptions();
        } else if (strcmp(mode, "exceptions_res") == 0) {
            exceptions_res();
        } else if (strcmp(mode, "lost_res") == 0) {
            lost_res();
        } else if (strcmp(mode, "home_rerun") == 0) {
            home_rerun();
        } else if (strcmp(mode, "failmsg") == 0) {
            failmsg();
        } else if (strcmp(mode, "same_node_sealed") == 0) {
            same_node(1);
        } else if (strcmp(mode, "same_node_unsealed") == 0) {
            same_node(0);
        } else if (strcmp(mode, "same_node_live") == 0) {
            same_node_live();
        } else if (strcmp(mode, "pg_bundle") == 0) {
            pg_bundle();
        } else if (strcmp(mode, "pg_home") == 0) {
            pg_home();
        } else if (strcmp(mode, "pg_full") == 0) {
            pg_full();
        } else if (strcmp(mode, "pg_actor") == 0) {
            pg_actor();
        } else if (strcmp(mode, "driver") == 0) {
            driver_dies();
        } else if (strcmp(mode, "accounting") == 0) {
            accounting();
        } else {
            fprintf(stderr, "ft_kill: unknown mode %s\n", mode);
            return 2;
        }
        fflush(stdout);
    }
    st = rh_finalize();
    printf("FT DONE rank %d %s\n", me, rh_status_string(st));
    return st == RH_OK ? 0 : 1;
}
