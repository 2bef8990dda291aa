/* The node's shared-memory object store (src/plasma/). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "plasma/store.h"
#include "plasma/store_internal.h"

#define KiB (1024ull)
#define MiB (1024ull * KiB)
#define GiB (1024ull * MiB)

/* ---- helpers ------------------------------------------------------------- */

/* A job id no other test (or test run) uses. */
static const char *unique_job(char *buf, size_t len)
{
    static int counter;

    snprintf(buf, len, "test%d-%d", (int)getpid(), counter++);
    return buf;
}

static rh_store_params_t leader_params(const char *job, uint64_t size)
{
    rh_store_params_t p;

    memset(&p, 0, sizeof(p));
    p.job_id = job;
    p.node = "n0";
    p.create = 1;
    p.size = size;
    return p;
}

static rh_store_params_t attach_params(const char *job)
{
    rh_store_params_t p;

    memset(&p, 0, sizeof(p));
    p.job_id = job;
    p.node = "n0";
    p.attach_timeout_ms = 5000;
    return p;
}

static rh_store_t *open_leader(char *job, size_t joblen, uint64_t size)
{
    rh_store_params_t p = leader_params(unique_job(job, joblen), size);
    rh_store_t *s = NULL;
    rh_status_t st = rh_store_open(&p, &s);

    cr_assert_eq(st, RH_OK, "open: %s", rh_last_error());
    return s;
}

/* The file behind the segment: /dev/shm/<name>, or on a hugetlbfs mount. */
static const char *segment_path(rh_store_t *s)
{
    return s->path;
}

/* The bytes of an object are a function of its id, so that any reader can
 * tell whether it sees the object it asked for, whole. */
static uint8_t pattern_byte(rh_object_id_t id, size_t i)
{
    return (uint8_t)(id.lo * 31 + (id.hi >> 32) * 17 + i * 7 + (i >> 12));
}

static void fill(rh_object_id_t id, void *ptr, size_t size)
{
    uint8_t *p = ptr;

    for (size_t i = 0; i < size; i++) {
        p[i] = pattern_byte(id, i);
    }
}

/* Checks every byte up to 64 KiB, then every 61st. */
static int matches(rh_object_id_t id, const void *ptr, size_t size)
{
    const uint8_t *p = ptr;

    for (size_t i = 0; i < size; i += i < 65536 ? 1 : 61) {
        if (p[i] != pattern_byte(id, i)) {
            return 0;
        }
    }
    return size == 0 || p[size - 1] == pattern_byte(id, size - 1);
}

/* Big objects: a word pattern, fast enough for 256 MiB. */
static void fill_words(uint64_t seed, void *ptr, size_t size)
{
    uint64_t *w = ptr;
    uint8_t *b = ptr;

    for (size_t i = 0; i < size / 8; i++) {
        w[i] = seed ^ (i * 0x9e3779b97f4a7c15ull);
    }
    for (size_t i = size / 8 * 8; i < size; i++) {
        b[i] = (uint8_t)(seed + i);
    }
}

static int words_match(uint64_t seed, const void *ptr, size_t size)
{
    const uint64_t *w = ptr;
    const uint8_t *b = ptr;

    for (size_t i = 0; i < size / 8; i++) {
        if (w[i] != (seed ^ (i * 0x9e3779b97f4a7c15ull))) {
            return 0;
        }
    }
    for (size_t i = size / 8 * 8; i < size; i++) {
        if (b[i] != (uint8_t)(seed + i)) {
            return 0;
        }
    }
    return 1;
}

static void put_object(rh_store_t *s, rh_object_id_t id, size_t size)
{
    void *ptr;

    cr_assert_eq(rh_store_create(s, id, size, &ptr), RH_OK, "create: %s",
                 rh_last_error());
    fill(id, ptr, size);
    cr_assert_eq(rh_store_seal(s, id), RH_OK, "seal: %s", rh_last_error());
}

static void expect_empty_and_consistent(rh_store_t *s)
{
    rh_store_stats_t st;

    cr_assert_eq(rh_store_check(s), RH_OK, "check: %s", rh_last_error());
    cr_assert_eq(rh_store_stats(s, &st), RH_OK);
    cr_expect_eq(st.objects, 0);
    cr_expect_eq(st.used, 0);
    cr_expect_eq(st.object_bytes, 0);
    cr_expect_eq(st.free, st.capacity);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One byte through a pipe, to step two processes in turn. */
static void signal_fd(int fd)
{
    char c = 'x';

    cr_assert_eq(write(fd, &c, 1), 1);
}

static int wait_fd(int fd)
{
    char c;

    return read(fd, &c, 1) == 1 ? 0 : -1;
}

static int child_status(pid_t pid)
{
    int status = 0;

    if (waitpid(pid, &status, 0) != pid) {
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Device and inode of the file mapped at addr, from /proc/self/maps. */
static int mapping_inode(const void *addr, unsigned long long *ino,
                         char *path, size_t pathlen)
{
    char line[1024], p[512];
    unsigned long lo, hi;
    unsigned long long inode;
    FILE *f = fopen("/proc/self/maps", "r");
    int found = -1;

    if (f == NULL) {
        return -1;
    }
    while (found < 0 && fgets(line, sizeof(line), f) != NULL) {
        p[0] = '\0';
        if (sscanf(line, "%lx-%lx %*s %*s %*s %llu %511s", &lo, &hi, &inode,
                   p) >= 3 &&
            (uintptr_t)addr >= lo && (uintptr_t)addr < hi) {
            *ino = inode;
            snprintf(path, pathlen, "%s", p);
            found = 0;
        }
    }
    fclose(f);
    return found;
}

/* ---- ids and names ------------------------------------------------------- */

Test(store, object_id_packs_owner_counter_and_index)
{
    rh_object_id_t id = rh_object_id_make(0xdeadbeefu, 0x0123456789abcdefull,
                                          0xfeedf00du);
    char buf[RH_OBJECT_ID_STRLEN];

    cr_expect_eq(id.hi, 0xdeadbeef01234567ull);
    cr_expect_eq(id.lo, 0x89abcdeffeedf00dull);
    cr_expect_eq(rh_object_id_owner(id), 0xdeadbeefu);
    cr_expect_eq(rh_object_id_counter(id), 0x0123456789abcdefull);
    cr_expect_eq(rh_object_id_index(id), 0xfeedf00du);
    cr_expect(rh_object_id_equal(id, id));
    cr_expect(!rh_object_id_equal(id, rh_object_id_make(1, 2, 3)));
    cr_expect_str_eq(rh_object_id_str(rh_object_id_make(3, 17, 0), buf),
                     "3/17/0");
}

Test(store, segment_name_is_per_job_and_node_and_sanitized)
{
    char name[256];

    cr_assert_eq(rh_store_segment_name("1234.5", "node-07", name,
                                       sizeof(name)), RH_OK);
    cr_expect_str_eq(name, "/rayhpc-1234.5-node-07");
    cr_assert_eq(rh_store_segment_name("a/b c", "../x\ny", name,
                                       sizeof(name)), RH_OK);
    cr_expect_str_eq(name, "/rayhpc-a_b_c-.._x_y");
    cr_expect_eq(rh_store_segment_name("", "n", name, sizeof(name)),
                 RH_ERR_INVALID_PARAM);
    cr_expect_eq(rh_store_segment_name("j", NULL, name, sizeof(name)),
                 RH_ERR_INVALID_PARAM);
}

/* ---- the object life cycle ----------------------------------------------- */

Test(store, round_trip_is_byte_exact_from_0_bytes_to_256_mib)
{
    static const size_t sizes[] = { 0, 1, 63, 64, 4 * KiB, 1 * MiB,
                                    256 * MiB };
    char job[64];
    rh_store_t *s = open_leader(job, sizeof(job), 1 * GiB);

    for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        rh_object_id_t id = rh_object_id_make(1, i, 0);
        const void *got;
        size_t got_size = 12345;
        void *ptr;

        cr_assert_eq(rh_store_create(s, id, sizes[i], &ptr), RH_OK,
                     "create %zu: %s", sizes[i], rh_last_error());
        cr_assert_not_null(ptr);
        cr_expect_eq((uintptr_t)ptr % 64, 0, "payload of %zu bytes is not "
                     "64-byte aligned", sizes[i]);
        fill_words(i * 1000003u, ptr, sizes[i]);
        cr_assert_eq(rh_store_seal(s, id), RH_OK);
        cr_assert_eq(rh_store_get(s, id, &got, &got_size), RH_OK, "get: %s",
                     rh_last_error());
        cr_expect_eq(got, ptr, "get must return the bytes in place");
        cr_expect_eq(got_size, sizes[i]);
        cr_expect(words_match(i * 1000003u, got, sizes[i]),
                  "object of %zu bytes came back different", sizes[i]);
        cr_assert_eq(rh_store_release(s, id), RH_OK);
        cr_assert_eq(rh_store_delete(s, id), RH_OK);
        cr_expect(!rh_store_contains(s, id));
    }
    expect_empty_and_consistent(s);
    rh_store_close(s, 1);
}

Test(store, payloads_are_64_byte_aligned_in_every_size_class)
{
    char job[64];
    rh_store_t *s = open_leader(job, sizeof(job), 64 * MiB);

    for (size_t size = 1; size < 300 * KiB; size = size * 3 / 2 + 1) {
        rh_object_id_t id = rh_object_id_make(2, size, 0);
        void *ptr;

        cr_assert_eq(rh_store_create(s, id, size, &ptr), RH_OK);
        cr_expect_eq((uintptr_t)ptr % 64, 0, "size %zu", size);
        cr_expect_eq(rh_store_offset(s, ptr) % 64, 0);
        fill(id, ptr, size);
        cr_assert_eq(rh_store_seal(s, id), RH_OK);
    }
    for (size_t size = 1; size < 300 * KiB; size = size * 3 / 2 + 1) {
        rh_object_id_t id = rh_object_id_make(2, size, 0);
        const void *got;
        size_t n;

        cr_assert_eq(rh_store_get(s, id, &got, &n), RH_OK);
        cr_expect(matches(id, got, n), "objects overlap: size %zu", size);
        rh_store_release(s, id);
        cr_assert_eq(rh_store_delete(s, id), RH_OK);
    }
    expect_empty_and_consistent(s);
    rh_store_close(s, 1);
}

/* Spilling writes them with O_DIRECT straight from the store, which needs
 * 4 KiB aligned memory. */
Test(store, payloads_of_blocks_are_4_kib_aligned)
{
    char job[64];
    rh_store_t *s = open_leader(job, sizeof(job), 64 * MiB);
    size_t sizes[] = { 65 * KiB, 100 * KiB + 3, 1 * MiB, 1 * MiB - 100,
                       3 * MiB + 4095, 4 * MiB };

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        rh_object_id_t id = rh_object_id_make(3, i, 0);
        void *ptr;

        cr_assert_eq(rh_store_create(s, id, sizes[i], &ptr), RH_OK);
        cr_expect_eq((uintptr_t)ptr % 4096, 0, "size %zu", sizes[i]);
        fill(id, ptr, sizes[i]);
        cr_assert_eq(rh_store_seal(s, id), RH_OK);
        if (i % 2 == 1) {   /* holes between the others */
            cr_assert_eq(rh_store_delete(s, id), RH_OK);
        }
    }
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i += 2) {
        rh_object_id_t id = rh_object_id_make(3, i, 0);
        const void *got;
        size_t n;

        cr_assert_eq(rh_store_get(s, id, &got, &n), RH_OK);
        cr_expect(matches(id, got, n), "objects overlap: size %zu", sizes[i]);
        rh_store_release(s, id);
        cr_assert_eq(rh_store_delete(s, id), RH_OK);
    }
    expect_empty_and_consistent(s);
    rh_store_close(s, 1);
}

