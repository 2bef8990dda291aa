/*
 * Actors inside the core: the instance on the rank that runs an actor
 * (actor_inst.c: its executor threads, mailbox and the per-caller reorder
 * of calls from other ranks) and the rest (actor.c: the API, the owner's
 * table, the callers' cache of where actors are, the wire).
 */
#ifndef RH_CORE_ACTOR_H
#define RH_CORE_ACTOR_H

#include <stdint.h>
#include <string.h>

#include "core/actor_table.h"
#include "core/registry.h"
#include "core/task_internal.h"
#include "gpu/gpu.h"
#include "rayhpc.h"
#include "sched/resources.h"

typedef struct rh_actor_inst rh_actor_inst_t;

/* The parts of a handle: hi = owner << 32 | restartable << 31 | class << 8
 * | 1, lo = the owner's counter of actors (never 0). Restartable actors
 * (max_restarts != 0) say so in the handle: their callers then ask the
 * owner where they went when their rank dies instead of taking them for
 * dead. */
#define RH_ACTOR_RESTARTABLE (1ull << 31)

static inline uint32_t rh_actor_owner(rh_actor_t a)
{
    return (uint32_t)(a.hi >> 32);
}

static inline unsigned rh_actor_class_id(rh_actor_t a)
{
    return (unsigned)((a.hi >> 8) & 0x7fffffu);
}

static inline int rh_actor_restartable(rh_actor_t a)
{
    return (a.hi & RH_ACTOR_RESTARTABLE) != 0;
}

static inline int rh_actor_is_null(rh_actor_t a)
{
    return a.hi == 0 && a.lo == 0;
}

/* What the creation task tells the rank that runs the actor. */
typedef struct rh_actor_meta {
    uint64_t actor_hi, actor_lo;
    int32_t  max_concurrency;
    int32_t  detached;
    int32_t  keep_res;   /* keep the creation task's resources for life */
    int32_t  epoch;      /* restarts before this instance; calls carry it */
    int32_t  ckpt_interval;  /* calls between checkpoints; 0: on request */
    int32_t  restore;    /* 1: argument 1 is a checkpoint to restore */
    int32_t  checkpoints;    /* 1: the actor takes checkpoints */
    int32_t  reserved;
    /* its name, "" when it has none: the instance's rank frees the name
     * itself when the actor ends after its owner died */
    char     name[RH_ATAB_NAME_MAX];
} rh_actor_meta_t;

/* A checkpoint, as the instance sends it to the owner and the owner hands
 * it to a restart: this header, ncallers entries (each caller rank's last
 * sequence number applied), then the bytes of the class's save. */
typedef struct rh_ckpt_hdr {
    uint32_t ncallers;
    uint32_t reserved;
    uint64_t state_len;
} rh_ckpt_hdr_t;

typedef struct rh_ckpt_caller {
    int64_t  rank;
    uint64_t seq;
} rh_ckpt_caller_t;

/* Checks a checkpoint of len bytes: 0 with its header in *h, its callers
 * (unaligned: memcpy each) and its state, or -1 when malformed. */
static inline int rh_ckpt_parse(const void *blob, size_t len,
                                rh_ckpt_hdr_t *h, const uint8_t **callers,
                                const uint8_t **state)
{
    size_t fixed;

    if (blob == NULL || len < sizeof(*h)) {
        return -1;
    }
    memcpy(h, blob, sizeof(*h));
    if (h->ncallers > (1u << 20)) {
        return -1;
    }
    fixed = sizeof(*h) + (size_t)h->ncallers * sizeof(rh_ckpt_caller_t);
    if (len < fixed || len - fixed != h->state_len) {
        return -1;
    }
    *callers = (const uint8_t *)blob + sizeof(*h);
    *state = (const uint8_t *)blob + fixed;
    return 0;
}

/* ---- the instance (actor_inst.c) ---------------------------------------- */

/* Builds the instance of a new actor here and runs its constructor on its
 * first executor thread, with ctx (the creation task's, arguments after
 * base), or, with ckpt (a checkpoint, checked), the class's restore; waits
 * for it. RH_OK with the instance registered here, or the constructor's
 * failure with its message in msg. */
