/*
 * A simulation farm: actors that each hold a simulator's state across many
 * calls, stepped by one driver.
 *
 *   rayhpc-run -n 4 --nodes 2 ./examples/sim_farm [ACTORS] [ROUNDS] [CELLS]
 *
 * Each Rod actor holds a 1-D heat-diffusion problem on a ring of CELLS
 * cells (explicit scheme), its initial temperatures drawn from its own
 * seed; the actors are spread over the nodes. Rank 0 submits every round's
 * "step" call to every actor before it waits for any (each call advances
 * its rod STEPS_PER_CALL time steps and returns a summary: time step,
 * heat, minimum, maximum, a checksum of the state), then collects the
 * summaries with rh_wait as they come, in whatever order the actors finish
 * them. An actor runs its calls one at a time in the order they were made,
 * so round r's summary is the state after r + 1 calls.
 *
 * Rank 0 runs the same rods serially and prints "SIM_FARM OK" when every
 * summary of every round equals the serial one exactly.
 */
#define _POSIX_C_SOURCE 200809L   /* clock_gettime under -std=c11 too */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rayhpc.h>

#include "example.h"

#define STEPS_PER_CALL 50
#define SIM_ALPHA      0.25   /* stable: alpha <= 0.5 */

/* ---- the simulator, shared by the actors and the serial run ------------- */

typedef struct rod {
    uint64_t step;
    size_t   cells;
    double  *u;
    double  *tmp;
} rod_t;

typedef struct summary {
    uint64_t step;
    double   heat;
    double   min;
    double   max;
    double   checksum;   /* sum of u[i] * (i + 1): sees where the heat is */
} summary_t;

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static int rod_init(rod_t *r, uint64_t seed, size_t cells)
{
    r->step = 0;
    r->cells = cells;
    r->u = malloc(cells * sizeof(double));
    r->tmp = malloc(cells * sizeof(double));
    if (r->u == NULL || r->tmp == NULL) {
        free(r->u);
        free(r->tmp);
        return -1;
    }
    /* A few hot spots on a cool ring, where the seed says. */
    for (size_t i = 0; i < cells; i++) {
        r->u[i] = (double)(mix(seed * 0x10000000ull + i) >> 11) * 0x1.0p-53;
        if (mix(seed ^ (i * 0x51ull)) % 64 == 0) {
            r->u[i] += 100.0;
        }
    }
    return 0;
}

static void rod_free(rod_t *r)
{
    free(r->u);
    free(r->tmp);
}

/* Never inlined: the actors and the serial run execute the same code, so
 * their results match to the bit. */
__attribute__((noinline))
static void rod_advance(rod_t *r, int steps)
{
    size_t n = r->cells;

    for (int s = 0; s < steps; s++) {
        for (size_t i = 0; i < n; i++) {
            double l = r->u[i == 0 ? n - 1 : i - 1];
            double c = r->u[i];
            double rt = r->u[i + 1 == n ? 0 : i + 1];

            r->tmp[i] = c + SIM_ALPHA * (l - 2.0 * c + rt);
        }
        double *t = r->u;

        r->u = r->tmp;
        r->tmp = t;
        r->step++;
    }
}

__attribute__((noinline))
static summary_t rod_summary(const rod_t *r)
{
    summary_t s = { r->step, 0, r->u[0], r->u[0], 0 };

    for (size_t i = 0; i < r->cells; i++) {
        double v = r->u[i];

        s.heat += v;
        s.checksum += v * (double)(i + 1);
        s.min = v < s.min ? v : s.min;
        s.max = v > s.max ? v : s.max;
    }
    return s;
}

/* ---- the Rod actor ------------------------------------------------------- */

typedef struct rod_arg {
    uint64_t seed;
    uint64_t cells;
} rod_arg_t;

static rh_status_t rod_ctor(rh_task_ctx_t *ctx, void **state)
{
    rod_arg_t a;
    size_t len;
    const void *p = rh_task_arg(ctx, 0, &len);
    rod_t *r;

    if (len != sizeof(a)) {
        return rh_task_fail(ctx, "Rod: %zu argument bytes, not %zu", len,
                            sizeof(a));
    }
    memcpy(&a, p, sizeof(a));
    if (a.cells < 3) {
        return rh_task_fail(ctx, "Rod: a ring needs 3 cells or more, not %"
                            PRIu64, a.cells);
    }
    r = malloc(sizeof(*r));
    if (r == NULL || rod_init(r, a.seed, a.cells) != 0) {
        free(r);
        return rh_task_fail(ctx, "Rod: no memory for %" PRIu64 " cells",
                            a.cells);
    }
    *state = r;
    return RH_OK;
}

