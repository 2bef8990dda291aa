/*
 * Objects read on a node other than the one whose store holds them: the
 * getter's node pulls them into its own store and reads them in place.
 * Rank 0 drives; the other ranks serve from inside rh_finalize.
 *
 * usage: pull chain       a chain of tasks, each on another node than the
 *                         last, each consuming the last one's return
 *                         (200 KiB and growing) as a ref argument; rank 0
 *                         gets the final value, made on another node, and
 *                         checks every byte: "PULL CHAIN OK".
 *        pull big         a task on the last node returns 1 GiB filled in
 *                         place; rank 0 gets it and checks every byte
 *                         (needs RAYHPC_STORE_SIZE of 3G): "PULL BIG OK".
 *        pull concurrent  an object of 8 MiB put by a rank of node 1; 16
 *                         threads of rank 0 get it at once: one pull, the
 *                         same bytes for all: "PULL CONCURRENT OK".
 *        pull get_put     objects put by a rank of node 1 are read by rank 0
 *                         and by tasks on other nodes: "PULL GET_PUT OK".
 *        pull fire        a task without returns sent to node 1 with a 1 MiB
 *                         put of rank 0 as its argument, released at once:
 *                         the put lives until the task ran, which reports
 *                         the bytes' hash back to node 0: "PULL FIRE OK".
 *        pull too_big     (2 nodes; node 0's store is 16 MiB) a 64 MiB put of
 *                         node 1 does not fit here: the get fails with a
 *                         message, and a smaller one is pulled after it:
 *                         "PULL TOO_BIG OK".
 *        pull sources     (4 nodes) a 32 MiB put of rank 0 is read by tasks
 *                         on nodes 1 and 2, then by one on node 3, which
 *                         reads it from several of those copies at once:
 *                         "PULL SOURCES OK".
 *        pull owner_dies  (3 nodes, --keep-going) a 4 MiB put of rank 1 is
 *                         copied to node 2; rank 1 dies: node 2's copy
 *                         leaves its store, and rank 0's get of the object
 *                         fails naming the dead owner: "PULL OWNER_DIES OK".
 *        pull borrow      (3 nodes) rank 0 puts a 1 MiB object and hands it
 *                         to a task on node 1, which hands it on to a task
 *                         of its own on node 2 and returns at once; that
 *                         task also waits for a gate that rank 0 opens only
 *                         after it has released the object. The object
 *                         lives on for the borrower: the task on node 2
 *                         reads it whole; then it is freed: "PULL BORROW
 *                         OK".
 */
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "rank_util.h"

/* Every wait gives up well before the other ranks' RAYHPC_FINALIZE_TIMEOUT
 * (60 s), so that a failure is reported here, not as a finalize timeout. */
#define WAIT_MS 20000
#define LINKS_MIN 16
#define FIRST_LINK (200u * 1024u)
#define LINK_STEP (64u * 1024u)
#define BIG_LEN ((uint64_t)1 << 30)
#define CONC_LEN ((uint64_t)8 << 20)
#define THREADS 16

/* What put_obj and fill make. */
typedef struct obj_spec {
    uint64_t len;
    uint64_t seed;
} obj_spec_t;

/* Byte i of an object made with seed. */
static inline uint8_t pbyte(uint64_t seed, size_t i)
{
    return (uint8_t)(i * 131u + seed * 17u + (i >> 9));
}

/* Word i of the 1 GiB object. */
static inline uint64_t pword(uint64_t seed, size_t i)
{
    return ((uint64_t)i + seed) * 0x9E3779B97F4A7C15ull;
}

/* Offset of the first byte of p that differs from the pattern, or len. */
static size_t first_bad(const uint8_t *p, size_t len, uint64_t seed)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] != pbyte(seed, i)) {
            return i;
        }
    }
    return len;
}

static uint64_t fnv1a(const uint8_t *p, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < len; i++) {
        h = (h ^ p[i]) * 0x100000001b3ull;
    }
    return h;
}

/* ---- remote functions ------------------------------------------------- */

static rh_status_t where(rh_task_ctx_t *ctx)
{
    int32_t node = rh_node_id();

    return rh_task_return(ctx, 0, &node, sizeof(node));
}

/* One link of the chain: checks its argument (empty for the first link),
 * returns it with LINK_STEP more bytes (FIRST_LINK for the first). */
