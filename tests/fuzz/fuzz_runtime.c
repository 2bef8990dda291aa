/*
 * The runtime the fuzz targets feed, and the byte reader they decode their
 * inputs with.
 */
#include "fuzz_runtime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- functions hostile tasks may name ------------------------------------ */

/* Its first argument, back. */
static rh_status_t fz_echo(rh_task_ctx_t *ctx)
{
    size_t len;
    const void *p = rh_task_arg(ctx, 0, &len);

    return rh_task_return(ctx, 0, p, p != NULL ? len : 0);
}

static rh_status_t fz_pair(rh_task_ctx_t *ctx)
{
    for (int i = 0; i < 2; i++) {
        size_t len;
        const void *p = rh_task_arg(ctx, i, &len);
        rh_status_t status = rh_task_return(ctx, i, p, p != NULL ? len : 0);

        if (status != RH_OK) {
            return status;
        }
    }
    return RH_OK;
}

static rh_status_t fz_fail(rh_task_ctx_t *ctx)
{
    return rh_task_fail(ctx, "fz_fail failed with %d arguments",
                        rh_task_nargs(ctx));
}

static rh_status_t fz_none(rh_task_ctx_t *ctx)
{
    (void)ctx;
    return RH_OK;
}

/* A return as long as its argument says (up to 256 KiB): large ones live
 * in the store. */
static rh_status_t fz_big(rh_task_ctx_t *ctx)
{
    uint32_t n = 0;
    size_t len;
    const void *p = rh_task_arg(ctx, 0, &len);
    void *out;
    rh_status_t status;

    if (p != NULL) {
        memcpy(&n, p, len < sizeof(n) ? len : sizeof(n));
    }
    n &= (1u << 18) - 1;
    status = rh_task_return_alloc(ctx, 0, n, &out);
    if (status == RH_OK && n != 0) {
        memset(out, 0x5a, n);
    }
    return status;
}

/* The ref its first argument came as, as bytes. */
static rh_status_t fz_ref(rh_task_ctx_t *ctx)
{
    rh_ref_t ref = rh_task_arg_ref(ctx, 0);

    return rh_task_return(ctx, 0, &ref, sizeof(ref));
}

/* Submits a child with its first argument and lets the child's ref go. */
static rh_status_t fz_nest(rh_task_ctx_t *ctx)
{
    rh_ref_t ref = rh_task_arg_ref(ctx, 0), child;
    size_t len;
    const void *p = rh_task_arg(ctx, 0, &len);
    rh_arg_t arg = ref.hi != 0 || ref.lo != 0 ? rh_arg_ref(ref) :
                   rh_arg_bytes(p, p != NULL ? len : 0);
    rh_status_t status = rh_remote("fz_echo", &arg, 1, NULL, &child);

    if (status == RH_OK) {
        rh_release(child);
    }
    return status;
}

/* Sets the returns it has arguments for; the others stay unset. */
static rh_status_t fz_many(rh_task_ctx_t *ctx)
{
    for (int i = 0; i < rh_task_nargs(ctx) && i < 64; i++) {
        size_t len;
        const void *p = rh_task_arg(ctx, i, &len);
        rh_status_t status = rh_task_return(ctx, i, p, len);

        if (status != RH_OK) {
            return status;
        }
    }
    return RH_OK;
}

static const struct {
    const char   *name;
    rh_function_t fn;
    int           nargs, nreturns;
} rh_fuzz_fns[RH_FUZZ_NUM_FNS] = {
    { "fz_echo", fz_echo, -1, 1 },
    { "fz_pair", fz_pair, 2, 2 },
    { "fz_fail", fz_fail, -1, 1 },
    { "fz_none", fz_none, -1, 0 },
    { "fz_big",  fz_big,  1, 1 },
    { "fz_ref",  fz_ref,  -1, 1 },
    { "fz_nest", fz_nest, -1, 1 },
    { "fz_many", fz_many, -1, 64 },
};

/* Names nobody registered: unknown, empty, the longest a name may be, one
 * longer, one with the separator the registry forbids. */
static const char *const rh_fuzz_bad_names[] = {
    "fz_missing", "",
    "a23456789012345678901234567890123456789012345678901234567890123",
    "a234567890123456789012345678901234567890123456789012345678901234",
    "fz:echo",
};

const char *rh_fuzz_fn_name(unsigned i)
{
    unsigned nbad = sizeof(rh_fuzz_bad_names) / sizeof(rh_fuzz_bad_names[0]);

    i %= RH_FUZZ_NUM_FNS + nbad;
    return i < RH_FUZZ_NUM_FNS ? rh_fuzz_fns[i].name :
           rh_fuzz_bad_names[i - RH_FUZZ_NUM_FNS];
}

/* ---- an actor the messages can reach ------------------------------------- */

static rh_status_t rh_fuzz_actor_init(rh_task_ctx_t *ctx, void **state)
{
    (void)ctx;
    *state = NULL;
    return RH_OK;
}

static rh_status_t rh_fuzz_actor_echo(void *state, rh_task_ctx_t *ctx)
{
    size_t len = 0;
    const void *p = rh_task_nargs(ctx) > 0 ? rh_task_arg(ctx, 0, &len) :
                    NULL;

    (void)state;
    return rh_task_return(ctx, 0, p, len);
}

