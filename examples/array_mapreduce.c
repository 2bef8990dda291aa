/*
 * A map-reduce over a large array of doubles held as objects in the nodes'
 * stores, each chunk read in place where it lives.
 *
 *   rayhpc-run -n 4 --nodes 2 ./examples/array_mapreduce [MIB] [CHUNK_MIB]
 *                                                         [ROUNDS]
 *
 * The array (MIB MiB, 32 by default; 256 and more with a larger
 * RAYHPC_STORE_SIZE) is cut into chunks of CHUNK_MIB MiB, dealt to the
 * nodes in turn. A "fill" task on the chunk's node (NODE_AFFINITY) writes
 * it straight into that node's store (rh_task_return_alloc: no copy, and a
 * forwarded task's large return stays where it was made). Then each round
 * a "map" task per chunk, on the chunk's node again, reads the chunk in
 * place and returns its sum and sum of squares (16 bytes), and a tree of
 * "add" tasks, 8 wide, reduces them; rank 0 waits only for the root. Only
 * the 16-byte partial sums cross nodes.
 *
 * The array holds small integers, so both sums are exact whatever the
 * order of the additions: the result is compared for equality with a
 * serial sum. Figures are timed over ROUNDS rounds after a warm-up round.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rayhpc.h>

#include "example.h"

#define FAN_IN 8

typedef struct {
    uint64_t first;   /* index of the chunk's first element in the array */
    uint64_t count;   /* its elements */
} span_t;

typedef struct {
    double sum, sumsq;
} partial_t;

/* Element i of the array: an integer in [0, 1000), no simple pattern. */
static double element(uint64_t i)
{
    return (double)(((i * 0x9e3779b97f4a7c15ull) >> 40) % 1000u);
}

static rh_status_t fill(rh_task_ctx_t *ctx)
{
    span_t s;
    double *x;
    rh_status_t st;

    memcpy(&s, rh_task_arg(ctx, 0, NULL), sizeof(s));
    st = rh_task_return_alloc(ctx, 0, s.count * sizeof(double), (void **)&x);
    if (st != RH_OK) {
        return st;
    }
    for (uint64_t i = 0; i < s.count; i++) {
        x[i] = element(s.first + i);
    }
    return RH_OK;
}

static rh_status_t map(rh_task_ctx_t *ctx)
{
    size_t len;
    const double *x = rh_task_arg(ctx, 0, &len);
    partial_t p = { 0.0, 0.0 };

    for (size_t i = 0; i < len / sizeof(double); i++) {
        p.sum += x[i];
        p.sumsq += x[i] * x[i];
    }
    return rh_task_return(ctx, 0, &p, sizeof(p));
}

static rh_status_t add(rh_task_ctx_t *ctx)
{
    partial_t total = { 0.0, 0.0 }, p;

    for (int i = 0; i < rh_task_nargs(ctx); i++) {
        memcpy(&p, rh_task_arg(ctx, i, NULL), sizeof(p));
        total.sum += p.sum;
        total.sumsq += p.sumsq;
    }
    return rh_task_return(ctx, 0, &total, sizeof(total));
}

static rh_task_params_t on_node(int node)
{
    rh_task_params_t p = { .field_mask = RH_TASK_PARAM_FIELD_STRATEGY,
                           .strategy = RH_STRATEGY_NODE_AFFINITY,
                           .node = node };
    return p;
}

/* Reduces refs[0..n) with a tree of "add" tasks; the root's ref in *root.
 * Each task holds what it reads, so the refs are let go as they are
 * handed on. Counts the tasks in *tasks. */
static rh_status_t reduce(rh_ref_t *refs, size_t n, rh_ref_t *root,
                          size_t *tasks)
{
    rh_arg_t args[FAN_IN];

    while (n > 1) {
        size_t m = 0;

        for (size_t i = 0; i < n; i += FAN_IN) {
            int k = n - i < FAN_IN ? (int)(n - i) : FAN_IN;
            rh_status_t st;

            for (int j = 0; j < k; j++) {
                args[j] = rh_arg_ref(refs[i + (size_t)j]);
            }
            st = rh_remote("add", args, k, NULL, &refs[m]);
            for (int j = 0; j < k; j++) {
                rh_release(args[j].ref);
            }
            if (st != RH_OK) {
                return st;
            }
            m++;
            (*tasks)++;
        }
        n = m;
    }
    *root = refs[0];
    return RH_OK;
}

/* One round: a map task per chunk on its node, the tree, the root's get. */
static rh_status_t round_trip(const rh_ref_t *chunks, size_t nchunks,
                              int nodes, rh_ref_t *scratch, partial_t *out,
                              size_t *tasks)
{
    rh_ref_t root;
    const void *p;
    size_t len;
    rh_status_t st;

    for (size_t c = 0; c < nchunks; c++) {
        rh_arg_t arg = rh_arg_ref(chunks[c]);
        rh_task_params_t on = on_node((int)(c % (size_t)nodes));

        st = rh_remote("map", &arg, 1, &on, &scratch[c]);
        if (st != RH_OK) {
            return st;
        }
    }
    *tasks += nchunks;
    st = reduce(scratch, nchunks, &root, tasks);
    if (st != RH_OK) {
        return st;
    }
    st = rh_get(root, &p, &len, RH_TIMEOUT_INFINITE);
    if (st == RH_OK) {
        memcpy(out, p, sizeof(*out));
        rh_release(root);
    }
    rh_release(root);
    return st;
}

