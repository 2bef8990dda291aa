/*
 * MPI and librayhpc in one process, in every order.
 *
 *   mpirun -n 4 tests/multi/mpi_coexist INIT FINI
 *   srun --mpi=pmix -n 4 tests/multi/mpi_coexist INIT FINI
 *
 * INIT is who starts first: "mpi" (MPI_Init_thread, then rh_init) or "rh"
 * (rh_init, then MPI_Init_thread unless rh_init already started MPI, which
 * it does with RAYHPC_BOOTSTRAP=mpi: MPI allows one init per process).
 * FINI is who ends first: "mpi" (MPI_Finalize, then rh_finalize) or "rh".
 * In between, both work in turn and at once: ranks must agree, an
 * MPI_Allreduce and a ring of 8 MiB MPI_Send/MPI_Recv, objects put on every
 * rank whose refs travel by MPI_Allgather and are read on other nodes, and
 * tasks placed on every node reading those objects. After the first
 * finalize the other side must still work: a task across nodes after
 * MPI_Finalize, an MPI_Allreduce after rh_finalize. Each rank prints
 * "COEXIST OK" at the end.
 *
 *   mpirun -n 2 tests/multi/mpi_coexist after-finalize
 *
 * checks that rh_init with the mpi backend refuses an MPI already ended.
 */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rayhpc.h"

#define RING_BYTES  (8u << 20)
#define OBJ_BYTES   (1u << 20)
#define OBJ_MAX_RANKS 64

#define FAIL(...) \
    do { \
        fprintf(stderr, "mpi_coexist rank %d: ", rank); \
        fprintf(stderr, __VA_ARGS__); \
        fprintf(stderr, "\n"); \
        exit(1); \
    } while (0)

#define RH_CHECK(_expr) \
    do { \
        rh_status_t _s = (_expr); \
        if (_s != RH_OK) { \
            FAIL("%s: %s (%s)", #_expr, rh_status_string(_s), \
                 rh_last_error()); \
        } \
    } while (0)

#define MPI_CHECK(_expr) \
    do { \
        if ((_expr) != MPI_SUCCESS) { \
            FAIL("%s failed", #_expr); \
        } \
    } while (0)

static int rank = -1;

static uint8_t pattern(int owner, size_t i)
{
    return (uint8_t)((size_t)owner * 151u + i * 7u + (i >> 10));
}

static uint64_t checksum(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h;
}

/* The checksum of its argument object, and the node it ran on. */
static rh_status_t sum_object(rh_task_ctx_t *ctx)
{
    size_t len = 0;
    const uint8_t *p = rh_task_arg(ctx, 0, &len);
    uint64_t out[2] = { checksum(p, len), (uint64_t)rh_node_id() };

    return rh_task_return(ctx, 0, out, sizeof(out));
}

static void mpi_start(int *we_started)
{
    int provided = MPI_THREAD_SINGLE;

    MPI_CHECK(MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided));
    if (provided < MPI_THREAD_FUNNELED) {
        FAIL("MPI gave thread level %d, below MPI_THREAD_FUNNELED", provided);
    }
    *we_started = 1;
}

/* An MPI_Allreduce of the ranks, checked. */
static void mpi_allreduce_check(int size)
{
    long mine = rank, sum = -1;

    MPI_CHECK(MPI_Allreduce(&mine, &sum, 1, MPI_LONG, MPI_SUM,
                            MPI_COMM_WORLD));
    if (sum != (long)size * (size - 1) / 2) {
        FAIL("MPI_Allreduce gave %ld", sum);
    }
}

/* Each rank sends 8 MiB to its right neighbour and checks what its left
 * one sent (even ranks send first, so the ring cannot deadlock). */
static void mpi_ring(int size)
{
    uint8_t *out = malloc(RING_BYTES), *in = malloc(RING_BYTES);
    int right = (rank + 1) % size, left = (rank + size - 1) % size;

    if (out == NULL || in == NULL) {
        FAIL("no memory for the ring");
    }
    for (size_t i = 0; i < RING_BYTES; i++) {
        out[i] = pattern(rank + 1000, i);
    }
    for (int step = 0; step < 2; step++) {
        if ((rank % 2 == 0) == (step == 0)) {
            MPI_CHECK(MPI_Send(out, (int)RING_BYTES, MPI_BYTE, right, 7,
                               MPI_COMM_WORLD));
        } else {
            MPI_CHECK(MPI_Recv(in, (int)RING_BYTES, MPI_BYTE, left, 7,
                               MPI_COMM_WORLD, MPI_STATUS_IGNORE));
        }
    }
    for (size_t i = 0; i < RING_BYTES; i++) {
        if (in[i] != pattern(left + 1000, i)) {
            FAIL("ring: byte %zu from rank %d is wrong", i, left);
        }
    }
    free(out);
    free(in);
}

