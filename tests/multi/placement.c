/*
 * Where the scheduler puts tasks: SPREAD, spill-back of DEFAULT tasks from
 * a busy rank, custom resources of one node, NODE_AFFINITY to nodes that do
 * not exist, and placement groups. Rank 0 drives; the other ranks serve
 * from inside rh_finalize. Every rank of node 2 (RAYHPC_NODE_ID=vnode2, as
 * rayhpc-run --nodes sets it) offers the custom resource "special=4".
 *
 * usage: placement spread      SPREAD tasks reach every node:
 *                              "PLACEMENT SPREAD OK".
 *        placement busy        many 2 ms DEFAULT tasks from rank 0 (run with
 *                              a small RAYHPC_SPILLBACK_THRESHOLD) run on
 *                              every node: "PLACEMENT BUSY OK".
 *        placement resource    tasks asking for "special" all run on node 2:
 *                              "PLACEMENT RESOURCE OK".
 *        placement infeasible  a task asking for a resource no rank has
 *                              stays unfinished (the runtime warns, naming
 *                              it): "PLACEMENT INFEASIBLE OK".
 *        placement affinity    hard affinity to a missing node is refused,
 *                              soft affinity runs: "PLACEMENT AFFINITY OK".
 *        placement pg          placement groups (run with 2 workers a rank,
 *                              one rank a node): "PLACEMENT PG OK".
 *        placement pg_nested   a task in each bundle of a SPREAD group puts a
 *                              child into the next bundle from its own rank:
 *                              "PLACEMENT PG NESTED OK".
 *        placement offer       the CPUs the scheduler counts for each rank
 *                              are those of its pool (run with ranks of
 *                              several nodes on one host, no
 *                              RAYHPC_NUM_WORKERS): "PLACEMENT OFFER OK".
 *        placement pg_wait     with one CPU a rank, a task in each bundle of
 *                              a SPREAD group waits for a child in its own
 *                              bundle, then for SPREAD children, which only
 *                              the ranks without bundles can run; once the
 *                              group is removed, every rank has room again:
 *                              "PLACEMENT PG WAIT OK".
 */
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "core/placement.h"
#include "rank_util.h"
#include "sched/pool.h"

/* Every wait gives up well before the other ranks' RAYHPC_FINALIZE_TIMEOUT
 * (60 s), so that a failure is reported here, not as a finalize timeout. */
#define WAIT_MS 20000
#define MAX_NODES 64
#define SPREAD_TASKS 40
#define BUSY_TASKS 400
#define BUSY_NS 2000000
#define RESOURCE_TASKS 20

/* ---- remote functions ------------------------------------------------- */

static rh_status_t where(rh_task_ctx_t *ctx)
{
    int32_t node = rh_node_id();

    return rh_task_return(ctx, 0, &node, sizeof(node));
}

/* Busy for its argument's nanoseconds, then where. */
static rh_status_t spin(rh_task_ctx_t *ctx)
{
    int64_t ns;
    double end;

    memcpy(&ns, rh_task_arg(ctx, 0, NULL), sizeof(ns));
    end = rank_now() + (double)ns * 1e-9;
    while (rank_now() < end) {
        /* busy */
    }
    return where(ctx);
}

/* ---- helpers ------------------------------------------------------------ */

/* In a bundle: submits "where" into the next bundle of the same group
 * from this rank, and returns {its own node, the child's node}. */
static rh_status_t pg_parent(rh_task_ctx_t *ctx)
{
    uint64_t a[3];
    rh_task_params_t p = { 0 };
    const void *v;
    size_t len;
    int32_t out[2] = { rh_node_id(), -1 };
    rh_ref_t r;
    rh_status_t st;

    memcpy(a, rh_task_arg(ctx, 0, NULL), sizeof(a));   /* pg, bundle, n */
    p.field_mask = RH_TASK_PARAM_FIELD_STRATEGY;
    p.strategy = RH_STRATEGY_PLACEMENT_GROUP;
    p.pg = a[0];
    p.bundle = (int)((a[1] + 1) % a[2]);
    st = rh_remote("where", NULL, 0, &p, &r);
    if (st == RH_OK) {
        st = rh_get(r, &v, &len, WAIT_MS);
    }
    if (st != RH_OK) {
        return rh_task_fail(ctx, "child in bundle %d: %s", p.bundle,
                            rh_last_error());
    }
    memcpy(&out[1], v, sizeof(out[1]));
    rh_release(r);
    rh_release(r);
    return rh_task_return(ctx, 0, out, sizeof(out));
}

