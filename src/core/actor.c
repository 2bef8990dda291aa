/*
 * Actors: the API, each rank's cache of where actors are, the name
 * directory and the wire; the owner's table is actor_table.c, the instance
 * on the actor's rank actor_inst.c.
 *
 * The owner (the rank that created an actor) keeps its entry: PENDING
 * until the creation task answers, then ALIVE on a rank or DEAD with why;
 * the holds of every rank; its name. A rank that calls an actor it did not
 * create asks the owner where it is once (calls made meanwhile wait at the
 * caller, in order) and keeps the answer in its cache.
 *
 * A call is a task (task.c builds it, with its argument dependencies and
 * return futures) that goes to the actor's mailbox when the actor is here,
 * or is sent to the actor's rank once its arguments are there, with the
 * caller's sequence number; forward.c encodes it and takes the answer.
 * Control messages (where, holds, kills, ends, names) share one AM id.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/completion.h"
#include "base/hashmap.h"
#include "base/log.h"
#include "base/status.h"
#include "core/actor.h"
#include "core/actor_record.h"
#include "core/actor_resend.h"
#include "core/actor_table.h"
#include "core/core.h"
#include "core/future.h"
#include "core/lineage.h"
#include "gcs/gcs.h"
#include "transport/am.h"
#include "transport/transport.h"

#define RH_ACTOR_CREATE_FN "rh.actor"
#define RH_ACTOR_NAME_MAX  RH_ATAB_NAME_MAX

/* ---- control messages --------------------------------------------------- */

enum {
    RH_ACTL_LOCATE   = 1,   /* to the owner: where is it? */
    RH_ACTL_WHERE    = 2,   /* from the owner: value = rank, or < 0: dead
                             * (payload: why) */
    RH_ACTL_HOLD     = 3,   /* to the owner: value = +1 or -1 */
    RH_ACTL_KILL     = 4,   /* to the owner */
    RH_ACTL_END      = 5,   /* owner to the actor's rank: value = kill
                             * (payload: why) */
    RH_ACTL_ENDED    = 6,   /* actor's rank to the owner (payload: why) */
    RH_ACTL_SKIP     = 7,   /* caller to the actor's rank: arg = a sequence
                             * number that will never come */
    RH_ACTL_FROM     = 8,   /* caller to a restarted instance (value: its
                             * restart count): arg = the caller's first
                             * number for it */
    RH_ACTL_COVERED  = 9,   /* owner to a caller: a checkpoint covers its
                             * calls up to arg */
    RH_ACTL_MAX      = 9    /* names live in the GCS (rh_name_*) */
};

typedef struct rh_actl_hdr {
    uint64_t actor_hi, actor_lo;
    uint32_t op;
    int32_t  value;
    uint64_t arg;
} rh_actl_hdr_t;

#define RH_ACTL_TEXT_MAX 512

static void rh_actl_send(int dest, int op, rh_actor_t a, int32_t value,
                         uint64_t arg, const char *text)
{
    rh_actl_hdr_t h = { a.hi, a.lo, (uint32_t)op, value, arg };

    /* To our own rank only what numbered calls to a local instance need
     * (a restart here with calls kept: they go by message to keep their
     * order); the rest is handled here directly. */
    if ((dest == rh_rank() && op != RH_ACTL_SKIP && op != RH_ACTL_FROM) ||
        !rh_rank_alive(dest)) {
        return;
    }
    if (rh_am_send((uint32_t)dest, RH_AM_ID_ACTOR_CTL, &h, sizeof(h), text,
                   text ? strlen(text) + 1 : 0, NULL, NULL) != RH_OK) {
        rh_debug("actor message %d to rank %d not sent: %s", op, dest,
                 rh_last_error());
    }
}

static const char *rh_actor_class_name(rh_actor_t a)
{
    const rh_class_entry_t *c = rh_registry_class(rh_actor_class_id(a));

    return c ? c->name : "?";
}

/* ---- each rank's cache of where actors are ------------------------------ */

enum { RH_CL_UNKNOWN = 0, RH_CL_ASKED, RH_CL_ALIVE, RH_CL_DEAD };

typedef struct rh_actor_client {
    rh_actor_t       actor;
    pthread_mutex_t  lock;
    _Atomic int      state;
    int              rank;
    uint64_t         next_seq;
    uint32_t         epoch;           /* restarts of the instance at rank */
    rh_task_t       *qhead, *qtail;   /* calls waiting for the place */
    rh_actor_inst_t *inst;            /* here: the instance (a reference) */
    char             why[256];        /* DEAD: why */
    rh_resend_t      rs;              /* calls kept for a resend */
    _Atomic long     holds;           /* this rank's holds of the actor */
    int              orphan;          /* asked the GCS: its owner died */
} rh_actor_client_t;

static pthread_mutex_t rh_cl_lock = PTHREAD_MUTEX_INITIALIZER;
static rh_hmap_t rh_clients = RH_HMAP_INITIALIZER(sizeof(rh_actor_t),
                                                  sizeof(void *));
/* The entry a thread used last, valid while the runtime that made it
 * lives (gen). */
static _Thread_local rh_actor_client_t *rh_cl_last;
static _Thread_local unsigned rh_cl_last_gen;
static _Atomic unsigned rh_cl_gen = 1;

/* The cache entry of actor, made when absent (NULL: out of memory).
 * Entries stay until the runtime ends: a thread may keep the last one. */
static rh_actor_client_t *rh_client_get(rh_actor_t actor, int make)
{
    rh_actor_client_t *c = rh_cl_last, **slot;
    int added;

    if (c != NULL && rh_cl_last_gen == atomic_load_explicit(&rh_cl_gen,
                                                           memory_order_relaxed)
        && c->actor.hi == actor.hi && c->actor.lo == actor.lo) {
        return c;
    }
    pthread_mutex_lock(&rh_cl_lock);
    slot = make ? rh_hmap_put(&rh_clients, &actor, &added) :
           rh_hmap_get(&rh_clients, &actor);
    if (slot == NULL) {
        pthread_mutex_unlock(&rh_cl_lock);
        return NULL;
    }
    if (make && added) {
        c = calloc(1, sizeof(*c));
        if (c == NULL) {
            (void)rh_hmap_del(&rh_clients, &actor, NULL);
            pthread_mutex_unlock(&rh_cl_lock);
            return NULL;
        }
        c->actor = actor;
        c->rank = -1;
        rh_resend_init(&c->rs, actor);
        pthread_mutex_init(&c->lock, NULL);
        *slot = c;
    }
    c = *slot;
    pthread_mutex_unlock(&rh_cl_lock);
    rh_cl_last = c;
    rh_cl_last_gen = atomic_load_explicit(&rh_cl_gen, memory_order_relaxed);
    return c;
}

/* Points t, a call whose actor's place is known now (c->lock held), at
 * the mailbox here or at the actor's rank, or makes it fail; the caller
 * then lets it go (rh_task_submitted). */
static void rh_client_route(rh_actor_client_t *c, rh_task_t *t)
{
    if (c->state == RH_CL_DEAD) {
        rh_task_fail_later(t, RH_ERR_ACTOR_DEAD, c->why);
        return;
    }
    if (c->inst != NULL) {
        if (rh_actor_inst_push(c->inst, t) != 0) {
            rh_task_fail_later(t, RH_ERR_ACTOR_DEAD, c->why[0] ? c->why :
                               "the actor ended");
        }
        return;
    }
    t->forward_to = c->rank;
    t->call_seq = ++c->next_seq;
    t->call_epoch = c->epoch;
    if (c->rs.retries != 0) {
        rh_resend_route(&c->rs, t);
    }
}

/* The actor's rank died or it is being restarted (c->lock held): calls
 * wait for its new place, which the owner tells (the owner's own cache
 * hears it from its table). */
static void rh_client_unplace(rh_actor_client_t *c)
{
    int owner = (int)rh_actor_owner(c->actor);

    if (c->state != RH_CL_ALIVE) {
        return;
    }
    rh_resend_unplaced(&c->rs);
    if (owner == rh_rank()) {
        atomic_store(&c->state, RH_CL_UNKNOWN);
    } else {
        atomic_store(&c->state, RH_CL_ASKED);
        rh_actl_send(owner, RH_ACTL_LOCATE, c->actor, 0, 0, NULL);
    }
}

/* The place of the actor became known: rank (its instance there has had
 * epoch restarts; calls lost are sent again retries times, -1: no limit,
 * -2: not said), or dead with why. Lets the waiting calls go, in order. */
static void rh_client_located(rh_actor_client_t *c, int rank,
                              uint32_t epoch, int retries, const char *why)
{
    rh_task_t *q;
    rh_actor_inst_t *drop = NULL;
    const rh_class_entry_t *cls = rh_registry_class(
                                      rh_actor_class_id(c->actor));

    pthread_mutex_lock(&c->lock);
    if (c->state == RH_CL_DEAD ||
        (c->state == RH_CL_ALIVE && rank >= 0 && epoch <= c->epoch)) {
        pthread_mutex_unlock(&c->lock);
        return;
    }
    if (rank >= 0 && epoch < c->epoch) {
        pthread_mutex_unlock(&c->lock);   /* older news */
        return;
    }
    if (rank >= 0 && rank != rh_rank() && !rh_rank_alive(rank) &&
        rh_actor_restartable(c->actor)) {
        /* The owner had not heard of the death yet: ask again. */
        c->state = RH_CL_ALIVE;
        rh_client_unplace(c);
        pthread_mutex_unlock(&c->lock);
        return;
    }
    if (rank >= 0 && epoch != c->epoch) {
        /* A restarted instance: our numbers go on (rh_resend_placed tells
         * it where they start). */
        c->epoch = epoch;
        drop = c->inst;
        c->inst = NULL;
    }
    /* Calls kept for resends go numbered, by message, even to an instance
     * here: a kill that restarts it then replays them in order, as for an
     * instance on another rank (its mailbox would fail them). */
    if (rank == rh_rank() && !rh_resend_active(&c->rs) &&
        !(retries != -2 && retries != 0 && rh_actor_restartable(c->actor))) {
        c->inst = rh_actor_inst_find(c->actor);
        if (c->inst == NULL) {
            rank = -1;
            why = "the actor ended";
        }
    }
    if (rank < 0) {
        snprintf(c->why, sizeof(c->why), "%s", why ? why : "actor is dead");
        if (drop == NULL) {
            drop = c->inst;
            c->inst = NULL;
        }
        atomic_store(&c->state, RH_CL_DEAD);
        rh_resend_dead(&c->rs, c->why);
    } else {
        c->rank = rank;
        if (retries != -2 && retries != 0 &&
            rh_actor_restartable(c->actor) && c->rs.retries == 0) {
            rh_resend_setup(&c->rs, retries, cls != NULL &&
                            (cls->cls.field_mask &
                             RH_ACTOR_CLASS_FIELD_CHECKPOINT));
        }
        rh_resend_placed(&c->rs, rank, epoch, c->next_seq + 1);
        atomic_store(&c->state, RH_CL_ALIVE);
    }
    q = c->qhead;
    c->qhead = c->qtail = NULL;
    for (rh_task_t *t = q; t != NULL; t = t->call_next) {
        rh_client_route(c, t);
    }
    pthread_mutex_unlock(&c->lock);
    while (q != NULL) {
        rh_task_t *next = q->call_next;

        rh_task_submitted(q);
        q = next;
    }
    if (drop != NULL) {
        rh_actor_inst_put(drop);
    }
    rh_future_notify();   /* rh_actor_ready waits for this */
}

