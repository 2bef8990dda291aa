/* Reading spilled objects back from their files (src/plasma/spill_read.c):
 * O_DIRECT with requests in flight for files not in the page cache, the
 * page cache for those that are, byte-exact either way. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "plasma/store_internal.h"

#define KiB (1024ull)
#define MiB (1024ull * KiB)

static char dir[256];
static rh_spill_reader_t reader;
static _Atomic int no_direct;

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/rh-spillread-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    memset(&reader, 0, sizeof(reader));
    atomic_store(&no_direct, 0);
}

static void teardown(void)
{
    char cmd[512];

    rh_spill_reader_close(&reader);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(spill_read, .init = setup, .fini = teardown, .timeout = 60);

static uint8_t byte_at(uint64_t seed, uint64_t i)
{
    return (uint8_t)(seed * 13 + i * 7 + (i >> 12));
}

/* A file of size bytes in d; cold: written back and dropped from the page
 * cache. Returns it opened for reading. */
static int make_file(const char *d, const char *name, uint64_t size,
                     uint64_t seed, int cold)
{
    char path[512];
    uint8_t *buf = malloc(size);
    int fd;

    cr_assert_not_null(buf);
    for (uint64_t i = 0; i < size; i++) {
        buf[i] = byte_at(seed, i);
    }
    snprintf(path, sizeof(path), "%s/%s", d, name);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pwrite(fd, buf, size, 0), (ssize_t)size);
    if (cold) {
        cr_assert_eq(fdatasync(fd), 0);
        cr_assert_eq(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    }
    close(fd);
    free(buf);
    fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0);
    return fd;
}

/* 4 KiB aligned memory, as a store block is. */
static uint8_t *block(uint64_t size)
{
    void *p = NULL;

    cr_assert_eq(posix_memalign(&p, 4096, size + 4096), 0);
    memset(p, 0, size + 4096);
    return p;
}

static void expect_bytes(const uint8_t *p, uint64_t size, uint64_t seed)
{
    for (uint64_t i = 0; i < size; i++) {
        if (p[i] != byte_at(seed, i)) {
            cr_assert_fail("byte %llu of %llu differs",
                           (unsigned long long)i, (unsigned long long)size);
        }
    }
}

/* Pages of the first len bytes of fd in the page cache. */
static uint64_t cached_pages(int fd, uint64_t len)
{
    unsigned char *vec = malloc(len / 4096 + 1);
    void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    uint64_t n = 0;

    cr_assert_neq(m, MAP_FAILED);
    cr_assert_eq(mincore(m, len, vec), 0);
    for (uint64_t i = 0; i < (len + 4095) / 4096; i++) {
        n += vec[i] & 1;
    }
    munmap(m, len);
    free(vec);
    return n;
}

Test(spill_read, a_cold_file_is_read_with_o_direct_past_the_page_cache)
{
    /* more than the requests in flight at once, a tail past 4 KiB */
    uint64_t size = 21 * MiB + 123;
    int fd = make_file(dir, "cold", size, 1, 1);
    uint8_t *dst = block(size);

    cr_assert_eq(rh_spill_read(&reader, &no_direct, fd, dst, size, 0, 1, 0),
                 0, "%s", strerror(errno));
    expect_bytes(dst, size, 1);
    if (!atomic_load(&no_direct)) {
        /* the whole blocks came from the device, not through the cache */
        cr_expect_eq(cached_pages(fd, size & ~4095ull), 0);
        /* with requests in flight where the kernel gives an AIO context */
        cr_expect(atomic_load(&reader.state[0]) == RH_READ_CTX_NONE ||
                  (atomic_load(&reader.state[0]) == RH_READ_CTX_FREE &&
                   reader.ctx[0] != 0));
    }
    close(fd);
    free(dst);
}

Test(spill_read, a_cached_file_is_read_from_the_page_cache)
{
    uint64_t size = 3 * MiB + 4095;
    int fd = make_file(dir, "warm", size, 2, 0);
    uint8_t *dst = block(size);

    cr_assert_eq(rh_spill_read(&reader, &no_direct, fd, dst, size, 0, 1, 0),
                 0, "%s", strerror(errno));
    expect_bytes(dst, size, 2);
    cr_expect_eq(cached_pages(fd, size), (size + 4095) / 4096);
    close(fd);
    free(dst);
}

