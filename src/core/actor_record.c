/*
 * The actor table's records in the GCS (actor_record.h): one gcs_record
 * per actor the owner's table holds, each set as its state changes.
 */
#include "core/actor_record.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hashmap.h"
#include "base/log.h"
#include "base/status.h"
#include "core/actor.h"
#include "core/registry.h"
#include "gcs/gcs.h"
#include "gcs/gcs_record.h"

typedef struct rh_arec {
    rh_gcs_record_t *rec;
    int              state;   /* written last */
} rh_arec_t;

static pthread_mutex_t rh_arec_lock = PTHREAD_MUTEX_INITIALIZER;
static rh_hmap_t rh_arecs = RH_HMAP_INITIALIZER(sizeof(uint64_t),
                                                sizeof(rh_arec_t));
static _Atomic uint64_t rh_arec_count[3];   /* by RH_AT_PENDING.._DEAD */

static const char *const rh_arec_states[3] = { "pending", "alive", "dead" };

static int rh_arec_key(rh_actor_t a, char *key, size_t cap)
{
    return snprintf(key, cap, "actor/%x/%llx", (unsigned)rh_actor_owner(a),
                    (unsigned long long)a.lo);
}

size_t rh_actor_record_format(rh_actor_t a, int state, int rank,
                              uint32_t restarts, const char *name,
                              const char *why, char *text, size_t cap)
{
    const rh_class_entry_t *cls = rh_registry_class(rh_actor_class_id(a));
    size_t n;
    int k;

    if (state < RH_AT_PENDING || state > RH_AT_DEAD || cap < 2) {
        return 0;
    }
    k = snprintf(text, cap, "owner %u class %s state %s rank %d restarts %u",
                 (unsigned)rh_actor_owner(a), cls != NULL ? cls->name : "?",
                 rh_arec_states[state],
                 state == RH_AT_PENDING ? -1 : rank, (unsigned)restarts);
    n = k > 0 ? (size_t)k : 0;
    if (name != NULL && name[0] != '\0' && n < cap) {
        k = snprintf(text + n, cap - n, "\nname %s", name);
        n += k > 0 ? (size_t)k : 0;
    }
    if (state == RH_AT_DEAD && why != NULL && why[0] != '\0' && n < cap) {
        k = snprintf(text + n, cap - n, "\nwhy %s", why);
        n += k > 0 ? (size_t)k : 0;
    }
    return n < cap ? n : cap - 1;   /* a long why loses its end */
}

/* The line rayhpc-info --gcs and RAYHPC_GCS_DUMP show for this rank. */
static void rh_arec_show(FILE *out)
{
    uint64_t p, l, d;

    rh_actor_record_counts(&p, &l, &d);
    if (p + l + d != 0) {
        fprintf(out, "gcs actors pending %llu alive %llu dead %llu\n",
                (unsigned long long)p, (unsigned long long)l,
                (unsigned long long)d);
    }
}

void rh_actor_record_note(rh_actor_t a, int state, int rank,
                          uint32_t restarts, const char *name,
                          const char *why)
{
    static atomic_flag shown = ATOMIC_FLAG_INIT;

    char key[48], text[512];
    rh_gcs_record_t *rec = NULL;
    rh_arec_t *slot;
    size_t n = rh_actor_record_format(a, state, rank, restarts, name, why,
                                      text, sizeof(text));
    int klen, added = 0;

    if (n == 0) {
        return;
    }
    if (!atomic_flag_test_and_set(&shown)) {
        rh_gcs_set_show(rh_arec_show);
    }
    klen = rh_arec_key(a, key, sizeof(key));
    pthread_mutex_lock(&rh_arec_lock);
    slot = rh_hmap_put(&rh_arecs, &a.lo, &added);
    if (slot != NULL && added) {
        slot->rec = rh_gcs_record_new(RH_GCS_T_ACTOR, key, (size_t)klen);
        slot->state = -1;
        if (slot->rec == NULL) {
            (void)rh_hmap_del(&rh_arecs, &a.lo, NULL);
            slot = NULL;
        }
    }
    if (slot != NULL) {
        rec = slot->rec;
        if (slot->state != state) {
            if (slot->state >= 0) {
                atomic_fetch_sub(&rh_arec_count[slot->state], 1);
            }
            atomic_fetch_add(&rh_arec_count[state], 1);
            slot->state = state;
        }
    }
    pthread_mutex_unlock(&rh_arec_lock);
    /* The owner's table calls with its lock held: only it sets or forgets
     * an actor's record, so the record outlives the unlock above. */
    if (rec == NULL ||
        rh_gcs_record_set(rec, text, n) != RH_OK) {
        rh_debug("actor %llx: no record in the GCS: %s",
                 (unsigned long long)a.lo, rh_last_error());
    }
}

void rh_actor_record_forget(rh_actor_t a)
{
    rh_arec_t x;
    int had;

    pthread_mutex_lock(&rh_arec_lock);
    had = rh_hmap_del(&rh_arecs, &a.lo, &x);
    pthread_mutex_unlock(&rh_arec_lock);
    if (had) {
        rh_gcs_record_drop(x.rec);
    }
}

