/* The shared hash map: lookups, growth and shrinking under load, removal
 * while iterating, draining, and random operations checked against a
 * plain array. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/hashmap.h"
#include "plasma/object_id.h"

/* xorshift: the same sequence every run. */
static uint64_t rnd_state = 88172645463325252ull;

static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

static int is_pow2(size_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

Test(hashmap, u64_keys_put_get_del)
{
    rh_hmap_t m = RH_HMAP_INITIALIZER(sizeof(uint64_t), sizeof(int));
    uint64_t k = 42;
    int added, *v, out;

    cr_assert_null(rh_hmap_get(&m, &k));
    cr_assert_eq(rh_hmap_del(&m, &k, NULL), 0);
    v = rh_hmap_put(&m, &k, &added);
    cr_assert_not_null(v);
    cr_assert_eq(added, 1);
    cr_assert_eq(*v, 0, "a new value starts zeroed");
    *v = 7;
    cr_assert_eq(rh_hmap_put(&m, &k, &added), v, "put finds, not adds");
    cr_assert_eq(added, 0);
    cr_assert_eq(*(int *)rh_hmap_get(&m, &k), 7);
    cr_assert_eq(rh_hmap_count(&m), 1);
    cr_assert_eq(rh_hmap_del(&m, &k, &out), 1);
    cr_assert_eq(out, 7);
    cr_assert_eq(rh_hmap_count(&m), 0);
    cr_assert_null(rh_hmap_get(&m, &k));
    rh_hmap_fini(&m);
}

Test(hashmap, object_id_keys_differ_in_every_field)
{
    rh_hmap_t m;
    rh_object_id_t ids[4] = {
        rh_object_id_make(1, 5, 0), rh_object_id_make(2, 5, 0),
        rh_object_id_make(1, 6, 0), rh_object_id_make(1, 5, 1)
    };

    rh_hmap_init(&m, sizeof(rh_object_id_t), sizeof(long));
    for (int i = 0; i < 4; i++) {
        *(long *)rh_hmap_put(&m, &ids[i], NULL) = i + 100;
    }
    cr_assert_eq(rh_hmap_count(&m), 4);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(*(long *)rh_hmap_get(&m, &ids[i]), i + 100);
    }
    rh_hmap_fini(&m);
    cr_assert_eq(rh_hmap_count(&m), 0);
    cr_assert_null(rh_hmap_get(&m, &ids[0]), "usable again after fini");
}

/* Keys whose width is not a multiple of 8 hash all their bytes and only
 * theirs. */
Test(hashmap, odd_width_keys_and_sets)
{
    rh_hmap_t m = RH_HMAP_INITIALIZER(12, 0);
    uint8_t key[12];

    for (int i = 0; i < 1000; i++) {
        memset(key, 0, sizeof(key));
        key[11] = (uint8_t)i;
        key[10] = (uint8_t)(i >> 8);
        cr_assert_not_null(rh_hmap_put(&m, key, NULL));
    }
    cr_assert_eq(rh_hmap_count(&m), 1000);
    memset(key, 0, sizeof(key));
    key[11] = 0xe7;
    key[10] = 0x03;   /* 999 */
    cr_assert_not_null(rh_hmap_get(&m, key));
    key[10] = 0x04;
    cr_assert_null(rh_hmap_get(&m, key));
    rh_hmap_fini(&m);
}

Test(hashmap, grows_under_load_and_shrinks_when_emptied)
{
    rh_hmap_t m = RH_HMAP_INITIALIZER(sizeof(uint64_t), sizeof(uint64_t));
    const uint64_t n = 1000000;
    size_t peak;

    for (uint64_t k = 1; k <= n; k++) {
        uint64_t *v = rh_hmap_put(&m, &k, NULL);

        cr_assert_not_null(v);
        *v = k * 3;
        cr_assert(is_pow2(m.cap));
        cr_assert_leq(4 * m.n, 3 * m.cap, "more than 3/4 full at %lu",
                      (unsigned long)k);
    }
    peak = m.cap;
    cr_assert_eq(rh_hmap_count(&m), n);
    for (uint64_t k = 1; k <= n; k++) {
        uint64_t *v = rh_hmap_get(&m, &k);

        cr_assert_not_null(v, "key %lu lost", (unsigned long)k);
        cr_assert_eq(*v, k * 3);
    }
    for (uint64_t k = 1; k <= n; k++) {
        cr_assert_eq(rh_hmap_del(&m, &k, NULL), 1);
        cr_assert(is_pow2(m.cap) || m.cap == 0);
    }
    cr_assert_eq(rh_hmap_count(&m), 0);
    cr_assert_lt(m.cap, peak / 1000, "the table kept %zu slots", m.cap);
    rh_hmap_fini(&m);
}

