#include "core/future.h"

#include <limits.h>
#include <sched.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/completion.h"
#include "base/objcache.h"
#include "base/status.h"

#define RH_FT_CHUNK_BITS 12
#define RH_FT_CHUNK      (1u << RH_FT_CHUNK_BITS)
#define RH_FT_TOP        (1u << 20)   /* 2^32 counters per rank */

/* Marks a waiter list that is closed: the future is final. */
#define RH_WAITERS_CLOSED ((rh_waiter_t *)(uintptr_t)1)

typedef struct rh_ft_chunk {
    /* Counts down installs and frees of its RH_FT_CHUNK blocks: at 0 every
     * counter of the chunk has come and gone and the chunk goes too. */
    _Atomic int            remaining;
    _Atomic(rh_fblock_t *) slot[RH_FT_CHUNK];
} rh_ft_chunk_t;

static _Atomic(rh_ft_chunk_t *) *rh_ft_top;
/* Blocks of one future (puts, one-return tasks: nearly all) are cached. */
static rh_objcache_t rh_ft_cache;
#define RH_FT_ONE (sizeof(rh_fblock_t) + sizeof(rh_future_t))
static _Atomic uint64_t rh_ft_next = 1;
static _Atomic long rh_ft_live;
static uint32_t rh_ft_rank;
static void (*rh_ft_store_delete)(rh_object_id_t id);

/* Blocked non-worker threads: sleep on the epoch word. */
static _Atomic uint32_t rh_ft_epoch;
static _Atomic int rh_ft_sleepers;

void rh_future_setup(uint32_t rank, void (*store_delete)(rh_object_id_t))
{
    rh_ft_rank = rank;
    rh_ft_store_delete = store_delete;
    if (rh_ft_top == NULL) {
        /* 8 MiB of address space; pages are touched only as used. */
        rh_ft_top = calloc(RH_FT_TOP, sizeof(*rh_ft_top));
        rh_objcache_init(&rh_ft_cache, 1, RH_FT_ONE);
    }
}

static void rh_ft_block_free(rh_fblock_t *b)
{
    if (b->n == 1) {
        rh_objcache_put(&rh_ft_cache, b);
    } else {
        free(b);
    }
}

void rh_future_teardown(void)
{
    if (rh_ft_top == NULL) {
        return;
    }
    for (uint32_t i = 0; i < RH_FT_TOP; i++) {
        rh_ft_chunk_t *c = atomic_load(&rh_ft_top[i]);

        if (c == NULL) {
            continue;
        }
        for (uint32_t j = 0; j < RH_FT_CHUNK; j++) {
            rh_fblock_t *b = atomic_load(&c->slot[j]);

            if (b != NULL) {
                for (int k = 0; k < b->n; k++) {
                    free(b->f[k].message);
                }
                rh_ft_block_free(b);
            }
        }
        free(c);
        atomic_store(&rh_ft_top[i], NULL);
    }
    free(rh_ft_top);
    rh_ft_top = NULL;
    rh_objcache_fini(&rh_ft_cache);
    atomic_store(&rh_ft_live, 0);
}

long rh_future_live(void)
{
    return atomic_load(&rh_ft_live);
}

