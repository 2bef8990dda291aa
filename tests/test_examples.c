/*
 * The examples, run as a user runs them: 4 ranks on 2 virtual nodes under
 * rayhpc-run, over shared memory and over TCP (UCX_TLS=tcp,self). Each
 * example checks its own result against a serial computation and prints
 * an OK line; these tests check that line and the exit status.
 * (tests/examples.sh builds the same programs against the installed
 * library.)
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "spawn.h"

#define TIMEOUT 240

static const char *const TCP[] = { "UCX_TLS=tcp,self", NULL };

/* rayhpc-run -n 4 --nodes 2 prog args... (at most 4 args) */
static rh_run_t run_example(const char *prog, const char *const *args,
                            const char *const *env)
{
    const char *argv[16];
    int k = 0;

    argv[k++] = rh_build_path("rayhpc-run");
    argv[k++] = "-n";
    argv[k++] = "4";
    argv[k++] = "--nodes";
    argv[k++] = "2";
    argv[k++] = rh_build_path(prog);
    for (int i = 0; args != NULL && args[i] != NULL && i < 4; i++) {
        argv[k++] = args[i];
    }
    argv[k] = NULL;
    return rh_run(argv, env, TIMEOUT);
}

static void expect_ok(const char *prog, const char *const *args,
                      const char *const *env, const char *line, int count)
{
    rh_run_t run = run_example(prog, args, env);

    RH_EXPECT_EXIT0(run);
    cr_expect_eq(rh_count_lines(run.out, line), count,
                 "%s: expected %d line(s) with \"%s\"; output ends:\n%s",
                 prog, count, line, rh_tail(run.out, 3000));
    rh_run_free(&run);
}

/* ---- each example's check passes, over shared memory and TCP ------------ */

static const char *const HEAT[] = { "128", "32", "12", "3", NULL };
static const char *const SWEEP[] = { "16", "16", "5000", "64", NULL };
static const char *const ARRAY[] = { "16", "1", "2", NULL };
static const char *const PI[] = { "64", "100000", NULL };
static const char *const EXCHANGE[] = { "200", "5", NULL };

Test(examples, heat2d_tiles_equal_the_serial_stencil)
{
    expect_ok("examples/heat2d", HEAT, NULL, "HEAT2D OK", 1);
}

Test(examples, heat2d_over_tcp)
{
    expect_ok("examples/heat2d", HEAT, TCP, "HEAT2D OK", 1);
}

/* Every edge from the other node pulled by RDMA instead of travelling
 * inside the task's message. */
Test(examples, heat2d_with_halos_pulled_between_nodes)
{
    static const char *const pull[] = { "RAYHPC_INLINE_MAX=0", NULL };

    expect_ok("examples/heat2d", HEAT, pull, "HEAT2D OK", 1);
}

/* The stencil's steps on GPUs (built with CUDA only): its tiles equal the
 * CPU's bit for bit where there is a GPU; where there is none it says so
 * in one line and succeeds, and so does this test. */
Test(examples, heat_gpu_tiles_equal_the_cpu_stencil_or_it_skips)
{
#ifdef HAVE_CUDA
    static const char *const args[] = { "128", "32", "4", NULL };
    rh_run_t run = run_example("examples/heat_gpu", args, NULL);
    int ok = rh_count_lines(run.out, "HEAT_GPU OK");
    int skipped = rh_count_lines(run.out, "heat_gpu: skipped: ");

    RH_EXPECT_EXIT0(run);
    cr_expect_eq(ok + skipped, 1, "expected HEAT_GPU OK or one skip line; "
                 "output ends:\n%s", rh_tail(run.out, 3000));
    if (skipped) {
        cr_log_info("heat_gpu skipped: no GPU here");
    }
    rh_run_free(&run);
#else
    cr_skip_test("built without CUDA: examples/heat_gpu is not built");
#endif
}

Test(examples, param_sweep_results_equal_the_serial_sweep)
{
    expect_ok("examples/param_sweep", SWEEP, NULL, "PARAM_SWEEP OK", 1);
}

Test(examples, param_sweep_over_tcp)
{
    expect_ok("examples/param_sweep", SWEEP, TCP, "PARAM_SWEEP OK", 1);
}

Test(examples, array_mapreduce_sums_equal_the_serial_sums)
{
    expect_ok("examples/array_mapreduce", ARRAY, NULL, "ARRAY_MAPREDUCE OK",
              1);
}

Test(examples, array_mapreduce_over_tcp)
{
    expect_ok("examples/array_mapreduce", ARRAY, TCP, "ARRAY_MAPREDUCE OK",
              1);
}

Test(examples, pi_map_reduce)
{
    expect_ok("examples/pi", PI, NULL, "PI OK", 1);
}

Test(examples, am_exchange_every_rank_checks_its_block)
{
    expect_ok("examples/am_exchange", EXCHANGE, NULL, "checksum ok", 4);
}

Test(examples, am_exchange_over_tcp)
{
    expect_ok("examples/am_exchange", EXCHANGE, TCP, "checksum ok", 4);
}

/* ---- what they print ---------------------------------------------------- */

/* Figures are of the steady state, in GiB/s, and say when 4 ranks share
 * fewer cores. */
Test(examples, am_exchange_reports_steady_state_bandwidth)
{
    rh_run_t run = run_example("examples/am_exchange", EXCHANGE, NULL);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    RH_EXPECT_EXIT0(run);
    cr_expect_eq(rh_count_lines(run.out, "after 100 warm-up laps"), 1,
                 "output:\n%s", rh_tail(run.out, 3000));
    cr_expect_eq(rh_count_lines(run.out, "rounds after 2 warm-up"), 4);
    cr_expect_eq(rh_count_lines(run.out, "GiB/s each way"), 4);
    cr_expect_eq(rh_count_lines(run.out, "ranks share this host's"),
                 cores < 4 ? 1 : 0);
    rh_run_free(&run);
}

/* Bad arguments: a sentence saying what is wrong, a failed status, and the
 * other ranks end cleanly. */
Test(examples, bad_arguments_are_explained)
{
    static const char *const bad_heat[] = { "100", "64", NULL };
    static const char *const bad_array[] = { "10", "3", NULL };
    static const char *const bad_sweep[] = { "4", "4", "-5", NULL };
    rh_run_t run = run_example("examples/heat2d", bad_heat, NULL);

    cr_expect_eq(run.status, 1, "status %d; output:\n%s", run.status,
                 rh_tail(run.out, 3000));
    cr_expect_eq(rh_count_lines(run.out, "N must be a multiple of TILE"), 1);
    rh_run_free(&run);
    run = run_example("examples/array_mapreduce", bad_array, NULL);
    cr_expect_eq(run.status, 1, "status %d; output:\n%s", run.status,
                 rh_tail(run.out, 3000));
    cr_expect_eq(rh_count_lines(run.out, "MIB must be a multiple"), 1);
    rh_run_free(&run);
    run = run_example("examples/param_sweep", bad_sweep, NULL);
    cr_expect_eq(run.status, 1, "status %d; output:\n%s", run.status,
                 rh_tail(run.out, 3000));
    cr_expect_eq(rh_count_lines(run.out, "argument 3, \"-5\", is not a "
                                "whole number from 1 to"), 1);
    rh_run_free(&run);
}
