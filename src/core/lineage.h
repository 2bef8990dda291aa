/*
 * Fault tolerance of tasks on the owner's side: retries of a task lost with
 * the rank running it, and lineage reconstruction of objects lost with
 * every copy (Ray's ownership design: the owner holds the specs, no other
 * service is involved).
 *
 * The owner records the spec of every task it sends to another rank (its
 * message, and the ids of the objects it takes by ref) while its returns
 * are referenced, within RAYHPC_LINEAGE_MAX_BYTES. Lineage holds no
 * object: an argument released by all goes as it would without it, and a
 * rebuild that needs it fails saying so. A rerun sends the same
 * message, with the same counter, to another rank after a backoff; its
 * answer completes the futures that wait for it again.
 */
#ifndef RH_CORE_LINEAGE_H
#define RH_CORE_LINEAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/future.h"
#include "plasma/object_id.h"
#include "rayhpc.h"

/* max_retries when a task does not say */
#define RH_TASK_RETRIES_DEFAULT 3

/* Records a task sent to rank, whose returns are block b (held by the
 * caller): its header (what of it a rerun needs: name is kept apart) and
 * payload as sent, and the ids of the objects it
 * takes by ref (ours, and others' it borrows), which a rebuild holds again
 * while they are still there; pg (0: none) and bundle, the placement
 * group's bundle it runs in, which a rerun follows to where the bundle is
 * then. The entry hangs off b and goes with it. Best effort: without
 * memory the task has no lineage. */
void rh_lineage_record(rh_fblock_t *b, const char *name, int nreturns,
                       int max_retries, int retry_exceptions, int rank,
                       uint64_t pg, int bundle,
                       const void *hdr, size_t hdr_len, const void *payload,
                       size_t len, const rh_object_id_t *owned, int nowned,
                       const rh_object_id_t *borrowed, int nborrowed);

/* The run of task counter on rank ended without an answer (the rank died:
 * failed 0) or with a failure (failed 1: retried only with
 * retry_exceptions). Returns 1 when it runs again, having taken over the
 * lost run's holds (*held and *borrowed, malloc'd; set to NULL); 0 when it
 * does not, with why in msg when its retries ran out. */
int rh_lineage_retry(uint64_t counter, int rank, int failed,
                     rh_future_t ***held, int *nheld,
                     rh_object_id_t **borrowed, int *nborrowed, char *msg,
                     size_t len);

/* The answer of task counter (of nreturns returns) arrived; or of the
 * task one of whose returns, ret, the caller holds. */
void rh_lineage_ran(uint64_t counter, int nreturns);
void rh_lineage_ran_held(rh_future_t *ret);

/* The answer of the run that is out of the task one of whose returns,
 * ret, the caller holds (its in-flight record was taken, so its entry is
 * running): as rh_lineage_ran_held, without the table's lock when called
 * by the network's token holder (the entry waits in a ring, linked by the
 * lock's next holder). */
void rh_lineage_answered(rh_future_t *ret);

/* rank died: every object of ours that it held the last copy of and that
 * has lineage starts being rebuilt. */
void rh_lineage_peer_failed(int rank);

/* id (ours, READY, on other nodes) could not be read from any of them:
 * 1 when it is being rebuilt (wait for its future again), 0 when it cannot
 * be, with the status and message set (RH_ERR_OBJECT_LOST, or
 * RH_ERR_TASK_FAILED when retries ran out). */
int rh_lineage_rebuild(rh_object_id_t id);

/* Calls fn(arg) on the rerun thread after the backoff of retry number
 * tries (a task run here again); 0 when it cannot (the rank is ending).
 * When the rank ends first, drop(arg) is called instead, at
 * rh_lineage_teardown: with the pool and the network stopped, before the
 * pulls, futures and tables end. */
int rh_retry_later(int tries, void (*fn)(void *arg), void (*drop)(void *arg),
                   void *arg);

/* Changes RAYHPC_LINEAGE_MAX_BYTES at run time (benchmarks). */
void rh_lineage_set_max(size_t max);

/* Entries and bytes kept, and entries dropped for room (tests, stats). */
size_t rh_lineage_count(void);
size_t rh_lineage_bytes(void);
long rh_lineage_dropped(void);

rh_status_t rh_lineage_setup(void);
/* Stops the retry thread (joined; later retries are refused): before the
 * pool it submits to ends. */
void rh_lineage_quiesce(void);
void rh_lineage_teardown(void);

#endif
