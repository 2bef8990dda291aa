#include "core/pull.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/completion.h"
#include "base/config.h"
#include "base/hashmap.h"
#include "base/log.h"
#include "base/status.h"
#include "core/core.h"
#include "core/directory.h"
#include "obs/timeline.h"
#include "core/lineage.h"
#include "plasma/store.h"
#include "transport/am.h"
#include "transport/rma.h"
#include "transport/transport.h"

#define RH_PULL_DEPTH 8          /* RDMA reads in flight per pull, at most */
#define RH_PULL_MAX_HOPS 8       /* ASK answers followed before giving up */
#define RH_PULL_NEED_RKEY 1u
#define RH_PULL_MAX_SRC 4        /* copies one pull reads from at once */

#define RH_WAITERS_CLOSED ((rh_waiter_t *)(uintptr_t)1)

/* What the asked rank says. */
enum {
    RH_WHERE_VALUE  = 1,   /* payload: the bytes */
    RH_WHERE_AT     = 2,   /* pinned in the sender's store at offset */
    RH_WHERE_ASK    = 3,   /* rank `src` has a copy: ask it */
    RH_WHERE_FAILED = 4,   /* payload: the task's message */
    RH_WHERE_GONE   = 5    /* payload: why */
};

typedef struct rh_locate_hdr {
    uint64_t hi, lo, token;
    uint32_t flags, reserved;
} rh_locate_hdr_t;

typedef struct rh_where_hdr {
    uint64_t hi, lo;       /* the object */
    uint64_t token, len, offset;
    uint32_t kind, src, rkey_len;
    uint32_t nextra;       /* AT from the owner: other ranks with a copy,
                            * as int32s after the rkey */
} rh_where_hdr_t;

typedef struct rh_unpin_hdr {
    uint64_t hi, lo;
} rh_unpin_hdr_t;

struct rh_pull {
    rh_object_id_t          id;
    uint64_t                token;
    _Atomic int             refs;
    _Atomic int             state;       /* 0 going, 1 ok, 2 failed */
    _Atomic(rh_waiter_t *)  waiters;
    rh_status_t             status;
    char                   *message;
    rh_tp_op_t              op;
    int                     unwanted;    /* rh_pull_lock: delete at the end */
    int                     room_later;  /* failed for room in use: see .h */
    /* progress thread only */
    int                     ask, src, hops, created, inflight;
    rh_status_t             read_error;
    size_t                  len, next_off;
    uint64_t                offset_base;  /* of the copy in src's region */
    /* the copies read from: src (first) and the others that answered */
    int                     nsrc, srcs[RH_PULL_MAX_SRC];
    uint64_t                src_off[RH_PULL_MAX_SRC];
    unsigned                turn;
    int                     nextra, extra[RH_PULL_MAX_SRC];  /* asked */
    uint64_t                t_start;      /* first RDMA read */
    uint64_t                t_asked;      /* timeline: the get asked */
    uint8_t                *dst;
};

/* Copies this rank pinned for other ranks' pulls: (object, rank) -> how
 * many times (each pin holds the object in the store once). */
typedef struct rh_pin_key {
    rh_object_id_t id;
    int64_t        rank;   /* 64 bits: the key has no padding to hash */
} rh_pin_key_t;

static pthread_mutex_t rh_pull_lock = PTHREAD_MUTEX_INITIALIZER;
/* The pulls going on, found by object (a second get joins) and by token
 * (their answers); each holds one reference of the pull. */
static rh_hmap_t rh_pull_by_id = RH_HMAP_INITIALIZER(sizeof(rh_object_id_t),
                                                     sizeof(rh_pull_t *));
static rh_hmap_t rh_pull_tokens = RH_HMAP_INITIALIZER(sizeof(uint64_t),
                                                      sizeof(rh_pull_t *));
static uint64_t rh_pull_next_token = 1;
static rh_hmap_t rh_pins = RH_HMAP_INITIALIZER(sizeof(rh_pin_key_t),
                                               sizeof(long));
static _Atomic uint64_t rh_pull_count, rh_pull_bytes, rh_pull_joined;
static _Atomic uint64_t rh_pull_rdma_bytes, rh_pull_rdma_ns;
static _Atomic uint64_t rh_pull_sources;

uint64_t rh_pull_source_count(void)
{
    return atomic_load(&rh_pull_sources);
}

uint64_t rh_pull_time_ns(void)
{
    return atomic_load(&rh_pull_rdma_ns);
}

uint64_t rh_pull_rdma_bytes_total(void)
{
    return atomic_load(&rh_pull_rdma_bytes);
}

void rh_pull_counters(uint64_t *pulls, uint64_t *bytes, uint64_t *joined)
{
    *pulls = atomic_load(&rh_pull_count);
    *bytes = atomic_load(&rh_pull_bytes);
    *joined = atomic_load(&rh_pull_joined);
}

static size_t rh_inline_max(void)
{
    return rh_cfg.inline_max;
}

/* ---- the side that holds a copy ------------------------------------------- */

static int rh_pin_add(int rank, rh_object_id_t id)
{
    rh_pin_key_t k = { id, rank };
    long *n;

    pthread_mutex_lock(&rh_pull_lock);
    n = rh_hmap_put(&rh_pins, &k, NULL);
    if (n != NULL) {
        ++*n;
    }
    pthread_mutex_unlock(&rh_pull_lock);
    return n != NULL;
}

/* Drops one pin of rank on id. */
static void rh_pin_drop(int rank, rh_object_id_t id)
{
    rh_pin_key_t k = { id, rank };
    long *n;
    int found = 0;

    pthread_mutex_lock(&rh_pull_lock);
    n = rh_hmap_get(&rh_pins, &k);
    if (n != NULL) {
        found = 1;
        if (--*n == 0) {
            (void)rh_hmap_del(&rh_pins, &k, NULL);
        }
    }
    pthread_mutex_unlock(&rh_pull_lock);
    if (found) {
        rh_store_release(rh_core_store(), id);
    }
}

