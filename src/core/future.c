#include "core/future.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/completion.h"
#include "base/objcache.h"
#include "base/status.h"

/*
 * The table: slot words in chunks of RH_FT_CHUNK, found through a top array
 * sized for the largest table (2 MiB of address space; pages are touched as
 * chunks come). Chunks come as the table doubles and stay until teardown,
 * so a lookup never reads a freed chunk; there are at most twice as many
 * slots as the most futures ever alive at once.
 *
 * A slot's word is a block's address tagged RH_FT_BUSY, RH_FT_BUSY alone
 * while its new block is being filled in, or, while free, the generation of
 * its last block shifted left by one (0: never used). New blocks take the
 * free slots in turn (a cursor round the table, skipping busy ones), so
 * every slot ages at the same pace, one generation a lap at most, and a lap
 * takes at least half the table's slots worth of objects: the first slot
 * retires after 2^33 laps of 2048 objects or more (half a year at a million
 * objects a second), and the table takes new slots for the retired ones. A
 * counter is never issued twice: 2^30 slots of 2^33 generations each.
 *
 * Blocks come from object caches, one per size class (1, 2, 4 .. 64
 * futures), and go back there when their last future dies; a cache never
 * hands memory back to malloc before rh_future_teardown. A block's memory
 * is therefore a block (of one class) for as long as a lookup may run, and
 * the caches keep at most the most blocks ever alive at once, plus what the
 * threads' magazines hold. That lets a lookup read a block that has just
 * died: it reads only atomics (the counter, the capacity, a future's refs),
 * takes a hold only on a future whose refs are not 0, and checks the
 * block's counter again once the hold keeps it from dying.
 */
#define RH_FT_SLOT_MASK  ((1ull << RH_FUTURE_SLOT_BITS) - 1)
#define RH_FT_CHUNK_BITS RH_FUTURE_TABLE_MIN_BITS
#define RH_FT_CHUNK      (1ull << RH_FT_CHUNK_BITS)
#define RH_FT_TOP        (1ull << (RH_FUTURE_SLOT_BITS - RH_FT_CHUNK_BITS))
#define RH_FT_BUSY       ((uintptr_t)1)
#define RH_FT_CLASSES    7   /* blocks of up to 1, 2, 4 ... 64 futures */

/* Marks a waiter list that is closed: the future is final. */
#define RH_WAITERS_CLOSED ((rh_waiter_t *)(uintptr_t)1)

typedef struct rh_ft_chunk {
    _Atomic uintptr_t word[RH_FT_CHUNK];
} rh_ft_chunk_t;

static _Atomic(rh_ft_chunk_t *) *rh_ft_top;
static _Atomic uint64_t rh_ft_cap;        /* slots: a power of two */
static _Atomic uint64_t rh_ft_cursor;     /* the next slot to try */
static _Atomic uint64_t rh_ft_retired;    /* slots whose generations are
                                           * spent */
static pthread_mutex_t rh_ft_grow_lock = PTHREAD_MUTEX_INITIALIZER;
static rh_objcache_t rh_ft_cache[RH_FT_CLASSES];
static _Atomic long rh_ft_live;
static uint32_t rh_ft_rank;
static void (*rh_ft_store_delete)(rh_object_id_t id);
static void (*rh_ft_unpin)(rh_object_id_t id, int n);

/* Blocked non-worker threads: sleep on the epoch word. */
static _Atomic uint32_t rh_ft_epoch;
static _Atomic int rh_ft_sleepers;

/* The object cache of class c: class 0 keeps the id it always had. */
static int rh_ft_cache_id(int c)
{
    return c == 0 ? 1 : 3 + c;
}

static size_t rh_ft_block_size(int c)
{
    return sizeof(rh_fblock_t) + ((size_t)1 << c) * sizeof(rh_future_t);
}

static int rh_ft_class(int n)
{
    int c = 0;

    while ((1 << c) < n) {
        c++;
    }
    return c;
}

static _Atomic uintptr_t *rh_ft_slot(uint64_t pos)
{
    rh_ft_chunk_t *c;

    c = atomic_load_explicit(&rh_ft_top[pos >> RH_FT_CHUNK_BITS],
                             memory_order_acquire);
    return c == NULL ? NULL : &c->word[pos & (RH_FT_CHUNK - 1)];
}

