/*
 * Soak: a mixed task graph (nested trees of tasks spread over the nodes,
 * large objects made on one node and checked on another, tasks in
 * placement groups) driven by rank 0 round after round, while some of the
 * other ranks are SIGKILLed at random moments.
 *
 * What must hold: every get has an answer (a value or an error, never a
 * wait past its deadline); a value is always the right one; an error comes
 * only once a rank has died, and says why; the job ends cleanly. Run with
 * --keep-going (the launcher then ends with 137 when ranks were killed).
 *
 * Settings (environment):
 *   SOAK_ROUNDS  rounds of the driver (default 20)
 *   SOAK_KILL    ranks to kill, chosen among 1..N-1 (default 0)
 *   SOAK_SEED    picks the victims and their moments (default 1)
 *   SOAK_WINDOW  seconds after start within which they die (default 5)
 *   SOAK_GROUPS  1: every fourth round also runs tasks in a placement group
 *                (default 1)
 * Prints "SOAK OK rounds=R ok=A lost=B dead=D" from rank 0.
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "rank_util.h"

#define WAIT_MS 60000    /* no answer within this is a hang */
#define TREES 4
#define BLOBS 4
#define TREE_DEPTH 4

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);

    return v != NULL && *v != '\0' ? strtol(v, NULL, 10) : dflt;
}

/* splitmix64: the same victims and moments on every rank for one seed. */
static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint8_t pbyte(uint64_t seed, size_t i)
{
    return (uint8_t)(i * 131u + seed * 17u + (i >> 9));
}

static rh_task_params_t spread(void)
{
    rh_task_params_t p = { 0 };

    p.field_mask = RH_TASK_PARAM_FIELD_STRATEGY;
    p.strategy = RH_STRATEGY_SPREAD;
    return p;
}

/* ---- the functions ---------------------------------------------------------- */

/* tree(depth): 2^depth leaves, each counting 1, summed up the tree. */
static rh_status_t tree(rh_task_ctx_t *ctx)
{
    uint32_t depth;
    uint64_t sum = 0;
    rh_ref_t kids[2];
    const void *p[2];
    size_t n[2];
    rh_status_t st;

    memcpy(&depth, rh_task_arg(ctx, 0, NULL), sizeof(depth));
    if (depth == 0) {
        sum = 1;
        return rh_task_return(ctx, 0, &sum, sizeof(sum));
    }
    depth--;
    for (int i = 0; i < 2; i++) {
        rh_arg_t a = rh_arg_bytes(&depth, sizeof(depth));
        rh_task_params_t tp = spread();

        st = rh_remote("tree", &a, 1, &tp, &kids[i]);
        if (st != RH_OK) {
            if (i == 1) {
                rh_release(kids[0]);
            }
            return rh_task_fail(ctx, "tree: submit: %s", rh_last_error());
        }
    }
    st = rh_get_many(kids, 2, p, n, WAIT_MS);
    if (st == RH_OK) {
        uint64_t a, b;

        memcpy(&a, p[0], sizeof(a));
        memcpy(&b, p[1], sizeof(b));
        sum = a + b;
        rh_release(kids[0]);
        rh_release(kids[1]);
    }
    rh_release(kids[0]);
    rh_release(kids[1]);
    if (st != RH_OK) {
        return rh_task_fail(ctx, "tree: %s", rh_last_error());
    }
    return rh_task_return(ctx, 0, &sum, sizeof(sum));
}

/* blob(len, seed): len bytes of the seed's pattern, written in place. */
static rh_status_t blob(rh_task_ctx_t *ctx)
{
    uint64_t spec[2];
    uint8_t *w;
    rh_status_t st;

    memcpy(spec, rh_task_arg(ctx, 0, NULL), sizeof(spec));
    st = rh_task_return_alloc(ctx, 0, spec[0], (void **)&w);
    if (st != RH_OK) {
        return rh_task_fail(ctx, "blob: %s", rh_last_error());
    }
    for (size_t i = 0; i < spec[0]; i++) {
        w[i] = pbyte(spec[1], i);
    }
    return RH_OK;
}

