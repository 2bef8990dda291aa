/*
 * Making room in a full store: eviction of copies and spilling to disk.
 *
 * Copies pulled from other nodes go first, least recently used first: their
 * primary still lives on its owner's node, so dropping one costs a pull at
 * most. Then sealed objects that no one references are written to files in
 * the store's spill directory and their memory freed; the entry stays in
 * the table (state SPILLED, klass RH_KLASS_SPILL) with the file's number
 * and the place in it, so that every process of the node finds it and a
 * get reads it back (restore).
 *
 * A round picks its victims under the lock, takes a reference on each (so
 * that nothing frees or moves their bytes) and writes them WITHOUT the lock:
 * gets, seals and creates of other objects go on meanwhile. It then takes
 * the lock again and turns into SPILLED only those whose one reference is
 * still its own; an object someone got in the meantime stays in memory and
 * its bytes in the file are dead weight until the file goes. One round runs
 * at a time on a node (spill_pid): two would pin each other's victims.
 *
 * Past the threshold, a create wakes the leader's spilling thread, which
 * spills the store a tenth of the heap below it; a create that finds the
 * store full makes room itself.
 *
 * Objects under RH_SPILL_ALONE share a file, up to RH_SPILL_BATCH bytes of
 * them; larger ones get a file of their own, so that its restore frees the
 * disk at once. A record per file in the segment counts the objects still
 * in it; the last one out removes the file.
 *
 * Every other writer thread of a round writes an object of a file of its
 * own with O_DIRECT straight from its block (blocks are 4 KiB aligned,
 * alloc.c), its last partial 4 KiB buffered: the disk takes the bytes from
 * the store, with no copy by a CPU that the node's workers need. The other
 * writers go through the page cache, so the device and the CPUs work at
 * once, and the faster kind takes more of the round's files. A file's
 * record says how it was written. Batch files of small objects are
 * written buffered (their objects are not 4 KiB aligned, and a bounce copy
 * would cost what the page cache does). Where the file system refuses
 * O_DIRECT (EINVAL) the process writes buffered from then on. io_uring
 * would save the system calls of a round's few large writes only, which
 * the writer threads already overlap.
 *
 * A restore reads the file without the store lock: creates, gets and spill
 * rounds go on meanwhile. A large object is read with O_DIRECT, several
 * requests in flight, straight into its new block, unless it was written
 * buffered and all of it is still in the page cache (spill_read.c).
 */
#include "plasma/store_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/completion.h"
#include "base/log.h"
#include "base/status.h"

#define RH_SPILL_ALONE    (1ull << 20)   /* objects this large: own file */
#define RH_SPILL_BATCH    (16ull << 20)  /* a batch file holds this much */
#define RH_SPILL_ROUND    (256ull << 20) /* bytes one round writes at most */
#define RH_SPILL_WRITERS  4              /* files written at once */
#define RH_SPILL_APART    20             /* heap / this: free room a round
                                          * past the threshold may leave
                                          * apart from the room it frees */
#define RH_SPILL_RETRY    32             /* heap / this: used grows so much
                                          * before the spiller, which chose
                                          * to wait, asks again at a kick */
#define RH_SPILL_OWNER    "owner"
#define RH_SPILL_SUFFIX   ".spill"

static _Thread_local rh_store_full_why_t rh_spill_why;
static _Atomic(rh_store_spill_fn) rh_spill_hook;

void rh_store_set_spill_hook(rh_store_spill_fn fn)
{
    atomic_store_explicit(&rh_spill_hook, fn, memory_order_release);
}

static void rh_spill_tell(rh_object_id_t id, uint64_t size, int spilled,
                          uint64_t fileno)
{
    rh_store_spill_fn fn = atomic_load_explicit(&rh_spill_hook,
                                                memory_order_acquire);

    if (fn != NULL) {
        fn(id, size, spilled, fileno);
    }
}

rh_store_full_why_t rh_store_full_why(void)
{
    return rh_spill_why;
}

void rh_spill_set_why(rh_store_full_why_t why)
{
    rh_spill_why = why;
}

static rh_spill_rec_t *rh_spill_recs(rh_store_t *s)
{
    return (rh_spill_rec_t *)rh_store_at(s, s->hdr->spill_recs_off);
}

uint64_t rh_spill_recs_for(uint64_t table_cap)
{
    uint64_t n = table_cap - table_cap / 8;   /* the objects it holds */

    return n < RH_SPILL_RECS_MAX ? n : RH_SPILL_RECS_MAX;
}

uint64_t rh_spill_meta_bytes(uint64_t table_cap)
{
    return rh_spill_recs_for(table_cap) * sizeof(rh_spill_rec_t);
}

static void rh_spill_file_path(const rh_store_t *s, uint64_t fileno,
                               char *buf, size_t len)
{
    snprintf(buf, len, "%s/%llu", s->hdr->spill_dir,
             (unsigned long long)fileno);
}

/* ---- the directory ------------------------------------------------------- */

/* Removes the files of a spill directory (there are no subdirectories),
 * then the directory. */
static int rh_spill_rmtree(const char *dir)
{
    char path[2048];
    struct dirent *d;
    DIR *dp = opendir(dir);

    if (dp == NULL) {
        return errno == ENOENT ? 0 : -1;
    }
    while ((d = readdir(dp)) != NULL) {
        if (strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
        (void)unlink(path);
    }
    closedir(dp);
    return rmdir(dir);
}

/* Whether the process recorded in dir's owner file is gone; 0 when the
 * file cannot be read (a directory being made). */
static int rh_spill_dir_stale(const char *dir)
{
    char path[4096];
    long long pid = 0;
    unsigned long long start = 0;
    FILE *f;
    int n = snprintf(path, sizeof(path), "%s/" RH_SPILL_OWNER, dir);

    if (n < 0 || (size_t)n >= sizeof(path)) {
        return 0;
    }
    f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    n = fscanf(f, "%lld %llu", &pid, &start);
    fclose(f);
    return n == 2 && pid > 0 && rh_segment_pid_gone((int32_t)pid, start);
}

rh_status_t rh_store_reap_spill(const char *dir, int *removed)
{
    char path[2048];
    struct dirent *d;
    struct stat st;
    int n = 0;
    DIR *dp;

    if (dir == NULL || dir[0] == '\0') {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_store_reap_spill needs "
                            "a directory");
    }
    dp = opendir(dir);
    if (dp != NULL) {
        while ((d = readdir(dp)) != NULL) {
            size_t len = strlen(d->d_name), sl = strlen(RH_SPILL_SUFFIX);

            if (strncmp(d->d_name, "rayhpc-", 7) != 0 || len <= sl ||
                strcmp(d->d_name + len - sl, RH_SPILL_SUFFIX) != 0) {
                continue;
            }
            snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
            if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode) ||
                st.st_uid != geteuid() || !rh_spill_dir_stale(path)) {
                continue;
            }
            n += rh_spill_rmtree(path) == 0;
        }
        closedir(dp);
    }
    if (removed != NULL) {
        *removed = n;
    }
    return RH_OK;
}

