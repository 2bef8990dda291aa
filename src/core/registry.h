/*
 * Remote functions by name: registered on every rank before rh_init, checked
 * against rank 0's table at start-up, looked up on each rh_remote.
 */
#ifndef RH_CORE_REGISTRY_H
#define RH_CORE_REGISTRY_H

#include <stddef.h>

#include "rayhpc.h"

#define RH_FN_NAME_MAX 64

typedef struct rh_fn_entry {
    char          name[RH_FN_NAME_MAX];
    rh_function_t fn;
    int           nargs;      /* -1: any */
    int           nreturns;
    unsigned      id;
} rh_fn_entry_t;

const rh_fn_entry_t *rh_registry_find(const char *name);

/* "name:nargs:nreturns\n" for every function, sorted by name: what a rank
 * publishes at start-up. Returns the length (without the NUL). */
size_t rh_registry_describe(char *buf, size_t len);

/* Compares this rank's table with another rank's description and reports
 * each difference; returns how many there were. */
int rh_registry_compare(const char *theirs, int their_rank);

#endif
