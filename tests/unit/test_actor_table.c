#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/actor_table.h"

/* Handles of rank 0's actors: owner 0, class 0, counter n. */
static rh_actor_t actor(uint64_t n)
{
    rh_actor_t a = { 1, n };

    return a;
}

static void setup(void)
{
    rh_atab_init(0, 4);
}

static void teardown(void)
{
    rh_atab_clear();
}

TestSuite(actor_table, .init = setup, .fini = teardown);

/* A rank that asks while the actor is created hears where it is once it
 * is; later askers hear at once. */
Test(actor_table, askers_hear_the_place_once_created)
{
    rh_atab_news_t where, death;
    char why[256];
    int rank = -1;

    cr_assert_eq(rh_atab_add(actor(1), 0, NULL), RH_OK);
    cr_expect_eq(rh_atab_locate(actor(1), 3, &rank, why, sizeof(why)),
                 RH_AT_PENDING);
    rh_atab_created(actor(1), 2, NULL, &where, &death);
    cr_expect_eq(where.rank, 2);
    cr_assert_not_null(where.askers);
    cr_expect_eq(where.askers[3], 1);
    cr_expect_eq(where.askers[1], 0);
    cr_expect_eq(death.rank, -2, "nothing else to tell");
    free(where.askers);
    cr_expect_eq(rh_atab_locate(actor(1), 1, &rank, why, sizeof(why)),
                 RH_AT_ALIVE);
    cr_expect_eq(rank, 2);
}

/* Holds are counted per rank: the last one dropped ends the actor (its
 * queued calls run: no kill) and frees its name; a rank drops only the
 * holds it took. */
Test(actor_table, the_last_hold_ends_the_actor_and_frees_its_name)
{
    rh_atab_news_t n, where, death;

    cr_assert_eq(rh_atab_add(actor(2), 0, "counter"), RH_OK);
    rh_atab_created(actor(2), 1, NULL, &where, &death);
    rh_atab_hold(actor(2), 3, 1, &n);
    cr_expect_eq(n.rank, -2);
    rh_atab_hold(actor(2), 2, -1, &n);      /* rank 2 holds nothing */
    cr_expect_eq(n.rank, -2);
    rh_atab_hold(actor(2), 0, -1, &n);
    cr_expect_eq(n.rank, -2, "rank 3 still holds it");
    rh_atab_hold(actor(2), 3, -1, &n);
    cr_expect_eq(n.rank, -1);
    cr_expect_eq(n.end_rank, 1);
    cr_expect_eq(n.end_kill, 0);
    cr_expect_str_eq(n.name, "counter");
    cr_expect(strstr(n.why, "every holder dropped it") != NULL, "%s", n.why);
    /* its rank says it ended: the entry goes */
    rh_atab_ended(actor(2), "ended", &n);
    cr_expect_eq(rh_atab_has(actor(2)), 0);
}

Test(actor_table, detached_actors_ignore_holds)
{
    rh_atab_news_t n, where, death;

    cr_assert_eq(rh_atab_add(actor(3), 1, NULL), RH_OK);
    rh_atab_created(actor(3), 1, NULL, &where, &death);
    rh_atab_hold(actor(3), 0, -1, &n);
    cr_expect_eq(n.rank, -2);
    cr_expect_eq(rh_atab_has(actor(3)), 1);
}

/* A kill before the creation answered waits for it: the place first,
 * then the kill. */
Test(actor_table, a_kill_while_pending_follows_the_creation)
{
    rh_atab_news_t n, where, death;
    char why[256];
    int rank;

    cr_assert_eq(rh_atab_add(actor(4), 0, NULL), RH_OK);
    rh_atab_kill(actor(4), &n);
    cr_expect_eq(n.rank, -2);
    rh_atab_created(actor(4), 2, NULL, &where, &death);
    cr_expect_eq(where.rank, 2);
    cr_expect_eq(death.rank, -1);
    cr_expect_eq(death.end_rank, 2);
    cr_expect_eq(death.end_kill, 1);
    free(where.askers);
    free(death.askers);
    cr_expect_eq(rh_atab_locate(actor(4), 1, &rank, why, sizeof(why)),
                 RH_AT_DEAD);
    cr_expect(strstr(why, "killed") != NULL, "%s", why);
}

/* A failed creation: dead with its reason, and gone (nothing ran). */
Test(actor_table, a_failed_creation_leaves_nothing)
{
    rh_atab_news_t where, death;
    char why[256];
    int rank;

    cr_assert_eq(rh_atab_add(actor(5), 0, "x"), RH_OK);
    rh_atab_created(actor(5), -1, "constructor said no", &where, &death);
    cr_expect_eq(where.rank, -1);
    cr_expect_eq(where.end_rank, -1, "no instance to end");
    cr_expect_str_eq(where.name, "x");
    cr_expect(strstr(where.why, "constructor said no") != NULL);
    free(where.askers);
    cr_expect_eq(rh_atab_locate(actor(5), 1, &rank, why, sizeof(why)),
                 RH_AT_NONE);
}

static int told;
static rh_atab_news_t last;

static void tell(rh_actor_t a, rh_atab_news_t *n)
{
    (void)a;
    told++;
    last = *n;
    free(n->askers);
}

/* A rank dies: the actors on it die (no instance left to end), and its
 * holds go, which may end others. */
Test(actor_table, a_dead_rank_takes_its_actors_and_its_holds)
{
    rh_atab_news_t n, where, death;

    cr_assert_eq(rh_atab_add(actor(6), 0, NULL), RH_OK);
    cr_assert_eq(rh_atab_add(actor(7), 0, NULL), RH_OK);
    rh_atab_created(actor(6), 2, NULL, &where, &death);
    free(where.askers);
    rh_atab_created(actor(7), 1, NULL, &where, &death);
    free(where.askers);
    rh_atab_hold(actor(7), 2, 1, &n);
    rh_atab_hold(actor(7), 0, -1, &n);      /* only rank 2 holds 7 now */
    told = 0;
    rh_atab_rank_died(2, tell);
    cr_expect_eq(told, 2);
    cr_expect_eq(rh_atab_has(actor(6)), 0, "6 died with its rank");
    cr_expect_eq(rh_atab_has(actor(7)), 1, "7 waits for its end");
    cr_expect_eq(last.end_rank == 1 || last.end_rank == -1, 1);
}