/* ---- the owner's table (actor_table.c) and its news ----------------------- */

static _Atomic uint64_t rh_actor_counter;

static void rh_name_drop(const char *name);

/* ---- restarts: the owner's copy of each restartable actor's creation --- */

typedef struct rh_recipe {
    rh_actor_t       actor;
    rh_actor_meta_t  meta;
    rh_task_params_t tp;
    char            *resources;   /* tp.resources, ours */
    int              nargs;       /* with the meta first */
    rh_arg_t        *args;        /* bytes, ours */
    int              retries;     /* max_task_retries */
    uint8_t         *ckpt;        /* the last checkpoint, or NULL */
    size_t           ckpt_len;
} rh_recipe_t;

static pthread_mutex_t rh_recipe_lock = PTHREAD_MUTEX_INITIALIZER;
static rh_hmap_t rh_recipes = RH_HMAP_INITIALIZER(sizeof(uint64_t),
                                                  sizeof(void *));
/* max_task_retries of each, apart: a recipe leaves its map while a
 * restart is submitted, and callers hear the value with the new place. */
static rh_hmap_t rh_task_retries = RH_HMAP_INITIALIZER(sizeof(uint64_t),
                                                       sizeof(int));

static void rh_recipe_free(rh_recipe_t *r)
{
    for (int i = 0; r->args != NULL && i < r->nargs; i++) {
        free((void *)r->args[i].data);
    }
    free(r->args);
    free(r->resources);
    free(r->ckpt);
    free(r);
}

/* max_task_retries of one of our actors (0 when it is not restartable),
 * told to its callers with its place. */
static int rh_recipe_retries(rh_actor_t a)
{
    int *slot;
    int retries = 0;

    if (!rh_actor_restartable(a)) {
        return 0;
    }
    pthread_mutex_lock(&rh_recipe_lock);
    slot = rh_hmap_get(&rh_task_retries, &a.lo);
    if (slot != NULL) {
        retries = *slot;
    }
    pthread_mutex_unlock(&rh_recipe_lock);
    return retries;
}

/* A WHERE message's arg: the restart count, and max_task_retries above. */
static uint64_t rh_where_arg(rh_actor_t a, uint32_t epoch)
{
    return (uint64_t)epoch |
           (uint64_t)(uint32_t)rh_recipe_retries(a) << 32;
}

/* Keeps a copy of the creation (the meta first, then the constructor's
 * arguments, all bytes) for restarts. */
static rh_status_t rh_recipe_keep(rh_actor_t a, const rh_arg_t *all,
                                  int n, const rh_task_params_t *tp,
                                  int retries)
{
    rh_recipe_t *r = calloc(1, sizeof(*r)), **slot;
    int added = 0;

    if (r == NULL || (r->args = calloc((size_t)n, sizeof(*r->args))) ==
        NULL) {
        goto err_free;
    }
    r->actor = a;
    r->nargs = n;
    r->retries = retries;
    r->tp = *tp;
    memcpy(&r->meta, all[0].data, sizeof(r->meta));
    if (tp->resources != NULL &&
        (r->resources = strdup(tp->resources)) == NULL) {
        goto err_free;
    }
    r->tp.resources = r->resources;
    for (int i = 0; i < n; i++) {
        void *copy = malloc(all[i].len ? all[i].len : 1);

        if (copy == NULL) {
            goto err_free;
        }
        memcpy(copy, all[i].data, all[i].len);
        r->args[i] = rh_arg_bytes(copy, all[i].len);
    }
    pthread_mutex_lock(&rh_recipe_lock);
    slot = rh_hmap_put(&rh_recipes, &a.lo, &added);
    if (slot != NULL && added) {
        int *rs, radded = 0;

        *slot = r;
        if (retries != 0 &&
            ((rs = rh_hmap_put(&rh_task_retries, &a.lo, &radded)) == NULL ||
             !radded)) {
            (void)rh_hmap_del(&rh_recipes, &a.lo, NULL);
            slot = NULL;
        } else if (retries != 0) {
            *rs = retries;
        }
    }
    pthread_mutex_unlock(&rh_recipe_lock);
    if (slot == NULL || !added) {
        goto err_free;
    }
    return RH_OK;

err_free:
    if (r != NULL) {
        rh_recipe_free(r);
    }
    return rh_error_set(RH_ERR_NO_MEMORY, "keeping an actor's creation for "
                        "its restarts");
}

static void rh_recipe_drop(rh_actor_t a)
{
    rh_recipe_t *r = NULL;

    if (!rh_actor_restartable(a) ||
        rh_actor_owner(a) != (uint32_t)rh_rank()) {
        return;
    }
    pthread_mutex_lock(&rh_recipe_lock);
    (void)rh_hmap_del(&rh_recipes, &a.lo, &r);
    (void)rh_hmap_del(&rh_task_retries, &a.lo, NULL);
    pthread_mutex_unlock(&rh_recipe_lock);
    if (r != NULL) {
        rh_recipe_free(r);
    }
}

static rh_status_t rh_actor_launch(rh_actor_t a, const rh_arg_t *all, int n,
                                   const rh_task_params_t *tp);
static void rh_actor_created_now(rh_actor_t a, int rank, const char *why);

/* Runs the creation again (the lineage thread, off the progress thread:
 * submitting may wait for room to send). */
static void rh_actor_restart_run(void *arg)
{
    rh_actor_t a = *(rh_actor_t *)arg;
    rh_recipe_t *r = NULL, **slot;
    char why[512];
    rh_status_t status = RH_ERR_NOT_FOUND;
    int added = 0;

    free(arg);
    /* Out of the map while it is submitted: its answer may come on
     * another thread before the submission returns. */
    pthread_mutex_lock(&rh_recipe_lock);
    (void)rh_hmap_del(&rh_recipes, &a.lo, &r);
    pthread_mutex_unlock(&rh_recipe_lock);
    if (r != NULL) {
        /* the instance's restart count: its callers' calls carry it */
        r->meta.epoch++;
        memcpy((void *)r->args[0].data, &r->meta, sizeof(r->meta));
        if (r->ckpt != NULL) {
            /* From the last checkpoint instead of the constructor. */
            rh_actor_meta_t m = r->meta;
            rh_arg_t args[2];

            m.restore = 1;
            args[0] = rh_arg_bytes(&m, sizeof(m));
            args[1] = rh_arg_bytes(r->ckpt, r->ckpt_len);
            status = rh_actor_launch(a, args, 2, &r->tp);
        } else {
            status = rh_actor_launch(a, r->args, r->nargs, &r->tp);
        }
        if (status != RH_OK) {
            snprintf(why, sizeof(why), "actor %s: its restart could not be "
                     "submitted: %s", rh_actor_class_name(a),
                     rh_last_error());
        }
        pthread_mutex_lock(&rh_recipe_lock);
        slot = rh_hmap_put(&rh_recipes, &a.lo, &added);
        if (slot != NULL && added) {
            *slot = r;
            r = NULL;
        }
        pthread_mutex_unlock(&rh_recipe_lock);
        if (r != NULL) {
            rh_recipe_free(r);
        }
    } else {
        snprintf(why, sizeof(why), "actor %s: its creation was not kept for "
                 "a restart", rh_actor_class_name(a));
    }
    if (status != RH_OK) {
        rh_actor_created_now(a, -1, why);
    }
}

static void rh_actor_restart(rh_actor_t a)
{
    rh_actor_t *arg = malloc(sizeof(*arg));

    if (arg == NULL) {
        rh_actor_created_now(a, -1, "its restart found no memory");
        return;
    }
    *arg = a;
    if (!rh_retry_later(0, rh_actor_restart_run, free, arg)) {
        rh_actor_restart_run(arg);
    }
}

/* Sends the news of actor a; on the caller's thread, no lock held. */
static void rh_atab_tell(rh_actor_t a, rh_atab_news_t *n)
{
    if (n->rank != -2) {
        for (int r = 0; n->askers != NULL && r < rh_size(); r++) {
            if (n->askers[r]) {
                rh_actl_send(r, RH_ACTL_WHERE, a, n->rank >= 0 ? n->rank :
                             RH_ERR_ACTOR_DEAD, rh_where_arg(a, n->epoch),
                             n->rank >= 0 ? NULL : n->why);
            }
        }
        free(n->askers);
        n->askers = NULL;
    }
    if (n->end_rank >= 0) {
        if (n->end_rank == rh_rank()) {
            rh_actor_inst_t *inst = rh_actor_inst_find(a);

            if (inst != NULL) {
                rh_actor_inst_end(inst, n->end_kill, n->why);
                rh_actor_inst_put(inst);
            }
        } else {
            rh_actl_send(n->end_rank, RH_ACTL_END, a, n->end_kill, 0, n->why);
        }
    }
    if (n->name[0] != '\0') {
        rh_name_drop(n->name);
    }
    if (n->rank != -2 && rh_actor_owner(a) == (uint32_t)rh_rank()) {
        rh_actor_client_t *c = rh_client_get(a, 1);

        if (c != NULL) {
            rh_client_located(c, n->rank, n->epoch, rh_recipe_retries(a),
                              n->why);
        }
    }
    if (n->restart) {
        rh_actor_client_t *c = rh_client_get(a, 1);

        if (c != NULL) {
            pthread_mutex_lock(&c->lock);
            rh_client_unplace(c);
            pthread_mutex_unlock(&c->lock);
        }
        rh_actor_restart(a);
    }
    if (n->rank == -1) {
        rh_recipe_drop(a);
    }
}

