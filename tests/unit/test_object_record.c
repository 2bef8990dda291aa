#include <criterion/criterion.h>
#include <string.h>

#include "base/status.h"
#include "core/job_record.h"
#include "core/object_record.h"

/* ---- spilled objects ---- */

Test(object_record, a_spilled_copy_reads_back_its_owner_size_and_node)
{
    rh_object_record_t in = { 3, 2, 5ull << 30 }, out;
    char text[96];
    size_t n = rh_object_record_format(&in, text, sizeof(text));

    cr_assert_gt(n, 0);
    cr_expect_str_eq(text, "owner 3 size 5368709120 node 2");
    cr_assert_eq(rh_object_record_parse(text, n, &out), RH_OK, "%s",
                 rh_last_error());
    cr_expect_eq(out.owner, 3);
    cr_expect_eq(out.node, 2);
    cr_expect_eq(out.size, 5ull << 30);
}

Test(object_record, the_key_names_the_node_and_the_whole_id)
{
    rh_object_id_t id = rh_object_id_make(7, (1ull << 33) + 5, 2);
    char key[96], small[8];

    cr_assert_gt(rh_object_record_key(id, 4, key, sizeof(key)), 0);
    cr_expect_str_eq(key, "spill/4/7/8589934597/2");
    cr_expect_eq(rh_object_record_key(id, 4, small, sizeof(small)), 0);
}

Test(object_record, what_is_not_a_record_is_refused_with_a_reason)
{
    static const char *const bad[] = {
        "", "owner 1 size 2", "owner -1 size 2 node 0",
        "owner 1 size 2 node 0 and more", "rank 1 beat 2",
    };
    rh_object_record_t out;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_expect_eq(rh_object_record_parse(bad[i], strlen(bad[i]), &out),
                     RH_ERR_MALFORMED, "\"%s\"", bad[i]);
    }
    cr_expect(strstr(rh_last_error(), "not an object record") != NULL, "%s",
              rh_last_error());
}

/* Outside a job nothing is recorded and nothing breaks. */
Test(object_record, a_spill_outside_a_job_records_nothing)
{
    uint64_t now, written, deleted;

    rh_object_record_spilled(rh_object_id_make(1, 2, 0), 64, 1, 3);
    rh_object_record_spilled(rh_object_id_make(1, 2, 0), 64, 0, 3);
    rh_object_record_counts(&now, &written, &deleted);
    cr_expect_eq(now + written + deleted, 0);
}

/* ---- the job ---- */

static rh_job_record_t job(int state)
{
    rh_job_record_t j = { state, 12, 3, 1764500000123ull,
                          state == RH_JOB_FINISHED ? 1764500099000ull : 0,
                          "" };

    strcpy(j.id, "4242-node07.cluster");
    return j;
}

Test(job_record, a_running_job_reads_back_its_id_start_ranks_and_nodes)
{
    rh_job_record_t in = job(RH_JOB_RUNNING), out;
    char text[512];
    size_t n = rh_job_record_format(&in, text, sizeof(text));

    cr_assert_gt(n, 0);
    cr_expect_str_eq(text, "state running ranks 12 nodes 3 start "
                     "1764500000123 end 0\nid 4242-node07.cluster");
    cr_assert_eq(rh_job_record_parse(text, n, &out), RH_OK, "%s",
                 rh_last_error());
    cr_expect_eq(out.state, RH_JOB_RUNNING);
    cr_expect_eq(out.ranks, 12);
    cr_expect_eq(out.nodes, 3);
    cr_expect_eq(out.start_ms, 1764500000123ull);
    cr_expect_eq(out.end_ms, 0);
    cr_expect_str_eq(out.id, "4242-node07.cluster");
}

Test(job_record, a_finished_job_reads_back_its_end)
{
    rh_job_record_t in = job(RH_JOB_FINISHED), out;
    char text[512];
    size_t n = rh_job_record_format(&in, text, sizeof(text));

    cr_assert_gt(n, 0);
    cr_assert_eq(rh_job_record_parse(text, n, &out), RH_OK, "%s",
                 rh_last_error());
    cr_expect_eq(out.state, RH_JOB_FINISHED);
    cr_expect_eq(out.end_ms, 1764500099000ull);
}

Test(job_record, a_bad_state_or_a_text_too_small_formats_nothing)
{
    rh_job_record_t in = job(RH_JOB_RUNNING);
    char small[16], text[512];

    cr_expect_eq(rh_job_record_format(&in, small, sizeof(small)), 0);
    in.state = 7;
    cr_expect_eq(rh_job_record_format(&in, text, sizeof(text)), 0);
}

Test(job_record, what_is_not_a_record_is_refused_with_a_reason)
{
    static const char *const bad[] = {
        "", "state running ranks 2 nodes 1 start 1 end 0",
        "state running ranks 2 nodes 1 start 1 end 0\nid ",
        "state asleep ranks 2 nodes 1 start 1 end 0\nid j",
        "state running ranks 0 nodes 1 start 1 end 0\nid j",
        "owner 1 size 2 node 0",
    };
    rh_job_record_t out;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_expect_eq(rh_job_record_parse(bad[i], strlen(bad[i]), &out),
                     RH_ERR_MALFORMED, "\"%s\"", bad[i]);
    }
}

Test(job_record, outside_a_job_nothing_is_written_and_reading_fails_clearly)
{
    rh_job_record_t out;

    rh_job_record_start("j", 1, 1);   /* rank -1: not rank 0 */
    rh_job_record_finish(10);
    rh_job_record_stop();
    cr_expect_neq(rh_job_record_read(&out), RH_OK);
    cr_expect_eq(rh_job_record_read(NULL), RH_ERR_INVALID_PARAM);
}
