/*
 * rh_init / rh_finalize: settings, bootstrap, the start-up exchange, and the
 * collective end of the job.
 *
 * Start-up: read settings, join the bootstrap, open UCX, publish one blob
 * (pid, host, node identity, worker address, hwloc summary), derive the node
 * numbering from everybody's blobs, start the progress thread.
 *
 * End, in two rounds through rank 0. Arrival: every rank tells rank 0 it
 * reached rh_finalize and serves tasks until rank 0, once every live rank
 * has arrived, says go. Then each rank stops its workers and flushes its
 * sends while its progress thread still serves the others, and tells rank 0
 * it is done; once all are, rank 0 says go again and every rank closes its
 * endpoints and tears down. No rank leaves while another may still need its
 * answer (a peer's wire-up that waited for one stalled the flush for the
 * whole finalize timeout). Dead ranks are skipped on both sides, so a
 * failure never hangs the end.
 */
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/completion.h"
#include "base/config.h"
#include "base/hash.h"
#include "base/hashmap.h"
#include "base/log.h"
#include "base/status.h"
#include "core/borrow.h"
#include "core/core.h"
#include "core/job_record.h"
#include "core/nodetab.h"
#include "core/object_record.h"
#include "core/directory.h"
#include "core/pgroup.h"
#include "core/placement.h"
#include "core/pull.h"
#include "core/future.h"
#include "core/lineage.h"
#include "core/registry.h"
#include "gcs/gcs.h"
#include "core/actor.h"
#include "core/task_internal.h"
#include "obs/jobcontact.h"
#include "obs/jobgather.h"
#include "obs/jobstate.h"
#include "obs/timeline.h"
#include "gpu/gpu.h"
#include "plasma/store.h"
#include "sched/pool.h"
#include "sched/resources.h"
#include "sched/topology.h"
#include "transport/am.h"
#include "transport/blob.h"
#include "transport/rma.h"
#include "transport/bootstrap.h"
#include "transport/shmlink.h"
#include "transport/transport.h"

#define RH_CORE_FIN_ROUNDS 2

typedef struct rh_core {
    int             initialized;
    rh_bootstrap_t  bs;
    int             rank, size;
    int             node, num_nodes;
    int            *node_of_rank;
    int             node_leader;     /* lowest rank of this node */
    int             ranks_on_node;
    int             ranks_on_host, host_share;   /* this rank's index there */
    char            job_id[160];     /* rank 0's host and pid */
    rh_store_t     *store;
    rh_pool_t      *pool;
    _Atomic int     closing;         /* refuse new work (progress thread) */
    /* finalize protocol: round 0 arrival, round 1 done flushing */
    uint8_t        *fin_seen;        /* rank 0: rounds each rank reached */
    int             fin_waiting;     /* rank 0 waits for round - 1 */
    rh_completion_t fin_all[RH_CORE_FIN_ROUNDS]; /* rank 0: all live came */
    rh_completion_t fin_go[RH_CORE_FIN_ROUNDS];  /* others: rank 0 said go */
    _Atomic int     fin_flushed;     /* others: reported the last round */
    rh_jc_t         contact;         /* rank 0: the job's contact record */
} rh_core_t;

static rh_core_t rh_core = { .rank = -1 };

int rh_rank(void) { return rh_core.rank; }
int rh_size(void) { return rh_core.size; }
int rh_node_id(void) { return rh_core.node; }
const char *rh_core_job_id(void) { return rh_core.job_id; }
int rh_core_node_leader(void) { return rh_core.node_leader; }
int rh_num_nodes(void) { return rh_core.num_nodes; }
int rh_core_initialized(void) { return rh_core.initialized; }
rh_store_t *rh_core_store(void) { return rh_core.store; }
rh_pool_t *rh_core_pool(void) { return rh_core.pool; }
int rh_core_closing(void)
{
    return atomic_load_explicit(&rh_core.closing, memory_order_relaxed);
}

const char *rh_version(void)
{
    return PACKAGE_VERSION;
}

int rh_rank_alive(int rank)
{
    if (!rh_core.initialized) {
        return 0;
    }
    return rank == rh_core.rank || rh_tp_peer_alive(rank);
}

int rh_core_node_of(int rank)
{
    if (rank < 0 || rank >= rh_core.size) {
        return -1;
    }
    return rh_core.node_of_rank[rank];
}

/* ---- finalize protocol (handlers run on the progress thread) ------------- */

static void rh_core_fin_check(void)
{
    int round = rh_core.fin_waiting - 1;

    if (round < 0 || rh_completion_done(&rh_core.fin_all[round])) {
        return;
    }
    for (int r = 1; r < rh_core.size; r++) {
        if (rh_core.fin_seen[r] <= round && rh_tp_peer_alive(r)) {
            return;
        }
    }
    rh_completion_signal(&rh_core.fin_all[round], RH_OK);
}

/* The header is the round: one byte, 0 or 1. */
static int rh_core_fin_round(const rh_am_msg_t *msg)
{
    uint8_t round = *(const uint8_t *)msg->hdr;

    return round < RH_CORE_FIN_ROUNDS ? round : -1;
}

static rh_status_t rh_core_on_finalize(void *arg, rh_am_msg_t *msg)
{
    int round = rh_core_fin_round(msg);

    (void)arg;
    if (rh_core.rank != 0 || msg->src == 0 || round < 0) {
        return RH_ERR_MALFORMED;
    }
    if (rh_core.fin_seen[msg->src] < round + 1) {
        rh_core.fin_seen[msg->src] = (uint8_t)(round + 1);
    }
    rh_core_fin_check();
    return RH_OK;
}

