#include "core/inflight.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

#include "base/hashmap.h"
#include "base/mpsc.h"
#include "base/objcache.h"

/*
 * One shard per rank that runs tasks of ours, so that its death takes its
 * entries in O(their number). A put is the sender's (a caller streaming
 * calls, a worker forwarding tasks), a take mostly the progress thread's
 * (the answer), and both come once per task: a put takes no lock and
 * looks nothing up. It pushes the entry on the shard's queue (one atomic
 * exchange; the entry comes from an object cache). Takers, under the
 * shard's lock, pop the queue in the order the entries went: answers that
 * come back in that order (a stream of calls to one actor, tasks of equal
 * length) find their entry at its head, with no hash at all; an entry
 * passed over on the way waits in the shard's map, by counter, for its
 * own answer. Each entry moves to the map at most once.
 *
 * A counter is put once (the caller's rule: counters are unique, and a
 * task is taken before it is put again); the table does not look for it.
 */
#define RH_IF_BAD_COUNTER(c) ((c) == 0 || (c) == UINT64_MAX)

#define RH_IF_CHUNK_BITS 10
#define RH_IF_CHUNK      (1 << RH_IF_CHUNK_BITS)
#define RH_IF_TOP        1024      /* ranks up to 2^20 */
#define RH_IF_CACHE_ID   3         /* our rh_objcache slot */

typedef struct rh_if_entry {
    rh_mpsc_node_t node;
    rh_inflight_t  e;
} rh_if_entry_t;

typedef struct rh_if_shard {
    rh_mpsc_t       fresh;     /* put, not yet looked at by a taker */
    pthread_mutex_t lock;      /* the takers' */
    rh_hmap_t       passed;    /* counter -> rh_if_entry_t *, popped from
                                * fresh while a taker looked for another */
} rh_if_shard_t;

typedef struct rh_if_chunk {
    _Atomic(rh_if_shard_t *) shard[RH_IF_CHUNK];
} rh_if_chunk_t;

static pthread_mutex_t rh_if_grow = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(rh_if_chunk_t *) rh_if_top[RH_IF_TOP];
static rh_objcache_t rh_if_cache;
static int rh_if_cache_ready;   /* under rh_if_grow */

/* Rank's shard; made when absent and make is set (NULL: out of memory, or
 * no such rank). */
static rh_if_shard_t *rh_if_shard(int rank, int make)
{
    rh_if_chunk_t *c;
    rh_if_shard_t *s;

    if (rank < 0 || rank >= RH_IF_TOP * RH_IF_CHUNK) {
        return NULL;
    }
    c = atomic_load_explicit(&rh_if_top[rank >> RH_IF_CHUNK_BITS],
                             memory_order_acquire);
    s = c == NULL ? NULL :
        atomic_load_explicit(&c->shard[rank & (RH_IF_CHUNK - 1)],
                             memory_order_acquire);
    if (s != NULL || !make) {
        return s;
    }
    pthread_mutex_lock(&rh_if_grow);
    if (!rh_if_cache_ready) {
        rh_objcache_init(&rh_if_cache, RH_IF_CACHE_ID, sizeof(rh_if_entry_t));
        rh_if_cache_ready = 1;
    }
    c = atomic_load(&rh_if_top[rank >> RH_IF_CHUNK_BITS]);
    if (c == NULL && (c = calloc(1, sizeof(*c))) != NULL) {
        atomic_store_explicit(&rh_if_top[rank >> RH_IF_CHUNK_BITS], c,
                              memory_order_release);
    }
    s = c == NULL ? NULL : atomic_load(&c->shard[rank & (RH_IF_CHUNK - 1)]);
    if (c != NULL && s == NULL && (s = calloc(1, sizeof(*s))) != NULL) {
        rh_mpsc_init(&s->fresh);
        pthread_mutex_init(&s->lock, NULL);
        rh_hmap_init(&s->passed, sizeof(uint64_t), sizeof(rh_if_entry_t *));
        atomic_store_explicit(&c->shard[rank & (RH_IF_CHUNK - 1)], s,
                              memory_order_release);
    }
    pthread_mutex_unlock(&rh_if_grow);
    return s;
}

