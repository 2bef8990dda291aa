/*
 * A rank SIGKILLed while it streams small messages to another rank of its
 * host: afterwards the receiver either still hears the others or, when the
 * kill left its shared-memory receive queue stalled (a slot taken, never
 * marked ready), it ends itself, saying why (the transport's receive
 * watch), so that the job goes on without it instead of hanging.
 *
 * usage: shm_stall   (3 or more ranks, on one host)
 * Rank 0 runs rounds: in each, the next rank from 1 up streams to the
 * receiver (the last rank, at first) as fast as it can; a few milliseconds
 * after it started, rank 0 SIGKILLs it (from outside: its threads are in
 * the middle of whatever they do), then pings the receiver until it
 * answers or is dead; a receiver that ended is replaced by the next rank
 * down. Prints "SHM_STALL OK rounds=R heard=H ended=E"; a round whose
 * receiver neither answers nor dies within SHM_STALL_WAIT_S (default 120)
 * fails.
 */
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "rank_util.h"
#include "transport/am.h"

#define START (RH_AM_ID_TEST_FIRST + 1)   /* to a streamer: the receiver */
#define STARTED (RH_AM_ID_TEST_FIRST + 2) /* to rank 0: the streamer's pid */
#define DATA (RH_AM_ID_TEST_FIRST + 3)
#define PING (RH_AM_ID_TEST_FIRST + 4)
#define PONG (RH_AM_ID_TEST_FIRST + 5)
#define DONE (RH_AM_ID_TEST_FIRST + 6)   /* to the others: no more rounds */

static _Atomic long target = -1, started_pid, pongs, received, done;

static rh_status_t on_start(void *arg, rh_am_msg_t *msg)
{
    int32_t v;

    (void)arg;
    memcpy(&v, msg->hdr, sizeof(v));
    atomic_store(&target, v);
    return RH_OK;
}

static rh_status_t on_started(void *arg, rh_am_msg_t *msg)
{
    int32_t pid;

    (void)arg;
    memcpy(&pid, msg->hdr, sizeof(pid));
    atomic_store(&started_pid, pid);
    return RH_OK;
}

static rh_status_t on_data(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    (void)msg;
    atomic_fetch_add_explicit(&received, 1, memory_order_relaxed);
    return RH_OK;
}

static rh_status_t on_ping(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    (void)rh_am_send(msg->src, PONG, NULL, 0, NULL, 0, NULL, NULL);
    return RH_OK;
}

static rh_status_t on_pong(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    (void)msg;
    atomic_fetch_add(&pongs, 1);
    return RH_OK;
}

static rh_status_t on_done(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    (void)msg;
    atomic_store(&done, 1);
    return RH_OK;
}

/* Streams to the receiver rank 0 named until it is killed. */
static void stream(void)
{
    static const char payload[48];
    int32_t pid = (int32_t)getpid();
    long v = atomic_load(&target);

    CHECK(rh_am_send_wait(0, STARTED, &pid, sizeof(pid), NULL, 0));
    for (;;) {
        if (rh_am_send((uint32_t)v, DATA, NULL, 0, payload, sizeof(payload),
                       NULL, NULL) != RH_OK) {
            (void)rh_am_wait_room(0);
        }
    }
}

/* One round; 1 heard, 0 the receiver ended, -1 neither in time, 2 the
 * streamer had ended before it started (a death before left it deaf). */
static int round_of(int s, int v, double wait_s)
{
    int32_t v32 = v;
    long base = atomic_load(&pongs);
    double end;

    atomic_store(&started_pid, 0);
    CHECK(rh_am_send_wait((uint32_t)s, START, &v32, sizeof(v32), NULL, 0));
    end = rank_now() + wait_s;
    while (atomic_load(&started_pid) == 0 && rank_now() < end &&
           rh_rank_alive(s)) {
        rank_nap();
    }
    if (atomic_load(&started_pid) == 0 && !rh_rank_alive(s)) {
        return 2;
    }
    if (atomic_load(&started_pid) == 0) {
        fprintf(stderr, "rank %d never started streaming\n", s);
        return -1;
    }
    usleep(2000 + (useconds_t)(rand() % 20000));
    kill((pid_t)atomic_load(&started_pid), SIGKILL);
    while (rank_now() < end) {
        if (!rh_rank_alive(v)) {
            return 0;
        }
        (void)rh_am_send((uint32_t)v, PING, NULL, 0, NULL, 0, NULL, NULL);
        for (int i = 0; i < 100 && atomic_load(&pongs) == base; i++) {
            usleep(1000);
        }
        if (atomic_load(&pongs) != base) {
            return 1;
        }
    }
    return -1;
}

int main(int argc, char **argv)
{
    const char *w = getenv("SHM_STALL_WAIT_S");
    double wait_s = w != NULL ? atof(w) : 120.0;
    int me, n, rounds = 0, heard = 0, ended = 0, failed = 0;

    CHECK(rh_am_register(START, sizeof(int32_t), sizeof(int32_t), on_start,
                         NULL));
    CHECK(rh_am_register(STARTED, sizeof(int32_t), sizeof(int32_t),
                         on_started, NULL));
    CHECK(rh_am_register(DATA, 0, 0, on_data, NULL));
    CHECK(rh_am_register(PING, 0, 0, on_ping, NULL));
    CHECK(rh_am_register(PONG, 0, 0, on_pong, NULL));
    CHECK(rh_am_register(DONE, 0, 0, on_done, NULL));
    CHECK(rh_init(&argc, &argv, NULL));
    me = rh_rank();
    n = rh_size();
    if (n < 3) {
        fprintf(stderr, "shm_stall needs 3 ranks or more\n");
        return 2;
    }
    if (me == 0) {
        int v = n - 1;
        char *killed = calloc((size_t)n, 1);

        if (killed == NULL) {
            fprintf(stderr, "shm_stall: no memory\n");
            return 2;
        }
        srand((unsigned)getpid());

        for (int s = 1; s < v && failed == 0; s++) {
            int r;

            /* a rank that a death before left deaf has ended itself */
            while (v > s && !rh_rank_alive(v)) {
                v--;
            }
            if (v <= s || !rh_rank_alive(s)) {
                continue;
            }
            r = round_of(s, v, wait_s);
            if (r == 2) {
                continue;
            }
            rounds++;
            killed[s] = 1;
            if (r == 1) {
                heard++;
            } else if (r == -1) {
                failed++;
                fprintf(stderr, "round %d: rank %d neither answers nor died "
                        "within %.0f s of rank %d's death\n", rounds, v,
                        wait_s, s);
            }
        }
        for (int r = 1; r < n; r++) {
            if (rh_rank_alive(r)) {
                (void)rh_am_send_wait((uint32_t)r, DONE, NULL, 0, NULL, 0);
            } else if (!killed[r]) {
                ended++;   /* ended deaf */
            }
        }
        free(killed);
        if (failed == 0) {
            printf("SHM_STALL OK rounds=%d heard=%d ended=%d\n", rounds,
                   heard, ended);
            fflush(stdout);
        }
    } else {
        /* a streamer once rank 0 names its receiver (a receiver's
         * progress thread serves it meanwhile) */
        while (atomic_load(&target) < 0 && !atomic_load(&done)) {
            rank_nap();
        }
        if (atomic_load(&target) >= 0) {
            stream();
        }
    }
    (void)rh_finalize();
    return failed != 0;
}
