#include "core/actor_table.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hashmap.h"
#include "base/status.h"
#include "core/actor.h"
#include "core/actor_record.h"
#include "core/core.h"

typedef struct rh_atab_entry {
    rh_actor_t   actor;
    int          state;
    int          rank;
    int          detached;
    int          kill_asked;
    int          creating;       /* the creation has not answered */
    int          ended;          /* the instance is gone (or never was) */
    long         holds;          /* in all */
    int32_t     *rank_holds;     /* per rank */
    uint8_t     *askers;         /* ranks waiting for the place */
    char         name[RH_ATAB_NAME_MAX];
    char         why[256];
    int          restarts_left;  /* -1: no limit */
    uint32_t     epoch;          /* restarts so far */
    int          await_end;      /* a restart waits for the end of the
                                  * instance on this rank; -1: none */
} rh_atab_entry_t;

static pthread_mutex_t rh_at_lock = PTHREAD_MUTEX_INITIALIZER;
static rh_hmap_t rh_atab = RH_HMAP_INITIALIZER(sizeof(uint64_t),
                                               sizeof(void *));
static int rh_at_me, rh_at_size;

static const char *rh_atab_class(rh_actor_t a)
{
    const rh_class_entry_t *c = rh_registry_class(rh_actor_class_id(a));

    return c ? c->name : "?";
}

void rh_atab_news_init(rh_atab_news_t *n)
{
    memset(n, 0, sizeof(*n));
    n->rank = -2;
    n->end_rank = -1;
}

void rh_atab_init(int me, int size)
{
    rh_at_me = me;
    rh_at_size = size;
}

static rh_atab_entry_t *rh_atab_find(rh_actor_t a)
{
    rh_atab_entry_t **p;

    if (rh_actor_owner(a) != (uint32_t)rh_at_me) {
        return NULL;
    }
    p = rh_hmap_get(&rh_atab, &a.lo);
    return p ? *p : NULL;
}

/* Each change of state goes to the actor's record in the GCS. */
static void rh_atab_record(const rh_atab_entry_t *e)
{
    rh_actor_record_note(e->actor, e->state, e->rank, e->epoch, e->name,
                         e->why);
}

static void rh_atab_free(rh_atab_entry_t *e)
{
    rh_actor_record_forget(e->actor);
    free(e->rank_holds);
    free(e->askers);
    free(e);
}

/* A dead entry whose instance is gone and whose creation answered leaves
 * the table: later questions about it are answered as about an actor that
 * ended. */
static void rh_atab_reap(rh_atab_entry_t *e)
{
    if (e->state == RH_AT_DEAD && e->ended && !e->creating) {
        (void)rh_hmap_del(&rh_atab, &e->actor.lo, NULL);
        rh_atab_free(e);
    }
}

/* Hands the askers to the news: of a restartable actor every other rank,
 * whose handles must follow its restarts and its death. */
static void rh_atab_askers(rh_atab_entry_t *e, rh_atab_news_t *n)
{
    n->askers = e->askers;
    e->askers = NULL;
    if (rh_actor_restartable(e->actor) && n->askers == NULL) {
        n->askers = calloc((size_t)rh_at_size, 1);
    }
    if (rh_actor_restartable(e->actor) && n->askers != NULL) {
        memset(n->askers, 1, (size_t)rh_at_size);
        n->askers[rh_at_me] = 0;
    }
}

/* The entry dies: askers hear it, the instance ends (end_rank), the name
 * goes. */
static void rh_atab_die(rh_atab_entry_t *e, const char *why, int end_kill,
                        rh_atab_news_t *n)
{
    if (e->state == RH_AT_DEAD) {
        return;
    }
    if (e->state == RH_AT_ALIVE && !e->ended) {
        n->end_rank = e->rank;
        n->end_kill = end_kill;
    }
    e->state = RH_AT_DEAD;
    snprintf(e->why, sizeof(e->why), "%s", why);
    snprintf(n->why, sizeof(n->why), "%s", why);
    n->rank = -1;
    rh_atab_record(e);
    rh_atab_askers(e, n);
    snprintf(n->name, sizeof(n->name), "%s", e->name);
    e->name[0] = '\0';
}