Test(spill_read, unaligned_places_and_small_objects_are_read_buffered)
{
    uint64_t size = 2 * MiB;
    int fd = make_file(dir, "odd", size + 100, 3, 1);
    uint8_t *dst = block(size + 100);

    /* into memory that is not 4 KiB aligned */
    cr_assert_eq(rh_spill_read(&reader, &no_direct, fd, dst + 64, size, 0, 1,
                               1), 0);
    expect_bytes(dst + 64, size, 3);
    /* from an offset in the file */
    cr_assert_eq(rh_spill_read(&reader, &no_direct, fd, dst, 100, size, 1, 1),
                 0);
    for (uint64_t i = 0; i < 100; i++) {
        cr_assert_eq(dst[i], byte_at(3, size + i));
    }
    /* not to be read directly at all */
    memset(dst, 0, size);
    cr_assert_eq(rh_spill_read(&reader, &no_direct, fd, dst, size, 0, 0, 1),
                 0);
    expect_bytes(dst, size, 3);
    cr_expect_eq(atomic_load(&no_direct), 0);
    close(fd);
    free(dst);
}

Test(spill_read, a_file_shorter_than_recorded_fails_with_eio)
{
    uint64_t size = 4 * MiB;
    int fd = make_file(dir, "short", size - 8192, 4, 1);
    uint8_t *dst = block(size);

    errno = 0;
    cr_assert_eq(rh_spill_read(&reader, &no_direct, fd, dst, size, 0, 1, 1),
                 -1);
    cr_expect_eq(errno, EIO, "errno %d", errno);
    /* and buffered */
    errno = 0;
    cr_assert_eq(rh_spill_read(&reader, &no_direct, fd, dst, size, 0, 0, 1),
                 -1);
    cr_expect_eq(errno, EIO, "errno %d", errno);
    close(fd);
    free(dst);
}

Test(spill_read, a_file_system_without_o_direct_is_read_buffered)
{
    char shm[64];
    uint64_t size = 2 * MiB + 1;
    uint8_t *dst = block(size);
    int fd;

    /* tmpfs refuses O_DIRECT before Linux 6.6: either way, byte-exact */
    snprintf(shm, sizeof(shm), "/dev/shm/rh-spillread-XXXXXX");
    cr_assert_not_null(mkdtemp(shm));
    fd = make_file(shm, "f", size, 5, 1);
    cr_assert_eq(rh_spill_read(&reader, &no_direct, fd, dst, size, 0, 1, 1),
                 0, "%s", strerror(errno));
    expect_bytes(dst, size, 5);
    close(fd);
    {
        char path[128];

        snprintf(path, sizeof(path), "%s/f", shm);
        cr_assert_eq(unlink(path), 0);
    }
    cr_assert_eq(rmdir(shm), 0);
    free(dst);
}

typedef struct reader_arg {
    int      fd;
    uint64_t size, seed;
    uint8_t *dst;
    int      rc;
} reader_arg_t;

static void *read_one(void *p)
{
    reader_arg_t *a = p;

    a->rc = rh_spill_read(&reader, &no_direct, a->fd, a->dst, a->size, 0, 1,
                          1);
    return NULL;
}

/* More restores at once than the process has AIO contexts: those without
 * one read with a single request. */
Test(spill_read, concurrent_restores_share_the_contexts)
{
    enum { N = RH_READ_CTXS + 3 };
    pthread_t th[N];
    reader_arg_t a[N];

    for (int i = 0; i < N; i++) {
        char name[32];

        snprintf(name, sizeof(name), "c%d", i);
        a[i].size = 2 * MiB + (uint64_t)i * 4096 + 17;
        a[i].seed = 10 + (uint64_t)i;
        a[i].fd = make_file(dir, name, a[i].size, a[i].seed, 1);
        a[i].dst = block(a[i].size);
    }
    for (int i = 0; i < N; i++) {
        cr_assert_eq(pthread_create(&th[i], NULL, read_one, &a[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(a[i].rc, 0);
        expect_bytes(a[i].dst, a[i].size, a[i].seed);
        close(a[i].fd);
        free(a[i].dst);
    }
}
