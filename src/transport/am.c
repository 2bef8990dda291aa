/*
 * Active-message layer: the id -> handler table, the checks every incoming
 * message passes, and the send path.
 *
 * A send is described by an rh_am_sreq that holds the contiguous UCX header
 * (wire header + user header) for as long as UCX may read it. Requests made
 * on the progress thread come from a free list owned by that thread, so the
 * hot path (a handler answering a message) neither locks nor allocates;
 * other threads take one from a per-thread object cache and post it through
 * the op queue, and the progress thread gives it back to that cache when
 * its own list is full (a driver's sends and a worker's answers then cost
 * no malloc either).
 *
 * Every send the call accepted reports its outcome on the progress thread,
 * never inside the call: a send that failed to a rank still alive goes
 * again (its id's retries), then its done callback hears the error, or,
 * without one, its id's lost handler, which fails what depended on the
 * message. Sends from other threads are counted until done, so that
 * submitters can wait for room (rh_am_wait_room) before adding more.
 */
#include "transport/am.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/completion.h"
#include "base/log.h"
#include "base/objcache.h"
#include "base/status.h"
#include "transport/shmlink.h"
#include "transport/tp_internal.h"
#include "transport/transport.h"

#define RH_AM_SMALL_DATA 256   /* payload copied into a free-list request */
#define RH_AM_RING_WAITS 64    /* yields of a thread that found a ring full */
#define RH_AM_FREE_MAX   1024  /* requests kept on the free list */
#define RH_AM_CACHE_ID   2     /* our rh_objcache slot */

typedef struct rh_am_entry {
    rh_am_handler_fn fn;
    void            *arg;
    size_t           min_hdr, max_hdr;
    /* a failed send of this id: sent again, then handed to lost */
    rh_am_lost_fn    lost;
    void            *lost_arg;
    unsigned         retries;
    int              retries_set;
    int              guests;   /* takes messages from outside the job */
} rh_am_entry_t;

typedef struct rh_am_sreq rh_am_sreq_t;
struct rh_am_sreq {
    rh_tp_op_t     op;        /* queue node when posted by another thread */
    rh_am_sreq_t  *next_free;
    uint32_t       dest;
    uint32_t       hdr_total;
    uint16_t       id;        /* RH_AM_ID_INVALID: a raw send */
    uint8_t        attempts;  /* sends again after a failure */
    uint8_t        counted;   /* posted by another thread: in `posted` */
    rh_status_t    status;    /* of the failure being handled */
    rh_am_done_fn  done;
    void          *done_arg;
    const void    *data;
    size_t         len;
    void          *copy;      /* heap copy of a large payload, freed at end */
    size_t         ring_sent; /* bytes in a same-host ring so far */
    uint8_t        hdr[sizeof(rh_am_wire_hdr_t) + RH_AM_MAX_HDR];
    uint8_t        small[RH_AM_SMALL_DATA];
};

typedef struct rh_am_ringq {
    rh_am_sreq_t *head, *tail;
} rh_am_ringq_t;

/* Messages to one rank held back while more posted work waits: the first
 * stays whole (alone it leaves as it came), from the second on they are
 * copied into buf. */
typedef struct rh_am_batch {
    rh_am_sreq_t *first;
    uint8_t      *buf;        /* RH_AM_BATCH_BYTES */
    uint32_t      len;        /* bytes the messages take, padded */
    uint32_t      count;
    uint32_t      counted;    /* copies of counted sends: off `posted` once
                               * the batch left (nothing overtakes them) */
    int           listed;     /* in batch_dests */
} rh_am_batch_t;

typedef struct rh_am_layer {
    rh_am_entry_t  table[RH_AM_ID_MAX];
    rh_am_stats_t  stats;
    rh_am_sreq_t  *free_list;   /* progress thread only */
    unsigned       num_free;
    rh_objcache_t  cache;       /* requests for the other threads */
    uint64_t       rndv_thresh;
    uint64_t       fault_every; /* RAYHPC_FAULT_SENDS */
    uint64_t       fault_count; /* progress thread only */
    int            coalesce;    /* RAYHPC_COALESCE */
    long           posted_max;
    /* held back to coalesce, per rank (progress thread only) */
    struct rh_am_batch *batches;
    uint32_t      *batch_dests;   /* ranks with one listed */
    uint32_t       num_batch_dests;
    /* sends waiting for room in a same-host ring, per rank, in order
     * (progress thread only; linked through next_free) */
    struct rh_am_ringq *ringq;
    uint32_t      *ringq_dests;   /* ranks with some */
    uint32_t       num_ringq_dests;
    /* sends from other threads not done yet, and who waits for room: a
     * line of their own, written by every sender, away from the fields
     * the progress thread reads on each send */
    _Alignas(64) _Atomic long posted;
    _Atomic int    room_waiters;
    pthread_mutex_t room_lock;
    pthread_cond_t  room_cond;
} rh_am_layer_t;

static rh_am_layer_t rh_am = {
    .room_lock = PTHREAD_MUTEX_INITIALIZER,
    .room_cond = PTHREAD_COND_INITIALIZER,
};

static const char *const rh_am_drop_names[RH_AM_DROP_NUM] = {
    [RH_AM_DROP_SHORT_HEADER] = "header shorter than the wire header",
    [RH_AM_DROP_BAD_MAGIC]    = "bad magic or version",
    [RH_AM_DROP_UNKNOWN_ID]   = "unknown message id",
    [RH_AM_DROP_BAD_SOURCE]   = "source rank out of range",
    [RH_AM_DROP_HDR_LENGTH]   = "header length does not match",
    [RH_AM_DROP_DATA_LENGTH]  = "payload length does not match",
    [RH_AM_DROP_HANDLER_HDR]  = "header size outside the handler's range",
    [RH_AM_DROP_REJECTED]     = "body rejected by its handler",
};

const char *rh_am_drop_string(rh_am_drop_t reason)
{
    return reason < RH_AM_DROP_NUM ? rh_am_drop_names[reason] : "none";
}

const rh_am_stats_t *rh_am_stats(void)
{
    return &rh_am.stats;
}

rh_status_t rh_am_register(uint16_t id, size_t min_hdr, size_t max_hdr,
                           rh_am_handler_fn fn, void *arg)
{
    if (id == RH_AM_ID_INVALID || id >= RH_AM_ID_MAX || fn == NULL ||
        min_hdr > max_hdr || max_hdr > RH_AM_MAX_HDR) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "cannot register AM id %u "
                            "(ids 1..%u, header ranges up to %u bytes)",
                            (unsigned)id, RH_AM_ID_MAX - 1, RH_AM_MAX_HDR);
    }
    if (rh_am.table[id].fn != NULL && rh_am.table[id].fn != fn) {
        return rh_error_set(RH_ERR_BUSY, "AM id %u is already registered",
                            (unsigned)id);
    }
    rh_am.table[id].min_hdr = min_hdr;
    rh_am.table[id].max_hdr = max_hdr;
    rh_am.table[id].arg = arg;
    /* Publish the handler last: the receive path tests fn. */
    __atomic_store_n(&rh_am.table[id].fn, fn, __ATOMIC_RELEASE);
    return RH_OK;
}

