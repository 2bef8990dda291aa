/*
 * The replica half of the GCS: for each shard whose chain holds this rank,
 * a store; the head numbers writes and applies them, every other member
 * applies them in that order as they come down the chain, and the tail
 * answers the client, publishes and serves reads.
 *
 * Each member above the tail keeps the writes it passed on until the tail
 * reports them applied (ACKUP, every RH_GCS_ACKUP_EVERY writes). When the
 * chain re-forms, each member sends what it keeps to its new successor
 * (which skips what it has), and a member that became the tail answers
 * and publishes what it keeps (clients and subscribers drop what they
 * had): every write some member applied reaches the end of the chain
 * while one member that has it lives.
 *
 * Everything here runs on the progress thread (AM handlers), or on a
 * client thread that holds the transport's token as the progress thread
 * does (rh_tp_enter: a write to a shard this rank heads), so the stores
 * need no lock.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/hashmap.h"
#include "base/log.h"
#include "base/status.h"
#include "gcs/gcs_pubsub.h"
#include "gcs/gcs_store.h"
#include "gcs/gcs_wire.h"

#define RH_GCS_ACKUP_EVERY 32

/* A write kept: forwarded and not yet known applied at the tail, or one
 * that came ahead of its turn or of its epoch. */
typedef struct rh_gcs_held rh_gcs_held_t;
struct rh_gcs_held {
    rh_gcs_held_t      *next;       /* future-epoch list */
    int                 src;
    rh_gcs_whdr_t       h;
    rh_gcs_result_t     res;
    rh_gcs_pub_match_t *matches;
    uint32_t            nmatches;
    uint8_t             data[];
};

typedef struct rh_gcs_pub_matches {
    rh_gcs_pub_match_t *v;
    uint32_t            n;
} rh_gcs_pub_matches_t;

typedef struct rh_gcs_replica {
    rh_gcs_store_t store;
    rh_hmap_t      early;   /* lsn -> rh_gcs_held_t *: came before its turn */
    rh_hmap_t      log;     /* lsn -> rh_gcs_held_t *: passed on, kept */
    uint64_t       log_lo;  /* no kept write below this */
    uint64_t       served;  /* reads answered */
    int            have_state;   /* 0: joining, the tail's state not in
                                  * yet (writes wait in early) */
    uint64_t       serve_at;     /* a tail that joined serves reads once
                                  * it applied this (its predecessor's
                                  * HANDOFF): the old tail acknowledged
                                  * writes it may not have had yet */
    /* What rayhpc-info --gcs shows, read by the job-state thread: copies
     * set after each write applied and each read served. */
    struct {
        _Atomic uint64_t lsn, bytes, served, subs;
        _Atomic uint64_t count[RH_GCS_T_SUB];
    } shown;
} rh_gcs_replica_t;

/* A message whose payload comes by rendezvous: kept until it is here. */
typedef struct rh_gcs_rndv {
    uint16_t id;
    uint32_t src;
    size_t   len;
    uint8_t  hdr[sizeof(rh_gcs_whdr_t)];
    uint8_t  data[];
} rh_gcs_rndv_t;

static rh_gcs_replica_t **rh_gcs_replicas;   /* nshards; NULL: not ours */
static rh_gcs_held_t *rh_gcs_future;         /* FWDs of an epoch to come */

static rh_gcs_replica_t *rh_gcs_replica(uint32_t shard)
{
    return shard < rh_gcs_map.nshards ? rh_gcs_replicas[shard] : NULL;
}

static rh_gcs_held_t *rh_gcs_held_new(int src, const rh_gcs_whdr_t *h,
                                      const uint8_t *data)
{
    size_t len = (size_t)h->klen + h->vlen;
    rh_gcs_held_t *x = malloc(sizeof(*x) + len);

    if (x == NULL) {
        rh_error("GCS shard %u: no memory to keep write %llu", h->shard,
                 (unsigned long long)h->lsn);
        return NULL;
    }
    memset(x, 0, sizeof(*x));
    x->src = src;
    x->h = *h;
    memcpy(x->data, data, len);
    return x;
}

static void rh_gcs_held_free(rh_gcs_held_t *x)
{
    if (x != NULL) {
        free(x->matches);
        free(x);
    }
}

static void rh_gcs_answer(uint32_t client, uint32_t shard, uint64_t seq,
                          const rh_gcs_result_t *res, const void *value,
                          size_t len)
{
    rh_gcs_ahdr_t a = { seq, res->version, res->status, shard };

    /* A client that died needs no answer. */
    (void)rh_gcs_send((int)client, RH_AM_ID_GCS_ANSWER, &a, sizeof(a), value,
                      len);
}