Test(store, get_of_unsealed_object_is_busy_until_sealed)
{
    char job[64];
    rh_store_t *s = open_leader(job, sizeof(job), 16 * MiB);
    rh_object_id_t id = rh_object_id_make(0, 1, 0);
    const void *got;
    size_t n;
    void *ptr;

    cr_assert_eq(rh_store_create(s, id, 100, &ptr), RH_OK);
    cr_expect_eq(rh_store_get(s, id, &got, &n), RH_ERR_BUSY);
    cr_expect(strstr(rh_last_error(), "not sealed") != NULL, "%s",
              rh_last_error());
    cr_expect(!rh_store_contains(s, id));
    cr_expect(rh_store_present(s, id), "being written is present");
    cr_assert_eq(rh_store_seal(s, id), RH_OK);
    cr_expect_eq(rh_store_seal(s, id), RH_ERR_BUSY, "sealing twice");
    cr_expect(rh_store_contains(s, id));
    cr_expect(rh_store_present(s, id));
    cr_expect_eq(rh_store_get(s, id, &got, &n), RH_OK);
    rh_store_release(s, id);
    rh_store_delete(s, id);
    cr_expect(!rh_store_present(s, id), "a deleted object is gone");
    rh_store_close(s, 1);
}

Test(store, get_of_absent_id_is_invalid_ref_naming_the_object)
{
    char job[64];
    rh_store_t *s = open_leader(job, sizeof(job), 16 * MiB);
    const void *got;
    size_t n;

    cr_expect_eq(rh_store_get(s, rh_object_id_make(7, 42, 3), &got, &n),
                 RH_ERR_INVALID_REF);
    cr_expect(strstr(rh_last_error(), "7/42/3") != NULL, "%s",
              rh_last_error());
    cr_expect_eq(rh_store_release(s, rh_object_id_make(7, 42, 3)),
                 RH_ERR_INVALID_REF);
    cr_expect_eq(rh_store_delete(s, rh_object_id_make(7, 42, 3)),
                 RH_ERR_INVALID_REF);
    cr_expect_eq(rh_store_seal(s, rh_object_id_make(7, 42, 3)),
                 RH_ERR_INVALID_REF);
    rh_store_close(s, 1);
}

Test(store, creating_an_existing_id_is_busy_and_changes_nothing)
{
    char job[64];
    rh_store_t *s = open_leader(job, sizeof(job), 16 * MiB);
    rh_object_id_t id = rh_object_id_make(0, 9, 1);
    rh_store_stats_t before, after;
    const void *got;
    void *ptr, *ptr2;
    size_t n;

    cr_assert_eq(rh_store_create(s, id, 1000, &ptr), RH_OK);
    cr_expect_eq(rh_store_create(s, id, 1000, &ptr2), RH_ERR_BUSY);
    cr_expect(strstr(rh_last_error(), "being created") != NULL, "%s",
              rh_last_error());
    fill(id, ptr, 1000);
    rh_store_seal(s, id);
    rh_store_stats(s, &before);
    cr_expect_eq(rh_store_create(s, id, 50, &ptr2), RH_ERR_BUSY);
    cr_expect(strstr(rh_last_error(), "already exists") != NULL, "%s",
              rh_last_error());
    rh_store_stats(s, &after);
    cr_expect_eq(after.used, before.used);
    cr_expect_eq(rh_store_get(s, id, &got, &n), RH_OK);
    cr_expect_eq(n, 1000);
    cr_expect(matches(id, got, n));
    rh_store_release(s, id);
    /* once deleted, the id may be used again */
    cr_assert_eq(rh_store_delete(s, id), RH_OK);
    cr_expect_eq(rh_store_create(s, id, 10, &ptr2), RH_OK);
    rh_store_delete(s, id);
    expect_empty_and_consistent(s);
    rh_store_close(s, 1);
}

Test(store, oversize_object_is_too_large_naming_both_sizes)
{
    char job[64], want_obj[32], want_store[32];
    rh_store_t *s = open_leader(job, sizeof(job), 32 * MiB);
    void *ptr;

    cr_expect_eq(rh_store_create(s, rh_object_id_make(0, 1, 0), 64 * MiB,
                                 &ptr), RH_ERR_TOO_LARGE);
    snprintf(want_obj, sizeof(want_obj), "%llu", 64 * MiB);
    snprintf(want_store, sizeof(want_store), "%zu", rh_store_length(s));
    cr_expect(strstr(rh_last_error(), want_obj) != NULL, "%s",
              rh_last_error());
    cr_expect(strstr(rh_last_error(), want_store) != NULL, "%s",
              rh_last_error());
    cr_expect_eq(rh_store_create(s, rh_object_id_make(0, 2, 0), SIZE_MAX,
                                 &ptr), RH_ERR_TOO_LARGE);
    /* nothing changed: an object that fits still fits */
    cr_expect_eq(rh_store_create(s, rh_object_id_make(0, 1, 0), 16 * MiB,
                                 &ptr), RH_OK);
    rh_store_delete(s, rh_object_id_make(0, 1, 0));
    expect_empty_and_consistent(s);
    rh_store_close(s, 1);
}

/* Fills the store with ever smaller objects until not even the smallest
 * fits, then frees everything: all memory must come back as one block. */
Test(store, full_store_is_store_full_and_whole_again_after_freeing_all)
{
    static const size_t sizes[] = { 3 * MiB, 1 * MiB, 300 * KiB, 40 * KiB,
                                    5 * KiB, 1 * KiB };
    char job[64], want_size[32], want_free[32];
    rh_store_params_t p = leader_params(unique_job(job, sizeof(job)),
                                        64 * MiB);
    rh_store_stats_t st;
    rh_store_t *s;
    uint64_t n = 0;
    int first_full = 1;
    void *ptr;

    p.table_capacity = 1 << 16;
    cr_assert_eq(rh_store_open(&p, &s), RH_OK, "%s", rh_last_error());
    for (unsigned k = 0; k < sizeof(sizes) / sizeof(sizes[0]); ) {
        rh_object_id_t id = rh_object_id_make(5, n, 0);
        rh_status_t status = rh_store_create(s, id, sizes[k], &ptr);

        if (status == RH_ERR_STORE_FULL) {
            if (first_full) {
                first_full = 0;
                rh_store_stats(s, &st);
                snprintf(want_size, sizeof(want_size), "%zu", sizes[k]);
                snprintf(want_free, sizeof(want_free), "%llu",
                         (unsigned long long)st.free);
                cr_expect(strstr(rh_last_error(), want_size) != NULL, "%s",
                          rh_last_error());
                cr_expect(strstr(rh_last_error(), want_free) != NULL,
                          "free bytes %s missing: %s", want_free,
                          rh_last_error());
            }
            k++;
            continue;
        }
        cr_assert_eq(status, RH_OK, "%s", rh_last_error());
        fill(id, ptr, sizes[k] < 4096 ? sizes[k] : 4096);
        cr_assert_eq(rh_store_seal(s, id), RH_OK);
        n++;
    }
    rh_store_stats(s, &st);
    cr_expect_gt(st.used, st.capacity / 100 * 97, "store full at %llu of "
                 "%llu bytes", (unsigned long long)st.used,
                 (unsigned long long)st.capacity);
    cr_assert_eq(rh_store_check(s), RH_OK, "%s", rh_last_error());
    /* still fully usable: every object can be read */
    for (uint64_t i = 0; i < n; i++) {
        rh_object_id_t id = rh_object_id_make(5, i, 0);
        const void *got;
        size_t size;

        cr_assert_eq(rh_store_get(s, id, &got, &size), RH_OK);
        cr_expect(matches(id, got, size < 4096 ? size : 4096));
        rh_store_release(s, id);
    }
    for (uint64_t i = 0; i < n; i++) {
        cr_assert_eq(rh_store_delete(s, rh_object_id_make(5, i, 0)), RH_OK);
    }
    expect_empty_and_consistent(s);
    rh_store_stats(s, &st);
    cr_expect_eq(st.largest_free, st.capacity - 64, "free blocks did not "
                 "merge back into one");
    cr_expect_eq(rh_store_create(s, rh_object_id_make(6, 0, 0),
                                 st.capacity / 10 * 9, &ptr), RH_OK,
                 "90%% of the store after freeing all: %s", rh_last_error());
    rh_store_delete(s, rh_object_id_make(6, 0, 0));
    rh_store_close(s, 1);
}