void rh_am_lost_quietly(void *arg, uint32_t dest, const void *hdr,
                        size_t hdr_len, const void *data, size_t len,
                        rh_status_t status)
{
    (void)hdr;
    (void)hdr_len;
    (void)data;
    (void)len;
    rh_debug("%s to rank %u was lost (%s)", (const char *)arg, dest,
             rh_status_string(status));
}

rh_status_t rh_am_accept_guests(uint16_t id)
{
    if (id == RH_AM_ID_INVALID || id >= RH_AM_ID_MAX) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "cannot open AM id %u to "
                            "messages from outside the job (ids 1..%u)",
                            (unsigned)id, RH_AM_ID_MAX - 1);
    }
    __atomic_store_n(&rh_am.table[id].guests, 1, __ATOMIC_RELEASE);
    return RH_OK;
}

rh_status_t rh_am_set_lost(uint16_t id, unsigned retries, rh_am_lost_fn lost,
                           void *arg)
{
    if (id == RH_AM_ID_INVALID || id >= RH_AM_ID_MAX || retries > 255) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "cannot set how lost "
                            "messages of AM id %u are handled (ids 1..%u, "
                            "at most 255 retries)", (unsigned)id,
                            RH_AM_ID_MAX - 1);
    }
    rh_am.table[id].lost = lost;
    rh_am.table[id].lost_arg = arg;
    rh_am.table[id].retries = retries;
    rh_am.table[id].retries_set = 1;
    return RH_OK;
}

/* ---- receive ------------------------------------------------------------- */

/* Counters have one writer, the progress thread: a plain add that other
 * threads may read at any time, without a locked instruction. */
static inline uint64_t rh_am_count(_Atomic uint64_t *counter)
{
    uint64_t v = atomic_load_explicit(counter, memory_order_relaxed);

    atomic_store_explicit(counter, v + 1, memory_order_relaxed);
    return v;
}

rh_am_drop_t rh_am_check(const void *hdr, size_t hlen, size_t dlen,
                         uint32_t nranks)
{
    rh_am_wire_hdr_t w;
    const rh_am_entry_t *e;
    size_t uhdr;

    if (hdr == NULL || hlen < sizeof(w)) {
        return RH_AM_DROP_SHORT_HEADER;
    }
    memcpy(&w, hdr, sizeof(w));   /* UCX gives no alignment guarantee */
    if (w.magic != RH_AM_MAGIC || w.version != RH_AM_VERSION) {
        return RH_AM_DROP_BAD_MAGIC;
    }
    if (w.id == RH_AM_ID_INVALID || w.id >= RH_AM_ID_MAX ||
        __atomic_load_n(&rh_am.table[w.id].fn, __ATOMIC_ACQUIRE) == NULL) {
        return RH_AM_DROP_UNKNOWN_ID;
    }
    if ((w.flags & RH_AM_FLAG_GUEST) != 0 ?
        w.src != RH_AM_SRC_GUEST ||
        !__atomic_load_n(&rh_am.table[w.id].guests, __ATOMIC_ACQUIRE) :
        w.src >= nranks) {
        return RH_AM_DROP_BAD_SOURCE;
    }
    uhdr = hlen - sizeof(w);
    if (w.hdr_len != uhdr) {
        return RH_AM_DROP_HDR_LENGTH;
    }
    if (w.data_len != (uint32_t)dlen) {
        return RH_AM_DROP_DATA_LENGTH;
    }
    e = &rh_am.table[w.id];
    if (uhdr < e->min_hdr || uhdr > e->max_hdr) {
        return RH_AM_DROP_HANDLER_HDR;
    }
    return RH_AM_DROP_NUM;
}

static void rh_am_count_drop(rh_am_drop_t reason, const void *hdr,
                             size_t hlen)
{
    uint64_t n = rh_am_count(&rh_am.stats.dropped[reason]);
    uint16_t id = 0;

    if (hlen >= sizeof(rh_am_wire_hdr_t)) {
        memcpy(&id, (const char *)hdr +
               offsetof(rh_am_wire_hdr_t, id), sizeof(id));
    }
    /* Log the first few of each kind, then every 1024th: a flood of bad
     * messages must not become a flood of log lines. */
    if (n < 8 || (n & 1023) == 0) {
        rh_warn("dropped a malformed message (%s; id %u, %zu header "
                "bytes; %llu such drops so far)", rh_am_drop_string(reason),
                (unsigned)id, hlen, (unsigned long long)n + 1);
    }
}

/* The receive path proper: the checks, then the handler. rndv_desc is set
 * when the payload is still remote (data is then UCX's descriptor). */
static rh_am_drop_t rh_am_dispatch(const void *header, size_t header_length,
                                   void *data, size_t length, int rndv)
{
    rh_am_wire_hdr_t w;
    rh_am_drop_t reason;
    rh_am_msg_t msg;
    rh_am_entry_t *e;
    rh_status_t status;

    rh_am_count(&rh_am.stats.received);
    reason = rh_am_check(header, header_length, length,
                         (uint32_t)rh_tp_size());
    if (rh_unlikely(reason != RH_AM_DROP_NUM)) {
        rh_am_count_drop(reason, header, header_length);
        return reason;   /* a rendezvous descriptor is dropped by UCX */
    }
    memcpy(&w, header, sizeof(w));
    e = &rh_am.table[w.id];
    msg.src = w.src;
    msg.id = w.id;
    msg.hdr = (const char *)header + sizeof(w);
    msg.hdr_len = w.hdr_len;
    msg.data_len = length;
    msg.data = rndv ? NULL : data;
    msg.rndv_desc = rndv ? data : NULL;
    status = e->fn(e->arg, &msg);
    if (rh_unlikely(status == RH_ERR_MALFORMED)) {
        rh_am_count_drop(RH_AM_DROP_REJECTED, header, header_length);
        return RH_AM_DROP_REJECTED;
    }
    return RH_AM_DROP_NUM;
}

