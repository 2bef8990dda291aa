#include "gpu/stage.h"

#include <stdint.h>

#include "base/status.h"

/* Keeps the first error of a copy. */
static void rh_stage_keep(rh_status_t *first, rh_status_t status)
{
    if (*first == RH_OK && status != RH_OK) {
        *first = status;
    }
}

rh_status_t rh_stage_copy(const rh_stage_t *st, const rh_stage_engine_t *in,
                          const rh_stage_engine_t *out, void *dst,
                          const void *src, size_t len)
{
    /* Per slot: whether a copy of in / out was started and not waited. */
    int in_busy[RH_STAGE_DEPTH_MAX] = {0}, out_busy[RH_STAGE_DEPTH_MAX] = {0};
    size_t nchunks, i;
    rh_status_t first = RH_OK;

    if (st == NULL || in == NULL || out == NULL || st->chunk == 0 ||
        st->depth < 1 || st->depth > RH_STAGE_DEPTH_MAX ||
        (len > 0 && (dst == NULL || src == NULL))) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "staged copy: needs a "
                            "chunk size, 1 to %d slots, and buffers",
                            RH_STAGE_DEPTH_MAX);
    }
    for (int s = 0; s < st->depth; s++) {
        if (st->slots[s] == NULL) {
            return rh_error_set(RH_ERR_INVALID_PARAM, "staged copy: slot %d "
                                "has no buffer", s);
        }
    }
    nchunks = len / st->chunk + (len % st->chunk != 0);
    /* Step i starts chunk i-1's second leg, then chunk i's first: they
     * run at once, and with one slot the second leg is done first. */
    for (i = 0; i <= nchunks && first == RH_OK; i++) {
        if (i > 0) {
            size_t p = i - 1;
            int s = (int)(p % (size_t)st->depth);
            size_t off = p * st->chunk;
            size_t n = len - off < st->chunk ? len - off : st->chunk;

            in_busy[s] = 0;
            rh_stage_keep(&first, in->wait(in->ctx, s));
            if (first != RH_OK) {
                break;
            }
            rh_stage_keep(&first, out->start(out->ctx, s,
                                             (uint8_t *)dst + off,
                                             st->slots[s], n));
            if (first != RH_OK) {
                break;
            }
            out_busy[s] = 1;
        }
        if (i < nchunks) {
            int s = (int)(i % (size_t)st->depth);
            size_t off = i * st->chunk;
            size_t n = len - off < st->chunk ? len - off : st->chunk;

            /* the slot is free once its last second leg is done */
            if (out_busy[s]) {
                out_busy[s] = 0;
                rh_stage_keep(&first, out->wait(out->ctx, s));
                if (first != RH_OK) {
                    break;
                }
            }
            rh_stage_keep(&first, in->start(in->ctx, s, st->slots[s],
                                            (const uint8_t *)src + off, n));
            if (first != RH_OK) {
                break;
            }
            in_busy[s] = 1;
        }
    }
    /* Drain: nothing may still run when the caller gets its buffers back. */
    for (int s = 0; s < st->depth; s++) {
        if (in_busy[s]) {
            rh_stage_keep(&first, in->wait(in->ctx, s));
        }
        if (out_busy[s]) {
            rh_stage_keep(&first, out->wait(out->ctx, s));
        }
    }
    return first;
}
