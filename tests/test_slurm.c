/*
 * Ranks started by `srun --mpi=pmix` on a private Slurm that this test
 * starts on this host (tests/slurm/local-slurm.sh): munged, slurmctld and
 * slurmd in a temporary folder on unprivileged ports, stopped afterwards.
 * When RH_TEST_SLURM_DIR names a running cluster (tests/run-all.sh starts
 * one for the whole suite), the tests use it instead.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spawn.h"

#define TIMEOUT 240

static char slurm_dir[256];
static int we_started;

static void slurm_up(void)
{
    const char *given = getenv("RH_TEST_SLURM_DIR");
    const char *argv[] = { rh_src_path("tests/slurm/local-slurm.sh"), "start",
                           slurm_dir, NULL };
    rh_run_t run;

    if (given != NULL && given[0] != '\0') {
        snprintf(slurm_dir, sizeof(slurm_dir), "%s", given);
        return;
    }
    snprintf(slurm_dir, sizeof(slurm_dir), "/tmp/rayhpc-slurm-%d",
             (int)getpid());
    run = rh_run(argv, NULL, 120);
    cr_assert_eq(run.status, 0, "could not start the test Slurm cluster");
    rh_run_free(&run);
    we_started = 1;
}

static void slurm_down(void)
{
    const char *argv[] = { rh_src_path("tests/slurm/local-slurm.sh"), "stop",
                           slurm_dir, "--purge", NULL };
    rh_run_t run;

    if (!we_started) {
        return;
    }
    run = rh_run(argv, NULL, 60);
    rh_run_free(&run);
}

/* srun --mpi=pmix -n n prog [arg1 [arg2]] */
static rh_run_t srun(int n, const char *prog, const char *env,
                     const char *arg1, const char *arg2)
{
    char cmd[2048];
    const char *argv[] = { "sh", "-c", cmd, NULL };

    /* env is set inside each task, where $SLURM_PROCID has its value. */
    snprintf(cmd, sizeof(cmd), ". '%s/env.sh' && srun --mpi=pmix -n %d "
             "sh -c '%s exec \"$0\" \"$@\"' '%s' %s %s", slurm_dir, n,
             env ? env : "", rh_build_path(prog), arg1 ? arg1 : "",
             arg2 ? arg2 : "");
    return rh_run(argv, NULL, TIMEOUT);
}

TestSuite(srun, .init = slurm_up, .fini = slurm_down);

Test(srun, hello_4_ranks_over_pmix)
{
    rh_run_t run = srun(4, "tests/multi/hello", NULL, NULL, NULL);
    char line[64];

    RH_EXPECT_EXIT0(run);
    for (int r = 0; r < 4; r++) {
        snprintf(line, sizeof(line), "HELLO rank=%d size=4 ", r);
        cr_expect_eq(rh_count_lines(run.out, line), 1, "missing: %s", line);
    }
    rh_run_free(&run);
}

Test(srun, alltoall_4_ranks_byte_exact)
{
    rh_run_t run = srun(4, "tests/multi/alltoall", NULL, NULL, NULL);

    RH_EXPECT_EXIT0(run);
    cr_expect_eq(rh_count_lines(run.out, "ALLTOALL OK"), 4);
    cr_expect_eq(rh_count_lines(run.out, "sizes 0..16777216"), 4);
    rh_run_free(&run);
}

Test(srun, alltoall_over_tcp_on_2_virtual_nodes)
{
    rh_run_t run = srun(2, "tests/multi/alltoall",
                        "export UCX_TLS=tcp,self "
                        "RAYHPC_NODE_ID=srun-$SLURM_PROCID;", NULL, NULL);

    RH_EXPECT_EXIT0(run);
    cr_expect_eq(rh_count_lines(run.out, "(node 0 of 2)"), 1);
    cr_expect_eq(rh_count_lines(run.out, "(node 1 of 2)"), 1);
    rh_run_free(&run);
}

#ifdef HAVE_MPI
/* MPI and librayhpc in one process under srun (tests/multi/mpi_coexist):
 * rh_rank() is the MPI rank, in either init and finalize order. */
static void coexist_srun(const char *bootstrap, const char *init,
                         const char *fini)
{
    char env[128], want[64];
    rh_run_t run;

    snprintf(env, sizeof(env), "export RAYHPC_BOOTSTRAP=%s "
             "RAYHPC_NODE_ID=srun-$SLURM_PROCID;", bootstrap);
    run = srun(4, "tests/multi/mpi_coexist", env, init, fini);
    RH_EXPECT_EXIT0(run);
    for (int r = 0; r < 4; r++) {
        snprintf(want, sizeof(want), "RANKS AGREE rank=%d size=4 node=%d "
                 "nodes=4", r, r);
        cr_expect_eq(rh_count_lines(run.out, want), 1, "missing: %s", want);
    }
    cr_expect_eq(rh_count_lines(run.out, "COEXIST OK"), 4);
    rh_run_free(&run);
}

Test(srun, mpi_coexist_mpi_init_first_finalize_first)
{
    coexist_srun("pmix", "mpi", "mpi");
}

Test(srun, mpi_coexist_rh_init_first_finalize_first)
{
    coexist_srun("pmix", "rh", "rh");
}

Test(srun, mpi_coexist_rh_starts_mpi_program_finalizes_it)
{
    coexist_srun("mpi", "rh", "mpi");
}

Test(srun, mpi_coexist_rh_starts_mpi_and_finalizes_it)
{
    coexist_srun("mpi", "rh", "rh");
}
#endif