/* A small table filled and emptied in turn (a chain replica's writes held
 * until the tail acknowledges them) keeps its slots: it was freed once
 * empty and grown again, three allocations a turn. */
Test(hashmap, a_small_table_filled_and_emptied_in_turn_keeps_its_slots)
{
    rh_hmap_t m = RH_HMAP_INITIALIZER(sizeof(uint64_t), sizeof(uint64_t));
    const uint8_t *slots = NULL;
    uint64_t k = 0;

    for (int turn = 0; turn < 100; turn++) {
        for (int i = 0; i < 32; i++, k++) {
            cr_assert_not_null(rh_hmap_put(&m, &k, NULL));
        }
        if (turn == 0) {
            slots = m.slots;
        }
        cr_assert_eq(m.slots, slots, "turn %d grew a new table", turn);
        for (uint64_t j = k - 32; j < k; j++) {
            cr_assert_eq(rh_hmap_del(&m, &j, NULL), 1);
        }
        cr_assert_eq(m.slots, slots, "turn %d shrank the table", turn);
    }
    rh_hmap_fini(&m);
}

/* Room reserved for k new keys takes k puts without moving the table, at
 * every fill level (a chain member reserves before it passes a write on,
 * and its apply must not fail after). */
Test(hashmap, reserved_room_takes_that_many_new_keys_in_place)
{
    rh_hmap_t m = RH_HMAP_INITIALIZER(sizeof(uint64_t), sizeof(uint64_t));
    uint64_t k = 0;

    for (int round = 0; round < 200; round++) {
        size_t more = (size_t)(round % 7) + 1;
        const uint8_t *slots;

        cr_assert_eq(rh_hmap_reserve(&m, more), 1);
        cr_assert(is_pow2(m.cap));
        cr_assert_leq(4 * (m.n + more), 3 * m.cap);
        slots = m.slots;
        for (size_t i = 0; i < more; i++, k++) {
            int added = 0;

            cr_assert_not_null(rh_hmap_put(&m, &k, &added));
            cr_assert_eq(added, 1);
            cr_assert_eq(m.slots, slots, "put %lu moved the reserved table",
                         (unsigned long)k);
        }
    }
    cr_assert_eq(rh_hmap_count(&m), k);
    for (uint64_t j = 0; j < k; j++) {
        cr_assert_not_null(rh_hmap_get(&m, &j));
    }
    /* Room that is there already changes nothing. */
    {
        const uint8_t *slots = m.slots;
        size_t cap = m.cap;

        cr_assert_eq(rh_hmap_reserve(&m, 0), 1);
        cr_assert_eq(rh_hmap_reserve(&m, 1), 1);
        cr_assert_eq(m.slots, slots);
        cr_assert_eq(m.cap, cap);
    }
    rh_hmap_fini(&m);
}

Test(hashmap, random_operations_match_a_plain_array)
{
    enum { KEYS = 4096, OPS = 400000 };
    static uint64_t ref_val[KEYS];
    static uint8_t present[KEYS];
    rh_hmap_t m = RH_HMAP_INITIALIZER(sizeof(rh_object_id_t),
                                      sizeof(uint64_t));
    size_t count = 0;

    memset(present, 0, sizeof(present));
    for (int op = 0; op < OPS; op++) {
        uint64_t r = rnd();
        uint32_t k = (uint32_t)(r % KEYS);
        rh_object_id_t id = rh_object_id_make(k % 7, k, k % 3);
        uint64_t *v, out;
        int added;

        /* Phases that favour inserts, then removals: the table grows and
         * shrinks many times. */
        int insert_bias = (op / 50000) % 2 == 0 ? 70 : 30;

        switch ((r >> 32) % 100 < (uint64_t)insert_bias ? 0 :
                (r >> 40) % 4 == 0 ? 2 : 1) {
        case 0:
            v = rh_hmap_put(&m, &id, &added);
            cr_assert_not_null(v);
            cr_assert_eq(added, !present[k]);
            if (!present[k]) {
                count++;
            } else {
                cr_assert_eq(*v, ref_val[k]);
            }
            present[k] = 1;
            *v = ref_val[k] = r;
            break;
        case 1:
            cr_assert_eq(rh_hmap_del(&m, &id, &out), present[k]);
            if (present[k]) {
                cr_assert_eq(out, ref_val[k]);
                count--;
            }
            present[k] = 0;
            break;
        default:
            v = rh_hmap_get(&m, &id);
            cr_assert_eq(v != NULL, present[k]);
            if (v != NULL) {
                cr_assert_eq(*v, ref_val[k]);
            }
        }
        cr_assert_eq(rh_hmap_count(&m), count);
    }
    /* Every present key once, through the iterator. */
    {
        static uint8_t seen[KEYS];
        rh_hmap_iter_t it;
        void *key, *val;
        size_t n = 0;

        memset(seen, 0, sizeof(seen));
        rh_hmap_iter_init(&it, &m);
        while (rh_hmap_iter_next(&it, &key, &val)) {
            rh_object_id_t id;
            uint32_t k;

            memcpy(&id, key, sizeof(id));
            k = (uint32_t)rh_object_id_counter(id);
            cr_assert_lt(k, KEYS);
            cr_assert(present[k] && !seen[k]);
            cr_assert_eq(*(uint64_t *)val, ref_val[k]);
            seen[k] = 1;
            n++;
        }
        cr_assert_eq(n, count);
    }
    rh_hmap_fini(&m);
}

