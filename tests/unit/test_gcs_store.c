#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gcs/gcs_map.h"
#include "gcs/gcs_store.h"

static rh_gcs_store_t s;
static uint64_t lsn;

static void setup(void)
{
    rh_gcs_store_init(&s);
    lsn = 0;
}

static void teardown(void)
{
    rh_gcs_store_fini(&s);
}

TestSuite(gcs_store, .init = setup, .fini = teardown);

/* Applies the next write of the log. */
static rh_gcs_result_t apply(uint8_t op, uint8_t table, const char *key,
                             const char *value, uint32_t client, uint64_t seq,
                             uint64_t expect)
{
    rh_gcs_write_t w = { .op = op, .table = table,
                         .klen = (uint16_t)strlen(key),
                         .vlen = value != NULL ? (uint32_t)strlen(value) : 0,
                         .client = client, .seq = seq, .floor = 1,
                         .expect = expect, .lsn = ++lsn, .key = key,
                         .value = value };
    rh_gcs_result_t res;

    cr_assert_eq(rh_gcs_store_apply(&s, &w, &res), RH_OK);
    return res;
}

static const char *value_of(uint8_t table, const char *key)
{
    static char buf[256];
    const rh_gcs_entry_t *e = rh_gcs_store_get(&s, table, key, strlen(key));

    if (e == NULL) {
        return NULL;
    }
    memcpy(buf, rh_gcs_entry_value(e), e->vlen);
    buf[e->vlen] = '\0';
    return buf;
}

Test(gcs_store, put_then_get_returns_the_value_and_its_version)
{
    rh_gcs_result_t r = apply(RH_GCS_OP_PUT, RH_GCS_T_ACTOR, "a", "one", 0, 1,
                              0);

    cr_expect_eq(r.status, RH_OK);
    cr_expect_eq(r.version, 1);
    cr_expect_str_eq(value_of(RH_GCS_T_ACTOR, "a"), "one");
    r = apply(RH_GCS_OP_PUT, RH_GCS_T_ACTOR, "a", "two", 0, 2, 0);
    cr_expect_eq(r.version, 2, "a new write gives a new version");
    cr_expect_str_eq(value_of(RH_GCS_T_ACTOR, "a"), "two");
    cr_expect_eq(s.count[RH_GCS_T_ACTOR], 1);
}

Test(gcs_store, tables_are_separate_key_spaces)
{
    apply(RH_GCS_OP_PUT, RH_GCS_T_ACTOR, "k", "actor", 0, 1, 0);
    apply(RH_GCS_OP_PUT, RH_GCS_T_NODE, "k", "node", 0, 2, 0);
    cr_expect_str_eq(value_of(RH_GCS_T_ACTOR, "k"), "actor");
    cr_expect_str_eq(value_of(RH_GCS_T_NODE, "k"), "node");
    cr_expect_null(value_of(RH_GCS_T_JOB, "k"));
}

Test(gcs_store, delete_removes_and_a_second_delete_finds_nothing)
{
    apply(RH_GCS_OP_PUT, RH_GCS_T_TEST, "k", "v", 0, 1, 0);
    cr_expect_eq(apply(RH_GCS_OP_DEL, RH_GCS_T_TEST, "k", NULL, 0, 2,
                       0).status, RH_OK);
    cr_expect_null(value_of(RH_GCS_T_TEST, "k"));
    cr_expect_eq(apply(RH_GCS_OP_DEL, RH_GCS_T_TEST, "k", NULL, 0, 3,
                       0).status, RH_ERR_NOT_FOUND);
    cr_expect_eq(s.count[RH_GCS_T_TEST], 0);
    cr_expect_eq(s.bytes, 0);
}

Test(gcs_store, cas_applies_only_at_the_expected_version)
{
    rh_gcs_result_t r;

    r = apply(RH_GCS_OP_CAS, RH_GCS_T_ACTOR, "name", "rank3", 1, 1, 0);
    cr_expect_eq(r.status, RH_OK, "version 0: created when absent");
    r = apply(RH_GCS_OP_CAS, RH_GCS_T_ACTOR, "name", "rank4", 2, 1, 0);
    cr_expect_eq(r.status, RH_ERR_CONFLICT, "a second creator loses");
    cr_expect_eq(r.version, 1, "and hears the version that won");
    cr_expect_str_eq(value_of(RH_GCS_T_ACTOR, "name"), "rank3");
    r = apply(RH_GCS_OP_CAS, RH_GCS_T_ACTOR, "name", "rank5", 1, 2, 1);
    cr_expect_eq(r.status, RH_OK);
    cr_expect_str_eq(value_of(RH_GCS_T_ACTOR, "name"), "rank5");
}

