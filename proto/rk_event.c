#include "rk_event.h"
#include "rk_muni.h"
#include "rk_time.h"

#include <math.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define MAX_DEPTH 16
#define DAY_NS (86400 * RK_NS_PER_SEC)
#define YEAR_2000_NS (946684800LL * RK_NS_PER_SEC)

/* ---- names -------------------------------------------------------------- */

static const char *const type_names[] = {
    [RK_EV_KPI_UPDATE] = "kpi.update",     [RK_EV_AID_REQUEST] = "aid.request",
    [RK_EV_AID_OFFER] = "aid.offer",       [RK_EV_AID_ACCEPT] = "aid.accept",
    [RK_EV_AID_DISPATCH] = "aid.dispatch", [RK_EV_AID_FULFIL] = "aid.fulfil",
    [RK_EV_AID_CANCEL] = "aid.cancel",     [RK_EV_AID_WITHDRAW] = "aid.withdraw",
};
#define NTYPES (sizeof type_names / sizeof type_names[0])

static const char *const verr_names[RK_V__COUNT] = {
    [RK_V_OK] = "OK",
    [RK_V_DECODE] = "E_DECODE",
    [RK_V_TOO_LONG] = "E_TOO_LONG",
    [RK_V_TYPE] = "E_TYPE",
    [RK_V_MISSING] = "E_MISSING",
    [RK_V_UNKNOWN_FIELD] = "E_UNKNOWN_FIELD",
    [RK_V_EVENT_TYPE] = "E_EVENT_TYPE",
    [RK_V_ID] = "E_ID",
    [RK_V_VOCAB] = "E_VOCAB",
    [RK_V_UNIT] = "E_UNIT",
    [RK_V_RANGE] = "E_RANGE",
    [RK_V_TEXT] = "E_TEXT",
    [RK_V_TIME] = "E_TIME",
    [RK_V_CODE_FORMAT] = "E_CODE_FORMAT",
    [RK_V_CODE_PREFECTURE] = "E_CODE_PREFECTURE",
    [RK_V_CHECK_DIGIT] = "E_CHECK_DIGIT",
    [RK_V_UNKNOWN_MUNICIPALITY] = "E_UNKNOWN_MUNICIPALITY",
    [RK_V_POLICY_AREA] = "E_POLICY_AREA",
};

const char *rk_event_type_name(enum rk_event_type type)
{
    if ((unsigned)type == RK_EV_NONE || (unsigned)type >= NTYPES)
        return NULL;
    return type_names[type];
}

enum rk_event_type rk_event_type_parse(const char *name, size_t len)
{
    for (size_t t = 1; t < NTYPES; t++)
        if (strlen(type_names[t]) == len && memcmp(type_names[t], name, len) == 0)
            return (enum rk_event_type)t;
    return RK_EV_NONE;
}

const char *rk_verr_name(enum rk_verr code)
{
    if ((unsigned)code >= RK_V__COUNT)
        return "E_UNKNOWN";
    return verr_names[code];
}

/* The topic is "<type>/" then nine bytes "<pp>/<mmmmmm>". */
static void topic_tail(const char muni[6], char tail[9])
{
    memcpy(tail, muni, 2);
    tail[2] = '/';
    memcpy(tail + 3, muni, 6);
}

/* Built by hand: snprintf cost as much as the rest of the topic's users. */
void rk_event_topic(const struct rk_event_info *info, char *out)
{
    const char *type = rk_event_type_name(info->type);
    if (!type)
        type = "";
    size_t n = strlen(type);
    if (n + 1 + 2 + 1 + 6 + 1 > RK_TOPIC_MAX)
        n = 0;
    memcpy(out, type, n);
    out[n] = '/';
    topic_tail(info->municipality, out + n + 1);
    out[n + 10] = '\0';
}

_Static_assert(NTYPES == RK_EV__COUNT, "RK_EV__COUNT follows enum rk_event_type");

int rk_topic_set_init(struct rk_topic_set *set, const char *const *prefixes, unsigned n)
{
    memset(set, 0, sizeof *set);
    set->everything = n == 0;
    if (n > RK_TOPIC_SET_MAX)
        return -1;
    for (unsigned i = 0; i < n; i++) {
        size_t plen = strlen(prefixes[i]);
        for (size_t t = 1; t < NTYPES; t++) {
            char head[RK_TOPIC_MAX];
            size_t hlen = strlen(type_names[t]);
            memcpy(head, type_names[t], hlen);
            head[hlen++] = '/';
            if (plen <= hlen) {
                set->whole[t] |= memcmp(prefixes[i], head, plen) == 0;
                continue;
            }
            if (memcmp(prefixes[i], head, hlen) != 0 || plen - hlen > 9)
                continue; /* another type, or longer than any topic of this one */
            unsigned k = set->ntails[t]++;
            set->tails[t][k].len = (unsigned char)(plen - hlen);
            memcpy(set->tails[t][k].s, prefixes[i] + hlen, plen - hlen);
        }
    }
    return 0;
}

