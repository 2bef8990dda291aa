/*
 * Tasks that run on another node (NODE_AFFINITY): the owner sends the task,
 * with the values of its arguments, to a rank of that node by active
 * message; that rank runs it like any task of its own and sends the returns
 * back, which complete the owner's futures.
 *
 * The owner keeps a list of tasks in flight per rank, so that the death of
 * the rank running them fails their futures with a message instead of
 * leaving their getters waiting.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/status.h"
#include "core/core.h"
#include "core/task_internal.h"
#include "plasma/store.h"
#include "transport/am.h"
#include "transport/transport.h"

typedef struct rh_fwd_submit {
    uint64_t counter;          /* the owner's counter of the task */
    uint32_t nargs;
    uint32_t nreturns;
    char     name[RH_FN_NAME_MAX];
} rh_fwd_submit_t;

typedef struct rh_fwd_done {
    uint64_t counter;
    uint32_t nreturns;
    uint32_t reserved;
} rh_fwd_done_t;

/* Each argument and each return on the wire: a length, then the bytes. A
 * return's state comes first (RH_FUTURE_READY, or FAILED with a message). */
typedef struct rh_fwd_item {
    uint32_t state;
    uint32_t reserved;
    uint64_t len;
} rh_fwd_item_t;

typedef struct rh_inflight {
    uint64_t counter;
    int      nreturns;
    int      rank;
    char     name[RH_FN_NAME_MAX];
} rh_inflight_t;

static pthread_mutex_t rh_fwd_lock = PTHREAD_MUTEX_INITIALIZER;
static rh_inflight_t *rh_fwd_list;
static size_t rh_fwd_n, rh_fwd_cap;

/* ---- tasks in flight ------------------------------------------------------ */

static int rh_inflight_add(const rh_task_t *t)
{
    pthread_mutex_lock(&rh_fwd_lock);
    if (rh_fwd_n == rh_fwd_cap) {
        size_t cap = rh_fwd_cap ? 2 * rh_fwd_cap : 64;
        rh_inflight_t *l = realloc(rh_fwd_list, cap * sizeof(*l));

        if (l == NULL) {
            pthread_mutex_unlock(&rh_fwd_lock);
            return -1;
        }
        rh_fwd_list = l;
        rh_fwd_cap = cap;
    }
    rh_fwd_list[rh_fwd_n].counter = t->block->counter;
    rh_fwd_list[rh_fwd_n].nreturns = t->nreturns;
    rh_fwd_list[rh_fwd_n].rank = t->forward_to;
    memcpy(rh_fwd_list[rh_fwd_n].name, t->fn->name, RH_FN_NAME_MAX);
    rh_fwd_n++;
    pthread_mutex_unlock(&rh_fwd_lock);
    return 0;
}

/* Takes the entry of counter off the list; 0 when it was not there. */
static int rh_inflight_take(uint64_t counter, int rank, rh_inflight_t *out)
{
    int found = 0;

    pthread_mutex_lock(&rh_fwd_lock);
    for (size_t i = 0; i < rh_fwd_n; i++) {
        if (rh_fwd_list[i].counter == counter && rh_fwd_list[i].rank == rank) {
            *out = rh_fwd_list[i];
            rh_fwd_list[i] = rh_fwd_list[--rh_fwd_n];
            found = 1;
            break;
        }
    }
    pthread_mutex_unlock(&rh_fwd_lock);
    return found;
}

static void rh_inflight_fail(const rh_inflight_t *e, const char *message)
{
    for (int i = 0; i < e->nreturns; i++) {
        rh_object_id_t id = rh_object_id_make((uint32_t)rh_rank(), e->counter,
                                              (uint32_t)i + 1);
        rh_future_t *f = rh_future_find(id);

        if (f != NULL) {
            rh_future_fail(f, message);
        }
    }
}

/* A rank died: every task it was running for us fails. */
static void rh_fwd_on_peer_failure(void *arg, int rank)
{
    (void)arg;
    for (;;) {
        rh_inflight_t e;
        char msg[256];
        int found = 0;

        pthread_mutex_lock(&rh_fwd_lock);
        for (size_t i = 0; i < rh_fwd_n; i++) {
            if (rh_fwd_list[i].rank == rank) {
                e = rh_fwd_list[i];
                rh_fwd_list[i] = rh_fwd_list[--rh_fwd_n];
                found = 1;
                break;
            }
        }
        pthread_mutex_unlock(&rh_fwd_lock);
        if (!found) {
            return;
        }
        snprintf(msg, sizeof(msg), "rank %d failed while running task %s "
                 "for rank %d", rank, e.name, rh_rank());
        rh_inflight_fail(&e, msg);
    }
}

