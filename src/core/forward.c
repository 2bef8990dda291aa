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
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/status.h"
#include "base/config.h"
#include "core/core.h"
#include "core/directory.h"
#include "core/actor_resend.h"
#include "core/admit.h"
#include "core/borrow.h"
#include "core/inflight.h"
#include "core/lineage.h"
#include "core/placement.h"
#include "core/task_internal.h"
#include "plasma/store.h"
#include "transport/am.h"
#include "transport/transport.h"

typedef struct rh_fwd_submit {
    uint64_t counter;          /* the owner's counter of the task */
    uint32_t nargs;
    uint32_t nreturns;
    int32_t  num_cpus;         /* what it holds while it runs ... */
    uint32_t res_len;          /* ... and the custom resources: the payload
                                * starts with "name=amount,...\0" */
    uint32_t flags;            /* RH_FWD_PLACED, RH_FWD_COUNTED */
    uint32_t place;            /* its strategy (rh_place_pack): kept with
                                * its lineage for its reruns */
    char     name[RH_FN_NAME_MAX];
} rh_fwd_submit_t;

/* What lineage keeps of the header: all but the task's name, which the
 * registry keeps (its entry's name is the spec's name): 32 bytes of a spec
 * instead of 96, in every entry of a stream. */
#define RH_FWD_KEPT_HDR offsetof(rh_fwd_submit_t, name)

/* The global scheduler chose the runner: it counts the task as on its way
 * there until the runner's heartbeat says it arrived. */
#define RH_FWD_PLACED 1u
/* Its resources are counted also when they are one CPU alone
 * (RH_TASK_FLAG_COUNTED: an actor keeps them). */
#define RH_FWD_COUNTED 2u

typedef struct rh_fwd_done {
    uint64_t counter;
    uint32_t nreturns;
    uint32_t flags;      /* RH_FWD_DONE_* */
} rh_fwd_done_t;

/* An actor's call the instance ended before running: nothing of it ran,
 * so a caller that keeps it (max_task_retries) may send it again to the
 * restarted instance. */
#define RH_FWD_DONE_UNRUN 1u

/* Each argument and each return on the wire: a kind, a length, then the
 * bytes. An argument is its value (small ones) or its ref (16 bytes: the
 * runner pulls it); a return is its value (RH_FUTURE_READY), a message
 * (RH_FUTURE_FAILED), or its length only: it stays in the runner's node
 * store under the owner's id and is pulled from there when wanted. */
enum {
    RH_FWD_ARG_VALUE     = 0,
    RH_FWD_ARG_REF       = 8,
    RH_FWD_RET_THERE     = 9,
    RH_FWD_ARG_REF_VALUE = 10   /* a small ref's value: its id, then bytes */
};

typedef struct rh_fwd_item {
    uint32_t state;
    uint32_t reserved;
    uint64_t len;
} rh_fwd_item_t;

static _Atomic uint64_t rh_fwd_sent;

uint64_t rh_forward_count(void)
{
    return atomic_load_explicit(&rh_fwd_sent, memory_order_relaxed);
}

/* ---- tasks in flight ------------------------------------------------------ */

/* The task is over for us: let go of the objects it used. */
static void rh_inflight_release(rh_inflight_t *e)
{
    for (int i = 0; i < e->nheld; i++) {
        rh_future_unhold(e->held[i]);
    }
    for (int i = 0; i < e->nborrowed; i++) {
        rh_borrow_drop(e->borrowed[i]);
    }
    free(e->held);
    free(e->borrowed);
    e->held = NULL;
    e->borrowed = NULL;
    e->nheld = e->nborrowed = 0;
    if (e->admitted) {
        rh_admit_release();
        e->admitted = 0;
    }
}

/* Moves the borrows of its arguments owned elsewhere from the task into
 * *ids, likewise. */
static int rh_inflight_take_borrows(rh_task_t *t, rh_object_id_t **ids)
{
    int n = 0;

    *ids = NULL;
    for (int i = 0; i < t->nargs; i++) {
        n += t->slots[i].borrowed;
    }
    if (n == 0) {
        return 0;
    }
    *ids = malloc((size_t)n * sizeof(**ids));
    if (*ids == NULL) {
        return -1;
    }
    n = 0;
    for (int i = 0; i < t->nargs; i++) {
        if (t->slots[i].borrowed) {
            (*ids)[n++] = t->slots[i].id;
            t->slots[i].borrowed = 0;
        }
    }
    return n;
}

/* Moves the holds of the owned arguments sent by ref from the task into
 * *held, so that they outlive it until the answer. */
static int rh_inflight_take_holds(rh_task_t *t, rh_future_t ***held)
{
    int n = 0;

    *held = NULL;
    for (int i = 0; i < t->nargs; i++) {
        rh_task_slot_t *s = &t->slots[i];

        if (s->fut != NULL && (rh_future_remote(s->fut) ||
                               s->fut->len >= rh_cfg.inline_max)) {
            n++;
        }
    }
    if (n == 0) {
        return 0;
    }
    *held = malloc((size_t)n * sizeof(**held));
    if (*held == NULL) {
        return -1;
    }
    n = 0;
    for (int i = 0; i < t->nargs; i++) {
        rh_task_slot_t *s = &t->slots[i];

        if (s->fut != NULL && (rh_future_remote(s->fut) ||
                               s->fut->len >= rh_cfg.inline_max)) {
            (*held)[n++] = s->fut;
            s->fut = NULL;
        }
    }
    return n;
}

