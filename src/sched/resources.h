/*
 * Resource accounting of one rank: CPUs (its workers) and custom named
 * resources (RAYHPC_RESOURCES="license=2,gpu_mem=16"). A task holds what it
 * asked for (num_cpus, resources) while it runs.
 *
 * Tasks that ask for nothing but one CPU never come here as long as no task
 * has asked for more: the pool's size already bounds them, so the common
 * path stays free of locks. From the first task with other needs on, every
 * task is counted, under one lock. The one-CPU tasks that started before
 * that still hold their CPU: each counts itself on its thread's own
 * counter (rh_resources_begin_uncounted), which the ledger reads once it
 * counts, until they have all ended.
 */
#ifndef RH_SCHED_RESOURCES_H
#define RH_SCHED_RESOURCES_H

#include <stdatomic.h>
#include <stddef.h>

#include "rayhpc.h"

#define RH_RES_MAX 16          /* custom resources a task or rank names */
#define RH_RES_LEDGER_MAX 128  /* names a rank counts, bundles' included */
#define RH_RES_NAME_MAX 96     /* room for a bundle's prefix (pgroup.h) */
/* The most of one resource a request or an offer may name (an exbibyte:
 * memory is counted in bytes), and of CPUs; the ledger refuses moves whose
 * sums would overflow all the same. */
#define RH_RES_AMOUNT_MAX (1L << 60)
#define RH_RES_CPUS_MAX   (1 << 20)
#define RH_RES_USER_NAME_MAX 48 /* what users may name */

/* GPUs (discovered, src/gpu/) are the resource "GPU", which may be asked
 * for in fractions ("GPU=0.25", at most 4 decimals): it is counted in
 * ten-thousandths of a GPU, here and in placement-group bundles
 * ("<prefix>GPU"). Other resources are whole numbers. */
#define RH_RES_GPU       "GPU"
#define RH_RES_GPU_UNITS 10000L
#define RH_RES_CPU       "CPU"   /* num_cpus, never a resource string's */

/* Whether name counts GPUs: "GPU" or a bundle's "<prefix>GPU". */
int rh_resources_is_gpu(const char *name);

/* amount of name as a user writes it ("0.25" for 2500 GPU units). */
void rh_resources_amount_str(const char *name, long amount, char *buf,
                             size_t len);

typedef struct rh_res_req {
    int  cpus;
    int  n;
    struct {
        char name[RH_RES_NAME_MAX];
        long amount;
    } items[RH_RES_MAX];
} rh_res_req_t;

/*
 * Something that waits for resources. Waiters are served first come, first
 * served among those that fit: a release hands resources to the oldest
 * waiters that fit now and wakes only them. A request that does not fit
 * yet (but could, once running tasks end) may be overtaken by later ones
 * that fit, at most as many times as the rank has CPUs; then nothing
 * behind it starts until it has its turn. So a large request waits about
 * one generation of small tasks, never forever, and CPUs do not idle while
 * it is young. A request that cannot fit on this rank at all blocks
 * nobody.
 *
 * Waiters of the same request shape queue together: a release looks at
 * the head of each shape's queue, so it costs O(shapes + waiters woken),
 * not O(waiters).
 */
typedef struct rh_res_waiter rh_res_waiter_t;
struct rh_res_waiter {
    rh_res_waiter_t    *next;
    /* Called, without the ledger's lock, once w holds what it asked for. */
    void              (*retry)(rh_res_waiter_t *w);
    /* The ledger's (set by rh_resources_acquire). */
    const rh_res_req_t *req;
    /* Its place in line: a ticket (rh_resources_ticket) taken when its
     * task became ready, or 0 to take one at the ledger. */
    uint64_t            seq;
    unsigned            bypassed;  /* later waiters that started first */
};

/* This rank offers cpus CPUs and what spec lists ("name=amount,..."). */
rh_status_t rh_resources_init(int cpus, const char *spec);