/* check(blob, len, seed): 1 when the blob is the pattern, whole. */
static rh_status_t check(rh_task_ctx_t *ctx)
{
    uint64_t spec[2], one = 1;
    const uint8_t *p;
    size_t len;

    p = rh_task_arg(ctx, 0, &len);
    memcpy(spec, rh_task_arg(ctx, 1, NULL), sizeof(spec));
    if (len != spec[0]) {
        return rh_task_fail(ctx, "WRONG blob of %zu bytes, %llu made", len,
                            (unsigned long long)spec[0]);
    }
    for (size_t i = 0; i < len; i++) {
        if (p[i] != pbyte(spec[1], i)) {
            return rh_task_fail(ctx, "WRONG byte %zu of the blob", i);
        }
    }
    return rh_task_return(ctx, 0, &one, sizeof(one));
}

/* ---- the victims -------------------------------------------------------------- */

static void *die_later(void *arg)
{
    double at = *(double *)arg;

    while (rank_now() < at) {
        usleep(2000);
    }
    fflush(stdout);
    raise(SIGKILL);
    return NULL;
}

/* Whether this rank is among the `kill` victims of seed, and when it dies. */
static int victim(long kill, uint64_t seed, double window, double *at)
{
    int n = rh_size();
    uint64_t s = seed;
    int picked[256] = { 0 };

    if (n < 2 || kill <= 0) {
        return 0;
    }
    if (kill > n - 1) {
        kill = n - 1;
    }
    for (long k = 0; k < kill; k++) {
        int r;
        double when;

        do {
            r = 1 + (int)(mix(&s) % (uint64_t)(n - 1));
        } while (r < 256 && picked[r]);
        if (r < 256) {
            picked[r] = 1;
        }
        when = 0.3 + (double)(mix(&s) % 10000) / 10000.0 * window;
        if (r == rh_rank()) {
            *at = rank_now() + when;
            return 1;
        }
    }
    return 0;
}

/* ---- the driver ----------------------------------------------------------------- */

typedef struct tally {
    long ok, lost, bad;
    int shown;
} tally_t;

static int any_dead_now(void)
{
    for (int r = 0; r < rh_size(); r++) {
        if (!rh_rank_alive(r)) {
            return 1;
        }
    }
    return 0;
}

/* Whether some rank died. Another rank may hear of a death (and fail a
 * task for it) before this one does: give the news a few seconds. */
static int any_dead(void)
{
    for (int i = 0; i < 500 && !any_dead_now(); i++) {
        usleep(10000);
    }
    return any_dead_now();
}

/* One answer: right value, or an error that a death explains. */
static void judge(tally_t *t, const char *what, rh_status_t st,
                  const void *p, size_t len, uint64_t want)
{
    const char *why = rh_last_error();
    uint64_t got = 0;

    if (st == RH_OK) {
        if (len == sizeof(got)) {
            memcpy(&got, p, sizeof(got));
        }
        if (len == sizeof(got) && got == want) {
            t->ok++;
            return;
        }
        fprintf(stderr, "SOAK BAD %s: %llu instead of %llu\n", what,
                (unsigned long long)got, (unsigned long long)want);
        t->bad++;
        return;
    }
    if (st == RH_ERR_TIMEOUT) {
        fprintf(stderr, "SOAK BAD %s: no answer within %d ms\n", what,
                WAIT_MS);
        t->bad++;
        return;
    }
    if (strstr(why, "WRONG") != NULL || why[0] == '\0' || !any_dead()) {
        fprintf(stderr, "SOAK BAD %s: %s: \"%s\" (ranks dead: %s)\n", what,
                rh_status_string(st), why, any_dead_now() ? "some" : "none");
        t->bad++;
        return;
    }
    if (t->shown++ < 5) {
        printf("soak: %s lost to a death: %s: %s\n", what,
               rh_status_string(st), why);
    }
    t->lost++;
}

static void get_and_judge(tally_t *t, const char *what, rh_ref_t ref,
                          uint64_t want)
{
    const void *p = NULL;
    size_t len = 0;
    rh_status_t st = rh_get(ref, &p, &len, WAIT_MS);

    judge(t, what, st, p, len, want);
    if (st == RH_OK) {
        rh_release(ref);
    }
    rh_release(ref);
}

