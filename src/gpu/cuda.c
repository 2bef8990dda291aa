#include "gpu/cuda.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/status.h"

#ifdef HAVE_CUDA

#include <cuda_runtime_api.h>

static pthread_once_t rh_cuda_once = PTHREAD_ONCE_INIT;
static int rh_cuda_count;
static char rh_cuda_why[256];

static void rh_cuda_probe_once(void)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);

    if (e != cudaSuccess) {
        snprintf(rh_cuda_why, sizeof(rh_cuda_why), "no usable GPU: the CUDA "
                 "runtime says %s (%s)", cudaGetErrorString(e),
                 cudaGetErrorName(e));
        rh_cuda_count = 0;
        /* a failed probe leaves a sticky error behind: clear it */
        (void)cudaGetLastError();
        return;
    }
    if (n == 0) {
        snprintf(rh_cuda_why, sizeof(rh_cuda_why), "no GPU: the CUDA "
                 "runtime sees no device (CUDA_VISIBLE_DEVICES=%s)",
                 getenv("CUDA_VISIBLE_DEVICES") ? getenv("CUDA_VISIBLE_DEVICES")
                                                : "unset");
    }
    rh_cuda_count = n;
}

int rh_cuda_probe(char *why, size_t len)
{
    pthread_once(&rh_cuda_once, rh_cuda_probe_once);
    if (why != NULL && len > 0) {
        snprintf(why, len, "%s", rh_cuda_count > 0 ? "" : rh_cuda_why);
    }
    return rh_cuda_count;
}

/* Turns a CUDA error into a status with a sentence naming the call. */
static rh_status_t rh_cuda_check(cudaError_t e, const char *what)
{
    if (e == cudaSuccess) {
        return RH_OK;
    }
    return rh_error_set(e == cudaErrorMemoryAllocation ? RH_ERR_NO_MEMORY :
                        RH_ERR_UNSUPPORTED, "%s failed: %s (%s)", what,
                        cudaGetErrorString(e), cudaGetErrorName(e));
}

/* Every call but the probe needs a device: without one, say why. */
static rh_status_t rh_cuda_ready(void)
{
    char why[256];

    if (rh_cuda_probe(why, sizeof(why)) == 0) {
        return rh_error_set(RH_ERR_UNSUPPORTED, "%s", why);
    }
    return RH_OK;
}

#define RH_CUDA_READY()                          \
    do {                                         \
        rh_status_t rh_st_ = rh_cuda_ready();    \
        if (rh_st_ != RH_OK) {                   \
            return rh_st_;                       \
        }                                        \
    } while (0)

rh_status_t rh_cuda_pci_bus_id(int dev, char *buf, size_t len)
{
    RH_CUDA_READY();
    return rh_cuda_check(cudaDeviceGetPCIBusId(buf, (int)len, dev),
                         "cudaDeviceGetPCIBusId");
}

rh_status_t rh_cuda_set_device(int dev)
{
    RH_CUDA_READY();
    return rh_cuda_check(cudaSetDevice(dev), "cudaSetDevice");
}

rh_status_t rh_cuda_get_device(int *dev)
{
    RH_CUDA_READY();
    return rh_cuda_check(cudaGetDevice(dev), "cudaGetDevice");
}

rh_status_t rh_cuda_stream_create(void **stream)
{
    cudaStream_t s;
    rh_status_t status;

    RH_CUDA_READY();
    status = rh_cuda_check(cudaStreamCreateWithFlags(&s,
                               cudaStreamNonBlocking), "cudaStreamCreate");
    *stream = status == RH_OK ? (void *)s : NULL;
    return status;
}

void rh_cuda_stream_destroy(void *stream)
{
    if (stream != NULL) {
        (void)cudaStreamDestroy((cudaStream_t)stream);
    }
}

rh_status_t rh_cuda_stream_sync(void *stream)
{
    RH_CUDA_READY();
    return rh_cuda_check(cudaStreamSynchronize((cudaStream_t)stream),
                         "cudaStreamSynchronize");
}

rh_status_t rh_cuda_event_create(void **event)
{
    cudaEvent_t e;
    rh_status_t status;

    RH_CUDA_READY();
    status = rh_cuda_check(cudaEventCreateWithFlags(&e,
                               cudaEventDisableTiming), "cudaEventCreate");
    *event = status == RH_OK ? (void *)e : NULL;
    return status;
}

void rh_cuda_event_destroy(void *event)
{
    if (event != NULL) {
        (void)cudaEventDestroy((cudaEvent_t)event);
    }
}