const char *rh_store_spill_dir(const rh_store_t *s)
{
    return s->hdr->spill_dir;
}

rh_status_t rh_spill_setup(rh_store_t *s, const rh_store_params_t *p)
{
    rh_store_hdr_t *h = s->hdr;
    double threshold = p->spill_threshold;
    rh_segment_id_t self;
    char dir[sizeof(h->spill_dir)], path[sizeof(h->spill_dir) + 16];
    int reaped = 0, fd, n;

    if (p->spill_dir == NULL || p->spill_dir[0] == '\0') {
        return RH_OK;
    }
    if (threshold == 0) {
        threshold = 0.8;
    }
    if (!(threshold > 0 && threshold <= 1)) {
        return rh_error_set(RH_ERR_CONFIG, "spill threshold %g is not "
                            "a fraction in (0, 1] (RAYHPC_SPILL_THRESHOLD)",
                            threshold);
    }
    n = snprintf(dir, sizeof(dir), "%s/%s" RH_SPILL_SUFFIX, p->spill_dir,
                 s->name + 1);
    if (n < 0 || (size_t)n >= sizeof(dir) - 24) {
        return rh_error_set(RH_ERR_CONFIG, "spill directory %s: the "
                            "path is too long (RAYHPC_SPILL_DIR)",
                            p->spill_dir);
    }
    if (mkdir(p->spill_dir, 0700) != 0 && errno != EEXIST) {
        return rh_error_set(RH_ERR_CONFIG, "cannot make spill "
                            "directory %s: %s (RAYHPC_SPILL_DIR)",
                            p->spill_dir, strerror(errno));
    }
    if (!p->no_reap && rh_store_reap_spill(p->spill_dir, &reaped) == RH_OK &&
        reaped > 0) {
        rh_info("removed %d stale spill directory(ies) in %s", reaped,
                p->spill_dir);
    }
    /* one of this name left by a dead leader of the same job and node: the
     * segment was just made anew, so none of its files is wanted */
    (void)rh_spill_rmtree(dir);
    if (mkdir(dir, 0700) != 0) {
        return rh_error_set(RH_ERR_CONFIG, "cannot make spill "
                            "directory %s: %s (RAYHPC_SPILL_DIR)", dir,
                            strerror(errno));
    }
    rh_segment_self(&self);
    snprintf(path, sizeof(path), "%s/" RH_SPILL_OWNER, dir);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || dprintf(fd, "%d %llu\n", (int)self.pid,
                          (unsigned long long)self.start) < 0) {
        rh_status_t status = rh_error_set(RH_ERR_INVALID_PARAM, "cannot "
                                          "write %s: %s", path,
                                          strerror(errno));

        if (fd >= 0) {
            close(fd);
        }
        (void)rh_spill_rmtree(dir);
        return status;
    }
    close(fd);
    memcpy(h->spill_dir, dir, (size_t)n + 1);
    h->spill_high = (uint64_t)((double)h->heap_size * threshold);
    h->spill_max = p->spill_max;
    h->spill_buffered = p->spill_buffered != 0;
    h->spill_next = 1;
    return RH_OK;
}

void rh_spill_remove_all(rh_store_t *s)
{
    if (s->hdr->spill_dir[0] != '\0' &&
        rh_spill_rmtree(s->hdr->spill_dir) != 0) {
        rh_warn("could not remove spill directory %s: %s",
                s->hdr->spill_dir, strerror(errno));
    }
}

/* ---- file records (under the lock) ------------------------------------- */

static int rh_spill_rec_take(rh_store_t *s, uint64_t bytes)
{
    rh_spill_rec_t *r = rh_spill_recs(s);
    uint64_t n = s->hdr->spill_recs;

    /* From where the last one was found: records are taken and freed
     * roughly in turn, so the search is short. */
    for (uint64_t k = 0; k < n; k++) {
        uint64_t i = (s->hdr->spill_rec_hint + k) % n;

        if (r[i].fileno == 0) {
            s->hdr->spill_rec_hint = i + 1;
            r[i].fileno = s->hdr->spill_next++;
            r[i].live = 0;
            r[i].bytes = bytes;
            r[i].direct = 0;
            s->hdr->spill_disk += bytes;
            return (int)i;
        }
    }
    return -1;
}

/* The file of record i is no longer needed: it goes, and its record. */
static void rh_spill_rec_free(rh_store_t *s, unsigned i, int written)
{
    rh_spill_rec_t *r = &rh_spill_recs(s)[i];
    char path[sizeof(s->hdr->spill_dir) + 24];

    rh_spill_file_path(s, r->fileno, path, sizeof(path));
    (void)unlink(path);
    s->hdr->spill_disk -= r->bytes;
    s->hdr->spill_files -= (uint64_t)written;
    r->fileno = 0;
    r->live = r->bytes = 0;
}

void rh_spill_forget(rh_store_t *s, rh_store_entry_t *e)
{
    unsigned i = e->flags & RH_ENTRY_REC_MASK;
    rh_spill_rec_t *r = &rh_spill_recs(s)[i];

    rh_object_id_t id = {
        atomic_load_explicit(&e->id_hi, memory_order_relaxed),
        atomic_load_explicit(&e->id_lo, memory_order_relaxed)
    };
    uint64_t size = atomic_load_explicit(&e->size, memory_order_relaxed);

    s->hdr->spilled_objects--;
    s->hdr->spilled_bytes -= size;
    rh_spill_tell(id, size, 0, e->alloc);   /* the file's number */
    if (i < s->hdr->spill_recs && r->live > 0 && --r->live == 0) {
        rh_spill_rec_free(s, i, 1);
    }
}

/* ---- one round ------------------------------------------------------------ */

typedef struct rh_spill_victim {
    rh_object_id_t id;
    uint64_t       atime;
    uint64_t       size;
    uint64_t       footprint;
    const void    *data;      /* pinned bytes */
    int            rec;       /* file record; -1: not written */
    uint64_t       file_off;
    uint64_t       alloc;     /* its block (large) or slab */
    int            large;
    int            pick;      /* in the stretch rh_spill_window chose */
    int            copy;
    int            pinned;
} rh_spill_victim_t;

static int rh_victim_cmp(const void *a, const void *b)
{
    const rh_spill_victim_t *x = a, *y = b;

    if (x->copy != y->copy) {
        return y->copy - x->copy;   /* copies first */
    }
    return x->atime < y->atime ? -1 : x->atime > y->atime;
}

/* Under the lock: the sealed objects no one references, copies first,
 * then the least recently used. */