/* The creation task answered (any thread). */
typedef struct rh_creating {
    rh_waiter_t  waiter;
    rh_future_t *fut;
    rh_actor_t   actor;
} rh_creating_t;

static void rh_actor_created_now(rh_actor_t a, int rank, const char *why)
{
    rh_atab_news_t where, death;

    rh_atab_created(a, rank, why, &where, &death);
    /* Where first, then a death asked for meanwhile. */
    rh_atab_tell(a, &where);
    rh_atab_tell(a, &death);
}

static void rh_actor_created(rh_waiter_t *w, int failed, const char *message)
{
    rh_creating_t *cr = (rh_creating_t *)w;
    rh_future_t *f = cr->fut;
    rh_actor_t a = cr->actor;
    int32_t rank = -1;

    if (!failed && f->len == sizeof(rank)) {
        memcpy(&rank, f->data, sizeof(rank));
    }
    rh_actor_created_now(a, failed ? -1 : rank, failed ? message : NULL);
    rh_future_unhold(f);
    free(cr);
}

/* Submits the creation task of a (all: the meta, then the constructor's
 * arguments); the table hears of its answer. */
static rh_status_t rh_actor_launch(rh_actor_t a, const rh_arg_t *all, int n,
                                   const rh_task_params_t *tp)
{
    rh_creating_t *cr = calloc(1, sizeof(*cr));
    rh_object_id_t id;
    rh_future_t *f;
    rh_ref_t ret;
    rh_status_t status;

    if (cr == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "creating an actor");
    }
    status = rh_remote(RH_ACTOR_CREATE_FN, all, n, tp, &ret);
    if (status != RH_OK) {
        free(cr);
        return status;
    }
    id.hi = ret.hi;
    id.lo = ret.lo;
    f = rh_future_find_hold(id);
    cr->waiter.wake = rh_actor_created;
    cr->fut = f;
    cr->actor = a;
    if (!rh_future_wait_add(f, &cr->waiter)) {
        rh_actor_created(&cr->waiter, atomic_load(&f->state) ==
                         RH_FUTURE_FAILED ? rh_future_status(f) : 0,
                         f->message);
    }
    (void)rh_release(ret);
    return RH_OK;
}

static void rh_atab_hold_tell(rh_actor_t a, int rank, int delta)
{
    rh_atab_news_t n;

    rh_atab_hold(a, rank, delta, &n);
    rh_atab_tell(a, &n);
}

static void rh_atab_kill_tell(rh_actor_t a, int no_restart)
{
    rh_atab_news_t n;

    rh_atab_kill(a, no_restart, &n);
    rh_atab_tell(a, &n);
}

static void rh_atab_ended_tell(rh_actor_t a, int rank, const char *why)
{
    rh_atab_news_t n;

    rh_atab_ended(a, rank, why, &n);
    rh_atab_tell(a, &n);
}

/* A rank asks where a is: now, or once it is known. */
static void rh_atab_locate_tell(rh_actor_t a, int asker)
{
    char why[256];
    int rank = -1;
    uint32_t epoch = 0;
    int state = rh_atab_locate(a, asker, &rank, &epoch, why, sizeof(why));

    if (state == RH_AT_ALIVE) {
        rh_actl_send(asker, RH_ACTL_WHERE, a, rank, rh_where_arg(a, epoch),
                     NULL);
    } else if (state != RH_AT_PENDING) {
        rh_actl_send(asker, RH_ACTL_WHERE, a, RH_ERR_ACTOR_DEAD, 0, why);
    }
}

/* ---- named actors: records of the GCS's actor table, so that a name
 * outlives the death of any rank but its actor's ---------------------------- */

#define RH_NAME_KEY_MAX (RH_ACTOR_NAME_MAX + 8)

static size_t rh_name_key(const char *name, char key[RH_NAME_KEY_MAX])
{
    return (size_t)snprintf(key, RH_NAME_KEY_MAX, "name/%s", name);
}

/* RH_OK, or RH_ERR_NAME_TAKEN when another actor holds the name. */
static rh_status_t rh_name_add(const char *name, rh_actor_t a)
{
    char key[RH_NAME_KEY_MAX];
    size_t k = rh_name_key(name, key);
    rh_status_t status = rh_gcs_cas(RH_GCS_T_ACTOR, key, k, &a, sizeof(a), 0,
                                    NULL);

    return status == RH_ERR_CONFLICT ? RH_ERR_NAME_TAKEN : status;
}

static rh_status_t rh_name_find(const char *name, rh_actor_t *a)
{
    char key[RH_NAME_KEY_MAX];
    size_t k = rh_name_key(name, key), len;
    void *val;
    rh_status_t status = rh_gcs_get(RH_GCS_T_ACTOR, key, k, &val, &len,
                                    NULL);

    if (status != RH_OK) {
        return status;
    }
    if (len != sizeof(*a)) {
        free(val);
        return rh_error_set(RH_ERR_MALFORMED, "the GCS record of actor name "
                            "%s has %zu bytes", name, len);
    }
    memcpy(a, val, sizeof(*a));
    free(val);
    return RH_OK;
}

typedef struct rh_name_del {
    rh_gcs_op_t op;
    char        key[RH_NAME_KEY_MAX];
} rh_name_del_t;

static void rh_name_deleted(rh_gcs_op_t *op)
{
    free(op);
}

/* The actor ended: its name is free again (on the progress thread too, so
 * without waiting). */
static void rh_name_drop(const char *name)
{
    rh_name_del_t *d = calloc(1, sizeof(*d));

    if (d == NULL) {
        rh_warn("actor name %s stays taken: no memory to free it", name);
        return;
    }
    d->op.table = RH_GCS_T_ACTOR;
    d->op.klen = rh_name_key(name, d->key);
    d->op.key = d->key;
    d->op.done = rh_name_deleted;
    if (rh_gcs_del_async(&d->op) != RH_OK) {
        rh_warn("actor name %s stays taken: %s", name, rh_last_error());
        free(d);
    }
}

/* ---- the API ------------------------------------------------------------------ */

static rh_status_t rh_actor_check(rh_actor_t a, const rh_class_entry_t **cls)
{
    if (!rh_core_initialized()) {
        return rh_error_set(RH_ERR_NOT_INITIALIZED, "call rh_init first");
    }
    if (rh_actor_is_null(a) || (a.hi & 0xff) != 1 || a.lo == 0 ||
        rh_actor_owner(a) >= (uint32_t)rh_size() ||
        (*cls = rh_registry_class(rh_actor_class_id(a))) == NULL) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "not an actor handle of "
                            "this job");
    }
    return RH_OK;
}

/* Maps the actor's placement onto the creation task's parameters. */
static void rh_actor_task_params(const rh_actor_params_t *p,
                                 rh_task_params_t *tp, int *keep)
{
    memset(tp, 0, sizeof(*tp));
    tp->field_mask = RH_TASK_PARAM_FIELD_NUM_RETURNS;
    tp->num_returns = 1;
    *keep = 0;
    if (p == NULL) {
        return;
    }
    if (p->field_mask & RH_ACTOR_PARAM_FIELD_NUM_CPUS) {
        tp->field_mask |= RH_TASK_PARAM_FIELD_NUM_CPUS |
                          RH_TASK_PARAM_FIELD_FLAGS;
        tp->num_cpus = p->num_cpus;
        /* One CPU and nothing else is otherwise not counted at all, and
         * then nothing would be left to keep. */
        tp->flags = RH_TASK_FLAG_COUNTED;
        *keep = 1;
    }
    if ((p->field_mask & RH_ACTOR_PARAM_FIELD_RESOURCES) &&
        p->resources != NULL && p->resources[0] != '\0') {
        tp->field_mask |= RH_TASK_PARAM_FIELD_RESOURCES;
        tp->resources = p->resources;
        *keep = 1;
    }
    if (p->field_mask & RH_ACTOR_PARAM_FIELD_STRATEGY) {
        tp->field_mask |= RH_TASK_PARAM_FIELD_STRATEGY;
        tp->strategy = p->strategy;
        tp->node = p->node;
        tp->soft = p->soft;
        tp->pg = p->pg;
        tp->bundle = p->bundle;
        if (p->strategy == RH_STRATEGY_PLACEMENT_GROUP) {
            *keep = 1;   /* the bundle's share, renamed to the bundle */
        }
    }
}