/* Drops every pin of a rank that died (a scan: deaths are rare). The store
 * takes no lock of ours, so releasing under ours is safe. */
static void rh_pin_drop_rank(int rank)
{
    rh_hmap_iter_t it;
    void *key, *val;

    pthread_mutex_lock(&rh_pull_lock);
    rh_hmap_iter_init(&it, &rh_pins);
    while (rh_hmap_iter_next(&it, &key, &val)) {
        rh_pin_key_t k;

        memcpy(&k, key, sizeof(k));
        if (k.rank != rank) {
            continue;
        }
        for (long n = *(long *)val; n > 0; n--) {
            rh_store_release(rh_core_store(), k.id);
        }
        rh_hmap_iter_del(&it);
    }
    pthread_mutex_unlock(&rh_pull_lock);
}

/* Sends an answer: the header, then our rkey (when asked for), the other
 * copies (h->nextra ranks in extra), then data. */
static void rh_where_send_extra(int to, rh_where_hdr_t *h, uint32_t flags,
                                const int32_t *extra, const void *data,
                                size_t len)
{
    const void *rkey = NULL;
    size_t rkey_len = 0, xlen = h->nextra * sizeof(int32_t), total;
    uint8_t *payload = NULL;

    h->src = (uint32_t)rh_rank();
    if (h->kind == RH_WHERE_AT && (flags & RH_PULL_NEED_RKEY)) {
        rh_tp_local_rkey(&rkey, &rkey_len);
    }
    h->rkey_len = (uint32_t)rkey_len;
    total = rkey_len + xlen + len;
    if (rkey_len + xlen != 0) {
        payload = malloc(total);
        if (payload == NULL) {
            return;   /* the puller's rank sees no answer: it was lost */
        }
        memcpy(payload, rkey, rkey_len);
        memcpy(payload + rkey_len, extra, xlen);
        if (len != 0) {
            memcpy(payload + rkey_len + xlen, data, len);
        }
        data = payload;
    }
    if (rh_am_send((uint32_t)to, RH_AM_ID_OBJ_WHERE, h, sizeof(*h), data,
                   total, NULL, NULL) != RH_OK) {
        rh_debug("could not answer rank %d about an object: %s", to,
                 rh_last_error());
    }
    free(payload);
}

static void rh_where_send(int to, rh_where_hdr_t *h, uint32_t flags,
                          const void *data, size_t len)
{
    h->nextra = 0;
    rh_where_send_extra(to, h, flags, NULL, data, len);
}

static void rh_where_text(int to, rh_where_hdr_t *h, uint32_t kind,
                          const char *text)
{
    h->kind = kind;
    rh_where_send(to, h, 0, text, strlen(text) + 1);
}

/* Other live ranks holding a copy of a large object of ours, on nodes
 * other than ours and the puller's: the puller reads from them too. */
static uint32_t rh_answer_extras(int to, rh_object_id_t id, size_t len,
                                 int32_t *extra)
{
    int ranks[RH_PULL_MAX_SRC * 2];
    int n;
    uint32_t k = 0;

    if (rh_object_id_owner(id) != (uint32_t)rh_rank() ||
        len < 2 * rh_cfg.pull_chunk) {
        return 0;
    }
    n = rh_dir_sources(id, ranks, RH_PULL_MAX_SRC * 2);
    for (int i = 0; i < n && k < RH_PULL_MAX_SRC - 1; i++) {
        if (rh_rank_alive(ranks[i]) &&
            rh_core_node_of(ranks[i]) != rh_node_id() &&
            rh_core_node_of(ranks[i]) != rh_core_node_of(to)) {
            extra[k++] = ranks[i];
        }
    }
    return k;
}

/* Answers from this node's store: the value, or a pinned copy's place. */
static void rh_answer_from_store(int to, rh_object_id_t id, rh_where_hdr_t *h,
                                 uint32_t flags)
{
    int32_t extra[RH_PULL_MAX_SRC];
    const void *data;
    size_t len;
    char ids[RH_OBJECT_ID_STRLEN], why[160];
    void *spilled;

    /* spilled here: its bytes go from the file, and it stays on disk */
    if (rh_store_read_spilled(rh_core_store(), id, &spilled, &len) ==
        RH_OK) {
        h->len = len;
        h->kind = RH_WHERE_VALUE;
        rh_where_send(to, h, flags, spilled, len);
        free(spilled);
        return;
    }
    if (rh_store_get(rh_core_store(), id, &data, &len) != RH_OK) {
        snprintf(why, sizeof(why), "object %s is not on node %d (rank %d) "
                 "any more", rh_object_id_str(id, ids), rh_node_id(),
                 rh_rank());
        rh_where_text(to, h, RH_WHERE_GONE, why);
        return;
    }
    h->len = len;
    if (len < rh_inline_max()) {
        h->kind = RH_WHERE_VALUE;
        rh_where_send(to, h, flags, data, len);
        rh_store_release(rh_core_store(), id);
        return;
    }
    if (!rh_pin_add(to, id)) {
        rh_store_release(rh_core_store(), id);
        rh_where_text(to, h, RH_WHERE_GONE, "out of memory pinning a copy");
        return;
    }
    h->kind = RH_WHERE_AT;
    h->offset = rh_store_offset(rh_core_store(), data);
    h->nextra = rh_answer_extras(to, id, len, extra);
    rh_where_send_extra(to, h, flags, extra, NULL, 0);
}

typedef struct rh_locate_wait {
    rh_waiter_t    w;
    int            to;
    rh_object_id_t id;
    uint64_t       token;
    uint32_t       flags;
} rh_locate_wait_t;

static void rh_answer(int to, rh_object_id_t id, uint64_t token,
                      uint32_t flags);

