#include "rk_reader.h"
#include "rk_client.h"
#include "rk_event.h"
#include "rk_mp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

struct rk_reader {
    void *zctx;
    int own_ctx;
    void *dealer;
    uint64_t next;        /* next sequence the caller should see */
    uint64_t to;          /* inclusive bound, 0 = none */
    uint64_t corr;        /* of the outstanding request; 0 = none */
    uint64_t ahead_corr;  /* of a request for the batch after it; 0 = none */
    uint64_t ahead_from;  /* where that batch starts */
    int promoted;         /* the outstanding request was asked ahead */
    int packs_seen;       /* the broker answers with "evts", so queues two batches */
    uint64_t last_corr;   /* corr numbers are never reused on one reader */
    uint64_t head;
    uint64_t received;    /* events of the outstanding batch received so far */
    struct rk_wire_filter filter;
    int done;
    int snapshot;         /* iterating a snapshot, not a sequence range */
    uint64_t snap_at;     /* its sequence: asked for, then as answered */
    unsigned char cursor[RK_WIRE_CURSOR_MAX];
    size_t cursor_len;
    /* The seqs of the snapshot batch at `cursor` already delivered, so that
     * a batch asked again skips exactly those, wherever replies were lost;
     * the first `given_sorted` are sorted, for lookup. */
    uint64_t *given;
    size_t ngiven, given_sorted, given_cap;
    zmq_msg_t event;      /* frame of the record last returned, or of its "evts" */
    const void *ev;       /* the record last returned: its event bytes */
    size_t ev_len;
    const unsigned char *pack_at; /* the next record of that "evts" */
    size_t pack_left;     /* bytes from pack_at to the frame's end */
    uint64_t pack_count;  /* records of it not yet handed out */
    char error[300];
    char publisher[RK_WIRE_PUBLISHER_MAX + 1]; /* of the record last returned */
    char log_id[RK_WIRE_LOG_ID_MAX + 1];       /* the broker's, as of the last batch */
};

/* One home for the limits: the public names are the protocol's. */
_Static_assert(RK_FILTER_TOPICS_MAX == RK_WIRE_TOPICS_MAX, "filter topics");
_Static_assert(RK_FILTER_TOPIC_MAX == RK_WIRE_TOPIC_MAX, "filter topic bytes");
_Static_assert(RK_FILTER_ID_MAX == RK_WIRE_ID_MAX, "filter id bytes");

int rk_reader_open(const char *endpoint, const struct rk_client_options *o,
                   struct rk_reader **out)
{
    struct rk_reader *r = calloc(1, sizeof *r);
    struct rk_client_keys k;
    int linger = 0, rc = -1;
    if (!r)
        abort();
    *out = NULL;
    r->own_ctx = !o || !o->zmq_ctx;
    r->zctx = r->own_ctx ? zmq_ctx_new() : o->zmq_ctx;
    r->dealer = zmq_socket(r->zctx, ZMQ_DEALER);
    zmq_msg_init(&r->event);
    /* ZeroMQ keeps the keys it was given: ours are wiped at once. */
    if (r->dealer && rk_client_keys_load(o, &k, NULL, 0) == 0 &&
        rk_client_keys_apply(&k, r->dealer) == 0) {
        zmq_setsockopt(r->dealer, ZMQ_LINGER, &linger, sizeof linger);
        rc = zmq_connect(r->dealer, endpoint);
    }
    rk_client_keys_wipe(&k);
    if (rc != 0) {
        int e = errno;
        rk_reader_destroy(&r);
        errno = e;
        return -1;
    }
    rk_reader_seek(r, 1, 0);
    *out = r;
    return 0;
}

int rk_reader_new(const char *endpoint, struct rk_reader **out)
{
    return rk_reader_open(endpoint, NULL, out);
}

int rk_reader_new_in(void *zctx, const char *endpoint, struct rk_reader **out)
{
    struct rk_client_options o = {.zmq_ctx = zctx};
    return rk_reader_open(endpoint, &o, out);
}

