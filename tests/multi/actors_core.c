/*
 * Actors, driven by rank 0 (and, for "callers", by every rank); the other
 * ranks serve from inside rh_finalize.
 *
 * usage: actors_core local      one rank: 100 K ordered calls, errors, a failing
 *                          constructor, kill with 1,000 calls queued,
 *                          max_concurrency 4, the destructor of a dropped
 *                          actor: prints "ACTORS LOCAL OK".
 *        actors_core remote     actors on other nodes: ordered calls, refs ready
 *                          in reverse order, a handle passed into a task,
 *                          named actors, kill, drop: "ACTORS REMOTE OK".
 *        actors_core callers    every rank calls one actor on node 1 with its own
 *                          sequence: "ACTORS CALLERS OK" on rank 0.
 *        actors_core pg         an actor in a placement-group bundle sits on the
 *                          bundle's node: "ACTORS PG OK".
 *        actors_core keep  an actor's CPUs stay reserved while it lives
 *                          (RAYHPC_NUM_WORKERS=2): "ACTORS KEEP OK".
 *        actors_core ownerdeath  rank 1 creates an actor and dies: rank 0's
 *                          calls fail with RH_ERR_ACTOR_DEAD: "ACTORS
 *                          OWNERDEATH OK".
 *                          Its name is then free again.
 *        actors_core detachedorphan  (4 ranks on 4 nodes) rank 3 creates a
 *                          detached named actor (and a second one,
 *                          restartable) and dies: ranks 0 and 1 still
 *                          call it, rank 0 kills both (the second with a
 *                          restart asked: nobody can make it), their names
 *                          are free: "ACTORS DETACHEDORPHAN OK".
 *        actors_core ownerflight  as ownerdeath, with calls of ranks 0 and 1
 *                          in flight as the owner dies: each ends, answered
 *                          or RH_ERR_ACTOR_DEAD: "ACTORS OWNERFLIGHT OK".
 *                          Not in the suites: rank 1 SIGKILLed inside a UCX
 *                          shared-memory send can leave a receiver's FIFO
 *                          waiting for that message for ever (about 1 run
 *                          in 20 under TSan on a loaded host), and nothing
 *                          then reaches that rank: it reproduces the hang.
 *        actors_core ownerretry  with max_restarts and max_task_retries -1,
 *                          rank 0's calls in flight (rank 1 makes none):
 *                          each ends: "ACTORS OWNERFLIGHT OK".
 *        actors_core rankdeath  the actor's rank is SIGKILLed: its calls fail
 *                          with RH_ERR_ACTOR_DEAD: "ACTORS RANKDEATH OK".
 *        actors_core killnew  (RAYHPC_NUM_WORKERS=1) actors killed as they are
 *                          created, then rh_finalize while a creation task
 *                          waits for its constructor: "ACTORS KILLNEW OK".
 *        actors_core queue  (RAYHPC_NUM_WORKERS=1) actors of one CPU each
 *                          are made one at a time, in the order created:
 *                          "ACTORS QUEUE OK".
 *        actors_core elsewhere  (2 ranks, 2 nodes, RAYHPC_NUM_WORKERS=1) a
 *                          second actor of one CPU goes to the rank whose
 *                          CPU is free: "ACTORS ELSEWHERE OK".
 *        actors_core unplaced  every rank creates an actor that fits no rank,
 *                          releases it and calls rh_finalize: "ACTORS
 *                          UNPLACED OK" on each.
 * The destructor prints "DESTROYED <tag>" on the actor's rank.
 */
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "rank_util.h"

#define MAX_CALLERS 64

typedef struct counter {
    int64_t       count;
    int64_t       last[MAX_CALLERS];   /* each caller's last sequence */
    int64_t       disorder;            /* calls seen out of order */
    int64_t       tag;
    _Atomic int   entered;             /* wait4 */
    int64_t       order[16];           /* note: values in arrival order */
    int           norder;
} counter_t;

typedef struct add_arg {
    int32_t caller;
    int32_t pad;
    int64_t seq;
} add_arg_t;

static _Atomic int gate;         /* "block" waits for it */
static _Atomic int destroyed;
static _Atomic int ctor_gate;    /* the constructor of GATED_TAG waits */
static _Atomic long held;        /* "hold_until_gone" started */

#define GATED_TAG 4242

static rh_status_t counter_init(rh_task_ctx_t *ctx, void **state)
{
    counter_t *c = calloc(1, sizeof(*c));
    size_t len;
    const int64_t *tag = rh_task_arg(ctx, 0, &len);

    if (c == NULL || len != sizeof(int64_t)) {
        free(c);
        return rh_task_fail(ctx, "counter: bad argument");
    }
    while (*tag == GATED_TAG && !atomic_load(&ctor_gate)) {
        rank_nap();
    }
    if (*tag < 0) {
        free(c);
        return rh_task_fail(ctx, "counter refuses tag %lld",
                            (long long)*tag);
    }
    c->tag = *tag;
    *state = c;
    return RH_OK;
}

static void counter_fini(void *state)
{
    counter_t *c = state;

    printf("DESTROYED %lld\n", (long long)c->tag);
    fflush(stdout);
    atomic_fetch_add(&destroyed, 1);
    free(c);
}

static rh_status_t counter_add(void *state, rh_task_ctx_t *ctx)
{
    counter_t *c = state;
    size_t len;
    const add_arg_t *a = rh_task_arg(ctx, 0, &len);

    if (len != sizeof(*a) || a->caller < 0 || a->caller >= MAX_CALLERS) {
        return rh_task_fail(ctx, "add: bad argument");
    }
    if (a->seq != c->last[a->caller] + 1) {
        c->disorder++;
    }
    c->last[a->caller] = a->seq;
    c->count++;
    return rh_task_return(ctx, 0, &c->count, sizeof(c->count));
}

static rh_status_t counter_total(void *state, rh_task_ctx_t *ctx)
{
    counter_t *c = state;
    int64_t out[2] = { c->count, c->disorder };

    return rh_task_return(ctx, 0, out, sizeof(out));
}

/* Notes its argument's first 8 bytes, in the order calls run. */
static rh_status_t counter_note(void *state, rh_task_ctx_t *ctx)
{
    counter_t *c = state;
    size_t len;
    const int64_t *v = rh_task_arg(ctx, 0, &len);

    if (len < sizeof(*v) || c->norder == 16) {
        return rh_task_fail(ctx, "note: bad argument");
    }
    c->order[c->norder++] = *v;
    return rh_task_return(ctx, 0, c->order,
                          (size_t)c->norder * sizeof(int64_t));
}

/* Waits until 4 calls are inside at once (10 s at most): 1, else 0. */
static rh_status_t counter_wait4(void *state, rh_task_ctx_t *ctx)
{
    counter_t *c = state;
    double end = rank_now() + 10;
    int32_t ok;

    atomic_fetch_add(&c->entered, 1);
    while (atomic_load(&c->entered) < 4 && rank_now() < end) {
        rank_nap();
    }
    ok = atomic_load(&c->entered) >= 4;
    return rh_task_return(ctx, 0, &ok, sizeof(ok));
}