Test(store, full_object_table_is_store_full_and_churn_never_clogs_it)
{
    char job[64];
    rh_store_params_t p = leader_params(unique_job(job, sizeof(job)),
                                        16 * MiB);
    rh_store_t *s;
    unsigned created = 0;
    void *ptr;

    p.table_capacity = 16;
    cr_assert_eq(rh_store_open(&p, &s), RH_OK, "%s", rh_last_error());
    while (rh_store_create(s, rh_object_id_make(1, created, 0), 8, &ptr) ==
           RH_OK) {
        created++;
    }
    cr_expect_eq(rh_last_error()[0] != '\0', 1);
    cr_expect(strstr(rh_last_error(), "table is full") != NULL, "%s",
              rh_last_error());
    cr_expect_eq(created, 14, "7/8 of 16 slots");
    /* churn: many more ids than slots go through the table */
    for (unsigned i = 0; i < 5000; i++) {
        rh_object_id_t old = rh_object_id_make(1, i, 0);
        rh_object_id_t id = rh_object_id_make(1, i + created, 0);

        cr_assert_eq(rh_store_delete(s, old), RH_OK, "%u: %s", i,
                     rh_last_error());
        cr_assert_eq(rh_store_create(s, id, 8, &ptr), RH_OK, "%u: %s", i,
                     rh_last_error());
        fill(id, ptr, 8);
        cr_assert_eq(rh_store_seal(s, id), RH_OK);
    }
    for (unsigned i = 5000; i < 5000 + created; i++) {
        const void *got;
        size_t n;
        rh_object_id_t id = rh_object_id_make(1, i, 0);

        cr_assert_eq(rh_store_get(s, id, &got, &n), RH_OK, "%u", i);
        cr_expect(matches(id, got, n));
        rh_store_release(s, id);
        rh_store_delete(s, id);
    }
    cr_expect(!rh_store_contains(s, rh_object_id_make(1, 99999, 0)));
    expect_empty_and_consistent(s);
    rh_store_close(s, 1);
}

Test(store, delete_with_references_keeps_memory_until_last_release)
{
    char job[64];
    rh_store_t *s = open_leader(job, sizeof(job), 16 * MiB);
    rh_object_id_t id = rh_object_id_make(3, 3, 3);
    rh_store_stats_t st;
    const void *a, *b, *c;
    size_t n;

    put_object(s, id, 200 * KiB);
    cr_assert_eq(rh_store_get(s, id, &a, &n), RH_OK);
    cr_assert_eq(rh_store_get(s, id, &b, &n), RH_OK);
    cr_assert_eq(rh_store_delete(s, id), RH_OK);
    /* gone for new readers ... */
    cr_expect(!rh_store_contains(s, id));
    cr_expect_eq(rh_store_get(s, id, &c, &n), RH_ERR_INVALID_REF);
    cr_expect_eq(rh_store_delete(s, id), RH_OK, "deleting again is fine");
    cr_expect_eq(rh_store_create(s, id, 10, (void **)&c), RH_ERR_BUSY);
    /* ... but held for the old ones */
    rh_store_stats(s, &st);
    cr_expect_eq(st.objects, 1);
    cr_expect_geq(st.used, 200 * KiB);
    cr_expect(matches(id, a, 200 * KiB));
    cr_assert_eq(rh_store_release(s, id), RH_OK);
    rh_store_stats(s, &st);
    cr_expect_eq(st.objects, 1);
    cr_expect(matches(id, b, 200 * KiB));
    cr_assert_eq(rh_store_release(s, id), RH_OK);
    expect_empty_and_consistent(s);
    cr_expect_eq(rh_store_release(s, id), RH_ERR_INVALID_REF);
    rh_store_close(s, 1);
}

/* ---- references of processes that die ------------------------------------- */

/* A child attaches, takes `gets` references spread over `nobj` objects
 * (object k gets k % 3 + 1 of them, some dropped again so that its record
 * deletes and moves slots), says so, and waits to be killed. */
static pid_t spawn_holder(const char *job, int nobj, int ready_fd)
{
    pid_t pid = fork();

    if (pid == 0) {
        rh_store_params_t p = attach_params(job);
        rh_store_t *c;

        if (rh_store_open(&p, &c) != RH_OK) {
            _exit(10);
        }
        for (int k = 0; k < nobj; k++) {
            rh_object_id_t id = rh_object_id_make(7, (uint64_t)k + 1, 0);
            const void *ptr;
            size_t n;

            for (int j = 0; j < k % 3 + 2; j++) {
                if (rh_store_get(c, id, &ptr, &n) != RH_OK) {
                    _exit(11);
                }
            }
            if (rh_store_release(c, id) != RH_OK) {   /* one back */
                _exit(12);
            }
        }
        if (write(ready_fd, "r", 1) != 1) {
            _exit(13);
        }
        for (;;) {
            pause();
        }
    }
    return pid;
}

Test(store, references_of_a_killed_process_are_given_back_by_a_survivor)
{
    char job[64];
    rh_store_t *s = open_leader(job, sizeof(job), 64 * MiB);
    rh_store_stats_t st;
    uint64_t refs = 0, want = 0;
    int ready[2], procs = -1;
    const int nobj = 500;
    pid_t pid;

    for (int k = 0; k < nobj; k++) {
        put_object(s, rh_object_id_make(7, (uint64_t)k + 1, 0), 100 + k);
        want += (uint64_t)(k % 3 + 1);
    }
    cr_assert_eq(pipe(ready), 0);
    pid = spawn_holder(job, nobj, ready[1]);
    cr_assert_eq(wait_fd(ready[0]), 0);
    /* a live holder keeps what it holds */
    cr_assert_eq(rh_store_reap_holders(s, &procs, &refs), RH_OK);
    cr_expect_eq(procs, 0);
    kill(pid, SIGKILL);
    cr_expect_eq(child_status(pid), 128 + SIGKILL);
    for (int k = 0; k < nobj; k++) {
        cr_assert_eq(rh_store_delete(s, rh_object_id_make(7, (uint64_t)k + 1,
                                                          0)), RH_OK);
    }
    rh_store_stats(s, &st);
    cr_expect_eq(st.objects, (uint64_t)nobj, "the dead child's references "
                 "still pin every object");
    cr_assert_eq(rh_store_reap_holders(s, &procs, &refs), RH_OK);
    cr_expect_eq(procs, 1);
    cr_expect_eq(refs, want, "gave back %llu of %llu references",
                 (unsigned long long)refs, (unsigned long long)want);
    expect_empty_and_consistent(s);
    /* once only */
    cr_assert_eq(rh_store_reap_holders(s, &procs, &refs), RH_OK);
    cr_expect_eq(procs, 0);
    close(ready[0]);
    close(ready[1]);
    rh_store_close(s, 1);
}

Test(store, a_dead_processs_record_is_taken_by_the_next_one_to_attach)
{
    char job[64];
    rh_store_params_t p = leader_params(unique_job(job, sizeof(job)),
                                        16 * MiB);
    rh_store_params_t a = attach_params(job);
    rh_store_t *s, *c;
    rh_store_stats_t st;
    int ready[2];
    pid_t pid;

    p.procs = 2;   /* the leader's record and one more */
    cr_assert_eq(rh_store_open(&p, &s), RH_OK, "%s", rh_last_error());
    put_object(s, rh_object_id_make(7, 1, 0), 4096);
    cr_assert_eq(pipe(ready), 0);
    pid = spawn_holder(job, 1, ready[1]);
    cr_assert_eq(wait_fd(ready[0]), 0);
    cr_expect_eq(rh_store_open(&a, &c), RH_ERR_BUSY, "no record is free "
                 "while the child lives");
    kill(pid, SIGKILL);
    cr_expect_eq(child_status(pid), 128 + SIGKILL);
    cr_assert_eq(rh_store_open(&a, &c), RH_OK, "%s", rh_last_error());
    cr_assert_eq(rh_store_delete(s, rh_object_id_make(7, 1, 0)), RH_OK);
    rh_store_stats(s, &st);
    cr_expect_eq(st.objects, 0, "attaching gave the dead child's "
                 "reference back");
    rh_store_close(c, 0);
    close(ready[0]);
    close(ready[1]);
    rh_store_close(s, 1);
}

Test(store, objects_a_killed_process_was_writing_are_removed_by_a_survivor)
{
    char job[64];
    rh_store_t *s = open_leader(job, sizeof(job), 16 * MiB);
    rh_object_id_t id = rh_object_id_make(7, 5, 0);
    int ready[2], procs = 0;
    pid_t pid;

    cr_assert_eq(pipe(ready), 0);
    pid = fork();
    if (pid == 0) {
        rh_store_params_t p = attach_params(job);
        rh_store_t *c;
        void *ptr;

        if (rh_store_open(&p, &c) != RH_OK ||
            rh_store_create(c, id, 70000, &ptr) != RH_OK ||
            write(ready[1], "r", 1) != 1) {
            _exit(10);
        }
        for (;;) {
            pause();
        }
    }
    cr_assert_eq(wait_fd(ready[0]), 0);
    kill(pid, SIGKILL);
    cr_expect_eq(child_status(pid), 128 + SIGKILL);
    cr_expect_eq(rh_store_present(s, id), 1, "being written when it died");
    cr_assert_eq(rh_store_reap_holders(s, &procs, NULL), RH_OK);
    cr_expect_eq(procs, 1);
    cr_expect_eq(rh_store_present(s, id), 0);
    expect_empty_and_consistent(s);
    close(ready[0]);
    close(ready[1]);
    rh_store_close(s, 1);
}

