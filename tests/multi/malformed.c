/*
 * Malformed messages from the wire are counted and dropped, never trusted.
 *
 * Rank 0 sends rank 1 one message of each bad kind, then a good one. Rank 1
 * checks that the good one arrived, that each drop counter counts exactly
 * its message, and that no handler ran on bad input. Prints "MALFORMED OK".
 */
#include <stddef.h>
#include <string.h>

#include "rank_util.h"
#include "transport/am.h"

#define ID_GOOD   (RH_AM_ID_TEST_FIRST + 3)  /* header: uint32 < 100 */
#define ID_UNUSED (RH_AM_ID_MAX - 1)         /* nobody registers it */

static _Atomic long good, handler_runs;

static rh_status_t on_good(void *arg, rh_am_msg_t *msg)
{
    uint32_t v;

    (void)arg;
    atomic_fetch_add(&handler_runs, 1);
    memcpy(&v, msg->hdr, sizeof(v));
    if (v >= 100) {
        return RH_ERR_MALFORMED;   /* the body check a real handler makes */
    }
    atomic_fetch_add(&good, 1);
    return RH_OK;
}

static void wire(rh_am_wire_hdr_t *w, uint16_t id, uint16_t hdr_len,
                 uint32_t src, uint64_t data_len)
{
    memset(w, 0, sizeof(*w));
    w->magic = RH_AM_MAGIC;
    w->version = RH_AM_VERSION;
    w->id = id;
    w->hdr_len = hdr_len;
    w->src = src;
    w->data_len = data_len;
}

static void send_bad(void)
{
    unsigned char buf[sizeof(rh_am_wire_hdr_t) + 16];
    rh_am_wire_hdr_t w;
    uint32_t v = 7;
    char data[8] = "payload";

    /* Shorter than the wire header. */
    CHECK(rh_am_send_raw(1, "RH", 2, NULL, 0));
    /* Not our magic. */
    wire(&w, ID_GOOD, 4, 0, 0);
    w.magic = 0xdead;
    memcpy(buf, &w, sizeof(w));
    memcpy(buf + sizeof(w), &v, 4);
    CHECK(rh_am_send_raw(1, buf, sizeof(w) + 4, NULL, 0));
    /* An id nobody registered. */
    wire(&w, ID_UNUSED, 0, 0, 0);
    CHECK(rh_am_send_raw(1, &w, sizeof(w), NULL, 0));
    /* Source rank out of range. */
    wire(&w, ID_GOOD, 4, 1000000, 0);
    memcpy(buf, &w, sizeof(w));
    CHECK(rh_am_send_raw(1, buf, sizeof(w) + 4, NULL, 0));
    /* Header length past what arrived. */
    wire(&w, ID_GOOD, 100, 0, 0);
    memcpy(buf, &w, sizeof(w));
    CHECK(rh_am_send_raw(1, buf, sizeof(w) + 4, NULL, 0));
    /* Payload length past what arrived. */
    wire(&w, ID_GOOD, 4, 0, 1000);
    memcpy(buf, &w, sizeof(w));
    CHECK(rh_am_send_raw(1, buf, sizeof(w) + 4, data, sizeof(data)));
    /* Header outside the handler's declared range (16 bytes, wants 4). */
    wire(&w, ID_GOOD, 16, 0, 0);
    memcpy(buf, &w, sizeof(w));
    memset(buf + sizeof(w), 0, 16);
    CHECK(rh_am_send_raw(1, buf, sizeof(w) + 16, NULL, 0));
    /* Well-formed, but a body the handler rejects. */
    v = 1000;
    CHECK(rh_am_send(1, ID_GOOD, &v, sizeof(v), NULL, 0, NULL, NULL));
    /* And then a good one, which must still get through. */
    v = 42;
    CHECK(rh_am_send_wait(1, ID_GOOD, &v, sizeof(v), NULL, 0));
}

static int check_counts(void)
{
    const rh_am_stats_t *st = rh_am_stats();
    int ok = 1;

    for (int r = 0; r < RH_AM_DROP_NUM; r++) {
        uint64_t got = atomic_load(&st->dropped[r]);

        if (got != 1) {
            fprintf(stderr, "drop counter '%s' is %llu, expected 1\n",
                    rh_am_drop_string((rh_am_drop_t)r),
                    (unsigned long long)got);
            ok = 0;
        }
    }
    /* The rejected body and the good message: two handler runs, no more. */
    if (atomic_load(&handler_runs) != 2 || atomic_load(&good) != 1) {
        fprintf(stderr, "handler ran %ld times (good %ld), expected 2 (1)\n",
                atomic_load(&handler_runs), atomic_load(&good));
        ok = 0;
    }
    return ok;
}

int main(int argc, char **argv)
{
    CHECK(rh_am_register(ID_GOOD, 4, 4, on_good, NULL));
    CHECK(rh_init(&argc, &argv, NULL));
    if (rh_size() < 2) {
        fprintf(stderr, "malformed needs 2 ranks\n");
        return 2;
    }
    if (rh_rank() == 0) {
        send_bad();
    } else if (rh_rank() == 1) {
        double end = rank_now() + 60;
        const rh_am_stats_t *st = rh_am_stats();
        uint64_t drops = 0;

        /* Every bad message is counted by the time the good one and all
         * eight drops are in; give up after a minute. */
        while (rank_now() < end) {
            drops = 0;
            for (int r = 0; r < RH_AM_DROP_NUM; r++) {
                drops += atomic_load(&st->dropped[r]);
            }
            if (atomic_load(&good) == 1 && drops >= RH_AM_DROP_NUM) {
                break;
            }
            rank_nap();
        }
        if (!check_counts()) {
            return 1;
        }
        printf("MALFORMED OK: %d kinds of bad message dropped and counted, "
               "the good one delivered\n", RH_AM_DROP_NUM);
        fflush(stdout);
    }
    CHECK(rh_finalize());
    return 0;
}