static rh_status_t link_fn(rh_task_ctx_t *ctx)
{
    size_t len, out_len, bad;
    const uint8_t *in = rh_task_arg(ctx, 0, &len);
    uint8_t *out;
    rh_status_t st;

    bad = first_bad(in, len, 0);
    if (bad != len) {
        return rh_task_fail(ctx, "link on node %d: argument of %zu bytes "
                            "differs at byte %zu", rh_node_id(), len, bad);
    }
    out_len = len == 0 ? FIRST_LINK : len + LINK_STEP;
    st = rh_task_return_alloc(ctx, 0, out_len, (void **)&out);
    if (st != RH_OK) {
        return st;
    }
    if (len != 0) {
        memcpy(out, in, len);
    }
    for (size_t i = len; i < out_len; i++) {
        out[i] = pbyte(0, i);
    }
    return RH_OK;
}

/* Returns spec.len bytes of 64-bit pattern words, filled in place. */
static rh_status_t fill(rh_task_ctx_t *ctx)
{
    obj_spec_t spec;
    uint64_t *out;
    rh_status_t st;

    memcpy(&spec, rh_task_arg(ctx, 0, NULL), sizeof(spec));
    st = rh_task_return_alloc(ctx, 0, spec.len, (void **)&out);
    if (st != RH_OK) {
        return st;
    }
    for (size_t i = 0; i < spec.len / sizeof(uint64_t); i++) {
        out[i] = pword(spec.seed, i);
    }
    return RH_OK;
}

/* Puts spec.len pattern bytes into this node's store, keeps the put's
 * hold (the object lives until the job ends) and returns the ref. */
static rh_status_t put_obj(rh_task_ctx_t *ctx)
{
    obj_spec_t spec;
    uint8_t *w;
    rh_ref_t ref;
    rh_status_t st;

    memcpy(&spec, rh_task_arg(ctx, 0, NULL), sizeof(spec));
    st = rh_put_create(spec.len, &ref, (void **)&w);
    if (st != RH_OK) {
        return st;
    }
    for (size_t i = 0; i < spec.len; i++) {
        w[i] = pbyte(spec.seed, i);
    }
    st = rh_put_seal(ref);
    if (st != RH_OK) {
        return st;
    }
    return rh_task_return(ctx, 0, &ref, sizeof(ref));
}

/* The length and FNV-1a hash of its argument, and the node it ran on. */
static rh_status_t digest(rh_task_ctx_t *ctx)
{
    size_t len;
    const uint8_t *in = rh_task_arg(ctx, 0, &len);
    uint64_t out[3] = { len, fnv1a(in, len), (uint64_t)rh_node_id() };

    return rh_task_return(ctx, 0, out, sizeof(out));
}

/* What "report" tasks tell rank 0. */
static _Atomic uint64_t reported;

/* Stores its argument (a hash) where rank 0's driver looks. */
static rh_status_t report(rh_task_ctx_t *ctx)
{
    uint64_t h;

    memcpy(&h, rh_task_arg(ctx, 0, NULL), sizeof(h));
    atomic_store(&reported, h);
    return RH_OK;
}

/* No returns: hashes its argument and reports the hash to node 0. */
static rh_status_t sink(rh_task_ctx_t *ctx)
{
    size_t len;
    const uint8_t *in = rh_task_arg(ctx, 0, &len);
    uint64_t h = fnv1a(in, len) | 1;
    rh_arg_t arg = rh_arg_bytes(&h, sizeof(h));
    rh_task_params_t p = rank_on_node(0, 0);

    return rh_remote("report", &arg, 1, &p, NULL);
}

/* digest, plus how many copies this rank has read from in all its pulls. */
static rh_status_t digest_sources(rh_task_ctx_t *ctx)
{
    size_t len;
    const uint8_t *in = rh_task_arg(ctx, 0, &len);
    rh_stats_t st;
    uint64_t out[4] = { len, fnv1a(in, len), (uint64_t)rh_node_id(), 0 };

    if (rh_stats(&st) != RH_OK) {
        return rh_task_fail(ctx, "rh_stats: %s", rh_last_error());
    }
    out[3] = st.pull_sources;
    return rh_task_return(ctx, 0, out, sizeof(out));
}

/* Bytes of the objects in this node's store now. */
static rh_status_t store_bytes(rh_task_ctx_t *ctx)
{
    rh_stats_t st;

    if (rh_stats(&st) != RH_OK) {
        return rh_task_fail(ctx, "rh_stats: %s", rh_last_error());
    }
    return rh_task_return(ctx, 0, &st.store_bytes, sizeof(st.store_bytes));
}

/* Waits (at most WAIT_MS) until this node's store holds fewer bytes than
 * its argument; returns how many it holds then. */
