/*
 * One-sided reads, and their stand-in where UCX has no hardware for them.
 *
 * Without a transport that reads remote memory (InfiniBand, or CMA between
 * the processes of a host, which UCX 1.13 leaves out of endpoints with
 * peer-failure handling), UCX emulates ucp_get_nbx with messages: the
 * owner's UCX answers from a request of its own, which it never gives
 * back when the reader dies while the answer waits in the queue (the
 * "not returned to mpool ucp_requests" warning at finalize, from every
 * reader killed mid-read). To such peers we send the read as our own
 * message instead: the owner answers with eager sends from its region,
 * requests of ours that fail, report and are freed like any other when
 * the reader dies.
 */
#include "transport/rma.h"

#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "base/hashmap.h"
#include "base/log.h"
#include "base/status.h"
#include "transport/am_ids.h"
#include "transport/shmlink.h"
#include "transport/tp_internal.h"
#include "transport/transport.h"

typedef struct rh_rma_peer {
    ucp_rkey_h rkey;
    uint64_t   base;      /* where that rank maps its region */
    int        by_am;     /* UCX cannot read its memory: reads are messages */
    int        known;     /* its rkey arrived (rkey stays NULL where reads
                           * go through its same-host ring) */
} rh_rma_peer_t;

/* A read request, and its answer: the bytes, or status != 0 and none. */
typedef struct rh_rma_read_hdr {
    uint64_t token, offset, len;
} rh_rma_read_hdr_t;

typedef struct rh_rma_data_hdr {
    uint64_t token, offset;   /* where these bytes go in the read */
    int32_t  status;
    uint32_t reserved;
} rh_rma_data_hdr_t;

/* The answer goes in pieces this small, each one eager message (as every
 * send to a peer without RDMA is): a piece fits in one of UCX's
 * shared-memory buffers (8 KiB and a little), which UCX hands to the
 * reader's handler in place, so the bytes are copied once on each side as
 * in UCX's own emulation; larger messages are first gathered in a buffer
 * of UCX's. Each piece is done once copied out, or failed at once with the
 * endpoint. */
#define RH_RMA_PIECE 8000u

/* A read by message, from rh_tp_get until its done ran. */
typedef struct rh_rma_read rh_rma_read_t;
struct rh_rma_read {
    rh_am_done_fn  done;
    void          *arg;
    void          *local;
    uint64_t       token;
    size_t         len;
    int            rank;
    size_t         got;         /* bytes arrived */
    rh_rma_read_t *next_dead;   /* failing with its rank */
};

/* The packed form: the region's base address in the owner's process, then
 * UCX's packed rkey. */
typedef struct rh_rma_packed_hdr {
    uint64_t base;
} rh_rma_packed_hdr_t;

static struct {
    ucp_mem_h      memh;
    void          *base;
    size_t         len;
    uint8_t       *packed;      /* header + UCX rkey */
    size_t         packed_len;
    rh_rma_peer_t *peers;       /* progress thread only */
    int            npeers;
    /* reads by message, token -> rh_rma_read_t * (progress thread only) */
    rh_hmap_t      reads;
    uint64_t       next_token;
} rh_rma;

