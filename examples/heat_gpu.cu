/*
 * The 2-D heat stencil of heat2d.c with every tile's step on a GPU.
 *
 *   rayhpc-run -n 2 --nodes 2 ./examples/heat_gpu [N] [TILE] [STEPS]
 *
 * An N x N plate, its top edge held at 1 and the other edges at 0, split
 * into (N/TILE)^2 tiles; bands of tile rows belong to the nodes in turn.
 * Each step of a tile is a task that asks for a quarter of a GPU
 * (resources "GPU=0.25", so four tiles share a device): it runs with its
 * device current, copies its tile and the four halos from the node's
 * store (page-locked: the copies go at the bus's speed) to the device on
 * the worker's stream (rh_task_stream), runs the kernel, and copies the
 * new tile back into its return on the same stream. The runtime waits for
 * the stream before it publishes the return.
 *
 * The result is compared, bit for bit, with the stencil run serially on
 * the CPU: both do the same IEEE operations in the same order (no fused
 * multiply-adds on either side). Without a GPU the program says so in one
 * line and succeeds.
 */
#include <cuda_runtime_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rayhpc.h>

#include "example.h"
#include "heat_tiles.h"

/* One point: the rounding of each operation spelled out, so that the
 * compiler fuses nothing and the CPU's loop below gives the same bits. */
__device__ static double heat_point(double up, double down, double w,
                                    double e, double mid)
{
    double lap = __dsub_rn(__dadd_rn(__dadd_rn(up, down), __dadd_rn(w, e)),
                           __dmul_rn(4.0, mid));

    return __dadd_rn(mid, __dmul_rn(ALPHA, lap));
}

/* in: the tile (side x side) then the halos N, S, W, E (side each). */
__global__ static void heat_kernel(double *out, const double *in,
                                   uint32_t side)
{
    uint32_t c = blockIdx.x * blockDim.x + threadIdx.x;
    uint32_t r = blockIdx.y * blockDim.y + threadIdx.y;
    const double *t = in, *h = in + (size_t)side * side;

    if (r >= side || c >= side) {
        return;
    }
    double mid = t[(size_t)r * side + c];
    double up = r > 0 ? t[(size_t)(r - 1) * side + c] : h[EDGE_N * side + c];
    double down = r + 1 < side ? t[(size_t)(r + 1) * side + c]
                               : h[EDGE_S * side + c];
    double w = c > 0 ? t[(size_t)r * side + c - 1] : h[EDGE_W * side + r];
    double e = c + 1 < side ? t[(size_t)r * side + c + 1]
                            : h[EDGE_E * side + r];

    out[(size_t)r * side + c] = heat_point(up, down, w, e, mid);
}

#define CUDA_TRY(call)                                                     \
    do {                                                                   \
        cudaError_t e_ = (call);                                           \
        if (e_ != cudaSuccess) {                                           \
            err = cudaGetErrorString(e_);                                  \
            goto fail;                                                     \
        }                                                                  \
    } while (0)

/* One step of one tile on the task's GPU. */
static rh_status_t heat_step(rh_task_ctx_t *ctx)
{
    size_t len, hl, side, tile_bytes;
    const double *t = (const double *)rh_task_arg(ctx, 0, &len);
    cudaStream_t stream = (cudaStream_t)rh_task_stream(ctx);
    double *d_in = NULL, *d_out = NULL, *out;
    const char *err = NULL;
    rh_status_t st;

    rh_task_arg(ctx, 1, &hl);
    side = hl / sizeof(double);
    tile_bytes = side * side * sizeof(double);
    if (stream == NULL || len != tile_bytes) {
        return rh_task_fail(ctx, "heat_step: no GPU stream, or a tile of %zu "
                            "bytes for halos of %zu", len, hl);
    }
    st = rh_task_return_alloc(ctx, 0, tile_bytes, (void **)&out);
    if (st != RH_OK) {
        return st;
    }
    CUDA_TRY(cudaMallocAsync((void **)&d_in, tile_bytes + 4 * hl, stream));
    CUDA_TRY(cudaMallocAsync((void **)&d_out, tile_bytes, stream));
    CUDA_TRY(cudaMemcpyAsync(d_in, t, tile_bytes, cudaMemcpyHostToDevice,
                             stream));
    for (int k = 0; k < 4; k++) {
        size_t hk;
        const void *h = rh_task_arg(ctx, 1 + k, &hk);

        if (hk != hl) {
            return rh_task_fail(ctx, "halo %d has %zu bytes, not %zu", k, hk,
                                hl);
        }
        CUDA_TRY(cudaMemcpyAsync((char *)d_in + tile_bytes + k * hl, h, hl,
                                 cudaMemcpyHostToDevice, stream));
    }
    {
        dim3 block(16, 16);
        dim3 grid((unsigned)((side + 15) / 16), (unsigned)((side + 15) / 16));

        heat_kernel<<<grid, block, 0, stream>>>(d_out, d_in, (uint32_t)side);
    }
    CUDA_TRY(cudaGetLastError());
    CUDA_TRY(cudaMemcpyAsync(out, d_out, tile_bytes, cudaMemcpyDeviceToHost,
                             stream));
    CUDA_TRY(cudaFreeAsync(d_in, stream));
    CUDA_TRY(cudaFreeAsync(d_out, stream));
    /* the edges are cut on the CPU from the tile: wait for it here */
    CUDA_TRY(cudaStreamSynchronize(stream));
    return return_edges(ctx, out, side);

fail:
    return rh_task_fail(ctx, "heat_step on GPU %d: %s", rh_task_gpu(ctx),
                        err);
}

