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
    m->joining = malloc(shards * sizeof(*m->joining));
    m->dead = calloc((size_t)size, 1);
    m->chain = malloc((size_t)shards * replicas * sizeof(*m->chain));
    if (order == NULL || seen == NULL || byrank == NULL || m->len == NULL ||
        m->chain == NULL || m->dead == NULL || m->joining == NULL) {
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
        m->joining[s] = -1;
        for (uint32_t i = 0; i < replicas; i++) {
            m->chain[(size_t)s * replicas + i] =
                order[(s + i) % (uint32_t)size];
        }
    }
    m->epoch = 1;
    m->nshards = shards;
    m->replicas = replicas;
    m->size = (uint32_t)size;
    m->nmasters = size < RH_GCS_MASTERS_MAX ? (uint32_t)size :
                  RH_GCS_MASTERS_MAX;
    for (uint32_t i = 0; i < m->nmasters; i++) {
        m->masters[i] = order[i];
    }
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
    free(m->joining);
    free(m->dead);
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

rh_status_t rh_gcs_map_copy(rh_gcs_map_t *dst, const rh_gcs_map_t *src)
{
    rh_gcs_map_t m = *src;
    size_t nchain = (size_t)src->nshards * src->replicas;

    m.len = malloc(src->nshards * sizeof(*m.len));
    m.chain = malloc(nchain * sizeof(*m.chain));
    m.joining = malloc(src->nshards * sizeof(*m.joining));
    m.dead = malloc(src->size);
    if (m.len == NULL || m.chain == NULL || m.dead == NULL ||
        m.joining == NULL) {
        free(m.len);
        free(m.chain);
        free(m.joining);
        free(m.dead);
        return rh_error_set(RH_ERR_NO_MEMORY, "GCS configuration copy");
    }
    memcpy(m.len, src->len, src->nshards * sizeof(*m.len));
    memcpy(m.joining, src->joining, src->nshards * sizeof(*m.joining));
    memcpy(m.chain, src->chain, nchain * sizeof(*m.chain));
    memcpy(m.dead, src->dead, src->size);
    rh_gcs_map_free(dst);
    *dst = m;
    return RH_OK;
}

int rh_gcs_map_drop(rh_gcs_map_t *m, int rank)
{
    int changed = 0;

    if (rank < 0 || (uint32_t)rank >= m->size) {
        return 0;
    }
    if (!m->dead[rank]) {
        m->dead[rank] = 1;
        changed = 1;
    }
    for (uint32_t s = 0; s < m->nshards; s++) {
        int32_t *c = m->chain + (size_t)s * m->replicas;
        uint32_t k = 0;

        for (uint32_t i = 0; i < m->len[s]; i++) {
            if (c[i] != rank) {
                c[k++] = c[i];
            }
        }
        changed |= k != m->len[s];
        m->len[s] = k;
        if (m->joining[s] == rank) {
            m->joining[s] = -1;
            changed = 1;
        }
    }
    return changed;
}

int rh_gcs_map_pick_joiner(const rh_gcs_map_t *m, uint32_t shard,
                           const uint8_t *alive, const int *node_of)
{
    const int32_t *c = m->chain + (size_t)shard * m->replicas;
    int best = -1, best_other = 0;
    size_t best_load = 0;

    if (m->len[shard] == 0 || m->len[shard] >= m->replicas ||
        m->joining[shard] >= 0) {
        return -1;
    }
    for (uint32_t r = 0; r < m->size; r++) {
        int other = 1;
        size_t load = 0;

        if (m->dead[r] || !alive[r] || rh_gcs_map_pos(m, shard, (int)r) >= 0) {
            continue;
        }
        for (uint32_t i = 0; i < m->len[shard]; i++) {
            other &= node_of[c[i]] != node_of[r];
        }
        for (uint32_t s = 0; s < m->nshards; s++) {
            load += rh_gcs_map_pos(m, s, (int)r) >= 0 ||
                    m->joining[s] == (int32_t)r;
        }
        if (best < 0 || other > best_other ||
            (other == best_other && load < best_load)) {
            best = (int)r;
            best_other = other;
            best_load = load;
        }
    }
    return best;
}

/* Wire form: the fixed fields, then len, chain and dead. */
typedef struct rh_gcs_map_wire {
    uint64_t epoch;
    uint32_t nshards, replicas, size, nmasters;
    int32_t  masters[RH_GCS_MASTERS_MAX];
    uint32_t pad;
} rh_gcs_map_wire_t;

size_t rh_gcs_map_packed_size(const rh_gcs_map_t *m)
{
    return sizeof(rh_gcs_map_wire_t) + m->nshards * sizeof(uint32_t) +
           (size_t)m->nshards * m->replicas * sizeof(int32_t) +
           m->nshards * sizeof(int32_t) + m->size;
}

