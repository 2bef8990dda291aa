/*
 * Active messages: one table maps our AM id to a handler. Everything we send
 * travels under a single UCX AM id with a fixed wire header in front of the
 * user header; the receive path validates that header (length, magic, id,
 * source rank, declared lengths) before any handler sees the message, and
 * counts and logs what it drops instead of trusting it.
 *
 * Handlers run on the progress thread and must not block. Sends may come
 * from any thread.
 */
#ifndef RH_TRANSPORT_AM_H
#define RH_TRANSPORT_AM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "rayhpc.h"
#include "transport/am_ids.h"

#define RH_AM_MAGIC    0x5248u   /* "RH" */
#define RH_AM_VERSION  1u
#define RH_AM_MAX_HDR  256u      /* user header bytes */
#define RH_UCX_AM_ID   0         /* the UCX AM id that carries them all */

/* On the wire in front of every user header. 16 bytes on purpose: UCX
 * 1.13 sends a message whose header is at most 16 bytes on a faster short
 * path (a 24-byte header costs about 30 ns more per message over shm). */
typedef struct rh_am_wire_hdr {
    uint16_t magic;
    uint8_t  version;
    uint8_t  flags;
    uint16_t id;
    uint16_t hdr_len;     /* user header bytes that follow */
    uint32_t src;         /* sending rank */
    uint32_t data_len;    /* payload bytes sent, modulo 2^32 */
} rh_am_wire_hdr_t;

_Static_assert(sizeof(rh_am_wire_hdr_t) == 16, "wire header is 16 bytes");

/* A message from a process outside the job (rayhpc-info on a host with
 * none of its ranks): flags has RH_AM_FLAG_GUEST and src is
 * RH_AM_SRC_GUEST. Only ids that rh_am_accept_guests named take one; it
 * passes the same checks as any other, and its handler sees src
 * RH_AM_SRC_GUEST (no rank to answer: the body says where). */
#define RH_AM_FLAG_GUEST 0x01u
#define RH_AM_SRC_GUEST  UINT32_MAX

/* Coalesced messages: small sends of other threads that queue up for one
 * rank while the progress thread is busy leave as one message of this id
 * (flushed as soon as the queue drains: a lone message is never held).
 * Its user header says how many and how many bytes follow; each inner
 * message is its own wire header, user header and payload, padded to 8
 * bytes, and goes through the same checks and handler as if it had come
 * alone. A batch whose framing does not add up is dropped whole. */
#define RH_AM_ID_BATCH     RH_AM_ID_BATCH_FIRST
#define RH_AM_BATCH_BYTES  4096u   /* eager over every transport */

typedef struct rh_am_batch_hdr {
    uint32_t count;     /* inner messages, at least 2 */
    uint32_t bytes;     /* payload bytes: the inner messages, padded */
} rh_am_batch_hdr_t;

/* A received message as a handler sees it. */
typedef struct rh_am_msg {
    uint32_t    src;
    uint16_t    id;
    const void *hdr;
    size_t      hdr_len;
    void       *data;      /* NULL when the payload is still remote */
    size_t      data_len;
    void       *rndv_desc; /* set when data must be fetched: rh_am_recv_data */
} rh_am_msg_t;

/* A handler returns RH_OK, or RH_ERR_MALFORMED for a body it rejects (the
 * layer then counts and logs the drop). */
typedef rh_status_t (*rh_am_handler_fn)(void *arg, rh_am_msg_t *msg);

/* Called on the progress thread once a send's buffer may be reused (or the
 * send failed: RH_ERR_PEER_FAILED, RH_ERR_TRANSPORT, RH_ERR_SHUTDOWN). */
typedef void (*rh_am_done_fn)(void *arg, rh_status_t status);

/* Why a message was dropped; one counter each. */
typedef enum rh_am_drop {
    RH_AM_DROP_SHORT_HEADER = 0,  /* fewer bytes than the wire header */
    RH_AM_DROP_BAD_MAGIC,         /* not ours, or another version */
    RH_AM_DROP_UNKNOWN_ID,        /* no handler for that id */
    RH_AM_DROP_BAD_SOURCE,        /* source rank out of range */
    RH_AM_DROP_HDR_LENGTH,        /* user header length != what arrived */
    RH_AM_DROP_DATA_LENGTH,       /* payload length != what arrived */
    RH_AM_DROP_HANDLER_HDR,       /* header size outside the handler's range */
    RH_AM_DROP_REJECTED,          /* the handler found the body malformed */
    RH_AM_DROP_NUM
} rh_am_drop_t;

typedef struct rh_am_stats {
    _Atomic uint64_t received;
    _Atomic uint64_t dropped[RH_AM_DROP_NUM];
    _Atomic uint64_t injected;   /* sends failed by RAYHPC_FAULT_SENDS */
    _Atomic uint64_t retried;    /* failed sends sent again */
    _Atomic uint64_t lost;       /* failed for good, handed to lost */
    _Atomic uint64_t batches;    /* coalesced messages sent */
    _Atomic uint64_t batched;    /* messages that went in them */
} rh_am_stats_t;

/* Times a failed send to a live rank goes again before its failure is
 * reported, unless its id says otherwise (rh_am_set_lost). */
#define RH_AM_RETRIES 16

/* A message of this id could not be delivered: its rank failed, or it
 * failed again on every retry. hdr and data are the message's user header
 * and payload, valid during the call. Runs on the progress thread, outside
 * UCX callbacks and outside the rh_am_send that accepted it. */
