/*
 * Remote functions on this rank: rh_remote builds a task, tracks its
 * argument futures and hands it to the worker pool once every argument is
 * ready; a worker runs it and completes its return futures.
 *
 * Dependencies take no lock: each ref argument owned by this rank puts a
 * waiter (embedded in the task's argument slot) on the argument's future;
 * the task's `pending` count starts at one for the submitter, one more per
 * unfinished argument, and whoever brings it to zero submits the task.
 *
 * Errors are values: a task whose function fails completes its returns as
 * FAILED with the message; a task with a failed argument does not run and
 * passes the original message on to its own returns.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/completion.h"
#include "base/config.h"
#include "base/log.h"
#include "base/objcache.h"
#include "base/status.h"
#include "core/actor.h"
#include "core/admit.h"
#include "core/borrow.h"
#include "core/core.h"
#include "core/directory.h"
#include "core/future.h"
#include "core/lineage.h"
#include "core/pgroup.h"
#include "core/placement.h"
#include "core/pull.h"
#include "core/registry.h"
#include "core/task_internal.h"
#include "obs/jobstate.h"
#include "obs/timeline.h"
#include "plasma/store.h"
#include "sched/pool.h"
#include "gpu/gpu.h"
#include "sched/resources.h"

/* Tasks up to this size (struct, argument slots and inline bytes) come
 * from a per-thread cache instead of malloc. */
#define RH_TASK_SMALL 512

static inline rh_object_id_t rh_task_ret_id(const rh_task_t *t, int i)
{
    if (t->ret_foreign) {
        return rh_object_id_make(t->ret_owner, t->ret_counter,
                                 (uint32_t)i + 1);
    }
    return rh_future_id(t->block, i, 0);
}

/* ---- inside a task ------------------------------------------------------- */

/* A checkpoint's ctx (an actor's save) has no task: no arguments, and
 * return 0 goes to a buffer of its own. */
int rh_task_nargs(const rh_task_ctx_t *ctx)
{
    return ctx && ctx->task ? ctx->task->nargs - ctx->arg_base : 0;
}

rh_actor_t rh_task_actor(const rh_task_ctx_t *ctx)
{
    rh_actor_t none = { 0, 0 };

    return ctx ? ctx->actor : none;
}

const void *rh_task_arg(const rh_task_ctx_t *ctx, int i, size_t *len)
{
    if (ctx != NULL) {
        i += ctx->arg_base;
    }
    if (ctx == NULL || ctx->task == NULL || i < ctx->arg_base ||
        i >= ctx->task->nargs) {
        if (len != NULL) {
            *len = 0;
        }
        return NULL;
    }
    if (len != NULL) {
        *len = ctx->task->slots[i].len;
    }
    return ctx->task->slots[i].data;
}

rh_ref_t rh_task_arg_ref(const rh_task_ctx_t *ctx, int i)
{
    rh_ref_t none = { 0, 0 };

    if (ctx != NULL) {
        i += ctx->arg_base;
    }
    if (ctx == NULL || ctx->task == NULL || i < ctx->arg_base ||
        i >= ctx->task->nargs) {
        return none;
    }
    none.hi = ctx->task->slots[i].id.hi;
    none.lo = ctx->task->slots[i].id.lo;
    return none;
}

static rh_status_t rh_task_ret_check(rh_task_ctx_t *ctx, int i)
{
    if (ctx != NULL && ctx->task == NULL) {
        if (i != 0 || ctx->rets[0].set) {
            return rh_error_set(RH_ERR_INVALID_PARAM, "a checkpoint writes "
                                "return 0, once");
        }
        return RH_OK;
    }
    if (ctx == NULL || i < 0 || i >= ctx->task->nreturns) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "task %s has %d returns; "
                            "there is no return %d",
                            ctx ? ctx->task->fn->name : "?",
                            ctx ? ctx->task->nreturns : 0, i);
    }
    if (ctx->rets[i].set) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "return %d of task %s is "
                            "set already", i, ctx->task->fn->name);
    }
    return RH_OK;
}

/* Return ret's id is taken in this node's store. A run of the task lost
 * here (its rerun may come back to the node when no other is left) left
 * it, or a rank of this node is bringing a copy of it (a pull that began
 * before the object was lost: its reads fail once the holder's death is
 * seen), or writes it in another run. What a dead process was writing
 * goes (the store gives back what dead processes held and were creating)
 * and the return is created again; what a live one writes is waited for
 * until it is sealed or let go, at most the failure timeout; a sealed one
 * of the return's size is taken over (the task gives the same value
 * again: the function writes into a buffer of its own). The lost run's
 * process counts as dead for the store once it is in its exit, as it is
 * for the transport, which declared it dead. */
#define RH_TAKE_OVER_TRIES 2000   /* 1 ms apart */

static rh_status_t rh_task_ret_take_over(rh_object_id_t id, size_t len,
                                         rh_task_ret_t *ret, void **ptr)
{
    rh_store_t *store = rh_core_store();
    uint64_t end = rh_time_ns() + rh_cfg.failure_timeout_ms * 1000000ull;
    char taken[512];
    void *p;
    rh_status_t status;

    snprintf(taken, sizeof(taken), "%s", rh_last_error());
    (void)rh_store_reap_holders(store, NULL, NULL);
    /* The dead run's process may be in another rank's reap still, which
     * gives back its references before it removes what it was writing:
     * its unsealed return goes once that reap ends (a few steps of a live
     * process; the bound is for a reaper that dies meanwhile). */
    for (int dead = 0;;) {
        struct timespec ts = { 0, 1000000 };

        status = rh_object_create(id, len, ptr);
        if (status != RH_ERR_BUSY || rh_store_contains(store, id)) {
            break;   /* ours now, failed otherwise, or sealed: adopted */
        }
        if (rh_store_drop_dead_write(store, id) == RH_OK) {
            if (++dead > RH_TAKE_OVER_TRIES) {
                break;
            }
        } else if (rh_time_ns() >= end) {
            break;   /* a live writer that neither seals nor lets go */
        }
        nanosleep(&ts, NULL);
    }
    if (status != RH_ERR_BUSY) {
        return status;
    }
    if (rh_store_adopt(store, id, len, &p) != RH_OK) {
        return rh_error_set(RH_ERR_BUSY, "%s; %s", taken, rh_last_error());
    }
    if ((ret->scratch = malloc(len ? len : 1)) == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "a return of %zu bytes", len);
    }
    ret->data = p;
    ret->adopted = 1;
    *ptr = ret->scratch;
    return RH_OK;
}