/* Doubles the table until `used` slots are at most half of it; under the
 * lock, which only growth takes. */
static rh_status_t rh_ft_grow(uint64_t used)
{
    uint64_t cap;
    rh_status_t status = RH_OK;

    pthread_mutex_lock(&rh_ft_grow_lock);
    cap = atomic_load(&rh_ft_cap);
    while (status == RH_OK && used * 2 > cap) {
        uint64_t next = cap == 0 ? RH_FT_CHUNK : 2 * cap;

        if (cap == RH_FT_TOP * RH_FT_CHUNK) {
            status = rh_error_set(RH_ERR_NO_MEMORY, "this rank holds %llu "
                                  "objects at once, the most its object "
                                  "table takes", (unsigned long long)used);
            break;
        }
        for (uint64_t i = cap >> RH_FT_CHUNK_BITS;
             i < next >> RH_FT_CHUNK_BITS; i++) {
            rh_ft_chunk_t *c;

            if (atomic_load(&rh_ft_top[i]) != NULL) {
                continue;
            }
            c = calloc(1, sizeof(*c));
            if (c == NULL) {
                status = rh_error_set(RH_ERR_NO_MEMORY, "object table: out "
                                      "of memory at %llu slots",
                                      (unsigned long long)cap);
                break;
            }
            atomic_store_explicit(&rh_ft_top[i], c, memory_order_release);
        }
        if (status == RH_OK) {
            cap = next;
            atomic_store_explicit(&rh_ft_cap, cap, memory_order_release);
        }
    }
    pthread_mutex_unlock(&rh_ft_grow_lock);
    return status;
}

void rh_future_set_unpin(void (*unpin)(rh_object_id_t id, int n))
{
    rh_ft_unpin = unpin;
}

void rh_future_setup(uint32_t rank, void (*store_delete)(rh_object_id_t))
{
    rh_ft_rank = rank;
    rh_ft_store_delete = store_delete;
    if (rh_ft_top == NULL) {
        rh_ft_top = calloc(RH_FT_TOP, sizeof(*rh_ft_top));
        for (int c = 0; c < RH_FT_CLASSES; c++) {
            rh_objcache_init(&rh_ft_cache[c], rh_ft_cache_id(c),
                             rh_ft_block_size(c));
        }
        atomic_store(&rh_ft_cap, 0);
        atomic_store(&rh_ft_cursor, 0);
        atomic_store(&rh_ft_retired, 0);
        if (rh_ft_top != NULL && rh_ft_grow(RH_FT_CHUNK / 2) != RH_OK) {
            free(rh_ft_top);
            rh_ft_top = NULL;
        }
    }
}

static void rh_ft_block_free(rh_fblock_t *b)
{
    int c = rh_ft_class((int)atomic_load_explicit(&b->capacity,
                                                  memory_order_relaxed));

    rh_objcache_put(&rh_ft_cache[c], b);
}

void rh_future_teardown(void)
{
    if (rh_ft_top == NULL) {
        return;
    }
    for (uint64_t i = 0; i < RH_FT_TOP; i++) {
        rh_ft_chunk_t *c = atomic_load(&rh_ft_top[i]);

        if (c == NULL) {
            continue;
        }
        for (uint64_t j = 0; j < RH_FT_CHUNK; j++) {
            uintptr_t w = atomic_load(&c->word[j]);
            rh_fblock_t *b = (rh_fblock_t *)(w & ~RH_FT_BUSY);

            if ((w & RH_FT_BUSY) && b != NULL) {
                for (int k = 0; k < b->n; k++) {
                    free(b->f[k].message);
                }
                free(b);
            }
        }
        free(c);
    }
    free(rh_ft_top);
    rh_ft_top = NULL;
    for (int c = 0; c < RH_FT_CLASSES; c++) {
        rh_objcache_fini(&rh_ft_cache[c]);
    }
    atomic_store(&rh_ft_live, 0);
}

long rh_future_live(void)
{
    return atomic_load(&rh_ft_live);
}

