/*
 * libFuzzer target: every active-message handler, through the receive
 * path. An input is a list of messages, handed in order to rh_am_deliver,
 * which runs the wire check and then each message's handler on the
 * progress thread, as for messages that arrived from the network. The
 * runtime is a one-rank job (or rank 0 of a rayhpc-run job), started once.
 *
 * A message is 8 bytes, then its bytes (clipped at the input's end):
 *   flags (1)  bit 0: the bytes are the raw UCX header, wire header
 *                     included (fuzzes the wire check itself); otherwise
 *                     a well-formed wire header is put in front of them
 *              bit 1: the header sits at an odd address (UCX promises no
 *                     alignment)
 *              bit 2: not a message but something this rank does, so
 *                     that answers find state to apply to (id: which;
 *                     src: the node or rank; the header bytes: its
 *                     argument): 0 submits a task to node src (a task
 *                     in flight there), 1 gets, without waiting, an
 *                     object of rank src named by 16 header bytes (a pull
 *                     going on), 2 lets every ref go
 *   id (1)     our AM id (taken modulo the core's ids and one more, which
 *              stands for RH_AM_ID_BATCH, unless raw)
 *   src (1)    the sending rank (modulo the job's size unless raw)
 *   wflags (1) the wire header's flags byte
 *   hlen (2)   header bytes, little endian (modulo 512)
 *   dlen (2)   payload bytes
 *
 * RH_FUZZ_SEEDS=dir writes the seed corpus there and exits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_runtime.h"
#include "transport/am.h"

#define FZ_RAW        1u
#define FZ_MISALIGN   2u
#define FZ_ACTION     4u
#define FZ_MAX_MSGS   64
#define FZ_MAX_REFS   16
#define FZ_CORE_IDS   (RH_AM_ID_ACTOR_CTL + 1)

static uint64_t fz_messages, fz_drops[RH_AM_DROP_NUM + 1];

static void fz_report(void)
{
    fprintf(stderr, "fuzz_am: %llu messages delivered: %llu taken by their "
            "handler, %llu rejected by it, %llu dropped by the wire check\n",
            (unsigned long long)fz_messages,
            (unsigned long long)fz_drops[RH_AM_DROP_NUM],
            (unsigned long long)fz_drops[RH_AM_DROP_REJECTED],
            (unsigned long long)(fz_messages - fz_drops[RH_AM_DROP_NUM] -
                                 fz_drops[RH_AM_DROP_REJECTED]));
}

/* ---- seeds --------------------------------------------------------------- */

typedef struct fz_seed {
    uint8_t buf[4096];
    size_t  len;
} fz_seed_t;

static void fz_seed_msg(fz_seed_t *s, uint8_t flags, uint8_t id, uint8_t src,
                        const void *hdr, uint16_t hlen, const void *data,
                        uint16_t dlen)
{
    uint8_t rec[8] = { flags, id, src, 0, (uint8_t)hlen, (uint8_t)(hlen >> 8),
                       (uint8_t)dlen, (uint8_t)(dlen >> 8) };

    memcpy(s->buf + s->len, rec, sizeof(rec));
    s->len += sizeof(rec);
    if (hlen != 0) {
        memcpy(s->buf + s->len, hdr, hlen);
    }
    s->len += hlen;
    if (dlen != 0) {
        memcpy(s->buf + s->len, data, dlen);
    }
    s->len += dlen;
}

static void fz_put64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, sizeof(v));
}

static void fz_put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, sizeof(v));
}

/* An argument or return item of a forwarded task: kind, 0, length. */
static size_t fz_item(uint8_t *p, uint32_t kind, const void *d, uint64_t len)
{
    fz_put32(p, kind);
    fz_put32(p + 4, 0);
    fz_put64(p + 8, len);
    memcpy(p + 16, d, len);
    return 16 + len;
}

/* The id of an object rank 0 owns: owner | counter | index. */
static void fz_id(uint8_t *p, uint64_t counter, uint32_t index)
{
    fz_put64(p, counter >> 32);
    fz_put64(p + 8, counter << 32 | index);
}

