/*
 * Actor restarts with real deaths: a counter actor placed on node 1, whose
 * rank is SIGKILLed by one of its own calls at a fixed point. Run with 8
 * ranks on 4 nodes; rank 0 (the driver) owns the actor.
 *
 * usage: ft_actor MODE
 *   restart   max_restarts 2: the call that kills the actor's rank fails
 *             with RH_ERR_ACTOR_DEAD, the actor comes back on another rank
 *             (its constructor again: the count starts over), a task on
 *             another node finds it through its handle; rh_actor_kill(a, 0)
 *             restarts it once more; a second death then finds no restart
 *             left: RH_ERR_ACTOR_DEAD for good ("FT ACTOR RESTART OK")
 *   final     max_restarts 0 (the default): one death ends it
 *             ("FT ACTOR FINAL OK")
 *   checkpoint [KILL]
 *             a counter that checkpoints every 100 calls, max_restarts 1,
 *             max_task_retries -1: 1,000 increments pipelined, its rank
 *             SIGKILLed by the one that finds the count at KILL (default
 *             550): restored from its last checkpoint on another rank, the
 *             calls not covered replayed: every increment's return is its
 *             number (or, for one that ran before the checkpoint restored
 *             and whose answer died with the rank, RH_ERR_ACTOR_DEAD
 *             saying so) and the count is 1,000 exactly; a second death
 *             finds no restart left: RH_ERR_ACTOR_DEAD
 *             ("FT ACTOR CHECKPOINT OK")
 *   request [KILL]
 *             the same with checkpoint_interval 0 and one checkpoint asked
 *             by a method (rh_actor_checkpoint) after the 300th increment,
 *             the rank killed at 350 ("FT ACTOR CHECKPOINT OK")
 *   retries   max_task_retries 1: a call that kills every rank it runs on
 *             is sent once again to the restarted actor, then fails with
 *             RH_ERR_ACTOR_DEAD naming its method; the third instance
 *             then answers calls ("FT ACTOR RETRIES OK")
 *   killresend
 *             max_restarts 1, max_task_retries -1: 200 calls pipelined
 *             behind a slow one, then rh_actor_kill(a, 0): the calls the
 *             kill found not started are sent again to the restarted
 *             instance, in order; every call is answered
 *             ("FT ACTOR KILL RESEND OK")
 *   killresendhere
 *             the same with the counter on node 0, the caller's own rank
 *             when run as 2 ranks on 2 nodes ("FT ACTOR KILL RESEND OK")
 *   killckpthere
 *             (2 ranks on 2 nodes) a checkpointed counter on rank 0 with
 *             max_task_retries -1: 15 calls, rh_actor_kill(a, 0), and the
 *             next call counts 16: the answered calls the checkpoint did
 *             not cover are replayed ("FT ACTOR KILL CHECKPOINT OK")
 *   home [KILL]
 *             (RAYHPC_NUM_WORKERS=1) the checkpoint test with the counter
 *             bound to node 0, on rank 1 while a group holds rank 0's
 *             CPU: its restart comes to rank 0, the caller's own rank;
 *             passes once the calls lost with rank 1 are sent again
 *             there, each taking effect once ("FT ACTOR HOME OK")
 * Every rank prints "FT DONE rank R" after its rh_finalize; the driver
 * prints "FT FAIL ..." and exits 1 on a wrong value or status.
 */
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "rank_util.h"
#include "core/placement.h"

#define TIMEOUT (60 * 1000)
#define KILL_AT 50          /* the count at which a call kills its rank */

typedef struct counter {
    int64_t count;
    int64_t restored_at;   /* the count restored, -1: constructed */
} counter_t;

static void fail(const char *what, rh_status_t st)
{
    printf("FT FAIL %s: %s (%s)\n", what, rh_status_string(st),
           st != RH_OK ? rh_last_error() : "");
    fflush(stdout);
    exit(1);
}

static int64_t arg_i64(rh_task_ctx_t *ctx, int i)
{
    int64_t v;

    memcpy(&v, rh_task_arg(ctx, i, NULL), sizeof(v));
    return v;
}

