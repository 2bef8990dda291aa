/*
 * The worker pool (see pool.h for the contract).
 *
 * Where jobs live
 *   A worker's own submissions go onto its Chase-Lev deque (sched/deque.h).
 *   Other threads' submissions go round-robin into the workers' MPSC inboxes;
 *   an inbox has one consumer, its worker, which moves what it finds into its
 *   deque (as much as fits without growing it) whenever its deque runs dry
 *   and every RH_POOL_DRAIN_EVERY jobs otherwise, so that inbox jobs become
 *   stealable soon even while their worker is busy with its own spawns.
 *   A worker looks: own deque (bottom) -> own inbox -> other deques (top,
 *   random victim first) -> spins `spin` rounds of that -> sleeps.
 *
 * Sleeping and waking (no lost wake-ups)
 *   Each worker sleeps on its own futex word, wake_seq, and says so in
 *   `sleeping` (IDLE in its main loop, HELP inside help_until); the pool
 *   counts sleepers in `sleepers`, which every submit reads, so a submit
 *   costs no wake-up work at all unless somebody sleeps.
 *
 *   Sleeper                              Submitter
 *   S0 seq = wake_seq         (seq_cst)  P1 publish the job    (seq_cst:
 *   S1 sleeping = mode        (seq_cst)     inbox exchange / deque bottom)
 *   S2 sleepers += 1          (seq_cst)  P2 read sleepers      (seq_cst)
 *   S3 look for work          (seq_cst:  P3 if > 0: read the target's
 *      own inbox head, every deque's        sleeping; if set, exchange it
 *      top and bottom, stopping)            to AWAKE, and if we were the
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
 *   reason (notify wakes every helper, most for other conditions) could
 *   clear the flag and be absorbed, leaving the sleeper asleep with its
 *   flag saying AWAKE, skipped by every later waker. Only the waker whose
 *   exchange cleared the flag pays a syscall, so a burst of submits wakes a
 *   sleeper once.
 *
 *   An inbox job wakes the inbox's worker (nobody else can take it). A job
 *   pushed onto a worker's deque (a worker's submit, or inbox jobs moved
 *   there) wakes one sleeper, whichever the scan from a random start finds
 *   first: S3 looks at every deque, so the argument above holds with "some
 *   sleeper" in place of "the target".
 *
 * help_until and notify
 *   A waiting worker loops: done(arg)? -> look for a job as above and run it
 *   -> spin -> sleep in HELP mode, where its S3 also evaluates done(arg). Any
 *   thread that makes a condition true calls rh_pool_notify(), which wakes
 *   HELP sleepers and sleeping non-worker waiters. The handshake is the one
 *   above with `helpers` (a count of those sleepers) in place of `sleepers`,
 *   and one difference: notify reads `helpers` with an atomic
 *   read-modify-write, and the sleeper counts itself with one. The two RMWs
 *   are ordered in helpers' modification order: if notify's comes second it
 *   sees the sleeper; if first, the sleeper's RMW reads from it and so
 *   synchronizes with it, and the sleeper's done(arg) sees whatever the
 *   notifier stored before calling notify, however it stored it. That is
 *   what lets callers set their flags with plain release stores.
 *
 *   Outside waiters share the pool's ext_seq word and ext_asleep flag, and
 *   notify clears the flag before it pays for a futex_wake, so notifies
 *   that come while the waiters are up cost no syscall (this took fib(30)
 *   with an outside waiter from 2.5 to 24 million jobs/s).
 *
 *   Why nested waits do not deadlock: a waiting worker keeps running jobs,
 *   including the ones its wait depends on (its own children, popped from
 *   its deque, and jobs arriving in its inbox). The price of the single
 *   stack is that a job started while helping must return before the wait
 *   under it can, even if that wait's condition is already true. When jobs
 *   wait only for jobs submitted after they started (children, fork-join),
 *   every "is held up by" edge points to a job that started later (a wait
 *   to the jobs it waits for; a frame to the frames above it on its
 *   worker's stack), so there is no cycle and no deadlock. A job that waits
 *   for something an older job produces after its own wait returns can
 *   deadlock once it runs on top of that older job; so does waiting for
 *   something that is never submitted, or never notified. Nesting depth is
 *   bounded by the worker's stack (RH_POOL_STACK_SIZE).
 *
 *   Limit of the inboxes: only its worker takes jobs out of an inbox, so a
 *   job submitted from outside waits while that worker runs one long job
 *   (the jobs behind it become stealable at its next job boundary).
 *
 * Shutdown
 *   destroy sets `stopping` (seq_cst) and wakes every worker; a worker exits
 *   when stopping is set and its deque and inbox are empty. Jobs submitted
 *   by running jobs go onto their worker's own deque, so they run too;
 *   another worker's deque is its owner's to empty.
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
#define RH_POOL_LINE          64

enum { RH_AWAKE = 0, RH_SLEEP_IDLE = 1, RH_SLEEP_HELP = 2 };

typedef struct rh_worker {
    rh_deque_t deque;
    _Alignas(RH_POOL_LINE) rh_mpsc_t inbox;
    /* Written by the worker and by whoever wakes it. */
    _Alignas(RH_POOL_LINE) _Atomic uint32_t wake_seq;   /* futex word */
    _Atomic int      sleeping;                  /* RH_AWAKE, RH_SLEEP_* */
    /* The worker's own; stats are written by it alone, read by anyone. */
    _Alignas(RH_POOL_LINE) rh_pool_t *pool;
    int              index;
    uint32_t         since_drain;
    uint64_t         rng;
    pthread_t        thread;
    int              started;
    _Atomic uint64_t jobs_run, jobs_helped, steals, sleeps;
    _Atomic uint64_t submitted;                 /* by this worker's jobs */
} rh_worker_t;

