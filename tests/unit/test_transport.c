/* The transport's peer table: a peer's failure reaches the listeners from
 * the progress loop, never from inside the call that found it (UCX's
 * endpoint error callback, where a listener must not close endpoints or
 * send), and the endpoints close at the end with nothing left queued; a
 * failed send's recheck of a rank of this host; the worker's token: one
 * thread at a time, and a waiter that drives. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/completion.h"
#include "base/config.h"
#include "transport/tp_internal.h"
#include "transport/transport.h"

static _Atomic int told, told_rank, told_on_progress;
static int told_before_return;
static rh_completion_t listened, failed;

static void listener(void *arg, int rank)
{
    (void)arg;
    atomic_store(&told_rank, rank);
    atomic_store(&told_on_progress, rh_tp_on_progress_thread());
    atomic_fetch_add(&told, 1);
    rh_completion_signal(&listened, RH_OK);
}

/* Runs on the progress thread, as the pid check and the error callback
 * do. */
static void fail_rank_1(rh_tp_op_t *op)
{
    (void)op;
    rh_tp_peer_failed(1, "a test says so");
    told_before_return = atomic_load(&told);
    rh_tp_peer_failed(1, "a test says so again");
    rh_completion_signal(&failed, RH_OK);
}

/* Two ranks whose endpoints are both this process's worker; rank 1's
 * liveness is that of pid1 when it is on this host. The periodic pid check
 * is left for an hour: only what the test calls looks. */
static void start_ranks(pid_t pid1, int same_host)
{
    rh_config_t cfg;
    rh_tp_peer_info_t peers[2];
    const void *addr;
    size_t len;

    rh_config_defaults(&cfg);
    cfg.peer_check_ms = 3600 * 1000;
    cr_assert_eq(rh_tp_open(&cfg), RH_OK);
    cr_assert_eq(rh_tp_on_peer_failure(listener, NULL), RH_OK);
    rh_tp_local_address(&addr, &len);
    for (int r = 0; r < 2; r++) {
        peers[r].ucx_addr = addr;
        peers[r].ucx_addr_len = len;
        peers[r].pid = r == 1 ? pid1 : getpid();
        peers[r].same_host = r == 1 ? same_host : 1;
    }
    cr_assert_eq(rh_tp_start(0, 2, peers), RH_OK);
}

/* Rank 1 is never reached, only declared dead. */
static void start_two_ranks(void)
{
    start_ranks(getpid(), 0);
}

Test(transport, peer_failure_listeners_run_later_from_the_progress_loop)
{
    rh_tp_op_t op = { .run = fail_rank_1 };

    rh_completion_init(&listened);
    rh_completion_init(&failed);
    start_two_ranks();
    rh_tp_post(&op);
    cr_assert_eq(rh_completion_wait(&failed, 10000), RH_OK);
    cr_assert_eq(rh_completion_wait(&listened, 10000), RH_OK,
                 "the listener was never told");
    cr_expect_eq(told_before_return, 0, "the listener ran inside the call "
                 "that found the failure");
    cr_expect(atomic_load(&told_on_progress), "the listener ran off the "
              "progress thread");
    cr_expect_eq(atomic_load(&told_rank), 1);
    cr_expect_eq(rh_tp_peer_alive(1), 0);
    rh_tp_close_endpoints();
    rh_tp_close();
    cr_expect_eq(atomic_load(&told), 1, "a peer's failure is told once");
}

/* ---- a failed send looks at a rank of this host at once ----------------- */

static _Atomic int recheck_alive, ep_status;

static void recheck_rank_1(rh_tp_op_t *op)
{
    ucp_ep_h ep;

    (void)op;
    atomic_store(&recheck_alive, rh_tp_peer_recheck(1));
    atomic_store(&ep_status, (int)rh_tp_ep(1, &ep));
    rh_completion_signal(&failed, RH_OK);
}

static void recheck(void)
{
    rh_tp_op_t op = { .run = recheck_rank_1 };

    rh_completion_init(&failed);
    rh_tp_post(&op);
    cr_assert_eq(rh_completion_wait(&failed, 10000), RH_OK);
}

/* A child that ended and was not reaped yet (a zombie): kill(0) still
 * works on one. */