/* The object was pending when asked: answer now that it is final. */
static void rh_locate_wake(rh_waiter_t *w, int failed, const char *message)
{
    rh_locate_wait_t *lw = (rh_locate_wait_t *)w;

    (void)failed;
    (void)message;
    if (rh_core_initialized()) {
        rh_answer(lw->to, lw->id, lw->token, lw->flags);
    }
    free(lw);
}

static void rh_answer_mine(int to, rh_object_id_t id, rh_where_hdr_t *h,
                           uint32_t flags, rh_future_t *f);

/* Any thread: what rank `to` asked about id. */
static void rh_answer(int to, rh_object_id_t id, uint64_t token,
                      uint32_t flags)
{
    rh_where_hdr_t h;
    rh_future_t *f;
    char ids[RH_OBJECT_ID_STRLEN], why[160];

    memset(&h, 0, sizeof(h));
    h.hi = id.hi;
    h.lo = id.lo;
    h.token = token;
    if (rh_object_id_owner(id) != (uint32_t)rh_rank()) {
        rh_answer_from_store(to, id, &h, flags);
        return;
    }
    /* Held while we read it: the owner may let it go meanwhile. */
    f = rh_future_find_hold(id);
    if (f == NULL) {
        snprintf(why, sizeof(why), "object %s was released by its owner, "
                 "rank %d", rh_object_id_str(id, ids), rh_rank());
        rh_where_text(to, &h, RH_WHERE_GONE, why);
        return;
    }
    rh_answer_mine(to, id, &h, flags, f);
    rh_future_unhold(f);
}

/* The answer about one of our objects, f, held. */
static void rh_answer_mine(int to, rh_object_id_t id, rh_where_hdr_t *h,
                           uint32_t flags, rh_future_t *f)
{
    char ids[RH_OBJECT_ID_STRLEN], why[160];
    int rebuilt = 0;

again:
    if (atomic_load(&f->state) == RH_FUTURE_PENDING) {
        rh_locate_wait_t *lw = malloc(sizeof(*lw));

        if (lw == NULL) {
            rh_where_text(to, h, RH_WHERE_GONE, "out of memory");
            return;
        }
        lw->w.wake = rh_locate_wake;
        lw->to = to;
        lw->id = id;
        lw->token = h->token;
        lw->flags = flags;
        if (rh_future_wait_add(f, &lw->w)) {
            return;
        }
        free(lw);   /* final meanwhile: answer below */
    }
    if (atomic_load(&f->state) == RH_FUTURE_FAILED) {
        /* offset carries the failure's status (0: task failed) */
        h->offset = (uint64_t)(int64_t)rh_future_status(f);
        rh_where_text(to, h, RH_WHERE_FAILED, f->message);
        return;
    }
    if (!f->in_store && !rh_future_remote(f)) {
        h->kind = RH_WHERE_VALUE;   /* inline in the future */
        h->len = f->len;
        rh_where_send(to, h, flags, f->data, f->len);
        return;
    }
    if (f->in_store || rh_store_contains(rh_core_store(), id)) {
        rh_answer_from_store(to, id, h, flags);
        return;
    }
    {
        int src;

        /* The copy may be the asker's own: a run on its node (a rerun,
         * most often) sealed it after the asker looked, while we waited
         * for that run. The asker looks again. */
        if (rh_dir_sources(id, &src, 1) == 1 &&
            (rh_rank_alive(src) || rebuilt)) {
            h->kind = RH_WHERE_ASK;
            h->len = f->len;
            h->offset = (uint64_t)src;
            rh_where_send(to, h, 0, NULL, 0);
            return;
        }
        /* Every copy died: answer once it is rebuilt from its lineage. */
        if (!rebuilt && rh_lineage_rebuild(id) == 1) {
            rebuilt = 1;
            goto again;
        }
    }
    snprintf(why, sizeof(why), "object %s has no copy left on any live "
             "node", rh_object_id_str(id, ids));
    rh_where_text(to, h, RH_WHERE_GONE, why);
}

static rh_status_t rh_pull_on_locate(void *arg, rh_am_msg_t *msg)
{
    rh_locate_hdr_t h;
    rh_object_id_t id;

    (void)arg;
    memcpy(&h, msg->hdr, sizeof(h));
    id.hi = h.hi;
    id.lo = h.lo;
    if (rh_object_id_owner(id) >= (uint32_t)rh_size()) {
        return RH_ERR_MALFORMED;
    }
    rh_answer((int)msg->src, id, h.token, h.flags);
    return RH_OK;
}

static rh_status_t rh_pull_on_unpin(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    rh_pin_drop((int)msg->src, rh_object_id_read(msg->hdr));
    return RH_OK;
}

/* ---- the puller --------------------------------------------------------------- */

void rh_pull_put(rh_pull_t *p)
{
    if (atomic_fetch_sub(&p->refs, 1) == 1) {
        free(p->message);
        free(p);
    }
}

int rh_pull_ended(rh_pull_t *p)
{
    return atomic_load(&p->state);
}

int rh_pull_room_later(rh_pull_t *p)
{
    return atomic_load(&p->state) == 2 && p->room_later;
}

rh_status_t rh_pull_status(rh_pull_t *p)
{
    if (atomic_load(&p->state) == 1) {
        return RH_OK;
    }
    return rh_error_set(p->status, "%s", p->message ? p->message :
                        "the pull failed");
}

int rh_pull_wait_add(rh_pull_t *p, rh_waiter_t *w)
{
    rh_waiter_t *head = atomic_load(&p->waiters);

    do {
        if (head == RH_WAITERS_CLOSED) {
            return 0;
        }
        w->next = head;
    } while (!atomic_compare_exchange_weak(&p->waiters, &head, w));
    return 1;
}

