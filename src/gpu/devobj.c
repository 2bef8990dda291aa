/*
 * Device objects: rh_put_device copies device memory into an object of the
 * node's store, rh_get_device copies an object (pulled from its node
 * first when it lives elsewhere) into device memory. The store segment is
 * page-locked at rh_init, so one copy on the thread's stream moves the
 * bytes at the bus's speed; where it could not be, the copy is staged
 * through pinned slots in chunks (stage.c), the GPU's leg of one chunk
 * overlapped with the CPU's leg of the previous one.
 */
#include <stdio.h>
#include <string.h>

#include "base/status.h"
#include "gpu/cuda.h"
#include "gpu/gpu.h"
#include "gpu/stage.h"

/* ---- copy engines for stage.c ------------------------------------------------ */

typedef struct rh_devobj_cuda {
    void *stream;
    void *event[RH_STAGE_DEPTH_MAX];
} rh_devobj_cuda_t;

static rh_status_t rh_devobj_cuda_start(void *ctx, int slot, void *dst,
                                        const void *src, size_t len)
{
    rh_devobj_cuda_t *c = ctx;
    rh_status_t status = rh_cuda_copy_async(dst, src, len, c->stream);

    return status == RH_OK ? rh_cuda_event_record(c->event[slot], c->stream)
                           : status;
}

static rh_status_t rh_devobj_cuda_wait(void *ctx, int slot)
{
    return rh_cuda_event_sync(((rh_devobj_cuda_t *)ctx)->event[slot]);
}

static rh_status_t rh_devobj_host_start(void *ctx, int slot, void *dst,
                                        const void *src, size_t len)
{
    memcpy(dst, src, len);
    return RH_OK;
}

static rh_status_t rh_devobj_host_wait(void *ctx, int slot)
{
    return RH_OK;
}

static rh_status_t rh_devobj_copy_on(int dev, int to_device, void *dst,
                                     const void *src, size_t len);

/* Copies len bytes between device dev and the host (to_device says which
 * way) with dev current, as its stream needs; the caller's current device
 * is back afterwards. */
static rh_status_t rh_devobj_copy(int dev, int to_device, void *dst,
                                  const void *src, size_t len)
{
    int prev = -1;
    rh_status_t status = rh_cuda_get_device(&prev);

    if (status == RH_OK && prev != dev) {
        status = rh_cuda_set_device(dev);
    }
    if (status != RH_OK) {
        return status;
    }
    status = rh_devobj_copy_on(dev, to_device, dst, src, len);
    if (prev != dev) {
        (void)rh_cuda_set_device(prev);
    }
    return status;
}

/* The copy, on the stream of the GPU task running here, or of this
 * thread for dev. */
static rh_status_t rh_devobj_copy_on(int dev, int to_device, void *dst,
                                     const void *src, size_t len)
{
    void *stream = rh_gpu_current_device() == dev ? rh_gpu_current_stream()
                                                  : NULL;
    rh_devobj_cuda_t c;
    rh_stage_engine_t gpu = { rh_devobj_cuda_start, rh_devobj_cuda_wait, &c };
    rh_stage_engine_t cpu = { rh_devobj_host_start, rh_devobj_host_wait,
                              NULL };
    rh_stage_t st;
    void **slots;
    rh_status_t status;

    if (stream == NULL) {
        status = rh_gpu_thread_stream(dev, &stream);
        if (status != RH_OK) {
            return status;
        }
    }
    if (rh_gpu_store_pinned() || len == 0) {
        status = rh_cuda_copy_async(dst, src, len, stream);
        return status == RH_OK ? rh_cuda_stream_sync(stream) : status;
    }
    memset(&c, 0, sizeof(c));
    c.stream = stream;
    status = rh_gpu_stage_acquire(&slots, &st.depth, &st.chunk);
    if (status != RH_OK) {
        return status;
    }
    for (int s = 0; s < st.depth && status == RH_OK; s++) {
        st.slots[s] = slots[s];
        status = rh_cuda_event_create(&c.event[s]);
    }
    if (status == RH_OK) {
        status = to_device ? rh_stage_copy(&st, &cpu, &gpu, dst, src, len)
                           : rh_stage_copy(&st, &gpu, &cpu, dst, src, len);
    }
    for (int s = 0; s < st.depth; s++) {
        rh_cuda_event_destroy(c.event[s]);
    }
    rh_gpu_stage_release();
    return status;
}

/* The device that ptr's memory is on, or a sentence why it is none. */
static rh_status_t rh_devobj_device(const void *ptr, const char *what,
                                    int *dev)
{
    rh_status_t status = rh_gpu_check();

    if (status != RH_OK) {
        return rh_error_set(status, "%s: %s", what, rh_last_error());
    }
    if (ptr == NULL) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "%s: NULL device pointer",
                            what);
    }
    status = rh_cuda_pointer_device(ptr, dev);
    if (status != RH_OK || *dev < 0) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "%s: %p is not device "
                            "memory (cudaMalloc)", what, ptr);
    }
    return RH_OK;
}

rh_status_t rh_put_device(const void *dptr, size_t len, rh_ref_t *ref)
{
    rh_ref_t r;
    void *p;
    int dev;
    rh_status_t status;

    if (ref == NULL) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_put_device needs ref");
    }
    status = rh_devobj_device(dptr, "rh_put_device", &dev);
    if (status != RH_OK) {
        return status;
    }
    status = rh_put_create(len, &r, &p);
    if (status != RH_OK) {
        return status;
    }
    status = rh_devobj_copy(dev, 0, p, dptr, len);
    if (status != RH_OK) {
        char msg[512];

        /* The ref never left: seal and drop it, so nothing is kept. */
        snprintf(msg, sizeof(msg), "%s", rh_last_error());
        (void)rh_put_seal(r);
        (void)rh_release(r);
        return rh_error_set(status, "rh_put_device: %s", msg);
    }
    status = rh_put_seal(r);
    if (status != RH_OK) {
        return status;
    }
    *ref = r;
    return RH_OK;
}

rh_status_t rh_get_device(rh_ref_t ref, void *dptr, size_t cap, size_t *len,
                          int64_t timeout_ms)
{
    const void *p;
    size_t n;
    int dev;
    rh_status_t status = rh_devobj_device(dptr, "rh_get_device", &dev);

    if (status != RH_OK) {
        return status;
    }
    status = rh_get(ref, &p, &n, timeout_ms);
    if (status != RH_OK) {
        return status;
    }
    if (n > cap) {
        (void)rh_release(ref);
        return rh_error_set(RH_ERR_TOO_LARGE, "rh_get_device: the object has "
                            "%zu bytes, the device buffer %zu", n, cap);
    }
    status = rh_devobj_copy(dev, 1, dptr, p, n);
    (void)rh_release(ref);
    if (status == RH_OK && len != NULL) {
        *len = n;
    }
    return status;
}