/* The key of a forwarded task: its counter, or for a task without returns
 * (no counter) one of our own, from the top half of the key space. */
static uint64_t rh_fwd_key(const rh_task_t *t)
{
    static _Atomic uint64_t next = 1;

    if (t->block != NULL) {
        return t->block->counter;
    }
    return atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) |
           1ull << 63;
}

static int rh_inflight_add(rh_task_t *t, uint64_t key, int kept)
{
    rh_inflight_t e;

    e.admitted = 0;
    e.nheld = rh_inflight_take_holds(t, &e.held);
    if (e.nheld < 0) {
        return -1;
    }
    e.nborrowed = rh_inflight_take_borrows(t, &e.borrowed);
    if (e.nborrowed < 0) {
        e.nborrowed = 0;
        rh_inflight_release(&e);
        return -1;
    }
    e.counter = key;
    e.is_call = t->is_call;
    e.kept = kept;
    e.nreturns = t->nreturns;
    e.rank = t->forward_to;
    e.name = t->fn->name;
    e.admitted = t->admitted;   /* the place goes with the entry */
    if (rh_inflight_put(&e) != 0) {
        e.admitted = 0;
        rh_inflight_release(&e);
        return -1;
    }
    t->admitted = 0;
    return 0;
}

static void rh_inflight_fail(const rh_inflight_t *e, const char *message)
{
    for (int i = 0; i < e->nreturns; i++) {
        rh_object_id_t id = rh_object_id_make((uint32_t)rh_rank(), e->counter,
                                              (uint32_t)i + 1);
        rh_future_t *f = rh_future_find_hold(id);

        if (f != NULL) {
            rh_future_fail_status(f, e->is_call ? RH_ERR_ACTOR_DEAD :
                                  RH_ERR_TASK_FAILED, message);
            rh_future_unhold(f);
        }
    }
    if (!e->is_call) {
        rh_lineage_ran(e->counter, e->nreturns);
    }
}

/* A rank died: every task it was running for us fails. */
static void rh_fwd_on_peer_failure(void *arg, int rank)
{
    rh_inflight_t e;

    (void)arg;
    while (rh_inflight_take_rank(rank, &e)) {
        char msg[256];

        if (e.is_call && e.kept && rh_actor_call_lost(e.counter, rank, &e)) {
            continue;   /* sent again to the restarted actor */
        } else if (e.is_call) {
            snprintf(msg, sizeof(msg), "the actor running %s on rank %d "
                     "died: rank %d failed", e.name, rank, rank);
        } else if (rh_lineage_retry(e.counter, rank, 0, &e.held, &e.nheld,
                                    &e.borrowed, &e.nborrowed, msg,
                                    sizeof(msg))) {
            rh_inflight_release(&e);   /* it runs again elsewhere */
            continue;
        } else if (msg[0] == '\0') {
            snprintf(msg, sizeof(msg), "rank %d failed while running task "
                     "%s for rank %d", rank, e.name, rh_rank());
        }
        rh_inflight_fail(&e, msg);
        rh_inflight_release(&e);
    }
    /* What it held the last copy of is rebuilt from its lineage. */
    rh_lineage_peer_failed(rank);
}

/* A task's or a call's message was lost on its way (its rank failed, or
 * the send failed): it never arrived, so its futures fail, naming the rank
 * and why. Returns 0 when they had failed already (its rank was declared
 * dead). */
static int rh_fwd_fail_lost(uint64_t counter, uint32_t dest,
                            rh_status_t status)
{
    rh_inflight_t e;
    char msg[512];

    if (!rh_inflight_take(counter, (int)dest, &e)) {
        return 0;
    }
    if (e.kept && !rh_rank_alive((int)dest) &&
        rh_actor_call_lost(counter, (int)dest, &e)) {
        return 1;   /* sent again to the restarted actor */
    }
    if (!e.is_call && status != RH_ERR_SHUTDOWN &&
        rh_lineage_retry(counter, (int)dest, 0, &e.held, &e.nheld,
                         &e.borrowed, &e.nborrowed, msg, sizeof(msg))) {
        rh_inflight_release(&e);
        return 1;
    }
    snprintf(msg, sizeof(msg), "%s %s could not be sent to rank %u: %s",
             e.is_call ? "the call of" : "task", e.name, dest,
             status == RH_ERR_PEER_FAILED ? "the rank failed" :
             rh_status_string(status));
    if (e.nreturns == 0) {
        rh_warn("%s", msg);   /* no future to carry it */
    }
    rh_inflight_fail(&e, msg);
    rh_inflight_release(&e);
    return 1;
}

static void rh_fwd_submit_lost(void *arg, uint32_t dest, const void *hdr,
                               size_t hdr_len, const void *data, size_t len,
                               rh_status_t status)
{
    rh_fwd_submit_t h;

    (void)arg;
    (void)hdr_len;
    (void)data;
    (void)len;
    memcpy(&h, hdr, sizeof(h));
    (void)rh_fwd_fail_lost(h.counter, dest, status);
}

