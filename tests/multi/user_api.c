/*
 * What a program written from README.md and rayhpc.h meets: each mode
 * calls the public API as a user would, with the bad input a user passes
 * by mistake, and checks the status and the sentence the header promises.
 * Only the public header: these are the library's promises, not its
 * internals.
 *
 *   pg      tasks into placement groups that were never made fail in
 *           rh_remote with RH_ERR_INVALID_PARAM instead of waiting for
 *           ever (this rank's ids, another rank's id 0, a removed group);
 *           one into another rank's id that rank never made fails too:
 *           rh_remote refuses it, or the task's return fails, naming the
 *           group; rh_pg_wait of that id is RH_ERR_INVALID_PARAM; so does
 *           one into a group another rank removed before it was placed;
 *           a bundle that reserves nothing (no CPUs, and no
 *           resources or only amounts of 0) is refused, and so is one
 *           that names "CPU" in its resources (num_cpus is for that);
 *           messages name a group by its id in decimal; a task queued
 *           in a bundle behind a running one when its group is removed
 *           fails saying so (the running one finishes)
 *   pgdead  (3+ ranks) rank 1 dies once the others are up; once each
 *           survivor sees it dead, a task into group 7 of rank 1 (which
 *           no rank heard of) fails, saying its owner died, instead of
 *           waiting for an answer that never comes; so do rh_pg_wait of
 *           that id and a second rh_remote into it (RH_ERR_INVALID_PARAM)
 *   pgstop  (3+ ranks) rank 1 stops (SIGSTOP); rank 2 submits a task into
 *           group 9 of rank 1, whose ask then sits unanswered; rank 1 is
 *           killed: the task fails, saying the owner died
 *   pgboth  (4 ranks on 2 nodes) rank 2 drives: it makes a group of two
 *           STRICT_SPREAD bundles (one per node) and a group no node has
 *           room for, with a task held for it; then ranks 1 and 0 (the
 *           global scheduler) die. Once the survivors see both dead: the
 *           held task fails and rh_pg_wait of its group is
 *           RH_ERR_PEER_FAILED, both naming the dead global scheduler; a
 *           task into group 7 of rank 1 (which no rank heard of) and
 *           rh_pg_wait of it fail so too, as does a new rh_pg_create; the
 *           bundle on the living node still runs tasks, the one on the
 *           dead node fails them (RH_ERR_PEER_FAILED), on rank 2 and on
 *           rank 3, and rh_pg_remove says what it could not free
 *   args    a NULL function name or a NULL argument array is
 *           RH_ERR_INVALID_PARAM, with a sentence naming what is wrong; a
 *           name registered twice is RH_ERR_BUSY, a registration after
 *           rh_init RH_ERR_ALREADY_INITIALIZED; rh_put with ref NULL is
 *           RH_ERR_INVALID_PARAM naming rh_put; a return the task did not
 *           set is an empty object; rh_task_return_alloc with ptr NULL
 *           and rh_task_return of NULL bytes are RH_ERR_INVALID_PARAM, and
 *           so are rh_actor_call of a NULL method and rh_pg_bundle_node
 *           with node NULL, saying so
 *   restart rh_actor_kill(a, 0) of an actor with max_restarts, on this
 *           rank and on the last node: the calls made after the kill
 *           returned reach the restarted instance (its constructor ran
 *           again), and rh_actor_ready names a rank only once it is there;
 *           the same for a kill made by a task on another node
 *   holds   rh_actor_release once more than the rank's holds is
 *           RH_ERR_INVALID_REF, on the actor's rank and in a task on the
 *           last node that was handed the handle; the actor lives on; so
 *           is rh_release of another rank's object past this process's
 *           gets of it, in a task that takes it as its argument, which
 *           stays in place
 *   scale   on rank 0, what a program does at size: rh_wait and
 *           rh_get_many of 10,000 refs, every tenth one failed (the get
 *           fails and keeps no hold; the others all come); a chain of
 *           10,000 dependent tasks; a task of 256 ref arguments; an object
 *           handed down through 3 levels of nested tasks; rh_put of 0
 *           bytes (a ref to an empty object) and of more than any store
 *           holds (RH_ERR_TOO_LARGE)
 *   deep    a task of 3 returns nested 3 and 24 levels over the nodes, the
 *           last failing with a message and each above passing on the
 *           status of its get: each return at the top fails naming the
 *           root cause
 *   fanout  rank 0 holds the 1 MiB returns of USER_API_FANOUT (10,000)
 *           tasks, far more than the store, waits for them all, then
 *           gets them: spilled, each is read back whole
 *   threads 4 threads of rank 0 at once submit nested tasks of 3 returns
 *           (every 5th failing at the bottom), put, wait, get many and
 *           release: each gets what it should
 *   reinit  after rh_finalize, rh_init cannot join rayhpc-run's job again
 *           (RH_ERR_BOOTSTRAP saying so); with bootstrap "singleton" it
 *           starts a one-rank job, twice over
 *   named   (3+ ranks) rank 1 makes a detached named actor and one not
 *           detached on the last node and dies once the others found and
 *           called both: the detached one is still found and answers, the
 *           other ends (its name gone or its calls RH_ERR_ACTOR_DEAD)
 *   actors  a handle put in an object reaches the actor from a task on the
 *           last node; a method that fails, then one that succeeds; calls
 *           after a kill from another rank fail; max_restarts -1 restarts
 *           after every kill, 0 after none, -2 is refused; an actor that
 *           fits nowhere, killed before it was created, is dead at once
 *   res     tasks and actors whose resource string names amounts of 0
 *           ("GPU=0", "other=0" beside "lic=1") ask for nothing of them and
 *           run, here and on the last node; one that names "CPU" is
 *           RH_ERR_INVALID_PARAM from rh_remote and rh_actor_create,
 *           saying to use num_cpus
 *   badenv  rh_init with the RAYHPC_* setting USER_API_VAR names set to a
 *           bad value fails with RH_ERR_CONFIG naming it, on every rank
 *           (with USER_API_NO_ROOM: a RAYHPC_STORE_SIZE larger than the
 *           node's /dev/shm, RH_ERR_NO_MEMORY saying what it has free)
 *   refs    rh_wait and rh_get_many of refs given twice and of a failed
 *           one; rh_wait for k of an unsealed put, a remote task's return,
 *           a failed ref and a put, and with a timeout (not an error); a released ref passed to a task is RH_ERR_INVALID_REF
 *           from rh_remote, and nothing else; returns of 0 bytes, 39, 40
 *           and 41 bytes and RAYHPC_INLINE_MAX - 1, + 0 and + 1 from the
 *           last node, whole
 *
 * Prints "USER <MODE> OK" on rank 0 (in pgdead, pgstop and named, on each
 * rank that lives), or "USER FAIL ..." and exits 1.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rank_util.h"

static int fails;

static void expect(rh_status_t got, rh_status_t want, const char *what,
                   const char *needle)
{
    if (got != want) {
        printf("USER FAIL rank %d: %s gave %s (%s), not %s\n", rh_rank(), what,
               rh_status_string(got), got ? rh_last_error() : "",
               rh_status_string(want));
        fails++;
    } else if (needle != NULL && strstr(rh_last_error(), needle) == NULL) {
        printf("USER FAIL rank %d: %s: message \"%s\" does not say \"%s\"\n",
               rh_rank(), what, rh_last_error(), needle);
        fails++;
    }
}

static rh_status_t one(rh_task_ctx_t *ctx)
{
    int v = 1;

    return rh_task_return(ctx, 0, &v, sizeof(v));
}

/* A task into group pg, bundle 0: must be refused at once. A task that was
 * taken is looked at, not waited for. */
static void refused_group(rh_pg_t pg, const char *what)
{
    rh_task_params_t p = { 0 };
    rh_ref_t r;
    rh_status_t st;

    p = rank_in_group(pg, 0);
    st = rh_remote("one", NULL, 0, &p, &r);
    expect(st, RH_ERR_INVALID_PARAM, what, "placement group");
    if (st == RH_OK) {
        rh_release(r);
    }
}

/* A task into a group another rank never made: the caller learns it from
 * the group's owner, so rh_remote may take the task; then its return
 * fails, naming the group, and does not wait for ever. */
static void never_made_elsewhere(rh_pg_t pg, const char *what)
{
    rh_task_params_t p = { 0 };
    rh_ref_t r;
    const void *v;
    size_t len;
    rh_status_t st;

    p = rank_in_group(pg, 0);
    st = rh_remote("one", NULL, 0, &p, &r);
    if (st == RH_OK) {
        st = rh_get(r, &v, &len, 60000);
        expect(st, RH_ERR_TASK_FAILED, what, "never made");
        if (st == RH_OK) {
            rh_release(r);
        }
        rh_release(r);
    } else {
        expect(st, RH_ERR_INVALID_PARAM, what, "never made");
    }
}

/* Makes a group no node has room for, removes it while it waits and
 * returns its id: no rank but this one heard where it was placed. */
static rh_status_t gone_group(rh_task_ctx_t *ctx)
{
    rh_bundle_t b = { 1, "user_api_nowhere=1" };
    rh_pg_t pg;

    CHECK(rh_pg_create(&b, 1, RH_PG_PACK, &pg));
    CHECK(rh_pg_remove(pg));
    return rh_task_return(ctx, 0, &pg, sizeof(pg));
}

/* A task into a group another rank made and removed before it was
 * placed, which this rank never heard of. */
static void removed_elsewhere(void)
{
    rh_task_params_t tp = rank_on_node(rh_num_nodes() - 1, 0), p = { 0 };
    rh_ref_t r;
    const void *v;
    rh_status_t st;

    CHECK(rh_remote("gone_group", NULL, 0, &tp, &r));
    CHECK(rh_get(r, &v, NULL, 60000));
    p = rank_in_group(*(const rh_pg_t *)v, 0);
    rh_release(r);
    rh_release(r);
    if ((p.pg >> 32) == 0) {
        return;   /* the task ran here */
    }
    st = rh_remote("one", NULL, 0, &p, &r);
    if (st == RH_OK) {
        st = rh_get(r, &v, NULL, 60000);
        expect(st, RH_ERR_TASK_FAILED, "a task into a group another rank "
               "removed", "removed");
        if (st == RH_OK) {
            rh_release(r);
        }
        rh_release(r);
    } else {
        expect(st, RH_ERR_INVALID_PARAM, "a task into a group another rank "
               "removed", "removed");
    }
}

/* Holds its bundle's CPU until told to go: it says it started by making
 * "<arg>.started" and waits (without a get, which would lend the CPU) for
 * "<arg>.go". */
static rh_status_t gatekeeper(rh_task_ctx_t *ctx)
{
    const char *base = rh_task_arg(ctx, 0, NULL);
    char path[256];
    int fd, v = 1;

    snprintf(path, sizeof(path), "%s.started", base);
    fd = open(path, O_WRONLY | O_CREAT, 0600);
    if (fd >= 0) {
        close(fd);
    }
    snprintf(path, sizeof(path), "%s.go", base);
    while (access(path, F_OK) != 0) {
        rank_nap();
    }
    return rh_task_return(ctx, 0, &v, sizeof(v));
}

/* A task queued in a bundle behind one that holds its CPU when the group
 * is removed never runs: its return fails saying so, instead of waiting
 * for ever; the running one finishes. (The removal reaches the bundle's
 * rank after rh_pg_remove returns: a task queued there may still run if
 * its bundle frees before that.) */
