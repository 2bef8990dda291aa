#include "core/directory.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/hashmap.h"
#include "base/log.h"
#include "base/status.h"
#include "core/core.h"
#include "core/pull.h"
#include "plasma/store.h"
#include "transport/am.h"
#include "transport/transport.h"

/* The ranks holding copies of one object: a handful (one per node at
 * most), so a plain array. */
typedef struct rh_dir_copies {
    int  n, cap;
    int *ranks;
} rh_dir_copies_t;

typedef struct rh_dir_msg {
    uint64_t hi, lo;
} rh_dir_msg_t;

static pthread_mutex_t rh_dir_lock = PTHREAD_MUTEX_INITIALIZER;
/* object id -> its copies; grows with the objects that have copies */
static rh_hmap_t rh_dir_map = RH_HMAP_INITIALIZER(sizeof(rh_object_id_t),
                                                  sizeof(rh_dir_copies_t));
/* Copies in the table: the owner's frees skip the lock while it is 0. */
static _Atomic long rh_dir_count;

static rh_status_t rh_dir_add_locked(rh_object_id_t id, int rank)
{
    rh_dir_copies_t *c;
    int added;

    c = rh_hmap_put(&rh_dir_map, &id, &added);
    if (c == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "object directory");
    }
    for (int i = 0; i < c->n; i++) {
        if (c->ranks[i] == rank) {
            return RH_OK;
        }
    }
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 4;
        int *r = realloc(c->ranks, (size_t)cap * sizeof(*r));

        if (r == NULL) {
            if (added) {
                (void)rh_hmap_del(&rh_dir_map, &id, NULL);
            }
            return rh_error_set(RH_ERR_NO_MEMORY, "object directory");
        }
        c->ranks = r;
        c->cap = cap;
    }
    c->ranks[c->n++] = rank;
    atomic_fetch_add(&rh_dir_count, 1);
    return RH_OK;
}

rh_status_t rh_dir_add(rh_object_id_t id, int rank)
{
    rh_status_t status;

    pthread_mutex_lock(&rh_dir_lock);
    status = rh_dir_add_locked(id, rank);
    pthread_mutex_unlock(&rh_dir_lock);
    return status;
}

/* A live rank other than this one on the node of rank dead, whose store
 * keeps what dead wrote there: -1 when none. */
static int rh_dir_node_mate(int dead)
{
    int node = rh_core_node_of(dead);

    for (int r = 0; r < rh_size(); r++) {
        if (r != dead && r != rh_rank() && rh_core_node_of(r) == node &&
            rh_rank_alive(r)) {
            return r;
        }
    }
    return -1;
}

int rh_dir_sources(rh_object_id_t id, int *ranks, int max)
{
    int n = 0, dead = 0;
    int tail[16];
    const rh_dir_copies_t *c;

    pthread_mutex_lock(&rh_dir_lock);
    c = rh_hmap_get(&rh_dir_map, &id);
    for (int i = 0; c != NULL && i < c->n && n < max; i++) {
        if (rh_rank_alive(c->ranks[i])) {
            ranks[n++] = c->ranks[i];
        } else if (dead < 16) {
            tail[dead++] = c->ranks[i];
        }
    }
    pthread_mutex_unlock(&rh_dir_lock);
    /* A copy outlives its rank while another rank of its node lives. */
    for (int i = 0; i < dead && n < max; i++) {
        int mate = rh_dir_node_mate(tail[i]);
        int seen = mate < 0;

        for (int j = 0; j < n && !seen; j++) {
            seen = ranks[j] == mate;
        }
        if (!seen) {
            ranks[n++] = mate;
        }
    }
    for (int i = 0; i < dead && n < max; i++) {
        ranks[n++] = tail[i];
    }
    return n;
}

void rh_dir_forget(rh_object_id_t id)
{
    rh_dir_copies_t c;
    rh_dir_msg_t m = { id.hi, id.lo };
    int found;

    if (atomic_load(&rh_dir_count) == 0) {
        return;
    }
    pthread_mutex_lock(&rh_dir_lock);
    found = rh_hmap_del(&rh_dir_map, &id, &c);
    if (found) {
        atomic_fetch_sub(&rh_dir_count, c.n);
    }
    pthread_mutex_unlock(&rh_dir_lock);
    if (!found) {
        return;
    }
    for (int i = 0; i < c.n; i++) {
        if (rh_rank_alive(c.ranks[i]) && rh_core_initialized()) {
            (void)rh_am_send((uint32_t)c.ranks[i], RH_AM_ID_OBJ_FREE, &m,
                             sizeof(m), NULL, 0, NULL, NULL);
        }
    }
    free(c.ranks);
}

