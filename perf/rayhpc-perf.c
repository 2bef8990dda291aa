/*
 * rayhpc-perf [FIGURE...]   (no argument: every figure)
 * rayhpc-perf --list        the figures, one a line
 * rayhpc-perf --report DIR [--quick]
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
    &perf_group_actor_node, &perf_group_actor_nn, &perf_group_gpu,
    &perf_group_spill, &perf_group_gcs, &perf_group_gcs_failover,
    &perf_group_recovery,
    &perf_group_ft_overhead, NULL
};

static void usage(FILE *f)
{
    fprintf(f, "usage: rayhpc-perf [FIGURE...]\n"
            "       rayhpc-perf --list\n"
            "       rayhpc-perf --report DIR [--quick]\n"
            "  --list         print the figures, one a line\n"
            "  --report DIR   measure every figure, write DIR/report.md and "
            "the plots\n"
            "  --quick        with --report: a few quick figures only\n"
            "figures:");
    for (const perf_group_t *const *gp = perf_groups; *gp; gp++) {
        const perf_group_t *g = *gp;

        for (int i = 0; g->figures[i]; i++) {
            fprintf(f, " %s", g->figures[i]);
        }
    }
    fprintf(f, "\n");
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
    const char *report = NULL;
    int quick = 0;

    if (argc > 2 && strcmp(argv[1], "--child") == 0) {
        return perf_child(argv[2], argc - 3, argv + 3);
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--list") == 0) {
            for (const perf_group_t *const *gp = perf_groups; *gp; gp++) {
                for (int k = 0; (*gp)->figures[k]; k++) {
                    printf("%s\n", (*gp)->figures[k]);
                }
            }
            return 0;
        }
        if (strcmp(argv[i], "--report") == 0) {
            if (i + 1 == argc) {
                fprintf(stderr, "rayhpc-perf: --report needs a directory\n");
                usage(stderr);
                return 2;
            }
            report = argv[++i];
            continue;
        }
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
            continue;
        }
        if (!known_figure(argv[i])) {
            fprintf(stderr, "rayhpc-perf: no figure named '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (quick && report == NULL) {
        fprintf(stderr, "rayhpc-perf: --quick goes with --report DIR\n");
        usage(stderr);
        return 2;
    }
    if (report != NULL) {
        if (argc != (quick ? 4 : 3)) {
            fprintf(stderr, "rayhpc-perf: --report measures every figure; "
                    "name none\n");
            usage(stderr);
            return 2;
        }
        return perf_report_run(argv[0], report, quick);
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
