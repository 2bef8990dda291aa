#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "base/log.h"

Test(config, every_default_parses_and_prints_back)
{
    rh_config_t cfg;
    char buf[160];

    rh_config_defaults(&cfg);
    for (const rh_config_field_t *f = rh_config_table; f->name; f++) {
        rh_config_t again;

        rh_config_format(&cfg, f, buf, sizeof(buf));
        rh_config_defaults(&again);
        cr_expect_eq(rh_config_set(&again, f->name, buf), RH_OK,
                     "%s: printed value '%s' does not parse back", f->name,
                     buf);
        cr_expect_not_null(f->doc);
        cr_expect_gt(strlen(f->doc), 10, "%s needs a real doc line", f->name);
    }
}

Test(config, defaults_have_the_documented_values)
{
    rh_config_t cfg;

    rh_config_defaults(&cfg);
    cr_expect_eq(cfg.log_level, RH_LOG_WARN);
    cr_expect_eq(cfg.bootstrap, RH_BOOTSTRAP_AUTO);
    cr_expect_eq(cfg.progress, RH_PROGRESS_ADAPTIVE);
    cr_expect_eq(cfg.rndv_thresh, 64u * 1024);
    cr_expect_eq(cfg.keepalive_ms, 1000);
    cr_expect_str_empty(cfg.node_id);
}

Test(config, sizes_take_binary_suffixes)
{
    rh_config_t cfg;

    rh_config_defaults(&cfg);
    cr_assert_eq(rh_config_set(&cfg, "RNDV_THRESH", "8k"), RH_OK);
    cr_expect_eq(cfg.rndv_thresh, 8192);
    cr_assert_eq(rh_config_set(&cfg, "RNDV_THRESH", "2M"), RH_OK);
    cr_expect_eq(cfg.rndv_thresh, 2u << 20);
    cr_assert_eq(rh_config_set(&cfg, "RNDV_THRESH", "1G"), RH_OK);
    cr_expect_eq(cfg.rndv_thresh, 1u << 30);
    cr_assert_eq(rh_config_set(&cfg, "RNDV_THRESH", "100"), RH_OK);
    cr_expect_eq(cfg.rndv_thresh, 100);
}

Test(config, durations_take_ms_s_and_m)
{
    rh_config_t cfg;

    rh_config_defaults(&cfg);
    cr_assert_eq(rh_config_set(&cfg, "KEEPALIVE", "250ms"), RH_OK);
    cr_expect_eq(cfg.keepalive_ms, 250);
    cr_assert_eq(rh_config_set(&cfg, "KEEPALIVE", "3s"), RH_OK);
    cr_expect_eq(cfg.keepalive_ms, 3000);
    cr_assert_eq(rh_config_set(&cfg, "FINALIZE_TIMEOUT", "2m"), RH_OK);
    cr_expect_eq(cfg.finalize_timeout_ms, 120000);
}

Test(config, enums_are_case_insensitive)
{
    rh_config_t cfg;

    rh_config_defaults(&cfg);
    cr_assert_eq(rh_config_set(&cfg, "PROGRESS", "Polling"), RH_OK);
    cr_expect_eq(cfg.progress, RH_PROGRESS_POLLING);
    cr_assert_eq(rh_config_set(&cfg, "log_level", "DEBUG"), RH_OK);
    cr_expect_eq(cfg.log_level, RH_LOG_DEBUG);
}

Test(config, bad_values_are_refused_with_a_message)
{
    rh_config_t cfg;

    rh_config_defaults(&cfg);
    cr_expect_eq(rh_config_set(&cfg, "PROGRESS", "fast"), RH_ERR_CONFIG);
    cr_expect(strstr(rh_last_error(), "RAYHPC_PROGRESS") != NULL);
    cr_expect(strstr(rh_last_error(), "polling adaptive blocking") != NULL);
    cr_expect_eq(rh_config_set(&cfg, "RNDV_THRESH", "12 parsecs"),
                 RH_ERR_CONFIG);
    cr_expect_eq(rh_config_set(&cfg, "RNDV_THRESH", "-5"), RH_ERR_CONFIG);
    cr_expect_eq(rh_config_set(&cfg, "RNDV_THRESH", "99999999999999999999"),
                 RH_ERR_CONFIG);
    cr_expect_eq(rh_config_set(&cfg, "RNDV_THRESH", "20000000T"),
                 RH_ERR_CONFIG, "overflow must be refused");
    cr_expect_eq(rh_config_set(&cfg, "KEEPALIVE", "0"), RH_ERR_CONFIG,
                 "below the minimum");
    cr_expect_eq(rh_config_set(&cfg, "PEER_CHECK", ""), RH_ERR_CONFIG);
    cr_expect_eq(rh_config_set(&cfg, "NO_SUCH", "1"), RH_ERR_CONFIG);
    /* A ring's bytes are a power of two (the transport refused it with
     * RH_ERR_INVALID_PARAM, and only where rings were made). */
    cr_expect_eq(rh_config_set(&cfg, "SHM_RING_BYTES", "5000"),
                 RH_ERR_CONFIG);
    cr_expect(strstr(rh_last_error(), "power of two") != NULL);
    cr_expect_eq(rh_config_set(&cfg, "SHM_RING_BYTES", "64K"), RH_OK);
    /* A refused value leaves the old one in place. */
    cr_expect_eq(cfg.progress, RH_PROGRESS_ADAPTIVE);
}