rh_status_t rh_cuda_event_record(void *event, void *stream)
{
    return rh_cuda_check(cudaEventRecord((cudaEvent_t)event,
                                         (cudaStream_t)stream),
                         "cudaEventRecord");
}

rh_status_t rh_cuda_event_sync(void *event)
{
    return rh_cuda_check(cudaEventSynchronize((cudaEvent_t)event),
                         "cudaEventSynchronize");
}

rh_status_t rh_cuda_copy_async(void *dst, const void *src, size_t len,
                               void *stream)
{
    RH_CUDA_READY();
    return rh_cuda_check(cudaMemcpyAsync(dst, src, len, cudaMemcpyDefault,
                                         (cudaStream_t)stream),
                         "cudaMemcpyAsync");
}

rh_status_t rh_cuda_pointer_device(const void *ptr, int *dev)
{
    struct cudaPointerAttributes a;
    cudaError_t e;

    RH_CUDA_READY();
    e = cudaPointerGetAttributes(&a, ptr);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return rh_cuda_check(e, "cudaPointerGetAttributes");
    }
    *dev = a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged
           ? a.device : -1;
    return RH_OK;
}

rh_status_t rh_cuda_host_register(void *ptr, size_t len)
{
    RH_CUDA_READY();
    return rh_cuda_check(cudaHostRegister(ptr, len, cudaHostRegisterPortable),
                         "cudaHostRegister");
}

void rh_cuda_host_unregister(void *ptr)
{
    (void)cudaHostUnregister(ptr);
}

rh_status_t rh_cuda_host_alloc(size_t len, void **ptr)
{
    RH_CUDA_READY();
    return rh_cuda_check(cudaHostAlloc(ptr, len, cudaHostAllocPortable),
                         "cudaHostAlloc");
}

void rh_cuda_host_free(void *ptr)
{
    if (ptr != NULL) {
        (void)cudaFreeHost(ptr);
    }
}

rh_status_t rh_cuda_malloc(size_t len, void **ptr)
{
    RH_CUDA_READY();
    return rh_cuda_check(cudaMalloc(ptr, len), "cudaMalloc");
}

void rh_cuda_free(void *ptr)
{
    if (ptr != NULL) {
        (void)cudaFree(ptr);
    }
}

#else /* !HAVE_CUDA */

#define RH_NO_CUDA "this librayhpc was built without CUDA (configure " \
                   "--with-cuda=DIR builds it in)"

static rh_status_t rh_cuda_none(void)
{
    return rh_error_set(RH_ERR_UNSUPPORTED, RH_NO_CUDA);
}

int rh_cuda_probe(char *why, size_t len)
{
    if (why != NULL && len > 0) {
        snprintf(why, len, "no GPU support: %s", RH_NO_CUDA);
    }
    return 0;
}

rh_status_t rh_cuda_pci_bus_id(int dev, char *buf, size_t len)
{
    return rh_cuda_none();
}

rh_status_t rh_cuda_set_device(int dev)
{
    return rh_cuda_none();
}

rh_status_t rh_cuda_get_device(int *dev)
{
    *dev = -1;
    return rh_cuda_none();
}

rh_status_t rh_cuda_stream_create(void **stream)
{
    *stream = NULL;
    return rh_cuda_none();
}

void rh_cuda_stream_destroy(void *stream)
{
}

rh_status_t rh_cuda_stream_sync(void *stream)
{
    return rh_cuda_none();
}

rh_status_t rh_cuda_event_create(void **event)
{
    *event = NULL;
    return rh_cuda_none();
}

void rh_cuda_event_destroy(void *event)
{
}

rh_status_t rh_cuda_event_record(void *event, void *stream)
{
    return rh_cuda_none();
}

rh_status_t rh_cuda_event_sync(void *event)
{
    return rh_cuda_none();
}

rh_status_t rh_cuda_copy_async(void *dst, const void *src, size_t len,
                               void *stream)
{
    return rh_cuda_none();
}

rh_status_t rh_cuda_pointer_device(const void *ptr, int *dev)
{
    return rh_cuda_none();
}

rh_status_t rh_cuda_host_register(void *ptr, size_t len)
{
    return rh_cuda_none();
}

void rh_cuda_host_unregister(void *ptr)
{
}

rh_status_t rh_cuda_host_alloc(size_t len, void **ptr)
{
    *ptr = NULL;
    return rh_cuda_none();
}

void rh_cuda_host_free(void *ptr)
{
}

rh_status_t rh_cuda_malloc(size_t len, void **ptr)
{
    *ptr = NULL;
    return rh_cuda_none();
}

void rh_cuda_free(void *ptr)
{
}

#endif
