#include "core/borrow.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/status.h"
#include "core/future.h"
#include "transport/am.h"
#include "transport/transport.h"

#define RH_BORROW_BUCKETS 256   /* few objects are borrowed at once */

typedef struct rh_borrow_hdr {
    uint64_t hi, lo;
    int32_t  delta;    /* +1: hold it for me; -1: I let it go */
    uint32_t reserved;
} rh_borrow_hdr_t;

/* Borrower side: id -> how many tasks here hold it (rank unused).
 * Owner side: (id, borrower rank) -> balance of the borrower's messages,
 * and the future held for the borrower while the balance is positive. */
typedef struct rh_borrow_entry rh_borrow_entry_t;
struct rh_borrow_entry {
    rh_borrow_entry_t *next;
    rh_object_id_t     id;
    int                rank;
    long               count;
    rh_future_t       *fut;
};

typedef struct rh_borrow_table {
    pthread_mutex_t    lock;
    rh_borrow_entry_t *bucket[RH_BORROW_BUCKETS];
} rh_borrow_table_t;

static rh_borrow_table_t rh_held = { .lock = PTHREAD_MUTEX_INITIALIZER };
static rh_borrow_table_t rh_lent = { .lock = PTHREAD_MUTEX_INITIALIZER };
static _Atomic long rh_lent_count;

static rh_borrow_entry_t **rh_borrow_slot(rh_borrow_table_t *t,
                                          rh_object_id_t id, int rank)
{
    uint64_t h = (id.hi * 0x9e3779b97f4a7c15ull) ^ id.lo ^ (uint64_t)rank;
    rh_borrow_entry_t **pp = &t->bucket[(h ^ (h >> 29)) %
                                        RH_BORROW_BUCKETS];

    while (*pp != NULL && !(rh_object_id_equal((*pp)->id, id) &&
                            (*pp)->rank == rank)) {
        pp = &(*pp)->next;
    }
    return pp;
}

/* Sent under the table's lock: a +1 and the -1 after it leave in order
 * from one thread, and go through the progress thread's queue in the order
 * they were made. */
static void rh_borrow_send(rh_object_id_t id, int32_t delta)
{
    rh_borrow_hdr_t h = { id.hi, id.lo, delta, 0 };
    uint32_t owner = rh_object_id_owner(id);

    if (rh_am_send(owner, RH_AM_ID_OBJ_BORROW, &h, sizeof(h), NULL, 0, NULL,
                   NULL) != RH_OK) {
        /* The owner is gone: its objects are lost anyway. */
        rh_debug("borrow of an object of rank %u: %s", owner,
                 rh_last_error());
    }
}

void rh_borrow_hold(rh_object_id_t id)
{
    rh_borrow_entry_t **pp, *e;

    pthread_mutex_lock(&rh_held.lock);
    pp = rh_borrow_slot(&rh_held, id, 0);
    if ((e = *pp) == NULL) {
        e = calloc(1, sizeof(*e));
        if (e == NULL) {
            pthread_mutex_unlock(&rh_held.lock);
            rh_warn("out of memory borrowing an object: it lives only as "
                    "long as its owner holds it");
            return;
        }
        e->id = id;
        *pp = e;
    }
    if (e->count++ == 0) {
        rh_borrow_send(id, 1);
    }
    pthread_mutex_unlock(&rh_held.lock);
}

void rh_borrow_drop(rh_object_id_t id)
{
    rh_borrow_entry_t **pp, *e;

    pthread_mutex_lock(&rh_held.lock);
    pp = rh_borrow_slot(&rh_held, id, 0);
    e = *pp;
    if (e != NULL && --e->count == 0) {
        rh_borrow_send(id, -1);
        *pp = e->next;
        free(e);
    }
    pthread_mutex_unlock(&rh_held.lock);
}

long rh_borrow_lent(void)
{
    return atomic_load(&rh_lent_count);
}

/* Owner side: rank's balance for id moves by delta; the future is held
 * while the balance is positive. */