static void fz_write_seeds(const char *dir)
{
    static const uint16_t sizes[FZ_CORE_IDS] = {
        0, 0, 0, 96, 16, 32, 56, 16, 16, 16, 32, 24, 16, 16, 16, 16, 16, 24,
        48, 32
    };
    uint8_t h[256], d[1024];
    size_t n;
    fz_seed_t s;
    char name[64];

    /* One zeroed message of the right size per handler. */
    for (unsigned id = 1; id < FZ_CORE_IDS; id++) {
        memset(h, 0, sizeof(h));
        s.len = 0;
        fz_seed_msg(&s, 0, (uint8_t)id, 0, h, sizes[id], NULL, 0);
        snprintf(name, sizeof(name), "id%02u-empty", id);
        rh_fuzz_write_seed(dir, name, s.buf, s.len);
    }

    /* Calls of the actor out of order (3, 1, a skip of 2), a failing
     * method, and each control message. */
    {
        static const uint64_t seqs[3] = { 3, 1, 4 };

        s.len = 0;
        for (int i = 0; i < 3; i++) {
            memset(h, 0, 48);
            fz_put64(h, RH_FUZZ_ACTOR_HI);
            fz_put64(h + 8, RH_FUZZ_ACTOR_LO);
            fz_put64(h + 16, 100 + (uint64_t)i);    /* counter */
            fz_put64(h + 24, seqs[i]);
            fz_put32(h + 32, i == 2 ? 1 : 0);       /* method */
            fz_put32(h + 36, i == 2 ? 0 : 1);       /* nargs */
            fz_put32(h + 40, 1);                    /* nreturns */
            n = i == 2 ? 0 : fz_item(d, 0, "abcdefgh", 8);
            fz_seed_msg(&s, 0, RH_AM_ID_ACTOR_CALL, 0, h, 48, d,
                        (uint16_t)n);
        }
        for (uint32_t op = 1; op <= 11; op++) {
            memset(h, 0, 32);
            fz_put64(h, RH_FUZZ_ACTOR_HI);
            fz_put64(h + 8, RH_FUZZ_ACTOR_LO);
            fz_put32(h + 16, op);
            fz_put32(h + 20, op == 3 ? 1 : 0);      /* a hold */
            fz_put64(h + 24, 2);                    /* skip 2, token 2 */
            n = op >= 8 && op <= 10 ? 5 : 0;        /* a name */
            memcpy(d, "name", 5);
            fz_seed_msg(&s, 0, RH_AM_ID_ACTOR_CTL, 0, h, 32, d,
                        (uint16_t)n);
        }
        rh_fuzz_write_seed(dir, "actor-calls-and-control", s.buf, s.len);
    }

    /* A task to run here: fz_echo with a value argument, fz_pair with a
     * value and a ref-with-value, fz_big asking for a store return. */
    {
        static const char *const fns[] = { "fz_echo", "fz_pair", "fz_big" };

        for (unsigned f = 0; f < 3; f++) {
            uint32_t big = 100000;

            memset(h, 0, sizeof(h));
            fz_put64(h, 7 + f);                 /* counter */
            fz_put32(h + 8, f == 1 ? 2 : 1);     /* nargs */
            fz_put32(h + 12, f == 1 ? 2 : 1);    /* nreturns */
            fz_put32(h + 16, 1);                /* num_cpus */
            memcpy(h + 32, fns[f], strlen(fns[f]) + 1);
            n = 0;
            if (f == 2) {
                n += fz_item(d + n, 0, &big, sizeof(big));
            } else {
                n += fz_item(d + n, 0, "hello", 5);
            }
            if (f == 1) {
                uint8_t rv[16 + 3];

                fz_id(rv, 3, 1);
                memcpy(rv + 16, "abc", 3);
                n += fz_item(d + n, 10, rv, sizeof(rv));
            }
            s.len = 0;
            fz_seed_msg(&s, 0, RH_AM_ID_TASK_SUBMIT, 0, h, 96, d,
                        (uint16_t)n);
            snprintf(name, sizeof(name), "submit-%s", fns[f]);
            rh_fuzz_write_seed(dir, name, s.buf, s.len);
        }
    }

    /* A task with custom resources and a ref argument, then its answer. */
    memset(h, 0, sizeof(h));
    fz_put64(h, 21);
    fz_put32(h + 8, 1);
    fz_put32(h + 12, 1);
    fz_put32(h + 16, 1);
    fz_put32(h + 20, 6);                        /* res_len */
    memcpy(h + 32, "fz_echo", 8);
    memcpy(d, "gpu=1", 6);
    {
        uint8_t id[16];

        fz_id(id, 5, 1);
        n = 6 + fz_item(d + 6, 8, id, sizeof(id));
    }
    s.len = 0;
    fz_seed_msg(&s, 0, RH_AM_ID_TASK_SUBMIT, 0, h, 96, d, (uint16_t)n);
    memset(h, 0, sizeof(h));
    fz_put64(h, 21);
    fz_put32(h + 8, 1);
    n = fz_item(d, 1, "xyz", 3);               /* RH_FUTURE_READY */
    fz_seed_msg(&s, 0, RH_AM_ID_TASK_DONE, 0, h, 16, d, (uint16_t)n);
    rh_fuzz_write_seed(dir, "submit-ref-then-done", s.buf, s.len);

    /* Answers of each kind: a value, a failure, a large return left there. */
    {
        uint64_t len = 1 << 20;

        memset(h, 0, sizeof(h));
        fz_put64(h, 1);
        fz_put32(h + 8, 3);
        n = fz_item(d, 1, "value", 5);
        n += fz_item(d + n, 2, "it failed", 10);
        n += fz_item(d + n, 9, &len, sizeof(len));
        s.len = 0;
        fz_seed_msg(&s, 0, RH_AM_ID_TASK_DONE, 0, h, 16, d, (uint16_t)n);
        rh_fuzz_write_seed(dir, "done-three-kinds", s.buf, s.len);
    }

    /* Where is object 1/1 (ours)? pin it; then unpin; then a node copied
     * it; then its owner frees it; then a borrow of it and its end. */
    memset(h, 0, sizeof(h));
    fz_id(h, 1, 1);
    fz_put64(h + 16, 99);                       /* token */
    s.len = 0;
    fz_seed_msg(&s, 0, RH_AM_ID_OBJ_LOCATE, 0, h, 32, NULL, 0);
    fz_seed_msg(&s, 0, RH_AM_ID_OBJ_UNPIN, 0, h, 16, NULL, 0);
    fz_seed_msg(&s, 0, RH_AM_ID_OBJ_COPIED, 0, h, 16, NULL, 0);
    fz_seed_msg(&s, 0, RH_AM_ID_OBJ_FREE, 0, h, 16, NULL, 0);
    fz_put32(h + 16, 1);                        /* delta +1 */
    fz_put32(h + 20, 0);
    fz_seed_msg(&s, 0, RH_AM_ID_OBJ_BORROW, 0, h, 24, NULL, 0);
    fz_put32(h + 16, (uint32_t)-1);
    fz_seed_msg(&s, 0, RH_AM_ID_OBJ_BORROW, 0, h, 24, NULL, 0);
    rh_fuzz_write_seed(dir, "object-lifecycle", s.buf, s.len);

    /* The same borrow and its end, coalesced: one batch of two. */
    {
        uint8_t b[128], bh[8];
        rh_am_wire_hdr_t iw = { RH_AM_MAGIC, RH_AM_VERSION, 0,
                                RH_AM_ID_OBJ_BORROW, 24, 0, 0 };

        fz_put32(h + 16, 1);
        memcpy(b, &iw, sizeof(iw));
        memcpy(b + 16, h, 24);
        fz_put32(h + 16, (uint32_t)-1);
        memcpy(b + 40, &iw, sizeof(iw));
        memcpy(b + 56, h, 24);
        fz_put32(bh, 2);
        fz_put32(bh + 4, 80);
        s.len = 0;
        fz_seed_msg(&s, 0, FZ_CORE_IDS, 0, bh, 8, b, 80);
        rh_fuzz_write_seed(dir, "batch-of-two", s.buf, s.len);
    }

    /* Answers to a pull: a value, a place with an rkey and extra copies,
     * a referral, a failure. */
    {
        static const uint32_t kinds[] = { 1, 2, 3, 4, 5 };

        for (unsigned k = 0; k < 5; k++) {
            memset(h, 0, sizeof(h));
            fz_id(h, 2, 1);
            fz_put64(h + 16, 1);                 /* token */
            fz_put64(h + 24, kinds[k] == 1 ? 4 : 4096);   /* len */
            fz_put32(h + 40, kinds[k]);
            n = 0;
            if (kinds[k] == 1) {
                memcpy(d, "four", 4);
                n = 4;
            } else if (kinds[k] == 2) {
                fz_put32(h + 48, 8);             /* rkey_len */
                fz_put32(h + 52, 1);             /* nextra */
                memset(d, 0xab, 8);
                fz_put32(d + 8, 0);
                n = 12;
            } else if (kinds[k] >= 4) {
                memcpy(d, "gone\0", 5);
                n = 5;
            }
            s.len = 0;
            fz_seed_msg(&s, 0, RH_AM_ID_OBJ_WHERE, 0, h, 56, d, (uint16_t)n);
            snprintf(name, sizeof(name), "where-kind%u", kinds[k]);
            rh_fuzz_write_seed(dir, name, s.buf, s.len);
        }
    }

    /* The global scheduler: a heartbeat, a placement request for one CPU,
     * an answer. */
    memset(h, 0, sizeof(h));
    fz_put64(h, 3);
    fz_put64(h + 8, 100000);
    s.len = 0;
    fz_seed_msg(&s, 0, RH_AM_ID_SCHED_LOAD, 0, h, 32, NULL, 0);
    memset(h, 0, sizeof(h));
    fz_put64(h, 5);
    memset(d, 0, 16);
    fz_put32(d, 1);                             /* cpus */
    fz_seed_msg(&s, 0, RH_AM_ID_SCHED_PLACE, 0, h, 24, d, 8);
    fz_seed_msg(&s, 0, RH_AM_ID_SCHED_PLACED, 0, h, 16, NULL, 0);
    rh_fuzz_write_seed(dir, "scheduler", s.buf, s.len);

    /* A placement group of one bundle: create, reserve, state, remove. */
    memset(h, 0, sizeof(h));
    fz_put64(h, 1);
    fz_put32(h + 8, 1);
    memset(d, 0, sizeof(d));
    fz_put32(d, 1);
    s.len = 0;
    fz_seed_msg(&s, 0, RH_AM_ID_PG_CREATE, 0, h, 16, d, 256);
    fz_seed_msg(&s, 0, RH_AM_ID_PG_RESERVE, 0, h, 16, d, 256);
    fz_put32(d, 0);
    fz_put32(h + 12, 1);
    fz_seed_msg(&s, 0, RH_AM_ID_PG_STATE, 0, h, 16, d, 4);
    fz_put32(h + 12, 0);
    fz_seed_msg(&s, 0, RH_AM_ID_PG_REMOVE, 0, h, 16, NULL, 0);
    rh_fuzz_write_seed(dir, "pgroup", s.buf, s.len);

    /* On 2 ranks: a task sent to node 1, then an answer from rank 1; a
     * get of an object of rank 1, then where it is; then both let go. */
    s.len = 0;
    fz_seed_msg(&s, FZ_ACTION, 0, 1, "abc", 3, NULL, 0);
    memset(h, 0, sizeof(h));
    fz_put64(h, 1);
    fz_put32(h + 8, 1);
    n = fz_item(d, 1, "abc", 3);
    fz_seed_msg(&s, 0, RH_AM_ID_TASK_DONE, 1, h, 16, d, (uint16_t)n);
    memset(h, 0, sizeof(h));
    fz_id(h, 1, 1);
    fz_seed_msg(&s, FZ_ACTION, 1, 1, h, 16, NULL, 0);
    fz_put64(h, 1ull << 32);                    /* owner 1 */
    fz_put64(h + 16, 1);                        /* token */
    fz_put64(h + 24, 4);
    fz_put32(h + 40, 1);                        /* a value */
    fz_seed_msg(&s, 0, RH_AM_ID_OBJ_WHERE, 1, h, 56, "four", 4);
    fz_seed_msg(&s, FZ_ACTION, 2, 0, NULL, 0, NULL, 0);
    rh_fuzz_write_seed(dir, "actions-then-answers", s.buf, s.len);

    /* The finalize handshake, and the wire check's own cases. */
    s.len = 0;
    fz_seed_msg(&s, 0, RH_AM_ID_FINALIZE, 0, NULL, 0, NULL, 0);
    fz_seed_msg(&s, 0, RH_AM_ID_FINALIZE_GO, 0, NULL, 0, NULL, 0);
    rh_fuzz_write_seed(dir, "finalize", s.buf, s.len);
    {
        rh_am_wire_hdr_t w = { RH_AM_MAGIC, RH_AM_VERSION, 0,
                               RH_AM_ID_OBJ_UNPIN, 16, 0, 0 };

        memcpy(h, &w, sizeof(w));
        fz_id(h + sizeof(w), 1, 1);
        s.len = 0;
        fz_seed_msg(&s, FZ_RAW, 0, 0, h, sizeof(w) + 16, NULL, 0);
        fz_seed_msg(&s, FZ_RAW | FZ_MISALIGN, 0, 0, h, 15, NULL, 0);
        rh_fuzz_write_seed(dir, "raw-wire", s.buf, s.len);
    }
}