/* In a bundle of one CPU: waits for a child in the same bundle (which
 * runs on the CPU the waiting task lends back to its bundle), then for one
 * SPREAD child per node (which must go where CPUs are not reserved).
 * Returns the number of children that answered. Its waits end first, so
 * that the driver sees why. */
static rh_status_t pg_waiter(rh_task_ctx_t *ctx)
{
    uint64_t a[2];
    rh_task_params_t p = { 0 };
    rh_ref_t r[MAX_NODES];
    int32_t done = 0;
    int n = rh_num_nodes(), sent = 0;
    const void *v;
    size_t len;
    rh_status_t st;

    memcpy(a, rh_task_arg(ctx, 0, NULL), sizeof(a));   /* pg, bundle */
    p.field_mask = RH_TASK_PARAM_FIELD_STRATEGY;
    p.strategy = RH_STRATEGY_PLACEMENT_GROUP;
    p.pg = a[0];
    p.bundle = (int)a[1];
    st = rh_remote("where", NULL, 0, &p, &r[0]);
    if (st == RH_OK) {
        st = rh_get(r[0], &v, &len, WAIT_MS / 2);
        if (st == RH_OK) {
            rh_release(r[0]);
        }
        rh_release(r[0]);
    }
    if (st != RH_OK) {
        return rh_task_fail(ctx, "child in its own bundle: %s",
                            rh_last_error());
    }
    done++;
    p.strategy = RH_STRATEGY_SPREAD;
    for (; sent < n && n <= MAX_NODES; sent++) {
        st = rh_remote("where", NULL, 0, &p, &r[sent]);
        if (st != RH_OK) {
            break;
        }
    }
    if (st == RH_OK) {
        const void *vs[MAX_NODES];
        size_t lens[MAX_NODES];

        st = rh_get_many(r, (size_t)sent, vs, lens, WAIT_MS / 2);
        for (int i = 0; st == RH_OK && i < sent; i++) {
            done++;
            rh_release(r[i]);
        }
    }
    for (int i = 0; i < sent; i++) {
        rh_release(r[i]);
    }
    if (st != RH_OK) {
        return rh_task_fail(ctx, "SPREAD child: %s", rh_last_error());
    }
    return rh_task_return(ctx, 0, &done, sizeof(done));
}

static int fail(const char *what)
{
    fprintf(stderr, "placement: %s (%s)\n", what, rh_last_error());
    return 1;
}

static rh_task_params_t with(rh_strategy_t strategy)
{
    rh_task_params_t p;

    memset(&p, 0, sizeof(p));
    p.field_mask = RH_TASK_PARAM_FIELD_STRATEGY;
    p.strategy = strategy;
    return p;
}

/* The node a where/spin task reported, after dropping both holds; -1 and
 * a message when its get failed. */
static int node_of(rh_ref_t r)
{
    const void *p;
    size_t len;
    int32_t node;
    rh_status_t st = rh_get(r, &p, &len, WAIT_MS);

    if (st != RH_OK || len != sizeof(node)) {
        fprintf(stderr, "placement: a task's get failed: %s (%s)\n",
                rh_status_string(st), rh_last_error());
        return -1;
    }
    memcpy(&node, p, sizeof(node));
    rh_release(r);
    rh_release(r);
    return node;
}

/* Counts per node of the nodes the n tasks report; 1 when one failed or
 * reported a node out of range. */
