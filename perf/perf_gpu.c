/*
 * GPU figures (one rank; each prints "skipped: no GPU" and why where the
 * rank has none):
 *
 *   gpu_task_rtt   us from rh_remote to rh_get of a task asking for one
 *                  GPU that launches an empty kernel on its stream (the
 *                  runtime waits for the stream before the return is
 *                  published); /cuda: cudaLaunchKernel +
 *                  cudaStreamSynchronize of the same kernel, same run
 *   gpu_put_bw     GiB/s of rh_put_device of 256 MiB of device memory;
 *                  /cudaMemcpy: device to pinned host memory, same size
 *   gpu_get_bw     GiB/s of rh_get_device of that object into device
 *                  memory; /cudaMemcpy: pinned host memory to the device
 *   gpu_ipc_bw     GiB/s of an object put from GPU 0 and got into GPU 1
 *                  of the node (needs two GPUs); /cudaMemcpyPeer
 *
 * Best of 5 trials each.
 */
#include <stdio.h>
#include <string.h>

#include "gpu/cuda.h"
#include "gpu/gpu.h"
#include "perf.h"
#include "perf_gpu.h"
#include "rayhpc.h"

#define GPU_BYTES (256u << 20)
#define GPU_TRIALS 5

#ifdef HAVE_CUDA

static rh_status_t gpu_empty(rh_task_ctx_t *ctx)
{
    if (perf_gpu_launch_empty(rh_task_stream(ctx)) != 0) {
        return rh_task_fail(ctx, "the empty kernel did not launch");
    }
    return rh_task_return(ctx, 0, NULL, 0);
}

static int setup_gpu(void)
{
    return rh_register("perf_gpu_empty", gpu_empty, 0, 1);
}

static void figure_task_rtt(void)
{
    const long n = 2000;
    rh_task_params_t p = { .field_mask = RH_TASK_PARAM_FIELD_RESOURCES,
                           .resources = "GPU=1" };
    double best = 1e30, ref;
    char err[256] = "";

    for (int trial = 0; trial < 3; trial++) {
        double t0 = perf_now();

        for (long i = 0; i < n; i++) {
            const void *v;
            size_t len;
            rh_ref_t r;

            if (rh_remote("perf_gpu_empty", NULL, 0, &p, &r) != RH_OK ||
                rh_get(r, &v, &len, 60000) != RH_OK) {
                fprintf(stderr, "rayhpc-perf: gpu_task_rtt: %s\n",
                        rh_last_error());
                return;
            }
            rh_release(r);
            rh_release(r);
        }
        perf_keep_best(&best, (perf_now() - t0) / n, 1);
    }
    ref = perf_gpu_ref_rtt(0, n, err, sizeof(err));
    if (ref < 0) {
        fprintf(stderr, "rayhpc-perf: gpu_task_rtt/cuda: %s\n", err);
        perf_print("gpu_task_rtt", "", best * 1e6, "us");
        return;
    }
    perf_report("gpu_task_rtt", "", best * 1e6, ref * 1e6, "us", "cuda");
}

/* Fills device memory d with a pattern through a pinned bounce. */
static int gpu_fill(void *d, size_t len)
{
    void *h, *stream;
    int rc = -1;

    if (rh_cuda_host_alloc(len, &h) != RH_OK) {
        return -1;
    }
    memset(h, 0x5a, len);
    if (rh_gpu_thread_stream(0, &stream) == RH_OK &&
        rh_cuda_copy_async(d, h, len, stream) == RH_OK &&
        rh_cuda_stream_sync(stream) == RH_OK) {
        rc = 0;
    }
    rh_cuda_host_free(h);
    return rc;
}

