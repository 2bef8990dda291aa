/*
 * An actor on the rank that runs it: its state, its executor threads (one
 * per concurrency slot, named "rayhpc-actor"), its mailbox and, per caller
 * rank, the reorder of calls that arrived out of sequence.
 *
 * The mailbox is an intrusive MPSC queue of call tasks in the order they
 * run: calls of this rank are pushed when they are made, calls of other
 * ranks once every lower sequence number of their caller was pushed (the
 * reorder, kept on the progress thread, where they arrive). The executors
 * take turns as the queue's consumer: the one holding `consume` takes the
 * oldest call, waits for its arguments (a call whose arguments are not
 * there blocks those behind it, as in Ray) and starts it. A push takes no
 * lock and wakes an executor only when one sleeps.
 *
 * Closing: whoever ends the actor sets `closed`, then waits out the pushes
 * already past their check (`pushers`); every push after that is refused,
 * so the executors can tell the last call.
 *
 * Lifetime: the instance is counted: the registry here, each executor, and
 * each call that may still signal its readiness hold a reference.
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/completion.h"
#include "base/config.h"
#include "base/hashmap.h"
#include "base/log.h"
#include "base/mpsc.h"
#include "base/objcache.h"
#include "base/status.h"
#include "core/actor.h"
#include "core/actor_order.h"
#include "core/core.h"
#include "core/placement.h"
#include "core/future.h"
#include "obs/timeline.h"
#include "sched/pool.h"
#include "transport/transport.h"

enum { RH_INST_RUNNING = 0, RH_INST_DRAIN = 1, RH_INST_KILL = 2 };


/* What each call writes sits on cache lines apart by who writes it: the
 * pusher (the progress thread, for calls of other ranks) its counts, the
 * executor what it takes. The executor's `head` and lock shared a line
 * with `pushers`, which then crossed between the two cores on every
 * call. */
#define RH_INST_LINE 64

struct rh_actor_inst {
    /* read-mostly */
    rh_actor_t              actor;
    const rh_class_entry_t *cls;
    void                   *state;
    int                     nthreads;
    int                     detached;
    char                    name[RH_ATAB_NAME_MAX];   /* "" if none */
    _Atomic int             owner_gone; /* ended for, or after, its owner's
                                         * death: nobody else frees the
                                         * name */
    _Atomic int             live_threads;
    _Atomic int             ending;       /* RH_INST_* */

    /* the constructor, run by the first executor */
    rh_task_ctx_t          *ctor_ctx;
    _Atomic int             ctor_claimed; /* the first executor's */
    _Atomic int             ctor_done;    /* 1: ran; 2: failed */
    rh_status_t             ctor_status;

    /* the pusher's: a reference per call, the closing handshake */
    _Alignas(RH_INST_LINE) _Atomic int refs;
    _Atomic int             pushers;
    _Atomic int             closed;
    _Atomic int             gone;         /* out of the registry */

    /* the mailbox: both sides */
    _Alignas(RH_INST_LINE) rh_mpsc_t mailbox;

    /* the executor's */
    _Alignas(RH_INST_LINE) pthread_mutex_t consume;
    rh_task_t              *head;         /* taken, not yet started */
    /* Why it ended: each written once, before ending says which one
     * holds (RH_INST_RUNNING: why, the default). */
    char                    why[256];
    char                    why_drain[256];
    char                    why_kill[256];
    _Atomic int             drain_claimed;
    _Atomic int             kill_claimed;

    /* sleeping executors */
    pthread_mutex_t         mtx;
    pthread_cond_t          cond;
    _Atomic int             sleepers;

    /* the reorder, on the progress thread */
    rh_hmap_t               callers;      /* rank -> rh_order_t */

    int                     keeps_res;
    rh_res_req_t            res;
    rh_gpu_hold_t           gpu;          /* its constructor's devices */
    rh_tp_op_t              ended_op;
    uint32_t                epoch;        /* its owner's restart count */

    /* checkpoints (one executor: calls run one at a time) */
    int                     ckpt_interval;
    uint64_t               *applied;      /* per caller rank: the last
                                           * number run; NULL: none taken */
    uint64_t                since;        /* calls since the last one */
    _Atomic int             ckpt_asked;
    const uint8_t          *restore;      /* the creation's checkpoint */
    size_t                  restore_len;
    int                     restored;     /* numbers it skips ran before */
};

/* The instances here, by handle. */
static pthread_mutex_t rh_inst_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rh_inst_gone = PTHREAD_COND_INITIALIZER;
static rh_hmap_t rh_insts = RH_HMAP_INITIALIZER(sizeof(rh_actor_t),
                                                sizeof(rh_actor_inst_t *));

