#include "spawn.h"

#include <dirent.h>
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *rh_path_in(const char *var, const char *rel)
{
    static char paths[16][1024];
    static int next;
    const char *dir = getenv(var);
    char *p = paths[next++ % 16];

    snprintf(p, 1024, "%s/%s", dir ? dir : ".", rel);
    return p;
}

const char *rh_build_path(const char *rel)
{
    return rh_path_in("RH_TEST_BUILDDIR", rel);
}

const char *rh_src_path(const char *rel)
{
    return rh_path_in("RH_TEST_SRCDIR", rel);
}

rh_run_t rh_launch(int n, int nodes, int keep_going, const char *prog,
                   const char *arg, const char *const *env, int timeout_s)
{
    const char *argv[16];
    char nbuf[16], mbuf[16];
    int k = 0;

    snprintf(nbuf, sizeof(nbuf), "%d", n);
    snprintf(mbuf, sizeof(mbuf), "%d", nodes);
    argv[k++] = rh_build_path("rayhpc-run");
    argv[k++] = "-n";
    argv[k++] = nbuf;
    if (nodes > 0) {
        argv[k++] = "--nodes";
        argv[k++] = mbuf;
    }
    if (keep_going) {
        argv[k++] = "--keep-going";
    }
    argv[k++] = rh_build_path(prog);
    if (arg != NULL) {
        argv[k++] = arg;
    }
    argv[k] = NULL;
    return rh_run(argv, env, timeout_s);
}

static char **rh_run_env(const char *const *extra)
{
    size_t n = 0, m = 0, k = 0;
    char **env;

    while (environ[n]) {
        n++;
    }
    while (extra && extra[m]) {
        m++;
    }
    env = calloc(n + m + 1, sizeof(*env));
    for (size_t i = 0; i < m; i++) {
        env[k++] = (char *)extra[i];
    }
    for (size_t i = 0; i < n; i++) {
        int overridden = 0;

        for (size_t j = 0; j < m; j++) {
            size_t len = strcspn(extra[j], "=");

            if (strncmp(environ[i], extra[j], len + 1) == 0) {
                overridden = 1;
            }
        }
        if (!overridden) {
            env[k++] = environ[i];
        }
    }
    return env;
}

rh_run_t rh_run(const char *const *argv, const char *const *env,
                int timeout_s)
{
    rh_run_t run = { -1, NULL };
    char tbuf[32];
    const char *full[64];
    size_t n = 0, cap = 65536, len = 0;
    posix_spawn_file_actions_t fa;
    char **envp = rh_run_env(env);
    int pipefd[2], wstatus;
    pid_t pid;

    snprintf(tbuf, sizeof(tbuf), "%d", timeout_s);
    full[n++] = "timeout";
    full[n++] = "-k";
    full[n++] = "5";
    full[n++] = tbuf;
    for (size_t i = 0; argv[i] && n < 63; i++) {
        full[n++] = argv[i];
    }
    full[n] = NULL;
    run.out = malloc(cap);
    if (pipe(pipefd) != 0) {
        abort();
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
    posix_spawn_file_actions_addclose(&fa, pipefd[0]);
    posix_spawn_file_actions_addclose(&fa, pipefd[1]);
    if (posix_spawnp(&pid, "timeout", &fa, NULL, (char *const *)full,
                     envp) != 0) {
        abort();
    }
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    for (;;) {
        ssize_t r;

        if (cap - len < 4096) {
            cap *= 2;
            run.out = realloc(run.out, cap);
        }
        r = read(pipefd[0], run.out + len, cap - len - 1);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            break;
        }
        len += (size_t)r;
    }
    run.out[len] = '\0';
    close(pipefd[0]);
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    run.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) :
                 128 + WTERMSIG(wstatus);
    free(envp);
    /* The whole output goes to the test log: it is what one reads when a
     * test fails. */
    fprintf(stderr, "$");
    for (size_t i = 4; full[i]; i++) {
        fprintf(stderr, " %s", full[i]);
    }
    fprintf(stderr, "\n%s[exit status %d]\n", run.out, run.status);
    return run;
}

void rh_run_free(rh_run_t *run)
{
    free(run->out);
    run->out = NULL;
}

int rh_count_lines(const char *out, const char *needle)
{
    int n = 0;
    const char *line = out;

    while (line && *line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);

        if (memmem(line, len, needle, strlen(needle)) != NULL) {
            n++;
        }
        line = end ? end + 1 : NULL;
    }
    return n;
}

const char *rh_tail(const char *out, size_t n)
{
    size_t len;

    if (out == NULL) {
        return "";
    }
    len = strlen(out);
    return len > n ? out + len - n : out;
}

int rh_count_matching_files(const char *path_prefix)
{
    const char *slash = strrchr(path_prefix, '/');
    char dir[512];
    struct dirent *e;
    int n = 0;
    DIR *d;

    if (slash == NULL) {
        return 0;
    }
    snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path_prefix),
             path_prefix);
    d = opendir(dir[0] != '\0' ? dir : "/");
    if (d == NULL) {
        return 0;
    }
    while ((e = readdir(d)) != NULL) {
        n += strncmp(e->d_name, slash + 1, strlen(slash + 1)) == 0;
    }
    closedir(d);
    return n;
}
