/*
 * What the examples share: their arguments, a monotonic clock, and a note
 * when the ranks on this host outnumber its cores (the figures then
 * measure the kernel's time slicing as much as the runtime, and a message
 * waits for its receiver to be scheduled). Header only, next to the
 * examples, so that `cc x.c $(pkg-config --cflags --libs rayhpc)` builds
 * each of them.
 */
#ifndef RAYHPC_EXAMPLES_EXAMPLE_H
#define RAYHPC_EXAMPLES_EXAMPLE_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Argument i as a whole number in [1, max], or def when there are fewer
 * arguments; 0 (with a message) when it is something else. */
static inline long ex_arg(int argc, char **argv, int i, long def, long max)
{
    char *end;
    long v;

    if (argc <= i) {
        return def;
    }
    errno = 0;
    v = strtol(argv[i], &end, 10);
    if (errno != 0 || end == argv[i] || *end != '\0' || v < 1 || v > max) {
        const char *prog = strrchr(argv[0], '/');

        fprintf(stderr, "%s: argument %d, \"%s\", is not a whole number "
                "from 1 to %ld\n", prog != NULL ? prog + 1 : argv[0], i,
                argv[i], max);
        return 0;
    }
    return v;
}

static inline double ex_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Progress of a long run on a terminal: "what: done/total" on one line of
 * stderr, rewritten at most ten times a second; nothing at all when stderr
 * is not a terminal (a pipe or a log gets the results only).
 * ex_progress_end clears the line before the results are printed. */
static inline void ex_progress(const char *what, long done, long total)
{
    static int tty = -1;
    static double last;
    double now;

    if (tty < 0) {
        tty = isatty(STDERR_FILENO);
    }
    now = ex_now();
    if (!tty || (done < total && now - last < 0.1)) {
        return;
    }
    last = now;
    fprintf(stderr, "\r\033[K%s: %ld/%ld (%.0f%%)", what, done, total,
            total > 0 ? 100.0 * (double)done / (double)total : 100.0);
    fflush(stderr);
}

static inline void ex_progress_end(void)
{
    if (isatty(STDERR_FILENO)) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
    }
}

/* Ranks on this host as the launcher tells them: rayhpc-run, Open MPI,
 * MPICH and Slurm (its first node's count) each set one variable. 1 when
 * none is set (a singleton). */
static inline int ex_ranks_on_host(void)
{
    static const char *const vars[] = {
        "RAYHPC_LOCAL_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE",
        "MPI_LOCALNRANKS", "SLURM_STEP_TASKS_PER_NODE"
    };

    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        const char *v = getenv(vars[i]);

        if (v != NULL && atoi(v) > 0) {
            return atoi(v);
        }
    }
    return 1;
}

/* One line saying so when this host's ranks outnumber its cores; nothing
 * otherwise. */
static inline void ex_note_oversubscribed(const char *prog)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int ranks = ex_ranks_on_host();

    if (cores > 0 && ranks > cores) {
        printf("%s: note: %d ranks share this host's %ld cores: ranks wait "
               "for a core, so latencies and rates below are those of an "
               "oversubscribed host\n", prog, ranks, cores);
    }
}

#define EX_GIB (1024.0 * 1024.0 * 1024.0)

#endif
