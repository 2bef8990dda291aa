/*
 * GPUs of a rank: discovery (which devices it offers, their cores), the
 * "GPU" resource it offers to tasks, the device and stream of the GPU task
 * a worker runs, and device objects (devobj.c). Without CUDA, a driver or
 * a device, the rank offers no GPU and every GPU call fails with
 * RH_ERR_UNSUPPORTED and the reason.
 */
#ifndef RH_GPU_GPU_H
#define RH_GPU_GPU_H

#include <stddef.h>

#include "rayhpc.h"
#include "sched/resources.h"

#define RH_GPU_MAX 64      /* devices a rank offers */
#define RH_GPU_TASK_MAX 8  /* devices one task holds */

/* At rh_init, once the node's store exists: finds the devices this rank
 * offers (the node's GPUs dealt out among its ranks by their index on the
 * node, or all it sees when CUDA_VISIBLE_DEVICES was set for it) and
 * page-locks the store segment for copies. A rank without GPUs is no
 * error. */
void rh_gpu_setup(int node_index, int ranks_on_node, void *store,
                  size_t store_len);
void rh_gpu_teardown(void);

/* What a rank offers travels in its start-up blob before nodes are
 * numbered: rh_gpu_describe adds to spec ("name=amount,...") the GPUs the
 * process sees, as "GPU=n" when a launcher gave them to it alone
 * (CUDA_VISIBLE_DEVICES), else as the node's, "GPU_NODE=n", which
 * rh_gpu_deal (on every rank, for every rank) turns into the rank's share
 * of them once its index among the node's ranks is known. A spec that
 * names GPU itself is left as it is (the user's word wins). */
#define RH_GPU_NODE_RES "GPU_NODE"
void rh_gpu_describe(const char *spec, char *out, size_t len);
void rh_gpu_deal(const char *spec, int node_index, int ranks_on_node,
                 char *out, size_t len);

/* How many of a node's seen GPUs the rank with node_index gets: device d
 * goes to the rank with index d % ranks_on_node. */
int rh_gpu_share(int seen, int node_index, int ranks_on_node);

/* Devices an actor keeps for its life (its constructor's): its methods
 * run with the same device current, where its state's memory is. */
typedef struct rh_gpu_hold {
    int    ndev;
    int    dev[RH_GPU_TASK_MAX];      /* the rank's device slots */
    long   units[RH_GPU_TASK_MAX];
} rh_gpu_hold_t;

/* Takes units of GPU (RH_RES_GPU_UNITS a device) from the n devices
 * free_units for a task: a fraction goes to the device with the least
 * room that fits it, so that whole devices stay whole; a whole GPU takes
 * the freest device not taken yet, and so does a fraction that fits
 * nowhere (the ledger in resources.c checked the sum, not each device).
 * Writes the devices and the units taken from each; returns how many. */
int rh_gpu_choose(long *free_units, int n, long units, int *dev,
                  long *taken, int max);

/* What a worker runs a GPU task with; restored at its end. */
typedef struct rh_gpu_task {
    int    active;
    int    kept;                      /* the devices outlive the task */
    int    ndev;
    int    dev[RH_GPU_TASK_MAX];
    long   units[RH_GPU_TASK_MAX];
    struct rh_gpu_task *prev_task;
    void  *stream;
    int    prev_dev;          /* the outer task's device (nested tasks) */
    void  *prev_stream;
    int    rebound;           /* the thread was moved near the device */
    void  *cpuset;            /* its binding before (hwloc_bitmap_t) */
} rh_gpu_task_t;

/* Before a task with resources req runs on this thread: with GPUs asked
 * for, picks the rank's devices, makes the first current, moves the
 * thread near it and hands it this worker's stream. Fails (message in
 * rh_last_error) when the rank has no usable GPU. */
rh_status_t rh_gpu_task_begin(const rh_res_req_t *req, rh_gpu_task_t *g);

/* After it: waits for the task's stream (what the task launched is done
 * before its returns are published) and gives the devices back. */
rh_status_t rh_gpu_task_end(rh_gpu_task_t *g);

/* In an actor's constructor running as a GPU task: the actor takes the
 * task's devices into hold, so that the task's end keeps them taken;
 * hold->ndev stays 0 outside a GPU task. */
void rh_gpu_task_keep(rh_gpu_hold_t *hold);

/* Before a method of an actor that holds GPUs: as rh_gpu_task_begin, on
 * the held devices. rh_gpu_task_end after it gives nothing back. */
rh_status_t rh_gpu_call_begin(const rh_gpu_hold_t *hold, rh_gpu_task_t *g);

/* When the actor ends: its devices are free again. */
void rh_gpu_hold_release(rh_gpu_hold_t *hold);

/* Whether req asks for GPUs (the hot path tests this first). */
static inline int rh_gpu_req_wants(const rh_res_req_t *req)
{
    if (req == NULL) {
        return 0;
    }
    for (int i = 0; i < req->n; i++) {
        if (req->items[i].amount > 0 &&
            rh_resources_is_gpu(req->items[i].name)) {
            return 1;
        }
    }
    return 0;
}

/* The device and stream of the GPU task running on this thread (-1, NULL
 * outside one). */
int rh_gpu_current_device(void);
void *rh_gpu_current_stream(void);

/* A stream of this thread for copies on device dev. */
rh_status_t rh_gpu_thread_stream(int dev, void **stream);

/* Whether the store segment is page-locked (copies go straight to it). */
int rh_gpu_store_pinned(void);

/* Device objects' staging slots (pinned; one user at a time). */
rh_status_t rh_gpu_stage_acquire(void ***slots, int *depth, size_t *chunk);
void rh_gpu_stage_release(void);

#endif
