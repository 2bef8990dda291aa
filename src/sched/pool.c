/*
 * The worker pool (see pool.h for the contract).
 *
 * Where jobs live
 *   A worker's own submissions go onto its Chase-Lev deque (sched/deque.h).
 *   Other threads' submissions go round-robin into the workers' MPSC inboxes;
 *   an inbox has one consumer at a time: its worker, which moves what it
 *   finds into its deque (as much as fits without growing it) whenever its
 *   deque runs dry and every RH_POOL_DRAIN_EVERY jobs otherwise, so that
 *   inbox jobs become stealable soon even while their worker is busy with
 *   its own spawns; or an idle worker, when nothing else is left to steal.
 *   A worker looks: own deque (bottom) -> own inbox -> other deques (top,
 *   random victim first) -> other inboxes -> spins `spin` rounds of that ->
 *   sleeps.
 *
 * Sleeping and waking (no lost wake-ups)
 *   A worker (a slot, whichever thread owns it) sleeps in its main loop on
 *   its own futex word, wake_seq, and says so in `sleeping`; the pool
 *   counts sleepers in `sleepers`, which every submit reads, so a submit
 *   costs no wake-up work at all unless somebody sleeps.
 *
 *   Sleeper                              Submitter
 *   S0 seq = wake_seq         (seq_cst)  P1 publish the job    (seq_cst:
 *   S1 sleeping = mode        (seq_cst)     inbox exchange / deque bottom)
 *   S2 sleepers += 1          (seq_cst)  P2 read sleepers      (seq_cst)
 *   S3 look for work          (seq_cst:  P3 if > 0: read the target's
 *      own inbox ends, every deque's        sleeping; if set, exchange it
 *      top and bottom, resumers,            to AWAKE, and if we were the
 *      the end of a shutdown)
 *   S4 nothing: futex_wait(wake_seq, seq)   one to clear it, wake_seq += 1
 *   S5 sleeping = AWAKE, sleepers -= 1      and futex_wake(wake_seq, 1)
 *
 *   All of these are seq_cst, so they sit in one total order. If S3 misses
 *   the job, S3 precedes P1, hence S1 and S2 precede P2 and P3: the
 *   submitter sees the sleeper counted and flagged, or AWAKE written after
 *   S1 by another waker (who then bumps wake_seq: this sleeper wakes and
 *   looks again, and that look follows P1). Whoever clears the flag does so
 *   after S1 and bumps wake_seq after that, so the bump comes after S0: the
 *   kernel, which compares wake_seq with seq atomically with queueing the
 *   sleeper, either refuses the sleep or has it queued for the wake. That
 *   is why S0 comes first: read after S1, a wake-up meant for another
 *   reason (a resumer wakes whichever owner it finds first) could
 *   clear the flag and be absorbed, leaving the sleeper asleep with its
 *   flag saying AWAKE, skipped by every later waker. Only the waker whose
 *   exchange cleared the flag pays a syscall, so a burst of submits wakes a
 *   sleeper once.
 *
 *   An inbox job wakes the inbox's worker, or, when that one is up (busy
 *   with a job that may block for long), one sleeper, which takes it: S3
 *   looks at every inbox too, and an idle worker takes from the inbox of
 *   another (one taker at a time, inbox_taker) once no deque has work. A job
 *   pushed onto a worker's deque (a worker's submit, or inbox jobs moved
 *   there) wakes one sleeper, whichever the scan from a random start finds
 *   first: S3 looks at every deque, so the argument above holds with "some
 *   sleeper" in place of "the target". A thread that waits for a slot (P1:
 *   resume_n += 1) wakes one sleeper the same way.
 *
 * Waiting inside a job: help, then park
 *   A waiting worker runs only the waiting job's own spawns: the jobs on its
 *   deque at or above the mark taken when the job started (sched/deque.h,
 *   rh_deque_pop_above; TBB and Cilk call this helping with one's own
 *   subtree). Whatever it runs on top of the waiting frame was submitted
 *   after the waiting job started, by it or by its spawns, so the job it
 *   sits on never waits for it in turn, and a frame whose condition comes
 *   true is never held below an older job. It helps up to help_depth frames
 *   deep and while more than RH_POOL_STACK_RESERVE of the stack is left.
 *
 *   Past that, or when none of its spawns is left here (a thief or another
 *   rank runs them), it spins, then parks: it puts itself on the parked
 *   list with its condition, hands its slot (deque, inbox, core binding) to
 *   a thread that waits for one, an idle spare, or a new spare, and sleeps
 *   on its own futex word. The slot's jobs, its inbox included, go on
 *   running on the new owner, so the core stays busy (Ray starts another
 *   worker when one blocks). When the condition holds, the parked thread
 *   moves itself to the resume list and wakes a slot owner; an owner at the
 *   top of its loop, between jobs, hands its slot over and becomes an idle
 *   spare (more idle spares than workers retire), and so does a helper that
 *   is about to park. Resumers come before new jobs, so a deep chain
 *   unwinds in order. The resumed job then helps only with what it spawns
 *   from then on: the deque it comes back to holds nothing of its own.
 *
 *   Threads per chain: depth / help_depth parked ones, each with the stack
 *   its frames touched (the stack is reserved, not committed, beyond that).
 *
 * notify
 *   Any thread that makes a condition true calls rh_pool_notify(). Parked
 *   threads and sleeping non-worker waiters count themselves in `helpers`
 *   with a read-modify-write before their last look at the condition, and
 *   notify reads it with one: the two RMWs are ordered in helpers'
 *   modification order; if notify's comes second it sees the waiter; if
 *   first, the waiter's RMW reads from it and so synchronizes with it, and
 *   the waiter's done(arg) sees whatever the notifier stored before calling
 *   notify, however it stored it. That is what lets callers set their flags
 *   with plain release stores. Parked waiters are listed under the pool's
 *   lock: notify evaluates a pure condition itself (RH_POOL_WAIT_PURE) and
 *   wakes only the waiters whose condition holds, so a chain of thousands of
 *   parked levels pays one wake-up per completed level; other parked
 *   waiters are woken to look themselves.
 *
 *   Outside waiters share the pool's ext_seq word and ext_asleep flag, and
 *   notify clears the flag before it pays for a futex_wake, so notifies
 *   that come while the waiters are up cost no syscall (this took fib(30)
 *   with an outside waiter from 2.5 to 24 million jobs/s).
 *
 *   An inbox is taken from by its worker between jobs, or by an idle
 *   worker when its own is busy: a job submitted from outside never waits
 *   for the one job its worker runs (which may wait, outside the pool's
 *   view, for that very job: a task joining a thread that gets from it).
 *
 * Shutdown
 *   destroy sets `stopping` (seq_cst) and wakes every worker; a slot's
 *   owner leaves when stopping is set, its deque and inbox are empty and no
 *   thread is parked or waits for a slot (the last resumer to get one wakes
 *   the owners again). Jobs submitted by running jobs go onto their slot's
 *   own deque, so they run too; another slot's deque is its owner's to
 *   empty. Idle spares retire; destroy joins every thread ever started.
 */
#include "sched/pool.h"

#include <errno.h>
#include <hwloc.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/completion.h"
#include "base/log.h"
#include "base/status.h"
#include "sched/deque.h"

#define RH_POOL_MAX_WORKERS   4096
#define RH_POOL_DEQUE_INITIAL 1024          /* slots; grows by doubling */
#define RH_POOL_DRAIN_EVERY   32            /* looks between inbox drains */
#define RH_POOL_STEAL_TRIES   4             /* lost CAS races per victim */
#define RH_POOL_STACK_SIZE    (8u << 20)    /* nested help_until needs room */
#define RH_POOL_STACK_RESERVE (1u << 20)    /* left to the frames of a job */
#define RH_POOL_LINE          64

/* A slot's `sleeping`: its owner is up, asleep in its main loop, or was
 * asleep when a resumer took the slot over (until the old owner, up again,
 * sees it and leaves: only it moves the slot out of TAKEN). */
