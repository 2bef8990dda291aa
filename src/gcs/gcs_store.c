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
    rh_hmap_init(&s->clients, sizeof(uint32_t), sizeof(rh_gcs_client_t));
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
    rh_hmap_fini(&s->clients);
    free(s->spare);
    s->spare = NULL;
    s->spare_bytes = 0;
    memset(s->count, 0, sizeof(s->count));
    s->bytes = 0;
}

/* FNV-1a over the table and the key, then mixed: not seeded, since every
 * rank must pick the same shard. */
uint64_t rh_gcs_key_hash(uint8_t table, const void *key, size_t klen)
{
    return rh_hash_mix64(rh_hash_fnv(rh_hash_fnv(RH_HASH_SEED, &table, 1),
                                     key, klen));
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

    return pe != NULL && !(*pe)->tomb ? *pe : NULL;
}

int rh_gcs_store_applied(rh_gcs_store_t *s, uint32_t client, uint64_t seq,
                         rh_gcs_result_t *res)
{
    rh_gcs_cseq_t k = { client, 0, seq };
    const rh_gcs_client_t *c = rh_hmap_get(&s->clients, &client);
    const rh_gcs_result_t *r;

    /* A client's next write, the common case, is told apart by its small
     * record alone: the results table is large, and a look into it missed
     * the cache on the write's path, at the head and at the tail. */
    if (c == NULL || seq >= c->top) {
        return 0;
    }
    r = rh_hmap_get(&s->applied, &k);
    if (r != NULL) {
        *res = *r;
        res->fresh = 0;
        return 1;
    }
    if (seq < c->floor) {
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
        const rh_gcs_client_t *c = rh_hmap_get(&s->clients, &k->client);

        if (c != NULL && k->seq < c->floor) {
            rh_hmap_iter_del(&it);
        }
    }
    s->prune_at = 2 * rh_hmap_count(&s->applied);
    if (s->prune_at < RH_GCS_PRUNE_MIN) {
        s->prune_at = RH_GCS_PRUNE_MIN;
    }
}

/* Whether the spare entry suits a record of `bytes` (key and value): room
 * enough, and not so much that a small record would hold a large block. */
static int rh_gcs_spare_fits(const rh_gcs_store_t *s, size_t bytes)
{
    return s->spare != NULL && s->spare_bytes >= bytes &&
           s->spare_bytes <= 2 * bytes + 64;
}

/* An entry with room for `bytes` of key and value: the spare when it
 * suits, else a new one (NULL: no memory). */
static rh_gcs_entry_t *rh_gcs_store_entry(rh_gcs_store_t *s, size_t bytes)
{
    rh_gcs_entry_t *e;

    if (rh_gcs_spare_fits(s, bytes)) {
        e = s->spare;
        s->spare = NULL;
        return e;
    }
    return malloc(sizeof(*e) + bytes);
}

void rh_gcs_store_put_result(rh_gcs_store_t *s, const rh_gcs_write_t *w,
                             rh_gcs_result_t *res)
{
    if (!rh_gcs_store_applied(s, w->client, w->seq, res)) {
        res->version = w->lsn;
        res->status = RH_OK;
        res->fresh = 1;
    }
}

rh_status_t rh_gcs_store_reserve(rh_gcs_store_t *s, const rh_gcs_write_t *w)
{
    size_t bytes = (size_t)w->klen + w->vlen;

    /* apply puts into clients and applied, and into index for a new key;
     * only a put of a new key can grow a table. */
    if (!rh_hmap_reserve(&s->clients, 1) || !rh_hmap_reserve(&s->applied, 1) ||
        !rh_hmap_reserve(&s->index, 1)) {
        return rh_error_set(RH_ERR_NO_MEMORY, "GCS tables");
    }
    if (!rh_gcs_spare_fits(s, bytes)) {
        rh_gcs_entry_t *e = malloc(sizeof(*e) + bytes);

        if (e == NULL) {
            return rh_error_set(RH_ERR_NO_MEMORY, "GCS entry of %zu bytes",
                                bytes);
        }
        free(s->spare);
        s->spare = e;
        s->spare_bytes = bytes;
    }
    return RH_OK;
}