static rh_status_t rh_core_on_finalize_go(void *arg, rh_am_msg_t *msg)
{
    int round = rh_core_fin_round(msg);

    (void)arg;
    if (msg->src != 0 || round < 0) {
        return RH_ERR_MALFORMED;
    }
    rh_completion_signal(&rh_core.fin_go[round], RH_OK);
    return RH_OK;
}

static void rh_core_on_peer_failure(void *arg, int rank)
{
    (void)arg;
    if (rh_core.rank == 0) {
        rh_core_fin_check();
        return;
    }
    /* Rank 0 leaves right after its last go, which may still wait in our
     * receive queue when the pid check finds it gone. Once our sends are
     * flushed and reported nothing of ours can be lost any more, so its
     * leaving then ends the job as its go would. */
    for (int i = 0; rank == 0 && i < RH_CORE_FIN_ROUNDS; i++) {
        int over = i == RH_CORE_FIN_ROUNDS - 1 &&
                   atomic_load(&rh_core.fin_flushed);

        if (!rh_completion_done(&rh_core.fin_go[i])) {
            rh_completion_signal(&rh_core.fin_go[i],
                                 over ? RH_OK : RH_ERR_PEER_FAILED);
        }
    }
}

/* ---- start-up -------------------------------------------------------------- */

/* Whether RAYHPC_<name> is set: it overrides the program's value, which
 * is then neither taken nor judged. */
static int rh_core_env_overrides(const char *name)
{
    char var[64];

    snprintf(var, sizeof(var), RH_CONFIG_PREFIX "%s", name);
    return getenv(var) != NULL;
}

static rh_status_t rh_core_apply_params(const rh_init_params_t *params)
{
    static const char *const modes[] = {"polling", "adaptive", "blocking"};
    rh_status_t status = RH_OK;

    if (params == NULL) {
        return RH_OK;
    }
    if ((params->field_mask & RH_INIT_PARAM_FIELD_PROGRESS_MODE) &&
        !rh_core_env_overrides("PROGRESS")) {
        if ((unsigned)params->progress_mode > RH_PROGRESS_BLOCKING) {
            return rh_error_set(RH_ERR_INVALID_PARAM, "progress_mode %d is "
                                "not an rh_progress_mode_t",
                                (int)params->progress_mode);
        }
        status = rh_config_set(&rh_cfg, "PROGRESS",
                               modes[params->progress_mode]);
    }
    if (status == RH_OK && (params->field_mask &
                            RH_INIT_PARAM_FIELD_BOOTSTRAP) &&
        params->bootstrap != NULL && !rh_core_env_overrides("BOOTSTRAP")) {
        status = rh_config_set(&rh_cfg, "BOOTSTRAP", params->bootstrap);
    }
    if (status == RH_OK && (params->field_mask &
                            RH_INIT_PARAM_FIELD_LOG_LEVEL) &&
        params->log_level != NULL && !rh_core_env_overrides("LOG_LEVEL")) {
        status = rh_config_set(&rh_cfg, "LOG_LEVEL", params->log_level);
    }
    if (status != RH_OK) {
        /* The value came from the program, not the environment. */
        char msg[512];

        snprintf(msg, sizeof(msg), "%s", rh_last_error());
        return rh_error_set(status, "in rh_init_params_t (not the "
                            "environment): %s", msg);
    }
    return status;
}

static rh_status_t rh_core_build_blob(rh_blob_t *blob)
{
    char host_key[384], node[256], topo[128];
    rh_topo_counts_t counts;
    int32_t pid = (int32_t)getpid();
    const void *addr;
    size_t addr_len;
    rh_status_t status;

    /* same kernel, same pid namespace: pids can be compared */
    rh_jc_host_key(host_key, sizeof(host_key));
    if (rh_cfg.node_id[0] != '\0') {
        snprintf(node, sizeof(node), "%s", rh_cfg.node_id);
    } else {
        gethostname(node, sizeof(node) - 1);
        node[sizeof(node) - 1] = '\0';
    }
    if (rh_topo_query(&counts) == RH_OK) {
        rh_topo_format(&counts, topo, sizeof(topo));
    } else {
        snprintf(topo, sizeof(topo), "unknown");
    }
    rh_tp_local_address(&addr, &addr_len);
    rh_blob_init(blob);
    status = rh_blob_add(blob, RH_BLOB_PID, &pid, sizeof(pid));
    if (status == RH_OK) {
        status = rh_blob_add_str(blob, RH_BLOB_HOST, host_key);
    }
    if (status == RH_OK) {
        status = rh_blob_add_str(blob, RH_BLOB_NODE, node);
    }
    if (status == RH_OK) {
        status = rh_blob_add(blob, RH_BLOB_UCX_ADDR, addr, (uint32_t)addr_len);
    }
    if (status == RH_OK) {
        status = rh_blob_add_str(blob, RH_BLOB_TOPO, topo);
    }
    if (status == RH_OK) {
        status = rh_blob_add(blob, RH_BLOB_GUEST_KEY, rh_jobgather_key(),
                             RH_JG_KEY_LEN);
    }
    if (status == RH_OK) {
        char offer[700];

        rh_place_describe(offer, sizeof(offer));
        status = rh_blob_add_str(blob, RH_BLOB_RESOURCES, offer);
    }
    if (status == RH_OK) {
        size_t len = rh_registry_describe(NULL, 0) + 1;
        char *funcs = malloc(len);

        if (funcs == NULL) {
            return rh_error_set(RH_ERR_NO_MEMORY, "function table");
        }
        rh_registry_describe(funcs, len);
        status = rh_blob_add_str(blob, RH_BLOB_FUNCS, funcs);
        free(funcs);
    }
    if (status == RH_OK) {
        char cfg[512];

        rh_config_job_wide(&rh_cfg, cfg, sizeof(cfg));
        status = rh_blob_add_str(blob, RH_BLOB_JOB_CFG, cfg);
    }
    if (status == RH_OK) {
        uint8_t rings = (uint8_t)rh_tp_rings_wanted();

        status = rh_blob_add(blob, RH_BLOB_RINGS, &rings, sizeof(rings));
    }
    return status;
}

