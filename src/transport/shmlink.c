/*
 * The same-host message path (see shmlink.h).
 *
 * Segment of rank R: a header, then one ring per rank of R's host, in rank
 * order (the k-th rank of the host writes ring k). A sender maps the
 * receiver's segment on its first send, once the receiver stamped it ready
 * with its own pid: a segment left by another process under that name is
 * not written into.
 *
 * Records: a message that fits one record has its header length as tag;
 * a larger one goes as a FIRST record (total length and header length,
 * then the start of header || payload) and CONT records, the last one
 * marked LAST.
 */
#include "transport/shmlink.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/completion.h"
#include "base/log.h"
#include "base/status.h"
#include "transport/shmring.h"

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
/* A thread that wrote a message into a ring itself and the progress thread
 * that reads the answer are ordered through the other process (its reads
 * and writes of the rings), which ThreadSanitizer does not see: it is told
 * here, as the op queue told it when such messages went through it. */
#define RH_SHML_TSAN_RELEASE() __tsan_release(&rh_shml)
#define RH_SHML_TSAN_ACQUIRE() __tsan_acquire(&rh_shml)
#else
#define RH_SHML_TSAN_RELEASE() ((void)0)
#define RH_SHML_TSAN_ACQUIRE() ((void)0)
#endif

#define RH_SHML_MAGIC    0x52484c4e4b524e47ull   /* "RHLNKRNG" */
#define RH_SHML_VERSION  1u
#define RH_SHML_HDR      128u
#define RH_SHML_FIRST    0x01000000u
#define RH_SHML_CONT     0x02000000u
#define RH_SHML_LAST     0x04000000u
#define RH_SHML_HLEN     0x0000ffffu
#define RH_SHML_BURST    64u     /* records read from one ring at a time */
#define RH_SHML_RETRY_NS 1000000ull   /* a missing segment: look again */

typedef struct rh_shml_seg_hdr {
    uint64_t         magic;
    uint32_t         version;
    _Atomic uint32_t ready;       /* 1 once every ring is initialized */
    int32_t          owner_pid;
    uint32_t         slots;       /* rings */
    uint64_t         ring_cap;
    uint64_t         seg_size;
    _Alignas(64) _Atomic uint32_t sleeping;   /* its progress thread is
                                               * about to sleep: ring */
} rh_shml_seg_hdr_t;

_Static_assert(sizeof(rh_shml_seg_hdr_t) <= RH_SHML_HDR,
               "segment header fits its room");

typedef struct rh_shml_first {
    uint32_t total;   /* bytes of header || payload */
    uint32_t hlen;
} rh_shml_first_t;

enum { RH_SHML_TX_NONE, RH_SHML_TX_OPEN, RH_SHML_TX_DEAD };

typedef struct rh_shml_peer {
    int32_t             slot;       /* its ring in a segment; -1: not here */
    pid_t               pid;
    struct sockaddr_un  bell;       /* its doorbell */
    socklen_t           bell_len;
    /* sending to it: the writer's side belongs to whoever holds tx_lock
     * (the progress thread, or a thread writing a small message itself) */
    _Atomic uint32_t    tx_lock;
    _Atomic uint32_t    tx_held;    /* am.c keeps messages for this ring */
    _Atomic uint64_t    tx_sent;    /* records; written under tx_lock */
    _Atomic uint64_t    tx_bells;
    int                 tx_state;
    rh_shmring_t        tx;
    _Atomic uint32_t   *tx_sleeping;
    void               *tx_map;
    size_t              tx_map_len;
    uint64_t            next_try;   /* segment missing: not before */
    /* receiving from it */
    int                 rx_on;
    rh_shmring_t        rx;
    uint8_t            *asm_buf;    /* a fragmented message so far */
    uint32_t            asm_total, asm_got, asm_hlen;
    int                 asm_skip;   /* its fragments are being dropped */
} rh_shml_peer_t;

typedef struct rh_shml {
    int                 rank, size;
    uint32_t            slots;
    uint32_t            my_slot;
    uint64_t            cap;
    rh_shml_peer_t     *peers;
    uint8_t            *route;
    int                *rx_ranks;   /* ranks whose rings we read */
    int                 num_rx;
    rh_shml_seg_hdr_t  *seg;        /* ours */
    size_t              seg_len;
    char                name[200];
    char                job[160];
    int                 bell_fd;
    int                 missing;    /* sends wait for a segment */
    rh_shml_deliver_fn  deliver;
    rh_shml_stats_t     stats;
} rh_shml_t;

