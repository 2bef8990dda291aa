/*
 * Objects: put, get, release, wait.
 *
 * A ref this rank owns is answered from its future (src/core/future.c): the
 * value is inline there, in the node's store, or on another node (pulled
 * here on the first get); a get takes an owner hold. A ref owned by another
 * rank is read from this node's store, where a get pins the object until
 * the matching release; when it is not there yet, its owner says where it
 * is and it is pulled into this node's store first (src/core/pull.c).
 */
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/completion.h"
#include "base/config.h"
#include "base/status.h"
#include "core/core.h"
#include "core/directory.h"
#include "core/future.h"
#include "core/lineage.h"
#include "core/pull.h"
#include "plasma/store.h"

static inline rh_object_id_t rh_id(rh_ref_t ref)
{
    rh_object_id_t id = { ref.hi, ref.lo };

    return id;
}

static inline rh_ref_t rh_ref(rh_object_id_t id)
{
    rh_ref_t ref = { id.hi, id.lo };

    return ref;
}

static inline int rh_is_mine(rh_object_id_t id)
{
    return rh_object_id_owner(id) == (uint32_t)rh_rank();
}

static rh_status_t rh_object_ready_check(void)
{
    if (!rh_core_initialized()) {
        return rh_error_set(RH_ERR_NOT_INITIALIZED, "call rh_init first");
    }
    return RH_OK;
}

uint64_t rh_deadline(int64_t timeout_ms)
{
    uint64_t now = rh_time_ns();

    /* 0 is "no deadline"; so is one past the clock's range (584 years),
     * which would otherwise wrap into the past and end the wait at once */
    if (timeout_ms < 0 ||
        (uint64_t)timeout_ms >= (UINT64_MAX - now - 1) / 1000000ull) {
        return 0;
    }
    return now + (uint64_t)timeout_ms * 1000000ull + 1;
}

static rh_status_t rh_bad_ref(rh_object_id_t id, const char *what)
{
    char s[RH_OBJECT_ID_STRLEN];

    return rh_error_set(RH_ERR_INVALID_REF, "object %s %s",
                        rh_object_id_str(id, s), what);
}

/* ---- room in the store ---------------------------------------------------- */

typedef struct rh_room_try {
    rh_object_id_t id;
    size_t         len;
    void          *ptr;      /* a create's bytes to write, a get's to read */
    int            get;      /* a get (of a spilled object), else a create */
    rh_status_t    status;
    char           msg[512];
} rh_room_try_t;

/* Done (1) unless the store is full in a way that may pass: what fills it
 * is being read or written (spilling and eviction already had their go
 * inside the store's create, or the read-back of a spilled object). */
static int rh_room_tried(void *arg)
{
    rh_room_try_t *t = arg;

    if (t->get) {
        const void *p = NULL;

        t->status = rh_store_get(rh_core_store(), t->id, &p, &t->len);
        t->ptr = (void *)p;
    } else {
        t->status = rh_store_create(rh_core_store(), t->id, t->len, &t->ptr);
    }
    if (t->status != RH_ERR_STORE_FULL) {
        return 1;
    }
    snprintf(t->msg, sizeof(t->msg), "%s", rh_last_error());
    return rh_store_full_why() != RH_STORE_FULL_PINNED;
}

/* Backpressure: waits, driving the network (a release may come from
 * another node), while readers hold what fills the store; up to
 * RAYHPC_PUT_TIMEOUT_MS, or to a get's own deadline when that comes first
 * (0: none). */
static rh_status_t rh_room_wait(rh_room_try_t *t, uint64_t deadline)
{
    uint64_t limit = rh_deadline((int64_t)rh_cfg.put_timeout_ms);
    int caller_first = deadline != 0 && (limit == 0 || deadline < limit);

    if (caller_first) {
        limit = deadline;
    }
    if (!rh_room_tried(t) &&
        !rh_core_wait_until_polled(rh_room_tried, t, limit)) {
        if (caller_first) {
            return rh_error_set(RH_ERR_STORE_FULL, "%s (the get's timeout "
                                "ended before readers let go)", t->msg);
        }
        return rh_error_set(RH_ERR_STORE_FULL, "%s (waited %llu ms for "
                            "readers to let go: RAYHPC_PUT_TIMEOUT_MS)",
                            t->msg, (unsigned long long)rh_cfg.put_timeout_ms);
    }
    if (t->status == RH_ERR_STORE_FULL) {
        return rh_error_set(RH_ERR_STORE_FULL, "%s", t->msg);
    }
    return t->status;
}