rh_status_t rh_actor_create(const char *cls_name, const rh_arg_t *args,
                            int nargs, const rh_actor_params_t *params,
                            rh_actor_t *actor)
{
    const rh_class_entry_t *cls;
    rh_task_params_t tp;
    rh_actor_meta_t meta;
    rh_arg_t few[9], *all;
    const char *name = NULL;
    rh_actor_t a;
    rh_actor_client_t *c;
    rh_status_t status;
    int keep, conc = 1, detached = 0, named = 0, max_restarts = 0;
    int retries = 0, interval = 0, ckpts;

    if (!rh_core_initialized()) {
        return rh_error_set(RH_ERR_NOT_INITIALIZED, "call rh_init first");
    }
    if (actor == NULL) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_actor_create needs "
                            "somewhere to put the handle");
    }
    if ((cls = rh_registry_find_class(cls_name)) == NULL) {
        return rh_error_set(RH_ERR_UNKNOWN_FUNCTION, "no actor class named %s "
                            "is registered (rh_register_actor it on every "
                            "rank before rh_init)", cls_name ? cls_name :
                            "(null)");
    }
    {
        char what[RH_FN_NAME_MAX + 32];
        rh_status_t st;

        snprintf(what, sizeof(what), "the constructor of %s", cls->name);
        st = rh_registry_check_nargs(what, cls->cls.init_nargs, nargs);
        if (st == RH_OK && nargs > 0 && args == NULL) {
            st = rh_error_set(RH_ERR_BAD_ARG_COUNT, "%s: args is NULL but "
                              "nargs is %d", what, nargs);
        }
        if (st != RH_OK) {
            return st;
        }
    }
    if (params != NULL) {
        if (params->field_mask & RH_ACTOR_PARAM_FIELD_MAX_CONCURRENCY) {
            conc = params->max_concurrency;
        }
        if (params->field_mask & RH_ACTOR_PARAM_FIELD_DETACHED) {
            detached = params->detached != 0;
        }
        if (params->field_mask & RH_ACTOR_PARAM_FIELD_NAME) {
            name = params->name;
        }
        if (params->field_mask & RH_ACTOR_PARAM_FIELD_MAX_RESTARTS) {
            max_restarts = params->max_restarts;
        }
        if (params->field_mask & RH_ACTOR_PARAM_FIELD_MAX_TASK_RETRIES) {
            retries = params->max_task_retries;
        }
        if (params->field_mask & RH_ACTOR_PARAM_FIELD_CHECKPOINT_INTERVAL) {
            interval = params->checkpoint_interval;
        }
    }
    /* A class that can checkpoint does, once it may be restarted. */
    ckpts = max_restarts != 0 &&
            (cls->cls.field_mask & RH_ACTOR_CLASS_FIELD_CHECKPOINT);
    if (retries < -1 || interval < 0) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "actor %s: %s %d: %s",
                            cls->name, retries < -1 ? "max_task_retries" :
                            "checkpoint_interval", retries < -1 ? retries :
                            interval, retries < -1 ? "-1 (no limit) or more" :
                            "0 (on request only) or more");
    }
    if (interval > 0 && !ckpts) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "actor %s: checkpoints "
                            "need max_restarts and a class with save and "
                            "restore (RH_ACTOR_CLASS_FIELD_CHECKPOINT)",
                            cls->name);
    }
    if (max_restarts < -1) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "actor %s: max_restarts "
                            "%d: -1 (no limit) or more", cls->name,
                            max_restarts);
    }
    for (int i = 0; max_restarts != 0 && i < nargs; i++) {
        if (args[i].kind != RH_ARG_BYTES) {
            return rh_error_set(RH_ERR_INVALID_PARAM, "actor %s: a "
                                "restartable actor's constructor takes its "
                                "arguments as bytes (argument %d is a ref)",
                                cls->name, i);
        }
    }
    if (conc < 1 || conc > 1024) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "actor %s: max_concurrency "
                            "%d: 1 to 1024", cls->name, conc);
    }
    if (ckpts && conc != 1) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "actor %s: checkpoints "
                            "need max_concurrency 1 (a checkpoint is taken "
                            "between two calls)", cls->name);
    }
    if (name != NULL && (name[0] == '\0' ||
                         strlen(name) >= RH_ACTOR_NAME_MAX)) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "actor %s: a name has 1 to "
                            "%d characters", cls->name, RH_ACTOR_NAME_MAX - 1);
    }
    rh_actor_task_params(params, &tp, &keep);
    if (tp.field_mask & RH_TASK_PARAM_FIELD_NUM_CPUS && tp.num_cpus < 0) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "actor %s: num_cpus %d",
                            cls->name, tp.num_cpus);
    }
    a.hi = (uint64_t)(uint32_t)rh_rank() << 32 | (uint64_t)cls->id << 8 | 1;
    if (max_restarts != 0) {
        a.hi |= RH_ACTOR_RESTARTABLE;
    }
    a.lo = atomic_fetch_add(&rh_actor_counter, 1) + 1;
    all = nargs + 1 <= 9 ? few : malloc((size_t)(nargs + 1) * sizeof(*all));
    if (all == NULL) {
        status = rh_error_set(RH_ERR_NO_MEMORY, "creating actor %s",
                              cls->name);
        goto err_free;
    }
    memset(&meta, 0, sizeof(meta));
    meta.actor_hi = a.hi;
    meta.actor_lo = a.lo;
    meta.max_concurrency = conc;
    meta.detached = detached;
    meta.keep_res = keep;
    meta.checkpoints = ckpts;
    meta.ckpt_interval = interval;
    if (name != NULL) {
        snprintf(meta.name, sizeof(meta.name), "%s", name);
    }
    all[0] = rh_arg_bytes(&meta, sizeof(meta));
    for (int i = 0; i < nargs; i++) {
        all[i + 1] = args[i];
    }
    if ((c = rh_client_get(a, 1)) == NULL) {
        status = rh_error_set(RH_ERR_NO_MEMORY, "creating actor %s",
                              cls->name);
        goto err_free;
    }
    atomic_store(&c->holds, 1);   /* the creator's, as rh_atab_add counts */
    status = rh_atab_add(a, detached, name, max_restarts);
    if (status != RH_OK) {
        goto err_free;
    }
    /* The entry is in first: whoever finds the name may ask for it. */
    if (name != NULL) {
        status = rh_name_add(name, a);
        if (status == RH_ERR_NAME_TAKEN) {
            status = rh_error_set(status, "an actor named %s exists "
                                  "already", name);
        } else if (status != RH_OK) {
            status = rh_error_set(status, "actor name %s could not be "
                                  "registered in the GCS: %s", name,
                                  rh_last_error());
        }
        if (status != RH_OK) {
            rh_atab_remove(a);
            goto err_free;
        }
        named = 1;
    }
    if (max_restarts != 0) {
        status = rh_recipe_keep(a, all, nargs + 1, &tp, retries);
        if (status != RH_OK) {
            rh_atab_remove(a);
            goto err_free;
        }
    }
    /* The entry hears of the creation task's end. */
    status = rh_actor_launch(a, all, nargs + 1, &tp);
    if (status != RH_OK) {
        char msg[512];

        snprintf(msg, sizeof(msg), "%s", rh_last_error());
        rh_recipe_drop(a);
        rh_atab_remove(a);
        status = rh_error_set(status, "actor %s: %s", cls->name, msg);
        goto err_free;
    }
    if (all != few) {
        free(all);
    }
    *actor = a;
    return RH_OK;

err_free:
    if (named) {
        rh_atab_news_t n;

        rh_atab_news_init(&n);
        snprintf(n.name, sizeof(n.name), "%s", name);
        rh_atab_tell(a, &n);
    }
    if (all != few) {
        free(all);
    }
    return status;
}

/* The creation task, on the rank the scheduler picked. */
static rh_status_t rh_actor_create_run(rh_task_ctx_t *ctx)
{
    rh_actor_meta_t meta;
    const rh_class_entry_t *cls;
    rh_actor_inst_t *inst;
    rh_task_ctx_t cctx;
    rh_res_req_t res;
    char msg[512];
    size_t len, ckpt_len = 0;
    const void *p = rh_task_arg(ctx, 0, &len), *ckpt = NULL;
    int32_t rank = rh_rank();
    rh_status_t status;

    if (p == NULL || len != sizeof(meta)) {
        return rh_task_fail(ctx, "an actor's creation came malformed");
    }
    memcpy(&meta, p, sizeof(meta));
    {
        rh_actor_t a = { meta.actor_hi, meta.actor_lo };

        cls = rh_registry_class(rh_actor_class_id(a));
        if (cls == NULL || meta.max_concurrency < 1) {
            return rh_task_fail(ctx, "an actor's creation came malformed");
        }
        cctx = *ctx;
        cctx.arg_base = 1;
        cctx.actor = a;
        cctx.failed = 0;
        cctx.message[0] = '\0';
    }
    if (meta.restore) {
        ckpt = rh_task_arg(ctx, 1, &ckpt_len);
        if (ckpt == NULL) {
            return rh_task_fail(ctx, "an actor's restore came without its "
                                "checkpoint");
        }
    }
    status = rh_actor_inst_create(cls, &meta, &cctx, ckpt, ckpt_len, msg,
                                  sizeof(msg), &inst);
    if (status != RH_OK) {
        return rh_task_fail(ctx, "%s", msg);
    }
    if (meta.keep_res && rh_task_keep_resources(ctx->task, &res)) {
        rh_actor_inst_keep(inst, &res);
    }
    rh_actor_inst_put(inst);
    return rh_task_return(ctx, 0, &rank, sizeof(rank));
}

static int rh_client_known(void *arg)
{
    int s = atomic_load(&((rh_actor_client_t *)arg)->state);

    return s == RH_CL_ALIVE || s == RH_CL_DEAD;
}

/* Where an actor whose owner died is: asked of its record in the GCS. */
typedef struct rh_orphan_ask {
    rh_tp_op_t op;    /* the read starts on the progress thread */
    rh_actor_t actor;
    unsigned   gen;   /* rh_cl_gen when asked: the cache may be gone since */
} rh_orphan_ask_t;

static void rh_client_orphan_found(void *arg, rh_status_t status,
                                   const rh_actor_record_t *rec)
{
    rh_orphan_ask_t *q = arg;
    rh_actor_client_t *c = NULL;
    char why[256];

    if (q->gen == atomic_load(&rh_cl_gen)) {
        c = rh_client_get(q->actor, 0);
    }
    if (c != NULL) {
        int at = status == RH_OK ? rh_actor_record_rank(rec) : -1;

        if (at >= 0 && rh_rank_alive(at)) {
            rh_client_located(c, at, rec->restarts, -2, NULL);
        } else {
            snprintf(why, sizeof(why), "actor %s: its owner, rank %u, died",
                     rh_actor_class_name(q->actor),
                     rh_actor_owner(q->actor));
            rh_client_located(c, -1, 0, -2, why);
        }
    }
    free(q);
}