static void rh_gcs_refuse(int client, uint32_t shard, uint64_t seq,
                          uint64_t epoch)
{
    rh_gcs_result_t no = { 0, RH_ERR_NO_QUORUM, 0 };

    rh_gcs_answer((uint32_t)client, shard, seq, &no, NULL, 0);
    if (epoch < rh_gcs_map.epoch) {
        rh_gcs_offer_conf(client);
    }
}

static void rh_gcs_write_from(const rh_gcs_whdr_t *h, const uint8_t *data,
                              rh_gcs_write_t *w)
{
    w->op = h->op;
    w->table = h->table;
    w->klen = h->klen;
    w->vlen = h->vlen;
    w->client = h->client;
    w->seq = h->seq;
    w->floor = h->floor;
    w->expect = h->expect;
    w->lsn = h->lsn;
    w->key = data;
    w->value = data + h->klen;
}

static void rh_gcs_forward(int next, const rh_gcs_whdr_t *hin,
                           const uint8_t *data)
{
    rh_gcs_whdr_t h = *hin;

    h.epoch = rh_gcs_map.epoch;
    h.flags = 0;
    (void)rh_gcs_send(next, RH_AM_ID_GCS_FWD, &h, sizeof(h), data,
                      (size_t)h.klen + h.vlen);
}

/* The tail tells the members above it what they may forget. */
static void rh_gcs_ackup(uint32_t shard, uint64_t lsn)
{
    rh_gcs_uhdr_t u = { lsn, shard, 0 };

    for (uint32_t i = 0; i + 1 < rh_gcs_map.len[shard]; i++) {
        (void)rh_gcs_send(rh_gcs_map.chain[(size_t)shard *
                                           rh_gcs_map.replicas + i],
                          RH_AM_ID_GCS_ACKUP, &u, sizeof(u), NULL, 0);
    }
}

static void rh_gcs_show(rh_gcs_replica_t *rep, uint32_t shard)
{
    atomic_store_explicit(&rep->shown.lsn, rep->store.lsn,
                          memory_order_relaxed);
    atomic_store_explicit(&rep->shown.bytes, rep->store.bytes,
                          memory_order_relaxed);
    atomic_store_explicit(&rep->shown.subs, rh_gcs_pub_count(shard),
                          memory_order_relaxed);
    for (int t = 0; t < RH_GCS_T_SUB; t++) {
        atomic_store_explicit(&rep->shown.count[t], rep->store.count[t],
                              memory_order_relaxed);
    }
}

/* The tail's answer to a write, and its notices: subscribers first, so
 * that a subscriber that is the client too sees the update before the
 * answer. */
static void rh_gcs_tail_answer(const rh_gcs_whdr_t *h,
                               const rh_gcs_write_t *w,
                               const rh_gcs_result_t *res)
{
    rh_gcs_pub_applied(h->shard, w, res, NULL, NULL);
    rh_gcs_answer(h->client, h->shard, h->seq, res, NULL, 0);
}

/* Applies a write in its turn and passes it on: down the chain (keeping
 * it), or to the client and the subscribers from the tail. What is on the
 * way to the client leaves first: a member above the tail sends the write
 * down before it applies it, and the tail answers a PUT (whose result
 * needs no look at the key) before it applies it, the room for the apply
 * reserved first so that it cannot fail once the write left; other writes
 * the tail applies, then answers. The apply and the books (the kept copy,
 * the subscriptions a member above the tail matches, what rayhpc-info
 * shows) come after the send, off the write's path: the send copies what
 * it sends, and no other message is handled between (handlers run one at
 * a time on this thread: no read, no ACKUP), so the write is applied and
 * kept before anyone can read it or report it applied. */