/* ---- the owner sends -------------------------------------------------------- */

/* The value of argument i: inline bytes, an owned future's value, or a
 * store object of this node (pinned; *pinned says to release it). */
static int rh_fwd_arg(rh_task_slot_t *s, const void **data, size_t *len,
                      int *pinned)
{
    *pinned = 0;
    if (s->kind == RH_ARG_BYTES) {
        *data = s->data;
        *len = s->len;
        return 0;
    }
    if (s->fut != NULL) {
        *data = s->fut->data;
        *len = s->fut->len;
        return 0;
    }
    if (rh_store_get(rh_core_store(), s->id, data, len) != RH_OK) {
        return -1;
    }
    *pinned = 1;
    return 0;
}

static void rh_fwd_send_fail(rh_task_t *t, const char *message)
{
    rh_task_fail_all(t, message);
    rh_task_free(t);
}

void rh_forward_send(rh_task_t *t)
{
    rh_fwd_submit_t h;
    size_t total = 0, off = 0;
    uint8_t *payload;
    char msg[512];
    char *dep_error = atomic_load(&t->dep_error);
    rh_status_t status;

    if (dep_error != NULL) {
        rh_fwd_send_fail(t, dep_error);
        return;
    }
    for (int i = 0; i < t->nargs; i++) {
        const void *d;
        size_t l;
        int pinned;

        if (rh_fwd_arg(&t->slots[i], &d, &l, &pinned) != 0) {
            snprintf(msg, sizeof(msg), "task %s: argument %d is not in this "
                     "node's store", t->fn->name, i);
            rh_fwd_send_fail(t, msg);
            return;
        }
        if (pinned) {
            rh_store_release(rh_core_store(), t->slots[i].id);
        }
        total += sizeof(rh_fwd_item_t) + l;
    }
    payload = malloc(total ? total : 1);
    if (payload == NULL) {
        rh_fwd_send_fail(t, "out of memory sending a task");
        return;
    }
    for (int i = 0; i < t->nargs; i++) {
        rh_fwd_item_t item = { 0, 0, 0 };
        const void *d;
        size_t l;
        int pinned;

        if (rh_fwd_arg(&t->slots[i], &d, &l, &pinned) != 0) {
            free(payload);
            rh_fwd_send_fail(t, "an argument left the store");
            return;
        }
        item.len = l;
        memcpy(payload + off, &item, sizeof(item));
        if (l != 0) {
            memcpy(payload + off + sizeof(item), d, l);
        }
        off += sizeof(item) + l;
        if (pinned) {
            rh_store_release(rh_core_store(), t->slots[i].id);
        }
    }
    memset(&h, 0, sizeof(h));
    h.counter = t->block ? t->block->counter : 0;
    h.nargs = (uint32_t)t->nargs;
    h.nreturns = (uint32_t)t->nreturns;
    memcpy(h.name, t->fn->name, RH_FN_NAME_MAX);
    if (t->block != NULL && rh_inflight_add(t) != 0) {
        free(payload);
        rh_fwd_send_fail(t, "out of memory tracking a task");
        return;
    }
    status = rh_am_send((uint32_t)t->forward_to, RH_AM_ID_TASK_SUBMIT, &h,
                        sizeof(h), payload, total, NULL, NULL);
    free(payload);
    if (status != RH_OK) {
        rh_inflight_t e;

        snprintf(msg, sizeof(msg), "task %s could not be sent to rank %d: "
                 "%s", t->fn->name, t->forward_to, rh_last_error());
        if (t->block != NULL &&
            rh_inflight_take(t->block->counter, t->forward_to, &e)) {
            rh_inflight_fail(&e, msg);
        }
    }
    /* The returns stay with their futures; the task itself is done here. */
    t->nreturns = 0;
    rh_task_free(t);
}

/* ---- the runner: a task arrives ----------------------------------------------- */

