#include "sched/resources.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hash.h"
#include "base/hashmap.h"
#include "base/log.h"
#include "base/status.h"

/* Waiters of one request shape, in arrival order; the ledger lists the
 * queues that have waiters. The overflow queue takes waiters of any shape
 * when a queue cannot be made (no memory, or another shape has the same
 * fingerprint): still first come, first served. */
typedef struct rh_res_queue rh_res_queue_t;
struct rh_res_queue {
    rh_res_waiter_t *head, *tail;
    rh_res_queue_t  *next, **pprev;   /* the list of queues with waiters */
    uint64_t         fp;
    int              shaped;          /* 0: the overflow queue */
};

/* The uncounted one-CPU tasks of one thread (resources.h): those running
 * in the low half, those lent while they wait in the high half, so that a
 * lend moves a task from one to the other in one step and the ledger never
 * sees it in neither. Only its thread changes `tasks`, on a line of its
 * own; `in_use` and `next` are the ledger's, under its lock. */
#define RH_RES_LENT_ONE (1ull << 32)

typedef struct rh_res_cell rh_res_cell_t;
struct rh_res_cell {
    _Alignas(64) _Atomic uint64_t tasks;
    int            in_use;    /* a thread has it */
    rh_res_cell_t *next;      /* every cell ever made */
};

typedef struct rh_res_ledger {
    pthread_mutex_t  lock;
    int              cpus_total, cpus_free;
    int              n;
    char             names[RH_RES_LEDGER_MAX][RH_RES_NAME_MAX];
    long             total[RH_RES_LEDGER_MAX], free[RH_RES_LEDGER_MAX];
    /* A removed bundle's name whose tasks still run: what they hold goes
     * back to `home` (the rank's own name, RH_RES_HOME_CPU for CPUs) as
     * they end, not at the removal. The slot is reused once nothing is
     * owed. */
    long             owed[RH_RES_LEDGER_MAX];
    int              home[RH_RES_LEDGER_MAX];
    /* A bundle's CPUs ("<prefix>CPU"): what a waiting task lends. */
    unsigned char    is_cpu[RH_RES_LEDGER_MAX];
    rh_hmap_t        shapes;     /* fingerprint -> rh_res_queue_t * */
    /* Names of removed bundles (by hash), until one is placed here again:
     * a task asking for one would wait for ever. */
    rh_hmap_t        removed;
    rh_res_queue_t  *queues;     /* those with waiters */
    rh_res_queue_t   overflow;
    _Atomic uint64_t next_seq;   /* tickets; 0 is none */
    size_t           nwaiting;
    rh_res_cell_t   *cells;
    /* The uncounted tasks running now, as rh_res_look last saw them; none
     * is left once they are all seen ended after counting began (no new
     * one starts after that). */
    int              uncounted;
    int              uncounted_gone;
} rh_res_ledger_t;

#define RH_RES_HOME_CPU (-2)

static rh_res_ledger_t rh_res = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .shapes = RH_HMAP_INITIALIZER(sizeof(uint64_t), sizeof(rh_res_queue_t *)),
    .removed = RH_HMAP_INITIALIZER(sizeof(uint64_t), sizeof(char)),
    .next_seq = 1,
};
_Atomic int rh_resources_active;

static pthread_once_t rh_res_cell_once = PTHREAD_ONCE_INIT;
static pthread_key_t rh_res_cell_key;   /* gives the cell back at exit */
static int rh_res_cell_key_ok;
static _Thread_local rh_res_cell_t *rh_res_cell;

int rh_resources_is_gpu(const char *name)
{
    size_t n = strlen(name);

    return strcmp(name, RH_RES_GPU) == 0 ||
           (strncmp(name, "pg", 2) == 0 && n > 4 &&
            strcmp(name + n - 4, "_" RH_RES_GPU) == 0);
}

void rh_resources_amount_str(const char *name, long amount, char *buf,
                             size_t len)
{
    if (rh_resources_is_gpu(name) && amount % RH_RES_GPU_UNITS != 0) {
        char frac[8];
        int n;

        n = snprintf(frac, sizeof(frac), "%04ld", amount % RH_RES_GPU_UNITS);
        while (n > 1 && frac[n - 1] == '0') {
            frac[--n] = '\0';
        }
        snprintf(buf, len, "%ld.%s", amount / RH_RES_GPU_UNITS, frac);
    } else {
        snprintf(buf, len, "%ld", rh_resources_is_gpu(name) ?
                 amount / RH_RES_GPU_UNITS : amount);
    }
}