static int collect(rh_ref_t *refs, int n, int *count)
{
    int nodes = rh_num_nodes();
    int rc = 0;

    memset(count, 0, sizeof(int) * MAX_NODES);
    for (int i = 0; i < n; i++) {
        int node = node_of(refs[i]);

        if (node < 0 || node >= nodes) {
            fprintf(stderr, "placement: task %d reported node %d\n", i, node);
            rc = 1;
        } else {
            count[node]++;
        }
    }
    return rc;
}

static void format_counts(const int *count, char *buf, size_t len)
{
    size_t off = 0;

    buf[0] = '\0';
    for (int n = 0; n < rh_num_nodes() && off < len; n++) {
        off += (size_t)snprintf(buf + off, len - off, "%s%d", n ? " " : "",
                                count[n]);
    }
}

static int every_node_has_some(const int *count, const char *what)
{
    char buf[256];

    format_counts(count, buf, sizeof(buf));
    for (int n = 0; n < rh_num_nodes(); n++) {
        if (count[n] == 0) {
            fprintf(stderr, "placement: %s: node %d ran none (per node: "
                    "%s)\n", what, n, buf);
            return 1;
        }
    }
    return 0;
}

/* ---- modes ---------------------------------------------------------------- */

static int spread(void)
{
    rh_task_params_t params = with(RH_STRATEGY_SPREAD);
    rh_ref_t refs[SPREAD_TASKS];
    int count[MAX_NODES];
    char buf[256];

    for (int i = 0; i < SPREAD_TASKS; i++) {
        CHECK(rh_remote("where", NULL, 0, &params, &refs[i]));
    }
    if (collect(refs, SPREAD_TASKS, count) != 0 ||
        every_node_has_some(count, "SPREAD") != 0) {
        return 1;
    }
    format_counts(count, buf, sizeof(buf));
    printf("PLACEMENT SPREAD OK: %d tasks over %d nodes (%s)\n", SPREAD_TASKS,
           rh_num_nodes(), buf);
    return 0;
}

static int busy(void)
{
    static rh_ref_t refs[BUSY_TASKS];
    int64_t ns = BUSY_NS;
    rh_arg_t arg = rh_arg_bytes(&ns, sizeof(ns));
    int count[MAX_NODES];
    rh_stats_t s;
    char buf[256];

    for (int i = 0; i < BUSY_TASKS; i++) {
        CHECK(rh_remote("spin", &arg, 1, NULL, &refs[i]));
    }
    if (collect(refs, BUSY_TASKS, count) != 0 ||
        every_node_has_some(count, "DEFAULT from a busy rank") != 0) {
        return 1;
    }
    CHECK(rh_stats(&s));
    if (s.tasks_spilled == 0) {
        return fail("no task was given to the global scheduler");
    }
    format_counts(count, buf, sizeof(buf));
    printf("PLACEMENT BUSY OK: %d tasks of 2 ms over %d nodes (%s), %llu "
           "spilled\n", BUSY_TASKS, rh_num_nodes(), buf,
           (unsigned long long)s.tasks_spilled);
    return 0;
}

static int resource(void)
{
    rh_task_params_t params;
    rh_ref_t refs[RESOURCE_TASKS];
    int count[MAX_NODES];

    if (rh_num_nodes() < 3) {
        return fail("needs 3 nodes or more");
    }
    memset(&params, 0, sizeof(params));
    params.field_mask = RH_TASK_PARAM_FIELD_RESOURCES;
    params.resources = "special=1";
    for (int i = 0; i < RESOURCE_TASKS; i++) {
        CHECK(rh_remote("where", NULL, 0, &params, &refs[i]));
    }
    if (collect(refs, RESOURCE_TASKS, count) != 0) {
        return 1;
    }
    if (count[2] != RESOURCE_TASKS) {
        char buf[256];

        format_counts(count, buf, sizeof(buf));
        fprintf(stderr, "placement: tasks needing a resource of node 2 ran "
                "elsewhere (per node: %s)\n", buf);
        return 1;
    }
    printf("PLACEMENT RESOURCE OK: %d tasks, all on node 2\n",
           RESOURCE_TASKS);
    return 0;
}

