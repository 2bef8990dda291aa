/*
 * Pub-sub. A subscription is itself a write to the GCS's own table
 * (RH_GCS_T_SUB) of each shard it covers, so every replica of the chain
 * holds it from the same point of the log on. Every replica matches each
 * write it applies against its subscriptions and counts the matches per
 * subscription: the counts are the same on every replica, and the tail
 * sends each match to the subscriber numbered with its count. The
 * subscriber delivers updates of a shard in count order, holding those
 * that overtook and dropping those seen already, so each update arrives
 * once and in order per key, also when a new tail publishes again what
 * the old one may have sent.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/hashmap.h"
#include "base/log.h"
#include "base/status.h"
#include "gcs/gcs_pubsub.h"
#include "gcs/gcs_wire.h"
#include "transport/transport.h"

/* ---- the replicas' side ---------------------------------------------------- */

typedef struct rh_gcs_sub_rec {
    uint32_t rank, id;
    uint8_t  kind, table;
    uint16_t plen;
    uint64_t count;          /* matches so far */
    uint8_t  prefix[RH_GCS_KEY_MAX];
} rh_gcs_sub_rec_t;

typedef struct rh_gcs_shard_subs {
    rh_gcs_sub_rec_t *v;
    size_t            n, cap;
} rh_gcs_shard_subs_t;

static rh_gcs_shard_subs_t *rh_gcs_subs;    /* nshards */

static int rh_gcs_sub_matches(const rh_gcs_sub_rec_t *s,
                              const rh_gcs_write_t *w)
{
    if (s->table != w->table) {
        return 0;
    }
    switch (s->kind) {
    case RH_GCS_SUB_TABLE:
        return 1;
    case RH_GCS_SUB_KEY:
        return w->klen == s->plen && memcmp(w->key, s->prefix, s->plen) == 0;
    case RH_GCS_SUB_PREFIX:
        return w->klen >= s->plen && memcmp(w->key, s->prefix, s->plen) == 0;
    }
    return 0;
}

static void rh_gcs_sub_change(rh_gcs_shard_subs_t *ss, const rh_gcs_write_t *w)
{
    rh_gcs_sub_key_t k;
    rh_gcs_sub_val_t v;
    size_t i;

    if (w->klen != sizeof(k)) {
        return;
    }
    memcpy(&k, w->key, sizeof(k));
    for (i = 0; i < ss->n && (ss->v[i].rank != k.rank ||
                              ss->v[i].id != k.id); i++) {
    }
    if (w->op == RH_GCS_OP_DEL) {
        if (i < ss->n) {
            ss->v[i] = ss->v[--ss->n];
        }
        return;
    }
    if (w->vlen < sizeof(v)) {
        return;
    }
    memcpy(&v, w->value, sizeof(v));
    if (v.plen > RH_GCS_KEY_MAX || w->vlen != sizeof(v) + v.plen ||
        v.kind < RH_GCS_SUB_KEY || v.kind > RH_GCS_SUB_TABLE) {
        rh_warn("GCS: a subscription of rank %u is malformed", k.rank);
        return;
    }
    if (i == ss->n) {
        if (ss->n == ss->cap) {
            size_t cap = ss->cap ? 2 * ss->cap : 8;
            rh_gcs_sub_rec_t *nv = realloc(ss->v, cap * sizeof(*nv));

            if (nv == NULL) {
                rh_error("GCS: no memory for the subscription of rank %u",
                         k.rank);
                return;
            }
            ss->v = nv;
            ss->cap = cap;
        }
        ss->n++;
        ss->v[i].count = 0;
    }
    ss->v[i].rank = k.rank;
    ss->v[i].id = k.id;
    ss->v[i].kind = v.kind;
    ss->v[i].table = v.table;
    ss->v[i].plen = v.plen;
    memcpy(ss->v[i].prefix, (const uint8_t *)w->value + sizeof(v), v.plen);
}