/* A GPU amount: a whole number with up to 4 decimals, in GPU units. */
static int rh_res_gpu_amount(const char *s, long *amount)
{
    char *end;
    long whole = strtol(s, &end, 10), frac = 0, scale = RH_RES_GPU_UNITS;

    if (*s < '0' || *s > '9' || whole > RH_RES_AMOUNT_MAX / RH_RES_GPU_UNITS) {
        return -1;
    }
    if (*end == '.') {
        const char *d = end + 1;

        if (*d == '\0') {
            return -1;
        }
        for (; *d != '\0'; d++) {
            if (*d < '0' || *d > '9' || scale == 1) {
                return -1;
            }
            scale /= 10;
            frac += (*d - '0') * scale;
        }
        end = (char *)d;
    }
    if (*end != '\0') {
        return -1;
    }
    *amount = whole * RH_RES_GPU_UNITS + frac;
    return 0;
}

/* Splits "name=amount,..." into req's items (cpus untouched). */
static rh_status_t rh_res_split(const char *spec, rh_res_req_t *req)
{
    char buf[1024], *save = NULL;

    req->n = 0;
    if (spec == NULL || spec[0] == '\0') {
        return RH_OK;
    }
    if (strlen(spec) >= sizeof(buf)) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "resource list too long");
    }
    snprintf(buf, sizeof(buf), "%s", spec);
    for (char *item = strtok_r(buf, ",", &save); item != NULL;
         item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '='), *end;
        long amount;

        if (eq == NULL || eq == item || (size_t)(eq - item) >=
            RH_RES_USER_NAME_MAX || req->n == RH_RES_MAX) {
            return rh_error_set(RH_ERR_INVALID_PARAM, "bad resource '%s' in "
                                "'%s': expected name=amount, names under %d "
                                "characters, at most %d of them", item, spec,
                                RH_RES_USER_NAME_MAX, RH_RES_MAX);
        }
        *eq = '\0';
        if (rh_resources_is_gpu(item)) {
            if (rh_res_gpu_amount(eq + 1, &amount) != 0) {
                *eq = '=';
                return rh_error_set(RH_ERR_INVALID_PARAM, "bad amount in "
                                    "resource '%s' of '%s' (GPUs: 0 to %ld, "
                                    "at most 4 decimals)", item, spec,
                                    (long)(RH_RES_AMOUNT_MAX /
                                           RH_RES_GPU_UNITS));
            }
            end = eq + 1 + strlen(eq + 1);
        } else {
            amount = strtol(eq + 1, &end, 10);
        }
        *eq = '=';
        if (*end != '\0' || end == eq + 1 || amount < 0 ||
            amount > RH_RES_AMOUNT_MAX) {
            return rh_error_set(RH_ERR_INVALID_PARAM, "bad amount in "
                                "resource '%s' of '%s' (0 to %ld)", item,
                                spec, (long)RH_RES_AMOUNT_MAX);
        }
        *eq = '\0';
        snprintf(req->items[req->n].name, RH_RES_NAME_MAX, "%s", item);
        req->items[req->n].amount = amount;
        req->n++;
    }
    return RH_OK;
}

rh_status_t rh_resources_init(int cpus, const char *spec)
{
    rh_res_req_t offer;
    rh_status_t status = rh_res_split(spec, &offer);

    if (status != RH_OK) {
        return rh_error_set(status, "RAYHPC_RESOURCES: %s", rh_last_error());
    }
    pthread_mutex_lock(&rh_res.lock);
    rh_res.cpus_total = rh_res.cpus_free = cpus;
    rh_res.n = offer.n;
    for (int i = 0; i < offer.n; i++) {
        memcpy(rh_res.names[i], offer.items[i].name, RH_RES_NAME_MAX);
        rh_res.total[i] = rh_res.free[i] = offer.items[i].amount;
        rh_res.owed[i] = 0;
    }
    rh_res.uncounted = 0;
    rh_res.uncounted_gone = 0;
    pthread_mutex_unlock(&rh_res.lock);
    atomic_store(&rh_resources_active, 0);
    return RH_OK;
}

static void rh_res_dequeue(rh_res_queue_t *q);

void rh_resources_fini(void (*drop)(rh_res_waiter_t *w))
{
    rh_res_waiter_t *all = NULL, **last = &all;

    pthread_mutex_lock(&rh_res.lock);
    while (rh_res.queues != NULL) {
        rh_res_queue_t *q = rh_res.queues;

        *last = q->head;
        last = &q->tail->next;
        q->head = q->tail = NULL;
        rh_res_dequeue(q);
    }
    rh_hmap_fini(&rh_res.shapes);
    rh_hmap_fini(&rh_res.removed);
    rh_res.nwaiting = 0;
    pthread_mutex_unlock(&rh_res.lock);
    while (all != NULL) {
        rh_res_waiter_t *next = all->next;

        drop(all);
        all = next;
    }
}