/* Starts a restart: the entry is PENDING again until the new creation
 * answers; the ranks that ask meanwhile hear of it then, and so do all
 * others (they may hold the handle). */
static void rh_atab_restart(rh_atab_entry_t *e, rh_atab_news_t *n)
{
    if (e->restarts_left > 0) {
        e->restarts_left--;
    }
    e->epoch++;
    e->state = RH_AT_PENDING;
    e->rank = -1;
    e->creating = 1;
    e->ended = 0;
    e->kill_asked = 0;
    n->restart = 1;
    rh_atab_record(e);
}

rh_status_t rh_atab_add(rh_actor_t a, int detached, const char *name,
                        int max_restarts)
{
    rh_atab_entry_t *e = calloc(1, sizeof(*e)), **slot;
    int added = 0;

    if (e != NULL) {
        e->rank_holds = calloc((size_t)rh_at_size, sizeof(*e->rank_holds));
        e->askers = calloc((size_t)rh_at_size, 1);
    }
    if (e == NULL || e->rank_holds == NULL || e->askers == NULL) {
        if (e != NULL) {
            rh_atab_free(e);
        }
        return rh_error_set(RH_ERR_NO_MEMORY, "actor table");
    }
    e->actor = a;
    e->state = RH_AT_PENDING;
    e->rank = -1;
    e->detached = detached;
    e->creating = 1;
    e->holds = 1;
    e->rank_holds[rh_at_me] = 1;
    e->restarts_left = max_restarts;
    e->await_end = -1;
    if (name != NULL) {
        snprintf(e->name, sizeof(e->name), "%s", name);
    }
    pthread_mutex_lock(&rh_at_lock);
    slot = rh_hmap_put(&rh_atab, &a.lo, &added);
    if (slot != NULL && added) {
        *slot = e;
        rh_atab_record(e);
    }
    pthread_mutex_unlock(&rh_at_lock);
    if (slot == NULL || !added) {
        rh_atab_free(e);
        return rh_error_set(slot ? RH_ERR_INVALID_PARAM : RH_ERR_NO_MEMORY,
                            "actor table: %s", slot ? "the handle exists" :
                            "out of memory");
    }
    return RH_OK;
}

void rh_atab_remove(rh_actor_t a)
{
    rh_atab_entry_t *e;

    pthread_mutex_lock(&rh_at_lock);
    e = rh_atab_find(a);
    if (e != NULL) {
        (void)rh_hmap_del(&rh_atab, &a.lo, NULL);
        rh_atab_free(e);
    }
    pthread_mutex_unlock(&rh_at_lock);
}

void rh_atab_created(rh_actor_t a, int rank, const char *why,
                     rh_atab_news_t *where, rh_atab_news_t *death)
{
    rh_atab_entry_t *e;
    char msg[512];

    rh_atab_news_init(where);
    rh_atab_news_init(death);
    pthread_mutex_lock(&rh_at_lock);
    e = rh_atab_find(a);
    if (e == NULL || e->state != RH_AT_PENDING) {
        if (e != NULL) {
            e->creating = 0;
            if (e->state == RH_AT_DEAD && rank >= 0 && rank < rh_at_size) {
                /* killed while it was being made: this instance ends */
                death->end_rank = rank;
                death->end_kill = 1;
                snprintf(death->why, sizeof(death->why), "%s", e->why);
            }
            rh_atab_reap(e);
        }
        pthread_mutex_unlock(&rh_at_lock);
        return;
    }
    e->creating = 0;
    if (rank < 0 || rank >= rh_at_size) {
        snprintf(msg, sizeof(msg), "actor %s of rank %d could not be "
                 "created: %s", rh_atab_class(a), rh_at_me,
                 why ? why : "no rank answered");
        e->ended = 1;
        rh_atab_die(e, msg, 1, where);
    } else {
        e->state = RH_AT_ALIVE;
        e->rank = rank;
        rh_atab_record(e);
        where->rank = rank;
        where->epoch = e->epoch;
        if (e->epoch > 0) {
            rh_atab_askers(e, where);
        } else {
            where->askers = e->askers;
            e->askers = NULL;
        }
        if (e->kill_asked || (e->holds == 0 && !e->detached)) {
            snprintf(msg, sizeof(msg), "actor %s on rank %d was %s",
                     rh_atab_class(a), rank, e->kill_asked ? "killed" :
                     "dropped by every holder");
            rh_atab_die(e, msg, e->kill_asked, death);
        }
    }
    rh_atab_reap(e);
    pthread_mutex_unlock(&rh_at_lock);
}