static void rh_unpin_send(int rank, rh_object_id_t id)
{
    rh_unpin_hdr_t h = { id.hi, id.lo };

    (void)rh_am_send((uint32_t)rank, RH_AM_ID_OBJ_UNPIN, &h, sizeof(h), NULL,
                     0, NULL, NULL);
}

/* With the lock: p is no longer going on (the maps may already have let it
 * go, or hold a newer pull of the same object). */
static void rh_pull_forget(rh_pull_t *p)
{
    rh_pull_t **q = rh_hmap_get(&rh_pull_by_id, &p->id);

    if (q != NULL && *q == p) {
        (void)rh_hmap_del(&rh_pull_by_id, &p->id, NULL);
    }
    q = rh_hmap_get(&rh_pull_tokens, &p->token);
    if (q != NULL && *q == p) {
        (void)rh_hmap_del(&rh_pull_tokens, &p->token, NULL);
    }
}

/* Progress thread: the pull is over, one way or the other. */
static void rh_pull_end(rh_pull_t *p, rh_status_t status, const char *message)
{
    rh_waiter_t *w;
    int failed = status != RH_OK, unwanted;

    pthread_mutex_lock(&rh_pull_lock);
    rh_pull_forget(p);
    unwanted = p->unwanted;
    pthread_mutex_unlock(&rh_pull_lock);
    if (unwanted || (failed && p->created)) {
        /* abort ours, or the delete put off while our reads wrote it */
        (void)rh_store_delete(rh_core_store(), p->id);
    }
    p->status = status;
    p->message = failed ? strdup(message ? message : "pull failed") : NULL;
    atomic_store(&p->state, failed ? 2 : 1);
    w = atomic_exchange(&p->waiters, RH_WAITERS_CLOSED);
    while (w != NULL) {
        rh_waiter_t *next = w->next;

        w->wake(w, failed ? (int)status : 0, p->message);
        w = next;
    }
    rh_future_notify();
    rh_pull_put(p);   /* the active list's reference */
}

void rh_pull_delete_copy(rh_object_id_t id, int keep_pulled)
{
    rh_pull_t **q;

    pthread_mutex_lock(&rh_pull_lock);
    q = rh_hmap_get(&rh_pull_by_id, &id);
    if (q != NULL) {
        /* The store would free the block it is creating at once: the
         * delete waits for rh_pull_end, which reads this under the lock;
         * or there is none, when a get of this rank may wait for it. */
        if (!keep_pulled) {
            (*q)->unwanted = 1;
        }
        pthread_mutex_unlock(&rh_pull_lock);
        return;
    }
    pthread_mutex_unlock(&rh_pull_lock);
    (void)rh_store_delete(rh_core_store(), id);
}

static void rh_pull_fail(rh_pull_t *p, rh_status_t status, const char *fmt,
                         ...) __attribute__((format(printf, 3, 4)));

static void rh_pull_fail(rh_pull_t *p, rh_status_t status, const char *fmt,
                         ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rh_pull_end(p, status, msg);
}

static void rh_pull_ask(rh_pull_t *p)
{
    rh_locate_hdr_t h;
    char ids[RH_OBJECT_ID_STRLEN];

    memset(&h, 0, sizeof(h));
    h.hi = p->id.hi;
    h.lo = p->id.lo;
    h.token = p->token;
    h.flags = rh_tp_has_rkey(p->ask) ? 0 : RH_PULL_NEED_RKEY;
    if (!rh_rank_alive(p->ask) ||
        rh_am_send((uint32_t)p->ask, RH_AM_ID_OBJ_LOCATE, &h, sizeof(h),
                   NULL, 0, NULL, NULL) != RH_OK) {
        rh_pull_fail(p, RH_ERR_PEER_FAILED, "object %s: rank %d, which "
                     "holds it, failed", rh_object_id_str(p->id, ids),
                     p->ask);
    }
}

static void rh_pull_start_run(rh_tp_op_t *op)
{
    rh_pull_t *p = (rh_pull_t *)((char *)op - offsetof(rh_pull_t, op));

    /* Failed while its start was queued (the rank it asks died): ending it
     * twice would wake its waiters twice. */
    if (atomic_load(&p->state) != 0) {
        /* nothing to do */
    } else if (rh_core_closing()) {
        rh_pull_fail(p, RH_ERR_SHUTDOWN, "the rank is finalizing");
    } else {
        rh_pull_ask(p);
    }
    rh_pull_put(p);   /* the queued start's reference */
}

rh_status_t rh_pull_start(rh_object_id_t id, int ask, rh_pull_t **out)
{
    rh_pull_t *p, **by_id, **by_token;
    int added;

    pthread_mutex_lock(&rh_pull_lock);
    by_id = rh_hmap_put(&rh_pull_by_id, &id, &added);
    if (by_id != NULL && !added) {
        p = *by_id;
        atomic_fetch_add(&p->refs, 1);
        pthread_mutex_unlock(&rh_pull_lock);
        atomic_fetch_add_explicit(&rh_pull_joined, 1, memory_order_relaxed);
        *out = p;
        return RH_OK;
    }
    p = by_id != NULL ? calloc(1, sizeof(*p)) : NULL;
    if (p != NULL) {
        p->id = id;
        p->token = rh_pull_next_token++;
        by_token = rh_hmap_put(&rh_pull_tokens, &p->token, NULL);
        if (by_token == NULL) {
            free(p);
            p = NULL;
        } else {
            *by_token = p;
            *(rh_pull_t **)rh_hmap_get(&rh_pull_by_id, &id) = p;
        }
    }
    if (p == NULL) {
        if (by_id != NULL) {
            (void)rh_hmap_del(&rh_pull_by_id, &id, NULL);
        }
        pthread_mutex_unlock(&rh_pull_lock);
        return rh_error_set(RH_ERR_NO_MEMORY, "pull");
    }
    p->ask = ask;
    p->t_asked = rh_tl_begin();
    /* The caller, the maps, and the start while it is queued: a pull
     * failed by a death before its start ran may be put by its caller and
     * the maps while the start's node still sits in the transport's queue. */
    atomic_store(&p->refs, 3);
    pthread_mutex_unlock(&rh_pull_lock);
    p->op.run = rh_pull_start_run;
    *out = p;
    rh_tp_post(&p->op);
    return RH_OK;
}