static rh_status_t counter_init(rh_task_ctx_t *ctx, void **state)
{
    counter_t *c = malloc(sizeof(*c));

    if (c == NULL) {
        return rh_task_fail(ctx, "no memory");
    }
    c->count = arg_i64(ctx, 0);
    c->restored_at = -1;
    *state = c;
    return RH_OK;
}

static void counter_fini(void *state)
{
    free(state);
}

/* inc(victim): +1, returns the count; on rank victim at KILL_AT, kills
 * its rank instead. */
static rh_status_t counter_inc(void *state, rh_task_ctx_t *ctx)
{
    counter_t *c = state;

    if (c->count == KILL_AT && arg_i64(ctx, 0) == rh_rank()) {
        printf("FT VICTIM rank %d dies at count %d\n", rh_rank(), KILL_AT);
        fflush(stdout);
        raise(SIGKILL);
    }
    c->count++;
    return rh_task_return(ctx, 0, &c->count, sizeof(c->count));
}

/* add(victim, kill_at): +1, returns the count; on rank victim when the
 * count is kill_at, kills its rank first. */
static rh_status_t counter_add(void *state, rh_task_ctx_t *ctx)
{
    counter_t *c = state;

    if (c->count == arg_i64(ctx, 1) && arg_i64(ctx, 0) == rh_rank()) {
        printf("FT VICTIM rank %d dies at count %lld\n", rh_rank(),
               (long long)c->count);
        fflush(stdout);
        raise(SIGKILL);
    }
    c->count++;
    return rh_task_return(ctx, 0, &c->count, sizeof(c->count));
}

/* boom: kills whichever rank runs it. */
static rh_status_t counter_boom(void *state, rh_task_ctx_t *ctx)
{
    (void)state;
    (void)ctx;
    printf("FT VICTIM rank %d dies in boom\n", rh_rank());
    fflush(stdout);
    raise(SIGKILL);
    return RH_OK;
}

static rh_status_t counter_save(void *state, rh_task_ctx_t *ctx)
{
    counter_t *c = state;

    return rh_task_return(ctx, 0, &c->count, sizeof(c->count));
}

static rh_status_t counter_restore(const void *data, size_t len,
                                   void **state)
{
    counter_t *c;

    if (len != sizeof(c->count) || (c = malloc(sizeof(*c))) == NULL) {
        return RH_ERR_MALFORMED;
    }
    memcpy(&c->count, data, sizeof(c->count));
    c->restored_at = c->count;
    *state = c;
    return RH_OK;
}

static rh_status_t counter_restored(void *state, rh_task_ctx_t *ctx)
{
    counter_t *c = state;

    return rh_task_return(ctx, 0, &c->restored_at, sizeof(c->restored_at));
}

/* save_now: asks for a checkpoint after this call; returns the status. */
static rh_status_t counter_save_now(void *state, rh_task_ctx_t *ctx)
{
    int64_t st = rh_actor_checkpoint(ctx);

    (void)state;
    return rh_task_return(ctx, 0, &st, sizeof(st));
}

static rh_status_t counter_get(void *state, rh_task_ctx_t *ctx)
{
    counter_t *c = state;

    return rh_task_return(ctx, 0, &c->count, sizeof(c->count));
}

/* A task on another rank: calls get on the actor whose handle it got. */
static rh_status_t call_get(rh_task_ctx_t *ctx)
{
    rh_actor_t a;
    rh_ref_t r;
    const void *p;
    size_t len;
    int64_t v;
    rh_status_t st;

    memcpy(&a, rh_task_arg(ctx, 0, NULL), sizeof(a));
    st = rh_actor_call(a, "get", NULL, 0, NULL, &r);
    if (st == RH_OK) {
        st = rh_get(r, &p, &len, TIMEOUT);
    }
    if (st != RH_OK) {
        return rh_task_fail(ctx, "get from rank %d: %s (%s)", rh_rank(),
                            rh_status_string(st), rh_last_error());
    }
    memcpy(&v, p, sizeof(v));
    rh_release(r);
    return rh_task_return(ctx, 0, &v, sizeof(v));
}