static void rh_gcs_pub_send(uint32_t shard, const rh_gcs_write_t *w,
                            const rh_gcs_result_t *res,
                            const rh_gcs_pub_match_t *m)
{
    rh_gcs_phdr_t p;
    uint8_t stackbuf[1024], *buf;
    size_t len;

    if (!rh_tp_peer_alive((int)m->rank) && (int)m->rank != rh_gcs_rank) {
        return;
    }
    memset(&p, 0, sizeof(p));
    p.count = m->count;
    p.lsn = w->lsn;
    p.version = res->version;
    p.id = m->id;
    p.shard = shard;
    p.op = w->op == RH_GCS_OP_DEL || w->op == RH_GCS_OP_SDEL ?
           RH_GCS_OP_DEL : RH_GCS_OP_PUT;
    p.vlen = p.op == RH_GCS_OP_DEL ? 0 : w->vlen;
    p.klen = w->klen;
    p.table = w->table;
    len = (size_t)p.klen + p.vlen;
    buf = len <= sizeof(stackbuf) ? stackbuf : malloc(len);
    if (buf == NULL) {
        rh_error("GCS: no memory to publish to rank %u", m->rank);
        return;
    }
    memcpy(buf, w->key, w->klen);
    if (p.vlen != 0) {
        memcpy(buf + w->klen, w->value, w->vlen);
    }
    (void)rh_gcs_send((int)m->rank, RH_AM_ID_GCS_PUB, &p, sizeof(p), buf,
                      len);
    if (buf != stackbuf) {
        free(buf);
    }
}

void rh_gcs_pub_applied(uint32_t shard, const rh_gcs_write_t *w,
                        const rh_gcs_result_t *res,
                        rh_gcs_pub_match_t **matches, uint32_t *n)
{
    rh_gcs_shard_subs_t *ss = &rh_gcs_subs[shard];
    uint32_t cap = 0;

    if (matches != NULL) {
        *matches = NULL;
        *n = 0;
    }
    if (!res->fresh || res->status != RH_OK) {
        return;   /* a retry's echo, or nothing changed */
    }
    if (w->table == RH_GCS_T_SUB) {
        rh_gcs_sub_change(ss, w);
        return;
    }
    for (size_t i = 0; i < ss->n; i++) {
        rh_gcs_sub_rec_t *s = &ss->v[i];
        rh_gcs_pub_match_t m;

        if (!rh_gcs_sub_matches(s, w)) {
            continue;
        }
        m.rank = s->rank;
        m.id = s->id;
        m.count = ++s->count;
        if (matches == NULL) {
            rh_gcs_pub_send(shard, w, res, &m);
            continue;
        }
        if (*n == cap) {
            uint32_t ncap = cap ? 2 * cap : 4;
            rh_gcs_pub_match_t *nv = realloc(*matches, ncap * sizeof(*nv));

            if (nv == NULL) {
                rh_error("GCS: no memory to remember an update for rank %u",
                         s->rank);
                continue;
            }
            *matches = nv;
            cap = ncap;
        }
        (*matches)[(*n)++] = m;
    }
}

void rh_gcs_pub_resend(uint32_t shard, const rh_gcs_write_t *w,
                       const rh_gcs_result_t *res,
                       const rh_gcs_pub_match_t *matches, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        rh_gcs_pub_send(shard, w, res, &matches[i]);
    }
}

size_t rh_gcs_pub_pack(uint32_t shard, void *buf)
{
    const rh_gcs_shard_subs_t *ss = &rh_gcs_subs[shard];
    uint64_t n = ss->n;

    if (buf != NULL) {
        memcpy(buf, &n, sizeof(n));
        if (n != 0) {
            memcpy((uint8_t *)buf + sizeof(n), ss->v, n * sizeof(*ss->v));
        }
    }
    return sizeof(n) + n * sizeof(*ss->v);
}

