/*
 * The local scheduler's worker pool: the engine under Ray-style tasks.
 *
 * Jobs are intrusive: the owner embeds an rh_job_t in its own struct, sets
 * run, submits it, and frees its struct itself inside run(). The pool never
 * allocates per job and never touches a job once run() has been called.
 *
 * Each worker has a Chase-Lev deque (sched/deque.h) and an MPSC inbox
 * (base/mpsc.h). A job submitted by a worker goes onto that worker's deque
 * (newest first for its owner, oldest first for thieves); a job submitted by
 * any other thread goes round-robin into an inbox, which only its worker
 * drains, moving the jobs into its deque where the others can steal them.
 * Idle workers spin, then sleep on a futex; a submit wakes at most one of
 * them, and only when one sleeps.
 *
 * A job that must wait (a blocking get inside a task) calls
 * rh_pool_help_until(): the worker runs the waiting job's own spawns on its
 * stack, up to help_depth jobs deep, and past that, or when none is left to
 * run, parks the waiting job's thread and hands its worker slot to a spare
 * thread, so that waiting never takes a core away from the pool and any
 * depth of nested waits works.
 */
#ifndef RH_SCHED_POOL_H
#define RH_SCHED_POOL_H

#include <stdint.h>

#include "base/mpsc.h"
#include "rayhpc.h"

typedef struct rh_job rh_job_t;

struct rh_job {
    rh_mpsc_node_t node;              /* the pool's link; do not touch */
    void (*run)(rh_job_t *job);       /* may free the job */
};

typedef struct rh_pool rh_pool_t;

typedef struct rh_pool_params {
    int      num_workers;   /* 0: one per core (hwloc) */
    int      pin;           /* bind each worker to a core of its own (and
                             * its memory to that core's NUMA node) */
    uint64_t spin;          /* idle rounds before a worker sleeps */
    /* The ranks of one host share its cores: this pool takes the share-th
     * of `shares` equal slices (0 of 0 or 1: all of them). A process that
     * its launcher bound to some cores keeps to those instead. */
    int      share, shares;
    /* Jobs a waiting worker may run nested on its stack while it waits
     * (each waits in turn); 0: RH_POOL_HELP_DEPTH_DEFAULT, -1: none, every
     * wait that cannot return at once parks. */
    int      help_depth;
    /* Work an idle worker does while it spins before sleeping, such as
     * driving the network so that a job arriving from it runs on that
     * worker at once, with no hand-off and no wake-up: idle_begin (0: not
     * now), then idle_round between its looks for jobs (returns the events
     * it handled), then idle_end before the worker sleeps, and idle_leave
     * (NULL: idle_end) before it runs a job, which most often ends soon
     * and has the worker back at the idle work: a cheaper end that may
     * leave the work undone for a moment. One worker at a time does it; a
     * job submitted from idle_round goes onto that worker's own deque.
     * NULL: none. */
    int    (*idle_begin)(void);
    int    (*idle_round)(void);
    void   (*idle_end)(void);
    void   (*idle_leave)(void);
} rh_pool_params_t;

/* About 2 KiB of stack per nested task level: a quarter of the 8 MiB a
 * pool thread has, the rest left to the tasks' own frames. */
#define RH_POOL_HELP_DEPTH_DEFAULT 1024
#define RH_POOL_HELP_DEPTH_MAX     65536

/* A sensible spin for callers with no opinion: some tens of microseconds of
 * polling, long enough to bridge the gap between the jobs of a burst. */
#define RH_POOL_SPIN_DEFAULT 16384

typedef struct rh_pool_worker_stats {
    uint64_t jobs_run;      /* every job this worker ran, helping included */
    uint64_t jobs_helped;   /* of those, the ones run inside help_until */
    uint64_t steals;        /* jobs taken from another worker's deque */
    uint64_t sleeps;        /* times it went to sleep on its futex */
    uint64_t parks;         /* waits that gave the slot to another thread */
} rh_pool_worker_stats_t;

typedef struct rh_pool_stats {
    int                     num_workers;   /* out */
    rh_pool_worker_stats_t  total;         /* out: the sum over workers */
    uint64_t                threads;       /* out: started so far, the
                                            * workers' and spares */
    int                     parked;        /* out: threads parked now */
    /* in: NULL, or an array of per_worker_len entries; the first
     * min(per_worker_len, num_workers) receive the workers' numbers */
    rh_pool_worker_stats_t *per_worker;
    int                     per_worker_len;
} rh_pool_stats_t;

