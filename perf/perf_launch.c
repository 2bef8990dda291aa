/* Starting the jobs of rayhpc-perf, and the shared printing helpers. */
#include <fcntl.h>
#include <limits.h>
#include <libgen.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>
#include <sys/syscall.h>

#include "perf.h"
#include "perf_progress.h"
#include "rayhpc.h"
#include "transport/am.h"

double perf_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void perf_print(const char *name, const char *suffix, double value,
                const char *unit)
{
    printf("%s%s %.4g %s\n", name, suffix, value, unit);
    fflush(stdout);
}

void perf_print_ratio(const char *name, const char *suffix,
                      const char *reference, double ratio)
{
    printf("%s%s/%s %.3f x\n", name, suffix, reference, ratio);
    fflush(stdout);
}

void perf_report(const char *name, const char *suffix, double ours,
                 double ref, const char *unit, const char *refname)
{
    char refunit[64];

    snprintf(refunit, sizeof(refunit), "%s(%s)", unit, refname);
    perf_print(name, suffix, ours, unit);
    perf_print(name, suffix, ref, refunit);
    perf_print_ratio(name, suffix, refname, ours / ref);
}

int perf_series(void)
{
    const char *s = getenv("RH_PERF_SERIES");

    if (s == NULL || s[0] == '\0') {
        return 0;
    }
    return strcmp(s, "quick") == 0 ? 1 : 2;
}

void perf_print_point(const char *plot, const char *curve, double x,
                      double y)
{
    printf("# series %s %s %.6g %.6g\n", plot, curve, x, y);
    fflush(stdout);
}

/* ---- two-rank sync over our AM layer ----------------------------------- */

#define PERF_SYNC (RH_AM_ID_PERF_FIRST + 0)

/* The waiting thread sleeps on a futex rather than napping: a napping
 * thread wakes up every few microseconds and steals the core from the
 * progress threads being measured. */
static _Atomic uint32_t perf_sync_seen;
static uint32_t perf_sync_sent;

static rh_status_t perf_on_sync(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    (void)msg;
    atomic_fetch_add(&perf_sync_seen, 1);
    syscall(SYS_futex, &perf_sync_seen, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    return RH_OK;
}

int perf_register_sync(void)
{
    return rh_am_register(PERF_SYNC, 0, 0, perf_on_sync, NULL);
}

/* Every rank tells every other one; a rank goes on once it has heard from
 * as many as it expects in all syncs so far. A message of a faster rank's
 * next barrier may count for this one: that rank has passed this barrier,
 * so every rank has reached it. */
void perf_barrier(void)
{
    uint32_t seen;

    for (int r = 0; r < rh_size(); r++) {
        if (r != rh_rank() &&
            rh_am_send_wait((uint32_t)r, PERF_SYNC, NULL, 0, NULL, 0) !=
            RH_OK) {
            fprintf(stderr, "rayhpc-perf: rank %d: lost rank %d: %s\n",
                    rh_rank(), r, rh_last_error());
            exit(1);
        }
    }
    perf_sync_sent += (uint32_t)rh_size() - 1;
    while ((seen = atomic_load(&perf_sync_seen)) < perf_sync_sent) {
        syscall(SYS_futex, &perf_sync_seen, FUTEX_WAIT_PRIVATE, seen, NULL,
                NULL, 0);
    }
}

void perf_sync(void)
{
    int peer = rh_rank() == 0 ? 1 : 0;
    uint32_t seen;

    perf_sync_sent++;
    if (rh_am_send_wait((uint32_t)peer, PERF_SYNC, NULL, 0, NULL, 0) !=
        RH_OK) {
        fprintf(stderr, "rayhpc-perf: rank %d: lost rank %d: %s\n",
                rh_rank(), peer, rh_last_error());
        exit(1);
    }
    while ((seen = atomic_load(&perf_sync_seen)) < perf_sync_sent) {
        syscall(SYS_futex, &perf_sync_seen, FUTEX_WAIT_PRIVATE, seen, NULL,
                NULL, 0);
    }
}

/* ---- jobs ---------------------------------------------------------------- */

static int figure_wanted(const char *figure, int nwant, char **want)
{
    if (nwant == 0) {
        return 1;
    }
    for (int i = 0; i < nwant; i++) {
        if (strcmp(want[i], figure) == 0) {
            return 1;
        }
    }
    return 0;
}

static int group_wanted(const perf_group_t *g, int nwant, char **want)
{
    for (int f = 0; g->figures[f]; f++) {
        if (figure_wanted(g->figures[f], nwant, want)) {
            return 1;
        }
    }
    return 0;
}

/* rayhpc-run next to this program (installed or in the build tree, where
 * libtool may run us from .libs/), else from PATH. */
static void find_launcher(char *out, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

    if (n > 0) {
        char *dir;

        exe[n] = '\0';
        dir = dirname(exe);
        snprintf(out, len, "%s/rayhpc-run", dir);
        if (access(out, X_OK) == 0) {
            return;
        }
        snprintf(out, len, "%s/../rayhpc-run", dir);
        if (access(out, X_OK) == 0) {
            return;
        }
    }
    snprintf(out, len, "rayhpc-run");
}

/* Copies what a job appended to out from offset `from` to our stdout. */
static void echo_from(const char *out, long from)
{
    FILE *f = fopen(out, "r");
    char buf[4096];
    size_t n;

    if (f == NULL || fseek(f, from, SEEK_SET) != 0) {
        if (f != NULL) {
            fclose(f);
        }
        return;
    }
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
        fwrite(buf, 1, n, stdout);
    }
    fclose(f);
    fflush(stdout);
}

