/*
 * Gathering the job's state across nodes: the request to one rank of each
 * other node, its answer (the node's snapshots), and the deadline after
 * which a node that did not answer is reported unreachable.
 */
#include "obs/jobgather.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "base/completion.h"
#include "base/log.h"
#include "core/core.h"
#include "obs/jobcontact.h"
#include "obs/jobstate.h"
#include "rayhpc.h"
#include "transport/am.h"
#include "transport/guest.h"
#include "transport/transport.h"

#define RH_JG_ID_ASK      (RH_AM_ID_OBS_FIRST + 0)
#define RH_JG_SLICE_NS    50000000ull   /* between looks at dead ranks */

typedef enum rh_jg_state {
    RH_JG_IDLE = 0,      /* this node's own, or nothing asked */
    RH_JG_WAITING,       /* asked, no answer yet */
    RH_JG_RECEIVING,     /* a rendezvous answer is arriving */
    RH_JG_DONE           /* text holds the answer or the unreachable lines */
} rh_jg_state_t;

typedef struct rh_jg_slot {
    rh_jg_state_t state;
    int           asked;   /* the rank asked */
    char         *text;
    size_t        len;
} rh_jg_slot_t;

/* A request of another node, or of a guest, waiting for the jobstate
 * thread. */
typedef struct rh_jg_req {
    struct rh_jg_req *next;
    uint32_t          src;
    rh_jg_ask_t       ask;
    int               guest_pid;   /* a guest's: who it is */
    char              guest_host[384];
    size_t            guest_len;   /* its worker address */
    uint8_t           guest[];
} rh_jg_req_t;

/* A rendezvous answer on its way into buf. */
typedef struct rh_jg_rndv {
    uint64_t seq;
    int      node;
    char    *buf;
    size_t   len;
} rh_jg_rndv_t;

static struct {
    pthread_mutex_t run;      /* one gather at a time on this rank */
    pthread_mutex_t lock;     /* everything below */
    pthread_cond_t  cond;     /* an answer came */
    int             cond_ready;
    uint64_t        next_seq;
    uint64_t        seq;      /* the gather running now, 0: none */
    int             nodes;
    rh_jg_slot_t   *slot;     /* one per node */
    int             left;     /* slots still waiting or receiving */
    rh_jg_req_t    *reqs;     /* other nodes' requests, newest first */
    int             guests;   /* guests' requests among them */
    int             efd;      /* wakes the jobstate thread */
    int             serving;
} rh_jg = { .run = PTHREAD_MUTEX_INITIALIZER,
            .lock = PTHREAD_MUTEX_INITIALIZER, .efd = -1 };

/* ---- text --------------------------------------------------------------- */

/* Appends to a memstream the unreachable lines of every rank of node. */
static void rh_jg_unreachable_node(FILE *f, int node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void rh_jg_unreachable_node(FILE *f, int node, const char *fmt, ...)
{
    char why[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    for (int r = 0; r < rh_size(); r++) {
        if (rh_core_node_of(r) == node) {
            fprintf(f, "unreachable rank %d node %d: %s\n", r, node, why);
        }
    }
}

static char *rh_jg_text_node(int node, size_t *len, const char *why)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);

    if (f == NULL) {
        return NULL;
    }
    rh_jg_unreachable_node(f, node, "%s", why);
    fclose(f);
    return text;
}

/* This node's part: this rank's snapshot, then its node's other ranks',
 * read on their sockets (all asked at once) until deadline. */
static char *rh_jg_node_part(uint64_t deadline, size_t *len)
{
    int me = rh_rank(), node = rh_core_node_of(me), n = 0;
    int *ranks = malloc(sizeof(int) * (size_t)rh_size());
    char **texts = calloc((size_t)rh_size(), sizeof(char *));
    const char **why = calloc((size_t)rh_size(), sizeof(char *));
    char *text = NULL;
    FILE *f = open_memstream(&text, len);

    if (f == NULL || ranks == NULL || texts == NULL || why == NULL) {
        if (f != NULL) {
            fclose(f);
        }
        free(text);
        text = NULL;
        goto out;
    }
    rh_jobstate_snapshot(f);
    for (int r = 0; r < rh_size(); r++) {
        if (r == me || rh_core_node_of(r) != node) {
            continue;
        }
        if (!rh_tp_peer_alive(r)) {
            fprintf(f, "unreachable rank %d node %d: the rank failed\n", r,
                    node);
            continue;
        }
        ranks[n++] = r;
    }
    rh_jobstate_ask_ranks(ranks, n, deadline, texts, why);
    for (int i = 0; i < n; i++) {
        if (texts[i] != NULL) {
            fputs(texts[i], f);
        } else {
            fprintf(f, "unreachable rank %d node %d: %s\n", ranks[i], node,
                    why[i]);
        }
        free(texts[i]);
    }
    fclose(f);
out:
    free(ranks);
    free(texts);
    free(why);
    return text;
}

