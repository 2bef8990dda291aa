/*
 * The GCS: the job's control state (nodes, functions and classes, actors,
 * placement groups, durable object records, the job) as tables of one
 * key-value layer, sharded over the ranks and chain-replicated. Writes
 * enter at the head of their shard's chain and flow down it; the tail
 * applies last, answers the client and serves reads (docs/gcs.md).
 *
 * The client functions may be called from any thread once rh_init
 * returned; the _async ones never block and call op->done on the progress
 * thread. The hot paths (task submit, object get, actor call) never touch
 * the GCS.
 */
#ifndef RH_GCS_GCS_H
#define RH_GCS_GCS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rayhpc.h"

/* Tables: key spaces of the one store. */
typedef enum rh_gcs_table {
    RH_GCS_T_NODE   = 0,   /* nodes: resources, load, liveness */
    RH_GCS_T_FUNC   = 1,   /* functions and actor classes */
    RH_GCS_T_ACTOR  = 2,   /* actors: rank, state, restarts, name */
    RH_GCS_T_PGROUP = 3,   /* placement groups */
    RH_GCS_T_OBJECT = 4,   /* objects that need a durable record */
    RH_GCS_T_JOB    = 5,   /* the job */
    RH_GCS_T_TEST   = 6,   /* tests and benchmarks */
    RH_GCS_T_SUB    = 7,   /* the GCS's own: subscriptions (no user
                            * writes) */
    RH_GCS_NTABLES  = 8
} rh_gcs_table_t;

#define RH_GCS_KEY_MAX   256u            /* bytes of a key */
#define RH_GCS_VALUE_MAX (1u << 20)      /* bytes of a value */

const char *rh_gcs_table_name(int table);

typedef struct rh_gcs_op rh_gcs_op_t;
typedef void (*rh_gcs_done_fn)(rh_gcs_op_t *op);

/* One operation. The caller owns it (and key and value) until done runs;
 * fields below "results" are set by the GCS. */
struct rh_gcs_op {
    /* the request */
    uint8_t         table;
    const void     *key;
    size_t          klen;
    const void     *value;      /* put, cas */
    size_t          vlen;
    uint64_t        expect;     /* cas: the version it must have; 0: absent.
                                 * sput, sdel: the stamp */
    rh_gcs_done_fn  done;       /* progress thread; NULL for the sync calls */
    void           *arg;
    /* results */
    rh_status_t     status;     /* RH_OK, RH_ERR_NOT_FOUND, RH_ERR_CONFLICT,
                                 * RH_ERR_NO_QUORUM (no chain served it in
                                 * 4 failure timeouts), RH_ERR_SHUTDOWN */
    uint64_t        version;    /* the key's version after a write, or read */
    void           *out;        /* get: the value (malloc; the caller frees) */
    size_t          out_len;
    /* private */
    rh_gcs_op_t    *prev, *next;
    uint64_t        seq;
    uint64_t        sent_ns, deadline_ns;
    uint32_t        shard;
    uint8_t         kind;
    _Atomic int     finished;
};

/* Asynchronous forms: RH_OK means done will run exactly once; an error
 * (bad arguments, not running) means it will not. */
rh_status_t rh_gcs_put_async(rh_gcs_op_t *op);
rh_status_t rh_gcs_del_async(rh_gcs_op_t *op);
rh_status_t rh_gcs_cas_async(rh_gcs_op_t *op);
rh_status_t rh_gcs_get_async(rh_gcs_op_t *op);
/* Stamped put and delete, for a record that processes not ordered with
 * each other write and delete (a spilled copy's): expect is the stamp. A
 * delete names the stamp of the write it undoes, and a later write of the
 * key has a higher stamp; the key ends as the highest stamp said, a delete
 * winning over its own write, whatever order they arrive in. A put that
 * arrives after a delete of its stamp or a write of a higher one ends in
 * RH_ERR_CONFLICT (dropped); a delete that changed nothing visible in
 * RH_ERR_NOT_FOUND. A delete keeps a tombstone of the key until a later
 * put replaces it. */
rh_status_t rh_gcs_sput_async(rh_gcs_op_t *op);
rh_status_t rh_gcs_sdel_async(rh_gcs_op_t *op);

/* Synchronous forms (not on the progress thread). version may be NULL. */
rh_status_t rh_gcs_put(int table, const void *key, size_t klen,
                       const void *value, size_t vlen, uint64_t *version);
rh_status_t rh_gcs_del(int table, const void *key, size_t klen);
rh_status_t rh_gcs_cas(int table, const void *key, size_t klen,
                       const void *value, size_t vlen, uint64_t expect,
                       uint64_t *version);
/* *value is malloc'ed (the caller frees it); RH_ERR_NOT_FOUND when the key
 * is absent. */
rh_status_t rh_gcs_get(int table, const void *key, size_t klen, void **value,
                       size_t *vlen, uint64_t *version);

/* ---- pub-sub: every update of what a subscription covers, from the tail
 * of its shard, once and in order per key ---- */

typedef enum rh_gcs_sub_kind {
    RH_GCS_SUB_KEY    = 1,   /* one key */
    RH_GCS_SUB_PREFIX = 2,   /* every key that starts with the bytes given */
    RH_GCS_SUB_TABLE  = 3    /* every key of the table */
} rh_gcs_sub_kind_t;

