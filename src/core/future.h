/*
 * The owner's side of objects (Ray's ownership): for every object this rank
 * created, by a put or as the return of a task it submitted, a future that
 * says whether the value is there, holds small values inline, keeps the
 * error of a failed task, and lists who waits for it.
 *
 * Futures live in blocks, one per counter (a put, or a task with its
 * returns). A counter is a slot of the object table and the generation of
 * that slot: slots are reused, each time with the next generation, so ids
 * never run out, and a stale id (a released object's, or one from the wire)
 * names an older generation than the slot's and is found as released. A
 * slot whose generations are spent retires: no counter is issued twice.
 *
 * A lookup takes a hold without a lock, in O(1), from any thread, and only
 * while the future still has one: blocks are never handed back to malloc
 * while the table lives (see future.c), so a lookup racing the last release
 * reads a block that may be free or reused, but never freed memory.
 */
#ifndef RH_CORE_FUTURE_H
#define RH_CORE_FUTURE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "plasma/object_id.h"
#include "rayhpc.h"

/* Values up to this size live in the future itself, not in the store. */
#define RH_FUTURE_INLINE 40

/* A counter is generation << RH_FUTURE_SLOT_BITS | slot, with generations
 * 1 .. RH_FUTURE_GENERATIONS: counters are never 0 and stay below 2^63
 * (forward.c keys tasks without returns above). The table starts with
 * 2^RH_FUTURE_TABLE_MIN_BITS slots and doubles when half are used. */
#define RH_FUTURE_SLOT_BITS      30
#define RH_FUTURE_GENERATIONS    ((1ull << (63 - RH_FUTURE_SLOT_BITS)) - 1)
#define RH_FUTURE_TABLE_MIN_BITS 12

typedef enum rh_future_state {
    RH_FUTURE_PENDING = 0,
    RH_FUTURE_READY   = 1,
    RH_FUTURE_FAILED  = 2
} rh_future_state_t;

/* Someone waiting for a future: a task's argument slot, mostly. */
typedef struct rh_waiter rh_waiter_t;
struct rh_waiter {
    rh_waiter_t *next;
    /* failed: 0, or the status the future failed with (negative) */
    void       (*wake)(rh_waiter_t *w, int failed, const char *message);
};

typedef struct rh_fblock rh_fblock_t;

typedef struct rh_future {
    _Atomic int             state;
    /* holds of the owner, plus one while the producer has not finished,
     * plus the runtime's own (lookups, tasks that take it as an argument,
     * borrowers, lineage) */
    _Atomic int             refs;
    /* the owner's holds alone: what rh_release may drop, so that a
     * release past them cannot take a reference of the runtime's and
     * free the future under it */
    _Atomic int             holds;
    _Atomic(rh_waiter_t *)  waiters;     /* RH_WAITERS_CLOSED once final */
    rh_fblock_t            *block;
    const void             *data;        /* READY: the bytes */
    size_t                  len;
    int                     in_store;    /* the bytes are a store object */
    /* store references the owner's gets hold, so that the object is not
     * spilled under their pointers; given back by releases, or here at
     * the end */
    _Atomic int             pins;
    int                     status;      /* FAILED: rh_get's code ... */
    /* times reopened for a rebuild: from the first, data, len and
     * in_store stay as the first run set them (rh_future_reopen) */
    _Atomic int             rebuilds;
    char                   *message;     /* ... and why */
    /* A small value is read in place through rh_get: aligned as malloc's
     * memory is for the types a value holds. */
    _Alignas(8) uint8_t     inline_buf[RH_FUTURE_INLINE];
} rh_future_t;

struct rh_fblock {
    /* A free block is linked through its first three words by the object
     * cache: only holders read these fields, never a lookup. */
    union {
        void *cache_link[3];
        struct {
            int         n;
            int         is_put;
            _Atomic int live;      /* futures not yet dead */
        };
    };
    /* What a lookup reads before it holds anything, when the block may be
     * free or reused: atomics, past the cache's words. */
    _Atomic uint64_t counter;
    _Atomic uint32_t capacity;     /* futures f[] has room for */
    /* The task's lineage entry (src/core/lineage.c), NULL when it has
     * none: set and cleared by that module alone, and gone before the
     * block (the gone hook), so that a task's spec needs no table of its
     * own to be found or let go. */
    _Atomic(void *)  lineage;
    rh_future_t      f[];          /* a put: f[0] is index 0; a task: f[i-1]
                                    * is return index i */
};

/* A new counter (never 0) and its block of n futures (a task's returns),
 * or of one future with index 0 (a put). Each is PENDING with one hold for
 * the caller and one reference for the producer. */