void rh_actor_inst_get(rh_actor_inst_t *inst)
{
    atomic_fetch_add_explicit(&inst->refs, 1, memory_order_relaxed);
}

static const char *rh_inst_why(rh_actor_inst_t *inst)
{
    switch (atomic_load_explicit(&inst->ending, memory_order_acquire)) {
    case RH_INST_KILL:
        return inst->why_kill;
    case RH_INST_DRAIN:
        return inst->why_drain;
    default:
        return inst->why;
    }
}

/* A call the instance ends without running: its caller may send it again
 * to a restarted instance (call_unrun). */
static void rh_inst_drop_call(void *arg, void *item)
{
    ((rh_task_t *)item)->call_unrun = 1;
    rh_actor_call_reject(item, RH_ERR_ACTOR_DEAD, arg);
}

static void rh_inst_free(rh_actor_inst_t *inst)
{
    rh_order_t o;

    while (rh_hmap_pop(&inst->callers, NULL, &o)) {
        rh_order_fini(&o, NULL, NULL);
    }
    rh_hmap_fini(&inst->callers);
    pthread_mutex_destroy(&inst->consume);
    pthread_mutex_destroy(&inst->mtx);
    pthread_cond_destroy(&inst->cond);
    free(inst->applied);
    free(inst);
}

void rh_actor_inst_put(rh_actor_inst_t *inst)
{
    if (atomic_fetch_sub_explicit(&inst->refs, 1, memory_order_acq_rel) ==
        1) {
        rh_inst_free(inst);
    }
}

rh_actor_inst_t *rh_actor_inst_find(rh_actor_t actor)
{
    rh_actor_inst_t **p, *inst = NULL;

    pthread_mutex_lock(&rh_inst_lock);
    p = rh_hmap_get(&rh_insts, &actor);
    if (p != NULL) {
        inst = *p;
        rh_actor_inst_get(inst);
    }
    pthread_mutex_unlock(&rh_inst_lock);
    return inst;
}

/* The instances the progress thread found last for arriving calls, one per
 * hash of the handle, each with a reference of its own: a stream of calls
 * finds its actor without the registry's lock and hash. Only the progress
 * thread (whoever holds the worker) reads or changes the slots, so they
 * need no lock; an instance that left the registry (gone, set before it
 * leaves) is dropped from its slot by the next look, and what is left is
 * dropped at teardown, after the progress thread stopped. Only instances
 * whose constructor ran are kept: a creation that fails later frees its
 * instance at once. */
#define RH_INST_HOT 64   /* a power of two */
static rh_actor_inst_t *rh_inst_hot[RH_INST_HOT];

static inline unsigned rh_inst_hot_slot(rh_actor_t actor)
{
    uint64_t h = (actor.hi ^ actor.lo) * 0x9e3779b97f4a7c15ull;

    return (unsigned)(h >> 58) & (RH_INST_HOT - 1);
}

rh_actor_inst_t *rh_actor_inst_find_here(rh_actor_t actor)
{
    rh_actor_inst_t **slot, *inst;

    if (rh_unlikely(!rh_tp_on_progress_thread())) {
        return rh_actor_inst_find(actor);
    }
    slot = &rh_inst_hot[rh_inst_hot_slot(actor)];
    inst = *slot;
    if (rh_likely(inst != NULL && inst->actor.lo == actor.lo &&
                  inst->actor.hi == actor.hi &&
                  !atomic_load_explicit(&inst->gone,
                                        memory_order_acquire))) {
        rh_actor_inst_get(inst);
        return inst;
    }
    inst = rh_actor_inst_find(actor);
    if (inst != NULL &&
        atomic_load_explicit(&inst->ctor_done, memory_order_acquire) == 1) {
        if (*slot != NULL) {
            rh_actor_inst_put(*slot);
        }
        rh_actor_inst_get(inst);   /* the slot's */
        *slot = inst;
    } else if (*slot != NULL &&
               atomic_load_explicit(&(*slot)->gone, memory_order_acquire)) {
        rh_actor_inst_put(*slot);
        *slot = NULL;
    }
    return inst;
}

void rh_actor_inst_hot_clear(void)
{
    for (int i = 0; i < RH_INST_HOT; i++) {
        if (rh_inst_hot[i] != NULL) {
            rh_actor_inst_put(rh_inst_hot[i]);
            rh_inst_hot[i] = NULL;
        }
    }
}

