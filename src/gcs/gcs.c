/*
 * The GCS's life: its handlers, its configuration, the dump. The replicas
 * are in gcs_chain.c, the client in gcs_client.c.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "base/status.h"
#include "gcs/gcs_pubsub.h"
#include "gcs/gcs_store.h"
#include "gcs/gcs_wire.h"

rh_gcs_map_t rh_gcs_map;
pthread_rwlock_t rh_gcs_map_lock = PTHREAD_RWLOCK_INITIALIZER;
int rh_gcs_rank = -1;
int rh_gcs_size;
uint32_t rh_gcs_nshards;
int *rh_gcs_node_of;

static const char *const rh_gcs_table_names[RH_GCS_NTABLES] = {
    "node", "function", "actor", "pgroup", "object", "job", "test",
    "subscription"
};

const char *rh_gcs_table_name(int table)
{
    return table >= 0 && table < RH_GCS_NTABLES ? rh_gcs_table_names[table] :
           "unknown";
}

uint32_t rh_gcs_shard_of(int table, const void *key, size_t klen)
{
    return (uint32_t)(rh_gcs_key_hash((uint8_t)table, key, klen) %
                      rh_gcs_nshards);
}

int rh_gcs_chain(uint32_t shard, int *ranks, int max)
{
    int n = 0;

    pthread_rwlock_rdlock(&rh_gcs_map_lock);
    if (rh_gcs_rank >= 0 && shard < rh_gcs_map.nshards) {
        for (uint32_t i = 0; i < rh_gcs_map.len[shard] && n < max; i++) {
            ranks[n++] = rh_gcs_map.chain[(size_t)shard *
                                          rh_gcs_map.replicas + i];
        }
    }
    pthread_rwlock_unlock(&rh_gcs_map_lock);
    return n;
}

uint64_t rh_gcs_epoch(void)
{
    uint64_t e;

    pthread_rwlock_rdlock(&rh_gcs_map_lock);
    e = rh_gcs_map.epoch;
    pthread_rwlock_unlock(&rh_gcs_map_lock);
    return e;
}

/* One for each record module (actors, objects, the job). */
#define RH_GCS_SHOW_MAX 8
static _Atomic(rh_gcs_show_fn) rh_gcs_show_extra[RH_GCS_SHOW_MAX];

void rh_gcs_set_show(rh_gcs_show_fn fn)
{
    for (int i = 0; fn != NULL && i < RH_GCS_SHOW_MAX; i++) {
        rh_gcs_show_fn cur = NULL;

        if (atomic_compare_exchange_strong(&rh_gcs_show_extra[i], &cur,
                                           fn) || cur == fn) {
            return;
        }
    }
}

static void rh_gcs_show_more(FILE *out)
{
    for (int i = 0; i < RH_GCS_SHOW_MAX; i++) {
        rh_gcs_show_fn fn = atomic_load(&rh_gcs_show_extra[i]);

        if (fn != NULL) {
            fn(out);
        }
    }
}

rh_status_t rh_gcs_setup(void)
{
    rh_status_t status = rh_gcs_chain_setup();

    if (status == RH_OK) {
        status = rh_gcs_client_setup();
    }
    if (status == RH_OK) {
        status = rh_gcs_pub_setup();
    }
    if (status == RH_OK) {
        status = rh_gcs_member_setup();
    }
    return status;
}

rh_status_t rh_gcs_start(int rank, int size, const int *node_of, int nnodes)
{
    rh_status_t status;

    status = rh_gcs_map_build(&rh_gcs_map, size, node_of, nnodes,
                              (uint32_t)rh_cfg.gcs_shards,
                              (uint32_t)rh_cfg.gcs_replicas);
    if (status != RH_OK) {
        return status;
    }
    free(rh_gcs_node_of);
    rh_gcs_node_of = malloc((size_t)size * sizeof(*rh_gcs_node_of));
    if (rh_gcs_node_of == NULL) {
        rh_gcs_map_free(&rh_gcs_map);
        return rh_error_set(RH_ERR_NO_MEMORY, "GCS node table");
    }
    memcpy(rh_gcs_node_of, node_of, (size_t)size * sizeof(*node_of));
    rh_gcs_rank = rank;
    rh_gcs_size = size;
    rh_gcs_nshards = rh_gcs_map.nshards;
    status = rh_gcs_chain_start();
    if (status == RH_OK) {
        status = rh_gcs_pub_start();
        if (status != RH_OK) {
            rh_gcs_chain_stop();
        }
    }
    if (status == RH_OK) {
        status = rh_gcs_member_start();
        if (status != RH_OK) {
            rh_gcs_pub_stop();
            rh_gcs_chain_stop();
        }
    }
    if (status != RH_OK) {
        rh_gcs_map_free(&rh_gcs_map);
        free(rh_gcs_node_of);
        rh_gcs_node_of = NULL;
        rh_gcs_rank = -1;
    }
    return status;
}

