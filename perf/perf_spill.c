/*
 * Spilling (one rank, a 256 MiB store, spill files in RAYHPC_SPILL_DIR or
 * the temp dir):
 *
 *   put_bw_over   GiB/s of a stream of rh_put of 4 MiB objects, 1 GiB of
 *                 them (4x the store), every object kept: the store spills
 *                 as it goes. put_bw_over/put_bw: against the same puts,
 *                 128 MiB of them, in a store where they fit (the tasks
 *                 group's put_bw measures single puts)
 *   spill_bw      GiB/s of the spill path during put_bw_over: bytes the
 *                 store wrote over the time its spill rounds took (picking,
 *                 pinning, writing, freeing). spill_bw/write: against one
 *                 plain sequential write(2) per 4 MiB file of as many
 *                 bytes (768 MiB) into the same directory, same run, before
 *                 ours in one round and after it in the next
 *   restore_bw    GiB/s of reading the spilled objects back (each rh_get of
 *                 a spilled object reads its file into the store; the time
 *                 the reads took). restore_bw/read: against one plain
 *                 read(2) per 4 MiB file of the reference's files. Both
 *                 read from the disk: the pages of the spill files and of
 *                 the reference's are written back and dropped from the
 *                 page cache first (fdatasync, POSIX_FADV_DONTNEED), as
 *                 after the memory went to other uses; otherwise the
 *                 reference reads what its write just left in the cache
 *                 while spilled objects written with O_DIRECT come from
 *                 the disk
 *   put_bw_over/spill_bw  how much of the disk's speed a put stream past
 *                 the store's size keeps (target >= 0.5)
 *
 * Each figure is the best of SPILL_ROUNDS rounds.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "perf.h"
#include "plasma/store.h"

#define SPILL_ROUNDS 3
#define SPILL_OBJ    (4u << 20)
#define SPILL_FIT    (128u << 20)
#define SPILL_OVER   (1u << 30)

static const double GiB = 1024.0 * 1024.0 * 1024.0;

static int store_stats(rh_store_stats_t *st)
{
    if (rh_store_stats(rh_core_store(), st) != RH_OK) {
        fprintf(stderr, "rayhpc-perf: spill: %s\n", rh_last_error());
        return -1;
    }
    return 0;
}

/* Puts total bytes in 4 MiB objects from buf, keeping the refs; the
 * seconds it took, or < 0. */
static double put_stream(const void *buf, rh_ref_t *refs, size_t n)
{
    double t0 = perf_now();

    for (size_t i = 0; i < n; i++) {
        if (rh_put(buf, SPILL_OBJ, &refs[i]) != RH_OK) {
            fprintf(stderr, "rayhpc-perf: spill: put %zu of %zu: %s\n", i,
                    n, rh_last_error());
            for (size_t k = 0; k < i; k++) {
                rh_release(refs[k]);
            }
            return -1;
        }
    }
    return perf_now() - t0;
}

static void release_all(rh_ref_t *refs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rh_release(refs[i]);
    }
}

typedef struct spill_round {
    double put_fit, put_over, spill, restore, write, read;
} spill_round_t;

/* Writes back and drops from the page cache the pages of path. */
static int drop_pages(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

    if (fd < 0) {
        return -1;
    }
    rc = fdatasync(fd) != 0 ||
         posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0 ? -1 : 0;
    close(fd);
    return rc;
}

/* The same for every file of the store's spill directory. */
static int drop_spill_pages(void)
{
    const char *dir = rh_store_spill_dir(rh_core_store());
    char path[1200];
    struct dirent *d;
    DIR *dp = opendir(dir);

    if (dp == NULL) {
        fprintf(stderr, "rayhpc-perf: spill: %s: %s\n", dir,
                strerror(errno));
        return -1;
    }
    while ((d = readdir(dp)) != NULL) {
        if (d->d_name[0] != '.') {
            snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
            (void)drop_pages(path);   /* gone meanwhile: nothing to drop */
        }
    }
    closedir(dp);
    return 0;
}

/* Plain write(2) and read(2) of n files of 4 MiB in dir: GiB/s each. The
 * reads come from the disk, as restores do (see restore_bw). */
static int plain_io(const char *dir, const void *buf, void *back, size_t n,
                    double *wbw, double *rbw)
{
    char path[1200];
    double t0, tw, tr = 0;

    t0 = perf_now();
    for (size_t i = 0; i < n; i++) {
        int fd;

        snprintf(path, sizeof(path), "%s/plain-%zu", dir, i);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, buf, SPILL_OBJ) != (ssize_t)SPILL_OBJ) {
            fprintf(stderr, "rayhpc-perf: spill: writing %s: %s\n", path,
                    strerror(errno));
            if (fd >= 0) {
                close(fd);
            }
            return -1;
        }
        close(fd);
    }
    tw = perf_now() - t0;
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/plain-%zu", dir, i);
        if (drop_pages(path) != 0) {
            fprintf(stderr, "rayhpc-perf: spill: dropping the pages of %s: "
                    "%s\n", path, strerror(errno));
            return -1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        int fd;

        snprintf(path, sizeof(path), "%s/plain-%zu", dir, i);
        t0 = perf_now();
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || read(fd, back, SPILL_OBJ) != (ssize_t)SPILL_OBJ) {
            fprintf(stderr, "rayhpc-perf: spill: reading %s: %s\n", path,
                    strerror(errno));
            if (fd >= 0) {
                close(fd);
            }
            return -1;
        }
        close(fd);
        tr += perf_now() - t0;
        unlink(path);
    }
    *wbw = (double)n * SPILL_OBJ / GiB / tw;
    *rbw = (double)n * SPILL_OBJ / GiB / tr;
    return 0;
}

