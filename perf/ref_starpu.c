/*
 * local_tasks/starpu: StarPU's empty-task rate, in this process.
 *
 * See ref_starpu.h. Tuning (kept to what a StarPU user would do for its
 * best empty-task rate, nothing that would not hold for real tasks):
 *  - only CPU workers: ncpus = workers, no CUDA/OpenCL/MIC/MPI-MS workers;
 *  - no calibration (codelet without performance model, calibrate = 0,
 *    bus_calibrate = 0), no statistics, no profiling;
 *  - scheduler SCHED_DEFAULT below (RAYHPC_PERF_STARPU_SCHED overrides it),
 *    workers left unbound when they would take every core we may use;
 *  - one static codelet with a no-op CPU function and no buffers;
 *  - independent tasks: starpu_task_create (detach = 1, destroy = 1) and
 *    starpu_task_submit, then one starpu_task_wait_for_all;
 *  - chain: task i+1 declares its dependency on task i with
 *    starpu_task_declare_deps_array *before* task i is submitted, so task i
 *    can still be detached and destroyed automatically (a task that already
 *    ran may be freed, declaring a dependency on it would be a
 *    use-after-free); then one starpu_task_wait_for_all;
 *  - otherwise StarPU's defaults (non-blocking drivers in the Debian build).
 * Each call runs an untimed warm-up then REF_TRIALS timed trials inside a
 * single starpu_init/starpu_shutdown, and returns the best trial.
 *
 * Hygiene: StarPU reads its configuration from STARPU_* variables, and
 * writes performance-model files under $XDG_CACHE_HOME, $STARPU_HOME or
 * $HOME. We set the variables we need (and hide XDG_CACHE_HOME) for the
 * call, point STARPU_HOME and STARPU_PERF_MODEL_DIR at a fresh temporary
 * directory, and after starpu_shutdown (which joins every worker thread)
 * remove that directory and put every variable back as it was. StarPU's
 * SIGINT/SIGSEGV/SIGTRAP handlers are never installed (catch_signals = 0):
 * StarPU 1.3 does not restore the previous ones at shutdown.
 */
#if !defined(_GNU_SOURCE) && !defined(_XOPEN_SOURCE)
#define _XOPEN_SOURCE 700 /* nftw, mkdtemp (config.h gives _GNU_SOURCE) */
#endif
#include "ref_starpu.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HAVE_STARPU

#include <ftw.h>
#include <sched.h>
#include <starpu.h>
#include <time.h>
#include <unistd.h>

/*
 * Tuning, measured on the 2-core Debian 12 machine with StarPU 1.3.10
 * (non-blocking drivers), workers = 2, 200000 tasks; K tasks/s, median of
 * 5-8 calls, each the best of 3 trials; the machine was shared, so about
 * +-20 %:
 *
 *   scheduler      binding   independent   chain
 *   prio           none         885-1064    640
 *   prio           cores         710        650
 *   eager          none          850-1065   590
 *   eager          cores         780-950    600
 *   lws            none          943        590
 *   lws            cores         550        590
 *   ws             none          800        580
 *   ws             cores         565        610
 *   dmda           cores         440        510
 *   peager         cores         530        320
 *   random         cores         480        335
 *   modular-eager  cores         305        225
 *
 * "prio" (one central queue, like eager, with priority buckets that are
 * all equal here) is the fastest or tied for both shapes: empty tasks
 * leave nothing to balance, so the cheapest central queue wins, and the
 * work-stealing (lws, ws) or model-based (dmda) policies only add work.
 * STARPU_BACKOFF_MAX (2, 32, 1024) made no difference.
 *
 * Binding: with StarPU's default binding each worker is pinned to a core,
 * and workers spin while idle (non-blocking drivers); when workers >= the
 * cores we may use, the submitting thread then has to share a core with a
 * pinned spinning worker, which cost up to 35 % on independent tasks. With
 * STARPU_WORKERS_NOBIND=1 the kernel balances the three threads. With a
 * core to spare (workers = 1 here) binding made no difference, so we keep
 * StarPU's default binding there.
 */
#define SCHED_DEFAULT "prio"
#define REF_TRIALS    3

static void ref_noop(void *buffers[], void *arg)
{
    (void)buffers;
    (void)arg;
}

static struct starpu_codelet ref_cl = {
    .where = STARPU_CPU,
    .cpu_funcs = {ref_noop},
    .cpu_funcs_name = {"ref_noop"},
    .nbuffers = 0,
    .name = "rh_ref_noop",
};

static void ref_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static double ref_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPUs this process may run on. */
static long usable_cpus(void)
{
#ifdef CPU_COUNT
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) {
        return CPU_COUNT(&set);
    }
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