static rh_status_t rh_res_split_cpus(const char *spec, int cpus,
                                     rh_res_req_t *req)
{
    if (cpus < 0) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "num_cpus %d", cpus);
    }
    req->cpus = cpus;
    return rh_res_split(spec, req);
}

static int rh_res_names_cpu(const rh_res_req_t *req)
{
    for (int i = 0; i < req->n; i++) {
        if (strcmp(req->items[i].name, RH_RES_CPU) == 0) {
            return 1;
        }
    }
    return 0;
}

rh_status_t rh_resources_parse_offer(const char *spec, int cpus,
                                     rh_res_req_t *req)
{
    rh_status_t status = rh_res_split_cpus(spec, cpus, req);

    if (status == RH_OK && rh_res_names_cpu(req)) {
        /* No task could ask for it: num_cpus counts workers. */
        return rh_error_set(RH_ERR_INVALID_PARAM, "it names CPU: a rank's "
                            "CPUs are its workers, set with "
                            "RAYHPC_NUM_WORKERS");
    }
    return status;
}

rh_status_t rh_resources_parse(const char *spec, int cpus, rh_res_req_t *req)
{
    rh_status_t status = rh_res_split_cpus(spec, cpus, req);
    int kept = 0;

    if (status != RH_OK) {
        return status;
    }
    if (rh_res_names_cpu(req)) {
        return rh_error_set(RH_ERR_INVALID_PARAM, "'%s' names CPU: ask "
                            "for CPUs with num_cpus, not in resources",
                            spec);
    }
    for (int i = 0; i < req->n; i++) {
        /* A zero amount kept would wait for a name the rank may not
         * have, or take a ledger slot for nothing. */
        if (req->items[i].amount != 0) {
            req->items[kept++] = req->items[i];
        }
    }
    req->n = kept;
    return RH_OK;
}

static int rh_res_index(const char *name)
{
    for (int i = 0; i < rh_res.n; i++) {
        if (strcmp(rh_res.names[i], name) == 0) {
            return i;
        }
    }
    return -1;
}

int rh_resources_feasible(const rh_res_req_t *req, char *why, size_t len)
{
    int ok = 1;
    size_t n = 0;

    why[0] = '\0';
    if (req->cpus > rh_res.cpus_total) {
        n += (size_t)snprintf(why + n, len - n, "%d CPUs (this rank has %d)",
                              req->cpus, rh_res.cpus_total);
        ok = 0;
    }
    for (int i = 0; i < req->n && n < len; i++) {
        int k = rh_res_index(req->items[i].name);
        long have = k < 0 ? 0 : rh_res.total[k];

        if (req->items[i].amount > have) {
            char want_s[32], have_s[32];

            rh_resources_amount_str(req->items[i].name, req->items[i].amount,
                                    want_s, sizeof(want_s));
            rh_resources_amount_str(req->items[i].name, have, have_s,
                                    sizeof(have_s));
            n += (size_t)snprintf(why + n, len - n, "%s%s=%s (this rank has "
                                  "%s)", ok ? "" : ", ", req->items[i].name,
                                  want_s, have_s);
            ok = 0;
        }
    }
    return ok;
}

void rh_resources_activate(void)
{
    atomic_store(&rh_resources_active, 1);
}

/* ---- uncounted one-CPU tasks -------------------------------------------- */

/* A thread that ends: its tasks have all ended, its cell is free again. */
static void rh_res_cell_drop(void *arg)
{
    rh_res_cell_t *c = arg;

    pthread_mutex_lock(&rh_res.lock);
    c->in_use = 0;
    pthread_mutex_unlock(&rh_res.lock);
}

static void rh_res_cell_key_make(void)
{
    rh_res_cell_key_ok = pthread_key_create(&rh_res_cell_key,
                                            rh_res_cell_drop) == 0;
}

/* The first uncounted task of this thread: a cell, one a thread that
 * ended left if there is one (NULL: the task is counted instead). */
