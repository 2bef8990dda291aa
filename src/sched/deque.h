/*
 * Chase-Lev work-stealing deque of pointers (Chase and Lev, SPAA 2005), with
 * the C11 memory orderings of Le, Pop, Cohen and Zappa Nardelli, "Correct and
 * Efficient Work-Stealing for Weak Memory Models" (PPoPP 2013).
 *
 * One owner pushes and pops at the bottom (LIFO: the job it spawned last is
 * the one whose data is still in its cache); any thread steals at the top
 * (FIFO: the oldest job, usually the root of the largest piece of work).
 *
 * Departure from the paper: its three seq_cst fences are replaced by seq_cst
 * operations on the same variables (bottom store + top load in pop, top load
 * + bottom load in steal, bottom store in push). The orderings this gives are
 * the same (a total order over those accesses, which is what the fences are
 * there to provide), x86 pays the same one locked instruction, and
 * ThreadSanitizer, which ignores fences (GCC rejects them under
 * -fsanitize=thread -Werror), then sees every ordering we rely on.
 *
 * The array grows (doubling) when the owner pushes onto a full one. A thief
 * may still be reading the old array, so old arrays are not freed: each new
 * array points to the one it replaced and rh_deque_cleanup() frees the
 * chain. Because the size doubles, the retired arrays together are smaller
 * than the live one.
 */
#ifndef RH_SCHED_DEQUE_H
#define RH_SCHED_DEQUE_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#define RH_DEQUE_LINE 64

typedef struct rh_deque_array {
    int64_t                 mask;      /* size - 1; the size is a power of 2 */
    struct rh_deque_array  *retired;   /* the array this one replaced */
    _Atomic(void *)         slot[];
} rh_deque_array_t;

/* top and bottom live on separate cache lines: thieves hammer top with CAS,
 * the owner writes bottom on every push and pop. */
typedef struct rh_deque {
    _Alignas(RH_DEQUE_LINE) _Atomic int64_t top;
    _Alignas(RH_DEQUE_LINE) _Atomic int64_t bottom;
    _Atomic(rh_deque_array_t *) array;
} rh_deque_t;

typedef enum rh_deque_steal_result {
    RH_DEQUE_EMPTY = 0,   /* nothing to steal */
    RH_DEQUE_OK    = 1,   /* *out holds the stolen item */
    RH_DEQUE_RETRY = 2    /* lost a race with the owner or another thief */
} rh_deque_steal_result_t;

static inline rh_deque_array_t *rh_deque_array_new(int64_t size)
{
    rh_deque_array_t *a = malloc(sizeof(*a) +
                                 (size_t)size * sizeof(a->slot[0]));

    if (a != NULL) {
        a->mask = size - 1;
        a->retired = NULL;
    }
    return a;
}

/* capacity: rounded up to a power of two. Returns 0, or -1 without memory. */
static inline int rh_deque_init(rh_deque_t *d, int64_t capacity)
{
    int64_t size = 2;
    rh_deque_array_t *a;

    while (size < capacity) {
        size *= 2;
    }
    a = rh_deque_array_new(size);
    if (a == NULL) {
        return -1;
    }
    atomic_store_explicit(&d->top, 0, memory_order_relaxed);
    atomic_store_explicit(&d->bottom, 0, memory_order_relaxed);
    atomic_store_explicit(&d->array, a, memory_order_relaxed);
    return 0;
}

/* Frees the live array and every retired one; nobody may use d any more. */
static inline void rh_deque_cleanup(rh_deque_t *d)
{
    rh_deque_array_t *a = atomic_load_explicit(&d->array, memory_order_relaxed);

    while (a != NULL) {
        rh_deque_array_t *older = a->retired;

        free(a);
        a = older;
    }
    atomic_store_explicit(&d->array, NULL, memory_order_relaxed);
}

/* Owner only: a twice larger array holding items [t, b). Published with a
 * release store so that a thief that loads the new pointer sees the copies. */
static inline rh_deque_array_t *rh_deque_grow(rh_deque_t *d,
                                              rh_deque_array_t *old,
                                              int64_t t, int64_t b)
{
    rh_deque_array_t *a = rh_deque_array_new(2 * (old->mask + 1));

    if (a == NULL) {
        return NULL;
    }
    for (int64_t i = t; i < b; i++) {
        void *item = atomic_load_explicit(&old->slot[i & old->mask],
                                          memory_order_relaxed);

        atomic_store_explicit(&a->slot[i & a->mask], item,
                              memory_order_relaxed);
    }
    a->retired = old;
    atomic_store_explicit(&d->array, a, memory_order_release);
    return a;
}

