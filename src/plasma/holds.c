/*
 * Who holds what: a record per process in the segment, counting the
 * references each process took with rh_store_get, so that when a process
 * dies holding some, a survivor gives them back (rh_store_reap_holders).
 * Without it a rank killed while it read an object left that object's
 * count up for the life of the segment: never freed, never evictable.
 *
 * A record is an open-addressed table (linear probing, backward-shift
 * deletion) of (object id, count), with as many slots again and a half as
 * the object table: a process can never hold more distinct objects than the
 * store has, so a record never fills up and a get never fails for want of
 * room to note it.
 *
 * Only the threads of the record's process write it, under a spin lock of
 * the record's own (short sections, no system call). A reaper reads it only
 * once that process is gone, without the lock: the process may have died
 * anywhere, so every step leaves a state the reaper reads right:
 *   - a get counts in the object's control word first, then here; a release
 *     uncounts here first, then in the word. Dying between the two leaks
 *     one reference (as before this record existed), never gives back one
 *     that was not taken, which could free an object someone still reads;
 *   - a count changes with one store; a new slot gets its id before its
 *     count; a slot moved back into a gap gets id then count before the old
 *     slot's count goes to 0. Dying in the middle of a move leaves the same
 *     id twice with the same count: the reaper counts an id once.
 */
#include "plasma/store_internal.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/status.h"

#define RH_HOLDER_FREE    0
#define RH_HOLDER_REAPING (-1)

static inline rh_hold_slot_t *rh_holder_slots(rh_holder_t *h)
{
    return (rh_hold_slot_t *)(h + 1);
}

static inline rh_holder_t *rh_holder_at(const rh_store_t *s, uint32_t i)
{
    const rh_store_hdr_t *hdr = s->hdr;

    return (rh_holder_t *)rh_store_at(s, hdr->holders_off +
                                         (uint64_t)i * hdr->holder_bytes);
}

void rh_holds_layout(uint64_t table_cap, uint32_t procs, uint64_t *slots,
                     uint64_t *bytes)
{
    uint64_t n = table_cap + table_cap / 2;
    uint64_t one = (sizeof(rh_holder_t) + n * sizeof(rh_hold_slot_t) + 63) &
                   ~63ull;

    *slots = n;
    *bytes = one * procs;
}

/* ---- the record's table --------------------------------------------------- */

static inline uint64_t rh_holder_home(uint64_t hi, uint64_t lo, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)rh_store_id_hash(hi, lo) * n) >> 64);
}

static inline int rh_slot_is(const rh_hold_slot_t *sl, rh_object_id_t id)
{
    return atomic_load_explicit(&sl->id_lo, memory_order_relaxed) == id.lo &&
           atomic_load_explicit(&sl->id_hi, memory_order_relaxed) == id.hi;
}

static void rh_holder_lock(rh_holder_t *h)
{
    unsigned spins = 0;

    while (atomic_exchange_explicit(&h->lock, 1, memory_order_acquire)) {
        while (atomic_load_explicit(&h->lock, memory_order_relaxed)) {
            if (++spins % 64 == 0) {
                sched_yield();   /* oversubscribed cores: let it finish */
            }
        }
    }
}

static inline void rh_holder_unlock(rh_holder_t *h)
{
    atomic_store_explicit(&h->lock, 0, memory_order_release);
}

/* The slot of id, or the empty slot ending its run (*found 0). */
static rh_hold_slot_t *rh_holder_probe(rh_holder_t *h, uint64_t n,
                                       rh_object_id_t id, int *found)
{
    rh_hold_slot_t *slots = rh_holder_slots(h);
    uint64_t i = rh_holder_home(id.hi, id.lo, n);

    for (;;) {
        rh_hold_slot_t *sl = &slots[i];

        if (atomic_load_explicit(&sl->n, memory_order_relaxed) == 0) {
            *found = 0;
            return sl;
        }
        if (rh_slot_is(sl, id)) {
            *found = 1;
            return sl;
        }
        if (++i == n) {
            i = 0;
        }
    }
}

/* Knuth's algorithm R: moves later slots of the run back into the gap at
 * i, each one id first, count second, old count cleared last. */
