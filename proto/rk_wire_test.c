#include "rk_wire.h"
#include "rk_test.h"

#include <msgpack.h>
#include <stdlib.h>

static void roundtrip(const struct rk_wire_hdr *in, struct rk_wire_hdr *out)
{
    unsigned char buf[RK_WIRE_HDR_MAX];
    size_t n = rk_wire_encode(in, buf, sizeof buf);
    RK_CHECK(n > 0);
    RK_CHECK(rk_wire_decode(buf, n, out) == 0);
    RK_CHECK(out->cmd == in->cmd);
    RK_CHECK(out->corr == in->corr);
}

static void test_roundtrip_every_command(void)
{
    struct rk_wire_hdr in = {0}, out;
    in.cmd = RK_CMD_PUB; in.corr = 7;
    roundtrip(&in, &out);

    in.cmd = RK_CMD_ACK; in.corr = UINT64_MAX; in.seq = 1ull << 40; in.recv_ns = 1771291326000000000;
    roundtrip(&in, &out);
    RK_CHECK(out.seq == in.seq && out.recv_ns == in.recv_ns);

    in.cmd = RK_CMD_EVT; in.seq = 300;
    roundtrip(&in, &out);
    RK_CHECK(out.seq == 300 && out.publisher[0] == '\0');
    strcpy(in.publisher, "rq:rw)L[J5sU6wz1.W4*{(J7j&aA7bJsJ[Dz#iKz");
    roundtrip(&in, &out);
    RK_CHECK_STR(out.publisher, in.publisher);
    in.publisher[0] = '\0';
    in.cmd = RK_CMD_LIVE; in.corr = 0; in.seq = 65536; in.prev_seq = 65000;
    strcpy(in.topic, "aid.request/27/271004");
    roundtrip(&in, &out);
    RK_CHECK(out.seq == 65536 && out.prev_seq == 65000);
    RK_CHECK_STR(out.topic, "aid.request/27/271004");
    in.prev_seq = 65536; /* a live event cannot follow itself */
    unsigned char bad[RK_WIRE_HDR_MAX];
    size_t badn = rk_wire_encode(&in, bad, sizeof bad);
    RK_CHECK(badn > 0 && rk_wire_decode(bad, badn, &out) == -1);

    struct rk_wire_hdr t = {.cmd = RK_CMD_TICK, .seq = 900, .recv_ns = 5, .prev_seq = 900};
    roundtrip(&t, &out);
    RK_CHECK(out.cmd == RK_CMD_TICK && out.seq == 900 && out.prev_seq == 900);

    struct rk_wire_hdr e = {.cmd = RK_CMD_ERR, .corr = 3};
    strcpy(e.code, "E_RANGE");
    strcpy(e.message, "offer.quantity: must be 1..10000000, got -5");
    roundtrip(&e, &out);
    RK_CHECK_STR(out.code, "E_RANGE");
    RK_CHECK_STR(out.message, e.message);

    struct rk_wire_hdr r = {.cmd = RK_CMD_REPLAY, .corr = 9, .from_seq = 1, .to_seq = 0, .limit = 1000};
    roundtrip(&r, &out);
    RK_CHECK(out.from_seq == 1 && out.to_seq == 0 && out.limit == 1000);

    struct rk_wire_hdr d = {.cmd = RK_CMD_END, .corr = 9, .next_seq = 1001, .head_seq = 5000};
    roundtrip(&d, &out);
    RK_CHECK(out.next_seq == 1001 && out.head_seq == 5000);

    struct rk_wire_hdr s = {.cmd = RK_CMD_SNAP, .corr = 4, .at_seq = 77, .limit = 500,
                            .cursor = {'K', 0, 0xff, 3}, .cursor_len = 4};
    s.filter.ntopics = 1;
    strcpy(s.filter.topics[0], "aid.");
    roundtrip(&s, &out);
    RK_CHECK(out.at_seq == 77 && out.limit == 500 && out.cursor_len == 4);
    RK_CHECK(memcmp(out.cursor, s.cursor, 4) == 0 && out.filter.ntopics == 1);
    s.cursor_len = 0;
    roundtrip(&s, &out);
    RK_CHECK(out.cursor_len == 0);
    s.cursor_len = RK_WIRE_CURSOR_MAX + 1; /* longer than the protocol allows */
    unsigned char buf[RK_WIRE_HDR_MAX];
    RK_CHECK(rk_wire_encode(&s, buf, sizeof buf) == 0);

    struct rk_wire_hdr se = {.cmd = RK_CMD_SNAPEND, .corr = 4, .at_seq = 77, .sent = 12,
                             .cursor = {1, 2, 3}, .cursor_len = 3};
    roundtrip(&se, &out);
    RK_CHECK(out.at_seq == 77 && out.sent == 12 && out.cursor_len == 3 && out.cursor[2] == 3);
}

/* The worked example in PROTOCOL.md must stay true. */
static void test_documented_bytes(void)
{
    struct rk_wire_hdr h = {.cmd = RK_CMD_PUB, .corr = 1};
    unsigned char buf[64];
    static const unsigned char pub[] = {0x93, 0x01, 0xa3, 'p', 'u', 'b', 0x01};
    RK_CHECK(rk_wire_encode(&h, buf, sizeof buf) == sizeof pub);
    RK_CHECK(memcmp(buf, pub, sizeof pub) == 0);

    struct rk_wire_hdr a = {.cmd = RK_CMD_ACK, .corr = 1, .seq = 42, .recv_ns = 1771308000123456789};
    static const unsigned char ack[] = {0x95, 0x01, 0xa3, 'a', 'c', 'k', 0x01, 0x2a, 0xcf,
                                        0x18, 0x94, 0xf3, 0x3d, 0xc7, 0x2a, 0x8d, 0x15};
    RK_CHECK(rk_wire_encode(&a, buf, sizeof buf) == sizeof ack);
    RK_CHECK(memcmp(buf, ack, sizeof ack) == 0);

    /* a 43-byte message: str 8, d9 2b */
    struct rk_wire_hdr e = {.cmd = RK_CMD_ERR, .corr = 2, .code = "E_RANGE",
                            .message = "offer.quantity: must be 1..10000000, got -5"};
    static const unsigned char err[] = {0x95, 0x01, 0xa3, 'e', 'r', 'r', 0x02, 0xa7, 'E', '_',
                                        'R', 'A', 'N', 'G', 'E', 0xd9, 0x2b};
    RK_CHECK(rk_wire_encode(&e, buf, sizeof buf) == sizeof err + 43);
    RK_CHECK(memcmp(buf, err, sizeof err) == 0 && memcmp(buf + sizeof err, e.message, 43) == 0);
}

static void test_every_truncation_refused(void)
{
    struct rk_wire_hdr r = {.cmd = RK_CMD_REPLAY, .corr = 123456, .from_seq = 70000, .to_seq = 1ull << 33, .limit = 500};
    unsigned char buf[RK_WIRE_HDR_MAX];
    struct rk_wire_hdr out;
    size_t n = rk_wire_encode(&r, buf, sizeof buf);
    for (size_t i = 0; i < n; i++)
        RK_CHECK(rk_wire_decode(buf, i, &out) == -1);
}

