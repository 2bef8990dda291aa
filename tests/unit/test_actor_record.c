#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/actor.h"
#include "core/actor_record.h"
#include "core/actor_table.h"

/* Rank 3's restartable actor number 7 of class 0. */
static rh_actor_t actor(void)
{
    rh_actor_t a = { (3ull << 32) | RH_ACTOR_RESTARTABLE | 1, 7 };

    return a;
}

static rh_actor_record_t round_trip(int state, int rank, uint32_t restarts,
                                    const char *name, const char *why)
{
    char text[512];
    size_t n = rh_actor_record_format(actor(), state, rank, restarts, name,
                                      why, text, sizeof(text));
    rh_actor_record_t rec;

    cr_assert_gt(n, 0);
    cr_assert_eq(rh_actor_record_parse(text, n, &rec), RH_OK, "%s",
                 rh_last_error());
    return rec;
}

Test(actor_record, a_live_actor_reads_back_its_rank_restarts_and_name)
{
    rh_actor_record_t rec = round_trip(RH_AT_ALIVE, 2, 1, "the keeper", NULL);

    cr_expect_eq(rec.owner, 3);
    cr_expect_eq(rec.state, RH_AT_ALIVE);
    cr_expect_eq(rec.rank, 2);
    cr_expect_eq(rec.restarts, 1);
    cr_expect_str_eq(rec.name, "the keeper");
    cr_expect_str_eq(rec.why, "");
}

Test(actor_record, a_dead_actor_reads_back_why_it_died)
{
    rh_actor_record_t rec = round_trip(RH_AT_DEAD, 1, 0, NULL,
                                       "actor Box on rank 1 died: its rank "
                                       "failed");

    cr_expect_eq(rec.state, RH_AT_DEAD);
    cr_expect_eq(rec.rank, 1);
    cr_expect_str_eq(rec.name, "");
    cr_expect_str_eq(rec.why, "actor Box on rank 1 died: its rank failed");
}

Test(actor_record, a_pending_actor_has_no_rank)
{
    rh_actor_record_t rec = round_trip(RH_AT_PENDING, 5, 2, NULL, "ignored");

    cr_expect_eq(rec.state, RH_AT_PENDING);
    cr_expect_eq(rec.rank, -1);
    cr_expect_eq(rec.restarts, 2);
    cr_expect_str_eq(rec.why, "");
}

Test(actor_record, a_long_reason_is_cut_not_overrun)
{
    char why[1024], text[128];
    size_t n;

    memset(why, 'x', sizeof(why) - 1);
    why[sizeof(why) - 1] = '\0';
    n = rh_actor_record_format(actor(), RH_AT_DEAD, 1, 0, NULL, why, text,
                               sizeof(text));
    cr_expect_eq(n, sizeof(text) - 1);
    cr_expect_eq(strlen(text), n);
}

Test(actor_record, what_is_not_a_record_is_refused)
{
    rh_actor_record_t rec;
    static const char *const bad[] = {
        "rank 1 node 1 host h",
        "owner 0 class Box state sleeping rank 1 restarts 0",
        "owner 0 class Box state alive rank 1 restarts 0\ncolour blue",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_expect_eq(rh_actor_record_parse(bad[i], strlen(bad[i]), &rec),
                     RH_ERR_MALFORMED, "%s", bad[i]);
    }
}

/* Without a GCS (no rh_init) the table's changes write nothing and lose
 * nothing: the owner's table works as before. */
Test(actor_record, the_table_works_without_a_gcs)
{
    rh_actor_t a = { 1, 9 };
    rh_atab_news_t where, death;
    uint64_t p, l, d, p0, l0, d0;

    rh_actor_record_counts(&p0, &l0, &d0);
    rh_atab_init(0, 2);
    cr_assert_eq(rh_atab_add(a, 0, "n", 0), RH_OK);
    rh_atab_created(a, 1, NULL, &where, &death);
    cr_expect_eq(where.rank, 1);
    free(where.askers);
    rh_actor_record_counts(&p, &l, &d);
    cr_expect_eq(l - l0, 1);
    cr_expect_eq(p - p0, 0);
    rh_atab_kill(a, 1, &death);
    free(death.askers);
    rh_actor_record_counts(&p, &l, &d);
    cr_expect_eq(l - l0, 0);
    cr_expect_eq(d - d0, 1);
    rh_atab_clear();
}
