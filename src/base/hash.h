/*
 * The 64-bit finalizer every hash of the library ends with (MurmurHash3's
 * fmix64): each input bit flips each output bit with probability about 1/2,
 * so keys that differ in a few low bits (counters, ranks) spread over a
 * table.
 */
#ifndef RH_BASE_HASH_H
#define RH_BASE_HASH_H

#include <stddef.h>
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

/* FNV-1a of len bytes, continuing from h (RH_HASH_SEED to start); not
 * seeded per process, so every rank computes the same. */
#define RH_HASH_SEED 0xcbf29ce484222325ull

static inline uint64_t rh_hash_fnv(uint64_t h, const void *p, size_t len)
{
    const unsigned char *b = p;

    for (size_t i = 0; i < len; i++) {
        h = (h ^ b[i]) * 0x100000001b3ull;
    }
    return h;
}

/* A NUL-terminated string's hash, mixed. */
static inline uint64_t rh_hash_str(const char *s)
{
    uint64_t h = RH_HASH_SEED;

    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    }
    return rh_hash_mix64(h);
}

#endif