int rh_inflight_put(const rh_inflight_t *e)
{
    rh_if_shard_t *s;
    rh_if_entry_t *x;

    if (RH_IF_BAD_COUNTER(e->counter) ||
        (s = rh_if_shard(e->rank, 1)) == NULL ||
        (x = rh_objcache_get(&rh_if_cache)) == NULL) {
        return -1;
    }
    x->e = *e;
    rh_mpsc_push(&s->fresh, &x->node);
    return 0;
}

/* The next entry of fresh (under the lock): NULL once it is empty. A push
 * between its two steps hides what was pushed after it, so a pop that
 * finds the queue busy waits for that push to finish: the entry looked for
 * may be behind it. */
static rh_if_entry_t *rh_if_pop(rh_if_shard_t *s)
{
    for (;;) {
        rh_mpsc_node_t *n = rh_mpsc_pop(&s->fresh);

        if (n != NULL) {
            return (rh_if_entry_t *)((char *)n -
                                     offsetof(rh_if_entry_t, node));
        }
        if (rh_mpsc_looks_empty(&s->fresh)) {
            return NULL;
        }
        sched_yield();
    }
}

/* Copies x out and frees it. */
static void rh_if_give(rh_if_entry_t *x, rh_inflight_t *out)
{
    *out = x->e;
    rh_objcache_put(&rh_if_cache, x);
}

int rh_inflight_take(uint64_t counter, int rank, rh_inflight_t *out)
{
    rh_if_shard_t *s = rh_if_shard(rank, 0);
    rh_if_entry_t *x, **slot;
    int found = 0;

    if (RH_IF_BAD_COUNTER(counter) || s == NULL) {
        return 0;
    }
    pthread_mutex_lock(&s->lock);
    if (rh_hmap_count(&s->passed) != 0 &&
        rh_hmap_del(&s->passed, &counter, &x)) {
        rh_if_give(x, out);
        found = 1;
    }
    while (!found && (x = rh_if_pop(s)) != NULL) {
        if (x->e.counter == counter) {
            rh_if_give(x, out);
            found = 1;
        } else if ((slot = rh_hmap_put(&s->passed, &x->e.counter, NULL)) !=
                   NULL) {
            *slot = x;
        } else {
            /* Out of memory for the map: the entry goes back to the queue,
             * behind the others, and this look ends here. */
            rh_mpsc_push(&s->fresh, &x->node);
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return found;
}

int rh_inflight_take_rank(int rank, rh_inflight_t *out)
{
    rh_if_shard_t *s = rh_if_shard(rank, 0);
    rh_if_entry_t *x;
    int found = 0;

    if (s == NULL) {
        return 0;
    }
    pthread_mutex_lock(&s->lock);
    if (rh_hmap_pop(&s->passed, NULL, &x) || (x = rh_if_pop(s)) != NULL) {
        rh_if_give(x, out);
        found = 1;
    }
    pthread_mutex_unlock(&s->lock);
    return found;
}

void rh_inflight_clear(void (*drop)(rh_inflight_t *e))
{
    pthread_mutex_lock(&rh_if_grow);
    for (int i = 0; i < RH_IF_TOP; i++) {
        rh_if_chunk_t *c = atomic_load(&rh_if_top[i]);

        if (c == NULL) {
            continue;
        }
        for (int j = 0; j < RH_IF_CHUNK; j++) {
            rh_if_shard_t *s = atomic_load(&c->shard[j]);
            rh_if_entry_t *x;

            if (s == NULL) {
                continue;
            }
            while (rh_hmap_pop(&s->passed, NULL, &x) ||
                   (x = rh_if_pop(s)) != NULL) {
                drop(&x->e);
                rh_objcache_put(&rh_if_cache, x);
            }
            rh_hmap_fini(&s->passed);
            pthread_mutex_destroy(&s->lock);
            free(s);
        }
        free(c);
        atomic_store(&rh_if_top[i], NULL);
    }
    if (rh_if_cache_ready) {
        rh_objcache_fini(&rh_if_cache);
        rh_if_cache_ready = 0;
    }
    pthread_mutex_unlock(&rh_if_grow);
}