static rh_pull_t *rh_pull_by_token(uint64_t token)
{
    rh_pull_t **p;

    pthread_mutex_lock(&rh_pull_lock);
    p = rh_hmap_get(&rh_pull_tokens, &token);
    pthread_mutex_unlock(&rh_pull_lock);
    return p != NULL ? *p : NULL;
}

/* The copies we read from may go now. */
static void rh_pull_unpin_all(rh_pull_t *p)
{
    for (int i = 0; i < p->nsrc; i++) {
        rh_unpin_send(p->srcs[i], p->id);
    }
}

/* Whether the pull reads from rank. */
static int rh_pull_reads_from(const rh_pull_t *p, int rank)
{
    for (int i = 0; i < p->nsrc; i++) {
        if (p->srcs[i] == rank) {
            return 1;
        }
    }
    return 0;
}

/* The bytes are all here: publish them. */
static void rh_pull_finish(rh_pull_t *p)
{
    rh_unpin_hdr_t h = { p->id.hi, p->id.lo };
    rh_status_t status = rh_store_seal(rh_core_store(), p->id);

    rh_pull_unpin_all(p);
    atomic_fetch_add(&rh_pull_sources, (uint64_t)p->nsrc);
    if (status != RH_OK) {
        rh_pull_end(p, status, rh_last_error());
        return;
    }
    p->created = 0;
    atomic_fetch_add(&rh_pull_count, 1);
    atomic_fetch_add(&rh_pull_bytes, p->len);
    atomic_fetch_add(&rh_pull_rdma_bytes, p->len);
    atomic_fetch_add(&rh_pull_rdma_ns, rh_time_ns() - p->t_start);
    rh_tl_end(RH_TL_PULL, "pull", p->t_asked, p->src, p->len);
    if (rh_object_id_owner(p->id) != (uint32_t)rh_rank()) {
        (void)rh_am_send(rh_object_id_owner(p->id), RH_AM_ID_OBJ_COPIED, &h,
                         sizeof(h), NULL, 0, NULL, NULL);
    }
    rh_pull_end(p, RH_OK, NULL);
}

static void rh_pull_read_more(rh_pull_t *p);

static void rh_pull_read_done(void *arg, rh_status_t status)
{
    rh_pull_t *p = arg;

    p->inflight--;
    if (status != RH_OK && p->read_error == RH_OK) {
        p->read_error = status;
    }
    rh_pull_read_more(p);
}

/* Keeps RH_PULL_DEPTH reads going; ends the pull after the last. */
static void rh_pull_read_more(rh_pull_t *p)
{
    size_t chunk = rh_cfg.pull_chunk;
    char ids[RH_OBJECT_ID_STRLEN];

    /* Two reads in flight per copy keep each source busy, and leave work
     * for the copies that join later. */
    int depth = 2 * p->nsrc < RH_PULL_DEPTH ? 2 * p->nsrc : RH_PULL_DEPTH;
    /* The last chunks wait for the copies asked and not yet answered: an
     * answer takes one round trip, far less than reading the rest, and a
     * copy that answers then always has work. */
    size_t hold = (size_t)p->nextra * chunk, limit = p->len;

    if (hold != 0) {   /* extras are named for objects of 2 chunks or more */
        limit = hold < p->len - chunk ? p->len - hold : chunk;
    }

    while (p->read_error == RH_OK && p->next_off < limit &&
           p->inflight < depth) {
        size_t n = limit - p->next_off < chunk ? limit - p->next_off :
                   chunk;
        int k = (int)(p->turn++ % (unsigned)p->nsrc);   /* copies in turn */
        size_t off = p->next_off;
        rh_status_t st;

        /* Counted before the call, whenever the read's done runs. */
        p->inflight++;
        p->next_off += n;
        st = rh_tp_get(p->srcs[k], p->dst + off, n, p->src_off[k] + off,
                       rh_pull_read_done, p);
        if (st != RH_OK) {
            p->inflight--;
            p->next_off = off;
            p->read_error = st;
            break;
        }
    }
    if (p->inflight != 0) {
        return;
    }
    if (p->read_error != RH_OK) {
        rh_pull_unpin_all(p);
        rh_pull_fail(p, p->read_error, "object %s: reading it from rank %d "
                     "failed: %s", rh_object_id_str(p->id, ids), p->src,
                     rh_status_string(p->read_error));
    } else if (p->next_off == p->len) {
        rh_pull_finish(p);
    }
}

/* Room for the object in this node's store (1). Otherwise the pull is
 * over and p may be gone: it ended well when someone else of this node has
 * the object or is bringing it (then wait for the store), or with the
 * reason it cannot be had. Whatever must go with the pull goes first
 * (the pins of the sources). */
static int rh_pull_make_room(rh_pull_t *p)
{
    void *dst;
    rh_status_t st = rh_store_create_copy(rh_core_store(), p->id, p->len,
                                         &dst);
    char msg[512];

    if (st == RH_OK) {
        p->dst = dst;
        p->created = 1;
        return 1;
    }
    snprintf(msg, sizeof(msg), "%s", rh_last_error());
    /* before the end publishes the state (release) */
    p->room_later = st == RH_ERR_STORE_FULL &&
                    rh_store_full_why() == RH_STORE_FULL_PINNED;
    rh_pull_unpin_all(p);
    rh_pull_end(p, st == RH_ERR_BUSY ? RH_OK : st, msg);
    return 0;
}

