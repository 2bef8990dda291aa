#include "base/objcache.h"

#include <stdlib.h>

/*
 * Free objects are linked through their first word into chains. A chain's
 * first object also holds, in its second and third words, the next chain
 * of the depot and the chain's length, so a whole chain moves between a
 * thread and the depot in O(1): the lock is held for two pointer writes,
 * and no object is touched on the way (each would be a cache miss when
 * another core freed it last).
 *
 * Each thread has two chains per cache: `cur`, which get and put work on,
 * and `prev`, a full one kept back so that a thread that alternates around
 * a chain boundary does not trade with the depot at every call.
 */

typedef struct rh_magazine {
    rh_objcache_t *cache;
    void          *cur, *prev;
    size_t         ncur, nprev;
} rh_magazine_t;

static _Thread_local rh_magazine_t rh_mags[RH_OBJCACHE_MAX];
static pthread_key_t rh_mag_key;
static pthread_once_t rh_mag_once = PTHREAD_ONCE_INIT;

static void **rh_word(void *obj, int i)
{
    return (void **)obj + i;
}

static void rh_depot_push(rh_objcache_t *c, void *chain, size_t n)
{
    *rh_word(chain, 2) = (void *)n;
    pthread_mutex_lock(&c->lock);
    *rh_word(chain, 1) = c->depot;
    c->depot = chain;
    c->depot_n += n;
    pthread_mutex_unlock(&c->lock);
}

/* A chain of the depot (NULL: none), its length in *n. */
static void *rh_depot_pop(rh_objcache_t *c, size_t *n)
{
    void *chain;

    pthread_mutex_lock(&c->lock);
    chain = c->depot;
    if (chain != NULL) {
        c->depot = *rh_word(chain, 1);
        *n = (size_t)*rh_word(chain, 2);
        c->depot_n -= *n;
    }
    pthread_mutex_unlock(&c->lock);
    return chain;
}

static void rh_mag_flush(rh_magazine_t *m)
{
    rh_objcache_t *c = m->cache;

    if (c == NULL) {
        return;
    }
    if (m->cur != NULL) {
        rh_depot_push(c, m->cur, m->ncur);
    }
    if (m->prev != NULL) {
        rh_depot_push(c, m->prev, m->nprev);
    }
    m->cur = m->prev = NULL;
    m->ncur = m->nprev = 0;
}

/* A thread that ends gives its magazines back to the depots. */
static void rh_mag_thread_exit(void *arg)
{
    (void)arg;
    for (int i = 0; i < RH_OBJCACHE_MAX; i++) {
        rh_mag_flush(&rh_mags[i]);
    }
}

void rh_objcache_thread_done(void)
{
    rh_mag_thread_exit(NULL);
}

static void rh_mag_key_init(void)
{
    pthread_key_create(&rh_mag_key, rh_mag_thread_exit);
}

void rh_objcache_init(rh_objcache_t *c, int id, size_t size)
{
    pthread_once(&rh_mag_once, rh_mag_key_init);
    c->id = id;
    c->size = size < 3 * sizeof(void *) ? 3 * sizeof(void *) : size;
    pthread_mutex_init(&c->lock, NULL);
    c->depot = NULL;
    c->depot_n = 0;
}

void rh_objcache_fini(rh_objcache_t *c)
{
    rh_magazine_t *m = &rh_mags[c->id];

    if (m->cache == c) {
        rh_mag_flush(m);
        m->cache = NULL;
    }
    while (c->depot != NULL) {
        void *obj = c->depot;

        c->depot = *rh_word(obj, 1);
        while (obj != NULL) {
            void *next = *rh_word(obj, 0);

            free(obj);
            obj = next;
        }
    }
    c->depot_n = 0;
    pthread_mutex_destroy(&c->lock);
}

static rh_magazine_t *rh_mag(rh_objcache_t *c)
{
    rh_magazine_t *m = &rh_mags[c->id];

    if (m->cache != c) {
        /* First use on this thread (or of a new cache in this slot). */
        m->cache = c;
        m->cur = m->prev = NULL;
        m->ncur = m->nprev = 0;
        pthread_setspecific(rh_mag_key, (void *)1);
    }
    return m;
}

void *rh_objcache_get(rh_objcache_t *c)
{
    rh_magazine_t *m = rh_mag(c);
    void *obj;

    if (m->cur == NULL) {
        if (m->prev != NULL) {
            m->cur = m->prev;
            m->ncur = m->nprev;
            m->prev = NULL;
            m->nprev = 0;
        } else if ((m->cur = rh_depot_pop(c, &m->ncur)) == NULL) {
            return malloc(c->size);
        }
    }
    obj = m->cur;
    m->cur = *rh_word(obj, 0);
    m->ncur--;
    /* The next object was most likely freed by another core (a progress
     * thread freeing send requests, a worker freeing tasks): reading its
     * link at the next get would be a cache miss on the caller's path.
     * Fetched now, for writing, it is here by then. */
    if (m->cur != NULL) {
        __builtin_prefetch(m->cur, 1, 3);
    }
    return obj;
}

void rh_objcache_put(rh_objcache_t *c, void *obj)
{
    rh_magazine_t *m = rh_mag(c);

    if (m->ncur >= RH_OBJCACHE_BATCH) {
        if (m->prev != NULL) {
            rh_depot_push(c, m->prev, m->nprev);
        }
        m->prev = m->cur;
        m->nprev = m->ncur;
        m->cur = NULL;
        m->ncur = 0;
    }
    *rh_word(obj, 0) = m->cur;
    m->cur = obj;
    m->ncur++;
}