const uint8_t *rh_shml_route;
static rh_shml_t rh_shml = { .bell_fd = -1 };

const rh_shml_stats_t *rh_shml_stats(void)
{
    rh_shml.stats.sent = 0;
    rh_shml.stats.bells = 0;
    for (int r = 0; rh_shml.peers != NULL && r < rh_shml.size; r++) {
        rh_shml.stats.sent += atomic_load_explicit(&rh_shml.peers[r].tx_sent,
                                                   memory_order_relaxed);
        rh_shml.stats.bells +=
            atomic_load_explicit(&rh_shml.peers[r].tx_bells,
                                 memory_order_relaxed);
    }
    return &rh_shml.stats;
}

/* A count only its lock's holder writes: a plain add, readable anywhere. */
static inline void rh_shml_tx_count(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) +
                          1, memory_order_relaxed);
}

static inline int rh_shml_tx_trylock(rh_shml_peer_t *p)
{
    return atomic_load_explicit(&p->tx_lock, memory_order_relaxed) == 0 &&
           atomic_exchange_explicit(&p->tx_lock, 1,
                                    memory_order_acquire) == 0;
}

/* Another thread holds a ring only for the copy of one small message:
 * spin, yielding now and then for a holder that lost its core. */
static void rh_shml_tx_lock(rh_shml_peer_t *p)
{
    for (unsigned i = 1; !rh_shml_tx_trylock(p); i++) {
        if ((i & 63) == 0) {
            sched_yield();
        }
    }
}

static inline void rh_shml_tx_unlock(rh_shml_peer_t *p)
{
    atomic_store_explicit(&p->tx_lock, 0, memory_order_release);
}

size_t rh_shml_max_whole(void)
{
    return rh_shmring_max_record(rh_shml.cap);
}

static size_t rh_shml_seg_size(uint32_t slots, uint64_t cap)
{
    return RH_SHML_HDR + (size_t)slots * rh_shmring_bytes(cap);
}

static void *rh_shml_ring_mem(void *seg, uint32_t slot, uint64_t cap)
{
    return (uint8_t *)seg + RH_SHML_HDR + (size_t)slot * rh_shmring_bytes(cap);
}

rh_status_t rh_shml_segment_name(const char *job_id, int rank, char *buf,
                                 size_t len)
{
    char job[101];
    size_t i;

    for (i = 0; job_id[i] != '\0' && i < sizeof(job) - 1; i++) {
        char c = job_id[i];

        job[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '-' || c == '.' ? c : '_';
    }
    job[i] = '\0';
    if ((size_t)snprintf(buf, len, "/rayhpc-%s-ring%d", job, rank) >= len) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "ring segment name buffer "
                            "of %zu bytes is too short", len);
    }
    return RH_OK;
}

