/*
 * Flagship example: ranks talk through the active-message layer.
 *
 *   rayhpc-run -n 4 --nodes 2 ./examples/am_exchange [LAPS] [ROUNDS]
 *
 * 1. A token goes round the ring of ranks, each hop answered on the
 *    receiving rank's progress thread: 100 laps to warm up (the first
 *    message to each rank sets up its connection), then LAPS laps (1000)
 *    timed; rank 0 reports the time per hop.
 * 2. Every rank sends a 4 MiB block to its right-hand neighbour by
 *    rendezvous (no staging buffer on either side: UCX reads the block in
 *    place and writes it into the receiver's buffer) and receives one from
 *    its left: 2 rounds to warm up, then ROUNDS rounds (20) timed; each rank
 *    reports its bandwidth each way and checks the checksum of what it got.
 *    Between hosts with RDMA the block moves zero copy. Between ranks of one
 *    host UCX 1.13 copies it through its shared-memory segment in 8 KiB
 *    fragments (it does not pick cma for endpoints with error handling),
 *    each fragment needing both ranks' progress threads: on a host with
 *    fewer cores than ranks that is what the rounds measure.
 *
 * The ranks meet at a barrier (through rank 0) before each timed part, so
 * that one part's stragglers are not timed in the next. When the ranks
 * outnumber this host's cores the example says so: each hop then waits for
 * the next rank to get a core.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rayhpc.h"
#include "transport/am.h"

#include "example.h"

#define TOKEN   (RH_AM_ID_EXAMPLE + 0)
#define BLOCK   (RH_AM_ID_EXAMPLE + 1)
#define ARRIVE  (RH_AM_ID_EXAMPLE + 2)   /* barrier: to rank 0 */
#define GO      (RH_AM_ID_EXAMPLE + 3)   /* barrier: from rank 0 */
#define WARM_LAPS   100
#define WARM_ROUNDS 2
#define BLOCK_BYTES (4u << 20)

/* A counter that the progress thread bumps and the main thread waits on
 * without spinning (a spinning waiter would take the core the progress
 * thread needs on a busy host). */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t value;
} counter_t;

#define COUNTER_INIT { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 }

static counter_t laps = COUNTER_INIT, blocks = COUNTER_INIT,
                 arrived = COUNTER_INIT, go = COUNTER_INIT;

