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

/* Keeps t (forward_to RH_PG_WAIT) until its group is placed. */
void rh_pg_hold(rh_task_t *t);

rh_status_t rh_pg_setup(void);
void rh_pg_teardown(void);

#endif
