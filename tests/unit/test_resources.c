/* A rank's resource ledger with placement-group bundles: reserving moves
 * CPUs and resources to the bundle's names, removing moves them back. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "sched/resources.h"

static void no_retry(rh_res_waiter_t *w)
{
    (void)w;
}

static rh_res_req_t req(int cpus, const char *spec)
{
    rh_res_req_t r;

    cr_assert_eq(rh_resources_parse(spec, cpus, &r), RH_OK, "%s",
                 rh_last_error());
    return r;
}

Test(resources, a_bundle_takes_its_share_and_gives_it_back)
{
    rh_res_req_t bundle = req(1, "lic=1"), two_cpus = req(2, NULL);
    rh_res_req_t in_bundle = req(0, "pg1_0_CPU=1,pg1_0_lic=1");
    rh_res_waiter_t w = { .retry = no_retry };
    char why[256], free_now[256];

    cr_assert_eq(rh_resources_init(2, "lic=2"), RH_OK);
    cr_assert(rh_resources_feasible(&two_cpus, why, sizeof(why)));
    cr_assert_eq(rh_resources_bundle_add("pg1_0_", &bundle), RH_OK);
    /* the rank keeps one CPU and one lic for itself */
    cr_assert_not(rh_resources_feasible(&two_cpus, why, sizeof(why)));
    cr_assert(strstr(why, "2 CPUs") != NULL, "%s", why);
    cr_assert(rh_resources_feasible(&in_bundle, why, sizeof(why)), "%s", why);
    cr_assert(rh_resources_acquire(&in_bundle, &w));
    rh_resources_format(free_now, sizeof(free_now));
    cr_assert(strstr(free_now, "CPU=1") == free_now, "%s", free_now);
    cr_assert(strstr(free_now, "pg1_0_CPU=0") != NULL, "%s", free_now);
    rh_resources_release(&in_bundle);
    rh_resources_bundle_remove("pg1_0_", &bundle, no_retry);
    cr_assert(rh_resources_feasible(&two_cpus, why, sizeof(why)), "%s", why);
    rh_resources_format(free_now, sizeof(free_now));
    cr_assert(strstr(free_now, "CPU=2 lic=2") == free_now, "%s", free_now);
    rh_resources_fini(no_retry);
}

Test(resources, a_waiting_task_lends_its_bundle_cpus_back_to_its_bundle)
{
    rh_res_req_t bundle = req(1, "lic=1");
    rh_res_req_t in_bundle = req(0, "pg3_0_CPU=1,pg3_0_lic=1");
    rh_res_req_t child = req(0, "pg3_0_CPU=1");
    rh_res_waiter_t w = { .retry = no_retry }, cw = { .retry = no_retry };
    char free_now[256];

    cr_assert_eq(rh_resources_init(2, "lic=1"), RH_OK);
    cr_assert_eq(rh_resources_bundle_add("pg3_0_", &bundle), RH_OK);
    cr_assert(rh_resources_acquire(&in_bundle, &w));
    /* the bundle's CPU only, not its lic nor the rank's own CPU */
    cr_assert_eq(rh_resources_lend(&in_bundle), 1);
    rh_resources_format(free_now, sizeof(free_now));
    cr_assert(strstr(free_now, "CPU=1 ") == free_now, "%s", free_now);
    cr_assert(strstr(free_now, "pg3_0_CPU=1") != NULL, "%s", free_now);
    cr_assert(strstr(free_now, "pg3_0_lic=0") != NULL, "%s", free_now);
    cr_assert(rh_resources_acquire(&child, &cw));
    rh_resources_release(&child);
    rh_resources_reclaim(&in_bundle);
    rh_resources_format(free_now, sizeof(free_now));
    cr_assert(strstr(free_now, "pg3_0_CPU=0") != NULL, "%s", free_now);
    rh_resources_release(&in_bundle);
    rh_resources_bundle_remove("pg3_0_", &bundle, no_retry);
    rh_resources_format(free_now, sizeof(free_now));
    cr_assert(strstr(free_now, "CPU=2 lic=1") == free_now, "%s", free_now);
    rh_resources_fini(no_retry);
}

