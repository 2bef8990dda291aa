/*
 * Objects and tasks on one rank (a singleton job per test: criterion runs
 * each test in a process of its own).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <unistd.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/core.h"
#include "core/future.h"
#include "plasma/store.h"
#include "rayhpc.h"

/* ---- functions ----------------------------------------------------------- */

static rh_status_t fib(rh_task_ctx_t *ctx)
{
    int64_t n, a, b;
    size_t len;
    const void *pa, *pb;
    rh_ref_t r[2];
    rh_status_t st;

    memcpy(&n, rh_task_arg(ctx, 0, &len), sizeof(n));
    if (n < 2) {
        return rh_task_return(ctx, 0, &n, sizeof(n));
    }
    a = n - 1;
    b = n - 2;
    rh_arg_t arg_a = rh_arg_bytes(&a, sizeof(a));
    rh_arg_t arg_b = rh_arg_bytes(&b, sizeof(b));
    if ((st = rh_remote("fib", &arg_a, 1, NULL, &r[0])) != RH_OK ||
        (st = rh_remote("fib", &arg_b, 1, NULL, &r[1])) != RH_OK) {
        return st;
    }
    /* Nested, blocking gets: the worker runs other tasks meanwhile. */
    if ((st = rh_get(r[0], &pa, &len, RH_TIMEOUT_INFINITE)) != RH_OK ||
        (st = rh_get(r[1], &pb, &len, RH_TIMEOUT_INFINITE)) != RH_OK) {
        return st;
    }
    memcpy(&a, pa, sizeof(a));
    memcpy(&b, pb, sizeof(b));
    n = a + b;
    for (int i = 0; i < 2; i++) {
        rh_release(r[i]);   /* the get's hold */
        rh_release(r[i]);   /* the submit's hold */
    }
    return rh_task_return(ctx, 0, &n, sizeof(n));
}

/* deep(n): 0 at the bottom, else deep(n - 1) + 1, one nested get a level. */
static rh_status_t deep(rh_task_ctx_t *ctx)
{
    int64_t n, v;
    const void *p;
    size_t len;
    rh_ref_t r;
    rh_status_t st;

    memcpy(&n, rh_task_arg(ctx, 0, NULL), sizeof(n));
    if (n == 0) {
        return rh_task_return(ctx, 0, &n, sizeof(n));
    }
    n--;
    rh_arg_t arg = rh_arg_bytes(&n, sizeof(n));
    if ((st = rh_remote("deep", &arg, 1, NULL, &r)) != RH_OK ||
        (st = rh_get(r, &p, &len, RH_TIMEOUT_INFINITE)) != RH_OK) {
        return st;
    }
    memcpy(&v, p, sizeof(v));
    rh_release(r);
    rh_release(r);
    v++;
    return rh_task_return(ctx, 0, &v, sizeof(v));
}

static rh_status_t leaf(rh_task_ctx_t *ctx)
{
    int64_t one = 1;

    return rh_task_return(ctx, 0, &one, sizeof(one));
}

/* Sums its int64 arguments. */
static rh_status_t sum(rh_task_ctx_t *ctx)
{
    int64_t total = 0, v;

    for (int i = 0; i < rh_task_nargs(ctx); i++) {
        memcpy(&v, rh_task_arg(ctx, i, NULL), sizeof(v));
        total += v;
    }
    return rh_task_return(ctx, 0, &total, sizeof(total));
}

static rh_status_t fails(rh_task_ctx_t *ctx)
{
    return rh_task_fail(ctx, "sensor %d is on fire", 7);
}

/* Fails without a message (a NULL format, held in a variable so that the
 * compiler's format check lets it through). */
static const char *volatile no_message;

static rh_status_t fails_silently(rh_task_ctx_t *ctx)
{
    return rh_task_fail(ctx, no_message);
}

/* Passes its argument on, plus one. */
static rh_status_t inc(rh_task_ctx_t *ctx)
{
    int64_t v;

    memcpy(&v, rh_task_arg(ctx, 0, NULL), sizeof(v));
    v++;
    return rh_task_return(ctx, 0, &v, sizeof(v));
}

/* Returns a 1 MiB block in place (zero copy). */
static rh_status_t big(rh_task_ctx_t *ctx)
{
    uint8_t *p;
    rh_status_t st = rh_task_return_alloc(ctx, 0, 1 << 20, (void **)&p);

    if (st != RH_OK) {
        return st;
    }
    for (size_t i = 0; i < (1 << 20); i++) {
        p[i] = (uint8_t)(i * 7);
    }
    return RH_OK;
}

