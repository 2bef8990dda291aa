/*
 * A 2-D heat stencil (Jacobi) with a task per tile per step.
 *
 *   rayhpc-run -n 4 --nodes 2 ./examples/heat2d [N] [TILE] [STEPS] [WARMUP]
 *
 * An N x N plate, its top edge held at 1 and the other edges at 0, split
 * into (N/TILE)^2 tiles. Bands of tile rows belong to the nodes in turn
 * (NODE_AFFINITY): every step, each tile's task runs on its tile's node,
 * reads the tile it made the step before from that node's store in place,
 * and its four neighbours' edges, which come as ref arguments: an edge made
 * on another node travels inside the task's message while it is smaller
 * than RAYHPC_INLINE_MAX (64 KiB) and is pulled zero copy, node store to
 * node store, when larger (RAYHPC_INLINE_MAX=0 pulls every one); one made
 * on the same node is read in place. The
 * task returns its new tile and its four edges as five objects. Rank 0
 * submits the whole graph and waits only for the last step.
 *
 * The result is compared, bit for bit, with the same stencil run serially:
 * both call heat_row(), so every point is computed with the same operations
 * in the same order. Figures are timed over STEPS steps after WARMUP steps
 * (connection set-up and first touches left out).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rayhpc.h>

#include "example.h"

#define ALPHA 0.2   /* diffusion number; stable below 0.25 */

enum { EDGE_N, EDGE_S, EDGE_W, EDGE_E };   /* returns 1..4, after the tile */
#define NRET 5

typedef struct {
    uint32_t n, tile;          /* plate and tile side */
    uint32_t ti, tj;           /* this tile's place, in tiles */
} heat_init_arg_t;

/* One row of the Jacobi update: out[j] for j in [0, n) from the row (mid),
 * the rows above and below it, and the values left of mid[0] and right of
 * mid[n-1]. The serial check and the tiles' tasks both call this one
 * function (never inlined, so one compiled loop serves both), which keeps
 * the check bit-exact. */
static void __attribute__((noinline))
heat_row(double *out, const double *up, const double *mid, const double *down,
         double left, double right, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        double w = j > 0 ? mid[j - 1] : left;
        double e = j + 1 < n ? mid[j + 1] : right;

        out[j] = mid[j] + ALPHA * ((up[j] + down[j]) + (w + e) - 4.0 * mid[j]);
    }
}

/* The plate's starting temperature at (i, j): a pattern with no symmetry,
 * so that a tile placed or stitched wrong shows. */
static double heat_start(uint32_t i, uint32_t j)
{
    return (double)((i * 7u + j * 13u) % 17u) / 16.0;
}

/* Returns the tile's four edges (rows top and bottom, columns left and
 * right) as returns 1..4, straight from the tile. */
static rh_status_t return_edges(rh_task_ctx_t *ctx, const double *t,
                                size_t side)
{
    double *e[4];
    rh_status_t st;

    for (int k = 0; k < 4; k++) {
        st = rh_task_return_alloc(ctx, 1 + k, side * sizeof(double),
                                  (void **)&e[k]);
        if (st != RH_OK) {
            return st;
        }
    }
    memcpy(e[EDGE_N], t, side * sizeof(double));
    memcpy(e[EDGE_S], t + (side - 1) * side, side * sizeof(double));
    for (size_t r = 0; r < side; r++) {
        e[EDGE_W][r] = t[r * side];
        e[EDGE_E][r] = t[r * side + side - 1];
    }
    return RH_OK;
}

/* The tile at step 0, made on its node. */
static rh_status_t heat_init(rh_task_ctx_t *ctx)
{
    heat_init_arg_t a;
    size_t side;
    double *t;
    rh_status_t st;

    memcpy(&a, rh_task_arg(ctx, 0, NULL), sizeof(a));
    side = a.tile;
    st = rh_task_return_alloc(ctx, 0, side * side * sizeof(double),
                              (void **)&t);
    if (st != RH_OK) {
        return st;
    }
    for (size_t r = 0; r < side; r++) {
        for (size_t c = 0; c < side; c++) {
            t[r * side + c] = heat_start(a.ti * a.tile + (uint32_t)r,
                                         a.tj * a.tile + (uint32_t)c);
        }
    }
    return return_edges(ctx, t, side);
}