/* ---- the asked node's side ---------------------------------------------- */

static rh_status_t rh_jg_send_part(uint32_t dest, uint64_t seq,
                                   const char *text, size_t len)
{
    rh_jg_part_hdr_t h = { .seq = seq, .node = rh_core_node_of(rh_rank()) };

    return rh_am_send(dest, RH_JG_ID_PART, &h, sizeof(h), text, len, NULL,
                      NULL);
}

/* Progress thread: queued for the jobstate thread, which may block on the
 * node's sockets; answered at once when nobody serves. */
static rh_status_t rh_jg_on_ask(void *arg, rh_am_msg_t *msg)
{
    rh_jg_req_t *q;
    rh_jg_ask_t a;
    uint64_t one = 1;
    int serving;

    (void)arg;
    memcpy(&a, msg->hdr, sizeof(a));
    if (msg->data_len != 0 || a.timeout_ms > RH_JG_MAX_TIMEOUT) {
        return RH_ERR_MALFORMED;
    }
    q = calloc(1, sizeof(*q));
    if (q == NULL) {
        return RH_OK;   /* the asker reports this node unreachable */
    }
    q->src = msg->src;
    q->ask = a;
    pthread_mutex_lock(&rh_jg.lock);
    serving = rh_jg.serving && rh_jg.efd >= 0;
    if (serving) {
        q->next = rh_jg.reqs;
        rh_jg.reqs = q;
    }
    pthread_mutex_unlock(&rh_jg.lock);
    if (serving) {
        if (write(rh_jg.efd, &one, sizeof(one)) < 0) {
            /* the counter is full: the thread is awake anyway */
        }
        return RH_OK;
    }
    {
        size_t len = 0;
        char why[96];
        char *text;

        snprintf(why, sizeof(why), "rank %d, asked for its node, does not "
                 "serve its state (it is finalizing)", rh_rank());
        text = rh_jg_text_node(rh_core_node_of(rh_rank()), &len, why);
        if (text != NULL) {
            (void)rh_jg_send_part(q->src, q->ask.seq, text, len);
        }
        free(text);
        free(q);
    }
    return RH_OK;
}

static uint8_t rh_jg_key[RH_JG_KEY_LEN];

static void rh_jg_make_key_once(void)
{
    size_t got = 0;

    while (got < sizeof(rh_jg_key)) {
        ssize_t n = getrandom(rh_jg_key + got, sizeof(rh_jg_key) - got, 0);

        if (n <= 0) {
            /* no entropy source: the time and pid, still no key to guess
             * from another host */
            uint64_t t = rh_time_ns() ^ ((uint64_t)getpid() << 32);

            for (size_t i = got; i < sizeof(rh_jg_key); i++) {
                rh_jg_key[i] ^= (uint8_t)(t >> (8 * (i % 8)));
            }
            break;
        }
        got += (size_t)n;
    }
}

const uint8_t *rh_jobgather_key(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, rh_jg_make_key_once);
    return rh_jg_key;
}

/* Whether a guest showed this rank's key: every byte looked at, whatever
 * differs, so that the time taken says nothing of where. */
static int rh_jg_key_ok(const uint8_t *key)
{
    const uint8_t *mine = rh_jobgather_key();
    uint8_t diff = 0;

    for (int i = 0; i < RH_JG_KEY_LEN; i++) {
        diff |= (uint8_t)(key[i] ^ mine[i]);
    }
    return diff == 0;
}

/* Progress thread: a guest's request, untrusted (the AM layer checked its
 * framing; the body is checked here), queued for the jobstate thread,
 * which answers it; never waited for here. */
