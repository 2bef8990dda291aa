/*
 * rayhpc-info: what this librayhpc is and what it would do here: version,
 * build options, every RAYHPC_* setting with its value and doc, the hwloc
 * summary, and the UCX transports and devices a rank would use.
 *
 * usage: rayhpc-info [-v] [-c] [-t] [-u]   (no option: everything)
 */
#include <stdio.h>
#include <string.h>
#include <ucp/api/ucp.h>

#include "base/config.h"
#include "base/log.h"
#include "rayhpc.h"
#include "sched/topology.h"
#include "transport/bootstrap.h"
#include "transport/transport.h"

static void print_version(void)
{
    unsigned major, minor, release;
    const char *why;
    static const char *const kinds[] = {
        "auto", "pmix", "mpi", "local", "singleton"
    };
    rh_bootstrap_kind_t kind = rh_bootstrap_detect(&why);

    ucp_get_version(&major, &minor, &release);
    printf("# librayhpc %s\n", rh_version());
    printf("#   UCX:                %u.%u.%u\n", major, minor, release);
    printf("#   bootstrap backends: %s\n", rh_bootstrap_builtin());
    printf("#   MPI backend:        %s\n", RH_BUILD_MPI_STR);
    printf("#   CUDA toolkit:       %s (GPUs are driven through "
           "libcuda.so.1 at run time)\n", RH_BUILD_CUDA_STR);
    printf("#   bootstrap here:     %s (%s)\n", kinds[kind], why);
}

static void print_config(void)
{
    rh_config_t cfg;

    rh_config_defaults(&cfg);
    printf("#\n# Settings (environment overrides the defaults)\n#\n");
    if (rh_config_load_env(&cfg) != RH_OK) {
        printf("# error: %s\n", rh_last_error());
    }
    rh_config_warn_unknown_env();
    rh_config_print(&cfg, stdout);
}

static void print_topology(void)
{
    rh_topo_counts_t counts;
    char buf[128];

    printf("#\n# Topology (hwloc)\n#\n");
    if (rh_topo_query(&counts) != RH_OK) {
        printf("# error: %s\n", rh_last_error());
        return;
    }
    rh_topo_format(&counts, buf, sizeof(buf));
    printf("%s\n", buf);
}

static void print_ucx(void)
{
    printf("#\n# UCX resources of a rank (UCX_TLS and UCX_NET_DEVICES "
           "apply)\n#\n");
    rh_config_defaults(&rh_cfg);
    (void)rh_config_load_env(&rh_cfg);
    if (rh_tp_open(&rh_cfg) != RH_OK) {
        printf("# error: %s\n", rh_last_error());
        return;
    }
    fflush(stdout);
    rh_tp_print_info(stdout);
    rh_tp_close();
}

int main(int argc, char **argv)
{
    int v = 0, c = 0, t = 0, u = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-v") == 0) {
            v = 1;
        } else if (strcmp(argv[i], "-c") == 0) {
            c = 1;
        } else if (strcmp(argv[i], "-t") == 0) {
            t = 1;
        } else if (strcmp(argv[i], "-u") == 0) {
            u = 1;
        } else {
            fprintf(stderr, "usage: rayhpc-info [-v] [-c] [-t] [-u]\n"
                    "  -v version and build   -c settings\n"
                    "  -t hwloc topology      -u UCX transports\n"
                    "  (no option: all of them)\n");
            return strcmp(argv[i], "-h") == 0 ? 0 : 2;
        }
    }
    if (!(v || c || t || u)) {
        v = c = t = u = 1;
    }
    if (v) {
        print_version();
    }
    if (c) {
        print_config();
    }
    if (t) {
        print_topology();
    }
    if (u) {
        print_ucx();
    }
    return 0;
}
