/*
 * am_lat / am_rate: our active-message layer against raw UCX, same ranks,
 * same run.
 *
 * Ours: handlers run on the progress thread (polling mode) and answer from
 * there, which is how the runtime forwards work; the main thread only
 * starts a run and sleeps until it ends.
 * Raw UCX: a second ucp_context/worker in this process, driven by the main
 * thread, answering from its AM callback the same way. While it runs, our
 * progress threads sleep (blocking mode), so the two never share a core.
 *
 * Latency is half the ping-pong round trip of 8 B messages. Rate is 64 B
 * messages one way in windows of PERF_WINDOW, each window acknowledged.
 * Each side runs PERF_TRIALS times, interleaved; the best trial counts.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucp/api/ucp.h>

#include "base/completion.h"
#include "perf.h"
#include "rayhpc.h"
#include "transport/am.h"
#include "transport/transport.h"

#define PERF_PING   (RH_AM_ID_PERF_FIRST + 1)
#define PERF_PONG   (RH_AM_ID_PERF_FIRST + 2)
#define PERF_FLOOD  (RH_AM_ID_PERF_FIRST + 3)
#define PERF_ACK    (RH_AM_ID_PERF_FIRST + 4)
#define PERF_ADDR   (RH_AM_ID_PERF_FIRST + 5)
#define PERF_WINDOW 256
#define PERF_TRIALS 3

#define RAW_PING 1
#define RAW_PONG 2
#define RAW_FLOOD 3
#define RAW_ACK 4

static char payload[32 << 10];
static size_t lat_len = 8;   /* the latency runs' payload (the curve's x) */

/* ---- ours ------------------------------------------------------------------- */

static long lat_iters, lat_count;          /* progress thread of rank 0 */
static long rate_windows, rate_acks;       /* progress thread of rank 0 */
static long flood_count;                   /* progress thread of rank 1 */
static rh_completion_t run_done;

static rh_status_t on_ping(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    return rh_am_send(msg->src, PERF_PONG, NULL, 0, payload, lat_len, NULL,
                      NULL);
}

static rh_status_t on_pong(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    if (++lat_count < lat_iters) {
        return rh_am_send(msg->src, PERF_PING, NULL, 0, payload, lat_len,
                          NULL, NULL);
    }
    rh_completion_signal(&run_done, RH_OK);
    return RH_OK;
}

static void send_window(uint32_t dest)
{
    for (int i = 0; i < PERF_WINDOW; i++) {
        rh_am_send(dest, PERF_FLOOD, NULL, 0, payload, 64, NULL, NULL);
    }
}

static rh_status_t on_flood(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    if (++flood_count % PERF_WINDOW == 0) {
        return rh_am_send(msg->src, PERF_ACK, NULL, 0, NULL, 0, NULL, NULL);
    }
    return RH_OK;
}

static rh_status_t on_ack(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    if (++rate_acks < rate_windows) {
        send_window(msg->src);
    } else {
        rh_completion_signal(&run_done, RH_OK);
    }
    return RH_OK;
}

/* Starts a run on the progress thread, where the handlers continue it. */
typedef struct { rh_tp_op_t op; int rate; } start_op_t;

static void start_run(rh_tp_op_t *op)
{
    if (((start_op_t *)op)->rate) {
        send_window(1);
    } else {
        rh_am_send(1, PERF_PING, NULL, 0, payload, lat_len, NULL, NULL);
    }
}

static double ours_lat(long iters)
{
    start_op_t op = { { .run = start_run }, 0 };
    double t0, t;

    rh_tp_set_progress_mode(RH_PROGRESS_POLLING);
    perf_sync();
    t = 0;
    if (rh_rank() == 0) {
        lat_iters = iters;
        lat_count = 0;
        rh_completion_init(&run_done);
        t0 = perf_now();
        rh_tp_post(&op.op);
        rh_completion_wait(&run_done, -1);
        t = (perf_now() - t0) / (double)iters / 2 * 1e6;
    }
    perf_sync();
    return t;
}

static double ours_rate(long windows)
{
    start_op_t op = { { .run = start_run }, 1 };
    double t0, r = 0;

    rh_tp_set_progress_mode(RH_PROGRESS_POLLING);
    flood_count = 0;
    perf_sync();
    if (rh_rank() == 0) {
        rate_windows = windows;
        rate_acks = 0;
        rh_completion_init(&run_done);
        t0 = perf_now();
        rh_tp_post(&op.op);
        rh_completion_wait(&run_done, -1);
        r = (double)windows * PERF_WINDOW / (perf_now() - t0);
    }
    perf_sync();
    return r;
}

/* ---- raw UCX ---------------------------------------------------------------- */

typedef struct raw {
    ucp_context_h context;
    ucp_worker_h  worker;
    ucp_ep_h      ep;
    long          count;     /* pongs (rank 0), pings/floods (rank 1) */
} raw_t;

