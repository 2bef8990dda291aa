#include "core/placement.h"

#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/config.h"
#include "base/hashmap.h"
#include "base/log.h"
#include "base/status.h"
#include "core/core.h"
#include "core/pgroup.h"
#include "core/pull.h"
#include "gpu/gpu.h"
#include "sched/pool.h"
#include "sched/topology.h"
#include "transport/am.h"
#include "transport/transport.h"

#define RH_GS_RANK 0
/* Submits between two looks at the backlog (per thread): reading it costs
 * a cache miss per worker. */
#define RH_PLACE_RECHECK 16
/* Until tasks were timed, each counts this much (ns). */
#define RH_PLACE_DEFAULT_TASK_NS 10000.0
/* Until pulls were timed, the bandwidth assumed (bytes per ns). */
#define RH_PLACE_DEFAULT_BW 1.0

typedef struct rh_load_hdr {
    uint64_t backlog;
    uint64_t task_ns;       /* average task time */
    uint64_t bw_kbps;       /* measured pull bandwidth, KiB per ms */
    uint64_t arrived;       /* tasks the scheduler placed here that came */
    int64_t  actor_cpus;    /* CPUs actors hold here for their lives */
} rh_load_hdr_t;

typedef struct rh_place_hdr {
    uint64_t token;
    uint64_t input_bytes;   /* remote inputs of the task ... */
    int32_t  input_node;    /* ... and the node holding most of them */
    int32_t  reserved;
} rh_place_hdr_t;

typedef struct rh_placed_hdr {
    uint64_t token;
    int32_t  rank;
    int32_t  reserved;
} rh_placed_hdr_t;

/* The global scheduler's view of one rank. */
/* The scheduler's view of a rank. What it placed there and the rank has not
 * reported yet (assigned - arrived) is on its way: counted as queued, or a
 * burst of placements between two heartbeats would all go to the rank that
 * looked idlest at the last one. */
typedef struct rh_gs_rank {
    long     backlog;    /* last heartbeat */
    uint64_t assigned;   /* placed here, all told */
    uint64_t arrived;    /* of those, came by the last heartbeat */
    uint64_t before;     /* assigned at the last heartbeat */
    double   task_ns;    /* 0: not reported yet */
    int      actor_cpus; /* held by actors, as last reported */
} rh_gs_rank_t;

/* A request the global scheduler could not place yet. */
typedef struct rh_gs_wait rh_gs_wait_t;
struct rh_gs_wait {
    rh_gs_wait_t  *next;
    int            from;
    rh_place_hdr_t h;
    rh_res_req_t   req;
};

static struct {
    int            nranks, nnodes;
    int           *node_of;
    rh_res_req_t  *offer;        /* what each rank offers */
    rh_res_req_t  *reserved;     /* global scheduler: held by groups */
    /* every rank: CPUs that bundles reserve on each rank, which only their
     * groups' tasks use */
    _Atomic int   *bundle_cpus;
    /* the global scheduler (rank 0) */
    pthread_mutex_t gs_lock;
    rh_gs_rank_t  *gs;
    double         gs_bw;        /* bytes per ns */
    unsigned       gs_turn;
    rh_gs_wait_t  *gs_waiting;
    unsigned long  gs_nwaiting;  /* tasks that waited (for the warnings) */
    /* the submitter side */
    pthread_mutex_t spill_lock;
    rh_hmap_t      spills;       /* token -> spilled task awaiting its answer */
    uint64_t       next_token;
    _Atomic uint64_t spilled;
    _Atomic unsigned spread_turn, rank_turn;
    _Atomic uint64_t task_ns;    /* moving average, ns */
    _Atomic uint64_t arrived;    /* placed here by the scheduler, came */
    _Atomic int      actor_cpus; /* this rank's CPUs actors hold */
} rh_pl = {
    .gs_lock = PTHREAD_MUTEX_INITIALIZER,
    .spill_lock = PTHREAD_MUTEX_INITIALIZER,
    .spills = RH_HMAP_INITIALIZER(sizeof(uint64_t), sizeof(rh_task_t *)),
};

static _Thread_local unsigned rh_pl_since_check;
static _Thread_local int rh_pl_busy;

uint64_t rh_place_spilled(void)
{
    return atomic_load_explicit(&rh_pl.spilled, memory_order_relaxed);
}

void rh_place_arrived(void)
{
    atomic_fetch_add_explicit(&rh_pl.arrived, 1, memory_order_relaxed);
}

void rh_place_task_time(uint64_t ns)
{
    uint64_t avg = atomic_load_explicit(&rh_pl.task_ns, memory_order_relaxed);

    /* Races between workers lose a sample now and then: harmless. */
    avg = avg == 0 ? ns : avg - avg / 8 + ns / 8;
    atomic_store_explicit(&rh_pl.task_ns, avg, memory_order_relaxed);
}

/* ---- what ranks offer -------------------------------------------------------- */

/* The node's memory, bytes. */
unsigned long long rh_place_node_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);

    return pages > 0 && page > 0 ? (unsigned long long)pages *
                                   (unsigned long long)page : 0;
}

void rh_place_describe(char *buf, size_t len)
{
    rh_topo_counts_t counts;
    int cores = rh_topo_query(&counts) == RH_OK && counts.cores > 0 ?
                counts.cores : 1;

    char spec[sizeof(rh_cfg.resources) + 32];

    rh_gpu_describe(rh_cfg.resources, spec, sizeof(spec));
    snprintf(buf, len, "%d;%d;%llu;%s", cores, (int)rh_cfg.num_workers,
             rh_place_node_memory(), spec);
}

void rh_place_rank_spec(const char *spec, unsigned long long node_memory,
                        int ranks_on_node, char *out, size_t len)
{
    int has = 0;

    /* An explicit memory=... in the spec wins over the node's share. */
    for (const char *p = spec; p != NULL && *p; p = strchr(p, ',')) {
        p += *p == ',';
        has |= strncmp(p, "memory=", 7) == 0;
    }
    if (has || node_memory == 0) {
        snprintf(out, len, "%s", spec);
    } else {
        snprintf(out, len, "%s%smemory=%llu", spec, spec[0] ? "," : "",
                 node_memory / (unsigned long long)
                 (ranks_on_node > 0 ? ranks_on_node : 1));
    }
}

