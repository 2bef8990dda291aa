/*
 * Objects between ranks of one node, and the store segment's life.
 *
 * usage: objects share   rank 0 puts 64 MiB, sends the ref to every rank;
 *                        each reads it from the same pages (same segment
 *                        offset) and checks every byte: "SHARED OK".
 *        objects name    prints "STORE <segment name>" and ends normally.
 *        objects kill    prints the name, then every rank dies by SIGKILL.
 *        objects mismatch  rank 1 registers other functions than rank 0:
 *                        rh_init reports each difference.
 *        objects holder_dies  rank 0 puts 1 MiB and sends the ref to rank
 *                        1, which gets it and dies by SIGKILL holding it;
 *                        rank 0 lets its ref go and waits for the node's
 *                        store to free the object: "HOLDER DIES OK"
 *                        (run with --keep-going, every rank on one node).
 *        objects slow_driver  rank 0 works for 3 s while the others wait in
 *                        rh_finalize (run with RAYHPC_FINALIZE_TIMEOUT=1s):
 *                        every rank ends well, "SLOW RANK OK".
 *        objects slow_worker  the same with rank 1 working late while rank
 *                        0 waits in rh_finalize.
 */
#include <signal.h>
#include <string.h>

#include "core/core.h"
#include "plasma/store.h"
#include "rank_util.h"
#include "transport/am.h"

#define REF_MSG (RH_AM_ID_TEST_FIRST + 5)
#define SIZE (64u << 20)

static rh_ref_t shared;
static uint64_t owner_offset;
static _Atomic long got_ref;

static rh_status_t on_ref(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    memcpy(&shared, msg->hdr, sizeof(shared));
    memcpy(&owner_offset, (const char *)msg->hdr + sizeof(shared),
           sizeof(owner_offset));
    atomic_store(&got_ref, 1);
    return RH_OK;
}

static int share(void)
{
    const uint8_t *p;
    size_t len;
    uint64_t off;

    if (rh_rank() == 0) {
        uint8_t *w;
        uint8_t hdr[sizeof(rh_ref_t) + sizeof(uint64_t)];

        CHECK(rh_put_create(SIZE, &shared, (void **)&w));
        for (size_t i = 0; i < SIZE; i++) {
            w[i] = (uint8_t)(i * 13 + 5);
        }
        CHECK(rh_put_seal(shared));
        owner_offset = rh_store_offset(rh_core_store(), w);
        memcpy(hdr, &shared, sizeof(shared));
        memcpy(hdr + sizeof(shared), &owner_offset, sizeof(owner_offset));
        for (int r = 1; r < rh_size(); r++) {
            CHECK(rh_am_send_wait((uint32_t)r, REF_MSG, hdr, sizeof(hdr),
                                  NULL, 0));
        }
        return 0;
    }
    if (rank_wait_count(&got_ref, 1, 60)) {
        fprintf(stderr, "rank %d: no ref from rank 0\n", rh_rank());
        return 1;
    }
    CHECK(rh_get(shared, (const void **)&p, &len, 60000));
    off = rh_store_offset(rh_core_store(), p);
    if (len != SIZE || off != owner_offset) {
        fprintf(stderr, "rank %d: %zu bytes at offset %llu, rank 0 wrote "
                "%u at %llu\n", rh_rank(), len, (unsigned long long)off,
                SIZE, (unsigned long long)owner_offset);
        return 1;
    }
    for (size_t i = 0; i < SIZE; i++) {
        if (p[i] != (uint8_t)(i * 13 + 5)) {
            fprintf(stderr, "rank %d: byte %zu differs\n", rh_rank(), i);
            return 1;
        }
    }
    CHECK(rh_release(shared));
    printf("SHARED OK rank %d: %u bytes read in place at segment offset "
           "%llu, where rank 0 wrote them\n", rh_rank(), SIZE,
           (unsigned long long)off);
    return 0;
}

static uint64_t store_objects(void)
{
    rh_stats_t st;

    return rh_stats(&st) == RH_OK ? st.store_objects : UINT64_MAX;
}

static int holder_dies(void)
{
    const void *p;
    size_t len;

    if (rh_rank() == 0) {
        uint8_t hdr[sizeof(rh_ref_t) + sizeof(uint64_t)] = { 0 };
        void *w;

        CHECK(rh_put_create(1u << 20, &shared, &w));
        memset(w, 7, 1u << 20);
        CHECK(rh_put_seal(shared));
        memcpy(hdr, &shared, sizeof(shared));
        CHECK(rh_am_send_wait(1, REF_MSG, hdr, sizeof(hdr), NULL, 0));
        /* rank 1 dies only once it holds the object */
        for (int i = 0; i < 6000 && rh_rank_alive(1); i++) {
            usleep(10000);
        }
        if (rh_rank_alive(1)) {
            fprintf(stderr, "rank 1 was never declared dead\n");
            return 1;
        }
        CHECK(rh_release(shared));
        for (int i = 0; i < 3000 && store_objects() != 0; i++) {
            usleep(10000);
        }
        if (store_objects() != 0) {
            fprintf(stderr, "the object rank 1 held when it died is still "
                    "in the store (%llu objects)\n",
                    (unsigned long long)store_objects());
            return 1;
        }
        printf("HOLDER DIES OK: the dead rank's hold was given back\n");
        return 0;
    }
    if (rh_rank() == 1) {
        if (rank_wait_count(&got_ref, 1, 60)) {
            fprintf(stderr, "rank 1: no ref from rank 0\n");
            return 1;
        }
        CHECK(rh_get(shared, &p, &len, 60000));
        fflush(stdout);
        raise(SIGKILL);
    }
    return 0;
}

static rh_status_t nop(rh_task_ctx_t *ctx)
{
    (void)ctx;
    return RH_OK;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "share";
    const char *lrank = getenv("RAYHPC_LOCAL_RANK");
    int rc = 0;

    if (strcmp(mode, "mismatch") == 0) {
        int one = lrank != NULL && strcmp(lrank, "1") == 0;

        CHECK(rh_register("shared", nop, one ? 2 : 1, 1));
        if (one) {
            CHECK(rh_register("only_on_one", nop, 0, 1));
        } else {
            CHECK(rh_register("only_on_zero", nop, 0, 1));
        }
    }

    CHECK(rh_am_register(REF_MSG, sizeof(rh_ref_t) + 8, sizeof(rh_ref_t) + 8,
                         on_ref, NULL));
    CHECK(rh_init(&argc, &argv, NULL));
    if (strcmp(mode, "share") == 0) {
        rc = share();
    } else if (strcmp(mode, "holder_dies") == 0) {
        rc = holder_dies();
    } else if (strncmp(mode, "slow_", 5) == 0) {
        int me = rh_rank();

        if (me == (strcmp(mode, "slow_driver") == 0 ? 0 : 1)) {
            sleep(3);
        }
        CHECK(rh_finalize());
        printf("SLOW RANK OK rank %d\n", me);
        return 0;
    } else if (strcmp(mode, "mismatch") == 0) {
        printf("MISMATCH rank %d up\n", rh_rank());
    } else {
        printf("STORE %s\n", rh_store_name(rh_core_store()));
        fflush(stdout);
        if (strcmp(mode, "kill") == 0) {
            raise(SIGKILL);
        }
    }
    /* rank 0 keeps its object alive until everyone has read it */
    CHECK(rh_finalize());
    return rc;
}
