/* Eviction of copies and spilling in the node's object store
 * (src/plasma/spill.c). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "plasma/store.h"
#include "plasma/store_internal.h"

#define KiB (1024ull)
#define MiB (1024ull * KiB)

static char spill_base[256];

static void make_base(void)
{
    snprintf(spill_base, sizeof(spill_base), "/tmp/rh-spilltest-XXXXXX");
    cr_assert_not_null(mkdtemp(spill_base));
}

/* Removes what a test left in its base directory (one level of spill
 * directories). */
static void remove_base(void)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", spill_base);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(spill, .init = make_base, .fini = remove_base, .timeout = 60);

static const char *unique_job(char *buf, size_t len)
{
    static int counter;

    snprintf(buf, len, "spill%d-%d", (int)getpid(), counter++);
    return buf;
}

/* Creates a store of a new job on node n0, size bytes, spilling into dir
 * up to max bytes (0: no limit) past threshold (0: the default). */
static rh_store_t *create_store(uint64_t size, const char *dir, uint64_t max,
                                double threshold)
{
    static char job[64];
    rh_store_params_t p;
    rh_store_t *s = NULL;

    memset(&p, 0, sizeof(p));
    p.job_id = unique_job(job, sizeof(job));
    p.node = "n0";
    p.create = 1;
    p.size = size;
    p.hugepages = RH_STORE_HUGEPAGES_OFF;
    p.spill_dir = dir;
    p.spill_max = max;
    p.spill_threshold = threshold;
    cr_assert_eq(rh_store_open(&p, &s), RH_OK, "open: %s", rh_last_error());
    return s;
}

/* A store whose rounds past the threshold run in the creating thread (the
 * background spiller stopped), so that what a test counts is exact. */
static rh_store_t *open_store(uint64_t size, const char *dir, uint64_t max)
{
    rh_store_t *s = create_store(size, dir, max, 0);

    if (getenv("SPILL_TEST_BACKGROUND") == NULL) {
        rh_spill_stop(s);
    }
    return s;
}

/* A store of 16 MiB where no round runs but the test's own
 * (rh_spill_make_room): no threshold is ever passed, whatever the
 * environment says of the background spiller. */
static rh_store_t *open_store_for_rounds(void)
{
    rh_store_t *s = create_store(16 * MiB, spill_base, 0, 1.0);

    rh_spill_stop(s);
    return s;
}

static uint8_t pattern_byte(rh_object_id_t id, size_t i)
{
    return (uint8_t)(id.lo * 31 + i * 7 + (i >> 12));
}

static rh_status_t put(rh_store_t *s, rh_object_id_t id, size_t size,
                       int copy)
{
    void *p;
    rh_status_t st = copy ? rh_store_create_copy(s, id, size, &p)
                          : rh_store_create(s, id, size, &p);

    if (st != RH_OK) {
        return st;
    }
    for (size_t i = 0; i < size; i++) {
        ((uint8_t *)p)[i] = pattern_byte(id, i);
    }
    return rh_store_seal(s, id);
}

/* Gets id and checks every byte. */
static void check(rh_store_t *s, rh_object_id_t id, size_t size)
{
    const void *p;
    size_t len;
    rh_status_t st = rh_store_get(s, id, &p, &len);

    cr_assert_eq(st, RH_OK, "get %llu: %s", (unsigned long long)id.lo,
                 rh_last_error());
    cr_assert_eq(len, size);
    for (size_t i = 0; i < size; i++) {
        if (((const uint8_t *)p)[i] != pattern_byte(id, i)) {
            cr_assert_fail("object %llu differs at byte %zu",
                           (unsigned long long)id.lo, i);
        }
    }
    cr_assert_eq(rh_store_release(s, id), RH_OK);
}

static rh_object_id_t oid(uint64_t n)
{
    return rh_object_id_make(1, n + 1, 0);
}

