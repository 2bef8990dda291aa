/*
 * librayhpc: the Ray programming model (tasks, futures, an object store,
 * actors) for HPC clusters, over UCX.
 *
 * A program links -lrayhpc, is started like any MPI code (srun --mpi=pmix,
 * mpirun, or the bundled `rayhpc-run -n N` on one host; started alone it is a
 * one-rank job) and calls rh_init() first and rh_finalize() last on every
 * rank. Every rank runs the same binary; rank 0 is the driver by convention.
 *
 * Conventions:
 *   - Every call that can fail returns rh_status_t. RH_OK is 0, errors are
 *     negative. rh_status_string() names a code; rh_last_error() gives the
 *     sentence describing the last error raised on the calling thread.
 *   - Parameter structs carry a field_mask saying which fields the caller
 *     set, so that the structs can grow without breaking programs compiled
 *     against an older header. A NULL params pointer means all defaults.
 *   - Settings come from RAYHPC_* environment variables (`rayhpc-info` lists
 *     them all with their documentation); a variable that is set overrides
 *     the value the program passed in params.
 */
#ifndef RAYHPC_H
#define RAYHPC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with -fvisibility=hidden: the functions marked with
 * this are all it exports, its whole ABI. */
#if defined(__GNUC__) && __GNUC__ >= 4
#define RH_EXPORT __attribute__((visibility("default")))
#else
#define RH_EXPORT
#endif

#define RH_VERSION_MAJOR 0
#define RH_VERSION_MINOR 1
#define RH_VERSION_PATCH 0

/* ------------------------------------------------------------------------ */
/* Status codes                                                             */
/* ------------------------------------------------------------------------ */

typedef enum rh_status {
    RH_OK                      =   0,
    RH_ERR_INVALID_PARAM       =  -1,  /* a NULL or out-of-range argument */
    RH_ERR_NO_MEMORY           =  -2,
    RH_ERR_NOT_INITIALIZED     =  -3,  /* called before rh_init() */
    RH_ERR_ALREADY_INITIALIZED =  -4,
    RH_ERR_BOOTSTRAP           =  -5,  /* PMIx / MPI / launcher exchange */
    RH_ERR_TRANSPORT           =  -6,  /* UCX reported an error */
    RH_ERR_PEER_FAILED         =  -7,  /* the rank on the other side died */
    RH_ERR_TIMEOUT             =  -8,
    RH_ERR_MALFORMED           =  -9,  /* a message failed validation */
    RH_ERR_UNSUPPORTED         = -10,  /* not built in, or not on this system */
    RH_ERR_TOO_LARGE           = -11,
    RH_ERR_STORE_FULL          = -12,
    RH_ERR_TASK_FAILED         = -13,
    RH_ERR_UNKNOWN_FUNCTION    = -14,
    RH_ERR_BAD_ARG_COUNT       = -15,
    RH_ERR_INVALID_REF         = -16,
    RH_ERR_CONFIG              = -17,  /* a RAYHPC_* setting has a bad value */
    RH_ERR_BUSY                = -18,
    RH_ERR_SHUTDOWN            = -19,  /* the runtime is finalizing */
    RH_ERR_ACTOR_DEAD          = -20,  /* the actor was killed, its rank
                                        * died, or its constructor failed */
    RH_ERR_NAME_TAKEN          = -21,  /* an actor of that name exists */
    RH_ERR_NOT_FOUND           = -22,  /* no actor of that name, no such key */
    RH_ERR_OBJECT_LOST         = -23,  /* every copy died and it cannot be
                                        * rebuilt (a put, or its lineage
                                        * was dropped) */
    RH_ERR_OWNER_DIED          = -24,  /* the rank that owns it died */
    RH_ERR_CONFLICT            = -25,  /* a control-store key changed under
                                        * a compare-and-swap */
    RH_ERR_NO_QUORUM           = -26   /* the control store's shard has no
                                        * member a majority confirmed */
} rh_status_t;

/* A short, constant name for a status code ("peer rank failed"). */
RH_EXPORT const char *rh_status_string(rh_status_t status);

/* The message of the last error raised on the calling thread ("rank 3 died
 * while ..."); an empty string when there is none. Valid until the thread's
 * next failing call. */
RH_EXPORT const char *rh_last_error(void);

/* ------------------------------------------------------------------------ */
/* Start-up and shutdown                                                    */
/* ------------------------------------------------------------------------ */

/* How the progress thread drives the network. */
typedef enum rh_progress_mode {
    RH_PROGRESS_POLLING  = 0,  /* spin: lowest latency, burns a core */
    RH_PROGRESS_ADAPTIVE = 1,  /* spin a while, then sleep until an event */
    RH_PROGRESS_BLOCKING = 2   /* sleep until an event every time */
} rh_progress_mode_t;

