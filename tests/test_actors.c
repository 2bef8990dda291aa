/*
 * Actors: real ranks started by rayhpc-run (tests/multi/actors_core), over
 * shared memory and over TCP (UCX_TLS=tcp,self).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "spawn.h"

#define TIMEOUT 240

static const char *const TCP[] = { "UCX_TLS=tcp,self", NULL };

/* Runs actors_core's mode on n ranks over nodes virtual nodes and checks
 * that its OK line came oks times; a run that keeps going after a rank's
 * death exits with that death's status, the others exit 0. The caller
 * checks the rest and frees the run. */
static rh_run_t run_ok(int n, int nodes, int keep_going, const char *mode,
                       const char *const *env, const char *ok, int oks)
{
    rh_run_t run = rh_launch(n, nodes, keep_going, "tests/multi/actors_core",
                             mode, env, TIMEOUT);

    if (!keep_going) {
        RH_EXPECT_EXIT0(run);
    }
    RH_EXPECT_LINES(run, ok, oks);
    return run;
}

static void expect_ok(int n, int nodes, int keep_going, const char *mode,
                      const char *const *env, const char *ok, int oks)
{
    rh_run_t run = run_ok(n, nodes, keep_going, mode, env, ok, oks);

    rh_run_free(&run);
}

/* One rank: a counter gets 100 K pipelined increments and saw them in
 * order; an unknown method, a wrong argument count, an unknown class fail
 * at the call; a failing method fails its call only; a constructor that
 * fails makes every call fail with its message; a kill with 1,000 calls
 * queued fails them all with RH_ERR_ACTOR_DEAD; max_concurrency 4 runs 4
 * calls at once (each waits until all 4 are in); every actor dropped,
 * killed or finalized runs its destructor once, a detached one that
 * nobody holds at rh_finalize. */
Test(actors, local_calls_errors_kill_concurrency_and_destructors)
{
    rh_run_t run = run_ok(1, 1, 0, "local", NULL, "ACTORS LOCAL OK", 1);

    RH_EXPECT_LINES(run, "DESTROYED", 4);
    RH_EXPECT_LINES(run, "DESTROYED 99", 1);
    rh_run_free(&run);
}

/* Actors on another node: ordered remote calls, the errors, a handle
 * passed into a task on another node that calls the actor, calls whose
 * ref arguments are ready in reverse order run in call order, a named actor
 * found and a name taken twice refused, a failing constructor, a kill with
 * 1,000 calls queued behind an argument not yet there, max_concurrency 4;
 * every actor's destructor runs on its rank. */
Test(actors, remote_calls_handles_names_order_and_kill)
{
    rh_run_t run = run_ok(3, 3, 0, "remote", NULL, "ACTORS REMOTE OK", 1);

    RH_EXPECT_LINES(run, "DESTROYED", 5);
    rh_run_free(&run);
}

Test(actors, remote_the_same_over_tcp)
{
    expect_ok(4, 2, 0, "remote", TCP, "ACTORS REMOTE OK", 1);
}

/* 8 callers on 4 nodes call one named actor: each sees its own sequence
 * in order. */
Test(actors, eight_callers_on_four_nodes_each_in_order)
{
    rh_run_t run = run_ok(8, 4, 0, "callers", NULL,
                          "ACTORS CALLERS OK: 8 callers", 1);

    RH_EXPECT_LINES(run, " DONE", 8);
    rh_run_free(&run);
}

Test(actors, eight_callers_over_tcp)
{
    expect_ok(8, 4, 0, "callers", TCP, "ACTORS CALLERS OK: 8 callers", 1);
}

/* Every 7th send fails and goes again: calls overtake one another on the
 * wire, and each caller's still run in its order. */
static const char *const FAULTS[] = { "RAYHPC_FAULT_SENDS=7", NULL };

Test(actors, callers_in_order_when_sends_fail_and_go_again)
{
    expect_ok(8, 4, 0, "callers", FAULTS, "ACTORS CALLERS OK: 8 callers", 1);
}

/* An actor that asked for both CPUs of its rank keeps them while it
 * lives: a task needing one is still waiting after a second (it would
 * have run at once otherwise; a slow host can only make this pass, never
 * fail), and runs once the actor is dropped. */
static const char *const TWO_CPUS[] = { "RAYHPC_NUM_WORKERS=2", NULL };

Test(actors, an_actors_cpus_stay_reserved_while_it_lives)
{
    expect_ok(1, 1, 0, "keep", TWO_CPUS, "ACTORS KEEP OK", 1);
}

/* Two actors of one CPU each (no other resource) keep both CPUs of their
 * rank while they live (as above: a slow host can only make it pass). */
