/*
 * The Ray paper's parameter server: an actor holds a model's parameters,
 * worker tasks on every node compute gradients on data shards held as
 * objects, and the actor applies them.
 *
 *   rayhpc-run -n 4 --nodes 2 ./examples/param_server [DIM] [WORKERS] [STEPS]
 *
 * The model is DIM floats (1 M by default). Shard s holds DIM coefficients
 * a and targets y = a * x (x a known solution) of a least-squares problem,
 * loss = 1/2 sum (a_j w_j - y_j)^2 summed over the shards; it is made by a
 * task on node s % nodes and stays there as an object. The ParameterServer
 * actor sits on the last node.
 *
 * Rank 0 submits the whole run before it waits for anything: for step k it
 * calls get_params, submits one gradient task per shard on that shard's
 * node (each reads the parameters and its shard in place, or pulls the
 * parameters once to its node), then one apply_gradients call per gradient.
 * The parameters for step k+1 are asked for before step k's gradients are
 * applied, so a worker computes its next gradient while the actor still
 * waits for the others' (a pipeline one step deep: step k+1 uses the
 * parameters before step k, as a serial run of the same schedule does).
 * Calls from one caller run in the order made, whichever gradient is ready
 * first, so the actor sums each step's gradients in shard order and the
 * result is bit for bit the serial run's, which rank 0 computes too.
 *
 * Prints the steps per second and the bytes that passed between the actor
 * and the tasks, then "PARAM_SERVER OK" when the parameters equal the
 * serial run's exactly and the loss went down.
 */
#define _POSIX_C_SOURCE 200809L   /* clock_gettime under -std=c11 too */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rayhpc.h>

#define PS_LR 0.3f   /* stable for the one-step pipeline: lr * a^2 < 1 */

/* ---- the problem, shared by the tasks, the actor and the serial run ---- */

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* In [0, 1). */
static float unit(uint64_t x)
{
    return (float)(mix(x) >> 40) * 0x1.0p-24f;
}

/* Shard s: a[0..d) then y[0..d). */
static void make_shard(uint64_t s, size_t d, float *shard)
{
    for (size_t j = 0; j < d; j++) {
        float a = 0.5f + unit(s * 0x100000000ull + j);
        float x = 2.0f * unit(0xfeedull * 0x100000000ull + j) - 1.0f;

        shard[j] = a;
        shard[d + j] = a * x;
    }
}

/* The same code must run in the tasks, the actor and the serial run for
 * the results to match to the bit: these are never inlined, so that no
 * call site gets its own contraction of the arithmetic. */
__attribute__((noinline))
static void gradient(const float *w, const float *shard, size_t d, float *g)
{
    for (size_t j = 0; j < d; j++) {
        g[j] = shard[j] * (shard[j] * w[j] - shard[d + j]);
    }
}

__attribute__((noinline))
static void accumulate(float *acc, const float *g, size_t d, int first)
{
    for (size_t j = 0; j < d; j++) {
        acc[j] = first ? g[j] : acc[j] + g[j];
    }
}

__attribute__((noinline))
static void update(float *w, const float *acc, float scale, size_t d)
{
    for (size_t j = 0; j < d; j++) {
        w[j] -= scale * acc[j];
    }
}

static double loss(const float *w, const float *shards, int nshards,
                   size_t d)
{
    double sum = 0;

    for (int s = 0; s < nshards; s++) {
        const float *sh = shards + (size_t)s * 2 * d;

        for (size_t j = 0; j < d; j++) {
            double r = (double)sh[j] * w[j] - sh[d + j];

            sum += 0.5 * r * r;
        }
    }
    return sum;
}

/* ---- tasks --------------------------------------------------------------- */

typedef struct shard_arg {
    uint64_t index;
    uint64_t dim;
} shard_arg_t;

static rh_status_t ps_make_shard(rh_task_ctx_t *ctx)
{
    shard_arg_t a;
    void *out;
    rh_status_t st;

    memcpy(&a, rh_task_arg(ctx, 0, NULL), sizeof(a));
    st = rh_task_return_alloc(ctx, 0, a.dim * 2 * sizeof(float), &out);
    if (st != RH_OK) {
        return st;
    }
    make_shard(a.index, a.dim, out);
    return RH_OK;
}

