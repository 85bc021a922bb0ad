#include "rk_mp.h"

#include <string.h>

static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Takes n bytes of content (a string's, a number's) at r->off. */
static const unsigned char *take(struct rk_mp_reader *r, uint64_t n)
{
    if (n > r->len - r->off)
        return NULL;
    const unsigned char *at = r->p + r->off;
    r->off += (size_t)n;
    return at;
}

static int take_be(struct rk_mp_reader *r, int n, uint64_t *v)
{
    const unsigned char *at = take(r, (uint64_t)n);
    if (!at)
        return -1;
    *v = be(at, n);
    return 0;
}

/* A string, bin or ext body of n bytes. */
static int bytes(struct rk_mp_reader *r, struct rk_mp_val *v, enum rk_mp_kind kind, uint64_t n)
{
    if (n > UINT32_MAX || !(v->p = take(r, n)))
        return -1;
    v->kind = kind;
    v->n = (uint32_t)n;
    return 0;
}

/* Every element takes at least one byte: a count beyond what is left is a lie. */
static int container(struct rk_mp_reader *r, struct rk_mp_val *v, enum rk_mp_kind kind, uint64_t n)
{
    uint64_t elements = kind == RK_MP_MAP ? 2 * n : n;
    if (elements > r->len - r->off)
        return -1;
    v->kind = kind;
    v->n = (uint32_t)n;
    v->p = r->p + r->off;
    return 0;
}

static int integer(struct rk_mp_val *v, int64_t i)
{
    if (i >= 0) {
        v->kind = RK_MP_UINT;
        v->v.u = (uint64_t)i;
    } else {
        v->kind = RK_MP_NEGINT;
        v->v.i = i;
    }
    return 0;
}

static int signed_be(struct rk_mp_reader *r, struct rk_mp_val *v, int n)
{
    uint64_t raw;
    if (take_be(r, n, &raw))
        return -1;
    int shift = 64 - 8 * n; /* sign-extend from n bytes */
    return integer(v, (int64_t)(raw << shift) >> shift);
}

static int unsigned_be(struct rk_mp_reader *r, struct rk_mp_val *v, int n)
{
    v->kind = RK_MP_UINT;
    return take_be(r, n, &v->v.u);
}

static int ext(struct rk_mp_reader *r, struct rk_mp_val *v, uint64_t n)
{
    const unsigned char *t = take(r, 1);
    if (!t)
        return -1;
    v->v.ext_type = (int8_t)*t;
    return bytes(r, v, RK_MP_EXT, n);
}

/* A length prefix of n bytes, then what it measures. */
static int sized(struct rk_mp_reader *r, struct rk_mp_val *v, unsigned b, int n)
{
    uint64_t len;
    if (take_be(r, n, &len))
        return -1;
    switch (b) {
    case 0xd9: case 0xda: case 0xdb: return bytes(r, v, RK_MP_STR, len);
    case 0xc4: case 0xc5: case 0xc6: return bytes(r, v, RK_MP_BIN, len);
    case 0xdc: case 0xdd: return container(r, v, RK_MP_ARRAY, len);
    case 0xde: case 0xdf: return container(r, v, RK_MP_MAP, len);
    default: return ext(r, v, len); /* 0xc7..0xc9 */
    }
}

static int floating(struct rk_mp_reader *r, struct rk_mp_val *v, int n)
{
    uint64_t raw;
    if (take_be(r, n, &raw))
        return -1;
    v->kind = RK_MP_FLOAT;
    if (n == 4) {
        uint32_t bits = (uint32_t)raw;
        float f;
        memcpy(&f, &bits, sizeof f);
        v->v.f = f;
    } else {
        memcpy(&v->v.f, &raw, sizeof v->v.f);
    }
    return 0;
}