typedef struct rh_place_host {
    const char *name;
    int         rank;
} rh_place_host_t;

static int rh_place_host_cmp(const void *a, const void *b)
{
    const rh_place_host_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    return c != 0 ? c : x->rank - y->rank;
}

/* How many ranks share each rank's host (its kernel), as init.c counts
 * them to size the rank's pool: the ranks of several nodes named on one
 * host share its cores. 0 when a rank did not say its host. */
static int *rh_place_ranks_on_host(const rh_blob_set_t *set)
{
    int n = set->n;
    rh_place_host_t *h = calloc((size_t)n, sizeof(*h));
    int *count = calloc((size_t)n, sizeof(int));

    if (h == NULL || count == NULL) {
        free(h);
        free(count);
        return NULL;
    }
    for (int r = 0; r < n; r++) {
        const void *val;
        uint32_t len;

        h[r].rank = r;
        h[r].name = rh_blob_find(set->data + set->off[r], set->len[r],
                                 RH_BLOB_HOST, &val, &len) == RH_OK &&
                    len > 0 && ((const char *)val)[len - 1] == '\0' ?
                    val : "";
    }
    qsort(h, (size_t)n, sizeof(*h), rh_place_host_cmp);
    for (int i = 0, j; i < n; i = j) {
        for (j = i; j < n && strcmp(h[j].name, h[i].name) == 0; j++) {
        }
        for (int k = i; k < j; k++) {
            count[h[k].rank] = h[i].name[0] != '\0' ? j - i : 0;
        }
    }
    free(h);
    return count;
}

rh_status_t rh_place_init(const rh_blob_set_t *set, const int *node_of_rank,
                          int num_nodes)
{
    int n = set->n;
    int *per_node = calloc((size_t)num_nodes, sizeof(int));
    int *on_host = rh_place_ranks_on_host(set);   /* NULL: by node */

    rh_pl.nranks = n;
    rh_pl.nnodes = num_nodes;
    rh_pl.node_of = calloc((size_t)n, sizeof(int));
    rh_pl.offer = calloc((size_t)n, sizeof(rh_res_req_t));
    rh_pl.gs = calloc((size_t)n, sizeof(rh_gs_rank_t));
    rh_pl.reserved = calloc((size_t)n, sizeof(rh_res_req_t));
    rh_pl.bundle_cpus = calloc((size_t)n, sizeof(*rh_pl.bundle_cpus));
    if (per_node == NULL || rh_pl.node_of == NULL || rh_pl.offer == NULL ||
        rh_pl.bundle_cpus == NULL ||
        rh_pl.gs == NULL || rh_pl.reserved == NULL) {
        free(per_node);
        free(on_host);
        return rh_error_set(RH_ERR_NO_MEMORY, "placement tables");
    }
    for (int r = 0; r < n; r++) {
        rh_pl.node_of[r] = node_of_rank[r];
        per_node[node_of_rank[r]]++;
    }
    for (int r = 0; r < n; r++) {
        const void *val;
        uint32_t len;
        int cores = 1, workers = 0, used = 0;
        unsigned long long memory = 0;
        char text[700], spec[800];

        if (rh_blob_find(set->data + set->off[r], set->len[r],
                         RH_BLOB_RESOURCES, &val, &len) != RH_OK ||
            len == 0 || len > sizeof(text) ||
            ((const char *)val)[len - 1] != '\0') {
            free(per_node);
            free(on_host);
            return rh_error_set(RH_ERR_BOOTSTRAP, "rank %d did not say what "
                                "it offers (mismatched library versions?)",
                                r);
        }
        memcpy(text, val, len);
        if (sscanf(text, "%d;%d;%llu;%n", &cores, &workers, &memory,
                   &used) < 3 || used == 0) {
            free(per_node);
            free(on_host);
            return rh_error_set(RH_ERR_BOOTSTRAP, "rank %d's offer '%s' is "
                                "malformed", r, text);
        }
        /* The same rule as the rank's own pool (init.c): the cores of
         * its host shared among the ranks there, whatever nodes they
         * name. */
        if (workers == 0) {
            workers = cores / (on_host != NULL && on_host[r] > 0 ?
                               on_host[r] : per_node[node_of_rank[r]]);
            workers = workers > 0 ? workers : 1;
        }
        {
            char dealt[sizeof(spec)];
            int index = 0;

            for (int q = 0; q < r; q++) {
                index += node_of_rank[q] == node_of_rank[r];
            }
            rh_gpu_deal(text + used, index, per_node[node_of_rank[r]], dealt,
                        sizeof(dealt));
            rh_place_rank_spec(dealt, memory, per_node[node_of_rank[r]],
                               spec, sizeof(spec));
        }
        if (rh_resources_parse_offer(spec, workers, &rh_pl.offer[r]) !=
            RH_OK) {
            free(per_node);
            free(on_host);
            /* The part a rank cannot get wrong is ours: what is bad is
             * the user's RAYHPC_RESOURCES. */
            return rh_error_set(RH_ERR_CONFIG, "bad value '%s' for "
                                "RAYHPC_RESOURCES (rank %d): %s", text + used,
                                r, rh_last_error());
        }
    }
    free(per_node);
    free(on_host);
    return RH_OK;
}

static long rh_offer_of(const rh_res_req_t *o, const char *name)
{
    for (int i = 0; i < o->n; i++) {
        if (strcmp(o->items[i].name, name) == 0) {
            return o->items[i].amount;
        }
    }
    return 0;
}

void rh_place_bundle_cpus(int r, int delta)
{
    if (rh_pl.bundle_cpus != NULL && r >= 0 && r < rh_pl.nranks) {
        atomic_fetch_add_explicit(&rh_pl.bundle_cpus[r], delta,
                                  memory_order_relaxed);
    }
}

/* Whether rank r offers req; with room, apart from the CPUs its bundles
 * hold: a task sent to a rank whose CPUs bundles hold would wait there for
 * the group's end, however free other ranks are. */
