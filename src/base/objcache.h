/*
 * A cache of fixed-size objects: each thread keeps a magazine of free ones
 * (no lock, no allocation on get and put), and magazines trade batches
 * with a shared depot under a lock, a whole chain of RH_OBJCACHE_BATCH
 * objects at a time.
 * This is what keeps a task's submit -> run -> complete path off malloc
 * when one thread allocates and others free (a driver submitting tasks
 * that workers finish).
 *
 * Memory is type-stable: an object is handed back to malloc only by
 * rh_objcache_fini, and a free object's bytes past its first three words
 * (the cache's links) are left as they were. A lock-free reader may
 * therefore read atomics past those words in an object that was freed
 * under it (the future table does). The cache keeps at most the most
 * objects ever out at once, plus the magazines of the threads.
 */
#ifndef RH_BASE_OBJCACHE_H
#define RH_BASE_OBJCACHE_H

#include <pthread.h>
#include <stddef.h>

#define RH_OBJCACHE_MAX   11    /* caches in the process */
#define RH_OBJCACHE_BATCH 256   /* objects moved to or from the depot */

typedef struct rh_objcache {
    int             id;        /* index of this cache's magazines */
    size_t          size;      /* object size, at least a pointer */
    pthread_mutex_t lock;
    void           *depot;     /* free objects, linked through word 0 */
    size_t          depot_n;
} rh_objcache_t;

/* Sets up cache id (0 .. RH_OBJCACHE_MAX-1) for objects of size bytes. */
void rh_objcache_init(rh_objcache_t *c, int id, size_t size);

/* Frees the depot and the calling thread's magazine (threads that ended
 * gave theirs back when they ended). */
void rh_objcache_fini(rh_objcache_t *c);

/* The calling thread gives its magazines back now, not when it ends: a
 * detached thread calls it before it tells its waiter it is done, since a
 * thread's end (and the give-back it does then) may come after the waiter
 * already went on to rh_objcache_fini. */
void rh_objcache_thread_done(void);

void *rh_objcache_get(rh_objcache_t *c);
void rh_objcache_put(rh_objcache_t *c, void *obj);

#endif
