/* The local scheduler's worker pool and its Chase-Lev deque. No test
 * depends on timing: waits are bounded only so that a bug fails the test
 * instead of hanging it. */
#include <criterion/criterion.h>
#include <hwloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/completion.h"
#include "sched/deque.h"
#include "sched/pool.h"

#define container_of(ptr, type, member) \
    ((type *)((char *)(ptr) - offsetof(type, member)))

#define BOUND_S 20   /* generous: a loaded CI machine, sanitizers */

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    nanosleep(&ts, NULL);
}

/* Polls cond for up to BOUND_S seconds; says whether it came true. */
static int eventually(int (*cond)(void *arg), void *arg)
{
    uint64_t deadline = rh_time_ns() + BOUND_S * 1000000000ull;

    while (!cond(arg)) {
        if (rh_time_ns() > deadline) {
            return 0;
        }
        sleep_ms(1);
    }
    return 1;
}

static rh_pool_t *make_pool(int workers, uint64_t spin)
{
    rh_pool_params_t p = { .num_workers = workers, .pin = 0, .spin = spin };
    rh_pool_t *pool = NULL;

    cr_assert_eq(rh_pool_create(&p, &pool), RH_OK, "%s", rh_last_error());
    cr_assert_not_null(pool);
    return pool;
}

static int flag_is_set(void *arg)
{
    return atomic_load_explicit((_Atomic int *)arg, memory_order_acquire);
}

/* ---- deque --------------------------------------------------------------- */

Test(deque, owner_pops_newest_and_thieves_take_oldest)
{
    rh_deque_t d;
    int items[4];
    void *got;

    cr_assert_eq(rh_deque_init(&d, 8), 0);
    cr_expect_null(rh_deque_pop(&d));
    cr_expect_eq(rh_deque_steal(&d, &got), RH_DEQUE_EMPTY);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(rh_deque_push(&d, &items[i]), 0);
    }
    cr_expect_eq(rh_deque_steal(&d, &got), RH_DEQUE_OK);
    cr_expect_eq(got, &items[0]);
    cr_expect_eq(rh_deque_pop(&d), &items[3]);
    cr_expect_eq(rh_deque_pop(&d), &items[2]);
    cr_expect_eq(rh_deque_steal(&d, &got), RH_DEQUE_OK);
    cr_expect_eq(got, &items[1]);
    cr_expect_null(rh_deque_pop(&d));
    cr_expect(rh_deque_looks_empty(&d));
    rh_deque_cleanup(&d);
}

Test(deque, grows_past_its_capacity_and_keeps_every_item)
{
    enum { N = 10000 };
    static int items[N];
    rh_deque_t d;
    void *got;

    cr_assert_eq(rh_deque_init(&d, 2), 0);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(rh_deque_push(&d, &items[i]), 0);
        if (i % 3 == 0) {   /* move top so that the copies wrap around */
            cr_assert_eq(rh_deque_steal(&d, &got), RH_DEQUE_OK);
            cr_assert_eq(rh_deque_push(&d, got), 0);
        }
    }
    /* Every item is there exactly once, whatever the order. */
    static int seen[N];
    int count = 0;

    while ((got = rh_deque_pop(&d)) != NULL) {
        seen[(int *)got - items]++;
        count++;
    }
    cr_expect_eq(count, N);
    for (int i = 0; i < N; i++) {
        cr_expect_eq(seen[i], 1, "item %d seen %d times", i, seen[i]);
    }
    rh_deque_cleanup(&d);
}

enum { DQ_ITEMS = 1000000, DQ_THIEVES = 2 };
static rh_deque_t dq;
static _Atomic int dq_taken[DQ_ITEMS];
static _Atomic int dq_owner_done;

static void *dq_thief(void *arg)
{
    for (;;) {
        void *got;
        rh_deque_steal_result_t r = rh_deque_steal(&dq, &got);

        if (r == RH_DEQUE_OK) {
            atomic_fetch_add(&dq_taken[(intptr_t)got - 1], 1);
        } else if (r == RH_DEQUE_EMPTY &&
                   atomic_load(&dq_owner_done)) {
            return NULL;
        }
    }
}

Test(deque, owner_and_thieves_take_every_item_exactly_once)
{
    pthread_t thieves[DQ_THIEVES];
    void *got;

    cr_assert_eq(rh_deque_init(&dq, 16), 0);   /* small: grows under fire */
    for (int i = 0; i < DQ_THIEVES; i++) {
        pthread_create(&thieves[i], NULL, dq_thief, NULL);
    }
    for (intptr_t i = 1; i <= DQ_ITEMS; i++) {
        cr_assert_eq(rh_deque_push(&dq, (void *)i), 0);
        if (i % 3 == 0 && (got = rh_deque_pop(&dq)) != NULL) {
            atomic_fetch_add(&dq_taken[(intptr_t)got - 1], 1);
        }
    }
    while ((got = rh_deque_pop(&dq)) != NULL) {
        atomic_fetch_add(&dq_taken[(intptr_t)got - 1], 1);
    }
    atomic_store(&dq_owner_done, 1);
    for (int i = 0; i < DQ_THIEVES; i++) {
        pthread_join(thieves[i], NULL);
    }
    for (int i = 0; i < DQ_ITEMS; i++) {
        if (atomic_load(&dq_taken[i]) != 1) {
            cr_assert_fail("item %d taken %d times", i,
                           atomic_load(&dq_taken[i]));
        }
    }
    rh_deque_cleanup(&dq);
}

/* ---- creation ------------------------------------------------------------ */