/* One update as a subscriber sees it (valid during the call). */
typedef struct rh_gcs_update {
    uint8_t     table;
    uint8_t     op;          /* RH_GCS_OP_PUT (also a CAS that won), _DEL */
    uint32_t    shard;
    uint64_t    version;     /* the key's version after it (0: deleted) */
    const void *key;
    size_t      klen;
    const void *value;
    size_t      vlen;
} rh_gcs_update_t;

/* Runs on the progress thread: must not block (async GCS calls are fine). */
typedef void (*rh_gcs_sub_fn)(void *arg, const rh_gcs_update_t *u);

/* Subscribes fn to the updates of a key, of the keys under a prefix or of
 * a whole table (key ignored); returns once every shard concerned took the
 * subscription: each update acknowledged after that reaches fn. *id names
 * it for rh_gcs_unsubscribe. Not on the progress thread. */
rh_status_t rh_gcs_subscribe(int table, int kind, const void *key,
                             size_t klen, rh_gcs_sub_fn fn, void *arg,
                             uint32_t *id);
rh_status_t rh_gcs_unsubscribe(uint32_t id);

/* The shard of a key and the chain that holds it. */
uint32_t rh_gcs_shard_of(int table, const void *key, size_t klen);
/* The ranks of shard's chain now, head first (at most max): how many. */
int rh_gcs_chain(uint32_t shard, int *ranks, int max);
/* The configuration's epoch now. */
uint64_t rh_gcs_epoch(void);

/* Start-up, from the core: handlers first (before rh_init's exchange),
 * then the shard map once the ranks' nodes are known, before the progress
 * thread starts. node_of has size entries. */
rh_status_t rh_gcs_setup(void);
rh_status_t rh_gcs_start(int rank, int size, const int *node_of, int nnodes);
/* Once the progress thread runs: heartbeats start. */
rh_status_t rh_gcs_run(void);
/* At the end, once no rank sends GCS requests any more: frees the stores
 * (RAYHPC_GCS_DUMP prints them first). */
void rh_gcs_stop(void);

/* fn runs on the progress thread at each of this rank's GCS heartbeats
 * (every quarter of RAYHPC_FAILURE_TIMEOUT_MS, jobs of 2 ranks or more,
 * not while finalizing): the pace for records kept fresh in the GCS, such
 * as the node table's load. It must not block. NULL: none. */
typedef void (*rh_gcs_beat_fn)(void);
void rh_gcs_set_beat(rh_gcs_beat_fn fn);

/* Adds fn (once; up to 8) to what prints, at the end of rh_gcs_dump and
 * rh_gcs_snapshot, lines ("gcs ...") about the records this rank keeps in
 * the GCS, such as the actor table's: from any thread, so it must not
 * block nor call the GCS. It stays for the life of the process. */
typedef void (*rh_gcs_show_fn)(FILE *out);
void rh_gcs_set_show(rh_gcs_show_fn fn);

/* From rh_finalize once every rank arrived: no more failure detection
 * (ranks leave one by one now). */
void rh_gcs_quiesce(void);

/* Tests: from now on this rank drops every GCS message to or from a rank
 * on the other side of boundary (ranks below it, ranks at or above it). */
void rh_gcs_test_partition(int boundary);

/* Tests: while on, this rank, a master, ignores the membership messages
 * (heartbeats, votes) the others send it, as a master whose progress
 * thread starves would not see them: it comes to suspect them all, and no
 * proposal of its own gets a majority meanwhile. */
void rh_gcs_test_deaf(int on);

/* Tests: this rank ignores the membership messages of rank alone (-1:
 * nobody), as a master whose host starves that rank's heartbeats to it
 * only. */
void rh_gcs_test_deaf_to(int rank);

/* Tests: how many times another master refused this rank's proposal, as
 * one that drops a rank it still hears. */
int rh_gcs_test_refusals(void);

/* Tests: while on, this rank, the leader, keeps a rank that joins a chain
 * joining (it does not make it the tail), so that a test can change the
 * configuration mid-join. */
void rh_gcs_test_hold_joins(int on);

/* Tests: the rank joining shard's chain that told this rank, a master, it
 * holds the shard's state under the current epoch; -1: none. */
int rh_gcs_test_caught(uint32_t shard);

/* Tests: 1 when this rank, a master, suspects rank (silent, failed or
 * dropped), else 0. Progress thread's state read from another thread: a
 * test polls it until it holds. */
int rh_gcs_test_suspects(int rank);

/* Tests: the next operation this thread starts is failed (RH_ERR_NO_QUORUM)
 * once it is listed and before its first send, as one answered (to a
 * resend) or timed out while its sender was descheduled there: its done
 * runs before the start returns, and the owner may reuse op, key and value
 * in it. The write still leaves, with what was asked. */
void rh_gcs_test_fail_first(void);

/* Prints shards, chains, epoch and this rank's table sizes. */
void rh_gcs_dump(FILE *out);

/* The GCS's part of the job-state snapshot (src/obs/jobstate.c), from any
 * thread, one record a line:
 *   gcs epoch E shards N replicas R dead D
 *   gcs masters M1 M2 M3
 *   gcs chain S R1 R2 R3          (each shard, head first; then
 *                                  " (joining: J)" while rank J joins it)
 *   gcs replica S ROLE lsn L bytes B reads N subscriptions K node n
 *       function f actor a pgroup p object o job j test t
 *                                 (each shard whose chain holds this rank
 *                                  or that it joins; ROLE head, middle,
 *                                  tail or joining)
 *   gcs ...                       (what rh_gcs_set_show's fn prints)
 * Nothing while the GCS does not run. */
void rh_gcs_snapshot(FILE *out);

#endif