/* Which fields of rh_init_params_t the caller set. */
typedef enum rh_init_param_field {
    RH_INIT_PARAM_FIELD_PROGRESS_MODE = 1u << 0,
    RH_INIT_PARAM_FIELD_BOOTSTRAP     = 1u << 1,
    RH_INIT_PARAM_FIELD_LOG_LEVEL     = 1u << 2
} rh_init_param_field_t;

typedef struct rh_init_params {
    uint64_t           field_mask;     /* RH_INIT_PARAM_FIELD_* bits */
    rh_progress_mode_t progress_mode;  /* default: adaptive */
    const char        *bootstrap;      /* "auto", "pmix", "mpi", "local",
                                        * "singleton"; default "auto" */
    const char        *log_level;      /* "error" ... "trace"; default "warn" */
} rh_init_params_t;

/* Joins the job: finds the launcher (or none), exchanges addresses with
 * every rank and starts the runtime's threads. argc/argv may be NULL.
 * Collective: every rank of the job must call it. A process joins its
 * launcher's job once: after rh_finalize, rh_init starts a one-rank job
 * when the process was started alone or asks for bootstrap "singleton";
 * under rayhpc-run otherwise it is RH_ERR_BOOTSTRAP. Refs and handles of
 * an earlier rh_init are not valid in a later one. */
RH_EXPORT
rh_status_t rh_init(int *argc, char ***argv, const rh_init_params_t *params);

/* Leaves the job. Collective: returns once every live rank has called it,
 * then releases everything rh_init() took. Ranks that died are skipped.
 * Tasks that never ran (their resources never free, or an argument never
 * came) fail with RH_ERR_SHUTDOWN or a message saying why; so do actors
 * still waiting to be created. Call it once the rank's other threads are
 * done with the library (as MPI_Finalize): one still waiting in a call
 * (rh_get, a get's pull, rh_wait...) when the job has ended on every rank
 * is woken and its call returns RH_ERR_SHUTDOWN before anything it reads
 * is freed (up to RAYHPC_FINALIZE_TIMEOUT for all of them to leave);
 * calls begun after rh_finalize began are not allowed. A rank whose
 * program ends without calling it says so and is taken for dead by the
 * others; rayhpc-run counts its exit status of 0 as 1. */
RH_EXPORT rh_status_t rh_finalize(void);

/* This rank's number in [0, rh_size()), and the number of ranks. */
RH_EXPORT int rh_rank(void);
RH_EXPORT int rh_size(void);

/* The node this rank is on, in [0, rh_num_nodes()). Ranks of one node share
 * memory; the node identity is the host name, or RAYHPC_NODE_ID when set
 * (which lets ranks on one host act as separate nodes). Nodes are numbered
 * in order of their lowest rank. */
RH_EXPORT int rh_node_id(void);
RH_EXPORT int rh_num_nodes(void);

/* Whether rank `rank` is still alive as far as this rank knows (1 or 0). */
RH_EXPORT int rh_rank_alive(int rank);

/* "0.1.0" */
RH_EXPORT const char *rh_version(void);

/* Timeouts are in milliseconds; RH_TIMEOUT_INFINITE (as any negative
 * value) waits for ever and 0 only looks. */
#define RH_TIMEOUT_INFINITE (-1)

/* ------------------------------------------------------------------------ */
/* Objects                                                                  */
/* ------------------------------------------------------------------------ */

/* A reference to an immutable object: the value a put stored or a task will
 * return (a future). 128 bits: owner rank | counter | index. Refs are plain
 * values: copy them, pass them to tasks, send them to other ranks. */
typedef struct rh_ref {
    uint64_t hi, lo;
} rh_ref_t;

/* Holds. rh_put, rh_put_create and rh_remote (for each return) give the
 * caller one hold on each new ref, and so does every successful rh_get and
 * rh_get_many; rh_release drops one, a get's first. An object lives while
 * its owner holds it, and the bytes a get returned stay valid until that
 * get's hold is dropped: after as many releases of a ref as gets of it,
 * none of their pointers is (a full store may have spilled the object to
 * disk; the next get reads it back). */

/* Copies len bytes into a new object of this node's store. Fails with
 * RH_ERR_TOO_LARGE when len can never fit, RH_ERR_STORE_FULL when it does
 * not fit now (nothing is lost; the store stays usable). */
RH_EXPORT rh_status_t rh_put(const void *buf, size_t len, rh_ref_t *ref);

/* The zero-copy put: a writable buffer of len bytes in the store, to fill
 * in place and then publish with rh_put_seal. Until the seal, a get of the
 * ref waits (it is not ready). Releasing its hold before the seal abandons
 * it: the buffer is freed at once, and rh_put_seal and gets of the ref are
 * RH_ERR_INVALID_REF ("released before it was sealed"). */
RH_EXPORT rh_status_t rh_put_create(size_t len, rh_ref_t *ref, void **ptr);
RH_EXPORT rh_status_t rh_put_seal(rh_ref_t ref);

