/*
 * Chunked, pipelined copies through staging buffers: src -> slot (the `in`
 * engine) and slot -> dst (the `out` engine), chunk by chunk, so that
 * chunk i's first leg runs while chunk i-1's second leg does. Device
 * objects go this way where device memory cannot be copied straight to or
 * from the store (the segment is not page-locked): the GPU copies into
 * page-locked slots and the CPU moves them on, or the other way round.
 *
 * The engines are small interfaces so that the pipeline itself is the
 * same code whatever moves the bytes: CUDA copies on a stream in the
 * library, host copies in the unit tests (tests/unit/test_gpu_stage.c).
 */
#ifndef RH_GPU_STAGE_H
#define RH_GPU_STAGE_H

#include <stddef.h>

#include "rayhpc.h"

#define RH_STAGE_DEPTH_MAX 8

typedef struct rh_stage_engine {
    /* Starts copying len bytes from src to dst for slot (0..depth-1); the
     * slot has no copy of this engine pending. On error nothing started. */
    rh_status_t (*start)(void *ctx, int slot, void *dst, const void *src,
                         size_t len);
    /* Returns once the copy last started for slot is done. */
    rh_status_t (*wait)(void *ctx, int slot);
    void        *ctx;
} rh_stage_engine_t;

typedef struct rh_stage {
    size_t chunk;                       /* bytes a slot holds */
    int    depth;                       /* slots, 1..RH_STAGE_DEPTH_MAX */
    void  *slots[RH_STAGE_DEPTH_MAX];   /* depth buffers of chunk bytes */
} rh_stage_t;

/* Copies len bytes from src to dst through st's slots. Returns when every
 * copy it started is done, also on error (the first error is returned and
 * the rest of the copy is not started): no copy runs on in buffers the
 * caller may free. dst's bytes are then undefined. */
rh_status_t rh_stage_copy(const rh_stage_t *st, const rh_stage_engine_t *in,
                          const rh_stage_engine_t *out, void *dst,
                          const void *src, size_t len);

#endif
