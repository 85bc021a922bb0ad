#include "rk_event.h"
#include "rk_mp.h"
#include "rk_muni.h"
#include "rk_text.h"
#include "rk_time.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

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

void rk_event_requester_topic(enum rk_event_type type, const char requester[6], char *out)
{
    const char *name = (unsigned)type < NTYPES && type >= RK_EV_AID_REQUEST ?
                       rk_event_type_name(type) : NULL;
    size_t n = name ? strlen(name) : 0, f = sizeof RK_TOPIC_FOR - 1;
    out[0] = '\0';
    if (!name || n + 1 + f + 9 + 1 > RK_TOPIC_MAX)
        return;
    memcpy(out, name, n);
    out[n] = '/';
    memcpy(out + n + 1, RK_TOPIC_FOR, f);
    topic_tail(requester, out + n + 1 + f);
    out[n + 1 + f + 9] = '\0';
}

_Static_assert(NTYPES == RK_EV__COUNT, "RK_EV__COUNT follows enum rk_event_type");

/* The part of a prefix after "<type>/": the start of "<pp>/<mmmmmm>" (the
 * event's own topic), or of "for/<pp>/<mmmmmm>" (its requester topic, aid
 * types only). A part that is a start of "for/" selects every requester
 * topic of the type, so every event of an aid type; one that fits neither
 * selects nothing. */
static void add_tail(struct rk_topic_set *set, unsigned t, const char *rest, size_t len)
{
    size_t f = sizeof RK_TOPIC_FOR - 1;
    struct rk_topic_tail *tail;
    if (rest[0] >= '0' && rest[0] <= '9') {
        if (len > 9)
            return; /* longer than any topic of this type */
        tail = &set->tails[t][set->ntails[t]++];
    } else if (t < RK_EV_AID_REQUEST) {
        return; /* kpi.update has no requester topic */
    } else if (len <= f) {
        set->whole[t] |= memcmp(rest, RK_TOPIC_FOR, len) == 0;
        return;
    } else {
        if (memcmp(rest, RK_TOPIC_FOR, f) != 0 || len - f > 9)
            return;
        rest += f;
        len -= f;
        tail = &set->fors[t][set->nfor[t]++];
        set->any_for = 1;
    }
    tail->len = (unsigned char)len;
    memcpy(tail->s, rest, len);
}

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
            if (memcmp(prefixes[i], head, hlen) != 0)
                continue; /* another type */
            add_tail(set, (unsigned)t, prefixes[i] + hlen, plen - hlen);
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

int rk_topic_set_wants_requester(const struct rk_topic_set *set, enum rk_event_type type)
{
    return (unsigned)type < NTYPES && set->nfor[type] > 0;
}

int rk_topic_set_match_requester(const struct rk_topic_set *set, enum rk_event_type type,
                                 const char requester[6])
{
    char tail[9];
    if ((unsigned)type >= NTYPES || !set->nfor[type])
        return 0;
    topic_tail(requester, tail);
    for (unsigned k = 0; k < set->nfor[type]; k++)
        if (memcmp(tail, set->fors[type][k].s, set->fors[type][k].len) == 0)
            return 1;
    return 0;
}

