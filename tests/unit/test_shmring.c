/* The single-producer single-consumer ring of the same-host message path. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "plasma/store.h"
#include "transport/shmlink.h"
#include "transport/shmring.h"

#define CAP 4096u

static void *ring_mem(uint64_t cap)
{
    void *mem = aligned_alloc(64, rh_shmring_bytes(cap));

    cr_assert_not_null(mem);
    memset(mem, 0xa5, rh_shmring_bytes(cap));   /* no zeros to lean on */
    rh_shmring_init(mem, cap);
    return mem;
}

static int put(rh_shmring_t *w, uint32_t len, uint32_t tag, uint8_t fill)
{
    uint8_t *p = rh_shmring_reserve(w, len);

    if (p == NULL) {
        return 0;
    }
    cr_assert_eq((uintptr_t)p % 8, 0, "record bodies are 8-byte aligned");
    memset(p, fill, len);
    rh_shmring_commit(w, tag);
    return 1;
}

/* Takes the next record and checks its length, tag and every byte. */
static void take(rh_shmring_t *r, uint32_t len, uint32_t tag, uint8_t fill)
{
    uint32_t got_len, got_tag;
    const uint8_t *p = rh_shmring_peek(r, &got_len, &got_tag);

    cr_assert_not_null(p, "a record of %u bytes waits", len);
    cr_assert_eq(got_len, len);
    cr_assert_eq(got_tag, tag);
    for (uint32_t i = 0; i < len; i++) {
        cr_assert_eq(p[i], fill, "byte %u of a %u-byte record", i, len);
    }
    rh_shmring_consume(r);
}

Test(shmring, records_arrive_in_order)
{
    void *mem = ring_mem(CAP);
    rh_shmring_t w, r;
    uint32_t len, tag;

    rh_shmring_attach_writer(&w, mem, CAP);
    rh_shmring_attach_reader(&r, mem, CAP);
    cr_assert_eq(rh_shmring_readable(&r), 0);
    for (uint32_t i = 0; i < 10; i++) {
        cr_assert(put(&w, 8 * i, i, (uint8_t)i));
    }
    for (uint32_t i = 0; i < 10; i++) {
        take(&r, 8 * i, i, (uint8_t)i);
    }
    cr_assert_null(rh_shmring_peek(&r, &len, &tag));
    cr_assert_eq(len, 0, "an empty ring is not a broken one");
    free(mem);
}

Test(shmring, wraps_around_many_times)
{
    void *mem = ring_mem(CAP);
    rh_shmring_t w, r;
    uint32_t sent = 0, taken = 0;

    rh_shmring_attach_writer(&w, mem, CAP);
    rh_shmring_attach_reader(&r, mem, CAP);
    /* Odd sizes so that records meet the end of the ring at every offset. */
    while (taken < 5000) {
        while (sent - taken < 5 &&
               put(&w, (sent * 37) % 700, sent, (uint8_t)sent)) {
            sent++;
        }
        take(&r, (taken * 37) % 700, taken, (uint8_t)taken);
        taken++;
        (void)rh_shmring_release(&r);
    }
    free(mem);
}

Test(shmring, full_ring_refuses_until_the_reader_releases)
{
    void *mem = ring_mem(CAP);
    rh_shmring_t w, r;
    uint32_t n = 0;

    rh_shmring_attach_writer(&w, mem, CAP);
    rh_shmring_attach_reader(&r, mem, CAP);
    while (put(&w, 100, n, (uint8_t)n)) {
        n++;
    }
    cr_assert_eq(n, CAP / 128, "a 100-byte body takes two lines");
    cr_assert_eq(rh_shmring_wait_room(&w), 0, "nothing was freed yet");
    take(&r, 100, 0, 0);
    cr_assert_null(rh_shmring_reserve(&w, 100),
                   "consumed but not released: still full");
    cr_assert_eq(rh_shmring_release(&r), 1, "the waiting writer is told");
    cr_assert_eq(rh_shmring_release(&r), 0, "and told once");
    cr_assert(put(&w, 100, n, (uint8_t)n));
    for (uint32_t i = 1; i <= n; i++) {
        take(&r, 100, i, (uint8_t)i);
    }
    free(mem);
}

Test(shmring, every_record_size_up_to_the_limit)
{
    uint64_t cap = 16384;
    void *mem = ring_mem(cap);
    rh_shmring_t w, r;
    uint32_t max = rh_shmring_max_record(cap);

    rh_shmring_attach_writer(&w, mem, cap);
    rh_shmring_attach_reader(&r, mem, cap);
    for (uint32_t len = 0; len <= max; len++) {
        cr_assert(put(&w, len, len, (uint8_t)(len * 7)), "%u bytes", len);
        take(&r, len, len, (uint8_t)(len * 7));
        (void)rh_shmring_release(&r);
    }
    cr_assert_null(rh_shmring_reserve(&w, max + 1),
                   "a body over the limit is refused");
    free(mem);
}

