/*
 * rayhpc-perf: each figure runs our code and its reference in the same run
 * and prints machine-readable lines:
 *   NAME VALUE UNIT
 *   NAME/REFERENCE RATIO x
 */
#ifndef RH_PERF_PERF_H
#define RH_PERF_PERF_H

#include <stddef.h>
#include <stdint.h>

#include "rayhpc.h"

/* A group of figures measured by one job of ranks. */
typedef struct perf_group {
    const char        *name;       /* "am", "am_tcp" */
    const char *const *figures;    /* NULL-terminated figure names */
    int                ranks;      /* ranks the group needs */
    const char *const *env;        /* extra environment, NULL-terminated */
    int                polling;    /* progress thread spins (AM figures) */
    int                nodes;      /* virtual nodes (rayhpc-run --nodes) */
    /* Registers the group's AM handlers (before rh_init). */
    int              (*setup)(void);
    /* Runs inside a job; `want` says which figures to measure. */
    int              (*run)(const struct perf_group *g, const char *suffix,
                            int (*want)(const char *figure));
} perf_group_t;

extern const perf_group_t perf_group_am, perf_group_am_tcp, perf_group_tasks,
                          perf_group_remote, perf_group_remote_tcp,
                          perf_group_pull, perf_group_balance,
                          perf_group_actor, perf_group_actor_tcp,
                          perf_group_actor_node, perf_group_actor_nn,
                          perf_group_gpu,
                          perf_group_spill, perf_group_gcs,
                          perf_group_gcs_failover,
                          perf_group_recovery, perf_group_ft_overhead;
/* Every group, NULL-terminated. */
extern const perf_group_t *const perf_groups[];

void perf_print(const char *name, const char *suffix, double value,
                const char *unit);
void perf_print_ratio(const char *name, const char *suffix,
                      const char *reference, double ratio);
double perf_now(void);

/* Prints a figure, its reference's value and their ratio (ours / ref):
 *   NAME VALUE UNIT / NAME VALUE UNIT(REF) / NAME/REF RATIO x */
void perf_report(const char *name, const char *suffix, double ours,
                 double ref, const char *unit, const char *refname);

/* Keeps the best of trials in *best: the lowest when lower is better. */
static inline void perf_keep_best(double *best, double v, int lower)
{
    if (lower ? v < *best : v > *best) {
        *best = v;
    }
}

/* Two-rank rendezvous through our AM layer (rank 0 and 1). */
void perf_sync(void);

/* Every rank of the job meets every other one. A job uses either this or
 * perf_sync: they count the same messages. */
void perf_barrier(void);

/* Params that place a task on node `node` (hard NODE_AFFINITY). */
static inline rh_task_params_t perf_on_node(int node)
{
    rh_task_params_t p = { 0 };

    p.field_mask = RH_TASK_PARAM_FIELD_STRATEGY;
    p.strategy = RH_STRATEGY_NODE_AFFINITY;
    p.node = node;
    return p;
}
int perf_register_sync(void);

/* Starts `rayhpc-run -n RANKS self --child GROUP FIGURE...` for each group
 * that holds a wanted figure; returns non-zero if any job failed. */
int perf_launch_all(const char *self, int nwant, char **want);

/* The same for the figures named (NULL: all), each job's output appended
 * to the file out and echoed to stdout. */
int perf_launch_to(const char *self, const char *const *figures,
                   const char *out);

/* --report DIR [--quick]: every figure (or the quick ones), then
 * DIR/report.md and the plots (perf_report.c). */
int perf_report_run(const char *self, const char *dir, int quick);

/* Whether the report asked the jobs for curves ("# series ..." lines):
 * 0 no, 1 short ones (--quick), 2 full ones. */
int perf_series(void);

/* Prints one point of a curve for the report's plots. */
void perf_print_point(const char *plot, const char *curve, double x,
                      double y);

/* Inside a job: measures the wanted figures of group name. */
int perf_child(const char *group, int nwant, char **want);

/* Raw UCX between ranks 0 and 1 (perf_am.c), the reference of several
 * figures: a second context and worker driven by the main thread while our
 * progress threads sleep. perf_am_setup registers the AM handlers the set-up
 * needs (before rh_init). Latency is one way, in us; rate in messages/s of
 * 64 B in windows of 256. */
int perf_am_setup(void);
int perf_raw_open(void);
double perf_raw_lat(long iters);
double perf_raw_rate(long windows);
void perf_raw_close(void);

/* The host's price of handing a core from one process to another
 * (perf_host.c): us per handoff, two processes taking turns on one core
 * through a futex, n handoffs each way; 0 when it could not run. */
double perf_switch_lat(long n);

/* Closes a raw UCX endpoint (forced) and waits for it on its worker; the
 * references' teardown. */
struct ucp_ep;
struct ucp_worker;
void perf_raw_ep_close(struct ucp_ep *ep, struct ucp_worker *worker);

#endif
