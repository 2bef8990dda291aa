/*
 * The actor examples as a user runs them: four ranks on two virtual nodes
 * through rayhpc-run, over shared memory and over TCP (UCX_TLS=tcp,self).
 * Each example checks itself against a serial run of the same computation
 * and prints its OK line only when every value matches.
 */
#include <criterion/criterion.h>
#include <stdio.h>

#include "spawn.h"

#define TIMEOUT 300

static const char *const TCP[] = { "UCX_TLS=tcp,self", NULL };

/* rayhpc-run -n 4 --nodes 2 prog args... */
static rh_run_t run_example(const char *prog, const char *a1, const char *a2,
                            const char *a3, const char *const *env)
{
    const char *argv[] = { rh_build_path("rayhpc-run"), "-n", "4",
                           "--nodes", "2", rh_build_path(prog), a1, a2, a3,
                           NULL };

    return rh_run(argv, env, TIMEOUT);
}

static void expect_ok(rh_run_t *run, const char *line)
{
    RH_EXPECT_EXIT0(*run);
    cr_expect_eq(rh_count_lines(run->out, line), 1,
                 "no '%s' line; output ends:\n%s", line,
                 rh_tail(run->out, 3000));
}

/* 256 K parameters, 4 workers on 2 nodes, 10 steps. */
Test(param_server, equals_the_serial_run_over_shm)
{
    rh_run_t run = run_example("examples/param_server", "262144", "4", "10",
                               NULL);

    expect_ok(&run, "PARAM_SERVER OK");
    rh_run_free(&run);
}

Test(param_server, equals_the_serial_run_over_tcp)
{
    rh_run_t run = run_example("examples/param_server", "262144", "4", "10",
                               TCP);

    expect_ok(&run, "PARAM_SERVER OK");
    rh_run_free(&run);
}

/* More workers than ranks, several gradients of a step per node. */
Test(param_server, six_workers_on_two_nodes)
{
    rh_run_t run = run_example("examples/param_server", "65536", "6", "8",
                               NULL);

    expect_ok(&run, "PARAM_SERVER OK");
    rh_run_free(&run);
}

/* 8 rods, 40 rounds of 50 steps on 1024 cells. */
Test(sim_farm, equals_the_serial_run_over_shm)
{
    rh_run_t run = run_example("examples/sim_farm", "8", "40", "1024", NULL);

    expect_ok(&run, "SIM_FARM OK");
    cr_expect_eq(rh_count_lines(run.out, "on 2 of 2 nodes"), 1,
                 "the rods were not spread over both nodes:\n%s",
                 rh_tail(run.out, 2000));
    rh_run_free(&run);
}

Test(sim_farm, equals_the_serial_run_over_tcp)
{
    rh_run_t run = run_example("examples/sim_farm", "8", "40", "1024", TCP);

    expect_ok(&run, "SIM_FARM OK");
    rh_run_free(&run);
}
