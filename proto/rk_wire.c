#include "rk_wire.h"
#include "rk_err.h"
#include "rk_mp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const cmd_names[] = {
    [RK_CMD_PUB] = "pub", [RK_CMD_ACK] = "ack", [RK_CMD_ERR] = "err",
    [RK_CMD_REPLAY] = "replay", [RK_CMD_EVT] = "evt", [RK_CMD_END] = "end",
    [RK_CMD_LIVE] = "live", [RK_CMD_SNAP] = "snap", [RK_CMD_SNAPEND] = "snapend",
    [RK_CMD_TICK] = "tick", [RK_CMD_ACKS] = "acks", [RK_CMD_EVTS] = "evts",
    [RK_CMD_STATE] = "state", [RK_CMD_REQS] = "reqs", [RK_CMD_PING] = "ping",
    [RK_CMD_PONG] = "pong", [RK_CMD_PUBS] = "pubs", [RK_CMD_OUTCOMES] = "outcomes",
};
#define NCMDS (sizeof cmd_names / sizeof cmd_names[0])

/* Number of array elements each command has, version and command included. */
static const unsigned cmd_arity[] = {
    [RK_CMD_PUB] = 3, [RK_CMD_ACK] = 5, [RK_CMD_ERR] = 5, [RK_CMD_REPLAY] = 6,
    [RK_CMD_EVT] = 5, [RK_CMD_END] = 5, [RK_CMD_LIVE] = 7, [RK_CMD_SNAP] = 6,
    [RK_CMD_SNAPEND] = 6, [RK_CMD_TICK] = 6, [RK_CMD_ACKS] = 5, [RK_CMD_EVTS] = 4,
    [RK_CMD_STATE] = 5, [RK_CMD_REQS] = 6, [RK_CMD_PING] = 3, [RK_CMD_PONG] = 3,
    [RK_CMD_PUBS] = 4, [RK_CMD_OUTCOMES] = 5,
};

/* Elements the encoder writes beyond cmd_arity: end's optional `sent`. */
static const unsigned cmd_extra[NCMDS] = {
    [RK_CMD_END] = 1,
};

const char *rk_wire_cmd_name(enum rk_wire_cmd cmd)
{
    if ((unsigned)cmd == RK_CMD_NONE || (unsigned)cmd >= NCMDS)
        return NULL;
    return cmd_names[cmd];
}

/* ---- writing
 *
 * One writer per MessagePack shape, each choosing the smallest format that
 * holds its length or value. A writer that cannot go on stops for good and
 * keeps the first reason, so an encoder writes straight through and looks
 * once at the end: a caller gets a whole header or none. */

struct writer {
    unsigned char *p;
    size_t len, cap;
    int err; /* RK_OK, ENOSPC (cap reached), EMSGSIZE (a length MessagePack
              * cannot carry) or EINVAL (a field over its protocol limit) */
};

static void fail(struct writer *w, int err)
{
    if (w->err == RK_OK)
        w->err = err;
}

static void put(struct writer *w, const void *src, size_t n)
{
    if (w->err != RK_OK)
        return;
    if (w->cap - w->len < n) {
        fail(w, ENOSPC);
        return;
    }
    if (n) /* an empty cursor or event may come as NULL */
        memcpy(w->p + w->len, src, n);
    w->len += n;
}

static void put_byte(struct writer *w, unsigned b)
{
    unsigned char c = (unsigned char)b;
    put(w, &c, 1);
}

/* A type byte, then `v` in `width` bytes, big-endian as MessagePack wants. */
static void put_be(struct writer *w, unsigned type, uint64_t v, int width)
{
    unsigned char b[9] = {(unsigned char)type};
    for (int i = 0; i < width; i++)
        b[1 + i] = (unsigned char)(v >> (8 * (width - 1 - i)));
    put(w, b, (size_t)width + 1);
}

/* The length prefix every sized shape shares: the fix form (`fix` ORed with
 * lengths below `fix_end`; fix_end 0 when the shape has none), then the
 * 8-bit form (`c8`, 0 when it has none), 16-bit and 32-bit forms. */
static void put_len(struct writer *w, size_t n, unsigned fix, size_t fix_end, unsigned c8,
                    unsigned c16, unsigned c32)
{
    if (n < fix_end)
        put_byte(w, fix | (unsigned)n);
    else if (c8 && n <= 0xff)
        put_be(w, c8, n, 1);
    else if (n <= 0xffff)
        put_be(w, c16, n, 2);
    else if ((uint64_t)n <= UINT32_MAX)
        put_be(w, c32, n, 4);
    else
        fail(w, EMSGSIZE);
}

static void put_array(struct writer *w, size_t n)
{
    put_len(w, n, 0x90, 16, 0, 0xdc, 0xdd);
}

/* `n` is the number of key-value pairs. */
static void put_map(struct writer *w, size_t n)
{
    put_len(w, n, 0x80, 16, 0, 0xde, 0xdf);
}

