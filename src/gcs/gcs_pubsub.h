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

/* Every replica, after it applied w to shard: keeps the subscriptions and
 * their counts; the tail (tail != 0) also publishes. */
void rh_gcs_pub_applied(uint32_t shard, const rh_gcs_write_t *w,
                        const rh_gcs_result_t *res, int tail);

/* Subscriptions this rank holds for shard (dump). */
size_t rh_gcs_pub_count(uint32_t shard);

rh_status_t rh_gcs_pub_setup(void);
rh_status_t rh_gcs_pub_start(void);
void rh_gcs_pub_stop(void);

#endif