static ucs_status_t rh_am_recv(void *arg, const void *header,
                               size_t header_length, void *data,
                               size_t length, const ucp_am_recv_param_t *param)
{
    (void)arg;
    (void)rh_am_dispatch(header, header_length, data, length,
                         (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0);
    return UCS_OK;
}

void rh_am_ring_deliver(const void *hdr, size_t hlen, void *data, size_t dlen)
{
    (void)rh_am_dispatch(hdr, hlen, data, dlen, 0);
}

/* Messages handed in by rh_am_deliver, run on the progress thread. */
typedef struct rh_am_inject {
    rh_tp_op_t       op;
    rh_am_raw_t     *msgs;
    size_t           n;
    rh_completion_t  done;
} rh_am_inject_t;

static void rh_am_inject_run(rh_tp_op_t *op)
{
    rh_am_inject_t *x = (rh_am_inject_t *)op;

    for (size_t i = 0; i < x->n; i++) {
        rh_am_raw_t *m = &x->msgs[i];

        m->reason = rh_am_dispatch(m->hdr, m->hlen, m->data, m->dlen, 0);
    }
    rh_completion_signal(&x->done, RH_OK);
}

rh_status_t rh_am_deliver(rh_am_raw_t *msgs, size_t n)
{
    rh_am_inject_t x;

    if (!rh_tp_running() || rh_tp_stopping()) {
        return rh_error_set(RH_ERR_NOT_INITIALIZED, "no progress thread to "
                            "deliver messages on");
    }
    x.op.run = rh_am_inject_run;
    x.msgs = msgs;
    x.n = n;
    rh_completion_init(&x.done);
    rh_tp_post(&x.op);   /* runs at once on the progress thread */
    (void)rh_completion_wait(&x.done, -1);
    return RH_OK;
}

typedef struct rh_am_recv_ctx {
    rh_am_done_fn done;
    void         *arg;
    int           src;
} rh_am_recv_ctx_t;

static void rh_am_recv_data_cb(void *request, ucs_status_t status,
                               size_t length, void *user_data)
{
    rh_am_recv_ctx_t *ctx = user_data;

    (void)length;
    ctx->done(ctx->arg, rh_tp_status_from_ucs(status, ctx->src));
    free(ctx);
    ucp_request_free(request);
    rh_tp_open_reqs--;
}

rh_status_t rh_am_recv_data(rh_am_msg_t *msg, void *buf, rh_am_done_fn done,
                            void *done_arg)
{
    ucp_request_param_t param;
    rh_am_recv_ctx_t *ctx;
    void *req;

    if (msg->rndv_desc == NULL || done == NULL) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "no rendezvous payload to "
                            "receive, or no completion callback");
    }
    ctx = malloc(sizeof(*ctx));
    if (ctx == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "receive context");
    }
    ctx->done = done;
    ctx->arg = done_arg;
    ctx->src = (int)msg->src;
    memset(&param, 0, sizeof(param));
    param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK |
                         UCP_OP_ATTR_FIELD_USER_DATA;
    param.cb.recv_am = rh_am_recv_data_cb;
    param.user_data = ctx;
    req = ucp_am_recv_data_nbx(rh_tp_worker, msg->rndv_desc, buf,
                               msg->data_len, &param);
    msg->rndv_desc = NULL;
    if (UCS_PTR_IS_PTR(req)) {
        rh_tp_open_reqs++;
    } else if (req == NULL) {
        free(ctx);
        done(done_arg, RH_OK);
    } else if (UCS_PTR_IS_ERR(req)) {
        free(ctx);
        done(done_arg, rh_tp_status_from_ucs(UCS_PTR_STATUS(req),
                                             (int)msg->src));
    }
    return RH_OK;
}

/* ---- send ---------------------------------------------------------------- */

static rh_am_sreq_t *rh_am_sreq_get(void)
{
    rh_am_sreq_t *sreq;

    if (rh_tp_on_progress_thread() && rh_am.free_list != NULL) {
        sreq = rh_am.free_list;
        rh_am.free_list = sreq->next_free;
        rh_am.num_free--;
        return sreq;
    }
    return rh_objcache_get(&rh_am.cache);
}

/* One send of another thread is done: a submitter waiting for room may
 * go on once half of the room is free again. */
static void rh_am_uncount_n(long k)
{
    long n = atomic_fetch_sub(&rh_am.posted, k) - k;

    if (rh_unlikely(atomic_load(&rh_am.room_waiters) != 0) &&
        n <= rh_am.posted_max / 2) {
        pthread_mutex_lock(&rh_am.room_lock);
        pthread_cond_broadcast(&rh_am.room_cond);
        pthread_mutex_unlock(&rh_am.room_lock);
    }
}

/* Runs on the progress thread. */
static void rh_am_sreq_put(rh_am_sreq_t *sreq)
{
    if (sreq->copy != NULL) {
        free(sreq->copy);
    }
    if (sreq->counted) {
        rh_am_uncount_n(1);
    }
    if (rh_am.num_free < RH_AM_FREE_MAX) {
        sreq->next_free = rh_am.free_list;
        rh_am.free_list = sreq;
        rh_am.num_free++;
        return;
    }
    rh_objcache_put(&rh_am.cache, sreq);
}

static void rh_am_sreq_issue(rh_am_sreq_t *sreq);
static void rh_am_ring_issue(rh_am_sreq_t *sreq);

static const rh_am_entry_t *rh_am_sreq_entry(const rh_am_sreq_t *sreq)
{
    return sreq->id != RH_AM_ID_INVALID ? &rh_am.table[sreq->id] : NULL;
}

/* Nobody said what depends on a lost message of this id: it is logged,
 * the first few and then one in 1024 (a dead link fails many). */
static void rh_am_lost_warn(const rh_am_sreq_t *sreq)
{
    uint64_t n = atomic_load_explicit(&rh_am.stats.lost,
                                      memory_order_relaxed);

    if (sreq->status == RH_ERR_PEER_FAILED) {
        rh_debug("message %u to rank %u dropped: the rank failed",
                 (unsigned)sreq->id, sreq->dest);
    } else if (n <= 8 || (n & 1023) == 0) {
        rh_warn("message %u to rank %u was lost after %u tries: %s (%llu "
                "lost so far)", (unsigned)sreq->id, sreq->dest,
                (unsigned)sreq->attempts + 1,
                rh_status_string(sreq->status), (unsigned long long)n);
    }
}

/* Progress loop, outside any UCX callback: a failed send goes again while
 * its rank lives and its id allows, then its owner hears. */
static void rh_am_sreq_failed_run(rh_tp_op_t *op)
{
    rh_am_sreq_t *sreq = (rh_am_sreq_t *)op;
    const rh_am_entry_t *e = rh_am_sreq_entry(sreq);
    unsigned retries = e == NULL ? 0 :
                       e->retries_set ? e->retries : RH_AM_RETRIES;
    size_t hoff = sizeof(rh_am_wire_hdr_t);

    if (rh_unlikely(!rh_tp_running())) {
        /* Drained at close: nothing is sent again, nobody is told. */
        if (sreq->done != NULL) {
            sreq->done(sreq->done_arg, sreq->status);
        }
        rh_am_sreq_put(sreq);
        return;
    }
    if (sreq->status != RH_ERR_PEER_FAILED &&
        !rh_tp_peer_recheck((int)sreq->dest)) {
        sreq->status = RH_ERR_PEER_FAILED;
    }
    if (sreq->status != RH_ERR_PEER_FAILED && sreq->attempts < retries) {
        sreq->attempts++;
        rh_am_count(&rh_am.stats.retried);
        rh_am_sreq_issue(sreq);
        return;
    }
    if (sreq->done != NULL) {
        sreq->done(sreq->done_arg, sreq->status);
    } else {
        rh_am_count(&rh_am.stats.lost);
        if (e != NULL && e->lost != NULL) {
            e->lost(e->lost_arg, sreq->dest, sreq->hdr + hoff,
                    sreq->hdr_total - hoff, sreq->data, sreq->len,
                    sreq->status);
        } else {
            rh_am_lost_warn(sreq);
        }
    }
    rh_am_sreq_put(sreq);
}