/* ---- waking ------------------------------------------------------------ */

static void rh_inst_wake(rh_actor_inst_t *inst)
{
    if (atomic_load_explicit(&inst->sleepers, memory_order_seq_cst) != 0) {
        pthread_mutex_lock(&inst->mtx);
        pthread_cond_broadcast(&inst->cond);
        pthread_mutex_unlock(&inst->mtx);
    }
}

/* A call's actor_ready: its arguments are there (READY), or a kill took
 * it from the mailbox before (ORPHAN): whichever of the two comes second
 * fails it. */
enum { RH_CALL_WAITING = 0, RH_CALL_READY = 1, RH_CALL_ORPHAN = 2 };

/* The call's arguments are there (rh_task_dispatch). */
void rh_actor_call_ready(rh_task_t *t)
{
    rh_actor_inst_t *inst = t->actor_inst;
    int expected = RH_CALL_WAITING;

    /* After this exchange the executor may run and free t: read it
     * first. */
    if (!atomic_compare_exchange_strong(&t->actor_ready, &expected,
                                        RH_CALL_READY)) {
        rh_task_run_call(t, NULL);   /* killed meanwhile: fails */
    } else {
        rh_inst_wake(inst);
    }
    rh_actor_inst_put(inst);
}

int rh_actor_inst_detached(const rh_actor_inst_t *inst)
{
    return inst->detached;
}

void rh_actor_inst_owner_gone(rh_actor_inst_t *inst)
{
    atomic_store(&inst->owner_gone, 1);
}

int rh_actor_inst_push(rh_actor_inst_t *inst, rh_task_t *t)
{
    atomic_fetch_add_explicit(&inst->pushers, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&inst->closed, memory_order_seq_cst)) {
        atomic_fetch_sub_explicit(&inst->pushers, 1, memory_order_seq_cst);
        return -1;
    }
    rh_actor_inst_get(inst);   /* dropped once the call is ready */
    t->actor_inst = inst;
    rh_mpsc_push(&inst->mailbox, &t->job.node);
    atomic_fetch_sub_explicit(&inst->pushers, 1, memory_order_seq_cst);
    rh_inst_wake(inst);
    return 0;
}

/* ---- the executors ------------------------------------------------------ */

static rh_task_t *rh_inst_pop(rh_actor_inst_t *inst)
{
    rh_mpsc_node_t *n = rh_mpsc_pop(&inst->mailbox);

    return n ? (rh_task_t *)((char *)n - offsetof(rh_task_t, job.node)) :
           NULL;
}

/* A kill: every call not started fails now, those whose arguments are
 * still coming once they are there. Under consume. */
static void rh_inst_drain_killed(rh_actor_inst_t *inst)
{
    for (;;) {
        rh_task_t *t = inst->head ? inst->head : rh_inst_pop(inst);
        int expected = RH_CALL_WAITING;

        inst->head = NULL;
        if (t == NULL) {
            return;
        }
        rh_task_fail_later(t, RH_ERR_ACTOR_DEAD, rh_inst_why(inst));
        t->call_unrun = 1;
        if (!atomic_compare_exchange_strong(&t->actor_ready, &expected,
                                            RH_CALL_ORPHAN)) {
            rh_task_run_call(t, NULL);   /* ready: fails at once */
        }
    }
}

/* Whether an executor has something to do: the head call is ready, or the
 * actor ends and nothing is left. Under consume. */
static int rh_inst_can_go(rh_actor_inst_t *inst)
{
    if (atomic_load_explicit(&inst->ending, memory_order_acquire) ==
        RH_INST_KILL) {
        rh_inst_drain_killed(inst);
    }
    if (inst->head == NULL) {
        inst->head = rh_inst_pop(inst);
    }
    if (inst->head != NULL) {
        return atomic_load_explicit(&inst->head->actor_ready,
                                    memory_order_seq_cst) == RH_CALL_READY;
    }
    return atomic_load_explicit(&inst->ending, memory_order_seq_cst) !=
           RH_INST_RUNNING &&
           atomic_load_explicit(&inst->pushers, memory_order_seq_cst) == 0 &&
           rh_mpsc_idle(&inst->mailbox);
}

