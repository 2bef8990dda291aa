/*
 * The CUDA side of rayhpc-perf's GPU figures (perf_gpu_ref.cu, built by
 * nvcc when CUDA is): an empty kernel and the bare CUDA references the
 * figures are compared with. Each returns < 0 and writes why into err on
 * failure.
 */
#ifndef RH_PERF_PERF_GPU_H
#define RH_PERF_PERF_GPU_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Launches the empty kernel on stream (a cudaStream_t). */
int perf_gpu_launch_empty(void *stream);

/* Seconds per cudaLaunchKernel + cudaStreamSynchronize of the empty
 * kernel on device dev, best of 3 runs of n. */
double perf_gpu_ref_rtt(int dev, long n, char *err, size_t errlen);

/* GiB/s of cudaMemcpy of bytes between device dev and pinned host memory
 * (to_device: host to device), best of trials. */
double perf_gpu_ref_copy(int dev, size_t bytes, int to_device, int trials,
                         char *err, size_t errlen);

/* GiB/s of cudaMemcpyPeer of bytes from device 0 to device 1. */
double perf_gpu_ref_peer(size_t bytes, int trials, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