/* ---- environment, saved and restored --------------------------------------- */

enum { ENV_SET, ENV_UNSET };

typedef struct {
    const char *name;
    int         action;   /* ENV_SET: set to value; ENV_UNSET: hide */
    const char *value;    /* NULL: filled in at run time */
    char       *saved;    /* previous value (malloc'd), NULL if unset */
    int         was_set;
} ref_env_t;

/* Applies env[0..n); returns how many entries were saved (all n on
 * success), so that env_restore can put back exactly those. */
static int env_apply(ref_env_t *env, int n)
{
    for (int i = 0; i < n; i++) {
        const char *old = getenv(env[i].name);
        env[i].was_set = old != NULL;
        env[i].saved = old ? strdup(old) : NULL;
        if (old && !env[i].saved) {
            return i;
        }
        int rc = env[i].action == ENV_SET
                     ? setenv(env[i].name, env[i].value, 1)
                     : unsetenv(env[i].name);
        if (rc != 0) {
            return i + 1;
        }
    }
    return n;
}

static void env_restore(ref_env_t *env, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        if (env[i].was_set) {
            setenv(env[i].name, env[i].saved, 1);
        } else {
            unsetenv(env[i].name);
        }
        free(env[i].saved);
        env[i].saved = NULL;
        env[i].was_set = 0;
    }
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* ---- the runs ---------------------------------------------------------------- */

static int run_independent(long ntasks)
{
    for (long i = 0; i < ntasks; i++) {
        struct starpu_task *t = starpu_task_create();
        if (!t) {
            return -ENOMEM;
        }
        t->cl = &ref_cl;
        t->detach = 1;
        t->destroy = 1;
        int rc = starpu_task_submit(t);
        if (rc != 0) {
            starpu_task_destroy(t);
            starpu_task_wait_for_all();
            return rc;
        }
    }
    return starpu_task_wait_for_all();
}

static int run_chain(long ntasks)
{
    struct starpu_task *cur = starpu_task_create();
    if (!cur) {
        return -ENOMEM;
    }
    cur->cl = &ref_cl;
    for (long i = 0; i < ntasks; i++) {
        struct starpu_task *next = NULL;
        if (i + 1 < ntasks) {
            next = starpu_task_create();
            if (!next) {
                starpu_task_destroy(cur);
                starpu_task_wait_for_all();
                return -ENOMEM;
            }
            next->cl = &ref_cl;
            /* cur is not submitted yet, so it is still valid here. */
            starpu_task_declare_deps_array(next, 1, &cur);
        }
        int rc = starpu_task_submit(cur);
        if (rc != 0) {
            starpu_task_destroy(cur);
            if (next) {
                starpu_task_destroy(next);
            }
            starpu_task_wait_for_all();
            return rc;
        }
        cur = next;
    }
    return starpu_task_wait_for_all();
}

int rh_ref_starpu_max_workers(void)
{
    return STARPU_MAXCPUS;
}

static int run_once(long ntasks, int chain)
{
    return chain ? run_chain(ntasks) : run_independent(ntasks);
}

