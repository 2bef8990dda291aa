/*
 * Ranks started by `srun --mpi=pmix` on a private Slurm that this test
 * starts on this host (tests/slurm/local-slurm.sh): munged, slurmctld and
 * slurmd in a temporary folder on unprivileged ports, stopped afterwards.
 * When RH_TEST_SLURM_DIR names a running cluster (tests/run-all.sh starts
 * one for the whole suite), the tests use it instead.
 *
 * Also the job scripts of slurm/ under `sbatch --wait`, scaled to this
 * host (one node, two ranks as two virtual nodes), the examples of
 * slurm/examples.tbl under sbatch and under mpirun, and the UCX settings of
 * slurm/ucx-*.env.
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
    char env[160], want[64];
    rh_run_t run;

    /* MPI started after rh_init needs PMIx still open (docs/
     * fault-tolerance.md: RAYHPC_PMIX_LEAVE). */
    snprintf(env, sizeof(env), "export RAYHPC_BOOTSTRAP=%s "
             "RAYHPC_NODE_ID=srun-$SLURM_PROCID%s;", bootstrap,
             strcmp(init, "rh") == 0 ? " RAYHPC_PMIX_LEAVE=end" : "");
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

/* ---- fault tolerance under srun (docs/fault-tolerance.md) ----------------- */

/* These need the suite's cluster (tests/run-all.sh starts it): each runs
 * a job of 8 ranks that loses some, which a private cluster per test
 * would make slower still. */
static void slurm_given(void)
{
    const char *given = getenv("RH_TEST_SLURM_DIR");

    if (given == NULL || given[0] == '\0') {
        cr_skip_test("RH_TEST_SLURM_DIR is unset: no shared test Slurm "
                     "cluster (tests/run-all.sh starts one)");
    }
    snprintf(slurm_dir, sizeof(slurm_dir), "%s", given);
}

/* tests/multi/ft_kill MODE as 8 ranks on 4 virtual nodes (two tasks of
 * the step each), with srun's extra flags and env (shell words). */
static rh_run_t srun_ft(const char *flags, const char *mode, const char *env)
{
    char cmd[2048];
    const char *argv[] = { "sh", "-c", cmd, NULL };

    snprintf(cmd, sizeof(cmd), ". '%s/env.sh' && srun --mpi=pmix %s -n 8 "
             "sh -c 'export RAYHPC_INLINE_MAX=1K RAYHPC_NODE_ID=srun-$(("
             "SLURM_PROCID / 2)) %s; exec \"$0\" \"$@\"' '%s' %s",
             slurm_dir, flags, env ? env : "",
             rh_build_path("tests/multi/ft_kill"), mode);
    return rh_run(argv, NULL, TIMEOUT);
}

/* As tests/test_ft.c expects under rayhpc-run: the driver's gets gave the
 * right values, the two victims died, the six others finalized; srun
 * reports the victims' signal (137). */
static void expect_survived(rh_run_t *run, const char *ok)
{
    cr_expect_eq(rh_count_lines(run->out, ok), 1, "no \"%s\"; output ends:"
                 "\n%s", ok, rh_tail(run->out, 4000));
    cr_expect_eq(rh_count_lines(run->out, "FT FAIL"), 0);
    cr_expect_eq(rh_count_lines(run->out, "FT VICTIM"), 2);
    cr_expect_eq(rh_count_lines(run->out, "FT DONE"), 6, "a survivor did "
                 "not finalize; output ends:\n%s", rh_tail(run->out, 4000));
    cr_expect_eq(rh_count_lines(run->out, "Segmentation fault"), 0);
    cr_expect_eq(rh_count_lines(run->out, "CANCELLED"), 0);
    cr_expect_eq(run->status, 137, "status %d; output ends:\n%s",
                 run->status, rh_tail(run->out, 4000));
}

TestSuite(srun_ft, .init = slurm_given);