static int infeasible(void)
{
    char name[32];
    rh_task_params_t params;
    rh_ref_t r;
    int ready = -1;

    /* built here so that the only line naming it is the runtime's */
    snprintf(name, sizeof(name), "%s%s=1", "unobtain", "ium");
    memset(&params, 0, sizeof(params));
    params.field_mask = RH_TASK_PARAM_FIELD_RESOURCES;
    params.resources = name;
    CHECK(rh_remote("where", NULL, 0, &params, &r));
    CHECK(rh_wait(&r, 1, 1, 500, &ready));
    if (ready != 0) {
        return fail("a task that fits nowhere finished");
    }
    printf("PLACEMENT INFEASIBLE OK: still waiting after 500 ms\n");
    return 0;
}

static int affinity(void)
{
    int nodes = rh_num_nodes();
    rh_task_params_t params = with(RH_STRATEGY_NODE_AFFINITY);
    rh_status_t st;
    rh_ref_t r;
    int node;

    params.node = nodes + 5;
    params.soft = 0;
    st = rh_remote("where", NULL, 0, &params, &r);
    if (st != RH_ERR_INVALID_PARAM || rh_last_error()[0] == '\0') {
        fprintf(stderr, "placement: hard affinity to node %d gave %s (%s)\n",
                nodes + 5, rh_status_string(st), rh_last_error());
        return 1;
    }
    printf("hard affinity refused: %s\n", rh_last_error());
    params.soft = 1;
    CHECK(rh_remote("where", NULL, 0, &params, &r));
    node = node_of(r);
    if (node < 0 || node >= nodes) {
        return fail("a soft affinity to a missing node did not run");
    }
    params.node = nodes - 1;
    params.soft = 0;
    CHECK(rh_remote("where", NULL, 0, &params, &r));
    if (node_of(r) != nodes - 1) {
        return fail("a hard affinity to the last node ran elsewhere");
    }
    printf("PLACEMENT AFFINITY OK: hard to node %d refused, soft ran on "
           "node %d\n", nodes + 5, node);
    return 0;
}

/* ---- placement groups -------------------------------------------------- */

/* n bundles of cpus each. */
static rh_status_t group(int n, int cpus, rh_pg_strategy_t strategy,
                         rh_pg_t *pg)
{
    rh_bundle_t b[MAX_NODES + 1];

    for (int i = 0; i < n; i++) {
        b[i].num_cpus = cpus;
        b[i].resources = NULL;
    }
    return rh_pg_create(b, n, strategy, pg);
}

/* The node of each of n bundles of a ready group; 1 on error. */
static int bundle_nodes(rh_pg_t pg, int n, int *node, const char *what)
{
    for (int i = 0; i < n; i++) {
        rh_status_t st = rh_pg_bundle_node(pg, i, &node[i]);

        if (st != RH_OK || node[i] < 0 || node[i] >= rh_num_nodes()) {
            fprintf(stderr, "placement: %s: bundle %d: %s, node %d (%s)\n",
                    what, i, rh_status_string(st), node[i], rh_last_error());
            return 1;
        }
    }
    return 0;
}

static int distinct(const int *node, int n, const char *what)
{
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < i; j++) {
            if (node[i] == node[j]) {
                fprintf(stderr, "placement: %s: bundles %d and %d both on "
                        "node %d\n", what, j, i, node[i]);
                return 1;
            }
        }
    }
    return 0;
}