static rh_res_cell_t *rh_res_cell_get(void)
{
    rh_res_cell_t *c;

    pthread_once(&rh_res_cell_once, rh_res_cell_key_make);
    if (!rh_res_cell_key_ok) {
        return NULL;
    }
    pthread_mutex_lock(&rh_res.lock);
    for (c = rh_res.cells; c != NULL && c->in_use; c = c->next) {
    }
    if (c == NULL && (c = aligned_alloc(_Alignof(rh_res_cell_t),
                                        sizeof(*c))) != NULL) {
        memset(c, 0, sizeof(*c));
        c->next = rh_res.cells;
        rh_res.cells = c;
    }
    if (c != NULL) {
        c->in_use = 1;
    }
    pthread_mutex_unlock(&rh_res.lock);
    if (c != NULL && pthread_setspecific(rh_res_cell_key, c) != 0) {
        rh_res_cell_drop(c);
        return NULL;
    }
    rh_res_cell = c;
    return c;
}

/* Reads the cells, with the lock held: what the ledger's free count
 * misses. The adds and subtracts of the cells and the ledger's loads here
 * are all seq_cst, as are the switching on and the threads' loads of
 * rh_resources_active, so they sit in one order: a thread whose add comes
 * after these loads sees the ledger on and counts its task the other way;
 * one whose subtract comes after them sees it on and wakes its waiters
 * (rh_res_wake), which looks again. */
static void rh_res_look(void)
{
    uint64_t held = 0, lent = 0;

    if (rh_res.uncounted_gone || !atomic_load(&rh_resources_active)) {
        rh_res.uncounted = 0;
        return;
    }
    for (rh_res_cell_t *c = rh_res.cells; c != NULL; c = c->next) {
        uint64_t v = atomic_load(&c->tasks);

        held += v & (RH_RES_LENT_ONE - 1);
        lent += v >> 32;
    }
    rh_res.uncounted = (int)held;
    rh_res.uncounted_gone = held == 0 && lent == 0;
}

static void rh_res_wake_and_unlock(void);

static void rh_res_wake(void)
{
    pthread_mutex_lock(&rh_res.lock);
    rh_res_wake_and_unlock();
}

int rh_resources_begin_uncounted(void)
{
    rh_res_cell_t *c = rh_res_cell;

    if (atomic_load_explicit(&rh_resources_active, memory_order_relaxed)) {
        return 0;
    }
    if (rh_unlikely(c == NULL) && (c = rh_res_cell_get()) == NULL) {
        return 0;
    }
    /* An add on a line only this thread writes (no lock, no sharing):
     * what orders it before the load below, see rh_res_look. */
    atomic_fetch_add(&c->tasks, 1);
    if (rh_likely(!atomic_load(&rh_resources_active))) {
        return 1;
    }
    rh_resources_end_uncounted();   /* counting began meanwhile */
    return 0;
}

void rh_resources_end_uncounted(void)
{
    atomic_fetch_sub(&rh_res_cell->tasks, 1);
    if (rh_unlikely(atomic_load(&rh_resources_active))) {
        rh_res_wake();   /* a waiter may have been kept out by this task */
    }
}

void rh_resources_lend_uncounted(void)
{
    atomic_fetch_add(&rh_res_cell->tasks, RH_RES_LENT_ONE - 1);
    if (atomic_load(&rh_resources_active)) {
        rh_res_wake();
    }
}

void rh_resources_reclaim_uncounted(void)
{
    atomic_fetch_sub(&rh_res_cell->tasks, RH_RES_LENT_ONE - 1);
}

/* ---- the ledger --------------------------------------------------------- */

/* Whether req fits now (rh_res_look has been called). */
static int rh_res_fits(const rh_res_req_t *req)
{
    if (req->cpus > rh_res.cpus_free - rh_res.uncounted) {
        return 0;
    }
    for (int i = 0; i < req->n; i++) {
        int k = rh_res_index(req->items[i].name);

        if (k < 0 || req->items[i].amount > rh_res.free[k]) {
            return 0;
        }
    }
    return 1;
}

static void rh_res_take(const rh_res_req_t *req)
{
    rh_res.cpus_free -= req->cpus;
    for (int i = 0; i < req->n; i++) {
        rh_res.free[rh_res_index(req->items[i].name)] -= req->items[i].amount;
    }
}

/* Whether req fits in what the rank offers at all, running tasks' share
 * included: then it gets its turn once they end. */
static int rh_res_could_fit(const rh_res_req_t *req)
{
    if (req->cpus > rh_res.cpus_total) {
        return 0;
    }
    for (int i = 0; i < req->n; i++) {
        int k = rh_res_index(req->items[i].name);

        if (k < 0 || req->items[i].amount > rh_res.total[k]) {
            return 0;
        }
    }
    return 1;
}

