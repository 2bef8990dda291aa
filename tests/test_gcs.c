/*
 * The GCS over real ranks started by rayhpc-run: shared memory and TCP,
 * three virtual nodes.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

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
    cr_expect_eq(rh_count_lines(run->out, "GCS REUSE OK"), n,
                 "a write whose owner reused it once done ran did not "
                 "leave as asked; output ends:\n%s", rh_tail(run->out, 3000));
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

/* ---- a chain member dies mid-stream (fixed kill points) ---------------- */

/* 4 ranks on 4 nodes, the others going on when one dies. */
static rh_run_t launch4(const char *prog, const char *a1, const char *a2,
                        const char *a3, const char *const *env)
{
    const char *argv[] = { rh_build_path("rayhpc-run"), "-n", "4", "--nodes",
                           "4", "--keep-going", rh_build_path(prog), a1, a2,
                           a3, NULL };

    return rh_run(argv, env, TIMEOUT);
}

/* The run's ranks were SIGKILLed where it meant to (the launcher reports
 * it), and the survivors printed ok n times, or what went missing is said. */
static void expect_killed(rh_run_t *run, const char *ok, int n,
                          const char *missing)
{
    cr_expect_eq(run->status, 137, "the launcher reports no SIGKILL; "
                 "output ends:\n%s", rh_tail(run->out, 3000));
    cr_expect_eq(rh_count_lines(run->out, ok), n, "%s; output ends:\n%s",
                 missing, rh_tail(run->out, 3000));
}

static void expect_kill(const char *role, const char *const *env)
{
    char line[64];
    rh_run_t run = launch4("tests/multi/gcs_kill", role, "30000", "100000",
                           env);

    snprintf(line, sizeof(line), "GCS KILL OK %s: 100000 writes", role);
    expect_killed(&run, line, 1, "acknowledged writes lost or updates "
                  "missed");
    rh_run_free(&run);
}

/* A rank that stops answering is taken for dead within 1 s. */
static const char *const DEATH_1S[] = { "RAYHPC_FAILURE_TIMEOUT_MS=1000",
                                        NULL };
static const char *const KILL_ENV[] = { "RAYHPC_GCS_SHARDS=2",
                                        "RAYHPC_FAILURE_TIMEOUT_MS=1000",
                                        NULL };
static const char *const KILL_ENV_TCP[] = { "RAYHPC_GCS_SHARDS=2",
                                            "RAYHPC_FAILURE_TIMEOUT_MS=1000",
                                            "UCX_TLS=tcp,self", NULL };

Test(gcs_kill, head_dies_and_no_acknowledged_write_is_lost)
{
    expect_kill("head", KILL_ENV);
}

Test(gcs_kill, middle_dies_and_no_acknowledged_write_is_lost)
{
    expect_kill("middle", KILL_ENV);
}

Test(gcs_kill, tail_dies_and_no_acknowledged_write_is_lost)
{
    expect_kill("tail", KILL_ENV);
}

Test(gcs_kill, middle_dies_over_tcp)
{
    expect_kill("middle", KILL_ENV_TCP);
}

/* ---- a partition ----------------------------------------------------------- */

Test(gcs_partition, only_the_side_with_a_master_majority_writes)
{
    rh_run_t run = launch4("tests/multi/gcs_partition", NULL, NULL, NULL,
                           DEATH_1S);
    const char *recorded, *leaving;

    RH_EXPECT_EXIT0(run);
    cr_expect_eq(rh_count_lines(run.out, "MAJORITY WROTE 8"), 2,
                 "the majority side re-formed its chains and wrote; output "
                 "ends:\n%s", rh_tail(run.out, 3000));
    cr_expect_eq(rh_count_lines(run.out, "MINORITY WROTE 0"), 2,
                 "the minority side accepted writes");
    recorded = strstr(run.out, "DEATHS RECORDED");
    leaving = strstr(run.out, "MINORITY LEAVING");
    cr_expect(recorded != NULL && (leaving == NULL || recorded < leaving),
              "the majority took the silent side for dead while it lived");
    rh_run_free(&run);
}