static rh_status_t rh_jg_on_guest(void *arg, rh_am_msg_t *msg)
{
    rh_jg_req_t *q;
    rh_jg_ask_t a;
    rh_jg_guest_t g;
    uint64_t one = 1;
    size_t addr_len;
    int queued = 0;

    (void)arg;
    memcpy(&a, msg->hdr, sizeof(a));
    if (msg->src != RH_AM_SRC_GUEST || msg->data == NULL ||
        msg->data_len < sizeof(g) || a.timeout_ms == 0 ||
        a.timeout_ms > RH_JG_MAX_TIMEOUT) {
        return RH_ERR_MALFORMED;   /* a rendezvous payload too: the guest
                                    * sends eager */
    }
    memcpy(&g, msg->data, sizeof(g));
    if (!rh_jg_key_ok(g.key) || g.host_len >= sizeof(q->guest_host) ||
        msg->data_len - sizeof(g) <= g.host_len) {
        return RH_ERR_MALFORMED;
    }
    addr_len = msg->data_len - sizeof(g) - g.host_len;
    if (addr_len > RH_JC_MAX_ADDR) {
        return RH_ERR_MALFORMED;
    }
    q = malloc(sizeof(*q) + addr_len);
    if (q == NULL) {
        return RH_OK;   /* the guest times out */
    }
    q->src = msg->src;
    q->ask = a;
    q->guest_pid = g.pid;
    memcpy(q->guest_host, (const char *)msg->data + sizeof(g), g.host_len);
    q->guest_host[g.host_len] = '\0';
    q->guest_len = addr_len;
    memcpy(q->guest, (const char *)msg->data + sizeof(g) + g.host_len,
           addr_len);
    pthread_mutex_lock(&rh_jg.lock);
    if (rh_jg.serving && rh_jg.efd >= 0 && rh_jg.guests < RH_TP_GUESTS_MAX) {
        q->next = rh_jg.reqs;
        rh_jg.reqs = q;
        rh_jg.guests++;
        queued = 1;
    }
    pthread_mutex_unlock(&rh_jg.lock);
    if (!queued) {
        rh_debug("job state: a request from outside the job dropped (not "
                 "serving, or %d waiting already)", RH_TP_GUESTS_MAX);
        free(q);
        return RH_OK;
    }
    if (write(rh_jg.efd, &one, sizeof(one)) < 0) {
        /* the counter is full: the thread is awake anyway */
    }
    return RH_OK;
}

/* The jobstate thread: the whole job, gathered as for a unix socket's
 * "job" request, to the guest's address. */
static void rh_jg_answer_guest(const rh_jg_req_t *q)
{
    rh_jg_part_hdr_t h = { .seq = q->ask.seq, .node = RH_JG_NODE_JOB };
    size_t len = 0;
    char *text = rh_jobgather_run((int)q->ask.timeout_ms, &len), me[384];

    if (text == NULL) {
        return;   /* no memory: the guest times out */
    }
    /* Looked at once the gather is over: the guest may have given up. */
    rh_jc_host_key(me, sizeof(me));
    if (rh_jc_process_gone(q->guest_host, q->guest_pid, 0, me)) {
        rh_debug("job state: the process outside the job that asked (pid "
                 "%d) is gone", q->guest_pid);
        free(text);
        return;
    }
    if (rh_tp_guest_send(q->guest, q->guest_len, RH_JG_ID_PART, &h,
                         sizeof(h), text, len) != RH_OK) {
        rh_debug("job state: no answer to a process outside the job: %s",
                 rh_last_error());
    }
}

int rh_jobgather_fd(void)
{
    return rh_jg.efd;
}

void rh_jobgather_set_serving(int on)
{
    rh_jg_req_t *q;

    pthread_mutex_lock(&rh_jg.lock);
    if (on && rh_jg.efd < 0) {
        rh_jg.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    }
    rh_jg.serving = on && rh_jg.efd >= 0;
    q = on ? NULL : rh_jg.reqs;
    if (!on) {
        rh_jg.reqs = NULL;
        rh_jg.guests = 0;
    }
    pthread_mutex_unlock(&rh_jg.lock);
    /* Not served now: the askers report this node at their deadline. */
    while (q != NULL) {
        rh_jg_req_t *next = q->next;

        free(q);
        q = next;
    }
}