static void rh_shml_bell_addr(pid_t pid, struct sockaddr_un *addr,
                              socklen_t *len)
{
    int n;

    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    /* abstract namespace: a leading NUL, no file to clean up */
    n = snprintf(addr->sun_path + 1, sizeof(addr->sun_path) - 1,
                 "rayhpc-bell-%d", (int)pid);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

static void rh_shml_ring_bell(rh_shml_peer_t *p)
{
    static const char b = 1;

    rh_shml_tx_count(&p->tx_bells);
    /* EAGAIN: its queue holds a ring already, it wakes anyway. */
    (void)sendto(rh_shml.bell_fd, &b, 1, MSG_DONTWAIT,
                 (const struct sockaddr *)&p->bell, p->bell_len);
}

/* ---- our segment ----------------------------------------------------------- */

/* A segment of ours under that name: left by a process that is gone (or
 * by us, before a re-init), it is removed; a live one's is not ours to
 * take. */
static rh_status_t rh_shml_clear_name(const char *name)
{
    rh_shml_seg_hdr_t hdr;
    int fd = shm_open(name, O_RDONLY | O_CLOEXEC, 0);
    ssize_t n;

    if (fd < 0) {
        return RH_OK;
    }
    n = pread(fd, &hdr, sizeof(hdr), 0);
    close(fd);
    if (n == (ssize_t)sizeof(hdr) && hdr.magic == RH_SHML_MAGIC &&
        hdr.owner_pid != getpid() && kill(hdr.owner_pid, 0) == 0) {
        return rh_error_set(RH_ERR_BUSY, "ring segment %s belongs to the "
                            "live process %d: is another job with the same "
                            "id on this host?", name, (int)hdr.owner_pid);
    }
    (void)shm_unlink(name);
    return RH_OK;
}

static rh_status_t rh_shml_create_segment(void)
{
    size_t len = rh_shml_seg_size(rh_shml.slots, rh_shml.cap);
    rh_shml_seg_hdr_t *seg;
    rh_status_t status;
    int fd;

    status = rh_shml_clear_name(rh_shml.name);
    if (status != RH_OK) {
        return status;
    }
    fd = shm_open(rh_shml.name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return rh_error_set(RH_ERR_TRANSPORT, "cannot create ring segment "
                            "%s: %s", rh_shml.name, strerror(errno));
    }
    if (ftruncate(fd, (off_t)len) != 0) {
        status = rh_error_set(RH_ERR_NO_MEMORY, "cannot size ring segment "
                              "%s to %zu bytes: %s", rh_shml.name, len,
                              strerror(errno));
        goto err_fd;
    }
    seg = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (seg == MAP_FAILED) {
        status = rh_error_set(RH_ERR_NO_MEMORY, "cannot map ring segment "
                              "%s: %s", rh_shml.name, strerror(errno));
        goto err_fd;
    }
    close(fd);
    seg->magic = RH_SHML_MAGIC;
    seg->version = RH_SHML_VERSION;
    seg->owner_pid = getpid();
    seg->slots = rh_shml.slots;
    seg->ring_cap = rh_shml.cap;
    seg->seg_size = len;
    atomic_store_explicit(&seg->sleeping, 0, memory_order_relaxed);
    for (uint32_t s = 0; s < rh_shml.slots; s++) {
        rh_shmring_init(rh_shml_ring_mem(seg, s, rh_shml.cap), rh_shml.cap);
    }
    atomic_store_explicit(&seg->ready, 1, memory_order_release);
    rh_shml.seg = seg;
    rh_shml.seg_len = len;
    return RH_OK;

err_fd:
    close(fd);
    (void)shm_unlink(rh_shml.name);
    return status;
}

static rh_status_t rh_shml_open_bell(int epoll_fd)
{
    struct sockaddr_un addr;
    struct epoll_event ev;
    socklen_t len;

    rh_shml.bell_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK |
                             SOCK_CLOEXEC, 0);
    if (rh_shml.bell_fd < 0) {
        return rh_error_set(RH_ERR_TRANSPORT, "doorbell socket: %s",
                            strerror(errno));
    }
    rh_shml_bell_addr(getpid(), &addr, &len);
    if (bind(rh_shml.bell_fd, (struct sockaddr *)&addr, len) != 0) {
        return rh_error_set(RH_ERR_TRANSPORT, "cannot bind the doorbell "
                            "rayhpc-bell-%d: %s", (int)getpid(),
                            strerror(errno));
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.fd = rh_shml.bell_fd;
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, rh_shml.bell_fd, &ev) != 0) {
        return rh_error_set(RH_ERR_TRANSPORT, "epoll_ctl (doorbell): %s",
                            strerror(errno));
    }
    return RH_OK;
}

