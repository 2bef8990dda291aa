/*
 * libFuzzer target: the public API's argument checks. An input is a list
 * of calls (put, put_create, put_seal, get, get_many, wait, release,
 * remote, the placement-group calls, stats, the task-context calls outside
 * a task, register after init, and the actor calls: create, call, ready,
 * hold, release, kill, get_named, register_actor after init) with
 * arguments decoded from the bytes:
 * random lengths, counts, kinds, flags, refs and actor handles (the call's
 * own, stale ones it released, made-up ones), NULL pointers, bad strings. The calls
 * run on the one-rank runtime, started once, as a driver program would
 * make them; a call may fail, but only with a status and a message.
 *
 * Every hold a call gives is dropped by the end of the input, so that
 * objects and actors do not pile up from one input to the next.
 *
 * RH_FUZZ_SEEDS=dir writes the seed corpus there and exits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_runtime.h"

#define FZ_MAX_CALLS 48
#define FZ_NREFS     32
#define FZ_NSTALE    8
#define FZ_NPGS      4
#define FZ_MAX_ARGS  10
#define FZ_BIG       (1u << 20)   /* large objects, up to */
#define FZ_NACTORS   8

enum {
    FZ_PUT, FZ_PUT_CREATE, FZ_PUT_SEAL, FZ_GET, FZ_GET_MANY, FZ_WAIT,
    FZ_RELEASE, FZ_REMOTE, FZ_PG_CREATE, FZ_PG_CALLS, FZ_STATS, FZ_CTX,
    FZ_REGISTER, FZ_ACTOR_CREATE, FZ_ACTOR_CALL, FZ_ACTOR_CALLS,
    FZ_NUM_CALLS
};

typedef struct fz_state {
    rh_ref_t refs[FZ_NREFS];
    int      holds[FZ_NREFS];
    int      nrefs;
    rh_ref_t stale[FZ_NSTALE];
    int      nstale;
    rh_pg_t  pgs[FZ_NPGS];
    int      npgs;
    rh_ref_t unsealed[FZ_NREFS];
    int      nunsealed;
    rh_actor_t actors[FZ_NACTORS];   /* ours, with the holds we have */
    int        aholds[FZ_NACTORS];
    int        nactors;
    rh_actor_t astale[FZ_NSTALE];    /* ours, all holds dropped */
    int        nastale;
} fz_state_t;

static uint64_t fz_calls, fz_ok;
static uint8_t fz_big[FZ_BIG];
static volatile uint8_t fz_sink;   /* reads of got bytes land here */

static void fz_report(void)
{
    fprintf(stderr, "fuzz_api: %llu calls made, %llu succeeded\n",
            (unsigned long long)fz_calls, (unsigned long long)fz_ok);
}

/* Every failure must say why. */
static rh_status_t fz_check(rh_status_t status, const char *call)
{
    fz_calls++;
    if (status == RH_OK) {
        fz_ok++;
    } else if (rh_last_error() == NULL || rh_last_error()[0] == '\0' ||
               rh_status_string(status) == NULL) {
        fprintf(stderr, "fuzz_api: %s failed with %d and no message\n", call,
                (int)status);
        abort();
    }
    return status;
}

/* ---- refs ---------------------------------------------------------------- */

static int fz_ref_is(rh_ref_t a, rh_ref_t b)
{
    return a.hi == b.hi && a.lo == b.lo;
}

static void fz_release_all(fz_state_t *st, int i)
{
    while (st->holds[i] > 0) {
        fz_check(rh_release(st->refs[i]), "rh_release");
        st->holds[i]--;
    }
    st->stale[st->nstale++ % FZ_NSTALE] = st->refs[i];
    st->refs[i] = st->refs[--st->nrefs];
    st->holds[i] = st->holds[st->nrefs];
}

/* A new hold on ref (a new ref, or one more get). */
static void fz_hold(fz_state_t *st, rh_ref_t ref)
{
    for (int i = 0; i < st->nrefs; i++) {
        if (fz_ref_is(st->refs[i], ref)) {
            st->holds[i]++;
            return;
        }
    }
    if (st->nrefs == FZ_NREFS) {
        fz_release_all(st, 0);
    }
    st->refs[st->nrefs] = ref;
    st->holds[st->nrefs++] = 1;
}

/* A ref to pass: one of ours, a stale one, none, or made up (owned by a
 * rank that does not exist, or by us under a counter nobody used). */