/* One round; the reference goes before ours when ref_first (rounds
 * alternate: the disk's write-back state changes what a write costs). */
static int spill_once(const char *dir, void *buf, void *back,
                      spill_round_t *r, int ref_first)
{
    size_t nfit = SPILL_FIT / SPILL_OBJ, nover = SPILL_OVER / SPILL_OBJ;
    size_t nref = (SPILL_OVER - SPILL_FIT) / SPILL_OBJ;
    rh_ref_t *refs = calloc(nover, sizeof(*refs));
    rh_store_stats_t s0, s1, s2;
    double t;

    if (refs == NULL) {
        return -1;
    }
    if (ref_first &&
        plain_io(dir, buf, back, nref, &r->write, &r->read) != 0) {
        goto err;
    }
    t = put_stream(buf, refs, nfit);
    if (t < 0) {
        goto err;
    }
    r->put_fit = (double)nfit * SPILL_OBJ / GiB / t;
    release_all(refs, nfit);
    if (store_stats(&s0) != 0) {
        goto err;
    }
    t = put_stream(buf, refs, nover);
    if (t < 0 || store_stats(&s1) != 0) {
        goto err;
    }
    r->put_over = (double)nover * SPILL_OBJ / GiB / t;
    if (s1.spill_ns == s0.spill_ns) {
        fprintf(stderr, "rayhpc-perf: spill: 1 GiB of puts into a %llu MiB "
                "store spilled nothing\n",
                (unsigned long long)(s1.capacity >> 20));
        release_all(refs, nover);
        goto err;
    }
    r->spill = (double)(s1.spill_written - s0.spill_written) / GiB /
               ((double)(s1.spill_ns - s0.spill_ns) * 1e-9);
    if (drop_spill_pages() != 0) {
        release_all(refs, nover);
        goto err;
    }
    for (size_t i = 0; i < nover; i++) {
        const void *p;
        size_t len;

        if (rh_get(refs[i], &p, &len, 60000) != RH_OK) {
            fprintf(stderr, "rayhpc-perf: spill: get %zu: %s\n", i,
                    rh_last_error());
            release_all(refs, nover);
            goto err;
        }
        rh_release(refs[i]);   /* the get's */
        rh_release(refs[i]);   /* the put's: the object goes */
    }
    if (store_stats(&s2) != 0 || s2.restore_ns == s1.restore_ns) {
        goto err;
    }
    r->restore = (double)(s2.restored_bytes - s1.restored_bytes) / GiB /
                 ((double)(s2.restore_ns - s1.restore_ns) * 1e-9);
    free(refs);
    /* the reference: about the bytes the store spilled, as plain files */
    return ref_first ? 0 : plain_io(dir, buf, back, nref, &r->write,
                                    &r->read);

err:
    free(refs);
    return -1;
}

static int setup_spill(void)
{
    return 0;
}

static int run_spill(const perf_group_t *g, const char *suffix,
                     int (*want)(const char *figure))
{
    spill_round_t best = { 0 }, r;
    const char *d = getenv("RAYHPC_SPILL_DIR"), *tmp = getenv("TMPDIR");
    void *buf = malloc(SPILL_OBJ), *back = malloc(SPILL_OBJ);
    int rc = 0;

    (void)g;
    (void)want;
    if (d == NULL || d[0] == '\0') {
        d = tmp != NULL && tmp[0] == '/' ? tmp : "/tmp";
    }
    if (buf == NULL || back == NULL) {
        free(buf);
        free(back);
        return 1;
    }
    memset(buf, 0x3c, SPILL_OBJ);
    for (int round = 0; round < SPILL_ROUNDS && rc == 0; round++) {
        if (spill_once(d, buf, back, &r, round % 2) != 0) {
            rc = 1;
            break;
        }
        perf_keep_best(&best.put_fit, r.put_fit, 0);
        perf_keep_best(&best.put_over, r.put_over, 0);
        perf_keep_best(&best.spill, r.spill, 0);
        perf_keep_best(&best.restore, r.restore, 0);
        perf_keep_best(&best.write, r.write, 0);
        perf_keep_best(&best.read, r.read, 0);
    }
    free(buf);
    free(back);
    if (rc != 0) {
        return rc;
    }
    perf_report("put_bw_over", suffix, best.put_over, best.put_fit, "GiB/s",
                "put_bw");
    perf_report("spill_bw", suffix, best.spill, best.write, "GiB/s",
                "write");
    perf_report("restore_bw", suffix, best.restore, best.read, "GiB/s",
                "read");
    perf_print_ratio("put_bw_over", suffix, "spill_bw",
                     best.put_over / best.spill);
    return 0;
}

static const char *const spill_figures[] = { "put_bw_over", "spill_bw",
                                             "restore_bw", NULL };
static const char *const spill_env[] = { "RAYHPC_STORE_SIZE=256M",
                                         "RAYHPC_NUM_WORKERS=1", NULL };

const perf_group_t perf_group_spill = {
    "spill", spill_figures, 1, spill_env, 0, 0, setup_spill, run_spill
};