static void queued_in_removed_group(void)
{
    rh_bundle_t b = { 1, NULL };
    rh_task_params_t tp = { 0 };
    char base[128], path[160];
    rh_arg_t a;
    rh_ref_t running, queued;
    rh_pg_t pg;
    const void *p;
    rh_status_t st;
    int fd;

    snprintf(base, sizeof(base), "/tmp/rh-user-pgq-%d", (int)getpid());
    CHECK(rh_pg_create(&b, 1, RH_PG_PACK, &pg));
    CHECK(rh_pg_wait(pg, 30000));
    tp.field_mask = RH_TASK_PARAM_FIELD_STRATEGY;
    tp.strategy = RH_STRATEGY_PLACEMENT_GROUP;
    tp.pg = pg;
    tp.bundle = 0;
    a = rh_arg_bytes(base, strlen(base) + 1);
    CHECK(rh_remote("gatekeeper", &a, 1, &tp, &running));
    snprintf(path, sizeof(path), "%s.started", base);
    while (access(path, F_OK) != 0) {
        rank_nap();
    }
    CHECK(rh_remote("one", NULL, 0, &tp, &queued));
    CHECK(rh_pg_remove(pg));
    /* The removal reaches the bundle's rank while the first task still
     * holds its CPU (it runs until told to go, after this). */
    st = rh_get(queued, &p, NULL, 60000);
    expect(st, RH_ERR_TASK_FAILED, "a task queued in a group as it was "
           "removed", "placement group was removed");
    if (st == RH_OK) {
        rh_release(queued);
    }
    snprintf(path, sizeof(path), "%s.go", base);
    fd = open(path, O_WRONLY | O_CREAT, 0600);
    if (fd >= 0) {
        close(fd);
    }
    expect(rh_get(running, &p, NULL, 60000), RH_OK, "the task running in "
           "a group as it was removed", NULL);
    rh_release(running);
    rh_release(running);
    rh_release(queued);
    unlink(path);
    snprintf(path, sizeof(path), "%s.started", base);
    unlink(path);
}

static void mode_pg(void)
{
    int me = rh_rank(), other = (me + 1) % rh_size();
    rh_bundle_t b = { 1, NULL };
    rh_pg_t pg;

    refused_group((uint64_t)me << 32 | 7, "a task into this rank's group 7, "
                  "never made");
    refused_group((uint64_t)other << 32, "a task into group 0 of rank "
                  "other, which no rank numbers");
    refused_group((uint64_t)rh_size() << 32 | 1, "a task into a group of a "
                  "rank past the job");
    expect(rh_pg_wait((uint64_t)me << 32 | 7, 0), RH_ERR_INVALID_PARAM,
           "rh_pg_wait of a group this rank never made", NULL);
    if (other != me) {
        never_made_elsewhere((uint64_t)other << 32 | 7, "a task into group 7 "
                             "of another rank, which it never made");
        never_made_elsewhere((uint64_t)other << 32 | 7, "a second task into "
                             "group 7 of another rank");
        expect(rh_pg_wait((uint64_t)other << 32 | 9, 60000),
               RH_ERR_INVALID_PARAM, "rh_pg_wait of a group another rank "
               "never made", "never made");
    }
    if (me == 0 && rh_num_nodes() > 1) {
        removed_elsewhere();
    }
    {
        static const char *const nothing[] = { NULL, "lic=0", "GPU=0",
                                               "memory=0", "a=0,b=0" };
        rh_bundle_t bad = { 0, NULL };
        char what[96];

        for (size_t i = 0; i < sizeof(nothing) / sizeof(nothing[0]); i++) {
            bad.resources = nothing[i];
            snprintf(what, sizeof(what), "a bundle {0, \"%s\"}, which "
                     "reserves nothing", nothing[i] ? nothing[i] : "NULL");
            expect(rh_pg_create(&bad, 1, RH_PG_PACK, &pg),
                   RH_ERR_INVALID_PARAM, what, "reserves nothing");
        }
        /* CPUs are num_cpus, as for tasks */
        for (int cpus = 0; cpus <= 1; cpus++) {
            bad = (rh_bundle_t){ cpus, "CPU=1" };
            snprintf(what, sizeof(what), "a bundle {%d, \"CPU=1\"}", cpus);
            expect(rh_pg_create(&bad, 1, RH_PG_PACK, &pg),
                   RH_ERR_INVALID_PARAM, what, "num_cpus");
        }
    }
    CHECK(rh_pg_create(&b, 1, RH_PG_PACK, &pg));
    CHECK(rh_pg_wait(pg, 30000));
    {
        /* an id is named as the number it is, in decimal */
        rh_pg_t never = (uint64_t)me << 32 | 999999;
        char dec[32];
        int node;

        snprintf(dec, sizeof(dec), "%llu", (unsigned long long)never);
        expect(rh_pg_wait(never, 0), RH_ERR_INVALID_PARAM, "rh_pg_wait of "
               "group 999999 of this rank, never made", dec);
        snprintf(dec, sizeof(dec), "placement group %llu ",
                 (unsigned long long)pg);
        expect(rh_pg_bundle_node(pg, 3, &node), RH_ERR_INVALID_PARAM,
               "rh_pg_bundle_node of bundle 3 of a group of one", dec);
    }
    CHECK(rh_pg_remove(pg));
    refused_group(pg, "a task into a removed group");
    if (me == 0) {
        queued_in_removed_group();
    }
}

/* Files beside the job for the steps of pgdead and pgstop that no message
 * can carry (a stopped rank reads none): "<base>up<rank>", "<base>stopped",
 * "<base>go". */
static char dead_base[128];

static void dead_path(char *buf, size_t len, const char *what, int rank)
{
    if (rank >= 0) {
        snprintf(buf, len, "%s%s%d", dead_base, what, rank);
    } else {
        snprintf(buf, len, "%s%s", dead_base, what);
    }
}

static void dead_touch(const char *what, int rank)
{
    char path[192];
    int fd;

    dead_path(path, sizeof(path), what, rank);
    fd = open(path, O_WRONLY | O_CREAT, 0600);
    if (fd < 0) {
        printf("USER FAIL rank %d: cannot make %s\n", rh_rank(), path);
        fails++;
        return;
    }
    close(fd);
}

static void dead_unlink(const char *what, int rank)
{
    char path[192];

    dead_path(path, sizeof(path), what, rank);
    (void)unlink(path);
}

/* Waits (at most 120 s: a test fails, it does not hang) for a file. */
static int dead_await(const char *what, int rank)
{
    char path[192];
    double end = rank_now() + 120;

    dead_path(path, sizeof(path), what, rank);
    while (access(path, F_OK) != 0) {
        if (rank_now() > end) {
            printf("USER FAIL rank %d: %s never came\n", rh_rank(), path);
            fails++;
            return -1;
        }
        rank_nap();
    }
    return 0;
}

static int dead_setup(void)
{
    const char *job = getenv("RAYHPC_LOCAL_JOBID");

    if (rh_size() < 3 || job == NULL) {
        printf("USER FAIL this mode needs 3 ranks or more, started by "
               "rayhpc-run\n");
        fails++;
        return -1;
    }
    snprintf(dead_base, sizeof(dead_base), "/tmp/rayhpc-user-%s-", job);
    return 0;
}

/* Waits until this rank sees rank dead (at most 120 s). */
static void seen_dead(int rank)
{
    double end = rank_now() + 120;

    while (rh_rank_alive(rank)) {
        if (rank_now() > end) {
            printf("USER FAIL rank %d: rank %d still lives\n", rh_rank(),
                   rank);
            fails++;
            return;
        }
        rank_nap();
    }
}

/* A task into group pg, whose owner died: its return fails (or rh_remote
 * refuses it), saying so, rather than waiting for ever; then rh_pg_wait
 * and rh_remote refuse the id with the same reason. */
static void owner_died(rh_pg_t pg, const char *what)
{
    rh_task_params_t p = { 0 };
    rh_ref_t r;
    const void *v;
    char more[160];
    rh_status_t st;

    p = rank_in_group(pg, 0);
    st = rh_remote("one", NULL, 0, &p, &r);
    if (st == RH_OK) {
        st = rh_get(r, &v, NULL, 60000);
        expect(st, RH_ERR_TASK_FAILED, what, "died");
        if (st == RH_OK) {
            rh_release(r);
        }
        rh_release(r);
    } else {
        expect(st, RH_ERR_INVALID_PARAM, what, "died");
    }
    snprintf(more, sizeof(more), "rh_pg_wait after %s", what);
    expect(rh_pg_wait(pg, 60000), RH_ERR_INVALID_PARAM, more, "died");
    snprintf(more, sizeof(more), "rh_remote again after %s", what);
    st = rh_remote("one", NULL, 0, &p, &r);
    expect(st, RH_ERR_INVALID_PARAM, more, "died");
    if (st == RH_OK) {
        rh_release(r);
    }
}

static void mode_pgdead(void)
{
    int me = rh_rank();

    if (dead_setup() != 0) {
        return;
    }
    if (me == 1) {
        /* Dies once every other rank is past rh_init. */
        for (int r = 0; r < rh_size(); r++) {
            if (r != 1 && dead_await("up", r) != 0) {
                exit(1);
            }
        }
        raise(SIGKILL);
    }
    dead_touch("up", me);
    seen_dead(1);
    /* Rank 1 read them all before it died; rank 0 clears them all, also
     * those of a rank that failed since. */
    for (int r = 0; r < rh_size(); r++) {
        if (r == me || me == 0) {
            dead_unlink("up", r);
        }
    }
    owner_died((uint64_t)1 << 32 | 7, "a task into group 7 of rank 1, "
               "which died");
}

/* Rank 1's helper process: once rank 1 stops, says so; once rank 2 says go
 * (or after 120 s), kills rank 1. System calls only: it was forked from
 * a process with threads. */
static void stop_helper(pid_t victim, const char *stat, const char *stopped,
                        const char *go)
{
    struct timespec nap = { 0, 1000000 };
    int told = 0;

    for (long i = 0; i < 120000; i++) {
        if (!told) {
            char buf[256];
            int fd = open(stat, O_RDONLY);
            ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
            char *p;

            if (fd >= 0) {
                close(fd);
            }
            buf[n > 0 ? n : 0] = '\0';
            p = strrchr(buf, ')');
            if (p != NULL && p[1] == ' ' && p[2] == 'T') {
                fd = open(stopped, O_WRONLY | O_CREAT, 0600);
                if (fd >= 0) {
                    close(fd);
                }
                told = 1;
            }
        } else if (access(go, F_OK) == 0) {
            break;
        }
        nanosleep(&nap, NULL);
    }
    kill(victim, SIGKILL);
    _exit(0);
}

