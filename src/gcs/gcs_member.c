/*
 * Membership and reconfiguration. A few ranks on distinct nodes hold the
 * configuration (epoch, and the chain of each shard): the master. Every
 * rank pings every master each quarter of RAYHPC_FAILURE_TIMEOUT_MS; a
 * master that has not heard from a rank for a whole timeout, or whose
 * transport saw it fail, suspects it. The leader (the lowest master alive)
 * proposes the configuration without the suspects under the next epoch;
 * each master accepts at most one configuration per epoch, so at most one
 * gets a majority; once one has, the leader sends it to every rank
 * (NEWCONF) and the chains re-form under it.
 *
 * Silence is only a guess (a starved host falls silent too): a master that
 * hears a silent suspect again withdraws the suspicion, unless a committed
 * configuration already dropped the rank, and a leader gives up a
 * proposal that drops it. A leader's own proposal binds nobody once it
 * stopped counting votes for it: only the leader that proposed commits.
 * Silence may be one-sided too (one rank's heartbeats starved to the leader
 * alone): a voter refuses a proposal that drops for its silence a rank it
 * heard within the timeout, and the leader then counts that rank as heard.
 *
 * A replica serves (accepts writes at the head, reads at the tail) only
 * while a majority of the masters confirmed its epoch within half a
 * timeout: the pongs of the masters, or the NEWCONF they voted for. A
 * minority cut off from the others stops serving half a timeout after its
 * last confirmation, before the majority can have declared it dead (a
 * whole timeout), so two halves never both accept writes.
 *
 * Everything here runs on the progress thread, but for the timer thread,
 * which only posts the tick.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/completion.h"
#include "base/config.h"
#include "base/log.h"
#include "base/status.h"
#include "core/core.h"
#include "gcs/gcs_wire.h"
#include "transport/transport.h"

enum { RH_GCS_HB_PING = 0, RH_GCS_HB_PONG = 1 };
/* Why a master suspects a rank. Only silence is withdrawn when the rank is
 * heard again; a failure its transport saw is final. */
enum { RH_GCS_SUSPECT_NO = 0, RH_GCS_SUSPECT_SILENT = 1,
       RH_GCS_SUSPECT_RECORD = 2 /* dropped: record the death */,
       RH_GCS_SUSPECT_FAILED = 3 };
enum { RH_GCS_CONF_PROPOSE = 1, RH_GCS_CONF_ACCEPT = 2,
       RH_GCS_CONF_REJECT = 3, RH_GCS_CONF_NEW = 4,
       RH_GCS_CONF_CAUGHT = 5 /* joining rank -> masters; voters: shard */,
       RH_GCS_CONF_REFUSE = 6 /* voter -> leader; voters: how many
                               * rh_gcs_vouch_t follow */ };

typedef struct rh_gcs_hb_hdr {
    uint64_t epoch;
    uint32_t kind;
    uint32_t pad;
} rh_gcs_hb_hdr_t;

/* CONF; the payload is a packed configuration (none for ACCEPT), for
 * PROPOSE followed by one byte per rank: 1 where the proposal drops the
 * rank for its silence alone (a drop a voter that hears the rank refuses),
 * and for REFUSE the ranks the voter heard (rh_gcs_vouch_t). */
typedef struct rh_gcs_conf_hdr {
    uint64_t epoch;
    uint32_t kind;
    uint32_t voters;    /* NEW: bit i: masters[i] accepted it */
} rh_gcs_conf_hdr_t;

/* REFUSE: a rank the proposal dropped for its silence that the voter heard
 * age_ns before it refused. */
typedef struct rh_gcs_vouch {
    int32_t  rank;
    uint32_t pad;
    uint64_t age_ns;
} rh_gcs_vouch_t;

static struct {
    uint64_t       timeout_ns;
    uint64_t       start_ns;
    /* every rank: when each master last confirmed which epoch */
    uint64_t       confirm_ns[RH_GCS_MASTERS_MAX];
    uint64_t       confirm_epoch[RH_GCS_MASTERS_MAX];
    /* masters */
    int            my_master;       /* index in masters, -1: not one */
    uint64_t      *last_seen;       /* size: last ping (0: never) */
    uint64_t      *vouched;         /* size: when another master last heard
                                     * the rank, by its refusal (0: never) */
    rh_gcs_vouch_t *vouch_buf;      /* size: a refusal being built */
    uint8_t       *suspect;         /* size: RH_GCS_SUSPECT_* */
    rh_gcs_map_t   accepted;        /* the highest configuration accepted */
    int            accepted_own;    /* accepted is our own proposal, built
                                     * on the committed configuration */
    /* the leader's proposal */
    rh_gcs_map_t   proposal;
    uint8_t       *silent;          /* size: the proposal drops the rank for
                                     * its silence alone */
    uint32_t       votes;
    uint64_t       proposed_ns;
    int            proposing;
    int32_t       *caught;          /* nshards: the joining rank that holds
                                     * the shard's state under our epoch,
                                     * -1: none */
    uint8_t       *alive;           /* size: scratch for picking joiners */
    /* the timer */
    pthread_t      timer;
    pthread_mutex_t timer_lock;
    pthread_cond_t timer_cond;
    int            timer_started;
    uint32_t       job_size;       /* the map's ranks, read at start: the
                                    * progress thread rewrites the map */
    int            ticked;          /* the first tick ran */
    _Atomic int    stop;
    _Atomic int    tick_queued;
    _Atomic int    quiet;           /* finalizing: no more suspicion */
    _Atomic int    cut_at;          /* tests: the partition's boundary */
    _Atomic int    deaf;            /* tests: membership messages ignored */
    _Atomic int    deaf_to;         /* tests: those of this rank ignored */
    _Atomic int    refusals;        /* tests: refusals received */
    _Atomic int    hold_joins;      /* tests: joiners stay joiners */
} rh_gcs_mb = { .my_master = -1,
                .timer_lock = PTHREAD_MUTEX_INITIALIZER };