/* A task's rerun meets its id taken: a sealed object of the right size is
 * taken over, whoever sealed it (a dead lost run, a live rank's pull of a
 * copy, another run), a copy becoming the node's own; nothing unsealed,
 * spilled or deleted is. */
Test(store, only_a_sealed_object_of_the_size_is_adopted)
{
    char job[64];
    rh_store_t *s = open_leader(job, sizeof(job), 16 * MiB);
    rh_object_id_t left = rh_object_id_make(7, 21, 1);
    rh_object_id_t writing = rh_object_id_make(7, 22, 1);
    rh_object_id_t mine = rh_object_id_make(7, 23, 1);
    rh_object_id_t pulled = rh_object_id_make(7, 25, 1);
    rh_store_entry_t *e;
    uint64_t ctl;
    void *ptr;
    pid_t pid = fork();

    if (pid == 0) {
        rh_store_params_t p = attach_params(job);
        rh_store_t *c;

        if (rh_store_open(&p, &c) != RH_OK ||
            rh_store_create(c, left, 70000, &ptr) != RH_OK) {
            _exit(10);
        }
        fill(left, ptr, 70000);
        if (rh_store_seal(c, left) != RH_OK ||
            rh_store_create(c, writing, 1000, &ptr) != RH_OK) {
            _exit(11);
        }
        _exit(0);   /* without closing: as a killed rank */
    }
    cr_assert_eq(child_status(pid), 0);
    put_object(s, mine, 1000);
    cr_expect_eq(rh_store_adopt(s, left, 69999, &ptr), RH_ERR_BUSY);
    cr_expect(strstr(rh_last_error(), "its size differs") != NULL, "%s",
              rh_last_error());
    cr_expect_eq(rh_store_adopt(s, writing, 1000, &ptr), RH_ERR_BUSY);
    cr_expect(strstr(rh_last_error(), "being written") != NULL, "%s",
              rh_last_error());
    cr_expect_eq(rh_store_adopt(s, mine, 1000, &ptr), RH_OK, "%s",
                 rh_last_error());
    cr_expect_eq(rh_store_adopt(s, rh_object_id_make(7, 24, 1), 10, &ptr),
                 RH_ERR_INVALID_REF);
    cr_assert_eq(rh_store_create_copy(s, pulled, 500, &ptr), RH_OK);
    cr_expect_eq(rh_store_adopt(s, pulled, 500, &ptr), RH_ERR_BUSY);
    cr_expect(strstr(rh_last_error(), "being written") != NULL, "%s",
              rh_last_error());
    cr_assert_eq(rh_store_seal(s, pulled), RH_OK);
    e = rh_table_find(s, pulled, &ctl);
    cr_assert_not_null(e);
    cr_expect_neq(e->flags & RH_ENTRY_COPY, 0);
    cr_expect_eq(rh_store_adopt(s, pulled, 500, &ptr), RH_OK, "%s",
                 rh_last_error());
    cr_expect_eq(e->flags & RH_ENTRY_COPY, 0, "still a spare copy");
    cr_assert_eq(rh_store_delete(s, pulled), RH_OK);
    cr_assert_eq(rh_store_adopt(s, left, 70000, &ptr), RH_OK, "%s",
                 rh_last_error());
    for (size_t i = 0; i < 70000; i++) {
        if (((uint8_t *)ptr)[i] != pattern_byte(left, i)) {
            cr_assert_fail("byte %zu of the adopted object differs", i);
        }
    }
    cr_expect(rh_store_contains(s, left));
    cr_assert_eq(rh_store_reap_holders(s, NULL, NULL), RH_OK);
    cr_expect_eq(rh_store_present(s, writing), 0);
    cr_assert_eq(rh_store_delete(s, left), RH_OK);
    cr_assert_eq(rh_store_delete(s, mine), RH_OK);
    expect_empty_and_consistent(s);
    rh_store_close(s, 1);
}

/* /proc/<pid>/stat as the kernel writes it: a command name with spaces
 * and parentheses, the state, then the flags (field 9) and the start time
 * (field 22). */
static void stat_line(char *buf, size_t len, char state, unsigned flags,
                      unsigned long long start)
{
    snprintf(buf, len, "4242 (a (b) c) %c 1 4242 4242 0 -1 %u 120 0 0 0 3 "
             "1 0 0 20 0 9 0 %llu 1000000 200 18446744073709551615",
             state, flags, start);
}

/* A process in its exit (PF_EXITING, 0x4, on its main thread) writes
 * nothing more: gone for the store, as a zombie is; a running or sleeping
 * one is not, unless its pid now names another process. */
Test(store, a_process_in_its_exit_reads_as_gone)
{
    rh_proc_stat_t ps;
    char line[256];

    stat_line(line, sizeof(line), 'R', 0x400100, 777);
    cr_assert_eq(rh_proc_stat_parse(line, &ps), 0);
    cr_expect_eq(ps.state, 'R');
    cr_expect_eq(ps.flags, 0x400100u);
    cr_expect_eq(ps.start, 777);
    cr_expect_not(rh_proc_stat_gone(&ps, 777));
    cr_expect_not(rh_proc_stat_gone(&ps, 0));
    cr_expect(rh_proc_stat_gone(&ps, 778), "a pid reused since");
    stat_line(line, sizeof(line), 'S', 0x400100, 777);
    cr_assert_eq(rh_proc_stat_parse(line, &ps), 0);
    cr_expect_not(rh_proc_stat_gone(&ps, 777));
    stat_line(line, sizeof(line), 'D', 0x400104, 777);
    cr_assert_eq(rh_proc_stat_parse(line, &ps), 0);
    cr_expect(rh_proc_stat_gone(&ps, 777), "in its exit, not gone");
    stat_line(line, sizeof(line), 'Z', 0x40040c, 777);
    cr_assert_eq(rh_proc_stat_parse(line, &ps), 0);
    cr_expect(rh_proc_stat_gone(&ps, 777));
    cr_expect_eq(rh_proc_stat_parse("4242 (cut short) R 1 2", &ps), -1);
    cr_expect_eq(rh_proc_stat_parse("no name", &ps), -1);
}

/* A child attaches, takes `refs` references to id_read, seals id_sealed
 * and leaves id_writing unsealed, says so, and waits to be killed. */
static pid_t spawn_writer(const char *job, rh_object_id_t id_read, int refs,
                          rh_object_id_t id_sealed,
                          rh_object_id_t id_writing, int ready_fd)
{
    pid_t pid = fork();

    if (pid == 0) {
        rh_store_params_t p = attach_params(job);
        rh_store_t *c;
        const void *cptr;
        void *ptr;
        size_t n;

        if (rh_store_open(&p, &c) != RH_OK) {
            _exit(10);
        }
        for (int i = 0; i < refs; i++) {
            if (rh_store_get(c, id_read, &cptr, &n) != RH_OK) {
                _exit(11);
            }
        }
        if (rh_store_create(c, id_sealed, 5000, &ptr) != RH_OK) {
            _exit(12);
        }
        fill(id_sealed, ptr, 5000);
        if (rh_store_seal(c, id_sealed) != RH_OK ||
            rh_store_create(c, id_writing, 3000, &ptr) != RH_OK ||
            write(ready_fd, "r", 1) != 1) {
            _exit(13);
        }
        for (;;) {
            pause();
        }
    }
    return pid;
}

/* The runtime declared a rank of the node dead: the store reaps its
 * process alone, at once once it writes nothing more, never while it
 * runs. */
Test(store, a_process_declared_dead_is_reaped_once_it_no_longer_runs)
{
    char job[64];
    rh_store_t *s = open_leader(job, sizeof(job), 16 * MiB);
    rh_object_id_t read = rh_object_id_make(7, 31, 0);
    rh_object_id_t sealed = rh_object_id_make(7, 32, 1);
    rh_object_id_t writing = rh_object_id_make(7, 33, 1);
    siginfo_t info;
    uint64_t refs = 99;
    void *ptr;
    int ready[2];
    pid_t pid;

    put_object(s, read, 1000);
    cr_assert_eq(pipe(ready), 0);
    pid = spawn_writer(job, read, 3, sealed, writing, ready[1]);
    cr_assert_eq(wait_fd(ready[0]), 0);
    /* declared dead while it runs (a transport error): left alone */
    cr_expect_eq(rh_store_reap_process(s, pid, &refs), RH_ERR_BUSY);
    cr_expect(strstr(rh_last_error(), "still runs") != NULL, "%s",
              rh_last_error());
    cr_expect_eq(refs, 0);
    cr_expect(rh_store_present(s, writing));
    cr_expect_eq(rh_store_adopt(s, writing, 5000, &ptr), RH_ERR_BUSY);
    /* what it sealed does not change: taken over while it lives too */
    cr_expect_eq(rh_store_adopt(s, sealed, 5000, &ptr), RH_OK, "%s",
                 rh_last_error());
    /* killed: once it is a zombie (not waited for) it is gone */
    kill(pid, SIGKILL);
    cr_assert_eq(waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT), 0);
    cr_expect_eq(rh_store_reap_process(s, pid, &refs), RH_OK, "%s",
                 rh_last_error());
    cr_expect_eq(refs, 3, "gave back %llu of 3 references",
                 (unsigned long long)refs);
    cr_expect_not(rh_store_present(s, writing), "what it was writing stays");
    cr_assert_eq(rh_store_adopt(s, sealed, 5000, &ptr), RH_OK, "%s",
                 rh_last_error());
    cr_expect(matches(sealed, ptr, 5000));
    /* once only; a process that never attached has nothing here */
    cr_expect_eq(rh_store_reap_process(s, pid, &refs), RH_OK);
    cr_expect_eq(refs, 0);
    cr_expect_eq(child_status(pid), 128 + SIGKILL);
    cr_expect_eq(rh_store_reap_process(s, getpid(), &refs),
                 RH_ERR_INVALID_PARAM);
    cr_assert_eq(rh_store_delete(s, read), RH_OK);
    cr_assert_eq(rh_store_delete(s, sealed), RH_OK);
    expect_empty_and_consistent(s);
    close(ready[0]);
    close(ready[1]);
    rh_store_close(s, 1);
}