static void rod_dtor(void *state)
{
    rod_free(state);
    free(state);
}

/* Argument: the time steps to advance (int32). Returns the summary. */
static rh_status_t rod_step(void *state, rh_task_ctx_t *ctx)
{
    rod_t *r = state;
    size_t len;
    const void *p = rh_task_arg(ctx, 0, &len);
    int32_t steps;
    summary_t s;

    if (len != sizeof(steps)) {
        return rh_task_fail(ctx, "step: %zu argument bytes, not 4", len);
    }
    memcpy(&steps, p, sizeof(steps));
    rod_advance(r, steps);
    s = rod_summary(r);
    return rh_task_return(ctx, 0, &s, sizeof(s));
}

/* The node the actor runs on (int32). */
static rh_status_t rod_node(void *state, rh_task_ctx_t *ctx)
{
    int32_t node = rh_node_id();

    (void)state;
    return rh_task_return(ctx, 0, &node, sizeof(node));
}

static const rh_method_def_t rod_methods[] = {
    { "step", rod_step, 1, 1 },
    { "node", rod_node, 0, 1 },
};

/* ---- the driver ---------------------------------------------------------- */

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int fail(const char *what)
{
    fprintf(stderr, "sim_farm: %s: %s\n", what, rh_last_error());
    return 1;
}

static int same(const summary_t *a, const summary_t *b)
{
    return memcmp(a, b, sizeof(*a)) == 0;
}

/* Collects the calls' summaries as they complete (rh_wait), checks each
 * against expect[call], and releases the refs. Returns the mismatches, or
 * -1 on an error. */
static long collect(rh_ref_t *refs, const summary_t *expect, long n)
{
    long *slot = malloc((size_t)n * sizeof(*slot));
    rh_ref_t *pending = malloc((size_t)n * sizeof(*pending));
    int *ready = malloc((size_t)n * sizeof(*ready));
    long left = n, bad = 0, waits = 0;

    for (long i = 0; i < n; i++) {
        slot[i] = i;
        pending[i] = refs[i];
    }
    while (left > 0) {
        long kept = 0;

        if (rh_wait(pending, (size_t)left, 1, RH_TIMEOUT_INFINITE, ready) !=
            RH_OK) {
            bad = -1;
            fail("rh_wait");
            break;
        }
        waits++;
        ex_progress("calls", n - left, n);
        for (long i = 0; i < left; i++) {
            const void *p;
            size_t len;

            if (!ready[i]) {
                pending[kept] = pending[i];
                slot[kept++] = slot[i];
                continue;
            }
            if (rh_get(pending[i], &p, &len, 0) != RH_OK) {
                fail("step");
                bad = -1;
                continue;
            }
            if (bad >= 0 && (len != sizeof(summary_t) ||
                             !same(p, &expect[slot[i]]))) {
                bad++;
            }
            rh_release(pending[i]);
            rh_release(pending[i]);
        }
        left = kept;
        if (bad < 0) {
            break;
        }
    }
    ex_progress_end();
    for (long i = 0; i < left; i++) {
        rh_release(pending[i]);
    }
    printf("sim_farm: %ld summaries collected in %ld waits\n", n - left,
           waits);
    free(slot);
    free(pending);
    free(ready);
    return bad;
}