static size_t rh_spill_candidates(rh_store_t *s, rh_spill_victim_t **out)
{
    rh_spill_victim_t *v = NULL;
    size_t n = 0, cap = 0;

    for (uint64_t i = 0; i <= s->mask; i++) {
        rh_store_entry_t *e = &s->table[i];
        uint64_t c = atomic_load_explicit(&e->ctl, memory_order_acquire);

        if (rh_ctl_state(c) != RH_SLOT_SEALED || (c & RH_CTL_PENDING) ||
            (c & RH_CTL_RC_MASK) != 0 || e->klass == RH_KLASS_NONE) {
            continue;
        }
        if (!(e->flags & RH_ENTRY_COPY) && s->hdr->spill_dir[0] == '\0') {
            continue;
        }
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 256;
            rh_spill_victim_t *more = realloc(v, ncap * sizeof(*v));

            if (more == NULL) {
                break;
            }
            v = more;
            cap = ncap;
        }
        memset(&v[n], 0, sizeof(v[n]));
        v[n].id.hi = atomic_load_explicit(&e->id_hi, memory_order_relaxed);
        v[n].id.lo = atomic_load_explicit(&e->id_lo, memory_order_relaxed);
        v[n].atime = atomic_load_explicit(&e->atime_ms, memory_order_relaxed);
        v[n].size = atomic_load_explicit(&e->size, memory_order_relaxed);
        v[n].footprint = rh_alloc_footprint(s, e->alloc, e->klass);
        v[n].copy = (e->flags & RH_ENTRY_COPY) != 0;
        v[n].alloc = e->alloc;
        v[n].large = e->klass == RH_KLASS_LARGE;
        v[n].rec = -1;
        n++;
    }
    if (n > 1) {
        qsort(v, n, sizeof(*v), rh_victim_cmp);
    }
    *out = v;
    return n;
}

/* Under the lock: whether the goal of the round is met. Whether `size`
 * fits is asked of the allocator itself (a small object may need a new
 * slab, a block of its own). */
static int rh_spill_enough(rh_store_t *s, uint64_t size, uint64_t below)
{
    uint64_t offset, alloc;
    uint16_t klass;

    if (below != 0 && s->hdr->used > below) {
        return 0;
    }
    if (size == 0) {
        return 1;
    }
    if (rh_alloc_object(s, size, &offset, &alloc, &klass) != RH_OK) {
        return 0;
    }
    rh_alloc_free_object(s, offset, alloc, klass, size);
    return 1;
}

/* Under the lock: drops copies until the goal is met; how many went. */
static size_t rh_spill_evict(rh_store_t *s, rh_spill_victim_t *v, size_t n,
                             uint64_t size, uint64_t below)
{
    size_t evicted = 0;

    for (size_t i = 0; i < n && v[i].copy; i++) {
        rh_store_entry_t *e;
        uint64_t c;

        if (rh_spill_enough(s, size, below)) {
            break;
        }
        e = rh_table_find_locked(s, v[i].id, &c);
        if (e == NULL || rh_ctl_state(c) != RH_SLOT_SEALED ||
            (c & (RH_CTL_PENDING | RH_CTL_RC_MASK)) != 0) {
            continue;
        }
        if (rh_store_free_entry(s, e, c)) {
            s->hdr->evictions++;
            s->hdr->evicted_bytes += v[i].size;
            evicted++;
        }
    }
    return evicted;
}

typedef struct rh_heap_run {
    uint64_t off;
    uint64_t size;
    uint64_t cost;       /* bytes to spill for it */
    size_t   lo, hi;     /* its victims: by_alloc[lo..hi) */
} rh_heap_run_t;

/* Under the lock: gives back the free blocks a round held (this one's as
 * it ends, or those of a round whose process died). */
static void rh_spill_unhold(rh_store_t *s)
{
    for (uint32_t i = 0; i < s->hdr->spill_held_n; i++) {
        rh_alloc_unhold(s, s->hdr->spill_held[i]);
    }
    s->hdr->spill_held_n = 0;
}

static int rh_alloc_cmp(const void *a, const void *b)
{
    const rh_spill_victim_t *const *x = a, *const *y = b;

    return (*x)->alloc < (*y)->alloc ? -1 : (*x)->alloc > (*y)->alloc;
}

/* The first of the sorted victims whose alloc is at least off. */
static size_t rh_victims_from(rh_spill_victim_t **by_alloc, size_t m,
                              uint64_t off)
{
    size_t lo = 0, hi = m;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (by_alloc[mid]->alloc < off) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* Whether the used block at off goes whole when the victims of
 * by_alloc[lo..hi) (those naming it) are spilled: a large object, or a
 * slab all of whose objects are victims. */
static int rh_block_spillable(rh_store_t *s, uint64_t off,
                              rh_spill_victim_t **by_alloc, size_t lo,
                              size_t hi)
{
    int64_t used;

    if (hi == lo + 1 && by_alloc[lo]->large && by_alloc[lo]->alloc == off) {
        return 1;
    }
    used = rh_alloc_slab_used(s, off);
    return used > 0 && (size_t)used == hi - lo &&
           by_alloc[lo]->alloc == off + RH_BLOCK_HDR;
}

/* Under the lock, for `need` contiguous bytes: the stretch of the heap,
 * made only of free blocks and of blocks that spilling victims frees whole
 * (large objects, slabs of victims only), that holds them for the fewest
 * bytes spilled plus free bytes left outside it (those stay apart from the
 * room freed: fragmentation). Every stretch of `need` bytes or more counts,
 * also one that begins or ends with a free block it could do without:
 * the room freed merges with that block, which must not count as left
 * outside. Its victims move to the front of v[0..n); how many (0: no such
 * stretch, as when readers pin something in every one, or the best leaves
 * more than max_apart free bytes outside it: *apart is set). Spilling by
 * LRU alone scatters holes over the heap: it fragments. */
static size_t rh_spill_window(rh_store_t *s, rh_spill_victim_t *v, size_t n,
                              uint64_t need, uint64_t max_apart, int *apart)
{
    rh_spill_victim_t **by_alloc = malloc((n + 1) * sizeof(*by_alloc));
    rh_spill_victim_t *tmp = NULL;
    rh_heap_run_t *run = NULL;
    uint64_t free_off[RH_SPILL_HELD];
    size_t nrun = 0, cap = 0, left = 0, best_lo = 0, best_hi = 0, k = 0;
    size_t nfree = 0, best_left = 0, best_end = 0;
    uint64_t off = 0, bsize, sum = 0, cost = 0, best = UINT64_MAX, fin = 0;
    uint64_t heap_free = s->hdr->heap_free, best_cost = 0;
    int is_free;

    if (by_alloc == NULL) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        by_alloc[i] = &v[i];
        v[i].pick = 0;
    }
    qsort(by_alloc, n, sizeof(*by_alloc), rh_alloc_cmp);
    while ((off = rh_alloc_next_block(s, off, &bsize, &is_free)) != 0) {
        /* a slab's objects name the slab, past the block header */
        size_t lo = rh_victims_from(by_alloc, n, off), hi = lo;
        uint64_t c = 0;

        while (hi < n && by_alloc[hi]->alloc <= off + RH_BLOCK_HDR) {
            c += by_alloc[hi]->size;
            hi++;
        }
        if (!is_free && !rh_block_spillable(s, off, by_alloc, lo, hi)) {
            left = nrun;   /* pinned, being written: the stretch ends */
            sum = cost = fin = 0;
            continue;
        }
        if (nrun == cap) {
            size_t ncap = cap ? 2 * cap : 256;
            rh_heap_run_t *more = realloc(run, ncap * sizeof(*run));

            if (more == NULL) {
                break;
            }
            run = more;
            cap = ncap;
        }
        run[nrun].off = is_free ? off : 0;
        run[nrun].size = bsize;
        run[nrun].cost = is_free ? 0 : c;
        run[nrun].lo = is_free ? 0 : lo;
        run[nrun].hi = is_free ? 0 : hi;
        sum += bsize;
        fin += is_free ? bsize : 0;
        cost += run[nrun].cost;
        nrun++;
        /* each stretch ending here that is long enough, longest first */
        while (sum >= need) {
            if (cost + (heap_free - fin) < best) {
                best = cost + (heap_free - fin);
                best_cost = cost;
                best_left = left;
                best_end = nrun;
            }
            if (left + 1 == nrun || sum - run[left].size < need) {
                break;
            }
            sum -= run[left].size;
            fin -= run[left].cost == 0 && run[left].off != 0 ?
                   run[left].size : 0;
            cost -= run[left].cost;
            left++;
        }
    }
    if (best != UINT64_MAX && best - best_cost > max_apart) {
        *apart = 1;
        best_end = best_left;   /* none */
    }
    /* the victims of run[best_left..best_end) lie in by_alloc[lo..hi) */
    best_lo = SIZE_MAX;
    for (size_t i = best_left; i < best_end; i++) {
        if (run[i].hi > run[i].lo) {
            best_lo = run[i].lo < best_lo ? run[i].lo : best_lo;
            best_hi = run[i].hi;
        } else if (run[i].off != 0 && nfree < RH_SPILL_HELD) {
            free_off[nfree++] = run[i].off;
        }
    }
    if (best_hi > 0) {
        for (size_t i = best_lo; i < best_hi; i++) {
            by_alloc[i]->pick = 1;
        }
        for (size_t i = 0; i < nfree; i++) {
            rh_alloc_hold(s, free_off[i]);
            s->hdr->spill_held[s->hdr->spill_held_n++] = free_off[i];
        }
        /* the picked to the front, the rest after them, each in order */
        tmp = malloc(n * sizeof(*tmp));
        if (tmp != NULL) {
            size_t j = 0;

            for (size_t i = 0; i < n; i++) {
                if (v[i].pick) {
                    tmp[j++] = v[i];
                }
            }
            k = j;
            for (size_t i = 0; i < n; i++) {
                if (!v[i].pick) {
                    tmp[j++] = v[i];
                }
            }
            memcpy(v, tmp, n * sizeof(*v));
            free(tmp);
        }
    }
    free(run);
    free(by_alloc);
    return k;
}