static void mode_pgstop(void)
{
    int me = rh_rank();

    if (dead_setup() != 0) {
        return;
    }
    if (me == 1) {
        char stat[64], stopped[192], go[192];
        pid_t self = getpid(), helper;

        snprintf(stat, sizeof(stat), "/proc/%ld/stat", (long)self);
        dead_path(stopped, sizeof(stopped), "stopped", -1);
        dead_path(go, sizeof(go), "go", -1);
        fflush(NULL);
        helper = fork();
        if (helper == 0) {
            stop_helper(self, stat, stopped, go);
        }
        if (helper < 0) {
            printf("USER FAIL rank 1: fork failed\n");
            exit(1);
        }
        raise(SIGSTOP);
        exit(1);   /* the helper kills this rank while it is stopped */
    }
    if (me == 2 && dead_await("stopped", -1) == 0) {
        rh_task_params_t p = { 0 };
        rh_pg_t pg = (uint64_t)1 << 32 | 9;
        rh_ref_t r;
        const void *v;
        rh_status_t st;

        /* Rank 1 lives but answers nothing: the ask about group 9 waits. */
        p = rank_in_group(pg, 0);
        CHECK(rh_remote("one", NULL, 0, &p, &r));
        dead_touch("go", -1);
        st = rh_get(r, &v, NULL, 60000);
        expect(st, RH_ERR_TASK_FAILED, "a task into group 9 of rank 1, "
               "which died while it was asked", "died");
        if (st == RH_OK) {
            rh_release(r);
        }
        rh_release(r);
        expect(rh_pg_wait(pg, 60000), RH_ERR_INVALID_PARAM, "rh_pg_wait of "
               "group 9 of rank 1, which died", "died");
    }
    seen_dead(1);
    if (me == 0 || me == 2) {
        /* Read by none once rank 1 is dead (its helper killed it after go,
         * or after its 120 s). */
        dead_unlink("stopped", -1);
        dead_unlink("go", -1);
    }
}

/* What fails for want of the global scheduler names it. */
#define GS_DIED "the global scheduler, rank 0, died"

/* A task into bundle of group pg, which cannot run now that the global
 * scheduler is dead: rh_remote refuses it with want_remote, or its return
 * fails with RH_ERR_TASK_FAILED, saying why, rather than waiting for
 * ever. */
static void gs_died_task(rh_pg_t pg, int bundle, rh_status_t want_remote,
                         const char *what)
{
    rh_task_params_t p = { 0 };
    rh_ref_t r;
    const void *v;
    rh_status_t st;

    p = rank_in_group(pg, bundle);
    st = rh_remote("one", NULL, 0, &p, &r);
    if (st == RH_OK) {
        st = rh_get(r, &v, NULL, 60000);
        expect(st, RH_ERR_TASK_FAILED, what, GS_DIED);
        if (st == RH_OK) {
            rh_release(r);
        }
        rh_release(r);
    } else {
        expect(st, want_remote, what, GS_DIED);
    }
}

/* A task into a bundle on a living node runs, and returns 1. */
static void live_bundle_task(const rh_task_params_t *p, const char *what)
{
    rh_ref_t r;
    const void *v;
    rh_status_t st = rh_remote("one", NULL, 0, p, &r);

    expect(st, RH_OK, what, NULL);
    if (st != RH_OK) {
        return;
    }
    st = rh_get(r, &v, NULL, 60000);
    expect(st, RH_OK, what, NULL);
    if (st == RH_OK) {
        if (*(const int *)v != 1) {
            printf("USER FAIL rank %d: %s returned %d\n", rh_rank(), what,
                   *(const int *)v);
            fails++;
        }
        rh_release(r);
    }
    rh_release(r);
}

/* rank 2 of pgboth: groups made while the global scheduler lives, looked
 * at once it is dead. */
static void pgboth_driver(void)
{
    rh_bundle_t two[2] = { { 1, NULL }, { 1, NULL } };
    rh_bundle_t nowhere = { 1, "user_api_nowhere=1" };
    rh_task_params_t p = { 0 };
    rh_pg_t spread, pending, pg;
    rh_ref_t held, r;
    const void *v;
    int node[2] = { -1, -1 }, live;
    rh_status_t st;

    CHECK(rh_pg_create(two, 2, RH_PG_STRICT_SPREAD, &spread));
    CHECK(rh_pg_create(&nowhere, 1, RH_PG_PACK, &pending));
    p = rank_in_group(pending, 0);
    CHECK(rh_remote("one", NULL, 0, &p, &held));
    CHECK(rh_pg_wait(spread, 60000));
    CHECK(rh_pg_bundle_node(spread, 0, &node[0]));
    CHECK(rh_pg_bundle_node(spread, 1, &node[1]));
    if (node[0] == node[1] || node[0] < 0 || node[1] < 0) {
        printf("USER FAIL rank 2: STRICT_SPREAD put its bundles on nodes %d "
               "and %d\n", node[0], node[1]);
        fails++;
        return;
    }
    live = node[0] == rh_node_id() ? 0 : 1;
    /* Rank 3 hears of the group too before the global scheduler dies. */
    dead_touch("placed", -1);
    if (dead_await("seen", 3) != 0) {
        return;
    }
    dead_touch("ready", -1);
    seen_dead(1);
    seen_dead(0);
    for (int k = 0; k < rh_size(); k++) {
        dead_unlink("up", k);
    }
    dead_unlink("placed", -1);
    dead_unlink("seen", 3);
    dead_unlink("ready", -1);

    st = rh_get(held, &v, NULL, 60000);
    expect(st, RH_ERR_TASK_FAILED, "a task held for a group pending when "
           "the global scheduler died", GS_DIED);
    if (st == RH_OK) {
        rh_release(held);
    }
    rh_release(held);
    expect(rh_pg_wait(pending, 60000), RH_ERR_PEER_FAILED, "rh_pg_wait of "
           "a group pending when the global scheduler died", GS_DIED);
    gs_died_task(pending, 0, RH_ERR_PEER_FAILED, "a task into a group "
                 "pending when the global scheduler died");

    /* The bundle on this node lives on: its tasks go straight to it. */
    p.pg = spread;
    p.bundle = live;
    live_bundle_task(&p, "a task into the bundle on a living node");
    gs_died_task(spread, 1 - live, RH_ERR_PEER_FAILED, "a task into the "
                 "bundle lost with node 0");
    expect(rh_pg_bundle_node(spread, 1 - live, &node[0]), RH_ERR_PEER_FAILED,
           "rh_pg_bundle_node of the bundle lost with node 0", GS_DIED);
    expect(rh_pg_wait(spread, 60000), RH_ERR_PEER_FAILED, "rh_pg_wait of a "
           "group with a bundle lost with node 0", GS_DIED);
    expect(rh_pg_create(two, 1, RH_PG_PACK, &pg), RH_ERR_PEER_FAILED,
           "rh_pg_create with the global scheduler dead", GS_DIED);
    expect(rh_pg_remove(spread), RH_ERR_PEER_FAILED, "rh_pg_remove with "
           "the global scheduler dead", GS_DIED);
    /* Rank 3 uses the group too: the bundle may be this rank's. */
    if (dead_await("done", 3) == 0) {
        dead_unlink("done", 3);
    }
    /* Removed here all the same: its tasks are refused. */
    st = rh_remote("one", NULL, 0, &p, &r);
    expect(st, RH_ERR_INVALID_PARAM, "a task into a group removed after the "
           "global scheduler died", "was removed");
    if (st == RH_OK) {
        rh_release(r);
    }
}

/* rank 3 of pgboth: the driver's group of two bundles, which this rank
 * was told of while the global scheduler lived, keeps running tasks in
 * the bundle on the living node once it is dead; the other is lost. */
static void pgboth_other(void)
{
    rh_pg_t spread = (uint64_t)2 << 32 | 1;   /* rank 2's first */
    rh_task_params_t p = { 0 };
    int node = -1, live = -1;
    rh_status_t st;

    if (dead_await("placed", -1) != 0) {
        return;
    }
    CHECK(rh_pg_wait(spread, 60000));
    dead_touch("seen", 3);
    seen_dead(1);
    seen_dead(0);
    for (int b = 0; b < 2; b++) {
        st = rh_pg_bundle_node(spread, b, &node);
        if (st == RH_OK && node == rh_node_id()) {
            live = b;
        } else {
            expect(st, RH_ERR_PEER_FAILED, "rh_pg_bundle_node of the bundle "
                   "of rank 2's group lost with node 0", GS_DIED);
        }
    }
    if (live < 0) {
        printf("USER FAIL rank 3: no bundle of rank 2's group on node %d\n",
               rh_node_id());
        fails++;
        return;
    }
    p = rank_in_group(spread, live);
    live_bundle_task(&p, "a task into rank 2's bundle on a living node");
    gs_died_task(spread, 1 - live, RH_ERR_PEER_FAILED, "a task into rank "
                 "2's bundle lost with node 0");
    dead_touch("done", 3);   /* rank 2, which may hold the bundle, may go */
}

static void mode_pgboth(void)
{
    int me = rh_rank();
    rh_pg_t pg = (uint64_t)1 << 32 | 7;

    if (dead_setup() != 0) {
        return;
    }
    if (rh_size() != 4 || rh_num_nodes() != 2) {
        printf("USER FAIL pgboth needs 4 ranks on 2 nodes\n");
        fails++;
        return;
    }
    dead_touch("up", me);
    if (me <= 1) {
        /* Both die once the driver's groups are placed (or pending). */
        if (dead_await("ready", -1) != 0) {
            exit(1);
        }
        raise(SIGKILL);
    }
    if (me == 2) {
        pgboth_driver();
    } else {
        pgboth_other();
    }
    /* No rank heard of group 7 of rank 1: neither its owner nor the
     * global scheduler is there to say what became of it. */
    gs_died_task(pg, 0, RH_ERR_PEER_FAILED, "a task into group 7 of rank 1, "
                 "with rank 1 and rank 0 dead");
    expect(rh_pg_wait(pg, 60000), RH_ERR_PEER_FAILED, "rh_pg_wait of group "
           "7 of rank 1, with rank 1 and rank 0 dead", GS_DIED);
    gs_died_task(pg, 0, RH_ERR_PEER_FAILED, "a second task into group 7 of "
                 "rank 1");
}

static rh_status_t counter_init(rh_task_ctx_t *ctx, void **state)
{
    *state = calloc(1, sizeof(int64_t));
    return *state ? RH_OK : rh_task_fail(ctx, "out of memory");
}

static rh_status_t counter_add(void *state, rh_task_ctx_t *ctx)
{
    int64_t *n = state;

    *n += 1;
    return rh_task_return(ctx, 0, n, sizeof(*n));
}

/* Fails when its argument is negative; else returns the count as add
 * left it. */
static rh_status_t counter_check(void *state, rh_task_ctx_t *ctx)
{
    int64_t d = *(const int64_t *)rh_task_arg(ctx, 0, NULL);

    if (d < 0) {
        return rh_task_fail(ctx, "check of %ld refused", (long)d);
    }
    return rh_task_return(ctx, 0, state, sizeof(int64_t));
}

static const rh_method_def_t counter_methods[] = {
    { "add", counter_add, 0, 1 },
    { "check", counter_check, 1, 1 }
};

/* One call of add: its value, or -1 with the failure said. */
static int64_t add(rh_actor_t a, const char *what)
{
    rh_ref_t r;
    const void *p;
    size_t len;
    int64_t v = -1;
    rh_status_t st = rh_actor_call(a, "add", NULL, 0, NULL, &r);

    if (st == RH_OK) {
        st = rh_get(r, &p, &len, 60000);
        if (st == RH_OK) {
            v = *(const int64_t *)p;
            rh_release(r);
        }
        rh_release(r);
    }
    if (st != RH_OK) {
        printf("USER FAIL rank %d: %s: %s (%s)\n", rh_rank(), what,
               rh_status_string(st), rh_last_error());
        fails++;
    }
    return v;
}

