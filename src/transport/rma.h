/*
 * One-sided reads between ranks: each rank registers one region (its view
 * of the node's object store) with UCX once, and a rank that has another
 * rank's packed rkey reads straight out of that rank's region into its own
 * (ucp_get_nbx: RDMA on InfiniBand). Where UCX would only emulate the read
 * (TCP; shared memory between ranks, whose endpoints handle peer failure),
 * the read goes as a message of ours that the owner answers from its
 * region: UCX's emulation leaks a request of the owner's when the reader
 * dies mid-read.
 *
 * Registration happens before the progress thread starts; everything else
 * runs on the progress thread.
 */
#ifndef RH_TRANSPORT_RMA_H
#define RH_TRANSPORT_RMA_H

#include <stddef.h>
#include <stdint.h>

#include "rayhpc.h"
#include "transport/am.h"

/* Registers [base, base + len) for remote reads and local writes. */
rh_status_t rh_tp_mem_register(void *base, size_t len);

/* This rank's packed rkey of that region (empty before registering). */
void rh_tp_local_rkey(const void **buf, size_t *len);

/* Progress thread: whether rank's rkey is known; learns it from its packed
 * bytes (what rank's rh_tp_local_rkey gave). */
int rh_tp_has_rkey(int rank);
rh_status_t rh_tp_set_rkey(int rank, const void *buf, size_t len);

/* Progress thread: reads len bytes at offset of rank's region into local
 * (inside our own region). done(arg, status) runs once, on the progress
 * thread, when the bytes are there or the read failed, and always after
 * this returned (also when the transport had the bytes at once, or len is
 * 0), so a caller may count the read in flight after the call. Not when
 * this returns an error. */
rh_status_t rh_tp_get(int rank, void *local, size_t len, uint64_t offset,
                      rh_am_done_fn done, void *arg);

/* Installs the handlers of reads by message (when the transport opens). */
rh_status_t rh_tp_rma_open(void);

/* Drops the rkeys and the registration (after the progress thread stopped,
 * before the worker goes). */
void rh_tp_rma_close(void);

#endif
