/*
 * rk_aid - the disaster-support (aid.*) lifecycle as a pure state machine.
 *
 * rk_event_validate judges an event on its own (its schema); rk_aid judges it
 * against what came before: who may accept, how much is left to accept, what
 * is in transit. It folds aid events, in the order the broker received them
 * (sequence order, never sent_at), into the state of every request and
 * offer, and refuses an event that breaks a rule of the lifecycle:
 *
 *   request: open --accept--> in_progress --received = quantity--> fulfilled
 *              |  <--accepted offer withdrawn--  |
 *              +--------cancel (nothing in transit)---------------> cancelled
 *   offer:   offered --accept--> accepted --dispatch--> dispatched --all received--> delivered
 *              +------withdraw------+--> withdrawn
 *              (offered ones close when the request is fulfilled or cancelled;
 *               accepted and dispatched ones close too on cancel)
 *
 * The rules are those of the shared data README section 5.2, and where it is
 * silent or differs, those of its oracle tools/aidcheck.py, including the
 * order in which rules are checked (it decides which code an event that
 * breaks two rules gets).
 *
 * Invariants:
 * - rk_aid_apply is all-or-nothing: a refused event changes nothing.
 * - A request's totals are sums over its offers: accepted (a withdrawn offer
 *   counts 0), dispatched, fulfilled (received); in_transit = dispatched -
 *   fulfilled. accepted <= quantity always holds.
 * - fulfilled and cancelled requests are terminal: no later event changes them.
 * - Request, offer and dispatch ids each live in one namespace across all
 *   requests (an offer_id cannot be reused on another request).
 * - Nothing is ever forgotten: memory grows with the number of distinct
 *   requests, offers and dispatches (about 250 bytes each). Look-ups are
 *   hashed, so folding n events costs O(n) except the closing of a request's
 *   still-open offers, which is linear in that request's offers.
 * - Or, with a miss function (rk_aid_set_miss), the struct is a cache of
 *   state kept elsewhere (the broker's LMDB tables): each request is stored
 *   whole (rk_aid_request_encode), brought in on demand (rk_aid_load) and
 *   may all be dropped between batches (rk_aid_clear). Counts and the
 *   "reading" functions then see only what is cached.
 *
 * Caveats:
 * - event_id uniqueness (E_DUPLICATE_ID on event_id) is not checked here: the
 *   broker's idempotency check on producer numbers and event ids owns it.
 * - Deadlines are data only; nothing expires, so deadline is not kept.
 *
 * Thread-safety: none. One owner (the broker's ingest thread, or a replay
 * tool) uses a struct rk_aid at a time. The rk_aid_event_parse and name
 * functions keep no state and may be called from any thread.
 *
 * Memory: allocation failure aborts, as everywhere in renkei, so no function
 * here fails for lack of memory and no apply is left half done.
 */
#ifndef RK_AID_H
#define RK_AID_H

#include "rk_event.h"

#include <stddef.h>
#include <stdint.h>

#define RK_AID_QUANTITY_MAX 10000000 /* as rk_event_validate admits */
#define RK_AID_VERSION_MAX 1000000
#define RK_AID_WORD_MAX 31           /* resource, unit, urgency: vocabulary words */

/* ---- events ------------------------------------------------------------- */

/* data_class of an aid.request. UNSET (absent) matters for an update: the
 * request keeps the class it had, so an update cannot drop "restricted" by
 * omission. A new request without data_class is open. */
enum rk_aid_class {
    RK_AID_CLASS_UNSET = 0,
    RK_AID_CLASS_OPEN,
    RK_AID_CLASS_RESTRICTED,
};

/* The fields of an event that the lifecycle reads. Plain data: fill it with
 * rk_aid_event_parse, or by hand (tests). Strings are NUL-terminated; a field
 * the event's type does not carry is "" (or 0). */
