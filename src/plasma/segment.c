/*
 * The file behind the store: creating it (huge pages when we can, always
 * pre-faulted), attaching to it by name, and removing segments that a dead
 * job left behind.
 *
 * A segment's header starts with its creator's identity (pid, the pid's
 * start time, pid namespace, boot id), written as soon as the file is
 * mapped and before the slow pre-faulting, so that a leader that is killed
 * at any point leaves a segment the next start recognises as stale.
 */
#include "plasma/store_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/status.h"
#include "transport/shmlink.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define RH_SHM_DIR        "/dev/shm"
#define RH_THP_SIZE       (2ull << 20)
#define RH_SMALL_PAGE     4096ull
#define RH_HUGETLBFS_MAGIC 0x958458f6   /* linux/magic.h */

/* ---- identity ------------------------------------------------------------ */

static void rh_read_boot_id(char *out)
{
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");

    memset(out, 0, RH_STORE_BOOT_ID_LEN);
    if (f == NULL) {
        return;
    }
    if (fgets(out, RH_STORE_BOOT_ID_LEN, f) != NULL) {
        out[strcspn(out, "\n")] = '\0';
    }
    fclose(f);
}

/* The kernel's task flag of a thread in its exit (PF_EXITING). */
#define RH_PF_EXITING 0x4u

int rh_proc_stat_parse(const char *text, rh_proc_stat_t *ps)
{
    const char *p = strrchr(text, ')');
    unsigned long long st = 0;

    /* the command name may hold spaces and parentheses: fields are
     * counted from the last ')' */
    if (p == NULL || p[1] != ' ' || p[2] == '\0') {
        return -1;
    }
    ps->state = p[2];
    p += 2;
    /* the state is field 3, the flags field 9, the start time field 22 */
    for (int field = 3; field < 22 && p != NULL; field++) {
        p = strchr(p, ' ');
        if (p != NULL) {
            p++;
        }
        if (field == 8 && (p == NULL || sscanf(p, "%u", &ps->flags) != 1)) {
            return -1;
        }
    }
    if (p == NULL || sscanf(p, "%llu", &st) != 1) {
        return -1;
    }
    ps->start = st;
    return 0;
}

/* /proc/<pid>/stat read; -1 when it cannot be read (the process is gone). */
static int rh_proc_stat(int32_t pid, rh_proc_stat_t *ps)
{
    char path[64], buf[1024];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return -1;
    }
    buf[n] = '\0';
    return rh_proc_stat_parse(buf, ps);
}

/* A zombie, a process in its exit, or a pid reused since (the start time
 * tells another process apart).
 *
 * In its exit (the kernel set PF_EXITING on its main thread, which comes
 * before its memory and descriptors go) a process runs no code of its own
 * again, so nothing of it writes into the segment any more: its records,
 * the objects it was writing and the ones it sealed may be taken over at
 * once. That is also when the transport declares a rank of this host dead
 * for its process (transport.c), which a SIGKILLed rank reaches long
 * before it is a zombie when its exit has much memory to give back (ASan's
 * shadow): a rank the runtime took for dead for that reason is gone here
 * as well. One it took for dead for a transport error while its process
 * still runs is not: it may still write. */
int rh_proc_stat_gone(const rh_proc_stat_t *ps, uint64_t start)
{
    return ps->state == 'Z' || ps->state == 'X' ||
           (ps->flags & RH_PF_EXITING) != 0 ||
           (start != 0 && ps->start != start);
}

static uint64_t rh_self_pidns(void)
{
    struct stat st;

    return stat("/proc/self/ns/pid", &st) == 0 ? (uint64_t)st.st_ino : 0;
}

void rh_segment_self(rh_segment_id_t *id)
{
    rh_proc_stat_t ps;

    memset(id, 0, sizeof(*id));
    id->pid = (int32_t)getpid();
    if (rh_proc_stat(id->pid, &ps) == 0) {
        id->start = ps.start;
    }
    id->pidns = rh_self_pidns();
    rh_read_boot_id(id->boot_id);
}

/* A zombie or a process in its exit still answers kill(pid, 0): its
 * /proc/<pid>/stat tells (rh_proc_stat_gone). */
int rh_segment_pid_gone(int32_t pid, uint64_t start)
{
    rh_proc_stat_t ps;

    if (pid <= 0) {
        return 1;
    }
    if (kill(pid, 0) != 0 && errno == ESRCH) {
        return 1;
    }
    if (rh_proc_stat(pid, &ps) != 0) {
        return kill(pid, 0) != 0 && errno == ESRCH;
    }
    return rh_proc_stat_gone(&ps, start);
}

