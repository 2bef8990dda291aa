#include "core/lineage.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/completion.h"
#include "base/config.h"
#include "base/log.h"
#include "base/mpsc.h"
#include "base/objcache.h"
#include "base/status.h"
#include "core/borrow.h"
#include "core/core.h"
#include "core/directory.h"
#include "core/lineage_table.h"
#include "core/pgroup.h"
#include "core/placement.h"
#include "core/task_internal.h"
#include "plasma/store.h"
#include "transport/transport.h"

/* The holds of a run that was lost, kept for its retry (malloc'd: only a
 * retry has them). */
typedef struct rh_lin_next {
    rh_future_t    **held;
    rh_object_id_t  *borrowed;
    int              nheld, nborrowed;
} rh_lin_next_t;

/* A task's spec, as its owner sent it; one allocation. Recorded for every
 * forwarded task and, kept, one per return block held: 96 bytes before
 * what was sent (an empty task's: 128 in all), so that a stream of them
 * writes two or three cache lines per task, not five or six. The objects
 * it takes by ref (ours, then others'), the header and the payload follow
 * it in data[]. */
typedef struct rh_lin_spec {
    rh_lineage_t     base;
    rh_fblock_t     *block;        /* its returns' block: points back */
    union {
        const char     *name;      /* registry entries stay */
        /* Once its returns were all released, its link in the queue of
         * released entries (nobody reads the name from then on). */
        rh_mpsc_node_t  gone;
    };
    uint64_t         pg;           /* its placement group, or 0 ... */
    rh_lin_next_t   *next;         /* a retry's holds, or NULL */
    int32_t          max_retries;  /* -1: no limit */
    int32_t          tries;        /* reruns so far */
    int32_t          rank;         /* ran, or runs, there */
    int32_t          pg_bundle;    /* ... and bundle: reruns go there */
    /* The objects it takes by ref, ours and others': not held (their
     * values go when their holders let go, as they would without
     * lineage), held again for a rebuild if they are still there. */
    uint32_t         nowned, nborrowed;
    uint32_t         len;          /* of the payload */
    uint16_t         hdr_len;
    uint8_t          nreturns;
    uint8_t          retry_exceptions;
    _Alignas(8) uint8_t data[];
} rh_lin_spec_t;

_Static_assert(sizeof(rh_lin_spec_t) == 96, "a spec's fixed part is 96 "
               "bytes: its line and a half");
_Static_assert(RH_MAX_RETURNS <= UINT8_MAX, "nreturns fits its byte");

static rh_object_id_t *rh_lin_owned(rh_lin_spec_t *s)
{
    return (rh_object_id_t *)s->data;
}

static rh_object_id_t *rh_lin_borrowed(rh_lin_spec_t *s)
{
    return rh_lin_owned(s) + s->nowned;
}

/* The header, then the payload. */
static uint8_t *rh_lin_msg(rh_lin_spec_t *s)
{
    return s->data + (size_t)(s->nowned + s->nborrowed) *
                     sizeof(rh_object_id_t);
}

/* A rerun waiting out its backoff. */
typedef struct rh_lin_due {
    struct rh_lin_due *next;
    uint64_t           at_ns;
    uint64_t           counter;
    void             (*fn)(void *arg);   /* or this, when set */
    void             (*drop)(void *arg); /* instead of fn, at teardown */
    void              *arg;
} rh_lin_due_t;

static rh_lineage_table_t rh_lin_tb;
static int rh_lin_up;

/* A task's answer (on the progress thread, or whichever thread holds the
 * network then) does not take the table's lock to link its entry as the
 * newest: it puts the entry in a ring, and whoever takes the lock next
 * (the release of a task's returns, mostly, on the caller's thread) links
 * what is there first, in the order the answers came. In a stream of
 * tasks the answers and the releases took the lock in turn from two cores
 * for every task, and the answer wrote to the entry, a line the caller
 * then took back. One thread at a time puts (the network's token holder:
 * a single producer), the lock's holder takes (a single consumer). An
 * answer still takes the lock itself every RH_LIN_RAN_BATCH answers, at
 * every answer while the bound is under RH_LIN_EAGER_MAX (so that the
 * bound holds within that many entries), and when the ring is full. An
 * entry in the ring is running (its run's answer is what put it there):
 * never dropped for room; and its spec lives until it is taken: a
 * release that comes first is taken out only after the ring is read (see
 * rh_lin_catch_up_locked). */
#define RH_LIN_RING      1024
#define RH_LIN_RAN_BATCH 64
#define RH_LIN_EAGER_MAX (1u << 20)
static struct {
    _Alignas(64) _Atomic size_t head;   /* the producer's */
    size_t tail_seen;                   /* the producer's look at tail */
    _Alignas(64) _Atomic size_t tail;   /* the consumer's */
    _Alignas(64) rh_lin_spec_t *slot[RH_LIN_RING];
} rh_lin_ring;
static _Atomic int rh_lin_eager;
/* Under the lock: what linking the ring dropped for room, and the
 * released entries taken out; dropped by rh_lin_unlock once it is let go. */
static rh_lineage_t *rh_lin_out;