/* A node pulled a copy of an object of ours. */
static rh_status_t rh_dir_on_copied(void *arg, rh_am_msg_t *msg)
{
    rh_object_id_t id = rh_object_id_read(msg->hdr);
    rh_dir_msg_t m = { id.hi, id.lo };
    rh_future_t *f;
    int alive;

    (void)arg;
    if (rh_object_id_owner(id) != (uint32_t)rh_rank()) {
        return RH_ERR_MALFORMED;
    }
    /* Our hold keeps the last release from passing between the look and
     * the entry: when ours is the last, its end sees the entry and frees
     * the copy (after the lock, which that end takes). */
    f = rh_future_find_hold(id);
    pthread_mutex_lock(&rh_dir_lock);
    alive = f != NULL && rh_dir_add_locked(id, (int)msg->src) == RH_OK;
    pthread_mutex_unlock(&rh_dir_lock);
    if (f != NULL) {
        rh_future_unhold(f);
    }
    if (!alive) {
        (void)rh_am_send(msg->src, RH_AM_ID_OBJ_FREE, &m, sizeof(m), NULL, 0,
                         NULL, NULL);
    }
    return RH_OK;
}

/* The owner let an object go: drop this node's copy. */
static rh_status_t rh_dir_on_free(void *arg, rh_am_msg_t *msg)
{
    rh_object_id_t id = rh_object_id_read(msg->hdr);

    (void)arg;
    if (rh_object_id_owner(id) != msg->src) {
        return RH_ERR_MALFORMED;
    }
    if (rh_core_store() != NULL) {
        rh_pull_delete_copy(id, 1);
    }
    return RH_OK;
}

/* An owner died: its objects are lost (Ray's fate sharing: nobody can
 * count their references any more), so the copies on this node go now
 * rather than at the end of the job. Readers holding one keep it until they
 * let go. Each rank of the node scans; the first deletes. */
static void rh_dir_on_peer_failure(void *arg, int rank)
{
    size_t deleted = 0;
    uint64_t refs = 0;
    int procs = 0;
    pid_t pid;

    (void)arg;
    if (rh_core_store() == NULL) {
        return;
    }
    if (rh_store_delete_owned(rh_core_store(), (uint32_t)rank, &deleted) ==
        RH_OK && deleted != 0) {
        rh_debug("rank %d failed: %zu objects it owned left node %d's store",
                 rank, deleted, rh_node_id());
    }
    /* A rank of this node that died reading or writing objects: its
     * references go back, so those objects can be freed, and what it was
     * writing goes, now that it is declared dead rather than once its
     * process is reaped (a rerun of its task here may need the id). */
    pid = rh_tp_peer_pid(rank);
    if (pid > 0 && rh_core_node_of(rank) == rh_node_id()) {
        if (rh_store_reap_process(rh_core_store(), (int32_t)pid, &refs) !=
            RH_OK) {
            rh_debug("rank %d failed: %s", rank, rh_last_error());
        } else if (refs != 0) {
            rh_debug("rank %d failed: %llu references it held in node %d's "
                     "store were given back", rank, (unsigned long long)refs,
                     rh_node_id());
        }
        return;
    }
    if (rh_store_reap_holders(rh_core_store(), &procs, &refs) == RH_OK &&
        procs != 0) {
        rh_debug("rank %d failed: %llu references it held in node %d's "
                 "store were given back", rank, (unsigned long long)refs,
                 rh_node_id());
    }
}

rh_status_t rh_dir_setup(void)
{
    rh_status_t status;

    status = rh_am_register(RH_AM_ID_OBJ_COPIED, sizeof(rh_dir_msg_t),
                            sizeof(rh_dir_msg_t), rh_dir_on_copied, NULL);
    if (status == RH_OK) {
        status = rh_am_register(RH_AM_ID_OBJ_FREE, sizeof(rh_dir_msg_t),
                                sizeof(rh_dir_msg_t), rh_dir_on_free, NULL);
    }
    if (status == RH_OK) {
        status = rh_tp_on_peer_failure(rh_dir_on_peer_failure, NULL);
    }
    return status;
}

void rh_dir_teardown(void)
{
    rh_dir_copies_t c;

    pthread_mutex_lock(&rh_dir_lock);
    while (rh_hmap_pop(&rh_dir_map, NULL, &c)) {
        free(c.ranks);
    }
    rh_hmap_fini(&rh_dir_map);
    atomic_store(&rh_dir_count, 0);
    pthread_mutex_unlock(&rh_dir_lock);
}