/* Waits until the test opens the gate, then reads its argument: the
 * runtime holds the argument and the return meanwhile. */
static _Atomic int gate_open;
static _Atomic int64_t gated_seen = -1;

static rh_status_t gated(rh_task_ctx_t *ctx)
{
    int64_t v;

    while (!atomic_load(&gate_open)) {
        usleep(1000);
    }
    memcpy(&v, rh_task_arg(ctx, 0, NULL), sizeof(v));
    atomic_store(&gated_seen, v);
    return rh_task_return(ctx, 0, &v, sizeof(v));
}

static void setup(void)
{
    cr_assert_eq(rh_register("fib", fib, 1, 1), RH_OK);
    cr_assert_eq(rh_register("leaf", leaf, 0, 1), RH_OK);
    cr_assert_eq(rh_register("sum", sum, -1, 1), RH_OK);
    cr_assert_eq(rh_register("fails", fails, 0, 1), RH_OK);
    cr_assert_eq(rh_register("fails_silently", fails_silently, 0, 1), RH_OK);
    cr_assert_eq(rh_register("inc", inc, 1, 1), RH_OK);
    cr_assert_eq(rh_register("big", big, 0, 1), RH_OK);
    cr_assert_eq(rh_register("deep", deep, 1, 1), RH_OK);
    cr_assert_eq(rh_register("gated", gated, 1, 1), RH_OK);
    cr_assert_eq(rh_init(NULL, NULL, NULL), RH_OK, "%s", rh_last_error());
}

static void teardown(void)
{
    cr_expect_eq(rh_finalize(), RH_OK, "%s", rh_last_error());
}

/* Room for a 1 GiB object: only the tests that need it pay for
 * pre-faulting a big store. */
static void setup_big(void)
{
    setenv("RAYHPC_STORE_SIZE", "1536M", 1);
    /* the full store below is full of unsealed puts: no wait helps */
    setenv("RAYHPC_PUT_TIMEOUT_MS", "100", 1);
    setup();
}

TestSuite(tasks, .init = setup, .fini = teardown, .timeout = 120);
TestSuite(big, .init = setup_big, .fini = teardown, .timeout = 120);

static int64_t get_i64(rh_ref_t ref)
{
    const void *p;
    size_t len;
    int64_t v;

    cr_assert_eq(rh_get(ref, &p, &len, RH_TIMEOUT_INFINITE), RH_OK, "%s",
                 rh_last_error());
    cr_assert_eq(len, sizeof(v));
    memcpy(&v, p, sizeof(v));
    rh_release(ref);
    return v;
}

Test(tasks, fib_25_by_nested_tasks)
{
    int64_t n = 25;
    rh_arg_t arg = rh_arg_bytes(&n, sizeof(n));
    rh_ref_t r;

    cr_assert_eq(rh_remote("fib", &arg, 1, NULL, &r), RH_OK);
    cr_expect_eq(get_i64(r), 75025);
    rh_release(r);
}

Test(tasks, fan_out_fan_in_of_100k_tasks)
{
    enum { N = 100000, FAN = 100 };
    rh_ref_t *leaves = malloc(N * sizeof(*leaves));
    rh_ref_t mids[N / FAN], top;
    rh_arg_t *args = malloc(N * sizeof(*args));

    for (int i = 0; i < N; i++) {
        cr_assert_eq(rh_remote("leaf", NULL, 0, NULL, &leaves[i]), RH_OK);
    }
    for (int m = 0; m < N / FAN; m++) {
        for (int i = 0; i < FAN; i++) {
            args[i] = rh_arg_ref(leaves[m * FAN + i]);
        }
        cr_assert_eq(rh_remote("sum", args, FAN, NULL, &mids[m]), RH_OK);
    }
    for (int m = 0; m < N / FAN; m++) {
        args[m] = rh_arg_ref(mids[m]);
    }
    cr_assert_eq(rh_remote("sum", args, N / FAN, NULL, &top), RH_OK);
    cr_expect_eq(get_i64(top), N);
    rh_release(top);
    for (int i = 0; i < N; i++) {
        rh_release(leaves[i]);
    }
    for (int m = 0; m < N / FAN; m++) {
        rh_release(mids[m]);
    }
    free(leaves);
    free(args);
}

/* A put and a task that reads it, `rounds` times; the released refs of
 * before stay released, whatever objects their slots hold now. */
