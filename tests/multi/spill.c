/*
 * Working sets larger than the object store: spilling, eviction of pulled
 * copies, backpressure. Run with a small store (RAYHPC_STORE_SIZE=32M).
 *
 * usage: spill workset  rank 0 puts 4x its store in objects of 1 KiB to
 *                       8 MiB, then reads every one back in random order,
 *                       byte-exact: "SPILL WORKSET OK".
 *        spill nodes    (one rank per node, 4 nodes) rank 0 has tasks on
 *                       every node make 2x a store each, then reads them
 *                       all, twice, in random order: its pulled copies are
 *                       evicted and pulled again: "SPILL NODES OK".
 *        spill graph    48 tasks return 2 MiB each (3x the store), 48 more
 *                       digest them: "SPILL GRAPH OK".
 *        spill full     (RAYHPC_SPILL_MAX small) puts until the store and
 *                       the spill files are full: RH_ERR_STORE_FULL names
 *                       the spill directory, and every object put before
 *                       reads back: "SPILL FULL OK".
 *        spill wait     (RAYHPC_PUT_TIMEOUT_MS=2000) fills the store with
 *                       objects it keeps reading: a put waits, then fails
 *                       saying why; a put while a thread lets some of
 *                       them go waits for that and succeeds:
 *                       "SPILL WAIT OK".
 *        spill getwait  (RAYHPC_PUT_TIMEOUT_MS=2000) objects put first
 *                       spill while objects being read fill the store: a
 *                       get of one fails after the timeout saying why (at
 *                       once with a get's timeout of 0); a
 *                       get while a thread lets readers go waits and
 *                       reads it back: "SPILL GETWAIT OK".
 *        spill pullwait (RAYHPC_PUT_TIMEOUT_MS=2000, 2 nodes) a task on
 *                       the last node fills its store with objects it
 *                       reads: a get of rank 0's object fails once its
 *                       own timeout ends, saying why; a get, and a task
 *                       taking another of rank 0's objects by ref, wait
 *                       while a thread lets readers go, and both come:
 *                       "SPILL PULLWAIT OK".
 *        spill kill     prints "SPILLDIR <path>" and puts for ever while a
 *                       thread SIGKILLs the rank once it has spilled.
 *        spill modes    prints the mode of every file in the spill
 *                       directory after spilling: "MODE <octal>".
 */
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "plasma/store.h"
#include "rank_util.h"

#define KiB (1024ull)
#define MiB (1024ull * KiB)
#define WAIT_MS 60000

typedef struct obj_spec {
    uint64_t len;
    uint64_t seed;
} obj_spec_t;

static inline uint8_t pbyte(uint64_t seed, size_t i)
{
    return (uint8_t)(i * 131u + seed * 17u + (i >> 9));
}

static void fill_pattern(uint8_t *p, size_t len, uint64_t seed)
{
    for (size_t i = 0; i < len; i++) {
        p[i] = pbyte(seed, i);
    }
}

static size_t first_bad(const uint8_t *p, size_t len, uint64_t seed)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] != pbyte(seed, i)) {
            return i;
        }
    }
    return len;
}

/* 1 KiB .. 8 MiB, mostly small, fixed by the seed. */
static size_t mixed_size(unsigned *seed)
{
    unsigned r = (unsigned)rand_r(seed);

    switch (r % 8) {
    case 0: case 1: case 2: return 1 * KiB + r % (7 * KiB);
    case 3: case 4: return 8 * KiB + r % (120 * KiB);
    case 5: return 128 * KiB + r % (896 * KiB);
    case 6: return 1 * MiB + r % (3 * MiB);
    default: return 4 * MiB + r % (4 * MiB);
    }
}

static void shuffle(size_t *v, size_t n, unsigned *seed)
{
    for (size_t i = 0; i < n; i++) {
        v[i] = i;
    }
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rand_r(seed) % i, t = v[i - 1];

        v[i - 1] = v[j];
        v[j] = t;
    }
}