int rh_segment_creator_gone(const rh_store_hdr_t *hdr)
{
    char boot[RH_STORE_BOOT_ID_LEN];

    rh_read_boot_id(boot);
    if (strncmp(boot, hdr->boot_id, sizeof(boot)) != 0 ||
        hdr->pidns != rh_self_pidns()) {
        return 0;   /* pids of another boot or namespace mean nothing here */
    }
    return rh_segment_pid_gone(hdr->creator_pid, hdr->creator_start);
}

static void rh_segment_stamp(rh_store_t *s, uint64_t page_size,
                             rh_store_pages_t pages)
{
    rh_store_hdr_t *hdr = (rh_store_hdr_t *)s->base;
    rh_segment_id_t self;

    rh_segment_self(&self);
    hdr->version = RH_STORE_VERSION;
    hdr->seg_size = s->length;
    hdr->creator_pid = self.pid;
    hdr->creator_start = self.start;
    hdr->pidns = self.pidns;
    hdr->page_size = page_size;
    hdr->pages = (uint32_t)pages;
    memcpy(hdr->boot_id, self.boot_id, sizeof(hdr->boot_id));
    snprintf(hdr->name, sizeof(hdr->name), "%s", s->name);
    hdr->magic = RH_STORE_MAGIC;
    atomic_store_explicit(&hdr->ready, 0, memory_order_release);
}

/* ---- reading another segment's header ------------------------------------ */

/* Reads the header of the file at path. 1 when it is one of our segments
 * (magic and version match) and belongs to this user, 0 otherwise, -1 when
 * the file is gone. */
static int rh_segment_peek(const char *path, rh_store_hdr_t *hdr,
                           struct stat *st)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    ssize_t n;

    if (fd < 0) {
        return errno == ENOENT ? -1 : 0;
    }
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode) ||
        st->st_uid != geteuid() ||
        (uint64_t)st->st_size < RH_STORE_HDR_SIZE) {
        close(fd);
        return 0;
    }
    n = pread(fd, hdr, sizeof(*hdr), 0);
    close(fd);
    return n == (ssize_t)sizeof(*hdr) && hdr->magic == RH_STORE_MAGIC &&
           hdr->version == RH_STORE_VERSION;
}

/* Removes the file at path when its creator is gone. The inode is checked
 * again right before unlinking so that a segment created under the same
 * name meanwhile (by a new leader) is left alone. Returns 1 if removed. */
static int rh_segment_remove_if_stale(const char *path)
{
    rh_store_hdr_t hdr;
    struct stat st, now;

    if (rh_segment_peek(path, &hdr, &st) != 1 ||
        !rh_segment_creator_gone(&hdr)) {
        return 0;
    }
    if (stat(path, &now) != 0 || now.st_ino != st.st_ino ||
        now.st_dev != st.st_dev) {
        return 0;
    }
    if (unlink(path) != 0) {
        rh_debug("could not remove stale store segment %s: %s", path,
                 strerror(errno));
        return 0;
    }
    rh_info("removed stale store segment %s (creator pid %d is gone)", path,
            (int)hdr.creator_pid);
    return 1;
}

/* ---- huge pages ---------------------------------------------------------- */

/* The first hugetlbfs mount we can write to, or NULL. */
static const char *rh_hugetlbfs_find(const char *wanted, char *buf,
                                     size_t len)
{
    char line[1024], dev[256], dir[512], type[64];
    const char *found = NULL;
    FILE *f;

    if (wanted != NULL) {
        return wanted;
    }
    f = fopen("/proc/mounts", "r");
    if (f == NULL) {
        return NULL;
    }
    while (found == NULL && fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "%255s %511s %63s", dev, dir, type) == 3 &&
            strcmp(type, "hugetlbfs") == 0 && access(dir, W_OK) == 0) {
            snprintf(buf, len, "%s", dir);
            found = buf;
        }
    }
    fclose(f);
    return found;
}