/* Reads a NUL-terminated string entry of rank r's blob. */
static rh_status_t rh_core_blob_str(const rh_blob_set_t *set, int r,
                                    uint16_t key, const char **out)
{
    const void *val;
    uint32_t len;
    rh_status_t status = rh_blob_find(set->data + set->off[r], set->len[r],
                                      key, &val, &len);

    if (status != RH_OK || len == 0 || ((const char *)val)[len - 1] != '\0') {
        return rh_error_set(RH_ERR_BOOTSTRAP, "rank %d's start-up blob lacks "
                            "entry %u (mismatched library versions?)", r,
                            (unsigned)key);
    }
    *out = val;
    return RH_OK;
}

/* Rank r's same-host ring choice (RH_BLOB_RINGS). */
static rh_status_t rh_core_blob_rings(const rh_blob_set_t *set, int r,
                                      int *rings)
{
    const void *val;
    uint32_t len;

    if (rh_blob_find(set->data + set->off[r], set->len[r], RH_BLOB_RINGS,
                     &val, &len) != RH_OK || len != 1) {
        return rh_error_set(RH_ERR_BOOTSTRAP, "rank %d's start-up blob lacks "
                            "entry %u (mismatched library versions?)", r,
                            (unsigned)RH_BLOB_RINGS);
    }
    *rings = *(const uint8_t *)val;
    return RH_OK;
}

/* Ranks of one host that disagree on the same-host rings would each wait
 * for messages the other sends elsewhere: each rank is compared with the
 * first rank of its host (hosts by hash, then by name). */
static rh_status_t rh_core_check_rings(const rh_blob_set_t *set)
{
    rh_hmap_t first = RH_HMAP_INITIALIZER(sizeof(uint64_t), sizeof(int));
    rh_status_t status = RH_OK;

    for (int r = 0; r < set->n && status == RH_OK; r++) {
        const char *host, *host0;
        int added, *q, rings, rings0;
        uint64_t h;

        status = rh_core_blob_str(set, r, RH_BLOB_HOST, &host);
        if (status == RH_OK) {
            status = rh_core_blob_rings(set, r, &rings);
        }
        if (status != RH_OK) {
            break;
        }
        h = rh_hash_str(host);
        q = rh_hmap_put(&first, &h, &added);
        if (q == NULL) {
            status = rh_error_set(RH_ERR_NO_MEMORY, "host table");
        } else if (added) {
            *q = r;
        } else if (rh_core_blob_str(set, *q, RH_BLOB_HOST, &host0) ==
                   RH_OK && strcmp(host, host0) == 0 &&
                   rh_core_blob_rings(set, *q, &rings0) == RH_OK &&
                   rings != rings0) {
            int ring_rank = rings ? r : *q, ucx_rank = rings ? *q : r;

            status = rh_error_set(RH_ERR_CONFIG, "ranks %d and %d share a "
                                  "host, but rank %d sends to its host's "
                                  "ranks through the shared-memory rings and "
                                  "rank %d through UCX (its RAYHPC_SHM_RING "
                                  "is 0, or its UCX_TLS leaves shared memory "
                                  "out): the ranks of a host need the same "
                                  "RAYHPC_SHM_RING and UCX_TLS", *q, r,
                                  ring_rank, ucx_rank);
        }
    }
    rh_hmap_fini(&first);
    return status;
}

/* Every rank checks every rank's job-wide settings against rank 0's, so
 * that all fail alike on a mismatch (which hangs or splits the job
 * later). */
static rh_status_t rh_core_check_job_cfg(const rh_blob_set_t *set)
{
    const char *cfg0, *cfg;
    char name[64], v0[160], v[160];
    rh_status_t status = rh_core_blob_str(set, 0, RH_BLOB_JOB_CFG, &cfg0);

    for (int r = 1; r < set->n && status == RH_OK; r++) {
        status = rh_core_blob_str(set, r, RH_BLOB_JOB_CFG, &cfg);
        if (status == RH_OK &&
            rh_config_job_wide_diff(cfg, cfg0, name, sizeof(name), v, v0,
                                    sizeof(v))) {
            status = rh_error_set(RH_ERR_CONFIG, "%s is %s on rank %d and "
                                  "%s on rank 0: every rank of a job needs "
                                  "the same value", name, v, r, v0);
        }
    }
    return status == RH_OK ? rh_core_check_rings(set) : status;
}

/* Turns everybody's blob into the transport's peer table (*out, pointing
 * into set) and the node numbering (nodes numbered in order of their lowest
 * rank). */