/* Arguments: the parameters and a shard, both refs read in place. */
static rh_status_t ps_gradient(rh_task_ctx_t *ctx)
{
    size_t wlen, slen;
    const float *w = rh_task_arg(ctx, 0, &wlen);
    const float *shard = rh_task_arg(ctx, 1, &slen);
    size_t d = wlen / sizeof(float);
    void *g;
    rh_status_t st;

    if (slen != 2 * wlen) {
        return rh_task_fail(ctx, "gradient: %zu parameter bytes but a shard "
                            "of %zu", wlen, slen);
    }
    st = rh_task_return_alloc(ctx, 0, wlen, &g);
    if (st != RH_OK) {
        return st;
    }
    gradient(w, shard, d, g);
    return RH_OK;
}

/* ---- the ParameterServer actor ------------------------------------------- */

typedef struct ps_init_arg {
    uint64_t dim;
    uint32_t workers;
    float    lr;
} ps_init_arg_t;

typedef struct ps_state {
    size_t   dim;
    uint32_t workers;
    uint32_t received;    /* gradients of the current step so far */
    uint64_t steps;       /* steps applied */
    float    scale;       /* lr / workers */
    float   *w;
    float   *acc;
} ps_state_t;

static rh_status_t ps_init(rh_task_ctx_t *ctx, void **state)
{
    ps_init_arg_t a;
    ps_state_t *ps;
    size_t len;
    const void *p = rh_task_arg(ctx, 0, &len);

    if (len != sizeof(a)) {
        return rh_task_fail(ctx, "ParameterServer: %zu argument bytes, not "
                            "%zu", len, sizeof(a));
    }
    memcpy(&a, p, sizeof(a));
    if (a.dim == 0 || a.workers == 0) {
        return rh_task_fail(ctx, "ParameterServer: dim and workers must be "
                            "positive");
    }
    ps = calloc(1, sizeof(*ps));
    if (ps == NULL) {
        return rh_task_fail(ctx, "ParameterServer: out of memory");
    }
    ps->dim = a.dim;
    ps->workers = a.workers;
    ps->scale = a.lr / (float)a.workers;
    ps->w = calloc(a.dim, sizeof(float));
    ps->acc = calloc(a.dim, sizeof(float));
    if (ps->w == NULL || ps->acc == NULL) {
        free(ps->w);
        free(ps->acc);
        free(ps);
        return rh_task_fail(ctx, "ParameterServer: no memory for %" PRIu64
                            " parameters", a.dim);
    }
    *state = ps;
    return RH_OK;
}

static void ps_fini(void *state)
{
    ps_state_t *ps = state;

    free(ps->w);
    free(ps->acc);
    free(ps);
}

/* The parameters as they are now, as a new object. */
static rh_status_t ps_get_params(void *state, rh_task_ctx_t *ctx)
{
    ps_state_t *ps = state;
    void *out;
    rh_status_t st;

    st = rh_task_return_alloc(ctx, 0, ps->dim * sizeof(float), &out);
    if (st != RH_OK) {
        return st;
    }
    memcpy(out, ps->w, ps->dim * sizeof(float));
    return RH_OK;
}

/* One worker's gradient; the workers-th of a step applies their sum.
 * Returns the steps applied so far. */
static rh_status_t ps_apply_gradients(void *state, rh_task_ctx_t *ctx)
{
    ps_state_t *ps = state;
    size_t len;
    const float *g = rh_task_arg(ctx, 0, &len);

    if (len != ps->dim * sizeof(float)) {
        return rh_task_fail(ctx, "apply_gradients: %zu bytes for %zu "
                            "parameters", len, ps->dim);
    }
    accumulate(ps->acc, g, ps->dim, ps->received == 0);
    if (++ps->received == ps->workers) {
        update(ps->w, ps->acc, ps->scale, ps->dim);
        ps->received = 0;
        ps->steps++;
    }
    return rh_task_return(ctx, 0, &ps->steps, sizeof(ps->steps));
}

static const rh_method_def_t ps_methods[] = {
    { "get_params", ps_get_params, 0, 1 },
    { "apply_gradients", ps_apply_gradients, 1, 1 },
};

/* ---- the driver ---------------------------------------------------------- */

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static rh_task_params_t on_node(int node)
{
    rh_task_params_t p;

    memset(&p, 0, sizeof(p));
    p.field_mask = RH_TASK_PARAM_FIELD_STRATEGY;
    p.strategy = RH_STRATEGY_NODE_AFFINITY;
    p.node = node;
    return p;
}

static int fail(const char *what)
{
    fprintf(stderr, "param_server: %s: %s\n", what, rh_last_error());
    return 1;
}

