/*
 * Backend choice, and the singleton backend (a program started alone).
 */
#include "transport/bootstrap.h"

#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "transport/local_proto.h"

rh_bootstrap_kind_t rh_bootstrap_detect(const char **why)
{
    const char *dummy;

    why = why ? why : &dummy;
    if (getenv(RH_LOCAL_ENV_FD) != NULL) {
        *why = RH_LOCAL_ENV_FD " is set (started by rayhpc-run)";
        return RH_BOOTSTRAP_LOCAL;
    }
    if (getenv("PMIX_RANK") != NULL) {
        *why = "PMIX_RANK is set (srun --mpi=pmix or mpirun)";
        return RH_BOOTSTRAP_PMIX;
    }
#ifdef HAVE_MPI
    if (getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMI_SIZE") != NULL ||
        getenv("MPI_LOCALNRANKS") != NULL) {
        *why = "an MPI launcher's variables are set";
        return RH_BOOTSTRAP_MPI;
    }
#endif
    *why = "no launcher found: a one-rank job";
    return RH_BOOTSTRAP_SINGLETON;
}

const char *rh_bootstrap_builtin(void)
{
#ifdef HAVE_MPI
    return "pmix mpi local singleton";
#else
    return "pmix local singleton";
#endif
}

rh_status_t rh_bootstrap_open(rh_bootstrap_kind_t kind, rh_bootstrap_t *bs)
{
    memset(bs, 0, sizeof(*bs));
    if (kind == RH_BOOTSTRAP_AUTO) {
        kind = rh_bootstrap_detect(NULL);
    }
    switch (kind) {
    case RH_BOOTSTRAP_LOCAL:
        bs->ops = &rh_bootstrap_local_ops;
        break;
    case RH_BOOTSTRAP_PMIX:
        bs->ops = &rh_bootstrap_pmix_ops;
        break;
    case RH_BOOTSTRAP_MPI:
#ifdef HAVE_MPI
        bs->ops = &rh_bootstrap_mpi_ops;
        break;
#else
        return rh_error_set(RH_ERR_UNSUPPORTED, "RAYHPC_BOOTSTRAP=mpi, but "
                            "this librayhpc was built without MPI "
                            "(configure --with-mpi)");
#endif
    default:
        bs->ops = &rh_bootstrap_singleton_ops;
        break;
    }
    return bs->ops->init(bs);
}

/* ---- singleton ----------------------------------------------------------- */

static rh_status_t rh_singleton_init(rh_bootstrap_t *bs)
{
    bs->rank = 0;
    bs->size = 1;
    bs->local_size = 1;
    return RH_OK;
}

static rh_status_t rh_singleton_allgather(rh_bootstrap_t *bs,
                                          const void *blob, size_t len,
                                          rh_blob_set_t *out)
{
    uint32_t l = (uint32_t)len;
    uint8_t *data = malloc(sizeof(l) + len);

    (void)bs;
    if (data == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "bootstrap exchange");
    }
    memcpy(data, &l, sizeof(l));
    memcpy(data + sizeof(l), blob, len);
    return rh_blob_set_parse(out, data, sizeof(l) + len, 1);
}

static void rh_singleton_finalize(rh_bootstrap_t *bs)
{
    (void)bs;
}

static void rh_singleton_abort(rh_bootstrap_t *bs, int code, const char *msg)
{
    (void)bs;
    (void)msg;
    exit(code);
}

const rh_bootstrap_ops_t rh_bootstrap_singleton_ops = {
    "singleton", rh_singleton_init, rh_singleton_allgather,
    rh_singleton_finalize, rh_singleton_abort, NULL
};
