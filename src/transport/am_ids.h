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
    RH_AM_ID_OBJ_LOCATE   = 5,   /* core: where is this object? pin it */
    RH_AM_ID_OBJ_WHERE    = 6,   /* core: the answer (value, place, error) */
    RH_AM_ID_OBJ_UNPIN    = 7,   /* core: the pull is over, unpin */
    RH_AM_ID_OBJ_COPIED   = 8,   /* core: to the owner: a node has a copy */
    RH_AM_ID_OBJ_FREE     = 9,   /* core: from the owner: delete your copy */
    RH_AM_ID_SCHED_LOAD   = 10,  /* core: heartbeat to the global scheduler */
    RH_AM_ID_SCHED_PLACE  = 11,  /* core: where should this task run? */
    RH_AM_ID_SCHED_PLACED = 12,  /* core: the global scheduler's answer */
    RH_AM_ID_PG_CREATE    = 13,  /* core: place a group's bundles */
    RH_AM_ID_PG_RESERVE   = 14,  /* core: hold a bundle's resources here */
    RH_AM_ID_PG_STATE     = 15,  /* core: a group's placement to its owner */
    RH_AM_ID_PG_REMOVE    = 16,  /* core: free a group's bundles */
    RH_AM_ID_OBJ_BORROW   = 17,  /* core: to the owner: hold it for me, or
                                  * let it go */
    RH_AM_ID_ACTOR_CALL   = 18,  /* core: a call to an actor here */
    RH_AM_ID_ACTOR_CTL    = 19,  /* core: actors' control messages */

    RH_AM_ID_EXAMPLE      = 20,  /* examples/: 20..23 */
    RH_AM_ID_PERF_FIRST   = 24,  /* perf/: 24..31 */
    RH_AM_ID_RMA_READ     = 32,  /* transport: read this part of your region */
    RH_AM_ID_RMA_DATA     = 33,  /* transport: the bytes read, or an error */
    RH_AM_ID_TEST_FIRST   = 40,  /* tests/: 40..63 */

    /* 64..95: the core's later modules, a block of ids each. */
    RH_AM_ID_BATCH_FIRST  = 64,  /* core: coalesced messages, 64..67 */
    RH_AM_ID_GCS_FIRST    = 68,  /* gcs/: 68..75 */
    RH_AM_ID_FT_FIRST     = 76,  /* core: fault tolerance, 76..79 */
    RH_AM_ID_ACTOR_CKPT   = 76,  /* core: an actor's checkpoint to its
                                  * owner */
    RH_AM_ID_RX_PROBE     = 77,  /* transport: proof that this host's
                                  * messages still arrive, after a death */
    RH_AM_ID_OBS_GUEST    = 79,  /* observability: a process outside the
                                  * job asks for its state (jobgather.h) */
    RH_AM_ID_SPILL_FIRST  = 80,  /* plasma: spilling, 80..83 */
    RH_AM_ID_OBS_FIRST    = 84,  /* observability, 84..87 */
    RH_AM_ID_GPU_FIRST    = 88,  /* gpu/: 88..91 */

    RH_AM_ID_MAX          = 96
};

/* The core's ids stay below the ranges handed out to programs. */
_Static_assert(RH_AM_ID_ACTOR_CTL < RH_AM_ID_EXAMPLE,
               "core AM ids run into the examples' range");

#endif
