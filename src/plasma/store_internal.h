/*
 * Layout of the store segment, shared by the files of src/plasma/.
 *
 *   +---------------------------+ 0
 *   | header (4 KiB): identity,  |
 *   | ready flag, robust mutex,  |
 *   | allocator and table state; |
 *   | its last 64 bytes are where|
 *   | objects of size 0 point    |
 *   +---------------------------+ table_off (4 KiB)
 *   | object table: capacity x   |
 *   | 64-byte entries            |
 *   +---------------------------+ heap_off (64 B before a page)
 *   | heap: blocks with a 64-byte|
 *   | header, multiples of 4 KiB;|
 *   | small objects live in slab |
 *   | blocks                     |
 *   +---------------------------+ seg_size
 *
 * Every reference inside the segment is an offset from its start: each
 * process maps the segment at its own address. Offset 0 (the header) is
 * never a block, slab or object, so 0 means "none".
 */
#ifndef RH_PLASMA_STORE_INTERNAL_H
#define RH_PLASMA_STORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/hash.h"
#include "plasma/store.h"

#define RH_STORE_MAGIC        0x5453534850594152ull   /* "RAYHPSST" */
#define RH_STORE_VERSION      4u
#define RH_STORE_HDR_SIZE     4096u
#define RH_STORE_ZERO_OFF     (RH_STORE_HDR_SIZE - 64u)  /* where objects of
                                       * size 0 point: an unused line */
#define RH_STORE_ALIGN        64u
#define RH_STORE_NAME_MAX     240
#define RH_STORE_BOOT_ID_LEN  40

/* ---- object table entries ---------------------------------------------- */

/* The control word of an entry packs everything a lock-free get must check
 * and change in one compare-and-swap:
 *   bits  0..23  reference count
 *   bits 24..25  state (EMPTY, CREATED, SEALED)
 *   bit  26      delete pending: freed when the count drops to 0
 *   bits 28..63  generation, bumped each time the slot is emptied, so that a
 *                get that read the entry before it was freed (or moved) and
 *                the slot reused can not take a reference by mistake. */
#define RH_CTL_RC_MASK      ((1ull << 24) - 1)
#define RH_CTL_STATE_SHIFT  24
#define RH_CTL_STATE_MASK   (3ull << RH_CTL_STATE_SHIFT)
#define RH_CTL_PENDING      (1ull << 26)
#define RH_CTL_GEN_SHIFT    28
#define RH_CTL_GEN_MASK     (~0ull << RH_CTL_GEN_SHIFT)

enum {
    RH_SLOT_EMPTY   = 0,   /* ends a probe */
    RH_SLOT_CREATED = 1,
    RH_SLOT_SEALED  = 2,
    RH_SLOT_SPILLED = 3    /* sealed, its bytes in a spill file only */
};

static inline unsigned rh_ctl_state(uint64_t c)
{
    return (unsigned)((c & RH_CTL_STATE_MASK) >> RH_CTL_STATE_SHIFT);
}

static inline uint64_t rh_ctl_with_state(uint64_t c, unsigned state)
{
    return (c & ~RH_CTL_STATE_MASK) | (uint64_t)state << RH_CTL_STATE_SHIFT;
}

/* What kind of memory an entry's object lives in. */
enum {
    RH_KLASS_SPILL = 0xfffd,   /* in a spill file: alloc is the file's
                                * number, offset the place in it */
    RH_KLASS_NONE  = 0xfffe,   /* size 0: no memory */
    RH_KLASS_LARGE = 0xffff    /* a heap block of its own */
    /* below: a slab size class */
};

/* One cache line. The atomics are read by lock-free gets; the rest only
 * under the store lock. */
typedef struct rh_store_entry {
    _Atomic uint64_t ctl;
    _Atomic uint64_t id_hi;
    _Atomic uint64_t id_lo;
    _Atomic uint64_t offset;       /* of the object's bytes */
    _Atomic uint64_t size;
    _Atomic uint64_t atime_ms;     /* last get, for LRU eviction */
    uint64_t         alloc;        /* block (large) or slab offset */
    _Atomic int32_t  creator_pid;
    uint16_t         klass;
    uint16_t         flags;        /* RH_ENTRY_* */
} rh_store_entry_t;

/* Entry flags: a copy pulled from another node (evicted before anything is
 * spilled: its owner's node still has it), and, for a spilled object, the
 * spill file record it counts in. */