int rk_topic_set_match(const struct rk_topic_set *set, enum rk_event_type type,
                       const char municipality[6])
{
    char tail[9];
    if (set->everything)
        return 1;
    if ((unsigned)type == RK_EV_NONE || (unsigned)type >= NTYPES)
        return 0;
    if (set->whole[type])
        return 1;
    if (!set->ntails[type])
        return 0;
    topic_tail(municipality, tail);
    for (unsigned k = 0; k < set->ntails[type]; k++)
        if (memcmp(tail, set->tails[type][k].s, set->tails[type][k].len) == 0)
            return 1;
    return 0;
}

/* ---- vocabularies (PROTOCOL.md section 4; tests cross-check proto/data) --- */

struct resource {
    const char *code, *unit;
};

static const struct resource resources[] = {
    {"staff.civil_engineer", "person"}, {"staff.building_inspector", "person"},
    {"staff.public_health_nurse", "person"}, {"staff.water_engineer", "person"},
    {"staff.shelter_admin", "person"}, {"staff.certificate_clerk", "person"},
    {"team.dmat", "team"}, {"team.medical_relief", "team"}, {"team.dpat", "team"},
    {"team.dheat", "team"}, {"team.dwat", "team"},
    {"water.drinking", "L"}, {"water.tanker_truck", "vehicle"},
    {"food.meal", "meal"}, {"food.infant_formula", "piece"},
    {"goods.blanket", "piece"}, {"goods.cardboard_bed", "piece"},
    {"goods.partition", "piece"}, {"goods.portable_toilet", "piece"},
    {"goods.temporary_toilet", "piece"}, {"goods.diaper", "piece"},
    {"goods.tarp", "piece"}, {"goods.generator", "piece"}, {"goods.heater", "piece"},
    {"goods.medical_supplies", "kit"},
    {"fuel.kerosene", "L"}, {"fuel.diesel", "L"},
    {"vehicle.truck", "vehicle"}, {"equipment.excavator", "vehicle"},
    {"shelter.evacuee_capacity", "person"},
};
#define NRESOURCES (sizeof resources / sizeof resources[0])

static const char *const urgencies[] = {"critical", "high", "medium", "low", NULL};
static const char *const data_classes[] = {"open", "restricted", NULL};
static const char *const transports[] = {"road", "air", "sea", "rail", NULL};
static const char *const aggregations[] = {"annual", "stock", "daily_average",
                                           "annual_average", "cumulative", NULL};
static const char *const policy_areas[] = {
    "a.a", "a.b", "a.c", "a.d", "a.e", "i.a", "i.b", "i.c", "i.d",
    "u.A.a", "u.A.b", "u.A.c", "u.A.d", "u.A.e", "u.A.f", "u.A.g", "u.A.h",
    "u.B.a", "u.B.b", "u.B.c", "u.B.d", "u.B.e", "u.B.f",
    "u.C.a", "u.C.b", "u.C.c", "u.C.d", NULL};

size_t rk_event_resource_count(void)
{
    return NRESOURCES;
}

const char *rk_event_resource_at(size_t i, const char **unit)
{
    if (i >= NRESOURCES)
        return NULL;
    if (unit)
        *unit = resources[i].unit;
    return resources[i].code;
}

/* Stops at the first differing byte: most comparisons fail there, and a
 * strlen of every candidate cost more than the comparisons. */
static bool str_is(const msgpack_object_str *s, const char *lit)
{
    for (uint32_t i = 0; i < s->size; i++)
        if (lit[i] != s->ptr[i] || lit[i] == '\0')
            return false;
    return lit[s->size] == '\0';
}

static int vocab_index(const char *const *vocab, const msgpack_object_str *s)
{
    for (int i = 0; vocab[i]; i++)
        if (str_is(s, vocab[i]))
            return i;
    return -1;
}

/* ---- structural pre-scan ------------------------------------------------ */

/* msgpack-c allocates room for a container's elements as soon as it reads
 * the container's header, so a 5-byte "map of 2^32 pairs" would ask for
 * gigabytes. Walk the bytes first and require every declared length to fit
 * in what is left (each element takes at least one byte) and nesting to stay
 * shallow; only then let msgpack-c build objects. */
static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static int scan(const unsigned char *p, size_t len, size_t *off, int depth);

static int scan_children(const unsigned char *p, size_t len, size_t *off, uint64_t n,
                         int depth)
{
    if (depth >= MAX_DEPTH || n > len - *off)
        return -1;
    for (uint64_t i = 0; i < n; i++)
        if (scan(p, len, off, depth + 1))
            return -1;
    return 0;
}