static rh_status_t store_below(rh_task_ctx_t *ctx)
{
    uint64_t limit;
    rh_stats_t st;
    struct timespec ms = { 0, 1000000 };

    memcpy(&limit, rh_task_arg(ctx, 0, NULL), sizeof(limit));
    for (int waited = 0; waited < WAIT_MS; waited++) {
        if (rh_stats(&st) != RH_OK) {
            return rh_task_fail(ctx, "rh_stats: %s", rh_last_error());
        }
        if (st.store_bytes < limit) {
            return rh_task_return(ctx, 0, &st.store_bytes,
                                  sizeof(st.store_bytes));
        }
        nanosleep(&ms, NULL);
    }
    return rh_task_fail(ctx, "node %d's store still holds %llu bytes in %llu "
                        "objects", rh_node_id(),
                        (unsigned long long)st.store_bytes,
                        (unsigned long long)st.store_objects);
}

static rh_status_t die(rh_task_ctx_t *ctx)
{
    (void)ctx;
    raise(SIGKILL);
    return RH_OK;
}

static _Atomic int gate_open;

/* Blocks until rank 0's driver opens the gate (at most WAIT_MS). */
static rh_status_t gate(rh_task_ctx_t *ctx)
{
    struct timespec ms = { 0, 1000000 };
    int open = 0;

    for (int waited = 0; waited < WAIT_MS && !open; waited++) {
        open = atomic_load(&gate_open);
        if (!open) {
            nanosleep(&ms, NULL);
        }
    }
    return open ? RH_OK : rh_task_fail(ctx, "the gate never opened");
}

/* Digest of argument 0 (argument 1 is the gate it waited for). */
static rh_status_t digest_after(rh_task_ctx_t *ctx)
{
    size_t len;
    const uint8_t *in = rh_task_arg(ctx, 0, &len);
    uint64_t out[3] = { len, fnv1a(in, len), (uint64_t)rh_node_id() };

    return rh_task_return(ctx, 0, out, sizeof(out));
}

/* The ref its argument came as. */
static rh_status_t echo_ref(rh_task_ctx_t *ctx)
{
    rh_ref_t r = rh_task_arg_ref(ctx, 0);

    return rh_task_return(ctx, 0, &r, sizeof(r));
}

/* Hands its ref argument on to a task on node 2 that also waits for the
 * gate whose ref came as bytes; returns that task's ref without waiting. */
static rh_status_t hand_on(rh_task_ctx_t *ctx)
{
    rh_ref_t obj = rh_task_arg_ref(ctx, 0), gate_ref, r;
    rh_task_params_t params = rank_on_node(2, 0);
    rh_arg_t args[2];

    memcpy(&gate_ref, rh_task_arg(ctx, 1, NULL), sizeof(gate_ref));
    args[0] = rh_arg_ref(obj);
    args[1] = rh_arg_ref(gate_ref);
    if (rh_remote("digest_after", args, 2, &params, &r) != RH_OK) {
        return rh_task_fail(ctx, "%s", rh_last_error());
    }
    return rh_task_return(ctx, 0, &r, sizeof(r));
}


/* ---- the driver ---------------------------------------------------------- */

static rh_task_params_t on(int node)
{
    return rank_on_node(node, 0);
}

static int fail(const char *what)
{
    fprintf(stderr, "pull: %s (%s)\n", what, rh_last_error());
    return 1;
}

/* Gets one ref and drops both holds (the submitter's and the get's) after
 * copying out up to cap bytes. */
static rh_status_t get_copy(rh_ref_t r, void *out, size_t cap, size_t *len)
{
    const void *p;
    rh_status_t st = rh_get(r, &p, len, WAIT_MS);

    if (st != RH_OK) {
        return st;
    }
    memcpy(out, p, *len < cap ? *len : cap);
    rh_release(r);
    rh_release(r);
    return RH_OK;
}

/* A put made on node `node` by a task there; returns its ref. */
static rh_status_t remote_put(int node, uint64_t len, uint64_t seed,
                              rh_ref_t *ref)
{
    obj_spec_t spec = { len, seed };
    rh_arg_t arg = rh_arg_bytes(&spec, sizeof(spec));
    rh_task_params_t params = on(node);
    rh_ref_t r;
    size_t got;
    rh_status_t st = rh_remote("put_obj", &arg, 1, &params, &r);

    if (st != RH_OK) {
        return st;
    }
    st = get_copy(r, ref, sizeof(*ref), &got);
    if (st == RH_OK && got != sizeof(*ref)) {
        st = RH_ERR_MALFORMED;
    }
    return st;
}