/* The same schedule as the actor's, one step after the other. */
static void serial_run(const float *shards, int workers, size_t d, int steps,
                       float *w)
{
    float *snap = calloc(d, sizeof(float)), *next = calloc(d, sizeof(float));
    float *acc = calloc(d, sizeof(float)), *g = calloc(d, sizeof(float));
    float scale = PS_LR / (float)workers;

    memset(w, 0, d * sizeof(float));
    for (int k = 0; k < steps; k++) {
        for (int s = 0; s < workers; s++) {
            gradient(snap, shards + (size_t)s * 2 * d, d, g);
            accumulate(acc, g, d, s == 0);
        }
        memcpy(next, w, d * sizeof(float));   /* asked for before the apply */
        update(w, acc, scale, d);
        memcpy(snap, next, d * sizeof(float));
    }
    free(snap);
    free(next);
    free(acc);
    free(g);
}

/* Submits the whole run; the final parameters' ref in *final and every
 * apply's ref in applies[steps * workers]. */
static int submit_run(rh_actor_t ps, const rh_ref_t *shards, int workers,
                      int steps, rh_ref_t *applies, rh_ref_t *final)
{
    int nodes = rh_num_nodes();
    rh_ref_t params, next, *grads = calloc((size_t)workers, sizeof(*grads));
    rh_arg_t args[2];

    if (rh_actor_call(ps, "get_params", NULL, 0, NULL, &params) != RH_OK) {
        free(grads);
        return fail("get_params");
    }
    for (int k = 0; k < steps; k++) {
        for (int s = 0; s < workers; s++) {
            rh_task_params_t tp = on_node(s % nodes);

            args[0] = rh_arg_ref(params);
            args[1] = rh_arg_ref(shards[s]);
            if (rh_remote("ps_gradient", args, 2, &tp, &grads[s]) != RH_OK) {
                free(grads);
                return fail("gradient task");
            }
        }
        /* The tasks hold what they read. */
        rh_release(params);
        if (rh_actor_call(ps, "get_params", NULL, 0, NULL, &next) != RH_OK) {
            free(grads);
            return fail("get_params");
        }
        for (int s = 0; s < workers; s++) {
            args[0] = rh_arg_ref(grads[s]);
            if (rh_actor_call(ps, "apply_gradients", args, 1, NULL,
                              &applies[k * workers + s]) != RH_OK) {
                free(grads);
                return fail("apply_gradients");
            }
            rh_release(grads[s]);
        }
        params = next;
    }
    /* The last step's parameters went unused; the model after the last
     * apply is one more call away. */
    rh_release(params);
    free(grads);
    if (rh_actor_call(ps, "get_params", NULL, 0, NULL, final) != RH_OK) {
        return fail("get_params");
    }
    return 0;
}