/* Under the lock: the primaries this round spills, from v[first], into
 * file records: what must go for the goal (and no more than a round's
 * worth); their count. *why says when none could; *later is set (and none
 * chosen) when a round past the threshold should rather wait.
 *
 * Such a round, which no create waits for, frees no stretch that leaves
 * more than a twentieth of the heap free apart from it. The free block it
 * would leave is most often the rest of the stretch the last round freed,
 * beside the object being written into it, which no round can spill before
 * it is sealed; at the end of the heap no stretch reaches past it. The
 * creates go on into the free room meanwhile, and one that finds no room
 * makes it for itself with a stretch fitted to its size, which takes that
 * rest and the object beside it when that is cheapest. */
static size_t rh_spill_choose(rh_store_t *s, rh_spill_victim_t *v,
                              size_t first, size_t n, uint64_t size,
                              uint64_t below, uint64_t slack, char *why,
                              size_t whylen, int *later)
{
    rh_store_hdr_t *h = s->hdr;
    uint64_t want, freed = 0, written = 0, batch = 0, limit = RH_SPILL_ROUND;
    size_t k = 0, win = 0;
    int rec = -1;

    /* a block of its own always does (a small one, too, when no slab
     * has a slot) */
    uint64_t block = ((size + RH_STORE_ALIGN - 1) & ~(uint64_t)
                      (RH_STORE_ALIGN - 1)) + RH_BLOCK_HDR;
    int pieces = size != 0 && rh_alloc_largest_free(s) + RH_BLOCK_HDR < block;
    /* going below the threshold: the room left free in one piece */
    uint64_t need = pieces ? block :
                    size == 0 && below != 0 && h->used > below ?
                    h->heap_size - below : 0;
    /* a round past the threshold: see above */
    uint64_t max_apart = size == 0 && below != 0 ?
                         h->heap_size / RH_SPILL_APART : UINT64_MAX;

    /* v is NULL when nothing can go: no pointer arithmetic on it */
    if (need != 0 && n > first &&
        (win = rh_spill_window(s, v + first, n - first, need, max_apart,
                               later)) > 0) {
        /* exactly the stretch's objects; they come first */
        n = first + win;
        limit = UINT64_MAX;
    }
    if (*later) {
        return 0;
    }

    want = below != 0 && h->used > below ? h->used - below : 0;
    if (size != 0) {
        uint64_t room = size + RH_BLOCK_HDR;
        uint64_t avail = h->heap_size - h->used;

        /* for a block, contiguous room: spill more than the deficit */
        if (room > avail && room - avail > want) {
            want = room - avail;
        }
        /* enough bytes free, but in pieces, and no stretch to free: LRU
         * victims until a gap (freed blocks merge) is large enough */
        if (want < block && pieces) {
            want = block;
        }
    }
    if (win > 0) {
        want = UINT64_MAX;
    }
    for (size_t i = first; i < n && freed < want && written < limit; i++) {
        uint64_t bytes = v[i].size;

        if (h->spill_max != 0 &&
            h->spill_disk + bytes > h->spill_max + slack) {
            rh_spill_why = RH_STORE_FULL_SPILL;
            snprintf(why, whylen, "the spill directory %s is full: its "
                     "files take %llu of %llu bytes (RAYHPC_SPILL_MAX)",
                     h->spill_dir, (unsigned long long)h->spill_disk,
                     (unsigned long long)h->spill_max);
            break;
        }
        if (bytes >= RH_SPILL_ALONE || rec < 0 ||
            batch + bytes > RH_SPILL_BATCH) {
            rec = rh_spill_rec_take(s, 0);
            if (rec < 0) {
                rh_spill_why = RH_STORE_FULL_OTHER;
                snprintf(why, whylen, "all %llu spill files are in use",
                         (unsigned long long)s->hdr->spill_recs);
                break;
            }
            batch = 0;
        }
        v[i].rec = rec;
        v[i].file_off = batch;
        batch += bytes;
        rh_spill_recs(s)[rec].bytes += bytes;
        h->spill_disk += bytes;
        freed += v[i].footprint;
        written += bytes;
        if (bytes >= RH_SPILL_ALONE) {
            rec = -1;   /* nothing joins it */
        }
        k++;
    }
    if (k == 0 && why[0] == '\0') {
        rh_spill_why = RH_STORE_FULL_PINNED;
        snprintf(why, whylen, "nothing can be spilled: every object in the "
                 "store is referenced (being read or written)");
    }
    return k;
}

