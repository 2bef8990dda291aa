#include <criterion/criterion.h>
#include <stdint.h>

#include "core/actor_order.h"

typedef struct ran {
    uintptr_t items[64];
    int       n;
} ran_t;

static void note(void *arg, void *item)
{
    ran_t *r = arg;

    r->items[r->n++] = (uintptr_t)item;
}

static void *it(uintptr_t v)
{
    return (void *)(v * 16);   /* never RH_ORDER_SKIP */
}

Test(actor_order, calls_in_order_run_at_once)
{
    rh_order_t o;
    ran_t r = { { 0 }, 0 };

    rh_order_init(&o);
    for (uintptr_t s = 1; s <= 5; s++) {
        cr_assert_eq(rh_order_arrive(&o, s, it(s), note, &r), 0);
        cr_assert_eq(r.n, (int)s);
        cr_assert_eq(r.items[s - 1], (uintptr_t)it(s));
    }
    cr_expect_eq(rh_order_waiting(&o), 0);
    rh_order_fini(&o, NULL, NULL);
}

/* Calls arriving in reverse run in sequence order once the first comes. */
Test(actor_order, early_calls_wait_for_the_lower_numbers)
{
    rh_order_t o;
    ran_t r = { { 0 }, 0 };

    rh_order_init(&o);
    for (uintptr_t s = 10; s >= 2; s--) {
        cr_assert_eq(rh_order_arrive(&o, s, it(s), note, &r), 0);
    }
    cr_expect_eq(r.n, 0);
    cr_expect_eq(rh_order_waiting(&o), 9);
    cr_assert_eq(rh_order_arrive(&o, 1, it(1), note, &r), 0);
    cr_assert_eq(r.n, 10);
    for (int i = 0; i < 10; i++) {
        cr_expect_eq(r.items[i], (uintptr_t)it((uintptr_t)i + 1));
    }
    cr_expect_eq(rh_order_waiting(&o), 0);
    rh_order_fini(&o, NULL, NULL);
}

/* A number that will never come (its call failed at the caller) is
 * skipped; the calls behind it run. */
Test(actor_order, a_skipped_number_lets_the_later_calls_run)
{
    rh_order_t o;
    ran_t r = { { 0 }, 0 };

    rh_order_init(&o);
    cr_assert_eq(rh_order_arrive(&o, 1, it(1), note, &r), 0);
    cr_assert_eq(rh_order_arrive(&o, 3, it(3), note, &r), 0);
    cr_assert_eq(rh_order_arrive(&o, 4, RH_ORDER_SKIP, note, &r), 0);
    cr_assert_eq(rh_order_arrive(&o, 5, it(5), note, &r), 0);
    cr_expect_eq(r.n, 1);
    cr_assert_eq(rh_order_arrive(&o, 2, RH_ORDER_SKIP, note, &r), 0);
    cr_assert_eq(r.n, 3);
    cr_expect_eq(r.items[1], (uintptr_t)it(3));
    cr_expect_eq(r.items[2], (uintptr_t)it(5));
    rh_order_fini(&o, NULL, NULL);
}

/* A number used twice is refused and runs nothing, early or not. */
Test(actor_order, a_repeated_number_is_refused)
{
    rh_order_t o;
    ran_t r = { { 0 }, 0 };

    rh_order_init(&o);
    cr_assert_eq(rh_order_arrive(&o, 1, it(1), note, &r), 0);
    cr_expect_eq(rh_order_arrive(&o, 1, it(7), note, &r), -1);
    cr_assert_eq(rh_order_arrive(&o, 3, it(3), note, &r), 0);
    cr_expect_eq(rh_order_arrive(&o, 3, it(8), note, &r), -1);
    cr_expect_eq(r.n, 1);
    cr_expect_eq(rh_order_waiting(&o), 1);
    rh_order_fini(&o, NULL, NULL);
}

/* At the end the calls still waiting are handed back, skips are not. */
Test(actor_order, fini_hands_back_what_waits)
{
    rh_order_t o;
    ran_t r = { { 0 }, 0 }, dropped = { { 0 }, 0 };

    rh_order_init(&o);
    cr_assert_eq(rh_order_arrive(&o, 2, it(2), note, &r), 0);
    cr_assert_eq(rh_order_arrive(&o, 3, RH_ORDER_SKIP, note, &r), 0);
    cr_assert_eq(rh_order_arrive(&o, 9, it(9), note, &r), 0);
    rh_order_fini(&o, note, &dropped);
    cr_expect_eq(r.n, 0);
    cr_expect_eq(dropped.n, 2);
}

/* A restarted actor's caller says where its numbers start (next 0: not
 * known yet): calls that came first wait for it, then run from there. */
Test(actor_order, calls_to_a_restarted_actor_wait_for_their_start)
{
    rh_order_t o;
    ran_t r = { { 0 }, 0 };

    rh_order_init(&o);
    o.next = 0;
    cr_assert_eq(rh_order_arrive(&o, 42, it(42), note, &r), 0);
    cr_assert_eq(rh_order_arrive(&o, 41, it(41), note, &r), 0);
    cr_assert_eq(rh_order_arrive(&o, 44, it(44), note, &r), 0);
    cr_expect_eq(r.n, 0);
    rh_order_start(&o, 41, note, &r);
    cr_assert_eq(r.n, 2);
    cr_expect_eq(r.items[0], (uintptr_t)it(41));
    cr_expect_eq(r.items[1], (uintptr_t)it(42));
    cr_expect_eq(o.next, 43);
    cr_assert_eq(rh_order_arrive(&o, 43, it(43), note, &r), 0);
    cr_expect_eq(r.n, 4);
    cr_expect_eq(r.items[3], (uintptr_t)it(44));
    rh_order_fini(&o, NULL, NULL);
}

/* A checkpoint put next past the numbers it covers: a start below it
 * changes nothing, and a number it covers comes back as a repeat. */
Test(actor_order, start_below_a_restored_next_changes_nothing)
{
    rh_order_t o;
    ran_t r = { { 0 }, 0 };

    rh_order_init(&o);
    o.next = 501;
    rh_order_start(&o, 401, note, &r);
    cr_expect_eq(o.next, 501);
    cr_expect_eq(rh_order_arrive(&o, 450, it(450), note, &r), -1);
    cr_expect_eq(r.n, 0);
    cr_assert_eq(rh_order_arrive(&o, 501, it(501), note, &r), 0);
    cr_expect_eq(r.n, 1);
    rh_order_fini(&o, NULL, NULL);
}