/* Without c->lock: an answer may come at once and take it. */
static void rh_client_orphan_ask(rh_tp_op_t *op)
{
    rh_orphan_ask_t *q = (rh_orphan_ask_t *)op;
    rh_status_t status = rh_actor_record_read_async(q->actor,
                                                    rh_client_orphan_found,
                                                    q);

    if (status != RH_OK) {
        rh_client_orphan_found(q, status, NULL);
    }
}

/* Asks the GCS where the actor is, once its owner died. c->lock held.
 * Returns 0 when it could not (no memory). */
static int rh_client_ask_gcs(rh_actor_client_t *c)
{
    rh_orphan_ask_t *q = malloc(sizeof(*q));

    if (q == NULL) {
        return 0;
    }
    q->op.run = rh_client_orphan_ask;
    q->actor = c->actor;
    q->gen = atomic_load(&rh_cl_gen);
    c->orphan = 1;
    atomic_store(&c->state, RH_CL_ASKED);
    rh_tp_defer(&q->op);
    return 1;
}

/* Asks the owner where the actor is, once. c->lock held. Returns 0, or
 * -1 with why when the actor is known dead already (the caller then tells
 * the cache, with rh_client_located, once it let go of c->lock). */
static int rh_client_ask(rh_actor_client_t *c, char *why, size_t len)
{
    int owner = (int)rh_actor_owner(c->actor);

    if (c->state != RH_CL_UNKNOWN) {
        return 0;
    }
    if (owner == rh_rank()) {
        /* Ours: the table tells the cache itself, if it has the actor. */
        if (!rh_atab_has(c->actor)) {
            snprintf(why, len, "rank %d has no actor %llu (it ended, or the "
                     "handle is bad)", owner, (unsigned long long)c->actor.lo);
            return -1;
        }
        return 0;
    }
    if (!rh_rank_alive(owner)) {
        /* A detached actor outlives its owner: where it is, the owner's
         * last record in the GCS says (one that shared its owner's fate
         * ended, and its rank answers calls so). */
        if (rh_client_ask_gcs(c)) {
            return 0;
        }
        snprintf(why, len, "actor %s: its owner, rank %d, died",
                 rh_actor_class_name(c->actor), owner);
        return -1;
    }
    atomic_store(&c->state, RH_CL_ASKED);
    rh_actl_send(owner, RH_ACTL_LOCATE, c->actor, 0, 0, NULL);
    return 0;
}

rh_status_t rh_actor_ready(rh_actor_t actor, int64_t timeout_ms, int *rank)
{
    const rh_class_entry_t *cls;
    rh_actor_client_t *c;
    rh_status_t status = rh_actor_check(actor, &cls);

    if (status != RH_OK) {
        return status;
    }
    c = rh_client_get(actor, 1);
    if (c == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "actor cache");
    }
    {
        char why[256];
        int dead;

        pthread_mutex_lock(&c->lock);
        dead = rh_client_ask(c, why, sizeof(why));
        if (!dead && c->state == RH_CL_ALIVE && c->rank != rh_rank() &&
            !rh_rank_alive(c->rank)) {
            /* Its rank died: restarted elsewhere (the owner tells), or
             * dead. */
            if (rh_actor_restartable(actor)) {
                rh_client_unplace(c);
            } else {
                snprintf(why, sizeof(why), "actor %s on rank %d died: its "
                         "rank failed", cls->name, c->rank);
                dead = 1;
            }
        }
        pthread_mutex_unlock(&c->lock);
        if (dead) {
            rh_client_located(c, -1, 0, -2, why);
        }
    }
    if (!rh_client_known(c) &&
        !rh_core_wait_until_polled(rh_client_known, c,
                                   rh_deadline(timeout_ms))) {
        if (rh_core_ending_now()) {
            return rh_error_set(RH_ERR_SHUTDOWN, "rh_finalize began on "
                                "another thread while this call waited");
        }
        return rh_error_set(RH_ERR_TIMEOUT, "actor %s is not created yet",
                            cls->name);
    }
    pthread_mutex_lock(&c->lock);
    if (c->state == RH_CL_DEAD) {
        status = rh_error_set(RH_ERR_ACTOR_DEAD, "%s", c->why);
    } else if (rank != NULL) {
        *rank = c->rank >= 0 ? c->rank : rh_rank();
    }
    pthread_mutex_unlock(&c->lock);
    return status;
}

rh_status_t rh_actor_call(rh_actor_t actor, const char *method,
                          const rh_arg_t *args, int nargs,
                          const rh_call_params_t *params, rh_ref_t *rets)
{
    const rh_class_entry_t *cls;
    const rh_fn_entry_t *fn;
    rh_actor_client_t *c;
    rh_task_t *t;
    int m, nreturns;
    rh_status_t status = rh_actor_check(actor, &cls);

    if (status != RH_OK) {
        return status;
    }
    if ((m = rh_registry_method(cls, method)) < 0) {
        return method == NULL ?
               rh_error_set(RH_ERR_INVALID_PARAM, "rh_actor_call needs a "
                            "method name") :
               rh_error_set(RH_ERR_UNKNOWN_FUNCTION, "actor class %s has no "
                            "method %s", cls->name, method);
    }
    fn = &cls->methods[m];
    status = rh_registry_check_nargs(fn->name, fn->nargs, nargs);
    if (status == RH_OK && nargs > 0 && args == NULL) {
        status = rh_error_set(RH_ERR_BAD_ARG_COUNT, "%s: args is NULL but "
                              "nargs is %d", fn->name, nargs);
    }
    if (status != RH_OK) {
        return status;
    }
    nreturns = fn->nreturns;
    if (params != NULL &&
        (params->field_mask & RH_CALL_PARAM_FIELD_NUM_RETURNS)) {
        nreturns = params->num_returns;
    }
    if (nreturns > 0 && rets == NULL) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "%s has %d returns: rets "
                            "must have room for them", fn->name, nreturns);
    }
    c = rh_client_get(actor, 1);
    if (c == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "actor cache");
    }
    if (atomic_load_explicit(&c->state, memory_order_acquire) ==
        RH_CL_DEAD) {
        pthread_mutex_lock(&c->lock);
        status = rh_error_set(RH_ERR_ACTOR_DEAD, "%s", c->why);
        pthread_mutex_unlock(&c->lock);
        return status;
    }
    /* (A restartable actor's rank changes while its entry is ALIVE: that
     * one is checked under the lock, below.) */
    if (!rh_actor_restartable(actor) &&
        atomic_load_explicit(&c->state, memory_order_acquire) ==
        RH_CL_ALIVE && c->rank != rh_rank() && !rh_rank_alive(c->rank)) {
        /* The news of the death may reach our listener after it failed
         * our earlier calls: a later call fails here all the same. */
        return rh_error_set(RH_ERR_ACTOR_DEAD, "actor %s on rank %d died: "
                            "its rank failed", cls->name, c->rank);
    }
    if (params != NULL && (params->field_mask & RH_CALL_PARAM_FIELD_FLAGS) &&
        (params->flags & RH_TASK_FLAG_NONBLOCK) &&
        rh_am_wait_room(1) != RH_OK) {
        return RH_ERR_BUSY;
    }
    status = rh_task_build_call(fn, args, nargs, nreturns, rets, -1, 0, NULL,
                                NULL, &t);
    if (status != RH_OK) {
        return status;
    }
    t->actor = actor;
    t->call_method = (uint32_t)m;
    pthread_mutex_lock(&c->lock);
    if (c->state == RH_CL_ALIVE && c->rank != rh_rank() &&
        rh_actor_restartable(actor) && !rh_rank_alive(c->rank)) {
        /* Restarted elsewhere, or dead: the owner says which; this call
         * waits for the answer with the others. */
        rh_client_unplace(c);
    }
    if (c->state == RH_CL_ALIVE || c->state == RH_CL_DEAD) {
        rh_client_route(c, t);
        pthread_mutex_unlock(&c->lock);
        rh_task_submitted(t);
        return RH_OK;
    }
    t->call_next = NULL;
    if (c->qtail != NULL) {
        c->qtail->call_next = t;
    } else {
        c->qhead = t;
    }
    c->qtail = t;
    {
        char why[256];
        int dead = rh_client_ask(c, why, sizeof(why));

        pthread_mutex_unlock(&c->lock);
        if (dead) {
            /* known dead already: what waits fails */
            rh_client_located(c, -1, 0, -2, why);
        }
    }
    return RH_OK;
}

/* A call is ready to go to its actor's rank, or failed before. */
void rh_actor_call_send(rh_task_t *t)
{
    const char *dep = rh_task_dep_error(t);
    rh_actor_client_t *c;

    if (dep != NULL) {
        if (t->call_kept != NULL && rh_actor_call_skipped(t)) {
            /* a restarted instance was told */
        } else if (t->call_seq != 0 && t->forward_to >= 0) {
            /* Its number will never come: the actor moves past it. */
            rh_actl_send(t->forward_to, RH_ACTL_SKIP, t->actor, 0,
                         t->call_seq, NULL);
        }
        rh_task_fail_free(t, t->fail_status ? t->fail_status :
                          RH_ERR_TASK_FAILED, dep);
        return;
    }
    c = rh_client_get(t->actor, 0);
    if (c != NULL && t->call_kept == NULL &&
        atomic_load_explicit(&c->state, memory_order_acquire) == RH_CL_DEAD) {
        char why[sizeof(c->why)];

        /* (A kept call ends through its caller's kept list instead.)
         * Killed or dead for good while its arguments were on their way:
         * it fails here, as a call made now would. Sent, it could reach
         * the actor's rank before the kill did and run. Its number is not
         * skipped: the calls behind it end with the actor. */
        pthread_mutex_lock(&c->lock);
        snprintf(why, sizeof(why), "%s", c->why);
        pthread_mutex_unlock(&c->lock);
        rh_task_fail_free(t, RH_ERR_ACTOR_DEAD, why);
        return;
    }
    rh_forward_send(t);
}

void rh_actor_call_skip(int dest, uint64_t actor_hi, uint64_t actor_lo,
                        uint64_t seq)
{
    rh_actor_t a = { actor_hi, actor_lo };

    rh_actl_send(dest, RH_ACTL_SKIP, a, 0, seq, NULL);
}

