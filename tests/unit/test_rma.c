/*
 * The handlers of reads by message (transport/rma.c), fed through
 * rh_am_deliver in a singleton job: what a hostile or confused peer could
 * send them is refused or dropped, never served out of bounds and never
 * taken for the answer of a read that does not exist. And a read's done
 * never runs inside rh_tp_get, even when it has the bytes at once.
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "core/core.h"
#include "rayhpc.h"
#include "transport/am.h"
#include "transport/am_ids.h"
#include "transport/rma.h"
#include "transport/transport.h"

/* The wire forms of RMA_READ and RMA_DATA. */
typedef struct read_hdr {
    uint64_t token, offset, len;
} read_hdr_t;

typedef struct data_hdr {
    uint64_t token, offset;
    int32_t  status;
    uint32_t reserved;
} data_hdr_t;

static void setup(void)
{
    rh_init_params_t p = { .field_mask = RH_INIT_PARAM_FIELD_LOG_LEVEL,
                           .log_level = "error" };

    cr_assert_eq(rh_init(NULL, NULL, &p), RH_OK, "%s", rh_last_error());
}

static void teardown(void)
{
    cr_expect_eq(rh_finalize(), RH_OK, "%s", rh_last_error());
}

/* Delivers one message of id from rank 0 (this rank); its drop reason. */
static rh_am_drop_t deliver(uint16_t id, const void *uhdr, size_t uhdr_len,
                            void *data, size_t dlen)
{
    uint8_t buf[sizeof(rh_am_wire_hdr_t) + 64];
    rh_am_wire_hdr_t w = { RH_AM_MAGIC, RH_AM_VERSION, 0, id,
                           (uint16_t)uhdr_len, 0, (uint32_t)dlen };
    rh_am_raw_t m;

    memcpy(buf, &w, sizeof(w));
    memcpy(buf + sizeof(w), uhdr, uhdr_len);
    m.hdr = buf;
    m.hlen = sizeof(w) + uhdr_len;
    m.data = data;
    m.dlen = dlen;
    m.reason = RH_AM_DROP_SHORT_HEADER;
    cr_assert_eq(rh_am_deliver(&m, 1), RH_OK, "%s", rh_last_error());
    return m.reason;
}

static uint64_t rejected(void)
{
    return atomic_load(&rh_am_stats()->dropped[RH_AM_DROP_REJECTED]);
}

TestSuite(rma, .init = setup, .fini = teardown, .timeout = 60);

Test(rma, an_answer_to_no_read_is_rejected)
{
    data_hdr_t d = { 99, 0, 0, 0 };
    char bytes[8] = "1234567";
    uint64_t before = rejected();

    cr_expect_eq(deliver(RH_AM_ID_RMA_DATA, &d, sizeof(d), bytes,
                         sizeof(bytes)), RH_AM_DROP_REJECTED);
    d.status = RH_ERR_INVALID_PARAM;
    cr_expect_eq(deliver(RH_AM_ID_RMA_DATA, &d, sizeof(d), NULL, 0),
                 RH_AM_DROP_REJECTED);
    cr_expect_eq(rejected(), before + 2);
}

Test(rma, headers_of_the_wrong_size_are_dropped_before_the_handlers)
{
    uint64_t token = 1;

    cr_expect_eq(deliver(RH_AM_ID_RMA_READ, &token, sizeof(token), NULL, 0),
                 RH_AM_DROP_HANDLER_HDR);
    cr_expect_eq(deliver(RH_AM_ID_RMA_DATA, &token, sizeof(token), NULL, 0),
                 RH_AM_DROP_HANDLER_HDR);
}

/* The owner answers a read past the end of its region with an error, not
 * with bytes: here the answer comes back to this rank, which made no such
 * read and rejects it. */
Test(rma, a_read_past_the_end_of_the_region_is_refused)
{
    read_hdr_t r = { 7, UINT64_MAX - 8, 64 };
    uint64_t before = rejected();
    struct timespec nap = { 0, 1000000 };

    cr_expect_eq(deliver(RH_AM_ID_RMA_READ, &r, sizeof(r), NULL, 0),
                 RH_AM_DROP_NUM);
    for (int i = 0; i < 10000 && rejected() == before; i++) {
        nanosleep(&nap, NULL);
    }
    cr_expect_eq(rejected(), before + 1, "no refusal came back");
    r.offset = 0;
    r.len = UINT64_MAX;
    cr_expect_eq(deliver(RH_AM_ID_RMA_READ, &r, sizeof(r), NULL, 0),
                 RH_AM_DROP_NUM);
    for (int i = 0; i < 10000 && rejected() == before + 1; i++) {
        nanosleep(&nap, NULL);
    }
    cr_expect_eq(rejected(), before + 2, "no refusal came back");
}

/* A read of this rank's own region, on the progress thread. */
typedef struct self_read {
    rh_tp_op_t  op;
    uint8_t    *src, *dst;
    size_t      len;
    _Atomic int in_call;       /* done ran while rh_tp_get had not returned */
    _Atomic int done;          /* 1 + the status */
    _Atomic int started;       /* 1 + rh_tp_get's status */
    int         calling;
} self_read_t;

static void self_read_done(void *arg, rh_status_t status)
{
    self_read_t *r = arg;

    if (r->calling) {
        atomic_store(&r->in_call, 1);
    }
    atomic_store(&r->done, 1 + (int)status);
}

static void self_read_run(rh_tp_op_t *op)
{
    self_read_t *r = (self_read_t *)op;
    const void *rkey;
    size_t rlen;
    uint64_t base;
    rh_status_t st;

    rh_tp_local_rkey(&rkey, &rlen);
    memcpy(&base, rkey, sizeof(base));
    st = rh_tp_set_rkey(0, rkey, rlen);
    if (st == RH_OK) {
        r->calling = 1;
        st = rh_tp_get(0, r->dst, r->len, (uint64_t)(uintptr_t)r->src - base,
                       self_read_done, r);
        r->calling = 0;
    }
    atomic_store(&r->started, 1 + (int)st);
}

static void self_read(size_t len)
{
    rh_object_id_t a = { 0x5e1f, 2 * len + 1 }, b = { 0x5e1f, 2 * len + 2 };
    self_read_t r = { .op.run = self_read_run, .len = len };
    struct timespec nap = { 0, 1000000 };
    void *pa, *pb;

    cr_assert_eq(rh_object_create(a, r.len + 1, &pa), RH_OK, "%s",
                 rh_last_error());
    cr_assert_eq(rh_object_create(b, r.len + 1, &pb), RH_OK, "%s",
                 rh_last_error());
    r.src = pa;
    r.dst = pb;
    for (size_t i = 0; i < r.len; i++) {
        r.src[i] = (uint8_t)(i * 7 + 1);
    }
    memset(r.dst, 0, r.len);
    rh_tp_post(&r.op);
    for (int i = 0; i < 10000 && atomic_load(&r.done) == 0; i++) {
        nanosleep(&nap, NULL);
    }
    cr_assert_eq(atomic_load(&r.started), 1 + RH_OK, "rh_tp_get failed");
    cr_assert_eq(atomic_load(&r.done), 1 + RH_OK, "the read did not end "
                 "well");
    cr_expect_eq(atomic_load(&r.in_call), 0, "done ran inside rh_tp_get");
    cr_expect_eq(memcmp(r.src, r.dst, r.len), 0);
}

/* Done runs after rh_tp_get returned, a read of nothing included: the
 * caller (a pull) counts the read in flight after the call. */
Test(rma, a_reads_done_runs_after_rh_tp_get_returned)
{
    self_read(4096);
    self_read(0);
}
