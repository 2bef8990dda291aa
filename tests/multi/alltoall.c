/*
 * All-to-all exchange through the AM layer: every rank sends every rank
 * (itself included) one message per size, from 0 B to 16 MiB, and checks
 * every byte it receives. Eager and rendezvous paths both run: sizes from
 * RAYHPC_RNDV_THRESH up are pulled by rh_am_recv_data.
 *
 * usage: alltoall [MAX_BYTES]
 * Exits 0 and prints "ALLTOALL OK ..." when every message arrived intact.
 */
#include <stdint.h>
#include <string.h>

#include "rank_util.h"
#include "transport/am.h"

#define AM_ID (RH_AM_ID_TEST_FIRST + 0)

typedef struct {
    uint32_t round;
    uint32_t reserved;
    uint64_t len;
} xhdr_t;

static const size_t sizes[] = {
    0, 1, 8, 100, 4096, 65535, 65536, 1u << 20, 16u << 20
};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

static _Atomic long received, bad, sends_done, send_errors;
static int nrounds;

static void verify(int src, int round, const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] != rank_pattern(src, rh_rank(), round, i)) {
            fprintf(stderr, "rank %d: byte %zu of %zu from rank %d (round "
                    "%d) is wrong\n", rh_rank(), i, len, src, round);
            atomic_fetch_add(&bad, 1);
            return;
        }
    }
}

typedef struct {
    void   *buf;
    size_t  len;
    int     src, round;
} rndv_t;

static void rndv_done(void *arg, rh_status_t status)
{
    rndv_t *r = arg;

    if (status != RH_OK) {
        fprintf(stderr, "rank %d: receive from %d failed: %s\n", rh_rank(),
                r->src, rh_status_string(status));
        atomic_fetch_add(&bad, 1);
    } else {
        verify(r->src, r->round, r->buf, r->len);
    }
    free(r->buf);
    free(r);
    atomic_fetch_add(&received, 1);
}

static rh_status_t on_msg(void *arg, rh_am_msg_t *msg)
{
    xhdr_t h;
    rndv_t *r;

    (void)arg;
    memcpy(&h, msg->hdr, sizeof(h));
    if (h.len != msg->data_len || h.round >= (uint32_t)nrounds) {
        return RH_ERR_MALFORMED;
    }
    if (msg->rndv_desc == NULL) {
        verify((int)msg->src, (int)h.round, msg->data, msg->data_len);
        atomic_fetch_add(&received, 1);
        return RH_OK;
    }
    r = malloc(sizeof(*r));
    if (r == NULL || (r->buf = malloc(msg->data_len)) == NULL) {
        abort();
    }
    r->len = msg->data_len;
    r->src = (int)msg->src;
    r->round = (int)h.round;
    return rh_am_recv_data(msg, r->buf, rndv_done, r);
}

static void send_done(void *arg, rh_status_t status)
{
    (void)arg;
    if (status != RH_OK) {
        atomic_fetch_add(&send_errors, 1);
    }
    atomic_fetch_add(&sends_done, 1);
}

int main(int argc, char **argv)
{
    size_t max = argc > 1 ? strtoull(argv[1], NULL, 0) : (16u << 20);
    int me, n;
    long sent = 0;
    size_t total_bytes = 0;
    unsigned char **bufs;

    /* Handlers go in before rh_init: a faster rank may send at once. */
    CHECK(rh_am_register(AM_ID, sizeof(xhdr_t), sizeof(xhdr_t), on_msg,
                         NULL));
    /* Before rh_init too: the handler checks rounds against it. */
    while (nrounds < (int)NSIZES && sizes[nrounds] <= max) {
        nrounds++;
    }
    CHECK(rh_init(&argc, &argv, NULL));
    me = rh_rank();
    n = rh_size();
    bufs = calloc((size_t)n, sizeof(*bufs));
    for (int round = 0; round < nrounds; round++) {
        size_t len = sizes[round];

        for (int k = 0; k < n; k++) {
            int dst = (me + k) % n;   /* stagger: not everyone on rank 0 */
            xhdr_t h = { (uint32_t)round, 0, len };

            bufs[dst] = malloc(len ? len : 1);
            for (size_t i = 0; i < len; i++) {
                bufs[dst][i] = rank_pattern(me, dst, round, i);
            }
            CHECK(rh_am_send((uint32_t)dst, AM_ID, &h, sizeof(h), bufs[dst],
                             len, send_done, NULL));
            sent++;
            total_bytes += len;
        }
        /* Zero copy: the buffers stay ours until the sends complete. */
        if (rank_wait_count(&sends_done, sent, 120)) {
            fprintf(stderr, "rank %d: sends of round %d did not complete\n",
                    me, round);
            return 1;
        }
        for (int dst = 0; dst < n; dst++) {
            free(bufs[dst]);
        }
    }
    if (rank_wait_count(&received, (long)nrounds * n, 120)) {
        fprintf(stderr, "rank %d: got %ld of %ld messages\n", me,
                atomic_load(&received), (long)nrounds * n);
        return 1;
    }
    if (atomic_load(&bad) || atomic_load(&send_errors)) {
        fprintf(stderr, "rank %d: %ld bad messages, %ld failed sends\n", me,
                atomic_load(&bad), atomic_load(&send_errors));
        return 1;
    }
    printf("ALLTOALL OK rank %d of %d (node %d of %d): %ld messages, %zu "
           "bytes sent and verified, sizes 0..%zu\n", me, n, rh_node_id(),
           rh_num_nodes(), sent, total_bytes, sizes[nrounds - 1]);
    fflush(stdout);
    free(bufs);
    CHECK(rh_finalize());
    return 0;
}
