/*
 * The GCS's messages and the state its replica and client halves share.
 * Internal to src/gcs/.
 */
#ifndef RH_GCS_GCS_WIRE_H
#define RH_GCS_GCS_WIRE_H

#include <pthread.h>
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
    RH_AM_ID_GCS_HB     = RH_AM_ID_GCS_FIRST + 5,  /* rank <-> master */
    RH_AM_ID_GCS_CONF   = RH_AM_ID_GCS_FIRST + 6,  /* configurations */
    RH_AM_ID_GCS_ACKUP  = RH_AM_ID_GCS_FIRST + 7,  /* tail -> members above:
                                                    * applied up to here */
    RH_AM_ID_GCS_LAST   = RH_AM_ID_GCS_FIRST + 7
};

_Static_assert((int)RH_AM_ID_GCS_LAST < (int)RH_AM_ID_FT_FIRST,
               "GCS AM ids run out of their block");

/* FWD flags */
#define RH_GCS_FWD_REACK 1u   /* a retried write the head had applied: the
                               * tail answers it again if it has it too */
#define RH_GCS_FWD_STATE 2u   /* tail -> joining rank: the shard's state
                               * (gcs_chain.c), its log index in lsn */
#define RH_GCS_FWD_HANDOFF 4u /* a member -> the tail after it, once it
                               * passed on what it kept: the tail serves
                               * reads from lsn on */

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

/* ACKUP: every member above the tail may forget writes up to lsn. */
typedef struct rh_gcs_uhdr {
    uint64_t lsn;
    uint32_t shard;
    uint32_t pad;
} rh_gcs_uhdr_t;

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

/* Shared by the halves. The map changes only on the progress thread, under
 * the write lock; other threads read it under the read lock. */
extern rh_gcs_map_t rh_gcs_map;
extern pthread_rwlock_t rh_gcs_map_lock;
extern int rh_gcs_rank;
extern int rh_gcs_size;
/* The shard count never changes: threads read it without the lock. */
extern uint32_t rh_gcs_nshards;
/* Each rank's node (rh_gcs_size of them), fixed at start. */
extern int *rh_gcs_node_of;

/* Membership (gcs_member.c). */
rh_status_t rh_gcs_member_setup(void);
rh_status_t rh_gcs_member_start(void);
/* Once the transport runs: the heartbeat thread. */
rh_status_t rh_gcs_member_run(void);
void rh_gcs_member_quiesce(void);
void rh_gcs_member_stop(void);
/* Whether a majority of the masters confirmed our epoch lately: replicas
 * serve only then. */
int rh_gcs_lease_ok(void);
/* Sends our configuration to a rank that showed an older epoch. */
void rh_gcs_offer_conf(int dest);
/* A joining rank tells the masters it holds shard's state as of the
 * configuration of epoch: it may become the tail. */
void rh_gcs_caught_up(uint32_t shard, uint64_t epoch);
uint64_t rh_gcs_timeout_ns(void);
/* Every GCS message goes through here (copied before it returns); the
 * tests' partition drops what crosses it, here and on arrival. */
rh_status_t rh_gcs_send(int dest, uint16_t id, const void *hdr,
                        size_t hdr_len, const void *data, size_t len);
int rh_gcs_cut(int peer);

/* The replica half. */
rh_status_t rh_gcs_chain_setup(void);
rh_status_t rh_gcs_chain_start(void);
/* After the map changed from old: chains re-form. */
void rh_gcs_chain_reconfigure(const rh_gcs_map_t *old);
void rh_gcs_chain_stop(void);
/* At each GCS heartbeat (progress thread). */
void rh_gcs_chain_tick(void);
/* A write of this rank's client to a shard it heads, taken as the WRITE
 * handler would take it: with the transport's token held. */
void rh_gcs_chain_write_here(const rh_gcs_whdr_t *h, const uint8_t *data);
void rh_gcs_chain_dump(FILE *out);
/* This rank's replicas as the snapshot lines of rh_gcs_snapshot; from any
 * thread holding rh_gcs_map_lock for reading. */
void rh_gcs_chain_snapshot(FILE *out);

/* The client half. */
rh_status_t rh_gcs_client_setup(void);
/* After the map changed: what waits goes again to the new heads and tails. */
void rh_gcs_client_reconfigure(void);
/* Sends again what waited long, fails what waited too long. */
void rh_gcs_client_tick(uint64_t now);
/* Writes value (NULL: deletes) under key to one given shard and waits:
 * for the GCS's own records, which may live in any shard. */
rh_status_t rh_gcs_write_to_shard(int table, const void *key, size_t klen,
                                  const void *value, size_t vlen,
                                  uint32_t shard);
void rh_gcs_client_stop(void);

#endif
