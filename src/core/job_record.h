/*
 * The job's record in the GCS: rank 0 writes it at rh_init (running) and
 * in rh_finalize once every rank arrived (finished), without blocking the
 * start (gcs_record.h), so that what the job is (its id, when it started,
 * its ranks and nodes) and whether it ended can be read from the GCS, also
 * after a replica's death, and by rayhpc-info on a running job.
 *
 * Table RH_GCS_T_JOB, key "job" (the GCS is the job's own). Value, text:
 *   state running|finished ranks R nodes N start MS end MS
 *   id JOB_ID
 * start and end: wall-clock milliseconds since the Unix epoch (end 0 while
 * running).
 */
#ifndef RH_CORE_JOB_RECORD_H
#define RH_CORE_JOB_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "rayhpc.h"

enum { RH_JOB_RUNNING = 0, RH_JOB_FINISHED = 1 };

#define RH_JOB_RECORD_KEY "job"

typedef struct rh_job_record {
    int      state;        /* RH_JOB_RUNNING, RH_JOB_FINISHED */
    int      ranks;
    int      nodes;
    uint64_t start_ms;
    uint64_t end_ms;       /* 0 while running */
    char     id[160];
} rh_job_record_t;

/* The value as text into text (cap bytes): its length, 0 when the state
 * is out of range or it does not fit. */
size_t rh_job_record_format(const rh_job_record_t *j, char *text,
                            size_t cap);

/* Parses a value (len bytes, not terminated): RH_ERR_MALFORMED when it is
 * not a job record. */
rh_status_t rh_job_record_parse(const char *text, size_t len,
                                rh_job_record_t *j);

/* Rank 0, at rh_init once the GCS runs: the running record. Other ranks:
 * nothing. */
void rh_job_record_start(const char *job_id, int ranks, int nodes);

/* Rank 0, in rh_finalize once every rank arrived and while the GCS still
 * serves: the finished record, waiting until it is acknowledged or
 * timeout_ms passed (a GCS without a quorum must not hold the end). */
void rh_job_record_finish(int64_t timeout_ms);

/* Lets go of the record (after the GCS stopped serving). */
void rh_job_record_stop(void);

/* Reads the job's record from the GCS (waits; not on the progress
 * thread): RH_ERR_NOT_FOUND when it holds none. */
rh_status_t rh_job_record_read(rh_job_record_t *j);

#endif