/* Sizes from 1 KiB to 2 MiB, most small, some large, fixed by the seed. */
static size_t mixed_size(unsigned *seed)
{
    unsigned r = (unsigned)rand_r(seed);

    switch (r % 8) {
    case 0: case 1: case 2: return 1 * KiB + r % (4 * KiB);
    case 3: case 4: return 16 * KiB + r % (48 * KiB);
    case 5: return 64 * KiB + r % (192 * KiB);
    case 6: return 256 * KiB + r % (768 * KiB);
    default: return 1 * MiB + r % (1 * MiB);
    }
}

static void shuffle(size_t *v, size_t n, unsigned *seed)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rand_r(seed) % i, t = v[i - 1];

        v[i - 1] = v[j];
        v[j] = t;
    }
}

/* Counts the regular files of the store's spill directory and checks that
 * each is 0600. */
static int spill_files_0600(rh_store_t *s)
{
    DIR *d = opendir(s->hdr->spill_dir);
    struct dirent *e;
    int n = 0;

    cr_assert_not_null(d, "spill dir %s", s->hdr->spill_dir);
    while ((e = readdir(d)) != NULL) {
        char path[2048];
        struct stat st;

        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", s->hdr->spill_dir, e->d_name);
        cr_assert_eq(stat(path, &st), 0);
        cr_assert_eq(st.st_mode & 0777, 0600, "%s has mode %o", path,
                     st.st_mode & 0777);
        n++;
    }
    closedir(d);
    return n - 1;   /* the owner file */
}

Test(spill, working_set_four_times_the_store_reads_back_exact)
{
    rh_store_t *s = open_store(16 * MiB, spill_base, 0);
    rh_store_stats_t st;
    unsigned seed = 7;
    size_t n = 0, *order, sizes[1024];
    uint64_t total = 0;

    rh_store_stats(s, &st);
    while (total < 4 * st.capacity && n < 1024) {
        sizes[n] = mixed_size(&seed);
        cr_assert_eq(put(s, oid(n), sizes[n], 0), RH_OK, "put %zu: %s", n,
                     rh_last_error());
        total += sizes[n++];
    }
    /* A round past the threshold waits while the stretch it would free
     * holds the object being written (rh_spill_choose): the last put's own
     * round may have been left to the next create. All are sealed now: do
     * what that create would. */
    rh_spill_past_threshold(s);
    rh_store_stats(s, &st);
    cr_assert_gt(st.spills, 0);
    cr_assert_gt(st.spill_files, 0);
    cr_assert_eq(spill_files_0600(s), (int)st.spill_files);
    cr_assert_leq(st.used, s->hdr->spill_high,
                  "spilling keeps the store under its threshold");
    order = malloc(n * sizeof(*order));
    for (size_t i = 0; i < n; i++) {
        order[i] = i;
    }
    shuffle(order, n, &seed);
    for (size_t i = 0; i < n; i++) {
        check(s, oid(order[i]), sizes[order[i]]);
    }
    rh_store_stats(s, &st);
    cr_assert_gt(st.restores, 0);
    cr_assert_lt(st.fragmentation, 0.10, "fragmentation %.3f",
                 st.fragmentation);
    cr_assert_eq(rh_store_check(s), RH_OK, "%s", rh_last_error());
    /* deleting everything leaves no file behind */
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(rh_store_delete(s, oid(i)), RH_OK);
    }
    rh_store_stats(s, &st);
    cr_assert_eq(st.spilled_objects, 0);
    cr_assert_eq(st.spill_files, 0);
    cr_assert_eq(spill_files_0600(s), 0);
    cr_assert_eq(rh_store_check(s), RH_OK, "%s", rh_last_error());
    free(order);
    rh_store_close(s, 1);
}

/* Puts 3x a store of large objects whose sizes end mid-page, spilling
 * them, and reads them all back; whether the dir refused O_DIRECT. */
