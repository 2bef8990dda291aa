#include "gpu/gpu.h"

#include <hwloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "base/log.h"
#include "base/status.h"
#include "gpu/cuda.h"
#include "transport/transport.h"

#define RH_GPU_STAGE_DEPTH 4

static struct {
    pthread_mutex_t  lock;
    int              ndev;                  /* devices this rank offers */
    int              dev[RH_GPU_MAX];       /* their CUDA indices */
    long             free_units[RH_GPU_MAX];
    hwloc_topology_t topo;
    hwloc_bitmap_t   near[RH_GPU_MAX];      /* cores near each (or NULL) */
    char             why[256];              /* why there are none */
    void            *store;                 /* page-locked segment */
    /* staging slots for device objects when the store is not pinned */
    pthread_mutex_t  stage_lock;
    void            *stage[RH_GPU_STAGE_DEPTH];
} rh_gpu = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .stage_lock = PTHREAD_MUTEX_INITIALIZER,
};

/* The GPU task running on this thread, and its streams per device. */
static _Thread_local int rh_gpu_cur_dev = -1;
static _Thread_local void *rh_gpu_cur_stream;
static _Thread_local void *rh_gpu_streams[RH_GPU_MAX];
static _Thread_local rh_gpu_task_t *rh_gpu_cur_task;

/* The cores near the device with PCI bus id busid (hwloc). */
static hwloc_bitmap_t rh_gpu_near_cores(const char *busid)
{
    hwloc_obj_t pci, parent;

    if (rh_gpu.topo == NULL) {
        return NULL;
    }
    pci = hwloc_get_pcidev_by_busidstring(rh_gpu.topo, busid);
    if (pci == NULL) {
        return NULL;
    }
    parent = hwloc_get_non_io_ancestor_obj(rh_gpu.topo, pci);
    return parent != NULL && parent->cpuset != NULL ?
           hwloc_bitmap_dup(parent->cpuset) : NULL;
}

void rh_gpu_setup(int node_index, int ranks_on_node, void *store,
                  size_t store_len)
{
    int seen = rh_cuda_probe(rh_gpu.why, sizeof(rh_gpu.why));
    int own_all = getenv("CUDA_VISIBLE_DEVICES") != NULL || ranks_on_node <= 1;

    rh_gpu.ndev = 0;
    if (seen == 0) {
        rh_debug("GPUs: none (%s)", rh_gpu.why);
        return;
    }
    if (hwloc_topology_init(&rh_gpu.topo) == 0) {
        hwloc_topology_set_io_types_filter(rh_gpu.topo,
                                           HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
        if (hwloc_topology_load(rh_gpu.topo) != 0) {
            hwloc_topology_destroy(rh_gpu.topo);
            rh_gpu.topo = NULL;
        }
    }
    /* A launcher that set CUDA_VISIBLE_DEVICES gave the rank its own
     * devices; otherwise the ranks of a node deal the node's out, device
     * by device as rh_gpu_deal counts them. */
    for (int d = 0; d < seen && rh_gpu.ndev < RH_GPU_MAX; d++) {
        char busid[32];
        int i;

        if (!own_all && d % ranks_on_node != node_index) {
            continue;
        }
        i = rh_gpu.ndev++;
        rh_gpu.dev[i] = d;
        rh_gpu.free_units[i] = RH_RES_GPU_UNITS;
        rh_gpu.near[i] = rh_cuda_pci_bus_id(d, busid, sizeof(busid)) == RH_OK
                         ? rh_gpu_near_cores(busid) : NULL;
    }
    if (rh_gpu.ndev == 0) {
        snprintf(rh_gpu.why, sizeof(rh_gpu.why), "no GPU for this rank: "
                 "the node's %d GPUs went to its other ranks", seen);
        return;
    }
    /* Page-locked once: device objects then copy straight between the
     * device and the store, at the bus's speed. The registration makes a
     * context on the current device: let it be one of this rank's, not
     * device 0 on every rank of the node. */
    if (store != NULL && rh_cuda_set_device(rh_gpu.dev[0]) == RH_OK &&
        rh_cuda_host_register(store, store_len) == RH_OK) {
        rh_gpu.store = store;
    } else if (store != NULL) {
        rh_warn("GPUs: the object store could not be page-locked (%s): "
                "device objects are staged through pinned buffers",
                rh_last_error());
    }
}

void rh_gpu_teardown(void)
{
    for (int s = 0; s < RH_GPU_STAGE_DEPTH; s++) {
        rh_cuda_host_free(rh_gpu.stage[s]);
        rh_gpu.stage[s] = NULL;
    }
    if (rh_gpu.store != NULL) {
        rh_cuda_host_unregister(rh_gpu.store);
        rh_gpu.store = NULL;
    }
    for (int i = 0; i < rh_gpu.ndev; i++) {
        if (rh_gpu.near[i] != NULL) {
            hwloc_bitmap_free(rh_gpu.near[i]);
            rh_gpu.near[i] = NULL;
        }
    }
    if (rh_gpu.topo != NULL) {
        hwloc_topology_destroy(rh_gpu.topo);
        rh_gpu.topo = NULL;
    }
    rh_gpu.ndev = 0;
}

/* Whether spec names resource name ("name=..."). */
static int rh_gpu_spec_names(const char *spec, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = spec; p != NULL && *p; p = strchr(p, ',')) {
        p += *p == ',';
        if (strncmp(p, name, n) == 0 && p[n] == '=') {
            return 1;
        }
    }
    return 0;
}

