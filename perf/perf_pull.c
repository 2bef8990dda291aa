/*
 * Pulling objects between nodes (ranks 0 and 1 on two virtual nodes):
 *
 *   pull_bw_4MiB         GiB/s of rh_get on rank 0 (node 0) of a 4 MiB
 *                        object that lives on node 1: the return of a task
 *                        rank 0 placed on node 1 (NODE_AFFINITY), which
 *                        stays in node 1's store while rank 0, its owner,
 *                        records where it is. Only the rh_get is timed; the
 *                        object is ready before it starts. Every trial makes
 *                        a fresh object (a second get of the same ref would
 *                        be local). pull_bw_4MiB/ucp_get: one ucp_get_nbx of
 *                        4 MiB from rank 1's registered memory into rank 0's
 *                        registered buffer, on a UCX context and worker of
 *                        its own, same ranks, same run
 *   pull_bw_256MiB       the same for 256 MiB
 *
 * Each side runs PULL_ROUNDS rounds of trials, interleaved; the best trial
 * counts.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucp/api/ucp.h>

#include "perf.h"
#include "rayhpc.h"
#include "transport/am.h"
#include "transport/transport.h"

#define PULL_MSG     (RH_AM_ID_PERF_FIRST + 6)
#define PULL_ROUNDS  3
#define PULL_FILL    0x5a
#define PULL_MAX     (256u << 20)
#define PULL_TIMEOUT 60000   /* ms: a pull that never ends fails the figure */

/* What rank 1 tells rank 0 through PULL_MSG. */
enum { PULL_KIND_SETUP = 1, PULL_KIND_DONE = 2 };

typedef struct pull_hdr {
    uint32_t kind;
    uint32_t addr_len;      /* SETUP: worker address bytes, then the rkey */
    uint64_t remote_addr;   /* SETUP: rank 1's buffer */
} pull_hdr_t;

/* ---- ours ----------------------------------------------------------------- */

/* The task on node 1: a return of the size asked, filled. */
static rh_status_t pull_fill(rh_task_ctx_t *ctx)
{
    const void *a = rh_task_arg(ctx, 0, NULL);
    uint64_t size;
    void *p;
    rh_status_t status;

    memcpy(&size, a, sizeof(size));
    status = rh_task_return_alloc(ctx, 0, (size_t)size, &p);
    if (status != RH_OK) {
        return rh_task_fail(ctx, "pull_fill: return of %llu bytes: %s",
                            (unsigned long long)size, rh_last_error());
    }
    memset(p, PULL_FILL, (size_t)size);
    return RH_OK;
}

/* One trial on rank 0: the seconds of the rh_get, or < 0 on failure. */
static double ours_pull_once(size_t size)
{
    rh_task_params_t p = perf_on_node(1);
    uint64_t sz = size;
    rh_arg_t arg = rh_arg_bytes(&sz, sizeof(sz));
    const unsigned char *v;
    const void *vp;
    size_t len;
    rh_ref_t r, rets[2];
    int ready = 0, counted;
    double t0, t;
    rh_stats_t s0, s1;
    rh_status_t status;

    /* A second, empty return says the task ended (a wait on the object
     * itself would bring it here, as Ray's does). */
    p.field_mask |= RH_TASK_PARAM_FIELD_NUM_RETURNS;
    p.num_returns = 2;
    if (rh_remote("perf_pull_fill", &arg, 1, &p, rets) != RH_OK) {
        fprintf(stderr, "rayhpc-perf: pull: rh_remote: %s\n", rh_last_error());
        return -1;
    }
    r = rets[0];
    /* The object is made and its location known before the clock starts. */
    status = rh_wait(&rets[1], 1, 1, PULL_TIMEOUT, &ready);
    rh_release(rets[1]);
    if (status != RH_OK || !ready) {
        fprintf(stderr, "rayhpc-perf: pull: the %zu B object was not ready "
                "in %d ms: %s\n", size, PULL_TIMEOUT, rh_last_error());
        rh_release(r);
        return -1;
    }
    /* rh_stats tells whether the get pulled */
    counted = rh_stats(&s0) == RH_OK;
    t0 = perf_now();
    status = rh_get(r, &vp, &len, PULL_TIMEOUT);
    t = perf_now() - t0;
    counted = counted && rh_stats(&s1) == RH_OK;
    if (status != RH_OK) {
        fprintf(stderr, "rayhpc-perf: pull: rh_get of %zu B: %s: %s\n", size,
                rh_status_string(status), rh_last_error());
        rh_release(r);
        return -1;
    }
    if (counted && s1.pulls == s0.pulls) {
        /* A get that found the bytes here already measures no pull. */
        fprintf(stderr, "rayhpc-perf: pull: the %zu B return of a task on "
                "node 1 was already on node 0 before rh_get (rh_stats counts "
                "no pull): the figure would time a local get\n", size);
        t = -1;
    }
    v = vp;
    if (len != size || v[0] != PULL_FILL || v[len / 2] != PULL_FILL ||
        v[len - 1] != PULL_FILL) {
        fprintf(stderr, "rayhpc-perf: pull: got %zu B, not the %zu B "
                "written\n", len, size);
        t = -1;
    }
    rh_release(r);
    rh_release(r);
    return t;
}