static int rh_write_all(int fd, const void *buf, uint64_t len)
{
    return rh_spill_io_all(fd, RH_SPILL_WRITE, (void *)buf, len, 0);
}

static int rh_pwrite_all(int fd, const void *buf, uint64_t len, uint64_t off)
{
    return rh_spill_io_all(fd, RH_SPILL_PWRITE, (void *)buf, len, off);
}

/* Whether v goes to its file with O_DIRECT: a large object alone in it,
 * from a 4 KiB aligned block (alloc.c), while the file system takes it. */
static int rh_spill_direct(const rh_store_t *s, const rh_spill_victim_t *v,
                           size_t n)
{
    return n == 1 && v->pinned && v->file_off == 0 &&
           v->size >= RH_SPILL_ALONE && (uintptr_t)v->data %
           RH_BLOCK_UNIT == 0 && !s->hdr->spill_buffered &&
           !atomic_load_explicit(&s->no_direct, memory_order_relaxed);
}

/* Writes one large object with O_DIRECT on fd: the whole 4 KiB blocks
 * from the store's memory, no copy through the page cache, then the tail
 * buffered. A file system that refuses it (EINVAL: tmpfs, some network
 * ones) gets the whole object buffered, and no more O_DIRECT from this
 * process. 0 or an errno. */
static int rh_spill_write_direct(rh_store_t *s, int fd,
                                 const rh_spill_victim_t *v)
{
    uint64_t whole = v->size & ~(uint64_t)(RH_BLOCK_UNIT - 1);
    int fl = fcntl(fd, F_GETFL);

    if (rh_pwrite_all(fd, v->data, whole, 0) != 0) {
        if (errno != EINVAL) {
            return errno;
        }
        atomic_store_explicit(&s->no_direct, 1, memory_order_relaxed);
        whole = 0;
    }
    if (whole < v->size &&
        (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_DIRECT) != 0 ||
         rh_pwrite_all(fd, (const uint8_t *)v->data + whole,
                       v->size - whole, whole) != 0)) {
        return errno;
    }
    return 0;
}

/* Writes the victims of one file record (consecutive in v) at their
 * places, those that could be pinned; 0 or an errno. */
static int rh_spill_write_file(rh_store_t *s, rh_spill_victim_t *v, size_t n,
                               uint64_t fileno, int may_direct,
                               int *was_direct)
{
    char path[sizeof(s->hdr->spill_dir) + 24];
    int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, fd, err = 0;
    int direct = may_direct && rh_spill_direct(s, v, n);

    rh_spill_file_path(s, fileno, path, sizeof(path));
    fd = open(path, flags | (direct ? O_DIRECT : 0), 0600);
    if (fd < 0 && direct && errno == EINVAL) {
        atomic_store_explicit(&s->no_direct, 1, memory_order_relaxed);
        direct = 0;
        fd = open(path, flags, 0600);
    }
    if (fd < 0) {
        return errno;
    }
    if (direct) {
        err = rh_spill_write_direct(s, fd, v);
        n = 0;
        /* refused on its first write: written buffered */
        *was_direct = !atomic_load_explicit(&s->no_direct,
                                            memory_order_relaxed);
    }
    for (size_t i = 0; i < n && err == 0; i++) {
        /* one that went meanwhile leaves a hole, not a shift */
        if (v[i].pinned &&
            (lseek(fd, (off_t)v[i].file_off, SEEK_SET) < 0 ||
             rh_write_all(fd, v[i].data, v[i].size) != 0)) {
            err = errno;
        }
    }
    if (close(fd) != 0 && err == 0) {
        err = errno;
    }
    return err;
}

/* Under the lock: victim v, written, becomes SPILLED when its only
 * reference is still ours (the entry's memory is freed); 0 otherwise. */
static int rh_spill_commit(rh_store_t *s, rh_spill_victim_t *v)
{
    rh_spill_rec_t *r = &rh_spill_recs(s)[v->rec];
    rh_store_entry_t *e;
    uint64_t c, offset, alloc;
    uint16_t klass;

    e = rh_table_find_locked(s, v->id, &c);
    if (e == NULL || rh_ctl_state(c) != RH_SLOT_SEALED ||
        (c & RH_CTL_PENDING) || (c & RH_CTL_RC_MASK) != 1) {
        return 0;
    }
    offset = atomic_load_explicit(&e->offset, memory_order_relaxed);
    alloc = e->alloc;
    klass = e->klass;
    /* a new generation: a get that read the old offset fails its swap */
    if (!atomic_compare_exchange_strong_explicit(
            &e->ctl, &c,
            rh_ctl_with_state(c - 1, RH_SLOT_SPILLED) +
                (1ull << RH_CTL_GEN_SHIFT),
            memory_order_acq_rel, memory_order_relaxed)) {
        return 0;
    }
    (void)rh_holds_drop(s, v->id);
    rh_alloc_free_object(s, offset, alloc, klass, v->size);
    atomic_store_explicit(&e->offset, v->file_off, memory_order_relaxed);
    e->alloc = r->fileno;
    e->klass = RH_KLASS_SPILL;
    e->flags = (uint16_t)((e->flags & RH_ENTRY_COPY) | (unsigned)v->rec);
    r->live++;
    s->hdr->spilled_objects++;
    s->hdr->spilled_bytes += v->size;
    s->hdr->spills++;
    s->hdr->spill_written += v->size;
    rh_spill_tell(v->id, v->size, 1, r->fileno);
    return 1;
}

static void rh_spill_futex_wait(_Atomic uint32_t *w, uint32_t v, long ms);
static void rh_spill_futex_wake(_Atomic uint32_t *w);

/* Takes the node's one spilling turn; 0 while another live process has
 * it. */
static int rh_spill_turn(rh_store_t *s)
{
    int32_t me = (int32_t)getpid(), cur = 0;

    if (atomic_compare_exchange_strong(&s->hdr->spill_pid, &cur, me)) {
        return 1;
    }
    if (cur != me && rh_segment_pid_gone(cur, 0)) {
        return atomic_compare_exchange_strong(&s->hdr->spill_pid, &cur, me);
    }
    return 0;
}

/* Gives the turn back and wakes those waiting for the round to end. */
static void rh_spill_turn_end(rh_store_t *s)
{
    atomic_store(&s->hdr->spill_pid, 0);
    atomic_fetch_add_explicit(&s->hdr->spill_done, 1, memory_order_release);
    rh_spill_futex_wake(&s->hdr->spill_done);
}

/* Sleeps until the round under way ends, then takes and gives back the
 * turn. A creating thread waits so for the spiller (of its own process, as
 * often as not): spinning would take the CPU from the spiller's writers.
 * The timeout bounds the wait on a holder that died. */