static rh_status_t rh_gcs_store_set(rh_gcs_store_t *s, const rh_gcs_write_t *w,
                                    rh_gcs_entry_t **pe, uint64_t hash)
{
    uint64_t stamp = w->op == RH_GCS_OP_SPUT ? w->expect : 0;
    rh_gcs_entry_t *e;

    /* A record rewritten with a value of the same length (a heartbeat, a
     * counter, a state) is rewritten in place: no allocation per write on
     * every member. */
    if (pe != NULL && !(*pe)->tomb && (*pe)->vlen == w->vlen) {
        e = *pe;
        e->version = w->lsn;
        e->stamp = stamp;
        if (w->vlen != 0) {
            memcpy(e->bytes + e->klen, w->value, w->vlen);
        }
        return RH_OK;
    }
    e = rh_gcs_store_entry(s, (size_t)w->klen + w->vlen);
    if (e == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "GCS entry of %u bytes",
                            (unsigned)(w->klen + w->vlen));
    }
    e->version = w->lsn;
    e->stamp = stamp;
    e->tomb = 0;
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
        if ((*pe)->tomb) {
            s->tombs--;
            s->count[w->table]++;
        } else {
            s->bytes -= (*pe)->klen + (*pe)->vlen;
        }
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
    if (e->tomb) {
        s->tombs--;
    } else {
        s->count[e->table]--;
        s->bytes -= e->klen + e->vlen;
    }
    free(e);
    if (*(rh_gcs_entry_t **)rh_hmap_get(&s->index, &hash) == NULL) {
        rh_hmap_del(&s->index, &hash, NULL);
    }
}

/* A stamped delete: the key becomes (or stays) a tombstone of the
 * delete's stamp, which drops the writes of that stamp and below that come
 * after it. */
static rh_status_t rh_gcs_store_tomb(rh_gcs_store_t *s, const rh_gcs_write_t *w,
                                     rh_gcs_entry_t **pe, uint64_t hash)
{
    rh_gcs_entry_t *e, **head;

    if (pe != NULL) {
        e = *pe;
        if (!e->tomb) {
            /* The value goes; the allocation stays (it is the larger). */
            s->count[e->table]--;
            s->bytes -= e->klen + e->vlen;
            s->tombs++;
            e->tomb = 1;
            e->vlen = 0;
        }
        e->stamp = w->expect;
        e->version = w->lsn;
        return RH_OK;
    }
    e = rh_gcs_store_entry(s, w->klen);
    if (e == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "GCS tombstone");
    }
    head = rh_hmap_put(&s->index, &hash, NULL);
    if (head == NULL) {
        free(e);
        return rh_error_set(RH_ERR_NO_MEMORY, "GCS index");
    }
    e->version = w->lsn;
    e->stamp = w->expect;
    e->tomb = 1;
    e->table = w->table;
    e->klen = w->klen;
    e->vlen = 0;
    memcpy(e->bytes, w->key, w->klen);
    e->next = *head;
    *head = e;
    s->tombs++;
    return RH_OK;
}

/* The stamped ops (see rh_gcs_op_kind_t): the key holds what the highest
 * stamp seen said, a delete winning over the write of its own stamp, so
 * it ends the same whatever order the writes and deletes of different
 * processes arrive in. A delete leaves a tombstone (a key, a stamp) that
 * stays until a later write replaces it: a write of an older stamp may
 * still be on its way, from a process that nothing orders with this
 * one. res->version: the key's version after it. */
static rh_status_t rh_gcs_store_stamped(rh_gcs_store_t *s,
                                        const rh_gcs_write_t *w,
                                        rh_gcs_entry_t **pe, uint64_t hash,
                                        rh_gcs_result_t *res)
{
    rh_gcs_entry_t *e = pe != NULL ? *pe : NULL;
    uint64_t stamp = w->expect;
    rh_status_t status = RH_OK;

    res->status = RH_OK;
    res->version = e != NULL && !e->tomb ? e->version : 0;
    if (w->op == RH_GCS_OP_SPUT) {
        if (e != NULL && (e->stamp > stamp ||
                          (e->tomb && e->stamp == stamp))) {
            res->status = RH_ERR_CONFLICT;   /* overtaken: dropped */
        } else {
            status = rh_gcs_store_set(s, w, pe, hash);
            res->version = w->lsn;
        }
        return status;
    }
    if (e != NULL && e->stamp > stamp) {
        res->status = RH_ERR_NOT_FOUND;   /* a later write's record stays */
        return RH_OK;
    }
    res->status = e != NULL && !e->tomb ? RH_OK : RH_ERR_NOT_FOUND;
    res->version = 0;
    return rh_gcs_store_tomb(s, w, pe, hash);
}

