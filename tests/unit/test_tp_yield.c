/* How often a thread polling an idle network yields its core: on every
 * idle round where this host's ranks outnumber its cores, every 16th
 * otherwise. Each test runs in a process of its own, so the CPU masks
 * set here stay there. */
#include <criterion/criterion.h>
#include <sched.h>
#include <unistd.h>

#include "base/config.h"
#include "transport/transport.h"

/* Ranks 0 and 1 of a job, both endpoints this process's worker; rank 1 on
 * this host or not. */
static void start_two(int same_host)
{
    rh_config_t cfg;
    rh_tp_peer_info_t peers[2];
    const void *addr;
    size_t len;

    rh_config_defaults(&cfg);
    cfg.peer_check_ms = 3600 * 1000;
    cr_assert_eq(rh_tp_open(&cfg), RH_OK);
    rh_tp_local_address(&addr, &len);
    for (int r = 0; r < 2; r++) {
        peers[r].ucx_addr = addr;
        peers[r].ucx_addr_len = len;
        peers[r].pid = getpid();
        peers[r].same_host = r == 0 || same_host;
    }
    cr_assert_eq(rh_tp_start(0, 2, peers), RH_OK);
}

static int yields_of_16(void)
{
    int n = 0;

    for (uint64_t idle = 1; idle <= 16; idle++) {
        n += rh_tp_idle_yield(idle);
    }
    return n;
}

/* Keeps the first n CPUs of this process's mask; 0 when it has fewer. */
static int keep_cpus(int n)
{
    cpu_set_t set, keep;
    int kept = 0;

    cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
    CPU_ZERO(&keep);
    for (int c = 0; c < CPU_SETSIZE && kept < n; c++) {
        if (CPU_ISSET(c, &set)) {
            CPU_SET(c, &keep);
            kept++;
        }
    }
    if (kept < n) {
        return 0;
    }
    cr_assert_eq(sched_setaffinity(0, sizeof(keep), &keep), 0);
    return 1;
}

Test(tp_yield, two_ranks_of_one_host_on_one_cpu_yield_on_every_idle_round)
{
    cr_assert(keep_cpus(1));
    start_two(1);
    cr_assert_eq(yields_of_16(), 16);
    rh_tp_close_endpoints();
    rh_tp_close();
}

Test(tp_yield, two_ranks_of_one_host_on_two_cpus_yield_every_16th_round)
{
    if (!keep_cpus(2)) {
        cr_skip("fewer than 2 CPUs");
    }
    start_two(1);
    cr_assert_eq(yields_of_16(), 1);
    cr_assert(rh_tp_idle_yield(16));
    cr_assert(!rh_tp_idle_yield(15));
    rh_tp_close_endpoints();
    rh_tp_close();
}

Test(tp_yield, one_rank_of_a_host_on_one_cpu_yields_every_16th_round)
{
    cr_assert(keep_cpus(1));
    start_two(0);
    cr_assert_eq(yields_of_16(), 1);
    rh_tp_close_endpoints();
    rh_tp_close();
}
