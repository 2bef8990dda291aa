/*
 * The threaded core under load, for the ThreadSanitizer stage (criterion
 * cannot run there): three driver threads at once submit nested fib tasks,
 * fan-out/fan-in trees, chains ending in a failed task, and put/get/release
 * of objects, while the workers steal, help and complete futures.
 *
 * usage: tasks_stress [ROUNDS]   prints "STRESS OK" when every answer was
 * right.
 */
#include <pthread.h>
#include <string.h>

#include "rank_util.h"

#define DRIVERS 3

static rh_status_t fib(rh_task_ctx_t *ctx)
{
    int64_t n, a, b;
    const void *p;
    size_t len;
    rh_ref_t r[2];

    memcpy(&n, rh_task_arg(ctx, 0, NULL), sizeof(n));
    if (n < 2) {
        return rh_task_return(ctx, 0, &n, sizeof(n));
    }
    a = n - 1;
    b = n - 2;
    rh_arg_t args[2] = { rh_arg_bytes(&a, sizeof(a)),
                         rh_arg_bytes(&b, sizeof(b)) };
    for (int i = 0; i < 2; i++) {
        rh_status_t st = rh_remote("fib", &args[i], 1, NULL, &r[i]);

        if (st != RH_OK) {
            return st;
        }
    }
    n = 0;
    for (int i = 0; i < 2; i++) {
        rh_status_t st = rh_get(r[i], &p, &len, RH_TIMEOUT_INFINITE);

        if (st != RH_OK) {
            return st;
        }
        memcpy(&a, p, sizeof(a));
        n += a;
        rh_release(r[i]);
        rh_release(r[i]);
    }
    return rh_task_return(ctx, 0, &n, sizeof(n));
}

static rh_status_t sum(rh_task_ctx_t *ctx)
{
    int64_t total = 0, v;

    for (int i = 0; i < rh_task_nargs(ctx); i++) {
        memcpy(&v, rh_task_arg(ctx, i, NULL), sizeof(v));
        total += v;
    }
    return rh_task_return(ctx, 0, &total, sizeof(total));
}

static rh_status_t boom(rh_task_ctx_t *ctx)
{
    return rh_task_fail(ctx, "boom");
}

static _Atomic int wrong;

static int64_t value(rh_ref_t r)
{
    const void *p;
    size_t len;
    int64_t v = -1;

    if (rh_get(r, &p, &len, 60000) == RH_OK && len == sizeof(v)) {
        memcpy(&v, p, sizeof(v));
        rh_release(r);
    }
    rh_release(r);
    return v;
}

static void *driver(void *arg)
{
    long rounds = (long)(intptr_t)arg;

    for (long k = 0; k < rounds; k++) {
        int64_t n = 15, one = 1, big[512];
        rh_arg_t a = rh_arg_bytes(&n, sizeof(n)), leaves[64];
        rh_ref_t r, refs[64], obj;
        const void *p;
        size_t len;

        /* nested tasks */
        if (rh_remote("fib", &a, 1, NULL, &r) != RH_OK || value(r) != 610) {
            atomic_store(&wrong, 1);
        }
        /* fan-out / fan-in */
        for (int i = 0; i < 64; i++) {
            a = rh_arg_bytes(&one, sizeof(one));
            rh_remote("sum", &a, 1, NULL, &refs[i]);
            leaves[i] = rh_arg_ref(refs[i]);
        }
        rh_remote("sum", leaves, 64, NULL, &r);
        for (int i = 0; i < 64; i++) {
            rh_release(refs[i]);
        }
        if (value(r) != 64) {
            atomic_store(&wrong, 1);
        }
        /* an error travelling down a chain */
        rh_remote("boom", NULL, 0, NULL, &refs[0]);
        a = rh_arg_ref(refs[0]);
        rh_remote("sum", &a, 1, NULL, &r);
        rh_release(refs[0]);
        if (rh_get(r, &p, &len, 60000) != RH_ERR_TASK_FAILED ||
            strcmp(rh_last_error(), "boom") != 0) {
            atomic_store(&wrong, 1);
        }
        rh_release(r);
        /* objects in the store */
        for (int i = 0; i < 512; i++) {
            big[i] = k + i;
        }
        if (rh_put(big, sizeof(big), &obj) != RH_OK ||
            rh_get(obj, &p, &len, 0) != RH_OK || len != sizeof(big) ||
            memcmp(p, big, sizeof(big)) != 0) {
            atomic_store(&wrong, 1);
        }
        rh_release(obj);
        rh_release(obj);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 20;
    pthread_t t[DRIVERS];

    CHECK(rh_register("fib", fib, 1, 1));
    CHECK(rh_register("sum", sum, -1, 1));
    CHECK(rh_register("boom", boom, 0, 1));
    CHECK(rh_init(&argc, &argv, NULL));
    for (int i = 0; i < DRIVERS; i++) {
        pthread_create(&t[i], NULL, driver, (void *)(intptr_t)rounds);
    }
    for (int i = 0; i < DRIVERS; i++) {
        pthread_join(t[i], NULL);
    }
    if (atomic_load(&wrong)) {
        fprintf(stderr, "rank %d: a wrong answer\n", rh_rank());
        return 1;
    }
    printf("STRESS OK rank %d: %d drivers x %ld rounds\n", rh_rank(),
           DRIVERS, rounds);
    fflush(stdout);
    CHECK(rh_finalize());
    return 0;
}
