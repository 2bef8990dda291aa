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
    RH_PGS_REMOVED = 1,  /* state: the group is gone */
    RH_PGS_ASK     = 2,  /* state, to a group's owner: was it made? */
    RH_PGS_UNMADE  = 3,  /* the owner's answer: never made (n 0), removed
                          * (n 1); the global scheduler's: the owner died
                          * and it holds no such group (n 2) */
    RH_PGS_ASK_GS  = 4   /* state, to the global scheduler: the group's
                          * owner died before answering RH_PGS_ASK */
};

/* rh_pg_obj_t.never: why a group this rank never saw placed is gone. */
enum { RH_PG_NEVER_MADE = 1, RH_PG_OWNER_DIED = 2, RH_PG_GS_DIED = 3 };

/* What rank 0's progress thread does for its own calls (rh_pg_local_post). */
enum { RH_PG_OP_CREATE = 0, RH_PG_OP_REMOVE = 1, RH_PG_OP_ASK = 2 };

#define RH_PG_FAIL (-5)  /* rh_pg_where: the task cannot run in the group */

/* What every failure for want of the global scheduler says. */
#define RH_PG_GS_DIED_SAYS "the global scheduler, rank 0, died"

/* Something waiting for a group's placement to change (a lost task's
 * rerun whose bundle is being placed again). */
typedef struct rh_pg_waiter rh_pg_waiter_t;
struct rh_pg_waiter {
    rh_pg_waiter_t *next;
    void          (*fn)(uint64_t key);
    uint64_t        key;
};

/* Tells each waiter (taken off its group, no lock held) and frees it. */
static void rh_pg_tell_waiters(rh_pg_waiter_t *waiters)
{
    while (waiters != NULL) {
        rh_pg_waiter_t *w = waiters;

        waiters = w->next;
        w->fn(w->key);
        free(w);
    }
}

/* The owner's view of a group. */
typedef struct rh_pg_obj rh_pg_obj_t;
struct rh_pg_obj {
    rh_pg_obj_t  *next;
    uint64_t      id;
    int           n;
    _Atomic int   state;
    /* READY: where each bundle is. A rank that died: the global scheduler
     * is placing the bundle again; -1: it found no room (lost[b] is the
     * rank it was lost with). */
    int          *ranks;
    int          *cpus;           /* READY: the CPUs each bundle holds */
    int          *lost;           /* READY: see ranks */
    int           counted;        /* cpus are in placement's view */
    int           never;          /* REMOVED: RH_PG_NEVER_MADE,
                                   * RH_PG_OWNER_DIED or RH_PG_GS_DIED */
    rh_task_t   **held;           /* tasks waiting for a place */
    size_t        nheld, cap;
    rh_pg_waiter_t *waiters;      /* told when the placement changes */
};

/* Takes the tasks g holds back and its waiters off it (rh_pg_lock held):
 * the caller sends or fails them, and tells the waiters, after the lock. */
static rh_pg_waiter_t *rh_pg_take_pending(rh_pg_obj_t *g, rh_task_t ***held,
                                          size_t *nheld)
{
    rh_pg_waiter_t *waiters = g->waiters;

    *held = g->held;
    *nheld = g->nheld;
    g->held = NULL;
    g->nheld = g->cap = 0;
    g->waiters = NULL;
    return waiters;
}

/* A bundle's reservation at the global scheduler. */
enum { RH_GS_HELD = 0, RH_GS_TO_ASK = 1, RH_GS_ASKED = 2 };

/* The global scheduler's view of a group. */
typedef struct rh_gs_pg rh_gs_pg_t;
struct rh_gs_pg {
    rh_gs_pg_t   *next;
    uint64_t      id;
    int           owner, n, strategy, placed;
    rh_res_req_t *bundles;
    int          *ranks;          /* placed: each bundle's, -1: no room */
    int          *lost_with;      /* a bundle with no room: its dead rank */
    uint8_t      *asking;         /* RH_GS_*: each bundle's reservation */
    rh_gcs_record_t *rec;         /* its record in the GCS; NULL: none */
};

/* Rank 0: an RH_PGS_ASK_GS about an id it does not hold, from a rank
 * that saw the owner dead before rank 0 did; answered once rank 0 does. */
typedef struct rh_gs_ask rh_gs_ask_t;
struct rh_gs_ask {
    rh_gs_ask_t *next;
    uint64_t     id;
    int          asker;
};

static pthread_mutex_t rh_pg_lock = PTHREAD_MUTEX_INITIALIZER;
static rh_pg_obj_t *rh_pgs;           /* ours */
static rh_gs_pg_t *rh_gs_pgs;         /* rank 0: every group */
static rh_gs_ask_t *rh_gs_asks;       /* rank 0, progress thread only */
static uint64_t rh_pg_counter;

static const char *const rh_pg_strategy_names[] = {
    "PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"
};

static void rh_pg_prefix(uint64_t id, int bundle, char *buf, size_t len)
{
    snprintf(buf, len, "pg%llu_%d_", (unsigned long long)id, bundle);
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
            rh_warn("placement group %llu, bundle %d: %s",
                    (unsigned long long)id, bundle, rh_last_error());
        }
    } else {
        rh_resources_bundle_remove(prefix, req, rh_task_drop_unoffered);
    }
}

/* ---- the global scheduler ---------------------------------------------------- */

static void rh_gs_pg_send_state(rh_gs_pg_t *g);
static rh_status_t rh_pg_local_post(int what, uint64_t id, int n,
                                    int strategy, const rh_res_req_t *reqs);

/* Writes g's record (pgroup.h: rh_pg_record_read) through the GCS: when it
 * is created (pending), placed (again) and removed. Never blocks; the global
 * scheduler keeps its own books, the record is for readers elsewhere. */