static void rh_fwd_call_lost(void *arg, uint32_t dest, const void *hdr,
                             size_t hdr_len, const void *data, size_t len,
                             rh_status_t status)
{
    rh_call_hdr_t h;

    (void)arg;
    (void)hdr_len;
    (void)data;
    (void)len;
    memcpy(&h, hdr, sizeof(h));
    if (rh_fwd_fail_lost(h.counter, dest, status)) {
        /* The actor must not wait for its number: the calls behind it
         * run. */
        rh_actor_call_skip((int)dest, h.actor_hi, h.actor_lo, h.seq);
    }
}

/* ---- the owner sends -------------------------------------------------------- */

/* How argument s travels: its value (inline bytes, an owned future's small
 * value, or a small object of this node's store, pinned: *pinned says to
 * release it) or, when large or elsewhere, its ref (*kind). */
static void rh_fwd_arg(rh_task_slot_t *s, uint32_t *kind, const void **data,
                       size_t *len, int *pinned)
{
    size_t max = rh_cfg.inline_max;

    *pinned = 0;
    *kind = RH_FWD_ARG_VALUE;
    if (s->kind == RH_ARG_BYTES) {
        if (s->id.hi != 0 || s->id.lo != 0) {
            *kind = RH_FWD_ARG_REF_VALUE;   /* came as a ref: stays one */
        }
        *data = s->data;
        *len = s->len;
        return;
    }
    *kind = RH_FWD_ARG_REF_VALUE;   /* the runner can still hand it on */
    if (s->fut != NULL && !rh_future_remote(s->fut) && !s->fut->in_store &&
        s->fut->len < max) {
        *data = s->fut->data;
        *len = s->fut->len;
        return;
    }
    /* in the store: pinned, since it may be spilled (and read back) */
    if ((s->fut == NULL || s->fut->in_store) &&
        rh_store_get(rh_core_store(), s->id, data, len) == RH_OK) {
        if (*len < max) {
            *pinned = 1;
            return;
        }
        rh_store_release(rh_core_store(), s->id);
    }
    *kind = RH_FWD_ARG_REF;
    *data = &s->id;
    *len = sizeof(s->id);
}

static void rh_fwd_send_fail(rh_task_t *t, const char *message)
{
    if (t->is_call && t->call_kept != NULL && !rh_actor_call_skipped(t) &&
        t->forward_to >= 0) {
        /* its number will never come */
        rh_actor_call_skip(t->forward_to, t->actor.hi, t->actor.lo,
                           t->call_seq);
    }
    rh_task_fail_all(t, message);
    rh_task_free(t);
}

/* The custom resources of req as "name=amount,..." (empty: none). */
static void rh_fwd_res_format(const rh_res_req_t *req, char *buf, size_t len)
{
    size_t n = 0;

    buf[0] = '\0';
    for (int i = 0; req != NULL && i < req->n && n < len; i++) {
        char amount[32];

        /* as the user wrote it: the receiver parses it again (GPU=0.5) */
        rh_resources_amount_str(req->items[i].name, req->items[i].amount,
                                amount, sizeof(amount));
        n += (size_t)snprintf(buf + n, len - n, "%s%s=%s", i ? "," : "",
                              req->items[i].name, amount);
    }
}

rh_status_t rh_forward_req_of(const void *hdr, size_t hdr_len,
                              const void *payload, size_t len,
                              rh_res_req_t *req, uint32_t *place)
{
    rh_fwd_submit_t h;
    const char *p = payload;

    if (hdr_len != RH_FWD_KEPT_HDR) {
        return rh_error_set(RH_ERR_MALFORMED, "not a task's header");
    }
    memcpy(&h, hdr, RH_FWD_KEPT_HDR);
    *place = h.place;
    if (h.res_len > len || (h.res_len != 0 && p[h.res_len - 1] != '\0')) {
        return rh_error_set(RH_ERR_MALFORMED, "a task's resources cannot be "
                            "read");
    }
    return rh_resources_parse(h.res_len != 0 ? p : NULL, h.num_cpus, req);
}

/* Payloads up to this size are built on the stack: rh_am_send copies them
 * into its request anyway. */
#define RH_FWD_SMALL 256
_Static_assert(sizeof(size_t) == sizeof(uint64_t), "lengths go as 64 bits");

static void rh_fwd_buf_free(uint8_t *buf, const uint8_t *small)
{
    if (buf != small) {
        free(buf);
    }
}

/* Keeps the spec of t, sent as h and payload, as lineage, with the
 * objects it takes by ref (those sent as refs: the others travel inside
 * the payload). */