void rk_reader_destroy(struct rk_reader **rp)
{
    struct rk_reader *r = *rp;
    if (!r)
        return;
    zmq_msg_close(&r->event);
    if (r->dealer)
        zmq_close(r->dealer);
    if (r->own_ctx)
        zmq_ctx_term(r->zctx);
    free(r->given);
    free(r);
    *rp = NULL;
}

/* Replies still to come for the outstanding request, and records of its
 * "evts" not yet handed out, are ignored from now on (by corr). */
static void forget_request(struct rk_reader *r)
{
    r->corr = 0;
    r->ahead_corr = 0;
    r->pack_count = 0;
}

void rk_reader_seek(struct rk_reader *r, uint64_t from, uint64_t to)
{
    r->snapshot = 0;
    r->next = from ? from : 1;
    r->to = to;
    r->done = to && r->next > to;
    /* Replies to an older request are recognised by corr and skipped. */
    forget_request(r);
}

void rk_reader_snapshot(struct rk_reader *r, uint64_t at)
{
    r->snapshot = 1;
    r->snap_at = at;
    r->cursor_len = 0;
    r->ngiven = r->given_sorted = 0;
    r->done = 0;
    forget_request(r);
}

uint64_t rk_reader_snapshot_seq(const struct rk_reader *r)
{
    return r->snapshot ? r->snap_at : 0;
}

static int send_request(struct rk_reader *r, uint64_t from, uint64_t *corr)
{
    struct rk_wire_hdr h = {.cmd = r->snapshot ? RK_CMD_SNAP : RK_CMD_REPLAY,
                            .corr = ++r->last_corr, .limit = RK_REPLAY_LIMIT_MAX,
                            .filter = r->filter, .flags = RK_WIRE_REPLAY_PACKED};
    if (r->snapshot) {
        h.at_seq = r->snap_at;
        memcpy(h.cursor, r->cursor, r->cursor_len);
        h.cursor_len = r->cursor_len;
    } else {
        h.from_seq = from;
        h.to_seq = r->to;
    }
    unsigned char buf[RK_WIRE_HDR_MAX];
    size_t n = rk_wire_encode(&h, buf, sizeof buf);
    if (zmq_send(r->dealer, buf, n, 0) < 0)
        return -1;
    *corr = h.corr;
    return 0;
}

/* Without a filter a full batch ends exactly RK_REPLAY_LIMIT_MAX after it
 * starts, so the batch after the outstanding one can be asked for now and
 * the broker never waits for the client between batches. Only once the
 * broker is known to pack: two batches of one message per event would fill
 * its queue (REPLAY_SNDHWM). A guess that turns out wrong (the batch was
 * short) is forgotten by corr. */
static void request_ahead(struct rk_reader *r, uint64_t from)
{
    uint64_t ahead = from + RK_REPLAY_LIMIT_MAX;
    if (r->snapshot || !r->packs_seen || rk_wire_filter_active(&r->filter) || ahead < from ||
        (r->to && ahead > r->to) || send_request(r, ahead, &r->ahead_corr) != 0) {
        r->ahead_corr = 0;
        return;
    }
    r->ahead_from = ahead;
}

static int request(struct rk_reader *r)
{
    r->received = 0;
    r->promoted = 0;
    if (send_request(r, r->next, &r->corr) != 0)
        return -1;
    request_ahead(r, r->next);
    return 0;
}

/* After an "end": the request asked ahead becomes the outstanding one when
 * it starts where the caller goes on; otherwise the next call asks anew. */
static void batch_done(struct rk_reader *r)
{
    uint64_t ahead = r->ahead_corr;
    forget_request(r);
    if (!ahead || r->done || r->next != r->ahead_from)
        return;
    r->corr = ahead;
    r->received = 0;
    r->promoted = 1;
    request_ahead(r, r->ahead_from);
}