Test(resources, names_too_long_for_a_bundle_prefix_are_refused)
{
    rh_res_req_t r;
    char name[RH_RES_USER_NAME_MAX + 8];

    memset(name, 'x', sizeof(name) - 3);
    memcpy(name + sizeof(name) - 3, "=1", 3);
    cr_assert_eq(rh_resources_parse(name, 1, &r), RH_ERR_INVALID_PARAM);
}

/* A zero amount asks for nothing: kept, it would wait for ever for a name
 * this rank does not offer. */
Test(resources, zero_amounts_are_dropped_and_fit_a_rank_without_the_name)
{
    rh_res_req_t gpu0 = req(1, "GPU=0"), mixed = req(1, "lic=1,other=0");
    rh_res_waiter_t w = { .retry = no_retry };
    char why[256];

    cr_expect_eq(gpu0.n, 0);
    cr_assert_eq(mixed.n, 1);
    cr_expect_str_eq(mixed.items[0].name, "lic");
    cr_assert_eq(rh_resources_init(2, "lic=1"), RH_OK);
    cr_expect(rh_resources_feasible(&mixed, why, sizeof(why)), "%s", why);
    cr_expect(rh_resources_acquire(&gpu0, &w));
    cr_expect(rh_resources_acquire(&mixed, &w));
    rh_resources_release(&mixed);
    rh_resources_release(&gpu0);
    rh_resources_fini(no_retry);
}

/* CPUs are num_cpus: "CPU" in a resource string would name a custom
 * resource no rank offers. A rank's offer is read as written, but one
 * naming CPU is refused: its CPUs are its workers. */
Test(resources, cpu_in_a_resource_string_is_refused_naming_num_cpus)
{
    rh_res_req_t r;

    cr_expect_eq(rh_resources_parse("CPU=1", 0, &r), RH_ERR_INVALID_PARAM);
    cr_expect(strstr(rh_last_error(), "num_cpus") != NULL, "%s",
              rh_last_error());
    cr_expect_eq(rh_resources_parse("lic=1,CPU=0", 1, &r),
                 RH_ERR_INVALID_PARAM);
    cr_expect_eq(rh_resources_parse("pg1_0_CPU=1", 0, &r), RH_OK);
    cr_expect_eq(rh_resources_parse_offer("lic=0", 2, &r), RH_OK);
    cr_expect_eq(r.n, 1);
    /* A rank offering "CPU" offers what no task can ask for. */
    cr_expect_eq(rh_resources_parse_offer("lic=1,CPU=4", 2, &r),
                 RH_ERR_INVALID_PARAM);
    cr_expect(strstr(rh_last_error(), "RAYHPC_NUM_WORKERS") != NULL, "%s",
              rh_last_error());
}

/* Beyond RH_RES_AMOUNT_MAX the ledger's sums could overflow; strtol's
 * saturated LONG_MAX is refused too. */
Test(resources, amounts_beyond_the_ledger_s_range_are_refused)
{
    rh_res_req_t r;
    char spec[64];

    snprintf(spec, sizeof(spec), "lic=%ld", (long)RH_RES_AMOUNT_MAX);
    cr_expect_eq(rh_resources_parse(spec, 1, &r), RH_OK, "%s",
                 rh_last_error());
    snprintf(spec, sizeof(spec), "lic=%ld", (long)RH_RES_AMOUNT_MAX + 1);
    cr_expect_eq(rh_resources_parse(spec, 1, &r), RH_ERR_INVALID_PARAM);
    cr_expect_eq(rh_resources_parse("lic=99999999999999999999", 1, &r),
                 RH_ERR_INVALID_PARAM);
}

/* Bundles held on top of each other (a hostile global scheduler's) would
 * overflow the ledger's sums: the move that would is refused whole. */
Test(resources, a_bundle_whose_sums_would_overflow_is_refused)
{
    char spec[64], prefix[32], free_now[512];
    rh_res_req_t huge;
    int refused = 0;

    snprintf(spec, sizeof(spec), "lic=%ld", (long)RH_RES_AMOUNT_MAX);
    huge = req(0, spec);
    cr_assert_eq(rh_resources_init(1, "lic=1"), RH_OK);
    for (int i = 0; i < 16; i++) {
        snprintf(prefix, sizeof(prefix), "pg%d_0_", i);
        refused += rh_resources_bundle_add(prefix, &huge) != RH_OK;
    }
    cr_expect_gt(refused, 0);
    rh_resources_format(free_now, sizeof(free_now));
    cr_expect(strstr(free_now, "CPU=1 lic=-") == free_now, "%s", free_now);
    rh_resources_fini(no_retry);
}