static rh_status_t counter_block(void *state, rh_task_ctx_t *ctx)
{
    double end = rank_now() + 30;

    (void)state;
    while (!atomic_load(&gate) && rank_now() < end) {
        rank_nap();
    }
    return rh_task_return(ctx, 0, "", 0);
}

static rh_status_t counter_where(void *state, rh_task_ctx_t *ctx)
{
    int32_t r[2] = { rh_rank(), rh_node_id() };

    (void)state;
    return rh_task_return(ctx, 0, r, sizeof(r));
}

static rh_status_t counter_broken(void *state, rh_task_ctx_t *ctx)
{
    (void)state;
    return rh_task_fail(ctx, "broken method");
}

static const rh_method_def_t counter_methods[] = {
    { "add",    counter_add,    1, 1 },
    { "total",  counter_total,  0, 1 },
    { "note",   counter_note,   1, 1 },
    { "wait4",  counter_wait4,  0, 1 },
    { "block",  counter_block,  0, 1 },
    { "where",  counter_where,  0, 1 },
    { "broken", counter_broken, 0, 1 },
};

/* A task that calls the actor whose handle is its argument. */
static rh_status_t call_through(rh_task_ctx_t *ctx)
{
    size_t len;
    const rh_actor_t *a = rh_task_arg(ctx, 0, &len);
    add_arg_t arg = { 63, 0, 1 };
    rh_arg_t x = rh_arg_bytes(&arg, sizeof(arg));
    rh_ref_t r;
    const void *p;
    rh_status_t st;

    if (len != sizeof(*a)) {
        return rh_task_fail(ctx, "call_through: bad handle");
    }
    if ((st = rh_actor_call(*a, "add", &x, 1, NULL, &r)) != RH_OK ||
        (st = rh_get(r, &p, &len, 20000)) != RH_OK) {
        return rh_task_fail(ctx, "call_through: %s", rh_last_error());
    }
    st = rh_task_return(ctx, 0, p, len);
    rh_release(r);
    rh_release(r);
    return st;
}

static rh_status_t value_after(rh_task_ctx_t *ctx)
{
    size_t len;
    const int64_t *v = rh_task_arg(ctx, 0, &len);

    return rh_task_return(ctx, 0, v, sizeof(*v));
}

/* Runs inside the wait of a creation task (one worker): holds it there
 * until the actor's destructor ran, and a little more for its instance to
 * be freed. */
static rh_status_t hold_until_gone(rh_task_ctx_t *ctx)
{
    int64_t target;
    double end = rank_now() + 30;

    memcpy(&target, rh_task_arg(ctx, 0, NULL), sizeof(target));
    atomic_fetch_add(&held, 1);
    while (atomic_load(&destroyed) < target && rank_now() < end) {
        rank_nap();
    }
    for (int i = 0; i < 20; i++) {
        rank_nap();
    }
    return rh_task_return(ctx, 0, &target, sizeof(target));
}

static int failures;

#define EXPECT(cond, ...) \
    do { \
        if (!(cond)) { \
            fprintf(stderr, "rank %d: line %d: ", rh_rank(), __LINE__); \
            fprintf(stderr, __VA_ARGS__); \
            fprintf(stderr, " (%s)\n", rh_last_error()); \
            failures++; \
        } \
    } while (0)

static rh_actor_t make_counter(int64_t tag, const rh_actor_params_t *p)
{
    rh_actor_t a;
    rh_arg_t arg = rh_arg_bytes(&tag, sizeof(tag));

    CHECK(rh_actor_create("Counter", &arg, 1, p, &a));
    return a;
}

static int64_t get_i64(rh_ref_t r, int idx, rh_status_t *st)
{
    const void *p;
    size_t len;
    int64_t v = -1;

    *st = rh_get(r, &p, &len, 30000);
    if (*st == RH_OK) {
        if (len >= (size_t)(idx + 1) * sizeof(v)) {
            memcpy(&v, (const int64_t *)p + idx, sizeof(v));
        }
        rh_release(r);
    }
    rh_release(r);
    return v;
}

/* n ordered adds from caller id, pipelined; 1 when the actor saw them all
 * in order. */
static int ordered_adds(rh_actor_t a, int caller, int64_t n)
{
    rh_ref_t r;
    rh_status_t st;
    int64_t last = 0;

    for (int64_t i = 1; i <= n; i++) {
        add_arg_t arg = { caller, 0, i };
        rh_arg_t x = rh_arg_bytes(&arg, sizeof(arg));

        CHECK(rh_actor_call(a, "add", &x, 1, NULL, &r));
        if (i == n) {
            last = get_i64(r, 0, &st);
            EXPECT(st == RH_OK, "last add");
        } else {
            rh_release(r);
        }
    }
    return last >= n;
}

static void check_total(rh_actor_t a, int64_t count)
{
    rh_ref_t r;
    rh_status_t st;
    const void *p;
    size_t len;
    int64_t v[2] = { -1, -1 };

    CHECK(rh_actor_call(a, "total", NULL, 0, NULL, &r));
    st = rh_get(r, &p, &len, 30000);
    EXPECT(st == RH_OK && len == sizeof(v), "total");
    if (st == RH_OK) {
        memcpy(v, p, sizeof(v));
        rh_release(r);
    }
    rh_release(r);
    EXPECT(v[0] == count && v[1] == 0, "total: %lld calls (%lld expected), "
           "%lld out of order", (long long)v[0], (long long)count,
           (long long)v[1]);
}

static void errors(rh_actor_t a)
{
    rh_ref_t r;
    int64_t one = 1;
    rh_arg_t x = rh_arg_bytes(&one, sizeof(one));
    rh_status_t st;

    st = rh_actor_call(a, "nosuch", NULL, 0, NULL, &r);
    EXPECT(st == RH_ERR_UNKNOWN_FUNCTION, "unknown method: %d", st);
    st = rh_actor_call(a, "total", &x, 1, NULL, &r);
    EXPECT(st == RH_ERR_BAD_ARG_COUNT, "wrong arg count: %d", st);
    st = rh_actor_create("NoClass", NULL, 0, NULL, &a);
    EXPECT(st == RH_ERR_UNKNOWN_FUNCTION, "unknown class: %d", st);
    CHECK(rh_actor_call(a, "broken", NULL, 0, NULL, &r));
    (void)get_i64(r, 0, &st);
    EXPECT(st == RH_ERR_TASK_FAILED && strstr(rh_last_error(), "broken"),
           "a failing method: %d", st);
}

/* Tasks that take the return of a call that failed as dead fail the same
 * way, here and on the last node. */
static void dependents_fail_as_dead(rh_ref_t r)
{
    rh_status_t st;

    for (int node = 0; node < rh_num_nodes(); node += rh_num_nodes() - 1) {
        rh_task_params_t tp = rank_on_node(node, 0);
        rh_arg_t x = rh_arg_ref(r);
        rh_ref_t d;

        CHECK(rh_remote("value_after", &x, 1, &tp, &d));
        (void)get_i64(d, 0, &st);
        EXPECT(st == RH_ERR_ACTOR_DEAD && strstr(rh_last_error(), "killed"),
               "a task on node %d taking a dead actor's return: %d", node,
               st);
        if (rh_num_nodes() == 1) {
            break;
        }
    }
}