/* Size of the fixed part after the type byte and of a length prefix. */
static int scan(const unsigned char *p, size_t len, size_t *off, int depth)
{
    if (*off >= len)
        return -1;
    unsigned b = p[(*off)++];
    size_t left = len - *off;
    uint64_t n;
    int lenbytes = 0;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return 0;
    if ((b & 0xe0) == 0xa0) {
        n = b & 0x1f;
        goto skip;
    }
    if ((b & 0xf0) == 0x90)
        return scan_children(p, len, off, b & 0x0f, depth);
    if ((b & 0xf0) == 0x80)
        return scan_children(p, len, off, 2 * (uint64_t)(b & 0x0f), depth);
    switch (b) {
    case 0xcc: case 0xd0: n = 1; goto skip;
    case 0xcd: case 0xd1: n = 2; goto skip;
    case 0xca: case 0xce: case 0xd2: n = 4; goto skip;
    case 0xcb: case 0xcf: case 0xd3: n = 8; goto skip;
    case 0xd4: n = 2; goto skip;        /* fixext: type byte + data */
    case 0xd5: n = 3; goto skip;
    case 0xd6: n = 5; goto skip;
    case 0xd7: n = 9; goto skip;
    case 0xd8: n = 17; goto skip;
    case 0xc4: case 0xd9: case 0xc7: lenbytes = 1; break;
    case 0xc5: case 0xda: case 0xc8: case 0xdc: case 0xde: lenbytes = 2; break;
    case 0xc6: case 0xdb: case 0xc9: case 0xdd: case 0xdf: lenbytes = 4; break;
    default: return -1; /* 0xc1 is never used */
    }
    if (left < (size_t)lenbytes)
        return -1;
    n = be(p + *off, lenbytes);
    *off += (size_t)lenbytes;
    if (b == 0xdc || b == 0xdd)
        return scan_children(p, len, off, n, depth);
    if (b == 0xde || b == 0xdf)
        return scan_children(p, len, off, 2 * n, depth);
    if (b == 0xc7 || b == 0xc8 || b == 0xc9)
        n += 1; /* ext type byte */
    left = len - *off;
skip:
    if (n > len - *off)
        return -1;
    *off += (size_t)n;
    (void)left;
    return 0;
}

/* ---- error reporting ---------------------------------------------------- */

struct vctx {
    const char *prefix;   /* "offer", "kpi.update", or "event" before the type is known */
    const char *parent;   /* "baseline" while checking baseline.value etc.; else NULL */
    struct rk_verror *err;
    int64_t now_ns;
    int64_t sent_at;      /* 0 until sent_at has been checked */
    int resource;         /* index into resources[], -1 until known */
    int64_t fiscal_year;
};

static enum rk_verr fail(struct vctx *c, enum rk_verr code, const char *field,
                         const char *fmt, ...)
{
    if (c->err) {
        c->err->code = code;
        int n = snprintf(c->err->message, sizeof c->err->message, "%s.%s%s%s: ", c->prefix,
                         c->parent ? c->parent : "", c->parent ? "." : "", field);
        if (n < 0 || (size_t)n >= sizeof c->err->message)
            return code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err->message + n, sizeof c->err->message - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return code;
}

static const char *kind_name(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "integer";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "float";
    case MSGPACK_OBJECT_STR: return "string";
    case MSGPACK_OBJECT_ARRAY: return "array";
    case MSGPACK_OBJECT_MAP: return "map";
    case MSGPACK_OBJECT_BIN: return "binary";
    default: return "extension";
    }
}

/* Up to 40 bytes of a string for an error message, cut on a UTF-8 boundary. */
static int clip(const msgpack_object_str *s)
{
    uint32_t n = s->size < 40 ? s->size : 40;
    while (n > 0 && n < s->size && ((unsigned char)s->ptr[n] & 0xc0) == 0x80)
        n--;
    return (int)n;
}

/* ---- value checks -------------------------------------------------------- */

static enum rk_verr want_str(struct vctx *c, const char *field, const msgpack_object *o)
{
    if (o->type != MSGPACK_OBJECT_STR)
        return fail(c, RK_V_TYPE, field, "must be a string, got %s", kind_name(o));
    return RK_V_OK;
}

static enum rk_verr check_id(struct vctx *c, const char *field, const msgpack_object *o)
{
    enum rk_verr rc = want_str(c, field, o);
    if (rc)
        return rc;
    const msgpack_object_str *s = &o->via.str;
    if (s->size < 1 || s->size > RK_ID_MAX)
        return fail(c, RK_V_ID, field, "must be 1..64 characters, got %u", s->size);
    if (!rk_event_id_valid(s->ptr, s->size))
        return fail(c, RK_V_ID, field, "may hold only A-Z a-z 0-9 . _ : -, got \"%.*s\"",
                    clip(s), s->ptr);
    return RK_V_OK;
}

int rk_event_id_valid(const char *s, size_t len)
{
    if (len < 1 || len > RK_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        bool ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == ':' || ch == '-';
        if (!ok)
            return 0;
    }
    return 1;
}

/* Decodes one UTF-8 sequence at s[*i]; returns the code point or -1 for an
 * invalid, overlong or surrogate sequence. */
