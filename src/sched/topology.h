/*
 * The machine as hwloc sees it. Issue-3 scope: a one-line summary that every
 * rank publishes at start-up and rayhpc-info prints; the local scheduler
 * builds its worker placement on the same topology.
 */
#ifndef RH_SCHED_TOPOLOGY_H
#define RH_SCHED_TOPOLOGY_H

#include <stddef.h>

#include "rayhpc.h"

typedef struct rh_topo_counts {
    int packages, numa_nodes, cores, pus, gpus;
} rh_topo_counts_t;

/* Loads the topology of this machine and counts what matters to us. */
rh_status_t rh_topo_query(rh_topo_counts_t *counts);

/* "packages=1 numa=1 cores=2 pus=2 gpus=0" */
void rh_topo_format(const rh_topo_counts_t *counts, char *buf, size_t len);

#endif