static int rh_place_offers(int r, const rh_res_req_t *req, int room)
{
    const rh_res_req_t *o = &rh_pl.offer[r];
    int cpus = o->cpus - (room ? atomic_load_explicit(&rh_pl.bundle_cpus[r],
                                                      memory_order_relaxed) :
                          0);

    if (req == NULL) {
        return cpus >= 1;
    }
    if (req->cpus > cpus) {
        return 0;
    }
    for (int i = 0; i < req->n; i++) {
        if (req->items[i].amount > rh_offer_of(o, req->items[i].name)) {
            return 0;
        }
    }
    return 1;
}

int rh_place_rank_fits(int r, const rh_res_req_t *req)
{
    return rh_place_offers(r, req, 1);
}

void rh_place_actor_cpus(int delta)
{
    atomic_fetch_add_explicit(&rh_pl.actor_cpus, delta, memory_order_relaxed);
}

/* What rank r has left once groups took their bundles, and, for a bundle
 * (actors), the CPUs actors hold there for their lives: a bundle promises
 * its CPUs to its tasks (global scheduler, under gs_lock). */
static int rh_place_gs_fits(int r, const rh_res_req_t *req, int actors)
{
    const rh_res_req_t *o = &rh_pl.offer[r], *z = &rh_pl.reserved[r];
    int held = actors ? rh_pl.gs[r].actor_cpus : 0;

    if ((req == NULL ? 1 : req->cpus) > o->cpus - z->cpus - held) {
        return 0;
    }
    for (int i = 0; req != NULL && i < req->n; i++) {
        if (req->items[i].amount > rh_offer_of(o, req->items[i].name) -
                                   rh_offer_of(z, req->items[i].name)) {
            return 0;
        }
    }
    return 1;
}

/* Under gs_lock. */
static void rh_place_gs_reserve(int r, const rh_res_req_t *req, int sign)
{
    rh_res_req_t *z = &rh_pl.reserved[r];

    z->cpus += sign * req->cpus;
    for (int i = 0; i < req->n; i++) {
        int k;

        for (k = 0; k < z->n; k++) {
            if (strcmp(z->items[k].name, req->items[i].name) == 0) {
                break;
            }
        }
        if (k == z->n) {
            if (z->n == RH_RES_MAX) {
                continue;
            }
            snprintf(z->items[k].name, RH_RES_NAME_MAX, "%s",
                     req->items[i].name);
            z->items[k].amount = 0;
            z->n++;
        }
        z->items[k].amount += sign * req->items[i].amount;
    }
}

/* ---- placement groups' bundles in the books ----------------------------------- */

/* A live rank of node `node` (any node when -1, a node not in `used` when
 * avoid) with room for req; -1 when none. Under gs_lock. */
static int rh_gs_bundle_rank(const rh_res_req_t *req, int node,
                             const int *used, int avoid)
{
    for (int r = 0; r < rh_pl.nranks; r++) {
        int nd = rh_pl.node_of[r];

        if (!rh_rank_alive(r) || (node >= 0 && nd != node) ||
            (avoid && used[nd]) || !rh_place_gs_fits(r, req, 1)) {
            continue;
        }
        return r;
    }
    return -1;
}

static void rh_gs_bundles_undo(const rh_res_req_t *bundles, int *ranks,
                               int upto)
{
    for (int b = 0; b < upto; b++) {
        if (ranks[b] >= 0) {
            rh_place_gs_reserve(ranks[b], &bundles[b], -1);
            ranks[b] = -1;
        }
    }
}

/* Every bundle on ranks of one node. Under gs_lock. */
static int rh_gs_bundles_one_node(const rh_res_req_t *bundles, int n,
                                  int *ranks, int node)
{
    for (int b = 0; b < n; b++) {
        int r = rh_gs_bundle_rank(&bundles[b], node, NULL, 0);

        if (r < 0) {
            rh_gs_bundles_undo(bundles, ranks, b);
            return 0;
        }
        ranks[b] = r;
        rh_place_gs_reserve(r, &bundles[b], 1);
    }
    return 1;
}

/* A rank for one bundle by the group's strategy, given the nodes (used)
 * its other bundles take: the packing ones look there first (STRICT_PACK
 * only there), the spreading ones elsewhere first (STRICT_SPREAD only
 * there). -1 when none has room. Under gs_lock. */
static int rh_gs_bundle_by_strategy(const rh_res_req_t *bundle,
                                    rh_pg_strategy_t strategy,
                                    const int *used)
{
    int r = -1;

    if (strategy == RH_PG_STRICT_PACK || strategy == RH_PG_PACK) {
        for (int nd = 0; nd < rh_pl.nnodes && r < 0; nd++) {
            if (used[nd]) {
                r = rh_gs_bundle_rank(bundle, nd, NULL, 0);
            }
        }
        if (r < 0 && strategy == RH_PG_PACK) {
            r = rh_gs_bundle_rank(bundle, -1, NULL, 0);
        }
    } else {
        r = rh_gs_bundle_rank(bundle, -1, used, 1);
        if (r < 0 && strategy == RH_PG_SPREAD) {
            r = rh_gs_bundle_rank(bundle, -1, NULL, 0);
        }
    }
    return r;
}

/* rh_place_gs_hold_group under gs_lock; used is a zeroed array of nnodes. */
static int rh_gs_bundles_place(const rh_res_req_t *bundles, int n,
                               rh_pg_strategy_t strategy, int *ranks,
                               int *used)
{
    for (int b = 0; b < n; b++) {
        ranks[b] = -1;
    }
    if (strategy == RH_PG_STRICT_PACK || strategy == RH_PG_PACK) {
        for (int nd = 0; nd < rh_pl.nnodes; nd++) {
            if (rh_gs_bundles_one_node(bundles, n, ranks, nd)) {
                return 1;
            }
        }
        if (strategy == RH_PG_STRICT_PACK) {
            return 0;
        }
    }
    for (int b = 0; b < n; b++) {
        int r = rh_gs_bundle_by_strategy(&bundles[b], strategy, used);

        if (r < 0) {
            rh_gs_bundles_undo(bundles, ranks, b);
            return 0;
        }
        ranks[b] = r;
        used[rh_pl.node_of[r]] = 1;
        rh_place_gs_reserve(r, &bundles[b], 1);
    }
    return 1;
}

