/* Pub-sub inside src/gcs/: the records the chain carries and the hooks the
 * replicas call. */
#ifndef RH_GCS_GCS_PUBSUB_H
#define RH_GCS_GCS_PUBSUB_H

#include <stddef.h>
#include <stdint.h>

#include "gcs/gcs_store.h"

/* The key of a subscription's record in RH_GCS_T_SUB. */
typedef struct rh_gcs_sub_key {
    uint32_t rank;
    uint32_t id;
} rh_gcs_sub_key_t;

/* Its value; the key or prefix follows. */
typedef struct rh_gcs_sub_val {
    uint8_t  kind;      /* rh_gcs_sub_kind_t */
    uint8_t  table;
    uint16_t plen;
    uint32_t pad;
} rh_gcs_sub_val_t;

/* A match of a write: what the tail sends that subscriber. */
typedef struct rh_gcs_pub_match {
    uint32_t rank, id;
    uint64_t count;
} rh_gcs_pub_match_t;

/* Every replica, after it applied w to shard: keeps the subscriptions and
 * their counts. The tail (matches NULL) publishes; the others return the
 * matches (malloc'ed, *n of them; NULL when none) for a later tail. */
void rh_gcs_pub_applied(uint32_t shard, const rh_gcs_write_t *w,
                        const rh_gcs_result_t *res,
                        rh_gcs_pub_match_t **matches, uint32_t *n);

/* A new tail publishes what its predecessor may not have. */
void rh_gcs_pub_resend(uint32_t shard, const rh_gcs_write_t *w,
                       const rh_gcs_result_t *res,
                       const rh_gcs_pub_match_t *matches, uint32_t n);

/* Shard's subscriptions and their match counts, packed for a replica that
 * joins the chain (buf NULL: only the size; returns the bytes), and
 * unpacked there in place of its own. */
size_t rh_gcs_pub_pack(uint32_t shard, void *buf);
rh_status_t rh_gcs_pub_unpack(uint32_t shard, const void *buf, size_t len);

/* Subscriptions this rank holds for shard (dump). */
size_t rh_gcs_pub_count(uint32_t shard);

rh_status_t rh_gcs_pub_setup(void);
rh_status_t rh_gcs_pub_start(void);
void rh_gcs_pub_stop(void);

#endif