static void run_past(int rounds, const rh_ref_t *old, int nold)
{
    const void *p;
    size_t len;

    for (int i = 0; i < rounds; i++) {
        int64_t v = i;
        rh_ref_t put, r;
        rh_arg_t arg;

        cr_assert_eq(rh_put(&v, sizeof(v), &put), RH_OK, "put %d: %s", i,
                     rh_last_error());
        arg = rh_arg_ref(put);
        cr_assert_eq(rh_remote("inc", &arg, 1, NULL, &r), RH_OK,
                     "task %d: %s", i, rh_last_error());
        rh_release(put);
        cr_assert_eq(get_i64(r), i + 1);
        rh_release(r);
    }
    for (int k = 0; k < nold; k++) {
        cr_expect_eq(rh_get(old[k], &p, &len, 0), RH_ERR_INVALID_REF);
        cr_expect(strstr(rh_last_error(), "released") != NULL, "%s",
                  rh_last_error());
        cr_expect_eq(rh_release(old[k]), RH_ERR_INVALID_REF);
    }
}

/* A put and a task's return, both released. */
static void released_refs(rh_ref_t old[2])
{
    int64_t v = 7;

    cr_assert_eq(rh_put(&v, sizeof(v), &old[0]), RH_OK);
    cr_assert_eq(rh_remote("leaf", NULL, 0, NULL, &old[1]), RH_OK);
    cr_assert_eq(get_i64(old[1]), 1);
    rh_release(old[0]);
    rh_release(old[1]);
}

Test(tasks, puts_and_tasks_go_on_past_2_to_the_32_objects)
{
    rh_ref_t old[2];

    released_refs(old);
    rh_future_test_wear((uint64_t)1 << 32);
    run_past(10000, old, 2);
}

Test(tasks, puts_and_tasks_go_on_as_object_table_slots_retire)
{
    rh_ref_t old[2];

    released_refs(old);
    /* each slot has one generation left: every object retires one */
    rh_future_test_wear((RH_FUTURE_GENERATIONS - 1) <<
                        RH_FUTURE_TABLE_MIN_BITS);
    run_past(3 << RH_FUTURE_TABLE_MIN_BITS, old, 2);
}

Test(tasks, chain_passes_values_along)
{
    int64_t zero = 0;
    rh_arg_t arg = rh_arg_bytes(&zero, sizeof(zero));
    rh_ref_t r, prev;

    cr_assert_eq(rh_remote("inc", &arg, 1, NULL, &prev), RH_OK);
    for (int i = 1; i < 1000; i++) {
        arg = rh_arg_ref(prev);
        cr_assert_eq(rh_remote("inc", &arg, 1, NULL, &r), RH_OK);
        rh_release(prev);
        prev = r;
    }
    cr_expect_eq(get_i64(prev), 1000);
    rh_release(prev);
}

Test(big, put_get_byte_exact_from_0_bytes_to_1_gib)
{
    static const size_t sizes[] = { 0, 1, 63, 64, 4096, 1 << 20, 64 << 20,
                                    1u << 30 };

    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t n = sizes[k], len;
        uint8_t *buf = malloc(n ? n : 1);
        const void *p;
        rh_ref_t r;

        for (size_t i = 0; i < n; i++) {
            buf[i] = (uint8_t)(i * 31 + k);
        }
        cr_assert_eq(rh_put(buf, n, &r), RH_OK, "%zu: %s", n,
                     rh_last_error());
        cr_assert_eq(rh_get(r, &p, &len, 0), RH_OK);
        cr_expect_eq(len, n);
        cr_expect(n == 0 || memcmp(p, buf, n) == 0, "%zu bytes differ", n);
        cr_expect(n == 0 || p != buf, "a pointer into the store");
        rh_release(r);
        rh_release(r);
        free(buf);
    }
}

Test(tasks, put_create_fills_in_place)
{
    void *p;
    const void *q;
    size_t len;
    rh_ref_t r;

    cr_assert_eq(rh_put_create(100, &r, &p), RH_OK);
    cr_expect_eq(rh_get(r, &q, &len, 0), RH_ERR_TIMEOUT,
                 "not visible before seal");
    memset(p, 0x5a, 100);
    cr_assert_eq(rh_put_seal(r), RH_OK);
    cr_assert_eq(rh_get(r, &q, &len, 0), RH_OK);
    cr_expect_eq(q, p, "the same bytes, not a copy");
    cr_expect_eq(rh_put_seal(r), RH_ERR_INVALID_REF, "sealed twice");
    rh_release(r);
    rh_release(r);
}