static rh_tp_op_t rh_gcs_tick_op;

/* Only the progress thread writes; tests read from theirs. */
static void rh_gcs_set_suspect(uint32_t r, uint8_t why)
{
    __atomic_store_n(&rh_gcs_mb.suspect[r], why, __ATOMIC_RELAXED);
}

static _Atomic(rh_gcs_beat_fn) rh_gcs_beat;

void rh_gcs_set_beat(rh_gcs_beat_fn fn)
{
    atomic_store(&rh_gcs_beat, fn);
}

int rh_gcs_cut(int peer)
{
    int k = atomic_load_explicit(&rh_gcs_mb.cut_at, memory_order_relaxed);

    return k > 0 && (rh_gcs_rank < k) != (peer < k);
}

void rh_gcs_test_partition(int boundary)
{
    atomic_store(&rh_gcs_mb.cut_at, boundary);
}

void rh_gcs_test_deaf(int on)
{
    atomic_store(&rh_gcs_mb.deaf, on);
}

void rh_gcs_test_deaf_to(int rank)
{
    atomic_store(&rh_gcs_mb.deaf_to, rank);
}

void rh_gcs_test_hold_joins(int on)
{
    atomic_store(&rh_gcs_mb.hold_joins, on);
}

int rh_gcs_test_caught(uint32_t shard)
{
    int32_t *caught = rh_gcs_mb.caught;

    return caught != NULL && shard < rh_gcs_nshards ?
           __atomic_load_n(&caught[shard], __ATOMIC_RELAXED) : -1;
}

int rh_gcs_test_refusals(void)
{
    return atomic_load(&rh_gcs_mb.refusals);
}

static int rh_gcs_deaf_to(int src)
{
    return atomic_load(&rh_gcs_mb.deaf) ||
           atomic_load(&rh_gcs_mb.deaf_to) == src;
}

int rh_gcs_test_suspects(int rank)
{
    uint8_t *suspect = rh_gcs_mb.suspect;

    return suspect != NULL && rank >= 0 &&
           (uint32_t)rank < rh_gcs_mb.job_size &&
           __atomic_load_n(&suspect[rank], __ATOMIC_RELAXED) != 0;
}

rh_status_t rh_gcs_send(int dest, uint16_t id, const void *hdr,
                        size_t hdr_len, const void *data, size_t len)
{
    if (dest < 0) {
        return RH_ERR_PEER_FAILED;
    }
    if (rh_gcs_cut(dest)) {
        return RH_OK;   /* lost on the way, as a cut network loses it */
    }
    return rh_am_send((uint32_t)dest, id, hdr, hdr_len, data, len, NULL,
                      NULL);
}

uint64_t rh_gcs_timeout_ns(void)
{
    return rh_gcs_mb.timeout_ns;
}

static uint32_t rh_gcs_majority(void)
{
    return rh_gcs_map.nmasters / 2 + 1;
}

int rh_gcs_lease_ok(void)
{
    uint64_t now = rh_time_ns();
    uint32_t n = 0;

    /* Until the first tick every rank holds the first configuration, the
     * one all ranks started with: nothing can have replaced it yet. */
    if (!rh_gcs_mb.ticked) {
        return rh_gcs_map.epoch == 1;
    }
    for (uint32_t i = 0; i < rh_gcs_map.nmasters; i++) {
        if ((int)i == rh_gcs_mb.my_master ||
            (rh_gcs_mb.confirm_epoch[i] == rh_gcs_map.epoch &&
             now - rh_gcs_mb.confirm_ns[i] <= rh_gcs_mb.timeout_ns / 2)) {
            n++;
        }
    }
    return n >= rh_gcs_majority();
}

/* ---- configurations ----------------------------------------------------------- */

/* m: the configuration sent (NULL for ACCEPT, which names its epoch);
 * extra: bytes after it (PROPOSE's silent drops). */
static void rh_gcs_send_conf(int dest, uint32_t kind, uint64_t epoch,
                             const rh_gcs_map_t *m, uint32_t voters,
                             const void *extra, size_t extra_len)
{
    rh_gcs_conf_hdr_t h = { m != NULL ? m->epoch : epoch, kind, voters };
    size_t mlen = m != NULL ? rh_gcs_map_packed_size(m) : 0;
    size_t len = mlen + extra_len;
    uint8_t *buf = len != 0 ? malloc(len) : NULL;

    if (len != 0 && buf == NULL) {
        rh_error("GCS: no memory to send a configuration");
        return;
    }
    if (m != NULL) {
        rh_gcs_map_pack(m, buf);
    }
    if (extra_len != 0) {
        memcpy(buf + mlen, extra, extra_len);
    }
    (void)rh_gcs_send(dest, RH_AM_ID_GCS_CONF, &h, sizeof(h), buf, len);
    free(buf);
}

void rh_gcs_offer_conf(int dest)
{
    rh_gcs_send_conf(dest, RH_GCS_CONF_NEW, 0, &rh_gcs_map, 0, NULL, 0);
}

