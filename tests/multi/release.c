/*
 * Rank 0 lets objects go while ranks of other nodes pull and borrow them:
 * its progress thread looks the objects up (answers to pulls, borrows,
 * copies reported) as its driver drops the last holds, and its object
 * table reuses slots all along (aged to their last generation first, so
 * that they retire during the run and the table grows).
 *
 * Each round, rank 0 puts objects (inline in the future, or in the store)
 * and runs a task of three returns, hands all their ids as plain bytes (no
 * hold travels with them) to a task on node 1 and one on node 2, and lets
 * them go while those work (once the next round is on its way). Each of those gets every object, and hands each on as a
 * ref argument to a task of its own (a borrow): every get and every task
 * either reads the right bytes or fails saying the object was released.
 * At the end every future of rank 0 is gone: "RELEASE RACE OK".
 *
 * usage: release [rounds]   (3 ranks on 3 nodes, RAYHPC_FINALIZE_TIMEOUT
 *                            above 2 minutes)
 */
#include <string.h>

#include "core/future.h"
#include "rank_util.h"

/* Slow machines and sanitizers: the serving ranks are started with a
 * longer RAYHPC_FINALIZE_TIMEOUT than this. */
#define WAIT_MS 120000
#define PUTS 12            /* objects put per round, plus 3 returns */
#define NOBJ (PUTS + 3)

typedef struct obj {
    rh_ref_t ref;
    uint64_t len;
    uint64_t seed;
} obj_t;

/* What a grab saw: gets and borrowing tasks that read the object, and
 * those that found it released. */
typedef struct tally {
    uint64_t got, got_gone, ran, ran_gone;
} tally_t;

static uint8_t pbyte(uint64_t seed, size_t i)
{
    return (uint8_t)(i * 29u + seed * 7u + (i >> 7));
}

static int bytes_ok(const uint8_t *p, size_t len, const obj_t *o)
{
    if (len != o->len) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        if (p[i] != pbyte(o->seed, i)) {
            return 0;
        }
    }
    return 1;
}

/* Sizes: in the future (16 B), in the store but sent in messages (2 KiB),
 * pulled from the store (96 KiB). */
static uint64_t obj_len(int k)
{
    static const uint64_t lens[] = { 16, 2048, 96 * 1024 };

    return lens[k % 3];
}

static int is_released(const char *msg)
{
    return strstr(msg, "released") != NULL;
}

/* ---- remote functions ------------------------------------------------- */

/* Three returns, made like puts: args are the three specs. */
static rh_status_t make3(rh_task_ctx_t *ctx)
{
    for (int i = 0; i < 3; i++) {
        obj_t o;
        uint8_t *p;
        rh_status_t st;

        memcpy(&o, rh_task_arg(ctx, i, NULL), sizeof(o));
        st = rh_task_return_alloc(ctx, i, o.len, (void **)&p);
        if (st != RH_OK) {
            return st;
        }
        for (size_t k = 0; k < o.len; k++) {
            p[k] = pbyte(o.seed, k);
        }
    }
    return RH_OK;
}

/* Checks its ref argument against the spec after it. */
static rh_status_t touch(rh_task_ctx_t *ctx)
{
    obj_t o;
    size_t len;
    const uint8_t *p = rh_task_arg(ctx, 0, &len);

    memcpy(&o, rh_task_arg(ctx, 1, NULL), sizeof(o));
    if (!bytes_ok(p, len, &o)) {
        return rh_task_fail(ctx, "touch on rank %d: %zu bytes, not the "
                            "object's %llu", rh_rank(), len,
                            (unsigned long long)o.len);
    }
    return rh_task_return(ctx, 0, &len, sizeof(len));
}

/* Gets every object of the round and hands each to a task of its own. */
static rh_status_t grab(rh_task_ctx_t *ctx)
{
    size_t n;
    const obj_t *objs = rh_task_arg(ctx, 0, &n);
    rh_ref_t runs[NOBJ];
    tally_t t = { 0, 0, 0, 0 };

    n /= sizeof(obj_t);
    for (size_t i = 0; i < n && i < NOBJ; i++) {
        rh_arg_t args[2] = { rh_arg_ref(objs[i].ref),
                             rh_arg_bytes(&objs[i], sizeof(objs[i])) };
        const void *p;
        size_t len;
        rh_status_t st = rh_get(objs[i].ref, &p, &len, WAIT_MS);

        if (st == RH_OK) {
            int ok = bytes_ok(p, len, &objs[i]);

            rh_release(objs[i].ref);
            if (!ok) {
                return rh_task_fail(ctx, "rank %d got other bytes for "
                                    "object %zu", rh_rank(), i);
            }
            t.got++;
        } else if (st == RH_ERR_INVALID_REF && is_released(rh_last_error())) {
            t.got_gone++;
        } else {
            return rh_task_fail(ctx, "rank %d: get of object %zu: %s (%s)",
                                rh_rank(), i, rh_status_string(st),
                                rh_last_error());
        }
        st = rh_remote("touch", args, 2, NULL, &runs[i]);
        if (st != RH_OK) {
            return rh_task_fail(ctx, "rank %d: touch: %s", rh_rank(),
                                rh_last_error());
        }
    }
    for (size_t i = 0; i < n && i < NOBJ; i++) {
        const void *p;
        size_t len;
        rh_status_t st = rh_get(runs[i], &p, &len, WAIT_MS);

        if (st == RH_OK) {
            t.ran++;
            rh_release(runs[i]);
        } else if (st == RH_ERR_TASK_FAILED && is_released(rh_last_error())) {
            t.ran_gone++;
        } else {
            return rh_task_fail(ctx, "rank %d: touch of object %zu: %s (%s)",
                                rh_rank(), i, rh_status_string(st),
                                rh_last_error());
        }
        rh_release(runs[i]);
    }
    return rh_task_return(ctx, 0, &t, sizeof(t));
}