static void test_bad_headers_refused(void)
{
    struct rk_wire_hdr out;
    static const unsigned char v2[] = {0x93, 0x02, 0xa3, 'p', 'u', 'b', 0x01};
    static const unsigned char unknown[] = {0x93, 0x01, 0xa3, 'p', 'u', 'x', 0x01};
    static const unsigned char short_ack[] = {0x94, 0x01, 0xa3, 'a', 'c', 'k', 0x01, 0x05};
    static const unsigned char neg_corr[] = {0x93, 0x01, 0xa3, 'p', 'u', 'b', 0xff};
    static const unsigned char not_array[] = {0x81, 0x01, 0x01};
    static const unsigned char nul_in_code[] = {0x95, 0x01, 0xa3, 'e', 'r', 'r', 0x01, 0xa2, 'E', 0x00, 0xa0};
    RK_CHECK(rk_wire_decode(v2, sizeof v2, &out) == -1);
    /* an unknown command is well formed: the caller answers E_COMMAND */
    RK_CHECK(rk_wire_decode(unknown, sizeof unknown, &out) == 0);
    RK_CHECK(out.cmd == RK_CMD_NONE && out.corr == 1);
    RK_CHECK(rk_wire_decode(short_ack, sizeof short_ack, &out) == -1);
    RK_CHECK(rk_wire_decode(neg_corr, sizeof neg_corr, &out) == -1);
    RK_CHECK(rk_wire_decode(not_array, sizeof not_array, &out) == -1);
    RK_CHECK(rk_wire_decode(nul_in_code, sizeof nul_in_code, &out) == -1);
    RK_CHECK(rk_wire_decode("", 0, &out) == -1);
}

static void test_lenient_where_documented(void)
{
    struct rk_wire_hdr out;
    /* corr as uint32 and as a non-negative int8, plus one unknown trailing element */
    static const unsigned char wide[] = {0x96, 0x01, 0xa3, 'a', 'c', 'k', 0xce, 0, 0, 0, 5,
                                         0x07, 0x08, 0xc0};
    static const unsigned char signed_pos[] = {0x93, 0x01, 0xa3, 'p', 'u', 'b', 0xd0, 0x05};
    RK_CHECK(rk_wire_decode(wide, sizeof wide, &out) == 0 && out.corr == 5);
    RK_CHECK(rk_wire_decode(signed_pos, sizeof signed_pos, &out) == 0 && out.corr == 5);
}

/* PROTOCOL.md 3.2: E_ORDER's sixth element, and ping / pong. */
static void test_order_and_ping(void)
{
    struct rk_wire_hdr e = {.cmd = RK_CMD_ERR, .corr = 7, .code = "E_ORDER", .message = "m",
                            .expected = 300}, out;
    unsigned char buf[64];
    /* [1, "err", 7, "E_ORDER", "m", 300] */
    static const unsigned char order[] = {0x96, 0x01, 0xa3, 'e', 'r', 'r', 0x07, 0xa7, 'E', '_',
                                          'O', 'R', 'D', 'E', 'R', 0xa1, 'm', 0xcd, 0x01, 0x2c};
    RK_CHECK(rk_wire_encode(&e, buf, sizeof buf) == sizeof order);
    RK_CHECK(memcmp(buf, order, sizeof order) == 0);
    RK_CHECK(rk_wire_decode(order, sizeof order, &out) == 0 && out.expected == 300);
    /* other errors keep five elements, and decode with expected 0 */
    e.expected = 0;
    RK_CHECK(rk_wire_encode(&e, buf, sizeof buf) == sizeof order - 3 && buf[0] == 0x95);
    RK_CHECK(rk_wire_decode(buf, sizeof order - 3, &out) == 0 && out.expected == 0);

    static const unsigned char ping[] = {0x93, 0x01, 0xa4, 'p', 'i', 'n', 'g', 0x09};
    struct rk_wire_hdr p = {.cmd = RK_CMD_PING, .corr = 9};
    RK_CHECK(rk_wire_encode(&p, buf, sizeof buf) == sizeof ping);
    RK_CHECK(memcmp(buf, ping, sizeof ping) == 0);
    p.cmd = RK_CMD_PONG;
    roundtrip(&p, &out);
    RK_CHECK(out.cmd == RK_CMD_PONG && out.corr == 9);
}

/* A limit of any size is a limit, not a malformed header. */
static void test_huge_limit_read_as_largest(void)
{
    struct rk_wire_hdr out;
    /* [1, "replay", 1, 1, 0, 2^40] */
    static const unsigned char replay[] = {0x96, 0x01, 0xa6, 'r', 'e', 'p', 'l', 'a', 'y', 0x01,
                                           0x01, 0x00, 0xcf, 0, 0, 0x01, 0, 0, 0, 0, 0};
    RK_CHECK(rk_wire_decode(replay, sizeof replay, &out) == 0 && out.limit == UINT32_MAX);
}

/* A replay header [1, "replay", 1, 1, 0, 10, {key: value}] whose value is
 * a str, or an array of one str when `in_array`, or (for NULL) an empty
 * array; decoded into *out. */
static int decode_filter(const char *key, const char *value, int in_array,
                         struct rk_wire_hdr *out)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 7);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_str_with_body(&pk, "replay", 6);
    for (int i = 0; i < 4; i++)
        msgpack_pack_uint8(&pk, i == 3 ? 10 : i == 2 ? 0 : 1);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, key, strlen(key));
    if (in_array || !value)
        msgpack_pack_array(&pk, value ? 1 : 0);
    if (value)
        msgpack_pack_str_with_body(&pk, value, strlen(value));
    int rc = rk_wire_decode(sb.data, sb.size, out);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* A filter value is what it says or it is refused (PROTOCOL.md 3.4): never
 * read as "everything". */
static void test_filter_values_checked(void)
{
    struct rk_wire_hdr out;
    RK_CHECK(decode_filter("topics", "aid.request/30", 1, &out) == 0 && out.filter.ntopics == 1);
    RK_CHECK(decode_filter("topics", NULL, 1, &out) == -1);           /* [] */
    RK_CHECK(decode_filter("topics", "aid request", 1, &out) == -1);  /* space */
    RK_CHECK(decode_filter("topics", "aid|kpi", 1, &out) == -1);
    RK_CHECK(decode_filter("topics", "\xe3\x81\x82", 1, &out) == -1); /* あ */
    RK_CHECK(decode_filter("request_id", "REQ-1", 0, &out) == 0);
    RK_CHECK(decode_filter("request_id", "bad id", 0, &out) == -1);
    RK_CHECK(decode_filter("kpi_id", "K/1", 0, &out) == -1);
    /* a key given twice: [1, "replay", 1, 1, 0, 10, {"kpi_id": "a", "kpi_id": "b"}] */
    static const unsigned char twice[] = {0x97, 0x01, 0xa6, 'r', 'e', 'p', 'l', 'a', 'y', 0x01,
                                          0x01, 0x00, 0x0a, 0x82, 0xa6, 'k', 'p', 'i', '_', 'i',
                                          'd', 0xa1, 'a', 0xa6, 'k', 'p', 'i', '_', 'i', 'd',
                                          0xa1, 'b'};
    RK_CHECK(rk_wire_decode(twice, sizeof twice, &out) == -1);
    /* to_time of any uint: beyond 2^63 - 1 it is as late as a time goes */
    static const unsigned char late[] = {0x97, 0x01, 0xa6, 'r', 'e', 'p', 'l', 'a', 'y', 0x01,
                                         0x01, 0x00, 0x0a, 0x81, 0xa7, 't', 'o', '_', 't', 'i',
                                         'm', 'e', 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                         0xff, 0xff};
    RK_CHECK(rk_wire_decode(late, sizeof late, &out) == 0 && out.filter.to_ns == INT64_MAX);
}