Test(pool, create_rejects_bad_parameters_with_a_message)
{
    rh_pool_params_t p = { .num_workers = -1 };
    rh_pool_t *pool = (rh_pool_t *)&p;

    cr_expect_eq(rh_pool_create(NULL, &pool), RH_ERR_INVALID_PARAM);
    cr_expect_eq(rh_pool_create(&p, NULL), RH_ERR_INVALID_PARAM);
    cr_expect_eq(rh_pool_create(&p, &pool), RH_ERR_INVALID_PARAM);
    cr_expect_null(pool);
    cr_expect(strstr(rh_last_error(), "num_workers") != NULL, "message: %s",
              rh_last_error());
    p.num_workers = 1 << 20;
    cr_expect_eq(rh_pool_create(&p, &pool), RH_ERR_INVALID_PARAM);
}

static int no_idle_round(void)
{
    return 0;
}

Test(pool, create_rejects_idle_work_without_its_begin_and_end)
{
    rh_pool_params_t p = { .num_workers = 1 };
    rh_pool_t *pool = NULL;

    p.idle_round = no_idle_round;
    cr_expect_eq(rh_pool_create(&p, &pool), RH_ERR_INVALID_PARAM);
    cr_expect_null(pool);
    cr_expect(strstr(rh_last_error(), "idle_begin") != NULL, "message: %s",
              rh_last_error());
}

/* ---- idle work ------------------------------------------------------------ */

static rh_pool_t *idle_pool;
static _Atomic int idle_submit;     /* the next round submits idle_job */
static _Atomic int idle_doing;      /* workers between begin and end */
static _Atomic int idle_most;       /* the most of them at once */
static _Atomic long idle_begins, idle_ends;
static pthread_t idle_thread, idle_job_thread;
static _Atomic int idle_job_saw_doing = -1;
static _Atomic int idle_job_done;
static _Atomic int idle_round_in_pool = -1;   /* rh_pool_current() there */
static rh_job_t idle_job;

static int idle_begin_fn(void)
{
    int n = atomic_fetch_add(&idle_doing, 1) + 1;
    int most = atomic_load(&idle_most);

    while (n > most && !atomic_compare_exchange_weak(&idle_most, &most, n)) {
    }
    atomic_fetch_add(&idle_begins, 1);
    return 1;
}

static int idle_round_fn(void)
{
    if (!atomic_exchange(&idle_submit, 0)) {
        return 0;
    }
    idle_thread = pthread_self();
    atomic_store(&idle_round_in_pool, rh_pool_current() != NULL);
    rh_pool_submit(idle_pool, &idle_job);
    return 1;
}

static void idle_end_fn(void)
{
    atomic_fetch_sub(&idle_doing, 1);
    atomic_fetch_add(&idle_ends, 1);
}

static void idle_job_run(rh_job_t *job)
{
    (void)job;
    idle_job_thread = pthread_self();
    atomic_store(&idle_job_saw_doing, atomic_load(&idle_doing));
    atomic_store_explicit(&idle_job_done, 1, memory_order_release);
}

static void idle_pool_start(int workers)
{
    rh_pool_params_t p = { .num_workers = workers, .spin = UINT64_MAX,
                           .idle_begin = idle_begin_fn,
                           .idle_round = idle_round_fn,
                           .idle_end = idle_end_fn };

    cr_assert_eq(rh_pool_create(&p, &idle_pool), RH_OK, "%s",
                 rh_last_error());
}

static int idle_started(void *arg)
{
    (void)arg;
    return atomic_load(&idle_begins) > 0;
}

Test(pool, a_job_the_idle_work_submits_runs_next_on_its_worker_after_idle_end)
{
    idle_pool_start(1);
    idle_job.run = idle_job_run;
    cr_assert(eventually(idle_started, NULL), "the idle worker never began "
              "its idle work");
    atomic_store(&idle_submit, 1);
    cr_assert(eventually(flag_is_set, &idle_job_done), "the job never ran");
    cr_expect(pthread_equal(idle_thread, idle_job_thread),
              "the job ran on another thread than the one that received it");
    cr_expect_eq(atomic_load(&idle_job_saw_doing), 0,
                 "the job ran inside the idle work");
    cr_expect_eq(atomic_load(&idle_round_in_pool), 0,
                 "the idle work saw itself on a worker (a wait there would "
                 "help or park)");
    rh_pool_destroy(idle_pool);
    cr_expect_eq(atomic_load(&idle_begins), atomic_load(&idle_ends),
                 "%ld begins, %ld ends", atomic_load(&idle_begins),
                 atomic_load(&idle_ends));
}

Test(pool, one_worker_at_a_time_does_the_idle_work)
{
    idle_pool_start(4);
    cr_assert(eventually(idle_started, NULL));
    sleep_ms(50);   /* the others spin meanwhile, each trying to begin */
    rh_pool_destroy(idle_pool);
    cr_expect_eq(atomic_load(&idle_most), 1, "%d workers did it at once",
                 atomic_load(&idle_most));
    cr_expect_eq(atomic_load(&idle_begins), atomic_load(&idle_ends));
}

typedef struct name_job {
    rh_job_t    job;
    char        name[16];
    int         index;
    rh_pool_t  *current;
    _Atomic int done;
} name_job_t;

static void name_run(rh_job_t *job)
{
    name_job_t *n = container_of(job, name_job_t, job);

    pthread_getname_np(pthread_self(), n->name, sizeof(n->name));
    n->index = rh_pool_worker_index();
    n->current = rh_pool_current();
    atomic_store_explicit(&n->done, 1, memory_order_release);
}

/* Counted here rather than with rh_topo_query, which also loads hwloc's I/O
 * plugins (unneeded here, and LeakSanitizer reports what they keep). */
static int count_cores(void)
{
    hwloc_topology_t topo;
    int n;

    cr_assert_eq(hwloc_topology_init(&topo), 0);
    cr_assert_eq(hwloc_topology_load(topo), 0);
    n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    if (n <= 0) {
        n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
    }
    hwloc_topology_destroy(topo);
    return n;
}

