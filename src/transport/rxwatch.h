/* The receive watch: after a rank of this host dies, each rank checks that
 * messages from the others of the host still reach it (src/transport only).
 *
 * Why: UCX's shared-memory transport gives each process one receive FIFO
 * that every sender of the host writes into: a sender reserves a slot,
 * fills it, then marks it ready. A sender SIGKILLed in between leaves a
 * slot that is never marked, and the receiver reads nothing more from
 * anyone, while its own sends still leave: a rank that hangs for good, and
 * ranks that wait for it. So after such a death every rank sends a probe to
 * each live rank of its host now and then; a rank that hears none of them
 * for the stall timeout while such ranks live is deaf, says why, and ends,
 * which the job's fault tolerance handles as any rank's death. */
#ifndef RH_TRANSPORT_RXWATCH_H
#define RH_TRANSPORT_RXWATCH_H

#include <stdint.h>

#include "rayhpc.h"

/* Registers the probe's handler; stall_ns 0 turns the watch off. */
rh_status_t rh_rxw_open(uint64_t stall_ns);

/* A rank of this host died (any thread, also inside UCX callbacks). */
void rh_rxw_peer_died(int rank);

/* The job is ending: ranks leave on purpose, the watch stops. */
void rh_rxw_stop(void);

/* Probes and the verdict (the progress thread, now and then). */
void rh_rxw_tick(uint64_t now);

/* What rh_rxw_tick does, from the times (ns) of the last death of a rank
 * of this host, of the last probe heard (0: none) and now: probe until
 * three stall timeouts after the death (ranks learn of it at different
 * times), and judge during the first two. */
enum { RH_RXW_OFF, RH_RXW_PROBE, RH_RXW_DEAF };
int rh_rxw_verdict(uint64_t died, uint64_t heard, uint64_t now,
                   uint64_t stall_ns, int others_live);

#endif
