/*
 * The node table through the GCS: this rank's records, written without
 * blocking (gcs_record.h), its load refreshed at the GCS's heartbeat.
 */
#include "core/nodetab.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "core/core.h"
#include "gcs/gcs_record.h"
#include "sched/pool.h"
#include "sched/resources.h"

enum { RH_NT_RANK, RH_NT_NODE, RH_NT_LOAD, RH_NT_RECORDS };

static struct {
    rh_gcs_record_t *rec[RH_NT_RECORDS];   /* NULL: not ours, or none */
    uint64_t         beats;                /* progress thread only */
} rh_nt;

static rh_gcs_record_t *rh_nt_record(const char *fmt, int id)
{
    char key[64];
    int klen = snprintf(key, sizeof(key), fmt, id);
    rh_gcs_record_t *r = rh_gcs_record_new(RH_GCS_T_NODE, key,
                                           (size_t)klen);

    if (r == NULL) {
        rh_warn("node table: %s", rh_last_error());
    }
    return r;
}

static void rh_nt_set(rh_gcs_record_t *r, const char *text, size_t len)
{
    if (r != NULL && len > 0 && rh_gcs_record_set(r, text, len) != RH_OK) {
        rh_warn("node table: %s", rh_last_error());
    }
}

/* The GCS's heartbeat, on the progress thread. */
static void rh_nt_beat(void)
{
    rh_pool_t *pool = rh_core_pool();
    char res[512], text[640];
    int n;

    if (rh_nt.rec[RH_NT_LOAD] == NULL || pool == NULL || rh_core_closing()) {
        return;
    }
    rh_resources_format(res, sizeof(res));
    n = snprintf(text, sizeof(text), "rank %d beat %llu backlog %ld free %s",
                 rh_rank(), (unsigned long long)++rh_nt.beats,
                 rh_pool_backlog(pool), res);
    rh_nt_set(rh_nt.rec[RH_NT_LOAD], text,
              n > 0 && (size_t)n < sizeof(text) ? (size_t)n : 0);
}

void rh_nodetab_start(void)
{
    char host[128], res[512], text[1024];
    size_t k;
    int n;

    if (gethostname(host, sizeof(host)) != 0) {
        snprintf(host, sizeof(host), "unknown");
    }
    host[sizeof(host) - 1] = '\0';
    for (char *p = host; *p; p++) {
        if (*p == ' ') {
            *p = '_';   /* one word in the record */
        }
    }
    rh_nt.rec[RH_NT_RANK] = rh_nt_record("rank/%d", rh_rank());
    rh_nt.rec[RH_NT_LOAD] = rh_nt_record("load/%d", rh_rank());
    rh_resources_format_total(res, sizeof(res));
    n = snprintf(text, sizeof(text), "rank %d node %d host %s pid %d "
                 "resources %s", rh_rank(), rh_node_id(), host, (int)getpid(),
                 res);
    rh_nt_set(rh_nt.rec[RH_NT_RANK], text,
              n > 0 && (size_t)n < sizeof(text) ? (size_t)n : 0);
    if (rh_core_node_leader() == rh_rank()) {
        rh_nt.rec[RH_NT_NODE] = rh_nt_record("node/%d", rh_node_id());
        n = snprintf(text, sizeof(text), "node %d host %s ranks", rh_node_id(),
                     host);
        k = n > 0 ? (size_t)n : 0;
        for (int r = 0; r < rh_size() && k < sizeof(text); r++) {
            if (rh_core_node_of(r) == rh_node_id()) {
                k += (size_t)snprintf(text + k, sizeof(text) - k, " %d", r);
            }
        }
        rh_nt_set(rh_nt.rec[RH_NT_NODE], text,
                  k < sizeof(text) ? k : 0);
    }
    rh_gcs_set_beat(rh_nt_beat);
}

void rh_nodetab_stop(void)
{
    rh_gcs_set_beat(NULL);
    for (int i = 0; i < RH_NT_RECORDS; i++) {
        rh_gcs_record_drop(rh_nt.rec[i]);
        rh_nt.rec[i] = NULL;
    }
    rh_nt.beats = 0;
}

void rh_nodetab_counts(uint64_t *acked, uint64_t *sets)
{
    *acked = 0;
    *sets = 0;
    for (int i = 0; i < RH_NT_RECORDS; i++) {
        uint64_t a, s;

        if (rh_nt.rec[i] != NULL) {
            rh_gcs_record_counts(rh_nt.rec[i], &a, &s);
            *acked += a;
            *sets += s;
        }
    }
}
