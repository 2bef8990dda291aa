#include "base/config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/status.h"

extern char **environ;

rh_config_t rh_cfg;

/* ---- parsers ----------------------------------------------------------- */

static int parse_enum(const rh_config_field_t *f, const char *value, void *dst,
                      char *err, size_t errlen)
{
    size_t n = 0;

    for (int i = 0; f->choices[i] != NULL; i++) {
        if (strcasecmp(value, f->choices[i]) == 0) {
            *(int *)dst = i;
            return 0;
        }
    }
    n += (size_t)snprintf(err, errlen, "expected one of:");
    for (int i = 0; f->choices[i] != NULL && n < errlen; i++) {
        n += (size_t)snprintf(err + n, errlen - n, " %s", f->choices[i]);
    }
    return -1;
}

static void print_enum(const rh_config_field_t *f, const void *src, char *buf,
                       size_t len)
{
    snprintf(buf, len, "%s", f->choices[*(const int *)src]);
}

/* Unsigned number with an optional unit suffix scaled by `units`. */
typedef struct { const char *suffix; uint64_t scale; } rh_unit_t;

static int parse_scaled(const rh_config_field_t *f, const char *value,
                        uint64_t *out, const rh_unit_t *units,
                        const char *what, char *err, size_t errlen)
{
    char *end;
    unsigned long long v;
    uint64_t scale = 0;

    errno = 0;
    while (isspace((unsigned char)*value)) {
        value++;
    }
    if (*value == '-' || !isdigit((unsigned char)*value)) {
        goto bad;
    }
    v = strtoull(value, &end, 10);
    if (errno != 0) {
        goto bad;
    }
    for (int i = 0; units[i].suffix != NULL; i++) {
        if (strcasecmp(end, units[i].suffix) == 0) {
            scale = units[i].scale;
            break;
        }
    }
    if (scale == 0 || (v != 0 && v > UINT64_MAX / scale)) {
        goto bad;
    }
    v *= scale;
    if (v < f->min || v > f->max) {
        snprintf(err, errlen, "%s out of range [%" PRIu64 ", %" PRIu64 "]",
                 what, f->min, f->max);
        return -1;
    }
    *out = v;
    return 0;
bad:
    snprintf(err, errlen, "expected %s", what);
    return -1;
}

static const rh_unit_t rh_size_units[] = {
    {"", 1}, {"b", 1}, {"k", 1ull << 10}, {"kb", 1ull << 10},
    {"m", 1ull << 20}, {"mb", 1ull << 20}, {"g", 1ull << 30},
    {"gb", 1ull << 30}, {"t", 1ull << 40}, {"tb", 1ull << 40}, {NULL, 0}
};

static const rh_unit_t rh_count_units[] = { {"", 1}, {NULL, 0} };