static rh_ft_chunk_t *rh_ft_chunk(uint64_t counter, int create)
{
    uint64_t idx = counter >> RH_FT_CHUNK_BITS;
    rh_ft_chunk_t *c = atomic_load_explicit(&rh_ft_top[idx],
                                            memory_order_acquire);
    rh_ft_chunk_t *expected = NULL;

    if (c != NULL || !create) {
        return c;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    atomic_store(&c->remaining, 2 * (int)RH_FT_CHUNK);
    if (idx == 0) {
        atomic_fetch_sub(&c->remaining, 2);   /* counter 0 is never used */
    }
    if (!atomic_compare_exchange_strong(&rh_ft_top[idx], &expected, c)) {
        free(c);
        c = expected;
    }
    return c;
}

static void rh_ft_chunk_done(uint64_t counter, rh_ft_chunk_t *c)
{
    if (atomic_fetch_sub(&c->remaining, 1) == 1) {
        atomic_store(&rh_ft_top[counter >> RH_FT_CHUNK_BITS], NULL);
        free(c);
    }
}

static rh_status_t rh_ft_block_alloc(int n, int is_put, rh_fblock_t **out)
{
    uint64_t counter;
    rh_ft_chunk_t *c;
    rh_fblock_t *b;

    if (rh_ft_top == NULL) {
        return rh_error_set(RH_ERR_NOT_INITIALIZED, "librayhpc is not "
                            "initialized");
    }
    counter = atomic_fetch_add_explicit(&rh_ft_next, 1, memory_order_relaxed);
    if (counter >= (uint64_t)RH_FT_TOP * RH_FT_CHUNK) {
        return rh_error_set(RH_ERR_NO_MEMORY, "this rank used up its 2^32 "
                            "object counters");
    }
    c = rh_ft_chunk(counter, 1);
    if (n == 1) {
        b = rh_objcache_get(&rh_ft_cache);
        if (b != NULL) {
            memset(b, 0, RH_FT_ONE);
        }
    } else {
        b = calloc(1, sizeof(*b) + (size_t)n * sizeof(rh_future_t));
    }
    if (c == NULL || b == NULL) {
        free(b);
        if (c != NULL) {
            rh_ft_chunk_done(counter, c);   /* never installed, never freed */
            rh_ft_chunk_done(counter, c);
        }
        return rh_error_set(RH_ERR_NO_MEMORY, "object table");
    }
    b->counter = counter;
    b->n = n;
    atomic_store(&b->live, n);
    b->is_put = is_put;
    for (int i = 0; i < n; i++) {
        rh_future_t *f = &b->f[i];

        atomic_store_explicit(&f->state, RH_FUTURE_PENDING,
                              memory_order_relaxed);
        atomic_store_explicit(&f->refs, 2, memory_order_relaxed);
        atomic_store_explicit(&f->waiters, NULL, memory_order_relaxed);
        f->block = b;
    }
    atomic_fetch_add_explicit(&rh_ft_live, n, memory_order_relaxed);
    atomic_store_explicit(&c->slot[counter & (RH_FT_CHUNK - 1)], b,
                          memory_order_release);
    rh_ft_chunk_done(counter, c);   /* installed */
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
    return rh_object_id_make(rh_ft_rank, b->counter,
                             is_put ? 0u : (uint32_t)i + 1);
}

rh_future_t *rh_future_find(rh_object_id_t id)
{
    uint64_t counter = rh_object_id_counter(id);
    uint32_t index = rh_object_id_index(id);
    rh_ft_chunk_t *c;
    rh_fblock_t *b;
    rh_future_t *f;

    if (rh_ft_top == NULL || counter == 0 ||
        counter >= (uint64_t)RH_FT_TOP * RH_FT_CHUNK) {
        return NULL;
    }
    c = rh_ft_chunk(counter, 0);
    if (c == NULL) {
        return NULL;
    }
    b = atomic_load_explicit(&c->slot[counter & (RH_FT_CHUNK - 1)],
                             memory_order_acquire);
    if (b == NULL || b->counter != counter) {
        return NULL;
    }
    if (rh_ft_is_put(b)) {
        if (index != 0) {
            return NULL;
        }
        f = &b->f[0];
    } else {
        if (index == 0 || index > (uint32_t)b->n) {
            return NULL;
        }
        f = &b->f[index - 1];
    }
    /* A future whose holds are all gone is released: not for new users. */
    return atomic_load_explicit(&f->refs, memory_order_acquire) > 0 ? f :
           NULL;
}

/* ---- life and death -------------------------------------------------------- */

static void rh_ft_dead(rh_future_t *f)
{
    rh_fblock_t *b = f->block;
    int i = (int)(f - b->f);

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
        uint64_t counter = b->counter;
        rh_ft_chunk_t *c = rh_ft_chunk(counter, 0);

        atomic_store(&c->slot[counter & (RH_FT_CHUNK - 1)], NULL);
        rh_ft_block_free(b);
        rh_ft_chunk_done(counter, c);
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

        w->wake(w, state == RH_FUTURE_FAILED, f->message);
        w = next;
    }
    rh_future_notify();
    rh_future_unhold(f);   /* the producer's reference */
}

void rh_future_complete(rh_future_t *f, const void *data, size_t len,
                        int in_store)
{
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

void rh_future_fail(rh_future_t *f, const char *message)
{
    f->message = strdup(message ? message : "task failed");
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