static void rh_fwd_record(rh_task_t *t, const rh_fwd_submit_t *h,
                          const uint8_t *payload, size_t total,
                          size_t res_len)
{
    rh_object_id_t few_owned[16], *owned = few_owned;
    rh_object_id_t few_ids[16], *borrowed = few_ids;
    int nowned = 0, nborrowed = 0;
    size_t off = res_len;

    if (t->nargs > 16) {
        owned = malloc((size_t)t->nargs * sizeof(*owned));
        borrowed = malloc((size_t)t->nargs * sizeof(*borrowed));
        if (owned == NULL || borrowed == NULL) {
            free(owned);
            free(borrowed);
            return;   /* no lineage: its objects cannot be rebuilt */
        }
    }
    for (int i = 0; i < t->nargs; i++) {
        rh_fwd_item_t item;

        memcpy(&item, payload + off, sizeof(item));
        off += sizeof(item) + item.len;
        if (item.state != RH_FWD_ARG_REF) {
            continue;
        }
        if (t->slots[i].fut != NULL) {
            owned[nowned++] = t->slots[i].id;
        } else if (t->slots[i].borrowed) {
            borrowed[nborrowed++] = t->slots[i].id;
        }
    }
    rh_lineage_record(t->block, t->fn->name, t->nreturns, t->max_retries,
                      t->retry_exceptions, t->forward_to, t->pg, t->pg_bundle,
                      h, RH_FWD_KEPT_HDR, payload, total, owned, nowned,
                      borrowed, nborrowed);
    if (owned != few_owned) {
        free(owned);
        free(borrowed);
    }
}

void rh_forward_resend(int dest, const char *name, const void *hdr,
                       size_t hdr_len, const void *payload, size_t len,
                       rh_future_t **held, int nheld,
                       rh_object_id_t *borrowed, int nborrowed)
{
    rh_fwd_submit_t h;
    const rh_fn_entry_t *fn;
    rh_inflight_t e;
    rh_status_t status;

    memset(&h, 0, sizeof(h));
    memcpy(&h, hdr, hdr_len < RH_FWD_KEPT_HDR ? hdr_len : RH_FWD_KEPT_HDR);
    snprintf(h.name, sizeof(h.name), "%s", name);
    h.flags &= ~RH_FWD_PLACED;   /* not the global scheduler's any more */
    fn = rh_registry_find(h.name);
    memset(&e, 0, sizeof(e));
    e.counter = h.counter;
    e.nreturns = (int)h.nreturns;
    e.rank = dest;
    e.name = fn != NULL ? fn->name : "?";
    e.held = held;
    e.nheld = nheld;
    e.borrowed = borrowed;
    e.nborrowed = nborrowed;
    if (rh_inflight_put(&e) != 0) {
        rh_inflight_fail(&e, "out of memory running a lost task again");
        rh_inflight_release(&e);
        return;
    }
    status = rh_am_send((uint32_t)dest, RH_AM_ID_TASK_SUBMIT, &h, sizeof(h),
                        payload, len, NULL, NULL);
    if (status != RH_OK) {
        (void)rh_fwd_fail_lost(h.counter, (uint32_t)dest, status);
    }
    atomic_fetch_add_explicit(&rh_fwd_sent, 1, memory_order_relaxed);
}

