/* The owner's future table: object ids never wear out, a released id never
 * names a newer object, and a lookup that races with the last release
 * either holds a live future or finds nothing. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/future.h"

static _Atomic long deleted;

static void count_delete(rh_object_id_t id)
{
    (void)id;
    atomic_fetch_add(&deleted, 1);
}

static void setup(void)
{
    atomic_store(&deleted, 0);
    rh_future_setup(3, count_delete);
}

static void teardown(void)
{
    rh_future_teardown();
}

TestSuite(future, .init = setup, .fini = teardown);

/* A put or a task of n returns, finished and let go at once. */
static rh_object_id_t make_and_drop(int n)
{
    rh_fblock_t *b;
    rh_object_id_t id;

    if (n == 0) {
        cr_assert_eq(rh_future_put_block_new(&b), RH_OK, "put: %s",
                     rh_last_error());
    } else {
        cr_assert_eq(rh_future_block_new(n, &b), RH_OK, "task: %s",
                     rh_last_error());
    }
    id = rh_future_id(b, 0, n == 0);
    for (int i = 0; i < (n == 0 ? 1 : n); i++) {
        rh_future_complete(&b->f[i], "x", 1, 0);
        rh_future_unhold(&b->f[i]);
    }
    return id;
}

static int id_cmp(const void *a, const void *b)
{
    const rh_object_id_t *x = a, *y = b;

    if (x->hi != y->hi) {
        return x->hi < y->hi ? -1 : 1;
    }
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Makes and drops n objects (puts and tasks of 1 to 5 returns); every id
 * is new, and none of them, nor the old ones, is found once dropped. */
static void churn(int n, const rh_object_id_t *old, int nold)
{
    rh_object_id_t *ids = malloc((size_t)(n + nold) * sizeof(*ids));

    cr_assert_not_null(ids);
    for (int i = 0; i < n; i++) {
        ids[i] = make_and_drop(i % 7 == 0 ? 1 + i % 5 : 0);
        cr_assert_null(rh_future_find_hold(ids[i]));
        for (int k = 0; k < nold; k++) {
            cr_assert_null(rh_future_find_hold(old[k]),
                           "a released id names object %d", i);
        }
    }
    memcpy(ids + n, old, (size_t)nold * sizeof(*ids));
    qsort(ids, (size_t)(n + nold), sizeof(*ids), id_cmp);
    for (int i = 1; i < n + nold; i++) {
        cr_assert(!rh_object_id_equal(ids[i - 1], ids[i]),
                  "an object id was issued twice");
    }
    free(ids);
    cr_expect_eq(rh_future_live(), 0);
}

Test(future, ids_keep_coming_past_2_to_the_32_objects)
{
    rh_object_id_t old[2];

    old[0] = make_and_drop(0);
    old[1] = make_and_drop(3);
    /* as if this rank had run for hours at a million tasks a second */
    rh_future_test_wear((uint64_t)1 << 32);
    churn(20000, old, 2);
}

Test(future, slots_whose_generations_run_out_retire_and_ids_stay_unique)
{
    rh_object_id_t old[2];

    old[0] = make_and_drop(0);
    old[1] = make_and_drop(2);
    /* every slot two generations from its last: within a few laps of the
     * table every one of them retires and the table takes new ones */
    rh_future_test_wear(((uint64_t)RH_FUTURE_GENERATIONS - 2) <<
                        RH_FUTURE_TABLE_MIN_BITS);
    churn(5 << RH_FUTURE_TABLE_MIN_BITS, old, 2);
}

Test(future, a_released_id_is_not_found_after_its_slot_is_reused)
{
    rh_fblock_t *b;
    rh_object_id_t id = make_and_drop(0), now;
    rh_future_t *f;
    int reused = 0;

    /* go round the table until some live object sits in the old one's
     * slot: the old id still names nothing */
    for (int i = 0; i < 4 << RH_FUTURE_TABLE_MIN_BITS && !reused; i++) {
        cr_assert_eq(rh_future_put_block_new(&b), RH_OK);
        now = rh_future_id(b, 0, 1);
        reused = rh_future_slot(now) == rh_future_slot(id);
        cr_assert_null(rh_future_find_hold(id));
        f = rh_future_find_hold(now);
        cr_assert_eq(f, &b->f[0]);
        rh_future_unhold(f);
        rh_future_complete(&b->f[0], "y", 1, 0);
        if (!reused) {
            rh_future_unhold(&b->f[0]);
        }
    }
    cr_assert(reused, "the table never reused a slot");
    cr_expect_null(rh_future_find_hold(id));
    rh_future_unhold(&b->f[0]);
}

Test(future, a_hold_is_taken_only_while_holds_are_left)
{
    rh_fblock_t *b;
    rh_object_id_t id;
    rh_future_t *f;

    cr_assert_eq(rh_future_block_new(2, &b), RH_OK);
    id = rh_future_id(b, 1, 0);
    f = rh_future_find_hold(id);
    cr_assert_eq(f, &b->f[1]);
    cr_expect_eq(atomic_load(&f->refs), 3);
    rh_future_unhold(f);
    /* wrong indexes of a live counter are not objects */
    cr_expect_null(rh_future_find_hold(rh_future_id(b, 2, 0)));
    cr_expect_null(rh_future_find_hold(rh_future_id(b, 0, 1)));
    rh_future_complete(&b->f[1], "z", 1, 0);
    rh_future_unhold(&b->f[1]);
    /* its holds are gone: dead, though its block lives on for f[0] */
    cr_expect_null(rh_future_find_hold(id));
    cr_expect_not_null(f = rh_future_find_hold(rh_future_id(b, 0, 0)));
    rh_future_unhold(f);
    rh_future_fail(&b->f[0], "no");
    rh_future_unhold(&b->f[0]);
    cr_expect_eq(rh_future_live(), 0);
}

Test(future, ids_from_nowhere_are_not_found)
{
    rh_object_id_t none[] = {
        rh_object_id_make(3, 0, 0), rh_object_id_make(3, 1, 0),
        rh_object_id_make(3, UINT64_MAX, 1),
        rh_object_id_make(3, 1ull << 63, 1),
        rh_object_id_make(3, (1ull << 62) | 17, 0),
    };

    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        cr_expect_null(rh_future_find_hold(none[i]), "id %zu", i);
    }
}