/* A run again meets its lost run's unsealed return while another rank of
 * the node is still reaping the dead process: the object goes for it
 * anyway (removed now, or once the reap gives its references back), and
 * never while its writer runs. */
Test(store, a_dead_writers_unsealed_object_is_dropped_for_a_run_again)
{
    char job[64];
    rh_store_t *s = open_leader(job, sizeof(job), 16 * MiB);
    rh_object_id_t read = rh_object_id_make(7, 41, 0);
    rh_object_id_t sealed = rh_object_id_make(7, 42, 1);
    rh_object_id_t writing = rh_object_id_make(7, 43, 1);
    siginfo_t info;
    void *ptr;
    int ready[2];
    pid_t pid;

    put_object(s, read, 1000);
    cr_assert_eq(pipe(ready), 0);
    pid = spawn_writer(job, read, 2, sealed, writing, ready[1]);
    cr_assert_eq(wait_fd(ready[0]), 0);
    cr_expect_eq(rh_store_drop_dead_write(s, writing), RH_ERR_BUSY,
                 "its writer runs");
    cr_expect(rh_store_present(s, writing));
    kill(pid, SIGKILL);
    cr_assert_eq(waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT), 0);
    /* nobody reaped it yet (another rank's reap is under way) */
    cr_expect_eq(rh_store_create(s, writing, 3000, &ptr), RH_ERR_BUSY);
    cr_expect_eq(rh_store_drop_dead_write(s, sealed), RH_ERR_BUSY,
                 "a sealed object is adopted, not dropped");
    cr_assert_eq(rh_store_drop_dead_write(s, writing), RH_OK, "%s",
                 rh_last_error());
    cr_expect_eq(rh_store_drop_dead_write(s, writing) == RH_OK ||
                 !rh_store_present(s, writing), 1,
                 "a second drop while it goes is not an error");
    cr_expect_eq(rh_store_reap_process(s, pid, NULL), RH_OK, "%s",
                 rh_last_error());
    cr_assert_eq(rh_store_create(s, writing, 3000, &ptr), RH_OK, "%s",
                 rh_last_error());
    cr_assert_eq(rh_store_seal(s, writing), RH_OK);
    cr_expect_eq(rh_store_drop_dead_write(s, rh_object_id_make(7, 44, 1)),
                 RH_ERR_INVALID_REF);
    cr_expect_eq(child_status(pid), 128 + SIGKILL);
    cr_assert_eq(rh_store_delete(s, writing), RH_OK);
    cr_assert_eq(rh_store_delete(s, read), RH_OK);
    cr_assert_eq(rh_store_delete(s, sealed), RH_OK);
    expect_empty_and_consistent(s);
    close(ready[0]);
    close(ready[1]);
    rh_store_close(s, 1);
}

Test(store, closing_gives_back_what_the_handle_still_holds)
{
    char job[64];
    rh_store_t *s = open_leader(job, sizeof(job), 16 * MiB);
    rh_store_params_t a = attach_params(job);
    rh_object_id_t id = rh_object_id_make(7, 9, 0);
    const void *ptr;
    rh_store_t *c;
    size_t n;

    put_object(s, id, 1000);
    cr_assert_eq(rh_store_open(&a, &c), RH_OK, "%s", rh_last_error());
    cr_assert_eq(rh_store_get(c, id, &ptr, &n), RH_OK);
    cr_assert_eq(rh_store_get(c, id, &ptr, &n), RH_OK);
    cr_assert_eq(rh_store_get(s, id, &ptr, &n), RH_OK);
    rh_store_close(c, 0);
    cr_assert_eq(rh_store_delete(s, id), RH_OK);
    cr_expect(!rh_store_contains(s, id));
    cr_assert_eq(rh_store_release(s, id), RH_OK, "the leader's own one");
    expect_empty_and_consistent(s);
    rh_store_close(s, 1);
}

Test(store, a_dead_owners_objects_go_and_the_others_stay)
{
    char job[64];
    rh_store_t *s = open_leader(job, sizeof(job), 64 * MiB);
    rh_object_id_t held = rh_object_id_make(3, 1, 1);
    const void *got;
    size_t n, deleted;
    void *ptr;

    /* many of owner 3 (in many probe runs), a few of owners 2 and 4 */
    for (uint64_t k = 1; k <= 500; k++) {
        put_object(s, rh_object_id_make(3, k, 1), 64 + k);
        if (k % 50 == 0) {
            put_object(s, rh_object_id_make(2, k, 1), 100);
            put_object(s, rh_object_id_make(4, k, 1), 100);
        }
    }
    cr_assert_eq(rh_store_create(s, rh_object_id_make(3, 999, 1), 10, &ptr),
                 RH_OK);   /* being written: not touched */
    cr_assert_eq(rh_store_get(s, held, &got, &n), RH_OK);
    cr_assert_eq(rh_store_delete_owned(s, 3, &deleted), RH_OK);
    cr_expect_eq(deleted, 500);
    for (uint64_t k = 1; k <= 500; k++) {
        cr_expect(!rh_store_contains(s, rh_object_id_make(3, k, 1)),
                  "object 3/%llu is still there", (unsigned long long)k);
        if (k % 50 == 0) {
            cr_expect(rh_store_contains(s, rh_object_id_make(2, k, 1)));
            cr_expect(rh_store_contains(s, rh_object_id_make(4, k, 1)));
        }
    }
    /* a reader of a deleted object keeps its bytes until it lets go */
    cr_expect(matches(held, got, n));
    cr_expect_eq(rh_store_release(s, held), RH_OK);
    cr_expect(rh_store_present(s, rh_object_id_make(3, 999, 1)));
    cr_expect_eq(rh_store_delete_owned(s, 3, &deleted), RH_OK);
    cr_expect_eq(deleted, 0);
    rh_store_close(s, 1);
}

Test(store, release_without_a_reference_is_refused)
{
    char job[64];
    rh_store_t *s = open_leader(job, sizeof(job), 16 * MiB);
    rh_object_id_t id = rh_object_id_make(1, 1, 1);

    put_object(s, id, 10);
    cr_expect_eq(rh_store_release(s, id), RH_ERR_INVALID_REF);
    cr_expect(strstr(rh_last_error(), "no reference") != NULL, "%s",
              rh_last_error());
    rh_store_delete(s, id);
    expect_empty_and_consistent(s);
    rh_store_close(s, 1);
}

/* A process's user releases only what its user got: one past its gets is
 * refused and leaves the references the runtime took for itself, and those
 * another handle (process) holds. */
Test(store, a_user_release_past_the_user_s_gets_takes_nothing)
{
    char job[64];
    rh_store_t *s = open_leader(job, sizeof(job), 16 * MiB);
    rh_store_params_t p = attach_params(job);
    rh_store_t *other;
    rh_object_id_t id = rh_object_id_make(1, 1, 2);
    const void *ptr;
    size_t len;
    uint64_t c;

    cr_assert_eq(rh_store_open(&p, &other), RH_OK, "%s", rh_last_error());
    put_object(s, id, 10);
    cr_expect_eq(rh_store_get(other, id, &ptr, &len), RH_OK);   /* theirs */
    cr_expect_eq(rh_store_get(s, id, &ptr, &len), RH_OK);       /* runtime */
    cr_expect_eq(rh_store_release_user(s, id), RH_ERR_INVALID_REF,
                 "no user get yet");
    cr_expect(strstr(rh_last_error(), "holds no get") != NULL, "%s",
              rh_last_error());
    cr_expect_eq(rh_store_get(s, id, &ptr, &len), RH_OK);       /* user */
    rh_store_mark_user(s, id);
    cr_expect_eq(rh_store_release_user(s, id), RH_OK);
    cr_expect_eq(rh_store_release_user(s, id), RH_ERR_INVALID_REF);
    cr_assert_not_null(rh_table_find(s, id, &c));
    cr_expect_eq(c & RH_CTL_RC_MASK, 2, "the runtime's and the other "
                 "process's references stay");
    cr_expect_eq(rh_store_release(s, id), RH_OK);
    cr_expect_eq(rh_store_release(other, id), RH_OK);
    rh_store_delete(s, id);
    expect_empty_and_consistent(s);
    rh_store_close(other, 0);
    rh_store_close(s, 1);
}

Test(store, unsealed_object_is_aborted_by_delete_in_its_creator)
{
    char job[64];
    rh_store_t *s = open_leader(job, sizeof(job), 16 * MiB);
    rh_object_id_t id = rh_object_id_make(1, 2, 3);
    int to_child[2];
    pid_t pid;
    void *ptr;

    cr_assert_eq(rh_store_create(s, id, 5000, &ptr), RH_OK);
    cr_assert_eq(pipe(to_child), 0);
    pid = fork();
    if (pid == 0) {
        rh_store_params_t p = attach_params(job);
        rh_store_t *c;
        int rc = 0;

        if (rh_store_open(&p, &c) != RH_OK) {
            _exit(10);
        }
        rc = rh_store_delete(c, id) == RH_ERR_BUSY ? 0 : 11;
        rh_store_close(c, 0);
        _exit(rc);
    }
    cr_expect_eq(child_status(pid), 0, "another process aborted our object");
    cr_expect_eq(rh_store_delete(s, id), RH_OK);
    expect_empty_and_consistent(s);
    close(to_child[0]);
    close(to_child[1]);
    rh_store_close(s, 1);
}