/* A task in each bundle runs on the bundle's node. */
static int tasks_in_bundles(rh_pg_t pg, int n, const int *node,
                            const char *what)
{
    rh_ref_t refs[MAX_NODES];

    for (int i = 0; i < n; i++) {
        rh_task_params_t params = with(RH_STRATEGY_PLACEMENT_GROUP);

        params.pg = pg;
        params.bundle = i;
        CHECK(rh_remote("where", NULL, 0, &params, &refs[i]));
    }
    for (int i = 0; i < n; i++) {
        int got = node_of(refs[i]);

        if (got != node[i]) {
            fprintf(stderr, "placement: %s: the task of bundle %d ran on "
                    "node %d, the bundle is on node %d\n", what, i, got,
                    node[i]);
            return 1;
        }
    }
    return 0;
}

static int expect_timeout(rh_pg_t pg, const char *what)
{
    rh_status_t st = rh_pg_wait(pg, 500);

    if (st != RH_ERR_TIMEOUT) {
        fprintf(stderr, "placement: %s: rh_pg_wait gave %s, not a timeout "
                "(%s)\n", what, rh_status_string(st), rh_last_error());
        return 1;
    }
    return 0;
}

static int pg(void)
{
    int nodes = rh_num_nodes();
    int node[MAX_NODES + 1];
    rh_pg_t a, b, c, d, e;
    rh_task_params_t params;
    rh_status_t st;
    rh_ref_t r;

    if (nodes < 2 || nodes > MAX_NODES) {
        return fail("needs 2 to 64 nodes");
    }
    /* STRICT_PACK: both bundles on one node, and tasks in them there */
    CHECK(group(2, 1, RH_PG_STRICT_PACK, &a));
    CHECK(rh_pg_wait(a, WAIT_MS));
    if (bundle_nodes(a, 2, node, "STRICT_PACK") != 0) {
        return 1;
    }
    if (node[0] != node[1]) {
        fprintf(stderr, "placement: STRICT_PACK put its bundles on nodes %d "
                "and %d\n", node[0], node[1]);
        return 1;
    }
    if (tasks_in_bundles(a, 2, node, "STRICT_PACK") != 0) {
        return 1;
    }
    printf("pg: STRICT_PACK of 2 on node %d\n", node[0]);
    CHECK(rh_pg_remove(a));
    /* a removed group takes no more tasks */
    params = with(RH_STRATEGY_PLACEMENT_GROUP);
    params.pg = a;
    params.bundle = 0;
    st = rh_remote("where", NULL, 0, &params, &r);
    if (st == RH_OK) {
        const void *p;
        size_t len;

        st = rh_get(r, &p, &len, WAIT_MS);
        if (st == RH_OK) {
            return fail("a task in a removed group ran");
        }
        rh_release(r);
    } else if (st != RH_ERR_INVALID_PARAM) {
        fprintf(stderr, "placement: a task in a removed group gave %s\n",
                rh_status_string(st));
        return 1;
    }
    printf("pg: a task in a removed group: %s\n", rh_status_string(st));
    /* SPREAD of as many bundles as nodes: one on each */
    CHECK(group(nodes, 1, RH_PG_SPREAD, &b));
    CHECK(rh_pg_wait(b, WAIT_MS));
    if (bundle_nodes(b, nodes, node, "SPREAD") != 0 ||
        distinct(node, nodes, "SPREAD") != 0 ||
        tasks_in_bundles(b, nodes, node, "SPREAD") != 0) {
        return 1;
    }
    printf("pg: SPREAD of %d on distinct nodes\n", nodes);
    /* STRICT_SPREAD of one more bundle than nodes: never placed */
    CHECK(group(nodes + 1, 1, RH_PG_STRICT_SPREAD, &c));
    if (expect_timeout(c, "STRICT_SPREAD over too few nodes") != 0) {
        return 1;
    }
    if (rh_pg_bundle_node(c, 0, &node[0]) == RH_OK) {
        return fail("an unplaced group gave a bundle's node");
    }
    printf("pg: STRICT_SPREAD of %d not placed\n", nodes + 1);
    CHECK(rh_pg_remove(c));
    /* then a feasible one is placed next to b (one CPU of two free on
     * each node) */
    CHECK(group(nodes, 1, RH_PG_STRICT_SPREAD, &d));
    CHECK(rh_pg_wait(d, WAIT_MS));
    if (bundle_nodes(d, nodes, node, "STRICT_SPREAD") != 0 ||
        distinct(node, nodes, "STRICT_SPREAD") != 0 ||
        tasks_in_bundles(d, nodes, node, "STRICT_SPREAD") != 0) {
        return 1;
    }
    printf("pg: STRICT_SPREAD of %d placed after that\n", nodes);
    CHECK(rh_pg_remove(d));
    /* two CPUs on every node wait for b to give its one back */
    CHECK(group(nodes, 2, RH_PG_STRICT_SPREAD, &e));
    if (expect_timeout(e, "STRICT_SPREAD of 2 CPUs while b holds 1") != 0) {
        return 1;
    }
    printf("pg: STRICT_SPREAD of %d x 2 CPUs waits for SPREAD's CPUs\n",
           nodes);
    CHECK(rh_pg_remove(b));
    CHECK(rh_pg_wait(e, WAIT_MS));
    if (bundle_nodes(e, nodes, node, "STRICT_SPREAD of 2 CPUs") != 0 ||
        distinct(node, nodes, "STRICT_SPREAD of 2 CPUs") != 0 ||
        tasks_in_bundles(e, nodes, node, "STRICT_SPREAD of 2 CPUs") != 0) {
        return 1;
    }
    CHECK(rh_pg_remove(e));
    printf("PLACEMENT PG OK: STRICT_PACK, SPREAD and STRICT_SPREAD over %d "
           "nodes; unplaceable groups wait, and are placed once freed\n",
           nodes);
    return 0;
}