void rh_future_test_wear(uint64_t objects)
{
    uint64_t cap = atomic_load(&rh_ft_cap), laps;

    if (rh_ft_top == NULL) {
        return;
    }
    laps = objects / cap;
    for (uint64_t pos = 0; pos < cap; pos++) {
        _Atomic uintptr_t *slot = rh_ft_slot(pos);
        uintptr_t w = atomic_load(slot);
        uint64_t gen = w >> 1;

        if ((w & RH_FT_BUSY) || gen == RH_FUTURE_GENERATIONS) {
            continue;
        }
        gen = laps >= RH_FUTURE_GENERATIONS - gen ? RH_FUTURE_GENERATIONS :
              gen + laps;
        if (gen == RH_FUTURE_GENERATIONS) {
            atomic_fetch_add(&rh_ft_retired, 1);
        }
        atomic_store(slot, (uintptr_t)(gen << 1));
    }
    atomic_fetch_add(&rh_ft_cursor, objects % cap);
}

/* Takes a free slot for b, gives b its counter and publishes it. The caller
 * counted b's futures as live, which keeps at least half the slots free. */
static void rh_ft_install(rh_fblock_t *b)
{
    _Atomic uintptr_t *slot;
    uintptr_t w;
    uint64_t pos, gen;
    uint32_t capacity = atomic_load_explicit(&b->capacity,
                                             memory_order_relaxed);

    for (;;) {
        uint64_t cap = atomic_load_explicit(&rh_ft_cap, memory_order_acquire);

        pos = atomic_fetch_add_explicit(&rh_ft_cursor, 1,
                                        memory_order_relaxed) & (cap - 1);
        slot = rh_ft_slot(pos);
        w = atomic_load_explicit(slot, memory_order_relaxed);
        if (!(w & RH_FT_BUSY) && (w >> 1) != RH_FUTURE_GENERATIONS &&
            atomic_compare_exchange_strong_explicit(slot, &w, RH_FT_BUSY,
                                                    memory_order_acquire,
                                                    memory_order_relaxed)) {
            break;
        }
    }
    gen = (uint64_t)(w >> 1) + 1;
    atomic_store_explicit(&b->counter, gen << RH_FUTURE_SLOT_BITS | pos,
                          memory_order_relaxed);
    /* Released after the counter: a stale lookup (one that read the block
     * in its last life) that takes a hold on one of these refs then sees
     * the new counter and lets go. Refs past n stay 0: no hold there. */
    for (uint32_t i = 0; i < capacity; i++) {
        atomic_store_explicit(&b->f[i].holds, i < (uint32_t)b->n,
                              memory_order_relaxed);
        atomic_store_explicit(&b->f[i].refs, i < (uint32_t)b->n ? 2 : 0,
                              memory_order_release);
    }
    atomic_store_explicit(slot, (uintptr_t)b | RH_FT_BUSY,
                          memory_order_release);
}

static rh_status_t rh_ft_block_alloc(int n, int is_put, rh_fblock_t **out)
{
    int c = rh_ft_class(n);
    uint64_t used;
    rh_fblock_t *b;
    rh_status_t status;

    if (rh_ft_top == NULL) {
        return rh_error_set(RH_ERR_NOT_INITIALIZED, "librayhpc is not "
                            "initialized");
    }
    used = (uint64_t)atomic_fetch_add_explicit(&rh_ft_live, n,
                                               memory_order_relaxed) +
           (uint64_t)n + atomic_load_explicit(&rh_ft_retired,
                                              memory_order_relaxed);
    if (used * 2 > atomic_load_explicit(&rh_ft_cap, memory_order_acquire) &&
        (status = rh_ft_grow(used)) != RH_OK) {
        atomic_fetch_sub_explicit(&rh_ft_live, n, memory_order_relaxed);
        return status;
    }
    b = rh_objcache_get(&rh_ft_cache[c]);
    if (b == NULL) {
        atomic_fetch_sub_explicit(&rh_ft_live, n, memory_order_relaxed);
        return rh_error_set(RH_ERR_NO_MEMORY, "object table");
    }
    b->n = n;
    b->is_put = is_put;
    atomic_store_explicit(&b->live, n, memory_order_relaxed);
    atomic_store_explicit(&b->capacity, 1u << c, memory_order_relaxed);
    atomic_store_explicit(&b->lineage, NULL, memory_order_relaxed);
    for (int i = 0; i < n; i++) {
        rh_future_t *f = &b->f[i];

        atomic_store_explicit(&f->state, RH_FUTURE_PENDING,
                              memory_order_relaxed);
        atomic_store_explicit(&f->waiters, NULL, memory_order_relaxed);
        f->block = b;
        f->data = NULL;
        f->len = 0;
        f->in_store = 0;
        atomic_store_explicit(&f->pins, 0, memory_order_relaxed);
        f->message = NULL;
        f->status = 0;
        atomic_store_explicit(&f->rebuilds, 0, memory_order_relaxed);
    }
    rh_ft_install(b);
    *out = b;
    return RH_OK;
}

