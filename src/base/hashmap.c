#include "base/hashmap.h"

#include "base/hash.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base/hash.h"

/*
 * A slot is a 64-bit tag, the key, then the value, each 8-aligned. The tag
 * is the key's hash (never 0: 0 marks an empty slot), so probes compare
 * tags before keys and growth never hashes a key again. An entry's home
 * slot is tag & (cap - 1); the entries between an entry's home and its slot
 * are all occupied (linear probing's invariant, which removal keeps by
 * shifting entries back into the hole).
 */

static _Atomic uint64_t rh_hmap_seed;

static uint64_t rh_hmap_seed_get(void)
{
    uint64_t s = atomic_load_explicit(&rh_hmap_seed, memory_order_relaxed);
    uint64_t expect = 0;

    if (s != 0) {
        return s;
    }
    if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s)) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^
            (uint64_t)(uintptr_t)&ts ^ (uint64_t)ts.tv_sec;
    }
    s |= 1;
    if (!atomic_compare_exchange_strong(&rh_hmap_seed, &expect, s)) {
        s = expect;   /* another thread seeded first: one seed per process */
    }
    return s;
}

static uint64_t rh_hmap_hash(const rh_hmap_t *m, const void *key)
{
    const uint8_t *k = key;
    uint64_t h = rh_hmap_seed_get() ^ m->key_size;
    size_t i;

    for (i = 0; i + 8 <= m->key_size; i += 8) {
        uint64_t w;

        memcpy(&w, k + i, 8);
        h = rh_hash_mix64(h ^ w);
    }
    if (i < m->key_size) {
        uint64_t w = 0;

        memcpy(&w, k + i, m->key_size - i);
        h = rh_hash_mix64(h ^ w);
    }
    return h != 0 ? h : 1;
}

static inline uint8_t *rh_hmap_slot(const rh_hmap_t *m, size_t i)
{
    return m->slots + i * m->slot_size;
}

static inline uint64_t rh_hmap_tag(const rh_hmap_t *m, size_t i)
{
    uint64_t t;

    memcpy(&t, rh_hmap_slot(m, i), 8);
    return t;
}

static inline void rh_hmap_set_tag(rh_hmap_t *m, size_t i, uint64_t t)
{
    memcpy(rh_hmap_slot(m, i), &t, 8);
}

void rh_hmap_init(rh_hmap_t *m, size_t key_size, size_t val_size)
{
    rh_hmap_t init = RH_HMAP_INITIALIZER((uint32_t)key_size,
                                         (uint32_t)val_size);

    *m = init;
}

void rh_hmap_fini(rh_hmap_t *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->n = m->pop_hint = 0;
}

/* Slot of key (tag h), or the empty slot where it would go. */
/* Whether a stored key equals key: the usual widths (a counter, an id)
 * compared as words, the others with memcmp, which costs a call and a
 * length dispatch on every probe of the hot maps. */
static inline int rh_hmap_key_eq(const rh_hmap_t *m, const uint8_t *stored,
                                 const void *key)
{
    uint64_t a[2], b[2];

    switch (m->key_size) {
    case 8:
        memcpy(a, stored, 8);
        memcpy(b, key, 8);
        return a[0] == b[0];
    case 16:
        memcpy(a, stored, 16);
        memcpy(b, key, 16);
        return a[0] == b[0] && a[1] == b[1];
    default:
        return memcmp(stored, key, m->key_size) == 0;
    }
}

static size_t rh_hmap_find(const rh_hmap_t *m, const void *key, uint64_t h)
{
    size_t mask = m->cap - 1, i = (size_t)h & mask;

    for (;;) {
        uint64_t t = rh_hmap_tag(m, i);

        if (t == 0 || (t == h && rh_hmap_key_eq(m, rh_hmap_slot(m, i) +
                                                m->key_off, key))) {
            return i;
        }
        i = (i + 1) & mask;
    }
}

/* Moves every entry into a table of cap slots; 0 when out of memory (the
 * map is unchanged then). */
static int rh_hmap_resize(rh_hmap_t *m, size_t cap)
{
    uint8_t *old = m->slots;
    size_t old_cap = m->cap;

    m->slots = calloc(cap, m->slot_size);
    if (m->slots == NULL) {
        m->slots = old;
        return 0;
    }
    m->cap = cap;
    m->pop_hint = 0;
    for (size_t i = 0; i < old_cap; i++) {
        const uint8_t *s = old + i * m->slot_size;
        uint64_t t;
        size_t j;

        memcpy(&t, s, 8);
        if (t == 0) {
            continue;
        }
        for (j = (size_t)t & (cap - 1); rh_hmap_tag(m, j) != 0;
             j = (j + 1) & (cap - 1)) {
        }
        memcpy(rh_hmap_slot(m, j), s, m->slot_size);
    }
    free(old);
    return 1;
}

void *rh_hmap_get(const rh_hmap_t *m, const void *key)
{
    size_t i;

    if (m->n == 0) {
        return NULL;
    }
    i = rh_hmap_find(m, key, rh_hmap_hash(m, key));
    return rh_hmap_tag(m, i) != 0 ? rh_hmap_slot(m, i) + m->val_off : NULL;
}

