/* GPUs where there are none (this is what CI and the development hosts
 * have): the rank offers no GPU, every GPU call says why with
 * RH_ERR_UNSUPPORTED and keeps nothing, a GPU task fails with that
 * sentence; and the deal of a node's GPUs among its ranks. Each test that
 * needs the absence of GPUs skips, with one line, on a host that has one. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/cuda.h"
#include "gpu/gpu.h"
#include "rayhpc.h"

static rh_status_t gpu_task(rh_task_ctx_t *ctx)
{
    int dev = rh_task_gpu(ctx);

    return rh_task_return(ctx, 0, &dev, sizeof(dev));
}

/* An actor on a GPU: its constructor notes its device, a method answers
 * the device it runs with and the constructor's. */
static rh_status_t gpu_actor_init(rh_task_ctx_t *ctx, void **state)
{
    int *dev = malloc(sizeof(int));

    if (dev == NULL) {
        return RH_ERR_NO_MEMORY;
    }
    *dev = rh_task_gpu(ctx);
    *state = dev;
    return RH_OK;
}

static rh_status_t gpu_actor_where(void *state, rh_task_ctx_t *ctx)
{
    int devs[2] = { *(int *)state, rh_task_gpu(ctx) };

    return rh_task_return(ctx, 0, devs, sizeof(devs));
}

static void gpu_actor_fini(void *state)
{
    free(state);
}

static const rh_method_def_t gpu_actor_methods[] = {
    { "where", gpu_actor_where, 0, 1 }
};

static void register_gpu_actor(void)
{
    static const rh_actor_class_t cls = {
        .field_mask = RH_ACTOR_CLASS_FIELD_FINI, .init = gpu_actor_init,
        .init_nargs = 0, .methods = gpu_actor_methods, .num_methods = 1,
        .fini = gpu_actor_fini
    };

    cr_assert_eq(rh_register_actor("gpu_actor", &cls), RH_OK);
}

static void skip_with_gpus(void)
{
    char why[256];

    if (rh_cuda_probe(why, sizeof(why)) > 0) {
        cr_skip_test("this host has a GPU: the no-GPU paths are not taken");
    }
}

static void setup(void)
{
    setenv("RAYHPC_NUM_WORKERS", "2", 1);
    /* a GPU offered by hand, to see a GPU task meet a rank without one */
    setenv("RAYHPC_RESOURCES", "GPU=1", 1);
    cr_assert_eq(rh_register("gpu_task", gpu_task, 0, 1), RH_OK);
    register_gpu_actor();
    cr_assert_eq(rh_init(NULL, NULL, NULL), RH_OK, "%s", rh_last_error());
}

static void teardown(void)
{
    cr_expect_eq(rh_finalize(), RH_OK, "%s", rh_last_error());
}

TestSuite(nogpu, .init = setup, .fini = teardown, .timeout = 60);

Test(nogpu, the_rank_offers_none_and_says_why)
{
    skip_with_gpus();
    cr_assert_eq(rh_num_gpus(), 0);
    cr_assert_eq(rh_gpu_check(), RH_ERR_UNSUPPORTED);
    cr_assert(strlen(rh_last_error()) > 10, "%s", rh_last_error());
#ifdef HAVE_CUDA
    cr_assert(strstr(rh_last_error(), "driver") != NULL ||
              strstr(rh_last_error(), "no GPU") != NULL, "%s",
              rh_last_error());
#else
    cr_assert(strstr(rh_last_error(), "without CUDA") != NULL, "%s",
              rh_last_error());
#endif
    cr_assert_eq(rh_task_stream(NULL), NULL);
    cr_assert_eq(rh_task_gpu(NULL), -1);
}