Test(pool, zero_workers_means_one_per_core_and_pinned_workers_run_jobs)
{
    rh_pool_params_t p = { .num_workers = 0, .pin = 1, .spin = 100 };
    rh_pool_t *pool;
    name_job_t n = { .job.run = name_run };
    char want[16];

    cr_assert_eq(rh_pool_create(&p, &pool), RH_OK, "%s", rh_last_error());
    cr_expect_eq(rh_pool_num_workers(pool), count_cores());
    rh_pool_submit(pool, &n.job);
    cr_assert(eventually(flag_is_set, &n.done));
    snprintf(want, sizeof(want), "rayhpc-worker-%d", n.index);
    cr_expect_str_eq(n.name, want);
    rh_pool_destroy(pool);
}

/* rh_pool_stop runs what was submitted and joins the workers, but leaves
 * the pool readable: a late notify (a task answer arriving on another
 * thread) is harmless until rh_pool_destroy, and a second stop is too. */
Test(pool, stop_joins_the_workers_and_keeps_the_pool_until_destroy)
{
    rh_pool_params_t p = { .num_workers = 2, .spin = 100 };
    rh_pool_t *pool;
    name_job_t n = { .job.run = name_run };

    cr_assert_eq(rh_pool_create(&p, &pool), RH_OK, "%s", rh_last_error());
    rh_pool_submit(pool, &n.job);
    rh_pool_stop(pool);
    cr_expect(atomic_load(&n.done), "a job submitted before stop ran");
    rh_pool_notify(pool);
    rh_pool_stop(pool);
    cr_expect_eq(rh_pool_num_workers(pool), 2);
    rh_pool_destroy(pool);
    rh_pool_stop(NULL);
}

/* ---- binding: ranks of one host split its cores --------------------------- */

typedef struct bind_job {
    rh_job_t         job;
    hwloc_topology_t topo;
    hwloc_bitmap_t   set;
    _Atomic int      done;
} bind_job_t;

static void bind_run(rh_job_t *job)
{
    bind_job_t *b = container_of(job, bind_job_t, job);

    hwloc_get_cpubind(b->topo, b->set, HWLOC_CPUBIND_THREAD);
    atomic_store_explicit(&b->done, 1, memory_order_release);
}

/* The cpuset that the one worker of a pool with this share runs on. */
static void worker_cpuset(hwloc_topology_t topo, int share, int shares,
                          hwloc_bitmap_t out)
{
    rh_pool_params_t p = { .num_workers = 1, .pin = 1, .spin = 100,
                           .share = share, .shares = shares };
    bind_job_t b = { .job.run = bind_run, .topo = topo, .set = out };
    rh_pool_t *pool;

    cr_assert_eq(rh_pool_create(&p, &pool), RH_OK, "%s", rh_last_error());
    rh_pool_submit(pool, &b.job);
    cr_assert(eventually(flag_is_set, &b.done));
    rh_pool_destroy(pool);
}

static void *probe_bind(void *arg)
{
    hwloc_topology_t topo = arg;
    hwloc_obj_t core = hwloc_get_obj_by_type(topo, HWLOC_OBJ_CORE, 0);

    return (void *)(intptr_t)(core != NULL &&
                              hwloc_set_cpubind(topo, core->cpuset,
                                                HWLOC_CPUBIND_THREAD) == 0);
}

Test(pool, pools_of_one_host_bind_their_workers_to_cores_of_their_own)
{
    hwloc_topology_t topo;
    hwloc_bitmap_t proc = hwloc_bitmap_alloc(), got = hwloc_bitmap_alloc();
    int cores;
    pthread_t th;
    void *bound;

    cr_assert_eq(hwloc_topology_init(&topo), 0);
    cr_assert_eq(hwloc_topology_load(topo), 0);
    cores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    cr_assert_eq(pthread_create(&th, NULL, probe_bind, topo), 0);
    pthread_join(th, &bound);
    hwloc_get_cpubind(topo, proc, HWLOC_CPUBIND_PROCESS);
    if (cores < 2 || !bound ||
        !hwloc_bitmap_isincluded(hwloc_topology_get_topology_cpuset(topo),
                                 proc)) {
        hwloc_bitmap_free(proc);
        hwloc_bitmap_free(got);
        hwloc_topology_destroy(topo);
        cr_skip_test("needs 2 cores or more, an unbound process and a "
                     "kernel that lets threads bind (cores %d, binding %s)",
                     cores, bound ? "allowed" : "refused");
    }
    /* one share per core: share i gets core i */
    for (int i = 0; i < cores; i++) {
        hwloc_obj_t core = hwloc_get_obj_by_type(topo, HWLOC_OBJ_CORE,
                                                 (unsigned)i);

        worker_cpuset(topo, i, cores, got);
        cr_expect(hwloc_bitmap_isequal(got, core->cpuset),
                  "share %d of %d is not bound to core %d alone", i, cores,
                  i);
    }
    /* two shares: the second half of the cores, its first one */
    worker_cpuset(topo, 1, 2, got);
    cr_expect(hwloc_bitmap_isequal(got, hwloc_get_obj_by_type(
                  topo, HWLOC_OBJ_CORE, (unsigned)(cores / 2))->cpuset),
              "share 1 of 2 is not bound to core %d", cores / 2);
    /* more shares than cores: nobody may claim one */
    worker_cpuset(topo, 0, cores + 1, got);
    cr_expect(hwloc_bitmap_isequal(got, proc),
              "share 0 of %d was bound on %d cores", cores + 1, cores);
    hwloc_bitmap_free(proc);
    hwloc_bitmap_free(got);
    hwloc_topology_destroy(topo);
}