static rh_status_t rh_core_connect(const rh_blob_set_t *set,
                                   rh_tp_peer_info_t **out)
{
    rh_tp_peer_info_t *peers = calloc((size_t)set->n, sizeof(*peers));
    const char **node_names = calloc((size_t)set->n, sizeof(*node_names));
    const char *my_host = NULL;
    rh_status_t status = RH_OK;

    rh_core.node_of_rank = calloc((size_t)set->n, sizeof(int));
    if (peers == NULL || node_names == NULL || rh_core.node_of_rank == NULL) {
        status = rh_error_set(RH_ERR_NO_MEMORY, "peer tables");
        goto out;
    }
    status = rh_core_blob_str(set, rh_core.rank, RH_BLOB_HOST, &my_host);
    for (int r = 0; r < set->n && status == RH_OK; r++) {
        const uint8_t *blob = set->data + set->off[r];
        const void *val;
        uint32_t len;
        const char *host;
        int32_t pid;

        status = rh_core_blob_str(set, r, RH_BLOB_HOST, &host);
        if (status == RH_OK) {
            status = rh_core_blob_str(set, r, RH_BLOB_NODE, &node_names[r]);
        }
        if (status == RH_OK &&
            (rh_blob_find(blob, set->len[r], RH_BLOB_PID, &val, &len) !=
             RH_OK || len != sizeof(pid) ||
             rh_blob_find(blob, set->len[r], RH_BLOB_UCX_ADDR,
                          &peers[r].ucx_addr, &len) != RH_OK)) {
            status = rh_error_set(RH_ERR_BOOTSTRAP, "rank %d's start-up blob "
                                  "is incomplete", r);
        }
        if (status != RH_OK) {
            break;
        }
        memcpy(&pid, val, sizeof(pid));
        peers[r].pid = pid;
        peers[r].ucx_addr_len = len;
        peers[r].same_host = strcmp(host, my_host) == 0;
        if (peers[r].same_host) {
            rh_core.host_share += r < rh_core.rank;
            rh_core.ranks_on_host++;
        }
        rh_core.node_of_rank[r] = rh_core.num_nodes;
        for (int q = 0; q < r; q++) {
            if (strcmp(node_names[q], node_names[r]) == 0) {
                rh_core.node_of_rank[r] = rh_core.node_of_rank[q];
                break;
            }
        }
        if (rh_core.node_of_rank[r] == rh_core.num_nodes) {
            rh_core.num_nodes++;
        }
    }
    if (status == RH_OK) {
        const char *funcs0;

        rh_core.node = rh_core.node_of_rank[rh_core.rank];
        rh_core.node_leader = -1;
        for (int r = 0; r < set->n; r++) {
            if (rh_core.node_of_rank[r] == rh_core.node) {
                if (rh_core.node_leader < 0) {
                    rh_core.node_leader = r;
                }
                rh_core.ranks_on_node++;
            }
        }
        /* Unique per job and the same on every rank: rank 0's identity. */
        snprintf(rh_core.job_id, sizeof(rh_core.job_id), "%d-%s",
                 (int)peers[0].pid, node_names[0]);
        if (rh_core.rank != 0 &&
            rh_core_blob_str(set, 0, RH_BLOB_FUNCS, &funcs0) == RH_OK &&
            rh_registry_compare(funcs0, 0) != 0) {
            rh_error("rank %d registers other functions than rank 0 (see "
                     "above): tasks of those functions fail on some ranks",
                     rh_core.rank);
        }
    }
out:
    if (status == RH_OK) {
        *out = peers;
    } else {
        free(peers);
    }
    free(node_names);
    return status;
}

/* Rank 0: the job's contact record (jobcontact.h) from everybody's blob:
 * each node's first rank, its host, pid and worker address. Without it
 * (no memory) the job only runs unseen from other hosts. */
static void rh_core_contact_build(const rh_blob_set_t *set)
{
    rh_jc_t *c = &rh_core.contact;

    memset(c, 0, sizeof(*c));
    c->servers = calloc((size_t)rh_core.num_nodes, sizeof(*c->servers));
    if (c->servers == NULL) {
        return;
    }
    snprintf(c->job, sizeof(c->job), "%s", rh_core.job_id);
    c->ranks = rh_core.size;
    c->nodes = rh_core.num_nodes;
    c->created = (int64_t)time(NULL);
    for (int r = 0; r < set->n; r++) {
        const uint8_t *blob = set->data + set->off[r];
        rh_jc_server_t *sv = &c->servers[c->n];
        const void *addr, *pid, *key;
        const char *host;
        uint32_t len, plen, klen;

        if (c->n == c->nodes || rh_core.node_of_rank[r] != c->n) {
            continue;   /* not the first rank of the next node */
        }
        if (rh_core_blob_str(set, r, RH_BLOB_HOST, &host) != RH_OK ||
            rh_blob_find(blob, set->len[r], RH_BLOB_PID, &pid, &plen) !=
            RH_OK || plen != sizeof(int32_t) ||
            rh_blob_find(blob, set->len[r], RH_BLOB_GUEST_KEY, &key, &klen) !=
            RH_OK || klen != sizeof(sv->key) ||
            rh_blob_find(blob, set->len[r], RH_BLOB_UCX_ADDR, &addr, &len) !=
            RH_OK || (sv->addr = malloc(len)) == NULL) {
            break;
        }
        sv->node = c->n;
        sv->rank = r;
        memcpy(&sv->pid, pid, sizeof(int32_t));
        memcpy(sv->key, key, sizeof(sv->key));
        snprintf(sv->host, sizeof(sv->host), "%s", host);
        memcpy(sv->addr, addr, len);
        sv->addr_len = len;
        c->n++;
    }
    if (c->n != c->nodes) {
        rh_jc_free(c);
    }
}

/* The owner let an object go: its copy here and those on other nodes. */
static void rh_core_store_delete(rh_object_id_t id)
{
    rh_pull_delete_copy(id, 0);
    rh_dir_forget(id);
}

static void rh_core_pool_notify(void)
{
    rh_pool_notify(rh_core.pool);
}

/* The node's object store (the lowest rank of the node creates it, the
 * others attach), the future table and the worker pool. */