static const rh_unit_t rh_time_units[] = {   /* milliseconds */
    {"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {NULL, 0}
};

static int parse_size(const rh_config_field_t *f, const char *value, void *dst,
                      char *err, size_t errlen)
{
    return parse_scaled(f, value, dst, rh_size_units,
                        "a size in bytes with an optional K, M, G or T suffix",
                        err, errlen);
}

/* A size that must be a power of two (a ring's bytes). */
static int parse_size_pow2(const rh_config_field_t *f, const char *value,
                           void *dst, char *err, size_t errlen)
{
    uint64_t v;

    if (parse_size(f, value, &v, err, errlen) != 0) {
        return -1;
    }
    if ((v & (v - 1)) != 0) {
        snprintf(err, errlen, "a power of two (a size with an optional K, "
                 "M or G suffix)");
        return -1;
    }
    *(uint64_t *)dst = v;
    return 0;
}

static int parse_count(const rh_config_field_t *f, const char *value,
                       void *dst, char *err, size_t errlen)
{
    return parse_scaled(f, value, dst, rh_count_units,
                        "a non-negative integer", err, errlen);
}

static int parse_time(const rh_config_field_t *f, const char *value, void *dst,
                      char *err, size_t errlen)
{
    return parse_scaled(f, value, dst, rh_time_units,
                        "a duration in ms, or with an s or m suffix", err,
                        errlen);
}

static void print_size(const rh_config_field_t *f, const void *src, char *buf,
                       size_t len)
{
    uint64_t v = *(const uint64_t *)src;
    static const char sfx[] = "KMGT";
    int i = -1;

    (void)f;
    while (v >= 1024 && (v % 1024) == 0 && i < 3) {
        v /= 1024;
        i++;
    }
    if (i < 0) {
        snprintf(buf, len, "%" PRIu64, v);
    } else {
        snprintf(buf, len, "%" PRIu64 "%c", v, sfx[i]);
    }
}

static void print_u64(const rh_config_field_t *f, const void *src, char *buf,
                      size_t len)
{
    (void)f;
    snprintf(buf, len, "%" PRIu64, *(const uint64_t *)src);
}

static void print_time(const rh_config_field_t *f, const void *src, char *buf,
                       size_t len)
{
    (void)f;
    snprintf(buf, len, "%" PRIu64 "ms", *(const uint64_t *)src);
}

static int parse_string(const rh_config_field_t *f, const char *value,
                        void *dst, char *err, size_t errlen)
{
    size_t n = strlen(value);

    if (n >= f->max) {
        snprintf(err, errlen, "at most %" PRIu64 " characters",
                 f->max - 1);
        return -1;
    }
    memcpy(dst, value, n + 1);
    return 0;
}

static void print_string(const rh_config_field_t *f, const void *src,
                         char *buf, size_t len)
{
    (void)f;
    snprintf(buf, len, "%s", (const char *)src);
}

/* A fraction; min and max bound it in thousandths. */
static int parse_fraction(const rh_config_field_t *f, const char *value,
                          void *dst, char *err, size_t errlen)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(value, &end);
    if (end == value || *end != '\0' || errno != 0 ||
        !(v * 1000 >= (double)f->min && v * 1000 <= (double)f->max)) {
        snprintf(err, errlen, "a fraction from %g to %g",
                 (double)f->min / 1000, (double)f->max / 1000);
        return -1;
    }
    *(double *)dst = v;
    return 0;
}

static void print_fraction(const rh_config_field_t *f, const void *src,
                           char *buf, size_t len)
{
    (void)f;
    snprintf(buf, len, "%g", *(const double *)src);
}

static const rh_config_type_t rh_type_fraction = {"fraction",
                                                  parse_fraction,
                                                  print_fraction};
static const rh_config_type_t rh_type_enum   = {"enum", parse_enum,
                                                print_enum};
static const rh_config_type_t rh_type_size   = {"size", parse_size,
                                                print_size};
static const rh_config_type_t rh_type_size_pow2 = {"size",
                                                   parse_size_pow2,
                                                   print_size};
static const rh_config_type_t rh_type_count  = {"count", parse_count,
                                                print_u64};
static const rh_config_type_t rh_type_time   = {"time", parse_time,
                                                print_time};
static const rh_config_type_t rh_type_string = {"string", parse_string,
                                                print_string};

/* ---- the table --------------------------------------------------------- */

static const char *const rh_log_level_names[] = {
    "error", "warn", "info", "debug", "trace", NULL
};
static const char *const rh_bootstrap_names[] = {
    "auto", "pmix", "mpi", "local", "singleton", NULL
};
static const char *const rh_pmix_leave_names[] = {
    "auto", "start", "end", NULL
};
static const char *const rh_progress_names[] = {
    "polling", "adaptive", "blocking", NULL
};
static const char *const rh_hugepages_names[] = {
    "auto", "on", "off", NULL
};
static const char *const rh_connect_all_names[] = {
    "auto", "on", "off", NULL
};

static const char *const rh_spill_direct_names[] = {
    "auto", "off", NULL
};

#define RH_OFF(_f) offsetof(rh_config_t, _f)

