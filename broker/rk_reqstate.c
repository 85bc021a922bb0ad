#include "rk_reqstate.h"
#include "rk_cursor.h"
#include "rk_aid.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    pack_str(pk, k);
    pack_str(pk, v);
}

static void pack_kv_int(msgpack_packer *pk, const char *k, int64_t v)
{
    pack_str(pk, k);
    msgpack_pack_int64(pk, v);
}

static void pack_offer(msgpack_packer *pk, const struct rk_aid_offer_view *o)
{
    msgpack_pack_map(pk, 7);
    pack_kv_str(pk, "offer_id", o->offer_id);
    pack_kv_str(pk, "offerer", o->offerer);
    pack_kv_int(pk, "quantity", o->quantity);
    pack_kv_int(pk, "accepted", o->accepted);
    pack_kv_int(pk, "dispatched", o->dispatched);
    pack_kv_int(pk, "fulfilled", o->fulfilled);
    pack_kv_str(pk, "state", o->state_name);
}

/* One request as 3.6 lists its keys. */
static void pack_request(msgpack_packer *pk, const struct rk_aid *a)
{
    struct rk_aid_request_view r;
    struct rk_aid_offer_view o;
    rk_aid_request_at(a, 0, &r);
    msgpack_pack_map(pk, 14);
    pack_kv_str(pk, "request_id", r.request_id);
    pack_kv_str(pk, "requester", r.requester);
    pack_kv_str(pk, "resource", r.resource);
    pack_kv_str(pk, "unit", r.unit);
    pack_kv_str(pk, "urgency", r.urgency);
    pack_kv_str(pk, "data_class", r.restricted ? "restricted" : "open");
    pack_kv_int(pk, "version", r.version);
    pack_kv_int(pk, "quantity", r.quantity);
    pack_kv_int(pk, "accepted", r.accepted);
    pack_kv_int(pk, "dispatched", r.dispatched);
    pack_kv_int(pk, "fulfilled", r.fulfilled);
    pack_kv_int(pk, "in_transit", r.in_transit);
    pack_kv_str(pk, "state", r.state_name);
    pack_str(pk, "offers");
    msgpack_pack_array(pk, r.offers);
    for (size_t c = 0; rk_aid_offer_next(a, 0, &c, &o);)
        pack_offer(pk, &o);
}

/* The filter keys a state takes: request_id and requester. */
static int check_filter(const struct rk_wire_filter *f, char code[32], char *why, size_t len)
{
    const char *bad = f->from_ns || f->to_ns ? "from_time/to_time"
                      : f->ntopics ? "topics" : f->kpi_id[0] ? "kpi_id" : NULL;
    size_t n = strlen(f->requester);
    snprintf(code, 32, "E_HEADER");
    if (bad) {
        snprintf(why, len, "filter.%s: a state is of requests now; it takes only request_id "
                 "and requester", bad);
        return EINVAL;
    }
    if (n && n != 2 && n != 6) {
        snprintf(why, len, "filter.requester: a prefecture (2 digits) or a municipality "
                 "code (6 digits), got %zu characters", n);
        return EINVAL;
    }
    return 0;
}

struct batch {
    const struct rk_wire_hdr *req;
    uint64_t at;                 /* the moment: the reader's head, or the asked
                                  * at_seq below it */
    struct rk_log_reader *r;
    struct rk_aid *one;          /* holds the request being packed */
    msgpack_packer pk;
    msgpack_sbuffer body;        /* the requests, before the array header */
    uint32_t count, limit;
    unsigned char last[RK_WIRE_CURSOR_MAX]; /* key of the last request looked at */
    size_t last_len;
    uint64_t *seqs;              /* history's, grown as needed */
    size_t seqs_cap;
    char *code, *why;            /* an "err" for the client (EINVAL) */
    size_t why_len;
    const char *log_id;          /* the cursors' key (rk_cursor) */
};

/* 1 when record `seq` is the aid.request version 1 that made a request. */
static int is_creation(struct batch *b, uint64_t seq)
{
    struct rk_log_view v;
    struct rk_aid_event ev;
    return rk_log_reader_get(b->r, seq, &v) == 0 &&
           rk_aid_event_parse(v.event, v.event_len, &ev, NULL, 0) == RK_V_OK &&
           ev.type == RK_EV_AID_REQUEST && ev.version == 1;
}