static void rh_borrow_lend(rh_object_id_t id, int rank, int32_t delta)
{
    rh_borrow_entry_t **pp, *e;
    /* held from here: a last release meanwhile cannot free it */
    rh_future_t *f = delta > 0 ? rh_future_find_hold(id) : NULL;
    long before;

    pthread_mutex_lock(&rh_lent.lock);
    pp = rh_borrow_slot(&rh_lent, id, rank);
    if ((e = *pp) == NULL) {
        if (delta > 0 && f == NULL) {
            /* Released before the borrower said so: nothing left to keep
             * (its task will say what is missing when it runs). */
            pthread_mutex_unlock(&rh_lent.lock);
            return;
        }
        e = calloc(1, sizeof(*e));
        if (e == NULL) {
            pthread_mutex_unlock(&rh_lent.lock);
            if (f != NULL) {
                rh_future_unhold(f);
            }
            return;
        }
        e->id = id;
        e->rank = rank;
        *pp = e;
    }
    before = e->count;
    e->count += delta;
    if (before <= 0 && e->count > 0 && f != NULL) {
        e->fut = f;   /* the lookup's hold is the borrower's */
        f = NULL;
        atomic_fetch_add(&rh_lent_count, 1);
    } else if (before > 0 && e->count <= 0 && e->fut != NULL) {
        atomic_fetch_sub(&rh_lent_count, 1);
        rh_future_unhold(e->fut);
        e->fut = NULL;
    }
    if (e->count == 0) {
        *pp = e->next;
        free(e);
    }
    pthread_mutex_unlock(&rh_lent.lock);
    if (f != NULL) {
        rh_future_unhold(f);
    }
}

static rh_status_t rh_borrow_on_msg(void *arg, rh_am_msg_t *msg)
{
    rh_borrow_hdr_t h;
    rh_object_id_t id = rh_object_id_read(msg->hdr);   /* hi, lo first */

    (void)arg;
    memcpy(&h, msg->hdr, sizeof(h));
    if ((h.delta != 1 && h.delta != -1) || msg->data_len != 0 ||
        rh_object_id_owner(id) != (uint32_t)rh_rank()) {
        return RH_ERR_MALFORMED;
    }
    rh_borrow_lend(id, (int)msg->src, h.delta);
    return RH_OK;
}

/* A borrower died: what it held goes. */
static void rh_borrow_on_peer_failure(void *arg, int rank)
{
    (void)arg;
    pthread_mutex_lock(&rh_lent.lock);
    for (int b = 0; b < RH_BORROW_BUCKETS; b++) {
        rh_borrow_entry_t **pp = &rh_lent.bucket[b];

        while (*pp != NULL) {
            rh_borrow_entry_t *e = *pp;

            if (e->rank != rank) {
                pp = &e->next;
                continue;
            }
            if (e->fut != NULL) {
                atomic_fetch_sub(&rh_lent_count, 1);
                rh_future_unhold(e->fut);
            }
            *pp = e->next;
            free(e);
        }
    }
    pthread_mutex_unlock(&rh_lent.lock);
}

rh_status_t rh_borrow_setup(void)
{
    rh_status_t status = rh_am_register(RH_AM_ID_OBJ_BORROW,
                                        sizeof(rh_borrow_hdr_t),
                                        sizeof(rh_borrow_hdr_t),
                                        rh_borrow_on_msg, NULL);

    if (status == RH_OK) {
        status = rh_tp_on_peer_failure(rh_borrow_on_peer_failure, NULL);
    }
    return status;
}

static void rh_borrow_clear(rh_borrow_table_t *t)
{
    pthread_mutex_lock(&t->lock);
    for (int b = 0; b < RH_BORROW_BUCKETS; b++) {
        while (t->bucket[b] != NULL) {
            rh_borrow_entry_t *e = t->bucket[b];

            t->bucket[b] = e->next;
            free(e);
        }
    }
    pthread_mutex_unlock(&t->lock);
}

/* The futures go with the future table. */
void rh_borrow_teardown(void)
{
    rh_borrow_clear(&rh_held);
    rh_borrow_clear(&rh_lent);
    atomic_store(&rh_lent_count, 0);
}
