/*
 * rayhpc-run: start the N ranks of a librayhpc job on this host and serve
 * the `local` bootstrap protocol (transport/local_proto.h) to them.
 *
 *   rayhpc-run -n N [--nodes M] [--tag-output] [--keep-going]
 *              [--stop-on-failure] [--timeout SECONDS] [--] program [args...]
 *
 * A rank other than rank 0 (the driver) killed by a signal does not stop
 * the job: the runtime retries its tasks and rebuilds its objects
 * elsewhere. The driver's end, or a rank's exit with an error status,
 * stops every rank, unless --keep-going; with --stop-on-failure any
 * failed rank does.
 *
 * Design
 * ------
 * The launcher is one thread running one poll() loop, and everything it waits
 * for is a file descriptor:
 *   - a signalfd for SIGCHLD (reap ranks) and for the signals it forwards
 *     (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2). Those signals stay
 *     blocked, so they are only ever seen through the signalfd: no handlers,
 *     no async-signal-safety traps and no global variables;
 *   - one AF_UNIX socket per rank speaking the protocol. Both directions are
 *     non-blocking with per-rank buffers, so a rank that stops reading or
 *     writing halfway through a frame never holds up the others;
 *   - with --tag-output, a stdout and a stderr pipe per rank, relayed line by
 *     line as "[rank] line".
 * Deadlines (--timeout, the SIGTERM -> SIGKILL grace period) are poll()
 * timeouts measured on CLOCK_MONOTONIC.
 *
 * Process groups: every rank runs in a process group of its own (setpgid in
 * both parent and child, so neither side can lose the race). A Ctrl-C at the
 * terminal therefore reaches the launcher only, and the launcher forwards it
 * exactly once to each rank's whole group, which includes any helpers a rank
 * started (e.g. when the program is a shell script). The price is that ranks
 * are not in the terminal's foreground group and would be stopped by SIGTTIN
 * if they read it, so stdin is /dev/null for every rank except rank 0, which
 * keeps the launcher's stdin unless that is a terminal. Ranks get
 * PR_SET_PDEATHSIG(SIGKILL), so that a launcher that is itself SIGKILLed does
 * not leave them running outside any process group the shell knows about.
 *
 * Ending the job: a rank that fails (non-zero exit or killed by a signal), an
 * RH_LOCAL_ABORT, a protocol error, a fence that can never complete, an
 * unstartable program or --timeout "stops" the job: the sockets are closed
 * (ranks blocked in a fence see EOF), every live rank's group gets SIGTERM
 * and, 3 s later, SIGKILL. The launcher exits once every rank is reaped. Its
 * exit status is that of the first failure (rank exit code, 128 + signal,
 * abort code, 127 for exec failure, 1 for protocol errors, 1 for a rank
 * that exited 0 but said it ended without rh_finalize), 124 after a
 * timeout, 0 when every rank exited 0.
 */
/* The autotools build force-includes config.h (-include), which defines
 * _GNU_SOURCE as 1 and PACKAGE_VERSION; a plain compile gets them here. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "transport/local_proto.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "unknown"
#endif

#define PROG "rayhpc-run"
#define ARRAY_LEN(a) (sizeof(a) / sizeof *(a))

/* Read by rh_node_id() (include/rayhpc.h); not part of the local protocol. */
#define ENV_NODE_ID "RAYHPC_NODE_ID"

/* How long ranks get between SIGTERM and SIGKILL when the job is stopped. */
#define GRACE_MS 3000

/* --tag-output buffers this much of an unfinished line; a longer line is
 * split so that one rank cannot make the launcher buffer without bound. */
#define TAG_LINE_MAX 65536

/* Exit statuses of the launcher itself. */
#define EXIT_PROTOCOL 1
#define EXIT_USAGE    2
#define EXIT_TIMEOUT  124
#define EXIT_NOEXEC   127

enum { OUT_STREAM = 0, ERR_STREAM = 1 };   /* index of rank->tag[] */

/* Signals that are passed on to every rank. */
static const int forwarded_signals[] = {
    SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2,
};

struct options {
    int nranks;           /* -n N */
    int nnodes;           /* --nodes M, 0 when not given */
    bool tag_output;
    bool keep_going;
    bool stop_on_failure;
    double timeout_s;     /* --timeout, 0 for none */
    char **argv;          /* the program and its arguments */
};

/* A frame the launcher sends; one FENCE_DONE is shared by every rank. */
struct outmsg {
    size_t refs;
    size_t size;
    unsigned char data[];
};

/* One --tag-output stream of one rank: the pipe and the unfinished line. */
struct tagstream {
    int fd;               /* read end, -1 once closed */
    char *buf;            /* TAG_LINE_MAX bytes, allocated on first read */
    size_t len;
};

struct rank {
    int id;
    pid_t pid;            /* 0 until started */
    bool reaped;
    int sock;             /* launcher's end of the socketpair, -1 once closed */

    /* The frame being received: header first, then body. */
    rh_local_frame_t hdr;
    size_t hdr_got;
    unsigned char *body;
    size_t body_got;

    /* It said it was ending without rh_finalize (RH_LOCAL_UNFINISHED). */
    bool unfinished;

    /* This rank's contribution to the fence in progress. */
    bool fenced;
    unsigned char *blob;
    uint32_t blob_len;

    /* The FENCE_DONE being sent to it. */
    struct outmsg *out;
    size_t out_off;

    struct tagstream tag[2];
};

/* What the launcher changes in itself and puts back in each child, so that
 * the program starts as if it had been run directly. */
struct saved_state {
    sigset_t mask;
    struct sigaction sigpipe, sigchld;
    struct rlimit nofile;
    bool nofile_raised;
};

/* What a poll() slot refers to. */
enum slot_kind { SLOT_SIGNALS, SLOT_SOCK, SLOT_TAG_OUT, SLOT_TAG_ERR };
struct slot {
    enum slot_kind kind;
    struct rank *rk;
};

