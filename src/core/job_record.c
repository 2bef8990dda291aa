/*
 * The job's record in the GCS (job_record.h).
 */
#include "core/job_record.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/completion.h"
#include "base/log.h"
#include "base/status.h"
#include "gcs/gcs.h"
#include "gcs/gcs_record.h"

static const char *const rh_job_states[2] = { "running", "finished" };

static struct {
    rh_gcs_record_t *rec;     /* rank 0 only */
    rh_job_record_t  job;     /* what was set last */
    _Atomic int      state;   /* for the show line: -1 none */
} rh_jrec = { .state = -1 };

size_t rh_job_record_format(const rh_job_record_t *j, char *text,
                            size_t cap)
{
    int n;

    if (j->state < RH_JOB_RUNNING || j->state > RH_JOB_FINISHED) {
        return 0;
    }
    n = snprintf(text, cap, "state %s ranks %d nodes %d start %llu end %llu"
                 "\nid %s", rh_job_states[j->state], j->ranks, j->nodes,
                 (unsigned long long)j->start_ms,
                 (unsigned long long)j->end_ms, j->id);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

rh_status_t rh_job_record_parse(const char *text, size_t len,
                                rh_job_record_t *j)
{
    char buf[512], state[16];
    unsigned long long start, end;
    const char *id;
    int used = 0;

    if (len >= sizeof(buf)) {
        return rh_error_set(RH_ERR_MALFORMED, "job record of %zu bytes",
                            len);
    }
    memcpy(buf, text, len);
    buf[len] = '\0';
    memset(j, 0, sizeof(*j));
    if (sscanf(buf, "state %15s ranks %d nodes %d start %llu end %llu%n",
               state, &j->ranks, &j->nodes, &start, &end, &used) != 5 ||
        strncmp(buf + used, "\nid ", 4) != 0 || j->ranks < 1 ||
        j->nodes < 1) {
        return rh_error_set(RH_ERR_MALFORMED, "not a job record: \"%.60s\"",
                            buf);
    }
    j->state = strcmp(state, "running") == 0 ? RH_JOB_RUNNING :
               strcmp(state, "finished") == 0 ? RH_JOB_FINISHED : -1;
    if (j->state < 0) {
        return rh_error_set(RH_ERR_MALFORMED, "job record: state %s", state);
    }
    j->start_ms = start;
    j->end_ms = end;
    id = buf + used + 4;
    if (strlen(id) >= sizeof(j->id) || id[0] == '\0') {
        return rh_error_set(RH_ERR_MALFORMED, "job record: a job id of 1..%zu "
                            "bytes is needed", sizeof(j->id) - 1);
    }
    strcpy(j->id, id);
    return RH_OK;
}

static uint64_t rh_job_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void rh_job_set(void)
{
    char text[512];
    size_t n = rh_job_record_format(&rh_jrec.job, text, sizeof(text));

    if (n == 0 || rh_gcs_record_set(rh_jrec.rec, text, n) != RH_OK) {
        rh_warn("job record: %s", n == 0 ? "it does not fit" :
                rh_last_error());
        return;
    }
    atomic_store(&rh_jrec.state, rh_jrec.job.state);
}

/* The line rayhpc-info --gcs and RAYHPC_GCS_DUMP show on rank 0. */
static void rh_job_show(FILE *out)
{
    int state = atomic_load(&rh_jrec.state);
    rh_gcs_record_t *rec = rh_jrec.rec;
    uint64_t acked = 0, sets = 0;

    if (state < 0 || rec == NULL) {
        return;
    }
    rh_gcs_record_counts(rec, &acked, &sets);
    fprintf(out, "gcs job state %s written %llu of %llu\n",
            rh_job_states[state], (unsigned long long)acked,
            (unsigned long long)sets);
}

void rh_job_record_start(const char *job_id, int ranks, int nodes)
{
    if (rh_rank() != 0 || rh_jrec.rec != NULL) {
        return;
    }
    rh_jrec.rec = rh_gcs_record_new(RH_GCS_T_JOB, RH_JOB_RECORD_KEY,
                                    strlen(RH_JOB_RECORD_KEY));
    if (rh_jrec.rec == NULL) {
        rh_warn("job record: %s", rh_last_error());
        return;
    }
    memset(&rh_jrec.job, 0, sizeof(rh_jrec.job));
    rh_jrec.job.state = RH_JOB_RUNNING;
    rh_jrec.job.ranks = ranks;
    rh_jrec.job.nodes = nodes;
    rh_jrec.job.start_ms = rh_job_now_ms();
    snprintf(rh_jrec.job.id, sizeof(rh_jrec.job.id), "%s",
             job_id != NULL && job_id[0] != '\0' ? job_id : "?");
    rh_gcs_set_show(rh_job_show);
    rh_job_set();
}

void rh_job_record_finish(int64_t timeout_ms)
{
    if (rh_jrec.rec == NULL) {
        return;
    }
    rh_jrec.job.state = RH_JOB_FINISHED;
    rh_jrec.job.end_ms = rh_job_now_ms();
    rh_job_set();
    if (!rh_gcs_record_wait(rh_jrec.rec, rh_time_ns() +
                            (uint64_t)timeout_ms * 1000000ull)) {
        rh_warn("job record: the GCS did not acknowledge the job's end "
                "within %lld ms", (long long)timeout_ms);
    }
}

void rh_job_record_stop(void)
{
    rh_gcs_record_drop(rh_jrec.rec);
    rh_jrec.rec = NULL;
}

rh_status_t rh_job_record_read(rh_job_record_t *j)
{
    void *v = NULL;
    size_t len = 0;
    rh_status_t status;

    if (j == NULL) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "job record: somewhere to "
                            "put it is needed");
    }
    status = rh_gcs_get(RH_GCS_T_JOB, RH_JOB_RECORD_KEY,
                        strlen(RH_JOB_RECORD_KEY), &v, &len, NULL);
    if (status == RH_OK) {
        status = rh_job_record_parse(v, len, j);
    }
    free(v);
    return status;
}
