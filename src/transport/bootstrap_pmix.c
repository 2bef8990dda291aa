/*
 * The `pmix` backend: under `srun --mpi=pmix` and Open MPI's mpirun. Each
 * rank puts its blob under one key, a collecting fence spreads them, and
 * every rank reads the others' (served locally after the fence).
 *
 * Under Slurm the rank leaves PMIx right after the exchange
 * (RAYHPC_PMIX_LEAVE): a client that dies while connected makes the PMIx
 * server report a lost connection, and Slurm's PMIx plugin answers any
 * such event by killing the whole step, even under `srun --no-kill
 * --kill-on-bad-exit=0` (one soak run in three lost its step so). A client
 * that finalized may die quietly, and nothing of ours uses PMIx after the
 * exchange; but PMIx 4.2 cannot serve MPI_Init after a finalize in the same
 * process, so a program that starts MPI after rh_init must stay (end).
 */
#include <pmix.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "base/status.h"
#include "transport/bootstrap.h"

#define RH_PMIX_KEY "rayhpc.blob"

typedef struct rh_pmix {
    pmix_proc_t self;
    int         finalized;
} rh_pmix_t;

static void rh_pmix_leave(rh_pmix_t *pm)
{
    if (!pm->finalized) {
        pm->finalized = 1;
        PMIx_Finalize(NULL, 0);
    }
}

/* Slurm names its PMIx namespaces slurm.pmix.JOB.STEP. */
static int rh_pmix_leaves_at_start(const rh_pmix_t *pm)
{
    switch (rh_cfg.pmix_leave) {
    case RH_PMIX_LEAVE_START:
        return 1;
    case RH_PMIX_LEAVE_END:
        return 0;
    default:
        return strncmp(pm->self.nspace, "slurm.pmix.", 11) == 0;
    }
}

static rh_status_t rh_pmix_error(pmix_status_t rc, const char *what)
{
    return rh_error_set(RH_ERR_BOOTSTRAP, "%s failed: %s", what,
                        PMIx_Error_string(rc));
}

static rh_status_t rh_pmix_init(rh_bootstrap_t *bs)
{
    rh_pmix_t *pm = calloc(1, sizeof(*pm));
    pmix_proc_t wild;
    pmix_value_t *val = NULL;
    pmix_status_t rc;

    if (pm == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "PMIx state");
    }
    rc = PMIx_Init(&pm->self, NULL, 0);
    if (rc != PMIX_SUCCESS) {
        free(pm);
        return rh_pmix_error(rc, "PMIx_Init (is this rank started by srun "
                             "--mpi=pmix or mpirun?)");
    }
    PMIX_LOAD_PROCID(&wild, pm->self.nspace, PMIX_RANK_WILDCARD);
    rc = PMIx_Get(&wild, PMIX_JOB_SIZE, NULL, 0, &val);
    if (rc != PMIX_SUCCESS) {
        PMIx_Finalize(NULL, 0);
        free(pm);
        return rh_pmix_error(rc, "PMIx_Get(" PMIX_JOB_SIZE ")");
    }
    bs->size = (int)val->data.uint32;
    bs->rank = (int)pm->self.rank;
    bs->priv = pm;
    PMIX_VALUE_RELEASE(val);
    /* Slurm's PMIx plugin and Open MPI both give it; without it the job
     * is taken to span hosts. */
    val = NULL;
    if (PMIx_Get(&wild, PMIX_LOCAL_SIZE, NULL, 0, &val) == PMIX_SUCCESS &&
        val->type == PMIX_UINT32) {
        bs->local_size = (int)val->data.uint32;
    }
    if (val != NULL) {
        PMIX_VALUE_RELEASE(val);
    }
    return RH_OK;
}

static rh_status_t rh_pmix_allgather(rh_bootstrap_t *bs, const void *blob,
                                     size_t len, rh_blob_set_t *out)
{
    rh_pmix_t *pm = bs->priv;
    pmix_value_t value;
    pmix_info_t info;
    bool collect = true;
    pmix_status_t rc;
    size_t total = 0, off = 0;
    pmix_value_t **vals;
    uint8_t *data;
    rh_status_t status = RH_OK;

    memset(&value, 0, sizeof(value));
    value.type = PMIX_BYTE_OBJECT;
    value.data.bo.bytes = (char *)blob;
    value.data.bo.size = len;
    rc = PMIx_Put(PMIX_GLOBAL, RH_PMIX_KEY, &value);
    if (rc == PMIX_SUCCESS) {
        rc = PMIx_Commit();
    }
    if (rc != PMIX_SUCCESS) {
        return rh_pmix_error(rc, "PMIx_Put/Commit");
    }
    PMIX_INFO_LOAD(&info, PMIX_COLLECT_DATA, &collect, PMIX_BOOL);
    rc = PMIx_Fence(NULL, 0, &info, 1);
    PMIX_INFO_DESTRUCT(&info);
    if (rc != PMIX_SUCCESS) {
        return rh_pmix_error(rc, "PMIx_Fence");
    }
    vals = calloc((size_t)bs->size, sizeof(*vals));
    if (vals == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "PMIx exchange");
    }
    for (int r = 0; r < bs->size; r++) {
        pmix_proc_t proc;

        PMIX_LOAD_PROCID(&proc, pm->self.nspace, (pmix_rank_t)r);
        rc = PMIx_Get(&proc, RH_PMIX_KEY, NULL, 0, &vals[r]);
        if (rc != PMIX_SUCCESS || vals[r]->type != PMIX_BYTE_OBJECT) {
            status = rc != PMIX_SUCCESS ? rh_pmix_error(rc, "PMIx_Get") :
                     rh_error_set(RH_ERR_BOOTSTRAP, "rank %d published a "
                                  "blob of the wrong type", r);
            goto out;
        }
        total += sizeof(uint32_t) + vals[r]->data.bo.size;
    }
    data = malloc(total ? total : 1);
    if (data == NULL) {
        status = rh_error_set(RH_ERR_NO_MEMORY, "PMIx exchange");
        goto out;
    }
    for (int r = 0; r < bs->size; r++) {
        uint32_t l = (uint32_t)vals[r]->data.bo.size;

        memcpy(data + off, &l, sizeof(l));
        memcpy(data + off + sizeof(l), vals[r]->data.bo.bytes, l);
        off += sizeof(l) + l;
    }
    status = rh_blob_set_parse(out, data, total, bs->size);
out:
    for (int r = 0; r < bs->size; r++) {
        if (vals[r] != NULL) {
            PMIX_VALUE_RELEASE(vals[r]);
        }
    }
    free(vals);
    if (status == RH_OK && rh_pmix_leaves_at_start(pm)) {
        rh_pmix_leave(pm);
    }
    return status;
}

static void rh_pmix_finalize(rh_bootstrap_t *bs)
{
    rh_pmix_leave(bs->priv);
    free(bs->priv);
    bs->priv = NULL;
}

/* Once the rank left PMIx the launcher is no longer ours to ask: the rank
 * only ends, and the others see it die. */
static void rh_pmix_abort(rh_bootstrap_t *bs, int code, const char *msg)
{
    rh_pmix_t *pm = bs->priv;

    if (pm != NULL && !pm->finalized) {
        PMIx_Abort(code, msg, NULL, 0);
    }
    _Exit(code ? code : 1);
}

const rh_bootstrap_ops_t rh_bootstrap_pmix_ops = {
    "pmix", rh_pmix_init, rh_pmix_allgather, rh_pmix_finalize, rh_pmix_abort,
    NULL
};