static int chain(void)
{
    int nodes = rh_num_nodes();
    int links = LINKS_MIN;
    uint64_t mine = 0, mine_bytes = 0;
    size_t want, len, bad;
    rh_ref_t prev, r;
    rh_task_params_t params;
    rh_arg_t arg;
    rh_stats_t s0, s1;
    const void *p;

    if (nodes < 2) {
        return fail("needs 2 nodes or more");
    }
    /* link i runs on node (i + 1) % nodes: never twice on one node in a
     * row, and the last one not on rank 0's node */
    while (links % nodes == 0) {
        links++;
    }
    want = FIRST_LINK + (size_t)(links - 1) * LINK_STEP;
    /* rank 0 pulls the argument of each link it runs (those on node 0,
     * when every node has one rank), and then the last link's return */
    for (int i = 1; i < links; i++) {
        if ((i + 1) % nodes == 0) {
            mine++;
            mine_bytes += FIRST_LINK + (uint64_t)(i - 1) * LINK_STEP;
        }
    }
    CHECK(rh_stats(&s0));
    arg = rh_arg_bytes(NULL, 0);
    params = on(1 % nodes);
    CHECK(rh_remote("link", &arg, 1, &params, &prev));
    for (int i = 1; i < links; i++) {
        params = on((i + 1) % nodes);
        arg = rh_arg_ref(prev);
        CHECK(rh_remote("link", &arg, 1, &params, &r));
        rh_release(prev);
        prev = r;
    }
    CHECK(rh_get(prev, &p, &len, WAIT_MS));
    CHECK(rh_stats(&s1));
    if (len != want) {
        fprintf(stderr, "pull: the chain's value has %zu bytes, not %zu\n",
                len, want);
        return 1;
    }
    bad = first_bad(p, len, 0);
    if (bad != len) {
        fprintf(stderr, "pull: the chain's value differs at byte %zu\n", bad);
        return 1;
    }
    /* the last link's return, over a MiB, stayed on its node; each
     * argument was pulled once by the rank that ran its link */
    if (rh_size() != nodes) {
        mine = 0;     /* another rank of node 0 may run node 0's links */
        mine_bytes = 0;
    }
    if ((rh_size() == nodes ? s1.pulls - s0.pulls != mine + 1
                            : s1.pulls - s0.pulls < 1) ||
        s1.bytes_pulled - s0.bytes_pulled < mine_bytes + len) {
        fprintf(stderr, "pull: the chain made rank 0 pull %llu objects of "
                "%llu bytes in all, not %llu of %llu\n",
                (unsigned long long)(s1.pulls - s0.pulls),
                (unsigned long long)(s1.bytes_pulled - s0.bytes_pulled),
                (unsigned long long)(mine + 1),
                (unsigned long long)(mine_bytes + len));
        return 1;
    }
    rh_release(prev);
    rh_release(prev);
    printf("PULL CHAIN OK: %d links over %d nodes, %zu bytes at the end\n",
           links, nodes, want);
    return 0;
}

static int big(void)
{
    int nodes = rh_num_nodes();
    obj_spec_t spec = { BIG_LEN, 11 };
    rh_arg_t arg = rh_arg_bytes(&spec, sizeof(spec));
    rh_task_params_t params = on(nodes - 1);
    rh_stats_t s0, s1;
    const uint64_t *w;
    const void *p;
    size_t len;
    rh_ref_t r;

    if (nodes < 2) {
        return fail("needs 2 nodes or more");
    }
    CHECK(rh_remote("fill", &arg, 1, &params, &r));
    CHECK(rh_stats(&s0));
    CHECK(rh_get(r, &p, &len, 45000));
    CHECK(rh_stats(&s1));
    if (len != BIG_LEN) {
        fprintf(stderr, "pull: the big object has %zu bytes\n", len);
        return 1;
    }
    w = p;
    for (size_t i = 0; i < len / sizeof(uint64_t); i++) {
        if (w[i] != pword(spec.seed, i)) {
            fprintf(stderr, "pull: the big object differs at word %zu\n", i);
            return 1;
        }
    }
    if (s1.pulls - s0.pulls != 1 || s1.bytes_pulled - s0.bytes_pulled < len) {
        fprintf(stderr, "pull: getting the big object made %llu pulls of "
                "%llu bytes\n", (unsigned long long)(s1.pulls - s0.pulls),
                (unsigned long long)(s1.bytes_pulled - s0.bytes_pulled));
        return 1;
    }
    rh_release(r);
    rh_release(r);
    printf("PULL BIG OK: 1 GiB made on node %d, pulled and checked\n",
           nodes - 1);
    return 0;
}

