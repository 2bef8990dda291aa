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
static rh_class_entry_t rh_classes[RH_ACTOR_CLASS_MAX];
static int rh_num_classes;
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

/* ---- actor classes ------------------------------------------------------ */

static int rh_name_ok(const char *name)
{
    return name != NULL && name[0] != '\0' && strlen(name) < RH_FN_NAME_MAX &&
           strpbrk(name, ":\n@.") == NULL;
}

rh_status_t rh_register_actor(const char *name, const rh_actor_class_t *cls)
{
    rh_class_entry_t *c;
    int nm;

    if (!rh_name_ok(name) || cls == NULL || cls->init == NULL ||
        cls->num_methods < 0 || cls->num_methods > RH_ACTOR_METHOD_MAX ||
        (cls->num_methods > 0 && cls->methods == NULL) ||
        cls->init_nargs < -1) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "rh_register_actor needs a "
                            "name of 1 to %d characters without ':', '.', "
                            "'@' or newlines, a class with a constructor, "
                            "init_nargs of -1 or more and 0 to %d methods",
                            RH_FN_NAME_MAX - 1, RH_ACTOR_METHOD_MAX);
    }
    if ((cls->field_mask & RH_ACTOR_CLASS_FIELD_FINI) && cls->fini == NULL) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "actor class %s: "
                            "RH_ACTOR_CLASS_FIELD_FINI without fini", name);
    }
    if ((cls->field_mask & RH_ACTOR_CLASS_FIELD_CHECKPOINT) &&
        (cls->save == NULL || cls->restore == NULL)) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "actor class %s: "
                            "RH_ACTOR_CLASS_FIELD_CHECKPOINT needs save and "
                            "restore", name);
    }
    if (rh_core_initialized()) {
        return rh_error_set(RH_ERR_ALREADY_INITIALIZED, "rh_register_actor(%s)"
                            " after rh_init: register every class on every "
                            "rank before rh_init", name);
    }
    if (rh_registry_find_class(name) != NULL) {
        return rh_error_set(RH_ERR_BUSY, "an actor class named %s is already "
                            "registered", name);
    }
    if (rh_num_classes == RH_ACTOR_CLASS_MAX) {
        return rh_error_set(RH_ERR_NO_MEMORY, "more than %d actor classes",
                            RH_ACTOR_CLASS_MAX);
    }
    nm = cls->num_methods;
    for (int i = 0; i < nm; i++) {
        const rh_method_def_t *d = &cls->methods[i];

        if (!rh_name_ok(d->name) || d->fn == NULL || d->nargs < -1 ||
            d->nreturns < 0 || d->nreturns > 64 ||
            strlen(name) + 1 + strlen(d->name) >= RH_FN_NAME_MAX) {
            return rh_error_set(RH_ERR_INVALID_PARAM, "actor class %s: method "
                                "%d needs a name (class and method together "
                                "under %d characters), a function, nargs of "
                                "-1 or more and 0 to 64 returns", name, i,
                                RH_FN_NAME_MAX - 1);
        }
        for (int j = 0; j < i; j++) {
            if (strcmp(cls->methods[j].name, d->name) == 0) {
                return rh_error_set(RH_ERR_INVALID_PARAM, "actor class %s "
                                    "has two methods named %s", name,
                                    d->name);
            }
        }
    }
    c = &rh_classes[rh_num_classes];
    memset(c, 0, sizeof(*c));
    c->methods = calloc(nm > 0 ? (size_t)nm : 1, sizeof(*c->methods));
    if (c->methods == NULL) {
        return rh_error_set(RH_ERR_NO_MEMORY, "actor class %s", name);
    }
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->cls = *cls;
    c->cls.methods = NULL;
    if (!(cls->field_mask & RH_ACTOR_CLASS_FIELD_FINI)) {
        c->cls.fini = NULL;
    }
    if (!(cls->field_mask & RH_ACTOR_CLASS_FIELD_CHECKPOINT)) {
        c->cls.save = NULL;
        c->cls.restore = NULL;
    }
    c->nmethods = nm;
    for (int i = 0; i < nm; i++) {
        rh_fn_entry_t *e = &c->methods[i];

        snprintf(e->name, sizeof(e->name), "%s.%s", name,
                 cls->methods[i].name);
        e->method = cls->methods[i].fn;
        e->nargs = cls->methods[i].nargs;
        e->nreturns = cls->methods[i].nreturns;
    }
    c->id = (unsigned)rh_num_classes++;
    return RH_OK;
}

static int rh_class_cmp(const void *a, const void *b)
{
    return strcmp(((const rh_class_entry_t *)a)->name,
                  ((const rh_class_entry_t *)b)->name);
}

static int rh_method_cmp(const void *a, const void *b)
{
    return strcmp(((const rh_fn_entry_t *)a)->name,
                  ((const rh_fn_entry_t *)b)->name);
}