static void rh_gs_pg_record(rh_gs_pg_t *g, int state)
{
    static const char *const names[] = { "pending", "placed", "removed",
                                         "rescheduling" };
    size_t cap = 128 + (size_t)g->n * 3 * 12, k;
    char *text, key[32];
    int klen;

    if (g->rec == NULL) {
        klen = snprintf(key, sizeof(key), "pg/%llx",
                        (unsigned long long)g->id);
        g->rec = rh_gcs_record_new(RH_GCS_T_PGROUP, key, (size_t)klen);
        if (g->rec == NULL) {
            rh_warn("placement group %llu: no record in the GCS: %s",
                    (unsigned long long)g->id, rh_last_error());
            return;
        }
    }
    text = malloc(cap);
    if (text == NULL) {
        rh_warn("placement group %llu: no memory for its GCS record",
                (unsigned long long)g->id);
        return;
    }
    k = (size_t)snprintf(text, cap, "owner %d strategy %s state %s "
                         "bundles %d", g->owner,
                         rh_pg_strategy_names[g->strategy], names[state],
                         g->n);
    if (state == RH_PG_REC_PLACED || state == RH_PG_REC_RESCHEDULING) {
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
        rh_warn("placement group %llu: %s", (unsigned long long)g->id,
                rh_last_error());
    }
    free(text);
}

/* Bundles of g that have no place (their rank died, no room since). */
static int rh_gs_pg_nlost(const rh_gs_pg_t *g)
{
    int n = 0;

    for (int b = 0; g->placed && b < g->n; b++) {
        n += g->ranks[b] < 0;
    }
    return n;
}

/* Marks every bundle of g just placed (ranks set, lost_with still naming
 * the rank it was lost with, or -1 for a new group) to be asked for. */
static void rh_gs_pg_mark_placed(rh_gs_pg_t *g)
{
    for (int b = 0; b < g->n; b++) {
        if (g->lost_with[b] >= 0 || g->asking[b] == RH_GS_TO_ASK) {
            g->lost_with[b] = -1;
            g->asking[b] = RH_GS_TO_ASK;
        }
    }
}

/* Asks the rank of each bundle to ask for to hold it (rank 0 does it at
 * once), and tells every rank where the bundles are once none is left
 * unanswered. On the progress thread, as every change of the global
 * scheduler's groups. */
static void rh_gs_pg_reserve(rh_gs_pg_t *g)
{
    int unanswered = 0;

    rh_gs_pg_record(g, rh_gs_pg_nlost(g) != 0 ? RH_PG_REC_RESCHEDULING :
                    RH_PG_REC_PLACED);
    for (int b = 0; b < g->n; b++) {
        rh_pg_hdr_t h = { g->id, b, RH_PGM_REQUEST };

        if (g->asking[b] != RH_GS_TO_ASK) {
            unanswered += g->asking[b] == RH_GS_ASKED;
            continue;
        }
        g->asking[b] = RH_GS_HELD;
        if (g->ranks[b] == RH_GS_RANK) {
            rh_pg_bundle_apply(g->id, b, &g->bundles[b], 1);
        } else if (rh_am_send((uint32_t)g->ranks[b], RH_AM_ID_PG_RESERVE, &h,
                              sizeof(h), &g->bundles[b],
                              sizeof(g->bundles[b]), NULL, NULL) == RH_OK) {
            g->asking[b] = RH_GS_ASKED;
            unanswered++;
        }
        /* else its rank is gone: its death places the bundle again */
    }
    if (unanswered == 0) {
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
        rh_warn("placement group %llu of rank %d is pending: STRICT_SPREAD "
                "of %d bundles needs %d nodes and the job has %d",
                (unsigned long long)g->id, g->owner, g->n, g->n,
                rh_num_nodes());
    } else {
        rh_warn("placement group %llu of rank %d is pending: its %d "
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
            } else if (rh_gs_pg_nlost(g) != 0 &&
                       rh_place_gs_hold_bundles(g->bundles, g->n,
                                                (rh_pg_strategy_t)g->strategy,
                                                g->ranks)) {
                hit = g;   /* bundles lost with their rank fit again */
            }
        }
        if (hit != NULL) {
            rh_gs_pg_mark_placed(hit);
        }
        pthread_mutex_unlock(&rh_pg_lock);
        if (hit == NULL) {
            return;
        }
        rh_gs_pg_reserve(hit);
    }
}

/* rank died (global scheduler): the bundles it held are placed again where
 * they fit now, by their group's strategy; those that fit nowhere stay
 * lost (tasks into them fail, saying so) until room frees: a group goes,
 * an actor that held CPUs ends (rh_pg_gs_room_freed), the members
 * change. */
static void rh_gs_pg_on_peer_failure(int rank)
{
    for (rh_gs_pg_t *g = rh_gs_pgs; g != NULL; g = g->next) {
        int hit = 0, again;

        for (int b = 0; g->placed && b < g->n; b++) {
            if (g->ranks[b] == rank) {
                rh_place_gs_release_group(&g->bundles[b], 1, &g->ranks[b]);
                g->ranks[b] = -1;
                g->lost_with[b] = rank;
                g->asking[b] = RH_GS_HELD;   /* its answer never comes */
                hit = 1;
            }
        }
        if (!hit) {
            continue;
        }
        pthread_mutex_lock(&rh_pg_lock);
        again = rh_place_gs_hold_bundles(g->bundles, g->n,
                                         (rh_pg_strategy_t)g->strategy,
                                         g->ranks);
        for (int b = 0; again && b < g->n; b++) {
            if (g->lost_with[b] >= 0) {
                rh_info("placement group %llu: bundle %d, lost with rank %d, "
                        "goes to rank %d", (unsigned long long)g->id, b,
                        g->lost_with[b], g->ranks[b]);
            }
        }
        if (again) {
            rh_gs_pg_mark_placed(g);
        }
        pthread_mutex_unlock(&rh_pg_lock);
        if (!again) {
            rh_warn("placement group %llu of rank %d lost a bundle with rank "
                    "%d and no node has room to place it again (%s): tasks "
                    "into it fail until room frees (a group removed, an "
                    "actor holding CPUs ended)",
                    (unsigned long long)g->id, g->owner, rank,
                    rh_pg_strategy_names[g->strategy]);
        }
        rh_gs_pg_reserve(g);
    }
}

static void rh_pg_state_apply(uint64_t id, int n, const int32_t *ranks,
                              const int32_t *cpus, const int32_t *lost);

