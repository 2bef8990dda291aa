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

/* looks_empty, which reads head only, agrees with the consumer's own view
 * whenever the consumer is between pops. */
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
