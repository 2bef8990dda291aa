/*
 * The CUDA runtime, as the rest of the library sees it: the only file that
 * includes CUDA's headers is cuda.c, so everything else builds the same
 * with and without CUDA. Built without it, or where the driver or the GPUs
 * are missing at run time, rh_cuda_probe says why and every other call
 * fails with RH_ERR_UNSUPPORTED.
 *
 * Streams and events are opaque pointers (cudaStream_t, cudaEvent_t).
 */
#ifndef RH_GPU_CUDA_H
#define RH_GPU_CUDA_H

#include <stddef.h>

#include "rayhpc.h"

/* Once per process: how many devices this process sees (0 when none, with
 * the reason in why: not built in, no driver, no device). */
int rh_cuda_probe(char *why, size_t len);

/* Device dev's PCI bus id ("0000:3b:00.0"). */
rh_status_t rh_cuda_pci_bus_id(int dev, char *buf, size_t len);

rh_status_t rh_cuda_set_device(int dev);
/* The calling thread's current device (0 before any was set). */
rh_status_t rh_cuda_get_device(int *dev);
rh_status_t rh_cuda_stream_create(void **stream);
void rh_cuda_stream_destroy(void *stream);
rh_status_t rh_cuda_stream_sync(void *stream);
rh_status_t rh_cuda_event_create(void **event);
void rh_cuda_event_destroy(void *event);
rh_status_t rh_cuda_event_record(void *event, void *stream);
rh_status_t rh_cuda_event_sync(void *event);

/* Copies of any direction (the unified address space tells which). */
rh_status_t rh_cuda_copy_async(void *dst, const void *src, size_t len,
                               void *stream);

/* Which device ptr is memory of: its index, or -1 for host memory. */
rh_status_t rh_cuda_pointer_device(const void *ptr, int *dev);

/* Page-locks [ptr, ptr + len) for fast copies (the store segment). */
rh_status_t rh_cuda_host_register(void *ptr, size_t len);
void rh_cuda_host_unregister(void *ptr);
rh_status_t rh_cuda_host_alloc(size_t len, void **ptr);
void rh_cuda_host_free(void *ptr);

/* Device memory (tests, benchmarks, examples through rh_gpu_*). */
rh_status_t rh_cuda_malloc(size_t len, void **ptr);
void rh_cuda_free(void *ptr);

#endif
