/*
 * Wire protocol between rayhpc-run and the ranks it starts (the `local`
 * bootstrap). Shared by tools/rayhpc-run.c and src/transport/bootstrap_local.c.
 *
 * The launcher gives each rank one end of an AF_UNIX SOCK_STREAM socketpair,
 * whose descriptor number is in RAYHPC_LOCAL_FD. Frames are a fixed header
 * followed by `len` bytes of body, little-endian host order (same host).
 *
 *   rank -> launcher  RH_LOCAL_FENCE  body: this rank's blob
 *   launcher -> rank  RH_LOCAL_FENCE_DONE
 *                     body: for rank 0..size-1: uint32_t len, then len bytes
 *                     (sent once every rank has sent its FENCE)
 *   rank -> launcher  RH_LOCAL_ABORT  body: int32_t exit code, then a message
 *                     (the launcher prints it and stops the job)
 *   rank -> launcher  RH_LOCAL_UNFINISHED  no body: the program is ending
 *                     without rh_finalize (an exit status of 0 then counts
 *                     as a failure)
 *
 * A rank may fence any number of times; a rank that closes its end has
 * simply left the protocol (its exit status still counts).
 */
#ifndef RH_TRANSPORT_LOCAL_PROTO_H
#define RH_TRANSPORT_LOCAL_PROTO_H

#include <stdint.h>

#define RH_LOCAL_ENV_FD     "RAYHPC_LOCAL_FD"
#define RH_LOCAL_ENV_RANK   "RAYHPC_LOCAL_RANK"
#define RH_LOCAL_ENV_SIZE   "RAYHPC_LOCAL_SIZE"
#define RH_LOCAL_ENV_JOBID  "RAYHPC_LOCAL_JOBID"

/* Largest frame body either side accepts (a fence of many ranks' blobs). */
#define RH_LOCAL_MAX_BODY   (256u << 20)

enum rh_local_msg_type {
    RH_LOCAL_FENCE      = 1,
    RH_LOCAL_FENCE_DONE = 2,
    RH_LOCAL_ABORT      = 3,
    RH_LOCAL_UNFINISHED = 4,
};

typedef struct rh_local_frame {
    uint32_t type;
    uint32_t len;
} rh_local_frame_t;

#endif