rh_status_t rh_task_return_alloc(rh_task_ctx_t *ctx, int i, size_t len,
                                 void **ptr)
{
    rh_status_t status = rh_task_ret_check(ctx, i);
    rh_future_t *f;
    void *p;

    if (status != RH_OK) {
        return status;
    }
    if (ptr == NULL) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_task_return_alloc "
                            "needs ptr, for the room of return %d", i);
    }
    if (ctx->task == NULL) {
        p = malloc(len ? len : 1);   /* the checkpoint's: freed there */
        if (p == NULL) {
            return rh_error_set(RH_ERR_NO_MEMORY, "a checkpoint of %zu "
                                "bytes", len);
        }
    } else if (ctx->small != NULL && len <= RH_TASK_RET_SMALL) {
        p = ctx->small[i];   /* copied into the answer */
    } else if (ctx->small == NULL && len <= RH_FUTURE_INLINE) {
        /* Small values live in the future itself, not in the store. */
        f = &ctx->task->block->f[i];
        p = f->inline_buf;
    } else {
        status = rh_object_create(rh_task_ret_id(ctx->task, i), len, &p);
        if (rh_unlikely(status == RH_ERR_BUSY)) {
            status = rh_task_ret_take_over(rh_task_ret_id(ctx->task, i), len,
                                           &ctx->rets[i], &p);
        }
        if (status != RH_OK) {
            return status;
        }
        ctx->rets[i].in_store = 1;
    }
    if (!ctx->rets[i].adopted) {
        ctx->rets[i].data = p;
    }
    ctx->rets[i].len = len;
    ctx->rets[i].set = 1;
    *ptr = p;
    return RH_OK;
}

rh_status_t rh_task_return(rh_task_ctx_t *ctx, int i, const void *buf,
                           size_t len)
{
    void *p;
    rh_status_t status;

    if (buf == NULL && len != 0) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "return of %zu bytes from "
                            "NULL", len);
    }
    status = rh_task_return_alloc(ctx, i, len, &p);
    if (status == RH_OK && len != 0) {
        memcpy(p, buf, len);
    }
    return status;
}

rh_status_t rh_task_fail(rh_task_ctx_t *ctx, const char *fmt, ...)
{
    va_list ap;

    if (ctx != NULL && !ctx->failed) {
        if (fmt == NULL || fmt[0] == '\0') {
            snprintf(ctx->message, sizeof(ctx->message), "failed (no "
                     "message given)");
        } else {
            va_start(ap, fmt);
            vsnprintf(ctx->message, sizeof(ctx->message), fmt, ap);
            va_end(ap);
        }
        ctx->failed = 1;
    }
    return RH_ERR_TASK_FAILED;
}

/* ---- running ------------------------------------------------------------------ */

static const rh_res_req_t rh_task_default_res = { 1, 0, {{"", 0}} };
static rh_objcache_t rh_task_cache;

void rh_task_cache_init(void)
{
    rh_objcache_init(&rh_task_cache, 0, RH_TASK_SMALL);
}

void rh_task_cache_fini(void)
{
    rh_objcache_fini(&rh_task_cache);
}

void rh_task_free(rh_task_t *t)
{
    if (t->admitted) {
        rh_admit_release();
    }
    if (t->holds_res) {
        rh_resources_release(t->res ? t->res : &rh_task_default_res);
    }
    if (t->res_uncounted) {
        rh_resources_end_uncounted();
    }
    free(t->res);
    for (int i = 0; i < t->nargs; i++) {
        rh_task_slot_t *s = &t->slots[i];

        if (s->pull != NULL) {
            rh_pull_put(s->pull);
        }
        /* before the future's hold: its end deletes the object */
        if (s->pinned) {
            rh_store_release(rh_core_store(), s->id);
        }
        if (s->fut != NULL) {
            rh_future_unhold(s->fut);
        }
        if (s->borrowed) {
            rh_borrow_drop(s->id);
        }
    }
    free(atomic_load(&t->dep_error));
    if (t->cached) {
        rh_objcache_put(&rh_task_cache, t);
    } else {
        free(t);
    }
}

static void rh_task_fail_returns(rh_task_t *t, rh_task_ret_t *rets,
                                 const char *message)
{
    if (t->answer != NULL) {
        for (int i = 0; rets != NULL && i < t->nreturns; i++) {
            if (rets[i].in_store) {
                rh_store_delete(rh_core_store(), rh_task_ret_id(t, i));
            }
        }
        t->answer(t, t->answer_arg, NULL, message);
        return;
    }
    if (t->nreturns == 0 && t->block == NULL) {
        /* No return carries the error to anyone: say it here. */
        rh_warn("task %s, which has no returns, failed: %s", t->fn->name,
                message);
    }
    for (int i = 0; i < t->nreturns; i++) {
        if (rets != NULL && rets[i].in_store) {
            rh_store_delete(rh_core_store(), rh_task_ret_id(t, i));
        }
        rh_future_fail_status(&t->block->f[i], t->fail_status ?
                              t->fail_status : RH_ERR_TASK_FAILED, message);
    }
}

void rh_task_fail_all(rh_task_t *t, const char *message)
{
    rh_task_fail_returns(t, NULL, message);
}

void rh_task_fail_free(rh_task_t *t, rh_status_t status, const char *message)
{
    t->fail_status = status;
    rh_task_fail_returns(t, NULL, message);
    rh_task_free(t);
}

static void rh_task_set_dep_error(rh_task_t *t, const char *message);

void rh_task_fail_later(rh_task_t *t, rh_status_t status, const char *message)
{
    if (atomic_load(&t->dep_error) == NULL) {
        t->fail_status = status;
    }
    rh_task_set_dep_error(t, message);
}

const char *rh_task_dep_error(rh_task_t *t)
{
    return atomic_load(&t->dep_error);
}

int rh_task_keep_resources(rh_task_t *t, rh_res_req_t *req)
{
    if (!t->holds_res || t->res == NULL) {
        return 0;
    }
    *req = *t->res;
    t->holds_res = 0;
    return 1;
}

static void rh_task_publish_returns(rh_task_t *t, rh_task_ret_t *rets)
{
    for (int i = 0; i < t->nreturns; i++) {
        rh_future_t *f = &t->block->f[i];

        if (!rets[i].set) {
            rh_future_complete(f, NULL, 0, 0);
        } else if (rets[i].in_store) {
            if (!rets[i].adopted &&
                rh_store_seal(rh_core_store(), rh_task_ret_id(t, i)) !=
                RH_OK) {
                rh_future_fail(f, rh_last_error());
                continue;
            }
            rh_future_complete(f, rets[i].data, rets[i].len, 1);
        } else {
            /* Already in f->inline_buf: complete without a copy. */
            rh_future_complete(f, f->inline_buf, rets[i].len, 0);
        }
    }
}