enum { RH_AWAKE = 0, RH_SLEEP_IDLE = 1, RH_SLEEP_TAKEN = 2 };

/* What a thread's main loop ended with; RH_LOOP_ON: it goes on. */
enum { RH_LOOP_ON = 0, RH_LOOP_EXIT = 1, RH_LOOP_IDLE = 2 };

typedef struct rh_pool_thread rh_pool_thread_t;

/* A slot: what a running thread owns. Jobs, inbox and core belong to the
 * slot, so a thread that parks hands them on whole. */
typedef struct rh_worker {
    rh_deque_t deque;
    _Alignas(RH_POOL_LINE) rh_mpsc_t inbox;
    _Atomic int      inbox_taker;   /* 1 while a thread takes from inbox */
    /* Written by the owner and by whoever wakes it. */
    _Alignas(RH_POOL_LINE) _Atomic uint32_t wake_seq;   /* futex word */
    _Atomic int      sleeping;                  /* RH_AWAKE, RH_SLEEP_* */
    /* The owner's; stats are written by the owner alone, read by anyone. */
    _Alignas(RH_POOL_LINE) rh_pool_t *pool;
    int              index;
    uint32_t         since_drain;
    uint64_t         rng;
    _Atomic uint64_t jobs_run, jobs_helped, steals, sleeps, parks;
    _Atomic uint64_t submitted;                 /* by this slot's jobs */
} rh_worker_t;

/* A thread of the pool: a slot's owner, parked in a wait, waiting for a
 * slot to resume, or idle. The lists it sits on are under the pool's lock. */
struct rh_pool_thread {
    _Atomic uint32_t  seq;        /* futex word while it has no slot */
    _Atomic(rh_worker_t *) slot;  /* handed to it while it has none */
    _Atomic int       ready;      /* parked: notify saw its condition hold */
    int               retire;     /* idle: leave instead of waiting */
    int             (*done)(void *arg);   /* parked: its condition */
    void             *arg;
    int               pure;       /* done may be called by notify */
    /* The thread's own, written at every job, on a line of their own;
     * mark: its slot's deque bottom when the running job started. */
    _Alignas(RH_POOL_LINE) int64_t mark;
    int               depth;      /* waits on its stack */
    uint64_t          resumes;    /* parks it came back from */
    const char       *stack_lo;   /* its stack's lowest address, or NULL */
    int               bound;      /* slot it is bound to, or -1 */
    int               id;
    rh_pool_t        *pool;
    pthread_t         thread;
    int               joined;     /* under the lock: claimed by a join */
    rh_pool_thread_t *prev, *next;   /* on the parked, resume or idle list */
    rh_pool_thread_t *all_next;      /* every thread the pool started */
};

struct rh_pool {
    rh_worker_t     *workers;
    int              num_workers;
    int              pin;
    uint64_t         spin;
    int              help_depth;  /* -1: none */
    int            (*idle_begin)(void);
    int            (*idle_round)(void);
    void           (*idle_end)(void);
    void           (*idle_leave)(void);   /* before a job: idle_end's cheap form */
    hwloc_topology_t topo;        /* to pin, or to count cores; or NULL */
    hwloc_obj_t     *place;       /* the cores (or PUs) the workers may
                                   * bind to: this pool's share */
    int              places;
    /* Read by every submit; written when a worker starts or stops sleeping. */
    _Alignas(RH_POOL_LINE) _Atomic int sleepers;
    _Atomic int      stopping;
    _Atomic int      idle_busy;   /* a worker does the idle work */
    /* Written by notify and by sleeping waiters only. */
    _Alignas(RH_POOL_LINE) _Atomic int helpers;   /* parked + outside */
    _Atomic int      ext_sleepers;                /* outside sleepers */
    _Atomic int      ext_asleep;                  /* their `sleeping` flag */
    _Atomic uint32_t ext_seq;                     /* their futex word */
    /* Written by threads outside the pool, and by shared submits. */
    _Alignas(RH_POOL_LINE) _Atomic uint64_t ext_submitted;
    /* Parking: written under the lock, the counts read by anyone. */
    _Alignas(RH_POOL_LINE) pthread_mutex_t lock;
    rh_pool_thread_t *parked;                     /* doubly linked */
    rh_pool_thread_t *resume_head, *resume_tail;  /* FIFO */
    rh_pool_thread_t *idle;                       /* stack */
    rh_pool_thread_t *all;
    int              idle_count;
    int              warned;      /* a spare could not be started */
    _Atomic int      parked_n;
    _Atomic int      resume_n;    /* read by every owner between jobs */
    _Atomic uint64_t threads;     /* started so far */
};

static _Thread_local rh_worker_t *rh_pool_self;   /* the slot it owns */
/* In the idle work the thread is no worker for what runs there (handlers
 * must find the same world as on a thread of their own: rh_pool_current()
 * NULL, so a wait there does not help or park), but what it submits goes
 * onto its slot's deque, the first job unannounced: it runs it next. */
static _Thread_local rh_worker_t *rh_pool_idle_self;
static _Thread_local int rh_pool_idle_fresh;
static _Thread_local rh_pool_thread_t *rh_pool_me;
static _Thread_local uint32_t rh_pool_rr;         /* next inbox, per thread */
static _Thread_local int rh_pool_rr_seeded;
static _Atomic uint32_t rh_pool_rr_seed;

/* ---- small helpers ------------------------------------------------------- */

/* deadline_ns: 0 for none. EAGAIN (the word moved), EINTR and ETIMEDOUT
 * all just send the caller back to look. */
static void rh_pool_futex_wait(_Atomic uint32_t *word, uint32_t expected,
                               uint64_t deadline_ns)
{
    struct timespec ts, *tsp = NULL;

    if (deadline_ns != 0) {
        uint64_t now = rh_time_ns();

        if (now >= deadline_ns) {
            return;
        }
        ts.tv_sec = (time_t)((deadline_ns - now) / 1000000000ull);
        ts.tv_nsec = (long)((deadline_ns - now) % 1000000000ull);
        tsp = &ts;
    }
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expected, tsp, NULL, 0);
}

static inline int rh_deadline_passed(uint64_t deadline_ns)
{
    return deadline_ns != 0 && rh_time_ns() >= deadline_ns;
}

static void rh_pool_futex_wake(_Atomic uint32_t *word, int count)
{
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, count, NULL, NULL, 0);
}

/* One writer per counter: a plain increment, atomic only so that
 * rh_pool_stats may read it meanwhile. */
static inline void rh_stat_inc(_Atomic uint64_t *counter)
{
    uint64_t v = atomic_load_explicit(counter, memory_order_relaxed);

    atomic_store_explicit(counter, v + 1, memory_order_relaxed);
}

static inline rh_job_t *rh_job_of(rh_mpsc_node_t *node)
{
    return (rh_job_t *)((char *)node - offsetof(rh_job_t, node));
}

static inline uint64_t rh_worker_rand(rh_worker_t *w)
{
    uint64_t x = w->rng;   /* xorshift64: victim choice needs no quality */

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    w->rng = x;
    return x;
}

/* ---- waking -------------------------------------------------------------- */

/* Wakes w's owner if it sleeps. Clearing the flag first means one waker
 * per sleep pays for the syscall. */
static int rh_worker_wake(rh_worker_t *w)
{
    int state = RH_SLEEP_IDLE;

    if (atomic_load_explicit(&w->sleeping, memory_order_seq_cst) !=
        RH_SLEEP_IDLE ||
        !atomic_compare_exchange_strong_explicit(&w->sleeping, &state,
                                                 RH_AWAKE,
                                                 memory_order_seq_cst,
                                                 memory_order_seq_cst)) {
        return 0;
    }
    atomic_fetch_add_explicit(&w->wake_seq, 1, memory_order_seq_cst);
    rh_pool_futex_wake(&w->wake_seq, 1);
    return 1;
}

/* After a push onto self's deque: anyone may steal the job, so wake one
 * sleeper, if there is one. A resumer (self NULL) does the same: any owner
 * may hand it a slot. */