#define KEEP_GOING "--no-kill --kill-on-bad-exit=0"

Test(srun_ft, map_reduce_survives_two_killed_ranks)
{
    rh_run_t run = srun_ft(KEEP_GOING, "mapreduce", NULL);

    expect_survived(&run, "FT MAPREDUCE OK sum 85408");
    rh_run_free(&run);
}

Test(srun_ft, nested_recursion_survives_two_killed_ranks)
{
    rh_run_t run = srun_ft(KEEP_GOING, "recursion", NULL);

    expect_survived(&run, "FT RECURSION OK value 63");
    rh_run_free(&run);
}

/* Both ranks of virtual node 3 die: its store's object is rebuilt. */
Test(srun_ft, object_lost_with_its_node_is_rebuilt_from_lineage)
{
    rh_run_t run = srun_ft(KEEP_GOING, "lost_node", NULL);

    cr_expect_eq(rh_count_lines(run.out, "FT LOST_NODE OK"), 1,
                 "output ends:\n%s", rh_tail(run.out, 4000));
    cr_expect_eq(rh_count_lines(run.out, "FT DONE"), 6);
    cr_expect_eq(run.status, 137, "status %d", run.status);
    rh_run_free(&run);
}

/* Slurm 22.05's own default (KillOnBadExit=0) keeps the step too. */
Test(srun_ft, map_reduce_survives_under_slurms_defaults)
{
    rh_run_t run = srun_ft("", "mapreduce", NULL);

    expect_survived(&run, "FT MAPREDUCE OK sum 85408");
    rh_run_free(&run);
}

/* Where the site sets KillOnBadExit=1 (here: the flag), Slurm ends the
 * step at the first death, says so, and srun returns: no hang. */
Test(srun_ft, kill_on_bad_exit_ends_the_step_with_a_message)
{
    rh_run_t run = srun_ft("--kill-on-bad-exit=1", "mapreduce", NULL);

    cr_expect_neq(run.status, 0);
    cr_expect_neq(run.status, 124, "srun hung");
    cr_expect_eq(rh_count_lines(run.out, "Terminating StepId="), 1,
                 "output ends:\n%s", rh_tail(run.out, 4000));
    cr_expect_eq(rh_count_lines(run.out, "CANCELLED AT"), 1);
    rh_run_free(&run);
}

/* The driver's death ends the job: the others see it and leave, each
 * rh_finalize saying the driver failed, and srun returns. */
Test(srun_ft, driver_death_ends_the_job)
{
    rh_run_t run = srun_ft(KEEP_GOING, "driver", NULL);

    cr_expect_eq(rh_count_lines(run.out, "FT DRIVER DIES"), 1,
                 "output ends:\n%s", rh_tail(run.out, 4000));
    cr_expect_eq(rh_count_lines(run.out, "FT DONE rank 0"), 0);
    cr_expect_eq(rh_count_lines(run.out, "FT DONE rank"), 7,
                 "a rank did not end by itself; output ends:\n%s",
                 rh_tail(run.out, 4000));
    cr_expect_eq(rh_count_lines(run.out, "peer rank failed"), 7);
    cr_expect_eq(rh_count_lines(run.out, "rank 0 failed before the job "
                                "ended"), 7);
    cr_expect_eq(rh_count_lines(run.out, "Segmentation fault"), 0);
    cr_expect_eq(run.status, 137, "status %d; output ends:\n%s",
                 run.status, rh_tail(run.out, 4000));
    rh_run_free(&run);
}

/* ---- slurm/: the job scripts, through sbatch ------------------------------- */

/* Runs cmd (a shell command line) with the test cluster's environment and
 * slurm/ in $S, in a fresh folder $D; prints every file of $D after it, so
 * that run.out holds the jobs' output too. run.status is cmd's. */