Test(gcs_store, a_retried_write_is_applied_once_and_answered_as_first)
{
    rh_gcs_result_t first, again, seen;

    first = apply(RH_GCS_OP_CAS, RH_GCS_T_TEST, "x", "1", 7, 5, 0);
    apply(RH_GCS_OP_PUT, RH_GCS_T_TEST, "x", "2", 8, 1, 0);
    /* The same (client, seq) again, as a client retries it after a
     * reconfiguration: nothing changes, the first answer comes back. */
    cr_expect(rh_gcs_store_applied(&s, 7, 5, &seen));
    again = apply(RH_GCS_OP_CAS, RH_GCS_T_TEST, "x", "1", 7, 5, 0);
    cr_expect_eq(first.fresh, 1);
    cr_expect_eq(again.fresh, 0, "an echo: nothing to publish again");
    cr_expect_eq(again.status, first.status);
    cr_expect_eq(again.version, first.version);
    cr_expect_str_eq(value_of(RH_GCS_T_TEST, "x"), "2");
    cr_expect_eq(s.lsn, lsn, "the log still advances");
}

Test(gcs_store, answered_writes_are_forgotten_below_the_clients_floor)
{
    char key[32];
    rh_gcs_result_t res;

    for (uint64_t seq = 1; seq <= 20000; seq++) {
        rh_gcs_write_t w = { .op = RH_GCS_OP_PUT, .table = RH_GCS_T_TEST,
                             .client = 3, .seq = seq, .floor = seq,
                             .lsn = ++lsn, .key = key, .value = "v",
                             .vlen = 1 };

        w.klen = (uint16_t)snprintf(key, sizeof(key), "k%llu",
                                    (unsigned long long)(seq % 100));
        cr_assert_eq(rh_gcs_store_apply(&s, &w, &res), RH_OK);
    }
    cr_expect_lt(rh_hmap_count(&s.applied), 8192,
                 "results below the floor are pruned (%zu kept)",
                 rh_hmap_count(&s.applied));
    cr_expect(rh_gcs_store_applied(&s, 3, 5, &res),
              "a write below the floor still counts as applied");
    cr_expect(rh_gcs_store_applied(&s, 3, 20000, &res));
    cr_expect_not(rh_gcs_store_applied(&s, 3, 20001, &res));
    cr_expect_eq(s.count[RH_GCS_T_TEST], 100);
}

Test(gcs_store, colliding_keys_of_one_hash_bucket_stay_apart)
{
    char key[32];

    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        apply(RH_GCS_OP_PUT, RH_GCS_T_OBJECT, key, key, 1, (uint64_t)i + 1,
              0);
    }
    for (int i = 0; i < 5000; i += 2) {
        snprintf(key, sizeof(key), "key-%d", i);
        apply(RH_GCS_OP_DEL, RH_GCS_T_OBJECT, key, NULL, 1,
              (uint64_t)i + 10001, 0);
    }
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        if (i % 2) {
            cr_assert_str_eq(value_of(RH_GCS_T_OBJECT, key), key);
        } else {
            cr_assert_null(value_of(RH_GCS_T_OBJECT, key));
        }
    }
    cr_expect_eq(s.count[RH_GCS_T_OBJECT], 2500);
}

Test(gcs_store, a_bad_write_is_refused_and_changes_nothing)
{
    rh_gcs_write_t w = { .op = 9, .table = RH_GCS_T_TEST, .klen = 1,
                         .key = "k", .lsn = 1 };
    rh_gcs_result_t res;

    cr_expect_eq(rh_gcs_store_apply(&s, &w, &res), RH_ERR_MALFORMED);
    w.op = RH_GCS_OP_PUT;
    w.table = RH_GCS_NTABLES;
    cr_expect_eq(rh_gcs_store_apply(&s, &w, &res), RH_ERR_MALFORMED);
    cr_expect_eq(s.lsn, 0);
}

Test(gcs_hash, is_the_same_everywhere_and_depends_on_table_and_key)
{
    /* A fixed value: every rank must pick the same shard. */
    uint64_t h = rh_gcs_key_hash(RH_GCS_T_ACTOR, "counter", 7);

    cr_expect_eq(h, rh_gcs_key_hash(RH_GCS_T_ACTOR, "counter", 7));
    cr_expect_neq(h, rh_gcs_key_hash(RH_GCS_T_NODE, "counter", 7));
    cr_expect_neq(h, rh_gcs_key_hash(RH_GCS_T_ACTOR, "counteR", 7));
}

