/*
 * Bootstrap: how the ranks of a job find each other, once, at start-up.
 * Each backend learns rank and size and exchanges one blob per rank; after
 * that nothing goes through it again except its own teardown.
 */
#ifndef RH_TRANSPORT_BOOTSTRAP_H
#define RH_TRANSPORT_BOOTSTRAP_H

#include "base/config.h"
#include "rayhpc.h"
#include "transport/blob.h"

typedef struct rh_bootstrap rh_bootstrap_t;

typedef struct rh_bootstrap_ops {
    const char  *name;
    rh_status_t (*init)(rh_bootstrap_t *bs);
    /* Every rank's blob, in rank order. */
    rh_status_t (*allgather)(rh_bootstrap_t *bs, const void *blob, size_t len,
                             rh_blob_set_t *out);
    void        (*finalize)(rh_bootstrap_t *bs);
    /* Asks the launcher to stop the whole job (does not return if it can). */
    void        (*abort)(rh_bootstrap_t *bs, int code, const char *msg);
    /* Tells the launcher that the program is ending without rh_finalize
     * (NULL: the launcher has no way to hear it). */
    void        (*unfinished)(rh_bootstrap_t *bs);
} rh_bootstrap_ops_t;

struct rh_bootstrap {
    const rh_bootstrap_ops_t *ops;
    int                       rank, size;
    /* Ranks on this host, known before the exchange (the transport picks
     * how deaths are found from it); 0 when the backend cannot tell. */
    int                       local_size;
    void                     *priv;
};

extern const rh_bootstrap_ops_t rh_bootstrap_local_ops;
extern const rh_bootstrap_ops_t rh_bootstrap_pmix_ops;
extern const rh_bootstrap_ops_t rh_bootstrap_singleton_ops;
#ifdef HAVE_MPI
extern const rh_bootstrap_ops_t rh_bootstrap_mpi_ops;
#endif

/* The backend RAYHPC_BOOTSTRAP=auto would pick here, and why. */
rh_bootstrap_kind_t rh_bootstrap_detect(const char **why);

/* Starts the backend of kind (AUTO: detect). */
rh_status_t rh_bootstrap_open(rh_bootstrap_kind_t kind, rh_bootstrap_t *bs);

/* Names of the backends built into this library, space separated. */
const char *rh_bootstrap_builtin(void);

#endif