void rh_actor_record_clear(void)
{
    rh_arec_t x;
    uint64_t key;

    pthread_mutex_lock(&rh_arec_lock);
    while (rh_hmap_pop(&rh_arecs, &key, &x)) {
        rh_gcs_record_drop(x.rec);
    }
    rh_hmap_fini(&rh_arecs);
    pthread_mutex_unlock(&rh_arec_lock);
}

void rh_actor_record_counts(uint64_t *pending, uint64_t *alive,
                            uint64_t *dead)
{
    *pending = atomic_load(&rh_arec_count[RH_AT_PENDING]);
    *alive = atomic_load(&rh_arec_count[RH_AT_ALIVE]);
    *dead = atomic_load(&rh_arec_count[RH_AT_DEAD]);
}

/* Copies the rest of a line after "word " into out; 1 when it was there. */
static int rh_arec_field(const char *line, const char *end, const char *word,
                         char *out, size_t cap)
{
    size_t wl = strlen(word), n;

    if ((size_t)(end - line) < wl + 1 || memcmp(line, word, wl) != 0 ||
        line[wl] != ' ') {
        return 0;
    }
    line += wl + 1;
    n = (size_t)(end - line);
    if (n >= cap) {
        n = cap - 1;
    }
    memcpy(out, line, n);
    out[n] = '\0';
    return 1;
}

rh_status_t rh_actor_record_parse(const char *text, size_t len,
                                  rh_actor_record_t *rec)
{
    char first[512], state[16];
    const char *p, *end = text + len, *nl;
    size_t n;
    int got = 0;

    memset(rec, 0, sizeof(*rec));
    rec->rank = -1;
    nl = memchr(text, '\n', len);
    n = (size_t)((nl != NULL ? nl : end) - text);
    if (n >= sizeof(first)) {
        goto err_malformed;
    }
    memcpy(first, text, n);
    first[n] = '\0';
    if (sscanf(first, "owner %d class %63s state %15s rank %d restarts %u",
               &rec->owner, rec->cls, state, &rec->rank,
               &rec->restarts) != 5) {
        goto err_malformed;
    }
    for (int s = 0; s < 3; s++) {
        if (strcmp(state, rh_arec_states[s]) == 0) {
            rec->state = s;
            got = 1;
        }
    }
    if (!got) {
        goto err_malformed;
    }
    for (p = nl; p != NULL && p < end; p = nl) {
        p++;
        nl = memchr(p, '\n', (size_t)(end - p));
        if (!rh_arec_field(p, nl != NULL ? nl : end, "name", rec->name,
                           sizeof(rec->name)) &&
            !rh_arec_field(p, nl != NULL ? nl : end, "why", rec->why,
                           sizeof(rec->why))) {
            goto err_malformed;
        }
    }
    return RH_OK;

err_malformed:
    return rh_error_set(RH_ERR_MALFORMED, "not an actor record: \"%.*s\"",
                        (int)(len < 200 ? len : 200), text);
}

rh_status_t rh_actor_record_read(rh_actor_t a, rh_actor_record_t *rec)
{
    char key[48];
    void *value = NULL;
    size_t vlen = 0;
    int klen;
    rh_status_t status;

    if (rec == NULL || rh_actor_is_null(a)) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_actor_record_read "
                            "needs an actor and a record");
    }
    klen = rh_arec_key(a, key, sizeof(key));
    status = rh_gcs_get(RH_GCS_T_ACTOR, key, (size_t)klen, &value, &vlen,
                        NULL);
    if (status == RH_ERR_NOT_FOUND) {
        return rh_error_set(status, "the GCS holds no record of actor %s",
                            key);
    }
    if (status == RH_OK) {
        status = rh_actor_record_parse(value, vlen, rec);
    }
    free(value);
    return status;
}

typedef struct rh_arec_read {
    rh_gcs_op_t             op;
    char                    key[48];
    rh_actor_record_done_fn done;
    void                   *arg;
} rh_arec_read_t;

static void rh_arec_read_done(rh_gcs_op_t *op)
{
    rh_arec_read_t *r = (rh_arec_read_t *)op;
    rh_actor_record_t rec;
    rh_status_t status = op->status;

    if (status == RH_OK) {
        status = rh_actor_record_parse(op->out, op->out_len, &rec);
    }
    free(op->out);
    r->done(r->arg, status, status == RH_OK ? &rec : NULL);
    free(r);
}

rh_status_t rh_actor_record_read_async(rh_actor_t a,
                                       rh_actor_record_done_fn done,
                                       void *arg)
{
    rh_arec_read_t *r = calloc(1, sizeof(*r));
    rh_status_t status;

    if (r == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "reading an actor's record");
    }
    r->op.table = RH_GCS_T_ACTOR;
    r->op.klen = (size_t)rh_arec_key(a, r->key, sizeof(r->key));
    r->op.key = r->key;
    r->op.done = rh_arec_read_done;
    r->done = done;
    r->arg = arg;
    status = rh_gcs_get_async(&r->op);
    if (status != RH_OK) {
        free(r);
    }
    return status;
}