static long utf8_next(const unsigned char *s, uint32_t n, uint32_t *i)
{
    unsigned b = s[*i];
    int extra;
    long cp, min;
    if (b < 0x80) { (*i)++; return b; }
    if ((b & 0xe0) == 0xc0) { extra = 1; cp = b & 0x1f; min = 0x80; }
    else if ((b & 0xf0) == 0xe0) { extra = 2; cp = b & 0x0f; min = 0x800; }
    else if ((b & 0xf8) == 0xf0) { extra = 3; cp = b & 0x07; min = 0x10000; }
    else return -1;
    if (n - *i <= (uint32_t)extra)
        return -1;
    for (int k = 1; k <= extra; k++) {
        unsigned cb = s[*i + (uint32_t)k];
        if ((cb & 0xc0) != 0x80)
            return -1;
        cp = cp << 6 | (cb & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return -1;
    *i += (uint32_t)extra + 1;
    return cp;
}

/* UTF-8 text of at most `max` bytes, no control characters except TAB and
 * LF; `need_content` refuses text that is empty or only white space. */
static enum rk_verr check_text(struct vctx *c, const char *field, const msgpack_object *o,
                               uint32_t max, bool need_content)
{
    enum rk_verr rc = want_str(c, field, o);
    if (rc)
        return rc;
    const msgpack_object_str *s = &o->via.str;
    if (s->size > max)
        return fail(c, RK_V_TOO_LONG, field, "must be at most %u bytes, got %u", max, s->size);
    bool blank = true;
    for (uint32_t i = 0; i < s->size;) {
        uint32_t at = i;
        long cp = utf8_next((const unsigned char *)s->ptr, s->size, &i);
        if (cp < 0)
            return fail(c, RK_V_TEXT, field, "invalid UTF-8 at byte %u", at);
        if ((cp < 0x20 && cp != '\t' && cp != '\n') || (cp >= 0x7f && cp <= 0x9f))
            return fail(c, RK_V_TEXT, field, "control character U+%04lX at byte %u", cp, at);
        if (cp != ' ' && cp != '\t' && cp != '\n' && cp != 0x3000)
            blank = false;
    }
    if (need_content && blank)
        return fail(c, RK_V_TEXT, field, "must not be empty or blank");
    return RK_V_OK;
}

static enum rk_verr check_vocab(struct vctx *c, const char *field, const msgpack_object *o,
                                const char *const *vocab)
{
    enum rk_verr rc = want_str(c, field, o);
    if (rc)
        return rc;
    if (vocab_index(vocab, &o->via.str) >= 0)
        return RK_V_OK;
    char list[160] = "";
    for (int i = 0; vocab[i]; i++) {
        strncat(list, i ? "|" : "", sizeof list - strlen(list) - 1);
        strncat(list, vocab[i], sizeof list - strlen(list) - 1);
    }
    return fail(c, RK_V_VOCAB, field, "must be %s, got \"%.*s\"", list, clip(&o->via.str),
                o->via.str.ptr);
}

/* The taxonomy has 27 items: naming them all would fill the message. */
static enum rk_verr check_policy_area(struct vctx *c, const char *field, const msgpack_object *o)
{
    enum rk_verr rc = want_str(c, field, o);
    if (rc || vocab_index(policy_areas, &o->via.str) >= 0)
        return rc;
    return fail(c, RK_V_POLICY_AREA, field,
                "must be a KPI taxonomy item such as a.b or u.A.c, got \"%.*s\"",
                clip(&o->via.str), o->via.str.ptr);
}

/* An integer field in [lo, hi]; floats are refused, not rounded. */
static enum rk_verr check_int(struct vctx *c, const char *field, const msgpack_object *o,
                              int64_t lo, int64_t hi, int64_t *out)
{
    int64_t v;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > (uint64_t)INT64_MAX)
            return fail(c, RK_V_RANGE, field, "must be %lld..%lld, got %llu", (long long)lo,
                        (long long)hi, (unsigned long long)o->via.u64);
        v = (int64_t)o->via.u64;
    } else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        v = o->via.i64;
    } else {
        return fail(c, RK_V_TYPE, field, "must be an integer, got %s", kind_name(o));
    }
    if (v < lo || v > hi)
        return fail(c, RK_V_RANGE, field, "must be %lld..%lld, got %lld", (long long)lo,
                    (long long)hi, (long long)v);
    if (out)
        *out = v;
    return RK_V_OK;
}

/* Any finite number, integer or float. */
static enum rk_verr get_number(struct vctx *c, const char *field, const msgpack_object *o,
                               double *out)
{
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER: *out = (double)o->via.u64; return RK_V_OK;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: *out = (double)o->via.i64; return RK_V_OK;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (!isfinite(o->via.f64))
            return fail(c, RK_V_RANGE, field, "must be a finite number");
        *out = o->via.f64;
        return RK_V_OK;
    default:
        return fail(c, RK_V_TYPE, field, "must be a number, got %s", kind_name(o));
    }
}

static enum rk_verr check_time(struct vctx *c, const char *field, const msgpack_object *o,
                               int64_t *ns)
{
    enum rk_verr rc = want_str(c, field, o);
    if (rc)
        return rc;
    const msgpack_object_str *s = &o->via.str;
    if (rk_time_parse(s->ptr, s->size, ns))
        return fail(c, RK_V_TIME, field,
                    "must be RFC 3339 with seconds and offset, e.g. 2026-02-17T10:24:00+09:00, got \"%.*s\"",
                    clip(s), s->ptr);
    if (*ns < YEAR_2000_NS)
        return fail(c, RK_V_TIME, field, "must be in the year 2000 or later, got \"%.*s\"",
                    clip(s), s->ptr);
    return RK_V_OK;
}

/* ---- schemas ------------------------------------------------------------ */

enum kind {
    K_TYPE, K_ID, K_MUNI, K_SENT_AT,
    K_VERSION, K_RESOURCE, K_QUANTITY, K_UNIT, K_URGENCY, K_LOCATION,
    K_DEADLINE, K_ETA, K_DATA_CLASS, K_NOTE, K_REASON, K_TRANSPORT,
    K_POLICY, K_NAME, K_KPI_UNIT, K_AGGREGATION, K_FISCAL_YEAR, K_POINT, K_LABEL256,
};