static pid_t zombie(void)
{
    pid_t child = fork();

    cr_assert_geq(child, 0);
    if (child == 0) {
        _exit(0);
    }
    for (int i = 0; i < 10000; i++) {
        char path[64], buf[256] = "";
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)child);
        f = fopen(path, "r");
        cr_assert_not_null(f);
        cr_assert_not_null(fgets(buf, sizeof(buf), f));
        fclose(f);
        if (strstr(buf, ") Z ") != NULL) {
            break;
        }
        usleep(1000);
    }
    return child;
}

/* A zombie is gone: the recheck marks rank 1 dead without waiting for the
 * periodic pid check, no endpoint is made to it, and the listeners hear of
 * it. Endpoints are made on first use here, so that the recheck is
 * rh_tp_ep's. */
Test(transport, recheck_finds_a_rank_of_this_host_whose_process_is_gone)
{
    pid_t child = zombie();

    rh_cfg.connect_all = 2;
    rh_completion_init(&listened);
    start_ranks(child, 1);
    cr_expect_eq(rh_tp_peer_alive(1), 1, "the periodic check ran");
    recheck();
    cr_expect_eq(atomic_load(&recheck_alive), 0);
    cr_expect_eq(atomic_load(&ep_status), RH_ERR_PEER_FAILED);
    cr_expect_eq(rh_tp_peer_alive(1), 0);
    cr_assert_eq(rh_completion_wait(&listened, 10000), RH_OK,
                 "the listener was never told");
    cr_expect_eq(atomic_load(&told_rank), 1);
    rh_tp_close_endpoints();
    rh_tp_close();
    (void)waitpid(child, NULL, 0);
}

/* With connections made at start-up, rh_tp_start makes each endpoint
 * before the progress thread first polls the worker (none is made later,
 * by a handler), and a rank whose process is gone is found dead there. */
Test(transport, connecting_at_start_makes_endpoints_before_the_thread_runs)
{
    pid_t child = zombie();

    rh_cfg.connect_all = 1;
    rh_completion_init(&listened);
    start_ranks(child, 1);
    cr_expect_eq(rh_tp_peer_alive(1), 0, "rh_tp_start let a dead rank be");
    cr_assert_eq(rh_completion_wait(&listened, 10000), RH_OK,
                 "the listener was never told");
    rh_tp_close_endpoints();
    rh_tp_close();
    (void)waitpid(child, NULL, 0);

    start_ranks(getpid(), 1);
    cr_expect_eq(rh_tp_late_endpoints(), 0);
    recheck();
    cr_expect_eq(atomic_load(&ep_status), RH_OK);
    cr_expect_eq(rh_tp_late_endpoints(), 0, "rank 1's endpoint was made "
                 "once the progress thread ran");
    rh_tp_close_endpoints();
    rh_tp_close();
}

/* A live process of this host stays alive and gets its endpoint. */
Test(transport, recheck_keeps_a_live_rank_and_one_of_another_host)
{
    start_ranks(getpid(), 1);
    recheck();
    cr_expect_eq(atomic_load(&recheck_alive), 1);
    cr_expect_eq(atomic_load(&ep_status), RH_OK);
    rh_tp_close_endpoints();
    rh_tp_close();
}

/* A rank of another host has no pid to look at: left to the network. */
Test(transport, recheck_leaves_a_rank_of_another_host_to_the_network)
{
    start_ranks(999999999, 0);   /* no such pid here: not looked at */
    recheck();
    cr_expect_eq(atomic_load(&recheck_alive), 1);
    cr_expect_eq(rh_tp_peer_alive(1), 1);
    rh_tp_close_endpoints();
    rh_tp_close();
}

/* ---- the worker's token ------------------------------------------------- */

typedef struct {
    rh_tp_op_t  op;
    _Atomic int running, release, ran;
    _Atomic int on_progress, drive_refused;
    pthread_t   thread;
} tok_op_t;

static void hold_run(rh_tp_op_t *op)
{
    tok_op_t *t = (tok_op_t *)op;

    atomic_store(&t->running, 1);
    while (!atomic_load(&t->release)) {
    }
}

static void note_run(rh_tp_op_t *op)
{
    tok_op_t *t = (tok_op_t *)op;

    t->thread = pthread_self();
    atomic_store(&t->on_progress, rh_tp_on_progress_thread());
    /* Whoever runs posted work counts as the progress thread: it may not
     * start driving again from inside. */
    atomic_store(&t->drive_refused, rh_tp_drive_begin() == 0);
    atomic_store(&t->ran, 1);
}

/* One thread at a time has the worker: while the progress thread runs an
 * op, a waiter can neither drive nor send directly; once the waiter drives,
 * the progress thread steps aside and posted work runs in the waiter's own
 * rounds, on its thread, which then counts as the progress thread. */
