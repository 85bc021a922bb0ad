#include "rk_replay.h"
#include "rk_cursor.h"
#include "rk_refusal.h"
#include "rk_ack.h"
#include "rk_aid.h"
#include "rk_reqstate.h"
#include "rk_zap.h"
#include "rk_diag.h"
#include "rk_event.h"
#include "rk_text.h"
#include "rk_time.h"
#include "rk_wire.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

/* Room for one full batch of "evt" plus its "end", per client, or many
 * batches of "evts". Past the high-water mark the ROUTER drops replies
 * silently (zmq_send still succeeds: ZMQ_ROUTER_MANDATORY is not set), and
 * the client sees the loss by a gap in the seqs or by "sent". With limit +
 * 16 every replay longer than 1,000 events lost its "end". */
#define REPLAY_SNDHWM (2 * RK_REPLAY_LIMIT_MAX + 16)

_Static_assert(RK_WIRE_CURSOR_MAX >= RK_LOG_ENTITY_KEY_MAX + RK_CURSOR_TAG,
               "a snapshot cursor holds an entity key and its tag");

struct rk_replay {
    void *router;
    void *pipe_main;   /* main thread's end */
    void *pipe_thread; /* replay thread's end */
    struct rk_log *log;
    struct rk_acl_slot *acl;   /* NULL: no ACL (plain sockets) */
    pthread_t thread;
    atomic_uint_least64_t events_sent;
    unsigned char *pack;  /* records of the "evts" being filled */
    size_t pack_cap;
};

/* An "evts" message is sent once its records reach this size. Past a few
 * dozen records the per-message cost of ZeroMQ (a frame allocation, pipe
 * signalling, a read on the client) is spread thin; the client holds at
 * most this much of a batch at once. */
#define PACK_BYTES (64 * 1024)

/* The replies of one request on their way out: one "evt" message per
 * record, or, when the client set RK_WIRE_REPLAY_PACKED, "evts" messages
 * of many records each. */
struct out {
    struct rk_replay *rp;
    zmq_msg_t *ident;
    uint64_t corr;
    int packed;
    uint64_t sent;       /* records in messages the socket took */
    uint32_t npacked;    /* records waiting in rp->pack */
    size_t pack_len;
    uint64_t first_seq;  /* of the first record waiting */
    uint64_t lost;       /* records in a message zmq_send failed on */
};

