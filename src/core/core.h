/* Internal view of the core for the other modules and the tools. */
#ifndef RH_CORE_CORE_H
#define RH_CORE_CORE_H

#include <stdint.h>

#include "rayhpc.h"
#include "plasma/object_id.h"

struct rh_store;
struct rh_pool;

int rh_core_initialized(void);

/* Node index of a rank (-1 when out of range). */
int rh_core_node_of(int rank);

/* The job's id ("pid-host" of rank 0) and the first rank of this node. */
const char *rh_core_job_id(void);
int rh_core_node_leader(void);

/* This node's object store and this rank's worker pool. */
struct rh_store *rh_core_store(void);
struct rh_pool *rh_core_pool(void);

/* Whether the rank is ending: the progress thread takes no new tasks. */
int rh_core_closing(void);

/* Absolute deadline for a timeout in ms (0: none). */
uint64_t rh_deadline(int64_t timeout_ms);

/* rh_store_create for a new object of this rank (a put, a task's return):
 * waits up to RAYHPC_PUT_TIMEOUT_MS while the store is full of objects
 * being read or written, then RH_ERR_STORE_FULL saying why. */
rh_status_t rh_object_create(rh_object_id_t id, size_t len, void **ptr);

/* rh_store_get, waiting the same way while a spilled object cannot be read
 * back because the store is full of objects being read or written: up to
 * RAYHPC_PUT_TIMEOUT_MS, or to deadline (rh_time_ns; 0: none) when that
 * comes first. */
rh_status_t rh_object_get_stored(rh_object_id_t id, const void **ptr,
                                 size_t *len, uint64_t deadline);

/* Gives back n store references that the gets of an ended future held. */
void rh_object_unpin(rh_object_id_t id, int n);

/* Waits until cond(arg) holds (1) or the deadline passes (0). On a worker
 * it runs other tasks meanwhile; elsewhere it sleeps between completions
 * of this rank's futures. */
int rh_core_wait_until(int (*cond)(void *arg), void *arg, uint64_t deadline);

/* The same for conditions that other ranks change (the store): it looks
 * again at least every millisecond. */
int rh_core_wait_until_polled(int (*cond)(void *arg), void *arg,
                              uint64_t deadline);

/* rh_finalize, once the job is over on every rank, ends the waits of the
 * user's other threads (their calls return RH_ERR_SHUTDOWN) and lets them
 * leave, for up to timeout_ms, before it frees anything they read. The calls that read futures after
 * waiting (rh_get, rh_get_many, rh_wait) hold the thread counted until
 * they return, between call_begin and call_end. */
void rh_core_end_waits(int64_t timeout_ms);
/* At the end of rh_finalize: a later rh_init (a singleton) waits again. */
void rh_core_end_waits_over(void);
int rh_core_ending_now(void);
void rh_core_call_begin(void);
void rh_core_call_end(void);
/* A thread of the runtime's own (an actor's, the rerun thread): its waits
 * are not the user's and go on through rh_finalize. */
void rh_core_runtime_thread(void);
/* Threads counted now (tests). */
int rh_core_waiters(void);

/* The wait of a task whose resources outlive it (an actor's creation,
 * whose CPUs the actor keeps): they are not lent to other tasks meanwhile,
 * which would keep them too. */
int rh_core_wait_until_keeping(int (*cond)(void *arg), void *arg,
                               uint64_t deadline);

/* Variants for conditions that only load atomics (RH_POOL_WAIT_PURE):
 * a parked waiter is then woken only when its condition holds. */
int rh_core_wait_until_pure(int (*cond)(void *arg), void *arg,
                            uint64_t deadline);

/* Inside a task that holds CPUs: lends them (to the rank, or to its
 * bundle) for the length of a wait; returns how many, to give to
 * rh_task_reclaim_cpus afterwards. */
int rh_task_lend_cpus(void);
void rh_task_reclaim_cpus(int cpus);

/* The task allocator's cache (set up with the pool, freed after it). */
void rh_task_cache_init(void);
void rh_task_cache_fini(void);

/* Fails and frees a task still waiting for resources at the end. */
struct rh_res_waiter;
void rh_task_drop_waiting(struct rh_res_waiter *w);
/* ... and when the placement-group bundle it waited for was removed. */
void rh_task_drop_unoffered(struct rh_res_waiter *w);

#endif