static void restart_on(int node)
{
    rh_actor_params_t ap = { 0 };
    rh_actor_t a;
    int64_t v;

    ap.field_mask = RH_ACTOR_PARAM_FIELD_MAX_RESTARTS |
                    RH_ACTOR_PARAM_FIELD_STRATEGY;
    ap.max_restarts = 1;
    ap.strategy = RH_STRATEGY_NODE_AFFINITY;
    ap.node = node;
    CHECK(rh_actor_create("Counter", NULL, 0, &ap, &a));
    for (int i = 1; i <= 3; i++) {
        if ((v = add(a, "a call before the kill")) != i && v >= 0) {
            printf("USER FAIL add gave %ld, not %d\n", (long)v, i);
            fails++;
        }
    }
    CHECK(rh_actor_kill(a, 0));
    /* The constructor ran again: the count starts over. */
    if ((v = add(a, "the first call after rh_actor_kill(a, 0)")) != 1 &&
        v >= 0) {
        printf("USER FAIL the first call after the restart gave %ld, not "
               "1\n", (long)v);
        fails++;
    }
    expect(rh_actor_ready(a, 60000, NULL), RH_OK, "rh_actor_ready after the "
           "restart", NULL);
    if ((v = add(a, "a call once the restart is ready")) != 2 && v >= 0) {
        printf("USER FAIL the second call after the restart gave %ld, not "
               "2\n", (long)v);
        fails++;
    }
    CHECK(rh_actor_release(a));
}

/* On a rank that is not the actor's owner: count, kill with a restart,
 * count again; returns the three counts. */
static rh_status_t killer(rh_task_ctx_t *ctx)
{
    rh_actor_t a;
    int64_t v[3];

    memcpy(&a, rh_task_arg(ctx, 0, NULL), sizeof(a));
    v[0] = add(a, "a call before a kill from another rank");
    CHECK(rh_actor_kill(a, 0));
    v[1] = add(a, "the first call after a kill from another rank");
    v[2] = add(a, "the second call after a kill from another rank");
    return rh_task_return(ctx, 0, v, sizeof(v));
}

static void restart_from_another_rank(void)
{
    rh_actor_params_t ap = { 0 };
    rh_task_params_t tp = rank_on_node(rh_num_nodes() - 1, 0);
    rh_actor_t a;
    rh_arg_t h = rh_arg_bytes(&a, sizeof(a));
    rh_ref_t r;
    const void *p;
    size_t len;
    const int64_t *v;

    ap.field_mask = RH_ACTOR_PARAM_FIELD_MAX_RESTARTS;
    ap.max_restarts = 1;
    CHECK(rh_actor_create("Counter", NULL, 0, &ap, &a));
    CHECK(rh_remote("killer", &h, 1, &tp, &r));
    CHECK(rh_get(r, &p, &len, 60000));
    v = p;
    if (v[0] != 1 || v[1] != 1 || v[2] != 2) {
        printf("USER FAIL a kill from node %d: counts %ld %ld %ld, not 1 1 "
               "2\n", rh_num_nodes() - 1, (long)v[0], (long)v[1],
               (long)v[2]);
        fails++;
    }
    rh_release(r);
    rh_release(r);
    CHECK(rh_actor_release(a));
}

/* Handed a handle it holds nothing of: a release is refused, a hold and
 * its release are not, and one more release is refused again. Returns
 * how many of the four answers were wrong. */
static rh_status_t releaser(rh_task_ctx_t *ctx)
{
    rh_actor_t a;
    int before = fails;

    memcpy(&a, rh_task_arg(ctx, 0, NULL), sizeof(a));
    expect(rh_actor_release(a), RH_ERR_INVALID_REF, "rh_actor_release of a "
           "handle this rank was handed and never held", "more often");
    expect(rh_actor_hold(a), RH_OK, "rh_actor_hold of a handed handle", NULL);
    expect(rh_actor_release(a), RH_OK, "rh_actor_release of that hold", NULL);
    expect(rh_actor_release(a), RH_ERR_INVALID_REF, "a second "
           "rh_actor_release after one rh_actor_hold", "more often");
    before = fails - before;
    return rh_task_return(ctx, 0, &before, sizeof(before));
}

/* Takes another rank's object as its argument (the runtime pins it here
 * while the task runs) and gets it once: one release is the get's, the
 * next is refused and leaves the argument in place. Returns how many of
 * its answers were wrong. */
static rh_status_t obj_releaser(rh_task_ctx_t *ctx)
{
    rh_ref_t x = rh_task_arg_ref(ctx, 0);
    const unsigned char *arg = rh_task_arg(ctx, 0, NULL);
    const void *p;
    size_t len;
    int before = fails;

    expect(rh_release(x), RH_ERR_INVALID_REF, "rh_release of another rank's "
           "object this process never got", "holds no get");
    expect(rh_get(x, &p, &len, 60000), RH_OK, "rh_get of the argument", NULL);
    expect(rh_release(x), RH_OK, "rh_release of that get", NULL);
    expect(rh_release(x), RH_ERR_INVALID_REF, "a second rh_release of "
           "another rank's object after one get", "holds no get");
    if (arg[0] != 7 || arg[65535] != 7) {
        printf("USER FAIL rank %d: the argument changed under the task\n",
               rh_rank());
        fails++;
    }
    /* Got again, to check the store still has it as it was. */
    expect(rh_get(x, &p, &len, 60000), RH_OK, "rh_get after the refused "
           "release", NULL);
    if (fails == before && (len != 65536 || ((const unsigned char *)p)[9] !=
                            7)) {
        printf("USER FAIL rank %d: the object read back wrong\n", rh_rank());
        fails++;
    }
    rh_release(x);
    before = fails - before;
    return rh_task_return(ctx, 0, &before, sizeof(before));
}

static void mode_holds(void)
{
    rh_actor_t a;
    rh_arg_t h = rh_arg_bytes(&a, sizeof(a));

    if (rh_rank() != 0) {
        return;
    }
    CHECK(rh_actor_create("Counter", NULL, 0, NULL, &a));
    CHECK(rh_actor_hold(a));
    CHECK(rh_actor_release(a));
    if (rh_num_nodes() > 1) {
        rh_task_params_t tp = rank_on_node(rh_num_nodes() - 1, 0);
        rh_ref_t r;
        const void *p;
        size_t len;

        CHECK(rh_remote("releaser", &h, 1, &tp, &r));
        CHECK(rh_get(r, &p, &len, 60000));
        if (*(const int *)p != 0) {
            printf("USER FAIL releases on node %d: %d wrong answers\n",
                   rh_num_nodes() - 1, *(const int *)p);
            fails++;
        }
        rh_release(r);
        rh_release(r);

        /* The same for an object of this rank's, read on the last node. */
        {
            static unsigned char big[65536];
            rh_ref_t x;
            rh_arg_t xa;

            memset(big, 7, sizeof(big));
            CHECK(rh_put(big, sizeof(big), &x));
            xa = rh_arg_ref(x);
            CHECK(rh_remote("obj_releaser", &xa, 1, &tp, &r));
            CHECK(rh_get(r, &p, &len, 60000));
            if (*(const int *)p != 0) {
                printf("USER FAIL object releases on node %d: %d wrong "
                       "answers\n", rh_num_nodes() - 1, *(const int *)p);
                fails++;
            }
            rh_release(r);
            rh_release(r);
            rh_release(x);
        }
    }
    /* The creator's hold is still there: the actor lives. */
    if (add(a, "a call after the other ranks' releases") != 1) {
        fails++;
    }
    CHECK(rh_actor_release(a));
    expect(rh_actor_release(a), RH_ERR_INVALID_REF, "rh_actor_release after "
           "the creator's one hold was dropped", "more often");
}

static rh_status_t bad(rh_task_ctx_t *ctx)
{
    return rh_task_fail(ctx, "bad on purpose");
}

/* The sum of its int64 arguments (any number). */
static rh_status_t sum(rh_task_ctx_t *ctx)
{
    int64_t s = 0;

    for (int i = 0; i < rh_task_nargs(ctx); i++) {
        s += *(const int64_t *)rh_task_arg(ctx, i, NULL);
    }
    return rh_task_return(ctx, 0, &s, sizeof(s));
}

/* Argument 0 (an int64) plus 1. */
static rh_status_t inc(rh_task_ctx_t *ctx)
{
    int64_t v = *(const int64_t *)rh_task_arg(ctx, 0, NULL) + 1;

    return rh_task_return(ctx, 0, &v, sizeof(v));
}

/* Level d (argument 1) of a nest: hands the ref it was given (argument 0)
 * to a task of level d - 1 on another node, and returns what level 0 read
 * from it, plus d. */
static rh_status_t nest(rh_task_ctx_t *ctx)
{
    int d = *(const int *)rh_task_arg(ctx, 1, NULL);
    int64_t v = *(const int64_t *)rh_task_arg(ctx, 0, NULL);

    if (d > 0) {
        int next = d - 1;
        rh_arg_t a[2] = { rh_arg_ref(rh_task_arg_ref(ctx, 0)),
                          rh_arg_bytes(&next, sizeof(next)) };
        rh_task_params_t tp = rank_on_node((rh_node_id() + 1) %
                                           rh_num_nodes(), 0);
        rh_ref_t r;
        const void *p;
        rh_status_t st = rh_remote("nest", a, 2, &tp, &r);

        if (st == RH_OK && (st = rh_get(r, &p, NULL, 60000)) == RH_OK) {
            v = *(const int64_t *)p;
            rh_release(r);
        }
        if (st != RH_OK) {
            return rh_task_fail(ctx, "level %d: %s (%s)", d,
                                rh_status_string(st), rh_last_error());
        }
        rh_release(r);
    }
    v += d;
    return rh_task_return(ctx, 0, &v, sizeof(v));
}

/* deep: a task of 3 returns that submits itself one level down, on the next
 * node, and passes on the status of the get that failed (no message of its
 * own); at level 0 return 1 fails and returns 0 and 2 are set. A negative
 * level counts up to -1, where all three are set. */
static rh_status_t deep(rh_task_ctx_t *ctx)
{
    int d = *(const int *)rh_task_arg(ctx, 0, NULL);
    rh_task_params_t tp = rank_on_node((rh_node_id() + 1) % rh_num_nodes(),
                                       0);
    rh_ref_t r[3];
    rh_status_t st;

    if (d == 0 || d == -1) {   /* -d levels that do not fail */
        int v = 7;

        rh_task_return(ctx, 0, &v, sizeof(v));
        rh_task_return(ctx, 2, &v, sizeof(v));
        return d == 0 ? rh_task_fail(ctx, "the root cause, at level 0")
                      : rh_task_return(ctx, 1, &v, sizeof(v));
    }
    d += d > 0 ? -1 : 1;
    tp.field_mask |= RH_TASK_PARAM_FIELD_NUM_RETURNS;
    tp.num_returns = 3;
    st = rh_remote("deep", &(rh_arg_t){ RH_ARG_BYTES, { 0, 0 }, &d,
                                        sizeof(d) }, 1, &tp, r);
    if (st != RH_OK) {
        return st;
    }
    for (int i = 0; i < 3 && st == RH_OK; i++) {
        const void *p;

        st = rh_get(r[i], &p, NULL, 60000);
        if (st == RH_OK) {
            rh_task_return(ctx, i, p, sizeof(int));
            rh_release(r[i]);
        }
    }
    for (int i = 0; i < 3; i++) {
        rh_release(r[i]);
    }
    return st;
}