typedef int (*rh_gs_bundles_fn)(const rh_res_req_t *bundles, int n,
                                rh_pg_strategy_t strategy, int *ranks,
                                int *used);

/* fn in one critical section (task placement never sees half a group),
 * with a zeroed array of the nodes used. */
static int rh_gs_bundles_locked(rh_gs_bundles_fn fn,
                                const rh_res_req_t *bundles, int n,
                                rh_pg_strategy_t strategy, int *ranks)
{
    int *used = calloc((size_t)rh_pl.nnodes, sizeof(int));
    int ok;

    if (used == NULL) {
        return 0;
    }
    pthread_mutex_lock(&rh_pl.gs_lock);
    ok = fn(bundles, n, strategy, ranks, used);
    pthread_mutex_unlock(&rh_pl.gs_lock);
    free(used);
    return ok;
}

int rh_place_gs_hold_group(const rh_res_req_t *bundles, int n,
                           rh_pg_strategy_t strategy, int *ranks)
{
    return rh_gs_bundles_locked(rh_gs_bundles_place, bundles, n, strategy,
                                ranks);
}

/* rh_place_gs_hold_bundles under gs_lock: the missing bundles one by one,
 * by the nodes the others use; on failure those placed here are undone. */
static int rh_gs_bundles_again(const rh_res_req_t *bundles, int n,
                               rh_pg_strategy_t strategy, int *ranks,
                               int *used)
{
    int *fresh = malloc((size_t)n * sizeof(int)), any = 0, ok = 1;

    if (fresh == NULL) {
        return 0;
    }
    for (int b = 0; b < n; b++) {
        fresh[b] = -1;
        if (ranks[b] >= 0) {
            used[rh_pl.node_of[ranks[b]]] = 1;
            any = 1;
        }
    }
    if (!any) {   /* every bundle went: laid out as a new group */
        free(fresh);
        return rh_gs_bundles_place(bundles, n, strategy, ranks, used);
    }
    for (int b = 0; ok && b < n; b++) {
        int r;

        if (ranks[b] >= 0) {
            continue;
        }
        r = rh_gs_bundle_by_strategy(&bundles[b], strategy, used);
        if (r < 0) {
            ok = 0;
            break;
        }
        fresh[b] = r;
        used[rh_pl.node_of[r]] = 1;
        rh_place_gs_reserve(r, &bundles[b], 1);
    }
    if (ok) {
        for (int b = 0; b < n; b++) {
            if (fresh[b] >= 0) {
                ranks[b] = fresh[b];
            }
        }
    } else {
        rh_gs_bundles_undo(bundles, fresh, n);
    }
    free(fresh);
    return ok;
}

int rh_place_gs_hold_bundles(const rh_res_req_t *bundles, int n,
                             rh_pg_strategy_t strategy, int *ranks)
{
    return rh_gs_bundles_locked(rh_gs_bundles_again, bundles, n, strategy,
                                ranks);
}

void rh_place_gs_release_group(const rh_res_req_t *bundles, int n,
                               const int *ranks)
{
    pthread_mutex_lock(&rh_pl.gs_lock);
    for (int b = 0; b < n; b++) {
        if (ranks[b] >= 0 && ranks[b] < rh_pl.nranks) {
            rh_place_gs_reserve(ranks[b], &bundles[b], -1);
        }
    }
    pthread_mutex_unlock(&rh_pl.gs_lock);
}

static void rh_req_format(const rh_res_req_t *req, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "CPU=%d", req ? req->cpus : 1);

    for (int i = 0; req != NULL && i < req->n && n < len; i++) {
        char amount[32];

        rh_resources_amount_str(req->items[i].name, req->items[i].amount,
                                amount, sizeof(amount));
        n += (size_t)snprintf(buf + n, len - n, ",%s=%s",
                              req->items[i].name, amount);
    }
}

int rh_place_feasible(int node, const rh_res_req_t *req, char *why,
                      size_t len)
{
    char need[256];

    for (int r = 0; r < rh_pl.nranks; r++) {
        if ((node < 0 || rh_pl.node_of[r] == node) &&
            rh_place_offers(r, req, 0)) {
            return 1;
        }
    }
    if (why != NULL) {
        rh_req_format(req, need, sizeof(need));
        if (node < 0) {
            snprintf(why, len, "%s, which no rank of the job offers", need);
        } else {
            snprintf(why, len, "%s, which no rank of node %d offers", need,
                     node);
        }
    }
    return 0;
}

/* A live rank of node that offers req (with room: see rh_place_offers),
 * taking turns; -1 when none. */
static int rh_place_rank_pick(int node, const rh_res_req_t *req, int room)
{
    int n = 0, pick;

    for (int r = 0; r < rh_pl.nranks; r++) {
        n += rh_pl.node_of[r] == node && rh_rank_alive(r) &&
             rh_place_offers(r, req, room);
    }
    if (n == 0) {
        return -1;
    }
    pick = (int)(atomic_fetch_add_explicit(&rh_pl.rank_turn, 1,
                                           memory_order_relaxed) %
                 (unsigned)n);
    for (int r = 0; r < rh_pl.nranks; r++) {
        if (rh_pl.node_of[r] == node && rh_rank_alive(r) &&
            rh_place_offers(r, req, room) && pick-- == 0) {
            return r;
        }
    }
    return -1;
}

int rh_place_rank_on(int node, const rh_res_req_t *req)
{
    return rh_place_rank_pick(node, req, 1);
}

uint32_t rh_place_pack(const rh_task_params_t *params)
{
    if (params == NULL ||
        !(params->field_mask & RH_TASK_PARAM_FIELD_STRATEGY)) {
        return 0;
    }
    switch (params->strategy) {
    case RH_STRATEGY_SPREAD:
        return RH_STRATEGY_SPREAD;
    case RH_STRATEGY_NODE_AFFINITY:
        /* A soft affinity to no node is DEFAULT; a hard one was refused. */
        if (params->node < 0 || params->node >= rh_pl.nnodes) {
            return 0;
        }
        return RH_STRATEGY_NODE_AFFINITY |
               (params->soft ? RH_PLACE_SOFT : 0) |
               ((uint32_t)params->node << RH_PLACE_NODE_SHIFT);
    default:
        return 0;   /* DEFAULT; a group's tasks go where their bundle is */
    }
}

