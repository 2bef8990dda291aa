/*
 * The store's API: opening the segment and the object life cycle.
 *
 *   create (lock) -> write -> seal (CAS) -> get (CAS) ... release (CAS)
 *   delete (lock): freed now when nobody holds a reference, else marked
 *   and freed by the release that drops the last one.
 *
 * The lock is a process-shared robust mutex in the header. A process that
 * dies holding it leaves it to the next locker with EOWNERDEAD: we mark it
 * consistent, count the event and check the allocator, which either holds
 * (the death fell between two complete steps) or tells us in the log.
 */
#include "plasma/store_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/status.h"

#define RH_TABLE_MIN  1024ull
#define RH_TABLE_MAX  (1ull << 24)

static rh_status_t rh_store_check_locked(rh_store_t *s);

/* ---- locking ------------------------------------------------------------- */

rh_status_t rh_store_lock(rh_store_t *s)
{
    int rc = pthread_mutex_lock(&s->hdr->lock);

    if (rh_likely(rc == 0)) {
        return RH_OK;
    }
    if (rc == EOWNERDEAD) {
        pthread_mutex_consistent(&s->hdr->lock);
        s->hdr->lock_recoveries++;
        /* it may have died moving table entries: end that for readers */
        if (atomic_load_explicit(&s->hdr->moves, memory_order_relaxed) & 1) {
            atomic_fetch_add_explicit(&s->hdr->moves, 1,
                                      memory_order_release);
        }
        rh_warn("store %s: a process died holding the store lock; "
                "recovering", s->name);
        if (rh_store_check_locked(s) != RH_OK) {
            char why[256];

            snprintf(why, sizeof(why), "%s", rh_last_error());
            if (rh_alloc_repair(s) == RH_OK &&
                rh_store_check_locked(s) == RH_OK) {
                rh_warn("store %s: repaired (%s)", s->name, why);
            } else {
                rh_error("store %s may be damaged: %s", s->name,
                         rh_last_error());
            }
        }
        return RH_OK;
    }
    return rh_error_set(RH_ERR_BUSY, "store %s: the store lock cannot be "
                        "taken (%s)", s->name, strerror(rc));
}

void rh_store_unlock(rh_store_t *s)
{
    pthread_mutex_unlock(&s->hdr->lock);
}

/* ---- opening ------------------------------------------------------------- */

static uint64_t rh_pow2_at_least(uint64_t v)
{
    uint64_t p = 1;

    while (p < v) {
        p <<= 1;
    }
    return p;
}

/* One slot per 8 KiB of store unless the caller says otherwise. */
static uint64_t rh_table_capacity(const rh_store_params_t *p)
{
    uint64_t cap = p->table_capacity != 0 ? p->table_capacity
                                          : p->size / 8192;

    if (cap < RH_TABLE_MIN && p->table_capacity == 0) {
        cap = RH_TABLE_MIN;
    }
    if (cap < 16) {
        cap = 16;
    }
    return rh_pow2_at_least(cap > RH_TABLE_MAX ? RH_TABLE_MAX : cap);
}