static void rh_gcs_apply_pass(rh_gcs_replica_t *rep, const rh_gcs_whdr_t *h,
                              const uint8_t *data)
{
    int pos = rh_gcs_map_pos(&rh_gcs_map, h->shard, rh_gcs_rank);
    int next = rh_gcs_map_next(&rh_gcs_map, h->shard, pos);
    rh_gcs_write_t w;
    rh_gcs_result_t res;
    rh_gcs_held_t *x, **slot;
    rh_status_t status;
    int joiner = rh_gcs_map.joining[h->shard];
    int tail = pos >= 0 && next < 0;
    /* A PUT of the subscription table changes what the tail publishes. */
    int early = next >= 0 || (tail && h->op == RH_GCS_OP_PUT &&
                              h->table < RH_GCS_T_SUB);

    rh_gcs_write_from(h, data, &w);
    status = early ? rh_gcs_store_reserve(&rep->store, &w) : RH_OK;
    if (status == RH_OK) {
        if (next >= 0) {
            rh_gcs_forward(next, h, data);
        } else if (early) {
            rh_gcs_store_put_result(&rep->store, &w, &res);
            rh_gcs_tail_answer(h, &w, &res);
        }
        status = rh_gcs_store_apply(&rep->store, &w, &res);
    }
    if (status != RH_OK) {
        /* Out of memory (before anything left: see rh_gcs_store_reserve):
         * the write stays unanswered here and its client sends it
         * again. */
        rh_error("GCS shard %u: write %llu not applied: %s", h->shard,
                 (unsigned long long)h->lsn, rh_last_error());
        return;
    }
    if (pos < 0) {
        /* Joining behind the tail, which answered and published it: only
         * the books (the subscriptions' counts, for when this rank is the
         * tail). */
        rh_gcs_pub_matches_t none = { NULL, 0 };

        rh_gcs_pub_applied(h->shard, &w, &res, &none.v, &none.n);
        free(none.v);
        rh_gcs_show(rep, h->shard);
        return;
    }
    if (next < 0) {
        if (!early) {
            rh_gcs_tail_answer(h, &w, &res);
        }
        rh_gcs_show(rep, h->shard);
        if (joiner < 0) {
            if (h->lsn % RH_GCS_ACKUP_EVERY == 0) {
                rh_gcs_ackup(h->shard, h->lsn);
            }
            return;
        }
        /* No ACKUP while a rank joins: should this tail die once the
         * joiner took its place, the members above it still keep every
         * write the joiner may lack, and pass them on. */
        /* A rank joins behind us: it gets the write too, and we keep it
         * until it, the tail to be, reports it applied (it answers what
         * we keep when it becomes the tail). */
        next = joiner;
        rh_gcs_forward(next, h, data);
    }
    x = rh_gcs_held_new(rh_gcs_rank, h, data);
    if (x != NULL) {
        x->res = res;
        if (!tail) {   /* the tail matched and published it above */
            rh_gcs_pub_applied(h->shard, &w, &res, &x->matches,
                               &x->nmatches);
        }
        slot = rh_hmap_put(&rep->log, &h->lsn, NULL);
        if (slot != NULL) {
            *slot = x;
        } else {
            rh_error("GCS shard %u: no memory to keep write %llu", h->shard,
                     (unsigned long long)h->lsn);
            rh_gcs_held_free(x);
        }
    }
    rh_gcs_show(rep, h->shard);
}

static int rh_gcs_whdr_ok(const rh_gcs_whdr_t *h, size_t data_len)
{
    return h->shard < rh_gcs_map.nshards && h->table < RH_GCS_NTABLES &&
           h->op >= 1 && h->op <= RH_GCS_OP_MAX && h->klen >= 1 &&
           h->klen <= RH_GCS_KEY_MAX && h->vlen <= RH_GCS_VALUE_MAX &&
           (size_t)h->klen + h->vlen == data_len &&
           (int)h->client < rh_gcs_size;
}

/* The head: a new write gets the next log index; one applied already (a
 * retry) is answered again by the tail. Only while a majority of the
 * masters confirms our epoch. */
static void rh_gcs_on_write_body(int src, const rh_gcs_whdr_t *hin,
                                 const uint8_t *data)
{
    rh_gcs_replica_t *rep = rh_gcs_replica(hin->shard);
    rh_gcs_whdr_t h = *hin;
    rh_gcs_result_t res;

    (void)src;
    if (rep == NULL || rh_gcs_map_head(&rh_gcs_map, h.shard) != rh_gcs_rank ||
        !rh_gcs_lease_ok()) {
        rh_gcs_refuse((int)h.client, h.shard, h.seq, h.epoch);
        return;
    }
    if (rh_gcs_store_applied(&rep->store, h.client, h.seq, &res)) {
        int tail = rh_gcs_map_tail(&rh_gcs_map, h.shard);

        if (tail == rh_gcs_rank) {
            rh_gcs_answer(h.client, h.shard, h.seq, &res, NULL, 0);
        } else {
            h.epoch = rh_gcs_map.epoch;
            h.flags = RH_GCS_FWD_REACK;
            h.klen = 0;
            h.vlen = 0;
            (void)rh_gcs_send(tail, RH_AM_ID_GCS_FWD, &h, sizeof(h), NULL,
                              0);
        }
        return;
    }
    h.lsn = rep->store.lsn + 1;
    h.flags = 0;
    rh_gcs_apply_pass(rep, &h, data);
}

/* Forgets every kept write: the log starts after the store's last. */
static void rh_gcs_log_drop(rh_gcs_replica_t *rep)
{
    rh_gcs_held_t *x;

    while (rh_hmap_pop(&rep->log, NULL, &x)) {
        rh_gcs_held_free(x);
    }
    rep->log_lo = rep->store.lsn + 1;
}

/* Applies the writes that waited in early from the next in log order on,
 * dropping those the store has. */