/* ---- the shard map ---------------------------------------------------------- */

Test(gcs_map, chains_span_distinct_nodes_first)
{
    /* 6 ranks on 3 nodes, two each: 0,1 on node 0; 2,3 on 1; 4,5 on 2. */
    int node_of[6] = { 0, 0, 1, 1, 2, 2 };
    rh_gcs_map_t m;

    cr_assert_eq(rh_gcs_map_build(&m, 6, node_of, 3, 0, 3), RH_OK);
    cr_expect_eq(m.nshards, 3, "one shard per node by default");
    cr_expect_eq(m.epoch, 1);
    for (uint32_t sh = 0; sh < m.nshards; sh++) {
        int seen[3] = { 0 };

        cr_assert_eq(m.len[sh], 3);
        for (uint32_t i = 0; i < 3; i++) {
            seen[node_of[m.chain[sh * 3 + i]]]++;
        }
        cr_expect(seen[0] == 1 && seen[1] == 1 && seen[2] == 1,
                  "shard %u's chain is on three nodes", sh);
    }
    cr_expect_neq(rh_gcs_map_head(&m, 0), rh_gcs_map_head(&m, 1));
    cr_expect_neq(rh_gcs_map_tail(&m, 1), rh_gcs_map_tail(&m, 2));
    rh_gcs_map_free(&m);
}

Test(gcs_map, replicas_are_capped_by_the_ranks)
{
    int node_of[2] = { 0, 0 };
    rh_gcs_map_t m;

    cr_assert_eq(rh_gcs_map_build(&m, 2, node_of, 1, 4, 3), RH_OK);
    cr_expect_eq(m.nshards, 4);
    cr_expect_eq(m.replicas, 2);
    for (uint32_t sh = 0; sh < 4; sh++) {
        cr_expect_neq(m.chain[sh * 2], m.chain[sh * 2 + 1],
                      "a chain never holds a rank twice");
    }
    rh_gcs_map_free(&m);
}

Test(gcs_map, positions_and_successors)
{
    int node_of[3] = { 0, 1, 2 };
    rh_gcs_map_t m;

    cr_assert_eq(rh_gcs_map_build(&m, 3, node_of, 3, 1, 3), RH_OK);
    cr_expect_eq(rh_gcs_map_pos(&m, 0, 0), 0);
    cr_expect_eq(rh_gcs_map_pos(&m, 0, 2), 2);
    cr_expect_eq(rh_gcs_map_next(&m, 0, 0), 1);
    cr_expect_eq(rh_gcs_map_next(&m, 0, 2), -1, "the tail has no successor");
    cr_expect_eq(rh_gcs_map_tail(&m, 0), 2);
    rh_gcs_map_free(&m);
}

Test(gcs_map, bad_input_is_refused_with_a_message)
{
    int node_of[2] = { 0, 5 };
    rh_gcs_map_t m;

    cr_expect_eq(rh_gcs_map_build(&m, 2, node_of, 2, 0, 3),
                 RH_ERR_INVALID_PARAM);
    cr_expect_eq(rh_gcs_map_build(&m, 2, node_of, 2, 0, 0),
                 RH_ERR_INVALID_PARAM);
    cr_expect_eq(rh_gcs_map_build(&m, 0, node_of, 2, 0, 3),
                 RH_ERR_INVALID_PARAM);
}

Test(gcs_map, dropping_a_rank_keeps_the_survivors_order)
{
    int node_of[4] = { 0, 1, 2, 3 };
    rh_gcs_map_t m;

    cr_assert_eq(rh_gcs_map_build(&m, 4, node_of, 4, 2, 3), RH_OK);
    /* shard 1: ranks 1, 2, 3 */
    cr_expect(rh_gcs_map_drop(&m, 2));
    cr_expect_eq(m.len[1], 2);
    cr_expect_eq(rh_gcs_map_head(&m, 1), 1);
    cr_expect_eq(rh_gcs_map_tail(&m, 1), 3);
    cr_expect_eq(m.dead[2], 1);
    cr_expect_not(rh_gcs_map_drop(&m, 2), "dropping twice changes nothing");
    cr_expect(rh_gcs_map_drop(&m, 1));
    cr_expect(rh_gcs_map_drop(&m, 3));
    cr_expect_eq(m.len[1], 0);
    cr_expect_eq(rh_gcs_map_head(&m, 1), -1, "a chain with no member left");
    cr_expect_eq(rh_gcs_map_tail(&m, 1), -1);
    rh_gcs_map_free(&m);
}

