/*
 * Borrowed refs (Ray's borrowers). A task submitted on this rank that takes
 * another rank's object by ref keeps that object alive at its owner for as
 * long as the task is not over here: the first such hold on an object sends
 * the owner OBJ_BORROW (+1), which then holds the object's future for this
 * rank; the last one going sends -1. So a task that hands a ref it was
 * given to a task of its own may end before that task runs: the object
 * outlives both the owner's release and the parent.
 *
 * The owner keeps a balance per object and borrower and holds the future
 * while it is positive: messages from different threads of a borrower may
 * arrive in any order and still end at the borrower's count. A borrower's
 * death drops what it held; an owner's death ends its objects anyway.
 */
#ifndef RH_CORE_BORROW_H
#define RH_CORE_BORROW_H

#include "plasma/object_id.h"
#include "rayhpc.h"

/* id is another rank's object: a task here holds it, or lets it go. */
void rh_borrow_hold(rh_object_id_t id);
void rh_borrow_drop(rh_object_id_t id);

/* Objects of ours that other ranks borrow now (tests, leak checks). */
long rh_borrow_lent(void);

rh_status_t rh_borrow_setup(void);
void rh_borrow_teardown(void);

#endif