static int rh_pull_is_extra(const rh_pull_t *p, int rank)
{
    for (int i = 0; i < p->nextra; i++) {
        if (p->extra[i] == rank) {
            return 1;
        }
    }
    return 0;
}

/* rank answered, or never will. */
static void rh_pull_drop_extra(rh_pull_t *p, int rank)
{
    for (int i = 0; i < p->nextra; i++) {
        if (p->extra[i] == rank) {
            p->extra[i] = p->extra[--p->nextra];
            return;
        }
    }
}

/* The owner named other copies: ask each to pin its own, and read from
 * those that do alongside the first. */
static void rh_pull_ask_extras(rh_pull_t *p, const uint8_t *list, uint32_t n)
{
    for (uint32_t i = 0; i < n && p->nextra < RH_PULL_MAX_SRC - 1; i++) {
        int32_t r;
        rh_locate_hdr_t h;

        memcpy(&r, list + i * sizeof(r), sizeof(r));
        if (r < 0 || r >= rh_size() || r == rh_rank() || r == p->src ||
            !rh_rank_alive(r) || rh_pull_is_extra(p, r)) {
            continue;
        }
        memset(&h, 0, sizeof(h));
        h.hi = p->id.hi;
        h.lo = p->id.lo;
        h.token = p->token;
        h.flags = rh_tp_has_rkey(r) ? 0 : RH_PULL_NEED_RKEY;
        if (rh_am_send((uint32_t)r, RH_AM_ID_OBJ_LOCATE, &h, sizeof(h), NULL,
                       0, NULL, NULL) == RH_OK) {
            p->extra[p->nextra++] = r;
        }
    }
}

/* An answer of another copy's rank: one more source, or none. */
static rh_status_t rh_pull_on_extra(rh_pull_t *p, rh_am_msg_t *msg,
                                    const rh_where_hdr_t *h)
{
    int rank = (int)msg->src;

    rh_pull_drop_extra(p, rank);
    if (h->kind == RH_WHERE_AT) {
        if (h->len != p->len || h->rkey_len > msg->data_len ||
            (h->rkey_len != 0 &&
             rh_tp_set_rkey(rank, msg->data, h->rkey_len) != RH_OK) ||
            !rh_tp_has_rkey(rank) || p->nsrc == RH_PULL_MAX_SRC ||
            p->next_off == p->len) {
            rh_unpin_send(rank, p->id);   /* not needed, or not usable */
        } else {
            p->srcs[p->nsrc] = rank;
            p->src_off[p->nsrc] = h->offset;
            p->nsrc++;
            p->turn = (unsigned)p->nsrc - 1;   /* its first read is next */
        }
    }
    /* a copy that went leaves its share to the others */
    rh_pull_read_more(p);
    return RH_OK;
}

static rh_status_t rh_pull_on_where(void *arg, rh_am_msg_t *msg)
{
    rh_where_hdr_t h;
    rh_pull_t *p;
    const uint8_t *data = msg->data;
    size_t dlen = msg->data_len;
    char ids[RH_OBJECT_ID_STRLEN];

    (void)arg;
    memcpy(&h, msg->hdr, sizeof(h));
    if (msg->rndv_desc != NULL || h.rkey_len > dlen) {
        return RH_ERR_MALFORMED;
    }
    p = rh_pull_by_token(h.token);
    if (p != NULL && p->id.hi == h.hi && p->id.lo == h.lo &&
        rh_pull_is_extra(p, (int)msg->src)) {
        return rh_pull_on_extra(p, msg, &h);
    }
    if (p == NULL || (int)msg->src != p->ask ||
        p->id.hi != h.hi || p->id.lo != h.lo) {
        if (h.kind == RH_WHERE_AT) {   /* a pull that ended: unpin */
            rh_object_id_t id = { h.hi, h.lo };

            rh_unpin_send((int)msg->src, id);
        }
        return RH_OK;
    }
    if (h.rkey_len != 0 &&
        rh_tp_set_rkey((int)msg->src, data, h.rkey_len) != RH_OK) {
        rh_pull_fail(p, RH_ERR_TRANSPORT, "object %s: %s",
                     rh_object_id_str(p->id, ids), rh_last_error());
        return RH_OK;
    }
    data += h.rkey_len;
    dlen -= h.rkey_len;
    if (h.nextra > RH_PULL_MAX_SRC - 1 ||
        (h.nextra != 0 && h.kind != RH_WHERE_AT) ||
        h.nextra * sizeof(int32_t) > dlen) {
        return RH_ERR_MALFORMED;
    }
    switch (h.kind) {
    case RH_WHERE_VALUE:
        if (dlen != h.len) {
            return RH_ERR_MALFORMED;
        }
        p->len = dlen;
        p->src = (int)msg->src;
        if (rh_pull_make_room(p)) {
            if (dlen != 0) {
                memcpy(p->dst, data, dlen);
            }
            rh_store_seal(rh_core_store(), p->id);
            p->created = 0;
            atomic_fetch_add(&rh_pull_count, 1);
            atomic_fetch_add(&rh_pull_bytes, dlen);
            rh_tl_end(RH_TL_PULL, "pull", p->t_asked, p->src, dlen);
            if (rh_object_id_owner(p->id) != (uint32_t)rh_rank()) {
                rh_unpin_hdr_t u = { p->id.hi, p->id.lo };

                (void)rh_am_send(rh_object_id_owner(p->id),
                                 RH_AM_ID_OBJ_COPIED, &u, sizeof(u), NULL, 0,
                                 NULL, NULL);
            }
            rh_pull_end(p, RH_OK, NULL);
        }
        return RH_OK;
    case RH_WHERE_AT:
        p->len = h.len;
        p->src = (int)msg->src;
        p->offset_base = h.offset;
        p->nsrc = 1;
        p->srcs[0] = p->src;
        p->src_off[0] = h.offset;
        if (!rh_tp_has_rkey(p->src)) {
            rh_pull_unpin_all(p);
            rh_pull_fail(p, RH_ERR_TRANSPORT, "object %s: no rkey of rank %d",
                         rh_object_id_str(p->id, ids), p->src);
            return RH_OK;
        }
        if (rh_pull_make_room(p)) {
            p->t_start = rh_time_ns();
            rh_pull_ask_extras(p, data, h.nextra);
            rh_pull_read_more(p);
        }
        return RH_OK;
    case RH_WHERE_ASK:
        if (h.offset >= (uint64_t)rh_size() || ++p->hops > RH_PULL_MAX_HOPS) {
            rh_pull_fail(p, RH_ERR_INVALID_REF, "object %s: no rank could "
                         "give it", rh_object_id_str(p->id, ids));
            return RH_OK;
        }
        if ((int)h.offset == rh_rank()) {
            if (rh_store_contains(rh_core_store(), p->id)) {
                rh_pull_end(p, RH_OK, NULL);
            } else {
                rh_pull_fail(p, RH_ERR_INVALID_REF, "object %s: rank %d, "
                             "its owner, has this rank down as holding it, "
                             "but this node's store has no copy",
                             rh_object_id_str(p->id, ids), (int)msg->src);
            }
            return RH_OK;
        }
        p->ask = (int)h.offset;
        rh_pull_ask(p);
        return RH_OK;
    case RH_WHERE_FAILED:
    case RH_WHERE_GONE:
        if (dlen == 0 || data[dlen - 1] != '\0') {
            return RH_ERR_MALFORMED;
        }
        if (h.kind == RH_WHERE_FAILED && (int64_t)h.offset != 0 &&
            ((int64_t)h.offset >= 0 ||
             (int64_t)h.offset < (int64_t)RH_ERR_OWNER_DIED)) {
            return RH_ERR_MALFORMED;
        }
        rh_pull_end(p, h.kind != RH_WHERE_FAILED ? RH_ERR_INVALID_REF :
                    h.offset != 0 ? (rh_status_t)(int64_t)h.offset :
                    RH_ERR_TASK_FAILED, (const char *)data);
        return RH_OK;
    default:
        return RH_ERR_MALFORMED;
    }
}