Test(gcs_map, a_configuration_travels_whole_and_bad_ones_are_refused)
{
    int node_of[3] = { 0, 1, 2 };
    rh_gcs_map_t m, n;
    uint8_t buf[1024];
    size_t len;

    memset(&n, 0, sizeof(n));
    cr_assert_eq(rh_gcs_map_build(&m, 3, node_of, 3, 3, 3), RH_OK);
    rh_gcs_map_drop(&m, 1);
    m.epoch = 7;
    len = rh_gcs_map_packed_size(&m);
    cr_assert_leq(len, sizeof(buf));
    rh_gcs_map_pack(&m, buf);
    cr_assert_eq(rh_gcs_map_unpack(&n, buf, len), RH_OK);
    cr_expect_eq(n.epoch, 7);
    cr_expect_eq(n.nshards, 3);
    cr_expect_eq(n.nmasters, 3);
    cr_expect_eq(n.dead[1], 1);
    for (uint32_t sh = 0; sh < 3; sh++) {
        cr_expect_eq(n.len[sh], 2);
        cr_expect_eq(rh_gcs_map_head(&n, sh), rh_gcs_map_head(&m, sh));
        cr_expect_eq(rh_gcs_map_tail(&n, sh), rh_gcs_map_tail(&m, sh));
    }
    /* Truncated, and a chain naming a rank out of range. */
    cr_expect_eq(rh_gcs_map_unpack(&n, buf, len - 1), RH_ERR_MALFORMED);
    m.chain[0] = 99;
    rh_gcs_map_pack(&m, buf);
    cr_expect_eq(rh_gcs_map_unpack(&n, buf, len), RH_ERR_MALFORMED);
    cr_expect_eq(n.epoch, 7, "a refused configuration changes nothing");
    rh_gcs_map_free(&m);
    rh_gcs_map_free(&n);
}

/* A proposal carries bytes after its configuration (the ranks it drops
 * for their silence): the prefix form says where the configuration ends,
 * the whole form refuses the extra bytes. */
Test(gcs_map, a_configuration_followed_by_more_says_where_it_ends)
{
    int node_of[3] = { 0, 1, 2 };
    rh_gcs_map_t m, n;
    uint8_t buf[1024];
    size_t len, used = 0;

    memset(&n, 0, sizeof(n));
    cr_assert_eq(rh_gcs_map_build(&m, 3, node_of, 3, 3, 3), RH_OK);
    m.epoch = 9;
    len = rh_gcs_map_packed_size(&m);
    cr_assert_leq(len + 3, sizeof(buf));
    rh_gcs_map_pack(&m, buf);
    memset(buf + len, 1, 3);
    cr_assert_eq(rh_gcs_map_unpack_prefix(&n, buf, len + 3, &used), RH_OK);
    cr_expect_eq(used, len);
    cr_expect_eq(n.epoch, 9);
    cr_expect_eq(rh_gcs_map_unpack(&n, buf, len + 3), RH_ERR_MALFORMED,
                 "a whole configuration with bytes after it");
    cr_expect_eq(rh_gcs_map_unpack_prefix(&n, buf, len - 1, &used),
                 RH_ERR_MALFORMED, "a truncated one");
    rh_gcs_map_free(&m);
    rh_gcs_map_free(&n);
}

/* A value rewritten with one of the same length replaces it in place (no
 * allocation); one of another length replaces the entry: either way the
 * value, the version and the books are the new write's. */