static int fail(const char *what)
{
    fprintf(stderr, "spill: %s (%s)\n", what, rh_last_error());
    return 1;
}

/* Gets ref, checks its bytes and drops the get's hold. */
static int check_ref(rh_ref_t r, size_t len, uint64_t seed)
{
    const void *p;
    size_t got, bad;

    CHECK(rh_get(r, &p, &got, WAIT_MS));
    if (got != len) {
        fprintf(stderr, "spill: object %llu has %zu bytes, not %zu\n",
                (unsigned long long)seed, got, len);
        return 1;
    }
    bad = first_bad(p, len, seed);
    if (bad != len) {
        fprintf(stderr, "spill: object %llu differs at byte %zu of %zu\n",
                (unsigned long long)seed, bad, len);
        return 1;
    }
    CHECK(rh_release(r));
    return 0;
}

/* ---- tasks ----------------------------------------------------------------- */

static rh_status_t make(rh_task_ctx_t *ctx)
{
    obj_spec_t spec;
    void *out;
    rh_status_t st;

    memcpy(&spec, rh_task_arg(ctx, 0, NULL), sizeof(spec));
    st = rh_task_return_alloc(ctx, 0, spec.len, &out);
    if (st != RH_OK) {
        return st;
    }
    fill_pattern(out, spec.len, spec.seed);
    return RH_OK;
}

/* The offset of the first wrong byte of its argument (its length when all
 * are right). */
static rh_status_t digest(rh_task_ctx_t *ctx)
{
    size_t len;
    const uint8_t *p = rh_task_arg(ctx, 0, &len);
    obj_spec_t spec;
    uint64_t bad;

    memcpy(&spec, rh_task_arg(ctx, 1, NULL), sizeof(spec));
    bad = len != spec.len ? UINT64_MAX : first_bad(p, len, spec.seed);
    return rh_task_return(ctx, 0, &bad, sizeof(bad));
}

static rh_status_t submit_make(int node, uint64_t len, uint64_t seed,
                               rh_ref_t *ref)
{
    obj_spec_t spec = { len, seed };
    rh_arg_t arg = rh_arg_bytes(&spec, sizeof(spec));
    rh_task_params_t params = rank_on_node(node, 0);

    return rh_remote("make", &arg, 1, node >= 0 ? &params : NULL, ref);
}

/* ---- modes ----------------------------------------------------------------- */

