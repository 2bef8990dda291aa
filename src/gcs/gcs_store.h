/*
 * One replica's copy of one shard: the key-value entries of every table,
 * the writes applied in log order, and what each client's writes returned
 * so that a write sent again (a client retrying across a reconfiguration)
 * is applied once and answered with its first result.
 *
 * Every replica of a chain applies the same writes in the same log order
 * (the head numbers them), and applying is deterministic: a compare-and-
 * swap or a delete reaches the same verdict on every replica, so only the
 * head decides the order and the tail's result is everybody's.
 *
 * Not thread-safe: the progress thread owns the stores.
 */
#ifndef RH_GCS_GCS_STORE_H
#define RH_GCS_GCS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "base/hashmap.h"
#include "gcs/gcs.h"

typedef enum rh_gcs_op_kind {
    RH_GCS_OP_PUT = 1,   /* set the value */
    RH_GCS_OP_DEL = 2,   /* remove the key (RH_ERR_NOT_FOUND when absent) */
    RH_GCS_OP_CAS = 3,   /* set it when its version is `expect` (0: absent) */
    /* Stamped: records whose write and delete come from different
     * processes, so that either may arrive first (a spilled copy's).
     * `expect` carries the stamp; a delete names the stamp of the write it
     * undoes, and a later write of the key has a higher stamp. */
    RH_GCS_OP_SPUT = 4,  /* set it unless it holds a higher stamp, or a
                          * delete of this stamp came first
                          * (RH_ERR_CONFLICT: dropped) */
    RH_GCS_OP_SDEL = 5,  /* unless it holds a higher stamp, remove it and
                          * keep a tombstone of the stamp, which drops the
                          * writes of that stamp and below that come later
                          * (RH_ERR_NOT_FOUND when nothing visible
                          * changed) */
    RH_GCS_OP_MAX = 5
} rh_gcs_op_kind_t;

/* One write as the chain carries it. */
typedef struct rh_gcs_write {
    uint8_t     op;       /* rh_gcs_op_kind_t */
    uint8_t     table;    /* rh_gcs_table_t */
    uint16_t    klen;
    uint32_t    vlen;
    uint32_t    client;   /* rank that wrote it */
    uint64_t    seq;      /* the client's number for it */
    uint64_t    floor;    /* the client had every seq below this answered */
    uint64_t    expect;   /* CAS: the version it must have */
    uint64_t    lsn;      /* the shard's log index, set by the head */
    const void *key;
    const void *value;
} rh_gcs_write_t;

/* What a write returned. */
typedef struct rh_gcs_result {
    uint64_t version;     /* the key's version after it (0: absent) */
    int32_t  status;      /* RH_OK, RH_ERR_NOT_FOUND, RH_ERR_CONFLICT */
    int32_t  fresh;       /* 1: applied by this call, not a retry's echo */
} rh_gcs_result_t;

typedef struct rh_gcs_entry rh_gcs_entry_t;
struct rh_gcs_entry {
    rh_gcs_entry_t *next;      /* same 64-bit hash */
    uint64_t        version;   /* lsn of the write that set it */
    uint64_t        stamp;     /* a stamped write's or delete's; else 0 */
    uint8_t         tomb;      /* 1: a stamped delete's tombstone (no
                                * value; reads do not see it) */
    uint8_t         table;
    uint16_t        klen;
    uint32_t        vlen;
    uint8_t         bytes[];   /* key, then value */
};

/* What a store knows of a client's writes besides their results. */
typedef struct rh_gcs_client {
    uint64_t floor;   /* every seq below it was answered */
    uint64_t top;     /* above every seq applied: a write of a seq from
                       * here on is new without a look at the results
                       * (the client numbers its writes in order) */
} rh_gcs_client_t;

typedef struct rh_gcs_store {
    rh_hmap_t index;        /* key hash -> rh_gcs_entry_t * */
    rh_hmap_t applied;      /* (client, seq) -> rh_gcs_result_t */
    rh_hmap_t clients;      /* client -> rh_gcs_client_t */
    size_t    prune_at;     /* applied entries before the next prune */
    uint64_t  lsn;          /* last write applied */
    size_t    count[RH_GCS_NTABLES];   /* keys held (not tombstones) */
    size_t    bytes;        /* keys and values held */
    size_t    tombs;        /* tombstones of stamped deletes */
    rh_gcs_entry_t *spare;  /* put aside by rh_gcs_store_reserve */
    size_t    spare_bytes;  /* the key and value bytes it has room for */
} rh_gcs_store_t;

void rh_gcs_store_init(rh_gcs_store_t *s);
void rh_gcs_store_fini(rh_gcs_store_t *s);

/* The 64-bit hash of a table's key, the same on every rank (it picks the
 * shard). */
uint64_t rh_gcs_key_hash(uint8_t table, const void *key, size_t klen);

/* The entry of a key, NULL when absent (or a tombstone). */
const rh_gcs_entry_t *rh_gcs_store_get(const rh_gcs_store_t *s,
                                       uint8_t table, const void *key,
                                       size_t klen);

/* 1 when (client, seq) was applied already (or answered long ago: below
 * the client's floor); its first result in *res when it is still known
 * (res->status RH_ERR_NOT_FOUND and version 0 otherwise). */
int rh_gcs_store_applied(rh_gcs_store_t *s, uint32_t client, uint64_t seq,
                         rh_gcs_result_t *res);

/* Applies w (its lsn must be s->lsn + 1) and records its result in *res.
 * A write already applied (rh_gcs_store_applied) only advances the log and
 * answers its first result. RH_ERR_NO_MEMORY leaves the store as it was. */
rh_status_t rh_gcs_store_apply(rh_gcs_store_t *s, const rh_gcs_write_t *w,
                               rh_gcs_result_t *res);

/* The result rh_gcs_store_apply will give w, a PUT, found without a look
 * at its key (a new PUT always succeeds; a retry gets its first result):
 * the tail answers with it before it applies the write. */
void rh_gcs_store_put_result(rh_gcs_store_t *s, const rh_gcs_write_t *w,
                             rh_gcs_result_t *res);

/* Makes the next rh_gcs_store_apply, of w, unable to fail: its tables get
 * room for the keys it may add, and an entry is put aside for its record.
 * For a chain member that passes a write on before it applies it (the
 * write's path is then one apply shorter at each member): once the write
 * has left, the member must hold it too. RH_ERR_NO_MEMORY otherwise. */
rh_status_t rh_gcs_store_reserve(rh_gcs_store_t *s, const rh_gcs_write_t *w);

/* Calls fn for each entry, tombstones too (table order not defined); the
 * entry must not be changed. For catch-up and dumps. */
void rh_gcs_store_each(rh_gcs_store_t *s,
                       void (*fn)(void *arg, const rh_gcs_entry_t *e),
                       void *arg);

/* The whole store (entries, tombstones, what each client's writes
 * returned, the clients' floors and the log index) in a flat form, for a
 * replica that joins the chain: with buf NULL, only the size. Returns the
 * bytes. */
size_t rh_gcs_store_pack(rh_gcs_store_t *s, void *buf);
/* Replaces s's contents (an initialised store) with a packed one;
 * RH_ERR_MALFORMED or RH_ERR_NO_MEMORY leave it empty. */
rh_status_t rh_gcs_store_unpack(rh_gcs_store_t *s, const void *buf,
                                size_t len);

static inline const uint8_t *rh_gcs_entry_value(const rh_gcs_entry_t *e)
{
    return e->bytes + e->klen;
}

#endif
