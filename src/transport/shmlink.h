/*
 * The same-host message path (src/transport only): every rank owns one
 * shared-memory segment with a ring (shmring.h) per rank of its host, each
 * written by that rank alone, and the active messages between two ranks of
 * a host go through the receiver's ring of the sender instead of UCX.
 *
 * Why: UCX's shared-memory transport gives each process one receive FIFO
 * that every sender of the host writes into, and a sender killed between
 * taking a slot and marking it ready stops the receiver from reading
 * anything from anyone, for good. Here a dead sender can only hold up its
 * own ring, which the receiver drops once the sender is declared dead.
 *
 * A message that fits one record (a quarter of RAYHPC_SHM_RING_BYTES)
 * goes whole and is handed to the receive path straight from the ring; a
 * larger one goes in fragments that the receiver reassembles. A sender
 * that finds the ring full (or the segment not there yet) keeps the rest
 * for later and hears, through its own doorbell, when the reader made
 * room. The doorbell is a datagram socket per process in the abstract
 * namespace, watched by the progress thread's epoll; a sender rings it only
 * when the receiver said, in its segment, that it is about to sleep.
 *
 * Everything here runs on the thread that acts as the progress thread (it
 * holds the worker's token), the reader of every ring we receive on,
 * except rh_shml_send_any: a ring we send on is written under a lock of
 * its own, so that another thread may put a small message in it itself,
 * with no request handed to the progress thread.
 */
#ifndef RH_TRANSPORT_SHMLINK_H
#define RH_TRANSPORT_SHMLINK_H

#include <stddef.h>
#include <stdint.h>

#include "rayhpc.h"
#include "transport/transport.h"

/* Hands a message to the receive path: hdr is the wire header and the
 * user header, data the payload; both valid during the call. */
typedef void (*rh_shml_deliver_fn)(const void *hdr, size_t hlen, void *data,
                                   size_t dlen);

/* Creates this rank's segment (named from job_id and rank) with a ring of
 * ring_bytes for each rank of the host, and its doorbell, watched by
 * epoll_fd. */
rh_status_t rh_shml_open(const char *job_id, int rank, int size,
                         const rh_tp_peer_info_t *peers, uint64_t ring_bytes,
                         int epoll_fd, rh_shml_deliver_fn deliver);

/* Unmaps every segment, removes ours and closes the doorbell. */
void rh_shml_close(void);

/* Per rank: 1 when messages to it go through its ring (NULL: none do). */
extern const uint8_t *rh_shml_route;

static inline int rh_shml_on(uint32_t dest)
{
    return rh_shml_route != NULL && rh_shml_route[dest];
}

/* The largest message (header and payload) that goes as one record. */
size_t rh_shml_max_whole(void);

/* Writes the message hdr || data to dest's ring from byte *sent on.
 * RH_OK: all of it is in the ring. RH_ERR_BUSY: the ring is full, or the
 * segment not there yet; *sent says how far it got (0 for a message that
 * fits one record: such a message goes whole or not at all) and the caller
 * tries again later (the ring stays held until rh_shml_unhold).
 * RH_ERR_PEER_FAILED: dest is dead; other errors with
 * a message. */
rh_status_t rh_shml_send(uint32_t dest, const void *hdr, size_t hlen,
                         const void *data, size_t dlen, size_t *sent);

/* What rh_shml_send_any did. */
typedef enum {
    RH_SHML_ANY_SENT,    /* the message is in the ring */
    RH_SHML_ANY_FULL,    /* no room now: the reader makes some soon */
    RH_SHML_ANY_NOT_NOW  /* the ring is being written, not mapped yet,
                          * dead, or held (rh_shml_unhold) */
} rh_shml_any_t;

/* Any thread: writes the message wire || hdr || data, which fits one
 * record (rh_shml_max_whole), to dest's ring at once, or writes nothing
 * and says why; the caller then sends it the usual way. */
rh_shml_any_t rh_shml_send_any(uint32_t dest, const void *wire, size_t wlen,
                               const void *hdr, size_t hlen,
                               const void *data, size_t dlen);

/* Progress thread: nothing waits any more for room in dest's ring. A send
 * that found the ring busy holds it (rh_shml_send_any writes nothing to
 * it, which would overtake what waits) until this is called. */
void rh_shml_unhold(uint32_t dest);

/* Reads what waits in our rings and hands it to the receive path; returns
 * how many records. */
unsigned rh_shml_poll(void);

/* Before the progress thread sleeps: says so to the senders and returns 1,
 * or 0 when a record waits already (no sleep then). */
int rh_shml_sleep_prepare(void);

/* After it woke: empties the doorbell. */
void rh_shml_woken(void);

/* How long the thread may sleep at most, given ms: short while a send
 * waits for a segment that is not there yet. */
int rh_shml_sleep_ms(int ms);

/* rank was declared dead: its ring to us is dropped (with any message half
 * received) and sends to it fail from now on. */
void rh_shml_peer_dead(int rank);

/* Name of the segment of rank in job_id's job, for tools and tests. */
rh_status_t rh_shml_segment_name(const char *job_id, int rank, char *buf,
                                 size_t len);

/* Removes the ring segment at path when the process that created it is
 * gone; returns 1 when it did (the stale-segment reaper). */
int rh_shml_remove_if_stale(const char *path);

/* Counters since start-up. */
typedef struct rh_shml_stats {
    uint64_t sent, received;   /* records */
    uint64_t full;             /* sends that found a ring full */
    uint64_t bells;            /* doorbells rung */
    uint64_t dropped;          /* records of dead or broken rings */
} rh_shml_stats_t;

const rh_shml_stats_t *rh_shml_stats(void);

#endif
