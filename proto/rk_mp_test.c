/* rk_mp against hand-written bytes of every format, and against msgpack-c
 * (the reference reader) over many mutated and random frames. */
#include "rk_mp.h"
#include "rk_test.h"

#include <msgpack.h>
#include <stdint.h>

static struct rk_mp_val read_one(const void *p, size_t len, int *rc, size_t *off)
{
    struct rk_mp_reader r = {p, len, 0};
    struct rk_mp_val v = {0};
    *rc = rk_mp_next(&r, &v);
    *off = r.off;
    return v;
}

/* A byte array literal and its length, as two arguments. */
#define BYTES(...) (const unsigned char[]){__VA_ARGS__}, \
                   sizeof((const unsigned char[]){__VA_ARGS__})

static void check_uint(const unsigned char *p, size_t n, uint64_t want)
{
    int rc;
    size_t off;
    struct rk_mp_val v = read_one(p, n, &rc, &off);
    RK_CHECK(rc == 0 && off == n && v.kind == RK_MP_UINT && v.v.u == want);
}

static void check_negint(const unsigned char *p, size_t n, int64_t want)
{
    int rc;
    size_t off;
    struct rk_mp_val v = read_one(p, n, &rc, &off);
    RK_CHECK(rc == 0 && off == n && v.kind == RK_MP_NEGINT && v.v.i == want);
}

static void test_integers(void)
{
    check_uint(BYTES(0x00), 0);
    check_uint(BYTES(0x7f), 127);
    check_uint(BYTES(0xcc, 0xff), 255);
    check_uint(BYTES(0xcd, 0x01, 0x00), 256);
    check_uint(BYTES(0xce, 0xff, 0xff, 0xff, 0xff), 4294967295u);
    check_uint(BYTES(0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), UINT64_MAX);
    /* signed formats holding values >= 0 read as UINT, as msgpack-c does */
    check_uint(BYTES(0xd0, 0x05), 5);
    check_uint(BYTES(0xd3, 0, 0, 0, 0, 0, 0, 0x01, 0x00), 256);
    check_negint(BYTES(0xff), -1);
    check_negint(BYTES(0xe0), -32);
    check_negint(BYTES(0xd0, 0x80), -128);
    check_negint(BYTES(0xd1, 0xff, 0x7f), -129);
    check_negint(BYTES(0xd2, 0x80, 0, 0, 0), INT32_MIN);
    check_negint(BYTES(0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0), INT64_MIN);
}

static void test_scalars_and_bytes(void)
{
    int rc;
    size_t off;
    struct rk_mp_val v = read_one(BYTES(0xc0), &rc, &off);
    RK_CHECK(rc == 0 && v.kind == RK_MP_NIL);
    v = read_one(BYTES(0xc3), &rc, &off);
    RK_CHECK(rc == 0 && v.kind == RK_MP_BOOL && v.v.b == 1);
    v = read_one(BYTES(0xca, 0x3f, 0xc0, 0, 0), &rc, &off);
    RK_CHECK(rc == 0 && v.kind == RK_MP_FLOAT && v.v.f == 1.5);
    v = read_one(BYTES(0xcb, 0xc0, 0x04, 0, 0, 0, 0, 0, 0), &rc, &off);
    RK_CHECK(rc == 0 && v.kind == RK_MP_FLOAT && v.v.f == -2.5);
    v = read_one(BYTES(0xa3, 'a', 'b', 'c'), &rc, &off);
    RK_CHECK(rc == 0 && v.kind == RK_MP_STR && v.n == 3 && rk_mp_str_is(&v, "abc"));
    RK_CHECK(!rk_mp_str_is(&v, "ab") && !rk_mp_str_is(&v, "abcd") && !rk_mp_str_is(&v, "abd"));
    v = read_one(BYTES(0xd9, 0x01, 'x'), &rc, &off);
    RK_CHECK(rc == 0 && v.kind == RK_MP_STR && v.n == 1 && v.p[0] == 'x' && off == 3);
    v = read_one(BYTES(0xc5, 0x00, 0x02, 7, 8), &rc, &off);
    RK_CHECK(rc == 0 && v.kind == RK_MP_BIN && v.n == 2 && v.p[1] == 8 && off == 5);
    v = read_one(BYTES(0xd4, 0x05, 0x09), &rc, &off);
    RK_CHECK(rc == 0 && v.kind == RK_MP_EXT && v.v.ext_type == 5 && v.n == 1 && v.p[0] == 9);
    v = read_one(BYTES(0xc7, 0x02, 0xff, 1, 2), &rc, &off);
    RK_CHECK(rc == 0 && v.kind == RK_MP_EXT && v.v.ext_type == -1 && v.n == 2 && off == 5);
    v = read_one(BYTES(0xc1), &rc, &off);
    RK_CHECK(rc == -1);
    RK_CHECK(rk_mp_is_one(BYTES(0xa1, 'z')) && !rk_mp_is_one(BYTES(0xa1, 'z', 0xc0)));
    RK_CHECK(!rk_mp_is_one("", 0));
}