static void rh_gcs_apply_early(rh_gcs_replica_t *rep)
{
    rh_gcs_held_t *held;
    rh_hmap_iter_t it;
    void *key, *val;

    rh_hmap_iter_init(&it, &rep->early);
    while (rh_hmap_iter_next(&it, &key, &val)) {
        if (*(uint64_t *)key <= rep->store.lsn) {
            rh_gcs_held_free(*(rh_gcs_held_t **)val);
            rh_hmap_iter_del(&it);
        }
    }
    for (;;) {
        uint64_t next = rep->store.lsn + 1;

        if (!rh_hmap_del(&rep->early, &next, &held)) {
            break;
        }
        rh_gcs_apply_pass(rep, &held->h, held->data);
        rh_gcs_held_free(held);
    }
}

/* The joining rank: the tail's state, then what waited. */
static void rh_gcs_take_state(rh_gcs_replica_t *rep, const rh_gcs_whdr_t *h,
                              const uint8_t *data)
{
    uint64_t slen;
    rh_status_t status = RH_ERR_MALFORMED;

    if (h->vlen >= sizeof(slen)) {
        memcpy(&slen, data, sizeof(slen));
        if (slen <= h->vlen - sizeof(slen)) {
            status = rh_gcs_store_unpack(&rep->store, data + sizeof(slen),
                                         (size_t)slen);
            if (status == RH_OK) {
                status = rh_gcs_pub_unpack(h->shard,
                                           data + sizeof(slen) + slen,
                                           h->vlen - sizeof(slen) -
                                           (size_t)slen);
            }
        }
    }
    if (status != RH_OK || rep->store.lsn != h->lsn) {
        /* The next configuration (the tail sends it again) or the next
         * joiner: this rank does not serve the shard meanwhile. */
        rh_error("GCS shard %u: the state from rank %u does not take: %s",
                 h->shard, h->client, rh_last_error());
        return;
    }
    rep->have_state = 1;
    rh_gcs_log_drop(rep);
    rh_gcs_apply_early(rep);
    rh_gcs_show(rep, h->shard);
    rh_info("GCS shard %u: caught up with the tail at write %llu (now "
            "%llu)", h->shard, (unsigned long long)h->lsn,
            (unsigned long long)rep->store.lsn);
    rh_gcs_caught_up(h->shard, rh_gcs_map.epoch);
}

/* A member below the head: applies writes of its predecessor in log
 * order, holding those that overtook their predecessors; a write of an
 * epoch still to come waits for it, one of an epoch gone is dropped (its
 * sender sends it again under the new one). A rank joining behind the
 * tail takes the tail's writes the same way, once it has the tail's
 * state. */
static void rh_gcs_on_fwd_body(int src, const rh_gcs_whdr_t *h,
                               const uint8_t *data)
{
    rh_gcs_replica_t *rep = rh_gcs_replica(h->shard);
    rh_gcs_held_t *held, **slot;
    int pos, pred, added;

    if (h->epoch > rh_gcs_map.epoch) {
        held = rh_gcs_held_new(src, h, data);
        if (held != NULL) {
            held->next = rh_gcs_future;
            rh_gcs_future = held;
        }
        return;
    }
    if (h->epoch < rh_gcs_map.epoch || rep == NULL) {
        return;
    }
    pos = rh_gcs_map_pos(&rh_gcs_map, h->shard, rh_gcs_rank);
    if (h->flags & RH_GCS_FWD_REACK) {
        rh_gcs_result_t res;

        /* Not applied yet: it is on its way down and will be answered. */
        if (rh_gcs_map_tail(&rh_gcs_map, h->shard) == rh_gcs_rank &&
            rh_gcs_store_applied(&rep->store, h->client, h->seq, &res)) {
            rh_gcs_answer(h->client, h->shard, h->seq, &res, NULL, 0);
        }
        return;
    }
    pred = pos > 0 ? rh_gcs_map.chain[(size_t)h->shard * rh_gcs_map.replicas +
                                      (uint32_t)pos - 1] :
           pos < 0 && rh_gcs_map.joining[h->shard] == rh_gcs_rank ?
           rh_gcs_map_tail(&rh_gcs_map, h->shard) : -1;
    if (pred < 0 || pred != src) {
        return;   /* not from our predecessor in this epoch */
    }
    if (h->flags & RH_GCS_FWD_STATE) {
        if (pos < 0) {
            rh_gcs_take_state(rep, h, data);
        }
        return;
    }
    if (h->flags & RH_GCS_FWD_HANDOFF) {
        if (rep->serve_at == UINT64_MAX) {
            rep->serve_at = h->lsn;   /* only a tail that waits for it */
        }
        return;
    }
    if (rep->have_state && h->lsn <= rep->store.lsn) {
        return;   /* had it */
    }
    if (!rep->have_state || h->lsn > rep->store.lsn + 1) {
        slot = rh_hmap_put(&rep->early, &h->lsn, &added);
        if (slot == NULL || !added) {
            if (slot == NULL) {
                rh_error("GCS shard %u: no memory to hold write %llu",
                         h->shard, (unsigned long long)h->lsn);
            }
            return;
        }
        held = rh_gcs_held_new(src, h, data);
        if (held == NULL) {
            rh_hmap_del(&rep->early, &h->lsn, NULL);
            return;
        }
        *slot = held;
        return;
    }
    rh_gcs_apply_pass(rep, h, data);
    for (;;) {
        uint64_t next = rep->store.lsn + 1;

        if (!rh_hmap_del(&rep->early, &next, &held)) {
            break;
        }
        rh_gcs_apply_pass(rep, &held->h, held->data);
        rh_gcs_held_free(held);
    }
}