static void rh_pool_wake_one(rh_pool_t *pool, rh_worker_t *self)
{
    int n = pool->num_workers;
    int start;

    if (rh_likely(atomic_load_explicit(&pool->sleepers,
                                       memory_order_seq_cst) == 0)) {
        return;
    }
    start = self != NULL ? (int)(rh_worker_rand(self) % (uint64_t)n)
                         : (int)(rh_time_ns() % (uint64_t)n);
    for (int k = 0; k < n; k++) {
        rh_worker_t *w = &pool->workers[(start + k) % n];

        if (w != self && rh_worker_wake(w)) {
            return;
        }
    }
}

/* ---- finding work -------------------------------------------------------- */

/* An inbox has one taker at a time: its owner, or an idle worker taking
 * what a busy owner has not come to (its job may block for long: a join
 * of a thread that waits for these very jobs). 0 when another has it. */
static int rh_inbox_claim(rh_worker_t *from)
{
    return !rh_mpsc_looks_empty(&from->inbox) &&
           !atomic_load_explicit(&from->inbox_taker, memory_order_relaxed) &&
           !atomic_exchange_explicit(&from->inbox_taker, 1,
                                     memory_order_acquire);
}

/* Takes the oldest job of from's inbox (claimed), unless keep is 0, and
 * moves the rest into w's deque, as many as fit without growing it (so this
 * never allocates), where other workers can steal them; lets go of the
 * claim. w is the caller's own slot. They go in newest first, so that the
 * owner, which pops the newest push, runs other threads' jobs in the
 * order they came (thieves take the newest). */
static rh_job_t *rh_inbox_take(rh_worker_t *w, rh_worker_t *from, int keep)
{
    int64_t room = rh_deque_room(&w->deque);
    int64_t moved = 0;
    rh_mpsc_node_t *first = keep ? rh_mpsc_pop(&from->inbox) : NULL, *node;
    rh_mpsc_node_t *newest = NULL;

    /* Popped nodes are ours: their links chain them newest first. */
    while ((first != NULL || !keep) && moved < room &&
           (node = rh_mpsc_pop(&from->inbox)) != NULL) {
        atomic_store_explicit(&node->next, newest, memory_order_relaxed);
        newest = node;
        moved++;
    }
    atomic_store_explicit(&from->inbox_taker, 0, memory_order_release);
    while (newest != NULL) {
        node = newest;
        newest = atomic_load_explicit(&node->next, memory_order_relaxed);
        rh_deque_push(&w->deque, rh_job_of(node));   /* fits: no failure */
    }
    if (moved > 0) {
        rh_pool_wake_one(w->pool, w);
    }
    return first != NULL ? rh_job_of(first) : NULL;
}

/* The owner's inbox jobs become stealable: into its deque. */
static void rh_worker_drain(rh_worker_t *w)
{
    if (rh_inbox_claim(w)) {
        (void)rh_inbox_take(w, w, 0);
    }
}

static rh_job_t *rh_worker_take_inbox(rh_worker_t *w)
{
    return rh_inbox_claim(w) ? rh_inbox_take(w, w, 1) : NULL;
}

/* Nothing to steal from the deques: the inbox of a worker busy with one
 * job (the inbox is its own to empty, only between jobs). */
static rh_job_t *rh_worker_steal_inbox(rh_worker_t *w)
{
    rh_pool_t *pool = w->pool;
    int n = pool->num_workers;
    int start = (int)(rh_worker_rand(w) % (uint64_t)n);

    for (int k = 0; k < n; k++) {
        rh_worker_t *victim = &pool->workers[(start + k) % n];
        rh_job_t *job;

        if (victim != w && rh_inbox_claim(victim) &&
            (job = rh_inbox_take(w, victim, 1)) != NULL) {
            rh_stat_inc(&w->steals);
            return job;
        }
    }
    return NULL;
}

static rh_job_t *rh_worker_steal(rh_worker_t *w)
{
    rh_pool_t *pool = w->pool;
    int n = pool->num_workers;
    int start;

    if (n == 1) {
        return NULL;
    }
    start = (int)(rh_worker_rand(w) % (uint64_t)n);
    for (int k = 0; k < n; k++) {
        rh_worker_t *victim = &pool->workers[(start + k) % n];

        if (victim == w) {
            continue;
        }
        for (int tries = 0; tries < RH_POOL_STEAL_TRIES; tries++) {
            void *item;
            rh_deque_steal_result_t r = rh_deque_steal(&victim->deque, &item);

            if (r == RH_DEQUE_OK) {
                rh_stat_inc(&w->steals);
                return item;
            }
            if (r == RH_DEQUE_EMPTY) {
                break;
            }
        }
    }
    return NULL;
}

static rh_job_t *rh_worker_find(rh_worker_t *w)
{
    rh_job_t *job;

    if (++w->since_drain >= RH_POOL_DRAIN_EVERY) {
        w->since_drain = 0;
        rh_worker_drain(w);
    }
    job = rh_deque_pop(&w->deque);
    if (job == NULL) {
        job = rh_worker_take_inbox(w);
    }
    if (job == NULL) {
        job = rh_worker_steal(w);
    }
    if (job == NULL) {
        job = rh_worker_steal_inbox(w);
    }
    return job;
}

/* Runs job on w and returns the slot the thread owns afterwards: a job
 * that parked comes back on whichever slot was handed to it. */
static rh_worker_t *rh_worker_run(rh_pool_thread_t *me, rh_worker_t *w,
                                  rh_job_t *job, int helping)
{
    int64_t outer = me->mark;
    uint64_t resumes = me->resumes;

    me->mark = rh_deque_mark(&w->deque);
    job->run(job);   /* job may be freed now: not touched again */
    w = rh_pool_self;
    rh_stat_inc(&w->jobs_run);
    if (helping) {
        rh_stat_inc(&w->jobs_helped);
    }
    /* After a park the frames below find another deque, or the same one
     * refilled: they help only with what is pushed from now on. */
    me->mark = me->resumes == resumes ? outer : rh_deque_mark(&w->deque);
    return w;
}

/* No thread is parked or waits for a slot: at shutdown, owners may leave. */
static int rh_pool_settled(rh_pool_t *pool)
{
    return atomic_load_explicit(&pool->parked_n, memory_order_seq_cst) == 0 &&
           atomic_load_explicit(&pool->resume_n, memory_order_seq_cst) == 0;
}

/* S3 of the handshake: seq_cst looks at everything a wake-up could be for.
 * A resumer may take the slot over from here on (RH_SLEEP_TAKEN): only
 * atomics are read, none of the owner's private fields. */
static int rh_worker_sees_work(rh_worker_t *w)
{
    rh_pool_t *pool = w->pool;

    if (!rh_mpsc_looks_empty(&w->inbox) ||
        atomic_load_explicit(&pool->resume_n, memory_order_seq_cst) > 0) {
        return 1;
    }
    for (int i = 0; i < pool->num_workers; i++) {
        if (!rh_deque_looks_empty(&pool->workers[i].deque) ||
            !rh_mpsc_looks_empty(&pool->workers[i].inbox)) {
            return 1;
        }
    }
    return 0;
}

/* ---- sleeping ------------------------------------------------------------ */

/* One sleep of an owner in its main loop: returns when woken, or at once
 * when the last look finds a reason to stay up. The caller then looks for
 * work again, unless this returns 0: a resumer took the slot meanwhile. */