rh_status_t rh_tp_mem_register(void *base, size_t len)
{
    ucp_mem_map_params_t mp;
    rh_rma_packed_hdr_t h = { (uint64_t)(uintptr_t)base };
    void *rkey;
    size_t rkey_len;
    ucs_status_t st;

    memset(&mp, 0, sizeof(mp));
    mp.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS |
                    UCP_MEM_MAP_PARAM_FIELD_LENGTH;
    mp.address = base;
    mp.length = len;
    st = ucp_mem_map(rh_tp_context(), &mp, &rh_rma.memh);
    if (st != UCS_OK) {
        return rh_error_set(RH_ERR_TRANSPORT, "cannot register the object "
                            "store (%zu bytes) with UCX: %s", len,
                            ucs_status_string(st));
    }
    st = ucp_rkey_pack(rh_tp_context(), rh_rma.memh, &rkey, &rkey_len);
    if (st != UCS_OK) {
        ucp_mem_unmap(rh_tp_context(), rh_rma.memh);
        rh_rma.memh = NULL;
        return rh_error_set(RH_ERR_TRANSPORT, "ucp_rkey_pack: %s",
                            ucs_status_string(st));
    }
    rh_rma.packed = malloc(sizeof(h) + rkey_len);
    if (rh_rma.packed == NULL) {
        ucp_rkey_buffer_release(rkey);
        return rh_error_set(RH_ERR_NO_MEMORY, "packed rkey");
    }
    memcpy(rh_rma.packed, &h, sizeof(h));
    memcpy(rh_rma.packed + sizeof(h), rkey, rkey_len);
    rh_rma.packed_len = sizeof(h) + rkey_len;
    ucp_rkey_buffer_release(rkey);
    rh_rma.base = base;
    rh_rma.len = len;
    return RH_OK;
}

void rh_tp_local_rkey(const void **buf, size_t *len)
{
    *buf = rh_rma.packed;
    *len = rh_rma.packed_len;
}

static rh_rma_peer_t *rh_rma_peer(int rank)
{
    if (rank < 0 || rank >= rh_tp_size()) {
        return NULL;
    }
    if (rh_rma.peers == NULL) {
        rh_rma.peers = calloc((size_t)rh_tp_size(), sizeof(*rh_rma.peers));
        if (rh_rma.peers == NULL) {
            return NULL;
        }
        rh_rma.npeers = rh_tp_size();
    }
    return &rh_rma.peers[rank];
}

int rh_tp_has_rkey(int rank)
{
    rh_rma_peer_t *p = rh_rma_peer(rank);

    return p != NULL && p->known;
}

rh_status_t rh_tp_set_rkey(int rank, const void *buf, size_t len)
{
    rh_rma_peer_t *p = rh_rma_peer(rank);
    rh_rma_packed_hdr_t h;
    ucp_ep_h ep;
    ucs_status_t st;
    rh_status_t status;

    if (p == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "rkey table");
    }
    if (p->known) {
        return RH_OK;
    }
    if (len <= sizeof(h)) {
        return rh_error_set(RH_ERR_MALFORMED, "rank %d sent a %zu-byte rkey",
                            rank, len);
    }
    /* A rank of this host reached through a ring: UCX has no lane that
     * reads its memory there (none with peer-failure handling in 1.13), and
     * an endpoint made now only for the rkey may meet a rank that died
     * meanwhile (UCX then logs errors of its shared memory). */
    if (rh_shml_on((uint32_t)rank)) {
        memcpy(&h, buf, sizeof(h));
        p->base = h.base;
        p->by_am = 1;
        p->known = 1;
        return RH_OK;
    }
    status = rh_tp_ep(rank, &ep);
    if (status != RH_OK) {
        return status;
    }
    memcpy(&h, buf, sizeof(h));
    st = ucp_ep_rkey_unpack(ep, (const uint8_t *)buf + sizeof(h), &p->rkey);
    if (st != UCS_OK) {
        p->rkey = NULL;
        return rh_error_set(RH_ERR_MALFORMED, "rank %d's rkey does not "
                            "unpack: %s", rank, ucs_status_string(st));
    }
    p->base = h.base;
    p->by_am = !rh_tp_peer_zcopy(rank);
    p->known = 1;
    return RH_OK;
}

typedef struct rh_rma_op {
    rh_am_done_fn done;
    void         *arg;
    int           rank;
} rh_rma_op_t;

static void rh_rma_get_cb(void *request, ucs_status_t status, void *user_data)
{
    rh_rma_op_t *op = user_data;

    op->done(op->arg, rh_tp_status_from_ucs(status, op->rank));
    free(op);
    ucp_request_free(request);
    rh_tp_open_reqs--;
}

/* ---- reads by message --------------------------------------------------- */

