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
#include "heat_tiles.h"

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

/* Waits until every tile of the current step is done. */
static rh_status_t heat_wait_step(heat_t *h, rh_ref_t *tiles, int *ready)
{
    size_t n = (size_t)h->nt * h->nt;

    for (size_t i = 0; i < n; i++) {
        tiles[i] = h->cur[i * NRET];
    }
    return rh_wait(tiles, n, n, RH_TIMEOUT_INFINITE, ready);
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