/* A ref argument that is not ours: in this node's store by now (its pull
 * started at submit), unless a rank of this node still brings it. */
static rh_status_t rh_task_bind_borrowed(rh_task_slot_t *s)
{
    rh_status_t status;

    status = rh_object_get_stored(s->id, &s->data, &s->len, 0);
    if (status == RH_OK || status == RH_ERR_STORE_FULL) {
        return status;   /* full: it waited for room already */
    }
    status = rh_pull_ensure(s->id, (int)rh_object_id_owner(s->id), 0);
    if (status != RH_OK) {
        return status;
    }
    return rh_object_get_stored(s->id, &s->data, &s->len, 0);
}

/* Points every ref argument at its bytes. Owned refs are ready by now (and
 * pulled here when their value was on another node); borrowed ones are in
 * this node's store or on their way. */
static int rh_task_bind_args(rh_task_t *t, char *msg, size_t msglen)
{
    for (int i = 0; i < t->nargs; i++) {
        rh_task_slot_t *s = &t->slots[i];
        char ids[RH_OBJECT_ID_STRLEN];
        rh_status_t status = RH_OK;

        if (s->kind != RH_ARG_REF) {
            continue;
        }
        if (s->fut != NULL && !rh_future_remote(s->fut) &&
            !s->fut->in_store) {
            s->data = s->fut->data;   /* inline in the future */
            s->len = s->fut->len;
            continue;
        }
        if (s->fut != NULL) {
            int src;

            /* Ours, in this node's store or on another node (the pull
             * started when it was ready). Pinned while the task runs: a
             * full store may spill it, or evict a pulled copy. A copy
             * whose rank died meanwhile: the next one. */
            for (int tries = 0; tries < 4 && rh_future_remote(s->fut) &&
                 !rh_store_contains(rh_core_store(), s->id); tries++) {
                status = rh_dir_sources(s->id, &src, 1) == 1 ?
                         rh_pull_ensure(s->id, src, 0) :
                         rh_error_set(RH_ERR_INVALID_REF, "no node holds it");
                if (status != RH_ERR_PEER_FAILED) {
                    break;
                }
            }
            if (status == RH_OK) {
                status = rh_object_get_stored(s->id, &s->data, &s->len, 0);
            }
            s->pinned = status == RH_OK;
        } else {
            status = rh_task_bind_borrowed(s);
            s->pinned = status == RH_OK;
        }
        if (status != RH_OK) {
            snprintf(msg, msglen, "task %s: argument %d (object %s of rank "
                     "%u): %s", t->fn->name, i, rh_object_id_str(s->id, ids),
                     rh_object_id_owner(s->id), rh_last_error());
            return -1;
        }
    }
    return 0;
}

/* The ledger gave the task its resources: it runs, not as a spawn of
 * whatever task freed them (a wait on this thread must not run it on top
 * of a task it may wait for). */
static void rh_task_res_retry(rh_res_waiter_t *w)
{
    rh_task_t *t = (rh_task_t *)((char *)w - offsetof(rh_task_t, res_wait));

    t->holds_res = 1;
    rh_pool_submit_shared(rh_core_pool(), &t->job);
}

static void rh_task_drop_queued(rh_res_waiter_t *w, const char *why)
{
    rh_task_t *t = (rh_task_t *)((char *)w - offsetof(rh_task_t, res_wait));
    char msg[256];

    snprintf(msg, sizeof(msg), "task %s %s", t->fn->name, why);
    rh_task_fail_returns(t, NULL, msg);
    rh_task_free(t);
}

void rh_task_drop_waiting(rh_res_waiter_t *w)
{
    rh_task_drop_queued(w, "never got its resources before the rank ended");
}

void rh_task_drop_unoffered(rh_res_waiter_t *w)
{
    rh_task_drop_queued(w, "never ran: its placement group was removed "
                        "while it waited for its bundle's resources");
}

static _Thread_local unsigned rh_task_sample;

/* The innermost task running on this thread: its CPUs are what a wait on
 * the thread lends. */
static _Thread_local rh_task_t *rh_task_running;

int rh_task_lend_cpus(void)
{
    rh_task_t *t = rh_task_running;

    if (t != NULL && t->res_uncounted) {
        rh_resources_lend_uncounted();
        return 1;
    }
    if (t == NULL || !t->holds_res) {
        return 0;
    }
    return rh_resources_lend(t->res != NULL ? t->res : &rh_task_default_res);
}

/* The wait returns on the thread it began on, where the same task runs. */
void rh_task_reclaim_cpus(int cpus)
{
    rh_task_t *t = rh_task_running;

    if (cpus > 0 && t != NULL && t->res_uncounted) {
        rh_resources_reclaim_uncounted();
    } else if (cpus > 0 && t != NULL) {
        rh_resources_reclaim(t->res != NULL ? t->res : &rh_task_default_res);
    }
}

static void rh_task_execute(rh_task_t *t, void *state);

/* The end of a task a worker took up: counted for rayhpc-info --job. */
static inline void rh_task_finished(rh_task_t *t)
{
    if (t->fn->method == NULL) {
        rh_js_count(RH_JS_FINISHED);
    }
    rh_task_free(t);
}

static void rh_task_run(rh_job_t *job)
{
    rh_task_execute((rh_task_t *)job, NULL);
}

void rh_task_run_call(rh_task_t *t, void *state)
{
    rh_task_execute(t, state);
}

/* The backoff of a task run here again is over, or the rank ended during
 * it (the pool is gone then). */
static void rh_task_rerun(void *arg)
{
    rh_task_t *t = arg;

    if (rh_core_pool() == NULL) {
        rh_task_fail_free(t, RH_ERR_SHUTDOWN, "a task to run again found "
                          "the rank finalizing");
        return;
    }
    rh_pool_submit_shared(rh_core_pool(), &t->job);
}

/* A task of ours (not an actor's call, nor run for another rank) whose
 * function failed runs again with retry_exceptions, within max_retries:
 * what it returned goes, and so do its resources while it waits. */