static void rh_gcs_rndv_arrived(void *arg, rh_status_t status)
{
    rh_gcs_rndv_t *x = arg;
    rh_gcs_whdr_t h;

    if (status == RH_OK) {
        memcpy(&h, x->hdr, sizeof(h));
        if (x->id == RH_AM_ID_GCS_WRITE) {
            rh_gcs_on_write_body((int)x->src, &h, x->data);
        } else {
            rh_gcs_on_fwd_body((int)x->src, &h, x->data);
        }
    }
    free(x);
}

/* Runs body now, or once a rendezvous payload is here. */
static rh_status_t rh_gcs_on_whdr(rh_am_msg_t *msg,
                                  void (*body)(int src,
                                               const rh_gcs_whdr_t *h,
                                               const uint8_t *data))
{
    rh_gcs_whdr_t h;

    if (rh_gcs_cut((int)msg->src)) {
        return RH_OK;
    }
    memcpy(&h, msg->hdr, sizeof(h));
    if ((h.flags & (RH_GCS_FWD_REACK | RH_GCS_FWD_HANDOFF)) ?
        (msg->data_len != 0 || h.shard >= rh_gcs_map.nshards ||
         (int)h.client >= rh_gcs_size) :
        (h.flags & RH_GCS_FWD_STATE) ?
        (msg->id != RH_AM_ID_GCS_FWD || h.klen != 0 ||
         h.vlen != msg->data_len || h.shard >= rh_gcs_map.nshards ||
         (int)h.client >= rh_gcs_size) :
        !rh_gcs_whdr_ok(&h, msg->data_len)) {
        return RH_ERR_MALFORMED;
    }
    if (msg->data == NULL && msg->data_len != 0) {
        rh_gcs_rndv_t *x = malloc(sizeof(*x) + msg->data_len);

        if (x == NULL) {
            rh_error("GCS: no memory for a %zu-byte write", msg->data_len);
            return RH_OK;
        }
        x->id = msg->id;
        x->src = msg->src;
        x->len = msg->data_len;
        memcpy(x->hdr, &h, sizeof(h));
        return rh_am_recv_data(msg, x->data, rh_gcs_rndv_arrived, x);
    }
    body((int)msg->src, &h, msg->data);
    return RH_OK;
}

void rh_gcs_chain_write_here(const rh_gcs_whdr_t *h, const uint8_t *data)
{
    rh_gcs_on_write_body(rh_gcs_rank, h, data);
}

static rh_status_t rh_gcs_on_write(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    return rh_gcs_on_whdr(msg, rh_gcs_on_write_body);
}

static rh_status_t rh_gcs_on_fwd(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    return rh_gcs_on_whdr(msg, rh_gcs_on_fwd_body);
}

/* Forgets kept writes up to lsn: the tail has them. */
static void rh_gcs_log_trim(rh_gcs_replica_t *rep, uint64_t lsn)
{
    rh_gcs_held_t *x;

    for (; rep->log_lo <= lsn; rep->log_lo++) {
        if (rh_hmap_del(&rep->log, &rep->log_lo, &x)) {
            rh_gcs_held_free(x);
        }
    }
}

static rh_status_t rh_gcs_on_ackup(void *arg, rh_am_msg_t *msg)
{
    rh_gcs_uhdr_t u;
    rh_gcs_replica_t *rep;

    (void)arg;
    if (rh_gcs_cut((int)msg->src)) {
        return RH_OK;
    }
    memcpy(&u, msg->hdr, sizeof(u));
    if (u.shard >= rh_gcs_map.nshards || msg->data_len != 0) {
        return RH_ERR_MALFORMED;
    }
    rep = rh_gcs_replica(u.shard);
    if (rep != NULL && u.lsn <= rep->store.lsn) {
        rh_gcs_log_trim(rep, u.lsn);
    }
    return RH_OK;
}