/* The outcome of a send: success ends it here; a failure is handled on the
 * next round of the progress loop (we may be in a UCX callback, or still
 * inside rh_am_send's caller). */
static void rh_am_sreq_finish(rh_am_sreq_t *sreq, rh_status_t status)
{
    if (rh_likely(status == RH_OK)) {
        if (sreq->done != NULL) {
            sreq->done(sreq->done_arg, RH_OK);
        }
        rh_am_sreq_put(sreq);
        return;
    }
    sreq->status = status;
    sreq->op.run = rh_am_sreq_failed_run;
    rh_tp_defer(&sreq->op);
}

static void rh_am_send_cb(void *request, ucs_status_t status, void *user_data)
{
    rh_am_sreq_t *sreq = user_data;

    rh_am_sreq_finish(sreq, rh_tp_status_from_ucs(status, (int)sreq->dest));
    ucp_request_free(request);
    rh_tp_open_reqs--;
}

static void rh_am_batch_flush(uint32_t dest);
static void rh_am_batch_lost(void *arg, uint32_t dest, const void *hdr,
                             size_t hdr_len, const void *data, size_t len,
                             rh_status_t status);
static rh_status_t rh_am_send_now(uint32_t dest, const void *hdr,
                                  size_t hdr_total, const void *data,
                                  size_t len);

/* What is held back for dest leaves before anything else does, so that
 * nothing overtakes it. */
static inline void rh_am_batch_before(uint32_t dest)
{
    if (rh_unlikely(rh_am.batches != NULL &&
                    rh_am.batches[dest].count != 0)) {
        rh_am_batch_flush(dest);
    }
}

/* ---- same-host rings ------------------------------------------------------ */

static inline int rh_am_ring_queued_for(uint32_t dest)
{
    return rh_am.ringq != NULL && rh_am.ringq[dest].head != NULL;
}

/* Keeps sreq for when dest's ring has room; 0 without memory for the
 * queues (the caller fails it). */
static int rh_am_ring_queue(rh_am_sreq_t *sreq)
{
    rh_am_ringq_t *q;

    if (rh_unlikely(rh_am.ringq == NULL)) {
        rh_am.ringq = calloc((size_t)rh_tp_size(), sizeof(*rh_am.ringq));
        rh_am.ringq_dests = calloc((size_t)rh_tp_size(),
                                   sizeof(*rh_am.ringq_dests));
        if (rh_am.ringq == NULL || rh_am.ringq_dests == NULL) {
            free(rh_am.ringq);
            free(rh_am.ringq_dests);
            rh_am.ringq = NULL;
            rh_am.ringq_dests = NULL;
            return 0;
        }
    }
    q = &rh_am.ringq[sreq->dest];
    sreq->next_free = NULL;
    if (q->head == NULL) {
        q->head = sreq;
        rh_am.ringq_dests[rh_am.num_ringq_dests++] = sreq->dest;
    } else {
        q->tail->next_free = sreq;
    }
    q->tail = sreq;
    return 1;
}

/* Writes sreq to its rank's ring, after what waits there already. */
static void rh_am_ring_issue(rh_am_sreq_t *sreq)
{
    rh_status_t status;

    if (!rh_am_ring_queued_for(sreq->dest)) {
        status = rh_shml_send(sreq->dest, sreq->hdr, sreq->hdr_total,
                              sreq->data, sreq->len, &sreq->ring_sent);
        if (rh_likely(status != RH_ERR_BUSY)) {
            /* a send of ours that found it busy before may have held it */
            rh_shml_unhold(sreq->dest);
            rh_am_sreq_finish(sreq, status);
            return;
        }
    }
    if (!rh_am_ring_queue(sreq)) {
        uint32_t dest = sreq->dest;

        rh_am_sreq_finish(sreq, rh_error_set(RH_ERR_NO_MEMORY, "queue of "
                                             "sends to rank %u", dest));
        if (!rh_am_ring_queued_for(dest)) {
            rh_shml_unhold(dest);
        }
    }
}

int rh_am_ring_waiting(void)
{
    return rh_am.num_ringq_dests != 0;
}

void rh_am_ring_retry(rh_status_t fail)
{
    for (uint32_t i = 0; i < rh_am.num_ringq_dests;) {
        uint32_t dest = rh_am.ringq_dests[i];
        rh_am_ringq_t *q = &rh_am.ringq[dest];
        rh_am_sreq_t *sreq;

        while ((sreq = q->head) != NULL) {
            rh_status_t status = fail != RH_OK ? fail :
                rh_shml_send(dest, sreq->hdr, sreq->hdr_total, sreq->data,
                             sreq->len, &sreq->ring_sent);

            if (status == RH_ERR_BUSY) {
                break;
            }
            q->head = sreq->next_free;
            /* a done callback may send to dest again: it queues behind */
            rh_am_sreq_finish(sreq, status);
        }
        if (q->head == NULL) {
            rh_shml_unhold(dest);
            rh_am.ringq_dests[i] = rh_am.ringq_dests[--rh_am.num_ringq_dests];
        } else {
            i++;
        }
    }
}