Test(tasks, large_returns_are_written_in_place)
{
    rh_ref_t r;
    const uint8_t *p;
    size_t len;

    cr_assert_eq(rh_remote("big", NULL, 0, NULL, &r), RH_OK);
    cr_assert_eq(rh_get(r, (const void **)&p, &len, RH_TIMEOUT_INFINITE),
                 RH_OK);
    cr_assert_eq(len, 1u << 20);
    for (size_t i = 0; i < len; i++) {
        cr_assert_eq(p[i], (uint8_t)(i * 7));
    }
    rh_release(r);
    rh_release(r);
}

Test(tasks, wait_follows_ray_semantics)
{
    rh_ref_t refs[3];
    int ready[3];
    void *p;
    int64_t v = 1;

    cr_assert_eq(rh_put(&v, sizeof(v), &refs[0]), RH_OK);
    cr_assert_eq(rh_put(&v, sizeof(v), &refs[1]), RH_OK);
    cr_assert_eq(rh_put_create(8, &refs[2], &p), RH_OK);   /* not sealed */
    cr_assert_eq(rh_wait(refs, 3, 2, RH_TIMEOUT_INFINITE, ready), RH_OK);
    cr_expect(ready[0] && ready[1] && !ready[2], "k < n");
    cr_assert_eq(rh_wait(refs, 3, 3, 0, ready), RH_OK, "timeout 0 polls");
    cr_expect(!ready[2]);
    cr_assert_eq(rh_wait(refs, 3, 3, 50, ready), RH_OK, "timeout expiring");
    cr_expect_eq(ready[0] + ready[1] + ready[2], 2);
    cr_expect_eq(rh_wait(refs, 3, 4, 0, ready), RH_ERR_INVALID_PARAM,
                 "k > n");
    cr_assert_eq(rh_put_seal(refs[2]), RH_OK);
    cr_assert_eq(rh_wait(refs, 3, 3, RH_TIMEOUT_INFINITE, ready), RH_OK,
                 "k = n");
    cr_expect(ready[0] && ready[1] && ready[2]);
    for (int i = 0; i < 3; i++) {
        rh_release(refs[i]);
    }
}

Test(tasks, error_propagates_through_a_chain_of_3_with_its_message)
{
    rh_ref_t a, b, c;
    rh_arg_t arg;
    const void *p;
    size_t len;

    cr_assert_eq(rh_remote("fails", NULL, 0, NULL, &a), RH_OK);
    arg = rh_arg_ref(a);
    cr_assert_eq(rh_remote("inc", &arg, 1, NULL, &b), RH_OK);
    arg = rh_arg_ref(b);
    cr_assert_eq(rh_remote("inc", &arg, 1, NULL, &c), RH_OK);
    cr_expect_eq(rh_get(c, &p, &len, RH_TIMEOUT_INFINITE),
                 RH_ERR_TASK_FAILED);
    cr_expect_str_eq(rh_last_error(), "sensor 7 is on fire");
    cr_expect_eq(rh_get(a, &p, &len, RH_TIMEOUT_INFINITE),
                 RH_ERR_TASK_FAILED);
    rh_release(a);
    rh_release(b);
    rh_release(c);
}

Test(tasks, a_failure_without_a_message_says_so)
{
    rh_ref_t a;
    const void *p;
    size_t len;

    cr_assert_eq(rh_remote("fails_silently", NULL, 0, NULL, &a), RH_OK);
    cr_expect_eq(rh_get(a, &p, &len, RH_TIMEOUT_INFINITE),
                 RH_ERR_TASK_FAILED);
    cr_expect(strstr(rh_last_error(), "no message given") != NULL, "%s",
              rh_last_error());
    rh_release(a);
}

Test(tasks, bad_calls_get_their_own_status_and_message)
{
    rh_ref_t r, null_ref = {0, 0}, bogus = {0, 999999};
    int64_t v = 0;
    rh_arg_t one = rh_arg_bytes(&v, sizeof(v));
    const void *p;
    size_t len;

    cr_expect_eq(rh_remote("no_such_fn", NULL, 0, NULL, &r),
                 RH_ERR_UNKNOWN_FUNCTION);
    cr_expect(strstr(rh_last_error(), "no_such_fn") != NULL);
    cr_expect_eq(rh_remote("inc", NULL, 0, NULL, &r), RH_ERR_BAD_ARG_COUNT);
    cr_expect(strstr(rh_last_error(), "inc takes 1 argument, got 0") != NULL,
              "%s", rh_last_error());
    cr_expect_eq(rh_remote("leaf", &one, 1, NULL, &r), RH_ERR_BAD_ARG_COUNT);
    cr_expect_eq(rh_get(null_ref, &p, &len, 0), RH_ERR_INVALID_REF);
    cr_expect_eq(rh_get(bogus, &p, &len, 0), RH_ERR_INVALID_REF);
    cr_expect_eq(rh_release(bogus), RH_ERR_INVALID_REF);
    one = rh_arg_ref(null_ref);
    cr_expect_eq(rh_remote("inc", &one, 1, NULL, &r), RH_ERR_INVALID_REF);
    cr_expect(strstr(rh_last_error(), "null ref") != NULL, "%s",
              rh_last_error());
    /* An argument kind out of range is a bad parameter, not a bad ref. */
    one = rh_arg_bytes(&v, sizeof(v));
    one.kind = (rh_arg_kind_t)7;
    cr_expect_eq(rh_remote("inc", &one, 1, NULL, &r), RH_ERR_INVALID_PARAM);
    cr_expect(strstr(rh_last_error(), "kind 7") != NULL, "%s",
              rh_last_error());
    cr_expect_eq(rh_put(NULL, 5, &r), RH_ERR_INVALID_PARAM);
}

