/* The staged copy of device objects (src/gpu/stage.c), driven by host
 * copy engines that run each copy only when it is waited for, as a GPU's
 * asynchronous copies may: a pipeline that reused a slot before its
 * second leg was done, or left a copy running, gives wrong bytes or a
 * copy still pending here. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/stage.h"

typedef struct lazy {
    struct {
        void       *dst;
        const void *src;
        size_t      len;
        int         pending;
    } op[RH_STAGE_DEPTH_MAX];
    int    starts, waits, max_pending, fail_at;   /* fail_at: start n fails */
    int    pending_now;
} lazy_t;

static rh_status_t lazy_start(void *ctx, int slot, void *dst,
                              const void *src, size_t len)
{
    lazy_t *e = ctx;

    cr_assert(!e->op[slot].pending, "slot %d restarted while busy", slot);
    if (e->fail_at > 0 && ++e->starts == e->fail_at) {
        return RH_ERR_TRANSPORT;
    }
    if (e->fail_at == 0) {
        e->starts++;
    }
    e->op[slot].dst = dst;
    e->op[slot].src = src;
    e->op[slot].len = len;
    e->op[slot].pending = 1;
    if (++e->pending_now > e->max_pending) {
        e->max_pending = e->pending_now;
    }
    return RH_OK;
}

static rh_status_t lazy_wait(void *ctx, int slot)
{
    lazy_t *e = ctx;

    cr_assert(e->op[slot].pending, "wait on idle slot %d", slot);
    memcpy(e->op[slot].dst, e->op[slot].src, e->op[slot].len);
    e->op[slot].pending = 0;
    e->pending_now--;
    e->waits++;
    return RH_OK;
}

static int lazy_idle(const lazy_t *e)
{
    for (int s = 0; s < RH_STAGE_DEPTH_MAX; s++) {
        if (e->op[s].pending) {
            return 0;
        }
    }
    return 1;
}

static void run(size_t len, size_t chunk, int depth)
{
    uint8_t *src = malloc(len + 1), *dst = malloc(len + 1);
    uint8_t *slot_mem = malloc(chunk * (size_t)depth);
    rh_stage_t st = { .chunk = chunk, .depth = depth };
    lazy_t a, b;
    rh_stage_engine_t in = { lazy_start, lazy_wait, &a };
    rh_stage_engine_t out = { lazy_start, lazy_wait, &b };

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    for (size_t i = 0; i < len; i++) {
        src[i] = (uint8_t)(i * 7 + i / 251);
    }
    memset(dst, 0xee, len + 1);
    for (int s = 0; s < depth; s++) {
        st.slots[s] = slot_mem + (size_t)s * chunk;
    }
    cr_assert_eq(rh_stage_copy(&st, &in, &out, dst, src, len), RH_OK,
                 "%zu bytes, chunk %zu, depth %d", len, chunk, depth);
    cr_assert(memcmp(dst, src, len) == 0, "%zu bytes, chunk %zu, depth %d: "
              "wrong bytes", len, chunk, depth);
    cr_assert_eq(dst[len], 0xee, "wrote past the end");
    cr_assert(lazy_idle(&a) && lazy_idle(&b), "a copy still runs");
    cr_assert_eq(a.starts, (int)((len + chunk - 1) / chunk));
    cr_assert_eq(b.starts, a.starts);
    free(src);
    free(dst);
    free(slot_mem);
}

Test(stage, copies_every_size_through_every_depth)
{
    size_t lens[] = { 0, 1, 4095, 4096, 4097, 3 * 4096, 3 * 4096 + 17,
                      100000 };

    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        for (int depth = 1; depth <= RH_STAGE_DEPTH_MAX; depth++) {
            run(lens[i], 4096, depth);
        }
    }
}

/* Both legs are in flight at once: the first leg of chunk i is started
 * before the second leg of chunk i-1 is waited for. */
Test(stage, the_two_legs_overlap)
{
    enum { CHUNK = 1024, N = 16 };
    static uint8_t src[CHUNK * N], dst[CHUNK * N], slots[4][CHUNK];
    rh_stage_t st = { .chunk = CHUNK, .depth = 4,
                      .slots = { slots[0], slots[1], slots[2], slots[3] } };
    lazy_t a, b;
    rh_stage_engine_t in = { lazy_start, lazy_wait, &a };
    rh_stage_engine_t out = { lazy_start, lazy_wait, &b };

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    memset(src, 5, sizeof(src));
    cr_assert_eq(rh_stage_copy(&st, &in, &out, dst, src, sizeof(src)), RH_OK);
    cr_assert(memcmp(dst, src, sizeof(src)) == 0);
    cr_assert_geq(b.max_pending, 2, "second legs ran one at a time");
}

/* A failing copy stops the pipeline, and nothing it started still runs
 * when the error comes back. */
Test(stage, an_error_stops_it_and_drains_what_runs)
{
    enum { CHUNK = 512, N = 9 };
    static uint8_t src[CHUNK * N], dst[CHUNK * N], slots[3][CHUNK];
    rh_stage_t st = { .chunk = CHUNK, .depth = 3,
                      .slots = { slots[0], slots[1], slots[2] } };

    for (int fail = 1; fail <= N; fail++) {
        for (int side = 0; side < 2; side++) {
            lazy_t a, b;
            rh_stage_engine_t in = { lazy_start, lazy_wait, &a };
            rh_stage_engine_t out = { lazy_start, lazy_wait, &b };

            memset(&a, 0, sizeof(a));
            memset(&b, 0, sizeof(b));
            (side ? &b : &a)->fail_at = fail;
            cr_assert_eq(rh_stage_copy(&st, &in, &out, dst, src, sizeof(src)),
                         RH_ERR_TRANSPORT, "fail at %d on %s", fail,
                         side ? "out" : "in");
            cr_assert(lazy_idle(&a) && lazy_idle(&b), "fail at %d: a copy "
                      "still runs", fail);
        }
    }
}

Test(stage, bad_parameters_are_refused)
{
    uint8_t buf[64] = {0}, slot[16];
    lazy_t a;
    rh_stage_engine_t e = { lazy_start, lazy_wait, &a };
    rh_stage_t st = { .chunk = 16, .depth = 1, .slots = { slot } };
    rh_stage_t none = { .chunk = 16, .depth = 2, .slots = { slot } };
    rh_stage_t zero = { .chunk = 0, .depth = 1, .slots = { slot } };
    rh_stage_t deep = { .chunk = 16, .depth = RH_STAGE_DEPTH_MAX + 1 };

    memset(&a, 0, sizeof(a));
    cr_assert_eq(rh_stage_copy(&none, &e, &e, buf, buf, 8),
                 RH_ERR_INVALID_PARAM);
    cr_assert_eq(rh_stage_copy(&zero, &e, &e, buf, buf, 8),
                 RH_ERR_INVALID_PARAM);
    cr_assert_eq(rh_stage_copy(&deep, &e, &e, buf, buf, 8),
                 RH_ERR_INVALID_PARAM);
    cr_assert_eq(rh_stage_copy(&st, NULL, &e, buf, buf, 8),
                 RH_ERR_INVALID_PARAM);
    cr_assert_eq(rh_stage_copy(&st, &e, &e, NULL, buf, 8),
                 RH_ERR_INVALID_PARAM);
    cr_assert(strstr(rh_last_error(), "staged copy") != NULL);
}
