/*
 * GPU placement across nodes (tests/multi/gpu_place.c): 3 ranks on 3
 * virtual nodes, only node 2 offering a GPU (and node 1 half of one in
 * the fractions' test). Runs on any host: real
 * devices are hidden from the job.
 */
#include <criterion/criterion.h>

#include "spawn.h"

static const char *const NO_DEVICES[] = { "CUDA_VISIBLE_DEVICES=", NULL };

static void gpu_place(const char *mode, const char *line)
{
    rh_run_t run = rh_launch(3, 3, 0, "tests/multi/gpu_place", mode,
                             NO_DEVICES, 180);

    RH_EXPECT_EXIT0(run);
    cr_expect_eq(rh_count_lines(run.out, line), 1, "no \"%s\" line; output "
                 "ends:\n%s", line, rh_tail(run.out, 3000));
    rh_run_free(&run);
}

Test(gpu_place, gpu_tasks_go_only_where_a_gpu_is_offered)
{
    gpu_place("tasks", "GPU_PLACE TASKS OK: ");
}

Test(gpu_place, a_bundle_reserves_a_gpu_on_the_node_that_has_it)
{
    gpu_place("pg", "GPU_PLACE PG OK: ");
}

Test(gpu_place, a_gpu_task_that_fits_nowhere_waits)
{
    gpu_place("nofit", "GPU_PLACE NOFIT OK: ");
}

Test(gpu_place, fractions_of_gpus_are_counted_across_nodes)
{
    gpu_place("frac", "GPU_PLACE FRAC OK: ");
}