/* rh_release drops the owner's holds only: one past them is refused and
 * takes nothing from the runtime (an unsealed put, a running task's
 * argument and return), which would otherwise free the object under it. */
Test(tasks, a_release_past_the_owner_s_holds_takes_none_of_the_runtime_s)
{
    int64_t v = 41;
    rh_ref_t put, arg, ret;
    rh_arg_t a;
    void *p;
    const void *q;
    size_t len;
    long live0 = rh_future_live();

    rh_stats_t st0, st1;

    cr_assert_eq(rh_stats(&st0), RH_OK);
    cr_assert_eq(rh_put_create(1 << 20, &put, &p), RH_OK);
    memcpy(p, &v, sizeof(v));
    cr_expect_eq(rh_get(put, &q, &len, 0), RH_ERR_TIMEOUT, "not sealed");
    cr_expect_eq(rh_release(put), RH_OK);
    cr_expect_eq(rh_release(put), RH_ERR_INVALID_REF,
                 "the put's own reference is not the owner's");
    cr_expect(strstr(rh_last_error(), "released already") != NULL, "%s",
              rh_last_error());
    /* The owner let go before the seal: the put is abandoned, its buffer
     * freed, and it can no longer be sealed nor read. */
    cr_expect_eq(rh_put_seal(put), RH_ERR_INVALID_REF, "a put released "
                 "before its seal");
    cr_expect(strstr(rh_last_error(), "released before it was sealed") !=
              NULL, "%s", rh_last_error());
    cr_expect_eq(rh_get(put, &q, &len, 0), RH_ERR_INVALID_REF);
    cr_assert_eq(rh_stats(&st1), RH_OK);
    cr_expect_eq(st1.store_objects, st0.store_objects, "the abandoned put "
                 "left its buffer in the store");

    cr_assert_eq(rh_put(&v, sizeof(v), &arg), RH_OK);
    a = rh_arg_ref(arg);
    cr_assert_eq(rh_remote("gated", &a, 1, NULL, &ret), RH_OK);
    cr_assert_eq(rh_get(arg, &q, &len, 0), RH_OK);
    cr_expect_eq(rh_release(arg), RH_OK);   /* the get's */
    cr_expect_eq(rh_release(arg), RH_OK);   /* the put's */
    cr_expect_eq(rh_release(arg), RH_ERR_INVALID_REF,
                 "the task's hold on its argument is not the owner's");
    cr_expect_eq(rh_release(ret), RH_OK);
    cr_expect_eq(rh_release(ret), RH_ERR_INVALID_REF,
                 "the running task's hold on its return is not the owner's");
    atomic_store(&gate_open, 1);
    while (atomic_load(&gated_seen) < 0) {
        usleep(1000);
    }
    cr_expect_eq(atomic_load(&gated_seen), 41, "the argument stayed intact");
    /* Every future dies once the task is done, none twice. */
    while (rh_future_live() > live0) {
        usleep(1000);
    }
    cr_expect_eq(rh_future_live(), live0);
}

Test(big, oversize_object_names_both_sizes)
{
    rh_ref_t r;
    void *p;

    cr_expect_eq(rh_put_create(4ull << 30, &r, &p), RH_ERR_TOO_LARGE);
    cr_expect(strstr(rh_last_error(), "4294967296") != NULL ||
              strstr(rh_last_error(), "4 GiB") != NULL ||
              strstr(rh_last_error(), "4.0 GiB") != NULL,
              "message names the object size: %s", rh_last_error());
}