rh_status_t rh_actor_inst_create(const rh_class_entry_t *cls,
                                 const rh_actor_meta_t *meta,
                                 rh_task_ctx_t *ctx, const void *ckpt,
                                 size_t ckpt_len, char *msg, size_t len,
                                 rh_actor_inst_t **out);

/* Caller src's calls to this (restarted) instance start at number first
 * (progress thread). */
void rh_actor_inst_from(rh_actor_inst_t *inst, int src, uint64_t first);

/* Asks for a checkpoint after the call running now (rh_actor_checkpoint):
 * RH_OK, or RH_ERR_INVALID_PARAM when the instance takes none. */
rh_status_t rh_actor_inst_ask_checkpoint(rh_actor_inst_t *inst);

/* The instance took a checkpoint (its executor thread): to the owner. */
void rh_actor_checkpoint_taken(rh_actor_t actor, uint32_t epoch,
                               const void *blob, size_t len);

/* The restart count the instance was created with: a call made for
 * another one is refused. */
uint32_t rh_actor_inst_epoch(const rh_actor_inst_t *inst);

/* Hands the kept resources to the instance (released when it ends). */
void rh_actor_inst_keep(rh_actor_inst_t *inst, const rh_res_req_t *res);

/* The GPUs the instance keeps (its constructor's), or NULL: its methods
 * run with them current. */
const rh_gpu_hold_t *rh_actor_inst_gpu(const rh_actor_inst_t *inst);

/* The instance of actor here, with a reference (rh_actor_inst_put), or
 * NULL when none (it never was here, or it ended). */
rh_actor_inst_t *rh_actor_inst_find(rh_actor_t actor);
/* The same for a call arriving (on the progress thread: O(1), no lock,
 * for an actor found before). */
rh_actor_inst_t *rh_actor_inst_find_here(rh_actor_t actor);
/* Drops what the lookups above keep (teardown, the progress thread
 * stopped). */
void rh_actor_inst_hot_clear(void);
void rh_actor_inst_get(rh_actor_inst_t *inst);
void rh_actor_inst_put(rh_actor_inst_t *inst);

/* Queues a call of this rank (the task built with its submitter's count
 * held) on the instance, in order; -1 when the instance no longer takes
 * calls (the task is untouched). */
int rh_actor_inst_push(rh_actor_inst_t *inst, rh_task_t *t);

/* Whether the instance outlives its owner (a detached actor). */
int rh_actor_inst_detached(const rh_actor_inst_t *inst);

/* The instance ends for, or after, its owner's death: when it has ended,
 * its rank frees its name, as the owner's table would have. */
void rh_actor_inst_owner_gone(rh_actor_inst_t *inst);

/* A call of rank src with sequence number seq (progress thread): runs in
 * that caller's order. t NULL: seq will never come (skip it). */
void rh_actor_inst_arrived(rh_actor_inst_t *inst, int src, uint64_t seq,
                           rh_task_t *t);

/* Ends the instance: kill (queued calls fail with why, then the
 * destructor) or drain (queued calls run, then the destructor). */
void rh_actor_inst_end(rh_actor_inst_t *inst, int kill, const char *why);

/* Ends every instance whose owner is rank (fate-sharing) or, with rank
 * -1, every instance here; the latter waits until they are gone. */
void rh_actor_inst_end_owned_by(int rank, const char *why);
void rh_actor_inst_end_all(const char *why);

/* A caller rank died: its calls still out of order are dropped. */
void rh_actor_inst_caller_died(int rank);

/* The instance ended here (actor_inst.c tells actor.c, on the progress
 * thread): the owner hears of it. */
void rh_actor_ended_here(rh_actor_t actor, int killed, const char *why,
                         const char *name, int owner_gone);

/* Fails t, a call that will not run on its actor, with status and msg:
 * its returns fail (or its caller is answered) once it may go. */
void rh_actor_call_reject(rh_task_t *t, rh_status_t status, const char *msg);

/* Set-up (handlers, the creation function) and the end. */
rh_status_t rh_actor_setup(void);
void rh_actor_shutdown(void);
void rh_actor_teardown(void);

#endif