typedef void (*rh_am_lost_fn)(void *arg, uint32_t dest, const void *hdr,
                              size_t hdr_len, const void *data, size_t len,
                              rh_status_t status);

/* Registers the handler of `id`; every header shorter than min_hdr or longer
 * than max_hdr is dropped before it runs. Register before rh_init: another
 * rank may send as soon as its own rh_init returns, and a message for an id
 * with no handler yet is dropped as unknown. */
rh_status_t rh_am_register(uint16_t id, size_t min_hdr, size_t max_hdr,
                           rh_am_handler_fn fn, void *arg);

/* Lets messages from outside the job reach the handler of id (registered
 * or not yet); every other id drops them as from a bad source. */
rh_status_t rh_am_accept_guests(uint16_t id);

/* Sends header + data to rank dest. With done == NULL the data is copied
 * (or sent) before the call returns; otherwise the data is sent in place
 * (zero copy) and must stay valid until done runs. The call fails only for
 * bad arguments, a stopped transport, a rank known dead or no memory; once
 * it returned RH_OK the outcome comes later, on the progress thread: a send
 * that failed to a live rank goes again (its id's retries), then done runs
 * with the status, or, without done, the id's lost handler (else a
 * warning). done runs exactly once when the call returns RH_OK, never when
 * it returns an error. Payloads of RAYHPC_RNDV_THRESH bytes or more go by
 * rendezvous. */
rh_status_t rh_am_send(uint32_t dest, uint16_t id, const void *hdr,
                       size_t hdr_len, const void *data, size_t len,
                       rh_am_done_fn done, void *done_arg);

/* A lost handler for messages whose loss needs nothing done (their rank
 * died, and whoever waits learns it otherwise): one debug line naming the
 * message by arg, a string. */
void rh_am_lost_quietly(void *arg, uint32_t dest, const void *hdr,
                        size_t hdr_len, const void *data, size_t len,
                        rh_status_t status);

/* What happens to a send of id that failed: it goes again up to retries
 * times while its rank lives, then lost runs (NULL: a warning). The
 * default, before any call, is RH_AM_RETRIES retries and a warning. */
rh_status_t rh_am_set_lost(uint16_t id, unsigned retries, rh_am_lost_fn lost,
                           void *arg);

/* Waits until fewer than RAYHPC_SEND_QUEUE_MAX sends of threads other than
 * the progress thread are on their way; with nonblock, RH_ERR_BUSY and a
 * message instead. For submitters, before they add work that sends: never
 * with a lock held. Returns at once on the progress thread. */
rh_status_t rh_am_wait_room(int nonblock);

/* Sends of other threads on their way now. */
long rh_am_posted(void);

/* Sends in place and waits until the buffer is free again or the send
 * failed. Not from the progress thread (handlers use rh_am_send). */
rh_status_t rh_am_send_wait(uint32_t dest, uint16_t id, const void *hdr,
                            size_t hdr_len, const void *data, size_t len);

/* From a handler: receives a rendezvous payload straight into buf (len must
 * be msg->data_len). done runs once the data is there. */
rh_status_t rh_am_recv_data(rh_am_msg_t *msg, void *buf, rh_am_done_fn done,
                            void *done_arg);

/* Validates a raw UCX header of hlen bytes carrying dlen payload bytes, for
 * a job of nranks. Returns the drop reason, or RH_AM_DROP_NUM when the
 * message is well-formed and its handler's header range fits. */
rh_am_drop_t rh_am_check(const void *hdr, size_t hlen, size_t dlen,
                         uint32_t nranks);

const char *rh_am_drop_string(rh_am_drop_t reason);

/* Counters since start-up (any thread may read them). */
const rh_am_stats_t *rh_am_stats(void);

/* Sends raw bytes as the UCX header, bypassing the wire header: lets the
 * tests prove that malformed messages are dropped. */
rh_status_t rh_am_send_raw(uint32_t dest, const void *hdr, size_t hdr_len,
                           const void *data, size_t len);

/* A message as UCX hands it over: the raw header (wire header first) and
 * an eager payload; reason is set on delivery. */
typedef struct rh_am_raw {
    const void   *hdr;
    size_t        hlen;
    void         *data;
    size_t        dlen;
    rh_am_drop_t  reason;   /* RH_AM_DROP_NUM: its handler took it */
} rh_am_raw_t;

/* Hands n messages to the receive path as if they had arrived from the
 * network, in order: the same checks, then the handler, on the progress
 * thread; returns once the last handler returned. Lets the tests and the
 * fuzz targets (tests/fuzz/) feed hostile messages to every handler without
 * a second rank. */
rh_status_t rh_am_deliver(rh_am_raw_t *msgs, size_t n);

/* Internal to the transport: installs the UCX receive handler and drains
 * the free list at close. */
struct ucp_worker;
rh_status_t rh_am_attach(struct ucp_worker *worker);
void rh_am_detach(void);

/* Internal to the transport: the same-host rings' receive path
 * (shmlink.h's deliver); whether sends wait for room in a ring; sends them
 * what room there is now, or with fail != RH_OK fails every one of them
 * (progress thread). */
void rh_am_ring_deliver(const void *hdr, size_t hlen, void *data,
                        size_t dlen);
int rh_am_ring_waiting(void);
void rh_am_ring_retry(rh_status_t fail);

/* Sends everything held back to coalesce (the progress loop, once the op
 * queue drained); returns how many ranks had some. */
unsigned rh_am_flush_batches(void);

#endif
