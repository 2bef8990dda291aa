/* A rank's resource ledger with placement-group bundles: reserving moves
 * CPUs and resources to the bundle's names, removing moves them back. */
#include <criterion/criterion.h>
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
    rh_res_waiter_t w = { NULL, no_retry };
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
    rh_resources_bundle_remove("pg1_0_", &bundle);
    cr_assert(rh_resources_feasible(&two_cpus, why, sizeof(why)), "%s", why);
    rh_resources_format(free_now, sizeof(free_now));
    cr_assert(strstr(free_now, "CPU=2 lic=2") == free_now, "%s", free_now);
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
    rh_res_waiter_t w = { NULL, no_retry };
    char free_now[256];

    cr_assert_eq(rh_resources_init(2, "lic=1"), RH_OK);
    cr_assert_eq(rh_resources_bundle_add("pg2_0_", &bundle), RH_OK);
    cr_assert(rh_resources_acquire(&one_task, &w));
    rh_resources_bundle_remove("pg2_0_", &bundle);
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
    rh_resources_bundle_remove("pg2_0_", &bundle);
    rh_resources_release(&one_task);
    rh_resources_format(free_now, sizeof(free_now));
    cr_expect_str_eq(free_now, "CPU=2 lic=1");
    cr_expect(rh_resources_acquire(&two_cpus, &w));
    rh_resources_release(&two_cpus);
    rh_resources_fini(no_retry);
}

Test(resources, removed_bundles_free_their_names_for_new_ones)
{
    rh_res_req_t bundle = req(1, NULL);
    rh_res_waiter_t w = { NULL, no_retry };
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
        rh_resources_release(&task);
        rh_resources_bundle_remove(prefix, &bundle);
    }
    rh_resources_fini(no_retry);
}
