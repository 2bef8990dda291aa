/*
 * The bound on a rank's tasks out on other ranks: sent to run elsewhere and
 * not answered yet, or spilled and waiting for the global scheduler's word
 * (RAYHPC_REMOTE_TASKS_MAX). A submitter past it waits (a worker runs other
 * tasks meanwhile) or, non-blocking, gets RH_ERR_BUSY; nothing accepted is
 * ever dropped because of it. Since every rank's spills are bounded, so is
 * the global scheduler's waiting list: ranks x the bound at most.
 */
#ifndef RH_CORE_ADMIT_H
#define RH_CORE_ADMIT_H

#include "rayhpc.h"

/* Takes one place for task `name`: waits for room (none to wait for on
 * the progress thread, which must not block: it takes the place anyway),
 * or with nonblock fails with RH_ERR_BUSY and a message. Also waits for
 * room in the send queue (rh_am_wait_room). No lock may be held. */
rh_status_t rh_admit_take(int nonblock, const char *name);

/* Gives a place back (the task was answered, failed, or runs here). */
void rh_admit_release(void);

/* Places taken now. */
long rh_admit_out(void);

#endif
