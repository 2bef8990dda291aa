/*
 * Working sets larger than the object store, with real ranks: spilling,
 * eviction of pulled copies, backpressure, the spill files' life
 * (tests/multi/spill.c).
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spawn.h"

#define TIMEOUT 120

static char spill_dir[256], env_dir[300];

static void make_dir(void)
{
    snprintf(spill_dir, sizeof(spill_dir), "/tmp/rh-spill-XXXXXX");
    cr_assert_not_null(mkdtemp(spill_dir));
    snprintf(env_dir, sizeof(env_dir), "RAYHPC_SPILL_DIR=%s", spill_dir);
}

static void remove_dir(void)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", spill_dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(spill, .init = make_dir, .fini = remove_dir, .timeout = 180);

/* Entries left in the spill base directory. */
static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    cr_assert_not_null(d);
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

static rh_run_t run_mode(int n, int nodes, int keep_going, const char *mode,
                         const char *extra)
{
    const char *env[] = { "RAYHPC_STORE_SIZE=32M", env_dir, extra, NULL };

    return rh_launch(n, nodes, keep_going, "tests/multi/spill", mode, env,
                     TIMEOUT);
}

/* Runs mode, which kills no rank: it exits 0 and prints its OK line once.
 * The caller checks the rest and frees the run. */
static rh_run_t run_ok(int n, int nodes, const char *mode, const char *extra,
                       const char *ok)
{
    rh_run_t run = run_mode(n, nodes, 0, mode, extra);

    RH_EXPECT_EXIT0(run);
    RH_EXPECT_LINES(run, ok, 1);
    return run;
}

static void expect_ok(int n, int nodes, const char *mode, const char *extra,
                      const char *ok)
{
    rh_run_t run = run_ok(n, nodes, mode, extra, ok);

    rh_run_free(&run);
}

Test(spill, working_set_four_times_the_store_reads_back_in_random_order)
{
    rh_run_t run = run_ok(1, 0, "workset", NULL, "SPILL WORKSET OK");

    cr_expect_eq(entries(spill_dir), 0, "spill files left after the job");
    rh_run_free(&run);
}

Test(spill, four_nodes_pull_evict_and_pull_again)
{
    rh_run_t run = run_ok(4, 4, "nodes", NULL, "SPILL NODES OK");

    cr_expect_eq(entries(spill_dir), 0, "spill files left after the job");
    rh_run_free(&run);
}

Test(spill, task_graph_with_intermediates_larger_than_the_store)
{
    expect_ok(2, 0, "graph", NULL, "SPILL GRAPH OK");
}

Test(spill, a_full_spill_dir_says_so_and_loses_nothing)
{
    expect_ok(1, 0, "full", "RAYHPC_SPILL_MAX=16M", "SPILL FULL OK");
}

Test(spill, a_put_waits_for_readers_of_a_full_store_then_says_why)
{
    expect_ok(1, 0, "wait", "RAYHPC_PUT_TIMEOUT_MS=2000", "SPILL WAIT OK");
}

Test(spill, a_get_of_a_spilled_object_waits_for_readers_then_says_why)
{
    expect_ok(1, 0, "getwait", "RAYHPC_PUT_TIMEOUT_MS=2000",
              "SPILL GETWAIT OK");
}

Test(spill, pulls_into_a_store_full_of_objects_in_use_wait_as_puts_do)
{
    expect_ok(2, 2, "pullwait", "RAYHPC_PUT_TIMEOUT_MS=2000",
              "SPILL PULLWAIT OK");
}

Test(spill, every_spill_file_is_0600)
{
    rh_run_t run = run_ok(1, 0, "modes", NULL, "SPILL MODES OK");

    cr_expect_gt(rh_count_lines(run.out, "MODE 600 "), 2, "%s",
                 rh_tail(run.out, 2000));
    cr_expect_eq(rh_count_lines(run.out, "MODE "),
                 rh_count_lines(run.out, "MODE 600 ") +
                 rh_count_lines(run.out, "DIRMODE 700"), "%s",
                 rh_tail(run.out, 2000));
    RH_EXPECT_LINES(run, "DIRMODE 700", 1);
    rh_run_free(&run);
}

Test(spill, a_rank_killed_while_spilling_leaves_no_file_after_the_next_start)
{
    rh_run_t run = run_mode(1, 0, 1, "kill", NULL);
    const char *line = strstr(run.out, "SPILLDIR ");
    char dir[1024] = "";
    struct stat st;

    cr_expect_eq(run.status, 137, "status %d: %s", run.status,
                 rh_tail(run.out, 2000));
    cr_assert_not_null(line, "%s", rh_tail(run.out, 2000));
    sscanf(line, "SPILLDIR %1023s", dir);
    rh_run_free(&run);
    cr_assert_eq(stat(dir, &st), 0, "a SIGKILL leaves %s behind", dir);
    run = run_mode(1, 0, 0, "graph", NULL);
    RH_EXPECT_EXIT0(run);
    cr_expect_neq(stat(dir, &st), 0, "the next job removed %s", dir);
    cr_expect_eq(entries(spill_dir), 0, "spill files left");
    rh_run_free(&run);
}