rh_status_t rh_future_block_new(int n, rh_fblock_t **out);
rh_status_t rh_future_put_block_new(rh_fblock_t **out);

/* The object id of future i of a block (puts use index 0). */
rh_object_id_t rh_future_id(const rh_fblock_t *b, int i, int is_put);

/* The future a ref names, with a hold the caller drops with
 * rh_future_unhold; NULL when this rank has no such future (released,
 * never existed, or an older generation of its slot). Any thread. */
rh_future_t *rh_future_find_hold(rh_object_id_t id);

/* The table slot an id of this rank names. */
static inline uint64_t rh_future_slot(rh_object_id_t id)
{
    return rh_object_id_counter(id) & ((1ull << RH_FUTURE_SLOT_BITS) - 1);
}

/* The producer finished: READY with data, or FAILED with a message (copied).
 * Wakes every waiter and drops the producer's reference. After a reopen,
 * data and in_store are not taken (see rh_future_reopen). */
void rh_future_complete(rh_future_t *f, const void *data, size_t len,
                        int in_store);
void rh_future_fail(rh_future_t *f, const char *message);
void rh_future_fail_status(rh_future_t *f, rh_status_t status,
                           const char *message);

/* An object whose every copy was lost, to be produced again: a READY
 * future goes back to PENDING with a producer's reference, so that waiters
 * queue on it again (lineage reconstruction). Returns 0 when it was not
 * READY.
 *
 * Getters read data, len and in_store without a lock once they saw READY,
 * and one that saw the lost run's READY may still be reading them while
 * the future is reopened and completed again. So neither changes them:
 * they stay as the first run set them for the future's life (a rebuilt
 * value is on other nodes or in this node's store, which the remote path
 * of every reader looks at first), and the rebuild's rh_future_complete
 * only checks that the new run gave the same size, failing the object
 * (RH_ERR_OBJECT_LOST, its copies deleted) when it did not. A getter thus
 * sees one run's fields, whichever state it finds next. */
int rh_future_reopen(rh_future_t *f);

/* Called with each task's block whose futures all died (the owner
 * released every return), before the block goes back to its cache, when
 * the block has a lineage entry. One hook; set at start-up. */
void rh_future_set_gone_hook(void (*hook)(rh_fblock_t *b));

/* Calls fn for every block still alive (teardown: what lineage still
 * keeps); no other thread may use the table meanwhile. */
void rh_future_each_block(void (*fn)(rh_fblock_t *b));

/* The status a failed future gives rh_get. */
static inline rh_status_t rh_future_status(const rh_future_t *f)
{
    return f->status != 0 ? (rh_status_t)f->status : RH_ERR_TASK_FAILED;
}

/* Adds w to f's waiters; returns 0 when f is already final (w is not
 * added: the caller looks at the state itself). */
int rh_future_wait_add(rh_future_t *f, rh_waiter_t *w);

/* Takes (on a future already held) or drops an owner hold. Dropping the
 * last reference of a final future frees it (and deletes its store
 * object). */
void rh_future_hold(rh_future_t *f);
void rh_future_unhold(rh_future_t *f);

/* The owner's holds (rh_put, rh_remote, rh_get give one; rh_release drops
 * one), counted apart from the references above: the reference of each
 * is taken and dropped as before. rh_future_owner_drop returns 0, and
 * drops nothing, when the owner holds none. */
void rh_future_owner_hold(rh_future_t *f);
int rh_future_owner_drop(rh_future_t *f);

/* Futures still alive (tests, leak checks). */
long rh_future_live(void);

/* Tests only: the table acts as if `objects` more objects had come and
 * gone (every free slot that many laps of the table older), so that a test
 * reaches 2^32 objects, or the last generation of the slots, at once. */
void rh_future_test_wear(uint64_t objects);

/* Called once at start-up with this rank and the function deleting store
 * objects; and at the end, to free what is left. */
void rh_future_setup(uint32_t rank, void (*store_delete)(rh_object_id_t));
void rh_future_teardown(void);

/* The function giving back the n store references (pins) a future that
 * ends still holds; set once at start-up. */
void rh_future_set_unpin(void (*unpin)(rh_object_id_t id, int n));

/* Wakes threads blocked in rh_future_block_until, and calls the hook (the
 * worker pool's notify): on every completion; cheap when nobody waits. */
void rh_future_notify(void);
void rh_future_set_notify_hook(void (*hook)(void));

/* Blocks the calling thread until cond(arg) holds (1) or deadline_ns
 * passes (0; deadline 0 = none), sleeping between completions. */
int rh_future_block_until(int (*cond)(void *arg), void *arg,
                          uint64_t deadline_ns);

#endif