static int workset(void)
{
    rh_stats_t st;
    size_t n = 0, *order, sizes[2048];
    rh_ref_t refs[2048];
    uint64_t total = 0;
    unsigned seed = 11;
    double frag, frag_put, frag_max;
    void *p;

    CHECK(rh_stats(&st));
    while (total < 4 * st.store_capacity && n < 2048) {
        sizes[n] = mixed_size(&seed);
        CHECK(rh_put_create(sizes[n], &refs[n], &p));
        fill_pattern(p, sizes[n], n);
        CHECK(rh_put_seal(refs[n]));
        total += sizes[n++];
    }
    CHECK(rh_stats(&st));
    frag = frag_put = st.store_fragmentation;
    if (getenv("SPILL_VERBOSE") != NULL) {
        fprintf(stderr, "after puts: cap %llu used %llu spilled %llu "
                "frag %.3f\n", (unsigned long long)st.store_capacity,
                (unsigned long long)st.store_used,
                (unsigned long long)st.spilled_bytes,
                st.store_fragmentation);
    }
    if (st.spilled_objects == 0 || st.spill_files == 0) {
        return fail("nothing was spilled");
    }
    /* read back in random order twice: the first time keeping the objects
     * (they are spilled and read back in turn), the second letting each
     * go once read */
    order = malloc(n * sizeof(*order));
    for (int pass = 0; pass < 2; pass++) {
        shuffle(order, n, &seed);
        for (size_t i = 0; i < n; i++) {
            size_t k = order[i];

            if (check_ref(refs[k], sizes[k], k) != 0) {
                return 1;
            }
            if (pass == 1) {
                CHECK(rh_release(refs[k]));   /* the put's: it goes */
            } else if (i % 64 == 63) {
                CHECK(rh_stats(&st));
                frag = st.store_fragmentation > frag ?
                       st.store_fragmentation : frag;
            }
        }
    }
    free(order);
    CHECK(rh_stats(&st));
    if (st.restores == 0) {
        return fail("nothing was read back from the spill files");
    }
    /* The store's goal (issue #15): below 0.10 under this mixed-size
     * stream (SPILL_FRAG_MAX sets another bound). */
    frag_max = getenv("SPILL_FRAG_MAX") != NULL ?
               strtod(getenv("SPILL_FRAG_MAX"), NULL) : 0.10;
    if (frag >= frag_max) {
        fprintf(stderr, "spill: store fragmentation %.3f (%.3f after the "
                "puts)\n", frag, frag_put);
        return 1;
    }
    if (st.spilled_objects != 0 || st.spill_files != 0) {
        fprintf(stderr, "spill: %llu objects in %llu files left after "
                "all were released\n",
                (unsigned long long)st.spilled_objects,
                (unsigned long long)st.spill_files);
        return 1;
    }
    printf("SPILL WORKSET OK: %zu objects, %llu MiB through a %llu MiB "
           "store: %llu MiB spilled, %llu restores, fragmentation <= %.3f\n",
           n, (unsigned long long)(total >> 20),
           (unsigned long long)(st.store_capacity >> 20),
           (unsigned long long)(st.spill_written >> 20),
           (unsigned long long)st.restores, frag);
    return 0;
}

static int nodes(void)
{
    int nn = rh_num_nodes();
    size_t n = 0, *order, sizes[1024];
    rh_ref_t refs[1024];
    uint64_t per_node[64] = { 0 }, pulls0;
    unsigned seed = 5;
    rh_stats_t st;

    CHECK(rh_stats(&st));
    for (int node = 0; node < nn && node < 64; node++) {
        while (per_node[node] < 2 * st.store_capacity && n < 1024) {
            sizes[n] = mixed_size(&seed);
            CHECK(submit_make(node, sizes[n], n, &refs[n]));
            per_node[node] += sizes[n++];
        }
    }
    order = malloc(n * sizeof(*order));
    for (int pass = 0; pass < 2; pass++) {
        CHECK(rh_stats(&st));
        pulls0 = st.pulls;
        shuffle(order, n, &seed);
        for (size_t i = 0; i < n; i++) {
            if (check_ref(refs[order[i]], sizes[order[i]], order[i]) != 0) {
                fprintf(stderr, "spill: in pass %d\n", pass);
                return 1;
            }
        }
        CHECK(rh_stats(&st));
        if (st.pulls == pulls0) {
            fprintf(stderr, "spill: pass %d pulled nothing\n", pass);
            return 1;
        }
    }
    if (st.evictions == 0) {
        return fail("no pulled copy was evicted");
    }
    for (size_t i = 0; i < n; i++) {
        CHECK(rh_release(refs[i]));
    }
    free(order);
    printf("SPILL NODES OK: %zu objects on %d nodes read twice; node 0 "
           "evicted %llu copies and pulled %llu objects\n", n, nn,
           (unsigned long long)st.evictions, (unsigned long long)st.pulls);
    return 0;
}

