/*
 * The library as a program written from README.md and rayhpc.h meets it:
 * tests/multi/user_api on 1, 2 and 4 ranks, over the default transports
 * and over TCP.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

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

static const char *const PG_TCP[] = { "UCX_TLS=tcp,self", NULL };

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
    user_case("pg", 2, 2, PG_TCP, "USER PG OK");
}

/* Runs mode on 4 ranks over 2 nodes, in which ranks are SIGKILLed (137)
 * and oks survivors each print ok. */
static void deaths_case(const char *mode, const char *const *env,
                        int keep_going, const char *ok, int oks)
{
    rh_run_t run = rh_launch(4, 2, keep_going, "tests/multi/user_api", mode,
                             env, TIMEOUT);

    RH_EXPECT_LINES(run, ok, oks);
    RH_EXPECT_LINES(run, "USER FAIL", 0);
    RH_EXPECT_LINES(run, "stopping the other ranks", 0);
    cr_expect_eq(run.status, 137, "status %d; output ends:\n%s", run.status,
                 rh_tail(run.out, 3000));
    rh_run_free(&run);
}

/* Rank 1 is killed (pgdead: by itself; pgstop: while stopped, after rank 2
 * asked it about a group): the launcher reports it (137) and keeps the
 * others going, each of which says it saw what it expected. */