/* One step of one tile: args tile, then the rows above and below it and
 * the columns left and right of it (a neighbour's edge, or the plate's
 * boundary as bytes). */
static rh_status_t heat_step(rh_task_ctx_t *ctx)
{
    size_t len, hl, side;
    const double *t = rh_task_arg(ctx, 0, &len), *h[4];
    double *out;
    rh_status_t st;

    h[0] = rh_task_arg(ctx, 1, &hl);
    side = hl / sizeof(double);
    if (len != side * side * sizeof(double)) {
        return rh_task_fail(ctx, "a tile of %zu bytes for halos of %zu", len,
                            hl);
    }
    for (int k = 1; k < 4; k++) {
        h[k] = rh_task_arg(ctx, 1 + k, &len);
        if (len != hl) {
            return rh_task_fail(ctx, "halo %d has %zu bytes, not %zu", k, len,
                                hl);
        }
    }
    len = side * side * sizeof(double);
    st = rh_task_return_alloc(ctx, 0, len, (void **)&out);
    if (st != RH_OK) {
        return st;
    }
    for (size_t r = 0; r < side; r++) {
        heat_row(out + r * side, r > 0 ? t + (r - 1) * side : h[EDGE_N],
                 t + r * side, r + 1 < side ? t + (r + 1) * side : h[EDGE_S],
                 h[EDGE_W][r], h[EDGE_E][r], side);
    }
    return return_edges(ctx, out, side);
}

/* The same plate, serially: (n+2)^2 points with the boundary as a frame. */
static double *heat_serial(uint32_t n, int steps)
{
    size_t w = (size_t)n + 2;
    double *a = calloc(w * w, sizeof(double));
    double *b = calloc(w * w, sizeof(double));

    if (a == NULL || b == NULL) {
        free(a);
        free(b);
        return NULL;
    }
    for (size_t j = 0; j < w; j++) {
        a[j] = b[j] = 1.0;   /* the hot top edge */
    }
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t j = 0; j < n; j++) {
            a[(i + 1) * w + j + 1] = heat_start(i, j);
        }
    }
    for (int s = 0; s < steps; s++) {
        for (size_t i = 1; i <= n; i++) {
            heat_row(b + i * w + 1, a + (i - 1) * w + 1, a + i * w + 1,
                     a + (i + 1) * w + 1, a[i * w], a[i * w + n + 1], n);
        }
        double *x = a;
        a = b;
        b = x;
    }
    free(b);
    return a;
}

typedef struct {
    uint32_t n, tile, nt;   /* plate side, tile side, tiles per side */
    int nodes;
    rh_ref_t *cur;          /* NRET refs per tile, row-major tiles */
    double *hot, *cold;     /* the boundary as tile-long rows */
} heat_t;

static int tile_node(const heat_t *h, uint32_t ti)
{
    return (int)((uint64_t)ti * (uint64_t)h->nodes / h->nt);
}

/* Return k (0: the tile, 1 + EDGE_*: an edge) of tile (ti, tj) of the
 * current step. */
static rh_ref_t tile_ref(const heat_t *h, uint32_t ti, uint32_t tj, int k)
{
    return h->cur[((size_t)ti * h->nt + tj) * NRET + (size_t)k];
}

static rh_task_params_t on_node(int node)
{
    rh_task_params_t p = { .field_mask = RH_TASK_PARAM_FIELD_STRATEGY,
                           .strategy = RH_STRATEGY_NODE_AFFINITY,
                           .node = node };
    return p;
}

static rh_status_t heat_start_tiles(heat_t *h)
{
    for (uint32_t ti = 0; ti < h->nt; ti++) {
        for (uint32_t tj = 0; tj < h->nt; tj++) {
            heat_init_arg_t a = { h->n, h->tile, ti, tj };
            rh_arg_t arg = rh_arg_bytes(&a, sizeof(a));
            rh_task_params_t p = on_node(tile_node(h, ti));
            rh_status_t st = rh_remote("heat_init", &arg, 1, &p,
                                       &h->cur[(ti * h->nt + tj) * NRET]);

            if (st != RH_OK) {
                return st;
            }
        }
    }
    return RH_OK;
}

/* Submits one step of every tile, then lets the previous step go: each
 * task holds what it reads until it has run. */