/* ---- rank 0 ---------------------------------------------------------- */

static int fail(const char *what)
{
    fprintf(stderr, "release: %s (%s)\n", what, rh_last_error());
    return 1;
}

/* One round's objects and the grabs handed their ids. */
typedef struct round {
    obj_t    objs[NOBJ];
    rh_ref_t grabs[2];
} round_t;

/* Makes round r's objects and sends them to the grabs. */
static void round_start(int r, round_t *rd)
{
    obj_t *objs = rd->objs;
    rh_arg_t specs[3], a;
    rh_ref_t rets[3];

    for (int k = 0; k < PUTS; k++) {
        uint8_t *p;

        objs[k].len = obj_len(k + r);
        objs[k].seed = (uint64_t)r * 1000 + (uint64_t)k;
        CHECK(rh_put_create(objs[k].len, &objs[k].ref, (void **)&p));
        for (size_t i = 0; i < objs[k].len; i++) {
            p[i] = pbyte(objs[k].seed, i);
        }
        CHECK(rh_put_seal(objs[k].ref));
    }
    for (int k = 0; k < 3; k++) {
        objs[PUTS + k].len = obj_len(k);
        objs[PUTS + k].seed = (uint64_t)r * 1000 + 500 + (uint64_t)k;
        specs[k] = rh_arg_bytes(&objs[PUTS + k], sizeof(obj_t));
    }
    CHECK(rh_remote("make3", specs, 3, NULL, rets));
    for (int k = 0; k < 3; k++) {
        objs[PUTS + k].ref = rets[k];
    }
    a = rh_arg_bytes(objs, NOBJ * sizeof(obj_t));
    for (int node = 1; node <= 2; node++) {
        rh_task_params_t p = rank_on_node(node, 0);

        CHECK(rh_remote("grab", &a, 1, &p, &rd->grabs[node - 1]));
    }
}

/* Lets round rd's objects go while its grabs work on them, then checks
 * what the grabs saw. */
static int round_end(round_t *rd, tally_t *sum)
{
    obj_t *objs = rd->objs;

    /* from the last while the grabs get from the first: the two meet
     * somewhere, and around there releases race pulls and borrows */
    for (int k = NOBJ - 1; k >= 0; k--) {
        CHECK(rh_release(objs[k].ref));
        rank_nap();
    }
    for (int g = 0; g < 2; g++) {
        const void *p;
        size_t len;
        tally_t t;

        CHECK(rh_get(rd->grabs[g], &p, &len, WAIT_MS));
        if (len != sizeof(t)) {
            return fail("a grab returned another size");
        }
        memcpy(&t, p, sizeof(t));
        rh_release(rd->grabs[g]);
        rh_release(rd->grabs[g]);
        if (t.got + t.got_gone != NOBJ || t.ran + t.ran_gone != NOBJ) {
            return fail("a grab lost objects");
        }
        sum->got += t.got;
        sum->got_gone += t.got_gone;
        sum->ran += t.ran;
        sum->ran_gone += t.ran_gone;
    }
    /* and a released ref stays released, whatever its slot holds now */
    for (int k = 0; k < NOBJ; k++) {
        const void *p;
        size_t len;

        if (rh_get(objs[k].ref, &p, &len, 0) != RH_ERR_INVALID_REF) {
            return fail("a released ref was found");
        }
    }
    return 0;
}

static int drive(int rounds)
{
    tally_t sum = { 0, 0, 0, 0 };
    round_t rd[2];
    double end;

    if (rh_num_nodes() != 3) {
        return fail("needs 3 ranks on 3 nodes");
    }
    /* every slot at its last generation but one: each retires after one
     * more object, and the table grows past them as we go */
    rh_future_test_wear((RH_FUTURE_GENERATIONS - 1) <<
                        RH_FUTURE_TABLE_MIN_BITS);
    /* Round r's objects go once round r + 1 is on its way: by then r's
     * grabs are at work. */
    round_start(0, &rd[0]);
    for (int r = 1; r <= rounds; r++) {
        if (r < rounds) {
            round_start(r, &rd[r % 2]);
        }
        if (round_end(&rd[(r - 1) % 2], &sum) != 0) {
            return 1;
        }
    }
    /* the borrowers' last -1s may still be on their way */
    end = rank_now() + WAIT_MS / 1000.0;
    while (rh_future_live() != 0 && rank_now() < end) {
        rank_nap();
    }
    if (rh_future_live() != 0) {
        fprintf(stderr, "release: %ld futures left\n", rh_future_live());
        return 1;
    }
    printf("RELEASE RACE OK: %d rounds; gets read %llu objects and found "
           "%llu released; borrowing tasks read %llu and found %llu "
           "released\n", rounds, (unsigned long long)sum.got,
           (unsigned long long)sum.got_gone, (unsigned long long)sum.ran,
           (unsigned long long)sum.ran_gone);
    return 0;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 && atoi(argv[1]) > 0 ? atoi(argv[1]) : 200;
    int rc = 0;
    rh_status_t st;

    CHECK(rh_register("make3", make3, 3, 3));
    CHECK(rh_register("touch", touch, 2, 1));
    CHECK(rh_register("grab", grab, 1, 1));
    CHECK(rh_init(&argc, &argv, NULL));
    if (rh_rank() == 0) {
        rc = drive(rounds);
    }
    fflush(stdout);
    st = rh_finalize();
    return rc != 0 ? rc : (st == RH_OK ? 0 : 1);
}
