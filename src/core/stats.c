/* rh_stats: what this rank did, from each module's own counters. */
#include <stdatomic.h>
#include <string.h>

#include "base/status.h"
#include "core/admit.h"
#include "core/core.h"
#include "core/placement.h"
#include "core/pull.h"
#include "core/task_internal.h"
#include "plasma/store.h"
#include "sched/pool.h"
#include "transport/am.h"

rh_status_t rh_stats(rh_stats_t *stats)
{
    rh_pool_stats_t ps;
    rh_store_stats_t ss;

    if (stats == NULL) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_stats needs stats");
    }
    if (!rh_core_initialized()) {
        return rh_error_set(RH_ERR_NOT_INITIALIZED, "call rh_init first");
    }
    memset(stats, 0, sizeof(*stats));
    memset(&ps, 0, sizeof(ps));
    rh_pool_stats(rh_core_pool(), &ps);
    stats->tasks_run = ps.total.jobs_run;
    stats->tasks_forwarded = rh_forward_count();
    stats->tasks_spilled = rh_place_spilled();
    rh_pull_counters(&stats->pulls, &stats->bytes_pulled,
                     &stats->pulls_joined);
    stats->pull_sources = rh_pull_source_count();
    stats->tasks_remote = (uint64_t)rh_admit_out();
    stats->msgs_batched = atomic_load_explicit(&rh_am_stats()->batched,
                                               memory_order_relaxed);
    stats->batches_sent = atomic_load_explicit(&rh_am_stats()->batches,
                                               memory_order_relaxed);
    if (rh_store_stats(rh_core_store(), &ss) == RH_OK) {
        stats->store_objects = ss.objects;
        stats->store_bytes = ss.object_bytes;
        stats->store_capacity = ss.capacity;
        stats->store_used = ss.used;
        stats->spilled_objects = ss.spilled_objects;
        stats->spilled_bytes = ss.spilled_bytes;
        stats->spill_files = ss.spill_files;
        stats->spill_written = ss.spill_written;
        stats->restores = ss.restores;
        stats->restored_bytes = ss.restored_bytes;
        stats->evictions = ss.evictions;
        stats->evicted_bytes = ss.evicted_bytes;
        stats->store_fragmentation = ss.fragmentation;
    }
    return RH_OK;
}