static void test_containers(void)
{
    int rc;
    size_t off;
    /* {"a": [1, -1]} */
    const unsigned char m[] = {0x81, 0xa1, 'a', 0x92, 0x01, 0xff};
    struct rk_mp_val v = read_one(m, sizeof m, &rc, &off);
    RK_CHECK(rc == 0 && v.kind == RK_MP_MAP && v.n == 1 && off == 1 && v.p == m + 1);
    struct rk_mp_reader r = {m, sizeof m, 0};
    RK_CHECK(rk_mp_next(&r, &v) == 0 && rk_mp_skip_items(&r, &v) == 0 && r.off == sizeof m);
    r.off = 0;
    RK_CHECK(rk_mp_skip(&r) == 0 && r.off == sizeof m);
    /* counts are checked against the bytes left: each element takes one */
    read_one(BYTES(0xdf, 0xff, 0xff, 0xff, 0xff), &rc, &off);
    RK_CHECK(rc == -1);
    read_one(BYTES(0xdd, 0x00, 0x00, 0x00, 0x02, 0xc0), &rc, &off);
    RK_CHECK(rc == -1);
    read_one(BYTES(0x82, 0xc0, 0xc0, 0xc0), &rc, &off);
    RK_CHECK(rc == -1);
    read_one(BYTES(0x81, 0xc0, 0xc0), &rc, &off);
    RK_CHECK(rc == 0);
}

static void test_depth_limit(void)
{
    unsigned char buf[64];
    for (int depth = 1; depth <= 20; depth++) {
        memset(buf, 0x91, (size_t)depth); /* [[[...[nil]...]]] */
        buf[depth] = 0xc0;
        RK_CHECK(rk_mp_is_one(buf, (size_t)depth + 1) == (depth <= RK_MP_DEPTH_MAX));
    }
}

static void test_every_truncation_refused(void)
{
    static const unsigned char whole[] = {
        0x85, 0xa4, 't', 'y', 'p', 'e', 0xd9, 0x02, 'o', 'k', 0xa1, 'n', 0xcf, 1, 2, 3, 4, 5, 6,
        7, 8, 0xa1, 'f', 0xcb, 0x40, 0, 0, 0, 0, 0, 0, 0, 0xa1, 'b', 0xc6, 0, 0, 0, 1, 0x2a,
        0xa1, 'x', 0xc8, 0, 1, 3, 0x00};
    RK_CHECK(rk_mp_is_one(whole, sizeof whole));
    for (size_t n = 0; n < sizeof whole; n++)
        RK_CHECK(!rk_mp_is_one(whole, n));
}

/* ---- differential: rk_mp and msgpack-c read the same bytes alike ---------- */

/* msgpack-c points empty strings, bins and exts at NULL: no memcmp then. */
static int same(struct rk_mp_reader *r, const msgpack_object *o)
{
    struct rk_mp_val v;
    if (rk_mp_next(r, &v))
        return 0;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return v.kind == RK_MP_NIL;
    case MSGPACK_OBJECT_BOOLEAN: return v.kind == RK_MP_BOOL && v.v.b == o->via.boolean;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return v.kind == RK_MP_UINT && v.v.u == o->via.u64;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return v.kind == RK_MP_NEGINT && v.v.i == o->via.i64;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return v.kind == RK_MP_FLOAT &&
               (v.v.f == o->via.f64 || (v.v.f != v.v.f && o->via.f64 != o->via.f64));
    case MSGPACK_OBJECT_STR:
        return v.kind == RK_MP_STR && v.n == o->via.str.size &&
               (v.n == 0 || memcmp(v.p, o->via.str.ptr, v.n) == 0);
    case MSGPACK_OBJECT_BIN:
        return v.kind == RK_MP_BIN && v.n == o->via.bin.size &&
               (v.n == 0 || memcmp(v.p, o->via.bin.ptr, v.n) == 0);
    case MSGPACK_OBJECT_EXT:
        return v.kind == RK_MP_EXT && v.n == o->via.ext.size && v.v.ext_type == o->via.ext.type &&
               (v.n == 0 || memcmp(v.p, o->via.ext.ptr, v.n) == 0);
    case MSGPACK_OBJECT_ARRAY:
        if (v.kind != RK_MP_ARRAY || v.n != o->via.array.size)
            return 0;
        for (uint32_t i = 0; i < v.n; i++)
            if (!same(r, &o->via.array.ptr[i]))
                return 0;
        return 1;
    case MSGPACK_OBJECT_MAP:
        if (v.kind != RK_MP_MAP || v.n != o->via.map.size)
            return 0;
        for (uint32_t i = 0; i < v.n; i++)
            if (!same(r, &o->via.map.ptr[i].key) || !same(r, &o->via.map.ptr[i].val))
                return 0;
        return 1;
    }
    return 0;
}

