/*
 * Multi-rank tests: real ranks started by rayhpc-run, mpirun and srun, over
 * shared memory and over TCP (UCX_TLS=tcp,self).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spawn.h"

#define TIMEOUT 240

static const char *const TCP[] = { "UCX_TLS=tcp,self", NULL };

/* rayhpc-run [--nodes M] [--keep-going] -n N prog [arg] */
static rh_run_t launch(int n, int nodes, int keep_going, const char *prog,
                       const char *arg, const char *const *env)
{
    const char *argv[16];
    char nbuf[16], mbuf[16];
    int k = 0;

    snprintf(nbuf, sizeof(nbuf), "%d", n);
    snprintf(mbuf, sizeof(mbuf), "%d", nodes);
    argv[k++] = rh_build_path("rayhpc-run");
    argv[k++] = "-n";
    argv[k++] = nbuf;
    if (nodes > 0) {
        argv[k++] = "--nodes";
        argv[k++] = mbuf;
    }
    if (keep_going) {
        argv[k++] = "--keep-going";
    }
    argv[k++] = rh_build_path(prog);
    if (arg != NULL) {
        argv[k++] = arg;
    }
    argv[k] = NULL;
    return rh_run(argv, env, TIMEOUT);
}

static void expect_alltoall(rh_run_t *run, int n)
{
    cr_expect_eq(run->status, 0, "job failed with status %d", run->status);
    cr_expect_eq(rh_count_lines(run->out, "ALLTOALL OK"), n,
                 "not every rank verified its messages");
    cr_expect_eq(rh_count_lines(run->out, "sizes 0..16777216"), n,
                 "not every rank ran up to 16 MiB");
}

/* ---- rayhpc-run, shared memory -------------------------------------------- */

Test(local, alltoall_2_ranks_byte_exact)
{
    rh_run_t run = launch(2, 0, 0, "tests/multi/alltoall", NULL, NULL);

    expect_alltoall(&run, 2);
    rh_run_free(&run);
}

Test(local, alltoall_4_ranks_byte_exact)
{
    rh_run_t run = launch(4, 0, 0, "tests/multi/alltoall", NULL, NULL);

    expect_alltoall(&run, 4);
    rh_run_free(&run);
}

Test(local, alltoall_8_ranks_byte_exact)
{
    rh_run_t run = launch(8, 0, 0, "tests/multi/alltoall", NULL, NULL);

    expect_alltoall(&run, 8);
    rh_run_free(&run);
}

Test(local, alltoall_across_2_virtual_nodes)
{
    rh_run_t run = launch(4, 2, 0, "tests/multi/alltoall", NULL, NULL);

    expect_alltoall(&run, 4);
    cr_expect_eq(rh_count_lines(run.out, "(node 0 of 2)"), 2);
    cr_expect_eq(rh_count_lines(run.out, "(node 1 of 2)"), 2);
    rh_run_free(&run);
}

Test(local, alltoall_in_polling_and_blocking_progress_modes)
{
    static const char *const polling[] = { "RAYHPC_PROGRESS=polling", NULL };
    static const char *const blocking[] = { "RAYHPC_PROGRESS=blocking",
                                            NULL };
    rh_run_t run = launch(2, 0, 0, "tests/multi/alltoall", NULL, polling);

    expect_alltoall(&run, 2);
    rh_run_free(&run);
    run = launch(2, 0, 0, "tests/multi/alltoall", NULL, blocking);
    expect_alltoall(&run, 2);
    rh_run_free(&run);
}

Test(local, killed_rank_gives_peer_failure_to_the_others)
{
    rh_run_t run = launch(3, 0, 1, "tests/multi/peer_kill", NULL, NULL);

    cr_expect_eq(run.status, 137, "launcher should report the SIGKILL");
    cr_expect_eq(rh_count_lines(run.out, "PEER_FAILURE_SEEN"), 2);
    cr_expect_eq(rh_count_lines(run.out, "FINALIZE"), 2);
    cr_expect_eq(rh_count_lines(run.out, "status=success"), 2,
                 "survivors must finalize cleanly without the dead rank");
    cr_expect_eq(rh_count_lines(run.out, "rayhpc-run: rank 2 (pid"), 1,
                 "the launcher names the dead rank");
    cr_expect_eq(rh_count_lines(run.out, "signal 9"), 1);
    rh_run_free(&run);
}

Test(local, killed_rank_0_fails_finalize_instead_of_hanging)
{
    rh_run_t run = launch(3, 0, 1, "tests/multi/peer_kill", "0", NULL);

    cr_expect_eq(run.status, 137);
    cr_expect_eq(rh_count_lines(run.out, "PEER_FAILURE_SEEN"), 2);
    cr_expect_eq(rh_count_lines(run.out, "status=peer rank failed"), 2);
    rh_run_free(&run);
}