rh_status_t rh_gcs_run(void)
{
    return rh_gcs_rank >= 0 ? rh_gcs_member_run() : RH_OK;
}

void rh_gcs_quiesce(void)
{
    if (rh_gcs_rank >= 0) {
        rh_gcs_member_quiesce();
    }
}

void rh_gcs_stop(void)
{
    if (rh_gcs_rank < 0) {
        return;
    }
    rh_gcs_member_stop();
    if (rh_cfg.gcs_dump) {
        rh_gcs_dump(stderr);
    }
    rh_gcs_client_stop();
    rh_gcs_chain_stop();
    rh_gcs_pub_stop();
    rh_gcs_map_free(&rh_gcs_map);
    free(rh_gcs_node_of);
    rh_gcs_node_of = NULL;
    rh_gcs_rank = -1;
}

void rh_gcs_dump(FILE *out)
{
    if (rh_gcs_rank < 0) {
        fprintf(out, "gcs: not running\n");
        return;
    }
    if (rh_gcs_rank == 0) {
        fprintf(out, "gcs epoch %llu: %u shards, chains of %u\n",
                (unsigned long long)rh_gcs_map.epoch, rh_gcs_map.nshards,
                rh_gcs_map.replicas);
        for (uint32_t s = 0; s < rh_gcs_map.nshards; s++) {
            fprintf(out, "gcs shard %u chain:", s);
            for (uint32_t i = 0; i < rh_gcs_map.len[s]; i++) {
                fprintf(out, " %d",
                        rh_gcs_map.chain[(size_t)s * rh_gcs_map.replicas + i]);
            }
            if (rh_gcs_map.joining[s] >= 0) {
                fprintf(out, " (joining: %d)", rh_gcs_map.joining[s]);
            }
            fputc('\n', out);
        }
    }
    rh_gcs_chain_dump(out);
    rh_gcs_show_more(out);
}

void rh_gcs_snapshot(FILE *out)
{
    uint32_t dead = 0;

    pthread_rwlock_rdlock(&rh_gcs_map_lock);
    if (rh_gcs_rank < 0) {
        pthread_rwlock_unlock(&rh_gcs_map_lock);
        return;
    }
    for (uint32_t r = 0; r < rh_gcs_map.size; r++) {
        dead += rh_gcs_map.dead[r] != 0;
    }
    fprintf(out, "gcs epoch %llu shards %u replicas %u dead %u\n",
            (unsigned long long)rh_gcs_map.epoch, rh_gcs_map.nshards,
            rh_gcs_map.replicas, dead);
    fprintf(out, "gcs masters");
    for (uint32_t i = 0; i < rh_gcs_map.nmasters; i++) {
        fprintf(out, " %d", rh_gcs_map.masters[i]);
    }
    fputc('\n', out);
    for (uint32_t s = 0; s < rh_gcs_map.nshards; s++) {
        fprintf(out, "gcs chain %u", s);
        for (uint32_t i = 0; i < rh_gcs_map.len[s]; i++) {
            fprintf(out, " %d",
                    rh_gcs_map.chain[(size_t)s * rh_gcs_map.replicas + i]);
        }
        if (rh_gcs_map.joining[s] >= 0) {
            fprintf(out, " (joining: %d)", rh_gcs_map.joining[s]);
        }
        fputc('\n', out);
    }
    rh_gcs_chain_snapshot(out);
    pthread_rwlock_unlock(&rh_gcs_map_lock);
    rh_gcs_show_more(out);
}
