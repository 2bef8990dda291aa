#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/actor.h"
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
    uint32_t epoch = 0;

    cr_assert_eq(rh_atab_add(actor(1), 0, NULL, 0), RH_OK);
    cr_expect_eq(rh_atab_locate(actor(1), 3, &rank, &epoch, why,
                                sizeof(why)),
                 RH_AT_PENDING);
    rh_atab_created(actor(1), 2, NULL, &where, &death);
    cr_expect_eq(where.rank, 2);
    cr_assert_not_null(where.askers);
    cr_expect_eq(where.askers[3], 1);
    cr_expect_eq(where.askers[1], 0);
    cr_expect_eq(death.rank, -2, "nothing else to tell");
    free(where.askers);
    cr_expect_eq(rh_atab_locate(actor(1), 1, &rank, &epoch, why,
                                sizeof(why)),
                 RH_AT_ALIVE);
    cr_expect_eq(rank, 2);
}

/* Holds are counted per rank: the last one dropped ends the actor (its
 * queued calls run: no kill) and frees its name; a rank drops only the
 * holds it took. */
Test(actor_table, the_last_hold_ends_the_actor_and_frees_its_name)
{
    rh_atab_news_t n, where, death;

    cr_assert_eq(rh_atab_add(actor(2), 0, "counter", 0), RH_OK);
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
    rh_atab_ended(actor(2), 1, "ended", &n);
    cr_expect_eq(rh_atab_has(actor(2)), 0);
}

Test(actor_table, detached_actors_ignore_holds)
{
    rh_atab_news_t n, where, death;

    cr_assert_eq(rh_atab_add(actor(3), 1, NULL, 0), RH_OK);
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
    uint32_t epoch;
    int rank;

    cr_assert_eq(rh_atab_add(actor(4), 0, NULL, 0), RH_OK);
    rh_atab_kill(actor(4), 0, &n);
    cr_expect_eq(n.rank, -2);
    rh_atab_created(actor(4), 2, NULL, &where, &death);
    cr_expect_eq(where.rank, 2);
    cr_expect_eq(death.rank, -1);
    cr_expect_eq(death.end_rank, 2);
    cr_expect_eq(death.end_kill, 1);
    free(where.askers);
    free(death.askers);
    cr_expect_eq(rh_atab_locate(actor(4), 1, &rank, &epoch, why,
                                sizeof(why)),
                 RH_AT_DEAD);
    cr_expect(strstr(why, "killed") != NULL, "%s", why);
}