void rh_gcs_caught_up(uint32_t shard, uint64_t epoch)
{
    rh_gcs_conf_hdr_t h = { epoch, RH_GCS_CONF_CAUGHT, shard };

    for (uint32_t i = 0; i < rh_gcs_map.nmasters; i++) {
        if (!rh_gcs_map.dead[rh_gcs_map.masters[i]]) {
            (void)rh_gcs_send(rh_gcs_map.masters[i], RH_AM_ID_GCS_CONF, &h,
                              sizeof(h), NULL, 0);
        }
    }
}

/* Writes each newly dead rank into the node table, for subscribers. */
static void rh_gcs_death_done(rh_gcs_op_t *op)
{
    free(op);
}

static void rh_gcs_publish_death(int rank, uint64_t epoch)
{
    typedef struct { rh_gcs_op_t op; char key[32]; uint64_t epoch; } rec_t;
    rec_t *r = calloc(1, sizeof(*r));

    if (r == NULL) {
        return;
    }
    r->op.table = RH_GCS_T_NODE;
    r->op.klen = (size_t)snprintf(r->key, sizeof(r->key), "dead/%d", rank);
    r->op.key = r->key;
    r->epoch = epoch;
    r->op.value = &r->epoch;
    r->op.vlen = sizeof(r->epoch);
    r->op.done = rh_gcs_death_done;
    if (rh_gcs_put_async(&r->op) != RH_OK) {
        free(r);
    }
}

/* Adopts a committed configuration newer than ours. */
static void rh_gcs_adopt(const rh_gcs_map_t *m, uint32_t voters)
{
    rh_gcs_map_t old;
    uint64_t now = rh_time_ns();

    memset(&old, 0, sizeof(old));
    if (m->epoch <= rh_gcs_map.epoch || m->size != rh_gcs_map.size ||
        m->nshards != rh_gcs_map.nshards) {
        return;
    }
    if (rh_gcs_map_copy(&old, &rh_gcs_map) != RH_OK) {
        rh_error("GCS: no memory to adopt epoch %llu",
                 (unsigned long long)m->epoch);
        return;
    }
    pthread_rwlock_wrlock(&rh_gcs_map_lock);
    if (rh_gcs_map_copy(&rh_gcs_map, m) != RH_OK) {
        pthread_rwlock_unlock(&rh_gcs_map_lock);
        rh_gcs_map_free(&old);
        rh_error("GCS: no memory to adopt epoch %llu",
                 (unsigned long long)m->epoch);
        return;
    }
    pthread_rwlock_unlock(&rh_gcs_map_lock);
    for (uint32_t i = 0; i < m->nmasters; i++) {
        if (voters & (1u << i)) {
            rh_gcs_mb.confirm_ns[i] = now;
            rh_gcs_mb.confirm_epoch[i] = m->epoch;
        }
    }
    if (rh_gcs_mb.my_master >= 0 && m->epoch > rh_gcs_mb.accepted.epoch) {
        (void)rh_gcs_map_copy(&rh_gcs_mb.accepted, m);
    }
    if (m->epoch >= rh_gcs_mb.accepted.epoch) {
        rh_gcs_mb.accepted_own = 0;
    }
    if (rh_gcs_mb.proposing && rh_gcs_mb.proposal.epoch <= m->epoch) {
        rh_gcs_mb.proposing = 0;
    }
    for (uint32_t s = 0; rh_gcs_mb.caught != NULL && s < m->nshards; s++) {
        /* a joiner catches up again under it */
        __atomic_store_n(&rh_gcs_mb.caught[s], -1, __ATOMIC_RELAXED);
    }
    rh_info("GCS epoch %llu", (unsigned long long)m->epoch);
    if (m->dead[rh_gcs_rank]) {
        rh_warn("GCS epoch %llu dropped this rank (rank %d): the others "
                "took it for dead; it no longer holds GCS replicas",
                (unsigned long long)m->epoch, rh_gcs_rank);
    }
    /* Only the GCS drops them: a rank merely slow (a starved progress
     * thread) must not be failed for the whole runtime; the runtime learns
     * real deaths from its transport, and anybody may subscribe to the
     * node table's dead/ records. */
    for (uint32_t r = 0; r < m->size; r++) {
        if (m->dead[r] && !old.dead[r] && (int)r != rh_gcs_rank) {
            rh_info("GCS epoch %llu dropped rank %u",
                    (unsigned long long)m->epoch, r);
        }
    }
    rh_gcs_chain_reconfigure(&old);
    rh_gcs_client_reconfigure();
    rh_gcs_map_free(&old);
}

static int rh_gcs_leader(void)
{
    uint64_t now = rh_time_ns();

    for (uint32_t i = 0; i < rh_gcs_map.nmasters; i++) {
        int m = rh_gcs_map.masters[i];

        if (rh_gcs_map.dead[m] || rh_gcs_mb.suspect[m]) {
            continue;
        }
        if (m == rh_gcs_rank || (rh_gcs_mb.last_seen[m] != 0 &&
                                 now - rh_gcs_mb.last_seen[m] <=
                                 rh_gcs_mb.timeout_ns)) {
            return m;
        }
    }
    return -1;
}

/* Chains that lost members grow back, one rank at a time: a live rank
 * not in the chain joins it behind the tail (m->joining), which sends it
 * the shard's state and then every write it applies; once the joiner says
 * it caught up under our epoch, the next configuration makes it the tail.
 * 1 when m changed. */
