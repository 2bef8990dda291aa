/*
 * Answers to a process outside the job: rayhpc-info on a host with none of
 * the job's ranks asks a rank over UCX (a message with RH_AM_FLAG_GUEST,
 * am.h) and sends its own worker address along. The answer goes on an
 * endpoint made for it, closed as soon as the answer left; nothing of the
 * guest stays in the peer table, and no rank waits for it.
 */
#ifndef RH_TRANSPORT_GUEST_H
#define RH_TRANSPORT_GUEST_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

/* Guests answered at once, at most: more are refused (their asker times
 * out), so that a flood of asks cannot take a rank's memory. */
#define RH_TP_GUESTS_MAX 8

/* Sends header + data (malloc'd: freed once sent, or on failure, by this
 * call's side in every case) as message id to the worker at addr (addr_len
 * bytes, copied). Any thread but the progress thread's handlers may call
 * it; the send happens on the progress thread and its outcome is only
 * logged (debug): the guest learns nothing more than what arrives. */
rh_status_t rh_tp_guest_send(const void *addr, size_t addr_len, uint16_t id,
                             const void *hdr, size_t hdr_len, void *data,
                             size_t len);

/* Internal to the transport: rh_tp_open lets guests be answered, and
 * when its endpoints close: every guest's
 * endpoint is closed now (forced) and no new one is made. */
void rh_tp_guest_open(void);
void rh_tp_guest_close_all(void);

#endif