struct field {
    const char *name;
    enum kind kind;
    bool required;
};

static const struct field envelope[] = {
    {"type", K_TYPE, true}, {"event_id", K_ID, true},
    {"municipality", K_MUNI, true}, {"sent_at", K_SENT_AT, true}, {NULL, 0, 0}};

static const struct field kpi_update[] = {
    {"kpi_id", K_ID, true}, {"policy_area", K_POLICY, true}, {"name", K_NAME, true},
    {"unit", K_KPI_UNIT, true}, {"aggregation", K_AGGREGATION, true},
    {"fiscal_year", K_FISCAL_YEAR, true}, {"baseline", K_POINT, true},
    {"target", K_POINT, true}, {"current", K_POINT, true}, {"project", K_LABEL256, false},
    {"region", K_LABEL256, false}, {"note", K_NOTE, false}, {NULL, 0, 0}};

static const struct field aid_request[] = {
    {"request_id", K_ID, true}, {"version", K_VERSION, true},
    {"resource", K_RESOURCE, true}, {"quantity", K_QUANTITY, true}, {"unit", K_UNIT, true},
    {"urgency", K_URGENCY, true}, {"location", K_LOCATION, true},
    {"deadline", K_DEADLINE, true}, {"data_class", K_DATA_CLASS, false},
    {"note", K_NOTE, false}, {NULL, 0, 0}};

static const struct field aid_offer[] = {
    {"request_id", K_ID, true}, {"offer_id", K_ID, true}, {"resource", K_RESOURCE, true},
    {"quantity", K_QUANTITY, true}, {"unit", K_UNIT, true}, {"eta", K_ETA, false},
    {"note", K_NOTE, false}, {NULL, 0, 0}};

static const struct field aid_accept[] = {
    {"request_id", K_ID, true}, {"offer_id", K_ID, true}, {"quantity", K_QUANTITY, true},
    {"note", K_NOTE, false}, {NULL, 0, 0}};

static const struct field aid_dispatch[] = {
    {"request_id", K_ID, true}, {"offer_id", K_ID, true}, {"dispatch_id", K_ID, true},
    {"quantity", K_QUANTITY, true}, {"eta", K_ETA, false},
    {"transport", K_TRANSPORT, false}, {"note", K_NOTE, false}, {NULL, 0, 0}};

static const struct field aid_fulfil[] = {
    {"request_id", K_ID, true}, {"offer_id", K_ID, true}, {"quantity", K_QUANTITY, true},
    {"dispatch_id", K_ID, false}, {"note", K_NOTE, false}, {NULL, 0, 0}};

static const struct field aid_cancel[] = {
    {"request_id", K_ID, true}, {"reason", K_REASON, true}, {"note", K_NOTE, false},
    {NULL, 0, 0}};

static const struct field aid_withdraw[] = {
    {"request_id", K_ID, true}, {"offer_id", K_ID, true}, {"reason", K_REASON, true},
    {"note", K_NOTE, false}, {NULL, 0, 0}};

static const struct field *const schemas[] = {
    [RK_EV_KPI_UPDATE] = kpi_update,     [RK_EV_AID_REQUEST] = aid_request,
    [RK_EV_AID_OFFER] = aid_offer,       [RK_EV_AID_ACCEPT] = aid_accept,
    [RK_EV_AID_DISPATCH] = aid_dispatch, [RK_EV_AID_FULFIL] = aid_fulfil,
    [RK_EV_AID_CANCEL] = aid_cancel,     [RK_EV_AID_WITHDRAW] = aid_withdraw,
};

#define MAX_FIELDS 16 /* in one list; the longest, kpi.update's, has 12 */

/* Position of `key` in `list`, or -1. */
static int field_index(const struct field *list, const msgpack_object_str *key)
{
    for (int i = 0; list[i].name; i++)
        if (str_is(key, list[i].name))
            return i;
    return -1;
}

static const msgpack_object *lookup(const msgpack_object_map *m, const char *name)
{
    for (uint32_t i = 0; i < m->size; i++)
        if (m->ptr[i].key.type == MSGPACK_OBJECT_STR && str_is(&m->ptr[i].key.via.str, name))
            return &m->ptr[i].val;
    return NULL;
}

/* Keys must be strings, appear once, and belong to one of the two lists.
 * Files each value where its field is: a[i]'s value in va[i], b[i]'s in
 * vb[i] (both MAX_FIELDS long, NULL where the field is absent), so each
 * key is matched once rather than each field searched for. */
static enum rk_verr index_keys(struct vctx *c, const char *where, const msgpack_object_map *m,
                               const struct field *a, const msgpack_object **va,
                               const struct field *b, const msgpack_object **vb)
{
    memset(va, 0, MAX_FIELDS * sizeof *va);
    if (b)
        memset(vb, 0, MAX_FIELDS * sizeof *vb);
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR)
            return fail(c, RK_V_TYPE, where, "field names must be strings, got %s",
                        kind_name(k));
        const msgpack_object_str *ks = &k->via.str;
        const msgpack_object **slot = NULL;
        int at = field_index(a, ks);
        if (at >= 0)
            slot = &va[at];
        else if (b && (at = field_index(b, ks)) >= 0)
            slot = &vb[at];
        if (!slot)
            return fail(c, RK_V_UNKNOWN_FIELD, where, "unknown field \"%.*s\" (the schema is strict)",
                        clip(ks), ks->ptr);
        if (*slot)
            return fail(c, RK_V_DECODE, where, "field \"%.*s\" appears twice",
                        clip(ks), ks->ptr);
        *slot = &m->ptr[i].val;
    }
    return RK_V_OK;
}