int main(int argc, char **argv)
{
    rh_actor_class_t cls = {
        .field_mask = RH_ACTOR_CLASS_FIELD_FINI,
        .init = rod_ctor, .init_nargs = 1,
        .methods = rod_methods,
        .num_methods = (int)(sizeof(rod_methods) / sizeof(rod_methods[0])),
        .fini = rod_dtor,
    };
    int nactors, rounds, made = 0, rc = 1;
    size_t cells;
    rh_actor_t *rods = NULL;
    rh_ref_t *refs = NULL;
    summary_t *expect = NULL;
    long ncalls = 0, bad;
    double t0, t;

    if (rh_register_actor("Rod", &cls) != RH_OK ||
        rh_init(&argc, &argv, NULL) != RH_OK) {
        return fail("start");
    }
    nactors = argc > 1 ? atoi(argv[1]) : 8;
    rounds = argc > 2 ? atoi(argv[2]) : 100;
    cells = argc > 3 ? strtoull(argv[3], NULL, 0) : 4096;
    if (rh_rank() != 0) {
        return rh_finalize() == RH_OK ? 0 : 1;
    }
    if (nactors < 1 || rounds < 1 || cells < 3) {
        fprintf(stderr, "sim_farm: ACTORS and ROUNDS must be positive, "
                "CELLS at least 3\n");
        goto out;
    }
    rods = calloc((size_t)nactors, sizeof(*rods));
    refs = calloc((size_t)nactors * (size_t)rounds, sizeof(*refs));
    expect = calloc((size_t)nactors * (size_t)rounds, sizeof(*expect));

    t0 = now();
    for (; made < nactors; made++) {
        rod_arg_t a = { 1000 + (uint64_t)made, cells };
        rh_arg_t arg = rh_arg_bytes(&a, sizeof(a));
        rh_actor_params_t p;

        memset(&p, 0, sizeof(p));
        p.field_mask = RH_ACTOR_PARAM_FIELD_STRATEGY;
        p.strategy = RH_STRATEGY_SPREAD;
        if (rh_actor_create("Rod", &arg, 1, &p, &rods[made]) != RH_OK) {
            fail("rh_actor_create");
            goto out;
        }
    }
    /* Every call of every round, before waiting for any: call r * nactors
     * + a is actor a's round r. Calls made before a constructor ran wait
     * for it. */
    for (int r = 0; r < rounds; r++) {
        for (int a = 0; a < nactors; a++) {
            int32_t steps = STEPS_PER_CALL;
            rh_arg_t arg = rh_arg_bytes(&steps, sizeof(steps));

            if (rh_actor_call(rods[a], "step", &arg, 1, NULL,
                              &refs[ncalls]) != RH_OK) {
                fail("step");
                goto out;
            }
            ncalls++;
        }
    }

    /* The serial farm, while the actors work. */
    for (int a = 0; a < nactors; a++) {
        rod_t r;

        if (rod_init(&r, 1000 + (uint64_t)a, cells) != 0) {
            fprintf(stderr, "sim_farm: no memory for the serial run\n");
            goto out;
        }
        for (int k = 0; k < rounds; k++) {
            rod_advance(&r, STEPS_PER_CALL);
            expect[(long)k * nactors + a] = rod_summary(&r);
        }
        rod_free(&r);
    }

    bad = collect(refs, expect, ncalls);
    ncalls = 0;   /* collect released them */
    t = now() - t0;
    if (bad < 0) {
        goto out;
    }
    {
        int nodes_used = 0, *seen = calloc((size_t)rh_num_nodes(),
                                           sizeof(int));

        for (int a = 0; a < nactors; a++) {
            const void *p;
            size_t len;
            int32_t node;
            rh_ref_t where;

            if (rh_actor_call(rods[a], "node", NULL, 0, NULL, &where) !=
                RH_OK || rh_get(where, &p, &len, RH_TIMEOUT_INFINITE) !=
                RH_OK) {
                fail("node");
                free(seen);
                goto out;
            }
            memcpy(&node, p, sizeof(node));
            rh_release(where);
            rh_release(where);
            if (node >= 0 && node < rh_num_nodes()) {
                nodes_used += seen[node]++ == 0;
            }
        }
        free(seen);
        printf("sim_farm: %d rods of %zu cells on %d of %d nodes, %d rounds "
               "of %d steps: %.0f calls/s, %.3g cell updates/s (serial run "
               "included), %.3f s\n", nactors, cells, nodes_used,
               rh_num_nodes(), rounds, STEPS_PER_CALL,
               (double)nactors * rounds / t,
               (double)nactors * rounds * STEPS_PER_CALL * (double)cells / t,
               t);
    }
    if (bad > 0) {
        fprintf(stderr, "sim_farm: FAILED: %ld of %ld summaries differ from "
                "the serial run's\n", bad, (long)nactors * rounds);
    } else {
        printf("SIM_FARM OK: %d rods x %d rounds equal the serial run\n",
               nactors, rounds);
        rc = 0;
    }
out:
    for (long i = 0; i < ncalls; i++) {
        rh_release(refs[i]);
    }
    for (int a = 0; a < made; a++) {
        rh_actor_release(rods[a]);   /* the last hold: the destructor runs */
    }
    free(rods);
    free(refs);
    free(expect);
    return rh_finalize() == RH_OK ? rc : 1;
}
