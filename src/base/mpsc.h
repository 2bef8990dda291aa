/*
 * Intrusive multi-producer single-consumer queue (Vyukov's design): push is
 * one atomic exchange and never blocks or allocates; only the consumer pops.
 * The stub node lives in the queue, so an empty queue needs no allocation.
 */
#ifndef RH_BASE_MPSC_H
#define RH_BASE_MPSC_H

#include <stdatomic.h>
#include <stddef.h>

typedef struct rh_mpsc_node {
    _Atomic(struct rh_mpsc_node *) next;
} rh_mpsc_node_t;

typedef struct rh_mpsc {
    _Atomic(rh_mpsc_node_t *) head;   /* producers push here */
    /* consumer pops here; written by the consumer alone (relaxed stores,
     * plain moves), atomic so that rh_mpsc_looks_empty may read it */
    _Atomic(rh_mpsc_node_t *) tail;
    rh_mpsc_node_t            stub;
} rh_mpsc_t;

static inline void rh_mpsc_init(rh_mpsc_t *q)
{
    atomic_store_explicit(&q->stub.next, NULL, memory_order_relaxed);
    atomic_store_explicit(&q->head, &q->stub, memory_order_relaxed);
    atomic_store_explicit(&q->tail, &q->stub, memory_order_relaxed);
}

static inline rh_mpsc_node_t *rh_mpsc_tail(rh_mpsc_t *q)
{
    return atomic_load_explicit(&q->tail, memory_order_relaxed);
}

static inline void rh_mpsc_push(rh_mpsc_t *q, rh_mpsc_node_t *node)
{
    rh_mpsc_node_t *prev;

    atomic_store_explicit(&node->next, NULL, memory_order_relaxed);
    /* seq_cst: a producer's push and the consumer's "going to sleep" check
     * (rh_mpsc_idle) must be totally ordered, see rh_tp_post. */
    prev = atomic_exchange_explicit(&q->head, node, memory_order_seq_cst);
    atomic_store_explicit(&prev->next, node, memory_order_release);
}

/* Whether the queue looks empty to the consumer (a push in flight may
 * still be invisible; the producer's wake-up covers that window). */
static inline int rh_mpsc_empty(rh_mpsc_t *q)
{
    return rh_mpsc_tail(q) == &q->stub &&
           atomic_load_explicit(&q->stub.next, memory_order_acquire) == NULL;
}

/* The consumer's last look before it sleeps: a seq_cst load of head pairs
 * with the seq_cst exchange in rh_mpsc_push, so either this sees the push or
 * the producer sees the consumer's sleeping flag (stored seq_cst before). */
static inline int rh_mpsc_idle(rh_mpsc_t *q)
{
    return rh_mpsc_tail(q) == &q->stub &&
           atomic_load_explicit(&q->head, memory_order_seq_cst) == &q->stub;
}

/* Any thread: whether the queue is empty. head alone does not say it: a
 * pop that takes the last node pushes the stub back behind it, and a push
 * whose exchange came just before that (its link not stored yet) leaves
 * head on the stub with that node and the one popped next still queued;
 * the consumer's tail is then still on that node. So: head (seq_cst, as
 * in rh_mpsc_idle) on the stub, then tail on the stub too. The consumer
 * moves tail before it pushes the stub, so a head read that sees that
 * push sees tail's move as well. */
static inline int rh_mpsc_looks_empty(rh_mpsc_t *q)
{
    if (atomic_load_explicit(&q->head, memory_order_seq_cst) != &q->stub) {
        return 0;
    }
    return atomic_load_explicit(&q->tail, memory_order_acquire) == &q->stub;
}

/* Returns the oldest node, or NULL when the queue is empty or a producer is
 * between its two steps (the node then shows up on a later pop). */
static inline rh_mpsc_node_t *rh_mpsc_pop(rh_mpsc_t *q)
{
    rh_mpsc_node_t *tail = rh_mpsc_tail(q);
    rh_mpsc_node_t *next = atomic_load_explicit(&tail->next,
                                                memory_order_acquire);

    if (tail == &q->stub) {
        if (next == NULL) {
            return NULL;
        }
        atomic_store_explicit(&q->tail, next, memory_order_relaxed);
        tail = next;
        next = atomic_load_explicit(&next->next, memory_order_acquire);
    }
    if (next != NULL) {
        atomic_store_explicit(&q->tail, next, memory_order_relaxed);
        return tail;
    }
    if (tail != atomic_load_explicit(&q->head, memory_order_acquire)) {
        return NULL;   /* a producer is mid-push */
    }
    rh_mpsc_push(q, &q->stub);
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (next != NULL) {
        atomic_store_explicit(&q->tail, next, memory_order_relaxed);
        return tail;
    }
    return NULL;   /* a push came between the look at head and the stub's */
}

#endif