/* A live rank for a rerun on node (-1: any) that offers req, with room
 * only or not; -1 when none. Another rank than this one first (its
 * placement sent the task away from here: this rank was busy, or bound
 * elsewhere), and there one of another node than lost's (its store may
 * still hold what the lost run wrote there, which the rerun's returns
 * then take over or replace); this one last, yet before any rank without
 * room: a rank whose CPUs bundles hold would keep it waiting for the
 * groups' end. */
static int rh_place_rerun_pick(int node, const rh_res_req_t *req, int lost,
                               int room_only)
{
    static _Atomic unsigned next;
    int n = rh_pl.nranks, me = rh_rank();
    int lost_node = lost >= 0 && lost < n ? rh_pl.node_of[lost] : -1;
    unsigned start = atomic_fetch_add_explicit(&next, 1,
                                               memory_order_relaxed);

    for (int room = 1; room >= !!room_only; room--) {
        for (int pass = 0; pass < 3; pass++) {
            for (int k = 0; k < n; k++) {
                int r = (int)((start + (unsigned)k) % (unsigned)n);

                if ((pass == 2) == (r == me) && rh_rank_alive(r) &&
                    (node < 0 || rh_pl.node_of[r] == node) &&
                    (pass != 0 || rh_pl.node_of[r] != lost_node) &&
                    rh_place_offers(r, req, room)) {
                    return r;
                }
            }
        }
    }
    return -1;
}

int rh_place_rerun_rank(uint32_t place, const rh_res_req_t *req, int lost,
                        char *why, size_t len)
{
    int node = -1, r;
    char need[256];

    if ((place & RH_PLACE_STRATEGY_MASK) == RH_STRATEGY_NODE_AFFINITY) {
        node = (int)(place >> RH_PLACE_NODE_SHIFT);
        if (place & RH_PLACE_SOFT) {
            /* As at submission: its node while a rank there has room,
             * else anywhere. */
            r = rh_place_rerun_pick(node, req, lost, 1);
            if (r >= 0) {
                return r;
            }
            node = -1;
        }
    }
    r = rh_place_rerun_pick(node, req, lost, 0);
    if (r < 0) {
        rh_req_format(req, need, sizeof(need));
        if (node >= 0) {
            snprintf(why, len, "no live rank of node %d, to which it is "
                     "bound, offers %s", node, need);
        } else {
            snprintf(why, len, "no live rank offers %s", need);
        }
    }
    return r;
}

/* ---- decisions at submit ------------------------------------------------------ */

static int rh_place_here_or(int rank)
{
    return rank == rh_rank() ? -1 : rank;
}

static rh_status_t rh_place_spread(const rh_res_req_t *req, int *rank)
{
    unsigned start = atomic_fetch_add_explicit(&rh_pl.spread_turn, 1,
                                               memory_order_relaxed);
    char why[300];

    for (int k = 0; k < rh_pl.nnodes; k++) {
        int node = (int)((start + (unsigned)k) % (unsigned)rh_pl.nnodes);
        int r = rh_place_rank_on(node, req);

        if (r >= 0) {
            *rank = rh_place_here_or(r);
            return RH_OK;
        }
    }
    rh_place_feasible(-1, req, why, sizeof(why));
    *rank = RH_PLACE_SPILL;   /* the global scheduler keeps it pending */
    return RH_OK;
}

static rh_status_t rh_place_default(const rh_res_req_t *req, int *rank)
{
    rh_pool_t *pool = rh_core_pool();

    *rank = -1;
    if (rh_pl.nranks <= 1) {
        return RH_OK;
    }
    if (!rh_place_rank_fits(rh_rank(), req)) {
        *rank = RH_PLACE_SPILL;
        return RH_OK;
    }
    /* A task submitted by a task stays with its parent when it fits: the
     * parent's worker runs it while it waits for it (fork-join), which
     * sending it away would only delay. */
    if (rh_pool_current() != NULL) {
        return RH_OK;
    }
    /* Resources it would wait for here (an actor's CPUs, held by others
     * for their lives, may never come back): the global scheduler looks
     * for a node that has them now. */
    if (req != NULL && !rh_resources_available(req)) {
        *rank = RH_PLACE_SPILL;
        return RH_OK;
    }
    if (rh_pl_since_check-- == 0) {
        long limit = (long)rh_cfg.spillback_threshold *
                     rh_pool_num_workers(pool);

        rh_pl_since_check = RH_PLACE_RECHECK - 1;
        rh_pl_busy = rh_pool_backlog(pool) >= limit;
    }
    if (rh_pl_busy) {
        *rank = RH_PLACE_SPILL;
    }
    return RH_OK;
}

rh_status_t rh_place_decide(const rh_task_params_t *params,
                            const rh_res_req_t *req, int *rank)
{
    int node, r;

    *rank = -1;
    if (params == NULL ||
        !(params->field_mask & RH_TASK_PARAM_FIELD_STRATEGY) ||
        params->strategy == RH_STRATEGY_DEFAULT) {
        return rh_place_default(req, rank);
    }
    switch (params->strategy) {
    case RH_STRATEGY_SPREAD:
        return rh_place_spread(req, rank);
    case RH_STRATEGY_NODE_AFFINITY:
        node = params->node;
        if (node < 0 || node >= rh_pl.nnodes) {
            if (params->soft) {
                return rh_place_default(req, rank);
            }
            return rh_error_set(RH_ERR_INVALID_PARAM, "NODE_AFFINITY to node "
                                "%d, but the job has nodes 0 to %d", node,
                                rh_pl.nnodes - 1);
        }
        if (node == rh_node_id() && rh_place_rank_fits(rh_rank(), req)) {
            return RH_OK;
        }
        r = rh_place_rank_on(node, req);
        if (r < 0 && !params->soft) {
            /* bundles hold the node's CPUs: the task waits there */
            r = rh_place_rank_pick(node, req, 0);
        }
        if (r < 0) {
            char why[300];

            if (params->soft) {
                return rh_place_default(req, rank);
            }
            if (!rh_place_feasible(node, req, why, sizeof(why))) {
                return rh_error_set(RH_ERR_INVALID_PARAM, "NODE_AFFINITY to "
                                    "node %d: the task needs %s", node, why);
            }
            return rh_error_set(RH_ERR_PEER_FAILED, "NODE_AFFINITY to node "
                                "%d, whose ranks have all failed", node);
        }
        *rank = rh_place_here_or(r);
        return RH_OK;
    default:
        return rh_error_set(RH_ERR_INVALID_PARAM, "unknown strategy %d",
                            (int)params->strategy);
    }
}