static int rh_gcs_grow(rh_gcs_map_t *m)
{
    uint64_t now = rh_time_ns();
    int changed = 0;

    for (uint32_t r = 0; r < m->size; r++) {
        rh_gcs_mb.alive[r] = !rh_gcs_mb.suspect[r] && !m->dead[r] &&
                             ((int)r == rh_gcs_rank ||
                              (rh_gcs_mb.last_seen[r] != 0 &&
                               now - rh_gcs_mb.last_seen[r] <=
                               rh_gcs_mb.timeout_ns));
    }
    for (uint32_t s = 0; s < m->nshards; s++) {
        int j = m->joining[s];

        if (j >= 0 && rh_gcs_mb.caught[s] == j && m->len[s] < m->replicas &&
            m->epoch == rh_gcs_map.epoch &&
            !atomic_load(&rh_gcs_mb.hold_joins)) {
            m->chain[(size_t)s * m->replicas + m->len[s]++] = j;
            m->joining[s] = -1;
            changed = 1;
            rh_info("GCS: rank %d becomes the tail of shard %u", j, s);
        }
        if (m->joining[s] < 0) {
            j = rh_gcs_map_pick_joiner(m, s, rh_gcs_mb.alive,
                                       rh_gcs_node_of);
            if (j >= 0) {
                m->joining[s] = j;
                changed = 1;
                rh_info("GCS: rank %d joins the chain of shard %u", j, s);
            }
        }
    }
    return changed;
}

/* The leader: a new configuration without the suspects, with chains grown
 * back, on top of the highest one accepted from another leader (it may
 * have been committed) or committed. Our own earlier proposal is not
 * built on: we stopped counting its votes, so it was never committed and
 * never will be, and a suspicion withdrawn since must not come back
 * through it. The epoch still goes past every one accepted. */
static void rh_gcs_propose(void)
{
    uint64_t top = rh_gcs_mb.accepted.epoch > rh_gcs_map.epoch ?
                   rh_gcs_mb.accepted.epoch : rh_gcs_map.epoch;
    const rh_gcs_map_t *base = rh_gcs_mb.accepted.epoch > rh_gcs_map.epoch &&
                               !rh_gcs_mb.accepted_own ?
                               &rh_gcs_mb.accepted : &rh_gcs_map;
    int changed = 0;

    if (rh_gcs_map_copy(&rh_gcs_mb.proposal, base) != RH_OK) {
        return;
    }
    /* Only the drops this proposal makes for silence are marked for the
     * voters to check: a drop the base holds may have been committed
     * (it stays final), and a failure the transport saw is final too. */
    for (uint32_t r = 0; r < rh_gcs_map.size; r++) {
        rh_gcs_mb.silent[r] = rh_gcs_mb.suspect[r] == RH_GCS_SUSPECT_SILENT &&
                              !base->dead[r];
        if (rh_gcs_mb.suspect[r]) {
            changed |= rh_gcs_map_drop(&rh_gcs_mb.proposal, (int)r);
        }
    }
    changed |= rh_gcs_grow(&rh_gcs_mb.proposal);
    if (!changed && base == &rh_gcs_map) {
        return;
    }
    rh_gcs_mb.proposal.epoch = top + 1;
    rh_gcs_mb.proposing = 1;
    rh_gcs_mb.proposed_ns = rh_time_ns();
    rh_gcs_mb.votes = 1u << rh_gcs_mb.my_master;
    /* Built on another leader's, ours carries what that one may have
     * committed: it binds us as that one does. */
    if (rh_gcs_map_copy(&rh_gcs_mb.accepted, &rh_gcs_mb.proposal) == RH_OK) {
        rh_gcs_mb.accepted_own = base == &rh_gcs_map;
    }
    rh_info("GCS: proposing epoch %llu",
            (unsigned long long)rh_gcs_mb.proposal.epoch);
    for (uint32_t i = 0; i < rh_gcs_map.nmasters; i++) {
        if ((int)i != rh_gcs_mb.my_master &&
            !rh_gcs_mb.proposal.dead[rh_gcs_map.masters[i]]) {
            rh_gcs_send_conf(rh_gcs_map.masters[i], RH_GCS_CONF_PROPOSE, 0,
                             &rh_gcs_mb.proposal, 0, rh_gcs_mb.silent,
                             rh_gcs_map.size);
        }
    }
}

static void rh_gcs_commit_if_majority(void)
{
    rh_gcs_map_t m;
    uint32_t votes = rh_gcs_mb.votes;

    if ((uint32_t)__builtin_popcount(votes) < rh_gcs_majority()) {
        return;
    }
    memset(&m, 0, sizeof(m));
    if (rh_gcs_map_copy(&m, &rh_gcs_mb.proposal) != RH_OK) {
        return;
    }
    rh_gcs_mb.proposing = 0;
    for (uint32_t r = 0; r < m.size; r++) {
        if (!m.dead[r] && (int)r != rh_gcs_rank) {
            rh_gcs_send_conf((int)r, RH_GCS_CONF_NEW, 0, &m, votes, NULL, 0);
        }
    }
    /* The leader records the deaths, once, after it adopted the new
     * chains (the records go through them). */
    for (uint32_t r = 0; r < m.size; r++) {
        if (m.dead[r] && !rh_gcs_map.dead[r]) {
            rh_gcs_set_suspect(r, RH_GCS_SUSPECT_RECORD);
        }
    }
    rh_gcs_adopt(&m, votes);
    for (uint32_t r = 0; r < m.size; r++) {
        if (rh_gcs_mb.suspect[r] == RH_GCS_SUSPECT_RECORD) {
            rh_gcs_set_suspect(r, RH_GCS_SUSPECT_FAILED);
            rh_gcs_publish_death((int)r, m.epoch);
        }
    }
    rh_gcs_map_free(&m);
}