static void ctor_failure(const rh_actor_params_t *p)
{
    rh_actor_t a = make_counter(-5, p);
    rh_ref_t r;
    rh_status_t st;

    /* the call fails at once when the failure is known already, else its
     * return does */
    st = rh_actor_call(a, "total", NULL, 0, NULL, &r);
    if (st == RH_OK) {
        (void)get_i64(r, 0, &st);
    }
    EXPECT(st == RH_ERR_ACTOR_DEAD && strstr(rh_last_error(), "refuses"),
           "call on a failed constructor: %d", st);
    st = rh_actor_ready(a, 30000, NULL);
    EXPECT(st == RH_ERR_ACTOR_DEAD, "ready of a failed constructor: %d", st);
    st = rh_actor_call(a, "total", NULL, 0, NULL, &r);
    EXPECT(st == RH_ERR_ACTOR_DEAD, "later call on a failed constructor: %d",
           st);
}

/* 1,000 calls queued behind a blocked one; the kill fails them all. */
static void kill_pending(const rh_actor_params_t *p)
{
    rh_actor_t a = make_counter(7, p);
    rh_ref_t blocked, r[1000];
    rh_status_t st;
    int dead = 0;

    atomic_store(&gate, 0);
    CHECK(rh_actor_call(a, "block", NULL, 0, NULL, &blocked));
    for (int i = 0; i < 1000; i++) {
        add_arg_t arg = { 0, 0, i + 1 };
        rh_arg_t x = rh_arg_bytes(&arg, sizeof(arg));

        CHECK(rh_actor_call(a, "add", &x, 1, NULL, &r[i]));
    }
    CHECK(rh_actor_kill(a, 1));
    dependents_fail_as_dead(r[0]);
    for (int i = 0; i < 1000; i++) {
        (void)get_i64(r[i], 0, &st);
        dead += st == RH_ERR_ACTOR_DEAD;
    }
    atomic_store(&gate, 1);
    (void)get_i64(blocked, 0, &st);
    EXPECT(dead == 1000, "kill: %d of 1000 calls failed as dead", dead);
    st = rh_actor_call(a, "total", NULL, 0, NULL, &r[0]);
    if (st == RH_OK) {
        (void)get_i64(r[0], 0, &st);
    }
    EXPECT(st == RH_ERR_ACTOR_DEAD, "call after kill: %d", st);
}

static void concurrency(const rh_actor_params_t *base)
{
    rh_actor_params_t p = *base;
    rh_actor_t a;
    rh_ref_t r[4];
    int ok = 0;

    p.field_mask |= RH_ACTOR_PARAM_FIELD_MAX_CONCURRENCY;
    p.max_concurrency = 4;
    a = make_counter(4, &p);
    for (int i = 0; i < 4; i++) {
        CHECK(rh_actor_call(a, "wait4", NULL, 0, NULL, &r[i]));
    }
    for (int i = 0; i < 4; i++) {
        const void *d;
        size_t len;

        if (rh_get(r[i], &d, &len, 30000) == RH_OK) {
            ok += len == 4 && *(const int32_t *)d == 1;
            rh_release(r[i]);
        }
        rh_release(r[i]);
    }
    EXPECT(ok == 4, "max_concurrency 4: %d of 4 calls saw the others", ok);
    CHECK(rh_actor_release(a));
}

static int run_local(void)
{
    rh_actor_params_t p = { 0 };
    rh_actor_t a = make_counter(1, &p);
    int64_t t0 = 0;

    EXPECT(ordered_adds(a, 0, 100000), "100 K ordered adds");
    check_total(a, 100000);
    errors(a);
    /* a handle of this rank that names no actor: its calls fail, none
     * waits for ever */
    {
        rh_actor_t bogus = a;
        rh_ref_t r;
        rh_status_t st;

        bogus.lo = 999999;
        st = rh_actor_call(bogus, "total", NULL, 0, NULL, &r);
        if (st == RH_OK) {
            (void)get_i64(r, 0, &st);
        }
        EXPECT(st == RH_ERR_ACTOR_DEAD, "a call on no actor: %d", st);
    }
    ctor_failure(&p);
    kill_pending(&p);
    concurrency(&p);
    (void)t0;
    CHECK(rh_actor_release(a));
    /* a detached actor nobody holds lives on; rh_finalize ends it */
    {
        rh_actor_params_t dp = { 0 };
        rh_actor_t d;

        dp.field_mask = RH_ACTOR_PARAM_FIELD_DETACHED;
        dp.detached = 1;
        d = make_counter(99, &dp);
        CHECK(rh_actor_ready(d, 30000, NULL));
        CHECK(rh_actor_release(d));
        check_total(d, 0);
    }
    {
        double end = rank_now() + 20;

        while (atomic_load(&destroyed) < 3 && rank_now() < end) {
            rank_nap();
        }
    }
    EXPECT(atomic_load(&destroyed) == 3, "destructors: %d of 3 ran",
           atomic_load(&destroyed));
    if (failures == 0) {
        printf("ACTORS LOCAL OK\n");
    }
    return failures;
}

static rh_actor_params_t on_node(int node)
{
    rh_actor_params_t p = { 0 };

    p.field_mask = RH_ACTOR_PARAM_FIELD_STRATEGY;
    p.strategy = RH_STRATEGY_NODE_AFFINITY;
    p.node = node;
    return p;
}

/* Two calls whose ref arguments become ready in reverse order run in the
 * order they were made: the first call's argument waits for an object
 * rank 0 seals only after the second call's argument is ready. */
static void reverse_refs(rh_actor_t a)
{
    int64_t one = 1, two = 2, order[2] = { 0, 0 };
    rh_arg_t x2 = rh_arg_bytes(&two, sizeof(two));
    rh_task_params_t tp = rank_on_node(1, 0);
    rh_ref_t gate_ref, slow, fast, r1, r2;
    rh_arg_t g, s, f;
    rh_status_t st;
    const void *d;
    size_t len;
    void *mem;

    CHECK(rh_put_create(sizeof(int64_t), &gate_ref, &mem));
    g = rh_arg_ref(gate_ref);
    CHECK(rh_remote("value_after", &g, 1, &tp, &slow));
    CHECK(rh_remote("value_after", &x2, 1, &tp, &fast));
    s = rh_arg_ref(slow);
    f = rh_arg_ref(fast);
    CHECK(rh_actor_call(a, "note", &s, 1, NULL, &r1));
    CHECK(rh_actor_call(a, "note", &f, 1, NULL, &r2));
    st = rh_get(fast, &d, &len, 30000);
    EXPECT(st == RH_OK, "fast value");
    if (st == RH_OK) {
        rh_release(fast);
    }
    memcpy(mem, &one, sizeof(one));
    CHECK(rh_put_seal(gate_ref));
    st = rh_get(r2, &d, &len, 30000);
    EXPECT(st == RH_OK && len == 2 * sizeof(int64_t), "note 2: %d", st);
    if (st == RH_OK) {
        memcpy(order, d, sizeof(order));
        rh_release(r2);
    }
    EXPECT(order[0] == 1 && order[1] == 2, "calls ran as %lld, %lld",
           (long long)order[0], (long long)order[1]);
    rh_release(r2);
    (void)get_i64(r1, 0, &st);
    rh_release(gate_ref);
    rh_release(slow);
    rh_release(fast);
}

