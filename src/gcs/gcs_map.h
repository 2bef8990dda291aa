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

typedef struct rh_gcs_map {
    uint64_t  epoch;
    uint32_t  nshards;
    uint32_t  replicas;    /* chain capacity: slots per shard */
    uint32_t *len;         /* nshards: live members of each chain */
    int32_t  *chain;       /* nshards x replicas ranks, head first */
} rh_gcs_map_t;

/* Builds the first configuration (epoch 1) for size ranks on nnodes nodes
 * (node_of: each rank's node). shards 0: one per node; replicas is capped
 * by the ranks. */
rh_status_t rh_gcs_map_build(rh_gcs_map_t *m, int size, const int *node_of,
                             int nnodes, uint32_t shards, uint32_t replicas);
void rh_gcs_map_free(rh_gcs_map_t *m);

static inline int rh_gcs_map_head(const rh_gcs_map_t *m, uint32_t shard)
{
    return m->chain[(size_t)shard * m->replicas];
}

static inline int rh_gcs_map_tail(const rh_gcs_map_t *m, uint32_t shard)
{
    return m->chain[(size_t)shard * m->replicas + m->len[shard] - 1];
}

/* Position of rank in shard's chain (0: head), -1 when not a member. */
int rh_gcs_map_pos(const rh_gcs_map_t *m, uint32_t shard, int rank);

/* The rank after pos in shard's chain, -1 after the tail. */
int rh_gcs_map_next(const rh_gcs_map_t *m, uint32_t shard, int pos);

#endif