/* Tells every rank (only rank only, when only >= 0) where g's bundles
 * are (n ranks, -1 for one lost with its rank and not placed again; the
 * CPUs each holds; the rank each lost one was lost with, else -1), or that
 * g is gone (g NULL): any rank may submit tasks into a group it was
 * handed, and places other tasks where CPUs are not reserved. */
static void rh_gs_pg_tell(uint64_t id, const rh_gs_pg_t *g, int only)
{
    int n = g != NULL ? g->n : 0;
    rh_pg_hdr_t h = { id, n, g != NULL ? RH_PGS_PLACED : RH_PGS_REMOVED };
    int32_t *state = NULL;

    if (g != NULL) {
        state = malloc(3 * (size_t)n * sizeof(*state));
        if (state == NULL) {
            return;
        }
        for (int b = 0; b < n; b++) {
            state[b] = g->ranks[b];
            state[n + b] = g->bundles[b].cpus;
            state[2 * n + b] = g->ranks[b] < 0 ? g->lost_with[b] : -1;
        }
    }
    for (int r = 0; r < rh_size(); r++) {
        if (only >= 0 && r != only) {
            continue;
        }
        if (r == rh_rank()) {
            rh_pg_state_apply(id, n, state, state != NULL ? state + n : NULL,
                              state != NULL ? state + 2 * n : NULL);
        } else if (rh_rank_alive(r)) {
            (void)rh_am_send((uint32_t)r, RH_AM_ID_PG_STATE, &h, sizeof(h),
                             state, 3 * (size_t)n * sizeof(*state), NULL,
                             NULL);
        }
    }
    free(state);
}

static void rh_gs_pg_broadcast(uint64_t id, const rh_gs_pg_t *g)
{
    rh_gs_pg_tell(id, g, -1);
}

static void rh_gs_pg_send_state(rh_gs_pg_t *g)
{
    rh_gs_pg_broadcast(g->id, g);
}