/* One inc: RH_OK and its count in *v, or the call's status. */
static rh_status_t inc(rh_actor_t a, int64_t victim, int64_t *v)
{
    rh_arg_t arg = rh_arg_bytes(&victim, sizeof(victim));
    rh_ref_t r;
    const void *p;
    size_t len;
    rh_status_t st = rh_actor_call(a, "inc", &arg, 1, NULL, &r);

    if (st != RH_OK) {
        return st;
    }
    st = rh_get(r, &p, &len, TIMEOUT);
    if (st == RH_OK) {
        memcpy(v, p, sizeof(*v));
    }
    rh_release(r);
    return st;
}

/* Counts up from 0 to KILL_AT on rank victim; the next call kills it. */
static void count_to_death(rh_actor_t a, int victim)
{
    int64_t v;
    rh_status_t st;

    for (int64_t i = 1; i <= KILL_AT; i++) {
        st = inc(a, victim, &v);
        if (st != RH_OK || v != i) {
            printf("FT FAIL inc %lld gave %lld\n", (long long)i,
                   (long long)v);
            fail("inc", st);
        }
    }
    st = inc(a, victim, &v);
    if (st != RH_ERR_ACTOR_DEAD) {
        fail("the call that killed the actor's rank", st);
    }
}

/* The first call the new instance answers: its count starts over. A call
 * made before the restart was heard of may still fail as the old one's. */
static void first_after_restart(rh_actor_t a)
{
    int64_t v = -1;
    rh_status_t st;
    int tries = 0;

    while ((st = inc(a, -1, &v)) == RH_ERR_ACTOR_DEAD && ++tries < 1000) {
        rank_nap();
    }
    if (st != RH_OK || v != 1) {
        printf("FT FAIL after the restart: count %lld\n", (long long)v);
        fail("inc after a restart", st);
    }
}

static void from_another_node(rh_actor_t a, int64_t want)
{
    rh_task_params_t tp = rank_on_node(2, 0);
    rh_arg_t arg = rh_arg_bytes(&a, sizeof(a));
    rh_ref_t r;
    const void *p;
    size_t len;
    int64_t v;

    CHECK(rh_remote("call_get", &arg, 1, &tp, &r));
    if (rh_get(r, &p, &len, TIMEOUT) != RH_OK) {
        fail("a call from node 2", RH_ERR_TASK_FAILED);
    }
    memcpy(&v, p, sizeof(v));
    rh_release(r);
    if (v != want) {
        printf("FT FAIL node 2 read %lld, not %lld\n", (long long)v,
               (long long)want);
        exit(1);
    }
}

static rh_actor_t make_counter(int max_restarts)
{
    rh_actor_params_t ap = { 0 };
    int64_t start = 0;
    rh_arg_t arg = rh_arg_bytes(&start, sizeof(start));
    rh_actor_t a;

    ap.field_mask = RH_ACTOR_PARAM_FIELD_STRATEGY |
                    RH_ACTOR_PARAM_FIELD_MAX_RESTARTS;
    ap.strategy = RH_STRATEGY_NODE_AFFINITY;
    ap.node = 1;
    ap.max_restarts = max_restarts;
    CHECK(rh_actor_create("Counter", &arg, 1, &ap, &a));
    return a;
}

static void restart(void)
{
    rh_actor_t a = make_counter(2);
    int r1, r2, r3;
    int64_t v;
    rh_status_t st;

    CHECK(rh_actor_ready(a, TIMEOUT, &r1));
    count_to_death(a, r1);
    first_after_restart(a);
    CHECK(rh_actor_ready(a, TIMEOUT, &r2));
    if (r2 == r1) {
        printf("FT FAIL restarted on the dead rank %d\n", r1);
        exit(1);
    }
    from_another_node(a, 1);
    /* A kill that allows restarts: the constructor runs again. */
    CHECK(rh_actor_kill(a, 0));
    first_after_restart(a);
    from_another_node(a, 1);
    CHECK(rh_actor_ready(a, TIMEOUT, &r3));
    for (int64_t i = 2; i <= KILL_AT; i++) {
        if (inc(a, r3, &v) != RH_OK || v != i) {
            fail("inc after the kill", RH_ERR_TASK_FAILED);
        }
    }
    st = inc(a, r3, &v);
    if (st != RH_ERR_ACTOR_DEAD) {
        fail("the call that killed the actor's rank again", st);
    }
    st = rh_actor_ready(a, TIMEOUT, NULL);
    if (st != RH_ERR_ACTOR_DEAD) {
        fail("ready with no restart left", st);
    }
    st = inc(a, -1, &v);
    if (st != RH_ERR_ACTOR_DEAD) {
        fail("a call with no restart left", st);
    }
    printf("FT ACTOR RESTART OK\n");
}