/* The release of a task's returns (on the caller's thread, mostly) does
 * not take the table's lock either: it claims the entry from its block
 * (an exchange, which a drop for room's compare-and-swap on the block
 * loses or wins) and pushes it here; whoever takes the lock next takes it
 * out of the age list and frees it. The lock and the unlink, whose
 * neighbours were cold by then, were what was left of lineage on the
 * caller's thread in a stream of tasks: now one release in
 * RH_LIN_GONE_BATCH takes the lock, if it is free, and takes out the
 * batch, whose neighbours on the age list are each other. While the bound
 * is under RH_LIN_EAGER_MAX every release takes the lock, so that bytes
 * released count no more against it. */
#define RH_LIN_GONE_BATCH 64
static struct {
    _Alignas(64) rh_mpsc_t q;
    /* Releases pushed, roughly: a load and a store, no read-modify-write,
     * on the line every push writes anyway (a lost count only moves the
     * next batch). A thread-local count cost a __tls_get_addr call. */
    _Atomic unsigned pushed;
} rh_lin_gone_q;

/* A spec of up to this many bytes (an empty task's is 128) comes
 * from an object cache: the submitter takes it and the releaser, or the
 * progress thread that drops it for room, gives it back, without malloc's
 * locks and page faults on a stream of them. Larger ones are malloc'd. */
#define RH_LIN_SMALL    384
#define RH_LIN_CACHE_ID 10   /* our rh_objcache slot */
static rh_objcache_t rh_lin_cache;

_Static_assert(sizeof(rh_lin_spec_t) + 128 <= RH_LIN_SMALL,
               "a task of a few small arguments fits the cache's objects");

static rh_lin_spec_t *rh_lin_spec_alloc(size_t size)
{
    return size <= RH_LIN_SMALL ? rh_objcache_get(&rh_lin_cache) :
                                  malloc(size);
}

static void rh_lin_spec_free(rh_lin_spec_t *s)
{
    if (s->base.bytes <= RH_LIN_SMALL) {
        rh_objcache_put(&rh_lin_cache, s);
    } else {
        free(s);
    }
}

static pthread_mutex_t rh_lin_qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rh_lin_qcond = PTHREAD_COND_INITIALIZER;
static rh_lin_due_t *rh_lin_queue;    /* by at_ns */
static pthread_t rh_lin_thread;
static int rh_lin_thread_up, rh_lin_stop;

static void rh_lin_drop_holds(rh_future_t **held, int nheld,
                              rh_object_id_t *borrowed, int nborrowed)
{
    for (int i = 0; i < nheld; i++) {
        rh_future_unhold(held[i]);
    }
    for (int i = 0; i < nborrowed; i++) {
        rh_borrow_drop(borrowed[i]);
    }
    free(held);
    free(borrowed);
}

static void rh_lin_drop(rh_lineage_t *l)
{
    rh_lin_spec_t *s = (rh_lin_spec_t *)l;

    if (s->next != NULL) {
        rh_lin_drop_holds(s->next->held, s->next->nheld, s->next->borrowed,
                          s->next->nborrowed);
        free(s->next);
    }
    rh_lin_spec_free(s);
}

static void rh_lin_free(rh_lineage_t *l)
{
    rh_lin_spec_t *s = (rh_lin_spec_t *)l;

    if (s->next != NULL) {
        free(s->next->held);
        free(s->next->borrowed);
        free(s->next);
    }
    rh_lin_spec_free(s);
}

/* Queues what the table dropped for room for rh_lin_unlock. */
static void rh_lin_out_add(rh_lineage_t *out)
{
    while (out != NULL) {
        rh_lineage_t *next = out->newer;

        out->newer = rh_lin_out;
        rh_lin_out = out;
        out = next;
    }
}

/* With the table's lock just taken: links the answered entries in the
 * ring and takes out the released ones (dropped by rh_lin_unlock). The released are popped before the ring
 * is read: an entry's answer put it in the ring before its release pushed
 * it (the answer holds a return meanwhile), so the ring read after the pop
 * has every released entry's answer, and none is linked after it went. */
static void rh_lin_catch_up_locked(void)
{
    rh_mpsc_node_t *n, *gone = NULL, *last = NULL;
    size_t t, h;

    /* Popped, a node's link is ours: it chains them in their order (not
     * the block: a drop for room below may still read it). */
    while ((n = rh_mpsc_pop(&rh_lin_gone_q.q)) != NULL) {
        atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
        if (last != NULL) {
            atomic_store_explicit(&last->next, n, memory_order_relaxed);
        } else {
            gone = n;
        }
        last = n;
    }
    t = atomic_load_explicit(&rh_lin_ring.tail, memory_order_relaxed);
    h = atomic_load_explicit(&rh_lin_ring.head, memory_order_acquire);
    if (t != h) {
        for (; t != h; t++) {
            rh_lin_out_add(rh_lineage_table_ran_locked(
                &rh_lin_tb, &rh_lin_ring.slot[t % RH_LIN_RING]->base));
        }
        atomic_store_explicit(&rh_lin_ring.tail, t, memory_order_release);
    }
    while (gone != NULL) {
        rh_lin_spec_t *s = (rh_lin_spec_t *)((char *)gone -
                                             offsetof(rh_lin_spec_t, gone));

        gone = atomic_load_explicit(&gone->next, memory_order_relaxed);
        rh_lineage_table_remove_locked(&rh_lin_tb, &s->base);
        s->base.newer = rh_lin_out;
        rh_lin_out = &s->base;
    }
}

