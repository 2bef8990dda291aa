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

#define RH_JOBGATHER_TIMEOUT_MS 5000   /* rayhpc-info's default */

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
