#include "gcs/gcs_store.h"

#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "base/status.h"

/* The applied-results table is pruned of answered writes when it reaches
 * this size, then at twice what survived: amortised O(1) per write. */
#define RH_GCS_PRUNE_MIN 4096u

typedef struct rh_gcs_cseq {
    uint32_t client;
    uint32_t pad;
    uint64_t seq;
} rh_gcs_cseq_t;

void rh_gcs_store_init(rh_gcs_store_t *s)
{
    memset(s, 0, sizeof(*s));
    rh_hmap_init(&s->index, sizeof(uint64_t), sizeof(rh_gcs_entry_t *));
    rh_hmap_init(&s->applied, sizeof(rh_gcs_cseq_t), sizeof(rh_gcs_result_t));
    rh_hmap_init(&s->floors, sizeof(uint32_t), sizeof(uint64_t));
    s->prune_at = RH_GCS_PRUNE_MIN;
}

void rh_gcs_store_fini(rh_gcs_store_t *s)
{
    rh_gcs_entry_t *e;

    while (rh_hmap_pop(&s->index, NULL, &e)) {
        while (e != NULL) {
            rh_gcs_entry_t *next = e->next;

            free(e);
            e = next;
        }
    }
    rh_hmap_fini(&s->index);
    rh_hmap_fini(&s->applied);
    rh_hmap_fini(&s->floors);
    memset(s->count, 0, sizeof(s->count));
    s->bytes = 0;
}

/* FNV-1a over the table and the key, then mixed: not seeded, since every
 * rank must pick the same shard. */
uint64_t rh_gcs_key_hash(uint8_t table, const void *key, size_t klen)
{
    const uint8_t *p = key;
    uint64_t h = 0xcbf29ce484222325ull;

    h = (h ^ table) * 0x100000001b3ull;
    for (size_t i = 0; i < klen; i++) {
        h = (h ^ p[i]) * 0x100000001b3ull;
    }
    return rh_hash_mix64(h);
}

static rh_gcs_entry_t **rh_gcs_store_slot(const rh_gcs_store_t *s,
                                          uint8_t table, const void *key,
                                          size_t klen, uint64_t *hash)
{
    uint64_t h = rh_gcs_key_hash(table, key, klen);
    rh_gcs_entry_t **head = rh_hmap_get(&s->index, &h);

    if (hash != NULL) {
        *hash = h;
    }
    if (head == NULL) {
        return NULL;
    }
    for (rh_gcs_entry_t **pe = head; *pe != NULL; pe = &(*pe)->next) {
        if ((*pe)->table == table && (*pe)->klen == klen &&
            memcmp((*pe)->bytes, key, klen) == 0) {
            return pe;
        }
    }
    return NULL;
}

const rh_gcs_entry_t *rh_gcs_store_get(const rh_gcs_store_t *s,
                                       uint8_t table, const void *key,
                                       size_t klen)
{
    rh_gcs_entry_t **pe = rh_gcs_store_slot(s, table, key, klen, NULL);

    return pe != NULL ? *pe : NULL;
}

int rh_gcs_store_applied(rh_gcs_store_t *s, uint32_t client, uint64_t seq,
                         rh_gcs_result_t *res)
{
    rh_gcs_cseq_t k = { client, 0, seq };
    const uint64_t *floor = rh_hmap_get(&s->floors, &client);
    const rh_gcs_result_t *r = rh_hmap_get(&s->applied, &k);

    if (r != NULL) {
        *res = *r;
        res->fresh = 0;
        return 1;
    }
    if (floor != NULL && seq < *floor) {
        res->version = 0;
        res->status = RH_ERR_NOT_FOUND;
        res->fresh = 0;
        return 1;
    }
    return 0;
}

/* Forgets the results of writes their clients have had answered. */
static void rh_gcs_store_prune(rh_gcs_store_t *s)
{
    rh_hmap_iter_t it;
    void *key, *val;

    rh_hmap_iter_init(&it, &s->applied);
    while (rh_hmap_iter_next(&it, &key, &val)) {
        const rh_gcs_cseq_t *k = key;
        const uint64_t *floor = rh_hmap_get(&s->floors, &k->client);

        if (floor != NULL && k->seq < *floor) {
            rh_hmap_iter_del(&it);
        }
    }
    s->prune_at = 2 * rh_hmap_count(&s->applied);
    if (s->prune_at < RH_GCS_PRUNE_MIN) {
        s->prune_at = RH_GCS_PRUNE_MIN;
    }
}