struct rk_aid_event {
    enum rk_event_type type;
    char municipality[7];                   /* the publisher's code */
    char request_id[RK_ID_MAX + 1];
    char offer_id[RK_ID_MAX + 1];           /* all but request and cancel */
    char dispatch_id[RK_ID_MAX + 1];        /* dispatch; optional on fulfil */
    char resource[RK_AID_WORD_MAX + 1];     /* request, offer */
    char unit[RK_AID_WORD_MAX + 1];         /* request, offer */
    char urgency[RK_AID_WORD_MAX + 1];      /* request */
    int64_t quantity;                       /* all but cancel and withdraw */
    int64_t version;                        /* request */
    enum rk_aid_class data_class;           /* request */
};

/* Reads the fields above from one event's MessagePack bytes [buf, buf+len).
 * Any bytes are safe: they are first checked with rk_event_validate (now_ns
 * 0, so old events replay), which costs one more validation of an event the
 * broker validated already, and buys never trusting a declared length.
 * kpi.update events parse too (type RK_EV_KPI_UPDATE, the rest empty).
 * Returns RK_V_OK and fills *out; otherwise the validation code, *out
 * unspecified, and "<E_CODE>: <message>" in `why` (may be NULL; truncated to
 * why_len bytes, NUL-terminated when why_len > 0). */
enum rk_verr rk_aid_event_parse(const void *buf, size_t len, struct rk_aid_event *out,
                                char *why, size_t why_len);

/* rk_event_validate (see there for now_ns, info and err) and the fields
 * above into *out, both read in place: the broker's ingest.
 * info may be NULL. Returns what validation returns; *out is filled only
 * on RK_V_OK. */
enum rk_verr rk_aid_event_validate(const void *buf, size_t len, int64_t now_ns,
                                   struct rk_event_info *info, struct rk_aid_event *out,
                                   struct rk_verror *err);

/* ---- refusals ----------------------------------------------------------- */

/* Why rk_aid_apply refused an event. The names (rk_aid_err_name) are those
 * of the shared README and aidcheck.py, meant for the "err" reply a
 * publisher gets, like rk_verr_name's. */
enum rk_aid_err {
    RK_AID_OK = 0,
    RK_AID_DUPLICATE_REQUEST, /* E_DUPLICATE_REQUEST: version 1 of an existing request */
    RK_AID_VERSION,           /* E_VERSION: new request not v1, or update not current+1 */
    RK_AID_NOT_OWNER,         /* E_NOT_OWNER: only the requester / the offerer may */
    RK_AID_STATE,             /* E_STATE: request or offer is in the wrong state */
    RK_AID_RESOURCE_MISMATCH, /* E_RESOURCE_MISMATCH: resource differs from the request's */
    RK_AID_QUANTITY,          /* E_QUANTITY: more than is left to accept/dispatch/receive */
    RK_AID_UNKNOWN_REQUEST,   /* E_UNKNOWN_REQUEST */
    RK_AID_SELF_OFFER,        /* E_SELF_OFFER: requester offering to itself */
    RK_AID_DUPLICATE_ID,      /* E_DUPLICATE_ID: offer_id or dispatch_id reused */
    RK_AID_UNKNOWN_OFFER,     /* E_UNKNOWN_OFFER: no such offer on this request */
    RK_AID_UNKNOWN_DISPATCH,  /* E_UNKNOWN_DISPATCH: no such dispatch on this offer */
    RK_AID_IN_TRANSIT,        /* E_IN_TRANSIT: cancel while goods are on the way */
    RK_AID_INVALID,           /* E_INVALID: not an aid event (kpi.update), or a field
                               * rk_event_validate would refuse: a caller's bug, not
                               * a lifecycle refusal */
    RK_AID_STORAGE,           /* E_STORAGE: the miss function (rk_aid_set_miss) failed;
                               * not a judgement of the event: nothing changed */
    RK_AID__COUNT
};

struct rk_aid_refusal {
    enum rk_aid_err code;
    const char *field;        /* static: "offer_id", "quantity", ...; "" when OK */
    char message[256];        /* e.g. "offer is accepted, not offered" (no field prefix) */
};