/* ---- sharing between processes ------------------------------------------- */

/* The child attaches by name and gets the object; the parent then changes
 * a byte in place (never done after a seal outside a test) and the child
 * sees it through the pointer it already had: both map the same pages. */
Test(store, object_put_in_one_process_is_read_in_place_by_another)
{
    char job[64];
    rh_store_t *s = open_leader(job, sizeof(job), 64 * MiB);
    rh_object_id_t id = rh_object_id_make(4, 1, 0);
    unsigned long long ino = 0;
    char path[512];
    int up[2], down[2];
    uint8_t *ptr;
    pid_t pid;

    cr_assert_eq(rh_store_create(s, id, 3 * MiB, (void **)&ptr), RH_OK);
    fill(id, ptr, 3 * MiB);
    cr_assert_eq(rh_store_seal(s, id), RH_OK);
    cr_assert_eq(mapping_inode(ptr, &ino, path, sizeof(path)), 0);
    cr_assert_eq(pipe(up), 0);
    cr_assert_eq(pipe(down), 0);
    pid = fork();
    if (pid == 0) {
        rh_store_params_t p = attach_params(job);
        unsigned long long child_ino = 0;
        char child_path[512];
        const volatile uint8_t *got;
        uint8_t flipped;
        rh_store_t *c;
        size_t n;

        if (rh_store_open(&p, &c) != RH_OK ||
            rh_store_get(c, id, (const void **)&got, &n) != RH_OK) {
            _exit(10);
        }
        if (n != 3 * MiB || !matches(id, (const void *)got, n)) {
            _exit(11);   /* the creator's write is not visible */
        }
        if (rh_store_offset(c, (const void *)got) !=
            rh_store_offset(s, ptr) ||
            (const uint8_t *)got < (uint8_t *)rh_store_base(c) ||
            (const uint8_t *)got + n >
                (uint8_t *)rh_store_base(c) + rh_store_length(c)) {
            _exit(12);   /* not a pointer into our mapping of the segment */
        }
        if (mapping_inode((const void *)got, &child_ino, child_path,
                          sizeof(child_path)) != 0 ||
            child_ino != ino || strcmp(child_path, path) != 0) {
            _exit(13);   /* not the same file */
        }
        if (write(up[1], "r", 1) != 1 || read(down[0], child_path, 1) != 1) {
            _exit(14);
        }
        flipped = (uint8_t)(pattern_byte(id, 12345) ^ 0xffu);
        if (got[12345] != flipped) {
            _exit(15);   /* a copy, not the same pages */
        }
        rh_store_release(c, id);
        rh_store_close(c, 0);
        _exit(0);
    }
    cr_assert_eq(wait_fd(up[0]), 0, "child failed before reading");
    ptr[12345] = (uint8_t)(ptr[12345] ^ 0xff);
    signal_fd(down[1]);
    cr_expect_eq(child_status(pid), 0, "child failed (exit code)");
    cr_expect(strstr(path, rh_store_name(s) + 1) != NULL, "%s", path);
    cr_assert_eq(rh_store_delete(s, id), RH_OK);
    expect_empty_and_consistent(s);
    rh_store_close(s, 1);
}

Test(store, segment_is_private_to_the_user_and_removed_by_close_with_unlink)
{
    char job[64], path[4096];
    rh_store_t *s = open_leader(job, sizeof(job), 16 * MiB), *a;
    rh_store_params_t p = attach_params(job);
    struct stat st;

    snprintf(path, sizeof(path), "%s", segment_path(s));
    cr_expect(strstr(path, rh_store_name(s)) != NULL, "%s", path);
    cr_assert_eq(stat(path, &st), 0, "%s: %s", path, strerror(errno));
    cr_expect_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
    cr_expect_eq(st.st_uid, geteuid());
    cr_assert_eq(rh_store_open(&p, &a), RH_OK, "%s", rh_last_error());
    cr_expect_eq(rh_store_close(a, 0), RH_OK);
    cr_expect_eq(stat(path, &st), 0, "an attached rank's close removed it");
    cr_expect_eq(rh_store_close(s, 1), RH_OK);
    cr_expect_eq(stat(path, &st), -1, "segment still there after unlink");
    cr_expect_eq(errno, ENOENT);
}

Test(store, attach_times_out_when_no_leader_made_the_segment)
{
    char job[64];
    rh_store_params_t p = attach_params(unique_job(job, sizeof(job)));
    rh_store_t *s = NULL;
    double t0 = now_s(), dt;

    p.attach_timeout_ms = 200;
    cr_expect_eq(rh_store_open(&p, &s), RH_ERR_TIMEOUT);
    dt = now_s() - t0;
    cr_expect(dt >= 0.19 && dt < 60.0, "waited %.3f s", dt);
    cr_expect(strstr(rh_last_error(), "does not exist") != NULL, "%s",
              rh_last_error());
    cr_expect_null(s);
}

/* The leader may come up after the other ranks: they wait for it. */
Test(store, attach_waits_for_a_leader_that_starts_late)
{
    char job[64];
    rh_store_params_t p = attach_params(unique_job(job, sizeof(job)));
    rh_object_id_t id = rh_object_id_make(0, 0, 0);
    rh_store_t *s;
    int done[2];
    pid_t pid;

    cr_assert_eq(pipe(done), 0);
    pid = fork();
    if (pid == 0) {
        rh_store_params_t lp = leader_params(job, 16 * MiB);
        rh_store_t *l;
        void *ptr;

        usleep(150000);
        if (rh_store_open(&lp, &l) != RH_OK ||
            rh_store_create(l, id, 64, &ptr) != RH_OK ||
            rh_store_seal(l, id) != RH_OK) {
            _exit(10);
        }
        wait_fd(done[0]);
        rh_store_close(l, 1);
        _exit(0);
    }
    cr_assert_eq(rh_store_open(&p, &s), RH_OK, "%s", rh_last_error());
    for (int i = 0; i < 1000 && !rh_store_contains(s, id); i++) {
        usleep(2000);
    }
    cr_expect(rh_store_contains(s, id));
    rh_store_close(s, 0);
    signal_fd(done[1]);
    cr_expect_eq(child_status(pid), 0);
    close(done[0]);
    close(done[1]);
}

/* ---- stale segments ------------------------------------------------------- */

/* A child makes a segment and waits to be killed. */
static pid_t spawn_leader(const char *job, int ready_fd)
{
    pid_t pid = fork();

    if (pid == 0) {
        rh_store_params_t p = leader_params(job, 8 * MiB);
        rh_store_t *s;

        p.no_reap = 1;
        p.hugepages = RH_STORE_HUGEPAGES_OFF;   /* in /dev/shm, always */
        if (rh_store_open(&p, &s) != RH_OK) {
            _exit(10);
        }
        if (write(ready_fd, "r", 1) != 1) {
            _exit(11);
        }
        for (;;) {
            pause();
        }
    }
    return pid;
}

