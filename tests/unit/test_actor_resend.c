#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/actor_resend.h"
#include "core/registry.h"

/* A caller's kept calls, without a runtime: no place is known (rank -1),
 * so nothing is sent; what stays kept is what a restarted instance would
 * get again. */

static rh_fn_entry_t fn = { .name = "C.inc" };

static rh_task_t *call(uint64_t seq)
{
    rh_task_t *t = calloc(1, sizeof(*t));

    cr_assert_not_null(t);
    t->fn = &fn;
    t->is_call = 1;
    t->call_seq = seq;
    t->nreturns = 1;
    return t;
}

/* Numbers 1..n routed and sent with counters 100 + seq. */
static void send_calls(rh_resend_t *r, int n)
{
    for (int i = 1; i <= n; i++) {
        rh_task_t *t = call((uint64_t)i);
        char payload[8] = "args";

        rh_resend_route(r, t);
        cr_assert_not_null(t->call_kept);
        cr_assert_eq(rh_actor_call_keep(t, 100 + (uint64_t)i, payload,
                                        sizeof(payload)), 1);
        cr_expect_null(t->call_kept);
        free(t);
    }
}

static rh_resend_t fresh(int retries, int until_covered)
{
    rh_resend_t r;
    rh_actor_t a = { 1, 7 };

    rh_resend_init(&r, a);
    if (retries != 0) {
        rh_resend_setup(&r, retries, until_covered);
    }
    return r;
}

Test(actor_resend, nothing_is_kept_without_max_task_retries)
{
    rh_resend_t r = fresh(0, 0);
    rh_task_t *t = call(1);

    rh_resend_route(&r, t);
    cr_expect_null(t->call_kept);
    cr_expect_eq(rh_resend_kept(&r), 0);
    free(t);
}

/* Answered calls go from the oldest on only: a later one answered first
 * stays while an older one is not, so a new instance sees every number
 * from the first it must run. */
Test(actor_resend, answered_calls_go_in_their_order)
{
    rh_resend_t r = fresh(2, 0);

    send_calls(&r, 3);
    cr_expect_eq(rh_resend_kept(&r), 3);
    rh_actor_call_answered(102);
    cr_expect_eq(rh_resend_kept(&r), 3);
    rh_actor_call_answered(101);
    cr_expect_eq(rh_resend_kept(&r), 1);
    rh_actor_call_answered(103);
    cr_expect_eq(rh_resend_kept(&r), 0);
    rh_resend_clear(&r);
}

/* With checkpoints, answered calls stay until one covers them. */
Test(actor_resend, with_checkpoints_answered_calls_wait_to_be_covered)
{
    rh_resend_t r = fresh(-1, 1);

    send_calls(&r, 4);
    for (uint64_t c = 101; c <= 104; c++) {
        rh_actor_call_answered(c);
    }
    cr_expect_eq(rh_resend_kept(&r), 4);
    rh_resend_covered(&r, 2);
    cr_expect_eq(rh_resend_kept(&r), 2);
    rh_resend_covered(&r, 1);   /* an older checkpoint's news */
    cr_expect_eq(rh_resend_kept(&r), 2);
    rh_resend_covered(&r, 4);
    cr_expect_eq(rh_resend_kept(&r), 0);
    rh_resend_clear(&r);
}

/* A call lost with its rank waits for the new place (kept, taken over);
 * the actor's end fails it, and frees what was kept. */
Test(actor_resend, lost_calls_wait_for_the_new_place_or_the_end)
{
    rh_resend_t r = fresh(-1, 0);
    rh_inflight_t e;

    send_calls(&r, 2);
    memset(&e, 0, sizeof(e));
    e.counter = 101;
    e.is_call = 1;
    e.kept = 1;
    e.name = fn.name;
    cr_expect_eq(rh_actor_call_lost(101, 3, &e), 1);
    cr_expect_eq(rh_actor_call_lost(101, 3, &e), 0);   /* lost already */
    cr_expect_eq(rh_actor_call_lost(999, 3, &e), 0);   /* not kept */
    cr_expect_eq(rh_resend_kept(&r), 2);
    rh_resend_dead(&r, "the actor died");
    cr_expect_eq(rh_resend_kept(&r), 0);
    cr_expect_eq(rh_actor_call_lost(102, 3, &e), 0);   /* fails as before */
}

/* A call numbered but not sent when its actor died is not kept when it
 * is sent (it fails as any call); a call whose argument failed is
 * skipped. */
Test(actor_resend, calls_not_sent_yet_follow_the_actor)
{
    rh_resend_t r = fresh(1, 0);
    rh_task_t *t = call(1), *u = call(2);
    char payload[4] = "abc";

    rh_resend_route(&r, t);
    rh_resend_route(&r, u);
    cr_expect_eq(rh_actor_call_skipped(u), 0);   /* same instance */
    cr_expect_eq(rh_resend_kept(&r), 2);         /* behind number 1 */
    rh_resend_dead(&r, "dead");
    cr_expect_eq(rh_resend_kept(&r), 0);
    cr_expect_eq(rh_actor_call_keep(t, 201, payload, sizeof(payload)), 0);
    free(t);
    free(u);
}
