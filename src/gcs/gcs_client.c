/*
 * The client half of the GCS, usable from any thread: each operation gets
 * the next of this rank's sequence numbers and waits in a list, in number
 * order, for its answer. The oldest unanswered number travels with every
 * write as the client's floor: replicas forget the results of writes
 * below it, which the client will never send again.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/completion.h"
#include "base/hashmap.h"
#include "base/log.h"
#include "base/status.h"
#include "core/core.h"
#include "core/future.h"
#include "gcs/gcs_store.h"
#include "gcs/gcs_wire.h"
#include "transport/transport.h"

enum { RH_GCS_KIND_READ = 0 };   /* writes use rh_gcs_op_kind_t */

static struct {
    pthread_mutex_t lock;
    rh_hmap_t       ops;         /* seq -> rh_gcs_op_t * */
    rh_gcs_op_t    *first, *last;
    uint64_t        next_seq;
} rh_gcs_cl = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .ops = RH_HMAP_INITIALIZER(sizeof(uint64_t), sizeof(rh_gcs_op_t *)),
    .next_seq = 1
};

/* A message of an op, built before the op is listed: once listed, an
 * answer (to a resend by the tick, on the progress thread) may finish it
 * and its owner reuse or free the op, key and value while we still send. */
typedef struct rh_gcs_msg {
    union {
        rh_gcs_whdr_t w;
        rh_gcs_rhdr_t r;
    } h;
    uint8_t  read;
    uint32_t shard;
    size_t   len;
    uint8_t *data;              /* stack, or malloc for a large value */
    uint8_t  stack[512];
} rh_gcs_msg_t;

/* Copies what op's message carries; the header lacks epoch, seq and floor,
 * which the send fills in. */
static rh_status_t rh_gcs_msg_build(rh_gcs_msg_t *m, const rh_gcs_op_t *op)
{
    m->read = op->kind == RH_GCS_KIND_READ;
    m->shard = op->shard;
    m->len = op->klen + (m->read ? 0 : op->vlen);
    m->data = m->len <= sizeof(m->stack) ? m->stack : malloc(m->len);
    if (m->data == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "GCS: a %zu-byte write",
                            m->len);
    }
    memcpy(m->data, op->key, op->klen);
    memset(&m->h, 0, sizeof(m->h));
    if (m->read) {
        m->h.r.shard = op->shard;
        m->h.r.klen = (uint16_t)op->klen;
        m->h.r.table = op->table;
        return RH_OK;
    }
    if (op->vlen != 0) {
        memcpy(m->data + op->klen, op->value, op->vlen);
    }
    m->h.w.expect = op->kind == RH_GCS_OP_CAS || op->kind == RH_GCS_OP_SPUT ||
                    op->kind == RH_GCS_OP_SDEL ? op->expect : 0;
    m->h.w.client = (uint32_t)rh_gcs_rank;
    m->h.w.shard = op->shard;
    m->h.w.vlen = (uint32_t)op->vlen;
    m->h.w.klen = (uint16_t)op->klen;
    m->h.w.op = op->kind;
    m->h.w.table = op->table;
    return RH_OK;
}

static void rh_gcs_msg_free(rh_gcs_msg_t *m)
{
    if (m->data != m->stack) {
        free(m->data);
    }
}

/* Numbers op and lists it: *seq, its number; *floor, the oldest
 * unanswered number now. The op is not touched after: see rh_gcs_msg_t. */
static rh_status_t rh_gcs_track(rh_gcs_op_t *op, uint64_t *seq,
                                uint64_t *floor)
{
    rh_gcs_op_t **slot;
    uint64_t now = rh_time_ns();

    pthread_mutex_lock(&rh_gcs_cl.lock);
    op->seq = rh_gcs_cl.next_seq;
    slot = rh_hmap_put(&rh_gcs_cl.ops, &op->seq, NULL);
    if (slot == NULL) {
        pthread_mutex_unlock(&rh_gcs_cl.lock);
        return rh_error_set(RH_ERR_NO_MEMORY, "GCS operation table");
    }
    *seq = rh_gcs_cl.next_seq++;
    *slot = op;
    op->sent_ns = now;
    op->deadline_ns = now + 4 * rh_gcs_timeout_ns();
    op->next = NULL;
    op->prev = rh_gcs_cl.last;
    if (rh_gcs_cl.last != NULL) {
        rh_gcs_cl.last->next = op;
    } else {
        rh_gcs_cl.first = op;
    }
    rh_gcs_cl.last = op;
    *floor = rh_gcs_cl.first->seq;
    pthread_mutex_unlock(&rh_gcs_cl.lock);
    return RH_OK;
}