int main(int argc, char **argv)
{
    uint64_t mib, chunk_mib, elems, per_chunk;
    int rounds, nodes, ready_all;
    size_t nchunks = 0, made = 0, tasks = 0, remote_chunks = 0;
    rh_ref_t *chunks = NULL, *scratch = NULL;
    int *ready = NULL;
    partial_t got = { 0, 0 }, want = { 0, 0 };
    rh_stats_t s0, s1;
    double t0, t1, fill_s, best = 0, total = 0;
    int rc = 1;

    if (rh_register("fill", fill, 1, 1) != RH_OK ||
        rh_register("map", map, 1, 1) != RH_OK ||
        rh_register("add", add, -1, 1) != RH_OK ||
        rh_init(&argc, &argv, NULL) != RH_OK) {
        fprintf(stderr, "array_mapreduce: %s\n", rh_last_error());
        return 1;
    }
    if (rh_rank() != 0) {
        return rh_finalize() == RH_OK ? 0 : 1;   /* serve tasks */
    }
    mib = (uint64_t)ex_arg(argc, argv, 1, 32, 1 << 30);
    chunk_mib = (uint64_t)ex_arg(argc, argv, 2, 1, 1 << 20);
    rounds = (int)ex_arg(argc, argv, 3, 3, 1 << 20);
    if (mib == 0 || chunk_mib == 0 || rounds == 0) {
        goto out;
    }
    if (mib % chunk_mib != 0) {
        fprintf(stderr, "array_mapreduce: MIB must be a multiple of "
                "CHUNK_MIB\n");
        goto out;
    }
    nodes = rh_num_nodes();
    nchunks = (size_t)(mib / chunk_mib);
    per_chunk = chunk_mib * 1024 * 1024 / sizeof(double);
    elems = per_chunk * nchunks;
    chunks = calloc(nchunks, sizeof(*chunks));
    scratch = calloc(nchunks, sizeof(*scratch));
    ready = calloc(nchunks, sizeof(*ready));
    if (chunks == NULL || scratch == NULL || ready == NULL) {
        fprintf(stderr, "array_mapreduce: out of memory\n");
        goto out;
    }

    /* The array, made on the nodes that will read it. */
    t0 = ex_now();
    for (size_t c = 0; c < nchunks; c++) {
        span_t s = { c * per_chunk, per_chunk };
        rh_arg_t arg = rh_arg_bytes(&s, sizeof(s));
        rh_task_params_t on = on_node((int)(c % (size_t)nodes));

        if (rh_remote("fill", &arg, 1, &on, &chunks[c]) != RH_OK) {
            goto err_rh;
        }
        made++;
        remote_chunks += c % (size_t)nodes != (size_t)rh_node_id();
    }
    if (rh_wait(chunks, nchunks, nchunks, RH_TIMEOUT_INFINITE, ready) !=
        RH_OK) {
        goto err_rh;
    }
    fill_s = ex_now() - t0;
    ready_all = 1;
    for (size_t c = 0; c < nchunks; c++) {
        ready_all &= ready[c];
    }
    if (!ready_all) {
        fprintf(stderr, "array_mapreduce: a chunk was not made\n");
        goto out;
    }

    if (round_trip(chunks, nchunks, nodes, scratch, &got, &tasks) != RH_OK) {
        goto err_rh;   /* the warm-up round */
    }
    tasks = 0;
    rh_stats(&s0);
    for (int r = 0; r < rounds; r++) {
        partial_t p;

        t0 = ex_now();
        if (round_trip(chunks, nchunks, nodes, scratch, &p, &tasks) !=
            RH_OK) {
            goto err_rh;
        }
        t1 = ex_now() - t0;
        total += t1;
        best = r == 0 || t1 < best ? t1 : best;
        if (p.sum != got.sum || p.sumsq != got.sumsq) {
            got.sum = -1;   /* rounds disagree: wrong whatever the check */
        }
    }
    rh_stats(&s1);

    for (uint64_t i = 0; i < elems; i++) {
        double x = element(i);

        want.sum += x;
        want.sumsq += x * x;
    }
    ex_note_oversubscribed("array_mapreduce");
    printf("array_mapreduce: %" PRIu64 " MiB of doubles in %zu chunks of "
           "%" PRIu64 " MiB on %d node(s) of %d rank(s), made in %.3f s "
           "(%.2f GiB/s)\n", mib, nchunks, chunk_mib, nodes, rh_size(),
           fill_s, (double)mib / 1024.0 / fill_s);
    printf("array_mapreduce: %d rounds after a warm-up: %.4f s a round "
           "(best %.4f s), %.2f GiB/s read in place (best %.2f), %.0f "
           "tasks/s; between nodes: %zu partial sums of %zu bytes a round, "
           "%" PRIu64 " bytes pulled by rank 0\n", rounds, total / rounds,
           best, (double)mib / 1024.0 * rounds / total,
           (double)mib / 1024.0 / best, (double)tasks / total, remote_chunks,
           sizeof(partial_t), s1.bytes_pulled - s0.bytes_pulled);
    if (got.sum == want.sum && got.sumsq == want.sumsq) {
        printf("ARRAY_MAPREDUCE OK: sum %.0f and sum of squares %.0f of "
               "%" PRIu64 " elements equal the serial sums\n", got.sum,
               got.sumsq, elems);
        rc = 0;
    } else {
        printf("ARRAY_MAPREDUCE WRONG: sums %.0f, %.0f; serial %.0f, %.0f\n",
               got.sum, got.sumsq, want.sum, want.sumsq);
    }
    goto out;

err_rh:
    fprintf(stderr, "array_mapreduce: %s\n", rh_last_error());
out:
    for (size_t c = 0; c < made; c++) {
        rh_release(chunks[c]);
    }
    free(chunks);
    free(scratch);
    free(ready);
    if (rh_finalize() != RH_OK) {
        rc = 1;
    }
    return rc;
}