/* A rank died: pulls that depend on it fail, pins it held go. */
static void rh_pull_on_peer_failure(void *arg, int rank)
{
    char ids[RH_OBJECT_ID_STRLEN];

    (void)arg;
    rh_pin_drop_rank(rank);
    for (;;) {
        rh_pull_t *p = NULL;
        int was_extra = 0;
        rh_hmap_iter_t it;
        void *val;

        pthread_mutex_lock(&rh_pull_lock);
        rh_hmap_iter_init(&it, &rh_pull_tokens);
        while (p == NULL && rh_hmap_iter_next(&it, NULL, &val)) {
            rh_pull_t *q = *(rh_pull_t **)val;

            if (q->dst != NULL && rh_pull_is_extra(q, rank)) {
                was_extra = 1;   /* its answer will not come */
                p = q;
            } else if ((q->ask == rank && q->dst == NULL) ||
                       (rh_pull_reads_from(q, rank) && q->dst != NULL &&
                        q->inflight == 0)) {
                p = q;
            } else if (rh_pull_reads_from(q, rank) && q->dst != NULL &&
                       q->read_error == RH_OK) {
                /* Reads in flight fail on their own; end then. */
                q->read_error = RH_ERR_PEER_FAILED;
            }
        }
        pthread_mutex_unlock(&rh_pull_lock);
        if (p == NULL) {
            return;
        }
        if (was_extra) {
            rh_pull_drop_extra(p, rank);
            rh_pull_read_more(p);
            continue;
        }
        rh_pull_fail(p, RH_ERR_PEER_FAILED, "object %s: rank %d, which "
                     "holds it, failed", rh_object_id_str(p->id, ids), rank);
    }
}

/* ---- waiting --------------------------------------------------------------- */

static int rh_pull_ended_cond(void *arg)
{
    return rh_pull_ended(arg);
}

/* Another rank of this node writes the object: wait until it is sealed,
 * or gone (that rank's pull failed, or it died). */
static int rh_store_sealed_or_gone(void *arg)
{
    rh_object_id_t *id = arg;

    return rh_store_contains(rh_core_store(), *id) ||
           !rh_store_present(rh_core_store(), *id);
}

static rh_status_t rh_pull_ensure_once(rh_object_id_t id, int ask,
                                       uint64_t deadline, int *room_later)
{
    char ids[RH_OBJECT_ID_STRLEN];

    /* A few rounds: when the rank of this node that was bringing it gives
     * up, its object goes and our next pull brings it ourselves. */
    for (int round = 0; round < 4; round++) {
        rh_pull_t *p;
        rh_status_t status;

        if (rh_store_contains(rh_core_store(), id)) {
            return RH_OK;
        }
        status = rh_pull_start(id, ask, &p);
        if (status != RH_OK) {
            return status;
        }
        if (!rh_pull_ended(p) &&
            !rh_core_wait_until(rh_pull_ended_cond, p, deadline)) {
            rh_pull_put(p);
            return rh_error_set(RH_ERR_TIMEOUT, "object %s is not ready "
                                "yet", rh_object_id_str(id, ids));
        }
        status = rh_pull_status(p);
        *room_later = rh_pull_room_later(p);
        rh_pull_put(p);
        if (status != RH_OK) {
            return status;
        }
        if (!rh_store_sealed_or_gone(&id) &&
            !rh_core_wait_until_polled(rh_store_sealed_or_gone, &id,
                                       deadline)) {
            return rh_error_set(RH_ERR_TIMEOUT, "object %s is not ready "
                                "yet", rh_object_id_str(id, ids));
        }
    }
    if (rh_store_contains(rh_core_store(), id)) {
        return RH_OK;
    }
    return rh_error_set(RH_ERR_TRANSPORT, "object %s: the pulls of this "
                        "node kept failing", rh_object_id_str(id, ids));
}