static rh_ref_t fz_pick_ref(fz_state_t *st, rh_fuzz_in_t *in)
{
    uint8_t how = rh_fuzz_u8(in);
    rh_ref_t ref = { 0, 0 };

    switch (how & 3) {
    case 0:
    case 1:
        if (st->nrefs > 0) {
            return st->refs[(how >> 2) % st->nrefs];
        }
        return ref;
    case 2:
        if (st->nstale > 0) {
            int n = st->nstale < FZ_NSTALE ? st->nstale : FZ_NSTALE;

            return st->stale[(how >> 2) % n];
        }
        return ref;
    default:
        if (how & 4) {
            return ref;
        }
        ref.hi = rh_fuzz_u64(in);
        ref.lo = rh_fuzz_u64(in);
        if (how & 8) {
            ref.hi |= 1ull << 63;   /* an owner far out of the job */
        }
        return ref;
    }
}

/* Refs are released only while we hold them, or when they cannot name a
 * live object of ours (none, or another rank's): a stale ref of ours may
 * still be held by a task we passed it to, and releasing it again would
 * take that task's hold, which no runtime can tell from ours. */
static int fz_may_release(fz_state_t *st, rh_ref_t ref)
{
    for (int i = 0; i < st->nrefs; i++) {
        if (fz_ref_is(st->refs[i], ref)) {
            return st->holds[i] > 0;
        }
    }
    return (ref.hi >> 32) != (uint64_t)rh_rank() ||
           (ref.hi == 0 && ref.lo == 0);
}

/* ---- strings ------------------------------------------------------------- */

static const char *const fz_res_specs[] = {
    NULL, "", "gpu=1", "CPU=1", "x=-1", "a=1,a=2", "=3", "a=", "a=1,",
    "memory=1", "a=99999999999999999999", "a=1,b=2,c=3,d=4,e=5,f=6,g=7,h=8,"
    "i=9,j=10,k=11,l=12,m=13,n=14,o=15,p=16,q=17,r=18", "a b=1",
};

/* A resource list: a fixed one, or bytes of the input up to a NUL. */
static const char *fz_pick_res(rh_fuzz_in_t *in, char *buf, size_t size)
{
    uint8_t how = rh_fuzz_u8(in);
    unsigned n = sizeof(fz_res_specs) / sizeof(fz_res_specs[0]);

    if (how < 0xf0) {
        return fz_res_specs[how % n];
    }
    {
        size_t got, len = rh_fuzz_u8(in) % size;
        const uint8_t *p = rh_fuzz_bytes(in, len, &got);

        memcpy(buf, p, got);
        buf[got] = '\0';
        return buf;
    }
}

/* ---- the calls ----------------------------------------------------------- */

static void fz_put(fz_state_t *st, rh_fuzz_in_t *in)
{
    uint8_t how = rh_fuzz_u8(in);
    size_t len = rh_fuzz_u16(in) % 2048, got;
    const uint8_t *p = rh_fuzz_bytes(in, len, &got);
    const void *buf = p;
    rh_ref_t ref;

    if (how & 1) {
        len = rh_fuzz_u32(in) % FZ_BIG;   /* a large object, from zeros */
        buf = fz_big;
    } else {
        len = got;
    }
    if ((how & 6) == 6) {
        buf = NULL;
    }
    if (fz_check(rh_put(buf, len, (how & 8) ? NULL : &ref), "rh_put") ==
        RH_OK && !(how & 8)) {
        fz_hold(st, ref);
    }
}

static void fz_put_create(fz_state_t *st, rh_fuzz_in_t *in)
{
    uint8_t how = rh_fuzz_u8(in);
    size_t len = (how & 1) ? (size_t)rh_fuzz_u64(in)   /* any size */
                           : rh_fuzz_u32(in) % FZ_BIG;
    rh_ref_t ref;
    void *ptr;

    if (fz_check(rh_put_create(len, (how & 2) ? NULL : &ref,
                               (how & 4) ? NULL : &ptr),
                 "rh_put_create") != RH_OK) {
        return;
    }
    memset(ptr, 0xa5, len);   /* all of it is ours to write */
    fz_hold(st, ref);
    if ((how & 8) || st->nunsealed == FZ_NREFS) {
        fz_check(rh_put_seal(ref), "rh_put_seal");
    } else {
        st->unsealed[st->nunsealed++] = ref;
    }
}

