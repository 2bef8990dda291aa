/*
 * The GCS's messages and the state its replica and client halves share.
 * Internal to src/gcs/.
 */
#ifndef RH_GCS_GCS_WIRE_H
#define RH_GCS_GCS_WIRE_H

#include <stdint.h>

#include "gcs/gcs.h"
#include "gcs/gcs_map.h"
#include "transport/am.h"

enum {
    RH_AM_ID_GCS_WRITE  = RH_AM_ID_GCS_FIRST + 0,  /* client -> head */
    RH_AM_ID_GCS_FWD    = RH_AM_ID_GCS_FIRST + 1,  /* replica -> successor */
    RH_AM_ID_GCS_ANSWER = RH_AM_ID_GCS_FIRST + 2,  /* tail -> client */
    RH_AM_ID_GCS_READ   = RH_AM_ID_GCS_FIRST + 3,  /* client -> tail */
    RH_AM_ID_GCS_PUB    = RH_AM_ID_GCS_FIRST + 4,  /* tail -> subscriber */
    RH_AM_ID_GCS_LAST   = RH_AM_ID_GCS_FIRST + 7
};

_Static_assert((int)RH_AM_ID_GCS_LAST < (int)RH_AM_ID_FT_FIRST,
               "GCS AM ids run out of their block");

/* FWD flags */
#define RH_GCS_FWD_REACK 1u   /* a retried write the head had applied: the
                               * tail answers it again if it has it too */

/* WRITE and FWD; the payload is the key, then the value. */
typedef struct rh_gcs_whdr {
    uint64_t epoch;
    uint64_t seq;
    uint64_t floor;
    uint64_t expect;
    uint64_t lsn;       /* FWD: the shard's log index */
    uint32_t client;
    uint32_t shard;
    uint32_t vlen;
    uint16_t klen;
    uint8_t  op;
    uint8_t  flags;
    uint8_t  table;
    uint8_t  pad[7];
} rh_gcs_whdr_t;

/* READ; the payload is the key. */
typedef struct rh_gcs_rhdr {
    uint64_t epoch;
    uint64_t seq;
    uint32_t shard;
    uint16_t klen;
    uint8_t  table;
    uint8_t  pad;
} rh_gcs_rhdr_t;

/* ANSWER; a read's payload is the value. */
typedef struct rh_gcs_ahdr {
    uint64_t seq;
    uint64_t version;
    int32_t  status;
    uint32_t shard;
} rh_gcs_ahdr_t;

/* PUB; the payload is the key, then the value (none for a delete). */
typedef struct rh_gcs_phdr {
    uint64_t count;     /* the subscription's match number in its shard */
    uint64_t lsn;
    uint64_t version;
    uint32_t id;        /* the subscriber's subscription */
    uint32_t shard;
    uint32_t vlen;
    uint16_t klen;
    uint8_t  op;
    uint8_t  table;
} rh_gcs_phdr_t;

/* Shared by the halves (set by rh_gcs_start, read-only afterwards). */
extern rh_gcs_map_t rh_gcs_map;
extern int rh_gcs_rank;
extern int rh_gcs_size;

/* The replica half. */
rh_status_t rh_gcs_chain_setup(void);
rh_status_t rh_gcs_chain_start(void);
void rh_gcs_chain_stop(void);
void rh_gcs_chain_dump(FILE *out);

/* The client half. */
rh_status_t rh_gcs_client_setup(void);
/* Writes value (NULL: deletes) under key to one given shard and waits:
 * for the GCS's own records, which may live in any shard. */
rh_status_t rh_gcs_write_to_shard(int table, const void *key, size_t klen,
                                  const void *value, size_t vlen,
                                  uint32_t shard);
void rh_gcs_client_stop(void);

#endif