Test(transport, a_waiting_thread_drives_the_worker_and_the_progress_thread_steps_aside)
{
    static tok_op_t hold = { .op.run = hold_run };
    static tok_op_t note = { .op.run = note_run };
    int took = 0;

    start_two_ranks();
    rh_tp_set_progress_mode(RH_PROGRESS_BLOCKING);
    rh_tp_post(&hold.op);
    while (!atomic_load(&hold.running)) {
    }
    cr_assert_eq(rh_tp_drive_begin(), 1);
    cr_expect_eq(rh_tp_drive(), -1, "drove while the progress thread had "
                 "the worker");
    cr_expect_eq(rh_tp_enter(), 0, "took the worker from the progress "
                 "thread");
    cr_expect_eq(rh_tp_on_progress_thread(), 0);
    atomic_store(&hold.release, 1);
    for (long i = 0; i < 1000000000L && !took; i++) {
        took = rh_tp_drive() >= 0;
    }
    cr_assert(took, "the progress thread never stepped aside");
    rh_tp_post(&note.op);
    for (long i = 0; i < 1000000000L && !atomic_load(&note.ran); i++) {
        (void)rh_tp_drive();
    }
    rh_tp_drive_end();
    cr_assert(atomic_load(&note.ran), "posted work never ran");
    cr_expect(pthread_equal(note.thread, pthread_self()), "posted work ran "
              "on the progress thread while a waiter drove");
    cr_expect(atomic_load(&note.on_progress));
    cr_expect(atomic_load(&note.drive_refused));
    cr_expect_eq(rh_tp_on_progress_thread(), 0, "still counted as the "
                 "progress thread after its round");
    rh_tp_close_endpoints();
    rh_tp_close();
}

/* In polling mode, once the progress thread runs, this thread drives
 * until it parks; whether it did. The bound is generous: a parking thread
 * needs one turn on a core. */
static int drive_until_parked(void)
{
    int parked = 0;

    rh_tp_set_progress_mode(RH_PROGRESS_POLLING);
    for (int i = 0; i < 20000 && !(parked = rh_tp_drive_begin()); i++) {
        usleep(100);
    }
    cr_assert(parked, "the progress thread never started");
    parked = 0;
    for (int i = 0; i < 20000 && !(parked = rh_tp_parked()); i++) {
        (void)rh_tp_drive();
        usleep(100);
    }
    return parked;
}

/* Posts note and gives the progress thread 2 s to run it; whether it
 * ran. */
static int post_and_wait(tok_op_t *note)
{
    rh_tp_post(&note->op);
    for (int i = 0; i < 20000 && !atomic_load(&note->ran); i++) {
        usleep(100);
    }
    return atomic_load(&note->ran);
}

/* While a thread drives, the progress thread parks at once, whatever the
 * mode: in polling mode it used to spin beside the driver (yielding now
 * and then), and on a host with fewer cores than runtime threads two
 * ranks' spinning progress threads took turns on the driver's core with
 * it, a round trip then costing 9 us instead of 1.6. The driver that
 * leaves wakes it. */
Test(transport, the_progress_thread_parks_while_a_thread_drives_even_when_polling)
{
    static tok_op_t note = { .op.run = note_run };

    start_two_ranks();
    cr_expect(drive_until_parked(), "the polling progress thread never "
              "parked while a thread drove");
    rh_tp_drive_end();
    /* Woken: posted work runs on it again. */
    cr_assert(post_and_wait(&note), "the progress thread was not woken "
              "when the driver left");
    cr_expect(!pthread_equal(note.thread, pthread_self()));
    rh_tp_close_endpoints();
    rh_tp_close();
}

/* A driver that leaves without waking the parked progress thread (it got
 * what it waited for, or a worker starts a job) leaves the network to it
 * all the same: it looks again by itself within RH_TP_ASIDE_US. */
Test(transport, the_progress_thread_takes_the_network_back_after_a_driver_left_quietly)
{
    static tok_op_t note = { .op.run = note_run };

    start_two_ranks();
    cr_assert(drive_until_parked(), "the progress thread never parked");
    rh_tp_drive_leave();
    cr_assert(post_and_wait(&note), "nobody took the network back after "
              "the driver left");
    cr_expect(!pthread_equal(note.thread, pthread_self()));
    rh_tp_close_endpoints();
    rh_tp_close();
}