void rh_actor_call_reject(rh_task_t *t, rh_status_t status, const char *msg)
{
    rh_task_fail_later(t, status, msg);
    t->actor_inst = NULL;
    t->forward_to = -1;
    t->call_seq = 0;
    rh_task_submitted(t);
}

static rh_status_t rh_actor_hold_delta(rh_actor_t actor, int delta)
{
    const rh_class_entry_t *cls;
    rh_status_t status = rh_actor_check(actor, &cls);
    rh_actor_client_t *c;
    int owner;

    if (status != RH_OK) {
        return status;
    }
    if ((c = rh_client_get(actor, 1)) == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "holding actor %s", cls->name);
    }
    /* The owner counts each rank's holds and drops only those a rank took:
     * this rank's count says at once when a release has nothing to drop. */
    if (delta > 0) {
        atomic_fetch_add(&c->holds, 1);
    } else {
        long held = atomic_load(&c->holds);

        do {
            if (held <= 0) {
                return rh_error_set(RH_ERR_INVALID_REF, "actor %s: rank %d "
                                    "released it more often than it held "
                                    "it (rh_actor_create, "
                                    "rh_actor_get_named, rh_actor_hold)",
                                    cls->name, rh_rank());
            }
        } while (!atomic_compare_exchange_weak(&c->holds, &held, held - 1));
    }
    owner = (int)rh_actor_owner(actor);
    if (owner == rh_rank()) {
        rh_atab_hold_tell(actor, owner, delta);
    } else {
        rh_actl_send(owner, RH_ACTL_HOLD, actor, delta, 0, NULL);
    }
    return RH_OK;
}

rh_status_t rh_actor_hold(rh_actor_t actor)
{
    return rh_actor_hold_delta(actor, 1);
}

rh_status_t rh_actor_release(rh_actor_t actor)
{
    return rh_actor_hold_delta(actor, -1);
}

/* A kill that restarts: this rank's later calls wait for the new instance
 * (the owner tells where it is) instead of reaching the one that ends. */
static void rh_kill_unplace(rh_actor_t actor)
{
    rh_actor_client_t *c = rh_client_get(actor, 1);

    if (c != NULL) {
        pthread_mutex_lock(&c->lock);
        rh_client_unplace(c);
        pthread_mutex_unlock(&c->lock);
    }
}

rh_status_t rh_actor_kill(rh_actor_t actor, int no_restart)
{
    const rh_class_entry_t *cls;
    rh_status_t status = rh_actor_check(actor, &cls);
    int owner;

    if (status != RH_OK) {
        return status;
    }
    owner = (int)rh_actor_owner(actor);
    /* A restart is its owner's to make: with the owner dead (a detached
     * actor outlives it), a kill ends it. */
    no_restart = no_restart != 0 || !rh_actor_restartable(actor) ||
                 (owner != rh_rank() && !rh_rank_alive(owner));
    if (owner == rh_rank()) {
        if (!no_restart) {
            rh_kill_unplace(actor);   /* before the table can place it */
        }
        rh_atab_kill_tell(actor, no_restart);
    } else if (!no_restart) {
        /* The owner restarts it, or says it is dead, to every rank; our
         * question where it went follows the kill. */
        rh_actl_send(owner, RH_ACTL_KILL, actor, 0, 0, NULL);
        rh_kill_unplace(actor);
    } else {
        rh_actor_client_t *c = rh_client_get(actor, 1);
        char why[256];
        int at = -1;

        snprintf(why, sizeof(why), "actor %s was killed by rank %d",
                 cls->name, rh_rank());
        if (rh_rank_alive(owner)) {
            rh_actl_send(owner, RH_ACTL_KILL, actor, 1, 0, NULL);
        } else if (c != NULL) {
            /* Its owner died: only a detached actor outlived it, and the
             * owner's table cannot end it now. Where this rank last knew
             * it to be is told directly. */
            rh_actor_record_t rec;

            pthread_mutex_lock(&c->lock);
            if (atomic_load(&c->state) == RH_CL_ALIVE) {
                at = c->rank;
            }
            pthread_mutex_unlock(&c->lock);
            /* Never located here (a handle just handed over or found by
             * name): the owner's last record says where. */
            if (at < 0 && !rh_tp_on_progress_thread() &&
                rh_actor_record_read(actor, &rec) == RH_OK) {
                at = rh_actor_record_rank(&rec);
            }
        }
        if (at == rh_rank()) {
            rh_actor_inst_t *inst = rh_actor_inst_find(actor);

            if (inst != NULL) {
                rh_actor_inst_owner_gone(inst);
                rh_actor_inst_end(inst, 1, why);
                rh_actor_inst_put(inst);
            }
        } else if (at >= 0 && rh_rank_alive(at)) {
            rh_actl_send(at, RH_ACTL_END, actor, 1, 0, why);
        }
        if (c != NULL) {
            rh_client_located(c, -1, 0, -2, why);
        }
    }
    return RH_OK;
}

rh_status_t rh_actor_get_named(const char *name, rh_actor_t *actor)
{
    rh_actor_t a = { 0, 0 };
    rh_status_t status;

    if (!rh_core_initialized()) {
        return rh_error_set(RH_ERR_NOT_INITIALIZED, "call rh_init first");
    }
    if (name == NULL || name[0] == '\0' ||
        strlen(name) >= RH_ACTOR_NAME_MAX || actor == NULL) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_actor_get_named needs "
                            "a name of 1 to %d characters and somewhere to "
                            "put the handle", RH_ACTOR_NAME_MAX - 1);
    }
    status = rh_name_find(name, &a);
    if (status == RH_ERR_NOT_FOUND) {
        return rh_error_set(status, "no actor is named %s", name);
    }
    if (status != RH_OK) {
        return rh_error_set(status, "actor name %s could not be read from "
                            "the GCS: %s", name, rh_last_error());
    }
    status = rh_actor_hold(a);
    if (status == RH_OK) {
        *actor = a;
    }
    return status;
}

/* ---- the wire ----------------------------------------------------------------- */

void rh_actor_ended_here(rh_actor_t actor, int killed, const char *why,
                         const char *name, int owner_gone)
{
    int owner = (int)rh_actor_owner(actor);

    (void)killed;
    if (owner == rh_rank()) {
        rh_atab_ended_tell(actor, rh_rank(), why);
    } else if (!owner_gone && rh_rank_alive(owner)) {
        rh_actl_send(owner, RH_ACTL_ENDED, actor, 0, 0, why);
    } else if (name != NULL && name[0] != '\0') {
        /* Its owner's table, which frees the name of an actor that ends,
         * died before it (a detached actor killed later, or one that
         * shared its owner's fate): the name is free again from here. */
        rh_name_drop(name);
    }
}

/* A call of rank src arrived (progress thread). */
static void rh_actor_call_run(int src, const rh_call_hdr_t *h,
                              const uint8_t *payload)
{
    rh_actor_t a = { h->actor_hi, h->actor_lo };
    const rh_class_entry_t *cls = rh_registry_class(rh_actor_class_id(a));
    rh_actor_inst_t *inst = rh_actor_inst_find_here(a);
    rh_arg_t few[8];
    rh_arg_t *args;
    rh_task_t *t = NULL;
    char msg[320];
    rh_status_t status;

    if (inst == NULL || rh_actor_inst_epoch(inst) != h->epoch) {
        /* Another instance's call (it ended, or was restarted here): its
         * numbers are not this one's. */
        int owner = (int)rh_actor_owner(a);

        if (inst == NULL && !rh_rank_alive(owner)) {
            snprintf(msg, sizeof(msg), "actor %s is not on rank %d (it "
                     "ended; its owner, rank %d, died)", cls ? cls->name :
                     "?", rh_rank(), owner);
        } else {
            snprintf(msg, sizeof(msg), "actor %s is not on rank %d (it %s)",
                     cls ? cls->name : "?", rh_rank(), inst == NULL ?
                     "ended" : "was restarted");
        }
        rh_forward_refuse((uint32_t)src, h->counter, (int)h->nreturns,
                          RH_ERR_ACTOR_DEAD, msg);
        if (inst != NULL) {
            rh_actor_inst_put(inst);
        }
        return;
    }
    args = h->nargs <= 8 ? few : malloc(h->nargs * sizeof(*args));
    if (args == NULL) {
        rh_forward_refuse((uint32_t)src, h->counter, (int)h->nreturns,
                          RH_ERR_NO_MEMORY, "out of memory receiving a "
                          "call");
        rh_actor_inst_arrived(inst, src, h->seq, NULL);
        rh_actor_inst_put(inst);
        return;
    }
    rh_forward_args_decode(payload, h->nargs, args);
    status = rh_task_build_call(&cls->methods[h->method], args,
                                (int)h->nargs, (int)h->nreturns, NULL, src,
                                h->counter, rh_forward_answer, NULL, &t);
    if (args != few) {
        free(args);
    }
    if (status != RH_OK) {
        snprintf(msg, sizeof(msg), "rank %d could not run %s: %s", rh_rank(),
                 cls->methods[h->method].name, rh_last_error());
        rh_forward_refuse((uint32_t)src, h->counter, (int)h->nreturns,
                          status, msg);
        t = NULL;
    } else {
        t->actor = a;
        t->call_method = h->method;
        t->call_seq = h->seq;   /* what a checkpoint says it ran */
    }
    rh_actor_inst_arrived(inst, src, h->seq, t);
    rh_actor_inst_put(inst);
}

static int rh_call_hdr_ok(const rh_call_hdr_t *h)
{
    rh_actor_t a = { h->actor_hi, h->actor_lo };
    const rh_class_entry_t *cls = rh_registry_class(rh_actor_class_id(a));

    return cls != NULL && (a.hi & 0xff) == 1 && a.lo != 0 &&
           h->method < (uint32_t)cls->nmethods && h->seq != 0 &&
           h->nreturns <= RH_MAX_RETURNS && h->nargs <= 65536 &&
           (cls->methods[h->method].nargs < 0 ||
            h->nargs == (uint32_t)cls->methods[h->method].nargs) &&
           h->counter != 0;
}