/* A voter: the ranks that proposal m drops for their silence alone
 * (silent) which we heard within a timeout and do not suspect ourselves,
 * listed in out (size entries); how many. A drop our committed or
 * accepted configuration holds is not checked: it may have been
 * committed, and a committed drop stays final. */
static uint32_t rh_gcs_vouch_for(const rh_gcs_map_t *m, const uint8_t *silent,
                                 rh_gcs_vouch_t *out)
{
    uint64_t now = rh_time_ns();
    uint32_t n = 0;

    for (uint32_t r = 0; r < m->size; r++) {
        uint64_t seen = rh_gcs_mb.last_seen[r];

        if (!silent[r] || !m->dead[r] || rh_gcs_map.dead[r] ||
            rh_gcs_mb.accepted.dead[r] || rh_gcs_mb.suspect[r]) {
            continue;
        }
        if ((int)r == rh_gcs_rank) {
            seen = now;
        }
        if (seen != 0 && now - seen <= rh_gcs_mb.timeout_ns) {
            out[n].rank = (int32_t)r;
            out[n].pad = 0;
            out[n].age_ns = now - seen;
            n++;
        }
    }
    return n;
}

/* The leader: a voter heard these ranks lately. They count as heard then
 * (a suspicion of their silence goes), and the refused proposal is given
 * up; the next one keeps them. */
static rh_status_t rh_gcs_on_refuse(const rh_gcs_conf_hdr_t *h, int idx,
                                    const rh_am_msg_t *msg)
{
    uint64_t now = rh_time_ns();
    int src = (int)msg->src;

    if (idx < 0 || rh_gcs_mb.my_master < 0) {
        return RH_OK;
    }
    if (h->voters > rh_gcs_map.size ||
        msg->data_len != (size_t)h->voters * sizeof(rh_gcs_vouch_t) ||
        (h->voters != 0 && msg->data == NULL)) {
        return RH_ERR_MALFORMED;
    }
    for (uint32_t i = 0; i < h->voters; i++) {
        rh_gcs_vouch_t v;

        memcpy(&v, (const uint8_t *)msg->data + i * sizeof(v), sizeof(v));
        if (v.rank < 0 || (uint32_t)v.rank >= rh_gcs_map.size ||
            v.age_ns > now) {
            return RH_ERR_MALFORMED;
        }
        if (now - v.age_ns > rh_gcs_mb.vouched[v.rank]) {
            rh_gcs_mb.vouched[v.rank] = now - v.age_ns;
        }
        if (rh_gcs_mb.suspect[v.rank] == RH_GCS_SUSPECT_SILENT &&
            !rh_gcs_map.dead[v.rank]) {
            rh_gcs_set_suspect((uint32_t)v.rank, RH_GCS_SUSPECT_NO);
            rh_warn("GCS: master %d heard rank %d within the timeout and "
                    "refuses to drop it: no longer suspect", src, v.rank);
        }
    }
    atomic_fetch_add(&rh_gcs_mb.refusals, 1);
    if (rh_gcs_mb.proposing && h->epoch == rh_gcs_mb.proposal.epoch) {
        rh_gcs_mb.proposing = 0;
        /* What else it carried (a death the transport saw, a joiner)
         * goes again at once, without the ranks heard. */
        if (rh_gcs_leader() == rh_gcs_rank && !atomic_load(&rh_gcs_mb.quiet)) {
            rh_gcs_propose();
        }
    }
    return RH_OK;
}