/* The word in brackets of a sysfs choice file ("always [advise] never"). */
static void rh_sysfs_choice(const char *path, char *out, size_t len)
{
    char buf[256], *open_b, *close_b;
    FILE *f = fopen(path, "r");
    size_t n;

    snprintf(out, len, "unavailable");
    if (f == NULL) {
        return;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    open_b = strchr(buf, '[');
    close_b = open_b != NULL ? strchr(open_b, ']') : NULL;
    if (close_b != NULL) {
        *close_b = '\0';
        snprintf(out, len, "%s", open_b + 1);
    }
}

/* The huge= option of the (last, visible) tmpfs mounted on /dev/shm;
 * "never" when absent, the tmpfs default. */
static void rh_shm_mount_huge(char *out, size_t len)
{
    char line[1024], dev[256], dir[512], type[64], opts[512];
    FILE *f = fopen("/proc/mounts", "r");

    snprintf(out, len, "never");
    if (f == NULL) {
        return;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char *h;

        if (sscanf(line, "%255s %511s %63s %511s", dev, dir, type, opts) != 4
            || strcmp(dir, RH_SHM_DIR) != 0) {
            continue;
        }
        snprintf(out, len, "never");
        h = strstr(opts, "huge=");
        if (h != NULL) {
            snprintf(out, len, "%.*s", (int)strcspn(h + 5, ","), h + 5);
        }
    }
    fclose(f);
}

/* Whether a /dev/shm file mapped with MADV_HUGEPAGE may get transparent
 * huge pages. The tmpfs mount's huge= option decides (the sysfs
 * shmem_enabled only governs memfd and anonymous shared memory), unless
 * sysfs says force or deny. `why` describes the settings. */
static int rh_thp_shmem_ok(char *why, size_t len)
{
    char sys[64], mnt[64];
    int ok;

    rh_sysfs_choice("/sys/kernel/mm/transparent_hugepage/shmem_enabled", sys,
                    sizeof(sys));
    rh_shm_mount_huge(mnt, sizeof(mnt));
    if (strcmp(sys, "force") == 0 || strcmp(sys, "deny") == 0) {
        ok = strcmp(sys, "force") == 0;
    } else {
        ok = strcmp(mnt, "always") == 0 || strcmp(mnt, "within_size") == 0 ||
             strcmp(mnt, "advise") == 0;
    }
    snprintf(why, len, "%s is mounted with huge=%s and shmem_enabled is %s",
             RH_SHM_DIR, mnt, sys);
    return ok;
}

/* Bytes of the mapping at addr that the kernel maps with PMD (2 MiB)
 * entries, from /proc/self/smaps. */
static uint64_t rh_pmd_mapped(void *addr)
{
    char line[256], want[32];
    unsigned long long kb, total = 0;
    int in_map = 0;
    FILE *f = fopen("/proc/self/smaps", "r");

    if (f == NULL) {
        return 0;
    }
    snprintf(want, sizeof(want), "%lx-", (unsigned long)(uintptr_t)addr);
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long lo, hi;
        char perms[8];

        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3) {
            in_map = strncmp(line, want, strlen(want)) == 0;
        } else if (in_map &&
                   (sscanf(line, "ShmemPmdMapped: %llu kB", &kb) == 1 ||
                    sscanf(line, "FilePmdMapped: %llu kB", &kb) == 1)) {
            total += kb;
        }
    }
    fclose(f);
    return (uint64_t)total << 10;
}

/* ---- mapping ------------------------------------------------------------- */

/* Maps fd at an address aligned to `align`, which lets the kernel use PMD
 * mappings for huge pages; hugetlbfs requires it. */