rh_status_t rh_shml_open(const char *job_id, int rank, int size,
                         const rh_tp_peer_info_t *peers, uint64_t ring_bytes,
                         int epoll_fd, rh_shml_deliver_fn deliver)
{
    rh_status_t status;
    uint32_t slot = 0;

    memset(&rh_shml, 0, sizeof(rh_shml));
    rh_shml.bell_fd = -1;
    if (!rh_shmring_cap_ok(ring_bytes)) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "RAYHPC_SHM_RING_BYTES=%llu"
                            " is not a power of two from %u to 2G",
                            (unsigned long long)ring_bytes,
                            RH_SHMRING_MIN_CAP);
    }
    rh_shml.rank = rank;
    rh_shml.size = size;
    rh_shml.cap = ring_bytes;
    rh_shml.deliver = deliver;
    snprintf(rh_shml.job, sizeof(rh_shml.job), "%s", job_id);
    rh_shml.peers = calloc((size_t)size, sizeof(*rh_shml.peers));
    rh_shml.route = calloc((size_t)size, 1);
    rh_shml.rx_ranks = calloc((size_t)size, sizeof(int));
    if (rh_shml.peers == NULL || rh_shml.route == NULL ||
        rh_shml.rx_ranks == NULL) {
        status = rh_error_set(RH_ERR_NO_MEMORY, "ring tables of %d ranks",
                              size);
        goto err;
    }
    for (int r = 0; r < size; r++) {
        rh_shml_peer_t *p = &rh_shml.peers[r];

        p->slot = -1;
        if (!peers[r].same_host && r != rank) {
            continue;
        }
        p->slot = (int32_t)slot++;
        p->pid = peers[r].pid;
        rh_shml_bell_addr(p->pid, &p->bell, &p->bell_len);
        if (r == rank) {
            rh_shml.my_slot = (uint32_t)p->slot;
            continue;   /* our own messages stay with UCX's self */
        }
        rh_shml.route[r] = 1;
    }
    rh_shml.slots = slot;
    status = rh_shml_segment_name(job_id, rank, rh_shml.name,
                                  sizeof(rh_shml.name));
    if (status == RH_OK) {
        status = rh_shml_create_segment();
    }
    if (status == RH_OK) {
        status = rh_shml_open_bell(epoll_fd);
    }
    if (status != RH_OK) {
        goto err;
    }
    for (int r = 0; r < size; r++) {
        rh_shml_peer_t *p = &rh_shml.peers[r];

        if (rh_shml.route[r]) {
            rh_shmring_attach_reader(&p->rx, rh_shml_ring_mem(rh_shml.seg,
                                     (uint32_t)p->slot, rh_shml.cap),
                                     rh_shml.cap);
            p->rx_on = 1;
            rh_shml.rx_ranks[rh_shml.num_rx++] = r;
        }
    }
    rh_shml_route = rh_shml.route;
    rh_debug("messages to the %u other ranks of this host go through "
             "rings of %llu bytes (%s)", rh_shml.slots - 1,
             (unsigned long long)rh_shml.cap, rh_shml.name);
    return RH_OK;

err:
    rh_shml_close();
    return status;
}

void rh_shml_close(void)
{
    rh_shml_route = NULL;
    if (rh_shml.peers != NULL) {
        for (int r = 0; r < rh_shml.size; r++) {
            rh_shml_peer_t *p = &rh_shml.peers[r];

            rh_shml_tx_lock(p);
            p->tx_state = RH_SHML_TX_DEAD;
            rh_shml_tx_unlock(p);
            if (p->tx_map != NULL) {
                munmap(p->tx_map, p->tx_map_len);
            }
            free(p->asm_buf);
        }
    }
    if (rh_shml.seg != NULL) {
        munmap(rh_shml.seg, rh_shml.seg_len);
        (void)shm_unlink(rh_shml.name);
    }
    if (rh_shml.bell_fd >= 0) {
        close(rh_shml.bell_fd);
    }
    free(rh_shml.peers);
    free(rh_shml.route);
    free(rh_shml.rx_ranks);
    memset(&rh_shml, 0, sizeof(rh_shml));
    rh_shml.bell_fd = -1;
}

/* ---- sending --------------------------------------------------------------- */

/* Maps dest's segment: RH_ERR_BUSY while it is not there (or not ready,
 * or someone else's), looked at again a millisecond later at the
 * soonest. */