/* Both first try the store directly: the try record (its message buffer
 * included) is made only when the store is full. */
rh_status_t rh_object_create(rh_object_id_t id, size_t len, void **ptr)
{
    rh_room_try_t t;
    rh_status_t status = rh_store_create(rh_core_store(), id, len, ptr);

    if (rh_likely(status != RH_ERR_STORE_FULL)) {
        return status;
    }
    t = (rh_room_try_t){ .id = id, .len = len };
    status = rh_room_wait(&t, 0);
    if (status == RH_OK) {
        *ptr = t.ptr;
    }
    return status;
}

rh_status_t rh_object_get_stored(rh_object_id_t id, const void **ptr,
                                 size_t *len, uint64_t deadline)
{
    rh_room_try_t t;
    rh_status_t status = rh_store_get(rh_core_store(), id, ptr, len);

    if (rh_likely(status != RH_ERR_STORE_FULL)) {
        return status;
    }
    t = (rh_room_try_t){ .id = id, .get = 1 };
    status = rh_room_wait(&t, deadline);
    if (status == RH_OK) {
        *ptr = t.ptr;
        *len = t.len;
    }
    return status;
}

/* Gives back n pins of an object whose future ended. */
void rh_object_unpin(rh_object_id_t id, int n)
{
    while (n-- > 0) {
        (void)rh_store_release(rh_core_store(), id);
    }
}

/* A store reference for a get of our own object: kept (a pin of the
 * future) so that the bytes stay in place until the get's hold goes. */
static rh_status_t rh_get_pinned(rh_future_t *f, rh_object_id_t id,
                                 const void **ptr, uint64_t deadline)
{
    size_t len;
    char s[RH_OBJECT_ID_STRLEN];
    rh_status_t status = rh_object_get_stored(id, ptr, &len, deadline);

    if (status != RH_OK) {
        return status;
    }
    if (len != f->len) {
        rh_store_release(rh_core_store(), id);
        return rh_error_set(RH_ERR_MALFORMED, "object %s: %zu bytes "
                            "arrived, %zu expected",
                            rh_object_id_str(id, s), len, f->len);
    }
    atomic_fetch_add_explicit(&f->pins, 1, memory_order_relaxed);
    return RH_OK;
}

/* ---- put ---------------------------------------------------------------- */

/* rh_put_create, also handing back the put's future (held by the caller's
 * hold on the ref). */
static rh_status_t rh_put_begin(size_t len, rh_ref_t *ref, void **ptr,
                                rh_future_t **fp)
{
    rh_fblock_t *b;
    rh_object_id_t id;
    rh_future_t *f;
    void *p;
    rh_status_t status = rh_object_ready_check();

    if (status != RH_OK) {
        return status;
    }
    if (ref == NULL || ptr == NULL) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_put_create needs ref "
                            "and ptr");
    }
    status = rh_future_put_block_new(&b);
    if (status != RH_OK) {
        return status;
    }
    f = &b->f[0];
    id = rh_future_id(b, 0, 1);
    status = rh_object_create(id, len, &p);
    if (status != RH_OK) {
        /* No ref leaves this call: drop the producer's and caller's refs. */
        char msg[512];

        snprintf(msg, sizeof(msg), "%s", rh_last_error());
        rh_future_fail(f, msg);
        rh_future_unhold(f);
        return rh_error_set(status, "%s", msg);
    }
    f->data = p;
    f->len = len;
    *ref = rh_ref(id);
    *ptr = p;
    *fp = f;
    return RH_OK;
}

rh_status_t rh_put_create(size_t len, rh_ref_t *ref, void **ptr)
{
    rh_future_t *f;

    return rh_put_begin(len, ref, ptr, &f);
}