static void owner_dies_case(const char *mode, const char *const *env,
                            const char *ok)
{
    deaths_case(mode, env, 0, ok, 3);
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

/* Ranks 1 and 0 (the global scheduler) are killed; rank 0's death ends a
 * job without --keep-going. Ranks 2 and 3 each say they saw what they
 * expected. */
Test(user_api, groups_fail_naming_the_dead_global_scheduler)
{
    deaths_case("pgboth", NULL, 1, "USER PGBOTH OK", 2);
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

Test(user_api, nested_failures_name_the_root_cause_at_any_depth)
{
    user_case("deep", 4, 2, NULL, "USER DEEP OK");
}

/* A released ref given to rh_remote is refused there, and that is all: no
 * task runs to log a failure of its own. */
static void refs_case(int n, int nodes, const char *const *env)
{
    rh_run_t run = rh_launch(n, nodes, 0, "tests/multi/user_api", "refs", env,
                             TIMEOUT);

    RH_EXPECT_EXIT0(run);
    RH_EXPECT_LINES(run, "USER REFS OK", 1);
    RH_EXPECT_LINES(run, "which has no returns", 0);
    rh_run_free(&run);
}

Test(user_api, duplicate_failed_and_released_refs_and_edge_sizes_on_one_rank)
{
    refs_case(1, 1, NULL);
}

Test(user_api, duplicate_failed_and_released_refs_and_edge_sizes_on_two_nodes)
{
    refs_case(4, 2, NULL);
}

Test(user_api, duplicate_failed_and_released_refs_and_edge_sizes_over_tcp)
{
    refs_case(2, 2, TCP);
}

/* Each documented setting a user sets, with a bad value: rh_init fails on
 * every rank with RH_ERR_CONFIG and a sentence naming the variable. */
static void bad_setting(int n, const char *assign)
{
    char var[128], name[96];
    const char *env[3] = { assign, var, NULL };
    rh_run_t run;

    snprintf(name, sizeof(name), "%.*s", (int)(strchr(assign, '=') - assign),
             assign);
    snprintf(var, sizeof(var), "USER_API_VAR=%s", name);
    run = rh_launch(n, n, 0, "tests/multi/user_api", "badenv", env, TIMEOUT);
    cr_expect_eq(rh_count_lines(run.out, "USER BADENV OK"), n, "%s on %d "
                 "ranks: output ends:\n%s", assign, n, rh_tail(run.out, 3000));
    rh_run_free(&run);
}

Test(user_api, bad_settings_are_config_errors_naming_the_variable)
{
    static const char *const bad[] = {
        "RAYHPC_STORE_SIZE=64Q", "RAYHPC_STORE_SIZE=0",
        "RAYHPC_PUT_TIMEOUT_MS=10x", "RAYHPC_FINALIZE_TIMEOUT=1h",
        "RAYHPC_SPILL_THRESHOLD=1.5", "RAYHPC_NUM_WORKERS=-1",
        "RAYHPC_LOG_LEVEL=loud", "RAYHPC_PROGRESS=fast",
        "RAYHPC_HEARTBEAT_MS=0", "RAYHPC_PULL_CHUNK=1",
        "RAYHPC_DRIVE_US=10s", "RAYHPC_COALESCE=yes",
        "RAYHPC_RESOURCES=lic", "RAYHPC_RESOURCES=lic=-1",
        "RAYHPC_RESOURCES=lic=1,CPU=4", "RAYHPC_SHM_RING_BYTES=5000",
        "RAYHPC_SPILL_DIR=/proc/no/such/dir", "RAYHPC_TIMELINE=/tmp",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        bad_setting(1, bad[i]);
    }
    bad_setting(2, "RAYHPC_RESOURCES=lic=x");
    bad_setting(2, "RAYHPC_SPILL_DIR=/proc/no/such/dir");
}

/* A store larger than /dev/shm, whatever the size: up to 2^64 - 1 bytes
 * (rounded up to pages, those near 2^64 wrapped to a 0-byte store that
 * failed to map), rh_init says what /dev/shm has free, on every rank. */
Test(user_api, a_store_larger_than_dev_shm_says_what_it_has_free)
{
    static const char *const big[] = {
        "RAYHPC_STORE_SIZE=9999999G",
        "RAYHPC_STORE_SIZE=18446744073709551615",
        "RAYHPC_STORE_SIZE=18446744073709551000",
    };

    for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
        const char *env[] = { big[i], "USER_API_VAR=RAYHPC_STORE_SIZE",
                              "USER_API_NO_ROOM=1", NULL };
        rh_run_t run = rh_launch(2, 2, 0, "tests/multi/user_api", "badenv",
                                 env, TIMEOUT);

        cr_expect_eq(rh_count_lines(run.out, "USER BADENV OK"), 2, "%s: "
                     "output ends:\n%s", big[i], rh_tail(run.out, 3000));
        rh_run_free(&run);
    }
}

/* A setting every rank of a job needs the same, set otherwise on rank 1
 * only: rh_init fails on every rank with RH_ERR_CONFIG naming it (a
 * different ring setting or UCX_TLS without shared memory hung the job;
 * different GCS chains split it). */
Test(user_api, job_wide_settings_that_differ_fail_every_rank)
{
    static const char *const diff[][2] = {
        { "RAYHPC_SHM_RING", "0" }, { "RAYHPC_SHM_RING_BYTES", "64K" },
        { "RAYHPC_GCS_SHARDS", "3" }, { "RAYHPC_GCS_REPLICAS", "1" },
        { "UCX_TLS", "tcp,self" },   /* no rings for rank 1 */
    };

    for (size_t i = 0; i < sizeof(diff) / sizeof(diff[0]); i++) {
        char var[128], val[64];
        const char *env[] = { var, val, NULL };
        rh_run_t run;

        snprintf(var, sizeof(var), "USER_API_VAR=%s", diff[i][0]);
        snprintf(val, sizeof(val), "USER_API_ON_RANK1=%s", diff[i][1]);
        run = rh_launch(3, 3, 0, "tests/multi/user_api", "badenv", env,
                        TIMEOUT);
        cr_expect_eq(rh_count_lines(run.out, "USER BADENV OK"), 3, "%s "
                     "differing on rank 1: output ends:\n%s", diff[i][0],
                     rh_tail(run.out, 3000));
        rh_run_free(&run);
    }
}

/* A RAYHPC_* variable overrides what the program passed in
 * rh_init_params_t, a bad value included. */
Test(user_api, a_set_variable_overrides_a_bad_init_parameter)
{
    user_case("params", 1, 1, NULL, "USER PARAMS OK");
}

/* The documented units: sizes with K, M, G, times with ms, s, m. */
Test(user_api, settings_take_their_documented_units)
{
    static const char *const env[] = {
        "RAYHPC_STORE_SIZE=64M", "RAYHPC_INLINE_MAX=16K",
        "RAYHPC_PUT_TIMEOUT_MS=10s", "RAYHPC_FINALIZE_TIMEOUT=2m",
        "RAYHPC_HEARTBEAT_MS=20ms", "RAYHPC_PULL_CHUNK=1M",
        "RAYHPC_LINEAGE_MAX_BYTES=1G", "RAYHPC_SPILL_THRESHOLD=0.5",
        "RAYHPC_RESOURCES=lic=2", NULL
    };

    user_case("refs", 2, 2, env, "USER REFS OK");
}

/* More 1 MiB returns held at once than a spill file per object allowed
 * for (1,024): every one is spilled and read back. */
Test(user_api, more_large_returns_held_than_the_store_all_come_back)
{
    static const char *const env[] = {
        "RAYHPC_STORE_SIZE=16M", "USER_API_FANOUT=1100", NULL
    };

    user_case("fanout", 1, 1, env, "USER FANOUT OK");
}

Test(user_api, four_threads_submit_get_and_release_at_once_on_one_rank)
{
    user_case("threads", 1, 1, NULL, "USER THREADS OK");
}

Test(user_api, four_threads_submit_get_and_release_at_once_on_two_nodes)
{
    user_case("threads", 4, 2, NULL, "USER THREADS OK");
}

Test(user_api, init_after_finalize_is_refused_under_the_launcher_or_alone)
{
    user_case("reinit", 2, 2, NULL, "USER REINIT OK");
}

/* Rank 1 makes named actors and is killed: 3 survivors report. */
Test(user_api, named_actors_outlive_or_share_their_dead_creators_fate)
{
    owner_dies_case("named", NULL, "USER NAMED OK");
}

Test(user_api, handles_in_objects_failing_methods_kills_and_restarts_on_one_rank)
{
    user_case("actors", 1, 1, NULL, "USER ACTORS OK");
}

Test(user_api, handles_in_objects_failing_methods_kills_and_restarts_on_two_nodes)
{
    user_case("actors", 4, 2, NULL, "USER ACTORS OK");
}

Test(user_api, zero_amounts_ask_for_nothing_and_cpu_is_num_cpus_on_one_rank)
{
    static const char *const env[] = { "RAYHPC_RESOURCES=lic=1", NULL };

    user_case("res", 1, 1, env, "USER RES OK");
}

Test(user_api, zero_amounts_ask_for_nothing_and_cpu_is_num_cpus_on_two_nodes)
{
    static const char *const env[] = { "RAYHPC_RESOURCES=lic=1", NULL };

    user_case("res", 4, 2, env, "USER RES OK");
}

/* A contact directory the user names that cannot be written is warned
 * about once (rank 0 writes the record), and the job runs on. */
Test(user_api, a_contact_directory_that_cannot_be_written_is_warned_about)
{
    static const char *const env[] = {
        "RAYHPC_JOB_CONTACT_DIR=/proc/no/such/dir", NULL
    };
    rh_run_t run = rh_launch(2, 2, 0, "tests/multi/user_api", "args", env,
                             TIMEOUT);

    RH_EXPECT_EXIT0(run);
    RH_EXPECT_LINES(run, "USER ARGS OK", 1);
    RH_EXPECT_LINES(run, "/proc/no/such/dir", 1);
    rh_run_free(&run);
}