/* trials pulls of size bytes; the best GiB/s, 0 when one failed. */
static double ours_pull(size_t size, int trials, int *failed)
{
    double best = 1e30, t;

    rh_tp_set_progress_mode(RH_PROGRESS_POLLING);
    perf_sync();
    if (rh_rank() == 0 && !*failed) {
        for (int i = 0; i < trials; i++) {
            t = ours_pull_once(size);
            if (t < 0) {
                *failed = 1;
                break;
            }
            perf_keep_best(&best, t, 1);
        }
    }
    perf_sync();
    return rh_rank() == 0 && !*failed ? (double)size / best / (1u << 30) : 0;
}

/* ---- raw UCX ---------------------------------------------------------------- */

typedef struct pull_raw {
    ucp_context_h context;
    ucp_worker_h  worker;
    ucp_ep_h      ep;          /* rank 0 */
    ucp_rkey_h    rkey;        /* rank 0 */
    ucp_mem_h     mem;
    void         *buf;
    uint64_t      remote_addr; /* rank 0: rank 1's buffer */
} pull_raw_t;

static pull_raw_t raw;
static uint8_t peer_blob[8192];      /* rank 0: address, then rkey */
static uint32_t peer_addr_len;
static size_t peer_blob_len;
static uint64_t peer_remote_addr;
static _Atomic int peer_ready;       /* rank 0: SETUP arrived */
static _Atomic int raw_done;         /* rank 1: rank 0 finished a phase */

static rh_status_t on_pull_msg(void *arg, rh_am_msg_t *msg)
{
    pull_hdr_t h;

    (void)arg;
    memcpy(&h, msg->hdr, sizeof(h));
    if (h.kind == PULL_KIND_DONE) {
        atomic_store(&raw_done, 1);
        return RH_OK;
    }
    if (h.kind != PULL_KIND_SETUP || msg->data == NULL ||
        msg->data_len > sizeof(peer_blob) || h.addr_len > msg->data_len) {
        return RH_ERR_MALFORMED;
    }
    memcpy(peer_blob, msg->data, msg->data_len);
    peer_blob_len = msg->data_len;
    peer_addr_len = h.addr_len;
    peer_remote_addr = h.remote_addr;
    atomic_store(&peer_ready, 1);
    return RH_OK;
}

static int raw_fail(const char *what, ucs_status_t s)
{
    fprintf(stderr, "rayhpc-perf: pull: raw UCX %s: %s\n", what,
            ucs_status_string(s));
    return -1;
}

/* Both ranks: a context and worker with RMA, PULL_MAX bytes registered
 * (the source on rank 1, the destination on rank 0); rank 1 sends its
 * worker address, buffer address and packed rkey to rank 0, which connects. */