/* A put's seal and its abandonment (the owner's last release before the
 * seal) each finish its future once: whichever comes first, under the
 * lock of its stripe. Only puts made with rh_put_create take it. */
#define RH_PUT_STRIPES 64
static _Atomic int rh_put_locks[RH_PUT_STRIPES];

static _Atomic int *rh_put_lock(rh_object_id_t id)
{
    _Atomic int *l = &rh_put_locks[rh_object_id_counter(id) %
                                   RH_PUT_STRIPES];

    while (atomic_exchange_explicit(l, 1, memory_order_acquire)) {
        sched_yield();
    }
    return l;
}

static void rh_put_unlock(_Atomic int *l)
{
    atomic_store_explicit(l, 0, memory_order_release);
}

static rh_status_t rh_put_seal_locked(rh_future_t *f, rh_object_id_t id)
{
    rh_status_t status;

    if (atomic_load(&f->state) != RH_FUTURE_PENDING) {
        return rh_bad_ref(id, atomic_load(&f->state) == RH_FUTURE_READY ?
                          "is sealed already" : "was released before it "
                          "was sealed");
    }
    status = rh_store_seal(rh_core_store(), id);
    if (status != RH_OK) {
        return status;
    }
    rh_future_complete(f, f->data, f->len, 1);
    return RH_OK;
}

/* The owner let go of an unsealed put: nobody can ever read it, so its
 * buffer goes now instead of staying unsealed for the life of the job. */
static void rh_put_abandon(rh_future_t *f, rh_object_id_t id)
{
    char msg[128], ids[RH_OBJECT_ID_STRLEN];
    _Atomic int *l = rh_put_lock(id);

    if (atomic_load(&f->state) == RH_FUTURE_PENDING) {
        (void)rh_store_delete(rh_core_store(), id);
        snprintf(msg, sizeof(msg), "object %s was released before it was "
                 "sealed", rh_object_id_str(id, ids));
        rh_future_fail_status(f, RH_ERR_INVALID_REF, msg);
    }
    rh_put_unlock(l);
}

rh_status_t rh_put_seal(rh_ref_t ref)
{
    rh_object_id_t id = rh_id(ref);
    rh_future_t *f;
    _Atomic int *l;
    rh_status_t status = rh_object_ready_check();

    if (status != RH_OK) {
        return status;
    }
    if (!rh_is_mine(id) || rh_object_id_index(id) != 0 ||
        (f = rh_future_find_hold(id)) == NULL) {
        return rh_bad_ref(id, "is not an unsealed put of this rank (or was "
                          "released before it was sealed)");
    }
    l = rh_put_lock(id);
    status = rh_put_seal_locked(f, id);
    rh_put_unlock(l);
    rh_future_unhold(f);
    return status;
}

rh_status_t rh_put(const void *buf, size_t len, rh_ref_t *ref)
{
    void *p;
    rh_future_t *f;
    rh_status_t status;

    if (buf == NULL && len != 0) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_put of %zu bytes from "
                            "NULL", len);
    }
    if (ref == NULL && rh_core_initialized()) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_put needs ref");
    }
    status = rh_put_begin(len, ref, &p, &f);
    if (status != RH_OK) {
        return status;
    }
    if (len != 0) {
        memcpy(p, buf, len);
    }
    /* Nobody else has the ref yet: no lookup, nor lock, needed. */
    return rh_put_seal_locked(f, rh_id(*ref));
}

/* ---- get ------------------------------------------------------------------ */

static int rh_future_final(void *arg)
{
    return atomic_load_explicit(&((rh_future_t *)arg)->state,
                                memory_order_seq_cst) != RH_FUTURE_PENDING;
}

typedef struct {
    rh_object_id_t id;
} rh_store_wait_t;

static int rh_store_has(void *arg)
{
    return rh_store_contains(rh_core_store(), ((rh_store_wait_t *)arg)->id);
}

/* Our object lives on other nodes: bring a copy here (again, when room
 * was short and it was evicted between the pull and the get). */