typedef struct rh_fwd_reply {
    rh_waiter_t   *waiters;       /* one per return */
    int            origin;
    uint64_t       counter;
    int            n;
    _Atomic int    pending;
    rh_ref_t       rets[];
} rh_fwd_reply_t;

typedef struct rh_fwd_wait {
    rh_waiter_t     w;
    rh_fwd_reply_t *reply;
} rh_fwd_wait_t;

/* Every return is final: send them to the owner, then let them go. */
static void rh_fwd_reply_send(rh_fwd_reply_t *r)
{
    rh_fwd_done_t h = { r->counter, (uint32_t)r->n, 0 };
    size_t total = 0, off = 0;
    uint8_t *payload;

    for (int i = 0; i < r->n; i++) {
        rh_object_id_t id = { r->rets[i].hi, r->rets[i].lo };
        rh_future_t *f = rh_future_find(id);

        total += sizeof(rh_fwd_item_t);
        if (f != NULL) {
            total += atomic_load(&f->state) == RH_FUTURE_READY ? f->len :
                     strlen(f->message) + 1;
        }
    }
    payload = malloc(total ? total : 1);
    for (int i = 0; payload != NULL && i < r->n; i++) {
        rh_object_id_t id = { r->rets[i].hi, r->rets[i].lo };
        rh_future_t *f = rh_future_find(id);
        rh_fwd_item_t item = { RH_FUTURE_FAILED, 0, 0 };
        const void *d = NULL;

        if (f != NULL && atomic_load(&f->state) == RH_FUTURE_READY) {
            item.state = RH_FUTURE_READY;
            item.len = f->len;
            d = f->data;
        } else if (f != NULL) {
            item.len = strlen(f->message) + 1;
            d = f->message;
        }
        memcpy(payload + off, &item, sizeof(item));
        if (item.len != 0) {
            memcpy(payload + off + sizeof(item), d, item.len);
        }
        off += sizeof(item) + item.len;
    }
    if (payload == NULL ||
        rh_am_send((uint32_t)r->origin, RH_AM_ID_TASK_DONE, &h, sizeof(h),
                   payload, total, NULL, NULL) != RH_OK) {
        rh_debug("could not answer rank %d for its task %llu: %s", r->origin,
                 (unsigned long long)r->counter, rh_last_error());
    }
    free(payload);
    for (int i = 0; i < r->n; i++) {
        rh_release(r->rets[i]);
    }
    free(r->waiters);
    free(r);
}

static void rh_fwd_reply_wake(rh_waiter_t *w, int failed, const char *message)
{
    rh_fwd_reply_t *r = ((rh_fwd_wait_t *)w)->reply;

    (void)failed;
    (void)message;
    if (atomic_fetch_sub(&r->pending, 1) == 1) {
        rh_fwd_reply_send(r);
    }
}

/* Answers a task that will not run here: every return fails with msg. */
static void rh_fwd_refuse(int origin, const rh_fwd_submit_t *h,
                          const char *msg)
{
    rh_fwd_done_t d = { h->counter, h->nreturns, 0 };
    size_t one = sizeof(rh_fwd_item_t) + strlen(msg) + 1;
    uint8_t *p = malloc(one * (h->nreturns ? h->nreturns : 1));

    if (p == NULL) {
        return;
    }
    for (uint32_t i = 0; i < h->nreturns; i++) {
        rh_fwd_item_t item = { RH_FUTURE_FAILED, 0, strlen(msg) + 1 };

        memcpy(p + i * one, &item, sizeof(item));
        memcpy(p + i * one + sizeof(item), msg, item.len);
    }
    (void)rh_am_send((uint32_t)origin, RH_AM_ID_TASK_DONE, &d, sizeof(d), p,
                     one * h->nreturns, NULL, NULL);
    free(p);
}

