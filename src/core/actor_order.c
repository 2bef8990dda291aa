#include "core/actor_order.h"

void rh_order_init(rh_order_t *o)
{
    o->next = 1;
    rh_hmap_init(&o->early, sizeof(uint64_t), sizeof(void *));
}

int rh_order_arrive(rh_order_t *o, uint64_t seq, void *item,
                    rh_order_run_fn run, void *arg)
{
    void **slot;
    int added;

    if (seq < o->next) {
        return -1;
    }
    if (seq > o->next) {
        slot = rh_hmap_put(&o->early, &seq, &added);
        if (slot == NULL) {
            return -2;
        }
        if (!added) {
            return -1;
        }
        *slot = item;
        return 0;
    }
    do {
        if (item != RH_ORDER_SKIP) {
            run(arg, item);
        }
        o->next++;
    } while (rh_hmap_del(&o->early, &o->next, &item));
    return 0;
}

void rh_order_start(rh_order_t *o, uint64_t first, rh_order_run_fn run,
                    void *arg)
{
    void *item;

    if (first <= o->next) {
        return;
    }
    o->next = first;
    while (rh_hmap_del(&o->early, &o->next, &item)) {
        if (item != RH_ORDER_SKIP) {
            run(arg, item);
        }
        o->next++;
    }
}

void rh_order_fini(rh_order_t *o, rh_order_run_fn drop, void *arg)
{
    void *item;

    while (rh_hmap_pop(&o->early, NULL, &item)) {
        if (item != RH_ORDER_SKIP && drop != NULL) {
            drop(arg, item);
        }
    }
    rh_hmap_fini(&o->early);
}