static rh_status_t rh_fuzz_actor_fail(void *state, rh_task_ctx_t *ctx)
{
    (void)state;
    return rh_task_fail(ctx, "fz_actor.fail");
}

static const rh_method_def_t rh_fuzz_actor_methods[] = {
    { "echo", rh_fuzz_actor_echo, -1, 1 },
    { "fail", rh_fuzz_actor_fail, 0, 1 },
};

/* ---- start and end ------------------------------------------------------- */

static void rh_fuzz_end(void)
{
    rh_status_t status = rh_finalize();

    if (status != RH_OK) {
        fprintf(stderr, "fuzz: rh_finalize failed: %s\n", rh_last_error());
        abort();
    }
}

void rh_fuzz_start(const char *target)
{
    static int started;
    rh_init_params_t params;
    rh_status_t status;

    if (started) {
        return;
    }
    started = 1;
    /* One worker, a spinning progress thread (each input is a trip to
     * it and back: 3x the inputs a second of the adaptive mode on a busy
     * machine) and quiet drops: the job is the messages, not the log. */
    setenv("RAYHPC_NUM_WORKERS", "1", 0);
    setenv("RAYHPC_PROGRESS", "polling", 0);
    setenv("RAYHPC_LOG_LEVEL", "error", 0);
    /* Under rayhpc-run the other ranks wait in rh_finalize for as long as
     * rank 0 fuzzes, not the default minute. */
    setenv("RAYHPC_FINALIZE_TIMEOUT", "86400s", 0);
    for (unsigned i = 0; i < RH_FUZZ_NUM_FNS; i++) {
        status = rh_register(rh_fuzz_fns[i].name, rh_fuzz_fns[i].fn,
                             rh_fuzz_fns[i].nargs, rh_fuzz_fns[i].nreturns);
        if (status != RH_OK) {
            fprintf(stderr, "%s: %s\n", target, rh_last_error());
            exit(1);
        }
    }
    {
        rh_actor_class_t cls;

        memset(&cls, 0, sizeof(cls));
        cls.init = rh_fuzz_actor_init;
        cls.init_nargs = -1;
        cls.methods = rh_fuzz_actor_methods;
        cls.num_methods = 2;
        if (rh_register_actor("fz_actor", &cls) != RH_OK) {
            fprintf(stderr, "%s: %s\n", target, rh_last_error());
            exit(1);
        }
    }
    memset(&params, 0, sizeof(params));
    status = rh_init(NULL, NULL, &params);
    if (status != RH_OK) {
        fprintf(stderr, "%s: rh_init failed: %s\n", target, rh_last_error());
        exit(1);
    }
    if (rh_rank() != 0) {
        /* Serves what rank 0's messages start until rank 0 ends. */
        status = rh_finalize();
        exit(status == RH_OK ? 0 : 1);
    }
    /* The first actor of rank 0: class 0, counter 1, here (RH_FUZZ_ACTOR_*
     * in the seeds). */
    {
        rh_actor_t a;

        if (rh_actor_create("fz_actor", NULL, 0, NULL, &a) != RH_OK ||
            rh_actor_ready(a, 60000, NULL) != RH_OK) {
            fprintf(stderr, "%s: the actor: %s\n", target, rh_last_error());
            exit(1);
        }
    }
    atexit(rh_fuzz_end);
}

/* ---- input --------------------------------------------------------------- */

const uint8_t *rh_fuzz_bytes(rh_fuzz_in_t *in, size_t len, size_t *got)
{
    const uint8_t *p = in->p;

    if (len > in->left) {
        len = in->left;
    }
    in->p += len;
    in->left -= len;
    *got = len;
    return p;
}

static uint64_t rh_fuzz_uint(rh_fuzz_in_t *in, size_t width)
{
    uint64_t v = 0;
    size_t got;
    const uint8_t *p = rh_fuzz_bytes(in, width, &got);

    for (size_t i = 0; i < got; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

uint8_t rh_fuzz_u8(rh_fuzz_in_t *in)
{
    return (uint8_t)rh_fuzz_uint(in, 1);
}

uint16_t rh_fuzz_u16(rh_fuzz_in_t *in)
{
    return (uint16_t)rh_fuzz_uint(in, 2);
}

uint32_t rh_fuzz_u32(rh_fuzz_in_t *in)
{
    return (uint32_t)rh_fuzz_uint(in, 4);
}

uint64_t rh_fuzz_u64(rh_fuzz_in_t *in)
{
    return rh_fuzz_uint(in, 8);
}

void rh_fuzz_write_seed(const char *dir, const char *name, const void *buf,
                        size_t len)
{
    char path[4096];
    FILE *f;

    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "cannot create %s: %s\n", dir, strerror(errno));
        exit(1);
    }
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
}

int rh_fuzz_initialize(const char *target, void (*write_seeds)(const char *),
                       void (*report)(void))
{
    const char *seeds = getenv("RH_FUZZ_SEEDS");

    if (seeds != NULL) {
        write_seeds(seeds);
        exit(0);
    }
    rh_fuzz_start(target);
    atexit(report);
    return 0;
}