void rh_gpu_describe(const char *spec, char *out, size_t len)
{
    int seen = rh_cuda_probe(NULL, 0);

    if (seen == 0 || rh_gpu_spec_names(spec, RH_RES_GPU)) {
        snprintf(out, len, "%s", spec);
    } else {
        snprintf(out, len, "%s%s%s=%d", spec, spec[0] ? "," : "",
                 getenv("CUDA_VISIBLE_DEVICES") != NULL ? RH_RES_GPU :
                 RH_GPU_NODE_RES, seen);
    }
}

int rh_gpu_share(int seen, int node_index, int ranks_on_node)
{
    if (ranks_on_node <= 1) {
        return seen;
    }
    return seen / ranks_on_node + (node_index < seen % ranks_on_node);
}

void rh_gpu_deal(const char *spec, int node_index, int ranks_on_node,
                 char *out, size_t len)
{
    size_t n = 0, key = strlen(RH_GPU_NODE_RES);

    out[0] = '\0';
    for (const char *p = spec; p != NULL && *p && n < len;) {
        const char *end = strchr(p, ',');
        size_t item = end != NULL ? (size_t)(end - p) : strlen(p);

        if (strncmp(p, RH_GPU_NODE_RES, key) == 0 && p[key] == '=') {
            int share = rh_gpu_share(atoi(p + key + 1), node_index,
                                     ranks_on_node);

            if (share > 0) {
                n += (size_t)snprintf(out + n, len - n, "%s%s=%d",
                                      n ? "," : "", RH_RES_GPU, share);
            }
        } else if (item > 0) {
            n += (size_t)snprintf(out + n, len - n, "%s%.*s", n ? "," : "",
                                  (int)item, p);
        }
        p = end != NULL ? end + 1 : NULL;
    }
}

/* ---- GPU tasks ------------------------------------------------------------- */

int rh_gpu_choose(long *free_units, int n, long units, int *dev,
                  long *taken, int max)
{
    int ndev = 0;

    while (units > 0 && ndev < max && ndev < n) {
        long want = units < RH_RES_GPU_UNITS ? units : RH_RES_GPU_UNITS;
        int best = -1;

        for (int i = 0; i < n; i++) {
            int used = 0;

            for (int k = 0; k < ndev; k++) {
                used |= dev[k] == i;
            }
            if (used) {
                continue;
            }
            if (want < RH_RES_GPU_UNITS && free_units[i] >= want) {
                /* a fraction: the fitting device with the least room */
                if (best < 0 || free_units[best] < want ||
                    free_units[i] < free_units[best]) {
                    best = i;
                }
            } else if (best < 0 || free_units[i] > free_units[best]) {
                /* a whole GPU, or no room anywhere: the freest */
                best = i;
            }
        }
        if (best < 0) {
            break;
        }
        free_units[best] -= want;
        dev[ndev] = best;
        taken[ndev++] = want;
        units -= want;
    }
    return ndev;
}

