#include "core/pgroup.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/status.h"
#include "core/core.h"
#include "core/placement.h"
#include "gcs/gcs.h"
#include "gcs/gcs_record.h"
#include "transport/am.h"
#include "transport/transport.h"

#define RH_GS_RANK 0
#define RH_PG_MAX_BUNDLES 1024

enum { RH_PG_PENDING = 0, RH_PG_READY = 1, RH_PG_REMOVED = 2 };

typedef struct rh_pg_hdr {
    uint64_t id;
    int32_t  n;          /* bundles, or the bundle's index */
    int32_t  kind;       /* strategy (create), phase (reserve, remove) */
} rh_pg_hdr_t;

enum {
    RH_PGM_REQUEST = 0,  /* reserve/remove: to the rank holding a bundle */
    RH_PGM_DONE    = 1   /* reserve: that rank's answer */
};

enum {
    RH_PGS_PLACED  = 0,  /* state: where the bundles are */
    RH_PGS_REMOVED = 1   /* state: the group is gone */
};

/* The owner's view of a group. */
typedef struct rh_pg_obj rh_pg_obj_t;
struct rh_pg_obj {
    rh_pg_obj_t  *next;
    uint64_t      id;
    int           n;
    _Atomic int   state;
    int          *ranks;          /* READY: where each bundle is */
    int          *cpus;           /* READY: the CPUs each bundle holds */
    int           counted;        /* cpus are in placement's view */
    rh_task_t   **held;           /* tasks waiting for READY */
    size_t        nheld, cap;
};

/* The global scheduler's view of a group. */
typedef struct rh_gs_pg rh_gs_pg_t;
struct rh_gs_pg {
    rh_gs_pg_t   *next;
    uint64_t      id;
    int           owner, n, strategy, placed, acks;
    rh_res_req_t *bundles;
    int          *ranks;
    rh_gcs_record_t *rec;         /* its record in the GCS; NULL: none */
};

static pthread_mutex_t rh_pg_lock = PTHREAD_MUTEX_INITIALIZER;
static rh_pg_obj_t *rh_pgs;           /* ours */
static rh_gs_pg_t *rh_gs_pgs;         /* rank 0: every group */
static uint64_t rh_pg_counter;

static const char *const rh_pg_strategy_names[] = {
    "PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"
};

static void rh_pg_prefix(uint64_t id, int bundle, char *buf, size_t len)
{
    snprintf(buf, len, "pg%llx_%d_", (unsigned long long)id, bundle);
}

static rh_pg_obj_t *rh_pg_find(uint64_t id)
{
    rh_pg_obj_t *g;

    for (g = rh_pgs; g != NULL && g->id != id; g = g->next) {
    }
    return g;
}

/* ---- a rank holding a bundle ------------------------------------------------- */

static void rh_pg_bundle_apply(uint64_t id, int bundle,
                               const rh_res_req_t *req, int reserve)
{
    char prefix[40];

    rh_pg_prefix(id, bundle, prefix, sizeof(prefix));
    if (reserve) {
        if (rh_resources_bundle_add(prefix, req) != RH_OK) {
            rh_warn("placement group %llx, bundle %d: %s",
                    (unsigned long long)id, bundle, rh_last_error());
        }
    } else {
        rh_resources_bundle_remove(prefix, req);
    }
}

/* ---- the global scheduler ---------------------------------------------------- */

static void rh_gs_pg_send_state(rh_gs_pg_t *g);

/* Writes g's record (pgroup.h: rh_pg_record_read) through the GCS: when it
 * is created (pending), placed and removed. Never blocks; the global
 * scheduler keeps its own books, the record is for readers elsewhere. */
static void rh_gs_pg_record(rh_gs_pg_t *g, int state)
{
    static const char *const names[] = { "pending", "placed", "removed" };
    size_t cap = 128 + (size_t)g->n * 3 * 12, k;
    char *text, key[32];
    int klen;

    if (g->rec == NULL) {
        klen = snprintf(key, sizeof(key), "pg/%llx",
                        (unsigned long long)g->id);
        g->rec = rh_gcs_record_new(RH_GCS_T_PGROUP, key, (size_t)klen);
        if (g->rec == NULL) {
            rh_warn("placement group %llx: no record in the GCS: %s",
                    (unsigned long long)g->id, rh_last_error());
            return;
        }
    }
    text = malloc(cap);
    if (text == NULL) {
        rh_warn("placement group %llx: no memory for its GCS record",
                (unsigned long long)g->id);
        return;
    }
    k = (size_t)snprintf(text, cap, "owner %d strategy %s state %s "
                         "bundles %d", g->owner,
                         rh_pg_strategy_names[g->strategy], names[state],
                         g->n);
    if (state == RH_PG_REC_PLACED) {
        k += (size_t)snprintf(text + k, cap - k, " ranks");
        for (int b = 0; b < g->n; b++) {
            k += (size_t)snprintf(text + k, cap - k, " %d", g->ranks[b]);
        }
        k += (size_t)snprintf(text + k, cap - k, " cpus");
        for (int b = 0; b < g->n; b++) {
            k += (size_t)snprintf(text + k, cap - k, " %d",
                                  g->bundles[b].cpus);
        }
    }
    if (k < cap && rh_gcs_record_set(g->rec, text, k) != RH_OK) {
        rh_warn("placement group %llx: %s", (unsigned long long)g->id,
                rh_last_error());
    }
    free(text);
}