Test(pool, worker_index_is_minus_one_outside_and_in_range_inside)
{
    enum { JOBS = 64, WORKERS = 3 };
    rh_pool_t *pool = make_pool(WORKERS, 100);
    static name_job_t jobs[JOBS];

    cr_expect_eq(rh_pool_worker_index(), -1);
    cr_expect_null(rh_pool_current());
    for (int i = 0; i < JOBS; i++) {
        jobs[i].job.run = name_run;
        jobs[i].index = -2;
        rh_pool_submit(pool, &jobs[i].job);
    }
    rh_pool_destroy(pool);
    for (int i = 0; i < JOBS; i++) {
        cr_expect(jobs[i].index >= 0 && jobs[i].index < WORKERS,
                  "job %d saw index %d", i, jobs[i].index);
        cr_expect_eq(jobs[i].current, pool);
    }
    cr_expect_eq(rh_pool_worker_index(), -1);
}

/* ---- every job runs exactly once ----------------------------------------- */

typedef struct count_job {
    rh_job_t    job;
    _Atomic int runs;
} count_job_t;

static _Atomic long finished;
static _Atomic int blocker_done, blocker_started;
static long finish_target;
static rh_pool_t *the_pool;

static int all_finished(void *arg)
{
    return atomic_load(&finished) == finish_target;
}

/* The last job tells whoever waits in help_until. */
static void count_finish(void)
{
    long target = finish_target;   /* read before the count releases it */

    if (atomic_fetch_add(&finished, 1) + 1 == target) {
        rh_pool_notify(the_pool);
    }
}

static void count_run(rh_job_t *job)
{
    count_job_t *c = container_of(job, count_job_t, job);

    atomic_fetch_add_explicit(&c->runs, 1, memory_order_relaxed);
    count_finish();
}

static void expect_each_ran_once(count_job_t *jobs, long n)
{
    for (long i = 0; i < n; i++) {
        int runs = atomic_load(&jobs[i].runs);

        if (runs != 1) {
            cr_assert_fail("job %ld ran %d times", i, runs);
        }
    }
}

static long stats_target;

static int stats_caught_up(void *arg)
{
    rh_pool_stats_t st = { 0 };

    rh_pool_stats((rh_pool_t *)arg, &st);
    return st.total.jobs_run == (uint64_t)stats_target;
}

/* A worker counts a job when run() returns, after the job said it was
 * done: the stats catch up a moment later. */
static void expect_stats_count(rh_pool_t *pool, long n)
{
    stats_target = n;
    cr_expect(eventually(stats_caught_up, pool), "stats never reached %ld",
              n);
}

Test(pool, every_job_submitted_from_outside_runs_exactly_once, .timeout = 120)
{
    enum { N = 1000000 };
    count_job_t *jobs = calloc(N, sizeof(*jobs));

    the_pool = make_pool(2, 256);
    finish_target = N;
    for (long i = 0; i < N; i++) {
        jobs[i].job.run = count_run;
        rh_pool_submit(the_pool, &jobs[i].job);
    }
    rh_pool_help_until(the_pool, all_finished, NULL);
    expect_stats_count(the_pool, N);
    rh_pool_destroy(the_pool);
    expect_each_ran_once(jobs, N);
    free(jobs);
}

/* A binary tree in heap order: node i spawns 2i+1 and 2i+2. */
enum { TREE_DEPTH = 20, TREE_NODES = (1 << TREE_DEPTH) - 1 };
static count_job_t *tree;

static void tree_run(rh_job_t *job)
{
    count_job_t *c = container_of(job, count_job_t, job);
    long i = c - tree;

    for (long child = 2 * i + 1; child <= 2 * i + 2; child++) {
        if (child < TREE_NODES) {
            tree[child].job.run = tree_run;
            rh_pool_submit(the_pool, &tree[child].job);
        }
    }
    count_run(job);
}

static void run_tree(int workers, uint64_t spin)
{
    tree = calloc(TREE_NODES, sizeof(*tree));
    the_pool = make_pool(workers, spin);
    atomic_store(&finished, 0);
    finish_target = TREE_NODES;
    tree[0].job.run = tree_run;
    rh_pool_submit(the_pool, &tree[0].job);
    rh_pool_help_until(the_pool, all_finished, NULL);
    expect_stats_count(the_pool, TREE_NODES);
    rh_pool_destroy(the_pool);
    expect_each_ran_once(tree, TREE_NODES);
    free(tree);
}

Test(pool, every_job_spawned_recursively_runs_exactly_once, .timeout = 120)
{
    run_tree(2, 256);
}

Test(pool, recursive_spawns_survive_workers_that_sleep_at_once, .timeout = 120)
{
    run_tree(3, 0);   /* spin 0: every idle moment goes through the futex */
}

enum { OUT_THREADS = 4, OUT_PER_THREAD = 100000 };
static count_job_t *out_jobs;

static void *submit_many(void *arg)
{
    long base = (long)(intptr_t)arg * OUT_PER_THREAD;

    for (long i = 0; i < OUT_PER_THREAD; i++) {
        out_jobs[base + i].job.run = count_run;
        rh_pool_submit(the_pool, &out_jobs[base + i].job);
    }
    return NULL;
}

Test(pool, jobs_from_many_outside_threads_all_run_once, .timeout = 120)
{
    pthread_t threads[OUT_THREADS];

    out_jobs = calloc(OUT_THREADS * OUT_PER_THREAD, sizeof(*out_jobs));
    the_pool = make_pool(2, 0);
    atomic_store(&finished, 0);
    finish_target = OUT_THREADS * OUT_PER_THREAD;
    for (int i = 0; i < OUT_THREADS; i++) {
        pthread_create(&threads[i], NULL, submit_many, (void *)(intptr_t)i);
    }
    for (int i = 0; i < OUT_THREADS; i++) {
        pthread_join(threads[i], NULL);
    }
    rh_pool_help_until(the_pool, all_finished, NULL);
    rh_pool_destroy(the_pool);
    expect_each_ran_once(out_jobs, OUT_THREADS * OUT_PER_THREAD);
    free(out_jobs);
}

