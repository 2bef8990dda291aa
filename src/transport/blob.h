/*
 * The bootstrap blob: what each rank tells every other rank at start-up, as
 * a list of (key, length, value) entries behind a magic word. Readers skip
 * keys they do not know, so later releases add fields (store rkey,
 * resources) without breaking the format.
 */
#ifndef RH_TRANSPORT_BLOB_H
#define RH_TRANSPORT_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "rayhpc.h"

#define RH_BLOB_MAGIC 0x31424852u   /* "RHB1" */

typedef enum rh_blob_key {
    RH_BLOB_PID       = 1,  /* int32 */
    RH_BLOB_HOST      = 2,  /* host name + pid namespace: same kernel test */
    RH_BLOB_NODE      = 3,  /* node identity (host name or RAYHPC_NODE_ID) */
    RH_BLOB_UCX_ADDR  = 4,  /* ucp worker address */
    RH_BLOB_TOPO      = 5,  /* hwloc summary text */
    RH_BLOB_STORE_RKEY = 6, /* packed rkey of the node's object store */
    RH_BLOB_RESOURCES = 7,  /* resources this rank offers */
    RH_BLOB_FUNCS     = 8,  /* registered functions: "name:nargs:nreturns\n" */
    RH_BLOB_GUEST_KEY = 9,  /* 16 random bytes a process outside the job
                             * shows to ask this rank (obs/jobgather.h) */
    RH_BLOB_JOB_CFG   = 10, /* settings every rank needs the same:
                             * rh_config_job_wide's text */
    RH_BLOB_RINGS     = 11  /* uint8: rh_tp_rings_wanted() */
} rh_blob_key_t;

typedef struct rh_blob {
    uint8_t *buf;
    size_t   len, cap;
} rh_blob_t;

void rh_blob_init(rh_blob_t *b);
void rh_blob_free(rh_blob_t *b);
rh_status_t rh_blob_add(rh_blob_t *b, uint16_t key, const void *val,
                        uint32_t len);
rh_status_t rh_blob_add_str(rh_blob_t *b, uint16_t key, const char *s);

/* Finds key in a received blob. Returns RH_OK, RH_ERR_INVALID_PARAM when
 * absent, RH_ERR_MALFORMED when the blob is damaged (never reads past len). */
rh_status_t rh_blob_find(const void *blob, size_t len, uint16_t key,
                         const void **val, uint32_t *vlen);

/* Every rank's blob after the exchange. */
typedef struct rh_blob_set {
    int       n;
    uint8_t  *data;
    size_t   *off;
    size_t   *len;
} rh_blob_set_t;

/* Splits a buffer of n (uint32 len, bytes) records; takes ownership of
 * data (freed by rh_blob_set_free, also on error). */
rh_status_t rh_blob_set_parse(rh_blob_set_t *set, uint8_t *data, size_t len,
                              int n);
void rh_blob_set_free(rh_blob_set_t *set);

#endif
