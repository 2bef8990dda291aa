/*
 * UCX context, worker, peers and the progress thread.
 *
 * The progress thread is the only thread that touches the worker once the
 * job runs. It drains the op queue (sends and other work posted by other
 * threads), progresses UCX, and, depending on RAYHPC_PROGRESS, spins or
 * sleeps in epoll on two descriptors: the worker's event fd (armed with
 * ucp_worker_arm) and our own eventfd, which producers write to only when
 * the thread has said it is about to sleep.
 *
 * Peer death is found three ways: UCX's error callback (peer error handling
 * mode, keepalive for remote hosts), a failed send, and for ranks on the
 * same kernel a periodic check of their pid, which catches a SIGKILL within
 * RAYHPC_PEER_CHECK even over shared memory, where nothing else would.
 */
#include "transport/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <linux/futex.h>
#include <unistd.h>

#include "base/completion.h"
#include "base/log.h"
#include "base/status.h"
#include "transport/am.h"
#include "transport/guest.h"
#include "transport/rma.h"
#include "transport/rxwatch.h"
#include "transport/shmlink.h"
#include "transport/tp_internal.h"

#define RH_TP_MAX_LISTENERS 16

typedef struct rh_peer {
    ucp_ep_h    ep;            /* progress thread only */
    ucp_ep_h    dead_ep;       /* of a failed peer, closed outside callbacks */
    void       *close_req;
    void       *addr;
    size_t      addr_len;
    pid_t       pid;
    int         same_host;
    int         tell;          /* listeners not yet told of its death */
    void       *flush_req;     /* flush of ep under way, freed by its callback */
    int         flush_wait;    /* rh_tp_flush still waits for this peer */
    int         zcopy;         /* its endpoint has an RDMA lane */
    _Atomic int alive;
} rh_peer_t;

typedef struct rh_transport {
    int                rank, size;
    rh_peer_t         *peers;
    ucp_context_h      context;
    ucp_address_t     *local_addr;
    size_t             local_addr_len;
    int                worker_efd, wake_fd, epoll_fd;
    pthread_t          thread;
    int                thread_started;
    /* The worker's token: whoever holds it is "the progress thread" for
     * every rule that says so, which keeps UCS_THREAD_MODE_SINGLE's one
     * thread at a time. The progress thread holds it except while it
     * sleeps or parks; a driver waiting for the network, or a thread that
     * finds it free, takes it for a round or a send. */
    pthread_mutex_t    token;
    _Atomic(pthread_t) holder;         /* 0: nobody, or not yet */
    _Atomic int        drivers;        /* threads driving in their waits */
    _Atomic int        parked;         /* progress thread leaves it to them */
    _Atomic int        pt_running;
    _Atomic int        stop;
    _Atomic int        sleeping;
    _Atomic int        mode;
    uint64_t           spin, peer_check_ns, last_peer_check;
    unsigned           yield_mask;     /* rh_tp_idle_yield */
    _Atomic int        quiet_failures;
    int                reap_pending;
    int                closed;         /* no new endpoints (job over) */
    _Atomic int        late_eps;       /* made once the worker ran */
    int                flush_left;     /* peers rh_tp_flush waits for */
    int                flush_rings;    /* it waits for sends to rings */
    rh_completion_t    flush_done;
    rh_mpsc_t          ops;
    struct {
        rh_tp_failure_fn fn;
        void            *arg;
    } listeners[RH_TP_MAX_LISTENERS];
    int                num_listeners;
    void             (*tick)(uint64_t now);
    uint64_t           tick_ns, next_tick;
    unsigned           loops;
} rh_transport_t;

ucp_worker_h rh_tp_worker;
long rh_tp_open_reqs;
static rh_transport_t rh_tp;

int rh_tp_rank(void) { return rh_tp.rank; }
ucp_context_h rh_tp_context(void) { return rh_tp.context; }
int rh_tp_size(void) { return rh_tp.size; }
/* pthread_self() is one register read: cheaper than a TLS variable in a
 * shared library. Only a thread itself stores its id in holder, so a
 * relaxed load that finds it there is its own store. */
int rh_tp_on_progress_thread(void)
{
    return atomic_load_explicit(&rh_tp.pt_running, memory_order_acquire) &&
           pthread_equal(pthread_self(),
                         atomic_load_explicit(&rh_tp.holder,
                                              memory_order_relaxed));
}

int rh_tp_peer_same_host(int rank)
{
    return rank >= 0 && rank < rh_tp.size && rh_tp.peers != NULL &&
           rh_tp.peers[rank].same_host;
}

pid_t rh_tp_peer_pid(int rank)
{
    return rh_tp_peer_same_host(rank) ? rh_tp.peers[rank].pid : 0;
}

int rh_tp_peer_alive(int rank)
{
    if (rank < 0 || rank >= rh_tp.size || rh_tp.peers == NULL) {
        return 0;
    }
    return atomic_load_explicit(&rh_tp.peers[rank].alive,
                                memory_order_acquire);
}

/* ---- UCX context and worker ------------------------------------------- */

static rh_status_t rh_tp_ucs_error(ucs_status_t status, const char *what)
{
    return rh_error_set(RH_ERR_TRANSPORT, "%s failed: %s", what,
                        ucs_status_string(status));
}

/* Whether a UCX_TLS value lets one of names in (UCX warns about settings
 * of transports that are not in use). */
static int rh_tp_tls_has(const char *tls, const char *const *names)
{
    char buf[256], *save = NULL;

    if (tls == NULL || tls[0] == '^') {
        return 1;   /* everything, or everything but a list */
    }
    snprintf(buf, sizeof(buf), "%s", tls);
    for (char *t = strtok_r(buf, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save)) {
        for (int i = 0; names[i] != NULL; i++) {
            if (strcmp(t, names[i]) == 0) {
                return 1;
            }
        }
    }
    return 0;
}

int rh_tp_tls_has_shm(const char *tls)
{
    static const char *const shm[] = { "all", "sm", "shm", "mm", "posix",
                                       "sysv", NULL };

    return rh_tp_tls_has(tls, shm);
}

/* UCX 1.13's TCP transport handles the events of one poll in a row: a
 * send made inside one of them (from a message handler of ours, or by UCX
 * itself) that fails on a dead peer closes that endpoint, and the event of
 * it still queued in the same poll then trips an assertion
 * (tcp_iface.c:307). One event per poll leaves none queued. Set in the
 * environment, before UCX reads it: ucp_config_modify knows the setting
 * only as MAX_POLL, which would also slow the CUDA transports' polls. A
 * user's own UCX_TCP_MAX_POLL wins. */