static int rh_worker_sleep(rh_worker_t *w)
{
    rh_pool_t *pool = w->pool;
    uint32_t seq;
    int stay_up, state = RH_SLEEP_IDLE;

    /* A slot taken from a sleeping owner is ours once that owner has seen
     * it: before, its flag must not go back to IDLE under it. */
    while (atomic_load_explicit(&w->sleeping, memory_order_seq_cst) ==
           RH_SLEEP_TAKEN) {
        sched_yield();
    }

    /* S0 before S1: whoever clears our flag bumps wake_seq afterwards, so
     * it cannot be a value we already read. Reading it after S1 would let
     * a wake-up meant for something else clear the flag unseen, and later
     * wakers would skip us as awake. */
    seq = atomic_load_explicit(&w->wake_seq, memory_order_seq_cst);
    atomic_store_explicit(&w->sleeping, RH_SLEEP_IDLE, memory_order_seq_cst);
    atomic_fetch_add_explicit(&pool->sleepers, 1, memory_order_seq_cst);
    stay_up = atomic_load_explicit(&pool->stopping, memory_order_seq_cst) &&
              rh_pool_settled(pool);
    if (!stay_up && !rh_worker_sees_work(w)) {
        rh_stat_inc(&w->sleeps);
        rh_pool_futex_wait(&w->wake_seq, seq, 0);
    }
    if (!atomic_compare_exchange_strong_explicit(&w->sleeping, &state,
                                                 RH_AWAKE,
                                                 memory_order_seq_cst,
                                                 memory_order_seq_cst) &&
        state == RH_SLEEP_TAKEN) {
        /* Taken over: say we saw it, and touch the slot no more. */
        atomic_store_explicit(&w->sleeping, RH_AWAKE, memory_order_seq_cst);
        atomic_fetch_sub_explicit(&pool->sleepers, 1, memory_order_seq_cst);
        return 0;
    }
    atomic_fetch_sub_explicit(&pool->sleepers, 1, memory_order_seq_cst);
    return 1;
}

/* A thread that is not a worker of the pool waits on the pool's own word,
 * never on a worker's: a submit's single wake-up must reach a thread that
 * can run the job. The outside sleepers share one word and one flag, with
 * the workers' protocol (S0 first): any sleeper that set the flag before a
 * notify cleared it read ext_seq before the bump that follows, so the wake
 * (of all of them) reaches it; one that sets it afterwards leaves it set for
 * the next notify. A notify while they are all up costs no syscall. */
static void rh_pool_sleep_outside(rh_pool_t *pool, int (*done)(void *arg),
                                  void *arg, uint64_t deadline_ns)
{
    uint32_t seq = atomic_load_explicit(&pool->ext_seq, memory_order_seq_cst);

    atomic_store_explicit(&pool->ext_asleep, 1, memory_order_seq_cst);
    atomic_fetch_add_explicit(&pool->ext_sleepers, 1, memory_order_seq_cst);
    atomic_fetch_add_explicit(&pool->helpers, 1, memory_order_seq_cst);
    if (!done(arg)) {
        rh_pool_futex_wait(&pool->ext_seq, seq, deadline_ns);
    }
    atomic_fetch_sub_explicit(&pool->helpers, 1, memory_order_seq_cst);
    atomic_fetch_sub_explicit(&pool->ext_sleepers, 1, memory_order_seq_cst);
}

/* ---- threads and slots --------------------------------------------------- */

static void rh_worker_name(const rh_pool_thread_t *me, int is_spare)
{
    char name[16];   /* the kernel keeps 15 characters */

    if (is_spare) {
        snprintf(name, sizeof(name), "rayhpc-spare-%d", me->id);
    } else if (snprintf(name, sizeof(name), "rayhpc-worker-%d", me->id) >=
               (int)sizeof(name)) {
        /* From worker 10 on the long form does not fit; truncating it
         * would give workers 10-19 the same name. */
        snprintf(name, sizeof(name), "rayhpc-wk-%d", me->id);
    }
    pthread_setname_np(pthread_self(), name);
}

/* Binds this thread to w's core and its memory to the core's NUMA node.
 * Containers and some kernels refuse either; the pool works unbound. */
static void rh_worker_bind(rh_worker_t *w)
{
    rh_pool_t *pool = w->pool;
    hwloc_obj_t obj;
    char err[128];

    /* Two workers on one core would each run at half speed: unpinned, the
     * kernel spreads them over the share at least. */
    if (pool->topo == NULL || pool->num_workers > pool->places) {
        return;
    }
    obj = pool->place[w->index];
    if (obj == NULL || obj->cpuset == NULL) {
        return;
    }
    if (hwloc_set_cpubind(pool->topo, obj->cpuset,
                          HWLOC_CPUBIND_THREAD) != 0) {
        rh_debug("pool worker %d: not bound to core %u: %s", w->index,
                 obj->logical_index, strerror_r(errno, err, sizeof(err)));
    }
    if (obj->nodeset != NULL && !hwloc_bitmap_iszero(obj->nodeset) &&
        hwloc_set_membind(pool->topo, obj->nodeset, HWLOC_MEMBIND_BIND,
                          HWLOC_MEMBIND_THREAD |
                          HWLOC_MEMBIND_BYNODESET) != 0) {
        rh_debug("pool worker %d: memory not bound to core %u's node: %s",
                 w->index, obj->logical_index,
                 strerror_r(errno, err, sizeof(err)));
    }
}

/* The calling thread becomes w's owner; its core follows the slot. */
static void rh_pool_take_slot(rh_pool_thread_t *me, rh_worker_t *w)
{
    rh_pool_self = w;
    if (w->pool->pin && me->bound != w->index) {
        rh_worker_bind(w);
        me->bound = w->index;
    }
}

/* Under the lock: gives w to t, which waits for a slot. */
static void rh_pool_hand_locked(rh_pool_thread_t *t, rh_worker_t *w)
{
    atomic_store_explicit(&t->slot, w, memory_order_release);
    atomic_fetch_add_explicit(&t->seq, 1, memory_order_seq_cst);
    rh_pool_futex_wake(&t->seq, 1);
}

/* Under the lock: the oldest resumer, or NULL. */
static rh_pool_thread_t *rh_pool_pop_resumer_locked(rh_pool_t *pool)
{
    rh_pool_thread_t *t = pool->resume_head;

    if (t != NULL) {
        pool->resume_head = t->next;
        if (pool->resume_head == NULL) {
            pool->resume_tail = NULL;
        }
        t->next = NULL;
        atomic_fetch_sub_explicit(&pool->resume_n, 1, memory_order_seq_cst);
    }
    return t;
}

/* Once the last resumer has its slot at shutdown, the owners that stayed
 * for it may leave: wake them to look (their S3 reads the counts). */
static void rh_pool_wake_if_settled(rh_pool_t *pool)
{
    if (atomic_load_explicit(&pool->stopping, memory_order_seq_cst) &&
        rh_pool_settled(pool)) {
        for (int i = 0; i < pool->num_workers; i++) {
            rh_worker_wake(&pool->workers[i]);
        }
    }
}

/* Under the lock: a thread that gave its slot away waits for another as an
 * idle spare, or leaves when enough spares are idle or the pool stops. */
static int rh_pool_go_idle_locked(rh_pool_thread_t *me)
{
    rh_pool_t *pool = me->pool;

    if (atomic_load_explicit(&pool->stopping, memory_order_seq_cst) ||
        pool->idle_count >= pool->num_workers) {
        return RH_LOOP_EXIT;
    }
    me->next = pool->idle;
    pool->idle = me;
    pool->idle_count++;
    return RH_LOOP_IDLE;
}

/* A resumer takes the slot of an owner asleep in its main loop, if there is
 * one: it need not wait for that owner to wake up and hand it over. The
 * owner, once up, finds the slot TAKEN and goes idle. */
static rh_worker_t *rh_pool_take_sleeping(rh_pool_t *pool)
{
    int n = pool->num_workers;
    int start;

    if (atomic_load_explicit(&pool->sleepers, memory_order_seq_cst) == 0) {
        return NULL;
    }
    start = (int)(rh_time_ns() % (uint64_t)n);
    for (int k = 0; k < n; k++) {
        rh_worker_t *w = &pool->workers[(start + k) % n];
        int state = RH_SLEEP_IDLE;

        if (atomic_load_explicit(&w->sleeping, memory_order_seq_cst) ==
                RH_SLEEP_IDLE &&
            atomic_compare_exchange_strong_explicit(&w->sleeping, &state,
                                                    RH_SLEEP_TAKEN,
                                                    memory_order_seq_cst,
                                                    memory_order_seq_cst)) {
            atomic_fetch_add_explicit(&w->wake_seq, 1, memory_order_seq_cst);
            rh_pool_futex_wake(&w->wake_seq, 1);
            return w;
        }
    }
    return NULL;
}