/* Takes the table's lock and catches up with answers and releases. */
static void rh_lin_lock(void)
{
    pthread_mutex_lock(&rh_lin_tb.lock);
    rh_lin_catch_up_locked();
}

/* Lets the lock go, then drops what rh_lin_lock took out. */
static void rh_lin_unlock(void)
{
    rh_lineage_t *out = rh_lin_out;

    rh_lin_out = NULL;
    pthread_mutex_unlock(&rh_lin_tb.lock);
    rh_lineage_table_drop_list(&rh_lin_tb, out);
}

/* Dropped for room (under the table's lock): its block lets go of it,
 * unless the entry's release claimed it first (0). The block may have gone
 * meanwhile (its release takes no lock), and been reused: blocks are
 * never handed back to malloc while the table lives, and a reused block's
 * word never holds l, which is not freed before it is out of the table. */
static int rh_lin_detach(rh_lineage_t *l)
{
    void *expected = l;

    return atomic_compare_exchange_strong_explicit(
        &((rh_lin_spec_t *)l)->block->lineage, &expected, NULL,
        memory_order_acq_rel, memory_order_relaxed);
}

/* Counts a release pushed; returns the count. */
static unsigned rh_lin_gone_count(void)
{
    unsigned n = atomic_load_explicit(&rh_lin_gone_q.pushed,
                                      memory_order_relaxed) + 1;

    atomic_store_explicit(&rh_lin_gone_q.pushed, n, memory_order_relaxed);
    return n;
}

/* Every return of the task was released: its entry goes with its block,
 * taken out by the lock's next holder (see rh_lin_gone_q). */
static void rh_lin_gone(rh_fblock_t *b)
{
    rh_lin_spec_t *s = atomic_exchange_explicit(&b->lineage, NULL,
                                                memory_order_acq_rel);

    if (s == NULL) {
        return;   /* dropped for room meanwhile */
    }
    rh_mpsc_push(&rh_lin_gone_q.q, &s->gone);
    if (atomic_load_explicit(&rh_lin_eager, memory_order_relaxed)) {
        rh_lin_lock();
        rh_lin_unlock();
    } else if (rh_lin_gone_count() % RH_LIN_GONE_BATCH == 0 &&
               pthread_mutex_trylock(&rh_lin_tb.lock) == 0) {
        rh_lin_catch_up_locked();
        rh_lin_unlock();
    }
}

/* A hold on a live return of task counter, which keeps its block (and so
 * its entry, unless dropped for room) alive: NULL when every return was
 * released. Let go with rh_future_unhold after the table's lock (a last
 * release takes it). */
static rh_future_t *rh_lin_hold(uint64_t counter, int nreturns)
{
    for (uint32_t i = 1; i <= (uint32_t)nreturns; i++) {
        rh_future_t *f = rh_future_find_hold(
            rh_object_id_make((uint32_t)rh_rank(), counter, i));

        if (f != NULL) {
            return f;
        }
    }
    return NULL;
}

/* The entry of the block f belongs to; with the table's lock held. */
static rh_lin_spec_t *rh_lin_find_locked(rh_future_t *f)
{
    return f == NULL ? NULL :
           atomic_load_explicit(&f->block->lineage, memory_order_relaxed);
}

void rh_lineage_record(rh_fblock_t *b, const char *name, int nreturns,
                       int max_retries, int retry_exceptions, int rank,
                       uint64_t pg, int bundle, const void *hdr,
                       size_t hdr_len, const void *payload, size_t len,
                       const rh_object_id_t *owned, int nowned,
                       const rh_object_id_t *borrowed, int nborrowed)
{
    size_t ids = (size_t)(nowned + nborrowed) * sizeof(rh_object_id_t);
    size_t size = sizeof(rh_lin_spec_t) + ids + hdr_len + len;
    rh_lin_spec_t *s;
    uint8_t *p;

    if (!rh_lin_up) {
        return;
    }
    if (size > UINT32_MAX || hdr_len > UINT16_MAX) {
        rh_debug("task %s is too large to keep as lineage", name);
        return;
    }
    s = rh_lin_spec_alloc(size);
    if (s == NULL) {
        rh_debug("no memory for the lineage of task %s", name);
        return;
    }
    /* Counted first, then each field once, no memset: the spec is likely
     * cold (a stream keeps as many as it holds returns), and each line
     * written costs a miss, which the count's barrier after them would
     * wait for. Running: no lock, on no list. Its answer (which may drop
     * it) comes after the send that follows, and its block outlives this
     * call: the caller holds it. */
    rh_lineage_table_add_running(&rh_lin_tb);
    s->base.older = s->base.newer = NULL;
    s->base.counter = atomic_load_explicit(&b->counter,
                                           memory_order_relaxed);
    s->base.bytes = (uint32_t)size;
    s->base.running = 1;
    s->base.out = 0;
    s->block = b;
    s->name = name;
    s->pg = pg;
    s->next = NULL;
    s->max_retries = max_retries;
    s->tries = 0;
    s->rank = rank;
    s->pg_bundle = bundle;
    s->nowned = (uint32_t)nowned;
    s->nborrowed = (uint32_t)nborrowed;
    s->len = (uint32_t)len;
    s->hdr_len = (uint16_t)hdr_len;
    s->nreturns = (uint8_t)nreturns;
    s->retry_exceptions = (uint8_t)(retry_exceptions != 0);
    p = s->data;
    if (nowned != 0) {
        memcpy(p, owned, (size_t)nowned * sizeof(*owned));
    }
    if (nborrowed != 0) {
        memcpy(p + (size_t)nowned * sizeof(*owned), borrowed,
               (size_t)nborrowed * sizeof(*borrowed));
    }
    p += ids;
    memcpy(p, hdr, hdr_len);
    if (len != 0) {
        memcpy(p + hdr_len, payload, len);
    }
    atomic_store_explicit(&b->lineage, s, memory_order_release);
}

