/*
 * The node's shared-memory object store (Ray's plasma).
 *
 * One segment per node, "/rayhpc-<jobid>-<node>" under /dev/shm (or a
 * hugetlbfs mount), created by the node's leader and attached by name by
 * every other rank of the node. Objects are created, written in place,
 * sealed (immutable from then on) and read by any process of the node
 * through a pointer into its own mapping of the segment: no copy.
 *
 * Everything shared lives in the segment and refers to other parts of it by
 * offset, since each process maps it at its own address. A process-shared
 * robust mutex guards the allocator and the object table; get, release, seal
 * and contains take no lock (one atomic compare-and-swap on the object's
 * table entry), so that reading a sealed object costs tens of nanoseconds.
 *
 * All calls are safe from any thread of any process that opened the store.
 */
#ifndef RH_PLASMA_STORE_H
#define RH_PLASMA_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "rayhpc.h"
#include "plasma/object_id.h"

typedef struct rh_store rh_store_t;

/* Whether the segment is backed by huge pages. */
typedef enum rh_store_hugepages {
    RH_STORE_HUGEPAGES_AUTO = 0,  /* use them when the system can; else 4 KiB
                                   * pages, quietly */
    RH_STORE_HUGEPAGES_ON   = 1,  /* fail with a message saying why not */
    RH_STORE_HUGEPAGES_OFF  = 2
} rh_store_hugepages_t;

/* What backs the segment, as found after open. */
typedef enum rh_store_pages {
    RH_STORE_PAGES_SMALL   = 0,   /* /dev/shm, base pages */
    RH_STORE_PAGES_THP     = 1,   /* /dev/shm, transparent huge pages */
    RH_STORE_PAGES_HUGETLB = 2    /* a file on a hugetlbfs mount */
} rh_store_pages_t;

/* Zeroed params are the defaults (attach, huge pages auto, capacity from
 * size, 10 s attach timeout); job_id and node are always needed, size when
 * creating. */
typedef struct rh_store_params {
    const char          *job_id;     /* the job, e.g. SLURM_JOB_ID */
    const char          *node;       /* the node's identity (or number) */
    int                  create;     /* 1: this process is the node leader */
    uint64_t             size;       /* create: bytes of the whole segment */
    rh_store_hugepages_t hugepages;  /* create: huge page policy */
    uint64_t             table_capacity;  /* create: object slots, rounded
                                      * up to a power of two; 0: size/8 KiB */
    const char          *hugetlbfs_dir;   /* create/attach: a hugetlbfs mount
                                      * to use; NULL: the first in
                                      * /proc/mounts */
    int                  attach_timeout_ms;  /* attach: 0 = 10000 */
    int32_t              leader_pid; /* attach: the process that creates the
                                      * segment on this host, waited for past
                                      * the timeout while it lives; 0: not
                                      * known */
    int                  no_reap;    /* create: skip rh_store_reap_stale() */
    uint32_t             procs;      /* create: processes that may have the
                                      * store open at once (each has a record
                                      * of what it holds); 0 = 16 */
    const char          *spill_dir;  /* create: where objects are spilled
                                      * (a directory per store is made in
                                      * it); NULL or "": no spilling */
    double               spill_threshold;  /* create: fraction of the heap
                                      * used past which objects are
                                      * spilled; 0 = 0.8 */
    int                  spill_buffered;  /* create: never O_DIRECT
                                      * (RAYHPC_SPILL_DIRECT=off) */
    uint64_t             spill_max;  /* create: bytes the spill files may
                                      * take; 0: as much as the disk has */
} rh_store_params_t;

#define RH_STORE_PROCS_DEFAULT 16u