Test(resources, a_bundle_removed_while_its_tasks_run_gives_back_as_they_end)
{
    rh_res_req_t bundle = req(2, "lic=1"), two_cpus = req(2, NULL);
    rh_res_req_t one_task = req(0, "pg2_0_CPU=1,pg2_0_lic=1");
    rh_res_waiter_t w = { .retry = no_retry };
    char free_now[256];

    cr_assert_eq(rh_resources_init(2, "lic=1"), RH_OK);
    cr_assert_eq(rh_resources_bundle_add("pg2_0_", &bundle), RH_OK);
    cr_assert(rh_resources_acquire(&one_task, &w));
    rh_resources_bundle_remove("pg2_0_", &bundle, no_retry);
    /* the running task keeps a CPU and the lic: the rank offers the rest */
    rh_resources_format(free_now, sizeof(free_now));
    cr_expect(strstr(free_now, "CPU=1 lic=0") == free_now, "%s", free_now);
    cr_expect_not(rh_resources_acquire(&two_cpus, &w),
                  "two CPUs were free while a task of the bundle ran");
    rh_resources_fini(no_retry);   /* drops the queued waiter */
    /* ... and gets them back when it ends; the bundle's names are gone */
    cr_assert_eq(rh_resources_init(2, "lic=1"), RH_OK);
    cr_assert_eq(rh_resources_bundle_add("pg2_0_", &bundle), RH_OK);
    cr_assert(rh_resources_acquire(&one_task, &w));
    rh_resources_bundle_remove("pg2_0_", &bundle, no_retry);
    rh_resources_release(&one_task);
    rh_resources_format(free_now, sizeof(free_now));
    cr_expect_str_eq(free_now, "CPU=2 lic=1");
    cr_expect(rh_resources_acquire(&two_cpus, &w));
    rh_resources_release(&two_cpus);
    rh_resources_fini(no_retry);
}

static int dropped;

static void count_drop(rh_res_waiter_t *w)
{
    (void)w;
    dropped++;
}

/* Tasks queued for a bundle's resources when it goes would wait for ever:
 * they are handed back; the rank's own waiters stay queued. */
Test(resources, a_removed_bundle_hands_back_the_tasks_queued_for_it)
{
    rh_res_req_t bundle = req(1, "lic=1"), two_cpus = req(2, NULL);
    rh_res_req_t in_bundle = req(0, "pg4_0_CPU=1"), in_other = req(0,
                                                                "pg4_1_CPU=1");
    rh_res_waiter_t w = { .retry = no_retry }, q1 = { .retry = no_retry };
    rh_res_waiter_t q2 = { .retry = no_retry }, own = { .retry = no_retry };
    rh_res_waiter_t q3 = { .retry = no_retry };

    dropped = 0;
    cr_assert_eq(rh_resources_init(3, "lic=2"), RH_OK);
    cr_assert_eq(rh_resources_bundle_add("pg4_0_", &bundle), RH_OK);
    cr_assert_eq(rh_resources_bundle_add("pg4_1_", &bundle), RH_OK);
    cr_assert(rh_resources_acquire(&in_bundle, &w));
    cr_assert(rh_resources_acquire(&in_other, &q3));
    cr_assert_not(rh_resources_acquire(&in_bundle, &q1));
    cr_assert_not(rh_resources_acquire(&in_bundle, &q2));
    cr_assert_not(rh_resources_acquire(&two_cpus, &own));
    cr_assert_eq(rh_resources_waiting(), 3);
    rh_resources_bundle_remove("pg4_0_", &bundle, count_drop);
    cr_expect_eq(dropped, 2, "%d of the bundle's 2 waiters handed back",
                 dropped);
    cr_expect_eq(rh_resources_waiting(), 1, "the rank's own waiter stays");
    rh_resources_release(&in_bundle);
    rh_resources_release(&in_other);
    rh_resources_bundle_remove("pg4_1_", &bundle, count_drop);
    cr_expect_eq(dropped, 2);
    rh_resources_fini(no_retry);
}