/* Starts the workers. Errors: RH_ERR_INVALID_PARAM (NULL pointer, negative
 * num_workers or more than 4096), RH_ERR_NO_MEMORY, RH_ERR_UNSUPPORTED (a
 * thread could not be started); rh_last_error() says which. */
rh_status_t rh_pool_create(const rh_pool_params_t *params, rh_pool_t **out);

/* Runs every job submitted so far (and those they submit), then stops and
 * joins the workers; the pool stays readable (rh_pool_notify may still be
 * called on it) until rh_pool_destroy. Same rules as rh_pool_destroy. */
void rh_pool_stop(rh_pool_t *pool);

/* Runs every job submitted so far (and those they submit), then stops and
 * joins the workers and frees the pool. Call it from a thread that is not a
 * worker of this pool, once no other thread submits to it any more. */
void rh_pool_destroy(rh_pool_t *pool);

/* Queues a job; any thread. The job must stay valid until run() starts.
 * From a job, the new job counts as its spawn: a wait of the job may run
 * it on the same stack. */
void rh_pool_submit(rh_pool_t *pool, rh_job_t *job);

/* Queues a job that is not a spawn of the calling job (a task that waited
 * for resources, say): it goes to an inbox, so no wait on this thread runs
 * it on top of a job it might itself wait for. */
void rh_pool_submit_shared(rh_pool_t *pool, rh_job_t *job);

/* Waits until done(arg) is true. A worker of this pool runs the waiting
 * job's own spawns meanwhile (those submitted after the job started, on
 * this thread), nested up to help_depth deep and while the stack has room;
 * past that, or with none of them left to run, it spins a little, then
 * parks: its slot (deque, inbox, core) goes to a spare thread, started on
 * demand and reused, and the job resumes on a slot of the pool once the
 * condition holds. So nested waits need no bound on depth, and a job may
 * wait for an older one. Any other thread spins, then sleeps. done() must
 * read what it checks with atomic loads; whoever makes it true must call
 * rh_pool_notify() afterwards. A job run while helping must not wait for
 * something only the waiting job produces after its wait. */
void rh_pool_help_until(rh_pool_t *pool, int (*done)(void *arg), void *arg);

enum {
    /* done() only loads atomics, takes no lock and changes nothing: notify
     * may evaluate it for a parked waiter and wake only the waiters whose
     * condition holds. Without it notify wakes every parked waiter. */
    RH_POOL_WAIT_PURE = 1u << 0
};

/* rh_pool_help_until with a deadline (rh_time_ns() clock; 0: never) and
 * RH_POOL_WAIT_* flags. Returns 1 when done(arg) came true, 0 when the
 * deadline passed first. */
int rh_pool_wait(rh_pool_t *pool, int (*done)(void *arg), void *arg,
                 uint64_t deadline_ns, unsigned flags);

/* The same, giving up at deadline_ns (rh_time_ns() clock; 0: never).
 * Returns 1 when done(arg) came true, 0 when the deadline passed first. A
 * helping worker looks at the clock between jobs, so a long job it runs
 * meanwhile delays the return; a sleeping one wakes up for the deadline. */
int rh_pool_help_until_deadline(rh_pool_t *pool, int (*done)(void *arg),
                                void *arg, uint64_t deadline_ns);

/* Wakes the threads waiting in rh_pool_help_until whose condition may now
 * hold (parked waiters with a pure condition only when it holds). Without sleepers it costs one atomic read-modify-write on
 * a pool-wide word (it is what makes any store of the condition, even a
 * relaxed one, visible to a waiter about to sleep); a syscall only for
 * sleepers not already woken. */
void rh_pool_notify(rh_pool_t *pool);

/* The calling thread's worker index in its pool, or -1 for a thread that is
 * not a worker. */
int rh_pool_worker_index(void);

/* The pool the calling thread works for, or NULL. */
rh_pool_t *rh_pool_current(void);

int rh_pool_num_workers(const rh_pool_t *pool);

/* Jobs submitted and not started yet (approximate while jobs come and go:
 * the schedulers' measure of load). */
long rh_pool_backlog(const rh_pool_t *pool);

/* Counters are relaxed: exact once the pool is quiet, approximate while
 * it runs. */
void rh_pool_stats(const rh_pool_t *pool, rh_pool_stats_t *stats);

#endif
