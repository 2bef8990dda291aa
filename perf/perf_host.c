/*
 * The host's own cost of handing a core from one process to another: two
 * child processes on one core take turns through a futex on a shared page.
 * Whenever a host has fewer cores than the runtime threads a round trip
 * needs (3 ranks on 2 cores for gcs_write, a worker woken on a busy core
 * for actor_rtt), each round trip holds at least one such switch, and the
 * switch's price differs between hosts far more than a UCX round trip does
 * (1-2 us on some virtual machines, 7-8 us on others). Figures print it
 * beside their ratio so that a reader can tell the host from the code.
 */
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "perf.h"

typedef struct {
    _Atomic uint32_t turn;
    double           us;
} switch_page_t;

/* One side: waits for its turn (even or odd), passes it on, n times. */
static void switch_side(switch_page_t *p, uint32_t me, long n, int cpu)
{
    cpu_set_t set;

    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    (void)sched_setaffinity(0, sizeof(set), &set);
    for (long i = 0; i < n; i++) {
        uint32_t t;

        while (((t = atomic_load(&p->turn)) & 1u) != me) {
            syscall(SYS_futex, &p->turn, FUTEX_WAIT, t, NULL, NULL, 0);
        }
        atomic_store(&p->turn, t + 1);
        syscall(SYS_futex, &p->turn, FUTEX_WAKE, 1, NULL, NULL, 0);
    }
}

double perf_switch_lat(long n)
{
    switch_page_t *p = mmap(NULL, sizeof(*p), PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int cpu = sched_getcpu();
    pid_t kids[2];
    double us = 0;

    if (p == MAP_FAILED) {
        return 0;
    }
    atomic_init(&p->turn, 0);
    /* The children only make system calls and leave with _exit: fork from
     * a threaded rank is safe so. */
    for (uint32_t k = 0; k < 2; k++) {
        kids[k] = k == 1 && kids[0] < 0 ? -1 : fork();
        if (kids[k] == 0) {
            double t0 = perf_now();

            switch_side(p, k, n, cpu < 0 ? 0 : cpu);
            if (k == 0) {
                p->us = (perf_now() - t0) * 1e6 / (double)(2 * n);
            }
            _exit(0);
        }
    }
    if (kids[0] > 0 && kids[1] < 0) {
        kill(kids[0], SIGKILL);   /* it would wait for a partner forever */
    }
    for (int k = 0; k < 2; k++) {
        if (kids[k] > 0) {
            (void)waitpid(kids[k], NULL, 0);
        }
    }
    if (kids[0] > 0 && kids[1] > 0) {
        us = p->us;
    }
    munmap(p, sizeof(*p));
    return us;
}
