/*
 * rk_hash - the one hash function of the tree's hash tables: FNV-1a, 64
 * bits. Fast on the short ids and topics it sees, and incremental, so the
 * hash of every prefix of a string comes in one pass (rk_groups).
 * Not for anything an attacker must not steer: the tables that use it are
 * bounded (rk_groups) or keyed by ids the broker validated.
 * Header only; any thread.
 */
#ifndef RK_HASH_H
#define RK_HASH_H

#include <stddef.h>
#include <stdint.h>

#define RK_HASH_BASIS 1469598103934665603ull

/* The hash of a string one byte longer than the one hashed `h`. */
static inline uint64_t rk_hash_step(uint64_t h, unsigned char c)
{
    return (h ^ c) * 1099511628211ull;
}

static inline uint64_t rk_hash_bytes(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = RK_HASH_BASIS;
    for (size_t i = 0; i < n; i++)
        h = rk_hash_step(h, s[i]);
    return h;
}

static inline uint64_t rk_hash_str(const char *s)
{
    uint64_t h = RK_HASH_BASIS;
    for (; *s; s++)
        h = rk_hash_step(h, (unsigned char)*s);
    return h;
}

#endif