static rh_status_t rh_shml_attach(uint32_t dest, rh_shml_peer_t *p)
{
    char name[200];
    rh_shml_seg_hdr_t *seg;
    struct stat st;
    uint64_t now = rh_time_ns();
    size_t want = rh_shml_seg_size(rh_shml.slots, rh_shml.cap);
    rh_status_t status;
    int fd;

    if (now < p->next_try) {
        return RH_ERR_BUSY;
    }
    p->next_try = now + RH_SHML_RETRY_NS;
    rh_shml.missing = 1;
    status = rh_shml_segment_name(rh_shml.job, (int)dest, name,
                                  sizeof(name));
    if (status != RH_OK) {
        return status;
    }
    fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) {
        return RH_ERR_BUSY;
    }
    if (fstat(fd, &st) != 0 || (size_t)st.st_size < want) {
        close(fd);
        return RH_ERR_BUSY;   /* being sized */
    }
    seg = mmap(NULL, want, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (seg == MAP_FAILED) {
        return rh_error_set(RH_ERR_NO_MEMORY, "cannot map rank %u's ring "
                            "segment: %s", dest, strerror(errno));
    }
    if (seg->magic != RH_SHML_MAGIC || seg->version != RH_SHML_VERSION ||
        !atomic_load_explicit(&seg->ready, memory_order_acquire) ||
        seg->owner_pid != p->pid) {
        munmap(seg, want);
        return RH_ERR_BUSY;   /* not stamped yet, or a dead job's */
    }
    if (seg->ring_cap != rh_shml.cap || seg->slots != rh_shml.slots) {
        uint64_t cap = seg->ring_cap;

        munmap(seg, want);
        p->tx_state = RH_SHML_TX_DEAD;
        return rh_error_set(RH_ERR_TRANSPORT, "rank %u's rings are of %llu "
                            "bytes, ours of %llu: every rank needs the same "
                            "RAYHPC_SHM_RING_BYTES", dest,
                            (unsigned long long)cap,
                            (unsigned long long)rh_shml.cap);
    }
    rh_shmring_attach_writer(&p->tx, rh_shml_ring_mem(seg, rh_shml.my_slot,
                                                      rh_shml.cap),
                             rh_shml.cap);
    p->tx_sleeping = &seg->sleeping;
    p->tx_map = seg;
    p->tx_map_len = want;
    p->tx_state = RH_SHML_TX_OPEN;
    return RH_OK;
}

/* What we published may find the receiver asleep: wake it. The commit's
 * store of head and this load are sequentially consistent, as are
 * rh_shml_sleep_prepare's store of the flag and its loads of the heads:
 * either it sees our head, or we see its flag. */
static inline void rh_shml_notify(rh_shml_peer_t *p)
{
    if (rh_unlikely(atomic_load_explicit(p->tx_sleeping,
                                         memory_order_seq_cst) != 0) &&
        atomic_exchange_explicit(p->tx_sleeping, 0, memory_order_relaxed)) {
        rh_shml_ring_bell(p);
    }
}

/* Copies bytes [off, off + n) of hdr || data to out. */
static inline void rh_shml_copy(uint8_t *out, const void *hdr, size_t hlen,
                                const void *data, size_t off, size_t n)
{
    if (off < hlen) {
        size_t h = hlen - off < n ? hlen - off : n;

        memcpy(out, (const uint8_t *)hdr + off, h);
        out += h;
        n -= h;
        off = hlen;
    }
    if (n != 0) {
        memcpy(out, (const uint8_t *)data + (off - hlen), n);
    }
}

/* A reserve that found the ring full: ask the reader to ring us when it
 * made room, unless it did meanwhile. */
static void *rh_shml_reserve(rh_shml_peer_t *p, uint32_t len)
{
    void *body = rh_shmring_reserve(&p->tx, len);

    if (rh_likely(body != NULL)) {
        return body;
    }
    rh_shml.stats.full++;
    /* Until the flag is left set with no room made since: the reader then
     * rings us once it consumed something. */
    while (body == NULL && rh_shmring_wait_room(&p->tx)) {
        body = rh_shmring_reserve(&p->tx, len);
    }
    return body;
}

static rh_status_t rh_shml_send_locked(uint32_t dest, rh_shml_peer_t *p,
                                       const void *hdr, size_t hlen,
                                       const void *data, size_t dlen,
                                       size_t *sent);