static void put_str(struct writer *w, const char *s, size_t n)
{
    put_len(w, n, 0xa0, 32, 0xd9, 0xda, 0xdb);
    put(w, s, n);
}

static void put_bin(struct writer *w, const void *p, size_t n)
{
    put_len(w, n, 0, 0, 0xc4, 0xc5, 0xc6);
    put(w, p, n);
}

static void put_uint(struct writer *w, uint64_t v)
{
    if (v < 128)
        put_byte(w, (unsigned)v);
    else if (v <= 0xff)
        put_be(w, 0xcc, v, 1);
    else if (v <= 0xffff)
        put_be(w, 0xcd, v, 2);
    else if (v <= UINT32_MAX)
        put_be(w, 0xce, v, 4);
    else
        put_be(w, 0xcf, v, 8);
}

/* Receive times are never negative on the wire; a clock before 1970 reads 0. */
static void put_ns(struct writer *w, int64_t ns)
{
    put_uint(w, ns < 0 ? 0 : (uint64_t)ns);
}

/* A literal: a command name or a filter key. */
static void put_lit(struct writer *w, const char *s)
{
    put_str(w, s, strlen(s));
}

/* An identifier held in a char array of `size` bytes, which must also hold
 * its NUL. One that fills the array is refused, not cut: a producer, topic
 * or id cut short names another one (two producers would merge, a filter
 * would widen). */
static void put_id(struct writer *w, const char *s, size_t size)
{
    size_t n = strnlen(s, size);
    if (n == size)
        fail(w, EINVAL);
    else
        put_str(w, s, n);
}

/* Cut at `max` bytes without splitting a UTF-8 sequence. */
static size_t utf8_clip(const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    if (n == max)
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
    return n;
}

/* Text for people (an error's code and message) in a char array of `size`
 * bytes: cut to fit rather than refused, since a reply that says something
 * beats none. */
static void put_text(struct writer *w, const char *s, size_t size)
{
    put_str(w, s, utf8_clip(s, size - 1));
}

int rk_wire_filter_active(const struct rk_wire_filter *f)
{
    return f->from_ns || f->to_ns || f->ntopics || f->request_id[0] || f->kpi_id[0] ||
           f->requester[0];
}

/* The filter map holds only the keys that are set. A negative time bound
 * is refused: the decoder takes only uints, and 0 would mean no bound. */
static void put_filter(struct writer *w, const struct rk_wire_filter *f)
{
    if (f->ntopics > RK_WIRE_TOPICS_MAX || f->from_ns < 0 || f->to_ns < 0) {
        fail(w, EINVAL);
        return;
    }
    put_map(w, (size_t)(f->from_ns != 0) + (f->to_ns != 0) + (f->ntopics != 0) +
                   (f->request_id[0] != 0) + (f->kpi_id[0] != 0) + (f->requester[0] != 0));
    if (f->from_ns) {
        put_lit(w, "from_time");
        put_uint(w, (uint64_t)f->from_ns);
    }
    if (f->to_ns) {
        put_lit(w, "to_time");
        put_uint(w, (uint64_t)f->to_ns);
    }
    if (f->ntopics) {
        put_lit(w, "topics");
        put_array(w, f->ntopics);
        for (unsigned i = 0; i < f->ntopics; i++)
            put_id(w, f->topics[i], sizeof f->topics[i]);
    }
    if (f->request_id[0]) {
        put_lit(w, "request_id");
        put_id(w, f->request_id, sizeof f->request_id);
    }
    if (f->kpi_id[0]) {
        put_lit(w, "kpi_id");
        put_id(w, f->kpi_id, sizeof f->kpi_id);
    }
    if (f->requester[0]) {
        put_lit(w, "requester");
        put_id(w, f->requester, sizeof f->requester);
    }
}

/* What follows `limit` in a replay or snap: the filter, then the flags. */
static void put_read_tail(struct writer *w, const struct rk_wire_hdr *h, int filtered,
                          int flagged)
{
    if (filtered)
        put_filter(w, &h->filter);
    if (flagged)
        put_uint(w, h->flags);
}