static void rh_tp_config_tcp_poll(void)
{
    static const char *const tcp[] = { "all", "tcp", NULL };

    if (rh_tp_tls_has(getenv("UCX_TLS"), tcp)) {
        (void)setenv("UCX_TCP_MAX_POLL", "1", 0);
    }
}

/* Our endpoints ask for peer-failure handling, and UCX 1.13 leaves the
 * shared-memory transports out of such endpoints unless their error
 * handling is on: without this, ranks of one host (and rayhpc-info's
 * guest beside them) talk over TCP loopback. A user's own
 * UCX_*_ERROR_HANDLING wins. */
void rh_tp_config_shm_errors(ucp_config_t *config)
{
    if (rh_tp_tls_has_shm(getenv("UCX_TLS")) &&
        getenv("UCX_MM_ERROR_HANDLING") == NULL &&
        getenv("UCX_POSIX_ERROR_HANDLING") == NULL &&
        getenv("UCX_SYSV_ERROR_HANDLING") == NULL) {
        (void)ucp_config_modify(config, "MM_ERROR_HANDLING", "y");
    }
}

/* Outside rh_tp: set before rh_tp_open, which clears that. */
static int rh_tp_one_host;
static char rh_tp_job_id[160];

void rh_tp_set_job(const char *job_id)
{
    snprintf(rh_tp_job_id, sizeof(rh_tp_job_id), "%s", job_id);
}

void rh_tp_set_one_host(int one_host)
{
    rh_tp_one_host = one_host;
}

static rh_status_t rh_tp_open_context(const rh_config_t *cfg)
{
    ucp_params_t params;
    ucp_config_t *config;
    ucs_status_t status;
    char keepalive[32];

    rh_tp_config_tcp_poll();
    status = ucp_config_read(NULL, NULL, &config);
    if (status != UCS_OK) {
        return rh_tp_ucs_error(status, "ucp_config_read");
    }
    /* UCX's default (20 s) is too slow to notice a dead remote rank; a user
     * who set UCX_KEEPALIVE_INTERVAL keeps theirs. With every rank on this
     * host, deaths are seen by pid (RAYHPC_PEER_CHECK) and keepalive is
     * off: UCX 1.13 crashes in it on an endpoint whose shared-memory
     * connection to a rank that had just died failed. */
    if (getenv("UCX_KEEPALIVE_INTERVAL") == NULL) {
        if (rh_tp_one_host) {
            snprintf(keepalive, sizeof(keepalive), "inf");
        } else {
            snprintf(keepalive, sizeof(keepalive), "%llums",
                     (unsigned long long)cfg->keepalive_ms);
        }
        (void)ucp_config_modify(config, "KEEPALIVE_INTERVAL", keepalive);
    }
    rh_tp_config_shm_errors(config);
    memset(&params, 0, sizeof(params));
    params.field_mask = UCP_PARAM_FIELD_FEATURES |
                        UCP_PARAM_FIELD_MT_WORKERS_SHARED;
    params.features = UCP_FEATURE_AM | UCP_FEATURE_RMA | UCP_FEATURE_WAKEUP;
    params.mt_workers_shared = 0;
    status = ucp_init(&params, config, &rh_tp.context);
    ucp_config_release(config);
    if (status != UCS_OK) {
        return rh_tp_ucs_error(status, "ucp_init");
    }
    return RH_OK;
}

static rh_status_t rh_tp_open_worker(void)
{
    ucp_worker_params_t params;
    ucs_status_t status;
    struct epoll_event ev;

    memset(&params, 0, sizeof(params));
    params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
    params.thread_mode = UCS_THREAD_MODE_SINGLE;
    status = ucp_worker_create(rh_tp.context, &params, &rh_tp_worker);
    if (status != UCS_OK) {
        return rh_tp_ucs_error(status, "ucp_worker_create");
    }
    status = ucp_worker_get_address(rh_tp_worker, &rh_tp.local_addr,
                                    &rh_tp.local_addr_len);
    if (status != UCS_OK) {
        return rh_tp_ucs_error(status, "ucp_worker_get_address");
    }
    status = ucp_worker_get_efd(rh_tp_worker, &rh_tp.worker_efd);
    if (status != UCS_OK) {
        return rh_tp_ucs_error(status, "ucp_worker_get_efd");
    }
    rh_tp.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    rh_tp.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (rh_tp.wake_fd < 0 || rh_tp.epoll_fd < 0) {
        return rh_error_set(RH_ERR_TRANSPORT, "eventfd/epoll: %s",
                            strerror(errno));
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.fd = rh_tp.worker_efd;
    if (epoll_ctl(rh_tp.epoll_fd, EPOLL_CTL_ADD, rh_tp.worker_efd, &ev) ||
        (ev.data.fd = rh_tp.wake_fd,
         epoll_ctl(rh_tp.epoll_fd, EPOLL_CTL_ADD, rh_tp.wake_fd, &ev))) {
        return rh_error_set(RH_ERR_TRANSPORT, "epoll_ctl: %s",
                            strerror(errno));
    }
    return rh_am_attach(rh_tp_worker);
}

rh_status_t rh_tp_open(const rh_config_t *cfg)
{
    rh_status_t status;

    memset(&rh_tp, 0, sizeof(rh_tp));
    pthread_mutex_init(&rh_tp.token, NULL);
    rh_tp.worker_efd = rh_tp.wake_fd = rh_tp.epoll_fd = -1;
    rh_tp.spin = cfg->progress_spin;
    rh_tp.peer_check_ns = cfg->peer_check_ms * 1000000ull;
    atomic_store(&rh_tp.mode, cfg->progress);
    rh_mpsc_init(&rh_tp.ops);
    rh_tp_guest_open();
    status = rh_tp_open_context(cfg);
    if (status == RH_OK) {
        status = rh_tp_open_worker();
    }
    if (status == RH_OK) {
        status = rh_tp_rma_open();
    }
    if (status == RH_OK) {
        /* twice the failure timeout, and never under 10 s: ending a
         * rank that was only slow is far worse than a late verdict */
        uint64_t stall_ms = 2 * cfg->failure_timeout_ms;

        status = rh_rxw_open(!cfg->rx_watch ? 0 :
                             (stall_ms > 10000 ? stall_ms : 10000) *
                             1000000ull);
    }
    if (status != RH_OK) {
        rh_tp_close();
    }
    return status;
}

void rh_tp_local_address(const void **addr, size_t *len)
{
    *addr = rh_tp.local_addr;
    *len = rh_tp.local_addr_len;
}

rh_status_t rh_tp_on_peer_failure(rh_tp_failure_fn fn, void *arg)
{
    if (rh_tp.num_listeners == RH_TP_MAX_LISTENERS) {
        return rh_error_set(RH_ERR_NO_MEMORY, "too many peer-failure "
                            "listeners");
    }
    rh_tp.listeners[rh_tp.num_listeners].fn = fn;
    rh_tp.listeners[rh_tp.num_listeners].arg = arg;
    rh_tp.num_listeners++;
    return RH_OK;
}

/* ---- endpoints and peer failure ----------------------------------------- */

static void rh_tp_ep_error(void *arg, ucp_ep_h ep, ucs_status_t status)
{
    int rank = (int)(uintptr_t)arg;
    char why[96];

    (void)ep;
    snprintf(why, sizeof(why), "UCX reported %s", ucs_status_string(status));
    rh_tp_peer_failed(rank, why);
}

/* Whether UCX moves bulk data over ep without copies of its own: the
 * endpoint has a lane for bulk remote memory access. UCX says so only in
 * its description of the endpoint; a description without one (or none at
 * all) means copies through its own buffers, which is never wrong, only
 * slower where RDMA exists. */
static int rh_tp_ep_zcopy(ucp_ep_h ep)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    int zcopy;

    if (f == NULL) {
        return 0;
    }
    ucp_ep_print_info(ep, f);
    fclose(f);
    zcopy = text != NULL && strstr(text, " rma_bw#") != NULL;
    free(text);
    return zcopy;
}