/* Returns an object of the size its argument says, every byte 0x5a. */
static rh_status_t sized(rh_task_ctx_t *ctx)
{
    size_t n = *(const size_t *)rh_task_arg(ctx, 0, NULL);
    void *p;
    rh_status_t st = rh_task_return_alloc(ctx, 0, n, &p);

    if (st == RH_OK && n > 0) {
        memset(p, 0x5a, n);
    }
    return st;
}

#define SCALE_N 10000

static void scale_wait_many(void)
{
    rh_ref_t *refs = calloc(SCALE_N, sizeof(*refs)),
             *ok = calloc(SCALE_N, sizeof(*ok));
    const void **ptrs = calloc(SCALE_N, sizeof(*ptrs));
    int *ready = calloc(SCALE_N, sizeof(*ready));
    size_t nok = 0, nready = 0;
    int64_t x;
    rh_arg_t a = rh_arg_bytes(&x, sizeof(x));

    if (refs == NULL || ok == NULL || ptrs == NULL || ready == NULL) {
        printf("USER FAIL out of memory\n");
        exit(1);
    }
    for (int i = 0; i < SCALE_N; i++) {
        x = i;
        if (i % 10 == 3) {
            CHECK(rh_remote("bad", NULL, 0, NULL, &refs[i]));
        } else {
            CHECK(rh_remote("inc", &a, 1, NULL, &refs[i]));
            ok[nok++] = refs[i];
        }
    }
    expect(rh_wait(refs, SCALE_N, SCALE_N, 120000, ready), RH_OK,
           "rh_wait of 10,000 refs", NULL);
    for (int i = 0; i < SCALE_N; i++) {
        nready += ready[i] == 1;
    }
    if (nready != SCALE_N) {
        printf("USER FAIL rh_wait of 10,000 refs: %zu ready\n", nready);
        fails++;
    }
    expect(rh_get_many(refs, SCALE_N, ptrs, NULL, 60000), RH_ERR_TASK_FAILED,
           "rh_get_many of 10,000 refs, some failed", "bad on purpose");
    expect(rh_get_many(ok, nok, ptrs, NULL, 60000), RH_OK,
           "rh_get_many of the 9,000 that did not fail", NULL);
    for (size_t i = 0, j = 0; i < SCALE_N && fails == 0; i++) {
        if (i % 10 != 3 && *(const int64_t *)ptrs[j++] != (int64_t)i + 1) {
            printf("USER FAIL rh_get_many: ref %zu holds %ld\n", i,
                   (long)*(const int64_t *)ptrs[j - 1]);
            fails++;
        }
    }
    for (size_t i = 0; i < nok; i++) {
        rh_release(ok[i]);   /* the get's */
    }
    for (int i = 0; i < SCALE_N; i++) {
        expect(rh_release(refs[i]), RH_OK, "rh_release of a waited ref",
               NULL);
    }
    /* The failed get kept no hold: nothing is left to release. */
    expect(rh_release(refs[0]), RH_ERR_INVALID_REF, "a release past the "
           "holds of a ref a failed rh_get_many took in", NULL);
    free(refs);
    free(ok);
    free(ptrs);
    free(ready);
}

static void scale_chain(void)
{
    int64_t zero = 0;
    rh_ref_t prev, next;
    rh_arg_t a;
    const void *p;

    CHECK(rh_put(&zero, sizeof(zero), &prev));
    for (int i = 0; i < SCALE_N; i++) {
        a = rh_arg_ref(prev);
        CHECK(rh_remote("inc", &a, 1, NULL, &next));
        rh_release(prev);   /* the task holds what it needs */
        prev = next;
    }
    CHECK(rh_get(prev, &p, NULL, 300000));
    if (*(const int64_t *)p != SCALE_N) {
        printf("USER FAIL a chain of %d tasks gave %ld\n", SCALE_N,
               (long)*(const int64_t *)p);
        fails++;
    }
    rh_release(prev);
    rh_release(prev);
}

static void scale_fan_in(void)
{
    rh_arg_t a[256];
    rh_ref_t r[256], out;
    const void *p;
    int64_t want = 0;

    for (int i = 0; i < 256; i++) {
        int64_t v = i;
        rh_arg_t b = rh_arg_bytes(&v, sizeof(v));

        if (i % 2 == 0) {
            CHECK(rh_put(&v, sizeof(v), &r[i]));
            want += i;
        } else {
            CHECK(rh_remote("inc", &b, 1, NULL, &r[i]));
            want += i + 1;
        }
        a[i] = rh_arg_ref(r[i]);
    }
    CHECK(rh_remote("sum", a, 256, NULL, &out));
    CHECK(rh_get(out, &p, NULL, 60000));
    if (*(const int64_t *)p != want) {
        printf("USER FAIL a task of 256 ref arguments gave %ld, not %ld\n",
               (long)*(const int64_t *)p, (long)want);
        fails++;
    }
    rh_release(out);
    rh_release(out);
    for (int i = 0; i < 256; i++) {
        rh_release(r[i]);
    }
}

static void scale_nest(void)
{
    int64_t v = 40;
    int d = 3;
    rh_ref_t x, out;
    rh_arg_t a[2];
    const void *p;

    CHECK(rh_put(&v, sizeof(v), &x));
    a[0] = rh_arg_ref(x);
    a[1] = rh_arg_bytes(&d, sizeof(d));
    CHECK(rh_remote("nest", a, 2, NULL, &out));
    rh_release(x);   /* the tasks borrow it */
    expect(rh_get(out, &p, NULL, 60000), RH_OK, "an object through 3 levels "
           "of nested tasks", NULL);
    if (fails == 0 && *(const int64_t *)p != 46) {
        printf("USER FAIL 3 levels of nested tasks gave %ld, not 46\n",
               (long)*(const int64_t *)p);
        fails++;
    }
    if (fails == 0) {
        rh_release(out);
    }
    rh_release(out);
}

static void scale_puts(void)
{
    rh_ref_t r;
    const void *p;
    size_t len = 1;
    char c = 0;

    expect(rh_put(&c, 0, &r), RH_OK, "rh_put of 0 bytes", NULL);
    expect(rh_get(r, &p, &len, 10000), RH_OK, "rh_get of a 0-byte object",
           NULL);
    if (len != 0) {
        printf("USER FAIL a 0-byte object has %zu bytes\n", len);
        fails++;
    }
    rh_release(r);
    rh_release(r);
    expect(rh_put(NULL, 0, &r), RH_OK, "rh_put(NULL, 0)", NULL);
    rh_release(r);
    expect(rh_put(&c, SIZE_MAX / 2, &r), RH_ERR_TOO_LARGE,
           "rh_put of SIZE_MAX / 2 bytes", NULL);
    {
        void *w;

        expect(rh_put_create(SIZE_MAX - 7, &r, &w), RH_ERR_TOO_LARGE,
               "rh_put_create of SIZE_MAX - 7 bytes", NULL);
    }
}

static void mode_scale(void)
{
    if (rh_rank() != 0) {
        return;
    }
    scale_puts();
    scale_nest();
    scale_fan_in();
    scale_wait_many();
    scale_chain();
}

/* A task failed `levels` levels down: every return of the top task fails
 * with RH_ERR_TASK_FAILED, and the message names the root cause, however
 * deep it was. */
static void deep_fails(int levels)
{
    rh_task_params_t p = { .field_mask = RH_TASK_PARAM_FIELD_NUM_RETURNS,
                           .num_returns = 3 };
    rh_arg_t a = rh_arg_bytes(&levels, sizeof(levels));
    rh_ref_t r[3];
    char what[64];

    CHECK(rh_remote("deep", &a, 1, &p, r));
    for (int i = 0; i < 3; i++) {
        const void *v;

        snprintf(what, sizeof(what), "return %d of %d nested levels", i,
                 levels);
        expect(rh_get(r[i], &v, NULL, 60000), RH_ERR_TASK_FAILED, what,
               "the root cause, at level 0");
        rh_release(r[i]);
    }
}

static void mode_deep(void)
{
    if (rh_rank() != 0) {
        return;
    }
    deep_fails(3);
    deep_fails(24);
}

/* Objects of exactly the sizes where their path changes, made by a task on
 * the last node and got here: 0 bytes, the small-return limit (40) and
 * RAYHPC_INLINE_MAX (64K) +/- 1. */
static void refs_sizes(void)
{
    static const size_t sizes[] = { 0, 39, 40, 41, 65535, 65536, 65537 };
    rh_task_params_t tp = rank_on_node(rh_num_nodes() - 1, 0);

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        rh_arg_t a = rh_arg_bytes(&sizes[i], sizeof(size_t));
        rh_ref_t r;
        const void *p;
        size_t len = 1;
        size_t j = 0;

        CHECK(rh_remote("sized", &a, 1, &tp, &r));
        CHECK(rh_get(r, &p, &len, 60000));
        while (j < len && ((const unsigned char *)p)[j] == 0x5a) {
            j++;
        }
        if (len != sizes[i] || j != len) {
            printf("USER FAIL a return of %zu bytes came as %zu, %zu of "
                   "them right\n", sizes[i], len, j);
            fails++;
        }
        rh_release(r);
        rh_release(r);
    }
}

/* rh_wait and rh_get_many of refs given twice, and of a failed one: each
 * copy counts, each get takes a hold; a released ref passed to a task is
 * refused by rh_remote alone (nothing runs, nothing is logged). */