static void round_of_groups(tally_t *t)
{
    rh_bundle_t b[2] = { { 1, NULL }, { 1, NULL } };
    rh_pg_t pg;
    rh_status_t st;
    rh_ref_t r[2];
    int sent = 0;

    st = rh_pg_create(b, 2, RH_PG_SPREAD, &pg);
    if (st == RH_OK) {
        st = rh_pg_wait(pg, WAIT_MS);
    }
    if (st != RH_OK) {
        judge(t, "placement group", st, NULL, 0, 0);
        if (st != RH_ERR_INVALID_PARAM) {
            (void)rh_pg_remove(pg);
        }
        return;
    }
    for (int i = 0; i < 2; i++) {
        uint32_t depth = 2;
        rh_arg_t a = rh_arg_bytes(&depth, sizeof(depth));
        rh_task_params_t tp = { 0 };

        tp.field_mask = RH_TASK_PARAM_FIELD_STRATEGY;
        tp.strategy = RH_STRATEGY_PLACEMENT_GROUP;
        tp.pg = pg;
        tp.bundle = i;
        st = rh_remote("tree", &a, 1, &tp, &r[i]);
        if (st != RH_OK) {
            judge(t, "task in a group", st, NULL, 0, 0);
            break;
        }
        sent++;
    }
    for (int i = 0; i < sent; i++) {
        get_and_judge(t, "tree in a group", r[i], 4);
    }
    (void)rh_pg_remove(pg);
}

static int with_groups = 1;

static void one_round(tally_t *t, int round)
{
    rh_ref_t trees[TREES], blobs[BLOBS], checks[BLOBS];
    uint64_t spec[BLOBS][2];
    rh_task_params_t tp = spread();
    uint32_t depth = TREE_DEPTH;

    for (int i = 0; i < TREES; i++) {
        rh_arg_t a = rh_arg_bytes(&depth, sizeof(depth));

        CHECK(rh_remote("tree", &a, 1, &tp, &trees[i]));
    }
    for (int i = 0; i < BLOBS; i++) {
        rh_arg_t a[2];

        spec[i][0] = (64u << 10) << ((round + i) % 7);   /* 64 KiB..4 MiB */
        spec[i][1] = (uint64_t)round * BLOBS + (uint64_t)i;
        a[0] = rh_arg_bytes(spec[i], sizeof(spec[i]));
        CHECK(rh_remote("blob", a, 1, &tp, &blobs[i]));
        a[0] = rh_arg_ref(blobs[i]);
        a[1] = rh_arg_bytes(spec[i], sizeof(spec[i]));
        CHECK(rh_remote("check", a, 2, &tp, &checks[i]));
        rh_release(blobs[i]);   /* the check task keeps it alive */
    }
    for (int i = 0; i < TREES; i++) {
        get_and_judge(t, "tree", trees[i], 1u << TREE_DEPTH);
    }
    for (int i = 0; i < BLOBS; i++) {
        get_and_judge(t, "blob checked on another node", checks[i], 1);
    }
    if (with_groups && round % 4 == 3) {
        round_of_groups(t);
    }
}

int main(int argc, char **argv)
{
    long rounds = env_long("SOAK_ROUNDS", 20);
    long kill = env_long("SOAK_KILL", 0);
    uint64_t seed = (uint64_t)env_long("SOAK_SEED", 1);
    double window = (double)env_long("SOAK_WINDOW", 5), at = 0;
    tally_t t = { 0, 0, 0, 0 };
    pthread_t killer;
    int dead = 0;

    with_groups = env_long("SOAK_GROUPS", 1) != 0;
    CHECK(rh_register("tree", tree, 1, 1));
    CHECK(rh_register("blob", blob, 1, 1));
    CHECK(rh_register("check", check, 2, 1));
    CHECK(rh_init(&argc, &argv, NULL));
    if (victim(kill, seed, window, &at) &&
        pthread_create(&killer, NULL, die_later, &at) != 0) {
        raise(SIGKILL);
    }
    if (rh_rank() == 0) {
        /* the node stores are named after rank 0's pid: the soak script
         * checks that none is left behind */
        printf("SOAK JOB rayhpc-%d-\n", (int)getpid());
        fflush(stdout);
        for (int r = 0; r < rounds; r++) {
            one_round(&t, r);
        }
        for (int r = 0; r < rh_size(); r++) {
            dead += !rh_rank_alive(r);
        }
        if (t.bad == 0) {
            printf("SOAK OK rounds=%ld ok=%ld lost=%ld dead=%d\n", rounds,
                   t.ok, t.lost, dead);
        } else {
            printf("SOAK FAILED: %ld wrong or missing answers (ok=%ld "
                   "lost=%ld dead=%d)\n", t.bad, t.ok, t.lost, dead);
        }
        fflush(stdout);
    }
    CHECK(rh_finalize());
    return t.bad == 0 ? 0 : 1;
}