int rh_tp_peer_zcopy(int rank)
{
    return rh_tp.peers[rank].zcopy;
}

rh_status_t rh_tp_ep(int rank, ucp_ep_h *ep)
{
    rh_peer_t *peer = &rh_tp.peers[rank];
    ucp_ep_params_t params;
    ucs_status_t status;

    if (rh_likely(peer->ep != NULL)) {
        *ep = peer->ep;
        return RH_OK;
    }
    /* A shared-memory endpoint to a process that is gone fails to connect
     * its lanes yet is created, and UCX 1.13's keepalive then crashes on
     * it: a rank of this host is looked at first. */
    if (!rh_tp_peer_recheck(rank)) {
        return rh_error_set(RH_ERR_PEER_FAILED, "rank %d is dead", rank);
    }
    if (rh_unlikely(rh_tp.closed)) {
        return rh_error_set(RH_ERR_SHUTDOWN, "the job is over: no new "
                            "connection to rank %d", rank);
    }
    memset(&params, 0, sizeof(params));
    params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS |
                        UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                        UCP_EP_PARAM_FIELD_ERR_HANDLER;
    params.address = peer->addr;
    params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
    params.err_handler.cb = rh_tp_ep_error;
    params.err_handler.arg = (void *)(uintptr_t)rank;
    status = ucp_ep_create(rh_tp_worker, &params, &peer->ep);
    if (status != UCS_OK) {
        peer->ep = NULL;
        return rh_error_set(RH_ERR_TRANSPORT, "cannot connect to rank %d: "
                            "%s", rank, ucs_status_string(status));
    }
    peer->zcopy = rh_tp_ep_zcopy(peer->ep);
    if (rh_tp.thread_started && rank != rh_tp.rank) {
        atomic_fetch_add_explicit(&rh_tp.late_eps, 1, memory_order_relaxed);
    }
    *ep = peer->ep;
    return RH_OK;
}

int rh_tp_late_endpoints(void)
{
    return atomic_load_explicit(&rh_tp.late_eps, memory_order_relaxed);
}

rh_status_t rh_tp_status_from_ucs(ucs_status_t status, int rank)
{
    if (status == UCS_OK) {
        return RH_OK;
    }
    if (rank >= 0 && rank < rh_tp.size && !rh_tp_peer_alive(rank)) {
        return RH_ERR_PEER_FAILED;
    }
    if (status == UCS_ERR_CANCELED || status == UCS_ERR_ENDPOINT_TIMEOUT ||
        status == UCS_ERR_CONNECTION_RESET || status == UCS_ERR_UNREACHABLE) {
        return RH_ERR_PEER_FAILED;
    }
    return RH_ERR_TRANSPORT;
}

static void *rh_tp_close_ep_start(ucp_ep_h ep)
{
    ucp_request_param_t param;
    void *req;

    memset(&param, 0, sizeof(param));
    param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    param.flags = UCP_EP_CLOSE_FLAG_FORCE;
    req = ucp_ep_close_nbx(ep, &param);
    return UCS_PTR_IS_PTR(req) ? req : NULL;
}

/* Finishes a forced close (no peer involved, so it ends in a few rounds);
 * never from inside a UCX callback. */
static void rh_tp_close_ep_wait(void *req)
{
    if (req == NULL) {
        return;
    }
    for (int i = 0; i < 1000000 &&
         ucp_request_check_status(req) == UCS_INPROGRESS; i++) {
        ucp_worker_progress(rh_tp_worker);
    }
    ucp_request_free(req);
}

void rh_tp_peer_failed(int rank, const char *why)
{
    rh_peer_t *peer;

    if (rank < 0 || rank >= rh_tp.size || rank == rh_tp.rank) {
        return;
    }
    peer = &rh_tp.peers[rank];
    if (!atomic_exchange(&peer->alive, 0)) {
        return;
    }
    if (rh_tp.quiet_failures) {
        rh_debug("rank %d left (%s)", rank, why);
    } else {
        rh_warn("rank %d failed (%s)", rank, why);
    }
    if (peer->same_host) {
        rh_rxw_peer_died(rank);   /* unless the job is past its end */
    }
    /* We may be inside a UCX callback, where the endpoint must not be
     * closed and the listeners must not send or close anything: the
     * progress loop closes it, which fails every request still queued on
     * it (their senders see the error instead of waiting), then tells the
     * listeners. */
    peer->dead_ep = peer->ep;
    peer->ep = NULL;
    peer->tell = 1;
    rh_tp.reap_pending = 1;
}