/* Sends m, numbered seq, to the head (writes) or tail (reads) of its shard
 * under the configuration we know, a write with the client's floor (taken
 * with the op's listing or its resend). A send that fails is sent again by
 * the tick or when the chain re-forms. */
static void rh_gcs_msg_send(rh_gcs_msg_t *m, uint64_t seq, uint64_t floor)
{
    uint64_t epoch;
    int dest;

    pthread_rwlock_rdlock(&rh_gcs_map_lock);
    epoch = rh_gcs_map.epoch;
    dest = m->read ? rh_gcs_map_tail(&rh_gcs_map, m->shard) :
           rh_gcs_map_head(&rh_gcs_map, m->shard);
    pthread_rwlock_unlock(&rh_gcs_map_lock);
    if (dest < 0) {
        return;   /* the shard lost its chain: the deadline fails it */
    }
    if (m->read) {
        m->h.r.epoch = epoch;
        m->h.r.seq = seq;
        (void)rh_gcs_send(dest, RH_AM_ID_GCS_READ, &m->h.r, sizeof(m->h.r),
                          m->data, m->len);
        return;
    }
    m->h.w.epoch = epoch;
    m->h.w.seq = seq;
    m->h.w.floor = floor;
    if (dest == rh_gcs_rank && !rh_gcs_cut(dest)) {
        /* This rank heads the shard: the write is taken here, with the
         * token the handler would hold, rather than sent to ourselves and
         * taken by the next round of progress (a hop that cost as much as
         * one to another rank). */
        int entered = rh_tp_on_progress_thread() ? 1 :
                      rh_tp_enter() ? 2 : 0;

        if (entered != 0) {
            rh_gcs_chain_write_here(&m->h.w, m->data);
            if (entered == 2) {
                rh_tp_leave();
            }
            return;
        }
    }
    (void)rh_gcs_send(dest, RH_AM_ID_GCS_WRITE, &m->h.w, sizeof(m->h.w),
                      m->data, m->len);
}

static _Thread_local int rh_gcs_fail_first;

void rh_gcs_test_fail_first(void)
{
    rh_gcs_fail_first = 1;
}

static rh_gcs_op_t *rh_gcs_untrack(uint64_t seq);
static void rh_gcs_finish(rh_gcs_op_t *op, rh_status_t status);

/* Lists op and sends it. */
static rh_status_t rh_gcs_op_start(rh_gcs_op_t *op)
{
    rh_gcs_msg_t m;
    uint64_t seq = 0, floor = 0;
    rh_status_t status;

    op->out = NULL;
    op->out_len = 0;
    op->version = 0;
    atomic_store_explicit(&op->finished, 0, memory_order_relaxed);
    status = rh_gcs_msg_build(&m, op);
    if (status != RH_OK) {
        return status;
    }
    status = rh_gcs_track(op, &seq, &floor);
    if (status == RH_OK) {
        if (rh_gcs_fail_first) {
            rh_gcs_fail_first = 0;
            if (rh_gcs_untrack(seq) == op) {
                rh_gcs_finish(op, rh_error_set(RH_ERR_NO_QUORUM, "failed "
                                               "before its first send "
                                               "(test)"));
            }
        }
        rh_gcs_msg_send(&m, seq, floor);
    }
    rh_gcs_msg_free(&m);
    return status;
}

/* A resend, on the progress thread: only it finishes ops, so op stays
 * valid here. */
static void rh_gcs_resend(const rh_gcs_op_t *op, uint64_t floor)
{
    rh_gcs_msg_t m;

    if (rh_gcs_msg_build(&m, op) != RH_OK) {
        return;   /* the next tick tries again */
    }
    rh_gcs_msg_send(&m, op->seq, floor);
    rh_gcs_msg_free(&m);
}

/* Takes the op of seq off the list; NULL when none waits (an answer sent
 * twice). */
static rh_gcs_op_t *rh_gcs_untrack(uint64_t seq)
{
    rh_gcs_op_t *op = NULL;

    pthread_mutex_lock(&rh_gcs_cl.lock);
    if (rh_hmap_del(&rh_gcs_cl.ops, &seq, &op)) {
        if (op->prev != NULL) {
            op->prev->next = op->next;
        } else {
            rh_gcs_cl.first = op->next;
        }
        if (op->next != NULL) {
            op->next->prev = op->prev;
        } else {
            rh_gcs_cl.last = op->prev;
        }
    }
    pthread_mutex_unlock(&rh_gcs_cl.lock);
    return op;
}

