/*
 * Remote functions and actor classes by name: registered on every rank
 * before rh_init, checked against rank 0's table at start-up, looked up on
 * each rh_remote. Classes and their methods are numbered in name order when
 * rh_init freezes the table, so that equal tables give equal numbers on
 * every rank and the wire carries numbers, not names.
 */
#ifndef RH_CORE_REGISTRY_H
#define RH_CORE_REGISTRY_H

#include <stddef.h>

#include "rayhpc.h"

#define RH_FN_NAME_MAX 64

typedef struct rh_fn_entry {
    char          name[RH_FN_NAME_MAX];   /* a method's: "Class.method" */
    rh_function_t fn;
    rh_method_t   method;     /* set instead of fn for an actor's method */
    int           nargs;      /* -1: any */
    int           nreturns;
    unsigned      id;
} rh_fn_entry_t;

const rh_fn_entry_t *rh_registry_find(const char *name);

#define RH_ACTOR_CLASS_MAX   256
#define RH_ACTOR_METHOD_MAX  1024

typedef struct rh_class_entry {
    char             name[RH_FN_NAME_MAX];
    rh_actor_class_t cls;        /* cls.methods is not kept: see methods */
    int              nmethods;
    rh_fn_entry_t   *methods;    /* by name once frozen; index = number */
    unsigned         id;         /* its number once frozen */
} rh_class_entry_t;

/* Numbers the classes and their methods in name order; rh_init calls it
 * before it describes the table. */
void rh_registry_freeze(void);

/* The class registered as name, or numbered id (NULL when none). */
const rh_class_entry_t *rh_registry_find_class(const char *name);
const rh_class_entry_t *rh_registry_class(unsigned id);

/* The number of a class's method, -1 when it has none of that name. */
int rh_registry_method(const rh_class_entry_t *c, const char *method);

/* "name:nargs:nreturns\n" for every function, sorted by name, then
 * "@class:init_nargs:methods\n" for every class and "@class.method:nargs:
 * nreturns\n" for each of its methods: what a rank publishes at start-up.
 * Returns the length (without the NUL). */
size_t rh_registry_describe(char *buf, size_t len);

/* Compares this rank's table with another rank's description and reports
 * each difference; returns how many there were. */
int rh_registry_compare(const char *theirs, int their_rank);

/* nargs given for what (a function, a method, "the constructor of C")
 * that takes want (-1: any number): RH_ERR_INVALID_PARAM when negative,
 * RH_ERR_BAD_ARG_COUNT when it is not want, with a sentence. */
rh_status_t rh_registry_check_nargs(const char *what, int want, int nargs);

#endif