/* The object's bytes, in place (no copy), once it is ready: waits up to
 * timeout_ms (RH_ERR_TIMEOUT). A failed task's returns, and every object
 * computed from them, give RH_ERR_TASK_FAILED with the task's message in
 * rh_last_error(); the returns of an actor call whose actor died, and
 * every object computed from them, give RH_ERR_ACTOR_DEAD. An object lost
 * with every copy is rebuilt from its lineage meanwhile (the get waits for
 * it); one that cannot be gives RH_ERR_OBJECT_LOST, one whose owner died
 * RH_ERR_OWNER_DIED (docs/fault-tolerance.md). Inside a task, a get that
 * waits lends the worker to other tasks meanwhile. A spilled object that
 * cannot be read back because the store is full of objects in use gives
 * RH_ERR_STORE_FULL once they were not let go within timeout_ms (or
 * RAYHPC_PUT_TIMEOUT_MS when that is shorter). len may be NULL. */
RH_EXPORT rh_status_t rh_get(rh_ref_t ref, const void **ptr, size_t *len,
                   int64_t timeout_ms);

/* rh_get of n refs, with one deadline for all of them; lens may be NULL
 * (as rh_get's len). On error none of the holds is kept. */
RH_EXPORT
rh_status_t rh_get_many(const rh_ref_t *refs, size_t n, const void **ptrs,
                        size_t *lens, int64_t timeout_ms);

/* Drops one hold (see above). One release past the holds this process
 * has of the ref (its own, for a ref it owns; its gets, for another
 * rank's) is RH_ERR_INVALID_REF and takes nothing the runtime keeps for
 * itself, such as a running task's argument. */
RH_EXPORT rh_status_t rh_release(rh_ref_t ref);

/* Ray's wait: returns once k of the n refs are ready (done or failed), or
 * when timeout_ms has passed; 0 only looks. ready[i] is set to 1 for each
 * ready ref and 0 for the others; a ref given twice counts twice, and one
 * released already (or never made) is ready: its get says why. k > n is
 * RH_ERR_INVALID_PARAM; a timeout is not an error: count the ready
 * flags. */
RH_EXPORT rh_status_t rh_wait(const rh_ref_t *refs, size_t n, size_t k,
                    int64_t timeout_ms, int *ready);

/* ------------------------------------------------------------------------ */
/* Remote functions                                                         */
/* ------------------------------------------------------------------------ */

typedef struct rh_task_ctx rh_task_ctx_t;

/* A remote function. It reads its arguments and writes its returns through
 * ctx, may put, get and submit tasks itself, and returns RH_OK, or an error
 * (rh_task_fail gives one with a message), which its returns then hold. */
typedef rh_status_t (*rh_function_t)(rh_task_ctx_t *ctx);

/* Registers fn under name (1 to 63 characters, no ":" or newline) on this
 * rank, taking nargs arguments (-1: any number) and giving nreturns
 * returns by default (0 to 64, the most a task or call has). Call it on
 * every rank, before rh_init, with the same names and counts: rh_init
 * reports names that some ranks lack or register differently. A name
 * registered already is RH_ERR_BUSY; after rh_init,
 * RH_ERR_ALREADY_INITIALIZED. */
RH_EXPORT
rh_status_t rh_register(const char *name, rh_function_t fn, int nargs,
                        int nreturns);

/* An argument: a ref (the task starts once the object is ready and reads it
 * in place) or inline bytes (copied into the task). */
typedef enum rh_arg_kind {
    RH_ARG_REF   = 0,
    RH_ARG_BYTES = 1
} rh_arg_kind_t;

typedef struct rh_arg {
    rh_arg_kind_t kind;
    rh_ref_t      ref;
    const void   *data;
    size_t        len;
} rh_arg_t;

static inline rh_arg_t rh_arg_ref(rh_ref_t ref)
{
    rh_arg_t a = { RH_ARG_REF, ref, NULL, 0 };
    return a;
}

static inline rh_arg_t rh_arg_bytes(const void *data, size_t len)
{
    rh_arg_t a = { RH_ARG_BYTES, {0, 0}, data, len };
    return a;
}

typedef enum rh_task_param_field {
    RH_TASK_PARAM_FIELD_NUM_RETURNS = 1u << 0,
    RH_TASK_PARAM_FIELD_NUM_CPUS    = 1u << 1,
    RH_TASK_PARAM_FIELD_RESOURCES   = 1u << 2,
    RH_TASK_PARAM_FIELD_STRATEGY    = 1u << 3,
    RH_TASK_PARAM_FIELD_FLAGS       = 1u << 4,
    RH_TASK_PARAM_FIELD_MAX_RETRIES = 1u << 5,
    RH_TASK_PARAM_FIELD_RETRY_EXCEPTIONS = 1u << 6
} rh_task_param_field_t;