static void figure_put_get(int (*want)(const char *))
{
    double put = 1e30, get = 1e30, ref_put, ref_get;
    char err[256] = "";
    void *d = NULL, *back = NULL;
    rh_ref_t r;

    if (rh_cuda_malloc(GPU_BYTES, &d) != RH_OK ||
        rh_cuda_malloc(GPU_BYTES, &back) != RH_OK || gpu_fill(d, GPU_BYTES)) {
        fprintf(stderr, "rayhpc-perf: gpu_put_bw: %s\n", rh_last_error());
        goto out;
    }
    for (int trial = 0; trial < GPU_TRIALS; trial++) {
        double t0 = perf_now();

        if (rh_put_device(d, GPU_BYTES, &r) != RH_OK) {
            fprintf(stderr, "rayhpc-perf: gpu_put_bw: %s\n", rh_last_error());
            goto out;
        }
        perf_keep_best(&put, perf_now() - t0, 1);
        t0 = perf_now();
        if (rh_get_device(r, back, GPU_BYTES, NULL, 60000) != RH_OK) {
            fprintf(stderr, "rayhpc-perf: gpu_get_bw: %s\n", rh_last_error());
            rh_release(r);
            goto out;
        }
        perf_keep_best(&get, perf_now() - t0, 1);
        rh_release(r);
    }
    ref_put = perf_gpu_ref_copy(0, GPU_BYTES, 0, GPU_TRIALS, err, sizeof(err));
    ref_get = perf_gpu_ref_copy(0, GPU_BYTES, 1, GPU_TRIALS, err, sizeof(err));
    if (want("gpu_put_bw")) {
        perf_report("gpu_put_bw", "", GPU_BYTES / put / (1 << 30), ref_put,
                    "GiB/s", "cudaMemcpy");
    }
    if (want("gpu_get_bw")) {
        perf_report("gpu_get_bw", "", GPU_BYTES / get / (1 << 30), ref_get,
                    "GiB/s", "cudaMemcpy");
    }
out:
    rh_cuda_free(d);
    rh_cuda_free(back);
}

static void figure_ipc(void)
{
    double best = 1e30, ref;
    char err[256] = "";
    void *a = NULL, *b = NULL;
    rh_ref_t r;

    if (rh_num_gpus() < 2) {
        printf("# gpu_ipc_bw skipped: this rank has %d GPU(s), the figure "
               "needs 2\n", rh_num_gpus());
        return;
    }
    if (rh_cuda_set_device(0) != RH_OK || rh_cuda_malloc(GPU_BYTES, &a) ||
        gpu_fill(a, GPU_BYTES) || rh_cuda_set_device(1) != RH_OK ||
        rh_cuda_malloc(GPU_BYTES, &b) != RH_OK) {
        fprintf(stderr, "rayhpc-perf: gpu_ipc_bw: %s\n", rh_last_error());
        goto out;
    }
    for (int trial = 0; trial < GPU_TRIALS; trial++) {
        double t0 = perf_now();

        if (rh_put_device(a, GPU_BYTES, &r) != RH_OK) {
            fprintf(stderr, "rayhpc-perf: gpu_ipc_bw: %s\n", rh_last_error());
            goto out;
        }
        if (rh_get_device(r, b, GPU_BYTES, NULL, 60000) != RH_OK) {
            fprintf(stderr, "rayhpc-perf: gpu_ipc_bw: %s\n", rh_last_error());
            rh_release(r);
            goto out;
        }
        perf_keep_best(&best, perf_now() - t0, 1);
        rh_release(r);
    }
    ref = perf_gpu_ref_peer(GPU_BYTES, GPU_TRIALS, err, sizeof(err));
    perf_report("gpu_ipc_bw", "", GPU_BYTES / best / (1 << 30), ref, "GiB/s",
                "cudaMemcpyPeer");
out:
    rh_cuda_free(a);
    rh_cuda_free(b);
}

static int run_gpu(const perf_group_t *g, const char *suffix,
                   int (*want)(const char *figure))
{
    (void)g;
    (void)suffix;
    if (rh_gpu_check() != RH_OK) {
        for (int i = 0; g->figures[i] != NULL; i++) {
            if (want(g->figures[i])) {
                printf("# %s skipped: no GPU (%s)\n", g->figures[i],
                       rh_last_error());
            }
        }
        return 0;
    }
    if (want("gpu_task_rtt")) {
        figure_task_rtt();
    }
    if (want("gpu_put_bw") || want("gpu_get_bw")) {
        figure_put_get(want);
    }
    if (want("gpu_ipc_bw")) {
        figure_ipc();
    }
    return 0;
}

#else /* !HAVE_CUDA */

static int setup_gpu(void)
{
    return 0;
}

static int run_gpu(const perf_group_t *g, const char *suffix,
                   int (*want)(const char *figure))
{
    (void)suffix;
    for (int i = 0; g->figures[i] != NULL; i++) {
        if (want(g->figures[i])) {
            printf("# %s skipped: no GPU (built without CUDA)\n",
                   g->figures[i]);
        }
    }
    return 0;
}

#endif

static const char *const gpu_figures[] = {
    "gpu_task_rtt", "gpu_put_bw", "gpu_get_bw", "gpu_ipc_bw", NULL
};
/* room for two 256 MiB objects and the allocator's slack */
static const char *const gpu_env[] = { "RAYHPC_STORE_SIZE=1G", NULL };

const perf_group_t perf_group_gpu = {
    "gpu", gpu_figures, 1, gpu_env, 0, 0, setup_gpu, run_gpu
};