rh_status_t rh_shml_send(uint32_t dest, const void *hdr, size_t hlen,
                         const void *data, size_t dlen, size_t *sent)
{
    rh_shml_peer_t *p = &rh_shml.peers[dest];
    rh_status_t status;

    rh_shml_tx_lock(p);
    status = rh_shml_send_locked(dest, p, hdr, hlen, data, dlen, sent);
    /* The rest will wait in am.c, which lets go once nothing does: from
     * now on, before anyone else writes (a message half written in
     * fragments cannot take another in between). */
    if (status == RH_ERR_BUSY) {
        atomic_store_explicit(&p->tx_held, 1, memory_order_relaxed);
    }
    rh_shml_tx_unlock(p);
    return status;
}

rh_shml_any_t rh_shml_send_any(uint32_t dest, const void *wire, size_t wlen,
                               const void *hdr, size_t hlen,
                               const void *data, size_t dlen)
{
    rh_shml_peer_t *p = &rh_shml.peers[dest];
    uint8_t *body;

    /* Held by the progress thread: the request path is as quick. */
    if (rh_unlikely(!rh_shml_tx_trylock(p))) {
        return RH_SHML_ANY_NOT_NOW;
    }
    if (rh_unlikely(p->tx_state != RH_SHML_TX_OPEN ||
                    atomic_load_explicit(&p->tx_held,
                                         memory_order_relaxed) != 0)) {
        rh_shml_tx_unlock(p);
        return RH_SHML_ANY_NOT_NOW;
    }
    body = rh_shmring_reserve(&p->tx, (uint32_t)(wlen + hlen + dlen));
    if (rh_unlikely(body == NULL)) {
        rh_shml_tx_unlock(p);
        return RH_SHML_ANY_FULL;
    }
    memcpy(body, wire, wlen);
    if (hlen != 0) {
        memcpy(body + wlen, hdr, hlen);
    }
    if (dlen != 0) {
        memcpy(body + wlen + hlen, data, dlen);
    }
    RH_SHML_TSAN_RELEASE();
    rh_shmring_commit(&p->tx, (uint32_t)(wlen + hlen));
    rh_shml_tx_count(&p->tx_sent);
    rh_shml_notify(p);
    rh_shml_tx_unlock(p);
    return RH_SHML_ANY_SENT;
}

void rh_shml_unhold(uint32_t dest)
{
    _Atomic uint32_t *held = &rh_shml.peers[dest].tx_held;

    /* read first: the line stays shared with the threads that look */
    if (atomic_load_explicit(held, memory_order_relaxed) != 0) {
        atomic_store_explicit(held, 0, memory_order_relaxed);
    }
}

static rh_status_t rh_shml_send_locked(uint32_t dest, rh_shml_peer_t *p,
                                       const void *hdr, size_t hlen,
                                       const void *data, size_t dlen,
                                       size_t *sent)
{
    size_t total = hlen + dlen;
    uint32_t max = rh_shmring_max_record(rh_shml.cap);
    uint8_t *body;

    if (rh_unlikely(p->tx_state != RH_SHML_TX_OPEN)) {
        rh_status_t status;

        if (p->tx_state == RH_SHML_TX_DEAD) {
            return RH_ERR_PEER_FAILED;
        }
        status = rh_shml_attach(dest, p);
        if (status != RH_OK) {
            return status;
        }
    }
    if (rh_likely(*sent == 0 && total <= max)) {
        body = rh_shml_reserve(p, (uint32_t)total);
        if (rh_unlikely(body == NULL)) {
            return RH_ERR_BUSY;
        }
        memcpy(body, hdr, hlen);
        if (dlen != 0) {
            memcpy(body + hlen, data, dlen);
        }
        rh_shmring_commit(&p->tx, (uint32_t)hlen);
        rh_shml_tx_count(&p->tx_sent);
        rh_shml_notify(p);
        return RH_OK;
    }
    if (total > UINT32_MAX || hlen > RH_SHML_HLEN) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "a message of %zu bytes "
                            "cannot go through a ring", total);
    }
    while (*sent < total) {
        size_t first = *sent == 0 ? sizeof(rh_shml_first_t) : 0;
        size_t chunk = total - *sent < max - first ? total - *sent :
                       max - first;
        uint32_t tag = first ? RH_SHML_FIRST : RH_SHML_CONT;

        body = rh_shml_reserve(p, (uint32_t)(first + chunk));
        if (body == NULL) {
            rh_shml_notify(p);
            return RH_ERR_BUSY;
        }
        if (first) {
            rh_shml_first_t f = { (uint32_t)total, (uint32_t)hlen };

            memcpy(body, &f, sizeof(f));
        }
        rh_shml_copy(body + first, hdr, hlen, data, *sent, chunk);
        *sent += chunk;
        if (*sent == total) {
            tag |= RH_SHML_LAST;
        }
        rh_shmring_commit(&p->tx, tag);
        rh_shml_tx_count(&p->tx_sent);
    }
    rh_shml_notify(p);
    return RH_OK;
}