static rh_status_t rh_store_init_lock(rh_store_hdr_t *hdr)
{
    pthread_mutexattr_t attr;
    int rc;

    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    rc = pthread_mutex_init(&hdr->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    if (rc != 0) {
        return rh_error_set(RH_ERR_UNSUPPORTED, "cannot make a process-"
                            "shared robust mutex: %s", strerror(rc));
    }
    return RH_OK;
}

/* Lays out table and heap in the freshly made segment. Pages of a new file
 * read as zero: every table slot is already EMPTY with generation 0. */
/* Bytes in front of the heap: header, object table, hold records. */
static uint64_t rh_store_meta_bytes(uint64_t cap, uint32_t procs)
{
    uint64_t slots, holds;

    rh_holds_layout(cap, procs, &slots, &holds);
    return RH_STORE_HDR_SIZE + cap * sizeof(rh_store_entry_t) + holds +
           rh_spill_meta_bytes(cap);
}

static uint32_t rh_store_procs(const rh_store_params_t *p)
{
    return p->procs != 0 ? p->procs : RH_STORE_PROCS_DEFAULT;
}

static rh_status_t rh_store_format(rh_store_t *s, uint64_t cap,
                                   uint32_t procs)
{
    rh_store_hdr_t *hdr = s->hdr;
    uint64_t holds;

    hdr->table_off = RH_STORE_HDR_SIZE;
    hdr->table_cap = cap;
    hdr->holders_off = RH_STORE_HDR_SIZE + cap * sizeof(rh_store_entry_t);
    hdr->holders = procs;
    rh_holds_layout(cap, procs, &hdr->holder_slots, &holds);
    hdr->holder_bytes = holds / procs;
    hdr->spill_recs_off = hdr->holders_off + holds;
    hdr->spill_recs = rh_spill_recs_for(cap);
    hdr->heap_off = ((rh_store_meta_bytes(cap, procs) + RH_BLOCK_HDR +
                      RH_BLOCK_UNIT - 1) & ~(uint64_t)(RH_BLOCK_UNIT - 1)) -
                    RH_BLOCK_HDR;
    hdr->heap_size = hdr->heap_off < s->length ?
                     (s->length - hdr->heap_off) &
                     ~(uint64_t)(RH_BLOCK_UNIT - 1) : 0;
    hdr->live = hdr->lock_recoveries = 0;
    atomic_store_explicit(&hdr->moves, 0, memory_order_relaxed);
    rh_alloc_init(s);
    return rh_store_init_lock(hdr);
}

static rh_status_t rh_store_check_params(const rh_store_params_t *p,
                                         uint64_t cap)
{
    uint64_t meta = rh_store_meta_bytes(cap, rh_store_procs(p));

    if (p->create && p->size < meta + 65536 + 4096) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "a store of %llu bytes is "
                            "too small: its header, table of %llu objects "
                            "and records of %u processes take %llu bytes "
                            "(RAYHPC_STORE_SIZE)",
                            (unsigned long long)p->size,
                            (unsigned long long)cap,
                            (unsigned)rh_store_procs(p),
                            (unsigned long long)meta);
    }
    if ((unsigned)p->hugepages > RH_STORE_HUGEPAGES_OFF) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "huge page mode %d is not "
                            "auto, on or off", (int)p->hugepages);
    }
    return RH_OK;
}

static rh_status_t rh_store_create_segment(rh_store_t *s,
                                           const rh_store_params_t *p)
{
    uint64_t cap = rh_table_capacity(p), page_size = 0;
    rh_store_pages_t pages = RH_STORE_PAGES_SMALL;
    rh_status_t status;
    int reaped = 0;

    status = rh_store_check_params(p, cap);
    if (status != RH_OK) {
        return status;
    }
    if (!p->no_reap && rh_store_reap_stale(NULL, &reaped) == RH_OK &&
        reaped > 0) {
        rh_info("removed %d stale store segment(s)", reaped);
    }
    status = rh_segment_create(s, p, &page_size, &pages);
    if (status != RH_OK) {
        return status;
    }
    s->hdr = (rh_store_hdr_t *)s->base;
    status = rh_store_format(s, cap, rh_store_procs(p));
    if (status == RH_OK) {
        status = rh_spill_setup(s, p);
    }
    if (status != RH_OK) {
        rh_segment_unlink(s);
        rh_segment_unmap(s);
        return status;
    }
    atomic_store_explicit(&s->hdr->ready, 1, memory_order_release);
    rh_debug("store %s: %zu bytes, %llu-byte pages, %llu object slots",
             s->name, s->length, (unsigned long long)page_size,
             (unsigned long long)cap);
    return RH_OK;
}

rh_status_t rh_store_open(const rh_store_params_t *p, rh_store_t **out)
{
    rh_store_t *s;
    rh_status_t status;

    if (p == NULL || out == NULL) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_store_open needs "
                            "params and an output pointer");
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "store handle");
    }
    status = rh_store_segment_name(p->job_id, p->node, s->name,
                                   sizeof(s->name));
    if (status != RH_OK) {
        goto err_free;
    }
    status = p->create ? rh_store_create_segment(s, p)
                       : rh_segment_attach(s, p);
    if (status != RH_OK) {
        goto err_free;
    }
    s->hdr = (rh_store_hdr_t *)s->base;
    if (atomic_load_explicit(&s->hdr->ready, memory_order_acquire) != 1) {
        status = rh_error_set(RH_ERR_MALFORMED, "store %s lost its ready "
                              "flag", s->name);
        goto err_unmap;
    }
    s->table = (rh_store_entry_t *)rh_store_at(s, s->hdr->table_off);
    s->mask = s->hdr->table_cap - 1;
    status = rh_holds_claim(s);
    if (status != RH_OK) {
        goto err_unlink;
    }
    if (p->create && (status = rh_spill_start(s)) != RH_OK) {
        rh_holds_leave(s);
        goto err_unlink;
    }
    *out = s;
    return RH_OK;

err_unlink:
    if (p->create) {
        rh_segment_unlink(s);
    }
err_unmap:
    rh_segment_unmap(s);
err_free:
    free(s);
    return status;
}