static void refs_dup(void)
{
    int64_t v = 5;
    int ready[4];
    rh_arg_t a = rh_arg_bytes(&v, sizeof(v));
    rh_ref_t x, y, f, gone;
    const void *ptrs[4];
    size_t lens[4];

    CHECK(rh_put(&v, sizeof(v), &x));
    CHECK(rh_remote("inc", &a, 1, NULL, &y));
    CHECK(rh_remote("bad", NULL, 0, NULL, &f));
    {
        rh_ref_t dup[4] = { x, y, x, y };

        CHECK(rh_wait(dup, 4, 4, 60000, ready));
        if (!(ready[0] && ready[1] && ready[2] && ready[3])) {
            printf("USER FAIL rh_wait of refs given twice: %d %d %d %d\n",
                   ready[0], ready[1], ready[2], ready[3]);
            fails++;
        }
        expect(rh_get_many(dup, 4, ptrs, lens, 60000), RH_OK,
               "rh_get_many of refs given twice", NULL);
        for (int i = 0; i < 4; i++) {
            expect(rh_release(dup[i]), RH_OK, "a release of a get's hold of "
                   "a ref given twice", NULL);
        }
    }
    {
        rh_ref_t mix[3] = { f, x, f };

        CHECK(rh_wait(mix, 3, 3, 60000, ready));
        expect(rh_get_many(mix, 3, ptrs, NULL, 60000), RH_ERR_TASK_FAILED,
               "rh_get_many with a failed ref given twice", "bad on purpose");
    }
    {
        /* An unsealed put is not ready until sealed: k of 4 with a
         * remote task's return, a failed one and a put. */
        rh_task_params_t tp = rank_on_node(rh_num_nodes() - 1, 0);
        rh_ref_t mix[4];
        void *w;

        CHECK(rh_put_create(8, &mix[0], &w));
        CHECK(rh_remote("inc", &a, 1, &tp, &mix[1]));
        mix[2] = f;
        mix[3] = x;
        CHECK(rh_wait(mix, 4, 3, RH_TIMEOUT_INFINITE, ready));
        expect(!ready[0] && ready[1] && ready[2] && ready[3] ? RH_OK :
               RH_ERR_TIMEOUT, RH_OK, "rh_wait for 3 of 4 refs, one an "
               "unsealed put", NULL);
        CHECK(rh_wait(mix, 4, 4, 50, ready));   /* times out: not an error */
        expect(!ready[0] && ready[1] && ready[2] && ready[3] ? RH_OK :
               RH_ERR_TIMEOUT, RH_OK, "rh_wait for 4 of 4 refs that timed "
               "out", NULL);
        memset(w, 0, 8);
        CHECK(rh_put_seal(mix[0]));
        CHECK(rh_wait(mix, 4, 4, RH_TIMEOUT_INFINITE, ready));
        expect(ready[0] && ready[1] && ready[2] && ready[3] ? RH_OK :
               RH_ERR_TIMEOUT, RH_OK, "rh_wait for 4 of 4 refs once the put "
               "was sealed", NULL);
        rh_release(mix[0]);
        rh_release(mix[1]);
    }
    CHECK(rh_put(&v, sizeof(v), &gone));
    CHECK(rh_release(gone));
    ready[0] = 0;
    CHECK(rh_wait(&gone, 1, 1, RH_TIMEOUT_INFINITE, ready));
    expect(ready[0] ? RH_OK : RH_ERR_TIMEOUT, RH_OK, "rh_wait of a released "
           "ref: ready", NULL);
    {
        /* A ref of a rank just past the job: never made, so ready (it
         * waited for ever); its get says why. */
        rh_ref_t past = gone;

        past.hi = (past.hi & 0xffffffffull) |
                  ((uint64_t)(uint32_t)rh_size() << 32);
        ready[0] = 0;
        CHECK(rh_wait(&past, 1, 1, RH_TIMEOUT_INFINITE, ready));
        expect(ready[0] ? RH_OK : RH_ERR_TIMEOUT, RH_OK, "rh_wait of a ref "
               "of a rank past the job: ready", NULL);
        expect(rh_get(past, ptrs, NULL, 0), RH_ERR_INVALID_REF, "rh_get of "
               "a ref of a rank past the job", "not in this job");
    }
    if (rh_num_nodes() > 1) {
        /* Our task's large return, made on another node: rh_wait brings
         * it here (Ray's fetch_local), so a get that only looks has it. */
        rh_task_params_t tp = rank_on_node(rh_num_nodes() - 1, 0);
        size_t size = (size_t)1 << 20;
        rh_arg_t sa = rh_arg_bytes(&size, sizeof(size));
        rh_ref_t big;

        CHECK(rh_remote("sized", &sa, 1, &tp, &big));
        CHECK(rh_wait(&big, 1, 1, RH_TIMEOUT_INFINITE, ready));
        expect(rh_get(big, ptrs, lens, 0), RH_OK, "rh_get that only looks, "
               "of our task's return made on another node, once rh_wait "
               "said it was ready", NULL);
        rh_release(big);
        rh_release(big);
    }
    a = rh_arg_ref(gone);
    expect(rh_remote("inc", &a, 1, NULL, &y), RH_ERR_INVALID_REF,
           "rh_remote with a released ref", "released");
    rh_release(x);
    rh_release(f);
    expect(rh_release(x), RH_ERR_INVALID_REF, "a release past the holds",
           NULL);
}

static void mode_refs(void)
{
    if (rh_rank() != 0) {
        return;
    }
    refs_dup();
    refs_sizes();
}

/* fanout: rank 0 submits USER_API_FANOUT (10,000) tasks, each returning
 * 1 MiB, holds every return, then gets each and checks its bytes: far
 * more than the store, so most are spilled and read back. */
static void mode_fanout(void)
{
    const char *env = getenv("USER_API_FANOUT");
    size_t n = env != NULL ? strtoul(env, NULL, 10) : 10000, bad = 0;
    size_t mib = (size_t)1 << 20;
    rh_ref_t *r = calloc(n, sizeof(*r));

    if (rh_rank() != 0 || r == NULL) {
        free(r);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        size_t size = mib + (i & 1);   /* odd ones just past 1 MiB */
        rh_arg_t a = rh_arg_bytes(&size, sizeof(size));

        CHECK(rh_remote("sized", &a, 1, NULL, &r[i]));
    }
    {
        int *ready = calloc(n, sizeof(int));   /* all made before any get */

        CHECK(ready != NULL ? RH_OK : RH_ERR_NO_MEMORY);
        CHECK(rh_wait(r, n, n, 300000, ready));
        free(ready);
    }
    for (size_t i = 0; i < n; i++) {
        const void *p;
        size_t len = 0;
        rh_status_t st = rh_get(r[i], &p, &len, 120000);

        if (st != RH_OK) {
            if (bad++ < 3) {
                printf("USER FAIL return %zu of %zu of 1 MiB: %s (%s)\n", i,
                       n, rh_status_string(st), rh_last_error());
            }
        } else {
            if (len != mib + (i & 1) ||
                ((const unsigned char *)p)[0] != 0x5a ||
                ((const unsigned char *)p)[len - 1] != 0x5a) {
                if (bad++ < 3) {
                    printf("USER FAIL return %zu has %zu bytes, not as "
                           "written\n", i, len);
                }
            }
            rh_release(r[i]);
        }
        rh_release(r[i]);
    }
    fails += bad != 0;
    free(r);
}

/* threads: 4 threads of rank 0 at once, each submitting tasks of 3 returns
 * nested 2 levels over the nodes (every 5th failing at the bottom), putting
 * objects, waiting on both, getting them in one call and releasing every
 * hold; the failed ones fail naming their root cause, the others come. */
#define THREAD_ROUNDS 150

static _Atomic int thread_fails;

static void *thread_main(void *arg)
{
    int id = (int)(intptr_t)arg;

    for (int k = 0; k < THREAD_ROUNDS; k++) {
        int d = k % 5 == 0 ? 2 : -2;   /* negative: no failure */
        rh_task_params_t p = { .field_mask = RH_TASK_PARAM_FIELD_NUM_RETURNS,
                               .num_returns = 3 };
        rh_arg_t a = rh_arg_bytes(&d, sizeof(d));
        int v = id * 100000 + k, ready[4];
        rh_ref_t r[4];
        const void *ptrs[4];
        rh_status_t st;

        if (rh_remote("deep", &a, 1, &p, r) != RH_OK) {
            thread_fails++;
            continue;
        }
        if (rh_put(&v, sizeof(v), &r[3]) != RH_OK) {
            thread_fails++;
            for (int i = 0; i < 3; i++) {
                rh_release(r[i]);
            }
            continue;
        }
        if (rh_wait(r, 4, 4, 120000, ready) != RH_OK ||
            !(ready[0] && ready[1] && ready[2] && ready[3])) {
            thread_fails++;
        }
        st = rh_get_many(r, 4, ptrs, NULL, 120000);
        if (d > 0 && (st != RH_ERR_TASK_FAILED ||
                      strstr(rh_last_error(), "the root cause") == NULL)) {
            printf("USER FAIL thread %d: a failing nest gave %s (%s)\n", id,
                   rh_status_string(st), rh_last_error());
            thread_fails++;
        } else if (d < 0 && (st != RH_OK || *(const int *)ptrs[3] != v ||
                             *(const int *)ptrs[0] != 7)) {
            printf("USER FAIL thread %d: a nest gave %s (%s)\n", id,
                   rh_status_string(st), rh_last_error());
            thread_fails++;
        }
        for (int i = 0; i < 4; i++) {
            if (st == RH_OK) {
                rh_release(r[i]);   /* the get's hold */
            }
            if (rh_release(r[i]) != RH_OK) {
                thread_fails++;
            }
        }
    }
    return NULL;
}

static void mode_threads(void)
{
    pthread_t t[4];

    if (rh_rank() != 0) {
        return;
    }
    for (int i = 0; i < 4; i++) {
        if (pthread_create(&t[i], NULL, thread_main, (void *)(intptr_t)i) !=
            0) {
            printf("USER FAIL pthread_create\n");
            exit(1);
        }
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
    }
    if (thread_fails != 0) {
        printf("USER FAIL %d rounds of 4 threads went wrong\n",
               (int)thread_fails);
        fails++;
    }
}

/* named (3+ ranks, 2+ nodes): rank 1 makes two named actors on the last
 * node, "keeper" detached and "fated" not, and dies once every other rank
 * found both and called them. Then, from every survivor, "keeper" is
 * still found by name and answers (detached: it outlives its creator);
 * "fated" ends with its creator: its name is gone or its calls fail with
 * RH_ERR_ACTOR_DEAD, within a minute, and so do calls on the handle found
 * before. */
static void mode_named(void)
{
    rh_actor_params_t p = { 0 };
    int me = rh_rank();
    rh_actor_t keeper, fated;
    rh_status_t st;
    double end;

    if (dead_setup() != 0) {
        return;
    }
    p.field_mask = RH_ACTOR_PARAM_FIELD_STRATEGY | RH_ACTOR_PARAM_FIELD_NAME;
    p.strategy = RH_STRATEGY_NODE_AFFINITY;
    p.node = rh_num_nodes() - 1;
    if (me == 1) {
        p.name = "fated";
        CHECK(rh_actor_create("Counter", NULL, 0, &p, &fated));
        p.field_mask |= RH_ACTOR_PARAM_FIELD_DETACHED;
        p.detached = 1;
        p.name = "keeper";
        CHECK(rh_actor_create("Counter", NULL, 0, &p, &keeper));
        CHECK(rh_actor_ready(fated, 60000, NULL));
        CHECK(rh_actor_ready(keeper, 60000, NULL));
        dead_touch("made", 1);
        for (int r = 0; r < rh_size(); r++) {
            if (r != 1 && dead_await("found", r) != 0) {
                exit(1);
            }
        }
        raise(SIGKILL);
    }
    if (dead_await("made", 1) != 0) {
        return;
    }
    expect(rh_actor_get_named("keeper", &keeper), RH_OK, "rh_actor_get_named "
           "of a detached actor", NULL);
    expect(rh_actor_get_named("fated", &fated), RH_OK, "rh_actor_get_named "
           "of an actor", NULL);
    if (fails != 0) {
        return;
    }
    add(keeper, "a call to keeper");
    add(fated, "a call to fated");
    dead_touch("found", me);
    seen_dead(1);
    if (me == 0) {
        dead_unlink("made", 1);
        for (int r = 0; r < rh_size(); r++) {
            dead_unlink("found", r);
        }
    }
    {
        rh_actor_t again;

        expect(rh_actor_get_named("keeper", &again), RH_OK,
               "rh_actor_get_named of a detached actor whose creator died",
               NULL);
        if (fails == 0) {
            add(again, "a call to keeper after its creator died");
            add(keeper, "a call to keeper's first handle after its creator "
                "died");
            rh_actor_release(again);
        }
    }
    /* fated: gone by name, or dead to calls, without a hang */
    end = rank_now() + 60;
    do {
        rh_actor_t again;
        rh_ref_t r;
        const void *v;

        st = rh_actor_get_named("fated", &again);
        if (st == RH_OK) {
            st = rh_actor_call(again, "add", NULL, 0, NULL, &r);
            if (st == RH_OK) {
                st = rh_get(r, &v, NULL, 60000);
                if (st == RH_OK) {
                    rh_release(r);
                }
                rh_release(r);
            }
            rh_actor_release(again);
        }
        if (st == RH_OK) {
            rank_nap();
        }
    } while (st == RH_OK && rank_now() < end);
    if (st != RH_ERR_NOT_FOUND && st != RH_ERR_ACTOR_DEAD) {
        printf("USER FAIL rank %d: fated after its creator died: %s (%s)\n",
               me, rh_status_string(st), rh_last_error());
        fails++;
    }
    {
        rh_ref_t r;
        const void *v;

        st = rh_actor_call(fated, "add", NULL, 0, NULL, &r);
        if (st == RH_OK) {
            st = rh_get(r, &v, NULL, 60000);
            rh_release(r);
        }
        expect(st, RH_ERR_ACTOR_DEAD, "a call on fated's handle after its "
               "creator died", NULL);
    }
    rh_actor_release(keeper);
    rh_actor_release(fated);
}