/* ---- the target ---------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return rh_fuzz_initialize("fuzz_am", fz_write_seeds, fz_report);
}

/* Copies a message into buffers of exactly its sizes, so that ASan sees
 * any read past either; *hbuf is the header's allocation, to free. */
static void fz_add(rh_am_raw_t *m, uint8_t **hbuf, uint8_t flags,
                   uint8_t id, uint8_t src, uint8_t wflags,
                   const uint8_t *hdr, size_t hlen, const uint8_t *data,
                   size_t dlen)
{
    size_t misalign = (flags & FZ_MISALIGN) != 0;
    size_t whole = (flags & FZ_RAW) ? hlen : sizeof(rh_am_wire_hdr_t) + hlen;
    uint8_t *h;
    /* UCX hands an eager payload as a pointer into its receive buffer,
     * never NULL, also when it is empty: malloc(0) is such a pointer that
     * ASan lets nobody read through. */
    uint8_t *d = malloc(dlen);

    *hbuf = malloc(whole + misalign);
    if (*hbuf == NULL || d == NULL) {
        abort();
    }
    h = *hbuf + misalign;
    if (flags & FZ_RAW) {
        if (hlen != 0) {
            memcpy(h, hdr, hlen);
        }
    } else {
        rh_am_wire_hdr_t w;

        w.magic = RH_AM_MAGIC;
        w.version = RH_AM_VERSION;
        w.flags = wflags;
        w.id = (uint16_t)(id % (FZ_CORE_IDS + 1));
        w.id = w.id == FZ_CORE_IDS ? RH_AM_ID_BATCH : w.id;
        w.hdr_len = (uint16_t)hlen;
        w.src = (uint32_t)(src % rh_size());
        w.data_len = (uint32_t)dlen;
        memcpy(h, &w, sizeof(w));
        if (hlen != 0) {
            memcpy(h + sizeof(w), hdr, hlen);
        }
    }
    if (dlen != 0) {
        memcpy(d, data, dlen);
    }
    m->hdr = h;
    m->hlen = whole;
    m->data = d;
    m->dlen = dlen;
    m->reason = RH_AM_DROP_NUM;
}