rh_status_t rh_store_close(rh_store_t *s, int unlink)
{
    if (s == NULL) {
        return RH_OK;
    }
    rh_spill_stop(s);   /* before the holds: it may be holding some */
    rh_spill_reader_close(&s->reader);
    rh_holds_leave(s);
    if (unlink) {
        rh_spill_remove_all(s);
        rh_segment_unlink(s);
    }
    rh_segment_unmap(s);
    free(s);
    return RH_OK;
}

/* ---- objects ------------------------------------------------------------- */

static rh_status_t rh_store_absent(rh_object_id_t id, const char *what)
{
    char buf[RH_OBJECT_ID_STRLEN];

    return rh_error_set(RH_ERR_INVALID_REF, "%s: object %s is not in the "
                        "store", what, rh_object_id_str(id, buf));
}

static rh_status_t rh_store_too_large(rh_store_t *s, rh_object_id_t id,
                                      size_t size)
{
    char buf[RH_OBJECT_ID_STRLEN];

    return rh_error_set(RH_ERR_TOO_LARGE, "object %s of %zu bytes can never "
                        "fit in the object store of %zu bytes (at most %llu "
                        "bytes per object; raise RAYHPC_STORE_SIZE)",
                        rh_object_id_str(id, buf), size, s->length,
                        (unsigned long long)rh_alloc_max_object(s));
}

/* The error for an object that does not fit now (the numbers are read
 * under the lock), with why nothing could be freed for it. */
static rh_status_t rh_store_full(rh_store_t *s, rh_object_id_t id,
                                 size_t size, const char *why)
{
    char buf[RH_OBJECT_ID_STRLEN];
    rh_store_hdr_t *h = s->hdr;
    unsigned long long free_bytes = 0, largest = 0, live = 0;

    if (rh_store_lock(s) == RH_OK) {
        free_bytes = h->heap_size - h->used;
        largest = rh_alloc_largest_free(s);
        live = h->live;
        rh_store_unlock(s);
    }
    return rh_error_set(RH_ERR_STORE_FULL, "object %s of %zu bytes does not "
                        "fit in the object store now: %llu of %llu bytes "
                        "free (largest free block %llu bytes), %llu objects"
                        "%s%s", rh_object_id_str(id, buf), size, free_bytes,
                        (unsigned long long)h->heap_size, largest, live,
                        why != NULL && why[0] != '\0' ? "; " : "",
                        why != NULL ? why : "");
}

static rh_status_t rh_store_exists(rh_store_entry_t *e, rh_object_id_t id)
{
    uint64_t c = atomic_load_explicit(&e->ctl, memory_order_relaxed);
    char buf[RH_OBJECT_ID_STRLEN];

    return rh_error_set(RH_ERR_BUSY, "object %s already exists in the store "
                        "(%s)", rh_object_id_str(id, buf),
                        (c & RH_CTL_PENDING) ?
                            "deleted but still referenced" :
                        rh_ctl_state(c) == RH_SLOT_SEALED ? "sealed" :
                        rh_ctl_state(c) == RH_SLOT_SPILLED ? "spilled" :
                            "being created");
}

/* Under the lock; *heap_full when only the heap lacks room (the caller
 * may make some, and says so). */
static rh_status_t rh_store_insert(rh_store_t *s, rh_object_id_t id,
                                   size_t size, uint16_t flags,
                                   uint64_t *offset, int *heap_full)
{
    rh_store_entry_t *e, *existing;
    uint64_t alloc;
    uint16_t klass;

    e = rh_table_slot_for(s, id, &existing);
    if (existing != NULL) {
        return rh_store_exists(existing, id);
    }
    if (e == NULL) {
        char buf[RH_OBJECT_ID_STRLEN];

        return rh_error_set(RH_ERR_STORE_FULL, "object %s: the store's "
                            "object table is full (%llu objects in %llu "
                            "slots)", rh_object_id_str(id, buf),
                            (unsigned long long)s->hdr->live,
                            (unsigned long long)s->hdr->table_cap);
    }
    if (rh_alloc_object(s, size, offset, &alloc, &klass) != RH_OK) {
        *heap_full = 1;
        return RH_ERR_STORE_FULL;
    }
    rh_table_publish(s, e, id, *offset, size, alloc, klass);
    e->flags = flags;
    return RH_OK;
}

/* Under the lock: whether the heap is past the spill threshold. */
static int rh_store_over_high(const rh_store_t *s)
{
    return s->hdr->spill_dir[0] != '\0' &&
           s->hdr->used > s->hdr->spill_high;
}