static int rh_task_retry_here(rh_task_t *t, rh_task_ret_t *rets)
{
    if (!t->retry_exceptions || t->answer != NULL || t->is_call ||
        (t->max_retries >= 0 && t->tries >= t->max_retries)) {
        return 0;
    }
    for (int i = 0; i < t->nreturns; i++) {
        if (rets[i].in_store) {
            rh_store_delete(rh_core_store(), rh_task_ret_id(t, i));
        }
    }
    for (int i = 0; i < t->nargs; i++) {
        if (t->slots[i].pinned) {   /* the next run pins it again */
            rh_store_release(rh_core_store(), t->slots[i].id);
            t->slots[i].pinned = 0;
        }
    }
    if (t->holds_res) {
        rh_resources_release(t->res ? t->res : &rh_task_default_res);
        t->holds_res = 0;
    }
    if (t->res_uncounted) {
        rh_resources_end_uncounted();
        t->res_uncounted = 0;
    }
    t->tries++;
    return rh_retry_later(t->tries, rh_task_rerun, rh_task_rerun, t);
}

/* "task NAME failed: STATUS: WHY", within cap and the bound of a thread's
 * error sentence. A failure passed up through many nested tasks has its
 * root cause at the end of why: what does not fit goes from the middle. */
static void rh_task_why(char *dst, size_t cap, const char *name,
                        rh_status_t status, const char *why)
{
    static const char cut[] = " ... ";
    size_t fit = cap < 448 ? cap : 448;   /* room for a getter's prefix */
    int head = snprintf(dst, fit, "task %.64s failed: %s: ", name,
                        rh_status_string(status));
    size_t room, len = strlen(why);

    if (head < 0 || (size_t)head + sizeof(cut) + 64 >= fit) {
        return;
    }
    room = fit - (size_t)head - 1;
    if (len <= room) {
        memcpy(dst + head, why, len + 1);
        return;
    }
    /* The first 64 bytes say where it came from, the rest is the tail. */
    memcpy(dst + head, why, 64);
    memcpy(dst + head + 64, cut, sizeof(cut) - 1);
    room -= 64 + sizeof(cut) - 1;
    memcpy(dst + head + 64 + sizeof(cut) - 1, why + len - room, room + 1);
}

static void rh_task_execute(rh_task_t *t, void *state)
{
    rh_task_ret_t rets[RH_MAX_RETURNS];
    uint8_t small[t->answer != NULL ? t->nreturns + 1 : 1][RH_TASK_RET_SMALL];
    rh_task_ctx_t ctx;
    char *dep_error = atomic_load(&t->dep_error);
    rh_task_t *outer = rh_task_running;
    rh_gpu_task_t gpu;
    const rh_gpu_hold_t *hold = NULL;
    rh_status_t status;
    uint64_t tl0;
    unsigned sets;

    gpu.active = 0;
    /* Resources are counted once some task asked for more than a CPU
     * (before, a one-CPU task only counts itself on its thread, without a
     * lock); an actor's calls run on what the actor holds. */
    if (dep_error == NULL && !t->holds_res && !t->is_call) {
        if (t->res == NULL && rh_resources_begin_uncounted()) {
            t->res_uncounted = 1;
        } else {
            int got;

            t->res_wait.retry = rh_task_res_retry;
            got = rh_resources_acquire(t->res ? t->res : &rh_task_default_res,
                                       &t->res_wait);
            if (got <= 0) {
                if (got < 0) {   /* its bundle went before it started */
                    rh_task_drop_unoffered(&t->res_wait);
                }
                return;   /* queued: runs again once it holds them */
            }
            t->holds_res = 1;
        }
    }
    if (t->fn->method == NULL) {
        rh_js_count(RH_JS_STARTED);
    }
    if (dep_error != NULL) {
        rh_task_fail_returns(t, NULL, dep_error);
        rh_task_finished(t);
        return;
    }
    memset(rets, 0, sizeof(rets[0]) * (size_t)t->nreturns);
    ctx.task = t;
    ctx.rets = rets;
    ctx.state = state;
    ctx.actor = t->actor;
    ctx.arg_base = 0;
    ctx.failed = 0;
    ctx.message[0] = '\0';
    ctx.small = t->answer != NULL ? small : NULL;
    if (rh_task_bind_args(t, ctx.message, sizeof(ctx.message)) != 0) {
        rh_task_fail_returns(t, rets, ctx.message);
        rh_task_finished(t);
        return;
    }
    /* A GPU task gets its device current and the worker's stream; an
     * actor's method, the devices its constructor had. */
    if (rh_unlikely(rh_gpu_req_wants(t->res) ||
                    (t->is_call && t->actor_inst != NULL &&
                     (hold = rh_actor_inst_gpu(t->actor_inst)) != NULL))) {
        if ((hold != NULL ? rh_gpu_call_begin(hold, &gpu) :
             rh_gpu_task_begin(t->res, &gpu)) != RH_OK) {
            snprintf(ctx.message, sizeof(ctx.message), "task %s: %s",
                     t->fn->name, rh_last_error());
            rh_task_fail_returns(t, rets, ctx.message);
            rh_task_free(t);
            return;
        }
    }
    rh_task_running = t;
    sets = rh_error_sets;
    tl0 = rh_tl_begin();
    if (rh_unlikely((++rh_task_sample & 15) == 0) && !t->is_call) {
        /* One task in 16 is timed: the load the heartbeats report. */
        uint64_t t0 = rh_time_ns();

        status = t->fn->method ? t->fn->method(state, &ctx) :
                 t->fn->fn(&ctx);
        rh_place_task_time(rh_time_ns() - t0);
    } else {
        status = t->fn->method ? t->fn->method(state, &ctx) :
                 t->fn->fn(&ctx);
    }
    rh_tl_end(t->fn->method ? RH_TL_CALL : RH_TL_TASK, t->fn->name, tl0,
              -1, 0);
    rh_task_running = outer;
    if (rh_unlikely(gpu.active) && rh_gpu_task_end(&gpu) != RH_OK &&
        status == RH_OK && !ctx.failed) {
        snprintf(ctx.message, sizeof(ctx.message), "task %s: its GPU work "
                 "failed: %s", t->fn->name, rh_last_error());
        ctx.failed = 1;
    }
    for (int i = 0; i < t->nreturns; i++) {
        if (rh_unlikely(rets[i].scratch != NULL)) {
            free(rets[i].scratch);   /* it wrote over a value taken over */
            rets[i].scratch = NULL;
        }
    }
    if ((status != RH_OK || ctx.failed) && rh_task_retry_here(t, rets)) {
        return;   /* runs again after its backoff */
    }
    if (status != RH_OK || ctx.failed) {
        if (!ctx.failed && rh_error_sets != sets) {
            /* It returned the status of a call that said why: that is
             * the reason the getter needs. */
            rh_task_why(ctx.message, sizeof(ctx.message), t->fn->name,
                        status, rh_last_error());
        } else if (!ctx.failed) {
            snprintf(ctx.message, sizeof(ctx.message), "task %s failed: %s",
                     t->fn->name, rh_status_string(status));
        }
        rh_task_fail_returns(t, rets, ctx.message);
    } else if (t->answer != NULL) {
        t->answer(t, t->answer_arg, rets, NULL);
    } else {
        rh_task_publish_returns(t, rets);
    }
    rh_task_finished(t);
}

