/*
 * The resource ledger under threads, for the ThreadSanitizer stage: three
 * driver threads submit tasks asking for all the rank's CPUs, one CPU or
 * none, so that most wait in the ledger and are handed their CPUs as
 * others end. Each task checks that the CPUs held at once never exceed
 * the rank's and returns its argument.
 *
 * usage: resources [TASKS]   prints "RESOURCES OK" when every answer was
 * right and the ledger never gave out more CPUs than it has.
 */
#include <pthread.h>
#include <string.h>

#include "core/core.h"
#include "rank_util.h"
#include "sched/pool.h"

#define DRIVERS 3

static int workers;
static _Atomic int in_use, over, wrong;

static rh_status_t hold(rh_task_ctx_t *ctx)
{
    /* Not `workers`: another rank's tasks may run here before this rank's
     * main has set it. */
    int have = rh_pool_num_workers(rh_core_pool());
    int64_t v, cpus;

    memcpy(&v, rh_task_arg(ctx, 0, NULL), sizeof(v));
    memcpy(&cpus, rh_task_arg(ctx, 1, NULL), sizeof(cpus));
    if (atomic_fetch_add(&in_use, (int)cpus) + cpus > have) {
        atomic_store(&over, 1);
    }
    for (volatile int i = 0; i < 2000; i++) {
    }
    atomic_fetch_sub(&in_use, (int)cpus);
    return rh_task_return(ctx, 0, &v, sizeof(v));
}

static void *driver(void *arg)
{
    long n = (long)(intptr_t)arg;
    rh_ref_t *refs = calloc((size_t)n, sizeof(*refs));

    for (long i = 0; i < n; i++) {
        int64_t v = i, cpus = i % 3 == 0 ? workers : i % 3 == 1 ? 1 : 0;
        rh_arg_t a[2] = { rh_arg_bytes(&v, sizeof(v)),
                          rh_arg_bytes(&cpus, sizeof(cpus)) };
        rh_task_params_t p = { 0 };

        p.field_mask = RH_TASK_PARAM_FIELD_NUM_CPUS;
        p.num_cpus = (int)cpus;
        if (rh_remote("hold", a, 2, &p, &refs[i]) != RH_OK) {
            atomic_store(&wrong, 1);
        }
    }
    for (long i = 0; i < n; i++) {
        const void *p;
        size_t len;
        int64_t v = -1;

        if (rh_get(refs[i], &p, &len, 60000) == RH_OK && len == sizeof(v)) {
            memcpy(&v, p, sizeof(v));
            rh_release(refs[i]);
        }
        rh_release(refs[i]);
        if (v != i) {
            atomic_store(&wrong, 1);
        }
    }
    free(refs);
    return NULL;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 300;
    pthread_t t[DRIVERS];

    CHECK(rh_register("hold", hold, 2, 1));
    CHECK(rh_init(&argc, &argv, NULL));
    workers = rh_pool_num_workers(rh_core_pool());
    for (int i = 0; i < DRIVERS; i++) {
        pthread_create(&t[i], NULL, driver, (void *)(intptr_t)n);
    }
    for (int i = 0; i < DRIVERS; i++) {
        pthread_join(t[i], NULL);
    }
    if (atomic_load(&wrong) || atomic_load(&over)) {
        fprintf(stderr, "rank %d: %s\n", rh_rank(), atomic_load(&over) ?
                "more CPUs held at once than the rank has" : "a wrong answer");
        return 1;
    }
    printf("RESOURCES OK rank %d: %d drivers x %ld tasks on %d workers\n",
           rh_rank(), DRIVERS, n, workers);
    fflush(stdout);
    CHECK(rh_finalize());
    return 0;
}