static rh_rma_read_t *rh_rma_read_find(uint64_t token)
{
    rh_rma_read_t **slot = rh_hmap_get(&rh_rma.reads, &token);

    return slot != NULL ? *slot : NULL;
}

static void rh_rma_read_end(rh_rma_read_t *r, rh_status_t status)
{
    (void)rh_hmap_del(&rh_rma.reads, &r->token, NULL);
    r->done(r->arg, status);
    free(r);
}

static rh_status_t rh_rma_get_by_am(int rank, void *local, size_t len,
                                    uint64_t offset, rh_am_done_fn done,
                                    void *arg)
{
    rh_rma_read_hdr_t h;
    rh_rma_read_t *r, **slot;
    rh_status_t status;

    r = malloc(sizeof(*r));
    if (r == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "read from rank %d", rank);
    }
    r->done = done;
    r->arg = arg;
    r->local = local;
    r->token = ++rh_rma.next_token;
    r->len = len;
    r->rank = rank;
    r->got = 0;
    slot = rh_hmap_put(&rh_rma.reads, &r->token, NULL);
    if (slot == NULL) {
        free(r);
        return rh_error_set(RH_ERR_NO_MEMORY, "read from rank %d", rank);
    }
    *slot = r;
    h.token = r->token;
    h.offset = offset;
    h.len = len;
    status = rh_am_send((uint32_t)rank, RH_AM_ID_RMA_READ, &h, sizeof(h),
                        NULL, 0, NULL, NULL);
    if (status != RH_OK) {
        (void)rh_hmap_del(&rh_rma.reads, &r->token, NULL);
        free(r);
    }
    return status;
}

/* The request never reached its rank (retries spent, or the rank died). */
static void rh_rma_read_lost(void *arg, uint32_t dest, const void *hdr,
                             size_t hdr_len, const void *data, size_t len,
                             rh_status_t status)
{
    rh_rma_read_hdr_t h;
    rh_rma_read_t *r;

    (void)arg;
    (void)dest;
    (void)data;
    (void)len;
    if (hdr_len != sizeof(h)) {
        return;
    }
    memcpy(&h, hdr, sizeof(h));
    r = rh_rma_read_find(h.token);
    if (r != NULL) {
        rh_rma_read_end(r, status);
    }
}

/* A piece left or failed: nothing of ours to give back (the bytes are the
 * region's), but a done callback keeps the send zero-copy. */
static void rh_rma_piece_sent(void *arg, rh_status_t status)
{
    (void)arg;
    (void)status;
}

/* Owner side: answer from the region in pieces, or with why not. */
static rh_status_t rh_rma_on_read(void *arg, rh_am_msg_t *msg)
{
    rh_rma_read_hdr_t h;
    rh_rma_data_hdr_t d;
    size_t piece = RH_RMA_PIECE;

    (void)arg;
    /* RAYHPC_RNDV_THRESH makes pieces at least that large rendezvous. */
    if (rh_cfg.rndv_thresh > 1 && rh_cfg.rndv_thresh - 1 < piece) {
        piece = (size_t)rh_cfg.rndv_thresh - 1;
    }
    memcpy(&h, msg->hdr, sizeof(h));
    memset(&d, 0, sizeof(d));
    d.token = h.token;
    if (rh_rma.memh == NULL || h.offset > rh_rma.len ||
        h.len > rh_rma.len - h.offset || h.len == 0) {
        rh_warn("rank %u asked for %llu bytes at offset %llu of a %zu-byte "
                "region", msg->src, (unsigned long long)h.len,
                (unsigned long long)h.offset, rh_rma.len);
        d.status = RH_ERR_INVALID_PARAM;
        (void)rh_am_send(msg->src, RH_AM_ID_RMA_DATA, &d, sizeof(d), NULL, 0,
                         NULL, NULL);
        return RH_OK;
    }
    for (d.offset = 0; d.offset < h.len; d.offset += piece) {
        size_t n = h.len - d.offset < piece ? (size_t)(h.len - d.offset) :
                   piece;

        /* A failure to send is the reader's death: it hears no more. */
        if (rh_am_send(msg->src, RH_AM_ID_RMA_DATA, &d, sizeof(d),
                       (uint8_t *)rh_rma.base + h.offset + d.offset, n,
                       rh_rma_piece_sent, NULL) != RH_OK) {
            break;
        }
    }
    return RH_OK;
}