static void rh_gpu_pick(long units, rh_gpu_task_t *g)
{
    pthread_mutex_lock(&rh_gpu.lock);
    g->ndev = rh_gpu_choose(rh_gpu.free_units, rh_gpu.ndev, units, g->dev,
                            g->units, RH_GPU_TASK_MAX);
    pthread_mutex_unlock(&rh_gpu.lock);
}

rh_status_t rh_gpu_thread_stream(int dev, void **stream)
{
    rh_status_t status;

    if (dev < 0 || dev >= RH_GPU_MAX) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "GPU %d: no such device",
                            dev);
    }
    if (rh_gpu_streams[dev] == NULL) {
        int prev = -1;

        /* a stream belongs to the device current when it is made */
        status = rh_cuda_get_device(&prev);
        if (status == RH_OK) {
            status = rh_cuda_set_device(dev);
        }
        if (status == RH_OK) {
            status = rh_cuda_stream_create(&rh_gpu_streams[dev]);
            if (prev != dev) {
                (void)rh_cuda_set_device(prev);
            }
        }
        if (status != RH_OK) {
            return status;
        }
    }
    *stream = rh_gpu_streams[dev];
    return RH_OK;
}

/* Moves the thread onto the cores near local device i when it runs
 * elsewhere; keeps its binding to restore. */
static void rh_gpu_move_near(int i, rh_gpu_task_t *g)
{
    hwloc_bitmap_t now;

    g->rebound = 0;
    g->cpuset = NULL;
    if (rh_gpu.topo == NULL || rh_gpu.near[i] == NULL ||
        (now = hwloc_bitmap_alloc()) == NULL) {
        return;
    }
    if (hwloc_get_cpubind(rh_gpu.topo, now, HWLOC_CPUBIND_THREAD) == 0 &&
        !hwloc_bitmap_isincluded(now, rh_gpu.near[i]) &&
        hwloc_set_cpubind(rh_gpu.topo, rh_gpu.near[i],
                          HWLOC_CPUBIND_THREAD) == 0) {
        g->rebound = 1;
        g->cpuset = now;
        return;
    }
    hwloc_bitmap_free(now);
}

/* Makes the first of g's devices current on this thread, with its
 * stream, and moves the thread near it. */
static rh_status_t rh_gpu_activate(rh_gpu_task_t *g)
{
    rh_status_t status;

    g->prev_dev = rh_gpu_cur_dev;
    g->prev_stream = rh_gpu_cur_stream;
    g->prev_task = rh_gpu_cur_task;
    g->rebound = 0;
    g->stream = NULL;
    status = rh_gpu_thread_stream(rh_gpu.dev[g->dev[0]], &g->stream);
    if (status == RH_OK) {
        status = rh_cuda_set_device(rh_gpu.dev[g->dev[0]]);
    }
    if (status != RH_OK) {
        g->active = 1;
        (void)rh_gpu_task_end(g);
        return status;
    }
    rh_gpu_move_near(g->dev[0], g);
    rh_gpu_cur_dev = rh_gpu.dev[g->dev[0]];
    rh_gpu_cur_stream = g->stream;
    rh_gpu_cur_task = g;
    g->active = 1;
    return RH_OK;
}

rh_status_t rh_gpu_task_begin(const rh_res_req_t *req, rh_gpu_task_t *g)
{
    long units = 0;

    g->active = 0;
    g->kept = 0;
    for (int i = 0; i < req->n; i++) {
        if (rh_resources_is_gpu(req->items[i].name)) {
            units += req->items[i].amount;
        }
    }
    if (rh_gpu.ndev == 0) {
        return rh_error_set(RH_ERR_UNSUPPORTED, "it asks for GPUs and rank "
                            "%d has none it can use: %s", rh_tp_rank(),
                            rh_gpu.why[0] ? rh_gpu.why : "no GPU found");
    }
    rh_gpu_pick(units, g);
    if (g->ndev == 0) {
        return rh_error_set(RH_ERR_UNSUPPORTED, "no GPU of this rank is free");
    }
    return rh_gpu_activate(g);
}

void rh_gpu_task_keep(rh_gpu_hold_t *hold)
{
    rh_gpu_task_t *g = rh_gpu_cur_task;

    hold->ndev = 0;
    if (g == NULL || !g->active || g->kept) {
        return;
    }
    hold->ndev = g->ndev;
    memcpy(hold->dev, g->dev, sizeof(hold->dev));
    memcpy(hold->units, g->units, sizeof(hold->units));
    g->kept = 1;
}