static void rh_holder_close_gap(rh_holder_t *h, uint64_t n, uint64_t i)
{
    rh_hold_slot_t *slots = rh_holder_slots(h);
    uint64_t j = i;

    for (;;) {
        rh_hold_slot_t *sj;
        uint64_t home, hi, lo;

        if (++j == n) {
            j = 0;
        }
        sj = &slots[j];
        if (atomic_load_explicit(&sj->n, memory_order_relaxed) == 0) {
            return;
        }
        hi = atomic_load_explicit(&sj->id_hi, memory_order_relaxed);
        lo = atomic_load_explicit(&sj->id_lo, memory_order_relaxed);
        home = rh_holder_home(hi, lo, n);
        /* the slot stays when its home lies cyclically in (i, j] */
        if (i <= j ? (i < home && home <= j) : (i < home || home <= j)) {
            continue;
        }
        atomic_store_explicit(&slots[i].id_hi, hi, memory_order_relaxed);
        atomic_store_explicit(&slots[i].id_lo, lo, memory_order_relaxed);
        atomic_store_explicit(&slots[i].user,
                              atomic_load_explicit(&sj->user,
                                                   memory_order_relaxed),
                              memory_order_relaxed);
        atomic_store_explicit(&slots[i].n,
                              atomic_load_explicit(&sj->n,
                                                   memory_order_relaxed),
                              memory_order_release);
        atomic_store_explicit(&sj->n, 0, memory_order_release);
        i = j;
    }
}

/* One reference of slot sl goes; the user's never outnumber them all. */
static void rh_holder_dec(rh_holder_t *h, uint64_t n, rh_hold_slot_t *sl)
{
    uint32_t count = atomic_load_explicit(&sl->n, memory_order_relaxed);

    if (atomic_load_explicit(&sl->user, memory_order_relaxed) >= count) {
        atomic_store_explicit(&sl->user, count - 1, memory_order_relaxed);
    }
    atomic_store_explicit(&sl->n, count - 1, memory_order_release);
    if (count == 1) {
        rh_holder_close_gap(h, n, (uint64_t)(sl - rh_holder_slots(h)));
    }
}

/* Locks the handle's record and finds id's slot in it (or the empty one
 * ending its run, *found 0); NULL when the handle has no record. */
static rh_holder_t *rh_holder_find(rh_store_t *s, rh_object_id_t id,
                                   rh_hold_slot_t **sl, int *found)
{
    rh_holder_t *h = s->holder;

    if (h != NULL) {
        rh_holder_lock(h);
        *sl = rh_holder_probe(h, s->hdr->holder_slots, id, found);
    }
    return h;
}

void rh_holds_add(rh_store_t *s, rh_object_id_t id)
{
    rh_hold_slot_t *sl;
    int found;
    rh_holder_t *h = rh_holder_find(s, id, &sl, &found);

    if (h == NULL) {
        return;
    }
    if (found) {
        atomic_store_explicit(&sl->n,
                              atomic_load_explicit(&sl->n,
                                                   memory_order_relaxed) + 1,
                              memory_order_release);
    } else {
        atomic_store_explicit(&sl->id_hi, id.hi, memory_order_relaxed);
        atomic_store_explicit(&sl->id_lo, id.lo, memory_order_relaxed);
        atomic_store_explicit(&sl->user, 0, memory_order_relaxed);
        atomic_store_explicit(&sl->n, 1, memory_order_release);
    }
    rh_holder_unlock(h);
}

/* The reaper reads n alone: user only tells a user's release from the
 * runtime's own (a task's argument, a spill round), which share n. */
void rh_holds_mark_user(rh_store_t *s, rh_object_id_t id)
{
    rh_hold_slot_t *sl;
    int found;
    rh_holder_t *h = rh_holder_find(s, id, &sl, &found);

    if (h == NULL) {
        return;
    }
    if (found && atomic_load_explicit(&sl->user, memory_order_relaxed) <
                 atomic_load_explicit(&sl->n, memory_order_relaxed)) {
        atomic_fetch_add_explicit(&sl->user, 1, memory_order_relaxed);
    }
    rh_holder_unlock(h);
}