/* The same plate, serially on the CPU: (n+2)^2 points with the boundary
 * as a frame, each point as heat_point computes it. */
static double *heat_serial(uint32_t n, int steps)
{
    size_t w = (size_t)n + 2;
    double *a = (double *)calloc(w * w, sizeof(double));
    double *b = (double *)calloc(w * w, sizeof(double));

    if (a == NULL || b == NULL) {
        free(a);
        free(b);
        return NULL;
    }
    for (size_t j = 0; j < w; j++) {
        a[j] = b[j] = 1.0;
    }
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t j = 0; j < n; j++) {
            a[(i + 1) * w + j + 1] = heat_start(i, j);
        }
    }
    for (int s = 0; s < steps; s++) {
        for (size_t i = 1; i <= n; i++) {
            for (size_t j = 1; j <= n; j++) {
                volatile double sum_ud = a[(i - 1) * w + j] + a[(i + 1) * w + j];
                volatile double sum_we = a[i * w + j - 1] + a[i * w + j + 1];
                volatile double m4 = 4.0 * a[i * w + j];
                volatile double lap = (sum_ud + sum_we) - m4;
                volatile double step = ALPHA * lap;

                b[i * w + j] = a[i * w + j] + step;
            }
        }
        double *x = a;
        a = b;
        b = x;
    }
    free(b);
    return a;
}

int main(int argc, char **argv)
{
    heat_t h;
    uint32_t n, tile;
    int steps;
    rh_ref_t *next = NULL;
    double t0, t1, *plate = NULL;
    long wrong;
    int rc = 1;

    memset(&h, 0, sizeof(h));
    if (rh_register("heat_init", heat_init, 1, NRET) != RH_OK ||
        rh_register("heat_step", heat_step, 5, NRET) != RH_OK ||
        rh_init(&argc, &argv, NULL) != RH_OK) {
        fprintf(stderr, "heat_gpu: %s\n", rh_last_error());
        return 1;
    }
    if (rh_rank() != 0) {
        return rh_finalize() == RH_OK ? 0 : 1;   /* serve tasks */
    }
    if (rh_gpu_check() != RH_OK) {
        printf("heat_gpu: skipped: %s\n", rh_last_error());
        return rh_finalize() == RH_OK ? 0 : 1;
    }
    n = (uint32_t)ex_arg(argc, argv, 1, 1024, 1 << 16);
    tile = (uint32_t)ex_arg(argc, argv, 2, 256, 1 << 16);
    steps = (int)ex_arg(argc, argv, 3, 20, 1 << 24);
    if (n == 0 || tile == 0 || steps == 0) {
        goto out;
    }
    if (tile < 2 || n % tile != 0) {
        fprintf(stderr, "heat_gpu: N must be a multiple of TILE, and TILE "
                "at least 2\n");
        goto out;
    }
    h.n = n;
    h.tile = tile;
    h.nt = n / tile;
    h.nodes = rh_num_nodes() < (int)h.nt ? rh_num_nodes() : (int)h.nt;
    h.cur = (rh_ref_t *)calloc((size_t)h.nt * h.nt * NRET, sizeof(rh_ref_t));
    next = (rh_ref_t *)calloc((size_t)h.nt * h.nt * NRET, sizeof(rh_ref_t));
    h.hot = (double *)malloc(tile * sizeof(double));
    h.cold = (double *)calloc(tile, sizeof(double));
    if (!h.cur || !next || !h.hot || !h.cold) {
        fprintf(stderr, "heat_gpu: out of memory\n");
        goto out;
    }
    for (uint32_t j = 0; j < tile; j++) {
        h.hot[j] = 1.0;
    }
    h.resources = "GPU=0.25";   /* four tiles share a device */
    t0 = ex_now();
    if (heat_start_tiles(&h) != RH_OK) {
        goto err_rh;
    }
    for (int s = 0; s < steps; s++) {
        if (heat_submit_step(&h, next) != RH_OK) {
            goto err_rh;
        }
    }
    plate = heat_serial(n, steps);
    if (plate == NULL) {
        fprintf(stderr, "heat_gpu: out of memory\n");
        goto out;
    }
    wrong = heat_compare(&h, plate);
    t1 = ex_now();
    if (wrong < 0) {
        goto err_rh;
    }
    printf("heat_gpu: %ux%u plate, %u tiles of %ux%u on the GPUs of %d "
           "node(s), %d steps: %.3f s with the serial check\n", n, n,
           h.nt * h.nt, tile, tile, h.nodes, steps, t1 - t0);
    if (wrong == 0) {
        printf("HEAT_GPU OK: the GPU tiles after %d steps equal the CPU "
               "stencil bit for bit\n", steps);
        rc = 0;
    } else {
        printf("HEAT_GPU WRONG: %ld tile rows differ from the CPU "
               "stencil\n", wrong);
    }
    for (size_t i = 0; i < (size_t)h.nt * h.nt * NRET; i++) {
        rh_release(h.cur[i]);
    }
    goto out;

err_rh:
    fprintf(stderr, "heat_gpu: %s\n", rh_last_error());
out:
    free(plate);
    free(h.cur);
    free(next);
    free(h.hot);
    free(h.cold);
    if (rh_finalize() != RH_OK) {
        rc = 1;
    }
    return rc;
}
