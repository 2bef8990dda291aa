/*
 * Reference for the figure local_tasks/starpu: StarPU's rate of empty CPU
 * tasks, measured in this process (StarPU is started and shut down inside
 * the call; no StarPU thread, signal handler, file or environment change
 * outlives it).
 */
#ifndef RH_PERF_REF_STARPU_H
#define RH_PERF_REF_STARPU_H

#include <stddef.h>

/*
 * Empty CPU tasks per second with `workers` CPU workers (no CUDA, OpenCL,
 * MIC or MPI workers): `ntasks` independent tasks submitted, then waited for
 * all; or, when chain != 0, a chain of `ntasks` tasks each depending on the
 * previous one. The best of a few trials (after an untimed warm-up) counts.
 *
 * Returns < 0 and writes a message to err (when errlen > 0) when StarPU
 * cannot start or cannot run the request: built without StarPU, more
 * workers than this StarPU build supports, starpu_init failing, ...
 *
 * Not thread-safe: it changes STARPU_* environment variables while it runs
 * (restored before it returns), so no other thread should call setenv or
 * start StarPU meanwhile.
 */
double rh_ref_starpu_tasks_per_sec(int workers, long ntasks, int chain,
                                   char *err, size_t errlen);

/* Most CPU workers the StarPU build supports (STARPU_MAXCPUS: 4 in Debian
 * 12's libstarpu-1.3), 0 when built without StarPU. */
int rh_ref_starpu_max_workers(void);

#endif
