/*
 * The node table through the GCS (table RH_GCS_T_NODE, docs/gcs.md): each
 * rank writes its record at start, the first rank of each node the node's,
 * and each rank its load and liveness at every GCS heartbeat (never per
 * task). The GCS itself adds dead/<rank> when it drops a rank. Keys and
 * values are text, one record a value:
 *   rank/R  "rank R node N host H pid P resources CPU=4 gpu=1"
 *   node/N  "node N host H ranks R1 R2 ..."
 *   load/R  "rank R beat K backlog B free CPU=2 gpu=1"
 */
#ifndef RH_CORE_NODETAB_H
#define RH_CORE_NODETAB_H

#include <stdint.h>

#include "rayhpc.h"

/* rh_init, once the GCS runs: writes this rank's records and starts the
 * load beat (a failure is logged: the job runs without them). */
void rh_nodetab_start(void);
/* rh_finalize, once the progress thread ended: the beat stops, the
 * records are let go (the GCS still holds them). */
void rh_nodetab_stop(void);

/* Sets of this rank's records acknowledged and made (tests: equal once the
 * GCS holds what this rank wrote last). */
void rh_nodetab_counts(uint64_t *acked, uint64_t *sets);

#endif