/* ---- reruns ------------------------------------------------------------ */

/* Exponential from RAYHPC_RETRY_BACKOFF, up to a second, with jitter (half
 * to all of it) so that the reruns of many tasks do not land at once. */
static uint64_t rh_lin_backoff_ns(int tries)
{
    uint64_t ms = rh_cfg.retry_backoff_ms;
    static _Atomic uint64_t seed = 0x9e3779b97f4a7c15ull;
    uint64_t x;

    for (int i = 1; i < tries && ms < 1000; i++) {
        ms *= 2;
    }
    if (ms > 1000) {
        ms = 1000;
    }
    x = atomic_fetch_add_explicit(&seed, 0x9e3779b97f4a7c15ull,
                                  memory_order_relaxed);
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 29;
    return ms * 1000000ull / 2 + (x % (ms * 1000000ull / 2 + 1));
}

/* Fails the returns of counter still waiting for a run. */
static void rh_lin_fail(uint64_t counter, int nreturns, rh_status_t status,
                        const char *msg)
{
    for (int i = 0; i < nreturns; i++) {
        rh_object_id_t id = rh_object_id_make((uint32_t)rh_rank(), counter,
                                              (uint32_t)i + 1);
        rh_future_t *f = rh_future_find_hold(id);

        if (f == NULL) {
            continue;
        }
        if (atomic_load(&f->state) == RH_FUTURE_PENDING) {
            rh_future_fail_status(f, status, msg);
        }
        rh_future_unhold(f);
    }
}

static int rh_lin_queue_due(uint64_t counter, void (*fn)(void *),
                            void (*drop)(void *), void *arg, int tries);

/* A placement group's placement changed while a rerun waited for its
 * bundle (progress thread): the rerun thread looks again. */
static void rh_lin_rerun_again(uint64_t counter)
{
    if (!rh_lin_queue_due(counter, NULL, NULL, NULL, 1)) {
        rh_debug("the rerun of counter %llu could not be queued again",
                 (unsigned long long)counter);
    }
}

/* Where the task of counter, in bundle `bundle` of pg, runs again: 1 with
 * *dest, 0 when the bundle's rank died and it is being placed again (the
 * rerun comes back once it is), -1 with why when it cannot. */
static int rh_lin_pg_dest(uint64_t counter, uint64_t pg, int bundle,
                          int *dest, char *why, size_t len)
{
    return rh_pg_rerun_rank(pg, bundle, dest, rh_lin_rerun_again, counter,
                            why, len);
}

/* Sends the task of counter again (on the rerun thread), with the holds
 * of the run that was lost, or, for a rebuild, new ones on the objects it
 * takes: one that is gone (released by all) makes the rebuild fail. A
 * task of a placement group goes where its bundle is now, once it has a
 * place again: another rank would never have the bundle's resources; any
 * other as its strategy and resources placed it (rh_place_rerun_rank),
 * on this rank too when no other rank has room for it. */