/* ---- finders against releasers ------------------------------------- */

#define RING 64
#define ROUNDS 20000

static _Atomic uint64_t ring_hi[RING], ring_lo[RING];
static _Atomic int releasers_left;
static _Atomic long found, wrong;

/* Makes objects, shows their ids to the finders and lets them go at once,
 * over and over: tasks of several returns (blocks that come and go) and
 * puts. */
static void *releaser(void *arg)
{
    int me = (int)(intptr_t)arg;

    for (int i = 0; i < ROUNDS; i++) {
        int n = (i + me) % 3 == 0 ? 0 : 1 + (i + me) % 4;
        rh_fblock_t *b;
        int slot = (i * 7 + me) % RING;

        if (n == 0) {
            cr_assert_eq(rh_future_put_block_new(&b), RH_OK);
        } else {
            cr_assert_eq(rh_future_block_new(n, &b), RH_OK);
        }
        for (int k = 0; k < (n == 0 ? 1 : n); k++) {
            rh_object_id_t id = rh_future_id(b, k, n == 0);

            atomic_store(&ring_hi[(slot + k) % RING], id.hi);
            atomic_store(&ring_lo[(slot + k) % RING], id.lo);
        }
        for (int k = 0; k < (n == 0 ? 1 : n); k++) {
            rh_future_complete(&b->f[k], &i, sizeof(i), 0);
            rh_future_unhold(&b->f[k]);
        }
    }
    atomic_fetch_sub(&releasers_left, 1);
    return NULL;
}

/* Looks up whatever ids are shown; what it finds must be the object the id
 * names, held, until it lets go. */
static void *finder(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;

    while (atomic_load(&releasers_left) > 0) {
        int k = (int)(rand_r(&seed) % RING);
        rh_object_id_t id = { atomic_load(&ring_hi[k]),
                              atomic_load(&ring_lo[k]) };
        rh_future_t *f = rh_future_find_hold(id);

        if (f == NULL) {
            continue;
        }
        atomic_fetch_add(&found, 1);
        if (!rh_object_id_equal(rh_future_id(f->block,
                                             (int)(f - f->block->f),
                                             f->block->is_put), id)) {
            atomic_fetch_add(&wrong, 1);
        }
        rh_future_unhold(f);
    }
    return NULL;
}

Test(future, finders_racing_the_last_release_hold_the_right_object_or_none)
{
    enum { R = 2, F = 3 };
    pthread_t t[R + F];

    atomic_store(&releasers_left, R);
    for (int i = 0; i < R; i++) {
        pthread_create(&t[i], NULL, releaser, (void *)(intptr_t)i);
    }
    for (int i = 0; i < F; i++) {
        pthread_create(&t[R + i], NULL, finder, (void *)(uintptr_t)(i + 1));
    }
    for (int i = 0; i < R + F; i++) {
        pthread_join(t[i], NULL);
    }
    cr_expect_eq(atomic_load(&wrong), 0, "%ld lookups held another object",
                 atomic_load(&wrong));
    cr_expect_eq(rh_future_live(), 0, "%ld futures left",
                 rh_future_live());
    cr_log_info("%ld lookups found a live object", atomic_load(&found));
}

