/*
 * The tiled plate that heat2d.c (on CPUs) and heat_gpu.cu (on GPUs) share:
 * the starting temperatures, the tile's task at step 0, the task graph of
 * one step and the bit-for-bit check against a serial plate. Only the step
 * itself (heat_step) and the serial stencil differ between the two; this
 * header compiles as C and as CUDA C++.
 *
 * An N x N plate, its top edge held at 1 and the other edges at 0, split
 * into (N/TILE)^2 tiles; bands of tile rows belong to the nodes in turn
 * (NODE_AFFINITY). A tile's task returns the new tile and its four edges
 * as five objects; the neighbours' steps read the edges as ref arguments.
 */
#ifndef RH_EXAMPLE_HEAT_TILES_H
#define RH_EXAMPLE_HEAT_TILES_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <rayhpc.h>

#define ALPHA 0.2   /* diffusion number; stable below 0.25 */

enum { EDGE_N, EDGE_S, EDGE_W, EDGE_E };   /* returns 1..4, after the tile */
#define NRET 5

typedef struct {
    uint32_t n, tile;          /* plate and tile side */
    uint32_t ti, tj;           /* this tile's place, in tiles */
} heat_init_arg_t;

typedef struct {
    uint32_t n, tile, nt;      /* plate side, tile side, tiles per side */
    int nodes;
    rh_ref_t *cur;             /* NRET refs per tile, row-major tiles */
    double *hot, *cold;        /* the boundary as tile-long rows */
    const char *resources;     /* each step's resources (NULL: one CPU) */
} heat_t;

/* The plate's starting temperature at (i, j): a pattern with no symmetry,
 * so that a tile placed or stitched wrong shows. */
static inline double heat_start(uint32_t i, uint32_t j)
{
    return (double)((i * 7u + j * 13u) % 17u) / 16.0;
}

/* Returns the tile's four edges (rows top and bottom, columns left and
 * right) as returns 1..4, straight from the tile. */
static inline rh_status_t return_edges(rh_task_ctx_t *ctx, const double *t,
                                       size_t side)
{
    double *e[4];

    for (int k = 0; k < 4; k++) {
        rh_status_t st = rh_task_return_alloc(ctx, 1 + k,
                                              side * sizeof(double),
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
static inline rh_status_t heat_init(rh_task_ctx_t *ctx)
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

static inline int tile_node(const heat_t *h, uint32_t ti)
{
    return (int)((uint64_t)ti * (uint64_t)h->nodes / h->nt);
}

/* Return k (0: the tile, 1 + EDGE_*: an edge) of tile (ti, tj) of the
 * current step. */
static inline rh_ref_t tile_ref(const heat_t *h, uint32_t ti, uint32_t tj,
                                int k)
{
    return h->cur[((size_t)ti * h->nt + tj) * NRET + (size_t)k];
}

/* On the tile's node, with these resources (NULL: the default CPU). */
static inline rh_task_params_t on_node(int node, const char *resources)
{
    rh_task_params_t p;

    memset(&p, 0, sizeof(p));
    p.field_mask = RH_TASK_PARAM_FIELD_STRATEGY |
                   (resources != NULL ? RH_TASK_PARAM_FIELD_RESOURCES : 0);
    p.strategy = RH_STRATEGY_NODE_AFFINITY;
    p.node = node;
    p.resources = resources;
    return p;
}

/* Every tile's heat_init, on its node. */
static inline rh_status_t heat_start_tiles(heat_t *h)
{
    for (uint32_t ti = 0; ti < h->nt; ti++) {
        for (uint32_t tj = 0; tj < h->nt; tj++) {
            heat_init_arg_t a = { h->n, h->tile, ti, tj };
            rh_arg_t arg = rh_arg_bytes(&a, sizeof(a));
            rh_task_params_t p = on_node(tile_node(h, ti), NULL);
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
static inline rh_status_t heat_submit_step(heat_t *h, rh_ref_t *next)
{
    uint32_t nt = h->nt;
    size_t edge = h->tile * sizeof(double);

    for (uint32_t ti = 0; ti < nt; ti++) {
        for (uint32_t tj = 0; tj < nt; tj++) {
            rh_arg_t args[5];
            rh_task_params_t p = on_node(tile_node(h, ti), h->resources);
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

/* Compares the tiles with the serial plate ((n+2)^2 points, the boundary
 * as a frame); returns how many tile rows differ (bit for bit), or -1 when
 * a tile cannot be read. */
static inline long heat_compare(heat_t *h, const double *plate)
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

                wrong += memcmp((const double *)p + i * side, row,
                                side * sizeof(double)) != 0;
            }
            rh_release(r);
        }
    }
    return wrong;
}

#endif