static rh_status_t rh_core_open_node(const rh_tp_peer_info_t *peers)
{
    rh_store_params_t sp;
    rh_pool_params_t pp;
    rh_topo_counts_t counts;
    char node[32];
    rh_status_t status;

    memset(&sp, 0, sizeof(sp));
    snprintf(node, sizeof(node), "n%d", rh_core.node);
    sp.job_id = rh_core.job_id;
    sp.node = node;
    sp.create = rh_core.rank == rh_core.node_leader;
    sp.size = rh_cfg.store_size;
    sp.hugepages = (rh_store_hugepages_t)rh_cfg.hugepages;
    /* a record of holds per rank of the node, and two spare: a process
     * that attaches to look (a tool), and room for a rank's replacement
     * while the dead one's record is still to be reaped */
    sp.procs = (uint32_t)rh_core.ranks_on_node + 2;
    /* The leader pre-faults the whole segment before the others may attach:
     * give them time in proportion (about 15 s a GiB on a loaded host). */
    {
        uint64_t gib = rh_cfg.store_size >> 30;

        /* past 100,000 GiB no host has the memory: no int overflow */
        sp.attach_timeout_ms = gib > 100000 ? INT_MAX :
                               10000 + (int)(gib * 15000);
    }
    if (peers[rh_core.node_leader].same_host) {
        sp.leader_pid = (int32_t)peers[rh_core.node_leader].pid;
    }
    if (strcmp(rh_cfg.spill_dir, "off") != 0) {
        const char *tmp = getenv("TMPDIR");

        sp.spill_dir = rh_cfg.spill_dir[0] != '\0' ? rh_cfg.spill_dir :
                       tmp != NULL && tmp[0] == '/' ? tmp : "/tmp";
    }
    sp.spill_threshold = rh_cfg.spill_threshold;
    sp.spill_max = rh_cfg.spill_max;
    sp.spill_buffered = rh_cfg.spill_direct == 1;
    status = rh_store_open(&sp, &rh_core.store);
    if (status != RH_OK) {
        return status;
    }
    /* Other nodes read objects straight out of our view of the segment. */
    status = rh_tp_mem_register(rh_store_base(rh_core.store),
                                rh_store_length(rh_core.store));
    if (status != RH_OK) {
        return status;
    }
    rh_future_setup((uint32_t)rh_core.rank, rh_core_store_delete);
    rh_future_set_unpin(rh_object_unpin);
    rh_task_cache_init();
    memset(&pp, 0, sizeof(pp));
    pp.num_workers = (int)rh_cfg.num_workers;
    pp.spin = RH_POOL_SPIN_DEFAULT;
    pp.help_depth = rh_cfg.help_depth == 0 ? -1 : (int)rh_cfg.help_depth;
    /* An idle worker drives the network as a waiting caller does: a task
     * that arrives then runs on it, with no hand-off from the progress
     * thread and nobody to wake (RAYHPC_DRIVE_US=0: neither drives). */
    if (rh_cfg.drive_us != 0) {
        pp.idle_begin = rh_tp_drive_begin;
        pp.idle_round = rh_tp_drive;
        pp.idle_end = rh_tp_drive_end;
        pp.idle_leave = rh_tp_drive_leave;
    }
    if (pp.num_workers == 0) {
        int cores = rh_topo_query(&counts) == RH_OK && counts.cores > 0 ?
                    counts.cores : 1;

        /* virtual nodes of one host share its cores too */
        pp.num_workers = cores / rh_core.ranks_on_host;
        pp.num_workers = pp.num_workers > 0 ? pp.num_workers : 1;
    }
    /* The ranks of a host (virtual nodes too) split its cores. */
    pp.pin = 1;
    pp.share = rh_core.host_share;
    pp.shares = rh_core.ranks_on_host;
    status = rh_pool_create(&pp, &rh_core.pool);
    if (status != RH_OK) {
        return status;
    }
    {
        char spec[800], offer[800];
        int node_index = 0;

        for (int r = 0; r < rh_core.rank; r++) {
            node_index += rh_core.node_of_rank[r] == rh_core.node;
        }
        rh_gpu_setup(node_index, rh_core.ranks_on_node,
                     rh_store_base(rh_core.store),
                     rh_store_length(rh_core.store));
        rh_gpu_describe(rh_cfg.resources, spec, sizeof(spec));
        rh_gpu_deal(spec, node_index, rh_core.ranks_on_node, offer,
                    sizeof(offer));
        rh_place_rank_spec(offer, rh_place_node_memory(),
                           rh_core.ranks_on_node, spec, sizeof(spec));
        status = rh_resources_init(rh_pool_num_workers(rh_core.pool), spec);
    }
    if (status != RH_OK) {
        return status;
    }
    rh_future_set_notify_hook(rh_core_pool_notify);
    return RH_OK;
}

typedef struct rh_core_close_op {
    rh_tp_op_t      op;
    rh_completion_t done;
} rh_core_close_op_t;

/* On the progress thread, between two handlers: from here on they refuse
 * new work, so none can race with the pool going away. */
static void rh_core_close_run(rh_tp_op_t *op)
{
    atomic_store(&rh_core.closing, 1);
    rh_completion_signal(&((rh_core_close_op_t *)op)->done, RH_OK);
}

static void rh_core_unhook_run(rh_tp_op_t *op)
{
    rh_future_set_notify_hook(NULL);
    rh_completion_signal(&((rh_core_close_op_t *)op)->done, RH_OK);
}

/* Refuses new work and lets the workers finish what they have (their sends
 * still go out); the progress thread keeps running. */
static void rh_core_stop_work(void)
{
    rh_core_close_op_t close_op = { .op.run = rh_core_close_run };

    rh_completion_init(&close_op.done);
    if (rh_tp_running()) {
        rh_tp_post(&close_op.op);
        rh_completion_wait(&close_op.done, -1);
    }
    atomic_store(&rh_core.closing, 1);
    /* No retry may reach the pool while it ends: the retry thread submits
     * to it. */
    rh_lineage_quiesce();
    if (rh_core.pool == NULL) {
        return;
    }
    /* Workers still waiting for answers need the notify hook until they
     * are joined; then the hook goes on the progress thread, where late
     * answers call it, before the pool is freed under it. */
    rh_pool_stop(rh_core.pool);
    if (rh_tp_running()) {
        rh_completion_init(&close_op.done);
        close_op.op.run = rh_core_unhook_run;
        rh_tp_post(&close_op.op);
        rh_completion_wait(&close_op.done, -1);
    } else {
        rh_future_set_notify_hook(NULL);
    }
    rh_pool_destroy(rh_core.pool);
    rh_core.pool = NULL;
}