/* "E_STATE" etc.; "OK" for RK_AID_OK, "E_UNKNOWN" out of range. Static. */
const char *rk_aid_err_name(enum rk_aid_err code);

/* ---- the state machine -------------------------------------------------- */

struct rk_aid;

/* A new, empty state (aborts when out of memory). */
struct rk_aid *rk_aid_new(void);

/* Frees everything and sets *ap to NULL; no-op on NULL or *ap NULL. */
void rk_aid_destroy(struct rk_aid **ap);

/* Checks `ev` against the current state. Allowed: applies it and returns
 * RK_AID_OK. Refused: changes nothing and returns the code, also written with
 * the field and a sentence to *why (may be NULL). Every code of enum
 * rk_aid_err but RK_AID__COUNT can come back. Events must come in sequence
 * order; kpi.update and RK_EV_NONE give RK_AID_INVALID. */
enum rk_aid_err rk_aid_apply(struct rk_aid *a, const struct rk_aid_event *ev,
                             struct rk_aid_refusal *why);

/* Batches, for group commit. The broker applies each admitted event of one
 * loop iteration before its LMDB commit; if the commit fails, the events it
 * applied were never stored and must be forgotten:
 *
 *   rk_aid_begin(a);
 *   for each admitted event: rk_aid_apply(a, ev, &why) == RK_AID_OK or refuse it
 *   if (commit succeeded) rk_aid_commit(a); else rk_aid_rollback(a);
 *
 * rk_aid_rollback restores exactly the state rk_aid_begin saw; its cost is
 * proportional to the batch, not to the whole state. rk_aid_commit keeps the
 * batch. Outside a batch, apply keeps no undo record. Calling begin inside a
 * batch, or commit/rollback outside one, is a bug and aborts. */
void rk_aid_begin(struct rk_aid *a);
void rk_aid_commit(struct rk_aid *a);
void rk_aid_rollback(struct rk_aid *a);

/* ---- storage: the state as a cache ------------------------------------- */

/* What an id names, as rk_aid_apply asks for it. The values are the
 * prefixes of the broker's "aid_ids" keys. */
enum rk_aid_id_kind {
    RK_AID_ID_REQUEST = 'R',
    RK_AID_ID_OFFER = 'O',
    RK_AID_ID_DISPATCH = 'D',
};

/* Called by rk_aid_apply, before any rule, for each id the event names that
 * the state does not hold; it may bring in the request the id belongs to
 * with rk_aid_load (the whole request: offers and dispatches come with it).
 * Returns 0, found or not; any other value (rk_err.h) makes rk_aid_apply
 * refuse the event with RK_AID_STORAGE and change nothing. */
typedef int (*rk_aid_miss_fn)(void *arg, struct rk_aid *a, enum rk_aid_id_kind kind,
                              const char *id);
void rk_aid_set_miss(struct rk_aid *a, rk_aid_miss_fn fn, void *arg);

/* Adds a request as rk_aid_request_encode wrote it, with its offers and
 * dispatches. Inside a batch it counts as added by the batch (a rollback
 * drops it, which only empties the cache). Returns 0; RK_EFORMAT when the
 * bytes are not such a request; EEXIST when the state holds the request or
 * one of its ids already (nothing added then). */
int rk_aid_load(struct rk_aid *a, const void *buf, size_t len);

/* The requester of a request stored as rk_aid_request_encode wrote it,
 * read from its first bytes alone (the replay's requester topics look it
 * up per record): 0 with 6 digits and a NUL in `out`, or RK_EFORMAT. */
int rk_aid_stored_requester(const void *buf, size_t len, char out[7]);

/* Writes request `request_id` whole into buf[0..cap) and returns its
 * length; when that exceeds cap, nothing is written, so call again with a
 * larger buffer. 0 when the request is not held. */
size_t rk_aid_request_encode(const struct rk_aid *a, const char *request_id, void *buf,
                             size_t cap);