/* The seqs of request `id`'s events up to b->at, newest first, into
 * b->seqs. *changed: it has an event after b->at, so the stored state is
 * not the one at b->at. *n 0 then: it was made after b->at, or retention
 * deleted all its events up to then (*pruned). */
static int history(struct batch *b, const char *id, size_t *n, int *changed, int *pruned)
{
    struct rk_log_tags t = {.type = RK_EV_AID_REQUEST, .entity = id, .entity_len = strlen(id)};
    struct rk_log_entity e = {0};
    uint64_t p, first;
    e.key_len = rk_log_entity_key(&t, e.key);
    *n = 0;
    *pruned = 0;
    int rc = rk_log_reader_entity_prev(b->r, &e, UINT64_MAX, &p);
    if (rc)
        return rc == RK_LOG_EOF ? 0 : rc;
    *changed = p > b->at;
    if (!*changed)
        return 0;
    for (rc = rk_log_reader_entity_prev(b->r, &e, b->at + 1, &p); rc == 0;
         rc = rk_log_reader_entity_prev(b->r, &e, p, &p)) {
        if (*n == b->seqs_cap) {
            b->seqs_cap = b->seqs_cap ? 2 * b->seqs_cap : 64;
            if (!(b->seqs = realloc(b->seqs, b->seqs_cap * sizeof *b->seqs)))
                abort();
        }
        b->seqs[(*n)++] = p;
    }
    if (rc != RK_LOG_EOF)
        return rc;
    if (*n > 0)
        return 0;
    /* nothing up to b->at: made later, unless its making was deleted */
    for (rc = rk_log_reader_entity_prev(b->r, &e, UINT64_MAX, &first); rc == 0;)
        if ((rc = rk_log_reader_entity_prev(b->r, &e, first, &p)) == 0)
            first = p;
    if (rc != RK_LOG_EOF)
        return rc;
    *pruned = !is_creation(b, first);
    return 0;
}

/* The request as it was after event b->at: its stored events up to then,
 * through the same lifecycle rules the broker stored them by (rk_aid). An
 * event those refuse (a log from before them) changes nothing, as at the
 * migration. *exists 0 when it was made later. */
static int fold_at(struct batch *b, const char *id, int *exists)
{
    struct rk_log_view v;
    struct rk_aid_event ev;
    size_t n;
    int changed = 0, pruned = 0, rc = history(b, id, &n, &changed, &pruned);
    *exists = 1;
    if (rc || !changed)
        return rc;
    rk_aid_clear(b->one);
    *exists = n > 0;
    while (n-- > 0) {
        if ((rc = rk_log_reader_get(b->r, b->seqs[n], &v)) != 0)
            return rc == RK_LOG_EOF ? RK_EBADREC : rc;
        if (rk_aid_event_parse(v.event, v.event_len, &ev, NULL, 0) == RK_V_OK)
            rk_aid_apply(b->one, &ev, NULL);
    }
    if (pruned || (*exists && rk_aid_request_count(b->one) == 0)) {
        /* its aid.request is gone: retention deleted the start of its history */
        snprintf(b->code, 32, "E_PRUNED");
        snprintf(b->why, b->why_len, "at_seq: retention deleted the first events of request "
                 "%s, so its state at seq %llu is not known any more; ask again with at_seq 0",
                 id, (unsigned long long)b->at);
        return EINVAL;
    }
    return 0;
}

static int selected(const struct rk_wire_filter *f, const struct rk_aid *a)
{
    struct rk_aid_request_view r;
    rk_aid_request_at(a, 0, &r);
    return strncmp(r.requester, f->requester, strlen(f->requester)) == 0;
}