/* Between jobs at the top of its loop: hands w to the oldest resumer, if
 * any. Returns RH_LOOP_ON (none: keep w), RH_LOOP_IDLE (the caller waits
 * for a slot as an idle spare) or RH_LOOP_EXIT (enough spares idle). */
static int rh_pool_give_slot(rh_pool_thread_t *me, rh_worker_t *w)
{
    rh_pool_t *pool = w->pool;
    rh_pool_thread_t *r;
    int result;

    pthread_mutex_lock(&pool->lock);
    r = rh_pool_pop_resumer_locked(pool);
    if (r == NULL) {
        pthread_mutex_unlock(&pool->lock);
        return RH_LOOP_ON;
    }
    rh_pool_self = NULL;
    rh_pool_hand_locked(r, w);
    result = rh_pool_go_idle_locked(me);
    pthread_mutex_unlock(&pool->lock);
    rh_pool_wake_if_settled(pool);
    return result;
}

/* An idle spare waits to be handed a slot (NULL: it retires). */
static rh_worker_t *rh_pool_wait_for_slot(rh_pool_thread_t *me)
{
    for (;;) {
        uint32_t seq = atomic_load_explicit(&me->seq, memory_order_seq_cst);
        rh_worker_t *w = atomic_exchange_explicit(&me->slot, NULL,
                                                  memory_order_acquire);

        if (w != NULL) {
            return w;
        }
        pthread_mutex_lock(&me->pool->lock);
        if (me->retire) {
            pthread_mutex_unlock(&me->pool->lock);
            return NULL;
        }
        pthread_mutex_unlock(&me->pool->lock);
        rh_pool_futex_wait(&me->seq, seq, 0);
    }
}

/* ---- the worker loop ----------------------------------------------------- */

static int rh_worker_may_exit(rh_worker_t *w)
{
    return atomic_load_explicit(&w->pool->stopping, memory_order_acquire) &&
           rh_deque_looks_empty(&w->deque) && rh_mpsc_idle(&w->inbox) &&
           rh_pool_settled(w->pool);
}

/* ---- idle work ----------------------------------------------------------- */

/* Whether this worker does the idle work now (the pool's one at a time). */
static int rh_worker_idle_begin(rh_pool_t *pool)
{
    int expected = 0;

    if (pool->idle_round == NULL ||
        atomic_load_explicit(&pool->idle_busy, memory_order_relaxed) ||
        !atomic_compare_exchange_strong_explicit(&pool->idle_busy, &expected,
                                                 1, memory_order_acquire,
                                                 memory_order_relaxed)) {
        return 0;
    }
    if (!pool->idle_begin()) {
        atomic_store_explicit(&pool->idle_busy, 0, memory_order_release);
        return 0;
    }
    return 1;
}

static void rh_worker_idle_end(rh_pool_t *pool, int *busy)
{
    if (*busy) {
        pool->idle_end();
        atomic_store_explicit(&pool->idle_busy, 0, memory_order_release);
        *busy = 0;
    }
}

/* The idle work ends because a job runs now. */
static void rh_worker_idle_leave(rh_pool_t *pool, int *busy)
{
    if (*busy) {
        pool->idle_leave();
        atomic_store_explicit(&pool->idle_busy, 0, memory_order_release);
        *busy = 0;
    }
}

static int rh_worker_idle_round(rh_pool_t *pool)
{
    int n;

    rh_pool_idle_self = rh_pool_self;
    rh_pool_self = NULL;
    rh_pool_idle_fresh = 1;
    n = pool->idle_round();
    rh_pool_idle_fresh = 0;
    rh_pool_self = rh_pool_idle_self;
    rh_pool_idle_self = NULL;
    return n;
}

/* Runs jobs on w (or on whichever slot the thread comes back with from a
 * park) until the slot goes to a resumer or the pool stops. */
static int rh_worker_loop(rh_pool_thread_t *me, rh_worker_t *w)
{
    rh_pool_t *pool = w->pool;
    uint64_t idle = 0;
    int busy = 0;   /* doing the idle work */

    for (;;) {
        rh_job_t *job;

        /* A resumer finishes an older job: it goes before new ones. */
        if (rh_unlikely(atomic_load_explicit(&pool->resume_n,
                                             memory_order_relaxed) > 0)) {
            int given;

            rh_worker_idle_end(pool, &busy);
            given = rh_pool_give_slot(me, w);

            if (given != RH_LOOP_ON) {
                return given;
            }
        }
        job = rh_worker_find(w);
        if (job != NULL) {
            /* The idle work ends before any job runs: a job may block
             * for as long as it likes, and the idle work (the network)
             * must go on meanwhile elsewhere. */
            rh_worker_idle_leave(pool, &busy);
            w = rh_worker_run(me, w, job, 0);
            idle = 0;
            continue;
        }
        if (rh_worker_may_exit(w)) {
            rh_worker_idle_end(pool, &busy);
            return RH_LOOP_EXIT;
        }
        if (idle < pool->spin) {
            idle++;
            if ((busy || (busy = rh_worker_idle_begin(pool))) &&
                rh_worker_idle_round(pool) > 0) {
                continue;   /* it may have brought a job: look at once */
            }
            rh_cpu_relax();
            /* Offer the core now and then: with more threads than cores
             * (progress threads, drivers) a spinning worker would otherwise
             * hold it for a whole time slice. */
            if ((idle & 63) == 0) {
                sched_yield();
            }
            continue;
        }
        rh_worker_idle_end(pool, &busy);
        if (!rh_worker_sleep(w)) {
            int result;

            pthread_mutex_lock(&pool->lock);
            result = rh_pool_go_idle_locked(me);
            pthread_mutex_unlock(&pool->lock);
            return result;
        }
        idle = 0;
    }
}

static void rh_pool_find_stack(rh_pool_thread_t *me)
{
    pthread_attr_t attr;
    void *lo;
    size_t size;

    me->stack_lo = NULL;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) {
        return;
    }
    if (pthread_attr_getstack(&attr, &lo, &size) == 0) {
        me->stack_lo = lo;
    }
    pthread_attr_destroy(&attr);
}

/* Whether a wait may run one more job on this stack. */
static int rh_pool_stack_has_room(const rh_pool_thread_t *me)
{
    const char *here = __builtin_frame_address(0);

    return me->stack_lo == NULL ||
           (size_t)(here - me->stack_lo) > RH_POOL_STACK_RESERVE;
}

static void *rh_pool_thread_main(void *arg)
{
    rh_pool_thread_t *me = arg;
    rh_worker_t *w = atomic_exchange_explicit(&me->slot, NULL,
                                              memory_order_acquire);

    rh_pool_me = me;
    rh_pool_find_stack(me);
    rh_worker_name(me, me->id >= me->pool->num_workers);
    while (w != NULL) {
        rh_pool_take_slot(me, w);
        if (rh_worker_loop(me, w) == RH_LOOP_EXIT) {
            break;
        }
        rh_pool_self = NULL;
        w = rh_pool_wait_for_slot(me);
    }
    rh_pool_self = NULL;
    rh_pool_me = NULL;
    return NULL;
}