/* A refused header names the element it failed at, for the E_HEADER
 * message (PROTOCOL.md 5: the message names the field). */
static void test_refusal_names_the_field(void)
{
    struct rk_wire_hdr out;
    char why[200];
    /* [1, "pub", 5, "p", 0] */
    static const unsigned char zero[] = {0x95, 0x01, 0xa3, 'p', 'u', 'b', 0x05, 0xa1, 'p', 0x00};
    RK_CHECK(rk_wire_decode(zero, sizeof zero, &out) == -1 && out.field);
    RK_CHECK_STR(out.field, "number");
    rk_wire_refusal_text(&out, why, sizeof why);
    RK_CHECK(strncmp(why, "header.number: ", 15) == 0);
    RK_CHECK(decode_filter("topics", NULL, 1, &out) == -1);
    RK_CHECK_STR(out.field, "filter.topics");
    rk_wire_refusal_text(&out, why, sizeof why);
    RK_CHECK(strncmp(why, "filter.topics: ", 15) == 0);
    /* [1, "replay", 1, "x", 0, 10] */
    static const unsigned char from[] = {0x96, 0x01, 0xa6, 'r', 'e', 'p', 'l', 'a', 'y', 0x01,
                                         0xa1, 'x', 0x00, 0x0a};
    RK_CHECK(rk_wire_decode(from, sizeof from, &out) == -1);
    RK_CHECK_STR(out.field, "from_seq");
    /* [1, "replay", 1]: too few elements */
    static const unsigned char few[] = {0x93, 0x01, 0xa6, 'r', 'e', 'p', 'l', 'a', 'y', 0x01};
    RK_CHECK(rk_wire_decode(few, sizeof few, &out) == -1);
    RK_CHECK_STR(out.field, "header");
    RK_CHECK(decode_filter("request_id", "REQ-1", 0, &out) == 0 && out.field == NULL);
}

static void test_idempotent_pub(void)
{
    struct rk_wire_hdr in = {.cmd = RK_CMD_PUB, .corr = 5, .producer_seq = 1ull << 33}, out;
    strcpy(in.producer, "agent-271004-a");
    roundtrip(&in, &out);
    RK_CHECK_STR(out.producer, "agent-271004-a");
    RK_CHECK(out.producer_seq == 1ull << 33);

    /* [1, "pub", 5, "p", 0]: number 0 is not a number */
    static const unsigned char zero[] = {0x95, 0x01, 0xa3, 'p', 'u', 'b', 0x05, 0xa1, 'p', 0x00};
    RK_CHECK(rk_wire_decode(zero, sizeof zero, &out) == -1);
    /* [1, "pub", 5, "p"]: a producer without its number */
    static const unsigned char half[] = {0x94, 0x01, 0xa3, 'p', 'u', 'b', 0x05, 0xa1, 'p'};
    RK_CHECK(rk_wire_decode(half, sizeof half, &out) == -1);
    /* a 65-byte producer is refused, not cut to 64 (two producers would merge) */
    unsigned char longer[80] = {0x95, 0x01, 0xa3, 'p', 'u', 'b', 0x05, 0xd9, 65};
    memset(longer + 9, 'x', 65);
    longer[74] = 0x01;
    RK_CHECK(rk_wire_decode(longer, 75, &out) == -1);
    longer[8] = 64;
    longer[73] = 0x01;
    RK_CHECK(rk_wire_decode(longer, 74, &out) == 0 && strlen(out.producer) == 64);
}

static void test_pub_flags(void)
{
    struct rk_wire_hdr in = {.cmd = RK_CMD_PUB, .corr = 9, .flags = RK_WIRE_PUB_ACKS}, out;
    unsigned char buf[RK_WIRE_HDR_MAX];
    /* [1, "pub", 9, 1]: flags without a producer */
    static const unsigned char short_form[] = {0x94, 0x01, 0xa3, 'p', 'u', 'b', 0x09, 0x01};
    RK_CHECK(rk_wire_encode(&in, buf, sizeof buf) == sizeof short_form);
    RK_CHECK(memcmp(buf, short_form, sizeof short_form) == 0);
    roundtrip(&in, &out);
    RK_CHECK(out.flags == RK_WIRE_PUB_ACKS && out.producer[0] == '\0');
    strcpy(in.producer, "p");
    in.producer_seq = 3;
    roundtrip(&in, &out);
    RK_CHECK(out.flags == RK_WIRE_PUB_ACKS && out.producer_seq == 3);
    RK_CHECK_STR(out.producer, "p");
    /* [1, "pub", 9, "p", 3, 1] */
    static const unsigned char long_form[] = {0x96, 0x01, 0xa3, 'p', 'u', 'b', 0x09,
                                              0xa1, 'p', 0x03, 0x01};
    RK_CHECK(rk_wire_encode(&in, buf, sizeof buf) == sizeof long_form);
    RK_CHECK(memcmp(buf, long_form, sizeof long_form) == 0);
    /* without flags the header is the version-1 one, unchanged */
    in.flags = 0;
    RK_CHECK(rk_wire_encode(&in, buf, sizeof buf) > 0 && buf[0] == 0x95);
}

static void test_acks(void)
{
    uint64_t pairs[2 * 300];
    unsigned char buf[RK_WIRE_ACKS_SIZE(300)];
    struct rk_wire_hdr out;
    uint64_t corr, seq;
    for (int i = 0; i < 300; i++) {
        pairs[2 * i] = 1000 + (uint64_t)i;
        pairs[2 * i + 1] = (1ull << 35) + 2 * (uint64_t)i;
    }
    /* [1, "acks", 0, 5, [7, 42]] */
    static const unsigned char one[] = {0x95, 0x01, 0xa4, 'a', 'c', 'k', 's', 0x00, 0x05,
                                        0x92, 0x07, 0x2a};
    RK_CHECK(rk_wire_encode_acks(5, (uint64_t[]){7, 42}, 1, buf, sizeof buf) == sizeof one);
    RK_CHECK(memcmp(buf, one, sizeof one) == 0);

    size_t n = rk_wire_encode_acks(1771291326000000000, pairs, 300, buf, sizeof buf);
    RK_CHECK(n > 0 && n <= sizeof buf);
    RK_CHECK(rk_wire_decode(buf, n, &out) == 0 && out.cmd == RK_CMD_ACKS);
    RK_CHECK(out.recv_ns == 1771291326000000000 && out.nacks == 300);
    for (int i = 0; i < 300; i++) {
        RK_CHECK(rk_wire_acks_next(&out, &corr, &seq) == 0);
        RK_CHECK(corr == pairs[2 * i] && seq == pairs[2 * i + 1]);
    }
    RK_CHECK(rk_wire_acks_next(&out, &corr, &seq) == -1);
    for (size_t i = 0; i < n; i++) /* every truncation is refused */
        RK_CHECK(rk_wire_decode(buf, i, &out) == -1);
    RK_CHECK(rk_wire_encode_acks(1, pairs, 300, buf, 100) == 0);
    /* an odd count is not a list of pairs */
    static const unsigned char odd[] = {0x95, 0x01, 0xa4, 'a', 'c', 'k', 's', 0x00, 0x05,
                                        0x91, 0x07};
    RK_CHECK(rk_wire_decode(odd, sizeof odd, &out) == -1);
    /* an empty list is not sent, nor taken */
    static const unsigned char none[] = {0x95, 0x01, 0xa4, 'a', 'c', 'k', 's', 0x00, 0x05, 0x90};
    RK_CHECK(rk_wire_decode(none, sizeof none, &out) == -1);
    RK_CHECK(rk_wire_encode_acks(1, pairs, 0, buf, sizeof buf) == 0);
    /* 40,000 pairs: the array32 length */
    size_t big = 40000;
    uint64_t *many = calloc(2 * big, sizeof *many);
    unsigned char *bigbuf = malloc(RK_WIRE_ACKS_SIZE(big));
    RK_CHECK(many && bigbuf);
    for (size_t i = 0; i < 2 * big; i++)
        many[i] = i;
    n = rk_wire_encode_acks(7, many, big, bigbuf, RK_WIRE_ACKS_SIZE(big));
    RK_CHECK(n > 0 && bigbuf[9] == 0xdd);
    RK_CHECK(rk_wire_decode(bigbuf, n, &out) == 0 && out.nacks == big);
    size_t got = 0;
    while (rk_wire_acks_next(&out, &corr, &seq) == 0 && corr == 2 * got && seq == 2 * got + 1)
        got++;
    RK_CHECK(got == big);
    free(many);
    free(bigbuf);
    /* rk_wire_encode leaves "acks" to rk_wire_encode_acks */
    struct rk_wire_hdr h = {.cmd = RK_CMD_ACKS};
    RK_CHECK(rk_wire_encode(&h, buf, sizeof buf) == 0);
}