void rh_atab_hold(rh_actor_t a, int rank, int delta, rh_atab_news_t *n)
{
    rh_atab_entry_t *e;

    rh_atab_news_init(n);
    pthread_mutex_lock(&rh_at_lock);
    e = rh_atab_find(a);
    if (e != NULL && rank >= 0 && rank < rh_at_size &&
        (delta > 0 || e->rank_holds[rank] > 0)) {
        e->rank_holds[rank] += delta;
        e->holds += delta;
        if (e->holds == 0 && !e->detached && e->state == RH_AT_ALIVE) {
            char why[256];

            snprintf(why, sizeof(why), "actor %s on rank %d ended: every "
                     "holder dropped it", rh_atab_class(a), e->rank);
            rh_atab_die(e, why, 0, n);
        }
    }
    pthread_mutex_unlock(&rh_at_lock);
}

void rh_atab_kill(rh_actor_t a, int no_restart, rh_atab_news_t *n)
{
    rh_atab_entry_t *e;

    rh_atab_news_init(n);
    pthread_mutex_lock(&rh_at_lock);
    e = rh_atab_find(a);
    if (e != NULL) {
        if (!no_restart && e->state == RH_AT_ALIVE && e->restarts_left != 0) {
            /* The instance ends first: its end starts the restart, so that
             * the new one never meets the old one on a rank. */
            snprintf(n->why, sizeof(n->why), "actor %s on rank %d was "
                     "killed to be restarted", rh_atab_class(a), e->rank);
            n->end_rank = e->rank;
            n->end_kill = 1;
            e->await_end = e->rank;
            e->state = RH_AT_PENDING;
            e->rank = -1;
            e->creating = 1;   /* no reaping until the restart answers */
            rh_atab_record(e);
        } else if (e->state == RH_AT_PENDING &&
                   (!no_restart || e->await_end >= 0)) {
            e->kill_asked = 1;
        } else if (e->state == RH_AT_PENDING) {
            /* Not made yet, and its creation may wait for resources that
             * never free: dead now; an instance made later ends at once
             * (rh_atab_created). */
            char why[256];

            snprintf(why, sizeof(why), "actor %s was killed before it was "
                     "created", rh_atab_class(a));
            rh_atab_die(e, why, 1, n);
        } else {
            char why[256];

            snprintf(why, sizeof(why), "actor %s on rank %d was killed",
                     rh_atab_class(a), e->rank);
            rh_atab_die(e, why, 1, n);
        }
    }
    pthread_mutex_unlock(&rh_at_lock);
}

void rh_atab_ended(rh_actor_t a, int rank, const char *why,
                   rh_atab_news_t *n)
{
    rh_atab_entry_t *e;

    rh_atab_news_init(n);
    pthread_mutex_lock(&rh_at_lock);
    e = rh_atab_find(a);
    if (e != NULL && e->await_end >= 0 && e->await_end == rank) {
        e->await_end = -1;
        rh_atab_restart(e, n);
    } else if (e != NULL && rh_actor_restartable(a) &&
               e->state != RH_AT_DEAD && e->rank != rank) {
        /* an earlier instance's end: the actor lives on elsewhere */
    } else if (e != NULL) {
        e->ended = 1;
        rh_atab_die(e, why, 1, n);
        rh_atab_reap(e);
    }
    pthread_mutex_unlock(&rh_at_lock);
}