uint64_t rk_topic_set_prefectures(const struct rk_topic_set *set)
{
    uint64_t mask = 0;
    if (set->everything || set->any_for)
        return 0;
    for (size_t t = 1; t < NTYPES; t++) {
        if (set->whole[t])
            return 0;
        for (unsigned k = 0; k < set->ntails[t]; k++) {
            size_t len = set->tails[t][k].len < 2 ? set->tails[t][k].len : 2;
            if (len == 0)
                return 0;
            for (unsigned pp = 1; pp <= RK_MUNI_PREFECTURES; pp++) {
                char two[3];
                snprintf(two, sizeof two, "%02u", pp);
                if (memcmp(two, set->tails[t][k].s, len) == 0)
                    mask |= 1ull << pp;
            }
        }
    }
    return mask ? mask : 1; /* a set that selects nothing: no prefecture at all */
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

static int vocab_index(const char *const *vocab, const struct rk_mp_val *s)
{
    for (int i = 0; vocab[i]; i++)
        if (rk_mp_str_is(s, vocab[i]))
            return i;
    return -1;
}

/* ---- error reporting ---------------------------------------------------- */

/* Bytes of a quoted value in a message: 64 ASCII, or 21 kanji, or 16
 * escaped bytes, so that the longest reason still fits the 255 bytes. */
#define QUOTE_MAX 64

struct vctx {
    const unsigned char *end; /* of the event's bytes */
    const char *prefix;   /* "offer", "kpi.update", or "event" before the type is known */
    const char *parent;   /* "baseline" while checking baseline.value etc.; else NULL */
    struct rk_verror *err;
    int64_t now_ns;
    int64_t sent_at;      /* 0 until sent_at has been checked */
    int resource;         /* index into resources[], -1 until known */
    int64_t fiscal_year;
    char quoted[QUOTE_MAX + 1]; /* the value quote() escaped last */
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

/* A string value's bytes as the chars they are. */
static const char *chars(const struct rk_mp_val *s)
{
    return (const char *)s->p;
}

/* A string value of the event for its error message, in c->quoted: the
 * publisher's bytes escaped (rk_text), since the message goes back to
 * clients that show it as is, and cut between characters to leave the
 * message room for the rest. */
static const char *quote(struct vctx *c, const struct rk_mp_val *s)
{
    rk_text_escape(c->quoted, sizeof c->quoted, s->p, s->n, 0);
    return c->quoted;
}

/* ---- value checks -------------------------------------------------------- */

static enum rk_verr want_str(struct vctx *c, const char *field, const struct rk_mp_val *o)
{
    if (o->kind != RK_MP_STR)
        return fail(c, RK_V_TYPE, field, "must be a string, got %s", rk_mp_kind_name(o->kind));
    return RK_V_OK;
}

static enum rk_verr check_id(struct vctx *c, const char *field, const struct rk_mp_val *o)
{
    enum rk_verr rc = want_str(c, field, o);
    if (rc)
        return rc;
    if (o->n < 1 || o->n > RK_ID_MAX)
        return fail(c, RK_V_ID, field, "must be 1..64 bytes, got %u", o->n);
    if (!rk_event_id_valid(chars(o), o->n))
        return fail(c, RK_V_ID, field, "may hold only A-Z a-z 0-9 . _ : -, got \"%s\"",
                    quote(c, o));
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

/* UTF-8 text of at most `max` bytes, no control characters except TAB and
 * LF; `need_content` refuses text that is empty or only white space. */
static enum rk_verr check_text(struct vctx *c, const char *field, const struct rk_mp_val *o,
                               uint32_t max, bool need_content)
{
    enum rk_verr rc = want_str(c, field, o);
    if (rc)
        return rc;
    if (o->n > max)
        return fail(c, RK_V_TOO_LONG, field, "must be at most %u bytes, got %u", max, o->n);
    bool blank = true;
    for (uint32_t i = 0; i < o->n;) {
        uint32_t cp;
        size_t len = rk_text_utf8_char(o->p + i, o->n - i, &cp);
        if (len == 0)
            return fail(c, RK_V_TEXT, field, "invalid UTF-8 at byte %u", i);
        if ((cp < 0x20 && cp != '\t' && cp != '\n') || (cp >= 0x7f && cp <= 0x9f))
            return fail(c, RK_V_TEXT, field, "control character U+%04X at byte %u", (unsigned)cp, i);
        if (cp != ' ' && cp != '\t' && cp != '\n' && cp != 0x3000)
            blank = false;
        i += (uint32_t)len;
    }
    if (need_content && blank)
        return fail(c, RK_V_TEXT, field, "must not be empty or blank");
    return RK_V_OK;
}

static enum rk_verr check_vocab(struct vctx *c, const char *field, const struct rk_mp_val *o,
                                const char *const *vocab)
{
    enum rk_verr rc = want_str(c, field, o);
    if (rc)
        return rc;
    if (vocab_index(vocab, o) >= 0)
        return RK_V_OK;
    char list[160] = "";
    for (int i = 0; vocab[i]; i++) {
        strncat(list, i ? "|" : "", sizeof list - strlen(list) - 1);
        strncat(list, vocab[i], sizeof list - strlen(list) - 1);
    }
    return fail(c, RK_V_VOCAB, field, "must be %s, got \"%s\"", list, quote(c, o));
}

/* The taxonomy has 27 items: naming them all would fill the message. */
static enum rk_verr check_policy_area(struct vctx *c, const char *field, const struct rk_mp_val *o)
{
    enum rk_verr rc = want_str(c, field, o);
    if (rc || vocab_index(policy_areas, o) >= 0)
        return rc;
    return fail(c, RK_V_POLICY_AREA, field,
                "must be a KPI taxonomy item such as a.b or u.A.c, got \"%s\"",
                quote(c, o));
}

/* An integer field in [lo, hi]; floats are refused, not rounded. */
static enum rk_verr check_int(struct vctx *c, const char *field, const struct rk_mp_val *o,
                              int64_t lo, int64_t hi, int64_t *out)
{
    int64_t v;
    if (o->kind == RK_MP_UINT) {
        if (o->v.u > (uint64_t)INT64_MAX)
            return fail(c, RK_V_RANGE, field, "must be %lld..%lld, got %llu", (long long)lo,
                        (long long)hi, (unsigned long long)o->v.u);
        v = (int64_t)o->v.u;
    } else if (o->kind == RK_MP_NEGINT) {
        v = o->v.i;
    } else {
        return fail(c, RK_V_TYPE, field, "must be an integer, got %s", rk_mp_kind_name(o->kind));
    }
    if (v < lo || v > hi)
        return fail(c, RK_V_RANGE, field, "must be %lld..%lld, got %lld", (long long)lo,
                    (long long)hi, (long long)v);
    if (out)
        *out = v;
    return RK_V_OK;
}

/* Any finite number, integer or float. */
static enum rk_verr get_number(struct vctx *c, const char *field, const struct rk_mp_val *o,
                               double *out)
{
    switch (o->kind) {
    case RK_MP_UINT: *out = (double)o->v.u; return RK_V_OK;
    case RK_MP_NEGINT: *out = (double)o->v.i; return RK_V_OK;
    case RK_MP_FLOAT:
        if (!isfinite(o->v.f))
            return fail(c, RK_V_RANGE, field, "must be a finite number");
        *out = o->v.f;
        return RK_V_OK;
    default:
        return fail(c, RK_V_TYPE, field, "must be a number, got %s", rk_mp_kind_name(o->kind));
    }
}

static enum rk_verr check_time(struct vctx *c, const char *field, const struct rk_mp_val *o,
                               int64_t *ns)
{
    enum rk_verr rc = want_str(c, field, o);
    if (rc)
        return rc;
    if (rk_time_parse(chars(o), o->n, ns))
        return fail(c, RK_V_TIME, field,
                    "must be RFC 3339 with seconds and offset, e.g. 2026-02-17T10:24:00+09:00, got \"%s\"",
                    quote(c, o));
    if (*ns < YEAR_2000_NS)
        return fail(c, RK_V_TIME, field, "must be in the year 2000 or later, got \"%s\"",
                    quote(c, o));
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
    uint32_t len;           /* strlen(name) */
    enum kind kind;
    bool required;
};
#define F(name, kind, required) {name, sizeof name - 1, kind, required}

static const struct field envelope[] = {
    F("type", K_TYPE, true), F("event_id", K_ID, true),
    F("municipality", K_MUNI, true), F("sent_at", K_SENT_AT, true), {0}};

static const struct field kpi_update[] = {
    F("kpi_id", K_ID, true), F("policy_area", K_POLICY, true), F("name", K_NAME, true),
    F("unit", K_KPI_UNIT, true), F("aggregation", K_AGGREGATION, true),
    F("fiscal_year", K_FISCAL_YEAR, true), F("baseline", K_POINT, true),
    F("target", K_POINT, true), F("current", K_POINT, true), F("project", K_LABEL256, false),
    F("region", K_LABEL256, false), F("note", K_NOTE, false), {0}};

static const struct field aid_request[] = {
    F("request_id", K_ID, true), F("version", K_VERSION, true),
    F("resource", K_RESOURCE, true), F("quantity", K_QUANTITY, true), F("unit", K_UNIT, true),
    F("urgency", K_URGENCY, true), F("location", K_LOCATION, true),
    F("deadline", K_DEADLINE, true), F("data_class", K_DATA_CLASS, false),
    F("note", K_NOTE, false), {0}};

static const struct field aid_offer[] = {
    F("request_id", K_ID, true), F("offer_id", K_ID, true), F("resource", K_RESOURCE, true),
    F("quantity", K_QUANTITY, true), F("unit", K_UNIT, true), F("eta", K_ETA, false),
    F("note", K_NOTE, false), {0}};

static const struct field aid_accept[] = {
    F("request_id", K_ID, true), F("offer_id", K_ID, true), F("quantity", K_QUANTITY, true),
    F("note", K_NOTE, false), {0}};

static const struct field aid_dispatch[] = {
    F("request_id", K_ID, true), F("offer_id", K_ID, true), F("dispatch_id", K_ID, true),
    F("quantity", K_QUANTITY, true), F("eta", K_ETA, false),
    F("transport", K_TRANSPORT, false), F("note", K_NOTE, false), {0}};

static const struct field aid_fulfil[] = {
    F("request_id", K_ID, true), F("offer_id", K_ID, true), F("quantity", K_QUANTITY, true),
    F("dispatch_id", K_ID, false), F("note", K_NOTE, false), {0}};

static const struct field aid_cancel[] = {
    F("request_id", K_ID, true), F("reason", K_REASON, true), F("note", K_NOTE, false),
    {0}};

static const struct field aid_withdraw[] = {
    F("request_id", K_ID, true), F("offer_id", K_ID, true), F("reason", K_REASON, true),
    F("note", K_NOTE, false), {0}};

static const struct field *const schemas[] = {
    [RK_EV_KPI_UPDATE] = kpi_update,     [RK_EV_AID_REQUEST] = aid_request,
    [RK_EV_AID_OFFER] = aid_offer,       [RK_EV_AID_ACCEPT] = aid_accept,
    [RK_EV_AID_DISPATCH] = aid_dispatch, [RK_EV_AID_FULFIL] = aid_fulfil,
    [RK_EV_AID_CANCEL] = aid_cancel,     [RK_EV_AID_WITHDRAW] = aid_withdraw,
};

#define MAX_FIELDS 16 /* in one list; the longest, kpi.update's, has 12 */

/* Lengths first: most keys differ from most names in length already. */
static bool name_is(const struct field *f, const struct rk_mp_val *key)
{
    return key->n == f->len && memcmp(key->p, f->name, f->len) == 0;
}

/* Position of `key` in `list`, or -1. Publishers tend to send the fields
 * in the schema's order, so the one after the last match is tried first
 * (*next; 0 at the start). */
static int field_index(const struct field *list, const struct rk_mp_val *key, int *next)
{
    int i = *next;
    if (list[i].name && name_is(&list[i], key))
        return (*next)++;
    for (i = 0; list[i].name; i++)
        if (name_is(&list[i], key)) {
            *next = i + 1;
            return i;
        }
    return -1;
}

/* A reader of the map `m`'s pairs (validation checked them whole already). */
static struct rk_mp_reader pairs_of(const struct vctx *c, const struct rk_mp_val *m)
{
    return (struct rk_mp_reader){m->p, (size_t)(c->end - m->p), 0};
}

/* The value of the first key `name` in map `m` into *out; 0, or -1 when absent. */
static int lookup(const struct vctx *c, const struct rk_mp_val *m, const char *name,
                  struct rk_mp_val *out)
{
    struct rk_mp_reader r = pairs_of(c, m);
    struct rk_mp_val k;
    for (uint32_t i = 0; i < m->n; i++) {
        if (rk_mp_next(&r, &k))
            return -1;
        if (k.kind == RK_MP_STR && rk_mp_str_is(&k, name))
            return rk_mp_next(&r, out);
        /* a key may be a container (index_keys refuses it later): skip it whole */
        if (((k.kind == RK_MP_ARRAY || k.kind == RK_MP_MAP) && rk_mp_skip_items(&r, &k)) ||
            rk_mp_skip(&r))
            return -1;
    }
    return -1;
}

/* The value in a slot index_keys filled, or NULL when the field was absent. */
static const struct rk_mp_val *present(const struct rk_mp_val *v)
{
    return v->kind == RK_MP_NONE ? NULL : v;
}

/* Reads the `npairs` pairs of a map from *r. Keys must be strings, appear
 * once, and belong to one of the two lists. Files each value where its
 * field is: a[i]'s value in va[i], b[i]'s in vb[i] (both MAX_FIELDS long,
 * kind RK_MP_NONE where the field is absent), so each key is matched once
 * rather than each field searched for. */
static enum rk_verr index_keys(struct vctx *c, const char *where, struct rk_mp_reader *r,
                               uint32_t npairs, const struct field *a, struct rk_mp_val *va,
                               const struct field *b, struct rk_mp_val *vb)
{
    int next_a = 0, next_b = 0;
    memset(va, 0, MAX_FIELDS * sizeof *va);
    if (b)
        memset(vb, 0, MAX_FIELDS * sizeof *vb);
    for (uint32_t i = 0; i < npairs; i++) {
        struct rk_mp_val k, *slot = NULL;
        if (rk_mp_next(r, &k))
            return fail(c, RK_V_DECODE, where, "not one complete MessagePack value");
        if (k.kind != RK_MP_STR)
            return fail(c, RK_V_TYPE, where, "field names must be strings, got %s",
                        rk_mp_kind_name(k.kind));
        int at = field_index(a, &k, &next_a);
        if (at >= 0)
            slot = &va[at];
        else if (b && (at = field_index(b, &k, &next_b)) >= 0)
            slot = &vb[at];
        if (!slot)
            return fail(c, RK_V_UNKNOWN_FIELD, where, "unknown field \"%s\" (the schema is strict)",
                        quote(c, &k));
        if (slot->kind != RK_MP_NONE)
            return fail(c, RK_V_DECODE, where, "field \"%s\" appears twice",
                        quote(c, &k));
        if (rk_mp_next(r, slot) ||
            ((slot->kind == RK_MP_MAP || slot->kind == RK_MP_ARRAY) && rk_mp_skip_items(r, slot)))
            return fail(c, RK_V_DECODE, where, "not one complete MessagePack value");
    }
    return RK_V_OK;
}

static enum rk_verr check_muni(struct vctx *c, const char *field, const struct rk_mp_val *o)
{
    enum rk_verr rc = want_str(c, field, o);
    if (rc)
        return rc;
    switch (rk_muni_validate(chars(o), o->n)) {
    case RK_MUNI_OK:
        return RK_V_OK;
    case RK_MUNI_FORMAT:
        return fail(c, RK_V_CODE_FORMAT, field, "must be six digits, got \"%s\"", quote(c, o));
    case RK_MUNI_PREFECTURE:
        return fail(c, RK_V_CODE_PREFECTURE, field, "prefecture must be 01..47, got \"%s\"",
                    quote(c, o));
    case RK_MUNI_CHECK_DIGIT:
        return fail(c, RK_V_CHECK_DIGIT, field, "check digit of %.5s must be %c, got \"%s\"",
                    chars(o), rk_muni_check_digit(chars(o)), quote(c, o));
    default:
        return fail(c, RK_V_UNKNOWN_MUNICIPALITY, field, "no local government has code %.6s",
                    chars(o));
    }
}

static enum rk_verr check_sent_at(struct vctx *c, const struct rk_mp_val *o)
{
    int64_t ns;
    enum rk_verr rc = check_time(c, "sent_at", o, &ns);
    if (rc)
        return rc;
    if (c->now_ns && ns > c->now_ns + DAY_NS)
        return fail(c, RK_V_TIME, "sent_at", "more than 24 h ahead of the broker's clock: \"%s\"",
                    quote(c, o));
    c->sent_at = ns;
    return RK_V_OK;
}

static enum rk_verr check_resource(struct vctx *c, const struct rk_mp_val *o)
{
    enum rk_verr rc = want_str(c, "resource", o);
    if (rc)
        return rc;
    for (size_t i = 0; i < NRESOURCES; i++)
        if (rk_mp_str_is(o, resources[i].code)) {
            c->resource = (int)i;
            return RK_V_OK;
        }
    return fail(c, RK_V_VOCAB, "resource", "not in the resource vocabulary, got \"%s\"",
                quote(c, o));
}

static enum rk_verr check_unit(struct vctx *c, const struct rk_mp_val *o)
{
    enum rk_verr rc = want_str(c, "unit", o);
    if (rc)
        return rc;
    const char *want = resources[c->resource].unit; /* resource precedes unit in every schema */
    if (!rk_mp_str_is(o, want))
        return fail(c, RK_V_UNIT, "unit", "%s is counted in %s, got \"%s\"",
                    resources[c->resource].code, want, quote(c, o));
    return RK_V_OK;
}

static enum rk_verr check_range(struct vctx *c, const char *field, const struct rk_mp_val *o,
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
    F("lat", K_LOCATION, true), F("lon", K_LOCATION, true), F("place", K_LOCATION, false),
    {0}};

static enum rk_verr check_location(struct vctx *c, const struct rk_mp_val *o)
{
    if (o->kind != RK_MP_MAP)
        return fail(c, RK_V_TYPE, "location", "must be a map {lat, lon, place}, got %s",
                    rk_mp_kind_name(o->kind));
    struct rk_mp_val v[MAX_FIELDS];
    struct rk_mp_reader r = pairs_of(c, o);
    enum rk_verr rc = index_keys(c, "location", &r, o->n, location_fields, v, NULL, NULL);
    if (rc)
        return rc;
    const struct rk_mp_val *lat = present(&v[0]), *lon = present(&v[1]), *place = present(&v[2]);
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
static enum rk_verr check_later_time(struct vctx *c, const char *field, const struct rk_mp_val *o,
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
    F("value", K_POINT, true), F("fy", K_POINT, true), F("fy_from", K_POINT, false),
    F("as_of", K_POINT, false), F("label", K_POINT, false), {0}};

static enum rk_verr check_as_of(struct vctx *c, const char *field, const struct rk_mp_val *o)
{
    enum rk_verr rc = want_str(c, field, o);
    if (rc)
        return rc;
    int ok = o->n == 7 && o->p[4] == '-';
    int year = 0, month = 0;
    for (int i = 0; ok && i < 7; i++) {
        if (i == 4)
            continue;
        ok = o->p[i] >= '0' && o->p[i] <= '9';
        if (i < 4)
            year = year * 10 + (o->p[i] - '0');
        else
            month = month * 10 + (o->p[i] - '0');
    }
    if (!ok || month < 1 || month > 12 || year < 1989 || year > 2101)
        return fail(c, RK_V_TIME, field, "must be a month YYYY-MM (1989..2101), got \"%s\"",
                    quote(c, o));
    return RK_V_OK;
}

/* {value, fy, fy_from?, as_of?, label?}; `field` is baseline, target or current. */
static enum rk_verr check_point_fields(struct vctx *c, const char *field,
                                       const struct rk_mp_val *f)
{
    const struct rk_mp_val *value = present(&f[0]), *fy = present(&f[1]),
                           *from = present(&f[2]), *as_of = present(&f[3]),
                           *label = present(&f[4]);
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

static enum rk_verr check_point(struct vctx *c, const char *field, const struct rk_mp_val *o)
{
    struct rk_mp_val f[MAX_FIELDS];
    if (o->kind != RK_MP_MAP)
        return fail(c, RK_V_TYPE, field, "must be a map {value, fy, ...}, got %s",
                    rk_mp_kind_name(o->kind));
    struct rk_mp_reader r = pairs_of(c, o);
    enum rk_verr rc = index_keys(c, field, &r, o->n, point_fields, f, NULL, NULL);
    if (rc)
        return rc;
    /* Errors inside name their field "baseline.value" and so on. */
    c->parent = field;
    rc = check_point_fields(c, field, f);
    c->parent = NULL;
    return rc;
}

static enum rk_verr check_field(struct vctx *c, const struct field *f, const struct rk_mp_val *o)
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
                                 const struct rk_mp_val *values)
{
    for (int i = 0; list[i].name; i++) {
        enum rk_verr rc;
        if (values[i].kind == RK_MP_NONE) {
            if (list[i].required)
                return fail(c, RK_V_MISSING, list[i].name, "required");
            continue;
        }
        if ((rc = check_field(c, &list[i], &values[i])))
            return rc;
    }
    return RK_V_OK;
}

/* A checked string field into dst; "" for none (`o` NULL). */
static void copy_str(char *dst, size_t cap, const struct rk_mp_val *o)
{
    size_t n = 0;
    if (o && o->kind == RK_MP_STR) {
        n = o->n < cap - 1 ? o->n : cap - 1;
        memcpy(dst, o->p, n);
    }
    dst[n] = '\0';
}

/* env and body: the values of the envelope's and the type's fields. Every
 * schema lists its entity's id (kpi_id or request_id) first. */
static void fill_info(struct rk_event_info *info, enum rk_event_type type,
                      const struct rk_mp_val *env, const struct rk_mp_val *body,
                      const struct vctx *c)
{
    info->type = type;
    copy_str(info->municipality, sizeof info->municipality, &env[2]);
    copy_str(info->event_id, sizeof info->event_id, &env[1]);
    copy_str(info->request_id, sizeof info->request_id,
             type == RK_EV_KPI_UPDATE ? NULL : &body[0]);
    copy_str(info->kpi_id, sizeof info->kpi_id, type == RK_EV_KPI_UPDATE ? &body[0] : NULL);
    info->fiscal_year = (int)c->fiscal_year;
    info->sent_at_ns = c->sent_at;
}

/* The event at r->off, which must end at r->len. Reading and checking are
 * one pass: the caller tells a broken frame from a bad event on failure. */
static enum rk_verr validate_map(struct vctx *c, struct rk_mp_reader *r,
                                 struct rk_event_info *info, rk_event_field_fn *see, void *arg)
{
    struct rk_mp_val root, type_val, env[MAX_FIELDS], body[MAX_FIELDS];
    if (rk_mp_next(r, &root) != 0)
        return fail(c, RK_V_DECODE, "event", "not one complete MessagePack value");
    if (root.kind != RK_MP_MAP)
        return fail(c, RK_V_TYPE, "event", "must be a MessagePack map, got %s",
                    rk_mp_kind_name(root.kind));
    if (lookup(c, &root, "type", &type_val) != 0)
        return fail(c, RK_V_MISSING, "type", "required");
    enum rk_verr rc = want_str(c, "type", &type_val);
    if (rc)
        return rc;
    enum rk_event_type type = rk_event_type_parse(chars(&type_val), type_val.n);
    if (type == RK_EV_NONE)
        return fail(c, RK_V_EVENT_TYPE, "type", "must be kpi.update or aid.request|offer|accept|"
                    "dispatch|fulfil|cancel|withdraw, got \"%s\"",
                    quote(c, &type_val));
    const char *tname = type_names[type];
    const struct field *schema = schemas[type];
    c->prefix = strncmp(tname, "aid.", 4) == 0 ? tname + 4 : tname;
    if ((rc = index_keys(c, "event", r, root.n, envelope, env, schema, body)))
        return rc;
    if (r->off != r->len)
        return fail(c, RK_V_DECODE, "event", "not one complete MessagePack value");
    if ((rc = check_fields(c, envelope, env)) || (rc = check_fields(c, schema, body)))
        return rc;
    fill_info(info, type, env, body, c);
    for (int i = 0; see && schema[i].name; i++)
        if (body[i].kind != RK_MP_NONE && see(info, schema[i].name, &body[i], arg) != 0)
            return fail(c, RK_V_DECODE, "event", "fields not as validation promised");
    return RK_V_OK;
}

enum rk_verr rk_event_validate(const void *buf, size_t len, int64_t now_ns,
                               struct rk_event_info *info, struct rk_verror *err)
{
    return rk_event_validate_fields(buf, len, now_ns, info, err, NULL, NULL);
}

enum rk_verr rk_event_validate_fields(const void *buf, size_t len, int64_t now_ns,
                                      struct rk_event_info *info, struct rk_verror *err,
                                      rk_event_field_fn *see, void *arg)
{
    struct vctx c = {.prefix = "event", .err = err, .now_ns = now_ns, .resource = -1};
    struct rk_mp_reader r = {buf, len, 0};
    struct rk_event_info own;
    if (err) {
        err->code = RK_V_OK;
        err->message[0] = '\0';
    }
    if (len > RK_EVENT_MAX_BYTES)
        return fail(&c, RK_V_TOO_LONG, "event", "must be at most %d bytes, got %zu",
                    RK_EVENT_MAX_BYTES, len);
    if (len == 0)
        return fail(&c, RK_V_DECODE, "event", "empty frame");
    c.end = (const unsigned char *)buf + len;
    enum rk_verr rc = validate_map(&c, &r, info ? info : &own, see, arg);
    /* A frame that is not one value is E_DECODE whatever else is wrong
     * with it. One that validates was read whole, and a valid event nests
     * two levels at most, so only a refusal needs this second look. */
    if (rc != RK_V_OK && !rk_mp_is_one(buf, len)) {
        c.prefix = "event";
        c.parent = NULL;
        rc = fail(&c, RK_V_DECODE, "event",
                  "not one complete MessagePack value (or nested deeper than 16)");
    }
    return rc;
}