/* The next call to run, in order; NULL once the actor ended. */
static rh_task_t *rh_inst_next(rh_actor_inst_t *inst)
{
    rh_task_t *t;
    int driving = 0, go;

    pthread_mutex_lock(&inst->consume);
    /* Spin a while first, as the pool's workers do: a call that follows
     * at once (pipelined callers, round trips) then costs no wake-up, and
     * a wake-up on a host with fewer cores than threads can wait for a
     * time slice. Meanwhile the executor drives the network, as an idle
     * pool worker does: the next call's message is then received on this
     * thread and runs here at once, with no progress thread to schedule
     * in between (on few cores, a context switch a call). Handlers that
     * run meanwhile never wait for `consume` (a kill only tries it). */
    for (unsigned idle = 0; !(go = rh_inst_can_go(inst)) &&
                            idle < RH_POOL_SPIN_DEFAULT; idle++) {
        if (rh_cfg.drive_us != 0 &&
            (driving || (driving = rh_tp_drive_begin())) &&
            rh_tp_drive() > 0) {
            continue;   /* it may have brought the call: look at once */
        }
        rh_cpu_relax();
        if ((idle & 63) == 63) {
            sched_yield();
        }
    }
    /* A call to run: the network goes back without a wake (the progress
     * thread takes it within RH_TP_ASIDE_US, as after a pool job). Going
     * to sleep: it goes back at once. */
    if (driving) {
        if (go) {
            rh_tp_drive_leave();
        } else {
            rh_tp_drive_end();
        }
    }
    while (!rh_inst_can_go(inst)) {
        atomic_fetch_add_explicit(&inst->sleepers, 1, memory_order_seq_cst);
        pthread_mutex_lock(&inst->mtx);
        while (!rh_inst_can_go(inst)) {
            pthread_cond_wait(&inst->cond, &inst->mtx);
        }
        pthread_mutex_unlock(&inst->mtx);
        atomic_fetch_sub_explicit(&inst->sleepers, 1, memory_order_seq_cst);
    }
    t = inst->head;
    inst->head = NULL;
    pthread_mutex_unlock(&inst->consume);
    if (t == NULL) {
        rh_inst_wake(inst);   /* the others see the end too */
    }
    return t;
}

static void rh_inst_ended_run(rh_tp_op_t *op)
{
    rh_actor_inst_t *inst = (rh_actor_inst_t *)((char *)op -
                            offsetof(rh_actor_inst_t, ended_op));
    int killed = atomic_load(&inst->ending) == RH_INST_KILL;
    rh_order_t o;

    /* Calls still out of order will never run. */
    while (rh_hmap_pop(&inst->callers, NULL, &o)) {
        rh_order_fini(&o, rh_inst_drop_call, (void *)rh_inst_why(inst));
    }
    /* Gone from the registry before the owner hears it: a restart the
     * owner starts then may land on this rank again. */
    atomic_store_explicit(&inst->gone, 1, memory_order_release);
    pthread_mutex_lock(&rh_inst_lock);
    (void)rh_hmap_del(&rh_insts, &inst->actor, NULL);
    pthread_cond_broadcast(&rh_inst_gone);
    pthread_mutex_unlock(&rh_inst_lock);
    rh_actor_ended_here(inst->actor, killed, rh_inst_why(inst), inst->name,
                        atomic_load(&inst->owner_gone));
    rh_actor_inst_put(inst);   /* the registry's */
}

/* The last executor out: destructor, resources, then the progress thread
 * unregisters the instance and tells the owner. */
static void rh_inst_finish(rh_actor_inst_t *inst)
{
    if (atomic_load(&inst->ctor_done) == 1 && inst->cls->cls.fini != NULL) {
        inst->cls->cls.fini(inst->state);
    }
    if (inst->keeps_res) {
        rh_gpu_hold_release(&inst->gpu);
        rh_resources_release(&inst->res);
        rh_place_actor_cpus(-inst->res.cpus);
        inst->keeps_res = 0;
    }
    inst->ended_op.run = rh_inst_ended_run;
    if (rh_tp_running()) {
        rh_tp_post(&inst->ended_op);
    } else {
        rh_inst_ended_run(&inst->ended_op);
    }
}

static void rh_inst_applied(rh_actor_inst_t *inst, int src, uint64_t seq);