int rh_atab_locate(rh_actor_t a, int asker, int *rank, uint32_t *epoch,
                   char *why, size_t len)
{
    rh_atab_entry_t *e;
    int state;

    pthread_mutex_lock(&rh_at_lock);
    e = rh_atab_find(a);
    if (e == NULL) {
        state = RH_AT_NONE;
        snprintf(why, len, "rank %d has no actor %llu (it ended, or the "
                 "handle is bad)", rh_at_me, (unsigned long long)a.lo);
    } else {
        state = e->state;
        *rank = e->rank;
        *epoch = e->epoch;
        snprintf(why, len, "%s", e->why);
        if (state == RH_AT_ALIVE && rh_actor_restartable(a) &&
            !rh_rank_alive(e->rank)) {
            state = RH_AT_PENDING;   /* its death is on its way here */
        }
        /* A restart's askers were handed on with the place it had: every
         * rank hears of the restarted instance anyway (rh_atab_askers). */
        if (state == RH_AT_PENDING && e->askers != NULL && asker >= 0 &&
            asker < rh_at_size) {
            e->askers[asker] = 1;
        }
    }
    pthread_mutex_unlock(&rh_at_lock);
    return state;
}

int rh_atab_has(rh_actor_t a)
{
    int has;

    pthread_mutex_lock(&rh_at_lock);
    has = rh_atab_find(a) != NULL;
    pthread_mutex_unlock(&rh_at_lock);
    return has;
}

void rh_atab_rank_died(int rank,
                       void (*tell)(rh_actor_t a, rh_atab_news_t *n))
{
    rh_hmap_iter_t it;
    void *k, *v;

    for (;;) {
        rh_atab_entry_t *hit = NULL;
        rh_actor_t a = { 0, 0 };
        rh_atab_news_t n;
        char why[256];

        rh_atab_news_init(&n);
        pthread_mutex_lock(&rh_at_lock);
        rh_hmap_iter_init(&it, &rh_atab);
        while (rh_hmap_iter_next(&it, &k, &v)) {
            rh_atab_entry_t *e = *(rh_atab_entry_t **)v;

            if (e->state == RH_AT_DEAD) {
                if (e->rank == rank && !e->ended && !e->creating) {
                    /* its end will never be told: it is over */
                    rh_hmap_iter_del(&it);
                    rh_atab_free(e);
                }
                continue;
            }
            if (e->rank_holds[rank] > 0) {
                e->holds -= e->rank_holds[rank];
                e->rank_holds[rank] = 0;
            }
            if (e->askers != NULL) {
                e->askers[rank] = 0;
            }
            if (e->state == RH_AT_PENDING && e->await_end == rank) {
                e->await_end = -1;   /* its end will never be told */
                rh_atab_restart(e, &n);
                hit = e;
                break;
            }
            if (e->state == RH_AT_ALIVE && e->rank == rank &&
                e->restarts_left != 0) {
                rh_atab_restart(e, &n);
                hit = e;
                break;
            }
            if (e->state == RH_AT_ALIVE && e->rank == rank) {
                snprintf(why, sizeof(why), "actor %s on rank %d died: its "
                         "rank failed", rh_atab_class(e->actor), rank);
                e->ended = 1;
                rh_atab_die(e, why, 1, &n);
                hit = e;
                break;
            }
            if (e->state == RH_AT_ALIVE && e->holds == 0 && !e->detached) {
                snprintf(why, sizeof(why), "actor %s on rank %d ended: every "
                         "holder dropped it", rh_atab_class(e->actor),
                         e->rank);
                rh_atab_die(e, why, 0, &n);
                hit = e;
                break;
            }
        }
        if (hit != NULL) {
            a = hit->actor;
            rh_atab_reap(hit);
        }
        pthread_mutex_unlock(&rh_at_lock);
        if (hit == NULL) {
            return;
        }
        tell(a, &n);
    }
}

void rh_atab_clear(void)
{
    rh_atab_entry_t *e;
    uint64_t key;

    pthread_mutex_lock(&rh_at_lock);
    while (rh_hmap_pop(&rh_atab, &key, &e)) {
        rh_atab_free(e);
    }
    rh_hmap_fini(&rh_atab);
    rh_actor_record_clear();
    pthread_mutex_unlock(&rh_at_lock);
}