/* Hands a request to UCX (progress thread only). */
static void rh_am_sreq_issue(rh_am_sreq_t *sreq)
{
    ucp_request_param_t param;
    ucp_ep_h ep;
    void *req;
    rh_status_t status;

    rh_am_batch_before(sreq->dest);
    if (rh_unlikely(rh_am.fault_every != 0) &&
        ++rh_am.fault_count % rh_am.fault_every == 0) {
        rh_am_count(&rh_am.stats.injected);
        rh_error_set(RH_ERR_TRANSPORT, "message lost on purpose "
                     "(RAYHPC_FAULT_SENDS=%llu)",
                     (unsigned long long)rh_am.fault_every);
        rh_am_sreq_finish(sreq, RH_ERR_TRANSPORT);
        return;
    }
    if (rh_shml_on(sreq->dest)) {
        sreq->ring_sent = 0;
        rh_am_ring_issue(sreq);
        return;
    }
    status = rh_tp_ep((int)sreq->dest, &ep);
    if (rh_unlikely(status != RH_OK)) {
        rh_am_sreq_finish(sreq, status);
        return;
    }
    param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK |
                         UCP_OP_ATTR_FIELD_USER_DATA |
                         UCP_OP_ATTR_FIELD_FLAGS;
    param.cb.send = rh_am_send_cb;
    param.user_data = sreq;
    /* Without RDMA to the peer a rendezvous buys nothing (UCX copies the
     * bytes through messages either way) and one to a peer that dies over
     * shared memory is never failed: UCX keeps it until the endpoint's
     * lanes are discarded, which never ends there, and it was left in UCX
     * at finalize. Eager sends fail with the endpoint. */
    if (!rh_tp_peer_zcopy((int)sreq->dest)) {
        param.flags = UCP_AM_SEND_FLAG_EAGER;
    } else {
        param.flags = sreq->len >= rh_am.rndv_thresh ?
                      UCP_AM_SEND_FLAG_RNDV : 0;
    }
    req = ucp_am_send_nbx(ep, RH_UCX_AM_ID, sreq->hdr, sreq->hdr_total,
                          sreq->data, sreq->len, &param);
    if (rh_likely(req == NULL)) {
        rh_am_sreq_finish(sreq, RH_OK);
    } else if (UCS_PTR_IS_PTR(req)) {
        rh_tp_open_reqs++;
    } else {
        rh_am_sreq_finish(sreq, rh_tp_status_from_ucs(UCS_PTR_STATUS(req),
                                                      (int)sreq->dest));
    }
}

/* ---- coalescing ---------------------------------------------------------- */

static inline uint32_t rh_am_pad8(size_t n)
{
    return (uint32_t)((n + 7) & ~(size_t)7);
}

/* Bytes a message takes in a batch: wire header, user header, payload. */
static inline uint32_t rh_am_batch_size(const rh_am_sreq_t *sreq)
{
    return rh_am_pad8(sreq->hdr_total + sreq->len);
}

static void rh_am_batch_copy(rh_am_batch_t *b, const rh_am_sreq_t *sreq)
{
    memcpy(b->buf + b->len, sreq->hdr, sreq->hdr_total);
    if (sreq->len != 0) {
        memcpy(b->buf + b->len + sreq->hdr_total, sreq->data, sreq->len);
    }
    memset(b->buf + b->len + sreq->hdr_total + sreq->len, 0,
           rh_am_batch_size(sreq) - sreq->hdr_total - sreq->len);
    b->len += rh_am_batch_size(sreq);
}

/* A copy of sreq went into b: its count goes with it. */
static inline void rh_am_batch_keep_count(rh_am_batch_t *b,
                                          rh_am_sreq_t *sreq)
{
    b->counted += sreq->counted;
    sreq->counted = 0;
}

/* Holds sreq back for its rank; 0 when it cannot (no memory): the caller
 * sends it alone. */
static int rh_am_batch_add(rh_am_sreq_t *sreq)
{
    uint32_t size = rh_am_batch_size(sreq);
    rh_am_batch_t *b;

    if (rh_unlikely(rh_am.batches == NULL)) {
        rh_am.batches = calloc((size_t)rh_tp_size(), sizeof(*rh_am.batches));
        rh_am.batch_dests = calloc((size_t)rh_tp_size(),
                                   sizeof(*rh_am.batch_dests));
        if (rh_am.batches == NULL || rh_am.batch_dests == NULL) {
            free(rh_am.batches);
            free(rh_am.batch_dests);
            rh_am.batches = NULL;
            rh_am.batch_dests = NULL;
            return 0;
        }
    }
    b = &rh_am.batches[sreq->dest];
    if (b->count != 0 && b->len + size > RH_AM_BATCH_BYTES) {
        rh_am_batch_flush(sreq->dest);
    }
    if (b->count == 0) {
        b->first = sreq;
        b->len = size;
        b->count = 1;
        if (!b->listed) {
            b->listed = 1;
            rh_am.batch_dests[rh_am.num_batch_dests++] = sreq->dest;
        }
        return 1;
    }
    if (b->count == 1) {
        if (b->buf == NULL && (b->buf = malloc(RH_AM_BATCH_BYTES)) == NULL) {
            rh_am_batch_flush(sreq->dest);
            return 0;
        }
        b->len = 0;
        rh_am_batch_copy(b, b->first);
        rh_am_batch_keep_count(b, b->first);
        rh_am_sreq_put(b->first);
        b->first = NULL;
    }
    rh_am_batch_copy(b, sreq);
    b->count++;
    rh_am_batch_keep_count(b, sreq);
    rh_am_sreq_put(sreq);
    return 1;
}

/* Sends what is held back for dest: alone as it came, or as one batch. */
static void rh_am_batch_flush(uint32_t dest)
{
    rh_am_batch_t *b = &rh_am.batches[dest];
    rh_am_wire_hdr_t w;
    rh_am_batch_hdr_t bh;
    rh_am_sreq_t *sreq;
    uint8_t whole[sizeof(w) + sizeof(bh)];
    uint32_t count = b->count;
    uint32_t counted = b->counted;

    b->count = 0;
    b->counted = 0;
    if (count == 1) {
        sreq = b->first;
        b->first = NULL;
        rh_am_sreq_issue(sreq);
        return;
    }
    if (count == 0) {
        return;
    }
    rh_am_count(&rh_am.stats.batches);
    atomic_store_explicit(&rh_am.stats.batched,
                          atomic_load_explicit(&rh_am.stats.batched,
                                               memory_order_relaxed) + count,
                          memory_order_relaxed);
    w.magic = RH_AM_MAGIC;
    w.version = RH_AM_VERSION;
    w.flags = 0;
    w.id = RH_AM_ID_BATCH;
    w.hdr_len = sizeof(bh);
    w.src = (uint32_t)rh_tp_rank();
    w.data_len = b->len;
    bh.count = count;
    bh.bytes = b->len;
    memcpy(whole, &w, sizeof(w));
    memcpy(whole + sizeof(w), &bh, sizeof(bh));
    /* Out at once, and the buffer serves the next batch; else a request
     * takes the buffer along. */
    if (rh_likely(rh_am.fault_every == 0) &&
        rh_am_send_now(dest, whole, sizeof(whole), b->buf, b->len) == RH_OK) {
        rh_am_uncount_n(counted);
        return;
    }
    sreq = rh_am_sreq_get();
    if (rh_unlikely(sreq == NULL)) {
        rh_am_count(&rh_am.stats.lost);
        rh_error_set(RH_ERR_NO_MEMORY, "send request for a batch");
        rh_am_batch_lost(NULL, dest, &bh, sizeof(bh), b->buf, b->len,
                         RH_ERR_NO_MEMORY);
        rh_am_uncount_n(counted);
        return;
    }
    memcpy(sreq->hdr, whole, sizeof(whole));
    sreq->hdr_total = sizeof(whole);
    sreq->dest = dest;
    sreq->id = RH_AM_ID_BATCH;
    sreq->attempts = 0;
    sreq->counted = 0;
    sreq->done = NULL;
    sreq->done_arg = NULL;
    sreq->data = b->buf;
    sreq->len = b->len;
    sreq->copy = b->buf;
    b->buf = NULL;
    /* written, or held in the ring's queue, or failed: whichever, nothing
     * sent after overtakes it now */
    rh_am_sreq_issue(sreq);
    rh_am_uncount_n(counted);
}

