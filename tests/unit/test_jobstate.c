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

/* ---- a gathered answer, served by a stand-in rank ---------------------- */

static const char gathered[] =
    "rank 0 node 0 nodes 3 size 3 pid 100 job 100-h\n"
    "resources total CPU=2 free CPU=1\n"
    "tasks queued 0 running 1 waiting_deps 0 waiting_res 0 remote 0 run 5 "
    "forwarded 0 spilled 0\n"
    "pulls 0 bytes 0\n"
    "store objects 1 bytes 1000 capacity 1048576 used 1024\n"
    "object 0/1/0 owner 0 size 1000 refs 0 state sealed pid 100\n"
    "end\n"
    "rank 1 node 1 nodes 3 size 3 pid 200 job 100-h\n"
    "resources total CPU=2 free CPU=2\n"
    "tasks queued 0 running 0 waiting_deps 0 waiting_res 0 remote 0 run 7 "
    "forwarded 0 spilled 0\n"
    "pulls 1 bytes 1000\n"
    "store objects 1 bytes 2000 capacity 1048576 used 2048\n"
    "object 1/1/0 owner 1 size 2000 refs 0 state sealed pid 200\n"
    "end\n"
    "unreachable rank 2 node 2: node 2 did not answer within 50 ms (rank 2 "
    "was asked)\n"
    "end\n";

static char served_request[64];

typedef struct stand_in {
    int         lfd;
    const char *answer;
} stand_in_t;

/* Accepts one client, keeps its request line, sends the answer. */
static void *serve_once(void *arg)
{
    stand_in_t *si = arg;
    int c = accept(si->lfd, NULL, NULL);
    size_t n = 0;

    if (c < 0) {
        return NULL;
    }
    while (n + 1 < sizeof(served_request) &&
           recv(c, served_request + n, 1, 0) == 1 &&
           served_request[n] != '\n') {
        n++;
    }
    served_request[n] = '\0';
    (void)send(c, si->answer, strlen(si->answer), MSG_NOSIGNAL);
    close(c);
    return NULL;
}

/* Serves answer as rank 0 of a job directory and prints what the reader
 * makes of it into *text; returns rh_jobstate_print's count. */
static int print_served(const char *answer, char **text)
{
    char dir[64], sock[90];
    size_t len = 0;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    FILE *out = open_memstream(text, &len);
    stand_in_t si = { .answer = answer };
    pthread_t th;
    int n;

    snprintf(dir, sizeof(dir), "/tmp/rh-test-jobgather.%d", (int)getpid());
    cr_assert_eq(mkdir(dir, 0700), 0);
    snprintf(sock, sizeof(sock), "%s/rank0.sock", dir);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
    si.lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    cr_assert_eq(bind(si.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    cr_assert_eq(listen(si.lfd, 4), 0);
    cr_assert_eq(pthread_create(&th, NULL, serve_once, &si), 0);
    n = rh_jobstate_print(dir, out);
    pthread_join(th, NULL);
    fclose(out);
    close(si.lfd);
    unlink(sock);
    rmdir(dir);
    return n;
}

Test(jobstate, a_gathered_job_prints_every_node_and_the_unreachable_ranks)
{
    char *text = NULL;

    rh_jobstate_set_timeout(50);
    cr_assert_eq(print_served(gathered, &text), 2, "%s", text);
    rh_jobstate_set_timeout(0);
    cr_assert_str_eq(served_request, "job 50", "the request was '%s'",
                     served_request);
    cr_assert_neq(strstr(text, "Job 100-h: 3 ranks on 3 nodes; 2 of them "
                         "answered, 1 unreachable\n"), NULL, "%s", text);
    cr_assert_neq(strstr(text, "\nUnreachable\n  rank 2 node 2: node 2 did "
                         "not answer within 50 ms"), NULL, "%s", text);
    cr_assert_neq(strstr(text, "\n  2     (no answer)"), NULL, "%s", text);
    cr_assert_neq(strstr(text, "\n  1     1                        2        "
                         "2\n"), NULL, "%s", text);
    cr_assert_neq(strstr(text, "  node 1 store: 1 objects"), NULL, "%s",
                  text);
    cr_assert_neq(strstr(text, "    1/1/0                         1         "
                         "2000"), NULL, "%s", text);
    free(text);
}

Test(jobstate, an_answer_cut_short_is_not_printed_as_a_job)
{
    /* Without its closing "end" the answer is not trusted: the rank that
     * served it counts as not answering. */
    char *text = NULL;

    cr_assert_eq(print_served("rank 0 node 0 nodes 1 size 1 pid 1 job 1-h\n",
                              &text), 0, "%s", text);
    cr_assert_eq(strstr(text, "Job 1-h"), NULL, "%s", text);
    free(text);
}
