/*
 * Where tasks run when nobody names a rank: the bottom-up scheduler.
 *
 * Every rank knows what every rank offers (CPUs and custom resources, from
 * the start-up exchange). A DEFAULT task runs where it was submitted while
 * it fits there and fewer than RAYHPC_SPILLBACK_THRESHOLD tasks per worker
 * wait; otherwise it spills: the submitter asks the global scheduler (rank
 * 0), which picks the feasible rank with the least estimated wait,
 *
 *     backlog / workers x average task time + remote input bytes / bandwidth
 *
 * from the load each rank reports every RAYHPC_HEARTBEAT_MS (plus what it
 * placed since), and the submitter forwards the task there. SPREAD takes
 * the feasible nodes in turn; a task that fits nowhere waits at the global
 * scheduler, with a warning naming what is missing, until it fits.
 */
#ifndef RH_CORE_PLACEMENT_H
#define RH_CORE_PLACEMENT_H

#include <stdint.h>

#include "core/task_internal.h"
#include "rayhpc.h"
#include "sched/resources.h"
#include "transport/blob.h"

/* Marks a task to place by the global scheduler (rh_task_t.forward_to). */
#define RH_PLACE_SPILL (-2)

/* What this rank offers, for its start-up blob. */
void rh_place_describe(char *buf, size_t len);

/* The node's memory (bytes), and the custom resources a rank offers: spec
 * plus its share of the node's memory as "memory" (bytes), unless spec
 * names memory itself. The same rule at the rank and at every other. */
unsigned long long rh_place_node_memory(void);
void rh_place_rank_spec(const char *spec, unsigned long long node_memory,
                        int ranks_on_node, char *out, size_t len);

/* Reads every rank's offer from the blobs (node_of_rank known). */
rh_status_t rh_place_init(const rh_blob_set_t *set, const int *node_of_rank,
                          int num_nodes);

/* Handlers (before rh_init's exchange); heartbeats (before the progress
 * thread starts); the end. */
rh_status_t rh_place_setup(void);
void rh_place_start(void);
void rh_place_teardown(void);

/* Where a new task goes: -1 here, a rank, or RH_PLACE_SPILL. req is what it
 * asks for (NULL: one CPU). Errors: a hard NODE_AFFINITY to no node. */
rh_status_t rh_place_decide(const rh_task_params_t *params,
                            const rh_res_req_t *req, int *rank);

/* Asks the global scheduler where t goes, then sends it there (or runs it
 * here). */
void rh_place_spill(rh_task_t *t);

/* Whether some rank of node could ever run req; else writes what is
 * missing. node -1: any node. */
int rh_place_feasible(int node, const rh_res_req_t *req, char *why,
                      size_t len);

/* A live rank of node that could run req, taking turns (-1: none). */
int rh_place_rank_on(int node, const rh_res_req_t *req);

/* A task's strategy as submitted, packed for its reruns (rh_fwd_submit_t,
 * lineage): the strategy, RH_PLACE_SOFT, and NODE_AFFINITY's node above
 * RH_PLACE_NODE_SHIFT. 0 is DEFAULT. */
#define RH_PLACE_STRATEGY_MASK 3u
#define RH_PLACE_SOFT          4u
#define RH_PLACE_NODE_SHIFT    8
uint32_t rh_place_pack(const rh_task_params_t *params);

/* Where a task placed as place (rh_place_pack) asking for req (NULL: one
 * CPU), lost with rank lost (or failed there: -1 when none), runs again:
 * a live rank that offers req, on its node for a NODE_AFFINITY (a soft
 * one: anywhere once no rank there has room), this rank only when no
 * other offers it with room. -1, with why, when no live rank offers it:
 * it would wait for ever. */
int rh_place_rerun_rank(uint32_t place, const rh_res_req_t *req, int lost,
                        char *why, size_t len);

/* Whether rank r offers what req asks for (NULL: one CPU), apart from the
 * CPUs placement groups' bundles reserve there. */
int rh_place_rank_fits(int r, const rh_res_req_t *req);

/* Every rank's view of the CPUs bundles reserve on rank r: delta more
 * (placed) or fewer (removed). */
void rh_place_bundle_cpus(int r, int delta);

/* The global scheduler's books of what placement groups hold (pgroup.c
 * keeps the groups, placement the books; each call takes the books' lock).
 * Places bundles[0..n) on live ranks by strategy and holds what they ask
 * for there, all or none: 1 with the ranks in ranks[], 0 (books untouched)
 * when it cannot be done now. */
int rh_place_gs_hold_group(const rh_res_req_t *bundles, int n,
                           rh_pg_strategy_t strategy, int *ranks);

/* The same for the bundles whose ranks[b] is -1 (their rank died), the
 * others staying where they are: the strategy then counts the nodes those
 * use (STRICT_PACK: their node only; STRICT_SPREAD: other nodes only).
 * All or none: 1 with the new ranks in ranks[], 0 (books and ranks
 * untouched) when they do not fit now. */
int rh_place_gs_hold_bundles(const rh_res_req_t *bundles, int n,
                             rh_pg_strategy_t strategy, int *ranks);

/* Gives back what rh_place_gs_hold_group held for these bundles (those
 * with ranks[b] -1 hold nothing). */
void rh_place_gs_release_group(const rh_res_req_t *bundles, int n,
                               const int *ranks);

/* Tries the tasks waiting at the global scheduler again. */
void rh_place_gs_retry(void);

/* CPUs an actor of this rank holds for its life: delta more (it kept its
 * creation's) or fewer (it ended). Each heartbeat tells the global
 * scheduler, which places no bundle on them and, once they are fewer,
 * tries again the groups that found no room. */
void rh_place_actor_cpus(int delta);

/* The global scheduler's view of the CPUs actors hold on rank r (0
 * elsewhere). */
int rh_place_gs_actor_cpus(int r);

/* A task ran for ns (sampled): feeds the average the heartbeats carry. */
void rh_place_task_time(uint64_t ns);

/* A task that the global scheduler placed on this rank came. */
void rh_place_arrived(void);

/* Tasks this rank spilled. */
uint64_t rh_place_spilled(void);

#endif