struct rh_pool {
    rh_worker_t     *workers;
    int              num_workers;
    int              pin;
    uint64_t         spin;
    hwloc_topology_t topo;        /* to pin, or to count cores; or NULL */
    hwloc_obj_t     *place;       /* the cores (or PUs) the workers may
                                   * bind to: this pool's share */
    int              places;
    /* Read by every submit; written when a worker starts or stops sleeping. */
    _Alignas(RH_POOL_LINE) _Atomic int sleepers;
    _Atomic int      stopping;
    /* Written by notify and by sleeping waiters only. */
    _Alignas(RH_POOL_LINE) _Atomic int helpers;   /* HELP + outside sleepers */
    _Atomic int      ext_sleepers;                /* outside sleepers */
    _Atomic int      ext_asleep;                  /* their `sleeping` flag */
    _Atomic uint32_t ext_seq;                     /* their futex word */
    /* Written by threads outside the pool only (the driver, the progress
     * thread): workers count their own submits. */
    _Alignas(RH_POOL_LINE) _Atomic uint64_t ext_submitted;
};

static _Thread_local rh_worker_t *rh_pool_self;
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

/* Wakes w if it sleeps (in HELP mode only, when help_only). Clearing the flag
 * first means one waker per sleep pays for the syscall. */
static int rh_worker_wake(rh_worker_t *w, int help_only)
{
    int state = atomic_load_explicit(&w->sleeping, memory_order_seq_cst);

    if (state == RH_AWAKE || (help_only && state != RH_SLEEP_HELP)) {
        return 0;
    }
    if (help_only) {
        if (!atomic_compare_exchange_strong_explicit(&w->sleeping, &state,
                                                     RH_AWAKE,
                                                     memory_order_seq_cst,
                                                     memory_order_seq_cst)) {
            return 0;
        }
    } else if (atomic_exchange_explicit(&w->sleeping, RH_AWAKE,
                                        memory_order_seq_cst) == RH_AWAKE) {
        return 0;
    }
    atomic_fetch_add_explicit(&w->wake_seq, 1, memory_order_seq_cst);
    rh_pool_futex_wake(&w->wake_seq, 1);
    return 1;
}