/* rh_task_params_t.flags */
typedef enum rh_task_flag {
    /* A task bound for another rank that this rank cannot take now
     * (RAYHPC_REMOTE_TASKS_MAX tasks already out, or RAYHPC_SEND_QUEUE_MAX
     * messages on their way) fails with RH_ERR_BUSY instead of waiting;
     * nothing was submitted, try again later. */
    RH_TASK_FLAG_NONBLOCK = 1u << 0
} rh_task_flag_t;

/* Where a task runs. */
typedef enum rh_strategy {
    /* Here while this rank keeps up (it fits and fewer than
     * RAYHPC_SPILLBACK_THRESHOLD tasks wait); otherwise the global scheduler
     * places it on the feasible node with the least estimated wait. */
    RH_STRATEGY_DEFAULT         = 0,
    /* On node `node`; with soft, anywhere (as DEFAULT) when that node is
     * gone or does not exist. Its reruns (retries, rebuilds) go there
     * too: without soft, one lost with the whole node fails. */
    RH_STRATEGY_NODE_AFFINITY   = 1,
    /* Each task on the next feasible node in turn: every node gets some. */
    RH_STRATEGY_SPREAD          = 2,
    /* In bundle `bundle` of placement group `pg`, on the bundle's node and
     * within the resources it reserved. */
    RH_STRATEGY_PLACEMENT_GROUP = 3
} rh_strategy_t;

/* A placement group: resources reserved across nodes as bundles, which
 * tasks are then scheduled into (rh_pg_create). 0 is no group. An id no
 * rank made is refused (RH_ERR_INVALID_PARAM) by rh_remote, rh_pg_wait and
 * the rest; another rank's id this rank has not heard of may be taken
 * first: its tasks' returns then fail (RH_ERR_TASK_FAILED) once that rank
 * says it never made it, or removed it, or once that rank died without
 * placing it (rank 0, the global scheduler, answers for a dead owner);
 * rh_remote and rh_pg_wait of the id are then RH_ERR_INVALID_PARAM, with
 * the same reason. Once rank 0 died, no group is placed, placed again or
 * freed: what waits for it (a pending group, an id this rank meets then,
 * a bundle whose rank died) fails with RH_ERR_PEER_FAILED (the tasks'
 * returns with RH_ERR_TASK_FAILED) saying "the global scheduler, rank 0,
 * died", while bundles on live ranks keep running tasks
 * (docs/fault-tolerance.md). */
typedef uint64_t rh_pg_t;

typedef struct rh_task_params {
    uint64_t      field_mask;    /* RH_TASK_PARAM_FIELD_* bits */
    int           num_returns;   /* default: the registered count; 0 to
                                  * 64 */
    int           num_cpus;      /* cores the task holds while it runs; 1 */
    /* Custom resources it holds: "gpu=1,lic=2". An amount of 0 asks for
     * nothing ("GPU=0" is as no GPU). CPUs are num_cpus: a list naming
     * "CPU" is RH_ERR_INVALID_PARAM, here, for actors and for bundles. */
    const char   *resources;
    rh_strategy_t strategy;      /* with RH_TASK_PARAM_FIELD_STRATEGY */
    int           node;          /* NODE_AFFINITY: the node (rh_node_id) */
    int           soft;          /* NODE_AFFINITY: fall back to DEFAULT */
    rh_pg_t       pg;            /* PLACEMENT_GROUP: the group */
    int           bundle;        /* PLACEMENT_GROUP: the bundle's index */
    uint64_t      flags;         /* RH_TASK_FLAG_* bits, with
                                  * RH_TASK_PARAM_FIELD_FLAGS */
    /* Times the task runs again when the rank running it dies, or when an
     * object it returned is lost with every copy (its owner rebuilds it
     * from its lineage): default 3, 0 none, -1 no limit. Each retry waits
     * an exponential backoff with jitter (RAYHPC_RETRY_BACKOFF). */
    int           max_retries;
    /* Non-zero: a run that fails (rh_task_fail, or an error status) is
     * also retried, within max_retries. */
    int           retry_exceptions;
} rh_task_params_t;

/* Submits a call of the function registered as name and returns at once
 * with refs to its returns in rets (num_returns of them). Unknown names and
 * wrong argument counts fail here with RH_ERR_UNKNOWN_FUNCTION and
 * RH_ERR_BAD_ARG_COUNT. A task bound for another rank waits here while
 * this rank has RAYHPC_REMOTE_TASKS_MAX tasks out (see
 * RH_TASK_FLAG_NONBLOCK). */
RH_EXPORT
rh_status_t rh_remote(const char *name, const rh_arg_t *args, int nargs,
                      const rh_task_params_t *params, rh_ref_t *rets);

/* Inside a task: its arguments, in place. */
RH_EXPORT int rh_task_nargs(const rh_task_ctx_t *ctx);
RH_EXPORT
const void *rh_task_arg(const rh_task_ctx_t *ctx, int i, size_t *len);