static rh_status_t rh_gcs_on_conf(void *arg, rh_am_msg_t *msg)
{
    rh_gcs_conf_hdr_t h;
    rh_gcs_map_t m;
    rh_gcs_vouch_t *vouch = rh_gcs_mb.vouch_buf;
    const uint8_t *silent = NULL;
    uint32_t nvouch;
    int src = (int)msg->src;
    int idx = -1;

    (void)arg;
    if (rh_gcs_cut(src) || rh_gcs_rank < 0 || rh_gcs_deaf_to(src)) {
        return RH_OK;
    }
    memcpy(&h, msg->hdr, sizeof(h));
    for (uint32_t i = 0; i < rh_gcs_map.nmasters; i++) {
        if (rh_gcs_map.masters[i] == src) {
            idx = (int)i;
        }
    }
    memset(&m, 0, sizeof(m));
    if (h.kind == RH_GCS_CONF_REFUSE) {
        return rh_gcs_on_refuse(&h, idx, msg);
    }
    if (h.kind == RH_GCS_CONF_CAUGHT) {
        if (rh_gcs_mb.my_master >= 0 && h.voters < rh_gcs_map.nshards &&
            h.epoch == rh_gcs_map.epoch &&
            rh_gcs_map.joining[h.voters] == src) {
            __atomic_store_n(&rh_gcs_mb.caught[h.voters], src,
                             __ATOMIC_RELAXED);
            if (rh_gcs_leader() == rh_gcs_rank && !rh_gcs_mb.proposing &&
                !atomic_load(&rh_gcs_mb.quiet)) {
                rh_gcs_propose();
            }
        }
        return RH_OK;
    }
    if (h.kind != RH_GCS_CONF_ACCEPT) {
        size_t used = 0;

        /* A proposal is followed by its silent drops, a byte per rank. */
        if (msg->data == NULL ||
            rh_gcs_map_unpack_prefix(&m, msg->data, msg->data_len, &used) !=
            RH_OK || m.epoch != h.epoch ||
            msg->data_len - used !=
            (h.kind == RH_GCS_CONF_PROPOSE ? m.size : 0) ||
            m.size != rh_gcs_map.size) {
            rh_gcs_map_free(&m);
            return RH_ERR_MALFORMED;
        }
        silent = (const uint8_t *)msg->data + used;
    }
    switch (h.kind) {
    case RH_GCS_CONF_PROPOSE:
        if (rh_gcs_mb.my_master < 0 || idx < 0) {
            break;
        }
        if (m.epoch > rh_gcs_mb.accepted.epoch &&
            m.epoch > rh_gcs_map.epoch &&
            (nvouch = rh_gcs_vouch_for(&m, silent, vouch)) != 0) {
            rh_gcs_conf_hdr_t r = { m.epoch, RH_GCS_CONF_REFUSE, nvouch };

            rh_info("GCS: refusing epoch %llu: it drops rank %d, heard "
                    "%llu ms ago", (unsigned long long)m.epoch,
                    vouch[0].rank,
                    (unsigned long long)(vouch[0].age_ns / 1000000));
            (void)rh_gcs_send(src, RH_AM_ID_GCS_CONF, &r, sizeof(r), vouch,
                              nvouch * sizeof(*vouch));
        } else if (m.epoch > rh_gcs_mb.accepted.epoch &&
                   m.epoch > rh_gcs_map.epoch) {
            (void)rh_gcs_map_copy(&rh_gcs_mb.accepted, &m);
            rh_gcs_mb.accepted_own = 0;
            rh_gcs_send_conf(src, RH_GCS_CONF_ACCEPT, m.epoch, NULL, 0,
                             NULL, 0);
        } else {
            rh_gcs_send_conf(src, RH_GCS_CONF_REJECT, 0,
                             rh_gcs_mb.accepted.epoch > rh_gcs_map.epoch ?
                             &rh_gcs_mb.accepted : &rh_gcs_map, 0, NULL, 0);
        }
        break;
    case RH_GCS_CONF_ACCEPT:
        if (idx >= 0 && rh_gcs_mb.proposing &&
            h.epoch == rh_gcs_mb.proposal.epoch) {
            rh_gcs_mb.votes |= 1u << idx;
            rh_gcs_commit_if_majority();
        }
        break;
    case RH_GCS_CONF_REJECT:
        /* Somebody accepted as high: build on that next time. */
        if (rh_gcs_mb.my_master >= 0 && m.epoch >= rh_gcs_mb.accepted.epoch) {
            (void)rh_gcs_map_copy(&rh_gcs_mb.accepted, &m);
            rh_gcs_mb.accepted_own = 0;
            rh_gcs_mb.proposing = 0;
        }
        break;
    case RH_GCS_CONF_NEW:
        rh_gcs_adopt(&m, h.voters);
        break;
    default:
        rh_gcs_map_free(&m);
        return RH_ERR_MALFORMED;
    }
    rh_gcs_map_free(&m);
    return RH_OK;
}

/* ---- heartbeats --------------------------------------------------------------- */

/* A master hears rank src: a suspicion of silence goes, unless a committed
 * configuration dropped src already (it stays dropped: it learns so from
 * the configuration we offer it and ends its part). A proposal that drops
 * src is given up, never to be committed; the next one keeps src. */
static void rh_gcs_heard(int src)
{
    if (rh_gcs_mb.suspect[src] != RH_GCS_SUSPECT_SILENT ||
        rh_gcs_map.dead[src]) {
        return;
    }
    rh_gcs_set_suspect((uint32_t)src, RH_GCS_SUSPECT_NO);
    rh_warn("GCS: rank %d heard from again: no longer suspect", src);
    if (rh_gcs_mb.proposing && rh_gcs_mb.proposal.dead[src]) {
        rh_gcs_mb.proposing = 0;
    }
}

static rh_status_t rh_gcs_on_hb(void *arg, rh_am_msg_t *msg)
{
    rh_gcs_hb_hdr_t h;
    int src = (int)msg->src;

    (void)arg;
    if (rh_gcs_cut(src) || rh_gcs_rank < 0 || rh_gcs_deaf_to(src)) {
        return RH_OK;
    }
    memcpy(&h, msg->hdr, sizeof(h));
    if (h.kind == RH_GCS_HB_PING) {
        rh_gcs_hb_hdr_t pong = { rh_gcs_map.epoch, RH_GCS_HB_PONG, 0 };

        if (rh_gcs_mb.my_master < 0) {
            return RH_OK;
        }
        rh_gcs_mb.last_seen[src] = rh_time_ns();
        rh_gcs_heard(src);
        (void)rh_gcs_send(src, RH_AM_ID_GCS_HB, &pong, sizeof(pong), NULL,
                          0);
        if (h.epoch < rh_gcs_map.epoch) {
            rh_gcs_offer_conf(src);
        }
        return RH_OK;
    }
    if (h.kind != RH_GCS_HB_PONG) {
        return RH_ERR_MALFORMED;
    }
    for (uint32_t i = 0; i < rh_gcs_map.nmasters; i++) {
        if (rh_gcs_map.masters[i] == src) {
            rh_gcs_mb.confirm_ns[i] = rh_time_ns();
            rh_gcs_mb.confirm_epoch[i] = h.epoch;
        }
    }
    return RH_OK;
}