static int where_is(rh_actor_t a, int *node)
{
    rh_ref_t r;
    rh_status_t st;
    const void *d;
    size_t len;
    int32_t w[2] = { -1, -1 };

    CHECK(rh_actor_call(a, "where", NULL, 0, NULL, &r));
    st = rh_get(r, &d, &len, 30000);
    if (st == RH_OK && len == sizeof(w)) {
        memcpy(w, d, sizeof(w));
        rh_release(r);
    }
    rh_release(r);
    *node = w[1];
    return w[0];
}

static int run_remote(void)
{
    int last = rh_num_nodes() - 1, node = -1, rank = -1;
    rh_actor_params_t p = on_node(last);
    rh_actor_t a = make_counter(10, &p), b, named;
    rh_actor_params_t np = on_node(last);
    rh_arg_t h;
    rh_ref_t r;
    rh_status_t st;

    CHECK(rh_actor_ready(a, 30000, &rank));
    EXPECT(rh_node_id() != last && where_is(a, &node) == rank &&
           node == last, "actor on node %d (rank %d)", node, rank);
    EXPECT(ordered_adds(a, 0, 20000), "20 K ordered remote adds");
    check_total(a, 20000);
    errors(a);
    /* a handle passed into a task on node 0 that calls the actor */
    {
        rh_task_params_t tp = rank_on_node(0, 0);

        h = rh_arg_bytes(&a, sizeof(a));
        CHECK(rh_remote("call_through", &h, 1, &tp, &r));
        EXPECT(get_i64(r, 0, &st) == 20001 && st == RH_OK,
               "call through a task: %d", st);
    }
    /* refs ready in reverse order */
    {
        rh_actor_t o = make_counter(11, &p);

        reverse_refs(o);
        CHECK(rh_actor_release(o));
    }
    /* named */
    np.field_mask |= RH_ACTOR_PARAM_FIELD_NAME;
    np.name = "the-counter";
    b = make_counter(12, &np);
    st = rh_actor_create("Counter", &h, 0, &np, &named);
    EXPECT(st == RH_ERR_BAD_ARG_COUNT, "bad ctor args: %d", st);
    {
        int64_t tag = 13;
        rh_arg_t x = rh_arg_bytes(&tag, sizeof(tag));

        st = rh_actor_create("Counter", &x, 1, &np, &named);
        EXPECT(st == RH_ERR_NAME_TAKEN, "name taken twice: %d", st);
    }
    CHECK(rh_actor_get_named("the-counter", &named));
    EXPECT(named.hi == b.hi && named.lo == b.lo, "named handle");
    st = rh_actor_get_named("no-such-counter", &named);
    EXPECT(st == RH_ERR_NOT_FOUND, "unknown name: %d", st);
    ctor_failure(&p);
    /* kill with 1,000 calls queued behind one whose argument is not
     * there yet */
    {
        rh_actor_t k = make_counter(14, &p);
        rh_ref_t rs[1000], first, gate_ref;
        rh_arg_t g;
        void *mem;
        int dead = 0;

        CHECK(rh_actor_ready(k, 30000, NULL));
        CHECK(rh_put_create(sizeof(int64_t), &gate_ref, &mem));
        g = rh_arg_ref(gate_ref);
        CHECK(rh_actor_call(k, "note", &g, 1, NULL, &first));
        for (int i = 0; i < 1000; i++) {
            add_arg_t arg = { 0, 0, i + 1 };
            rh_arg_t x = rh_arg_bytes(&arg, sizeof(arg));

            CHECK(rh_actor_call(k, "add", &x, 1, NULL, &rs[i]));
        }
        CHECK(rh_actor_kill(k, 1));
        st = rh_actor_call(k, "total", NULL, 0, NULL, &rs[0]);
        EXPECT(st == RH_ERR_ACTOR_DEAD, "call after kill: %d", st);
        memset(mem, 0, sizeof(int64_t));
        CHECK(rh_put_seal(gate_ref));
        dependents_fail_as_dead(rs[0]);
        for (int i = 0; i < 1000; i++) {
            (void)get_i64(rs[i], 0, &st);
            dead += st == RH_ERR_ACTOR_DEAD;
        }
        (void)get_i64(first, 0, &st);
        EXPECT(dead == 1000 && st == RH_ERR_ACTOR_DEAD, "remote kill: %d of "
               "1000 calls failed as dead, the first: %d", dead, st);
        rh_release(gate_ref);
    }
    concurrency(&p);
    CHECK(rh_actor_release(a));
    CHECK(rh_actor_release(b));
    CHECK(rh_actor_release(named));
    /* the last hold dropped, the name goes with the actor */
    {
        double end = rank_now() + 30;

        while ((st = rh_actor_get_named("the-counter", &named)) == RH_OK &&
               rank_now() < end) {
            CHECK(rh_actor_release(named));
            rank_nap();
        }
        EXPECT(st == RH_ERR_NOT_FOUND, "the name of an ended actor: %d", st);
    }
    if (failures == 0) {
        printf("ACTORS REMOTE OK\n");
    }
    return failures;
}

/* Every rank calls one actor on node 1 (created by rank 0, found by
 * name) with its own sequence. */
static int run_callers(void)
{
    rh_actor_params_t p = on_node(1);
    rh_actor_t a;
    int n = 2000;

    p.field_mask |= RH_ACTOR_PARAM_FIELD_NAME;
    p.name = "shared";
    if (rh_rank() == 0) {
        a = make_counter(20, &p);
        CHECK(rh_actor_ready(a, 30000, NULL));
    }
    /* the others look it up until it is there */
    if (rh_rank() != 0) {
        double end = rank_now() + 30;
        rh_status_t st;

        while ((st = rh_actor_get_named("shared", &a)) == RH_ERR_NOT_FOUND &&
               rank_now() < end) {
            rank_nap();
        }
        CHECK(st);
    }
    EXPECT(ordered_adds(a, rh_rank(), n), "rank %d's adds", rh_rank());
    printf("CALLER %d DONE\n", rh_rank());
    fflush(stdout);
    if (rh_rank() == 0) {
        /* wait for every caller's last add to have run */
        double end = rank_now() + 60;
        int64_t v[2] = { 0, 0 };

        while (v[0] < (int64_t)n * rh_size() && rank_now() < end) {
            rh_ref_t r;
            const void *d;
            size_t len;

            CHECK(rh_actor_call(a, "total", NULL, 0, NULL, &r));
            if (rh_get(r, &d, &len, 30000) == RH_OK) {
                memcpy(v, d, sizeof(v));
                rh_release(r);
            }
            rh_release(r);
            rank_nap();
        }
        EXPECT(v[0] == (int64_t)n * rh_size() && v[1] == 0,
               "%lld calls, %lld out of order", (long long)v[0],
               (long long)v[1]);
        if (failures == 0) {
            printf("ACTORS CALLERS OK: %d callers\n", rh_size());
        }
    }
    CHECK(rh_actor_release(a));
    return failures;
}