Test(resources, removed_bundles_free_their_names_for_new_ones)
{
    rh_res_req_t bundle = req(1, NULL);
    rh_res_waiter_t w = { .retry = no_retry };
    char prefix[32];

    cr_assert_eq(rh_resources_init(1, NULL), RH_OK);
    /* far more groups over a job than the ledger has names */
    for (int g = 0; g < 4 * RH_RES_LEDGER_MAX; g++) {
        rh_res_req_t task;
        char spec[64];

        snprintf(prefix, sizeof(prefix), "pg%d_0_", g);
        snprintf(spec, sizeof(spec), "%sCPU=1", prefix);
        task = req(0, spec);
        cr_assert_eq(rh_resources_bundle_add(prefix, &bundle), RH_OK,
                     "group %d: %s", g, rh_last_error());
        cr_assert(rh_resources_acquire(&task, &w));
        cr_expect_not(rh_resources_removed(&task));
        rh_resources_release(&task);
        rh_resources_bundle_remove(prefix, &bundle, no_retry);
        /* a task on its way to it fails, and is not warned about */
        cr_expect(rh_resources_removed(&task));
    }
    rh_resources_fini(no_retry);
}

/* ---- waiters ---------------------------------------------------------------- */

typedef struct test_waiter {
    rh_res_waiter_t w;
    rh_res_req_t    req;
    int             id;
    int             calls;     /* times its retry ran */
} test_waiter_t;

static int started[1024], nstarted;

/* A waiter's turn: it holds what it asked for. */
static void record_start(rh_res_waiter_t *w)
{
    test_waiter_t *t = (test_waiter_t *)w;

    t->calls++;
    started[nstarted++] = t->id;
}

static void waiter_make(test_waiter_t *t, int id, int cpus, const char *spec)
{
    memset(t, 0, sizeof(*t));
    t->w.retry = record_start;
    t->req = req(cpus, spec);
    t->id = id;
}

/* Asks for t's resources: 1 when it starts at once. */
static int waiter_ask(test_waiter_t *t)
{
    if (rh_resources_acquire(&t->req, &t->w)) {
        started[nstarted++] = t->id;
        return 1;
    }
    return 0;
}

Test(resources, waiters_start_in_the_order_they_came)
{
    test_waiter_t all, w[3];

    nstarted = 0;
    cr_assert_eq(rh_resources_init(2, NULL), RH_OK);
    waiter_make(&all, 99, 2, NULL);
    cr_assert(waiter_ask(&all));
    for (int i = 0; i < 3; i++) {
        waiter_make(&w[i], i, 2, NULL);
        cr_assert_not(waiter_ask(&w[i]));
    }
    for (int i = 0; i < 3; i++) {
        rh_resources_release(i == 0 ? &all.req : &w[i - 1].req);
        cr_assert_eq(nstarted, 2 + i, "release %d started %d waiters", i,
                     nstarted - 1 - i);
        cr_assert_eq(started[1 + i], i, "waiter %d started before waiter %d",
                     started[1 + i], i);
    }
    rh_resources_release(&w[2].req);
    rh_resources_fini(no_retry);
}

/* Tickets taken when tasks became ready set their order, not the order
 * workers reach the ledger in (a waiting worker takes the newest first). */
Test(resources, waiters_start_in_ticket_order_whatever_order_they_ask_in)
{
    test_waiter_t all, w[4];
    uint64_t tickets[4];

    nstarted = 0;
    cr_assert_eq(rh_resources_init(2, NULL), RH_OK);
    waiter_make(&all, 99, 2, NULL);
    cr_assert(waiter_ask(&all));
    for (int i = 0; i < 4; i++) {
        tickets[i] = rh_resources_ticket();
    }
    for (int i = 3; i >= 0; i--) {   /* the newest asks first */
        waiter_make(&w[i], i, 2, NULL);
        w[i].w.seq = tickets[i];
        cr_assert_not(waiter_ask(&w[i]));
    }
    for (int i = 0; i < 4; i++) {
        rh_resources_release(i == 0 ? &all.req : &w[i - 1].req);
        cr_assert_eq(nstarted, 2 + i);
        cr_expect_eq(started[1 + i], i, "waiter %d started as number %d",
                     started[1 + i], i);
    }
    rh_resources_release(&w[3].req);
    rh_resources_fini(no_retry);
}