static uint64_t rh_res_fingerprint(const rh_res_req_t *req)
{
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)(unsigned)req->cpus;

    for (int i = 0; i < req->n; i++) {
        for (const char *c = req->items[i].name; *c != '\0'; c++) {
            h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
        }
        h = (h ^ (uint64_t)req->items[i].amount) * 0x100000001b3ull;
    }
    return h;
}

static int rh_res_same(const rh_res_req_t *a, const rh_res_req_t *b)
{
    if (a->cpus != b->cpus || a->n != b->n) {
        return 0;
    }
    for (int i = 0; i < a->n; i++) {
        if (a->items[i].amount != b->items[i].amount ||
            strcmp(a->items[i].name, b->items[i].name) != 0) {
            return 0;
        }
    }
    return 1;
}

/* A queue that has no waiters left leaves the list (and, unless it is the
 * overflow queue, the shape map). */
static void rh_res_dequeue(rh_res_queue_t *q)
{
    if (q->pprev != NULL) {
        *q->pprev = q->next;
        if (q->next != NULL) {
            q->next->pprev = q->pprev;
        }
        q->next = NULL;
        q->pprev = NULL;
    }
    if (q->shaped) {
        (void)rh_hmap_del(&rh_res.shapes, &q->fp, NULL);
        free(q);
    }
}

/* The queue for w's shape, made when absent (the overflow one when it
 * cannot be). */
static rh_res_queue_t *rh_res_queue_of(const rh_res_req_t *req)
{
    uint64_t fp = rh_res_fingerprint(req);
    rh_res_queue_t **slot, *q;
    int added;

    slot = rh_hmap_put(&rh_res.shapes, &fp, &added);
    if (slot == NULL) {
        return &rh_res.overflow;
    }
    if (!added) {
        q = *slot;
        return rh_res_same(q->head->req, req) ? q : &rh_res.overflow;
    }
    q = calloc(1, sizeof(*q));
    if (q == NULL) {
        (void)rh_hmap_del(&rh_res.shapes, &fp, NULL);
        return &rh_res.overflow;
    }
    q->fp = fp;
    q->shaped = 1;
    *slot = q;
    return q;
}

int rh_resources_available(const rh_res_req_t *req)
{
    int ok;

    pthread_mutex_lock(&rh_res.lock);
    rh_res_look();
    ok = rh_res.nwaiting == 0 && rh_res_fits(req);
    pthread_mutex_unlock(&rh_res.lock);
    return ok;
}

uint64_t rh_resources_ticket(void)
{
    return atomic_fetch_add_explicit(&rh_res.next_seq, 1,
                                     memory_order_relaxed);
}

/* In ticket order within its queue: workers may reach the ledger in
 * another order than their tasks became ready (a waiting worker takes
 * the newest first). Mostly an append; else a walk from the head. */
static void rh_res_enqueue(rh_res_waiter_t *w, const rh_res_req_t *req)
{
    rh_res_queue_t *q = rh_res_queue_of(req);

    w->req = req;
    if (w->seq == 0) {
        w->seq = rh_resources_ticket();
    }
    w->bypassed = 0;
    w->next = NULL;
    if (q->head == NULL) {
        q->head = w;
        q->tail = w;
        q->next = rh_res.queues;
        if (q->next != NULL) {
            q->next->pprev = &q->next;
        }
        q->pprev = &rh_res.queues;
        rh_res.queues = q;
    } else if (q->tail->seq < w->seq) {
        q->tail->next = w;
        q->tail = w;
    } else {
        rh_res_waiter_t **pw = &q->head;

        while ((*pw)->seq < w->seq) {
            pw = &(*pw)->next;
        }
        w->next = *pw;
        *pw = w;
    }
    rh_res.nwaiting++;
}

/* The oldest waiter at the head of a queue that does not fit now but could
 * once running tasks end: the one later waiters may overtake only so
 * often (NULL: none). */
static rh_res_waiter_t *rh_res_blocker(void)
{
    rh_res_waiter_t *b = NULL;

    for (rh_res_queue_t *q = rh_res.queues; q != NULL; q = q->next) {
        rh_res_waiter_t *h = q->head;

        if ((b == NULL || h->seq < b->seq) && !rh_res_fits(h->req) &&
            rh_res_could_fit(h->req)) {
            b = h;
        }
    }
    return b;
}

static unsigned rh_res_bypass_max(void)
{
    return rh_res.cpus_total > 0 ? (unsigned)rh_res.cpus_total : 1;
}

/* Whether a request that fits, younger than every waiter, may start now
 * (counting it against the blocker). */