/* ---- receiving ------------------------------------------------------------- */

static void rh_shml_asm_drop(rh_shml_peer_t *p)
{
    free(p->asm_buf);
    p->asm_buf = NULL;
    p->asm_total = p->asm_got = p->asm_hlen = 0;
}

static void rh_shml_bad_record(int src, const char *why)
{
    rh_shml.stats.dropped++;
    if (rh_shml.stats.dropped <= 8 || (rh_shml.stats.dropped & 1023) == 0) {
        rh_warn("dropped a record of rank %d's ring: %s (%llu such drops)",
                src, why, (unsigned long long)rh_shml.stats.dropped);
    }
}

static void rh_shml_fragment(int src, rh_shml_peer_t *p, const uint8_t *body,
                             uint32_t len, uint32_t tag)
{
    if (tag & RH_SHML_FIRST) {
        rh_shml_first_t f;

        if (p->asm_buf != NULL || p->asm_skip) {
            rh_shml_bad_record(src, "a message began before the last ended");
            rh_shml_asm_drop(p);
        }
        p->asm_skip = 0;
        if (len < sizeof(f)) {
            rh_shml_bad_record(src, "first fragment too short");
            p->asm_skip = 1;
            return;
        }
        memcpy(&f, body, sizeof(f));
        body += sizeof(f);
        len -= sizeof(f);
        if (f.hlen > f.total || len > f.total ||
            (p->asm_buf = malloc(f.total ? f.total : 1)) == NULL) {
            rh_shml_bad_record(src, "message too large or framed wrong");
            p->asm_skip = !(tag & RH_SHML_LAST);
            return;
        }
        p->asm_total = f.total;
        p->asm_hlen = f.hlen;
        p->asm_got = 0;
    } else if (p->asm_buf == NULL) {
        if (!p->asm_skip) {
            rh_shml_bad_record(src, "a fragment without its start");
        }
        p->asm_skip = !(tag & RH_SHML_LAST);
        return;
    }
    if (len > p->asm_total - p->asm_got) {
        rh_shml_bad_record(src, "fragments longer than their message");
        rh_shml_asm_drop(p);
        p->asm_skip = !(tag & RH_SHML_LAST);
        return;
    }
    memcpy(p->asm_buf + p->asm_got, body, len);
    p->asm_got += len;
    if (!(tag & RH_SHML_LAST)) {
        return;
    }
    if (p->asm_got != p->asm_total) {
        rh_shml_bad_record(src, "fragments shorter than their message");
    } else {
        rh_shml.deliver(p->asm_buf, p->asm_hlen, p->asm_buf + p->asm_hlen,
                        p->asm_total - p->asm_hlen);
    }
    rh_shml_asm_drop(p);
}

/* Reads one ring, a burst at most; gives the room back and rings the
 * writer when it waits for it. */
static unsigned rh_shml_read(int src, rh_shml_peer_t *p)
{
    unsigned n = 0;
    uint32_t len, tag;
    uint8_t *body;

    while (n < RH_SHML_BURST &&
           (body = (uint8_t *)rh_shmring_peek(&p->rx, &len, &tag)) != NULL) {
        RH_SHML_TSAN_ACQUIRE();
        if (rh_likely((tag & (RH_SHML_FIRST | RH_SHML_CONT)) == 0)) {
            uint32_t hlen = tag & RH_SHML_HLEN;

            if (rh_likely(hlen <= len && tag == hlen)) {
                rh_shml.deliver(body, hlen, body + hlen, len - hlen);
            } else {
                rh_shml_bad_record(src, "bad tag");
            }
        } else {
            rh_shml_fragment(src, p, body, len, tag);
        }
        rh_shmring_consume(&p->rx);
        n++;
        if (rh_unlikely(!p->rx_on)) {
            return n;   /* dropped by the handler's doing */
        }
    }
    if (rh_unlikely(body == NULL && len == UINT32_MAX)) {
        rh_warn("rank %d's ring holds a record that cannot be: its "
                "messages are dropped from now on", src);
        rh_shml_peer_dead(src);
        return n;
    }
    rh_shml.stats.received += n;
    if (rh_shmring_release(&p->rx)) {
        rh_shml_ring_bell(p);
    }
    return n;
}