rh_status_t rh_future_block_new(int n, rh_fblock_t **out)
{
    return rh_ft_block_alloc(n, 0, out);
}

rh_status_t rh_future_put_block_new(rh_fblock_t **out)
{
    return rh_ft_block_alloc(1, 1, out);
}

static int rh_ft_is_put(const rh_fblock_t *b)
{
    return b->is_put;
}

rh_object_id_t rh_future_id(const rh_fblock_t *b, int i, int is_put)
{
    return rh_object_id_make(rh_ft_rank,
                             atomic_load_explicit(&b->counter,
                                                  memory_order_relaxed),
                             is_put ? 0u : (uint32_t)i + 1);
}

/* A hold, unless the holds are gone: a future that died stays dead. */
static int rh_ft_hold_if_held(rh_future_t *f)
{
    int refs = atomic_load_explicit(&f->refs, memory_order_relaxed);

    while (refs > 0) {
        if (atomic_compare_exchange_weak_explicit(&f->refs, &refs, refs + 1,
                                                  memory_order_acquire,
                                                  memory_order_relaxed)) {
            return 1;
        }
    }
    return 0;
}

rh_future_t *rh_future_find_hold(rh_object_id_t id)
{
    uint64_t counter = rh_object_id_counter(id);
    uint32_t index = rh_object_id_index(id);
    uint32_t k = index == 0 ? 0 : index - 1;
    _Atomic uintptr_t *slot;
    uintptr_t w;
    rh_fblock_t *b;
    rh_future_t *f;

    if (rh_ft_top == NULL ||
        (slot = rh_ft_slot(counter & RH_FT_SLOT_MASK)) == NULL) {
        return NULL;
    }
    w = atomic_load_explicit(slot, memory_order_acquire);
    b = (rh_fblock_t *)(w & ~RH_FT_BUSY);
    if (!(w & RH_FT_BUSY) || b == NULL ||
        atomic_load_explicit(&b->counter, memory_order_relaxed) != counter ||
        k >= atomic_load_explicit(&b->capacity, memory_order_relaxed)) {
        return NULL;
    }
    f = &b->f[k];
    if (!rh_ft_hold_if_held(f)) {
        return NULL;
    }
    /* Held, the block cannot die: is it still the object the id names? */
    if (atomic_load_explicit(&b->counter, memory_order_relaxed) != counter ||
        (rh_ft_is_put(b) ? index != 0 : index == 0 ||
                                        index > (uint32_t)b->n)) {
        rh_future_unhold(f);
        return NULL;
    }
    return f;
}

/* ---- life and death -------------------------------------------------------- */

static void (*rh_ft_gone_hook)(rh_fblock_t *b);

void rh_future_set_gone_hook(void (*hook)(rh_fblock_t *b))
{
    rh_ft_gone_hook = hook;
}

void rh_future_each_block(void (*fn)(rh_fblock_t *b))
{
    uint64_t cap = rh_ft_top != NULL ? atomic_load(&rh_ft_cap) : 0;

    for (uint64_t pos = 0; pos < cap; pos++) {
        uintptr_t w = atomic_load(rh_ft_slot(pos));

        if ((w & RH_FT_BUSY) && (w & ~RH_FT_BUSY) != 0) {
            fn((rh_fblock_t *)(w & ~RH_FT_BUSY));
        }
    }
}