/* Takes the stored request `val` into the batch when the filter selects it. */
static int take(struct batch *b, const void *key, size_t key_len, const void *val, size_t len)
{
    struct rk_aid_request_view v;
    int exists;
    rk_aid_clear(b->one);
    int rc = rk_aid_load(b->one, val, len);
    if (rc)
        return rc == EEXIST ? RK_EBADREC : rc;
    if (key_len > sizeof b->last)
        return RK_EBADREC; /* longer than any request_id */
    memcpy(b->last, key, key_len);
    b->last_len = key_len;
    if (!selected(&b->req->filter, b->one))
        return 0;
    rk_aid_request_at(b->one, 0, &v);
    char id[RK_ID_MAX + 1];
    snprintf(id, sizeof id, "%s", v.request_id);
    if ((rc = fold_at(b, id, &exists)) != 0 || !exists)
        return rc;
    pack_request(&b->pk, b->one);
    b->count++;
    return 0;
}

static int walk(struct batch *b, struct rk_log_reader *r)
{
    const struct rk_wire_filter *f = &b->req->filter;
    const void *key, *val;
    size_t key_len, len;
    int found, rc;
    if (f->request_id[0]) { /* one request: no walk, no cursor */
        rc = rk_log_reader_state_get(r, RK_LOG_AID_REQUESTS, f->request_id,
                                     strlen(f->request_id), &found, &val, &len);
        return rc || !found ? rc : take(b, f->request_id, strlen(f->request_id), val, len);
    }
    b->last_len = b->req->cursor_len;
    if (b->last_len && rk_cursor_open(b->log_id, 'r', b->req->cursor, b->req->cursor_len,
                                      &b->last_len) != 0) {
        snprintf(b->code, 32, "E_HEADER");
        snprintf(b->why, b->why_len, "cursor: not one this broker wrote for this log's state; "
                 "send the last reqs' cursor unchanged, or an empty one to start again");
        return EINVAL;
    }
    memcpy(b->last, b->req->cursor, b->last_len);
    while (b->count < b->limit && b->body.size < RK_REQSTATE_FRAME_MAX) {
        rc = rk_log_reader_state_next(r, RK_LOG_AID_REQUESTS, b->last, b->last_len, &key,
                                      &key_len, &val, &len);
        if (rc == RK_EOF) {
            b->last_len = 0; /* complete */
            return 0;
        }
        if (rc || (rc = take(b, key, key_len, val, len)) != 0)
            return rc;
    }
    return 0;
}

int rk_reqstate_answer(struct rk_log *log, const struct rk_wire_hdr *req,
                       struct rk_wire_hdr *reply, msgpack_sbuffer *frame, char code[32],
                       char *why, size_t why_len)
{
    struct rk_log_reader *r = NULL;
    struct batch b = {.req = req, .limit = req->limit, .code = code, .why = why,
                      .why_len = why_len};
    int rc = check_filter(&req->filter, code, why, why_len);
    if (rc)
        return rc;
    if (b.limit == 0 || b.limit > RK_REPLAY_LIMIT_MAX)
        b.limit = RK_REPLAY_LIMIT_MAX;
    if ((rc = rk_log_reader_open(log, 1, &r)) != 0)
        return rc;
    b.r = r;
    b.log_id = rk_log_id(log);
    b.at = req->at_seq && req->at_seq < rk_log_reader_head(r) ? req->at_seq
                                                               : rk_log_reader_head(r);
    b.one = rk_aid_new();
    msgpack_sbuffer_init(&b.body);
    msgpack_packer_init(&b.pk, &b.body, msgpack_sbuffer_write);
    rc = walk(&b, r);
    if (!rc) {
        msgpack_packer out;
        msgpack_packer_init(&out, frame, msgpack_sbuffer_write);
        msgpack_pack_array(&out, b.count);
        msgpack_sbuffer_write(frame, b.body.data, b.body.size);
        *reply = (struct rk_wire_hdr){.cmd = RK_CMD_REQS, .corr = req->corr,
                                      .seq = b.at, .nrecords = b.count};
        snprintf(reply->log_id, sizeof reply->log_id, "%s", rk_log_id(log));
        if (req->filter.request_id[0])
            b.last_len = 0; /* one request: no cursor */
        reply->cursor_len = rk_cursor_seal(reply->log_id, 'r', b.last, b.last_len,
                                           reply->cursor);
    }
    msgpack_sbuffer_destroy(&b.body);
    free(b.seqs);
    rk_aid_destroy(&b.one);
    rk_log_reader_destroy(&r);
    return rc;
}