struct job {
    struct options opt;
    struct rank *ranks;
    int live;                 /* started and not yet reaped */
    int sigfd;
    pid_t launcher_pid;
    char jobid[512];
    struct saved_state saved;

    /* The fence in progress. */
    int nfenced;
    uint64_t fence_bytes;     /* its FENCE_DONE body size, as reserved by
                               * the FENCE headers received so far */
    unsigned fence_no;        /* 1-based number, for messages */

    /* How the job ends. */
    bool failed;              /* exit_status holds the first failure */
    int exit_status;
    bool stopping;            /* SIGTERM sent, sockets closed */
    bool killed;              /* SIGKILL sent too */
    bool timed_out;
    int64_t timeout_at;       /* CLOCK_MONOTONIC ms, -1 for none */
    int64_t kill_at;
    bool output_broken[2];    /* writing our stdout / stderr failed */

    /* The poll set, rebuilt every iteration. */
    struct pollfd *pfd;
    struct slot *slot;
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static int set_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* write() all of iov, waiting out EAGAIN in case the fd is non-blocking. */
static int writev_all(int fd, struct iovec *iov, int cnt)
{
    while (cnt > 0) {
        ssize_t n = writev(fd, iov, cnt);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                struct pollfd p = { .fd = fd, .events = POLLOUT };
                poll(&p, 1, -1);
                continue;
            }
            return -1;
        }
        while (cnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return 0;
}

/* The exit status a shell would report for a wait() status. */
static int shell_status(int wstatus)
{
    if (WIFEXITED(wstatus))
        return WEXITSTATUS(wstatus);
    if (WIFSIGNALED(wstatus))
        return 128 + WTERMSIG(wstatus);
    return 1;
}

static void describe_wait_status(int wstatus, char *buf, size_t size)
{
    if (WIFSIGNALED(wstatus)) {
        int sig = WTERMSIG(wstatus);
        snprintf(buf, size, "was killed by signal %d (%s)%s", sig,
                 strsignal(sig), WCOREDUMP(wstatus) ? " (core dumped)" : "");
    } else {
        snprintf(buf, size, "exited with status %d", shell_status(wstatus));
    }
}

/* ------------------------------------------------------------------------ */
/* Command line                                                             */
/* ------------------------------------------------------------------------ */

/* Parses a whole decimal integer in [lo, hi]. */
static bool parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

static bool parse_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    /* The upper bound keeps the deadline arithmetic far from overflow. */
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < 0 ||
        v > 1e9)
        return false;
    *out = v;
    return true;
}

enum { OPT_NODES = 256, OPT_TAG, OPT_KEEP, OPT_STOP, OPT_TIMEOUT,
       OPT_VERSION };

/* The options, their groups and their help, in one table: --help prints it
 * and the parser's getopt table is made from it, so the two cannot drift.
 * getopt_long_only(), so that the MPI-style "-np 4" and "-nodes 2" work.
 * The undocumented long option "n" exists so that "-n=4" is an exact match
 * rather than an ambiguous abbreviation of "np"/"nodes"; plain "-n 4" and
 * "-n4" are parsed as the short option. */
struct opt_doc {
    const char *group;   /* starts a group of options in --help */
    const char *name;    /* long name */
    int has_arg;
    int val;             /* a short option's letter, or an OPT_* */
    const char *arg;     /* the argument's name in --help */
    const char *help;    /* NULL: an alias --help leaves out */
};

static const struct opt_doc opt_docs[] = {
    { "Job size:", "np", required_argument, 'n', "N",
      "number of ranks to start (required, N >= 1)" },
    { NULL, "n", required_argument, 'n', "N", NULL },
    { NULL, "nodes", required_argument, OPT_NODES, "M",
      "make the ranks look like M nodes (1 <= M <= N): rank r gets "
      "RAYHPC_NODE_ID=vnode<r*M/N>" },
    { "Output:", "tag-output", no_argument, OPT_TAG, NULL,
      "prefix every line the ranks print with \"[rank] \"" },
    { "Job control:", "keep-going", no_argument, OPT_KEEP, NULL,
      "no failed rank stops the others, not even rank 0" },
    { NULL, "stop-on-failure", no_argument, OPT_STOP, NULL,
      "a rank killed by a signal stops the others too (by default the job "
      "goes on without a killed rank other than rank 0)" },
    { NULL, "timeout", required_argument, OPT_TIMEOUT, "SECONDS",
      "stop the job if it runs longer (0: no limit)" },
    { "Information:", "help", no_argument, 'h', NULL,
      "print this help and exit" },
    { NULL, "version", no_argument, OPT_VERSION, NULL,
      "print the version and exit" },
};

#define N_OPTS (sizeof(opt_docs) / sizeof(opt_docs[0]))

/* Prints text wrapped at 79 columns, every line indented by indent. */
static void print_wrapped(FILE *f, const char *text, int col, int indent)
{
    const char *p = text;

    while (*p) {
        const char *end = p, *brk = NULL;

        while (*end && (col + (end - p)) < 79) {
            if (*end == ' ')
                brk = end;
            end++;
        }
        if (*end && brk)
            end = brk;
        fprintf(f, "%.*s\n", (int)(end - p), p);
        p = *end == ' ' ? end + 1 : end;
        if (*p)
            fprintf(f, "%*s", indent, "");
        col = indent;
    }
}

