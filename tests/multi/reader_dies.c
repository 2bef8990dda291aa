/*
 * A rank dies in the middle of a one-sided read of another rank's region.
 * The rank it read from must serve the read, hear of the death, and end
 * with nothing of that read left in UCX (UCX prints "was not returned to
 * mpool" at finalize for a request that was never handed back).
 *
 * usage: rayhpc-run -n 2 --nodes 2 --keep-going reader_dies
 *   rank 1 learns rank 0's rkey, starts a READ_LEN read of rank 0's region,
 *   sends a mark right behind it on the same connection and SIGKILLs
 *   itself as soon as the mark left, with the answer still coming. Rank 0 waits for the mark (so the
 *   read request reached it first) and for the death, then finalizes and
 *   prints "READER DIES OK". Needs RAYHPC_STORE_SIZE of READ_LEN or more.
 */
#include <signal.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "plasma/store.h"
#include "rank_util.h"
#include "transport/am.h"
#include "transport/rma.h"
#include "transport/transport.h"

#define READ_LEN (32u << 20)   /* far more than the reader's queue holds */
#define WAIT_S   30.0

enum {
    ID_HELLO = RH_AM_ID_TEST_FIRST,   /* 1 -> 0: send me your rkey */
    ID_RKEY,                          /* 0 -> 1: the rkey */
    ID_MARK,                          /* 1 -> 0: the read went out */
    ID_BIG                            /* 0 -> 1: READ_LEN bytes, rank 0's
                                       * pid in the header */
};

static _Atomic long got_rkey, got_mark;
static uint8_t rkey[1024];
static size_t rkey_len;

static rh_status_t on_hello(void *arg, rh_am_msg_t *msg)
{
    const void *buf;
    size_t len;

    (void)arg;
    rh_tp_local_rkey(&buf, &len);
    return rh_am_send(msg->src, ID_RKEY, NULL, 0, buf, len, NULL, NULL);
}

static rh_status_t on_rkey(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    if (msg->data == NULL || msg->data_len > sizeof(rkey)) {
        return RH_ERR_MALFORMED;
    }
    memcpy(rkey, msg->data, msg->data_len);
    rkey_len = msg->data_len;
    atomic_store(&got_rkey, 1);
    return RH_OK;
}

static rh_status_t on_mark(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    (void)msg;
    atomic_store(&got_mark, 1);
    return RH_OK;
}

static void read_done(void *arg, rh_status_t status)
{
    (void)arg;
    (void)status;
}

/* The mark left, so did the read request queued before it on the same
 * connection: die before anything of the answer is drained. */
static void mark_sent(void *arg, rh_status_t status)
{
    (void)arg;
    if (status != RH_OK) {
        fprintf(stderr, "READER DIES: the mark failed: %s\n",
                rh_status_string(status));
        exit(1);
    }
    fflush(stdout);
    raise(SIGKILL);
}

/* On rank 1's progress thread. */
static void read_and_die(rh_tp_op_t *op)
{
    static uint8_t *buf;

    (void)op;
    buf = malloc(READ_LEN);
    if (buf == NULL || rh_tp_set_rkey(0, rkey, rkey_len) != RH_OK ||
        rh_tp_get(0, buf, READ_LEN, 0, read_done, NULL) != RH_OK ||
        rh_am_send(0, ID_MARK, NULL, 0, NULL, 0, mark_sent, NULL) != RH_OK) {
        fprintf(stderr, "READER DIES: rank 1 could not start the read: %s\n",
                rh_last_error());
        exit(1);
    }
}

/* Rank 1 in stall mode: no progress until rank 0 has left. */
static rh_status_t on_big(void *arg, rh_am_msg_t *msg)
{
    int32_t pid;
    double end = rank_now() + 120;

    (void)arg;
    memcpy(&pid, msg->hdr, sizeof(pid));
    while (kill((pid_t)pid, 0) == 0 && rank_now() < end) {
        rank_nap();
    }
    return RH_OK;
}

static void big_sent(void *arg, rh_status_t status)
{
    (void)arg;
    (void)status;
}

static int stall(void)
{
    int32_t pid = (int32_t)getpid();

    if (rh_rank() == 1) {
        (void)rh_finalize();   /* rank 0 has left: nothing to agree on */
        return 0;
    }
    /* From the store's region, registered with UCX as the pulls' answers
     * are: the peer could read it, so UCX revokes that before failing the
     * send. */
    CHECK(rh_am_send(1, ID_BIG, &pid, sizeof(pid),
                     rh_store_base(rh_core_store()), READ_LEN, big_sent,
                     NULL));
    (void)rh_finalize();   /* fails: rank 1 never reports */
    printf("RANK STALLS OK\n");
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    static rh_tp_op_t op = { .run = read_and_die };

    CHECK(rh_am_register(ID_HELLO, 0, 0, on_hello, NULL));
    CHECK(rh_am_register(ID_RKEY, 0, 0, on_rkey, NULL));
    CHECK(rh_am_register(ID_MARK, 0, 0, on_mark, NULL));
    CHECK(rh_am_register(ID_BIG, sizeof(int32_t), sizeof(int32_t), on_big,
                         NULL));
    CHECK(rh_init(&argc, &argv, NULL));
    if (rh_size() != 2) {
        fprintf(stderr, "READER DIES: needs 2 ranks\n");
        return 1;
    }
    if (argc > 1 && strcmp(argv[1], "stall") == 0) {
        return stall();
    }
    if (rh_rank() == 1) {
        CHECK(rh_am_send_wait(0, ID_HELLO, NULL, 0, NULL, 0));
        if (rank_wait_count(&got_rkey, 1, WAIT_S) != 0) {
            fprintf(stderr, "READER DIES: no rkey from rank 0\n");
            return 1;
        }
        rh_tp_post(&op);
        for (;;) {
            rank_nap();
        }
    }
    /* Over TCP the mark can be lost with the connection: rank 1's kill
     * resets it while the answer is still coming, and a reset drops what
     * rank 0 had not read yet. The read was then sent before the mark; over
     * shared memory, where nothing is lost, the mark must arrive. */
    for (double end = rank_now() + WAIT_S;
         atomic_load(&got_mark) == 0;) {
        const char *tls = getenv("UCX_TLS");

        if (!rh_rank_alive(1) && tls != NULL && strstr(tls, "tcp") != NULL) {
            printf("READER DIES: the mark was lost with the TCP connection\n");
            break;
        }
        if (rank_now() > end) {
            fprintf(stderr, "READER DIES: rank 1 never started its read\n");
            return 1;
        }
        rank_nap();
    }
    for (double end = rank_now() + WAIT_S; rh_rank_alive(1);) {
        if (rank_now() > end) {
            fprintf(stderr, "READER DIES: rank 1's death went unnoticed\n");
            return 1;
        }
        rank_nap();
    }
    printf("READER DIES OK\n");
    fflush(stdout);
    CHECK(rh_finalize());
    return 0;
}