static void rh_spill_wait_round(rh_store_t *s)
{
    for (;;) {
        uint32_t done = atomic_load_explicit(&s->hdr->spill_done,
                                             memory_order_acquire);

        if (rh_spill_turn(s)) {
            rh_spill_turn_end(s);
            return;
        }
        rh_spill_futex_wait(&s->hdr->spill_done, done, 10);
    }
}

/* Writes the chosen victims v[0..k) and turns what it can into SPILLED;
 * how many. *why says when writing failed. */
/* The files of one round, written by up to RH_SPILL_WRITERS threads:
 * file g holds v[start[g]..start[g + 1]). */
typedef struct rh_spill_job {
    rh_store_t        *s;
    rh_spill_victim_t *v;
    size_t            *start;
    uint64_t          *fileno;
    int               *err;      /* per file */
    int               *direct;   /* per file: written with O_DIRECT */
    size_t             files;
    _Atomic size_t     next;
    _Atomic unsigned   writers;
} rh_spill_job_t;

/* Every other writer uses O_DIRECT (the device takes the bytes from the
 * store), the others the page cache (a CPU copies them): the two go on
 * different resources at once, and as each takes the next file when done,
 * the faster kind writes more of them: most go direct when the CPUs are
 * busy, more go buffered when a CPU is free and memory plentiful. */
static void *rh_spill_writer(void *arg)
{
    rh_spill_job_t *job = arg;
    int may_direct = atomic_fetch_add(&job->writers, 1) % 2 == 0;
    size_t g;

    while ((g = atomic_fetch_add(&job->next, 1)) < job->files) {
        job->err[g] = rh_spill_write_file(job->s, &job->v[job->start[g]],
                                          job->start[g + 1] - job->start[g],
                                          job->fileno[g], may_direct,
                                          &job->direct[g]);
    }
    return NULL;
}

/* Writes the files of v[0..k) (grouped by record), several at once when
 * there are several: the disk and the page cache take parallel writers.
 * err[i] of the first victim of each file gets its outcome. */
static void rh_spill_write_files(rh_store_t *s, rh_spill_victim_t *v,
                                 size_t k, int *err, int *direct)
{
    rh_spill_job_t job = { .s = s, .v = v };
    pthread_t th[RH_SPILL_WRITERS - 1];
    size_t nth = 0;

    job.start = malloc((k + 1) * sizeof(*job.start));
    job.fileno = malloc((k + 1) * sizeof(*job.fileno));
    job.err = calloc(k + 1, sizeof(*job.err));
    job.direct = calloc(k + 1, sizeof(*job.direct));
    if (job.start == NULL || job.fileno == NULL || job.err == NULL ||
        job.direct == NULL) {
        for (size_t i = 0; i < k; i++) {
            err[i] = ENOMEM;
        }
        goto out;
    }
    for (size_t i = 0; i < k;) {
        size_t j = i;

        while (j < k && v[j].rec == v[i].rec) {
            j++;
        }
        job.start[job.files] = i;
        job.fileno[job.files++] = rh_spill_recs(s)[v[i].rec].fileno;
        i = j;
    }
    job.start[job.files] = k;
    atomic_init(&job.next, 0);
    atomic_init(&job.writers, 0);
    while (nth + 1 < job.files && nth < RH_SPILL_WRITERS - 1 &&
           pthread_create(&th[nth], NULL, rh_spill_writer, &job) == 0) {
        nth++;
    }
    rh_spill_writer(&job);
    for (size_t t = 0; t < nth; t++) {
        pthread_join(th[t], NULL);
    }
    for (size_t g = 0; g < job.files; g++) {
        err[job.start[g]] = job.err[g];
        direct[job.start[g]] = job.direct[g];
    }
out:
    free(job.start);
    free(job.fileno);
    free(job.err);
    free(job.direct);
}

static size_t rh_spill_write(rh_store_t *s, rh_spill_victim_t *v, size_t k,
                             char *why, size_t whylen)
{
    size_t done = 0;
    int *err = calloc(k, sizeof(*err)), *direct = calloc(k, sizeof(*direct));
    uint64_t t0 = rh_time_ns();

    if (err == NULL || direct == NULL) {
        free(err);
        free(direct);
        snprintf(why, whylen, "out of memory spilling");
        return 0;
    }
    for (size_t i = 0; i < k; i++) {
        const void *p;
        size_t len;

        v[i].pinned = rh_store_get(s, v[i].id, &p, &len) == RH_OK;
        v[i].data = p;
    }
    rh_spill_write_files(s, v, k, err, direct);
    for (size_t i = 0; i < k;) {
        size_t j = i;

        while (j < k && v[j].rec == v[i].rec) {
            j++;
        }
        if (err[i] != 0 && why[0] == '\0') {
            rh_spill_why = err[i] == ENOSPC || err[i] == EDQUOT ?
                           RH_STORE_FULL_SPILL : RH_STORE_FULL_OTHER;
            snprintf(why, whylen, "%s the spill directory %s: %s",
                     err[i] == ENOSPC || err[i] == EDQUOT ? "no room in" :
                     "cannot write to", s->hdr->spill_dir,
                     strerror(err[i]));
        }
        i = j;
    }
    if (rh_store_lock(s) == RH_OK) {
        for (size_t i = 0; i < k;) {
            size_t j = i, ok = 0;
            int rec = v[i].rec, bad = err[i] != 0;

            for (; j < k && v[j].rec == rec; j++) {
                if (!bad && v[j].pinned && rh_spill_commit(s, &v[j])) {
                    v[j].pinned = 0;
                    ok++;
                }
            }
            if (ok == 0) {
                rh_spill_rec_free(s, (unsigned)rec, 0);
            } else {
                rh_spill_recs(s)[rec].direct = (uint64_t)direct[i];
                s->hdr->spill_files++;
            }
            done += ok;
            i = j;
        }
        /* a slab whose objects all went is kept as its class's spare:
         * given back, so that the stretch the round chose is free whole */
        rh_alloc_release_spares(s);
        rh_spill_unhold(s);
        s->hdr->spill_ns += rh_time_ns() - t0;
        rh_store_unlock(s);
    }
    for (size_t i = 0; i < k; i++) {
        if (v[i].pinned) {
            rh_store_release(s, v[i].id);   /* someone got it meanwhile */
        }
    }
    free(err);
    free(direct);
    return done;
}

