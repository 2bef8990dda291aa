/*
 * rh_am_deliver, the receive path without a network (what the fuzz targets
 * in tests/fuzz/ feed), and sends once the transport stopped. Each test is
 * a singleton job of its own (criterion runs each in its own process).
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "rayhpc.h"
#include "sched/resources.h"
#include "transport/am.h"
#include "transport/transport.h"

#define ID (RH_AM_ID_TEST_FIRST + 1)

static struct {
    int      calls, on_progress;
    uint32_t src;
    uint8_t  hdr[8];
    size_t   hdr_len, data_len;
    char     data[16];
} seen;

static rh_status_t on_msg(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    seen.calls++;
    seen.on_progress = rh_tp_on_progress_thread();
    seen.src = msg->src;
    seen.hdr_len = msg->hdr_len;
    memcpy(seen.hdr, msg->hdr, msg->hdr_len);
    seen.data_len = msg->data_len;
    memcpy(seen.data, msg->data, msg->data_len);
    /* A body whose first byte is 'x' is malformed. */
    return msg->data_len > 0 && seen.data[0] == 'x' ? RH_ERR_MALFORMED
                                                     : RH_OK;
}

static void setup(void)
{
    rh_init_params_t p = { .field_mask = RH_INIT_PARAM_FIELD_LOG_LEVEL,
                           .log_level = "error" };

    memset(&seen, 0, sizeof(seen));
    cr_assert_eq(rh_am_register(ID, 2, 8, on_msg, NULL), RH_OK);
    cr_assert_eq(rh_init(NULL, NULL, &p), RH_OK, "%s", rh_last_error());
}

static void teardown(void)
{
    cr_expect_eq(rh_finalize(), RH_OK, "%s", rh_last_error());
}

/* Wire header + user header, as UCX would hand them to us. */
static size_t wire(uint8_t *buf, uint16_t id, uint16_t magic, uint32_t src,
                   const char *uhdr, size_t uhdr_len, size_t data_len)
{
    rh_am_wire_hdr_t w = { magic, RH_AM_VERSION, 0, id, (uint16_t)uhdr_len,
                           src, (uint32_t)data_len };

    memcpy(buf, &w, sizeof(w));
    memcpy(buf + sizeof(w), uhdr, uhdr_len);
    return sizeof(w) + uhdr_len;
}

/* Delivers one message; returns its drop reason. */
static rh_am_drop_t deliver(const uint8_t *hdr, size_t hlen, void *data,
                            size_t dlen)
{
    rh_am_raw_t m = { hdr, hlen, data, dlen, RH_AM_DROP_SHORT_HEADER };

    cr_assert_eq(rh_am_deliver(&m, 1), RH_OK, "%s", rh_last_error());
    return m.reason;
}

TestSuite(am_deliver, .init = setup, .fini = teardown, .timeout = 60);

Test(am_deliver, runs_the_handler_on_the_progress_thread_with_the_message)
{
    uint8_t buf[64];
    char data[] = "payload";
    size_t n = wire(buf, ID, RH_AM_MAGIC, 0, "abcd", 4, sizeof(data));
    uint64_t before = atomic_load(&rh_am_stats()->received);

    cr_expect_eq(deliver(buf, n, data, sizeof(data)), RH_AM_DROP_NUM);
    cr_expect_eq(seen.calls, 1);
    cr_expect(seen.on_progress, "the handler ran on another thread");
    cr_expect_eq(seen.src, 0);
    cr_expect_eq(seen.hdr_len, 4);
    cr_expect_arr_eq(seen.hdr, "abcd", 4);
    cr_expect_eq(seen.data_len, sizeof(data));
    cr_expect_str_eq(seen.data, "payload");
    /* At least ours: the rank's own GCS records (node table, load at
     * heartbeat rate) reach it through the transport meanwhile too. */
    cr_expect_geq(atomic_load(&rh_am_stats()->received), before + 1);
}

Test(am_deliver, checks_the_wire_header_before_the_handler)
{
    uint8_t buf[64];
    char data[4] = "abc";
    size_t n;

    n = wire(buf, ID, 0x1234, 0, "abcd", 4, sizeof(data));
    cr_expect_eq(deliver(buf, n, data, sizeof(data)), RH_AM_DROP_BAD_MAGIC);
    n = wire(buf, ID, RH_AM_MAGIC, 1, "abcd", 4, sizeof(data));
    cr_expect_eq(deliver(buf, n, data, sizeof(data)), RH_AM_DROP_BAD_SOURCE);
    n = wire(buf, ID, RH_AM_MAGIC, 0, "a", 1, sizeof(data));
    cr_expect_eq(deliver(buf, n, data, sizeof(data)),
                 RH_AM_DROP_HANDLER_HDR);
    cr_expect_eq(deliver(buf, n, data, sizeof(data) - 1),
                 RH_AM_DROP_DATA_LENGTH);
    cr_expect_eq(seen.calls, 0);
    cr_expect_geq(atomic_load(&rh_am_stats()->dropped[RH_AM_DROP_BAD_MAGIC]),
                  1);
}