static void *rh_inst_thread(void *arg)
{
    rh_actor_inst_t *inst = arg;
    rh_task_t *t;

    rh_core_runtime_thread();
    pthread_setname_np(pthread_self(), "rayhpc-actor");
    if (atomic_exchange(&inst->ctor_claimed, 1) == 0) {
        /* The first executor runs the constructor, then starts the
         * others. */
        uint64_t tl0 = rh_tl_begin();
        rh_status_t status;

        if (inst->restore != NULL) {
            rh_ckpt_hdr_t h = { 0, 0, 0 };
            const uint8_t *callers = NULL, *state = NULL;

            (void)rh_ckpt_parse(inst->restore, inst->restore_len, &h,
                                &callers, &state);
            status = inst->cls->cls.restore(state, (size_t)h.state_len,
                                            &inst->state);
        } else {
            status = inst->cls->cls.init(inst->ctor_ctx, &inst->state);
        }

        rh_tl_end(RH_TL_CALL, inst->cls->name, tl0, -1, 0);

        if (status != RH_OK || inst->ctor_ctx->failed) {
            inst->ctor_status = status != RH_OK ? status : RH_ERR_TASK_FAILED;
            if (!inst->ctor_ctx->failed) {
                snprintf(inst->ctor_ctx->message,
                         sizeof(inst->ctor_ctx->message), "the constructor "
                         "of %s failed: %s", inst->cls->name,
                         rh_status_string(status));
            }
        }
        for (int i = 1; i < inst->nthreads && inst->ctor_status == RH_OK;
             i++) {
            pthread_t th;
            pthread_attr_t attr;

            pthread_attr_init(&attr);
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            atomic_fetch_add(&inst->live_threads, 1);
            rh_actor_inst_get(inst);
            if (pthread_create(&th, &attr, rh_inst_thread, inst) != 0) {
                atomic_fetch_sub(&inst->live_threads, 1);
                rh_actor_inst_put(inst);
                rh_warn("actor %s: could not start executor %d of %d: it "
                        "runs fewer calls at once", inst->cls->name, i + 1,
                        inst->nthreads);
            }
            pthread_attr_destroy(&attr);
        }
        atomic_store(&inst->ctor_done, inst->ctor_status == RH_OK ? 1 : 2);
        rh_future_notify();   /* the creation task waits for this */
    }
    while ((t = rh_inst_next(inst)) != NULL) {
        if (inst->applied == NULL) {
            rh_task_run_call(t, inst->state);
        } else {
            int src = t->answer != NULL ? (int)t->ret_owner : -1;
            uint64_t seq = t->call_seq;

            rh_task_run_call(t, inst->state);   /* frees t */
            rh_inst_applied(inst, src, seq);
        }
    }
    /* Detached: finalize waits for the count below, not for our end. */
    rh_objcache_thread_done();
    if (atomic_fetch_sub(&inst->live_threads, 1) == 1) {
        rh_inst_finish(inst);
    }
    rh_actor_inst_put(inst);
    return NULL;
}

/* Takes a checkpoint: the class's save, behind the last number run of
 * each caller, to the owner. A failed save is said and skipped: the
 * previous checkpoint stays. */
static void rh_inst_checkpoint(rh_actor_inst_t *inst)
{
    rh_task_ret_t ret = { NULL, 0, 0, 0, 0, NULL };
    rh_task_ctx_t ctx;
    rh_ckpt_hdr_t h = { 0, 0, 0 };
    rh_status_t status;
    uint8_t *blob;
    size_t off;

    memset(&ctx, 0, sizeof(ctx));
    ctx.rets = &ret;
    ctx.state = inst->state;
    ctx.actor = inst->actor;
    status = inst->cls->cls.save(inst->state, &ctx);
    if (status != RH_OK || ctx.failed || !ret.set) {
        rh_warn("actor %s: its checkpoint was not taken: %s", inst->cls->name,
                ctx.failed ? ctx.message : status != RH_OK ?
                rh_status_string(status) : "save wrote no return 0");
        free((void *)ret.data);
        return;
    }
    for (int r = 0; r < rh_size(); r++) {
        h.ncallers += inst->applied[r] != 0;
    }
    h.state_len = ret.len;
    blob = malloc(sizeof(h) + h.ncallers * sizeof(rh_ckpt_caller_t) +
                  ret.len);
    if (blob == NULL) {
        rh_warn("actor %s: its checkpoint was not taken: out of memory",
                inst->cls->name);
        free((void *)ret.data);
        return;
    }
    memcpy(blob, &h, sizeof(h));
    off = sizeof(h);
    for (int r = 0; r < rh_size(); r++) {
        rh_ckpt_caller_t c = { r, inst->applied[r] };

        if (c.seq != 0) {
            memcpy(blob + off, &c, sizeof(c));
            off += sizeof(c);
        }
    }
    memcpy(blob + off, ret.data, ret.len);
    free((void *)ret.data);
    rh_actor_checkpoint_taken(inst->actor, inst->epoch, blob, off + ret.len);
    free(blob);
}

/* A call of caller src (seq; -1 and 0 for this rank's own) ran: every
 * ckpt_interval calls, or when a method asked, a checkpoint. */