static void rh_lin_rerun(uint64_t counter)
{
    rh_future_t *ret = rh_lin_hold(counter, RH_MAX_RETURNS);
    rh_lin_spec_t *s;
    rh_future_t **held = NULL;
    rh_object_id_t *borrowed = NULL, gone = { 0, 0 };
    uint8_t *msg = NULL;
    size_t hdr_len = 0, len = 0;
    int nheld = 0, nborrowed = 0, nreturns = 0, lost = -1, dest = -1;
    int fresh = 0, nomem = 0, pg_bundle = 0, pg_go = 1, pg_dest = -1;
    uint64_t pg = 0;
    const char *name = "?";
    char why[512], ids[RH_OBJECT_ID_STRLEN], gids[RH_OBJECT_ID_STRLEN];
    char pg_why[256], pick_why[320];
    rh_res_req_t req;
    uint32_t place = 0;
    int known;

    rh_lin_lock();
    s = rh_lin_find_locked(ret);
    if (s != NULL) {
        pg = s->pg;
        pg_bundle = s->pg_bundle;
    }
    rh_lin_unlock();
    if (s == NULL) {
        if (ret != NULL) {
            rh_future_unhold(ret);
        }
        return;   /* every return was released meanwhile */
    }
    /* Before the holds are taken: a rerun that waits for its bundle leaves
     * them with the entry. */
    if (pg != 0) {
        pg_go = rh_lin_pg_dest(counter, pg, pg_bundle, &pg_dest, pg_why,
                               sizeof(pg_why));
        if (pg_go == 0) {
            rh_future_unhold(ret);
            return;
        }
    }
    rh_lin_lock();
    s = rh_lin_find_locked(ret);
    if (s != NULL) {
        hdr_len = s->hdr_len;
        len = s->len;
        nreturns = s->nreturns;
        name = s->name;
        lost = s->rank;
        msg = malloc(hdr_len + len + 1);
        if (msg != NULL) {
            memcpy(msg, rh_lin_msg(s), hdr_len + len);
        }
        if (s->next != NULL) {
            held = s->next->held;
            nheld = s->next->nheld;
            borrowed = s->next->borrowed;
            nborrowed = s->next->nborrowed;
            free(s->next);
            s->next = NULL;
        } else {
            const rh_object_id_t *owned = rh_lin_owned(s);

            fresh = 1;
            held = malloc((size_t)s->nowned * sizeof(*held) + 1);
            borrowed = malloc((size_t)s->nborrowed * sizeof(*borrowed) + 1);
            for (uint32_t i = 0; held != NULL && i < s->nowned; i++) {
                held[nheld] = rh_future_find_hold(owned[i]);
                if (held[nheld] == NULL) {
                    gone = owned[i];
                    break;
                }
                nheld++;
            }
            if (borrowed != NULL) {
                nborrowed = (int)s->nborrowed;
                memcpy(borrowed, rh_lin_borrowed(s),
                       (size_t)nborrowed * sizeof(*borrowed));
            }
        }
        nomem = msg == NULL || (fresh && (held == NULL || borrowed == NULL));
    }
    rh_lin_unlock();
    if (s == NULL) {
        if (ret != NULL) {
            rh_future_unhold(ret);
        }
        return;   /* every return was released meanwhile */
    }
    if (fresh) {
        for (int i = 0; i < nborrowed; i++) {
            rh_borrow_hold(borrowed[i]);
        }
    }
    rh_object_id_str(rh_object_id_make((uint32_t)rh_rank(), counter, 1),
                     ids);
    if (nomem) {
        snprintf(why, sizeof(why), "task %s (object %s of rank %d) was lost "
                 "with rank %d and there was no memory to run it again",
                 name, ids, rh_rank(), lost);
    } else if (gone.hi != 0 || gone.lo != 0) {
        snprintf(why, sizeof(why), "task %s (object %s of rank %d) was lost "
                 "with rank %d and cannot run again: its argument %s was "
                 "released", name, ids, rh_rank(), lost,
                 rh_object_id_str(gone, gids));
    } else if (pg != 0 && pg_go < 0) {
        snprintf(why, sizeof(why), "task %s (object %s of rank %d) was lost "
                 "with rank %d and cannot run again: %s", name, ids,
                 rh_rank(), lost, pg_why);
    } else if (pg != 0) {
        dest = pg_dest;
    } else {
        /* Placed as it was submitted; a rank that does not offer what it
         * asks for would keep it waiting for ever. */
        known = rh_forward_req_of(msg, hdr_len, msg + hdr_len, len, &req,
                                  &place) == RH_OK;
        dest = rh_place_rerun_rank(place, known ? &req : NULL, lost,
                                   pick_why, sizeof(pick_why));
        if (dest < 0) {
            snprintf(why, sizeof(why), "task %s (object %s of rank %d) was "
                     "lost with rank %d and %s", name, ids, rh_rank(), lost,
                     pick_why);
        }
    }
    if (dest < 0) {
        rh_lin_drop_holds(held, nheld, borrowed, nborrowed);
        free(msg);
        rh_lin_fail(counter, nreturns, RH_ERR_TASK_FAILED, why);
        rh_lineage_ran(counter, nreturns);
        rh_future_unhold(ret);
        return;
    }
    rh_lin_lock();
    s = rh_lin_find_locked(ret);
    if (s != NULL) {
        s->rank = dest;
    }
    rh_lin_unlock();
    rh_future_unhold(ret);
    rh_debug("task %s (counter %llu) runs again on rank %d", name,
             (unsigned long long)counter, dest);
    if (nheld == 0) {
        free(held);
        held = NULL;
    }
    if (nborrowed == 0) {
        free(borrowed);
        borrowed = NULL;
    }
    rh_forward_resend(dest, name, msg, hdr_len, msg + hdr_len, len, held,
                      nheld, borrowed, nborrowed);
    free(msg);
}

static void *rh_lin_main(void *arg)
{
    (void)arg;
    rh_core_runtime_thread();
    pthread_mutex_lock(&rh_lin_qlock);
    while (!rh_lin_stop) {
        rh_lin_due_t *d = rh_lin_queue;
        uint64_t now = rh_time_ns();

        if (d == NULL) {
            pthread_cond_wait(&rh_lin_qcond, &rh_lin_qlock);
            continue;
        }
        if (d->at_ns > now) {
            struct timespec ts;
            uint64_t wait = d->at_ns - now;

            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += (time_t)(wait / 1000000000ull);
            ts.tv_nsec += (long)(wait % 1000000000ull);
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&rh_lin_qcond, &rh_lin_qlock, &ts);
            continue;
        }
        rh_lin_queue = d->next;
        pthread_mutex_unlock(&rh_lin_qlock);
        if (d->fn != NULL) {
            d->fn(d->arg);
        } else {
            rh_lin_rerun(d->counter);
        }
        free(d);
        pthread_mutex_lock(&rh_lin_qlock);
    }
    pthread_mutex_unlock(&rh_lin_qlock);
    return NULL;
}

/* Queues the rerun of counter (or fn(arg)) after its backoff; 0 when it
 * cannot be (no memory, or the rank is ending). */