static void rh_gcs_tick(rh_tp_op_t *op)
{
    rh_gcs_hb_hdr_t ping = { rh_gcs_map.epoch, RH_GCS_HB_PING, 0 };
    uint64_t now = rh_time_ns();
    rh_gcs_beat_fn beat;

    (void)op;
    atomic_store(&rh_gcs_mb.tick_queued, 0);
    if (rh_gcs_rank < 0 || atomic_load(&rh_gcs_mb.quiet)) {
        return;
    }
    if (!rh_gcs_mb.ticked) {
        /* Confirmations count from the first tick: start-up before it
         * (the store, the workers) may take longer than a lease. */
        for (uint32_t i = 0; i < rh_gcs_map.nmasters; i++) {
            if (rh_gcs_mb.confirm_epoch[i] == rh_gcs_map.epoch &&
                rh_gcs_mb.confirm_ns[i] < now) {
                rh_gcs_mb.confirm_ns[i] = now;
            }
        }
        rh_gcs_mb.ticked = 1;
    }
    for (uint32_t i = 0; i < rh_gcs_map.nmasters; i++) {
        int m = rh_gcs_map.masters[i];

        if ((int)i != rh_gcs_mb.my_master && !rh_gcs_map.dead[m]) {
            (void)rh_gcs_send(m, RH_AM_ID_GCS_HB, &ping, sizeof(ping), NULL,
                              0);
        }
    }
    rh_gcs_client_tick(now);
    rh_gcs_chain_tick();
    beat = atomic_load(&rh_gcs_beat);
    if (beat != NULL) {
        beat();
    }
    if (rh_gcs_mb.my_master < 0) {
        return;
    }
    /* A rank never heard from gets ten timeouts to start. */
    for (uint32_t r = 0; r < rh_gcs_map.size; r++) {
        uint64_t seen = rh_gcs_mb.last_seen[r];

        /* Another master that heard it later vouches for it. */
        if (rh_gcs_mb.vouched[r] > seen) {
            seen = rh_gcs_mb.vouched[r];
        }
        if ((int)r == rh_gcs_rank || rh_gcs_map.dead[r]) {
            continue;
        }
        if (seen != 0 ? now - seen > rh_gcs_mb.timeout_ns :
            now - rh_gcs_mb.start_ns > 10 * rh_gcs_mb.timeout_ns) {
            if (!rh_gcs_mb.suspect[r]) {
                rh_warn("GCS: rank %u silent for more than %llu ms", r,
                        (unsigned long long)(rh_gcs_mb.timeout_ns /
                                             1000000));
                rh_gcs_set_suspect(r, RH_GCS_SUSPECT_SILENT);
            }
        }
    }
    if (rh_gcs_leader() != rh_gcs_rank) {
        return;
    }
    if (rh_gcs_mb.proposing &&
        now - rh_gcs_mb.proposed_ns > rh_gcs_mb.timeout_ns) {
        rh_gcs_mb.proposing = 0;   /* no majority in time: try higher */
    }
    if (!rh_gcs_mb.proposing) {
        rh_gcs_propose();
    }
}

static void rh_gcs_on_peer_failure(void *arg, int rank)
{
    (void)arg;
    if (rh_gcs_rank < 0 || atomic_load(&rh_gcs_mb.quiet) ||
        rh_gcs_mb.suspect == NULL || (uint32_t)rank >= rh_gcs_map.size) {
        return;
    }
    rh_gcs_set_suspect((uint32_t)rank, RH_GCS_SUSPECT_FAILED);
    if (rh_gcs_mb.my_master >= 0 && rh_gcs_leader() == rh_gcs_rank &&
        !rh_gcs_mb.proposing) {
        rh_gcs_propose();
    }
}

static void *rh_gcs_timer_main(void *arg)
{
    uint64_t period = rh_gcs_mb.timeout_ns / 4;
    struct timespec ts;

    (void)arg;
    rh_core_runtime_thread();
    pthread_mutex_lock(&rh_gcs_mb.timer_lock);
    while (!atomic_load(&rh_gcs_mb.stop)) {
        if (!atomic_exchange(&rh_gcs_mb.tick_queued, 1)) {
            rh_tp_post(&rh_gcs_tick_op);
        }
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (time_t)(period / 1000000000ull);
        ts.tv_nsec += (long)(period % 1000000000ull);
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (!atomic_load(&rh_gcs_mb.stop) &&
               pthread_cond_timedwait(&rh_gcs_mb.timer_cond,
                                      &rh_gcs_mb.timer_lock, &ts) == 0) {
        }
    }
    pthread_mutex_unlock(&rh_gcs_mb.timer_lock);
    return NULL;
}

/* ---- life ---------------------------------------------------------------------- */

rh_status_t rh_gcs_member_setup(void)
{
    rh_status_t status;

    status = rh_am_register(RH_AM_ID_GCS_HB, sizeof(rh_gcs_hb_hdr_t),
                            sizeof(rh_gcs_hb_hdr_t), rh_gcs_on_hb, NULL);
    if (status == RH_OK) {
        status = rh_am_register(RH_AM_ID_GCS_CONF, sizeof(rh_gcs_conf_hdr_t),
                                sizeof(rh_gcs_conf_hdr_t), rh_gcs_on_conf,
                                NULL);
    }
    if (status == RH_OK) {
        status = rh_tp_on_peer_failure(rh_gcs_on_peer_failure, NULL);
    }
    return status;
}

