#include "sched/topology.h"

#include <hwloc.h>
#include <stdio.h>
#include <string.h>

#include "base/status.h"

static int rh_topo_count_gpus(hwloc_topology_t topo)
{
    hwloc_obj_t obj = NULL;
    int n = 0;

    while ((obj = hwloc_get_next_osdev(topo, obj)) != NULL) {
        if (obj->attr->osdev.type == HWLOC_OBJ_OSDEV_COPROC ||
            obj->attr->osdev.type == HWLOC_OBJ_OSDEV_GPU) {
            const char *backend = hwloc_obj_get_info_by_name(obj, "Backend");

            /* Count CUDA devices once (NVML and OpenCL list them again). */
            if (backend != NULL && strcmp(backend, "CUDA") == 0) {
                n++;
            }
        }
    }
    return n;
}

rh_status_t rh_topo_query(rh_topo_counts_t *counts)
{
    hwloc_topology_t topo;

    memset(counts, 0, sizeof(*counts));
    if (hwloc_topology_init(&topo) != 0) {
        return rh_error_set(RH_ERR_NO_MEMORY, "hwloc_topology_init failed");
    }
    hwloc_topology_set_io_types_filter(topo, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
    if (hwloc_topology_load(topo) != 0) {
        hwloc_topology_destroy(topo);
        return rh_error_set(RH_ERR_UNSUPPORTED, "hwloc cannot read this "
                            "machine's topology");
    }
    counts->packages = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PACKAGE);
    counts->numa_nodes = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
    counts->cores = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
    counts->pus = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
    counts->gpus = rh_topo_count_gpus(topo);
    hwloc_topology_destroy(topo);
    return RH_OK;
}

void rh_topo_format(const rh_topo_counts_t *c, char *buf, size_t len)
{
    snprintf(buf, len, "packages=%d numa=%d cores=%d pus=%d gpus=%d",
             c->packages, c->numa_nodes, c->cores, c->pus, c->gpus);
}