static void usage(FILE *f)
{
    fprintf(f,
"Usage: " PROG " -n N [options] [--] program [args...]\n"
"       " PROG " --help | --version\n"
"Start N ranks of a librayhpc program on this host (as mpirun does; under\n"
"Slurm use srun --mpi=pmix). Options may start with - or --.\n");
    for (size_t i = 0; i < N_OPTS; i++) {
        const struct opt_doc *o = &opt_docs[i];
        char head[64];
        int n;

        if (!o->help)
            continue;
        if (o->group)
            fprintf(f, "\n%s\n", o->group);
        if (o->val == 'n') {
            n = snprintf(head, sizeof(head), "  -n, --np %s", o->arg);
        } else if (o->val < 256) {
            n = snprintf(head, sizeof(head), "  -%c, --%s%s%s", o->val,
                         o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        } else {
            n = snprintf(head, sizeof(head), "      --%s%s%s", o->name,
                         o->arg ? " " : "", o->arg ? o->arg : "");
        }
        if (n < 22) {
            fprintf(f, "%-22s", head);
        } else {
            fprintf(f, "%s\n%22s", head, "");
        }
        print_wrapped(f, o->help, 22, 22);
    }
    fprintf(f,
"\n"
"Exit status: 0 when every rank exits 0, else that of the first failure:\n"
"the rank's exit status, 128+N if it was killed by signal N, the code it\n"
"passed to abort, 1 for a rank that exited 0 without calling rh_finalize;\n"
"124 on timeout, 127 if the program cannot be started, 1 on a protocol\n"
"error, 2 on a usage error.\n"
"See rayhpc-run(1).\n");
}

static int usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, PROG ": ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n\n", stderr);
    usage(stderr);
    return EXIT_USAGE;
}

/* Fills *opt; returns -1 to go on, or the status to exit with. */
static int parse_args(int argc, char **argv, struct options *opt)
{
    *opt = (struct options){ .nranks = 0 };
    struct option long_options[N_OPTS + 1];
    int c;

    for (size_t i = 0; i < N_OPTS; i++) {
        long_options[i] = (struct option){ opt_docs[i].name,
                                           opt_docs[i].has_arg, NULL,
                                           opt_docs[i].val };
    }
    long_options[N_OPTS] = (struct option){ NULL, 0, NULL, 0 };

    /* '+': stop at the program name, its options are its own. */
    while ((c = getopt_long_only(argc, argv, "+hn:", long_options,
                                 NULL)) != -1) {
        switch (c) {
        case 'n':
            if (!parse_int(optarg, 1, INT_MAX / 8, &opt->nranks))
                return usage_error("-n needs a number of ranks >= 1, not '%s'",
                                   optarg);
            break;
        case OPT_NODES:
            if (!parse_int(optarg, 1, INT_MAX / 8, &opt->nnodes))
                return usage_error("--nodes needs a number >= 1, not '%s'",
                                   optarg);
            break;
        case OPT_TAG:
            opt->tag_output = true;
            break;
        case OPT_KEEP:
            opt->keep_going = true;
            break;
        case OPT_STOP:
            opt->stop_on_failure = true;
            break;
        case OPT_TIMEOUT:
            if (!parse_seconds(optarg, &opt->timeout_s))
                return usage_error("--timeout needs a number of seconds, "
                                   "not '%s'", optarg);
            break;
        case 'h':
            usage(stdout);
            return 0;
        case OPT_VERSION:
            printf(PROG " (librayhpc) %s\n", PACKAGE_VERSION);
            return 0;
        default:                    /* getopt has said what was wrong */
            fputc('\n', stderr);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (opt->nranks == 0)
        return usage_error("missing -n N (the number of ranks)");
    if (opt->nnodes > opt->nranks)
        return usage_error("--nodes cannot exceed the number of ranks");
    if (opt->keep_going && opt->stop_on_failure)
        return usage_error("--keep-going and --stop-on-failure contradict "
                           "each other: give one");
    if (optind >= argc)
        return usage_error("no program to run");
    opt->argv = argv + optind;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Launcher set-up                                                          */
/* ------------------------------------------------------------------------ */

/* If the launcher was started with fd 0, 1 or 2 closed, a socket could land
 * there and be clobbered by the child's dup2(); fill them with /dev/null. */
static void ensure_std_fds(void)
{
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0)
            open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);  /* lands on fd */
}

/* "<hostname>-<pid>-<time>", restricted to [A-Za-z0-9_.-]. */
static void make_jobid(char *buf, size_t size)
{
    char host[256];
    if (gethostname(host, sizeof host) != 0)
        strcpy(host, "localhost");
    host[sizeof host - 1] = '\0';
    snprintf(buf, size, "%s-%ld-%lld", host, (long)getpid(),
             (long long)time(NULL));
    for (char *p = buf; *p; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' ||
                  *p == '-';
        if (!ok)
            *p = '_';
    }
}

static int setup_signals(struct job *job)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    for (size_t i = 0; i < ARRAY_LEN(forwarded_signals); i++)
        sigaddset(&set, forwarded_signals[i]);
    if (sigprocmask(SIG_BLOCK, &set, &job->saved.mask) != 0)
        return -1;
    job->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (job->sigfd < 0)
        return -1;

    /* Writes to a rank that has gone, or to a closed stdout, must fail with
     * EPIPE rather than kill the launcher. */
    struct sigaction sa = { .sa_handler = SIG_IGN };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, &job->saved.sigpipe);
    /* An inherited SIG_IGN would make the kernel reap the ranks for us and
     * lose their exit statuses. */
    sa.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &sa, &job->saved.sigchld);
    return 0;
}

/* Each rank costs up to three descriptors (socket, two pipes); raise the soft
 * limit if the default would not do. The children get the old one back. */
