#include <criterion/criterion.h>
#include <string.h>

#include "base/status.h"
#include "rayhpc.h"

Test(status, every_code_has_its_own_name)
{
    for (int a = RH_OK; a >= RH_ERR_OWNER_DIED; a--) {
        const char *sa = rh_status_string((rh_status_t)a);

        cr_expect_str_neq(sa, "unknown status", "code %d has no name", a);
        for (int b = a - 1; b >= RH_ERR_OWNER_DIED; b--) {
            cr_expect_str_neq(sa, rh_status_string((rh_status_t)b),
                              "codes %d and %d share a name", a, b);
        }
    }
}

Test(status, out_of_range_codes_are_named_unknown)
{
    cr_expect_str_eq(rh_status_string((rh_status_t)5), "unknown status");
    cr_expect_str_eq(rh_status_string((rh_status_t)-1000), "unknown status");
}

Test(status, ok_is_zero_and_errors_negative)
{
    cr_expect_eq(RH_OK, 0);
    cr_expect_lt(RH_ERR_PEER_FAILED, 0);
    cr_expect_str_eq(rh_status_string(RH_ERR_PEER_FAILED), "peer rank failed");
}

Test(status, last_error_keeps_the_message)
{
    rh_error_clear();
    cr_expect_str_empty(rh_last_error());
    cr_expect_eq(rh_error_set(RH_ERR_TOO_LARGE, "object of %d bytes", 42),
                 RH_ERR_TOO_LARGE);
    cr_expect_str_eq(rh_last_error(), "object of 42 bytes");
}

Test(status, calls_before_init_fail_cleanly)
{
    cr_expect_eq(rh_finalize(), RH_ERR_NOT_INITIALIZED);
    cr_expect(strstr(rh_last_error(), "rh_init") != NULL);
    cr_expect_eq(rh_rank(), -1);
    cr_expect_eq(rh_rank_alive(0), 0);
}

/* Callers add context to an error they got: the message they pass in is the
 * buffer being written, and must come out whole. */
Test(status, a_message_may_quote_the_last_error)
{
    rh_error_set(RH_ERR_INVALID_PARAM, "bad amount in resource 'lic=-1'");
    rh_error_set(RH_ERR_INVALID_PARAM, "task probe: %s", rh_last_error());
    cr_expect_str_eq(rh_last_error(),
                     "task probe: bad amount in resource 'lic=-1'");
    rh_error_set(RH_ERR_INVALID_PARAM, "%s (and more)", rh_last_error());
    cr_expect_str_eq(rh_last_error(),
                     "task probe: bad amount in resource 'lic=-1' (and more)");
}