static void test_long_error_text_clipped_on_utf8_boundary(void)
{
    struct rk_wire_hdr e = {.cmd = RK_CMD_ERR}, out;
    memset(e.message, 0, sizeof e.message);
    for (size_t i = 0; i + 3 < sizeof e.message; i += 3)
        memcpy(e.message + i, "\xe6\xb0\xb4", 3);  /* 水 repeated */
    unsigned char buf[RK_WIRE_HDR_MAX];
    size_t n = rk_wire_encode(&e, buf, sizeof buf);
    RK_CHECK(n > 0);
    RK_CHECK(rk_wire_decode(buf, n, &out) == 0);
    RK_CHECK(strlen(out.message) % 3 == 0);
    RK_CHECK(rk_wire_encode(&e, buf, 10) == 0);
}

static void test_subscription_keys(void)
{
    char key[RK_WIRE_SUBKEY_MAX], why[128], topics[RK_WIRE_TOPICS_MAX][RK_WIRE_TOPIC_MAX];
    const char *osaka[] = {"aid.request/27/", "aid.offer/27/", "aid.request/27/271004", "aid.offer/27/"};
    size_t n = rk_wire_subkey(osaka, 4, key, why, sizeof why);
    RK_CHECK_STR(key, "~aid.offer/27/|aid.request/27/\n");
    RK_CHECK(n == strlen(key));
    RK_CHECK(rk_wire_subkey_parse(key, n, topics) == 2);
    RK_CHECK_STR(topics[0], "aid.offer/27/");
    RK_CHECK_STR(topics[1], "aid.request/27/");

    const char *all[] = {"kpi.", ""};
    RK_CHECK(rk_wire_subkey(all, 2, key, why, sizeof why) == 2);
    RK_CHECK_STR(key, "~\n");
    RK_CHECK(rk_wire_subkey(NULL, 0, key, why, sizeof why) == 2);
    RK_CHECK(rk_wire_subkey_parse(key, 2, topics) == 0);

    const char *bad[] = {"aid|x"};
    RK_CHECK(rk_wire_subkey(bad, 1, key, why, sizeof why) == 0);
    RK_CHECK(strstr(why, "aid|x") != NULL);

    /* what the broker must not take from the network */
    const char *wrong[] = {"", "~", "aid.\n", "~aid.", "~|\n", "~a||b\n", "~a\nb\n", "~a b\n",
                           "~0123456789012345678901234567890123456789\n",
                           "~a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p|q\n"};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++)
        RK_CHECK(rk_wire_subkey_parse(wrong[i], strlen(wrong[i]), topics) == -1);
    RK_CHECK(rk_wire_subkey_parse("~a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p\n", 33, topics) == 16);
}

static void test_packed_replay(void)
{
    unsigned char buf[RK_WIRE_HDR_MAX];
    struct rk_wire_hdr out;
    /* flags come after the filter, so an unfiltered request sends {} */
    struct rk_wire_hdr r = {.cmd = RK_CMD_REPLAY, .corr = 9, .from_seq = 1, .limit = 1000,
                            .flags = RK_WIRE_REPLAY_PACKED};
    static const unsigned char want[] = {0x98, 0x01, 0xa6, 'r', 'e', 'p', 'l', 'a', 'y', 0x09,
                                         0x01, 0x00, 0xcd, 0x03, 0xe8, 0x80, 0x01};
    RK_CHECK(rk_wire_encode(&r, buf, sizeof buf) == sizeof want);
    RK_CHECK(memcmp(buf, want, sizeof want) == 0);
    RK_CHECK(rk_wire_decode(want, sizeof want, &out) == 0 && out.flags == RK_WIRE_REPLAY_PACKED);
    RK_CHECK(!rk_wire_filter_active(&out.filter));
    /* the seven-element form leaves the flags at 0 */
    RK_CHECK(rk_wire_decode(want, sizeof want - 1, &out) == -1); /* truncated */
    unsigned char seven[sizeof want - 1];
    memcpy(seven, want, sizeof seven);
    seven[0] = 0x97;
    RK_CHECK(rk_wire_decode(seven, sizeof seven, &out) == 0 && out.flags == 0);

    struct rk_wire_hdr s = {.cmd = RK_CMD_SNAP, .corr = 4, .at_seq = 77, .limit = 10,
                            .flags = RK_WIRE_REPLAY_PACKED};
    strcpy(s.filter.kpi_id, "k1");
    roundtrip(&s, &out);
    RK_CHECK(out.flags == RK_WIRE_REPLAY_PACKED && out.at_seq == 77);
    RK_CHECK_STR(out.filter.kpi_id, "k1");

    /* [1, "evts", 3, 2] */
    struct rk_wire_hdr e = {.cmd = RK_CMD_EVTS, .corr = 3, .nrecords = 2};
    static const unsigned char evts[] = {0x94, 0x01, 0xa4, 'e', 'v', 't', 's', 0x03, 0x02};
    RK_CHECK(rk_wire_encode(&e, buf, sizeof buf) == sizeof evts);
    RK_CHECK(memcmp(buf, evts, sizeof evts) == 0);
    RK_CHECK(rk_wire_decode(evts, sizeof evts, &out) == 0 && out.nrecords == 2);
}

/* Records of every bin length form, with and without a publisher, walk
 * back exactly; every truncation and a fifth element are refused. */