/* Removing the current entry while iterating: each entry is seen once,
 * those removed are gone and the others are all still there. Repeated
 * over many table shapes so that removals shift entries across the end
 * of the table. */
Test(hashmap, iteration_removing_the_current_entry_sees_each_once)
{
    enum { KEYS = 20000 };
    static uint8_t seen[KEYS];

    for (int round = 0; round < 200; round++) {
        rh_hmap_t m = RH_HMAP_INITIALIZER(sizeof(uint64_t), 0);
        size_t n = 1 + rnd() % 3000, kept = 0, visits = 0;
        rh_hmap_iter_t it;
        void *key;

        memset(seen, 0, sizeof(seen));
        for (size_t i = 0; i < n; i++) {
            uint64_t k = rnd() % KEYS;

            cr_assert_not_null(rh_hmap_put(&m, &k, NULL));
        }
        n = rh_hmap_count(&m);
        rh_hmap_iter_init(&it, &m);
        while (rh_hmap_iter_next(&it, &key, NULL)) {
            uint64_t k;

            memcpy(&k, key, sizeof(k));
            cr_assert_eq(seen[k], 0, "key %lu seen twice",
                         (unsigned long)k);
            seen[k] = 1;
            visits++;
            if (rnd() % 3 != 0) {
                rh_hmap_iter_del(&it);
            } else {
                seen[k] = 2;
                kept++;
            }
        }
        cr_assert_eq(visits, n);
        cr_assert_eq(rh_hmap_count(&m), kept);
        for (uint64_t k = 0; k < KEYS; k++) {
            cr_assert_eq(rh_hmap_get(&m, &k) != NULL, seen[k] == 2);
        }
        rh_hmap_fini(&m);
    }
}

Test(hashmap, pop_drains_every_entry_once)
{
    rh_hmap_t m = RH_HMAP_INITIALIZER(sizeof(uint64_t), sizeof(uint64_t));
    enum { N = 100000 };
    static uint8_t seen[N];
    uint64_t k, v;
    size_t n = 0;

    memset(seen, 0, sizeof(seen));
    for (k = 0; k < N; k++) {
        *(uint64_t *)rh_hmap_put(&m, &k, NULL) = k + 1;
    }
    while (rh_hmap_pop(&m, &k, &v)) {
        cr_assert_lt(k, N);
        cr_assert_eq(v, k + 1);
        cr_assert_eq(seen[k], 0);
        seen[k] = 1;
        n++;
    }
    cr_assert_eq(n, N);
    cr_assert_eq(rh_hmap_count(&m), 0);
    cr_assert_eq(rh_hmap_pop(&m, &k, &v), 0);
    rh_hmap_fini(&m);
}

/* Tables that only see inserts and removals (a queue of ids going
 * through) stay small and keep finding their keys: no tombstones pile up. */
Test(hashmap, a_sliding_window_of_keys_keeps_its_size)
{
    rh_hmap_t m = RH_HMAP_INITIALIZER(sizeof(uint64_t), sizeof(uint64_t));
    const uint64_t window = 1000;

    for (uint64_t k = 0; k < 2000000; k++) {
        cr_assert_not_null(rh_hmap_put(&m, &k, NULL));
        if (k >= window) {
            uint64_t old = k - window;

            cr_assert_eq(rh_hmap_del(&m, &old, NULL), 1);
        }
    }
    cr_assert_eq(rh_hmap_count(&m), window);
    cr_assert_leq(m.cap, 4 * window * 2);
    rh_hmap_fini(&m);
}
