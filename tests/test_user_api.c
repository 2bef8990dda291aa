/*
 * The library as a program written from README.md and rayhpc.h meets it:
 * tests/multi/user_api on 1, 2 and 4 ranks, over the default transports
 * and over TCP.
 */
#include <criterion/criterion.h>

#include "spawn.h"

#define TIMEOUT 120

static const char *const TCP[] = { "UCX_TLS=tcp,self", NULL };

static void user_case(const char *mode, int n, int nodes,
                      const char *const *env, const char *ok)
{
    rh_run_t run = rh_launch(n, nodes, 0, "tests/multi/user_api", mode, env,
                             TIMEOUT);

    RH_EXPECT_EXIT0(run);
    cr_expect_eq(rh_count_lines(run.out, ok), 1, "no line \"%s\"; output "
                 "ends:\n%s", ok, rh_tail(run.out, 3000));
    rh_run_free(&run);
}

Test(user_api, tasks_into_groups_never_made_are_refused_on_one_rank)
{
    user_case("pg", 1, 1, NULL, "USER PG OK");
}

Test(user_api, tasks_into_groups_never_made_are_refused_on_two_nodes)
{
    user_case("pg", 4, 2, NULL, "USER PG OK");
}

Test(user_api, tasks_into_groups_never_made_are_refused_over_tcp)
{
    user_case("pg", 2, 2, TCP, "USER PG OK");
}

/* Rank 1 is killed (pgdead: by itself; pgstop: while stopped, after rank 2
 * asked it about a group): the launcher reports it (137) and keeps the
 * others going, each of which says it saw what it expected. */
static void owner_dies_case(const char *mode, const char *const *env,
                            const char *ok)
{
    rh_run_t run = rh_launch(4, 2, 0, "tests/multi/user_api", mode, env,
                             TIMEOUT);

    RH_EXPECT_LINES(run, ok, 3);
    RH_EXPECT_LINES(run, "USER FAIL", 0);
    RH_EXPECT_LINES(run, "stopping the other ranks", 0);
    cr_expect_eq(run.status, 137, "status %d; output ends:\n%s", run.status,
                 rh_tail(run.out, 3000));
    rh_run_free(&run);
}

Test(user_api, tasks_into_groups_of_a_dead_owner_fail_on_two_nodes)
{
    owner_dies_case("pgdead", NULL, "USER PGDEAD OK");
}

/* Over TCP, rank 1 dies right after rh_init, and 10 jobs in a row: with
 * connections still being made after rh_init, UCX 1.13 aborted a survivor
 * (ucp_request.c:684, its answer to rank 1's connection request purged)
 * in about one job in twenty. */
Test(user_api, tasks_into_groups_of_a_dead_owner_fail_over_tcp)
{
    for (int i = 0; i < 10; i++) {
        owner_dies_case("pgdead", TCP, "USER PGDEAD OK");
    }
}

Test(user_api, tasks_into_groups_whose_owner_dies_unanswering_fail)
{
    owner_dies_case("pgstop", NULL, "USER PGSTOP OK");
}

Test(user_api, tasks_into_groups_whose_owner_dies_unanswering_fail_over_tcp)
{
    owner_dies_case("pgstop", TCP, "USER PGSTOP OK");
}

Test(user_api, null_names_and_argument_arrays_are_invalid_parameters)
{
    user_case("args", 1, 1, NULL, "USER ARGS OK");
}

Test(user_api, calls_after_a_restarting_kill_reach_the_new_instance)
{
    user_case("restart", 1, 1, NULL, "USER RESTART OK");
}

Test(user_api, calls_after_a_restarting_kill_reach_it_on_another_node)
{
    user_case("restart", 4, 2, NULL, "USER RESTART OK");
}

Test(user_api, calls_after_a_restarting_kill_reach_it_over_tcp)
{
    user_case("restart", 2, 2, TCP, "USER RESTART OK");
}

Test(user_api, releases_past_the_holds_are_refused_on_one_rank)
{
    user_case("holds", 1, 1, NULL, "USER HOLDS OK");
}

Test(user_api, releases_past_the_holds_are_refused_on_two_nodes)
{
    user_case("holds", 4, 2, NULL, "USER HOLDS OK");
}

Test(user_api, many_refs_deep_chains_wide_fan_in_and_nesting_on_one_rank)
{
    user_case("scale", 1, 1, NULL, "USER SCALE OK");
}

Test(user_api, many_refs_deep_chains_wide_fan_in_and_nesting_on_two_nodes)
{
    user_case("scale", 4, 2, NULL, "USER SCALE OK");
}