static int run_pg(void)
{
    rh_bundle_t bundles[2] = { { 1, NULL }, { 1, NULL } };
    rh_pg_t pg;
    rh_actor_params_t p = { 0 };
    rh_actor_t a;
    int bnode = -1, node = -1;

    CHECK(rh_pg_create(bundles, 2, RH_PG_STRICT_SPREAD, &pg));
    CHECK(rh_pg_wait(pg, 30000));
    CHECK(rh_pg_bundle_node(pg, 1, &bnode));
    p.field_mask = RH_ACTOR_PARAM_FIELD_STRATEGY |
                   RH_ACTOR_PARAM_FIELD_NUM_CPUS;
    p.strategy = RH_STRATEGY_PLACEMENT_GROUP;
    p.pg = pg;
    p.bundle = 1;
    p.num_cpus = 1;
    a = make_counter(30, &p);
    (void)where_is(a, &node);
    EXPECT(node == bnode, "actor on node %d, bundle on node %d", node, bnode);
    CHECK(rh_actor_release(a));
    if (failures == 0) {
        printf("ACTORS PG OK\n");
    }
    return failures;
}

static rh_status_t die_soon(void *state, rh_task_ctx_t *ctx);

/* On a rank of 2 CPUs (RAYHPC_NUM_WORKERS=2), an actor that asked for 2
 * keeps them while it lives: a task that needs one waits until the actor
 * is dropped, then runs. */
static int run_keep(void)
{
    rh_actor_params_t p = { 0 };
    rh_task_params_t tp = { 0 };
    int64_t one = 1;
    rh_arg_t x = rh_arg_bytes(&one, sizeof(one));
    rh_actor_t a;
    rh_ref_t r;
    rh_status_t st;
    const void *d;
    size_t len;

    p.field_mask = RH_ACTOR_PARAM_FIELD_NUM_CPUS;
    p.num_cpus = 2;
    a = make_counter(60, &p);
    CHECK(rh_actor_ready(a, 30000, NULL));
    tp.field_mask = RH_TASK_PARAM_FIELD_NUM_CPUS;
    tp.num_cpus = 1;
    CHECK(rh_remote("value_after", &x, 1, &tp, &r));
    st = rh_get(r, &d, &len, 1000);
    EXPECT(st == RH_ERR_TIMEOUT, "a task ran while the actor held every "
           "CPU: %d", st);
    CHECK(rh_actor_release(a));
    st = rh_get(r, &d, &len, 30000);
    EXPECT(st == RH_OK, "the task after the actor ended: %d", st);
    if (st == RH_OK) {
        rh_release(r);
    }
    rh_release(r);
    if (failures == 0) {
        printf("ACTORS KEEP OK\n");
    }
    return failures;
}

/* On a rank of 2 CPUs, two actors that asked for one CPU each (no other
 * resource) keep them while they live: a task that needs one waits until
 * one of them is dropped, then runs. remote: the same with one actor on
 * node 1, whose one CPU (RAYHPC_NUM_WORKERS=1) it keeps, and the task
 * bound to that node. */
static int run_keep1(int remote)
{
    rh_actor_params_t p = { 0 };
    rh_task_params_t tp = { 0 };
    int64_t one = 1;
    rh_arg_t x = rh_arg_bytes(&one, sizeof(one));
    rh_actor_t a, b;
    rh_ref_t r;
    rh_status_t st;
    const void *d;
    size_t len;

    if (remote) {
        /* One CPU on node 1, taken by the actor created from rank 0: its
         * creation arrives there as a forwarded task. */
        p = on_node(1);
        tp.field_mask = RH_TASK_PARAM_FIELD_STRATEGY;
        tp.strategy = RH_STRATEGY_NODE_AFFINITY;
        tp.node = 1;
    }
    p.field_mask |= RH_ACTOR_PARAM_FIELD_NUM_CPUS;
    p.num_cpus = 1;
    a = make_counter(60, &p);
    b = remote ? a : make_counter(70, &p);
    CHECK(rh_actor_ready(a, 30000, NULL));
    CHECK(rh_actor_ready(b, 30000, NULL));
    tp.field_mask |= RH_TASK_PARAM_FIELD_NUM_CPUS;
    tp.num_cpus = 1;
    CHECK(rh_remote("value_after", &x, 1, &tp, &r));
    st = rh_get(r, &d, &len, 1000);
    EXPECT(st == RH_ERR_TIMEOUT, "a task ran while actors of one CPU each "
           "held every CPU: %d", st);
    CHECK(rh_actor_release(a));
    st = rh_get(r, &d, &len, 30000);
    EXPECT(st == RH_OK, "the task after an actor ended: %d", st);
    if (st == RH_OK) {
        rh_release(r);
    }
    rh_release(r);
    if (!remote) {
        CHECK(rh_actor_release(b));
    }
    if (failures == 0) {
        printf("ACTORS KEEP1%s OK\n", remote ? " REMOTE" : "");
    }
    return failures;
}

/* One add of caller id with sequence number seq: its status. */
static rh_status_t add_one(rh_actor_t a, int caller, int64_t seq)
{
    add_arg_t arg = { caller, 0, seq };
    rh_arg_t x = rh_arg_bytes(&arg, sizeof(arg));
    rh_status_t st;
    rh_ref_t r;

    st = rh_actor_call(a, "add", &x, 1, NULL, &r);
    if (st == RH_OK) {
        (void)get_i64(r, 0, &st);
    }
    return st;
}

/* Waits until the named actor exists (a flag between ranks): 1, or 0 at
 * end. */
static int await_name(const char *name, double end)
{
    rh_actor_t f;

    while (rh_actor_get_named(name, &f) != RH_OK) {
        if (rank_now() >= end) {
            return 0;
        }
        rank_nap();
    }
    (void)rh_actor_release(f);
    return 1;
}

/* Waits until no actor holds the name any more: its last status. */
static rh_status_t await_name_free(const char *name, double end)
{
    rh_actor_t f;
    rh_status_t st;

    while ((st = rh_actor_get_named(name, &f)) == RH_OK &&
           rank_now() < end) {
        (void)rh_actor_release(f);
        rank_nap();
    }
    return st;
}

static rh_actor_t make_flag(const char *name, int64_t tag)
{
    rh_actor_params_t fp = { 0 };

    fp.field_mask = RH_ACTOR_PARAM_FIELD_NAME;
    fp.name = name;
    return make_counter(tag, &fp);
}

/* Rank 1 creates a named actor on the last node and dies once rank 0 has
 * found it: the actor shares its owner's fate (its destructor runs on its
 * rank) and rank 0's calls fail with RH_ERR_ACTOR_DEAD. */