void rh_jobgather_serve(void)
{
    uint64_t n;
    rh_jg_req_t *q;

    if (read(rh_jg.efd, &n, sizeof(n)) < 0) {
        /* nothing counted: a request is taken below all the same */
    }
    for (;;) {
        size_t len = 0;
        char *text;
        uint64_t budget;

        pthread_mutex_lock(&rh_jg.lock);
        q = rh_jg.reqs;
        if (q != NULL) {
            rh_jg.reqs = q->next;
            rh_jg.guests -= q->src == RH_AM_SRC_GUEST;
        }
        pthread_mutex_unlock(&rh_jg.lock);
        if (q == NULL) {
            return;
        }
        if (q->src == RH_AM_SRC_GUEST) {
            rh_jg_answer_guest(q);
            free(q);
            continue;
        }
        /* Three quarters of the asker's time for the node's sockets: the
         * answer still has to travel. */
        budget = (uint64_t)q->ask.timeout_ms * 750000ull;
        text = rh_jg_node_part(rh_time_ns() + budget, &len);
        if (text == NULL) {
            text = rh_jg_text_node(rh_core_node_of(rh_rank()), &len,
                                   "no memory for the node's state");
        }
        if (text != NULL) {
            rh_status_t s = rh_jg_send_part(q->src, q->ask.seq, text, len);

            if (s != RH_OK) {
                rh_debug("job state: answer to rank %u: %s", q->src,
                         rh_last_error());
            }
        }
        free(text);
        free(q);
    }
}

/* ---- the gatherer's side ------------------------------------------------ */

/* Takes an answer for node (lock held); frees it when its gather is over
 * or the node answered already. */
static void rh_jg_take(uint64_t seq, int node, char *text, size_t len)
{
    rh_jg_slot_t *s;

    if (seq != rh_jg.seq || node < 0 || node >= rh_jg.nodes ||
        (s = &rh_jg.slot[node])->state == RH_JG_DONE ||
        s->state == RH_JG_IDLE) {
        free(text);
        return;
    }
    s->text = text;
    s->len = len;
    s->state = RH_JG_DONE;
    rh_jg.left--;
    pthread_cond_broadcast(&rh_jg.cond);
}

static void rh_jg_rndv_arrived(void *arg, rh_status_t status)
{
    rh_jg_rndv_t *x = arg;

    pthread_mutex_lock(&rh_jg.lock);
    if (status == RH_OK) {
        rh_jg_take(x->seq, x->node, x->buf, x->len);
    } else {
        free(x->buf);   /* the deadline reports the node */
    }
    pthread_mutex_unlock(&rh_jg.lock);
    free(x);
}

static rh_status_t rh_jg_on_part(void *arg, rh_am_msg_t *msg)
{
    rh_jg_part_hdr_t h;
    char *text;

    (void)arg;
    memcpy(&h, msg->hdr, sizeof(h));
    if (h.node < 0 || h.node >= rh_num_nodes() ||
        msg->data_len > RH_JG_MAX_PART) {
        return RH_ERR_MALFORMED;
    }
    text = malloc(msg->data_len + 1);
    if (text == NULL) {
        return RH_OK;   /* the deadline reports the node */
    }
    text[msg->data_len] = '\0';
    if (msg->data == NULL && msg->data_len != 0) {
        rh_jg_rndv_t *x = malloc(sizeof(*x));

        pthread_mutex_lock(&rh_jg.lock);
        if (x == NULL || h.seq != rh_jg.seq || h.node >= rh_jg.nodes ||
            rh_jg.slot[h.node].state != RH_JG_WAITING) {
            pthread_mutex_unlock(&rh_jg.lock);
            free(x);
            free(text);
            return RH_OK;   /* too late, or twice: the payload is dropped */
        }
        rh_jg.slot[h.node].state = RH_JG_RECEIVING;
        pthread_mutex_unlock(&rh_jg.lock);
        *x = (rh_jg_rndv_t){ h.seq, h.node, text, msg->data_len };
        if (rh_am_recv_data(msg, text, rh_jg_rndv_arrived, x) != RH_OK) {
            free(x);   /* not started: the deadline reports the node */
            free(text);
        }
        return RH_OK;
    }
    if (msg->data_len != 0) {
        memcpy(text, msg->data, msg->data_len);
    }
    pthread_mutex_lock(&rh_jg.lock);
    rh_jg_take(h.seq, h.node, text, msg->data_len);
    pthread_mutex_unlock(&rh_jg.lock);
    return RH_OK;
}

