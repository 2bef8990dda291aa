/* A rank's resource ledger with placement-group bundles: reserving moves
 * CPUs and resources to the bundle's names, removing moves them back. */
#include <criterion/criterion.h>
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
