#include "core/directory.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/status.h"
#include "core/core.h"
#include "plasma/store.h"
#include "transport/am.h"
#include "transport/transport.h"

#define RH_DIR_BUCKETS 1024

typedef struct rh_dir_entry rh_dir_entry_t;
struct rh_dir_entry {
    rh_dir_entry_t *next;
    rh_object_id_t  id;
    int             rank;
};

typedef struct rh_dir_msg {
    uint64_t hi, lo;
} rh_dir_msg_t;

static pthread_mutex_t rh_dir_lock = PTHREAD_MUTEX_INITIALIZER;
static rh_dir_entry_t *rh_dir_table[RH_DIR_BUCKETS];
/* Entries in the table: the owner's frees skip the lock while it is 0. */
static _Atomic long rh_dir_count;

static inline unsigned rh_dir_bucket(rh_object_id_t id)
{
    uint64_t h = (id.hi ^ id.lo) * 0x9e3779b97f4a7c15ull;

    return (unsigned)(h >> 54) & (RH_DIR_BUCKETS - 1);
}

static rh_status_t rh_dir_add_locked(rh_object_id_t id, int rank)
{
    unsigned b = rh_dir_bucket(id);
    rh_dir_entry_t *e;

    for (e = rh_dir_table[b]; e != NULL; e = e->next) {
        if (rh_object_id_equal(e->id, id) && e->rank == rank) {
            return RH_OK;
        }
    }
    e = malloc(sizeof(*e));
    if (e == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "object directory");
    }
    e->id = id;
    e->rank = rank;
    e->next = rh_dir_table[b];
    rh_dir_table[b] = e;
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

int rh_dir_sources(rh_object_id_t id, int *ranks, int max)
{
    int n = 0, dead = 0;
    int tail[16];

    pthread_mutex_lock(&rh_dir_lock);
    for (rh_dir_entry_t *e = rh_dir_table[rh_dir_bucket(id)];
         e != NULL && n < max; e = e->next) {
        if (!rh_object_id_equal(e->id, id)) {
            continue;
        }
        if (rh_rank_alive(e->rank)) {
            ranks[n++] = e->rank;
        } else if (dead < 16) {
            tail[dead++] = e->rank;
        }
    }
    pthread_mutex_unlock(&rh_dir_lock);
    for (int i = 0; i < dead && n < max; i++) {
        ranks[n++] = tail[i];
    }
    return n;
}

void rh_dir_forget(rh_object_id_t id)
{
    rh_dir_entry_t **pp, *gone = NULL;
    rh_dir_msg_t m = { id.hi, id.lo };

    if (atomic_load(&rh_dir_count) == 0) {
        return;
    }
    pthread_mutex_lock(&rh_dir_lock);
    pp = &rh_dir_table[rh_dir_bucket(id)];
    while (*pp != NULL) {
        rh_dir_entry_t *e = *pp;

        if (rh_object_id_equal(e->id, id)) {
            *pp = e->next;
            e->next = gone;
            gone = e;
            atomic_fetch_sub(&rh_dir_count, 1);
        } else {
            pp = &e->next;
        }
    }
    pthread_mutex_unlock(&rh_dir_lock);
    while (gone != NULL) {
        rh_dir_entry_t *next = gone->next;

        if (rh_rank_alive(gone->rank) && rh_core_initialized()) {
            (void)rh_am_send((uint32_t)gone->rank, RH_AM_ID_OBJ_FREE, &m,
                             sizeof(m), NULL, 0, NULL, NULL);
        }
        free(gone);
        gone = next;
    }
}

/* A node pulled a copy of an object of ours. */
static rh_status_t rh_dir_on_copied(void *arg, rh_am_msg_t *msg)
{
    rh_object_id_t id = rh_object_id_read(msg->hdr);
    rh_dir_msg_t m = { id.hi, id.lo };
    int alive;

    (void)arg;
    if (rh_object_id_owner(id) != (uint32_t)rh_rank()) {
        return RH_ERR_MALFORMED;
    }
    /* Under the lock, so that a concurrent last release either sees the
     * entry (and frees the copy) or happened before we looked. */
    pthread_mutex_lock(&rh_dir_lock);
    alive = rh_future_find(id) != NULL &&
            rh_dir_add_locked(id, (int)msg->src) == RH_OK;
    pthread_mutex_unlock(&rh_dir_lock);
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
        (void)rh_store_delete(rh_core_store(), id);
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

    (void)arg;
    if (rh_core_store() == NULL) {
        return;
    }
    if (rh_store_delete_owned(rh_core_store(), (uint32_t)rank, &deleted) ==
        RH_OK && deleted != 0) {
        rh_debug("rank %d failed: %zu objects it owned left node %d's store",
                 rank, deleted, rh_node_id());
    }
    /* a rank of this node that died reading objects: its references go
     * back, so those objects can be freed */
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
    pthread_mutex_lock(&rh_dir_lock);
    for (unsigned b = 0; b < RH_DIR_BUCKETS; b++) {
        while (rh_dir_table[b] != NULL) {
            rh_dir_entry_t *e = rh_dir_table[b];

            rh_dir_table[b] = e->next;
            free(e);
        }
    }
    atomic_store(&rh_dir_count, 0);
    pthread_mutex_unlock(&rh_dir_lock);
}
