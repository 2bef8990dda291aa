/*
 * Logging with levels (RAYHPC_LOG_LEVEL). Each line is written with one
 * write(2) so that lines of concurrent threads and ranks never interleave,
 * and is tagged with the rank: "[rayhpc 3 warn] ...".
 */
#ifndef RH_BASE_LOG_H
#define RH_BASE_LOG_H

typedef enum rh_log_level {
    RH_LOG_ERROR = 0,
    RH_LOG_WARN  = 1,
    RH_LOG_INFO  = 2,
    RH_LOG_DEBUG = 3,
    RH_LOG_TRACE = 4
} rh_log_level_t;

extern int rh_log_level;   /* lines above this level are not formatted */

/* Rank shown in each line; -1 until the bootstrap knows it (shows the pid). */
void rh_log_set_rank(int rank);

void rh_log_emit(rh_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define rh_log(_level, ...) \
    do { \
        if ((int)(_level) <= rh_log_level) { \
            rh_log_emit((_level), __VA_ARGS__); \
        } \
    } while (0)

#define rh_error(...) rh_log(RH_LOG_ERROR, __VA_ARGS__)
#define rh_warn(...)  rh_log(RH_LOG_WARN, __VA_ARGS__)
#define rh_info(...)  rh_log(RH_LOG_INFO, __VA_ARGS__)
#define rh_debug(...) rh_log(RH_LOG_DEBUG, __VA_ARGS__)
#define rh_trace(...) rh_log(RH_LOG_TRACE, __VA_ARGS__)

#endif
