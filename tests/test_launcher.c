/* rayhpc-run: how it starts ranks, reports failures and stops jobs. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "spawn.h"

#define TIMEOUT 120

static rh_run_t rayhpc_run(const char *const *args, const char *const *env)
{
    const char *argv[32];
    int k = 0;

    argv[k++] = rh_build_path("rayhpc-run");
    for (int i = 0; args[i] && k < 31; i++) {
        argv[k++] = args[i];
    }
    argv[k] = NULL;
    return rh_run(argv, env, TIMEOUT);
}

Test(launcher, ranks_see_rank_size_and_node)
{
    const char *args[] = { "-n", "4", "--nodes", "2",
                           rh_build_path("tests/multi/hello"), NULL };
    rh_run_t run = rayhpc_run(args, NULL);

    RH_EXPECT_EXIT0(run);
    cr_expect_eq(rh_count_lines(run.out, "HELLO rank=0 size=4 node=0 "
                                "nodes=2"), 1);
    cr_expect_eq(rh_count_lines(run.out, "HELLO rank=1 size=4 node=0 "
                                "nodes=2"), 1);
    cr_expect_eq(rh_count_lines(run.out, "HELLO rank=2 size=4 node=1 "
                                "nodes=2"), 1);
    cr_expect_eq(rh_count_lines(run.out, "HELLO rank=3 size=4 node=1 "
                                "nodes=2"), 1);
    rh_run_free(&run);
}

Test(launcher, one_node_by_default)
{
    const char *args[] = { "-n", "3", rh_build_path("tests/multi/hello"),
                           NULL };
    rh_run_t run = rayhpc_run(args, NULL);

    RH_EXPECT_EXIT0(run);
    cr_expect_eq(rh_count_lines(run.out, "nodes=1"), 3);
    rh_run_free(&run);
}

Test(launcher, nonzero_exit_stops_the_job_with_that_status)
{
    const char *args[] = { "-n", "3", "sh", "-c",
                           "if [ $RAYHPC_LOCAL_RANK = 1 ]; then exit 3; fi; "
                           "sleep 60", NULL };
    rh_run_t run = rayhpc_run(args, NULL);

    cr_expect_eq(run.status, 3);
    cr_expect_eq(rh_count_lines(run.out, "rank 1"), 1);
    cr_expect_eq(rh_count_lines(run.out, "status 3"), 1);
    rh_run_free(&run);
}

Test(launcher, death_by_signal_is_reported_as_128_plus_signal)
{
    const char *args[] = { "-n", "2", "sh", "-c",
                           "if [ $RAYHPC_LOCAL_RANK = 0 ]; then kill -SEGV $$;"
                           " fi; sleep 60", NULL };
    rh_run_t run = rayhpc_run(args, NULL);

    cr_expect_eq(run.status, 128 + 11);
    cr_expect_eq(rh_count_lines(run.out, "rank 0"), 1);
    cr_expect_eq(rh_count_lines(run.out, "signal 11"), 1);
    rh_run_free(&run);
}

Test(launcher, tag_output_prefixes_each_line_with_the_rank)
{
    const char *args[] = { "--tag-output", "-n", "2", "sh", "-c",
                           "echo line-a; echo line-b >&2", NULL };
    rh_run_t run = rayhpc_run(args, NULL);

    RH_EXPECT_EXIT0(run);
    cr_expect_eq(rh_count_lines(run.out, "[0] line-a"), 1);
    cr_expect_eq(rh_count_lines(run.out, "[1] line-a"), 1);
    cr_expect_eq(rh_count_lines(run.out, "[0] line-b"), 1);
    cr_expect_eq(rh_count_lines(run.out, "[1] line-b"), 1);
    rh_run_free(&run);
}

Test(launcher, timeout_stops_a_stuck_job)
{
    const char *args[] = { "--timeout", "1", "-n", "2", "sleep", "60",
                           NULL };
    rh_run_t run = rayhpc_run(args, NULL);

    cr_expect_eq(run.status, 124);
    cr_expect_eq(rh_count_lines(run.out, "timed out"), 1);
    rh_run_free(&run);
}

Test(launcher, missing_program_is_a_clear_error)
{
    const char *args[] = { "-n", "2", "/nonexistent/prog", NULL };
    rh_run_t run = rayhpc_run(args, NULL);

    cr_expect_eq(run.status, 127);
    cr_expect_geq(rh_count_lines(run.out, "cannot start"), 1);
    rh_run_free(&run);
}

Test(launcher, bad_arguments_print_usage)
{
    const char *no_n[] = { "true", NULL };
    const char *too_many_nodes[] = { "-n", "2", "--nodes", "3", "true",
                                     NULL };
    rh_run_t run = rayhpc_run(no_n, NULL);

    cr_expect_eq(run.status, 2);
    cr_expect_geq(rh_count_lines(run.out, "usage"), 1);
    rh_run_free(&run);
    run = rayhpc_run(too_many_nodes, NULL);
    cr_expect_eq(run.status, 2);
    rh_run_free(&run);
    {
        const char *both[] = { "-n", "1", "--keep-going",
                               "--stop-on-failure", "true", NULL };

        run = rayhpc_run(both, NULL);
        cr_expect_eq(run.status, 2, "options that contradict each other");
        cr_expect_geq(rh_count_lines(run.out, "contradict"), 1, "%s",
                      run.out);
        rh_run_free(&run);
    }
}

/* A rank that returns 0 from main without rh_finalize is a failure, as
 * under MPI's launchers (it exited 0 and the job's status was 0): it says
 * so, the launcher counts it as status 1, and the other ranks end. */
