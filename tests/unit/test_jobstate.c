/* The job state's pieces that need no job: counters from many threads add
 * up, the socket directory of a job id is a safe path that fits a unix
 * socket, a job whose ranks are gone reads as none and its stale sockets
 * are removed, and asking for a job that is not running says so. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "obs/jobstate.h"

#define PER_THREAD 100000

static void *count_many(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        rh_js_count(RH_JS_QUEUED);
        if (i % 2 == 0) {
            rh_js_count(RH_JS_STARTED);
        }
    }
    return NULL;
}

Test(jobstate, counters_of_all_threads_add_up)
{
    uint64_t before[RH_JS_COUNTERS], after[RH_JS_COUNTERS];
    pthread_t th[4];

    rh_js_totals(before);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(pthread_create(&th[i], NULL, count_many, NULL), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);   /* ended threads still count */
    }
    rh_js_totals(after);
    cr_assert_eq(after[RH_JS_QUEUED] - before[RH_JS_QUEUED],
                 4u * PER_THREAD);
    cr_assert_eq(after[RH_JS_STARTED] - before[RH_JS_STARTED],
                 2u * PER_THREAD);
    cr_assert_eq(after[RH_JS_FINISHED], before[RH_JS_FINISHED]);
}

Test(jobstate, dir_is_a_safe_short_path)
{
    char dir[256], want[64], id[300];

    rh_jobstate_dir("123-host/with space", dir, sizeof(dir));
    snprintf(want, sizeof(want), "/tmp/rayhpc-%u/123-host_with_space",
             (unsigned)getuid());
    cr_assert_str_eq(dir, want);
    memset(id, 'x', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    rh_jobstate_dir(id, dir, sizeof(dir));
    /* room left for "/rank12345.sock" in sun_path */
    cr_assert_lt(strlen(dir) + 16, sizeof(((struct sockaddr_un *)0)->sun_path));
}

Test(jobstate, gone_job_reads_as_none_and_is_cleaned)
{
    char dir[64], sock[90];
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    snprintf(dir, sizeof(dir), "/tmp/rh-test-jobstate.%d", (int)getpid());
    cr_assert_eq(mkdir(dir, 0700), 0);
    snprintf(sock, sizeof(sock), "%s/rank0.sock", dir);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);   /* bound, never listening: as a rank that died */
    cr_assert_eq(rh_jobstate_print(dir, stdout), 0);
    cr_assert_eq(access(sock, F_OK), -1, "the stale socket is still there");
    cr_assert_eq(access(dir, F_OK), -1, "the job's directory is still there");
}

Test(jobstate, asking_for_a_missing_job_says_so)
{
    char *text = NULL;
    size_t len = 0;
    FILE *err = open_memstream(&text, &len);

    cr_assert_eq(rh_jobstate_print_jobs("0-no-such-job", stdout, err), 1);
    fclose(err);
    cr_assert_neq(strstr(text, "no rank of job 0-no-such-job answers"),
                  NULL, "%s", text);
    free(text);
}