static void fz_get(fz_state_t *st, rh_fuzz_in_t *in)
{
    uint8_t how = rh_fuzz_u8(in);
    rh_ref_t ref = fz_pick_ref(st, in);
    const void *ptr;
    size_t len = 0;

    if (fz_check(rh_get(ref, (how & 1) ? NULL : &ptr, (how & 2) ? NULL : &len,
                        (how & 0x70) == 0x70 ? 1 : 0), "rh_get") != RH_OK) {
        return;
    }
    for (size_t i = 0; i < len; i += 4096) {
        fz_sink += ((const uint8_t *)ptr)[i];   /* the bytes are there */
    }
    if (len != 0) {
        fz_sink += ((const uint8_t *)ptr)[len - 1];
    }
    fz_hold(st, ref);
}

static void fz_get_many(fz_state_t *st, rh_fuzz_in_t *in)
{
    uint8_t how = rh_fuzz_u8(in);
    size_t n = rh_fuzz_u8(in) % 9;
    rh_ref_t refs[8];
    const void *ptrs[8];
    size_t lens[8];

    for (size_t i = 0; i < n; i++) {
        refs[i] = fz_pick_ref(st, in);
    }
    if (fz_check(rh_get_many((how & 1) ? NULL : refs, n,
                             (how & 2) ? NULL : ptrs,
                             (how & 4) ? NULL : lens,
                             (how & 0x70) == 0x70 ? 1 : 0),
                 "rh_get_many") != RH_OK) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        fz_hold(st, refs[i]);
    }
}

static void fz_wait(fz_state_t *st, rh_fuzz_in_t *in)
{
    uint8_t how = rh_fuzz_u8(in);
    size_t n = rh_fuzz_u8(in) % 9, k = rh_fuzz_u8(in) % 10;
    rh_ref_t refs[8];
    int ready[8];

    for (size_t i = 0; i < n; i++) {
        refs[i] = fz_pick_ref(st, in);
    }
    fz_check(rh_wait((how & 1) ? NULL : refs, n, k,
                     (how & 0x70) == 0x70 ? 1 : 0, (how & 4) ? NULL : ready),
             "rh_wait");
}

static void fz_release(fz_state_t *st, rh_fuzz_in_t *in)
{
    rh_ref_t ref = fz_pick_ref(st, in);

    if (!fz_may_release(st, ref)) {
        return;
    }
    for (int i = 0; i < st->nrefs; i++) {
        if (fz_ref_is(st->refs[i], ref)) {
            if (--st->holds[i] == 0) {
                st->holds[i] = 1;
                fz_release_all(st, i);
                return;
            }
            break;
        }
    }
    fz_check(rh_release(ref), "rh_release");
}

static void fz_remote(fz_state_t *st, rh_fuzz_in_t *in)
{
    uint8_t how = rh_fuzz_u8(in);
    const char *name = (how & 0x80) ? NULL : rh_fuzz_fn_name(rh_fuzz_u8(in));
    int nargs = (int)(rh_fuzz_u8(in) % (FZ_MAX_ARGS + 2)) - 1;
    rh_arg_t args[FZ_MAX_ARGS];
    rh_task_params_t params;
    rh_ref_t rets[66];
    char res[128];

    for (int i = 0; i < nargs; i++) {
        uint8_t kind = rh_fuzz_u8(in);

        if ((kind & 3) == 0) {
            args[i] = rh_arg_ref(fz_pick_ref(st, in));
        } else {
            size_t got;
            const uint8_t *p = rh_fuzz_bytes(in, rh_fuzz_u16(in) % 1024,
                                             &got);

            args[i] = rh_arg_bytes((kind & 4) ? NULL : p, got);
            if ((kind & 3) == 3) {
                args[i].kind = (rh_arg_kind_t)(kind >> 3);   /* any value */
                args[i].ref = fz_pick_ref(st, in);
            }
        }
    }
    memset(&params, 0, sizeof(params));
    params.field_mask = rh_fuzz_u8(in);
    params.num_returns = (int8_t)rh_fuzz_u8(in);
    params.num_cpus = (int8_t)rh_fuzz_u8(in);
    params.resources = fz_pick_res(in, res, sizeof(res));
    params.strategy = (rh_strategy_t)(rh_fuzz_u8(in) % 6);
    params.node = (int8_t)rh_fuzz_u8(in);
    params.soft = rh_fuzz_u8(in) & 1;
    params.pg = st->npgs > 0 && (how & 1) ? st->pgs[(how >> 1) % st->npgs]
                                          : rh_fuzz_u64(in);
    params.bundle = (int8_t)rh_fuzz_u8(in);
    memset(rets, 0, sizeof(rets));
    if (fz_check(rh_remote(name, nargs > 0 ? args : (how & 2) ? NULL : args,
                           nargs, (how & 4) ? NULL : &params,
                           (how & 8) ? NULL : rets), "rh_remote") != RH_OK ||
        (how & 8)) {
        return;
    }
    for (int i = 0; i < 66; i++) {
        if (rets[i].hi != 0 || rets[i].lo != 0) {
            fz_hold(st, rets[i]);
        }
    }
}