/* ---- the global scheduler ------------------------------------------------------ */

/* The feasible live rank with the least estimated wait (-1: none), among
 * those with room besides what actors hold for their lives first (a rank
 * whose CPUs its actors keep may not free them for the whole job), and
 * there another than from, which sent it here for want of room (what its
 * heartbeat last said may predate that). Under gs_lock. */
static int rh_gs_pick(const rh_res_req_t *req, const rh_place_hdr_t *h,
                      int from)
{
    int best = -1, known = 0, pass = 0;
    double best_wait = 0, sum_ns = 0, typical_ns = RH_PLACE_DEFAULT_TASK_NS;
    unsigned start = rh_pl.gs_turn++;

    /* A rank that has not reported its task time yet is taken to be as
     * fast as the others: the default would make it look slower or faster
     * than ranks that measured theirs, and skew the first placements. */
    for (int r = 0; r < rh_pl.nranks; r++) {
        if (rh_pl.gs[r].task_ns > 0) {
            sum_ns += rh_pl.gs[r].task_ns;
            known++;
        }
    }
    if (known > 0) {
        typical_ns = sum_ns / known;
    }
again:
    for (int k = 0; k < rh_pl.nranks; k++) {
        int r = (int)((start + (unsigned)k) % (unsigned)rh_pl.nranks);
        rh_gs_rank_t *g = &rh_pl.gs[r];
        double task_ns = g->task_ns > 0 ? g->task_ns : typical_ns;
        double coming = g->assigned > g->arrived ?
                        (double)(g->assigned - g->arrived) : 0;
        double wait;

        if (!rh_rank_alive(r) || (pass == 0 && r == from) ||
            !rh_place_gs_fits(r, req, pass < 2)) {
            continue;
        }
        wait = ((double)g->backlog + coming + 1) * task_ns /
               (double)(rh_pl.offer[r].cpus > 0 ? rh_pl.offer[r].cpus : 1);
        if (h->input_bytes != 0 && rh_pl.node_of[r] != h->input_node) {
            wait += (double)h->input_bytes /
                    (rh_pl.gs_bw > 0 ? rh_pl.gs_bw : RH_PLACE_DEFAULT_BW);
        }
        if (best < 0 || wait < best_wait) {
            best = r;
            best_wait = wait;
        }
    }
    if (best < 0 && ++pass < 3) {
        goto again;   /* at last, where actors may end */
    }
    if (best >= 0) {
        rh_pl.gs[best].assigned++;
    }
    return best;
}

static void rh_placed_apply(uint64_t token, int rank);

static void rh_gs_answer(int to, uint64_t token, int rank)
{
    rh_placed_hdr_t a = { token, rank, 0 };

    if (to == rh_rank()) {
        rh_placed_apply(token, rank);
        return;
    }
    (void)rh_am_send((uint32_t)to, RH_AM_ID_SCHED_PLACED, &a, sizeof(a), NULL,
                     0, NULL, NULL);
}

/* Places a request, or keeps it waiting with a warning. */
static void rh_gs_place(int from, const rh_place_hdr_t *h,
                        const rh_res_req_t *req)
{
    unsigned long waiting;
    int r;

    pthread_mutex_lock(&rh_pl.gs_lock);
    r = rh_gs_pick(req, h, from);
    if (r < 0) {
        rh_gs_wait_t *w = malloc(sizeof(*w));
        char why[400], need[256];

        if (rh_place_feasible(-1, req, why, sizeof(why))) {
            rh_req_format(req, need, sizeof(need));
            snprintf(why, sizeof(why), "%s, which only ranks that are dead "
                     "or whose placement groups' bundles hold it now offer",
                     need);
        }
        if (w != NULL) {
            w->from = from;
            w->h = *h;
            w->req = *req;
            w->next = rh_pl.gs_waiting;
            rh_pl.gs_waiting = w;
        }
        waiting = ++rh_pl.gs_nwaiting;
        pthread_mutex_unlock(&rh_pl.gs_lock);
        /* One line per doubling: a driver may submit a million of them. */
        if ((waiting & (waiting - 1)) == 0) {
            rh_warn("a task of rank %d needs %s: it stays pending until it "
                    "fits (tasks waiting so far: %lu)", from, why, waiting);
        }
        return;
    }
    pthread_mutex_unlock(&rh_pl.gs_lock);
    rh_gs_answer(from, h->token, r);
}

/* Tries the waiting requests again (ranks or groups changed). */
void rh_place_gs_retry(void)
{
    rh_gs_wait_t *w;

    pthread_mutex_lock(&rh_pl.gs_lock);
    w = rh_pl.gs_waiting;
    rh_pl.gs_waiting = NULL;
    pthread_mutex_unlock(&rh_pl.gs_lock);
    while (w != NULL) {
        rh_gs_wait_t *next = w->next;
        int r;

        pthread_mutex_lock(&rh_pl.gs_lock);
        r = rh_gs_pick(&w->req, &w->h, w->from);
        if (r < 0) {
            w->next = rh_pl.gs_waiting;
            rh_pl.gs_waiting = w;
        }
        pthread_mutex_unlock(&rh_pl.gs_lock);
        if (r >= 0) {
            rh_gs_answer(w->from, w->h.token, r);
            free(w);
        }
        w = next;
    }
}

/* A request travels as its used items only. */
#define RH_REQ_HEAD offsetof(rh_res_req_t, items)

static size_t rh_req_wire_len(const rh_res_req_t *req)
{
    return RH_REQ_HEAD + (size_t)req->n * sizeof(req->items[0]);
}