Test(local, malformed_messages_are_counted_and_dropped)
{
    rh_run_t run = launch(2, 0, 0, "tests/multi/malformed", NULL, NULL);

    cr_expect_eq(run.status, 0);
    cr_expect_eq(rh_count_lines(run.out, "MALFORMED OK"), 1);
    cr_expect_geq(rh_count_lines(run.out, "dropped a malformed message"), 8,
                  "each drop is logged");
    rh_run_free(&run);
}

Test(local, singleton_is_a_one_rank_job)
{
    const char *argv[] = { rh_build_path("tests/multi/hello"), NULL };
    rh_run_t run = rh_run(argv, NULL, TIMEOUT);

    cr_expect_eq(run.status, 0);
    cr_expect_eq(rh_count_lines(run.out, "HELLO rank=0 size=1 node=0 "
                                "nodes=1"), 1);
    rh_run_free(&run);
}

Test(local, misspelt_setting_gets_a_suggestion)
{
    static const char *const env[] = { "RAYHPC_LOG_LEVLE=debug", NULL };
    const char *argv[] = { rh_build_path("tests/multi/hello"), NULL };
    rh_run_t run = rh_run(argv, env, TIMEOUT);

    cr_expect_eq(run.status, 0);
    cr_expect_eq(rh_count_lines(run.out, "RAYHPC_LOG_LEVLE is not a setting;"
                                " did you mean RAYHPC_LOG_LEVEL?"), 1);
    rh_run_free(&run);
}

Test(local, bad_setting_value_fails_init_with_its_name)
{
    static const char *const env[] = { "RAYHPC_PROGRESS=fast", NULL };
    const char *argv[] = { rh_build_path("tests/multi/hello"), NULL };
    rh_run_t run = rh_run(argv, env, TIMEOUT);

    cr_expect_eq(run.status, 1);
    cr_expect_eq(rh_count_lines(run.out, "bad value 'fast' for "
                                "RAYHPC_PROGRESS: expected one of: polling "
                                "adaptive blocking"), 2,
                 "logged once and returned by rh_last_error");
    rh_run_free(&run);
}

/* ---- rayhpc-run, TCP ------------------------------------------------------- */

Test(tcp, alltoall_4_ranks_2_nodes_byte_exact)
{
    rh_run_t run = launch(4, 2, 0, "tests/multi/alltoall", NULL, TCP);

    expect_alltoall(&run, 4);
    rh_run_free(&run);
}

Test(tcp, killed_rank_gives_peer_failure_to_the_others)
{
    rh_run_t run = launch(3, 3, 1, "tests/multi/peer_kill", NULL, TCP);

    cr_expect_eq(run.status, 137);
    cr_expect_eq(rh_count_lines(run.out, "PEER_FAILURE_SEEN"), 2);
    cr_expect_eq(rh_count_lines(run.out, "status=success"), 2);
    rh_run_free(&run);
}

Test(tcp, malformed_messages_are_counted_and_dropped)
{
    rh_run_t run = launch(2, 2, 0, "tests/multi/malformed", NULL, TCP);

    cr_expect_eq(run.status, 0);
    cr_expect_eq(rh_count_lines(run.out, "MALFORMED OK"), 1);
    rh_run_free(&run);
}

/* ---- mpirun ----------------------------------------------------------------- */

static rh_run_t mpirun(int n, const char *prog, const char *const *xenv)
{
    const char *argv[24];
    char nbuf[16];
    int k = 0;

    snprintf(nbuf, sizeof(nbuf), "%d", n);
    argv[k++] = "mpirun";
    argv[k++] = "--allow-run-as-root";
    argv[k++] = "--oversubscribe";
    argv[k++] = "-n";
    argv[k++] = nbuf;
    for (int i = 0; xenv && xenv[i]; i++) {
        argv[k++] = "-x";
        argv[k++] = xenv[i];
    }
    argv[k++] = rh_build_path(prog);
    argv[k] = NULL;
    return rh_run(argv, NULL, TIMEOUT);
}

static void expect_hello(rh_run_t *run, int n)
{
    char line[64];

    cr_expect_eq(run->status, 0);
    for (int r = 0; r < n; r++) {
        snprintf(line, sizeof(line), "HELLO rank=%d size=%d ", r, n);
        cr_expect_eq(rh_count_lines(run->out, line), 1, "missing: %s", line);
    }
}

Test(mpirun, hello_4_ranks_over_pmix)
{
    rh_run_t run = mpirun(4, "tests/multi/hello", NULL);

    expect_hello(&run, 4);
    rh_run_free(&run);
}

Test(mpirun, alltoall_4_ranks_byte_exact)
{
    rh_run_t run = mpirun(4, "tests/multi/alltoall", NULL);

    expect_alltoall(&run, 4);
    rh_run_free(&run);
}

Test(mpirun, hello_4_ranks_over_the_mpi_backend)
{
    static const char *const env[] = { "RAYHPC_BOOTSTRAP=mpi", NULL };
    rh_run_t run = mpirun(4, "tests/multi/hello", env);

    expect_hello(&run, 4);
    rh_run_free(&run);
}