/* ---- stealing ------------------------------------------------------------ */

enum { SPAWNED = 1000 };
static count_job_t spawned[SPAWNED];

typedef struct long_job {
    rh_job_t    job;
    int         all_ran;   /* whether the others ran while it was busy */
    _Atomic int done;
} long_job_t;

static void long_run(rh_job_t *job)
{
    long_job_t *l = container_of(job, long_job_t, job);

    for (int i = 0; i < SPAWNED; i++) {
        spawned[i].job.run = count_run;
        rh_pool_submit(the_pool, &spawned[i].job);
    }
    /* Busy, not helping: only another worker can run the spawned jobs. */
    l->all_ran = eventually(all_finished, NULL);
    atomic_store_explicit(&l->done, 1, memory_order_release);
}

Test(pool, idle_workers_steal_jobs_spawned_by_a_busy_worker, .timeout = 60)
{
    long_job_t l = { .job.run = long_run };
    rh_pool_worker_stats_t per[2];
    rh_pool_stats_t st = { .per_worker = per, .per_worker_len = 2 };

    the_pool = make_pool(2, RH_POOL_SPIN_DEFAULT);
    atomic_store(&finished, 0);
    finish_target = SPAWNED;
    rh_pool_submit(the_pool, &l.job);
    cr_assert(eventually(flag_is_set, &l.done));
    cr_expect(l.all_ran, "the spawned jobs waited for the busy worker");
    rh_pool_stats(the_pool, &st);
    cr_expect_eq(st.num_workers, 2);
    cr_expect_geq(st.total.steals, SPAWNED, "steals: %llu",
                  (unsigned long long)st.total.steals);
    cr_expect_gt(per[0].jobs_run, 0);
    cr_expect_gt(per[1].jobs_run, 0);
    rh_pool_destroy(the_pool);
    expect_each_ran_once(spawned, SPAWNED);
}

/* A job from outside blocks, outside the pool's view, until the jobs
 * submitted from outside after it have all run (a task joining a thread
 * that gets from the tasks it submits): those that landed in its worker's
 * inbox must be taken by the idle worker, not wait for it. */
enum { BEHIND = 16 };
static count_job_t behind[BEHIND];

static int all_behind_ran(void *arg)
{
    (void)arg;
    return atomic_load(&finished) == BEHIND;
}

static void blocker_run(rh_job_t *job)
{
    (void)job;
    atomic_store(&blocker_started, 1);
    while (!all_behind_ran(NULL)) {
        sleep_ms(1);
    }
    atomic_store(&blocker_done, 1);
}

Test(pool, outside_jobs_never_wait_for_a_worker_blocked_in_a_job,
     .timeout = 60)
{
    rh_job_t blocker = { .run = blocker_run };

    the_pool = make_pool(2, RH_POOL_SPIN_DEFAULT);
    atomic_store(&finished, 0);
    atomic_store(&blocker_done, 0);
    atomic_store(&blocker_started, 0);
    finish_target = BEHIND;
    rh_pool_submit(the_pool, &blocker);
    cr_assert(eventually(flag_is_set, &blocker_started));
    for (int i = 0; i < BEHIND; i++) {
        /* every other one lands in the blocked worker's inbox */
        behind[i].job.run = count_run;
        rh_pool_submit(the_pool, &behind[i].job);
    }
    cr_assert(eventually(flag_is_set, &blocker_done), "%ld of %d jobs "
              "behind a blocked worker ran", atomic_load(&finished),
              BEHIND);
    rh_pool_destroy(the_pool);
    expect_each_ran_once(behind, BEHIND);
}

/* Jobs from outside a worker busy with one run in the order they came
 * once it is free (they went from its inbox into its deque, whose newest
 * its owner pops, and ran newest first). */
enum { ORDERED = 16 };
static count_job_t ordered[ORDERED];
static int ran_order[ORDERED];
static _Atomic int gate_open, gate_started, nordered;

static void gate_run(rh_job_t *job)
{
    (void)job;
    atomic_store(&gate_started, 1);
    while (!atomic_load(&gate_open)) {
        sleep_ms(1);
    }
}

static void ordered_run(rh_job_t *job)
{
    ran_order[atomic_fetch_add(&nordered, 1)] =
        (int)(container_of(job, count_job_t, job) - ordered);
}

static int all_ordered_ran(void *arg)
{
    (void)arg;
    return atomic_load(&nordered) == ORDERED;
}

Test(pool, outside_jobs_run_in_the_order_they_came, .timeout = 60)
{
    rh_job_t gate = { .run = gate_run };

    the_pool = make_pool(1, RH_POOL_SPIN_DEFAULT);
    rh_pool_submit(the_pool, &gate);
    cr_assert(eventually(flag_is_set, &gate_started));
    for (int i = 0; i < ORDERED; i++) {
        ordered[i].job.run = ordered_run;
        rh_pool_submit(the_pool, &ordered[i].job);
    }
    atomic_store(&gate_open, 1);
    cr_assert(eventually(all_ordered_ran, NULL));
    rh_pool_destroy(the_pool);
    for (int i = 0; i < ORDERED; i++) {
        cr_expect_eq(ran_order[i], i, "job %d ran as number %d", ran_order[i],
                     i);
    }
}

/* ---- destroy ------------------------------------------------------------- */

enum { PARENTS = 10000 };
static count_job_t parents[PARENTS], children[PARENTS];

static void parent_run(rh_job_t *job)
{
    long i = container_of(job, count_job_t, job) - parents;

    children[i].job.run = count_run;
    rh_pool_submit(the_pool, &children[i].job);
    count_run(job);
}