rh_status_t rh_gcs_pub_unpack(uint32_t shard, const void *buf, size_t len)
{
    rh_gcs_shard_subs_t *ss = &rh_gcs_subs[shard];
    rh_gcs_sub_rec_t *v = NULL;
    uint64_t n;

    if (len < sizeof(n)) {
        return rh_error_set(RH_ERR_MALFORMED, "GCS subscriptions of %zu "
                            "bytes", len);
    }
    memcpy(&n, buf, sizeof(n));
    if (n > (len - sizeof(n)) / sizeof(*v) ||
        len != sizeof(n) + n * sizeof(*v)) {
        return rh_error_set(RH_ERR_MALFORMED, "GCS subscriptions of %zu "
                            "bytes", len);
    }
    if (n != 0) {
        v = malloc(n * sizeof(*v));
        if (v == NULL) {
            return rh_error_set(RH_ERR_NO_MEMORY, "GCS subscriptions");
        }
        memcpy(v, (const uint8_t *)buf + sizeof(n), n * sizeof(*v));
        for (uint64_t i = 0; i < n; i++) {
            if (v[i].plen > RH_GCS_KEY_MAX || v[i].kind < RH_GCS_SUB_KEY ||
                v[i].kind > RH_GCS_SUB_TABLE) {
                free(v);
                return rh_error_set(RH_ERR_MALFORMED, "GCS subscription "
                                    "out of range");
            }
        }
    }
    free(ss->v);
    ss->v = v;
    ss->n = ss->cap = n;
    return RH_OK;
}

size_t rh_gcs_pub_count(uint32_t shard)
{
    return rh_gcs_subs != NULL ? rh_gcs_subs[shard].n : 0;
}

/* ---- the subscribers' side ------------------------------------------------- */

/* An update that came before its turn. */
typedef struct rh_gcs_early {
    rh_gcs_phdr_t p;
    uint8_t       data[];
} rh_gcs_early_t;

typedef struct rh_gcs_mysub {
    rh_gcs_sub_fn fn;
    void         *arg;
    int           kind;
    uint32_t      shard;      /* KEY: the one shard */
    _Atomic int   live;
    uint64_t     *next;       /* nshards: the count each shard is at */
    rh_hmap_t     early;      /* (shard, count) -> rh_gcs_early_t * */
} rh_gcs_mysub_t;

typedef struct rh_gcs_early_key {
    uint64_t shard;
    uint64_t count;
} rh_gcs_early_key_t;

static struct {
    pthread_mutex_t  lock;
    rh_gcs_mysub_t **v;       /* by id - 1; kept until the end: an update
                               * may still be on its way after unsubscribe */
    uint32_t         n, cap;
} rh_gcs_my = { .lock = PTHREAD_MUTEX_INITIALIZER };

static rh_gcs_mysub_t *rh_gcs_mysub(uint32_t id)
{
    rh_gcs_mysub_t *s = NULL;

    pthread_mutex_lock(&rh_gcs_my.lock);
    if (id >= 1 && id <= rh_gcs_my.n) {
        s = rh_gcs_my.v[id - 1];
    }
    pthread_mutex_unlock(&rh_gcs_my.lock);
    return s;
}

static void rh_gcs_deliver_pub(rh_gcs_mysub_t *s, const rh_gcs_phdr_t *p,
                               const uint8_t *data)
{
    rh_gcs_update_t u = { .table = p->table, .op = p->op, .shard = p->shard,
                          .version = p->version, .key = data,
                          .klen = p->klen, .value = data + p->klen,
                          .vlen = p->vlen };

    s->next[p->shard] = p->count + 1;
    if (atomic_load_explicit(&s->live, memory_order_acquire)) {
        s->fn(s->arg, &u);
    }
}

/* An update for s, in its turn or not. */
static void rh_gcs_pub_take(rh_gcs_mysub_t *s, const rh_gcs_phdr_t *p,
                            const uint8_t *data)
{
    rh_gcs_early_key_t k = { p->shard, p->count };
    rh_gcs_early_t *e, **slot;
    int added;

    if (s->next[p->shard] == 0) {
        s->next[p->shard] = 1;
    }
    if (p->count < s->next[p->shard]) {
        return;   /* seen: a new tail published it again */
    }
    if (p->count > s->next[p->shard]) {
        slot = rh_hmap_put(&s->early, &k, &added);
        if (slot == NULL || !added) {
            if (slot == NULL) {
                rh_error("GCS: no memory to hold an update for "
                         "subscription %u", p->id);
            }
            return;
        }
        e = malloc(sizeof(*e) + (size_t)p->klen + p->vlen);
        if (e == NULL) {
            rh_hmap_del(&s->early, &k, NULL);
            rh_error("GCS: no memory to hold an update for subscription %u",
                     p->id);
            return;
        }
        e->p = *p;
        memcpy(e->data, data, (size_t)p->klen + p->vlen);
        *slot = e;
        return;
    }
    rh_gcs_deliver_pub(s, p, data);
    for (;;) {
        k.count = s->next[p->shard];
        if (!rh_hmap_del(&s->early, &k, &e)) {
            break;
        }
        rh_gcs_deliver_pub(s, &e->p, e->data);
        free(e);
    }
}