static void rh_inst_applied(rh_actor_inst_t *inst, int src, uint64_t seq)
{
    if (src >= 0 && src < rh_size() && seq != 0) {
        inst->applied[src] = seq;
    }
    inst->since++;
    if ((inst->ckpt_interval > 0 &&
         inst->since >= (uint64_t)inst->ckpt_interval) ||
        atomic_exchange_explicit(&inst->ckpt_asked, 0,
                                 memory_order_relaxed)) {
        inst->since = 0;
        rh_inst_checkpoint(inst);
    }
}

rh_status_t rh_actor_inst_ask_checkpoint(rh_actor_inst_t *inst)
{
    if (inst->applied == NULL) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "actor %s takes no "
                            "checkpoints (it needs max_restarts and a class "
                            "with save and restore)", inst->cls->name);
    }
    atomic_store_explicit(&inst->ckpt_asked, 1, memory_order_relaxed);
    return RH_OK;
}

static int rh_inst_ctor_done(void *arg)
{
    return atomic_load(&((rh_actor_inst_t *)arg)->ctor_done) != 0;
}

rh_status_t rh_actor_inst_create(const rh_class_entry_t *cls,
                                 const rh_actor_meta_t *meta,
                                 rh_task_ctx_t *ctx, const void *ckpt,
                                 size_t ckpt_len, char *msg, size_t len,
                                 rh_actor_inst_t **out)
{
    /* (aligned: see RH_INST_LINE) */
    size_t size = (sizeof(rh_actor_inst_t) + RH_INST_LINE - 1) /
                  RH_INST_LINE * RH_INST_LINE;
    rh_actor_inst_t *inst = aligned_alloc(RH_INST_LINE, size);
    rh_actor_inst_t **slot;
    pthread_attr_t attr;
    pthread_t th;
    int added = 0;

    *out = NULL;
    if (inst == NULL) {
        snprintf(msg, len, "out of memory creating actor %s", cls->name);
        return RH_ERR_NO_MEMORY;
    }
    memset(inst, 0, size);
    inst->actor.hi = meta->actor_hi;
    inst->actor.lo = meta->actor_lo;
    inst->cls = cls;
    inst->nthreads = meta->max_concurrency;
    inst->detached = meta->detached;
    memcpy(inst->name, meta->name, sizeof(inst->name));
    inst->name[sizeof(inst->name) - 1] = '\0';
    inst->epoch = (uint32_t)meta->epoch;
    inst->ctor_ctx = ctx;
    /* The registry's, the thread's, and ours while we wait for the
     * constructor: a kill meanwhile (rh_finalize ends every actor) may end
     * and unregister the instance before the wait sees ctor_done. */
    atomic_init(&inst->refs, 3);
    atomic_init(&inst->live_threads, 1);
    rh_mpsc_init(&inst->mailbox);
    pthread_mutex_init(&inst->consume, NULL);
    pthread_mutex_init(&inst->mtx, NULL);
    pthread_cond_init(&inst->cond, NULL);
    rh_hmap_init(&inst->callers, sizeof(int64_t), sizeof(rh_order_t));
    if (meta->checkpoints &&
        (inst->applied = calloc((size_t)rh_size(), sizeof(uint64_t))) ==
        NULL) {
        snprintf(msg, len, "out of memory creating actor %s", cls->name);
        rh_inst_free(inst);
        return RH_ERR_NO_MEMORY;
    }
    inst->ckpt_interval = meta->ckpt_interval;
    if (ckpt != NULL) {
        rh_ckpt_hdr_t h;
        const uint8_t *callers, *state;

        if (rh_ckpt_parse(ckpt, ckpt_len, &h, &callers, &state) != 0 ||
            inst->applied == NULL || cls->cls.restore == NULL) {
            snprintf(msg, len, "actor %s: its checkpoint came malformed",
                     cls->name);
            rh_inst_free(inst);
            return RH_ERR_MALFORMED;
        }
        /* Each caller's calls go on after the last one it covers. */
        for (uint32_t i = 0; i < h.ncallers; i++) {
            rh_ckpt_caller_t c;
            rh_order_t *o;
            int fresh;

            memcpy(&c, callers + i * sizeof(c), sizeof(c));
            if (c.rank < 0 || c.rank >= rh_size()) {
                continue;
            }
            o = rh_hmap_put(&inst->callers, &c.rank, &fresh);
            if (o == NULL) {
                snprintf(msg, len, "out of memory creating actor %s",
                         cls->name);
                rh_inst_free(inst);
                return RH_ERR_NO_MEMORY;
            }
            if (fresh) {
                rh_order_init(o);
            }
            o->next = c.seq + 1;
            inst->applied[c.rank] = c.seq;
        }
        inst->restore = ckpt;
        inst->restore_len = ckpt_len;
        inst->restored = 1;
    }
    snprintf(inst->why, sizeof(inst->why), "actor %s on rank %d ended",
             cls->name, rh_rank());
    pthread_mutex_lock(&rh_inst_lock);
    slot = rh_hmap_put(&rh_insts, &inst->actor, &added);
    if (slot != NULL && added) {
        *slot = inst;
    }
    pthread_mutex_unlock(&rh_inst_lock);
    if (slot == NULL || !added) {
        snprintf(msg, len, "actor %s: %s", cls->name, slot == NULL ?
                 "out of memory" : "its handle exists here already");
        rh_inst_free(inst);
        return slot == NULL ? RH_ERR_NO_MEMORY : RH_ERR_INVALID_PARAM;
    }
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &attr, rh_inst_thread, inst) != 0) {
        pthread_attr_destroy(&attr);
        snprintf(msg, len, "actor %s: no thread could be started for it",
                 cls->name);
        pthread_mutex_lock(&rh_inst_lock);
        (void)rh_hmap_del(&rh_insts, &inst->actor, NULL);
        pthread_mutex_unlock(&rh_inst_lock);
        rh_inst_free(inst);
        return RH_ERR_NO_MEMORY;
    }
    pthread_attr_destroy(&attr);
    /* On a worker this runs other tasks meanwhile; it lends them none of
     * the CPUs the actor will keep for life (one of them would keep them
     * too), only those of a creation that keeps nothing. */
    if (meta->keep_res) {
        (void)rh_core_wait_until_keeping(rh_inst_ctor_done, inst, 0);
    } else {
        (void)rh_core_wait_until(rh_inst_ctor_done, inst, 0);
    }
    if (atomic_load(&inst->ctor_done) == 2) {
        rh_status_t status = inst->ctor_status;
        char why[sizeof(ctx->message) + 96];

        snprintf(msg, len, "%s", ctx->message);
        snprintf(why, sizeof(why), "actor %s could not be created: %s",
                 cls->name, ctx->message);
        rh_actor_inst_end(inst, 1, why);
        rh_actor_inst_put(inst);   /* ours: may free inst */
        return status;
    }
    inst->ctor_ctx = NULL;
    inst->restore = NULL;   /* the creation's argument goes with it */
    *out = inst;               /* ours becomes the caller's */
    return RH_OK;
}