/* Every rank puts an object; the refs travel by MPI; every rank reads its
 * right neighbour's in place, and rank 0 has a task on each node sum
 * another node's object. */
static void objects_and_tasks(int size)
{
    static rh_ref_t refs[OBJ_MAX_RANKS];
    rh_ref_t mine;
    void *w;
    const void *p;
    size_t len;
    int right = (rank + 1) % size;

    RH_CHECK(rh_put_create(OBJ_BYTES, &mine, &w));
    for (size_t i = 0; i < OBJ_BYTES; i++) {
        ((uint8_t *)w)[i] = pattern(rank, i);
    }
    RH_CHECK(rh_put_seal(mine));
    MPI_CHECK(MPI_Allgather(&mine, (int)sizeof(mine), MPI_BYTE, refs,
                            (int)sizeof(mine), MPI_BYTE, MPI_COMM_WORLD));

    RH_CHECK(rh_get(refs[right], &p, &len, 60000));
    if (len != OBJ_BYTES) {
        FAIL("rank %d's object has %zu bytes", right, len);
    }
    for (size_t i = 0; i < len; i++) {
        if (((const uint8_t *)p)[i] != pattern(right, i)) {
            FAIL("byte %zu of rank %d's object is wrong", i, right);
        }
    }
    RH_CHECK(rh_release(refs[right]));

    if (rank == 0) {
        uint8_t *expect = malloc(OBJ_BYTES);

        if (expect == NULL) {
            FAIL("no memory");
        }
        for (int r = 0; r < size; r++) {
            int node = (r + 1) % rh_num_nodes();
            rh_task_params_t tp = {
                .field_mask = RH_TASK_PARAM_FIELD_STRATEGY,
                .strategy = RH_STRATEGY_NODE_AFFINITY, .node = node };
            rh_arg_t arg = rh_arg_ref(refs[r]);
            rh_ref_t ret;
            uint64_t got[2];

            for (size_t i = 0; i < OBJ_BYTES; i++) {
                expect[i] = pattern(r, i);
            }
            RH_CHECK(rh_remote("sum_object", &arg, 1, &tp, &ret));
            RH_CHECK(rh_get(ret, &p, &len, 60000));
            memcpy(got, p, sizeof(got));
            if (got[0] != checksum(expect, OBJ_BYTES) ||
                got[1] != (uint64_t)node) {
                FAIL("task on node %d summing rank %d's object: sum %s, "
                     "ran on node %llu", node, r,
                     got[0] == checksum(expect, OBJ_BYTES) ? "ok" : "wrong",
                     (unsigned long long)got[1]);
            }
            RH_CHECK(rh_release(ret));
            RH_CHECK(rh_release(ret));
        }
        free(expect);
    }
    /* Owners keep their objects until everyone has read them. */
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    RH_CHECK(rh_release(mine));
}

/* After MPI_Finalize: rank 0 still runs a task on another node. */
static void rh_alone(void)
{
    rh_task_params_t tp = { .field_mask = RH_TASK_PARAM_FIELD_STRATEGY,
                            .strategy = RH_STRATEGY_NODE_AFFINITY,
                            .node = rh_num_nodes() - 1 };
    uint8_t bytes[64];
    rh_arg_t arg = rh_arg_bytes(bytes, sizeof(bytes));
    rh_ref_t ret;
    const void *p;
    size_t len;
    uint64_t got[2];

    if (rank != 0) {
        return;
    }
    for (size_t i = 0; i < sizeof(bytes); i++) {
        bytes[i] = pattern(99, i);
    }
    RH_CHECK(rh_remote("sum_object", &arg, 1, &tp, &ret));
    RH_CHECK(rh_get(ret, &p, &len, 60000));
    memcpy(got, p, sizeof(got));
    if (got[0] != checksum(bytes, sizeof(bytes)) ||
        got[1] != (uint64_t)(rh_num_nodes() - 1)) {
        FAIL("the task after MPI_Finalize gave a wrong answer");
    }
    RH_CHECK(rh_release(ret));
    RH_CHECK(rh_release(ret));
}

