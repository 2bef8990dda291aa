/*
 * A parameter sweep: one task per parameter point, each integrating a
 * damped oscillator, results collected as they come.
 *
 *   rayhpc-run -n 4 --nodes 2 ./examples/param_sweep [NZETA] [NOMEGA] [STEPS]
 *                                                     [WINDOW]
 *
 * x'' + 2 zeta omega x' + omega^2 x = 0 from x = 1, x' = 0, integrated for
 * STEPS steps (semi-implicit Euler) at each of NZETA x NOMEGA points of
 * damping zeta and frequency omega. Each point is a task, spread over the
 * nodes (SPREAD); rank 0 keeps at most WINDOW tasks in flight and hands
 * each result to a Collector actor as soon as rh_wait says it is ready, in
 * whatever order the tasks end: the call carries the result's ref, so the
 * result goes from the task's node to the actor's without passing through
 * rank 0, and rank 0 never waits for a call to send the next. The actor
 * keeps the results by point and reduces them in point order (the
 * fastest-settling point, the mean settling time, the energy left), so its
 * summary does not depend on that order.
 *
 * Every result and the summary are compared with the same integration run
 * serially. Figures are timed over the sweep after a warm-up sweep of the
 * first points.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rayhpc.h>

#include "example.h"

#define DT      1e-3
#define SETTLED 1e-3   /* |x| and |x'|/omega below this: at rest */

typedef struct {
    uint32_t nzeta, nomega;
    uint32_t steps;
} sweep_t;

typedef struct {
    double zeta, omega;
    uint32_t steps;
    uint32_t index;
} point_t;

/* What a point's task returns: 24 bytes, so it lives in the submitter's
 * table and comes back inside the task's answer. */
typedef struct {
    double settle;   /* last time the oscillator was not at rest */
    double x, v;     /* where it ended */
} result_t;

static point_t sweep_point(const sweep_t *s, uint32_t index)
{
    uint32_t iz = index / s->nomega, iw = index % s->nomega;
    point_t p = {
        .zeta = 0.05 + 1.95 * iz / (s->nzeta > 1 ? s->nzeta - 1 : 1),
        .omega = 0.5 + 9.5 * iw / (s->nomega > 1 ? s->nomega - 1 : 1),
        .steps = s->steps,
        .index = index,
    };
    return p;
}

static double magnitude(double x)
{
    return x < 0 ? -x : x;
}

/* The simulation of one point; the tasks and the serial check both call
 * it. */
static result_t oscillate(const point_t *p)
{
    double x = 1.0, v = 0.0, settle = 0.0;
    double k = p->omega * p->omega, c = 2.0 * p->zeta * p->omega;

    for (uint32_t i = 1; i <= p->steps; i++) {
        v += DT * (-c * v - k * x);
        x += DT * v;
        if (magnitude(x) >= SETTLED || magnitude(v) >= SETTLED * p->omega) {
            settle = i * DT;
        }
    }
    return (result_t){ settle, x, v };
}

static rh_status_t oscillate_task(rh_task_ctx_t *ctx)
{
    point_t p;
    size_t len;
    const void *a = rh_task_arg(ctx, 0, &len);
    result_t r;

    if (len != sizeof(p)) {
        return rh_task_fail(ctx, "a point of %zu bytes", len);
    }
    memcpy(&p, a, sizeof(p));
    r = oscillate(&p);
    return rh_task_return(ctx, 0, &r, sizeof(r));
}

/* ---- the collector ------------------------------------------------------ */

typedef struct {
    size_t n, got;
    result_t *res;
    unsigned char *seen;
} collector_t;

typedef struct {
    uint64_t fastest;     /* the point that settles first */
    double mean_settle;   /* over all points, summed in point order */
    double energy;        /* left at the end, summed in point order */
} summary_t;

static int collector_init(collector_t *c, size_t n)
{
    c->n = n;
    c->got = 0;
    c->res = calloc(n, sizeof(*c->res));
    c->seen = calloc(n, 1);
    return c->res != NULL && c->seen != NULL ? 0 : -1;
}

static void collector_fini(collector_t *c)
{
    free(c->res);
    free(c->seen);
}