static int depth_of(const msgpack_object *o)
{
    int d = 0, k;
    if (o->type == MSGPACK_OBJECT_ARRAY)
        for (uint32_t i = 0; i < o->via.array.size; i++)
            if ((k = depth_of(&o->via.array.ptr[i])) > d)
                d = k;
    if (o->type == MSGPACK_OBJECT_MAP)
        for (uint32_t i = 0; i < o->via.map.size; i++)
            if ((k = depth_of(&o->via.map.ptr[i].val)) > d ||
                (k = depth_of(&o->via.map.ptr[i].key)) > d)
                d = k;
    return d + (o->type == MSGPACK_OBJECT_ARRAY || o->type == MSGPACK_OBJECT_MAP);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

/* Compares the readers on one frame; returns 1 when msgpack-c read it whole.
 * msgpack-c allocates what a container's count claims before it sees the
 * frame end, gigabytes after some byte changes, so with `only_if_read` it
 * is asked only about frames rk_mp read whole. */
static int compare_on(const unsigned char *buf, size_t len, int only_if_read)
{
    msgpack_unpacked up;
    size_t off = 0;
    if (only_if_read && !rk_mp_is_one(buf, len))
        return 0;
    msgpack_unpacked_init(&up);
    int ok = msgpack_unpack_next(&up, (const char *)buf, len, &off) == MSGPACK_UNPACK_SUCCESS &&
             off == len;
    int deep_ok = ok && depth_of(&up.data) <= RK_MP_DEPTH_MAX;
    RK_CHECK(rk_mp_is_one(buf, len) == deep_ok);
    if (ok) {
        struct rk_mp_reader r = {buf, len, 0};
        RK_CHECK(same(&r, &up.data) && r.off == len);
    }
    msgpack_unpacked_destroy(&up);
    return ok;
}

/* A random value of every kind, nested a little, packed by msgpack-c. */
static void pack_random(msgpack_packer *pk, int depth)
{
    static const char text[] = "renkei aid.request 271004 ";
    switch (rnd(depth < 3 ? 12 : 9)) {
    case 0: msgpack_pack_nil(pk); break;
    case 1: rnd(2) ? msgpack_pack_true(pk) : msgpack_pack_false(pk); break;
    case 2: msgpack_pack_uint64(pk, (uint64_t)rnd(1000000) << rnd(40)); break;
    case 3: msgpack_pack_int64(pk, -(int64_t)((uint64_t)rnd(1000000) << rnd(40))); break;
    case 4: msgpack_pack_float(pk, (float)rnd(1000) / 8); break;
    case 5: msgpack_pack_double(pk, (double)rnd(1000000) / 3); break;
    case 6: { unsigned n = rnd(40); msgpack_pack_str(pk, n);
              for (unsigned i = 0; i < n; i++) msgpack_pack_str_body(pk, &text[rnd(26)], 1);
              break; }
    case 7: { unsigned n = rnd(300); msgpack_pack_bin(pk, n);
              for (unsigned i = 0; i < n; i++) msgpack_pack_bin_body(pk, &text[rnd(26)], 1);
              break; }
    case 8: msgpack_pack_ext(pk, rnd(20), (int8_t)(rnd(256) - 128));
            for (unsigned i = 0; i < 20; i++) msgpack_pack_ext_body(pk, "x", 1);
            break;
    case 9: case 10: { unsigned n = rnd(20); msgpack_pack_array(pk, n);
              for (unsigned i = 0; i < n; i++) pack_random(pk, depth + 1);
              break; }
    default: { unsigned n = rnd(18); msgpack_pack_map(pk, n);
              for (unsigned i = 0; i < 2 * n; i++) pack_random(pk, depth + 1);
              break; }
    }
}

static void test_same_as_msgpack_c(void)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int whole = 0, frames = 0;
    msgpack_sbuffer_init(&sb);
    for (int round = 0; round < 20000; round++) {
        sb.size = 0;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        pack_random(&pk, 0);
        unsigned char *buf = (unsigned char *)sb.data;
        whole += compare_on(buf, sb.size, 0);
        frames++;
        /* mutations: a byte changed, the frame cut short */
        for (int m = 0; m < 8 && sb.size > 0; m++) {
            size_t at = rnd((unsigned)sb.size);
            unsigned char old = buf[at];
            buf[at] = (unsigned char)rnd(256);
            whole += compare_on(buf, sb.size, 1);
            buf[at] = old;
            whole += compare_on(buf, at, 0); /* counts as packed: no lie */
            frames += 2;
        }
    }
    msgpack_sbuffer_destroy(&sb);
    /* Both kinds of frame occurred, so both sides of the comparison ran. */
    RK_CHECK(whole > frames / 10 && whole < frames);
}

int main(void)
{
    RK_RUN(test_integers);
    RK_RUN(test_scalars_and_bytes);
    RK_RUN(test_containers);
    RK_RUN(test_depth_limit);
    RK_RUN(test_every_truncation_refused);
    RK_RUN(test_same_as_msgpack_c);
    return rk_test_result();
}