#define RH_ENTRY_COPY      0x8000u
#define RH_ENTRY_REC_MASK  0x7fffu

_Static_assert(sizeof(rh_store_entry_t) == 64, "entry is one cache line");

/* Mixes an object id into a table index. */
static inline uint64_t rh_store_id_hash(uint64_t hi, uint64_t lo)
{
    return rh_hash_mix64(hi * 0x9e3779b97f4a7c15ull ^ lo);
}

/* ---- per-process hold records (holds.c) ---------------------------------- */

/* One (object, references) pair of a process's record. */
typedef struct rh_hold_slot {
    _Atomic uint64_t id_hi;
    _Atomic uint64_t id_lo;
    _Atomic uint32_t n;        /* references held; 0: an empty slot */
    _Atomic uint32_t user;     /* of them, the process's user's gets */
} rh_hold_slot_t;

/* The record of one process that opened the store; its slots follow. */
typedef struct rh_holder {
    _Atomic int32_t  pid;      /* 0: free; -1: being given back */
    _Atomic uint32_t lock;     /* among that process's threads */
    uint64_t         start;    /* the pid's start time, and its namespace */
    uint64_t         pidns;
    uint64_t         reserved[5];
} rh_holder_t;

_Static_assert(sizeof(rh_holder_t) == 64, "holder header is one line");

/* ---- heap blocks and slabs --------------------------------------------- */

#define RH_BLOCK_MAGIC   0x424c4b52u   /* "RKLB" */
#define RH_BLOCK_FREE    1u
#define RH_BLOCK_SLAB    2u
#define RH_BLOCK_HELD    4u            /* free, kept out of the free lists
                                        * by the spill round under way */
#define RH_BLOCK_HDR     64u
#define RH_BLOCK_MIN     128u          /* header + the smallest payload */
/* Every block is a multiple of this and the heap starts a header before a
 * multiple of it: payloads of blocks are 4 KiB aligned, as O_DIRECT wants
 * the memory it writes a spilled object from. */
#define RH_BLOCK_UNIT    4096u
#define RH_BINS          64

/* In front of every heap block. prev_size finds the block before, so that a
 * freed block merges with free neighbours on both sides in O(1). */
typedef struct rh_block {
    uint32_t magic;
    uint32_t flags;
    uint64_t size;         /* with this header, a multiple of 64 */
    uint64_t prev_size;    /* of the block just before; 0 for the first */
    uint64_t next_free;    /* free-list links, when free */
    uint64_t prev_free;
    uint64_t reserved[3];
} rh_block_t;

_Static_assert(sizeof(rh_block_t) == RH_BLOCK_HDR, "block header size");

#define RH_SLAB_MAGIC      0x42414c53u   /* "SLAB" */
#define RH_SLAB_CLASSES    20
#define RH_SLAB_MAX_OBJS   1024
#define RH_SLAB_HDR        192u
#define RH_SMALL_MAX       65536u

/* At the start of a slab block's payload; objects follow at RH_SLAB_HDR. A
 * bitmap (not a list threaded through free objects) records which slots are
 * taken, so that a process scribbling on an object it freed cannot corrupt
 * the allocator. */
typedef struct rh_slab {
    uint32_t magic;
    uint16_t klass;
    uint16_t nobj;
    uint32_t nfree;
    uint32_t hint;         /* a bitmap word that had a free slot */
    uint64_t next;         /* partial-slab list of the class */
    uint64_t prev;
    uint64_t bitmap[RH_SLAB_MAX_OBJS / 64];   /* 1: slot taken */
    uint64_t reserved[4];
} rh_slab_t;

_Static_assert(sizeof(rh_slab_t) == RH_SLAB_HDR, "slab header size");

typedef struct rh_slab_class {
    uint64_t partial;      /* slabs with a free slot */
    uint64_t spare;        /* one empty slab kept for the next object */
    uint64_t slabs;        /* how many slabs the class holds */
} rh_slab_class_t;

/* ---- the segment header -------------------------------------------------- */

#define RH_SPILL_HELD 32