Test(gcs_store, a_rewrite_of_the_same_length_or_another_keeps_the_books)
{
    const rh_gcs_entry_t *e;

    apply(RH_GCS_OP_PUT, RH_GCS_T_NODE, "load/1", "beat 1", 0, 1, 0);
    apply(RH_GCS_OP_PUT, RH_GCS_T_NODE, "load/2", "beat 1", 0, 2, 0);
    cr_expect_eq(apply(RH_GCS_OP_PUT, RH_GCS_T_NODE, "load/1", "beat 2", 0,
                       3, 0).version, 3);
    cr_expect_str_eq(value_of(RH_GCS_T_NODE, "load/1"), "beat 2");
    cr_expect_str_eq(value_of(RH_GCS_T_NODE, "load/2"), "beat 1");
    e = rh_gcs_store_get(&s, RH_GCS_T_NODE, "load/1", 6);
    cr_assert_not_null(e);
    cr_expect_eq(e->version, 3);
    cr_expect_eq(s.count[RH_GCS_T_NODE], 2);
    cr_expect_eq(s.bytes, 2 * (6 + 6));
    cr_expect_eq(apply(RH_GCS_OP_CAS, RH_GCS_T_NODE, "load/1", "beat 10", 0,
                       4, 3).status, RH_OK);
    cr_expect_str_eq(value_of(RH_GCS_T_NODE, "load/1"), "beat 10");
    cr_expect_eq(s.bytes, 6 + 7 + 6 + 6);
    cr_expect_eq(apply(RH_GCS_OP_CAS, RH_GCS_T_NODE, "load/1", "beat 11", 0,
                       5, 3).status, RH_ERR_CONFLICT);
    cr_expect_str_eq(value_of(RH_GCS_T_NODE, "load/1"), "beat 10");
    cr_expect_eq(s.count[RH_GCS_T_NODE], 2);
}

/* After rh_gcs_store_reserve the apply takes nothing new from the heap: no
 * table moves, and a new record is the entry put aside (a chain member
 * passes the write on first, and then must hold it). Every kind of write,
 * new keys and clients through the tables' growth among them. */
static void apply_reserved(uint8_t op, const char *key, const char *value,
                           uint32_t client, uint64_t seq, uint64_t expect,
                           int new_record)
{
    rh_gcs_write_t w = { .op = op, .table = RH_GCS_T_JOB,
                         .klen = (uint16_t)strlen(key),
                         .vlen = value != NULL ? (uint32_t)strlen(value) : 0,
                         .client = client, .seq = seq, .floor = 1,
                         .expect = expect, .lsn = lsn + 1, .key = key,
                         .value = value };
    const uint8_t *index, *applied, *clients;
    const rh_gcs_entry_t *spare;
    rh_gcs_result_t res;

    cr_assert_eq(rh_gcs_store_reserve(&s, &w), RH_OK);
    cr_assert_not_null(s.spare);
    index = s.index.slots;
    applied = s.applied.slots;
    clients = s.clients.slots;
    spare = s.spare;
    cr_assert_eq(rh_gcs_store_apply(&s, &w, &res), RH_OK);
    lsn++;
    cr_assert_eq(s.index.slots, index, "write %lu grew the index",
                 (unsigned long)lsn);
    cr_assert_eq(s.applied.slots, applied);
    cr_assert_eq(s.clients.slots, clients);
    if (new_record) {
        cr_assert_null(s.spare, "write %lu left its entry aside",
                       (unsigned long)lsn);
    }
    if (new_record && value != NULL) {   /* a tombstone is not read */
        cr_assert_eq((const void *)rh_gcs_store_get(&s, RH_GCS_T_JOB, key,
                                                    strlen(key)),
                     (const void *)spare);
    }
}

Test(gcs_store, a_reserved_write_is_applied_in_the_room_put_aside)
{
    char key[32], value[200];
    uint64_t seq = 1;

    for (int i = 0; i < 300; i++) {
        snprintf(key, sizeof(key), "key/%d", i);
        snprintf(value, sizeof(value), "%0*d", 1 + i % 150, i);
        /* A new key from a new client, then the same length in place, then
         * another length (a new record). */
        apply_reserved(RH_GCS_OP_PUT, key, value, (uint32_t)i, 1, 0, 1);
        apply_reserved(RH_GCS_OP_PUT, key, value, 1000, seq++, 0, 0);
        value[0] = '\0';
        snprintf(value, sizeof(value), "%0*d", 2 + i % 170, i);
        apply_reserved(RH_GCS_OP_CAS, key, value, 1000, seq++, lsn, 1);
    }
    cr_expect_eq(s.count[RH_GCS_T_JOB], 300);
    cr_expect_str_eq(value_of(RH_GCS_T_JOB, "key/7"), "000000007");
    /* Stamped: a new key's tombstone, then a write over it. */
    apply_reserved(RH_GCS_OP_SDEL, "spill/1", NULL, 1000, seq++, 4, 1);
    cr_expect_null(value_of(RH_GCS_T_JOB, "spill/1"));
    apply_reserved(RH_GCS_OP_SPUT, "spill/1", "there", 1000, seq++, 5, 1);
    cr_expect_str_eq(value_of(RH_GCS_T_JOB, "spill/1"), "there");
    apply_reserved(RH_GCS_OP_DEL, "key/3", NULL, 1000, seq++, 0, 0);
    cr_expect_null(value_of(RH_GCS_T_JOB, "key/3"));
}