/* Runs the task here and arranges the answer; on the progress thread. */
static void rh_fwd_run(int origin, const rh_fwd_submit_t *h,
                       const uint8_t *payload, size_t len)
{
    rh_arg_t *args = calloc(h->nargs ? h->nargs : 1, sizeof(*args));
    rh_fwd_reply_t *r = calloc(1, sizeof(*r) + h->nreturns * sizeof(rh_ref_t));
    rh_fwd_wait_t *waits = calloc(h->nreturns ? h->nreturns : 1,
                                  sizeof(*waits));
    rh_task_params_t params;
    size_t off = 0;
    rh_status_t status;

    if (args == NULL || r == NULL || waits == NULL) {
        free(args);
        free(r);
        free(waits);
        return;
    }
    for (uint32_t i = 0; i < h->nargs; i++) {
        rh_fwd_item_t item;

        memcpy(&item, payload + off, sizeof(item));
        args[i] = rh_arg_bytes(payload + off + sizeof(item), item.len);
        off += sizeof(item) + item.len;
    }
    r->origin = origin;
    r->counter = h->counter;
    r->n = (int)h->nreturns;
    r->waiters = (rh_waiter_t *)waits;
    atomic_store(&r->pending, r->n + 1);
    memset(&params, 0, sizeof(params));
    params.field_mask = RH_TASK_PARAM_FIELD_NUM_RETURNS;
    params.num_returns = (int)h->nreturns;
    status = rh_remote(h->name, args, (int)h->nargs, &params, r->rets);
    free(args);
    (void)len;
    if (status != RH_OK) {
        char msg[512];

        snprintf(msg, sizeof(msg), "rank %d could not run %s: %s", rh_rank(),
                 h->name, rh_last_error());
        rh_fwd_refuse(origin, h, msg);
        free(r);
        free(waits);
        return;
    }
    for (int i = 0; i < r->n; i++) {
        rh_object_id_t id = { r->rets[i].hi, r->rets[i].lo };
        rh_future_t *f = rh_future_find(id);

        waits[i].w.wake = rh_fwd_reply_wake;
        waits[i].reply = r;
        if (f == NULL || !rh_future_wait_add(f, &waits[i].w)) {
            atomic_fetch_sub(&r->pending, 1);
        }
    }
    /* Drop the count this function held: the answer may go right now. */
    if (atomic_fetch_sub(&r->pending, 1) == 1) {
        rh_fwd_reply_send(r);
    }
}

/* Checks that the items of a payload add up to its length. */
static int rh_fwd_items_ok(const uint8_t *p, size_t len, uint32_t n)
{
    size_t off = 0;

    for (uint32_t i = 0; i < n; i++) {
        rh_fwd_item_t item;

        if (len - off < sizeof(item)) {
            return 0;
        }
        memcpy(&item, p + off, sizeof(item));
        if (item.len > len - off - sizeof(item)) {
            return 0;
        }
        off += sizeof(item) + item.len;
    }
    return off == len;
}

static int rh_fwd_submit_ok(const rh_fwd_submit_t *h)
{
    return h->nreturns <= RH_MAX_RETURNS && h->nargs <= 65536 &&
           memchr(h->name, '\0', sizeof(h->name)) != NULL;
}

typedef struct rh_fwd_rndv {
    int             origin;
    rh_fwd_submit_t submit;
    rh_fwd_done_t   done;
    int             is_done;
    uint8_t        *buf;
    size_t          len;
} rh_fwd_rndv_t;

static void rh_fwd_done_apply(int src, const rh_fwd_done_t *h,
                              const uint8_t *p, size_t len);

static void rh_fwd_rndv_arrived(void *arg, rh_status_t status)
{
    rh_fwd_rndv_t *x = arg;

    if (status == RH_OK) {
        if (x->is_done) {
            if (rh_fwd_items_ok(x->buf, x->len, x->done.nreturns)) {
                rh_fwd_done_apply(x->origin, &x->done, x->buf, x->len);
            }
        } else if (rh_fwd_items_ok(x->buf, x->len, x->submit.nargs)) {
            rh_fwd_run(x->origin, &x->submit, x->buf, x->len);
        }
    }
    free(x->buf);
    free(x);
}

/* A large payload comes by rendezvous: fetch it, then handle it. */
static rh_status_t rh_fwd_fetch(rh_am_msg_t *msg, int is_done)
{
    rh_fwd_rndv_t *x = calloc(1, sizeof(*x));

    if (x == NULL || (x->buf = malloc(msg->data_len)) == NULL) {
        free(x);
        return RH_ERR_NO_MEMORY;
    }
    x->origin = (int)msg->src;
    x->is_done = is_done;
    x->len = msg->data_len;
    if (is_done) {
        memcpy(&x->done, msg->hdr, sizeof(x->done));
    } else {
        memcpy(&x->submit, msg->hdr, sizeof(x->submit));
    }
    return rh_am_recv_data(msg, x->buf, rh_fwd_rndv_arrived, x);
}