static void rh_gcs_pub_arrived(void *arg, rh_status_t status)
{
    rh_gcs_early_t *x = arg;
    rh_gcs_mysub_t *s = rh_gcs_mysub(x->p.id);

    if (status == RH_OK && s != NULL) {
        rh_gcs_pub_take(s, &x->p, x->data);
    }
    free(x);
}

static rh_status_t rh_gcs_on_pub(void *arg, rh_am_msg_t *msg)
{
    rh_gcs_phdr_t p;
    rh_gcs_mysub_t *s;

    (void)arg;
    if (rh_gcs_cut((int)msg->src)) {
        return RH_OK;
    }
    memcpy(&p, msg->hdr, sizeof(p));
    if (p.shard >= rh_gcs_map.nshards || p.klen < 1 ||
        p.klen > RH_GCS_KEY_MAX || p.vlen > RH_GCS_VALUE_MAX ||
        (size_t)p.klen + p.vlen != msg->data_len || p.count == 0 ||
        p.table >= RH_GCS_T_SUB) {
        return RH_ERR_MALFORMED;
    }
    s = rh_gcs_mysub(p.id);
    if (s == NULL) {
        return RH_ERR_MALFORMED;
    }
    if (msg->data == NULL) {
        rh_gcs_early_t *x = malloc(sizeof(*x) + msg->data_len);

        if (x == NULL) {
            rh_error("GCS: no memory for a %zu-byte update", msg->data_len);
            return RH_OK;
        }
        x->p = p;
        return rh_am_recv_data(msg, x->data, rh_gcs_pub_arrived, x);
    }
    rh_gcs_pub_take(s, &p, msg->data);
    return RH_OK;
}

/* Writes (or with value NULL deletes) the subscription's record in each
 * shard it covers, and waits for them all. */
static rh_status_t rh_gcs_sub_write(uint32_t id, const rh_gcs_mysub_t *s,
                                    const void *value, size_t vlen)
{
    uint32_t first = s->kind == RH_GCS_SUB_KEY ? s->shard : 0;
    uint32_t last = s->kind == RH_GCS_SUB_KEY ? s->shard :
                    rh_gcs_nshards - 1;
    rh_gcs_sub_key_t k = { (uint32_t)rh_gcs_rank, id };
    rh_status_t status = RH_OK;

    for (uint32_t sh = first; sh <= last && status == RH_OK; sh++) {
        status = rh_gcs_write_to_shard(RH_GCS_T_SUB, &k, sizeof(k), value,
                                       vlen, sh);
    }
    return status;
}