/* The tail answers a PUT before it applies it: the result foretold
 * without a look at the key is the one the apply gives, for a new key, a
 * rewrite, a retry and a write below its client's floor. */
Test(gcs_store, a_puts_result_is_known_before_it_is_applied)
{
    struct { const char *key; uint32_t client; uint64_t seq, floor; } ws[] = {
        { "a", 1, 1, 1 }, { "b", 1, 2, 1 }, { "a", 2, 1, 1 },
        { "a", 1, 2, 1 },   /* a retry: its first result */
        { "c", 1, 3, 3 }, { "b", 1, 1, 3 },   /* below the floor */
        { "a", 1, 4, 4 }, { "a", 1, 4, 4 },
    };

    for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++) {
        rh_gcs_write_t w = { .op = RH_GCS_OP_PUT, .table = RH_GCS_T_JOB,
                             .klen = 1, .vlen = 2, .client = ws[i].client,
                             .seq = ws[i].seq, .floor = ws[i].floor,
                             .lsn = ++lsn, .key = ws[i].key, .value = "vv" };
        rh_gcs_result_t told, got;

        rh_gcs_store_put_result(&s, &w, &told);
        cr_assert_eq(rh_gcs_store_apply(&s, &w, &got), RH_OK);
        cr_expect_eq(told.version, got.version, "write %zu", i);
        cr_expect_eq(told.status, got.status, "write %zu", i);
        cr_expect_eq(told.fresh, got.fresh, "write %zu", i);
    }
    /* The retries were answered as first, not applied again. */
    cr_expect_eq(rh_gcs_store_get(&s, RH_GCS_T_JOB, "a", 1)->version, 7);
    cr_expect_eq(s.count[RH_GCS_T_JOB], 3);
}

/* A client's writes may reach the head out of their order (two threads
 * of one rank): a number below the highest applied is looked up, not
 * taken for new or for seen; one above it is new. */
Test(gcs_store, writes_of_a_client_out_of_order_are_told_apart)
{
    rh_gcs_result_t res;

    cr_expect_eq(rh_gcs_store_applied(&s, 3, 1, &res), 0);
    apply(RH_GCS_OP_PUT, RH_GCS_T_JOB, "x", "5", 3, 5, 0);
    cr_expect_eq(rh_gcs_store_applied(&s, 3, 5, &res), 1);
    cr_expect_eq(res.version, 1);
    cr_expect_eq(rh_gcs_store_applied(&s, 3, 3, &res), 0);
    cr_expect_eq(rh_gcs_store_applied(&s, 3, 6, &res), 0);
    cr_expect_eq(rh_gcs_store_applied(&s, 4, 5, &res), 0, "another client");
    cr_expect_eq(apply(RH_GCS_OP_PUT, RH_GCS_T_JOB, "x", "3", 3, 3, 0).fresh,
                 1);
    cr_expect_str_eq(value_of(RH_GCS_T_JOB, "x"), "3");
    cr_expect_eq(rh_gcs_store_applied(&s, 3, 3, &res), 1);
    cr_expect_eq(res.version, 2);
    cr_expect_eq(rh_gcs_store_applied(&s, 3, 4, &res), 0);
    cr_expect_eq(apply(RH_GCS_OP_PUT, RH_GCS_T_JOB, "x", "5", 3, 5, 0).fresh,
                 0, "a retry is answered, not applied");
    cr_expect_str_eq(value_of(RH_GCS_T_JOB, "x"), "3");
}

/* A large record's room is not kept for a small one, nor a small one's
 * used for a large one. */
Test(gcs_store, the_room_put_aside_fits_the_write)
{
    static char big[4096];
    rh_gcs_write_t w = { .op = RH_GCS_OP_PUT, .table = RH_GCS_T_JOB,
                         .klen = 3, .vlen = sizeof(big), .client = 1,
                         .seq = 1, .floor = 1, .lsn = 1, .key = "big",
                         .value = big };

    cr_assert_eq(rh_gcs_store_reserve(&s, &w), RH_OK);
    cr_assert_geq(s.spare_bytes, 3 + sizeof(big));
    w.vlen = 5;
    cr_assert_eq(rh_gcs_store_reserve(&s, &w), RH_OK);
    cr_assert_geq(s.spare_bytes, 8);
    cr_assert_lt(s.spare_bytes, 100);
    w.vlen = 100;
    cr_assert_eq(rh_gcs_store_reserve(&s, &w), RH_OK);
    cr_assert_geq(s.spare_bytes, 103);
}