/* Owner only. Returns 0, or -1 when the array was full and could not grow
 * (the item is then not in the deque). */
static inline int rh_deque_push(rh_deque_t *d, void *item)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    /* acquire: a thief's read of the slot we may now overwrite happened
     * before its CAS of top, which we read here. */
    int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
    rh_deque_array_t *a = atomic_load_explicit(&d->array,
                                               memory_order_relaxed);

    if (b - t > a->mask) {
        a = rh_deque_grow(d, a, t, b);
        if (a == NULL) {
            return -1;
        }
    }
    atomic_store_explicit(&a->slot[b & a->mask], item, memory_order_relaxed);
    /* The paper needs release here (a thief that sees the new bottom sees
     * the slot and everything the item points to). seq_cst also makes this
     * store the first half of the pool's wake-up handshake: the pusher then
     * reads the sleeper count, a sleeper counts itself then reads bottom,
     * and one of the two sees the other. */
    atomic_store_explicit(&d->bottom, b + 1, memory_order_seq_cst);
    return 0;
}

/* Owner only: the newest item, or NULL when empty. */
static inline void *rh_deque_pop(rh_deque_t *d)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed) - 1;
    rh_deque_array_t *a;
    int64_t t;
    void *item;

    /* top only grows, so a stale top above b proves the deque empty; an
     * idle owner polls here and this skips the locked store. */
    if (atomic_load_explicit(&d->top, memory_order_relaxed) > b) {
        return NULL;
    }
    a = atomic_load_explicit(&d->array, memory_order_relaxed);
    /* Claim slot b before reading top. Store then load, both seq_cst: a
     * thief that read top then bottom either sees our smaller bottom and
     * backs off, or we see the top it is about to CAS. */
    atomic_store_explicit(&d->bottom, b, memory_order_seq_cst);
    t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    if (t > b) {
        atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
        return NULL;
    }
    item = atomic_load_explicit(&a->slot[b & a->mask], memory_order_relaxed);
    if (t == b) {
        /* The last item: thieves may be after it too; top decides. */
        if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1,
                                                     memory_order_seq_cst,
                                                     memory_order_relaxed)) {
            item = NULL;
        }
        atomic_store_explicit(&d->bottom, b + 1, memory_order_relaxed);
    }
    return item;
}

/* Owner only: where the next push goes. Items at or above a mark taken
 * now are the ones pushed from now on (a pop below the mark is the owner's
 * own doing), which is how a waiting job tells its own spawns apart. */
static inline int64_t rh_deque_mark(rh_deque_t *d)
{
    return atomic_load_explicit(&d->bottom, memory_order_relaxed);
}

/* Owner only: the newest item if it was pushed at or above mark, else
 * NULL (thieves may still take those below). */
static inline void *rh_deque_pop_above(rh_deque_t *d, int64_t mark)
{
    if (atomic_load_explicit(&d->bottom, memory_order_relaxed) <= mark) {
        return NULL;
    }
    return rh_deque_pop(d);
}

/* Any thread: takes the oldest item. */
static inline rh_deque_steal_result_t rh_deque_steal(rh_deque_t *d,
                                                     void **out)
{
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_seq_cst);
    rh_deque_array_t *a;
    void *item;

    if (t >= b) {
        return RH_DEQUE_EMPTY;
    }
    /* After bottom: a bottom that covers an item pushed into a grown array
     * was stored after that array was published. The paper's consume. */
    a = atomic_load_explicit(&d->array, memory_order_acquire);
    item = atomic_load_explicit(&a->slot[t & a->mask], memory_order_relaxed);
    if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1,
                                                 memory_order_seq_cst,
                                                 memory_order_relaxed)) {
        return RH_DEQUE_RETRY;
    }
    *out = item;
    return RH_DEQUE_OK;
}

/* Any thread: whether there seems to be something to steal. seq_cst loads,
 * for the sleeper's side of the wake-up handshake (see rh_deque_push). */
static inline int rh_deque_looks_empty(rh_deque_t *d)
{
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_seq_cst);

    return t >= b;
}

/* Owner only: how many pushes fit without growing (a stale top only makes
 * this smaller). */
static inline int64_t rh_deque_room(rh_deque_t *d)
{
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&d->top, memory_order_relaxed);
    rh_deque_array_t *a = atomic_load_explicit(&d->array,
                                               memory_order_relaxed);

    return a->mask + 1 - (b - t);
}

#endif