unsigned rh_am_flush_batches(void)
{
    unsigned n = rh_am.num_batch_dests;

    for (uint32_t i = 0; i < n; i++) {
        uint32_t dest = rh_am.batch_dests[i];

        rh_am.batches[dest].listed = 0;
        rh_am_batch_flush(dest);
    }
    rh_am.num_batch_dests = 0;
    return n;
}

/* A batch failed for good: each message in it is handled as if it had
 * failed alone, under its own id's rules (sent again where they allow,
 * else its lost handler). Our own bytes: the framing holds. */
static void rh_am_batch_lost(void *arg, uint32_t dest, const void *hdr,
                             size_t hdr_len, const void *data, size_t len,
                             rh_status_t status)
{
    const uint8_t *p = data;
    size_t off = 0;

    (void)arg;
    (void)hdr;
    (void)hdr_len;
    while (off + sizeof(rh_am_wire_hdr_t) <= len) {
        rh_am_wire_hdr_t w;
        const rh_am_entry_t *e;
        unsigned retries;
        rh_am_sreq_t *sreq;
        size_t total;

        memcpy(&w, p + off, sizeof(w));
        total = sizeof(w) + w.hdr_len + w.data_len;
        e = &rh_am.table[w.id];
        retries = e->retries_set ? e->retries : RH_AM_RETRIES;
        if (status != RH_ERR_PEER_FAILED && !rh_tp_peer_recheck((int)dest)) {
            status = RH_ERR_PEER_FAILED;
        }
        if (status != RH_ERR_PEER_FAILED && retries > 0 && rh_tp_running() &&
            (sreq = rh_am_sreq_get()) != NULL) {
            memcpy(sreq->hdr, p + off, sizeof(w) + w.hdr_len);
            memcpy(sreq->small, p + off + sizeof(w) + w.hdr_len, w.data_len);
            sreq->hdr_total = (uint32_t)(sizeof(w) + w.hdr_len);
            sreq->dest = dest;
            sreq->id = w.id;
            sreq->attempts = 1;   /* the batch was its first */
            sreq->counted = 0;
            sreq->done = NULL;
            sreq->data = sreq->small;
            sreq->len = w.data_len;
            sreq->copy = NULL;
            rh_am_count(&rh_am.stats.retried);
            rh_am_sreq_issue(sreq);
        } else if (e->lost != NULL) {
            rh_am_count(&rh_am.stats.lost);
            e->lost(e->lost_arg, dest, p + off + sizeof(w), w.hdr_len,
                    p + off + sizeof(w) + w.hdr_len, w.data_len, status);
        } else {
            rh_am_count(&rh_am.stats.lost);
            rh_debug("message %u to rank %u in a batch was lost: %s",
                     (unsigned)w.id, dest, rh_status_string(status));
        }
        off += rh_am_pad8(total);
    }
}

/* A batch arrived: its framing is checked whole first (a batch that does
 * not add up is dropped whole, nothing of it delivered), then each message
 * goes through the receive path as if it came alone. */
static rh_status_t rh_am_batch_recv(void *arg, rh_am_msg_t *msg)
{
    rh_am_batch_hdr_t bh;
    const uint8_t *p = msg->data;
    size_t off = 0;

    (void)arg;
    memcpy(&bh, msg->hdr, sizeof(bh));
    if (p == NULL || bh.bytes != msg->data_len || bh.count < 2) {
        return RH_ERR_MALFORMED;
    }
    for (uint32_t i = 0; i < bh.count; i++) {
        rh_am_wire_hdr_t w;
        size_t total;

        if (off > msg->data_len || msg->data_len - off < sizeof(w)) {
            return RH_ERR_MALFORMED;
        }
        memcpy(&w, p + off, sizeof(w));
        total = sizeof(w) + (size_t)w.hdr_len + w.data_len;
        /* No batch in a batch, and no message in the name of another. */
        if (w.id == RH_AM_ID_BATCH || w.src != msg->src ||
            total > msg->data_len - off) {
            return RH_ERR_MALFORMED;
        }
        off += rh_am_pad8(total);
    }
    if (off != msg->data_len) {
        return RH_ERR_MALFORMED;
    }
    off = 0;
    for (uint32_t i = 0; i < bh.count; i++) {
        rh_am_wire_hdr_t w;

        memcpy(&w, p + off, sizeof(w));
        (void)rh_am_dispatch(p + off, sizeof(w) + w.hdr_len,
                             (uint8_t *)msg->data + off + sizeof(w) +
                             w.hdr_len, w.data_len, 0);
        off += rh_am_pad8(sizeof(w) + (size_t)w.hdr_len + w.data_len);
    }
    return RH_OK;
}

/* Whether a queued send may be held back to coalesce: a small message of
 * another thread with no completion to report and more posted work behind
 * it (a lone message leaves at once), or one to a rank that has some held
 * back already (it must not overtake them). */
static inline int rh_am_batchable(const rh_am_sreq_t *sreq)
{
    return rh_am.coalesce && sreq->done == NULL && sreq->copy == NULL &&
           sreq->id != RH_AM_ID_INVALID && sreq->id != RH_AM_ID_BATCH &&
           sreq->attempts == 0 &&
           rh_am_pad8(sreq->hdr_total + sreq->len) <= RH_AM_BATCH_BYTES / 2 &&
           (rh_tp_more_posted() ||
            (rh_am.batches != NULL && rh_am.batches[sreq->dest].count != 0));
}

static void rh_am_sreq_run(rh_tp_op_t *op)
{
    rh_am_sreq_t *sreq = (rh_am_sreq_t *)op;

    if (rh_am_batchable(sreq) && rh_am_batch_add(sreq)) {
        return;
    }
    rh_am_sreq_issue(sreq);
}

static rh_status_t rh_am_sreq_submit(rh_am_sreq_t *sreq)
{
    if (rh_tp_on_progress_thread()) {
        rh_am_sreq_issue(sreq);
    } else {
        sreq->counted = 1;
        atomic_fetch_add_explicit(&rh_am.posted, 1, memory_order_relaxed);
        sreq->op.run = rh_am_sreq_run;
        rh_tp_post(&sreq->op);
    }
    return RH_OK;
}

/* Whether no request of any thread waits to be written (in the op queue,
 * a batch or a ring's queue): a thread may then write its message into a
 * same-host ring itself without overtaking one it posted before. The
 * acquire pairs with the count's decrement after each write. */
static inline int rh_am_none_posted(void)
{
    return atomic_load_explicit(&rh_am.posted, memory_order_acquire) == 0 &&
           rh_tp_ops_look_empty();
}