typedef struct fz_batch {
    rh_am_raw_t msgs[FZ_MAX_MSGS];
    uint8_t    *hbufs[FZ_MAX_MSGS];
    size_t      n;
    rh_ref_t    refs[FZ_MAX_REFS];   /* holds of this input's actions */
    int         nrefs;
} fz_batch_t;

/* Delivers what the input has so far, all at once: one trip to the
 * progress thread. */
static void fz_flush(fz_batch_t *b)
{
    if (b->n != 0 && rh_am_deliver(b->msgs, b->n) != RH_OK) {
        fprintf(stderr, "fuzz_am: %s\n", rh_last_error());
        abort();
    }
    for (size_t i = 0; i < b->n; i++) {
        fz_messages++;
        fz_drops[b->msgs[i].reason]++;
        free(b->msgs[i].data);
        free(b->hbufs[i]);
    }
    b->n = 0;
}

static void fz_let_go(fz_batch_t *b)
{
    while (b->nrefs > 0) {
        rh_release(b->refs[--b->nrefs]);
    }
}

static void fz_act(fz_batch_t *b, uint8_t what, uint8_t where,
                   const uint8_t *arg, size_t len)
{
    switch (what % 3) {
    case 0: {
        rh_task_params_t p;
        rh_arg_t a = rh_arg_bytes(arg, len);
        rh_ref_t ref;

        memset(&p, 0, sizeof(p));
        p.field_mask = RH_TASK_PARAM_FIELD_STRATEGY;
        p.strategy = RH_STRATEGY_NODE_AFFINITY;
        p.node = where % rh_num_nodes();
        if (b->nrefs < FZ_MAX_REFS &&
            rh_remote("fz_echo", &a, 1, &p, &ref) == RH_OK) {
            b->refs[b->nrefs++] = ref;
        }
        break;
    }
    case 1: {
        rh_ref_t ref = { 0, 0 };
        const void *ptr;
        size_t got;

        memcpy(&ref, arg, len < sizeof(ref) ? len : sizeof(ref));
        ref.hi = (uint64_t)(where % rh_size()) << 32 | (uint32_t)ref.hi;
        if (b->nrefs < FZ_MAX_REFS &&
            rh_get(ref, &ptr, &got, 0) == RH_OK) {
            b->refs[b->nrefs++] = ref;
        }
        break;
    }
    default:
        fz_let_go(b);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t size)
{
    rh_fuzz_in_t in = { buf, size };
    static fz_batch_t b;

    while (b.n < FZ_MAX_MSGS && in.left >= 8) {
        uint8_t flags = rh_fuzz_u8(&in);
        uint8_t id = rh_fuzz_u8(&in);
        uint8_t src = rh_fuzz_u8(&in);
        uint8_t wflags = rh_fuzz_u8(&in);
        /* a header longer than any handler takes, at most */
        uint16_t hlen = rh_fuzz_u16(&in) % (2 * RH_AM_MAX_HDR);
        uint16_t dlen = rh_fuzz_u16(&in);
        size_t hgot, dgot;
        const uint8_t *hdr = rh_fuzz_bytes(&in, hlen, &hgot);
        const uint8_t *data = rh_fuzz_bytes(&in, dlen, &dgot);

        if (flags & FZ_ACTION) {
            fz_flush(&b);   /* what came before it arrives first */
            fz_act(&b, id, src, hdr, hgot);
            continue;
        }
        if (!(flags & FZ_RAW) && hgot > RH_AM_MAX_HDR) {
            hgot = RH_AM_MAX_HDR + 1;   /* still too long: dropped */
        }
        fz_add(&b.msgs[b.n], &b.hbufs[b.n], flags, id, src, wflags, hdr,
               hgot, data, dgot);
        b.n++;
    }
    fz_flush(&b);
    fz_let_go(&b);
    return 0;
}