/* The tail serves reads: it holds only writes every replica applied. */
static rh_status_t rh_gcs_on_read(void *arg, rh_am_msg_t *msg)
{
    rh_gcs_rhdr_t h;
    rh_gcs_replica_t *rep;
    const rh_gcs_entry_t *e;
    rh_gcs_result_t res = { 0, RH_ERR_NOT_FOUND, 0 };

    (void)arg;
    if (rh_gcs_cut((int)msg->src)) {
        return RH_OK;
    }
    memcpy(&h, msg->hdr, sizeof(h));
    if (h.shard >= rh_gcs_map.nshards || h.table >= RH_GCS_NTABLES ||
        h.klen < 1 || h.klen > RH_GCS_KEY_MAX || msg->data_len != h.klen ||
        msg->data == NULL) {
        return RH_ERR_MALFORMED;
    }
    rep = rh_gcs_replica(h.shard);
    if (rep == NULL || rh_gcs_map_tail(&rh_gcs_map, h.shard) != rh_gcs_rank ||
        !rh_gcs_lease_ok() || rep->store.lsn < rep->serve_at) {
        rh_gcs_refuse((int)msg->src, h.shard, h.seq, h.epoch);
        return RH_OK;
    }
    rep->served++;
    atomic_store_explicit(&rep->shown.served, rep->served,
                          memory_order_relaxed);
    e = rh_gcs_store_get(&rep->store, h.table, msg->data, h.klen);
    if (e == NULL) {
        rh_gcs_answer(msg->src, h.shard, h.seq, &res, NULL, 0);
        return RH_OK;
    }
    res.status = RH_OK;
    res.version = e->version;
    rh_gcs_answer(msg->src, h.shard, h.seq, &res, rh_gcs_entry_value(e),
                  e->vlen);
    return RH_OK;
}

/* ---- re-forming ---------------------------------------------------------------- */

static rh_gcs_replica_t *rh_gcs_replica_new(void)
{
    rh_gcs_replica_t *rep = calloc(1, sizeof(*rep));

    if (rep == NULL) {
        return NULL;
    }
    rh_gcs_store_init(&rep->store);
    rh_hmap_init(&rep->early, sizeof(uint64_t), sizeof(rh_gcs_held_t *));
    rh_hmap_init(&rep->log, sizeof(uint64_t), sizeof(rh_gcs_held_t *));
    rep->log_lo = 1;
    rep->have_state = 1;
    return rep;
}

/* The tail sends a joining rank the shard's state as of its last write;
 * every write it applies after goes there too (rh_gcs_apply_pass). */
static void rh_gcs_send_state(rh_gcs_replica_t *rep, uint32_t shard, int to)
{
    uint64_t slen = rh_gcs_store_pack(&rep->store, NULL);
    size_t plen = rh_gcs_pub_pack(shard, NULL);
    size_t len = sizeof(slen) + (size_t)slen + plen;
    rh_gcs_whdr_t h;
    uint8_t *buf;

    if (len > UINT32_MAX || (buf = malloc(len)) == NULL) {
        rh_error("GCS shard %u: no memory to send its %zu-byte state to "
                 "rank %d", shard, len, to);
        return;
    }
    memcpy(buf, &slen, sizeof(slen));
    (void)rh_gcs_store_pack(&rep->store, buf + sizeof(slen));
    (void)rh_gcs_pub_pack(shard, buf + sizeof(slen) + slen);
    memset(&h, 0, sizeof(h));
    h.epoch = rh_gcs_map.epoch;
    h.lsn = rep->store.lsn;
    h.client = (uint32_t)rh_gcs_rank;
    h.shard = shard;
    h.vlen = (uint32_t)len;
    h.op = RH_GCS_OP_PUT;
    h.flags = RH_GCS_FWD_STATE;
    rh_info("GCS shard %u: sending its state (%zu bytes, write %llu) to "
            "rank %d, which joins the chain", shard, len,
            (unsigned long long)h.lsn, to);
    (void)rh_gcs_send(to, RH_AM_ID_GCS_FWD, &h, sizeof(h), buf, len);
    free(buf);
}