static void fz_pg_remove_oldest(fz_state_t *st)
{
    fz_check(rh_pg_remove(st->pgs[0]), "rh_pg_remove");
    st->pgs[0] = st->pgs[--st->npgs];
}

static void fz_pg_create(fz_state_t *st, rh_fuzz_in_t *in)
{
    uint8_t how = rh_fuzz_u8(in);
    int n = (int)(rh_fuzz_u8(in) % 7) - 1;
    rh_bundle_t bundles[5];
    char res[5][64];
    rh_pg_t pg;

    for (int i = 0; i < n && i < 5; i++) {
        bundles[i].num_cpus = (int8_t)rh_fuzz_u8(in);
        bundles[i].resources = fz_pick_res(in, res[i], sizeof(res[i]));
    }
    if (n > 5) {
        n = 1000000;   /* more than there are */
    }
    if (fz_check(rh_pg_create((how & 1) ? NULL : bundles, n,
                              (rh_pg_strategy_t)(rh_fuzz_u8(in) % 5),
                              (how & 2) ? NULL : &pg),
                 "rh_pg_create") != RH_OK || (how & 2)) {
        return;
    }
    if (st->npgs == FZ_NPGS) {
        fz_pg_remove_oldest(st);
    }
    st->pgs[st->npgs++] = pg;
}

static void fz_pg_calls(fz_state_t *st, rh_fuzz_in_t *in)
{
    uint8_t how = rh_fuzz_u8(in);
    rh_pg_t pg = st->npgs > 0 && (how & 1) ? st->pgs[(how >> 3) % st->npgs]
                                           : rh_fuzz_u64(in);
    int node;

    switch ((how >> 1) & 3) {
    case 0:
        fz_check(rh_pg_wait(pg, (how & 0xf0) == 0xf0 ? 1 : 0), "rh_pg_wait");
        break;
    case 1:
        fz_check(rh_pg_bundle_node(pg, (int8_t)rh_fuzz_u8(in),
                                   (how & 0x40) ? NULL : &node),
                 "rh_pg_bundle_node");
        break;
    default:
        for (int i = 0; i < st->npgs; i++) {
            if (st->pgs[i] == pg) {
                st->pgs[i] = st->pgs[--st->npgs];
                break;
            }
        }
        fz_check(rh_pg_remove(pg), "rh_pg_remove");
        break;
    }
}

/* The calls a task makes, made outside any task. */
static void fz_ctx(rh_fuzz_in_t *in)
{
    uint8_t how = rh_fuzz_u8(in);
    int i = (int8_t)rh_fuzz_u8(in);
    size_t len;
    void *ptr;

    switch (how % 6) {
    case 0:
        (void)rh_task_nargs(NULL);
        break;
    case 1:
        (void)rh_task_arg(NULL, i, (how & 8) ? NULL : &len);
        break;
    case 2:
        (void)rh_task_arg_ref(NULL, i);
        break;
    case 3:
        fz_check(rh_task_return(NULL, i, "x", 1), "rh_task_return");
        break;
    case 4:
        fz_check(rh_task_return_alloc(NULL, i, 8, &ptr),
                 "rh_task_return_alloc");
        break;
    default:
        fz_check(rh_task_fail(NULL, "%s", "outside a task"), "rh_task_fail");
        break;
    }
}

static rh_status_t fz_noop(rh_task_ctx_t *ctx)
{
    (void)ctx;
    return RH_OK;
}

static void fz_register(rh_fuzz_in_t *in)
{
    uint8_t how = rh_fuzz_u8(in);

    fz_check(rh_register(rh_fuzz_fn_name(how), (how & 0x80) ? NULL : fz_noop,
                         (int8_t)rh_fuzz_u8(in), (int8_t)rh_fuzz_u8(in)),
             "rh_register");
}

static void fz_stats(rh_fuzz_in_t *in)
{
    rh_stats_t s;

    fz_check(rh_stats((rh_fuzz_u8(in) & 1) ? NULL : &s), "rh_stats");
}

/* ---- actors -------------------------------------------------------------- */

