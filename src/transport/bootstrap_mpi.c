/*
 * The `mpi` backend (built with --with-mpi): for sites whose launcher has no
 * PMIx. MPI_Allgather of the sizes, then MPI_Allgatherv of the blobs. When
 * the program initialized MPI itself, we use its MPI and leave finalizing it
 * to the program. Otherwise we start it (MPI_THREAD_FUNNELED) and
 * rh_finalize ends it, unless the program did first; MPI allows one init
 * per process, so the program then must not call MPI_Init again
 * (docs/mpi.md).
 */
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/status.h"
#include "transport/bootstrap.h"

typedef struct rh_mpi {
    int we_initialized;
} rh_mpi_t;

static rh_status_t rh_mpi_init(rh_bootstrap_t *bs)
{
    rh_mpi_t *mp = calloc(1, sizeof(*mp));
    int inited = 0, finalized = 0;
    MPI_Comm host;

    if (mp == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "MPI state");
    }
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (finalized) {
        free(mp);
        return rh_error_set(RH_ERR_BOOTSTRAP, "RAYHPC_BOOTSTRAP=mpi, but "
                            "the program already called MPI_Finalize (MPI "
                            "cannot start again): call rh_init before it");
    }
    if (!inited) {
        int provided = MPI_THREAD_SINGLE;

        /* FUNNELED, not SINGLE: this process runs our progress and worker
         * threads, though only the thread in rh_init/rh_finalize calls
         * MPI. */
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) !=
            MPI_SUCCESS) {
            free(mp);
            return rh_error_set(RH_ERR_BOOTSTRAP, "MPI_Init_thread failed");
        }
        mp->we_initialized = 1;
        rh_info("rh_init started MPI (MPI_THREAD_FUNNELED); rh_finalize "
                "ends it: do not call MPI_Init again");
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &bs->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &bs->size);
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0,
                            MPI_INFO_NULL, &host) == MPI_SUCCESS) {
        MPI_Comm_size(host, &bs->local_size);
        MPI_Comm_free(&host);
    }
    bs->priv = mp;
    return RH_OK;
}

static rh_status_t rh_mpi_allgather(rh_bootstrap_t *bs, const void *blob,
                                    size_t len, rh_blob_set_t *out)
{
    int n = bs->size, mine = (int)len;
    int *lens = calloc((size_t)n, sizeof(int));
    int *displs = calloc((size_t)n, sizeof(int));
    uint8_t *flat = NULL, *data = NULL;
    size_t total = 0, off = 0;
    rh_status_t status = RH_OK;

    if (lens == NULL || displs == NULL) {
        status = rh_error_set(RH_ERR_NO_MEMORY, "MPI exchange");
        goto out;
    }
    if (MPI_Allgather(&mine, 1, MPI_INT, lens, 1, MPI_INT, MPI_COMM_WORLD) !=
        MPI_SUCCESS) {
        status = rh_error_set(RH_ERR_BOOTSTRAP, "MPI_Allgather failed");
        goto out;
    }
    for (int r = 0; r < n; r++) {
        displs[r] = (int)total;
        total += (size_t)lens[r];
    }
    flat = malloc(total ? total : 1);
    data = malloc(total + (size_t)n * sizeof(uint32_t));
    if (flat == NULL || data == NULL) {
        status = rh_error_set(RH_ERR_NO_MEMORY, "MPI exchange");
        goto out;
    }
    if (MPI_Allgatherv(blob, mine, MPI_BYTE, flat, lens, displs, MPI_BYTE,
                       MPI_COMM_WORLD) != MPI_SUCCESS) {
        status = rh_error_set(RH_ERR_BOOTSTRAP, "MPI_Allgatherv failed");
        goto out;
    }
    for (int r = 0; r < n; r++) {
        uint32_t l = (uint32_t)lens[r];

        memcpy(data + off, &l, sizeof(l));
        memcpy(data + off + sizeof(l), flat + displs[r], l);
        off += sizeof(l) + l;
    }
    status = rh_blob_set_parse(out, data, off, n);
    data = NULL;   /* owned by out now */
out:
    free(data);
    free(flat);
    free(lens);
    free(displs);
    return status;
}

static void rh_mpi_finalize(rh_bootstrap_t *bs)
{
    rh_mpi_t *mp = bs->priv;
    int finalized = 0;

    /* The program may end MPI before rh_finalize, even one we started:
     * a second MPI_Finalize would abort the job. */
    MPI_Finalized(&finalized);
    if (mp != NULL && mp->we_initialized && !finalized) {
        MPI_Finalize();
    }
    free(mp);
    bs->priv = NULL;
}

static void rh_mpi_abort(rh_bootstrap_t *bs, int code, const char *msg)
{
    int finalized = 0;

    (void)bs;
    (void)msg;
    MPI_Finalized(&finalized);
    if (!finalized) {
        MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
    }
    _Exit(code ? code : 1);
}

const rh_bootstrap_ops_t rh_bootstrap_mpi_ops = {
    "mpi", rh_mpi_init, rh_mpi_allgather, rh_mpi_finalize, rh_mpi_abort,
    NULL
};
