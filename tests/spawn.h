/*
 * Runs a command line for the multi-rank tests and captures what it prints.
 * Every command runs under coreutils `timeout`, so a hang fails the test
 * instead of stalling the suite.
 */
#ifndef RH_TESTS_SPAWN_H
#define RH_TESTS_SPAWN_H

typedef struct rh_run {
    int   status;   /* exit code, or 128 + signal */
    char *out;      /* stdout and stderr together, NUL-terminated */
} rh_run_t;

/* Runs argv (NULL-terminated) with the extra "NAME=value" strings of env
 * (NULL-terminated, may be NULL) in the environment; gives up after
 * timeout_s seconds (status 124). */
rh_run_t rh_run(const char *const *argv, const char *const *env,
                int timeout_s);
void rh_run_free(rh_run_t *run);

/* Absolute path of a program in the build tree ("tests/multi/hello"). */
const char *rh_build_path(const char *rel);
const char *rh_src_path(const char *rel);

/* How many lines of out contain needle. */
int rh_count_lines(const char *out, const char *needle);

#endif