/* Stamped writes and deletes of one key, from processes that nothing
 * orders: every order of arrival of spill 3, its delete, spill 5 (and its
 * delete) ends as the last of them said. */
Test(gcs_store, stamped_writes_and_deletes_end_right_in_every_order)
{
    static const struct { uint8_t op; uint64_t stamp; } ev[4] = {
        { RH_GCS_OP_SPUT, 3 }, { RH_GCS_OP_SDEL, 3 },
        { RH_GCS_OP_SPUT, 5 }, { RH_GCS_OP_SDEL, 5 } };
    static const int perm[24][4] = {
        {0,1,2,3},{0,1,3,2},{0,2,1,3},{0,2,3,1},{0,3,1,2},{0,3,2,1},
        {1,0,2,3},{1,0,3,2},{1,2,0,3},{1,2,3,0},{1,3,0,2},{1,3,2,0},
        {2,0,1,3},{2,0,3,1},{2,1,0,3},{2,1,3,0},{2,3,0,1},{2,3,1,0},
        {3,0,1,2},{3,0,2,1},{3,1,0,2},{3,1,2,0},{3,2,0,1},{3,2,1,0} };

    uint64_t seq = 1;   /* one client: each write a new number */

    for (int n = 3; n <= 4; n++) {
        for (int p = 0; p < 24; p++) {
            char key[32];

            snprintf(key, sizeof(key), "spill/%d/%d", n, p);
            for (int i = 0; i < 4; i++) {
                int k = perm[p][i];

                if (k < n) {
                    apply(ev[k].op, RH_GCS_T_OBJECT, key,
                          ev[k].op == RH_GCS_OP_SPUT ?
                          (ev[k].stamp == 3 ? "three" : "five") : NULL,
                          9, seq++, ev[k].stamp);
                }
            }
            if (n == 3) {
                cr_expect_str_eq(value_of(RH_GCS_T_OBJECT, key), "five",
                                 "order %d %d %d %d", perm[p][0], perm[p][1],
                                 perm[p][2], perm[p][3]);
            } else {
                cr_expect_null(value_of(RH_GCS_T_OBJECT, key),
                               "order %d %d %d %d", perm[p][0], perm[p][1],
                               perm[p][2], perm[p][3]);
            }
        }
    }
}

Test(gcs_store, a_stamped_delete_before_its_write_drops_it_and_keeps_books)
{
    rh_gcs_result_t r;

    r = apply(RH_GCS_OP_SDEL, RH_GCS_T_OBJECT, "o", NULL, 1, 1, 7);
    cr_expect_eq(r.status, RH_ERR_NOT_FOUND, "nothing visible changed");
    cr_expect_eq(s.tombs, 1);
    cr_expect_eq(s.count[RH_GCS_T_OBJECT], 0, "a tombstone is not a key");
    r = apply(RH_GCS_OP_SPUT, RH_GCS_T_OBJECT, "o", "late", 2, 1, 7);
    cr_expect_eq(r.status, RH_ERR_CONFLICT, "the overtaken write is dropped");
    cr_expect_null(value_of(RH_GCS_T_OBJECT, "o"));
    r = apply(RH_GCS_OP_SPUT, RH_GCS_T_OBJECT, "o", "again", 2, 2, 8);
    cr_expect_eq(r.status, RH_OK, "a later spill writes");
    cr_expect_str_eq(value_of(RH_GCS_T_OBJECT, "o"), "again");
    cr_expect_eq(s.tombs, 0);
    cr_expect_eq(s.count[RH_GCS_T_OBJECT], 1);
    cr_expect_eq(s.bytes, strlen("o") + strlen("again"));
    r = apply(RH_GCS_OP_SDEL, RH_GCS_T_OBJECT, "o", NULL, 1, 2, 8);
    cr_expect_eq(r.status, RH_OK);
    cr_expect_eq(s.bytes, 0);
    cr_expect_eq(s.count[RH_GCS_T_OBJECT], 0);
    cr_expect_eq(s.tombs, 1);
    /* A plain put replaces a tombstone. */
    apply(RH_GCS_OP_PUT, RH_GCS_T_OBJECT, "o", "plain", 3, 1, 0);
    cr_expect_str_eq(value_of(RH_GCS_T_OBJECT, "o"), "plain");
    cr_expect_eq(s.tombs, 0);
}