static int rh_lin_queue_due(uint64_t counter, void (*fn)(void *),
                            void (*drop)(void *), void *arg, int tries)
{
    rh_lin_due_t *d = malloc(sizeof(*d)), **pp;
    int ok = 1;

    if (d == NULL) {
        return 0;
    }
    d->at_ns = rh_time_ns() + rh_lin_backoff_ns(tries);
    d->counter = counter;
    d->fn = fn;
    d->drop = drop;
    d->arg = arg;
    pthread_mutex_lock(&rh_lin_qlock);
    if (rh_lin_stop) {
        ok = 0;
    } else if (!rh_lin_thread_up) {
        ok = pthread_create(&rh_lin_thread, NULL, rh_lin_main, NULL) == 0;
        rh_lin_thread_up = ok;
    }
    if (ok) {
        for (pp = &rh_lin_queue; *pp != NULL && (*pp)->at_ns <= d->at_ns;
             pp = &(*pp)->next) {
        }
        d->next = *pp;
        *pp = d;
        pthread_cond_signal(&rh_lin_qcond);
    }
    pthread_mutex_unlock(&rh_lin_qlock);
    if (!ok) {
        free(d);
    }
    return ok;
}

static int rh_lin_schedule(uint64_t counter, int tries)
{
    return rh_lin_queue_due(counter, NULL, NULL, NULL, tries);
}

int rh_retry_later(int tries, void (*fn)(void *arg), void (*drop)(void *arg),
                   void *arg)
{
    return rh_lin_up && rh_lin_queue_due(0, fn, drop, arg, tries);
}

static int rh_lin_out_of_retries(const rh_lin_spec_t *s)
{
    return s->max_retries >= 0 && s->tries >= s->max_retries;
}

static void rh_lin_exhausted_msg(const rh_lin_spec_t *s, int rank,
                                 const char *how, char *msg, size_t len)
{
    char ids[RH_OBJECT_ID_STRLEN];

    snprintf(msg, len, "task %s (object %s of rank %d) %s rank %d; no "
             "retry left (max_retries %d, ran %d times)", s->name,
             rh_object_id_str(rh_object_id_make((uint32_t)rh_rank(),
                                                s->base.counter, 1), ids),
             rh_rank(), how, rank, s->max_retries, s->tries + 1);
}

int rh_lineage_retry(uint64_t counter, int rank, int failed,
                     rh_future_t ***held, int *nheld,
                     rh_object_id_t **borrowed, int *nborrowed, char *msg,
                     size_t len)
{
    rh_future_t *ret = rh_lin_hold(counter, RH_MAX_RETURNS);
    /* Taken before the lock; let go unless a retry keeps it. */
    rh_lin_next_t *next = malloc(sizeof(*next));
    rh_lin_spec_t *s;
    int tries = 0, again = 0, nreturns = 0;

    if (len != 0) {
        msg[0] = '\0';
    }
    rh_lin_lock();
    s = rh_lin_find_locked(ret);
    if (s != NULL) {
        nreturns = s->nreturns;
    }
    if (s != NULL && (!failed || s->retry_exceptions)) {
        if (rh_lin_out_of_retries(s)) {
            rh_lin_exhausted_msg(s, rank, failed ? "failed on" :
                                 "was lost with", msg, len);
        } else if (s->next == NULL && next == NULL) {
            snprintf(msg, len, "task %s was lost with rank %d and there was "
                     "no memory to keep it for a retry", s->name, rank);
        } else if (s->next == NULL) {
            /* The lost run's holds keep its arguments for the next. */
            next->held = *held;
            next->nheld = *nheld;
            next->borrowed = *borrowed;
            next->nborrowed = *nborrowed;
            s->next = next;
            next = NULL;
            *held = NULL;
            *borrowed = NULL;
            *nheld = *nborrowed = 0;
            tries = ++s->tries;
            rh_lineage_table_run_locked(&rh_lin_tb, &s->base);
            s->rank = rank;
            again = 1;
        }
    }
    rh_lin_unlock();
    free(next);
    if (ret != NULL) {
        rh_future_unhold(ret);
    }
    if (again && !rh_lin_schedule(counter, tries)) {
        snprintf(msg, len, "the rerun of a task lost with rank %d could not "
                 "be queued", rank);
        rh_lineage_ran(counter, nreturns);
        again = 0;   /* its holds go with the entry */
    }
    return again;
}

void rh_lineage_ran_held(rh_future_t *ret)
{
    rh_lin_spec_t *s;

    /* Its block's word alone: a task without lineage takes no lock and
     * touches nothing shared. */
    if (atomic_load_explicit(&ret->block->lineage, memory_order_acquire) ==
        NULL) {
        return;
    }
    rh_lin_lock();
    s = rh_lin_find_locked(ret);
    if (s != NULL) {
        rh_lineage_t *out = rh_lineage_table_ran_locked(&rh_lin_tb,
                                                         &s->base);

        while (out != NULL) {
            rh_lineage_t *next = out->newer;

            out->newer = rh_lin_out;
            rh_lin_out = out;
            out = next;
        }
    }
    rh_lin_unlock();
}