typedef struct getter {
    pthread_t          tid;
    pthread_barrier_t *start;
    const uint8_t     *want;
    rh_ref_t           ref;
    rh_status_t        st;
    const void        *ptr;
    size_t             len;
    int                same;   /* the bytes are want's */
} getter_t;

static void *get_thread(void *arg)
{
    getter_t *g = arg;

    pthread_barrier_wait(g->start);
    g->st = rh_get(g->ref, &g->ptr, &g->len, WAIT_MS);
    if (g->st == RH_OK) {
        g->same = g->len == CONC_LEN &&
                  memcmp(g->ptr, g->want, CONC_LEN) == 0;
    }
    return NULL;
}

static int concurrent(void)
{
    getter_t g[THREADS];
    pthread_barrier_t start;
    rh_stats_t s0, s1;
    rh_ref_t ref;
    uint8_t *want;
    int rc = 0;

    if (rh_num_nodes() < 2) {
        return fail("needs 2 nodes or more");
    }
    want = malloc(CONC_LEN);
    if (want == NULL) {
        return fail("out of memory");
    }
    for (size_t i = 0; i < CONC_LEN; i++) {
        want[i] = pbyte(3, i);
    }
    CHECK(remote_put(1, CONC_LEN, 3, &ref));
    CHECK(rh_stats(&s0));
    pthread_barrier_init(&start, NULL, THREADS);
    for (int i = 0; i < THREADS; i++) {
        memset(&g[i], 0, sizeof(g[i]));
        g[i].start = &start;
        g[i].want = want;
        g[i].ref = ref;
        if (pthread_create(&g[i].tid, NULL, get_thread, &g[i]) != 0) {
            fprintf(stderr, "pull: pthread_create failed\n");
            exit(1);
        }
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(g[i].tid, NULL);
    }
    pthread_barrier_destroy(&start);
    free(want);
    CHECK(rh_stats(&s1));
    for (int i = 0; i < THREADS; i++) {
        if (g[i].st != RH_OK) {
            fprintf(stderr, "pull: thread %d's get failed: %s\n", i,
                    rh_status_string(g[i].st));
            rc = 1;
        } else if (!g[i].same) {
            fprintf(stderr, "pull: thread %d got %zu bytes, not the %llu "
                    "that were put\n", i, g[i].len,
                    (unsigned long long)CONC_LEN);
            rc = 1;
        } else if (g[i].ptr != g[0].ptr) {
            fprintf(stderr, "pull: thread %d read other pages (%p) than "
                    "thread 0 (%p)\n", i, g[i].ptr, g[0].ptr);
            rc = 1;
        }
    }
    if (s1.pulls - s0.pulls != 1 ||
        s1.bytes_pulled - s0.bytes_pulled < CONC_LEN ||
        s1.pulls_joined - s0.pulls_joined > THREADS - 1) {
        fprintf(stderr, "pull: %d concurrent gets made %llu pulls of %llu "
                "bytes and %llu joins\n", THREADS,
                (unsigned long long)(s1.pulls - s0.pulls),
                (unsigned long long)(s1.bytes_pulled - s0.bytes_pulled),
                (unsigned long long)(s1.pulls_joined - s0.pulls_joined));
        rc = 1;
    }
    for (int i = 0; i < THREADS; i++) {
        if (g[i].st == RH_OK) {
            rh_release(ref);
        }
    }
    if (rc == 0) {
        printf("PULL CONCURRENT OK: %d gets, 1 pull, %llu of them joined "
               "it\n", THREADS,
               (unsigned long long)(s1.pulls_joined - s0.pulls_joined));
    }
    return rc;
}

/* A task on node `node` digests ref; compares with the local digest. */
static int digest_on(int node, rh_ref_t ref, size_t len, uint64_t hash)
{
    rh_arg_t arg = rh_arg_ref(ref);
    rh_task_params_t params = on(node);
    uint64_t out[3];
    size_t got;
    rh_ref_t r;

    CHECK(rh_remote("digest", &arg, 1, &params, &r));
    CHECK(get_copy(r, out, sizeof(out), &got));
    if (got != sizeof(out) || out[0] != len || out[1] != hash ||
        out[2] != (uint64_t)node) {
        fprintf(stderr, "pull: a task on node %d read %llu bytes of hash "
                "%llx on node %llu, not %zu of hash %llx\n", node,
                (unsigned long long)out[0], (unsigned long long)out[1],
                (unsigned long long)out[2], len, (unsigned long long)hash);
        return 1;
    }
    return 0;
}