typedef struct rh_store_hdr {
    /* identity, written first so that a dead creator can be recognised */
    uint64_t         magic;
    uint32_t         version;
    _Atomic uint32_t ready;          /* 1 once initialized: written last */
    uint64_t         seg_size;
    int32_t          creator_pid;
    uint32_t         pages;          /* rh_store_pages_t */
    uint64_t         creator_start;  /* /proc/<pid>/stat starttime */
    uint64_t         pidns;          /* inode of the creator's pid namespace */
    uint64_t         page_size;
    char             boot_id[RH_STORE_BOOT_ID_LEN];
    char             name[RH_STORE_NAME_MAX + 16];

    /* layout, fixed at creation */
    uint64_t         table_off;
    uint64_t         table_cap;      /* a power of two */
    uint64_t         heap_off;
    uint64_t         heap_size;
    uint64_t         holders_off;    /* the per-process hold records */
    uint32_t         holders;        /* how many */
    uint32_t         reserved0;
    uint64_t         holder_slots;   /* slots in each */
    uint64_t         holder_bytes;   /* bytes of each, with its header */

    /* odd while the table moves entries (a delete closing its gap): a
     * lock-free probe that found nothing meanwhile looks again. On a cache
     * line of its own: every get reads it, few deletes write it. */
    _Atomic uint64_t moves __attribute__((aligned(64)));

    pthread_mutex_t  lock __attribute__((aligned(64)));

    /* under the lock from here on */
    uint64_t         bin_map;        /* bit b: bins[b] is not empty */
    uint64_t         bins[RH_BINS];  /* free blocks by log2(size / 64) */
    rh_slab_class_t  classes[RH_SLAB_CLASSES];
    uint64_t         heap_free;      /* bytes in free blocks */
    uint64_t         used;           /* see rh_store_stats_t */
    uint64_t         object_bytes;
    uint64_t         live;           /* table entries CREATED or SEALED */
    uint64_t         lock_recoveries;

    /* spilling (spill.c); spill_dir empty: spilling is off */
    char             spill_dir[1024];
    uint64_t         spill_recs_off;  /* spill_recs file records */
    uint64_t         spill_recs;
    uint64_t         spill_rec_hint;  /* where a free record was last */
    uint64_t         spill_high;      /* used bytes that start spilling */
    uint64_t         spill_max;       /* bytes the files may take; 0: any */
    uint64_t         spill_buffered;  /* 1: no O_DIRECT */
    uint64_t         spill_disk;      /* bytes in files now, or reserved */
    uint64_t         spill_next;      /* the next file's number */
    uint64_t         spill_files;     /* files now */
    uint64_t         spilled_objects; /* objects in files now */
    uint64_t         spilled_bytes;   /* their sizes */
    uint64_t         spills;          /* objects written, ever */
    uint64_t         spill_written;   /* bytes written, ever */
    uint64_t         restores;        /* objects read back, ever */
    uint64_t         restored_bytes;
    uint64_t         evictions;       /* copies dropped for room, ever */
    uint64_t         evicted_bytes;
    uint64_t         restoring_used;  /* memory of objects being read */
    uint64_t         restoring_bytes; /* back without the lock, their */
    uint64_t         restoring_slots; /* sizes and slab slots */
    uint64_t         spill_ns;        /* time spent spilling, ever */
    uint64_t         restore_ns;      /* and reading back */
    _Atomic int32_t  spill_pid;       /* the process spilling now, or 0 */
    _Atomic int32_t  spiller_pid;     /* the process whose thread spills
                                       * past the threshold, or 0 */
    _Atomic uint32_t spill_kick;      /* a futex: creates past the threshold
                                       * bump it and wake the spiller */
    _Atomic uint32_t spill_done;      /* a futex: bumped as each round ends,
                                       * for creates waiting on it */
    /* the free blocks of the stretch the round under way frees, held out
     * of the allocator until it ends (creates meanwhile would split the
     * stretch); the next round gives back those of a round that died */
    uint32_t         spill_held_n;
    uint64_t         spill_held[RH_SPILL_HELD];
} rh_store_hdr_t;

_Static_assert(sizeof(rh_store_hdr_t) <= RH_STORE_ZERO_OFF,
               "the header fits in its page, before the zero-size line");

/* ---- spill files (spill.c) ----------------------------------------------- */

/* A record per object the table can hold, so that every object may be
 * spilled to a file of its own (1 MiB and more are), up to what an entry's
 * flags can name. */
#define RH_SPILL_RECS_MAX RH_ENTRY_REC_MASK