/* One point's result, in any order; a point given twice counts once. */
static void collector_add(collector_t *c, uint32_t index, const result_t *r)
{
    if (index < c->n && !c->seen[index]) {
        c->res[index] = *r;
        c->seen[index] = 1;
        c->got++;
    }
}

/* Reduces in point order, so the sums do not depend on the order the
 * results came in. 0 once every point is in, -1 before. */
static int collector_summary(const collector_t *c, const sweep_t *s,
                             summary_t *out)
{
    summary_t sm = { 0, 0.0, 0.0 };

    if (c->got != c->n) {
        return -1;
    }
    for (size_t i = 0; i < c->n; i++) {
        point_t p = sweep_point(s, (uint32_t)i);
        const result_t *r = &c->res[i];

        if (r->settle < c->res[sm.fastest].settle) {
            sm.fastest = i;
        }
        sm.mean_settle += r->settle;
        sm.energy += 0.5 * (r->v * r->v + p.omega * p.omega * r->x * r->x);
    }
    sm.mean_settle /= (double)c->n;
    *out = sm;
    return 0;
}

/* ---- the collector as an actor --------------------------------------- */

typedef struct {
    sweep_t  s;
    uint32_t npoints;
} collector_args_t;

typedef struct {
    sweep_t     s;
    collector_t c;
} collector_state_t;

static rh_status_t collector_new(rh_task_ctx_t *ctx, void **state)
{
    collector_args_t a;
    size_t len;
    const void *p = rh_task_arg(ctx, 0, &len);
    collector_state_t *cs;

    if (len != sizeof(a)) {
        return rh_task_fail(ctx, "collector arguments of %zu bytes", len);
    }
    memcpy(&a, p, sizeof(a));
    cs = calloc(1, sizeof(*cs));
    if (cs == NULL || collector_init(&cs->c, a.npoints) != 0) {
        if (cs != NULL) {
            collector_fini(&cs->c);
        }
        free(cs);
        return rh_task_fail(ctx, "no memory for %u results", a.npoints);
    }
    cs->s = a.s;
    *state = cs;
    return RH_OK;
}

static void collector_free(void *state)
{
    collector_state_t *cs = state;

    collector_fini(&cs->c);
    free(cs);
}

/* add(index, result): one point's result; returns how many are in. */
static rh_status_t collector_add_method(void *state, rh_task_ctx_t *ctx)
{
    collector_state_t *cs = state;
    size_t ilen, rlen;
    const void *ip = rh_task_arg(ctx, 0, &ilen);
    const void *rp = rh_task_arg(ctx, 1, &rlen);
    uint32_t index;
    result_t r;
    uint64_t got;

    if (ilen != sizeof(index) || rlen != sizeof(r)) {
        return rh_task_fail(ctx, "add: an index of %zu and a result of %zu "
                            "bytes", ilen, rlen);
    }
    memcpy(&index, ip, sizeof(index));
    memcpy(&r, rp, sizeof(r));
    collector_add(&cs->c, index, &r);
    got = cs->c.got;
    return rh_task_return(ctx, 0, &got, sizeof(got));
}

/* summary(): the summary, then every result in point order; fails while
 * points are missing. */
static rh_status_t collector_summary_method(void *state, rh_task_ctx_t *ctx)
{
    collector_state_t *cs = state;
    summary_t sm;
    rh_status_t st;

    if (collector_summary(&cs->c, &cs->s, &sm) != 0) {
        return rh_task_fail(ctx, "%zu of %zu results are in", cs->c.got,
                            cs->c.n);
    }
    st = rh_task_return(ctx, 0, &sm, sizeof(sm));
    if (st == RH_OK) {
        st = rh_task_return(ctx, 1, cs->c.res, cs->c.n * sizeof(result_t));
    }
    return st;
}

static const rh_method_def_t collector_methods[] = {
    { "add", collector_add_method, 2, 1 },
    { "summary", collector_summary_method, 0, 2 },
};

static const rh_actor_class_t collector_class = {
    .field_mask = RH_ACTOR_CLASS_FIELD_FINI,
    .init = collector_new,
    .init_nargs = 1,
    .methods = collector_methods,
    .num_methods = 2,
    .fini = collector_free,
};

