/*
 * The owner's object directory (Ray's ownership): for each object this rank
 * owns whose bytes live on other nodes, the ranks there that hold a copy in
 * their node's store. A task run on another node leaves its large returns
 * there (the first entry); each node that pulls a copy says so (COPIED).
 * When the owner lets the object go, every copy is deleted (FREE).
 *
 * A future whose value is on another node only is READY, not in_store, and
 * longer than RH_FUTURE_INLINE (rh_future_remote); the directory says where.
 */
#ifndef RH_CORE_DIRECTORY_H
#define RH_CORE_DIRECTORY_H

#include "core/future.h"
#include "plasma/object_id.h"
#include "rayhpc.h"

static inline int rh_future_remote(const rh_future_t *f)
{
    return !f->in_store && f->len > RH_FUTURE_INLINE;
}

/* A copy of id lives on rank's node. */
rh_status_t rh_dir_add(rh_object_id_t id, int rank);

/* Up to max ranks holding copies of id, live ones first; returns how many. */
int rh_dir_sources(rh_object_id_t id, int *ranks, int max);

/* The owner let id go: tells every rank holding a copy to delete it. */
void rh_dir_forget(rh_object_id_t id);

/* Handlers (before rh_init's exchange) and the end. */
rh_status_t rh_dir_setup(void);
void rh_dir_teardown(void);

#endif