static void test_records(void)
{
    static const size_t sizes[] = {0, 200, 255, 256, 65535, 65536};
    static const char key[] = "rq:rw)L[J5sU6wz1.W4*{(J7j&aA7bJsJ[Dz#iKz";
    size_t cap = 0, len = 0;
    for (size_t i = 0; i < 6; i++)
        cap += sizes[i] + RK_WIRE_RECORD_OVERHEAD;
    unsigned char *event = malloc(65536), *buf = malloc(cap);
    RK_CHECK(event && buf);
    for (size_t i = 0; i < 65536; i++)
        event[i] = (unsigned char)(i * 7);
    for (size_t i = 0; i < 6; i++) {
        struct rk_wire_record rec = {.seq = 1000 + i, .recv_ns = 1771291326000000000 + (int64_t)i,
                                     .event = event, .event_len = sizes[i],
                                     .publisher = i % 2 ? key : NULL,
                                     .publisher_len = i % 2 ? strlen(key) : 0};
        size_t n = rk_wire_record_put(&rec, buf + len, cap - len);
        RK_CHECK(n > sizes[i] && n <= sizes[i] + RK_WIRE_RECORD_OVERHEAD);
        len += n;
    }
    /* [1, 5, bin8 of 0 bytes]: the smallest record, byte for byte */
    struct rk_wire_record tiny = {.seq = 1, .recv_ns = 5, .event = event};
    unsigned char small[RK_WIRE_RECORD_OVERHEAD];
    static const unsigned char tiny_bytes[] = {0x93, 0x01, 0x05, 0xc4, 0x00};
    RK_CHECK(rk_wire_record_put(&tiny, small, sizeof small) == sizeof tiny_bytes);
    RK_CHECK(memcmp(small, tiny_bytes, sizeof tiny_bytes) == 0);
    RK_CHECK(rk_wire_record_put(&tiny, small, sizeof small - 1) == 0);

    const unsigned char *p = buf;
    size_t left = len;
    struct rk_wire_record got;
    for (size_t i = 0; i < 6; i++) {
        RK_CHECK(rk_wire_record_next(&p, &left, &got) == 0);
        RK_CHECK(got.seq == 1000 + i && got.recv_ns == 1771291326000000000 + (int64_t)i);
        RK_CHECK(got.event_len == sizes[i] && memcmp(got.event, event, sizes[i]) == 0);
        RK_CHECK(i % 2 ? got.publisher_len == strlen(key) &&
                             memcmp(got.publisher, key, strlen(key)) == 0
                       : got.publisher == NULL);
    }
    RK_CHECK(left == 0 && rk_wire_record_next(&p, &left, &got) == -1);
    /* the first record (a bin8 of nothing), cut short anywhere */
    for (size_t i = 0; i < 5; i++) {
        p = buf;
        left = i;
        RK_CHECK(rk_wire_record_next(&p, &left, &got) == -1 && p == buf);
    }
    static const unsigned char nul_key[] = {0x94, 0x01, 0x05, 0xc4, 0x00, 0xa2, 'k', 0x00};
    p = nul_key;
    left = sizeof nul_key;
    RK_CHECK(rk_wire_record_next(&p, &left, &got) == -1);
    static const unsigned char five[] = {0x95, 0x01, 0x05, 0xc4, 0x00, 0xa0, 0x00};
    p = five;
    left = sizeof five;
    RK_CHECK(rk_wire_record_next(&p, &left, &got) == -1);
    free(event);
    free(buf);
}

/* ---- documented maxima, checked by our decoder and by msgpack-c
 *
 * msgpack-c is an independent reader: bytes it reads as one whole value,
 * with the counts the header promises, are MessagePack any peer can read. */

/* 1 when msgpack-c reads `buf` as exactly one value using all `n` bytes;
 * the caller destroys *up either way. */
static int mp_whole(const unsigned char *buf, size_t n, msgpack_unpacked *up)
{
    size_t off = 0;
    msgpack_unpacked_init(up);
    return msgpack_unpack_next(up, (const char *)buf, n, &off) == MSGPACK_UNPACK_SUCCESS &&
           off == n;
}

/* Element `i` of the array `o`, or NULL. */
static const msgpack_object *mp_at(const msgpack_object *o, uint32_t i)
{
    if (o == NULL || o->type != MSGPACK_OBJECT_ARRAY || i >= o->via.array.size)
        return NULL;
    return &o->via.array.ptr[i];
}

static int mp_is_str(const msgpack_object *o, const char *s, size_t n)
{
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           (n == 0 || memcmp(o->via.str.ptr, s, n) == 0);
}

static int mp_is_uint(const msgpack_object *o, uint64_t v)
{
    return o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 == v;
}

/* The value of `key` in the map `m`, or NULL. */
static const msgpack_object *mp_get(const msgpack_object *m, const char *key)
{
    if (m == NULL || m->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < m->via.map.size; i++)
        if (mp_is_str(&m->via.map.ptr[i].key, key, strlen(key)))
            return &m->via.map.ptr[i].val;
    return NULL;
}

/* Offset of `needle` in `buf`, or -1. */
static long find(const unsigned char *buf, size_t n, const void *needle, size_t m)
{
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(buf + i, needle, m) == 0)
            return (long)i;
    return -1;
}

/* `len` bytes of `c`, then a NUL. */
static void fill(char *dst, size_t len, char c)
{
    memset(dst, c, len);
    dst[len] = '\0';
}

/* Every key at its limit: 16 prefixes of 39 bytes, ids of 64 bytes. */
static struct rk_wire_filter widest_filter(unsigned ntopics)
{
    struct rk_wire_filter f = {.from_ns = 1, .to_ns = INT64_MAX, .ntopics = ntopics};
    for (unsigned i = 0; i < ntopics; i++)
        fill(f.topics[i], RK_WIRE_TOPIC_MAX - 1, (char)('a' + i));
    fill(f.request_id, RK_WIRE_ID_MAX, 'R');
    fill(f.kpi_id, RK_WIRE_ID_MAX, 'K');
    return f;
}

static int same_filter(const struct rk_wire_filter *a, const struct rk_wire_filter *b)
{
    if (a->from_ns != b->from_ns || a->to_ns != b->to_ns || a->ntopics != b->ntopics ||
        strcmp(a->request_id, b->request_id) || strcmp(a->kpi_id, b->kpi_id))
        return 0;
    for (unsigned i = 0; i < a->ntopics; i++)
        if (strcmp(a->topics[i], b->topics[i]))
            return 0;
    return 1;
}

/* msgpack-c sees the filter map `m` holding exactly what `f` says. */
static int mp_is_filter(const msgpack_object *m, const struct rk_wire_filter *f)
{
    const msgpack_object *t = mp_get(m, "topics");
    if (m == NULL || m->type != MSGPACK_OBJECT_MAP || m->via.map.size != 5 ||
        !mp_is_uint(mp_get(m, "from_time"), (uint64_t)f->from_ns) ||
        !mp_is_uint(mp_get(m, "to_time"), (uint64_t)f->to_ns) ||
        !mp_is_str(mp_get(m, "request_id"), f->request_id, strlen(f->request_id)) ||
        !mp_is_str(mp_get(m, "kpi_id"), f->kpi_id, strlen(f->kpi_id)) || t == NULL ||
        t->type != MSGPACK_OBJECT_ARRAY || t->via.array.size != f->ntopics)
        return 0;
    for (uint32_t i = 0; i < f->ntopics; i++)
        if (!mp_is_str(mp_at(t, i), f->topics[i], strlen(f->topics[i])))
            return 0;
    return 1;
}

/* A replay filter of 1, 15 and 16 (the most) prefixes: the topics array
 * crosses from fixarray to array 16 at 16, and must say 16 there. */
