#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hashmap.h"
#include "base/log.h"
#include "base/status.h"
#include "core/actor_resend.h"
#include "core/core.h"
#include "core/registry.h"
#include "transport/transport.h"

enum {
    RH_KC_NEW  = 0,   /* numbered, not sent yet: its task points here */
    RH_KC_SENT = 1,   /* in flight to sent_rank */
    RH_KC_LOST = 2,   /* its instance died before answering: e holds its
                       * entry until it is sent again */
    RH_KC_DONE = 3    /* answered, or skipped (an argument failed) */
};

struct rh_kcall {
    rh_resend_t   *r;          /* NULL: its actor died before it was sent */
    rh_kcall_t    *prev, *next;
    uint64_t       counter;    /* 0 until sent */
    uint64_t       seq;
    uint32_t       method, nargs;
    int            nreturns;
    const char    *name;       /* the method's (registry entries stay) */
    int            state;
    int            skipped;
    int            tries;      /* times sent again */
    uint32_t       sent_epoch;
    rh_inflight_t  e;
    uint8_t       *payload;
    size_t         len;
};

static pthread_mutex_t rh_kc_lock = PTHREAD_MUTEX_INITIALIZER;
/* counter -> rh_kcall_t *, for the calls sent */
static rh_hmap_t rh_kc_sent = RH_HMAP_INITIALIZER(sizeof(uint64_t),
                                                  sizeof(void *));

void rh_resend_init(rh_resend_t *r, rh_actor_t a)
{
    memset(r, 0, sizeof(*r));
    r->actor = a;
    r->rank = -1;
}

void rh_resend_setup(rh_resend_t *r, int retries, int until_covered)
{
    pthread_mutex_lock(&rh_kc_lock);
    r->retries = retries;
    r->until_covered = until_covered;
    pthread_mutex_unlock(&rh_kc_lock);
}

static void rh_kc_unlink(rh_kcall_t *k)
{
    rh_resend_t *r = k->r;

    if (k->prev != NULL) {
        k->prev->next = k->next;
    } else {
        r->head = k->next;
    }
    if (k->next != NULL) {
        k->next->prev = k->prev;
    } else {
        r->tail = k->prev;
    }
    k->prev = k->next = NULL;
    if (k->counter != 0) {
        (void)rh_hmap_del(&rh_kc_sent, &k->counter, NULL);
    }
}

static void rh_kc_free(rh_kcall_t *k)
{
    free(k->payload);
    free(k);
}

/* Frees the oldest calls that no instance will need again: answered (or
 * skipped) and, with checkpoints, covered. Only from the head, so that
 * the calls kept are all those from the first number a new instance must
 * see. */
static void rh_kc_trim(rh_resend_t *r)
{
    while (r->head != NULL && r->head->state == RH_KC_DONE &&
           (!r->until_covered || r->head->seq <= r->covered)) {
        rh_kcall_t *k = r->head;

        rh_kc_unlink(k);
        rh_kc_free(k);
    }
}

void rh_resend_route(rh_resend_t *r, rh_task_t *t)
{
    rh_kcall_t *k;

    t->call_kept = NULL;
    if (r->retries == 0) {
        return;
    }
    k = calloc(1, sizeof(*k));
    if (k == NULL) {
        rh_warn("actor call %s is not kept for a resend: out of memory",
                t->fn->name);
        return;
    }
    k->r = r;
    k->seq = t->call_seq;
    k->method = t->call_method;
    k->nargs = (uint32_t)t->nargs;
    k->nreturns = t->nreturns;
    k->name = t->fn->name;
    k->sent_epoch = t->call_epoch;
    pthread_mutex_lock(&rh_kc_lock);
    /* Numbers are given in order under the entry's lock: append. */
    k->prev = r->tail;
    if (r->tail != NULL) {
        r->tail->next = k;
    } else {
        r->head = k;
    }
    r->tail = k;
    pthread_mutex_unlock(&rh_kc_lock);
    t->call_kept = k;
}

/* Fails, after the lock is let go, the calls of a list linked by next:
 * a failed future may wake code that makes calls. */
static void rh_kc_fail_list(rh_kcall_t *dead, const char *why)
{
    while (dead != NULL) {
        rh_kcall_t *next = dead->next;

        rh_forward_call_fail(&dead->e, why);
        rh_kc_free(dead);
        dead = next;
    }
}

/* Sends k to the instance at r->rank (lock held); a call lost more
 * often than max_task_retries moves to *doomed instead. */
