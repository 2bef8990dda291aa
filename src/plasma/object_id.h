/*
 * Object ids: 128 bits, laid out as owner rank (32) | task counter (64) |
 * return index (32). The owner is the rank whose task (or put) made the
 * object, so that any rank holding an id knows whom to ask about it without
 * a lookup; the counter names that owner's put or task (a slot of its
 * object table and the slot's generation, src/core/future.h: never issued
 * twice); the index tells the returns of one task apart.
 *
 *   hi = owner << 32 | counter >> 32
 *   lo = counter << 32 | index
 */
#ifndef RH_PLASMA_OBJECT_ID_H
#define RH_PLASMA_OBJECT_ID_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct rh_object_id {
    uint64_t hi, lo;
} rh_object_id_t;

/* "owner/counter/index" with every field in decimal fits in this. */
#define RH_OBJECT_ID_STRLEN 48

static inline rh_object_id_t rh_object_id_make(uint32_t owner,
                                               uint64_t counter,
                                               uint32_t index)
{
    rh_object_id_t id;

    id.hi = (uint64_t)owner << 32 | counter >> 32;
    id.lo = counter << 32 | index;
    return id;
}

/* An id as messages carry it: hi then lo, at any alignment. */
static inline rh_object_id_t rh_object_id_read(const void *p)
{
    rh_object_id_t id;

    memcpy(&id, p, sizeof(id));
    return id;
}

static inline uint32_t rh_object_id_owner(rh_object_id_t id)
{
    return (uint32_t)(id.hi >> 32);
}

static inline uint64_t rh_object_id_counter(rh_object_id_t id)
{
    return id.hi << 32 | id.lo >> 32;
}

static inline uint32_t rh_object_id_index(rh_object_id_t id)
{
    return (uint32_t)id.lo;
}

static inline int rh_object_id_equal(rh_object_id_t a, rh_object_id_t b)
{
    return a.hi == b.hi && a.lo == b.lo;
}

/* Writes "owner/counter/index" into buf (RH_OBJECT_ID_STRLEN bytes) and
 * returns buf, for messages: "object 3/17/0 is not sealed". */
static inline const char *rh_object_id_str(rh_object_id_t id, char *buf)
{
    snprintf(buf, RH_OBJECT_ID_STRLEN, "%u/%llu/%u", rh_object_id_owner(id),
             (unsigned long long)rh_object_id_counter(id),
             rh_object_id_index(id));
    return buf;
}

#endif
