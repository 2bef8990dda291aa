/*
 * A record this rank keeps up to date in the GCS (its node record, its
 * load, a placement group's state): setting it never blocks, and the
 * latest value set is the one that ends up stored. One write of a record
 * is in flight at a time, so its writes apply in the order they were set
 * even across retries and reconfigurations; a value set meanwhile replaces
 * any other still waiting. A delete takes its turn the same way.
 */
#ifndef RH_GCS_GCS_RECORD_H
#define RH_GCS_GCS_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "gcs/gcs.h"

typedef struct rh_gcs_record rh_gcs_record_t;

/* A record of key in table (nothing written yet); NULL and an error set
 * when the table or key is out of range or memory ran out. */
rh_gcs_record_t *rh_gcs_record_new(int table, const void *key, size_t klen);

/* Copies value and writes it (now, or once the write in flight ended).
 * From any thread, the progress thread too. */
rh_status_t rh_gcs_record_set(rh_gcs_record_t *r, const void *value,
                              size_t vlen);

/* Deletes the key (now, or once the write in flight ended), in its turn
 * among the sets. From any thread. */
rh_status_t rh_gcs_record_delete(rh_gcs_record_t *r);

/* The same with a stamp (rh_gcs_sput_async, rh_gcs_sdel_async): for a
 * record that other processes, not ordered with this one, write or delete
 * too. A set overtaken by a later stamp counts as acknowledged. */
rh_status_t rh_gcs_record_set_stamped(rh_gcs_record_t *r, const void *value,
                                      size_t vlen, uint64_t stamp);
rh_status_t rh_gcs_record_delete_stamped(rh_gcs_record_t *r, uint64_t stamp);

/* Waits until every set and delete made so far ended (1), or the deadline
 * (rh_time_ns; 0: none) passed (0). Not on the progress thread (0). */
int rh_gcs_record_wait(rh_gcs_record_t *r, uint64_t deadline_ns);

/* Sets acknowledged so far, and sets made: equal once the GCS holds the
 * latest value (a failed write counts as acknowledged: the GCS had no
 * quorum or stopped; the next set writes again). */
void rh_gcs_record_counts(rh_gcs_record_t *r, uint64_t *acked,
                          uint64_t *sets);

/* The owner lets go: the value set last is still written, then the record
 * is freed. */
void rh_gcs_record_drop(rh_gcs_record_t *r);

#endif