static void rh_gcs_finish(rh_gcs_op_t *op, rh_status_t status)
{
    op->status = status;
    if (op->done != NULL) {
        op->done(op);
    } else {
        atomic_store_explicit(&op->finished, 1, memory_order_release);
        rh_future_notify();
    }
}

static rh_status_t rh_gcs_check(const rh_gcs_op_t *op, int write, int own)
{
    if (rh_gcs_rank < 0) {
        return rh_error_set(RH_ERR_NOT_INITIALIZED, "the GCS is not running");
    }
    if (op == NULL || op->table >= (own ? RH_GCS_NTABLES : RH_GCS_T_SUB) || op->key == NULL ||
        op->klen == 0 || op->klen > RH_GCS_KEY_MAX ||
        (write && op->vlen != 0 && op->value == NULL)) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "GCS operation: a table "
                            "below %d and a key of 1..%u bytes are needed",
                            RH_GCS_T_SUB, RH_GCS_KEY_MAX);
    }
    if (write && op->vlen > RH_GCS_VALUE_MAX) {
        return rh_error_set(RH_ERR_TOO_LARGE, "GCS value of %zu bytes; at "
                            "most %u", op->vlen, RH_GCS_VALUE_MAX);
    }
    return RH_OK;
}

/* shard: where the write goes; -1: the shard of its key. */
static rh_status_t rh_gcs_write_async(rh_gcs_op_t *op, uint8_t kind,
                                      int64_t shard)
{
    rh_status_t status = rh_gcs_check(op, 1, shard >= 0);

    if (status != RH_OK) {
        return status;
    }
    if (kind == RH_GCS_OP_DEL || kind == RH_GCS_OP_SDEL) {
        op->vlen = 0;
    }
    op->kind = kind;
    op->shard = shard >= 0 ? (uint32_t)shard :
                rh_gcs_shard_of(op->table, op->key, op->klen);
    return rh_gcs_op_start(op);
}

rh_status_t rh_gcs_put_async(rh_gcs_op_t *op)
{
    return rh_gcs_write_async(op, RH_GCS_OP_PUT, -1);
}

rh_status_t rh_gcs_del_async(rh_gcs_op_t *op)
{
    return rh_gcs_write_async(op, RH_GCS_OP_DEL, -1);
}

rh_status_t rh_gcs_cas_async(rh_gcs_op_t *op)
{
    return rh_gcs_write_async(op, RH_GCS_OP_CAS, -1);
}

rh_status_t rh_gcs_sput_async(rh_gcs_op_t *op)
{
    return rh_gcs_write_async(op, RH_GCS_OP_SPUT, -1);
}

rh_status_t rh_gcs_sdel_async(rh_gcs_op_t *op)
{
    return rh_gcs_write_async(op, RH_GCS_OP_SDEL, -1);
}

rh_status_t rh_gcs_get_async(rh_gcs_op_t *op)
{
    rh_status_t status = rh_gcs_check(op, 0, 0);

    if (status != RH_OK) {
        return status;
    }
    op->kind = RH_GCS_KIND_READ;
    op->shard = rh_gcs_shard_of(op->table, op->key, op->klen);
    return rh_gcs_op_start(op);
}

static void rh_gcs_deliver(rh_gcs_op_t *op, const rh_gcs_ahdr_t *a,
                           const void *data, size_t len)
{
    rh_status_t status = (rh_status_t)a->status;

    op->version = a->version;
    if (op->kind == RH_GCS_KIND_READ && status == RH_OK) {
        op->out = malloc(len != 0 ? len : 1);
        if (op->out == NULL) {
            status = rh_error_set(RH_ERR_NO_MEMORY, "GCS value of %zu bytes",
                                  len);
        } else {
            memcpy(op->out, data, len);
            op->out_len = len;
        }
    }
    rh_gcs_finish(op, status);
}

typedef struct rh_gcs_rndv_answer {
    rh_gcs_op_t  *op;
    rh_gcs_ahdr_t a;
    uint8_t       data[];
} rh_gcs_rndv_answer_t;

static void rh_gcs_answer_arrived(void *arg, rh_status_t status)
{
    rh_gcs_rndv_answer_t *x = arg;

    if (status != RH_OK) {
        x->a.status = status;
    }
    rh_gcs_deliver(x->op, &x->a, x->data, 0);
    free(x);
}