static rh_status_t collector_create(const sweep_t *s, uint32_t npoints,
                                    rh_actor_t *actor)
{
    collector_args_t a = { *s, npoints };
    rh_arg_t arg = rh_arg_bytes(&a, sizeof(a));

    return rh_actor_create("Collector", &arg, 1, NULL, actor);
}

/* ---- the driver --------------------------------------------------------- */

/* Runs points [0, npoints) as tasks, at most window in flight, and hands
 * each result's ref to the collector as soon as it is ready. */
static rh_status_t sweep(const sweep_t *s, uint32_t npoints, size_t window,
                         rh_actor_t collector)
{
    rh_ref_t *refs = calloc(window, sizeof(*refs));
    uint32_t *idx = calloc(window, sizeof(*idx));
    int *ready = calloc(window, sizeof(*ready));
    rh_task_params_t spread = { .field_mask = RH_TASK_PARAM_FIELD_STRATEGY,
                                .strategy = RH_STRATEGY_SPREAD };
    size_t inflight = 0;
    uint32_t next = 0;
    rh_status_t st = RH_OK;

    if (refs == NULL || idx == NULL || ready == NULL) {
        st = RH_ERR_NO_MEMORY;
        goto out;
    }
    while (next < npoints || inflight > 0) {
        while (next < npoints && inflight < window) {
            point_t p = sweep_point(s, next);
            rh_arg_t arg = rh_arg_bytes(&p, sizeof(p));

            st = rh_remote("oscillate", &arg, 1, &spread, &refs[inflight]);
            if (st != RH_OK) {
                goto out;
            }
            idx[inflight++] = next++;
        }
        st = rh_wait(refs, inflight, 1, RH_TIMEOUT_INFINITE, ready);
        if (st != RH_OK) {
            goto out;
        }
        ex_progress("points", (long)(next - inflight), (long)npoints);
        for (size_t i = inflight; i-- > 0;) {
            rh_arg_t args[2];
            rh_ref_t count;

            if (!ready[i]) {
                continue;
            }
            args[0] = rh_arg_bytes(&idx[i], sizeof(idx[i]));
            args[1] = rh_arg_ref(refs[i]);
            st = rh_actor_call(collector, "add", args, 2, NULL, &count);
            if (st != RH_OK) {
                goto out;
            }
            rh_release(count);     /* the count is not waited for */
            rh_release(refs[i]);   /* the call keeps the result alive */
            refs[i] = refs[--inflight];
            idx[i] = idx[inflight];
        }
    }
out:
    ex_progress_end();
    for (size_t i = 0; i < inflight; i++) {
        rh_release(refs[i]);
    }
    free(refs);
    free(idx);
    free(ready);
    return st;
}

/* Every result and the summary, from the collector (calls run in order:
 * this one after every add). */
static rh_status_t collect(rh_actor_t collector, uint32_t npoints,
                           summary_t *sm, result_t *res)
{
    rh_ref_t out[2];
    const void *p[2];
    size_t len[2];
    rh_status_t st = rh_actor_call(collector, "summary", NULL, 0, NULL, out);

    if (st != RH_OK) {
        return st;
    }
    st = rh_get_many(out, 2, p, len, RH_TIMEOUT_INFINITE);
    if (st == RH_OK) {
        if (len[0] == sizeof(*sm) &&
            len[1] == (size_t)npoints * sizeof(*res)) {
            memcpy(sm, p[0], sizeof(*sm));
            memcpy(res, p[1], len[1]);
        } else {
            st = RH_ERR_MALFORMED;
        }
        rh_release(out[0]);
        rh_release(out[1]);
    }
    rh_release(out[0]);
    rh_release(out[1]);
    return st;
}