static int pull_raw_open(void)
{
    ucp_params_t params = {0};
    ucp_worker_params_t wparams = {0};
    ucp_mem_map_params_t mparams = {0};
    ucp_ep_params_t eparams = {0};
    ucs_status_t s;

    raw.buf = malloc(PULL_MAX);
    if (raw.buf == NULL) {
        return -1;
    }
    memset(raw.buf, rh_rank() == 1 ? PULL_FILL : 0, PULL_MAX);
    params.field_mask = UCP_PARAM_FIELD_FEATURES;
    params.features = UCP_FEATURE_RMA;
    wparams.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
    wparams.thread_mode = UCS_THREAD_MODE_SINGLE;
    if ((s = ucp_init(&params, NULL, &raw.context)) != UCS_OK) {
        return raw_fail("ucp_init", s);
    }
    if ((s = ucp_worker_create(raw.context, &wparams, &raw.worker)) !=
        UCS_OK) {
        return raw_fail("ucp_worker_create", s);
    }
    mparams.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS |
                         UCP_MEM_MAP_PARAM_FIELD_LENGTH;
    mparams.address = raw.buf;
    mparams.length = PULL_MAX;
    if ((s = ucp_mem_map(raw.context, &mparams, &raw.mem)) != UCS_OK) {
        return raw_fail("ucp_mem_map", s);
    }
    if (rh_rank() == 1) {
        ucp_address_t *addr;
        size_t addr_len, rkey_len;
        void *rkey;
        uint8_t *blob;
        pull_hdr_t h;
        rh_status_t st;

        if ((s = ucp_worker_get_address(raw.worker, &addr, &addr_len)) !=
            UCS_OK) {
            return raw_fail("ucp_worker_get_address", s);
        }
        if ((s = ucp_rkey_pack(raw.context, raw.mem, &rkey, &rkey_len)) !=
            UCS_OK) {
            return raw_fail("ucp_rkey_pack", s);
        }
        blob = malloc(addr_len + rkey_len);
        memcpy(blob, addr, addr_len);
        memcpy(blob + addr_len, rkey, rkey_len);
        memset(&h, 0, sizeof(h));
        h.kind = PULL_KIND_SETUP;
        h.addr_len = (uint32_t)addr_len;
        h.remote_addr = (uint64_t)(uintptr_t)raw.buf;
        st = rh_am_send_wait(0, PULL_MSG, &h, sizeof(h), blob,
                             addr_len + rkey_len);
        free(blob);
        ucp_rkey_buffer_release(rkey);
        ucp_worker_release_address(raw.worker, addr);
        if (st != RH_OK) {
            fprintf(stderr, "rayhpc-perf: pull: %s\n", rh_last_error());
            return -1;
        }
    }
    perf_sync();   /* rank 1's SETUP was handled before rank 1's sync */
    if (rh_rank() == 0) {
        if (!atomic_load(&peer_ready)) {
            fprintf(stderr, "rayhpc-perf: pull: no address from rank 1\n");
            return -1;
        }
        eparams.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS |
                             UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE;
        eparams.err_mode = UCP_ERR_HANDLING_MODE_NONE;
        eparams.address = (ucp_address_t *)peer_blob;
        if ((s = ucp_ep_create(raw.worker, &eparams, &raw.ep)) != UCS_OK) {
            return raw_fail("ucp_ep_create", s);
        }
        if ((s = ucp_ep_rkey_unpack(raw.ep, peer_blob + peer_addr_len,
                                    &raw.rkey)) != UCS_OK) {
            return raw_fail("ucp_ep_rkey_unpack", s);
        }
        raw.remote_addr = peer_remote_addr;
    }
    return 0;
}

static void pull_raw_close(void)
{
    perf_sync();
    if (rh_rank() == 0) {
        ucp_rkey_destroy(raw.rkey);
        perf_raw_ep_close(raw.ep, raw.worker);
    }
    perf_sync();
    ucp_mem_unmap(raw.context, raw.mem);
    ucp_worker_destroy(raw.worker);
    ucp_cleanup(raw.context);
    free(raw.buf);
}

/* One ucp_get_nbx of size bytes, progressed to the end: seconds, or < 0. */
static double raw_get_once(size_t size)
{
    ucp_request_param_t param = {0};
    ucs_status_t s;
    double t0 = perf_now();
    void *req;

    param.op_attr_mask = UCP_OP_ATTR_FIELD_MEMH;
    param.memh = raw.mem;
    req = ucp_get_nbx(raw.ep, raw.buf, size, raw.remote_addr, raw.rkey,
                      &param);
    if (UCS_PTR_IS_ERR(req)) {
        raw_fail("ucp_get_nbx", UCS_PTR_STATUS(req));
        return -1;
    }
    if (req != NULL) {
        while ((s = ucp_request_check_status(req)) == UCS_INPROGRESS) {
            ucp_worker_progress(raw.worker);
        }
        ucp_request_free(req);
        if (s != UCS_OK) {
            raw_fail("ucp_get_nbx", s);
            return -1;
        }
    }
    return perf_now() - t0;
}

/* trials gets of size bytes; the best GiB/s on rank 0. Our progress
 * threads sleep meanwhile; rank 1 progresses its worker (some transports
 * need the target to) until rank 0 says it is done. */
static double raw_pull(size_t size, int trials, int *failed)
{
    double best = 1e30, t;
    unsigned char *b = raw.buf;
    pull_hdr_t h;

    rh_tp_set_progress_mode(RH_PROGRESS_BLOCKING);
    atomic_store(&raw_done, 0);
    perf_sync();
    if (rh_rank() == 0) {
        for (int i = 0; i < trials + 1 && !*failed; i++) {
            b[0] = b[size - 1] = 0;
            t = raw_get_once(size);
            if (t < 0 || b[0] != PULL_FILL || b[size - 1] != PULL_FILL) {
                fprintf(stderr, "rayhpc-perf: pull: raw get of %zu B "
                        "failed\n", size);
                *failed = 1;
            } else if (i > 0) {   /* the first one connects */
                perf_keep_best(&best, t, 1);
            }
        }
        memset(&h, 0, sizeof(h));
        h.kind = PULL_KIND_DONE;
        rh_am_send_wait(1, PULL_MSG, &h, sizeof(h), NULL, 0);
    } else {
        while (!atomic_load(&raw_done)) {
            ucp_worker_progress(raw.worker);
        }
    }
    perf_sync();
    return rh_rank() == 0 && !*failed ? (double)size / best / (1u << 30) : 0;
}