void rh_gcs_chain_reconfigure(const rh_gcs_map_t *old)
{
    rh_gcs_held_t *future = rh_gcs_future, *x;

    for (uint32_t s = 0; s < rh_gcs_map.nshards; s++) {
        rh_gcs_replica_t *rep = rh_gcs_replicas[s];
        int pos = rh_gcs_map_pos(&rh_gcs_map, s, rh_gcs_rank);
        int next = rh_gcs_map_next(&rh_gcs_map, s, pos);
        int joiner = rh_gcs_map.joining[s];

        if (joiner == rh_gcs_rank) {
            /* Joining: the tail of this configuration sends its state; what
             * we had of another is replaced by it. */
            if (rep == NULL) {
                rep = rh_gcs_replica_new();
                if (rep == NULL) {
                    rh_error("GCS: no memory to join the chain of shard %u",
                             s);
                    continue;
                }
                /* rh_gcs_chain_snapshot reads the table from other
                 * threads, under the map's lock. */
                pthread_rwlock_wrlock(&rh_gcs_map_lock);
                rh_gcs_replicas[s] = rep;
                pthread_rwlock_unlock(&rh_gcs_map_lock);
            }
            rep->have_state = 0;
            while (rh_hmap_pop(&rep->early, NULL, &x)) {
                rh_gcs_held_free(x);
            }
            continue;
        }
        if (rep == NULL || pos < 0) {
            continue;
        }
        /* A tail that joined, or that still waits for what its old
         * predecessor passed on, serves reads once its predecessor's
         * HANDOFF says how far to go; a head has nobody to wait for. */
        rep->serve_at = next < 0 && pos > 0 &&
                        (old->joining[s] == rh_gcs_rank ||
                         rep->store.lsn < rep->serve_at) ? UINT64_MAX : 0;
        if (next < 0 && rh_gcs_map_tail(old, s) != rh_gcs_rank) {
            /* The new tail: what it kept may not have reached the old
             * one; it answers and publishes it (again). */
            for (uint64_t l = rep->log_lo; l <= rep->store.lsn; l++) {
                rh_gcs_write_t w;

                if (!rh_hmap_del(&rep->log, &l, &x)) {
                    continue;
                }
                rh_gcs_write_from(&x->h, x->data, &w);
                rh_gcs_answer(x->h.client, s, x->h.seq, &x->res, NULL, 0);
                rh_gcs_pub_resend(s, &w, &x->res, x->matches, x->nmatches);
                rh_gcs_held_free(x);
            }
            rep->log_lo = rep->store.lsn + 1;
            rh_gcs_ackup(s, rep->store.lsn);
        } else if (next >= 0) {
            for (uint64_t l = rep->log_lo; l <= rep->store.lsn; l++) {
                rh_gcs_held_t **slot = rh_hmap_get(&rep->log, &l);

                if (slot != NULL) {
                    rh_gcs_forward(next, &(*slot)->h, (*slot)->data);
                }
            }
            if (next == rh_gcs_map_tail(&rh_gcs_map, s)) {
                rh_gcs_whdr_t h;

                memset(&h, 0, sizeof(h));
                h.epoch = rh_gcs_map.epoch;
                h.lsn = rep->store.lsn;
                h.client = (uint32_t)rh_gcs_rank;
                h.shard = s;
                h.flags = RH_GCS_FWD_HANDOFF;
                (void)rh_gcs_send(next, RH_AM_ID_GCS_FWD, &h, sizeof(h),
                                  NULL, 0);
            }
        }
        if (next < 0) {
            /* The tail keeps writes only for a joiner, which gets the whole
             * state again under each configuration. */
            rh_gcs_log_drop(rep);
            if (joiner >= 0) {
                rh_gcs_send_state(rep, s, joiner);
            }
        }
    }
    /* Writes sent under this epoch before we knew it. */
    rh_gcs_future = NULL;
    while (future != NULL) {
        x = future;
        future = x->next;
        if (x->h.epoch <= rh_gcs_map.epoch) {
            rh_gcs_on_fwd_body(x->src, &x->h, x->data);
            rh_gcs_held_free(x);
        } else {
            x->next = rh_gcs_future;
            rh_gcs_future = x;
        }
    }
}

void rh_gcs_chain_tick(void)
{
    /* A joiner that holds the state says so again at each heartbeat until
     * it is the tail: the leader may have changed, or been busy
     * proposing. */
    for (uint32_t s = 0; rh_gcs_replicas != NULL && s < rh_gcs_map.nshards;
         s++) {
        if (rh_gcs_map.joining[s] == rh_gcs_rank &&
            rh_gcs_replicas[s] != NULL && rh_gcs_replicas[s]->have_state) {
            rh_gcs_caught_up(s, rh_gcs_map.epoch);
        }
    }
}

/* ---- life ------------------------------------------------------------------------ */

rh_status_t rh_gcs_chain_setup(void)
{
    rh_status_t status;

    status = rh_am_register(RH_AM_ID_GCS_WRITE, sizeof(rh_gcs_whdr_t),
                            sizeof(rh_gcs_whdr_t), rh_gcs_on_write, NULL);
    if (status == RH_OK) {
        status = rh_am_register(RH_AM_ID_GCS_FWD, sizeof(rh_gcs_whdr_t),
                                sizeof(rh_gcs_whdr_t), rh_gcs_on_fwd, NULL);
    }
    if (status == RH_OK) {
        status = rh_am_register(RH_AM_ID_GCS_READ, sizeof(rh_gcs_rhdr_t),
                                sizeof(rh_gcs_rhdr_t), rh_gcs_on_read, NULL);
    }
    if (status == RH_OK) {
        status = rh_am_register(RH_AM_ID_GCS_ACKUP, sizeof(rh_gcs_uhdr_t),
                                sizeof(rh_gcs_uhdr_t), rh_gcs_on_ackup, NULL);
    }
    return status;
}