static int graph(void)
{
    enum { N = 48 };
    rh_ref_t mid[N], dig[N];
    rh_stats_t st;
    uint64_t len = 2 * MiB;

    for (int i = 0; i < N; i++) {
        CHECK(submit_make(-1, len, (uint64_t)i, &mid[i]));
    }
    for (int i = 0; i < N; i++) {
        obj_spec_t spec = { len, (uint64_t)i };
        rh_arg_t args[2] = { rh_arg_ref(mid[i]),
                             rh_arg_bytes(&spec, sizeof(spec)) };

        CHECK(rh_remote("digest", args, 2, NULL, &dig[i]));
    }
    for (int i = 0; i < N; i++) {
        const void *p;
        size_t got;
        uint64_t bad;

        CHECK(rh_get(dig[i], &p, &got, WAIT_MS));
        memcpy(&bad, p, sizeof(bad));
        if (bad != len) {
            fprintf(stderr, "spill: intermediate %d is wrong at %llu\n", i,
                    (unsigned long long)bad);
            return 1;
        }
        CHECK(rh_release(dig[i]));
        CHECK(rh_release(dig[i]));
        CHECK(rh_release(mid[i]));
    }
    CHECK(rh_stats(&st));
    printf("SPILL GRAPH OK: %d intermediates of 2 MiB through a %llu MiB "
           "store\n", N, (unsigned long long)(st.store_capacity >> 20));
    return 0;
}

static int full(void)
{
    rh_ref_t refs[1024];
    size_t n = 0, *order;
    unsigned seed = 3;
    rh_status_t status;
    char msg[1024];
    void *p;

    while ((status = rh_put_create(256 * KiB, &refs[n], &p)) == RH_OK) {
        fill_pattern(p, 256 * KiB, n);
        CHECK(rh_put_seal(refs[n]));
        if (++n == 1024) {
            return fail("the spill files never filled");
        }
    }
    snprintf(msg, sizeof(msg), "%s", rh_last_error());
    if (status != RH_ERR_STORE_FULL || strstr(msg, "spill directory") == NULL
        || strstr(msg, "is full") == NULL) {
        fprintf(stderr, "spill: put %zu gave %s: %s\n", n,
                rh_status_string(status), msg);
        return 1;
    }
    /* nothing is lost: every object reads back, one by one */
    order = malloc(n * sizeof(*order));
    shuffle(order, n, &seed);
    for (size_t i = 0; i < n; i++) {
        if (check_ref(refs[order[i]], 256 * KiB, order[i]) != 0) {
            return 1;
        }
        CHECK(rh_release(refs[order[i]]));
    }
    free(order);
    printf("SPILL FULL OK: %zu objects stored, then: %s\n", n, msg);
    return 0;
}

static rh_ref_t held[512];
static size_t nheld;

static void *let_go(void *arg)
{
    (void)arg;
    for (int i = 0; i < 500; i++) {
        rank_nap();   /* 100 ms: the put below is most likely waiting */
    }
    for (size_t i = 0; i < 8 && i < nheld; i++) {
        rh_release(held[i]);   /* the get's hold: it may be spilled now */
    }
    return NULL;
}

/* Puts objects of 1 MiB and reads each (the get's hold pins it) until the
 * store is full of them: 0, or 1 when the full store's error is not the
 * one a put into a store of objects being read gives. */
static int fill_with_read(void)
{
    rh_status_t status;
    const void *q;
    size_t len;
    void *p;

    while ((status = rh_put_create(1 * MiB, &held[nheld], &p)) == RH_OK) {
        fill_pattern(p, 1 * MiB, nheld);
        CHECK(rh_put_seal(held[nheld]));
        CHECK(rh_get(held[nheld], &q, &len, WAIT_MS));   /* read: pinned */
        if (++nheld == 512) {
            return fail("the store never filled");
        }
    }
    if (status != RH_ERR_STORE_FULL ||
        strstr(rh_last_error(), "referenced") == NULL ||
        strstr(rh_last_error(), "RAYHPC_PUT_TIMEOUT_MS") == NULL) {
        fprintf(stderr, "spill: put into a store of objects being read: %s: "
                "%s\n", rh_status_string(status), rh_last_error());
        return 1;
    }
    printf("spill: %zu objects being read fill the store: %s\n", nheld,
           rh_last_error());
    return 0;
}

static int check_held(void)
{
    for (size_t i = 0; i < nheld; i++) {
        if (check_ref(held[i], 1 * MiB, i) != 0) {
            return 1;
        }
    }
    return 0;
}