/* Drops one of id's references: any (user 0), or one of the user's. */
static int rh_holds_drop_one(rh_store_t *s, rh_object_id_t id, int user)
{
    rh_hold_slot_t *sl;
    int found;
    rh_holder_t *h = rh_holder_find(s, id, &sl, &found);

    if (h == NULL) {
        return -1;
    }
    if (found && user) {
        found = atomic_load_explicit(&sl->user, memory_order_relaxed) != 0;
        if (found) {
            atomic_fetch_sub_explicit(&sl->user, 1, memory_order_relaxed);
        }
    }
    if (found) {
        rh_holder_dec(h, s->hdr->holder_slots, sl);
    }
    rh_holder_unlock(h);
    return found;
}

int rh_holds_drop_user(rh_store_t *s, rh_object_id_t id)
{
    return rh_holds_drop_one(s, id, 1);
}

int rh_holds_drop(rh_store_t *s, rh_object_id_t id)
{
    return rh_holds_drop_one(s, id, 0) != 0;   /* no record: as dropped */
}

/* ---- claiming and reaping records ----------------------------------------- */

static void rh_holder_clear(const rh_store_t *s, rh_holder_t *h)
{
    memset(rh_holder_slots(h), 0,
           s->hdr->holder_slots * sizeof(rh_hold_slot_t));
    h->start = 0;
    h->pidns = 0;
    atomic_store_explicit(&h->lock, 0, memory_order_relaxed);
}

/* A held id as the reaper copies it out of a dead process's record. */
typedef struct rh_held {
    uint64_t hi, lo;
    uint32_t n;
} rh_held_t;

static int rh_held_cmp(const void *a, const void *b)
{
    const rh_held_t *x = a, *y = b;

    if (x->hi != y->hi) {
        return x->hi < y->hi ? -1 : 1;
    }
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Gives back every reference record h noted (each id once, see the top of
 * the file) and frees the record. The caller claimed it (REAPING). */
static uint64_t rh_holder_give_back(rh_store_t *s, rh_holder_t *h)
{
    uint64_t n = s->hdr->holder_slots, m = 0, given = 0;
    rh_hold_slot_t *slots = rh_holder_slots(h);
    rh_held_t *held = malloc((size_t)n * sizeof(*held));

    if (held == NULL) {
        rh_error("store %s: no memory to give back a dead process's "
                 "references; they stay held", s->name);
        rh_holder_clear(s, h);
        atomic_store_explicit(&h->pid, RH_HOLDER_FREE, memory_order_release);
        return 0;
    }
    for (uint64_t i = 0; i < n; i++) {
        uint32_t c = atomic_load_explicit(&slots[i].n, memory_order_acquire);

        if (c != 0) {
            held[m].hi = atomic_load_explicit(&slots[i].id_hi,
                                              memory_order_relaxed);
            held[m].lo = atomic_load_explicit(&slots[i].id_lo,
                                              memory_order_relaxed);
            held[m].n = c;
            m++;
        }
    }
    qsort(held, (size_t)m, sizeof(*held), rh_held_cmp);
    for (uint64_t i = 0; i < m; i++) {
        rh_object_id_t id = { held[i].hi, held[i].lo };

        if (i > 0 && rh_held_cmp(&held[i - 1], &held[i]) == 0) {
            continue;   /* a move cut short: the same id twice */
        }
        given += rh_store_unref(s, id, held[i].n);
    }
    free(held);
    rh_holder_clear(s, h);
    atomic_store_explicit(&h->pid, RH_HOLDER_FREE, memory_order_release);
    return given;
}

rh_status_t rh_store_reap_holders(rh_store_t *s, int *procs, uint64_t *refs)
{
    rh_segment_id_t self;
    int reaped = 0;
    uint64_t given = 0;

    if (s == NULL) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_store_reap_holders "
                            "needs a store");
    }
    rh_segment_self(&self);
    for (uint32_t i = 0; i < s->hdr->holders; i++) {
        rh_holder_t *h = rh_holder_at(s, i);
        int32_t pid = atomic_load_explicit(&h->pid, memory_order_acquire);

        if (pid <= 0 || h == s->holder || h->pidns != self.pidns ||
            !rh_segment_pid_gone(pid, h->start)) {
            continue;
        }
        if (!atomic_compare_exchange_strong_explicit(
                &h->pid, &pid, RH_HOLDER_REAPING, memory_order_acq_rel,
                memory_order_relaxed)) {
            continue;   /* another survivor reaps it */
        }
        given += rh_holder_give_back(s, h);
        /* what it was writing will never be sealed: readers waiting for
         * it must see it gone, not in the making for ever */
        (void)rh_store_abort_created_by(s, pid);
        reaped++;
        rh_debug("store %s: process %d died holding references; gave "
                 "them back", s->name, (int)pid);
    }
    if (procs != NULL) {
        *procs = reaped;
    }
    if (refs != NULL) {
        *refs = given;
    }
    return RH_OK;
}