static rh_status_t rh_get_mine_remote(rh_future_t *f, rh_object_id_t id,
                                      const void **ptr, uint64_t deadline)
{
    int src;
    char s[RH_OBJECT_ID_STRLEN];
    rh_status_t status = RH_ERR_INVALID_REF;

    for (int round = 0; round < 4 && status == RH_ERR_INVALID_REF;
         round++) {
        if (!rh_store_contains(rh_core_store(), id)) {
            if (rh_dir_sources(id, &src, 1) != 1) {
                return rh_error_set(RH_ERR_INVALID_REF, "object %s: no "
                                    "node holds it",
                                    rh_object_id_str(id, s));
            }
            status = rh_pull_ensure(id, src, deadline);
            if (status != RH_OK) {
                return status;
            }
        }
        status = rh_get_pinned(f, id, ptr, deadline);
    }
    return status;
}

static rh_status_t rh_get_mine(rh_object_id_t id, const void **ptr,
                               size_t *len, uint64_t deadline)
{
    /* Held while waiting: a concurrent last release must not free it. */
    rh_future_t *f = rh_future_find_hold(id);
    char s[RH_OBJECT_ID_STRLEN];
    rh_status_t status;
    int rebuilt, retries = 0;

    if (f == NULL) {
        return rh_bad_ref(id, "was released or never existed");
    }
    for (;;) {
        if (!rh_future_final(f) &&
            !rh_core_wait_until_pure(rh_future_final, f, deadline)) {
            rh_future_unhold(f);
            return rh_error_set(RH_ERR_TIMEOUT, "object %s is not ready yet",
                                rh_object_id_str(id, s));
        }
        if (atomic_load(&f->state) == RH_FUTURE_FAILED) {
            status = rh_error_set(rh_future_status(f), "%s", f->message);
            rh_future_unhold(f);
            return status;
        }
        if (!rh_future_remote(f)) {
            break;
        }
        status = rh_get_mine_remote(f, id, ptr, deadline);
        if (status == RH_OK) {
            rh_future_owner_hold(f);   /* the lookup's is the get's hold */
            *len = f->len;
            return RH_OK;
        }
        /* Every copy died: wait for its rebuild from lineage, within the
         * deadline. */
        rebuilt = status == RH_ERR_TIMEOUT ? -1 : rh_lineage_rebuild(id);
        if (rebuilt < 0 && (status == RH_ERR_PEER_FAILED ||
                            status == RH_ERR_TRANSPORT) && ++retries < 8) {
            /* The copy read from died (or cannot be reached yet, before
             * its death is known): another is alive, or will be rebuilt. */
            usleep(10000u * (unsigned)retries);
            continue;
        }
        if (rebuilt != 1) {
            rh_future_unhold(f);
            return rebuilt == 0 ? RH_ERR_OBJECT_LOST : status;
        }
        if (deadline != 0 && rh_time_ns() >= deadline) {
            rh_future_unhold(f);
            return rh_error_set(RH_ERR_TIMEOUT, "object %s is being rebuilt "
                                "from its lineage", rh_object_id_str(id, s));
        }
        if (rh_future_final(f)) {
            usleep(1000);   /* a rerun for its other returns is out */
        }
    }
    if (f->in_store) {
        /* it may have been spilled: the store reads it back */
        status = rh_get_pinned(f, id, ptr, deadline);
        if (status != RH_OK) {
            rh_future_unhold(f);
            return status;
        }
        rh_future_owner_hold(f);
        *len = f->len;
        return RH_OK;
    }
    rh_future_owner_hold(f);
    *ptr = f->data;
    *len = f->len;
    return RH_OK;
}

