/*
 * A task as the core sees it, shared by task.c (local tasks) and forward.c
 * (tasks sent to, and received from, other nodes).
 */
#ifndef RH_CORE_TASK_INTERNAL_H
#define RH_CORE_TASK_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>

#include "core/future.h"
#include "core/pull.h"
#include "core/registry.h"
#include "plasma/object_id.h"
#include "sched/pool.h"
#include "sched/resources.h"

#define RH_MAX_RETURNS 64

typedef struct rh_task rh_task_t;
typedef struct rh_task_ret rh_task_ret_t;
struct rh_actor_inst;

/* How a task run for another rank reports its end: its returns (rets, the
 * store objects among them still unsealed), or why it failed (message set,
 * rets NULL when it never ran). Called once, on the thread that ran it. */
typedef void (*rh_task_answer_fn)(rh_task_t *t, void *arg,
                                  rh_task_ret_t *rets, const char *message);

typedef struct rh_task_slot {
    rh_waiter_t    waiter;
    rh_task_t     *task;
    rh_arg_kind_t  kind;
    rh_object_id_t id;
    rh_future_t   *fut;       /* ref owned here: held until the task ends */
    int            pinned;    /* ref owned elsewhere: pinned while running */
    int            borrowed;  /* ... and held at its owner (borrow.h) */
    rh_pull_t     *pull;      /* being brought from another node */
    int            refetches; /* ... again, after its holder failed */
    uint64_t       room_by;   /* ... or the store was full of objects in
                               * use: started again until then (ns) */
    const void    *data;
    size_t         len;
} rh_task_slot_t;

struct rh_task {
    rh_job_t             job;
    rh_res_waiter_t      res_wait;   /* queued while resources are short */
    rh_res_req_t        *res;        /* NULL: one CPU, nothing else */
    int                  holds_res;
    int                  res_uncounted; /* holds its one CPU uncounted
                                         * (resources.h), on the thread
                                         * that runs it */
    int                  cached;     /* from rh_task_cache */
    int                  forward_to; /* rank that runs it; -1: this one */
    int                  gs_placed;  /* ... as the global scheduler chose */
    int                  admitted;   /* holds a place of core/admit.h */
    uint64_t             pg;         /* its placement group (0: none) */
    int                  pg_bundle;  /* ... and bundle */
    int                  ret_foreign;/* returns carry another rank's ids */
    uint32_t             ret_owner;  /* ... that rank */
    uint32_t             place;      /* its strategy, for reruns
                                      * (rh_place_pack) */
    uint64_t             ret_counter;/* ... and its counter of the task */
    rh_task_answer_fn    answer;     /* ... which hears of its end: no
                                      * futures here */
    void                *answer_arg;
    const rh_fn_entry_t *fn;
    rh_fblock_t         *block;      /* the returns; NULL when none */
    /* An actor's call: the instance it runs on when that is this rank
     * (set: it goes to the actor's mailbox, not to the pool, and holds no
     * resources of its own), or, sent to forward_to, the actor, the
     * caller's sequence number and the method's number. */
    struct rh_actor_inst *actor_inst;
    _Atomic int          actor_ready;  /* its arguments are there */
    int                  is_call;
    rh_actor_t           actor;
    uint64_t             call_seq;
    uint32_t             call_method;
    uint32_t             call_epoch;   /* the actor's restarts when routed */
    int                  call_unrun;   /* refused by an instance that ended
                                        * before running it: its caller
                                        * may send it again */
    struct rh_kcall     *call_kept;    /* kept for a resend (actor_resend.h)
                                        * until sent; NULL: not kept */
    rh_task_t           *call_next;    /* calls waiting for their actor's
                                        * place, in order */
    int                  max_retries;  /* reruns when lost; -1: no limit */
    int                  retry_exceptions; /* ... and when it failed */
    int                  tries;        /* runs again so far (here) */
    int                  fail_status;  /* returns fail with this status
                                        * (0: RH_ERR_TASK_FAILED) */
    _Atomic int          pending;
    _Atomic(char *)      dep_error;  /* first failed argument's message */
    int                  nargs, nreturns;
    rh_task_slot_t       slots[];    /* then the inline argument bytes */
};

struct rh_task_ret {
    const void *data;
    size_t      len;
    int         set, in_store;
    /* in_store: an object a lost run of the task sealed on this node,
     * taken over (sealed already); the function wrote into scratch */
    int         adopted;
    void       *scratch;
};

/* Internal task flag (beside the public RH_TASK_FLAG_* bits): the task's
 * resources are counted even when it asks for one CPU and nothing else,
 * so that they can be kept after it ends (an actor's creation). */
#define RH_TASK_FLAG_COUNTED (1u << 31)

/* Small returns of a task without futures live here while it ends. */
#define RH_TASK_RET_SMALL RH_FUTURE_INLINE

struct rh_task_ctx {
    rh_task_t     *task;
    rh_task_ret_t *rets;
    void          *state;      /* an actor's, in its methods */
    rh_actor_t     actor;      /* the actor it runs for; zero in tasks */
    int            arg_base;   /* arguments the user does not see */
    int            failed;
    char           message[512];
    uint8_t      (*small)[RH_TASK_RET_SMALL];   /* answered tasks only */
};

/* rh_remote for a task that another rank submitted (origin, its counter):
 * it runs here, the store objects of its returns take the origin's ids (a
 * large return can stay here and be pulled under the id its owner knows),
 * and answer hears of its end instead of futures. */