static raw_t raw;
static uint8_t peer_addr[4096];
static _Atomic size_t peer_addr_len;

static rh_status_t on_addr(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    if (msg->data_len > sizeof(peer_addr) || msg->data == NULL) {
        return RH_ERR_MALFORMED;
    }
    memcpy(peer_addr, msg->data, msg->data_len);
    atomic_store(&peer_addr_len, msg->data_len);
    return RH_OK;
}

static void raw_send(unsigned id, const void *buf, size_t len)
{
    ucp_request_param_t param;
    void *req;

    param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    param.flags = UCP_AM_SEND_FLAG_EAGER;
    req = ucp_am_send_nbx(raw.ep, id, NULL, 0, buf, len, &param);
    if (UCS_PTR_IS_PTR(req)) {
        ucp_request_free(req);   /* released by UCX once it completes */
    }
}

static ucs_status_t raw_on_msg(void *arg, const void *header, size_t hlen,
                               void *data, size_t length,
                               const ucp_am_recv_param_t *param)
{
    unsigned id = (unsigned)(uintptr_t)arg;

    (void)header;
    (void)hlen;
    (void)data;
    (void)length;
    (void)param;
    raw.count++;
    if (id == RAW_PING) {
        raw_send(RAW_PONG, payload, lat_len);
    } else if (id == RAW_FLOOD && raw.count % PERF_WINDOW == 0) {
        raw_send(RAW_ACK, NULL, 0);
    }
    return UCS_OK;
}

int perf_raw_open(void)
{
    ucp_params_t params = {0};
    ucp_worker_params_t wparams = {0};
    ucp_ep_params_t eparams = {0};
    ucp_am_handler_param_t hp = {0};
    ucp_address_t *addr;
    size_t addr_len;
    int peer = rh_rank() == 0 ? 1 : 0;

    params.field_mask = UCP_PARAM_FIELD_FEATURES;
    params.features = UCP_FEATURE_AM;
    wparams.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
    wparams.thread_mode = UCS_THREAD_MODE_SINGLE;
    if (ucp_init(&params, NULL, &raw.context) != UCS_OK ||
        ucp_worker_create(raw.context, &wparams, &raw.worker) != UCS_OK ||
        ucp_worker_get_address(raw.worker, &addr, &addr_len) != UCS_OK) {
        fprintf(stderr, "rayhpc-perf: raw UCX set-up failed\n");
        return -1;
    }
    for (unsigned id = RAW_PING; id <= RAW_ACK; id++) {
        hp.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID |
                        UCP_AM_HANDLER_PARAM_FIELD_CB |
                        UCP_AM_HANDLER_PARAM_FIELD_ARG;
        hp.id = id;
        hp.cb = raw_on_msg;
        hp.arg = (void *)(uintptr_t)id;
        ucp_worker_set_am_recv_handler(raw.worker, &hp);
    }
    if (rh_am_send_wait((uint32_t)peer, PERF_ADDR, NULL, 0, addr,
                        addr_len) != RH_OK) {
        return -1;
    }
    ucp_worker_release_address(raw.worker, addr);
    perf_sync();
    eparams.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS |
                         UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE;
    eparams.err_mode = getenv("RH_RAW_PEER") ? UCP_ERR_HANDLING_MODE_PEER : UCP_ERR_HANDLING_MODE_NONE;
    eparams.address = (ucp_address_t *)peer_addr;
    if (atomic_load(&peer_addr_len) == 0 ||
        ucp_ep_create(raw.worker, &eparams, &raw.ep) != UCS_OK) {
        fprintf(stderr, "rayhpc-perf: raw UCX connect failed\n");
        return -1;
    }
    return 0;
}

void perf_raw_ep_close(struct ucp_ep *ep, struct ucp_worker *worker)
{
    ucp_request_param_t param = {0};
    void *req;

    param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    param.flags = UCP_EP_CLOSE_FLAG_FORCE;
    req = ucp_ep_close_nbx(ep, &param);
    if (UCS_PTR_IS_PTR(req)) {
        while (ucp_request_check_status(req) == UCS_INPROGRESS) {
            ucp_worker_progress(worker);
        }
        ucp_request_free(req);
    }
}

void perf_raw_close(void)
{
    perf_sync();
    perf_raw_ep_close(raw.ep, raw.worker);
    ucp_worker_destroy(raw.worker);
    ucp_cleanup(raw.context);
}

/* Raw UCX needs the core to itself: our progress threads sleep meanwhile. */
static void raw_phase_begin(void)
{
    rh_tp_set_progress_mode(RH_PROGRESS_BLOCKING);
    raw.count = 0;
    perf_sync();
}

