/*
 * A rank's side of a request from outside the job (rayhpc-info through a
 * contact record): hostile requests (a wrong key among them) are dropped
 * before anything is queued,
 * and a good one is answered at the address it gave. Each test is a
 * singleton job of its own.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/completion.h"
#include "obs/jobcontact.h"
#include "obs/jobgather.h"
#include "rayhpc.h"
#include "transport/am.h"
#include "transport/transport.h"

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

TestSuite(jobguest, .init = setup, .fini = teardown, .timeout = 60);

/* A guest's request: wire header (flags, src) + rh_jg_ask_t, and a body of
 * rh_jg_guest_t, host_len bytes of host key, then addr. */
typedef struct req {
    uint8_t hdr[sizeof(rh_am_wire_hdr_t) + sizeof(rh_jg_ask_t)];
    uint8_t body[4096];
    size_t  body_len;
} req_t;

static void make(req_t *r, uint16_t id, uint8_t flags, uint32_t src,
                 uint32_t timeout_ms, const char *host, uint32_t host_len,
                 const void *addr, size_t addr_len)
{
    rh_jg_guest_t g = { .pid = (int32_t)getpid(), .host_len = host_len };
    rh_jg_ask_t a = { .seq = 7, .timeout_ms = timeout_ms };
    rh_am_wire_hdr_t w = { RH_AM_MAGIC, RH_AM_VERSION, flags, id, sizeof(a),
                           src, 0 };

    memcpy(g.key, rh_jobgather_key(), sizeof(g.key));
    memcpy(r->body, &g, sizeof(g));
    memcpy(r->body + sizeof(g), host, strlen(host));
    memcpy(r->body + sizeof(g) + strlen(host), addr, addr_len);
    r->body_len = sizeof(g) + strlen(host) + addr_len;
    w.data_len = (uint32_t)r->body_len;
    memcpy(r->hdr, &w, sizeof(w));
    memcpy(r->hdr + sizeof(w), &a, sizeof(a));
}

static rh_am_drop_t deliver(req_t *r, size_t body_len)
{
    rh_am_wire_hdr_t w;
    rh_am_raw_t m = { r->hdr, sizeof(r->hdr), r->body, body_len,
                      RH_AM_DROP_SHORT_HEADER };

    memcpy(&w, r->hdr, sizeof(w));
    w.data_len = (uint32_t)body_len;
    memcpy(r->hdr, &w, sizeof(w));
    cr_assert_eq(rh_am_deliver(&m, 1), RH_OK, "%s", rh_last_error());
    return m.reason;
}

Test(jobguest, hostile_requests_dropped)
{
    static const uint8_t addr[16] = { 1, 2, 3 };
    char host[384];
    req_t r;

    rh_jc_host_key(host, sizeof(host));
    make(&r, RH_JG_ID_GUEST, RH_AM_FLAG_GUEST, RH_AM_SRC_GUEST, 1000, host,
         (uint32_t)strlen(host), addr, sizeof(addr));
    r.body[3] ^= 1;
    cr_expect_eq(deliver(&r, r.body_len), RH_AM_DROP_REJECTED, "a wrong "
                 "key");
    r.body[3] ^= 1;
    cr_expect_eq(deliver(&r, 4), RH_AM_DROP_REJECTED, "shorter than its "
                 "head");
    cr_expect_eq(deliver(&r, sizeof(rh_jg_guest_t) + strlen(host)),
                 RH_AM_DROP_REJECTED, "no address");
    make(&r, RH_JG_ID_GUEST, RH_AM_FLAG_GUEST, RH_AM_SRC_GUEST, 1000, host,
         100000, addr, sizeof(addr));
    cr_expect_eq(deliver(&r, r.body_len), RH_AM_DROP_REJECTED,
                 "a host key longer than the body");
    make(&r, RH_JG_ID_GUEST, RH_AM_FLAG_GUEST, RH_AM_SRC_GUEST, 0, host,
         (uint32_t)strlen(host), addr, sizeof(addr));
    cr_expect_eq(deliver(&r, r.body_len), RH_AM_DROP_REJECTED, "timeout 0");
    make(&r, RH_JG_ID_GUEST, RH_AM_FLAG_GUEST, RH_AM_SRC_GUEST, 600001, host,
         (uint32_t)strlen(host), addr, sizeof(addr));
    cr_expect_eq(deliver(&r, r.body_len), RH_AM_DROP_REJECTED,
                 "timeout over 10 minutes");
    make(&r, RH_JG_ID_GUEST, 0, 0, 1000, host, (uint32_t)strlen(host), addr,
         sizeof(addr));
    cr_expect_eq(deliver(&r, r.body_len), RH_AM_DROP_REJECTED,
                 "a rank's message is no guest's");
    make(&r, RH_JG_ID_GUEST, RH_AM_FLAG_GUEST, 0, 1000, host,
         (uint32_t)strlen(host), addr, sizeof(addr));
    cr_expect_eq(deliver(&r, r.body_len), RH_AM_DROP_BAD_SOURCE,
                 "a guest naming a rank");
    make(&r, RH_JG_ID_PART, RH_AM_FLAG_GUEST, RH_AM_SRC_GUEST, 1000, host,
         (uint32_t)strlen(host), addr, sizeof(addr));
    cr_expect_eq(deliver(&r, r.body_len), RH_AM_DROP_BAD_SOURCE,
                 "an id not open to guests");
}

/* Given this rank's own address, the answer comes back here: a part for
 * the whole job (node -1), which a rank's gather handler refuses, so the
 * drop proves it arrived, framed as the guest reads it. */
Test(jobguest, answered_at_the_address_given)
{
    const void *addr;
    size_t addr_len;
    char host[384];
    req_t r;
    uint64_t before = atomic_load(&rh_am_stats()->dropped[RH_AM_DROP_REJECTED]);
    uint64_t deadline = rh_time_ns() + 30000000000ull;

    rh_tp_local_address(&addr, &addr_len);
    cr_assert_leq(addr_len + 400, sizeof(r.body));
    rh_jc_host_key(host, sizeof(host));
    make(&r, RH_JG_ID_GUEST, RH_AM_FLAG_GUEST, RH_AM_SRC_GUEST, 1000, host,
         (uint32_t)strlen(host), addr, addr_len);
    cr_assert_eq(deliver(&r, r.body_len), RH_AM_DROP_NUM);
    while (atomic_load(&rh_am_stats()->dropped[RH_AM_DROP_REJECTED]) ==
           before && rh_time_ns() < deadline) {
        usleep(10000);
    }
    cr_expect_eq(atomic_load(&rh_am_stats()->dropped[RH_AM_DROP_REJECTED]),
                 before + 1, "no answer came back");
}