static rh_run_t in_slurm(const char *cmd, const char *const *env)
{
    char full[4096], dir[] = "/tmp/rayhpc-sbatch.XXXXXX";
    const char *argv[] = { "sh", "-c", full, NULL };
    rh_run_t run;

    cr_assert_not_null(mkdtemp(dir));
    snprintf(full, sizeof(full), ". '%s/env.sh' && S='%s' D='%s' && "
             "cd \"$D\" && { %s; }; st=$?; cat \"$D\"/* 2>/dev/null; "
             "rm -rf \"$D\"; exit $st", slurm_dir, rh_src_path("slurm"), dir,
             cmd);
    run = rh_run(argv, env, TIMEOUT);
    return run;
}

TestSuite(sbatch, .init = slurm_up, .fini = slurm_down);

/* On this host: 1 node, 2 ranks, each a virtual node of its own. */
#define SCALED "--wait --nodes=1 --ntasks-per-node=2 --output=\"$D/job.out\""

static const char *const VNODES[] = { "RH_VNODE_RANKS=1", NULL };

static void expect_two_hellos(rh_run_t *run)
{
    RH_EXPECT_EXIT0(*run);
    cr_expect_eq(rh_count_lines(run->out, "HELLO rank=0 size=2 node=0 "
                                "nodes=2"), 1, "output:\n%s",
                 rh_tail(run->out, 3000));
    cr_expect_eq(rh_count_lines(run->out, "HELLO rank=1 size=2 node=1 "
                                "nodes=2"), 1);
}

/* sbatch, scaled, of script with more sbatch options, running hello;
 * each of the 2 ranks gets half the node's CPUs (the job is exclusive). */
static void layout_runs_hello(const char *script, const char *options)
{
    char cmd[1024], share[64];
    const char *cpus;
    rh_run_t run;
    int n;

    snprintf(cmd, sizeof(cmd), "echo \"NODE CPUS $(sinfo -h -N -o %%c | "
             "head -n 1)\"; sbatch " SCALED " %s \"$S/%s\" '%s'", options,
             script, rh_build_path("tests/multi/hello"));
    run = in_slurm(cmd, VNODES);
    expect_two_hellos(&run);
    cpus = strstr(run.out, "NODE CPUS ");
    cr_assert_not_null(cpus);
    n = atoi(cpus + 10) / 2;
    snprintf(share, sizeof(share), "2 rank(s) on 1 node(s), %d CPU(s) each",
             n > 1 ? n : 1);
    cr_expect_eq(rh_count_lines(run.out, share), 1, "no '%s' in:\n%s", share,
                 rh_tail(run.out, 3000));
    rh_run_free(&run);
}

Test(sbatch, rank_per_node_runs_its_program)
{
    layout_runs_hello("rank-per-node.sbatch", "");
}

Test(sbatch, rank_per_socket_runs_its_program)
{
    layout_runs_hello("rank-per-socket.sbatch", "");
}

/* --cpus-per-task given to sbatch sets each rank's share of the node
 * (here 1 of its nproc CPUs, where the layout alone would give it all). */
Test(sbatch, cpus_per_task_option_sets_the_share)
{
    char cmd[1024];
    rh_run_t run;

    snprintf(cmd, sizeof(cmd), "sbatch " SCALED " --ntasks-per-node=1 "
             "--cpus-per-task=1 \"$S/rank-per-node.sbatch\" '%s'",
             rh_build_path("tests/multi/hello"));
    run = in_slurm(cmd, VNODES);
    RH_EXPECT_EXIT0(run);
    cr_expect_eq(rh_count_lines(run.out, "1 rank(s) on 1 node(s), 1 CPU(s) "
                                "each"), 1, "output:\n%s",
                 rh_tail(run.out, 3000));
    cr_expect_eq(rh_count_lines(run.out, "HELLO rank=0 size=1 "), 1);
    rh_run_free(&run);
}