/* The open batch's changes, to store beside its events: fn is called for
 * each request it added, loaded or changed (kind RK_AID_ID_REQUEST, id =
 * request_id), then for each offer and dispatch it added (their kind and
 * id, and the request_id they belong to). Stops at and returns fn's first
 * non-zero return; 0 otherwise. Order is deterministic: the same events on
 * the same state give the same calls. */
typedef int (*rk_aid_change_fn)(void *arg, enum rk_aid_id_kind kind, const char *id,
                                const char *request_id);
int rk_aid_batch_changes(const struct rk_aid *a, rk_aid_change_fn fn, void *arg);

/* Forgets everything held, outside a batch (inside one it aborts): with a
 * miss function set, the state lives on where it is stored. */
void rk_aid_clear(struct rk_aid *a);

/* ---- reading the state -------------------------------------------------- */

enum rk_aid_state {
    RK_AID_OPEN = 0,          /* "open": nothing accepted */
    RK_AID_IN_PROGRESS,       /* "in_progress": accepted > 0, fulfilled < quantity */
    RK_AID_FULFILLED,         /* "fulfilled": fulfilled = quantity; terminal */
    RK_AID_CANCELLED,         /* "cancelled"; terminal */
    RK_AID__NSTATES
};

enum rk_aid_offer_state {
    RK_AID_OFFERED = 0,       /* "offered" */
    RK_AID_ACCEPTED,          /* "accepted" */
    RK_AID_DISPATCHED,        /* "dispatched": at least one dispatch, not all received */
    RK_AID_DELIVERED,         /* "delivered": all accepted was received */
    RK_AID_WITHDRAWN,         /* "withdrawn" by the offerer */
    RK_AID_CLOSED,            /* "closed" by the request's end */
    RK_AID__NOFFER_STATES
};

/* Static names as in the shared expected JSON; NULL out of range. */
const char *rk_aid_state_name(enum rk_aid_state s);
const char *rk_aid_offer_state_name(enum rk_aid_offer_state s);

/* Copies of one request's state: they stay valid whatever happens to the
 * struct rk_aid afterwards. */
struct rk_aid_request_view {
    char request_id[RK_ID_MAX + 1];
    char requester[7];
    char resource[RK_AID_WORD_MAX + 1];
    char unit[RK_AID_WORD_MAX + 1];
    char urgency[RK_AID_WORD_MAX + 1];        /* of the latest version */
    int restricted;                           /* data_class of the latest version */
    int64_t version, quantity;                /* latest version */
    int64_t accepted, dispatched, fulfilled, in_transit;
    enum rk_aid_state state;
    const char *state_name;                   /* static */
    size_t offers;                            /* number of offers, any state */
};

struct rk_aid_offer_view {
    char offer_id[RK_ID_MAX + 1];
    char offerer[7];
    int64_t quantity;                         /* offered */
    int64_t accepted;                         /* 0 until accepted and after withdrawal */
    int64_t dispatched, fulfilled;
    enum rk_aid_offer_state state;
    const char *state_name;                   /* static */
};

/* Number of requests, and the i-th (0-based) in first-seen order, i.e. the
 * order of their accepted version 1. Returns 0 and fills *out, or -1 when
 * i >= count. Indexes are stable: applying events only appends. */
size_t rk_aid_request_count(const struct rk_aid *a);
int rk_aid_request_at(const struct rk_aid *a, size_t i, struct rk_aid_request_view *out);

/* The request `request_id`: returns its index (for rk_aid_offer_next) and
 * fills *out (may be NULL), or returns -1 when unknown. */
long rk_aid_request_find(const struct rk_aid *a, const char *request_id,
                         struct rk_aid_request_view *out);

/* The offers of request `i` in arrival order. Start with *cursor = 0; each
 * call fills *out and returns 1, or returns 0 after the last (or when i is
 * out of range). Do not apply events between calls with one cursor. */
int rk_aid_offer_next(const struct rk_aid *a, size_t i, size_t *cursor,
                      struct rk_aid_offer_view *out);

/* Number of requests in state `s`; 0 out of range. O(1). */
size_t rk_aid_count(const struct rk_aid *a, enum rk_aid_state s);

#endif