static int get_put(void)
{
    static const uint64_t lens[2] = { 300000, 100 };
    int nodes = rh_num_nodes();
    rh_ref_t refs[2];
    uint64_t hash[2];
    rh_stats_t s0, s1;

    if (nodes < 2) {
        return fail("needs 2 nodes or more");
    }
    for (int k = 0; k < 2; k++) {
        CHECK(remote_put(1, lens[k], 5 + (uint64_t)k, &refs[k]));
    }
    /* a task on the last node (another than the owner's when there are
     * 3 nodes) reads them before rank 0 does, and one on node 0 after */
    for (int k = 0; k < 2; k++) {
        uint8_t *want = malloc(lens[k]);

        for (size_t i = 0; i < lens[k]; i++) {
            want[i] = pbyte(5 + (uint64_t)k, i);
        }
        hash[k] = fnv1a(want, lens[k]);
        free(want);
        if (digest_on(nodes - 1, refs[k], lens[k], hash[k]) != 0) {
            return 1;
        }
    }
    for (int k = 0; k < 2; k++) {
        const void *p;
        size_t len, bad;

        CHECK(rh_stats(&s0));
        CHECK(rh_get(refs[k], &p, &len, WAIT_MS));
        CHECK(rh_stats(&s1));
        bad = first_bad(p, len, 5 + (uint64_t)k);
        if (len != lens[k] || bad != len) {
            fprintf(stderr, "pull: the put of %llu bytes on node 1 read as "
                    "%zu bytes here, differing at %zu\n",
                    (unsigned long long)lens[k], len, bad);
            return 1;
        }
        if (k == 0 && (s1.pulls - s0.pulls != 1 ||
                       s1.bytes_pulled - s0.bytes_pulled < len)) {
            fprintf(stderr, "pull: getting the put of node 1 made %llu "
                    "pulls of %llu bytes\n",
                    (unsigned long long)(s1.pulls - s0.pulls),
                    (unsigned long long)(s1.bytes_pulled -
                                         s0.bytes_pulled));
            return 1;
        }
        if (digest_on(0, refs[k], lens[k], hash[k]) != 0) {
            return 1;
        }
        rh_release(refs[k]);
    }
    printf("PULL GET_PUT OK: puts of node 1 read on node 0 and by tasks on "
           "nodes %d and 0\n", nodes - 1);
    return 0;
}

static int fire(void)
{
    const size_t len = (size_t)1 << 20;
    uint8_t *buf;
    uint64_t hash;
    rh_ref_t ref;
    rh_arg_t arg;
    rh_task_params_t params = on(1);
    double end;

    CHECK(rh_put_create(len, &ref, (void **)&buf));
    for (size_t i = 0; i < len; i++) {
        buf[i] = pbyte(13, i);
    }
    hash = fnv1a(buf, len) | 1;
    CHECK(rh_put_seal(ref));
    arg = rh_arg_ref(ref);
    CHECK(rh_remote("sink", &arg, 1, &params, NULL));
    rh_release(ref);   /* only the task keeps it now */
    end = rank_now() + WAIT_MS / 1000.0;
    while (atomic_load(&reported) == 0 && rank_now() < end) {
        rank_nap();
    }
    if (atomic_load(&reported) != hash) {
        fprintf(stderr, "pull: the task without returns reported %llx, not "
                "%llx\n", (unsigned long long)atomic_load(&reported),
                (unsigned long long)hash);
        return 1;
    }
    printf("PULL FIRE OK: a task without returns read a released put\n");
    return 0;
}

static int too_big(void)
{
    rh_ref_t big, small;
    const void *p;
    size_t len;
    rh_status_t st;

    CHECK(remote_put(1, (uint64_t)64 << 20, 3, &big));
    st = rh_get(big, &p, &len, WAIT_MS);
    if (st != RH_ERR_TOO_LARGE && st != RH_ERR_STORE_FULL) {
        fprintf(stderr, "pull: a 64 MiB pull into a 16 MiB store gave %s "
                "(%s)\n", rh_status_string(st), rh_last_error());
        return 1;
    }
    printf("pull: too big: %s\n", rh_last_error());
    CHECK(remote_put(1, (uint64_t)1 << 20, 4, &small));
    CHECK(rh_get(small, &p, &len, WAIT_MS));
    if (len != (size_t)1 << 20 || first_bad(p, len, 4) != len) {
        return fail("the pull after the failed one is wrong");
    }
    rh_release(small);
    printf("PULL TOO_BIG OK: the failed pull left the store usable\n");
    return 0;
}

