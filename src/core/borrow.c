#include "core/borrow.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/hashmap.h"
#include "base/log.h"
#include "base/status.h"
#include "core/future.h"
#include "transport/am.h"
#include "transport/transport.h"

typedef struct rh_borrow_hdr {
    uint64_t hi, lo;
    int32_t  delta;    /* +1: hold it for me; -1: I let it go */
    uint32_t reserved;
} rh_borrow_hdr_t;

/* Borrower side: id -> how many tasks here hold it (rank 0), a long.
 * Owner side: (id, borrower rank) -> balance of the borrower's messages,
 * and the future held for the borrower while the balance is positive. */
typedef struct rh_borrow_key {
    rh_object_id_t id;
    int64_t        rank;   /* 64 bits: the key has no padding to hash */
} rh_borrow_key_t;

typedef struct rh_lent_val {
    long         count;
    rh_future_t *fut;
} rh_lent_val_t;

typedef struct rh_borrow_table {
    pthread_mutex_t lock;
    rh_hmap_t       map;
} rh_borrow_table_t;

#define RH_BORROW_TABLE_INIT(vsize)                                          \
    { .lock = PTHREAD_MUTEX_INITIALIZER,                                     \
      .map = RH_HMAP_INITIALIZER(sizeof(rh_borrow_key_t), (vsize)) }

static rh_borrow_table_t rh_held = RH_BORROW_TABLE_INIT(sizeof(long));
static rh_borrow_table_t rh_lent = RH_BORROW_TABLE_INIT(sizeof(rh_lent_val_t));
static _Atomic long rh_lent_count;

static rh_borrow_key_t rh_borrow_key(rh_object_id_t id, int rank)
{
    rh_borrow_key_t k = { id, rank };

    return k;
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
    rh_borrow_key_t k = rh_borrow_key(id, 0);
    long *count;

    pthread_mutex_lock(&rh_held.lock);
    count = rh_hmap_put(&rh_held.map, &k, NULL);
    if (count == NULL) {
        pthread_mutex_unlock(&rh_held.lock);
        rh_warn("out of memory borrowing an object: it lives only as "
                "long as its owner holds it");
        return;
    }
    if ((*count)++ == 0) {
        rh_borrow_send(id, 1);
    }
    pthread_mutex_unlock(&rh_held.lock);
}

void rh_borrow_drop(rh_object_id_t id)
{
    rh_borrow_key_t k = rh_borrow_key(id, 0);
    long *count;

    pthread_mutex_lock(&rh_held.lock);
    count = rh_hmap_get(&rh_held.map, &k);
    if (count != NULL && --*count == 0) {
        rh_borrow_send(id, -1);
        (void)rh_hmap_del(&rh_held.map, &k, NULL);
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
    rh_borrow_key_t k = rh_borrow_key(id, rank);
    /* held from here: a last release meanwhile cannot free it */
    rh_future_t *f = delta > 0 ? rh_future_find_hold(id) : NULL;
    rh_lent_val_t *v;
    long before;

    pthread_mutex_lock(&rh_lent.lock);
    v = rh_hmap_get(&rh_lent.map, &k);
    if (v == NULL) {
        if (delta > 0 && f == NULL) {
            /* Released before the borrower said so: nothing left to keep
             * (its task will say what is missing when it runs). */
            pthread_mutex_unlock(&rh_lent.lock);
            return;
        }
        v = rh_hmap_put(&rh_lent.map, &k, NULL);
        if (v == NULL) {
            pthread_mutex_unlock(&rh_lent.lock);
            rh_warn("out of memory counting a borrow of an object by rank "
                    "%d: the object goes with its owner's last release",
                    rank);
            if (f != NULL) {
                rh_future_unhold(f);
            }
            return;
        }
        v->count = 0;
        v->fut = NULL;
    }
    before = v->count;
    v->count += delta;
    if (before <= 0 && v->count > 0 && f != NULL) {
        v->fut = f;   /* the lookup's hold is the borrower's */
        f = NULL;
        atomic_fetch_add(&rh_lent_count, 1);
    } else if (before > 0 && v->count <= 0 && v->fut != NULL) {
        atomic_fetch_sub(&rh_lent_count, 1);
        rh_future_unhold(v->fut);
        v->fut = NULL;
    }
    if (v->count == 0) {
        (void)rh_hmap_del(&rh_lent.map, &k, NULL);
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

/* A borrower died: what it held goes (a scan: deaths are rare). */
static void rh_borrow_on_peer_failure(void *arg, int rank)
{
    rh_hmap_iter_t it;
    void *key, *val;

    (void)arg;
    pthread_mutex_lock(&rh_lent.lock);
    rh_hmap_iter_init(&it, &rh_lent.map);
    while (rh_hmap_iter_next(&it, &key, &val)) {
        rh_borrow_key_t k;

        memcpy(&k, key, sizeof(k));
        if (k.rank != rank) {
            continue;
        }
        if (((rh_lent_val_t *)val)->fut != NULL) {
            atomic_fetch_sub(&rh_lent_count, 1);
            rh_future_unhold(((rh_lent_val_t *)val)->fut);
        }
        rh_hmap_iter_del(&it);
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
    rh_hmap_fini(&t->map);
    pthread_mutex_unlock(&t->lock);
}

/* The futures go with the future table. */
void rh_borrow_teardown(void)
{
    rh_borrow_clear(&rh_held);
    rh_borrow_clear(&rh_lent);
    atomic_store(&rh_lent_count, 0);
}
