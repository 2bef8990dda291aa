/*
 * The object table: open addressing with linear probing over a power-of-two
 * array of 64-byte entries in the segment.
 *
 * Writers (create, delete) hold the store lock; readers (get, release,
 * seal, contains) take none.
 *
 * Deletion leaves no tombstone: it empties the slot and moves later entries
 * of the same run back into the gap (Knuth's algorithm R), so probe lengths
 * never grow with churn and a table never fills up with dead slots. The
 * price is that entries move, which a lock-free reader must survive:
 *   - a reader that finds its id takes its reference with one
 *     compare-and-swap on the control word it read before the id; moving
 *     an entry out of a slot bumps that slot's generation (with the same
 *     kind of swap, which also carries the reference count over), so the
 *     reader's swap fails and it looks again;
 *   - a reader that finds nothing may have probed while an entry was in
 *     flight: the writer keeps the `moves` counter odd while it moves
 *     entries, and the reader looks again when the counter changed.
 * The id, offset and size fields are written with release semantics after
 * the swap that emptied the slot, so that a reader that sees a new value
 * also sees the emptied word, and its own swap fails.
 */
#include "plasma/store_internal.h"

#include <time.h>
#include <unistd.h>

#include "base/completion.h"

uint64_t rh_table_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline int rh_entry_holds(const rh_store_entry_t *e, rh_object_id_t id)
{
    return atomic_load_explicit(&e->id_lo, memory_order_acquire) == id.lo &&
           atomic_load_explicit(&e->id_hi, memory_order_acquire) == id.hi;
}

/* Whether slot e holds id, with *c its control word at the time: the word
 * is read again after the id, and as words never repeat (the generation
 * grows), an unchanged word means the id read belongs to it. Without this a
 * reader could pair the word of the slot's old entry with the id of one
 * just moved in, and act on the wrong state. */
static int rh_entry_matches(const rh_store_entry_t *e, rh_object_id_t id,
                            uint64_t *c)
{
    for (;;) {
        uint64_t again;

        if (rh_ctl_state(*c) == RH_SLOT_EMPTY || !rh_entry_holds(e, id)) {
            return 0;
        }
        again = atomic_load_explicit(&e->ctl, memory_order_acquire);
        if (again == *c) {
            return 1;
        }
        *c = again;
    }
}

/* One probe from the id's home slot to the first empty one. */
static rh_store_entry_t *rh_table_probe(const rh_store_t *s,
                                        rh_object_id_t id, uint64_t *ctl)
{
    uint64_t i = rh_store_id_hash(id.hi, id.lo) & s->mask;

    for (uint64_t n = 0; n <= s->mask; n++, i = (i + 1) & s->mask) {
        rh_store_entry_t *e = &s->table[i];
        uint64_t c = atomic_load_explicit(&e->ctl, memory_order_acquire);

        if (rh_ctl_state(c) == RH_SLOT_EMPTY) {
            return NULL;
        }
        if (rh_entry_matches(e, id, &c)) {
            *ctl = c;
            return e;
        }
    }
    return NULL;
}

rh_store_entry_t *rh_table_find_locked(const rh_store_t *s,
                                       rh_object_id_t id, uint64_t *ctl)
{
    return rh_table_probe(s, id, ctl);
}

/* A few lock-free tries; if moves keep overlapping them, one under the
 * lock, where nothing moves. */
rh_store_entry_t *rh_table_find(rh_store_t *s, rh_object_id_t id,
                                uint64_t *ctl)
{
    rh_store_entry_t *e;

    for (int tries = 0; tries < 16; tries++) {
        uint64_t before = atomic_load_explicit(&s->hdr->moves,
                                               memory_order_acquire);

        if (before & 1) {
            rh_cpu_relax();
            continue;
        }
        e = rh_table_probe(s, id, ctl);
        if (e != NULL ||
            atomic_load_explicit(&s->hdr->moves, memory_order_acquire) ==
                before) {
            return e;
        }
    }
    if (rh_store_lock(s) != RH_OK) {
        return NULL;
    }
    e = rh_table_probe(s, id, ctl);
    rh_store_unlock(s);
    return e;
}

