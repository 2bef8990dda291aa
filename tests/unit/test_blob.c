#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "transport/blob.h"

Test(blob, entries_round_trip)
{
    rh_blob_t b;
    const void *val;
    uint32_t len;
    int32_t pid = 1234;

    rh_blob_init(&b);
    cr_assert_eq(rh_blob_add(&b, RH_BLOB_PID, &pid, sizeof(pid)), RH_OK);
    cr_assert_eq(rh_blob_add_str(&b, RH_BLOB_NODE, "vnode1"), RH_OK);
    cr_assert_eq(rh_blob_add(&b, RH_BLOB_UCX_ADDR, "", 0), RH_OK);
    cr_assert_eq(rh_blob_find(b.buf, b.len, RH_BLOB_NODE, &val, &len), RH_OK);
    cr_expect_str_eq(val, "vnode1");
    cr_expect_eq(len, 7);
    cr_assert_eq(rh_blob_find(b.buf, b.len, RH_BLOB_PID, &val, &len), RH_OK);
    cr_expect_eq(memcmp(val, &pid, sizeof(pid)), 0);
    cr_assert_eq(rh_blob_find(b.buf, b.len, RH_BLOB_UCX_ADDR, &val, &len),
                 RH_OK);
    cr_expect_eq(len, 0);
    cr_expect_eq(rh_blob_find(b.buf, b.len, RH_BLOB_TOPO, &val, &len),
                 RH_ERR_INVALID_PARAM, "absent key");
    rh_blob_free(&b);
}

Test(blob, unknown_keys_are_skipped)
{
    rh_blob_t b;
    const void *val;
    uint32_t len;

    rh_blob_init(&b);
    rh_blob_add(&b, 999, "future field", 12);
    rh_blob_add_str(&b, RH_BLOB_HOST, "h");
    cr_expect_eq(rh_blob_find(b.buf, b.len, RH_BLOB_HOST, &val, &len), RH_OK);
    rh_blob_free(&b);
}

Test(blob, damaged_blobs_are_reported_not_overread)
{
    rh_blob_t b;
    const void *val;
    uint32_t len;

    rh_blob_init(&b);
    rh_blob_add_str(&b, RH_BLOB_NODE, "abc");
    rh_blob_add_str(&b, RH_BLOB_HOST, "host");
    /* Every truncation is either a clean miss or MALFORMED. */
    for (size_t cut = 0; cut < b.len; cut++) {
        void *copy = malloc(cut ? cut : 1);
        rh_status_t st;

        memcpy(copy, b.buf, cut);
        st = rh_blob_find(copy, cut, RH_BLOB_HOST, &val, &len);
        cr_expect(st == RH_ERR_MALFORMED || st == RH_ERR_INVALID_PARAM,
                  "cut at %zu gave %d", cut, st);
        free(copy);
    }
    b.buf[0] ^= 0xff;
    cr_expect_eq(rh_blob_find(b.buf, b.len, RH_BLOB_HOST, &val, &len),
                 RH_ERR_MALFORMED, "bad magic");
    rh_blob_free(&b);
}

Test(blob, exchange_answer_is_split_per_rank)
{
    uint8_t *data = malloc(64);
    size_t off = 0;
    rh_blob_set_t set;
    const char *blobs[] = { "a", "", "ccc" };

    for (int r = 0; r < 3; r++) {
        uint32_t l = (uint32_t)strlen(blobs[r]);

        memcpy(data + off, &l, 4);
        memcpy(data + off + 4, blobs[r], l);
        off += 4 + l;
    }
    cr_assert_eq(rh_blob_set_parse(&set, data, off, 3), RH_OK);
    cr_expect_eq(set.len[0], 1);
    cr_expect_eq(set.len[1], 0);
    cr_expect_eq(set.len[2], 3);
    cr_expect_eq(memcmp(set.data + set.off[2], "ccc", 3), 0);
    rh_blob_set_free(&set);
}

Test(blob, short_exchange_answer_is_malformed)
{
    uint8_t *data = malloc(8);
    uint32_t l = 100;
    rh_blob_set_t set;

    memcpy(data, &l, 4);
    cr_expect_eq(rh_blob_set_parse(&set, data, 8, 1), RH_ERR_MALFORMED);
    data = malloc(4);
    l = 0;
    memcpy(data, &l, 4);
    cr_expect_eq(rh_blob_set_parse(&set, data, 4, 2), RH_ERR_MALFORMED,
                 "fewer records than ranks");
}