static void rh_ft_dead(rh_future_t *f)
{
    rh_fblock_t *b = f->block;
    int i = (int)(f - b->f);
    int pins = atomic_exchange_explicit(&f->pins, 0, memory_order_acq_rel);

    if (pins > 0 && rh_ft_unpin != NULL) {
        rh_ft_unpin(rh_future_id(b, i, rh_ft_is_put(b)), pins);
    }
    /* In the store here, or on other nodes (maybe with a copy here). */
    if ((f->in_store || (atomic_load(&f->state) == RH_FUTURE_READY &&
                         f->len > RH_FUTURE_INLINE)) &&
        rh_ft_store_delete != NULL) {
        rh_ft_store_delete(rh_future_id(b, i, rh_ft_is_put(b)));
    }
    free(f->message);
    f->message = NULL;
    atomic_fetch_sub_explicit(&rh_ft_live, 1, memory_order_relaxed);
    if (atomic_fetch_sub(&b->live, 1) == 1) {
        uint64_t counter = atomic_load_explicit(&b->counter,
                                                memory_order_relaxed);
        uint64_t gen = counter >> RH_FUTURE_SLOT_BITS;

        /* The slot keeps the generation; at the last one it retires. */
        atomic_store_explicit(rh_ft_slot(counter & RH_FT_SLOT_MASK),
                              (uintptr_t)(gen << 1), memory_order_release);
        if (gen == RH_FUTURE_GENERATIONS) {
            atomic_fetch_add(&rh_ft_retired, 1);
        }
        if (rh_ft_gone_hook != NULL &&
            atomic_load_explicit(&b->lineage, memory_order_acquire) !=
            NULL) {
            rh_ft_gone_hook(b);   /* its lineage goes too */
        }
        rh_ft_block_free(b);
    }
}

void rh_future_hold(rh_future_t *f)
{
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
}

void rh_future_unhold(rh_future_t *f)
{
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1) {
        rh_ft_dead(f);
    }
}

void rh_future_owner_hold(rh_future_t *f)
{
    atomic_fetch_add_explicit(&f->holds, 1, memory_order_relaxed);
}

int rh_future_owner_drop(rh_future_t *f)
{
    int holds = atomic_load_explicit(&f->holds, memory_order_relaxed);

    while (holds > 0) {
        if (atomic_compare_exchange_weak_explicit(&f->holds, &holds,
                                                  holds - 1,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed)) {
            return 1;
        }
    }
    return 0;
}

int rh_future_wait_add(rh_future_t *f, rh_waiter_t *w)
{
    rh_waiter_t *head = atomic_load_explicit(&f->waiters,
                                             memory_order_acquire);

    do {
        if (head == RH_WAITERS_CLOSED) {
            return 0;
        }
        w->next = head;
    } while (!atomic_compare_exchange_weak_explicit(&f->waiters, &head, w,
                                                    memory_order_acq_rel,
                                                    memory_order_acquire));
    return 1;
}

static void rh_ft_finish(rh_future_t *f, int state)
{
    rh_waiter_t *w;

    /* seq_cst: pairs with rh_future_wait_until's sleeper count. */
    atomic_store_explicit(&f->state, state, memory_order_seq_cst);
    w = atomic_exchange_explicit(&f->waiters, RH_WAITERS_CLOSED,
                                 memory_order_acq_rel);
    while (w != NULL) {
        rh_waiter_t *next = w->next;   /* wake may free w */

        w->wake(w, state == RH_FUTURE_FAILED ? (int)rh_future_status(f) : 0,
                f->message);
        w = next;
    }
    rh_future_notify();
    rh_future_unhold(f);   /* the producer's reference */
}

/* The answer of a rebuild: the first run's fields stay (getters may be
 * reading them); a value of another size cannot stand for them. */
static void rh_ft_rebuilt(rh_future_t *f, size_t len)
{
    rh_fblock_t *b = f->block;
    rh_object_id_t id = rh_future_id(b, (int)(f - b->f), rh_ft_is_put(b));
    char msg[256], ids[RH_OBJECT_ID_STRLEN];

    if (len == f->len) {
        rh_ft_finish(f, RH_FUTURE_READY);
        return;
    }
    snprintf(msg, sizeof(msg), "object %s was rebuilt from its lineage with "
             "%zu bytes, not the %zu it had: a task must return the same "
             "size on every run to be rebuilt", rh_object_id_str(id, ids),
             len, f->len);
    if (rh_ft_store_delete != NULL) {
        rh_ft_store_delete(id);   /* the new run's copy, and the old's */
    }
    rh_future_fail_status(f, RH_ERR_OBJECT_LOST, msg);
}