unsigned rh_shml_poll(void)
{
    unsigned n = 0;

    for (int i = 0; i < rh_shml.num_rx; i++) {
        int src = rh_shml.rx_ranks[i];
        rh_shml_peer_t *p = &rh_shml.peers[src];

        if (rh_shmring_readable(&p->rx) && p->rx_on) {
            n += rh_shml_read(src, p);
        }
    }
    return n;
}

int rh_shml_sleep_prepare(void)
{
    if (rh_shml.seg == NULL) {
        return 1;
    }
    atomic_store_explicit(&rh_shml.seg->sleeping, 1, memory_order_seq_cst);
    for (int i = 0; i < rh_shml.num_rx; i++) {
        rh_shml_peer_t *p = &rh_shml.peers[rh_shml.rx_ranks[i]];

        if (p->rx_on && rh_shmring_readable_sc(&p->rx)) {
            atomic_store_explicit(&rh_shml.seg->sleeping, 0,
                                  memory_order_relaxed);
            return 0;
        }
    }
    return 1;
}

void rh_shml_woken(void)
{
    char buf[64];

    if (rh_shml.seg == NULL) {
        return;
    }
    atomic_store_explicit(&rh_shml.seg->sleeping, 0, memory_order_relaxed);
    while (recv(rh_shml.bell_fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
        /* every ring read: one wake-up serves them all */
    }
}

int rh_shml_sleep_ms(int ms)
{
    if (rh_unlikely(rh_shml.missing)) {
        int still = 0;

        for (int r = 0; r < rh_shml.size; r++) {
            still |= rh_shml.route[r] &&
                     rh_shml.peers[r].tx_state == RH_SHML_TX_NONE &&
                     rh_shml.peers[r].next_try != 0;
        }
        rh_shml.missing = still;
        if (still) {
            return 1;
        }
    }
    return ms;
}

void rh_shml_peer_dead(int rank)
{
    rh_shml_peer_t *p;

    if (rh_shml.peers == NULL || rank < 0 || rank >= rh_shml.size ||
        !rh_shml.route[rank]) {
        return;
    }
    p = &rh_shml.peers[rank];
    if (p->rx_on) {
        p->rx_on = 0;
        for (int i = 0; i < rh_shml.num_rx; i++) {
            if (rh_shml.rx_ranks[i] == rank) {
                rh_shml.rx_ranks[i] = rh_shml.rx_ranks[--rh_shml.num_rx];
                break;
            }
        }
        if (p->asm_buf != NULL) {
            rh_debug("dropped a message of rank %d received in part: the "
                     "rank died", rank);
        }
        rh_shml_asm_drop(p);
    }
    rh_shml_tx_lock(p);
    p->tx_state = RH_SHML_TX_DEAD;
    rh_shml_tx_unlock(p);
}

/* ---- stale segments -------------------------------------------------------- */

int rh_shml_remove_if_stale(const char *path)
{
    rh_shml_seg_hdr_t hdr;
    struct stat st, now;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    ssize_t n;

    if (fd < 0) {
        return 0;
    }
    n = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        st.st_uid == geteuid() ? pread(fd, &hdr, sizeof(hdr), 0) : -1;
    close(fd);
    if (n != (ssize_t)sizeof(hdr) || hdr.magic != RH_SHML_MAGIC ||
        hdr.owner_pid <= 0 ||
        !(kill(hdr.owner_pid, 0) != 0 && errno == ESRCH)) {
        return 0;
    }
    if (stat(path, &now) != 0 || now.st_ino != st.st_ino ||
        now.st_dev != st.st_dev || unlink(path) != 0) {
        return 0;
    }
    rh_info("removed stale ring segment %s (creator pid %d is gone)", path,
            (int)hdr.owner_pid);
    return 1;
}