Test(big, full_store_is_reported_then_usable_after_release)
{
    rh_ref_t refs[64];
    int n = 0;
    void *p;
    rh_ref_t r;
    rh_status_t st;

    while ((st = rh_put_create(256u << 20, &refs[n], &p)) == RH_OK) {
        n++;
    }
    cr_expect_eq(st, RH_ERR_STORE_FULL, "%s", rh_last_error());
    cr_expect_gt(n, 0);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(rh_put_seal(refs[i]), RH_OK);
        rh_release(refs[i]);
    }
    cr_expect_eq(rh_put_create(1u << 30, &r, &p), RH_OK,
                 "usable again after the release: %s", rh_last_error());
    rh_put_seal(r);
    rh_release(r);
}

Test(tasks, get_times_out_on_an_object_that_never_comes)
{
    rh_ref_t r;
    void *p;
    const void *q;
    size_t len;

    cr_assert_eq(rh_put_create(8, &r, &p), RH_OK);
    cr_expect_eq(rh_get(r, &q, &len, 20), RH_ERR_TIMEOUT);
    cr_expect(strstr(rh_last_error(), "not ready") != NULL);
    rh_put_seal(r);
    rh_release(r);
}

static rh_ref_t late_ref;

static void *seal_late(void *arg)
{
    (void)arg;
    usleep(50000);
    rh_put_seal(late_ref);
    return NULL;
}

/* A timeout too long to add to the clock (INT64_MAX ms) waits as long as it
 * takes, like RH_TIMEOUT_INFINITE, instead of wrapping into the past. */
Test(tasks, get_with_the_longest_timeout_waits_for_the_object)
{
    pthread_t t;
    void *p;
    const void *q;
    size_t len;

    cr_assert_eq(rh_put_create(8, &late_ref, &p), RH_OK);
    memset(p, 7, 8);
    cr_assert_eq(pthread_create(&t, NULL, seal_late, NULL), 0);
    cr_expect_eq(rh_get(late_ref, &q, &len, INT64_MAX), RH_OK, "%s",
                 rh_last_error());
    pthread_join(t, NULL);
    rh_release(late_ref);
    rh_release(late_ref);
}

Test(tasks, store_segment_is_private_to_the_user)
{
    struct stat st;
    char path[300];

    snprintf(path, sizeof(path), "/dev/shm%s",
             rh_store_name(rh_core_store()));
    cr_assert_eq(stat(path, &st), 0, "%s", path);
    cr_expect_eq(st.st_mode & 0777, 0600);
}

/* ---- resources ------------------------------------------------------------- */

static _Atomic int running, overlapped;

/* Runs alone if its resources say so: watches for another task starting
 * while it holds them (bounded: a correct scheduler starts none). */
static rh_status_t exclusive(rh_task_ctx_t *ctx)
{
    (void)ctx;
    atomic_fetch_add(&running, 1);
    for (int i = 0; i < 2000000; i++) {
        if (atomic_load(&running) > 1) {
            atomic_store(&overlapped, 1);
        }
    }
    atomic_fetch_sub(&running, 1);
    return RH_OK;
}

static rh_status_t ordinary(rh_task_ctx_t *ctx)
{
    (void)ctx;
    atomic_fetch_add(&running, 1);
    for (volatile int i = 0; i < 100000; i++) {
    }
    atomic_fetch_sub(&running, 1);
    return RH_OK;
}

static void setup_resources(void)
{
    setenv("RAYHPC_NUM_WORKERS", "2", 1);
    setenv("RAYHPC_RESOURCES", "license=1,slot=3", 1);
    cr_assert_eq(rh_register("exclusive", exclusive, 0, 1), RH_OK);
    cr_assert_eq(rh_register("ordinary", ordinary, 0, 1), RH_OK);
    cr_assert_eq(rh_register("deep", deep, 1, 1), RH_OK);
    cr_assert_eq(rh_register("gated", gated, 1, 1), RH_OK);
    cr_assert_eq(rh_init(NULL, NULL, NULL), RH_OK, "%s", rh_last_error());
}

TestSuite(resources, .init = setup_resources, .fini = teardown,
          .timeout = 120);

static void get_and_drop(rh_ref_t r)
{
    const void *p;
    size_t len;

    cr_assert_eq(rh_get(r, &p, &len, RH_TIMEOUT_INFINITE), RH_OK, "%s",
                 rh_last_error());
    rh_release(r);
    rh_release(r);
}

Test(resources, a_task_holding_all_cpus_runs_alone)
{
    rh_task_params_t two = { .field_mask = RH_TASK_PARAM_FIELD_NUM_CPUS,
                             .num_cpus = 2 };
    rh_ref_t refs[9];

    cr_assert_eq(rh_remote("exclusive", NULL, 0, &two, &refs[0]), RH_OK);
    for (int i = 1; i < 9; i++) {
        cr_assert_eq(rh_remote("ordinary", NULL, 0, NULL, &refs[i]), RH_OK);
    }
    for (int i = 0; i < 9; i++) {
        get_and_drop(refs[i]);
    }
    cr_expect_eq(atomic_load(&overlapped), 0,
                 "a task ran beside the one holding both CPUs");
}