void rh_lineage_answered(rh_future_t *ret)
{
    rh_lin_spec_t *s;
    size_t h;

    /* Its block's word alone: a task without lineage takes no lock and
     * touches nothing shared. */
    s = atomic_load_explicit(&ret->block->lineage, memory_order_acquire);
    if (s == NULL) {
        return;
    }
    if (!rh_tp_on_progress_thread()) {
        rh_lineage_ran_held(ret);   /* not the ring's one producer */
        return;
    }
    h = atomic_load_explicit(&rh_lin_ring.head, memory_order_relaxed);
    if (h - rh_lin_ring.tail_seen >= RH_LIN_RING) {
        rh_lin_ring.tail_seen = atomic_load_explicit(&rh_lin_ring.tail,
                                                     memory_order_acquire);
        if (h - rh_lin_ring.tail_seen >= RH_LIN_RING) {
            rh_lineage_ran_held(ret);   /* links the ring, then it */
            return;
        }
    }
    rh_lin_ring.slot[h % RH_LIN_RING] = s;
    atomic_store_explicit(&rh_lin_ring.head, h + 1, memory_order_release);
    if (atomic_load_explicit(&rh_lin_eager, memory_order_relaxed) ||
        (h + 1) % RH_LIN_RAN_BATCH == 0) {
        rh_lin_lock();
        rh_lin_unlock();
    }
}

void rh_lineage_ran(uint64_t counter, int nreturns)
{
    rh_future_t *f = rh_lin_hold(counter, nreturns);

    if (f != NULL) {   /* else every return was released: gone with it */
        rh_lineage_ran_held(f);
        rh_future_unhold(f);
    }
}

/* Whether id is lost: READY, on other nodes only, none of them alive. */
static int rh_lin_lost(rh_future_t *f, rh_object_id_t id, int *where)
{
    int src = -1;

    if (atomic_load(&f->state) != RH_FUTURE_READY || !rh_future_remote(f) ||
        rh_store_contains(rh_core_store(), id)) {
        return 0;
    }
    if (rh_dir_sources(id, &src, 1) == 1 && rh_rank_alive(src)) {
        return 0;
    }
    *where = src;
    return 1;
}

/* Rebuilds the lost returns of counter. Returns 1 when they are being
 * rebuilt (or failed: retries ran out), 0 when there is no lineage, -1
 * when nothing is lost. */
static int rh_lin_rebuild_counter(uint64_t counter, int *where)
{
    rh_future_t *f[RH_MAX_RETURNS];
    int lost[RH_MAX_RETURNS], nlost = 0, n = 0, again = 0, tries = 0;
    int nreturns = 0;
    rh_future_t *ret = rh_lin_hold(counter, RH_MAX_RETURNS);
    rh_lin_spec_t *s;
    char msg[512];

    msg[0] = '\0';
    rh_lin_lock();
    s = rh_lin_find_locked(ret);
    n = s != NULL ? s->nreturns : 0;
    rh_lin_unlock();
    if (s == NULL) {
        if (ret != NULL) {
            rh_future_unhold(ret);
        }
        return 0;
    }
    for (int i = 0; i < n; i++) {
        rh_object_id_t id = rh_object_id_make((uint32_t)rh_rank(), counter,
                                              (uint32_t)i + 1);

        f[i] = rh_future_find_hold(id);
        lost[i] = f[i] != NULL && rh_lin_lost(f[i], id, where);
        nlost += lost[i];
    }
    if (nlost == 0) {
        for (int i = 0; i < n; i++) {
            if (f[i] != NULL) {
                rh_future_unhold(f[i]);
            }
        }
        rh_future_unhold(ret);
        return -1;
    }
    rh_lin_lock();
    s = rh_lin_find_locked(ret);
    if (s != NULL && s->base.running) {
        again = 2;   /* a run is out already: its answer completes them */
    } else if (s != NULL) {
        nreturns = s->nreturns;
        if (rh_lin_out_of_retries(s)) {
            rh_lin_exhausted_msg(s, *where, "lost its returns with", msg,
                                 sizeof(msg));
        } else {
            tries = ++s->tries;
            rh_lineage_table_run_locked(&rh_lin_tb, &s->base);
            again = 1;
        }
        for (int i = 0; i < n; i++) {
            if (f[i] != NULL && lost[i]) {
                (void)rh_future_reopen(f[i]);
            }
        }
    }
    rh_lin_unlock();
    for (int i = 0; i < n; i++) {
        if (f[i] != NULL) {
            rh_future_unhold(f[i]);
        }
    }
    rh_future_unhold(ret);
    if (s == NULL) {
        return 0;
    }
    if (again == 1 && !rh_lin_schedule(counter, tries)) {
        snprintf(msg, sizeof(msg), "the rebuild of an object lost with rank "
                 "%d could not be queued", *where);
        again = 0;
    }
    if (again == 0) {
        rh_lin_fail(counter, nreturns, RH_ERR_TASK_FAILED, msg);
        rh_lineage_ran(counter, nreturns);
    } else if (again == 1) {
        rh_debug("rebuilding the returns of counter %llu, lost with rank %d",
                 (unsigned long long)counter, *where);
    }
    return 1;
}