static rh_status_t rh_get_borrowed(rh_object_id_t id, const void **ptr,
                                   size_t *len, uint64_t deadline)
{
    rh_store_wait_t w = { id };
    char s[RH_OBJECT_ID_STRLEN];
    int owner = (int)rh_object_id_owner(id);

    /* Not here: ask its owner (on this node or not) where it is; it answers
     * once the object is final, and it may be on a third node. */
    if (!rh_store_has(&w)) {
        rh_status_t status = rh_pull_ensure(id, owner, deadline);

        /* A holder that died is the owner's to rebuild: ask it again. */
        for (int i = 0; i < 8 && (status == RH_ERR_PEER_FAILED ||
                                  status == RH_ERR_TRANSPORT) &&
                        rh_rank_alive(owner); i++) {
            usleep(10000u * (unsigned)i);
            status = rh_pull_ensure(id, owner, deadline);
        }
        if (status != RH_OK && status != RH_ERR_TIMEOUT &&
            !rh_rank_alive(owner)) {
            return rh_error_set(RH_ERR_OWNER_DIED, "object %s is lost: its "
                                "owner, rank %d, died",
                                rh_object_id_str(id, s), owner);
        }
        if (status != RH_OK) {
            return status;
        }
    }
    if (!rh_store_has(&w) &&
        !rh_core_wait_until_polled(rh_store_has, &w, deadline)) {
        return rh_error_set(RH_ERR_TIMEOUT, "object %s (owned by rank %u) is "
                            "not in this node's store",
                            rh_object_id_str(id, s), rh_object_id_owner(id));
    }
    for (int round = 0;; round++) {
        rh_status_t status = rh_object_get_stored(id, ptr, len, deadline);

        if (status == RH_OK) {
            rh_store_mark_user(rh_core_store(), id);   /* see rh_release */
            return RH_OK;
        }
        /* a copy evicted for room between the pull and the get: again */
        if (status != RH_ERR_INVALID_REF || round == 3 ||
            (status = rh_pull_ensure(id, owner, deadline)) != RH_OK) {
            return status;
        }
    }
}

static rh_status_t rh_get_one(rh_ref_t ref, const void **ptr, size_t *len,
                              uint64_t deadline)
{
    rh_object_id_t id = rh_id(ref);

    if (ref.hi == 0 && ref.lo == 0) {
        return rh_error_set(RH_ERR_INVALID_REF, "a null ref");
    }
    if (rh_is_mine(id)) {
        return rh_get_mine(id, ptr, len, deadline);
    }
    if (rh_object_id_owner(id) >= (uint32_t)rh_size()) {
        return rh_bad_ref(id, "names a rank that is not in this job");
    }
    return rh_get_borrowed(id, ptr, len, deadline);
}

/* A wait that rh_finalize ended (on another thread) says so. */
static rh_status_t rh_object_call_end(rh_status_t status)
{
    rh_core_call_end();
    if (rh_unlikely(status == RH_ERR_TIMEOUT) && rh_core_ending_now()) {
        return rh_error_set(RH_ERR_SHUTDOWN, "rh_finalize began on another "
                            "thread while this call waited");
    }
    return status;
}

rh_status_t rh_get(rh_ref_t ref, const void **ptr, size_t *len,
                   int64_t timeout_ms)
{
    rh_status_t status = rh_object_ready_check();
    size_t dummy;

    if (status != RH_OK) {
        return status;
    }
    if (ptr == NULL) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_get needs ptr");
    }
    rh_core_call_begin();
    status = rh_get_one(ref, ptr, len ? len : &dummy,
                        rh_deadline(timeout_ms));
    return rh_object_call_end(status);
}

rh_status_t rh_get_many(const rh_ref_t *refs, size_t n, const void **ptrs,
                        size_t *lens, int64_t timeout_ms)
{
    uint64_t deadline = rh_deadline(timeout_ms);
    rh_status_t status = rh_object_ready_check();

    if (status != RH_OK) {
        return status;
    }
    if ((refs == NULL || ptrs == NULL) && n != 0) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_get_many needs refs "
                            "and ptrs");
    }
    rh_core_call_begin();
    for (size_t i = 0; i < n; i++) {
        size_t len;

        /* lens may be NULL, as rh_get's len */
        status = rh_get_one(refs[i], &ptrs[i], lens ? &lens[i] : &len,
                            deadline);
        if (status != RH_OK) {
            char msg[512];

            snprintf(msg, sizeof(msg), "%s", rh_last_error());
            while (i-- > 0) {
                rh_release(refs[i]);
            }
            return rh_object_call_end(rh_error_set(status, "%s", msg));
        }
    }
    return rh_object_call_end(RH_OK);
}