static void rh_gs_pg_create(int owner, uint64_t id, int n, int strategy,
                            const rh_res_req_t *bundles)
{
    rh_gs_pg_t *g = calloc(1, sizeof(*g));

    if (g == NULL || (g->bundles = malloc((size_t)n * sizeof(*bundles))) ==
        NULL || (g->ranks = malloc(2 * (size_t)n * sizeof(int))) == NULL ||
        (g->asking = calloc((size_t)n, 1)) == NULL) {
        if (g != NULL) {
            free(g->bundles);
            free(g->ranks);
        }
        free(g);
        rh_warn("out of memory placing a group of rank %d", owner);
        return;
    }
    g->lost_with = g->ranks + n;
    for (int b = 0; b < n; b++) {
        g->lost_with[b] = -1;
        g->asking[b] = RH_GS_TO_ASK;
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
        rh_gs_pg_reserve(g);
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
    rh_gs_pg_broadcast(id, NULL);
    rh_gs_pg_record(g, RH_PG_REC_REMOVED);
    rh_gcs_record_drop(g->rec);   /* still written, then freed */
    free(g->bundles);
    free(g->ranks);
    free(g->asking);
    free(g);
    /* What waited for room may fit now. */
    rh_pg_gs_room_freed();
}

void rh_pg_gs_room_freed(void)
{
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
        if (g != NULL && g->placed && h.n >= 0 && h.n < g->n &&
            g->asking[h.n] == RH_GS_ASKED && g->ranks[h.n] == (int)msg->src) {
            int unanswered = 0;

            g->asking[h.n] = RH_GS_HELD;
            for (int b = 0; b < g->n; b++) {
                unanswered += g->asking[b] != RH_GS_HELD;
            }
            done = unanswered == 0 ? g : NULL;
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

/* Where a task of bundle b of group g (id) goes now, under rh_pg_lock: a
 * live rank; RH_PG_WAIT while the group is not placed, or while the
 * bundle's rank died and the global scheduler has not said where it goes
 * instead; RH_PG_FAIL, with *code and why, when it cannot run (the group
 * was removed, it has no such bundle, or its bundle fits nowhere now). */
static int rh_pg_where(const rh_pg_obj_t *g, uint64_t id, int b,
                       rh_status_t *code, char *why, size_t len)
{
    int state = g != NULL ? atomic_load(&g->state) : RH_PG_REMOVED, r;
    int alive;

    *code = RH_ERR_INVALID_PARAM;
    if (state == RH_PG_REMOVED && g != NULL && g->never == RH_PG_GS_DIED) {
        *code = RH_ERR_PEER_FAILED;
        snprintf(why, len, "placement group %llu of rank %llu is not placed "
                 "and never will be: " RH_PG_GS_DIED_SAYS ", and only it "
                 "places groups", (unsigned long long)id,
                 (unsigned long long)(id >> 32));
        return RH_PG_FAIL;
    }
    if (state == RH_PG_REMOVED && g != NULL &&
        g->never == RH_PG_OWNER_DIED) {
        snprintf(why, len, "placement group %llu was never placed: its "
                 "owner, rank %llu, died and the global scheduler holds no "
                 "such group (never made, or removed)",
                 (unsigned long long)id, (unsigned long long)(id >> 32));
        return RH_PG_FAIL;
    }
    if (state == RH_PG_REMOVED && g != NULL && g->never) {
        snprintf(why, len, "placement group %llu was never made: rank %llu "
                 "made no group of that number", (unsigned long long)id,
                 (unsigned long long)(id >> 32));
        return RH_PG_FAIL;
    }
    if (state == RH_PG_REMOVED) {
        snprintf(why, len, "placement group %llu was removed",
                 (unsigned long long)id);
        return RH_PG_FAIL;
    }
    if (state == RH_PG_PENDING) {
        return RH_PG_WAIT;
    }
    if (b < 0 || b >= g->n) {
        snprintf(why, len, "placement group %llu has bundles 0 to %d, not "
                 "%d", (unsigned long long)id, g->n - 1, b);
        return RH_PG_FAIL;
    }
    r = g->ranks[b];
    alive = r >= 0 && rh_rank_alive(r);
    if (!alive && !rh_rank_alive(RH_GS_RANK)) {
        *code = RH_ERR_PEER_FAILED;
        snprintf(why, len, "bundle %d of placement group %llu was lost with "
                 "rank %d, and " RH_PG_GS_DIED_SAYS ": no rank places it "
                 "again", b, (unsigned long long)id, r < 0 ? g->lost[b] : r);
        return RH_PG_FAIL;
    }
    if (r < 0) {
        *code = RH_ERR_PEER_FAILED;
        snprintf(why, len, "bundle %d of placement group %llu was lost with "
                 "rank %d and no node has room to place it again", b,
                 (unsigned long long)id, g->lost[b]);
        return RH_PG_FAIL;
    }
    return alive ? r : RH_PG_WAIT;
}

/* After a group's state changed under the lock: the tasks held for it go
 * on (placed, or failed by rh_pg_hold with the group's reason) and its
 * waiters are told. */
static void rh_pg_settled(rh_task_t **held, size_t nheld,
                          rh_pg_waiter_t *waiters)
{
    for (size_t i = 0; i < nheld; i++) {
        rh_pg_hold(held[i]);
    }
    free(held);
    rh_pg_tell_waiters(waiters);
    rh_future_notify();   /* rh_pg_wait */
}

/* Every rank learns where a group's bundles are (n ranks), or that it is
 * gone (ranks NULL); tasks waiting for it go, wait on, or fail, and what
 * waits for a change is told. */
static void rh_pg_state_apply(uint64_t id, int n, const int32_t *ranks,
                              const int32_t *cpus, const int32_t *lost)
{
    rh_pg_obj_t *g;
    rh_task_t **held = NULL;
    rh_pg_waiter_t *waiters = NULL;
    size_t nheld = 0;

    pthread_mutex_lock(&rh_pg_lock);
    g = rh_pg_find(id);
    if (g == NULL && ranks != NULL) {
        g = rh_pg_shadow(id);
    }
    if (g != NULL && ranks != NULL &&
        atomic_load(&g->state) != RH_PG_REMOVED &&
        (g->n == 0 || g->n == n)) {
        if (g->ranks == NULL) {
            g->ranks = calloc((size_t)n, sizeof(int));
        }
        if (g->cpus == NULL) {
            g->cpus = calloc((size_t)n, sizeof(int));
        }
        if (g->lost == NULL) {
            g->lost = calloc((size_t)n, sizeof(int));
        }
        if (g->ranks != NULL && g->cpus != NULL && g->lost != NULL) {
            /* A bundle placed again moves its CPUs in every rank's view. */
            for (int b = 0; g->counted && b < n; b++) {
                if (g->ranks[b] >= 0) {
                    rh_place_bundle_cpus(g->ranks[b], -g->cpus[b]);
                }
            }
            g->n = n;
            for (int b = 0; b < n; b++) {
                g->ranks[b] = ranks[b];
                g->cpus[b] = cpus[b];
                g->lost[b] = lost[b];
                if (ranks[b] >= 0) {
                    rh_place_bundle_cpus(ranks[b], cpus[b]);
                }
            }
            g->counted = 1;
            atomic_store(&g->state, RH_PG_READY);
        } else if (atomic_load(&g->state) == RH_PG_PENDING) {
            atomic_store(&g->state, RH_PG_REMOVED);   /* no memory */
        }
    } else if (g != NULL && ranks == NULL) {
        /* the owner marks its group removed before the news comes back */
        for (int b = 0; g->counted && b < g->n; b++) {
            if (g->ranks[b] >= 0) {
                rh_place_bundle_cpus(g->ranks[b], -g->cpus[b]);
            }
        }
        g->counted = 0;
        atomic_store(&g->state, RH_PG_REMOVED);
    }
    if (g != NULL) {
        waiters = rh_pg_take_pending(g, &held, &nheld);
    }
    pthread_mutex_unlock(&rh_pg_lock);
    rh_pg_settled(held, nheld, waiters);
}

/* At a group's owner: a rank asks about one of our ids it was handed and
 * knows nothing of. Only the owner knows for sure that it never made an id
 * (the global scheduler may not have heard of a group being made yet); a
 * group that lives is told by the global scheduler's news. */
static void rh_pg_on_ask(uint64_t id, int asker)
{
    rh_pg_obj_t *g;
    rh_pg_hdr_t h = { id, 0, RH_PGS_UNMADE };

    pthread_mutex_lock(&rh_pg_lock);
    g = rh_pg_find(id);
    if (g != NULL) {
        h.n = atomic_load(&g->state) == RH_PG_REMOVED ? 1 : -1;
    }
    pthread_mutex_unlock(&rh_pg_lock);
    if (h.n >= 0) {
        (void)rh_am_send((uint32_t)asker, RH_AM_ID_PG_STATE, &h, sizeof(h),
                         NULL, 0, NULL, NULL);
    }
}

/* The owner's answer: a group we wait for was never made, or is gone; or
 * the global scheduler's: its owner died and it holds no such group. The
 * tasks held for it fail. */
static void rh_pg_on_unmade(uint64_t id, int never)
{
    rh_pg_obj_t *g;
    rh_task_t **held = NULL;
    rh_pg_waiter_t *waiters = NULL;
    size_t nheld = 0;

    pthread_mutex_lock(&rh_pg_lock);
    g = rh_pg_find(id);
    if (g != NULL && atomic_load(&g->state) == RH_PG_PENDING) {
        g->never = never;
        atomic_store(&g->state, RH_PG_REMOVED);
        waiters = rh_pg_take_pending(g, &held, &nheld);
    }
    pthread_mutex_unlock(&rh_pg_lock);
    rh_pg_settled(held, nheld, waiters);
}

/* At the global scheduler, on its progress thread: asker waits for group
 * id, whose owner died before answering. A group placed here is told to
 * asker; one pending here is a pending group (its placement comes as for
 * any); one this rank does not hold was never made or was removed, which
 * is said once this rank sees the owner dead too (until then the ask is
 * kept: rh_gs_pg_on_owner_failure). */
static void rh_gs_pg_on_ask(uint64_t id, int asker)
{
    int owner = (int)(id >> 32), held = 0, ready = 0;
    rh_pg_hdr_t h = { id, RH_PG_OWNER_DIED, RH_PGS_UNMADE };
    rh_gs_pg_t *g;

    pthread_mutex_lock(&rh_pg_lock);
    for (g = rh_gs_pgs; g != NULL && g->id != id; g = g->next) {
    }
    if (g != NULL) {
        held = 1;
        ready = g->placed;
        for (int b = 0; ready && b < g->n; b++) {
            ready = g->asking[b] != RH_GS_ASKED;
        }
    }
    pthread_mutex_unlock(&rh_pg_lock);
    if (held) {
        /* Groups change on this thread only: g stays valid. Not ready:
         * its broadcast comes when it is. */
        if (ready) {
            rh_gs_pg_tell(id, g, asker);
        }
        return;
    }
    if (rh_rank_alive(owner)) {
        rh_gs_ask_t *a = malloc(sizeof(*a));

        if (a != NULL) {
            a->id = id;
            a->asker = asker;
            a->next = rh_gs_asks;
            rh_gs_asks = a;
            return;
        }
        rh_warn("placement group %llu: no memory to keep rank %d's ask",
                (unsigned long long)id, asker);
    }
    if (asker == rh_rank()) {
        rh_pg_on_unmade(id, RH_PG_OWNER_DIED);
    } else {
        (void)rh_am_send((uint32_t)asker, RH_AM_ID_PG_STATE, &h, sizeof(h),
                         NULL, 0, NULL, NULL);
    }
}

/* The global scheduler sees owner dead: the asks about its ids kept until
 * now are answered. */
static void rh_gs_pg_on_owner_failure(int owner)
{
    rh_gs_ask_t *mine = NULL;

    for (rh_gs_ask_t **pp = &rh_gs_asks; *pp != NULL;) {
        rh_gs_ask_t *a = *pp;

        if ((int)(a->id >> 32) == owner) {
            *pp = a->next;
            a->next = mine;
            mine = a;
        } else {
            pp = &a->next;
        }
    }
    while (mine != NULL) {
        rh_gs_ask_t *a = mine;

        mine = a->next;
        if (rh_rank_alive(a->asker)) {
            rh_gs_pg_on_ask(a->id, a->asker);
        }
        free(a);
    }
}

/* Asks the global scheduler about id, whose owner is dead (rank 0 asks
 * itself, on its progress thread). */
static rh_status_t rh_pg_ask_gs(uint64_t id, int on_progress)
{
    rh_pg_hdr_t h = { id, 0, RH_PGS_ASK_GS };

    if (rh_rank() != RH_GS_RANK) {
        return rh_am_send(RH_GS_RANK, RH_AM_ID_PG_STATE, &h, sizeof(h), NULL,
                          0, NULL, NULL);
    }
    if (on_progress) {
        rh_gs_pg_on_ask(id, RH_GS_RANK);
        return RH_OK;
    }
    return rh_pg_local_post(RH_PG_OP_ASK, id, 0, 0, NULL);
}

static rh_status_t rh_pg_on_state(void *arg, rh_am_msg_t *msg)
{
    rh_pg_hdr_t h;

    (void)arg;
    memcpy(&h, msg->hdr, sizeof(h));
    if (h.kind == RH_PGS_ASK && (h.id >> 32) == (uint64_t)rh_rank()) {
        rh_pg_on_ask(h.id, (int)msg->src);
        return RH_OK;
    }
    if (h.kind == RH_PGS_UNMADE && (h.id >> 32) == msg->src &&
        (h.n == 0 || h.n == 1)) {
        rh_pg_on_unmade(h.id, h.n == 0 ? RH_PG_NEVER_MADE : 0);
        return RH_OK;
    }
    if (h.kind == RH_PGS_UNMADE && msg->src == RH_GS_RANK &&
        h.n == RH_PG_OWNER_DIED) {
        rh_pg_on_unmade(h.id, RH_PG_OWNER_DIED);
        return RH_OK;
    }
    if (h.kind == RH_PGS_ASK_GS && rh_rank() == RH_GS_RANK &&
        (h.id >> 32) < (uint64_t)rh_size() && (uint32_t)h.id != 0) {
        rh_gs_pg_on_ask(h.id, (int)msg->src);
        return RH_OK;
    }
    if (msg->src != RH_GS_RANK || msg->rndv_desc != NULL) {
        return RH_ERR_MALFORMED;
    }
    if (h.kind == RH_PGS_REMOVED && msg->data_len == 0) {
        rh_pg_state_apply(h.id, 0, NULL, NULL, NULL);
        return RH_OK;
    }
    if (h.kind != RH_PGS_PLACED || h.n <= 0 || h.n > RH_PG_MAX_BUNDLES ||
        msg->data_len != 3 * (size_t)h.n * sizeof(int32_t)) {
        return RH_ERR_MALFORMED;
    }
    {
        int32_t *state = malloc(msg->data_len);

        if (state == NULL) {
            return RH_OK;
        }
        memcpy(state, msg->data, msg->data_len);
        /* ranks (-1: lost, with the rank it was lost with), CPUs */
        for (int b = 0; b < h.n; b++) {
            int32_t r = state[b], lost = state[2 * h.n + b];

            if (r < -1 || r >= rh_size() || state[h.n + b] < 0 ||
                lost < -1 || lost >= rh_size() || (r < 0) != (lost >= 0)) {
                free(state);
                return RH_ERR_MALFORMED;
            }
        }
        rh_pg_state_apply(h.id, h.n, state, state + h.n, state + 2 * h.n);
        free(state);
    }
    return RH_OK;
}

/* Rank 0's own groups go through its progress thread too, where every
 * change of the global scheduler's groups happens. */
typedef struct rh_pg_local_op {
    rh_tp_op_t    op;
    int           what, n, strategy;     /* what: RH_PG_OP_* */
    uint64_t      id;
    rh_res_req_t  bundles[];
} rh_pg_local_op_t;

static void rh_pg_local_run(rh_tp_op_t *op)
{
    rh_pg_local_op_t *o = (rh_pg_local_op_t *)op;

    if (o->what == RH_PG_OP_ASK) {
        rh_gs_pg_on_ask(o->id, RH_GS_RANK);
    } else if (o->what == RH_PG_OP_REMOVE) {
        rh_gs_pg_remove(o->id);
    } else {
        rh_gs_pg_create(RH_GS_RANK, o->id, o->n, o->strategy, o->bundles);
    }
    free(o);
}

static rh_status_t rh_pg_local_post(int what, uint64_t id, int n,
                                    int strategy, const rh_res_req_t *reqs)
{
    rh_pg_local_op_t *o = malloc(sizeof(*o) + (size_t)n * sizeof(*reqs));

    if (o == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "placement group");
    }
    o->op.run = rh_pg_local_run;
    o->what = what;
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

/* A call that needs the global scheduler, which died: no rank places,
 * moves or frees a group's bundles any more. */
static rh_status_t rh_pg_gs_died(const char *call)
{
    return rh_error_set(RH_ERR_PEER_FAILED, "%s: " RH_PG_GS_DIED_SAYS ", and "
                        "only it places groups", call);
}

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
    if (!rh_rank_alive(RH_GS_RANK)) {
        /* Under the lock: a group linked after this look is one the
         * scheduler's death (rh_pg_on_peer_failure) finds and fails. */
        pthread_mutex_unlock(&rh_pg_lock);
        free(g->ranks);
        free(g);
        free(reqs);
        return rh_pg_gs_died("rh_pg_create");
    }
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
        status = rh_pg_local_post(RH_PG_OP_CREATE, g->id, n, (int)strategy,
                                  reqs);
    } else {
        status = rh_am_send(RH_GS_RANK, RH_AM_ID_PG_CREATE, &h, sizeof(h),
                            reqs, (size_t)n * sizeof(*reqs), NULL, NULL);
    }
    free(reqs);
    if (status != RH_OK && !rh_rank_alive(RH_GS_RANK)) {
        return rh_pg_gs_died("rh_pg_create");
    }
    return status;
}

static rh_status_t rh_pg_get(rh_pg_t pg, rh_pg_obj_t **out)
{
    rh_pg_obj_t *g;

    if (!rh_core_initialized()) {
        return rh_error_set(RH_ERR_NOT_INITIALIZED, "call rh_init first");
    }
    if ((uint32_t)pg == 0 || (pg >> 32) >= (uint64_t)rh_size()) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "%llu is not a placement "
                            "group of this job", (unsigned long long)pg);
    }
    pthread_mutex_lock(&rh_pg_lock);
    g = rh_pg_find(pg);
    if (g == NULL && (pg >> 32) == (uint64_t)rh_rank()) {
        /* This rank made every group of its own: a task into one it never
         * made would wait for a placement that never comes. */
        pthread_mutex_unlock(&rh_pg_lock);
        return rh_error_set(RH_ERR_INVALID_PARAM, "%llu is not a placement "
                            "group of this job", (unsigned long long)pg);
    }
    if (g == NULL && !rh_rank_alive(RH_GS_RANK) &&
        (g = rh_pg_shadow(pg)) != NULL) {
        /* The global scheduler told every rank of each group it placed
         * before it died, and no other places one: this one never will
         * be (rh_pg_on_peer_failure did the same to those we waited for). */
        g->never = RH_PG_GS_DIED;
        atomic_store(&g->state, RH_PG_REMOVED);
        pthread_mutex_unlock(&rh_pg_lock);
    } else if (g == NULL && (g = rh_pg_shadow(pg)) != NULL) {
        /* Another rank's: placed when the global scheduler tells us. Its
         * owner says if it never made it or removed it already (the news
         * of that may have come before we knew the id); a dead owner never
         * answers: the global scheduler does (rh_pg_on_peer_failure asks
         * it for an owner that dies from now on). */
        int owner = (int)(pg >> 32);
        rh_pg_hdr_t h = { pg, 0, RH_PGS_ASK };

        pthread_mutex_unlock(&rh_pg_lock);
        if (!rh_rank_alive(owner) ||
            rh_am_send((uint32_t)owner, RH_AM_ID_PG_STATE, &h, sizeof(h),
                       NULL, 0, NULL, NULL) != RH_OK) {
            (void)rh_pg_ask_gs(pg, 0);
        }
    } else {
        pthread_mutex_unlock(&rh_pg_lock);
    }
    if (g == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "placement group");
    }
    if (atomic_load(&g->state) == RH_PG_REMOVED) {
        char why[256];
        rh_status_t code;

        pthread_mutex_lock(&rh_pg_lock);
        (void)rh_pg_where(g, pg, 0, &code, why, sizeof(why));
        pthread_mutex_unlock(&rh_pg_lock);
        return rh_error_set(code, "%s", why);
    }
    *out = g;
    return RH_OK;
}