typedef struct rh_store_stats {
    uint64_t capacity;        /* heap bytes for objects */
    uint64_t used;            /* bytes held by live objects, with rounding
                               * to their size class or block */
    uint64_t free;            /* capacity - used (not all contiguous) */
    uint64_t objects;         /* live objects, deleted-but-referenced too */
    uint64_t object_bytes;    /* sum of the live objects' sizes */
    uint64_t largest_free;    /* the largest object that fits now */
    uint64_t table_capacity;  /* object slots */
    uint64_t segment_size;    /* bytes mapped */
    uint64_t page_size;       /* 4096 or the huge page size */
    rh_store_pages_t pages;
    uint64_t lock_recoveries; /* times a process died holding the lock */
    uint64_t spilled_objects; /* objects in spill files now */
    uint64_t spilled_bytes;   /* their bytes */
    uint64_t spill_files;     /* spill files now */
    uint64_t spills;          /* objects written to spill files, ever */
    uint64_t spill_written;   /* bytes written to spill files, ever */
    uint64_t restores;        /* spilled objects read back, ever */
    uint64_t restored_bytes;
    uint64_t evictions;       /* pulled copies dropped for room, ever */
    uint64_t evicted_bytes;
    double   fragmentation;   /* free heap bytes outside the largest free
                               * block, as a fraction of the heap */
    uint64_t spill_ns;        /* time spent writing spill files, ever */
    uint64_t restore_ns;      /* time spent reading objects back, ever */
} rh_store_stats_t;

/* Creates (p->create) or attaches to the node's segment. Creating also
 * removes stale segments (rh_store_reap_stale) and an old segment of the
 * same name whose creator is dead; it fails with RH_ERR_BUSY when a live
 * process owns that name. Attaching waits up to attach_timeout_ms for the
 * leader to finish initializing the segment (RH_ERR_TIMEOUT). */
rh_status_t rh_store_open(const rh_store_params_t *p, rh_store_t **out);

/* Gives back the references this handle still holds, unmaps the segment
 * and frees s. With unlink, also removes the segment's
 * name (the leader does this at exit); processes that still map it keep
 * their mapping until they close it. */
rh_status_t rh_store_close(rh_store_t *s, int unlink);

/* Allocates `size` bytes (0 allowed) for a new object and returns a
 * writable, 64-byte aligned pointer to them in *ptr. The object is CREATED:
 * invisible to get until sealed. Fails with RH_ERR_BUSY when the id is in
 * the store already, RH_ERR_TOO_LARGE when the object could never fit,
 * RH_ERR_STORE_FULL when it does not fit now (nothing changes: the store
 * stays usable). With spilling on, a full store first evicts copies and
 * spills sealed objects no one references, and RH_ERR_STORE_FULL says why
 * that was not enough (nothing to spill, or the spill directory full). A
 * spilled object stays contained; get reads it back. */
rh_status_t rh_store_create(rh_store_t *s, rh_object_id_t id, size_t size,
                            void **ptr);

/* Why this thread's last rh_store_create (or get of a spilled object)
 * found no room: whether waiting can help. */
typedef enum rh_store_full_why {
    RH_STORE_FULL_NONE     = 0,
    RH_STORE_FULL_PINNED   = 1,   /* what fills it is being read or written:
                                   * room comes when that ends */
    RH_STORE_FULL_SPILL    = 2,   /* the spill directory is full too */
    RH_STORE_FULL_NO_SPILL = 3,   /* spilling is off */
    RH_STORE_FULL_OTHER    = 4    /* the table is full, or a disk error */
} rh_store_full_why_t;

rh_store_full_why_t rh_store_full_why(void);

/* rh_store_create for a copy of an object whose primary lives on another
 * node: when room is short, copies go (least recently used first) before
 * anything is spilled, and a later get of it finds it absent. */
rh_status_t rh_store_create_copy(rh_store_t *s, rh_object_id_t id,
                                 size_t size, void **ptr);

/* For a task's run again on a node where its id is taken already (its lost
 * run left its return, a pull of this node brought a copy of it, another
 * run of it sealed it): the sealed object id of size `size` becomes the
 * caller's as if it had created and sealed it (a copy becomes the node's
 * own, no longer evicted first); its bytes in *ptr (no reference is taken,
 * as after create and seal). Any other object of that id is left alone:
 * RH_ERR_BUSY saying why (being written, spilled, deleted, another size);
 * RH_ERR_INVALID_REF when absent. */