static rh_status_t rh_store_create_flags(rh_store_t *s, rh_object_id_t id,
                                         size_t size, uint16_t flags,
                                         void **ptr)
{
    uint64_t offset = 0;
    rh_status_t status;
    char why[256] = "";
    int over = 0;

    if (rh_unlikely(s == NULL || ptr == NULL)) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_store_create needs a "
                            "store and an output pointer");
    }
    if (rh_unlikely(size > rh_alloc_max_object(s))) {
        return rh_store_too_large(s, id, size);
    }
    /* Each round of making room frees something or says why it cannot;
     * another process may take what it freed first, hence a few rounds. */
    for (int round = 0;; round++) {
        int heap_full = 0;

        status = rh_store_lock(s);
        if (status != RH_OK) {
            return status;
        }
        status = rh_store_insert(s, id, size, flags, &offset, &heap_full);
        over = status == RH_OK && rh_store_over_high(s);
        rh_store_unlock(s);
        if (!heap_full) {
            if (status == RH_ERR_STORE_FULL) {
                rh_spill_set_why(RH_STORE_FULL_OTHER);   /* table full */
            }
            break;
        }
        if (round == 16 ||
            rh_spill_make_room(s, size, 0, 0, why, sizeof(why)) != RH_OK) {
            return rh_store_full(s, id, size, why);
        }
    }
    if (status != RH_OK) {
        return status;
    }
    *ptr = rh_store_at(s, offset);
    if (rh_unlikely(over)) {
        rh_spill_past_threshold(s);
    }
    return RH_OK;
}

rh_status_t rh_store_create(rh_store_t *s, rh_object_id_t id, size_t size,
                            void **ptr)
{
    return rh_store_create_flags(s, id, size, 0, ptr);
}

rh_status_t rh_store_create_copy(rh_store_t *s, rh_object_id_t id,
                                 size_t size, void **ptr)
{
    return rh_store_create_flags(s, id, size, RH_ENTRY_COPY, ptr);
}

/* Locks the store and finds id in it; on RH_OK the lock is held and *e,
 * *c are the entry and its control word. what names the caller's act in
 * the message when the id is absent. */
static rh_status_t rh_store_find_locking(rh_store_t *s, rh_object_id_t id,
                                         const char *what,
                                         rh_store_entry_t **e, uint64_t *c)
{
    rh_status_t status = rh_store_lock(s);

    if (status != RH_OK) {
        return status;
    }
    *e = rh_table_find_locked(s, id, c);
    if (*e == NULL) {
        rh_store_unlock(s);
        return rh_store_absent(id, what);
    }
    return RH_OK;
}

rh_status_t rh_store_adopt(rh_store_t *s, rh_object_id_t id, size_t size,
                           void **ptr)
{
    char buf[RH_OBJECT_ID_STRLEN];
    const char *why = NULL;
    rh_store_entry_t *e;
    uint64_t c, offset = 0, bytes = 0;
    int32_t creator = 0;
    rh_status_t status = rh_store_find_locking(s, id, "adopt", &e, &c);

    if (status != RH_OK) {
        return status;
    }
    creator = atomic_load_explicit(&e->creator_pid, memory_order_relaxed);
    offset = atomic_load_explicit(&e->offset, memory_order_relaxed);
    bytes = atomic_load_explicit(&e->size, memory_order_relaxed);
    if (c & RH_CTL_PENDING) {
        why = "it is deleted";
    } else if (rh_ctl_state(c) != RH_SLOT_SEALED) {
        why = rh_ctl_state(c) == RH_SLOT_SPILLED ? "it is spilled" :
              "it is being written";
    } else if (bytes != size) {
        why = "its size differs";
    } else {
        /* Sealed objects do not change, whoever wrote them. A copy
         * brought from another node becomes this node's own: the node
         * holds the task's return now, which must not be evicted as a
         * spare copy. */
        e->flags &= (uint16_t)~RH_ENTRY_COPY;
    }
    rh_store_unlock(s);
    if (why != NULL) {
        return rh_error_set(RH_ERR_BUSY, "object %s (%llu bytes, created by "
                            "process %d) cannot be taken over as a value of "
                            "%zu bytes: %s", rh_object_id_str(id, buf),
                            (unsigned long long)bytes, (int)creator, size,
                            why);
    }
    *ptr = rh_store_at(s, offset);
    return RH_OK;
}

static rh_status_t rh_store_remove(rh_store_t *s, rh_store_entry_t *e,
                                   uint64_t c);

rh_status_t rh_store_drop_dead_write(rh_store_t *s, rh_object_id_t id)
{
    char buf[RH_OBJECT_ID_STRLEN];
    rh_store_entry_t *e;
    uint64_t c;
    int32_t writer;
    rh_status_t status = rh_store_find_locking(s, id, "drop", &e, &c);

    if (status != RH_OK) {
        return status;
    }
    writer = atomic_load_explicit(&e->creator_pid, memory_order_relaxed);
    if (rh_ctl_state(c) != RH_SLOT_CREATED || writer == (int32_t)getpid() ||
        !rh_segment_pid_gone(writer, 0)) {
        rh_store_unlock(s);
        return rh_error_set(RH_ERR_BUSY, "object %s is not an unsealed "
                            "object of a process that is gone (writer %d)",
                            rh_object_id_str(id, buf), (int)writer);
    }
    /* A process that is gone writes no more: its bytes are abandoned. One
     * marked already goes with the last of its references, which the dead
     * process's reap gives back. */
    status = (c & RH_CTL_PENDING) ? RH_OK : rh_store_remove(s, e, c);
    rh_store_unlock(s);
    return status;
}