static void raise_fd_limit(struct job *job)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    job->saved.nofile = rl;
    rlim_t need = (rlim_t)job->opt.nranks * 3 + 64;
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
        return;
    rl.rlim_cur = (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
                      ? rl.rlim_max : need;
    job->saved.nofile_raised = setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

static int job_init(struct job *job, const struct options *opt)
{
    *job = (struct job){ .opt = *opt, .sigfd = -1, .timeout_at = -1,
                         .fence_no = 1 };
    job->launcher_pid = getpid();
    make_jobid(job->jobid, sizeof job->jobid);

    size_t n = (size_t)opt->nranks;
    job->ranks = calloc(n, sizeof *job->ranks);
    job->pfd = calloc(1 + 3 * n, sizeof *job->pfd);
    job->slot = calloc(1 + 3 * n, sizeof *job->slot);
    if (!job->ranks || !job->pfd || !job->slot)
        return -1;
    for (int r = 0; r < opt->nranks; r++) {
        struct rank *rk = &job->ranks[r];
        rk->id = r;
        rk->sock = -1;
        rk->tag[OUT_STREAM].fd = rk->tag[ERR_STREAM].fd = -1;
    }
    if (opt->timeout_s > 0)
        job->timeout_at = now_ms() + (int64_t)(opt->timeout_s * 1000.0);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Stopping the job                                                         */
/* ------------------------------------------------------------------------ */

static void msg_unref(struct outmsg *m)
{
    if (m && --m->refs == 0)
        free(m);
}

/* Signals a rank's whole process group; if the rank has left its group
 * (setsid), at least the rank itself. */
static void signal_rank(const struct rank *rk, int sig)
{
    if (rk->pid <= 0 || rk->reaped)
        return;
    if (kill(-rk->pid, sig) != 0)
        kill(rk->pid, sig);
}

static void signal_ranks(const struct job *job, int sig)
{
    for (int r = 0; r < job->opt.nranks; r++)
        signal_rank(&job->ranks[r], sig);
}

/* The rank has left the protocol: drop our end and anything half-done. */
static void close_sock(struct rank *rk)
{
    close_fd(&rk->sock);
    free(rk->body);
    rk->body = NULL;
    rk->hdr_got = rk->body_got = 0;
    msg_unref(rk->out);
    rk->out = NULL;
}

/* Remembers the job's exit status; only the first failure counts. */
static void job_fail(struct job *job, int status)
{
    if (!job->failed) {
        job->failed = true;
        job->exit_status = status;
    }
}

/* Tells every rank to stop: EOF on the sockets (wakes ranks blocked in a
 * fence), SIGTERM now, SIGKILL after the grace period. */
static void stop_job(struct job *job)
{
    if (job->stopping)
        return;
    job->stopping = true;
    for (int r = 0; r < job->opt.nranks; r++)
        close_sock(&job->ranks[r]);
    signal_ranks(job, SIGTERM);
    job->kill_at = now_ms() + GRACE_MS;
}

static void fail_and_stop(struct job *job, int status)
{
    job_fail(job, status);
    stop_job(job);
}

/* ------------------------------------------------------------------------ */
/* Starting the ranks                                                       */
/* ------------------------------------------------------------------------ */

/* The descriptors created for one rank; [0] is the launcher's end, [1] the
 * child's. All are CLOEXEC: a child keeps only what exec_rank() passes on. */
struct rank_fds {
    int sock[2];          /* the protocol socketpair */
    int exec_status[2];   /* the child writes errno here if execvp fails */
    int out[2];           /* --tag-output pipes, -1 without it */
    int err[2];
};

static void child_stdin(const struct rank *rk)
{
    /* See the top comment: ranks are not in the terminal's foreground group. */
    if (rk->id == 0 && !isatty(STDIN_FILENO))
        return;
    int fd = open("/dev/null", O_RDONLY);
    if (fd > STDIN_FILENO) {
        dup2(fd, STDIN_FILENO);
        close(fd);
    }
}

static void child_env(const struct job *job, const struct rank *rk, int sock)
{
    char num[32];
    snprintf(num, sizeof num, "%d", sock);
    setenv(RH_LOCAL_ENV_FD, num, 1);
    snprintf(num, sizeof num, "%d", rk->id);
    setenv(RH_LOCAL_ENV_RANK, num, 1);
    snprintf(num, sizeof num, "%d", job->opt.nranks);
    setenv(RH_LOCAL_ENV_SIZE, num, 1);
    setenv(RH_LOCAL_ENV_JOBID, job->jobid, 1);
    if (job->opt.nnodes > 0) {
        /* Balanced blocks: rank r of N on node r*M/N of M. */
        long long node = (long long)rk->id * job->opt.nnodes / job->opt.nranks;
        snprintf(num, sizeof num, "vnode%lld", node);
        setenv(ENV_NODE_ID, num, 1);
    }
}

/* Runs in the child between fork() and exec. The launcher is single-threaded,
 * so ordinary libc calls are safe here. Every launcher descriptor is CLOEXEC;
 * only the rank's own socket end is made inheritable. */
static _Noreturn void exec_rank(const struct job *job, const struct rank *rk,
                                const struct rank_fds *fds)
{
    /* Own process group first, so a Ctrl-C from now on reaches the launcher
     * only (see the top comment). */
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != job->launcher_pid)
        _exit(EXIT_NOEXEC);           /* the launcher died before prctl() */

    sigaction(SIGPIPE, &job->saved.sigpipe, NULL);
    sigaction(SIGCHLD, &job->saved.sigchld, NULL);
    sigprocmask(SIG_SETMASK, &job->saved.mask, NULL);
    if (job->saved.nofile_raised)
        setrlimit(RLIMIT_NOFILE, &job->saved.nofile);

    int fl = fcntl(fds->sock[1], F_GETFD);
    if (fl >= 0)
        fcntl(fds->sock[1], F_SETFD, fl & ~FD_CLOEXEC);
    child_stdin(rk);
    if (fds->out[1] >= 0) {
        dup2(fds->out[1], STDOUT_FILENO);   /* dup2 clears CLOEXEC */
        dup2(fds->err[1], STDERR_FILENO);
    }
    child_env(job, rk, fds->sock[1]);

    execvp(job->opt.argv[0], job->opt.argv);

    int err = errno;
    dprintf(STDERR_FILENO, PROG ": cannot start '%s': %s\n",
            job->opt.argv[0], strerror(err));
    ssize_t w = write(fds->exec_status[1], &err, sizeof err);
    (void)w;
    _exit(EXIT_NOEXEC);
}

/* Blocks until the child has exec'd (EOF on the CLOEXEC pipe) or reported
 * why it could not. Returns 0 or the child's errno. */
static int wait_for_exec(int fd)
{
    int err = 0;
    size_t got = 0;
    while (got < sizeof err) {
        ssize_t n = read(fd, (char *)&err + got, sizeof err - got);
        if (n > 0)
            got += (size_t)n;
        else if (n == 0 || errno != EINTR)
            return 0;
    }
    return err;
}

static void close_pair(int pair[2])
{
    close_fd(&pair[0]);
    close_fd(&pair[1]);
}

static void close_rank_fds(struct rank_fds *fds)
{
    close_pair(fds->sock);
    close_pair(fds->exec_status);
    close_pair(fds->out);
    close_pair(fds->err);
}

static int make_rank_fds(const struct job *job, struct rank_fds *fds)
{
    *fds = (struct rank_fds){ { -1, -1 }, { -1, -1 }, { -1, -1 }, { -1, -1 } };
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds->sock) != 0 ||
        pipe2(fds->exec_status, O_CLOEXEC) != 0 ||
        (job->opt.tag_output && (pipe2(fds->out, O_CLOEXEC) != 0 ||
                                 pipe2(fds->err, O_CLOEXEC) != 0))) {
        int err = errno;
        close_rank_fds(fds);
        errno = err;
        return -1;
    }
    return 0;
}