static rh_status_t rh_fwd_on_submit(void *arg, rh_am_msg_t *msg)
{
    rh_fwd_submit_t h;

    (void)arg;
    memcpy(&h, msg->hdr, sizeof(h));
    if (!rh_fwd_submit_ok(&h)) {
        return RH_ERR_MALFORMED;
    }
    if (rh_core_closing()) {
        char why[160];

        snprintf(why, sizeof(why), "rank %d was finalizing when task %s "
                 "arrived", rh_rank(), h.name);
        rh_fwd_refuse((int)msg->src, &h, why);
        return RH_OK;
    }
    if (msg->rndv_desc != NULL) {
        return rh_fwd_fetch(msg, 0);
    }
    if (!rh_fwd_items_ok(msg->data, msg->data_len, h.nargs)) {
        return RH_ERR_MALFORMED;
    }
    rh_fwd_run((int)msg->src, &h, msg->data, msg->data_len);
    return RH_OK;
}

/* ---- the owner: the answer arrives ----------------------------------------- */

static void rh_fwd_done_apply(int src, const rh_fwd_done_t *h,
                              const uint8_t *p, size_t len)
{
    rh_inflight_t e;
    size_t off = 0;

    (void)len;
    if (!rh_inflight_take(h->counter, src, &e) ||
        (uint32_t)e.nreturns != h->nreturns) {
        return;   /* failed already (its rank was declared dead), or bogus */
    }
    for (uint32_t i = 0; i < h->nreturns; i++) {
        rh_fwd_item_t item;
        rh_object_id_t id = rh_object_id_make((uint32_t)rh_rank(), h->counter,
                                              i + 1);
        rh_future_t *f = rh_future_find(id);
        const uint8_t *d;

        memcpy(&item, p + off, sizeof(item));
        d = p + off + sizeof(item);
        off += sizeof(item) + item.len;
        if (f == NULL) {
            continue;
        }
        if (item.state != RH_FUTURE_READY) {
            rh_future_fail(f, item.len ? (const char *)d : "task failed");
        } else if (item.len <= RH_FUTURE_INLINE) {
            rh_future_complete(f, d, item.len, 0);
        } else {
            void *obj;

            if (rh_store_create(rh_core_store(), id, item.len, &obj) ==
                RH_OK) {
                memcpy(obj, d, item.len);
                rh_store_seal(rh_core_store(), id);
                rh_future_complete(f, obj, item.len, 1);
            } else {
                rh_future_fail(f, rh_last_error());
            }
        }
    }
}

static rh_status_t rh_fwd_on_done(void *arg, rh_am_msg_t *msg)
{
    rh_fwd_done_t h;

    (void)arg;
    memcpy(&h, msg->hdr, sizeof(h));
    if (h.nreturns > RH_MAX_RETURNS) {
        return RH_ERR_MALFORMED;
    }
    if (msg->rndv_desc != NULL) {
        return rh_fwd_fetch(msg, 1);
    }
    if (!rh_fwd_items_ok(msg->data, msg->data_len, h.nreturns)) {
        return RH_ERR_MALFORMED;
    }
    rh_fwd_done_apply((int)msg->src, &h, msg->data, msg->data_len);
    return RH_OK;
}

rh_status_t rh_forward_setup(void)
{
    rh_status_t status;

    status = rh_am_register(RH_AM_ID_TASK_SUBMIT, sizeof(rh_fwd_submit_t),
                            sizeof(rh_fwd_submit_t), rh_fwd_on_submit, NULL);
    if (status == RH_OK) {
        status = rh_am_register(RH_AM_ID_TASK_DONE, sizeof(rh_fwd_done_t),
                                sizeof(rh_fwd_done_t), rh_fwd_on_done, NULL);
    }
    if (status == RH_OK) {
        status = rh_tp_on_peer_failure(rh_fwd_on_peer_failure, NULL);
    }
    return status;
}

void rh_forward_teardown(void)
{
    pthread_mutex_lock(&rh_fwd_lock);
    free(rh_fwd_list);
    rh_fwd_list = NULL;
    rh_fwd_n = rh_fwd_cap = 0;
    pthread_mutex_unlock(&rh_fwd_lock);
}