static void rh_kc_send(rh_kcall_t *k, rh_kcall_t **doomed, char *why,
                       size_t len)
{
    rh_resend_t *r = k->r;
    rh_inflight_t e;
    rh_status_t status;

    if (k->state == RH_KC_LOST && r->retries >= 0 &&
        k->tries >= r->retries) {
        snprintf(why, len, "the call of %s to actor %s was not answered: "
                 "its actor's rank died %d time%s (max_task_retries %d)",
                 k->name, rh_registry_class(
                     (unsigned)((r->actor.hi >> 8) & 0x7fffffu))->name,
                 k->tries + 1, k->tries ? "s" : "", r->retries);
        rh_kc_unlink(k);
        k->next = *doomed;
        *doomed = k;
        return;
    }
    k->tries++;
    k->sent_epoch = r->epoch;
    if (k->state == RH_KC_DONE && (k->skipped || !r->until_covered)) {
        /* Nothing to run again: the instance moves past its number. */
        rh_actor_call_skip(r->rank, r->actor.hi, r->actor.lo, k->seq);
        return;
    }
    if (k->state == RH_KC_LOST) {
        e = k->e;
    } else {
        /* Answered, run again for a restored instance: nobody waits. */
        memset(&e, 0, sizeof(e));
        e.nreturns = k->nreturns;
        e.name = k->name;
    }
    status = rh_forward_call_resend(r->rank, r->actor, k->counter, k->seq,
                                    r->epoch, k->method, k->nargs,
                                    k->payload, k->len, &e);
    if (k->state == RH_KC_LOST) {
        if (status == RH_OK) {
            k->state = RH_KC_SENT;
        } else {
            k->e = e;   /* sent again at the next place */
        }
    }
}

void rh_resend_placed(rh_resend_t *r, int rank, uint32_t epoch,
                      uint64_t next)
{
    rh_kcall_t *doomed = NULL;
    char why[320];

    pthread_mutex_lock(&rh_kc_lock);
    r->rank = rank;
    r->epoch = epoch;
    /* Our own rank too: calls to a restarted instance here go by message
     * (rh_client_located), numbered like any caller's. */
    if (epoch > 0) {
        rh_actor_call_from(rank, r->actor, epoch,
                           r->head != NULL ? r->head->seq : next);
    }
    for (rh_kcall_t *k = r->head, *n; k != NULL; k = n) {
        n = k->next;
        if ((k->state == RH_KC_LOST || k->state == RH_KC_DONE) &&
            k->sent_epoch != epoch) {
            rh_kc_send(k, &doomed, why, sizeof(why));
        }
    }
    rh_kc_trim(r);
    pthread_mutex_unlock(&rh_kc_lock);
    rh_kc_fail_list(doomed, why);
}

void rh_resend_unplaced(rh_resend_t *r)
{
    pthread_mutex_lock(&rh_kc_lock);
    r->rank = -1;
    pthread_mutex_unlock(&rh_kc_lock);
}

void rh_resend_dead(rh_resend_t *r, const char *why)
{
    rh_kcall_t *doomed = NULL;

    pthread_mutex_lock(&rh_kc_lock);
    r->rank = -1;
    while (r->head != NULL) {
        rh_kcall_t *k = r->head;

        rh_kc_unlink(k);
        if (k->state == RH_KC_NEW) {
            k->r = NULL;   /* its task frees it when it is sent */
        } else if (k->state == RH_KC_LOST) {
            k->next = doomed;
            doomed = k;
        } else {
            /* In flight: it fails or is answered as any call. */
            rh_kc_free(k);
        }
    }
    r->retries = 0;   /* later calls fail at once */
    pthread_mutex_unlock(&rh_kc_lock);
    rh_kc_fail_list(doomed, why);
}

void rh_resend_covered(rh_resend_t *r, uint64_t seq)
{
    pthread_mutex_lock(&rh_kc_lock);
    if (seq > r->covered) {
        r->covered = seq;
    }
    rh_kc_trim(r);
    pthread_mutex_unlock(&rh_kc_lock);
}

int rh_resend_active(rh_resend_t *r)
{
    int active;

    pthread_mutex_lock(&rh_kc_lock);
    active = r->retries != 0;
    pthread_mutex_unlock(&rh_kc_lock);
    return active;
}

size_t rh_resend_kept(rh_resend_t *r)
{
    size_t n = 0;

    pthread_mutex_lock(&rh_kc_lock);
    for (rh_kcall_t *k = r->head; k != NULL; k = k->next) {
        n++;
    }
    pthread_mutex_unlock(&rh_kc_lock);
    return n;
}

void rh_resend_clear(rh_resend_t *r)
{
    pthread_mutex_lock(&rh_kc_lock);
    while (r->head != NULL) {
        rh_kcall_t *k = r->head;

        rh_kc_unlink(k);
        if (k->state == RH_KC_LOST) {
            free(k->e.held);   /* the futures go with the future table */
            free(k->e.borrowed);
        }
        rh_kc_free(k);
    }
    if (rh_hmap_count(&rh_kc_sent) == 0) {
        rh_hmap_fini(&rh_kc_sent);
    }
    pthread_mutex_unlock(&rh_kc_lock);
}