void rh_gcs_map_pack(const rh_gcs_map_t *m, void *buf)
{
    rh_gcs_map_wire_t w;
    uint8_t *p = buf;

    memset(&w, 0, sizeof(w));
    w.epoch = m->epoch;
    w.nshards = m->nshards;
    w.replicas = m->replicas;
    w.size = m->size;
    w.nmasters = m->nmasters;
    memcpy(w.masters, m->masters, sizeof(w.masters));
    memcpy(p, &w, sizeof(w));
    p += sizeof(w);
    memcpy(p, m->len, m->nshards * sizeof(uint32_t));
    p += m->nshards * sizeof(uint32_t);
    memcpy(p, m->chain, (size_t)m->nshards * m->replicas * sizeof(int32_t));
    p += (size_t)m->nshards * m->replicas * sizeof(int32_t);
    memcpy(p, m->joining, m->nshards * sizeof(int32_t));
    p += m->nshards * sizeof(int32_t);
    memcpy(p, m->dead, m->size);
}

rh_status_t rh_gcs_map_unpack(rh_gcs_map_t *m, const void *buf, size_t len)
{
    size_t used;
    rh_gcs_map_t n;
    rh_status_t status;

    memset(&n, 0, sizeof(n));
    status = rh_gcs_map_unpack_prefix(&n, buf, len, &used);
    if (status != RH_OK) {
        return status;
    }
    if (used != len) {
        rh_gcs_map_free(&n);
        return rh_error_set(RH_ERR_MALFORMED, "GCS configuration of %zu "
                            "bytes", len);
    }
    rh_gcs_map_free(m);
    *m = n;
    return RH_OK;
}

rh_status_t rh_gcs_map_unpack_prefix(rh_gcs_map_t *m, const void *buf,
                                     size_t len, size_t *used)
{
    rh_gcs_map_wire_t w;
    rh_gcs_map_t n;
    const uint8_t *p = buf;
    size_t nchain;

    if (len < sizeof(w)) {
        return rh_error_set(RH_ERR_MALFORMED, "GCS configuration of %zu "
                            "bytes", len);
    }
    memcpy(&w, p, sizeof(w));
    p += sizeof(w);
    if (w.nshards == 0 || w.nshards > (1u << 16) || w.replicas == 0 ||
        w.replicas > 64 || w.size == 0 || w.size > (1u << 24) ||
        w.nmasters == 0 || w.nmasters > RH_GCS_MASTERS_MAX) {
        return rh_error_set(RH_ERR_MALFORMED, "GCS configuration fields out "
                            "of range");
    }
    memset(&n, 0, sizeof(n));
    n.epoch = w.epoch;
    n.nshards = w.nshards;
    n.replicas = w.replicas;
    n.size = w.size;
    n.nmasters = w.nmasters;
    memcpy(n.masters, w.masters, sizeof(n.masters));
    if (rh_gcs_map_packed_size(&n) > len) {
        return rh_error_set(RH_ERR_MALFORMED, "GCS configuration of %zu "
                            "bytes", len);
    }
    nchain = (size_t)n.nshards * n.replicas;
    for (uint32_t i = 0; i < n.nmasters; i++) {
        if (n.masters[i] < 0 || (uint32_t)n.masters[i] >= n.size) {
            return rh_error_set(RH_ERR_MALFORMED, "GCS master out of range");
        }
    }
    n.len = malloc(n.nshards * sizeof(*n.len));
    n.chain = malloc(nchain * sizeof(*n.chain));
    n.joining = malloc(n.nshards * sizeof(*n.joining));
    n.dead = malloc(n.size);
    if (n.len == NULL || n.chain == NULL || n.dead == NULL ||
        n.joining == NULL) {
        rh_gcs_map_free(&n);
        return rh_error_set(RH_ERR_NO_MEMORY, "GCS configuration");
    }
    memcpy(n.len, p, n.nshards * sizeof(*n.len));
    p += n.nshards * sizeof(*n.len);
    memcpy(n.chain, p, nchain * sizeof(*n.chain));
    p += nchain * sizeof(*n.chain);
    memcpy(n.joining, p, n.nshards * sizeof(*n.joining));
    p += n.nshards * sizeof(*n.joining);
    memcpy(n.dead, p, n.size);
    for (uint32_t s = 0; s < n.nshards; s++) {
        if (n.len[s] > n.replicas || n.joining[s] < -1 ||
            (n.joining[s] >= 0 && ((uint32_t)n.joining[s] >= n.size ||
                                   n.len[s] == 0 ||
                                   n.len[s] >= n.replicas ||
                                   rh_gcs_map_pos(&n, s, n.joining[s]) >=
                                   0))) {
            goto err_bad;
        }
        for (uint32_t i = 0; i < n.len[s]; i++) {
            int32_t r = n.chain[(size_t)s * n.replicas + i];

            if (r < 0 || (uint32_t)r >= n.size) {
                goto err_bad;
            }
        }
    }
    *used = rh_gcs_map_packed_size(&n);
    rh_gcs_map_free(m);
    *m = n;
    return RH_OK;

err_bad:
    rh_gcs_map_free(&n);
    return rh_error_set(RH_ERR_MALFORMED, "GCS configuration with a chain "
                        "out of range");
}