#define CK_CALLS 1000
#define CK_EVERY 100

static rh_status_t add_send(rh_actor_t a, int64_t victim, int64_t kill_at,
                            rh_ref_t *r)
{
    int64_t v[2] = { victim, kill_at };
    rh_arg_t args[2] = { rh_arg_bytes(&v[0], sizeof(v[0])),
                         rh_arg_bytes(&v[1], sizeof(v[1])) };

    return rh_actor_call(a, "add", args, 2, NULL, r);
}

static int64_t get_count(rh_actor_t a)
{
    rh_ref_t r;
    const void *p;
    size_t len;
    int64_t v;

    CHECK(rh_actor_call(a, "get", NULL, 0, NULL, &r));
    CHECK(rh_get(r, &p, &len, TIMEOUT));
    memcpy(&v, p, sizeof(v));
    rh_release(r);
    return v;
}

static int64_t call_i64(rh_actor_t a, const char *method)
{
    rh_ref_t r;
    const void *p;
    size_t len;
    int64_t v;

    CHECK(rh_actor_call(a, method, NULL, 0, NULL, &r));
    CHECK(rh_get(r, &p, &len, TIMEOUT));
    memcpy(&v, p, sizeof(v));
    rh_release(r);
    return v;
}

#define REQ_AT 300   /* request mode: the checkpoint asked after this add */

/* interval 0: no periodic checkpoint, one asked by a method after add
 * REQ_AT. home: the actor on rank 1 (node 0, rank 0's one CPU taken by a
 * group meanwhile: RAYHPC_NUM_WORKERS=1), so that its restart, bound to
 * node 0, comes to the caller's own rank. */