/* Asks each chosen rank to hold its bundle (rank 0 does it at once). */
static void rh_gs_pg_reserve_all(rh_gs_pg_t *g)
{
    rh_gs_pg_record(g, RH_PG_REC_PLACED);
    g->acks = g->n;
    for (int b = 0; b < g->n; b++) {
        rh_pg_hdr_t h = { g->id, b, RH_PGM_REQUEST };

        if (g->ranks[b] == RH_GS_RANK) {
            rh_pg_bundle_apply(g->id, b, &g->bundles[b], 1);
            g->acks--;
        } else if (rh_am_send((uint32_t)g->ranks[b], RH_AM_ID_PG_RESERVE, &h,
                              sizeof(h), &g->bundles[b],
                              sizeof(g->bundles[b]), NULL, NULL) != RH_OK) {
            g->acks--;   /* its rank is gone: tasks there fail as they go */
        }
    }
    if (g->acks == 0) {
        rh_gs_pg_send_state(g);
    }
}

/* Places g's bundles by its strategy, taking what they need from the
 * books; 0 (books untouched) when it cannot be done now. */
static int rh_gs_pg_try(rh_gs_pg_t *g)
{
    return rh_place_gs_hold_group(g->bundles, g->n,
                                  (rh_pg_strategy_t)g->strategy, g->ranks);
}

static void rh_gs_pg_warn(const rh_gs_pg_t *g)
{
    if (g->strategy == RH_PG_STRICT_SPREAD && g->n > rh_num_nodes()) {
        rh_warn("placement group %llx of rank %d is pending: STRICT_SPREAD "
                "of %d bundles needs %d nodes and the job has %d",
                (unsigned long long)g->id, g->owner, g->n, g->n,
                rh_num_nodes());
    } else {
        rh_warn("placement group %llx of rank %d is pending: its %d "
                "bundles (%s) do not fit in what the ranks offer now",
                (unsigned long long)g->id, g->owner, g->n,
                rh_pg_strategy_names[g->strategy]);
    }
}

/* Places what can be placed among the pending groups. */
static void rh_gs_pg_place_pending(void)
{
    for (;;) {
        rh_gs_pg_t *g, *hit = NULL;

        pthread_mutex_lock(&rh_pg_lock);
        for (g = rh_gs_pgs; g != NULL && hit == NULL; g = g->next) {
            if (!g->placed && rh_gs_pg_try(g)) {
                g->placed = 1;
                hit = g;
            }
        }
        pthread_mutex_unlock(&rh_pg_lock);
        if (hit == NULL) {
            return;
        }
        rh_gs_pg_reserve_all(hit);
    }
}

static void rh_pg_state_apply(uint64_t id, int n, const int32_t *ranks,
                              const int32_t *cpus);

/* Tells every rank where g's bundles are (n ranks, then the CPUs each
 * holds), or that g is gone (where NULL): any rank may submit tasks into a
 * group it was handed, and places other tasks where CPUs are not
 * reserved. */
static void rh_gs_pg_broadcast(uint64_t id, int n, const int *where,
                               const rh_res_req_t *bundles)
{
    rh_pg_hdr_t h = { id, where != NULL ? n : 0,
                      where != NULL ? RH_PGS_PLACED : RH_PGS_REMOVED };
    int32_t *state = NULL;

    if (where != NULL) {
        state = malloc(2 * (size_t)n * sizeof(*state));
        if (state == NULL) {
            return;
        }
        for (int b = 0; b < n; b++) {
            state[b] = where[b];
            state[n + b] = bundles[b].cpus;
        }
    }
    for (int r = 0; r < rh_size(); r++) {
        if (r == rh_rank()) {
            rh_pg_state_apply(id, h.n, state, state != NULL ? state + n :
                              NULL);
        } else if (rh_rank_alive(r)) {
            (void)rh_am_send((uint32_t)r, RH_AM_ID_PG_STATE, &h, sizeof(h),
                             state, 2 * (size_t)h.n * sizeof(*state), NULL,
                             NULL);
        }
    }
    free(state);
}

static void rh_gs_pg_send_state(rh_gs_pg_t *g)
{
    rh_gs_pg_broadcast(g->id, g->n, g->ranks, g->bundles);
}