static int send_hdr(void *sock, zmq_msg_t *ident, const struct rk_wire_hdr *h, int more)
{
    unsigned char buf[RK_WIRE_HDR_MAX];
    size_t n = rk_wire_encode(h, buf, sizeof buf);
    if (zmq_send(sock, zmq_msg_data(ident), zmq_msg_size(ident), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -1;
    return zmq_send(sock, buf, n, (more ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0 ? -1 : 0;
}

/* The message's quoted parts are escaped where they are quoted; escaping
 * the rest (rk_text, backslashes kept) is the last line, so that no reply
 * carries a control byte or invalid UTF-8 whatever a message was built of. */
static void send_err(void *sock, zmq_msg_t *ident, uint64_t corr, const char *code, const char *msg)
{
    struct rk_wire_hdr h = {.cmd = RK_CMD_ERR, .corr = corr};
    snprintf(h.code, sizeof h.code, "%s", code);
    rk_text_escape(h.message, sizeof h.message, msg, strlen(msg), RK_TEXT_KEEP_BACKSLASH);
    send_hdr(sock, ident, &h, 0);
}

/* A filtered batch stops after this many records even if it found fewer
 * than `limit`, so one narrow query over a long log cannot hold the thread
 * (or an LMDB snapshot) for long; "end" tells the client where to go on. */
#define SCAN_MAX 200000

/* A request's filter, with its topic prefixes compiled once: matching
 * them then writes no topic string per record. A prefix on requester
 * topics (PROTOCOL.md 3.3) needs the requester of an aid record's request,
 * which the record does not carry: it is read from the "aid_requests"
 * state of the same read transaction (one lookup per aid record the
 * record's own topic did not select; the last one is kept, since a
 * request's events tend to come together). A request's requester never
 * changes, so the current state answers for every record of it. */
struct selection {
    const struct rk_wire_filter *f;
    struct rk_topic_set topics;
    struct rk_log_reader *r;
    char last_id[RK_ID_MAX + 1];    /* the request looked up last, "" for none */
    char last_requester[7];         /* its requester, "" when the state lacks it */
    int err;                        /* a failed state read: the batch fails */
};

static void selection_init(struct selection *s, const struct rk_wire_filter *f,
                           struct rk_log_reader *r)
{
    s->r = r;
    s->last_id[0] = s->last_requester[0] = '\0';
    s->err = 0;
    const char *prefixes[RK_WIRE_TOPICS_MAX];
    _Static_assert(RK_WIRE_TOPICS_MAX <= RK_TOPIC_SET_MAX, "a filter's prefixes fit a topic set");
    for (unsigned i = 0; i < f->ntopics; i++)
        prefixes[i] = f->topics[i];
    s->f = f;
    rk_topic_set_init(&s->topics, prefixes, f->ntopics);
}

static int entity_is(const struct rk_log_view *v, const char *want)
{
    return strlen(want) == v->tags.entity_len && memcmp(v->tags.entity, want, v->tags.entity_len) == 0;
}

/* The requester of the aid record v's request, "" when not known. */
static const char *requester_of(struct selection *s, const struct rk_log_view *v)
{
    const void *val;
    size_t len;
    int found;
    if (!v->tags.entity_len || v->tags.entity_len > RK_ID_MAX)
        return "";
    if (entity_is(v, s->last_id))
        return s->last_requester;
    /* a plain get: it leaves v (which points into the map) valid */
    int rc = rk_log_reader_state_get(s->r, RK_LOG_AID_REQUESTS, v->tags.entity,
                                     v->tags.entity_len, &found, &val, &len);
    if (rc) {
        s->err = rc;
        return "";
    }
    memcpy(s->last_id, v->tags.entity, v->tags.entity_len);
    s->last_id[v->tags.entity_len] = '\0';
    if (!found)
        s->last_requester[0] = '\0';
    else if (rk_aid_stored_requester(val, len, s->last_requester) != 0)
        s->err = RK_EBADREC; /* a damaged state is said, never read as "not selected" */
    return s->last_requester;
}

static int topics_selected(struct selection *s, const struct rk_log_view *v)
{
    enum rk_event_type type = (enum rk_event_type)v->tags.type;
    if (rk_topic_set_match(&s->topics, type, v->tags.municipality))
        return 1;
    if (!rk_topic_set_wants_requester(&s->topics, type))
        return 0;
    const char *requester = requester_of(s, v);
    return requester[0] && rk_topic_set_match_requester(&s->topics, type, requester);
}

static int selected(struct selection *s, const struct rk_log_view *v)
{
    const struct rk_wire_filter *f = s->f;
    if (f->request_id[0] && (v->tags.type == RK_EV_KPI_UPDATE || !entity_is(v, f->request_id)))
        return 0;
    if (f->kpi_id[0] && (v->tags.type != RK_EV_KPI_UPDATE || !entity_is(v, f->kpi_id)))
        return 0;
    if (f->from_ns && v->recv_ns < f->from_ns)
        return 0;
    return topics_selected(s, v);
}

/* Where a batch starts: from_seq, or later when from_time says so; the
 * reader is put there. A later batch of the range keeps its from_seq: the
 * time bound only moves the start forward. */
static int batch_start(struct rk_log_reader *r, const struct rk_wire_hdr *req, uint64_t *from)
{
    uint64_t by_time;
    *from = req->from_seq ? req->from_seq : 1;
    if (!req->filter.from_ns)
        return 0;
    int rc = rk_log_reader_seek_time(r, req->filter.from_ns, &by_time);
    if (rc == 0 && by_time > *from)
        *from = by_time;
    rk_log_reader_seek(r, *from);
    return rc;
}

static void out_start(struct out *o, struct rk_replay *rp, zmq_msg_t *ident,
                      const struct rk_wire_hdr *req)
{
    *o = (struct out){.rp = rp, .ident = ident, .corr = req->corr,
                      .packed = (req->flags & RK_WIRE_REPLAY_PACKED) != 0};
}

static void count_sent(struct out *o, uint64_t n)
{
    o->sent += n;
    atomic_fetch_add_explicit(&o->rp->events_sent, n, memory_order_relaxed);
}

/* Sends the waiting records as one "evts". Returns 0, or -1 when zmq_send
 * failed (not at the high-water mark, where the ROUTER drops silently, but
 * e.g. as the context ends): the records then count as lost. */
static int out_flush(struct out *o)
{
    struct rk_wire_hdr h = {.cmd = RK_CMD_EVTS, .corr = o->corr, .nrecords = o->npacked};
    uint32_t n = o->npacked;
    if (!n)
        return 0;
    o->npacked = 0;
    if (send_hdr(o->rp->router, o->ident, &h, 1) ||
        zmq_send(o->rp->router, o->rp->pack, o->pack_len, ZMQ_DONTWAIT) < 0) {
        o->lost += n;
        return -1;
    }
    count_sent(o, n);
    return 0;
}

static int send_evt(struct out *o, const struct rk_log_view *v)
{
    struct rk_wire_hdr h = {.cmd = RK_CMD_EVT, .corr = o->corr, .seq = v->seq, .recv_ns = v->recv_ns};
    if (v->publisher_len && v->publisher_len <= RK_WIRE_PUBLISHER_MAX)
        memcpy(h.publisher, v->publisher, v->publisher_len);
    if (send_hdr(o->rp->router, o->ident, &h, 1) ||
        zmq_send(o->rp->router, v->event, v->event_len, ZMQ_DONTWAIT) < 0) {
        o->first_seq = v->seq;
        o->lost++;
        return -1;
    }
    count_sent(o, 1);
    return 0;
}

/* Queues record `v` for the client. Returns 0, or -1 when sending a
 * message failed: o->first_seq is then the first record it held, and the
 * request should stop there. */
static int out_event(struct out *o, const struct rk_log_view *v)
{
    struct rk_replay *rp = o->rp;
    struct rk_wire_record rec = {.seq = v->seq, .recv_ns = v->recv_ns, .event = v->event,
                                 .event_len = v->event_len};
    size_t need = v->event_len + RK_WIRE_RECORD_OVERHEAD;
    if (!o->packed)
        return send_evt(o, v);
    if (o->npacked && o->pack_len + need > PACK_BYTES && out_flush(o))
        return -1;
    if (!o->npacked) {
        o->pack_len = 0;
        o->first_seq = v->seq;
    }
    if (rp->pack_cap - o->pack_len < need) { /* first use, or one event larger than a pack */
        rp->pack_cap = o->pack_len + need > PACK_BYTES ? o->pack_len + need : PACK_BYTES;
        if (!(rp->pack = realloc(rp->pack, rp->pack_cap)))
            abort();
    }
    if (v->publisher_len && v->publisher_len <= RK_WIRE_PUBLISHER_MAX) {
        rec.publisher = (const char *)v->publisher;
        rec.publisher_len = v->publisher_len;
    }
    size_t put = rk_wire_record_put(&rec, rp->pack + o->pack_len, rp->pack_cap - o->pack_len);
    if (put == 0)
        abort(); /* the room was made above: the count would lie */
    o->pack_len += put;
    o->npacked++;
    return 0;
}

/* Records handed to out_event so far, sent or waiting. */
static uint64_t out_count(const struct out *o)
{
    return o->sent + o->npacked;
}

/* One batch being served. */
struct batch {
    const struct rk_wire_hdr *req;
    struct rk_log_reader *r;
    struct selection sel;
    struct out o;
    uint32_t limit;
    uint64_t next;      /* where the client goes on: after the last record looked at */
    uint64_t scanned;
    int done;           /* past the end bound, or the send failed */
};

static int batch_full(const struct batch *b)
{
    return b->done || out_count(&b->o) >= b->limit || b->scanned >= SCAN_MAX;
}

/* Looks at one record in order: sends it if the filter selects it. */
static void take(struct batch *b, const struct rk_log_view *v)
{
    const struct rk_wire_filter *f = &b->req->filter;
    if ((b->req->to_seq && v->seq > b->req->to_seq) || (f->to_ns && v->recv_ns > f->to_ns)) {
        b->next = UINT64_MAX; /* past the end bound: the range is complete */
        b->done = 1;
        return;
    }
    b->scanned++;
    b->next = v->seq + 1;
    if (selected(&b->sel, v) && out_event(&b->o, v))
        b->done = 1;
    if (b->sel.err)
        b->done = 1;
}

/* Every record from b->next on, in the log's order. */
static int walk_records(struct batch *b)
{
    struct rk_log_view v;
    int rc = 0;
    while (!batch_full(b) && (rc = rk_log_reader_next(b->r, &v)) == 0)
        take(b, &v);
    return rc == RK_LOG_EOF ? 0 : rc;
}

/* A filter that pins prefectures reads only their records, through the
 * places index, as far as it reaches; the records after that are left to
 * walk_records. Otherwise a filter selecting a fifth of the log made the
 * broker read five records per event it sent. */
static int walk_places(struct batch *b, uint64_t mask)
{
    struct rk_log_view v;
    uint64_t reach, seq;
    int rc = rk_log_reader_places_start(b->r, mask, b->next, &reach);
    if (rc || reach < b->next)
        return rc;
    while (!batch_full(b) && (rc = rk_log_reader_places_next(b->r, &seq)) == 0) {
        if (b->req->to_seq && seq > b->req->to_seq) {
            b->next = UINT64_MAX;
            b->done = 1;
            return 0;
        }
        rc = rk_log_reader_get(b->r, seq, &v);
        if (rc == RK_LOG_EOF)
            continue; /* retention deleted it since the chunk was read */
        if (rc)
            return rc;
        take(b, &v);
    }
    if (rc != RK_LOG_EOF)
        return rc;
    b->next = reach + 1; /* nothing more up to the reach: on with the records */
    rk_log_reader_seek(b->r, b->next);
    return 0;
}

/* Sends one batch from a fresh read transaction, then "end". */
static void serve_batch(struct rk_replay *rp, zmq_msg_t *ident, const struct rk_wire_hdr *req)
{
    struct batch b = {.req = req};
    b.limit = req->limit && req->limit <= RK_REPLAY_LIMIT_MAX ? req->limit : RK_REPLAY_LIMIT_MAX;
    int rc = rk_log_reader_open(rp->log, req->from_seq, &b.r);

    if (!rc)
        rc = batch_start(b.r, req, &b.next);
    if (rc) {
        send_err(rp->router, ident, req->corr, "E_STORAGE", rk_log_strerror(rc));
        rk_log_reader_destroy(&b.r);
        return;
    }
    out_start(&b.o, rp, ident, req);
    selection_init(&b.sel, &req->filter, b.r);
    uint64_t prefectures = rk_topic_set_prefectures(&b.sel.topics);
    if (prefectures)
        rc = walk_places(&b, prefectures);
    if (!rc)
        rc = walk_records(&b);
    if (!rc)
        rc = b.sel.err;
    out_flush(&b.o); /* after a failed send nothing waits: a no-op */
    if (b.o.lost)
        b.next = b.o.first_seq; /* the client asks again from the first it lacks */
    if (rc) {
        RK_DIAG(RK_DIAG_ERROR, "replay_read_failed", "seq=%llu why=\"%s\"",
                (unsigned long long)b.next, rk_log_strerror(rc));
        send_err(rp->router, ident, req->corr, "E_STORAGE", rk_log_strerror(rc));
    } else {
        struct rk_wire_hdr end = {.cmd = RK_CMD_END, .corr = req->corr,
                                  .next_seq = b.next, .head_seq = rk_log_reader_head(b.r),
                                  .sent = b.o.sent};
        snprintf(end.log_id, sizeof end.log_id, "%s", rk_log_id(rp->log));
        send_hdr(rp->router, ident, &end, 0);
    }
    rk_log_reader_destroy(&b.r);
}

/* A record that fails the filter for a reason every record of its entity
 * shares (its id, an older time, a KPI's fixed topic) ends the walk back
 * through that entity's history. Only an aid request's records differ in
 * type and municipality, so only they are worth walking. */
static int entity_settled(const struct rk_wire_filter *f, const struct rk_log_view *v)
{
    return v->tags.type == RK_EV_KPI_UPDATE || f->kpi_id[0] ||
           (f->request_id[0] && !entity_is(v, f->request_id)) ||
           (f->from_ns && v->recv_ns < f->from_ns);
}

/* The state a snapshot is consistent with: the requested sequence (or the
 * head), moved back to the last record received by to_time if given. */
static int snapshot_at(struct rk_log_reader *r, const struct rk_wire_hdr *req, uint64_t *at)
{
    uint64_t head = rk_log_reader_head(r), first_after;
    *at = req->at_seq && req->at_seq < head ? req->at_seq : head;
    if (!req->filter.to_ns || req->filter.to_ns == INT64_MAX)
        return 0;
    int rc = rk_log_reader_seek_time(r, req->filter.to_ns + 1, &first_after);
    if (rc == 0 && first_after - 1 < *at)
        *at = first_after - 1;
    return rc;
}

/* Sends entity e's latest record at or before its e->seq that the filter
 * selects, if any. Counts the records looked at in *scanned. Returns 1 when
 * sent, 0 when the entity has none, -1 when the client cannot take more,
 * or a log error (> 1 never; errors are negative LMDB codes or errno). */
static int send_entity(struct out *o, struct selection *sel, struct rk_log_reader *r,
                       const struct rk_log_entity *e, uint64_t *scanned, int *err)
{
    struct rk_log_view v;
    uint64_t seq = e->seq;
    for (;;) {
        (*scanned)++;
        if ((*err = rk_log_reader_get(r, seq, &v)) != 0)
            return 0;
        if (selected(sel, &v))
            return out_event(o, &v) ? -1 : 1;
        if ((*err = sel->err) != 0)
            return 0;
        if (entity_settled(sel->f, &v))
            return 0;
        *err = rk_log_reader_entity_prev(r, e, seq, &seq);
        if (*err == RK_LOG_EOF)
            *err = 0;
        if (*err || !seq)
            return 0;
    }
}

/* One batch of a snapshot: per entity after the cursor, its latest
 * selected record at or before `at`, then "snapend" with where to resume.
 * The state is fixed by `at`, so every batch reads the same history
 * however much is appended meanwhile, and a batch can be asked again.
 * That is also how a message that failed to send is recovered: "snapend"
 * counts its records as sent, the client sees fewer and asks again. */
static void serve_snapshot(struct rk_replay *rp, zmq_msg_t *ident, const struct rk_wire_hdr *req)
{
    struct rk_wire_hdr end = {.cmd = RK_CMD_SNAPEND, .corr = req->corr};
    snprintf(end.log_id, sizeof end.log_id, "%s", rk_log_id(rp->log));
    struct rk_log_reader *r = NULL;
    struct rk_log_entity e;
    uint32_t limit = req->limit && req->limit <= RK_REPLAY_LIMIT_MAX ? req->limit : RK_REPLAY_LIMIT_MAX;
    uint64_t scanned = 0;
    struct out o;
    struct selection sel;
    int rc = rk_log_reader_open(rp->log, 1, &r);

    if (req->cursor_len && rk_cursor_open(end.log_id, 's', req->cursor, req->cursor_len,
                                          &end.cursor_len) != 0) {
        send_err(rp->router, ident, req->corr, "E_HEADER", "cursor: not one this broker wrote "
                 "for this log's snapshots; send the last snapend's cursor unchanged, or an "
                 "empty one to start again");
        rk_log_reader_destroy(&r);
        return;
    }
    if (!rc)
        rc = snapshot_at(r, req, &end.at_seq);
    memcpy(end.cursor, req->cursor, end.cursor_len);
    out_start(&o, rp, ident, req);
    selection_init(&sel, &req->filter, r);
    while (!rc && out_count(&o) < limit && scanned < SCAN_MAX) {
        rc = end.at_seq ? rk_log_reader_entity_next(r, end.cursor, end.cursor_len, end.at_seq, &e)
                        : RK_LOG_EOF;
        if (rc == RK_LOG_EOF) {
            end.cursor_len = 0; /* complete */
            rc = 0;
            break;
        }
        if (rc || send_entity(&o, &sel, r, &e, &scanned, &rc) < 0 || rc)
            break; /* the client resumes at this entity */
        memcpy(end.cursor, e.key, e.key_len);
        end.cursor_len = e.key_len;
    }
    out_flush(&o);
    end.cursor_len = rk_cursor_seal(end.log_id, 's', end.cursor, end.cursor_len, end.cursor);
    end.sent = o.sent + o.lost;
    if (rc) {
        RK_DIAG(RK_DIAG_ERROR, "snapshot_read_failed", "why=\"%s\"", rk_log_strerror(rc));
        send_err(rp->router, ident, req->corr, "E_STORAGE", rk_log_strerror(rc));
    } else {
        send_hdr(rp->router, ident, &end, 0);
    }
    rk_log_reader_destroy(&r);
}

/* "state": one "reqs" header and the frame of its requests. */
static void serve_state(struct rk_replay *rp, zmq_msg_t *ident, const struct rk_wire_hdr *req)
{
    struct rk_wire_hdr reply;
    char code[32] = "E_STORAGE", why[256];
    msgpack_sbuffer frame;
    msgpack_sbuffer_init(&frame);
    int rc = rk_reqstate_answer(rp->log, req, &reply, &frame, code, why, sizeof why);
    if (rc == EINVAL) {
        send_err(rp->router, ident, req->corr, code, why);
    } else if (rc) {
        snprintf(why, sizeof why, "log: the state could not be read (%s); retry later",
                 rk_strerror(rc));
        send_err(rp->router, ident, req->corr, "E_STORAGE", why);
    } else if (send_hdr(rp->router, ident, &reply, ZMQ_SNDMORE) == 0) {
        zmq_send(rp->router, frame.data, frame.size, ZMQ_DONTWAIT);
    }
    msgpack_sbuffer_destroy(&frame);
}

/* Reads one request (all its frames) and answers it. */

/* With an ACL, the key must be listed and its tenant allowed every topic
 * prefix of the request; answers E_FORBIDDEN and returns 0 otherwise. */
static int allowed(struct rk_replay *rp, zmq_msg_t *ident, zmq_msg_t *hdr,
                   const struct rk_wire_hdr *req)
{
    const char *key = zmq_msg_gets(hdr, "User-Id");
    struct rk_acl *acl = rk_acl_slot_get(rp->acl);
    const struct rk_acl_tenant *t = acl ? rk_acl_find(acl, key) : NULL;
    char msg[256];
    char state_topic[1][RK_WIRE_TOPIC_MAX];
    int ok;
    if (req->cmd == RK_CMD_STATE) {
        /* the requests of a requester are the aid.request events it published */
        const char *q = req->filter.requester;
        snprintf(state_topic[0], sizeof state_topic[0], "aid.request/%.2s%s%s", q, q[0] ? "/" : "",
                 strlen(q) == 6 ? q : "");
        ok = t && rk_acl_may_read(t, RK_ACL_REPLAY, (const char (*)[RK_WIRE_TOPIC_MAX])state_topic, 1);
    } else {
        ok = t && rk_acl_may_read(t, RK_ACL_REPLAY,
                                  (const char (*)[RK_WIRE_TOPIC_MAX])req->filter.topics,
                                  req->filter.ntopics);
    }
    if (!t)
        snprintf(msg, sizeof msg, "key: this client's key is not in the broker's ACL (revoked?)");
    else if (!ok)
        snprintf(msg, sizeof msg, "filter.topics: tenant %s may %s only the topics its ACL "
                 "entry lists; ask with topic prefixes inside them", rk_acl_tenant_name(t),
                 req->cmd == RK_CMD_SNAP ? "snapshot" : req->cmd == RK_CMD_STATE ? "read the state of"
                 : "replay");
    if (!ok) {
        send_err(rp->router, ident, req->corr, "E_FORBIDDEN", msg);
        struct rk_refusal r = {RK_REFUSED_REPLAY, key, t ? rk_acl_tenant_name(t) : NULL,
                               zmq_msg_gets(hdr, "Peer-Address"), "E_FORBIDDEN", msg};
        rk_refusal_note(&r);
    }
    rk_acl_release(acl);
    return ok;
}

static void handle_request(struct rk_replay *rp)
{
    zmq_msg_t ident, hdr, extra;
    struct rk_wire_hdr req;
    char why[200];
    int more, nframes = 2;

    zmq_msg_init(&ident);
    zmq_msg_init(&hdr);
    if (zmq_msg_recv(&ident, rp->router, ZMQ_DONTWAIT) < 0)
        goto out;
    if (!zmq_msg_more(&ident) || zmq_msg_recv(&hdr, rp->router, 0) < 0)
        goto out;
    more = zmq_msg_more(&hdr);
    while (more) {
        zmq_msg_init(&extra);
        zmq_msg_recv(&extra, rp->router, 0);
        more = zmq_msg_more(&extra);
        zmq_msg_close(&extra);
        nframes++;
    }
    if (rk_wire_decode(zmq_msg_data(&hdr), zmq_msg_size(&hdr), &req) != 0) {
        rk_wire_refusal_text(&req, why, sizeof why);
        send_err(rp->router, &ident, rk_ack_header_corr(zmq_msg_data(&hdr), zmq_msg_size(&hdr)),
                 "E_HEADER", why);
    }
    else if (req.cmd != RK_CMD_REPLAY && req.cmd != RK_CMD_SNAP && req.cmd != RK_CMD_STATE)
        send_err(rp->router, &ident, req.corr, "E_COMMAND", "header.command: the replay socket "
                 "serves only \"replay\", \"snap\" and \"state\"");
    else if (req.cmd != RK_CMD_STATE && req.filter.requester[0])
        send_err(rp->router, &ident, req.corr, "E_HEADER",
                 "filter.requester: only a \"state\" takes it");
    else if (nframes != 2)
        send_err(rp->router, &ident, req.corr, "E_FRAMES", "replay: takes exactly one frame after the identity");
    else if (rp->acl && !allowed(rp, &ident, &hdr, &req))
        ; /* answered */
    else if (req.cmd == RK_CMD_SNAP)
        serve_snapshot(rp, &ident, &req);
    else if (req.cmd == RK_CMD_STATE)
        serve_state(rp, &ident, &req);
    else
        serve_batch(rp, &ident, &req);
out:
    zmq_msg_close(&hdr);
    zmq_msg_close(&ident);
}

static void *replay_main(void *arg)
{
    struct rk_replay *rp = arg;
    zmq_pollitem_t items[2] = {
        {rp->pipe_thread, 0, ZMQ_POLLIN, 0},
        {rp->router, 0, ZMQ_POLLIN, 0},
    };
    for (;;) {
        if (zmq_poll(items, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (items[0].revents & ZMQ_POLLIN)
            break;   /* any word on the pipe means stop */
        if (items[1].revents & ZMQ_POLLIN)
            for (int i = 0; i < 64; i++)   /* bounded, so a stop is seen soon */
                handle_request(rp);
    }
    zmq_close(rp->router);
    zmq_close(rp->pipe_thread);
    return NULL;
}

int rk_replay_start(struct rk_replay **out, void *zctx, struct rk_log *log,
                    const char *endpoint, char *why, size_t why_len)
{
    return rk_replay_start_secure(out, zctx, log, endpoint, NULL, NULL, why, why_len);
}

int rk_replay_start_secure(struct rk_replay **out, void *zctx, struct rk_log *log,
                           const char *endpoint, const char *secret_key,
                           struct rk_acl_slot *acl, char *why, size_t why_len)
{
    struct rk_replay *rp = calloc(1, sizeof *rp);
    char pipe_ep[64];
    int hwm = REPLAY_SNDHWM, linger = 0;

    if (!rp)
        abort();
    *out = NULL;
    rp->log = log;
    snprintf(pipe_ep, sizeof pipe_ep, "inproc://rk-replay-%p", (void *)rp);
    rp->router = zmq_socket(zctx, ZMQ_ROUTER);
    rp->pipe_main = zmq_socket(zctx, ZMQ_PAIR);
    rp->pipe_thread = zmq_socket(zctx, ZMQ_PAIR);
    if (!rp->router || !rp->pipe_main || !rp->pipe_thread)
        goto fail;
    zmq_setsockopt(rp->router, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(rp->router, ZMQ_LINGER, &linger, sizeof linger);
    /* a request is one header frame; anything larger is not one */
    int64_t max_msg = 4 * RK_WIRE_HDR_MAX;
    zmq_setsockopt(rp->router, ZMQ_MAXMSGSIZE, &max_msg, sizeof max_msg);
    rp->acl = acl;
    if (secret_key && rk_zap_curve_server(rp->router, secret_key) != 0)
        goto fail;
    if (zmq_bind(rp->router, endpoint) != 0) {
        snprintf(why, why_len, "cannot bind replay endpoint %s: %s", endpoint, zmq_strerror(errno));
        goto fail_quiet;
    }
    if (zmq_bind(rp->pipe_thread, pipe_ep) != 0 || zmq_connect(rp->pipe_main, pipe_ep) != 0)
        goto fail;
    if (pthread_create(&rp->thread, NULL, replay_main, rp) != 0)
        goto fail;
    *out = rp;
    return 0;
fail:
    snprintf(why, why_len, "cannot start replay server: %s", zmq_strerror(errno));
fail_quiet:
    if (rp->router)
        zmq_close(rp->router);
    if (rp->pipe_main)
        zmq_close(rp->pipe_main);
    if (rp->pipe_thread)
        zmq_close(rp->pipe_thread);
    free(rp);
    return -1;
}

uint64_t rk_replay_events_sent(const struct rk_replay *rp)
{
    return atomic_load_explicit(&((struct rk_replay *)rp)->events_sent, memory_order_relaxed);
}

void rk_replay_stop(struct rk_replay **rpp)
{
    struct rk_replay *rp = *rpp;
    if (!rp)
        return;
    zmq_send(rp->pipe_main, "$TERM", 5, 0);
    pthread_join(rp->thread, NULL);
    zmq_close(rp->pipe_main);
    free(rp->pack);
    free(rp);
    *rpp = NULL;
}