static void counter_add(counter_t *c)
{
    pthread_mutex_lock(&c->lock);
    c->value++;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

/* Waits for the counter to reach value; a minute without is fatal. */
static void counter_wait(counter_t *c, uint64_t value, const char *what)
{
    struct timespec end;
    int err = 0;

    clock_gettime(CLOCK_REALTIME, &end);
    end.tv_sec += 60;
    pthread_mutex_lock(&c->lock);
    while (c->value < value && err != ETIMEDOUT) {
        err = pthread_cond_timedwait(&c->cond, &c->lock, &end);
    }
    pthread_mutex_unlock(&c->lock);
    if (err == ETIMEDOUT) {
        fprintf(stderr, "rank %d: no %s after a minute\n", rh_rank(), what);
        exit(1);
    }
}

static uint64_t total_laps;
static _Atomic double lap_start, lap_end;   /* stamped by rank 0's handler */

static uint64_t checksum(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h;
}

/* Runs on the progress thread: pass the token on, or stop after the last
 * lap. Rank 0 stamps the clock as the timed laps begin and end. */
static rh_status_t on_token(void *arg, rh_am_msg_t *msg)
{
    uint64_t hops;
    int next = (rh_rank() + 1) % rh_size();

    (void)arg;
    memcpy(&hops, msg->hdr, sizeof(hops));
    hops++;
    if (rh_rank() == 0 && hops % (uint64_t)rh_size() == 0) {
        uint64_t lap = hops / (uint64_t)rh_size();

        if (lap == WARM_LAPS) {
            atomic_store(&lap_start, ex_now());
        }
        if (lap == total_laps) {
            atomic_store(&lap_end, ex_now());
            counter_add(&laps);
            return RH_OK;
        }
    }
    return rh_am_send((uint32_t)next, TOKEN, &hops, sizeof(hops), NULL, 0,
                      NULL, NULL);
}

static uint8_t *inbox;   /* where the left neighbour's blocks land */
static rh_status_t block_status = RH_OK;

/* Handlers do the least they can: the main thread checks the data. */
static void block_arrived(void *arg, rh_status_t status)
{
    (void)arg;
    if (status != RH_OK) {
        block_status = status;
    }
    counter_add(&blocks);
}

static rh_status_t on_block(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    if (msg->data_len != BLOCK_BYTES) {
        return RH_ERR_MALFORMED;
    }
    if (msg->rndv_desc == NULL) {
        /* Sent eager (to a peer without an RDMA lane the transport sends
         * every size eager): the bytes are here already. */
        memcpy(inbox, msg->data, BLOCK_BYTES);
        block_arrived(NULL, RH_OK);
        return RH_OK;
    }
    /* UCX writes the payload straight into inbox: no staging copy. Every
     * round sends the same bytes, and a round's send ends only once its
     * data is here, so rounds never write inbox at once. */
    return rh_am_recv_data(msg, inbox, block_arrived, NULL);
}

static rh_status_t on_count(void *arg, rh_am_msg_t *msg)
{
    (void)msg;
    counter_add(arg);
    return RH_OK;
}

/* Every rank tells rank 0 it is here; rank 0 lets them all go once
 * everyone is. */
static void barrier(void)
{
    static uint64_t round;
    int n = rh_size();

    round++;
    if (rh_rank() == 0) {
        counter_wait(&arrived, round * (uint64_t)(n - 1), "barrier arrivals");
        for (int r = 1; r < n; r++) {
            rh_am_send((uint32_t)r, GO, NULL, 0, NULL, 0, NULL, NULL);
        }
    } else {
        rh_am_send(0, ARRIVE, NULL, 0, NULL, 0, NULL, NULL);
        counter_wait(&go, round, "go from rank 0");
    }
}

int main(int argc, char **argv)
{
    uint8_t *block = malloc(BLOCK_BYTES);
    int me, n, left, right, ok, rounds;
    uint64_t timed_laps;
    double t0, t;
    rh_status_t status = RH_OK;

    inbox = malloc(BLOCK_BYTES);
    if (block == NULL || inbox == NULL) {
        fprintf(stderr, "am_exchange: out of memory\n");
        return 1;
    }
    rh_am_register(TOKEN, sizeof(uint64_t), sizeof(uint64_t), on_token, NULL);
    rh_am_register(BLOCK, 0, 0, on_block, NULL);
    rh_am_register(ARRIVE, 0, 0, on_count, &arrived);
    rh_am_register(GO, 0, 0, on_count, &go);
    if (rh_init(&argc, &argv, NULL) != RH_OK) {
        fprintf(stderr, "rh_init: %s\n", rh_last_error());
        return 1;
    }
    timed_laps = (uint64_t)ex_arg(argc, argv, 1, 1000, 1L << 30);
    rounds = (int)ex_arg(argc, argv, 2, 20, 1 << 20);
    if (timed_laps == 0 || rounds == 0) {
        rh_finalize();
        return 1;
    }
    total_laps = WARM_LAPS + timed_laps;
    me = rh_rank();
    n = rh_size();
    left = (me + n - 1) % n;
    right = (me + 1) % n;

    barrier();
    if (me == 0) {
        uint64_t hops = 0;

        ex_note_oversubscribed("am_exchange");
        rh_am_send((uint32_t)right, TOKEN, &hops, sizeof(hops), NULL, 0,
                   NULL, NULL);
        counter_wait(&laps, 1, "token back");
        printf("rank 0: token went %" PRIu64 " times round %d ranks on %d "
               "node(s) after %d warm-up laps: %.2f us per hop\n",
               timed_laps, n, rh_num_nodes(), WARM_LAPS,
               (atomic_load(&lap_end) - atomic_load(&lap_start)) * 1e6 /
               ((double)timed_laps * n));
        fflush(stdout);
    }

    for (size_t i = 0; i < BLOCK_BYTES; i++) {
        block[i] = (uint8_t)(me * 7 + i * 13);
    }
    barrier();
    t0 = 0;
    for (int r = 0; r < WARM_ROUNDS + rounds && status == RH_OK; r++) {
        if (r == WARM_ROUNDS) {
            barrier();
            t0 = ex_now();
        }
        status = rh_am_send_wait((uint32_t)right, BLOCK, NULL, 0, block,
                                 BLOCK_BYTES);
        counter_wait(&blocks, (uint64_t)r + 1, "block from the left");
    }
    t = ex_now() - t0;
    /* What the left neighbour sent: same formula, its rank. */
    for (size_t i = 0; i < BLOCK_BYTES; i++) {
        block[i] = (uint8_t)(left * 7 + i * 13);
    }
    ok = status == RH_OK && block_status == RH_OK &&
         checksum(inbox, BLOCK_BYTES) == checksum(block, BLOCK_BYTES);
    printf("rank %d (node %d): 4 MiB to rank %d (%s) and from rank %d, %d "
           "rounds after %d warm-up: %.3f ms a round, %.2f GiB/s each way: "
           "checksum %s\n", me, rh_node_id(), right, rh_status_string(status),
           left, rounds, WARM_ROUNDS, t * 1e3 / rounds,
           (double)BLOCK_BYTES * rounds / t / EX_GIB, ok ? "ok" : "WRONG");
    fflush(stdout);
    status = rh_finalize();
    free(block);
    free(inbox);
    return status == RH_OK && ok ? 0 : 1;
}