/* One job for group g; its output goes to our stdout, or is appended to
 * the file out (then echoed). */
static int run_group(const char *launcher, const char *self,
                     const perf_group_t *g, int nwant, char **want,
                     const char *out)
{
    char nbuf[16], mbuf[16];
    char **argv = calloc((size_t)nwant + 10, sizeof(char *));
    int k = 0, status;
    long from = 0;
    struct stat st;
    pid_t pid;

    snprintf(nbuf, sizeof(nbuf), "%d", g->ranks);
    argv[k++] = (char *)launcher;
    argv[k++] = "-n";
    argv[k++] = nbuf;
    if (g->nodes > 0) {
        snprintf(mbuf, sizeof(mbuf), "%d", g->nodes);
        argv[k++] = "--nodes";
        argv[k++] = mbuf;
    }
    argv[k++] = (char *)self;
    argv[k++] = "--child";
    argv[k++] = (char *)g->name;
    for (int i = 0; i < nwant; i++) {
        argv[k++] = want[i];
    }
    argv[k] = NULL;
    if (out != NULL && stat(out, &st) == 0) {
        from = (long)st.st_size;
    }
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        for (int i = 0; g->env && g->env[i]; i++) {
            putenv((char *)g->env[i]);
        }
        if (out != NULL) {
            int fd = open(out, O_WRONLY | O_APPEND | O_CREAT, 0666);

            if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0) {
                fprintf(stderr, "rayhpc-perf: cannot write %s\n", out);
                _exit(127);
            }
            close(fd);
        }
        execvp(argv[0], argv);
        fprintf(stderr, "rayhpc-perf: cannot start %s\n", argv[0]);
        _exit(127);
    }
    free(argv);
    if (pid < 0 || waitpid(pid, &status, 0) < 0) {
        return 1;
    }
    if (out != NULL) {
        perf_progress_done();
        echo_from(out, from);
    }
    return !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static int launch(const char *self, int nwant, char **want, const char *out)
{
    char launcher[PATH_MAX + 32], selfbuf[PATH_MAX], what[256];
    int failed = 0, ngroups = 0, step = 0;

    find_launcher(launcher, sizeof(launcher));
    if (strchr(self, '/') == NULL) {
        ssize_t n = readlink("/proc/self/exe", selfbuf, sizeof(selfbuf) - 1);

        if (n > 0) {
            selfbuf[n] = '\0';
            self = selfbuf;
        }
    }
    for (const perf_group_t *const *gp = perf_groups; *gp; gp++) {
        ngroups += group_wanted(*gp, nwant, want);
    }
    for (const perf_group_t *const *gp = perf_groups; *gp; gp++) {
        const perf_group_t *g = *gp;
        size_t len;

        if (!group_wanted(g, nwant, want)) {
            continue;
        }
        len = (size_t)snprintf(what, sizeof(what), "%s:", g->name);
        for (int f = 0; g->figures[f] && len < sizeof(what); f++) {
            if (figure_wanted(g->figures[f], nwant, want)) {
                len += (size_t)snprintf(what + len, sizeof(what) - len,
                                        " %s", g->figures[f]);
            }
        }
        perf_progress_step(++step, ngroups, what, out == NULL);
        failed |= run_group(launcher, self, g, nwant, want, out);
    }
    perf_progress_done();
    return failed;
}

int perf_launch_all(const char *self, int nwant, char **want)
{
    return launch(self, nwant, want, NULL);
}

int perf_launch_to(const char *self, const char *const *figures,
                   const char *out)
{
    int n = 0;

    while (figures != NULL && figures[n] != NULL) {
        n++;
    }
    return launch(self, n, (char **)figures, out);
}

static int perf_nwant;
static char **perf_want;

/* Whether the user asked for this figure (no names: all of them). */
static int perf_is_wanted(const char *figure)
{
    if (perf_nwant == 0) {
        return 1;
    }
    for (int i = 0; i < perf_nwant; i++) {
        if (strcmp(perf_want[i], figure) == 0) {
            return 1;
        }
    }
    return 0;
}

int perf_child(const char *group, int nwant, char **want)
{
    const perf_group_t *g = NULL;
    rh_init_params_t params;
    int rc;

    for (const perf_group_t *const *pp = perf_groups; *pp; pp++) {
        const perf_group_t *p = *pp;

        if (strcmp(p->name, group) == 0) {
            g = p;
        }
    }
    if (g == NULL) {
        fprintf(stderr, "rayhpc-perf: no group %s\n", group);
        return 2;
    }
    perf_nwant = nwant;
    perf_want = want;
    if (perf_register_sync() != RH_OK || (g->setup && g->setup() != 0)) {
        fprintf(stderr, "rayhpc-perf: %s\n", rh_last_error());
        return 1;
    }
    params.field_mask = RH_INIT_PARAM_FIELD_PROGRESS_MODE;
    /* The AM figures want a spinning progress thread; task figures want
     * the cores for the workers. */
    params.progress_mode = g->polling ? RH_PROGRESS_POLLING :
                           RH_PROGRESS_BLOCKING;
    if (rh_init(NULL, NULL, &params) != RH_OK) {
        fprintf(stderr, "rayhpc-perf: rh_init: %s\n", rh_last_error());
        return 1;
    }
    if (rh_size() < g->ranks) {
        fprintf(stderr, "rayhpc-perf: %s needs %d ranks\n", g->name,
                g->ranks);
        rh_finalize();
        return 2;
    }
    rc = g->run(g, strstr(g->name, "_tcp") ? "_tcp" : "", perf_is_wanted);
    if (rh_finalize() != RH_OK) {
        rc = 1;
    }
    return rc;
}