static void test_filter_of_16_longest_topics(void)
{
    static const unsigned counts[] = {1, 15, RK_WIRE_TOPICS_MAX};
    static const unsigned char form[][3] = {{0x91}, {0x9f}, {0xdc, 0x00, 0x10}};
    static const size_t form_len[] = {1, 1, 3};
    for (size_t c = 0; c < 3; c++) {
        struct rk_wire_hdr in = {.cmd = RK_CMD_REPLAY, .corr = UINT64_MAX, .from_seq = UINT64_MAX,
                                 .to_seq = UINT64_MAX, .limit = RK_REPLAY_LIMIT_MAX,
                                 .flags = RK_WIRE_REPLAY_PACKED, .filter = widest_filter(counts[c])},
                           out;
        unsigned char buf[RK_WIRE_HDR_MAX];
        size_t n = rk_wire_encode(&in, buf, sizeof buf);
        RK_CHECK(n > 0);
        RK_CHECK(rk_wire_decode(buf, n, &out) == 0 && out.cmd == RK_CMD_REPLAY);
        RK_CHECK(same_filter(&out.filter, &in.filter) && out.flags == RK_WIRE_REPLAY_PACKED);
        RK_CHECK(out.corr == UINT64_MAX && out.to_seq == UINT64_MAX);
        /* the bytes right after the "topics" key */
        long at = find(buf, n, "\xa6topics", 7);
        RK_CHECK(at > 0 && memcmp(buf + at + 7, form[c], form_len[c]) == 0);
        msgpack_unpacked up;
        RK_CHECK(mp_whole(buf, n, &up));
        RK_CHECK(up.data.type == MSGPACK_OBJECT_ARRAY && up.data.via.array.size == 8);
        RK_CHECK(mp_is_filter(mp_at(&up.data, 6), &in.filter));
        RK_CHECK(mp_is_uint(mp_at(&up.data, 7), RK_WIRE_REPLAY_PACKED));
        msgpack_unpacked_destroy(&up);
    }
}

/* A gap fill of a 16-prefix subscriber (3.3): the topics alone, last in
 * the header. Read back as no topics, it would select every event. */
static void test_gap_fill_keeps_16_topics(void)
{
    struct rk_wire_hdr in = {.cmd = RK_CMD_REPLAY, .corr = 9, .from_seq = 1, .limit = 1000},
                       out;
    in.filter.ntopics = RK_WIRE_TOPICS_MAX;
    for (unsigned i = 0; i < RK_WIRE_TOPICS_MAX; i++)
        snprintf(in.filter.topics[i], RK_WIRE_TOPIC_MAX, "aid.request/%02u/", 27 + i);
    unsigned char buf[RK_WIRE_HDR_MAX];
    size_t n = rk_wire_encode(&in, buf, sizeof buf);
    RK_CHECK(n > 0 && rk_wire_decode(buf, n, &out) == 0);
    RK_CHECK(out.filter.ntopics == RK_WIRE_TOPICS_MAX && same_filter(&out.filter, &in.filter));
    msgpack_unpacked up;
    RK_CHECK(mp_whole(buf, n, &up) && up.data.via.array.size == 7);
    const msgpack_object *t = mp_get(mp_at(&up.data, 6), "topics");
    RK_CHECK(t && t->type == MSGPACK_OBJECT_ARRAY && t->via.array.size == RK_WIRE_TOPICS_MAX);
    msgpack_unpacked_destroy(&up);
}

/* The longest snap: a 96-byte cursor and the widest filter. It fits
 * RK_WIRE_HDR_MAX, and no smaller buffer gets a byte past its end. */
static void test_snap_at_every_maximum(void)
{
    struct rk_wire_hdr in = {.cmd = RK_CMD_SNAP, .corr = UINT64_MAX, .at_seq = UINT64_MAX,
                             .limit = RK_REPLAY_LIMIT_MAX, .cursor_len = RK_WIRE_CURSOR_MAX,
                             .flags = RK_WIRE_REPLAY_PACKED,
                             .filter = widest_filter(RK_WIRE_TOPICS_MAX)},
                       out;
    for (size_t i = 0; i < RK_WIRE_CURSOR_MAX; i++)
        in.cursor[i] = (unsigned char)(255 - i);
    unsigned char buf[RK_WIRE_HDR_MAX], small[RK_WIRE_HDR_MAX];
    size_t n = rk_wire_encode(&in, buf, sizeof buf);
    RK_CHECK(n > 0);
    RK_CHECK(rk_wire_decode(buf, n, &out) == 0 && out.cmd == RK_CMD_SNAP);
    RK_CHECK(out.at_seq == UINT64_MAX && out.cursor_len == RK_WIRE_CURSOR_MAX &&
             memcmp(out.cursor, in.cursor, RK_WIRE_CURSOR_MAX) == 0);
    RK_CHECK(same_filter(&out.filter, &in.filter) && out.flags == RK_WIRE_REPLAY_PACKED);
    msgpack_unpacked up;
    RK_CHECK(mp_whole(buf, n, &up));
    const msgpack_object *cur = mp_at(&up.data, 5);
    RK_CHECK(up.data.via.array.size == 8 && cur && cur->type == MSGPACK_OBJECT_BIN &&
             cur->via.bin.size == RK_WIRE_CURSOR_MAX &&
             memcmp(cur->via.bin.ptr, in.cursor, RK_WIRE_CURSOR_MAX) == 0);
    RK_CHECK(mp_is_filter(mp_at(&up.data, 6), &in.filter));
    msgpack_unpacked_destroy(&up);
    for (size_t cap = 0; cap < n; cap++) {
        memset(small, 0x5a, sizeof small);
        RK_CHECK(rk_wire_encode(&in, small, cap) == 0);
        RK_CHECK(small[cap] == 0x5a);
    }
}

/* What the protocol does not admit is refused, never cut to fit: a cut id
 * names another producer or request, a cut topic widens a filter. */
static void test_over_the_limit_refused(void)
{
    unsigned char buf[RK_WIRE_HDR_MAX];
    struct rk_wire_hdr r = {.cmd = RK_CMD_REPLAY, .filter = widest_filter(RK_WIRE_TOPICS_MAX)};
    RK_CHECK(rk_wire_encode(&r, buf, sizeof buf) > 0);
    r.filter.ntopics = RK_WIRE_TOPICS_MAX + 1;
    RK_CHECK(rk_wire_encode(&r, buf, sizeof buf) == 0);
    r.filter.ntopics = RK_WIRE_TOPICS_MAX;
    memset(r.filter.topics[3], 'x', RK_WIRE_TOPIC_MAX); /* no room left for the NUL */
    RK_CHECK(rk_wire_encode(&r, buf, sizeof buf) == 0);
    r.filter = widest_filter(1);
    memset(r.filter.request_id, 'R', sizeof r.filter.request_id);
    RK_CHECK(rk_wire_encode(&r, buf, sizeof buf) == 0);
    r.filter = widest_filter(1);
    memset(r.filter.kpi_id, 'K', sizeof r.filter.kpi_id);
    RK_CHECK(rk_wire_encode(&r, buf, sizeof buf) == 0);
    r.filter = widest_filter(1);
    r.filter.to_ns = -1; /* would go out as a uint64 the decoder refuses */
    RK_CHECK(rk_wire_encode(&r, buf, sizeof buf) == 0);

    struct rk_wire_hdr p = {.cmd = RK_CMD_PUB, .producer_seq = 1};
    memset(p.producer, 'p', sizeof p.producer);
    RK_CHECK(rk_wire_encode(&p, buf, sizeof buf) == 0);
    struct rk_wire_hdr e = {.cmd = RK_CMD_EVT};
    memset(e.publisher, 'k', sizeof e.publisher);
    RK_CHECK(rk_wire_encode(&e, buf, sizeof buf) == 0);
    struct rk_wire_hdr l = {.cmd = RK_CMD_LIVE, .seq = 2};
    memset(l.topic, 't', sizeof l.topic);
    RK_CHECK(rk_wire_encode(&l, buf, sizeof buf) == 0);

    struct rk_wire_record rec = {.seq = 1, .event = "", .publisher = "k\0y", .publisher_len = 3};
    RK_CHECK(rk_wire_record_put(&rec, buf, sizeof buf) == 0);
}