static int spill_large_odd_sizes(const char *dir)
{
    rh_store_t *s = open_store(16 * MiB, dir, 0);
    size_t sizes[] = { 1 * MiB, 1 * MiB + 1, 3 * MiB + 4095, 2 * MiB - 7,
                       4 * MiB + 100, 1 * MiB + 4096 };
    size_t n = 0;
    uint64_t total = 0;
    rh_store_stats_t st;
    int refused;

    for (; total < 48 * MiB; n++) {
        size_t size = sizes[n % 6];

        cr_assert_eq(put(s, oid(n), size, 0), RH_OK, "put %zu: %s", n,
                     rh_last_error());
        total += size;
    }
    rh_store_stats(s, &st);
    cr_assert_gt(st.spills, 4);
    for (size_t i = 0; i < n; i++) {
        check(s, oid(i), sizes[i % 6]);
    }
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(rh_store_delete(s, oid(i)), RH_OK);
    }
    cr_assert_eq(rh_store_check(s), RH_OK, "%s", rh_last_error());
    refused = atomic_load(&s->no_direct);
    rh_store_close(s, 1);
    return refused;
}

Test(spill, large_objects_go_with_o_direct_and_buffered_where_refused)
{
    char shm[64];
    struct statfs fs;

    /* ext4, xfs, btrfs take O_DIRECT */
    cr_assert_eq(statfs(spill_base, &fs), 0);
    if (fs.f_type == EXT4_SUPER_MAGIC || fs.f_type == XFS_SUPER_MAGIC ||
        fs.f_type == BTRFS_SUPER_MAGIC) {
        cr_expect_eq(spill_large_odd_sizes(spill_base), 0,
                     "O_DIRECT refused on %s", spill_base);
    } else {
        (void)spill_large_odd_sizes(spill_base);
    }
    /* tmpfs refuses it before Linux 6.6: either way, byte-exact */
    snprintf(shm, sizeof(shm), "/dev/shm/rh-spilltest-XXXXXX");
    cr_assert_not_null(mkdtemp(shm));
    (void)spill_large_odd_sizes(shm);
    cr_assert_eq(rmdir(shm), 0);
}

/* A round chooses a stretch of the heap to free whole, counting a slab of
 * victims only as free once spilled: it must be, not kept as the spare
 * slab of its class (in the workset test, such spares split the room freed
 * below the threshold and left fragmentation of 0.10 to 0.23). */
Test(spill, a_slab_whose_objects_all_spill_goes_back_to_the_heap)
{
    rh_store_t *s = open_store(16 * MiB, spill_base, 0);
    rh_store_stats_t st;
    char why[256];
    size_t n = 0;

    /* one slab of the 4 KiB class, full, and nothing else */
    rh_store_stats(s, &st);
    do {
        cr_assert_eq(put(s, oid(n), 4 * KiB, 0), RH_OK);
        n++;
        rh_store_stats(s, &st);
    } while (s->hdr->classes[11].partial != 0);
    cr_assert_eq(s->hdr->classes[11].slabs, 1);
    cr_assert_eq(rh_spill_make_room(s, 0, 1, 0, why, sizeof(why)), RH_OK,
                 "%s", why);
    rh_store_stats(s, &st);
    cr_assert_eq(st.spilled_objects, n);
    cr_expect_eq(st.used, 0);
    cr_expect_eq(s->hdr->classes[11].slabs, 0, "the empty slab stayed");
    cr_expect_eq(st.largest_free, st.capacity - RH_BLOCK_HDR,
                 "the heap is not one free block: fragmentation %.3f",
                 st.fragmentation);
    for (size_t i = 0; i < n; i++) {
        check(s, oid(i), 4 * KiB);
    }
    cr_assert_eq(rh_store_check(s), RH_OK, "%s", rh_last_error());
    rh_store_close(s, 1);
}

/* A round that frees a stretch next to a free block frees them as one
 * (they merge): the stretch is worth the free block too. Heap: free 2 MiB,
 * objects of 3, 3, 2.9, 2.9 MiB, then one that is read (it stays). For
 * 5.5 MiB in one piece, spilling the two 3 MiB objects leaves one free
 * block of 8 MiB; the cheaper two of 2.9 MiB leave the 2 MiB apart
 * (fragmentation 0.125). The round must count the free block it merges
 * with, and pick the first. */
