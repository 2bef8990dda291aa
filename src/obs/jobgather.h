/*
 * The job's state gathered across hosts, for rayhpc-info --job and
 * RAYHPC_SUMMARY: the rank asked on its unix socket (or rank 0 at
 * finalize) sends one request over the job's transport to one rank of
 * every other node, and reads the ranks of its own node on their sockets.
 * The rank asked on another node answers for its node the same way: its
 * snapshot and those of its node's ranks, read on their sockets, which are
 * on its host. So no socket of another node is read, and one message a
 * node crosses the network each way.
 *
 * Everything is bounded by the asker's timeout: a node whose answer has
 * not come by then, or whose ranks all failed, is reported rank by rank
 * in lines
 *   unreachable rank R node N: WHY
 * after the snapshots (jobstate.h), never waited for longer; a last line
 * "end" closes the answer. A node's part
 * is computed on the jobstate thread of the rank asked (not the progress
 * thread: reading sockets blocks).
 */
#ifndef RH_OBS_JOBGATHER_H
#define RH_OBS_JOBGATHER_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "transport/am_ids.h"

#define RH_JOBGATHER_TIMEOUT_MS 5000   /* rayhpc-info's default */

/* A process outside the job (rayhpc-info on a host with none of its
 * ranks, jobremote.h) asks any rank for the whole job: message
 * RH_JG_ID_GUEST with the guest flag (am.h), header rh_jg_ask_t (seq: the
 * asker's, timeout_ms: the gather's), payload rh_jg_guest_t (the rank's
 * guest key, the asker's pid and the length of its host key), its host
 * key (jobcontact.h), then its UCX worker address (at most RH_JC_MAX_ADDR
 * bytes); sent eager. A request without the key is dropped at once. The
 * rank gathers the job on its jobstate thread, as for its unix socket,
 * and answers on an endpoint to that address (transport/guest.h) with
 * RH_JG_ID_PART, header rh_jg_part_hdr_t with node -1 and the asker's
 * seq, payload the gathered text; an asker on the rank's own host whose
 * pid ended meanwhile is not answered (an endpoint to a dead process over
 * shared memory is one UCX cannot be trusted with). At most
 * RH_TP_GUESTS_MAX asks wait at once; more, and those that reach a rank
 * that stopped serving, are dropped: the asker times out. */
#define RH_JG_ID_GUEST    RH_AM_ID_OBS_GUEST
#define RH_JG_ID_PART     (RH_AM_ID_OBS_FIRST + 1)
#define RH_JG_MAX_PART    (64u << 20)   /* a node's or the job's text */
#define RH_JG_MAX_TIMEOUT 600000        /* ms */
#define RH_JG_NODE_JOB    (-1)          /* a part that is the whole job */

/* gatherer (or guest) -> the rank asked */
typedef struct rh_jg_ask {
    uint64_t seq;
    uint32_t timeout_ms;   /* the node's part must leave within this */
    uint32_t pad;
} rh_jg_ask_t;

#define RH_JG_KEY_LEN     16

/* the head of a guest's payload */
typedef struct rh_jg_guest {
    uint8_t  key[RH_JG_KEY_LEN];   /* the rank's guest key */
    int32_t  pid;
    uint32_t host_len;   /* host key bytes that follow, then the address */
} rh_jg_guest_t;

/* This rank's guest key: 16 random bytes, made once, published in its
 * start-up blob and, for the first rank of each node, in the job's
 * contact record (readable by its user only). A guest's request without
 * it is dropped before anything of it is used: only who can read the
 * record can make a rank connect to an address. */
const uint8_t *rh_jobgather_key(void);

/* that rank -> the gatherer; the payload is the node's text */
typedef struct rh_jg_part_hdr {
    uint64_t seq;
    int32_t  node;
    uint32_t pad;
} rh_jg_part_hdr_t;

/* rh_init, before the transport starts: the handlers of the requests and
 * their answers. */
rh_status_t rh_jobgather_setup(void);

/* The jobstate thread: an fd that becomes readable when another node's
 * request waits (-1: none), and serving what waits. serving: whether the
 * thread serves requests (off: requests are answered at once that this
 * rank's node cannot be read). */
int rh_jobgather_fd(void);
void rh_jobgather_serve(void);
void rh_jobgather_set_serving(int on);

/* The whole job's state: this node's snapshots, then every other node's,
 * then the unreachable lines, as one malloc'd text (*len bytes, NUL
 * ended); NULL when memory ran out. At most timeout_ms. Any thread but the
 * progress thread. */
char *rh_jobgather_run(int timeout_ms, size_t *len);

#endif
