/*
 * rk_event - validation of renkei events (MessagePack maps), in place.
 *
 * An event is the MessagePack map a publisher sends; the broker stores the
 * received bytes unchanged once they validate. Validation is strict: every
 * field has one MessagePack type, unknown fields are refused, and the whole
 * event is at most RK_EVENT_MAX_BYTES. proto/PROTOCOL.md is the normative
 * description of every field; this header only names the API.
 *
 * Nothing here allocates, logs, or touches a socket: the bytes are read
 * where they lie (rk_mp). All functions are thread-safe.
 */
#ifndef RK_EVENT_H
#define RK_EVENT_H

#include <stddef.h>
#include <stdint.h>

#define RK_EVENT_MAX_BYTES 16384
#define RK_ID_MAX 64

enum rk_event_type {
    RK_EV_NONE = 0,
    RK_EV_KPI_UPDATE,
    RK_EV_AID_REQUEST,
    RK_EV_AID_OFFER,
    RK_EV_AID_ACCEPT,
    RK_EV_AID_DISPATCH,
    RK_EV_AID_FULFIL,
    RK_EV_AID_CANCEL,
    RK_EV_AID_WITHDRAW,
};

/* Validation error codes. The names (rk_verr_name) are part of the wire
 * protocol: a client receives them in an "err" reply. */
enum rk_verr {
    RK_V_OK = 0,
    RK_V_DECODE,            /* E_DECODE: not one complete MessagePack value */
    RK_V_TOO_LONG,          /* E_TOO_LONG: event or text field over its limit */
    RK_V_TYPE,              /* E_TYPE: field has the wrong MessagePack type */
    RK_V_MISSING,           /* E_MISSING: required field absent */
    RK_V_UNKNOWN_FIELD,     /* E_UNKNOWN_FIELD: field not in the schema */
    RK_V_EVENT_TYPE,        /* E_EVENT_TYPE: `type` names no event type */
    RK_V_ID,                /* E_ID: identifier syntax */
    RK_V_VOCAB,             /* E_VOCAB: value outside a fixed vocabulary */
    RK_V_UNIT,              /* E_UNIT: unit does not match the resource */
    RK_V_RANGE,             /* E_RANGE: number outside its range */
    RK_V_TEXT,              /* E_TEXT: bad UTF-8, control characters, blank */
    RK_V_TIME,              /* E_TIME: bad RFC 3339 time or time rule */
    RK_V_CODE_FORMAT,       /* E_CODE_FORMAT: municipality not six digits */
    RK_V_CODE_PREFECTURE,   /* E_CODE_PREFECTURE: prefecture not 01..47 */
    RK_V_CHECK_DIGIT,       /* E_CHECK_DIGIT */
    RK_V_UNKNOWN_MUNICIPALITY, /* E_UNKNOWN_MUNICIPALITY */
    RK_V_POLICY_AREA,       /* E_POLICY_AREA: not a KPI taxonomy item */
    RK_V__COUNT
};

/* What the broker needs from a valid event. Strings are NUL-terminated
 * copies, so the struct outlives the buffer it was read from. */
struct rk_event_info {
    enum rk_event_type type;
    char municipality[7];            /* publisher's code */
    char event_id[RK_ID_MAX + 1];
    char request_id[RK_ID_MAX + 1];  /* aid events; "" otherwise */
    char kpi_id[RK_ID_MAX + 1];      /* kpi.update; "" otherwise */
    int fiscal_year;                 /* kpi.update; 0 otherwise */
    int64_t sent_at_ns;              /* publisher's clock, ns since epoch (UTC) */
};

/* Why an event was refused: a code and a message of the form
 * "<type>.<field>: <reason>", e.g. "offer.quantity: must be 1..10000000, got -5".
 * A value or field name of the event quoted in the message ("got \"...\"")
 * is escaped by rk_text (rk_text.h: \\ and \xHH) and cut to 64 bytes
 * between characters, so the message is always valid UTF-8 without
 * control characters or NUL, whatever the event held. */
struct rk_verror {
    enum rk_verr code;
    char message[256];
};

/* Validates the MessagePack bytes [buf, buf+len) as one event.
 * `now_ns` is the receiver's clock (ns since the epoch), used for the
 * "sent_at not more than 24 h ahead" rule; pass 0 to skip that rule.
 * On success returns RK_V_OK and fills *info (may be NULL). On failure
 * returns the code, fills *err (may be NULL) and leaves *info unspecified. */
enum rk_verr rk_event_validate(const void *buf, size_t len, int64_t now_ns,
                               struct rk_event_info *info, struct rk_verror *err);

/* rk_event_validate, and on success also see(info, name, value, arg) for
 * each field of the event's type (not of the envelope) present in it, in
 * the schema's order (proto/PROTOCOL.md): name is the field's name, value
 * points into buf, and info is what validation filled (info may be NULL
 * here too). So a reader of further fields need not read the bytes again.
 * A see() returning nonzero makes the result RK_V_DECODE with the message
 * "<type>.event: fields not as validation promised" (a bug of the reader,
 * not of the event). */
struct rk_mp_val;
typedef int rk_event_field_fn(const struct rk_event_info *info, const char *name,
                              const struct rk_mp_val *value, void *arg);
