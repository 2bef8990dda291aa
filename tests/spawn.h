/*
 * Runs a command line for the multi-rank tests and captures what it prints.
 * Every command runs under coreutils `timeout`, so a hang fails the test
 * instead of stalling the suite.
 */
#ifndef RH_TESTS_SPAWN_H
#define RH_TESTS_SPAWN_H

#include <stddef.h>

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

/* `rayhpc-run -n n [--nodes nodes] [--keep-going] prog [arg]`, prog in the
 * build tree; nodes 0 leaves the node count to the launcher. */
rh_run_t rh_launch(int n, int nodes, int keep_going, const char *prog,
                   const char *arg, const char *const *env, int timeout_s);

/* Absolute path of a program in the build tree ("tests/multi/hello"). */
const char *rh_build_path(const char *rel);
const char *rh_src_path(const char *rel);

/* How many lines of out contain needle. */
int rh_count_lines(const char *out, const char *needle);

/* How many files start with path_prefix ("/dev/shm/rayhpc-123-"). */
int rh_count_matching_files(const char *path_prefix);

/* The last n bytes of out (all of it when shorter), for failure messages. */
const char *rh_tail(const char *out, size_t n);

/* In criterion tests: the run exited 0, or the failure shows how its
 * output ended. */
#define RH_EXPECT_EXIT0(run)                                               \
    cr_expect_eq((run).status, 0, "exited with status %d; output ends:\n%s", \
                 (run).status, rh_tail((run).out, 3000))

/* In criterion tests: exactly n lines of the run's output contain needle,
 * or the failure shows how the output ended. */
#define RH_EXPECT_LINES(run, needle, n)                                     \
    cr_expect_eq(rh_count_lines((run).out, (needle)), (n),                  \
                 "not %d lines with \"%s\"; output ends:\n%s", (n),         \
                 (needle), rh_tail((run).out, 3000))

#endif