void rh_forward_send(rh_task_t *t)
{
    rh_fwd_submit_t h;
    rh_call_hdr_t ch;
    char spec[RH_RES_MAX * (RH_RES_NAME_MAX + 24)];
    size_t total = 0, off = 0, res_len;
    uint8_t *payload, small[RH_FWD_SMALL];
    char msg[512];
    char *dep_error = atomic_load(&t->dep_error);
    rh_status_t status;
    int kept = 0;

    if (dep_error != NULL) {
        rh_fwd_send_fail(t, dep_error);
        return;
    }
    for (int i = 0; i < t->nargs; i++) {
        const void *d;
        size_t l;
        uint32_t kind;
        int pinned;

        rh_fwd_arg(&t->slots[i], &kind, &d, &l, &pinned);
        if (pinned) {
            rh_store_release(rh_core_store(), t->slots[i].id);
        }
        total += sizeof(rh_fwd_item_t) + l +
                 (kind == RH_FWD_ARG_REF_VALUE ? sizeof(rh_object_id_t) : 0);
    }
    rh_fwd_res_format(t->is_call ? NULL : t->res, spec, sizeof(spec));
    res_len = spec[0] ? strlen(spec) + 1 : 0;
    total += res_len;
    payload = total <= sizeof(small) ? small : malloc(total);
    if (payload == NULL) {
        rh_fwd_send_fail(t, "out of memory sending a task");
        return;
    }
    memcpy(payload, spec, res_len);
    off = res_len;
    for (int i = 0; i < t->nargs; i++) {
        rh_fwd_item_t item = { 0, 0, 0 };
        const void *d;
        size_t l;
        int pinned;

        rh_fwd_arg(&t->slots[i], &item.state, &d, &l, &pinned);
        item.len = l;
        if (item.state == RH_FWD_ARG_REF_VALUE) {
            memcpy(payload + off + sizeof(item), &t->slots[i].id,
                   sizeof(rh_object_id_t));
            item.len += sizeof(rh_object_id_t);
        }
        memcpy(payload + off, &item, sizeof(item));
        if (l != 0) {
            memcpy(payload + off + sizeof(item) + item.len - l, d, l);
        }
        off += sizeof(item) + item.len;
        if (pinned) {
            rh_store_release(rh_core_store(), t->slots[i].id);
        }
    }
    if (off != total) {
        /* A small object became large between the two looks: impossible
         * for immutable objects, unless one was deleted and recreated. */
        rh_fwd_buf_free(payload, small);
        rh_fwd_send_fail(t, "an argument changed while the task was sent");
        return;
    }
    memset(&h, 0, sizeof(h));
    h.counter = rh_fwd_key(t);
    h.nargs = (uint32_t)t->nargs;
    h.nreturns = (uint32_t)t->nreturns;
    h.num_cpus = t->res != NULL ? t->res->cpus : 1;
    h.res_len = (uint32_t)res_len;
    h.flags = (t->gs_placed ? RH_FWD_PLACED : 0) |
              (t->res != NULL ? RH_FWD_COUNTED : 0);
    h.place = t->place;
    memcpy(h.name, t->fn->name, RH_FN_NAME_MAX);
    if (t->block != NULL && !t->is_call && t->max_retries != 0) {
        rh_fwd_record(t, &h, payload, total, res_len);
    }
    if (rh_unlikely(t->is_call && t->call_kept != NULL)) {
        kept = rh_actor_call_keep(t, h.counter, payload, total);
    }
    /* Tracked even without returns: the objects it takes by ref stay until
     * it ran, and its runner's death is noticed. */
    if (rh_inflight_add(t, h.counter, kept != 0) != 0) {
        rh_fwd_buf_free(payload, small);
        rh_fwd_send_fail(t, "out of memory tracking a task");
        return;
    }
    if (rh_unlikely(kept == 2)) {
        /* Its actor's new place is not known yet: sent from there. */
        rh_inflight_t e;

        if (rh_inflight_take(h.counter, t->forward_to, &e) &&
            !rh_actor_call_lost(h.counter, t->forward_to, &e)) {
            rh_inflight_fail(&e, "a call to a restarting actor was lost");
            rh_inflight_release(&e);
        }
        rh_fwd_buf_free(payload, small);
        t->nreturns = 0;
        rh_task_free(t);
        return;
    }
    if (t->is_call) {
        /* An actor's call: the same payload behind its own header. */
        memset(&ch, 0, sizeof(ch));
        ch.actor_hi = t->actor.hi;
        ch.actor_lo = t->actor.lo;
        ch.counter = h.counter;
        ch.seq = t->call_seq;
        ch.method = t->call_method;
        ch.nargs = h.nargs;
        ch.nreturns = h.nreturns;
        ch.epoch = t->call_epoch;
        status = rh_am_send((uint32_t)t->forward_to, RH_AM_ID_ACTOR_CALL,
                            &ch, sizeof(ch), payload, total, NULL, NULL);
    } else {
        status = rh_am_send((uint32_t)t->forward_to, RH_AM_ID_TASK_SUBMIT,
                            &h, sizeof(h), payload, total, NULL, NULL);
    }
    rh_fwd_buf_free(payload, small);
    if (status != RH_OK) {
        rh_inflight_t e;

        snprintf(msg, sizeof(msg), "task %s could not be sent to rank %d: "
                 "%s", t->fn->name, t->forward_to, rh_last_error());
        if (status != RH_ERR_SHUTDOWN && !t->is_call &&
            rh_inflight_take(h.counter, t->forward_to, &e)) {
            /* Its rank died before it got there: it runs elsewhere. */
            if (!rh_lineage_retry(h.counter, t->forward_to, 0, &e.held,
                                  &e.nheld, &e.borrowed, &e.nborrowed, msg,
                                  sizeof(msg))) {
                rh_inflight_fail(&e, msg[0] ? msg : "task lost with its "
                                 "rank");
            }
            rh_inflight_release(&e);
        } else if (rh_inflight_take(h.counter, t->forward_to, &e) &&
                   !(e.kept && !rh_rank_alive(t->forward_to) &&
                     rh_actor_call_lost(h.counter, t->forward_to, &e))) {
            rh_inflight_fail(&e, msg);
            rh_inflight_release(&e);
        }
    }
    atomic_fetch_add_explicit(&rh_fwd_sent, 1, memory_order_relaxed);
    /* The returns stay with their futures; the task itself is done here. */
    t->nreturns = 0;
    rh_task_free(t);
}

rh_status_t rh_forward_call_resend(int dest, rh_actor_t a, uint64_t counter,
                                   uint64_t seq, uint32_t epoch,
                                   uint32_t method, uint32_t nargs,
                                   const void *payload, size_t len,
                                   rh_inflight_t *e)
{
    rh_call_hdr_t ch;
    rh_inflight_t back;
    rh_status_t status;

    e->counter = counter;
    e->rank = dest;
    e->is_call = 1;
    e->kept = 1;
    if (rh_inflight_put(e) != 0) {
        return rh_error_set(RH_ERR_NO_MEMORY, "out of memory sending the "
                            "call of %s again", e->name);
    }
    memset(&ch, 0, sizeof(ch));
    ch.actor_hi = a.hi;
    ch.actor_lo = a.lo;
    ch.counter = counter;
    ch.seq = seq;
    ch.method = method;
    ch.nargs = nargs;
    ch.nreturns = (uint32_t)e->nreturns;
    ch.epoch = epoch;
    status = rh_am_send((uint32_t)dest, RH_AM_ID_ACTOR_CALL, &ch, sizeof(ch),
                        payload, len, NULL, NULL);
    if (status != RH_OK) {
        if (rh_inflight_take(counter, dest, &back)) {
            *e = back;
        } else {
            status = RH_OK;   /* its rank's death took it: handled there */
        }
    }
    atomic_fetch_add_explicit(&rh_fwd_sent, 1, memory_order_relaxed);
    return status;
}

