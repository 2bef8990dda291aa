#include <criterion/criterion.h>
#include <string.h>

#include "base/status.h"
#include "gcs/gcs_record.h"

/* Outside a job the GCS does not run: a record is still made, set and
 * dropped without a crash or a leak, each set counted as ended (the next
 * set would write again). The GCS's side is tests/multi/gcs_nodes. */
Test(gcs_record, sets_without_a_running_gcs_end_at_once)
{
    rh_gcs_record_t *r = rh_gcs_record_new(RH_GCS_T_NODE, "rank/0", 6);
    uint64_t acked, sets;

    cr_assert_not_null(r);
    cr_assert_eq(rh_gcs_record_set(r, "one", 3), RH_OK);
    cr_assert_eq(rh_gcs_record_set(r, "two", 3), RH_OK);
    cr_assert_eq(rh_gcs_record_set(r, NULL, 0), RH_OK);
    rh_gcs_record_counts(r, &acked, &sets);
    cr_expect_eq(sets, 3);
    cr_expect_eq(acked, 3);
    rh_gcs_record_drop(r);
}

Test(gcs_record, bad_arguments_get_a_clear_error)
{
    char big[RH_GCS_KEY_MAX + 1];
    rh_gcs_record_t *r;

    memset(big, 'k', sizeof(big));
    cr_expect_null(rh_gcs_record_new(RH_GCS_T_SUB, "k", 1));
    cr_expect_null(rh_gcs_record_new(-1, "k", 1));
    cr_expect_null(rh_gcs_record_new(RH_GCS_T_NODE, NULL, 1));
    cr_expect_null(rh_gcs_record_new(RH_GCS_T_NODE, "k", 0));
    cr_expect_null(rh_gcs_record_new(RH_GCS_T_NODE, big, sizeof(big)));
    cr_expect(strstr(rh_last_error(), "key of 1..") != NULL, "%s",
              rh_last_error());
    r = rh_gcs_record_new(RH_GCS_T_PGROUP, "pg/1", 4);
    cr_assert_not_null(r);
    cr_expect_eq(rh_gcs_record_set(NULL, "v", 1), RH_ERR_INVALID_PARAM);
    cr_expect_eq(rh_gcs_record_set(r, NULL, 1), RH_ERR_INVALID_PARAM);
    cr_expect_eq(rh_gcs_record_set(r, big, (size_t)RH_GCS_VALUE_MAX + 1),
                 RH_ERR_TOO_LARGE);
    rh_gcs_record_drop(r);
    rh_gcs_record_drop(NULL);
}

/* A delete takes its turn like a set; waiting for the writes outside a
 * job ends at once: nothing is in flight. */
Test(gcs_record, a_delete_is_counted_like_a_set_and_waiting_ends)
{
    rh_gcs_record_t *r = rh_gcs_record_new(RH_GCS_T_OBJECT, "spill/0/1/2/0",
                                           13);
    uint64_t acked, sets;

    cr_assert_not_null(r);
    cr_assert_eq(rh_gcs_record_set(r, "owner 1 size 8 node 0", 21), RH_OK);
    cr_assert_eq(rh_gcs_record_delete(r), RH_OK);
    rh_gcs_record_counts(r, &acked, &sets);
    cr_expect_eq(sets, 2);
    cr_expect_eq(acked, 2);
    cr_expect_eq(rh_gcs_record_wait(r, 0), 1);
    cr_expect_eq(rh_gcs_record_delete(NULL), RH_ERR_INVALID_PARAM);
    cr_expect_eq(rh_gcs_record_wait(NULL, 0), 0);
    rh_gcs_record_drop(r);
}