static int wait_mode(void)
{
    rh_status_t status;
    pthread_t t;
    double t0;
    rh_ref_t r;
    void *p;

    if (fill_with_read() != 0) {
        return 1;
    }
    pthread_create(&t, NULL, let_go, NULL);
    t0 = rank_now();
    status = rh_put_create(1 * MiB, &r, &p);
    pthread_join(t, NULL);
    if (status != RH_OK) {
        return fail("the put that readers made room for");
    }
    CHECK(rh_put_seal(r));
    if (check_held() != 0) {
        return 1;
    }
    printf("SPILL WAIT OK: the put waited %.0f ms for readers to let go\n",
           (rank_now() - t0) * 1e3);
    return 0;
}

/* Objects put first, unread, spill as objects being read fill the store.
 * A get of one waits for readers to let go, then reads it back; with no
 * one letting go it fails after RAYHPC_PUT_TIMEOUT_MS saying why, and
 * loses nothing. */
static int getwait_mode(void)
{
    enum { EARLY = 4 };
    rh_ref_t early[EARLY];
    rh_stats_t st;
    rh_status_t status;
    const void *q;
    size_t len;
    pthread_t t;
    double t0;
    void *p;

    for (int i = 0; i < EARLY; i++) {
        CHECK(rh_put_create(1 * MiB, &early[i], &p));
        fill_pattern(p, 1 * MiB, 1000 + (uint64_t)i);
        CHECK(rh_put_seal(early[i]));
    }
    if (fill_with_read() != 0) {
        return 1;
    }
    CHECK(rh_stats(&st));
    if (st.spilled_objects < EARLY) {
        fprintf(stderr, "spill: %llu objects spilled, not the %d unread\n",
                (unsigned long long)st.spilled_objects, EARLY);
        return 1;
    }
    status = rh_get(early[0], &q, &len, WAIT_MS);
    if (status != RH_ERR_STORE_FULL ||
        strstr(rh_last_error(), "read it back") == NULL ||
        strstr(rh_last_error(), "RAYHPC_PUT_TIMEOUT_MS") == NULL) {
        fprintf(stderr, "spill: get of a spilled object, no room: %s: %s\n",
                rh_status_string(status), rh_last_error());
        return 1;
    }
    printf("spill: a get with no room: %s\n", rh_last_error());
    /* A get's own timeout ends its wait when it is the shorter: 0 only
     * looks, as for an object not ready. */
    status = rh_get(early[2], &q, &len, 0);
    if (status != RH_ERR_STORE_FULL ||
        strstr(rh_last_error(), "the get's timeout") == NULL) {
        fprintf(stderr, "spill: get with timeout 0, no room: %s: %s\n",
                rh_status_string(status), rh_last_error());
        return 1;
    }
    pthread_create(&t, NULL, let_go, NULL);
    t0 = rank_now();
    status = rh_get(early[1], &q, &len, WAIT_MS);
    pthread_join(t, NULL);
    if (status != RH_OK) {
        return fail("the get that readers made room for");
    }
    if (len != 1 * MiB || first_bad(q, len, 1001) != len) {
        return fail("the object read back differs");
    }
    CHECK(rh_release(early[1]));   /* the get's hold */
    for (int i = 0; i < EARLY; i++) {
        if (check_ref(early[i], 1 * MiB, 1000 + (uint64_t)i) != 0 ||
            rh_release(early[i]) != RH_OK) {
            return 1;
        }
    }
    if (check_held() != 0) {
        return 1;
    }
    printf("SPILL GETWAIT OK: the get waited %.0f ms for readers to let "
           "go\n", (rank_now() - t0) * 1e3);
    return 0;
}

/* Checks its one argument, another node's object passed by ref: 1 MiB of
 * seed 2002. */
