/*
 * Several threads of rank 0 send to rank 1 over the same-host ring at
 * once: a small message goes into the ring from its own thread, a larger
 * one and one with a completion callback go as requests through the
 * progress thread, and a ring found full sends the rest that way too. Each
 * thread's messages must arrive all, once, and in the order it sent them,
 * whichever way each went; with RAYHPC_SHM_RING_BYTES small the ring is
 * full most of the time.
 *
 * usage: ring_threads   prints "RING THREADS OK: N messages" on rank 1
 *                       (run with 2 ranks on one host).
 */
#include <pthread.h>
#include <sched.h>
#include <string.h>

#include "rank_util.h"
#include "transport/am.h"

#define ID       (RH_AM_ID_TEST_FIRST + 14)
#define READY    (RH_AM_ID_TEST_FIRST + 15)
#define THREADS  4
#define SENDS    20000
#define BURST    64
#define BIG      600        /* over the size a thread writes itself */
#define WAIT_S   120.0

typedef struct ring_hdr {
    uint32_t thread;
    uint32_t seq;
} ring_hdr_t;

static _Atomic long received, bad;
static _Atomic uint32_t next_seq[THREADS];
static _Atomic long done_ok, done_failed;
static _Atomic long ready, hello_done;

static rh_status_t on_ready(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    (void)msg;
    atomic_fetch_add(&ready, 1);
    return RH_OK;
}

static void on_hello(void *arg, rh_status_t status)
{
    (void)arg;
    atomic_fetch_add(&hello_done, status == RH_OK ? 1 : 1000);
}

static rh_status_t on_msg(void *arg, rh_am_msg_t *msg)
{
    ring_hdr_t h;
    uint32_t want;

    (void)arg;
    memcpy(&h, msg->hdr, sizeof(h));
    if (h.thread >= THREADS) {
        atomic_fetch_add(&bad, 1);
        return RH_OK;
    }
    want = atomic_load(&next_seq[h.thread]);
    if (h.seq != want || msg->data == NULL || msg->data_len < sizeof(h) ||
        memcmp(msg->data, &h, sizeof(h)) != 0) {
        if (atomic_fetch_add(&bad, 1) < 5) {
            fprintf(stderr, "ring_threads: thread %u sent %u, expected %u "
                    "(%zu bytes)\n", h.thread, h.seq, want, msg->data_len);
        }
    }
    atomic_store(&next_seq[h.thread], h.seq + 1);
    atomic_fetch_add(&received, 1);
    return RH_OK;
}

static void on_done(void *arg, rh_status_t status)
{
    (void)arg;
    atomic_fetch_add(status == RH_OK ? &done_ok : &done_failed, 1);
}

/* A callback's payload is not copied: it must outlive its send. */
static ring_hdr_t kept[THREADS][SENDS / 101 + 1];

/* In bursts: a burst's first messages go into the ring from the thread,
 * until one goes as a request; those after it wait for the progress thread
 * too, while any request waits. Between bursts everything is let out. */
static void *sender(void *arg)
{
    uint32_t t = (uint32_t)(uintptr_t)arg;
    uint8_t payload[BIG];

    memset(payload, 0x5a, sizeof(payload));
    for (uint32_t seq = 0; seq < SENDS; seq++) {
        ring_hdr_t h = { t, seq };

        CHECK(rh_am_wait_room(0));
        if (seq % 101 == 5) {
            ring_hdr_t *k = &kept[t][seq / 101];

            *k = h;
            CHECK(rh_am_send(1, ID, &h, sizeof(h), k, sizeof(*k), on_done,
                             NULL));
        } else {
            memcpy(payload, &h, sizeof(h));
            CHECK(rh_am_send(1, ID, &h, sizeof(h), payload,
                             seq % 97 == 3 ? BIG : sizeof(h), NULL, NULL));
        }
        if (seq % BURST == BURST - 1) {
            double end = rank_now() + WAIT_S;

            while (rh_am_posted() != 0 && rank_now() < end) {
                sched_yield();
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int rc = 0;

    CHECK(rh_am_register(ID, sizeof(ring_hdr_t), sizeof(ring_hdr_t), on_msg,
                         NULL));
    CHECK(rh_am_register(READY, 0, 0, on_ready, NULL));
    CHECK(rh_init(&argc, &argv, NULL));
    if (rh_size() != 2) {
        fprintf(stderr, "ring_threads: run with 2 ranks\n");
        rh_finalize();
        return 1;
    }
    if (rh_rank() == 0) {
        pthread_t th[THREADS];
        static const uint32_t hello;

        /* Not before rank 1's ring is there and mapped: until then every
         * message waits for the progress thread, none goes from a thread
         * into the ring itself. */
        if (rank_wait_count(&ready, 1, WAIT_S) != 0) {
            fprintf(stderr, "ring_threads: rank 1 never said it is up\n");
            return 1;
        }
        CHECK(rh_am_send(1, READY, NULL, 0, &hello, sizeof(hello), on_hello,
                         NULL));
        if (rank_wait_count(&hello_done, 1, WAIT_S) != 0 ||
            atomic_load(&hello_done) != 1) {
            fprintf(stderr, "ring_threads: the first message failed\n");
            return 1;
        }

        for (uintptr_t t = 0; t < THREADS; t++) {
            if (pthread_create(&th[t], NULL, sender, (void *)t) != 0) {
                fprintf(stderr, "ring_threads: pthread_create failed\n");
                return 1;
            }
        }
        for (int t = 0; t < THREADS; t++) {
            pthread_join(th[t], NULL);
        }
        if (rank_wait_count(&done_ok, (long)THREADS * (SENDS / 101),
                            WAIT_S) != 0 || atomic_load(&done_failed) != 0) {
            fprintf(stderr, "ring_threads: %ld sends with a callback done, "
                    "%ld failed\n", atomic_load(&done_ok),
                    atomic_load(&done_failed));
            rc = 1;
        }
    } else {
        static const uint32_t up;

        CHECK(rh_am_send(0, READY, NULL, 0, &up, sizeof(up), NULL, NULL));
        if (rank_wait_count(&received, (long)THREADS * SENDS, WAIT_S) != 0) {
            fprintf(stderr, "ring_threads: %ld of %ld messages arrived\n",
                    atomic_load(&received), (long)THREADS * SENDS);
            rc = 1;
        } else if (atomic_load(&bad) != 0) {
            fprintf(stderr, "ring_threads: %ld out of order\n",
                    atomic_load(&bad));
            rc = 1;
        } else {
            printf("RING THREADS OK: %ld messages\n", atomic_load(&received));
        }
    }
    CHECK(rh_finalize());
    return rc;
}