static rh_status_t heat_submit_step(heat_t *h, rh_ref_t *next)
{
    uint32_t nt = h->nt;
    size_t edge = h->tile * sizeof(double);

    for (uint32_t ti = 0; ti < nt; ti++) {
        for (uint32_t tj = 0; tj < nt; tj++) {
            rh_arg_t args[5];
            rh_task_params_t p = on_node(tile_node(h, ti));
            rh_status_t st;

            args[0] = rh_arg_ref(tile_ref(h, ti, tj, 0));
            args[1] = ti > 0 ? rh_arg_ref(tile_ref(h, ti - 1, tj, 1 + EDGE_S))
                             : rh_arg_bytes(h->hot, edge);
            args[2] = ti + 1 < nt
                          ? rh_arg_ref(tile_ref(h, ti + 1, tj, 1 + EDGE_N))
                          : rh_arg_bytes(h->cold, edge);
            args[3] = tj > 0 ? rh_arg_ref(tile_ref(h, ti, tj - 1, 1 + EDGE_E))
                             : rh_arg_bytes(h->cold, edge);
            args[4] = tj + 1 < nt
                          ? rh_arg_ref(tile_ref(h, ti, tj + 1, 1 + EDGE_W))
                          : rh_arg_bytes(h->cold, edge);
            st = rh_remote("heat_step", args, 5, &p,
                           &next[(ti * nt + tj) * NRET]);
            if (st != RH_OK) {
                return st;
            }
        }
    }
    for (size_t i = 0; i < (size_t)nt * nt * NRET; i++) {
        rh_release(h->cur[i]);
    }
    memcpy(h->cur, next, (size_t)nt * nt * NRET * sizeof(rh_ref_t));
    return RH_OK;
}

/* Waits until every tile of the current step is done. */
static rh_status_t heat_wait_step(heat_t *h, rh_ref_t *tiles, int *ready)
{
    size_t n = (size_t)h->nt * h->nt;

    for (size_t i = 0; i < n; i++) {
        tiles[i] = h->cur[i * NRET];
    }
    return rh_wait(tiles, n, n, RH_TIMEOUT_INFINITE, ready);
}

/* Compares the tiles with the serial plate; returns how many points
 * differ (bit for bit), or -1 when a tile cannot be read. */
static long heat_compare(heat_t *h, const double *plate)
{
    size_t w = (size_t)h->n + 2, side = h->tile;
    long wrong = 0;

    for (uint32_t ti = 0; ti < h->nt; ti++) {
        for (uint32_t tj = 0; tj < h->nt; tj++) {
            rh_ref_t r = tile_ref(h, ti, tj, 0);
            const void *p;
            size_t len;

            if (rh_get(r, &p, &len, RH_TIMEOUT_INFINITE) != RH_OK ||
                len != side * side * sizeof(double)) {
                return -1;
            }
            for (size_t i = 0; i < side; i++) {
                const double *row = plate + (ti * side + i + 1) * w +
                                    tj * side + 1;

                if (memcmp((const double *)p + i * side, row,
                           side * sizeof(double)) != 0) {
                    wrong++;
                }
            }
            rh_release(r);
        }
    }
    return wrong;
}