static int sources(void)
{
    const size_t len = (size_t)32 << 20;
    uint8_t *buf;
    uint64_t hash, out[4];
    rh_ref_t ref, r;
    rh_arg_t arg;
    rh_task_params_t params;
    size_t got;

    if (rh_num_nodes() != 4 || rh_size() != 4) {
        return fail("needs 4 ranks on 4 nodes");
    }
    CHECK(rh_put_create(len, &ref, (void **)&buf));
    for (size_t i = 0; i < len; i++) {
        buf[i] = pbyte(11, i);
    }
    hash = fnv1a(buf, len);
    CHECK(rh_put_seal(ref));
    /* nodes 1 and 2 pull it (and tell rank 0 they have copies) */
    if (digest_on(1, ref, len, hash) != 0 ||
        digest_on(2, ref, len, hash) != 0) {
        return 1;
    }
    arg = rh_arg_ref(ref);
    params = on(3);
    CHECK(rh_remote("digest_sources", &arg, 1, &params, &r));
    CHECK(get_copy(r, out, sizeof(out), &got));
    if (got != sizeof(out) || out[0] != len || out[1] != hash ||
        out[2] != 3) {
        return fail("node 3 read other bytes");
    }
    if (out[3] < 2) {
        fprintf(stderr, "pull: node 3 read from %llu copies, not several\n",
                (unsigned long long)out[3]);
        return 1;
    }
    rh_release(ref);
    printf("PULL SOURCES OK: node 3 read 32 MiB from %llu copies at once\n",
           (unsigned long long)out[3]);
    return 0;
}

/* A u64 that a task on node returns for arg (NULL: no argument). */
static int u64_on(int node, const char *fn, const uint64_t *arg,
                  uint64_t *out)
{
    rh_arg_t a = rh_arg_bytes(arg, sizeof(*arg));
    rh_task_params_t params = on(node);
    rh_ref_t r;
    size_t got;

    CHECK(rh_remote(fn, &a, arg ? 1 : 0, &params, &r));
    CHECK(get_copy(r, out, sizeof(*out), &got));
    return got == sizeof(*out) ? 0 : fail("a task returned another size");
}

static int owner_dies(void)
{
    const size_t len = (size_t)4 << 20;
    rh_ref_t ref, r;
    rh_task_params_t params = on(1);
    uint64_t before, after;
    uint8_t *buf = malloc(len);
    const void *p;
    size_t got;
    rh_status_t st;

    if (rh_num_nodes() != 3 || buf == NULL) {
        free(buf);
        return fail("needs 3 ranks on 3 nodes");
    }
    for (size_t i = 0; i < len; i++) {
        buf[i] = pbyte(5, i);
    }
    CHECK(remote_put(1, len, 5, &ref));
    if (digest_on(2, ref, len, fnv1a(buf, len)) != 0 ||
        u64_on(2, "store_bytes", NULL, &before) != 0) {
        free(buf);
        return 1;
    }
    free(buf);
    params.field_mask |= RH_TASK_PARAM_FIELD_MAX_RETRIES;
    params.max_retries = 0;   /* rank 1 dies, no other */
    CHECK(rh_remote("die", NULL, 0, &params, &r));
    if (rh_get(r, &p, &got, WAIT_MS) != RH_ERR_TASK_FAILED) {
        return fail("rank 1 did not die");
    }
    rh_release(r);
    if (u64_on(2, "store_below", &before, &after) != 0) {
        return 1;
    }
    st = rh_get(ref, &p, &got, WAIT_MS);
    if (st == RH_OK || strstr(rh_last_error(), "rank 1") == NULL) {
        return fail("a get of the dead owner's object did not fail naming "
                    "it");
    }
    printf("PULL OWNER_DIES OK: node 2's store went from %llu to %llu "
           "bytes; the get says: %s\n", (unsigned long long)before,
           (unsigned long long)after, rh_last_error());
    rh_release(ref);
    return 0;
}