static void rh_gs_pg_create(int owner, uint64_t id, int n, int strategy,
                            const rh_res_req_t *bundles)
{
    rh_gs_pg_t *g = calloc(1, sizeof(*g));

    if (g == NULL || (g->bundles = malloc((size_t)n * sizeof(*bundles))) ==
        NULL || (g->ranks = malloc((size_t)n * sizeof(int))) == NULL) {
        if (g != NULL) {
            free(g->bundles);
        }
        free(g);
        rh_warn("out of memory placing a group of rank %d", owner);
        return;
    }
    g->id = id;
    g->owner = owner;
    g->n = n;
    g->strategy = strategy;
    memcpy(g->bundles, bundles, (size_t)n * sizeof(*bundles));
    pthread_mutex_lock(&rh_pg_lock);
    g->next = rh_gs_pgs;
    rh_gs_pgs = g;
    g->placed = rh_gs_pg_try(g);
    pthread_mutex_unlock(&rh_pg_lock);
    if (g->placed) {
        rh_gs_pg_reserve_all(g);
    } else {
        rh_gs_pg_record(g, RH_PG_REC_PENDING);
        rh_gs_pg_warn(g);
    }
}

static void rh_gs_pg_remove(uint64_t id)
{
    rh_gs_pg_t *g = NULL;

    pthread_mutex_lock(&rh_pg_lock);
    for (rh_gs_pg_t **pp = &rh_gs_pgs; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->id == id) {
            g = *pp;
            *pp = g->next;
            break;
        }
    }
    if (g != NULL && g->placed) {
        rh_place_gs_release_group(g->bundles, g->n, g->ranks);
    }
    pthread_mutex_unlock(&rh_pg_lock);
    if (g == NULL) {
        return;
    }
    for (int b = 0; g->placed && b < g->n; b++) {
        rh_pg_hdr_t h = { id, b, RH_PGM_REQUEST };
        int r = g->ranks[b];

        if (r == RH_GS_RANK) {
            rh_pg_bundle_apply(id, b, &g->bundles[b], 0);
        } else if (r > 0 && rh_rank_alive(r)) {
            (void)rh_am_send((uint32_t)r, RH_AM_ID_PG_REMOVE, &h, sizeof(h),
                             &g->bundles[b], sizeof(g->bundles[b]), NULL,
                             NULL);
        }
    }
    rh_gs_pg_broadcast(id, 0, NULL, NULL);
    rh_gs_pg_record(g, RH_PG_REC_REMOVED);
    rh_gcs_record_drop(g->rec);   /* still written, then freed */
    free(g->bundles);
    free(g->ranks);
    free(g);
    /* What waited for room may fit now. */
    rh_gs_pg_place_pending();
    rh_place_gs_retry();
}

/* ---- messages ------------------------------------------------------------------ */

/* Amounts as a user may ask them: a negative one would add resources
 * that do not exist, and huge ones overflowed the ledger's sums. */
static int rh_pg_reqs_ok(const rh_res_req_t *b, int n)
{
    for (int i = 0; i < n; i++) {
        if (b[i].cpus < 0 || b[i].cpus > RH_RES_CPUS_MAX || b[i].n < 0 ||
            b[i].n > RH_RES_MAX) {
            return 0;
        }
        for (int k = 0; k < b[i].n; k++) {
            if (memchr(b[i].items[k].name, '\0', RH_RES_NAME_MAX) == NULL ||
                b[i].items[k].amount < 0 ||
                b[i].items[k].amount > RH_RES_AMOUNT_MAX) {
                return 0;
            }
        }
    }
    return 1;
}

/* The bundles a message carries, copied out (its payload may sit at any
 * alignment); NULL when malformed. */
static rh_res_req_t *rh_pg_reqs_copy(const rh_am_msg_t *msg, int n)
{
    rh_res_req_t *reqs;

    if (msg->rndv_desc != NULL || n <= 0 || n > RH_PG_MAX_BUNDLES ||
        msg->data_len != (size_t)n * sizeof(rh_res_req_t) ||
        (reqs = malloc(msg->data_len)) == NULL) {
        return NULL;
    }
    memcpy(reqs, msg->data, msg->data_len);
    if (!rh_pg_reqs_ok(reqs, n)) {
        free(reqs);
        return NULL;
    }
    return reqs;
}

static rh_status_t rh_pg_on_create(void *arg, rh_am_msg_t *msg)
{
    rh_pg_hdr_t h;
    rh_res_req_t *reqs;

    (void)arg;
    memcpy(&h, msg->hdr, sizeof(h));
    if (rh_rank() != RH_GS_RANK || h.kind < 0 ||
        h.kind > RH_PG_STRICT_SPREAD ||
        (reqs = rh_pg_reqs_copy(msg, h.n)) == NULL) {
        return RH_ERR_MALFORMED;
    }
    rh_gs_pg_create((int)msg->src, h.id, h.n, h.kind, reqs);
    free(reqs);
    return RH_OK;
}