/* After a push onto self's deque: anyone may steal the job, so wake one
 * sleeper, if there is one. */
static void rh_pool_wake_one(rh_pool_t *pool, rh_worker_t *self)
{
    int n = pool->num_workers;
    int start;

    if (rh_likely(atomic_load_explicit(&pool->sleepers,
                                       memory_order_seq_cst) == 0)) {
        return;
    }
    start = (int)(rh_worker_rand(self) % (uint64_t)n);
    for (int k = 0; k < n; k++) {
        rh_worker_t *w = &pool->workers[(start + k) % n];

        if (w != self && rh_worker_wake(w, 0)) {
            return;
        }
    }
}

/* ---- finding work -------------------------------------------------------- */

/* Moves inbox jobs into the deque, as many as fit without growing it (so
 * this never allocates), where other workers can steal them. */
static void rh_worker_drain(rh_worker_t *w)
{
    int64_t room;
    int64_t moved = 0;
    rh_mpsc_node_t *node;

    if (rh_mpsc_empty(&w->inbox)) {
        return;
    }
    room = rh_deque_room(&w->deque);
    while (moved < room && (node = rh_mpsc_pop(&w->inbox)) != NULL) {
        rh_deque_push(&w->deque, rh_job_of(node));   /* fits: no failure */
        moved++;
    }
    if (moved > 0) {
        rh_pool_wake_one(w->pool, w);
    }
}

static rh_job_t *rh_worker_take_inbox(rh_worker_t *w)
{
    rh_mpsc_node_t *node = rh_mpsc_pop(&w->inbox);

    if (node == NULL) {
        return NULL;
    }
    rh_worker_drain(w);   /* the rest become stealable */
    return rh_job_of(node);
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
    return job;
}

static void rh_worker_run(rh_worker_t *w, rh_job_t *job, int helping)
{
    job->run(job);   /* job may be freed now: not touched again */
    rh_stat_inc(&w->jobs_run);
    if (helping) {
        rh_stat_inc(&w->jobs_helped);
    }
}

/* S3 of the handshake: seq_cst looks at everything a wake-up could be for. */
static int rh_worker_sees_work(rh_worker_t *w)
{
    rh_pool_t *pool = w->pool;

    if (!rh_mpsc_idle(&w->inbox)) {
        return 1;
    }
    for (int i = 0; i < pool->num_workers; i++) {
        if (!rh_deque_looks_empty(&pool->workers[i].deque)) {
            return 1;
        }
    }
    return 0;
}

/* ---- sleeping ------------------------------------------------------------ */

/* One sleep: returns when woken, or at once when the last look finds a
 * reason to stay up. The caller then looks for work again. */