Test(resources, a_release_wakes_only_the_waiters_that_fit)
{
    test_waiter_t all, w[3];

    nstarted = 0;
    cr_assert_eq(rh_resources_init(4, NULL), RH_OK);
    waiter_make(&all, 99, 4, NULL);
    cr_assert(waiter_ask(&all));
    for (int i = 0; i < 3; i++) {
        waiter_make(&w[i], i, 2, NULL);
        cr_assert_not(waiter_ask(&w[i]));
    }
    rh_resources_release(&all.req);
    cr_assert_eq(nstarted, 3);
    cr_assert_eq(w[0].calls + w[1].calls + w[2].calls, 2,
                 "%d waiters were woken for room for 2",
                 w[0].calls + w[1].calls + w[2].calls);
    cr_assert_eq(w[2].calls, 0, "the third waiter was woken");
    rh_resources_release(&w[0].req);
    cr_assert_eq(nstarted, 4);
    cr_assert_eq(started[3], 2);
    rh_resources_release(&w[1].req);
    rh_resources_release(&w[2].req);
    rh_resources_fini(no_retry);
}

/* A stream of one-CPU requests, each released after the next one came,
 * keeps some CPU busy at every moment: a two-CPU request must still get
 * its turn, after at most as many one-CPU requests as the rank has CPUs
 * overtook it. */
Test(resources, a_large_request_is_not_starved_by_a_stream_of_small_ones)
{
    static test_waiter_t small[200];
    test_waiter_t large;
    int running[256], head = 0, tail = 0, large_at = -1, seen = 0;

    nstarted = 0;
    cr_assert_eq(rh_resources_init(2, NULL), RH_OK);
    waiter_make(&small[0], 0, 1, NULL);
    cr_assert(waiter_ask(&small[0]));
    waiter_make(&large, 1000, 2, NULL);
    cr_assert_not(waiter_ask(&large));
    for (int i = 1; i < 200; i++) {
        waiter_make(&small[i], i, 1, NULL);
        (void)waiter_ask(&small[i]);
        /* what started since the last look runs now */
        for (; seen < nstarted; seen++) {
            if (started[seen] == 1000) {
                large_at = seen;
            }
            running[tail++ % 256] = started[seen];
        }
        if (head != tail) {
            int id = running[head++ % 256];

            rh_resources_release(id == 1000 ? &large.req : &small[id].req);
        }
    }
    cr_assert_geq(large_at, 0, "the 2-CPU request never started while "
                  "%d 1-CPU requests did", nstarted);
    cr_assert_leq(large_at, 1 + 2, "%d 1-CPU requests overtook it",
                  large_at - 1);
    while (head != tail) {
        int id = running[head++ % 256];

        rh_resources_release(id == 1000 ? &large.req : &small[id].req);
        for (; seen < nstarted; seen++) {
            running[tail++ % 256] = started[seen];
        }
    }
    rh_resources_fini(no_retry);
}

/* A request larger than the rank (accepted with a warning: it waits for a
 * bundle's removal, say) blocks nobody. */
Test(resources, a_request_that_cannot_fit_blocks_nobody)
{
    test_waiter_t huge, small[50];

    nstarted = 0;
    cr_assert_eq(rh_resources_init(2, NULL), RH_OK);
    waiter_make(&huge, 1000, 3, NULL);
    cr_assert_not(waiter_ask(&huge));
    for (int i = 0; i < 50; i++) {
        waiter_make(&small[i], i, 1, NULL);
        cr_assert(waiter_ask(&small[i]), "request %d waits", i);
        rh_resources_release(&small[i].req);
    }
    cr_assert_eq(huge.calls, 0);
    rh_resources_fini(no_retry);   /* drops it */
}

static int retried;