/* ---- release and wait --------------------------------------------------- */

rh_status_t rh_release(rh_ref_t ref)
{
    rh_object_id_t id = rh_id(ref);
    rh_future_t *f;
    rh_status_t status = rh_object_ready_check();

    if (status != RH_OK) {
        return status;
    }
    if (!rh_is_mine(id)) {
        /* Only a get's own: the store counts the runtime's references of
         * this process with them. */
        return rh_store_release_user(rh_core_store(), id);
    }
    f = rh_future_find_hold(id);
    if (f == NULL) {
        return rh_bad_ref(id, "was released already or never existed");
    }
    /* Alive for the runtime's own references (a task still producing it,
     * one taking it as an argument) is not held by the owner. */
    if (!rh_future_owner_drop(f)) {
        rh_future_unhold(f);
        return rh_bad_ref(id, "was released already or never existed");
    }
    if (rh_unlikely(f->block->is_put &&
                    atomic_load(&f->state) == RH_FUTURE_PENDING &&
                    atomic_load(&f->holds) == 0)) {
        rh_put_abandon(f, id);
    }
    rh_future_unhold(f);   /* the lookup's hold */
    /* A get's hold goes first (rayhpc.h): its bytes may be spilled now. */
    {
        int pins = atomic_load_explicit(&f->pins, memory_order_acquire);

        while (pins > 0 &&
               !atomic_compare_exchange_weak_explicit(
                   &f->pins, &pins, pins - 1, memory_order_acq_rel,
                   memory_order_acquire)) {
        }
        if (pins > 0) {
            (void)rh_store_release(rh_core_store(), id);
        }
    }
    rh_future_unhold(f);   /* the caller's */
    return RH_OK;
}

/* Where a ref stands for rh_wait. */
enum {
    RH_WAIT_NOT_YET,   /* pending, or another rank's not in this store */
    RH_WAIT_HERE,      /* ready here, failed, or never to change */
    RH_WAIT_ELSEWHERE  /* ours and done, its bytes on other nodes only */
};

static int rh_ref_state(rh_ref_t ref)
{
    rh_object_id_t id = rh_id(ref);

    if (rh_is_mine(id)) {
        rh_future_t *f = rh_future_find_hold(id);
        int state;

        /* A released or unknown ref will never change: count it as ready
         * so that a wait on it ends (its get reports the error). */
        if (f == NULL) {
            return RH_WAIT_HERE;
        }
        if (!rh_future_final(f)) {
            state = RH_WAIT_NOT_YET;
        } else if (atomic_load(&f->state) != RH_FUTURE_FAILED &&
                   rh_future_remote(f) &&
                   !rh_store_contains(rh_core_store(), id)) {
            state = RH_WAIT_ELSEWHERE;
        } else {
            state = RH_WAIT_HERE;
        }
        rh_future_unhold(f);
        return state;
    }
    /* A rank outside the job owns nothing: its get says so at once. */
    if (rh_object_id_owner(id) >= (uint32_t)rh_size()) {
        return RH_WAIT_HERE;
    }
    return rh_store_contains(rh_core_store(), id) ? RH_WAIT_HERE :
           RH_WAIT_NOT_YET;
}

typedef struct {
    const rh_ref_t *refs;
    size_t          n, k;
    int            *ready;
    rh_pull_t     **pulls;       /* refs of other nodes being brought here */
    unsigned char  *tried;       /* ... or whose pull could not start */
    int             to_pull;     /* some ref is to be pulled and is not */
} rh_wait_args_t;

/* A ref is to be pulled here when another rank owns it and it is not in
 * this store, or when it is ours and done on other nodes only. */
static int rh_wait_wants_pull(const rh_wait_args_t *w, size_t i, int state)
{
    if (w->pulls != NULL && w->tried[i]) {
        return 0;
    }
    return state == RH_WAIT_ELSEWHERE ||
           (state == RH_WAIT_NOT_YET && !rh_is_mine(rh_id(w->refs[i])));
}

