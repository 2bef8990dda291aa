/* Shared between the files of src/transport only. */
#ifndef RH_TRANSPORT_TP_INTERNAL_H
#define RH_TRANSPORT_TP_INTERNAL_H

#include <ucp/api/ucp.h>

#include "rayhpc.h"
#include "transport/am.h"   /* RH_UCX_AM_ID */

extern ucp_worker_h rh_tp_worker;

/* Requests UCX handed us and has not completed yet (progress thread only,
 * or any thread once it stopped): every one is completed and freed before
 * the worker goes, or the close says how many were not. */
extern long rh_tp_open_reqs;

ucp_context_h rh_tp_context(void);

/* Endpoint to rank (progress thread only); created on first use. Fails with
 * RH_ERR_PEER_FAILED for a dead peer. */
rh_status_t rh_tp_ep(int rank, ucp_ep_h *ep);

/* Whether UCX moves bulk data to rank without copies of its own (a lane
 * for remote memory access: RDMA); known once its endpoint exists. */
int rh_tp_peer_zcopy(int rank);

/* Whether rank runs on this host (its messages come through the host's
 * shared memory). */
int rh_tp_peer_same_host(int rank);

/* Maps a UCX error on traffic to/from rank to our status. */
rh_status_t rh_tp_status_from_ucs(ucs_status_t status, int rank);

/* Whether the progress thread is parked, stepping aside for a driver
 * (tests). */
int rh_tp_parked(void);

#endif