/* ---- control state in the GCS ----------------------------------------------- */

/* A record's replicas (and more) are SIGKILLed among 4 ranks on 4 nodes;
 * the survivors print ok n times. */
static void expect_records_kept(const char *prog, const char *ok, int n,
                                const char *missing)
{
    rh_run_t run = launch4(prog, NULL, NULL, NULL, DEATH_1S);

    expect_killed(&run, ok, n, missing);
    rh_run_free(&run);
}

Test(gcs_nodes, node_records_and_a_group_record_read_back_after_a_replica_dies)
{
    expect_records_kept("tests/multi/gcs_nodes", "NODES OK", 1,
                        "node records or the group's record lost");
}

Test(gcs_actors, actor_records_read_back_after_an_actors_rank_an_owner_and_replicas_die)
{
    expect_records_kept("tests/multi/gcs_actors", "ACTOR RECORDS OK", 1,
                        "an actor's record lost or wrong");
}

Test(gcs_named, a_named_actor_is_found_after_a_replica_of_its_name_dies)
{
    expect_records_kept("tests/multi/gcs_named", "NAMED FOUND", 3,
                        "not every survivor finds the actor by name");
}

Test(gcs_records, the_job_and_a_spilled_object_read_back_after_a_replica_dies)
{
    char dir[] = "/tmp/rh-gcs-spill-XXXXXX", env_dir[64], cmd[96];
    const char *env[] = { "RAYHPC_FAILURE_TIMEOUT_MS=1000",
                          "RAYHPC_STORE_SIZE=32M", "RAYHPC_GCS_DUMP=1",
                          env_dir, NULL };
    rh_run_t run;

    cr_assert_not_null(mkdtemp(dir));
    snprintf(env_dir, sizeof(env_dir), "RAYHPC_SPILL_DIR=%s", dir);
    run = launch4("tests/multi/gcs_records", NULL, NULL, NULL, env);
    expect_killed(&run, "RECORDS OK", 1,
                  "the job's or the object's record lost or wrong");
    cr_expect_eq(rh_count_lines(run.out, "gcs job state finished written 2 "
                                "of 2"), 1, "the job's end was not "
                 "acknowledged at finalize; output ends:\n%s",
                 rh_tail(run.out, 3000));
    rh_run_free(&run);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

/* A spill's record written by one rank of a node and deleted by another:
 * whichever of the two the GCS gets first, a copy read back leaves no
 * record and a copy spilled again keeps its own. */
Test(gcs_records, spill_records_of_two_ranks_of_a_node_end_right_in_any_order)
{
    rh_run_t run = rh_launch(2, 1, 0, "tests/multi/gcs_spill_order", NULL,
                             NULL, TIMEOUT);

    RH_EXPECT_EXIT0(run);
    RH_EXPECT_LINES(run, "SPILL ORDER OK", 1);
    rh_run_free(&run);
}

/* The three original members of a chain die one after the other, and each
 * time the chain grows back to three with a live rank that takes the
 * shard's state: every acknowledged write reads back from the ranks that
 * joined, and each update reaches the subscriber once, in order. */
Test(gcs_grow, a_chain_grows_back_after_each_death_and_keeps_every_write)
{
    /* Deaths are seen at once (the transport); the timeout only keeps 6
     * ranks on a loaded host from being taken for dead. */
    static const char *const env[] = { "RAYHPC_FAILURE_TIMEOUT_MS=3000",
                                       "RAYHPC_GCS_DUMP=1", NULL };
    const char *argv[] = { rh_build_path("rayhpc-run"), "-n", "6", "--nodes",
                           "4", "--keep-going",
                           rh_build_path("tests/multi/gcs_grow"), "100000",
                           NULL };
    rh_run_t run = rh_run(argv, env, TIMEOUT);

    expect_killed(&run, "GCS GROW OK: 100000 writes", 1,
                  "a chain did not grow back, or writes or updates were "
                  "lost");
    RH_EXPECT_LINES(run, "killed rank", 3);
    rh_run_free(&run);
}

/* The tail of a chain dies while a rank joins it (the joiner held
 * joining), mid-stream: the new tail sends the joiner the whole state
 * again, and once the chain grew back every acknowledged write reads back
 * from the ranks that joined. */
Test(gcs_grow, a_tail_dies_mid_join_and_the_joiner_gets_the_whole_state)
{
    static const char *const env[] = { "RAYHPC_FAILURE_TIMEOUT_MS=3000",
                                       NULL };
    const char *argv[] = { rh_build_path("rayhpc-run"), "-n", "6", "--nodes",
                           "4", "--keep-going",
                           rh_build_path("tests/multi/gcs_grow"), "50000",
                           "midjoin", NULL };
    rh_run_t run = rh_run(argv, env, TIMEOUT);

    cr_expect_eq(run.status, 137, "the launcher reports the SIGKILLs; "
                 "output ends:\n%s", rh_tail(run.out, 3000));
    cr_expect_eq(rh_count_lines(run.out, "caught up again with shard"), 1,
                 "the joiner never took the state again; output ends:\n%s",
                 rh_tail(run.out, 3000));
    cr_expect_eq(rh_count_lines(run.out, "GCS MIDJOIN OK: 50000 writes"), 1,
                 "writes or updates lost after a death mid-join; output "
                 "ends:\n%s", rh_tail(run.out, 3000));
    rh_run_free(&run);
}

/* The leader, deaf to heartbeats for a while (as a starved progress thread
 * is), suspects every other rank, the two other masters among them; once
 * it hears them again the suspicion, never committed, is withdrawn, and a
 * later real death re-forms the chains with a quorum, keeping every
 * acknowledged write and the live masters. */
Test(gcs_suspect, a_suspect_heard_again_is_kept_and_a_later_death_reforms)
{
    rh_run_t run = launch4("tests/multi/gcs_suspect", "2000", NULL, NULL,
                           KILL_ENV);

    expect_killed(&run, "GCS SUSPECT OK: 4000 writes", 1,
                  "no quorum after the death, or writes lost");
    cr_expect_eq(rh_count_lines(run.out, "suspicion withdrawn"), 1,
                 "the suspicion stayed; output ends:\n%s",
                 rh_tail(run.out, 3000));
    rh_run_free(&run);
}

/* The leader alone stops hearing a live master (its host starves that
 * master's heartbeats to it only): the other master still hears it and
 * refuses to drop it, so no configuration drops it; a real death later
 * still re-forms the chains, with that master in them, and every
 * acknowledged write reads back. */
Test(gcs_suspect, a_master_the_others_hear_is_not_dropped_by_the_leader)
{
    const char *argv[] = { rh_build_path("rayhpc-run"), "-n", "4", "--nodes",
                           "4", "--keep-going",
                           rh_build_path("tests/multi/gcs_suspect"), "2000",
                           "one", NULL };
    rh_run_t run = rh_run(argv, KILL_ENV, TIMEOUT);

    cr_expect_eq(run.status, 137, "the launcher reports the SIGKILL; "
                 "output ends:\n%s", rh_tail(run.out, 3000));
    cr_expect_eq(rh_count_lines(run.out, "rank 2 refused to drop rank 1"), 1,
                 "rank 1 was dropped; output ends:\n%s",
                 rh_tail(run.out, 3000));
    cr_expect_eq(rh_count_lines(run.out, "GCS DEAF OK: 4000 writes"), 1,
                 "no quorum after the death, rank 1 dropped or writes lost; "
                 "output ends:\n%s", rh_tail(run.out, 3000));
    rh_run_free(&run);
}