static rh_status_t arg_check(rh_task_ctx_t *ctx)
{
    size_t len;
    const void *p = rh_task_arg(ctx, 0, &len);
    int ok = len == 1 * MiB && first_bad(p, len, 2002) == len;

    return rh_task_return(ctx, 0, &ok, sizeof(ok));
}

/* On the last node, whose store the task fills with objects it reads: a
 * get of rank 0's object x (its ref in argument 0) waits for room as a
 * put does, and fails saying so when its own timeout ends first; a task
 * taking rank 0's object y by ref waits too. Once a thread lets readers
 * go, both come. */
static rh_status_t pull_room(rh_task_ctx_t *ctx)
{
    rh_ref_t x, y, r;
    rh_arg_t a;
    rh_task_params_t tp = { 0 };
    rh_status_t status;
    const void *q;
    size_t len;
    pthread_t t;
    int bad = 1;

    memcpy(&x, rh_task_arg(ctx, 0, NULL), sizeof(x));
    memcpy(&y, rh_task_arg(ctx, 1, NULL), sizeof(y));
    if (fill_with_read() != 0) {
        return rh_task_return(ctx, 0, &bad, sizeof(bad));
    }
    status = rh_get(x, &q, &len, 300);
    if (status != RH_ERR_STORE_FULL ||
        strstr(rh_last_error(), "the get's timeout") == NULL) {
        fprintf(stderr, "spill: get of another node's object, no room: %s: "
                "%s\n", rh_status_string(status), rh_last_error());
        return rh_task_return(ctx, 0, &bad, sizeof(bad));
    }
    printf("spill: a pull with no room: %s\n", rh_last_error());
    tp.field_mask = RH_TASK_PARAM_FIELD_STRATEGY;
    tp.strategy = RH_STRATEGY_NODE_AFFINITY;
    tp.node = rh_node_id();
    a = rh_arg_ref(y);
    if (rh_remote("arg_check", &a, 1, &tp, &r) != RH_OK) {
        (void)fail("the task taking y");
        return rh_task_return(ctx, 0, &bad, sizeof(bad));
    }
    pthread_create(&t, NULL, let_go, NULL);
    status = rh_get(x, &q, &len, WAIT_MS);
    pthread_join(t, NULL);
    if (status != RH_OK || len != 1 * MiB ||
        first_bad(q, len, 2001) != len) {
        (void)fail("the get that readers made room for");
        return rh_task_return(ctx, 0, &bad, sizeof(bad));
    }
    CHECK(rh_release(x));
    status = rh_get(r, &q, &len, WAIT_MS);
    if (status != RH_OK || *(const int *)q != 1) {
        (void)fail("the task whose argument readers made room for");
        return rh_task_return(ctx, 0, &bad, sizeof(bad));
    }
    CHECK(rh_release(r));
    CHECK(rh_release(r));
    bad = check_held();
    for (size_t i = 0; i < nheld; i++) {
        rh_release(held[i]);
    }
    return rh_task_return(ctx, 0, &bad, sizeof(bad));
}

static int pullwait_mode(void)
{
    rh_ref_t x, y, r;
    rh_arg_t a[2];
    rh_task_params_t tp = { 0 };
    const void *q;
    size_t len;
    void *p;

    CHECK(rh_put_create(1 * MiB, &x, &p));
    fill_pattern(p, 1 * MiB, 2001);
    CHECK(rh_put_seal(x));
    CHECK(rh_put_create(1 * MiB, &y, &p));
    fill_pattern(p, 1 * MiB, 2002);
    CHECK(rh_put_seal(y));
    a[0] = rh_arg_bytes(&x, sizeof(x));
    a[1] = rh_arg_bytes(&y, sizeof(y));
    tp.field_mask = RH_TASK_PARAM_FIELD_STRATEGY;
    tp.strategy = RH_STRATEGY_NODE_AFFINITY;
    tp.node = rh_num_nodes() - 1;
    CHECK(rh_remote("pull_room", a, 2, &tp, &r));
    CHECK(rh_get(r, &q, &len, 4 * WAIT_MS));
    if (*(const int *)q != 0) {
        return fail("the pulls into a full store (see above)");
    }
    printf("SPILL PULLWAIT OK\n");
    return 0;
}