static rh_status_t rh_am_check_dest(uint32_t dest)
{
    if (rh_unlikely(rh_tp_worker == NULL)) {
        return rh_error_set(RH_ERR_NOT_INITIALIZED, "the transport is not "
                            "running");
    }
    if (rh_unlikely(dest >= (uint32_t)rh_tp_size())) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "no rank %u in a job of "
                            "%d ranks", dest, rh_tp_size());
    }
    if (rh_unlikely(!rh_tp_peer_alive((int)dest))) {
        return rh_error_set(RH_ERR_PEER_FAILED, "rank %u has failed", dest);
    }
    /* After its last round nobody drains the op queue: a request posted
     * then would never be sent nor freed (teardown still answers tasks
     * that waited for resources). */
    if (rh_unlikely(rh_tp_stopping() && !rh_tp_on_progress_thread())) {
        return rh_error_set(RH_ERR_SHUTDOWN, "the progress thread has "
                            "stopped: no more sends to rank %u", dest);
    }
    return RH_OK;
}

/* The fast path of a small send on the progress thread: the header lives
 * on the stack and UCX must finish the send before returning, so there is
 * no request, no copy and nothing to free. Returns RH_ERR_BUSY when UCX
 * cannot do that right now (the caller then takes the request path). */
static rh_status_t rh_am_send_now(uint32_t dest, const void *hdr,
                                  size_t hdr_total, const void *data,
                                  size_t len)
{
    ucp_request_param_t param;
    ucp_ep_h ep;
    void *req;
    rh_status_t status;

    if (rh_shml_on(dest)) {
        size_t sent = 0;

        /* whole or not at all, and never past what waits already */
        if (rh_am_ring_queued_for(dest) ||
            hdr_total + len > rh_shml_max_whole()) {
            return RH_ERR_BUSY;
        }
        status = rh_shml_send(dest, hdr, hdr_total, data, len, &sent);
        if (status == RH_OK) {
            /* nothing waits: a send that found it busy held it */
            rh_shml_unhold(dest);
        }
        return status;
    }
    status = rh_tp_ep((int)dest, &ep);
    if (rh_unlikely(status != RH_OK)) {
        return status;
    }
    param.op_attr_mask = UCP_OP_ATTR_FLAG_FORCE_IMM_CMPL;
    req = ucp_am_send_nbx(ep, RH_UCX_AM_ID, hdr, hdr_total, data, len,
                          &param);
    if (rh_likely(req == NULL)) {
        return RH_OK;
    }
    if (UCS_PTR_STATUS(req) == UCS_ERR_NO_RESOURCE) {
        return RH_ERR_BUSY;
    }
    return rh_tp_status_from_ucs(UCS_PTR_STATUS(req), (int)dest);
}

rh_status_t rh_am_send(uint32_t dest, uint16_t id, const void *hdr,
                       size_t hdr_len, const void *data, size_t len,
                       rh_am_done_fn done, void *done_arg)
{
    rh_am_wire_hdr_t w;
    rh_am_sreq_t *sreq;
    rh_status_t status;
    int heap_copy = done == NULL && len > RH_AM_SMALL_DATA;
    int direct;

    status = rh_am_check_dest(dest);
    if (rh_unlikely(status != RH_OK)) {
        return status;
    }
    if (rh_unlikely(hdr_len > RH_AM_MAX_HDR || id == RH_AM_ID_INVALID ||
                    id >= RH_AM_ID_MAX || (hdr_len && hdr == NULL) ||
                    (len && data == NULL))) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "bad AM send (id %u, "
                            "header %zu bytes, at most %u)", (unsigned)id,
                            hdr_len, RH_AM_MAX_HDR);
    }
    w.magic = RH_AM_MAGIC;
    w.version = RH_AM_VERSION;
    w.flags = 0;
    w.id = id;
    w.hdr_len = (uint16_t)hdr_len;
    w.src = (uint32_t)rh_tp_rank();
    w.data_len = (uint32_t)len;
    if (rh_tp_on_progress_thread()) {
        rh_am_batch_before(dest);
    } else if (len <= RH_AM_SMALL_DATA && done == NULL &&
               rh_shml_on(dest) && rh_likely(rh_am.fault_every == 0) &&
               sizeof(w) + hdr_len + len <= rh_shml_max_whole() &&
               rh_am_none_posted()) {
        rh_shml_any_t r;

        /* A full ring is let out by its reader, not by our progress
         * thread: a request would only move the wait there, and then every
         * send after it must wait its turn as a request too. Waiting here
         * a little gives the cores to those who empty it. */
        for (unsigned i = 0;
             (r = rh_shml_send_any(dest, &w, sizeof(w), hdr, hdr_len, data,
                                   len)) == RH_SHML_ANY_FULL &&
             i < RH_AM_RING_WAITS; i++) {
            sched_yield();
        }
        if (rh_likely(r == RH_SHML_ANY_SENT)) {
            return RH_OK;
        }
    }
    /* Small sends leave at once from the progress thread, and from any
     * other thread that finds the worker free (no hand-off, no wake-up);
     * only without done there, which may take locks its caller holds, and
     * only while no request waits to be written: the op queue can look
     * empty to rh_tp_enter with requests still in it (a stub pushed back
     * behind a push in flight), and one of ours among them would be
     * overtaken. */
    if (len <= RH_AM_SMALL_DATA && rh_likely(rh_am.fault_every == 0) &&
        (direct = rh_tp_on_progress_thread() ? 1 :
                  done == NULL && rh_am_none_posted() && rh_tp_enter() ?
                  2 : 0) != 0) {
        uint8_t whole[sizeof(w) + RH_AM_MAX_HDR];

        memcpy(whole, &w, sizeof(w));
        if (hdr_len != 0) {
            memcpy(whole + sizeof(w), hdr, hdr_len);
        }
        status = rh_am_send_now(dest, whole, sizeof(w) + hdr_len, data, len);
        if (direct == 2) {
            rh_tp_leave();
        }
        if (rh_likely(status == RH_OK)) {
            if (done != NULL) {
                done(done_arg, RH_OK);
            }
            return RH_OK;
        }
        /* Busy, or failed: the request path sends it, or reports the
         * failure like any other, after the call. */
    }
    sreq = rh_am_sreq_get();
    if (rh_unlikely(sreq == NULL)) {
        return rh_error_set(RH_ERR_NO_MEMORY, "send request");
    }
    memcpy(sreq->hdr, &w, sizeof(w));
    if (hdr_len != 0) {
        memcpy(sreq->hdr + sizeof(w), hdr, hdr_len);
    }
    sreq->hdr_total = (uint32_t)(sizeof(w) + hdr_len);
    sreq->dest = dest;
    sreq->id = id;
    sreq->attempts = 0;
    sreq->counted = 0;
    sreq->done = done;
    sreq->done_arg = done_arg;
    sreq->len = len;
    sreq->copy = NULL;
    if (done != NULL) {
        sreq->data = data;               /* zero copy */
    } else if (!heap_copy) {
        if (len != 0) {
            memcpy(sreq->small, data, len);
        }
        sreq->data = sreq->small;
    } else {
        sreq->copy = malloc(len);
        if (sreq->copy == NULL) {
            /* never reached UCX: no one else holds it */
            rh_objcache_put(&rh_am.cache, sreq);
            return rh_error_set(RH_ERR_NO_MEMORY, "copy of a %zu-byte "
                                "payload", len);
        }
        memcpy(sreq->copy, data, len);
        sreq->data = sreq->copy;
    }
    return rh_am_sreq_submit(sreq);
}