static int pg_nested(void)
{
    int nodes = rh_num_nodes();
    int node[MAX_NODES];
    rh_pg_t g;

    if (nodes < 2 || nodes > MAX_NODES) {
        return fail("needs 2 to 64 nodes");
    }
    CHECK(group(nodes, 1, RH_PG_SPREAD, &g));
    CHECK(rh_pg_wait(g, WAIT_MS));
    if (bundle_nodes(g, nodes, node, "SPREAD") != 0) {
        return 1;
    }
    for (int b = 0; b < nodes; b++) {
        uint64_t a[3] = { g, (uint64_t)b, (uint64_t)nodes };
        rh_arg_t arg = rh_arg_bytes(a, sizeof(a));
        rh_task_params_t p = with(RH_STRATEGY_PLACEMENT_GROUP);
        const void *v;
        size_t len;
        int32_t out[2];
        rh_ref_t r;

        p.pg = g;
        p.bundle = b;
        CHECK(rh_remote("pg_parent", &arg, 1, &p, &r));
        CHECK(rh_get(r, &v, &len, WAIT_MS));
        memcpy(out, v, sizeof(out));
        rh_release(r);
        rh_release(r);
        if (out[0] != node[b] || out[1] != node[(b + 1) % nodes]) {
            fprintf(stderr, "placement: bundle %d's task ran on node %d and "
                    "its child on node %d, not %d and %d\n", b, out[0],
                    out[1], node[b], node[(b + 1) % nodes]);
            return 1;
        }
    }
    CHECK(rh_pg_remove(g));
    printf("PLACEMENT PG NESTED OK: tasks of %d bundles put children into "
           "the next bundle from their own ranks\n", nodes);
    return 0;
}

/* Every rank here shares the host's cores as this one does: the
 * scheduler must count as many CPUs for each as its pool has workers, or
 * it sends tasks where they wait for CPUs that are not there. */
static int offer(void)
{
    int w = rh_pool_num_workers(rh_core_pool());
    rh_res_req_t all = { 0 }, more = { 0 };

    all.cpus = w;
    more.cpus = w + 1;
    for (int r = 0; r < rh_size(); r++) {
        if (!rh_place_rank_fits(r, &all) || rh_place_rank_fits(r, &more)) {
            fprintf(stderr, "placement: rank %d is not counted with the %d "
                    "CPUs of its pool\n", r, w);
            return 1;
        }
    }
    printf("PLACEMENT OFFER OK: %d ranks counted with %d CPUs each\n",
           rh_size(), w);
    return 0;
}