/* One spill file: how many objects it still holds; freed with the file. */
typedef struct rh_spill_rec {
    uint64_t fileno;       /* 0: a free record */
    uint64_t live;
    uint64_t bytes;        /* the file's length */
    uint64_t direct;       /* written with O_DIRECT: not in the cache */
} rh_spill_rec_t;

/* ---- the per-process handle -------------------------------------------- */

#define RH_READ_CTXS 4   /* restores reading with requests in flight at once */

/* What a process keeps to read spilled objects back (spill_read.c): AIO
 * contexts, each taken by one restore at a time. */
enum { RH_READ_CTX_UNSET, RH_READ_CTX_FREE, RH_READ_CTX_TAKEN,
       RH_READ_CTX_NONE /* the kernel gave none */ };
typedef struct rh_spill_reader {
    _Atomic int state[RH_READ_CTXS];
    uint64_t    ctx[RH_READ_CTXS];     /* aio_context_t */
} rh_spill_reader_t;

struct rh_store {
    uint8_t          *base;
    size_t            length;
    rh_store_hdr_t   *hdr;
    rh_store_entry_t *table;
    uint64_t          mask;          /* table_cap - 1 */
    char              name[RH_STORE_NAME_MAX + 16];
    char              path[4096];    /* the file behind the segment */
    dev_t             dev;           /* to unlink only our own file */
    ino_t             ino;
    int               is_shm;        /* shm_unlink rather than unlink */
    rh_holder_t      *holder;        /* this handle's hold record */
    pthread_t         spiller;       /* the leader's background spiller */
    int               spiller_on;
    _Atomic int       spiller_stop;
    _Atomic int       no_direct;     /* the spill dir refused O_DIRECT */
    rh_spill_reader_t reader;
};

/* Address of the thing at offset off. */
static inline void *rh_store_at(const rh_store_t *s, uint64_t off)
{
    return s->base + off;
}

/* ---- store.c -------------------------------------------------------------- */

/* Takes the store lock; recovers it from a process that died holding it. */
rh_status_t rh_store_lock(rh_store_t *s);
void rh_store_unlock(rh_store_t *s);

/* ---- segment.c: files, mappings, identity ------------------------------ */

typedef struct rh_segment_id {
    int32_t  pid;
    uint64_t start;
    uint64_t pidns;
    char     boot_id[RH_STORE_BOOT_ID_LEN];
} rh_segment_id_t;

/* This process's identity as recorded in a header. */
void rh_segment_self(rh_segment_id_t *id);

/* Whether process pid, started at start (0: unknown), is gone: dead, a
 * zombie, in its exit, or its pid reused. */
int rh_segment_pid_gone(int32_t pid, uint64_t start);

/* What rh_segment_pid_gone reads in /proc/<pid>/stat. */
typedef struct rh_proc_stat {
    char     state;     /* 'R', 'S', 'Z', ... */
    unsigned flags;     /* the kernel's task flags */
    uint64_t start;     /* clock ticks since boot */
} rh_proc_stat_t;

/* Parses the text of a /proc/<pid>/stat (-1: not one), and whether the
 * process it describes, started at start (0: unknown), is gone. */
int rh_proc_stat_parse(const char *text, rh_proc_stat_t *ps);
int rh_proc_stat_gone(const rh_proc_stat_t *ps, uint64_t start);

/* Whether a header's creator is gone: same boot and pid namespace as us,
 * and its pid dead, a zombie, or reused. 0 when it cannot be told. */
int rh_segment_creator_gone(const rh_store_hdr_t *hdr);

/* Creates the file, maps and pre-faults it, and fills s (base, length,
 * path, dev/ino); the header's identity is written at once. */
rh_status_t rh_segment_create(rh_store_t *s, const rh_store_params_t *p,
                              uint64_t *page_size, rh_store_pages_t *pages);

/* Waits for the named segment to be ready, then maps it. */
rh_status_t rh_segment_attach(rh_store_t *s, const rh_store_params_t *p);

void rh_segment_unmap(rh_store_t *s);
void rh_segment_unlink(rh_store_t *s);

/* ---- holds.c -------------------------------------------------------------- */

/* Slots per record and bytes of procs records for a table of table_cap. */
void rh_holds_layout(uint64_t table_cap, uint32_t procs, uint64_t *slots,
                     uint64_t *bytes);

/* Takes a free record for this handle (reaping dead processes' records
 * when none is free); RH_ERR_BUSY when every one is a live process's. */