/* Whether g has an answer for rh_pg_wait: placed with every bundle on a
 * live rank or lost for good, or removed; not while the global scheduler
 * places it, or places again a bundle whose rank died (once it is dead
 * itself, such a bundle is lost for good). */
static int rh_pg_ready_cond(void *arg)
{
    rh_pg_obj_t *g = arg;
    int ready = 1;

    pthread_mutex_lock(&rh_pg_lock);
    if (atomic_load(&g->state) == RH_PG_PENDING) {
        ready = 0;
    }
    for (int b = 0; ready && atomic_load(&g->state) == RH_PG_READY &&
         b < g->n; b++) {
        ready = g->ranks[b] < 0 || rh_rank_alive(g->ranks[b]) ||
                !rh_rank_alive(RH_GS_RANK);
    }
    pthread_mutex_unlock(&rh_pg_lock);
    return ready;
}

rh_status_t rh_pg_wait(rh_pg_t pg, int64_t timeout_ms)
{
    rh_pg_obj_t *g;
    rh_status_t status = rh_pg_get(pg, &g);
    char why[256];

    if (status != RH_OK) {
        return status;
    }
    if (!rh_pg_ready_cond(g) &&
        (timeout_ms == 0 ||
         !rh_core_wait_until(rh_pg_ready_cond, g, rh_deadline(timeout_ms)))) {
        if (rh_core_ending_now()) {
            return rh_error_set(RH_ERR_SHUTDOWN, "rh_finalize began on "
                                "another thread while this call waited");
        }
        return rh_error_set(RH_ERR_TIMEOUT, "placement group %llu is not "
                            "placed yet%s", (unsigned long long)pg,
                            atomic_load(&g->state) == RH_PG_READY ?
                            ": a bundle's rank died and it is being placed "
                            "again" : "");
    }
    if (atomic_load(&g->state) != RH_PG_READY) {
        pthread_mutex_lock(&rh_pg_lock);
        (void)rh_pg_where(g, pg, 0, &status, why, sizeof(why));
        pthread_mutex_unlock(&rh_pg_lock);
        return rh_error_set(status, "%s", why);
    }
    /* A bundle the global scheduler found no room for fails the wait. */
    pthread_mutex_lock(&rh_pg_lock);
    for (int b = 0; status == RH_OK && b < g->n; b++) {
        rh_status_t code;

        if (rh_pg_where(g, pg, b, &code, why, sizeof(why)) == RH_PG_FAIL) {
            status = code;
        }
    }
    pthread_mutex_unlock(&rh_pg_lock);
    return status == RH_OK ? RH_OK : rh_error_set(status, "%s", why);
}

