/*
 * The replica half of the GCS: for each shard whose chain holds this rank,
 * a store; the head numbers writes and applies them, every other member
 * applies them in that order as they come down the chain, and the tail
 * answers the client and serves reads.
 *
 * Everything here runs on the progress thread (AM handlers), so the stores
 * need no lock.
 */
#include <stdlib.h>
#include <string.h>

#include "base/hashmap.h"
#include "base/log.h"
#include "base/status.h"
#include "gcs/gcs_pubsub.h"
#include "gcs/gcs_store.h"
#include "gcs/gcs_wire.h"

typedef struct rh_gcs_replica {
    rh_gcs_store_t store;
    rh_hmap_t      early;   /* lsn -> rh_gcs_held_t *: came before its turn */
    uint64_t       served;  /* reads answered */
} rh_gcs_replica_t;

/* A forwarded write that arrived ahead of its predecessors. */
typedef struct rh_gcs_held {
    rh_gcs_whdr_t h;
    uint8_t       data[];
} rh_gcs_held_t;

/* A message whose payload comes by rendezvous: kept until it is here. */
typedef struct rh_gcs_rndv {
    uint16_t id;
    uint32_t src;
    size_t   hdr_len, len;
    uint8_t  hdr[sizeof(rh_gcs_whdr_t)];
    uint8_t  data[];
} rh_gcs_rndv_t;

static rh_gcs_replica_t **rh_gcs_replicas;   /* nshards; NULL: not ours */

static rh_gcs_replica_t *rh_gcs_replica(uint32_t shard)
{
    return shard < rh_gcs_map.nshards ? rh_gcs_replicas[shard] : NULL;
}

