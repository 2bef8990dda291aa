/*
 * Multi-rank tests: real ranks started by rayhpc-run, mpirun and srun, over
 * shared memory and over TCP (UCX_TLS=tcp,self).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "spawn.h"

#define TIMEOUT 240

static const char *const TCP[] = { "UCX_TLS=tcp,self", NULL };

static rh_run_t launch(int n, int nodes, int keep_going, const char *prog,
                       const char *arg, const char *const *env)
{
    return rh_launch(n, nodes, keep_going, prog, arg, env, TIMEOUT);
}

static void expect_alltoall(rh_run_t *run, int n)
{
    cr_expect_eq(run->status, 0, "job failed with status %d; output ends:"
                 "\n%s", run->status, rh_tail(run->out, 3000));
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

/* RAYHPC_SHM_RING=0: ranks of a host talk through UCX's shared memory, as
 * before the rings. */
Test(local, alltoall_over_ucx_shared_memory_with_the_rings_off)
{
    static const char *const off[] = { "RAYHPC_SHM_RING=0", NULL };
    rh_run_t run = launch(4, 0, 0, "tests/multi/alltoall", NULL, off);

    expect_alltoall(&run, 4);
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

/* Sends to the victim still in flight when it dies and when the survivors
 * finalize: the flush must not wait for it (it did, for the whole finalize
 * timeout, and left its request in UCX). */
Test(local, finalize_after_kill_with_sends_in_flight_ends_promptly)
{
    static const char *const env[] = { "PEER_KILL_FLOOD=1",
                                       "RAYHPC_FINALIZE_TIMEOUT=30s", NULL };
    struct timespec t0, t1;
    double took;
    rh_run_t run;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    run = launch(4, 2, 1, "tests/multi/peer_kill", NULL, env);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    took = (double)(t1.tv_sec - t0.tv_sec) +
           (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    cr_expect_eq(run.status, 137, "launcher should report the SIGKILL; "
                 "output ends:\n%s", rh_tail(run.out, 3000));
    cr_expect_eq(rh_count_lines(run.out, "FLOODED"), 3);
    cr_expect_eq(rh_count_lines(run.out, "status=success"), 3,
                 "survivors must finalize cleanly; output ends:\n%s",
                 rh_tail(run.out, 3000));
    cr_expect_eq(rh_count_lines(run.out, "sends still in flight"), 0,
                 "a flush waited for the dead rank:\n%s",
                 rh_tail(run.out, 3000));
    cr_expect_eq(rh_count_lines(run.out, "did not end with"), 0,
                 "a request was left in UCX:\n%s", rh_tail(run.out, 3000));
    cr_expect_eq(rh_count_lines(run.out, "UCX  WARN"), 0,
                 "a request was left in UCX:\n%s", rh_tail(run.out, 3000));
    /* A stall waits out the 30 s finalize timeout. */
    cr_expect_lt(took, 20.0, "the job took %.1f s to end", took);
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

/* Ranks SIGKILLed one after another while they stream to one rank of
 * their host: a kill that leaves the receiver's shared-memory receive
 * queue stalled (UCX: a slot taken, never marked ready) makes the receiver
 * end itself, saying why, instead of hanging, and rank 0 sees every
 * receiver answer or die. Without the receive watch (RAYHPC_RX_WATCH=0),
 * 2 of 3 such jobs hung in a round. */
Test(local, a_receive_queue_stalled_by_a_kill_ends_its_rank_not_the_job)
{
    static const char *const env[] = { "RAYHPC_NUM_WORKERS=1", NULL };

    for (int job = 0; job < 2; job++) {
        rh_run_t run = launch(11, 0, 1, "tests/multi/shm_stall", NULL, env);
        const char *ok = strstr(run.out, "SHM_STALL OK");
        int ended = -1;

        cr_expect_eq(run.status, 137, "status %d; output ends:\n%s",
                     run.status, rh_tail(run.out, 3000));
        cr_expect_not_null(ok, "%s", rh_tail(run.out, 3000));
        if (ok != NULL && strstr(ok, "ended=") != NULL) {
            sscanf(strstr(ok, "ended="), "ended=%d", &ended);
        }
        /* every rank that ended said why (one may end after rank 0
         * counted: a kill can stall a rank it did not stream to) */
        cr_expect_geq(rh_count_lines(run.out, "receive queue is stalled"),
                      ended, "%s", rh_tail(run.out, 3000));
        cr_expect_geq(ended, 0);
        rh_run_free(&run);
    }
}

/* Threads that send at once over a same-host ring, some of their messages
 * written into the ring by the thread itself and some handed to the
 * progress thread as requests (larger ones, ones with a callback, ones
 * that met a full ring): each thread's arrive all, in its order. With
 * rings of 4 KiB, full most of the time, and of the default size. */
Test(local, threads_sending_over_a_ring_keep_their_order)
{
    static const char *const small[] = { "RAYHPC_SHM_RING=1",
                                         "RAYHPC_SHM_RING_BYTES=4096", NULL };
    static const char *const dflt[] = { "RAYHPC_SHM_RING=1", NULL };
    const char *const *envs[] = { small, dflt };

    for (int i = 0; i < 2; i++) {
        rh_run_t run = launch(2, 0, 0, "tests/multi/ring_threads", NULL,
                              envs[i]);

        cr_expect_eq(run.status, 0, "status %d; output ends:\n%s",
                     run.status, rh_tail(run.out, 3000));
        cr_expect_eq(rh_count_lines(run.out, "RING THREADS OK"), 1, "%s",
                     rh_tail(run.out, 3000));
        rh_run_free(&run);
    }
}

/* The same kills with the same-host rings (RAYHPC_SHM_RING=1) and no
 * receive watch: a sender killed mid-message holds up only its own ring,
 * which the receiver drops, so every receiver answers every round and no
 * rank ends deaf. Over UCX's shared memory with the watch off, 2 of 3 such
 * jobs hung in a round. */
Test(local, a_sender_killed_mid_message_stalls_no_receiver_over_the_rings)
{
    static const char *const env[] = { "RAYHPC_NUM_WORKERS=1",
                                       "RAYHPC_RX_WATCH=0",
                                       "RAYHPC_SHM_RING=1",
                                       "SHM_STALL_WAIT_S=60", NULL };

    for (int job = 0; job < 2; job++) {
        rh_run_t run = launch(11, 0, 1, "tests/multi/shm_stall", NULL, env);
        const char *ok = strstr(run.out, "SHM_STALL OK");
        int rounds = -1, heard = -1, ended = -1;

        cr_expect_eq(run.status, 137, "status %d; output ends:\n%s",
                     run.status, rh_tail(run.out, 3000));
        cr_expect_not_null(ok, "a round failed:\n%s",
                           rh_tail(run.out, 3000));
        if (ok != NULL) {
            sscanf(ok, "SHM_STALL OK rounds=%d heard=%d ended=%d", &rounds,
                   &heard, &ended);
        }
        cr_expect_gt(rounds, 0, "%s", rh_tail(run.out, 3000));
        cr_expect_eq(heard, rounds, "a receiver went deaf:\n%s",
                     rh_tail(run.out, 3000));
        cr_expect_eq(ended, 0, "%s", rh_tail(run.out, 3000));
        cr_expect_eq(rh_count_lines(run.out, "receive queue is stalled"), 0,
                     "%s", rh_tail(run.out, 3000));
        rh_run_free(&run);
    }
}

Test(local, malformed_messages_are_counted_and_dropped)
{
    rh_run_t run = launch(2, 0, 0, "tests/multi/malformed", NULL, NULL);

    RH_EXPECT_EXIT0(run);
    cr_expect_eq(rh_count_lines(run.out, "MALFORMED OK"), 1);
    cr_expect_geq(rh_count_lines(run.out, "dropped a malformed message"), 8,
                  "each drop is logged");
    rh_run_free(&run);
}

Test(local, singleton_is_a_one_rank_job)
{
    const char *argv[] = { rh_build_path("tests/multi/hello"), NULL };
    rh_run_t run = rh_run(argv, NULL, TIMEOUT);

    RH_EXPECT_EXIT0(run);
    cr_expect_eq(rh_count_lines(run.out, "HELLO rank=0 size=1 node=0 "
                                "nodes=1"), 1);
    rh_run_free(&run);
}

Test(local, misspelt_setting_gets_a_suggestion)
{
    static const char *const env[] = { "RAYHPC_LOG_LEVLE=debug", NULL };
    const char *argv[] = { rh_build_path("tests/multi/hello"), NULL };
    rh_run_t run = rh_run(argv, env, TIMEOUT);

    RH_EXPECT_EXIT0(run);
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

/* Runs tests/multi/connect on 4 ranks of 2 nodes over TCP with
 * RAYHPC_CONNECT_ALL=mode; every rank must print `expect`. */
static void connect_case(const char *mode, const char *expect)
{
    char setting[64];
    const char *env[] = { "UCX_TLS=tcp,self", setting, NULL };
    rh_run_t run;

    snprintf(setting, sizeof(setting), "RAYHPC_CONNECT_ALL=%s", mode);
    run = launch(4, 2, 0, "tests/multi/connect", NULL, env);
    RH_EXPECT_EXIT0(run);
    cr_expect_eq(rh_count_lines(run.out, expect), 4, "not every rank says "
                 "\"%s\":\n%s", expect, rh_tail(run.out, 2000));
    rh_run_free(&run);
}

/* UCX 1.13's TCP transport crashes when an endpoint to a peer is made
 * while a message of that peer is handled and more of them wait behind it
 * (see rh_tp_create_endpoints): with connections made at start-up, every
 * endpoint exists before the progress thread runs, so none is ever made
 * by a handler, UCX's or ours. */
Test(tcp, connections_made_at_start_exist_before_the_progress_thread_runs)
{
    connect_case("on", "init=0 after=0");
}

/* The counter sees endpoints made late: one per peer, by the first send
 * (or by rh_init's own traffic, which may come first on some ranks). */
Test(tcp, without_connections_at_start_each_first_send_makes_one)
{
    connect_case("off", "after=3");
}

Test(tcp, malformed_messages_are_counted_and_dropped)
{
    rh_run_t run = launch(2, 2, 0, "tests/multi/malformed", NULL, TCP);

    RH_EXPECT_EXIT0(run);
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

    RH_EXPECT_EXIT0(*run);
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

#ifdef HAVE_MPI
/* ---- MPI and librayhpc in one process (tests/multi/mpi_coexist) ------------ */

/* 4 ranks under mpirun, each its own virtual node, with RAYHPC_BOOTSTRAP
 * set to bootstrap; init and fini say who starts and who ends first. With
 * ucx_pml, Open MPI's messages go through its UCX layer (a UCP context of
 * its own beside ours), which it otherwise takes only where there is
 * InfiniBand or RoCE. */
static void coexist_mpirun_pml(const char *bootstrap, const char *init,
                               const char *fini, int ucx_pml)
{
    char bs[64], want[64];
    const char *argv[32];
    int k = 0;
    rh_run_t run;

    snprintf(bs, sizeof(bs), "RAYHPC_BOOTSTRAP=%s", bootstrap);
    argv[k++] = "mpirun";
    argv[k++] = "--allow-run-as-root";
    argv[k++] = "--oversubscribe";
    argv[k++] = "-n";
    argv[k++] = "4";
    argv[k++] = "-x";
    argv[k++] = bs;
    if (ucx_pml) {
        static const char *const pml[] = { "--mca", "pml", "ucx", "--mca",
                                           "pml_ucx_tls", "any", "--mca",
                                           "pml_ucx_devices", "any" };

        for (size_t i = 0; i < sizeof(pml) / sizeof(pml[0]); i++) {
            argv[k++] = pml[i];
        }
    }
    argv[k++] = "sh";
    argv[k++] = "-c";
    argv[k++] = "RAYHPC_NODE_ID=mpi-$OMPI_COMM_WORLD_RANK "
                "exec \"$0\" \"$@\"";
    argv[k++] = rh_build_path("tests/multi/mpi_coexist");
    argv[k++] = init;
    argv[k++] = fini;
    argv[k] = NULL;
    run = rh_run(argv, NULL, TIMEOUT);
    RH_EXPECT_EXIT0(run);
    for (int r = 0; r < 4; r++) {
        snprintf(want, sizeof(want), "RANKS AGREE rank=%d size=4 node=%d "
                 "nodes=4", r, r);
        cr_expect_eq(rh_count_lines(run.out, want), 1, "missing: %s", want);
    }
    cr_expect_eq(rh_count_lines(run.out, "COEXIST OK"), 4, "output ends:\n%s",
                 rh_tail(run.out, 3000));
    rh_run_free(&run);
}

static void coexist_mpirun(const char *bootstrap, const char *init,
                           const char *fini)
{
    coexist_mpirun_pml(bootstrap, init, fini, 0);
}

Test(mpi_coexist, ucx_pml_mpi_init_first_rh_finalize_first)
{
    coexist_mpirun_pml("pmix", "mpi", "rh", 1);
}

Test(mpi_coexist, ucx_pml_rh_init_first_mpi_finalize_first)
{
    coexist_mpirun_pml("pmix", "rh", "mpi", 1);
}

Test(mpi_coexist, mpi_init_first_finalize_first_pmix)
{
    coexist_mpirun("pmix", "mpi", "mpi");
}

Test(mpi_coexist, mpi_init_first_rh_finalize_first_pmix)
{
    coexist_mpirun("pmix", "mpi", "rh");
}

Test(mpi_coexist, rh_init_first_mpi_finalize_first_pmix)
{
    coexist_mpirun("pmix", "rh", "mpi");
}

Test(mpi_coexist, rh_init_first_finalize_first_pmix)
{
    coexist_mpirun("pmix", "rh", "rh");
}

Test(mpi_coexist, mpi_init_first_finalize_first_mpi_backend)
{
    coexist_mpirun("mpi", "mpi", "mpi");
}

Test(mpi_coexist, mpi_init_first_rh_finalize_first_mpi_backend)
{
    coexist_mpirun("mpi", "mpi", "rh");
}

/* rh_init starts MPI at MPI_THREAD_FUNNELED (it runs threads), and the
 * program ends MPI before rh_finalize: no second MPI_Finalize. */
Test(mpi_coexist, rh_starts_mpi_program_finalizes_it_first)
{
    coexist_mpirun("mpi", "rh", "mpi");
}

/* MPI cannot start again once ended: rh_init says so. */
Test(mpi_coexist, mpi_backend_refuses_a_finalized_mpi)
{
    const char *argv[] = { "mpirun", "--allow-run-as-root", "--oversubscribe",
                           "-n", "2",
                           rh_build_path("tests/multi/mpi_coexist"),
                           "after-finalize", NULL };
    rh_run_t run = rh_run(argv, NULL, TIMEOUT);

    RH_EXPECT_EXIT0(run);
    cr_expect_eq(rh_count_lines(run.out, "REFUSED rank="), 2,
                 "output ends:\n%s", rh_tail(run.out, 3000));
    cr_expect_geq(rh_count_lines(run.out, "already called MPI_Finalize"), 2);
    rh_run_free(&run);
}

/* rh_init starts MPI at MPI_THREAD_FUNNELED; rh_finalize ends it. */
Test(mpi_coexist, rh_starts_mpi_and_finalizes_it)
{
    coexist_mpirun("mpi", "rh", "rh");
}
#endif

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

    RH_EXPECT_EXIT0(run);
    cr_expect_eq(rh_count_lines(run.out, "SHARED OK"), 2);
    rh_run_free(&run);
}

Test(objects, segment_is_removed_after_a_normal_exit)
{
    rh_run_t run = launch(2, 0, 0, "tests/multi/objects", "name", NULL);
    char path[512];

    RH_EXPECT_EXIT0(run);
    store_path(run.out, path, sizeof(path));
    cr_expect_neq(access(path, F_OK), 0, "%s is still there", path);
    rh_run_free(&run);
}

Test(objects, segment_of_a_killed_job_is_removed_at_the_next_start)
{
    rh_run_t run;
    char path[512];
    int left = 0;

    /* A store created meanwhile on this host (a test running beside this
     * one) may reap the segment first: then the case is set up again. */
    for (int tries = 0; tries < 10 && !left; tries++) {
        run = launch(2, 0, 1, "tests/multi/objects", "kill", NULL);
        cr_expect_eq(run.status, 137);
        store_path(run.out, path, sizeof(path));
        rh_run_free(&run);
        left = access(path, F_OK) == 0;
    }
    cr_expect(left, "a SIGKILL leaves %s behind", path);
    run = launch(2, 0, 0, "tests/multi/objects", "name", NULL);
    RH_EXPECT_EXIT0(run);
    cr_expect_neq(access(path, F_OK), 0, "the next job removed %s", path);
    rh_run_free(&run);
}

/* A rank killed while it held a get on an object of its node: a survivor
 * gives its reference back, so the object goes once its owner lets go. */
Test(objects, a_killed_ranks_holds_are_given_back_to_the_store)
{
    rh_run_t run = launch(3, 0, 1, "tests/multi/objects", "holder_dies",
                          NULL);

    cr_expect_eq(run.status, 137, "status %d; output ends:\n%s", run.status,
                 rh_tail(run.out, 3000));
    cr_expect_eq(rh_count_lines(run.out, "HOLDER DIES OK"), 1, "%s",
                 rh_tail(run.out, 3000));
    rh_run_free(&run);
}

/* rh_finalize is collective without a deadline while every rank lives: the
 * finalize timeout bounds the flush at the end, not the work before it. */
static void expect_slow_rank_waited_for(const char *mode)
{
    static const char *const env[] = { "RAYHPC_FINALIZE_TIMEOUT=1s", NULL };
    rh_run_t run = launch(3, 2, 0, "tests/multi/objects", mode, env);

    RH_EXPECT_EXIT0(run);
    cr_expect_eq(rh_count_lines(run.out, "SLOW RANK OK"), 3);
    rh_run_free(&run);
}

Test(objects, ranks_in_finalize_wait_for_a_driver_that_works_past_the_timeout)
{
    expect_slow_rank_waited_for("slow_driver");
}

Test(objects, rank_0_in_finalize_waits_for_a_rank_that_works_past_the_timeout)
{
    expect_slow_rank_waited_for("slow_worker");
}

Test(objects, functions_registered_differently_are_reported_at_start)
{
    rh_run_t run = launch(2, 0, 0, "tests/multi/objects", "mismatch", NULL);

    RH_EXPECT_EXIT0(run);
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

    RH_EXPECT_EXIT0(run);
    cr_expect_eq(rh_count_lines(run.out, "STRESS OK"), 2);
    rh_run_free(&run);
}

Test(objects, threads_share_one_rank_s_cpus_through_the_resource_ledger)
{
    rh_run_t run = launch(2, 0, 0, "tests/multi/resources", "300", NULL);

    RH_EXPECT_EXIT0(run);
    cr_expect_eq(rh_count_lines(run.out, "RESOURCES OK"), 2);
    rh_run_free(&run);
}

/* A one-CPU task that started before any task asked for more than a CPU
 * (the ledger counted nothing then) keeps its CPU: a task asking for all
 * of them, submitted while it runs, waits until it ends. */
Test(objects, a_task_for_all_cpus_waits_for_one_cpu_tasks_started_uncounted)
{
    static const char *const env[] = { "RAYHPC_NUM_WORKERS=2", NULL };
    rh_run_t run = launch(1, 0, 0, "tests/multi/resources_late", "late",
                          env);

    RH_EXPECT_EXIT0(run);
    cr_expect_eq(rh_count_lines(run.out, "LATE OK"), 1);
    rh_run_free(&run);
}

/* ... and lends it while it waits for such a task of its own. */
Test(objects, an_uncounted_task_lends_its_cpu_to_an_all_cpus_child)
{
    static const char *const env[] = { "RAYHPC_NUM_WORKERS=2", NULL };
    rh_run_t run = launch(1, 0, 0, "tests/multi/resources_late", "lend",
                          env);

    RH_EXPECT_EXIT0(run);
    cr_expect_eq(rh_count_lines(run.out, "LATE OK"), 1);
    rh_run_free(&run);
}

/* ---- soak: a mixed graph while ranks die ----------------------------------------- */

/* The short soak (tests/soak.sh runs the long one): nested trees spread over
 * 4 nodes, blobs made on one node and checked on another, tasks in
 * placement groups, while 2 of the 8 ranks are SIGKILLed in the first
 * seconds. Every answer is right or explained by a death, the job ends by
 * itself, and no store segment is left. */
Test(soak, mixed_graph_while_two_ranks_are_killed_leaves_nothing_behind)
{
    /* Over the host's default transports, so over the same-host rings:
     * the soak's kills land in the middle of heavy traffic, which a ring
     * per sender survives (a rank killed inside a send into UCX's one
     * shared-memory FIFO could stall a survivor for good), and the rings
     * of the killed ranks must go at the end as the stores do. */
    static const char *const env[] = { "SOAK_ROUNDS=8", "SOAK_KILL=2",
                                       "SOAK_SEED=5", "SOAK_WINDOW=2",
                                       "RAYHPC_STORE_SIZE=64M", NULL };
    rh_run_t run = launch(8, 4, 1, "tests/multi/soak", NULL, env);
    const char *job = strstr(run.out, "SOAK JOB ");
    char pattern[128];

    cr_expect(run.status == 0 || run.status == 137, "status %d; output "
              "ends:\n%s", run.status, rh_tail(run.out, 3000));
    cr_expect_eq(rh_count_lines(run.out, "SOAK OK"), 1, "%s",
                 rh_tail(run.out, 3000));
    cr_expect_eq(rh_count_lines(run.out, "UCX  WARN"), 0, "%s",
                 rh_tail(run.out, 3000));
    cr_assert_not_null(job, "no SOAK JOB line");
    snprintf(pattern, sizeof(pattern), "/dev/shm/%.*s", (int)strcspn(job + 9,
             "\n"), job + 9);
    cr_expect_eq(rh_count_matching_files(pattern), 0, "segments %s* left",
                 pattern);
    rh_run_free(&run);
}

/* ---- deep recursion through tasks ------------------------------------------------ */

/* The other ranks wait in rh_finalize while rank 0 drives: a deep chain on
 * a loaded machine may take longer than their default patience. */
static const char *const PATIENT[] = { "RAYHPC_FINALIZE_TIMEOUT=600s", NULL };

/* rayhpc-run -n n --nodes n tests/multi/recursion mode depth */
static void recursion_case(int n, const char *mode, const char *depth,
                           const char *ok)
{
    char nbuf[16];
    const char *argv[] = { rh_build_path("rayhpc-run"), "-n", nbuf,
                           "--nodes", nbuf,
                           rh_build_path("tests/multi/recursion"), mode,
                           depth, NULL };
    rh_run_t run;

    snprintf(nbuf, sizeof(nbuf), "%d", n);
    run = rh_run(argv, PATIENT, 2 * TIMEOUT);
    RH_EXPECT_EXIT0(run);
    cr_expect_eq(rh_count_lines(run.out, ok), 1, "no line \"%s\"; output "
                 "ends:\n%s", ok, rh_tail(run.out, 3000));
    rh_run_free(&run);
}

Test(recursion, chain_of_100000_nested_gets_on_one_rank)
{
    recursion_case(1, "chain", "100000",
                   "RECURSION CHAIN OK: depth 100000 ");
}

Test(recursion, chain_of_10000_spread_over_4_nodes)
{
    recursion_case(4, "spread", "10000",
                   "RECURSION SPREAD OK: depth 10000 ");
}

/* ---- tasks on other nodes ------------------------------------------------------- */

Test(forward, tasks_run_on_the_node_they_name_and_chain_across_nodes)
{
    rh_run_t run = launch(3, 3, 0, "tests/multi/forward", "check", NULL);

    RH_EXPECT_EXIT0(run);
    cr_expect_eq(rh_count_lines(run.out, "FORWARD OK: 3 nodes"), 1);
    rh_run_free(&run);
}

Test(forward, the_same_over_tcp)
{
    rh_run_t run = launch(4, 2, 0, "tests/multi/forward", "check", TCP);

    RH_EXPECT_EXIT0(run);
    cr_expect_eq(rh_count_lines(run.out, "FORWARD OK: 2 nodes"), 1);
    rh_run_free(&run);
}

/* Every 7th message of every rank is lost before it reaches UCX: each get
 * still ends, with its value or an error naming the rank and why. */
static const char *const FAULTS[] = { "RAYHPC_FAULT_SENDS=7", NULL };

Test(forward, lost_messages_end_every_get_with_a_value_or_an_error)
{
    rh_run_t run = launch(3, 3, 0, "tests/multi/send_faults", NULL, FAULTS);

    RH_EXPECT_EXIT0(run);
    cr_expect_eq(rh_count_lines(run.out, "SEND FAULTS OK"), 1);
    rh_run_free(&run);
}

/* A burst to another node with room for 1024 tasks out: the submitter
 * waits, memory stays under the program's ceiling (512 MiB on each rank),
 * every task runs once; a non-blocking submit with no room gets
 * RH_ERR_BUSY. The full burst (10 M tasks) is run by hand: see README. */
static const char *const BURST[] = { "RAYHPC_REMOTE_TASKS_MAX=1024",
                                     "RAYHPC_FINALIZE_TIMEOUT=200s", NULL };

Test(forward, a_burst_to_another_node_waits_for_room_within_a_memory_ceiling)
{
    rh_run_t run = launch(2, 2, 0, "tests/multi/burst", "100000", BURST);

    RH_EXPECT_EXIT0(run);
    cr_expect_eq(rh_count_lines(run.out, "BURST OK: 100000 tasks"), 1);
    cr_expect_eq(rh_count_lines(run.out, "PEAK rank"), 2);
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

/* ---- objects pulled between nodes ------------------------------------------------ */

static const char *const ONE_WORKER[] = { "RAYHPC_NUM_WORKERS=1", NULL };
static const char *const ONE_WORKER_TCP[] = { "RAYHPC_NUM_WORKERS=1",
                                              "UCX_TLS=tcp,self", NULL };
static const char *const BIG_STORE[] = { "RAYHPC_NUM_WORKERS=1",
                                         "RAYHPC_STORE_SIZE=3G", NULL };
static const char *const BIG_STORE_TCP[] = { "RAYHPC_NUM_WORKERS=1",
                                             "RAYHPC_STORE_SIZE=3G",
                                             "UCX_TLS=tcp,self", NULL };

/* Runs prog mode on n ranks as `nodes` nodes and expects a clean exit and
 * one line containing ok; the caller frees the run. */
static rh_run_t expect_mode(int n, int nodes, const char *prog,
                            const char *mode, const char *const *env,
                            const char *ok)
{
    rh_run_t run = launch(n, nodes, 0, prog, mode, env);

    cr_expect_eq(run.status, 0, "%s %s failed with status %d; output "
                 "ends:\n%s", prog, mode, run.status, rh_tail(run.out, 3000));
    cr_expect_eq(rh_count_lines(run.out, ok), 1, "no line \"%s\"", ok);
    return run;
}

/* How many lines of out contain both a and b. */
static int count_lines_with_both(const char *out, const char *a,
                                 const char *b)
{
    int n = 0;
    const char *line = out;

    while (line && *line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);

        if (memmem(line, len, a, strlen(a)) != NULL &&
            memmem(line, len, b, strlen(b)) != NULL) {
            n++;
        }
        line = end ? end + 1 : NULL;
    }
    return n;
}

static void pull_case(const char *mode, int n, int nodes,
                      const char *const *env, const char *ok)
{
    rh_run_t run = expect_mode(n, nodes, "tests/multi/pull", mode, env, ok);

    rh_run_free(&run);
}

Test(pull, chain_of_ref_args_across_nodes_is_byte_exact)
{
    pull_case("chain", 3, 3, ONE_WORKER, "PULL CHAIN OK: ");
}

Test(pull, chain_of_ref_args_across_nodes_is_byte_exact_over_tcp)
{
    pull_case("chain", 3, 3, ONE_WORKER_TCP, "PULL CHAIN OK: ");
}

/* 2 ranks as 2 nodes: each node's store of 3G is pre-faulted at start;
 * with one rank a node none waits for another's. */
Test(pull, one_gib_return_made_on_another_node_is_pulled_byte_exact)
{
    pull_case("big", 2, 2, BIG_STORE, "PULL BIG OK: ");
}

Test(pull, one_gib_return_made_on_another_node_is_pulled_over_tcp)
{
    pull_case("big", 2, 2, BIG_STORE_TCP, "PULL BIG OK: ");
}

Test(pull, sixteen_threads_getting_one_remote_object_pull_it_once)
{
    pull_case("concurrent", 3, 3, ONE_WORKER, "PULL CONCURRENT OK: 16 gets, "
              "1 pull");
}

Test(pull, sixteen_threads_getting_one_remote_object_pull_it_once_over_tcp)
{
    pull_case("concurrent", 3, 3, ONE_WORKER_TCP, "PULL CONCURRENT OK: 16 "
              "gets, 1 pull");
}

Test(pull, put_on_another_node_is_read_by_get_and_by_tasks)
{
    pull_case("get_put", 3, 3, ONE_WORKER, "PULL GET_PUT OK: ");
}

Test(pull, put_on_another_node_is_read_by_get_and_by_tasks_over_tcp)
{
    pull_case("get_put", 3, 3, ONE_WORKER_TCP, "PULL GET_PUT OK: ");
}

Test(pull, a_task_without_returns_keeps_its_ref_arguments_until_it_ran)
{
    pull_case("fire", 2, 2, ONE_WORKER, "PULL FIRE OK: ");
}

Test(pull, a_task_without_returns_keeps_its_ref_arguments_over_tcp)
{
    pull_case("fire", 2, 2, ONE_WORKER_TCP, "PULL FIRE OK: ");
}

Test(pull, an_object_too_large_for_this_node_fails_its_get_with_a_message)
{
    pull_case("too_big", 2, 2, ONE_WORKER, "PULL TOO_BIG OK: ");
}

Test(pull, an_object_too_large_for_this_node_fails_over_tcp)
{
    pull_case("too_big", 2, 2, ONE_WORKER_TCP, "PULL TOO_BIG OK: ");
}

Test(pull, a_node_reads_one_object_from_several_copies_at_once)
{
    pull_case("sources", 4, 4, ONE_WORKER, "PULL SOURCES OK: ");
}

Test(pull, a_node_reads_one_object_from_several_copies_at_once_over_tcp)
{
    pull_case("sources", 4, 4, ONE_WORKER_TCP, "PULL SOURCES OK: ");
}

Test(pull, a_ref_handed_on_by_a_task_outlives_its_owners_release)
{
    pull_case("borrow", 3, 3, ONE_WORKER, "PULL BORROW OK: ");
}

Test(pull, a_ref_handed_on_by_a_task_outlives_its_owners_release_over_tcp)
{
    pull_case("borrow", 3, 3, ONE_WORKER_TCP, "PULL BORROW OK: ");
}

/* Rank 1 dies after a copy of its object went to node 2 (--keep-going:
 * the job ends with the victim's status). */
static void owner_dies_case(const char *const *env)
{
    rh_run_t run = launch(3, 3, 1, "tests/multi/pull", "owner_dies", env);

    cr_expect_eq(run.status, 137, "status %d; output ends:\n%s", run.status,
                 rh_tail(run.out, 3000));
    cr_expect_eq(rh_count_lines(run.out, "PULL OWNER_DIES OK"), 1);
    rh_run_free(&run);
}

Test(pull, copies_of_a_dead_owners_object_leave_the_stores)
{
    owner_dies_case(ONE_WORKER);
}

Test(pull, copies_of_a_dead_owners_object_leave_the_stores_over_tcp)
{
    owner_dies_case(ONE_WORKER_TCP);
}

/* An object released while this node pulls it: the copy being written
 * stays until the pull's reads are over, then leaves (a stopped rank 1
 * holds the pull; over TCP a stopped process serves no read). */
Test(pull, a_copy_released_mid_pull_stays_until_its_reads_are_over)
{
    const char *env[] = { "UCX_TLS=tcp,self", "RAYHPC_PULL_CHUNK=4096",
                          "RAYHPC_FAILURE_TIMEOUT_MS=60000", NULL };
    rh_run_t run = launch(2, 2, 0, "tests/multi/pull_release", NULL, env);

    RH_EXPECT_EXIT0(run);
    cr_expect_eq(rh_count_lines(run.out, "PULL RELEASE OK"), 1, "%s",
                 rh_tail(run.out, 3000));
    rh_run_free(&run);
}

/* A rank dies in the middle of its read of rank 0's region: rank 0 serves
 * the read, hears of the death and ends with nothing of that read left in
 * UCX (UCX warns at finalize about a request never handed back). */
static void reader_dies_case(const char *tls)
{
    const char *env[] = { "RAYHPC_STORE_SIZE=64M", tls, NULL };
    rh_run_t run = launch(2, 2, 1, "tests/multi/reader_dies", NULL, env);

    cr_expect_eq(run.status, 137, "status %d; output ends:\n%s", run.status,
                 rh_tail(run.out, 3000));
    cr_expect_eq(rh_count_lines(run.out, "READER DIES OK"), 1, "%s",
                 rh_tail(run.out, 3000));
    cr_expect_eq(rh_count_lines(run.out, "UCX  WARN"), 0, "%s",
                 rh_tail(run.out, 3000));
    cr_expect_eq(rh_count_lines(run.out, "UCX  ERROR"), 0, "%s",
                 rh_tail(run.out, 3000));
    rh_run_free(&run);
}

Test(pull, a_reader_killed_mid_read_leaves_nothing_in_ucx)
{
    reader_dies_case(NULL);
}

Test(pull, a_reader_killed_mid_read_leaves_nothing_in_ucx_over_tcp)
{
    reader_dies_case("UCX_TLS=tcp,self");
}

/* Rank 0 finalizes while its large send to a stalled rank 1 is still
 * unanswered: closing fails the send, and its request, whose buffer UCX
 * lets the peer read, ends only in a later UCX round; rank 0 must wait for
 * it before the worker goes. */
Test(pull, a_large_send_cut_short_by_finalize_leaves_nothing_in_ucx)
{
    static const char *const env[] = { "RAYHPC_STORE_SIZE=64M",
                                       "RAYHPC_FINALIZE_TIMEOUT=2s", NULL };
    rh_run_t run = launch(2, 2, 1, "tests/multi/reader_dies", "stall", env);

    cr_expect_eq(rh_count_lines(run.out, "RANK STALLS OK"), 1, "%s",
                 rh_tail(run.out, 3000));
    cr_expect_eq(rh_count_lines(run.out, "UCX  WARN"), 0, "%s",
                 rh_tail(run.out, 3000));
    cr_expect_eq(rh_count_lines(run.out, "UCX  ERROR"), 0, "%s",
                 rh_tail(run.out, 3000));
    rh_run_free(&run);
}

/* Rank 0 lets objects go while ranks of two other nodes get them and hand
 * them to tasks of their own: each get and task reads the object or fails
 * saying it was released, and rank 0 ends with no future left. */
Test(release, releases_racing_pulls_and_borrows_read_or_fail_cleanly)
{
    /* the serving ranks wait for rank 0 however slow the machine is */
    static const char *const env[] = { "RAYHPC_NUM_WORKERS=1",
                                       "RAYHPC_FINALIZE_TIMEOUT=600s", NULL };
    rh_run_t run = expect_mode(3, 3, "tests/multi/release", "50", env,
                               "RELEASE RACE OK: ");

    rh_run_free(&run);
}

/* ---- where tasks are placed ----------------------------------------------------- */

static const char *const BUSY[] = { "RAYHPC_NUM_WORKERS=1",
                                    "RAYHPC_SPILLBACK_THRESHOLD=2", NULL };
static const char *const BUSY_TCP[] = { "RAYHPC_NUM_WORKERS=1",
                                        "RAYHPC_SPILLBACK_THRESHOLD=2",
                                        "UCX_TLS=tcp,self", NULL };
/* Placement groups: one rank a node, each offering 2 CPUs. */
static const char *const TWO_WORKERS[] = { "RAYHPC_NUM_WORKERS=2", NULL };
static const char *const TWO_WORKERS_TCP[] = { "RAYHPC_NUM_WORKERS=2",
                                               "UCX_TLS=tcp,self", NULL };

static void placement_case(const char *mode, int n, const char *const *env,
                           const char *ok)
{
    rh_run_t run = expect_mode(n, n, "tests/multi/placement", mode, env, ok);

    rh_run_free(&run);
}

Test(placement, spread_reaches_every_node)
{
    placement_case("spread", 4, ONE_WORKER, "PLACEMENT SPREAD OK: 40 tasks "
                   "over 4 nodes");
}

Test(placement, spread_reaches_every_node_over_tcp)
{
    placement_case("spread", 4, ONE_WORKER_TCP, "PLACEMENT SPREAD OK: 40 "
                   "tasks over 4 nodes");
}

Test(placement, default_tasks_of_a_busy_rank_spill_to_every_node)
{
    placement_case("busy", 4, BUSY, "PLACEMENT BUSY OK: 400 tasks");
}

Test(placement, default_tasks_of_a_busy_rank_spill_to_every_node_over_tcp)
{
    placement_case("busy", 4, BUSY_TCP, "PLACEMENT BUSY OK: 400 tasks");
}

Test(placement, custom_resource_of_one_node_draws_its_tasks_there)
{
    placement_case("resource", 4, ONE_WORKER, "PLACEMENT RESOURCE OK: ");
}

Test(placement, custom_resource_of_one_node_draws_its_tasks_there_over_tcp)
{
    placement_case("resource", 4, ONE_WORKER_TCP, "PLACEMENT RESOURCE OK: ");
}

static void infeasible_case(const char *const *env)
{
    rh_run_t run = expect_mode(3, 3, "tests/multi/placement", "infeasible",
                               env, "PLACEMENT INFEASIBLE OK: ");

    /* the program never prints the name itself */
    cr_expect_geq(rh_count_lines(run.out, "unobtainium"), 1,
                  "no warning names the missing resource");
    rh_run_free(&run);
}

Test(placement, task_that_fits_nowhere_waits_with_a_warning)
{
    infeasible_case(ONE_WORKER);
}

Test(placement, task_that_fits_nowhere_waits_with_a_warning_over_tcp)
{
    infeasible_case(ONE_WORKER_TCP);
}

Test(placement, affinity_to_a_missing_node_hard_is_refused_soft_runs)
{
    placement_case("affinity", 3, ONE_WORKER, "PLACEMENT AFFINITY OK: ");
}

Test(placement, affinity_to_a_missing_node_hard_is_refused_soft_runs_over_tcp)
{
    placement_case("affinity", 3, ONE_WORKER_TCP, "PLACEMENT AFFINITY OK: ");
}

static void pg_case(const char *const *env)
{
    rh_run_t run = expect_mode(4, 4, "tests/multi/placement", "pg", env,
                               "PLACEMENT PG OK: ");

    cr_expect_geq(count_lines_with_both(run.out, "placement group",
                                        "pending"), 1,
                  "no warning about the group that cannot be placed");
    rh_run_free(&run);
}

Test(placement, tasks_in_bundles_put_children_into_the_group_from_any_rank)
{
    placement_case("pg_nested", 4, TWO_WORKERS, "PLACEMENT PG NESTED OK: ");
}

Test(placement, the_scheduler_counts_the_cpus_of_each_ranks_pool)
{
    static const char *const none[] = { NULL };

    placement_case("offer", 4, none, "PLACEMENT OFFER OK: ");
}

Test(placement, tasks_in_bundles_wait_for_children_in_and_out_of_the_group)
{
    placement_case("pg_wait", 4, ONE_WORKER, "PLACEMENT PG WAIT OK: ");
}

Test(placement, tasks_in_bundles_put_children_into_the_group_over_tcp)
{
    placement_case("pg_nested", 4, TWO_WORKERS_TCP,
                   "PLACEMENT PG NESTED OK: ");
}

Test(placement, groups_pack_spread_wait_and_are_placed_once_freed)
{
    pg_case(TWO_WORKERS);
}

Test(placement, groups_pack_spread_wait_and_are_placed_once_freed_over_tcp)
{
    pg_case(TWO_WORKERS_TCP);
}

/* ---- the end of a job ------------------------------------------------------ */

/* The latest "AT t" of the lines containing needle (CLOCK_MONOTONIC
 * seconds printed by tests/multi/finalize), or -1. */
static double latest_time(const char *out, const char *needle)
{
    double latest = -1;

    for (const char *p = strstr(out, needle); p != NULL;
         p = strstr(p + 1, needle)) {
        const char *at = strstr(p, " AT ");
        double t;

        if (at != NULL && sscanf(at, " AT %lf", &t) == 1 && t > latest) {
            latest = t;
        }
    }
    return latest;
}

/* A thread of the user's still waiting in rh_get when another calls
 * rh_finalize: its wait ends with RH_ERR_SHUTDOWN saying why, before the
 * rank frees what it reads (it read freed memory). */
Test(finalize, a_get_waiting_on_another_thread_ends_with_shutdown)
{
    rh_run_t run = launch(2, 2, 0, "tests/multi/finalize", "waiter", NULL);

    cr_expect_eq(run.status, 0, "status %d; output ends:\n%s", run.status,
                 rh_tail(run.out, 3000));
    cr_expect_eq(rh_count_lines(run.out, "FINALIZE WAITER OK"), 1,
                 "output ends:\n%s", rh_tail(run.out, 3000));
    rh_run_free(&run);
}

/* 32 ranks as 8 nodes end right after nested tasks spread over them all.
 * Each run must end within a bound that only a stall reaches (finalize
 * once waited for its 60 s timeout, in about one run of five), and UCX
 * must not complain about requests or callbacks left behind.
 * RH_TEST_FINALIZE_RUNS sets the number of runs (20 for a soak). */
Test(finalize, ends_soon_after_nested_spread_tasks_and_leaves_nothing_in_ucx,
     .timeout = 0)
{
    static const char *const env[] = { "RAYHPC_NUM_WORKERS=1",
                                       "RAYHPC_PROGRESS=adaptive",
                                       "RAYHPC_STORE_SIZE=32M", NULL };
    const char *runs_env = getenv("RH_TEST_FINALIZE_RUNS");
    int runs = runs_env != NULL ? atoi(runs_env) : 5;

    for (int i = 0; i < runs; i++) {
        rh_run_t run = launch(32, 8, 0, "tests/multi/finalize", NULL, env);
        double work = latest_time(run.out, "FINALIZE WORK DONE");
        double end = latest_time(run.out, "FINALIZE RETURNED");
        int ok = run.status == 0 &&
                 rh_count_lines(run.out, "FINALIZE RETURNED") == 32 &&
                 rh_count_lines(run.out, ": success") == 32 &&
                 work > 0 && end - work < 20.0 &&
                 rh_count_lines(run.out, "UCX  WARN") == 0 &&
                 rh_count_lines(run.out, "UCX  ERROR") == 0;

        cr_expect(ok, "run %d of %d: status %d, %d ranks returned, the "
                  "last %.1f s after the work; output ends:\n%s", i + 1,
                  runs, run.status,
                  rh_count_lines(run.out, "FINALIZE RETURNED"), end - work,
                  rh_tail(run.out, 3000));
        rh_run_free(&run);
        if (!ok) {
            break;
        }
    }
}