void rh_forward_call_fail(rh_inflight_t *e, const char *msg)
{
    rh_inflight_fail(e, msg);
    rh_inflight_release(e);
}

/* ---- the runner: a task arrives ----------------------------------------------- */

/* Sends the answer of task counter to origin: n returns, each its value,
 * its length only (RH_FWD_RET_THERE: it stays in our store under the
 * owner's id), or, with message, every one failed with it. */
static void rh_fwd_answer_send(uint32_t origin, uint64_t counter, int n,
                               const rh_task_ret_t *rets, const char *message,
                               rh_status_t status, uint32_t flags)
{
    rh_fwd_done_t h = { counter, (uint32_t)n, flags };
    size_t total = 0, off = 0;
    uint8_t *payload, small[RH_FWD_SMALL];

    for (int i = 0; i < n; i++) {
        total += sizeof(rh_fwd_item_t) +
                 (message != NULL ? strlen(message) + 1 :
                  rets[i].data == NULL ? sizeof(uint64_t) : rets[i].len);
    }
    payload = total <= sizeof(small) ? small : malloc(total);
    for (int i = 0; payload != NULL && i < n; i++) {
        rh_fwd_item_t item = { RH_FUTURE_READY, 0, 0 };
        const void *d;

        if (message != NULL) {
            item.state = RH_FUTURE_FAILED;
            item.reserved = (uint32_t)(status != RH_OK ? status :
                                       RH_ERR_TASK_FAILED);
            item.len = strlen(message) + 1;
            d = message;
        } else if (rets[i].data == NULL) {
            item.state = RH_FWD_RET_THERE;   /* len holds its length */
            item.len = sizeof(uint64_t);
            d = &rets[i].len;
        } else {
            item.len = rets[i].len;
            d = rets[i].data;
        }
        memcpy(payload + off, &item, sizeof(item));
        if (item.len != 0) {
            memcpy(payload + off + sizeof(item), d, item.len);
        }
        off += sizeof(item) + item.len;
    }
    if (payload == NULL ||
        rh_am_send(origin, RH_AM_ID_TASK_DONE, &h, sizeof(h),
                   total != 0 ? payload : NULL, total, NULL, NULL) != RH_OK) {
        rh_debug("could not answer rank %u for its task %llu: %s", origin,
                 (unsigned long long)counter, rh_last_error());
    }
    rh_fwd_buf_free(payload, small);
}

/* A task of another rank ran here (or failed): its answer, on the thread
 * that ran it. A large return is sealed and stays in our store under the
 * owner's id until the owner frees it; a smaller one goes in the answer
 * and its store object goes. No future of ours is involved. */
void rh_forward_answer(rh_task_t *t, void *arg, rh_task_ret_t *rets,
                       const char *message)
{
    rh_task_ret_t out[RH_MAX_RETURNS];
    char why[512];

    (void)arg;
    if (message != NULL && t->nreturns == 0) {
        rh_warn("task %llu of rank %u, which has no returns, failed: %s",
                (unsigned long long)(t->ret_counter & ~(1ull << 63)),
                t->ret_owner, message);
    }
    for (int i = 0; message == NULL && i < t->nreturns; i++) {
        rh_object_id_t id = rh_object_id_make(t->ret_owner, t->ret_counter,
                                              (uint32_t)i + 1);

        out[i] = rets[i];
        if (!rets[i].set) {
            out[i].data = "";
            out[i].len = 0;
        } else if (rets[i].in_store && rets[i].len >= rh_cfg.inline_max) {
            if (!rets[i].adopted &&
                rh_store_seal(rh_core_store(), id) != RH_OK) {
                snprintf(why, sizeof(why), "%s", rh_last_error());
                message = why;
            }
            out[i].data = NULL;   /* it stays here */
        }
    }
    if (message != NULL) {
        for (int i = 0; rets != NULL && i < t->nreturns; i++) {
            if (rets[i].in_store) {
                (void)rh_store_delete(rh_core_store(),
                                      rh_object_id_make(t->ret_owner,
                                                        t->ret_counter,
                                                        (uint32_t)i + 1));
            }
        }
    }
    rh_fwd_answer_send(t->ret_owner, t->ret_counter, t->nreturns, out,
                       message, t->fail_status,
                       message != NULL && t->call_unrun ? RH_FWD_DONE_UNRUN :
                       0);
    for (int i = 0; message == NULL && i < t->nreturns; i++) {
        if (rets[i].in_store && out[i].data != NULL) {
            /* sent by value: the owner keeps it, our unsealed copy goes */
            (void)rh_store_delete(rh_core_store(),
                                  rh_object_id_make(t->ret_owner,
                                                    t->ret_counter,
                                                    (uint32_t)i + 1));
        }
    }
}

/* Answers a task that will not run here: every return fails with msg. */
static void rh_fwd_refuse(int origin, const rh_fwd_submit_t *h,
                          const char *msg)
{
    rh_fwd_answer_send((uint32_t)origin, h->counter, (int)h->nreturns, NULL,
                       msg, RH_ERR_TASK_FAILED, 0);
}