uint32_t rh_actor_inst_epoch(const rh_actor_inst_t *inst)
{
    return inst->epoch;
}

void rh_actor_inst_keep(rh_actor_inst_t *inst, const rh_res_req_t *res)
{
    inst->res = *res;
    inst->keeps_res = 1;
    rh_place_actor_cpus(res->cpus);   /* the global scheduler's books */
    if (rh_gpu_req_wants(res)) {
        rh_gpu_task_keep(&inst->gpu);
    }
}

const rh_gpu_hold_t *rh_actor_inst_gpu(const rh_actor_inst_t *inst)
{
    return inst->keeps_res && inst->gpu.ndev > 0 ? &inst->gpu : NULL;
}

void rh_actor_inst_end(rh_actor_inst_t *inst, int kill, const char *why)
{
    int expected = RH_INST_RUNNING;

    if (kill) {
        /* A kill overrides a drain in progress. */
        if (!atomic_exchange(&inst->kill_claimed, 1)) {
            snprintf(inst->why_kill, sizeof(inst->why_kill), "%s", why);
            atomic_store(&inst->ending, RH_INST_KILL);
        }
    } else if (!atomic_exchange(&inst->drain_claimed, 1)) {
        snprintf(inst->why_drain, sizeof(inst->why_drain), "%s", why);
        (void)atomic_compare_exchange_strong(&inst->ending, &expected,
                                             RH_INST_DRAIN);
    }
    atomic_store_explicit(&inst->closed, 1, memory_order_seq_cst);
    /* Calls not started fail now: here when no executor is choosing,
     * else by the executor that is (woken below). */
    if (kill && pthread_mutex_trylock(&inst->consume) == 0) {
        rh_inst_drain_killed(inst);
        pthread_mutex_unlock(&inst->consume);
    }
    pthread_mutex_lock(&inst->mtx);
    pthread_cond_broadcast(&inst->cond);
    pthread_mutex_unlock(&inst->mtx);
}