/* Receives one reply: header decoded into *h, event frame (if any) kept. */
static int recv_reply(struct rk_reader *r, int timeout_ms, struct rk_wire_hdr *h)
{
    zmq_pollitem_t item = {r->dealer, 0, ZMQ_POLLIN, 0};
    zmq_msg_t hdr;
    int rc;
    zmq_msg_init(&hdr);
    if (zmq_msg_recv(&hdr, r->dealer, ZMQ_DONTWAIT) < 0) {
        /* Most replies are already queued: poll (a system call) only when not. */
        if (errno != EAGAIN) {
            zmq_msg_close(&hdr);
            return -1;
        }
        rc = zmq_poll(&item, 1, timeout_ms);
        if (rc <= 0) {
            zmq_msg_close(&hdr);
            if (rc == 0)
                errno = ETIMEDOUT;
            return -1;
        }
        if (zmq_msg_recv(&hdr, r->dealer, 0) < 0) {
            zmq_msg_close(&hdr);
            return -1;
        }
    }
    rc = rk_wire_decode(zmq_msg_data(&hdr), zmq_msg_size(&hdr), h);
    if (zmq_msg_more(&hdr))
        zmq_msg_recv(&r->event, r->dealer, 0);
    else {
        zmq_msg_close(&r->event); /* init over live content would leak it */
        zmq_msg_init(&r->event);
    }
    /* Frames beyond the event are not in version 1; drop them. */
    while (zmq_msg_more(&r->event)) {
        zmq_msg_t extra;
        zmq_msg_init(&extra);
        zmq_msg_recv(&extra, r->dealer, 0);
        int more = zmq_msg_more(&extra);
        zmq_msg_close(&extra);
        if (!more)
            break;
    }
    zmq_msg_close(&hdr);
    if (rc != 0)
        h->cmd = RK_CMD_NONE;
    return 0;
}

static void fill_record(struct rk_reader *r, const struct rk_wire_hdr *h, struct rk_record *rec)
{
    rec->seq = h->seq;
    rec->recv_ns = h->recv_ns;
    rec->event = r->ev;
    rec->event_len = r->ev_len;
    memcpy(r->publisher, h->publisher, sizeof r->publisher);
    rec->publisher = r->publisher;
}

static int cmp_seq(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* A snapshot batch is fixed by (at, cursor), so one that lost replies at
 * the broker's window is asked again, skipping the seqs delivered (one
 * record per entity, so a seq is never sent twice in a batch). */
static int snapshot_end(struct rk_reader *r, const struct rk_wire_hdr *h)
{
    forget_request(r);
    if (h->log_id[0])
        memcpy(r->log_id, h->log_id, sizeof r->log_id);
    r->snap_at = h->at_seq; /* a batch asked again must see the same state */
    if (h->sent != r->received) {
        qsort(r->given, r->ngiven, sizeof *r->given, cmp_seq);
        r->given_sorted = r->ngiven;
        return 0;
    }
    r->ngiven = r->given_sorted = 0;
    memcpy(r->cursor, h->cursor, h->cursor_len);
    r->cursor_len = h->cursor_len;
    r->done = h->cursor_len == 0;
    return 0;
}

/* 1 when `seq` is new to this snapshot batch, which then remembers it. */
static int snapshot_new(struct rk_reader *r, uint64_t seq)
{
    if (r->given_sorted && bsearch(&seq, r->given, r->given_sorted, sizeof seq, cmp_seq))
        return 0;
    if (r->ngiven == r->given_cap) {
        r->given_cap = r->given_cap ? 2 * r->given_cap : RK_REPLAY_LIMIT_MAX;
        if (!(r->given = realloc(r->given, r->given_cap * sizeof *r->given)))
            abort();
    }
    r->given[r->ngiven++] = seq;
    return 1;
}