/* pub, evt, live, err and records with their longest strings and bins:
 * each in the smallest MessagePack form that holds it. */
static void test_longest_ids_and_texts(void)
{
    unsigned char buf[RK_WIRE_HDR_MAX];
    struct rk_wire_hdr out;
    msgpack_unpacked up;
    size_t n;

    struct rk_wire_hdr p = {.cmd = RK_CMD_PUB, .corr = UINT64_MAX, .producer_seq = UINT64_MAX,
                            .flags = RK_WIRE_PUB_ACKS};
    fill(p.producer, RK_WIRE_PRODUCER_MAX, 'P');
    n = rk_wire_encode(&p, buf, sizeof buf);
    RK_CHECK(n > 0 && find(buf, n, "\xd9\x40PPP", 5) > 0); /* str 8 of 64 */
    RK_CHECK(rk_wire_decode(buf, n, &out) == 0 && out.producer_seq == UINT64_MAX);
    RK_CHECK_STR(out.producer, p.producer);
    RK_CHECK(mp_whole(buf, n, &up) && up.data.via.array.size == 6);
    RK_CHECK(mp_is_str(mp_at(&up.data, 3), p.producer, RK_WIRE_PRODUCER_MAX));
    RK_CHECK(mp_is_uint(mp_at(&up.data, 4), UINT64_MAX));
    msgpack_unpacked_destroy(&up);

    struct rk_wire_hdr e = {.cmd = RK_CMD_EVT, .corr = UINT64_MAX, .seq = UINT64_MAX,
                            .recv_ns = INT64_MAX};
    fill(e.publisher, RK_WIRE_PUBLISHER_MAX, 'Z');
    n = rk_wire_encode(&e, buf, sizeof buf);
    RK_CHECK(n > 0 && rk_wire_decode(buf, n, &out) == 0 && out.recv_ns == INT64_MAX);
    RK_CHECK_STR(out.publisher, e.publisher);
    RK_CHECK(mp_whole(buf, n, &up) && up.data.via.array.size == 6);
    RK_CHECK(mp_is_str(mp_at(&up.data, 5), e.publisher, RK_WIRE_PUBLISHER_MAX));
    msgpack_unpacked_destroy(&up);

    struct rk_wire_hdr l = {.cmd = RK_CMD_LIVE, .seq = UINT64_MAX, .prev_seq = UINT64_MAX - 1,
                            .recv_ns = INT64_MAX};
    fill(l.topic, RK_WIRE_TOPIC_MAX - 1, 'T');
    n = rk_wire_encode(&l, buf, sizeof buf);
    RK_CHECK(n > 0 && rk_wire_decode(buf, n, &out) == 0 && out.prev_seq == UINT64_MAX - 1);
    RK_CHECK_STR(out.topic, l.topic);
    RK_CHECK(mp_whole(buf, n, &up) && mp_is_str(mp_at(&up.data, 6), l.topic, RK_WIRE_TOPIC_MAX - 1));
    msgpack_unpacked_destroy(&up);

    /* fixstr ends at 31 bytes, str 8 at 255: PROTOCOL.md 3.1's longest message */
    static const size_t lens[] = {0, 31, 32, 255};
    static const unsigned char prefix[][2] = {{0xa0}, {0xbf}, {0xd9, 32}, {0xd9, 255}};
    for (size_t i = 0; i < 4; i++) {
        struct rk_wire_hdr er = {.cmd = RK_CMD_ERR, .corr = UINT64_MAX};
        fill(er.code, sizeof er.code - 1, 'E');
        fill(er.message, lens[i], 'm');
        n = rk_wire_encode(&er, buf, sizeof buf);
        /* 95 01 a3 "err" cf+8 bytes, then the code's fixstr of 31 at 15 */
        RK_CHECK(n > 0 && buf[15] == 0xbf);
        RK_CHECK(n > 0 && memcmp(buf + 16 + 31, prefix[i], lens[i] < 32 ? 1 : 2) == 0);
        RK_CHECK(rk_wire_decode(buf, n, &out) == 0);
        RK_CHECK_STR(out.code, er.code);
        RK_CHECK_STR(out.message, er.message);
        RK_CHECK(mp_whole(buf, n, &up) && mp_is_str(mp_at(&up.data, 3), er.code, 31) &&
                 mp_is_str(mp_at(&up.data, 4), er.message, lens[i]));
        msgpack_unpacked_destroy(&up);
    }

    /* records: the event's bin at every length boundary, the longest key */
    static const size_t sizes[] = {255, 256, 65535, 65536};
    unsigned char *ev = malloc(65536), *rbuf = malloc(65536 + RK_WIRE_RECORD_OVERHEAD);
    RK_CHECK(ev && rbuf);
    for (size_t i = 0; i < 65536; i++)
        ev[i] = (unsigned char)(i * 13);
    char key[RK_WIRE_PUBLISHER_MAX + 1];
    fill(key, RK_WIRE_PUBLISHER_MAX, 'Z');
    for (size_t i = 0; i < 4; i++) {
        struct rk_wire_record rec = {.seq = UINT64_MAX, .recv_ns = INT64_MAX, .event = ev,
                                     .event_len = sizes[i], .publisher = key,
                                     .publisher_len = RK_WIRE_PUBLISHER_MAX};
        n = rk_wire_record_put(&rec, rbuf, 65536 + RK_WIRE_RECORD_OVERHEAD);
        RK_CHECK(n > sizes[i]);
        RK_CHECK(mp_whole(rbuf, n, &up) && up.data.via.array.size == 4);
        const msgpack_object *b = mp_at(&up.data, 2);
        RK_CHECK(b && b->type == MSGPACK_OBJECT_BIN && b->via.bin.size == sizes[i] &&
                 memcmp(b->via.bin.ptr, ev, sizes[i]) == 0);
        RK_CHECK(mp_is_str(mp_at(&up.data, 3), key, RK_WIRE_PUBLISHER_MAX));
        msgpack_unpacked_destroy(&up);
    }
    free(ev);
    free(rbuf);
}

/* "acks" around the pairs array's form changes (16 and 65,536 elements)
 * and at the broker's largest commit (batch_max at most 65,536 in
 * broker/rk_config.c: 131,072 elements). */