static int rh_req_ok(const rh_res_req_t *req)
{
    if (req->cpus < 0 || req->cpus > RH_RES_CPUS_MAX || req->n < 0 ||
        req->n > RH_RES_MAX) {
        return 0;
    }
    for (int i = 0; i < req->n; i++) {
        if (memchr(req->items[i].name, '\0', RH_RES_NAME_MAX) == NULL ||
            req->items[i].amount < 0 ||
            req->items[i].amount > RH_RES_AMOUNT_MAX) {
            return 0;
        }
    }
    return 1;
}

static rh_status_t rh_gs_on_place(void *arg, rh_am_msg_t *msg)
{
    rh_place_hdr_t h;
    rh_res_req_t req;

    (void)arg;
    if (rh_rank() != RH_GS_RANK || msg->rndv_desc != NULL ||
        msg->data_len < RH_REQ_HEAD || msg->data_len > sizeof(req)) {
        return RH_ERR_MALFORMED;
    }
    memcpy(&h, msg->hdr, sizeof(h));
    memset(&req, 0, sizeof(req));
    memcpy(&req, msg->data, msg->data_len);
    if (!rh_req_ok(&req) || rh_req_wire_len(&req) != msg->data_len) {
        return RH_ERR_MALFORMED;
    }
    rh_gs_place((int)msg->src, &h, &req);
    return RH_OK;
}

int rh_place_gs_actor_cpus(int r)
{
    int n = 0;

    if (rh_pl.gs != NULL && r >= 0 && r < rh_pl.nranks) {
        pthread_mutex_lock(&rh_pl.gs_lock);
        n = rh_pl.gs[r].actor_cpus;
        pthread_mutex_unlock(&rh_pl.gs_lock);
    }
    return n;
}

static void rh_gs_load(int from, const rh_load_hdr_t *h)
{
    rh_gs_rank_t *g = &rh_pl.gs[from];
    int freed;

    pthread_mutex_lock(&rh_pl.gs_lock);
    freed = h->actor_cpus >= 0 && h->actor_cpus < g->actor_cpus;
    if (h->actor_cpus >= 0 && h->actor_cpus <= rh_pl.offer[from].cpus) {
        g->actor_cpus = (int)h->actor_cpus;
    }
    g->backlog = (long)h->backlog;
    /* A placement takes microseconds to arrive. One made before the last
     * heartbeat and still missing now never will (its submitter failed it,
     * or died): forget it. */
    if (g->before > h->arrived) {
        g->assigned -= g->before - h->arrived;
    }
    if (g->assigned < h->arrived) {
        g->assigned = h->arrived;
    }
    g->arrived = h->arrived;
    g->before = g->assigned;
    g->task_ns = (double)h->task_ns;
    if (h->bw_kbps != 0) {
        double bw = (double)h->bw_kbps * 1024.0 / 1e6;   /* bytes per ns */

        rh_pl.gs_bw = rh_pl.gs_bw <= 0 ? bw : 0.9 * rh_pl.gs_bw + 0.1 * bw;
    }
    pthread_mutex_unlock(&rh_pl.gs_lock);
    if (freed) {
        /* An actor that held CPUs ended: bundles may fit now. */
        rh_pg_gs_room_freed();
    }
}

static rh_status_t rh_gs_on_load(void *arg, rh_am_msg_t *msg)
{
    rh_load_hdr_t h;

    (void)arg;
    if (rh_rank() != RH_GS_RANK) {
        return RH_ERR_MALFORMED;
    }
    memcpy(&h, msg->hdr, sizeof(h));
    rh_gs_load((int)msg->src, &h);
    return RH_OK;
}

/* Progress thread, every RAYHPC_HEARTBEAT_MS: our load to the scheduler. */
static void rh_place_tick(uint64_t now)
{
    rh_load_hdr_t h;
    uint64_t pulls = 0, bytes, joined = 0, ns;

    (void)now;
    /* closing is set on this thread before the pool goes: look at it
     * first. */
    if (rh_core_closing() || rh_core_pool() == NULL) {
        return;
    }
    (void)pulls;
    (void)joined;
    bytes = rh_pull_rdma_bytes_total();
    ns = rh_pull_time_ns();
    h.arrived = atomic_load_explicit(&rh_pl.arrived, memory_order_relaxed);
    h.backlog = (uint64_t)rh_pool_backlog(rh_core_pool());
    h.task_ns = atomic_load_explicit(&rh_pl.task_ns, memory_order_relaxed);
    h.actor_cpus = atomic_load_explicit(&rh_pl.actor_cpus,
                                        memory_order_relaxed);
    h.bw_kbps = ns != 0 ? (uint64_t)((double)bytes / 1024.0 /
                                     ((double)ns / 1e6)) : 0;
    if (rh_rank() == RH_GS_RANK) {
        rh_gs_load(RH_GS_RANK, &h);
    } else if (rh_rank_alive(RH_GS_RANK)) {
        (void)rh_am_send(RH_GS_RANK, RH_AM_ID_SCHED_LOAD, &h, sizeof(h), NULL,
                         0, NULL, NULL);
    }
}

/* ---- the submitter: spilled tasks ------------------------------------------ */

static rh_task_t *rh_spill_take(uint64_t token)
{
    rh_task_t *t = NULL;

    pthread_mutex_lock(&rh_pl.spill_lock);
    (void)rh_hmap_del(&rh_pl.spills, &token, &t);
    pthread_mutex_unlock(&rh_pl.spill_lock);
    return t;
}

/* Takes any spilled task still waiting for its answer (NULL: none). */
static rh_task_t *rh_spill_pop(void)
{
    rh_task_t *t = NULL;

    pthread_mutex_lock(&rh_pl.spill_lock);
    (void)rh_hmap_pop(&rh_pl.spills, NULL, &t);
    pthread_mutex_unlock(&rh_pl.spill_lock);
    return t;
}

static void rh_placed_apply(uint64_t token, int rank)
{
    rh_task_t *t = rh_spill_take(token);

    if (t == NULL) {
        return;
    }
    t->forward_to = rank == rh_rank() || rank < 0 ? -1 : rank;
    if (t->forward_to < 0) {
        rh_place_arrived();
    } else {
        t->gs_placed = 1;
    }
    rh_task_dispatch(t);
}