void rh_task_dispatch(rh_task_t *t)
{
    if (t->actor_inst != NULL) {
        rh_actor_call_ready(t);
        return;
    }
    if (t->is_call) {
        rh_actor_call_send(t);
        return;
    }
    if (t->forward_to >= 0) {
        rh_tl_end(RH_TL_FORWARD, t->fn->name, 0, t->forward_to, 0);
        rh_forward_send(t);
        return;
    }
    if (t->forward_to == RH_PLACE_SPILL) {
        rh_tl_end(RH_TL_SCHED_SPILL, t->fn->name, 0, -1, 0);
        rh_place_spill(t);
        return;
    }
    if (t->forward_to == RH_PG_WAIT) {
        rh_pg_hold(t);
        return;
    }
    if (rh_unlikely(rh_core_pool() == NULL)) {
        /* Woken at rh_finalize (a dependency failed as the ledger let go
         * of its waiters): the pool is gone, so it fails here. */
        char msg[192];

        snprintf(msg, sizeof(msg), "task %s was never run: the rank is "
                 "finalizing", t->fn->name);
        rh_task_fail_free(t, RH_ERR_SHUTDOWN, msg);
        return;
    }
    if (t->res != NULL && !t->holds_res) {
        rh_resources_activate();
    }
    /* First come, first served: its place in the ledger's line is taken
     * now, not when a worker reaches it (a waiting worker takes the newest
     * task first). */
    t->res_wait.seq = t->holds_res || t->is_call ||
                      (t->res == NULL &&
                       !atomic_load_explicit(&rh_resources_active,
                                             memory_order_relaxed)) ? 0 :
                      rh_resources_ticket();
    rh_js_count(RH_JS_QUEUED);
    rh_pool_submit(rh_core_pool(), &t->job);
}

static inline void rh_task_ready(rh_task_t *t)
{
    rh_js_count(RH_JS_READY);
    rh_task_dispatch(t);
}

static void rh_task_set_dep_error(rh_task_t *t, const char *message)
{
    char *expected = NULL, *copy = strdup(message ? message : "failed");

    if (!atomic_compare_exchange_strong(&t->dep_error, &expected, copy)) {
        free(copy);
    }
}

/* Starts bringing argument s here from the node that holds it, with the
 * task waiting for it; 0 when there is nothing to wait for. */
static int rh_task_arg_fetch(rh_task_slot_t *s, int ask)
{
    if (s->task->forward_to != -1 || s->pull != NULL ||
        rh_store_contains(rh_core_store(), s->id) ||
        rh_pull_start(s->id, ask, &s->pull) != RH_OK) {
        return 0;
    }
    return rh_pull_wait_add(s->pull, &s->waiter);
}

/* The status a task fails with when an argument failed with status: the
 * argument's own when it tells what became of the object (its actor died),
 * which then travels down the graph; RH_ERR_TASK_FAILED otherwise (an
 * argument released or unreachable is this task's failure, named in its
 * message). */
static rh_status_t rh_task_dep_status(rh_status_t status)
{
    return status == RH_ERR_ACTOR_DEAD || status == RH_ERR_OWNER_DIED ||
           status == RH_ERR_OBJECT_LOST ? status : RH_ERR_TASK_FAILED;
}

static void rh_task_arg_wake(rh_waiter_t *w, int failed, const char *message);

/* The refetch of argument s, after its backoff (the rerun thread). */
static void rh_task_arg_refetch_run(void *arg)
{
    rh_task_slot_t *s = arg;
    int owner = (int)rh_object_id_owner(s->id);
    char msg[256], ids[RH_OBJECT_ID_STRLEN];

    if (s->fut != NULL) {
        /* Ours: rebuilt from lineage when every copy is gone, else read
         * from a copy that lives (on the dead rank's node, or rebuilt). */
        if (rh_lineage_rebuild(s->id) != 0) {
            if (!rh_future_wait_add(s->fut, &s->waiter)) {
                rh_task_arg_wake(&s->waiter,
                                 atomic_load(&s->fut->state) ==
                                 RH_FUTURE_FAILED ?
                                 (int)rh_future_status(s->fut) : 0,
                                 s->fut->message);
            }
            return;
        }
        rh_task_arg_wake(&s->waiter, RH_ERR_OBJECT_LOST, rh_last_error());
        return;
    }
    /* Another owner's: it knows where a copy lives now, or rebuilds it. */
    if (rh_rank_alive(owner)) {
        if (rh_task_arg_fetch(s, owner)) {
            return;
        }
        /* Here already (a rank of this node brought it), or its new pull
         * ended at once: as if woken by it. */
        if (rh_store_contains(rh_core_store(), s->id)) {
            rh_task_arg_wake(&s->waiter, 0, NULL);
            return;
        }
        if (s->pull != NULL && rh_pull_ended(s->pull)) {
            rh_status_t st = rh_pull_status(s->pull);

            rh_task_arg_wake(&s->waiter, st == RH_OK ? 0 : (int)st,
                             st == RH_OK ? NULL : rh_last_error());
            return;
        }
    }
    snprintf(msg, sizeof(msg), "object %s of rank %d could not be fetched "
             "again after the rank holding it failed",
             rh_object_id_str(s->id, ids), owner);
    rh_task_arg_wake(&s->waiter, RH_ERR_TASK_FAILED, msg);
}

/* The rank ended during the backoff of argument s's refetch: its wait
 * ends as the pulls' do at teardown, and its task with the last of them. */
static void rh_task_arg_refetch_drop(void *arg)
{
    rh_task_slot_t *s = arg;

    rh_task_arg_wake(&s->waiter, RH_ERR_SHUTDOWN, "the rank ended before an "
                     "argument lost with a rank was fetched again");
}

/* The pull of argument s failed for want of room in a store full of
 * objects in use (a put would wait): started again after a backoff while
 * RAYHPC_PUT_TIMEOUT_MS lasts. */