static rh_status_t rh_pg_on_reserve(void *arg, rh_am_msg_t *msg)
{
    rh_pg_hdr_t h;
    rh_res_req_t *req;

    (void)arg;
    memcpy(&h, msg->hdr, sizeof(h));
    if (h.kind == RH_PGM_DONE) {
        /* at the global scheduler: one bundle holds */
        rh_gs_pg_t *g, *done = NULL;

        if (rh_rank() != RH_GS_RANK) {
            return RH_ERR_MALFORMED;
        }
        pthread_mutex_lock(&rh_pg_lock);
        for (g = rh_gs_pgs; g != NULL && g->id != h.id; g = g->next) {
        }
        if (g != NULL && g->placed && --g->acks == 0) {
            done = g;
        }
        pthread_mutex_unlock(&rh_pg_lock);
        /* Groups change on this thread only: done stays valid. */
        if (done != NULL) {
            rh_gs_pg_send_state(done);
        }
        return RH_OK;
    }
    if (msg->src != RH_GS_RANK || (req = rh_pg_reqs_copy(msg, 1)) == NULL) {
        return RH_ERR_MALFORMED;
    }
    rh_pg_bundle_apply(h.id, h.n, req, 1);
    free(req);
    h.kind = RH_PGM_DONE;
    (void)rh_am_send(RH_GS_RANK, RH_AM_ID_PG_RESERVE, &h, sizeof(h), NULL, 0,
                     NULL, NULL);
    return RH_OK;
}

static rh_status_t rh_pg_on_remove(void *arg, rh_am_msg_t *msg)
{
    rh_pg_hdr_t h;

    (void)arg;
    memcpy(&h, msg->hdr, sizeof(h));
    if (msg->src == RH_GS_RANK && rh_rank() != RH_GS_RANK) {
        rh_res_req_t *req = rh_pg_reqs_copy(msg, 1);

        if (req == NULL) {
            return RH_ERR_MALFORMED;
        }
        rh_pg_bundle_apply(h.id, h.n, req, 0);
        free(req);
        return RH_OK;
    }
    if (rh_rank() != RH_GS_RANK) {
        return RH_ERR_MALFORMED;
    }
    rh_gs_pg_remove(h.id);
    return RH_OK;
}

/* A group this rank did not create, known by its id alone until the global
 * scheduler says where its bundles are. Under rh_pg_lock. */
static rh_pg_obj_t *rh_pg_shadow(uint64_t id)
{
    rh_pg_obj_t *g = calloc(1, sizeof(*g));

    if (g != NULL) {
        g->id = id;
        g->next = rh_pgs;
        rh_pgs = g;
    }
    return g;
}

/* Fails and frees held tasks. */
static void rh_pg_fail_held(rh_task_t **held, size_t n, const char *why)
{
    for (size_t i = 0; i < n; i++) {
        rh_task_fail_all(held[i], why);
        rh_task_free(held[i]);
    }
    free(held);
}

/* Every rank learns where a group's bundles are (n ranks), or that it is
 * gone (ranks NULL); tasks waiting for it go, or fail. */
static void rh_pg_state_apply(uint64_t id, int n, const int32_t *ranks,
                              const int32_t *cpus)
{
    rh_pg_obj_t *g;
    rh_task_t **held = NULL;
    size_t nheld = 0;
    int placed = 0;

    pthread_mutex_lock(&rh_pg_lock);
    g = rh_pg_find(id);
    if (g == NULL && ranks != NULL) {
        g = rh_pg_shadow(id);
    }
    if (g != NULL && atomic_load(&g->state) == RH_PG_PENDING &&
        (g->n == 0 || g->n == n)) {
        if (ranks != NULL && g->ranks == NULL) {
            g->ranks = calloc((size_t)n, sizeof(int));
        }
        if (ranks != NULL && g->cpus == NULL) {
            g->cpus = calloc((size_t)n, sizeof(int));
        }
        if (ranks != NULL && g->ranks != NULL && g->cpus != NULL) {
            g->n = n;
            for (int b = 0; b < n; b++) {
                g->ranks[b] = ranks[b];
                g->cpus[b] = cpus[b];
                rh_place_bundle_cpus(ranks[b], cpus[b]);
            }
            g->counted = 1;
            placed = 1;
        }
        atomic_store(&g->state, placed ? RH_PG_READY : RH_PG_REMOVED);
        held = g->held;
        nheld = g->nheld;
        g->held = NULL;
        g->nheld = g->cap = 0;
    } else if (g != NULL && ranks == NULL) {
        /* the owner marks its group removed before the news comes back */
        for (int b = 0; g->counted && b < g->n; b++) {
            rh_place_bundle_cpus(g->ranks[b], -g->cpus[b]);
        }
        g->counted = 0;
        atomic_store(&g->state, RH_PG_REMOVED);
    }
    pthread_mutex_unlock(&rh_pg_lock);
    if (!placed) {
        rh_pg_fail_held(held, nheld, "its placement group was removed "
                        "before it was placed");
    }
    for (size_t i = 0; placed && i < nheld; i++) {
        rh_task_t *t = held[i];

        if (t->pg_bundle >= n) {
            rh_task_fail_all(t, "its placement group has fewer bundles than "
                             "the one it named");
            rh_task_free(t);
            continue;
        }
        t->forward_to = g->ranks[t->pg_bundle] == rh_rank() ? -1 :
                        g->ranks[t->pg_bundle];
        rh_task_dispatch(t);
    }
    if (placed) {
        free(held);
    }
    rh_future_notify();   /* rh_pg_wait */
}