typedef struct rh_call_rndv {
    int           src;
    rh_call_hdr_t h;
    uint8_t      *buf;
    size_t        len;
} rh_call_rndv_t;

static void rh_call_rndv_arrived(void *arg, rh_status_t status)
{
    rh_call_rndv_t *x = arg;

    if (status == RH_OK &&
        rh_forward_items_ok(x->buf, x->len, x->h.nargs, 0)) {
        rh_actor_call_run(x->src, &x->h, x->buf);
    } else {
        rh_actor_inst_t *inst = rh_actor_inst_find_here((rh_actor_t){
                                    x->h.actor_hi, x->h.actor_lo });

        /* Never runs: its caller hears it, and later calls go on. */
        rh_forward_refuse((uint32_t)x->src, x->h.counter,
                          (int)x->h.nreturns, RH_ERR_MALFORMED,
                          "an actor's call came malformed");
        if (inst != NULL) {
            if (rh_actor_inst_epoch(inst) == x->h.epoch) {
                rh_actor_inst_arrived(inst, x->src, x->h.seq, NULL);
            }
            rh_actor_inst_put(inst);
        }
    }
    free(x->buf);
    free(x);
}

static rh_status_t rh_actor_on_call(void *arg, rh_am_msg_t *msg)
{
    rh_call_hdr_t h;

    (void)arg;
    memcpy(&h, msg->hdr, sizeof(h));
    if (!rh_call_hdr_ok(&h)) {
        return RH_ERR_MALFORMED;
    }
    if (msg->rndv_desc != NULL) {
        rh_call_rndv_t *x = calloc(1, sizeof(*x));

        if (x == NULL || (x->buf = malloc(msg->data_len)) == NULL) {
            free(x);
            return RH_ERR_NO_MEMORY;
        }
        x->src = (int)msg->src;
        x->h = h;
        x->len = msg->data_len;
        return rh_am_recv_data(msg, x->buf, rh_call_rndv_arrived, x);
    }
    if (!rh_forward_items_ok(msg->data, msg->data_len, h.nargs, 0)) {
        return RH_ERR_MALFORMED;
    }
    rh_actor_call_run((int)msg->src, &h, msg->data);
    return RH_OK;
}

static rh_status_t rh_actor_on_ctl(void *arg, rh_am_msg_t *msg)
{
    rh_actl_hdr_t h;
    rh_actor_t a;
    const rh_class_entry_t *cls;
    const char *text = NULL;
    int src = (int)msg->src;

    (void)arg;
    memcpy(&h, msg->hdr, sizeof(h));
    a.hi = h.actor_hi;
    a.lo = h.actor_lo;
    if (h.op == 0 || h.op > RH_ACTL_MAX || msg->rndv_desc != NULL ||
        msg->data_len > RH_ACTL_TEXT_MAX) {
        return RH_ERR_MALFORMED;
    }
    if (msg->data_len != 0) {
        text = msg->data;
        if (text[msg->data_len - 1] != '\0') {
            return RH_ERR_MALFORMED;
        }
    }
    if ((a.hi & 0xff) != 1 || a.lo == 0 ||
        rh_actor_owner(a) >= (uint32_t)rh_size() ||
        (cls = rh_registry_class(rh_actor_class_id(a))) == NULL) {
        return RH_ERR_MALFORMED;
    }
    switch (h.op) {
    case RH_ACTL_LOCATE:
        if (rh_actor_owner(a) != (uint32_t)rh_rank()) {
            return RH_ERR_MALFORMED;
        }
        rh_atab_locate_tell(a, src);
        return RH_OK;
    case RH_ACTL_WHERE: {
        rh_actor_client_t *c;

        if (rh_actor_owner(a) != (uint32_t)src ||
            (h.value >= 0 ? h.value >= rh_size() :
             h.value != RH_ERR_ACTOR_DEAD)) {
            return RH_ERR_MALFORMED;
        }
        c = rh_client_get(a, 0);
        if (c != NULL) {
            rh_client_located(c, h.value >= 0 ? h.value : -1,
                              (uint32_t)h.arg, (int32_t)(h.arg >> 32),
                              text ? text : "the actor is dead");
        }
        return RH_OK;
    }
    case RH_ACTL_HOLD:
        if (rh_actor_owner(a) != (uint32_t)rh_rank() ||
            (h.value != 1 && h.value != -1)) {
            return RH_ERR_MALFORMED;
        }
        rh_atab_hold_tell(a, src, h.value);
        return RH_OK;
    case RH_ACTL_KILL:
        if (rh_actor_owner(a) != (uint32_t)rh_rank()) {
            return RH_ERR_MALFORMED;
        }
        rh_atab_kill_tell(a, h.value != 0);
        return RH_OK;
    case RH_ACTL_END: {
        rh_actor_inst_t *inst;

        /* The owner ends its actors; a detached one that outlived its
         * owner is killed by whoever kills it (rh_actor_kill). */
        inst = rh_actor_inst_find(a);
        if (rh_actor_owner(a) != (uint32_t)src &&
            (inst == NULL || !rh_actor_inst_detached(inst) ||
             h.value == 0)) {
            if (inst != NULL) {
                rh_actor_inst_put(inst);
            }
            return inst == NULL ? RH_OK : RH_ERR_MALFORMED;
        }
        if (inst != NULL) {
            if (rh_actor_owner(a) != (uint32_t)src) {
                /* sent only once its owner died (rh_actor_kill) */
                rh_actor_inst_owner_gone(inst);
            }
            rh_actor_inst_end(inst, h.value != 0, text ? text :
                              "the actor ended");
            rh_actor_inst_put(inst);
        }
        return RH_OK;
    }
    case RH_ACTL_ENDED:
        if (rh_actor_owner(a) != (uint32_t)rh_rank()) {
            return RH_ERR_MALFORMED;
        }
        rh_atab_ended_tell(a, src, text ? text : "the actor ended");
        return RH_OK;
    case RH_ACTL_SKIP: {
        rh_actor_inst_t *inst;

        if (h.arg == 0) {
            return RH_ERR_MALFORMED;
        }
        inst = rh_actor_inst_find(a);
        if (inst != NULL) {
            rh_actor_inst_arrived(inst, src, h.arg, NULL);
            rh_actor_inst_put(inst);
        }
        return RH_OK;
    }
    case RH_ACTL_FROM: {
        rh_actor_inst_t *inst;

        if (h.arg == 0 || h.value < 0) {
            return RH_ERR_MALFORMED;
        }
        inst = rh_actor_inst_find(a);
        if (inst != NULL) {
            if (rh_actor_inst_epoch(inst) == (uint32_t)h.value) {
                rh_actor_inst_from(inst, src, h.arg);
            }
            rh_actor_inst_put(inst);
        }
        return RH_OK;
    }
    case RH_ACTL_COVERED: {
        rh_actor_client_t *c;

        if (rh_actor_owner(a) != (uint32_t)src) {
            return RH_ERR_MALFORMED;
        }
        c = rh_client_get(a, 0);
        if (c != NULL) {
            rh_resend_covered(&c->rs, h.arg);
        }
        return RH_OK;
    }
    default:
        return RH_ERR_MALFORMED;
    }
}

/* ---- checkpoints: the instance's rank sends them, the owner keeps the
 * last one per actor (RH_AM_ID_ACTOR_CKPT) ---------------------------------- */

typedef struct rh_ckpt_msg {
    uint64_t actor_hi, actor_lo;
    uint32_t epoch;      /* the instance that took it */
    uint32_t reserved;
} rh_ckpt_msg_t;

void rh_actor_call_from(int dest, rh_actor_t a, uint32_t epoch,
                        uint64_t first)
{
    rh_actl_send(dest, RH_ACTL_FROM, a, (int32_t)epoch, first, NULL);
}

/* The owner keeps blob (checked) as a's last checkpoint, when it comes
 * from the instance now placed, and tells each caller it covers up to
 * where. */
static void rh_ckpt_store(rh_actor_t a, uint32_t epoch, const void *blob,
                          size_t len)
{
    rh_ckpt_hdr_t h;
    const uint8_t *callers, *state;
    rh_recipe_t **slot;
    uint8_t *copy;
    int kept = 0;

    if (rh_ckpt_parse(blob, len, &h, &callers, &state) != 0) {
        rh_warn("actor %s: a checkpoint came malformed",
                rh_actor_class_name(a));
        return;
    }
    copy = malloc(len ? len : 1);
    if (copy == NULL) {
        rh_warn("actor %s: no memory to keep its checkpoint: a restart "
                "takes the previous one", rh_actor_class_name(a));
        return;
    }
    memcpy(copy, blob, len);
    pthread_mutex_lock(&rh_recipe_lock);
    slot = rh_hmap_get(&rh_recipes, &a.lo);
    /* Not while a restart is submitted (the recipe is out), nor from an
     * instance that ended since. */
    if (slot != NULL && (uint32_t)(*slot)->meta.epoch == epoch) {
        free((*slot)->ckpt);
        (*slot)->ckpt = copy;
        (*slot)->ckpt_len = len;
        copy = NULL;
        kept = 1;
    }
    pthread_mutex_unlock(&rh_recipe_lock);
    free(copy);
    for (uint32_t i = 0; kept && i < h.ncallers; i++) {
        rh_ckpt_caller_t c;

        memcpy(&c, callers + i * sizeof(c), sizeof(c));
        if (c.rank == rh_rank()) {
            rh_actor_client_t *cl = rh_client_get(a, 0);

            if (cl != NULL) {
                rh_resend_covered(&cl->rs, c.seq);
            }
        } else if (c.rank >= 0 && c.rank < rh_size()) {
            rh_actl_send((int)c.rank, RH_ACTL_COVERED, a, 0, c.seq, NULL);
        }
    }
}

typedef struct rh_ckpt_send {
    _Atomic int done;
    rh_status_t status;
} rh_ckpt_send_t;

static void rh_ckpt_sent(void *arg, rh_status_t status)
{
    rh_ckpt_send_t *s = arg;

    s->status = status;
    atomic_store(&s->done, 1);
    rh_future_notify();
}