Test(am_deliver, counts_a_body_its_handler_rejects)
{
    uint8_t buf[64];
    char data[4] = "xyz";
    size_t n = wire(buf, ID, RH_AM_MAGIC, 0, "ab", 2, sizeof(data));

    cr_expect_eq(deliver(buf, n, data, sizeof(data)), RH_AM_DROP_REJECTED);
    cr_expect_eq(seen.calls, 1);
    cr_expect_eq(atomic_load(&rh_am_stats()->dropped[RH_AM_DROP_REJECTED]),
                 1);
}

Test(am_deliver, delivers_a_batch_in_order)
{
    uint8_t a[64], b[64];
    char da[4] = "one", db[4] = "two";
    rh_am_raw_t m[2] = {
        { a, wire(a, ID, RH_AM_MAGIC, 0, "aa", 2, 4), da, 4, RH_AM_DROP_NUM },
        { b, wire(b, ID, RH_AM_MAGIC, 0, "bbb", 3, 4), db, 4, RH_AM_DROP_NUM },
    };

    cr_assert_eq(rh_am_deliver(m, 2), RH_OK);
    cr_expect_eq(m[0].reason, RH_AM_DROP_NUM);
    cr_expect_eq(m[1].reason, RH_AM_DROP_NUM);
    cr_expect_eq(seen.calls, 2);
    cr_expect_eq(seen.hdr_len, 3, "the last one is handled last");
    cr_expect_str_eq(seen.data, "two");
}

/* What pgroup.c sends to hold a bundle: the group, the bundle's index, the
 * phase (0: a request to this rank), then the bundle. */
typedef struct {
    uint64_t id;
    int32_t  n, kind;
} pg_hdr_t;

static rh_am_drop_t pg_reserve(long amount)
{
    static rh_res_req_t bundle;   /* as it travels: every byte of it */
    uint8_t buf[64];
    pg_hdr_t h = { 1, 0, 0 };
    size_t n;

    memset(&bundle, 0, sizeof(bundle));
    bundle.n = 1;
    snprintf(bundle.items[0].name, sizeof(bundle.items[0].name), "memory");
    bundle.items[0].amount = amount;
    n = wire(buf, RH_AM_ID_PG_RESERVE, RH_AM_MAGIC, 0, (const char *)&h,
             sizeof(h), sizeof(bundle));
    return deliver(buf, n, &bundle, sizeof(bundle));
}

/* A bundle's amounts are checked like a task's: a negative one would add
 * resources that do not exist, and huge ones overflowed the ledger. */
Test(am_deliver, a_bundle_with_a_negative_or_huge_amount_is_rejected)
{
    cr_expect_eq(pg_reserve(-5), RH_AM_DROP_REJECTED);
    cr_expect_eq(pg_reserve(LONG_MIN), RH_AM_DROP_REJECTED);
    cr_expect_eq(pg_reserve(LONG_MAX), RH_AM_DROP_REJECTED);
    cr_expect_eq(pg_reserve(RH_RES_AMOUNT_MAX + 1), RH_AM_DROP_REJECTED);
    cr_expect_eq(pg_reserve(1), RH_AM_DROP_NUM);
}

/* Once the progress thread stopped nothing posts to it: a send says so
 * instead of leaving its request in a queue nobody drains (a task that
 * waited for resources until rh_finalize answered its owner that way, and
 * the answer was lost with its request). */
Test(am_deliver, a_send_after_the_transport_stopped_fails_with_shutdown)
{
    static char data[1000];

    rh_tp_stop();
    cr_expect_eq(rh_am_send(0, ID, "ab", 2, data, 4, NULL, NULL),
                 RH_ERR_SHUTDOWN);
    cr_expect_eq(rh_am_send(0, ID, "ab", 2, data, sizeof(data), NULL, NULL),
                 RH_ERR_SHUTDOWN);
    cr_expect_neq(strstr(rh_last_error(), "stopped"), NULL, "%s",
                  rh_last_error());
}

Test(am_deliver_alone, needs_a_running_transport)
{
    uint8_t buf[64];
    size_t n = wire(buf, ID, RH_AM_MAGIC, 0, "ab", 2, 0);
    rh_am_raw_t m = { buf, n, buf, 0, RH_AM_DROP_NUM };

    cr_expect_eq(rh_am_deliver(&m, 1), RH_ERR_NOT_INITIALIZED);
}