static void checkpoint(int64_t kill_at, int interval, int home)
{
    rh_actor_params_t ap = { 0 };
    int64_t start = 0, v;
    rh_arg_t arg = rh_arg_bytes(&start, sizeof(start));
    static rh_ref_t refs[CK_CALLS + 200];
    static int sent[200];
    rh_actor_t a;
    int r1, r2, covered = 0;
    rh_status_t st;
    const void *p;
    size_t len;
    rh_ref_t asked;
    int64_t at;
    rh_bundle_t one = { 1, NULL };
    rh_pg_t hold;

    ap.field_mask = RH_ACTOR_PARAM_FIELD_STRATEGY |
                    RH_ACTOR_PARAM_FIELD_MAX_RESTARTS |
                    RH_ACTOR_PARAM_FIELD_MAX_TASK_RETRIES |
                    RH_ACTOR_PARAM_FIELD_CHECKPOINT_INTERVAL;
    ap.strategy = RH_STRATEGY_NODE_AFFINITY;
    ap.node = home ? 0 : 1;
    ap.max_restarts = 1;
    ap.max_task_retries = -1;
    ap.checkpoint_interval = interval;
    if (home) {
        CHECK(rh_pg_create(&one, 1, RH_PG_PACK, &hold));
        CHECK(rh_pg_wait(hold, TIMEOUT));
        if (rh_place_rank_fits(0, NULL)) {
            fail("rank 0's CPU is not the group's", RH_ERR_INVALID_PARAM);
        }
    }
    CHECK(rh_actor_create("CkCounter", &arg, 1, &ap, &a));
    CHECK(rh_actor_ready(a, TIMEOUT, &r1));
    if (home) {
        if (r1 != 1) {
            printf("FT FAIL the counter is on rank %d, not 1\n", r1);
            exit(1);
        }
        CHECK(rh_pg_remove(hold));
        for (double end = rank_now() + 60; !rh_place_rank_fits(0, NULL);
             usleep(10000)) {
            if (rank_now() > end) {
                fail("rank 0's CPU never came back", RH_ERR_TIMEOUT);
            }
        }
    }
    /* Pipelined: every call is made before any answer is read. */
    for (int i = 0; i < CK_CALLS; i++) {
        CHECK(add_send(a, r1, kill_at, &refs[i]));
        if (interval == 0 && i + 1 == REQ_AT) {
            CHECK(rh_actor_call(a, "save_now", NULL, 0, NULL, &asked));
        }
    }
    for (int i = 0; i < CK_CALLS; i++) {
        st = rh_get(refs[i], &p, &len, TIMEOUT);
        if (st == RH_ERR_ACTOR_DEAD && i < kill_at &&
            strstr(rh_last_error(), "ran before the checkpoint") != NULL) {
            covered++;   /* it took effect; its answer died with the rank */
        } else if (st != RH_OK) {
            printf("FT FAIL add %d\n", i + 1);
            fail("a pipelined add", st);
        } else if (memcpy(&v, p, sizeof(v)), v != i + 1) {
            printf("FT FAIL add %d returned %lld\n", i + 1, (long long)v);
            exit(1);
        }
        rh_release(refs[i]);
    }
    v = get_count(a);
    if (v != CK_CALLS) {
        printf("FT FAIL the count is %lld after %d adds, not %d\n",
               (long long)v, CK_CALLS, CK_CALLS);
        exit(1);
    }
    /* Restored from a checkpoint the death came after (or, before the
     * first one reached the owner, constructed again). */
    at = call_i64(a, "restored");
    if (at != -1 && (at > kill_at || at <= 0 ||
                     (interval > 0 ? at % interval != 0 : at != REQ_AT))) {
        printf("FT FAIL restored at count %lld (death at %lld)\n",
               (long long)at, (long long)kill_at);
        exit(1);
    }
    if (interval == 0) {
        if (rh_get(asked, &p, &len, TIMEOUT) == RH_OK &&
            memcpy(&v, p, sizeof(v)) && v != RH_OK) {
            fail("rh_actor_checkpoint in a method", (rh_status_t)v);
        }
        rh_release(asked);
        v = CK_CALLS;
    }
    printf("FT CHECKPOINT restored at count %lld\n", (long long)at);
    CHECK(rh_actor_ready(a, TIMEOUT, &r2));
    if (r2 == r1 || (home && r2 != 0)) {
        printf("FT FAIL restored on rank %d (first on %d)\n", r2, r1);
        exit(1);
    }
    printf("FT CHECKPOINT count %lld exact after a death at %lld (%d "
           "answers lost with the rank)\n", (long long)v,
           (long long)kill_at, covered);
    if (home) {
        CHECK(rh_actor_release(a));
        printf("FT ACTOR HOME OK\n");
        return;   /* a second death would be the driver's */
    }
    /* A second death: no restart left. The call after the 50th may find
     * the actor known dead already, and fail at once. */
    for (int i = 0; i < 200; i++) {
        st = add_send(a, r2, CK_CALLS + 50, &refs[i]);
        if (st != RH_OK && (i <= 50 || st != RH_ERR_ACTOR_DEAD)) {
            fail("an add sent around the second death", st);
        }
        sent[i] = st == RH_OK;
    }
    for (int i = 0; i < 200; i++) {
        if (!sent[i]) {
            continue;
        }
        st = rh_get(refs[i], &p, &len, TIMEOUT);
        /* Before the death: its value, unless its answer died with the
         * rank (nothing is resent with no restart left). */
        if (i < 50 && st == RH_OK &&
            (memcpy(&v, p, sizeof(v)), v != CK_CALLS + i + 1)) {
            printf("FT FAIL add %d returned %lld\n", CK_CALLS + i + 1,
                   (long long)v);
            exit(1);
        }
        if (i < 50 && st != RH_OK && st != RH_ERR_ACTOR_DEAD) {
            fail("an add before the second death", st);
        }
        if (i >= 50 && st != RH_ERR_ACTOR_DEAD) {
            printf("FT FAIL add %d after the second death\n",
                   CK_CALLS + i + 1);
            fail("an add with no restart left", st);
        }
        rh_release(refs[i]);
    }
    st = rh_actor_ready(a, TIMEOUT, NULL);
    if (st != RH_ERR_ACTOR_DEAD) {
        fail("ready with no restart left", st);
    }
    printf("FT ACTOR CHECKPOINT OK\n");
}