/* Whether this rank removes the node's store segment: the lowest rank of
 * the node still alive, so that a node whose leader (the segment's
 * creator) was killed does not leave it behind. */
static int rh_core_removes_segment(void)
{
    for (int r = 0; r < rh_core.size; r++) {
        if (rh_core.node_of_rank[r] == rh_core.node &&
            (r == rh_core.rank || rh_tp_peer_alive(r))) {
            return r == rh_core.rank;
        }
    }
    return 0;
}

static void rh_core_close_node(void)
{
    rh_core_stop_work();
    /* Sends still queued fail now, while the modules their callbacks
     * report to exist; then the progress thread stops, so no handler
     * touches what is freed below. */
    rh_tp_close_endpoints();
    rh_tp_stop();
    rh_lineage_teardown();
    rh_future_set_notify_hook(NULL);
    rh_resources_fini(rh_task_drop_waiting);
    rh_pull_teardown();
    rh_dir_teardown();
    rh_borrow_teardown();
    rh_forward_teardown();
    rh_pg_teardown();
    rh_place_teardown();
    /* After every module that fails tasks still held: a failed actor
     * creation tells the actor table, whose entries go here. */
    rh_actor_teardown();
    rh_future_teardown();
    if (rh_core.store != NULL) {
        rh_task_cache_fini();
    }
    rh_gpu_teardown();
    if (rh_core.store != NULL) {
        char name[256];

        rh_store_close(rh_core.store, rh_core_removes_segment());
        rh_core.store = NULL;
        /* Rank 0 leaves last: a node whose ranks all died or left before
         * its killed leader could remove the segment leaves it stale, and
         * what is stale of this job goes now, not at the next job. */
        if (rh_core.rank == 0 &&
            rh_store_segment_name(rh_core.job_id, "n", name,
                                  sizeof(name)) == RH_OK) {
            (void)rh_store_reap_stale(name, NULL);
        }
        /* And the same-host rings of ranks that were killed: rank N's is
         * named ...-ringN, so the name of rank 0's less its 0 is all of
         * them. */
        if (rh_core.rank == 0 &&
            rh_shml_segment_name(rh_core.job_id, 0, name,
                                 sizeof(name)) == RH_OK) {
            name[strlen(name) - 1] = '\0';
            (void)rh_store_reap_stale(name, NULL);
        }
    }
}

static rh_status_t rh_core_register_handlers(void)
{
    rh_status_t status;

    status = rh_am_register(RH_AM_ID_FINALIZE, 1, 1, rh_core_on_finalize,
                            NULL);
    if (status == RH_OK) {
        status = rh_am_register(RH_AM_ID_FINALIZE_GO, 1, 1,
                                rh_core_on_finalize_go, NULL);
    }
    if (status == RH_OK) {
        status = rh_tp_on_peer_failure(rh_core_on_peer_failure, NULL);
    }
    if (status == RH_OK) {
        status = rh_forward_setup();
    }
    if (status == RH_OK) {
        status = rh_lineage_setup();
    }
    if (status == RH_OK) {
        status = rh_actor_setup();
    }
    if (status == RH_OK) {
        status = rh_dir_setup();
    }
    if (status == RH_OK) {
        status = rh_borrow_setup();
    }
    if (status == RH_OK) {
        status = rh_pull_setup();
    }
    if (status == RH_OK) {
        status = rh_place_setup();
    }
    if (status == RH_OK) {
        status = rh_pg_setup();
    }
    if (status == RH_OK) {
        status = rh_gcs_setup();
    }
    if (status == RH_OK) {
        status = rh_jobgather_setup();
    }
    return status;
}

static void rh_core_reset(void)
{
    free(rh_core.node_of_rank);
    free(rh_core.fin_seen);
    rh_jc_free(&rh_core.contact);
    memset(&rh_core, 0, sizeof(rh_core));
    rh_core.rank = -1;
}

/* Set from the start of rh_finalize until the next rh_init. */
static _Atomic int rh_core_fin_begun;

/* A program that ends without rh_finalize leaves the job as a dead rank
 * does (the other ranks go on without it), which the user should hear of,
 * and a launcher that can hear it counts an exit status of 0 as a
 * failure, as MPI's do. */
static void rh_core_at_exit(void)
{
    if (!rh_core.initialized || atomic_load(&rh_core_fin_begun)) {
        return;
    }
    if (rh_core.size > 1) {
        rh_error("the program is ending without calling rh_finalize: the "
                 "job's other ranks take rank %d for dead", rh_core.rank);
    } else {
        rh_error("the program is ending without calling rh_finalize");
    }
    if (rh_core.bs.ops != NULL && rh_core.bs.ops->unfinished != NULL) {
        rh_core.bs.ops->unfinished(&rh_core.bs);
    }
}