/* rh_tp_flush no longer waits for this peer (its flush ended, or it died). */
static void rh_tp_flush_peer_done(rh_peer_t *peer)
{
    if (!peer->flush_wait) {
        return;
    }
    peer->flush_wait = 0;
    if (--rh_tp.flush_left == 0) {
        rh_completion_signal(&rh_tp.flush_done, RH_OK);
    }
}

/* Closes the endpoints of failed peers and tells the listeners (progress
 * loop, outside any UCX callback). */
static void rh_tp_reap_dead(void)
{
    int pending = 0;

    rh_tp.reap_pending = 0;
    for (int r = 0; r < rh_tp.size; r++) {
        rh_peer_t *peer = &rh_tp.peers[r];

        if (peer->dead_ep != NULL) {
            peer->close_req = rh_tp_close_ep_start(peer->dead_ep);
            peer->dead_ep = NULL;
        }
        /* Its flush ends with the forced close (or never, over shared
         * memory): nothing of ours can still reach it, stop waiting. */
        if (!atomic_load_explicit(&peer->alive, memory_order_relaxed)) {
            rh_tp_flush_peer_done(peer);
        }
        if (peer->tell) {
            peer->tell = 0;
            rh_shml_peer_dead(r);
            for (int i = 0; i < rh_tp.num_listeners; i++) {
                rh_tp.listeners[i].fn(rh_tp.listeners[i].arg, r);
            }
        }
        if (peer->close_req != NULL) {
            if (ucp_request_check_status(peer->close_req) == UCS_INPROGRESS) {
                pending = 1;
            } else {
                ucp_request_free(peer->close_req);
                peer->close_req = NULL;
            }
        }
    }
    rh_tp.reap_pending |= pending;
}

void rh_tp_set_quiet_failures(void)
{
    rh_tp.quiet_failures = 1;
}

void rh_tp_job_ended(void)
{
    rh_rxw_stop();
}

#define RH_PF_EXITING 0x4u   /* the kernel's task flag: in do_exit */

/* Whether a process on this kernel is gone, a zombie, or on its way out
 * (its main thread in exit: a SIGKILLed rank releases its memory and
 * descriptors before it becomes a zombie, and a shared-memory send to it
 * fails meanwhile as a plain transport error). */
static int rh_tp_pid_dead(pid_t pid)
{
    char path[64], buf[256];
    ssize_t n;
    int fd;
    char *paren;
    unsigned flags = 0;

    if (kill(pid, 0) != 0 && errno == ESRCH) {
        return 1;
    }
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    paren = strrchr(buf, ')');
    if (paren == NULL) {
        return 0;
    }
    if (paren[2] == 'Z' || paren[2] == 'X') {
        return 1;
    }
    /* ") S ppid pgrp session tty_nr tpgid flags" */
    return sscanf(paren + 2, "%*c %*d %*d %*d %*d %*d %u", &flags) == 1 &&
           (flags & RH_PF_EXITING);
}

int rh_tp_peer_recheck(int rank)
{
    rh_peer_t *peer;

    if (rank < 0 || rank >= rh_tp.size || rank == rh_tp.rank) {
        return rank == rh_tp.rank;
    }
    peer = &rh_tp.peers[rank];
    if (!atomic_load_explicit(&peer->alive, memory_order_relaxed)) {
        return 0;
    }
    if (peer->same_host && rh_tp_pid_dead(peer->pid)) {
        rh_tp_peer_failed(rank, "its process is gone");
        return 0;
    }
    return 1;
}

void rh_tp_set_tick(void (*fn)(uint64_t now), uint64_t period_ns)
{
    rh_tp.tick = fn;
    rh_tp.tick_ns = period_ns;
    rh_tp.next_tick = 0;
}

static void rh_tp_check_peers(uint64_t now)
{
    rh_rxw_tick(now);
    if (rh_tp.tick != NULL && now >= rh_tp.next_tick) {
        rh_tp.next_tick = now + rh_tp.tick_ns;
        rh_tp.tick(now);
    }
    if (now - rh_tp.last_peer_check < rh_tp.peer_check_ns) {
        return;
    }
    rh_tp.last_peer_check = now;
    for (int r = 0; r < rh_tp.size; r++) {
        rh_peer_t *peer = &rh_tp.peers[r];

        if (r != rh_tp.rank && peer->same_host &&
            atomic_load_explicit(&peer->alive, memory_order_relaxed) &&
            rh_tp_pid_dead(peer->pid)) {
            rh_tp_peer_failed(r, "its process is gone");
        }
    }
}

/* ---- progress thread ---------------------------------------------------- */

int rh_tp_more_posted(void)
{
    return !rh_mpsc_empty(&rh_tp.ops);
}

int rh_tp_ops_look_empty(void)
{
    return rh_mpsc_looks_empty(&rh_tp.ops);
}

static unsigned rh_tp_drain_ops(void)
{
    unsigned n = 0;
    rh_mpsc_node_t *node;

    do {
        while ((node = rh_mpsc_pop(&rh_tp.ops)) != NULL) {
            rh_tp_op_t *op = (rh_tp_op_t *)node;

            op->run(op);
            n++;
        }
        /* The queue drained: what was held back to coalesce leaves now
         * (a send that fails at once queues its failure: run it too). */
    } while (n != 0 && rh_am_flush_batches() != 0 &&
             !rh_mpsc_empty(&rh_tp.ops));
    return n;
}

void rh_tp_post(rh_tp_op_t *op)
{
    if (rh_tp_on_progress_thread()) {
        op->run(op);
        return;
    }
    rh_tp_defer(op);
}