Test(spill, a_round_frees_the_stretch_next_to_free_room)
{
    rh_store_t *s = open_store_for_rounds();
    rh_store_stats_t st;
    size_t sizes[] = { 2 * MiB, 3 * MiB, 3 * MiB, 3 * MiB - 100 * KiB,
                       3 * MiB - 100 * KiB };
    const void *ptr;
    size_t len;
    uint64_t below;
    char why[256];

    for (size_t i = 0; i < 5; i++) {
        /* blocks of exactly these sizes: 4 KiB units, header included */
        cr_assert_eq(put(s, oid(i), sizes[i] - RH_BLOCK_UNIT, 0), RH_OK,
                     "put %zu: %s", i, rh_last_error());
    }
    /* the rest of the heap (largest_free leaves out the header) */
    cr_assert_eq(put(s, oid(5), rh_alloc_largest_free(s) - RH_BLOCK_UNIT +
                     RH_BLOCK_HDR + 1, 0), RH_OK, "%s", rh_last_error());
    cr_assert_eq(rh_alloc_largest_free(s), 0, "the heap is not full");
    cr_assert_eq(rh_store_get(s, oid(5), &ptr, &len), RH_OK);
    cr_assert_eq(rh_store_delete(s, oid(0)), RH_OK);
    below = s->hdr->heap_size - 11 * MiB / 2;
    cr_assert_eq(rh_spill_make_room(s, 0, below, 0, why, sizeof(why)),
                 RH_OK, "%s", why);
    rh_store_stats(s, &st);
    cr_expect_eq(st.spilled_objects, 2);
    cr_expect_eq(st.largest_free, 8 * MiB - RH_BLOCK_HDR,
                 "not one free block of 8 MiB: fragmentation %.3f",
                 st.fragmentation);
    cr_expect_lt(st.fragmentation, 0.001, "fragmentation %.3f",
                 st.fragmentation);
    for (size_t i = 1; i < 5; i++) {
        check(s, oid(i), sizes[i] - RH_BLOCK_UNIT);
    }
    cr_assert_eq(rh_store_release(s, oid(5)), RH_OK);
    cr_assert_eq(rh_store_check(s), RH_OK, "%s", rh_last_error());
    rh_store_close(s, 1);
}

/* A round past the threshold, which no create waits for, frees no stretch
 * that leaves much free room apart. Heap: objects of 3 MiB x4, one of
 * 1 MiB being written, then the rest free (about 1.7 MiB) at the end. No
 * stretch of 6 MiB reaches the free rest past the object being written:
 * freeing one elsewhere would leave it apart (fragmentation 0.12), so the
 * round waits (RH_ERR_BUSY). Once that object is sealed, the round frees
 * it and the two before it with the rest: one free block. */
Test(spill, a_round_past_the_threshold_waits_rather_than_split_the_room)
{
    rh_store_t *s = open_store_for_rounds();
    rh_store_stats_t st;
    uint64_t below;
    char why[256];
    void *w;

    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(put(s, oid(i), 3 * MiB - RH_BLOCK_UNIT, 0), RH_OK,
                     "put %zu: %s", i, rh_last_error());
    }
    cr_assert_eq(rh_store_create(s, oid(4), 1 * MiB - RH_BLOCK_UNIT, &w),
                 RH_OK, "%s", rh_last_error());
    memset(w, 0x5a, 1 * MiB - RH_BLOCK_UNIT);
    rh_store_stats(s, &st);
    cr_assert_gt(st.largest_free, s->hdr->heap_size / 20);
    below = s->hdr->heap_size - 6 * MiB;
    cr_assert_eq(rh_spill_make_room(s, 0, below, 0, why, sizeof(why)),
                 RH_ERR_BUSY, "%s", why);
    rh_store_stats(s, &st);
    cr_expect_eq(st.spilled_objects, 0);
    cr_expect_lt(st.fragmentation, 0.001, "fragmentation %.3f",
                 st.fragmentation);
    /* sealed, it may go: the round frees it, its neighbour and the rest */
    cr_assert_eq(rh_store_seal(s, oid(4)), RH_OK);
    cr_assert_eq(rh_spill_make_room(s, 0, below, 0, why, sizeof(why)),
                 RH_OK, "%s", why);
    rh_store_stats(s, &st);
    cr_expect_eq(st.spilled_objects, 3, "%llu spilled, heap %llu",
                 (unsigned long long)st.spilled_objects,
                 (unsigned long long)s->hdr->heap_size);
    cr_expect_leq(st.used, below);
    cr_expect_lt(st.fragmentation, 0.001, "fragmentation %.3f",
                 st.fragmentation);
    for (size_t i = 0; i < 4; i++) {
        check(s, oid(i), 3 * MiB - RH_BLOCK_UNIT);
    }
    cr_assert_eq(rh_store_check(s), RH_OK, "%s", rh_last_error());
    rh_store_close(s, 1);
}

