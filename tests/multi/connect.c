/*
 * When endpoints are made. Each rank sends one message to every other rank
 * and waits for one from each, then prints how many endpoints to other
 * ranks it made once its progress thread ran: right after rh_init and
 * after the exchange. With RAYHPC_CONNECT_ALL every endpoint is made
 * before the progress thread starts, so none is ever made while a peer's
 * message is being handled (UCX 1.13's TCP transport crashes on one made
 * there: see rh_tp_create_endpoints); without it, each first send to a
 * rank makes one.
 *
 * Prints "CONNECT rank=R init=A after=B" on every rank.
 */
#include <stdint.h>
#include <string.h>

#include "rank_util.h"
#include "transport/am.h"
#include "transport/transport.h"

#define AM_ID (RH_AM_ID_TEST_FIRST + 0)

static _Atomic long received;

static rh_status_t on_msg(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    if (msg->data_len != sizeof(uint32_t)) {
        return RH_ERR_MALFORMED;
    }
    atomic_fetch_add(&received, 1);
    return RH_OK;
}

int main(int argc, char **argv)
{
    static uint32_t payload;
    int me, n, at_init;

    /* Before rh_init: a faster rank may send at once. */
    CHECK(rh_am_register(AM_ID, 0, 0, on_msg, NULL));
    CHECK(rh_init(&argc, &argv, NULL));
    at_init = rh_tp_late_endpoints();
    me = rh_rank();
    n = rh_size();
    payload = (uint32_t)me;
    for (int k = 1; k < n; k++) {
        CHECK(rh_am_send_wait((uint32_t)((me + k) % n), AM_ID, NULL, 0,
                              &payload, sizeof(payload)));
    }
    if (rank_wait_count(&received, n - 1, 120)) {
        fprintf(stderr, "rank %d: %ld of %d messages received\n", me,
                atomic_load(&received), n - 1);
        return 1;
    }
    printf("CONNECT rank=%d init=%d after=%d\n", me, at_init,
           rh_tp_late_endpoints());
    fflush(stdout);
    CHECK(rh_finalize());
    return 0;
}