static int borrow(void)
{
    const size_t len = (size_t)1 << 20;
    rh_ref_t obj, gate_ref, r, inner;
    rh_task_params_t here = on(0), there = on(1);
    rh_arg_t args[2];
    uint64_t out[3], limit = len, after;
    uint8_t *buf;
    uint64_t hash;
    size_t got;

    if (rh_num_nodes() != 3) {
        return fail("needs 3 ranks on 3 nodes");
    }
    /* every task sees the ref its argument came as: small ones travel by
     * value, large ones as refs, on this node or another */
    for (int big = 0; big < 2; big++) {
        rh_ref_t small, seen;
        rh_arg_t a;

        CHECK(rh_put_create(big ? len : 16, &small, (void **)&buf));
        memset(buf, 7, big ? len : 16);
        CHECK(rh_put_seal(small));
        a = rh_arg_ref(small);
        for (int node = 0; node < 2; node++) {
            rh_task_params_t p = on(node);

            CHECK(rh_remote("echo_ref", &a, 1, &p, &r));
            CHECK(get_copy(r, &seen, sizeof(seen), &got));
            if (seen.hi != small.hi || seen.lo != small.lo) {
                return fail("rh_task_arg_ref gave another ref");
            }
        }
        rh_release(small);
    }
    CHECK(rh_put_create(len, &obj, (void **)&buf));
    for (size_t i = 0; i < len; i++) {
        buf[i] = pbyte(9, i);
    }
    hash = fnv1a(buf, len);
    CHECK(rh_put_seal(obj));
    CHECK(rh_remote("gate", NULL, 0, &here, &gate_ref));
    args[0] = rh_arg_ref(obj);
    args[1] = rh_arg_bytes(&gate_ref, sizeof(gate_ref));
    CHECK(rh_remote("hand_on", args, 2, &there, &r));
    CHECK(get_copy(r, &inner, sizeof(inner), &got));
    /* hand_on is over and we let the object go: only the borrow of node 1
     * (for its task waiting on node 2) keeps it */
    rh_release(obj);
    atomic_store(&gate_open, 1);
    CHECK(get_copy(inner, out, sizeof(out), &got));
    if (got != sizeof(out) || out[0] != len || out[1] != hash ||
        out[2] != 2) {
        return fail("the task on node 2 read other bytes");
    }
    rh_release(gate_ref);
    /* ... and once that task is done, the object goes (the rest of node
     * 0's store is far smaller) */
    if (u64_on(0, "store_below", &limit, &after) != 0) {
        return 1;
    }
    printf("PULL BORROW OK: node 2 read the 1 MiB object after its owner "
           "and the task that handed it on let go; then it was freed\n");
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "chain";
    int rc = 0;
    rh_status_t st;

    if (strcmp(mode, "too_big") == 0 && getenv("RAYHPC_NODE_ID") != NULL &&
        strcmp(getenv("RAYHPC_NODE_ID"), "vnode0") == 0) {
        setenv("RAYHPC_STORE_SIZE", "16M", 1);
    }
    CHECK(rh_register("where", where, 0, 1));
    CHECK(rh_register("link", link_fn, 1, 1));
    CHECK(rh_register("fill", fill, 1, 1));
    CHECK(rh_register("put_obj", put_obj, 1, 1));
    CHECK(rh_register("digest", digest, 1, 1));
    CHECK(rh_register("digest_sources", digest_sources, 1, 1));
    CHECK(rh_register("sink", sink, 1, 0));
    CHECK(rh_register("report", report, 1, 0));
    CHECK(rh_register("store_bytes", store_bytes, 0, 1));
    CHECK(rh_register("store_below", store_below, 1, 1));
    CHECK(rh_register("die", die, 0, 1));
    CHECK(rh_register("gate", gate, 0, 1));
    CHECK(rh_register("digest_after", digest_after, 2, 1));
    CHECK(rh_register("hand_on", hand_on, 2, 1));
    CHECK(rh_register("echo_ref", echo_ref, 1, 1));
    CHECK(rh_init(&argc, &argv, NULL));
    if (rh_rank() == 0) {
        if (strcmp(mode, "chain") == 0) {
            rc = chain();
        } else if (strcmp(mode, "big") == 0) {
            rc = big();
        } else if (strcmp(mode, "concurrent") == 0) {
            rc = concurrent();
        } else if (strcmp(mode, "get_put") == 0) {
            rc = get_put();
        } else if (strcmp(mode, "sources") == 0) {
            rc = sources();
        } else if (strcmp(mode, "fire") == 0) {
            rc = fire();
        } else if (strcmp(mode, "too_big") == 0) {
            rc = too_big();
        } else if (strcmp(mode, "owner_dies") == 0) {
            rc = owner_dies();
        } else if (strcmp(mode, "borrow") == 0) {
            rc = borrow();
        } else {
            fprintf(stderr, "pull: unknown mode '%s'\n", mode);
            rc = 2;
        }
    }
    fflush(stdout);
    st = rh_finalize();
    return rc != 0 ? rc : (st == RH_OK ? 0 : 1);
}