Test(nogpu, device_objects_fail_and_keep_nothing)
{
    char buf[64];
    size_t len = 1;
    rh_ref_t ref = { 7, 7 }, host;
    rh_stats_t before, after;

    skip_with_gpus();
    cr_assert_eq(rh_stats(&before), RH_OK);
    cr_assert_eq(rh_put_device(buf, sizeof(buf), &ref), RH_ERR_UNSUPPORTED);
    cr_assert(strstr(rh_last_error(), "rh_put_device") != NULL, "%s",
              rh_last_error());
    cr_assert(ref.hi == 7 && ref.lo == 7, "the ref was written");
    cr_assert_eq(rh_stats(&after), RH_OK);
    cr_assert_eq(after.store_objects, before.store_objects);
    cr_assert_eq(rh_put(buf, sizeof(buf), &host), RH_OK);
    cr_assert_eq(rh_get_device(host, buf, sizeof(buf), &len, 0),
                 RH_ERR_UNSUPPORTED);
    cr_assert(strstr(rh_last_error(), "rh_get_device") != NULL, "%s",
              rh_last_error());
    cr_assert_eq(len, 1);
    cr_assert_eq(rh_put_device(buf, sizeof(buf), NULL), RH_ERR_INVALID_PARAM);
    cr_assert_eq(rh_release(host), RH_OK);
}

Test(nogpu, a_gpu_task_fails_with_the_reason)
{
    rh_task_params_t p = { .field_mask = RH_TASK_PARAM_FIELD_RESOURCES,
                           .resources = "GPU=0.5" };
    rh_ref_t ret;
    const void *ptr;
    size_t len;

    skip_with_gpus();
    cr_assert_eq(rh_remote("gpu_task", NULL, 0, &p, &ret), RH_OK, "%s",
                 rh_last_error());
    cr_assert_eq(rh_get(ret, &ptr, &len, 30000), RH_ERR_TASK_FAILED);
    cr_assert(strstr(rh_last_error(), "asks for GPUs") != NULL, "%s",
              rh_last_error());
    rh_release(ret);
}

Test(nogpu, a_gpu_actor_dies_with_the_reason)
{
    rh_actor_params_t p = { .field_mask = RH_ACTOR_PARAM_FIELD_RESOURCES,
                            .resources = "GPU=1" };
    rh_actor_t a;

    skip_with_gpus();
    cr_assert_eq(rh_actor_create("gpu_actor", NULL, 0, &p, &a), RH_OK, "%s",
                 rh_last_error());
    cr_assert_eq(rh_actor_ready(a, 30000, NULL), RH_ERR_ACTOR_DEAD);
    cr_assert(strstr(rh_last_error(), "asks for GPUs") != NULL, "%s",
              rh_last_error());
    rh_actor_release(a);
}

/* A GPU task or actor that fails for want of a device gives its GPU back
 * to the ledger: the rank offers GPU=1, so one that kept it would leave
 * every later one waiting instead of failing with the reason. */
Test(nogpu, failed_gpu_tasks_and_actors_give_the_gpu_back)
{
    rh_task_params_t tp = { .field_mask = RH_TASK_PARAM_FIELD_RESOURCES,
                            .resources = "GPU=1" };
    rh_actor_params_t ap = { .field_mask = RH_ACTOR_PARAM_FIELD_RESOURCES,
                             .resources = "GPU=1" };
    const void *ptr;
    size_t len;

    skip_with_gpus();
    for (int i = 0; i < 3; i++) {
        rh_actor_t a;
        rh_ref_t ret;

        cr_assert_eq(rh_remote("gpu_task", NULL, 0, &tp, &ret), RH_OK);
        cr_assert_eq(rh_get(ret, &ptr, &len, 30000), RH_ERR_TASK_FAILED,
                     "task %d: %s", i, rh_last_error());
        rh_release(ret);
        cr_assert_eq(rh_actor_create("gpu_actor", NULL, 0, &ap, &a), RH_OK);
        cr_assert_eq(rh_actor_ready(a, 30000, NULL), RH_ERR_ACTOR_DEAD,
                     "actor %d: %s", i, rh_last_error());
        rh_actor_release(a);
    }
}

/* Device d of a node goes to the rank with index d % ranks there. */
Test(gpu_deal, a_node_s_gpus_are_dealt_to_its_ranks)
{
    char out[128];

    cr_assert_eq(rh_gpu_share(8, 0, 1), 8);
    cr_assert_eq(rh_gpu_share(8, 3, 4), 2);
    cr_assert_eq(rh_gpu_share(3, 0, 2), 2);
    cr_assert_eq(rh_gpu_share(3, 1, 2), 1);
    cr_assert_eq(rh_gpu_share(1, 1, 2), 0);
    rh_gpu_deal("lic=2,GPU_NODE=3,x=1", 1, 2, out, sizeof(out));
    cr_assert_str_eq(out, "lic=2,GPU=1,x=1");
    rh_gpu_deal("GPU_NODE=1", 1, 2, out, sizeof(out));
    cr_assert_str_eq(out, "");
    rh_gpu_deal("GPU_NODE=4", 0, 1, out, sizeof(out));
    cr_assert_str_eq(out, "GPU=4");
    rh_gpu_deal("", 0, 4, out, sizeof(out));
    cr_assert_str_eq(out, "");
    rh_gpu_deal("GPU=0.5,lic=1", 2, 4, out, sizeof(out));
    cr_assert_str_eq(out, "GPU=0.5,lic=1");
}

