/*
 * The 64-bit finalizer every hash of the library ends with (MurmurHash3's
 * fmix64): each input bit flips each output bit with probability about 1/2,
 * so keys that differ in a few low bits (counters, ranks) spread over a
 * table.
 */
#ifndef RH_BASE_HASH_H
#define RH_BASE_HASH_H

#include <stdint.h>

static inline uint64_t rh_hash_mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

#endif
