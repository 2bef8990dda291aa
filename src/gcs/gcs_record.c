/*
 * Records kept up to date in the GCS: at most one write in flight per
 * record, the newest value waiting behind it.
 */
#include "gcs/gcs_record.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/status.h"
#include "core/core.h"
#include "transport/transport.h"

struct rh_gcs_record {
    rh_gcs_op_t     op;         /* the write in flight */
    pthread_mutex_t lock;
    int             busy;       /* op is in flight */
    int             dropped;    /* free once nothing is left to write */
    void           *cur;        /* op's value */
    void           *next;       /* the value still to write */
    size_t          next_len;
    int             has_next;
    int             next_del;   /* the waiting change deletes the key */
    int             next_stamped;   /* ... with a stamp (sput, sdel) */
    uint64_t        next_stamp;
    uint64_t        sets, acked;
    uint8_t         key[RH_GCS_KEY_MAX];
};

static void rh_gcs_record_done(rh_gcs_op_t *op);

static void rh_gcs_record_free(rh_gcs_record_t *r)
{
    pthread_mutex_destroy(&r->lock);
    free(r->cur);
    free(r->next);
    free(r);
}

/* Ends the write in flight (ended), lets go of the record (drop), then
 * starts the waiting value's write when none is in flight, or frees a
 * dropped record with nothing left to write. Each change of state and the
 * decision taken on it happen under one hold of the lock, so that the
 * owner's drop and the completion never both free it. Never called with
 * the lock held: a write may be answered before rh_gcs_put_async
 * returns. */
static void rh_gcs_record_kick(rh_gcs_record_t *r, int ended, int drop)
{
    for (;;) {
        uint64_t upto;
        int gone;

        pthread_mutex_lock(&r->lock);
        if (ended) {
            r->busy = 0;
            r->acked = (uint64_t)(uintptr_t)r->op.arg;
            free(r->cur);
            r->cur = NULL;
            ended = 0;
        }
        if (drop) {
            r->dropped = 1;
            drop = 0;
        }
        if (r->busy || !r->has_next) {
            gone = r->dropped && !r->busy;
            pthread_mutex_unlock(&r->lock);
            if (gone) {
                rh_gcs_record_free(r);
            }
            return;
        }
        int del = r->next_del, stamped = r->next_stamped;

        r->cur = r->next;
        r->next = NULL;
        r->has_next = 0;
        r->next_del = 0;
        r->next_stamped = 0;
        r->op.expect = r->next_stamp;
        r->busy = 1;
        upto = r->sets;
        r->op.value = r->cur;
        r->op.vlen = r->next_len;
        r->op.arg = (void *)(uintptr_t)upto;
        r->op.done = rh_gcs_record_done;
        pthread_mutex_unlock(&r->lock);
        if ((stamped ? (del ? rh_gcs_sdel_async(&r->op) :
                        rh_gcs_sput_async(&r->op)) :
             del ? rh_gcs_del_async(&r->op) : rh_gcs_put_async(&r->op)) ==
            RH_OK) {
            return;   /* done kicks again (it may have already) */
        }
        /* The GCS is not running (yet, or any more): the value is not
         * stored; the next set tries again. */
        rh_debug("GCS record of table %s not written: %s",
                 rh_gcs_table_name(r->op.table), rh_last_error());
        ended = 1;
    }
}

static void rh_gcs_record_done(rh_gcs_op_t *op)
{
    /* A delete of a key never written (or deleted already) is done too,
     * and so is a stamped write that a later change overtook. */
    if (op->status != RH_OK && op->status != RH_ERR_NOT_FOUND &&
        op->status != RH_ERR_CONFLICT) {
        rh_debug("GCS record of table %s not written: %s",
                 rh_gcs_table_name(op->table),
                 rh_status_string(op->status));
    }
    rh_gcs_record_kick((rh_gcs_record_t *)op, 1, 0);
}

/* The change (value, or a delete) waits for its turn, replacing any other
 * still waiting. */