const rh_config_field_t rh_config_table[] = {
    {"LOG_LEVEL", "warn",
     "Least severe log lines printed: error, warn, info, debug or trace",
     RH_OFF(log_level), &rh_type_enum, rh_log_level_names, 0, 0},
    {"BOOTSTRAP", "auto",
     "How ranks find each other: auto (from the environment), pmix, mpi, "
     "local (rayhpc-run) or singleton",
     RH_OFF(bootstrap), &rh_type_enum, rh_bootstrap_names, 0, 0},
    {"NODE_ID", "",
     "Node identity of this rank (default: the host name); ranks with "
     "different ids act as separate nodes even on one host",
     RH_OFF(node_id), &rh_type_string, NULL, 0,
     sizeof(((rh_config_t *)0)->node_id)},
    {"PROGRESS", "adaptive",
     "Progress thread: polling (spin), adaptive (spin, then sleep on the "
     "network's event fd) or blocking (always sleep)",
     RH_OFF(progress), &rh_type_enum, rh_progress_names, 0, 0},
    {"PROGRESS_SPIN", "20000",
     "Idle polls before the adaptive progress thread goes to sleep",
     RH_OFF(progress_spin), &rh_type_count, NULL, 1, 1000000000},
    {"PEER_CHECK", "100ms",
     "How often the liveness of ranks on the same host is checked",
     RH_OFF(peer_check_ms), &rh_type_time, NULL, 1, 3600000},
    {"KEEPALIVE", "1s",
     "UCX keepalive interval that detects dead ranks on other hosts "
     "(off when every rank is on one host, where deaths are seen by pid)",
     RH_OFF(keepalive_ms), &rh_type_time, NULL, 1, 3600000},
    {"PMIX_LEAVE", "auto",
     "When a rank started through PMIx leaves it: start (right after "
     "start-up: under srun a rank's death then ends no step, but MPI can "
     "no longer start after rh_init), end (in rh_finalize) or auto (start "
     "under Slurm, end elsewhere)",
     RH_OFF(pmix_leave), &rh_type_enum, rh_pmix_leave_names, 0, 0},
    {"RNDV_THRESH", "64K",
     "Messages with a payload of this size or more go zero copy "
     "(rendezvous); smaller ones are sent eagerly",
     RH_OFF(rndv_thresh), &rh_type_size, NULL, 0, UINT64_MAX},
    {"FINALIZE_TIMEOUT", "60s",
     "How long the end of rh_finalize waits for the ranks' last sends to "
     "flush before closing without them (ranks wait for each other to "
     "arrive in rh_finalize as long as they live; a rank that does not "
     "hear rank 0 end the job within it returns RH_ERR_TIMEOUT), and for "
     "the rank's other threads still waiting in a call to leave it",
     RH_OFF(finalize_timeout_ms), &rh_type_time, NULL, 1, 86400000},
    {"STORE_SIZE", "256M",
     "Bytes of each node's shared-memory object store, pre-faulted at start "
     "by the node's first rank (the node's other ranks wait for it as long "
     "as it lives, with a warning past 10 s plus 15 s a GiB). Its object "
     "table has a slot per 8 KiB of it (a power of two, 1,024 at least) "
     "and holds objects in 7 of each 8 slots: 28,672 objects at the "
     "default, past which puts fail with RH_ERR_STORE_FULL; many small "
     "objects need a larger store",
     RH_OFF(store_size), &rh_type_size, NULL, 1u << 20, UINT64_MAX},
    {"HUGEPAGES", "auto",
     "Huge pages for the object store: auto (when the system has them), on "
     "(fail without) or off",
     RH_OFF(hugepages), &rh_type_enum, rh_hugepages_names, 0, 0},
    {"NUM_WORKERS", "0",
     "Worker threads of each rank; 0: the node's cores shared out among "
     "its ranks",
     RH_OFF(num_workers), &rh_type_count, NULL, 0, 4096},
    {"HELP_DEPTH", "1024",
     "Tasks a waiting task may run nested on its worker's stack (its own "
     "children); past that, or with none of them here, its thread parks and "
     "a spare thread takes over its core. 0: always park",
     RH_OFF(help_depth), &rh_type_count, NULL, 0, 65536},
    {"RESOURCES", "",
     "Custom resources each rank offers to tasks, as name=amount,... "
     "(tasks ask for them with rh_task_params_t.resources); not CPU, "
     "which is the rank's workers (NUM_WORKERS)",
     RH_OFF(resources), &rh_type_string, NULL, 0,
     sizeof(((rh_config_t *)0)->resources)},
    {"INLINE_MAX", "64K",
     "Objects smaller than this travel inside the message that asks for "
     "them (task arguments, returns, pulls); larger ones are pulled by RDMA",
     RH_OFF(inline_max), &rh_type_size, NULL, 0, 1u << 30},
    {"PULL_CHUNK", "4M",
     "Bytes per RDMA read when pulling an object from another node; two "
     "reads per copy read from are in flight",
     RH_OFF(pull_chunk), &rh_type_size, NULL, 4096, 1ull << 32},
    {"SPILLBACK_THRESHOLD", "8",
     "Tasks waiting on a rank per worker before new DEFAULT tasks go to "
     "the global scheduler instead of running there",
     RH_OFF(spillback_threshold), &rh_type_count, NULL, 0, 1u << 20},
    {"HEARTBEAT_MS", "10ms",
     "How often each rank reports its load to the global scheduler",
     RH_OFF(heartbeat_ms), &rh_type_time, NULL, 1, 60000},
    {"SEND_QUEUE_MAX", "4096",
     "Messages that threads other than the progress thread may have on "
     "their way at once; past it, submitters of tasks for other ranks wait "
     "until half are done (or get RH_ERR_BUSY with RH_TASK_FLAG_NONBLOCK)",
     RH_OFF(send_queue_max), &rh_type_count, NULL, 16, 1u << 24},
    {"REMOTE_TASKS_MAX", "65536",
     "Tasks a rank may have running on other ranks or waiting for the "
     "global scheduler; a submitter past it waits (or gets RH_ERR_BUSY "
     "with RH_TASK_FLAG_NONBLOCK)",
     RH_OFF(remote_tasks_max), &rh_type_count, NULL, 1, 1u << 30},
    {"SPILL_DIR", "",
     "Directory where each node's store spills objects when it fills (a "
     "directory per job and node is made in it, removed at exit); empty: "
     "TMPDIR or /tmp; off: no spilling (pulled copies are still evicted)",
     RH_OFF(spill_dir), &rh_type_string, NULL, 0,
     sizeof(((rh_config_t *)0)->spill_dir)},
    {"SPILL_THRESHOLD", "0.8",
     "Fraction of the store in use past which objects no one reads are "
     "spilled to disk, least recently used first",
     RH_OFF(spill_threshold), &rh_type_fraction, NULL, 10, 1000},
    {"SPILL_MAX", "0",
     "Bytes each node's spill files may take; past it a put that does not "
     "fit fails with RH_ERR_STORE_FULL (0: as much as the disk holds)",
     RH_OFF(spill_max), &rh_type_size, NULL, 0, UINT64_MAX},
    {"SPILL_DIRECT", "auto",
     "auto: half of a spill round's writers write objects of 1 MiB or "
     "more with O_DIRECT where the file system takes it (no CPU copy; "
     "their restore reads the disk), the others through the page cache; "
     "off: all buffered, so that the page cache may keep what was spilled",
     RH_OFF(spill_direct), &rh_type_enum, rh_spill_direct_names, 0, 0},
    {"PUT_TIMEOUT_MS", "10s",
     "How long rh_put, rh_put_create, task returns, the read-back of a "
     "spilled object and the pull of another node's object (a get, a "
     "task's argument) wait for room while the objects that fill the store "
     "are being read, before RH_ERR_STORE_FULL; a get whose own timeout is "
     "shorter waits that long",
     RH_OFF(put_timeout_ms), &rh_type_time, NULL, 0, 86400000},
    {"LINEAGE_MAX_BYTES", "64M",
     "Bytes of task specs each rank keeps as lineage, to rebuild the objects "
     "its tasks returned when every copy dies; past it the oldest go first "
     "and their objects become unrecoverable (0: keep none once a task "
     "answered)",
     RH_OFF(lineage_max_bytes), &rh_type_size, NULL, 0, 1ull << 40},
    {"RETRY_BACKOFF", "10ms",
     "First wait before a task runs again after its rank died; each retry "
     "of the same task waits twice as long (up to 1 s), with jitter",
     RH_OFF(retry_backoff_ms), &rh_type_time, NULL, 0, 60000},
    {"FAULT_SENDS", "0",
     "For tests only: every Nth message this rank sends fails before it "
     "reaches UCX, as if the network lost it (0: none)",
     RH_OFF(fault_sends), &rh_type_count, NULL, 0, 1u << 30},
    {"TIMELINE", "",
     "File for a Chrome/Perfetto trace of the job (tasks, actor calls, "
     "waits, pulls, scheduler decisions), written at rh_finalize; empty: "
     "no trace",
     RH_OFF(timeline), &rh_type_string, NULL, 0,
     sizeof(((rh_config_t *)0)->timeline)},
    {"SUMMARY", "0",
     "1: rank 0 prints the job's state (nodes, ranks, resources, tasks, "
     "objects in each store) at rh_finalize, as rayhpc-info --job does",
     RH_OFF(summary), &rh_type_count, NULL, 0, 1},
    {"GPU_CHUNK", "4M",
     "Bytes per chunk when a device object is staged through pinned "
     "buffers (the store could not be page-locked); four are in flight",
     RH_OFF(gpu_chunk), &rh_type_size, NULL, 4096, 1u << 30},
    {"GCS_SHARDS", "0",
     "Shards of the control store (GCS), each a chain of ranks; 0: one per "
     "node",
     RH_OFF(gcs_shards), &rh_type_count, NULL, 0, 1u << 16},
    {"GCS_REPLICAS", "3",
     "Ranks in each GCS shard's chain (capped by the ranks of the job; "
     "ranks of distinct nodes first): a shard survives the death of all "
     "but one of them",
     RH_OFF(gcs_replicas), &rh_type_count, NULL, 1, 64},
    {"GCS_DUMP", "0",
     "1: each rank prints the GCS's shards, chains, epoch and its table "
     "sizes to stderr at rh_finalize",
     RH_OFF(gcs_dump), &rh_type_count, NULL, 0, 1},
    {"FAILURE_TIMEOUT_MS", "5s",
     "A rank the GCS masters have not heard from for this long is taken for "
     "dead and dropped from the GCS chains (UCX errors and dead processes "
     "on the same host are seen at once)",
     RH_OFF(failure_timeout_ms), &rh_type_time, NULL, 20, 3600000},
    {"RX_WATCH", "1",
     "1: after a rank of this host dies, the others probe each other, and a "
     "rank that hears none of them for twice FAILURE_TIMEOUT_MS, 10 s at "
     "least (its "
     "shared-memory receive queue stalled by a rank killed inside a send) "
     "ends itself, saying why, so that the job goes on without it; 0: it "
     "hangs instead",
     RH_OFF(rx_watch), &rh_type_count, NULL, 0, 1},
    {"DRIVE_US", "50",
     "Microseconds a thread that is not a worker drives the network itself "
     "while it waits for a result (rh_get, rh_wait, ...), before it sleeps "
     "until woken; 0: it sleeps at once and the progress thread receives "
     "for it",
     RH_OFF(drive_us), &rh_type_count, NULL, 0, 1000000},
    {"COALESCE", "1",
     "1: small messages that queue up for one rank leave as one message "
     "once the progress thread drains its queue; 0: each alone",
     RH_OFF(coalesce), &rh_type_count, NULL, 0, 1},
    {"JOB_CONTACT_DIR", "",
     "Directory, shared by the nodes, where rank 0 writes the job's contact "
     "record (the UCX addresses of one rank per node), for rayhpc-info --job "
     "on a host with none of the job's ranks; removed at rh_finalize. "
     "Empty: $HOME/.rayhpc/jobs; off: no record",
     RH_OFF(job_contact_dir), &rh_type_string, NULL, 0,
     sizeof(((rh_config_t *)0)->job_contact_dir)},
    {"SHM_RING", "1",
     "1: active messages between ranks of one host go through a ring per "
     "sender in shared memory (a rank killed in the middle of a send then "
     "holds up only its own ring), unless UCX_TLS leaves shared memory out; "
     "0: through UCX's shared-memory transport",
     RH_OFF(shm_ring), &rh_type_count, NULL, 0, 1},
    {"CONNECT_ALL", "auto",
     "on: rh_init connects to every rank and waits (up to "
     "FAILURE_TIMEOUT_MS) until each connection is up, so that none is "
     "made later with a rank that may die meanwhile, nor by a message "
     "handler (UCX before 1.14 aborts or crashes a rank then, over TCP); "
     "off: connections are made on first use; auto: "
     "on with UCX before 1.14 in jobs of up to 1024 ranks (a connection "
     "per pair of ranks at start-up), off otherwise",
     RH_OFF(connect_all), &rh_type_enum, rh_connect_all_names, 0, 0},
    {"SHM_RING_BYTES", "256K",
     "Bytes of each same-host ring (a power of two, 4K at least; a message "
     "of up to a quarter of it goes in one piece)",
     RH_OFF(shm_ring_bytes), &rh_type_size_pow2, NULL, 4096, 1ull << 31},
    {NULL, NULL, NULL, 0, NULL, NULL, 0, 0}
};

