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
    const void    *data;
    size_t         len;
} rh_task_slot_t;

struct rh_task {
    rh_job_t             job;
    rh_res_waiter_t      res_wait;   /* queued while resources are short */
    rh_res_req_t        *res;        /* NULL: one CPU, nothing else */
    int                  holds_res;
    int                  cached;     /* from rh_task_cache */
    int                  forward_to; /* rank that runs it; -1: this one */
    int                  gs_placed;  /* ... as the global scheduler chose */
    int                  admitted;   /* holds a place of core/admit.h */
    uint64_t             pg;         /* RH_PG_WAIT: its group ... */
    int                  pg_bundle;  /* ... and bundle */
    int                  ret_foreign;/* returns carry another rank's ids */
    uint32_t             ret_owner;  /* ... that rank */
    uint64_t             ret_counter;/* ... and its counter of the task */
    rh_task_answer_fn    answer;     /* ... which hears of its end: no
                                      * futures here */
    void                *answer_arg;
    const rh_fn_entry_t *fn;
    rh_fblock_t         *block;      /* the returns; NULL when none */
    _Atomic int          pending;
    _Atomic(char *)      dep_error;  /* first failed argument's message */
    int                  nargs, nreturns;
    rh_task_slot_t       slots[];    /* then the inline argument bytes */
};

struct rh_task_ret {
    const void *data;
    size_t      len;
    int         set, in_store;
};

/* Small returns of a task without futures live here while it ends. */
#define RH_TASK_RET_SMALL RH_FUTURE_INLINE

struct rh_task_ctx {
    rh_task_t     *task;
    rh_task_ret_t *rets;
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

/* Registers the forwarding handlers (before rh_init's exchange) and frees
 * what is left at the end. */
rh_status_t rh_forward_setup(void);
void rh_forward_teardown(void);

/* Tasks this rank sent to other ranks to run. */
uint64_t rh_forward_count(void);

#endif