/* The class every rank registers: a counter. Its constructor fails when
 * its first argument starts with 0xff; "fail" always fails; "many" gives
 * as many returns as asked. */
typedef struct fz_counter {
    uint64_t n;
} fz_counter_t;

static rh_status_t fz_counter_init(rh_task_ctx_t *ctx, void **state)
{
    size_t len = 0;
    const uint8_t *a = rh_task_nargs(ctx) > 0 ? rh_task_arg(ctx, 0, &len)
                                              : NULL;

    if (a != NULL && len > 0 && a[0] == 0xff) {
        return rh_task_fail(ctx, "fz_counter: refused by its argument");
    }
    *state = calloc(1, sizeof(fz_counter_t));
    return *state != NULL ? RH_OK : rh_task_fail(ctx, "fz_counter: no memory");
}

static void fz_counter_fini(void *state)
{
    free(state);
}

static rh_status_t fz_counter_incr(void *state, rh_task_ctx_t *ctx)
{
    fz_counter_t *c = state;

    c->n++;
    return rh_task_return(ctx, 0, &c->n, sizeof(c->n));
}

static rh_status_t fz_counter_fail(void *state, rh_task_ctx_t *ctx)
{
    (void)state;
    return rh_task_fail(ctx, "fz_counter: fail was called");
}

/* Reads every argument, sets no return. */
static rh_status_t fz_counter_many(void *state, rh_task_ctx_t *ctx)
{
    size_t len;

    (void)state;
    for (int i = 0; i < rh_task_nargs(ctx); i++) {
        const uint8_t *p = rh_task_arg(ctx, i, &len);

        if (p != NULL && len > 0) {
            fz_sink += p[len - 1];
        }
    }
    return RH_OK;
}

static const rh_method_def_t fz_counter_methods[] = {
    { "incr", fz_counter_incr, 0, 1 },
    { "fail", fz_counter_fail, -1, 1 },
    { "many", fz_counter_many, -1, 2 },
};

static int fz_register_actor_class(void)
{
    rh_actor_class_t cls;

    memset(&cls, 0, sizeof(cls));
    cls.field_mask = RH_ACTOR_CLASS_FIELD_FINI;
    cls.init = fz_counter_init;
    cls.init_nargs = -1;
    cls.methods = fz_counter_methods;
    cls.num_methods = 3;
    cls.fini = fz_counter_fini;
    return rh_register_actor("fz_counter", &cls) == RH_OK ? 0 : -1;
}

/* Class, method and actor names: real, unknown, empty, NULL, too long. */
static const char *const fz_actor_names[] = {
    "fz_counter", "incr", "fail", "many", "fz_missing", "", NULL,
    "fz_a", "fz_b",
    "a23456789012345678901234567890123456789012345678901234567890123",
    "a234567890123456789012345678901234567890123456789012345678901234",
    "fz:counter",
};

static const char *fz_pick_name(rh_fuzz_in_t *in)
{
    return fz_actor_names[rh_fuzz_u8(in) %
                          (sizeof(fz_actor_names) / sizeof(fz_actor_names[0]))];
}

static int fz_actor_is(rh_actor_t a, rh_actor_t b)
{
    return a.hi == b.hi && a.lo == b.lo;
}

static void fz_actor_drop_all(fz_state_t *st, int i)
{
    while (st->aholds[i] > 0) {
        fz_check(rh_actor_release(st->actors[i]), "rh_actor_release");
        st->aholds[i]--;
    }
    st->astale[st->nastale++ % FZ_NSTALE] = st->actors[i];
    st->actors[i] = st->actors[--st->nactors];
    st->aholds[i] = st->aholds[st->nactors];
}

static void fz_actor_hold(fz_state_t *st, rh_actor_t a)
{
    for (int i = 0; i < st->nactors; i++) {
        if (fz_actor_is(st->actors[i], a)) {
            st->aholds[i]++;
            return;
        }
    }
    if (st->nactors == FZ_NACTORS) {
        fz_actor_drop_all(st, 0);
    }
    st->actors[st->nactors] = a;
    st->aholds[st->nactors++] = 1;
}