Test(launcher, a_rank_ending_without_rh_finalize_fails_the_job)
{
    /* What rh_init took is not freed without rh_finalize: LeakSanitizer
     * (the sanitizer build) would turn the exit status 0 into its own. */
    static const char *const one[] = { "HELLO_NO_FINALIZE=1",
                                       "LSAN_OPTIONS=detect_leaks=0", NULL };
    static const char *const driver[] = { "HELLO_NO_FINALIZE=0",
                                          "LSAN_OPTIONS=detect_leaks=0",
                                          NULL };
    static const char *const status[] = { "HELLO_NO_FINALIZE=1",
                                          "HELLO_EXIT=3",
                                          "LSAN_OPTIONS=detect_leaks=0",
                                          NULL };
    const char *args[] = { "-n", "3", rh_build_path("tests/multi/hello"),
                           NULL };
    rh_run_t run = rayhpc_run(args, one);

    cr_expect_eq(run.status, 1, "output:\n%s", rh_tail(run.out, 2000));
    cr_expect_eq(rh_count_lines(run.out, "HELLO rank="), 3);
    cr_expect_eq(rh_count_lines(run.out, "ending without calling "
                                "rh_finalize: the job's other ranks take "
                                "rank 1 for dead"), 1, "the rank says it");
    cr_expect_eq(rh_count_lines(run.out, "rank 1 (pid"), 1);
    cr_expect_eq(rh_count_lines(run.out, "without calling rh_finalize "
                                "(counted as status 1)"), 1);
    rh_run_free(&run);
    run = rayhpc_run(args, driver);
    cr_expect_eq(run.status, 1, "output:\n%s", rh_tail(run.out, 2000));
    cr_expect_eq(rh_count_lines(run.out, "rank 0 (pid"), 1);
    rh_run_free(&run);
    /* Its own failing status stays what it was. */
    run = rayhpc_run(args, status);
    cr_expect_eq(run.status, 3, "output:\n%s", rh_tail(run.out, 2000));
    rh_run_free(&run);
}

Test(launcher, rank_abort_stops_the_job)
{
    /* A rank whose rh_init fails for a bad setting exits 1: the job stops. */
    static const char *const env[] = { "RAYHPC_BOOTSTRAP=pmix", NULL };
    const char *args[] = { "-n", "2", rh_build_path("tests/multi/hello"),
                           NULL };
    rh_run_t run = rayhpc_run(args, env);

    cr_expect_eq(run.status, 1);
    cr_expect_geq(rh_count_lines(run.out, "PMIx_Init"), 1,
                  "the rank says why it could not start");
    rh_run_free(&run);
}