rh_status_t rh_store_seal(rh_store_t *s, rh_object_id_t id)
{
    char buf[RH_OBJECT_ID_STRLEN];
    rh_store_entry_t *e;
    uint64_t c;

    for (;;) {
        e = rh_table_find(s, id, &c);
        if (e == NULL || (c & RH_CTL_PENDING)) {
            return rh_store_absent(id, "seal");
        }
        if (rh_ctl_state(c) != RH_SLOT_CREATED) {
            return rh_error_set(RH_ERR_BUSY, "object %s is sealed already",
                                rh_object_id_str(id, buf));
        }
        /* release: the bytes written before the seal are seen by every
         * get that sees the seal */
        if (atomic_compare_exchange_weak_explicit(
                &e->ctl, &c, rh_ctl_with_state(c, RH_SLOT_SEALED),
                memory_order_acq_rel, memory_order_acquire)) {
            return RH_OK;
        }
    }
}

rh_status_t rh_store_get(rh_store_t *s, rh_object_id_t id, const void **ptr,
                         size_t *size)
{
    char buf[RH_OBJECT_ID_STRLEN];
    uint64_t c, offset, bytes;
    rh_store_entry_t *e;

    for (;;) {
        e = rh_table_find(s, id, &c);
        if (rh_unlikely(e == NULL || (c & RH_CTL_PENDING))) {
            return rh_store_absent(id, "get");
        }
        /* read before the swap: once it succeeds the entry may move away
         * (and another move in); a swap that succeeds proves these were
         * the entry's (stores are release, these loads acquire) */
        offset = atomic_load_explicit(&e->offset, memory_order_acquire);
        bytes = atomic_load_explicit(&e->size, memory_order_acquire);
        if (rh_unlikely(rh_ctl_state(c) == RH_SLOT_SPILLED)) {
            rh_status_t status = rh_spill_restore(s, id);

            if (status != RH_OK) {
                return status;
            }
            continue;
        }
        if (rh_unlikely(rh_ctl_state(c) != RH_SLOT_SEALED)) {
            return rh_error_set(RH_ERR_BUSY, "object %s is not sealed yet",
                                rh_object_id_str(id, buf));
        }
        if (rh_unlikely((c & RH_CTL_RC_MASK) == RH_CTL_RC_MASK)) {
            return rh_error_set(RH_ERR_BUSY, "object %s has too many "
                                "references", rh_object_id_str(id, buf));
        }
        if (atomic_compare_exchange_weak_explicit(&e->ctl, &c, c + 1,
                                                  memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            break;
        }
    }
    rh_holds_add(s, id);   /* after the count: see holds.c */
    /* a stamp for LRU; it may land on a slot the entry just left */
    atomic_store_explicit(&e->atime_ms, rh_table_now_ms(),
                          memory_order_relaxed);
    *ptr = rh_store_at(s, offset);
    *size = bytes;
    return RH_OK;
}

int rh_store_free_entry(rh_store_t *s, rh_store_entry_t *e, uint64_t expect)
{
    uint64_t offset = atomic_load_explicit(&e->offset, memory_order_relaxed);
    uint64_t size = atomic_load_explicit(&e->size, memory_order_relaxed);
    uint64_t alloc = e->alloc;
    uint16_t klass = e->klass;

    if (klass == RH_KLASS_SPILL) {
        /* its file share goes first: retiring may move another entry in */
        if (atomic_load_explicit(&e->ctl, memory_order_acquire) != expect) {
            return 0;
        }
        rh_spill_forget(s, e);
        return rh_table_retire(s, e, expect);
    }
    /* read first: closing the gap may move another entry into e */
    if (!rh_table_retire(s, e, expect)) {
        return 0;
    }
    rh_alloc_free_object(s, offset, alloc, klass, size);
    return 1;
}

/* The release that dropped the last reference of a deleted object frees
 * it. It looks the id up again under the lock: the entry may have moved
 * (a delete closing a gap), or a delete may have freed it first. */
static void rh_store_free_released(rh_store_t *s, rh_object_id_t id)
{
    rh_store_entry_t *e;
    uint64_t c;

    if (rh_store_lock(s) != RH_OK) {
        return;
    }
    e = rh_table_find_locked(s, id, &c);
    if (e != NULL && (c & RH_CTL_PENDING) && (c & RH_CTL_RC_MASK) == 0) {
        rh_store_free_entry(s, e, c);
    }
    rh_store_unlock(s);
}

uint64_t rh_store_unref(rh_store_t *s, rh_object_id_t id, uint32_t n)
{
    rh_store_entry_t *e;
    uint64_t c, k;

    for (;;) {
        e = rh_table_find(s, id, &c);
        if (rh_unlikely(e == NULL || n == 0)) {
            return 0;
        }
        k = c & RH_CTL_RC_MASK;
        k = k < n ? k : n;
        if (rh_unlikely(k == 0)) {
            return 0;
        }
        /* release: our reads of the bytes come before any reuse */
        if (atomic_compare_exchange_weak_explicit(&e->ctl, &c, c - k,
                                                  memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            break;
        }
    }
    if (rh_unlikely(((c - k) & RH_CTL_RC_MASK) == 0 &&
                    (c & RH_CTL_PENDING))) {
        rh_store_free_released(s, id);
    }
    return k;
}

/* A reference uncounted from the record already leaves the word. */
static rh_status_t rh_store_unref_one(rh_store_t *s, rh_object_id_t id)
{
    char buf[RH_OBJECT_ID_STRLEN];
    uint64_t c;

    if (rh_unlikely(rh_store_unref(s, id, 1) == 0)) {
        return rh_table_find(s, id, &c) == NULL ?
               rh_store_absent(id, "release") :
               rh_error_set(RH_ERR_INVALID_REF, "release: object %s holds "
                            "no reference", rh_object_id_str(id, buf));
    }
    return RH_OK;
}

rh_status_t rh_store_release(rh_store_t *s, rh_object_id_t id)
{
    char buf[RH_OBJECT_ID_STRLEN];
    uint64_t c;

    /* uncount in our record before the word: see holds.c */
    if (rh_unlikely(!rh_holds_drop(s, id))) {
        rh_store_entry_t *e = rh_table_find(s, id, &c);

        if (e == NULL) {
            return rh_store_absent(id, "release");
        }
        if ((c & RH_CTL_RC_MASK) == 0) {
            return rh_error_set(RH_ERR_INVALID_REF, "release: object %s "
                                "holds no reference",
                                rh_object_id_str(id, buf));
        }
        /* taken through another handle of this process, or by a process
         * that hands it over: still a reference to drop */
    }
    return rh_store_unref_one(s, id);
}

void rh_store_mark_user(rh_store_t *s, rh_object_id_t id)
{
    rh_holds_mark_user(s, id);
}

rh_status_t rh_store_release_user(rh_store_t *s, rh_object_id_t id)
{
    char buf[RH_OBJECT_ID_STRLEN];
    int dropped = rh_holds_drop_user(s, id);

    if (dropped < 0) {
        return rh_store_release(s, id);
    }
    if (dropped == 0) {
        return rh_error_set(RH_ERR_INVALID_REF, "object %s: this process "
                            "holds no get of it (released already, or never "
                            "got)", rh_object_id_str(id, buf));
    }
    return rh_store_unref_one(s, id);
}

/* Under the lock: frees e now if nothing references it, else marks it so
 * that the last release frees it. Gets never reference a marked entry, so
 * the count only falls from then on. */
static rh_status_t rh_store_remove(rh_store_t *s, rh_store_entry_t *e,
                                   uint64_t c)
{
    for (;;) {
        if ((c & RH_CTL_RC_MASK) == 0) {
            if (rh_store_free_entry(s, e, c)) {
                return RH_OK;
            }
        } else if (atomic_compare_exchange_weak_explicit(
                       &e->ctl, &c, c | RH_CTL_PENDING,
                       memory_order_acq_rel, memory_order_relaxed)) {
            return RH_OK;
        }
        c = atomic_load_explicit(&e->ctl, memory_order_acquire);
    }
}

static rh_status_t rh_store_delete_locked(rh_store_t *s, rh_object_id_t id)
{
    char buf[RH_OBJECT_ID_STRLEN];
    rh_store_entry_t *e;
    int32_t creator;
    uint64_t c;

    e = rh_table_find_locked(s, id, &c);
    if (e == NULL) {
        return rh_store_absent(id, "delete");
    }
    creator = atomic_load_explicit(&e->creator_pid, memory_order_relaxed);
    if (rh_ctl_state(c) == RH_SLOT_CREATED && creator != (int32_t)getpid()) {
        return rh_error_set(RH_ERR_BUSY, "object %s is being created by "
                            "process %d; only it may abort it",
                            rh_object_id_str(id, buf), (int)creator);
    }
    return rh_store_remove(s, e, c);
}

rh_status_t rh_store_delete(rh_store_t *s, rh_object_id_t id)
{
    rh_status_t status = rh_store_lock(s);

    if (status != RH_OK) {
        return status;
    }
    status = rh_store_delete_locked(s, id);
    rh_store_unlock(s);
    return status;
}

rh_status_t rh_store_delete_owned(rh_store_t *s, uint32_t owner,
                                  size_t *deleted)
{
    rh_object_id_t *ids = NULL;
    size_t n = 0, cap = 0;
    rh_status_t status = rh_store_lock(s);

    *deleted = 0;
    if (status != RH_OK) {
        return status;
    }
    /* Collect, then delete: a removal moves later entries of a probe run
     * into the gap, which a scan that deleted as it went could skip. */
    for (uint64_t i = 0; i <= s->mask; i++) {
        rh_store_entry_t *e = &s->table[i];
        uint64_t c = atomic_load_explicit(&e->ctl, memory_order_acquire);
        rh_object_id_t id;

        if ((rh_ctl_state(c) != RH_SLOT_SEALED &&
             rh_ctl_state(c) != RH_SLOT_SPILLED) || (c & RH_CTL_PENDING)) {
            continue;
        }
        id.hi = atomic_load_explicit(&e->id_hi, memory_order_relaxed);
        id.lo = atomic_load_explicit(&e->id_lo, memory_order_relaxed);
        if (rh_object_id_owner(id) != owner) {
            continue;
        }
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 64;
            rh_object_id_t *more = realloc(ids, ncap * sizeof(*ids));

            if (more == NULL) {
                break;   /* what was found still goes */
            }
            ids = more;
            cap = ncap;
        }
        ids[n++] = id;
    }
    for (size_t i = 0; i < n; i++) {
        if (rh_store_delete_locked(s, ids[i]) == RH_OK) {
            (*deleted)++;
        }
    }
    rh_store_unlock(s);
    free(ids);
    return RH_OK;
}

uint64_t rh_store_abort_created_by(rh_store_t *s, int32_t pid)
{
    rh_object_id_t *ids = NULL;
    size_t n = 0, cap = 0;
    uint64_t aborted = 0;

    if (rh_store_lock(s) != RH_OK) {
        return 0;
    }
    /* collect, then remove: see rh_store_delete_owned */
    for (uint64_t i = 0; i <= s->mask; i++) {
        rh_store_entry_t *e = &s->table[i];
        uint64_t c = atomic_load_explicit(&e->ctl, memory_order_acquire);

        if (rh_ctl_state(c) != RH_SLOT_CREATED ||
            atomic_load_explicit(&e->creator_pid, memory_order_relaxed) !=
            pid) {
            continue;
        }
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            rh_object_id_t *more = realloc(ids, ncap * sizeof(*ids));

            if (more == NULL) {
                break;
            }
            ids = more;
            cap = ncap;
        }
        ids[n].hi = atomic_load_explicit(&e->id_hi, memory_order_relaxed);
        ids[n].lo = atomic_load_explicit(&e->id_lo, memory_order_relaxed);
        n++;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t c;
        rh_store_entry_t *e = rh_table_find_locked(s, ids[i], &c);

        if (e != NULL && rh_ctl_state(c) == RH_SLOT_CREATED &&
            rh_store_remove(s, e, c) == RH_OK) {
            aborted++;
        }
    }
    rh_store_unlock(s);
    free(ids);
    return aborted;
}