static enum rk_verr check_muni(struct vctx *c, const char *field, const msgpack_object *o)
{
    enum rk_verr rc = want_str(c, field, o);
    if (rc)
        return rc;
    const msgpack_object_str *s = &o->via.str;
    switch (rk_muni_validate(s->ptr, s->size)) {
    case RK_MUNI_OK:
        return RK_V_OK;
    case RK_MUNI_FORMAT:
        return fail(c, RK_V_CODE_FORMAT, field, "must be six digits, got \"%.*s\"", clip(s), s->ptr);
    case RK_MUNI_PREFECTURE:
        return fail(c, RK_V_CODE_PREFECTURE, field, "prefecture must be 01..47, got \"%.*s\"",
                    clip(s), s->ptr);
    case RK_MUNI_CHECK_DIGIT:
        return fail(c, RK_V_CHECK_DIGIT, field, "check digit of %.5s must be %c, got \"%.*s\"",
                    s->ptr, rk_muni_check_digit(s->ptr), clip(s), s->ptr);
    default:
        return fail(c, RK_V_UNKNOWN_MUNICIPALITY, field, "no local government has code %.6s",
                    s->ptr);
    }
}

static enum rk_verr check_sent_at(struct vctx *c, const msgpack_object *o)
{
    int64_t ns;
    enum rk_verr rc = check_time(c, "sent_at", o, &ns);
    if (rc)
        return rc;
    if (c->now_ns && ns > c->now_ns + DAY_NS)
        return fail(c, RK_V_TIME, "sent_at", "more than 24 h ahead of the broker's clock: \"%.*s\"",
                    clip(&o->via.str), o->via.str.ptr);
    c->sent_at = ns;
    return RK_V_OK;
}

static enum rk_verr check_resource(struct vctx *c, const msgpack_object *o)
{
    enum rk_verr rc = want_str(c, "resource", o);
    if (rc)
        return rc;
    for (size_t i = 0; i < NRESOURCES; i++)
        if (str_is(&o->via.str, resources[i].code)) {
            c->resource = (int)i;
            return RK_V_OK;
        }
    return fail(c, RK_V_VOCAB, "resource", "not in the resource vocabulary, got \"%.*s\"",
                clip(&o->via.str), o->via.str.ptr);
}

static enum rk_verr check_unit(struct vctx *c, const msgpack_object *o)
{
    enum rk_verr rc = want_str(c, "unit", o);
    if (rc)
        return rc;
    const char *want = resources[c->resource].unit; /* resource precedes unit in every schema */
    if (!str_is(&o->via.str, want))
        return fail(c, RK_V_UNIT, "unit", "%s is counted in %s, got \"%.*s\"",
                    resources[c->resource].code, want, clip(&o->via.str), o->via.str.ptr);
    return RK_V_OK;
}

static enum rk_verr check_range(struct vctx *c, const char *field, const msgpack_object *o,
                                double lo, double hi)
{
    double v = 0;
    enum rk_verr rc = get_number(c, field, o, &v);
    if (rc)
        return rc;
    if (v < lo || v > hi)
        return fail(c, RK_V_RANGE, field, "must be %g..%g, got %g", lo, hi, v);
    return RK_V_OK;
}

static const struct field location_fields[] = {
    {"lat", K_LOCATION, true}, {"lon", K_LOCATION, true}, {"place", K_LOCATION, false},
    {NULL, 0, 0}};

static enum rk_verr check_location(struct vctx *c, const msgpack_object *o)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return fail(c, RK_V_TYPE, "location", "must be a map {lat, lon, place}, got %s",
                    kind_name(o));
    const msgpack_object *v[MAX_FIELDS];
    enum rk_verr rc = index_keys(c, "location", &o->via.map, location_fields, v, NULL, NULL);
    if (rc)
        return rc;
    const msgpack_object *lat = v[0], *lon = v[1], *place = v[2];
    if (!lat)
        return fail(c, RK_V_MISSING, "location.lat", "required");
    if (!lon)
        return fail(c, RK_V_MISSING, "location.lon", "required");
    if ((rc = check_range(c, "location.lat", lat, 20, 46)) ||
        (rc = check_range(c, "location.lon", lon, 122, 154)))
        return rc;
    return place ? check_text(c, "location.place", place, 256, false) : RK_V_OK;
}

/* deadline: after sent_at, at most 366 days after; eta: no more than 1 h
 * before sent_at (clocks differ), at most 366 days after. */
