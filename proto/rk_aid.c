#include "rk_aid.h"
#include "rk_be.h"
#include "rk_err.h"
#include "rk_hash.h"
#include "rk_mp.h"

#include <errno.h>

#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX

static const char *const err_names[RK_AID__COUNT] = {
    [RK_AID_OK] = "OK",
    [RK_AID_DUPLICATE_REQUEST] = "E_DUPLICATE_REQUEST",
    [RK_AID_VERSION] = "E_VERSION",
    [RK_AID_NOT_OWNER] = "E_NOT_OWNER",
    [RK_AID_STATE] = "E_STATE",
    [RK_AID_RESOURCE_MISMATCH] = "E_RESOURCE_MISMATCH",
    [RK_AID_QUANTITY] = "E_QUANTITY",
    [RK_AID_UNKNOWN_REQUEST] = "E_UNKNOWN_REQUEST",
    [RK_AID_SELF_OFFER] = "E_SELF_OFFER",
    [RK_AID_DUPLICATE_ID] = "E_DUPLICATE_ID",
    [RK_AID_UNKNOWN_OFFER] = "E_UNKNOWN_OFFER",
    [RK_AID_UNKNOWN_DISPATCH] = "E_UNKNOWN_DISPATCH",
    [RK_AID_IN_TRANSIT] = "E_IN_TRANSIT",
    [RK_AID_INVALID] = "E_INVALID",
    [RK_AID_STORAGE] = "E_STORAGE",
};

static const char *const state_names[RK_AID__NSTATES] = {
    "open", "in_progress", "fulfilled", "cancelled"};

static const char *const offer_state_names[RK_AID__NOFFER_STATES] = {
    "offered", "accepted", "dispatched", "delivered", "withdrawn", "closed"};

const char *rk_aid_err_name(enum rk_aid_err code)
{
    if ((unsigned)code >= RK_AID__COUNT)
        return "E_UNKNOWN";
    return err_names[code];
}

const char *rk_aid_state_name(enum rk_aid_state s)
{
    return (unsigned)s < RK_AID__NSTATES ? state_names[s] : NULL;
}

const char *rk_aid_offer_state_name(enum rk_aid_offer_state s)
{
    return (unsigned)s < RK_AID__NOFFER_STATES ? offer_state_names[s] : NULL;
}

/* ---- records ------------------------------------------------------------ */

/* Each record starts with its id, which is what the tables below hash.
 * Records refer to each other by index into their table, never by pointer,
 * because the tables move when they grow. */
struct request {
    char id[RK_ID_MAX + 1];
    char requester[7];
    char resource[RK_AID_WORD_MAX + 1];
    char unit[RK_AID_WORD_MAX + 1];
    char urgency[RK_AID_WORD_MAX + 1];
    unsigned char restricted;
    enum rk_aid_state state;
    int64_t version, quantity;
    int64_t accepted, dispatched, fulfilled; /* kept equal to the sums over its offers */
    uint32_t first_offer, last_offer;        /* list through offer.next, arrival order */
    uint32_t n_offers;
    unsigned char dirty;                     /* changed since it was loaded */
};

struct offer {
    char id[RK_ID_MAX + 1];
    char offerer[7];
    enum rk_aid_offer_state state;
    uint32_t request;                        /* index of its request */
    uint32_t next;                           /* next offer of that request, or NONE */
    uint32_t first_dispatch, last_dispatch;  /* list through dispatch.next */
    int64_t quantity, accepted, dispatched, fulfilled;
    unsigned char loaded;                    /* came in with rk_aid_load, not made here */
};

struct dispatch {
    char id[RK_ID_MAX + 1];
    uint32_t offer;                          /* index of its offer */
    uint32_t next;                           /* next dispatch of that offer, or NONE */
    int64_t quantity, fulfilled;             /* fulfilled: receipts that named this dispatch */
    unsigned char loaded;
};

_Static_assert(offsetof(struct request, id) == 0, "tables hash the leading id");
_Static_assert(offsetof(struct offer, id) == 0, "tables hash the leading id");
_Static_assert(offsetof(struct dispatch, id) == 0, "tables hash the leading id");

/* ---- append-only tables with a hash index ------------------------------- */

/* Records live in one array in insertion order (which is the first-seen
 * order the API promises); `slots` is an open-addressing index over them
 * with linear probing, holding record index + 1 (0 = empty). Records are
 * only appended, and removed only from the end (rollback), so no tombstones:
 * the index always equals inserting records 0..n-1 in order, and emptying
 * the slot of the last record restores the index without it exactly. */
struct table {
    unsigned char *items;
    uint64_t *hashes;   /* of each record's id: growing the index reads these, not the records */
    size_t size;        /* bytes per record */
    size_t n, cap;      /* records used, allocated */
    struct slot *slots;
    size_t nslots;      /* a power of two, at least twice n */
};

/* One index slot: the record's index + 1 (0 = empty), and the high half of
 * its id's hash, so that a probe reads the record (a cache miss, in a large
 * table) only when the hashes agree. */
struct slot {
    uint32_t ref;
    uint32_t tag;
};

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p)
        abort();
    return p;
}

static void table_init(struct table *t, size_t size)
{
    memset(t, 0, sizeof *t);
    t->size = size;
    t->nslots = 64;
    t->slots = xcalloc(t->nslots, sizeof *t->slots);
}

static void table_free(struct table *t)
{
    free(t->items);
    free(t->hashes);
    free(t->slots);
    memset(t, 0, sizeof *t);
}

static void *table_at(const struct table *t, uint32_t i)
{
    return t->items + (size_t)i * t->size;
}

/* The slot holding `id` (whose hash is `h`), or the empty slot where it
 * would go. */
static size_t table_slot(const struct table *t, const char *id, uint64_t h)
{
    size_t mask = t->nslots - 1, s = (size_t)h & mask;
    uint32_t tag = (uint32_t)(h >> 32);
    while (t->slots[s].ref &&
           (t->slots[s].tag != tag || strcmp(table_at(t, t->slots[s].ref - 1), id) != 0))
        s = (s + 1) & mask;
    return s;
}

static void table_set(struct table *t, const char *id, uint64_t h, uint32_t ref)
{
    t->slots[table_slot(t, id, h)] = (struct slot){ref, ref ? (uint32_t)(h >> 32) : 0};
}