/* Keeps 1/8 of the table empty so that probe sequences stay short and
 * always end. */
rh_store_entry_t *rh_table_slot_for(rh_store_t *s, rh_object_id_t id,
                                    rh_store_entry_t **existing)
{
    uint64_t i = rh_store_id_hash(id.hi, id.lo) & s->mask, cap = s->mask + 1;

    *existing = NULL;
    for (uint64_t n = 0; n <= s->mask; n++, i = (i + 1) & s->mask) {
        rh_store_entry_t *e = &s->table[i];
        uint64_t c = atomic_load_explicit(&e->ctl, memory_order_relaxed);

        if (rh_ctl_state(c) == RH_SLOT_EMPTY) {
            return s->hdr->live < cap - cap / 8 ? e : NULL;
        }
        if (rh_entry_holds(e, id)) {
            *existing = e;
            return NULL;
        }
    }
    return NULL;
}

/* Fills the empty slot e with an entry; `state` carries state, pending
 * flag and reference count. The slot keeps its generation. */
static void rh_table_fill(rh_store_entry_t *e, uint64_t hi, uint64_t lo,
                          uint64_t state)
{
    uint64_t gen = atomic_load_explicit(&e->ctl, memory_order_relaxed) &
                   RH_CTL_GEN_MASK;

    atomic_store_explicit(&e->id_hi, hi, memory_order_release);
    atomic_store_explicit(&e->id_lo, lo, memory_order_release);
    atomic_store_explicit(&e->ctl, gen | state, memory_order_release);
}

void rh_table_publish(rh_store_t *s, rh_store_entry_t *e, rh_object_id_t id,
                      uint64_t offset, uint64_t size, uint64_t alloc,
                      uint16_t klass)
{
    s->hdr->live++;
    atomic_store_explicit(&e->offset, offset, memory_order_release);
    atomic_store_explicit(&e->size, size, memory_order_release);
    atomic_store_explicit(&e->atime_ms, rh_table_now_ms(),
                          memory_order_relaxed);
    atomic_store_explicit(&e->creator_pid, (int32_t)getpid(),
                          memory_order_relaxed);
    e->alloc = alloc;
    e->klass = klass;
    e->flags = 0;
    rh_table_fill(e, id.hi, id.lo,
                  (uint64_t)RH_SLOT_CREATED << RH_CTL_STATE_SHIFT);
}

static inline uint64_t rh_ctl_emptied(uint64_t c)
{
    return (c & RH_CTL_GEN_MASK) + (1ull << RH_CTL_GEN_SHIFT);
}

/* Empties slot `from` and puts its entry in the empty slot `to`. The swap
 * that empties `from` takes the reference count as it is at that instant:
 * a get that raced us either got in before (and is carried over) or fails
 * its own swap and looks again. */
static void rh_table_move(rh_store_entry_t *to, rh_store_entry_t *from)
{
    uint64_t c = atomic_load_explicit(&from->ctl, memory_order_relaxed);

    while (!atomic_compare_exchange_weak_explicit(
               &from->ctl, &c, rh_ctl_emptied(c), memory_order_acq_rel,
               memory_order_relaxed)) {
    }
    atomic_store_explicit(&to->offset, atomic_load(&from->offset),
                          memory_order_release);
    atomic_store_explicit(&to->size, atomic_load(&from->size),
                          memory_order_release);
    atomic_store_explicit(&to->atime_ms, atomic_load(&from->atime_ms),
                          memory_order_relaxed);
    atomic_store_explicit(&to->creator_pid, atomic_load(&from->creator_pid),
                          memory_order_relaxed);
    to->alloc = from->alloc;
    to->klass = from->klass;
    to->flags = from->flags;
    rh_table_fill(to, atomic_load(&from->id_hi), atomic_load(&from->id_lo),
                  c & ~RH_CTL_GEN_MASK);
}