/* An actor to pass: one of ours, a stale one, none, or made up. */
static rh_actor_t fz_pick_actor(fz_state_t *st, rh_fuzz_in_t *in)
{
    uint8_t how = rh_fuzz_u8(in);
    rh_actor_t a = { 0, 0 };

    switch (how & 3) {
    case 0:
    case 1:
        return st->nactors > 0 ? st->actors[(how >> 2) % st->nactors] : a;
    case 2:
        if (st->nastale > 0) {
            int n = st->nastale < FZ_NSTALE ? st->nastale : FZ_NSTALE;

            return st->astale[(how >> 2) % n];
        }
        return a;
    default:
        if (how & 4) {
            return a;
        }
        a.hi = rh_fuzz_u64(in);
        a.lo = rh_fuzz_u64(in);
        if ((how & 8) && st->nactors > 0) {
            a.hi = st->actors[0].hi;   /* ours, but not an id we were given */
        }
        return a;
    }
}

/* Arguments as fz_remote makes them: refs, bytes, NULL bytes, bad kinds. */
static int fz_pick_args(fz_state_t *st, rh_fuzz_in_t *in, rh_arg_t *args)
{
    int nargs = (int)(rh_fuzz_u8(in) % (FZ_MAX_ARGS + 2)) - 1;

    for (int i = 0; i < nargs; i++) {
        uint8_t kind = rh_fuzz_u8(in);

        if ((kind & 3) == 0) {
            args[i] = rh_arg_ref(fz_pick_ref(st, in));
        } else {
            size_t got;
            const uint8_t *p = rh_fuzz_bytes(in, rh_fuzz_u16(in) % 1024,
                                             &got);

            args[i] = rh_arg_bytes((kind & 4) ? NULL : p, got);
            if ((kind & 3) == 3) {
                args[i].kind = (rh_arg_kind_t)(kind >> 3);
                args[i].ref = fz_pick_ref(st, in);
            }
        }
    }
    return nargs;
}

static void fz_actor_create(fz_state_t *st, rh_fuzz_in_t *in)
{
    uint8_t how = rh_fuzz_u8(in);
    const char *cls = (how & 0x80) ? fz_actor_names[0] : fz_pick_name(in);
    rh_arg_t args[FZ_MAX_ARGS];
    int nargs = fz_pick_args(st, in, args);
    rh_actor_params_t params;
    rh_actor_t a;
    char res[128];

    memset(&params, 0, sizeof(params));
    params.field_mask = rh_fuzz_u8(in);
    params.num_cpus = (int8_t)rh_fuzz_u8(in);
    params.resources = fz_pick_res(in, res, sizeof(res));
    params.strategy = (rh_strategy_t)(rh_fuzz_u8(in) % 6);
    params.node = (int8_t)rh_fuzz_u8(in);
    params.soft = rh_fuzz_u8(in) & 1;
    params.pg = st->npgs > 0 && (how & 1) ? st->pgs[(how >> 1) % st->npgs]
                                          : rh_fuzz_u64(in);
    params.bundle = (int8_t)rh_fuzz_u8(in);
    params.name = fz_pick_name(in);
    params.max_concurrency = (int8_t)rh_fuzz_u8(in);
    params.detached = 0;   /* a detached actor would outlive the input */
    if (fz_check(rh_actor_create(cls, nargs > 0 ? args :
                                      (how & 2) ? NULL : args,
                                 nargs, (how & 4) ? NULL : &params,
                                 (how & 8) ? NULL : &a),
                 "rh_actor_create") == RH_OK && !(how & 8)) {
        fz_actor_hold(st, a);
    }
}

static void fz_actor_call(fz_state_t *st, rh_fuzz_in_t *in)
{
    uint8_t how = rh_fuzz_u8(in);
    rh_actor_t a = fz_pick_actor(st, in);
    const char *method = fz_pick_name(in);
    rh_arg_t args[FZ_MAX_ARGS];
    int nargs = fz_pick_args(st, in, args);
    rh_call_params_t params;
    rh_ref_t rets[66];

    memset(&params, 0, sizeof(params));
    params.field_mask = rh_fuzz_u8(in);
    params.num_returns = (int8_t)rh_fuzz_u8(in);
    params.flags = rh_fuzz_u8(in) & 3;
    memset(rets, 0, sizeof(rets));
    if (fz_check(rh_actor_call(a, method, nargs > 0 ? args :
                                          (how & 2) ? NULL : args,
                               nargs, (how & 4) ? NULL : &params,
                               (how & 8) ? NULL : rets),
                 "rh_actor_call") != RH_OK || (how & 8)) {
        return;
    }
    for (int i = 0; i < 66; i++) {
        if (rets[i].hi != 0 || rets[i].lo != 0) {
            fz_hold(st, rets[i]);
        }
    }
}

/* ready, hold, release, kill, get_named, register_actor after init,
 * rh_task_actor outside a task. */