/* ---- the forwarding path's side ---------------------------------------- */

int rh_actor_call_keep(rh_task_t *t, uint64_t counter, const void *payload,
                       size_t len)
{
    rh_kcall_t *k = t->call_kept;
    rh_resend_t *r;
    int added = 0, kept = 1;
    void **slot;

    t->call_kept = NULL;
    pthread_mutex_lock(&rh_kc_lock);
    r = k->r;
    if (r == NULL) {
        pthread_mutex_unlock(&rh_kc_lock);
        rh_kc_free(k);
        return 0;
    }
    k->payload = malloc(len ? len : 1);
    slot = k->payload ? rh_hmap_put(&rh_kc_sent, &counter, &added) : NULL;
    if (slot == NULL || !added) {
        rh_warn("actor call %s is not kept for a resend: out of memory",
                k->name);
        rh_kc_unlink(k);
        pthread_mutex_unlock(&rh_kc_lock);
        rh_kc_free(k);
        return 0;
    }
    *slot = k;
    memcpy(k->payload, payload, len);
    k->len = len;
    k->counter = counter;
    k->state = RH_KC_SENT;
    if (r->epoch != t->call_epoch) {
        /* Numbered for an instance that is gone: the new one waits for
         * this number. */
        if (r->rank >= 0) {
            t->forward_to = r->rank;
            t->call_epoch = r->epoch;
        } else {
            kept = 2;   /* held until the new place is known */
        }
    }
    k->sent_epoch = t->call_epoch;
    pthread_mutex_unlock(&rh_kc_lock);
    return kept;
}

void rh_actor_call_answered(uint64_t counter)
{
    rh_kcall_t **slot, *k, *doomed = NULL;
    char why[320];

    pthread_mutex_lock(&rh_kc_lock);
    slot = rh_hmap_get(&rh_kc_sent, &counter);
    if (slot != NULL && (k = *slot)->state == RH_KC_SENT) {
        rh_resend_t *r = k->r;

        k->state = RH_KC_DONE;
        if (r->rank >= 0 && k->sent_epoch != r->epoch) {
            /* Answered by an instance that ended since (a kill): the one
             * now placed waits for its number. */
            rh_kc_send(k, &doomed, why, sizeof(why));
        }
        rh_kc_trim(r);
    }
    pthread_mutex_unlock(&rh_kc_lock);
    rh_kc_fail_list(doomed, why);
}

int rh_actor_call_lost(uint64_t counter, int rank, rh_inflight_t *e)
{
    rh_kcall_t **slot, *k, *doomed = NULL;
    char why[320];
    int kept = 0;

    (void)rank;
    pthread_mutex_lock(&rh_kc_lock);
    slot = rh_hmap_get(&rh_kc_sent, &counter);
    if (slot != NULL && (*slot)->state == RH_KC_DONE) {
        /* A replay for a restored instance (it holds nothing): replayed
         * again at the next place; its answered futures stay as they
         * are. */
        kept = 1;
    } else if (slot != NULL && (k = *slot)->state == RH_KC_SENT) {
        rh_resend_t *r = k->r;

        k->e = *e;
        k->state = RH_KC_LOST;
        kept = 1;
        if (r->retries >= 0 && k->tries >= r->retries) {
            rh_kc_send(k, &doomed, why, sizeof(why));   /* fails it */
        } else if (r->rank >= 0 && k->sent_epoch != r->epoch &&
                   rh_rank_alive(r->rank)) {
            rh_kc_send(k, &doomed, why, sizeof(why));
        }
    }
    pthread_mutex_unlock(&rh_kc_lock);
    rh_kc_fail_list(doomed, why);
    return kept;
}

int rh_actor_call_skipped(rh_task_t *t)
{
    rh_kcall_t *k = t->call_kept;
    rh_resend_t *r;
    int told = 0;

    t->call_kept = NULL;
    pthread_mutex_lock(&rh_kc_lock);
    r = k->r;
    if (r == NULL) {
        pthread_mutex_unlock(&rh_kc_lock);
        rh_kc_free(k);
        return 0;
    }
    k->state = RH_KC_DONE;
    k->skipped = 1;
    if (r->epoch != t->call_epoch) {
        /* The instance waiting for it is a new one (or not placed yet:
         * it hears at its placement). */
        if (r->rank >= 0) {
            rh_actor_call_skip(r->rank, r->actor.hi, r->actor.lo, k->seq);
        }
        k->sent_epoch = r->epoch;
        told = 1;
    }
    rh_kc_trim(r);
    pthread_mutex_unlock(&rh_kc_lock);
    return told;
}
