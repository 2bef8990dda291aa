#include "transport/rma.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/status.h"
#include "transport/tp_internal.h"
#include "transport/transport.h"

typedef struct rh_rma_peer {
    ucp_rkey_h rkey;
    uint64_t   base;      /* where that rank maps its region */
} rh_rma_peer_t;

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

    return p != NULL && p->rkey != NULL;
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
    if (p->rkey != NULL) {
        return RH_OK;
    }
    if (len <= sizeof(h)) {
        return rh_error_set(RH_ERR_MALFORMED, "rank %d sent a %zu-byte rkey",
                            rank, len);
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

    if (p == NULL || p->rkey == NULL) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "no rkey of rank %d", rank);
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
    param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK |
                         UCP_OP_ATTR_FIELD_USER_DATA;
    param.cb.send = rh_rma_get_cb;
    param.user_data = op;
    if (rh_rma.memh != NULL && (uint8_t *)local >= (uint8_t *)rh_rma.base &&
        (uint8_t *)local + len <= (uint8_t *)rh_rma.base + rh_rma.len) {
        param.op_attr_mask |= UCP_OP_ATTR_FIELD_MEMH;
        param.memh = rh_rma.memh;
    }
    req = ucp_get_nbx(ep, local, len, p->base + offset, p->rkey, &param);
    if (req == NULL) {
        free(op);
        done(arg, RH_OK);
        return RH_OK;
    }
    if (UCS_PTR_IS_ERR(req)) {
        free(op);
        return rh_error_set(rh_tp_status_from_ucs(UCS_PTR_STATUS(req), rank),
                            "RDMA read from rank %d: %s", rank,
                            ucs_status_string(UCS_PTR_STATUS(req)));
    }
    return RH_OK;
}

void rh_tp_rma_close(void)
{
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