static void retries(void)
{
    rh_actor_params_t ap = { 0 };
    int64_t start = 0, v;
    rh_arg_t arg = rh_arg_bytes(&start, sizeof(start));
    rh_actor_t a;
    rh_ref_t boom, after;
    const void *p;
    size_t len;
    rh_status_t st;

    ap.field_mask = RH_ACTOR_PARAM_FIELD_STRATEGY |
                    RH_ACTOR_PARAM_FIELD_MAX_RESTARTS |
                    RH_ACTOR_PARAM_FIELD_MAX_TASK_RETRIES;
    ap.strategy = RH_STRATEGY_NODE_AFFINITY;
    ap.node = 1;
    ap.soft = 1;
    ap.max_restarts = 3;
    /* Bad parameters fail at once, saying which. */
    ap.max_task_retries = -2;
    if (rh_actor_create("Counter", &arg, 1, &ap, &a) != RH_ERR_INVALID_PARAM) {
        fail("max_task_retries -2", RH_ERR_TASK_FAILED);
    }
    ap.max_task_retries = 1;
    ap.field_mask |= RH_ACTOR_PARAM_FIELD_CHECKPOINT_INTERVAL;
    ap.checkpoint_interval = 10;   /* a class without save and restore */
    if (rh_actor_create("Counter", &arg, 1, &ap, &a) != RH_ERR_INVALID_PARAM) {
        fail("checkpoints of a class without save", RH_ERR_TASK_FAILED);
    }
    ap.field_mask |= RH_ACTOR_PARAM_FIELD_MAX_CONCURRENCY;
    ap.max_concurrency = 2;        /* checkpoints need one call at a time */
    if (rh_actor_create("CkCounter", &arg, 1, &ap, &a) !=
        RH_ERR_INVALID_PARAM) {
        fail("checkpoints with max_concurrency 2", RH_ERR_TASK_FAILED);
    }
    ap.field_mask &= ~(uint64_t)(RH_ACTOR_PARAM_FIELD_CHECKPOINT_INTERVAL |
                                 RH_ACTOR_PARAM_FIELD_MAX_CONCURRENCY);
    CHECK(rh_actor_create("Counter", &arg, 1, &ap, &a));
    CHECK(rh_actor_ready(a, TIMEOUT, NULL));
    CHECK(rh_actor_call(a, "boom", NULL, 0, NULL, &boom));
    st = rh_get(boom, &p, &len, TIMEOUT);
    if (st != RH_ERR_ACTOR_DEAD ||
        strstr(rh_last_error(), "boom") == NULL ||
        strstr(rh_last_error(), "max_task_retries 1") == NULL) {
        fail("a call that kills every rank it runs on", st);
    }
    printf("FT RETRIES boom: %s\n", rh_last_error());
    rh_release(boom);
    /* The actor lives on (a third instance): calls are answered. */
    CHECK(rh_actor_call(a, "get", NULL, 0, NULL, &after));
    CHECK(rh_get(after, &p, &len, TIMEOUT));
    rh_release(after);
    CHECK(inc(a, -1, &v));
    /* Without checkpoints the class cannot be asked for one. */
    if (call_i64(a, "save_now") != RH_ERR_INVALID_PARAM) {
        fail("rh_actor_checkpoint without checkpoints", RH_ERR_TASK_FAILED);
    }
    printf("FT ACTOR RETRIES OK\n");
}

/* nap(ms): sleeps ms milliseconds, then +1 as inc; the calls behind it
 * wait in the mailbox meanwhile. */