static void rh_tp_futex_wake(_Atomic int *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

void rh_tp_defer(rh_tp_op_t *op)
{
    static const uint64_t one = 1;

    rh_mpsc_push(&rh_tp.ops, &op->node);
    /* The push (seq_cst) and this load pair with rh_tp_sleep's store of the
     * flag and its rh_mpsc_idle check: either the thread sees our node
     * before sleeping, or we see it sleeping and wake it. */
    if (atomic_load_explicit(&rh_tp.sleeping, memory_order_seq_cst) &&
        atomic_exchange(&rh_tp.sleeping, 0)) {
        if (write(rh_tp.wake_fd, &one, sizeof(one)) < 0) {
            /* EAGAIN: the counter is already non-zero, the thread wakes. */
        }
    }
    /* Parked with no driver left (the last left with rh_tp_drive_leave):
     * the op would wait for its next look; a driver runs it instead. */
    if (rh_unlikely(atomic_load_explicit(&rh_tp.parked,
                                         memory_order_seq_cst) &&
                    atomic_load_explicit(&rh_tp.drivers,
                                         memory_order_seq_cst) == 0)) {
        rh_tp_futex_wake(&rh_tp.drivers);
    }
}

static void rh_tp_wake(void)
{
    static const uint64_t one = 1;

    if (write(rh_tp.wake_fd, &one, sizeof(one)) < 0) {
        /* Already signalled. */
    }
}

/* ---- the token ------------------------------------------------------------ */

static void rh_tp_token_take(void)
{
    pthread_mutex_lock(&rh_tp.token);
    atomic_store_explicit(&rh_tp.holder, pthread_self(),
                          memory_order_relaxed);
}

static int rh_tp_token_try(void)
{
    if (pthread_mutex_trylock(&rh_tp.token) != 0) {
        return 0;
    }
    atomic_store_explicit(&rh_tp.holder, pthread_self(),
                          memory_order_relaxed);
    return 1;
}

static void rh_tp_token_give(void)
{
    atomic_store_explicit(&rh_tp.holder, (pthread_t)0, memory_order_relaxed);
    pthread_mutex_unlock(&rh_tp.token);
}

/* One round of the progress loop, token held: posted work, then UCX. */
static unsigned rh_tp_round(void)
{
    unsigned n = rh_tp_drain_ops();

    n += ucp_worker_progress(rh_tp_worker);
    n += rh_shml_poll();
    if (rh_unlikely(rh_am_ring_waiting())) {
        rh_am_ring_retry(RH_OK);
    }
    if (rh_unlikely(rh_tp.reap_pending)) {
        rh_tp_reap_dead();
    }
    if (rh_unlikely(rh_tp.flush_rings) && !rh_am_ring_waiting()) {
        rh_tp.flush_rings = 0;
        if (--rh_tp.flush_left == 0) {
            rh_completion_signal(&rh_tp.flush_done, RH_OK);
        }
    }
    return n;
}

/* Whether rh_tp_stop began; read with the token held, it also says that
 * the progress thread's last round is yet to come. */
static int rh_tp_stop_seen(void)
{
    return atomic_load_explicit(&rh_tp.stop, memory_order_acquire);
}

int rh_tp_drive_begin(void)
{
    if (!atomic_load_explicit(&rh_tp.pt_running, memory_order_acquire) ||
        rh_tp_stop_seen() || rh_tp_on_progress_thread()) {
        return 0;
    }
    atomic_fetch_add_explicit(&rh_tp.drivers, 1, memory_order_seq_cst);
    return 1;
}

int rh_tp_drive(void)
{
    int n;

    if (!rh_tp_token_try()) {
        return -1;
    }
    /* Checked with the token held: the progress thread's last round and
     * the teardown after it come after our round or see us gone. */
    if (rh_unlikely(rh_tp_stop_seen() ||
                    !atomic_load_explicit(&rh_tp.pt_running,
                                          memory_order_acquire))) {
        rh_tp_token_give();
        return -1;
    }
    n = (int)rh_tp_round();
    rh_tp_token_give();
    return n;
}

void rh_tp_drive_end(void)
{
    /* seq_cst with rh_tp_park's store of parked and its load of drivers:
     * either it sees no driver left, or we see it parked and wake it. */
    if (atomic_fetch_sub_explicit(&rh_tp.drivers, 1,
                                  memory_order_seq_cst) == 1 &&
        atomic_load_explicit(&rh_tp.parked, memory_order_seq_cst)) {
        rh_tp_futex_wake(&rh_tp.drivers);
    }
}

void rh_tp_drive_leave(void)
{
    atomic_fetch_sub_explicit(&rh_tp.drivers, 1, memory_order_seq_cst);
}

int rh_tp_parked(void)
{
    return atomic_load_explicit(&rh_tp.parked, memory_order_relaxed);
}

int rh_tp_enter(void)
{
    if (!atomic_load_explicit(&rh_tp.pt_running, memory_order_acquire) ||
        !rh_tp_token_try()) {
        return 0;
    }
    /* With something still queued (a send of ours among it, maybe), going
     * first would overtake it. */
    if (rh_unlikely(rh_tp_stop_seen() ||
                    !atomic_load_explicit(&rh_tp.pt_running,
                                          memory_order_acquire) ||
                    !rh_mpsc_looks_empty(&rh_tp.ops))) {
        rh_tp_token_give();
        return 0;
    }
    return 1;
}

void rh_tp_leave(void)
{
    rh_tp_token_give();
}

/* How long the progress thread may sleep or park before its ticks and
 * peer checks are due. */
static int rh_tp_sleep_ms(void)
{
    uint64_t sleep_ns = rh_tp.peer_check_ns;
    int timeout_ms;

    if (rh_tp.tick != NULL && rh_tp.tick_ns < sleep_ns) {
        sleep_ns = rh_tp.tick_ns;
    }
    timeout_ms = (int)(sleep_ns / 1000000ull);
    return timeout_ms > 0 ? timeout_ms : 1;
}

/* Drivers progress the worker themselves: the progress thread steps
 * aside, without the token, until the last of them leaves or a tick is
 * due. Running beside them would only take their turns on the worker and,
 * where cores are few, their cores. So it parks at once on the drivers'
 * count, in every mode: spinning there, even with a yield now and then,
 * made a polling round trip between two ranks on two cores bimodal (1.6
 * or 9 us for a whole run), the slow mode being the caller's core shared
 * with both ranks' spinning progress threads, a third of it left to the
 * caller. The last driver to leave with rh_tp_drive_end wakes it; one that
 * leaves with rh_tp_drive_leave does not, and it looks again every
 * RH_TP_ASIDE_US (the count changing wakes it early). The token is taken
 * again only once it goes back to work: taking it beside a driver would
 * make the driver's next release a futex call. */
static void rh_tp_step_aside(void)
{
    uint64_t due = rh_time_ns() + (uint64_t)rh_tp_sleep_ms() * 1000000ull;
    struct timespec ts = { 0, RH_TP_ASIDE_US * 1000L };
    int d;

    rh_tp_token_give();
    atomic_store_explicit(&rh_tp.parked, 1, memory_order_seq_cst);
    while ((d = atomic_load_explicit(&rh_tp.drivers,
                                     memory_order_seq_cst)) > 0 &&
           !rh_tp_stop_seen() && rh_time_ns() < due) {
        syscall(SYS_futex, &rh_tp.drivers, FUTEX_WAIT_PRIVATE, d, &ts,
                NULL, 0);
    }
    atomic_store_explicit(&rh_tp.parked, 0, memory_order_relaxed);
    rh_tp_token_take();
}

static void rh_tp_sleep(void)
{
    struct epoll_event ev[3];
    uint64_t count;
    int timeout_ms = rh_shml_sleep_ms(rh_tp_sleep_ms());

    atomic_store_explicit(&rh_tp.sleeping, 1, memory_order_seq_cst);
    if (!rh_mpsc_idle(&rh_tp.ops) || atomic_load(&rh_tp.stop) ||
        atomic_load(&rh_tp.drivers) != 0) {
        atomic_store(&rh_tp.sleeping, 0);
        return;
    }
    if (ucp_worker_arm(rh_tp_worker) == UCS_ERR_BUSY) {
        atomic_store(&rh_tp.sleeping, 0);
        return;
    }
    /* After the arm: a record that arrives from here on rings the bell. */
    if (!rh_shml_sleep_prepare()) {
        atomic_store(&rh_tp.sleeping, 0);
        return;
    }
    /* Without the token while asleep: a thread that sends meanwhile
     * sends itself instead of waking us for it. */
    rh_tp_token_give();
    if (epoll_wait(rh_tp.epoll_fd, ev, 3, timeout_ms) < 0 && errno != EINTR) {
        rh_warn("epoll_wait: %s", strerror(errno));
    }
    atomic_store(&rh_tp.sleeping, 0);
    if (read(rh_tp.wake_fd, &count, sizeof(count)) < 0) {
        /* Nothing to drain (EAGAIN). */
    }
    rh_tp_token_take();
    rh_shml_woken();
}

/* When this host's ranks outnumber its cores, at least one rank's
 * progress thread is off a core at any time, and a message to it waits
 * until a thread on a core that has nothing to do yields: every 16 idle
 * rounds (a microsecond or two) made each hop of a GCS write (3 ranks, 2
 * cores) 1.5-2.9 us at the median; a yield on every idle round made them
 * 0.25-1.2 us. With as many cores as ranks, the rank's own threads (a
 * progress thread, a driver, a worker) share them as before: every 16th
 * idle round offers the core to one woken meanwhile, and a yield more
 * often only delays the next look at the network. */
static void rh_tp_set_yield(const rh_tp_peer_info_t *peers)
{
    cpu_set_t set;
    int local = 0, cpus;

    for (int r = 0; r < rh_tp.size; r++) {
        local += r == rh_tp.rank || peers[r].same_host;
    }
    CPU_ZERO(&set);
    cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) :
           (int)sysconf(_SC_NPROCESSORS_ONLN);
    rh_tp.yield_mask = cpus > 0 && local > cpus ? 0 : 15;
    rh_debug("idle polling yields every %u rounds (%d ranks here, %d cpus)",
             rh_tp.yield_mask + 1, local, cpus);
}