int rh_store_contains(rh_store_t *s, rh_object_id_t id)
{
    uint64_t c;

    return rh_table_find(s, id, &c) != NULL && !(c & RH_CTL_PENDING) &&
           (rh_ctl_state(c) == RH_SLOT_SEALED ||
            rh_ctl_state(c) == RH_SLOT_SPILLED);
}

int rh_store_present(rh_store_t *s, rh_object_id_t id)
{
    uint64_t c;

    return rh_table_find(s, id, &c) != NULL && !(c & RH_CTL_PENDING) &&
           rh_ctl_state(c) != RH_SLOT_EMPTY;
}

/* ---- introspection ------------------------------------------------------- */

rh_status_t rh_store_stats(rh_store_t *s, rh_store_stats_t *st)
{
    rh_store_hdr_t *h = s->hdr;
    rh_status_t status = rh_store_lock(s);

    if (status != RH_OK) {
        return status;
    }
    st->capacity = h->heap_size;
    st->used = h->used;
    st->free = h->heap_size - h->used;
    st->objects = h->live;
    st->object_bytes = h->object_bytes;
    st->largest_free = rh_alloc_largest_free(s);
    st->table_capacity = h->table_cap;
    st->segment_size = s->length;
    st->page_size = h->page_size;
    st->pages = (rh_store_pages_t)h->pages;
    st->lock_recoveries = h->lock_recoveries;
    st->spilled_objects = h->spilled_objects;
    st->spilled_bytes = h->spilled_bytes;
    st->spill_files = h->spill_files;
    st->spills = h->spills;
    st->spill_written = h->spill_written;
    st->restores = h->restores;
    st->restored_bytes = h->restored_bytes;
    st->evictions = h->evictions;
    st->evicted_bytes = h->evicted_bytes;
    st->spill_ns = h->spill_ns;
    st->restore_ns = h->restore_ns;
    st->fragmentation = h->heap_size == 0 ? 0.0 :
        (double)(h->heap_free - (st->largest_free < h->heap_free ?
                                 st->largest_free : h->heap_free)) /
        (double)h->heap_size;
    rh_store_unlock(s);
    return RH_OK;
}

