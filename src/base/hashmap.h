/*
 * One growable hash map for the whole library: keys and values of a fixed
 * width, chosen per map (a 64-bit counter, a 128-bit object id, an id and a
 * rank...), stored inline in the table.
 *
 * Open addressing with linear probing over a power-of-two table; removal
 * shifts the entries behind the hole back (no tombstones, so a table that
 * sees inserts and removals forever never needs a clean-up rebuild and a
 * lookup never walks dead slots). The table doubles when it would be more
 * than 3/4 full and halves when rh_hmap_del leaves it less than 1/8 full
 * (down to RH_HMAP_KEEP_BYTES of slots, below which it stays): both are
 * amortised O(1) (a resize of cap slots follows at least cap/8
 * operations), and a rank that once held a million entries does not keep
 * their table for days.
 *
 * Ownership: the map owns its table and the bytes of keys and values it
 * copied in, nothing else. A value that holds a pointer is the caller's to
 * free (iterate before rh_hmap_fini). A pointer into the table (what get,
 * put and the iterator return) is valid until the next put or del.
 *
 * No allocation per insert except on growth. Not thread-safe: callers keep
 * their own lock, as they did around their lists.
 *
 * The hash is keyed with a per-process random seed: ids and counters come
 * from other ranks, and a rank that sends ids chosen to collide should not
 * make every lookup walk a long run.
 */
#ifndef RH_BASE_HASHMAP_H
#define RH_BASE_HASHMAP_H

#include <stddef.h>
#include <stdint.h>

#define RH_HMAP_MIN_CAP 16
#define RH_HMAP_KEEP_BYTES 4096   /* a table this small is never shrunk */

typedef struct rh_hmap {
    uint8_t *slots;        /* cap slots: tag (8), key, value; NULL: empty */
    size_t   cap, n;
    size_t   pop_hint;     /* where rh_hmap_pop looks first */
    uint32_t key_size, val_size;
    uint32_t key_off, val_off, slot_size;
} rh_hmap_t;

#define RH_HMAP_ROUND8(x) (((x) + 7u) & ~7u)

/* A static map of keys of ksize bytes and values of vsize bytes (vsize may
 * be 0: a set); it allocates on its first put. */
#define RH_HMAP_INITIALIZER(ksize, vsize)                                    \
    { .slots = NULL, .cap = 0, .n = 0, .pop_hint = 0,                        \
      .key_size = (ksize), .val_size = (vsize), .key_off = 8,                \
      .val_off = 8 + RH_HMAP_ROUND8(ksize),                                  \
      .slot_size = 8 + RH_HMAP_ROUND8(ksize) + RH_HMAP_ROUND8(vsize) }

/* The same at run time (ksize at least 1). */
void rh_hmap_init(rh_hmap_t *m, size_t key_size, size_t val_size);

/* Frees the table (not what values point to); the map is empty and usable
 * again. */
void rh_hmap_fini(rh_hmap_t *m);

static inline size_t rh_hmap_count(const rh_hmap_t *m)
{
    return m->n;
}

/* The value of key, NULL when absent. */
void *rh_hmap_get(const rh_hmap_t *m, const void *key);

/* The value of key, added zeroed when absent (*added says which; may be
 * NULL); NULL when the table could not grow (nothing changed then). */
void *rh_hmap_put(rh_hmap_t *m, const void *key, int *added);

/* Grows the table now, if need be, so that the next `more` puts of new
 * keys can neither fail nor move it (no rh_hmap_del in between: that may
 * shrink it); 0 when it could not grow (nothing changed then). */
int rh_hmap_reserve(rh_hmap_t *m, size_t more);

/* Removes key, copying its value to val_out (may be NULL); 1 when it was
 * there. May shrink the table: not during an iteration (use
 * rh_hmap_iter_del there). */
int rh_hmap_del(rh_hmap_t *m, const void *key, void *val_out);

/* Removes some entry, copying its key and value out (either may be NULL);
 * 0 when the map is empty. Draining a map this way costs O(cap) in all,
 * not O(cap) per entry: the search starts where the last one stopped. */
int rh_hmap_pop(rh_hmap_t *m, void *key_out, void *val_out);

/*
 * Iteration: every entry present at the start and not removed before it is
 * reached is seen exactly once. The entry last returned may be removed
 * with rh_hmap_iter_del; nothing else may change the map meanwhile.
 *
 *   rh_hmap_iter_t it;
 *   rh_hmap_iter_init(&it, &m);
 *   while (rh_hmap_iter_next(&it, &key, &val)) {
 *       if (done(val)) rh_hmap_iter_del(&it);
 *   }
 */
typedef struct rh_hmap_iter {
    rh_hmap_t *m;
    size_t     start, step;   /* slot start + step is the current one */
    int        stay;          /* the current slot holds an unseen entry */
} rh_hmap_iter_t;

void rh_hmap_iter_init(rh_hmap_iter_t *it, rh_hmap_t *m);
int rh_hmap_iter_next(rh_hmap_iter_t *it, void **key, void **val);
void rh_hmap_iter_del(rh_hmap_iter_t *it);

#endif
