/*
 * rayhpc-info: what this librayhpc is and what it would do here: version,
 * build options, every RAYHPC_* setting with its value and doc, the hwloc
 * summary, and the UCX transports and devices a rank would use; or, with
 * --job, the state of the jobs running on this host (--gcs: their GCS),
 * or of those of other hosts through their contact records.
 *
 * usage: rayhpc-info [-v] [-c] [-t] [-u] | --job[=JOB] | --gcs[=JOB]
 *        [--timeout MS] [--remote | --contact FILE] | --help | --version
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucp/api/ucp.h>

#include "base/config.h"
#include "base/log.h"
#include "obs/jobremote.h"
#include "obs/jobstate.h"
#include "gpu/cuda.h"
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
    {
        char none[256];
        int gpus = rh_cuda_probe(none, sizeof(none));

        printf("#   CUDA:               %s\n",
               strcmp(RH_BUILD_CUDA_STR, "yes") == 0 ? "yes (runtime linked "
               "statically; only the driver is needed)" : "no");
        if (gpus > 0) {
            printf("#   GPUs here:          %d\n", gpus);
        } else {
            printf("#   GPUs here:          0 (%s)\n", none);
        }
    }
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

/* The options and their help in one table: --help prints it and the
 * parser's getopt table is made from it. */
struct opt_doc {
    const char *group;   /* starts a group of options in --help */
    const char *name;
    int val;
    const char *help;
};

static const struct opt_doc opt_docs[] = {
    { "Sections (none given: all of them):", "build", 'v',
      "version, build options, the bootstrap chosen here" },
    { NULL, "config", 'c', "every RAYHPC_* setting with its value and doc" },
    { NULL, "topology", 't', "the hwloc summary of this host" },
    { NULL, "ucx", 'u', "the UCX transports and devices a rank would use" },
    { "A running job:", "job", 'j', "the state of the jobs running here: "
      "nodes, ranks,\n                  resources, tasks, objects "
      "(--job=JOB: that job)" },
    { NULL, "gcs", 'g', "the GCS of the jobs running here: epoch, "
      "masters, each shard's\n                  chain, each replica's "
      "log position and table sizes\n                  (--gcs=JOB: that "
      "job)" },
    { NULL, "timeout", 'T', "with --job or --gcs: MS milliseconds (default "
      "5000) for the\n                  job's other nodes to answer over "
      "the network; those\n                  that do not are listed as "
      "unreachable" },
    { NULL, "remote", 'r', "with --job or --gcs: leave this host's ranks "
      "out and reach\n                  the job through its contact record "
      "over UCX, as on a\n                  host with none of its ranks "
      "(RAYHPC_JOB_CONTACT_DIR)" },
    { NULL, "contact", 'C', "FILE: the job of that contact record, reached "
      "over UCX\n                  (--job implied)" },
    { "Information:", "help", 'h', "print this help and exit" },
    { NULL, "version", 'V', "print the version and exit" },
};

#define N_OPTS (sizeof(opt_docs) / sizeof(opt_docs[0]))

static void usage(FILE *f)
{
    fprintf(f, "Usage: rayhpc-info [-v] [-c] [-t] [-u]\n"
               "       rayhpc-info --job[=JOB] | --gcs[=JOB] [--timeout MS]\n"
               "                   [--remote | --contact FILE]\n"
               "       rayhpc-info --help | --version\n"
               "What this librayhpc is and would do on this host.\n");
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt_doc *o = &opt_docs[i];
        char head[40];

        if (o->group) {
            fprintf(f, "\n%s\n", o->group);
        }
        snprintf(head, sizeof(head), "  -%c, --%s", o->val, o->name);
        fprintf(f, "%-18s%s\n", head, o->help);
    }
    fprintf(f, "\nSee rayhpc-info(1).\n");
}

int main(int argc, char **argv)
{
    struct option long_options[N_OPTS + 1];
    char short_options[3 * N_OPTS + 1];
    int v = 0, c = 0, t = 0, u = 0, j = 0, g = 0, opt, timeout = 0;
    int remote = 0;
    size_t k = 0;
    const char *job = NULL, *contact = NULL;

    for (size_t i = 0; i < N_OPTS; i++) {
        int val = opt_docs[i].val;

        long_options[i] = (struct option){ opt_docs[i].name,
                                           val == 'j' || val == 'g' ?
                                           optional_argument :
                                           val == 'T' || val == 'C' ?
                                           required_argument :
                                           no_argument, NULL, val };
        short_options[k++] = (char)val;
        if (val == 'j' || val == 'g' || val == 'T' || val == 'C') {
            short_options[k++] = ':';
        }
        if (val == 'j' || val == 'g') {
            short_options[k++] = ':';
        }
    }
    long_options[N_OPTS] = (struct option){ NULL, 0, NULL, 0 };
    short_options[k] = '\0';
    while ((opt = getopt_long(argc, argv, short_options, long_options,
                              NULL)) != -1) {
        switch (opt) {
        case 'v':
            v = 1;
            break;
        case 'c':
            c = 1;
            break;
        case 't':
            t = 1;
            break;
        case 'u':
            u = 1;
            break;
        case 'j':
        case 'g':
            if (optarg != NULL && optarg[0] == '\0') {
                fprintf(stderr, "rayhpc-info: --%s= names no job\n",
                        opt == 'j' ? "job" : "gcs");
                return 2;
            }
            j |= opt == 'j';
            g |= opt == 'g';
            job = optarg;
            break;
        case 'T': {
            char *end;
            long ms = strtol(optarg, &end, 10);

            if (*end != '\0' || ms < 1 || ms > 600000) {
                fprintf(stderr, "rayhpc-info: --timeout takes milliseconds "
                        "from 1 to 600000, not '%s'\n", optarg);
                return 2;
            }
            timeout = (int)ms;
            break;
        }
        case 'r':
            remote = 1;
            break;
        case 'C':
            contact = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("rayhpc-info (librayhpc) %s\n", rh_version());
            return 0;
        default:   /* getopt has said what was wrong */
            fputc('\n', stderr);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "rayhpc-info: unexpected argument '%s'\n\n",
                argv[optind]);
        usage(stderr);
        return 2;
    }
    if (contact != NULL && !g) {
        j = 1;
    }
    if ((timeout != 0 || remote) && !(j || g)) {
        fprintf(stderr, "rayhpc-info: --%s goes with --job or --gcs\n\n",
                remote ? "remote" : "timeout");
        usage(stderr);
        return 2;
    }
    if (remote && contact != NULL) {
        fprintf(stderr, "rayhpc-info: --remote and --contact exclude each "
                "other (--contact is remote)\n\n");
        usage(stderr);
        return 2;
    }
    if (j || g) {
        rh_config_defaults(&rh_cfg);
        if (rh_config_load_env(&rh_cfg) != RH_OK) {
            fprintf(stderr, "rayhpc-info: %s\n", rh_last_error());
            return 2;
        }
        rh_jobstate_set_timeout(timeout);
        rh_jobremote_configure(remote, contact, rh_cfg.job_contact_dir,
                               timeout);
        if (v || c || t || u || (j && g)) {
            fprintf(stderr, "rayhpc-info: --%s goes alone\n\n",
                    j ? "job" : "gcs");
            usage(stderr);
            return 2;
        }
        return g ? rh_jobstate_print_gcs_jobs(job, stdout, stderr) :
                   rh_jobstate_print_jobs(job, stdout, stderr);
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
