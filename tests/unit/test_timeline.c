/* The timeline's buffers and files: nothing is recorded while it is off;
 * events of several threads all reach the part and the merged file, each
 * on its thread's track; names are escaped; the parts are merged in rank
 * order into one JSON array and removed; an unwritable path is refused. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "obs/timeline.h"

#define PER_THREAD 10000   /* more than two chunks */

static char path[256];

static void make_path(void)
{
    snprintf(path, sizeof(path), "/tmp/rh-test-timeline.%d.json",
             (int)getpid());
}

static char *slurp(const char *p)
{
    FILE *f = fopen(p, "r");
    char *buf;
    long n;

    cr_assert_not_null(f, "%s was not written", p);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static size_t count(const char *s, const char *what)
{
    size_t n = 0;

    for (const char *p = s; (p = strstr(p, what)) != NULL; p++) {
        n++;
    }
    return n;
}

static void *record_many(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        uint64_t t0 = rh_tl_begin();

        rh_tl_end(RH_TL_TASK, "many", t0, -1, 0);
    }
    return NULL;
}

Test(timeline, off_records_nothing)
{
    uint64_t rec, drop;

    cr_assert_eq(rh_timeline_open("", 0), RH_OK);
    cr_assert_eq(rh_tl_begin(), 0);
    rh_tl_end(RH_TL_TASK, "x", 0, -1, 0);
    rh_timeline_counts(&rec, &drop);
    cr_assert_eq(rec, 0);
    cr_assert_eq(rh_timeline_write_part(0), RH_OK);
    rh_timeline_close();
}

Test(timeline, threads_parts_and_merge)
{
    pthread_t th[3];
    char part[300];
    uint64_t rec, drop;
    char *s;

    make_path();
    /* rank 1 writes its part as another process of the job would */
    cr_assert_eq(rh_timeline_open(path, 1), RH_OK);
    rh_tl_end(RH_TL_PULL, "pull", rh_tl_begin(), 0, 4096);
    cr_assert_eq(rh_timeline_write_part(1), RH_OK);
    rh_timeline_close();

    cr_assert_eq(rh_timeline_open(path, 0), RH_OK);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(pthread_create(&th[i], NULL, record_many, NULL), 0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
    }
    rh_tl_end(RH_TL_FORWARD, "say \"hi\"\\\n", 0, 1, 0);
    rh_tl_spill(rh_tl_begin(), 1000, 0);
    rh_timeline_counts(&rec, &drop);
    cr_assert_eq(rec, 3 * PER_THREAD + 2);
    cr_assert_eq(drop, 0);
    cr_assert_eq(rh_timeline_write_part(0), RH_OK);
    cr_assert_eq(rh_timeline_merge(2), RH_OK);
    rh_timeline_close();

    for (int r = 0; r < 2; r++) {
        snprintf(part, sizeof(part), "%s.rank%d", path, r);
        cr_assert_eq(access(part, F_OK), -1, "%s was left behind", part);
    }
    s = slurp(path);
    unlink(path);
    cr_assert_eq(strncmp(s, "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n",
                         40), 0);
    cr_assert_eq(strcmp(s + strlen(s) - 4, "\n]}\n"), 0);
    cr_assert_eq(count(s, "\"name\":\"many\",\"cat\":\"task\",\"ph\":\"X\""),
                 3 * PER_THREAD);
    /* three recording threads and the main one: four tracks of rank 0 */
    cr_assert_eq(count(s, "\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":0,"),
                 4);
    cr_assert_eq(count(s, "\"cat\":\"pull\",\"ph\":\"X\",\"pid\":1,"), 1);
    cr_assert_neq(strstr(s, "\"args\":{\"peer\":0,\"bytes\":4096}"), NULL);
    cr_assert_neq(strstr(s, "\"name\":\"say \\\"hi\\\"\\\\\\u000a\""), NULL);
    cr_assert_neq(strstr(s, "\"cat\":\"spill\""), NULL);
    cr_assert_neq(strstr(s, "rank 1 (node 1)"), NULL);
    /* one event a line, no separator after the last */
    cr_assert_eq(strstr(s, ",\n]"), NULL);
    cr_assert_eq(strstr(s, "}\n{"), NULL);
    free(s);
}

Test(timeline, missing_part_is_left_out)
{
    char *s;

    make_path();
    cr_assert_eq(rh_timeline_open(path, 0), RH_OK);
    rh_tl_end(RH_TL_WAIT, "wait", rh_tl_begin(), -1, 0);
    cr_assert_eq(rh_timeline_write_part(0), RH_OK);
    cr_assert_eq(rh_timeline_merge(3), RH_OK);
    rh_timeline_close();
    s = slurp(path);
    unlink(path);
    cr_assert_eq(count(s, "\"cat\":\"wait\""), 1);
    free(s);
}

Test(timeline, unwritable_path_is_refused)
{
    cr_assert_eq(rh_timeline_open("/nonexistent-dir/x/trace.json", 0),
                 RH_ERR_CONFIG);
    cr_assert_neq(strstr(rh_last_error(), "/nonexistent-dir/x/trace.json"),
                  NULL, "%s", rh_last_error());
    cr_assert_eq(rh_tl_on, 0);
}
