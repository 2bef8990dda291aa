/*
 * A rank dies by SIGKILL mid-job; the others must see an error, not hang.
 *
 * usage: peer_kill [VICTIM]   (default: the last rank)
 * Every rank pings every other rank (so endpoints exist both ways), then the
 * victim kills itself while the others keep sending to it. Survivors print
 * "PEER_FAILURE_SEEN" once a send fails with RH_ERR_PEER_FAILED or the rank
 * is reported dead, then finalize: rh_finalize must return, with
 * RH_ERR_PEER_FAILED when the victim was rank 0 (which ends the job).
 *
 * With PEER_KILL_FLOOD=1 in the environment the survivors fill the way to
 * the victim with sends (eager and rendezvous) that are still in flight
 * when it dies, and go straight into rh_finalize without waiting to see the
 * death: the flush there must not wait for the dead rank.
 */
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "rank_util.h"
#include "transport/am.h"

#define PING (RH_AM_ID_TEST_FIRST + 1)
#define PONG (RH_AM_ID_TEST_FIRST + 2)
#define READY (RH_AM_ID_TEST_FIRST + 4)

#define FLOOD_SENDS 256

static _Atomic long pongs, readies, flood_done;
static char flood_buf[256 * 1024];

static void on_flood_done(void *arg, rh_status_t status)
{
    (void)arg;
    (void)status;   /* failing is right: the victim is gone */
    atomic_fetch_add(&flood_done, 1);
}

/* Sends that cannot all be taken before the victim dies; small and large,
 * so both the eager and the rendezvous path hold requests to it. */
static void flood(int victim)
{
    for (int i = 0; i < FLOOD_SENDS; i++) {
        size_t len = (i & 1) ? sizeof(flood_buf) : 2048;

        if (rh_am_send((uint32_t)victim, PING, NULL, 0, flood_buf, len,
                       on_flood_done, NULL) != RH_OK) {
            atomic_fetch_add(&flood_done, 1);
        }
    }
}

static rh_status_t on_ping(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    /* A failed answer only means the pinger died: nothing to do here. */
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

static rh_status_t on_ready(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    (void)msg;
    atomic_fetch_add(&readies, 1);
    return RH_OK;
}

int main(int argc, char **argv)
{
    int me, n, victim;
    double end;
    const char *flood_env = getenv("PEER_KILL_FLOOD");
    int flooding = flood_env != NULL && strcmp(flood_env, "1") == 0;
    rh_status_t status = RH_OK;

    CHECK(rh_am_register(PING, 0, 0, on_ping, NULL));
    CHECK(rh_am_register(PONG, 0, 0, on_pong, NULL));
    CHECK(rh_am_register(READY, 0, 0, on_ready, NULL));
    CHECK(rh_init(&argc, &argv, NULL));
    me = rh_rank();
    n = rh_size();
    victim = argc > 1 ? atoi(argv[1]) : n - 1;
    if (n < 2 || victim < 0 || victim >= n) {
        fprintf(stderr, "peer_kill needs 2 or more ranks and a victim in "
                "[0, %d)\n", n);
        return 2;
    }
    for (int r = 0; r < n; r++) {
        if (r != me) {
            CHECK(rh_am_send_wait((uint32_t)r, PING, NULL, 0, NULL, 0));
        }
    }
    end = rank_now() + 60;
    while (atomic_load(&pongs) < n - 1 && rank_now() < end) {
        rank_nap();
    }
    /* The victim dies only once everybody has talked to it both ways. */
    if (me != victim) {
        CHECK(rh_am_send_wait((uint32_t)victim, READY, NULL, 0, NULL, 0));
    }
    if (me != victim && flooding) {
        flood(victim);
        printf("FLOODED rank %d victim %d\n", me, victim);
        fflush(stdout);
        status = rh_finalize();
        printf("FINALIZE rank %d status=%s%s%s (flood sends ended: %ld)\n",
               me, rh_status_string(status), status != RH_OK ? ": " : "",
               status != RH_OK ? rh_last_error() : "",
               atomic_load(&flood_done));
        fflush(stdout);
        return status == RH_OK ? 0 : 1;
    }
    while (me == victim && atomic_load(&readies) < n - 1 &&
           rank_now() < end) {
        rank_nap();
    }
    if (me == victim) {
        printf("VICTIM rank %d dies now\n", me);
        fflush(stdout);
        raise(SIGKILL);
    }
    /* Keep talking to the victim until the runtime says it is gone. */
    end = rank_now() + 60;
    while (rank_now() < end) {
        status = rh_am_send_wait((uint32_t)victim, PING, NULL, 0, NULL, 0);
        if (status == RH_ERR_PEER_FAILED || !rh_rank_alive(victim)) {
            break;
        }
        usleep(2000);
    }
    if (rh_rank_alive(victim)) {
        fprintf(stderr, "rank %d: rank %d still looks alive after 60 s\n",
                me, victim);
        return 1;
    }
    printf("PEER_FAILURE_SEEN rank %d victim %d last_send=%s\n", me, victim,
           rh_status_string(status));
    fflush(stdout);
    status = rh_finalize();
    printf("FINALIZE rank %d status=%s%s%s\n", me, rh_status_string(status),
           status != RH_OK ? ": " : "", status != RH_OK ? rh_last_error() : "");
    fflush(stdout);
    if (victim == 0) {
        return status == RH_ERR_PEER_FAILED ? 0 : 1;
    }
    return status == RH_OK ? 0 : 1;
}