Test(pool, destroy_runs_every_submitted_job_and_what_they_submit)
{
    the_pool = make_pool(2, 0);
    atomic_store(&finished, 0);
    finish_target = -1;   /* nobody waits */
    for (int i = 0; i < PARENTS; i++) {
        parents[i].job.run = parent_run;
        rh_pool_submit(the_pool, &parents[i].job);
    }
    rh_pool_destroy(the_pool);
    expect_each_ran_once(parents, PARENTS);
    expect_each_ran_once(children, PARENTS);
}

/* ---- help_until ---------------------------------------------------------- */

static _Atomic int waiter_started, waiter_done, setter_flag;

static void waiter_run(rh_job_t *job)
{
    atomic_store(&waiter_started, 1);
    rh_pool_help_until(the_pool, flag_is_set, &setter_flag);
    atomic_store(&waiter_done, 1);
    rh_pool_notify(the_pool);
}

static void setter_run(rh_job_t *job)
{
    atomic_store_explicit(&setter_flag, 1, memory_order_release);
    rh_pool_notify(the_pool);
}

static int worker0_slept(void *arg)
{
    rh_pool_worker_stats_t per[1];
    rh_pool_stats_t st = { .per_worker = per, .per_worker_len = 1 };

    rh_pool_stats(the_pool, &st);
    return per[0].sleeps > (uint64_t)(uintptr_t)arg;
}

/* One worker, stuck in a job that waits for a job submitted later: it must
 * run that job itself. */
static void help_until_with_one_worker(uint64_t spin)
{
    rh_job_t waiter = { .run = waiter_run };
    rh_job_t setter = { .run = setter_run };

    atomic_store(&waiter_started, 0);
    atomic_store(&waiter_done, 0);
    atomic_store(&setter_flag, 0);
    the_pool = make_pool(1, spin);
    rh_pool_submit(the_pool, &waiter);
    cr_assert(eventually(flag_is_set, &waiter_started));
    if (spin == 0) {
        /* Let the helper fall asleep (not required to pass). */
        eventually(worker0_slept, (void *)0);
    }
    rh_pool_submit(the_pool, &setter);
    rh_pool_help_until(the_pool, flag_is_set, &waiter_done);  /* outside */
    cr_expect(atomic_load(&waiter_done));
    rh_pool_destroy(the_pool);
}

Test(pool, help_until_runs_the_job_it_waits_for_with_one_worker, .timeout = 60)
{
    help_until_with_one_worker(RH_POOL_SPIN_DEFAULT);
}

Test(pool, help_until_sleeping_helper_wakes_for_the_job_it_waits_for,
     .timeout = 60)
{
    help_until_with_one_worker(0);
}

static _Atomic int outside_flag;

static void set_outside_flag(rh_job_t *job)
{
    atomic_store_explicit(&outside_flag, 1, memory_order_relaxed);
    rh_pool_notify(the_pool);
}

static void *outside_waiter(void *arg)
{
    rh_pool_help_until(the_pool, flag_is_set, &outside_flag);
    return NULL;
}

Test(pool, notify_wakes_threads_waiting_outside_the_pool, .timeout = 60)
{
    enum { WAITERS = 3 };
    pthread_t threads[WAITERS];
    rh_job_t setter = { .run = set_outside_flag };

    atomic_store(&outside_flag, 0);
    the_pool = make_pool(2, 0);   /* outside waiters also sleep at once */
    for (int i = 0; i < WAITERS; i++) {
        pthread_create(&threads[i], NULL, outside_waiter, NULL);
    }
    sleep_ms(20);   /* most likely asleep by now; correct either way */
    rh_pool_submit(the_pool, &setter);
    for (int i = 0; i < WAITERS; i++) {
        pthread_join(threads[i], NULL);
    }
    rh_pool_destroy(the_pool);
}

/* A condition nobody makes true: the deadline ends the wait, inside a job
 * (the helper sleeps with spin 0) and outside. */
static _Atomic int never;
static _Atomic int deadline_result = -1;

static void wait_for_never(rh_job_t *job)
{
    uint64_t deadline = rh_time_ns() + 20 * 1000000ull;

    atomic_store(&deadline_result,
                 rh_pool_help_until_deadline(the_pool, flag_is_set, &never,
                                             deadline));
    rh_pool_notify(the_pool);
}

static int deadline_result_known(void *arg)
{
    return atomic_load(&deadline_result) != -1;
}

Test(pool, help_until_deadline_gives_up_inside_and_outside, .timeout = 60)
{
    rh_job_t waiter = { .run = wait_for_never };
    _Atomic int yes = 1;

    the_pool = make_pool(1, 0);
    rh_pool_submit(the_pool, &waiter);
    cr_assert(rh_pool_help_until_deadline(the_pool, deadline_result_known,
                                          NULL, 0));
    cr_expect_eq(atomic_load(&deadline_result), 0);
    cr_expect_eq(rh_pool_help_until_deadline(the_pool, flag_is_set, &never,
                                             rh_time_ns() + 20000000ull), 0);
    cr_expect_eq(rh_pool_help_until_deadline(the_pool, flag_is_set, &yes,
                                             rh_time_ns()), 1);
    rh_pool_destroy(the_pool);
}

/* fib(n) with nested jobs: the parent submits both children (which live on
 * its stack) and helps until they are done. */
typedef struct fib_job {
    rh_job_t    job;
    int         n;
    long        result;
    _Atomic int done;
} fib_job_t;

static _Atomic long fib_jobs;

static int fib_children_done(void *arg)
{
    fib_job_t *c = arg;

    return atomic_load_explicit(&c[0].done, memory_order_acquire) &&
           atomic_load_explicit(&c[1].done, memory_order_acquire);
}

