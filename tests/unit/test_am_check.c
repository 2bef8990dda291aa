/* Header validation of incoming active messages, without a network. */
#include <criterion/criterion.h>
#include <string.h>

#include "transport/am.h"

#define ID 40

static rh_status_t handler(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    (void)msg;
    return RH_OK;
}

static void setup(void)
{
    cr_assert_eq(rh_am_register(ID, 4, 8, handler, NULL), RH_OK);
}

/* A header of `uhdr` user bytes after a wire header. */
static size_t make(uint8_t *buf, uint16_t id, uint16_t hdr_len, uint32_t src,
                   uint64_t data_len, size_t uhdr)
{
    rh_am_wire_hdr_t w = { RH_AM_MAGIC, RH_AM_VERSION, 0, id, hdr_len, src,
                           (uint32_t)data_len };

    memcpy(buf, &w, sizeof(w));
    memset(buf + sizeof(w), 0xab, uhdr);
    return sizeof(w) + uhdr;
}

TestSuite(am_check, .init = setup);

Test(am_check, good_message_passes)
{
    uint8_t buf[64];
    size_t n = make(buf, ID, 4, 3, 100, 4);

    cr_expect_eq(rh_am_check(buf, n, 100, 4), RH_AM_DROP_NUM);
    n = make(buf, ID, 8, 0, 0, 8);
    cr_expect_eq(rh_am_check(buf, n, 0, 1), RH_AM_DROP_NUM);
}

Test(am_check, short_header)
{
    uint8_t buf[64];

    make(buf, ID, 4, 0, 0, 4);
    for (size_t n = 0; n < sizeof(rh_am_wire_hdr_t); n++) {
        cr_expect_eq(rh_am_check(buf, n, 0, 4), RH_AM_DROP_SHORT_HEADER);
    }
    cr_expect_eq(rh_am_check(NULL, 100, 0, 4), RH_AM_DROP_SHORT_HEADER);
}

Test(am_check, bad_magic_or_version)
{
    uint8_t buf[64];
    size_t n = make(buf, ID, 4, 0, 0, 4);

    buf[0] ^= 1;
    cr_expect_eq(rh_am_check(buf, n, 0, 4), RH_AM_DROP_BAD_MAGIC);
    buf[0] ^= 1;
    buf[offsetof(rh_am_wire_hdr_t, version)] = RH_AM_VERSION + 1;
    cr_expect_eq(rh_am_check(buf, n, 0, 4), RH_AM_DROP_BAD_MAGIC);
}

Test(am_check, unknown_ids)
{
    uint8_t buf[64];

    cr_expect_eq(rh_am_check(buf, make(buf, 0, 4, 0, 0, 4), 0, 4),
                 RH_AM_DROP_UNKNOWN_ID, "id 0 is never valid");
    cr_expect_eq(rh_am_check(buf, make(buf, ID + 1, 4, 0, 0, 4), 0, 4),
                 RH_AM_DROP_UNKNOWN_ID, "registered by nobody");
    cr_expect_eq(rh_am_check(buf, make(buf, RH_AM_ID_MAX, 4, 0, 0, 4), 0, 4),
                 RH_AM_DROP_UNKNOWN_ID, "past the table");
    cr_expect_eq(rh_am_check(buf, make(buf, 0xffff, 4, 0, 0, 4), 0, 4),
                 RH_AM_DROP_UNKNOWN_ID);
}

Test(am_check, source_out_of_range)
{
    uint8_t buf[64];
    size_t n = make(buf, ID, 4, 4, 0, 4);

    cr_expect_eq(rh_am_check(buf, n, 0, 4), RH_AM_DROP_BAD_SOURCE);
    cr_expect_eq(rh_am_check(buf, n, 0, 5), RH_AM_DROP_NUM);
}

Test(am_check, header_length_must_match_what_arrived)
{
    uint8_t buf[64];

    cr_expect_eq(rh_am_check(buf, make(buf, ID, 8, 0, 0, 4), 0, 4),
                 RH_AM_DROP_HDR_LENGTH, "claims more than arrived");
    cr_expect_eq(rh_am_check(buf, make(buf, ID, 4, 0, 0, 8), 0, 4),
                 RH_AM_DROP_HDR_LENGTH, "claims less than arrived");
}