/* Starts rank rk. Returns 0, or the launcher exit status for the failure. */
static int start_rank(struct job *job, struct rank *rk)
{
    struct rank_fds fds;
    if (make_rank_fds(job, &fds) != 0) {
        int err = errno;
        fprintf(stderr, PROG ": cannot create the descriptors for rank %d: "
                "%s%s\n", rk->id, strerror(err),
                err == EMFILE ? " (raise the limit with ulimit -n)" : "");
        return 1;
    }

    pid_t pid = fork();
    if (pid == 0)
        exec_rank(job, rk, &fds);
    int fork_err = errno;
    close_fd(&fds.sock[1]);              /* the child's ends */
    close_fd(&fds.exec_status[1]);
    close_fd(&fds.out[1]);
    close_fd(&fds.err[1]);
    if (pid < 0) {
        close_rank_fds(&fds);
        fprintf(stderr, PROG ": cannot start rank %d: fork: %s\n", rk->id,
                strerror(fork_err));
        return 1;
    }

    setpgid(pid, pid);                   /* see exec_rank(); one of us wins */
    rk->pid = pid;
    job->live++;
    rk->sock = fds.sock[0];
    rk->tag[OUT_STREAM].fd = fds.out[0];
    rk->tag[ERR_STREAM].fd = fds.err[0];
    set_nonblocking(rk->sock);
    for (int s = 0; s < 2; s++)
        if (rk->tag[s].fd >= 0)
            set_nonblocking(rk->tag[s].fd);

    /* The child has already said why it could not start; don't repeat it. */
    int exec_err = wait_for_exec(fds.exec_status[0]);
    close_fd(&fds.exec_status[0]);
    return exec_err ? EXIT_NOEXEC : 0;
}