rh_status_t rh_pg_bundle_node(rh_pg_t pg, int bundle, int *node)
{
    rh_pg_obj_t *g;
    rh_status_t status = rh_pg_get(pg, &g);

    if (status != RH_OK) {
        return status;
    }
    if (atomic_load(&g->state) != RH_PG_READY) {
        return rh_error_set(RH_ERR_BUSY, "placement group %llu is not "
                            "placed yet", (unsigned long long)pg);
    }
    if (node == NULL) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_pg_bundle_node needs "
                            "node");
    }
    if (bundle < 0 || bundle >= g->n) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "placement group %llu has "
                            "bundles 0 to %d", (unsigned long long)pg,
                            g->n - 1);
    }
    {
        char why[256];
        rh_status_t code = RH_OK;
        int r;

        pthread_mutex_lock(&rh_pg_lock);
        r = rh_pg_where(g, pg, bundle, &code, why, sizeof(why));
        pthread_mutex_unlock(&rh_pg_lock);
        if (r == RH_PG_FAIL) {
            return rh_error_set(code, "%s", why);
        }
        if (r == RH_PG_WAIT) {
            return rh_error_set(RH_ERR_BUSY, "bundle %d of placement group "
                                "%llu is being placed again: its rank "
                                "died", bundle, (unsigned long long)pg);
        }
        *node = rh_core_node_of(r);
    }
    return RH_OK;
}