int rh_tp_idle_yield(uint64_t idle)
{
    return (idle & rh_tp.yield_mask) == 0;
}

/* An idle spin: the token is free meanwhile, so that a thread with a
 * message sends it itself rather than waiting for our next turn on a
 * core (two ranks' threads share few cores). */
static void rh_tp_idle_spin(int yield)
{
    rh_tp_token_give();
    rh_cpu_relax();
    if (yield) {
        sched_yield();
    }
    rh_tp_token_take();
}

static void *rh_tp_progress_main(void *arg)
{
    uint64_t idle = 0;

    (void)arg;
    rh_tp_token_take();
    atomic_store_explicit(&rh_tp.pt_running, 1, memory_order_release);
    while (!atomic_load_explicit(&rh_tp.stop, memory_order_relaxed)) {
        unsigned n;

        if (atomic_load_explicit(&rh_tp.drivers, memory_order_relaxed)) {
            rh_tp_step_aside();
            rh_tp_check_peers(rh_time_ns());
            continue;
        }
        n = rh_tp_round();
        if (n != 0) {
            idle = 0;
            /* A busy thread still looks at the clock now and then. */
            if ((++rh_tp.loops & 1023) == 0) {
                rh_tp_check_peers(rh_time_ns());
            }
            continue;
        }
        if ((++idle & 1023) == 0) {
            rh_tp_check_peers(rh_time_ns());
        }
        switch (atomic_load_explicit(&rh_tp.mode, memory_order_relaxed)) {
        case RH_PROGRESS_POLLING:
            /* A spinning thread keeps the core until its time slice ends:
             * now and then it offers it to a thread that has work (a
             * worker, the driver woken by us, another rank's thread that
             * our message woke), see rh_tp_idle_yield. */
            rh_tp_idle_spin(rh_tp_idle_yield(idle));
            break;
        case RH_PROGRESS_ADAPTIVE:
            if (idle < rh_tp.spin) {
                rh_tp_idle_spin(0);
                break;
            }
            /* fall through */
        default:
            rh_tp_check_peers(rh_time_ns());
            rh_tp_sleep();
            break;
        }
    }
    /* Last round: whatever was posted before stop still runs (it fails with
     * RH_ERR_SHUTDOWN where it needs the network). */
    rh_tp_drain_ops();
    atomic_store(&rh_tp.pt_running, 0);
    rh_tp_token_give();
    return NULL;
}

void rh_tp_set_progress_mode(rh_progress_mode_t mode)
{
    atomic_store(&rh_tp.mode, (int)mode);
    rh_tp_wake();
}

int rh_tp_rings_wanted(void)
{
    return rh_cfg.shm_ring && rh_tp_tls_has_shm(getenv("UCX_TLS"));
}

/* The same-host rings, when asked for and when UCX_TLS would let shared
 * memory in (UCX_TLS=tcp,self means none, tests emulate a network so). */