static void start_ranks(struct job *job)
{
    for (int r = 0; r < job->opt.nranks; r++) {
        int status = start_rank(job, &job->ranks[r]);
        if (status != 0) {
            fail_and_stop(job, status);
            return;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Reaping and signals                                                      */
/* ------------------------------------------------------------------------ */

static struct rank *find_rank(struct job *job, pid_t pid)
{
    for (int r = 0; r < job->opt.nranks; r++)
        if (job->ranks[r].pid == pid)
            return &job->ranks[r];
    return NULL;
}

static void rank_exited(struct job *job, struct rank *rk, int wstatus)
{
    int status = shell_status(wstatus);
    /* A program that ended without rh_finalize failed, as under MPI's
     * launchers, though it exited 0: the others went on without it. */
    bool unfinished = status == 0 && rk->unfinished;
    /* Once the job is being stopped, deaths are expected: stay quiet. */
    if ((status == 0 && !unfinished) || job->stopping)
        return;

    char what[128];
    if (unfinished) {
        snprintf(what, sizeof what, "exited with status 0 without calling "
                 "rh_finalize (counted as status 1)");
        status = 1;
    } else {
        describe_wait_status(wstatus, what, sizeof what);
    }
    /* The driver's end ends the job. Another rank killed by a signal, or
     * gone without rh_finalize, is survived (as a lost node is: its tasks
     * and objects are recovered); one that exits with an error status
     * failed on its own, which ends the job as before. */
    bool lost = (WIFSIGNALED(wstatus) || unfinished) && rk->id != 0;
    bool stop = !job->opt.keep_going &&
                (job->opt.stop_on_failure || !lost);
    const char *then = "";
    if (job->live > 0)
        then = stop ? "; stopping the other ranks"
                    : "; the other ranks keep going";
    fprintf(stderr, PROG ": rank %d (pid %ld) %s%s\n", rk->id, (long)rk->pid,
            what, then);
    job_fail(job, status);
    if (stop)
        stop_job(job);
}

static void on_sock_readable(struct job *job, struct rank *rk);

/* What a rank wrote before it ended is read before its end is judged. */
static void drain_sock(struct job *job, struct rank *rk)
{
    while (rk->sock >= 0) {
        struct pollfd p = { .fd = rk->sock, .events = POLLIN };
        if (poll(&p, 1, 0) <= 0 || !(p.revents & (POLLIN | POLLHUP)))
            return;
        on_sock_readable(job, rk);
    }
}

static void reap_ranks(struct job *job)
{
    int wstatus;
    pid_t pid;
    while ((pid = waitpid(-1, &wstatus, WNOHANG)) > 0) {
        struct rank *rk = find_rank(job, pid);
        if (!rk)
            continue;
        rk->reaped = true;
        job->live--;
        drain_sock(job, rk);
        rank_exited(job, rk, wstatus);
    }
}

static void handle_signals(struct job *job)
{
    struct signalfd_siginfo si;
    bool child = false;

    /* The signalfd merges repeats of one signal, so SIGCHLD means "at least
     * one child changed state": reap_ranks() loops. */
    while (read(job->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGCHLD)
            child = true;
        else
            signal_ranks(job, (int)si.ssi_signo);
    }
    if (child)
        reap_ranks(job);
}

/* ------------------------------------------------------------------------ */
/* The protocol                                                             */
/* ------------------------------------------------------------------------ */

static void protocol_error(struct job *job, const struct rank *rk,
                           const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void protocol_error(struct job *job, const struct rank *rk,
                           const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, PROG ": rank %d ", rk->id);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "; stopping the job\n");
    fail_and_stop(job, EXIT_PROTOCOL);
}

/* Sends as much of the pending FENCE_DONE as the socket takes. */
static void flush_out(struct rank *rk)
{
    while (rk->out) {
        struct outmsg *m = rk->out;
        ssize_t n = send(rk->sock, m->data + rk->out_off, m->size - rk->out_off,
                         MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                close_sock(rk);       /* the rank is gone; its exit counts */
            return;
        }
        rk->out_off += (size_t)n;
        if (rk->out_off == m->size) {
            msg_unref(m);
            rk->out = NULL;
        }
    }
}

/* Every rank has fenced: send each the blobs of ranks 0..N-1 and start the
 * next fence. */
static void complete_fence(struct job *job)
{
    /* Sized from the blobs, not from fence_bytes: that also counts bodies
     * reserved by ranks that then left mid-frame. */
    size_t body = 0;
    for (int r = 0; r < job->opt.nranks; r++)
        body += sizeof(uint32_t) + job->ranks[r].blob_len;
    size_t size = sizeof(rh_local_frame_t) + body;
    struct outmsg *m = malloc(sizeof *m + size);
    if (!m) {
        fprintf(stderr, PROG ": out of memory for the answer to fence #%u; "
                "stopping the job\n", job->fence_no);
        fail_and_stop(job, EXIT_PROTOCOL);
        return;
    }
    m->refs = 1;                     /* ours, until every rank has its own */
    m->size = size;
    rh_local_frame_t hdr = { .type = RH_LOCAL_FENCE_DONE,
                             .len = (uint32_t)body };
    memcpy(m->data, &hdr, sizeof hdr);
    unsigned char *p = m->data + sizeof hdr;

    for (int r = 0; r < job->opt.nranks; r++) {
        struct rank *rk = &job->ranks[r];
        memcpy(p, &rk->blob_len, sizeof rk->blob_len);
        p += sizeof rk->blob_len;
        if (rk->blob_len)
            memcpy(p, rk->blob, rk->blob_len);
        p += rk->blob_len;
        free(rk->blob);
        rk->blob = NULL;
        rk->blob_len = 0;
        rk->fenced = false;
    }
    job->nfenced = 0;
    job->fence_bytes = 0;
    job->fence_no++;

    for (int r = 0; r < job->opt.nranks; r++) {
        struct rank *rk = &job->ranks[r];
        if (rk->sock < 0)
            continue;               /* left after fencing: nobody to tell */
        m->refs++;
        rk->out = m;
        rk->out_off = 0;
        flush_out(rk);
    }
    msg_unref(m);
}

static void on_fence(struct job *job, struct rank *rk, unsigned char *body,
                     uint32_t len)
{
    rk->fenced = true;
    rk->blob = body;
    rk->blob_len = len;
    if (++job->nfenced == job->opt.nranks)
        complete_fence(job);
}

static void on_abort(struct job *job, struct rank *rk, unsigned char *body,
                     uint32_t len)
{
    int32_t code;
    memcpy(&code, body, sizeof code);
    const char *msg = (const char *)body + sizeof code;
    size_t mlen = len - sizeof code;
    while (mlen > 0 && (msg[mlen - 1] == '\n' || msg[mlen - 1] == '\0'))
        mlen--;

    fprintf(stderr, PROG ": rank %d aborted: %.*s\n", rk->id, (int)mlen, msg);
    free(body);
    /* Exit statuses have 8 bits; an abort must never look like success. */
    int status = (int)((uint32_t)code & 0xff);
    fail_and_stop(job, status ? status : 1);
}

/* Checks a complete header before any body is accepted. */
static bool header_ok(struct job *job, struct rank *rk)
{
    const rh_local_frame_t *h = &rk->hdr;
    if (h->type != RH_LOCAL_FENCE && h->type != RH_LOCAL_ABORT &&
        h->type != RH_LOCAL_UNFINISHED) {
        protocol_error(job, rk, "sent a frame of invalid type %" PRIu32,
                       h->type);
        return false;
    }
    if (h->len > RH_LOCAL_MAX_BODY) {
        protocol_error(job, rk, "sent a frame of %" PRIu32 " bytes (the "
                       "limit is %u)", h->len, RH_LOCAL_MAX_BODY);
        return false;
    }
    if (h->type == RH_LOCAL_UNFINISHED) {
        if (h->len != 0) {
            protocol_error(job, rk, "sent an UNFINISHED frame with a "
                           "%" PRIu32 "-byte body", h->len);
            return false;
        }
        return true;
    }
    if (h->type == RH_LOCAL_ABORT) {
        if (h->len < sizeof(int32_t)) {
            protocol_error(job, rk, "sent an ABORT frame of %" PRIu32
                           " bytes, too short for its exit code", h->len);
            return false;
        }
        return true;
    }
    /* Fences are lock-step: a rank must read the whole FENCE_DONE before
     * its next FENCE. (We finish writing the answer before a rank can have
     * read all of it, so a pending answer means the rank did not wait.) */
    if (rk->fenced) {
        protocol_error(job, rk, "sent FENCE twice before fence #%u completed",
                       job->fence_no);
        return false;
    }
    if (rk->out) {
        protocol_error(job, rk, "sent FENCE before reading the answer to "
                       "fence #%u", job->fence_no - 1);
        return false;
    }
    /* Reserved at the header, so that this bounds the launcher's memory as
     * well as the answer's size. */
    uint64_t total = job->fence_bytes + sizeof(uint32_t) + h->len;
    if (total > RH_LOCAL_MAX_BODY) {
        protocol_error(job, rk, "sent %" PRIu32 " bytes for fence #%u, "
                       "making its answer larger than the %u-byte limit",
                       h->len, job->fence_no, RH_LOCAL_MAX_BODY);
        return false;
    }
    job->fence_bytes = total;
    return true;
}

/* A whole frame is in: hand its body over and get ready for the next one. */
static void dispatch_frame(struct job *job, struct rank *rk)
{
    unsigned char *body = rk->body;
    uint32_t len = rk->hdr.len;
    rk->body = NULL;
    rk->hdr_got = rk->body_got = 0;

    if (rk->hdr.type == RH_LOCAL_FENCE)
        on_fence(job, rk, body, len);
    else if (rk->hdr.type == RH_LOCAL_UNFINISHED)
        rk->unfinished = true;
    else
        on_abort(job, rk, body, len);
}

/* Header complete: validate it and make room for the body. */
static bool begin_body(struct job *job, struct rank *rk)
{
    if (!header_ok(job, rk))
        return false;
    if (rk->hdr.len == 0)
        return true;
    rk->body = malloc(rk->hdr.len);
    if (!rk->body) {
        protocol_error(job, rk, "sent a %" PRIu32 "-byte frame and there is "
                       "not enough memory for it", rk->hdr.len);
        return false;
    }
    return true;
}

/* One read() per wake-up, so a chatty rank cannot starve the others. */
static void on_sock_readable(struct job *job, struct rank *rk)
{
    bool in_header = rk->hdr_got < sizeof rk->hdr;
    unsigned char *dst = in_header ? (unsigned char *)&rk->hdr + rk->hdr_got
                                   : rk->body + rk->body_got;
    size_t want = in_header ? sizeof rk->hdr - rk->hdr_got
                            : rk->hdr.len - rk->body_got;

    ssize_t n = read(rk->sock, dst, want);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        close_sock(rk);   /* left the protocol; its exit status still counts */
        return;
    }
    if (in_header) {
        rk->hdr_got += (size_t)n;
        if (rk->hdr_got < sizeof rk->hdr || !begin_body(job, rk))
            return;
    } else {
        rk->body_got += (size_t)n;
    }
    if (rk->body_got == rk->hdr.len)
        dispatch_frame(job, rk);
}

/* A fence can only complete if every rank fences. If one has exited and
 * closed its socket without joining the fence others are waiting in, they
 * would wait forever: stop the job instead. (The reaped *and* closed test
 * keeps this from firing while the rank's FENCE is still unread.) */
static void check_fence_stuck(struct job *job)
{
    if (job->stopping || job->nfenced == 0)
        return;
    for (int r = 0; r < job->opt.nranks; r++) {
        const struct rank *rk = &job->ranks[r];
        if (rk->reaped && rk->sock < 0 && !rk->fenced) {
            fprintf(stderr, PROG ": rank %d exited without entering fence "
                    "#%u (%d of %d ranks are waiting in it); stopping the "
                    "job\n", rk->id, job->fence_no, job->nfenced,
                    job->opt.nranks);
            fail_and_stop(job, EXIT_PROTOCOL);
            return;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* --tag-output                                                             */
/* ------------------------------------------------------------------------ */

/* Writes "[rank] line" to our stdout or stderr as one writev(), adding the
 * newline if the line has none (a split or unterminated last line). */
static void write_tagged(struct job *job, int rank, int s, const char *line,
                         size_t len)
{
    if (job->output_broken[s])
        return;
    char prefix[32];
    int plen = snprintf(prefix, sizeof prefix, "[%d] ", rank);
    struct iovec iov[3] = {
        { .iov_base = prefix, .iov_len = (size_t)plen },
        { .iov_base = (void *)line, .iov_len = len },
        { .iov_base = (void *)"\n", .iov_len = 1 },
    };
    int cnt = (len > 0 && line[len - 1] == '\n') ? 2 : 3;
    if (writev_all(s == OUT_STREAM ? STDOUT_FILENO : STDERR_FILENO, iov,
                   cnt) != 0)
        /* Like a closed pipe would for an untagged rank: the ranks' own
         * pipes are closed (build_pollset), so their writes fail too. */
        job->output_broken[s] = true;
}

/* Writes out the complete lines in the buffer; with `final` also the
 * unterminated rest. A full buffer without a newline is written as a line. */
static void emit_lines(struct job *job, struct rank *rk, int s, bool final)
{
    struct tagstream *ts = &rk->tag[s];
    size_t start = 0;
    const char *nl;

    if (!ts->buf)
        return;
    while ((nl = memchr(ts->buf + start, '\n', ts->len - start)) != NULL) {
        size_t end = (size_t)(nl - ts->buf) + 1;
        write_tagged(job, rk->id, s, ts->buf + start, end - start);
        start = end;
    }
    if (start < ts->len && (final || ts->len == TAG_LINE_MAX)) {
        write_tagged(job, rk->id, s, ts->buf + start, ts->len - start);
        start = ts->len;
    }
    memmove(ts->buf, ts->buf + start, ts->len - start);
    ts->len -= start;
}

static void close_stream(struct job *job, struct rank *rk, int s)
{
    struct tagstream *ts = &rk->tag[s];
    emit_lines(job, rk, s, true);
    close_fd(&ts->fd);
    free(ts->buf);
    ts->buf = NULL;
    ts->len = 0;
}

/* Reads once from a rank's output pipe. Returns true if it read something
 * (there may be more), false on EAGAIN or once the pipe is closed. */
static bool read_stream(struct job *job, struct rank *rk, int s)
{
    struct tagstream *ts = &rk->tag[s];
    if (!ts->buf && !(ts->buf = malloc(TAG_LINE_MAX))) {
        fprintf(stderr, PROG ": out of memory; dropping the output of rank "
                "%d\n", rk->id);
        close_fd(&ts->fd);
        return false;
    }
    ssize_t n = read(ts->fd, ts->buf + ts->len, TAG_LINE_MAX - ts->len);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return false;
    if (n <= 0) {
        close_stream(job, rk, s);   /* writes the unterminated last line */
        return false;
    }
    ts->len += (size_t)n;
    emit_lines(job, rk, s, false);
    return true;
}

/* After the last rank is reaped: what they wrote is already in the pipes.
 * Take it without waiting for EOF, which a leftover grandchild holding the
 * pipe could delay forever; the read bound (well over a full pipe) keeps such
 * a grandchild from keeping us here by writing without end. */
static void drain_streams(struct job *job)
{
    for (int r = 0; r < job->opt.nranks; r++) {
        struct rank *rk = &job->ranks[r];
        for (int s = 0; s < 2; s++) {
            for (int i = 0; i < 1024 && rk->tag[s].fd >= 0; i++)
                if (!read_stream(job, rk, s))
                    break;
            if (rk->tag[s].fd >= 0)
                close_stream(job, rk, s);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* The event loop                                                           */
/* ------------------------------------------------------------------------ */

static void add_pollfd(struct job *job, size_t *n, int fd, short events,
                       enum slot_kind kind, struct rank *rk)
{
    job->pfd[*n] = (struct pollfd){ .fd = fd, .events = events };
    job->slot[*n] = (struct slot){ .kind = kind, .rk = rk };
    (*n)++;
}

static size_t build_pollset(struct job *job)
{
    size_t n = 0;
    add_pollfd(job, &n, job->sigfd, POLLIN, SLOT_SIGNALS, NULL);
    for (int r = 0; r < job->opt.nranks; r++) {
        struct rank *rk = &job->ranks[r];
        if (rk->sock >= 0)
            add_pollfd(job, &n, rk->sock, POLLIN | (rk->out ? POLLOUT : 0),
                       SLOT_SOCK, rk);
        for (int s = 0; s < 2; s++) {
            if (rk->tag[s].fd < 0)
                continue;
            if (job->output_broken[s])
                close_stream(job, rk, s);   /* the rank now gets EPIPE */
            else
                add_pollfd(job, &n, rk->tag[s].fd, POLLIN,
                           s == OUT_STREAM ? SLOT_TAG_OUT : SLOT_TAG_ERR, rk);
        }
    }
    return n;
}

/* Handlers may close descriptors of later slots (stop_job() closes every
 * socket), hence the fd >= 0 checks. */
static void handle_event(struct job *job, const struct slot *slot,
                         short revents)
{
    struct rank *rk = slot->rk;
    switch (slot->kind) {
    case SLOT_SIGNALS:
        handle_signals(job);
        break;
    case SLOT_SOCK:
        if ((revents & POLLOUT) && rk->sock >= 0)
            flush_out(rk);
        if ((revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) &&
            rk->sock >= 0)
            on_sock_readable(job, rk);
        break;
    case SLOT_TAG_OUT:
    case SLOT_TAG_ERR: {
        int s = slot->kind == SLOT_TAG_OUT ? OUT_STREAM : ERR_STREAM;
        if (rk->tag[s].fd >= 0)
            read_stream(job, rk, s);
        break;
    }
    }
}

static int poll_timeout(const struct job *job)
{
    int64_t deadline = -1;
    if (!job->stopping)
        deadline = job->timeout_at;
    else if (!job->killed)
        deadline = job->kill_at;
    if (deadline < 0)
        return -1;
    int64_t left = deadline - now_ms();
    return left < 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}

static void check_deadlines(struct job *job)
{
    int64_t now = now_ms();
    if (!job->stopping && job->timeout_at >= 0 && now >= job->timeout_at) {
        fprintf(stderr, PROG ": job timed out after %g s; stopping it\n",
                job->opt.timeout_s);
        job->timed_out = true;
        stop_job(job);
    } else if (job->stopping && !job->killed && now >= job->kill_at) {
        fprintf(stderr, PROG ": %d rank(s) still running %d s after SIGTERM; "
                "sending SIGKILL\n", job->live, GRACE_MS / 1000);
        signal_ranks(job, SIGKILL);
        job->killed = true;
    }
}

static void run_job(struct job *job)
{
    while (job->live > 0) {
        check_fence_stuck(job);
        size_t n = build_pollset(job);
        int rc = poll(job->pfd, n, poll_timeout(job));
        if (rc < 0 && errno != EINTR) {
            /* Cannot wait any more: take the ranks down with us. */
            fprintf(stderr, PROG ": poll: %s; killing the job\n",
                    strerror(errno));
            job_fail(job, 1);
            signal_ranks(job, SIGKILL);
            return;
        }
        for (size_t i = 0; rc > 0 && i < n; i++)
            if (job->pfd[i].revents)
                handle_event(job, &job->slot[i], job->pfd[i].revents);
        check_deadlines(job);
    }
    drain_streams(job);
}

static int job_exit_status(const struct job *job)
{
    if (job->timed_out)
        return EXIT_TIMEOUT;
    return job->failed ? job->exit_status : 0;
}

static void job_free(struct job *job)
{
    for (int r = 0; job->ranks && r < job->opt.nranks; r++) {
        struct rank *rk = &job->ranks[r];
        close_sock(rk);
        free(rk->blob);
        for (int s = 0; s < 2; s++) {
            close_fd(&rk->tag[s].fd);
            free(rk->tag[s].buf);
        }
    }
    close_fd(&job->sigfd);
    free(job->ranks);
    free(job->pfd);
    free(job->slot);
}

int main(int argc, char **argv)
{
    struct options opt;
    int status = parse_args(argc, argv, &opt);
    if (status >= 0)
        return status;

    ensure_std_fds();
    struct job job;
    if (job_init(&job, &opt) != 0) {
        fprintf(stderr, PROG ": out of memory\n");
        job_free(&job);
        return 1;
    }
    if (setup_signals(&job) != 0) {
        fprintf(stderr, PROG ": cannot set up signal handling: %s\n",
                strerror(errno));
        job_free(&job);
        return 1;
    }
    raise_fd_limit(&job);

    start_ranks(&job);
    run_job(&job);
    status = job_exit_status(&job);
    job_free(&job);
    return status;
}