static int run_ownerdeath(void)
{
    rh_actor_params_t p = on_node(rh_num_nodes() - 1);
    rh_actor_t a, flag;
    rh_status_t st;
    rh_ref_t r;
    double end = rank_now() + 60;

    p.field_mask |= RH_ACTOR_PARAM_FIELD_NAME;
    p.name = "orphan";
    if (rh_rank() == 1) {
        a = make_counter(50, &p);
        CHECK(rh_actor_ready(a, 30000, NULL));
        while (rh_actor_get_named("go-die", &flag) != RH_OK &&
               rank_now() < end) {
            rank_nap();
        }
        raise(SIGKILL);
    }
    if (rh_rank() != 0) {
        return 0;
    }
    while ((st = rh_actor_get_named("orphan", &a)) != RH_OK &&
           rank_now() < end) {
        rank_nap();
    }
    CHECK(st);
    check_total(a, 0);
    {
        rh_actor_params_t fp = { 0 };

        fp.field_mask = RH_ACTOR_PARAM_FIELD_NAME;
        fp.name = "go-die";
        flag = make_counter(51, &fp);
    }
    /* calls until the owner's death has ended the actor */
    do {
        st = rh_actor_call(a, "total", NULL, 0, NULL, &r);
        if (st == RH_OK) {
            (void)get_i64(r, 0, &st);
        }
        if (st == RH_OK) {
            rank_nap();
        }
    } while (st == RH_OK && rank_now() < end);
    EXPECT(st == RH_ERR_ACTOR_DEAD, "calls after the owner died: %d", st);
    EXPECT(strstr(rh_last_error(), "owner") != NULL, "the failure of a "
           "call after the owner died does not name it: %s",
           rh_last_error());
    /* The owner's table, which frees the name of an actor that ends, died
     * with the owner: the actor's rank freed it. */
    st = await_name_free("orphan", end);
    EXPECT(st == RH_ERR_NOT_FOUND, "the name of an actor that ended with "
           "its owner: %s", rh_status_string(st));
    CHECK(rh_actor_release(make_flag("orphan", 52)));
    CHECK(rh_actor_release(flag));
    if (failures == 0) {
        printf("ACTORS OWNERDEATH OK\n");
    }
    return failures;
}

/* Rank 3 creates a detached, named actor on node 2 and dies once rank 0
 * has called it: the actor outlives its owner. Rank 0 (whose rank knew
 * where it was) and rank 1 (which finds it by name only after the death:
 * nobody is left to ask but the GCS) both reach it; then rank 0 kills it,
 * with nobody left to tell but the actor's rank: later calls fail as
 * dead, and its name is free again. */
static int run_detachedorphan(void)
{
    rh_actor_params_t p = on_node(2);
    rh_actor_t a, b, flag, gone, done;
    rh_status_t st;
    double end = rank_now() + 60;

    p.field_mask |= RH_ACTOR_PARAM_FIELD_NAME | RH_ACTOR_PARAM_FIELD_DETACHED;
    p.name = "survivor";
    p.detached = 1;
    if (rh_rank() == 3) {
        a = make_counter(60, &p);
        CHECK(rh_actor_ready(a, 30000, NULL));
        /* Restartable: only its owner could restart it. */
        p.name = "survivor2";
        p.field_mask |= RH_ACTOR_PARAM_FIELD_MAX_RESTARTS;
        p.max_restarts = 1;
        b = make_counter(64, &p);
        CHECK(rh_actor_ready(b, 30000, NULL));
        (void)await_name("go-die", end);
        raise(SIGKILL);
    }
    if (rh_rank() == 1) {
        if (!await_name("owner-gone", end)) {
            EXPECT(0, "rank 1: rank 0 never saw the owner die");
            return failures;
        }
        CHECK(rh_actor_get_named("survivor", &a));
        EXPECT((st = add_one(a, 1, 1)) == RH_OK, "rank 1's call to the "
               "detached actor whose owner died: %s", rh_status_string(st));
        done = make_flag("rank1-done", 63);
        (void)await_name_free("survivor", end);
        CHECK(rh_actor_release(done));
        return failures;
    }
    if (rh_rank() != 0) {
        return 0;
    }
    if (!await_name("survivor", end)) {
        EXPECT(0, "rank 0: no actor named survivor");
        return failures;
    }
    CHECK(rh_actor_get_named("survivor", &a));
    EXPECT((st = add_one(a, 0, 1)) == RH_OK, "first call: %s",
           rh_status_string(st));
    flag = make_flag("go-die", 61);
    while (rh_rank_alive(3) && rank_now() < end) {
        rank_nap();
    }
    EXPECT(!rh_rank_alive(3), "rank 3 never died");
    EXPECT((st = add_one(a, 0, 2)) == RH_OK, "rank 0's call after the "
           "owner died: %s", rh_status_string(st));
    gone = make_flag("owner-gone", 62);
    EXPECT(await_name("rank1-done", end), "rank 1 never called");
    check_total(a, 3);
    CHECK(rh_actor_kill(a, 1));
    st = add_one(a, 0, 3);
    EXPECT(st == RH_ERR_ACTOR_DEAD, "a call after the kill: %s",
           rh_status_string(st));
    st = await_name_free("survivor", end);
    EXPECT(st == RH_ERR_NOT_FOUND, "the name of the killed actor: %s",
           rh_status_string(st));
    /* One this rank never called: killed at once, found by name only. It
     * allows restarts, and the kill asks for one, but its owner is dead:
     * the kill ends it. */
    CHECK(rh_actor_get_named("survivor2", &b));
    CHECK(rh_actor_kill(b, 0));
    st = add_one(b, 0, 1);
    EXPECT(st == RH_ERR_ACTOR_DEAD, "a call after a restarting kill of an "
           "actor whose owner died: %s", rh_status_string(st));
    st = await_name_free("survivor2", end);
    EXPECT(st == RH_ERR_NOT_FOUND, "the name of an actor killed before any "
           "call: %s", rh_status_string(st));
    CHECK(rh_actor_release(flag));
    CHECK(rh_actor_release(gone));
    if (failures == 0) {
        printf("ACTORS DETACHEDORPHAN OK\n");
    }
    return failures;
}

/* As ownerdeath, with calls in flight when the owner dies: rank 1 keeps
 * its own calls going to the actor until it dies, and rank 0 keeps a ring
 * of WINDOW calls out and tells rank 1 to die meanwhile. Each call ends,
 * answered in order or failed with RH_ERR_ACTOR_DEAD, within the get's
 * timeout (a call the dying instance refused, or that found it gone, is
 * answered all the same), none is answered after one failed, and a call
 * made afterwards fails too. */
#define WINDOW 64