/* A task handed an actor's handle inside an object (a ref argument): its
 * calls reach the actor. Or, with a kill flag, kills it for good. */
static rh_status_t in_object(rh_task_ctx_t *ctx)
{
    rh_actor_t a;
    int kill = *(const int *)rh_task_arg(ctx, 1, NULL);
    int64_t v;

    memcpy(&a, rh_task_arg(ctx, 0, NULL), sizeof(a));
    if (kill) {
        return rh_actor_kill(a, 1);
    }
    v = add(a, "a call through a handle in an object");
    return rh_task_return(ctx, 0, &v, sizeof(v));
}

/* A call of a's "add", and the get of its return: the status of either. */
static rh_status_t add_call(rh_actor_t a)
{
    rh_ref_t r;
    const void *p;
    rh_status_t st = rh_actor_call(a, "add", NULL, 0, NULL, &r);

    if (st != RH_OK) {
        return st;
    }
    st = rh_get(r, &p, NULL, 60000);
    if (st == RH_OK) {
        rh_release(r);   /* the get's hold */
    }
    rh_release(r);
    return st;
}

/* actors: a handle put in an object and called by a task on the last node;
 * a call that fails and the next that succeeds (the actor lives on); a
 * kill from a task on the last node, after which calls fail with
 * RH_ERR_ACTOR_DEAD; max_restarts -1 restarts after every kill, 0 after
 * none, -2 is refused. */
static void mode_actors(void)
{
    rh_task_params_t tp = rank_on_node(rh_num_nodes() - 1, 0);
    rh_actor_t a;
    rh_ref_t obj, r[2];
    const void *p;
    int kill = 0;
    rh_arg_t args[2];
    int64_t neg = -1, pos = 1;

    if (rh_rank() != 0) {
        return;
    }
    CHECK(rh_actor_create("Counter", NULL, 0, NULL, &a));
    CHECK(rh_put(&a, sizeof(a), &obj));
    args[0] = rh_arg_ref(obj);
    args[1] = rh_arg_bytes(&kill, sizeof(kill));
    CHECK(rh_remote("in_object", args, 2, &tp, &r[0]));
    expect(rh_get(r[0], &p, NULL, 60000), RH_OK, "a task calling a handle "
           "it got in an object", NULL);
    if (fails == 0 && *(const int64_t *)p != 1) {
        printf("USER FAIL a call through a handle in an object gave %ld\n",
               (long)*(const int64_t *)p);
        fails++;
    }
    rh_release(r[0]);
    rh_release(r[0]);
    args[0] = rh_arg_bytes(&neg, sizeof(neg));
    CHECK(rh_actor_call(a, "check", args, 1, NULL, &r[0]));
    args[0] = rh_arg_bytes(&pos, sizeof(pos));
    CHECK(rh_actor_call(a, "check", args, 1, NULL, &r[1]));
    expect(rh_get(r[0], &p, NULL, 60000), RH_ERR_TASK_FAILED, "a method "
           "that fails", "check of -1 refused");
    expect(rh_get(r[1], &p, NULL, 60000), RH_OK, "the call after a method "
           "failed", NULL);
    rh_release(r[0]);
    rh_release(r[1]);
    rh_release(r[1]);
    kill = 1;
    args[0] = rh_arg_ref(obj);
    args[1] = rh_arg_bytes(&kill, sizeof(kill));
    CHECK(rh_remote("in_object", args, 2, &tp, &r[0]));
    expect(rh_get(r[0], &p, NULL, 60000), RH_OK, "a kill from a task on the "
           "last node", NULL);
    rh_release(r[0]);
    rh_release(r[0]);
    expect(add_call(a), RH_ERR_ACTOR_DEAD, "a call after a kill from "
           "another rank", "killed");
    rh_release(obj);
    rh_actor_release(a);
    for (int mr = -1; mr <= 0; mr++) {
        rh_actor_params_t ap = { .field_mask =
                                     RH_ACTOR_PARAM_FIELD_MAX_RESTARTS,
                                 .max_restarts = mr };
        rh_actor_t b;
        char what[96];

        CHECK(rh_actor_create("Counter", NULL, 0, &ap, &b));
        CHECK(rh_actor_ready(b, 60000, NULL));
        for (int k = 0; k < 2; k++) {
            CHECK(rh_actor_kill(b, 0));
            snprintf(what, sizeof(what), "a call after kill %d of an actor "
                     "of max_restarts %d", k + 1, mr);
            expect(add_call(b), mr < 0 ? RH_OK : RH_ERR_ACTOR_DEAD, what,
                   NULL);
        }
        rh_actor_release(b);
    }
    {
        /* Killed before it was created (no rank offers what it asks):
         * dead at once, not waiting to be made. */
        rh_actor_params_t ap = { .field_mask = RH_ACTOR_PARAM_FIELD_RESOURCES,
                                 .resources = "nowhere=1" };
        rh_actor_t b;

        CHECK(rh_actor_create("Counter", NULL, 0, &ap, &b));
        expect(rh_actor_ready(b, 0, NULL), RH_ERR_TIMEOUT, "rh_actor_ready "
               "of an actor that fits nowhere", NULL);
        CHECK(rh_actor_kill(b, 1));
        expect(rh_actor_ready(b, 60000, NULL), RH_ERR_ACTOR_DEAD,
               "rh_actor_ready of an actor killed before it was created",
               "killed");
        expect(add_call(b), RH_ERR_ACTOR_DEAD, "a call on an actor killed "
               "before it was created", "killed");
        rh_actor_release(b);
    }
    {
        rh_actor_params_t ap = { .field_mask =
                                     RH_ACTOR_PARAM_FIELD_MAX_RESTARTS,
                                 .max_restarts = -2 };
        rh_actor_t b;

        expect(rh_actor_create("Counter", NULL, 0, &ap, &b),
               RH_ERR_INVALID_PARAM, "max_restarts -2", "max_restarts");
    }
}

/* A task of resource string spec on node (-1: anywhere) runs. */
static void res_runs(const char *spec, int node)
{
    rh_task_params_t p = node < 0 ? (rh_task_params_t){ 0 }
                                  : rank_on_node(node, 0);
    rh_ref_t r;
    const void *v;
    char what[96];
    rh_status_t st;

    p.field_mask |= RH_TASK_PARAM_FIELD_RESOURCES;
    p.resources = spec;
    snprintf(what, sizeof(what), "a task of resources \"%s\" on node %d",
             spec, node);
    st = rh_remote("one", NULL, 0, &p, &r);
    expect(st, RH_OK, what, NULL);
    if (st == RH_OK) {
        expect(rh_get(r, &v, NULL, 30000), RH_OK, what, NULL);
        rh_release(r);
        rh_release(r);
    }
}

static void mode_res(void)
{
    static const char *const zero[] = { "GPU=0", "other=0",
                                        "lic=1,other=0", "memory=0" };
    rh_task_params_t p = { .field_mask = RH_TASK_PARAM_FIELD_RESOURCES,
                           .resources = "CPU=1" };
    rh_actor_params_t ap = { .field_mask = RH_ACTOR_PARAM_FIELD_RESOURCES,
                             .resources = "GPU=0" };
    rh_actor_t a;
    rh_ref_t r;

    if (rh_rank() != 0) {
        return;
    }
    for (size_t i = 0; i < sizeof(zero) / sizeof(zero[0]); i++) {
        res_runs(zero[i], -1);
        res_runs(zero[i], rh_num_nodes() - 1);
    }
    expect(rh_remote("one", NULL, 0, &p, &r), RH_ERR_INVALID_PARAM,
           "a task of resources \"CPU=1\"", "num_cpus");
    p.resources = "CPU=0";
    expect(rh_remote("one", NULL, 0, &p, &r), RH_ERR_INVALID_PARAM,
           "a task of resources \"CPU=0\"", "num_cpus");
    CHECK(rh_actor_create("Counter", NULL, 0, &ap, &a));
    expect(rh_actor_ready(a, 30000, NULL), RH_OK, "an actor of resources "
           "\"GPU=0\"", NULL);
    rh_actor_release(a);
    ap.resources = "CPU=2";
    expect(rh_actor_create("Counter", NULL, 0, &ap, &a), RH_ERR_INVALID_PARAM,
           "an actor of resources \"CPU=2\"", "num_cpus");
}

static void mode_restart(void)
{
    if (rh_rank() != 0) {
        return;
    }
    restart_on(0);
    if (rh_num_nodes() > 1) {
        restart_on(rh_num_nodes() - 1);
        restart_from_another_rank();
    }
}

/* Calls the task-side functions with NULL where a pointer belongs: each
 * says RH_ERR_INVALID_PARAM, and the task returns that status. */
static rh_status_t null_outs(rh_task_ctx_t *ctx)
{
    int v = 1;
    rh_status_t st = rh_task_return_alloc(ctx, 0, 4, NULL);

    if (st != RH_ERR_INVALID_PARAM) {
        return rh_task_fail(ctx, "rh_task_return_alloc with ptr NULL gave %s",
                            rh_status_string(st));
    }
    st = rh_task_return(ctx, 0, NULL, 4);
    if (st != RH_ERR_INVALID_PARAM) {
        return rh_task_fail(ctx, "rh_task_return of NULL gave %s",
                            rh_status_string(st));
    }
    return rh_task_return(ctx, 0, &v, sizeof(v));
}