Test(am_check, payload_length_must_match_what_arrived)
{
    uint8_t buf[64];
    size_t n = make(buf, ID, 4, 0, 1000, 4);

    cr_expect_eq(rh_am_check(buf, n, 8, 4), RH_AM_DROP_DATA_LENGTH);
    cr_expect_eq(rh_am_check(buf, n, 1001, 4), RH_AM_DROP_DATA_LENGTH);
    cr_expect_eq(rh_am_check(buf, n, 1000, 4), RH_AM_DROP_NUM);
}

Test(am_check, header_outside_handler_range)
{
    uint8_t buf[64];

    cr_expect_eq(rh_am_check(buf, make(buf, ID, 2, 0, 0, 2), 0, 4),
                 RH_AM_DROP_HANDLER_HDR);
    cr_expect_eq(rh_am_check(buf, make(buf, ID, 12, 0, 0, 12), 0, 4),
                 RH_AM_DROP_HANDLER_HDR);
}

Test(am_check, registration_refuses_bad_ids_and_ranges)
{
    cr_expect_eq(rh_am_register(0, 0, 0, handler, NULL),
                 RH_ERR_INVALID_PARAM);
    cr_expect_eq(rh_am_register(RH_AM_ID_MAX, 0, 0, handler, NULL),
                 RH_ERR_INVALID_PARAM);
    cr_expect_eq(rh_am_register(ID + 2, 8, 4, handler, NULL),
                 RH_ERR_INVALID_PARAM, "min above max");
    cr_expect_eq(rh_am_register(ID + 2, 0, RH_AM_MAX_HDR + 1, handler, NULL),
                 RH_ERR_INVALID_PARAM);
    cr_expect_eq(rh_am_register(ID + 2, 0, 0, NULL, NULL),
                 RH_ERR_INVALID_PARAM);
}

Test(am_check, sends_before_init_fail_cleanly)
{
    cr_expect_eq(rh_am_send(0, ID, "abcd", 4, NULL, 0, NULL, NULL),
                 RH_ERR_NOT_INITIALIZED);
}

Test(am_check, every_drop_reason_has_a_description)
{
    for (int r = 0; r < RH_AM_DROP_NUM; r++) {
        cr_expect_str_neq(rh_am_drop_string((rh_am_drop_t)r), "none");
    }
}

/* A message from outside the job reaches only the ids opened to guests,
 * and only with the guest source; a rank's message cannot claim it. */
Test(am_check, guests_only_where_opened)
{
    uint8_t buf[64];
    size_t n = make(buf, ID, 4, RH_AM_SRC_GUEST, 0, 4);

    cr_expect_eq(rh_am_check(buf, n, 0, 4), RH_AM_DROP_BAD_SOURCE,
                 "no flag: the guest source is out of range");
    buf[offsetof(rh_am_wire_hdr_t, flags)] = RH_AM_FLAG_GUEST;
    cr_expect_eq(rh_am_check(buf, n, 0, 4), RH_AM_DROP_BAD_SOURCE,
                 "an id not opened to guests");
    cr_assert_eq(rh_am_accept_guests(ID), RH_OK);
    cr_expect_eq(rh_am_check(buf, n, 0, 4), RH_AM_DROP_NUM);
    n = make(buf, ID, 4, 1, 0, 4);
    buf[offsetof(rh_am_wire_hdr_t, flags)] = RH_AM_FLAG_GUEST;
    cr_expect_eq(rh_am_check(buf, n, 0, 4), RH_AM_DROP_BAD_SOURCE,
                 "a guest names no rank");
    cr_expect_eq(rh_am_check(buf, make(buf, ID, 4, RH_AM_SRC_GUEST, 0, 4),
                             0, 4), RH_AM_DROP_BAD_SOURCE,
                 "without the flag");
    cr_expect_eq(rh_am_accept_guests(0), RH_ERR_INVALID_PARAM);
    cr_expect_eq(rh_am_accept_guests(RH_AM_ID_MAX), RH_ERR_INVALID_PARAM);
}