/* Whether home slot k lies in the cyclic range (gap, j]: then the entry at
 * j is reachable without passing the gap and stays. */
static inline int rh_between(uint64_t gap, uint64_t k, uint64_t j)
{
    return gap <= j ? gap < k && k <= j : gap < k || k <= j;
}

/* Closes the gap at slot `gap` by moving back the later entries of its run
 * that could no longer be reached. */
static void rh_table_close_gap(rh_store_t *s, uint64_t gap)
{
    uint64_t j = gap;

    for (;;) {
        rh_store_entry_t *e;
        uint64_t k;

        j = (j + 1) & s->mask;
        e = &s->table[j];
        if (rh_ctl_state(atomic_load_explicit(&e->ctl, memory_order_relaxed))
            == RH_SLOT_EMPTY) {
            return;
        }
        k = rh_store_id_hash(atomic_load(&e->id_hi), atomic_load(&e->id_lo)) &
            s->mask;
        if (!rh_between(gap, k, j)) {
            rh_table_move(&s->table[gap], e);
            gap = j;
        }
    }
}

/* The counter goes odd before the first slot changes and even after the
 * last. Every change of a slot is a release operation after the odd
 * increment, so a reader that sees any changed slot (acquire) also sees the
 * counter moved when it reads it again. */
static void rh_moves_begin(rh_store_hdr_t *h)
{
    atomic_fetch_add_explicit(&h->moves, 1, memory_order_acq_rel);
}

static void rh_moves_end(rh_store_hdr_t *h)
{
    atomic_fetch_add_explicit(&h->moves, 1, memory_order_release);
}

int rh_table_retire(rh_store_t *s, rh_store_entry_t *e, uint64_t expect)
{
    uint64_t i = (uint64_t)(e - s->table);
    rh_store_entry_t *next = &s->table[(i + 1) & s->mask];
    int run_goes_on = rh_ctl_state(atomic_load_explicit(
        &next->ctl, memory_order_relaxed)) != RH_SLOT_EMPTY;

    if (run_goes_on) {
        rh_moves_begin(s->hdr);
    }
    if (!atomic_compare_exchange_strong_explicit(
            &e->ctl, &expect, rh_ctl_emptied(expect), memory_order_acq_rel,
            memory_order_relaxed)) {
        if (run_goes_on) {
            rh_moves_end(s->hdr);
        }
        return 0;
    }
    s->hdr->live--;
    if (run_goes_on) {
        rh_table_close_gap(s, i);
        rh_moves_end(s->hdr);
    }
    return 1;
}

uint64_t rh_store_foreach(rh_store_t *s, uint64_t max,
                          void (*fn)(void *arg,
                                     const rh_store_object_info_t *o),
                          void *arg)
{
    uint64_t n = 0;

    if (rh_store_lock(s) != RH_OK) {
        return 0;
    }
    for (uint64_t i = 0; i <= s->mask; i++) {
        rh_store_entry_t *e = &s->table[i];
        uint64_t c = atomic_load_explicit(&e->ctl, memory_order_acquire);
        rh_store_object_info_t o;

        if (rh_ctl_state(c) == RH_SLOT_EMPTY) {
            continue;
        }
        if (max == 0 || n < max) {
            o.id.hi = atomic_load(&e->id_hi);
            o.id.lo = atomic_load(&e->id_lo);
            o.size = atomic_load(&e->size);
            o.refs = (uint32_t)(c & RH_CTL_RC_MASK);
            o.sealed = rh_ctl_state(c) == RH_SLOT_SEALED;
            o.pending = (c & RH_CTL_PENDING) != 0;
            o.creator_pid = atomic_load(&e->creator_pid);
            fn(arg, &o);
        }
        n++;
    }
    rh_store_unlock(s);
    return n;
}
