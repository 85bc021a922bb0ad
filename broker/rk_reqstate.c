#include "rk_reqstate.h"
#include "rk_aid.h"

#include <errno.h>
#include <stdio.h>
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
    struct rk_aid *one;          /* holds the request being packed */
    msgpack_packer pk;
    msgpack_sbuffer body;        /* the requests, before the array header */
    uint32_t count, limit;
    const void *last;            /* key of the last request packed */
    size_t last_len;
};

static int selected(const struct rk_wire_filter *f, const struct rk_aid *a)
{
    struct rk_aid_request_view r;
    rk_aid_request_at(a, 0, &r);
    return strncmp(r.requester, f->requester, strlen(f->requester)) == 0;
}

/* Takes the stored request `val` into the batch when the filter selects it. */
static int take(struct batch *b, const void *key, size_t key_len, const void *val, size_t len)
{
    rk_aid_clear(b->one);
    int rc = rk_aid_load(b->one, val, len);
    if (rc)
        return rc == EEXIST ? RK_EBADREC : rc;
    b->last = key;
    b->last_len = key_len;
    if (!selected(&b->req->filter, b->one))
        return 0;
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
        return rc || !found ? rc : take(b, NULL, 0, val, len);
    }
    b->last = b->req->cursor;
    b->last_len = b->req->cursor_len;
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
    struct batch b = {.req = req, .limit = req->limit};
    int rc = check_filter(&req->filter, code, why, why_len);
    if (rc)
        return rc;
    if (b.limit == 0 || b.limit > RK_REPLAY_LIMIT_MAX)
        b.limit = RK_REPLAY_LIMIT_MAX;
    if ((rc = rk_log_reader_open(log, 1, &r)) != 0)
        return rc;
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
                                      .seq = rk_log_reader_head(r), .nrecords = b.count};
        snprintf(reply->log_id, sizeof reply->log_id, "%s", rk_log_id(log));
        if (b.last_len > RK_WIRE_CURSOR_MAX)
            rc = RK_EBADREC; /* a stored key longer than any request_id */
        else if (b.last_len)
            memcpy(reply->cursor, b.last, b.last_len);
        reply->cursor_len = rc ? 0 : b.last_len;
    }
    msgpack_sbuffer_destroy(&b.body);
    rk_aid_destroy(&b.one);
    rk_log_reader_destroy(&r);
    return rc;
}
