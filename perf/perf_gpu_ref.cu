#include "perf_gpu.h"

#include <cuda_runtime_api.h>
#include <stdio.h>
#include <time.h>

__global__ static void perf_gpu_empty_kernel(void)
{
}

static double perf_gpu_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Records a CUDA error in err; -1 when there was one. */
static int perf_gpu_fail(cudaError_t e, const char *what, char *err,
                         size_t errlen)
{
    if (e == cudaSuccess) {
        return 0;
    }
    snprintf(err, errlen, "%s: %s", what, cudaGetErrorString(e));
    return -1;
}

#define TRY(call, what)                                   \
    if (perf_gpu_fail((call), what, err, errlen) != 0) {  \
        goto out;                                         \
    }

extern "C" int perf_gpu_launch_empty(void *stream)
{
    perf_gpu_empty_kernel<<<1, 1, 0, (cudaStream_t)stream>>>();
    return cudaGetLastError() == cudaSuccess ? 0 : -1;
}

extern "C" double perf_gpu_ref_rtt(int dev, long n, char *err, size_t errlen)
{
    cudaStream_t s = NULL;
    double best = -1;

    TRY(cudaSetDevice(dev), "cudaSetDevice");
    TRY(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking),
        "cudaStreamCreate");
    for (int trial = 0; trial < 3; trial++) {
        double t0 = perf_gpu_now(), t;

        for (long i = 0; i < n; i++) {
            perf_gpu_empty_kernel<<<1, 1, 0, s>>>();
            TRY(cudaStreamSynchronize(s), "cudaStreamSynchronize");
        }
        t = (perf_gpu_now() - t0) / (double)n;
        best = best < 0 || t < best ? t : best;
    }
out:
    if (s != NULL) {
        cudaStreamDestroy(s);
    }
    return best;
}

extern "C" double perf_gpu_ref_copy(int dev, size_t bytes, int to_device,
                                    int trials, char *err, size_t errlen)
{
    void *d = NULL, *h = NULL;
    double best = -1;

    TRY(cudaSetDevice(dev), "cudaSetDevice");
    TRY(cudaMalloc(&d, bytes), "cudaMalloc");
    TRY(cudaMallocHost(&h, bytes), "cudaMallocHost");
    TRY(cudaMemset(d, 1, bytes), "cudaMemset");
    for (int trial = 0; trial < trials; trial++) {
        double t0 = perf_gpu_now(), bw;

        TRY(to_device ? cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice)
                      : cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost),
            "cudaMemcpy");
        bw = (double)bytes / (perf_gpu_now() - t0) / (1 << 30);
        best = bw > best ? bw : best;
    }
out:
    cudaFree(d);
    cudaFreeHost(h);
    return best;
}

extern "C" double perf_gpu_ref_peer(size_t bytes, int trials, char *err,
                                    size_t errlen)
{
    void *a = NULL, *b = NULL;
    double best = -1;

    TRY(cudaSetDevice(0), "cudaSetDevice");
    TRY(cudaMalloc(&a, bytes), "cudaMalloc");
    TRY(cudaSetDevice(1), "cudaSetDevice");
    TRY(cudaMalloc(&b, bytes), "cudaMalloc");
    for (int trial = 0; trial < trials; trial++) {
        double t0 = perf_gpu_now(), bw;

        TRY(cudaMemcpyPeer(b, 1, a, 0, bytes), "cudaMemcpyPeer");
        TRY(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
        bw = (double)bytes / (perf_gpu_now() - t0) / (1 << 30);
        best = bw > best ? bw : best;
    }
out:
    cudaFree(a);
    cudaFree(b);
    return best;
}