static rh_status_t rh_pg_on_state(void *arg, rh_am_msg_t *msg)
{
    rh_pg_hdr_t h;

    (void)arg;
    memcpy(&h, msg->hdr, sizeof(h));
    if (msg->src != RH_GS_RANK || msg->rndv_desc != NULL) {
        return RH_ERR_MALFORMED;
    }
    if (h.kind == RH_PGS_REMOVED && msg->data_len == 0) {
        rh_pg_state_apply(h.id, 0, NULL, NULL);
        return RH_OK;
    }
    if (h.kind != RH_PGS_PLACED || h.n <= 0 || h.n > RH_PG_MAX_BUNDLES ||
        msg->data_len != 2 * (size_t)h.n * sizeof(int32_t)) {
        return RH_ERR_MALFORMED;
    }
    for (int b = 0; b < 2 * h.n; b++) {
        int32_t v;

        memcpy(&v, (const uint8_t *)msg->data + (size_t)b * sizeof(v),
               sizeof(v));
        if (v < 0 || (b < h.n && v >= rh_size())) {
            return RH_ERR_MALFORMED;
        }
    }
    {
        int32_t *state = malloc(msg->data_len);

        if (state == NULL) {
            return RH_OK;
        }
        memcpy(state, msg->data, msg->data_len);
        rh_pg_state_apply(h.id, h.n, state, state + h.n);
        free(state);
    }
    return RH_OK;
}

/* Rank 0's own groups go through its progress thread too, where every
 * change of the global scheduler's groups happens. */
typedef struct rh_pg_local_op {
    rh_tp_op_t    op;
    int           remove, n, strategy;
    uint64_t      id;
    rh_res_req_t  bundles[];
} rh_pg_local_op_t;

static void rh_pg_local_run(rh_tp_op_t *op)
{
    rh_pg_local_op_t *o = (rh_pg_local_op_t *)op;

    if (o->remove) {
        rh_gs_pg_remove(o->id);
    } else {
        rh_gs_pg_create(RH_GS_RANK, o->id, o->n, o->strategy, o->bundles);
    }
    free(o);
}

static rh_status_t rh_pg_local_post(int remove, uint64_t id, int n,
                                    int strategy, const rh_res_req_t *reqs)
{
    rh_pg_local_op_t *o = malloc(sizeof(*o) + (size_t)n * sizeof(*reqs));

    if (o == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "placement group");
    }
    o->op.run = rh_pg_local_run;
    o->remove = remove;
    o->id = id;
    o->n = n;
    o->strategy = strategy;
    if (n != 0) {
        memcpy(o->bundles, reqs, (size_t)n * sizeof(*reqs));
    }
    rh_tp_post(&o->op);
    return RH_OK;
}

/* ---- the owner: the public calls ------------------------------------------------ */

static rh_status_t rh_pg_bundle_req(const rh_bundle_t *b, int i,
                                    rh_res_req_t *req)
{
    rh_status_t status;

    if (b->num_cpus < 0) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "bundle %d asks for %d "
                            "CPUs", i, b->num_cpus);
    }
    status = rh_resources_parse(b->resources, b->num_cpus, req);
    if (status != RH_OK) {
        return rh_error_set(status, "bundle %d: %s", i, rh_last_error());
    }
    if (req->cpus == 0 && req->n == 0) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "bundle %d reserves "
                            "nothing", i);
    }
    return RH_OK;
}