static rh_status_t rh_tp_open_rings(const rh_tp_peer_info_t *peers)
{
    int others = 0;

    for (int r = 0; r < rh_tp.size; r++) {
        others |= r != rh_tp.rank && peers[r].same_host;
    }
    if (!others || !rh_tp_rings_wanted()) {
        return RH_OK;
    }
    if (rh_tp_job_id[0] == '\0') {
        snprintf(rh_tp_job_id, sizeof(rh_tp_job_id), "%d", (int)peers[0].pid);
    }
    return rh_shml_open(rh_tp_job_id, rh_tp.rank, rh_tp.size, peers,
                        rh_cfg.shm_ring_bytes, rh_tp.epoll_fd,
                        rh_am_ring_deliver);
}

static void rh_tp_connect_all(uint64_t timeout_ms);

/* Makes an endpoint to every other rank before anything progresses the
 * worker. UCX 1.13's TCP transport crashes (ucs_mpool_put of NULL in
 * uct_tcp_ep_progress_am_rx; fixed in 1.14) when a TCP endpoint is created
 * while a message from that peer is being handled and more of the peer's
 * messages sit behind it in the same receive: the new endpoint takes over
 * the accepted connection's receive buffer, which the loop then frees
 * again. Made afterwards, the first endpoint to a peer could come from
 * UCX's own handler of the peer's wire-up request, or from one of ours
 * answering it; made here, neither ever creates one. */
static void rh_tp_create_endpoints(void)
{
    ucp_ep_h ep;

    for (int r = 0; r < rh_tp.size; r++) {
        if (r != rh_tp.rank && rh_tp_ep(r, &ep) != RH_OK) {
            rh_debug("no connection to rank %d yet: %s", r, rh_last_error());
        }
    }
}

/* RAYHPC_CONNECT_ALL: auto connects every pair at start-up only where the
 * UCX in use has the wire-up assertion (before 1.14) and the job is small
 * enough for an endpoint per pair to be cheap. */
static int rh_tp_connects_all(int size)
{
    unsigned major, minor, release;

    if (rh_cfg.connect_all != 0) {
        return rh_cfg.connect_all == 1;
    }
    ucp_get_version(&major, &minor, &release);
    return (major < 1 || (major == 1 && minor < 14)) && size <= 1024;
}

rh_status_t rh_tp_start(int rank, int size, const rh_tp_peer_info_t *peers)
{
    rh_status_t status;
    int connect_all;
    int err;

    rh_tp.rank = rank;
    rh_tp.size = size;
    rh_tp.peers = calloc((size_t)size, sizeof(*rh_tp.peers));
    if (rh_tp.peers == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "peer table of %d ranks", size);
    }
    for (int r = 0; r < size; r++) {
        rh_peer_t *peer = &rh_tp.peers[r];

        peer->addr = malloc(peers[r].ucx_addr_len);
        if (peer->addr == NULL) {
            return rh_error_set(RH_ERR_NO_MEMORY, "peer address");
        }
        memcpy(peer->addr, peers[r].ucx_addr, peers[r].ucx_addr_len);
        peer->addr_len = peers[r].ucx_addr_len;
        peer->pid = peers[r].pid;
        peer->same_host = peers[r].same_host;
        atomic_store(&peer->alive, 1);
    }
    rh_tp.last_peer_check = rh_time_ns();
    rh_tp_set_yield(peers);
    status = rh_tp_open_rings(peers);
    if (status != RH_OK) {
        return status;
    }
    connect_all = rh_tp_connects_all(size);
    if (connect_all) {
        rh_tp_create_endpoints();
    }
    /* Set before the thread starts, which reads it (rh_tp_running): set
     * after, it raced with the thread's first rounds. */
    rh_tp.thread_started = 1;
    err = pthread_create(&rh_tp.thread, NULL, rh_tp_progress_main, NULL);
    if (err != 0) {
        rh_tp.thread_started = 0;
        return rh_error_set(RH_ERR_NO_MEMORY, "cannot start the progress "
                            "thread: %s", strerror(err));
    }
    pthread_setname_np(rh_tp.thread, "rayhpc-progress");
    if (connect_all) {
        rh_tp_connect_all(rh_cfg.failure_timeout_ms);
    }
    return RH_OK;
}

/* ---- shutdown ------------------------------------------------------------ */

static void rh_tp_ep_flush_cb(void *req, ucs_status_t status,
                              void *user_data)
{
    rh_peer_t *peer = &rh_tp.peers[(uintptr_t)user_data];

    if (status != UCS_OK) {
        rh_debug("flush to rank %d ended with %s", (int)(uintptr_t)user_data,
                 ucs_status_string(status));
    }
    ucp_request_free(req);
    rh_tp_open_reqs--;
    peer->flush_req = NULL;
    rh_tp_flush_peer_done(peer);
}

/* One flush per live peer, not one of the worker: a worker flush also
 * waits for endpoints of dead peers (and the discards of their lanes),
 * which over shared memory never end, so it stalled the finalize for its
 * whole timeout and was left in UCX when the worker went. */
static void rh_tp_flush_start(rh_tp_op_t *op)
{
    ucp_request_param_t param;
    void *req;

    (void)op;
    if (rh_tp.flush_left != 0) {
        rh_completion_signal(&rh_tp.flush_done, RH_ERR_BUSY);
        return;
    }
    memset(&param, 0, sizeof(param));
    param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK |
                         UCP_OP_ATTR_FIELD_USER_DATA;
    param.cb.send = rh_tp_ep_flush_cb;
    rh_tp.flush_left = 1;   /* until every flush is started */
    if (rh_am_ring_waiting()) {
        rh_tp.flush_rings = 1;   /* until they are in their rings */
        rh_tp.flush_left++;
    }
    for (int r = 0; r < rh_tp.size; r++) {
        rh_peer_t *peer = &rh_tp.peers[r];

        if (peer->ep == NULL || peer->flush_req != NULL ||
            !atomic_load_explicit(&peer->alive, memory_order_relaxed)) {
            continue;
        }
        param.user_data = (void *)(uintptr_t)r;
        req = ucp_ep_flush_nbx(peer->ep, &param);
        if (UCS_PTR_IS_PTR(req)) {
            rh_tp_open_reqs++;
            peer->flush_req = req;
            peer->flush_wait = 1;
            rh_tp.flush_left++;
        } else if (UCS_PTR_IS_ERR(req)) {
            rh_debug("flush to rank %d failed: %s", r,
                     ucs_status_string(UCS_PTR_STATUS(req)));
        }
    }
    if (--rh_tp.flush_left == 0) {
        rh_completion_signal(&rh_tp.flush_done, RH_OK);
    }
}