rh_status_t rh_holds_claim(rh_store_t *s);

/* Gives back what the handle still holds and frees its record. */
void rh_holds_leave(rh_store_t *s);

/* Notes one more reference of id held by this handle's process, and drops
 * one (0 when none was noted: the reference came from another handle). */
void rh_holds_add(rh_store_t *s, rh_object_id_t id);
int rh_holds_drop(rh_store_t *s, rh_object_id_t id);

/* Counts one reference already noted as the user's, and drops one of
 * those: 1 done, 0 when the process holds none as the user's, -1 when the
 * handle has no record (nothing can be told apart). */
void rh_holds_mark_user(rh_store_t *s, rh_object_id_t id);
int rh_holds_drop_user(rh_store_t *s, rh_object_id_t id);

/* store.c: drops up to n references of id from its control word (freeing a
 * deleted object whose last one goes) and returns how many it dropped. */
uint64_t rh_store_unref(rh_store_t *s, rh_object_id_t id, uint32_t n);

/* store.c: removes the objects process pid created and never sealed (it
 * died writing them); how many. */
uint64_t rh_store_abort_created_by(rh_store_t *s, int32_t pid);

/* ---- alloc.c: the heap --------------------------------------------------- */

/* Makes the whole heap one free block. */
void rh_alloc_init(rh_store_t *s);

/* The largest object the heap could ever hold. */
uint64_t rh_alloc_max_object(const rh_store_t *s);

/* Memory for an object of size bytes: its offset, the owning block or slab
 * and the size class; RH_ERR_STORE_FULL (no message) when nothing fits. */
rh_status_t rh_alloc_object(rh_store_t *s, uint64_t size, uint64_t *offset,
                            uint64_t *alloc, uint16_t *klass);
void rh_alloc_free_object(rh_store_t *s, uint64_t offset, uint64_t alloc,
                          uint16_t klass, uint64_t size);

/* Bytes an object holds: its class's slot, or its block with the header. */
uint64_t rh_alloc_footprint(const rh_store_t *s, uint64_t alloc,
                            uint16_t klass);

/* Gives the empty slab each class keeps for its next object back to the
 * heap. */
void rh_alloc_release_spares(rh_store_t *s);

/* Takes the free block at off out of the free lists (RH_BLOCK_HELD) and
 * gives it back, merged with its free neighbours. Under the lock. */
void rh_alloc_hold(rh_store_t *s, uint64_t off);
void rh_alloc_unhold(rh_store_t *s, uint64_t off);

/* The largest payload one free block holds now. */
uint64_t rh_alloc_largest_free(const rh_store_t *s);

/* The heap's blocks in address order: the one after off (the first when
 * off is 0) with its size (header included) and whether it is free; 0
 * after the last. Under the lock. */
uint64_t rh_alloc_next_block(const rh_store_t *s, uint64_t off,
                             uint64_t *size, int *is_free);

/* Slots taken in the slab whose block is at off (its objects' alloc is
 * off + RH_BLOCK_HDR); -1 when that block is not a slab. Under the lock. */
int64_t rh_alloc_slab_used(const rh_store_t *s, uint64_t off);

/* Walks blocks, bins and slabs; the number of slab slots taken goes to
 * *slab_objects. */
rh_status_t rh_alloc_check(const rh_store_t *s, uint64_t *slab_objects);
/* Rebuilds the heap's links and free lists after a death under the lock. */
rh_status_t rh_alloc_repair(rh_store_t *s);

/* ---- table.c: the object table ------------------------------------------ */

/* The entry holding id and the control word read when it matched; NULL
 * when absent. Lock-free; an answer of "absent" is checked against moves
 * made meanwhile (and, when they keep coming, made under the lock). */
rh_store_entry_t *rh_table_find(rh_store_t *s, rh_object_id_t id,
                                uint64_t *ctl);

/* As rh_table_find, for callers that hold the lock (nothing moves). */
rh_store_entry_t *rh_table_find_locked(const rh_store_t *s,
                                       rh_object_id_t id, uint64_t *ctl);

/* Under the lock: the entry already holding id (*existing), else a free
 * slot for it, else NULL (table full). */
rh_store_entry_t *rh_table_slot_for(rh_store_t *s, rh_object_id_t id,
                                    rh_store_entry_t **existing);

