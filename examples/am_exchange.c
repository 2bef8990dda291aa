/*
 * Flagship example (for now): ranks talk through the active-message layer.
 *
 *   rayhpc-run -n 4 ./examples/am_exchange
 *
 * 1. A token goes round the ring of ranks 1000 times, each hop answered on
 *    the receiving rank's progress thread; rank 0 reports the time per hop.
 * 2. Every rank sends a 4 MiB block to its right-hand neighbour, zero copy
 *    (rendezvous), and checks the checksum of the block it gets.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rayhpc.h"
#include "transport/am.h"

#define TOKEN (RH_AM_ID_EXAMPLE + 0)
#define BLOCK (RH_AM_ID_EXAMPLE + 1)
#define LAPS  1000
#define BLOCK_BYTES (4u << 20)

static _Atomic int laps_done, block_seen;
static rh_status_t block_status;

static uint64_t checksum(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h;
}

/* Runs on the progress thread: pass the token on, or stop after LAPS. */
static rh_status_t on_token(void *arg, rh_am_msg_t *msg)
{
    uint64_t hops;
    int next = (rh_rank() + 1) % rh_size();

    (void)arg;
    memcpy(&hops, msg->hdr, sizeof(hops));
    hops++;
    if (rh_rank() == 0 && hops % (uint64_t)rh_size() == 0 &&
        atomic_fetch_add(&laps_done, 1) + 1 == LAPS) {
        return RH_OK;
    }
    return rh_am_send((uint32_t)next, TOKEN, &hops, sizeof(hops), NULL, 0,
                      NULL, NULL);
}

static uint8_t *inbox;   /* where the left neighbour's block lands */

/* Handlers do the least they can: the main thread checks the data. */
static void block_arrived(void *arg, rh_status_t status)
{
    (void)arg;
    block_status = status;
    atomic_store(&block_seen, 1);
}

static rh_status_t on_block(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    if (msg->rndv_desc == NULL || msg->data_len != BLOCK_BYTES) {
        return RH_ERR_MALFORMED;
    }
    /* UCX writes the payload straight into inbox: no staging copy. */
    return rh_am_recv_data(msg, inbox, block_arrived, NULL);
}

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void wait_for(_Atomic int *flag, int value)
{
    struct timespec nap = {0, 100000};
    double end = now() + 60;

    while (atomic_load(flag) < value) {
        if (now() > end) {
            fprintf(stderr, "rank %d: timed out\n", rh_rank());
            exit(1);
        }
        nanosleep(&nap, NULL);
    }
}

int main(int argc, char **argv)
{
    uint8_t *block = malloc(BLOCK_BYTES);
    int me, n, left, ok;
    double t0;
    rh_status_t status;

    inbox = malloc(BLOCK_BYTES);

    rh_am_register(TOKEN, sizeof(uint64_t), sizeof(uint64_t), on_token, NULL);
    rh_am_register(BLOCK, 0, 0, on_block, NULL);
    if (rh_init(&argc, &argv, NULL) != RH_OK) {
        fprintf(stderr, "rh_init: %s\n", rh_last_error());
        return 1;
    }
    me = rh_rank();
    n = rh_size();
    left = (me + n - 1) % n;

    if (me == 0) {
        uint64_t hops = 0;

        t0 = now();
        rh_am_send(n > 1 ? 1 : 0, TOKEN, &hops, sizeof(hops), NULL, 0, NULL,
                   NULL);
        wait_for(&laps_done, LAPS);
        printf("rank 0: token went %d times round %d ranks on %d node(s): "
               "%.2f us per hop\n", LAPS, n, rh_num_nodes(),
               (now() - t0) * 1e6 / ((double)LAPS * n));
    }

    t0 = now();
    for (size_t i = 0; i < BLOCK_BYTES; i++) {
        block[i] = (uint8_t)(me * 7 + i * 13);
    }
    status = rh_am_send_wait((uint32_t)((me + 1) % n), BLOCK, NULL, 0, block,
                             BLOCK_BYTES);
    wait_for(&block_seen, 1);
    /* What the left neighbour sent: same formula, its rank. */
    for (size_t i = 0; i < BLOCK_BYTES; i++) {
        block[i] = (uint8_t)(left * 7 + i * 13);
    }
    ok = block_status == RH_OK &&
         checksum(inbox, BLOCK_BYTES) == checksum(block, BLOCK_BYTES);
    printf("rank %d (node %d): sent 4 MiB to rank %d (%s), got 4 MiB from "
           "rank %d: checksum %s, %.2f ms\n", me, rh_node_id(), (me + 1) % n,
           rh_status_string(status), left, ok ? "ok" : "WRONG",
           (now() - t0) * 1e3);
    fflush(stdout);
    status = rh_finalize();
    free(block);
    free(inbox);
    return status == RH_OK && ok ? 0 : 1;
}