static void spill_dir_path(char *buf, size_t len)
{
    const char *base = getenv("RAYHPC_SPILL_DIR");

    snprintf(buf, len, "%s/%s.spill", base != NULL ? base : "/tmp",
             rh_store_name(rh_core_store()) + 1);
}

static void *killer(void *arg)
{
    rh_stats_t st;

    (void)arg;
    for (;;) {
        if (rh_stats(&st) == RH_OK && st.spill_files >= 2) {
            raise(SIGKILL);
        }
        rank_nap();
    }
    return NULL;
}

static int kill_mode(void)
{
    char dir[1024];
    pthread_t t;
    void *p;
    rh_ref_t r;

    spill_dir_path(dir, sizeof(dir));
    printf("SPILLDIR %s\n", dir);
    fflush(stdout);
    pthread_create(&t, NULL, killer, NULL);
    for (uint64_t i = 0;; i++) {
        CHECK(rh_put_create(1 * MiB, &r, &p));
        memset(p, (int)i, 1 * MiB);
        CHECK(rh_put_seal(r));
    }
    return 1;
}

static int modes(void)
{
    char dir[1024], path[2048];
    rh_ref_t refs[256];
    struct dirent *e;
    rh_stats_t st;
    void *p;
    DIR *d;

    CHECK(rh_stats(&st));
    for (size_t i = 0; i < 256 && i * 256 * KiB < 2 * st.store_capacity;
         i++) {
        CHECK(rh_put_create(i % 2 ? 256 * KiB : 2 * MiB, &refs[i], &p));
        CHECK(rh_put_seal(refs[i]));
    }
    spill_dir_path(dir, sizeof(dir));
    d = opendir(dir);
    if (d == NULL) {
        return fail("no spill directory");
    }
    {
        struct stat sd;

        if (stat(dir, &sd) == 0) {
            printf("DIRMODE %o\n", (unsigned)(sd.st_mode & 0777));
        }
    }
    while ((e = readdir(d)) != NULL) {
        struct stat sf;

        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (stat(path, &sf) == 0) {
            printf("MODE %o %s\n", (unsigned)(sf.st_mode & 0777), e->d_name);
        }
    }
    closedir(d);
    CHECK(rh_stats(&st));
    printf("SPILL MODES OK: %llu files\n",
           (unsigned long long)st.spill_files);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "workset";
    int rc = 0;
    rh_status_t st;

    CHECK(rh_register("make", make, 1, 1));
    CHECK(rh_register("digest", digest, 2, 1));
    CHECK(rh_register("pull_room", pull_room, 2, 1));
    CHECK(rh_register("arg_check", arg_check, 1, 1));
    CHECK(rh_init(&argc, &argv, NULL));
    if (rh_rank() == 0) {
        if (strcmp(mode, "workset") == 0) {
            rc = workset();
        } else if (strcmp(mode, "nodes") == 0) {
            rc = nodes();
        } else if (strcmp(mode, "graph") == 0) {
            rc = graph();
        } else if (strcmp(mode, "full") == 0) {
            rc = full();
        } else if (strcmp(mode, "wait") == 0) {
            rc = wait_mode();
        } else if (strcmp(mode, "getwait") == 0) {
            rc = getwait_mode();
        } else if (strcmp(mode, "pullwait") == 0) {
            rc = pullwait_mode();
        } else if (strcmp(mode, "kill") == 0) {
            rc = kill_mode();
        } else if (strcmp(mode, "modes") == 0) {
            rc = modes();
        } else {
            fprintf(stderr, "spill: unknown mode '%s'\n", mode);
            rc = 2;
        }
    }
    fflush(stdout);
    st = rh_finalize();
    return rc != 0 ? rc : (st == RH_OK ? 0 : 1);
}