static void fz_actor_calls(fz_state_t *st, rh_fuzz_in_t *in)
{
    uint8_t how = rh_fuzz_u8(in);
    rh_actor_t a = fz_pick_actor(st, in), got;
    rh_actor_class_t cls;
    int rank;

    switch (how % 7) {
    case 0:
        fz_check(rh_actor_ready(a, (how & 0x80) ? 1 : 0,
                                (how & 0x40) ? NULL : &rank),
                 "rh_actor_ready");
        break;
    case 1:
        if (fz_check(rh_actor_hold(a), "rh_actor_hold") == RH_OK) {
            for (int i = 0; i < st->nactors; i++) {
                if (fz_actor_is(st->actors[i], a)) {
                    st->aholds[i]++;
                }
            }
        }
        break;
    case 2:
        /* Only holds we have: another's would be the runtime's to keep. */
        for (int i = 0; i < st->nactors; i++) {
            if (fz_actor_is(st->actors[i], a)) {
                if (--st->aholds[i] == 0) {
                    st->aholds[i] = 1;
                    fz_actor_drop_all(st, i);
                } else {
                    fz_check(rh_actor_release(a), "rh_actor_release");
                }
                break;
            }
        }
        break;
    case 3:
        fz_check(rh_actor_kill(a, (how >> 3) & 1), "rh_actor_kill");
        break;
    case 4:
        if (fz_check(rh_actor_get_named(fz_pick_name(in),
                                        (how & 0x80) ? NULL : &got),
                     "rh_actor_get_named") == RH_OK && !(how & 0x80)) {
            fz_actor_hold(st, got);
        }
        break;
    case 5:
        memset(&cls, 0, sizeof(cls));
        cls.init = (how & 0x10) ? NULL : fz_counter_init;
        cls.init_nargs = (int8_t)rh_fuzz_u8(in);
        cls.methods = (how & 0x20) ? NULL : fz_counter_methods;
        cls.num_methods = (int8_t)rh_fuzz_u8(in);
        fz_check(rh_register_actor(fz_pick_name(in),
                                   (how & 0x40) ? NULL : &cls),
                 "rh_register_actor");
        break;
    default:
        got = rh_task_actor(NULL);
        if (got.hi != 0 || got.lo != 0) {
            fprintf(stderr, "fuzz_api: rh_task_actor outside a task gave "
                    "an actor\n");
            abort();
        }
        break;
    }
}

/* ---- seeds --------------------------------------------------------------- */

static void fz_write_seeds(const char *dir)
{
    /* One seed per call, then a few sequences: a put and its get and
     * releases; a task on a put, its get; a group, a task in it, its
     * removal; a put_create left unsealed, then got; an actor, a call and
     * its get, a release; a named actor found, killed with a call made;
     * an actor whose constructor fails, called. */
    static const uint8_t put_get[] = {
        FZ_PUT, 0, 5, 0, 'h', 'e', 'l', 'l', 'o',
        FZ_GET, 0, 0,
        FZ_RELEASE, 0, FZ_RELEASE, 0,
    };
    static const uint8_t task[] = {
        FZ_PUT, 0, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8,
        FZ_REMOTE, 0, 0, 3, 0, 0, 1, 1, 4, 0, 'a', 'b', 'c', 'd',
        0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        FZ_GET, 4, 0,
        FZ_WAIT, 0, 2, 1, 0, 1,
    };
    static const uint8_t group[] = {
        FZ_PG_CREATE, 0, 2, 1, 0, 1, 2, 0,
        FZ_PG_CALLS, 1,
        FZ_REMOTE, 1, 0, 1, 1, 3, 0, 'x', 'y', 'z', 7, 1, 1, 0, 3, 0, 0, 0,
        FZ_PG_CALLS, 5, 0, 0,
    };
    static const uint8_t unsealed[] = {
        FZ_PUT_CREATE, 0, 0, 16, 0, 0,
        FZ_GET, 0, 0,
        FZ_PUT_SEAL, 0,
        FZ_GET_MANY, 0, 2, 0, 0,
    };
    static const uint8_t big[] = {
        FZ_PUT, 1, 0, 0, 0, 0, 0x20, 0,
        FZ_GET, 0, 0,
        FZ_REMOTE, 0, 4, 1, 1, 4, 0, 0, 0, 0x10, 0, 0, 0, 1, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0,
    };
    static const uint8_t actor[] = {
        FZ_ACTOR_CREATE, 0x80, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0,
        FZ_ACTOR_CALL, 0, 0, 1, 1, 0, 0, 0,
        FZ_GET, 0, 0,
        FZ_ACTOR_CALLS, 2, 0,
    };
    static const uint8_t named[] = {
        FZ_ACTOR_CREATE, 0x80, 1, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        7, 0,
        FZ_ACTOR_CALLS, 4, 0, 7,
        FZ_ACTOR_CALL, 0, 0, 1, 1, 0, 0, 0,
        FZ_ACTOR_CALLS, 3, 0,
        FZ_GET, 0, 0,
    };
    static const uint8_t ctor_fails[] = {
        FZ_ACTOR_CREATE, 0x80, 2, 1, 1, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0,
        FZ_ACTOR_CALLS, 0x85, 0,
        FZ_ACTOR_CALL, 0, 0, 1, 1, 0, 0, 0,
        FZ_GET, 0x70, 0,
    };
    char name[32];

    for (uint8_t c = 0; c < FZ_NUM_CALLS; c++) {
        uint8_t one[24];

        memset(one, 0, sizeof(one));
        one[0] = c;
        snprintf(name, sizeof(name), "call%02u", c);
        rh_fuzz_write_seed(dir, name, one, sizeof(one));
    }
    rh_fuzz_write_seed(dir, "put-get-release", put_get, sizeof(put_get));
    rh_fuzz_write_seed(dir, "task-on-a-put", task, sizeof(task));
    rh_fuzz_write_seed(dir, "placement-group", group, sizeof(group));
    rh_fuzz_write_seed(dir, "unsealed-put", unsealed, sizeof(unsealed));
    rh_fuzz_write_seed(dir, "large-objects", big, sizeof(big));
    rh_fuzz_write_seed(dir, "actor-call-get", actor, sizeof(actor));
    rh_fuzz_write_seed(dir, "named-actor-killed", named, sizeof(named));
    rh_fuzz_write_seed(dir, "actor-constructor-fails", ctor_fails,
                       sizeof(ctor_fails));
}