rh_status_t rh_spill_make_room(rh_store_t *s, uint64_t size, uint64_t below,
                               uint64_t slack, char *why, size_t whylen)
{
    rh_spill_victim_t *v = NULL;
    size_t n, copies = 0, evicted, k, done = 0;
    rh_status_t status;
    int met = 0, later = 0;

    why[0] = '\0';
    rh_spill_why = RH_STORE_FULL_NONE;
    if (!rh_spill_turn(s)) {
        /* another process spills now: what it frees may be enough. A
         * round to go below the threshold leaves it that one. */
        if (size == 0) {
            return RH_OK;
        }
        rh_spill_wait_round(s);
        return RH_OK;
    }
    status = rh_store_lock(s);
    if (status != RH_OK) {
        rh_spill_turn_end(s);
        snprintf(why, whylen, "%s", rh_last_error());
        return status;
    }
    rh_spill_unhold(s);   /* left by a round whose process died */
    n = rh_spill_candidates(s, &v);
    while (copies < n && v[copies].copy) {
        copies++;
    }
    evicted = rh_spill_evict(s, v, n, size, below);
    if (rh_spill_enough(s, size, below)) {
        rh_store_unlock(s);
        met = 1;   /* also when another process freed it meanwhile */
        goto out;
    }
    if (s->hdr->spill_dir[0] == '\0') {
        rh_store_unlock(s);
        rh_spill_why = RH_STORE_FULL_NO_SPILL;
        snprintf(why, whylen, "nothing can be evicted (spilling is off: "
                 "RAYHPC_SPILL_DIR)");
        goto out;
    }
    k = rh_spill_choose(s, v, copies, n, size, below, slack, why, whylen,
                        &later);
    if (k == 0) {
        rh_spill_unhold(s);
    }
    rh_store_unlock(s);
    if (k > 0) {
        done = rh_spill_write(s, v + copies, k, why, whylen);
    }
out:
    rh_spill_turn_end(s);
    free(v);
    if (later && evicted == 0) {
        return RH_ERR_BUSY;
    }
    if (evicted + done == 0 && !met) {
        if (why[0] == '\0') {
            rh_spill_why = RH_STORE_FULL_PINNED;
            snprintf(why, whylen, "nothing can be spilled or evicted now");
        }
        return RH_ERR_STORE_FULL;
    }
    return RH_OK;
}

/* ---- restore -------------------------------------------------------------- */

rh_status_t rh_store_read_spilled(rh_store_t *s, rh_object_id_t id,
                                  void **buf, size_t *len)
{
    char path[sizeof(s->hdr->spill_dir) + 24], ids[RH_OBJECT_ID_STRLEN];
    rh_store_entry_t *e;
    uint64_t c, size, off;
    void *b;
    int fd;
    rh_status_t status = rh_store_lock(s);

    if (status != RH_OK) {
        return status;
    }
    e = rh_table_find_locked(s, id, &c);
    if (e == NULL || (c & RH_CTL_PENDING)) {
        rh_store_unlock(s);
        return rh_error_set(RH_ERR_INVALID_REF, "object %s is not in the "
                            "store", rh_object_id_str(id, ids));
    }
    if (rh_ctl_state(c) != RH_SLOT_SPILLED) {
        rh_store_unlock(s);
        return RH_ERR_BUSY;
    }
    size = atomic_load_explicit(&e->size, memory_order_relaxed);
    off = atomic_load_explicit(&e->offset, memory_order_relaxed);
    rh_spill_file_path(s, e->alloc, path, sizeof(path));
    /* open under the lock: once open, the file's removal (a delete, a
     * restore) no longer matters, and its bytes never change */
    fd = open(path, O_RDONLY | O_CLOEXEC);
    rh_store_unlock(s);
    b = malloc(size != 0 ? size : 1);
    if (fd < 0 || b == NULL || rh_spill_pread_all(fd, b, size, off) != 0) {
        status = rh_error_set(b == NULL ? RH_ERR_NO_MEMORY : RH_ERR_MALFORMED,
                              "object %s: cannot read %llu bytes of spill "
                              "file %s", rh_object_id_str(id, ids),
                              (unsigned long long)size, path);
        free(b);
        if (fd >= 0) {
            close(fd);
        }
        return status;
    }
    close(fd);
    *buf = b;
    *len = size;
    return RH_OK;
}

/* One try at reading id back: under the lock, memory for it and its file
 * opened; WITHOUT the lock, the read (creates, gets and spill rounds of
 * other objects go on meanwhile); under the lock again, the entry made
 * SEALED if it still is the one read (same control word: not deleted, not
 * read back by another process meanwhile, which keeps its copy and this
 * one is freed). RH_ERR_STORE_FULL (no message) when no memory fits it
 * now. The memory in flight is counted in the header (restoring_*) so that
 * rh_store_check adds up. */
static rh_status_t rh_spill_read_back(rh_store_t *s, rh_object_id_t id)
{
    char path[sizeof(s->hdr->spill_dir) + 24], buf[RH_OBJECT_ID_STRLEN];
    uint64_t c, c2, size, file_off, offset, alloc, foot, t0 = rh_time_ns();
    rh_store_entry_t *e;
    uint16_t klass;
    unsigned rec;
    int fd, may_direct, written_direct, rd, err;
    rh_status_t status = rh_store_lock(s);

    if (status != RH_OK) {
        return status;
    }
    e = rh_table_find_locked(s, id, &c);
    if (e == NULL || (c & RH_CTL_PENDING)) {
        rh_store_unlock(s);
        return rh_error_set(RH_ERR_INVALID_REF, "get: object %s is not in "
                            "the store", rh_object_id_str(id, buf));
    }
    if (rh_ctl_state(c) != RH_SLOT_SPILLED) {
        rh_store_unlock(s);
        return RH_OK;
    }
    size = atomic_load_explicit(&e->size, memory_order_relaxed);
    file_off = atomic_load_explicit(&e->offset, memory_order_relaxed);
    if (rh_alloc_object(s, size, &offset, &alloc, &klass) != RH_OK) {
        rh_store_unlock(s);
        return RH_ERR_STORE_FULL;
    }
    foot = rh_alloc_footprint(s, alloc, klass);
    s->hdr->restoring_used += foot;
    s->hdr->restoring_bytes += size;
    s->hdr->restoring_slots += klass < RH_SLAB_CLASSES;
    rh_spill_file_path(s, e->alloc, path, sizeof(path));
    /* once open, the file's removal (a delete) no longer matters */
    rec = e->flags & RH_ENTRY_REC_MASK;
    written_direct = rec < s->hdr->spill_recs &&
                     rh_spill_recs(s)[rec].direct;
    may_direct = size >= RH_SPILL_ALONE && file_off == 0 &&
                 !s->hdr->spill_buffered;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    err = fd < 0 ? errno : 0;
    rh_store_unlock(s);

    rd = -1;
    if (fd >= 0) {
        rd = rh_spill_read(&s->reader, &s->no_direct, fd,
                           rh_store_at(s, offset), size, file_off,
                           may_direct, written_direct);
        err = rd != 0 ? errno : 0;
        close(fd);
    }

    status = rh_store_lock(s);
    if (status != RH_OK) {
        return status;   /* the memory stays counted as in flight */
    }
    s->hdr->restoring_used -= foot;
    s->hdr->restoring_bytes -= size;
    s->hdr->restoring_slots -= klass < RH_SLAB_CLASSES;
    e = rh_table_find_locked(s, id, &c2);
    if (rd != 0 || e == NULL || c2 != c) {
        rh_alloc_free_object(s, offset, alloc, klass, size);
        rh_store_unlock(s);
        if (rd != 0) {
            return rh_error_set(RH_ERR_MALFORMED, "object %s: cannot read "
                                "it back from spill file %s: %s",
                                rh_object_id_str(id, buf), path,
                                err == EIO ? "it is shorter than recorded"
                                           : strerror(err));
        }
        return RH_OK;   /* deleted, or read back elsewhere: get looks again */
    }
    s->hdr->restore_ns += rh_time_ns() - t0;
    s->hdr->restores++;
    s->hdr->restored_bytes += size;
    rh_spill_forget(s, e);
    atomic_store_explicit(&e->offset, offset, memory_order_release);
    e->alloc = alloc;
    e->klass = klass;
    e->flags &= RH_ENTRY_COPY;
    atomic_store_explicit(&e->atime_ms, rh_table_now_ms(),
                          memory_order_relaxed);
    /* nothing else changes a SPILLED word without the lock; release: the
     * bytes read come before the seal that shows them */
    atomic_store_explicit(&e->ctl,
                          rh_ctl_with_state(c, RH_SLOT_SEALED) +
                              (1ull << RH_CTL_GEN_SHIFT),
                          memory_order_release);
    rh_store_unlock(s);
    return RH_OK;
}

