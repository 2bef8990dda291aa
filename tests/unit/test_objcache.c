/* The per-thread object cache: objects come back to whoever allocates,
 * across threads too, and nothing is lost when threads end. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/objcache.h"

#define N (4 * RH_OBJCACHE_BATCH + 7)   /* several chains, one partial */

static rh_objcache_t cache;
static void *objs[N];

static void setup(void)
{
    rh_objcache_init(&cache, 3, 64);
}

static void teardown(void)
{
    rh_objcache_fini(&cache);
}

/* Whether p is one of the n objects of set. */
static int is_one_of(void *p, void *const *set, int n)
{
    for (int i = 0; i < n; i++) {
        if (set[i] == p) {
            return 1;
        }
    }
    return 0;
}

TestSuite(objcache, .init = setup, .fini = teardown);

Test(objcache, an_object_put_back_is_the_next_one_got)
{
    void *a = rh_objcache_get(&cache), *b;

    cr_assert_not_null(a);
    rh_objcache_put(&cache, a);
    b = rh_objcache_get(&cache);
    cr_expect_eq(a, b);
    rh_objcache_put(&cache, b);
}

static void *put_all(void *arg)
{
    (void)arg;
    for (int i = 0; i < N; i++) {
        rh_objcache_put(&cache, objs[i]);
    }
    return NULL;   /* its magazine goes to the depot as it ends */
}

Test(objcache, objects_freed_by_another_thread_come_back_to_the_allocator)
{
    pthread_t th;

    for (int i = 0; i < N; i++) {
        objs[i] = rh_objcache_get(&cache);
        cr_assert_not_null(objs[i]);
        memset(objs[i], 0xab, 64);   /* every byte is the caller's */
    }
    cr_assert_eq(pthread_create(&th, NULL, put_all, NULL), 0);
    pthread_join(th, NULL);
    /* Every one of them is in the depot now: N gets take them all (none
     * is malloc'd anew), and none comes twice. */
    {
        static void *again[N];

        for (int i = 0; i < N; i++) {
            again[i] = rh_objcache_get(&cache);
            cr_assert(is_one_of(again[i], objs, N),
                      "get %d returned an object the other thread did not "
                      "give back", i);
            cr_assert(!is_one_of(again[i], again, i),
                      "get %d returned an object twice", i);
        }
        for (int i = 0; i < N; i++) {
            rh_objcache_put(&cache, again[i]);
        }
    }
}

Test(objcache, a_thread_that_keeps_many_trades_whole_chains)
{
    /* This thread alone: puts beyond two chains go to the depot and come
     * back; the order within the thread is last in, first out. */
    for (int i = 0; i < N; i++) {
        objs[i] = rh_objcache_get(&cache);
    }
    for (int i = 0; i < N; i++) {
        rh_objcache_put(&cache, objs[i]);
    }
    for (int i = N - 1; i >= N - RH_OBJCACHE_BATCH / 2; i--) {
        cr_expect_eq(rh_objcache_get(&cache), objs[i]);
    }
    for (int i = N - RH_OBJCACHE_BATCH / 2; i < N; i++) {
        rh_objcache_put(&cache, objs[i]);
    }
}

/* The future table reads objects that may have been freed under it: the
 * cache must leave their bytes past its three link words alone, and keep
 * their memory. */
Test(objcache, a_free_object_keeps_its_bytes_past_the_links)
{
    unsigned char *a = rh_objcache_get(&cache);

    cr_assert_not_null(a);
    for (int i = 0; i < 64; i++) {
        a[i] = (unsigned char)(0xa0 + i);
    }
    rh_objcache_put(&cache, a);
    for (int i = 3 * (int)sizeof(void *); i < 64; i++) {
        cr_expect_eq(a[i], (unsigned char)(0xa0 + i), "byte %d changed", i);
    }
    cr_expect_eq(rh_objcache_get(&cache), a);
    rh_objcache_put(&cache, a);
}

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static int done_phase;   /* 1: objects given back; 2: the thread may end */

static void *give_back_then_linger(void *arg)
{
    (void)arg;
    rh_objcache_put(&cache, rh_objcache_get(&cache));
    rh_objcache_thread_done();
    pthread_mutex_lock(&done_lock);
    done_phase = 1;
    pthread_cond_broadcast(&done_cond);
    while (done_phase != 2) {
        pthread_cond_wait(&done_cond, &done_lock);
    }
    pthread_mutex_unlock(&done_lock);
    return NULL;
}

/* A detached thread's end may come after its waiter went on: what it
 * gives back must be in the depot before it says it is done. */
Test(objcache, a_thread_done_gives_its_objects_back_before_it_ends)
{
    pthread_t th;
    size_t held;

    cr_assert_eq(pthread_create(&th, NULL, give_back_then_linger, NULL), 0);
    pthread_mutex_lock(&done_lock);
    while (done_phase != 1) {
        pthread_cond_wait(&done_cond, &done_lock);
    }
    pthread_mutex_unlock(&done_lock);
    pthread_mutex_lock(&cache.lock);
    held = cache.depot_n;
    pthread_mutex_unlock(&cache.lock);
    pthread_mutex_lock(&done_lock);
    done_phase = 2;
    pthread_cond_broadcast(&done_cond);
    pthread_mutex_unlock(&done_lock);
    pthread_join(th, NULL);
    cr_expect_eq(held, 1, "%zu objects in the depot while the thread lives",
                 held);
}