static rh_status_t rh_gcs_on_answer(void *arg, rh_am_msg_t *msg)
{
    rh_gcs_ahdr_t a;
    rh_gcs_op_t *op;

    (void)arg;
    if (rh_gcs_cut((int)msg->src)) {
        return RH_OK;
    }
    memcpy(&a, msg->hdr, sizeof(a));
    if (a.status > 0 || msg->data_len > RH_GCS_VALUE_MAX) {
        return RH_ERR_MALFORMED;
    }
    if (a.status == RH_ERR_NO_QUORUM) {
        /* Not served now: the tick sends it again until its deadline. */
        return RH_OK;
    }
    op = rh_gcs_untrack(a.seq);
    if (op == NULL) {
        return RH_OK;   /* answered already: a retry's second answer */
    }
    if (msg->data == NULL && msg->data_len != 0) {
        rh_gcs_rndv_answer_t *x = malloc(sizeof(*x));

        op->out = malloc(msg->data_len);
        if (x == NULL || op->out == NULL) {
            free(x);
            free(op->out);
            op->out = NULL;
            rh_gcs_finish(op, RH_ERR_NO_MEMORY);
            return RH_OK;
        }
        op->out_len = msg->data_len;
        x->op = op;
        x->a = a;
        if (op->kind == RH_GCS_KIND_READ) {
            /* The value lands in op->out directly. */
            op->kind = RH_GCS_OP_MAX + 1;
        }
        return rh_am_recv_data(msg, op->out, rh_gcs_answer_arrived, x);
    }
    rh_gcs_deliver(op, &a, msg->data, msg->data_len);
    return RH_OK;
}

/* On the progress thread: ops whose time is up come off the list into
 * *failed; the others go again when all is set or they waited half a
 * timeout. Only this thread finishes ops (answers, deadlines), so those
 * picked stay valid after the lock is dropped. */
static void rh_gcs_sweep(uint64_t now, int all, rh_gcs_op_t **failed)
{
    rh_gcs_op_t *op, *next, **resend = NULL;
    uint64_t half = rh_gcs_timeout_ns() / 2, floor;
    size_t n = 0;

    pthread_mutex_lock(&rh_gcs_cl.lock);
    if (rh_hmap_count(&rh_gcs_cl.ops) != 0) {
        resend = malloc(rh_hmap_count(&rh_gcs_cl.ops) * sizeof(*resend));
    }
    for (op = rh_gcs_cl.first; op != NULL; op = next) {
        next = op->next;
        if (now >= op->deadline_ns) {
            rh_hmap_del(&rh_gcs_cl.ops, &op->seq, NULL);
            if (op->prev != NULL) {
                op->prev->next = op->next;
            } else {
                rh_gcs_cl.first = op->next;
            }
            if (op->next != NULL) {
                op->next->prev = op->prev;
            } else {
                rh_gcs_cl.last = op->prev;
            }
            op->next = *failed;
            *failed = op;
        } else if (resend != NULL && (all || now - op->sent_ns > half)) {
            op->sent_ns = now;
            resend[n++] = op;
        }
    }
    floor = rh_gcs_cl.first != NULL ? rh_gcs_cl.first->seq : 0;
    pthread_mutex_unlock(&rh_gcs_cl.lock);
    for (size_t i = 0; i < n; i++) {
        /* floor is at most the number of every op still listed then: a
         * floor below the newest only keeps results a little longer. */
        rh_gcs_resend(resend[i], floor);
    }
    free(resend);
}

static void rh_gcs_fail_all(rh_gcs_op_t *failed)
{
    while (failed != NULL) {
        rh_gcs_op_t *op = failed;

        failed = op->next;
        rh_gcs_finish(op, rh_error_set(RH_ERR_NO_QUORUM, "no GCS chain "
                                       "served shard %u within %llu ms",
                                       op->shard, (unsigned long long)
                                       (4 * rh_gcs_timeout_ns() / 1000000)));
    }
}

void rh_gcs_client_reconfigure(void)
{
    rh_gcs_op_t *failed = NULL;

    rh_gcs_sweep(rh_time_ns(), 1, &failed);
    rh_gcs_fail_all(failed);
}

void rh_gcs_client_tick(uint64_t now)
{
    rh_gcs_op_t *failed = NULL;

    rh_gcs_sweep(now, 0, &failed);
    rh_gcs_fail_all(failed);
}

rh_status_t rh_gcs_client_setup(void)
{
    return rh_am_register(RH_AM_ID_GCS_ANSWER, sizeof(rh_gcs_ahdr_t),
                          sizeof(rh_gcs_ahdr_t), rh_gcs_on_answer, NULL);
}