static int rh_ckpt_send_done(void *arg)
{
    return atomic_load(&((rh_ckpt_send_t *)arg)->done);
}

void rh_actor_checkpoint_taken(rh_actor_t actor, uint32_t epoch,
                               const void *blob, size_t len)
{
    int owner = (int)rh_actor_owner(actor);
    rh_ckpt_msg_t h = { actor.hi, actor.lo, epoch, 0 };
    rh_ckpt_send_t s = { 0, RH_OK };
    rh_status_t status;

    if (owner == rh_rank()) {
        rh_ckpt_store(actor, epoch, blob, len);
        return;
    }
    /* The actor goes on once its checkpoint left this rank: sends of
     * other threads can wait behind a flood of incoming calls, and a
     * checkpoint still queued here dies with the rank. */
    status = rh_am_send((uint32_t)owner, RH_AM_ID_ACTOR_CKPT, &h, sizeof(h),
                        blob, len, rh_ckpt_sent, &s);
    if (status == RH_OK) {
        (void)rh_core_wait_until(rh_ckpt_send_done, &s, 0);
        status = s.status;
    }
    if (status != RH_OK) {
        rh_warn("actor %s: its checkpoint could not be sent to its owner, "
                "rank %d: %s", rh_actor_class_name(actor), owner,
                status == s.status ? rh_status_string(status) :
                rh_last_error());
    }
}

typedef struct rh_ckpt_rndv {
    rh_ckpt_msg_t h;
    uint8_t      *buf;
    size_t        len;
} rh_ckpt_rndv_t;

static void rh_ckpt_rndv_arrived(void *arg, rh_status_t status)
{
    rh_ckpt_rndv_t *x = arg;
    rh_actor_t a = { x->h.actor_hi, x->h.actor_lo };

    if (status == RH_OK) {
        rh_ckpt_store(a, x->h.epoch, x->buf, x->len);
    }
    free(x->buf);
    free(x);
}

static rh_status_t rh_actor_on_ckpt(void *arg, rh_am_msg_t *msg)
{
    rh_ckpt_msg_t h;
    rh_actor_t a;

    (void)arg;
    memcpy(&h, msg->hdr, sizeof(h));
    a.hi = h.actor_hi;
    a.lo = h.actor_lo;
    if ((a.hi & 0xff) != 1 || a.lo == 0 || !rh_actor_restartable(a) ||
        rh_actor_owner(a) != (uint32_t)rh_rank() ||
        rh_registry_class(rh_actor_class_id(a)) == NULL) {
        return RH_ERR_MALFORMED;
    }
    if (msg->rndv_desc != NULL) {
        rh_ckpt_rndv_t *x = calloc(1, sizeof(*x));

        if (x == NULL || (x->buf = malloc(msg->data_len ? msg->data_len :
                                          1)) == NULL) {
            free(x);
            return RH_ERR_NO_MEMORY;
        }
        x->h = h;
        x->len = msg->data_len;
        return rh_am_recv_data(msg, x->buf, rh_ckpt_rndv_arrived, x);
    }
    rh_ckpt_store(a, h.epoch, msg->data, msg->data_len);
    return RH_OK;
}

rh_status_t rh_actor_checkpoint(rh_task_ctx_t *ctx)
{
    rh_actor_inst_t *inst;
    rh_status_t status;

    if (ctx == NULL || rh_actor_is_null(ctx->actor) || ctx->task == NULL ||
        !ctx->task->is_call ||
        (inst = rh_actor_inst_find(ctx->actor)) == NULL) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_actor_checkpoint is "
                            "called from an actor's method");
    }
    status = rh_actor_inst_ask_checkpoint(inst);
    rh_actor_inst_put(inst);
    return status;
}

/* A rank died: its actors, its holds, the calls it made, the actors it
 * owned, the names it kept. */
static void rh_actor_on_peer_failure(void *arg, int rank)
{
    rh_hmap_iter_t it;
    void *k, *v;
    char why[256];

    (void)arg;
    rh_atab_rank_died(rank, rh_atab_tell);
    rh_actor_inst_caller_died(rank);
    snprintf(why, sizeof(why), "ended: its owner, rank %d, died", rank);
    rh_actor_inst_end_owned_by(rank, why);
    /* Clients: actors on that rank, or whose owner it was and that are not
     * placed yet, are dead. */
    for (;;) {
        rh_actor_client_t *hit = NULL;
        int orphan = 0;

        pthread_mutex_lock(&rh_cl_lock);
        rh_hmap_iter_init(&it, &rh_clients);
        while (rh_hmap_iter_next(&it, &k, &v)) {
            rh_actor_client_t *c = *(rh_actor_client_t **)v;
            int s = atomic_load(&c->state);

            if (rh_actor_restartable(c->actor) && s == RH_CL_ALIVE &&
                rh_actor_owner(c->actor) == (uint32_t)rank &&
                c->rank != rank && rh_resend_active(&c->rs)) {
                hit = c;   /* placed elsewhere, its owner gone */
                orphan = 1;
                break;
            }
            if (rh_actor_restartable(c->actor) &&
                rh_actor_owner(c->actor) != (uint32_t)rank) {
                /* Its owner may restart it: ask where it went. (Its rank
                 * changes under its lock.) */
                if (s == RH_CL_ALIVE) {
                    pthread_mutex_lock(&c->lock);
                    if (c->state == RH_CL_ALIVE && c->rank == rank) {
                        rh_client_unplace(c);
                    }
                    pthread_mutex_unlock(&c->lock);
                }
                continue;
            }
            if (s != RH_CL_DEAD && s != RH_CL_ALIVE && !c->orphan &&
                rh_actor_owner(c->actor) == (uint32_t)rank) {
                /* Asked the owner, which died before it answered: a
                 * detached actor outlives it, and the GCS's record says
                 * where (one that shared its owner's fate ended, and its
                 * rank answers calls so). */
                int asked;

                pthread_mutex_lock(&c->lock);
                s = atomic_load(&c->state);
                asked = s != RH_CL_DEAD && s != RH_CL_ALIVE && !c->orphan &&
                        rh_client_ask_gcs(c);
                pthread_mutex_unlock(&c->lock);
                if (asked || s == RH_CL_DEAD || s == RH_CL_ALIVE) {
                    continue;
                }
            }
            if ((s == RH_CL_ALIVE && c->rank == rank) ||
                (s != RH_CL_DEAD && s != RH_CL_ALIVE &&
                 rh_actor_owner(c->actor) == (uint32_t)rank)) {
                hit = c;
                break;
            }
        }
        pthread_mutex_unlock(&rh_cl_lock);
        if (hit == NULL) {
            break;
        }
        if (orphan) {
            /* Nobody restarts it now: calls lost or refused unrun fail
             * instead of waiting for a new place that never comes, and no
             * more are kept (a detached instance that outlives its owner
             * answers the others). */
            snprintf(why, sizeof(why), "actor %s cannot be restarted: its "
                     "owner, rank %d, died", rh_actor_class_name(hit->actor),
                     rank);
            pthread_mutex_lock(&hit->lock);
            rh_resend_dead(&hit->rs, why);
            pthread_mutex_unlock(&hit->lock);
            continue;
        }
        snprintf(why, sizeof(why), "actor %s %s: rank %d failed",
                 rh_actor_class_name(hit->actor),
                 hit->rank == rank ? "died" : "is lost", rank);
        rh_client_located(hit, -1, 0, -2, why);
    }
    /* Name requests to that rank end by themselves (they watch it). */
}

rh_status_t rh_actor_setup(void)
{
    rh_status_t status = RH_OK;

    if (rh_registry_find(RH_ACTOR_CREATE_FN) == NULL) {
        status = rh_register(RH_ACTOR_CREATE_FN, rh_actor_create_run, -1, 1);
    }
    rh_registry_freeze();
    rh_atab_init(rh_rank(), rh_size());
    if (status == RH_OK) {
        status = rh_am_register(RH_AM_ID_ACTOR_CALL, sizeof(rh_call_hdr_t),
                                sizeof(rh_call_hdr_t), rh_actor_on_call,
                                NULL);
    }
    if (status == RH_OK) {
        status = rh_am_register(RH_AM_ID_ACTOR_CTL, sizeof(rh_actl_hdr_t),
                                sizeof(rh_actl_hdr_t), rh_actor_on_ctl, NULL);
    }
    if (status == RH_OK) {
        status = rh_am_register(RH_AM_ID_ACTOR_CKPT, sizeof(rh_ckpt_msg_t),
                                sizeof(rh_ckpt_msg_t), rh_actor_on_ckpt,
                                NULL);
    }
    if (status == RH_OK) {
        status = rh_tp_on_peer_failure(rh_actor_on_peer_failure, NULL);
    }
    return status;
}

void rh_actor_shutdown(void)
{
    rh_actor_inst_end_all("ended: the job is finalizing");
}

void rh_actor_teardown(void)
{
    rh_actor_client_t *c;
    rh_actor_t a;

    while (rh_hmap_pop(&rh_clients, &a, &c)) {
        rh_task_t *q = c->qhead;

        /* Calls that never learnt their place: their futures go with the
         * future table. */
        while (q != NULL) {
            rh_task_t *next = q->call_next;

            q->nreturns = 0;
            q->block = NULL;
            rh_task_free(q);
            q = next;
        }
        if (c->inst != NULL) {
            rh_actor_inst_put(c->inst);
        }
        rh_resend_clear(&c->rs);
        pthread_mutex_destroy(&c->lock);
        free(c);
    }
    rh_hmap_fini(&rh_clients);
    {
        rh_recipe_t *r;
        uint64_t key;

        pthread_mutex_lock(&rh_recipe_lock);
        while (rh_hmap_pop(&rh_recipes, &key, &r)) {
            rh_recipe_free(r);
        }
        rh_hmap_fini(&rh_recipes);
        rh_hmap_fini(&rh_task_retries);
        pthread_mutex_unlock(&rh_recipe_lock);
    }
    rh_cl_last = NULL;
    atomic_fetch_add(&rh_cl_gen, 1);
    rh_actor_inst_hot_clear();
    rh_atab_clear();
}