static void fib_run(rh_job_t *job)
{
    fib_job_t *f = container_of(job, fib_job_t, job);
    rh_pool_t *pool = the_pool;

    atomic_fetch_add_explicit(&fib_jobs, 1, memory_order_relaxed);
    if (f->n < 2) {
        f->result = f->n;
    } else {
        fib_job_t c[2] = { { .job.run = fib_run, .n = f->n - 1 },
                           { .job.run = fib_run, .n = f->n - 2 } };

        rh_pool_submit(pool, &c[0].job);
        rh_pool_submit(pool, &c[1].job);
        rh_pool_help_until(pool, fib_children_done, c);
        f->result = c[0].result + c[1].result;
    }
    /* After this store the parent may return and f vanish with its stack. */
    atomic_store_explicit(&f->done, 1, memory_order_release);
    rh_pool_notify(pool);
}

static long fib_calls(int n)
{
    return n < 2 ? 1 : 1 + fib_calls(n - 1) + fib_calls(n - 2);
}

static void fib_with_workers(int workers)
{
    fib_job_t root = { .job.run = fib_run, .n = 25 };
    rh_pool_stats_t st = { 0 };

    atomic_store(&fib_jobs, 0);
    the_pool = make_pool(workers, RH_POOL_SPIN_DEFAULT);
    rh_pool_submit(the_pool, &root.job);
    rh_pool_help_until(the_pool, flag_is_set, &root.done);
    cr_expect_eq(root.result, 75025);
    cr_expect_eq(atomic_load(&fib_jobs), fib_calls(25));
    expect_stats_count(the_pool, fib_calls(25));
    rh_pool_stats(the_pool, &st);
    cr_expect_gt(st.total.jobs_helped, 0);
    rh_pool_destroy(the_pool);
}

Test(pool, nested_fib_25_with_help_until_on_one_worker, .timeout = 60)
{
    fib_with_workers(1);
}

Test(pool, nested_fib_25_with_help_until_on_two_workers, .timeout = 60)
{
    fib_with_workers(2);
}

Test(pool, nested_fib_25_with_workers_that_sleep_at_once, .timeout = 60)
{
    fib_job_t root = { .job.run = fib_run, .n = 25 };

    the_pool = make_pool(3, 0);
    rh_pool_submit(the_pool, &root.job);
    rh_pool_help_until(the_pool, flag_is_set, &root.done);
    cr_expect_eq(root.result, 75025);
    rh_pool_destroy(the_pool);
}

/* ---- sleeping and waking ------------------------------------------------- */

static uint64_t total_sleeps(void)
{
    rh_pool_stats_t st = { 0 };

    rh_pool_stats(the_pool, &st);
    return st.total.sleeps;
}

static int both_slept(void *arg)
{
    rh_pool_worker_stats_t per[2];
    rh_pool_stats_t st = { .per_worker = per, .per_worker_len = 2 };

    rh_pool_stats(the_pool, &st);
    return per[0].sleeps > 0 && per[1].sleeps > 0;
}

static int slept_since(void *arg)
{
    return total_sleeps() > *(uint64_t *)arg;
}

static void flag_run(rh_job_t *job)
{
    count_job_t *c = container_of(job, count_job_t, job);

    atomic_store_explicit(&c->runs, 1, memory_order_release);
}

Test(pool, sleeping_workers_wake_for_each_new_job, .timeout = 120)
{
    enum { ROUNDS = 100 };

    the_pool = make_pool(2, 0);
    cr_assert(eventually(both_slept, NULL), "idle workers never slept");
    for (int round = 0; round < ROUNDS; round++) {
        count_job_t job = { .job.run = flag_run };
        uint64_t sleeps = total_sleeps();

        rh_pool_submit(the_pool, &job.job);
        cr_assert(eventually(flag_is_set, &job.runs), "round %d: the job "
                  "submitted to a sleeping pool did not run", round);
        /* The worker that ran it goes back to sleep before the next one. */
        cr_assert(eventually(slept_since, &sleeps), "round %d", round);
    }
    rh_pool_destroy(the_pool);
}

/* ---- waits that park ----------------------------------------------------- */

static rh_pool_t *make_pool_helping(int workers, uint64_t spin, int depth)
{
    rh_pool_params_t p = { .num_workers = workers, .spin = spin,
                           .help_depth = depth };
    rh_pool_t *pool = NULL;

    cr_assert_eq(rh_pool_create(&p, &pool), RH_OK, "%s", rh_last_error());
    return pool;
}

static rh_pool_stats_t pool_totals(void)
{
    rh_pool_stats_t st = { 0 };

    rh_pool_stats(the_pool, &st);
    return st;
}

Test(pool, create_rejects_a_help_depth_out_of_range)
{
    rh_pool_params_t p = { .num_workers = 1, .help_depth = -2 };
    rh_pool_t *pool = NULL;

    cr_expect_eq(rh_pool_create(&p, &pool), RH_ERR_INVALID_PARAM);
    cr_expect(strstr(rh_last_error(), "help_depth") != NULL, "message: %s",
              rh_last_error());
    p.help_depth = RH_POOL_HELP_DEPTH_MAX + 1;
    cr_expect_eq(rh_pool_create(&p, &pool), RH_ERR_INVALID_PARAM);
    cr_expect_null(pool);
}

/* A chain of nested waits: each level submits one child and waits for it.
 * Each level's frame holds a block of stack, so that helping without a
 * bound would overflow the 8 MiB stack long before the bottom. */
typedef struct chain_job {
    rh_job_t    job;
    long        n;
    long        result;
    _Atomic int done;
} chain_job_t;

static unsigned chain_flags = RH_POOL_WAIT_PURE;

static void chain_run(rh_job_t *job)
{
    chain_job_t *c = container_of(job, chain_job_t, job);
    volatile char frame[2048];

    frame[0] = 1;
    frame[sizeof(frame) - 1] = 1;
    if (c->n == 0) {
        c->result = 0;
    } else {
        chain_job_t child = { .job.run = chain_run, .n = c->n - 1 };

        rh_pool_submit(the_pool, &child.job);
        rh_pool_wait(the_pool, flag_is_set, &child.done, 0, chain_flags);
        c->result = child.result + frame[0];
    }
    atomic_store_explicit(&c->done, 1, memory_order_release);
    rh_pool_notify(the_pool);
}