rh_status_t rh_store_adopt(rh_store_t *s, rh_object_id_t id, size_t size,
                           void **ptr);
/* For the same run again: the object id, unsealed, whose writer is gone
 * (dead, a zombie, or in its exit), is removed so that the caller can
 * create it anew. The death's own reap removes it too, but it may be in
 * another process's hands still (see rh_store_reap_holders), and a run
 * again must not fail for that. RH_OK also when it is marked removed
 * already and goes with the references the dead process's reap gives
 * back (create it again once that is done). RH_ERR_BUSY when the writer
 * lives or the object is sealed or spilled; RH_ERR_INVALID_REF when
 * absent. */
rh_status_t rh_store_drop_dead_write(rh_store_t *s, rh_object_id_t id);
/* CREATED -> SEALED: the bytes are final and get may return them. */
rh_status_t rh_store_seal(rh_store_t *s, rh_object_id_t id);

/* A pointer to a sealed object's bytes and its size; takes a reference that
 * keeps the bytes in place until rh_store_release. RH_ERR_INVALID_REF when
 * the id is absent or deleted, RH_ERR_BUSY when not sealed yet. */
rh_status_t rh_store_get(rh_store_t *s, rh_object_id_t id, const void **ptr,
                         size_t *size);

/* fn (NULL: none) is told, in the process that does it, each time a copy
 * of this process's stores is spilled (spilled 1) or its spilled copy is
 * forgotten (read back or deleted: 0), so that a durable record can be
 * kept (core/object_record.c). stamp is the spill file's number, the same
 * for a spill and its forgetting, and higher for a later spill of the same
 * object on this node (files are numbered in order): it orders the record
 * writes of several processes. It runs with the store's lock held: it
 * must not block nor use the store. */
typedef void (*rh_store_spill_fn)(rh_object_id_t id, uint64_t size,
                                  int spilled, uint64_t stamp);
void rh_store_set_spill_hook(rh_store_spill_fn fn);

/* The bytes of a spilled object, read from its spill file into a buffer
 * the caller frees, without bringing it back into the store (for a reader
 * on another node). RH_ERR_BUSY when the object is in memory (get it
 * there), RH_ERR_INVALID_REF when it is not in the store. */
rh_status_t rh_store_read_spilled(rh_store_t *s, rh_object_id_t id,
                                  void **buf, size_t *len);

/* Drops a reference taken by rh_store_get. */
rh_status_t rh_store_release(rh_store_t *s, rh_object_id_t id);

/* The reference this process's last rh_store_get of id took is its user's
 * (rh_get of another rank's object); rh_store_release_user drops one of
 * those only: RH_ERR_INVALID_REF when the process holds none, so that a
 * release too many never takes a reference the runtime holds for itself
 * (a task's argument) or another process holds. */
void rh_store_mark_user(rh_store_t *s, rh_object_id_t id);
rh_status_t rh_store_release_user(rh_store_t *s, rh_object_id_t id);

/* Removes the object: it is no longer found at once, and its memory is
 * freed when the last reference is released (at once when none is held).
 * An object not sealed yet may be deleted (aborted) only by the process
 * that created it (RH_ERR_BUSY otherwise). Deleting an object that is
 * deleted but still referenced succeeds and changes nothing. */
rh_status_t rh_store_delete(rh_store_t *s, rh_object_id_t id);

/* Deletes every sealed object whose id names owner (rh_object_id_owner),
 * as rh_store_delete does: what is still referenced goes at its last
 * release. *deleted: how many. For the copies of a rank that died. */
rh_status_t rh_store_delete_owned(rh_store_t *s, uint32_t owner,
                                  size_t *deleted);