rh_status_t rh_jobgather_setup(void)
{
    rh_status_t s;

    s = rh_am_register(RH_JG_ID_ASK, sizeof(rh_jg_ask_t),
                       sizeof(rh_jg_ask_t), rh_jg_on_ask, NULL);
    if (s == RH_OK) {
        s = rh_am_register(RH_JG_ID_PART, sizeof(rh_jg_part_hdr_t),
                           sizeof(rh_jg_part_hdr_t), rh_jg_on_part, NULL);
    }
    /* A request or answer that could not go: the asker's deadline reports
     * the node; a warning in the job's output would blame the job. */
    if (s == RH_OK) {
        s = rh_am_register(RH_JG_ID_GUEST, sizeof(rh_jg_ask_t),
                           sizeof(rh_jg_ask_t), rh_jg_on_guest, NULL);
    }
    if (s == RH_OK) {
        s = rh_am_accept_guests(RH_JG_ID_GUEST);
    }
    if (s == RH_OK) {
        s = rh_am_set_lost(RH_JG_ID_ASK, 0, rh_am_lost_quietly,
                           (void *)"a job-state message");
    }
    if (s == RH_OK) {
        s = rh_am_set_lost(RH_JG_ID_PART, 0, rh_am_lost_quietly,
                           (void *)"a job-state message");
    }
    return s;
}

/* The first live rank of node after `after` (-1: from the start); -1 when
 * none lives. */
static int rh_jg_pick(int node, int after)
{
    for (int r = after + 1; r < rh_size(); r++) {
        if (rh_core_node_of(r) == node && rh_tp_peer_alive(r)) {
            return r;
        }
    }
    return -1;
}

/* Asks node's next live rank (lock not held: the send may take the
 * transport's locks, which its progress thread holds while a handler
 * takes ours); the slot is done with the unreachable lines when there is
 * none or the request cannot go. */
static void rh_jg_ask(int node, uint64_t seq, uint32_t timeout_ms)
{
    rh_jg_ask_t a = { .seq = seq, .timeout_ms = timeout_ms };
    char why[320];
    size_t len = 0;
    char *text;
    int r;

    pthread_mutex_lock(&rh_jg.lock);
    r = rh_jg_pick(node, rh_jg.slot[node].asked);
    if (r >= 0) {
        rh_jg.slot[node].asked = r;
    }
    pthread_mutex_unlock(&rh_jg.lock);
    if (r < 0) {
        snprintf(why, sizeof(why), "the rank failed");
    } else if (rh_am_send((uint32_t)r, RH_JG_ID_ASK, &a, sizeof(a), NULL, 0,
                          NULL, NULL) == RH_OK) {
        return;
    } else {
        snprintf(why, sizeof(why), "the request to rank %d failed: %s", r,
                 rh_last_error());
    }
    text = rh_jg_text_node(node, &len, why);
    pthread_mutex_lock(&rh_jg.lock);
    rh_jg_take(seq, node, text, len);   /* no answer can come: it was not
                                         * sent */
    pthread_mutex_unlock(&rh_jg.lock);
}

static void rh_jg_cond_init(void)
{
    pthread_condattr_t ca;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&rh_jg.cond, &ca);
    pthread_condattr_destroy(&ca);
    rh_jg.cond_ready = 1;
}

/* Waits until every node answered or the deadline; a node whose asked
 * rank fails meanwhile is asked again at its next live rank. Returns with
 * the lock held. */
