/*
 * What the fuzz targets share: the runtime they feed, started once per
 * process with a few registered functions that hostile tasks may name, and
 * the reader that turns fuzzer bytes into values.
 */
#ifndef RH_FUZZ_RUNTIME_H
#define RH_FUZZ_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "rayhpc.h"

/* Names of the registered functions (rh_fuzz_fn_name(i) for i in
 * [0, RH_FUZZ_NUM_FNS)), and a few that are not registered. */
#define RH_FUZZ_NUM_FNS 8

/* The handle of the actor rank 0 creates at start (class fz_actor). */
#define RH_FUZZ_ACTOR_HI 1ull
#define RH_FUZZ_ACTOR_LO 1ull
const char *rh_fuzz_fn_name(unsigned i);

/* Starts the runtime (once): a one-rank job, or under rayhpc-run the
 * ranks other than 0 serve until rank 0 ends. rh_finalize runs at exit,
 * so that teardown after hostile input is covered too. */
void rh_fuzz_start(const char *target);

/* What each target's LLVMFuzzerInitialize does: with RH_FUZZ_SEEDS=dir
 * set, write_seeds(dir) writes the seed corpus and the process ends;
 * otherwise the runtime starts and report runs at exit. */
int rh_fuzz_initialize(const char *target, void (*write_seeds)(const char *),
                       void (*report)(void));

/* Consumes the input front to back; reads past its end give zeros. */
typedef struct rh_fuzz_in {
    const uint8_t *p;
    size_t         left;
} rh_fuzz_in_t;

uint8_t  rh_fuzz_u8(rh_fuzz_in_t *in);
uint16_t rh_fuzz_u16(rh_fuzz_in_t *in);
uint32_t rh_fuzz_u32(rh_fuzz_in_t *in);
uint64_t rh_fuzz_u64(rh_fuzz_in_t *in);

/* Up to len bytes in place (fewer at the end); *got says how many. */
const uint8_t *rh_fuzz_bytes(rh_fuzz_in_t *in, size_t len, size_t *got);

/* Writes a seed file dir/name (for the corpus generator). */
void rh_fuzz_write_seed(const char *dir, const char *name, const void *buf,
                        size_t len);

#endif