static void count_retry(rh_res_waiter_t *w)
{
    (void)w;
    retried++;
}

/* A waiting task lends its CPUs: a task queued for one is retried; taking
 * them back may leave the count below zero until tasks end. */
Test(resources, lent_cpus_retry_the_waiters_and_come_back_even_when_taken)
{
    rh_res_req_t one = req(1, NULL), two = req(2, NULL);
    rh_res_waiter_t w = { .retry = count_retry };
    char free_now[256];

    cr_assert_eq(rh_resources_init(2, ""), RH_OK);
    cr_assert(rh_resources_acquire(&two, &w));
    cr_assert_not(rh_resources_acquire(&one, &w));   /* queued */
    rh_resources_lend(&two);
    cr_expect_eq(retried, 1, "the waiter was given its CPU");
    rh_resources_reclaim(&two);
    rh_resources_format(free_now, sizeof(free_now));
    cr_expect(strstr(free_now, "CPU=-1") == free_now, "%s", free_now);
    rh_resources_release(&one);
    rh_resources_release(&two);
    rh_resources_format(free_now, sizeof(free_now));
    cr_expect(strstr(free_now, "CPU=2") == free_now, "%s", free_now);
    rh_resources_fini(no_retry);
}

/* GPUs come in fractions: four tasks of a quarter share one GPU, a fifth
 * waits, and what is free prints as the user wrote it. */
Test(resources, gpus_are_shared_in_fractions)
{
    rh_res_req_t quarter = req(1, "GPU=0.25"), whole = req(1, "GPU=1");
    rh_res_waiter_t w = { .retry = no_retry };
    char why[256], free_now[256];

    cr_assert_eq(quarter.items[0].amount, RH_RES_GPU_UNITS / 4);
    cr_assert_eq(rh_resources_init(8, "GPU=1"), RH_OK);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(rh_resources_acquire(&quarter, &w), 1, "quarter %d", i);
    }
    rh_resources_format(free_now, sizeof(free_now));
    cr_assert(strstr(free_now, "GPU=0") != NULL, "%s", free_now);
    cr_assert_eq(rh_resources_acquire(&quarter, &w), 0, "a fifth fits");
    rh_resources_fini(no_retry);
    cr_assert_eq(rh_resources_init(8, "GPU=1.5"), RH_OK);
    cr_assert_eq(rh_resources_acquire(&quarter, &w), 1);
    rh_resources_format(free_now, sizeof(free_now));
    cr_assert(strstr(free_now, "GPU=1.25") != NULL, "%s", free_now);
    cr_assert(rh_resources_feasible(&whole, why, sizeof(why)));
    whole = req(1, "GPU=2");
    cr_assert(!rh_resources_feasible(&whole, why, sizeof(why)));
    cr_assert(strstr(why, "GPU=2 (this rank has 1.5)") != NULL, "%s", why);
    rh_resources_release(&quarter);
    rh_resources_fini(no_retry);
}

Test(resources, bad_gpu_amounts_are_refused_with_a_sentence)
{
    const char *bad[] = { "GPU=", "GPU=-1", "GPU=+1", "GPU=0.12345",
                          "GPU=1.", "GPU=.5", "GPU=1e3", "GPU=0.5x" };
    rh_res_req_t r;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(rh_resources_parse(bad[i], 1, &r), RH_ERR_INVALID_PARAM,
                     "%s accepted", bad[i]);
        cr_assert(strstr(rh_last_error(), "GPU") != NULL, "%s",
                  rh_last_error());
    }
    cr_assert_eq(rh_resources_parse("GPU=0.0001,pg5_0_GPU=2.5", 1, &r), RH_OK);
    cr_assert_eq(r.items[0].amount, 1);
    cr_assert_eq(r.items[1].amount, 25000);
    /* other resources stay whole numbers */
    cr_assert_eq(rh_resources_parse("gpu=0.5", 1, &r), RH_ERR_INVALID_PARAM);
}

/* ---- one-CPU tasks that began before the ledger counted ----------------- */

static void expect_free(const char *want)
{
    char free_now[256];

    rh_resources_format(free_now, sizeof(free_now));
    cr_expect_str_eq(free_now, want);
}