int rk_mp_next(struct rk_mp_reader *r, struct rk_mp_val *v)
{
    if (r->off >= r->len)
        return -1;
    unsigned b = r->p[r->off++];
    if (b <= 0x7f)
        return integer(v, (int64_t)b);
    if (b >= 0xe0)
        return integer(v, (int64_t)b - 256);
    if ((b & 0xe0) == 0xa0)
        return bytes(r, v, RK_MP_STR, b & 0x1f);
    if ((b & 0xf0) == 0x90)
        return container(r, v, RK_MP_ARRAY, b & 0x0f);
    if ((b & 0xf0) == 0x80)
        return container(r, v, RK_MP_MAP, b & 0x0f);
    switch (b) {
    case 0xc0: v->kind = RK_MP_NIL; return 0;
    case 0xc2: case 0xc3: v->kind = RK_MP_BOOL; v->v.b = b == 0xc3; return 0;
    case 0xcc: return unsigned_be(r, v, 1);
    case 0xcd: return unsigned_be(r, v, 2);
    case 0xce: return unsigned_be(r, v, 4);
    case 0xcf: return unsigned_be(r, v, 8);
    case 0xd0: return signed_be(r, v, 1);
    case 0xd1: return signed_be(r, v, 2);
    case 0xd2: return signed_be(r, v, 4);
    case 0xd3: return signed_be(r, v, 8);
    case 0xca: return floating(r, v, 4);
    case 0xcb: return floating(r, v, 8);
    case 0xd4: return ext(r, v, 1);
    case 0xd5: return ext(r, v, 2);
    case 0xd6: return ext(r, v, 4);
    case 0xd7: return ext(r, v, 8);
    case 0xd8: return ext(r, v, 16);
    case 0xc4: case 0xd9: case 0xc7: return sized(r, v, b, 1);
    case 0xc5: case 0xda: case 0xc8: case 0xdc: case 0xde: return sized(r, v, b, 2);
    case 0xc6: case 0xdb: case 0xc9: case 0xdd: case 0xdf: return sized(r, v, b, 4);
    default: return -1; /* 0xc1 */
    }
}

static int skip_value(struct rk_mp_reader *r, int depth);

static int skip_elements(struct rk_mp_reader *r, const struct rk_mp_val *c, int depth)
{
    uint64_t n = c->kind == RK_MP_MAP ? 2 * (uint64_t)c->n : c->n;
    if (depth >= RK_MP_DEPTH_MAX)
        return -1;
    for (uint64_t i = 0; i < n; i++)
        if (skip_value(r, depth + 1))
            return -1;
    return 0;
}

static int skip_value(struct rk_mp_reader *r, int depth)
{
    struct rk_mp_val v;
    if (rk_mp_next(r, &v))
        return -1;
    if (v.kind == RK_MP_ARRAY || v.kind == RK_MP_MAP)
        return skip_elements(r, &v, depth);
    return 0;
}

int rk_mp_skip(struct rk_mp_reader *r)
{
    return skip_value(r, 0);
}

int rk_mp_skip_items(struct rk_mp_reader *r, const struct rk_mp_val *c)
{
    return skip_elements(r, c, 0);
}

int rk_mp_is_one(const void *p, size_t len)
{
    struct rk_mp_reader r = {p, len, 0};
    return len > 0 && rk_mp_skip(&r) == 0 && r.off == len;
}

const char *rk_mp_kind_name(enum rk_mp_kind kind)
{
    switch (kind) {
    case RK_MP_NIL: return "nil";
    case RK_MP_BOOL: return "boolean";
    case RK_MP_UINT:
    case RK_MP_NEGINT: return "integer";
    case RK_MP_FLOAT: return "float";
    case RK_MP_STR: return "string";
    case RK_MP_BIN: return "binary";
    case RK_MP_ARRAY: return "array";
    case RK_MP_MAP: return "map";
    case RK_MP_EXT: return "extension";
    default: return "nothing";
    }
}

/* Stops at the first differing byte: most comparisons fail there, and a
 * strlen of every candidate cost more than the comparisons. */
int rk_mp_str_is(const struct rk_mp_val *s, const char *lit)
{
    for (uint32_t i = 0; i < s->n; i++)
        if (lit[i] != (char)s->p[i] || lit[i] == '\0')
            return 0;
    return lit[s->n] == '\0';
}
