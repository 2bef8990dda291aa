/*
 * The UCX side of a rank: one ucp_context and one ucp_worker, a peer table
 * with lazily created endpoints, and the progress thread that owns the
 * worker. One thread at a time calls into UCX after start-up, the holder
 * of the worker's token (UCP_THREAD_MODE_SINGLE): the progress thread, or
 * a thread that waits for an answer and drives the worker meanwhile, or
 * one that finds the worker free and sends at once. Other threads hand
 * the progress thread work through a lock-free queue (rh_tp_post).
 */
#ifndef RH_TRANSPORT_TRANSPORT_H
#define RH_TRANSPORT_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/config.h"
#include "base/mpsc.h"
#include "rayhpc.h"

/* What the transport needs to know of each peer, from the bootstrap. */
typedef struct rh_tp_peer_info {
    const void *ucx_addr;
    size_t      ucx_addr_len;
    pid_t       pid;
    int         same_host;    /* same kernel: liveness checked by pid */
} rh_tp_peer_info_t;

/* Work run on the progress thread; embed it in a larger struct. */
typedef struct rh_tp_op rh_tp_op_t;
struct rh_tp_op {
    rh_mpsc_node_t node;
    void         (*run)(rh_tp_op_t *op);
};

typedef void (*rh_tp_failure_fn)(void *arg, int rank);

/* Says, before rh_tp_open, that every rank of the job runs on this host
 * (rayhpc-run, or srun or mpirun within one node): their deaths are seen
 * by pid, so UCX's keepalive is left off. */
void rh_tp_set_one_host(int one_host);

/* Whether a UCX_TLS value lets shared-memory transports in (NULL: UCX's
 * default, all of them): their error handling is then turned on, which
 * endpoints with peer error handling need to use them. */
int rh_tp_tls_has_shm(const char *tls);
/* 1: this rank sends to the ranks of its host through the rings
 * (RAYHPC_SHM_RING, and UCX_TLS letting shared memory in); every rank of a
 * host must agree. */
int rh_tp_rings_wanted(void);

/* Turns that error handling on in a UCX configuration read for a worker
 * that connects to ranks (a rank's own, rayhpc-info's), unless the user
 * set UCX's own: both must reach the ranks over the same transports. */
struct ucp_config;
void rh_tp_config_shm_errors(struct ucp_config *config);

/* Names the job, before rh_tp_start: the same-host rings' segments are
 * named from it. */
void rh_tp_set_job(const char *job_id);

/* Creates the UCX context and worker (before the bootstrap exchange). */
rh_status_t rh_tp_open(const rh_config_t *cfg);

/* This rank's worker address, to publish through the bootstrap. */
void rh_tp_local_address(const void **addr, size_t *len);

/* Records every rank's address and starts the progress thread. */
rh_status_t rh_tp_start(int rank, int size, const rh_tp_peer_info_t *peers);

/* Stops the progress thread after it ran what was posted (idempotent):
 * nothing arrives any more. */
void rh_tp_stop(void);

/* Whether the progress thread runs (ops posted now will run). */
int rh_tp_running(void);

/* Whether rh_tp_stop began (any thread): ops posted from now on may never
 * run. */
int rh_tp_stopping(void);

/* Waits, from a thread other than the progress thread and while it runs,
 * until every send made so far has left this rank (wire-up with the peers
 * included), or timeout_ms (RH_ERR_TIMEOUT). A peer found dead meanwhile
 * no longer holds it up. */
rh_status_t rh_tp_flush(int64_t timeout_ms);

/* Closes every endpoint on the progress thread (forced: no peer needs to
 * answer); what was still queued on them fails and is returned to UCX.
 * Later sends fail with RH_ERR_SHUTDOWN. */
void rh_tp_close_endpoints(void);

/* Stops the progress thread, closes whatever endpoints remain and releases
 * UCX. */
void rh_tp_close(void);

/* Runs op->run on the progress thread; from the progress thread itself it
 * runs at once. Never blocks, never allocates. */
void rh_tp_post(rh_tp_op_t *op);

/* Queues op for the progress thread's next round, also when called on it:
 * for work that must not run inside a UCX callback or its caller. */
void rh_tp_defer(rh_tp_op_t *op);

/* Whether this thread acts as the progress thread now: the progress
 * thread itself, or a thread that holds the worker for a moment (below). */