/* Starts a thread that owns w from the start. */
static rh_status_t rh_pool_start_thread(rh_pool_t *pool, rh_worker_t *w)
{
    pthread_attr_t attr;
    rh_pool_thread_t *t = NULL;
    int rc, id;

    if (posix_memalign((void **)&t, RH_POOL_LINE, sizeof(*t)) != 0) {
        return rh_error_set(RH_ERR_NO_MEMORY, "cannot allocate a pool thread");
    }
    memset(t, 0, sizeof(*t));
    t->pool = pool;
    t->bound = -1;
    atomic_store_explicit(&t->slot, w, memory_order_relaxed);
    if ((rc = pthread_attr_init(&attr)) != 0) {
        free(t);
        return rh_error_set(RH_ERR_NO_MEMORY, "pthread_attr_init: %s",
                            strerror(rc));
    }
    pthread_attr_setstacksize(&attr, RH_POOL_STACK_SIZE);
    pthread_mutex_lock(&pool->lock);
    id = (int)atomic_load_explicit(&pool->threads, memory_order_relaxed);
    t->id = id;
    rc = pthread_create(&t->thread, &attr, rh_pool_thread_main, t);
    if (rc == 0) {
        t->all_next = pool->all;
        pool->all = t;
        atomic_fetch_add_explicit(&pool->threads, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&pool->lock);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        free(t);
        return rh_error_set(RH_ERR_UNSUPPORTED, "cannot start pool thread "
                            "%d for worker %d: %s", id, w->index,
                            strerror(rc));
    }
    return RH_OK;
}

/* ---- parking ------------------------------------------------------------- */

static void rh_pool_unlink_parked_locked(rh_pool_t *pool, rh_pool_thread_t *t)
{
    if (t->prev != NULL) {
        t->prev->next = t->next;
    } else {
        pool->parked = t->next;
    }
    if (t->next != NULL) {
        t->next->prev = t->prev;
    }
    t->prev = t->next = NULL;
}

/* A parked thread owns w again. */
static int rh_pool_resumed(rh_pool_thread_t *me, rh_worker_t *w)
{
    rh_pool_take_slot(me, w);
    me->resumes++;
    me->mark = rh_deque_mark(&w->deque);
    return 1;
}

/* The thread gives w away and sleeps until done(arg) holds or the deadline
 * passes, then waits for a slot (rh_pool_self afterwards). Returns 0 when
 * no thread could take w over: then it kept w and did not park. */
static int rh_pool_park(rh_pool_thread_t *me, rh_worker_t *w,
                                 int (*done)(void *arg), void *arg,
                                 uint64_t deadline_ns, int pure)
{
    rh_pool_t *pool = w->pool;
    rh_pool_thread_t *to;

    me->done = done;
    me->arg = arg;
    me->pure = pure;
    atomic_store_explicit(&me->ready, 0, memory_order_relaxed);
    pthread_mutex_lock(&pool->lock);
    me->prev = NULL;
    me->next = pool->parked;
    if (pool->parked != NULL) {
        pool->parked->prev = me;
    }
    pool->parked = me;
    atomic_fetch_add_explicit(&pool->parked_n, 1, memory_order_seq_cst);
    atomic_fetch_add_explicit(&pool->helpers, 1, memory_order_seq_cst);
    to = rh_pool_pop_resumer_locked(pool);
    if (to == NULL && pool->idle != NULL) {
        to = pool->idle;
        pool->idle = to->next;
        to->next = NULL;
        pool->idle_count--;
    }
    if (to != NULL) {
        rh_stat_inc(&w->parks);
        rh_pool_self = NULL;
        rh_pool_hand_locked(to, w);
    }
    pthread_mutex_unlock(&pool->lock);
    if (to == NULL) {
        rh_stat_inc(&w->parks);
        rh_pool_self = NULL;
        if (rh_pool_start_thread(pool, w) != RH_OK) {
            /* Out of threads: this wait keeps its slot (and what waits in
             * the slot's inbox waits with it). */
            rh_pool_self = w;
            pthread_mutex_lock(&pool->lock);
            rh_pool_unlink_parked_locked(pool, me);
            atomic_fetch_sub_explicit(&pool->helpers, 1, memory_order_seq_cst);
            atomic_fetch_sub_explicit(&pool->parked_n, 1,
                                      memory_order_seq_cst);
            if (!pool->warned) {
                pool->warned = 1;
                rh_warn("%s; a waiting task keeps its worker meanwhile",
                        rh_last_error());
            }
            pthread_mutex_unlock(&pool->lock);
            return 0;
        }
    }
    for (;;) {
        uint32_t seq = atomic_load_explicit(&me->seq, memory_order_seq_cst);

        if (atomic_load_explicit(&me->ready, memory_order_acquire) ||
            done(arg) || rh_deadline_passed(deadline_ns)) {
            break;
        }
        rh_pool_futex_wait(&me->seq, seq, deadline_ns);
    }
    w = rh_pool_take_sleeping(pool);
    pthread_mutex_lock(&pool->lock);
    rh_pool_unlink_parked_locked(pool, me);
    if (w != NULL) {
        atomic_fetch_sub_explicit(&pool->helpers, 1, memory_order_seq_cst);
        atomic_fetch_sub_explicit(&pool->parked_n, 1, memory_order_seq_cst);
        pthread_mutex_unlock(&pool->lock);
        rh_pool_wake_if_settled(pool);
        return rh_pool_resumed(me, w);
    }
    /* Resumer before unparked: the two counts are never both zero on the
     * way, so owners do not leave a stopping pool under it. */
    if (pool->resume_tail != NULL) {
        pool->resume_tail->next = me;
    } else {
        pool->resume_head = me;
    }
    pool->resume_tail = me;
    atomic_fetch_add_explicit(&pool->resume_n, 1, memory_order_seq_cst);
    atomic_fetch_sub_explicit(&pool->helpers, 1, memory_order_seq_cst);
    atomic_fetch_sub_explicit(&pool->parked_n, 1, memory_order_seq_cst);
    pthread_mutex_unlock(&pool->lock);
    rh_pool_wake_one(pool, NULL);
    return rh_pool_resumed(me, rh_pool_wait_for_slot(me));
}

/* Wakes the parked threads whose condition may hold now. */
static void rh_pool_wake_parked(rh_pool_t *pool)
{
    pthread_mutex_lock(&pool->lock);
    for (rh_pool_thread_t *t = pool->parked; t != NULL; t = t->next) {
        if (atomic_load_explicit(&t->ready, memory_order_relaxed)) {
            continue;
        }
        if (t->pure) {
            if (!t->done(t->arg)) {
                continue;
            }
            atomic_store_explicit(&t->ready, 1, memory_order_release);
        }
        atomic_fetch_add_explicit(&t->seq, 1, memory_order_seq_cst);
        rh_pool_futex_wake(&t->seq, 1);
    }
    pthread_mutex_unlock(&pool->lock);
}

/* ---- create / destroy ---------------------------------------------------- */

/* This pool's cores. Ranks that share a host and each bound worker i to
 * core i would all crowd onto the first cores: each takes its slice. A
 * launcher's binding (mpirun, srun --cpu-bind) already is such a slice. */
static void rh_pool_find_places(rh_pool_t *pool,
                                const rh_pool_params_t *params)
{
    hwloc_obj_type_t type = HWLOC_OBJ_CORE;
    hwloc_const_cpuset_t all = hwloc_topology_get_topology_cpuset(pool->topo);
    hwloc_bitmap_t bound = hwloc_bitmap_alloc();
    int n = hwloc_get_nbobjs_by_type(pool->topo, type), k = 0, first, last;
    int launcher_bound;

    if (n <= 0) {
        type = HWLOC_OBJ_PU;
        n = hwloc_get_nbobjs_by_type(pool->topo, type);
    }
    pool->place = n > 0 ? calloc((size_t)n, sizeof(*pool->place)) : NULL;
    if (pool->place == NULL || bound == NULL) {
        hwloc_bitmap_free(bound);
        return;
    }
    launcher_bound = hwloc_get_cpubind(pool->topo, bound,
                                       HWLOC_CPUBIND_PROCESS) == 0 &&
                     !hwloc_bitmap_iszero(bound) &&
                     !hwloc_bitmap_isincluded(all, bound);
    for (int i = 0; i < n; i++) {
        hwloc_obj_t obj = hwloc_get_obj_by_type(pool->topo, type,
                                                (unsigned)i);

        if (obj != NULL && obj->cpuset != NULL &&
            (!launcher_bound || hwloc_bitmap_isincluded(obj->cpuset, bound))) {
            pool->place[k++] = obj;
        }
    }
    hwloc_bitmap_free(bound);
    first = 0;
    last = k;
    if (!launcher_bound && params->shares > k) {
        last = 0;   /* more ranks than cores: none may claim one */
    } else if (!launcher_bound && params->shares > 1 && params->share >= 0 &&
               params->share < params->shares) {
        first = (int)((long)k * params->share / params->shares);
        last = (int)((long)k * (params->share + 1) / params->shares);
    }
    if (first != 0) {
        memmove(pool->place, pool->place + first,
                (size_t)(last - first) * sizeof(*pool->place));
    }
    pool->places = last - first;
}