Test(spill, copies_are_evicted_before_anything_is_spilled)
{
    rh_store_t *s = open_store(8 * MiB, spill_base, 0);
    rh_store_stats_t st;
    size_t n = 0;

    rh_store_stats(s, &st);
    /* half copies, half primaries, under the threshold */
    while ((n + 2) * 256 * KiB < st.capacity * 7 / 10) {
        cr_assert_eq(put(s, oid(n), 256 * KiB, n % 2), RH_OK, "%s",
                     rh_last_error());
        n++;
    }
    /* a large object that needs the room of several copies */
    cr_assert_eq(put(s, oid(1000), 2 * MiB, 0), RH_OK, "%s",
                 rh_last_error());
    rh_store_stats(s, &st);
    cr_assert_gt(st.evictions, 0);
    cr_assert_eq(st.spills, 0, "no primary spilled while copies remained");
    for (size_t i = 0; i < n; i += 2) {
        check(s, oid(i), 256 * KiB);
    }
    /* an evicted copy is absent: its get fails and the caller pulls again */
    {
        int absent = 0;

        for (size_t i = 1; i < n; i += 2) {
            absent += !rh_store_contains(s, oid(i));
        }
        cr_assert_eq((uint64_t)absent, st.evictions);
    }
    cr_assert_eq(rh_store_check(s), RH_OK, "%s", rh_last_error());
    rh_store_close(s, 1);
}

Test(spill, without_spill_dir_copies_still_go_then_full_says_why)
{
    rh_store_t *s = open_store(4 * MiB, NULL, 0);
    rh_store_stats_t st;
    size_t n = 0;

    rh_store_stats(s, &st);
    while (put(s, oid(n), 256 * KiB, 1) == RH_OK && n < 64) {
        n++;
    }
    cr_assert_eq(n, 64, "copies alone never fill a store: they go");
    rh_store_stats(s, &st);
    cr_assert_gt(st.evictions, 0);
    n = 0;
    while (put(s, oid(100 + n), 256 * KiB, 0) == RH_OK) {
        n++;
    }
    cr_assert_eq(put(s, oid(999), 256 * KiB, 0), RH_ERR_STORE_FULL);
    cr_assert(strstr(rh_last_error(), "spilling is off") != NULL, "%s",
              rh_last_error());
    for (size_t i = 0; i < n; i++) {
        check(s, oid(100 + i), 256 * KiB);
    }
    rh_store_close(s, 1);
}

Test(spill, referenced_objects_are_not_spilled)
{
    rh_store_t *s = open_store(4 * MiB, spill_base, 0);
    const void *p;
    size_t len, n = 0;

    while (put(s, oid(n), 256 * KiB, 0) == RH_OK) {
        cr_assert_eq(rh_store_get(s, oid(n), &p, &len), RH_OK);
        n++;
        cr_assert_lt(n, 64);
    }
    cr_assert(strstr(rh_last_error(), "nothing can be spilled") != NULL,
              "%s", rh_last_error());
    /* their readers let go: now they can */
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(rh_store_release(s, oid(i)), RH_OK);
    }
    cr_assert_eq(put(s, oid(999), 256 * KiB, 0), RH_OK, "%s",
                 rh_last_error());
    for (size_t i = 0; i < n; i++) {
        check(s, oid(i), 256 * KiB);
    }
    rh_store_close(s, 1);
}