/* What a rank without GPUs offers is what the user wrote. */
Test(gpu_deal, a_rank_without_gpus_offers_what_it_was_told)
{
    char out[128];

    if (rh_cuda_probe(NULL, 0) > 0) {
        cr_skip_test("this host has a GPU");
    }
    rh_gpu_describe("lic=2", out, sizeof(out));
    cr_assert_str_eq(out, "lic=2");
    rh_gpu_describe("", out, sizeof(out));
    cr_assert_str_eq(out, "");
}

/* ---- on a GPU (skipped, with one line, where there is none) ------------- */

static void gpu_setup(void)
{
    setenv("RAYHPC_NUM_WORKERS", "2", 1);
    cr_assert_eq(rh_register("gpu_task", gpu_task, 0, 1), RH_OK);
    register_gpu_actor();
    cr_assert_eq(rh_init(NULL, NULL, NULL), RH_OK, "%s", rh_last_error());
}

static void need_gpu(void)
{
    if (rh_gpu_check() != RH_OK) {
        cr_skip_test("skipped: no GPU (%s)", rh_last_error());
    }
}

TestSuite(gpu, .init = gpu_setup, .fini = teardown, .timeout = 120);

/* 8 MiB of device memory into an object and back into other device
 * memory, byte for byte, through the host copy in the store. */
Test(gpu, device_objects_round_trip)
{
    const size_t len = 8u << 20;
    uint8_t *host = malloc(len), *back = malloc(len);
    void *d1, *d2, *stream;
    const void *p;
    size_t got = 0;
    rh_ref_t ref;

    need_gpu();
    cr_assert(host != NULL && back != NULL);
    for (size_t i = 0; i < len; i++) {
        host[i] = (uint8_t)(i * 131 + (i >> 12));
    }
    cr_assert_eq(rh_cuda_malloc(len, &d1), RH_OK, "%s", rh_last_error());
    cr_assert_eq(rh_cuda_malloc(len, &d2), RH_OK, "%s", rh_last_error());
    cr_assert_eq(rh_gpu_thread_stream(0, &stream), RH_OK);
    cr_assert_eq(rh_cuda_copy_async(d1, host, len, stream), RH_OK);
    cr_assert_eq(rh_cuda_stream_sync(stream), RH_OK);
    cr_assert_eq(rh_put_device(d1, len, &ref), RH_OK, "%s", rh_last_error());
    cr_assert_eq(rh_get(ref, &p, &got, 0), RH_OK);
    cr_assert_eq(got, len);
    cr_assert(memcmp(p, host, len) == 0, "the object differs");
    cr_assert_eq(rh_release(ref), RH_OK);
    cr_assert_eq(rh_get_device(ref, d2, len - 1, &got, 0), RH_ERR_TOO_LARGE);
    cr_assert_eq(rh_get_device(ref, d2, len, &got, 0), RH_OK, "%s",
                 rh_last_error());
    cr_assert_eq(rh_cuda_copy_async(back, d2, len, stream), RH_OK);
    cr_assert_eq(rh_cuda_stream_sync(stream), RH_OK);
    cr_assert(memcmp(back, host, len) == 0, "the device copy differs");
    cr_assert_eq(rh_put_device(host, len, &ref), RH_ERR_INVALID_PARAM,
                 "host memory taken for device memory");
    rh_cuda_free(d1);
    rh_cuda_free(d2);
    free(host);
    free(back);
}

/* A task asking for half a GPU runs with a device current and a stream;
 * one asking for none has neither. */
