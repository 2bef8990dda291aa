/* The op queue between threads and the progress thread. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/mpsc.h"

#define PRODUCERS 4
#define PER_PRODUCER 100000

typedef struct {
    rh_mpsc_node_t node;
    int            producer;
    int            seq;
} item_t;

static rh_mpsc_t queue;
static item_t *items;

static void *produce(void *arg)
{
    int p = (int)(intptr_t)arg;

    for (int i = 0; i < PER_PRODUCER; i++) {
        item_t *it = &items[p * PER_PRODUCER + i];

        it->producer = p;
        it->seq = i;
        rh_mpsc_push(&queue, &it->node);
    }
    return NULL;
}

Test(mpsc, empty_queue_pops_nothing)
{
    rh_mpsc_init(&queue);
    cr_expect(rh_mpsc_empty(&queue));
    cr_expect_null(rh_mpsc_pop(&queue));
}

Test(mpsc, single_thread_is_fifo)
{
    item_t a, b, c;

    rh_mpsc_init(&queue);
    rh_mpsc_push(&queue, &a.node);
    rh_mpsc_push(&queue, &b.node);
    cr_expect(!rh_mpsc_empty(&queue));
    cr_expect_eq(rh_mpsc_pop(&queue), &a.node);
    rh_mpsc_push(&queue, &c.node);
    cr_expect_eq(rh_mpsc_pop(&queue), &b.node);
    cr_expect_eq(rh_mpsc_pop(&queue), &c.node);
    cr_expect_null(rh_mpsc_pop(&queue));
    cr_expect(rh_mpsc_empty(&queue));
}

/* looks_empty agrees with the consumer's own view whenever the consumer is
 * between pops. */
Test(mpsc, looks_empty_agrees_with_the_consumer_between_pops)
{
    item_t it[3];

    rh_mpsc_init(&queue);
    cr_expect(rh_mpsc_looks_empty(&queue));
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i <= round; i++) {
            rh_mpsc_push(&queue, &it[i].node);
            cr_expect(!rh_mpsc_looks_empty(&queue));
        }
        for (int i = 0; i <= round; i++) {
            cr_expect(!rh_mpsc_looks_empty(&queue));
            cr_expect_eq(rh_mpsc_pop(&queue), &it[i].node);
        }
        cr_expect(rh_mpsc_looks_empty(&queue), "round %d", round);
        cr_expect(rh_mpsc_idle(&queue));
        cr_expect_null(rh_mpsc_pop(&queue));
    }
}

/* The interleaving that left head on the stub with nodes queued: the
 * consumer takes the last node's place (tail = t), sees head == t, and
 * before it pushes the stub back a producer exchanges head to n but has
 * not linked t to n yet. The pop cannot give t (its link is missing) and
 * nothing is lost, but the queue is not empty, and any thread asking must
 * hear so: the pool's worker slept on its inbox, the table of requests in
 * flight missed an entry, a sending thread overtook a queued request. */
Test(mpsc, a_push_racing_the_stubs_return_does_not_look_empty)
{
    item_t t, n;
    rh_mpsc_node_t *prev;

    rh_mpsc_init(&queue);
    rh_mpsc_push(&queue, &t.node);
    /* the pop's first steps: past the stub to t, t has no next, head is t */
    atomic_store_explicit(&queue.tail, &t.node, memory_order_relaxed);
    cr_assert_eq(atomic_load(&queue.head), &t.node);
    /* the producer's exchange, its link still to come */
    atomic_store_explicit(&n.node.next, NULL, memory_order_relaxed);
    prev = atomic_exchange(&queue.head, &n.node);
    cr_assert_eq(prev, &t.node);
    /* the pop goes on: the stub back behind what it took for the last */
    rh_mpsc_push(&queue, &queue.stub);
    cr_expect(!rh_mpsc_looks_empty(&queue), "t and n are queued");
    cr_expect(!rh_mpsc_idle(&queue));
    cr_expect_null(rh_mpsc_pop(&queue), "t's link is not there yet");
    cr_expect(!rh_mpsc_looks_empty(&queue));
    atomic_store_explicit(&prev->next, &n.node, memory_order_release);
    cr_expect_eq(rh_mpsc_pop(&queue), &t.node);
    cr_expect(!rh_mpsc_looks_empty(&queue));
    cr_expect_eq(rh_mpsc_pop(&queue), &n.node);
    cr_expect_null(rh_mpsc_pop(&queue));
    cr_expect(rh_mpsc_looks_empty(&queue));
    cr_expect(rh_mpsc_idle(&queue));
}

Test(mpsc, concurrent_producers_lose_nothing_and_keep_their_order)
{
    pthread_t t[PRODUCERS];
    int next[PRODUCERS] = {0};
    long popped = 0;

    items = calloc(PRODUCERS * PER_PRODUCER, sizeof(*items));
    rh_mpsc_init(&queue);
    for (int p = 0; p < PRODUCERS; p++) {
        pthread_create(&t[p], NULL, produce, (void *)(intptr_t)p);
    }
    while (popped < (long)PRODUCERS * PER_PRODUCER) {
        rh_mpsc_node_t *n = rh_mpsc_pop(&queue);
        item_t *it = (item_t *)n;

        if (n == NULL) {
            continue;
        }
        cr_assert_eq(it->seq, next[it->producer], "producer %d out of order",
                     it->producer);
        next[it->producer]++;
        popped++;
    }
    for (int p = 0; p < PRODUCERS; p++) {
        pthread_join(t[p], NULL);
    }
    cr_expect_null(rh_mpsc_pop(&queue));
    free(items);
}