rh_status_t rh_gcs_subscribe(int table, int kind, const void *key,
                             size_t klen, rh_gcs_sub_fn fn, void *arg,
                             uint32_t *id)
{
    rh_gcs_mysub_t *s;
    rh_gcs_sub_val_t *v;
    rh_status_t status;
    uint32_t myid;

    if (rh_gcs_rank < 0) {
        return rh_error_set(RH_ERR_NOT_INITIALIZED, "the GCS is not running");
    }
    if (table < 0 || table >= RH_GCS_T_SUB || fn == NULL || id == NULL ||
        kind < RH_GCS_SUB_KEY || kind > RH_GCS_SUB_TABLE ||
        (kind != RH_GCS_SUB_TABLE && (key == NULL || klen > RH_GCS_KEY_MAX ||
                                      (kind == RH_GCS_SUB_KEY &&
                                       klen == 0)))) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "GCS subscription: a user "
                            "table, a kind (key, prefix, table), a callback "
                            "and a key of at most %u bytes are needed",
                            RH_GCS_KEY_MAX);
    }
    if (kind == RH_GCS_SUB_TABLE) {
        klen = 0;
    }
    s = calloc(1, sizeof(*s));
    v = malloc(sizeof(*v) + klen);
    if (s != NULL) {
        s->next = calloc(rh_gcs_nshards, sizeof(*s->next));
    }
    if (s == NULL || v == NULL || s->next == NULL) {
        status = rh_error_set(RH_ERR_NO_MEMORY, "GCS subscription");
        goto err_free;
    }
    s->fn = fn;
    s->arg = arg;
    s->kind = kind;
    atomic_init(&s->live, 1);
    rh_hmap_init(&s->early, sizeof(rh_gcs_early_key_t),
                 sizeof(rh_gcs_early_t *));
    if (kind == RH_GCS_SUB_KEY) {
        s->shard = rh_gcs_shard_of(table, key, klen);
    }
    pthread_mutex_lock(&rh_gcs_my.lock);
    if (rh_gcs_my.n == rh_gcs_my.cap) {
        uint32_t cap = rh_gcs_my.cap ? 2 * rh_gcs_my.cap : 8;
        rh_gcs_mysub_t **nv = realloc(rh_gcs_my.v, cap * sizeof(*nv));

        if (nv == NULL) {
            pthread_mutex_unlock(&rh_gcs_my.lock);
            status = rh_error_set(RH_ERR_NO_MEMORY, "GCS subscriptions");
            goto err_free;
        }
        rh_gcs_my.v = nv;
        rh_gcs_my.cap = cap;
    }
    rh_gcs_my.v[rh_gcs_my.n++] = s;
    myid = rh_gcs_my.n;
    pthread_mutex_unlock(&rh_gcs_my.lock);

    memset(v, 0, sizeof(*v));
    v->kind = (uint8_t)kind;
    v->table = (uint8_t)table;
    v->plen = (uint16_t)klen;
    if (klen != 0) {
        memcpy(v + 1, key, klen);
    }
    status = rh_gcs_sub_write(myid, s, v, sizeof(*v) + klen);
    free(v);
    if (status != RH_OK) {
        /* The shards that took it publish to a subscription that no
         * longer listens. */
        atomic_store(&s->live, 0);
        (void)rh_gcs_sub_write(myid, s, NULL, 0);
        return status;
    }
    *id = myid;
    return RH_OK;

err_free:
    if (s != NULL) {
        free(s->next);
    }
    free(s);
    free(v);
    return status;
}

rh_status_t rh_gcs_unsubscribe(uint32_t id)
{
    rh_gcs_mysub_t *s = rh_gcs_mysub(id);

    if (s == NULL || !atomic_load(&s->live)) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "no GCS subscription %u",
                            id);
    }
    atomic_store(&s->live, 0);
    return rh_gcs_sub_write(id, s, NULL, 0);
}

/* ---- life ------------------------------------------------------------------ */

rh_status_t rh_gcs_pub_setup(void)
{
    return rh_am_register(RH_AM_ID_GCS_PUB, sizeof(rh_gcs_phdr_t),
                          sizeof(rh_gcs_phdr_t), rh_gcs_on_pub, NULL);
}

rh_status_t rh_gcs_pub_start(void)
{
    rh_gcs_subs = calloc(rh_gcs_map.nshards, sizeof(*rh_gcs_subs));
    return rh_gcs_subs != NULL ? RH_OK :
           rh_error_set(RH_ERR_NO_MEMORY, "GCS subscription tables");
}

void rh_gcs_pub_stop(void)
{
    for (uint32_t s = 0; rh_gcs_subs != NULL && s < rh_gcs_map.nshards; s++) {
        free(rh_gcs_subs[s].v);
    }
    free(rh_gcs_subs);
    rh_gcs_subs = NULL;
    pthread_mutex_lock(&rh_gcs_my.lock);
    for (uint32_t i = 0; i < rh_gcs_my.n; i++) {
        rh_gcs_mysub_t *s = rh_gcs_my.v[i];
        rh_gcs_early_t *e;

        while (rh_hmap_pop(&s->early, NULL, &e)) {
            free(e);
        }
        rh_hmap_fini(&s->early);
        free(s->next);
        free(s);
    }
    free(rh_gcs_my.v);
    rh_gcs_my.v = NULL;
    rh_gcs_my.n = rh_gcs_my.cap = 0;
    pthread_mutex_unlock(&rh_gcs_my.lock);
}