static enum rk_verr check_later_time(struct vctx *c, const char *field, const msgpack_object *o,
                                     int64_t earliest_offset, bool strictly_after)
{
    int64_t ns;
    enum rk_verr rc = check_time(c, field, o, &ns);
    if (rc)
        return rc;
    int64_t earliest = c->sent_at + earliest_offset;
    if (strictly_after ? ns <= earliest : ns < earliest)
        return fail(c, RK_V_TIME, field, strictly_after ? "must be after sent_at"
                                                        : "must not be more than 1 h before sent_at");
    if (ns - c->sent_at > 366 * DAY_NS)
        return fail(c, RK_V_TIME, field, "must be at most 366 days after sent_at");
    return RK_V_OK;
}

static const struct field point_fields[] = {
    {"value", K_POINT, true}, {"fy", K_POINT, true}, {"fy_from", K_POINT, false},
    {"as_of", K_POINT, false}, {"label", K_POINT, false}, {NULL, 0, 0}};

static enum rk_verr check_as_of(struct vctx *c, const char *field, const msgpack_object *o)
{
    enum rk_verr rc = want_str(c, field, o);
    if (rc)
        return rc;
    const msgpack_object_str *s = &o->via.str;
    int ok = s->size == 7 && s->ptr[4] == '-';
    int year = 0, month = 0;
    for (int i = 0; ok && i < 7; i++) {
        if (i == 4)
            continue;
        ok = s->ptr[i] >= '0' && s->ptr[i] <= '9';
        if (i < 4)
            year = year * 10 + (s->ptr[i] - '0');
        else
            month = month * 10 + (s->ptr[i] - '0');
    }
    if (!ok || month < 1 || month > 12 || year < 1989 || year > 2101)
        return fail(c, RK_V_TIME, field, "must be a month YYYY-MM (1989..2101), got \"%.*s\"",
                    clip(s), s->ptr);
    return RK_V_OK;
}

/* {value, fy, fy_from?, as_of?, label?}; `field` is baseline, target or current. */
static enum rk_verr check_point_fields(struct vctx *c, const char *field,
                                       const msgpack_object **f)
{
    const msgpack_object *value = f[0], *fy = f[1], *from = f[2], *as_of = f[3], *label = f[4];
    double v = 0;
    int64_t fy_v = 0, from_v = 0;
    enum rk_verr rc;
    if (!value)
        return fail(c, RK_V_MISSING, "value", "required");
    if ((rc = get_number(c, "value", value, &v)))
        return rc;
    if (!fy)
        return fail(c, RK_V_MISSING, "fy", "required");
    if ((rc = check_int(c, "fy", fy, 1989, 2100, &fy_v)))
        return rc;
    if (from && (rc = check_int(c, "fy_from", from, 1989, fy_v, &from_v)))
        return rc;
    if (as_of && (rc = check_as_of(c, "as_of", as_of)))
        return rc;
    if (label && (rc = check_text(c, "label", label, 32, false)))
        return rc;
    if (strcmp(field, "current") == 0 && fy_v != c->fiscal_year)
        return fail(c, RK_V_RANGE, "fy", "must equal fiscal_year (%lld), got %lld",
                    (long long)c->fiscal_year, (long long)fy_v);
    return RK_V_OK;
}

static enum rk_verr check_point(struct vctx *c, const char *field, const msgpack_object *o)
{
    const msgpack_object *f[MAX_FIELDS];
    if (o->type != MSGPACK_OBJECT_MAP)
        return fail(c, RK_V_TYPE, field, "must be a map {value, fy, ...}, got %s", kind_name(o));
    enum rk_verr rc = index_keys(c, field, &o->via.map, point_fields, f, NULL, NULL);
    if (rc)
        return rc;
    /* Errors inside name their field "baseline.value" and so on. */
    c->parent = field;
    rc = check_point_fields(c, field, f);
    c->parent = NULL;
    return rc;
}

static enum rk_verr check_field(struct vctx *c, const struct field *f, const msgpack_object *o)
{
    switch (f->kind) {
    case K_TYPE: return RK_V_OK; /* checked before anything else */
    case K_ID: return check_id(c, f->name, o);
    case K_MUNI: return check_muni(c, f->name, o);
    case K_SENT_AT: return check_sent_at(c, o);
    case K_VERSION: return check_int(c, f->name, o, 1, 1000000, NULL);
    case K_RESOURCE: return check_resource(c, o);
    case K_QUANTITY: return check_int(c, f->name, o, 1, 10000000, NULL);
    case K_UNIT: return check_unit(c, o);
    case K_URGENCY: return check_vocab(c, f->name, o, urgencies);
    case K_LOCATION: return check_location(c, o);
    case K_DEADLINE: return check_later_time(c, f->name, o, 0, true);
    case K_ETA: return check_later_time(c, f->name, o, -3600 * RK_NS_PER_SEC, false);
    case K_DATA_CLASS: return check_vocab(c, f->name, o, data_classes);
    case K_NOTE: return check_text(c, f->name, o, 2048, false);
    case K_REASON: return check_text(c, f->name, o, 512, true);
    case K_TRANSPORT: return check_vocab(c, f->name, o, transports);
    case K_POLICY: return check_policy_area(c, f->name, o);
    case K_NAME: return check_text(c, f->name, o, 256, true);
    case K_KPI_UNIT: return check_text(c, f->name, o, 32, true);
    case K_AGGREGATION: return check_vocab(c, f->name, o, aggregations);
    case K_FISCAL_YEAR: return check_int(c, f->name, o, 2000, 2100, &c->fiscal_year);
    case K_POINT: return check_point(c, f->name, o);
    case K_LABEL256: return check_text(c, f->name, o, 256, false);
    }
    return RK_V_OK;
}

