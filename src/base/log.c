#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

int rh_log_level = RH_LOG_WARN;
static int rh_log_rank = -1;

static const char *const rh_log_names[] = {
    "error", "warn", "info", "debug", "trace"
};

void rh_log_set_rank(int rank)
{
    rh_log_rank = rank;
}

void rh_log_emit(rh_log_level_t level, const char *fmt, ...)
{
    char line[1024];
    int n;
    va_list ap;

    if (rh_log_rank >= 0) {
        n = snprintf(line, sizeof(line), "[rayhpc %d %s] ", rh_log_rank,
                     rh_log_names[level]);
    } else {
        n = snprintf(line, sizeof(line), "[rayhpc pid %d %s] ", (int)getpid(),
                     rh_log_names[level]);
    }
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 2) {
        n = (int)sizeof(line) - 2;
    }
    line[n++] = '\n';
    /* One write per line: no interleaving with other threads or ranks. */
    if (write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* Nowhere left to report a failure to report. */
    }
}