enum rk_verr rk_event_validate_fields(const void *buf, size_t len, int64_t now_ns,
                                      struct rk_event_info *info, struct rk_verror *err,
                                      rk_event_field_fn *see, void *arg);

/* "kpi.update", "aid.request", ...; NULL for RK_EV_NONE or out of range. */
const char *rk_event_type_name(enum rk_event_type type);

/* The type named by the `len` bytes at `name`, or RK_EV_NONE. */
enum rk_event_type rk_event_type_parse(const char *name, size_t len);

/* "E_RANGE" etc.; "E_UNKNOWN" for a code out of range. Static strings. */
const char *rk_verr_name(enum rk_verr code);

/* The live-feed topic of a valid event, "<type>/<pp>/<mmmmmm>", e.g.
 * "aid.offer/27/271004", written to `out` (at least RK_TOPIC_MAX bytes).
 * Prefix filters on it select by family ("aid."), type ("aid.offer/"),
 * prefecture ("aid.offer/27/") and municipality ("aid.offer/27/271004"). */
#define RK_TOPIC_MAX 40
void rk_event_topic(const struct rk_event_info *info, char *out);

/* An aid event's second topic, its requester topic (PROTOCOL.md 3.3):
 * "<type>/for/<pp>/<mmmmmm>" with the code of the request's requester (the
 * municipality in need), e.g. "aid.offer/for/30/304280" for an offer to a
 * request of 串本町. Written to `out` (at least RK_TOPIC_MAX bytes) for an
 * aid type; "" for kpi.update and unknown types. */
#define RK_TOPIC_FOR "for/"
void rk_event_requester_topic(enum rk_event_type type, const char requester[6], char *out);

/* A set of topic prefixes made ready for matching many events: one that
 * selects an event exactly when its topic, or (aid events) its requester
 * topic, starts with one of the prefixes, without writing either. A type a
 * prefix covers whole is one lookup; otherwise the prefix's part after
 * "<type>/" is compared with the "<pp>/<mmmmmm>" the municipality gives,
 * and its part after "<type>/for/" with the requester's. Plain data: copy
 * it freely. */
#define RK_TOPIC_SET_MAX 16
#define RK_EV__COUNT 9 /* one past the last enum rk_event_type */
struct rk_topic_tail {
    unsigned char len;
    char s[9];
};
struct rk_topic_set {
    int everything;                           /* no prefixes were given */
    unsigned char whole[RK_EV__COUNT];        /* every event of the type */
    unsigned char ntails[RK_EV__COUNT];
    struct rk_topic_tail tails[RK_EV__COUNT][RK_TOPIC_SET_MAX];  /* starts of "<pp>/<mmmmmm>" */
    unsigned char nfor[RK_EV__COUNT];         /* the same, of the requester topic */
    struct rk_topic_tail fors[RK_EV__COUNT][RK_TOPIC_SET_MAX];
    int any_for;                              /* some type has requester tails */
};

/* Fills *set from `n` NUL-terminated prefixes (at most RK_TOPIC_SET_MAX;
 * more are an error). n == 0 selects every event. Returns 0 or -1. */
int rk_topic_set_init(struct rk_topic_set *set, const char *const *prefixes, unsigned n);

/* 1 when the topic of an event of `type` from `municipality` (6 digits,
 * not NUL-terminated) starts with one of the set's prefixes, else 0. An
 * unknown type matches only a set that selects everything. (A prefix
 * ending inside "<type>/for/" selects the whole type here: every stored
 * aid event has a requester topic.) */
int rk_topic_set_match(const struct rk_topic_set *set, enum rk_event_type type,
                       const char municipality[6]);

/* 1 when an aid event of `type` that rk_topic_set_match did not select
 * could be selected by its requester topic: only then is its requester
 * worth looking up. */
int rk_topic_set_wants_requester(const struct rk_topic_set *set, enum rk_event_type type);

/* 1 when the requester topic of an aid event of `type` whose request's
 * requester is `requester` (6 digits, not NUL-terminated) starts with one
 * of the set's prefixes, else 0 (always 0 for kpi.update). */
int rk_topic_set_match_requester(const struct rk_topic_set *set, enum rk_event_type type,
                                 const char requester[6]);

/* The prefectures the set's events can come from, as a mask with bit pp
 * set for prefecture pp (1..47): nonzero when every prefix pins the
 * prefecture, or a digit of it (so "aid.offer/2" gives 20..29); 0 when an
 * event of any prefecture can match (no prefixes, or one that stops at or
 * before a type's "/", or one on a requester topic, whose events come
 * from anywhere). A set that selects nothing at all gives 1 (bit 0, no
 * prefecture). */
uint64_t rk_topic_set_prefectures(const struct rk_topic_set *set);

/* 1 when the `len` bytes at `s` are an id: 1..RK_ID_MAX of A-Z a-z 0-9 . _ : -
 * (event ids, request ids, producer ids); else 0. */
int rk_event_id_valid(const char *s, size_t len);

/* The aid resource vocabulary: number of codes, and the i-th code with its
 * fixed unit in *unit (may be NULL). Static strings; NULL past the end. */
size_t rk_event_resource_count(void);
const char *rk_event_resource_at(size_t i, const char **unit);

#endif