static rh_status_t counter_nap(void *state, rh_task_ctx_t *ctx)
{
    counter_t *c = state;
    int64_t ms = arg_i64(ctx, 0);
    struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
    c->count++;
    return rh_task_return(ctx, 0, &c->count, sizeof(c->count));
}

/* max_restarts 1, max_task_retries -1: N calls pipelined behind a slow
 * one, then rh_actor_kill(a, 0). The kill ends the instance with calls
 * not started; those go again to the restarted instance, in order: every
 * call is answered, the counts run 1.. on the old instance and then 1..
 * again on the new one, none missing. */
#define KILL_CALLS 200

static void kill_resend(int node)
{
    rh_actor_params_t ap = { 0 };
    int64_t start = 0, ms = 300, victim = -1, v, prev = 0;
    rh_arg_t arg = rh_arg_bytes(&start, sizeof(start));
    rh_arg_t nap = rh_arg_bytes(&ms, sizeof(ms));
    rh_arg_t vic = rh_arg_bytes(&victim, sizeof(victim));
    rh_ref_t r[KILL_CALLS + 1];
    rh_actor_t a;
    const void *p;
    size_t len;
    rh_status_t st;
    int restarts = 0;

    ap.field_mask = RH_ACTOR_PARAM_FIELD_STRATEGY |
                    RH_ACTOR_PARAM_FIELD_MAX_RESTARTS |
                    RH_ACTOR_PARAM_FIELD_MAX_TASK_RETRIES;
    ap.strategy = RH_STRATEGY_NODE_AFFINITY;
    ap.node = node;
    ap.soft = 1;
    ap.max_restarts = 1;
    ap.max_task_retries = -1;
    CHECK(rh_actor_create("Counter", &arg, 1, &ap, &a));
    CHECK(rh_actor_ready(a, TIMEOUT, NULL));
    CHECK(rh_actor_call(a, "nap", &nap, 1, NULL, &r[0]));
    for (int i = 1; i <= KILL_CALLS; i++) {
        CHECK(rh_actor_call(a, "inc", &vic, 1, NULL, &r[i]));
    }
    CHECK(rh_actor_kill(a, 0));
    for (int i = 0; i <= KILL_CALLS; i++) {
        st = rh_get(r[i], &p, &len, TIMEOUT);
        if (st != RH_OK) {
            printf("FT FAIL call %d of %d after rh_actor_kill(a, 0)\n", i,
                   KILL_CALLS + 1);
            fail("a call in flight when the actor was killed", st);
        }
        memcpy(&v, p, sizeof(v));
        rh_release(r[i]);
        if (v == 1 && i > 0) {
            restarts++;   /* the new instance's first */
        } else if (v != prev + 1) {
            printf("FT FAIL call %d counted %lld after %lld\n", i,
                   (long long)v, (long long)prev);
            exit(1);
        }
        prev = v;
    }
    if (restarts > 1) {
        printf("FT FAIL the counts started over %d times\n", restarts);
        exit(1);
    }
    printf("FT KILL RESEND: %lld calls ran on the restarted instance\n",
           (long long)(restarts ? prev : 0));
    printf("FT ACTOR KILL RESEND OK\n");
}

/* A checkpointed counter on the caller's own rank (2 ranks on 2 nodes:
 * node 0 is rank 0), max_task_retries -1: 15 answered calls, then
 * rh_actor_kill(a, 0). The restart restores the checkpoint of 10 and
 * replays the 5 answered calls it did not cover: the next call counts
 * 16. */
