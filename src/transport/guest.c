/*
 * Answers to processes outside the job, each on an endpoint of its own.
 *
 * A guest's answer lives in one rh_tp_guest from the call to its free:
 * posted to the progress thread, which makes the endpoint and sends (eager:
 * a rendezvous to a guest that dies over shared memory would never end),
 * then, once the send completed, closes the endpoint (flushed, or forced
 * after an error) and frees it. Everything past the call runs on the
 * progress thread, so the list needs no lock.
 */
#include "transport/guest.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "transport/am.h"
#include "transport/tp_internal.h"
#include "transport/transport.h"

typedef struct rh_tp_guest rh_tp_guest_t;
struct rh_tp_guest {
    rh_tp_op_t     op;          /* start, then end: one at a time */
    rh_tp_guest_t *next;        /* in the list once started */
    ucp_ep_h       ep;          /* NULL once closed */
    void          *close_req;   /* a flushed close on its way */
    int            failed;      /* UCX reported the endpoint broken */
    void          *data;
    size_t         len;
    size_t         hdr_total;
    uint8_t        hdr[sizeof(rh_am_wire_hdr_t) + RH_AM_MAX_HDR];
    size_t         addr_len;
    uint8_t        addr[];
};

static struct {
    rh_tp_guest_t *list;     /* progress thread only */
    int            closed;   /* progress thread only */
    _Atomic int    live;     /* guests between the call and their free */
} rh_tpg;

static void rh_tpg_free(rh_tp_guest_t *g)
{
    rh_tp_guest_t **p = &rh_tpg.list;

    while (*p != NULL && *p != g) {
        p = &(*p)->next;
    }
    if (*p == g) {
        *p = g->next;
    }
    free(g->data);
    free(g);
    atomic_fetch_sub(&rh_tpg.live, 1);
}

static void rh_tpg_close_cb(void *request, ucs_status_t status,
                            void *user_data)
{
    rh_tp_guest_t *g = user_data;

    if (status != UCS_OK) {
        rh_debug("job state: closing a guest's endpoint: %s",
                 ucs_status_string(status));
    }
    ucp_request_free(request);
    rh_tp_open_reqs--;
    rh_tpg_free(g);
}

/* The progress loop, once the send is over: the endpoint closes (the
 * answer flushed first unless the guest is known gone). */
static void rh_tpg_end(rh_tp_op_t *op)
{
    rh_tp_guest_t *g = (rh_tp_guest_t *)op;
    ucp_request_param_t param;
    void *req;

    if (g->ep == NULL) {   /* closed by rh_tp_guest_close_all */
        rh_tpg_free(g);
        return;
    }
    memset(&param, 0, sizeof(param));
    param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS |
                         UCP_OP_ATTR_FIELD_CALLBACK |
                         UCP_OP_ATTR_FIELD_USER_DATA;
    param.flags = g->failed || rh_tpg.closed ? UCP_EP_CLOSE_FLAG_FORCE : 0;
    param.cb.send = rh_tpg_close_cb;
    param.user_data = g;
    req = ucp_ep_close_nbx(g->ep, &param);
    g->ep = NULL;
    if (UCS_PTR_IS_PTR(req)) {
        g->close_req = req;
        rh_tp_open_reqs++;
        return;
    }
    rh_tpg_free(g);
}

static void rh_tpg_finish(rh_tp_guest_t *g, ucs_status_t status)
{
    if (status != UCS_OK) {
        rh_debug("job state: the answer to a guest failed: %s",
                 ucs_status_string(status));
        g->failed = 1;
    }
    g->op.run = rh_tpg_end;
    rh_tp_defer(&g->op);   /* not inside UCX's callback */
}

static void rh_tpg_send_cb(void *request, ucs_status_t status,
                           void *user_data)
{
    ucp_request_free(request);
    rh_tp_open_reqs--;
    rh_tpg_finish(user_data, status);
}

static void rh_tpg_error(void *arg, ucp_ep_h ep, ucs_status_t status)
{
    rh_tp_guest_t *g = arg;

    (void)ep;
    rh_debug("job state: a guest's endpoint failed: %s",
             ucs_status_string(status));
    g->failed = 1;   /* its send, if any, fails too and ends it */
}