static int pg_wait(void)
{
    int nodes = rh_num_nodes();
    rh_ref_t r[2];
    rh_pg_t g;

    if (nodes < 3 || nodes > MAX_NODES) {
        return fail("needs 3 to 64 nodes");
    }
    CHECK(group(2, 1, RH_PG_SPREAD, &g));
    CHECK(rh_pg_wait(g, WAIT_MS));
    for (int b = 0; b < 2; b++) {
        uint64_t a[2] = { g, (uint64_t)b };
        rh_arg_t arg = rh_arg_bytes(a, sizeof(a));
        rh_task_params_t p = with(RH_STRATEGY_PLACEMENT_GROUP);

        p.pg = g;
        p.bundle = b;
        CHECK(rh_remote("pg_waiter", &arg, 1, &p, &r[b]));
    }
    for (int b = 0; b < 2; b++) {
        const void *v;
        size_t len;
        int32_t done;

        if (rh_get(r[b], &v, &len, WAIT_MS) != RH_OK) {
            return fail("a task in a bundle");
        }
        memcpy(&done, v, sizeof(done));
        rh_release(r[b]);
        rh_release(r[b]);
        if (done != 1 + nodes) {
            fprintf(stderr, "placement: bundle %d's task saw %d children, "
                    "not %d\n", b, done, 1 + nodes);
            return 1;
        }
    }
    CHECK(rh_pg_remove(g));
    /* The news of the removal comes back to this rank, its owner: then its
     * scheduler counts every rank's CPUs free of the group again. */
    for (double end = rank_now() + WAIT_MS / 1000.0;;) {
        int room = 0;

        for (int k = 0; k < rh_size(); k++) {
            room += rh_place_rank_fits(k, NULL);
        }
        if (room == rh_size()) {
            break;
        }
        if (rank_now() > end) {
            fprintf(stderr, "placement: %d ranks still counted as held by "
                    "the removed group\n", rh_size() - room);
            return 1;
        }
        usleep(1000);
    }
    printf("PLACEMENT PG WAIT OK: tasks of 2 bundles waited for a child in "
           "their bundle and %d SPREAD children each\n", nodes);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "spread";
    const char *node_id = getenv("RAYHPC_NODE_ID");
    int rc = 0;
    rh_status_t st;

    if (node_id != NULL && strcmp(node_id, "vnode2") == 0) {
        setenv("RAYHPC_RESOURCES", "special=4", 1);
    }
    CHECK(rh_register("where", where, 0, 1));
    CHECK(rh_register("spin", spin, 1, 1));
    CHECK(rh_register("pg_parent", pg_parent, 1, 1));
    CHECK(rh_register("pg_waiter", pg_waiter, 1, 1));
    CHECK(rh_init(&argc, &argv, NULL));
    if (rh_rank() == 0) {
        if (strcmp(mode, "spread") == 0) {
            rc = spread();
        } else if (strcmp(mode, "busy") == 0) {
            rc = busy();
        } else if (strcmp(mode, "resource") == 0) {
            rc = resource();
        } else if (strcmp(mode, "infeasible") == 0) {
            rc = infeasible();
        } else if (strcmp(mode, "affinity") == 0) {
            rc = affinity();
        } else if (strcmp(mode, "pg") == 0) {
            rc = pg();
        } else if (strcmp(mode, "pg_nested") == 0) {
            rc = pg_nested();
        } else if (strcmp(mode, "offer") == 0) {
            rc = offer();
        } else if (strcmp(mode, "pg_wait") == 0) {
            rc = pg_wait();
        } else {
            fprintf(stderr, "placement: unknown mode '%s'\n", mode);
            rc = 2;
        }
    }
    fflush(stdout);
    st = rh_finalize();
    return rc != 0 ? rc : (st == RH_OK ? 0 : 1);
}