void rh_registry_freeze(void)
{
    qsort(rh_classes, (size_t)rh_num_classes, sizeof(rh_classes[0]),
          rh_class_cmp);
    for (int i = 0; i < rh_num_classes; i++) {
        rh_class_entry_t *c = &rh_classes[i];

        c->id = (unsigned)i;
        qsort(c->methods, (size_t)c->nmethods, sizeof(c->methods[0]),
              rh_method_cmp);
        for (int m = 0; m < c->nmethods; m++) {
            c->methods[m].id = (unsigned)m;
        }
    }
}

const rh_class_entry_t *rh_registry_find_class(const char *name)
{
    for (int i = 0; name != NULL && i < rh_num_classes; i++) {
        if (strcmp(rh_classes[i].name, name) == 0) {
            return &rh_classes[i];
        }
    }
    return NULL;
}

const rh_class_entry_t *rh_registry_class(unsigned id)
{
    return id < (unsigned)rh_num_classes ? &rh_classes[id] : NULL;
}

int rh_registry_method(const rh_class_entry_t *c, const char *method)
{
    size_t n = strlen(c->name);

    for (int m = 0; method != NULL && m < c->nmethods; m++) {
        if (strcmp(c->methods[m].name + n + 1, method) == 0) {
            return m;
        }
    }
    return -1;
}

/* Whether a description has the line "@name:...". */
static int rh_desc_has_class(const char *desc, const char *name)
{
    size_t n = strlen(name);

    for (const char *line = desc; line && *line;) {
        const char *end = strchr(line, '\n');

        if (line[0] == '@' && strncmp(line + 1, name, n) == 0 &&
            line[n + 1] == ':') {
            return 1;
        }
        line = end ? end + 1 : NULL;
    }
    return 0;
}

/* The class lines of another rank's description against ours: a class or
 * method they lack or we lack, or other counts. */
static int rh_registry_compare_classes(const char *theirs, int their_rank)
{
    int diffs = 0;

    for (const char *line = theirs; line && *line;) {
        const char *end = strchr(line, '\n');
        char name[RH_FN_NAME_MAX], *dot;
        int a, b;

        if (line[0] == '@' &&
            sscanf(line + 1, "%63[^:]:%d:%d", name, &a, &b) == 3) {
            dot = strchr(name, '.');
            if (dot == NULL) {
                const rh_class_entry_t *c = rh_registry_find_class(name);

                if (c == NULL) {
                    rh_error("actor class %s is registered on rank %d but "
                             "not on rank %d", name, their_rank, rh_rank());
                    diffs++;
                } else if (c->cls.init_nargs != a || c->nmethods != b) {
                    rh_error("actor class %s has a constructor of %d "
                             "arguments and %d methods on rank %d, but %d "
                             "and %d on rank %d", name, a, b, their_rank,
                             c->cls.init_nargs, c->nmethods, rh_rank());
                    diffs++;
                }
            } else {
                const rh_class_entry_t *c;
                int m;

                *dot = '\0';
                c = rh_registry_find_class(name);
                m = c ? rh_registry_method(c, dot + 1) : -1;
                if (c != NULL && m < 0) {
                    rh_error("actor class %s has a method %s on rank %d but "
                             "not on rank %d", name, dot + 1, their_rank,
                             rh_rank());
                    diffs++;
                } else if (c != NULL && (c->methods[m].nargs != a ||
                                         c->methods[m].nreturns != b)) {
                    rh_error("method %s.%s takes %d arguments and gives %d "
                             "returns on rank %d, but %d and %d on rank %d",
                             name, dot + 1, a, b, their_rank,
                             c->methods[m].nargs, c->methods[m].nreturns,
                             rh_rank());
                    diffs++;
                }
            }
        }
        line = end ? end + 1 : NULL;
    }
    for (int i = 0; i < rh_num_classes; i++) {
        if (!rh_desc_has_class(theirs, rh_classes[i].name)) {
            rh_error("actor class %s is registered on rank %d but not on "
                     "rank %d", rh_classes[i].name, rh_rank(), their_rank);
            diffs++;
        }
    }
    return diffs;
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
    for (int i = 0; i < rh_num_classes; i++) {
        const rh_class_entry_t *c = &rh_classes[i];
        int w = snprintf(buf ? buf + n : NULL, n < len ? len - n : 0,
                         "@%s:%d:%d\n", c->name, c->cls.init_nargs,
                         c->nmethods);

        n += (size_t)w;
        for (int m = 0; m < c->nmethods; m++) {
            w = snprintf(buf ? buf + n : NULL, n < len ? len - n : 0,
                         "@%s:%d:%d\n", c->methods[m].name,
                         c->methods[m].nargs, c->methods[m].nreturns);
            n += (size_t)w;
        }
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

        if (line[0] == '@') {
            line = end ? end + 1 : NULL;   /* classes: see below */
            continue;
        }
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
    return diffs + rh_registry_compare_classes(theirs, their_rank);
}

rh_status_t rh_registry_check_nargs(const char *what, int want, int nargs)
{
    if (nargs < 0) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "%s: nargs is %d, not a "
                            "count of arguments", what, nargs);
    }
    if (want >= 0 && nargs != want) {
        return rh_error_set(RH_ERR_BAD_ARG_COUNT, "%s takes %d argument%s, "
                            "got %d", what, want, want == 1 ? "" : "s",
                            nargs);
    }
    return RH_OK;
}
