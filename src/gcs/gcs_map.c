#include "gcs/gcs_map.h"

#include <stdlib.h>
#include <string.h>

#include "base/status.h"

rh_status_t rh_gcs_map_build(rh_gcs_map_t *m, int size, const int *node_of,
                             int nnodes, uint32_t shards, uint32_t replicas)
{
    int *order = NULL, *seen = NULL, *byrank = NULL, *cnt, *fill;
    int n = 0;

    memset(m, 0, sizeof(*m));
    if (size < 1 || nnodes < 1 || node_of == NULL) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "GCS map of %d ranks on %d "
                            "nodes", size, nnodes);
    }
    if (shards == 0) {
        shards = (uint32_t)nnodes;
    }
    if (replicas == 0) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "GCS chains need at least "
                            "one replica");
    }
    if (replicas > (uint32_t)size) {
        replicas = (uint32_t)size;
    }
    order = malloc((size_t)size * sizeof(*order));
    seen = calloc(3 * (size_t)nnodes, sizeof(*seen));
    byrank = malloc((size_t)size * sizeof(*byrank));
    m->len = malloc(shards * sizeof(*m->len));
    m->chain = malloc((size_t)shards * replicas * sizeof(*m->chain));
    if (order == NULL || seen == NULL || byrank == NULL || m->len == NULL ||
        m->chain == NULL) {
        goto err_nomem;
    }
    cnt = seen + nnodes;
    fill = cnt + nnodes;
    /* Bucket the ranks by node (seen[node]: where its bucket starts in
     * byrank), then round k lists the k-th rank of every node that has
     * one. */
    for (int r = 0; r < size; r++) {
        if (node_of[r] < 0 || node_of[r] >= nnodes) {
            free(order);
            free(seen);
            free(byrank);
            rh_gcs_map_free(m);
            return rh_error_set(RH_ERR_INVALID_PARAM, "rank %d is on node "
                                "%d of %d", r, node_of[r], nnodes);
        }
        cnt[node_of[r]]++;
    }
    for (int node = 1; node < nnodes; node++) {
        seen[node] = seen[node - 1] + cnt[node - 1];
    }
    for (int r = 0, node; r < size; r++) {
        node = node_of[r];
        byrank[seen[node] + fill[node]++] = r;
    }
    for (int k = 0; n < size; k++) {
        for (int node = 0; node < nnodes; node++) {
            if (k < cnt[node]) {
                order[n++] = byrank[seen[node] + k];
            }
        }
    }
    for (uint32_t s = 0; s < shards; s++) {
        m->len[s] = replicas;
        for (uint32_t i = 0; i < replicas; i++) {
            m->chain[(size_t)s * replicas + i] =
                order[(s + i) % (uint32_t)size];
        }
    }
    m->epoch = 1;
    m->nshards = shards;
    m->replicas = replicas;
    free(order);
    free(seen);
    free(byrank);
    return RH_OK;

err_nomem:
    free(order);
    free(seen);
    free(byrank);
    rh_gcs_map_free(m);
    return rh_error_set(RH_ERR_NO_MEMORY, "GCS map of %u shards", shards);
}

void rh_gcs_map_free(rh_gcs_map_t *m)
{
    free(m->len);
    free(m->chain);
    memset(m, 0, sizeof(*m));
}

int rh_gcs_map_pos(const rh_gcs_map_t *m, uint32_t shard, int rank)
{
    for (uint32_t i = 0; i < m->len[shard]; i++) {
        if (m->chain[(size_t)shard * m->replicas + i] == rank) {
            return (int)i;
        }
    }
    return -1;
}

int rh_gcs_map_next(const rh_gcs_map_t *m, uint32_t shard, int pos)
{
    if (pos < 0 || (uint32_t)pos + 1 >= m->len[shard]) {
        return -1;
    }
    return m->chain[(size_t)shard * m->replicas + (uint32_t)pos + 1];
}