int rh_tp_on_progress_thread(void);

/* A thread about to wait for an answer from the network drives the worker
 * itself, as MPI does, instead of sleeping until the progress thread wakes
 * it: rh_tp_drive_begin (0: not allowed here, e.g. on the progress thread
 * or once the transport stops), then rh_tp_drive between looks at what it
 * waits for, then rh_tp_drive_end. While someone drives, the progress
 * thread parks. rh_tp_drive runs one round of the progress loop (posted
 * work, UCX, handlers) when it can take the worker: it returns the events
 * handled, or -1 when another thread has the worker. Call them with no
 * lock held: handlers run inside rh_tp_drive. */
int rh_tp_drive_begin(void);
int rh_tp_drive(void);
void rh_tp_drive_end(void);

/* Ends driving as rh_tp_drive_end does, but without waking the parked
 * progress thread: it takes the network back by itself within
 * RH_TP_ASIDE_US (an op posted meanwhile wakes it at once). For a thread
 * that got what it waited for, or a worker about to run a job, which most
 * likely drives again in a moment: a wake there cost both ranks of a
 * round trip a futex call and a context switch each on the critical path.
 * A thread going to sleep, or to wait on something else, uses
 * rh_tp_drive_end. */
void rh_tp_drive_leave(void);

/* Whether a thread that polls the network, after idle rounds that found
 * nothing, should yield its core now: on every such round when this
 * host's ranks outnumber the cores this process may run on, on every
 * 16th otherwise. For progress threads and drivers alike. */
int rh_tp_idle_yield(uint64_t idle);

/* How long a progress thread parked for drivers sleeps at most before it
 * looks whether any is left: the longest the network goes unattended
 * after rh_tp_drive_leave. */
#define RH_TP_ASIDE_US 100

/* Takes the worker for a direct call when nobody has it and nothing
 * posted waits (so nothing is overtaken); 1 on success, then the caller
 * counts as the progress thread until rh_tp_leave. For sends that leave
 * at once: nothing runs handlers meanwhile. */
int rh_tp_enter(void);
void rh_tp_leave(void);

/* Whether more posted work waits behind the op running now (progress
 * thread only): the send path holds a message back to coalesce it only
 * then. */
int rh_tp_more_posted(void);

/* Any thread: whether nothing is posted for the progress thread (a look,
 * not a promise: an op it took may still be running). */
int rh_tp_ops_look_empty(void);

/* Registers fn to be called from the progress loop, outside any UCX
 * callback, once a peer was found dead. Call before rh_tp_start. */
rh_status_t rh_tp_on_peer_failure(rh_tp_failure_fn fn, void *arg);

int rh_tp_peer_alive(int rank);

/* The process of a rank on this host (0: on another host, or unknown). */
pid_t rh_tp_peer_pid(int rank);

/* Marks a peer dead (progress thread only, UCX callbacks included): new
 * sends to it fail at once; the progress loop then closes its endpoint,
 * which fails its queued traffic, and tells the listeners. Idempotent. */
void rh_tp_peer_failed(int rank, const char *why);

/* Whether rank still lives, after a send to it failed (progress thread
 * only): a rank on this host whose process is gone is marked dead now,
 * not at the next periodic check, so the send is not tried again and
 * fails as a death. */
int rh_tp_peer_recheck(int rank);

/* Stops reporting peer deaths as errors: the job is ending. */
void rh_tp_set_quiet_failures(void);

/* Every rank reached the job's end: ranks now leave on purpose, and the
 * receive watch (rxwatch.h) stops taking their exits for deaths. */
void rh_tp_job_ended(void);

/* Calls fn on the progress thread about every period_ns (it also bounds
 * how long the thread sleeps). Before rh_tp_start; one such function. */
void rh_tp_set_tick(void (*fn)(uint64_t now), uint64_t period_ns);

/* Switches the progress mode at run time (benchmarks). */
void rh_tp_set_progress_mode(rh_progress_mode_t mode);

int rh_tp_rank(void);
int rh_tp_size(void);

/* Endpoints to other ranks made once the progress thread started (made by
 * a send, or by a handler; with RAYHPC_CONNECT_ALL none: see
 * rh_tp_create_endpoints). */
int rh_tp_late_endpoints(void);

/* Prints the UCX resources the worker would use (rayhpc-info). */
void rh_tp_print_info(FILE *out);

#endif