void rh_future_complete(rh_future_t *f, const void *data, size_t len,
                        int in_store)
{
    if (atomic_load_explicit(&f->rebuilds, memory_order_relaxed) != 0) {
        rh_ft_rebuilt(f, len);
        return;
    }
    if (!in_store && len <= RH_FUTURE_INLINE) {
        if (len != 0 && data != f->inline_buf) {
            memcpy(f->inline_buf, data, len);
        }
        data = f->inline_buf;
    }
    f->data = data;
    f->len = len;
    f->in_store = in_store;
    rh_ft_finish(f, RH_FUTURE_READY);
}

int rh_future_reopen(rh_future_t *f)
{
    rh_waiter_t *closed = RH_WAITERS_CLOSED;
    int ready = RH_FUTURE_READY;

    if (!atomic_compare_exchange_strong(&f->state, &ready,
                                        RH_FUTURE_PENDING)) {
        return 0;
    }
    /* A producer again: the next completion drops this reference. The
     * value's fields stay (see future.h): getters may be reading them. */
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&f->rebuilds, 1, memory_order_relaxed);
    (void)atomic_compare_exchange_strong(&f->waiters, &closed, NULL);
    return 1;
}

void rh_future_fail(rh_future_t *f, const char *message)
{
    rh_future_fail_status(f, RH_ERR_TASK_FAILED, message);
}

void rh_future_fail_status(rh_future_t *f, rh_status_t status,
                           const char *message)
{
    f->message = strdup(message ? message : "task failed");
    f->status = status;
    rh_ft_finish(f, RH_FUTURE_FAILED);
}

/* ---- blocking ------------------------------------------------------------------ */

static void (*rh_ft_notify_hook)(void);

void rh_future_set_notify_hook(void (*hook)(void))
{
    rh_ft_notify_hook = hook;
}

void rh_future_notify(void)
{
    if (rh_ft_notify_hook != NULL) {
        rh_ft_notify_hook();
    }
    if (atomic_load_explicit(&rh_ft_sleepers, memory_order_seq_cst) > 0) {
        atomic_fetch_add(&rh_ft_epoch, 1);
        syscall(SYS_futex, &rh_ft_epoch, FUTEX_WAKE_PRIVATE, INT_MAX, NULL,
                NULL, 0);
    }
}

int rh_future_block_until(int (*cond)(void *arg), void *arg,
                          uint64_t deadline_ns)
{
    /* Spin about 50 us first, yielding now and then: most remote answers
     * come sooner than a futex wake-up would (tens of us here). */
    uint64_t spin_end = rh_time_ns() + 50000;

    for (int spin = 1; ; spin++) {
        if (cond(arg)) {
            return 1;
        }
        if ((spin & 15) == 0) {
            if (rh_time_ns() > spin_end) {
                break;
            }
            sched_yield();
        }
        rh_cpu_relax();
    }
    for (;;) {
        uint32_t epoch;
        struct timespec ts, *tsp = NULL;

        /* Count ourselves in before looking: a completion after the look
         * then sees us and bumps the epoch we sleep on. */
        atomic_fetch_add_explicit(&rh_ft_sleepers, 1, memory_order_seq_cst);
        epoch = atomic_load(&rh_ft_epoch);
        if (cond(arg)) {
            atomic_fetch_sub(&rh_ft_sleepers, 1);
            return 1;
        }
        if (deadline_ns != 0) {
            uint64_t now = rh_time_ns();

            if (now >= deadline_ns) {
                atomic_fetch_sub(&rh_ft_sleepers, 1);
                return 0;
            }
            ts.tv_sec = (time_t)((deadline_ns - now) / 1000000000ull);
            ts.tv_nsec = (long)((deadline_ns - now) % 1000000000ull);
            tsp = &ts;
        }
        syscall(SYS_futex, &rh_ft_epoch, FUTEX_WAIT_PRIVATE, epoch, tsp,
                NULL, 0);
        atomic_fetch_sub(&rh_ft_sleepers, 1);
    }
}