static void run_chain(long depth)
{
    chain_job_t root = { .job.run = chain_run, .n = depth };

    rh_pool_submit(the_pool, &root.job);
    rh_pool_help_until(the_pool, flag_is_set, &root.done);   /* outside */
    cr_expect_eq(root.result, depth);
}

Test(pool, nested_waits_far_deeper_than_the_help_depth_finish, .timeout = 120)
{
    enum { DEPTH = 20000, HELP = 16 };
    rh_pool_stats_t st;

    the_pool = make_pool_helping(1, RH_POOL_SPIN_DEFAULT, HELP);
    run_chain(DEPTH);
    st = pool_totals();
    /* A thread runs HELP levels nested, then parks and leaves its slot. */
    cr_expect_geq(st.total.parks, DEPTH / (HELP + 1), "parks: %llu",
                  (unsigned long long)st.total.parks);
    cr_expect_gt(st.threads, 1);
    cr_expect_eq(st.parked, 0);
    rh_pool_destroy(the_pool);
}

Test(pool, nested_waits_on_two_workers_with_stealing_finish, .timeout = 120)
{
    the_pool = make_pool_helping(2, 0, 8);
    run_chain(5000);
    rh_pool_destroy(the_pool);
}

Test(pool, the_stack_check_parks_before_a_deep_help_overflows, .timeout = 120)
{
    /* 2 KiB a level: 8 MiB last about 4000 levels. */
    the_pool = make_pool_helping(1, RH_POOL_SPIN_DEFAULT,
                                 RH_POOL_HELP_DEPTH_MAX);
    run_chain(20000);
    cr_expect_gt(pool_totals().total.parks, 0);
    rh_pool_destroy(the_pool);
}

Test(pool, parked_waiters_without_a_pure_condition_are_woken, .timeout = 120)
{
    chain_flags = 0;
    the_pool = make_pool_helping(1, 0, 4);
    run_chain(200);
    rh_pool_destroy(the_pool);
    chain_flags = RH_POOL_WAIT_PURE;
}

/* With no helping every wait parks; the spare that takes the slot goes idle
 * when the waiter comes back, and takes the slot at the next park. A spare
 * still on its way to idle when the next park comes makes another one
 * start (a loaded machine does that now and then), so the test asks for
 * reuse, not for exactly one spare: without it every park starts one. */
Test(pool, a_spare_thread_is_reused_from_park_to_park, .timeout = 120)
{
    enum { WAITS = 50 };
    rh_pool_stats_t st;

    the_pool = make_pool_helping(1, 0, -1);
    for (int i = 0; i < WAITS; i++) {
        run_chain(1);
    }
    st = pool_totals();
    cr_expect_eq(st.total.parks, WAITS);
    cr_expect_lt(st.threads, 1 + WAITS / 2, "threads started: %llu for %d "
                 "parks", (unsigned long long)st.threads, WAITS);
    rh_pool_destroy(the_pool);
}

/* The older-job case: A waits for C, B (submitted after A) waits for A, and
 * C is queued behind B. A must not run B on its stack, and neither may the
 * one worker sit waiting: both park and a spare runs C. */
static _Atomic int older_a_started, older_a_done, older_b_done, older_c_done;

static void older_a(rh_job_t *job)
{
    atomic_store(&older_a_started, 1);
    rh_pool_help_until(the_pool, flag_is_set, &older_c_done);
    atomic_store_explicit(&older_a_done, 1, memory_order_release);
    rh_pool_notify(the_pool);
}

static void older_b(rh_job_t *job)
{
    rh_pool_help_until(the_pool, flag_is_set, &older_a_done);
    atomic_store_explicit(&older_b_done, 1, memory_order_release);
    rh_pool_notify(the_pool);
}

static void older_c(rh_job_t *job)
{
    atomic_store_explicit(&older_c_done, 1, memory_order_release);
    rh_pool_notify(the_pool);
}

Test(pool, a_job_waiting_on_an_older_job_finishes, .timeout = 60)
{
    rh_job_t a = { .run = older_a }, b = { .run = older_b },
             c = { .run = older_c };

    the_pool = make_pool(1, RH_POOL_SPIN_DEFAULT);
    rh_pool_submit(the_pool, &a);
    cr_assert(eventually(flag_is_set, &older_a_started));
    rh_pool_submit(the_pool, &b);
    rh_pool_submit(the_pool, &c);
    cr_assert(rh_pool_help_until_deadline(the_pool, flag_is_set,
                                          &older_b_done, rh_time_ns() +
                                          BOUND_S * 1000000000ull),
              "B never finished");
    cr_expect(atomic_load(&older_a_done));
    rh_pool_destroy(the_pool);
}

static _Atomic int never_set;
static _Atomic int deadline_wait_result = -1;

static void wait_with_deadline(rh_job_t *job)
{
    atomic_store(&deadline_wait_result,
                 rh_pool_wait(the_pool, flag_is_set, &never_set,
                              rh_time_ns() + 20000000ull, RH_POOL_WAIT_PURE));
    rh_pool_notify(the_pool);
}

static int deadline_wait_known(void *arg)
{
    return atomic_load(&deadline_wait_result) >= 0;
}

Test(pool, a_parked_wait_gives_up_at_its_deadline, .timeout = 60)
{
    rh_job_t job = { .run = wait_with_deadline };

    the_pool = make_pool_helping(1, 0, -1);
    rh_pool_submit(the_pool, &job);
    cr_assert(eventually(deadline_wait_known, NULL));
    cr_expect_eq(atomic_load(&deadline_wait_result), 0);
    cr_expect_eq(pool_totals().total.parks, 1);
    rh_pool_destroy(the_pool);
}