/* ---- rebuilds from lineage ------------------------------------------- */

#define REMOTE_LEN 4096   /* a return left on the runner's node */

/* A task's return, READY on another node: what a rebuild reopens. */
static rh_future_t *remote_return(rh_fblock_t **b)
{
    cr_assert_eq(rh_future_block_new(1, b), RH_OK, "%s", rh_last_error());
    rh_future_complete(&(*b)->f[0], NULL, REMOTE_LEN, 0);
    return &(*b)->f[0];
}

/* A getter that saw READY reads data, len and in_store without a lock: a
 * rebuild must leave them as the first run set them, even when its answer
 * came by value into this node's store. */
Test(future, a_rebuild_leaves_the_fields_getters_read_as_they_were)
{
    static uint8_t copy[REMOTE_LEN];
    rh_fblock_t *b;
    rh_future_t *f = remote_return(&b);

    cr_assert_eq(rh_future_reopen(f), 1);
    cr_expect_eq(atomic_load(&f->state), RH_FUTURE_PENDING);
    cr_expect_eq(rh_future_reopen(f), 0, "reopened twice");
    rh_future_complete(f, copy, REMOTE_LEN, 1);
    cr_expect_eq(atomic_load(&f->state), RH_FUTURE_READY);
    cr_expect_null(f->data);
    cr_expect_eq(f->len, REMOTE_LEN);
    cr_expect_eq(f->in_store, 0);
    rh_future_unhold(f);
    cr_expect_eq(atomic_load(&deleted), 1, "its copies go with it");
    cr_expect_eq(rh_future_live(), 0);
}

/* The size a getter may have read already is the one the rebuild must
 * give: another fails the object, saying why, and its copies go. */
Test(future, a_rebuild_of_another_size_fails_its_object)
{
    rh_fblock_t *b;
    rh_future_t *f = remote_return(&b);

    cr_assert_eq(rh_future_reopen(f), 1);
    rh_future_complete(f, NULL, REMOTE_LEN + 8, 0);
    cr_assert_eq(atomic_load(&f->state), RH_FUTURE_FAILED);
    cr_expect_eq(rh_future_status(f), RH_ERR_OBJECT_LOST);
    cr_expect_not_null(strstr(f->message, "4104 bytes"), "%s", f->message);
    cr_expect_not_null(strstr(f->message, "4096"), "%s", f->message);
    cr_expect_eq(f->len, REMOTE_LEN);
    cr_expect_eq(atomic_load(&deleted), 1);
    rh_future_unhold(f);
    cr_expect_eq(atomic_load(&deleted), 1, "deleted once");
    cr_expect_eq(rh_future_live(), 0);
}

#define REBUILDS 500

static _Atomic int rebuilding;
static _Atomic long views, bad_views;

/* What rh_get_mine does once the future is final: READY, then where the
 * bytes are (rh_future_remote: in_store and len) and their size. */
static void *getter(void *arg)
{
    rh_future_t *f = arg;

    while (atomic_load(&rebuilding)) {
        if (atomic_load(&f->state) == RH_FUTURE_PENDING) {
            continue;
        }
        if (f->in_store || f->len != REMOTE_LEN || f->data != NULL) {
            atomic_fetch_add(&bad_views, 1);
        }
        atomic_fetch_add(&views, 1);
    }
    return NULL;
}

/* Getters of one future race its rebuilds (reopened, then answered from
 * the runner's node or by value into this node's store): each sees the
 * first run's fields. Run under TSan, no getter races a rebuild. */
Test(future, getters_racing_rebuilds_see_the_first_runs_fields)
{
    static uint8_t copy[REMOTE_LEN];
    rh_fblock_t *b;
    rh_future_t *f = remote_return(&b);
    pthread_t t[2];

    atomic_store(&rebuilding, 1);
    for (int i = 0; i < 2; i++) {
        pthread_create(&t[i], NULL, getter, f);
    }
    for (int i = 0; i < REBUILDS; i++) {
        long seen = atomic_load(&views);

        cr_assert_eq(rh_future_reopen(f), 1);
        if (i % 2) {
            rh_future_complete(f, copy, REMOTE_LEN, 1);
        } else {
            rh_future_complete(f, NULL, REMOTE_LEN, 0);
        }
        while (atomic_load(&views) == seen) {
            sched_yield();   /* a getter reads this run's fields */
        }
    }
    atomic_store(&rebuilding, 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
    }
    cr_expect_eq(atomic_load(&bad_views), 0, "%ld of %ld views mixed two "
                 "runs", atomic_load(&bad_views), atomic_load(&views));
    rh_future_unhold(f);
    cr_expect_eq(rh_future_live(), 0);
}