static void mode_args(void)
{
    rh_ref_t r;
    int x = 3;
    rh_arg_t a = rh_arg_bytes(&x, sizeof(x));

    expect(rh_remote(NULL, &a, 1, NULL, &r), RH_ERR_INVALID_PARAM,
           "rh_remote of a NULL name", "name");
    expect(rh_remote("any", NULL, 1, NULL, &r), RH_ERR_INVALID_PARAM,
           "rh_remote with args NULL and nargs 1", "NULL");
    expect(rh_actor_create(NULL, NULL, 0, NULL, NULL), RH_ERR_INVALID_PARAM,
           "rh_actor_create of a NULL class", NULL);
    /* A negative nargs is no count, also for a function of any number
     * ("any takes -1 arguments, got -1" was the sentence). */
    expect(rh_remote("any", &a, -1, NULL, &r), RH_ERR_INVALID_PARAM,
           "rh_remote with nargs -1", "nargs is -1");
    expect(rh_remote("one", &a, -2, NULL, &r), RH_ERR_INVALID_PARAM,
           "rh_remote with nargs -2", "nargs is -2");
    {
        rh_actor_t c;

        expect(rh_actor_create("Counter", &a, -1, NULL, &c),
               RH_ERR_INVALID_PARAM, "rh_actor_create with nargs -1",
               "nargs is -1");
        CHECK(rh_actor_create("Counter", NULL, 0, NULL, &c));
        expect(rh_actor_call(c, "add", &a, -1, NULL, &r),
               RH_ERR_INVALID_PARAM, "rh_actor_call with nargs -1",
               "nargs is -1");
        CHECK(rh_actor_release(c));
    }
    expect(rh_register("late", one, 0, 1), RH_ERR_ALREADY_INITIALIZED,
           "rh_register after rh_init", NULL);
    {
        rh_ref_t two[2];
        const void *p;
        size_t len = 1;

        /* "one" sets return 0 of 2: return 1 is an empty object. */
        CHECK(rh_remote("one", NULL, 0, &(rh_task_params_t){
                  .field_mask = RH_TASK_PARAM_FIELD_NUM_RETURNS,
                  .num_returns = 2 }, two));
        expect(rh_get(two[1], &p, &len, 60000), RH_OK, "rh_get of a return "
               "the task did not set", NULL);
        if (len != 0) {
            printf("USER FAIL a return the task did not set has %zu bytes, "
                   "not 0\n", len);
            fails++;
        }
        for (int i = 0; i < 2; i++) {
            rh_release(two[i]);
        }
        rh_release(two[1]);
    }
    {
        rh_ref_t r1;
        const void *p;

        CHECK(rh_remote("null_outs", NULL, 0, NULL, &r1));
        expect(rh_get(r1, &p, NULL, 60000), RH_OK, "a task that passes NULL "
               "for its return's pointers", NULL);
        rh_release(r1);
        rh_release(r1);
    }
    {
        rh_actor_t c;
        rh_bundle_t b = { 1, NULL };
        rh_pg_t pg;

        CHECK(rh_actor_create("Counter", NULL, 0, NULL, &c));
        expect(rh_actor_call(c, NULL, NULL, 0, NULL, &r),
               RH_ERR_INVALID_PARAM, "rh_actor_call of a NULL method",
               "method");
        CHECK(rh_actor_release(c));
        CHECK(rh_pg_create(&b, 1, RH_PG_PACK, &pg));
        CHECK(rh_pg_wait(pg, 60000));
        expect(rh_pg_bundle_node(pg, 0, NULL), RH_ERR_INVALID_PARAM,
               "rh_pg_bundle_node of bundle 0 with node NULL", "node");
        CHECK(rh_pg_remove(pg));
    }
    /* The sentence names the call the program made. */
    expect(rh_put(&x, sizeof(x), NULL), RH_ERR_INVALID_PARAM,
           "rh_put with ref NULL", "rh_put needs");
}

/* reinit, after rh_finalize: rh_init cannot join rayhpc-run's job again
 * (RH_ERR_BOOTSTRAP, saying so), and with bootstrap "singleton" it starts
 * a one-rank job that runs tasks, twice over. */
static void mode_reinit(int *argc, char ***argv)
{
    rh_init_params_t ip = { .field_mask = RH_INIT_PARAM_FIELD_BOOTSTRAP,
                            .bootstrap = "singleton" };

    expect(rh_init(argc, argv, NULL), RH_ERR_BOOTSTRAP, "rh_init after "
           "rh_finalize under rayhpc-run", "once");
    for (int i = 0; i < 2; i++) {
        rh_ref_t r;
        const void *p;

        CHECK(rh_init(argc, argv, &ip));
        if (rh_size() != 1) {
            printf("USER FAIL a singleton has %d ranks\n", rh_size());
            fails++;
        }
        CHECK(rh_remote("one", NULL, 0, NULL, &r));
        expect(rh_get(r, &p, NULL, 60000), RH_OK, "a task of a singleton "
               "after rh_finalize", NULL);
        CHECK(rh_finalize());
    }
}

/* rh_init with a RAYHPC_* setting of a bad value (USER_API_VAR names it):
 * RH_ERR_CONFIG, with a sentence naming the variable; each rank says so.
 * With USER_API_NO_ROOM set, the value is a store larger than the node
 * has room for: RH_ERR_NO_MEMORY, saying what /dev/shm has free. */
static int mode_badenv(int *argc, char ***argv)
{
    const char *var = getenv("USER_API_VAR");
    const char *rank1 = getenv("USER_API_ON_RANK1"), *lr;
    int no_room = getenv("USER_API_NO_ROOM") != NULL;
    rh_status_t st;

    /* USER_API_ON_RANK1=value: rank 1 alone (of rayhpc-run) sets USER_API_VAR
     * to it, a setting every rank needs the same. */
    lr = getenv("RAYHPC_LOCAL_RANK");
    if (rank1 != NULL && var != NULL && lr != NULL && strcmp(lr, "1") == 0) {
        setenv(var, rank1, 1);
    }
    st = rh_init(argc, argv, NULL);

    expect(st, no_room ? RH_ERR_NO_MEMORY : RH_ERR_CONFIG, "rh_init with a "
           "bad setting", var != NULL ? var : "RAYHPC_");
    if (no_room && st != RH_OK &&
        strstr(rh_last_error(), "bytes free") == NULL) {
        printf("USER FAIL rank %d: \"%s\" does not say what /dev/shm has "
               "free\n", rh_rank(), rh_last_error());
        fails++;
    }
    if (st == RH_OK) {
        rh_finalize();
    }
    if (fails != 0) {
        return 1;
    }
    printf("USER BADENV OK\n");
    return 0;
}

/* params: a bad value in rh_init_params_t fails rh_init with RH_ERR_CONFIG
 * naming the program's parameters; with its RAYHPC_* variable set, the
 * variable wins and the parameter is not judged (it failed rh_init). */
static int mode_params(int *argc, char ***argv)
{
    rh_init_params_t ip = { .field_mask = RH_INIT_PARAM_FIELD_LOG_LEVEL,
                            .log_level = "bogus" };
    rh_status_t st;

    unsetenv("RAYHPC_LOG_LEVEL");
    expect(rh_init(argc, argv, &ip), RH_ERR_CONFIG, "rh_init with "
           "log_level bogus", "rh_init_params_t");
    setenv("RAYHPC_LOG_LEVEL", "warn", 1);
    st = rh_init(argc, argv, &ip);
    expect(st, RH_OK, "rh_init with log_level bogus and RAYHPC_LOG_LEVEL "
           "set", NULL);
    if (st == RH_OK) {
        CHECK(rh_finalize());
    }
    if (fails != 0) {
        return 1;
    }
    printf("USER PARAMS OK\n");
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "pg";
    char up[16];
    int me;

    setvbuf(stdout, NULL, _IOLBF, 0);
    CHECK(rh_register("one", one, 0, 1));
    CHECK(rh_register("gatekeeper", gatekeeper, 1, 1));
    CHECK(rh_register("any", one, -1, 1));
    CHECK(rh_register("killer", killer, 1, 1));
    CHECK(rh_register("releaser", releaser, 1, 1));
    CHECK(rh_register("obj_releaser", obj_releaser, 1, 1));
    CHECK(rh_register("gone_group", gone_group, 0, 1));
    CHECK(rh_register("bad", bad, 0, 1));
    CHECK(rh_register("sum", sum, -1, 1));
    CHECK(rh_register("inc", inc, 1, 1));
    CHECK(rh_register("nest", nest, 2, 1));
    CHECK(rh_register("deep", deep, 1, 3));
    CHECK(rh_register("null_outs", null_outs, 0, 1));
    CHECK(rh_register("in_object", in_object, 2, 1));
    CHECK(rh_register("sized", sized, 1, 1));
    expect(rh_register("one", one, 0, 1), RH_ERR_BUSY, "a second "
           "rh_register of one name", "already");
    {
        rh_actor_class_t cls = { 0 };

        cls.field_mask = RH_ACTOR_CLASS_FIELD_FINI;
        cls.init = counter_init;
        cls.methods = counter_methods;
        cls.num_methods = 2;
        cls.fini = free;
        CHECK(rh_register_actor("Counter", &cls));
    }
    if (strcmp(mode, "badenv") == 0) {
        return mode_badenv(&argc, &argv);
    }
    if (strcmp(mode, "params") == 0) {
        return mode_params(&argc, &argv);
    }
    if (strcmp(mode, "pg") == 0) {
        /* Two workers a rank, whatever runs this: a task queued behind
         * one that holds its bundle's CPU (and its rank's only worker)
         * reaches the ledger, where the group's removal finds it. */
        setenv("RAYHPC_NUM_WORKERS", "2", 0);
    }
    CHECK(rh_init(&argc, &argv, NULL));
    me = rh_rank();
    if (strcmp(mode, "pg") == 0) {
        mode_pg();
    } else if (strcmp(mode, "pgdead") == 0) {
        mode_pgdead();
    } else if (strcmp(mode, "pgstop") == 0) {
        mode_pgstop();
    } else if (strcmp(mode, "pgboth") == 0) {
        mode_pgboth();
    } else if (strcmp(mode, "args") == 0) {
        mode_args();
    } else if (strcmp(mode, "restart") == 0) {
        mode_restart();
    } else if (strcmp(mode, "holds") == 0) {
        mode_holds();
    } else if (strcmp(mode, "scale") == 0) {
        mode_scale();
    } else if (strcmp(mode, "deep") == 0) {
        mode_deep();
    } else if (strcmp(mode, "refs") == 0) {
        mode_refs();
    } else if (strcmp(mode, "fanout") == 0) {
        mode_fanout();
    } else if (strcmp(mode, "threads") == 0) {
        mode_threads();
    } else if (strcmp(mode, "named") == 0) {
        mode_named();
    } else if (strcmp(mode, "actors") == 0) {
        mode_actors();
    } else if (strcmp(mode, "res") == 0) {
        mode_res();
    } else if (strcmp(mode, "reinit") == 0) {
        /* after rh_finalize, below */
    } else {
        printf("USER FAIL unknown mode %s\n", mode);
        fails++;
    }
    if (strcmp(mode, "pgboth") == 0) {
        /* Rank 0 leads the end of the job: the survivors are told it died. */
        expect(rh_finalize(), RH_ERR_PEER_FAILED, "rh_finalize with rank 0 "
               "dead", "rank 0");
    } else {
        CHECK(rh_finalize());
    }
    if (strcmp(mode, "reinit") == 0) {
        mode_reinit(&argc, &argv);
    }
    if (fails != 0) {
        return 1;
    }
    if (me == 0 || (strncmp(mode, "pg", 2) == 0 && mode[2] != '\0') ||
        strcmp(mode, "named") == 0) {
        size_t i = 0;

        for (; mode[i] != '\0' && i + 1 < sizeof(up); i++) {
            up[i] = (char)(mode[i] >= 'a' && mode[i] <= 'z' ? mode[i] - 32
                                                            : mode[i]);
        }
        up[i] = '\0';
        printf("USER %s OK\n", up);
    }
    return 0;
}