static int run_ownerflight(int restartable)
{
    rh_actor_params_t p = on_node(rh_num_nodes() - 1);
    rh_actor_t a, flag = { 0, 0 };
    rh_status_t st = RH_OK;
    rh_ref_t win[WINDOW], r;
    int64_t issued = 0, answered = 0, last = 0, dead = 0;
    int stop = 0;
    double end = rank_now() + 60;

    p.field_mask |= RH_ACTOR_PARAM_FIELD_NAME;
    p.name = "orphan-flight";
    if (restartable) {
        /* Restarts and resends do not outlive the owner: its death is
         * the actor's end all the same. */
        p.field_mask |= RH_ACTOR_PARAM_FIELD_MAX_RESTARTS |
                        RH_ACTOR_PARAM_FIELD_MAX_TASK_RETRIES;
        p.max_restarts = -1;
        p.max_task_retries = -1;
    }
    if (rh_rank() == 1) {
        int64_t seq = 0;

        a = make_counter(52, &p);
        CHECK(rh_actor_ready(a, 30000, NULL));
        /* its own calls, never waited for, in flight as it dies (not
         * with restarts: see the usage above) */
        while (rh_actor_get_named("go-die-flight", &flag) != RH_OK &&
               rank_now() < end) {
            for (int i = 0; i < 8 * !restartable; i++) {
                add_arg_t arg = { 1, 0, ++seq };
                rh_arg_t x = rh_arg_bytes(&arg, sizeof(arg));

                if (rh_actor_call(a, "add", &x, 1, NULL, &r) == RH_OK) {
                    rh_release(r);
                }
            }
            rank_nap();
        }
        raise(SIGKILL);
    }
    if (rh_rank() != 0) {
        return 0;
    }
    while ((st = rh_actor_get_named("orphan-flight", &a)) != RH_OK &&
           rank_now() < end) {
        rank_nap();
    }
    CHECK(st);
    /* Call i goes to slot i % WINDOW once call i - WINDOW there was got;
     * no call is made once one failed, and the ring then drains. */
    for (int64_t i = 0; ; i++) {
        if (i >= WINDOW) {
            int64_t v;

            if (i - WINDOW >= issued) {
                break;
            }
            v = get_i64(win[(i - WINDOW) % WINDOW], 0, &st);
            if (st == RH_OK) {
                EXPECT(v > last && dead == 0, "call %lld answered %lld "
                       "after %lld, with %lld failed before it",
                       (long long)(i - WINDOW), (long long)v,
                       (long long)last, (long long)dead);
                last = v;
                answered++;
            } else {
                EXPECT(st == RH_ERR_ACTOR_DEAD, "call %lld after the "
                       "owner died: %d", (long long)(i - WINDOW), st);
                dead++;
                stop = 1;
            }
        }
        if (stop || rank_now() >= end) {
            stop = 1;
            continue;
        }
        if (i == 4 * WINDOW) {
            /* the owner dies with our calls in flight */
            rh_actor_params_t fp = { 0 };

            fp.field_mask = RH_ACTOR_PARAM_FIELD_NAME;
            fp.name = "go-die-flight";
            flag = make_counter(53, &fp);
        }
        {
            add_arg_t arg = { 0, 0, i + 1 };
            rh_arg_t x = rh_arg_bytes(&arg, sizeof(arg));

            st = rh_actor_call(a, "add", &x, 1, NULL, &win[i % WINDOW]);
        }
        if (st != RH_OK) {
            EXPECT(st == RH_ERR_ACTOR_DEAD, "a call after the owner died: "
                   "%d", st);
            dead++;
            stop = 1;
        } else {
            issued = i + 1;
        }
    }
    EXPECT(flag.lo != 0, "the calls failed before the owner was told to "
           "die");
    EXPECT(dead > 0, "no call failed within 60 s (%lld answered)",
           (long long)answered);
    st = rh_actor_call(a, "total", NULL, 0, NULL, &r);
    if (st == RH_OK) {
        (void)get_i64(r, 0, &st);
    }
    EXPECT(st == RH_ERR_ACTOR_DEAD, "a call once the calls failed: %d", st);
    printf("ownerflight: %lld answered, then %lld failed as dead\n",
           (long long)answered, (long long)dead);
    if (flag.lo != 0) {
        CHECK(rh_actor_release(flag));
    }
    if (failures == 0) {
        printf("ACTORS OWNERFLIGHT OK\n");
    }
    return failures;
}

/* The actor's first call kills its rank: the calls behind it, pipelined,
 * all fail with RH_ERR_ACTOR_DEAD, at the call or at the get. */
/* Actors killed right after creation (the kill waits for the creation to
 * answer); then one whose creation task is still waiting when rh_finalize
 * ends every actor: a task run inside that wait holds it there until the
 * actor's destructor ran, so the creation task resumes after the instance
 * was ended and must not touch it. */
static int run_killnew(void)
{
    int64_t target, tag = GATED_TAG;
    rh_arg_t x = rh_arg_bytes(&target, sizeof(target));
    rh_arg_t arg = rh_arg_bytes(&tag, sizeof(tag));
    rh_actor_t a;
    rh_ref_t r;

    for (int i = 0; i < 3000; i++) {
        int64_t t = i;
        rh_arg_t ta = rh_arg_bytes(&t, sizeof(t));

        CHECK(rh_actor_create("Counter", &ta, 1, NULL, &a));
        CHECK(rh_actor_kill(a, 1));
        CHECK(rh_actor_release(a));
    }
    target = 3001;
    CHECK(rh_actor_create("Counter", &arg, 1, NULL, &a));
    CHECK(rh_remote("hold_until_gone", &x, 1, NULL, &r));
    /* with one worker it runs inside the creation task's wait */
    EXPECT(rank_wait_count(&held, 1, 30) == 0, "the holding task never "
           "started");
    atomic_store(&ctor_gate, 1);
    CHECK(rh_actor_release(a));
    rh_release(r);
    if (failures == 0) {
        printf("ACTORS KILLNEW OK\n");
    }
    return failures;
}

/* queue: four actors of one CPU each on a rank of one worker. While the
 * first is being constructed (its constructor waits for the gate), and
 * the driver waits, no other is made: the creation lends the CPU the actor
 * keeps to nobody (another creation kept it too, and three actors lived on
 * one CPU). Each of the others is made once the one before it is killed,
 * in the order they were created (the newest went first). */
static int run_queue(void)
{
    rh_actor_params_t p = { 0 };
    rh_actor_t a[4];
    rh_status_t st;

    p.field_mask = RH_ACTOR_PARAM_FIELD_NUM_CPUS;
    p.num_cpus = 1;
    a[0] = make_counter(GATED_TAG, &p);
    for (int i = 1; i < 4; i++) {
        a[i] = make_counter(100 + i, &p);
    }
    st = rh_actor_ready(a[1], 1000, NULL);
    EXPECT(st == RH_ERR_TIMEOUT, "a second actor of one CPU was made while "
           "the first was being constructed on the rank's only CPU: %d",
           st);
    atomic_store(&ctor_gate, 1);
    CHECK(rh_actor_ready(a[0], 30000, NULL));
    for (int i = 0; i < 4; i++) {
        for (int j = i + 1; j < 4; j++) {
            st = rh_actor_ready(a[j], 0, NULL);
            EXPECT(st == RH_ERR_TIMEOUT, "actor %d was made while actor %d "
                   "held the rank's only CPU: %d", j, i, st);
        }
        CHECK(rh_actor_kill(a[i], 1));
        if (i + 1 < 4) {
            st = rh_actor_ready(a[i + 1], 30000, NULL);
            EXPECT(st == RH_OK, "actor %d, next in line, was not made once "
                   "actor %d was killed: %d", i + 1, i, st);
        }
    }
    for (int i = 0; i < 4; i++) {
        CHECK(rh_actor_release(a[i]));
    }
    if (failures == 0) {
        printf("ACTORS QUEUE OK\n");
    }
    return failures;
}

