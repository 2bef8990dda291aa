/*
 * Durable records of objects in the GCS. Which objects have one, and why:
 * an object's id names its owner already, and the owner's directory
 * (directory.c) knows its copies in other nodes' stores, so a live owner
 * needs nothing more; what outlives the process that knows it is a
 * SPILLED copy: a file on a node's disk that survives the rank which wrote
 * it and which no directory lists. Each spilled copy gets a record while
 * it is spilled, so that after a death the survivors (a new owner rebuilding
 * by lineage, a tool, the node's other ranks cleaning up) can learn from
 * the GCS which objects a node holds on disk, whose they are and how large.
 * Objects in memory get none: a record per put or per remote return would
 * put a GCS write on the put/get and task hot paths.
 *
 * The store tells this module (rh_store_set_spill_hook) in the process that
 * spills a copy or forgets it (read back, or deleted), which writes or
 * deletes the record without blocking (gcs_record.h).
 *
 * Table RH_GCS_T_OBJECT, key "spill/NODE/OWNER/COUNTER/INDEX" (decimal).
 * Value, text: "owner O size S node N".
 */
#ifndef RH_CORE_OBJECT_RECORD_H
#define RH_CORE_OBJECT_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "plasma/object_id.h"
#include "rayhpc.h"

typedef struct rh_object_record {
    int      owner;
    int      node;       /* where the spilled copy lies */
    uint64_t size;       /* bytes */
} rh_object_record_t;

/* The key of the record of id's spilled copy on node, into key (cap
 * bytes): its length, 0 when it does not fit. */
size_t rh_object_record_key(rh_object_id_t id, int node, char *key,
                            size_t cap);

/* The value as text: its length, 0 when it does not fit. */
size_t rh_object_record_format(const rh_object_record_t *r, char *text,
                               size_t cap);

/* Parses a value (len bytes, not terminated): RH_ERR_MALFORMED when it is
 * not an object record. */
rh_status_t rh_object_record_parse(const char *text, size_t len,
                                   rh_object_record_t *r);

/* From the store's spill hook: id's copy of size bytes on this node was
 * spilled (1) or is no longer (0); stamp names the spill (the store's
 * file number: the same for a spill and its forgetting, higher for a
 * later spill of the object on this node). Never blocks; from any thread,
 * also with the store's lock held. */
void rh_object_record_spilled(rh_object_id_t id, uint64_t size, int spilled,
                              uint64_t stamp);

/* Waits until every record change this process made so far was answered
 * by the GCS (1), or the deadline (rh_time_ns; 0: none) passed (0). Not on
 * the progress thread. */
int rh_object_record_wait(uint64_t deadline_ns);

/* Tests: while on, this process's record changes wait here (unsent);
 * turning it off sends them, in the order they were made. */
void rh_object_record_test_hold(int on);

/* At rh_init, once the GCS runs: this rank's spills are recorded from now
 * on. */
void rh_object_record_start(void);

/* At the end: nothing more is recorded; the records this process holds
 * are let go (the GCS keeps them). */
void rh_object_record_stop(void);

/* Records this process wrote and deleted, ever, and those spilled now
 * (rayhpc-info --gcs and RAYHPC_GCS_DUMP: "gcs objects spilled S written W
 * deleted D"). */
void rh_object_record_counts(uint64_t *spilled, uint64_t *written,
                             uint64_t *deleted);

/* Reads the record of id's spilled copy on node (waits; not on the
 * progress thread): RH_ERR_NOT_FOUND when the GCS holds none. */
rh_status_t rh_object_record_read(rh_object_id_t id, int node,
                                  rh_object_record_t *r);

#endif
