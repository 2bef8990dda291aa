/*
 * Records of spilled objects in the GCS (object_record.h): one gcs_record
 * per spilled copy this process wrote, set when it is spilled and deleted
 * when the copy is read back or freed.
 */
#include "core/object_record.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hashmap.h"
#include "base/log.h"
#include "base/status.h"
#include "core/core.h"
#include "gcs/gcs.h"
#include "gcs/gcs_record.h"
#include "plasma/store.h"
#include "transport/transport.h"

static pthread_mutex_t rh_orec_lock = PTHREAD_MUTEX_INITIALIZER;
static rh_hmap_t rh_orecs = RH_HMAP_INITIALIZER(sizeof(rh_object_id_t),
                                                sizeof(rh_gcs_record_t *));
static _Atomic int rh_orec_on;
static _Atomic uint64_t rh_orec_now, rh_orec_written, rh_orec_deleted;

size_t rh_object_record_key(rh_object_id_t id, int node, char *key,
                            size_t cap)
{
    char ids[RH_OBJECT_ID_STRLEN];
    int n = snprintf(key, cap, "spill/%d/%s", node,
                     rh_object_id_str(id, ids));

    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

size_t rh_object_record_format(const rh_object_record_t *r, char *text,
                               size_t cap)
{
    int n = snprintf(text, cap, "owner %d size %llu node %d", r->owner,
                     (unsigned long long)r->size, r->node);

    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

rh_status_t rh_object_record_parse(const char *text, size_t len,
                                   rh_object_record_t *r)
{
    char buf[128];
    unsigned long long size;
    int used = 0;

    if (len >= sizeof(buf)) {
        return rh_error_set(RH_ERR_MALFORMED, "object record of %zu bytes",
                            len);
    }
    memcpy(buf, text, len);
    buf[len] = '\0';
    if (sscanf(buf, "owner %d size %llu node %d%n", &r->owner, &size,
               &r->node, &used) != 3 || (size_t)used != len ||
        r->owner < 0 || r->node < 0) {
        return rh_error_set(RH_ERR_MALFORMED, "not an object record: "
                            "\"%.60s\"", buf);
    }
    r->size = size;
    return RH_OK;
}

/* The line rayhpc-info --gcs and RAYHPC_GCS_DUMP show. */
static void rh_orec_show(FILE *out)
{
    uint64_t now, written, deleted;

    rh_object_record_counts(&now, &written, &deleted);
    if (written != 0) {
        fprintf(out, "gcs objects spilled %llu written %llu deleted %llu\n",
                (unsigned long long)now, (unsigned long long)written,
                (unsigned long long)deleted);
    }
}

/* A change made while the test hold is on. */
typedef struct rh_orec_held {
    rh_object_id_t id;
    uint64_t       size, stamp;
    int            spilled;
} rh_orec_held_t;

static struct {
    rh_orec_held_t *v;
    size_t          n, cap;
    int             on;
} rh_orec_hold;

/* Deletes of records another process wrote, kept until answered so that
 * rh_object_record_wait can see them end. */
static struct {
    rh_gcs_record_t **v;
    size_t            n, cap;
} rh_orec_gone;

/* Under rh_orec_lock: lets go of the deletes that ended; 1 when none is
 * left. */
static int rh_orec_gone_sweep(void)
{
    size_t k = 0;

    for (size_t i = 0; i < rh_orec_gone.n; i++) {
        uint64_t acked, sets;

        rh_gcs_record_counts(rh_orec_gone.v[i], &acked, &sets);
        if (acked == sets) {
            rh_gcs_record_drop(rh_orec_gone.v[i]);
        } else {
            rh_orec_gone.v[k++] = rh_orec_gone.v[i];
        }
    }
    rh_orec_gone.n = k;
    return k == 0;
}

/* Under rh_orec_lock. */
static void rh_orec_change(rh_object_id_t id, uint64_t size, int spilled,
                           uint64_t stamp)
{
    rh_object_record_t r = { (int)rh_object_id_owner(id), rh_node_id(),
                             size };
    rh_gcs_record_t **slot, *rec = NULL;
    char key[96], text[96];
    size_t klen = rh_object_record_key(id, r.node, key, sizeof(key));
    size_t n = rh_object_record_format(&r, text, sizeof(text));
    int added = 0;

    if (klen == 0 || n == 0) {
        return;
    }
    if (spilled) {
        slot = rh_hmap_put(&rh_orecs, &id, &added);
        if (slot != NULL && added) {
            *slot = rh_gcs_record_new(RH_GCS_T_OBJECT, key, klen);
            if (*slot == NULL) {
                (void)rh_hmap_del(&rh_orecs, &id, NULL);
                slot = NULL;
            }
        }
        if (slot != NULL &&
            rh_gcs_record_set_stamped(*slot, text, n, stamp) == RH_OK) {
            if (added) {
                atomic_fetch_add(&rh_orec_now, 1);
            }
            atomic_fetch_add(&rh_orec_written, 1);
        } else {
            rh_debug("object record %s not written: %s", key,
                     rh_last_error());
        }
        return;
    }
    /* Spilled by this process or by another of this node, whose write
     * nothing orders with this delete: the stamps do (the GCS keeps what
     * the highest said). */
    int ours = rh_hmap_del(&rh_orecs, &id, &rec);

    if (!ours) {
        rec = rh_gcs_record_new(RH_GCS_T_OBJECT, key, klen);
    }
    if (rec != NULL && rh_gcs_record_delete_stamped(rec, stamp) == RH_OK) {
        atomic_fetch_add(&rh_orec_deleted, 1);
    }
    if (ours) {
        atomic_fetch_sub(&rh_orec_now, 1);
    }
    if (rec == NULL) {
        return;
    }
    (void)rh_orec_gone_sweep();
    if (rh_orec_gone.n == rh_orec_gone.cap) {
        size_t cap = rh_orec_gone.cap ? 2 * rh_orec_gone.cap : 16;
        rh_gcs_record_t **v = realloc(rh_orec_gone.v, cap * sizeof(*v));

        if (v == NULL) {
            rh_gcs_record_drop(rec);   /* written all the same, unseen */
            return;
        }
        rh_orec_gone.v = v;
        rh_orec_gone.cap = cap;
    }
    rh_orec_gone.v[rh_orec_gone.n++] = rec;
}

void rh_object_record_spilled(rh_object_id_t id, uint64_t size, int spilled,
                              uint64_t stamp)
{
    if (!atomic_load_explicit(&rh_orec_on, memory_order_acquire)) {
        return;
    }
    pthread_mutex_lock(&rh_orec_lock);
    if (!atomic_load_explicit(&rh_orec_on, memory_order_relaxed)) {
        /* Stopped since the look above: the map is gone. */
        pthread_mutex_unlock(&rh_orec_lock);
        return;
    }
    if (rh_orec_hold.on) {
        if (rh_orec_hold.n == rh_orec_hold.cap) {
            size_t cap = rh_orec_hold.cap ? 2 * rh_orec_hold.cap : 16;
            rh_orec_held_t *v = realloc(rh_orec_hold.v, cap * sizeof(*v));

            if (v == NULL) {
                pthread_mutex_unlock(&rh_orec_lock);
                rh_error("object record: no memory to hold a change");
                return;
            }
            rh_orec_hold.v = v;
            rh_orec_hold.cap = cap;
        }
        rh_orec_hold.v[rh_orec_hold.n++] =
            (rh_orec_held_t){ id, size, stamp, spilled };
    } else {
        rh_orec_change(id, size, spilled, stamp);
    }
    pthread_mutex_unlock(&rh_orec_lock);
}

void rh_object_record_test_hold(int on)
{
    pthread_mutex_lock(&rh_orec_lock);
    rh_orec_hold.on = on;
    if (!on) {
        for (size_t i = 0; i < rh_orec_hold.n; i++) {
            const rh_orec_held_t *h = &rh_orec_hold.v[i];

            if (atomic_load_explicit(&rh_orec_on, memory_order_relaxed)) {
                rh_orec_change(h->id, h->size, h->spilled, h->stamp);
            }
        }
        rh_orec_hold.n = 0;
    }
    pthread_mutex_unlock(&rh_orec_lock);
}

static int rh_orec_caught_up(void *arg)
{
    rh_hmap_iter_t it;
    void *key, *val;
    int done;

    (void)arg;
    pthread_mutex_lock(&rh_orec_lock);
    done = rh_orec_hold.n == 0 && rh_orec_gone_sweep();
    if (done && atomic_load_explicit(&rh_orec_on, memory_order_relaxed)) {
        rh_hmap_iter_init(&it, &rh_orecs);
        while (done && rh_hmap_iter_next(&it, &key, &val)) {
            uint64_t acked, sets;

            rh_gcs_record_counts(*(rh_gcs_record_t **)val, &acked, &sets);
            done = acked == sets;
        }
    }
    pthread_mutex_unlock(&rh_orec_lock);
    return done;
}

int rh_object_record_wait(uint64_t deadline_ns)
{
    return !rh_tp_on_progress_thread() &&
           rh_core_wait_until_polled(rh_orec_caught_up, NULL, deadline_ns);
}

void rh_object_record_start(void)
{
    rh_gcs_set_show(rh_orec_show);
    atomic_store_explicit(&rh_orec_on, 1, memory_order_release);
    rh_store_set_spill_hook(rh_object_record_spilled);
}

void rh_object_record_stop(void)
{
    rh_gcs_record_t *rec;

    rh_store_set_spill_hook(NULL);
    pthread_mutex_lock(&rh_orec_lock);
    atomic_store_explicit(&rh_orec_on, 0, memory_order_release);
    while (rh_hmap_pop(&rh_orecs, NULL, &rec)) {
        rh_gcs_record_drop(rec);
    }
    rh_hmap_fini(&rh_orecs);
    for (size_t i = 0; i < rh_orec_gone.n; i++) {
        rh_gcs_record_drop(rh_orec_gone.v[i]);
    }
    free(rh_orec_gone.v);
    memset(&rh_orec_gone, 0, sizeof(rh_orec_gone));
    free(rh_orec_hold.v);
    memset(&rh_orec_hold, 0, sizeof(rh_orec_hold));
    pthread_mutex_unlock(&rh_orec_lock);
}

void rh_object_record_counts(uint64_t *spilled, uint64_t *written,
                             uint64_t *deleted)
{
    *spilled = atomic_load(&rh_orec_now);
    *written = atomic_load(&rh_orec_written);
    *deleted = atomic_load(&rh_orec_deleted);
}

rh_status_t rh_object_record_read(rh_object_id_t id, int node,
                                  rh_object_record_t *r)
{
    char key[96];
    size_t klen = rh_object_record_key(id, node, key, sizeof(key));
    void *v = NULL;
    size_t len = 0;
    rh_status_t status;

    if (r == NULL || klen == 0) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "object record: an id, a "
                            "node and somewhere to put it are needed");
    }
    status = rh_gcs_get(RH_GCS_T_OBJECT, key, klen, &v, &len, NULL);
    if (status == RH_OK) {
        status = rh_object_record_parse(v, len, r);
    }
    free(v);
    return status;
}