void rh_lineage_peer_failed(int rank)
{
    uint64_t *counters = NULL;
    size_t n = 0, cap = 0;

    if (rh_lineage_count() == 0) {
        return;
    }
    /* The counters first: looking at futures under the table's lock could
     * end one, whose end takes the lock. */
    rh_lin_lock();
    for (rh_lineage_t *l = rh_lin_tb.oldest; l != NULL; l = l->newer) {
        if (l->running) {
            continue;
        }
        if (n == cap) {
            size_t c = cap ? 2 * cap : 64;
            uint64_t *p = realloc(counters, c * sizeof(*p));

            if (p == NULL) {
                break;
            }
            counters = p;
            cap = c;
        }
        counters[n++] = l->counter;
    }
    rh_lin_unlock();
    for (size_t i = 0; i < n; i++) {
        int where = rank;

        (void)rh_lin_rebuild_counter(counters[i], &where);
    }
    free(counters);
}

int rh_lineage_rebuild(rh_object_id_t id)
{
    int where = -1, r;
    char ids[RH_OBJECT_ID_STRLEN];

    r = rh_lin_rebuild_counter(rh_object_id_counter(id), &where);
    if (r == 0) {
        (void)rh_dir_sources(id, &where, 1);
        rh_error_set(RH_ERR_OBJECT_LOST, "object %s was lost with every "
                     "copy (the last on rank %d) and cannot be rebuilt: its "
                     "lineage was dropped (RAYHPC_LINEAGE_MAX_BYTES=%llu) or "
                     "its task has max_retries 0",
                     rh_object_id_str(id, ids), where,
                     (unsigned long long)rh_cfg.lineage_max_bytes);
    }
    return r;
}

void rh_lineage_set_max(size_t max)
{
    if (rh_lin_up) {
        atomic_store_explicit(&rh_lin_eager, max < RH_LIN_EAGER_MAX,
                              memory_order_relaxed);
        rh_lin_lock();   /* what is in the ring counts first */
        rh_lin_unlock();
        rh_lineage_table_set_max(&rh_lin_tb, max);
    }
}

size_t rh_lineage_count(void)
{
    if (!rh_lin_up) {
        return 0;
    }
    if (!rh_mpsc_looks_empty(&rh_lin_gone_q.q)) {
        rh_lin_lock();   /* the released ones waiting go first */
        rh_lin_unlock();
    }
    return rh_lineage_table_count(&rh_lin_tb);
}

size_t rh_lineage_bytes(void)
{
    if (!rh_lin_up) {
        return 0;
    }
    rh_lin_lock();
    rh_lin_unlock();
    return rh_lineage_table_bytes(&rh_lin_tb);
}

long rh_lineage_dropped(void)
{
    return rh_lin_up ? rh_lin_tb.dropped : 0;
}

rh_status_t rh_lineage_setup(void)
{
    rh_objcache_init(&rh_lin_cache, RH_LIN_CACHE_ID, RH_LIN_SMALL);
    rh_lineage_table_init(&rh_lin_tb, rh_cfg.lineage_max_bytes,
                          rh_lin_detach, rh_lin_drop);
    atomic_store(&rh_lin_ring.head, 0);
    atomic_store(&rh_lin_ring.tail, 0);
    rh_lin_ring.tail_seen = 0;
    rh_lin_out = NULL;
    rh_mpsc_init(&rh_lin_gone_q.q);
    atomic_store(&rh_lin_eager,
                 rh_cfg.lineage_max_bytes < RH_LIN_EAGER_MAX);
    rh_future_set_gone_hook(rh_lin_gone);
    rh_lin_stop = 0;
    rh_lin_up = 1;
    return RH_OK;
}

void rh_lineage_quiesce(void)
{
    if (!rh_lin_up) {
        return;
    }
    pthread_mutex_lock(&rh_lin_qlock);
    rh_lin_stop = 1;
    pthread_cond_signal(&rh_lin_qcond);
    pthread_mutex_unlock(&rh_lin_qlock);
    if (rh_lin_thread_up) {
        pthread_join(rh_lin_thread, NULL);
        rh_lin_thread_up = 0;
    }
}

/* Teardown: the entry of a block still alive goes; the futures and
 * borrows it holds go with their own tables. */
static void rh_lin_teardown_block(rh_fblock_t *b)
{
    rh_lin_spec_t *s = atomic_load(&b->lineage);

    if (s != NULL) {
        atomic_store(&b->lineage, NULL);
        rh_lin_lock();
        rh_lineage_table_remove_locked(&rh_lin_tb, &s->base);
        rh_lin_unlock();
        rh_lin_free(&s->base);
    }
}

void rh_lineage_teardown(void)
{
    rh_lin_due_t *d;

    if (!rh_lin_up) {
        return;
    }
    rh_lineage_quiesce();
    /* What waited for its backoff ends as its owner says: a task fails, an
     * argument's wait ends, so nothing it holds is left behind. A drop that
     * asks for a retry again is refused (the thread stopped). */
    while ((d = rh_lin_queue) != NULL) {
        rh_lin_queue = d->next;
        if (d->fn != NULL && d->drop != NULL) {
            d->drop(d->arg);
        }
        free(d);
    }
    rh_lin_up = 0;
    rh_future_set_gone_hook(NULL);
    /* Nobody answers any more: what is in the ring is linked before the
     * blocks are looked at. */
    rh_lin_tb.drop = rh_lin_free;
    rh_lin_lock();
    rh_lin_unlock();
    rh_future_each_block(rh_lin_teardown_block);
    rh_lineage_table_fini(&rh_lin_tb);
    rh_objcache_fini(&rh_lin_cache);
}