double perf_raw_lat(long iters)
{
    double t0, t = 0;

    raw_phase_begin();
    if (rh_rank() == 0) {
        t0 = perf_now();
        for (long i = 0; i < iters; i++) {
            raw_send(RAW_PING, payload, lat_len);
            while (raw.count <= i) {
                ucp_worker_progress(raw.worker);
            }
        }
        t = (perf_now() - t0) / (double)iters / 2 * 1e6;
    } else {
        while (raw.count < iters) {
            ucp_worker_progress(raw.worker);
        }
    }
    perf_sync();
    return t;
}

double perf_raw_rate(long windows)
{
    double t0, r = 0;

    raw_phase_begin();
    if (rh_rank() == 0) {
        t0 = perf_now();
        for (long w = 0; w < windows; w++) {
            for (int i = 0; i < PERF_WINDOW; i++) {
                raw_send(RAW_FLOOD, payload, 64);
            }
            while (raw.count <= w) {
                ucp_worker_progress(raw.worker);
            }
        }
        r = (double)windows * PERF_WINDOW / (perf_now() - t0);
    } else {
        while (raw.count < windows * PERF_WINDOW) {
            ucp_worker_progress(raw.worker);
        }
        /* Let the last acknowledgement leave. */
        for (int i = 0; i < 1000; i++) {
            ucp_worker_progress(raw.worker);
        }
    }
    perf_sync();
    return r;
}

/* ---- the group ---------------------------------------------------------------- */

int perf_am_setup(void)
{
    return rh_am_register(PERF_PING, 0, 0, on_ping, NULL) ||
           rh_am_register(PERF_PONG, 0, 0, on_pong, NULL) ||
           rh_am_register(PERF_FLOOD, 0, 0, on_flood, NULL) ||
           rh_am_register(PERF_ACK, 0, 0, on_ack, NULL) ||
           rh_am_register(PERF_ADDR, 0, 0, on_addr, NULL);
}

/* The report's round trip against payload: ours and raw UCX, best of
 * three, both ways with the payload. */
static void series_rtt(int quick)
{
    static const size_t sizes[] = { 8, 64, 512, 4096, 32768 };
    long iters = quick ? 2000 : 20000;

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        double o = 1e30, r = 1e30;

        if (quick && sizes[i] != 8 && sizes[i] != 4096) {
            continue;
        }
        lat_len = sizes[i];
        for (int trial = 0; trial < (quick ? 1 : 3); trial++) {
            perf_keep_best(&o, 2 * ours_lat(iters), 1);
            perf_keep_best(&r, 2 * perf_raw_lat(iters), 1);
        }
        if (rh_rank() == 0) {
            perf_print_point("rtt", "ours_am", (double)sizes[i], o);
            perf_print_point("rtt", "ucx_am", (double)sizes[i], r);
        }
    }
    lat_len = 8;
}

static int run_am(const perf_group_t *g, const char *suffix,
                  int (*want)(const char *figure))
{
    char lat_name[32], rate_name[32];
    int tcp = suffix[0] != '\0';
    long lat_iters_n = tcp ? 20000 : 200000;
    long windows = tcp ? 2000 : 8000;
    double ours_l = 1e30, raw_l = 1e30, ours_r = 0, raw_r = 0;
    int do_lat, do_rate;

    (void)g;
    snprintf(lat_name, sizeof(lat_name), "am_lat%s", suffix);
    snprintf(rate_name, sizeof(rate_name), "am_rate%s", suffix);
    do_lat = want(lat_name);
    do_rate = want(rate_name);
    if (perf_raw_open() != 0) {
        return 1;
    }
    for (int trial = 0; trial < PERF_TRIALS; trial++) {
        if (do_lat) {
            perf_keep_best(&ours_l, ours_lat(lat_iters_n), 1);
            perf_keep_best(&raw_l, perf_raw_lat(lat_iters_n), 1);
        }
        if (do_rate) {
            perf_keep_best(&ours_r, ours_rate(windows), 0);
            perf_keep_best(&raw_r, perf_raw_rate(windows), 0);
        }
    }
    if (perf_series() && !tcp) {
        series_rtt(perf_series() == 1);
    }
    perf_raw_close();
    rh_tp_set_progress_mode(RH_PROGRESS_ADAPTIVE);
    if (rh_rank() == 0) {
        if (do_lat) {
            perf_report("am_lat", suffix, ours_l, raw_l, "us", "ucx");
        }
        if (do_rate) {
            perf_report("am_rate", suffix, ours_r / 1e6, raw_r / 1e6,
                        "Mmsg/s", "ucx");
        }
    }
    return 0;
}

static const char *const am_figures[] = { "am_lat", "am_rate", NULL };
static const char *const am_tcp_figures[] = { "am_lat_tcp", "am_rate_tcp",
                                              NULL };
static const char *const tcp_env[] = { "UCX_TLS=tcp,self", NULL };

const perf_group_t perf_group_am = {
    "am", am_figures, 2, NULL, 1, 0, perf_am_setup, run_am
};
const perf_group_t perf_group_am_tcp = {
    "am_tcp", am_tcp_figures, 2, tcp_env, 1, 0, perf_am_setup, run_am
};