rh_status_t rh_store_reap_process(rh_store_t *s, int32_t pid,
                                  uint64_t *refs)
{
    rh_segment_id_t self;
    uint64_t given = 0;

    if (refs != NULL) {
        *refs = 0;
    }
    if (s == NULL || pid <= 0) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_store_reap_process "
                            "needs a store and a pid (%d)", (int)pid);
    }
    rh_segment_self(&self);
    if (pid == self.pid) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "store %s: process %d "
                            "cannot reap itself", s->name, (int)pid);
    }
    for (uint32_t i = 0; i < s->hdr->holders; i++) {
        rh_holder_t *h = rh_holder_at(s, i);
        int32_t cur = pid;

        if (atomic_load_explicit(&h->pid, memory_order_acquire) != pid ||
            h->pidns != self.pidns) {
            continue;
        }
        if (!rh_segment_pid_gone(pid, h->start)) {
            return rh_error_set(RH_ERR_BUSY, "store %s: process %d still "
                                "runs: what it holds and writes stays its "
                                "own", s->name, (int)pid);
        }
        if (atomic_compare_exchange_strong_explicit(
                &h->pid, &cur, RH_HOLDER_REAPING, memory_order_acq_rel,
                memory_order_relaxed)) {
            given = rh_holder_give_back(s, h);
            (void)rh_store_abort_created_by(s, pid);
        }
        break;   /* else another survivor reaps it */
    }
    if (refs != NULL) {
        *refs = given;
    }
    return RH_OK;
}

rh_status_t rh_holds_claim(rh_store_t *s)
{
    rh_segment_id_t self;

    rh_segment_self(&self);
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t i = 0; i < s->hdr->holders; i++) {
            rh_holder_t *h = rh_holder_at(s, i);
            int32_t expect = RH_HOLDER_FREE;

            if (atomic_compare_exchange_strong_explicit(
                    &h->pid, &expect, self.pid, memory_order_acq_rel,
                    memory_order_relaxed)) {
                h->start = self.start;
                h->pidns = self.pidns;
                s->holder = h;
                return RH_OK;
            }
        }
        /* full: records of processes that died may be free to take */
        (void)rh_store_reap_holders(s, NULL, NULL);
    }
    return rh_error_set(RH_ERR_BUSY, "store %s: all %u process records are "
                        "taken by live processes (more processes attached "
                        "than the node has ranks)", s->name,
                        (unsigned)s->hdr->holders);
}

void rh_holds_leave(rh_store_t *s)
{
    rh_holder_t *h = s->holder;
    int32_t pid;

    if (h == NULL) {
        return;
    }
    s->holder = NULL;
    pid = atomic_load_explicit(&h->pid, memory_order_relaxed);
    /* what we still hold is given back as if we had died: closing the
     * store ends every read through it */
    if (atomic_compare_exchange_strong_explicit(
            &h->pid, &pid, RH_HOLDER_REAPING, memory_order_acq_rel,
            memory_order_relaxed)) {
        uint64_t given = rh_holder_give_back(s, h);

        if (given != 0) {
            rh_debug("store %s: %llu references still held at close were "
                     "given back", s->name, (unsigned long long)given);
        }
    }
}
