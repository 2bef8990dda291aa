/*
 * The single-producer single-consumer ring (see shmring.h). Positions are
 * byte counts that only grow; a position's place in the data is the count
 * modulo the capacity, a power of two.
 */
#include "transport/shmring.h"

#include <string.h>

typedef struct rh_shmring_rec {
    uint32_t len;   /* body bytes */
    uint32_t tag;
} rh_shmring_rec_t;

_Static_assert(sizeof(rh_shmring_rec_t) == RH_SHMRING_REC_HDR,
               "record header size");

static inline uint64_t rh_shmring_span(uint32_t len)
{
    return ((uint64_t)len + RH_SHMRING_REC_HDR + RH_SHMRING_LINE - 1) &
           ~(uint64_t)(RH_SHMRING_LINE - 1);
}

int rh_shmring_cap_ok(uint64_t cap)
{
    return cap >= RH_SHMRING_MIN_CAP && (cap & (cap - 1)) == 0 &&
           cap <= (1ull << 31);
}

void rh_shmring_init(void *mem, uint64_t cap)
{
    rh_shmring_ctl_t *ctl = mem;

    (void)cap;
    atomic_store_explicit(&ctl->head, 0, memory_order_relaxed);
    atomic_store_explicit(&ctl->tail, 0, memory_order_relaxed);
    atomic_store_explicit(&ctl->writer_waits, 0, memory_order_release);
}

static void rh_shmring_view(rh_shmring_t *r, void *mem, uint64_t cap)
{
    memset(r, 0, sizeof(*r));
    r->ctl = mem;
    r->data = (uint8_t *)mem + sizeof(rh_shmring_ctl_t);
    r->cap = cap;
}

void rh_shmring_attach_writer(rh_shmring_t *r, void *mem, uint64_t cap)
{
    rh_shmring_view(r, mem, cap);
    r->pos = atomic_load_explicit(&r->ctl->head, memory_order_acquire);
    r->limit = atomic_load_explicit(&r->ctl->tail, memory_order_acquire);
}

void rh_shmring_attach_reader(rh_shmring_t *r, void *mem, uint64_t cap)
{
    rh_shmring_view(r, mem, cap);
    r->pos = atomic_load_explicit(&r->ctl->tail, memory_order_acquire);
    r->limit = r->pos;
}

void *rh_shmring_reserve(rh_shmring_t *r, uint32_t len)
{
    uint64_t need = rh_shmring_span(len);
    uint64_t off = r->pos & (r->cap - 1);
    uint64_t to_end = r->cap - off;
    uint64_t total = need > to_end ? to_end + need : need;

    if (len > rh_shmring_max_record(r->cap)) {
        return NULL;
    }
    if (r->cap - (r->pos - r->limit) < total) {
        r->limit = atomic_load_explicit(&r->ctl->tail, memory_order_acquire);
        if (r->cap - (r->pos - r->limit) < total) {
            return NULL;
        }
    }
    if (need > to_end) {
        rh_shmring_rec_t pad = { (uint32_t)(to_end - RH_SHMRING_REC_HDR),
                                 RH_SHMRING_TAG_PAD };

        memcpy(r->data + off, &pad, sizeof(pad));
        r->pos += to_end;
        off = 0;
    }
    r->rec = r->pos;
    r->rec_len = len;
    return r->data + off + RH_SHMRING_REC_HDR;
}

void rh_shmring_commit(rh_shmring_t *r, uint32_t tag)
{
    rh_shmring_rec_t h = { r->rec_len, tag };

    memcpy(r->data + (r->rec & (r->cap - 1)), &h, sizeof(h));
    r->pos = r->rec + rh_shmring_span(r->rec_len);
    /* seq_cst, not only release: the sender then reads the reader's
     * sleeping word (shmlink.c), and either the reader sees this head
     * before it sleeps or the sender sees it asleep. */
    atomic_store_explicit(&r->ctl->head, r->pos, memory_order_seq_cst);
}

int rh_shmring_wait_room(rh_shmring_t *r)
{
    uint64_t seen = r->limit;

    /* seq_cst with the reader's store of tail and load of the flag: either
     * it sees the flag, or we see the room it made. */
    atomic_store_explicit(&r->ctl->writer_waits, 1, memory_order_seq_cst);
    r->limit = atomic_load_explicit(&r->ctl->tail, memory_order_seq_cst);
    if (r->limit != seen) {
        atomic_store_explicit(&r->ctl->writer_waits, 0, memory_order_relaxed);
        return 1;
    }
    return 0;
}

const void *rh_shmring_peek(rh_shmring_t *r, uint32_t *len, uint32_t *tag)
{
    while (rh_shmring_readable(r)) {
        uint64_t off = r->pos & (r->cap - 1);
        uint64_t avail = r->limit - r->pos;
        rh_shmring_rec_t h;

        if (avail > r->cap || avail < RH_SHMRING_LINE) {
            break;   /* head moved backwards, or a torn record */
        }
        memcpy(&h, r->data + off, sizeof(h));
        if (h.tag == RH_SHMRING_TAG_PAD) {
            if ((uint64_t)h.len + RH_SHMRING_REC_HDR != r->cap - off ||
                avail < r->cap - off) {
                break;
            }
            r->pos += r->cap - off;
            continue;
        }
        if (h.len > rh_shmring_max_record(r->cap) ||
            rh_shmring_span(h.len) > avail ||
            off + rh_shmring_span(h.len) > r->cap) {
            break;
        }
        r->rec = r->pos + rh_shmring_span(h.len);
        *len = h.len;
        *tag = h.tag;
        return r->data + off + RH_SHMRING_REC_HDR;
    }
    *len = r->pos == r->limit ? 0 : UINT32_MAX;
    return NULL;
}

void rh_shmring_consume(rh_shmring_t *r)
{
    r->pos = r->rec;
}

int rh_shmring_release(rh_shmring_t *r)
{
    atomic_store_explicit(&r->ctl->tail, r->pos, memory_order_seq_cst);
    if (atomic_load_explicit(&r->ctl->writer_waits, memory_order_seq_cst) &&
        atomic_exchange_explicit(&r->ctl->writer_waits, 0,
                                 memory_order_relaxed)) {
        return 1;
    }
    return 0;
}
