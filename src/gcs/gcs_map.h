/*
 * The GCS configuration: how many shards, and the chain of ranks that holds
 * each (head first, tail last), under an epoch. Chains prefer distinct
 * nodes: the ranks are listed node by node in turn (the first rank of each
 * node, then the second...) and shard s takes `replicas` consecutive ranks
 * of that list from position s, so a chain spans as many nodes as it can
 * and the heads and tails of the shards fall on different ranks.
 */
#ifndef RH_GCS_GCS_MAP_H
#define RH_GCS_GCS_MAP_H

#include <stdint.h>

#include "rayhpc.h"

/* Ranks that hold the configuration (the master): a majority of them must
 * accept a new one. */
#define RH_GCS_MASTERS_MAX 3

typedef struct rh_gcs_map {
    uint64_t  epoch;
    uint32_t  nshards;
    uint32_t  replicas;    /* chain capacity: slots per shard */
    uint32_t  size;        /* ranks of the job */
    uint32_t  nmasters;
    int32_t   masters[RH_GCS_MASTERS_MAX];
    uint32_t *len;         /* nshards: live members of each chain */
    int32_t  *chain;       /* nshards x replicas ranks, head first */
    int32_t  *joining;     /* nshards: a rank catching up behind the tail
                            * to become the next tail of a chain that lost
                            * a member, -1: none */
    uint8_t  *dead;        /* size: 1 for a rank the configuration dropped */
} rh_gcs_map_t;

/* Builds the first configuration (epoch 1) for size ranks on nnodes nodes
 * (node_of: each rank's node). shards 0: one per node; replicas is capped
 * by the ranks. The masters are the first ranks of the node-by-node list:
 * distinct nodes where there are several. */
rh_status_t rh_gcs_map_build(rh_gcs_map_t *m, int size, const int *node_of,
                             int nnodes, uint32_t shards, uint32_t replicas);
void rh_gcs_map_free(rh_gcs_map_t *m);

/* dst = src (dst's old contents freed). */
rh_status_t rh_gcs_map_copy(rh_gcs_map_t *dst, const rh_gcs_map_t *src);

/* Drops rank from every chain (the survivors keep their order) and marks it
 * dead; does not change the epoch. 1 when something changed. */
int rh_gcs_map_drop(rh_gcs_map_t *m, int rank);

/* A rank to join shard's chain, which has fewer than replicas members and
 * no rank joining: one alive (alive[r] != 0), not dead and not in the
 * chain, on a node the chain does not use where there is one, then the one
 * holding the fewest chain places (node_of: size entries); -1: none. */
int rh_gcs_map_pick_joiner(const rh_gcs_map_t *m, uint32_t shard,
                           const uint8_t *alive, const int *node_of);

/* The wire form: rh_gcs_map_packed_size bytes. unpack validates every field
 * (RH_ERR_MALFORMED) and replaces m's contents only on success. */
size_t rh_gcs_map_packed_size(const rh_gcs_map_t *m);
void rh_gcs_map_pack(const rh_gcs_map_t *m, void *buf);
rh_status_t rh_gcs_map_unpack(rh_gcs_map_t *m, const void *buf, size_t len);
/* The same for a configuration at the start of buf, with more after it:
 * *used says how many bytes it took. */
rh_status_t rh_gcs_map_unpack_prefix(rh_gcs_map_t *m, const void *buf,
                                     size_t len, size_t *used);

static inline int rh_gcs_map_is_master(const rh_gcs_map_t *m, int rank)
{
    for (uint32_t i = 0; i < m->nmasters; i++) {
        if (m->masters[i] == rank) {
            return 1;
        }
    }
    return 0;
}

/* Head and tail of a shard's chain; -1 when every member died. */
static inline int rh_gcs_map_head(const rh_gcs_map_t *m, uint32_t shard)
{
    return m->len[shard] != 0 ? m->chain[(size_t)shard * m->replicas] : -1;
}

static inline int rh_gcs_map_tail(const rh_gcs_map_t *m, uint32_t shard)
{
    return m->len[shard] != 0 ?
           m->chain[(size_t)shard * m->replicas + m->len[shard] - 1] : -1;
}

/* Position of rank in shard's chain (0: head), -1 when not a member. */
int rh_gcs_map_pos(const rh_gcs_map_t *m, uint32_t shard, int rank);

/* The rank after pos in shard's chain, -1 after the tail. */
int rh_gcs_map_next(const rh_gcs_map_t *m, uint32_t shard, int pos);

#endif
