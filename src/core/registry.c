#include "core/registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/status.h"
#include "core/core.h"

#define RH_FN_MAX 1024          /* functions per program */
#define RH_FN_BUCKETS 2048      /* open addressing, power of two */

static rh_fn_entry_t rh_fns[RH_FN_MAX];
static int rh_num_fns;
static int rh_fn_bucket[RH_FN_BUCKETS];   /* index + 1; 0 = empty */

static uint32_t rh_fn_hash(const char *s)
{
    uint32_t h = 2166136261u;

    while (*s) {
        h = (h ^ (uint8_t)*s++) * 16777619u;
    }
    return h;
}

const rh_fn_entry_t *rh_registry_find(const char *name)
{
    uint32_t b = rh_fn_hash(name) & (RH_FN_BUCKETS - 1);

    while (rh_fn_bucket[b] != 0) {
        const rh_fn_entry_t *e = &rh_fns[rh_fn_bucket[b] - 1];

        if (strcmp(e->name, name) == 0) {
            return e;
        }
        b = (b + 1) & (RH_FN_BUCKETS - 1);
    }
    return NULL;
}

rh_status_t rh_register(const char *name, rh_function_t fn, int nargs,
                        int nreturns)
{
    rh_fn_entry_t *e;
    uint32_t b;

    if (name == NULL || fn == NULL || name[0] == '\0' ||
        strlen(name) >= RH_FN_NAME_MAX || strpbrk(name, ":\n") != NULL) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_register needs a name "
                            "of 1 to %d characters without ':' or newlines, "
                            "and a function", RH_FN_NAME_MAX - 1);
    }
    if (nargs < -1 || nreturns < 0 || nreturns > 64) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_register(%s): nargs "
                            "must be -1 or more and nreturns 0 to 64", name);
    }
    if (rh_core_initialized()) {
        return rh_error_set(RH_ERR_ALREADY_INITIALIZED, "rh_register(%s) "
                            "after rh_init: register every function on every "
                            "rank before rh_init", name);
    }
    if (rh_registry_find(name) != NULL) {
        return rh_error_set(RH_ERR_BUSY, "a function named %s is already "
                            "registered", name);
    }
    if (rh_num_fns == RH_FN_MAX) {
        return rh_error_set(RH_ERR_NO_MEMORY, "more than %d functions",
                            RH_FN_MAX);
    }
    e = &rh_fns[rh_num_fns];
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->fn = fn;
    e->nargs = nargs;
    e->nreturns = nreturns;
    e->id = (unsigned)rh_num_fns;
    b = rh_fn_hash(name) & (RH_FN_BUCKETS - 1);
    while (rh_fn_bucket[b] != 0) {
        b = (b + 1) & (RH_FN_BUCKETS - 1);
    }
    rh_fn_bucket[b] = ++rh_num_fns;
    return RH_OK;
}

static int rh_fn_cmp(const void *a, const void *b)
{
    return strcmp((*(const rh_fn_entry_t *const *)a)->name,
                  (*(const rh_fn_entry_t *const *)b)->name);
}

size_t rh_registry_describe(char *buf, size_t len)
{
    const rh_fn_entry_t *sorted[RH_FN_MAX];
    size_t n = 0;

    for (int i = 0; i < rh_num_fns; i++) {
        sorted[i] = &rh_fns[i];
    }
    qsort(sorted, (size_t)rh_num_fns, sizeof(sorted[0]), rh_fn_cmp);
    if (len > 0) {
        buf[0] = '\0';
    }
    for (int i = 0; i < rh_num_fns; i++) {
        int w = snprintf(buf ? buf + n : NULL, n < len ? len - n : 0,
                         "%s:%d:%d\n", sorted[i]->name, sorted[i]->nargs,
                         sorted[i]->nreturns);

        n += (size_t)w;
    }
    return n;
}

/* Whether a description has a line for name. */
static int rh_desc_has(const char *desc, const char *name)
{
    size_t n = strlen(name);

    for (const char *line = desc; line && *line;) {
        const char *end = strchr(line, '\n');

        if (strncmp(line, name, n) == 0 && line[n] == ':') {
            return 1;
        }
        line = end ? end + 1 : NULL;
    }
    return 0;
}

int rh_registry_compare(const char *theirs, int their_rank)
{
    int diffs = 0, seen = 0;
    const char *line = theirs;

    while (line && *line) {
        char name[RH_FN_NAME_MAX];
        int nargs, nreturns;
        const rh_fn_entry_t *e;
        const char *end = strchr(line, '\n');

        if (sscanf(line, "%63[^:]:%d:%d", name, &nargs, &nreturns) == 3) {
            e = rh_registry_find(name);
            if (e == NULL) {
                rh_error("function %s is registered on rank %d but not on "
                         "rank %d", name, their_rank, rh_rank());
                diffs++;
            } else {
                seen++;
                if (e->nargs != nargs || e->nreturns != nreturns) {
                    rh_error("function %s takes %d arguments and gives %d "
                             "returns on rank %d, but %d and %d on rank %d",
                             name, nargs, nreturns, their_rank, e->nargs,
                             e->nreturns, rh_rank());
                    diffs++;
                }
            }
        }
        line = end ? end + 1 : NULL;
    }
    if (seen < rh_num_fns) {
        for (int i = 0; i < rh_num_fns; i++) {
            if (!rh_desc_has(theirs, rh_fns[i].name)) {
                rh_error("function %s is registered on rank %d but not on "
                         "rank %d", rh_fns[i].name, rh_rank(), their_rank);
                diffs++;
            }
        }
    }
    return diffs;
}