rh_status_t rh_init(int *argc, char ***argv, const rh_init_params_t *params)
{
    static int at_exit;

    rh_blob_t blob;
    rh_blob_set_t all;
    rh_tp_peer_info_t *peers = NULL;
    rh_status_t status;
    int bs_open = 0, tp_open = 0;

    (void)argc;
    (void)argv;
    rh_error_clear();
    if (rh_core.initialized) {
        return rh_error_set(RH_ERR_ALREADY_INITIALIZED, "rh_init was already "
                            "called");
    }
    rh_config_defaults(&rh_cfg);
    status = rh_core_apply_params(params);
    if (status == RH_OK) {
        status = rh_config_load_env(&rh_cfg);
    }
    if (status != RH_OK) {
        rh_error("%s", rh_last_error());
        return status;
    }
    rh_log_level = rh_cfg.log_level;
    for (int i = 0; i < RH_CORE_FIN_ROUNDS; i++) {
        rh_completion_init(&rh_core.fin_all[i]);
        rh_completion_init(&rh_core.fin_go[i]);
    }

    status = rh_bootstrap_open((rh_bootstrap_kind_t)rh_cfg.bootstrap,
                               &rh_core.bs);
    if (status != RH_OK) {
        goto err;
    }
    bs_open = 1;
    rh_core.rank = rh_core.bs.rank;
    rh_core.size = rh_core.bs.size;
    rh_log_set_rank(rh_core.rank);
    status = rh_timeline_open(rh_cfg.timeline, rh_core.rank);
    if (status != RH_OK) {
        goto err;
    }
    rh_debug("bootstrap %s: rank %d of %d", rh_core.bs.ops->name,
             rh_core.rank, rh_core.size);
    if (rh_core.rank == 0) {
        rh_config_warn_unknown_env();
    }
    rh_core.fin_seen = calloc((size_t)rh_core.size, 1);
    if (rh_core.fin_seen == NULL) {
        status = rh_error_set(RH_ERR_NO_MEMORY, "finalize table");
        goto err;
    }
    /* Every rank on this host (rayhpc-run, or srun/mpirun on one node):
     * deaths are seen by pid, and UCX's keepalive stays off. */
    rh_tp_set_one_host(rh_core.size == 1 ||
                       rh_core.bs.local_size == rh_core.size);
    status = rh_tp_open(&rh_cfg);
    if (status != RH_OK) {
        goto err;
    }
    tp_open = 1;
    status = rh_core_register_handlers();
    if (status != RH_OK) {
        goto err;
    }
    status = rh_core_build_blob(&blob);
    if (status == RH_OK) {
        status = rh_core.bs.ops->allgather(&rh_core.bs, blob.buf, blob.len,
                                           &all);
    }
    rh_blob_free(&blob);
    if (status != RH_OK) {
        goto err;
    }
    status = rh_core_check_job_cfg(&all);
    if (status == RH_OK) {
        status = rh_core_connect(&all, &peers);
    }
    if (status == RH_OK && rh_core.rank == 0) {
        rh_core_contact_build(&all);
    }
    if (status == RH_OK) {
        status = rh_place_init(&all, rh_core.node_of_rank, rh_core.num_nodes);
    }
    if (status == RH_OK) {
        status = rh_gcs_start(rh_core.rank, rh_core.size, rh_core.node_of_rank,
                              rh_core.num_nodes);
    }
    /* Store, futures and workers come before the progress thread: a task
     * another rank forwards at once finds everything ready. */
    if (status == RH_OK) {
        status = rh_core_open_node(peers);
    }
    if (status == RH_OK) {
        rh_core.initialized = 1;
        rh_place_start();
        rh_tp_set_job(rh_core.job_id);
        status = rh_tp_start(rh_core.rank, rh_core.size, peers);
    }
    if (status == RH_OK) {
        status = rh_gcs_run();
    }
    free(peers);
    rh_blob_set_free(&all);
    if (status != RH_OK) {
        rh_core.initialized = 0;
        goto err;
    }
    rh_nodetab_start();
    rh_object_record_start();
    rh_job_record_start(rh_core.job_id, rh_core.size, rh_core.num_nodes);
    rh_jobstate_start(rh_core.job_id);
    if (rh_core.contact.n > 0) {
        /* this rank serves now; another node's server may still be
         * starting: a guest it does not answer in time asks the next */
        rh_jc_publish(&rh_core.contact, rh_cfg.job_contact_dir);
        rh_jc_free(&rh_core.contact);
    }
    rh_debug("node %d of %d; progress thread running", rh_core.node,
             rh_core.num_nodes);
    atomic_store(&rh_core_fin_begun, 0);
    if (!at_exit) {
        at_exit = atexit(rh_core_at_exit) == 0;
    }
    return RH_OK;

err:
    /* Keep the message: teardown below may overwrite it. */
    {
        char msg[512];

        snprintf(msg, sizeof(msg), "%s", rh_last_error());
        rh_error("rh_init failed: %s", msg);
        rh_gcs_quiesce();
        rh_core_close_node();
        rh_timeline_close();
        if (tp_open) {
            rh_tp_close();
        }
        rh_gcs_stop();
        if (bs_open) {
            rh_core.bs.ops->finalize(&rh_core.bs);
        }
        rh_core_reset();
        return rh_error_set(status, "%s", msg);
    }
}

/* ---- the end --------------------------------------------------------------- */

/* RAYHPC_SUMMARY=1: rank 0 prints the job's state, as rayhpc-info --job,
 * while every rank waits in the first round of rh_finalize. */
static void rh_core_summary(void)
{
    if (!rh_cfg.summary || rh_core.rank != 0) {
        return;
    }
    printf("# RAYHPC_SUMMARY: the job at rh_finalize\n");
    if (rh_jobstate_print_gathered(stdout) == 0) {
        rh_jobstate_snapshot(stdout);   /* not served: this rank only */
    }
    fflush(stdout);
}

typedef struct rh_core_fin_op {
    rh_tp_op_t op;
    int        round;
} rh_core_fin_op_t;

/* Rank 0 starts waiting on the progress thread, where arrivals are seen. */
static void rh_core_fin_start(rh_tp_op_t *op)
{
    rh_core.fin_waiting = ((rh_core_fin_op_t *)op)->round + 1;
    rh_core_fin_check();
}

