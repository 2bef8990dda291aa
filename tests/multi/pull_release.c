/*
 * An object released while this node pulls it: the copy being written
 * stays in the store until the pull's reads are over (they write into its
 * block), and goes then. Before, the release freed the block at once and
 * the reads still in flight wrote into memory the store could hand to the
 * next object.
 *
 * usage: rayhpc-run -n 2 --nodes 2 pull_release   (UCX_TLS=tcp,self: a
 * stopped rank serves no read; RAYHPC_PULL_CHUNK=4096: many reads)
 *   rank 0 has a task on node 1 return OBJ_LEN bytes, gets it with a 1 ms
 *   timeout (the pull goes on) until the copy is being written here, and
 *   stops rank 1 (SIGSTOP): the pull cannot end. It releases the object:
 *   the copy must still be there. It lets rank 1 go on (SIGCONT): the copy
 *   must leave once the pull ended. A pull that ended before rank 1
 *   stopped proves nothing: the case starts again with a new object.
 *   Rank 0 prints "PULL RELEASE OK".
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "plasma/store.h"
#include "rank_util.h"

#define OBJ_LEN  (32u << 20)
#define WAIT_S   30.0
#define ATTEMPTS 5

static rh_status_t my_pid(rh_task_ctx_t *ctx)
{
    uint64_t pid = (uint64_t)getpid();

    return rh_task_return(ctx, 0, &pid, sizeof(pid));
}

static rh_status_t make(rh_task_ctx_t *ctx)
{
    uint8_t *w;
    rh_status_t st = rh_task_return_alloc(ctx, 0, OBJ_LEN, (void **)&w);

    if (st != RH_OK) {
        return st;
    }
    for (size_t i = 0; i < OBJ_LEN; i++) {
        w[i] = (uint8_t)(i * 131u);
    }
    return RH_OK;
}

static int fail(const char *what)
{
    fprintf(stderr, "pull_release: %s (%s)\n", what, rh_last_error());
    return 1;
}

/* Waits until present(id) is want; 0 when it is. */
static int wait_present(rh_object_id_t id, int want)
{
    double end = rank_now() + WAIT_S;

    while (rh_store_present(rh_core_store(), id) != want) {
        if (rank_now() > end) {
            return -1;
        }
        rank_nap();
    }
    return 0;
}

/* 1: the case was made and held; 0: the pull ended too soon (try again);
 * -1: it failed. */
static int attempt(pid_t pid1)
{
    rh_task_params_t params = rank_on_node(1, 0);
    rh_object_id_t id;
    rh_ref_t ref, rets[2];
    const void *p;
    size_t len;
    int ready = 0;
    double end = rank_now() + WAIT_S;
    rh_status_t st;

    /* A second, empty return says the task ended: a wait on the object
     * itself would bring it here. */
    params.field_mask |= RH_TASK_PARAM_FIELD_NUM_RETURNS;
    params.num_returns = 2;
    CHECK(rh_remote("make", NULL, 0, &params, rets));
    ref = rets[0];
    CHECK(rh_wait(&rets[1], 1, 1, WAIT_S * 1000, &ready));
    rh_release(rets[1]);
    if (!ready) {
        return -fail("the object was not made");
    }
    id.hi = ref.hi;
    id.lo = ref.lo;
    /* The first get starts the pull; it goes on after the timeout. */
    while ((st = rh_get(ref, &p, &len, 1)) == RH_ERR_TIMEOUT &&
           !rh_store_present(rh_core_store(), id) && rank_now() < end) {
    }
    if (kill(pid1, SIGSTOP) != 0) {
        return -fail("cannot stop rank 1");
    }
    if (st == RH_OK || rh_store_contains(rh_core_store(), id)) {
        (void)kill(pid1, SIGCONT);
        if (st == RH_OK) {
            rh_release(ref);   /* the get's hold */
        }
        rh_release(ref);
        return 0;
    }
    if (st != RH_ERR_TIMEOUT || !rh_store_present(rh_core_store(), id)) {
        (void)kill(pid1, SIGCONT);
        return -fail("the pull did not begin");
    }
    rh_release(ref);
    if (!rh_store_present(rh_core_store(), id)) {
        (void)kill(pid1, SIGCONT);
        return -fail("the copy being pulled left the store while its reads "
                    "were in flight");
    }
    if (kill(pid1, SIGCONT) != 0) {
        return -fail("cannot let rank 1 go on");
    }
    if (wait_present(id, 0) != 0) {
        return -fail("the released copy stayed after its pull ended");
    }
    return 1;
}

int main(int argc, char **argv)
{
    int rc = 0;
    rh_status_t st;

    CHECK(rh_register("my_pid", my_pid, 0, 1));
    CHECK(rh_register("make", make, 0, 1));
    CHECK(rh_init(&argc, &argv, NULL));
    if (rh_rank() == 0) {
        rh_task_params_t params = rank_on_node(1, 0);
        rh_ref_t r;
        const void *p;
        size_t len;
        uint64_t pid1 = 0;
        int tries = 0, got = 0;

        CHECK(rh_remote("my_pid", NULL, 0, &params, &r));
        CHECK(rh_get(r, &p, &len, WAIT_S * 1000));
        memcpy(&pid1, p, sizeof(pid1));
        rh_release(r);
        rh_release(r);
        while (got == 0 && tries++ < ATTEMPTS) {
            got = attempt((pid_t)pid1);
        }
        if (got == 1) {
            printf("PULL RELEASE OK: the copy stayed while the pull's reads "
                   "were in flight and left after (%d tr%s)\n", tries,
                   tries == 1 ? "y" : "ies");
        } else {
            rc = got == 0 ? fail("every pull ended before rank 1 stopped") :
                 1;
        }
    }
    fflush(stdout);
    st = rh_finalize();
    return rc != 0 ? rc : (st == RH_OK ? 0 : 1);
}