Test(resources, custom_resource_limits_concurrency)
{
    rh_task_params_t lic = { .field_mask = RH_TASK_PARAM_FIELD_RESOURCES,
                             .resources = "license=1" };
    rh_ref_t refs[4];

    lic.field_mask |= RH_TASK_PARAM_FIELD_NUM_CPUS;
    lic.num_cpus = 1;
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(rh_remote("exclusive", NULL, 0, &lic, &refs[i]), RH_OK);
    }
    for (int i = 0; i < 4; i++) {
        get_and_drop(refs[i]);
    }
    cr_expect_eq(atomic_load(&overlapped), 0,
                 "two tasks held the only license at once");
}

Test(resources, infeasible_task_stays_pending)
{
    rh_task_params_t too_many = {
        .field_mask = RH_TASK_PARAM_FIELD_RESOURCES, .resources = "license=2"
    };
    rh_ref_t r;
    const void *p;
    size_t len;

    cr_assert_eq(rh_remote("ordinary", NULL, 0, &too_many, &r), RH_OK);
    cr_expect_eq(rh_get(r, &p, &len, 50), RH_ERR_TIMEOUT);
    rh_release(r);
}

Test(resources, memory_is_offered_as_the_node_s_share)
{
    rh_task_params_t some = {
        .field_mask = RH_TASK_PARAM_FIELD_RESOURCES,
        .resources = "memory=1048576"
    };
    rh_task_params_t all = some;
    rh_ref_t r, big;
    const void *p;
    size_t len;

    /* a MiB of the node's memory fits; an exabyte never does */
    cr_assert_eq(rh_remote("ordinary", NULL, 0, &some, &r), RH_OK);
    get_and_drop(r);
    all.resources = "memory=1152921504606846976";
    cr_assert_eq(rh_remote("ordinary", NULL, 0, &all, &big), RH_OK);
    cr_expect_eq(rh_get(big, &p, &len, 50), RH_ERR_TIMEOUT);
    rh_release(big);
}

/* ---- a task stranded at rh_finalize -------------------------------------- */

static rh_status_t echo_arg(rh_task_ctx_t *ctx)
{
    size_t len;
    const void *p = rh_task_arg(ctx, 0, &len);

    return rh_task_return(ctx, 0, p, len);
}

static void setup_stranded(void)
{
    cr_assert_eq(rh_register("ordinary", ordinary, 0, 1), RH_OK);
    cr_assert_eq(rh_register("echo_arg", echo_arg, 1, 1), RH_OK);
    cr_assert_eq(rh_init(NULL, NULL, NULL), RH_OK, "%s", rh_last_error());
}

TestSuite(stranded, .init = setup_stranded, .timeout = 120);

/* A task that can never run (100 CPUs) and one waiting for its return:
 * rh_finalize fails both (the second as its dependency fails), and hands
 * neither to the pool it already stopped. */
Test(stranded, a_task_waiting_on_one_that_never_runs_fails_at_finalize)
{
    rh_task_params_t too_many = {
        .field_mask = RH_TASK_PARAM_FIELD_NUM_CPUS, .num_cpus = 100
    };
    rh_ref_t r, dep;
    rh_arg_t a;
    const void *p;
    size_t len;

    cr_assert_eq(rh_remote("ordinary", NULL, 0, &too_many, &r), RH_OK);
    a = rh_arg_ref(r);
    cr_assert_eq(rh_remote("echo_arg", &a, 1, NULL, &dep), RH_OK);
    cr_expect_eq(rh_get(dep, &p, &len, 50), RH_ERR_TIMEOUT);
    rh_release(r);
    rh_release(dep);
    cr_expect_eq(rh_finalize(), RH_OK, "%s", rh_last_error());
}

Test(resources, bad_resource_lists_are_refused)
{
    rh_task_params_t bad = { .field_mask = RH_TASK_PARAM_FIELD_RESOURCES,
                             .resources = "license" };
    rh_ref_t r;

    cr_expect_eq(rh_remote("ordinary", NULL, 0, &bad, &r),
                 RH_ERR_INVALID_PARAM);
    bad.resources = "license=-1";
    cr_expect_eq(rh_remote("ordinary", NULL, 0, &bad, &r),
                 RH_ERR_INVALID_PARAM);
    bad.field_mask = RH_TASK_PARAM_FIELD_NUM_CPUS;
    bad.num_cpus = -1;
    cr_expect_eq(rh_remote("ordinary", NULL, 0, &bad, &r),
                 RH_ERR_INVALID_PARAM);
}