static void rh_worker_sleep(rh_worker_t *w, int mode, int (*done)(void *arg),
                            void *arg, uint64_t deadline_ns)
{
    rh_pool_t *pool = w->pool;
    uint32_t seq;
    int stay_up;

    /* S0 before S1: whoever clears our flag bumps wake_seq afterwards, so
     * it cannot be a value we already read. Reading it after S1 would let
     * a wake-up meant for someone else (notify wakes every helper) clear
     * the flag unseen, and later wakers would skip us as awake. */
    seq = atomic_load_explicit(&w->wake_seq, memory_order_seq_cst);
    atomic_store_explicit(&w->sleeping, mode, memory_order_seq_cst);
    atomic_fetch_add_explicit(&pool->sleepers, 1, memory_order_seq_cst);
    if (mode == RH_SLEEP_HELP) {
        atomic_fetch_add_explicit(&pool->helpers, 1, memory_order_seq_cst);
    }
    if (mode == RH_SLEEP_HELP) {
        stay_up = done(arg);
    } else {
        stay_up = atomic_load_explicit(&pool->stopping, memory_order_seq_cst);
    }
    if (!stay_up && !rh_worker_sees_work(w)) {
        rh_stat_inc(&w->sleeps);
        rh_pool_futex_wait(&w->wake_seq, seq, deadline_ns);
    }
    atomic_store_explicit(&w->sleeping, RH_AWAKE, memory_order_seq_cst);
    if (mode == RH_SLEEP_HELP) {
        atomic_fetch_sub_explicit(&pool->helpers, 1, memory_order_seq_cst);
    }
    atomic_fetch_sub_explicit(&pool->sleepers, 1, memory_order_seq_cst);
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

/* ---- the worker thread --------------------------------------------------- */

static int rh_worker_may_exit(rh_worker_t *w)
{
    return atomic_load_explicit(&w->pool->stopping, memory_order_acquire) &&
           rh_deque_looks_empty(&w->deque) && rh_mpsc_idle(&w->inbox);
}

static void rh_worker_loop(rh_worker_t *w)
{
    uint64_t idle = 0;

    for (;;) {
        rh_job_t *job = rh_worker_find(w);

        if (job != NULL) {
            rh_worker_run(w, job, 0);
            idle = 0;
            continue;
        }
        if (rh_worker_may_exit(w)) {
            return;
        }
        if (idle < w->pool->spin) {
            idle++;
            rh_cpu_relax();
            /* Offer the core now and then: with more threads than cores
             * (progress threads, drivers) a spinning worker would otherwise
             * hold it for a whole time slice. */
            if ((idle & 63) == 0) {
                sched_yield();
            }
            continue;
        }
        rh_worker_sleep(w, RH_SLEEP_IDLE, NULL, NULL, 0);
        idle = 0;
    }
}

static void rh_worker_name(rh_worker_t *w)
{
    char name[16];   /* the kernel keeps 15 characters */

    if (snprintf(name, sizeof(name), "rayhpc-worker-%d", w->index) >=
        (int)sizeof(name)) {
        /* From worker 10 on the long form does not fit; truncating it
         * would give workers 10-19 the same name. */
        snprintf(name, sizeof(name), "rayhpc-wk-%d", w->index);
    }
    pthread_setname_np(pthread_self(), name);
}

/* Binds this thread to its core and its memory to the core's NUMA node.
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

static void *rh_worker_main(void *arg)
{
    rh_worker_t *w = arg;

    rh_pool_self = w;
    rh_worker_name(w);
    if (w->pool->pin) {
        rh_worker_bind(w);
    }
    rh_worker_loop(w);
    rh_pool_self = NULL;
    return NULL;
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
    pthread_attr_t attr;
    rh_status_t status = RH_OK;
    int rc;

    if ((rc = pthread_attr_init(&attr)) != 0) {
        return rh_error_set(RH_ERR_NO_MEMORY, "pthread_attr_init: %s",
                            strerror(rc));
    }
    pthread_attr_setstacksize(&attr, RH_POOL_STACK_SIZE);
    for (int i = 0; i < pool->num_workers; i++) {
        rh_worker_t *w = &pool->workers[i];

        rc = pthread_create(&w->thread, &attr, rh_worker_main, w);
        if (rc != 0) {
            status = rh_error_set(RH_ERR_UNSUPPORTED, "cannot start pool "
                                  "worker %d of %d: %s", i, pool->num_workers,
                                  strerror(rc));
            goto cleanup;
        }
        w->started = 1;
    }
cleanup:
    pthread_attr_destroy(&attr);
    return status;
}

static void rh_pool_stop_and_join(rh_pool_t *pool)
{
    if (pool->workers == NULL) {
        return;
    }
    atomic_store_explicit(&pool->stopping, 1, memory_order_seq_cst);
    for (int i = 0; i < pool->num_workers; i++) {
        rh_worker_wake(&pool->workers[i], 0);
    }
    for (int i = 0; i < pool->num_workers; i++) {
        if (pool->workers[i].started) {
            pthread_join(pool->workers[i].thread, NULL);
            pool->workers[i].started = 0;
        }
    }
}

static void rh_pool_free(rh_pool_t *pool)
{
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
    if (posix_memalign((void **)&pool, RH_POOL_LINE, sizeof(*pool)) != 0) {
        return rh_error_set(RH_ERR_NO_MEMORY, "cannot allocate a pool");
    }
    memset(pool, 0, sizeof(*pool));
    pool->pin = params->pin;
    pool->spin = params->spin;
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

void rh_pool_destroy(rh_pool_t *pool)
{
    if (pool == NULL) {
        return;
    }
    if (rh_pool_self != NULL && rh_pool_self->pool == pool) {
        /* Joining ourselves would hang; leaking is the lesser harm. */
        rh_error("rh_pool_destroy called from a job of the same pool; "
                 "the pool is left running");
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
    if (atomic_load_explicit(&pool->sleepers, memory_order_seq_cst) > 0) {
        rh_worker_wake(w, 0);
    }
}