/* values[i]: the value of list[i], as index_keys filed it. */
static enum rk_verr check_fields(struct vctx *c, const struct field *list,
                                 const msgpack_object *const *values)
{
    for (int i = 0; list[i].name; i++) {
        enum rk_verr rc;
        if (!values[i]) {
            if (list[i].required)
                return fail(c, RK_V_MISSING, list[i].name, "required");
            continue;
        }
        if ((rc = check_field(c, &list[i], values[i])))
            return rc;
    }
    return RK_V_OK;
}

static void copy_str(char *dst, size_t cap, const msgpack_object *o)
{
    size_t n = 0;
    if (o && o->type == MSGPACK_OBJECT_STR) {
        n = o->via.str.size < cap - 1 ? o->via.str.size : cap - 1;
        memcpy(dst, o->via.str.ptr, n);
    }
    dst[n] = '\0';
}

/* env and body: the values of the envelope's and the type's fields. Every
 * schema lists its entity's id (kpi_id or request_id) first. */
static void fill_info(struct rk_event_info *info, enum rk_event_type type,
                      const msgpack_object *const *env, const msgpack_object *const *body,
                      const struct vctx *c)
{
    info->type = type;
    copy_str(info->municipality, sizeof info->municipality, env[2]);
    copy_str(info->event_id, sizeof info->event_id, env[1]);
    copy_str(info->request_id, sizeof info->request_id,
             type == RK_EV_KPI_UPDATE ? NULL : body[0]);
    copy_str(info->kpi_id, sizeof info->kpi_id, type == RK_EV_KPI_UPDATE ? body[0] : NULL);
    info->fiscal_year = (int)c->fiscal_year;
    info->sent_at_ns = c->sent_at;
}

static enum rk_verr validate_map(struct vctx *c, const msgpack_object *root,
                                 struct rk_event_info *info)
{
    if (root->type != MSGPACK_OBJECT_MAP)
        return fail(c, RK_V_TYPE, "event", "must be a MessagePack map, got %s", kind_name(root));
    const msgpack_object_map *m = &root->via.map;
    const msgpack_object *type_obj = lookup(m, "type");
    if (!type_obj)
        return fail(c, RK_V_MISSING, "type", "required");
    enum rk_verr rc = want_str(c, "type", type_obj);
    if (rc)
        return rc;
    enum rk_event_type type = rk_event_type_parse(type_obj->via.str.ptr, type_obj->via.str.size);
    if (type == RK_EV_NONE)
        return fail(c, RK_V_EVENT_TYPE, "type", "must be kpi.update or aid.request|offer|accept|"
                    "dispatch|fulfil|cancel|withdraw, got \"%.*s\"",
                    clip(&type_obj->via.str), type_obj->via.str.ptr);
    const char *tname = type_names[type];
    c->prefix = strncmp(tname, "aid.", 4) == 0 ? tname + 4 : tname;
    const msgpack_object *env[MAX_FIELDS], *body[MAX_FIELDS];
    if ((rc = index_keys(c, "event", m, envelope, env, schemas[type], body)) ||
        (rc = check_fields(c, envelope, env)) || (rc = check_fields(c, schemas[type], body)))
        return rc;
    if (info)
        fill_info(info, type, env, body, c);
    return RK_V_OK;
}

enum rk_verr rk_event_validate(const void *buf, size_t len, int64_t now_ns,
                               struct rk_event_info *info, struct rk_verror *err)
{
    return rk_event_validate_see(buf, len, now_ns, info, err, NULL, NULL);
}

enum rk_verr rk_event_validate_see(const void *buf, size_t len, int64_t now_ns,
                                   struct rk_event_info *info, struct rk_verror *err,
                                   rk_event_see_fn *see, void *arg)
{
    struct vctx c = {.prefix = "event", .err = err, .now_ns = now_ns, .resource = -1};
    struct rk_event_info own;
    if (see && !info)
        info = &own; /* `see` is told what validation found */
    if (err) {
        err->code = RK_V_OK;
        err->message[0] = '\0';
    }
    if (len > RK_EVENT_MAX_BYTES)
        return fail(&c, RK_V_TOO_LONG, "event", "must be at most %d bytes, got %zu",
                    RK_EVENT_MAX_BYTES, len);
    size_t off = 0;
    if (len == 0 || scan(buf, len, &off, 0) || off != len)
        return fail(&c, RK_V_DECODE, "event",
                    len == 0 ? "empty frame"
                             : "not one complete MessagePack value (or nested deeper than 16)");
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    off = 0;
    enum rk_verr rc;
    if (msgpack_unpack_next(&up, buf, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len)
        rc = fail(&c, RK_V_DECODE, "event", "not one complete MessagePack value");
    else
        rc = validate_map(&c, &up.data, info);
    if (rc == RK_V_OK && see && see(&up.data, info, arg) != 0)
        rc = fail(&c, RK_V_DECODE, "event", "fields not as validation promised");
    msgpack_unpacked_destroy(&up);
    return rc;
}