static int rh_res_may_overtake(uint64_t seq)
{
    rh_res_waiter_t *b = rh_res_blocker();

    if (b == NULL || b->seq > seq) {
        return 1;
    }
    if (b->bypassed >= rh_res_bypass_max()) {
        return 0;
    }
    b->bypassed++;
    return 1;
}

/* Called with the lock held, returns without it: gives the oldest waiters
 * that fit their resources, by the policy of resources.h, then runs their
 * retry outside the lock. */
static void rh_res_wake_and_unlock(void)
{
    rh_res_waiter_t *run = NULL, **last = &run;

    rh_res_look();
    while (rh_res.nwaiting != 0) {
        rh_res_queue_t *best = NULL;
        rh_res_waiter_t *w;

        /* Waiters of a queue share a shape: only its head can tell. */
        for (rh_res_queue_t *q = rh_res.queues; q != NULL; q = q->next) {
            if ((best == NULL || q->head->seq < best->head->seq) &&
                rh_res_fits(q->head->req)) {
                best = q;
            }
        }
        if (best == NULL || !rh_res_may_overtake(best->head->seq)) {
            break;
        }
        w = best->head;
        rh_res_take(w->req);
        best->head = w->next;
        if (best->head == NULL) {
            best->tail = NULL;
            rh_res_dequeue(best);
        }
        rh_res.nwaiting--;
        w->next = NULL;
        w->seq = 0;   /* its ticket is spent */
        *last = w;
        last = &w->next;
    }
    pthread_mutex_unlock(&rh_res.lock);
    while (run != NULL) {
        rh_res_waiter_t *next = run->next;

        run->retry(run);
        run = next;
    }
}

/* Notes (removed 1) or forgets bundle prefix's names as removed. */
static void rh_res_mark_removed(const char *prefix, const rh_res_req_t *req,
                                int removed)
{
    char bname[RH_RES_NAME_MAX];
    uint64_t h;
    int added;

    for (int i = -1; i < req->n; i++) {
        snprintf(bname, sizeof(bname), "%s%s", prefix,
                 i < 0 ? "CPU" : req->items[i].name);
        h = rh_hash_str(bname);
        if (removed) {
            (void)rh_hmap_put(&rh_res.removed, &h, &added);
        } else {
            (void)rh_hmap_del(&rh_res.removed, &h, NULL);
        }
    }
}

static int rh_res_asks_removed(const rh_res_req_t *req)
{
    if (rh_hmap_count(&rh_res.removed) == 0) {
        return 0;
    }
    for (int i = 0; i < req->n; i++) {
        uint64_t h = rh_hash_str(req->items[i].name);

        if (rh_hmap_get(&rh_res.removed, &h) != NULL) {
            return 1;
        }
    }
    return 0;
}

int rh_resources_removed(const rh_res_req_t *req)
{
    int removed;

    pthread_mutex_lock(&rh_res.lock);
    removed = rh_res_asks_removed(req);
    pthread_mutex_unlock(&rh_res.lock);
    return removed;
}

int rh_resources_acquire(const rh_res_req_t *req, rh_res_waiter_t *w)
{
    int got;

    pthread_mutex_lock(&rh_res.lock);
    if (rh_unlikely(rh_res_asks_removed(req))) {
        pthread_mutex_unlock(&rh_res.lock);
        return -1;
    }
    rh_res_look();
    got = rh_res_fits(req) &&
          (rh_res.nwaiting == 0 ||
           rh_res_may_overtake(w->seq != 0 ? w->seq :
                               atomic_load(&rh_res.next_seq)));
    if (got) {
        rh_res_take(req);
        w->seq = 0;   /* its ticket is spent */
    } else {
        rh_res_enqueue(w, req);
    }
    pthread_mutex_unlock(&rh_res.lock);
    return got;
}

/* amount of slot k comes back: to k, or, as far as k's removed bundle
 * still owes it, to the rank's own name. */
static void rh_res_return(int k, long amount)
{
    long back = amount < rh_res.owed[k] ? amount : rh_res.owed[k];

    rh_res.free[k] += amount - back;
    if (back == 0) {
        return;
    }
    rh_res.owed[k] -= back;
    if (rh_res.home[k] == RH_RES_HOME_CPU) {
        rh_res.cpus_free += (int)back;
    } else {
        rh_res.free[rh_res.home[k]] += back;
    }
    if (rh_res.owed[k] == 0 && rh_res.total[k] == 0) {
        rh_res.names[k][0] = '\0';   /* the slot is free again */
    }
}