Test(spill, full_spill_dir_says_so_and_loses_nothing)
{
    rh_store_t *s = open_store(4 * MiB, spill_base, 2 * MiB);
    rh_status_t st;
    size_t n = 0;

    while ((st = put(s, oid(n), 256 * KiB, 0)) == RH_OK) {
        n++;
        cr_assert_lt(n, 64);
    }
    cr_assert_eq(st, RH_ERR_STORE_FULL);
    cr_assert(strstr(rh_last_error(), "spill directory") != NULL &&
              strstr(rh_last_error(), "is full") != NULL, "%s",
              rh_last_error());
    cr_assert_gt(n, 8, "the store and the spill files both filled: %zu", n);
    /* all there: read back (and let go) one by one, in memory or not */
    {
        size_t order[64];
        unsigned seed = 3;

        for (size_t i = 0; i < n; i++) {
            order[i] = i;
        }
        shuffle(order, n, &seed);
        for (size_t i = 0; i < n; i++) {
            check(s, oid(order[i]), 256 * KiB);
            cr_assert_eq(rh_store_delete(s, oid(order[i])), RH_OK);
        }
    }
    cr_assert_eq(rh_store_check(s), RH_OK, "%s", rh_last_error());
    rh_store_close(s, 1);
}

Test(spill, another_process_reads_a_spilled_object)
{
    rh_store_t *s = open_store(4 * MiB, spill_base, 0);
    rh_store_stats_t st;
    pid_t pid;
    int status;

    for (size_t i = 0; i < 40; i++) {
        cr_assert_eq(put(s, oid(i), 256 * KiB, 0), RH_OK, "%s",
                     rh_last_error());
    }
    rh_store_stats(s, &st);
    cr_assert_gt(st.spilled_objects, 0);
    pid = fork();
    if (pid == 0) {
        rh_store_params_t p;
        rh_store_t *t = NULL;
        const void *d;
        size_t len;
        int bad = 0;

        memset(&p, 0, sizeof(p));
        p.job_id = s->hdr->name + strlen("/rayhpc-");
        p.node = "n0";
        /* the name holds job and node: attach by the job part */
        {
            static char job[256];
            char *dash;

            snprintf(job, sizeof(job), "%s", p.job_id);
            dash = strrchr(job, '-');
            *dash = '\0';
            p.job_id = job;
        }
        p.attach_timeout_ms = 5000;
        if (rh_store_open(&p, &t) != RH_OK) {
            _exit(2);
        }
        for (size_t i = 0; i < 40; i++) {
            if (rh_store_get(t, oid(i), &d, &len) != RH_OK) {
                _exit(3);
            }
            for (size_t k = 0; k < len; k += 4096) {
                bad |= ((const uint8_t *)d)[k] != pattern_byte(oid(i), k);
            }
            rh_store_release(t, oid(i));
        }
        rh_store_close(t, 0);
        _exit(bad ? 4 : 0);
    }
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "child status %d", status);
    rh_store_stats(s, &st);
    cr_assert_gt(st.restores, 0);
    rh_store_close(s, 1);
}