int main(int argc, char **argv)
{
    rh_actor_class_t cls = {
        .field_mask = RH_ACTOR_CLASS_FIELD_FINI,
        .init = ps_init, .init_nargs = 1,
        .methods = ps_methods,
        .num_methods = (int)(sizeof(ps_methods) / sizeof(ps_methods[0])),
        .fini = ps_fini,
    };
    size_t dim;
    int workers, steps, rc = 1;
    rh_actor_t ps = { 0, 0 };
    rh_actor_params_t ap;
    ps_init_arg_t ia;
    rh_arg_t arg;
    rh_ref_t *shards = NULL, *applies = NULL, final = { 0, 0 };
    float *local_shards = NULL, *expect = NULL;
    const void *p;
    size_t len;
    int actor_rank = -1, nshards = 0, napplies = 0;
    double t0, t, loss0, loss1;

    if (rh_register("ps_make_shard", ps_make_shard, 1, 1) != RH_OK ||
        rh_register("ps_gradient", ps_gradient, 2, 1) != RH_OK ||
        rh_register_actor("ParameterServer", &cls) != RH_OK ||
        rh_init(&argc, &argv, NULL) != RH_OK) {
        return fail("start");
    }
    dim = argc > 1 ? strtoull(argv[1], NULL, 0) : 1u << 20;
    workers = argc > 2 ? atoi(argv[2]) : 4;
    steps = argc > 3 ? atoi(argv[3]) : 20;
    if (rh_rank() != 0) {
        return rh_finalize() == RH_OK ? 0 : 1;
    }
    if (dim < 1 || workers < 1 || steps < 1) {
        fprintf(stderr, "param_server: DIM, WORKERS and STEPS must be "
                "positive\n");
        goto out;
    }

    /* The shards, each made on its node. */
    shards = calloc((size_t)workers, sizeof(*shards));
    applies = calloc((size_t)workers * (size_t)steps, sizeof(*applies));
    for (; nshards < workers; nshards++) {
        shard_arg_t sa = { (uint64_t)nshards, dim };
        rh_task_params_t tp = on_node(nshards % rh_num_nodes());

        arg = rh_arg_bytes(&sa, sizeof(sa));
        if (rh_remote("ps_make_shard", &arg, 1, &tp, &shards[nshards]) !=
            RH_OK) {
            fail("shard task");
            goto out;
        }
    }

    /* The actor, on the last node. */
    memset(&ap, 0, sizeof(ap));
    ap.field_mask = RH_ACTOR_PARAM_FIELD_STRATEGY;
    ap.strategy = RH_STRATEGY_NODE_AFFINITY;
    ap.node = rh_num_nodes() - 1;
    ia = (ps_init_arg_t){ dim, (uint32_t)workers, PS_LR };
    arg = rh_arg_bytes(&ia, sizeof(ia));
    if (rh_actor_create("ParameterServer", &arg, 1, &ap, &ps) != RH_OK) {
        fail("rh_actor_create");
        goto out;
    }
    if (rh_actor_ready(ps, 60000, &actor_rank) != RH_OK) {
        fail("rh_actor_ready");
        goto out;
    }

    t0 = now();
    if (submit_run(ps, shards, workers, steps, applies, &final) != 0) {
        goto out;
    }
    napplies = workers * steps;
    if (rh_get(final, &p, &len, RH_TIMEOUT_INFINITE) != RH_OK) {
        fail("final parameters");
        goto out;
    }
    t = now() - t0;
    for (int i = 0; i < napplies; i++) {
        const void *v;
        size_t vl;

        if (rh_get(applies[i], &v, &vl, RH_TIMEOUT_INFINITE) != RH_OK) {
            fail("apply_gradients");
            rh_release(final);
            goto out;
        }
        rh_release(applies[i]);
    }

    /* The serial run of the same schedule. */
    local_shards = malloc((size_t)workers * 2 * dim * sizeof(float));
    expect = malloc(dim * sizeof(float));
    if (local_shards == NULL || expect == NULL) {
        fprintf(stderr, "param_server: no memory for the serial run\n");
        rh_release(final);
        goto out;
    }
    for (int s = 0; s < workers; s++) {
        make_shard((uint64_t)s, dim, local_shards + (size_t)s * 2 * dim);
    }
    serial_run(local_shards, workers, dim, steps, expect);
    {
        float *zero = calloc(dim, sizeof(float));

        loss0 = loss(zero, local_shards, workers, dim);
        free(zero);
    }
    loss1 = loss(p, local_shards, workers, dim);
    printf("param_server: %zu parameters, %d workers on %d nodes, actor on "
           "rank %d, %d steps in %.3f s: %.1f steps/s, %.1f MB between the "
           "actor and the tasks (%.1f MB/s); loss %.4g -> %.4g\n",
           dim, workers, rh_num_nodes(), actor_rank, steps, t, steps / t,
           (double)steps * workers * 2 * dim * sizeof(float) / 1e6,
           (double)steps * workers * 2 * dim * sizeof(float) / 1e6 / t,
           loss0, loss1);
    if (len != dim * sizeof(float) || memcmp(p, expect, len) != 0) {
        size_t bad = 0;

        for (size_t j = 0; len == dim * sizeof(float) && j < dim; j++) {
            bad += ((const float *)p)[j] != expect[j];
        }
        fprintf(stderr, "param_server: FAILED: the parameters differ from "
                "the serial run's (%zu bytes, %zu values differ)\n", len,
                bad);
    } else if (!(loss1 < loss0)) {
        fprintf(stderr, "param_server: FAILED: the loss did not go down\n");
    } else {
        printf("PARAM_SERVER OK: %d steps of %d workers equal the serial "
               "run bit for bit\n", steps, workers);
        rc = 0;
    }
    rh_release(final);
    rh_release(final);
out:
    for (int i = 0; i < napplies; i++) {
        rh_release(applies[i]);
    }
    for (int i = 0; i < nshards; i++) {
        rh_release(shards[i]);
    }
    if (ps.hi != 0 || ps.lo != 0) {
        rh_actor_release(ps);
    }
    free(shards);
    free(applies);
    free(local_shards);
    free(expect);
    return rh_finalize() == RH_OK ? rc : 1;
}