/* Inside a task: the ref that argument i was passed as (a null ref for
 * bytes). The task may hand it on to tasks of its own: the object then
 * lives, at its owner, until those are done here too, even when the task
 * and the owner let it go first (Ray's borrowing). */
RH_EXPORT rh_ref_t rh_task_arg_ref(const rh_task_ctx_t *ctx, int i);

/* Inside a task: set return i by copying len bytes, or get room for it to
 * fill in place (zero copy; published when the task ends). Each return is
 * set once (again: RH_ERR_INVALID_PARAM); one the task does not set is an
 * empty object (0 bytes) once the task returns RH_OK. */
RH_EXPORT
rh_status_t rh_task_return(rh_task_ctx_t *ctx, int i, const void *buf,
                           size_t len);
RH_EXPORT
rh_status_t rh_task_return_alloc(rh_task_ctx_t *ctx, int i, size_t len,
                                 void **ptr);

/* Inside a task: records why it failed (up to 511 bytes of message; a
 * NULL or empty fmt says no message was given); return what this returns
 * (RH_ERR_TASK_FAILED) from the function. */
RH_EXPORT rh_status_t rh_task_fail(rh_task_ctx_t *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------------ */
/* Placement groups                                                         */
/* ------------------------------------------------------------------------ */

/* How a group's bundles are laid out over the nodes. */
typedef enum rh_pg_strategy {
    RH_PG_PACK          = 0,  /* as few nodes as possible, best effort */
    RH_PG_SPREAD        = 1,  /* as many nodes as possible, best effort */
    RH_PG_STRICT_PACK   = 2,  /* all on one node, or pending */
    RH_PG_STRICT_SPREAD = 3   /* each on a different node, or pending */
} rh_pg_strategy_t;

/* One bundle: the resources it reserves on its node. A bundle that
 * reserves nothing (no CPU, and no resources or only amounts of 0, as
 * "lic=0") is RH_ERR_INVALID_PARAM. */
typedef struct rh_bundle {
    int         num_cpus;     /* 0 is allowed, with resources */
    const char *resources;    /* "gpu=1,lic=2" or NULL, as a task's */
} rh_bundle_t;

/* Reserves the n bundles with the given strategy and returns at once; the
 * group is ready once every bundle holds its resources on a node
 * (rh_pg_wait). A group that cannot be placed now stays pending, with a
 * warning naming what is missing, until resources are freed (rh_pg_remove
 * of another group, the end of an actor that held CPUs for its life).
 * Tasks may be submitted into a pending group: they start once their
 * bundle is placed. When a bundle's rank dies, the group places that
 * bundle again where it fits by its strategy (its tasks lost with the rank
 * run again there, later ones wait for it); a bundle that fits nowhere is
 * lost until room frees (a group removed, an actor that held CPUs ended, a
 * change of the job's ranks): tasks into it fail (rh_remote with RH_ERR_PEER_FAILED; their returns, for those
 * that waited or were lost with the rank, with RH_ERR_TASK_FAILED), with a
 * message naming the group and the dead rank (docs/fault-tolerance.md). */
RH_EXPORT rh_status_t rh_pg_create(const rh_bundle_t *bundles, int n,
                         rh_pg_strategy_t strategy, rh_pg_t *pg);

/* Waits up to timeout_ms for the group to be placed (RH_ERR_TIMEOUT), or
 * placed again while a bundle whose rank died is being moved; a group with
 * a bundle lost with its rank and no room for it anywhere gives
 * RH_ERR_PEER_FAILED, naming the bundle and the rank, as does a group that
 * rank 0, the global scheduler, died before placing or placing again. */
RH_EXPORT rh_status_t rh_pg_wait(rh_pg_t pg, int64_t timeout_ms);

/* The node bundle `bundle` was placed on (the group must be ready):
 * RH_ERR_BUSY while it is being placed again after its rank died,
 * RH_ERR_PEER_FAILED when it was lost and fits nowhere now. */
RH_EXPORT rh_status_t rh_pg_bundle_node(rh_pg_t pg, int bundle, int *node);

/* Frees the group's reservations. Tasks running in it finish; tasks
 * submitted into it afterwards fail with RH_ERR_INVALID_PARAM. Tasks
 * waiting in a bundle for its resources when the removal reaches the
 * bundle's rank never run: their returns fail with RH_ERR_TASK_FAILED
 * saying so (an actor waiting to be created there is RH_ERR_ACTOR_DEAD);
 * one whose bundle frees before that may still run. Once rank 0
 * (the global scheduler) died, the group is removed on this rank but its
 * bundles keep what they reserved: RH_ERR_PEER_FAILED says so; rh_pg_create
 * is refused then with RH_ERR_PEER_FAILED. */
RH_EXPORT rh_status_t rh_pg_remove(rh_pg_t pg);

/* ------------------------------------------------------------------------ */
/* Actors                                                                   */
/* ------------------------------------------------------------------------ */

/* An actor is a stateful worker: its constructor runs once on a rank the
 * scheduler picks, its state stays in that rank's memory, and its methods
 * run there one call at a time (max_concurrency says more), each caller's
 * calls in the order that caller submitted them. A call goes straight from
 * the caller's rank to the actor's rank; its returns are ordinary refs,
 * owned by the caller, usable by tasks and by other calls. */

/* A handle: owner rank, class and id, 128 bits. A plain value: copy it into
 * an object or pass it to a task as bytes; whoever has it calls the same
 * actor. The all-zero handle is no actor. */
typedef struct rh_actor {
    uint64_t hi, lo;
} rh_actor_t;

/* The constructor: reads its arguments through ctx (rh_task_arg ...) and
 * sets *state, the actor's state that every method gets. Returning an
 * error (rh_task_fail gives one with a message) makes the actor dead: every
 * call on it then fails with RH_ERR_ACTOR_DEAD and that message. */
typedef rh_status_t (*rh_actor_init_t)(rh_task_ctx_t *ctx, void **state);

/* A method: works on state, reads its arguments and writes its returns
 * through ctx as a remote function does. An error fails this call's returns
 * (RH_ERR_TASK_FAILED with its message); the actor lives on. */
typedef rh_status_t (*rh_method_t)(void *state, rh_task_ctx_t *ctx);

/* The destructor: frees state. Runs once no call is left to run, after the
 * last hold was dropped, the actor was killed, or at rh_finalize. */
typedef void (*rh_actor_fini_t)(void *state);

/* Checkpoint and restore, for restarts (optional): save writes the state as
 * return 0 of ctx (rh_task_return or rh_task_return_alloc; ctx has no
 * arguments); restore builds a state from those bytes. A restarted actor
 * with a checkpoint runs restore instead of its constructor
 * (docs/fault-tolerance.md). */
typedef rh_status_t (*rh_actor_save_t)(void *state, rh_task_ctx_t *ctx);
typedef rh_status_t (*rh_actor_restore_t)(const void *data, size_t len,
                                          void **state);

typedef struct rh_method_def {
    const char *name;
    rh_method_t fn;
    int         nargs;      /* -1: any number */
    int         nreturns;   /* returns of a call, by default */
} rh_method_def_t;

typedef enum rh_actor_class_field {
    RH_ACTOR_CLASS_FIELD_FINI       = 1u << 0,
    RH_ACTOR_CLASS_FIELD_CHECKPOINT = 1u << 1   /* save and restore */
} rh_actor_class_field_t;

typedef struct rh_actor_class {
    uint64_t               field_mask;  /* RH_ACTOR_CLASS_FIELD_* bits */
    rh_actor_init_t        init;
    int                    init_nargs;  /* -1: any number */
    const rh_method_def_t *methods;
    int                    num_methods;
    rh_actor_fini_t        fini;
    rh_actor_save_t        save;
    rh_actor_restore_t     restore;
} rh_actor_class_t;

/* Registers an actor class under name (the table is copied). As with
 * rh_register: on every rank, before rh_init, the same classes with the
 * same methods and counts; rh_init reports differences. */
RH_EXPORT rh_status_t rh_register_actor(const char *name,
                                        const rh_actor_class_t *cls);

typedef enum rh_actor_param_field {
    RH_ACTOR_PARAM_FIELD_NUM_CPUS        = 1u << 0,
    RH_ACTOR_PARAM_FIELD_RESOURCES       = 1u << 1,
    RH_ACTOR_PARAM_FIELD_STRATEGY        = 1u << 2,
    RH_ACTOR_PARAM_FIELD_NAME            = 1u << 3,
    RH_ACTOR_PARAM_FIELD_MAX_CONCURRENCY = 1u << 4,
    RH_ACTOR_PARAM_FIELD_DETACHED        = 1u << 5,
    RH_ACTOR_PARAM_FIELD_MAX_RESTARTS    = 1u << 6,
    RH_ACTOR_PARAM_FIELD_MAX_TASK_RETRIES = 1u << 7,
    RH_ACTOR_PARAM_FIELD_CHECKPOINT_INTERVAL = 1u << 8
} rh_actor_param_field_t;

typedef struct rh_actor_params {
    uint64_t      field_mask;       /* RH_ACTOR_PARAM_FIELD_* bits */
    /* Cores reserved for the actor's whole life. Unset, the actor is
     * placed where a core is free but keeps none once constructed (Ray's
     * default); set (0 allowed), they stay reserved until it ends. */
    int           num_cpus;
    const char   *resources;        /* reserved for its life: "gpu=1",
                                     * as a task's */
    rh_strategy_t strategy;         /* as for tasks, with node, soft, pg and
                                     * bundle below */
    int           node;
    int           soft;
    rh_pg_t       pg;
    int           bundle;
    const char   *name;             /* unique in the job: rh_actor_get_named
                                     * finds it from any rank; 1 to 63
                                     * characters */
    int           max_concurrency;  /* calls run at once; default 1 */
    int           detached;         /* 1: lives until killed or the job
                                     * ends, whatever the holds */
    /* Restarts after its rank dies, or after rh_actor_kill(a, 0): the
     * owner runs the constructor again (or restore, from its last
     * checkpoint), with the original arguments (bytes only), on a rank the
     * scheduler picks; handles follow it. Calls in flight to the dead
     * instance fail (RH_ERR_ACTOR_DEAD) unless max_task_retries; later ones
     * go to the new one. Default 0; -1: no limit
     * (docs/fault-tolerance.md). */
    int           max_restarts;
    /* With max_restarts: a call not answered when the actor's rank died
     * is sent again, in its caller's order, to the restarted instance,
     * at most this many times; then it fails (RH_ERR_ACTOR_DEAD naming
     * the method). Its caller keeps the call's bytes until it is answered
     * (with checkpoints: until a checkpoint covers it). Default 0; -1: no
     * limit. Arguments passed as refs must stay alive for a resend. */
    int           max_task_retries;
    /* With max_restarts and a class with save and restore: a checkpoint
     * every this many calls (0, the default: only when a method asks,
     * rh_actor_checkpoint), kept by the owner; a restart restores the last
     * one and replays the calls it did not cover, so that each call takes
     * effect once. Needs max_concurrency 1. */
    int           checkpoint_interval;
} rh_actor_params_t;

/* Creates an actor of the class registered as cls and returns at once with
 * its handle, and one hold on it; calls may be made before the constructor
 * ran (they wait for it). Unknown classes, wrong argument counts and a name
 * already taken fail here (RH_ERR_UNKNOWN_FUNCTION, RH_ERR_BAD_ARG_COUNT,
 * RH_ERR_NAME_TAKEN). */
RH_EXPORT
rh_status_t rh_actor_create(const char *cls, const rh_arg_t *args, int nargs,
                            const rh_actor_params_t *params,
                            rh_actor_t *actor);

/* Waits up to timeout_ms for the constructor to have run: RH_OK, and the
 * actor's rank in *rank when rank is not NULL; RH_ERR_ACTOR_DEAD when it
 * failed or the actor died; RH_ERR_TIMEOUT. */
RH_EXPORT
rh_status_t rh_actor_ready(rh_actor_t actor, int64_t timeout_ms, int *rank);

typedef enum rh_call_param_field {
    RH_CALL_PARAM_FIELD_NUM_RETURNS = 1u << 0,
    RH_CALL_PARAM_FIELD_FLAGS       = 1u << 1
} rh_call_param_field_t;

typedef struct rh_call_params {
    uint64_t field_mask;    /* RH_CALL_PARAM_FIELD_* bits */
    int      num_returns;   /* default: the method's registered count */
    uint64_t flags;         /* RH_TASK_FLAG_NONBLOCK: RH_ERR_BUSY instead of
                             * waiting for room to send */
} rh_call_params_t;

/* Calls method on the actor and returns at once with refs to its returns
 * in rets. Calls from one rank run in the order they were made, also when
 * their ref arguments become ready out of order. An unknown method or a
 * wrong argument count fails here (RH_ERR_UNKNOWN_FUNCTION,
 * RH_ERR_BAD_ARG_COUNT), as does a call on an actor known to be dead
 * (RH_ERR_ACTOR_DEAD). Calls pending when the actor dies fail (unless it
 * is restarted and has max_task_retries: they are sent again): a get of
 * their returns gives RH_ERR_ACTOR_DEAD with a message naming the actor and
 * why. */
RH_EXPORT
rh_status_t rh_actor_call(rh_actor_t actor, const char *method,
                          const rh_arg_t *args, int nargs,
                          const rh_call_params_t *params, rh_ref_t *rets);

/* Holds. rh_actor_create and rh_actor_get_named give one hold, and
 * rh_actor_hold another (from any rank: hold a handle you were handed
 * before the one who handed it may drop theirs); rh_actor_release drops
 * one. When the last hold in the job is dropped, the calls already made
 * run, then the destructor, and the actor's resources are freed; detached
 * actors ignore holds. Holds of a rank that dies are dropped. A rank drops
 * only holds it took: a release past them is RH_ERR_INVALID_REF (as
 * rh_release of a ref released already) and drops nothing. */
RH_EXPORT rh_status_t rh_actor_hold(rh_actor_t actor);
RH_EXPORT rh_status_t rh_actor_release(rh_actor_t actor);

/* Kills the actor: calls not yet started fail at once with
 * RH_ERR_ACTOR_DEAD, a running call ends, the destructor runs, its name
 * and resources are freed. no_restart: no restart even when restarts are
 * allowed. An actor not created yet (waiting for resources, say) that is
 * killed without a restart is dead at once, and ended as soon as it is
 * made. Killing a dead actor is RH_OK. */
RH_EXPORT rh_status_t rh_actor_kill(rh_actor_t actor, int no_restart);

/* The actor created with this name, with one hold on it (RH_ERR_NOT_FOUND
 * when there is none, or it ended). */
RH_EXPORT rh_status_t rh_actor_get_named(const char *name, rh_actor_t *actor);

/* Inside a method, constructor or checkpoint: the actor's own handle (no
 * hold); the null handle in a task. */
RH_EXPORT rh_actor_t rh_task_actor(const rh_task_ctx_t *ctx);

/* Inside a method of an actor with checkpoints (checkpoint_interval, a
 * class with save and restore): a checkpoint is taken once this call
 * ended, whatever the interval. RH_ERR_INVALID_PARAM elsewhere. */
RH_EXPORT rh_status_t rh_actor_checkpoint(rh_task_ctx_t *ctx);

/* ------------------------------------------------------------------------ */
/* GPUs (docs/gpu.md)                                                       */
/* ------------------------------------------------------------------------ */

/* GPUs are the resource "GPU", offered by each rank for the devices it
 * found (the node's GPUs dealt out among its ranks) and asked for in
 * rh_task_params_t.resources, actors' and bundles' as "GPU=1" or in
 * fractions, "GPU=0.25" (four such tasks share a device). A GPU task runs
 * on a worker moved near its device, with the device current. */

/* GPUs this rank offers: 0 without CUDA, a driver or a device. */
RH_EXPORT int rh_num_gpus(void);

/* RH_OK when this rank has a GPU; else RH_ERR_UNSUPPORTED, and
 * rh_last_error() says why (not built with CUDA, no driver, no device). */
RH_EXPORT rh_status_t rh_gpu_check(void);

/* Inside a GPU task: its device (CUDA index) and this worker's stream on
 * it (a cudaStream_t); -1 and NULL in other tasks. Work the task launches
 * on the stream is done before its returns are published. */
RH_EXPORT int rh_task_gpu(const rh_task_ctx_t *ctx);
RH_EXPORT void *rh_task_stream(const rh_task_ctx_t *ctx);

/* Device objects. rh_put_device copies len bytes of device memory into a
 * new object (as rh_put); rh_get_device copies the object into device
 * memory of cap bytes (RH_ERR_TOO_LARGE when it has more), its size into
 * *len (may be NULL), waiting up to timeout_ms. Objects of other nodes are
 * pulled first. Both return once the copy is done; without a GPU they
 * fail with RH_ERR_UNSUPPORTED. */
RH_EXPORT rh_status_t rh_put_device(const void *dptr, size_t len,
                                    rh_ref_t *ref);
RH_EXPORT rh_status_t rh_get_device(rh_ref_t ref, void *dptr, size_t cap,
                                    size_t *len, int64_t timeout_ms);

/* ------------------------------------------------------------------------ */
/* Counters                                                                 */
/* ------------------------------------------------------------------------ */

/* What this rank did since rh_init (relaxed counters: exact once quiet). */
typedef struct rh_stats {
    uint64_t tasks_run;        /* tasks its workers ran */
    uint64_t tasks_forwarded;  /* tasks it sent to another rank to run */
    uint64_t tasks_spilled;    /* DEFAULT tasks it gave the global scheduler */
    uint64_t pulls;            /* objects it copied here from other nodes */
    uint64_t bytes_pulled;
    uint64_t pulls_joined;     /* gets that waited for a pull already going */
    uint64_t pull_sources;     /* copies read from, summed over pulls: more
                                * than pulls when pulls read from several
                                * nodes at once */
    uint64_t store_objects;    /* objects in this node's store now (all its
                                * ranks', spilled ones included), and the
                                * bytes of those in memory */
    uint64_t store_bytes;
    uint64_t tasks_remote;     /* its tasks out on other ranks or with the
                                * global scheduler now */
    uint64_t store_capacity;   /* bytes of this node's store for objects, */
    uint64_t store_used;       /* and in use now (with allocation rounding) */
    uint64_t spilled_objects;  /* objects of this node's store in spill
                                * files now, and their bytes */
    uint64_t spilled_bytes;
    uint64_t spill_files;      /* spill files of this node now */
    uint64_t spill_written;    /* bytes this node's store spilled, ever */
    uint64_t restores;         /* spilled objects read back, ever, and */
    uint64_t restored_bytes;   /* their bytes */
    uint64_t evictions;        /* pulled copies dropped for room, ever, */
    uint64_t evicted_bytes;    /* and their bytes */
    double   store_fragmentation;  /* free store bytes outside the largest
                                * free block, as a fraction of capacity */
    uint64_t msgs_batched;     /* messages it sent coalesced with others
                                * to the same rank, and the batches they
                                * went in */
    uint64_t batches_sent;
} rh_stats_t;

/* Fills *stats with this rank's counters. */
RH_EXPORT rh_status_t rh_stats(rh_stats_t *stats);

#ifdef __cplusplus
}
#endif

#endif /* RAYHPC_H */