Test(config, long_node_id_is_refused)
{
    rh_config_t cfg;
    char big[300];

    memset(big, 'n', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    rh_config_defaults(&cfg);
    cr_expect_eq(rh_config_set(&cfg, "NODE_ID", big), RH_ERR_CONFIG);
    cr_expect_eq(rh_config_set(&cfg, "NODE_ID", "vnode3"), RH_OK);
    cr_expect_str_eq(cfg.node_id, "vnode3");
}

Test(config, environment_overrides_defaults)
{
    rh_config_t cfg;

    setenv("RAYHPC_PROGRESS", "blocking", 1);
    setenv("RAYHPC_NODE_ID", "vnode7", 1);
    rh_config_defaults(&cfg);
    cr_assert_eq(rh_config_load_env(&cfg), RH_OK);
    cr_expect_eq(cfg.progress, RH_PROGRESS_BLOCKING);
    cr_expect_str_eq(cfg.node_id, "vnode7");
    setenv("RAYHPC_PROGRESS", "sideways", 1);
    cr_expect_eq(rh_config_load_env(&cfg), RH_ERR_CONFIG);
    unsetenv("RAYHPC_PROGRESS");
    unsetenv("RAYHPC_NODE_ID");
}

Test(config, misspellings_find_the_closest_setting)
{
    cr_expect_str_eq(rh_config_closest("LOG_LEVLE"), "LOG_LEVEL");
    cr_expect_str_eq(rh_config_closest("PROGRES"), "PROGRESS");
    cr_expect_str_eq(rh_config_closest("BOOTSTRAPP"), "BOOTSTRAP");
    cr_expect_str_eq(rh_config_closest("node_di"), "NODE_ID");
    cr_expect_null(rh_config_closest("COMPLETELY_DIFFERENT_THING"));
    cr_expect_null(rh_config_closest("X"));
}

Test(config, unknown_variables_are_counted_and_launcher_ones_are_not)
{
    int base = rh_config_warn_unknown_env();

    setenv("RAYHPC_LOG_LEVLE", "debug", 1);
    setenv("RAYHPC_LOCAL_RANK", "0", 1);
    cr_expect_eq(rh_config_warn_unknown_env(), base + 1);
    unsetenv("RAYHPC_LOG_LEVLE");
    unsetenv("RAYHPC_LOCAL_RANK");
}

Test(config, job_wide_settings_are_listed_and_compared)
{
    rh_config_t a, b;
    char ta[512], tb[512], name[64], va[160], vb[160];
    size_t full;

    rh_config_defaults(&a);
    rh_config_defaults(&b);
    full = rh_config_job_wide(&a, ta, sizeof(ta));
    cr_assert_lt(full, sizeof(ta));
    cr_expect_eq(full, strlen(ta));
    cr_expect_not_null(strstr(ta, "SHM_RING=1\n"), "%s", ta);
    cr_expect_not_null(strstr(ta, "GCS_REPLICAS=3\n"), "%s", ta);
    cr_expect_null(strstr(ta, "STORE_SIZE"), "a node's own setting: %s", ta);
    rh_config_job_wide(&b, tb, sizeof(tb));
    cr_expect_eq(rh_config_job_wide_diff(ta, tb, name, sizeof(name), va, vb,
                                         sizeof(va)), 0);
    /* A rank's own settings may differ. */
    cr_assert_eq(rh_config_set(&b, "STORE_SIZE", "64M"), RH_OK);
    rh_config_job_wide(&b, tb, sizeof(tb));
    cr_expect_eq(rh_config_job_wide_diff(ta, tb, name, sizeof(name), va, vb,
                                         sizeof(va)), 0);
    cr_assert_eq(rh_config_set(&b, "SHM_RING_BYTES", "64K"), RH_OK);
    rh_config_job_wide(&b, tb, sizeof(tb));
    cr_assert_eq(rh_config_job_wide_diff(ta, tb, name, sizeof(name), va, vb,
                                         sizeof(va)), 1);
    cr_expect_str_eq(name, "RAYHPC_SHM_RING_BYTES");
    cr_expect_str_eq(va, "256K");
    cr_expect_str_eq(vb, "64K");
    /* A text lacking a setting (another build) differs too. */
    cr_assert_eq(rh_config_job_wide_diff(ta, "", name, sizeof(name), va, vb,
                                         sizeof(va)), 1);
    cr_expect_str_eq(vb, "unset");
    /* The size asked for when the buffer is short. */
    cr_expect_eq(rh_config_job_wide(&a, tb, 4), full);
    cr_expect_eq(strlen(tb), 3);
}