/* Waits, for at most timeout_ms, until each connection that
 * rh_tp_create_endpoints began is up: an endpoint's flush ends only once every lane of
 * it is connected and drained, its wire-up request included. UCX 1.13's
 * TCP transport aborts a rank whose peer dies while a connection between
 * them is being made: the peer's request for a connection is answered on
 * a lane whose connect is then refused, and purging that answer trips an
 * assertion (ucp_request.c:684, removed in UCX 1.14). Waited for here,
 * every connection is up before rh_init returns anywhere; one still being made
 * after timeout_ms is left to finish meanwhile. */
static void rh_tp_connect_all(uint64_t timeout_ms)
{
    static rh_tp_op_t connect_op = { .run = rh_tp_flush_start };

    rh_completion_init(&rh_tp.flush_done);
    rh_tp_post(&connect_op);
    if (rh_completion_wait(&rh_tp.flush_done, (int64_t)timeout_ms) != RH_OK) {
        rh_debug("connections to some ranks still not up after %llu ms",
                 (unsigned long long)timeout_ms);
    }
}

rh_status_t rh_tp_flush(int64_t timeout_ms)
{
    static rh_tp_op_t flush_op = { .run = rh_tp_flush_start };
    rh_status_t status;

    if (!rh_tp.thread_started) {
        return RH_OK;
    }
    /* The progress thread keeps serving while the flush runs: peers
     * finishing their own wire-up get answers, and a peer that dies is
     * found and its endpoint closed, which ends the flush. */
    rh_completion_init(&rh_tp.flush_done);
    rh_tp_post(&flush_op);
    status = rh_completion_wait(&rh_tp.flush_done, timeout_ms);
    if (status == RH_ERR_TIMEOUT) {
        return rh_error_set(status, "sends still in flight after %lld ms",
                            (long long)timeout_ms);
    }
    return status;
}

/* Every request still open failed with its endpoint, but some complete
 * only in a later round: a rendezvous send whose buffer the peer may still
 * read is failed once UCX has revoked that access, from its progress
 * queue. Each goes back to UCX before the worker does (UCX warns "not
 * returned to mpool" at finalize otherwise); nothing here waits for a
 * peer, so the rounds are bounded and what is left is said. */
static void rh_tp_wait_open_reqs(void)
{
    for (int i = 0; i < 1000000 && rh_tp_open_reqs > 0; i++) {
        ucp_worker_progress(rh_tp_worker);
    }
    if (rh_tp_open_reqs > 0) {
        rh_warn("%ld UCX requests did not end with their endpoints",
                rh_tp_open_reqs);
    }
}

/* Force-closes every endpoint (no peer involved: it ends in a few rounds),
 * which fails the requests still queued on them, so that each completes,
 * runs its callback and is freed before the worker goes. Progress thread,
 * or any thread once it stopped; never from a UCX callback. */
static void rh_tp_close_endpoints_now(void)
{
    rh_tp.closed = 1;
    rh_am_ring_retry(RH_ERR_SHUTDOWN);
    if (rh_tp.peers == NULL) {
        return;
    }
    for (int r = 0; r < rh_tp.size; r++) {
        rh_peer_t *peer = &rh_tp.peers[r];

        rh_tp_close_ep_wait(peer->close_req);
        peer->close_req = NULL;
        if (peer->ep != NULL) {
            rh_tp_close_ep_wait(rh_tp_close_ep_start(peer->ep));
            peer->ep = NULL;
        }
        if (peer->dead_ep != NULL) {
            rh_tp_close_ep_wait(rh_tp_close_ep_start(peer->dead_ep));
            peer->dead_ep = NULL;
        }
    }
    rh_tp_guest_close_all();
    rh_tp_wait_open_reqs();
}

typedef struct rh_tp_close_op {
    rh_tp_op_t      op;
    rh_completion_t done;
} rh_tp_close_op_t;

static void rh_tp_close_endpoints_run(rh_tp_op_t *op)
{
    rh_tp_close_endpoints_now();
    rh_completion_signal(&((rh_tp_close_op_t *)op)->done, RH_OK);
}

void rh_tp_close_endpoints(void)
{
    rh_tp_close_op_t op = { .op.run = rh_tp_close_endpoints_run };

    if (!rh_tp.thread_started) {
        return;
    }
    rh_completion_init(&op.done);
    rh_tp_post(&op.op);
    rh_completion_wait(&op.done, -1);
}

int rh_tp_running(void)
{
    return rh_tp.thread_started;
}

int rh_tp_stopping(void)
{
    return atomic_load_explicit(&rh_tp.stop, memory_order_acquire);
}

void rh_tp_stop(void)
{
    if (rh_tp.thread_started) {
        atomic_store(&rh_tp.stop, 1);
        rh_tp_wake();
        rh_tp_futex_wake(&rh_tp.drivers);
        pthread_join(rh_tp.thread, NULL);
        rh_tp.thread_started = 0;
    }
}

void rh_tp_close(void)
{
    rh_tp_stop();
    if (rh_tp_worker != NULL) {
        rh_tp_rma_close();
        rh_tp_close_endpoints_now();
        /* Sends that failed while closing handed their requests back
         * through the queue. */
        rh_tp_drain_ops();
        rh_am_detach();
        rh_shml_close();
        if (rh_tp.local_addr != NULL) {
            ucp_worker_release_address(rh_tp_worker, rh_tp.local_addr);
        }
        ucp_worker_destroy(rh_tp_worker);
        rh_tp_worker = NULL;
    }
    if (rh_tp.context != NULL) {
        ucp_cleanup(rh_tp.context);
    }
    if (rh_tp.wake_fd >= 0) {
        close(rh_tp.wake_fd);
    }
    if (rh_tp.epoll_fd >= 0) {
        close(rh_tp.epoll_fd);
    }
    if (rh_tp.peers != NULL) {
        for (int r = 0; r < rh_tp.size; r++) {
            free(rh_tp.peers[r].addr);
        }
        free(rh_tp.peers);
    }
    memset(&rh_tp, 0, sizeof(rh_tp));
    rh_tp_open_reqs = 0;
}

void rh_tp_print_info(FILE *out)
{
    if (rh_tp.context != NULL) {
        ucp_context_print_info(rh_tp.context, out);
    }
    if (rh_tp_worker != NULL) {
        ucp_worker_print_info(rh_tp_worker, out);
    }
}