void rh_resources_release(const rh_res_req_t *req)
{
    pthread_mutex_lock(&rh_res.lock);
    rh_res.cpus_free += req->cpus;
    for (int i = 0; i < req->n; i++) {
        int k = rh_res_index(req->items[i].name);

        if (k >= 0) {
            rh_res_return(k, req->items[i].amount);
        }
    }
    rh_res_wake_and_unlock();
}

/* Adds sign * the CPUs req holds (the rank's and its bundles') to what
 * is free; returns how many that is. Under the lock. */
static int rh_res_lend_locked(const rh_res_req_t *req, int sign)
{
    int n = req->cpus;

    rh_res.cpus_free += sign * req->cpus;
    for (int i = 0; i < req->n; i++) {
        int k = rh_res_index(req->items[i].name);

        if (k >= 0 && rh_res.is_cpu[k]) {
            rh_res.free[k] += sign * req->items[i].amount;
            n += (int)req->items[i].amount;
        }
    }
    return n;
}

int rh_resources_lend(const rh_res_req_t *req)
{
    int n;

    pthread_mutex_lock(&rh_res.lock);
    n = rh_res_lend_locked(req, 1);
    rh_res_wake_and_unlock();
    return n;
}

void rh_resources_reclaim(const rh_res_req_t *req)
{
    pthread_mutex_lock(&rh_res.lock);
    (void)rh_res_lend_locked(req, -1);
    pthread_mutex_unlock(&rh_res.lock);
}

/* Index of name in the ledger, added with nothing when absent (-1: full). */
static int rh_res_slot(const char *name)
{
    int k = rh_res_index(name);

    if (k >= 0) {
        return k;
    }
    for (k = 0; k < rh_res.n && rh_res.names[k][0] != '\0'; k++) {
    }
    if (k == RH_RES_LEDGER_MAX) {
        return -1;
    }
    if (k == rh_res.n) {
        rh_res.n++;
    }
    snprintf(rh_res.names[k], RH_RES_NAME_MAX, "%s", name);
    rh_res.total[k] = rh_res.free[k] = rh_res.owed[k] = 0;
    rh_res.is_cpu[k] = 0;
    return k;
}

/* Moves amount from the rank's own name to the bundle's (sign 1), or back
 * (-1): then what the bundle's running tasks hold comes back as they end,
 * so that the rank never offers more than it has. */
static int rh_res_move(const char *prefix, const char *name, long amount,
                       int sign)
{
    char bname[RH_RES_NAME_MAX];
    int k = name[0] ? rh_res_index(name) : -1, b, ct = 0, cf = 0;
    long now = amount, held = 0, tk = 0, fk = 0, tb, fb, owed;

    snprintf(bname, sizeof(bname), "%s%s", prefix, name[0] ? name : "CPU");
    b = sign > 0 ? rh_res_slot(bname) : rh_res_index(bname);
    if (b < 0 || (name[0] && k < 0) || amount < 0 ||
        amount > RH_RES_AMOUNT_MAX) {
        return -1;
    }
    rh_res.is_cpu[b] = name[0] == '\0';
    if (sign < 0) {
        held = rh_res.total[b] - rh_res.free[b];
        held = held < 0 ? 0 : held > amount ? amount : held;
        now = amount - held;
    }
    /* All or nothing: a sum that would overflow (bundles a hostile global
     * scheduler keeps reserving) refuses the move. */
    if ((name[0] ?
         __builtin_sub_overflow(rh_res.total[k], sign * amount, &tk) ||
         __builtin_sub_overflow(rh_res.free[k], sign * now, &fk) :
         amount > RH_RES_CPUS_MAX ||
         __builtin_sub_overflow(rh_res.cpus_total, (int)(sign * amount),
                                &ct) ||
         __builtin_sub_overflow(rh_res.cpus_free, (int)(sign * now), &cf)) ||
        __builtin_add_overflow(rh_res.total[b], sign * amount, &tb) ||
        __builtin_add_overflow(rh_res.free[b], sign * now, &fb) ||
        __builtin_add_overflow(rh_res.owed[b], held, &owed)) {
        return -1;
    }
    if (sign < 0) {
        rh_res.owed[b] = owed;
        rh_res.home[b] = name[0] ? k : RH_RES_HOME_CPU;
    }
    if (name[0]) {
        rh_res.total[k] = tk;
        rh_res.free[k] = fk;
    } else {
        rh_res.cpus_total = ct;
        rh_res.cpus_free = cf;
    }
    rh_res.total[b] = tb;
    rh_res.free[b] = fb;
    if (sign < 0 && rh_res.owed[b] == 0 && rh_res.total[b] == 0) {
        rh_res.names[b][0] = '\0';   /* the slot is free again */
    }
    return 0;
}