/* At the end: hands every still-waiting waiter to drop. */
void rh_resources_fini(void (*drop)(rh_res_waiter_t *w));

/* Parses what a task, an actor or a bundle asks for: cpus and its
 * resource string, where an amount of 0 asks for nothing and is dropped,
 * and "CPU" is refused (CPUs are asked for with num_cpus: a "CPU" item
 * would name a custom resource no rank offers). */
rh_status_t rh_resources_parse(const char *spec, int cpus, rh_res_req_t *req);

/* Parses what a rank offers: cpus and its RAYHPC_RESOURCES, as written. */
rh_status_t rh_resources_parse_offer(const char *spec, int cpus,
                                     rh_res_req_t *req);

/* Whether req could ever fit on this rank; else writes what is missing. */
int rh_resources_feasible(const rh_res_req_t *req, char *why, size_t len);

/* Whether accounting is on (some task asked for more than one CPU). */
extern _Atomic int rh_resources_active;
void rh_resources_activate(void);

/*
 * A one-CPU task that asks for nothing else, on the thread that runs it.
 * Begin returns 1 when the task holds its CPU uncounted (the ledger is
 * off: no lock, one atomic add on a counter only this thread writes), 0
 * when it must go through rh_resources_acquire instead. End gives the CPU
 * back on the same thread (and wakes the ledger's waiters once it counts);
 * lend and reclaim are rh_resources_lend and _reclaim for such a task.
 */
int rh_resources_begin_uncounted(void);
void rh_resources_end_uncounted(void);
void rh_resources_lend_uncounted(void);
void rh_resources_reclaim_uncounted(void);

/* Whether req would start at once here: it fits what is free now and
 * nobody waits (a snapshot: placement's hint). */
int rh_resources_available(const rh_res_req_t *req);

/* A place in line for a waiter: the ledger serves waiters of a shape in
 * ticket order (first come, first served), whatever order workers reach
 * it in. */
uint64_t rh_resources_ticket(void);

/* Whether req asks for a name of a bundle removed here (the task fails
 * once it reaches the ledger). */
int rh_resources_removed(const rh_res_req_t *req);

/* Takes req (1), or queues w (0): w->retry runs once w holds req; req
 * must stay valid until then. -1 when req asks for a name of a bundle
 * removed here: it never will hold it (nothing is queued). */
int rh_resources_acquire(const rh_res_req_t *req, rh_res_waiter_t *w);
void rh_resources_release(const rh_res_req_t *req);

/* A task that blocks in a wait lends the CPUs it holds to the tasks that
 * wait for some (Ray does the same): the rank's CPUs to the rank, a
 * bundle's ("<prefix>CPU") back to the bundle. It takes them back when its
 * wait returns, whether or not they are free then: the free counts may
 * stay below zero until enough tasks end, and no new task starts
 * meanwhile. Lend returns how many CPUs it lent. */
int rh_resources_lend(const rh_res_req_t *req);
void rh_resources_reclaim(const rh_res_req_t *req);

/* Placement-group bundles (Ray's renaming): reserving takes req out of the
 * rank's own CPUs and resources and offers it again under the names
 * "<prefix>CPU" and "<prefix><name>", which only tasks of that bundle ask
 * for. Reserving may leave some free counts below zero while running tasks
 * still hold them: new tasks then wait until they come back. */
rh_status_t rh_resources_bundle_add(const char *prefix,
                                    const rh_res_req_t *req);
/* Removing hands every task still queued for the bundle's names to drop
 * (outside the lock): nothing offers them any more. */
void rh_resources_bundle_remove(const char *prefix, const rh_res_req_t *req,
                                void (*drop)(rh_res_waiter_t *w));

/* Waiters queued now (tests, perf). */
size_t rh_resources_waiting(void);

/* What is free now, for tests and rayhpc-info ("CPU=2 license=1"). */
void rh_resources_format(char *buf, size_t len);

/* What the rank offers in all, in the same form (rayhpc-info --job). */
void rh_resources_format_total(char *buf, size_t len);

#endif