void rh_pool_submit(rh_pool_t *pool, rh_job_t *job)
{
    rh_worker_t *self = rh_pool_self;

    if (self == NULL || self->pool != pool) {
        rh_pool_submit_outside(pool, job);
        return;
    }
    rh_stat_inc(&self->submitted);
    if (rh_likely(rh_deque_push(&self->deque, job) == 0)) {
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

int rh_pool_help_until_deadline(rh_pool_t *pool, int (*done)(void *arg),
                                void *arg, uint64_t deadline_ns)
{
    rh_worker_t *w = rh_pool_self;
    uint64_t idle = 0;

    if (w == NULL || w->pool != pool) {
        return rh_pool_wait_outside(pool, done, arg, deadline_ns);
    }
    while (!done(arg)) {
        rh_job_t *job;

        if (rh_deadline_passed(deadline_ns)) {
            return 0;
        }
        job = rh_worker_find(w);
        if (job != NULL) {
            rh_worker_run(w, job, 1);
            idle = 0;
            continue;
        }
        if (idle < pool->spin) {
            idle++;
            rh_cpu_relax();
            continue;
        }
        rh_worker_sleep(w, RH_SLEEP_HELP, done, arg, deadline_ns);
        idle = 0;
    }
    return 1;
}

void rh_pool_help_until(rh_pool_t *pool, int (*done)(void *arg), void *arg)
{
    rh_pool_help_until_deadline(pool, done, arg, 0);
}

void rh_pool_notify(rh_pool_t *pool)
{
    /* A read-modify-write, not a load: see "help_until and notify" above. */
    if (atomic_fetch_add_explicit(&pool->helpers, 0,
                                  memory_order_seq_cst) == 0) {
        return;
    }
    for (int i = 0; i < pool->num_workers; i++) {
        rh_worker_wake(&pool->workers[i], 1);
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
    for (int i = 0; i < pool->num_workers; i++) {
        rh_worker_t *w = &pool->workers[i];
        rh_pool_worker_stats_t s;

        s.jobs_run = atomic_load_explicit(&w->jobs_run, memory_order_relaxed);
        s.jobs_helped = atomic_load_explicit(&w->jobs_helped,
                                             memory_order_relaxed);
        s.steals = atomic_load_explicit(&w->steals, memory_order_relaxed);
        s.sleeps = atomic_load_explicit(&w->sleeps, memory_order_relaxed);
        stats->total.jobs_run += s.jobs_run;
        stats->total.jobs_helped += s.jobs_helped;
        stats->total.steals += s.steals;
        stats->total.sleeps += s.sleeps;
        if (stats->per_worker != NULL && i < stats->per_worker_len) {
            stats->per_worker[i] = s;
        }
    }
}