rh_status_t rh_resources_bundle_add(const char *prefix,
                                    const rh_res_req_t *req)
{
    int ok;

    pthread_mutex_lock(&rh_res.lock);
    rh_res_mark_removed(prefix, req, 0);
    ok = rh_res_move(prefix, "", req->cpus, 1) == 0;
    for (int i = 0; ok && i < req->n; i++) {
        ok = rh_res_move(prefix, req->items[i].name, req->items[i].amount,
                         1) == 0;
    }
    atomic_store(&rh_resources_active, 1);
    /* Tasks of the bundle that came before it may start now. */
    rh_res_wake_and_unlock();
    if (!ok) {
        return rh_error_set(RH_ERR_NO_MEMORY, "too many resource names on "
                            "this rank (at most %d), or more of one than "
                            "the ledger can count", RH_RES_LEDGER_MAX);
    }
    return RH_OK;
}

static int rh_res_names_prefix(const rh_res_req_t *req, const char *prefix,
                               size_t len)
{
    for (int i = 0; i < req->n; i++) {
        if (strncmp(req->items[i].name, prefix, len) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Unlinks the waiters that ask for a resource named prefix...; under the
 * lock. */
static rh_res_waiter_t *rh_res_unlink_prefix(const char *prefix)
{
    rh_res_waiter_t *gone = NULL, **glast = &gone;
    size_t len = strlen(prefix);
    rh_res_queue_t *q, *qnext;

    for (q = rh_res.queues; q != NULL; q = qnext) {
        rh_res_waiter_t **pw = &q->head, *w;

        qnext = q->next;
        q->tail = NULL;
        while ((w = *pw) != NULL) {
            if (rh_res_names_prefix(w->req, prefix, len)) {
                *pw = w->next;
                w->next = NULL;
                *glast = w;
                glast = &w->next;
                rh_res.nwaiting--;
            } else {
                q->tail = w;
                pw = &w->next;
            }
        }
        if (q->head == NULL) {
            rh_res_dequeue(q);
        }
    }
    return gone;
}

void rh_resources_bundle_remove(const char *prefix, const rh_res_req_t *req,
                                void (*drop)(rh_res_waiter_t *w))
{
    rh_res_waiter_t *gone;

    pthread_mutex_lock(&rh_res.lock);
    (void)rh_res_move(prefix, "", req->cpus, -1);
    for (int i = 0; i < req->n; i++) {
        (void)rh_res_move(prefix, req->items[i].name, req->items[i].amount,
                          -1);
    }
    rh_res_mark_removed(prefix, req, 1);
    gone = rh_res_unlink_prefix(prefix);
    rh_res_wake_and_unlock();
    while (gone != NULL) {
        rh_res_waiter_t *next = gone->next;

        drop(gone);
        gone = next;
    }
}

size_t rh_resources_waiting(void)
{
    size_t n;

    pthread_mutex_lock(&rh_res.lock);
    n = rh_res.nwaiting;
    pthread_mutex_unlock(&rh_res.lock);
    return n;
}

void rh_resources_format_total(char *buf, size_t len)
{
    size_t n;

    pthread_mutex_lock(&rh_res.lock);
    n = (size_t)snprintf(buf, len, "CPU=%d", rh_res.cpus_total);
    for (int i = 0; i < rh_res.n && n < len; i++) {
        if (rh_res.names[i][0] != '\0') {
            n += (size_t)snprintf(buf + n, len - n, " %s=%ld",
                                  rh_res.names[i], rh_res.total[i]);
        }
    }
    pthread_mutex_unlock(&rh_res.lock);
}

void rh_resources_format(char *buf, size_t len)
{
    size_t n;

    pthread_mutex_lock(&rh_res.lock);
    rh_res_look();
    n = (size_t)snprintf(buf, len, "CPU=%d",
                         rh_res.cpus_free - rh_res.uncounted);
    for (int i = 0; i < rh_res.n && n < len; i++) {
        if (rh_res.names[i][0] != '\0') {
            char amount[32];

            rh_resources_amount_str(rh_res.names[i], rh_res.free[i], amount,
                                    sizeof(amount));
            n += (size_t)snprintf(buf + n, len - n, " %s=%s",
                                  rh_res.names[i], amount);
        }
    }
    pthread_mutex_unlock(&rh_res.lock);
}