/* Under the lock: publishes a new CREATED entry in slot e. */
void rh_table_publish(rh_store_t *s, rh_store_entry_t *e, rh_object_id_t id,
                      uint64_t offset, uint64_t size, uint64_t alloc,
                      uint16_t klass);

/* Under the lock: empties e if its control word still is `expect` (no
 * reference left) and closes the gap; 0 when a get changed the word
 * meanwhile. */
int rh_table_retire(rh_store_t *s, rh_store_entry_t *e, uint64_t expect);

/* ---- store.c, for spill.c ------------------------------------------------ */

/* Under the lock: gives e's memory (or spill file share) back when it can no
 * longer be found or referenced; 0 when a get took a reference meanwhile. */
int rh_store_free_entry(rh_store_t *s, rh_store_entry_t *e, uint64_t expect);


/* ---- spill.c: eviction and spilling ------------------------------------- */

/* The spill file records of a table of table_cap entries, and their
 * bytes, in front of the heap. */
uint64_t rh_spill_recs_for(uint64_t table_cap);
uint64_t rh_spill_meta_bytes(uint64_t table_cap);

/* The leader: makes the job's spill directory under p->spill_dir (after
 * removing stale ones) and records it in the header; nothing when
 * p->spill_dir is NULL or empty. */
rh_status_t rh_spill_setup(rh_store_t *s, const rh_store_params_t *p);

/* The leader at exit: removes the spill directory and its files. */
void rh_spill_remove_all(rh_store_t *s);

/* Makes room (without the lock): evicts copies, then spills objects that no
 * one references, LRU first, until `size` more bytes would fit (and, when
 * `below` is not 0, until used bytes fall under it); the spill files may
 * pass their limit by `slack` bytes. RH_OK when something was freed (or
 * another process spilled meanwhile); RH_ERR_STORE_FULL with why in `why`
 * when nothing could be; RH_ERR_BUSY (no message) when a round to go below
 * (size 0) chose to wait rather than split the free room (spill.c). */
rh_status_t rh_spill_make_room(rh_store_t *s, uint64_t size, uint64_t below,
                               uint64_t slack, char *why, size_t whylen);

/* ---- spill_read.c: a spilled object's bytes back from its file --------- */

/* Reads size bytes at off of fd into dst (in the store): with O_DIRECT and
 * several requests in flight where may_direct (a large object alone in
 * its file), the file system takes it (else *no_direct is set) and, for a
 * file written buffered (!written_direct), not all of it is in the page
 * cache; buffered otherwise. fd is this read's own: its O_DIRECT flag is
 * set and cleared here. 0, or -1 with errno (EIO: the file is shorter). */
int rh_spill_read(rh_spill_reader_t *r, _Atomic int *no_direct, int fd,
                  void *dst, uint64_t size, uint64_t off, int may_direct,
                  int written_direct);
/* Reads or writes until all len bytes moved (retrying short and
 * interrupted calls); off is ignored by RH_SPILL_WRITE. 0, or -1 with errno
 * (EIO: a read reached the end of the file). */
typedef enum { RH_SPILL_PREAD, RH_SPILL_PWRITE, RH_SPILL_WRITE } rh_spill_io_t;
int rh_spill_io_all(int fd, rh_spill_io_t op, void *buf, uint64_t len,
                    uint64_t off);
int rh_spill_pread_all(int fd, void *buf, uint64_t len, uint64_t off);
/* Gives back the AIO contexts (no read may be under way). */
void rh_spill_reader_close(rh_spill_reader_t *r);

/* The leader: starts the thread that spills the store below its threshold
 * in the background when creates pass it; nothing when spilling is off. */
rh_status_t rh_spill_start(rh_store_t *s);
void rh_spill_stop(rh_store_t *s);

/* After a create that passed the threshold: wakes the spiller, or spills
 * here when no live process has one. */
void rh_spill_past_threshold(rh_store_t *s);

/* Brings a spilled object back into memory (without the lock): RH_OK also
 * when it is in memory already. */
rh_status_t rh_spill_restore(rh_store_t *s, rh_object_id_t id);

/* Sets what rh_store_full_why answers on this thread. */
void rh_spill_set_why(rh_store_full_why_t why);

/* Under the lock: a spilled entry being freed gives up its share of its
 * file (removing the file with the last one). */
void rh_spill_forget(rh_store_t *s, rh_store_entry_t *e);

/* Coarse clock for access stamps. */
uint64_t rh_table_now_ms(void);

#endif