void rh_forward_args_decode(const uint8_t *payload, uint32_t nargs,
                            rh_arg_t *args)
{
    size_t off = 0;

    for (uint32_t i = 0; i < nargs; i++) {
        rh_fwd_item_t item;

        memcpy(&item, payload + off, sizeof(item));
        if (item.state == RH_FWD_ARG_REF) {
            rh_ref_t ref;

            memcpy(&ref, payload + off + sizeof(item), sizeof(ref));
            args[i] = rh_arg_ref(ref);
        } else if (item.state == RH_FWD_ARG_REF_VALUE) {
            /* its value, and the ref it came from for rh_task_arg_ref */
            args[i] = rh_arg_bytes(payload + off + sizeof(item) +
                                   sizeof(rh_ref_t),
                                   item.len - sizeof(rh_ref_t));
            memcpy(&args[i].ref, payload + off + sizeof(item),
                   sizeof(rh_ref_t));
        } else {
            args[i] = rh_arg_bytes(payload + off + sizeof(item), item.len);
        }
        off += sizeof(item) + item.len;
    }
}

/* Runs the task here, to be answered when it ends; on the progress
 * thread. */
static void rh_fwd_run(int origin, const rh_fwd_submit_t *h,
                       const uint8_t *payload, size_t len)
{
    rh_arg_t few[8];
    rh_arg_t *args = h->nargs <= 8 ? few : malloc(h->nargs * sizeof(*args));
    rh_task_params_t params;
    size_t off = h->res_len;
    rh_status_t status;


    if (h->flags & RH_FWD_PLACED) {
        rh_place_arrived();
    }
    if (args == NULL) {
        rh_fwd_refuse(origin, h, "out of memory receiving a task");
        return;
    }
    rh_forward_args_decode(payload + off, h->nargs, args);
    memset(&params, 0, sizeof(params));
    params.field_mask = RH_TASK_PARAM_FIELD_NUM_RETURNS |
                        RH_TASK_PARAM_FIELD_NUM_CPUS;
    params.num_returns = (int)h->nreturns;
    params.num_cpus = h->num_cpus;
    if (h->flags & RH_FWD_COUNTED) {
        params.field_mask |= RH_TASK_PARAM_FIELD_FLAGS;
        params.flags = RH_TASK_FLAG_COUNTED;
    }
    if (h->res_len != 0) {
        params.field_mask |= RH_TASK_PARAM_FIELD_RESOURCES;
        params.resources = (const char *)payload;
    }
    status = rh_task_submit_for(h->name, args, (int)h->nargs, &params,
                                origin, h->counter, rh_forward_answer, NULL);
    if (args != few) {
        free(args);
    }
    (void)len;
    if (status != RH_OK) {
        char msg[512];

        snprintf(msg, sizeof(msg), "rank %d could not run %s: %s", rh_rank(),
                 h->name, rh_last_error());
        rh_fwd_refuse(origin, h, msg);
    }
}

void rh_forward_refuse(uint32_t origin, uint64_t counter, int nreturns,
                       rh_status_t status, const char *msg)
{
    /* An actor's call refused as dead found no instance to run it. */
    rh_fwd_answer_send(origin, counter, nreturns, NULL, msg, status,
                       status == RH_ERR_ACTOR_DEAD ? RH_FWD_DONE_UNRUN : 0);
}

/* Checks that the items of a payload add up to its length and that each
 * has a kind its message may carry, with the length that kind needs. */
int rh_forward_items_ok(const uint8_t *p, size_t len, uint32_t n,
                           int returns)
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
        if (returns ? (item.state != RH_FUTURE_READY &&
                       item.state != RH_FUTURE_FAILED &&
                       !(item.state == RH_FWD_RET_THERE &&
                         item.len == sizeof(uint64_t))) :
                      (item.state != RH_FWD_ARG_VALUE &&
                       !(item.state == RH_FWD_ARG_REF &&
                         item.len == sizeof(rh_ref_t)) &&
                       !(item.state == RH_FWD_ARG_REF_VALUE &&
                         item.len >= sizeof(rh_ref_t)))) {
            return 0;
        }
        if (returns && item.state == RH_FUTURE_FAILED &&
            (item.len == 0 || p[off + sizeof(item) + item.len - 1] != 0 ||
             (item.reserved != 0 &&
              ((int32_t)item.reserved >= 0 ||
               (int32_t)item.reserved < RH_ERR_OWNER_DIED)))) {
            return 0;   /* a message ends in its NUL; a status is one */
        }
        off += sizeof(item) + item.len;
    }
    return off == len;
}

static int rh_fwd_submit_ok(const rh_fwd_submit_t *h)
{
    return h->nreturns <= RH_MAX_RETURNS && h->nargs <= 65536 &&
           h->num_cpus >= 0 && h->res_len <= 4096 &&
           (h->flags & ~(RH_FWD_PLACED | RH_FWD_COUNTED)) == 0 &&
           memchr(h->name, '\0', sizeof(h->name)) != NULL;
}