/* The next record of the "evts" being read, as if it had come as an "evt"
 * (only the fields an "evt" carries are set). Returns 0, or -1 when the
 * rest of the frame is malformed: its records are dropped, which the
 * batch's "end" then shows as a loss. */
static int pack_take(struct rk_reader *r, struct rk_wire_hdr *h)
{
    struct rk_wire_record rec;
    if (rk_wire_record_next(&r->pack_at, &r->pack_left, &rec) != 0) {
        r->pack_count = 0;
        return -1;
    }
    r->pack_count--;
    h->cmd = RK_CMD_EVT;
    h->corr = r->corr;
    h->seq = rec.seq;
    h->recv_ns = rec.recv_ns;
    memcpy(h->publisher, rec.publisher ? rec.publisher : "", rec.publisher_len);
    h->publisher[rec.publisher_len] = '\0';
    r->ev = rec.event;
    r->ev_len = rec.event_len;
    return 0;
}

/* The next reply to the outstanding request, asking first when nothing is
 * outstanding: 0 with *h filled, RK_READER_EOF once the range is done, -1
 * on a timeout or an error reply (its text in r->error, errno EPROTO).
 * The records of an "evts" come one by one, each as an "evt". */
static int next_reply(struct rk_reader *r, int timeout_ms, struct rk_wire_hdr *h)
{
    for (;;) {
        if (r->pack_count && pack_take(r, h) == 0)
            return 0;
        if (r->done)
            return RK_READER_EOF;
        if (!r->corr && request(r) != 0)
            return -1;
        if (recv_reply(r, timeout_ms, h) != 0)
            return -1;
        if (h->corr != r->corr || h->cmd == RK_CMD_NONE)
            continue;
        if (h->cmd == RK_CMD_ERR) {
            snprintf(r->error, sizeof r->error, "%s: %s", h->code, h->message);
            forget_request(r);
            errno = EPROTO;
            return -1;
        }
        if (h->cmd == RK_CMD_EVTS) {
            r->pack_at = zmq_msg_data(&r->event);
            r->pack_left = zmq_msg_size(&r->event);
            r->pack_count = h->nrecords;
            r->packs_seen = 1;
            continue;
        }
        r->ev = zmq_msg_data(&r->event);
        r->ev_len = zmq_msg_size(&r->event);
        return 0;
    }
}

static int next_snapshot(struct rk_reader *r, int timeout_ms, struct rk_record *rec)
{
    struct rk_wire_hdr h;
    int rc;
    while ((rc = next_reply(r, timeout_ms, &h)) == 0) {
        if (h.cmd == RK_CMD_EVT) {
            r->received++;
            if (snapshot_new(r, h.seq)) {
                fill_record(r, &h, rec);
                return 0;
            }
            continue;
        }
        if (h.cmd == RK_CMD_SNAPEND)
            snapshot_end(r, &h);
    }
    return rc;
}

int rk_reader_next(struct rk_reader *r, int timeout_ms, struct rk_record *rec)
{
    struct rk_wire_hdr h;
    int rc;
    if (r->snapshot)
        return next_snapshot(r, timeout_ms, rec);
    while ((rc = next_reply(r, timeout_ms, &h)) == 0) {
        switch (h.cmd) {
        case RK_CMD_EVT:
            if (h.seq < r->next)
                continue; /* already delivered */
            if (h.seq > r->next && (r->received > 0 || r->promoted) &&
                !rk_wire_filter_active(&r->filter)) {
                /* Unfiltered, a batch is gap-free: a skip inside one means
                 * replies were dropped at the broker's window. Ask again
                 * from here. A batch asked for now may start later than
                 * asked (retention deleted what came before); one asked
                 * ahead, while the batch before it filled the window, may
                 * also have lost its first replies, so it gets no such
                 * benefit of the doubt: a fresh request tells them apart. */
                forget_request(r);
                continue;
            }
            r->next = h.seq + 1;
            r->received++;
            fill_record(r, &h, rec);
            return 0;
        case RK_CMD_END:
            r->head = h.head_seq;
            if (h.log_id[0])
                memcpy(r->log_id, h.log_id, sizeof r->log_id);
            if (h.has_sent && h.sent != r->received && rk_wire_filter_active(&r->filter)) {
                /* With a filter a lost reply leaves no gap to see; the
                 * count is the only evidence, and we cannot re-ask safely. */
                snprintf(r->error, sizeof r->error,
                         "replay batch lost %llu of %llu events (more than one request in flight?)",
                         (unsigned long long)(h.sent - r->received), (unsigned long long)h.sent);
                forget_request(r);
                errno = EPROTO;
                return -1;
            }
            if (h.has_sent && h.sent == r->received && h.next_seq > r->next)
                r->next = h.next_seq; /* records skipped by the filter */
            if (r->next > h.head_seq || (r->to && r->next > r->to))
                r->done = 1;
            batch_done(r);
            continue;
        default:
            continue;
        }
    }
    return rc;
}