rh_status_t rh_spill_restore(rh_store_t *s, rh_object_id_t id)
{
    char why[256] = "", buf[RH_OBJECT_ID_STRLEN];
    rh_status_t status;

    for (int round = 0; round < 16; round++) {
        rh_store_entry_t *e;
        uint64_t c, size = 0;

        status = rh_spill_read_back(s, id);
        if (status != RH_ERR_STORE_FULL) {
            return status;
        }
        if (rh_store_lock(s) == RH_OK) {
            e = rh_table_find_locked(s, id, &c);
            size = e != NULL ? atomic_load_explicit(&e->size,
                                                    memory_order_relaxed)
                             : 0;
            rh_store_unlock(s);
        }
        /* past the spill limit by at most this object: reading objects
         * back one by one (and freeing them) must work with the store and
         * the spill directory both full */
        status = rh_spill_make_room(s, size, 0, size, why, sizeof(why));
        if (status == RH_ERR_BUSY && why[0] == '\0') {
            snprintf(why, sizeof(why), "another round frees a stretch of "
                     "the store now");
        }
        if (status != RH_OK) {
            break;
        }
    }
    /* rounds whose room others took, or a round under way: it may pass,
     * as when what fills the store is being read (the caller may wait) */
    if (rh_spill_why == RH_STORE_FULL_NONE) {
        rh_spill_why = RH_STORE_FULL_PINNED;
    }
    return rh_error_set(RH_ERR_STORE_FULL, "object %s is spilled and there "
                        "is no room to read it back: %s",
                        rh_object_id_str(id, buf),
                        why[0] != '\0' ? why : "the store stays full");
}

/* ---- the background spiller ----------------------------------------------- */

/* Where a round past the threshold stops: a tenth of the heap below it, so
 * that the creates after it find room without waiting for a disk. */
static uint64_t rh_spill_low(const rh_store_t *s)
{
    const rh_store_hdr_t *h = s->hdr;

    return h->spill_high > h->heap_size / 5 ? h->spill_high -
           h->heap_size / 10 : h->spill_high / 2;
}

static void rh_spill_futex_wait(_Atomic uint32_t *w, uint32_t v, long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    /* shared (not PRIVATE): the word is in the segment, bumped by every
     * process of the node */
    (void)syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT, v, &ts, NULL, 0);
}

static void rh_spill_futex_wake(_Atomic uint32_t *w)
{
    (void)syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, INT_MAX, NULL, NULL,
                  0);
}

/* The bytes used when past the threshold, else 0. */
static uint64_t rh_spill_over(rh_store_t *s)
{
    uint64_t over = 0;

    if (rh_store_lock(s) == RH_OK) {
        over = s->hdr->used > s->hdr->spill_high ? s->hdr->used : 0;
        rh_store_unlock(s);
    }
    return over;
}

/* Waits for a kick (or a tenth of a second), then spills the store below
 * its threshold when it passed it: off the creating threads' path. After a
 * round that chose to wait (rh_spill_choose), a kick asks again only once
 * the store has grown by a 32nd of the heap (each create past the
 * threshold kicks, and a round looks at every object); the tenth of a
 * second asks in any case, by when the object being written is sealed. */
static void *rh_spiller_main(void *arg)
{
    rh_store_t *s = arg;
    uint64_t retry_at = 0, used;
    int kicked = 0;
    char why[256];

    while (!atomic_load_explicit(&s->spiller_stop, memory_order_acquire)) {
        uint32_t kick = atomic_load_explicit(&s->hdr->spill_kick,
                                             memory_order_acquire);

        used = rh_spill_over(s);
        if (used != 0 && (!kicked || used >= retry_at)) {
            rh_status_t st = rh_spill_make_room(s, 0, rh_spill_low(s), 0,
                                                why, sizeof(why));

            if (st == RH_OK) {
                retry_at = 0;
                continue;   /* more may have come meanwhile */
            }
            if (st == RH_ERR_BUSY) {
                retry_at = used + s->hdr->heap_size / RH_SPILL_RETRY;
            }
        }
        rh_spill_futex_wait(&s->hdr->spill_kick, kick, 100);
        kicked = atomic_load_explicit(&s->hdr->spill_kick,
                                      memory_order_acquire) != kick;
    }
    return NULL;
}

rh_status_t rh_spill_start(rh_store_t *s)
{
    int rc;

    if (s->hdr->spill_dir[0] == '\0') {
        return RH_OK;
    }
    atomic_store(&s->spiller_stop, 0);
    rc = pthread_create(&s->spiller, NULL, rh_spiller_main, s);
    if (rc != 0) {
        return rh_error_set(RH_ERR_NO_MEMORY, "cannot start the store's "
                            "spilling thread: %s", strerror(rc));
    }
    s->spiller_on = 1;
    atomic_store(&s->hdr->spiller_pid, (int32_t)getpid());
    return RH_OK;
}

void rh_spill_stop(rh_store_t *s)
{
    if (!s->spiller_on) {
        return;
    }
    atomic_store(&s->hdr->spiller_pid, 0);
    atomic_store_explicit(&s->spiller_stop, 1, memory_order_release);
    atomic_fetch_add(&s->hdr->spill_kick, 1);
    rh_spill_futex_wake(&s->hdr->spill_kick);
    pthread_join(s->spiller, NULL);
    s->spiller_on = 0;
}

void rh_spill_past_threshold(rh_store_t *s)
{
    int32_t pid = atomic_load(&s->hdr->spiller_pid);
    char why[256];

    if (pid != 0 && !rh_segment_pid_gone(pid, 0)) {
        atomic_fetch_add_explicit(&s->hdr->spill_kick, 1,
                                  memory_order_release);
        rh_spill_futex_wake(&s->hdr->spill_kick);
        return;
    }
    (void)rh_spill_make_room(s, 0, rh_spill_low(s), 0, why, sizeof(why));
}