size_t rk_wire_encode(const struct rk_wire_hdr *h, void *buf, size_t cap)
{
    const char *name = rk_wire_cmd_name(h->cmd);
    if (!name || h->cmd == RK_CMD_ACKS || h->cmd == RK_CMD_OUTCOMES)
        return 0; /* their own encoders write those */
    struct writer w = {buf, 0, cap, RK_OK};
    int idempotent = (h->cmd == RK_CMD_PUB || h->cmd == RK_CMD_PUBS) && h->producer[0];
    int reads = h->cmd == RK_CMD_REPLAY || h->cmd == RK_CMD_SNAP;
    int flagged = (h->cmd == RK_CMD_PUB || reads) && h->flags;
    int signed_evt = h->cmd == RK_CMD_EVT && h->publisher[0];
    int ordered_err = h->cmd == RK_CMD_ERR && h->expected;
    int with_id = (h->cmd == RK_CMD_TICK || h->cmd == RK_CMD_END || h->cmd == RK_CMD_SNAPEND ||
                   h->cmd == RK_CMD_REQS) && h->log_id[0];
    /* a read's flags come after its filter, so they bring one, if empty */
    int state_at = h->cmd == RK_CMD_STATE && h->at_seq;
    int filtered = (reads && (rk_wire_filter_active(&h->filter) || flagged)) ||
                   (h->cmd == RK_CMD_STATE && (rk_wire_filter_active(&h->filter) || state_at));
    if (h->cursor_len > RK_WIRE_CURSOR_MAX)
        return 0;
    put_array(&w, (size_t)cmd_arity[h->cmd] + cmd_extra[h->cmd] + (idempotent ? 2u : 0u) +
                      (flagged ? 1u : 0u) + (filtered ? 1u : 0u) + (signed_evt ? 1u : 0u) +
                      (ordered_err ? 1u : 0u) + (with_id ? 1u : 0u) + (state_at ? 1u : 0u));
    put_uint(&w, RK_WIRE_VERSION);
    put_lit(&w, name);
    put_uint(&w, h->corr);
    switch (h->cmd) {
    case RK_CMD_ACK:
    case RK_CMD_EVT:
        put_uint(&w, h->seq);
        put_ns(&w, h->recv_ns);
        if (signed_evt)
            put_id(&w, h->publisher, sizeof h->publisher);
        break;
    case RK_CMD_LIVE:
    case RK_CMD_TICK:
        put_uint(&w, h->seq);
        put_ns(&w, h->recv_ns);
        put_uint(&w, h->prev_seq);
        if (h->cmd == RK_CMD_LIVE)
            put_id(&w, h->topic, sizeof h->topic);
        break;
    case RK_CMD_ERR:
        put_text(&w, h->code, sizeof h->code);
        put_text(&w, h->message, sizeof h->message);
        if (ordered_err)
            put_uint(&w, h->expected);
        break;
    case RK_CMD_REPLAY:
        put_uint(&w, h->from_seq);
        put_uint(&w, h->to_seq);
        put_uint(&w, h->limit);
        put_read_tail(&w, h, filtered, flagged);
        break;
    case RK_CMD_EVTS:
        put_uint(&w, h->nrecords);
        break;
    case RK_CMD_END:
        put_uint(&w, h->next_seq);
        put_uint(&w, h->head_seq);
        put_uint(&w, h->sent);
        break;
    case RK_CMD_SNAP:
        put_uint(&w, h->at_seq);
        put_uint(&w, h->limit);
        put_bin(&w, h->cursor, h->cursor_len);
        put_read_tail(&w, h, filtered, flagged);
        break;
    case RK_CMD_SNAPEND:
        put_uint(&w, h->at_seq);
        put_bin(&w, h->cursor, h->cursor_len);
        put_uint(&w, h->sent);
        break;
    case RK_CMD_STATE:
        put_uint(&w, h->limit);
        put_bin(&w, h->cursor, h->cursor_len);
        if (filtered)
            put_filter(&w, &h->filter);
        if (state_at)
            put_uint(&w, h->at_seq);
        break;
    case RK_CMD_REQS:
        put_uint(&w, h->seq);
        put_bin(&w, h->cursor, h->cursor_len);
        put_uint(&w, h->nrecords);
        break;
    case RK_CMD_PUBS:
        if (h->nrecords == 0 || h->nrecords > RK_WIRE_PUBS_MAX)
            return 0;
        put_uint(&w, h->nrecords); /* then the numbers as a pub's */
        /* fall through */
    case RK_CMD_PUB:
        if (idempotent) {
            put_id(&w, h->producer, sizeof h->producer);
            put_uint(&w, h->producer_seq);
        }
        if (flagged)
            put_uint(&w, h->flags);
        break;
    default:
        break;
    }
    if (with_id)
        put_id(&w, h->log_id, sizeof h->log_id);
    return w.err == RK_OK ? w.len : 0;
}

size_t rk_wire_encode_acks(int64_t recv_ns, const uint64_t *corr_seq, size_t n, void *buf,
                           size_t cap)
{
    struct writer w = {buf, 0, cap, RK_OK};
    if (n == 0 || n > UINT32_MAX / 2) /* 2n elements must fit an array 32 */
        return 0;
    put_array(&w, cmd_arity[RK_CMD_ACKS]);
    put_uint(&w, RK_WIRE_VERSION);
    put_lit(&w, "acks");
    put_uint(&w, 0);
    put_ns(&w, recv_ns);
    put_array(&w, 2 * n);
    for (size_t i = 0; i < 2 * n && w.err == RK_OK; i++)
        put_uint(&w, corr_seq[i]);
    return w.err == RK_OK ? w.len : 0;
}