rh_status_t rh_pg_remove(rh_pg_t pg)
{
    rh_pg_obj_t *g;
    rh_pg_hdr_t h = { pg, 0, 0 };
    rh_task_t **held;
    rh_pg_waiter_t *waiters;
    size_t nheld;
    rh_status_t status = rh_pg_get(pg, &g);

    if (status != RH_OK) {
        return status;
    }
    pthread_mutex_lock(&rh_pg_lock);
    atomic_store(&g->state, RH_PG_REMOVED);
    waiters = rh_pg_take_pending(g, &held, &nheld);
    pthread_mutex_unlock(&rh_pg_lock);
    for (size_t i = 0; i < nheld; i++) {
        rh_task_fail_all(held[i], "its placement group was removed before "
                         "it was placed");
        rh_task_free(held[i]);
    }
    free(held);
    rh_pg_tell_waiters(waiters);
    rh_future_notify();
    if (rh_rank() == RH_GS_RANK) {
        return rh_pg_local_post(RH_PG_OP_REMOVE, pg, 0, 0, NULL);
    }
    if (!rh_rank_alive(RH_GS_RANK) ||
        (status = rh_am_send(RH_GS_RANK, RH_AM_ID_PG_REMOVE, &h, sizeof(h),
                             NULL, 0, NULL, NULL)) != RH_OK) {
        if (rh_rank_alive(RH_GS_RANK)) {
            return status;
        }
        /* The scheduler frees a group's bundles: without it they keep
         * what they reserved, and the program should know. */
        return rh_error_set(RH_ERR_PEER_FAILED, "placement group %llu is "
                            "removed (tasks into it fail), but "
                            RH_PG_GS_DIED_SAYS ": its bundles keep what they "
                            "reserved", (unsigned long long)pg);
    }
    return RH_OK;
}

/* ---- tasks into bundles ----------------------------------------------------------- */