static void rh_gcs_answer(uint32_t client, uint32_t shard, uint64_t seq,
                          const rh_gcs_result_t *res, const void *value,
                          size_t len)
{
    rh_gcs_ahdr_t a = { seq, res->version, res->status, shard };

    /* A client that died needs no answer. */
    (void)rh_am_send(client, RH_AM_ID_GCS_ANSWER, &a, sizeof(a), value, len,
                     NULL, NULL);
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

/* Applies a write in its turn and passes it on: down the chain, or to the
 * client from the tail. */
static void rh_gcs_apply_pass(rh_gcs_replica_t *rep, const rh_gcs_whdr_t *h,
                              const uint8_t *data)
{
    int pos = rh_gcs_map_pos(&rh_gcs_map, h->shard, rh_gcs_rank);
    int next = rh_gcs_map_next(&rh_gcs_map, h->shard, pos);
    rh_gcs_write_t w;
    rh_gcs_result_t res;
    rh_status_t status;

    rh_gcs_write_from(h, data, &w);
    status = rh_gcs_store_apply(&rep->store, &w, &res);
    if (status != RH_OK) {
        /* Out of memory: the replica cannot keep the log; its chain must
         * drop it rather than lose the write silently. */
        rh_error("GCS shard %u: write %llu not applied: %s", h->shard,
                 (unsigned long long)h->lsn, rh_last_error());
        return;
    }
    rh_gcs_pub_applied(h->shard, &w, &res, next < 0);
    if (next >= 0) {
        (void)rh_am_send((uint32_t)next, RH_AM_ID_GCS_FWD, h, sizeof(*h),
                         data, (size_t)h->klen + h->vlen, NULL, NULL);
    } else {
        rh_gcs_answer(h->client, h->shard, h->seq, &res, NULL, 0);
    }
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
 * retry) is answered again by the tail. */
static void rh_gcs_on_write_body(const rh_gcs_whdr_t *hin, const uint8_t *data)
{
    rh_gcs_replica_t *rep = rh_gcs_replica(hin->shard);
    rh_gcs_whdr_t h = *hin;
    rh_gcs_result_t res;

    if (rep == NULL || rh_gcs_map_head(&rh_gcs_map, h.shard) != rh_gcs_rank) {
        rh_gcs_result_t wrong = { 0, RH_ERR_INVALID_PARAM, 0 };

        rh_warn("GCS: write for shard %u from rank %u reached rank %d, not "
                "its head", h.shard, h.client, rh_gcs_rank);
        rh_gcs_answer(h.client, h.shard, h.seq, &wrong, NULL, 0);
        return;
    }
    if (rh_gcs_store_applied(&rep->store, h.client, h.seq, &res)) {
        int tail = rh_gcs_map_tail(&rh_gcs_map, h.shard);

        if (tail == rh_gcs_rank) {
            rh_gcs_answer(h.client, h.shard, h.seq, &res, NULL, 0);
        } else {
            h.flags = RH_GCS_FWD_REACK;
            h.klen = 0;
            h.vlen = 0;
            (void)rh_am_send((uint32_t)tail, RH_AM_ID_GCS_FWD, &h, sizeof(h),
                             NULL, 0, NULL, NULL);
        }
        return;
    }
    h.lsn = rep->store.lsn + 1;
    h.flags = 0;
    rh_gcs_apply_pass(rep, &h, data);
}

/* A member below the head: applies writes in log order, holding those that
 * overtook their predecessors. */
static void rh_gcs_on_fwd_body(const rh_gcs_whdr_t *h, const uint8_t *data)
{
    rh_gcs_replica_t *rep = rh_gcs_replica(h->shard);
    rh_gcs_held_t *held;
    int added;

    if (rep == NULL || rh_gcs_map_pos(&rh_gcs_map, h->shard,
                                      rh_gcs_rank) <= 0) {
        rh_warn("GCS: a forwarded write of shard %u reached rank %d, which "
                "is not below its head", h->shard, rh_gcs_rank);
        return;
    }
    if (h->flags & RH_GCS_FWD_REACK) {
        rh_gcs_result_t res;

        /* Not applied yet: it is on its way down and will be answered. */
        if (rh_gcs_store_applied(&rep->store, h->client, h->seq, &res) &&
            rh_gcs_map_tail(&rh_gcs_map, h->shard) == rh_gcs_rank) {
            rh_gcs_answer(h->client, h->shard, h->seq, &res, NULL, 0);
        }
        return;
    }
    if (h->lsn <= rep->store.lsn) {
        return;   /* had it */
    }
    if (h->lsn > rep->store.lsn + 1) {
        rh_gcs_held_t **slot = rh_hmap_put(&rep->early, &h->lsn, &added);

        if (slot == NULL || !added) {
            if (slot == NULL) {
                rh_error("GCS shard %u: no memory to hold write %llu",
                         h->shard, (unsigned long long)h->lsn);
            }
            return;
        }
        held = malloc(sizeof(*held) + h->klen + h->vlen);
        if (held == NULL) {
            rh_hmap_del(&rep->early, &h->lsn, NULL);
            rh_error("GCS shard %u: no memory to hold write %llu", h->shard,
                     (unsigned long long)h->lsn);
            return;
        }
        held->h = *h;
        memcpy(held->data, data, (size_t)h->klen + h->vlen);
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
        free(held);
    }
}

static void rh_gcs_rndv_arrived(void *arg, rh_status_t status)
{
    rh_gcs_rndv_t *x = arg;
    rh_gcs_whdr_t h;

    if (status == RH_OK) {
        memcpy(&h, x->hdr, sizeof(h));
        if (!rh_gcs_whdr_ok(&h, x->len)) {
            rh_warn("GCS: a message from rank %u has a bad body", x->src);
        } else if (x->id == RH_AM_ID_GCS_WRITE) {
            rh_gcs_on_write_body(&h, x->data);
        } else {
            rh_gcs_on_fwd_body(&h, x->data);
        }
    }
    free(x);
}

/* Runs body now, or once a rendezvous payload is here. */
static rh_status_t rh_gcs_on_whdr(rh_am_msg_t *msg,
                                  void (*body)(const rh_gcs_whdr_t *h,
                                               const uint8_t *data))
{
    rh_gcs_whdr_t h;

    memcpy(&h, msg->hdr, sizeof(h));
    if (!(h.flags & RH_GCS_FWD_REACK) && !rh_gcs_whdr_ok(&h, msg->data_len)) {
        return RH_ERR_MALFORMED;
    }
    if ((h.flags & RH_GCS_FWD_REACK) &&
        (msg->data_len != 0 || h.shard >= rh_gcs_map.nshards)) {
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
        x->hdr_len = sizeof(h);
        x->len = msg->data_len;
        memcpy(x->hdr, &h, sizeof(h));
        return rh_am_recv_data(msg, x->data, rh_gcs_rndv_arrived, x);
    }
    body(&h, msg->data);
    return RH_OK;
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

/* The tail serves reads: it holds only writes every replica applied. */
static rh_status_t rh_gcs_on_read(void *arg, rh_am_msg_t *msg)
{
    rh_gcs_rhdr_t h;
    rh_gcs_replica_t *rep;
    const rh_gcs_entry_t *e;
    rh_gcs_result_t res = { 0, RH_ERR_NOT_FOUND, 0 };

    (void)arg;
    memcpy(&h, msg->hdr, sizeof(h));
    if (h.shard >= rh_gcs_map.nshards || h.table >= RH_GCS_NTABLES ||
        h.klen < 1 || h.klen > RH_GCS_KEY_MAX || msg->data_len != h.klen ||
        msg->data == NULL) {
        return RH_ERR_MALFORMED;
    }
    rep = rh_gcs_replica(h.shard);
    if (rep == NULL || rh_gcs_map_tail(&rh_gcs_map, h.shard) != rh_gcs_rank) {
        res.status = RH_ERR_INVALID_PARAM;
        rh_warn("GCS: a read for shard %u from rank %u reached rank %d, "
                "not its tail", h.shard, msg->src, rh_gcs_rank);
        rh_gcs_answer(msg->src, h.shard, h.seq, &res, NULL, 0);
        return RH_OK;
    }
    rep->served++;
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
        rep = calloc(1, sizeof(*rep));
        if (rep == NULL) {
            rh_gcs_chain_stop();
            return rh_error_set(RH_ERR_NO_MEMORY, "GCS replica of shard %u",
                                s);
        }
        rh_gcs_store_init(&rep->store);
        rh_hmap_init(&rep->early, sizeof(uint64_t), sizeof(rh_gcs_held_t *));
        rh_gcs_replicas[s] = rep;
    }
    return RH_OK;
}

void rh_gcs_chain_stop(void)
{
    for (uint32_t s = 0; rh_gcs_replicas != NULL && s < rh_gcs_map.nshards;
         s++) {
        rh_gcs_replica_t *rep = rh_gcs_replicas[s];
        rh_gcs_held_t *held;

        if (rep == NULL) {
            continue;
        }
        while (rh_hmap_pop(&rep->early, NULL, &held)) {
            free(held);
        }
        rh_hmap_fini(&rep->early);
        rh_gcs_store_fini(&rep->store);
        free(rep);
    }
    free(rh_gcs_replicas);
    rh_gcs_replicas = NULL;
}

void rh_gcs_chain_dump(FILE *out)
{
    for (uint32_t s = 0; rh_gcs_replicas != NULL && s < rh_gcs_map.nshards;
         s++) {
        const rh_gcs_replica_t *rep = rh_gcs_replicas[s];
        int pos = rh_gcs_map_pos(&rh_gcs_map, s, rh_gcs_rank);

        if (rep == NULL) {
            continue;
        }
        fprintf(out, "gcs rank %d shard %u: %s, lsn %llu, %zu bytes, "
                "reads %llu, subscriptions %zu;", rh_gcs_rank, s,
                pos == 0 ? "head" : (uint32_t)pos + 1 == rh_gcs_map.len[s] ?
                "tail" : "middle", (unsigned long long)rep->store.lsn,
                rep->store.bytes, (unsigned long long)rep->served,
                rh_gcs_pub_count(s));
        for (int t = 0; t < RH_GCS_T_SUB; t++) {
            fprintf(out, " %s %zu", rh_gcs_table_name(t),
                    rep->store.count[t]);
        }
        fputc('\n', out);
    }
}
