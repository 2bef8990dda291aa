/* The receive watch's verdict: when a rank probes, when it is deaf, when
 * it stops watching. */
#include <criterion/criterion.h>

#include "transport/rxwatch.h"

#define S 1000u   /* the stall timeout, in the tests' time unit */

Test(rxwatch, a_rank_that_hears_a_probe_after_the_death_is_not_deaf)
{
    cr_expect_eq(rh_rxw_verdict(100, 150, 100 + S, S, 1), RH_RXW_PROBE);
    cr_expect_eq(rh_rxw_verdict(100, 150 + S, 100 + 2 * S, S, 1),
                 RH_RXW_PROBE);
}

Test(rxwatch, a_rank_that_hears_nothing_for_the_timeout_is_deaf)
{
    cr_expect_eq(rh_rxw_verdict(100, 0, 100 + S, S, 1), RH_RXW_PROBE);
    cr_expect_eq(rh_rxw_verdict(100, 0, 101 + S, S, 1), RH_RXW_DEAF);
    /* a probe heard before the death proves nothing about after it */
    cr_expect_eq(rh_rxw_verdict(100, 90, 101 + S, S, 1), RH_RXW_DEAF);
    /* heard, then nothing for the timeout within the window */
    cr_expect_eq(rh_rxw_verdict(100, 200, 201 + S, S, 1), RH_RXW_DEAF);
}

Test(rxwatch, nobody_left_on_the_host_means_nobody_to_hear)
{
    cr_expect_eq(rh_rxw_verdict(100, 0, 101 + S, S, 0), RH_RXW_PROBE);
}

Test(rxwatch, the_watch_judges_for_two_timeouts_and_probes_for_three)
{
    /* past two timeouts: no verdict (the others may have stopped), but
     * still probes for those that learned of the death later */
    cr_expect_eq(rh_rxw_verdict(100, 0, 101 + 2 * S, S, 1), RH_RXW_PROBE);
    cr_expect_eq(rh_rxw_verdict(100, 0, 100 + 3 * S, S, 1), RH_RXW_OFF);
}