static uint32_t table_find(const struct table *t, const char *id)
{
    uint32_t v = t->slots[table_slot(t, id, rk_hash_str(id))].ref;
    return v ? v - 1 : NONE;
}

/* Inserts the records again in their order, which keeps the invariant
 * of struct table. Their ids are distinct: each goes to the first empty
 * slot, and no record is read. */
static void table_grow_index(struct table *t)
{
    free(t->slots);
    t->nslots *= 2;
    t->slots = xcalloc(t->nslots, sizeof *t->slots);
    size_t mask = t->nslots - 1;
    for (uint32_t i = 0; i < t->n; i++) {
        size_t s = (size_t)t->hashes[i] & mask;
        while (t->slots[s].ref)
            s = (s + 1) & mask;
        t->slots[s] = (struct slot){i + 1, (uint32_t)(t->hashes[i] >> 32)};
    }
}

/* Appends a zeroed record with id `id` (known to be absent); returns its index. */
static uint32_t table_add(struct table *t, const char *id)
{
    if (t->n >= NONE - 1)
        abort(); /* 4 billion records: far beyond any disaster */
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        unsigned char *p = realloc(t->items, cap * t->size);
        uint64_t *h = p ? realloc(t->hashes, cap * sizeof *h) : NULL;
        if (!h)
            abort();
        t->items = p;
        t->hashes = h;
        t->cap = cap;
    }
    if (2 * (t->n + 1) > t->nslots)
        table_grow_index(t);
    uint32_t i = (uint32_t)t->n++;
    char *rec = table_at(t, i);
    memset(rec, 0, t->size);
    snprintf(rec, RK_ID_MAX + 1, "%s", id);
    t->hashes[i] = rk_hash_str(rec);
    table_set(t, rec, t->hashes[i], i + 1);
    return i;
}

/* Drops the records from index n on, last first (see struct table). */
static void table_truncate(struct table *t, size_t n)
{
    while (t->n > n) {
        t->n--;
        table_set(t, table_at(t, (uint32_t)t->n), t->hashes[t->n], 0);
    }
}

/* ---- the state ---------------------------------------------------------- */

/* A record's content before a batch first changed it. */
struct undo {
    enum { UNDO_REQUEST, UNDO_OFFER, UNDO_DISPATCH } kind;
    uint32_t index;
    union {
        struct request request;
        struct offer offer;
        struct dispatch dispatch;
    } old;
};

struct rk_aid {
    struct table requests, offers, dispatches;
    size_t by_state[RK_AID__NSTATES];

    /* Batch (rk_aid_begin): table sizes and counts at begin, and old copies
     * of the records that existed then and were changed since. Records added
     * during the batch need no copy: rollback truncates them away. */
    int in_batch;
    size_t mark_requests, mark_offers, mark_dispatches;
    size_t mark_by_state[RK_AID__NSTATES];
    struct undo *undo;
    size_t n_undo, cap_undo;

    rk_aid_miss_fn miss;    /* NULL: the struct holds the whole state */
    void *miss_arg;
};

struct rk_aid *rk_aid_new(void)
{
    struct rk_aid *a = xcalloc(1, sizeof *a);
    table_init(&a->requests, sizeof(struct request));
    table_init(&a->offers, sizeof(struct offer));
    table_init(&a->dispatches, sizeof(struct dispatch));
    return a;
}

void rk_aid_destroy(struct rk_aid **ap)
{
    if (!ap || !*ap)
        return;
    struct rk_aid *a = *ap;
    table_free(&a->requests);
    table_free(&a->offers);
    table_free(&a->dispatches);
    free(a->undo);
    free(a);
    *ap = NULL;
}

static struct request *req_at(const struct rk_aid *a, uint32_t i)
{
    return table_at(&a->requests, i);
}

static struct offer *offer_at(const struct rk_aid *a, uint32_t i)
{
    return table_at(&a->offers, i);
}

static struct dispatch *dispatch_at(const struct rk_aid *a, uint32_t i)
{
    return table_at(&a->dispatches, i);
}

static struct undo *undo_push(struct rk_aid *a, int kind, uint32_t index)
{
    if (a->n_undo == a->cap_undo) {
        size_t cap = a->cap_undo ? a->cap_undo * 2 : 32;
        struct undo *p = realloc(a->undo, cap * sizeof *p);
        if (!p)
            abort();
        a->undo = p;
        a->cap_undo = cap;
    }
    struct undo *u = &a->undo[a->n_undo++];
    u->kind = kind;
    u->index = index;
    return u;
}

/* Every change to an existing record goes through these, so that a batch
 * can be undone. A record may be saved more than once; rollback restores
 * last-saved first, so the oldest copy wins. */
static struct request *touch_request(struct rk_aid *a, uint32_t i)
{
    if (a->in_batch && i < a->mark_requests)
        undo_push(a, UNDO_REQUEST, i)->old.request = *req_at(a, i);
    req_at(a, i)->dirty = 1;
    return req_at(a, i);
}

static struct offer *touch_offer(struct rk_aid *a, uint32_t i)
{
    if (a->in_batch && i < a->mark_offers)
        undo_push(a, UNDO_OFFER, i)->old.offer = *offer_at(a, i);
    return offer_at(a, i);
}

static struct dispatch *touch_dispatch(struct rk_aid *a, uint32_t i)
{
    if (a->in_batch && i < a->mark_dispatches)
        undo_push(a, UNDO_DISPATCH, i)->old.dispatch = *dispatch_at(a, i);
    return dispatch_at(a, i);
}

void rk_aid_begin(struct rk_aid *a)
{
    if (a->in_batch)
        abort();
    a->in_batch = 1;
    a->n_undo = 0;
    a->mark_requests = a->requests.n;
    a->mark_offers = a->offers.n;
    a->mark_dispatches = a->dispatches.n;
    memcpy(a->mark_by_state, a->by_state, sizeof a->by_state);
}

void rk_aid_commit(struct rk_aid *a)
{
    if (!a->in_batch)
        abort();
    a->in_batch = 0;
    a->n_undo = 0;
}

void rk_aid_rollback(struct rk_aid *a)
{
    if (!a->in_batch)
        abort();
    while (a->n_undo > 0) {
        const struct undo *u = &a->undo[--a->n_undo];
        if (u->kind == UNDO_REQUEST)
            *req_at(a, u->index) = u->old.request;
        else if (u->kind == UNDO_OFFER)
            *offer_at(a, u->index) = u->old.offer;
        else
            *dispatch_at(a, u->index) = u->old.dispatch;
    }
    table_truncate(&a->dispatches, a->mark_dispatches);
    table_truncate(&a->offers, a->mark_offers);
    table_truncate(&a->requests, a->mark_requests);
    memcpy(a->by_state, a->mark_by_state, sizeof a->by_state);
    a->in_batch = 0;
}