static void rh_task_arg_room_run(void *arg)
{
    rh_task_slot_t *s = arg;
    int src = (int)rh_object_id_owner(s->id);

    if (s->fut != NULL && rh_dir_sources(s->id, &src, 1) != 1) {
        rh_task_arg_refetch_run(arg);   /* no copy is known now */
        return;
    }
    if (rh_task_arg_fetch(s, src)) {
        return;
    }
    if (rh_store_contains(rh_core_store(), s->id)) {
        rh_task_arg_wake(&s->waiter, 0, NULL);
    } else if (s->pull != NULL && rh_pull_ended(s->pull)) {
        rh_status_t st = rh_pull_status(s->pull);

        rh_task_arg_wake(&s->waiter, st == RH_OK ? 0 : (int)st,
                         st == RH_OK ? NULL : rh_last_error());
    } else {
        rh_task_arg_wake(&s->waiter, RH_ERR_STORE_FULL, rh_last_error());
    }
}

static int rh_task_arg_room_later(rh_task_slot_t *s, int failed)
{
    uint64_t now = rh_time_ns();

    if (failed != RH_ERR_STORE_FULL || s->pull == NULL ||
        !rh_pull_room_later(s->pull)) {
        return 0;
    }
    if (s->room_by == 0) {
        s->room_by = now + rh_cfg.put_timeout_ms * 1000000ull;
    }
    if (now >= s->room_by) {
        return 0;
    }
    rh_pull_put(s->pull);
    s->pull = NULL;
    return rh_retry_later(1, rh_task_arg_room_run, rh_task_arg_refetch_drop,
                          s);
}

/* The pull of argument s failed as the rank it read from died (or could
 * not be reached, as happens before its death is known): fetched again
 * after a backoff, a few times. 1 when the task waits on. */
static int rh_task_arg_refetch(rh_task_slot_t *s, int failed)
{
    if (rh_task_arg_room_later(s, failed)) {
        return 1;
    }
    if ((failed != RH_ERR_PEER_FAILED && failed != RH_ERR_TRANSPORT) ||
        s->pull == NULL || s->refetches >= 8) {
        return 0;
    }
    rh_pull_put(s->pull);
    s->pull = NULL;
    s->refetches++;
    return rh_retry_later(s->refetches, rh_task_arg_refetch_run,
                          rh_task_arg_refetch_drop, s);
}

/* An argument's future (or its pull) became final. */
static void rh_task_arg_wake(rh_waiter_t *w, int failed, const char *message)
{
    rh_task_slot_t *s = (rh_task_slot_t *)w;
    rh_task_t *t = s->task;
    int src;

    if (failed && rh_task_arg_refetch(s, failed)) {
        return;   /* still pending: woken again */
    }
    if (failed && s->fut == NULL &&
        !rh_rank_alive((int)rh_object_id_owner(s->id))) {
        char msg[256], ids[RH_OBJECT_ID_STRLEN];

        snprintf(msg, sizeof(msg), "task %s: argument %d, object %s, is lost:"
                 " its owner, rank %u, died", t->fn->name,
                 (int)(s - t->slots), rh_object_id_str(s->id, ids),
                 rh_object_id_owner(s->id));
        rh_task_fail_later(t, RH_ERR_OWNER_DIED, msg);
    } else if (failed) {
        /* A dependent task fails as its argument did (ACTOR_DEAD...). */
        rh_task_fail_later(t, rh_task_dep_status(failed < 0 ?
                           (rh_status_t)failed : RH_ERR_TASK_FAILED),
                           message);
    } else if (s->fut != NULL && s->pull == NULL &&
               rh_future_remote(s->fut) &&
               rh_dir_sources(s->id, &src, 1) == 1 &&
               rh_task_arg_fetch(s, src)) {
        return;   /* still pending: the pull wakes us again */
    }
    if (atomic_fetch_sub_explicit(&t->pending, 1, memory_order_acq_rel) ==
        1) {
        rh_task_ready(t);
    }
}

/* ---- submitting ------------------------------------------------------------ */

static rh_status_t rh_remote_check(const char *name, const rh_arg_t *args,
                                   int nargs, const rh_task_params_t *params,
                                   const rh_fn_entry_t **fn, int *nreturns,
                                   size_t *bytes)
{
    if (!rh_core_initialized()) {
        return rh_error_set(RH_ERR_NOT_INITIALIZED, "call rh_init first");
    }
    if (*fn != NULL) {
        name = (*fn)->name;   /* an actor's method, checked by the caller */
    } else if (name == NULL) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_remote: the function "
                            "name is NULL");
    } else if ((*fn = rh_registry_find(name)) == NULL) {
        return rh_error_set(RH_ERR_UNKNOWN_FUNCTION, "no function named %s is "
                            "registered (rh_register it on every rank before "
                            "rh_init)", name);
    }
    if (nargs > 0 && args == NULL) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "%s: args is NULL but nargs "
                            "is %d", name, nargs);
    }
    {
        rh_status_t status = rh_registry_check_nargs(name, (*fn)->nargs,
                                                     nargs);

        if (status != RH_OK) {
            return status;
        }
    }
    *nreturns = (*fn)->nreturns;
    if (params != NULL &&
        (params->field_mask & RH_TASK_PARAM_FIELD_NUM_RETURNS)) {
        *nreturns = params->num_returns;
    }
    if (*nreturns < 0 || *nreturns > RH_MAX_RETURNS) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "num_returns %d: 0 to %d",
                            *nreturns, RH_MAX_RETURNS);
    }
    if (params != NULL &&
        (params->field_mask & RH_TASK_PARAM_FIELD_MAX_RETRIES) &&
        params->max_retries < -1) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "max_retries %d of %s: 0 "
                            "or more, or -1 for no limit",
                            params->max_retries, name);
    }
    *bytes = 0;
    for (int i = 0; i < nargs; i++) {
        if (args[i].kind == RH_ARG_BYTES) {
            if (args[i].data == NULL && args[i].len != 0) {
                return rh_error_set(RH_ERR_INVALID_PARAM, "argument %d of %s:"
                                    " %zu bytes from NULL", i, name,
                                    args[i].len);
            }
            *bytes += args[i].len;
        } else if (args[i].kind != RH_ARG_REF) {
            return rh_error_set(RH_ERR_INVALID_PARAM, "argument %d of %s: "
                                "kind %d is neither RH_ARG_REF nor "
                                "RH_ARG_BYTES", i, name, (int)args[i].kind);
        } else if (args[i].ref.hi == 0 && args[i].ref.lo == 0) {
            return rh_error_set(RH_ERR_INVALID_REF, "argument %d of %s is "
                                "a null ref", i, name);
        }
    }
    return RH_OK;
}

