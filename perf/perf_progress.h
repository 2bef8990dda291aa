/*
 * Progress of long runs on a terminal: one line on stderr, rewritten in
 * place ("[3/11] tasks: local_tasks ..."), and nothing at all when stderr
 * is not a terminal (logs and pipes get only the results).
 */
#ifndef RH_PERF_PROGRESS_H
#define RH_PERF_PROGRESS_H

#include <stdio.h>
#include <unistd.h>

static inline int perf_progress_on(void)
{
    static int on = -1;

    if (on < 0) {
        on = isatty(STDERR_FILENO);
    }
    return on;
}

/* Step i of n (from 1) begins: what. With `line`, the step gets a line
 * of its own (the step's output follows on the terminal). */
static inline void perf_progress_step(int i, int n, const char *what,
                                      int line)
{
    if (perf_progress_on()) {
        fprintf(stderr, "\r\033[K[%d/%d] %s ...%s", i, n, what,
                line ? "\n" : "");
        fflush(stderr);
    }
}

/* Clears the line before other output, or at the end. */
static inline void perf_progress_done(void)
{
    if (perf_progress_on()) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
    }
}

#endif
