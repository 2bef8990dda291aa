/*
 * Job state: the per-thread task counters, the snapshot a rank serves on
 * its unix socket, and the reader that asks every rank and prints.
 */
#include "obs/jobstate.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/eventfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/completion.h"
#include "base/config.h"
#include "base/log.h"
#include "core/admit.h"
#include "core/core.h"
#include "gcs/gcs.h"
#include "obs/jobgather.h"
#include "obs/jobremote.h"
#include "plasma/object_id.h"
#include "plasma/store.h"
#include "rayhpc.h"
#include "sched/pool.h"
#include "sched/resources.h"

#define RH_JS_MAX_OBJECTS 1000   /* listed per store; the rest counted */
#define RH_JS_MAX_RANKS   4096   /* read per job on one host */
#define RH_JS_TIMEOUT_MS  5000   /* a rank's answer after the gather's */
#define RH_JS_REQUEST_MS  1000   /* a client's request line */

_Thread_local rh_js_thread_t *rh_js_mine;

static struct {
    pthread_mutex_t  lock;       /* the list: new threads only */
    rh_js_thread_t  *threads;
    int              fd;         /* listening socket, -1: none */
    int              stop;       /* eventfd: the thread ends */
    int              timeout_ms; /* the gather's, for rayhpc-info */
    pthread_t        thread;
    int              running;
    char             path[256];
    char             dir[256];
} rh_js = { .lock = PTHREAD_MUTEX_INITIALIZER, .fd = -1, .stop = -1,
            .timeout_ms = RH_JOBGATHER_TIMEOUT_MS };

/* A thread's counters live as long as the process: the totals keep what
 * threads that ended counted. */
rh_js_thread_t *rh_js_attach(void)
{
    rh_js_thread_t *t = calloc(1, sizeof(*t));
    static rh_js_thread_t spare;   /* if calloc fails: shared, still safe
                                    * to read, only racy to count */

    if (t == NULL) {
        t = &spare;
    } else {
        pthread_mutex_lock(&rh_js.lock);
        t->next = rh_js.threads;
        rh_js.threads = t;
        pthread_mutex_unlock(&rh_js.lock);
    }
    rh_js_mine = t;
    return t;
}

void rh_js_totals(uint64_t out[RH_JS_COUNTERS])
{
    memset(out, 0, sizeof(uint64_t) * RH_JS_COUNTERS);
    pthread_mutex_lock(&rh_js.lock);
    for (rh_js_thread_t *t = rh_js.threads; t != NULL; t = t->next) {
        for (int i = 0; i < RH_JS_COUNTERS; i++) {
            out[i] += atomic_load_explicit(&t->n[i], memory_order_relaxed);
        }
    }
    pthread_mutex_unlock(&rh_js.lock);
}