Test(resources, a_task_begun_uncounted_keeps_its_cpu_once_counting_begins)
{
    rh_res_req_t two = req(2, NULL);
    rh_res_waiter_t w = { .retry = count_retry };

    cr_assert_eq(rh_resources_init(2, NULL), RH_OK);
    cr_assert(rh_resources_begin_uncounted(), "the ledger was off");
    rh_resources_activate();
    expect_free("CPU=1");
    cr_assert_not(rh_resources_acquire(&two, &w),
                  "two CPUs given while an uncounted task held one");
    cr_expect_eq(rh_resources_waiting(), 1);
    rh_resources_end_uncounted();
    cr_expect_eq(retried, 1, "its end did not start the waiter");
    expect_free("CPU=0");
    /* once counting is on, a one-CPU task goes through the ledger */
    cr_expect_not(rh_resources_begin_uncounted());
    rh_resources_release(&two);
    expect_free("CPU=2");
    rh_resources_fini(no_retry);
}

Test(resources, an_uncounted_task_lends_its_cpu_while_it_waits)
{
    rh_res_req_t two = req(2, NULL), one = req(1, NULL);
    rh_res_waiter_t w = { .retry = count_retry };

    cr_assert_eq(rh_resources_init(2, NULL), RH_OK);
    cr_assert(rh_resources_begin_uncounted());
    rh_resources_activate();
    rh_resources_lend_uncounted();
    expect_free("CPU=2");
    cr_assert(rh_resources_acquire(&two, &w), "the lent CPU was not free");
    /* back from its wait, it takes its CPU whether or not it is free, and
     * nothing new starts until enough is back */
    rh_resources_reclaim_uncounted();
    expect_free("CPU=-1");
    cr_assert_not(rh_resources_acquire(&one, &w));
    rh_resources_release(&two);
    cr_expect_eq(retried, 1);
    expect_free("CPU=0");
    rh_resources_release(&one);
    rh_resources_end_uncounted();
    expect_free("CPU=2");
    rh_resources_fini(no_retry);
}

static pthread_mutex_t step_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t step_cond = PTHREAD_COND_INITIALIZER;
static int step;

static void step_to(int n)
{
    pthread_mutex_lock(&step_lock);
    step = n;
    pthread_cond_broadcast(&step_cond);
    pthread_mutex_unlock(&step_lock);
}

static void step_wait(int n)
{
    pthread_mutex_lock(&step_lock);
    while (step < n) {
        pthread_cond_wait(&step_cond, &step_lock);
    }
    pthread_mutex_unlock(&step_lock);
}

static void *uncounted_worker(void *arg)
{
    int *begun = arg;

    *begun = rh_resources_begin_uncounted();
    step_to(1);
    step_wait(2);
    if (*begun) {
        rh_resources_end_uncounted();
    }
    return NULL;
}

/* Each thread counts its own tasks; a thread that ends leaves its counter
 * to the next one, and the ledger goes on seeing what runs. */
Test(resources, uncounted_tasks_of_every_thread_are_seen)
{
    rh_res_req_t two = req(2, NULL);
    rh_res_waiter_t w = { .retry = count_retry };
    pthread_t th;
    int begun = 0;

    cr_assert_eq(rh_resources_init(2, NULL), RH_OK);
    for (int round = 0; round < 3; round++) {
        step = 0;
        cr_assert_eq(pthread_create(&th, NULL, uncounted_worker, &begun), 0);
        step_wait(1);
        cr_assert(begun);
        step_to(2);
        pthread_join(th, NULL);
    }
    step = 0;
    cr_assert_eq(pthread_create(&th, NULL, uncounted_worker, &begun), 0);
    step_wait(1);
    cr_assert(rh_resources_begin_uncounted());
    rh_resources_activate();
    expect_free("CPU=0");
    cr_assert_not(rh_resources_acquire(&two, &w));
    rh_resources_end_uncounted();
    cr_expect_eq(retried, 0, "one uncounted task still runs");
    step_to(2);
    pthread_join(th, NULL);
    cr_expect_eq(retried, 1, "the thread's end did not start "
                 "the waiter");
    rh_resources_release(&two);
    expect_free("CPU=2");
    rh_resources_fini(no_retry);
}