/* Fails what still waits: the transport is gone, no answer will come. */
void rh_gcs_client_stop(void)
{
    rh_gcs_op_t *op;

    for (;;) {
        pthread_mutex_lock(&rh_gcs_cl.lock);
        op = rh_gcs_cl.first;
        pthread_mutex_unlock(&rh_gcs_cl.lock);
        if (op == NULL || rh_gcs_untrack(op->seq) == NULL) {
            break;
        }
        rh_gcs_finish(op, rh_error_set(RH_ERR_SHUTDOWN, "the GCS stopped "
                                       "before it answered"));
    }
    rh_hmap_fini(&rh_gcs_cl.ops);
}

/* ---- synchronous forms ------------------------------------------------------ */

static int rh_gcs_op_finished(void *arg)
{
    return atomic_load_explicit(&((rh_gcs_op_t *)arg)->finished,
                                memory_order_acquire);
}

static rh_status_t rh_gcs_sync(rh_gcs_op_t *op,
                               rh_status_t (*start)(rh_gcs_op_t *op))
{
    rh_status_t status;

    if (rh_tp_on_progress_thread()) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "a synchronous GCS call "
                            "on the progress thread would wait forever");
    }
    op->done = NULL;
    status = start(op);
    if (status != RH_OK) {
        return status;
    }
    (void)rh_core_wait_until(rh_gcs_op_finished, op, 0);
    if (op->status != RH_OK && op->status != RH_ERR_NOT_FOUND &&
        op->status != RH_ERR_CONFLICT) {
        return rh_error_set(op->status, "GCS %s of a key in table %s: %s",
                            op->kind == RH_GCS_KIND_READ ? "read" : "write",
                            rh_gcs_table_name(op->table),
                            rh_status_string(op->status));
    }
    return op->status;
}

rh_status_t rh_gcs_put(int table, const void *key, size_t klen,
                       const void *value, size_t vlen, uint64_t *version)
{
    rh_gcs_op_t op = { .table = (uint8_t)table, .key = key, .klen = klen,
                       .value = value, .vlen = vlen };
    rh_status_t status;

    if (table < 0 || table >= RH_GCS_NTABLES) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "GCS table %d", table);
    }
    status = rh_gcs_sync(&op, rh_gcs_put_async);
    if (version != NULL) {
        *version = op.version;
    }
    return status;
}

rh_status_t rh_gcs_del(int table, const void *key, size_t klen)
{
    rh_gcs_op_t op = { .table = (uint8_t)table, .key = key, .klen = klen };

    if (table < 0 || table >= RH_GCS_NTABLES) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "GCS table %d", table);
    }
    return rh_gcs_sync(&op, rh_gcs_del_async);
}

rh_status_t rh_gcs_cas(int table, const void *key, size_t klen,
                       const void *value, size_t vlen, uint64_t expect,
                       uint64_t *version)
{
    rh_gcs_op_t op = { .table = (uint8_t)table, .key = key, .klen = klen,
                       .value = value, .vlen = vlen, .expect = expect };
    rh_status_t status;

    if (table < 0 || table >= RH_GCS_NTABLES) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "GCS table %d", table);
    }
    status = rh_gcs_sync(&op, rh_gcs_cas_async);
    if (version != NULL) {
        *version = op.version;
    }
    return status;
}

rh_status_t rh_gcs_get(int table, const void *key, size_t klen, void **value,
                       size_t *vlen, uint64_t *version)
{
    rh_gcs_op_t op = { .table = (uint8_t)table, .key = key, .klen = klen };
    rh_status_t status;

    if (table < 0 || table >= RH_GCS_NTABLES || value == NULL ||
        vlen == NULL) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "GCS get: table %d, and "
                            "somewhere for the value", table);
    }
    *value = NULL;
    *vlen = 0;
    status = rh_gcs_sync(&op, rh_gcs_get_async);
    if (status == RH_OK) {
        *value = op.out;
        *vlen = op.out_len;
    }
    if (version != NULL) {
        *version = op.version;
    }
    return status;
}

static rh_status_t rh_gcs_own_put_async(rh_gcs_op_t *op)
{
    return rh_gcs_write_async(op, op->vlen != 0 ? RH_GCS_OP_PUT :
                              RH_GCS_OP_DEL, op->shard);
}

rh_status_t rh_gcs_write_to_shard(int table, const void *key, size_t klen,
                                  const void *value, size_t vlen,
                                  uint32_t shard)
{
    rh_gcs_op_t op = { .table = (uint8_t)table, .key = key, .klen = klen,
                       .value = value, .vlen = value != NULL ? vlen : 0,
                       .shard = shard };

    if (shard >= rh_gcs_nshards || (value != NULL && vlen == 0)) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "GCS shard %u of %u",
                            shard, rh_gcs_nshards);
    }
    return rh_gcs_sync(&op, rh_gcs_own_put_async);
}