rh_status_t rh_pg_create(const rh_bundle_t *bundles, int n,
                         rh_pg_strategy_t strategy, rh_pg_t *pg)
{
    rh_res_req_t *reqs;
    rh_pg_obj_t *g;
    rh_pg_hdr_t h;
    rh_status_t status = RH_OK;

    if (!rh_core_initialized()) {
        return rh_error_set(RH_ERR_NOT_INITIALIZED, "call rh_init first");
    }
    if (bundles == NULL || pg == NULL || n <= 0 || n > RH_PG_MAX_BUNDLES ||
        (unsigned)strategy > RH_PG_STRICT_SPREAD) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_pg_create needs 1 to "
                            "%d bundles, a strategy and pg",
                            RH_PG_MAX_BUNDLES);
    }
    reqs = calloc((size_t)n, sizeof(*reqs));
    g = calloc(1, sizeof(*g));
    if (reqs == NULL || g == NULL ||
        (g->ranks = calloc((size_t)n, sizeof(int))) == NULL) {
        status = rh_error_set(RH_ERR_NO_MEMORY, "placement group");
    }
    for (int i = 0; status == RH_OK && i < n; i++) {
        status = rh_pg_bundle_req(&bundles[i], i, &reqs[i]);
    }
    if (status != RH_OK) {
        if (g != NULL) {
            free(g->ranks);
        }
        free(g);
        free(reqs);
        return status;
    }
    pthread_mutex_lock(&rh_pg_lock);
    g->id = (uint64_t)rh_rank() << 32 | ++rh_pg_counter;
    g->n = n;
    g->next = rh_pgs;
    rh_pgs = g;
    pthread_mutex_unlock(&rh_pg_lock);
    *pg = g->id;
    h.id = g->id;
    h.n = n;
    h.kind = (int32_t)strategy;
    if (rh_rank() == RH_GS_RANK) {
        status = rh_pg_local_post(0, g->id, n, (int)strategy, reqs);
    } else {
        status = rh_am_send(RH_GS_RANK, RH_AM_ID_PG_CREATE, &h, sizeof(h),
                            reqs, (size_t)n * sizeof(*reqs), NULL, NULL);
    }
    free(reqs);
    return status;
}

static rh_status_t rh_pg_get(rh_pg_t pg, rh_pg_obj_t **out)
{
    rh_pg_obj_t *g;

    if (!rh_core_initialized()) {
        return rh_error_set(RH_ERR_NOT_INITIALIZED, "call rh_init first");
    }
    if (pg == 0 || (pg >> 32) >= (uint64_t)rh_size()) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "%llx is not a placement "
                            "group of this job", (unsigned long long)pg);
    }
    pthread_mutex_lock(&rh_pg_lock);
    g = rh_pg_find(pg);
    if (g == NULL) {
        g = rh_pg_shadow(pg);   /* another rank's: placed when we hear */
    }
    pthread_mutex_unlock(&rh_pg_lock);
    if (g == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "placement group");
    }
    if (atomic_load(&g->state) == RH_PG_REMOVED) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "placement group %llx was "
                            "removed", (unsigned long long)pg);
    }
    *out = g;
    return RH_OK;
}

static int rh_pg_ready_cond(void *arg)
{
    return atomic_load(&((rh_pg_obj_t *)arg)->state) != RH_PG_PENDING;
}

rh_status_t rh_pg_wait(rh_pg_t pg, int64_t timeout_ms)
{
    rh_pg_obj_t *g;
    rh_status_t status = rh_pg_get(pg, &g);

    if (status != RH_OK) {
        return status;
    }
    if (!rh_pg_ready_cond(g) &&
        (timeout_ms == 0 ||
         !rh_core_wait_until(rh_pg_ready_cond, g, rh_deadline(timeout_ms)))) {
        return rh_error_set(RH_ERR_TIMEOUT, "placement group %llx is not "
                            "placed yet", (unsigned long long)pg);
    }
    return atomic_load(&g->state) == RH_PG_READY ? RH_OK :
           rh_error_set(RH_ERR_INVALID_PARAM, "placement group %llx was "
                        "removed", (unsigned long long)pg);
}

rh_status_t rh_pg_bundle_node(rh_pg_t pg, int bundle, int *node)
{
    rh_pg_obj_t *g;
    rh_status_t status = rh_pg_get(pg, &g);

    if (status != RH_OK) {
        return status;
    }
    if (atomic_load(&g->state) != RH_PG_READY) {
        return rh_error_set(RH_ERR_BUSY, "placement group %llx is not "
                            "placed yet", (unsigned long long)pg);
    }
    if (node == NULL || bundle < 0 || bundle >= g->n) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "placement group %llx has "
                            "bundles 0 to %d", (unsigned long long)pg,
                            g->n - 1);
    }
    *node = rh_core_node_of(g->ranks[bundle]);
    return RH_OK;
}

rh_status_t rh_pg_remove(rh_pg_t pg)
{
    rh_pg_obj_t *g;
    rh_pg_hdr_t h = { pg, 0, 0 };
    rh_task_t **held;
    size_t nheld;
    rh_status_t status = rh_pg_get(pg, &g);

    if (status != RH_OK) {
        return status;
    }
    pthread_mutex_lock(&rh_pg_lock);
    atomic_store(&g->state, RH_PG_REMOVED);
    held = g->held;
    nheld = g->nheld;
    g->held = NULL;
    g->nheld = g->cap = 0;
    pthread_mutex_unlock(&rh_pg_lock);
    rh_pg_fail_held(held, nheld, "its placement group was removed before it "
                    "was placed");
    rh_future_notify();
    if (rh_rank() == RH_GS_RANK) {
        return rh_pg_local_post(1, pg, 0, 0, NULL);
    }
    return rh_am_send(RH_GS_RANK, RH_AM_ID_PG_REMOVE, &h, sizeof(h), NULL, 0,
                      NULL, NULL);
}