static rh_status_t rh_gcs_store_set(rh_gcs_store_t *s, const rh_gcs_write_t *w,
                                    rh_gcs_entry_t **pe, uint64_t hash)
{
    rh_gcs_entry_t *e;

    /* A record rewritten with a value of the same length (a heartbeat, a
     * counter, a state) is rewritten in place: no allocation per write on
     * every member. */
    if (pe != NULL && (*pe)->vlen == w->vlen) {
        e = *pe;
        e->version = w->lsn;
        if (w->vlen != 0) {
            memcpy(e->bytes + e->klen, w->value, w->vlen);
        }
        return RH_OK;
    }
    e = malloc(sizeof(*e) + w->klen + w->vlen);

    if (e == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "GCS entry of %u bytes",
                            (unsigned)(w->klen + w->vlen));
    }
    e->version = w->lsn;
    e->table = w->table;
    e->klen = w->klen;
    e->vlen = w->vlen;
    memcpy(e->bytes, w->key, w->klen);
    if (w->vlen != 0) {
        memcpy(e->bytes + w->klen, w->value, w->vlen);
    }
    if (pe != NULL) {
        /* Replace in place: the old entry's neighbours stay linked. */
        e->next = (*pe)->next;
        s->bytes -= (*pe)->klen + (*pe)->vlen;
        free(*pe);
        *pe = e;
    } else {
        rh_gcs_entry_t **head = rh_hmap_put(&s->index, &hash, NULL);

        if (head == NULL) {
            free(e);
            return rh_error_set(RH_ERR_NO_MEMORY, "GCS index");
        }
        e->next = *head;
        *head = e;
        s->count[w->table]++;
    }
    s->bytes += w->klen + w->vlen;
    return RH_OK;
}

static void rh_gcs_store_remove(rh_gcs_store_t *s, rh_gcs_entry_t **pe,
                                uint64_t hash)
{
    rh_gcs_entry_t *e = *pe;

    *pe = e->next;
    s->count[e->table]--;
    s->bytes -= e->klen + e->vlen;
    free(e);
    if (*(rh_gcs_entry_t **)rh_hmap_get(&s->index, &hash) == NULL) {
        rh_hmap_del(&s->index, &hash, NULL);
    }
}

rh_status_t rh_gcs_store_apply(rh_gcs_store_t *s, const rh_gcs_write_t *w,
                               rh_gcs_result_t *res)
{
    rh_gcs_cseq_t k = { w->client, 0, w->seq };
    rh_gcs_result_t *slot;
    rh_gcs_entry_t **pe;
    uint64_t hash, *floor;
    rh_status_t status = RH_OK;
    int added;

    if (w->table >= RH_GCS_NTABLES || w->op == 0 || w->op > RH_GCS_OP_MAX) {
        return rh_error_set(RH_ERR_MALFORMED, "GCS write of op %u to table "
                            "%u", w->op, w->table);
    }
    /* One lookup each for the client's floor and for the write's result
     * slot, which also tells a write seen before (a retry): this runs on
     * every member for every write. */
    floor = rh_hmap_put(&s->floors, &w->client, NULL);
    slot = floor != NULL ? rh_hmap_put(&s->applied, &k, &added) : NULL;
    if (slot == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "GCS applied-write table");
    }
    if (!added) {
        *res = *slot;
        res->fresh = 0;
        s->lsn = w->lsn;
        return RH_OK;
    }
    if (w->seq < *floor) {
        /* Answered long ago and forgotten: not applied again. */
        rh_hmap_del(&s->applied, &k, NULL);
        res->version = 0;
        res->status = RH_ERR_NOT_FOUND;
        res->fresh = 0;
        s->lsn = w->lsn;
        return RH_OK;
    }
    pe = rh_gcs_store_slot(s, w->table, w->key, w->klen, &hash);
    res->status = RH_OK;
    res->fresh = 0;
    switch (w->op) {
    case RH_GCS_OP_CAS:
        if ((pe == NULL ? 0 : (*pe)->version) != w->expect) {
            res->status = RH_ERR_CONFLICT;
            break;
        }
        /* fall through */
    case RH_GCS_OP_PUT:
        status = rh_gcs_store_set(s, w, pe, hash);
        break;
    case RH_GCS_OP_DEL:
        if (pe == NULL) {
            res->status = RH_ERR_NOT_FOUND;
        } else {
            rh_gcs_store_remove(s, pe, hash);
        }
        break;
    }
    if (status != RH_OK) {
        rh_hmap_del(&s->applied, &k, NULL);
        return status;
    }
    /* The key's version now: the write's own log index where it set the
     * key, the old one where a compare-and-swap lost, 0 once deleted. */
    res->version = w->op == RH_GCS_OP_DEL ? 0 :
                   res->status == RH_OK ? w->lsn :
                   pe != NULL ? (*pe)->version : 0;
    /* No put or del on applied since slot was taken (a failed set or
     * delete above changed only the index): slot still points at it. */
    *slot = *res;
    res->fresh = 1;
    if (w->floor > *floor) {
        *floor = w->floor;
    }
    s->lsn = w->lsn;
    if (rh_hmap_count(&s->applied) >= s->prune_at) {
        rh_gcs_store_prune(s);
    }
    return RH_OK;
}

void rh_gcs_store_each(rh_gcs_store_t *s,
                       void (*fn)(void *arg, const rh_gcs_entry_t *e),
                       void *arg)
{
    rh_hmap_iter_t it;
    void *key, *val;

    rh_hmap_iter_init(&it, &s->index);
    while (rh_hmap_iter_next(&it, &key, &val)) {
        for (const rh_gcs_entry_t *e = *(rh_gcs_entry_t **)val; e != NULL;
             e = e->next) {
            fn(arg, e);
        }
    }
}