rh_status_t rh_gcs_chain_start(void)
{
    rh_gcs_replicas = calloc(rh_gcs_map.nshards, sizeof(*rh_gcs_replicas));
    if (rh_gcs_replicas == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "GCS replicas");
    }
    for (uint32_t s = 0; s < rh_gcs_map.nshards; s++) {
        rh_gcs_replica_t *rep;

        if (rh_gcs_map_pos(&rh_gcs_map, s, rh_gcs_rank) < 0) {
            continue;
        }
        rep = rh_gcs_replica_new();
        if (rep == NULL) {
            rh_gcs_chain_stop();
            return rh_error_set(RH_ERR_NO_MEMORY, "GCS replica of shard %u",
                                s);
        }
        rh_gcs_replicas[s] = rep;
    }
    return RH_OK;
}

void rh_gcs_chain_stop(void)
{
    rh_gcs_held_t *held;

    for (uint32_t s = 0; rh_gcs_replicas != NULL && s < rh_gcs_map.nshards;
         s++) {
        rh_gcs_replica_t *rep = rh_gcs_replicas[s];

        if (rep == NULL) {
            continue;
        }
        while (rh_hmap_pop(&rep->early, NULL, &held)) {
            rh_gcs_held_free(held);
        }
        while (rh_hmap_pop(&rep->log, NULL, &held)) {
            rh_gcs_held_free(held);
        }
        rh_hmap_fini(&rep->early);
        rh_hmap_fini(&rep->log);
        rh_gcs_store_fini(&rep->store);
        free(rep);
    }
    free(rh_gcs_replicas);
    rh_gcs_replicas = NULL;
    while (rh_gcs_future != NULL) {
        held = rh_gcs_future;
        rh_gcs_future = held->next;
        rh_gcs_held_free(held);
    }
}

void rh_gcs_chain_dump(FILE *out)
{
    for (uint32_t s = 0; rh_gcs_replicas != NULL && s < rh_gcs_map.nshards;
         s++) {
        const rh_gcs_replica_t *rep = rh_gcs_replicas[s];
        int pos = rh_gcs_map_pos(&rh_gcs_map, s, rh_gcs_rank);

        if (rep == NULL || (pos < 0 && rh_gcs_map.joining[s] != rh_gcs_rank)) {
            continue;
        }
        fprintf(out, "gcs rank %d shard %u: %s, lsn %llu, %zu bytes, "
                "reads %llu, subscriptions %zu;", rh_gcs_rank, s,
                pos < 0 ? "joining" :
                (uint32_t)pos + 1 == rh_gcs_map.len[s] ? "tail" :
                pos == 0 ? "head" : "middle",
                (unsigned long long)rep->store.lsn, rep->store.bytes,
                (unsigned long long)rep->served, rh_gcs_pub_count(s));
        for (int t = 0; t < RH_GCS_T_SUB; t++) {
            fprintf(out, " %s %zu", rh_gcs_table_name(t),
                    rep->store.count[t]);
        }
        fputc('\n', out);
    }
}

void rh_gcs_chain_snapshot(FILE *out)
{
    for (uint32_t s = 0; rh_gcs_replicas != NULL && s < rh_gcs_map.nshards;
         s++) {
        rh_gcs_replica_t *rep = rh_gcs_replicas[s];
        int pos = rh_gcs_map_pos(&rh_gcs_map, s, rh_gcs_rank);

        if (rep == NULL || (pos < 0 && rh_gcs_map.joining[s] != rh_gcs_rank)) {
            continue;
        }
        fprintf(out, "gcs replica %u %s lsn %llu bytes %llu reads %llu "
                "subscriptions %llu", s, pos < 0 ? "joining" :
                (uint32_t)pos + 1 == rh_gcs_map.len[s] ? "tail" :
                pos == 0 ? "head" : "middle",
                (unsigned long long)atomic_load_explicit(
                    &rep->shown.lsn, memory_order_relaxed),
                (unsigned long long)atomic_load_explicit(
                    &rep->shown.bytes, memory_order_relaxed),
                (unsigned long long)atomic_load_explicit(
                    &rep->shown.served, memory_order_relaxed),
                (unsigned long long)atomic_load_explicit(
                    &rep->shown.subs, memory_order_relaxed));
        for (int t = 0; t < RH_GCS_T_SUB; t++) {
            fprintf(out, " %s %llu", rh_gcs_table_name(t),
                    (unsigned long long)atomic_load_explicit(
                        &rep->shown.count[t], memory_order_relaxed));
        }
        fputc('\n', out);
    }
}
