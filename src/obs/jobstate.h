/*
 * The state of a running job, for rayhpc-info --job and RAYHPC_SUMMARY.
 *
 * Each rank counts its tasks as they pass (per-thread counters: a plain
 * store by the thread that owns them, no lock, no shared cache line) and
 * serves a snapshot of itself on a unix socket,
 * /tmp/rayhpc-UID/JOB/rankN.sock, from a thread that sleeps in accept().
 * The snapshot is text, one record a line:
 *   rank R node N nodes M size S pid P job JOB
 *   resources total CPU=4 gpu=1 free CPU=2 gpu=1
 *   tasks queued Q running R waiting_deps D waiting_res W remote O run N
 *         forwarded F spilled S
 *   pulls N bytes B
 *   store objects N bytes B capacity C used U       (the node's first rank)
 *   object ID owner R size B refs K state sealed pid P    (idem, each)
 *   gcs ...        (the GCS's part: rh_gcs_snapshot in src/gcs/gcs.h)
 *   end
 * A reader (rh_jobstate_print) asks one rank of the job on this host for
 * the whole job (request "job MS"): that rank gathers every node's
 * snapshots (jobgather.h) and the reader prints nodes, ranks, resources,
 * tasks and objects, and the ranks that could not be reached. The request
 * "rank" gets the rank's own snapshot only (a node's ranks ask each other
 * so).
 */
#ifndef RH_OBS_JOBSTATE_H
#define RH_OBS_JOBSTATE_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "base/status.h"

typedef enum rh_js_counter {
    RH_JS_CREATED = 0,   /* tasks built on this rank */
    RH_JS_READY,         /* of those, with all their arguments */
    RH_JS_QUEUED,        /* tasks given to this rank's workers */
    RH_JS_STARTED,       /* of those, taken up by a worker (run or failed) */
    RH_JS_FINISHED,      /* of those, done */
    RH_JS_COUNTERS
} rh_js_counter_t;

typedef struct rh_js_thread {
    _Atomic uint64_t     n[RH_JS_COUNTERS];
    struct rh_js_thread *next;
} rh_js_thread_t;

extern _Thread_local rh_js_thread_t *rh_js_mine;
rh_js_thread_t *rh_js_attach(void);

/* Counts one event of kind c on this thread. */
static inline void rh_js_count(rh_js_counter_t c)
{
    rh_js_thread_t *t = rh_js_mine;

    if (rh_unlikely(t == NULL)) {
        t = rh_js_attach();
    }
    atomic_store_explicit(&t->n[c], atomic_load_explicit(
                          &t->n[c], memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* The counters summed over every thread. */
void rh_js_totals(uint64_t out[RH_JS_COUNTERS]);

/* rh_init, once the rank runs: serves its snapshot (a failure is only
 * logged: a job runs without it). rh_finalize: stops serving. */
void rh_jobstate_start(const char *job_id);
void rh_jobstate_stop(void);

/* Writes this rank's snapshot (the text above) to f. */
void rh_jobstate_snapshot(FILE *f);

/* The directory of the job's sockets on this host. */
int rh_jobstate_dir(const char *job_id, char *buf, size_t len);

/* Asks the ranks given, of this rank's job on this host, for their own
 * snapshots on their sockets, all at once, until deadline (rh_time_ns):
 * texts[i] is the answer (malloc'd), or NULL and why[i] says why. */
void rh_jobstate_ask_ranks(const int *ranks, int n, uint64_t deadline,
                           char **texts, const char **why);

/* How long the rank asked may gather the other nodes' state (rayhpc-info
 * --timeout; RH_JOBGATHER_TIMEOUT_MS by default). */
void rh_jobstate_set_timeout(int timeout_ms);

/* Asks a rank of the job whose socket directory is dir for the whole job
 * and prints the report. Returns the number of ranks that answered; 0
 * when none did (the job is gone: its stale sockets are removed). */
int rh_jobstate_print(const char *dir, FILE *out);

/* Prints the report of a gathered answer (rh_jobgather_run's text), or
 * only its GCS part; returns the ranks in it. */
int rh_jobstate_print_text(const char *text, FILE *out, int gcs_only);

/* RAYHPC_SUMMARY: gathers the job from this rank and prints the report;
 * returns the ranks that answered. */
int rh_jobstate_print_gathered(FILE *out);

/* rayhpc-info --job [JOB]: the report for JOB, or for every job of this
 * user running on this host; failing that, for the jobs of the contact
 * records (jobremote.h), which rayhpc-info --remote and --contact use
 * alone. Returns 0 when one answered, 1 when none is running (said on
 * err). */
int rh_jobstate_print_jobs(const char *job, FILE *out, FILE *err);

/* rayhpc-info --gcs [JOB]: the same, with only the GCS's part of the
 * report (its configuration and each rank's replicas). */
int rh_jobstate_print_gcs(const char *dir, FILE *out);
int rh_jobstate_print_gcs_jobs(const char *job, FILE *out, FILE *err);

#endif