Test(gpu, a_gpu_task_has_its_device)
{
    rh_task_params_t p = { .field_mask = RH_TASK_PARAM_FIELD_RESOURCES,
                           .resources = "GPU=0.5" };
    rh_ref_t ret[2];
    const void *ptr;
    size_t len;
    int dev;

    need_gpu();
    cr_assert_eq(rh_remote("gpu_task", NULL, 0, &p, &ret[0]), RH_OK);
    cr_assert_eq(rh_remote("gpu_task", NULL, 0, NULL, &ret[1]), RH_OK);
    cr_assert_eq(rh_get(ret[0], &ptr, &len, 60000), RH_OK, "%s",
                 rh_last_error());
    memcpy(&dev, ptr, sizeof(dev));
    cr_assert(dev >= 0 && dev < 64, "device %d", dev);
    cr_assert_eq(rh_get(ret[1], &ptr, &len, 60000), RH_OK);
    memcpy(&dev, ptr, sizeof(dev));
    cr_assert_eq(dev, -1);
    for (int i = 0; i < 2; i++) {
        rh_release(ret[i]);
        rh_release(ret[i]);
    }
}

/* An actor keeps its constructor's device: every method runs with it
 * current, so that the device memory of its state is at hand. */
Test(gpu, an_actor_s_methods_run_on_its_constructor_s_device)
{
    rh_actor_params_t p = { .field_mask = RH_ACTOR_PARAM_FIELD_RESOURCES,
                            .resources = "GPU=0.5" };
    rh_actor_t a;
    rh_ref_t r;
    const void *ptr;
    size_t len;
    int devs[2];

    need_gpu();
    cr_assert_eq(rh_actor_create("gpu_actor", NULL, 0, &p, &a), RH_OK);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(rh_actor_call(a, "where", NULL, 0, NULL, &r), RH_OK);
        cr_assert_eq(rh_get(r, &ptr, &len, 60000), RH_OK, "%s",
                     rh_last_error());
        memcpy(devs, ptr, sizeof(devs));
        cr_assert(devs[0] >= 0, "the constructor had no device");
        cr_assert_eq(devs[1], devs[0], "call %d on device %d, the "
                     "constructor's is %d", i, devs[1], devs[0]);
        rh_release(r);
        rh_release(r);
    }
    rh_actor_release(a);
}

/* ---- which device a task gets ------------------------------------------- */

#define U RH_RES_GPU_UNITS

Test(gpu_choose, a_fraction_fills_the_fullest_device_it_fits)
{
    long free_units[3] = { U, U / 2, U / 4 };
    int dev[4];
    long got[4];

    cr_assert_eq(rh_gpu_choose(free_units, 3, U / 4, dev, got, 4), 1);
    cr_assert_eq(dev[0], 2, "a quarter went to device %d", dev[0]);
    cr_assert_eq(free_units[2], 0);
    cr_assert_eq(rh_gpu_choose(free_units, 3, U / 4, dev, got, 4), 1);
    cr_assert_eq(dev[0], 1, "the next quarter went to device %d", dev[0]);
    cr_assert_eq(free_units[0], U, "the whole device was cut");
}

Test(gpu_choose, whole_gpus_take_distinct_free_devices)
{
    long free_units[4] = { U / 2, U, U, U };
    int dev[4];
    long got[4];

    cr_assert_eq(rh_gpu_choose(free_units, 4, 2 * U, dev, got, 4), 2);
    cr_assert(dev[0] != dev[1]);
    cr_assert(dev[0] != 0 && dev[1] != 0, "a shared device was taken");
    cr_assert_eq(got[0] + got[1], 2 * U);
    /* one and a half: a whole device and half of another */
    cr_assert_eq(rh_gpu_choose(free_units, 4, U + U / 2, dev, got, 4), 2);
    cr_assert_eq(got[0], U);
    cr_assert_eq(got[1], U / 2);
    cr_assert_eq(dev[1], 0, "the half went to device %d", dev[1]);
}

/* Fractions spread so that no device has room: the task shares the
 * freest device rather than not running. */
Test(gpu_choose, a_fraction_that_fits_nowhere_shares_the_freest)
{
    long free_units[2] = { U / 4, U / 2 - 1 };
    int dev[2];
    long got[2];

    cr_assert_eq(rh_gpu_choose(free_units, 2, U / 2, dev, got, 2), 1);
    cr_assert_eq(dev[0], 1);
    cr_assert_eq(free_units[1], -1);
    cr_assert_eq(rh_gpu_choose(free_units, 0, U, dev, got, 2), 0);
}
