/*
 * The GCS over real ranks started by rayhpc-run: shared memory and TCP,
 * three virtual nodes.
 */
#include <criterion/criterion.h>
#include <stdio.h>

#include "spawn.h"

#define TIMEOUT 240

static const char *const TCP[] = { "UCX_TLS=tcp,self", NULL };

static void expect_keys(rh_run_t *run, int n, const char *count)
{
    char line[64];

    snprintf(line, sizeof(line), "GCS KEYS OK %s", count);
    RH_EXPECT_EXIT0(*run);
    cr_expect_eq(rh_count_lines(run->out, line), n,
                 "not every rank read its keys back; output ends:\n%s",
                 rh_tail(run->out, 3000));
    cr_expect_eq(rh_count_lines(run->out, "GCS CROSS OK"), 1,
                 "rank 0 did not read the other ranks' keys");
    cr_expect_eq(rh_count_lines(run->out, "CAS WON"), 1,
                 "exactly one rank wins a compare-and-swap race");
}

Test(gcs, keys_100k_written_and_read_back_over_3_nodes_shm)
{
    rh_run_t run = rh_launch(3, 3, 0, "tests/multi/gcs_keys", "100000",
                             NULL, TIMEOUT);

    expect_keys(&run, 3, "33333");
    rh_run_free(&run);
}

Test(gcs, keys_100k_written_and_read_back_over_3_nodes_tcp)
{
    rh_run_t run = rh_launch(3, 3, 0, "tests/multi/gcs_keys", "100000",
                             TCP, TIMEOUT);

    expect_keys(&run, 3, "33333");
    rh_run_free(&run);
}

Test(gcs, chains_capped_by_ranks_on_one_node)
{
    rh_run_t run = rh_launch(2, 1, 0, "tests/multi/gcs_keys", "2000", NULL,
                             TIMEOUT);

    expect_keys(&run, 2, "1000");
    rh_run_free(&run);
}

Test(gcs, dump_at_finalize_shows_epoch_chains_and_tables)
{
    static const char *const dump[] = { "RAYHPC_GCS_DUMP=1",
                                        "RAYHPC_GCS_SHARDS=4", NULL };
    rh_run_t run = rh_launch(4, 2, 0, "tests/multi/gcs_keys", "4000", dump,
                             TIMEOUT);

    expect_keys(&run, 4, "1000");
    cr_expect_eq(rh_count_lines(run.out, "gcs epoch 1: 4 shards, chains of "
                                "3"), 1);
    cr_expect_eq(rh_count_lines(run.out, "chain:"), 4);
    cr_expect_eq(rh_count_lines(run.out, ": tail, lsn"), 4,
                 "each shard has one tail");
    rh_run_free(&run);
}

static void expect_pubsub(rh_run_t *run, int n, long m)
{
    char line[128];

    snprintf(line, sizeof(line), "PUBSUB OK key=%ld prefix=%ld table=%ld",
             n * m, n * m, 3 * n * m + n);
    RH_EXPECT_EXIT0(*run);
    cr_expect_eq(rh_count_lines(run->out, line), n,
                 "not every subscriber saw each update once, in order; "
                 "output ends:\n%s", rh_tail(run->out, 3000));
}

Test(gcs, subscribers_see_each_update_once_in_order_shm)
{
    rh_run_t run = rh_launch(3, 3, 0, "tests/multi/gcs_pubsub", "2000",
                             NULL, TIMEOUT);

    expect_pubsub(&run, 3, 2000);
    rh_run_free(&run);
}

Test(gcs, subscribers_see_each_update_once_in_order_tcp)
{
    rh_run_t run = rh_launch(4, 2, 0, "tests/multi/gcs_pubsub", "1000",
                             TCP, TIMEOUT);

    expect_pubsub(&run, 4, 1000);
    rh_run_free(&run);
}