Test(resources, nested_tasks_lend_their_cpus_while_they_wait)
{
    rh_task_params_t two = { .field_mask = RH_TASK_PARAM_FIELD_NUM_CPUS,
                             .num_cpus = 2 };
    int64_t n = 8;
    rh_arg_t arg = rh_arg_bytes(&n, sizeof(n));
    rh_ref_t r;
    const void *p;
    size_t len;

    /* From a task that asks for two CPUs on, every task holds one: the
     * chain's levels all wait at once, on 2 CPUs. */
    cr_assert_eq(rh_remote("exclusive", NULL, 0, &two, &r), RH_OK);
    get_and_drop(r);
    cr_assert_eq(rh_remote("deep", &arg, 1, NULL, &r), RH_OK);
    cr_assert_eq(rh_get(r, &p, &len, 30000), RH_OK, "%s", rh_last_error());
    cr_expect_eq(*(const int64_t *)p, 8);
    rh_release(r);
    rh_release(r);
}

/* ---- deep recursion ---------------------------------------------------------- */

TestSuite(recursion, .init = setup, .fini = teardown, .timeout = 200);

Test(recursion, chain_of_100000_nested_gets_gives_its_depth)
{
    int64_t n = 100000;
    rh_arg_t arg = rh_arg_bytes(&n, sizeof(n));
    rh_ref_t r;

    cr_assert_eq(rh_remote("deep", &arg, 1, NULL, &r), RH_OK);
    cr_expect_eq(get_i64(r), 100000);
    rh_release(r);
}

/* The older-task case: A waits for C, B waits for A, and the one worker
 * meets them in the order A, B, C. */
static _Atomic int a_started, c_known;
static rh_ref_t c_ref;

static rh_status_t task_a(rh_task_ctx_t *ctx)
{
    const void *p;
    size_t len;
    int64_t v;
    rh_status_t st;

    atomic_store(&a_started, 1);
    while (!atomic_load(&c_known)) {   /* the driver is about to submit C */
        sched_yield();
    }
    if ((st = rh_get(c_ref, &p, &len, RH_TIMEOUT_INFINITE)) != RH_OK) {
        return st;
    }
    memcpy(&v, p, sizeof(v));
    rh_release(c_ref);
    v += 1;
    return rh_task_return(ctx, 0, &v, sizeof(v));
}

static rh_status_t task_b(rh_task_ctx_t *ctx)
{
    rh_ref_t a;
    const void *p;
    size_t len;
    int64_t v;
    rh_status_t st;

    memcpy(&a, rh_task_arg(ctx, 0, NULL), sizeof(a));
    if ((st = rh_get(a, &p, &len, RH_TIMEOUT_INFINITE)) != RH_OK) {
        return st;
    }
    memcpy(&v, p, sizeof(v));
    rh_release(a);
    v *= 10;
    return rh_task_return(ctx, 0, &v, sizeof(v));
}

static void setup_one_worker(void)
{
    setenv("RAYHPC_NUM_WORKERS", "1", 1);
    cr_assert_eq(rh_register("task_a", task_a, 0, 1), RH_OK);
    cr_assert_eq(rh_register("task_b", task_b, 1, 1), RH_OK);
    setup();
}

TestSuite(one_worker, .init = setup_one_worker, .fini = teardown,
          .timeout = 120);

Test(one_worker, a_task_waiting_on_an_older_task_finishes)
{
    rh_ref_t a, b;
    rh_arg_t arg;
    const void *p;
    size_t len;

    cr_assert_eq(rh_remote("task_a", NULL, 0, NULL, &a), RH_OK);
    while (!atomic_load(&a_started)) {
        sched_yield();
    }
    /* B and C queue behind A while it runs. */
    arg = rh_arg_bytes(&a, sizeof(a));
    cr_assert_eq(rh_remote("task_b", &arg, 1, NULL, &b), RH_OK);
    cr_assert_eq(rh_remote("leaf", NULL, 0, NULL, &c_ref), RH_OK);
    atomic_store(&c_known, 1);
    cr_assert_eq(rh_get(b, &p, &len, 30000), RH_OK, "%s", rh_last_error());
    cr_expect_eq(*(const int64_t *)p, 20);
    rh_release(b);
    rh_release(b);
    rh_release(a);
    rh_release(c_ref);
}