/* a - b, as counters read one after the other may briefly disagree */
static uint64_t rh_js_diff(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

/* ---- the snapshot ------------------------------------------------------- */

static void rh_js_object(void *arg, const rh_store_object_info_t *o)
{
    char id[RH_OBJECT_ID_STRLEN];

    fprintf((FILE *)arg, "object %s owner %u size %llu refs %u state %s "
            "pid %d\n", rh_object_id_str(o->id, id),
            rh_object_id_owner(o->id), (unsigned long long)o->size, o->refs,
            o->pending ? "deleted" : o->sealed ? "sealed" : "created",
            (int)o->creator_pid);
}

void rh_jobstate_snapshot(FILE *f)
{
    uint64_t n[RH_JS_COUNTERS];
    rh_stats_t st;
    rh_store_stats_t ss;
    char res[512], total[512];
    rh_pool_t *pool = rh_core_pool();

    rh_js_totals(n);
    memset(&st, 0, sizeof(st));
    (void)rh_stats(&st);
    fprintf(f, "rank %d node %d nodes %d size %d pid %d job %s\n", rh_rank(),
            rh_node_id(), rh_num_nodes(), rh_size(), (int)getpid(),
            rh_core_job_id());
    rh_resources_format_total(total, sizeof(total));
    rh_resources_format(res, sizeof(res));
    if (!atomic_load_explicit(&rh_resources_active, memory_order_relaxed) &&
        pool != NULL) {
        /* The ledger counts nothing until some task asks for more than a
         * CPU: until then a running task holds one worker's CPU. */
        long left = (long)rh_pool_num_workers(pool) -
                    (long)rh_js_diff(n[RH_JS_STARTED], n[RH_JS_FINISHED]);
        const char *rest = strchr(res, ' ');
        char fixed[sizeof(res)];

        snprintf(fixed, sizeof(fixed), "CPU=%ld%s", left > 0 ? left : 0,
                 rest != NULL ? rest : "");
        memcpy(res, fixed, sizeof(res));
    }
    fprintf(f, "resources total %s free %s\n", total, res);
    fprintf(f, "tasks queued %llu running %llu waiting_deps %llu "
            "waiting_res %zu remote %llu run %llu forwarded %llu "
            "spilled %llu\n",
            (unsigned long long)rh_js_diff(n[RH_JS_QUEUED],
                                           n[RH_JS_STARTED]),
            (unsigned long long)rh_js_diff(n[RH_JS_STARTED],
                                           n[RH_JS_FINISHED]),
            (unsigned long long)rh_js_diff(n[RH_JS_CREATED], n[RH_JS_READY]),
            rh_resources_waiting(), (unsigned long long)st.tasks_remote,
            (unsigned long long)st.tasks_run,
            (unsigned long long)st.tasks_forwarded,
            (unsigned long long)st.tasks_spilled);
    fprintf(f, "pulls %llu bytes %llu\n", (unsigned long long)st.pulls,
            (unsigned long long)st.bytes_pulled);
    /* The node's store is shared: its first rank lists it. */
    if (rh_core_node_leader() == rh_rank() && rh_core_store() != NULL &&
        rh_store_stats(rh_core_store(), &ss) == RH_OK) {
        uint64_t all;

        fprintf(f, "store objects %llu bytes %llu capacity %llu used %llu\n",
                (unsigned long long)ss.objects,
                (unsigned long long)ss.object_bytes,
                (unsigned long long)ss.capacity,
                (unsigned long long)ss.used);
        fprintf(f, "spill objects %llu bytes %llu files %llu restores %llu "
                "evictions %llu fragmentation %.3f\n",
                (unsigned long long)ss.spilled_objects,
                (unsigned long long)ss.spilled_bytes,
                (unsigned long long)ss.spill_files,
                (unsigned long long)ss.restores,
                (unsigned long long)ss.evictions, ss.fragmentation);
        all = rh_store_foreach(rh_core_store(), RH_JS_MAX_OBJECTS,
                               rh_js_object, f);
        if (all > RH_JS_MAX_OBJECTS) {
            fprintf(f, "objects_more %llu\n",
                    (unsigned long long)(all - RH_JS_MAX_OBJECTS));
        }
    }
    rh_gcs_snapshot(f);
    fprintf(f, "end\n");
}

/* ---- serving ------------------------------------------------------------ */

int rh_jobstate_dir(const char *job_id, char *buf, size_t len)
{
    int n = snprintf(buf, len, "/tmp/rayhpc-%u/", (unsigned)getuid());
    size_t k = (size_t)n;

    /* The job id is "pid-host": kept to characters a path takes and cut
     * so that the socket's path fits sun_path. */
    for (const char *p = job_id; *p && k + 1 < len && k < 80; p++) {
        char c = *p;

        buf[k++] = (c == '/' || c == ' ' || c < 0x21 || c > 0x7e) ? '_' : c;
    }
    buf[k] = '\0';
    return (int)k;
}

/* Reads the client's request line: "rank" (this rank's snapshot) or
 * "job MS" (the whole job's, gathered within MS). -1: none came. */
static int rh_js_request(int c, int *timeout_ms)
{
    char line[64];
    size_t n = 0;

    while (n + 1 < sizeof(line)) {
        struct pollfd p = { c, POLLIN, 0 };
        ssize_t k;

        if (poll(&p, 1, RH_JS_REQUEST_MS) <= 0) {
            return -1;
        }
        k = recv(c, line + n, 1, 0);
        if (k <= 0) {
            return -1;
        }
        if (line[n] == '\n') {
            break;
        }
        n++;
    }
    line[n] = '\0';
    if (strcmp(line, "rank") == 0) {
        return 0;
    }
    if (sscanf(line, "job %d", timeout_ms) == 1) {
        return 1;
    }
    return -1;
}

static void rh_js_answer(int c)
{
    char *text = NULL;
    size_t len = 0, off = 0;
    int timeout_ms = 0;
    FILE *f;

    switch (rh_js_request(c, &timeout_ms)) {
    case 0:
        f = open_memstream(&text, &len);
        if (f != NULL) {
            rh_jobstate_snapshot(f);
            fclose(f);
        }
        break;
    case 1:
        text = rh_jobgather_run(timeout_ms, &len);
        break;
    default:
        break;   /* not a request of ours: closed unanswered */
    }
    while (text != NULL && off < len) {
        ssize_t w = send(c, text + off, len - off, MSG_NOSIGNAL);

        if (w <= 0) {
            break;
        }
        off += (size_t)w;
    }
    free(text);
}

/* Sleeps in poll() until a client connects, another node's request waits
 * (jobgather.h) or rh_jobstate_stop says to end. */
static void *rh_js_serve(void *arg)
{
    (void)arg;
    rh_core_runtime_thread();
    for (;;) {
        struct pollfd p[3] = { { rh_js.stop, POLLIN, 0 },
                               { rh_js.fd, POLLIN, 0 },
                               { rh_jobgather_fd(), POLLIN, 0 } };
        int c;

        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            return NULL;
        }
        if (p[0].revents != 0) {
            return NULL;   /* rh_jobstate_stop */
        }
        if (p[2].revents != 0) {
            rh_jobgather_serve();
        }
        if (p[1].revents == 0) {
            continue;
        }
        c = accept4(rh_js.fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN) {
                continue;
            }
            return NULL;
        }
        {
            /* A client that stops reading cannot keep this thread (and
             * rh_finalize, which joins it) waiting. */
            struct timeval tv = { RH_JS_TIMEOUT_MS / 1000, 0 };

            (void)setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        }
        rh_js_answer(c);
        close(c);
    }
}