static void rh_tpg_start(rh_tp_op_t *op)
{
    rh_tp_guest_t *g = (rh_tp_guest_t *)op;
    ucp_ep_params_t ep_params;
    ucp_request_param_t param;
    ucs_status_t status;
    void *req;

    if (rh_tpg.closed || rh_tp_worker == NULL) {
        rh_tpg_free(g);
        return;
    }
    memset(&ep_params, 0, sizeof(ep_params));
    ep_params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS |
                           UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                           UCP_EP_PARAM_FIELD_ERR_HANDLER;
    ep_params.address = (const ucp_address_t *)g->addr;
    ep_params.err_mode = UCP_ERR_HANDLING_MODE_PEER;
    ep_params.err_handler.cb = rh_tpg_error;
    ep_params.err_handler.arg = g;
    status = ucp_ep_create(rh_tp_worker, &ep_params, &g->ep);
    if (status != UCS_OK) {
        rh_debug("job state: cannot reach a guest: %s",
                 ucs_status_string(status));
        g->ep = NULL;
        rh_tpg_free(g);
        return;
    }
    g->next = rh_tpg.list;
    rh_tpg.list = g;
    memset(&param, 0, sizeof(param));
    param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK |
                         UCP_OP_ATTR_FIELD_USER_DATA |
                         UCP_OP_ATTR_FIELD_FLAGS;
    param.cb.send = rh_tpg_send_cb;
    param.user_data = g;
    param.flags = UCP_AM_SEND_FLAG_EAGER;
    req = ucp_am_send_nbx(g->ep, RH_UCX_AM_ID, g->hdr, g->hdr_total,
                          g->data, g->len, &param);
    if (UCS_PTR_IS_PTR(req)) {
        rh_tp_open_reqs++;
        return;
    }
    rh_tpg_finish(g, UCS_PTR_STATUS(req));
}

rh_status_t rh_tp_guest_send(const void *addr, size_t addr_len, uint16_t id,
                             const void *hdr, size_t hdr_len, void *data,
                             size_t len)
{
    rh_am_wire_hdr_t w = { .magic = RH_AM_MAGIC, .version = RH_AM_VERSION,
                           .id = id, .hdr_len = (uint16_t)hdr_len,
                           .src = (uint32_t)rh_tp_rank(),
                           .data_len = (uint32_t)len };
    rh_tp_guest_t *g;

    if (addr == NULL || addr_len == 0 || hdr_len > RH_AM_MAX_HDR ||
        len > UINT32_MAX) {
        free(data);
        return rh_error_set(RH_ERR_INVALID_PARAM, "no address to answer "
                            "at, or a header over %u bytes",
                            RH_AM_MAX_HDR);
    }
    if (!rh_tp_running() || rh_tp_stopping()) {
        free(data);
        return rh_error_set(RH_ERR_SHUTDOWN, "the transport stopped: no "
                            "answer to a process outside the job");
    }
    if (atomic_fetch_add(&rh_tpg.live, 1) >= RH_TP_GUESTS_MAX) {
        atomic_fetch_sub(&rh_tpg.live, 1);
        free(data);
        return rh_error_set(RH_ERR_BUSY, "%d answers to processes outside "
                            "the job are on their way already",
                            RH_TP_GUESTS_MAX);
    }
    g = calloc(1, sizeof(*g) + addr_len);
    if (g == NULL) {
        atomic_fetch_sub(&rh_tpg.live, 1);
        free(data);
        return rh_error_set(RH_ERR_NO_MEMORY, "an answer to a process "
                            "outside the job");
    }
    memcpy(g->hdr, &w, sizeof(w));
    if (hdr_len != 0) {
        memcpy(g->hdr + sizeof(w), hdr, hdr_len);
    }
    g->hdr_total = sizeof(w) + hdr_len;
    g->data = data;
    g->len = len;
    g->addr_len = addr_len;
    memcpy(g->addr, addr, addr_len);
    g->op.run = rh_tpg_start;
    rh_tp_post(&g->op);
    return RH_OK;
}

void rh_tp_guest_open(void)
{
    rh_tpg.closed = 0;
}

void rh_tp_guest_close_all(void)
{
    rh_tp_guest_t *g;

    rh_tpg.closed = 1;
    /* From the head each time: the rounds below may free guests whose
     * close was on its way. */
    for (;;) {
        ucp_request_param_t param;
        void *req;

        for (g = rh_tpg.list; g != NULL && g->ep == NULL; g = g->next) {
        }
        if (g == NULL) {
            return;
        }
        /* Its send fails with the endpoint, and its end, queued, frees
         * it in the progress loop's last rounds. */
        memset(&param, 0, sizeof(param));
        param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
        param.flags = UCP_EP_CLOSE_FLAG_FORCE;
        req = ucp_ep_close_nbx(g->ep, &param);
        g->ep = NULL;
        if (UCS_PTR_IS_PTR(req)) {
            for (int i = 0; i < 1000000 &&
                 ucp_request_check_status(req) == UCS_INPROGRESS; i++) {
                ucp_worker_progress(rh_tp_worker);
            }
            ucp_request_free(req);
        }
    }
}