/* The resources a task asks for: NULL for the default (one CPU). */
static rh_status_t rh_task_resources(const char *name,
                                     const rh_task_params_t *params,
                                     rh_res_req_t **out)
{
    int cpus = 1;
    const char *spec = NULL;
    rh_res_req_t *req;
    rh_status_t status;

    *out = NULL;
    if (params != NULL && (params->field_mask & RH_TASK_PARAM_FIELD_NUM_CPUS)) {
        cpus = params->num_cpus;
    }
    if (params != NULL &&
        (params->field_mask & RH_TASK_PARAM_FIELD_RESOURCES)) {
        spec = params->resources;
    }
    if (cpus == 1 && (spec == NULL || spec[0] == '\0') &&
        !(params != NULL && (params->field_mask & RH_TASK_PARAM_FIELD_FLAGS) &&
          (params->flags & RH_TASK_FLAG_COUNTED))) {
        return RH_OK;
    }
    req = malloc(sizeof(*req));
    if (req == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "task resources");
    }
    status = rh_resources_parse(spec, cpus, req);
    if (status != RH_OK) {
        free(req);
        return rh_error_set(status, "task %s: %s", name, rh_last_error());
    }
    *out = req;
    return RH_OK;
}

/* A task that runs here and asks for more than a CPU: counted from now on;
 * one that can never fit here is accepted with a warning and waits (one
 * into a removed bundle fails instead: no warning). */
static void rh_task_resources_here(const char *name, const rh_res_req_t *req)
{
    char why[256];

    if (req == NULL) {
        return;
    }
    if (!rh_resources_feasible(req, why, sizeof(why)) &&
        !rh_resources_removed(req)) {
        rh_warn("task %s needs %s: it stays pending until it fits", name,
                why);
    }
    rh_resources_activate();
}

/* Ties argument i to its object; returns non-zero when the task must wait
 * for it. */
static rh_status_t rh_task_link_arg(rh_task_t *t, int i, const rh_arg_t *a,
                                    uint8_t **bytes)
{
    rh_task_slot_t *s = &t->slots[i];
    rh_object_id_t id = { a->ref.hi, a->ref.lo };
    char ids[RH_OBJECT_ID_STRLEN];

    s->task = t;
    s->kind = a->kind;
    if (a->kind == RH_ARG_BYTES) {
        if (t->ret_foreign) {
            s->id = id;   /* the ref a forwarded argument came from */
        }
        if (a->len != 0) {
            memcpy(*bytes, a->data, a->len);
        }
        s->data = *bytes;
        s->len = a->len;
        *bytes += a->len;
        return RH_OK;
    }
    s->id = id;
    if (rh_object_id_owner(id) != (uint32_t)rh_rank()) {
        int owner = (int)rh_object_id_owner(id);

        if (owner >= rh_size()) {
            return rh_error_set(RH_ERR_INVALID_REF, "argument %d: object %s "
                                "names a rank outside this job", i,
                                rh_object_id_str(id, ids));
        }
        /* Kept alive at its owner while the task is ours, unless the owner
         * sent us this task: it holds its arguments until our answer. */
        if (!(t->ret_foreign && (uint32_t)owner == t->ret_owner)) {
            rh_borrow_hold(id);
            s->borrowed = 1;
        }
        /* Not in this node's store yet: start bringing it here now (its
         * owner answers once it is final); the task waits for it. */
        s->waiter.wake = rh_task_arg_wake;
        atomic_fetch_add_explicit(&t->pending, 1, memory_order_relaxed);
        if (!rh_task_arg_fetch(s, owner)) {
            if (s->pull != NULL && rh_pull_ended(s->pull) == 2 &&
                rh_pull_status(s->pull) != RH_OK) {
                rh_task_set_dep_error(t, rh_last_error());
            }
            atomic_fetch_sub_explicit(&t->pending, 1, memory_order_relaxed);
        }
        return RH_OK;   /* bound when the task runs */
    }
    s->fut = rh_future_find_hold(id);
    if (s->fut == NULL) {
        return rh_error_set(RH_ERR_INVALID_REF, "argument %d: object %s was "
                            "released or never existed", i,
                            rh_object_id_str(id, ids));
    }
    s->waiter.wake = rh_task_arg_wake;
    atomic_fetch_add_explicit(&t->pending, 1, memory_order_relaxed);
    if (!rh_future_wait_add(s->fut, &s->waiter)) {
        int src;

        /* Final already: account for it here. */
        if (atomic_load(&s->fut->state) == RH_FUTURE_FAILED) {
            rh_task_fail_later(t, rh_task_dep_status(rh_future_status(s->fut)),
                               s->fut->message);
        } else if (rh_future_remote(s->fut) &&
                   rh_dir_sources(id, &src, 1) == 1 &&
                   rh_task_arg_fetch(s, src)) {
            return RH_OK;   /* waits for the pull instead */
        }
        atomic_fetch_sub_explicit(&t->pending, 1, memory_order_relaxed);
    }
    return RH_OK;
}

static void rh_task_answer_nothing(rh_task_t *t, void *arg,
                                   rh_task_ret_t *rets, const char *message)
{
    (void)t;
    (void)arg;
    (void)rets;
    (void)message;
}

