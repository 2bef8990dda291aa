/* The receive watch (rxwatch.h says why). State is a few atomics: a death
 * may be reported inside a UCX callback, and the tick runs on whichever
 * thread holds the worker at the time. */
#include "config.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>

#include "base/completion.h"
#include "base/log.h"
#include "transport/am.h"
#include "transport/rxwatch.h"
#include "transport/tp_internal.h"
#include "transport/transport.h"

static struct {
    uint64_t          stall_ns;
    _Atomic uint64_t  died;      /* last death seen on this host; 0: off */
    _Atomic int       dead_rank;
    _Atomic uint64_t  heard;     /* last probe that reached us */
    _Atomic uint64_t  sent;      /* last round of probes */
    _Atomic uint64_t  suspect;   /* first tick that found us deaf */
    _Atomic uint64_t  looked;    /* last tick that judged */
    _Atomic int       stopped;
} rh_rxw;

int rh_rxw_verdict(uint64_t died, uint64_t heard, uint64_t now,
                   uint64_t stall_ns, int others_live)
{
    uint64_t since = now > died ? now - died : 0;
    uint64_t last = heard > died ? heard : died;

    if (since >= 3 * stall_ns) {
        return RH_RXW_OFF;
    }
    if (others_live && since <= 2 * stall_ns && now > last &&
        now - last > stall_ns) {
        return RH_RXW_DEAF;
    }
    return RH_RXW_PROBE;
}

static rh_status_t rh_rxw_on_probe(void *arg, rh_am_msg_t *msg)
{
    (void)arg;
    (void)msg;
    atomic_store_explicit(&rh_rxw.heard, rh_time_ns(), memory_order_relaxed);
    return RH_OK;
}

rh_status_t rh_rxw_open(uint64_t stall_ns)
{
    rh_status_t status;

    atomic_store(&rh_rxw.died, 0);
    atomic_store(&rh_rxw.heard, 0);
    atomic_store(&rh_rxw.sent, 0);
    atomic_store(&rh_rxw.suspect, 0);
    atomic_store(&rh_rxw.looked, 0);
    atomic_store(&rh_rxw.stopped, stall_ns == 0);
    rh_rxw.stall_ns = stall_ns;
    status = rh_am_register(RH_AM_ID_RX_PROBE, 0, 0, rh_rxw_on_probe, NULL);
    if (status == RH_OK) {
        status = rh_am_set_lost(RH_AM_ID_RX_PROBE, 0, rh_am_lost_quietly,
                                (void *)"a receive-watch probe");
    }
    return status;
}

void rh_rxw_peer_died(int rank)
{
    uint64_t now = rh_time_ns();

    if (atomic_load_explicit(&rh_rxw.stopped, memory_order_relaxed)) {
        return;
    }
    atomic_store(&rh_rxw.dead_rank, rank);
    atomic_store(&rh_rxw.died, now > 0 ? now : 1);
}

void rh_rxw_stop(void)
{
    atomic_store(&rh_rxw.stopped, 1);
    atomic_store(&rh_rxw.died, 0);
}

/* The live ranks of this host but us (0: nobody to hear from); with probe,
 * a probe to each. */
static int rh_rxw_peers(int probe)
{
    int me = rh_tp_rank(), live = 0;

    for (int r = 0; r < rh_tp_size(); r++) {
        if (r != me && rh_tp_peer_same_host(r) && rh_tp_peer_alive(r)) {
            live++;
            if (probe) {
                (void)rh_am_send((uint32_t)r, RH_AM_ID_RX_PROBE, NULL, 0,
                                 NULL, 0, NULL, NULL);
            }
        }
    }
    return live;
}

void rh_rxw_tick(uint64_t now)
{
    uint64_t died = atomic_load_explicit(&rh_rxw.died, memory_order_relaxed);
    uint64_t sent, looked;
    int others;

    if (died == 0 ||
        atomic_load_explicit(&rh_rxw.stopped, memory_order_relaxed)) {
        return;
    }
    /* A sixteenth of the timeout between looks: the scan of the ranks is
     * O(ranks), and the progress thread ticks far more often. */
    looked = atomic_load_explicit(&rh_rxw.looked, memory_order_relaxed);
    if (now - looked < rh_rxw.stall_ns / 16 ||
        !atomic_compare_exchange_strong(&rh_rxw.looked, &looked, now)) {
        return;
    }
    sent = atomic_load_explicit(&rh_rxw.sent, memory_order_relaxed);
    others = rh_rxw_peers(now - sent >= rh_rxw.stall_ns / 8 &&
                          atomic_compare_exchange_strong(&rh_rxw.sent, &sent,
                                                         now));
    switch (rh_rxw_verdict(died, atomic_load(&rh_rxw.heard), now,
                           rh_rxw.stall_ns, others)) {
    case RH_RXW_OFF:
        /* unless another death came meanwhile */
        atomic_compare_exchange_strong(&rh_rxw.died, &died, 0);
        return;
    case RH_RXW_DEAF: {
        uint64_t since = atomic_load(&rh_rxw.suspect);

        /* Judged twice, an eighth of the timeout apart, with the worker
         * progressed in between: a probe that sat in the queue while this
         * thread was off its core is heard first. */
        if (since == 0) {
            atomic_store(&rh_rxw.suspect, now);
            return;
        }
        if (now - since < rh_rxw.stall_ns / 8) {
            return;
        }
        rh_error("no message from the other ranks of this host has reached "
                 "rank %d for %llu ms since rank %d died: its shared-memory "
                 "receive queue is stalled (a rank killed inside a UCX "
                 "shared-memory send leaves it so, and nothing behind the "
                 "slot it took is ever read). This rank ends, so that the "
                 "job goes on without it.", rh_tp_rank(),
                 (unsigned long long)(rh_rxw.stall_ns / 1000000ull),
                 atomic_load(&rh_rxw.dead_rank));
        fflush(NULL);
        raise(SIGKILL);
        return;
    }
    default:
        atomic_store(&rh_rxw.suspect, 0);
        break;
    }
}