/* The table against the header's counters and the allocator; every entry
 * must be reachable from its home slot. */
static rh_status_t rh_table_check(rh_store_t *s, uint64_t slab_objects)
{
    uint64_t live = 0, used = 0, bytes = 0, in_slabs = 0, c;
    uint64_t spilled = 0, spilled_bytes = 0;

    for (uint64_t i = 0; i <= s->mask; i++) {
        rh_store_entry_t *e = &s->table[i];
        rh_object_id_t id;

        if (rh_ctl_state(atomic_load(&e->ctl)) == RH_SLOT_EMPTY) {
            continue;
        }
        id.hi = atomic_load(&e->id_hi);
        id.lo = atomic_load(&e->id_lo);
        if (rh_table_find_locked(s, id, &c) != e) {
            return rh_error_set(RH_ERR_MALFORMED, "object table slot %llu "
                                "cannot be reached from its home slot",
                                (unsigned long long)i);
        }
        live++;
        if (e->klass == RH_KLASS_SPILL) {
            spilled++;
            spilled_bytes += atomic_load(&e->size);
            continue;   /* no heap memory */
        }
        bytes += atomic_load(&e->size);
        used += rh_alloc_footprint(s, e->alloc, e->klass);
        in_slabs += e->klass < RH_SLAB_CLASSES;
    }
    if (spilled != s->hdr->spilled_objects ||
        spilled_bytes != s->hdr->spilled_bytes) {
        return rh_error_set(RH_ERR_MALFORMED, "the object table holds %llu "
                            "spilled objects of %llu bytes, the header "
                            "counts %llu of %llu",
                            (unsigned long long)spilled,
                            (unsigned long long)spilled_bytes,
                            (unsigned long long)s->hdr->spilled_objects,
                            (unsigned long long)s->hdr->spilled_bytes);
    }
    /* objects being read back hold memory no entry names yet */
    used += s->hdr->restoring_used;
    bytes += s->hdr->restoring_bytes;
    in_slabs += s->hdr->restoring_slots;
    if (live != s->hdr->live || used != s->hdr->used ||
        bytes != s->hdr->object_bytes || in_slabs != slab_objects) {
        return rh_error_set(RH_ERR_MALFORMED, "object table disagrees with "
                            "the header: %llu/%llu objects, %llu/%llu bytes "
                            "used, %llu/%llu object bytes, %llu/%llu slab "
                            "slots",
                            (unsigned long long)live,
                            (unsigned long long)s->hdr->live,
                            (unsigned long long)used,
                            (unsigned long long)s->hdr->used,
                            (unsigned long long)bytes,
                            (unsigned long long)s->hdr->object_bytes,
                            (unsigned long long)in_slabs,
                            (unsigned long long)slab_objects);
    }
    return RH_OK;
}

static rh_status_t rh_store_check_locked(rh_store_t *s)
{
    uint64_t slab_objects = 0;
    rh_status_t status = rh_alloc_check(s, &slab_objects);

    return status != RH_OK ? status : rh_table_check(s, slab_objects);
}

rh_status_t rh_store_check(rh_store_t *s)
{
    rh_status_t status = rh_store_lock(s);

    if (status != RH_OK) {
        return status;
    }
    status = rh_store_check_locked(s);
    rh_store_unlock(s);
    return status;
}

void *rh_store_base(rh_store_t *s)
{
    return s->base;
}

size_t rh_store_length(rh_store_t *s)
{
    return s->length;
}

uint64_t rh_store_offset(rh_store_t *s, const void *ptr)
{
    const uint8_t *p = ptr;

    if (p < s->base || p >= s->base + s->length) {
        return UINT64_MAX;
    }
    return (uint64_t)(p - s->base);
}

const char *rh_store_name(rh_store_t *s)
{
    return s->name;
}