static rh_status_t rh_task_submit(const char *name, const rh_arg_t *args,
                                  int nargs, const rh_task_params_t *params,
                                  rh_ref_t *rets, int origin,
                                  uint64_t counter, rh_task_answer_fn answer,
                                  void *answer_arg,
                                  const rh_fn_entry_t *method,
                                  rh_task_t **keep)
{
    const rh_fn_entry_t *fn = method;
    int nreturns = 0;
    size_t bytes = 0;
    rh_res_req_t *res = NULL;
    int forward_to = -1, bundle = 0;
    rh_pg_t pg = 0;
    uint32_t place = 0;
    size_t size;
    rh_task_t *t;
    uint8_t *inline_bytes;
    rh_status_t status;

    status = rh_remote_check(name, args, nargs, params, &fn, &nreturns,
                             &bytes);
    if (status != RH_OK) {
        return status;
    }
    if (nreturns > 0 && rets == NULL && answer == NULL) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "%s has %d returns: rets "
                            "must have room for them", name, nreturns);
    }
    status = rh_task_resources(name, params, &res);
    if (status != RH_OK) {
        return status;
    }
    /* A task sent here by another rank runs here; ours are placed (the
     * placement group's bundle may rewrite what it asks for); an actor's
     * calls go where the actor is. */
    if (origin < 0 && method == NULL) {
        status = rh_pg_route(params, &res, &forward_to);
        if (status == RH_OK && forward_to == RH_PG_NOT_GROUPED) {
            status = rh_place_decide(params, res, &forward_to);
            place = rh_place_pack(params);   /* a rerun is placed so too */
        } else if (status == RH_OK) {
            pg = params->pg;   /* a lost run goes where its bundle is */
            bundle = params->bundle;
        }
        if (status != RH_OK) {
            free(res);
            return status;
        }
    }
    /* Bound for another rank or the global scheduler: wait for a place
     * before anything is allocated, so that a refusal loses nothing. */
    if (origin < 0 && (forward_to >= 0 || forward_to == RH_PLACE_SPILL)) {
        status = rh_admit_take(params != NULL &&
                               (params->field_mask &
                                RH_TASK_PARAM_FIELD_FLAGS) &&
                               (params->flags & RH_TASK_FLAG_NONBLOCK), name);
        if (status != RH_OK) {
            free(res);
            return status;
        }
    }
    if (forward_to == -1) {
        rh_task_resources_here(name, res);
    }
    size = sizeof(*t) + (size_t)nargs * sizeof(rh_task_slot_t) + bytes;
    t = size <= RH_TASK_SMALL ? rh_objcache_get(&rh_task_cache) :
        malloc(size);
    if (t == NULL) {
        free(res);
        if (origin < 0 && (forward_to >= 0 || forward_to == RH_PLACE_SPILL)) {
            rh_admit_release();
        }
        return rh_error_set(RH_ERR_NO_MEMORY, "task %s", name);
    }
    memset(t, 0, sizeof(*t) + (size_t)nargs * sizeof(rh_task_slot_t));
    t->admitted = origin < 0 && (forward_to >= 0 ||
                                 forward_to == RH_PLACE_SPILL);
    t->cached = size <= RH_TASK_SMALL;
    t->res = res;
    t->forward_to = forward_to;
    t->pg = pg;
    t->pg_bundle = bundle;
    t->place = place;
    if (origin >= 0) {
        t->ret_foreign = 1;
        t->ret_owner = (uint32_t)origin;
        t->ret_counter = counter;
        t->answer = answer;
        t->answer_arg = answer_arg;
    }
    t->job.run = rh_task_run;
    t->is_call = method != NULL;
    t->max_retries = RH_TASK_RETRIES_DEFAULT;
    if (params != NULL) {
        if (params->field_mask & RH_TASK_PARAM_FIELD_MAX_RETRIES) {
            t->max_retries = params->max_retries;
        }
        if (params->field_mask & RH_TASK_PARAM_FIELD_RETRY_EXCEPTIONS) {
            t->retry_exceptions = params->retry_exceptions != 0;
        }
    }
    t->fn = fn;
    t->nargs = nargs;
    t->nreturns = nreturns;
    atomic_store_explicit(&t->pending, 1, memory_order_relaxed);
    inline_bytes = (uint8_t *)&t->slots[nargs];
    for (int i = 0; i < nargs; i++) {
        status = rh_task_link_arg(t, i, &args[i], &inline_bytes);
        if (status != RH_OK) {
            goto err_args;
        }
    }
    if (nreturns > 0 && answer == NULL) {
        status = rh_future_block_new(nreturns, &t->block);
        if (status != RH_OK) {
            goto err_args;
        }
        for (int i = 0; i < nreturns; i++) {
            rh_object_id_t id = rh_future_id(t->block, i, 0);

            rets[i].hi = id.hi;
            rets[i].lo = id.lo;
        }
    }
    rh_js_count(RH_JS_CREATED);
    if (keep != NULL) {
        *keep = t;
        return RH_OK;
    }
    /* Drop the submitter's count: the task may start right here. */
    if (atomic_fetch_sub_explicit(&t->pending, 1, memory_order_acq_rel) ==
        1) {
        rh_task_ready(t);
    }
    return RH_OK;

err_args:
    /* Waiters already queued make this unsafe to free only if their
     * futures could still fire: they belong to slots before the failing
     * one, and all of them are refs held by us. Wait them out by letting
     * the task run as failed instead. */
    {
        char msg[512];

        snprintf(msg, sizeof(msg), "%s", rh_last_error());
        if (nreturns > 0 && t->block == NULL && answer == NULL) {
            nreturns = 0;
        }
        t->nreturns = t->block || answer ? nreturns : 0;
        /* The caller answers for a task that was refused (rh_remote
         * returns the error): the run that unwinds it tells no one. */
        t->answer = rh_task_answer_nothing;
        {
            char *expected = NULL, *copy = strdup(msg);

            if (!atomic_compare_exchange_strong(&t->dep_error, &expected,
                                                copy)) {
                free(copy);
            }
        }
        if (atomic_fetch_sub_explicit(&t->pending, 1, memory_order_acq_rel) ==
            1) {
            rh_task_run(&t->job);
        }
        return rh_error_set(status, "%s", msg);
    }
}

rh_status_t rh_remote(const char *name, const rh_arg_t *args, int nargs,
                      const rh_task_params_t *params, rh_ref_t *rets)
{
    return rh_task_submit(name, args, nargs, params, rets, -1, 0, NULL,
                          NULL, NULL, NULL);
}

rh_status_t rh_task_build_call(const rh_fn_entry_t *fn, const rh_arg_t *args,
                               int nargs, int nreturns, rh_ref_t *rets,
                               int origin, uint64_t counter,
                               rh_task_answer_fn answer, void *answer_arg,
                               rh_task_t **out)
{
    rh_task_params_t params;

    params.field_mask = RH_TASK_PARAM_FIELD_NUM_RETURNS;
    params.num_returns = nreturns;
    *out = NULL;
    return rh_task_submit(NULL, args, nargs, &params, rets, origin, counter,
                          answer, answer_arg, fn, out);
}

void rh_task_submitted(rh_task_t *t)
{
    if (atomic_fetch_sub_explicit(&t->pending, 1, memory_order_acq_rel) ==
        1) {
        rh_task_ready(t);
    }
}

rh_status_t rh_task_submit_for(const char *name, const rh_arg_t *args,
                               int nargs, const rh_task_params_t *params,
                               int origin, uint64_t counter,
                               rh_task_answer_fn answer, void *answer_arg)
{
    return rh_task_submit(name, args, nargs, params, NULL, origin, counter,
                          answer, answer_arg, NULL, NULL);
}
