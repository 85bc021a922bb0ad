/*
 * rk_be - big-endian integers in byte buffers: the byte order of every
 * stored key and record, so that LMDB's byte-wise key order is numeric order.
 * Header only; any thread.
 */
#ifndef RK_BE_H
#define RK_BE_H

#include <stdint.h>

/* Writes the low `n` bytes (1..8) of v at p, most significant first. */
static inline void rk_be_put(unsigned char *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

/* Reads `n` bytes (1..8) at p as an unsigned big-endian number. */
static inline uint64_t rk_be_get(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

#endif