/* rh_init with the mpi backend once the program has ended MPI: a clear
 * error, not a call into a finalized MPI. */
static int rh_init_after_mpi_finalize(void)
{
    int we_started = 0;
    rh_init_params_t params = { .field_mask = RH_INIT_PARAM_FIELD_BOOTSTRAP,
                                .bootstrap = "mpi" };
    rh_status_t status;

    mpi_start(&we_started);
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
    MPI_CHECK(MPI_Finalize());
    status = rh_init(NULL, NULL, &params);
    if (status != RH_ERR_BOOTSTRAP) {
        FAIL("rh_init after MPI_Finalize gave %s", rh_status_string(status));
    }
    printf("REFUSED rank=%d: %s\n", rank, rh_last_error());
    return 0;
}

int main(int argc, char **argv)
{
    int mpi_first, fini_mpi_first, we_started_mpi = 0, inited = 0, done = 0;
    int mpi_rank = -1, mpi_size = -1, level = -1;

    if (argc == 2 && strcmp(argv[1], "after-finalize") == 0) {
        return rh_init_after_mpi_finalize();
    }
    if (argc != 3 || (strcmp(argv[1], "mpi") && strcmp(argv[1], "rh")) ||
        (strcmp(argv[2], "mpi") && strcmp(argv[2], "rh"))) {
        fprintf(stderr, "usage: %s mpi|rh mpi|rh (who inits first, who "
                "finalizes first), or %s after-finalize\n", argv[0],
                argv[0]);
        return 2;
    }
    mpi_first = strcmp(argv[1], "mpi") == 0;
    fini_mpi_first = strcmp(argv[2], "mpi") == 0;

    RH_CHECK(rh_register("sum_object", sum_object, 1, 1));
    if (mpi_first) {
        mpi_start(&we_started_mpi);
    }
    RH_CHECK(rh_init(&argc, &argv, NULL));
    rank = rh_rank();
    MPI_CHECK(MPI_Initialized(&inited));
    if (!mpi_first && inited) {
        printf("rank %d: rh_init started MPI\n", rank);
    } else if (!mpi_first) {
        mpi_start(&we_started_mpi);
    }
    MPI_CHECK(MPI_Query_thread(&level));
    if (level < MPI_THREAD_FUNNELED) {
        FAIL("MPI runs at thread level %d, below MPI_THREAD_FUNNELED", level);
    }
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &mpi_rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &mpi_size));
    if (mpi_rank != rh_rank() || mpi_size != rh_size()) {
        FAIL("MPI says rank %d of %d, librayhpc rank %d of %d", mpi_rank,
             mpi_size, rh_rank(), rh_size());
    }
    if (mpi_size > OBJ_MAX_RANKS) {
        FAIL("at most %d ranks", OBJ_MAX_RANKS);
    }
    printf("RANKS AGREE rank=%d size=%d node=%d nodes=%d\n", rank, mpi_size,
           rh_node_id(), rh_num_nodes());
    fflush(stdout);

    mpi_allreduce_check(mpi_size);
    mpi_ring(mpi_size);
    objects_and_tasks(mpi_size);
    mpi_allreduce_check(mpi_size);

    if (fini_mpi_first) {
        /* Whoever started MPI, the program may end it first: rh_finalize
         * must not finalize it again. */
        MPI_CHECK(MPI_Finalize());
        rh_alone();
        RH_CHECK(rh_finalize());
    } else {
        RH_CHECK(rh_finalize());
        MPI_CHECK(MPI_Finalized(&done));
        if (!we_started_mpi) {
            /* rh_init started MPI, so rh_finalize ended it. */
            if (!done) {
                FAIL("rh_finalize left running the MPI that rh_init started");
            }
        } else {
            if (done) {
                FAIL("rh_finalize finalized the program's MPI");
            }
            mpi_allreduce_check(mpi_size);
            MPI_CHECK(MPI_Finalize());
        }
    }
    printf("COEXIST OK rank=%d init=%s fini=%s\n", rank, argv[1], argv[2]);
    return 0;
}