/* ---- calls of other ranks, in their order (progress thread) --------------- */

/* The next call of a caller, in its order: to the mailbox. */
static void rh_inst_run_in_order(void *arg, void *item)
{
    rh_actor_inst_t *inst = arg;
    rh_task_t *t = item;

    if (rh_actor_inst_push(inst, t) != 0) {
        rh_inst_drop_call((void *)rh_inst_why(inst), t);
        return;
    }
    rh_task_submitted(t);
}

void rh_actor_inst_arrived(rh_actor_inst_t *inst, int src, uint64_t seq,
                           rh_task_t *t)
{
    int64_t key = src;
    int added, rc;
    rh_order_t *o = rh_hmap_put(&inst->callers, &key, &added);

    if (o != NULL && added) {
        rh_order_init(o);
        if (inst->epoch > 0) {
            o->next = 0;   /* a restart: the caller says where it starts */
        }
    }
    rc = o == NULL ? -2 : rh_order_arrive(o, seq, t ? (void *)t :
                                          RH_ORDER_SKIP,
                                          rh_inst_run_in_order, inst);
    if (rc == -1 && t != NULL && inst->epoch > 0) {
        char msg[320];

        /* Sent again to a restored instance: it ran before the checkpoint
         * this one started from, and its returns died with its rank. */
        snprintf(msg, sizeof(msg), "the call of %s to actor %s ran before "
                 "the checkpoint its restarted instance started from; its "
                 "returns were lost with the rank that ran it", t->fn->name,
                 inst->cls->name);
        rh_actor_call_reject(t, RH_ERR_ACTOR_DEAD, msg);
    } else if (rc != 0 && t != NULL) {
        rh_actor_call_reject(t, rc == -1 ? RH_ERR_MALFORMED :
                             RH_ERR_NO_MEMORY, rc == -1 ? "a call repeated "
                             "a sequence number of its caller" : "out of "
                             "memory ordering an actor's calls");
    }
}

void rh_actor_inst_from(rh_actor_inst_t *inst, int src, uint64_t first)
{
    int64_t key = src;
    int added;
    rh_order_t *o;

    if (inst->epoch == 0) {
        return;   /* the first instance: numbers start at 1 */
    }
    o = rh_hmap_put(&inst->callers, &key, &added);
    if (o == NULL) {
        rh_warn("actor %s: no memory to order the calls of rank %d",
                inst->cls->name, src);
        return;
    }
    if (added) {
        rh_order_init(o);
        o->next = 0;
    }
    rh_order_start(o, first, rh_inst_run_in_order, inst);
}

void rh_actor_inst_caller_died(int rank)
{
    rh_hmap_iter_t it;
    void *k, *v;
    int64_t key = rank;

    pthread_mutex_lock(&rh_inst_lock);
    rh_hmap_iter_init(&it, &rh_insts);
    while (rh_hmap_iter_next(&it, &k, &v)) {
        rh_actor_inst_t *inst = *(rh_actor_inst_t **)v;
        rh_order_t o;

        if (rh_hmap_del(&inst->callers, &key, &o)) {
            rh_order_fini(&o, rh_inst_drop_call, "its caller died");
        }
    }
    pthread_mutex_unlock(&rh_inst_lock);
}

/* ---- ending many ------------------------------------------------------------ */

void rh_actor_inst_end_owned_by(int rank, const char *why)
{
    rh_hmap_iter_t it;
    void *k, *v;

    pthread_mutex_lock(&rh_inst_lock);
    rh_hmap_iter_init(&it, &rh_insts);
    while (rh_hmap_iter_next(&it, &k, &v)) {
        rh_actor_inst_t *inst = *(rh_actor_inst_t **)v;

        if (rank < 0 || (rh_actor_owner(inst->actor) == (uint32_t)rank &&
                         !inst->detached)) {
            char msg[320];

            snprintf(msg, sizeof(msg), "actor %s on rank %d %s",
                     inst->cls->name, rh_rank(), why);
            if (rank >= 0) {
                rh_actor_inst_owner_gone(inst);
            }
            rh_actor_inst_end(inst, 1, msg);
        }
    }
    pthread_mutex_unlock(&rh_inst_lock);
}

void rh_actor_inst_end_all(const char *why)
{
    rh_actor_inst_end_owned_by(-1, why);
    pthread_mutex_lock(&rh_inst_lock);
    while (rh_hmap_count(&rh_insts) != 0) {
        pthread_cond_wait(&rh_inst_gone, &rh_inst_lock);
    }
    pthread_mutex_unlock(&rh_inst_lock);
}
