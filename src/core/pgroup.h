/*
 * Placement groups: bundles of resources reserved on nodes, which tasks are
 * then scheduled into.
 *
 * The creating rank owns the group. The global scheduler (rank 0) places the
 * bundles against what ranks offer minus what other groups hold, following
 * the strategy, and each chosen rank reserves its bundle (Ray's renaming:
 * the bundle's CPUs and resources move to names that only its tasks ask
 * for, resources.h). A group that cannot be placed waits at the global
 * scheduler, with a warning, and is tried again whenever a group goes.
 */
#ifndef RH_CORE_PGROUP_H
#define RH_CORE_PGROUP_H

#include "core/task_internal.h"
#include "rayhpc.h"
#include "sched/resources.h"

#define RH_PG_NOT_GROUPED (-3)  /* rh_pg_route: not a placement-group task */
#define RH_PG_WAIT        (-4)  /* rh_task_t.forward_to: group not placed */

/* For a task with the PLACEMENT_GROUP strategy: rewrites *res into the
 * bundle's names and sets *rank (-1 here, a rank, or RH_PG_WAIT while the
 * group is pending). Other strategies: *rank = RH_PG_NOT_GROUPED. */
rh_status_t rh_pg_route(const rh_task_params_t *params, rh_res_req_t **res,
                        int *rank);

/* Keeps t (forward_to RH_PG_WAIT) until its group is placed, or its
 * bundle, whose rank died, is placed again; sends it there then, or fails
 * it (the group was removed, or the bundle fits nowhere now). */
void rh_pg_hold(rh_task_t *t);

/* Where a task of bundle `bundle` of pg, lost with its rank, runs again:
 * 1 with *rank (the bundle's live rank, which may be this one); 0 while
 * the global scheduler places the bundle again: fn(key) is called (on the
 * progress thread) when the group's placement changes, to ask again; -1
 * when it cannot run again, with why naming the group (removed, or the
 * bundle lost with its rank and no room for it anywhere). */
int rh_pg_rerun_rank(rh_pg_t pg, int bundle, int *rank,
                     void (*fn)(uint64_t key), uint64_t key, char *why,
                     size_t len);

/* A group's record in the GCS (table RH_GCS_T_PGROUP, key "pg/<id in
 * hex>"), written by the global scheduler when the group is created
 * (pending), placed, removed, and when a bundle's rank dies; its value is
 * text:
 *   owner R strategy PACK state placed bundles N ranks R1..RN cpus C1..CN
 * (ranks and cpus only once placed). State rescheduling: a bundle lost
 * with its rank found no room elsewhere (its rank is -1) and waits for a
 * group to go. Any rank reads it back here. */
enum { RH_PG_REC_PENDING = 0, RH_PG_REC_PLACED = 1, RH_PG_REC_REMOVED = 2,
       RH_PG_REC_RESCHEDULING = 3 };

typedef struct rh_pg_record {
    int  owner;
    int  strategy;   /* rh_pg_strategy_t */
    int  state;      /* RH_PG_REC_* */
    int  n;          /* bundles */
    int *ranks;      /* placed: each bundle's rank (rescheduling: -1 for
                      * one with no place), else NULL (malloc) */
    int *nodes;      /* each bundle's node likewise */
    int *cpus;       /* placed: each bundle's CPUs, else NULL (malloc) */
} rh_pg_record_t;

/* Reads pg's record from the GCS (not on the progress thread):
 * RH_ERR_NOT_FOUND when the GCS has none, RH_ERR_MALFORMED when it cannot
 * be read; free it with rh_pg_record_free. */
rh_status_t rh_pg_record_read(rh_pg_t pg, rh_pg_record_t *rec);
void rh_pg_record_free(rh_pg_record_t *rec);

/* Global scheduler, progress thread: resources that bundles compete for
 * were let go (an actor that held CPUs ended); the groups waiting for
 * room and the bundles lost with their rank are tried again, then the
 * tasks waiting for room. */
void rh_pg_gs_room_freed(void);

rh_status_t rh_pg_setup(void);
void rh_pg_teardown(void);

#endif