static void *rh_map_aligned(int fd, size_t len, size_t align)
{
    uint8_t *reserve, *aligned;
    void *addr;

    reserve = mmap(NULL, len + align, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (reserve == MAP_FAILED) {
        return MAP_FAILED;
    }
    aligned = (uint8_t *)(((uintptr_t)reserve + align - 1) &
                          ~(uintptr_t)(align - 1));
    addr = mmap(aligned, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
                fd, 0);
    if (addr == MAP_FAILED) {
        int err = errno;

        munmap(reserve, len + align);
        errno = err;
        return MAP_FAILED;
    }
    if (aligned > reserve) {
        munmap(reserve, (size_t)(aligned - reserve));
    }
    munmap(aligned + len, (size_t)(reserve + align - aligned));
    return addr;
}

/* Faults every page in now: a first touch inside a put costs ~30x a warm
 * copy. MADV_POPULATE_WRITE (Linux 5.14) reports a failure as an error;
 * older kernels get a write to each page, which keeps its contents. */
static int rh_populate(void *addr, size_t len)
{
    volatile uint8_t *p = addr;

    if (madvise(addr, len, MADV_POPULATE_WRITE) == 0) {
        return 0;
    }
    if (errno != EINVAL) {
        return -1;
    }
    for (size_t off = 0; off < len; off += RH_SMALL_PAGE) {
        p[off] = p[off];
    }
    return 0;
}

/* v rounded up to a multiple of to; 0 when that is past what a file may
 * hold (a size near 2^64 wrapped to a 0-byte store). */
static size_t rh_round_up(uint64_t v, size_t to)
{
    if (v > (uint64_t)INT64_MAX - (to - 1)) {
        return 0;
    }
    return (size_t)((v + to - 1) / to * to);
}

static size_t rh_map_align(size_t len, uint64_t page_size)
{
    if (page_size > RH_SMALL_PAGE) {
        return page_size;
    }
    return len >= RH_THP_SIZE ? RH_THP_SIZE : RH_SMALL_PAGE;
}

/* ---- creating ------------------------------------------------------------ */

/* Opens path (or the shm name) exclusively, mode 0600. Old files of the
 * name were dealt with (rh_segment_claim_name); one that exists now was
 * made by another leader at the same time. */
static rh_status_t rh_segment_open_excl(rh_store_t *s, int *fd_out)
{
    int fd;

    if (s->is_shm) {
        fd = shm_open(s->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    } else {
        fd = open(s->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    }
    if (fd >= 0) {
        *fd_out = fd;
        return RH_OK;
    }
    if (errno == EEXIST) {
        return rh_error_set(RH_ERR_BUSY, "store segment %s was just created "
                            "by another process: two leaders for one node?",
                            s->path);
    }
    return rh_error_set(RH_ERR_UNSUPPORTED, "cannot create store segment "
                        "%s: %s", s->path, strerror(errno));
}

static void rh_segment_discard(rh_store_t *s, int fd)
{
    if (s->base != NULL) {
        munmap(s->base, s->length);
        s->base = NULL;
    }
    if (fd >= 0) {
        close(fd);
    }
    if (s->is_shm) {
        shm_unlink(s->name);
    } else {
        unlink(s->path);
    }
}

static void rh_segment_remember(rh_store_t *s, int fd)
{
    struct stat st;

    if (fstat(fd, &st) == 0) {
        s->dev = st.st_dev;
        s->ino = st.st_ino;
    }
}

/* A file on a hugetlbfs mount. The mmap reserves the huge pages, so a pool
 * too small fails here, not with SIGBUS in a later put. */
static rh_status_t rh_segment_create_hugetlb(rh_store_t *s,
                                             const rh_store_params_t *p,
                                             char *why, size_t whylen)
{
    char dirbuf[512];
    const char *dir = rh_hugetlbfs_find(p->hugetlbfs_dir, dirbuf,
                                        sizeof(dirbuf));
    struct statfs sfs;
    rh_status_t status;
    int fd = -1;

    if (dir == NULL) {
        snprintf(why, whylen, "no writable hugetlbfs mount");
        return RH_ERR_UNSUPPORTED;
    }
    if (statfs(dir, &sfs) != 0 || sfs.f_type != RH_HUGETLBFS_MAGIC ||
        sfs.f_bsize <= (long)RH_SMALL_PAGE) {
        snprintf(why, whylen, "%s is not a hugetlbfs mount", dir);
        return RH_ERR_UNSUPPORTED;
    }
    s->is_shm = 0;
    snprintf(s->path, sizeof(s->path), "%s/%s", dir, s->name + 1);
    status = rh_segment_open_excl(s, &fd);
    if (status != RH_OK) {
        snprintf(why, whylen, "%s", rh_last_error());
        return status;
    }
    s->length = rh_round_up(p->size, (size_t)sfs.f_bsize);
    if (s->length == 0) {
        snprintf(why, whylen, "%s cannot hold %llu bytes", dir,
                 (unsigned long long)p->size);
        goto err_discard;
    }
    if (ftruncate(fd, (off_t)s->length) != 0) {
        snprintf(why, whylen, "ftruncate on %s: %s", dir, strerror(errno));
        goto err_discard;
    }
    s->base = rh_map_aligned(fd, s->length, (size_t)sfs.f_bsize);
    if (s->base == MAP_FAILED) {
        s->base = NULL;
        snprintf(why, whylen, "%s cannot hold %zu bytes in %ld-byte pages "
                 "(%s; see /proc/meminfo HugePages_Free)", dir, s->length,
                 (long)sfs.f_bsize, strerror(errno));
        goto err_discard;
    }
    rh_segment_stamp(s, (uint64_t)sfs.f_bsize, RH_STORE_PAGES_HUGETLB);
    if (rh_populate(s->base, s->length) != 0) {
        snprintf(why, whylen, "pre-faulting huge pages: %s", strerror(errno));
        goto err_discard;
    }
    rh_segment_remember(s, fd);
    close(fd);
    return RH_OK;

err_discard:
    rh_segment_discard(s, fd);
    return RH_ERR_UNSUPPORTED;
}

/* Room left in /dev/shm; a tmpfs that runs out under a mapping answers a
 * later write with SIGBUS, so we check (and reserve) up front. */
static rh_status_t rh_shm_check_room(uint64_t len)
{
    struct statvfs v;
    uint64_t room;

    if (statvfs(RH_SHM_DIR, &v) != 0) {
        return RH_OK;
    }
    room = (uint64_t)v.f_bavail * v.f_frsize;
    if (room < len) {
        return rh_error_set(RH_ERR_NO_MEMORY, "%s has %llu bytes free, the "
                            "store needs %llu (RAYHPC_STORE_SIZE)", RH_SHM_DIR,
                            (unsigned long long)room,
                            (unsigned long long)len);
    }
    return RH_OK;
}

/* Reserves the pages (posix_fallocate: ENOSPC now rather than SIGBUS later)
 * unless THP is wanted: fallocate has no mapping to take the huge page
 * advice from and would fill the file with small pages. */
static rh_status_t rh_shm_fill(rh_store_t *s, int fd, int thp)
{
    int rc;

    if (!thp) {
        rc = posix_fallocate(fd, 0, (off_t)s->length);
        if (rc != 0) {
            return rh_error_set(RH_ERR_NO_MEMORY, "reserving %zu bytes in %s "
                                "for the store: %s", s->length, RH_SHM_DIR,
                                strerror(rc));
        }
    } else if (madvise(s->base, s->length, MADV_HUGEPAGE) != 0) {
        rh_debug("madvise(MADV_HUGEPAGE) on the store: %s", strerror(errno));
    }
    if (rh_populate(s->base, s->length) != 0) {
        return rh_error_set(RH_ERR_NO_MEMORY, "pre-faulting the %zu-byte "
                            "store in %s: %s", s->length, RH_SHM_DIR,
                            strerror(errno));
    }
    return RH_OK;
}

static rh_status_t rh_segment_create_shm(rh_store_t *s,
                                         const rh_store_params_t *p, int thp)
{
    uint64_t page = thp ? RH_THP_SIZE : RH_SMALL_PAGE;
    rh_status_t status;
    int fd = -1;

    s->is_shm = 1;
    snprintf(s->path, sizeof(s->path), "%s%s", RH_SHM_DIR, s->name);
    s->length = rh_round_up(p->size, page);
    /* A length of 0 is a size past what a file may hold: the room is
     * then checked for the size asked for, which it cannot be either. */
    status = rh_shm_check_room(s->length != 0 ? s->length : p->size);
    if (status == RH_OK && s->length == 0) {
        status = rh_error_set(RH_ERR_NO_MEMORY, "a store of %llu bytes is "
                              "more than a file may hold (RAYHPC_STORE_SIZE)",
                              (unsigned long long)p->size);
    }
    if (status != RH_OK) {
        return status;
    }
    status = rh_segment_open_excl(s, &fd);
    if (status != RH_OK) {
        return status;
    }
    if (fchmod(fd, 0600) != 0 || ftruncate(fd, (off_t)s->length) != 0) {
        status = rh_error_set(RH_ERR_NO_MEMORY, "sizing store segment %s to "
                              "%zu bytes: %s", s->path, s->length,
                              strerror(errno));
        goto err_discard;
    }
    s->base = rh_map_aligned(fd, s->length, rh_map_align(s->length, page));
    if (s->base == MAP_FAILED) {
        s->base = NULL;
        status = rh_error_set(RH_ERR_NO_MEMORY, "mapping the %zu-byte store "
                              "segment %s: %s", s->length, s->path,
                              strerror(errno));
        goto err_discard;
    }
    rh_segment_stamp(s, page, thp ? RH_STORE_PAGES_THP : RH_STORE_PAGES_SMALL);
    status = rh_shm_fill(s, fd, thp);
    if (status != RH_OK) {
        goto err_discard;
    }
    rh_segment_remember(s, fd);
    close(fd);
    return RH_OK;

err_discard:
    rh_segment_discard(s, fd);
    return status;
}

/* THP on shmem is best effort: the kernel falls back to small pages when it
 * finds no free 2 MiB page, so we look at what we got. */
static rh_status_t rh_segment_thp_verify(rh_store_t *s,
                                         rh_store_hugepages_t mode,
                                         rh_store_pages_t *pages,
                                         uint64_t *page_size)
{
    rh_store_hdr_t *hdr = (rh_store_hdr_t *)s->base;
    uint64_t pmd = rh_pmd_mapped(s->base);

    if (pmd * 2 >= s->length) {
        return RH_OK;
    }
    if (mode == RH_STORE_HUGEPAGES_ON) {
        return rh_error_set(RH_ERR_UNSUPPORTED, "huge pages were required "
                            "but the kernel gave transparent huge pages for "
                            "only %llu of %zu bytes of the store (memory too "
                            "fragmented?)", (unsigned long long)pmd,
                            s->length);
    }
    rh_debug("store %s: only %llu of %zu bytes in huge pages", s->name,
             (unsigned long long)pmd, s->length);
    if (pmd == 0) {
        *pages = RH_STORE_PAGES_SMALL;
        *page_size = RH_SMALL_PAGE;
        hdr->pages = RH_STORE_PAGES_SMALL;
        hdr->page_size = RH_SMALL_PAGE;
    }
    return RH_OK;
}

/* Makes sure no other segment of our name is in the way, in either place
 * a segment may live: a stale one is removed, a live one is RH_ERR_BUSY
 * (two jobs with the same id on one node). */
static rh_status_t rh_segment_claim_name(rh_store_t *s,
                                         const rh_store_params_t *p)
{
    char dirbuf[512], path[4096];
    const char *dir = rh_hugetlbfs_find(p->hugetlbfs_dir, dirbuf,
                                        sizeof(dirbuf));
    rh_store_hdr_t hdr;
    struct stat st;

    for (int where = 0; where < 2; where++) {
        if (where == 0) {
            snprintf(path, sizeof(path), "%s%s", RH_SHM_DIR, s->name);
        } else if (dir != NULL) {
            snprintf(path, sizeof(path), "%s/%s", dir, s->name + 1);
        } else {
            break;
        }
        if (lstat(path, &st) != 0 || rh_segment_remove_if_stale(path)) {
            continue;
        }
        if (rh_segment_peek(path, &hdr, &st) == 1) {
            return rh_error_set(RH_ERR_BUSY, "store segment %s already "
                                "exists and its creator (pid %d) is alive: "
                                "is another job with the same id on this "
                                "node?", path, (int)hdr.creator_pid);
        }
        return rh_error_set(RH_ERR_BUSY, "store segment %s already exists "
                            "and is not a librayhpc store of this user "
                            "(remove it if it is left over)", path);
    }
    return RH_OK;
}

rh_status_t rh_segment_create(rh_store_t *s, const rh_store_params_t *p,
                              uint64_t *page_size, rh_store_pages_t *pages)
{
    char why_tlb[512] = "huge pages are off", thp_mode[256] = "off";
    rh_store_hugepages_t mode = p->hugepages;
    rh_status_t status;
    int thp = 0;

    status = rh_segment_claim_name(s, p);
    if (status != RH_OK) {
        return status;
    }
    if (mode != RH_STORE_HUGEPAGES_OFF) {
        status = rh_segment_create_hugetlb(s, p, why_tlb, sizeof(why_tlb));
        if (status == RH_OK) {
            *pages = RH_STORE_PAGES_HUGETLB;
            *page_size = ((rh_store_hdr_t *)s->base)->page_size;
            return RH_OK;
        }
        if (status == RH_ERR_BUSY) {
            return rh_error_set(status, "%s", why_tlb);
        }
        thp = rh_thp_shmem_ok(thp_mode, sizeof(thp_mode));
        rh_debug("store %s: no hugetlbfs (%s); shmem THP mode %s", s->name,
                 why_tlb, thp_mode);
    }
    if (mode == RH_STORE_HUGEPAGES_ON && !thp) {
        return rh_error_set(RH_ERR_UNSUPPORTED, "huge pages were required "
                            "for the store but none can be had: hugetlbfs: "
                            "%s; transparent huge pages: %s (mount /dev/shm "
                            "with huge=advise, or give a hugetlbfs mount "
                            "with free pages)", why_tlb, thp_mode);
    }
    status = rh_segment_create_shm(s, p, thp);
    if (status != RH_OK) {
        return status;
    }
    *pages = thp ? RH_STORE_PAGES_THP : RH_STORE_PAGES_SMALL;
    *page_size = thp ? RH_THP_SIZE : RH_SMALL_PAGE;
    if (thp) {
        status = rh_segment_thp_verify(s, mode, pages, page_size);
        if (status != RH_OK) {
            rh_segment_discard(s, -1);
        }
    }
    return status;
}

/* ---- attaching ----------------------------------------------------------- */

/* One look at the segment at path: 1 mapped, 0 not ready yet (what we saw
 * goes to state), -1 a hard error (message set). */
static int rh_segment_try_path(rh_store_t *s, int is_shm, const char *path,
                               char *state, size_t statelen, int *filling)
{
    rh_store_hdr_t hdr;
    struct stat st;
    int fd, ret = 0;

    fd = is_shm ? shm_open(s->name, O_RDWR | O_CLOEXEC, 0)
                : open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        int err = errno;

        if (err == ENOENT) {
            snprintf(state, statelen, "it does not exist");
            return 0;
        }
        rh_error_set(RH_ERR_UNSUPPORTED, "cannot open store segment %s: %s",
                     path, strerror(err));
        return -1;
    }
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size < RH_STORE_HDR_SIZE ||
        pread(fd, &hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) ||
        hdr.magic != RH_STORE_MAGIC) {
        snprintf(state, statelen, "it is not initialized");
        goto out;
    }
    /* Stamped, not ready: its creator is still pre-faulting it, which
     * takes long on a busy host, or it died doing so. */
    if (atomic_load_explicit(&hdr.ready, memory_order_relaxed) != 1) {
        if (rh_segment_creator_gone(&hdr)) {
            snprintf(state, statelen, "its creator (pid %d) is gone and "
                     "left it unfinished", (int)hdr.creator_pid);
        } else {
            snprintf(state, statelen, "its creator (pid %d) is still "
                     "preparing it", (int)hdr.creator_pid);
            *filling = 1;
        }
        goto out;
    }
    if (hdr.version != RH_STORE_VERSION) {
        rh_error_set(RH_ERR_UNSUPPORTED, "store segment %s has layout "
                     "version %u, this library reads %u", path,
                     hdr.version, RH_STORE_VERSION);
        ret = -1;
        goto out;
    }
    if (rh_segment_creator_gone(&hdr)) {
        snprintf(state, statelen, "it was left by pid %d, which is gone",
                 (int)hdr.creator_pid);
        goto out;
    }
    if ((uint64_t)st.st_size != hdr.seg_size) {
        snprintf(state, statelen, "its size does not match its header");
        goto out;
    }
    s->length = hdr.seg_size;
    s->base = rh_map_aligned(fd, s->length,
                             rh_map_align(s->length, hdr.page_size));
    if (s->base == MAP_FAILED) {
        s->base = NULL;
        rh_error_set(RH_ERR_NO_MEMORY, "mapping the %zu-byte store segment "
                     "%s: %s", s->length, path, strerror(errno));
        ret = -1;
        goto out;
    }
    if (hdr.pages == RH_STORE_PAGES_THP) {
        madvise(s->base, s->length, MADV_HUGEPAGE);
    }
    /* page tables only: the pages exist, so this is cheap and spares the
     * first get of each page a fault */
    madvise(s->base, s->length, MADV_POPULATE_WRITE);
    s->is_shm = is_shm;
    snprintf(s->path, sizeof(s->path), "%s", path);
    rh_segment_remember(s, fd);
    ret = 1;
out:
    close(fd);
    return ret;
}

/* The segment is in /dev/shm or on the hugetlbfs mount; a stale file in
 * one place must not hide the live one in the other. */
static int rh_segment_try_attach(rh_store_t *s, const rh_store_params_t *p,
                                 char *state, size_t statelen, int *filling)
{
    char dirbuf[512], path[4096], other[256];
    const char *dir;
    int ret;

    *filling = 0;
    snprintf(path, sizeof(path), "%s%s", RH_SHM_DIR, s->name);
    ret = rh_segment_try_path(s, 1, path, state, statelen, filling);
    dir = rh_hugetlbfs_find(p->hugetlbfs_dir, dirbuf, sizeof(dirbuf));
    if (ret != 0 || dir == NULL) {
        return ret;
    }
    snprintf(path, sizeof(path), "%s/%s", dir, s->name + 1);
    ret = rh_segment_try_path(s, 0, path, other, sizeof(other), filling);
    if (ret == 0 && strcmp(other, "it does not exist") != 0) {
        snprintf(state, statelen, "%s", other);
    }
    return ret;
}

/* Past its timeout, an attach still waits for a live creator that is
 * preparing the segment (a busy host pre-faults slowly), up to this. */
#define RH_SEGMENT_FILL_WAIT_MS (10 * 60 * 1000)

rh_status_t rh_segment_attach(rh_store_t *s, const rh_store_params_t *p)
{
    int timeout_ms = p->attach_timeout_ms > 0 ? p->attach_timeout_ms : 10000;
    struct timespec start, now, nap = { 0, 100000 };
    char state[256] = "";
    long waited_ms;
    int ret, filling, absent, warned = 0;

    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        ret = rh_segment_try_attach(s, p, state, sizeof(state), &filling);
        if (ret != 0) {
            return ret > 0 ? RH_OK : RH_ERR_UNSUPPORTED;
        }
        /* A leader that has not got to creating it yet, or has created
         * it and not yet stamped its header, while it lives, is as good as
         * one filling it. */
        absent = strcmp(state, "it does not exist") == 0;
        if (!filling && p->leader_pid > 0 &&
            (absent || strcmp(state, "it is not initialized") == 0) &&
            !rh_segment_pid_gone(p->leader_pid, 0)) {
            filling = 1;
            snprintf(state, sizeof(state), "%s yet and its creator (pid %d) "
                     "is alive", absent ? "it does not exist" :
                     "it is not initialized", (int)p->leader_pid);
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        waited_ms = (now.tv_sec - start.tv_sec) * 1000 +
                    (now.tv_nsec - start.tv_nsec) / 1000000;
        if (waited_ms >= timeout_ms &&
            (!filling || waited_ms >= RH_SEGMENT_FILL_WAIT_MS)) {
            return rh_error_set(RH_ERR_TIMEOUT, "store segment %s was not "
                                "ready after %ld ms: %s (has the node leader "
                                "created it?)", s->name, waited_ms, state);
        }
        if (waited_ms >= timeout_ms && !warned) {
            rh_warn("store segment %s not ready after %ld ms: %s; waiting "
                    "on while it lives", s->name, waited_ms, state);
            warned = 1;
        }
        nanosleep(&nap, NULL);
        if (nap.tv_nsec < 10000000) {
            nap.tv_nsec *= 2;
        }
    }
}

void rh_segment_unmap(rh_store_t *s)
{
    if (s->base != NULL) {
        munmap(s->base, s->length);
        s->base = NULL;
    }
}

/* Removes our file only: a new leader may have made another of that name. */
void rh_segment_unlink(rh_store_t *s)
{
    struct stat st;

    if (stat(s->path, &st) != 0 || st.st_ino != s->ino ||
        st.st_dev != s->dev) {
        return;
    }
    if ((s->is_shm ? shm_unlink(s->name) : unlink(s->path)) != 0) {
        rh_warn("could not remove store segment %s: %s", s->path,
                strerror(errno));
    }
}

/* ---- names and reaping --------------------------------------------------- */

static size_t rh_name_part(char *out, const char *in)
{
    size_t n = 0;

    for (; in[n] != '\0' && n < 100; n++) {
        char c = in[n];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';

        out[n] = ok ? c : '_';
    }
    out[n] = '\0';
    return n;
}

rh_status_t rh_store_segment_name(const char *job_id, const char *node,
                                  char *buf, size_t len)
{
    char job[101], nd[101];

    if (job_id == NULL || node == NULL || job_id[0] == '\0' ||
        node[0] == '\0') {
        return rh_error_set(RH_ERR_INVALID_PARAM, "the store segment name "
                            "needs a job id and a node name");
    }
    rh_name_part(job, job_id);
    rh_name_part(nd, node);
    if ((size_t)snprintf(buf, len, "/rayhpc-%s-%s", job, nd) >= len) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "store segment name "
                            "buffer of %zu bytes is too short", len);
    }
    return RH_OK;
}