/* A chain that lost a member takes a live rank from a node it does not
 * use; the joiner travels with the configuration and goes when it dies. */
Test(gcs_map, a_short_chain_picks_a_joiner_on_another_node)
{
    int node_of[5] = { 0, 1, 2, 3, 0 };
    uint8_t alive[5] = { 1, 1, 1, 1, 1 };
    rh_gcs_map_t m, n;
    uint8_t buf[1024];

    memset(&n, 0, sizeof(n));
    cr_assert_eq(rh_gcs_map_build(&m, 5, node_of, 4, 1, 3), RH_OK);
    /* order 0 1 2 3 4: shard 0 is 0 1 2 */
    cr_expect_eq(rh_gcs_map_pick_joiner(&m, 0, alive, node_of), -1,
                 "a full chain takes nobody");
    rh_gcs_map_drop(&m, 1);
    cr_expect_eq(rh_gcs_map_pick_joiner(&m, 0, alive, node_of), 3,
                 "rank 3's node holds none of the chain (rank 4 shares "
                 "rank 0's)");
    alive[3] = 0;
    cr_expect_eq(rh_gcs_map_pick_joiner(&m, 0, alive, node_of), 4);
    m.joining[0] = 4;
    cr_expect_eq(rh_gcs_map_pick_joiner(&m, 0, alive, node_of), -1,
                 "one joiner at a time");
    cr_assert_leq(rh_gcs_map_packed_size(&m), sizeof(buf));
    rh_gcs_map_pack(&m, buf);
    cr_assert_eq(rh_gcs_map_unpack(&n, buf, rh_gcs_map_packed_size(&m)),
                 RH_OK);
    cr_expect_eq(n.joining[0], 4);
    m.joining[0] = 2;   /* a member cannot join its own chain */
    rh_gcs_map_pack(&m, buf);
    cr_expect_eq(rh_gcs_map_unpack(&n, buf, rh_gcs_map_packed_size(&m)),
                 RH_ERR_MALFORMED);
    m.joining[0] = 4;
    cr_expect_eq(rh_gcs_map_drop(&m, 4), 1);
    cr_expect_eq(m.joining[0], -1, "a joiner that died is dropped");
    rh_gcs_map_free(&m);
    rh_gcs_map_free(&n);
}

/* A joining replica gets the whole store: values, versions, tombstones,
 * the log index, and what each client's writes returned (a retry after
 * the move is still answered with its first result). */
Test(gcs_store, the_state_moves_whole_to_a_joining_replica)
{
    rh_gcs_store_t t;
    rh_gcs_result_t res;
    const rh_gcs_entry_t *e;
    size_t len;
    void *buf;

    apply(RH_GCS_OP_PUT, RH_GCS_T_ACTOR, "a", "one", 4, 1, 0);
    apply(RH_GCS_OP_PUT, RH_GCS_T_NODE, "b", "two", 4, 2, 0);
    apply(RH_GCS_OP_SDEL, RH_GCS_T_OBJECT, "spill/x", NULL, 5, 1, 9);
    len = rh_gcs_store_pack(&s, NULL);
    buf = malloc(len);
    cr_assert_not_null(buf);
    cr_expect_eq(rh_gcs_store_pack(&s, buf), len);
    rh_gcs_store_init(&t);
    cr_assert_eq(rh_gcs_store_unpack(&t, buf, len), RH_OK);
    cr_expect_eq(t.lsn, 3);
    cr_expect_eq(t.bytes, s.bytes);
    cr_expect_eq(t.tombs, 1);
    cr_expect_eq(t.count[RH_GCS_T_ACTOR], 1);
    e = rh_gcs_store_get(&t, RH_GCS_T_NODE, "b", 1);
    cr_assert_not_null(e);
    cr_expect_eq(e->version, 2);
    cr_expect_eq(memcmp(rh_gcs_entry_value(e), "two", 3), 0);
    cr_expect_eq(rh_gcs_store_applied(&t, 4, 2, &res), 1);
    cr_expect_eq(res.version, 2);
    cr_expect_eq(rh_gcs_store_unpack(&t, buf, len - 1), RH_ERR_MALFORMED);
    cr_expect_eq(t.lsn, 0, "a state that does not parse leaves it empty");
    rh_gcs_store_fini(&t);
    free(buf);
}