int main(int argc, char **argv)
{
    sweep_t s;
    uint32_t npoints, warm;
    size_t window;
    collector_t serial = { 0 };
    rh_actor_t c = { 0, 0 }, w = { 0, 0 };
    result_t *res = NULL;
    summary_t got, want;
    point_t f;
    double t0, t1;
    long wrong = 0;
    int rc = 1;

    if (rh_register("oscillate", oscillate_task, 1, 1) != RH_OK ||
        rh_register_actor("Collector", &collector_class) != RH_OK ||
        rh_init(&argc, &argv, NULL) != RH_OK) {
        fprintf(stderr, "param_sweep: %s\n", rh_last_error());
        return 1;
    }
    if (rh_rank() != 0) {
        return rh_finalize() == RH_OK ? 0 : 1;   /* serve tasks */
    }
    s.nzeta = (uint32_t)ex_arg(argc, argv, 1, 32, 1 << 15);
    s.nomega = (uint32_t)ex_arg(argc, argv, 2, 32, 1 << 15);
    s.steps = (uint32_t)ex_arg(argc, argv, 3, 20000, 1 << 30);
    window = (size_t)ex_arg(argc, argv, 4, 256, 1 << 20);
    if (s.nzeta == 0 || s.nomega == 0 || s.steps == 0 || window == 0) {
        goto out;
    }
    npoints = s.nzeta * s.nomega;
    warm = npoints < 64 ? npoints : 64;
    res = calloc(npoints, sizeof(*res));
    if (res == NULL) {
        fprintf(stderr, "param_sweep: out of memory\n");
        goto out;
    }
    if (collector_create(&s, warm, &w) != RH_OK ||
        sweep(&s, warm, window, w) != RH_OK ||
        collector_create(&s, npoints, &c) != RH_OK ||
        rh_actor_ready(c, RH_TIMEOUT_INFINITE, NULL) != RH_OK) {
        goto err_rh;
    }
    t0 = ex_now();
    if (sweep(&s, npoints, window, c) != RH_OK ||
        collect(c, npoints, &got, res) != RH_OK) {
        goto err_rh;
    }
    t1 = ex_now();

    /* The serial check: every point again, here, into a collector of its
     * own, and the same summary of it. */
    if (collector_init(&serial, npoints) != 0) {
        fprintf(stderr, "param_sweep: out of memory\n");
        goto out;
    }
    for (uint32_t i = 0; i < npoints; i++) {
        point_t p = sweep_point(&s, i);
        result_t r = oscillate(&p);

        collector_add(&serial, i, &r);
        wrong += memcmp(&r, &res[i], sizeof(r)) != 0;
    }
    collector_summary(&serial, &s, &want);
    ex_note_oversubscribed("param_sweep");
    printf("param_sweep: %u points (%u x %u), %u steps each, on %d node(s) "
           "of %d rank(s), %zu tasks in flight, collected by an actor: "
           "%.3f s, %.0f tasks/s, "
           "%.1f M steps/s; %zu bytes of results back\n", npoints, s.nzeta,
           s.nomega, s.steps, rh_num_nodes(), rh_size(), window, t1 - t0,
           npoints / (t1 - t0), (double)npoints * s.steps / (t1 - t0) / 1e6,
           (size_t)npoints * sizeof(result_t));
    f = sweep_point(&s, got.fastest);
    printf("param_sweep: fastest to rest: zeta %.3f omega %.3f (%.3f s); "
           "mean %.3f s; energy left %.3e\n", f.zeta, f.omega,
           res[got.fastest].settle, got.mean_settle, got.energy);
    if (wrong == 0 && memcmp(&got, &want, sizeof(got)) == 0) {
        printf("PARAM_SWEEP OK: %u results and their summary equal the "
               "serial sweep\n", npoints);
        rc = 0;
    } else {
        printf("PARAM_SWEEP WRONG: %ld of %u results differ from the serial "
               "sweep, summary %s\n", wrong, npoints,
               memcmp(&got, &want, sizeof(got)) == 0 ? "equal" : "differs");
    }
    goto out;

err_rh:
    fprintf(stderr, "param_sweep: %s\n", rh_last_error()[0] != '\0' ?
            rh_last_error() : "out of memory");
out:
    if (c.hi != 0 || c.lo != 0) {
        rh_actor_release(c);
    }
    if (w.hi != 0 || w.lo != 0) {
        rh_actor_release(w);
    }
    collector_fini(&serial);
    free(res);
    if (rh_finalize() != RH_OK) {
        rc = 1;
    }
    return rc;
}