Test(spill, close_removes_the_spill_directory)
{
    rh_store_t *s = open_store(4 * MiB, spill_base, 0);
    char dir[1024];
    struct stat st;

    for (size_t i = 0; i < 40; i++) {
        cr_assert_eq(put(s, oid(i), 256 * KiB, 0), RH_OK);
    }
    snprintf(dir, sizeof(dir), "%s", s->hdr->spill_dir);
    cr_assert_eq(stat(dir, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0700);
    rh_store_close(s, 1);
    cr_assert_neq(stat(dir, &st), 0, "%s is still there", dir);
}

Test(spill, a_leader_killed_while_spilling_leaves_nothing_after_next_start)
{
    int fds[2], status, removed = -1;
    char dir[1024] = "";
    pid_t pid;
    struct stat st;
    rh_store_t *s;

    cr_assert_eq(pipe(fds), 0);
    pid = fork();
    if (pid == 0) {
        rh_store_t *c = open_store(4 * MiB, spill_base, 0);
        size_t len = strlen(c->hdr->spill_dir) + 1;

        close(fds[0]);
        if (write(fds[1], c->hdr->spill_dir, len) != (ssize_t)len) {
            _exit(2);
        }
        /* spill for ever, until killed in the middle of it */
        for (uint64_t i = 0;; i++) {
            (void)put(c, oid(i), 256 * KiB, 0);
            (void)rh_store_delete(c, oid(i > 30 ? i - 30 : 0));
            if (i == 60) {
                (void)!write(fds[1], "k", 1);
            }
        }
    }
    close(fds[1]);
    cr_assert_gt(read(fds[0], dir, sizeof(dir)), 0);
    {
        char k;

        cr_assert_eq(read(fds[0], &k, 1), 1);
    }
    kill(pid, SIGKILL);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    close(fds[0]);
    cr_assert_eq(stat(dir, &st), 0, "the dead leader's %s", dir);
    /* the next start in the same place removes it */
    s = open_store(4 * MiB, spill_base, 0);
    cr_assert_neq(stat(dir, &st), 0, "%s survived the next start", dir);
    cr_assert_eq(rh_store_reap_spill(spill_base, &removed), RH_OK);
    cr_assert_eq(removed, 0, "the live store's own is kept");
    rh_store_close(s, 1);
    (void)rh_store_reap_stale(NULL, NULL);
}

Test(spill, a_spilled_object_is_read_from_its_file_without_a_restore)
{
    rh_store_t *s = open_store(4 * MiB, spill_base, 0);
    rh_store_stats_t st;
    void *buf = NULL;
    size_t len = 0, found = 0;

    for (size_t i = 0; i < 40; i++) {
        cr_assert_eq(put(s, oid(i), 256 * KiB, 0), RH_OK);
    }
    for (size_t i = 0; i < 40; i++) {
        rh_status_t status = rh_store_read_spilled(s, oid(i), &buf, &len);

        if (status == RH_ERR_BUSY) {
            continue;   /* in memory */
        }
        cr_assert_eq(status, RH_OK, "%s", rh_last_error());
        cr_assert_eq(len, 256 * KiB);
        for (size_t k = 0; k < len; k++) {
            cr_assert_eq(((uint8_t *)buf)[k], pattern_byte(oid(i), k));
        }
        free(buf);
        found++;
    }
    rh_store_stats(s, &st);
    cr_assert_gt(found, 0);
    cr_assert_eq(st.restores, 0, "read from the files, not brought back");
    cr_assert_eq(st.spilled_objects, found);
    cr_assert_eq(rh_store_read_spilled(s, oid(999), &buf, &len),
                 RH_ERR_INVALID_REF);
    rh_store_close(s, 1);
}

Test(spill, the_leaders_thread_spills_below_the_threshold_in_the_background)
{
    rh_store_t *s;
    rh_store_stats_t st;
    size_t n = 0;

    setenv("SPILL_TEST_BACKGROUND", "1", 1);
    s = open_store(8 * MiB, spill_base, 0);
    unsetenv("SPILL_TEST_BACKGROUND");
    rh_store_stats(s, &st);
    cr_assert_neq(s->hdr->spiller_pid, 0);
    /* past the threshold, never full: only the spiller makes room */
    while ((n + 1) * 256 * KiB < st.capacity * 95 / 100) {
        cr_assert_eq(put(s, oid(n), 256 * KiB, 0), RH_OK, "%s",
                     rh_last_error());
        n++;
    }
    /* it wakes up past the threshold and goes below it (a generous
     * deadline: only a hang fails) */
    for (int i = 0; i < 2000; i++) {
        rh_store_stats(s, &st);
        if (st.used <= s->hdr->spill_high && st.spills > 0) {
            break;
        }
        usleep(10000);
    }
    cr_assert_gt(st.spills, 0);
    cr_assert_leq(st.used, s->hdr->spill_high);
    for (size_t i = 0; i < n; i++) {
        check(s, oid(i), 256 * KiB);
    }
    cr_assert_eq(rh_store_check(s), RH_OK, "%s", rh_last_error());
    rh_store_close(s, 1);
}