/* The program and its arguments may come from RH_PROG and RH_ARGS. */
Test(sbatch, program_from_variables)
{
    char prog[1100];
    const char *env[] = { "RH_VNODE_RANKS=1", prog, "RH_ARGS=40 1000",
                          NULL };
    rh_run_t run;

    snprintf(prog, sizeof(prog), "RH_PROG=%s", rh_build_path("examples/pi"));
    run = in_slurm("sbatch " SCALED " \"$S/rank-per-node.sbatch\"", env);
    RH_EXPECT_EXIT0(run);
    cr_expect_eq(rh_count_lines(run.out, "pi ~ 3.1"), 1, "output:\n%s",
                 rh_tail(run.out, 3000));
    cr_expect_eq(rh_count_lines(run.out, "40 sample tasks"), 1);
    rh_run_free(&run);
}

/* A job script given no program fails, saying how to name one. */
Test(sbatch, no_program_fails_with_a_sentence)
{
    rh_run_t run = in_slurm("sbatch " SCALED " \"$S/rank-per-node.sbatch\"",
                            NULL);

    cr_expect_neq(run.status, 0);
    cr_expect_eq(rh_count_lines(run.out, "name the program: sbatch "
                                "rank-per-node.sbatch PROG"), 1,
                 "output:\n%s", rh_tail(run.out, 3000));
    rh_run_free(&run);
}

/* A rank that fails fails the job, and sbatch --wait says so. */
Test(sbatch, failing_program_fails_the_job)
{
    rh_run_t run = in_slurm("sbatch " SCALED " \"$S/rank-per-node.sbatch\" "
                            "/bin/false", NULL);

    cr_expect_neq(run.status, 0, "output:\n%s", rh_tail(run.out, 3000));
    rh_run_free(&run);
}

/* No GPU here: every line but the GPU request must be one sbatch accepts,
 * and the GPU request must be the only thing this cluster refuses; with no
 * GPU asked for, the script runs. */
Test(sbatch, rank_per_gpu_is_valid_and_runs_without_gpus)
{
    rh_run_t run = in_slurm("bash -n \"$S/rank-per-gpu.sbatch\" && "
                            "grep -q '^#SBATCH --gpus-per-task=1$' "
                            "\"$S/rank-per-gpu.sbatch\" && "
                            "sbatch --test-only --nodes=1 "
                            "--ntasks-per-node=2 --gpus-per-task=0 "
                            "\"$S/rank-per-gpu.sbatch\" /bin/true", NULL);

    RH_EXPECT_EXIT0(run);
    rh_run_free(&run);

    run = in_slurm("sbatch --test-only --nodes=1 --ntasks-per-node=2 "
                   "\"$S/rank-per-gpu.sbatch\" /bin/true", NULL);
    cr_expect_neq(run.status, 0);
    cr_expect_eq(rh_count_lines(run.out, "generic resource"), 1,
                 "not refused for its GPUs:\n%s", rh_tail(run.out, 3000));
    rh_run_free(&run);

    layout_runs_hello("rank-per-gpu.sbatch", "--gpus-per-task=0");
}

/* ---- the examples of slurm/examples.tbl, under sbatch and mpirun ----------- */

typedef struct example {
    char name[64], layout[64], args[256], expect[256];
} example_t;