double rh_ref_starpu_tasks_per_sec(int workers, long ntasks, int chain,
                                   char *err, size_t errlen)
{
    if (workers < 1 || ntasks < 1) {
        ref_err(err, errlen, "starpu: need workers >= 1 and ntasks >= 1");
        return -1;
    }
    if (workers > STARPU_MAXCPUS) {
        ref_err(err, errlen,
                "starpu: %d CPU workers asked, this StarPU build supports at "
                "most %d (STARPU_MAXCPUS)", workers, STARPU_MAXCPUS);
        return -1;
    }

    const char *sched = getenv("RAYHPC_PERF_STARPU_SCHED");
    if (!sched || !*sched) {
        sched = SCHED_DEFAULT;
    }
    char sched_buf[64];
    snprintf(sched_buf, sizeof sched_buf, "%s", sched);

    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/rayhpc-starpu-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        ref_err(err, errlen, "starpu: cannot create a temporary STARPU_HOME "
                "(%s): %s", dir, strerror(errno));
        return -1;
    }
    char ncpu[16];
    snprintf(ncpu, sizeof ncpu, "%d", workers);

    /* Unbound when the workers would take every core (see the table). */
    const char *nobind = workers >= usable_cpus() ? "1" : "0";

    ref_env_t env[] = {
        {"STARPU_NCPU", ENV_SET, ncpu, NULL, 0},
        {"STARPU_WORKERS_NOBIND", ENV_SET, nobind, NULL, 0},
        {"STARPU_NCPUS", ENV_UNSET, NULL, NULL, 0},
        {"STARPU_RESERVE_NCPU", ENV_SET, "0", NULL, 0},
        {"STARPU_MAIN_THREAD_BIND", ENV_SET, "0", NULL, 0},
        {"STARPU_NCUDA", ENV_SET, "0", NULL, 0},
        {"STARPU_NOPENCL", ENV_SET, "0", NULL, 0},
        {"STARPU_NMIC", ENV_SET, "0", NULL, 0},
        {"STARPU_NMPI_MS", ENV_SET, "0", NULL, 0},
        {"STARPU_CALIBRATE", ENV_SET, "0", NULL, 0},
        {"STARPU_BUS_CALIBRATE", ENV_SET, "0", NULL, 0},
        {"STARPU_SCHED", ENV_SET, sched_buf, NULL, 0},
        {"STARPU_SILENT", ENV_SET, "1", NULL, 0},
        {"STARPU_CATCH_SIGNALS", ENV_SET, "0", NULL, 0},
        {"STARPU_ENABLE_STATS", ENV_UNSET, NULL, NULL, 0}, /* set at all: on */
        {"STARPU_PROFILING", ENV_UNSET, NULL, NULL, 0},
        {"STARPU_MEMORY_STATS", ENV_UNSET, NULL, NULL, 0},
        {"STARPU_WATCHDOG_TIMEOUT", ENV_UNSET, NULL, NULL, 0},
        {"STARPU_LIMIT_MAX_SUBMITTED_TASKS", ENV_UNSET, NULL, NULL, 0},
        {"STARPU_HOME", ENV_SET, dir, NULL, 0},
        {"STARPU_PERF_MODEL_DIR", ENV_SET, dir, NULL, 0},
        {"XDG_CACHE_HOME", ENV_UNSET, NULL, NULL, 0},
    };
    const int nenv = (int)(sizeof env / sizeof env[0]);

    double best = -1;
    struct starpu_conf conf;
    unsigned got;
    int rc;
    int napplied = env_apply(env, nenv);
    if (napplied != nenv) {
        ref_err(err, errlen, "starpu: cannot set the environment: %s",
                strerror(errno));
        goto out_env;
    }

    starpu_conf_init(&conf);
    conf.ncpus = workers;
    conf.reserve_ncpus = 0;
    conf.ncuda = 0;
    conf.nopencl = 0;
    conf.nmic = 0;
    conf.nmpi_ms = 0;
    conf.calibrate = 0;
    conf.bus_calibrate = 0;
    conf.sched_policy_name = sched_buf;
    conf.catch_signals = 0;
    conf.precedence_over_environment_variables = 1;

    rc = starpu_init(&conf);
    if (rc != 0) {
        ref_err(err, errlen, "starpu: starpu_init failed: %s",
                rc == -ENODEV ? "no worker available" : strerror(-rc));
        goto out_env;
    }
    got = starpu_cpu_worker_get_count();
    if (got != (unsigned)workers || starpu_worker_get_count() != got) {
        ref_err(err, errlen, "starpu: started %u CPU workers (%u in all), "
                "asked for %d", got, starpu_worker_get_count(), workers);
        goto out_shutdown;
    }

    /* Untimed warm-up: first-touch of StarPU's allocations, workers up. */
    long warm = ntasks / 10 > 1000 ? ntasks / 10 : 1000;
    rc = run_once(warm < ntasks ? warm : ntasks, chain);
    for (int trial = 0; rc == 0 && trial < REF_TRIALS; trial++) {
        double t0 = ref_now();
        rc = run_once(ntasks, chain);
        double dt = ref_now() - t0;
        if (rc == 0 && dt > 0 && (double)ntasks / dt > best) {
            best = (double)ntasks / dt;
        }
    }
    if (rc != 0) {
        ref_err(err, errlen, "starpu: task submission failed: %s",
                strerror(rc < 0 ? -rc : rc));
        best = -1;
    }

out_shutdown:
    starpu_shutdown();
out_env:
    env_restore(env, napplied);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return best;
}

#else /* !HAVE_STARPU */

int rh_ref_starpu_max_workers(void)
{
    return 0;
}

double rh_ref_starpu_tasks_per_sec(int workers, long ntasks, int chain,
                                   char *err, size_t errlen)
{
    (void)workers;
    (void)ntasks;
    (void)chain;
    if (err && errlen > 0) {
        snprintf(err, errlen, "starpu: not built with StarPU (install the "
                 "Debian package libstarpu-dev and reconfigure)");
    }
    return -1;
}

#endif /* HAVE_STARPU */
