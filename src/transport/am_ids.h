/*
 * Every active-message id in one place, so that modules cannot collide.
 * Ids are ours (one UCX AM id carries them all) and must stay below
 * RH_AM_ID_MAX.
 */
#ifndef RH_TRANSPORT_AM_IDS_H
#define RH_TRANSPORT_AM_IDS_H

enum rh_am_id {
    RH_AM_ID_INVALID      = 0,
    RH_AM_ID_FINALIZE     = 1,   /* core: a rank reached rh_finalize */
    RH_AM_ID_FINALIZE_GO  = 2,   /* core: rank 0 lets every rank tear down */
    RH_AM_ID_TASK_SUBMIT  = 3,   /* core: a task forwarded to run here */
    RH_AM_ID_TASK_DONE    = 4,   /* core: the returns of a forwarded task */

    RH_AM_ID_EXAMPLE      = 16,  /* examples/ */
    RH_AM_ID_PERF_FIRST   = 24,  /* perf/: 24..31 */
    RH_AM_ID_TEST_FIRST   = 40,  /* tests/: 40..63 */

    RH_AM_ID_MAX          = 64
};

#endif
