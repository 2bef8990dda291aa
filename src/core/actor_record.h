/*
 * The actor table's records in the GCS: the owner's table (actor_table.c)
 * stays the authority, and tells this module each change of an actor's
 * state, which writes it as a record of RH_GCS_T_ACTOR without blocking
 * (gcs_record.h), so that the actor's state can be read back from the GCS
 * after its owner's or a replica's death. The actor call path never comes
 * here.
 *
 * Key: "actor/OWNER/ID" (the handle's owner rank and counter, hex). Value,
 * text, one field a line after the first:
 *   owner O class C state pending|alive|dead rank R restarts N
 *   name NAME          (a named actor)
 *   why TEXT           (a dead one: why it died)
 */
#ifndef RH_CORE_ACTOR_RECORD_H
#define RH_CORE_ACTOR_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "core/actor_table.h"
#include "rayhpc.h"

/* The actor's state changed in the owner's table (its lock may be held:
 * this never blocks). state: RH_AT_PENDING, _ALIVE or _DEAD; rank -1 while
 * it has none; restarts so far; name and why may be NULL or empty. */
void rh_actor_record_note(rh_actor_t a, int state, int rank,
                          uint32_t restarts, const char *name,
                          const char *why);

/* The record's value as text (what note writes) into text (cap bytes):
 * its length, 0 for a state out of range. */
size_t rh_actor_record_format(rh_actor_t a, int state, int rank,
                              uint32_t restarts, const char *name,
                              const char *why, char *text, size_t cap);

/* The owner's table let go of the actor: the record's last value is still
 * written, then this rank forgets it (the GCS keeps it). */
void rh_actor_record_forget(rh_actor_t a);

/* Forgets every record (the table is cleared); their counts stay. */
void rh_actor_record_clear(void);

/* Records this process wrote, by the state written last (kept after the
 * table is cleared, so that RAYHPC_GCS_DUMP at rh_finalize shows them):
 * pending, alive, dead. rayhpc-info --gcs and RAYHPC_GCS_DUMP show them
 * as "gcs actors pending P alive A dead D". */
void rh_actor_record_counts(uint64_t *pending, uint64_t *alive,
                            uint64_t *dead);

typedef struct rh_actor_record {
    int      owner;
    int      state;                    /* RH_AT_PENDING, _ALIVE, _DEAD */
    int      rank;                     /* -1: none */
    uint32_t restarts;
    char     cls[64];
    char     name[RH_ATAB_NAME_MAX];   /* "" when unnamed */
    char     why[256];                 /* "" unless dead */
} rh_actor_record_t;

/* Reads the actor's record from the GCS (waits; not on the progress
 * thread): RH_ERR_NOT_FOUND when it holds none, RH_ERR_MALFORMED when the
 * value is not a record. */
rh_status_t rh_actor_record_read(rh_actor_t a, rh_actor_record_t *rec);

/* The same without waiting: done runs once, on the progress thread (or at
 * the GCS's stop, with RH_ERR_SHUTDOWN), with the status and, when it is
 * RH_OK, the record. RH_OK when the read was started. */
typedef void (*rh_actor_record_done_fn)(void *arg, rh_status_t status,
                                        const rh_actor_record_t *rec);
rh_status_t rh_actor_record_read_async(rh_actor_t a,
                                       rh_actor_record_done_fn done,
                                       void *arg);

/* The rank a record says the actor lives on; -1 when it is not alive. */
static inline int rh_actor_record_rank(const rh_actor_record_t *rec)
{
    return rec->state == RH_AT_ALIVE && rec->rank >= 0 &&
           rec->rank < rh_size() ? rec->rank : -1;
}

/* Parses a record's value (len bytes, not terminated). */
rh_status_t rh_actor_record_parse(const char *text, size_t len,
                                  rh_actor_record_t *rec);

#endif