/* Reader side: a piece of the bytes, or an error. */
static rh_status_t rh_rma_on_data(void *arg, rh_am_msg_t *msg)
{
    rh_rma_data_hdr_t d;
    rh_rma_read_t *r;

    (void)arg;
    memcpy(&d, msg->hdr, sizeof(d));
    r = rh_rma_read_find(d.token);
    if (r == NULL || r->rank != (int)msg->src) {
        /* Late from a rank we gave up on with its reads, or not ours. */
        return rh_tp_peer_alive((int)msg->src) ? RH_ERR_MALFORMED : RH_OK;
    }
    if (d.status != RH_OK) {
        rh_rma_read_end(r, d.status < 0 && d.status >= RH_ERR_SHUTDOWN ?
                        (rh_status_t)d.status : RH_ERR_MALFORMED);
        return RH_OK;
    }
    if (msg->rndv_desc != NULL || msg->data_len == 0 ||
        d.offset > r->len || msg->data_len > r->len - d.offset ||
        msg->data_len > r->len - r->got) {
        rh_rma_read_end(r, RH_ERR_MALFORMED);
        return RH_ERR_MALFORMED;
    }
    memcpy((uint8_t *)r->local + d.offset, msg->data, msg->data_len);
    r->got += msg->data_len;
    if (r->got == r->len) {
        rh_rma_read_end(r, RH_OK);
    }
    return RH_OK;
}

/* A dead rank answers nothing more: its reads fail now. */
static void rh_rma_on_peer_failure(void *arg, int rank)
{
    rh_rma_read_t *dead = NULL;
    rh_hmap_iter_t it;
    void *key, *val;

    (void)arg;
    rh_hmap_iter_init(&it, &rh_rma.reads);
    while (rh_hmap_iter_next(&it, &key, &val)) {
        rh_rma_read_t *r = *(rh_rma_read_t **)val;

        if (r->rank == rank) {
            rh_hmap_iter_del(&it);
            r->next_dead = dead;
            dead = r;
        }
    }
    while (dead != NULL) {
        rh_rma_read_t *r = dead;

        dead = r->next_dead;
        r->done(r->arg, RH_ERR_PEER_FAILED);
        free(r);
    }
}

rh_status_t rh_tp_rma_open(void)
{
    rh_status_t status;

    rh_hmap_init(&rh_rma.reads, sizeof(uint64_t), sizeof(rh_rma_read_t *));
    rh_rma.next_token = 0;
    status = rh_am_register(RH_AM_ID_RMA_READ, sizeof(rh_rma_read_hdr_t),
                            sizeof(rh_rma_read_hdr_t), rh_rma_on_read, NULL);
    if (status == RH_OK) {
        status = rh_am_register(RH_AM_ID_RMA_DATA, sizeof(rh_rma_data_hdr_t),
                                sizeof(rh_rma_data_hdr_t), rh_rma_on_data,
                                NULL);
    }
    if (status == RH_OK) {
        status = rh_am_set_lost(RH_AM_ID_RMA_READ, RH_AM_RETRIES,
                                rh_rma_read_lost, NULL);
    }
    if (status == RH_OK) {
        status = rh_tp_on_peer_failure(rh_rma_on_peer_failure, NULL);
    }
    return status;
}

/* ---- reads --------------------------------------------------------------- */

/* A read that is over before it began (no bytes): its done runs in the
 * progress thread's next round, as any other read's, never inside
 * rh_tp_get, whose caller still has its books to keep. */