static int rh_reap_dir(const char *dir, const char *prefix)
{
    size_t plen = strlen(prefix);
    char path[4096];
    struct dirent *d;
    int removed = 0;
    DIR *dp = opendir(dir);

    if (dp == NULL) {
        return 0;
    }
    while ((d = readdir(dp)) != NULL) {
        if (strncmp(d->d_name, prefix, plen) != 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
        /* a store's segment, or a rank's same-host rings */
        removed += rh_segment_remove_if_stale(path) ||
                   rh_shml_remove_if_stale(path);
    }
    closedir(dp);
    return removed;
}

rh_status_t rh_store_reap_stale(const char *prefix, int *removed)
{
    char dirbuf[512];
    const char *tlb = rh_hugetlbfs_find(NULL, dirbuf, sizeof(dirbuf));
    int n;

    if (prefix == NULL) {
        prefix = "rayhpc-";
    }
    if (prefix[0] == '/') {
        prefix++;
    }
    if (strncmp(prefix, "rayhpc-", 7) != 0 &&
        strncmp("rayhpc-", prefix, strlen(prefix)) != 0) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "stale segment prefix "
                            "\"%s\" does not name store segments (they "
                            "start with \"rayhpc-\")", prefix);
    }
    n = rh_reap_dir(RH_SHM_DIR, prefix);
    if (tlb != NULL) {
        n += rh_reap_dir(tlb, prefix);
    }
    if (removed != NULL) {
        *removed = n;
    }
    return RH_OK;
}