void rh_jobstate_start(const char *job_id)
{
    struct sockaddr_un sa;
    struct stat st;
    char top[64];

    snprintf(top, sizeof(top), "/tmp/rayhpc-%u", (unsigned)getuid());
    rh_jobstate_dir(job_id, rh_js.dir, sizeof(rh_js.dir));
    if ((mkdir(top, 0700) != 0 && errno != EEXIST) ||
        (mkdir(rh_js.dir, 0700) != 0 && errno != EEXIST)) {
        rh_info("job state: cannot make %s: %s (rayhpc-info --job will not "
                "see this rank)", rh_js.dir, strerror(errno));
        return;
    }
    /* Another user's directory (or a link) in /tmp is not ours to serve
     * from. */
    if (lstat(top, &st) != 0 || !S_ISDIR(st.st_mode) ||
        st.st_uid != getuid()) {
        rh_info("job state: %s is not a directory of this user "
                "(rayhpc-info --job will not see this rank)", top);
        return;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if ((size_t)snprintf(rh_js.path, sizeof(rh_js.path), "%s/rank%d.sock",
                         rh_js.dir, rh_rank()) >= sizeof(sa.sun_path)) {
        rh_info("job state: %s is too long for a socket", rh_js.path);
        return;
    }
    memcpy(sa.sun_path, rh_js.path, strlen(rh_js.path) + 1);
    unlink(rh_js.path);   /* a rank of an earlier job of the same id */
    rh_js.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                      0);
    if (rh_js.stop < 0) {
        rh_js.stop = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    }
    rh_jobgather_set_serving(1);
    if (rh_js.fd < 0 || rh_js.stop < 0 || rh_jobgather_fd() < 0 ||
        bind(rh_js.fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(rh_js.fd, 16) != 0 ||
        pthread_create(&rh_js.thread, NULL, rh_js_serve, NULL) != 0) {
        rh_info("job state: cannot serve on %s: %s (rayhpc-info --job will "
                "not see this rank)", rh_js.path, strerror(errno));
        rh_jobgather_set_serving(0);
        if (rh_js.fd >= 0) {
            close(rh_js.fd);
            rh_js.fd = -1;
        }
        unlink(rh_js.path);
        return;
    }
    pthread_setname_np(rh_js.thread, "rayhpc-state");
    rh_js.running = 1;
}

void rh_jobstate_stop(void)
{
    if (!rh_js.running) {
        return;
    }
    {
        uint64_t one = 1;

        rh_jobgather_set_serving(0);
        if (write(rh_js.stop, &one, sizeof(one)) < 0) {
            rh_warn("job state: cannot stop its thread: %s",
                    strerror(errno));
        }
        pthread_join(rh_js.thread, NULL);
        if (read(rh_js.stop, &one, sizeof(one)) < 0) {
            /* nothing counted: the next start's thread does not stop */
        }
    }
    close(rh_js.fd);
    rh_js.fd = -1;
    rh_js.running = 0;
    unlink(rh_js.path);
    rmdir(rh_js.dir);   /* fails while other ranks are there: fine */
}

/* ---- reading ------------------------------------------------------------ */

typedef struct rh_js_rank {
    int   rank, node, nodes, size, pid;
    char  job[160];
    char *text;              /* the whole answer */
    int   cpu_total, cpu_free;
    char  total[256], free_[256];
    unsigned long long queued, running, waiting_deps, waiting_res, remote,
                       run, forwarded, spilled, pulls, pulled;
} rh_js_rank_t;

/* Asks n sockets at once (request sent to each, then every answer read
 * in one poll loop, so a rank that hangs costs the others nothing) until
 * deadline (rh_time_ns). texts[i]: the answer, or NULL with why[i] set;
 * refused[i] (may be NULL): nobody listens there, the rank is gone. */
static void rh_js_ask_many(char *const *paths, int n, const char *request,
                           uint64_t deadline, char **texts,
                           const char **why, int *refused)
{
    int *fd = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    size_t *len = calloc((size_t)(n > 0 ? n : 1), sizeof(size_t));
    size_t *cap = calloc((size_t)(n > 0 ? n : 1), sizeof(size_t));
    struct pollfd *p = calloc((size_t)(n > 0 ? n : 1), sizeof(*p));
    int open_ = 0;

    for (int i = 0; i < n; i++) {
        texts[i] = NULL;
        why[i] = "no memory to ask it";
        if (refused != NULL) {
            refused[i] = 0;
        }
    }
    if (fd == NULL || len == NULL || cap == NULL || p == NULL) {
        goto out;
    }
    for (int i = 0; i < n; i++) {
        struct sockaddr_un sa;
        size_t rl = strlen(request);

        fd[i] = -1;
        memset(&sa, 0, sizeof(sa));
        sa.sun_family = AF_UNIX;
        if (strlen(paths[i]) >= sizeof(sa.sun_path)) {
            why[i] = "its socket's path is too long";
            continue;
        }
        memcpy(sa.sun_path, paths[i], strlen(paths[i]) + 1);
        fd[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd[i] < 0) {
            why[i] = "no socket to ask it";
            continue;
        }
        if (connect(fd[i], (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            int gone = errno == ECONNREFUSED || errno == ENOENT;

            why[i] = gone ? "its socket refuses (the rank ended)" :
                            "its socket cannot be reached";
            if (refused != NULL) {
                refused[i] = gone;
            }
            close(fd[i]);
            fd[i] = -1;
            continue;
        }
        /* a few bytes into an empty socket buffer: never blocks */
        if (send(fd[i], request, rl, MSG_NOSIGNAL) != (ssize_t)rl) {
            why[i] = "the request could not be sent";
            close(fd[i]);
            fd[i] = -1;
            continue;
        }
        why[i] = "no answer in time";
        open_++;
    }
    while (open_ > 0) {
        uint64_t now = rh_time_ns();
        int k = 0;

        if (now >= deadline) {
            break;
        }
        for (int i = 0; i < n; i++) {
            p[i] = (struct pollfd){ fd[i], POLLIN, 0 };
        }
        k = poll(p, (nfds_t)n, (int)((deadline - now) / 1000000ull) + 1);
        if (k < 0 && errno != EINTR) {
            break;
        }
        for (int i = 0; i < n && k > 0; i++) {
            ssize_t got;

            if (fd[i] < 0 || p[i].revents == 0) {
                continue;
            }
            if (cap[i] - len[i] < 4096) {
                char *nb = realloc(texts[i], cap[i] + 65536);

                if (nb == NULL) {
                    got = -1;
                    goto ended;
                }
                texts[i] = nb;
                cap[i] += 65536;
            }
            got = recv(fd[i], texts[i] + len[i], cap[i] - len[i] - 1, 0);
            if (got > 0) {
                len[i] += (size_t)got;
                continue;
            }
ended:
            close(fd[i]);
            fd[i] = -1;
            open_--;
            if (texts[i] != NULL) {
                texts[i][len[i]] = '\0';
            }
            /* An answer is whole when its last record ends. */
            if (texts[i] == NULL || len[i] < 4 ||
                strcmp(texts[i] + len[i] - 4, "end\n") != 0) {
                why[i] = got < 0 ? "its answer was cut" :
                                   "it closed without an answer";
                free(texts[i]);
                texts[i] = NULL;
            }
        }
    }
    for (int i = 0; i < n; i++) {
        if (fd != NULL && fd[i] >= 0) {
            close(fd[i]);   /* still silent at the deadline */
            free(texts[i]);
            texts[i] = NULL;
        }
    }
out:
    free(fd);
    free(len);
    free(cap);
    free(p);
}

void rh_jobstate_ask_ranks(const int *ranks, int n, uint64_t deadline,
                           char **texts, const char **why)
{
    char **paths = calloc((size_t)(n > 0 ? n : 1), sizeof(char *));
    int ok = paths != NULL;

    for (int i = 0; ok && i < n; i++) {
        ok = asprintf(&paths[i], "%s/rank%d.sock", rh_js.dir, ranks[i]) > 0;
        if (!ok) {
            paths[i] = NULL;
        }
    }
    if (ok) {
        rh_js_ask_many(paths, n, "rank\n", deadline, texts, why, NULL);
    } else {
        for (int i = 0; i < n; i++) {
            texts[i] = NULL;
            why[i] = "no memory to ask it";
        }
    }
    for (int i = 0; paths != NULL && i < n; i++) {
        free(paths[i]);
    }
    free(paths);
}

static int rh_js_parse(char *text, rh_js_rank_t *r)
{
    char *line, *save = NULL, *copy = strdup(text);
    int ok = 0;

    if (copy == NULL) {
        return -1;
    }
    for (line = strtok_r(copy, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char *p;

        if (sscanf(line, "rank %d node %d nodes %d size %d pid %d job %159s",
                   &r->rank, &r->node, &r->nodes, &r->size, &r->pid,
                   r->job) == 6) {
            ok = 1;
        } else if (strncmp(line, "resources total ", 16) == 0 &&
                   (p = strstr(line, " free ")) != NULL) {
            *p = '\0';
            snprintf(r->total, sizeof(r->total), "%s", line + 16);
            snprintf(r->free_, sizeof(r->free_), "%s", p + 6);
            sscanf(r->total, "CPU=%d", &r->cpu_total);
            sscanf(r->free_, "CPU=%d", &r->cpu_free);
        } else if (strncmp(line, "tasks ", 6) == 0) {
            sscanf(line, "tasks queued %llu running %llu waiting_deps %llu "
                   "waiting_res %llu remote %llu run %llu forwarded %llu "
                   "spilled %llu", &r->queued, &r->running, &r->waiting_deps,
                   &r->waiting_res, &r->remote, &r->run, &r->forwarded,
                   &r->spilled);
        } else if (strncmp(line, "pulls ", 6) == 0) {
            sscanf(line, "pulls %llu bytes %llu", &r->pulls, &r->pulled);
        }
    }
    free(copy);
    return ok ? 0 : -1;
}

static int rh_js_by_rank(const void *a, const void *b)
{
    return ((const rh_js_rank_t *)a)->rank - ((const rh_js_rank_t *)b)->rank;
}

static void rh_js_size(unsigned long long b, char *buf, size_t len)
{
    static const char *const u[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    double v = (double)b;
    int i = 0;

    while (v >= 1024 && i < 4) {
        v /= 1024;
        i++;
    }
    snprintf(buf, len, i == 0 ? "%.0f %s" : "%.1f %s", v, u[i]);
}

static void rh_js_print_store(const rh_js_rank_t *r, FILE *out)
{
    char *copy = strdup(r->text), *save = NULL, *line;
    int header = 0;

    if (copy == NULL) {
        return;
    }
    for (line = strtok_r(copy, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        unsigned long long objs, bytes, cap, used, size, more, files, rest,
            evic;
        double frag;
        unsigned owner, refs;
        char id[64], state[16], b1[32], b2[32], b3[32];
        int pid;

        if (sscanf(line, "store objects %llu bytes %llu capacity %llu used "
                   "%llu", &objs, &bytes, &cap, &used) == 4) {
            rh_js_size(bytes, b1, sizeof(b1));
            rh_js_size(used, b2, sizeof(b2));
            rh_js_size(cap, b3, sizeof(b3));
            fprintf(out, "  node %d store: %llu objects, %s (%s of %s "
                    "used)\n", r->node, objs, b1, b2, b3);
        } else if (sscanf(line, "spill objects %llu bytes %llu files %llu "
                          "restores %llu evictions %llu fragmentation %lf",
                          &objs, &bytes, &files, &rest, &evic,
                          &frag) == 6) {
            rh_js_size(bytes, b1, sizeof(b1));
            fprintf(out, "  node %d spilled: %llu objects, %s in %llu "
                    "files; %llu restores, %llu copies evicted, "
                    "fragmentation %.1f%%\n", r->node, objs, b1, files, rest,
                    evic, frag * 100.0);
        } else if (sscanf(line, "object %63s owner %u size %llu refs %u "
                          "state %15s pid %d", id, &owner, &size, &refs,
                          state, &pid) == 6) {
            if (!header) {
                fprintf(out, "    %-24s %6s %12s %5s %-8s %s\n", "object",
                        "owner", "bytes", "refs", "state", "made by pid");
                header = 1;
            }
            fprintf(out, "    %-24s %6u %12llu %5u %-8s %d\n", id, owner,
                    size, refs, state, pid);
        } else if (sscanf(line, "objects_more %llu", &more) == 1) {
            fprintf(out, "    ... and %llu more\n", more);
        }
    }
    free(copy);
}

/* The GCS's part: the configuration as the rank with the newest epoch
 * sees it, then each rank's replicas (the lines of rh_gcs_snapshot). */
static void rh_js_print_gcs(const rh_js_rank_t *ranks, int n, FILE *out)
{
    const rh_js_rank_t *best = NULL;
    unsigned long long best_epoch = 0;

    for (int i = 0; i < n; i++) {
        const char *p = strstr(ranks[i].text, "\ngcs epoch ");
        unsigned long long e;

        if (p != NULL && sscanf(p, "\ngcs epoch %llu", &e) == 1 &&
            (best == NULL || e > best_epoch)) {
            best = &ranks[i];
            best_epoch = e;
        }
    }
    fprintf(out, "\nGCS\n");
    if (best == NULL) {
        fprintf(out, "  not running in the ranks that answered\n");
        return;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n; i++) {
            char *copy, *save = NULL, *line;

            if ((pass == 0 && &ranks[i] != best) ||
                (copy = strdup(ranks[i].text)) == NULL) {
                continue;
            }
            for (line = strtok_r(copy, "\n", &save); line != NULL;
                 line = strtok_r(NULL, "\n", &save)) {
                unsigned long long e, lsn, bytes, reads, subs;
                unsigned sh, rep, dead;
                char role[16];
                int k = 0;

                if (pass == 0 && sscanf(line, "gcs epoch %llu shards %u "
                                        "replicas %u dead %u", &e, &sh, &rep,
                                        &dead) == 4) {
                    fprintf(out, "  gcs epoch %llu: %u shards, chains of %u, "
                            "%u ranks dropped (as rank %d sees it)\n", e, sh,
                            rep, dead, best->rank);
                } else if (pass == 0 && strncmp(line, "gcs masters", 11) ==
                           0) {
                    fprintf(out, "  gcs masters:%s\n", line + 11);
                } else if (pass == 0 &&
                           sscanf(line, "gcs chain %u%n", &sh, &k) == 1) {
                    fprintf(out, "  gcs shard %u chain:%s\n", sh, line + k);
                } else if (pass == 1 &&
                           sscanf(line, "gcs replica %u %15s lsn %llu bytes "
                                  "%llu reads %llu subscriptions %llu%n", &sh,
                                  role, &lsn, &bytes, &reads, &subs, &k) == 6) {
                    fprintf(out, "  gcs rank %d shard %u: %s, lsn %llu, %llu "
                            "bytes, reads %llu, subscriptions %llu;%s\n",
                            ranks[i].rank, sh, role, lsn, bytes, reads, subs,
                            line + k);
                } else if (pass == 1 &&
                           sscanf(line, "gcs actors pending %llu alive %llu "
                                  "dead %llu", &lsn, &bytes, &reads) == 3) {
                    fprintf(out, "  gcs rank %d actor records: %llu "
                            "pending, %llu alive, %llu dead\n",
                            ranks[i].rank, lsn, bytes, reads);
                } else if (pass == 1 &&
                           sscanf(line, "gcs objects spilled %llu written "
                                  "%llu deleted %llu", &lsn, &bytes,
                                  &reads) == 3) {
                    fprintf(out, "  gcs rank %d object records: %llu "
                            "spilled now, %llu written, %llu deleted\n",
                            ranks[i].rank, lsn, bytes, reads);
                } else if (pass == 1 &&
                           sscanf(line, "gcs job state %15s written %llu of "
                                  "%llu", role, &lsn, &bytes) == 3) {
                    fprintf(out, "  gcs rank %d job record: %s, %llu of %llu "
                            "writes acknowledged\n", ranks[i].rank, role,
                            lsn, bytes);
                }
            }
            free(copy);
        }
    }
}

/* Cuts a gathered answer into its ranks' records ("rank ..." to "end")
 * and its unreachable lines (*unreach, malloc'd). Returns the records
 * parsed, at most RH_JS_MAX_RANKS. */
static int rh_js_split(const char *text, rh_js_rank_t *ranks, char **unreach,
                       size_t *unreach_len)
{
    FILE *u = open_memstream(unreach, unreach_len);
    const char *p = text, *start = NULL;
    int n = 0;

    while (p != NULL && *p != '\0') {
        const char *e = strchr(p, '\n');
        size_t k = e != NULL ? (size_t)(e - p) + 1 : strlen(p);

        if (strncmp(p, "rank ", 5) == 0 && start == NULL) {
            start = p;
        } else if (strncmp(p, "unreachable rank ", 17) == 0 &&
                   start == NULL) {
            if (u != NULL) {
                fwrite(p, 1, k, u);
            }
        } else if (strncmp(p, "end\n", 4) == 0 && start != NULL) {
            if (n < RH_JS_MAX_RANKS) {
                ranks[n].text = strndup(start, (size_t)(p + k - start));
                if (ranks[n].text != NULL &&
                    rh_js_parse(ranks[n].text, &ranks[n]) == 0) {
                    n++;
                } else {
                    free(ranks[n].text);
                    memset(&ranks[n], 0, sizeof(ranks[n]));
                }
            }
            start = NULL;
        }
        p += k;
    }
    if (u != NULL) {
        fclose(u);
    }
    return n;
}

int rh_jobstate_print_text(const char *text, FILE *out, int gcs_only)
{
    rh_js_rank_t *ranks = calloc(RH_JS_MAX_RANKS, sizeof(*ranks));
    char *unreach = NULL;
    size_t unreach_len = 0;
    int n, nun = 0;

    if (ranks == NULL) {
        return 0;
    }
    n = rh_js_split(text, ranks, &unreach, &unreach_len);
    for (const char *q = unreach; q != NULL && *q != '\0'; q++) {
        nun += *q == '\n';
    }
    if (n == 0) {
        free(unreach);
        free(ranks);
        return 0;
    }
    qsort(ranks, (size_t)n, sizeof(*ranks), rh_js_by_rank);
    fprintf(out, "Job %s: %d ranks on %d nodes; %d of them answered",
            ranks[0].job, ranks[0].size, ranks[0].nodes, n);
    if (nun > 0) {
        fprintf(out, ", %d unreachable", nun);
    }
    fprintf(out, "\n");
    if (nun > 0) {
        fprintf(out, "\nUnreachable\n");
        for (const char *q = unreach; *q != '\0';) {
            const char *e = strchr(q, '\n');
            int len = e != NULL ? (int)(e - q) : (int)strlen(q);

            fprintf(out, "  %.*s\n", len - 12, q + 12);
            q += len + (e != NULL);
        }
    }
    if (gcs_only) {
        rh_js_print_gcs(ranks, n, out);
        goto done;
    }
    fprintf(out, "\nNodes\n  %-5s %-16s %9s %8s\n", "node", "ranks",
            "CPU total", "CPU free");
    for (int node = 0; node < ranks[0].nodes; node++) {
        char list[64] = "";
        size_t k = 0;
        int tot = 0, fr = 0, any = 0;

        for (int i = 0; i < n; i++) {
            if (ranks[i].node == node) {
                if (k < sizeof(list)) {
                    k += (size_t)snprintf(list + k, sizeof(list) - k, "%s%d",
                                          any ? "," : "", ranks[i].rank);
                }
                tot += ranks[i].cpu_total;
                fr += ranks[i].cpu_free;
                any = 1;
            }
        }
        if (any) {
            fprintf(out, "  %-5d %-16s %9d %8d\n", node, list, tot, fr);
        } else {
            fprintf(out, "  %-5d %-16s\n", node, "(no answer)");
        }
    }
    fprintf(out, "\nRanks\n  %-5s %-5s %-8s %-22s %-22s\n", "rank", "node",
            "pid", "resources", "free");
    for (int i = 0; i < n; i++) {
        fprintf(out, "  %-5d %-5d %-8d %-22s %-22s\n", ranks[i].rank,
                ranks[i].node, ranks[i].pid, ranks[i].total, ranks[i].free_);
    }
    fprintf(out, "\nTasks\n  %-5s %7s %8s %13s %13s %7s %9s %10s %8s\n",
            "rank", "queued", "running", "waiting(args)", "waiting(res)",
            "remote", "run", "forwarded", "to global");
    for (int i = 0; i < n; i++) {
        const rh_js_rank_t *r = &ranks[i];

        fprintf(out, "  %-5d %7llu %8llu %13llu %13llu %7llu %9llu %10llu "
                "%8llu\n", r->rank, r->queued, r->running, r->waiting_deps,
                r->waiting_res, r->remote, r->run, r->forwarded, r->spilled);
    }
    fprintf(out, "\nPulls\n");
    for (int i = 0; i < n; i++) {
        char b[32];

        rh_js_size(ranks[i].pulled, b, sizeof(b));
        fprintf(out, "  rank %d: %llu objects, %s\n", ranks[i].rank,
                ranks[i].pulls, b);
    }
    fprintf(out, "\nObjects (each node's store)\n");
    for (int i = 0; i < n; i++) {
        rh_js_print_store(&ranks[i], out);
    }
    rh_js_print_gcs(ranks, n, out);
done:
    for (int i = 0; i < n; i++) {
        free(ranks[i].text);
    }
    free(ranks);
    free(unreach);
    fflush(out);
    return n;
}

static int rh_js_by_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

/* Asks one rank whose socket is in dir (the lowest that answers) for the
 * whole job, gathered across nodes, and prints the report, or only the
 * GCS's part. The sockets nobody listens on any more are removed. */
static int rh_js_print(const char *dir, FILE *out, int gcs_only)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int *socks = NULL, ns = 0, cap = 0, n = 0, stale = 0;
    char request[32];

    if (d == NULL) {
        return 0;
    }
    while ((de = readdir(d)) != NULL) {
        int r;

        if (sscanf(de->d_name, "rank%d.sock", &r) != 1) {
            continue;
        }
        if (ns == cap) {
            int *nb = realloc(socks, sizeof(int) * (size_t)(cap + 64));

            if (nb == NULL) {
                break;
            }
            socks = nb;
            cap += 64;
        }
        socks[ns++] = r;
    }
    closedir(d);
    if (ns > 0) {
        qsort(socks, (size_t)ns, sizeof(int), rh_js_by_int);
    }
    snprintf(request, sizeof(request), "job %d\n", rh_js.timeout_ms);
    for (int i = 0; i < ns && n == 0; i++) {
        char path[512], *text = NULL, *paths[1] = { path };
        const char *why;
        int refused;

        snprintf(path, sizeof(path), "%s/rank%d.sock", dir, socks[i]);
        rh_js_ask_many(paths, 1, request, rh_time_ns() +
                       (uint64_t)(rh_js.timeout_ms + RH_JS_TIMEOUT_MS) *
                       1000000ull, &text, &why, &refused);
        if (text != NULL) {
            n = rh_jobstate_print_text(text, out, gcs_only);
        } else if (refused) {
            unlink(path);   /* nobody listens: a rank that died */
            stale++;
        }
        free(text);
    }
    free(socks);
    if (n == 0 && stale > 0) {
        rmdir(dir);
    }
    return n;
}

void rh_jobstate_set_timeout(int timeout_ms)
{
    rh_js.timeout_ms = timeout_ms > 0 ? timeout_ms : RH_JOBGATHER_TIMEOUT_MS;
}

int rh_jobstate_print_gathered(FILE *out)
{
    size_t len = 0;
    char *text = rh_jobgather_run(rh_js.timeout_ms, &len);
    int n = text != NULL ? rh_jobstate_print_text(text, out, 0) : 0;

    free(text);
    return n;
}

int rh_jobstate_print(const char *dir, FILE *out)
{
    return rh_js_print(dir, out, 0);
}

int rh_jobstate_print_gcs(const char *dir, FILE *out)
{
    return rh_js_print(dir, out, 1);
}

static int rh_js_print_jobs(const char *job, FILE *out, FILE *err,
                            int gcs_only)
{
    char top[64], dir[512];
    DIR *d;
    struct dirent *de;
    int found = 0;

    /* rayhpc-info --contact FILE, or --remote: not this host's sockets */
    if (!rh_jobremote_local_allowed()) {
        return rh_jobremote_print_jobs(job, NULL, out, err, gcs_only);
    }
    snprintf(top, sizeof(top), "/tmp/rayhpc-%u", (unsigned)getuid());
    if (job != NULL) {
        rh_jobstate_dir(job, dir, sizeof(dir));
        if (rh_js_print(dir, out, gcs_only) > 0) {
            return 0;
        }
        /* No rank here: the job's contact record, if it has one. */
        snprintf(top, sizeof(top), "no rank of job %s answers on this host",
                 job);
        return rh_jobremote_print_jobs(job, top, out, err, gcs_only);
    }
    d = opendir(top);
    while (d != NULL && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }
        snprintf(dir, sizeof(dir), "%s/%s", top, de->d_name);
        if (found > 0) {
            fprintf(out, "\n");
        }
        found += rh_js_print(dir, out, gcs_only) > 0;
    }
    if (d != NULL) {
        closedir(d);
    }
    if (found == 0) {
        snprintf(dir, sizeof(dir), "no job of this user runs on this host "
                 "(none serves in %s)", top);
        return rh_jobremote_print_jobs(NULL, dir, out, err, gcs_only);
    }
    return 0;
}

int rh_jobstate_print_jobs(const char *job, FILE *out, FILE *err)
{
    return rh_js_print_jobs(job, out, err, 0);
}

int rh_jobstate_print_gcs_jobs(const char *job, FILE *out, FILE *err)
{
    return rh_js_print_jobs(job, out, err, 1);
}