static void check_reaped_after_kill(int reap_zombie)
{
    char job[64], name[256], path[512], prefix[128];
    int fds[2], removed = -1;
    struct stat st;
    pid_t pid;

    unique_job(job, sizeof(job));
    cr_assert_eq(pipe(fds), 0);
    pid = spawn_leader(job, fds[1]);
    cr_assert_eq(wait_fd(fds[0]), 0, "leader child failed");
    rh_store_segment_name(job, "n0", name, sizeof(name));
    snprintf(path, sizeof(path), "/dev/shm%s", name);
    cr_assert_eq(stat(path, &st), 0);
    snprintf(prefix, sizeof(prefix), "rayhpc-%s", job);

    /* a live creator's segment is kept */
    cr_assert_eq(rh_store_reap_stale(prefix, &removed), RH_OK);
    cr_expect_eq(removed, 0);
    cr_expect_eq(stat(path, &st), 0);

    kill(pid, SIGKILL);
    if (!reap_zombie) {
        cr_expect_eq(child_status(pid), 128 + SIGKILL);
    } else {
        siginfo_t si;

        /* wait for the death without collecting it: a zombie */
        cr_assert_eq(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
    }
    cr_assert_eq(rh_store_reap_stale(prefix, &removed), RH_OK);
    cr_expect_eq(removed, 1);
    cr_expect_eq(stat(path, &st), -1, "stale segment still in /dev/shm");
    if (reap_zombie) {
        child_status(pid);
    }
    close(fds[0]);
    close(fds[1]);
}

Test(store, segment_of_a_sigkilled_leader_is_removed_by_reap_stale)
{
    check_reaped_after_kill(0);
}

Test(store, segment_of_a_zombie_leader_is_removed_by_reap_stale)
{
    check_reaped_after_kill(1);
}

Test(store, new_leader_replaces_a_dead_leaders_segment_but_not_a_live_one)
{
    char job[64];
    int fds[2];
    rh_store_params_t p;
    rh_store_t *s = NULL;
    pid_t pid;

    unique_job(job, sizeof(job));
    cr_assert_eq(pipe(fds), 0);
    pid = spawn_leader(job, fds[1]);
    cr_assert_eq(wait_fd(fds[0]), 0);
    p = leader_params(job, 8 * MiB);
    cr_expect_eq(rh_store_open(&p, &s), RH_ERR_BUSY);
    cr_expect(strstr(rh_last_error(), "alive") != NULL, "%s",
              rh_last_error());
    kill(pid, SIGKILL);
    child_status(pid);
    p.no_reap = 1;   /* the name clash itself must be handled */
    cr_assert_eq(rh_store_open(&p, &s), RH_OK, "%s", rh_last_error());
    put_object(s, rh_object_id_make(1, 1, 1), 100);
    cr_expect(rh_store_contains(s, rh_object_id_make(1, 1, 1)));
    rh_store_close(s, 1);
    close(fds[0]);
    close(fds[1]);
}

/* A leader known by its pid that comes up long after the attach timeout
 * is waited for while it lives. */
Test(store, attach_waits_past_its_timeout_for_a_live_leader_that_starts_late)
{
    char job[64];
    rh_store_params_t p = attach_params(unique_job(job, sizeof(job)));
    rh_store_t *s = NULL;
    int done[2];
    pid_t pid;

    cr_assert_eq(pipe(done), 0);
    pid = fork();
    if (pid == 0) {
        rh_store_params_t lp = leader_params(job, 16 * MiB);
        rh_store_t *l;

        usleep(500000);
        if (rh_store_open(&lp, &l) != RH_OK) {
            _exit(10);
        }
        wait_fd(done[0]);
        rh_store_close(l, 1);
        _exit(0);
    }
    p.attach_timeout_ms = 100;
    p.leader_pid = pid;
    cr_expect_eq(rh_store_open(&p, &s), RH_OK, "%s", rh_last_error());
    if (s != NULL) {
        rh_store_close(s, 0);
    }
    signal_fd(done[1]);
    cr_expect_eq(child_status(pid), 0);
    close(done[0]);
    close(done[1]);
}

/* The window between a live leader's creating the segment and stamping
 * its header: the attach waits on past its timeout. The child makes an
 * empty segment of the name and holds it so until told, well after the
 * attach's timeout; then it makes the real one. */
static void *tell_after(void *arg)
{
    int fd = *(int *)arg;

    usleep(400000);   /* past the 100 ms timeout, whatever the host does */
    signal_fd(fd);
    return NULL;
}

Test(store, attach_waits_for_a_live_leader_between_creating_and_stamping)
{
    char job[64], name[256];
    rh_store_params_t p = attach_params(unique_job(job, sizeof(job)));
    rh_store_t *s = NULL;
    int go[2], done[2];
    pthread_t th;
    pid_t pid;

    cr_assert_eq(rh_store_segment_name(job, "n0", name, sizeof(name)), RH_OK);
    cr_assert_eq(pipe(go), 0);
    cr_assert_eq(pipe(done), 0);
    pid = fork();
    if (pid == 0) {
        rh_store_params_t lp = leader_params(job, 16 * MiB);
        rh_store_t *l;
        int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);

        if (fd < 0) {
            _exit(10);
        }
        close(fd);
        signal_fd(done[1]);   /* made, not stamped */
        wait_fd(go[0]);
        shm_unlink(name);
        if (rh_store_open(&lp, &l) != RH_OK) {
            _exit(11);
        }
        wait_fd(go[0]);
        rh_store_close(l, 1);
        _exit(0);
    }
    cr_assert_eq(wait_fd(done[0]), 0);
    cr_assert_eq(pthread_create(&th, NULL, tell_after, &go[1]), 0);
    p.attach_timeout_ms = 100;
    p.leader_pid = pid;
    cr_expect_eq(rh_store_open(&p, &s), RH_OK, "%s", rh_last_error());
    if (s != NULL) {
        rh_store_close(s, 0);
    }
    pthread_join(th, NULL);
    signal_fd(go[1]);
    cr_expect_eq(child_status(pid), 0);
    shm_unlink(name);
    close(go[0]);
    close(go[1]);
    close(done[0]);
    close(done[1]);
}

/* A leader still pre-faulting a large store on a busy host is waited for
 * past the attach timeout for as long as it lives; once it is gone the
 * wait ends at once. The child stamps a header and never marks it ready,
 * as a leader does while it fills the segment. */
Test(store, attach_waits_past_its_timeout_for_a_leader_still_filling)
{
    char job[64], name[256];
    rh_store_params_t p = attach_params(unique_job(job, sizeof(job)));
    rh_store_t *s = NULL;
    struct pollfd pfd = { .events = POLLIN };
    int fds[2];
    double t0, dt;
    pid_t pid;

    cr_assert_eq(rh_store_segment_name(job, "n0", name, sizeof(name)), RH_OK);
    cr_assert_eq(pipe(fds), 0);
    pid = fork();
    if (pid == 0) {
        int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
        rh_store_hdr_t *hdr;
        rh_segment_id_t self;

        if (fd < 0 || ftruncate(fd, RH_STORE_HDR_SIZE) != 0) {
            _exit(10);
        }
        hdr = mmap(NULL, RH_STORE_HDR_SIZE, PROT_READ | PROT_WRITE,
                   MAP_SHARED, fd, 0);
        if (hdr == MAP_FAILED) {
            _exit(11);
        }
        rh_segment_self(&self);
        hdr->version = RH_STORE_VERSION;
        hdr->seg_size = RH_STORE_HDR_SIZE;
        hdr->creator_pid = self.pid;
        hdr->creator_start = self.start;
        hdr->pidns = self.pidns;
        memcpy(hdr->boot_id, self.boot_id, sizeof(hdr->boot_id));
        hdr->magic = RH_STORE_MAGIC;
        atomic_store(&hdr->ready, 0);
        signal_fd(fds[1]);
        usleep(600000);   /* still "filling" long past the timeout */
        signal_fd(fds[1]);   /* leaving: the open may end from here on */
        _exit(0);
    }
    cr_assert_eq(wait_fd(fds[0]), 0);
    p.attach_timeout_ms = 100;
    t0 = now_s();
    cr_expect_neq(rh_store_open(&p, &s), RH_OK);
    dt = now_s() - t0;
    /* the leader said it was leaving before the open gave up */
    pfd.fd = fds[0];
    cr_expect_eq(poll(&pfd, 1, 0), 1, "gave up after %.3f s while the "
                 "leader still lived (%s)", dt, rh_last_error());
    cr_expect_eq(child_status(pid), 0);
    cr_expect(strstr(rh_last_error(), "gone") != NULL ||
              strstr(rh_last_error(), "does not exist") != NULL, "%s",
              rh_last_error());
    cr_expect_null(s);
    shm_unlink(name);
    close(fds[0]);
    close(fds[1]);
}

Test(store, attach_ignores_a_segment_left_by_a_dead_leader)
{
    char job[64];
    int fds[2];
    rh_store_params_t p;
    rh_store_t *s = NULL;
    pid_t pid;

    /* Any store created meanwhile on this host (a test running beside
     * this one) reaps the dead leader's segment: then there is nothing
     * left to attach to, and the case is set up again. */
    for (int tries = 0; tries < 20; tries++) {
        unique_job(job, sizeof(job));
        cr_assert_eq(pipe(fds), 0);
        pid = spawn_leader(job, fds[1]);
        cr_assert_eq(wait_fd(fds[0]), 0);
        kill(pid, SIGKILL);
        child_status(pid);
        p = attach_params(job);
        p.attach_timeout_ms = 100;
        cr_expect_eq(rh_store_open(&p, &s), RH_ERR_TIMEOUT);
        close(fds[0]);
        close(fds[1]);
        if (strstr(rh_last_error(), "does not exist") == NULL) {
            break;
        }
    }
    cr_expect(strstr(rh_last_error(), "gone") != NULL, "%s",
              rh_last_error());
    rh_store_reap_stale(NULL, NULL);
}

Test(store, process_dying_with_the_lock_held_does_not_wedge_the_store)
{
    char job[64];
    rh_store_t *s = open_leader(job, sizeof(job), 16 * MiB);
    rh_store_stats_t st;
    pid_t pid;
    void *ptr;

    rh_log_level = RH_LOG_ERROR;   /* the recovery warning is expected */
    pid = fork();
    if (pid == 0) {
        rh_store_params_t p = attach_params(job);
        rh_store_t *c;

        if (rh_store_open(&p, &c) != RH_OK) {
            _exit(10);
        }
        pthread_mutex_lock(&((rh_store_hdr_t *)rh_store_base(c))->lock);
        _exit(0);   /* dies holding it */
    }
    cr_assert_eq(child_status(pid), 0);
    cr_expect_eq(rh_store_create(s, rh_object_id_make(1, 0, 0), 100, &ptr),
                 RH_OK, "%s", rh_last_error());
    cr_assert_eq(rh_store_stats(s, &st), RH_OK);
    cr_expect_eq(st.lock_recoveries, 1);
    rh_store_delete(s, rh_object_id_make(1, 0, 0));
    expect_empty_and_consistent(s);
    rh_store_close(s, 1);
}

/* A process that dies in the middle of an allocation, its block taken off
 * the free lists but not yet marked used: the next holder of the lock
 * rebuilds the lists, so the heap's one free block is not lost with it
 * (the node's creates all failed for want of room before). */
Test(store, a_death_in_the_middle_of_an_allocation_loses_no_room)
{
    char job[64];
    rh_store_t *s = open_leader(job, sizeof(job), 16 * MiB);
    void *ptr;
    pid_t pid;

    rh_log_level = RH_LOG_ERROR;   /* the recovery warnings are expected */
    pid = fork();
    if (pid == 0) {
        rh_store_params_t p = attach_params(job);
        rh_store_t *c;
        rh_store_hdr_t *h;

        if (rh_store_open(&p, &c) != RH_OK) {
            _exit(10);
        }
        h = rh_store_base(c);
        pthread_mutex_lock(&h->lock);
        h->bin_map = 0;   /* the free block unlinked, then death */
        memset(h->bins, 0, sizeof(h->bins));
        _exit(0);
    }
    cr_assert_eq(child_status(pid), 0);
    cr_expect_eq(rh_store_create(s, rh_object_id_make(1, 0, 0), 1 * MiB,
                                 &ptr), RH_OK, "%s", rh_last_error());
    rh_store_delete(s, rh_object_id_make(1, 0, 0));
    expect_empty_and_consistent(s);
    rh_store_close(s, 1);
}