/* elsewhere: (2 ranks on 2 nodes, one worker each) a second actor of one
 * CPU, created by the rank whose CPU the first keeps, goes to the other
 * rank, whose CPU is free (it waited on its creator for ever). */
static int run_elsewhere(void)
{
    rh_actor_params_t p = { 0 };
    rh_actor_t a, b;
    rh_status_t st;
    int at = -1;

    p.field_mask = RH_ACTOR_PARAM_FIELD_NUM_CPUS;
    p.num_cpus = 1;
    a = make_counter(1, &p);
    CHECK(rh_actor_ready(a, 30000, &at));
    EXPECT(at == 0, "the first actor went to rank %d, not its creator's", at);
    b = make_counter(2, &p);
    st = rh_actor_ready(b, 60000, &at);
    EXPECT(st == RH_OK && at == 1, "the second actor: %d, on rank %d, not "
           "on rank 1 whose CPU was free", st, at);
    CHECK(rh_actor_release(a));
    CHECK(rh_actor_release(b));
    if (failures == 0) {
        printf("ACTORS ELSEWHERE OK\n");
    }
    return failures;
}

/* An actor that fits no rank waits to be placed; rh_finalize fails its
 * creation without touching what the actor table freed. */
static int run_unplaced(void)
{
    rh_actor_params_t p = { 0 };
    rh_actor_t a;
    rh_ref_t r;
    rh_status_t st;

    p.field_mask = RH_ACTOR_PARAM_FIELD_NUM_CPUS;
    p.num_cpus = 100;
    a = make_counter(70, &p);
    /* a call queued behind the creation, and one that asks where it is */
    CHECK(rh_actor_call(a, "total", NULL, 0, NULL, &r));
    st = rh_actor_ready(a, 50, NULL);
    EXPECT(st == RH_ERR_TIMEOUT, "an actor that fits no rank: %d", st);
    CHECK(rh_actor_release(a));
    rh_release(r);
    if (failures == 0) {
        printf("ACTORS UNPLACED OK\n");
    }
    return failures;
}

static int run_rankdeath(void)
{
    rh_actor_params_t p = on_node(rh_num_nodes() - 1);
    rh_actor_t a = make_counter(40, &p);
    rh_ref_t r, d;
    rh_status_t st;
    int dead = 0;

    CHECK(rh_actor_ready(a, 30000, NULL));
    CHECK(rh_actor_call(a, "die", NULL, 0, NULL, &d));
    for (int i = 0; i < 100; i++) {
        add_arg_t arg = { 0, 0, i + 1 };
        rh_arg_t x = rh_arg_bytes(&arg, sizeof(arg));

        st = rh_actor_call(a, "add", &x, 1, NULL, &r);
        if (st == RH_OK) {
            (void)get_i64(r, 0, &st);
        }
        dead += st == RH_ERR_ACTOR_DEAD;
    }
    (void)get_i64(d, 0, &st);
    EXPECT(st == RH_ERR_ACTOR_DEAD, "the call that killed the rank: %d", st);
    EXPECT(dead == 100, "rank death: %d of 100 calls failed as dead", dead);
    st = rh_actor_call(a, "total", NULL, 0, NULL, &r);
    EXPECT(st == RH_ERR_ACTOR_DEAD, "call after the rank died: %d", st);
    if (failures == 0) {
        printf("ACTORS RANKDEATH OK\n");
    }
    return failures;
}

int main(int argc, char **argv)
{
    static const rh_method_def_t *m = counter_methods;
    rh_method_def_t all[sizeof(counter_methods) / sizeof(counter_methods[0])
                        + 1];
    rh_actor_class_t cls = { 0 };
    const char *mode = argc > 1 ? argv[1] : "local";
    int n = (int)(sizeof(counter_methods) / sizeof(counter_methods[0]));
    int rc = 0;

    memcpy(all, m, sizeof(counter_methods));
    all[n].name = "die";
    all[n].fn = die_soon;
    all[n].nargs = 0;
    all[n].nreturns = 1;
    cls.field_mask = RH_ACTOR_CLASS_FIELD_FINI;
    cls.init = counter_init;
    cls.init_nargs = 1;
    cls.methods = all;
    cls.num_methods = n + 1;
    cls.fini = counter_fini;
    CHECK(rh_register_actor("Counter", &cls));
    CHECK(rh_register("call_through", call_through, 1, 1));
    CHECK(rh_register("value_after", value_after, 1, 1));
    CHECK(rh_register("hold_until_gone", hold_until_gone, 1, 1));
    CHECK(rh_init(&argc, &argv, NULL));
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(mode, "callers") == 0) {
        rc = run_callers();
    } else if (strcmp(mode, "ownerdeath") == 0) {
        rc = run_ownerdeath();
    } else if (strcmp(mode, "detachedorphan") == 0) {
        rc = run_detachedorphan();
    } else if (strcmp(mode, "ownerflight") == 0) {
        rc = run_ownerflight(0);
    } else if (strcmp(mode, "ownerretry") == 0) {
        rc = run_ownerflight(1);
    } else if (strcmp(mode, "unplaced") == 0) {
        rc = run_unplaced();
    } else if (rh_rank() == 0) {
        if (strcmp(mode, "local") == 0) {
            rc = run_local();
        } else if (strcmp(mode, "remote") == 0) {
            rc = run_remote();
        } else if (strcmp(mode, "pg") == 0) {
            rc = run_pg();
        } else if (strcmp(mode, "keep1") == 0) {
            rc = run_keep1(0);
        } else if (strcmp(mode, "keep1remote") == 0) {
            rc = run_keep1(1);
        } else if (strcmp(mode, "keep") == 0) {
            rc = run_keep();
        } else if (strcmp(mode, "rankdeath") == 0) {
            rc = run_rankdeath();
        } else if (strcmp(mode, "killnew") == 0) {
            rc = run_killnew();
        } else if (strcmp(mode, "queue") == 0) {
            rc = run_queue();
        } else if (strcmp(mode, "elsewhere") == 0) {
            rc = run_elsewhere();
        } else {
            fprintf(stderr, "unknown mode %s\n", mode);
            rc = 2;
        }
    }
    CHECK(rh_finalize());
    return rc != 0;
}

static rh_status_t die_soon(void *state, rh_task_ctx_t *ctx)
{
    (void)state;
    (void)ctx;
    raise(SIGKILL);
    return RH_OK;
}