/* The payload of a task: its resource text, then its arguments. */
static int rh_fwd_task_ok(const rh_fwd_submit_t *h, const uint8_t *p,
                          size_t len)
{
    if (h->res_len > len ||
        (h->res_len != 0 && p[h->res_len - 1] != '\0')) {
        return 0;
    }
    return rh_forward_items_ok(p + h->res_len, len - h->res_len, h->nargs, 0);
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
            if (rh_forward_items_ok(x->buf, x->len, x->done.nreturns, 1)) {
                rh_fwd_done_apply(x->origin, &x->done, x->buf, x->len);
            }
        } else if (rh_fwd_task_ok(&x->submit, x->buf, x->len)) {
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
    if (!rh_fwd_task_ok(&h, msg->data, msg->data_len)) {
        return RH_ERR_MALFORMED;
    }
    rh_fwd_run((int)msg->src, &h, msg->data, msg->data_len);
    return RH_OK;
}

/* ---- the owner: the answer arrives ----------------------------------------- */

/* Whether an answer (checked) fails its returns. */
static int rh_fwd_answer_failed(const uint8_t *p, uint32_t n)
{
    size_t off = 0;

    for (uint32_t i = 0; i < n; i++) {
        rh_fwd_item_t item;

        memcpy(&item, p + off, sizeof(item));
        if (item.state == RH_FUTURE_FAILED) {
            return 1;
        }
        off += sizeof(item) + item.len;
    }
    return 0;
}

static void rh_fwd_done_apply(int src, const rh_fwd_done_t *h,
                              const uint8_t *p, size_t len)
{
    rh_inflight_t e;
    rh_future_t *ret = NULL;   /* a return held: its block has the lineage */
    size_t off = 0;

    (void)len;
    if (!rh_inflight_take(h->counter, src, &e)) {
        return;   /* failed already (its rank was declared dead), or bogus */
    }
    if ((uint32_t)e.nreturns != h->nreturns) {
        rh_inflight_fail(&e, "a task's answer came back malformed");
        rh_inflight_release(&e);
        return;
    }
    if ((h->flags & RH_FWD_DONE_UNRUN) && e.kept &&
        rh_actor_call_lost(h->counter, src, &e)) {
        return;   /* sent again to the restarted instance */
    }
    if (!e.is_call && rh_fwd_answer_failed(p, h->nreturns)) {
        char why[512];

        /* With retry_exceptions it runs again instead. */
        if (rh_lineage_retry(h->counter, src, 1, &e.held, &e.nheld,
                             &e.borrowed, &e.nborrowed, why, sizeof(why))) {
            rh_inflight_release(&e);
            return;
        }
    }
    for (uint32_t i = 0; i < h->nreturns; i++) {
        rh_fwd_item_t item;
        rh_object_id_t id = rh_object_id_make((uint32_t)rh_rank(), h->counter,
                                              i + 1);
        rh_future_t *f = rh_future_find_hold(id);
        const uint8_t *d;

        memcpy(&item, p + off, sizeof(item));
        d = p + off + sizeof(item);
        off += sizeof(item) + item.len;
        if (f == NULL) {
            continue;
        }
        if (atomic_load(&f->state) != RH_FUTURE_PENDING) {
            /* A rerun for lost returns: the others are still there. */
            if (item.state == RH_FWD_RET_THERE) {
                (void)rh_dir_add(id, src);
            }
            if (ret == NULL) {
                ret = f;
            } else {
                rh_future_unhold(f);
            }
            continue;
        }
        if (item.state == RH_FWD_RET_THERE) {
            uint64_t vlen;

            /* Stays on the runner's node: note where, pull when wanted. */
            memcpy(&vlen, d, sizeof(vlen));
            if (vlen <= RH_FUTURE_INLINE ||
                rh_dir_add(id, src) != RH_OK) {
                rh_future_fail(f, "a task's return came back malformed");
            } else {
                rh_future_complete(f, NULL, (size_t)vlen, 0);
            }
        } else if (item.state != RH_FUTURE_READY) {
            rh_future_fail_status(f, item.reserved != 0 ?
                                  (rh_status_t)(int32_t)item.reserved :
                                  RH_ERR_TASK_FAILED,
                                  item.len ? (const char *)d : "task failed");
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
        if (ret == NULL) {
            ret = f;
        } else {
            rh_future_unhold(f);
        }
    }
    if (rh_unlikely(e.kept)) {
        rh_actor_call_answered(h->counter);
    }
    rh_inflight_release(&e);
    if (ret != NULL) {
        rh_lineage_answered(ret);
        rh_future_unhold(ret);
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
    if (!rh_forward_items_ok(msg->data, msg->data_len, h.nreturns, 1)) {
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
    /* A lost task fails at once: its owner decides whether to submit it
     * again. A lost answer is sent again (the default retries). */
    if (status == RH_OK) {
        status = rh_am_set_lost(RH_AM_ID_TASK_SUBMIT, 0, rh_fwd_submit_lost,
                                NULL);
    }
    if (status == RH_OK) {
        status = rh_am_set_lost(RH_AM_ID_ACTOR_CALL, RH_AM_RETRIES,
                                rh_fwd_call_lost, NULL);
    }
    if (status == RH_OK) {
        status = rh_tp_on_peer_failure(rh_fwd_on_peer_failure, NULL);
    }
    return status;
}

static void rh_fwd_drop(rh_inflight_t *e)
{
    free(e->held);   /* the futures go with the future table */
    free(e->borrowed);
}

void rh_forward_teardown(void)
{
    rh_inflight_clear(rh_fwd_drop);
}
