/* Two test messages for programs that kill a rank at a fixed point: DIE
 * (the receiver SIGKILLs itself) and GO (the receiver's rank_go becomes 1,
 * for a rank that waits for the victim's death to be seen). Programs that
 * use internals only. */
#ifndef RH_TESTS_KILL_SIGNAL_H
#define RH_TESTS_KILL_SIGNAL_H

#include <signal.h>
#include <stdatomic.h>

#include "transport/am.h"

#define DIE (RH_AM_ID_TEST_FIRST + 11)
#define GO  (RH_AM_ID_TEST_FIRST + 12)

static _Atomic long rank_go;

static rh_status_t rank_on_die(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    (void)msg;
    raise(SIGKILL);
    return RH_OK;
}

static rh_status_t rank_on_go(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    (void)msg;
    atomic_store(&rank_go, 1);
    return RH_OK;
}

/* After rh_init, before any rank sends either. */
static inline rh_status_t rank_kill_signals_register(void)
{
    rh_status_t status = rh_am_register(DIE, 0, 0, rank_on_die, NULL);

    return status != RH_OK ? status :
           rh_am_register(GO, 0, 0, rank_on_go, NULL);
}

#endif