/* ---- huge pages ------------------------------------------------------------ */

Test(store, hugepages_on_either_gets_huge_pages_or_says_why_not)
{
    char job[64];
    rh_store_params_t p = leader_params(unique_job(job, sizeof(job)),
                                        64 * MiB);
    rh_store_stats_t st;
    rh_store_t *s = NULL;
    rh_status_t status;

    p.hugepages = RH_STORE_HUGEPAGES_ON;
    status = rh_store_open(&p, &s);
    if (status == RH_OK) {
        rh_store_stats(s, &st);
        cr_expect_neq(st.pages, RH_STORE_PAGES_SMALL);
        cr_expect_geq(st.page_size, 2 * MiB);
        rh_store_close(s, 1);
        return;
    }
    cr_expect_eq(status, RH_ERR_UNSUPPORTED);
    cr_expect(strstr(rh_last_error(), "huge pages") != NULL, "%s",
              rh_last_error());
    cr_expect(strstr(rh_last_error(), "hugetlbfs") != NULL, "%s",
              rh_last_error());
    p.hugepages = RH_STORE_HUGEPAGES_AUTO;
    cr_assert_eq(rh_store_open(&p, &s), RH_OK, "auto falls back quietly: %s",
                 rh_last_error());
    rh_store_close(s, 1);
}

Test(store, hugepages_off_uses_small_pages_in_dev_shm)
{
    char job[64], path[512];
    rh_store_params_t p = leader_params(unique_job(job, sizeof(job)),
                                        8 * MiB);
    rh_store_stats_t st;
    struct stat sb;
    rh_store_t *s;

    p.hugepages = RH_STORE_HUGEPAGES_OFF;
    cr_assert_eq(rh_store_open(&p, &s), RH_OK, "%s", rh_last_error());
    rh_store_stats(s, &st);
    cr_expect_eq(st.pages, RH_STORE_PAGES_SMALL);
    cr_expect_eq(st.page_size, 4096);
    snprintf(path, sizeof(path), "/dev/shm%s", rh_store_name(s));
    cr_expect_str_eq(segment_path(s), path);
    cr_expect_eq(stat(path, &sb), 0);
    rh_store_close(s, 1);
}

Test(store, store_too_small_for_its_table_is_refused)
{
    char job[64];
    rh_store_params_t p = leader_params(unique_job(job, sizeof(job)),
                                        64 * KiB);
    rh_store_t *s = NULL;

    cr_expect_eq(rh_store_open(&p, &s), RH_ERR_INVALID_PARAM);
    cr_expect(strstr(rh_last_error(), "too small") != NULL, "%s",
              rh_last_error());
}

/* Rounded up to pages, a size near 2^64 wrapped to a 0-byte segment that
 * failed to map: it is more than /dev/shm has, and says so. */
Test(store, store_larger_than_any_file_says_what_dev_shm_has)
{
    static const uint64_t sizes[] = { UINT64_MAX, UINT64_MAX - 615,
                                      (uint64_t)INT64_MAX };
    char job[64];

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        rh_store_params_t p = leader_params(unique_job(job, sizeof(job)),
                                            sizes[i]);
        rh_store_t *s = NULL;

        p.hugepages = RH_STORE_HUGEPAGES_OFF;
        cr_expect_eq(rh_store_open(&p, &s), RH_ERR_NO_MEMORY, "%llu: %s",
                     (unsigned long long)sizes[i], rh_last_error());
        cr_expect(strstr(rh_last_error(), "RAYHPC_STORE_SIZE") != NULL &&
                  strstr(rh_last_error(), "0-byte") == NULL, "%s",
                  rh_last_error());
    }
}

/* ---- concurrency ----------------------------------------------------------- */

#define THREADS        4
#define THREAD_ITERS   4000
#define WINDOW         8

typedef struct {
    rh_store_t       *s;
    int               me;
    _Atomic uint64_t *latest;    /* per thread: its newest sealed counter+1 */
    int               failed;
} worker_t;

static const size_t worker_sizes[] = { 1, 64, 100, 700, 3000, 9000, 70000,
                                       0 };

/* Creates, seals, reads another thread's newest object, and deletes its
 * own objects a few iterations later. Any overlap of two objects' memory,
 * or memory reused while referenced, shows up as a pattern mismatch. */
static void *worker(void *arg)
{
    worker_t *w = arg;

    for (uint64_t n = 0; n < THREAD_ITERS && !w->failed; n++) {
        rh_object_id_t id = rh_object_id_make((uint32_t)w->me, n, 0);
        size_t size = worker_sizes[(n * 7 + (uint64_t)w->me) %
                                   (sizeof(worker_sizes) /
                                    sizeof(worker_sizes[0]))];
        int other = (w->me + 1 + (int)(n % (THREADS - 1))) % THREADS;
        uint64_t theirs = atomic_load(&w->latest[other]);
        const void *got;
        size_t got_size;
        void *ptr;

        if (rh_store_create(w->s, id, size, &ptr) != RH_OK) {
            w->failed = 1;
            break;
        }
        fill(id, ptr, size);
        if (rh_store_seal(w->s, id) != RH_OK) {
            w->failed = 2;
        }
        atomic_store(&w->latest[w->me], n + 1);
        if (theirs > 0) {
            rh_object_id_t o = rh_object_id_make((uint32_t)other, theirs - 1,
                                                 0);
            rh_status_t st = rh_store_get(w->s, o, &got, &got_size);

            if (st == RH_OK) {
                if (!matches(o, got, got_size)) {
                    w->failed = 3;
                }
                if (rh_store_release(w->s, o) != RH_OK) {
                    w->failed = 4;
                }
            } else if (st != RH_ERR_INVALID_REF) {
                w->failed = 5;
            }
        }
        if (n >= WINDOW) {
            rh_object_id_t old = rh_object_id_make((uint32_t)w->me,
                                                   n - WINDOW, 0);

            if (rh_store_get(w->s, old, &got, &got_size) != RH_OK ||
                !matches(old, got, got_size) ||
                rh_store_release(w->s, old) != RH_OK ||
                rh_store_delete(w->s, old) != RH_OK) {
                w->failed = 6;
            }
        }
    }
    for (uint64_t n = THREAD_ITERS - WINDOW; n < THREAD_ITERS; n++) {
        rh_store_delete(w->s, rh_object_id_make((uint32_t)w->me, n, 0));
    }
    return NULL;
}

/* A small table (64 slots for up to ~40 live objects) so that deletes keep
 * moving entries while other threads look them up without the lock. */
static rh_store_t *open_small_table(char *job, size_t joblen)
{
    rh_store_params_t p = leader_params(unique_job(job, joblen), 64 * MiB);
    rh_store_t *s = NULL;

    p.table_capacity = 64;
    cr_assert_eq(rh_store_open(&p, &s), RH_OK, "%s", rh_last_error());
    return s;
}

Test(store, four_threads_creating_reading_and_deleting_stay_consistent)
{
    char job[64];
    rh_store_t *s = open_small_table(job, sizeof(job));
    _Atomic uint64_t latest[THREADS];
    worker_t w[THREADS];
    pthread_t t[THREADS];

    for (int i = 0; i < THREADS; i++) {
        atomic_init(&latest[i], 0);
        w[i] = (worker_t){ s, i, latest, 0 };
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_create(&t[i], NULL, worker, &w[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        cr_expect_eq(w[i].failed, 0, "thread %d failed at step %d", i,
                     w[i].failed);
    }
    expect_empty_and_consistent(s);
    rh_store_close(s, 1);
}

/* Each process keeps a window of live objects and checks every byte of each
 * before deleting it. */
static int process_worker(const char *job, uint32_t me)
{
    rh_store_params_t p = attach_params(job);
    rh_object_id_t ids[16];
    rh_store_t *s;

    if (rh_store_open(&p, &s) != RH_OK) {
        return 10;
    }
    for (uint64_t n = 0; n < 6000; n++) {
        rh_object_id_t id = rh_object_id_make(me, n, 0);
        size_t size = worker_sizes[n % 7] + n % 13;
        const void *got;
        size_t got_size;
        void *ptr;

        if (n >= 16) {
            rh_object_id_t old = ids[n % 16];

            if (rh_store_get(s, old, &got, &got_size) != RH_OK ||
                !matches(old, got, got_size) ||
                rh_store_release(s, old) != RH_OK ||
                rh_store_delete(s, old) != RH_OK) {
                return 11;
            }
        }
        if (rh_store_create(s, id, size, &ptr) != RH_OK) {
            return 12;
        }
        fill(id, ptr, size);
        if (rh_store_seal(s, id) != RH_OK) {
            return 13;
        }
        ids[n % 16] = id;
    }
    for (int i = 0; i < 16; i++) {
        rh_store_delete(s, ids[i]);
    }
    rh_store_close(s, 0);
    return 0;
}

Test(store, two_processes_allocating_concurrently_stay_consistent)
{
    char job[64];
    rh_store_t *s = open_small_table(job, sizeof(job));
    pid_t pid[2];

    for (int i = 0; i < 2; i++) {
        pid[i] = fork();
        if (pid[i] == 0) {
            _exit(process_worker(job, 100 + (uint32_t)i));
        }
    }
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(child_status(pid[i]), 0, "process %d failed", i);
    }
    expect_empty_and_consistent(s);
    rh_store_close(s, 1);
}