static int runs_in_order(const struct rk_wire_run *runs, size_t n)
{
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (runs[i].first != at || runs[i].n == 0 || runs[i].kind < RK_RUN_STORED ||
            runs[i].kind > RK_RUN_REFUSED)
            return 0;
        at += runs[i].n;
    }
    return n > 0 && at <= RK_WIRE_PUBS_MAX;
}

size_t rk_wire_encode_outcomes(uint64_t corr, int64_t recv_ns, const struct rk_wire_run *runs,
                               size_t n, void *buf, size_t cap)
{
    struct writer w = {buf, 0, cap, RK_OK};
    if (!runs_in_order(runs, n))
        return 0;
    put_array(&w, cmd_arity[RK_CMD_OUTCOMES]);
    put_uint(&w, RK_WIRE_VERSION);
    put_lit(&w, "outcomes");
    put_uint(&w, corr);
    put_ns(&w, recv_ns);
    put_array(&w, n);
    for (size_t i = 0; i < n && w.err == RK_OK; i++) {
        const struct rk_wire_run *r = &runs[i];
        int ordered = r->kind == RK_RUN_REFUSED && r->expected;
        put_array(&w, r->kind == RK_RUN_STORED ? 3 : ordered ? 5 : 4);
        put_uint(&w, r->first);
        put_uint(&w, r->n);
        if (r->kind == RK_RUN_REFUSED) {
            put_text(&w, r->code, sizeof r->code);
            put_text(&w, r->message, sizeof r->message);
            if (ordered)
                put_uint(&w, r->expected);
        } else {
            put_uint(&w, r->seq);
            if (r->kind == RK_RUN_RETRY)
                put_ns(&w, r->recv_ns);
        }
    }
    return w.err == RK_OK ? w.len : 0;
}

/* ---- reading: bytes from the network, every length checked (rk_mp) */

/* The next value, which must be of `kind`. */
static int get_kind(struct rk_mp_reader *r, enum rk_mp_kind kind, struct rk_mp_val *v)
{
    return rk_mp_next(r, v) == 0 && v->kind == kind ? 0 : -1;
}

/* Any integer encoding of a non-negative value. */
static int get_uint(struct rk_mp_reader *r, uint64_t *out)
{
    struct rk_mp_val v;
    if (get_kind(r, RK_MP_UINT, &v))
        return -1;
    *out = v.v.u;
    return 0;
}

/* Points *s at the string's bytes inside the buffer. */
static int get_str(struct rk_mp_reader *r, const char **s, size_t *n)
{
    struct rk_mp_val v;
    if (get_kind(r, RK_MP_STR, &v))
        return -1;
    *s = (const char *)v.p;
    *n = v.n;
    return 0;
}

/* A bin's bytes, pointed at inside the buffer. */
static int get_bin_ref(struct rk_mp_reader *r, const void **p, size_t *n)
{
    struct rk_mp_val v;
    if (get_kind(r, RK_MP_BIN, &v))
        return -1;
    *p = v.p;
    *n = v.n;
    return 0;
}

/* An array's or map's element count (pairs for a map). */
static int get_count(struct rk_mp_reader *r, enum rk_mp_kind kind, uint64_t *n)
{
    struct rk_mp_val v;
    if (get_kind(r, kind, &v))
        return -1;
    *n = v.n;
    return 0;
}

/* A bin of at most `cap` bytes, copied out. */
static int get_bin(struct rk_mp_reader *r, unsigned char *out, size_t cap, size_t *n)
{
    const void *p;
    size_t len;
    if (get_bin_ref(r, &p, &len) || len > cap)
        return -1;
    memcpy(out, p, len);
    *n = len;
    return 0;
}

/* A string copied out NUL-terminated; with `exact`, one that does not fit
 * is an error rather than cut. */
static int get_text(struct rk_mp_reader *r, char *out, size_t cap, int exact)
{
    const char *s;
    size_t n;
    if (get_str(r, &s, &n))
        return -1;
    if (n >= cap && exact)
        return -1;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, s, n);
    out[n] = '\0';
    return memchr(out, '\0', n) ? -1 : 0;
}

static int key_is(const char *k, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(k, lit, n) == 0;
}

/* Every byte of `s` in `allowed` (a ctype-free test: the wire's rules). */
static int all_of(const char *s, int (*allowed)(unsigned char))
{
    for (; *s; s++)
        if (!allowed((unsigned char)*s))
            return 0;
    return 1;
}

static int topic_byte(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '|'; /* printable ASCII, no space or | */
}

static int id_byte(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == ':' || c == '-';
}