static void kill_checkpoint_here(void)
{
    rh_actor_params_t ap = { 0 };
    int64_t start = 0, v = 0;
    rh_arg_t arg = rh_arg_bytes(&start, sizeof(start));
    rh_actor_t a;
    rh_status_t st;
    int r1;

    ap.field_mask = RH_ACTOR_PARAM_FIELD_STRATEGY |
                    RH_ACTOR_PARAM_FIELD_MAX_RESTARTS |
                    RH_ACTOR_PARAM_FIELD_MAX_TASK_RETRIES |
                    RH_ACTOR_PARAM_FIELD_CHECKPOINT_INTERVAL;
    ap.strategy = RH_STRATEGY_NODE_AFFINITY;
    ap.node = 0;
    ap.max_restarts = 1;
    ap.max_task_retries = -1;
    ap.checkpoint_interval = 10;
    CHECK(rh_actor_create("CkCounter", &arg, 1, &ap, &a));
    CHECK(rh_actor_ready(a, TIMEOUT, &r1));
    if (r1 != 0) {
        printf("FT FAIL the counter is on rank %d, not 0\n", r1);
        exit(1);
    }
    for (int i = 1; i <= 15; i++) {
        st = inc(a, -1, &v);
        if (st != RH_OK || v != i) {
            printf("FT FAIL call %d counted %lld\n", i, (long long)v);
            fail("a call before the kill", st);
        }
    }
    CHECK(rh_actor_kill(a, 0));
    st = inc(a, -1, &v);
    if (st != RH_OK || v != 16) {
        printf("FT FAIL the call after the restart counted %lld, not 16\n",
               (long long)v);
        fail("the call after a kill that restarts", st);
    }
    printf("FT ACTOR KILL CHECKPOINT OK\n");
}

static void final(void)
{
    rh_actor_t a = make_counter(0);
    int64_t v;
    int r1;
    rh_status_t st;

    CHECK(rh_actor_ready(a, TIMEOUT, &r1));
    count_to_death(a, r1);
    st = inc(a, -1, &v);
    if (st != RH_ERR_ACTOR_DEAD) {
        fail("a call after the death", st);
    }
    printf("FT ACTOR FINAL OK\n");
}

int main(int argc, char **argv)
{
    static const rh_method_def_t methods[] = {
        { "inc", counter_inc, 1, 1 },
        { "get", counter_get, 0, 1 },
        { "add", counter_add, 2, 1 },
        { "boom", counter_boom, 0, 1 },
        { "restored", counter_restored, 0, 1 },
        { "save_now", counter_save_now, 0, 1 },
        { "nap", counter_nap, 1, 1 },
    };
    rh_actor_class_t cls = { 0 };
    const char *mode = argc > 1 ? argv[1] : "restart";
    rh_status_t st;
    int me;

    cls.field_mask = RH_ACTOR_CLASS_FIELD_FINI;
    cls.init = counter_init;
    cls.init_nargs = 1;
    cls.methods = methods;
    cls.num_methods = 7;
    cls.fini = counter_fini;
    CHECK(rh_register_actor("Counter", &cls));
    cls.field_mask |= RH_ACTOR_CLASS_FIELD_CHECKPOINT;
    cls.save = counter_save;
    cls.restore = counter_restore;
    CHECK(rh_register_actor("CkCounter", &cls));
    CHECK(rh_register("call_get", call_get, 1, 1));
    CHECK(rh_init(&argc, &argv, NULL));
    me = rh_rank();
    if (me == 0) {
        if (strcmp(mode, "restart") == 0) {
            restart();
        } else if (strcmp(mode, "final") == 0) {
            final();
        } else if (strcmp(mode, "checkpoint") == 0) {
            checkpoint(argc > 2 ? atoll(argv[2]) : 550, CK_EVERY, 0);
        } else if (strcmp(mode, "home") == 0) {
            checkpoint(argc > 2 ? atoll(argv[2]) : 550, CK_EVERY, 1);
        } else if (strcmp(mode, "request") == 0) {
            checkpoint(argc > 2 ? atoll(argv[2]) : 350, 0, 0);
        } else if (strcmp(mode, "retries") == 0) {
            retries();
        } else if (strcmp(mode, "killresend") == 0) {
            kill_resend(1);
        } else if (strcmp(mode, "killresendhere") == 0) {
            kill_resend(0);
        } else if (strcmp(mode, "killckpthere") == 0) {
            kill_checkpoint_here();
        } else {
            fprintf(stderr, "ft_actor: unknown mode %s\n", mode);
            return 2;
        }
        fflush(stdout);
    }
    st = rh_finalize();
    printf("FT DONE rank %d %s\n", me, rh_status_string(st));
    return st == RH_OK ? 0 : 1;
}