static int rh_pull_nap_over(void *arg)
{
    return rh_time_ns() >= *(const uint64_t *)arg;
}

/* Backpressure as for a put (core/object.c): a store full of objects in
 * use makes the pull start again, after naps, until readers let go, up to
 * RAYHPC_PUT_TIMEOUT_MS or the caller's deadline when that comes first. */
rh_status_t rh_pull_ensure(rh_object_id_t id, int ask, uint64_t deadline)
{
    uint64_t limit = 0, nap_ns = 1000000ull;
    int caller_first = 0;

    for (;;) {
        int room_later = 0;
        rh_status_t status = rh_pull_ensure_once(id, ask, deadline,
                                                 &room_later);
        uint64_t until;

        if (status != RH_ERR_STORE_FULL || !room_later) {
            return status;
        }
        if (limit == 0) {
            limit = rh_time_ns() + rh_cfg.put_timeout_ms * 1000000ull;
            caller_first = deadline != 0 && deadline < limit;
            if (caller_first) {
                limit = deadline;
            }
        }
        until = rh_time_ns() + nap_ns;
        if (until >= limit || rh_core_ending_now()) {
            char msg[512];

            snprintf(msg, sizeof(msg), "%s", rh_last_error());
            return rh_error_set(RH_ERR_STORE_FULL, "%s (%s)", msg,
                                caller_first ? "the get's timeout ended "
                                "before readers let go" : "waited "
                                "RAYHPC_PUT_TIMEOUT_MS for readers to let "
                                "go");
        }
        (void)rh_core_wait_until_polled(rh_pull_nap_over, &until, until);
        if (nap_ns < 32000000ull) {
            nap_ns *= 2;
        }
    }
}

/* A question to a holder was lost (after the retries): an extra copy is
 * left out, the pull's own source fails the pull with the reason. */
static void rh_pull_locate_lost(void *arg, uint32_t dest, const void *hdr,
                                size_t hdr_len, const void *data, size_t len,
                                rh_status_t status)
{
    rh_locate_hdr_t h;
    rh_pull_t *p;
    char ids[RH_OBJECT_ID_STRLEN];

    (void)arg;
    (void)hdr_len;
    (void)data;
    (void)len;
    memcpy(&h, hdr, sizeof(h));
    p = rh_pull_by_token(h.token);
    if (p == NULL || p->id.hi != h.hi || p->id.lo != h.lo) {
        return;   /* ended already */
    }
    if (rh_pull_is_extra(p, (int)dest)) {
        rh_pull_drop_extra(p, (int)dest);
        rh_pull_read_more(p);
    } else if ((int)dest == p->ask) {
        rh_pull_fail(p, status, "object %s: the request to rank %u, which "
                     "holds it, was lost: %s", rh_object_id_str(p->id, ids),
                     dest, status == RH_ERR_PEER_FAILED ? "the rank failed" :
                     rh_status_string(status));
    }
}

/* An answer that pinned a copy for a puller was lost: nobody reads it. */
static void rh_pull_where_lost(void *arg, uint32_t dest, const void *hdr,
                               size_t hdr_len, const void *data, size_t len,
                               rh_status_t status)
{
    rh_where_hdr_t h;
    rh_object_id_t id;

    (void)arg;
    (void)hdr_len;
    (void)data;
    (void)len;
    memcpy(&h, hdr, sizeof(h));
    id.hi = h.hi;
    id.lo = h.lo;
    if (h.kind == RH_WHERE_AT) {
        rh_pin_drop((int)dest, id);
    }
    rh_warn("an answer to rank %u about an object was lost: %s", dest,
            rh_status_string(status));
}

/* ---- set-up ---------------------------------------------------------------- */

rh_status_t rh_pull_setup(void)
{
    rh_status_t status;

    status = rh_am_register(RH_AM_ID_OBJ_LOCATE, sizeof(rh_locate_hdr_t),
                            sizeof(rh_locate_hdr_t), rh_pull_on_locate, NULL);
    if (status == RH_OK) {
        status = rh_am_register(RH_AM_ID_OBJ_WHERE, sizeof(rh_where_hdr_t),
                                sizeof(rh_where_hdr_t), rh_pull_on_where,
                                NULL);
    }
    if (status == RH_OK) {
        status = rh_am_register(RH_AM_ID_OBJ_UNPIN, sizeof(rh_unpin_hdr_t),
                                sizeof(rh_unpin_hdr_t), rh_pull_on_unpin,
                                NULL);
    }
    if (status == RH_OK) {
        status = rh_am_set_lost(RH_AM_ID_OBJ_LOCATE, RH_AM_RETRIES,
                                rh_pull_locate_lost, NULL);
    }
    if (status == RH_OK) {
        status = rh_am_set_lost(RH_AM_ID_OBJ_WHERE, RH_AM_RETRIES,
                                rh_pull_where_lost, NULL);
    }
    if (status == RH_OK) {
        status = rh_tp_on_peer_failure(rh_pull_on_peer_failure, NULL);
    }
    return status;
}

void rh_pull_teardown(void)
{
    rh_pull_t *p;

    pthread_mutex_lock(&rh_pull_lock);
    /* Pulls still going when the progress thread stopped end here. */
    while (rh_hmap_pop(&rh_pull_tokens, NULL, &p)) {
        pthread_mutex_unlock(&rh_pull_lock);
        rh_pull_end(p, RH_ERR_SHUTDOWN, "the rank ended during the pull");
        pthread_mutex_lock(&rh_pull_lock);
    }
    rh_hmap_fini(&rh_pull_by_id);
    rh_hmap_fini(&rh_pull_tokens);
    rh_hmap_fini(&rh_pins);
    pthread_mutex_unlock(&rh_pull_lock);
}