static int digit_byte(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* No topic at all is no filter, and an empty prefix would select
 * everything: both are refused, never read as "everything". */
static int get_topics(struct rk_mp_reader *r, struct rk_wire_filter *f)
{
    uint64_t n;
    if (get_count(r, RK_MP_ARRAY, &n) || n == 0 || n > RK_WIRE_TOPICS_MAX)
        return -1;
    f->ntopics = (unsigned)n;
    for (unsigned i = 0; i < f->ntopics; i++)
        if (get_text(r, f->topics[i], RK_WIRE_TOPIC_MAX, 1) || !f->topics[i][0] ||
            !all_of(f->topics[i], topic_byte))
            return -1;
    return 0;
}

/* A uint time; one past INT64_MAX is as far as a time goes. */
static int get_time(struct rk_mp_reader *r, int64_t *out)
{
    uint64_t v;
    if (get_uint(r, &v))
        return -1;
    *out = v > INT64_MAX ? INT64_MAX : (int64_t)v;
    return 0;
}

static const char *const filter_keys[] = {"from_time", "to_time", "topics", "request_id",
                                           "kpi_id", "requester"};

/* The filter key `k`'s place in filter_keys, or -1. */
static int filter_key(const char *k, size_t klen)
{
    for (int i = 0; i < (int)(sizeof filter_keys / sizeof *filter_keys); i++)
        if (key_is(k, klen, filter_keys[i]))
            return i;
    return -1;
}

/* One filter value, by its key's place in filter_keys. An id must be an
 * id ("" is none: ignoring it would return everything); a requester is a
 * prefecture or municipality code. */
static int get_filter_value(struct rk_mp_reader *r, struct rk_wire_filter *f, int key)
{
    char *id;
    switch (key) {
    case 0:
        return get_time(r, &f->from_ns);
    case 1:
        return get_time(r, &f->to_ns);
    case 2:
        return get_topics(r, f);
    case 3:
    case 4:
        id = key == 4 ? f->kpi_id : f->request_id;
        return get_text(r, id, RK_WIRE_ID_MAX + 1, 1) || !id[0] || !all_of(id, id_byte) ? -1 : 0;
    default:
        return get_text(r, f->requester, sizeof f->requester, 1) || !f->requester[0] ||
                       !all_of(f->requester, digit_byte) ? -1 : 0;
    }
}

/* Unknown filter keys are refused: ignoring one would widen the selection
 * without the client knowing; so is a key given twice. */
static const char *const filter_fields[] = {"filter.from_time", "filter.to_time",
                                             "filter.topics", "filter.request_id",
                                             "filter.kpi_id", "filter.requester"};

/* *field names what a refusal is about: "filter" for the map or a key
 * unknown or given twice, "filter.<key>" for a value. */
static int get_filter(struct rk_mp_reader *r, struct rk_wire_filter *f, const char **field)
{
    uint64_t n;
    unsigned seen = 0;
    *field = "filter";
    if (get_count(r, RK_MP_MAP, &n) || n > 6)
        return -1;
    for (uint64_t i = 0; i < n; i++) {
        const char *k;
        size_t klen;
        int key;
        *field = "filter";
        if (get_str(r, &k, &klen) || (key = filter_key(k, klen)) < 0 || (seen & (1u << key)))
            return -1;
        *field = filter_fields[key];
        if (get_filter_value(r, f, key))
            return -1;
        seen |= 1u << key;
    }
    return 0;
}

static enum rk_wire_cmd parse_cmd(const char *s, size_t n)
{
    for (unsigned i = 1; i < NCMDS; i++)
        if (strlen(cmd_names[i]) == n && memcmp(cmd_names[i], s, n) == 0)
            return (enum rk_wire_cmd)i;
    return RK_CMD_NONE;
}

/* Checks every pair now, so that rk_wire_acks_next cannot fail later. */
static int decode_acks(struct rk_mp_reader *r, struct rk_wire_hdr *h)
{
    uint64_t ns, count, v;
    if (get_uint(r, &ns) || ns > INT64_MAX || get_count(r, RK_MP_ARRAY, &count) || count % 2 ||
        count == 0)
        return -1;
    h->recv_ns = (int64_t)ns;
    h->acks = r->p + r->off;
    for (uint64_t i = 0; i < count; i++)
        if (get_uint(r, &v))
            return -1;
    h->nacks = (size_t)(count / 2);
    return 0;
}

int rk_wire_acks_next(struct rk_wire_hdr *h, uint64_t *corr, uint64_t *seq)
{
    if (h->cmd != RK_CMD_ACKS || h->nacks == 0)
        return -1;
    /* decode_acks checked these bytes; SIZE_MAX lets the reader run on them */
    struct rk_mp_reader r = {h->acks, SIZE_MAX, 0};
    get_uint(&r, corr);
    get_uint(&r, seq);
    h->acks += r.off;
    h->nacks--;
    return 0;
}

/* One run of an "outcomes": [first, n, seq], [first, n, seq, recv_ns],
 * [first, n, code, message] or [first, n, "E_ORDER", message, expected]. */
static int get_run(struct rk_mp_reader *r, struct rk_wire_run *run)
{
    uint64_t len, first, n, v;
    struct rk_mp_val third;
    if (get_count(r, RK_MP_ARRAY, &len) || len < 3 || get_uint(r, &first) || get_uint(r, &n) ||
        first >= RK_WIRE_PUBS_MAX || n == 0 || n > RK_WIRE_PUBS_MAX - first)
        return -1;
    memset(run, 0, sizeof *run);
    run->first = (uint32_t)first;
    run->n = (uint32_t)n;
    struct rk_mp_reader peek = *r;
    if (rk_mp_next(&peek, &third))
        return -1;
    if (third.kind == RK_MP_UINT) {
        run->kind = len >= 4 ? RK_RUN_RETRY : RK_RUN_STORED;
        if (get_uint(r, &run->seq) || (len >= 4 && (get_uint(r, &v) || v > INT64_MAX)))
            return -1;
        run->recv_ns = len >= 4 ? (int64_t)v : 0;
        len -= len >= 4 ? 4 : 3;
    } else {
        run->kind = RK_RUN_REFUSED;
        if (len < 4 || get_text(r, run->code, sizeof run->code, 0) ||
            get_text(r, run->message, sizeof run->message, 0) ||
            (len >= 5 && get_uint(r, &run->expected)))
            return -1;
        len -= len >= 5 ? 5 : 4;
    }
    for (; len; len--) /* later revisions' elements */
        if (rk_mp_skip(r))
            return -1;
    return 0;
}

static int decode_outcomes(struct rk_mp_reader *r, struct rk_wire_hdr *h)
{
    uint64_t ns, count, at = 0;
    struct rk_wire_run run;
    if (get_uint(r, &ns) || ns > INT64_MAX || get_count(r, RK_MP_ARRAY, &count) || count == 0 ||
        count > RK_WIRE_PUBS_MAX)
        return -1;
    h->recv_ns = (int64_t)ns;
    h->runs = r->p + r->off;
    for (uint64_t i = 0; i < count; i++) {
        if (get_run(r, &run) || run.first != at)
            return -1;
        at += run.n;
    }
    h->nruns = (size_t)count;
    h->nrecords = at;
    return 0;
}

int rk_wire_outcomes_next(struct rk_wire_hdr *h, struct rk_wire_run *run)
{
    if (h->cmd != RK_CMD_OUTCOMES || h->nruns == 0)
        return -1;
    /* decode_outcomes checked these bytes; SIZE_MAX lets the reader run on them */
    struct rk_mp_reader r = {h->runs, SIZE_MAX, 0};
    get_run(&r, run);
    h->runs += r.off;
    h->nruns--;
    return 0;
}

/* The optional filter and flags that end a replay or snap of `n` elements. */
static int get_read_tail(struct rk_mp_reader *r, struct rk_wire_hdr *h, uint64_t n)
{
    if (n >= 7 && get_filter(r, &h->filter, &h->field))
        return -1;
    h->field = "flags";
    return n >= 8 ? get_uint(r, &h->flags) : 0;
}

/* Any uint is a valid limit (PROTOCOL.md 3.4); one too large for the field
 * becomes the largest it holds: the broker reads every limit over 1000 as
 * 1000 anyway. */
static uint32_t limit_of(uint64_t v)
{
    return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

/* The optional log identity, element `at` of `n`: a str of 1..32 bytes. */
static int get_log_id(struct rk_mp_reader *r, struct rk_wire_hdr *h, uint64_t n, uint64_t at)
{
    if (n < at)
        return 0;
    return get_text(r, h->log_id, sizeof h->log_id, 1);
}

static int decode_body(struct rk_mp_reader *r, struct rk_wire_hdr *h, uint64_t n)
{
    uint64_t a, b, c;
    switch (h->cmd) {
    case RK_CMD_OUTCOMES:
        return decode_outcomes(r, h);
    case RK_CMD_PUBS:
        h->field = "count";
        if (get_uint(r, &h->nrecords) || h->nrecords == 0 || h->nrecords > RK_WIRE_PUBS_MAX)
            return -1;
        n--; /* the rest as a pub's */
        /* fall through */
    case RK_CMD_PUB:
        if (n == 3)
            return 0;
        h->field = n == 4 ? "flags" : "producer";
        if (n == 4) /* flags alone; a producer without its number is malformed */
            return get_uint(r, &h->flags);
        /* both idempotence fields or neither; an empty id is no id */
        if (get_text(r, h->producer, sizeof h->producer, 1) || !h->producer[0])
            return -1;
        h->field = "number";
        if (get_uint(r, &h->producer_seq) || h->producer_seq == 0)
            return -1;
        h->field = "flags";
        return n >= 6 ? get_uint(r, &h->flags) : 0;
    case RK_CMD_ACKS:
        return decode_acks(r, h);
    case RK_CMD_ACK:
    case RK_CMD_EVT:
    case RK_CMD_LIVE:
    case RK_CMD_TICK:
        if (get_uint(r, &a) || get_uint(r, &b) || b > INT64_MAX)
            return -1;
        h->seq = a;
        h->recv_ns = (int64_t)b;
        if (h->cmd == RK_CMD_EVT && n >= 6)
            return get_text(r, h->publisher, sizeof h->publisher, 1);
        if (h->cmd == RK_CMD_ACK || h->cmd == RK_CMD_EVT)
            return 0;
        if (get_uint(r, &h->prev_seq) || h->prev_seq >= h->seq + (h->cmd == RK_CMD_TICK))
            return -1;
        if (h->cmd == RK_CMD_TICK)
            return get_log_id(r, h, n, 7);
        return get_text(r, h->topic, sizeof h->topic, 0);
    case RK_CMD_ERR:
        if (get_text(r, h->code, sizeof h->code, 0) ||
            get_text(r, h->message, sizeof h->message, 0))
            return -1;
        return n >= 6 ? get_uint(r, &h->expected) : 0;
    case RK_CMD_REPLAY:
        h->field = "from_seq";
        if (get_uint(r, &a))
            return -1;
        h->field = "to_seq";
        if (get_uint(r, &b))
            return -1;
        h->field = "limit";
        if (get_uint(r, &c))
            return -1;
        h->from_seq = a;
        h->to_seq = b;
        h->limit = limit_of(c);
        return get_read_tail(r, h, n);
    case RK_CMD_EVTS:
        return get_uint(r, &h->nrecords);
    case RK_CMD_SNAP:
        h->field = "at_seq";
        if (get_uint(r, &a))
            return -1;
        h->field = "limit";
        if (get_uint(r, &c))
            return -1;
        h->field = "cursor";
        if (get_bin(r, h->cursor, sizeof h->cursor, &h->cursor_len))
            return -1;
        h->at_seq = a;
        h->limit = limit_of(c);
        return get_read_tail(r, h, n);
    case RK_CMD_SNAPEND:
        if (get_uint(r, &h->at_seq) || get_bin(r, h->cursor, sizeof h->cursor, &h->cursor_len))
            return -1;
        h->has_sent = 1;
        return get_uint(r, &h->sent) ? -1 : get_log_id(r, h, n, 7);
    case RK_CMD_STATE:
        h->field = "limit";
        if (get_uint(r, &c))
            return -1;
        h->field = "cursor";
        if (get_bin(r, h->cursor, sizeof h->cursor, &h->cursor_len))
            return -1;
        h->limit = limit_of(c);
        if (n >= 6 && get_filter(r, &h->filter, &h->field))
            return -1;
        h->field = "at_seq";
        return n >= 7 ? get_uint(r, &h->at_seq) : 0;
    case RK_CMD_REQS:
        if (get_uint(r, &h->seq) || get_bin(r, h->cursor, sizeof h->cursor, &h->cursor_len))
            return -1;
        return get_uint(r, &h->nrecords) ? -1 : get_log_id(r, h, n, 7);
    case RK_CMD_END:
        if (get_uint(r, &a) || get_uint(r, &b))
            return -1;
        h->next_seq = a;
        h->head_seq = b;
        h->has_sent = n >= 6;
        if (n >= 6 && get_uint(r, &h->sent))
            return -1;
        return get_log_id(r, h, n, 7);
    default:
        return 0;
    }
}

int rk_wire_decode(const void *buf, size_t len, struct rk_wire_hdr *h)
{
    struct rk_mp_reader r = {buf, len, 0};
    uint64_t n, version;
    const char *name;
    size_t name_len;

    memset(h, 0, sizeof *h);
    h->field = "header";
    if (get_count(&r, RK_MP_ARRAY, &n) || n < 3)
        return -1;
    h->field = "version";
    if (get_uint(&r, &version) || version != RK_WIRE_VERSION)
        return -1;
    h->field = "command";
    if (get_str(&r, &name, &name_len))
        return -1;
    h->cmd = parse_cmd(name, name_len);
    h->field = "corr";
    if (h->cmd == RK_CMD_NONE) { /* well formed, but a command we do not know */
        if (get_uint(&r, &h->corr))
            return -1;
        h->field = NULL;
        return 0;
    }
    if (get_uint(&r, &h->corr))
        return -1;
    h->field = "header"; /* too few elements for the command */
    if (n < cmd_arity[h->cmd] || decode_body(&r, h, n)) {
        h->cmd = RK_CMD_NONE;
        return -1;
    }
    h->field = NULL;
    return 0;
}

void rk_wire_refusal_text(const struct rk_wire_hdr *h, char *buf, size_t len)
{
    const char *f = h->field ? h->field : "header";
    if (strcmp(f, "header") == 0)
        snprintf(buf, len, "header: not a renkei version-1 header (a MessagePack array: 1, the "
                 "command, corr, then the command's elements, PROTOCOL.md 3.1)");
    else if (strncmp(f, "filter", 6) == 0)
        snprintf(buf, len, "%s: not a valid filter value, or a key unknown or given twice "
                 "(PROTOCOL.md 3.4)", f);
    else
        snprintf(buf, len, "header.%s: missing, of the wrong type or out of range for this "
                 "command (PROTOCOL.md 3.1)", f);
}

/* ---- the records frame of "evts" */

size_t rk_wire_record_put(const struct rk_wire_record *rec, void *buf, size_t cap)
{
    struct writer w = {buf, 0, cap, RK_OK};
    size_t plen = rec->publisher ? rec->publisher_len : 0;
    /* a NUL would cut the key short for the reader, as in an "evt" header */
    if (plen > RK_WIRE_PUBLISHER_MAX || (plen && memchr(rec->publisher, '\0', plen)) ||
        rec->event_len > SIZE_MAX - RK_WIRE_RECORD_OVERHEAD ||
        cap < rec->event_len + RK_WIRE_RECORD_OVERHEAD)
        return 0;
    put_array(&w, plen ? 4 : 3);
    put_uint(&w, rec->seq);
    put_ns(&w, rec->recv_ns);
    put_bin(&w, rec->event, rec->event_len);
    if (plen)
        put_str(&w, rec->publisher, plen);
    return w.err == RK_OK ? w.len : 0;
}

int rk_wire_record_next(const unsigned char **p, size_t *left, struct rk_wire_record *rec)
{
    struct rk_mp_reader r = {*p, *left, 0};
    uint64_t n, ns;
    memset(rec, 0, sizeof *rec);
    /* exactly 3 or 4 elements: a record has no room for later fields */
    if (get_count(&r, RK_MP_ARRAY, &n) || n < 3 || n > 4 || get_uint(&r, &rec->seq) ||
        get_uint(&r, &ns) || ns > INT64_MAX || get_bin_ref(&r, &rec->event, &rec->event_len))
        return -1;
    rec->recv_ns = (int64_t)ns;
    if (n >= 4 && (get_str(&r, &rec->publisher, &rec->publisher_len) ||
                   rec->publisher_len > RK_WIRE_PUBLISHER_MAX ||
                   memchr(rec->publisher, '\0', rec->publisher_len)))
        return -1; /* a NUL would cut the key short, as in an "evt" header */
    if (rec->publisher && rec->publisher_len == 0)
        rec->publisher = NULL;
    *p += r.off;
    *left -= r.off;
    return 0;
}

/* ---- subscription keys */

static int prefix_byte_ok(unsigned char c)
{
    return c >= '!' && c <= '~' && c != '|';
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

size_t rk_wire_subkey(const char *const *prefixes, unsigned n, char *out, char *why, size_t why_len)
{
    const char *sorted[RK_WIRE_TOPICS_MAX];
    size_t len = 1;
    if (n > RK_WIRE_TOPICS_MAX) {
        snprintf(why, why_len, "at most %d topic prefixes, got %u", RK_WIRE_TOPICS_MAX, n);
        return 0;
    }
    for (unsigned i = 0; i < n; i++) {
        size_t l = strlen(prefixes[i]);
        if (l >= RK_WIRE_TOPIC_MAX) {
            snprintf(why, why_len, "topic prefix \"%.60s\": longer than %d bytes", prefixes[i],
                     RK_WIRE_TOPIC_MAX - 1);
            return 0;
        }
        for (size_t k = 0; k < l; k++)
            if (!prefix_byte_ok((unsigned char)prefixes[i][k])) {
                snprintf(why, why_len, "topic prefix \"%.60s\": byte %zu is not allowed "
                         "(printable ASCII other than space and '|')", prefixes[i], k + 1);
                return 0;
            }
        sorted[i] = prefixes[i];
    }
    qsort(sorted, n, sizeof sorted[0], cmp_str);
    out[0] = '~';
    /* Sorted, a prefix comes right before what it covers. */
    const char *kept = NULL;
    for (unsigned i = 0; i < n; i++) {
        if (kept && strncmp(sorted[i], kept, strlen(kept)) == 0)
            continue;
        if (sorted[i][0] == '\0') { /* the empty prefix covers everything */
            len = 1;
            break;
        }
        if (kept)
            out[len++] = '|';
        memcpy(out + len, sorted[i], strlen(sorted[i]));
        len += strlen(sorted[i]);
        kept = sorted[i];
    }
    out[len++] = '\n';
    out[len] = '\0';
    return len;
}

int rk_wire_subkey_parse(const void *key, size_t len, char topics[][RK_WIRE_TOPIC_MAX])
{
    const unsigned char *k = key;
    int n = 0;
    size_t at = 0;
    if (len < 2 || k[0] != '~' || k[len - 1] != '\n')
        return -1;
    if (len == 2)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if (k[i] == '|' || k[i] == '\n') {
            if (at == 0 || (k[i] == '\n' && i != len - 1))
                return -1;
            topics[n++][at] = '\0';
            at = 0;
            continue;
        }
        if (!prefix_byte_ok(k[i]) || at == RK_WIRE_TOPIC_MAX - 1 || n == RK_WIRE_TOPICS_MAX)
            return -1;
        topics[n][at++] = (char)k[i];
    }
    return n;
}