/* Loads hwloc when it is needed: to count cores, or to pin. Without it the
 * pool still works: one worker per online CPU, unpinned. */
static void rh_pool_load_topology(rh_pool_t *pool,
                                  const rh_pool_params_t *params)
{
    if (!params->pin && params->num_workers > 0) {
        return;
    }
    if (hwloc_topology_init(&pool->topo) != 0) {
        pool->topo = NULL;
        return;
    }
    if (hwloc_topology_load(pool->topo) != 0) {
        hwloc_topology_destroy(pool->topo);
        pool->topo = NULL;
        return;
    }
    rh_pool_find_places(pool, params);
}

static int rh_pool_default_workers(const rh_pool_t *pool)
{
    long n;

    if (pool->places > 0) {
        return pool->places;
    }
    n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)(n < RH_POOL_MAX_WORKERS ? n : RH_POOL_MAX_WORKERS)
                 : 1;
}

static rh_status_t rh_pool_alloc_workers(rh_pool_t *pool)
{
    size_t size = (size_t)pool->num_workers * sizeof(rh_worker_t);

    /* Aligned: the deque and wake-up fields sit on cache lines of their own. */
    if (posix_memalign((void **)&pool->workers, RH_POOL_LINE, size) != 0) {
        pool->workers = NULL;
        return rh_error_set(RH_ERR_NO_MEMORY, "cannot allocate %d pool workers",
                            pool->num_workers);
    }
    memset(pool->workers, 0, size);
    for (int i = 0; i < pool->num_workers; i++) {
        rh_worker_t *w = &pool->workers[i];

        w->pool = pool;
        w->index = i;
        w->rng = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
        rh_mpsc_init(&w->inbox);
        if (rh_deque_init(&w->deque, RH_POOL_DEQUE_INITIAL) != 0) {
            return rh_error_set(RH_ERR_NO_MEMORY, "cannot allocate the deque "
                                "of pool worker %d", i);
        }
    }
    return RH_OK;
}

static rh_status_t rh_pool_start_workers(rh_pool_t *pool)
{
    for (int i = 0; i < pool->num_workers; i++) {
        rh_status_t status = rh_pool_start_thread(pool, &pool->workers[i]);

        if (status != RH_OK) {
            return status;
        }
    }
    return RH_OK;
}

/* Claims a thread nobody joined yet, or NULL. */
static rh_pool_thread_t *rh_pool_claim_join(rh_pool_t *pool)
{
    rh_pool_thread_t *t;

    pthread_mutex_lock(&pool->lock);
    for (t = pool->all; t != NULL && t->joined; t = t->all_next) {
    }
    if (t != NULL) {
        t->joined = 1;
    }
    pthread_mutex_unlock(&pool->lock);
    return t;
}

static void rh_pool_stop_and_join(rh_pool_t *pool)
{
    rh_pool_thread_t *t;

    if (pool->workers == NULL) {
        return;
    }
    atomic_store_explicit(&pool->stopping, 1, memory_order_seq_cst);
    for (int i = 0; i < pool->num_workers; i++) {
        rh_worker_wake(&pool->workers[i]);
    }
    /* Spares that go idle from now on see stopping and leave. */
    pthread_mutex_lock(&pool->lock);
    while ((t = pool->idle) != NULL) {
        pool->idle = t->next;
        t->next = NULL;
        t->retire = 1;
        atomic_fetch_add_explicit(&t->seq, 1, memory_order_seq_cst);
        rh_pool_futex_wake(&t->seq, 1);
    }
    pool->idle_count = 0;
    pthread_mutex_unlock(&pool->lock);
    /* Jobs still running may start spares: join until none is left. */
    while ((t = rh_pool_claim_join(pool)) != NULL) {
        pthread_join(t->thread, NULL);
    }
}

static void rh_pool_free(rh_pool_t *pool)
{
    while (pool->all != NULL) {
        rh_pool_thread_t *t = pool->all;

        pool->all = t->all_next;
        free(t);
    }
    pthread_mutex_destroy(&pool->lock);
    if (pool->workers != NULL) {
        for (int i = 0; i < pool->num_workers; i++) {
            rh_deque_cleanup(&pool->workers[i].deque);
        }
        free(pool->workers);
    }
    free(pool->place);
    if (pool->topo != NULL) {
        hwloc_topology_destroy(pool->topo);
    }
    free(pool);
}

rh_status_t rh_pool_create(const rh_pool_params_t *params, rh_pool_t **out)
{
    rh_pool_t *pool = NULL;
    rh_status_t status;

    if (params == NULL || out == NULL) {
        return rh_error_set(RH_ERR_INVALID_PARAM,
                            "rh_pool_create: params and out must not be NULL");
    }
    *out = NULL;
    if (params->num_workers < 0 || params->num_workers > RH_POOL_MAX_WORKERS) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_pool_create: "
                            "num_workers is %d, not in 0..%d (0: one per core)",
                            params->num_workers, RH_POOL_MAX_WORKERS);
    }
    if (params->help_depth < -1 ||
        params->help_depth > RH_POOL_HELP_DEPTH_MAX) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_pool_create: "
                            "help_depth is %d, not in -1..%d (0: %d, -1: "
                            "none)", params->help_depth,
                            RH_POOL_HELP_DEPTH_MAX,
                            RH_POOL_HELP_DEPTH_DEFAULT);
    }
    if (params->idle_round != NULL &&
        (params->idle_begin == NULL || params->idle_end == NULL)) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_pool_create: "
                            "idle_round needs idle_begin and idle_end too");
    }
    if (posix_memalign((void **)&pool, RH_POOL_LINE, sizeof(*pool)) != 0) {
        return rh_error_set(RH_ERR_NO_MEMORY, "cannot allocate a pool");
    }
    memset(pool, 0, sizeof(*pool));
    pthread_mutex_init(&pool->lock, NULL);
    pool->pin = params->pin;
    pool->spin = params->spin;
    pool->help_depth = params->help_depth == 0 ? RH_POOL_HELP_DEPTH_DEFAULT
                                               : params->help_depth;
    if (params->idle_round != NULL) {
        pool->idle_begin = params->idle_begin;
        pool->idle_round = params->idle_round;
        pool->idle_end = params->idle_end;
        pool->idle_leave = params->idle_leave != NULL ? params->idle_leave :
                                                        params->idle_end;
    }
    rh_pool_load_topology(pool, params);
    pool->num_workers = params->num_workers > 0 ? params->num_workers
                                                : rh_pool_default_workers(pool);
    status = rh_pool_alloc_workers(pool);
    if (status != RH_OK) {
        goto cleanup;
    }
    status = rh_pool_start_workers(pool);
    if (status != RH_OK) {
        goto cleanup;
    }
    *out = pool;
    return RH_OK;

cleanup:
    rh_pool_stop_and_join(pool);   /* the workers that did start */
    rh_pool_free(pool);
    return status;
}

/* Joining ourselves would hang; leaking is the lesser harm. */
static int rh_pool_joinable(rh_pool_t *pool, const char *what)
{
    if (rh_pool_me != NULL && rh_pool_me->pool == pool) {
        rh_error("%s called from a job of the same pool; the pool is left "
                 "running", what);
        return 0;
    }
    return 1;
}

void rh_pool_stop(rh_pool_t *pool)
{
    if (pool != NULL && rh_pool_joinable(pool, "rh_pool_stop")) {
        rh_pool_stop_and_join(pool);
    }
}