static int rh_wait_enough(void *arg)
{
    rh_wait_args_t *w = arg;
    size_t count = 0;

    w->to_pull = 0;
    for (size_t i = 0; i < w->n; i++) {
        int state = rh_ref_state(w->refs[i]);

        /* A pull that failed, or could not start, leaves it to the get
         * to say why (or to rebuild it). */
        w->ready[i] = state == RH_WAIT_HERE ||
                      (w->pulls != NULL && w->tried[i] &&
                       (w->pulls[i] == NULL ||
                        rh_pull_ended(w->pulls[i]) == 2));
        w->to_pull |= !w->ready[i] && rh_wait_wants_pull(w, i, state);
        count += (size_t)w->ready[i];
    }
    return count >= w->k;
}

/* The waiting itself ends when a ref is to be pulled, so that its pull
 * starts. */
static int rh_wait_enough_or_pull(void *arg)
{
    rh_wait_args_t *w = arg;

    return rh_wait_enough(w) || w->to_pull;
}

/* Like Ray's wait (fetch_local): objects of other nodes are pulled here,
 * and count as ready once here (or once their pull failed: get tells). */
static void rh_wait_start_pulls(rh_wait_args_t *w)
{
    for (size_t i = 0; i < w->n; i++) {
        rh_object_id_t id = rh_id(w->refs[i]);
        int state = rh_ref_state(w->refs[i]), ask;

        if (!rh_wait_wants_pull(w, i, state)) {
            continue;
        }
        if (w->pulls == NULL) {
            w->pulls = calloc(w->n, sizeof(*w->pulls) + 1);
            if (w->pulls == NULL) {
                return;
            }
            w->tried = (unsigned char *)(w->pulls + w->n);
        }
        w->tried[i] = 1;
        if (rh_is_mine(id)) {
            if (rh_dir_sources(id, &ask, 1) != 1) {
                continue;   /* lost: its get rebuilds it or says so */
            }
        } else {
            ask = (int)rh_object_id_owner(id);
        }
        if (rh_pull_start(id, ask, &w->pulls[i]) != RH_OK) {
            w->pulls[i] = NULL;
        }
    }
}

rh_status_t rh_wait(const rh_ref_t *refs, size_t n, size_t k,
                    int64_t timeout_ms, int *ready)
{
    rh_wait_args_t w = { refs, n, k, ready, NULL, NULL, 0 };
    rh_status_t status = rh_object_ready_check();
    uint64_t deadline;
    int enough;

    if (status != RH_OK) {
        return status;
    }
    if ((refs == NULL || ready == NULL) && n != 0) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_wait needs refs and "
                            "ready");
    }
    if (k > n) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_wait for %zu of %zu "
                            "refs: k must not exceed n", k, n);
    }
    if (rh_wait_enough(&w) || timeout_ms == 0) {
        return RH_OK;
    }
    deadline = rh_deadline(timeout_ms);
    rh_core_call_begin();
    /* An object arriving in the store wakes nobody: while pulls go on,
     * the wait looks in slices. */
    for (;;) {
        if (w.to_pull) {
            rh_wait_start_pulls(&w);
        }
        if (w.pulls != NULL ?
            rh_core_wait_until_polled(rh_wait_enough_or_pull, &w,
                                      deadline) :
            rh_core_wait_until(rh_wait_enough_or_pull, &w, deadline)) {
            if (rh_wait_enough(&w)) {
                break;
            }
            continue;   /* a pull to start */
        }
        break;   /* the deadline, or rh_finalize */
    }
    enough = rh_wait_enough(&w);
    if (w.pulls != NULL) {
        for (size_t i = 0; i < n; i++) {
            if (w.pulls[i] != NULL) {
                rh_pull_put(w.pulls[i]);
            }
        }
        free(w.pulls);
    }
    rh_core_call_end();
    if (rh_unlikely(!enough && rh_core_ending_now())) {
        return rh_error_set(RH_ERR_SHUTDOWN, "rh_finalize began on another "
                            "thread while this call waited");
    }
    return RH_OK;
}