rh_status_t rh_gpu_call_begin(const rh_gpu_hold_t *hold, rh_gpu_task_t *g)
{
    g->active = 0;
    g->kept = 1;
    g->ndev = hold->ndev;
    memcpy(g->dev, hold->dev, sizeof(g->dev));
    memcpy(g->units, hold->units, sizeof(g->units));
    return rh_gpu_activate(g);
}

void rh_gpu_hold_release(rh_gpu_hold_t *hold)
{
    pthread_mutex_lock(&rh_gpu.lock);
    for (int k = 0; k < hold->ndev; k++) {
        rh_gpu.free_units[hold->dev[k]] += hold->units[k];
    }
    pthread_mutex_unlock(&rh_gpu.lock);
    hold->ndev = 0;
}

rh_status_t rh_gpu_task_end(rh_gpu_task_t *g)
{
    rh_status_t status = RH_OK;

    if (!g->active) {
        return RH_OK;
    }
    if (g->stream != NULL && rh_gpu_cur_stream == g->stream) {
        status = rh_cuda_stream_sync(g->stream);
    }
    if (g->rebound) {
        (void)hwloc_set_cpubind(rh_gpu.topo, g->cpuset, HWLOC_CPUBIND_THREAD);
        hwloc_bitmap_free(g->cpuset);
    }
    if (!g->kept) {
        pthread_mutex_lock(&rh_gpu.lock);
        for (int k = 0; k < g->ndev; k++) {
            rh_gpu.free_units[g->dev[k]] += g->units[k];
        }
        pthread_mutex_unlock(&rh_gpu.lock);
    }
    rh_gpu_cur_dev = g->prev_dev;
    rh_gpu_cur_stream = g->prev_stream;
    rh_gpu_cur_task = g->prev_task;
    if (g->prev_dev >= 0) {
        (void)rh_cuda_set_device(g->prev_dev);
    }
    g->active = 0;
    return status;
}

int rh_gpu_current_device(void)
{
    return rh_gpu_cur_dev;
}

void *rh_gpu_current_stream(void)
{
    return rh_gpu_cur_stream;
}

int rh_gpu_store_pinned(void)
{
    return rh_gpu.store != NULL;
}

rh_status_t rh_gpu_stage_acquire(void ***slots, int *depth, size_t *chunk)
{
    pthread_mutex_lock(&rh_gpu.stage_lock);
    for (int s = 0; s < RH_GPU_STAGE_DEPTH; s++) {
        if (rh_gpu.stage[s] == NULL) {
            rh_status_t status = rh_cuda_host_alloc(rh_cfg.gpu_chunk,
                                                    &rh_gpu.stage[s]);

            if (status != RH_OK) {
                pthread_mutex_unlock(&rh_gpu.stage_lock);
                return status;
            }
        }
    }
    *slots = rh_gpu.stage;
    *depth = RH_GPU_STAGE_DEPTH;
    *chunk = rh_cfg.gpu_chunk;
    return RH_OK;
}

void rh_gpu_stage_release(void)
{
    pthread_mutex_unlock(&rh_gpu.stage_lock);
}

/* ---- the API ---------------------------------------------------------------- */

int rh_num_gpus(void)
{
    return rh_gpu.ndev;
}

rh_status_t rh_gpu_check(void)
{
    char why[256];

    if (rh_gpu.ndev > 0) {
        return RH_OK;
    }
    if (rh_gpu.why[0] != '\0') {
        return rh_error_set(RH_ERR_UNSUPPORTED, "%s", rh_gpu.why);
    }
    /* before rh_init, or a rank that never looked */
    if (rh_cuda_probe(why, sizeof(why)) == 0) {
        return rh_error_set(RH_ERR_UNSUPPORTED, "%s", why);
    }
    return rh_error_set(RH_ERR_UNSUPPORTED, "this rank offers no GPU (rh_init "
                        "not called yet?)");
}

void *rh_task_stream(const rh_task_ctx_t *ctx)
{
    (void)ctx;
    return rh_gpu_cur_stream;
}

int rh_task_gpu(const rh_task_ctx_t *ctx)
{
    (void)ctx;
    return rh_gpu_cur_dev;
}