rh_status_t rh_gcs_store_apply(rh_gcs_store_t *s, const rh_gcs_write_t *w,
                               rh_gcs_result_t *res)
{
    rh_gcs_cseq_t k = { w->client, 0, w->seq };
    rh_gcs_result_t *slot;
    rh_gcs_entry_t **pe, *live;
    rh_gcs_client_t *c;
    uint64_t hash;
    rh_status_t status = RH_OK;
    int added;

    if (w->table >= RH_GCS_NTABLES || w->op == 0 || w->op > RH_GCS_OP_MAX) {
        return rh_error_set(RH_ERR_MALFORMED, "GCS write of op %u to table "
                            "%u", w->op, w->table);
    }
    /* One lookup each for the client's record and for the write's result
     * slot, which also tells a write seen before (a retry): this runs on
     * every member for every write. */
    c = rh_hmap_put(&s->clients, &w->client, NULL);
    slot = c != NULL ? rh_hmap_put(&s->applied, &k, &added) : NULL;
    if (slot == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "GCS applied-write table");
    }
    if (!added) {
        *res = *slot;
        res->fresh = 0;
        s->lsn = w->lsn;
        return RH_OK;
    }
    if (w->seq < c->floor) {
        /* Answered long ago and forgotten: not applied again. */
        rh_hmap_del(&s->applied, &k, NULL);
        res->version = 0;
        res->status = RH_ERR_NOT_FOUND;
        res->fresh = 0;
        s->lsn = w->lsn;
        return RH_OK;
    }
    pe = rh_gcs_store_slot(s, w->table, w->key, w->klen, &hash);
    live = pe != NULL && !(*pe)->tomb ? *pe : NULL;   /* what reads see */
    res->status = RH_OK;
    res->fresh = 0;
    res->version = 0;
    switch (w->op) {
    case RH_GCS_OP_CAS:
        if ((live == NULL ? 0 : live->version) != w->expect) {
            res->status = RH_ERR_CONFLICT;
            res->version = live != NULL ? live->version : 0;
            break;
        }
        /* fall through */
    case RH_GCS_OP_PUT:
        status = rh_gcs_store_set(s, w, pe, hash);
        res->version = w->lsn;
        break;
    case RH_GCS_OP_DEL:
        if (live == NULL) {
            res->status = RH_ERR_NOT_FOUND;
        } else {
            rh_gcs_store_remove(s, pe, hash);
        }
        break;
    case RH_GCS_OP_SPUT:
    case RH_GCS_OP_SDEL:
        status = rh_gcs_store_stamped(s, w, pe, hash, res);
        break;
    }
    if (status != RH_OK) {
        rh_hmap_del(&s->applied, &k, NULL);
        return status;
    }
    /* No put or del on applied since slot was taken (a failed set or
     * delete above changed only the index): slot still points at it. */
    *slot = *res;
    res->fresh = 1;
    if (w->floor > c->floor) {
        c->floor = w->floor;
    }
    if (w->seq >= c->top) {
        c->top = w->seq + 1;
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

/* ---- state transfer: a joining replica gets the whole store ---------- */

typedef struct rh_gcs_pack_hdr {
    uint64_t lsn, entries, applied, clients;
} rh_gcs_pack_hdr_t;

typedef struct rh_gcs_pack_entry {
    uint64_t version, stamp;
    uint8_t  tomb, table;
    uint16_t klen;
    uint32_t vlen;
} rh_gcs_pack_entry_t;

typedef struct rh_gcs_pack_applied {
    rh_gcs_cseq_t   k;
    rh_gcs_result_t r;
} rh_gcs_pack_applied_t;

typedef struct rh_gcs_pack_client {
    uint32_t client, pad;
    uint64_t floor, top;
} rh_gcs_pack_client_t;

typedef struct rh_gcs_pack_cursor {
    uint8_t *p;
    size_t   n, entries;
} rh_gcs_pack_cursor_t;

static void rh_gcs_pack_one(void *arg, const rh_gcs_entry_t *e)
{
    rh_gcs_pack_cursor_t *c = arg;
    rh_gcs_pack_entry_t pe = { e->version, e->stamp, e->tomb, e->table,
                               e->klen, e->vlen };
    size_t len = sizeof(pe) + e->klen + e->vlen;

    if (c->p != NULL) {
        memcpy(c->p + c->n, &pe, sizeof(pe));
        memcpy(c->p + c->n + sizeof(pe), e->bytes, (size_t)e->klen + e->vlen);
    }
    c->n += len;
    c->entries++;
}

size_t rh_gcs_store_pack(rh_gcs_store_t *s, void *buf)
{
    rh_gcs_pack_cursor_t c = { buf, sizeof(rh_gcs_pack_hdr_t), 0 };
    rh_gcs_pack_hdr_t h;
    rh_hmap_iter_t it;
    void *key, *val;

    rh_gcs_store_each(s, rh_gcs_pack_one, &c);
    h.lsn = s->lsn;
    h.entries = c.entries;
    h.applied = rh_hmap_count(&s->applied);
    h.clients = rh_hmap_count(&s->clients);
    if (buf != NULL) {
        memcpy(buf, &h, sizeof(h));
        rh_hmap_iter_init(&it, &s->applied);
        while (rh_hmap_iter_next(&it, &key, &val)) {
            rh_gcs_pack_applied_t a;

            memcpy(&a.k, key, sizeof(a.k));
            memcpy(&a.r, val, sizeof(a.r));
            memcpy(c.p + c.n, &a, sizeof(a));
            c.n += sizeof(a);
        }
        rh_hmap_iter_init(&it, &s->clients);
        while (rh_hmap_iter_next(&it, &key, &val)) {
            rh_gcs_pack_client_t f = { 0, 0, 0, 0 };
            rh_gcs_client_t cl;

            memcpy(&f.client, key, sizeof(f.client));
            memcpy(&cl, val, sizeof(cl));
            f.floor = cl.floor;
            f.top = cl.top;
            memcpy(c.p + c.n, &f, sizeof(f));
            c.n += sizeof(f);
        }
        return c.n;
    }
    return c.n + h.applied * sizeof(rh_gcs_pack_applied_t) +
           h.clients * sizeof(rh_gcs_pack_client_t);
}

rh_status_t rh_gcs_store_unpack(rh_gcs_store_t *s, const void *buf,
                                size_t len)
{
    const uint8_t *p = buf, *end = p + len;
    rh_gcs_pack_hdr_t h;

    rh_gcs_store_fini(s);
    rh_gcs_store_init(s);
    if (len < sizeof(h)) {
        goto err_bad;
    }
    memcpy(&h, p, sizeof(h));
    p += sizeof(h);
    for (uint64_t i = 0; i < h.entries; i++) {
        rh_gcs_pack_entry_t pe;
        rh_gcs_entry_t *e, **head;
        uint64_t hash;

        if ((size_t)(end - p) < sizeof(pe)) {
            goto err_bad;
        }
        memcpy(&pe, p, sizeof(pe));
        p += sizeof(pe);
        if (pe.table >= RH_GCS_NTABLES || pe.klen < 1 ||
            pe.klen > RH_GCS_KEY_MAX || pe.vlen > RH_GCS_VALUE_MAX ||
            (pe.tomb && pe.vlen != 0) ||
            (size_t)(end - p) < (size_t)pe.klen + pe.vlen) {
            goto err_bad;
        }
        e = malloc(sizeof(*e) + pe.klen + pe.vlen);
        hash = rh_gcs_key_hash(pe.table, p, pe.klen);
        head = e != NULL ? rh_hmap_put(&s->index, &hash, NULL) : NULL;
        if (head == NULL) {
            free(e);
            rh_gcs_store_fini(s);
            rh_gcs_store_init(s);
            return rh_error_set(RH_ERR_NO_MEMORY, "GCS state of %zu bytes",
                                len);
        }
        e->version = pe.version;
        e->stamp = pe.stamp;
        e->tomb = pe.tomb;
        e->table = pe.table;
        e->klen = pe.klen;
        e->vlen = pe.vlen;
        memcpy(e->bytes, p, (size_t)pe.klen + pe.vlen);
        p += (size_t)pe.klen + pe.vlen;
        e->next = *head;
        *head = e;
        if (e->tomb) {
            s->tombs++;
        } else {
            s->count[e->table]++;
            s->bytes += (size_t)e->klen + e->vlen;
        }
    }
    if ((size_t)(end - p) != h.applied * sizeof(rh_gcs_pack_applied_t) +
        h.clients * sizeof(rh_gcs_pack_client_t)) {
        goto err_bad;
    }
    for (uint64_t i = 0; i < h.applied; i++) {
        rh_gcs_pack_applied_t a;
        rh_gcs_result_t *r;

        memcpy(&a, p, sizeof(a));
        p += sizeof(a);
        r = rh_hmap_put(&s->applied, &a.k, NULL);
        if (r == NULL) {
            goto err_nomem;
        }
        *r = a.r;
    }
    for (uint64_t i = 0; i < h.clients; i++) {
        rh_gcs_pack_client_t f;
        rh_gcs_client_t *cl;

        memcpy(&f, p, sizeof(f));
        p += sizeof(f);
        cl = rh_hmap_put(&s->clients, &f.client, NULL);
        if (cl == NULL) {
            goto err_nomem;
        }
        cl->floor = f.floor;
        cl->top = f.top;
    }
    s->lsn = h.lsn;
    s->prune_at = 2 * rh_hmap_count(&s->applied);
    if (s->prune_at < RH_GCS_PRUNE_MIN) {
        s->prune_at = RH_GCS_PRUNE_MIN;
    }
    return RH_OK;

err_nomem:
    rh_gcs_store_fini(s);
    rh_gcs_store_init(s);
    return rh_error_set(RH_ERR_NO_MEMORY, "GCS state of %zu bytes", len);
err_bad:
    rh_gcs_store_fini(s);
    rh_gcs_store_init(s);
    return rh_error_set(RH_ERR_MALFORMED, "GCS state of %zu bytes does not "
                        "parse", len);
}