/* ---- lifecycle rules ---------------------------------------------------- */

static enum rk_aid_err refuse(struct rk_aid_refusal *why, enum rk_aid_err code,
                              const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static enum rk_aid_err refuse(struct rk_aid_refusal *why, enum rk_aid_err code,
                              const char *field, const char *fmt, ...)
{
    if (why) {
        va_list ap;
        va_start(ap, fmt);
        why->code = code;
        why->field = field;
        vsnprintf(why->message, sizeof why->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

static int is_terminal(enum rk_aid_state s)
{
    return s == RK_AID_FULFILLED || s == RK_AID_CANCELLED;
}

static void set_state(struct rk_aid *a, struct request *r, enum rk_aid_state s)
{
    a->by_state[r->state]--;
    a->by_state[s]++;
    r->state = s;
}

/* Offers in one of `mask`'s states (bits 1 << state) become closed. */
static void close_offers(struct rk_aid *a, const struct request *r, unsigned mask)
{
    for (uint32_t i = r->first_offer; i != NONE; i = offer_at(a, i)->next)
        if (mask & (1u << offer_at(a, i)->state))
            touch_offer(a, i)->state = RK_AID_CLOSED;
}

/* The request's state follows from its totals once they changed. Its
 * offers still on the table close when it is fulfilled. */
static void settle(struct rk_aid *a, uint32_t ri)
{
    struct request *r = touch_request(a, ri);
    if (r->state == RK_AID_CANCELLED)
        return;
    if (r->fulfilled >= r->quantity) {
        set_state(a, r, RK_AID_FULFILLED);
        close_offers(a, r, 1u << RK_AID_OFFERED);
    } else {
        set_state(a, r, r->accepted > 0 ? RK_AID_IN_PROGRESS : RK_AID_OPEN);
    }
}

static enum rk_aid_err on_request_new(struct rk_aid *a, const struct rk_aid_event *ev,
                                   struct rk_aid_refusal *why)
{
    if (ev->version != 1)
        return refuse(why, RK_AID_VERSION, "version",
                      "a new request must have version 1, got %lld", (long long)ev->version);
    struct request *r = req_at(a, table_add(&a->requests, ev->request_id));
    memcpy(r->requester, ev->municipality, sizeof r->requester);
    memcpy(r->resource, ev->resource, sizeof r->resource);
    memcpy(r->unit, ev->unit, sizeof r->unit);
    memcpy(r->urgency, ev->urgency, sizeof r->urgency);
    r->restricted = ev->data_class == RK_AID_CLASS_RESTRICTED;
    r->version = 1;
    r->quantity = ev->quantity;
    r->state = RK_AID_OPEN;
    r->first_offer = r->last_offer = NONE;
    r->dirty = 1;
    a->by_state[RK_AID_OPEN]++;
    return RK_AID_OK;
}

static enum rk_aid_err on_request_update(struct rk_aid *a, uint32_t ri,
                                      const struct rk_aid_event *ev, struct rk_aid_refusal *why)
{
    const struct request *r = req_at(a, ri);
    if (strcmp(ev->municipality, r->requester) != 0)
        return refuse(why, RK_AID_NOT_OWNER, "municipality", "request %s belongs to %s",
                      r->id, r->requester);
    if (ev->version == 1)
        return refuse(why, RK_AID_DUPLICATE_REQUEST, "request_id",
                      "%s already exists (an update needs version %lld)", r->id,
                      (long long)r->version + 1);
    if (ev->version != r->version + 1)
        return refuse(why, RK_AID_VERSION, "version", "expected %lld, got %lld",
                      (long long)r->version + 1, (long long)ev->version);
    if (is_terminal(r->state))
        return refuse(why, RK_AID_STATE, "request_id",
                      "request is %s; it can no longer be updated", state_names[r->state]);
    if (strcmp(ev->resource, r->resource) != 0)
        return refuse(why, RK_AID_RESOURCE_MISMATCH, "resource",
                      "an update cannot change the resource (%s)", r->resource);
    if (ev->quantity < r->accepted)
        return refuse(why, RK_AID_QUANTITY, "quantity", "cannot go below the %lld already accepted",
                      (long long)r->accepted);
    struct request *w = touch_request(a, ri);
    w->version = ev->version;
    w->quantity = ev->quantity;
    memcpy(w->urgency, ev->urgency, sizeof w->urgency);
    if (ev->data_class != RK_AID_CLASS_UNSET)
        w->restricted = ev->data_class == RK_AID_CLASS_RESTRICTED;
    settle(a, ri); /* a lower quantity can complete the request */
    return RK_AID_OK;
}

static enum rk_aid_err on_offer(struct rk_aid *a, uint32_t ri, const struct rk_aid_event *ev,
                                 struct rk_aid_refusal *why)
{
    const struct request *r = req_at(a, ri);
    if (is_terminal(r->state))
        return refuse(why, RK_AID_STATE, "request_id", "request is %s; offers are closed",
                      state_names[r->state]);
    if (strcmp(ev->municipality, r->requester) == 0)
        return refuse(why, RK_AID_SELF_OFFER, "municipality",
                      "a requester cannot offer to its own request");
    if (table_find(&a->offers, ev->offer_id) != NONE)
        return refuse(why, RK_AID_DUPLICATE_ID, "offer_id", "%s already exists", ev->offer_id);
    if (strcmp(ev->resource, r->resource) != 0)
        return refuse(why, RK_AID_RESOURCE_MISMATCH, "resource", "request %s is for %s", r->id,
                      r->resource);
    uint32_t oi = table_add(&a->offers, ev->offer_id);
    struct offer *o = offer_at(a, oi);
    memcpy(o->offerer, ev->municipality, sizeof o->offerer);
    o->state = RK_AID_OFFERED;
    o->request = ri;
    o->next = NONE;
    o->first_dispatch = o->last_dispatch = NONE;
    o->quantity = ev->quantity;
    struct request *w = touch_request(a, ri);
    if (w->last_offer == NONE)
        w->first_offer = oi;
    else
        touch_offer(a, w->last_offer)->next = oi;
    w->last_offer = oi;
    w->n_offers++;
    return RK_AID_OK;
}

static enum rk_aid_err on_cancel(struct rk_aid *a, uint32_t ri, const struct rk_aid_event *ev,
                              struct rk_aid_refusal *why)
{
    const struct request *r = req_at(a, ri);
    if (strcmp(ev->municipality, r->requester) != 0)
        return refuse(why, RK_AID_NOT_OWNER, "municipality", "only the requester %s may cancel",
                      r->requester);
    if (is_terminal(r->state))
        return refuse(why, RK_AID_STATE, "request_id", "request is already %s",
                      state_names[r->state]);
    if (r->dispatched > r->fulfilled)
        return refuse(why, RK_AID_IN_TRANSIT, "request_id",
                      "%lld %s dispatched but not yet received; confirm receipt first",
                      (long long)(r->dispatched - r->fulfilled), r->unit);
    struct request *w = touch_request(a, ri);
    set_state(a, w, RK_AID_CANCELLED);
    /* nothing is in transit, so a dispatched offer has all it carried received */
    close_offers(a, w, 1u << RK_AID_OFFERED | 1u << RK_AID_ACCEPTED | 1u << RK_AID_DISPATCHED);
    return RK_AID_OK;
}

static enum rk_aid_err on_accept(struct rk_aid *a, uint32_t ri, uint32_t oi,
                              const struct rk_aid_event *ev, struct rk_aid_refusal *why)
{
    const struct request *r = req_at(a, ri);
    const struct offer *o = offer_at(a, oi);
    if (strcmp(ev->municipality, r->requester) != 0)
        return refuse(why, RK_AID_NOT_OWNER, "municipality", "only the requester %s may accept",
                      r->requester);
    if (is_terminal(r->state))
        return refuse(why, RK_AID_STATE, "request_id", "request is %s", state_names[r->state]);
    if (o->state != RK_AID_OFFERED)
        return refuse(why, RK_AID_STATE, "offer_id", "offer is %s, not offered",
                      offer_state_names[o->state]);
    if (ev->quantity > o->quantity)
        return refuse(why, RK_AID_QUANTITY, "quantity", "accepts %lld but the offer is %lld",
                      (long long)ev->quantity, (long long)o->quantity);
    int64_t room = r->quantity - r->accepted;
    if (ev->quantity > room)
        return refuse(why, RK_AID_QUANTITY, "quantity",
                      "accepts %lld but only %lld of the request is not yet accepted",
                      (long long)ev->quantity, (long long)room);
    struct offer *wo = touch_offer(a, oi);
    wo->accepted = ev->quantity;
    wo->state = RK_AID_ACCEPTED;
    touch_request(a, ri)->accepted += ev->quantity;
    settle(a, ri);
    return RK_AID_OK;
}

static enum rk_aid_err on_withdraw(struct rk_aid *a, uint32_t ri, uint32_t oi,
                                const struct rk_aid_event *ev, struct rk_aid_refusal *why)
{
    const struct offer *o = offer_at(a, oi);
    if (strcmp(ev->municipality, o->offerer) != 0)
        return refuse(why, RK_AID_NOT_OWNER, "municipality", "only the offerer %s may withdraw",
                      o->offerer);
    if (o->state != RK_AID_OFFERED && o->state != RK_AID_ACCEPTED)
        return refuse(why, RK_AID_STATE, "offer_id", "offer is %s; it can no longer be withdrawn",
                      offer_state_names[o->state]);
    struct offer *wo = touch_offer(a, oi);
    touch_request(a, ri)->accepted -= wo->accepted; /* frees what it had taken */
    wo->accepted = 0;
    wo->state = RK_AID_WITHDRAWN;
    settle(a, ri);
    return RK_AID_OK;
}

static enum rk_aid_err on_dispatch(struct rk_aid *a, uint32_t ri, uint32_t oi,
                                const struct rk_aid_event *ev, struct rk_aid_refusal *why)
{
    const struct request *r = req_at(a, ri);
    const struct offer *o = offer_at(a, oi);
    if (strcmp(ev->municipality, o->offerer) != 0)
        return refuse(why, RK_AID_NOT_OWNER, "municipality", "only the offerer %s may dispatch",
                      o->offerer);
    if (is_terminal(r->state))
        return refuse(why, RK_AID_STATE, "request_id", "request is %s", state_names[r->state]);
    if (o->state != RK_AID_ACCEPTED && o->state != RK_AID_DISPATCHED)
        return refuse(why, RK_AID_STATE, "offer_id",
                      "offer is %s; only an accepted offer can be dispatched",
                      offer_state_names[o->state]);
    if (table_find(&a->dispatches, ev->dispatch_id) != NONE)
        return refuse(why, RK_AID_DUPLICATE_ID, "dispatch_id", "%s already exists",
                      ev->dispatch_id);
    if (o->dispatched + ev->quantity > o->accepted)
        return refuse(why, RK_AID_QUANTITY, "quantity",
                      "would dispatch %lld in all, but %lld was accepted",
                      (long long)(o->dispatched + ev->quantity), (long long)o->accepted);
    uint32_t di = table_add(&a->dispatches, ev->dispatch_id);
    struct dispatch *d = dispatch_at(a, di);
    d->offer = oi;
    d->next = NONE;
    d->quantity = ev->quantity;
    struct offer *wo = touch_offer(a, oi);
    if (wo->last_dispatch == NONE)
        wo->first_dispatch = di;
    else
        touch_dispatch(a, wo->last_dispatch)->next = di;
    wo->last_dispatch = di;
    wo->dispatched += ev->quantity;
    wo->state = RK_AID_DISPATCHED;
    touch_request(a, ri)->dispatched += ev->quantity;
    settle(a, ri);
    return RK_AID_OK;
}

/* The receipt is checked against the shipment it names, when it names one,
 * and always against the offer: receipts without a dispatch_id count only
 * towards the offer. */
static enum rk_aid_err on_fulfil(struct rk_aid *a, uint32_t ri, uint32_t oi,
                              const struct rk_aid_event *ev, struct rk_aid_refusal *why)
{
    const struct request *r = req_at(a, ri);
    const struct offer *o = offer_at(a, oi);
    int64_t q = ev->quantity;
    if (strcmp(ev->municipality, r->requester) != 0)
        return refuse(why, RK_AID_NOT_OWNER, "municipality",
                      "only the requester %s confirms receipt", r->requester);
    if (o->dispatched == 0)
        return refuse(why, RK_AID_STATE, "offer_id", "nothing has been dispatched on offer %s",
                      o->id);
    uint32_t di = NONE;
    if (ev->dispatch_id[0]) {
        di = table_find(&a->dispatches, ev->dispatch_id);
        if (di == NONE || dispatch_at(a, di)->offer != oi)
            return refuse(why, RK_AID_UNKNOWN_DISPATCH, "dispatch_id", "no dispatch %s on offer %s",
                          ev->dispatch_id, o->id);
        const struct dispatch *d = dispatch_at(a, di);
        if (d->fulfilled + q > d->quantity)
            return refuse(why, RK_AID_QUANTITY, "quantity",
                          "would confirm %lld in all for %s, but it carried %lld",
                          (long long)(d->fulfilled + q), d->id, (long long)d->quantity);
    }
    if (o->fulfilled + q > o->dispatched)
        return refuse(why, RK_AID_QUANTITY, "quantity",
                      "would confirm %lld in all, but %lld was dispatched",
                      (long long)(o->fulfilled + q), (long long)o->dispatched);
    if (di != NONE)
        touch_dispatch(a, di)->fulfilled += q;
    struct offer *wo = touch_offer(a, oi);
    wo->fulfilled += q;
    if (wo->fulfilled == wo->accepted)
        wo->state = RK_AID_DELIVERED;
    touch_request(a, ri)->fulfilled += q;
    settle(a, ri);
    return RK_AID_OK;
}

/* accept, withdraw, dispatch, fulfil: all about one offer of this request. */
static enum rk_aid_err on_offer_event(struct rk_aid *a, uint32_t ri, const struct rk_aid_event *ev,
                                   struct rk_aid_refusal *why)
{
    uint32_t oi = table_find(&a->offers, ev->offer_id);
    if (oi == NONE)
        return refuse(why, RK_AID_UNKNOWN_OFFER, "offer_id", "no offer %s", ev->offer_id);
    if (offer_at(a, oi)->request != ri)
        return refuse(why, RK_AID_UNKNOWN_OFFER, "offer_id", "offer %s belongs to request %s",
                      ev->offer_id, req_at(a, offer_at(a, oi)->request)->id);
    switch (ev->type) {
    case RK_EV_AID_ACCEPT: return on_accept(a, ri, oi, ev, why);
    case RK_EV_AID_WITHDRAW: return on_withdraw(a, ri, oi, ev, why);
    case RK_EV_AID_DISPATCH: return on_dispatch(a, ri, oi, ev, why);
    default: return on_fulfil(a, ri, oi, ev, why);
    }
}

/* ---- the guard against structs rk_event_validate would not produce ------ */

static int str_ok(const char *s, size_t cap, int required)
{
    size_t n = strnlen(s, cap);
    return n < cap && (n > 0 || !required);
}

/* Why `ev` is not an aid event as validation admits it, or NULL. The
 * lifecycle's arithmetic relies on these bounds (no overflow). */
static const char *invalid(const struct rk_aid_event *ev)
{
    enum rk_event_type t = ev->type;
    if (t < RK_EV_AID_REQUEST || t > RK_EV_AID_WITHDRAW)
        return "not an aid event";
    int has_qty = t != RK_EV_AID_CANCEL && t != RK_EV_AID_WITHDRAW;
    int has_offer = t != RK_EV_AID_REQUEST && t != RK_EV_AID_CANCEL;
    if (!str_ok(ev->municipality, sizeof ev->municipality, 1) || strlen(ev->municipality) != 6)
        return "municipality must be 6 characters";
    if (!str_ok(ev->request_id, sizeof ev->request_id, 1))
        return "request_id must be 1..64 characters";
    if (!str_ok(ev->offer_id, sizeof ev->offer_id, has_offer))
        return "offer_id must be 1..64 characters";
    if (!str_ok(ev->dispatch_id, sizeof ev->dispatch_id, t == RK_EV_AID_DISPATCH))
        return "dispatch_id must be 1..64 characters";
    if (!str_ok(ev->resource, sizeof ev->resource, 0) || !str_ok(ev->unit, sizeof ev->unit, 0) ||
        !str_ok(ev->urgency, sizeof ev->urgency, 0))
        return "resource, unit and urgency must be NUL-terminated";
    if (has_qty && (ev->quantity < 1 || ev->quantity > RK_AID_QUANTITY_MAX))
        return "quantity must be 1..10000000";
    if (t == RK_EV_AID_REQUEST && (ev->version < 1 || ev->version > RK_AID_VERSION_MAX))
        return "version must be 1..1000000";
    return NULL;
}

/* Asks the miss function for every id the event names and the state lacks,
 * so that the rules see the stored state and only it. */
static int bring_in(struct rk_aid *a, const struct rk_aid_event *ev)
{
    int rc = 0;
    if (table_find(&a->requests, ev->request_id) == NONE)
        rc = a->miss(a->miss_arg, a, RK_AID_ID_REQUEST, ev->request_id);
    if (!rc && ev->offer_id[0] && table_find(&a->offers, ev->offer_id) == NONE)
        rc = a->miss(a->miss_arg, a, RK_AID_ID_OFFER, ev->offer_id);
    if (!rc && ev->dispatch_id[0] && table_find(&a->dispatches, ev->dispatch_id) == NONE)
        rc = a->miss(a->miss_arg, a, RK_AID_ID_DISPATCH, ev->dispatch_id);
    return rc;
}

enum rk_aid_err rk_aid_apply(struct rk_aid *a, const struct rk_aid_event *ev,
                             struct rk_aid_refusal *why)
{
    if (why) {
        why->code = RK_AID_OK;
        why->field = "";
        why->message[0] = '\0';
    }
    const char *bad = invalid(ev);
    if (bad)
        return refuse(why, RK_AID_INVALID, "event", "%s", bad);
    if (a->miss && bring_in(a, ev) != 0)
        return refuse(why, RK_AID_STORAGE, "event", "the stored state could not be read");
    uint32_t ri = table_find(&a->requests, ev->request_id);
    if (ev->type == RK_EV_AID_REQUEST)
        return ri == NONE ? on_request_new(a, ev, why) : on_request_update(a, ri, ev, why);
    if (ri == NONE)
        return refuse(why, RK_AID_UNKNOWN_REQUEST, "request_id", "no request %s", ev->request_id);
    if (ev->type == RK_EV_AID_OFFER)
        return on_offer(a, ri, ev, why);
    if (ev->type == RK_EV_AID_CANCEL)
        return on_cancel(a, ri, ev, why);
    return on_offer_event(a, ri, ev, why);
}

/* ---- storage ------------------------------------------------------------ */

#define STORE_FORMAT 1

void rk_aid_set_miss(struct rk_aid *a, rk_aid_miss_fn fn, void *arg)
{
    a->miss = fn;
    a->miss_arg = arg;
}

void rk_aid_clear(struct rk_aid *a)
{
    if (a->in_batch)
        abort();
    table_truncate(&a->dispatches, 0);
    table_truncate(&a->offers, 0);
    table_truncate(&a->requests, 0);
    memset(a->by_state, 0, sizeof a->by_state);
}

/* Writes into buf while it has room and counts every byte regardless, so
 * that one pass tells the caller the length it needs. */
struct enc {
    unsigned char *buf;
    size_t cap, n;
};

static void enc_bytes(struct enc *e, const void *p, size_t n)
{
    if (e->n + n <= e->cap)
        memcpy(e->buf + e->n, p, n);
    e->n += n;
}

static void enc_int(struct enc *e, uint64_t v, int width)
{
    unsigned char b[8];
    rk_be_put(b, v, width);
    enc_bytes(e, b, (size_t)width);
}

static void enc_str(struct enc *e, const char *s)
{
    size_t n = strlen(s);
    enc_int(e, n, 1);
    enc_bytes(e, s, n);
}

static void enc_dispatch(struct enc *e, const struct dispatch *d)
{
    enc_str(e, d->id);
    enc_int(e, (uint64_t)d->quantity, 8);
    enc_int(e, (uint64_t)d->fulfilled, 8);
}

static void enc_offer(struct enc *e, const struct rk_aid *a, const struct offer *o)
{
    uint32_t n = 0;
    enc_str(e, o->id);
    enc_str(e, o->offerer);
    enc_int(e, o->state, 1);
    enc_int(e, (uint64_t)o->quantity, 8);
    enc_int(e, (uint64_t)o->accepted, 8);
    enc_int(e, (uint64_t)o->dispatched, 8);
    enc_int(e, (uint64_t)o->fulfilled, 8);
    for (uint32_t i = o->first_dispatch; i != NONE; i = dispatch_at(a, i)->next)
        n++;
    enc_int(e, n, 4);
    for (uint32_t i = o->first_dispatch; i != NONE; i = dispatch_at(a, i)->next)
        enc_dispatch(e, dispatch_at(a, i));
}

size_t rk_aid_request_encode(const struct rk_aid *a, const char *request_id, void *buf,
                             size_t cap)
{
    uint32_t ri = table_find(&a->requests, request_id);
    if (ri == NONE)
        return 0;
    const struct request *r = req_at(a, ri);
    struct enc e = {buf, cap, 0};
    enc_int(&e, STORE_FORMAT, 1);
    enc_str(&e, r->id);
    enc_str(&e, r->requester);
    enc_str(&e, r->resource);
    enc_str(&e, r->unit);
    enc_str(&e, r->urgency);
    enc_int(&e, r->restricted, 1);
    enc_int(&e, r->state, 1);
    enc_int(&e, (uint64_t)r->version, 8);
    enc_int(&e, (uint64_t)r->quantity, 8);
    enc_int(&e, (uint64_t)r->accepted, 8);
    enc_int(&e, (uint64_t)r->dispatched, 8);
    enc_int(&e, (uint64_t)r->fulfilled, 8);
    enc_int(&e, r->n_offers, 4);
    for (uint32_t i = r->first_offer; i != NONE; i = offer_at(a, i)->next)
        enc_offer(&e, a, offer_at(a, i));
    if (e.n > cap && cap > 0)
        memset(buf, 0, cap < e.n ? cap : e.n); /* nothing half written */
    return e.n;
}

/* Reads what enc_* wrote; any short or out-of-range field sets `bad`. */
struct dec {
    const unsigned char *p;
    size_t n, at;
    int bad;
};

static uint64_t dec_int(struct dec *d, int width)
{
    if (d->bad || d->n - d->at < (size_t)width) {
        d->bad = 1;
        return 0;
    }
    uint64_t v = rk_be_get(d->p + d->at, width);
    d->at += (size_t)width;
    return v;
}

static int64_t dec_amount(struct dec *d)
{
    uint64_t v = dec_int(d, 8);
    if (v > RK_AID_QUANTITY_MAX * 2ull) /* totals are sums of bounded quantities */
        d->bad = 1;
    return (int64_t)v;
}

static void dec_str(struct dec *d, char *dst, size_t cap)
{
    size_t n = (size_t)dec_int(d, 1);
    if (d->bad || n >= cap || d->n - d->at < n || memchr(d->p + d->at, '\0', n)) {
        d->bad = 1;
        dst[0] = '\0';
        return;
    }
    memcpy(dst, d->p + d->at, n);
    dst[n] = '\0';
    d->at += n;
}

static unsigned dec_enum(struct dec *d, unsigned count)
{
    unsigned v = (unsigned)dec_int(d, 1);
    if (v >= count)
        d->bad = 1;
    return v;
}

/* Adds the id read next to table t unless the state holds it. */
static uint32_t dec_add(struct dec *d, struct table *t)
{
    char id[RK_ID_MAX + 1];
    dec_str(d, id, sizeof id);
    if (d->bad || !id[0] || table_find(t, id) != NONE) {
        d->bad = d->bad ? d->bad : 2;
        return NONE;
    }
    return table_add(t, id);
}

static void dec_dispatch(struct dec *d, struct rk_aid *a, uint32_t oi)
{
    uint32_t di = dec_add(d, &a->dispatches);
    if (di == NONE)
        return;
    struct dispatch *x = dispatch_at(a, di);
    x->offer = oi;
    x->next = NONE;
    x->loaded = 1;
    x->quantity = dec_amount(d);
    x->fulfilled = dec_amount(d);
    struct offer *o = offer_at(a, oi);
    if (o->last_dispatch == NONE)
        o->first_dispatch = di;
    else
        dispatch_at(a, o->last_dispatch)->next = di;
    o->last_dispatch = di;
}

static void dec_offer(struct dec *d, struct rk_aid *a, uint32_t ri)
{
    uint32_t oi = dec_add(d, &a->offers);
    if (oi == NONE)
        return;
    struct offer *o = offer_at(a, oi);
    dec_str(d, o->offerer, sizeof o->offerer);
    o->state = dec_enum(d, RK_AID__NOFFER_STATES);
    o->request = ri;
    o->next = NONE;
    o->first_dispatch = o->last_dispatch = NONE;
    o->loaded = 1;
    o->quantity = dec_amount(d);
    o->accepted = dec_amount(d);
    o->dispatched = dec_amount(d);
    o->fulfilled = dec_amount(d);
    struct request *r = req_at(a, ri);
    if (r->last_offer == NONE)
        r->first_offer = oi;
    else
        offer_at(a, r->last_offer)->next = oi;
    r->last_offer = oi;
    uint32_t n = (uint32_t)dec_int(d, 4);
    for (uint32_t i = 0; i < n && !d->bad; i++)
        dec_dispatch(d, a, oi);
}

int rk_aid_stored_requester(const void *buf, size_t len, char out[7])
{
    char id[RK_ID_MAX + 1];
    struct dec d = {.p = buf, .n = len};
    if (dec_int(&d, 1) != STORE_FORMAT)
        d.bad = 1;
    dec_str(&d, id, sizeof id);
    dec_str(&d, out, 7);
    if (d.bad || strlen(out) != 6) {
        out[0] = '\0';
        return RK_EFORMAT;
    }
    return 0;
}

static void dec_request(struct dec *d, struct rk_aid *a)
{
    if (dec_int(d, 1) != STORE_FORMAT)
        d->bad = 1;
    uint32_t ri = dec_add(d, &a->requests);
    if (ri == NONE)
        return;
    struct request *r = req_at(a, ri);
    dec_str(d, r->requester, sizeof r->requester);
    dec_str(d, r->resource, sizeof r->resource);
    dec_str(d, r->unit, sizeof r->unit);
    dec_str(d, r->urgency, sizeof r->urgency);
    r->restricted = (unsigned char)(dec_int(d, 1) != 0);
    r->state = dec_enum(d, RK_AID__NSTATES);
    r->version = (int64_t)dec_int(d, 8);
    r->quantity = dec_amount(d);
    r->accepted = dec_amount(d);
    r->dispatched = dec_amount(d);
    r->fulfilled = dec_amount(d);
    r->first_offer = r->last_offer = NONE;
    uint32_t n = (uint32_t)dec_int(d, 4);
    if (r->version < 1 || r->version > RK_AID_VERSION_MAX || n > d->n)
        d->bad = 1;
    for (uint32_t i = 0; i < n && !d->bad; i++)
        dec_offer(d, a, ri);
    r->n_offers = n;
    if (!d->bad && d->at != d->n)
        d->bad = 1;
    if (!d->bad)
        a->by_state[r->state]++;
}

int rk_aid_load(struct rk_aid *a, const void *buf, size_t len)
{
    struct dec d = {buf, len, 0, 0};
    size_t nr = a->requests.n, no = a->offers.n, nd = a->dispatches.n;
    dec_request(&d, a);
    if (!d.bad)
        return 0;
    /* Out with what was added: records are only ever appended. */
    table_truncate(&a->dispatches, nd);
    table_truncate(&a->offers, no);
    table_truncate(&a->requests, nr);
    return d.bad == 2 ? EEXIST : RK_EFORMAT;
}

static int cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return a < b ? -1 : a > b;
}

/* The requests the batch touched, sorted, each once; *n their number.
 * The caller frees the array. */
static uint32_t *changed_requests(const struct rk_aid *a, size_t *n)
{
    size_t cap = a->n_undo + (a->requests.n - a->mark_requests) + (a->offers.n - a->mark_offers) +
                 (a->dispatches.n - a->mark_dispatches) + 1;
    uint32_t *v = xcalloc(cap, sizeof *v);
    size_t k = 0;
    /* Loaded and untouched records are as stored: every change to a
     * request, its offers or dispatches goes through touch_request. */
    for (size_t i = a->mark_requests; i < a->requests.n; i++)
        if (req_at(a, (uint32_t)i)->dirty)
            v[k++] = (uint32_t)i;
    for (size_t i = 0; i < a->n_undo; i++) {
        const struct undo *u = &a->undo[i];
        uint32_t oi = u->kind == UNDO_DISPATCH ? dispatch_at(a, u->index)->offer : u->index;
        v[k++] = u->kind == UNDO_REQUEST ? u->index : offer_at(a, oi)->request;
    }
    qsort(v, k, sizeof *v, cmp_u32);
    size_t m = 0;
    for (size_t i = 0; i < k; i++)
        if (m == 0 || v[m - 1] != v[i])
            v[m++] = v[i];
    *n = m;
    return v;
}

int rk_aid_batch_changes(const struct rk_aid *a, rk_aid_change_fn fn, void *arg)
{
    size_t n;
    int rc = 0;
    if (!a->in_batch)
        return 0;
    uint32_t *reqs = changed_requests(a, &n);
    for (size_t i = 0; i < n && !rc; i++)
        rc = fn(arg, RK_AID_ID_REQUEST, req_at(a, reqs[i])->id, req_at(a, reqs[i])->id);
    free(reqs);
    for (size_t i = a->mark_offers; i < a->offers.n && !rc; i++) {
        const struct offer *o = offer_at(a, (uint32_t)i);
        if (!o->loaded)
            rc = fn(arg, RK_AID_ID_OFFER, o->id, req_at(a, o->request)->id);
    }
    for (size_t i = a->mark_dispatches; i < a->dispatches.n && !rc; i++) {
        const struct dispatch *d = dispatch_at(a, (uint32_t)i);
        const struct offer *o = offer_at(a, d->offer);
        if (!d->loaded)
            rc = fn(arg, RK_AID_ID_DISPATCH, d->id, req_at(a, o->request)->id);
    }
    return rc;
}

/* ---- reading ------------------------------------------------------------ */

size_t rk_aid_request_count(const struct rk_aid *a)
{
    return a->requests.n;
}

static void fill_request_view(const struct request *r, struct rk_aid_request_view *v)
{
    memset(v, 0, sizeof *v);
    memcpy(v->request_id, r->id, sizeof v->request_id);
    memcpy(v->requester, r->requester, sizeof v->requester);
    memcpy(v->resource, r->resource, sizeof v->resource);
    memcpy(v->unit, r->unit, sizeof v->unit);
    memcpy(v->urgency, r->urgency, sizeof v->urgency);
    v->restricted = r->restricted;
    v->version = r->version;
    v->quantity = r->quantity;
    v->accepted = r->accepted;
    v->dispatched = r->dispatched;
    v->fulfilled = r->fulfilled;
    v->in_transit = r->dispatched - r->fulfilled;
    v->state = r->state;
    v->state_name = state_names[r->state];
    v->offers = r->n_offers;
}

int rk_aid_request_at(const struct rk_aid *a, size_t i, struct rk_aid_request_view *out)
{
    if (i >= a->requests.n)
        return -1;
    fill_request_view(req_at(a, (uint32_t)i), out);
    return 0;
}

long rk_aid_request_find(const struct rk_aid *a, const char *request_id,
                         struct rk_aid_request_view *out)
{
    if (!request_id || strnlen(request_id, RK_ID_MAX + 1) > RK_ID_MAX)
        return -1;
    uint32_t i = table_find(&a->requests, request_id);
    if (i == NONE)
        return -1;
    if (out)
        fill_request_view(req_at(a, i), out);
    return (long)i;
}

int rk_aid_offer_next(const struct rk_aid *a, size_t i, size_t *cursor,
                      struct rk_aid_offer_view *out)
{
    if (i >= a->requests.n)
        return 0;
    /* *cursor is 0 before the first offer, else the last offer's index + 1 */
    uint32_t oi = *cursor == 0 ? req_at(a, (uint32_t)i)->first_offer
                               : offer_at(a, (uint32_t)(*cursor - 1))->next;
    if (oi == NONE)
        return 0;
    const struct offer *o = offer_at(a, oi);
    memset(out, 0, sizeof *out);
    memcpy(out->offer_id, o->id, sizeof out->offer_id);
    memcpy(out->offerer, o->offerer, sizeof out->offerer);
    out->quantity = o->quantity;
    out->accepted = o->accepted;
    out->dispatched = o->dispatched;
    out->fulfilled = o->fulfilled;
    out->state = o->state;
    out->state_name = offer_state_names[o->state];
    *cursor = (size_t)oi + 1;
    return 1;
}

size_t rk_aid_count(const struct rk_aid *a, enum rk_aid_state s)
{
    return (unsigned)s < RK_AID__NSTATES ? a->by_state[s] : 0;
}

/* ---- parsing ------------------------------------------------------------ */

/* Copies a string value into dst; -1 if it is not a string or does not fit. */
static int copy_str(const struct rk_mp_val *o, char *dst, size_t cap)
{
    if (o->kind != RK_MP_STR || o->n >= cap || memchr(o->p, '\0', o->n))
        return -1;
    memcpy(dst, o->p, o->n);
    dst[o->n] = '\0';
    return 0;
}

/* An integer value into *v; -1 if it is not an integer in int64. */
static int copy_int(const struct rk_mp_val *o, int64_t *v)
{
    if (o->kind == RK_MP_NEGINT)
        *v = o->v.i;
    else if (o->kind == RK_MP_UINT && o->v.u <= INT64_MAX)
        *v = (int64_t)o->v.u;
    else
        return -1;
    return 0;
}

/* The string field `want` into dst when it is the one named; 0 when not. */
static int str_into(const char *name, const char *want, const struct rk_mp_val *val, char *dst,
                    size_t cap)
{
    return strcmp(name, want) == 0 ? copy_str(val, dst, cap) : 0;
}

/* Only aid events' fields are read: other types (kpi.update) carry fields
 * of the same names with other limits, e.g. a free-text `unit`. Called by
 * validation for each field it checked; -1 when a value is not of the
 * type this reader expects. */
static int extract_one(const struct rk_event_info *info, const char *name,
                       const struct rk_mp_val *val, void *arg)
{
    struct rk_aid_event *out = arg;
    if (info->type < RK_EV_AID_REQUEST)
        return 0;
    switch (name[0]) { /* one strcmp at most, not one per field of ours */
    case 'o': return str_into(name, "offer_id", val, out->offer_id, sizeof out->offer_id);
    case 'r': return str_into(name, "resource", val, out->resource, sizeof out->resource);
    case 'u':
        if (name[1] == 'n')
            return str_into(name, "unit", val, out->unit, sizeof out->unit);
        return str_into(name, "urgency", val, out->urgency, sizeof out->urgency);
    case 'q': return strcmp(name, "quantity") == 0 ? copy_int(val, &out->quantity) : 0;
    case 'v': return strcmp(name, "version") == 0 ? copy_int(val, &out->version) : 0;
    case 'd':
        if (name[1] == 'i')
            return str_into(name, "dispatch_id", val, out->dispatch_id, sizeof out->dispatch_id);
        if (strcmp(name, "data_class") == 0 && rk_mp_str_is(val, "restricted"))
            out->data_class = RK_AID_CLASS_RESTRICTED;
        else if (strcmp(name, "data_class") == 0 && rk_mp_str_is(val, "open"))
            out->data_class = RK_AID_CLASS_OPEN;
        return 0;
    default: return 0;
    }
}

enum rk_verr rk_aid_event_validate(const void *buf, size_t len, int64_t now_ns,
                                   struct rk_event_info *info, struct rk_aid_event *out,
                                   struct rk_verror *err)
{
    struct rk_event_info own;
    if (!info)
        info = &own;
    memset(out, 0, sizeof *out);
    enum rk_verr rc = rk_event_validate_fields(buf, len, now_ns, info, err, extract_one, out);
    if (rc != RK_V_OK)
        return rc;
    out->type = info->type;
    memcpy(out->municipality, info->municipality, sizeof out->municipality);
    if (info->type >= RK_EV_AID_REQUEST)
        memcpy(out->request_id, info->request_id, sizeof out->request_id);
    return RK_V_OK;
}

enum rk_verr rk_aid_event_parse(const void *buf, size_t len, struct rk_aid_event *out,
                                char *why, size_t why_len)
{
    struct rk_verror verr;
    enum rk_verr rc = rk_aid_event_validate(buf, len, 0, NULL, out, &verr);
    if (why && why_len && rc == RK_V_OK)
        why[0] = '\0';
    else if (why && why_len)
        snprintf(why, why_len, "%s: %s", rk_verr_name(rc), verr.message);
    return rc;
}