typedef struct rh_rma_later {
    rh_tp_op_t    op;
    rh_am_done_fn done;
    void         *arg;
} rh_rma_later_t;

static void rh_rma_later_run(rh_tp_op_t *op)
{
    rh_rma_later_t *l = (rh_rma_later_t *)op;

    l->done(l->arg, RH_OK);
    free(l);
}

static rh_status_t rh_rma_done_later(rh_am_done_fn done, void *arg)
{
    rh_rma_later_t *l = malloc(sizeof(*l));

    if (l == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "RDMA read");
    }
    l->op.run = rh_rma_later_run;
    l->done = done;
    l->arg = arg;
    rh_tp_defer(&l->op);
    return RH_OK;
}

rh_status_t rh_tp_get(int rank, void *local, size_t len, uint64_t offset,
                      rh_am_done_fn done, void *arg)
{
    rh_rma_peer_t *p = rh_rma_peer(rank);
    ucp_request_param_t param;
    rh_rma_op_t *op;
    ucp_ep_h ep;
    void *req;
    rh_status_t status;

    if (p == NULL || !p->known) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "no rkey of rank %d", rank);
    }
    if (len == 0) {
        return rh_rma_done_later(done, arg);
    }
    if (p->by_am) {
        return rh_rma_get_by_am(rank, local, len, offset, done, arg);
    }
    status = rh_tp_ep(rank, &ep);
    if (status != RH_OK) {
        return status;
    }
    op = malloc(sizeof(*op));
    if (op == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "RDMA read");
    }
    op->done = done;
    op->arg = arg;
    op->rank = rank;
    memset(&param, 0, sizeof(param));
    /* A read that UCX finishes at once (a transport that copies in the
     * call) still completes through the callback, in a later progress. */
    param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK |
                         UCP_OP_ATTR_FIELD_USER_DATA |
                         UCP_OP_ATTR_FLAG_NO_IMM_CMPL;
    param.cb.send = rh_rma_get_cb;
    param.user_data = op;
    if (rh_rma.memh != NULL && (uint8_t *)local >= (uint8_t *)rh_rma.base &&
        (uint8_t *)local + len <= (uint8_t *)rh_rma.base + rh_rma.len) {
        param.op_attr_mask |= UCP_OP_ATTR_FIELD_MEMH;
        param.memh = rh_rma.memh;
    }
    req = ucp_get_nbx(ep, local, len, p->base + offset, p->rkey, &param);
    if (req == NULL) {   /* not with NO_IMM_CMPL; kept to its promise */
        free(op);
        return rh_rma_done_later(done, arg);
    }
    if (UCS_PTR_IS_ERR(req)) {
        free(op);
        return rh_error_set(rh_tp_status_from_ucs(UCS_PTR_STATUS(req), rank),
                            "RDMA read from rank %d: %s", rank,
                            ucs_status_string(UCS_PTR_STATUS(req)));
    }
    rh_tp_open_reqs++;
    return RH_OK;
}

void rh_tp_rma_close(void)
{
    rh_rma_read_t *open_read;

    /* Reads still open now had their endpoint closed under them and their
     * owners (the pulls) are gone: nobody is told. */
    while (rh_hmap_pop(&rh_rma.reads, NULL, &open_read)) {
        rh_debug("a read of %zu bytes from rank %d was still open at close",
                 open_read->len, open_read->rank);
        free(open_read);
    }
    rh_hmap_fini(&rh_rma.reads);
    if (rh_rma.peers != NULL) {
        for (int r = 0; r < rh_rma.npeers; r++) {
            if (rh_rma.peers[r].rkey != NULL) {
                ucp_rkey_destroy(rh_rma.peers[r].rkey);
            }
        }
        free(rh_rma.peers);
    }
    if (rh_rma.memh != NULL) {
        ucp_mem_unmap(rh_tp_context(), rh_rma.memh);
    }
    free(rh_rma.packed);
    memset(&rh_rma, 0, sizeof(rh_rma));
}
