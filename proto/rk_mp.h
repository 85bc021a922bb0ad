/*
 * rk_mp - MessagePack read in place, one value at a time.
 *
 * Nothing is decoded into objects or copied: a value read is a small
 * struct that points into the caller's buffer. Every length is checked
 * against the buffer, so any bytes are safe to read; a container's element
 * count is also checked against the bytes left (each element takes at
 * least one), so a short frame cannot make a reader loop for long.
 *
 * No allocation, no global state: thread-safe.
 */
#ifndef RK_MP_H
#define RK_MP_H

#include <stddef.h>
#include <stdint.h>

/* Integers come in two kinds whatever their encoding, as msgpack-c reads
 * them: UINT for values >= 0 (even in a signed format), NEGINT below 0. */
enum rk_mp_kind {
    RK_MP_NONE = 0, /* never read; free for callers to mean "absent" */
    RK_MP_NIL,
    RK_MP_BOOL,
    RK_MP_UINT,
    RK_MP_NEGINT,
    RK_MP_FLOAT,    /* float 32 or 64, widened to double */
    RK_MP_STR,
    RK_MP_BIN,
    RK_MP_ARRAY,
    RK_MP_MAP,
    RK_MP_EXT,
};

struct rk_mp_val {
    enum rk_mp_kind kind;
    uint32_t n;                 /* STR, BIN, EXT: bytes; ARRAY: elements; MAP: pairs */
    const unsigned char *p;     /* STR, BIN, EXT: the bytes; ARRAY, MAP: the first element */
    union {
        uint64_t u;             /* UINT */
        int64_t i;              /* NEGINT */
        double f;               /* FLOAT */
        int b;                  /* BOOL: 0 or 1 */
        int8_t ext_type;        /* EXT */
    } v;
};

/* The bytes [p, p+len) and how far they have been read. */
struct rk_mp_reader {
    const unsigned char *p;
    size_t len, off;
};

#define RK_MP_DEPTH_MAX 16 /* containers nested in containers, rk_mp_skip's limit */

/* Reads the value at r->off into *v and moves past it, except that for an
 * array or map only the header is read: r->off is left at the first
 * element (see rk_mp_skip_items). Returns 0, or -1 when the bytes end
 * early, a container claims more elements than bytes are left, or the byte
 * is 0xc1 (never used); r->off is then unspecified. */
int rk_mp_next(struct rk_mp_reader *r, struct rk_mp_val *v);

/* Moves past one whole value, containers with all they hold. Returns 0, or
 * -1 as rk_mp_next does or when containers nest deeper than
 * RK_MP_DEPTH_MAX levels. */
int rk_mp_skip(struct rk_mp_reader *r);

/* After rk_mp_next read the array or map `c`, moves past its elements. */
int rk_mp_skip_items(struct rk_mp_reader *r, const struct rk_mp_val *c);

/* 1 when [p, p+len) holds exactly one value that rk_mp_skip can pass (no
 * byte left over), else 0. */
int rk_mp_is_one(const void *p, size_t len);

/* "string", "integer", "map", ... for error messages. Static strings. */
const char *rk_mp_kind_name(enum rk_mp_kind kind);

/* 1 when the string value `s` equals the NUL-terminated `lit`, else 0. */
int rk_mp_str_is(const struct rk_mp_val *s, const char *lit);

#endif