static rh_status_t rh_place_on_placed(void *arg, rh_am_msg_t *msg)
{
    rh_placed_hdr_t h;

    (void)arg;
    memcpy(&h, msg->hdr, sizeof(h));
    if (msg->src != RH_GS_RANK || h.rank < 0 || h.rank >= rh_size()) {
        return RH_ERR_MALFORMED;
    }
    rh_placed_apply(h.token, h.rank);
    return RH_OK;
}

/* The largest input held on another node: where it is and how big. */
static void rh_spill_inputs(const rh_task_t *t, rh_place_hdr_t *h)
{
    h->input_bytes = 0;
    h->input_node = -1;
    for (int i = 0; i < t->nargs; i++) {
        const rh_task_slot_t *s = &t->slots[i];

        if (s->kind == RH_ARG_REF && s->fut != NULL &&
            s->fut->len > h->input_bytes) {
            h->input_bytes = s->fut->len;
            h->input_node = rh_node_id();
        }
    }
}

void rh_place_spill(rh_task_t *t)
{
    rh_task_t **slot;
    rh_place_hdr_t h;
    rh_res_req_t req;

    if (!rh_rank_alive(RH_GS_RANK)) {
        t->forward_to = -1;   /* no scheduler to ask: here it is */
        rh_task_dispatch(t);
        return;
    }
    memset(&h, 0, sizeof(h));
    memset(&req, 0, sizeof(req));
    req.cpus = 1;
    if (t->res != NULL) {
        req = *t->res;
    }
    rh_spill_inputs(t, &h);
    pthread_mutex_lock(&rh_pl.spill_lock);
    h.token = ++rh_pl.next_token;
    slot = rh_hmap_put(&rh_pl.spills, &h.token, NULL);
    if (slot != NULL) {
        *slot = t;
    }
    pthread_mutex_unlock(&rh_pl.spill_lock);
    if (slot == NULL) {
        t->forward_to = -1;   /* no room to wait for an answer: here it is */
        rh_task_dispatch(t);
        return;
    }
    atomic_fetch_add_explicit(&rh_pl.spilled, 1, memory_order_relaxed);
    if (rh_rank() == RH_GS_RANK) {
        rh_gs_place(RH_GS_RANK, &h, &req);
        return;
    }
    if (rh_am_send(RH_GS_RANK, RH_AM_ID_SCHED_PLACE, &h, sizeof(h), &req,
                   rh_req_wire_len(&req), NULL, NULL) != RH_OK &&
        (t = rh_spill_take(h.token)) != NULL) {
        t->forward_to = -1;
        rh_task_dispatch(t);
    }
}

/* A question to the scheduler was lost (after the retries): the task runs
 * here, as when there is no scheduler to ask. */
static void rh_place_lost(void *arg, uint32_t dest, const void *hdr,
                          size_t hdr_len, const void *data, size_t len,
                          rh_status_t status)
{
    rh_place_hdr_t h;
    rh_task_t *t;

    (void)arg;
    (void)dest;
    (void)hdr_len;
    (void)data;
    (void)len;
    (void)status;
    memcpy(&h, hdr, sizeof(h));
    if ((t = rh_spill_take(h.token)) != NULL) {
        t->forward_to = -1;
        rh_task_dispatch(t);
    }
}

/* The scheduler died: what waited for it runs here. */
static void rh_place_on_peer_failure(void *arg, int rank)
{
    (void)arg;
    if (rank != RH_GS_RANK) {
        if (rh_rank() == RH_GS_RANK) {
            rh_place_gs_retry();
        }
        return;
    }
    for (rh_task_t *t; (t = rh_spill_pop()) != NULL; ) {
        t->forward_to = -1;
        rh_task_dispatch(t);
    }
}

/* ---- set-up ------------------------------------------------------------------ */

rh_status_t rh_place_setup(void)
{
    rh_status_t status;

    status = rh_am_register(RH_AM_ID_SCHED_LOAD, sizeof(rh_load_hdr_t),
                            sizeof(rh_load_hdr_t), rh_gs_on_load, NULL);
    if (status == RH_OK) {
        status = rh_am_register(RH_AM_ID_SCHED_PLACE, sizeof(rh_place_hdr_t),
                                sizeof(rh_place_hdr_t), rh_gs_on_place,
                                NULL);
    }
    if (status == RH_OK) {
        status = rh_am_register(RH_AM_ID_SCHED_PLACED,
                                sizeof(rh_placed_hdr_t),
                                sizeof(rh_placed_hdr_t), rh_place_on_placed,
                                NULL);
    }
    if (status == RH_OK) {
        status = rh_am_set_lost(RH_AM_ID_SCHED_PLACE, RH_AM_RETRIES,
                                rh_place_lost, NULL);
    }
    if (status == RH_OK) {
        status = rh_tp_on_peer_failure(rh_place_on_peer_failure, NULL);
    }
    return status;
}

void rh_place_start(void)
{
    if (rh_pl.nranks > 1) {
        rh_tp_set_tick(rh_place_tick, rh_cfg.heartbeat_ms * 1000000ull);
    }
}

void rh_place_teardown(void)
{
    /* Spilled tasks still unanswered fail (the pool is gone). */
    for (rh_task_t *t; (t = rh_spill_pop()) != NULL; ) {
        rh_task_fail_all(t, "the rank ended before its task was placed");
        rh_task_free(t);
    }
    pthread_mutex_lock(&rh_pl.spill_lock);
    rh_hmap_fini(&rh_pl.spills);
    pthread_mutex_unlock(&rh_pl.spill_lock);
    while (rh_pl.gs_waiting != NULL) {
        rh_gs_wait_t *w = rh_pl.gs_waiting;

        rh_pl.gs_waiting = w->next;
        free(w);
    }
    free(rh_pl.node_of);
    free(rh_pl.offer);
    free(rh_pl.gs);
    free(rh_pl.reserved);
    rh_pl.reserved = NULL;
    free((void *)rh_pl.bundle_cpus);
    rh_pl.bundle_cpus = NULL;
    rh_pl.node_of = NULL;
    rh_pl.offer = NULL;
    rh_pl.gs = NULL;
    rh_pl.nranks = rh_pl.nnodes = 0;
    rh_pl.gs_bw = 0;
    atomic_store(&rh_pl.spilled, 0);
    atomic_store(&rh_pl.task_ns, 0);
}