/* A failed creation: dead with its reason, and gone (nothing ran). */
Test(actor_table, a_failed_creation_leaves_nothing)
{
    rh_atab_news_t where, death;
    char why[256];
    uint32_t epoch;
    int rank;

    cr_assert_eq(rh_atab_add(actor(5), 0, "x", 0), RH_OK);
    rh_atab_created(actor(5), -1, "constructor said no", &where, &death);
    cr_expect_eq(where.rank, -1);
    cr_expect_eq(where.end_rank, -1, "no instance to end");
    cr_expect_str_eq(where.name, "x");
    cr_expect(strstr(where.why, "constructor said no") != NULL);
    free(where.askers);
    cr_expect_eq(rh_atab_locate(actor(5), 1, &rank, &epoch, why,
                                sizeof(why)),
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

    cr_assert_eq(rh_atab_add(actor(6), 0, NULL, 0), RH_OK);
    cr_assert_eq(rh_atab_add(actor(7), 0, NULL, 0), RH_OK);
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

/* A restartable actor of rank 0 (max_restarts in its handle too). */
static rh_actor_t ractor(uint64_t n)
{
    rh_actor_t a = { 1 | RH_ACTOR_RESTARTABLE, n };

    return a;
}

/* Its rank dies with restarts left: created again (news with restart),
 * then every other rank hears the new place and the restart count; the
 * next death finds none left and ends it, told to every rank. */
Test(actor_table, a_restartable_actor_is_created_again_until_none_is_left)
{
    rh_atab_news_t where, death;

    cr_assert_eq(rh_atab_add(ractor(8), 0, NULL, 1), RH_OK);
    rh_atab_created(ractor(8), 2, NULL, &where, &death);
    free(where.askers);
    told = 0;
    rh_atab_rank_died(2, tell);
    cr_expect_eq(told, 1);
    cr_expect_eq(last.restart, 1);
    cr_expect_eq(last.rank, -2, "nothing to tell before it is placed");
    cr_expect_eq(rh_atab_has(ractor(8)), 1);
    rh_atab_created(ractor(8), 3, NULL, &where, &death);
    cr_expect_eq(where.rank, 3);
    cr_expect_eq(where.epoch, 1u);
    cr_assert_not_null(where.askers);
    cr_expect_eq(where.askers[0], 0, "the owner tells itself directly");
    cr_expect_eq(where.askers[1] && where.askers[2] && where.askers[3], 1);
    free(where.askers);
    told = 0;
    rh_atab_rank_died(3, tell);
    cr_expect_eq(told, 1);
    cr_expect_eq(last.restart, 0);
    cr_expect_eq(last.rank, -1);
    cr_expect(strstr(last.why, "rank failed") != NULL, "%s", last.why);
    cr_expect_eq(rh_atab_has(ractor(8)), 0);
}

/* A rank asks where a restartable actor is while its restart is on the
 * way: the place it had was told (its askers handed on), so the question
 * is answered later by the news every rank gets, and nothing is recorded. */
Test(actor_table, a_rank_asks_while_a_restart_is_pending)
{
    rh_atab_news_t where, death;
    char why[256];
    int rank = -1;
    uint32_t epoch = 0;

    cr_assert_eq(rh_atab_add(ractor(10), 0, NULL, 2), RH_OK);
    rh_atab_created(ractor(10), 2, NULL, &where, &death);
    free(where.askers);
    told = 0;
    rh_atab_rank_died(2, tell);
    cr_expect_eq(last.restart, 1);
    cr_expect_eq(rh_atab_locate(ractor(10), 1, &rank, &epoch, why,
                                sizeof(why)), RH_AT_PENDING);
    rh_atab_created(ractor(10), 3, NULL, &where, &death);
    cr_expect_eq(where.rank, 3);
    cr_expect_eq(where.epoch, 1u);
    cr_assert_not_null(where.askers);
    cr_expect_eq(where.askers[1], 1, "the asker hears the new place");
    free(where.askers);
}

/* A kill that allows a restart ends the instance first; its end (and not
 * that of an instance elsewhere) starts the restart. */
Test(actor_table, a_kill_with_restarts_left_restarts_once_the_instance_ended)
{
    rh_atab_news_t n, where, death;

    cr_assert_eq(rh_atab_add(ractor(9), 0, NULL, -1), RH_OK);
    rh_atab_created(ractor(9), 1, NULL, &where, &death);
    free(where.askers);
    rh_atab_kill(ractor(9), 0, &n);
    cr_expect_eq(n.end_rank, 1);
    cr_expect_eq(n.end_kill, 1);
    cr_expect_eq(n.restart, 0);
    cr_expect_eq(n.rank, -2);
    rh_atab_ended(ractor(9), 2, "not its instance", &n);
    cr_expect_eq(n.restart, 0);
    rh_atab_ended(ractor(9), 1, "killed", &n);
    cr_expect_eq(n.restart, 1);
    cr_expect_eq(n.rank, -2);
    rh_atab_created(ractor(9), 1, NULL, &where, &death);
    cr_expect_eq(where.rank, 1);
    cr_expect_eq(where.epoch, 1u);
    free(where.askers);
    /* no_restart: final */
    rh_atab_kill(ractor(9), 1, &n);
    cr_expect_eq(n.rank, -1);
    free(n.askers);
}