rh_status_t rh_task_submit_for(const char *name, const rh_arg_t *args,
                               int nargs, const rh_task_params_t *params,
                               int origin, uint64_t counter,
                               rh_task_answer_fn answer, void *answer_arg);

/* Builds the task of an actor's call of method fn (nreturns returns) and
 * returns it in *out with the submitter's count still held: the caller
 * sets where it goes (actor_inst, or forward_to and the call fields) and
 * then lets it go with rh_task_submitted. With origin >= 0 it is a call
 * that rank made: answer hears of its end, as in rh_task_submit_for. On
 * error nothing is left to do (the task ran as failed). */
rh_status_t rh_task_build_call(const rh_fn_entry_t *fn, const rh_arg_t *args,
                               int nargs, int nreturns, rh_ref_t *rets,
                               int origin, uint64_t counter,
                               rh_task_answer_fn answer, void *answer_arg,
                               rh_task_t **out);
void rh_task_submitted(rh_task_t *t);

/* Runs a call on its actor's thread: the method with the actor's state. */
void rh_task_run_call(rh_task_t *t, void *state);

/* Fails every return of t with status and message, and frees it. */
void rh_task_fail_free(rh_task_t *t, rh_status_t status,
                       const char *message);

/* Makes t fail with status and message instead of running, unless it
 * failed already (an argument). */
void rh_task_fail_later(rh_task_t *t, rh_status_t status,
                        const char *message);

/* The message of the first failed argument of t, NULL when none. */
const char *rh_task_dep_error(rh_task_t *t);

/* Takes over the resources t holds while it runs, for the actor it
 * creates: 1 with a copy in *req (released with rh_resources_release), 0
 * when it holds none of its own (one default CPU is not kept). */
int rh_task_keep_resources(rh_task_t *t, rh_res_req_t *req);

/* An actor's call: dispatched when its arguments are there (actor.c). */
void rh_actor_call_ready(rh_task_t *t);
void rh_actor_call_send(rh_task_t *t);

/* Tells the actor's rank that sequence number seq of this rank will never
 * come (its call was lost on the way). */
void rh_actor_call_skip(int dest, uint64_t actor_hi, uint64_t actor_lo,
                        uint64_t seq);

/* Hands a ready task to where it runs: the pool here, another rank, the
 * global scheduler (RH_PLACE_SPILL) or its placement group (RH_PG_WAIT). */
void rh_task_dispatch(rh_task_t *t);

/* Sends a ready task to t->forward_to and frees it (its return futures stay
 * pending until the answer or the rank's death). */
void rh_forward_send(rh_task_t *t);

/* Frees a task after it ran or was sent. */
void rh_task_free(rh_task_t *t);

/* Fails every return of t with message. */
void rh_task_fail_all(rh_task_t *t, const char *message);

/* An actor's call on the wire (RH_AM_ID_ACTOR_CALL), before the payload
 * of its arguments, encoded as a forwarded task's; its answer is a
 * forwarded task's (RH_AM_ID_TASK_DONE), keyed by counter. */
typedef struct rh_call_hdr {
    uint64_t actor_hi, actor_lo;
    uint64_t counter;    /* the caller's counter of the call */
    uint64_t seq;        /* per caller rank and actor, from 1 */
    uint32_t method;
    uint32_t nargs;
    uint32_t nreturns;
    uint32_t epoch;      /* the instance it is for: its restart count */
} rh_call_hdr_t;

/* The arguments of a payload checked by rh_forward_items_ok (returns 0),
 * as rh_arg_t, pointing into it. */
void rh_forward_args_decode(const uint8_t *payload, uint32_t nargs,
                            rh_arg_t *args);
int rh_forward_items_ok(const uint8_t *p, size_t len, uint32_t n,
                        int returns);

/* The answer of a task run here for another rank (its answer function),
 * and an answer failing each of nreturns returns with status and msg. */
void rh_forward_answer(rh_task_t *t, void *arg, rh_task_ret_t *rets,
                       const char *message);
void rh_forward_refuse(uint32_t origin, uint64_t counter, int nreturns,
                       rh_status_t status, const char *msg);

/* Sends the task of a lineage entry (its header as kept, less the name,
 * and payload as first sent) to dest again, with the same counter, so that
 * its answer completes the futures waiting for it; name is the function's
 * (its registry entry's); held (futures, each held once for this run) and
 * borrowed (ids, each borrowed once for it) are the objects it takes by
 * ref, both malloc'd and taken over. */
void rh_forward_resend(int dest, const char *name, const void *hdr,
                       size_t hdr_len, const void *payload, size_t len,
                       rh_future_t **held, int nheld,
                       rh_object_id_t *borrowed, int nborrowed);

/* What the task of a lineage entry (header as kept and payload as first
 * sent) asks for: its CPUs and custom resources, in *req, and its strategy
 * as submitted (rh_place_pack), in *place. RH_ERR_MALFORMED when they
 * cannot be read. */
rh_status_t rh_forward_req_of(const void *hdr, size_t hdr_len,
                              const void *payload, size_t len,
                              rh_res_req_t *req, uint32_t *place);

/* Registers the forwarding handlers (before rh_init's exchange) and frees
 * what is left at the end. */
rh_status_t rh_forward_setup(void);
void rh_forward_teardown(void);

/* Tasks this rank sent to other ranks to run. */
uint64_t rh_forward_count(void);

#endif