rh_status_t rh_gcs_member_start(void)
{
    uint64_t now = rh_time_ns();

    rh_gcs_mb.timeout_ns = rh_cfg.failure_timeout_ms * 1000000ull;
    rh_gcs_mb.job_size = rh_gcs_map.size;
    rh_gcs_mb.start_ns = now;
    rh_gcs_mb.my_master = -1;
    rh_gcs_mb.proposing = 0;
    rh_gcs_mb.accepted_own = 0;
    atomic_store(&rh_gcs_mb.stop, 0);
    atomic_store(&rh_gcs_mb.quiet, 0);
    atomic_store(&rh_gcs_mb.tick_queued, 0);
    atomic_store(&rh_gcs_mb.cut_at, 0);
    atomic_store(&rh_gcs_mb.deaf, 0);
    atomic_store(&rh_gcs_mb.deaf_to, -1);
    atomic_store(&rh_gcs_mb.refusals, 0);
    atomic_store(&rh_gcs_mb.hold_joins, 0);
    for (uint32_t i = 0; i < rh_gcs_map.nmasters; i++) {
        rh_gcs_mb.confirm_ns[i] = now;
        rh_gcs_mb.confirm_epoch[i] = rh_gcs_map.epoch;
        if (rh_gcs_map.masters[i] == rh_gcs_rank) {
            rh_gcs_mb.my_master = (int)i;
        }
    }
    rh_gcs_mb.last_seen = calloc(rh_gcs_map.size, sizeof(uint64_t));
    rh_gcs_mb.suspect = calloc(rh_gcs_map.size, 1);
    rh_gcs_mb.vouched = calloc(rh_gcs_map.size, sizeof(uint64_t));
    rh_gcs_mb.vouch_buf = calloc(rh_gcs_map.size, sizeof(rh_gcs_vouch_t));
    rh_gcs_mb.silent = calloc(rh_gcs_map.size, 1);
    rh_gcs_mb.alive = calloc(rh_gcs_map.size, 1);
    rh_gcs_mb.caught = malloc(rh_gcs_map.nshards *
                              sizeof(*rh_gcs_mb.caught));
    for (uint32_t s = 0; rh_gcs_mb.caught != NULL && s < rh_gcs_map.nshards;
         s++) {
        rh_gcs_mb.caught[s] = -1;
    }
    if (rh_gcs_mb.last_seen == NULL || rh_gcs_mb.suspect == NULL ||
        rh_gcs_mb.vouched == NULL || rh_gcs_mb.vouch_buf == NULL ||
        rh_gcs_mb.silent == NULL ||
        rh_gcs_mb.alive == NULL || rh_gcs_mb.caught == NULL ||
        rh_gcs_map_copy(&rh_gcs_mb.accepted, &rh_gcs_map) != RH_OK) {
        rh_gcs_member_stop();
        return rh_error_set(RH_ERR_NO_MEMORY, "GCS membership");
    }
    rh_gcs_tick_op.run = rh_gcs_tick;
    rh_gcs_mb.ticked = 0;
    return RH_OK;
}

rh_status_t rh_gcs_member_run(void)
{
    pthread_condattr_t ca;

    if (rh_gcs_mb.job_size < 2 || rh_gcs_mb.timer_started) {
        return RH_OK;
    }
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&rh_gcs_mb.timer_cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&rh_gcs_mb.timer, NULL, rh_gcs_timer_main, NULL) !=
        0) {
        pthread_cond_destroy(&rh_gcs_mb.timer_cond);
        return rh_error_set(RH_ERR_NO_MEMORY, "GCS heartbeat thread");
    }
    rh_gcs_mb.timer_started = 1;
    return RH_OK;
}

void rh_gcs_member_quiesce(void)
{
    atomic_store(&rh_gcs_mb.quiet, 1);
    if (rh_gcs_mb.timer_started) {
        pthread_mutex_lock(&rh_gcs_mb.timer_lock);
        atomic_store(&rh_gcs_mb.stop, 1);
        pthread_cond_signal(&rh_gcs_mb.timer_cond);
        pthread_mutex_unlock(&rh_gcs_mb.timer_lock);
        pthread_join(rh_gcs_mb.timer, NULL);
        pthread_cond_destroy(&rh_gcs_mb.timer_cond);
        rh_gcs_mb.timer_started = 0;
    }
}

void rh_gcs_member_stop(void)
{
    rh_gcs_member_quiesce();
    free(rh_gcs_mb.last_seen);
    free(rh_gcs_mb.suspect);
    free(rh_gcs_mb.alive);
    free(rh_gcs_mb.caught);
    free(rh_gcs_mb.vouched);
    free(rh_gcs_mb.vouch_buf);
    free(rh_gcs_mb.silent);
    rh_gcs_mb.vouched = NULL;
    rh_gcs_mb.vouch_buf = NULL;
    rh_gcs_mb.silent = NULL;
    rh_gcs_mb.last_seen = NULL;
    rh_gcs_mb.suspect = NULL;
    rh_gcs_mb.alive = NULL;
    rh_gcs_mb.caught = NULL;
    rh_gcs_map_free(&rh_gcs_mb.accepted);
    rh_gcs_map_free(&rh_gcs_mb.proposal);
}