/* ---- tasks into bundles ----------------------------------------------------------- */

rh_status_t rh_pg_route(const rh_task_params_t *params, rh_res_req_t **res,
                        int *rank)
{
    rh_pg_obj_t *g;
    rh_res_req_t *in = *res, *out;
    char prefix[40];
    int cpus = in != NULL ? in->cpus : 1, b;
    rh_status_t status;

    *rank = RH_PG_NOT_GROUPED;
    if (params == NULL ||
        !(params->field_mask & RH_TASK_PARAM_FIELD_STRATEGY) ||
        params->strategy != RH_STRATEGY_PLACEMENT_GROUP) {
        return RH_OK;
    }
    status = rh_pg_get(params->pg, &g);
    if (status != RH_OK) {
        return status;
    }
    b = params->bundle;
    if (b < 0 || (g->n != 0 && b >= g->n)) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "placement group %llx has "
                            "bundles 0 to %d, not %d",
                            (unsigned long long)params->pg, g->n - 1, b);
    }
    out = calloc(1, sizeof(*out));
    if (out == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "task resources");
    }
    /* Ask for the bundle's names instead of the rank's own. */
    rh_pg_prefix(g->id, b, prefix, sizeof(prefix));
    if (cpus > 0) {
        snprintf(out->items[out->n].name, RH_RES_NAME_MAX, "%sCPU", prefix);
        out->items[out->n++].amount = cpus;
    }
    for (int i = 0; in != NULL && i < in->n && out->n < RH_RES_MAX; i++) {
        snprintf(out->items[out->n].name, RH_RES_NAME_MAX, "%s%s", prefix,
                 in->items[i].name);
        out->items[out->n++].amount = in->items[i].amount;
    }
    free(in);
    *res = out;
    pthread_mutex_lock(&rh_pg_lock);
    if (atomic_load(&g->state) == RH_PG_READY) {
        *rank = g->ranks[b] == rh_rank() ? -1 : g->ranks[b];
    } else {
        *rank = RH_PG_WAIT;
    }
    pthread_mutex_unlock(&rh_pg_lock);
    return RH_OK;
}

void rh_pg_hold(rh_task_t *t)
{
    rh_pg_obj_t *g;
    int r = RH_PG_WAIT;

    pthread_mutex_lock(&rh_pg_lock);
    g = rh_pg_find(t->pg);
    if (g != NULL && atomic_load(&g->state) == RH_PG_READY) {
        r = g->ranks[t->pg_bundle];
    } else if (g != NULL && atomic_load(&g->state) == RH_PG_PENDING) {
        if (g->nheld == g->cap) {
            size_t cap = g->cap ? 2 * g->cap : 16;
            rh_task_t **h = realloc(g->held, cap * sizeof(*h));

            if (h != NULL) {
                g->held = h;
                g->cap = cap;
            }
        }
        if (g->nheld < g->cap) {
            g->held[g->nheld++] = t;
            pthread_mutex_unlock(&rh_pg_lock);
            return;
        }
    }
    pthread_mutex_unlock(&rh_pg_lock);
    if (r == RH_PG_WAIT) {
        rh_task_fail_all(t, g == NULL || atomic_load(&g->state) ==
                         RH_PG_REMOVED ? "its placement group was removed" :
                         "out of memory holding a task for its group");
        rh_task_free(t);
        return;
    }
    t->forward_to = r == rh_rank() ? -1 : r;
    rh_task_dispatch(t);
}

/* Reads n integers in [lo, hi) after the word name at *p. */
static int rh_pg_parse_ints(const char **p, const char *name, int n,
                            int lo, int hi, int *out)
{
    size_t len = strlen(name);

    while (**p == ' ') {
        (*p)++;
    }
    if (strncmp(*p, name, len) != 0) {
        return -1;
    }
    *p += len;
    for (int i = 0; i < n; i++) {
        char *end;
        long v = strtol(*p, &end, 10);

        if (end == *p || v < lo || v >= hi) {
            return -1;
        }
        out[i] = (int)v;
        *p = end;
    }
    return 0;
}

void rh_pg_record_free(rh_pg_record_t *rec)
{
    if (rec != NULL) {
        free(rec->ranks);
        free(rec->nodes);
        free(rec->cpus);
        rec->ranks = rec->nodes = rec->cpus = NULL;
    }
}