static void trim_copy(char *dst, size_t cap, const char *src, size_t len)
{
    while (len > 0 && (*src == ' ' || *src == '\t')) {
        src++;
        len--;
    }
    while (len > 0 && (src[len - 1] == ' ' || src[len - 1] == '\t' ||
                       src[len - 1] == '\n')) {
        len--;
    }
    cr_assert_lt(len, cap, "field too long in slurm/examples.tbl");
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* The table's examples; asserts it has at least one and that every line
 * has its four fields. */
static int read_examples(example_t *ex, int cap)
{
    FILE *f = fopen(rh_src_path("slurm/examples.tbl"), "r");
    char line[1024];
    int n = 0;

    cr_assert_not_null(f, "cannot open slurm/examples.tbl");
    while (fgets(line, sizeof(line), f) != NULL) {
        char *field[5] = { line };
        int k = 1;

        if (line[0] == '#' || line[strspn(line, " \t\n")] == '\0') {
            continue;
        }
        for (char *c = line; *c && k < 5; c++) {
            if (*c == '|') {
                field[k++] = c + 1;
            }
        }
        cr_assert_eq(k, 4, "slurm/examples.tbl: not 4 fields: %s", line);
        cr_assert_lt(n, cap);
        field[4] = line + strlen(line) + 1;
        trim_copy(ex[n].name, sizeof(ex[n].name), field[0],
                  (size_t)(field[1] - field[0] - 1));
        trim_copy(ex[n].layout, sizeof(ex[n].layout), field[1],
                  (size_t)(field[2] - field[1] - 1));
        trim_copy(ex[n].args, sizeof(ex[n].args), field[2],
                  (size_t)(field[3] - field[2] - 1));
        trim_copy(ex[n].expect, sizeof(ex[n].expect), field[3],
                  strlen(field[3]));
        cr_assert_neq(ex[n].expect[0], '\0', "%s: no result line", ex[n].name);
        n++;
    }
    fclose(f);
    cr_assert_gt(n, 0, "slurm/examples.tbl lists no example");
    return n;
}

/* Every example through submit-example.sh --wait, which checks the result
 * line itself; the test checks the job's status and output as well. */
Test(sbatch, every_example_of_the_table)
{
    example_t ex[32];
    int n = read_examples(ex, 32);
    char dirvar[1100];
    const char *env[] = { "RH_VNODE_RANKS=1", dirvar, NULL };

    snprintf(dirvar, sizeof(dirvar), "RH_EXAMPLES_DIR=%s",
             rh_build_path("examples"));
    for (int i = 0; i < n; i++) {
        char cmd[1024], ok[128];
        rh_run_t run;

        snprintf(cmd, sizeof(cmd), "\"$S/submit-example.sh\" %.63s " SCALED,
                 ex[i].name);
        run = in_slurm(cmd, env);
        cr_expect_eq(run.status, 0, "example %s: status %d; output ends:\n%s",
                     ex[i].name, run.status, rh_tail(run.out, 3000));
        snprintf(ok, sizeof(ok), "example %.63s: job ", ex[i].name);
        cr_expect_eq(rh_count_lines(run.out, ok), 1, "%s", ok);
        cr_expect_geq(rh_count_lines(run.out, ex[i].expect), 1,
                      "example %s: no '%s' in its output", ex[i].name,
                      ex[i].expect);
        rh_run_free(&run);
    }
}

/* A name the table lacks is refused with the list of names. */
Test(sbatch, unknown_example_is_refused)
{
    rh_run_t run = in_slurm("\"$S/submit-example.sh\" no_such_example", NULL);

    cr_expect_eq(run.status, 2);
    cr_expect_eq(rh_count_lines(run.out, "no example 'no_such_example'"), 1);
    cr_expect_eq(rh_count_lines(run.out, "  pi"), 1);
    rh_run_free(&run);
}

/* The same programs under mpirun -n 4: 4 ranks on 2 virtual nodes. */
Test(mpirun_examples, every_example_of_the_table)
{
    example_t ex[32];
    int n = read_examples(ex, 32);

    for (int i = 0; i < n; i++) {
        char cmd[2048];
        const char *argv[] = { "sh", "-c", cmd, NULL };
        rh_run_t run;

        snprintf(cmd, sizeof(cmd), "mpirun --allow-run-as-root "
                 "--oversubscribe -n 4 sh -c 'RAYHPC_NODE_ID=mpi-"
                 "$((OMPI_COMM_WORLD_RANK / 2)) exec \"$0\" \"$@\"' "
                 "'%s/%.63s' %.255s", rh_build_path("examples"), ex[i].name,
                 ex[i].args);
        run = rh_run(argv, NULL, TIMEOUT);
        cr_expect_eq(run.status, 0, "example %s: status %d; output ends:\n%s",
                     ex[i].name, run.status, rh_tail(run.out, 3000));
        cr_expect_geq(rh_count_lines(run.out, ex[i].expect), 1,
                      "example %s: no '%s' in its output", ex[i].name,
                      ex[i].expect);
        rh_run_free(&run);
    }
}

/* ---- slurm/ucx-*.env: UCX settings that UCX takes ------------------------- */

/* Every setting the file exports is one UCX knows, read back with the
 * file's value, and a UCX context starts with them (with this host's
 * transports: it has no InfiniBand) without an error. */
static void ucx_env_is_valid(const char *file)
{
    char cmd[2048];
    const char *argv[] = { "sh", "-c", cmd, NULL };
    rh_run_t run;

    snprintf(cmd, sizeof(cmd),
             "f='%s' && . \"$f\" && conf=$(ucx_info -c) && "
             "n=$(grep -c '^export UCX_' \"$f\") && [ \"$n\" -ge 3 ] && "
             "for kv in $(sed -n 's/^export //p' \"$f\"); do "
             "  printf '%%s\\n' \"$conf\" | grep -qxF \"$kv\" || "
             "  { echo \"UCX does not take $kv\"; exit 1; }; done && "
             "out=$(UCX_TLS=sm,self UCX_NET_DEVICES=all ucx_info -e -u t "
             "2>&1) && if printf '%%s\\n' \"$out\" | grep ERROR; then "
             "exit 1; fi", rh_src_path(file));
    run = rh_run(argv, NULL, 60);
    RH_EXPECT_EXIT0(run);
    rh_run_free(&run);
}

Test(ucx_env, infiniband_settings_are_valid)
{
    ucx_env_is_valid("slurm/ucx-ib.env");
}

Test(ucx_env, roce_settings_are_valid)
{
    ucx_env_is_valid("slurm/ucx-roce.env");
}

/* ---- tests/slurm/local-slurm.sh ------------------------------------------- */

/* Two private clusters on one host (tests running at once) must not hand
 * out the same job ids: Open MPI names its shared-memory files after them,
 * and two MPI jobs with one id crashed each other. */
Test(local_slurm, two_clusters_number_their_jobs_apart)
{
    char cmd[2048];
    const char *argv[] = { "sh", "-c", cmd, NULL };
    rh_run_t run;
    unsigned long a = 0, b = 0;
    const char *p;

    snprintf(cmd, sizeof(cmd),
             "L='%s'; A=$(mktemp -d /tmp/rayhpc-slurm-a.XXXXXX); "
             "B=$(mktemp -d /tmp/rayhpc-slurm-b.XXXXXX); "
             "\"$L\" start \"$A\" >/dev/null && \"$L\" start \"$B\" >/dev/null && "
             "(. \"$A/env.sh\" && echo \"JOB A $(sbatch --parsable --wrap true)\") && "
             "(. \"$B/env.sh\" && echo \"JOB B $(sbatch --parsable --wrap true)\"); "
             "st=$?; \"$L\" stop \"$A\" --purge >/dev/null 2>&1; "
             "\"$L\" stop \"$B\" --purge >/dev/null 2>&1; exit $st",
             rh_src_path("tests/slurm/local-slurm.sh"));
    run = rh_run(argv, NULL, 180);
    RH_EXPECT_EXIT0(run);
    p = strstr(run.out, "JOB A ");
    cr_assert_not_null(p, "%s", rh_tail(run.out, 2000));
    a = strtoul(p + 6, NULL, 10);
    p = strstr(run.out, "JOB B ");
    cr_assert_not_null(p, "%s", rh_tail(run.out, 2000));
    b = strtoul(p + 6, NULL, 10);
    cr_expect(a > 0 && b > 0 && a != b, "both clusters gave job id %lu", a);
    rh_run_free(&run);
}
