#include "base/objcache.h"

#include <stdlib.h>

typedef struct rh_magazine {
    rh_objcache_t *cache;
    void          *head;
    size_t         n;
} rh_magazine_t;

static _Thread_local rh_magazine_t rh_mags[RH_OBJCACHE_MAX];
static pthread_key_t rh_mag_key;
static pthread_once_t rh_mag_once = PTHREAD_ONCE_INIT;

static void **rh_next(void *obj)
{
    return (void **)obj;
}

/* Moves up to n objects from the front of *list to the front of *to. */
static size_t rh_move(void **list, void **to, size_t n)
{
    size_t moved = 0;

    while (moved < n && *list != NULL) {
        void *obj = *list;

        *list = *rh_next(obj);
        *rh_next(obj) = *to;
        *to = obj;
        moved++;
    }
    return moved;
}

static void rh_mag_flush(rh_magazine_t *m)
{
    rh_objcache_t *c = m->cache;

    if (c == NULL || m->n == 0) {
        return;
    }
    pthread_mutex_lock(&c->lock);
    c->depot_n += rh_move(&m->head, &c->depot, m->n);
    pthread_mutex_unlock(&c->lock);
    m->n = 0;
}

/* A thread that ends gives its magazines back to the depots. */
static void rh_mag_thread_exit(void *arg)
{
    (void)arg;
    for (int i = 0; i < RH_OBJCACHE_MAX; i++) {
        rh_mag_flush(&rh_mags[i]);
    }
}

static void rh_mag_key_init(void)
{
    pthread_key_create(&rh_mag_key, rh_mag_thread_exit);
}

void rh_objcache_init(rh_objcache_t *c, int id, size_t size)
{
    pthread_once(&rh_mag_once, rh_mag_key_init);
    c->id = id;
    c->size = size < sizeof(void *) ? sizeof(void *) : size;
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

        c->depot = *rh_next(obj);
        free(obj);
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
        m->head = NULL;
        m->n = 0;
        pthread_setspecific(rh_mag_key, (void *)1);
    }
    return m;
}

void *rh_objcache_get(rh_objcache_t *c)
{
    rh_magazine_t *m = rh_mag(c);
    void *obj;

    if (m->head == NULL) {
        pthread_mutex_lock(&c->lock);
        m->n = rh_move(&c->depot, &m->head, RH_OBJCACHE_BATCH);
        c->depot_n -= m->n;
        pthread_mutex_unlock(&c->lock);
        if (m->head == NULL) {
            return malloc(c->size);
        }
    }
    obj = m->head;
    m->head = *rh_next(obj);
    m->n--;
    return obj;
}

void rh_objcache_put(rh_objcache_t *c, void *obj)
{
    rh_magazine_t *m = rh_mag(c);

    *rh_next(obj) = m->head;
    m->head = obj;
    if (++m->n >= 2 * RH_OBJCACHE_BATCH) {
        pthread_mutex_lock(&c->lock);
        c->depot_n += rh_move(&m->head, &c->depot, RH_OBJCACHE_BATCH);
        pthread_mutex_unlock(&c->lock);
        m->n -= RH_OBJCACHE_BATCH;
    }
}