Test(shmring, writer_dead_mid_record_blocks_only_its_own_ring)
{
    void *a = ring_mem(CAP), *b = ring_mem(CAP);
    rh_shmring_t wa, ra, wb, rb;
    uint8_t *p;

    rh_shmring_attach_writer(&wa, a, CAP);
    rh_shmring_attach_reader(&ra, a, CAP);
    rh_shmring_attach_writer(&wb, b, CAP);
    rh_shmring_attach_reader(&rb, b, CAP);
    cr_assert(put(&wa, 40, 1, 1));
    /* Writer a dies after reserving and half-filling a record. */
    p = rh_shmring_reserve(&wa, 200);
    cr_assert_not_null(p);
    memset(p, 0xee, 100);
    take(&ra, 40, 1, 1);
    cr_assert_eq(rh_shmring_readable(&ra), 0,
                 "the half-written record is invisible");
    /* Writer b is not held up by it. */
    for (uint32_t i = 0; i < 1000; i++) {
        cr_assert(put(&wb, 64, i, (uint8_t)i));
        take(&rb, 64, i, (uint8_t)i);
        (void)rh_shmring_release(&rb);
    }
    /* A new writer on a (its sender's replacement) starts from what was
     * published, not from the dead one's reservation. */
    rh_shmring_attach_writer(&wa, a, CAP);
    cr_assert(put(&wa, 8, 2, 2));
    take(&ra, 8, 2, 2);
    free(a);
    free(b);
}

Test(shmring, impossible_framing_is_reported)
{
    void *mem = ring_mem(CAP);
    rh_shmring_t w, r;
    uint32_t len, tag;
    uint8_t *p;

    rh_shmring_attach_writer(&w, mem, CAP);
    rh_shmring_attach_reader(&r, mem, CAP);
    p = rh_shmring_reserve(&w, 16);
    rh_shmring_commit(&w, 3);
    /* The record's header claims more than the ring holds. */
    memset(p - RH_SHMRING_REC_HDR, 0xff, 4);
    cr_assert_null(rh_shmring_peek(&r, &len, &tag));
    cr_assert_eq(len, UINT32_MAX);
    free(mem);
}

Test(shmring, cap_must_be_a_power_of_two)
{
    cr_assert(rh_shmring_cap_ok(4096));
    cr_assert(rh_shmring_cap_ok(1u << 20));
    cr_assert_not(rh_shmring_cap_ok(4096 + 64));
    cr_assert_not(rh_shmring_cap_ok(2048));
}

/* A writer thread and a reader thread, as the two processes would be. */
typedef struct {
    void     *mem;
    uint32_t  count;
} pair_t;

static void *writer_main(void *arg)
{
    pair_t *pr = arg;
    rh_shmring_t w;

    rh_shmring_attach_writer(&w, pr->mem, CAP);
    for (uint32_t i = 0; i < pr->count; i++) {
        uint32_t len = 4 + (i * 13) % 500;
        uint8_t *p;

        while ((p = rh_shmring_reserve(&w, len)) == NULL) {
            sched_yield();
        }
        memcpy(p, &i, sizeof(i));
        memset(p + 4, (uint8_t)i, len - 4);
        rh_shmring_commit(&w, i);
    }
    return NULL;
}

Test(shmring, two_threads_keep_order_and_content)
{
    pair_t pr = { ring_mem(CAP), 200000 };
    rh_shmring_t r;
    pthread_t t;

    rh_shmring_attach_reader(&r, pr.mem, CAP);
    cr_assert_eq(pthread_create(&t, NULL, writer_main, &pr), 0);
    for (uint32_t i = 0; i < pr.count; i++) {
        uint32_t len, tag, seq;
        const uint8_t *p;

        while ((p = rh_shmring_peek(&r, &len, &tag)) == NULL) {
            cr_assert_neq(len, UINT32_MAX);
            sched_yield();
        }
        memcpy(&seq, p, sizeof(seq));
        cr_assert_eq(seq, i);
        cr_assert_eq(tag, i);
        cr_assert_eq(len, 4 + (i * 13) % 500);
        cr_assert(len == 4 || p[len - 1] == (uint8_t)i);
        rh_shmring_consume(&r);
        (void)rh_shmring_release(&r);
    }
    pthread_join(t, NULL);
    free(pr.mem);
}

/* A rank killed before its finalize leaves its ring segment behind: the
 * store's stale-segment reaper removes it once its creator is gone, and
 * leaves a live one's alone. */
Test(shmring, stale_ring_segment_is_reaped)
{
    rh_tp_peer_info_t peers[2];
    char name[256], path[300];
    int removed = -1, status;
    pid_t child;

    memset(peers, 0, sizeof(peers));
    peers[0].pid = getpid();
    peers[0].same_host = 1;
    peers[1].pid = getpid();
    peers[1].same_host = 1;
    cr_assert_eq(rh_shml_segment_name("reaptest-x", 1, name, sizeof(name)),
                 RH_OK);
    snprintf(path, sizeof(path), "/dev/shm%s", name);
    child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        int ep = epoll_create1(0);

        peers[1].pid = getpid();
        _exit(rh_shml_open("reaptest-x", 1, 2, peers, 4096, ep,
                           NULL) == RH_OK ? 0 : 1);
    }
    cr_assert_eq(waitpid(child, &status, 0), child);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cr_assert_eq(access(path, F_OK), 0, "the dead rank left %s", path);
    cr_assert_eq(rh_store_reap_stale("rayhpc-reaptest-x", &removed), RH_OK);
    cr_assert_eq(removed, 1);
    cr_assert_neq(access(path, F_OK), 0, "%s was removed", path);

    /* ours, alive: kept */
    {
        int ep = epoll_create1(0);

        peers[1].pid = getpid();
        cr_assert_eq(rh_shml_open("reaptest-x", 1, 2, peers, 4096, ep, NULL),
                     RH_OK);
        cr_assert_eq(rh_store_reap_stale("rayhpc-reaptest-x", &removed),
                     RH_OK);
        cr_assert_eq(removed, 0);
        cr_assert_eq(access(path, F_OK), 0);
        rh_shml_close();
        cr_assert_neq(access(path, F_OK), 0, "the close removes it");
        close(ep);
    }
}