static void test_acks_at_every_boundary(void)
{
    static const size_t counts[] = {7, 8, 32767, 32768, 65536};
    static const unsigned char forms[][5] = {{0x9e}, {0xdc, 0x00, 0x10}, {0xdc, 0xff, 0xfe},
                                             {0xdd, 0x00, 0x01, 0x00, 0x00},
                                             {0xdd, 0x00, 0x02, 0x00, 0x00}};
    static const size_t form_len[] = {1, 3, 3, 5, 5};
    for (size_t c = 0; c < 5; c++) {
        size_t np = counts[c], cap = RK_WIRE_ACKS_SIZE(np);
        uint64_t *pairs = malloc(2 * np * sizeof *pairs), corr, seq;
        unsigned char *buf = malloc(cap);
        struct rk_wire_hdr out;
        msgpack_unpacked up;
        RK_CHECK(pairs && buf);
        for (size_t i = 0; i < 2 * np; i++)
            pairs[i] = i % 3 ? UINT64_MAX - i : i;
        size_t n = rk_wire_encode_acks(INT64_MAX, pairs, np, buf, cap);
        /* 95 01 a4 acks 00 cf+8: the pairs start at 17 */
        RK_CHECK(n > 17 && memcmp(buf + 17, forms[c], form_len[c]) == 0);
        RK_CHECK(rk_wire_decode(buf, n, &out) == 0 && out.nacks == np && out.recv_ns == INT64_MAX);
        size_t got = 0;
        while (rk_wire_acks_next(&out, &corr, &seq) == 0 && corr == pairs[2 * got] &&
               seq == pairs[2 * got + 1])
            got++;
        RK_CHECK(got == np);
        RK_CHECK(mp_whole(buf, n, &up));
        const msgpack_object *a = mp_at(&up.data, 4);
        RK_CHECK(a && a->type == MSGPACK_OBJECT_ARRAY && a->via.array.size == 2 * np &&
                 mp_is_uint(mp_at(a, 0), pairs[0]) &&
                 mp_is_uint(mp_at(a, (uint32_t)(2 * np - 1)), pairs[2 * np - 1]));
        msgpack_unpacked_destroy(&up);
        RK_CHECK(rk_wire_encode_acks(INT64_MAX, pairs, np, buf, n - 1) == 0);
        free(pairs);
        free(buf);
    }
}

/* The log identity rides after the last element of tick, end, snapend and
 * reqs (PROTOCOL.md 3.7); a header without it still decodes, with "". */
static void test_log_id(void)
{
    static const char id[] = "9c1e04b2a55f6d7e8f90a1b2c3d4e5f6";
    static const enum rk_wire_cmd cmds[] = {RK_CMD_TICK, RK_CMD_END, RK_CMD_SNAPEND, RK_CMD_REQS};
    unsigned char buf[RK_WIRE_HDR_MAX];
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        struct rk_wire_hdr in = {.cmd = cmds[i], .corr = 3, .seq = 19, .recv_ns = 1,
                                 .prev_seq = 19, .sent = 2, .next_seq = 4, .head_seq = 19}, out;
        memcpy(in.log_id, id, sizeof id);
        size_t n = rk_wire_encode(&in, buf, sizeof buf);
        RK_CHECK(n > 0 && buf[0] == 0x97); /* one element more than before */
        RK_CHECK(rk_wire_decode(buf, n, &out) == 0);
        RK_CHECK_STR(out.log_id, id);
        RK_CHECK(out.cmd == cmds[i] && out.corr == 3);
        in.log_id[0] = '\0';
        n = rk_wire_encode(&in, buf, sizeof buf);
        RK_CHECK(n > 0 && buf[0] == 0x96);
        RK_CHECK(rk_wire_decode(buf, n, &out) == 0 && out.log_id[0] == '\0');
    }
    /* the documented tick, byte for byte */
    static const unsigned char tick[] = {0x97, 0x01, 0xa4, 't', 'i', 'c', 'k', 0x00, 0x13, 0xcf,
                                         0x18, 0x94, 0xf3, 0x3d, 0xc7, 0x2a, 0x8d, 0x15, 0x13,
                                         0xd9, 0x20};
    struct rk_wire_hdr t = {.cmd = RK_CMD_TICK, .seq = 19, .recv_ns = 1771308000123456789,
                            .prev_seq = 19};
    memcpy(t.log_id, id, sizeof id);
    size_t n = rk_wire_encode(&t, buf, sizeof buf);
    RK_CHECK(n == sizeof tick + 32 && memcmp(buf, tick, sizeof tick) == 0 &&
             memcmp(buf + sizeof tick, id, 32) == 0);
    /* longer than 32 bytes, or not a str: malformed, not cut */
    static const unsigned char long_id[] = {0x97, 0x01, 0xa4, 't', 'i', 'c', 'k', 0x00, 0x01,
                                            0x01, 0x00, 0xd9, 33, 'a', 'a', 'a', 'a', 'a', 'a',
                                            'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a',
                                            'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a',
                                            'a', 'a', 'a', 'a', 'a'};
    struct rk_wire_hdr out;
    RK_CHECK(rk_wire_decode(long_id, sizeof long_id, &out) != 0);
    static const unsigned char int_id[] = {0x97, 0x01, 0xa4, 't', 'i', 'c', 'k', 0x00, 0x01,
                                           0x01, 0x00, 0x05};
    RK_CHECK(rk_wire_decode(int_id, sizeof int_id, &out) != 0);
    /* later elements still ignored */
    static const unsigned char more[] = {0x98, 0x01, 0xa4, 't', 'i', 'c', 'k', 0x00, 0x01,
                                         0x01, 0x00, 0xa2, 'a', 'b', 0xc0};
    RK_CHECK(rk_wire_decode(more, sizeof more, &out) == 0);
    RK_CHECK_STR(out.log_id, "ab");
}

/* state's at_seq follows the filter, which then goes out even when empty. */
static void test_state_at_seq(void)
{
    unsigned char buf[RK_WIRE_HDR_MAX];
    struct rk_wire_hdr in = {.cmd = RK_CMD_STATE, .corr = 5, .limit = 10, .at_seq = 77}, out;
    size_t n = rk_wire_encode(&in, buf, sizeof buf);
    RK_CHECK(n > 0 && buf[0] == 0x97);
    RK_CHECK(rk_wire_decode(buf, n, &out) == 0 && out.at_seq == 77 &&
             !rk_wire_filter_active(&out.filter));
    in.at_seq = 0;
    n = rk_wire_encode(&in, buf, sizeof buf);
    RK_CHECK(n > 0 && buf[0] == 0x95);
    RK_CHECK(rk_wire_decode(buf, n, &out) == 0 && out.at_seq == 0);
    snprintf(in.filter.requester, sizeof in.filter.requester, "30");
    in.at_seq = 9;
    n = rk_wire_encode(&in, buf, sizeof buf);
    RK_CHECK(rk_wire_decode(buf, n, &out) == 0 && out.at_seq == 9);
    RK_CHECK_STR(out.filter.requester, "30");
}

int main(void)
{
    RK_RUN(test_log_id);
    RK_RUN(test_state_at_seq);
    RK_RUN(test_subscription_keys);
    RK_RUN(test_roundtrip_every_command);
    RK_RUN(test_documented_bytes);
    RK_RUN(test_every_truncation_refused);
    RK_RUN(test_bad_headers_refused);
    RK_RUN(test_lenient_where_documented);
    RK_RUN(test_long_error_text_clipped_on_utf8_boundary);
    RK_RUN(test_idempotent_pub);
    RK_RUN(test_filter_values_checked);
    RK_RUN(test_refusal_names_the_field);
    RK_RUN(test_huge_limit_read_as_largest);
    RK_RUN(test_order_and_ping);
    RK_RUN(test_pub_flags);
    RK_RUN(test_acks);
    RK_RUN(test_packed_replay);
    RK_RUN(test_records);
    RK_RUN(test_filter_of_16_longest_topics);
    RK_RUN(test_gap_fill_keeps_16_topics);
    RK_RUN(test_snap_at_every_maximum);
    RK_RUN(test_over_the_limit_refused);
    RK_RUN(test_longest_ids_and_texts);
    RK_RUN(test_acks_at_every_boundary);
    return rk_test_result();
}