void rh_pool_destroy(rh_pool_t *pool)
{
    if (pool == NULL || !rh_pool_joinable(pool, "rh_pool_destroy")) {
        return;
    }
    rh_pool_stop_and_join(pool);
    rh_pool_free(pool);
}

/* ---- submit, help, notify ------------------------------------------------ */

static void rh_pool_submit_outside(rh_pool_t *pool, rh_job_t *job)
{
    rh_worker_t *w;

    if (rh_unlikely(!rh_pool_rr_seeded)) {
        /* Threads start at different workers, so that many threads that
         * submit one job each do not all land on worker 0. */
        rh_pool_rr = atomic_fetch_add_explicit(&rh_pool_rr_seed, 1,
                                               memory_order_relaxed);
        rh_pool_rr_seeded = 1;
    }
    w = &pool->workers[rh_pool_rr++ % (uint32_t)pool->num_workers];
    atomic_fetch_add_explicit(&pool->ext_submitted, 1, memory_order_relaxed);
    rh_mpsc_push(&w->inbox, &job->node);   /* P1: seq_cst exchange */
    if (atomic_load_explicit(&pool->sleepers, memory_order_seq_cst) > 0 &&
        !rh_worker_wake(w)) {
        rh_pool_wake_one(pool, NULL);   /* w is busy: another takes it */
    }
}

void rh_pool_submit_shared(rh_pool_t *pool, rh_job_t *job)
{
    rh_pool_submit_outside(pool, job);
}

void rh_pool_submit(rh_pool_t *pool, rh_job_t *job)
{
    rh_worker_t *self = rh_pool_self;

    if (rh_unlikely(self == NULL) && rh_pool_idle_self != NULL) {
        self = rh_pool_idle_self;
    }
    if (self == NULL || self->pool != pool) {
        rh_pool_submit_outside(pool, job);
        return;
    }
    rh_stat_inc(&self->submitted);
    if (rh_likely(rh_deque_push(&self->deque, job) == 0)) {
        /* The idle work's first job is this worker's next: waking
         * another for it would only start a race for it. */
        if (rh_pool_idle_fresh) {
            rh_pool_idle_fresh = 0;
            return;
        }
        rh_pool_wake_one(pool, self);
        return;
    }
    /* No memory to grow the deque: our own inbox never needs any, and we
     * drain it ourselves, so nobody needs waking. */
    rh_mpsc_push(&self->inbox, &job->node);
}

static int rh_pool_wait_outside(rh_pool_t *pool, int (*done)(void *arg),
                                void *arg, uint64_t deadline_ns)
{
    for (uint64_t idle = 0; !done(arg); ) {
        if (rh_deadline_passed(deadline_ns)) {
            return 0;
        }
        if (idle < pool->spin) {
            idle++;
            rh_cpu_relax();
            continue;
        }
        rh_pool_sleep_outside(pool, done, arg, deadline_ns);
    }
    return 1;
}

int rh_pool_wait(rh_pool_t *pool, int (*done)(void *arg), void *arg,
                 uint64_t deadline_ns, unsigned flags)
{
    rh_worker_t *w = rh_pool_self;
    rh_pool_thread_t *me = rh_pool_me;
    uint64_t idle = 0;
    int result = 1;

    if (w == NULL || w->pool != pool) {
        return rh_pool_wait_outside(pool, done, arg, deadline_ns);
    }
    me->depth++;
    while (!done(arg)) {
        if (rh_deadline_passed(deadline_ns)) {
            result = 0;
            break;
        }
        if (me->depth <= pool->help_depth && rh_pool_stack_has_room(me)) {
            rh_job_t *job = rh_deque_pop_above(&w->deque, me->mark);

            if (job != NULL) {
                w = rh_worker_run(me, w, job, 1);
                idle = 0;
                continue;
            }
        } else if (rh_deque_mark(&w->deque) > me->mark) {
            idle = pool->spin;   /* its spawns wait for this very slot */
        }
        if (idle < pool->spin) {
            idle++;
            rh_cpu_relax();
            continue;
        }
        if (!rh_pool_park(me, w, done, arg, deadline_ns,
                          (flags & RH_POOL_WAIT_PURE) != 0)) {
            /* It could not park: let the threads that can help run. */
            rh_pool_futex_wait(&me->seq,
                               atomic_load_explicit(&me->seq,
                                                    memory_order_relaxed),
                               rh_time_ns() + 1000000ull);
        }
        w = rh_pool_self;
        idle = 0;
    }
    me->depth--;
    return result;
}

int rh_pool_help_until_deadline(rh_pool_t *pool, int (*done)(void *arg),
                                void *arg, uint64_t deadline_ns)
{
    return rh_pool_wait(pool, done, arg, deadline_ns, 0);
}

void rh_pool_help_until(rh_pool_t *pool, int (*done)(void *arg), void *arg)
{
    rh_pool_wait(pool, done, arg, 0, 0);
}

void rh_pool_notify(rh_pool_t *pool)
{
    /* A read-modify-write, not a load: see "notify" above. */
    if (atomic_fetch_add_explicit(&pool->helpers, 0,
                                  memory_order_seq_cst) == 0) {
        return;
    }
    if (atomic_load_explicit(&pool->parked_n, memory_order_seq_cst) > 0) {
        rh_pool_wake_parked(pool);
    }
    if (atomic_load_explicit(&pool->ext_sleepers, memory_order_seq_cst) > 0 &&
        atomic_load_explicit(&pool->ext_asleep, memory_order_seq_cst) &&
        atomic_exchange_explicit(&pool->ext_asleep, 0, memory_order_seq_cst)) {
        atomic_fetch_add_explicit(&pool->ext_seq, 1, memory_order_seq_cst);
        rh_pool_futex_wake(&pool->ext_seq, INT_MAX);
    }
}

/* ---- introspection ------------------------------------------------------- */

int rh_pool_worker_index(void)
{
    return rh_pool_self != NULL ? rh_pool_self->index : -1;
}

rh_pool_t *rh_pool_current(void)
{
    return rh_pool_self != NULL ? rh_pool_self->pool : NULL;
}

long rh_pool_backlog(const rh_pool_t *pool)
{
    uint64_t in = atomic_load_explicit(&pool->ext_submitted,
                                       memory_order_relaxed), run = 0;

    for (int i = 0; i < pool->num_workers; i++) {
        in += atomic_load_explicit(&pool->workers[i].submitted,
                                   memory_order_relaxed);
        run += atomic_load_explicit(&pool->workers[i].jobs_run,
                                    memory_order_relaxed);
    }
    return in > run ? (long)(in - run) : 0;
}

int rh_pool_num_workers(const rh_pool_t *pool)
{
    return pool->num_workers;
}

void rh_pool_stats(const rh_pool_t *pool, rh_pool_stats_t *stats)
{
    memset(&stats->total, 0, sizeof(stats->total));
    stats->num_workers = pool->num_workers;
    stats->threads = atomic_load_explicit(&pool->threads, memory_order_relaxed);
    stats->parked = atomic_load_explicit(&pool->parked_n, memory_order_relaxed);
    for (int i = 0; i < pool->num_workers; i++) {
        rh_worker_t *w = &pool->workers[i];
        rh_pool_worker_stats_t s;

        s.jobs_run = atomic_load_explicit(&w->jobs_run, memory_order_relaxed);
        s.jobs_helped = atomic_load_explicit(&w->jobs_helped,
                                             memory_order_relaxed);
        s.steals = atomic_load_explicit(&w->steals, memory_order_relaxed);
        s.sleeps = atomic_load_explicit(&w->sleeps, memory_order_relaxed);
        s.parks = atomic_load_explicit(&w->parks, memory_order_relaxed);
        stats->total.jobs_run += s.jobs_run;
        stats->total.jobs_helped += s.jobs_helped;
        stats->total.steals += s.steals;
        stats->total.sleeps += s.sleeps;
        stats->total.parks += s.parks;
        if (stats->per_worker != NULL && i < stats->per_worker_len) {
            stats->per_worker[i] = s;
        }
    }
}
