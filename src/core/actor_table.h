/*
 * The owner's table of the actors it created: each one PENDING until its
 * creation task answers, then ALIVE on a rank, or DEAD with why; the holds
 * of every rank; the ranks waiting to hear where it is; its name. Nothing
 * else touches it; each change of an actor's state is also written to the
 * actor's record in the GCS (actor_record.h), for readers after a death.
 *
 * Every change that others must hear of fills an rh_atab_news_t; the
 * caller tells them (actor.c) after the call, outside the table's lock.
 */
#ifndef RH_CORE_ACTOR_TABLE_H
#define RH_CORE_ACTOR_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "rayhpc.h"

#define RH_ATAB_NAME_MAX 64

enum { RH_AT_PENDING = 0, RH_AT_ALIVE = 1, RH_AT_DEAD = 2, RH_AT_NONE = 3 };

typedef struct rh_atab_news {
    int       rank;        /* -2: nothing to tell; >= 0: alive there; -1:
                            * dead (why) */
    char      why[256];
    uint8_t  *askers;      /* ranks to tell (free it), NULL: none */
    int       end_rank;    /* >= 0: that rank ends the instance ... */
    int       end_kill;    /* ... killing it, or letting queued calls run */
    char      name[RH_ATAB_NAME_MAX];   /* a name to drop */
    int       restart;     /* run the creation again (a restart) */
    uint32_t  epoch;       /* with rank >= 0: the instance's restart count */
} rh_atab_news_t;

void rh_atab_news_init(rh_atab_news_t *n);

/* The table is for a job of size ranks; this rank is me. */
void rh_atab_init(int me, int size);

/* A new actor: PENDING, one hold of this rank, creation awaited;
 * max_restarts: restarts allowed after its rank dies or a kill that allows
 * them (-1: no limit). */
rh_status_t rh_atab_add(rh_actor_t a, int detached, const char *name,
                        int max_restarts);

/* Takes back an actor whose creation was refused (nothing to tell). */
void rh_atab_remove(rh_actor_t a);

/* The creation answered: rank >= 0 where it runs, or -1 and why. The
 * actor's place goes to *where; a kill or drop asked meanwhile, to tell
 * after it, to *death. */
void rh_atab_created(rh_actor_t a, int rank, const char *why,
                     rh_atab_news_t *where, rh_atab_news_t *death);

/* One hold more (+1) or less (-1) of rank: the last one dropped ends a
 * live, non-detached actor. A rank drops only holds it took. */
void rh_atab_hold(rh_actor_t a, int rank, int delta, rh_atab_news_t *n);

/* A kill: at once, or once it is created; a restart instead when
 * no_restart is 0 and restarts are left (once the instance ended). */
void rh_atab_kill(rh_actor_t a, int no_restart, rh_atab_news_t *n);

/* Its instance ended on rank. */
void rh_atab_ended(rh_actor_t a, int rank, const char *why,
                   rh_atab_news_t *n);

/* Where a is for asker: RH_AT_ALIVE (*rank, *epoch restarts), RH_AT_DEAD
 * or RH_AT_NONE (why), or RH_AT_PENDING (asker hears when it is known). */
int rh_atab_locate(rh_actor_t a, int asker, int *rank, uint32_t *epoch,
                   char *why, size_t len);

/* Whether the table has a. */
int rh_atab_has(rh_actor_t a);

/* A rank died: its holds go, the actors on it die or, with restarts left,
 * are created again (news with restart set); tell runs for each
 * actor with news (the lock is not held then). */
void rh_atab_rank_died(int rank,
                       void (*tell)(rh_actor_t a, rh_atab_news_t *n));

/* Frees the table. */
void rh_atab_clear(void);

#endif