void *rh_hmap_put(rh_hmap_t *m, const void *key, int *added)
{
    uint64_t h = rh_hmap_hash(m, key);
    size_t i = (size_t)h & (m->cap - 1);   /* empty: the home is free */
    uint8_t *s;

    if (m->n != 0) {
        i = rh_hmap_find(m, key, h);
        if (rh_hmap_tag(m, i) != 0) {
            if (added != NULL) {
                *added = 0;
            }
            return rh_hmap_slot(m, i) + m->val_off;
        }
    }
    /* At most 3/4 full: probes stay short and an empty slot always ends a
     * run (iteration starts from one). The empty slot found above stays
     * the key's unless the table moved. */
    if (4 * (m->n + 1) > 3 * m->cap) {
        if (!rh_hmap_resize(m, m->cap ? 2 * m->cap : RH_HMAP_MIN_CAP)) {
            return NULL;
        }
        i = rh_hmap_find(m, key, h);
    }
    s = rh_hmap_slot(m, i);
    memset(s, 0, m->slot_size);
    memcpy(s, &h, 8);
    memcpy(s + m->key_off, key, m->key_size);
    m->n++;
    if (added != NULL) {
        *added = 1;
    }
    return s + m->val_off;
}

int rh_hmap_reserve(rh_hmap_t *m, size_t more)
{
    size_t cap = m->cap ? m->cap : RH_HMAP_MIN_CAP;

    /* The bound rh_hmap_put grows at. */
    while (4 * (m->n + more) > 3 * cap) {
        cap *= 2;
    }
    return cap == m->cap || rh_hmap_resize(m, cap);
}

/* Empties slot i, shifting back the entries of its run that may move
 * closer to their home; entries only move from later slots of the run to
 * earlier ones (what the iterator relies on). */
static void rh_hmap_remove_at(rh_hmap_t *m, size_t i)
{
    size_t mask = m->cap - 1, j = i;

    for (;;) {
        uint64_t t;
        size_t home;

        j = (j + 1) & mask;
        t = rh_hmap_tag(m, j);
        if (t == 0) {
            break;
        }
        home = (size_t)t & mask;
        /* The entry at j may fill the hole at i unless its home lies
         * cyclically in (i, j]. */
        if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
            memcpy(rh_hmap_slot(m, i), rh_hmap_slot(m, j), m->slot_size);
            i = j;
        }
    }
    rh_hmap_set_tag(m, i, 0);
    m->n--;
}

/* Halves (or more) a table left less than 1/8 full, to about 1/4; keeps
 * the larger one when memory is short. A table of up to
 * RH_HMAP_KEEP_BYTES stays: one filled and emptied in turn (writes held
 * until acknowledged, requests in flight) would otherwise be freed and
 * grown again on every turn, for memory that does not matter. */
static void rh_hmap_maybe_shrink(rh_hmap_t *m)
{
    size_t cap = m->cap, floor = RH_HMAP_MIN_CAP;

    if (cap <= floor || 8 * m->n >= cap) {
        return;   /* every delete comes here: the floor only when it may */
    }
    while (2 * floor * m->slot_size <= RH_HMAP_KEEP_BYTES) {
        floor *= 2;
    }
    if (cap <= floor) {
        return;
    }
    while (cap > floor && 4 * m->n < cap / 2) {
        cap /= 2;
    }
    (void)rh_hmap_resize(m, cap);
}

int rh_hmap_del(rh_hmap_t *m, const void *key, void *val_out)
{
    size_t i;

    if (m->n == 0) {
        return 0;
    }
    i = rh_hmap_find(m, key, rh_hmap_hash(m, key));
    if (rh_hmap_tag(m, i) == 0) {
        return 0;
    }
    if (val_out != NULL) {
        memcpy(val_out, rh_hmap_slot(m, i) + m->val_off, m->val_size);
    }
    rh_hmap_remove_at(m, i);
    rh_hmap_maybe_shrink(m);
    return 1;
}

int rh_hmap_pop(rh_hmap_t *m, void *key_out, void *val_out)
{
    size_t i = m->pop_hint & (m->cap - 1);
    const uint8_t *s;

    if (m->n == 0) {
        return 0;
    }
    while (rh_hmap_tag(m, i) == 0) {
        i = (i + 1) & (m->cap - 1);
    }
    s = rh_hmap_slot(m, i);
    if (key_out != NULL) {
        memcpy(key_out, s + m->key_off, m->key_size);
    }
    if (val_out != NULL) {
        memcpy(val_out, s + m->val_off, m->val_size);
    }
    m->pop_hint = i;   /* an entry shifted back lands here, not before */
    rh_hmap_remove_at(m, i);
    rh_hmap_maybe_shrink(m);
    return 1;
}

void rh_hmap_iter_init(rh_hmap_iter_t *it, rh_hmap_t *m)
{
    it->m = m;
    it->start = 0;
    it->step = 0;
    it->stay = 0;
    /* Start on an empty slot: then no run wraps past the start, and the
     * entries that a removal shifts back all lie ahead. */
    if (m->n != 0) {
        while (rh_hmap_tag(m, it->start) != 0) {
            it->start++;
        }
    }
}

int rh_hmap_iter_next(rh_hmap_iter_t *it, void **key, void **val)
{
    rh_hmap_t *m = it->m;

    if (m->n == 0) {
        return 0;
    }
    if (!it->stay) {
        it->step++;
    }
    it->stay = 0;
    for (; it->step < m->cap; it->step++) {
        size_t i = (it->start + it->step) & (m->cap - 1);

        if (rh_hmap_tag(m, i) != 0) {
            if (key != NULL) {
                *key = rh_hmap_slot(m, i) + m->key_off;
            }
            if (val != NULL) {
                *val = rh_hmap_slot(m, i) + m->val_off;
            }
            return 1;
        }
    }
    return 0;
}

void rh_hmap_iter_del(rh_hmap_iter_t *it)
{
    rh_hmap_t *m = it->m;

    rh_hmap_remove_at(m, (it->start + it->step) & (m->cap - 1));
    it->stay = 1;   /* what shifted into this slot is not seen yet */
}