Test(actors, actors_of_one_cpu_each_keep_their_cpus_while_they_live)
{
    expect_ok(1, 1, 0, "keep1", TWO_CPUS, "ACTORS KEEP1 OK", 1);
}

/* The same for an actor placed on another node, whose one CPU it keeps:
 * the CPU is counted where the creation arrives. */
static const char *const ONE_CPU[] = { "RAYHPC_NUM_WORKERS=1", NULL };

Test(actors, an_actor_of_one_cpu_keeps_it_on_the_node_it_was_sent_to)
{
    expect_ok(2, 2, 0, "keep1remote", ONE_CPU, "ACTORS KEEP1 REMOTE OK", 1);
}

/* Actors of one CPU each on a rank of one CPU: one at a time, in the
 * order they were created (a slow host can only make it pass). */
Test(actors, actors_of_one_cpu_each_are_made_one_at_a_time_in_order)
{
    expect_ok(1, 1, 0, "queue", ONE_CPU, "ACTORS QUEUE OK", 1);
}

/* An actor that would wait on its creator's rank, whose CPU another actor
 * keeps, goes to the node whose CPU is free. */
Test(actors, an_actor_goes_where_a_cpu_is_free_not_where_actors_hold_them)
{
    expect_ok(2, 2, 0, "elsewhere", ONE_CPU, "ACTORS ELSEWHERE OK", 1);
}

/* An actor created in a placement-group bundle sits on the bundle's
 * node. */
Test(actors, an_actor_in_a_bundle_sits_on_the_bundles_node)
{
    expect_ok(3, 3, 0, "pg", NULL, "ACTORS PG OK", 1);
}

/* The actor's rank is SIGKILLed by its first call: the 100 calls
 * pipelined behind it fail with RH_ERR_ACTOR_DEAD, none hangs, and later
 * calls fail at the call. */
Test(actors, calls_fail_as_dead_when_the_actors_rank_dies)
{
    expect_ok(3, 3, 1, "rankdeath", NULL, "ACTORS RANKDEATH OK", 1);
}

Test(actors, rank_death_over_tcp)
{
    expect_ok(2, 2, 1, "rankdeath", TCP, "ACTORS RANKDEATH OK", 1);
}

/* The rank that created an actor dies: the actor ends with it (its
 * destructor runs on its own rank) and calls from a third rank fail with
 * RH_ERR_ACTOR_DEAD. */
/* These two run over the default transports: ranks of this host talk
 * through a ring per sender, which a rank SIGKILLed in the middle of a
 * send cannot stall for the others (docs/fault-tolerance.md). */
static const char *const dflt_env[] = { NULL };

Test(actors, an_actor_shares_its_owners_fate)
{
    rh_run_t run = run_ok(3, 3, 1, "ownerdeath", dflt_env,
                          "ACTORS OWNERDEATH OK", 1);

    RH_EXPECT_LINES(run, "DESTROYED 50", 1);
    rh_run_free(&run);
}

/* A detached actor outlives its owner: a rank that knew where it was and
 * one that finds it by name afterwards both call it, and a kill with no
 * owner left to route it ends it and frees its name. */
Test(actors, a_detached_actor_outlives_its_owner_and_dies_by_a_kill)
{
    expect_ok(4, 4, 1, "detachedorphan", dflt_env, "ACTORS DETACHEDORPHAN OK",
              1);
}

/* The owner of an actor with max_restarts and max_task_retries -1 dies
 * with 64 calls of a third rank in flight: its death is the end all the
 * same, and the calls its instance refused unrun fail instead of waiting
 * for a restart nobody makes (their gets timed out before the fix). */
Test(actors, calls_kept_for_a_resend_end_when_the_owner_dies)
{
    expect_ok(3, 3, 1, "ownerretry", dflt_env, "ACTORS OWNERFLIGHT OK", 1);
}

/* With one worker, 3,000 actors are killed as they are created, then
 * rh_finalize ends one whose creation task still waits for its
 * constructor (running another task meanwhile): the instance is freed,
 * and the creation task must not read it afterwards (ASan's
 * use-after-free before the fix). */
static const char *const ONE_WORKER[] = { "RAYHPC_NUM_WORKERS=1", NULL };

Test(actors, a_kill_during_creation_leaves_the_creator_nothing_freed)
{
    expect_ok(1, 1, 0, "killnew", ONE_WORKER, "ACTORS KILLNEW OK", 1);
}

/* Every rank of 2 creates an actor that fits no rank, queues a call to
 * it, asks whether it is ready, drops it and calls rh_finalize: the spilled
 * creation fails at rh_finalize and tells the actor table, which must
 * still be there. */
Test(actors, finalize_with_an_actor_that_fits_no_rank)
{
    expect_ok(2, 2, 0, "unplaced", NULL, "ACTORS UNPLACED OK", 2);
}