/* ---- the target ---------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* Before the runtime starts, as classes must be. */
    if (fz_register_actor_class() != 0) {
        fprintf(stderr, "fuzz_api: %s\n", rh_last_error());
        return 1;
    }
    return rh_fuzz_initialize("fuzz_api", fz_write_seeds, fz_report);
}

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t size)
{
    rh_fuzz_in_t in = { buf, size };
    fz_state_t st;

    memset(&st, 0, sizeof(st));
    for (int i = 0; i < FZ_MAX_CALLS && in.left > 0; i++) {
        switch (rh_fuzz_u8(&in) % FZ_NUM_CALLS) {
        case FZ_PUT:       fz_put(&st, &in); break;
        case FZ_PUT_CREATE: fz_put_create(&st, &in); break;
        case FZ_PUT_SEAL:
            fz_check(rh_put_seal(fz_pick_ref(&st, &in)), "rh_put_seal");
            break;
        case FZ_GET:       fz_get(&st, &in); break;
        case FZ_GET_MANY:  fz_get_many(&st, &in); break;
        case FZ_WAIT:      fz_wait(&st, &in); break;
        case FZ_RELEASE:   fz_release(&st, &in); break;
        case FZ_REMOTE:    fz_remote(&st, &in); break;
        case FZ_PG_CREATE: fz_pg_create(&st, &in); break;
        case FZ_PG_CALLS:  fz_pg_calls(&st, &in); break;
        case FZ_STATS:     fz_stats(&in); break;
        case FZ_CTX:       fz_ctx(&in); break;
        case FZ_REGISTER:  fz_register(&in); break;
        case FZ_ACTOR_CREATE: fz_actor_create(&st, &in); break;
        case FZ_ACTOR_CALL:   fz_actor_call(&st, &in); break;
        default:           fz_actor_calls(&st, &in); break;
        }
    }
    /* A put left unsealed would keep the tasks that take it waiting for
     * good (as an object that is never made would): its maker seals it. */
    for (int i = 0; i < st.nunsealed; i++) {
        rh_status_t status = rh_put_seal(st.unsealed[i]);

        fz_check(status == RH_ERR_INVALID_REF ? RH_OK : status,
                 "rh_put_seal");
    }
    while (st.nrefs > 0) {
        fz_release_all(&st, 0);
    }
    /* The last holds: the calls made run, then the destructors. */
    while (st.nactors > 0) {
        fz_actor_drop_all(&st, 0);
    }
    while (st.npgs > 0) {
        fz_pg_remove_oldest(&st);
    }
    return 0;
}