/* Settings every rank of a job needs the same: the same-host rings' layout
 * and the GCS chains each rank computes on its own. */
static const char *const rh_config_job_wide_names[] = {
    "GCS_SHARDS", "GCS_REPLICAS", "SHM_RING", "SHM_RING_BYTES", NULL
};

static int rh_config_is_job_wide(const rh_config_field_t *f)
{
    for (int i = 0; rh_config_job_wide_names[i] != NULL; i++) {
        if (strcmp(rh_config_job_wide_names[i], f->name) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Variables under this prefix are ours but not settings: rayhpc-run sets
 * them for the ranks it starts (transport/local_proto.h). */
#define RH_CONFIG_RESERVED_PREFIX RH_CONFIG_PREFIX "LOCAL_"

/* ---- operations -------------------------------------------------------- */

static const rh_config_field_t *rh_config_find(const char *name)
{
    for (const rh_config_field_t *f = rh_config_table; f->name; f++) {
        if (strcasecmp(f->name, name) == 0) {
            return f;
        }
    }
    return NULL;
}

static rh_status_t rh_config_apply(rh_config_t *cfg, const rh_config_field_t *f,
                                   const char *value)
{
    char err[256];

    if (f->type->parse(f, value, (char *)cfg + f->offset, err, sizeof(err))) {
        return rh_error_set(RH_ERR_CONFIG, "bad value '%s' for "
                            RH_CONFIG_PREFIX "%s: %s", value, f->name, err);
    }
    return RH_OK;
}

void rh_config_defaults(rh_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (const rh_config_field_t *f = rh_config_table; f->name; f++) {
        /* Defaults are ours: a bad one is a bug caught by the unit tests. */
        (void)rh_config_apply(cfg, f, f->dflt);
    }
}

rh_status_t rh_config_set(rh_config_t *cfg, const char *name,
                          const char *value)
{
    const rh_config_field_t *f = rh_config_find(name);

    if (f == NULL) {
        return rh_error_set(RH_ERR_CONFIG, "no setting named %s", name);
    }
    return rh_config_apply(cfg, f, value);
}

rh_status_t rh_config_load_env(rh_config_t *cfg)
{
    char var[128];

    for (const rh_config_field_t *f = rh_config_table; f->name; f++) {
        const char *value;
        rh_status_t status;

        snprintf(var, sizeof(var), RH_CONFIG_PREFIX "%s", f->name);
        value = getenv(var);
        if (value == NULL) {
            continue;
        }
        status = rh_config_apply(cfg, f, value);
        if (status != RH_OK) {
            return status;
        }
    }
    return RH_OK;
}

/* Edit distance (insert, delete, substitute, swap of neighbours), small
 * strings only: setting names are short. */
static size_t rh_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t d[64][64];

    if (la >= 64 || lb >= 64) {
        return SIZE_MAX;
    }
    for (size_t i = 0; i <= la; i++) {
        d[i][0] = i;
    }
    for (size_t j = 0; j <= lb; j++) {
        d[0][j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = toupper((unsigned char)a[i - 1]) !=
                          toupper((unsigned char)b[j - 1]);
            size_t best = d[i - 1][j - 1] + cost;

            if (d[i - 1][j] + 1 < best) {
                best = d[i - 1][j] + 1;
            }
            if (d[i][j - 1] + 1 < best) {
                best = d[i][j - 1] + 1;
            }
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
                a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best) {
                best = d[i - 2][j - 2] + 1;
            }
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

const char *rh_config_closest(const char *name)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX;

    for (const rh_config_field_t *f = rh_config_table; f->name; f++) {
        size_t d = rh_edit_distance(name, f->name);

        if (d < best_d) {
            best_d = d;
            best = f->name;
        }
    }
    /* A likely typo: a few edits, and not most of the word. */
    if (best == NULL || best_d > 3 || best_d * 2 > strlen(best)) {
        return NULL;
    }
    return best;
}

static int rh_config_is_reserved(const char *var)
{
    return strncmp(var, RH_CONFIG_RESERVED_PREFIX,
                   strlen(RH_CONFIG_RESERVED_PREFIX)) == 0;
}

int rh_config_warn_unknown_env(void)
{
    const size_t plen = strlen(RH_CONFIG_PREFIX);
    int unknown = 0;

    for (char **env = environ; env && *env; env++) {
        char var[128];
        const char *eq = strchr(*env, '=');
        size_t len = eq ? (size_t)(eq - *env) : strlen(*env);
        const char *suggestion;

        if (strncmp(*env, RH_CONFIG_PREFIX, plen) != 0 || len >= sizeof(var)) {
            continue;
        }
        memcpy(var, *env, len);
        var[len] = '\0';
        if (rh_config_find(var + plen) != NULL || rh_config_is_reserved(var)) {
            continue;
        }
        unknown++;
        suggestion = rh_config_closest(var + plen);
        if (suggestion != NULL) {
            rh_warn("%s is not a setting; did you mean " RH_CONFIG_PREFIX
                    "%s? (rayhpc-info lists them all)", var, suggestion);
        } else {
            rh_warn("%s is not a setting (rayhpc-info lists them all)", var);
        }
    }
    return unknown;
}

void rh_config_format(const rh_config_t *cfg, const rh_config_field_t *f,
                      char *buf, size_t len)
{
    f->type->print(f, (const char *)cfg + f->offset, buf, len);
}

size_t rh_config_job_wide(const rh_config_t *cfg, char *buf, size_t len)
{
    size_t n = 0;

    if (len > 0) {
        buf[0] = '\0';
    }
    for (const rh_config_field_t *f = rh_config_table; f->name; f++) {
        char value[160];
        int k;

        if (!rh_config_is_job_wide(f)) {
            continue;
        }
        rh_config_format(cfg, f, value, sizeof(value));
        k = snprintf(n < len ? buf + n : NULL, n < len ? len - n : 0,
                     "%s=%s\n", f->name, value);
        n += k > 0 ? (size_t)k : 0;
    }
    return n;
}

/* The value of name in a text of rh_config_job_wide, into value. */
static void rh_config_job_value(const char *text, const char *name,
                                char *value, size_t len)
{
    size_t nlen = strlen(name);

    for (const char *line = text; *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t llen = end != NULL ? (size_t)(end - line) : strlen(line);

        if (llen > nlen && strncmp(line, name, nlen) == 0 &&
            line[nlen] == '=') {
            snprintf(value, len, "%.*s", (int)(llen - nlen - 1),
                     line + nlen + 1);
            return;
        }
        line += llen + (end != NULL);
    }
    snprintf(value, len, "unset");
}

int rh_config_job_wide_diff(const char *mine, const char *theirs,
                            char *name, size_t name_len, char *my_value,
                            char *their_value, size_t value_len)
{
    for (const rh_config_field_t *f = rh_config_table; f->name; f++) {
        if (!rh_config_is_job_wide(f)) {
            continue;
        }
        rh_config_job_value(mine, f->name, my_value, value_len);
        rh_config_job_value(theirs, f->name, their_value, value_len);
        if (strcmp(my_value, their_value) != 0) {
            snprintf(name, name_len, "%s%s", RH_CONFIG_PREFIX, f->name);
            return 1;
        }
    }
    return 0;
}

void rh_config_print(const rh_config_t *cfg, FILE *out)
{
    for (const rh_config_field_t *f = rh_config_table; f->name; f++) {
        char value[160];

        rh_config_format(cfg, f, value, sizeof(value));
        fprintf(out, "%s%s=%s\n    %s%s (%s, default '%s')\n",
                RH_CONFIG_PREFIX, f->name, value, f->doc,
                rh_config_is_job_wide(f) ? ". Every rank of a job needs "
                "the same value: rh_init fails on every rank otherwise, "
                "naming it" : "", f->type->name, f->dflt);
    }
}
