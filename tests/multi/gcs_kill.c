/*
 * A GCS chain member dies by SIGKILL mid-stream; no acknowledged write may
 * be lost, none applied twice, and a subscriber sees each update once, in
 * order, across the reconfiguration.
 *
 * usage: gcs_kill ROLE KILL_AT NWRITES   (ROLE: head, middle or tail)
 * Run with 4 ranks on 4 nodes and RAYHPC_GCS_SHARDS=2: shard 1's chain is
 * ranks 1, 2, 3 (head, middle, tail), the masters are ranks 0, 1, 2.
 * Rank 0 writes NWRITES updates to 1000 keys of shard 1, a window at a
 * time, and after KILL_AT acknowledged writes tells the member of ROLE to
 * kill itself (the fixed kill point). It then reads every key back (the
 * value of its last acknowledged write must be there) and checks what its
 * subscription to the keys saw. Prints "GCS KILL OK" and the failover
 * time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rank_util.h"

#define KEYS 1000
#define WINDOW 256

#include "gcs_stream.h"

int main(int argc, char **argv)
{
    const char *role = argc > 1 ? argv[1] : "middle";
    long kill_at = argc > 2 ? atol(argv[2]) : 30000;
    long nwrites = argc > 3 ? atol(argv[3]) : 100000;
    int victim = strcmp(role, "head") == 0 ? 1 :
                 strcmp(role, "tail") == 0 ? 3 : 2;
    double killed_at = 0, failover = -1;
    long done = 0;
    uint32_t sub;

    stream_start(&argc, &argv, 4, 0, "gcs_kill");
    /* 1000 keys of shard 1. */
    stream_keys_of_shard(1);
    CHECK(rh_gcs_subscribe(RH_GCS_T_TEST, RH_GCS_SUB_PREFIX, "k", 1,
                           on_update, NULL, &sub));
    while (done < nwrites) {
        long n = nwrites - done < WINDOW ? nwrites - done : WINDOW;

        if (killed_at == 0 && done >= kill_at) {
            CHECK(rh_am_send_wait((uint32_t)victim, DIE, NULL, 0, NULL, 0));
            killed_at = rank_now();
            printf("rank 0: killed the %s (rank %d) after %ld writes\n",
                   role, victim, done);
        }
        if (stream_window(0, done, n) != 0 ||
            stream_ack_window(done, n) != 0) {
            return 1;
        }
        if (killed_at != 0 && failover < 0) {
            failover = (rank_now() - killed_at) * 1000.0;
        }
        done += n;
    }
    if (!stream_read_back()) {
        return 1;
    }
    /* The last write goes through the re-formed chain. */
    if (stream_check_updates(nwrites, 60.0) != 0) {
        return 1;
    }
    printf("rank 0: GCS KILL OK %s: %ld writes, every one read back, each "
           "update seen once in order; failover %.0f ms\n", role, nwrites,
           failover);
    CHECK(rh_finalize());
    return 0;
}