rh_status_t rh_am_wait_room(int nonblock)
{
    long max = rh_am.posted_max;

    /* max is 0 until the transport starts: nothing is queued yet. */
    if (rh_likely(atomic_load_explicit(&rh_am.posted, memory_order_relaxed) <
                  max) || max == 0 || rh_tp_on_progress_thread()) {
        return RH_OK;
    }
    if (nonblock) {
        return rh_error_set(RH_ERR_BUSY, "%ld messages of this rank are "
                            "still on their way (RAYHPC_SEND_QUEUE_MAX=%ld)",
                            atomic_load(&rh_am.posted), max);
    }
    pthread_mutex_lock(&rh_am.room_lock);
    atomic_fetch_add(&rh_am.room_waiters, 1);
    /* Until half the room is free: one wake-up lets a burst through. The
     * timeout only covers a transport that stops meanwhile. */
    while (atomic_load(&rh_am.posted) > max / 2 && rh_tp_running()) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&rh_am.room_cond, &rh_am.room_lock, &ts);
    }
    atomic_fetch_sub(&rh_am.room_waiters, 1);
    pthread_mutex_unlock(&rh_am.room_lock);
    return RH_OK;
}

long rh_am_posted(void)
{
    return atomic_load_explicit(&rh_am.posted, memory_order_relaxed);
}

rh_status_t rh_am_send_raw(uint32_t dest, const void *hdr, size_t hdr_len,
                           const void *data, size_t len)
{
    rh_am_sreq_t *sreq;
    rh_status_t status = rh_am_check_dest(dest);

    if (status != RH_OK) {
        return status;
    }
    if (hdr_len > sizeof(sreq->hdr) || len > RH_AM_SMALL_DATA) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "raw send too large");
    }
    sreq = rh_am_sreq_get();
    if (sreq == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "send request");
    }
    memcpy(sreq->hdr, hdr, hdr_len);
    if (len != 0) {
        memcpy(sreq->small, data, len);
    }
    sreq->hdr_total = (uint32_t)hdr_len;
    sreq->dest = dest;
    sreq->id = RH_AM_ID_INVALID;
    sreq->attempts = 0;
    sreq->counted = 0;
    sreq->done = NULL;
    sreq->data = sreq->small;
    sreq->len = len;
    sreq->copy = NULL;
    return rh_am_sreq_submit(sreq);
}

static void rh_am_send_wait_done(void *arg, rh_status_t status)
{
    rh_completion_signal(arg, status);
}

rh_status_t rh_am_send_wait(uint32_t dest, uint16_t id, const void *hdr,
                            size_t hdr_len, const void *data, size_t len)
{
    rh_completion_t done;
    rh_status_t status;

    if (rh_tp_on_progress_thread()) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_am_send_wait on the "
                            "progress thread would wait forever");
    }
    rh_completion_init(&done);
    status = rh_am_send(dest, id, hdr, hdr_len, data, len,
                        rh_am_send_wait_done, &done);
    if (status != RH_OK) {
        return status;
    }
    status = rh_completion_wait(&done, -1);
    if (status == RH_ERR_PEER_FAILED) {
        return rh_error_set(status, "rank %u failed during a send", dest);
    }
    if (status != RH_OK) {
        return rh_error_set(status, "send to rank %u failed: %s", dest,
                            rh_status_string(status));
    }
    return RH_OK;
}

/* ---- attach / detach ----------------------------------------------------- */

rh_status_t rh_am_attach(struct ucp_worker *worker)
{
    ucp_am_handler_param_t param;
    ucs_status_t status;

    rh_am.rndv_thresh = rh_cfg.rndv_thresh;
    rh_am.fault_every = rh_cfg.fault_sends;
    rh_am.fault_count = 0;
    rh_am.coalesce = rh_cfg.coalesce != 0;
    rh_am.posted_max = (long)rh_cfg.send_queue_max;
    atomic_store(&rh_am.posted, 0);
    rh_objcache_init(&rh_am.cache, RH_AM_CACHE_ID, sizeof(rh_am_sreq_t));
    memset(&param, 0, sizeof(param));
    param.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID |
                       UCP_AM_HANDLER_PARAM_FIELD_CB |
                       UCP_AM_HANDLER_PARAM_FIELD_ARG |
                       UCP_AM_HANDLER_PARAM_FIELD_FLAGS;
    param.id = RH_UCX_AM_ID;
    param.cb = rh_am_recv;
    param.arg = NULL;
    param.flags = UCP_AM_FLAG_WHOLE_MSG;
    if (rh_am_register(RH_AM_ID_BATCH, sizeof(rh_am_batch_hdr_t),
                       sizeof(rh_am_batch_hdr_t), rh_am_batch_recv,
                       NULL) != RH_OK ||
        rh_am_set_lost(RH_AM_ID_BATCH, 0, rh_am_batch_lost, NULL) != RH_OK) {
        return RH_ERR_INVALID_PARAM;
    }
    status = ucp_worker_set_am_recv_handler(worker, &param);
    if (status != UCS_OK) {
        return rh_error_set(RH_ERR_TRANSPORT, "cannot install the AM "
                            "handler: %s", ucs_status_string(status));
    }
    return RH_OK;
}

void rh_am_detach(void)
{
    while (rh_am.free_list != NULL) {
        rh_am_sreq_t *sreq = rh_am.free_list;

        rh_am.free_list = sreq->next_free;
        free(sreq);
    }
    rh_am.num_free = 0;
    if (rh_am.batches != NULL) {
        for (int r = 0; r < rh_tp_size(); r++) {
            free(rh_am.batches[r].buf);
        }
        free(rh_am.batches);
        free(rh_am.batch_dests);
        rh_am.batches = NULL;
        rh_am.batch_dests = NULL;
        rh_am.num_batch_dests = 0;
    }
    free(rh_am.ringq);
    free(rh_am.ringq_dests);
    rh_am.ringq = NULL;
    rh_am.ringq_dests = NULL;
    rh_am.num_ringq_dests = 0;
    rh_objcache_fini(&rh_am.cache);
    /* Handlers stay registered: they are static and a re-init keeps them. */
    memset(&rh_am.stats, 0, sizeof(rh_am.stats));
}
