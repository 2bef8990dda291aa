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
    RH_ERR_SHUTDOWN            = -19   /* the runtime is finalizing */
} rh_status_t;

/* A short, constant name for a status code ("peer rank failed"). */
const char *rh_status_string(rh_status_t status);

/* The message of the last error raised on the calling thread ("rank 3 died
 * while ..."); an empty string when there is none. Valid until the thread's
 * next failing call. */
const char *rh_last_error(void);

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
 * Collective: every rank of the job must call it. */
rh_status_t rh_init(int *argc, char ***argv, const rh_init_params_t *params);

/* Leaves the job. Collective: returns once every live rank has called it,
 * then releases everything rh_init() took. Ranks that died are skipped. */
rh_status_t rh_finalize(void);

/* This rank's number in [0, rh_size()), and the number of ranks. */
int rh_rank(void);
int rh_size(void);

/* The node this rank is on, in [0, rh_num_nodes()). Ranks of one node share
 * memory; the node identity is the host name, or RAYHPC_NODE_ID when set
 * (which lets ranks on one host act as separate nodes). Nodes are numbered
 * in order of their lowest rank. */
int rh_node_id(void);
int rh_num_nodes(void);

/* Whether rank `rank` is still alive as far as this rank knows (1 or 0). */
int rh_rank_alive(int rank);

/* "0.1.0" */
const char *rh_version(void);

#ifdef __cplusplus
}
#endif

#endif /* RAYHPC_H */