/* Gives back the references held by processes that died with the store
 * open (each process's gets are recorded in the segment), so that their
 * objects can be freed. Any survivor may call it, any number of times:
 * each dead process's references go back once, and the objects it was
 * creating and never sealed are removed. *procs (dead processes
 * found) and *refs (references given back) may be NULL. A process in its
 * exit counts as dead (it writes nothing more); one that still runs keeps
 * its references, even when its rank was declared dead. */
rh_status_t rh_store_reap_holders(rh_store_t *s, int *procs, uint64_t *refs);

/* rh_store_reap_holders for one process, pid, which the runtime declared
 * dead (a rank of this node): its references go back (*refs: how many,
 * may be NULL) and the objects it was creating are removed at once, and
 * its sealed objects may be adopted, once it is gone, a zombie or in its
 * exit, which is when a rank is declared dead for its process. RH_ERR_BUSY,
 * changing nothing, while it still runs (declared dead for a transport
 * error): it may still write. RH_OK when it has no record here (it never
 * attached, or another survivor reaped it). */
rh_status_t rh_store_reap_process(rh_store_t *s, int32_t pid,
                                  uint64_t *refs);

/* 1 when the object is in the store and sealed (get would succeed). */
int rh_store_contains(rh_store_t *s, rh_object_id_t id);

/* 1 when the object is in the store, sealed or still being written. */
int rh_store_present(rh_store_t *s, rh_object_id_t id);

rh_status_t rh_store_stats(rh_store_t *s, rh_store_stats_t *stats);

/* The segment as this process maps it: base address and length (for one
 * memory registration of the whole segment). */
void *rh_store_base(rh_store_t *s);
size_t rh_store_length(rh_store_t *s);

/* Offset of ptr from the segment base, the same in every process of the
 * node; UINT64_MAX when ptr is not inside the segment. */
uint64_t rh_store_offset(rh_store_t *s, const void *ptr);

/* The segment's name, "/rayhpc-<jobid>-<node>". */
const char *rh_store_name(rh_store_t *s);

/* Writes the segment name for job_id and node into buf: characters outside
 * [A-Za-z0-9_.-] become '_' and each part is cut at 100 characters. */
rh_status_t rh_store_segment_name(const char *job_id, const char *node,
                                  char *buf, size_t len);

/* Removes every segment whose name starts with prefix ("rayhpc-" when NULL;
 * without the leading '/') in /dev/shm and hugetlbfs mounts, that belongs
 * to this user and was created on this boot, in this pid namespace, by a
 * process that is gone (dead, a zombie, or its pid reused). The number
 * removed goes to *removed when it is not NULL. */
rh_status_t rh_store_reap_stale(const char *prefix, int *removed);

/* One object as rh_store_foreach shows it. */
typedef struct rh_store_object_info {
    rh_object_id_t id;
    uint64_t       size;
    uint32_t       refs;         /* references held on it now (gets) */
    int            sealed;       /* 0: still being written */
    int            pending;      /* deleted, freed at the last release */
    int32_t        creator_pid;  /* the process that created it */
} rh_store_object_info_t;

/* Calls fn for each object in the store (at most max; 0: all) under the
 * store lock: fn must not call into the store. Returns the number of
 * objects, also those past max. For rayhpc-info --job. */
uint64_t rh_store_foreach(rh_store_t *s, uint64_t max,
                          void (*fn)(void *arg,
                                     const rh_store_object_info_t *o),
                          void *arg);
/* Removes the spill directories under dir (those of this user made by
 * rh_store_open with spill_dir = dir) whose creating process is gone; the
 * number removed goes to *removed when it is not NULL. */
rh_status_t rh_store_reap_spill(const char *dir, int *removed);
/* The directory this store's spill files go to ("" when spilling is
 * off). */
const char *rh_store_spill_dir(const rh_store_t *s);

/* Walks the whole allocator and object table under the lock and checks
 * that they agree (for tests and after a process died holding the lock);
 * RH_ERR_MALFORMED with the first problem found. */
rh_status_t rh_store_check(rh_store_t *s);

#endif