/* ---- the group ---------------------------------------------------------------- */

static int setup_pull(void)
{
    return rh_am_register(PULL_MSG, sizeof(pull_hdr_t), sizeof(pull_hdr_t),
                          on_pull_msg, NULL) ||
           rh_register("perf_pull_fill", pull_fill, 1, 1);
}

/* The report's curve: pull bandwidth against object size, ours and
 * ucp_get's (both ranks take part; rank 0 prints). */
static void series_pull(int quick)
{
    static const size_t sizes[] = { 64u << 10, 256u << 10, 1u << 20,
                                    4u << 20, 16u << 20, 64u << 20,
                                    256u << 20 };
    int n = quick ? 2 : (int)(sizeof(sizes) / sizeof(sizes[0]));

    for (int i = 0; i < n; i++) {
        size_t size = quick ? sizes[2 * i + 2] : sizes[i];
        int trials = quick ? 2 : size >= (64u << 20) ? 3 : 10;
        int f1 = 0, f2 = 0;
        double ours = 0, ref = 0;

        for (int round = 0; round < (quick ? 1 : 2); round++) {
            perf_keep_best(&ours, ours_pull(size, trials, &f1), 0);
            perf_keep_best(&ref, raw_pull(size, trials, &f2), 0);
        }
        if (rh_rank() == 0 && !f1) {
            perf_print_point("pull", "ours", (double)size, ours);
        }
        if (rh_rank() == 0 && !f2) {
            perf_print_point("pull", "ucp_get", (double)size, ref);
        }
    }
}

static int run_pull(const perf_group_t *g, const char *suffix,
                    int (*want)(const char *figure))
{
    static const struct {
        const char *name;
        size_t      size;
        int         trials;
    } figs[] = {
        { "pull_bw_4MiB", 4u << 20, 20 },
        { "pull_bw_256MiB", 256u << 20, 3 },
    };
    enum { NFIGS = sizeof(figs) / sizeof(figs[0]) };
    double ours[NFIGS] = {0}, ref[NFIGS] = {0};
    int on[NFIGS], ours_failed[NFIGS] = {0}, ref_failed[NFIGS] = {0};
    int any = 0, rc = 0;

    (void)g;
    for (int f = 0; f < NFIGS; f++) {
        on[f] = want(figs[f].name);
        any |= on[f];
    }
    if (!any) {
        return 0;
    }
    if (rh_num_nodes() < 2 || rh_node_id() != rh_rank()) {
        fprintf(stderr, "rayhpc-perf: pull needs ranks 0 and 1 on nodes 0 "
                "and 1 (rayhpc-run --nodes 2)\n");
        return 1;
    }
    if (pull_raw_open() != 0) {
        return 1;
    }
    for (int round = 0; round < PULL_ROUNDS; round++) {
        for (int f = 0; f < NFIGS; f++) {
            if (!on[f]) {
                continue;
            }
            perf_keep_best(&ours[f], ours_pull(figs[f].size, figs[f].trials,
                                               &ours_failed[f]), 0);
            perf_keep_best(&ref[f], raw_pull(figs[f].size, figs[f].trials,
                                             &ref_failed[f]), 0);
        }
    }
    if (perf_series()) {
        series_pull(perf_series() == 1);
    }
    pull_raw_close();
    rh_tp_set_progress_mode(RH_PROGRESS_ADAPTIVE);
    if (rh_rank() != 0) {
        return 0;
    }
    for (int f = 0; f < NFIGS; f++) {
        if (!on[f]) {
            continue;
        }
        if (!ours_failed[f] && !ref_failed[f]) {
            perf_report(figs[f].name, suffix, ours[f], ref[f], "GiB/s",
                        "ucp_get");
            continue;
        }
        if (!ref_failed[f]) {
            printf("# %s%s failed: see above\n", figs[f].name, suffix);
            perf_print(figs[f].name, suffix, ref[f], "GiB/s(ucp_get)");
        } else if (!ours_failed[f]) {
            printf("# %s%s/ucp_get failed: see above\n", figs[f].name,
                   suffix);
            perf_print(figs[f].name, suffix, ours[f], "GiB/s");
        }
        rc = 1;
    }
    return rc;
}

static const char *const pull_figures[] = { "pull_bw_4MiB", "pull_bw_256MiB",
                                            NULL };
/* One worker per rank; room for a 256 MiB object and its pulled copy. */
static const char *const pull_env[] = { "RAYHPC_NUM_WORKERS=1",
                                        "RAYHPC_STORE_SIZE=1G", NULL };

const perf_group_t perf_group_pull = {
    "pull", pull_figures, 2, pull_env, 1, 2, setup_pull, run_pull
};