static void rh_gcs_record_change(rh_gcs_record_t *r, void *value,
                                 size_t vlen, int del, int stamped,
                                 uint64_t stamp)
{
    pthread_mutex_lock(&r->lock);
    r->sets++;
    free(r->next);   /* replaced before it went out: only the newest counts */
    r->next = value;
    r->next_len = vlen;
    r->next_del = del;
    r->next_stamped = stamped;
    r->next_stamp = stamp;
    r->has_next = 1;
    pthread_mutex_unlock(&r->lock);
    rh_gcs_record_kick(r, 0, 0);
}

rh_gcs_record_t *rh_gcs_record_new(int table, const void *key, size_t klen)
{
    rh_gcs_record_t *r;

    if (table < 0 || table >= RH_GCS_T_SUB || key == NULL || klen == 0 ||
        klen > RH_GCS_KEY_MAX) {
        rh_error_set(RH_ERR_INVALID_PARAM, "GCS record: a table below %d "
                     "and a key of 1..%u bytes are needed", RH_GCS_T_SUB,
                     RH_GCS_KEY_MAX);
        return NULL;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        rh_error_set(RH_ERR_NO_MEMORY, "GCS record");
        return NULL;
    }
    pthread_mutex_init(&r->lock, NULL);
    memcpy(r->key, key, klen);
    r->op.table = (uint8_t)table;
    r->op.key = r->key;
    r->op.klen = klen;
    return r;
}

static rh_status_t rh_gcs_record_put(rh_gcs_record_t *r, const void *value,
                                     size_t vlen, int stamped,
                                     uint64_t stamp)
{
    void *copy;

    if (r == NULL || (value == NULL && vlen != 0)) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "GCS record: a record and "
                            "a value are needed");
    }
    if (vlen > RH_GCS_VALUE_MAX) {
        return rh_error_set(RH_ERR_TOO_LARGE, "GCS record value of %zu "
                            "bytes; at most %u", vlen, RH_GCS_VALUE_MAX);
    }
    copy = malloc(vlen != 0 ? vlen : 1);
    if (copy == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "GCS record value");
    }
    if (vlen != 0) {
        memcpy(copy, value, vlen);
    }
    rh_gcs_record_change(r, copy, vlen, 0, stamped, stamp);
    return RH_OK;
}

rh_status_t rh_gcs_record_set(rh_gcs_record_t *r, const void *value,
                              size_t vlen)
{
    return rh_gcs_record_put(r, value, vlen, 0, 0);
}

rh_status_t rh_gcs_record_set_stamped(rh_gcs_record_t *r, const void *value,
                                      size_t vlen, uint64_t stamp)
{
    return rh_gcs_record_put(r, value, vlen, 1, stamp);
}

static rh_status_t rh_gcs_record_del(rh_gcs_record_t *r, int stamped,
                                     uint64_t stamp)
{
    if (r == NULL) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "GCS record: a record is "
                            "needed");
    }
    rh_gcs_record_change(r, NULL, 0, 1, stamped, stamp);
    return RH_OK;
}

rh_status_t rh_gcs_record_delete(rh_gcs_record_t *r)
{
    return rh_gcs_record_del(r, 0, 0);
}

rh_status_t rh_gcs_record_delete_stamped(rh_gcs_record_t *r, uint64_t stamp)
{
    return rh_gcs_record_del(r, 1, stamp);
}

static int rh_gcs_record_caught_up(void *arg)
{
    uint64_t acked, sets;

    rh_gcs_record_counts(arg, &acked, &sets);
    return acked == sets;
}

int rh_gcs_record_wait(rh_gcs_record_t *r, uint64_t deadline_ns)
{
    return r != NULL && !rh_tp_on_progress_thread() &&
           rh_core_wait_until_polled(rh_gcs_record_caught_up, r,
                                     deadline_ns);
}

void rh_gcs_record_counts(rh_gcs_record_t *r, uint64_t *acked,
                          uint64_t *sets)
{
    pthread_mutex_lock(&r->lock);
    *acked = r->acked;
    *sets = r->sets;
    pthread_mutex_unlock(&r->lock);
}

void rh_gcs_record_drop(rh_gcs_record_t *r)
{
    if (r != NULL) {
        rh_gcs_record_kick(r, 0, 1);
    }
}