/* One round through rank 0: every live rank reports, then rank 0 answers
 * each. Rank 0 waits for its answers to leave, so none is lost when the
 * endpoints close behind them. */
static rh_status_t rh_core_fin_round_trip(int round, const char *what)
{
    /* static: the op outlives a wait that timed out */
    static rh_core_fin_op_t start[RH_CORE_FIN_ROUNDS] = {
        { .op.run = rh_core_fin_start, .round = 0 },
        { .op.run = rh_core_fin_start, .round = 1 } };
    int64_t timeout = (int64_t)rh_cfg.finalize_timeout_ms;
    uint8_t hdr = (uint8_t)round;
    rh_status_t status;

    /* Round 0 waits for every live rank to arrive, and the others wait for
     * the driver to end the job: the work before may take days, and only a
     * death ends those waits early. Round 1 only flushes: bounded. */
    int64_t wait = round == 0 ? RH_TIMEOUT_INFINITE : timeout;

    if (rh_core.rank == 0) {
        rh_tp_post(&start[round].op);
        status = rh_completion_wait(&rh_core.fin_all[round], wait);
        if (status == RH_ERR_TIMEOUT) {
            rh_warn("finalize: not every rank %s within %lld ms; ending "
                    "without them", what, (long long)timeout);
        }
        if (round == 0) {
            rh_core_summary();   /* the others wait, serving their state */
        }
        for (int r = 1; r < rh_core.size; r++) {
            if (rh_tp_peer_alive(r)) {
                (void)rh_am_send_wait((uint32_t)r, RH_AM_ID_FINALIZE_GO,
                                      &hdr, 1, NULL, 0);
            }
        }
        return RH_OK;
    }
    /* Set before the report: rank 0 may answer and leave before the
     * send returns here. */
    if (round == RH_CORE_FIN_ROUNDS - 1) {
        atomic_store(&rh_core.fin_flushed, 1);
    }
    status = rh_am_send_wait(0, RH_AM_ID_FINALIZE, &hdr, 1, NULL, 0);
    if (status == RH_OK) {
        status = rh_completion_wait(&rh_core.fin_go[round], wait);
    }
    if (status == RH_ERR_TIMEOUT) {
        return rh_error_set(status, "finalize: rank 0 did not end the job "
                            "within %lld ms", (long long)timeout);
    }
    if (status != RH_OK) {
        return rh_error_set(status, "finalize: rank 0 failed before the job "
                            "ended");
    }
    return RH_OK;
}

/* Both rounds, with the work stopped and the sends flushed in between.
 * Ranks leave one by one from the first round on: that is the job ending,
 * not a failure worth a warning (the rounds still account for it). */
static rh_status_t rh_core_finalize_rounds(void)
{
    rh_status_t status = RH_OK, flushed;

    if (rh_core.size > 1) {
        rh_tp_set_quiet_failures();
        status = rh_core_fin_round_trip(0, "arrived");
        rh_tp_job_ended();
    }
    if (rh_core.size == 1) {
        rh_core_summary();
    }
    /* Every rank arrived and each still serves its chains until the last
     * round: the job's end is written now, bounded by a failure timeout. */
    if (status == RH_OK) {
        rh_job_record_finish((int64_t)rh_cfg.failure_timeout_ms);
    }
    /* The snapshot reads the workers and the store, which end below. */
    rh_jobstate_stop();
    /* Ranks leave one by one from here: their silence is no failure. */
    rh_gcs_quiesce();
    /* Every actor here ends (destructor run) while the workers and the
     * transport still serve what its last calls need. */
    rh_actor_shutdown();
    rh_core_stop_work();
    /* Before the second round: rank 0 merges once it ends. */
    if (rh_timeline_write_part(rh_core.node) != RH_OK) {
        rh_warn("%s", rh_last_error());
    }
    if (rh_core.size == 1 || (status != RH_OK && rh_core.rank != 0)) {
        return status;
    }
    flushed = rh_tp_flush((int64_t)rh_cfg.finalize_timeout_ms);
    if (flushed != RH_OK) {
        rh_warn("finalize: %s", rh_last_error());
    }
    return rh_core_fin_round_trip(1, "flushed its sends");
}

rh_status_t rh_finalize(void)
{
    char msg[512];
    rh_status_t status;

    if (!rh_core.initialized) {
        return rh_error_set(RH_ERR_NOT_INITIALIZED, "rh_finalize without "
                            "rh_init");
    }
    atomic_store(&rh_core_fin_begun, 1);
    /* Nobody new finds the job from here on: its state stops being
     * served in the rounds. */
    if (rh_core.rank == 0) {
        rh_jc_withdraw();
    }
    status = rh_core_finalize_rounds();
    /* Teardown below may overwrite the message. */
    snprintf(msg, sizeof(msg), "%s", rh_last_error());
    /* The job is over on every rank: the rank's other threads still
     * waiting in a call leave before what they read goes below. */
    rh_core_end_waits((int64_t)rh_cfg.finalize_timeout_ms);
    if (rh_core.rank == 0 && rh_timeline_merge(rh_core.size) != RH_OK) {
        rh_warn("%s", rh_last_error());
    }
    rh_jobstate_stop();   /* if the rounds failed before it */
    rh_object_record_stop();   /* before the store goes */
    rh_core_close_node();
    rh_tp_close();
    rh_nodetab_stop();   /* no beat runs now: the progress thread ended */
    rh_gcs_stop();
    rh_job_record_stop();   /* after the dump, which shows it */
    rh_core.bs.ops->finalize(&rh_core.bs);
    rh_timeline_close();
    rh_core_reset();
    rh_core_end_waits_over();
    if (status != RH_OK) {
        rh_warn("%s", msg);
        return rh_error_set(status, "%s", msg);
    }
    return RH_OK;
}