int main(int argc, char **argv)
{
    heat_t h = { 0 };
    uint32_t n, tile;
    int steps, warmup, *ready = NULL;
    rh_ref_t *next = NULL, *tiles = NULL;
    double t0, t1, *plate = NULL, cross_bytes;
    long wrong;
    size_t ntiles;
    int rc = 1;

    if (rh_register("heat_init", heat_init, 1, NRET) != RH_OK ||
        rh_register("heat_step", heat_step, 5, NRET) != RH_OK ||
        rh_init(&argc, &argv, NULL) != RH_OK) {
        fprintf(stderr, "heat2d: %s\n", rh_last_error());
        return 1;
    }
    if (rh_rank() != 0) {
        return rh_finalize() == RH_OK ? 0 : 1;   /* serve tasks */
    }
    n = (uint32_t)ex_arg(argc, argv, 1, 256, 1 << 16);
    tile = (uint32_t)ex_arg(argc, argv, 2, 64, 1 << 16);
    steps = (int)ex_arg(argc, argv, 3, 40, 1 << 24);
    warmup = (int)ex_arg(argc, argv, 4, 10, 1 << 24);
    if (n == 0 || tile == 0 || steps == 0 || warmup == 0) {
        goto out;
    }
    if (tile < 2 || n % tile != 0) {
        fprintf(stderr, "heat2d: N must be a multiple of TILE, and TILE at "
                "least 2\n");
        goto out;
    }
    h.n = n;
    h.tile = tile;
    h.nt = n / tile;
    h.nodes = rh_num_nodes() < (int)h.nt ? rh_num_nodes() : (int)h.nt;
    ntiles = (size_t)h.nt * h.nt;
    h.cur = calloc(ntiles * NRET, sizeof(rh_ref_t));
    next = calloc(ntiles * NRET, sizeof(rh_ref_t));
    tiles = calloc(ntiles, sizeof(rh_ref_t));
    ready = calloc(ntiles, sizeof(int));
    h.hot = malloc(tile * sizeof(double));
    h.cold = calloc(tile, sizeof(double));
    if (!h.cur || !next || !tiles || !ready || !h.hot || !h.cold) {
        fprintf(stderr, "heat2d: out of memory\n");
        goto out;
    }
    for (uint32_t j = 0; j < tile; j++) {
        h.hot[j] = 1.0;
    }

    if (heat_start_tiles(&h) != RH_OK) {
        goto err_rh;
    }
    for (int s = 0; s < warmup; s++) {
        if (heat_submit_step(&h, next) != RH_OK) {
            goto err_rh;
        }
    }
    if (heat_wait_step(&h, tiles, ready) != RH_OK) {
        goto err_rh;
    }
    t0 = ex_now();
    for (int s = 0; s < steps; s++) {
        if (heat_submit_step(&h, next) != RH_OK) {
            goto err_rh;
        }
    }
    if (heat_wait_step(&h, tiles, ready) != RH_OK) {
        goto err_rh;
    }
    t1 = ex_now();

    plate = heat_serial(n, warmup + steps);
    if (plate == NULL) {
        fprintf(stderr, "heat2d: out of memory\n");
        goto out;
    }
    wrong = heat_compare(&h, plate);
    if (wrong < 0) {
        goto err_rh;
    }
    /* Edges that cross a node boundary each step: two per pair of tiles
     * above each other on different nodes. */
    cross_bytes = 0;
    for (uint32_t ti = 0; ti + 1 < h.nt; ti++) {
        if (tile_node(&h, ti) != tile_node(&h, ti + 1)) {
            cross_bytes += 2.0 * h.nt * tile * sizeof(double);
        }
    }
    cross_bytes *= steps;
    ex_note_oversubscribed("heat2d");
    printf("heat2d: %ux%u plate, %zu tiles of %ux%u on %d node(s) of %d "
           "rank(s), %d steps after %d warm-up steps: %.3f s, %.1f steps/s, "
           "%.0f tasks/s, %.1f Mpoints/s, tiles read and written at "
           "%.2f GiB/s; halos across nodes: %.0f bytes, %.2f MiB/s\n", n, n, ntiles,
           tile, tile, h.nodes, rh_size(), steps, warmup, t1 - t0,
           steps / (t1 - t0), (double)ntiles * steps / (t1 - t0),
           (double)n * n * steps / (t1 - t0) / 1e6,
           2.0 * sizeof(double) * n * n * steps / (t1 - t0) / EX_GIB,
           cross_bytes, cross_bytes / (t1 - t0) / (1024.0 * 1024.0));
    if (wrong == 0) {
        printf("HEAT2D OK: the tiles after %d steps equal the serial "
               "stencil bit for bit\n", warmup + steps);
        rc = 0;
    } else {
        printf("HEAT2D WRONG: %ld tile rows differ from the serial "
               "stencil\n", wrong);
    }
    for (size_t i = 0; i < ntiles * NRET; i++) {
        rh_release(h.cur[i]);
    }
    goto out;

err_rh:
    fprintf(stderr, "heat2d: %s\n", rh_last_error());
out:
    free(plate);
    free(h.cur);
    free(next);
    free(tiles);
    free(ready);
    free(h.hot);
    free(h.cold);
    if (rh_finalize() != RH_OK) {
        rc = 1;
    }
    return rc;
}