Test(mpirun, alltoall_over_tcp)
{
    static const char *const env[] = { "UCX_TLS=tcp,self",
                                       "RAYHPC_NODE_ID=mpi-tcp", NULL };
    rh_run_t run = mpirun(2, "tests/multi/alltoall", env);

    expect_alltoall(&run, 2);
    rh_run_free(&run);
}

/* ---- objects between ranks, and the store segment ---------------------------- */

/* The segment name a job printed ("STORE /rayhpc-..."), as a /dev/shm path. */
static void store_path(const char *out, char *path, size_t len)
{
    const char *s = strstr(out, "STORE /");

    cr_assert_not_null(s, "no STORE line");
    snprintf(path, len, "/dev/shm%.*s", (int)strcspn(s + 6, "\n"), s + 6);
}

Test(objects, put_on_one_rank_is_read_in_place_by_the_others)
{
    rh_run_t run = launch(3, 0, 0, "tests/multi/objects", "share", NULL);

    cr_expect_eq(run.status, 0);
    cr_expect_eq(rh_count_lines(run.out, "SHARED OK"), 2);
    rh_run_free(&run);
}

Test(objects, segment_is_removed_after_a_normal_exit)
{
    rh_run_t run = launch(2, 0, 0, "tests/multi/objects", "name", NULL);
    char path[512];

    cr_expect_eq(run.status, 0);
    store_path(run.out, path, sizeof(path));
    cr_expect_neq(access(path, F_OK), 0, "%s is still there", path);
    rh_run_free(&run);
}

Test(objects, segment_of_a_killed_job_is_removed_at_the_next_start)
{
    rh_run_t run = launch(2, 0, 1, "tests/multi/objects", "kill", NULL);
    char path[512];

    cr_expect_eq(run.status, 137);
    store_path(run.out, path, sizeof(path));
    rh_run_free(&run);
    cr_expect_eq(access(path, F_OK), 0, "a SIGKILL leaves %s behind", path);
    run = launch(2, 0, 0, "tests/multi/objects", "name", NULL);
    cr_expect_eq(run.status, 0);
    cr_expect_neq(access(path, F_OK), 0, "the next job removed %s", path);
    rh_run_free(&run);
}

Test(objects, functions_registered_differently_are_reported_at_start)
{
    rh_run_t run = launch(2, 0, 0, "tests/multi/objects", "mismatch", NULL);

    cr_expect_eq(run.status, 0);
    cr_expect_eq(rh_count_lines(run.out, "function only_on_one is registered "
                                "on rank 1 but not on rank 0"), 1);
    cr_expect_eq(rh_count_lines(run.out, "function only_on_zero is "
                                "registered on rank 0 but not on rank 1"), 1);
    cr_expect_eq(rh_count_lines(run.out, "function shared takes 1 arguments "
                                "and gives 1 returns on rank 0, but 2 and 1 "
                                "on rank 1"), 1);
    rh_run_free(&run);
}

Test(objects, many_driver_threads_share_one_rank_s_workers)
{
    rh_run_t run = launch(2, 0, 0, "tests/multi/tasks_stress", "10", NULL);

    cr_expect_eq(run.status, 0);
    cr_expect_eq(rh_count_lines(run.out, "STRESS OK"), 2);
    rh_run_free(&run);
}

/* ---- tasks on other nodes ------------------------------------------------------- */

Test(forward, tasks_run_on_the_node_they_name_and_chain_across_nodes)
{
    rh_run_t run = launch(3, 3, 0, "tests/multi/forward", "check", NULL);

    cr_expect_eq(run.status, 0);
    cr_expect_eq(rh_count_lines(run.out, "FORWARD OK: 3 nodes"), 1);
    rh_run_free(&run);
}

Test(forward, the_same_over_tcp)
{
    rh_run_t run = launch(4, 2, 0, "tests/multi/forward", "check", TCP);

    cr_expect_eq(run.status, 0);
    cr_expect_eq(rh_count_lines(run.out, "FORWARD OK: 2 nodes"), 1);
    rh_run_free(&run);
}

Test(forward, death_of_the_running_rank_fails_the_task)
{
    rh_run_t run = launch(3, 3, 1, "tests/multi/forward", "kill", NULL);

    cr_expect_eq(run.status, 137);
    cr_expect_eq(rh_count_lines(run.out, "FORWARD KILL OK: rank 2 failed "
                                "while running task die"), 1);
    rh_run_free(&run);
}

Test(forward, death_of_the_running_rank_fails_the_task_over_tcp)
{
    rh_run_t run = launch(2, 2, 1, "tests/multi/forward", "kill", TCP);

    cr_expect_eq(run.status, 137);
    cr_expect_eq(rh_count_lines(run.out, "FORWARD KILL OK"), 1);
    rh_run_free(&run);
}