static void rh_jg_wait(uint64_t seq, uint64_t deadline, uint32_t timeout_ms)
{
    pthread_mutex_lock(&rh_jg.lock);
    while (rh_jg.left > 0) {
        uint64_t now = rh_time_ns(), until;
        struct timespec ts;
        int again = -1;

        if (now >= deadline) {
            break;
        }
        until = deadline - now < RH_JG_SLICE_NS ? deadline :
                now + RH_JG_SLICE_NS;
        ts.tv_sec = (time_t)(until / 1000000000ull);
        ts.tv_nsec = (long)(until % 1000000000ull);
        pthread_cond_timedwait(&rh_jg.cond, &rh_jg.lock, &ts);
        for (int m = 0; m < rh_jg.nodes && again < 0; m++) {
            rh_jg_slot_t *s = &rh_jg.slot[m];

            if (s->state == RH_JG_WAITING && !rh_tp_peer_alive(s->asked)) {
                again = m;
            }
        }
        if (again >= 0) {
            pthread_mutex_unlock(&rh_jg.lock);
            rh_jg_ask(again, seq, timeout_ms);
            pthread_mutex_lock(&rh_jg.lock);
        }
    }
    for (int m = 0; m < rh_jg.nodes; m++) {
        rh_jg_slot_t *s = &rh_jg.slot[m];
        char why[160];

        if (s->state == RH_JG_WAITING || s->state == RH_JG_RECEIVING) {
            snprintf(why, sizeof(why), "node %d did not answer within %u ms "
                     "(rank %d was asked)", m, timeout_ms, s->asked);
            s->text = rh_jg_text_node(m, &s->len, why);
            s->state = RH_JG_DONE;
        }
    }
    rh_jg.left = 0;
}

char *rh_jobgather_run(int timeout_ms, size_t *len)
{
    int nodes = rh_num_nodes(), mine = rh_core_node_of(rh_rank());
    uint64_t start = rh_time_ns(), deadline, seq;
    rh_jg_slot_t *slot;
    char *own, *text = NULL;
    size_t own_len = 0;
    FILE *f;

    if (timeout_ms <= 0 || timeout_ms > RH_JG_MAX_TIMEOUT) {
        timeout_ms = RH_JOBGATHER_TIMEOUT_MS;
    }
    deadline = start + (uint64_t)timeout_ms * 1000000ull;
    slot = calloc((size_t)(nodes > 0 ? nodes : 1), sizeof(*slot));
    if (slot == NULL) {
        return NULL;
    }
    pthread_mutex_lock(&rh_jg.run);
    pthread_mutex_lock(&rh_jg.lock);
    if (!rh_jg.cond_ready) {
        rh_jg_cond_init();
    }
    seq = ++rh_jg.next_seq;
    rh_jg.seq = seq;
    rh_jg.slot = slot;
    rh_jg.nodes = nodes;
    rh_jg.left = 0;
    for (int m = 0; m < nodes; m++) {
        slot[m].asked = -1;
        if (m != mine) {
            slot[m].state = RH_JG_WAITING;
            rh_jg.left++;
        }
    }
    pthread_mutex_unlock(&rh_jg.lock);
    for (int m = 0; m < nodes; m++) {
        if (m != mine) {
            rh_jg_ask(m, seq, (uint32_t)timeout_ms);
        }
    }
    /* Meanwhile this node: its sockets get three quarters of the time, as
     * on the other nodes. */
    own = rh_jg_node_part(start + (uint64_t)timeout_ms * 750000ull,
                          &own_len);
    rh_jg_wait(seq, deadline, (uint32_t)timeout_ms);
    rh_jg.seq = 0;   /* later answers are dropped */
    rh_jg.slot = NULL;
    rh_jg.nodes = 0;
    pthread_mutex_unlock(&rh_jg.lock);
    f = open_memstream(&text, len);
    if (f != NULL) {
        /* the snapshots first, then every unreachable line */
        for (int pass = 0; pass < 2; pass++) {
            for (int m = -1; m < nodes; m++) {
                const char *t = m < 0 ? own : slot[m].text;
                const char *p = t;

                while (p != NULL && *p != '\0') {
                    const char *e = strchr(p, '\n');
                    size_t n = e != NULL ? (size_t)(e - p) + 1 : strlen(p);
                    int unreach = strncmp(p, "unreachable ", 12) == 0;

                    if (unreach == pass) {
                        fwrite(p, 1, n, f);
                    }
                    p += n;
                }
            }
        }
        fputs("end\n", f);   /* the whole answer came: a reader checks */
        fclose(f);
    }
    free(own);
    for (int m = 0; m < nodes; m++) {
        free(slot[m].text);
    }
    free(slot);
    pthread_mutex_unlock(&rh_jg.run);
    return text;
}