rh_status_t rh_pg_record_read(rh_pg_t pg, rh_pg_record_t *rec)
{
    static const char *const states[] = { "pending", "placed", "removed" };
    char key[32], strategy[16], state[16], *text = NULL;
    void *value = NULL;
    size_t vlen = 0;
    const char *p;
    rh_status_t status;
    int klen, used = 0;

    if (rec == NULL || pg == 0) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_pg_record_read needs "
                            "a group and a record");
    }
    memset(rec, 0, sizeof(*rec));
    klen = snprintf(key, sizeof(key), "pg/%llx", (unsigned long long)pg);
    status = rh_gcs_get(RH_GCS_T_PGROUP, key, (size_t)klen, &value, &vlen,
                        NULL);
    if (status == RH_ERR_NOT_FOUND) {
        return rh_error_set(status, "the GCS holds no record of placement "
                            "group %llx", (unsigned long long)pg);
    }
    if (status != RH_OK) {
        return status;
    }
    text = malloc(vlen + 1);
    if (text == NULL) {
        free(value);
        return rh_error_set(RH_ERR_NO_MEMORY, "placement group record");
    }
    memcpy(text, value, vlen);
    text[vlen] = '\0';
    free(value);
    rec->state = -1;
    rec->strategy = -1;
    if (sscanf(text, "owner %d strategy %15s state %15s bundles %d%n",
               &rec->owner, strategy, state, &rec->n, &used) != 4 ||
        rec->n < 1 || rec->n > RH_PG_MAX_BUNDLES) {
        goto err_malformed;
    }
    for (int i = 0; i < 3; i++) {
        if (strcmp(state, states[i]) == 0) {
            rec->state = i;
        }
    }
    for (int i = 0; i <= RH_PG_STRICT_SPREAD; i++) {
        if (strcmp(strategy, rh_pg_strategy_names[i]) == 0) {
            rec->strategy = i;
        }
    }
    if (rec->state < 0 || rec->strategy < 0) {
        goto err_malformed;
    }
    if (rec->state == RH_PG_REC_PLACED) {
        rec->ranks = malloc((size_t)rec->n * sizeof(int));
        rec->nodes = malloc((size_t)rec->n * sizeof(int));
        rec->cpus = malloc((size_t)rec->n * sizeof(int));
        if (rec->ranks == NULL || rec->nodes == NULL || rec->cpus == NULL) {
            rh_pg_record_free(rec);
            free(text);
            return rh_error_set(RH_ERR_NO_MEMORY, "placement group record");
        }
        p = text + used;
        if (rh_pg_parse_ints(&p, "ranks", rec->n, 0, rh_size(),
                             rec->ranks) != 0 ||
            rh_pg_parse_ints(&p, "cpus", rec->n, 0, INT32_MAX,
                             rec->cpus) != 0) {
            goto err_malformed;
        }
        for (int b = 0; b < rec->n; b++) {
            rec->nodes[b] = rh_core_node_of(rec->ranks[b]);
        }
    }
    free(text);
    return RH_OK;

err_malformed:
    rh_pg_record_free(rec);
    free(text);
    return rh_error_set(RH_ERR_MALFORMED, "the GCS's record of placement "
                        "group %llx cannot be read", (unsigned long long)pg);
}

rh_status_t rh_pg_setup(void)
{
    rh_status_t status;

    status = rh_am_register(RH_AM_ID_PG_CREATE, sizeof(rh_pg_hdr_t),
                            sizeof(rh_pg_hdr_t), rh_pg_on_create, NULL);
    if (status == RH_OK) {
        status = rh_am_register(RH_AM_ID_PG_RESERVE, sizeof(rh_pg_hdr_t),
                                sizeof(rh_pg_hdr_t), rh_pg_on_reserve, NULL);
    }
    if (status == RH_OK) {
        status = rh_am_register(RH_AM_ID_PG_STATE, sizeof(rh_pg_hdr_t),
                                sizeof(rh_pg_hdr_t), rh_pg_on_state, NULL);
    }
    if (status == RH_OK) {
        status = rh_am_register(RH_AM_ID_PG_REMOVE, sizeof(rh_pg_hdr_t),
                                sizeof(rh_pg_hdr_t), rh_pg_on_remove, NULL);
    }
    return status;
}

void rh_pg_teardown(void)
{
    pthread_mutex_lock(&rh_pg_lock);
    while (rh_pgs != NULL) {
        rh_pg_obj_t *g = rh_pgs;

        rh_pgs = g->next;
        for (size_t i = 0; i < g->nheld; i++) {
            rh_task_fail_all(g->held[i], "the rank ended before its "
                             "placement group was placed");
            rh_task_free(g->held[i]);
        }
        free(g->held);
        free(g->ranks);
        free(g->cpus);
        free(g);
    }
    while (rh_gs_pgs != NULL) {
        rh_gs_pg_t *g = rh_gs_pgs;

        rh_gs_pgs = g->next;
        rh_gcs_record_drop(g->rec);
        free(g->bundles);
        free(g->ranks);
        free(g);
    }
    rh_pg_counter = 0;
    pthread_mutex_unlock(&rh_pg_lock);
}
