/*
 * A single-producer single-consumer ring of variable-size records in
 * memory that two processes share. The writer owns `head`, the reader
 * owns `tail`; each is published with a release store and read with an
 * acquire load, and lives on a cache line of its own. A record is an
 * 8-byte header (body length, tag) and its body, padded to a cache line;
 * one that would not fit before the end of the ring is preceded by a
 * padding record that sends the reader back to the start.
 *
 * A record becomes visible only when the writer publishes head past it: a
 * writer that dies while filling one leaves nothing half-written for the
 * reader, only a ring that never moves again, which holds up that writer's
 * messages and no one else's.
 */
#ifndef RH_TRANSPORT_SHMRING_H
#define RH_TRANSPORT_SHMRING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define RH_SHMRING_LINE      64u
#define RH_SHMRING_REC_HDR   8u
#define RH_SHMRING_MIN_CAP   4096u
#define RH_SHMRING_TAG_PAD   0xffffffffu   /* reserved: skip to the start */

/* The shared part, at the start of the ring's memory; the data follow. */
typedef struct rh_shmring_ctl {
    _Alignas(64) _Atomic uint64_t head;         /* bytes published */
    _Atomic uint32_t writer_waits;  /* the writer found it full: tell it
                                     * when room frees */
    _Alignas(64) _Atomic uint64_t tail;         /* bytes consumed */
} rh_shmring_ctl_t;

/* One side's view: a writer and a reader each keep their own. */
typedef struct rh_shmring {
    rh_shmring_ctl_t *ctl;
    uint8_t          *data;
    uint64_t          cap;       /* a power of two */
    uint64_t          pos;       /* writer: head to be; reader: its tail */
    uint64_t          limit;     /* writer: tail seen; reader: head seen */
    uint64_t          rec;       /* writer: where the reserved record starts;
                                  * reader: where the peeked one ends */
    uint32_t          rec_len;   /* writer: body bytes reserved */
} rh_shmring_t;

/* Bytes of shared memory a ring of cap data bytes takes. */
static inline size_t rh_shmring_bytes(uint64_t cap)
{
    return sizeof(rh_shmring_ctl_t) + (size_t)cap;
}

/* The largest body one record may carry in a ring of cap bytes: a quarter,
 * so that several records are in flight at once. */
static inline uint32_t rh_shmring_max_record(uint64_t cap)
{
    return (uint32_t)(cap / 4 - RH_SHMRING_REC_HDR);
}

/* Whether cap is a ring size we take: a power of two, at least the
 * minimum. */
int rh_shmring_cap_ok(uint64_t cap);

/* Initializes the shared part (the reader's side, before anyone
 * attaches). */
void rh_shmring_init(void *mem, uint64_t cap);

/* Views of a ring of cap bytes at mem. */
void rh_shmring_attach_writer(rh_shmring_t *r, void *mem, uint64_t cap);
void rh_shmring_attach_reader(rh_shmring_t *r, void *mem, uint64_t cap);

/* Writer: room for a body of len bytes (at most rh_shmring_max_record),
 * contiguous and cache-line aligned, or NULL while the ring is too full.
 * Nothing is visible to the reader until rh_shmring_commit. */
void *rh_shmring_reserve(rh_shmring_t *r, uint32_t len);

/* Writer: seals the reserved record with its tag (anything but
 * RH_SHMRING_TAG_PAD) and publishes it, and any padding before it, with a
 * sequentially consistent store. */
void rh_shmring_commit(rh_shmring_t *r, uint32_t tag);

/* Writer: after a NULL reserve, asks the reader to say when it consumed
 * something; returns 1 when room freed meanwhile (the flag is then taken
 * back and the writer tries again at once). */
int rh_shmring_wait_room(rh_shmring_t *r);

/* Reader: whether a record waits (one load of head when none did). */
static inline int rh_shmring_readable(rh_shmring_t *r)
{
    if (r->pos != r->limit) {
        return 1;
    }
    r->limit = atomic_load_explicit(&r->ctl->head, memory_order_acquire);
    return r->pos != r->limit;
}

/* Reader, about to sleep: whether a record waits, by a sequentially
 * consistent load (pairs with the writer's commit). */
static inline int rh_shmring_readable_sc(rh_shmring_t *r)
{
    r->limit = atomic_load_explicit(&r->ctl->head, memory_order_seq_cst);
    return r->pos != r->limit;
}

/* Reader: the next record's body, length and tag, or NULL when none
 * waits. Returns NULL with *len set to UINT32_MAX for a record whose
 * framing is impossible (the ring is then unusable). The body stays valid
 * until rh_shmring_consume. */
const void *rh_shmring_peek(rh_shmring_t *r, uint32_t *len, uint32_t *tag);

/* Reader: done with the peeked record; its bytes go back to the writer
 * once rh_shmring_release publishes the tail. */
void rh_shmring_consume(rh_shmring_t *r);

/* Reader: publishes what was consumed; returns 1 when the writer asked to
 * be told (the flag is then cleared: the caller rings its bell). */
int rh_shmring_release(rh_shmring_t *r);

#endif
