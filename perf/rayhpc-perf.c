/*
 * rayhpc-perf [FIGURE...]   (no argument: every figure)
 *
 * Started alone, it starts its own ranks with rayhpc-run (found next to this
 * binary), one job per group of figures, each with the environment the
 * group needs (UCX_TLS=tcp,self for the *_tcp figures). Started by srun or
 * mpirun, it measures with the job's ranks and transports.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "perf.h"

const perf_group_t *const perf_groups[] = {
    &perf_group_am, &perf_group_am_tcp, &perf_group_tasks,
    &perf_group_remote, &perf_group_remote_tcp, &perf_group_pull,
    &perf_group_balance, &perf_group_actor, &perf_group_actor_tcp,
    &perf_group_actor_node, &perf_group_actor_nn, &perf_group_recovery,
    &perf_group_ft_overhead, NULL
};

static void usage(void)
{
    fprintf(stderr, "usage: rayhpc-perf [FIGURE...]\nfigures:");
    for (const perf_group_t *const *gp = perf_groups; *gp; gp++) {
        const perf_group_t *g = *gp;

        for (int i = 0; g->figures[i]; i++) {
            fprintf(stderr, " %s", g->figures[i]);
        }
    }
    fprintf(stderr, "\n");
}

static int known_figure(const char *f)
{
    for (const perf_group_t *const *gp = perf_groups; *gp; gp++) {
        const perf_group_t *g = *gp;

        for (int i = 0; g->figures[i]; i++) {
            if (strcmp(g->figures[i], f) == 0) {
                return 1;
            }
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "--child") == 0) {
        return perf_child(argv[2], argc - 3, argv + 3);
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage();
            return 0;
        }
        if (!known_figure(argv[i])) {
            fprintf(stderr, "rayhpc-perf: no figure named '%s'\n", argv[i]);
            usage();
            return 2;
        }
    }
    if (getenv("RAYHPC_LOCAL_FD") || getenv("PMIX_RANK") ||
        getenv("OMPI_COMM_WORLD_SIZE")) {
        /* Inside a job already: measure here with the job's transports. */
        const char *tls = getenv("UCX_TLS");
        int tcp = tls && strstr(tls, "tcp") && !strstr(tls, "shm") &&
                  !strstr(tls, "posix") && !strstr(tls, "sm");

        return perf_child(tcp ? "am_tcp" : "am", argc - 1, argv + 1);
    }
    return perf_launch_all(argv[0], argc - 1, argv + 1);
}