void rk_reader_filter(struct rk_reader *r, const struct rk_wire_filter *f)
{
    if (f)
        r->filter = *f;
    else
        memset(&r->filter, 0, sizeof r->filter);
    forget_request(r);
}

/* 1 when the NUL-terminated string fits its array. */
static int fits(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

int rk_reader_set_filter(struct rk_reader *r, const struct rk_filter *f)
{
    struct rk_wire_filter w = {0};
    if (!f) {
        rk_reader_filter(r, NULL);
        return 0;
    }
    if (f->ntopics > RK_FILTER_TOPICS_MAX || f->from_ns < 0 || f->to_ns < 0 ||
        !fits(f->request_id, sizeof f->request_id) || !fits(f->kpi_id, sizeof f->kpi_id)) {
        errno = EINVAL;
        return -1;
    }
    for (unsigned i = 0; i < f->ntopics; i++) {
        if (!fits(f->topics[i], sizeof f->topics[i])) {
            errno = EINVAL;
            return -1;
        }
        memcpy(w.topics[i], f->topics[i], sizeof w.topics[i]);
    }
    w.from_ns = f->from_ns;
    w.to_ns = f->to_ns;
    w.ntopics = f->ntopics;
    memcpy(w.request_id, f->request_id, sizeof w.request_id);
    memcpy(w.kpi_id, f->kpi_id, sizeof w.kpi_id);
    rk_reader_filter(r, &w);
    return 0;
}

uint64_t rk_reader_position(const struct rk_reader *r)
{
    return r->next;
}

uint64_t rk_reader_head(const struct rk_reader *r)
{
    return r->head;
}

const char *rk_reader_error(const struct rk_reader *r)
{
    return r->error;
}

const char *rk_reader_log_id(const struct rk_reader *r)
{
    return r->log_id;
}

/* ---- request state (PROTOCOL.md 3.6)
 *
 * The broker's answer is the only fold: this part asks and pages. Every
 * page after the first asks for the first page's seq (at_seq), so all are
 * of one moment. A broker from before at_seq answers each page as of its
 * own moment; when pages then came at seqs s1 <= ... <= S, the requests of
 * a page below S might have changed in (s_k, S]. The aid events of that
 * stretch (a replay, read only for their request_id) name the ones that
 * did, or that were made meanwhile behind the cursor; those are asked
 * again one by one, which may move S on; a few rounds settle it while the
 * log is not busy (EAGAIN otherwise). */

#define STATE_ROUNDS 8

struct state_item {
    uint64_t seq;                /* of the page it came in */
    char id[RK_WIRE_ID_MAX + 1], requester[8], state[16];
    void *map;                   /* NULL: a placeholder not yet asked for */
    size_t map_len;
    int stale;
};

struct state_run {
    struct state_item *v;
    size_t n, cap;
    uint64_t seq;                /* the highest page seq */
    const char *requester;       /* the query's, or NULL */
};

static void item_clear(struct state_item *it)
{
    free(it->map);
    memset(it, 0, sizeof *it);
}

/* The str value of `key` in the map at m into out ("" when absent). */
static void map_str(const struct rk_mp_val *m, const unsigned char *end, const char *key,
                    char *out, size_t cap)
{
    struct rk_mp_reader r = {m->p, (size_t)(end - m->p), 0};
    struct rk_mp_val k, v;
    out[0] = '\0';
    for (uint32_t i = 0; i < m->n; i++) {
        if (rk_mp_next(&r, &k) || rk_mp_next(&r, &v))
            return;
        if (k.kind == RK_MP_STR && rk_mp_str_is(&k, key) && v.kind == RK_MP_STR) {
            size_t n = v.n < cap - 1 ? v.n : cap - 1;
            memcpy(out, v.p, n);
            out[n] = '\0';
            return;
        }
        if ((v.kind == RK_MP_ARRAY || v.kind == RK_MP_MAP) && rk_mp_skip_items(&r, &v))
            return;
    }
}

static struct state_item *state_find(struct state_run *run, const char *id)
{
    for (size_t i = 0; i < run->n; i++)
        if (strcmp(run->v[i].id, id) == 0)
            return &run->v[i];
    return NULL;
}

/* Puts one request of a page in, replacing what was there. */
static int state_put(struct state_run *run, const unsigned char *p, size_t len, uint64_t seq)
{
    struct rk_mp_reader r = {p, len, 0};
    struct rk_mp_val m;
    struct state_item it = {.seq = seq};
    if (rk_mp_next(&r, &m) || m.kind != RK_MP_MAP)
        return -1;
    map_str(&m, p + len, "request_id", it.id, sizeof it.id);
    map_str(&m, p + len, "requester", it.requester, sizeof it.requester);
    map_str(&m, p + len, "state", it.state, sizeof it.state);
    if (!it.id[0])
        return -1;
    if (!(it.map = malloc(len)))
        abort();
    memcpy(it.map, p, len);
    it.map_len = len;
    struct state_item *old = state_find(run, it.id);
    if (old) {
        item_clear(old);
        *old = it;
        return 0;
    }
    if (run->n == run->cap) {
        run->cap = run->cap ? 2 * run->cap : 64;
        if (!(run->v = realloc(run->v, run->cap * sizeof *run->v)))
            abort();
    }
    run->v[run->n++] = it;
    return 0;
}

/* Asks one page; returns 0 with its items in, RK_READER_EOF when the
 * cursor says it was the last, -1 on a timeout or refusal. */
static int state_page(struct rk_reader *r, struct state_run *run, const struct rk_wire_filter *f,
                      uint64_t at, int timeout_ms)
{
    struct rk_wire_hdr h = {.cmd = RK_CMD_STATE, .corr = ++r->last_corr,
                            .limit = RK_REPLAY_LIMIT_MAX, .filter = *f, .at_seq = at};
    unsigned char buf[RK_WIRE_HDR_MAX];
    memcpy(h.cursor, r->cursor, r->cursor_len);
    h.cursor_len = r->cursor_len;
    uint64_t corr = h.corr;
    size_t n = rk_wire_encode(&h, buf, sizeof buf);
    if (n == 0 || zmq_send(r->dealer, buf, n, 0) < 0)
        return -1;
    for (;;) {
        if (recv_reply(r, timeout_ms, &h) != 0)
            return -1;
        if (h.corr != corr || h.cmd == RK_CMD_NONE)
            continue;
        if (h.cmd == RK_CMD_ERR) {
            snprintf(r->error, sizeof r->error, "%s: %s", h.code, h.message);
            errno = EPROTO;
            return -1;
        }
        if (h.cmd == RK_CMD_REQS)
            break;
    }
    const unsigned char *p = zmq_msg_data(&r->event);
    struct rk_mp_reader mr = {p, zmq_msg_size(&r->event), 0};
    struct rk_mp_val a;
    if (rk_mp_next(&mr, &a) || a.kind != RK_MP_ARRAY || a.n != h.nrecords) {
        snprintf(r->error, sizeof r->error, "reqs: the requests frame is not an array of %llu",
                 (unsigned long long)h.nrecords);
        errno = EPROTO;
        return -1;
    }
    for (uint32_t i = 0; i < a.n; i++) {
        size_t start = mr.off;
        if (rk_mp_skip(&mr) || state_put(run, p + start, mr.off - start, h.seq) != 0) {
            snprintf(r->error, sizeof r->error, "reqs: request %u of the page is not a map with "
                     "a request_id", (unsigned)i);
            errno = EPROTO;
            return -1;
        }
    }
    if (h.log_id[0])
        memcpy(r->log_id, h.log_id, sizeof r->log_id);
    if (h.seq > run->seq)
        run->seq = h.seq;
    memcpy(r->cursor, h.cursor, h.cursor_len);
    r->cursor_len = h.cursor_len;
    return h.cursor_len && !f->request_id[0] ? 0 : RK_READER_EOF;
}

static int requester_in(const struct state_run *run, const char *code)
{
    return !run->requester || strncmp(code, run->requester, strlen(run->requester)) == 0;
}

/* Marks the requests an aid event in (lo, run->seq] changed after their
 * page, and adds those made meanwhile. Returns how many to ask again. */
static int state_mark(struct rk_reader *r, struct state_run *run, const char *request_id,
                      uint64_t lo, int timeout_ms, size_t *stale)
{
    struct rk_wire_filter f = {.ntopics = 1, .topics = {"aid."}};
    struct rk_record rec;
    struct rk_event_info info;
    int rc;
    *stale = 0;
    if (request_id)
        snprintf(f.request_id, sizeof f.request_id, "%s", request_id);
    rk_reader_seek(r, lo + 1, run->seq);
    rk_reader_filter(r, &f);
    while ((rc = rk_reader_next(r, timeout_ms, &rec)) == 0) {
        if (rk_event_validate(rec.event, rec.event_len, 0, &info, NULL) != RK_V_OK)
            continue;
        struct state_item *it = state_find(run, info.request_id);
        if (it && it->seq < rec.seq && !it->stale) {
            it->stale = 1;
            ++*stale;
        } else if (!it && info.type == RK_EV_AID_REQUEST && requester_in(run, info.municipality)) {
            /* made behind the cursor: a placeholder, asked for below */
            if (run->n == run->cap) {
                run->cap = run->cap ? 2 * run->cap : 64;
                if (!(run->v = realloc(run->v, run->cap * sizeof *run->v)))
                    abort();
            }
            struct state_item *n = &run->v[run->n++];
            memset(n, 0, sizeof *n);
            snprintf(n->id, sizeof n->id, "%s", info.request_id);
            n->stale = 1;
            ++*stale;
        }
    }
    return rc == RK_READER_EOF ? 0 : -1;
}

/* Asks each stale request again, alone; drops a placeholder the broker
 * does not know (its request was refused). */
static int state_refresh(struct rk_reader *r, struct state_run *run, int timeout_ms)
{
    for (size_t i = 0; i < run->n; i++) {
        if (!run->v[i].stale)
            continue;
        struct rk_wire_filter f = {0};
        snprintf(f.request_id, sizeof f.request_id, "%s", run->v[i].id);
        run->v[i].stale = 0;
        if (!run->v[i].map)
            run->v[i].seq = 0;
        r->cursor_len = 0;
        if (state_page(r, run, &f, 0, timeout_ms) < 0)
            return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < run->n; i++)
        if (run->v[i].map)
            run->v[k++] = run->v[i];
        else
            item_clear(&run->v[i]);
    run->n = k;
    return 0;
}

static int cmp_item(const void *a, const void *b)
{
    const struct state_item *x = a, *y = b;
    return strcmp(x->id, y->id);
}

static int state_settle(struct rk_reader *r, struct state_run *run, const char *request_id,
                        int timeout_ms)
{
    for (int round = 0; round < STATE_ROUNDS; round++) {
        uint64_t lo = run->seq;
        size_t stale;
        for (size_t i = 0; i < run->n; i++)
            if (run->v[i].seq < lo)
                lo = run->v[i].seq;
        if (lo == run->seq)
            return 0;
        if (state_mark(r, run, request_id, lo, timeout_ms, &stale) != 0)
            return -1;
        uint64_t target = run->seq;
        if (stale && state_refresh(r, run, timeout_ms) != 0)
            return -1;
        /* unchanged in (its page, target]: its state at target is the same */
        for (size_t i = 0; i < run->n; i++)
            if (run->v[i].seq < target)
                run->v[i].seq = target;
    }
    snprintf(r->error, sizeof r->error, "the log kept changing the requests' state: no "
             "moment found in %d rounds; ask again", STATE_ROUNDS);
    errno = EAGAIN;
    return -1;
}

int rk_reader_state(struct rk_reader *r, const char *request_id, const char *requester,
                    int timeout_ms, struct rk_state *out)
{
    struct rk_wire_filter f = {0}, saved = r->filter;
    struct state_run run = {.requester = requester && requester[0] ? requester : NULL};
    int rc;

    memset(out, 0, sizeof *out);
    if ((request_id && (!request_id[0] || strlen(request_id) > RK_WIRE_ID_MAX)) ||
        (run.requester && strlen(run.requester) != 2 && strlen(run.requester) != 6)) {
        errno = EINVAL;
        return -1;
    }
    if (request_id)
        snprintf(f.request_id, sizeof f.request_id, "%s", request_id);
    if (run.requester)
        snprintf(f.requester, sizeof f.requester, "%s", run.requester);
    forget_request(r);
    r->snapshot = 0;
    r->cursor_len = 0;
    r->error[0] = '\0';
    /* Every page after the first asks for the first's moment; a broker
     * from before at_seq ignores it, and then the pages are settled here. */
    for (int attempt = 0;; attempt++) {
        while ((rc = state_page(r, &run, &f, run.seq, timeout_ms)) == 0)
            ;
        if (rc < 0 && errno == EPROTO && strncmp(r->error, "E_PRUNED", 8) == 0 && attempt < 3) {
            /* retention moved on under the first page's moment: again */
            for (size_t i = 0; i < run.n; i++)
                item_clear(&run.v[i]);
            run.n = 0;
            run.seq = 0;
            r->cursor_len = 0;
            continue;
        }
        break;
    }
    if (rc == RK_READER_EOF)
        rc = state_settle(r, &run, request_id, timeout_ms);
    r->filter = saved;
    rk_reader_seek(r, 1, 0);
    if (rc < 0) {
        int e = errno;
        for (size_t i = 0; i < run.n; i++)
            item_clear(&run.v[i]);
        free(run.v);
        errno = e;
        return -1;
    }
    qsort(run.v, run.n, sizeof *run.v, cmp_item);
    out->seq = run.seq;
    out->count = run.n;
    memcpy(out->log_id, r->log_id, sizeof out->log_id);
    if (!(out->requests = calloc(run.n ? run.n : 1, sizeof *out->requests)))
        abort();
    for (size_t i = 0; i < run.n; i++) {
        struct state_item *it = &run.v[i];
        out->requests[i] = (struct rk_request_state){it->id, it->requester, it->state, it->map,
                                                     it->map_len};
    }
    out->internal = run.v; /* owns the strings and maps */
    out->internal_n = run.n;
    return 0;
}

void rk_state_free(struct rk_state *st)
{
    struct state_item *v = st->internal;
    for (size_t i = 0; i < st->internal_n; i++)
        item_clear(&v[i]);
    free(v);
    free(st->requests);
    memset(st, 0, sizeof *st);
}
