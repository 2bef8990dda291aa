/*
 * The record of a spilled copy is written by the rank that spilled it and
 * deleted by the rank of the node that read it back or freed it: two
 * processes whose GCS writes are not ordered with each other. Rank 0 and
 * rank 1 (one node) play the store's spill hook in turn, and each holds
 * its writes back (rh_object_record_test_hold) so that the other's
 * overtakes them, whatever the timing:
 *
 *   1. rank 0 spills object A (file 7) with its write held; rank 1 reads A
 *      back (forgets spill 7) and sees its delete answered; rank 0 lets
 *      its write go. A is not spilled: no record may be left.
 *   2. rank 0 spilled object B (file 3); rank 1 forgets spill 3 with its
 *      delete held; rank 0 spills B again (file 9) and sees its write
 *      answered; rank 1 lets its delete go. B is spilled (file 9): its
 *      record must stay.
 *
 * usage: gcs_spill_order   (2 ranks on 1 node)
 * Rank 0 prints "SPILL ORDER OK" when both hold, else what did not.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/completion.h"
#include "core/core.h"
#include "core/object_record.h"
#include "plasma/object_id.h"
#include "rank_util.h"
#include "transport/am.h"

#define WAIT_S 60.0
#define SIZE 4096u

static _Atomic long steps;   /* GOs from the other rank */

static rh_status_t on_step(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    (void)msg;
    atomic_fetch_add(&steps, 1);
    return RH_OK;
}

#define STEP (RH_AM_ID_TEST_FIRST + 13)

static void tell(int peer)
{
    CHECK(rh_am_send_wait((uint32_t)peer, STEP, NULL, 0, NULL, 0));
}

static void await(long n)
{
    if (rank_wait_count(&steps, n, WAIT_S * 3) != 0) {
        fprintf(stderr, "rank %d: step %ld never came\n", rh_rank(), n);
        exit(1);
    }
}

static void settle(void)
{
    if (!rh_object_record_wait(rh_time_ns() + (uint64_t)(WAIT_S * 1e9))) {
        fprintf(stderr, "rank %d: record changes not answered in %.0f s\n",
                rh_rank(), WAIT_S);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    rh_object_id_t a = rh_object_id_make(0, 1001, 0);
    rh_object_id_t b = rh_object_id_make(0, 1002, 0);
    rh_object_record_t r;
    rh_status_t sa, sb;
    int me;

    /* Before rh_init, whose exchange every rank passes: no STEP can come
     * before its handler is there. */
    CHECK(rh_am_register(STEP, 0, 0, on_step, NULL));
    CHECK(rh_init(&argc, &argv, NULL));
    me = rh_rank();
    if (rh_size() != 2 || rh_num_nodes() != 1) {
        fprintf(stderr, "gcs_spill_order runs on 2 ranks on 1 node\n");
        return 1;
    }
    if (me == 0) {
        rh_object_record_spilled(b, SIZE, 1, 3);
        settle();
        /* 1: the spill's write held back until the delete was answered */
        rh_object_record_test_hold(1);
        rh_object_record_spilled(a, SIZE, 1, 7);
        tell(1);
        await(1);
        rh_object_record_test_hold(0);
        settle();
        /* 2: the later spill's write answered before the older delete */
        await(2);
        rh_object_record_spilled(b, SIZE, 1, 9);
        settle();
        tell(1);
        await(3);
        sa = rh_object_record_read(a, rh_node_id(), &r);
        sb = rh_object_record_read(b, rh_node_id(), &r);
        if (sa == RH_ERR_NOT_FOUND && sb == RH_OK && r.size == SIZE) {
            printf("rank 0: SPILL ORDER OK\n");
        } else {
            printf("rank 0: SPILL ORDER BROKEN: read back, forgotten: %s "
                   "(a stale record when OK); spilled again after an older "
                   "delete: %s (lost when not found)\n",
                   rh_status_string(sa), rh_status_string(sb));
        }
        fflush(stdout);
        tell(1);
    } else {
        await(1);
        rh_object_record_spilled(a, SIZE, 0, 7);
        settle();
        tell(0);
        rh_object_record_test_hold(1);
        rh_object_record_spilled(b, SIZE, 0, 3);
        tell(0);
        await(2);
        rh_object_record_test_hold(0);
        settle();
        tell(0);
        await(3);
    }
    CHECK(rh_finalize());
    return 0;
}