rh_status_t rh_pg_route(const rh_task_params_t *params, rh_res_req_t **res,
                        int *rank)
{
    rh_pg_obj_t *g;
    rh_res_req_t *in = *res, *out;
    char prefix[40], why[256];
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
        return rh_error_set(RH_ERR_INVALID_PARAM, "placement group %llu has "
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
    *rank = rh_pg_where(g, g->id, b, &status, why, sizeof(why));
    pthread_mutex_unlock(&rh_pg_lock);
    if (*rank == RH_PG_FAIL) {
        return rh_error_set(status, "%s", why);
    }
    if (*rank == rh_rank()) {
        *rank = -1;
    }
    return RH_OK;
}

void rh_pg_hold(rh_task_t *t)
{
    rh_pg_obj_t *g;
    rh_status_t code;
    char why[256];
    int r;

    pthread_mutex_lock(&rh_pg_lock);
    g = rh_pg_find(t->pg);
    r = rh_pg_where(g, t->pg, t->pg_bundle, &code, why, sizeof(why));
    if (r == RH_PG_WAIT) {
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
        r = RH_PG_FAIL;
        snprintf(why, sizeof(why), "out of memory holding a task for "
                 "placement group %llu", (unsigned long long)t->pg);
    }
    pthread_mutex_unlock(&rh_pg_lock);
    if (r == RH_PG_FAIL) {
        rh_task_fail_all(t, why);
        rh_task_free(t);
        return;
    }
    t->forward_to = r == rh_rank() ? -1 : r;
    rh_task_dispatch(t);
}

int rh_pg_rerun_rank(rh_pg_t pg, int bundle, int *rank,
                     void (*fn)(uint64_t key), uint64_t key, char *why,
                     size_t len)
{
    rh_pg_obj_t *g;
    rh_pg_waiter_t *w = NULL;
    rh_status_t code;
    int r;

    pthread_mutex_lock(&rh_pg_lock);
    g = rh_pg_find(pg);
    r = rh_pg_where(g, pg, bundle, &code, why, len);
    if (r == RH_PG_WAIT && (w = malloc(sizeof(*w))) != NULL) {
        w->fn = fn;
        w->key = key;
        w->next = g->waiters;
        g->waiters = w;
    } else if (r == RH_PG_WAIT) {
        r = RH_PG_FAIL;
        snprintf(why, len, "out of memory waiting for placement group %llu",
                 (unsigned long long)pg);
    }
    pthread_mutex_unlock(&rh_pg_lock);
    if (r == RH_PG_FAIL) {
        return -1;
    }
    if (r == RH_PG_WAIT) {
        return 0;
    }
    *rank = r;
    return 1;
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
    static const char *const states[] = { "pending", "placed", "removed",
                                          "rescheduling" };
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
                            "group %llu", (unsigned long long)pg);
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
    for (int i = 0; i < 4; i++) {
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
    if (rec->state == RH_PG_REC_PLACED ||
        rec->state == RH_PG_REC_RESCHEDULING) {
        rec->ranks = malloc((size_t)rec->n * sizeof(int));
        rec->nodes = malloc((size_t)rec->n * sizeof(int));
        rec->cpus = malloc((size_t)rec->n * sizeof(int));
        if (rec->ranks == NULL || rec->nodes == NULL || rec->cpus == NULL) {
            rh_pg_record_free(rec);
            free(text);
            return rh_error_set(RH_ERR_NO_MEMORY, "placement group record");
        }
        p = text + used;
        /* rescheduling: -1 for a bundle that has no place now */
        if (rh_pg_parse_ints(&p, "ranks", rec->n,
                             rec->state == RH_PG_REC_PLACED ? 0 : -1,
                             rh_size(), rec->ranks) != 0 ||
            rh_pg_parse_ints(&p, "cpus", rec->n, 0, INT32_MAX,
                             rec->cpus) != 0) {
            goto err_malformed;
        }
        for (int b = 0; b < rec->n; b++) {
            rec->nodes[b] = rec->ranks[b] >= 0 ?
                            rh_core_node_of(rec->ranks[b]) : -1;
        }
    }
    free(text);
    return RH_OK;

err_malformed:
    rh_pg_record_free(rec);
    free(text);
    return rh_error_set(RH_ERR_MALFORMED, "the GCS's record of placement "
                        "group %llu cannot be read", (unsigned long long)pg);
}

/* The global scheduler died (any other rank): it alone placed groups, and
 * it told every rank of each it placed. A group still pending here (ours,
 * or one we wait to hear of) never will be placed; a bundle whose rank is
 * dead, or dies from now on, is never placed again. The tasks held for
 * each group go on or fail (rh_pg_where says why) and its waiters are
 * told, a group at a time: none is held again, as rh_pg_where waits for
 * nothing from now on. */
static void rh_pg_on_gs_failure(void)
{
    for (;;) {
        rh_pg_obj_t *g;
        rh_task_t **held = NULL;
        rh_pg_waiter_t *waiters = NULL;
        size_t nheld = 0;

        pthread_mutex_lock(&rh_pg_lock);
        for (g = rh_pgs; g != NULL; g = g->next) {
            if (atomic_load(&g->state) == RH_PG_PENDING) {
                g->never = RH_PG_GS_DIED;
                atomic_store(&g->state, RH_PG_REMOVED);
            }
            if (g->nheld != 0 || g->waiters != NULL) {
                waiters = rh_pg_take_pending(g, &held, &nheld);
                break;
            }
        }
        pthread_mutex_unlock(&rh_pg_lock);
        if (g == NULL) {
            break;
        }
        rh_pg_settled(held, nheld, waiters);
    }
    rh_future_notify();   /* rh_pg_wait */
}

/* On the progress thread, as every change of the global scheduler's
 * groups. */
static void rh_pg_on_peer_failure(void *arg, int rank)
{
    uint64_t *ids = NULL;
    size_t nids = 0, cap = 0;

    (void)arg;
    if (rank == RH_GS_RANK) {
        rh_pg_on_gs_failure();
        return;
    }
    if (rh_rank() == RH_GS_RANK) {
        rh_gs_pg_on_peer_failure(rank);
        /* Any change of the members: what waits for room is tried again
         * (the global scheduler's books moved). */
        rh_gs_pg_place_pending();
        rh_gs_pg_on_owner_failure(rank);
    }
    /* Groups of rank we wait to hear of: it may have died before it
     * answered our RH_PGS_ASK; the global scheduler answers instead. */
    pthread_mutex_lock(&rh_pg_lock);
    for (rh_pg_obj_t *g = rh_pgs; g != NULL; g = g->next) {
        if ((int)(g->id >> 32) != rank ||
            atomic_load(&g->state) != RH_PG_PENDING) {
            continue;
        }
        if (nids == cap) {
            size_t c = cap ? 2 * cap : 8;
            uint64_t *more = realloc(ids, c * sizeof(*ids));

            if (more == NULL) {
                rh_warn("placement groups of rank %d: no memory to ask the "
                        "global scheduler about them", rank);
                break;
            }
            ids = more;
            cap = c;
        }
        ids[nids++] = g->id;
    }
    pthread_mutex_unlock(&rh_pg_lock);
    for (size_t i = 0; i < nids; i++) {
        (void)rh_pg_ask_gs(ids[i], 1);
    }
    free(ids);
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
    if (status == RH_OK) {
        status = rh_tp_on_peer_failure(rh_pg_on_peer_failure, NULL);
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
        free(g->lost);
        while (g->waiters != NULL) {
            rh_pg_waiter_t *w = g->waiters;

            g->waiters = w->next;
            free(w);
        }
        free(g);
    }
    while (rh_gs_pgs != NULL) {
        rh_gs_pg_t *g = rh_gs_pgs;

        rh_gs_pgs = g->next;
        rh_gcs_record_drop(g->rec);
        free(g->bundles);
        free(g->ranks);
        free(g->asking);
        free(g);
    }
    while (rh_gs_asks != NULL) {
        rh_gs_ask_t *a = rh_gs_asks;

        rh_gs_asks = a->next;
        free(a);
    }
    rh_pg_counter = 0;
    pthread_mutex_unlock(&rh_pg_lock);
}
