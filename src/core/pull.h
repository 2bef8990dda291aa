/*
 * Pulls: copying an object that lives on another node into this node's
 * store, where every rank of the node then reads it in place.
 *
 * The puller asks the owner (LOCATE); the owner answers with the value
 * itself when it is small (below RAYHPC_INLINE_MAX), with the offset of a
 * pinned copy in its node's store, or with another rank that holds a copy
 * (the runner of the task that made it). The puller allocates the object in
 * its own store and reads the bytes straight into it by RDMA
 * (rh_tp_get, RAYHPC_PULL_CHUNK bytes a read, several in flight), seals it,
 * unpins the source copy and tells the owner that this node has one now.
 *
 * One pull per object and rank: later gets and tasks that need the same
 * object join it. Ranks of one node that pull the same object at once are
 * told apart by the store itself (the second create finds the first).
 */
#ifndef RH_CORE_PULL_H
#define RH_CORE_PULL_H

#include <stdint.h>

#include "core/future.h"
#include "plasma/object_id.h"
#include "rayhpc.h"

typedef struct rh_pull rh_pull_t;

/* Starts, or joins, the pull of id; ask is the rank to ask first (the owner,
 * or a rank holding a copy). The caller holds the returned pull until
 * rh_pull_put. */
rh_status_t rh_pull_start(rh_object_id_t id, int ask, rh_pull_t **out);

/* Adds w to the pull's waiters; 0 when it ended already (w not added). */
int rh_pull_wait_add(rh_pull_t *p, rh_waiter_t *w);

/* 0 while it goes on, 1 when it ended well, 2 when it failed; and then
 * how: RH_OK, or an error with its message in rh_last_error(). */
int rh_pull_ended(rh_pull_t *p);
rh_status_t rh_pull_status(rh_pull_t *p);

void rh_pull_put(rh_pull_t *p);

/* 1 when the pull failed for want of room in this node's store that is in
 * use now (RH_ERR_STORE_FULL with everything in it being read or written):
 * a pull started again once readers let go may succeed. */
int rh_pull_room_later(rh_pull_t *p);

/* Makes sure id is in this node's store, pulling it (asking rank ask) if it
 * is not; waits until deadline (0: none). A store full of objects in use is
 * waited out as a put waits (RAYHPC_PUT_TIMEOUT_MS). */
rh_status_t rh_pull_ensure(rh_object_id_t id, int ask, uint64_t deadline);

/* Deletes this node's copy of id (an object its owner let go), from any
 * thread. A copy that a pull of this rank writes now is never deleted under
 * its reads (they write into its block): the pull deletes it once they are
 * over, or, with keep_pulled (a free that may have crossed a borrower's
 * new get of this rank), leaves it as a spare copy for eviction. */
void rh_pull_delete_copy(rh_object_id_t id, int keep_pulled);

/* Counters for rh_stats. */
void rh_pull_counters(uint64_t *pulls, uint64_t *bytes, uint64_t *joined);

/* Bytes read by RDMA and the time those pulls took, for the bandwidth the
 * global scheduler weighs remote inputs with. */
uint64_t rh_pull_rdma_bytes_total(void);
uint64_t rh_pull_time_ns(void);

/* Copies read from, summed over the pulls that used RDMA. */
uint64_t rh_pull_source_count(void);

/* Handlers (before rh_init's exchange), and the end (progress thread
 * stopped). */
rh_status_t rh_pull_setup(void);
void rh_pull_teardown(void);

#endif
