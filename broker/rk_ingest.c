#include "rk_ingest.h"
#include "rk_aid.h"
#include "rk_diag.h"
#include "rk_mp.h"
#include "rk_sock.h"
#include "rk_time.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INGEST_HWM 100000

/* libzmq's ZMQ_MAXMSGSIZE drops the connection when a frame's header
 * announces more: no reply, and its monitor reports only a disconnect, as
 * for a peer that hung up, so the broker can neither count nor log it. The
 * broker refuses a message whose frames fit but add up to more than
 * max_message itself, with its corr. Reading frames beyond the limit to
 * answer them too was tried (factor 2): under a flood of big junk (it97)
 * the queued frames then grew the broker past its memory bound, so a frame
 * over max_message is still dropped unseen (PROTOCOL.md 2). */
#define READ_BEYOND_LIMIT 1

/* An oversize message says a client or max_message is wrong, which the
 * refusal summary could hide under other codes: it has its own line, the
 * first after a quiet spell at once, then at most one per spell, summed. */
#define OVERSIZE_LOG_EVERY_NS (10 * 1000000000LL)

/* The oversize messages not yet logged, and the latest of them. */
struct oversize_log {
    unsigned long long unlogged;
    int64_t logged_ns;
    size_t bytes;
    int frames;
    char key[RK_KEY_Z85_LEN + 1];   /* its CURVE key; "-" without CURVE */
};

struct rk_ingest {
    void *sock, *mon;
    int64_t max_message;            /* bytes of all frames; 0 = no limit */
    struct oversize_log oversize;
    struct rk_ack *ack;
    struct rk_acl_slot *acl;
    struct rk_acl *acl_now;         /* held for one turn */
    const struct rk_acl_tenant *tenant_now; /* the message being judged's (sender()) */
};

int rk_ingest_open(struct rk_ingest **out, void *zctx, const struct rk_ingest_options *opt)
{
    struct rk_sock_options so = {.type = ZMQ_ROUTER, .hwm = INGEST_HWM,
                                 .max_message = READ_BEYOND_LIMIT * opt->max_message,
                                 .curve_secret = opt->curve_secret};
    struct rk_ingest *in = calloc(1, sizeof *in);
    if (!in)
        abort();
    in->max_message = opt->max_message;
    in->acl = opt->acl;
    *out = in;
    in->sock = rk_sock_bind(zctx, opt->endpoint, &so, "ingest");
    if (!in->sock)
        return -1;
    in->mon = rk_sock_monitor(zctx, in->sock, "inproc://rk-monitor-ingest");
    return 0;
}

/* "publish_oversize count=N bytes=B frames=F key=K max_message=M": N
 * oversize messages since the last such line, B, F and K of the latest. */
static void log_oversize(struct rk_ingest *in, int force)
{
    struct oversize_log *o = &in->oversize;
    int64_t now = rk_time_now();
    if (!o->unlogged || (!force && now - o->logged_ns < OVERSIZE_LOG_EVERY_NS))
        return;
    RK_DIAG(RK_DIAG_WARN, "publish_oversize",
            "count=%llu bytes=%zu frames=%d key=%s max_message=%lld", o->unlogged, o->bytes,
            o->frames, o->key, (long long)in->max_message);
    o->unlogged = 0;
    o->logged_ns = now;
}

void rk_ingest_close(struct rk_ingest **ip)
{
    struct rk_ingest *in = *ip;
    if (!in)
        return;
    log_oversize(in, 1);
    if (in->sock) {
        rk_sock_monitor_close(in->sock, &in->mon);
        zmq_close(in->sock);
    }
    free(in);
    *ip = NULL;
}

void rk_ingest_set_ack(struct rk_ingest *in, struct rk_ack *ack)
{
    in->ack = ack;
}

void *rk_ingest_socket(struct rk_ingest *in)
{
    return in->sock;
}

void *rk_ingest_monitor(struct rk_ingest *in)
{
    return in->mon;
}

int64_t rk_ingest_connections(struct rk_ingest *in)
{
    return rk_sock_monitor_drain(in->mon, "ingest");
}

void rk_ingest_batch_init(struct rk_ingest_batch *b, size_t max)
{
    /* a pubs taken while the batch holds max - 1 events still fits */
    b->msgs = calloc(max + RK_WIRE_PUBS_MAX, sizeof *b->msgs);
    b->items = calloc(max + RK_WIRE_PUBS_MAX, sizeof *b->items);
    if (!b->msgs || !b->items)
        abort();
    b->n = 0;
    b->max = max;
}

void rk_ingest_batch_clear(struct rk_ingest_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        zmq_msg_close(&b->msgs[i].event);
        zmq_msg_close(&b->msgs[i].ident);
    }
    b->n = 0;
}

void rk_ingest_batch_free(struct rk_ingest_batch *b)
{
    rk_ingest_batch_clear(b);
    free(b->msgs);
    free(b->items);
    b->msgs = NULL;
    b->items = NULL;
}

/* What arrived after the identity frame. */
struct body {
    int frames;
    size_t bytes;  /* of all those frames */
};

/* Receives the frames after the identity: header into `hdr`, the first
 * following frame into `event`; counts and discards any further frames.
 * Returns 0, or -1 when the socket failed. */
static int recv_body(void *sock, zmq_msg_t *hdr, zmq_msg_t *event, struct body *body)
{
    *body = (struct body){1, 0};
    if (zmq_msg_recv(hdr, sock, 0) < 0)
        return -1;
    body->bytes = zmq_msg_size(hdr);
    if (!zmq_msg_more(hdr))
        return 0;
    body->frames++;
    if (zmq_msg_recv(event, sock, 0) < 0)
        return -1;
    body->bytes += zmq_msg_size(event);
    int more = zmq_msg_more(event);
    while (more) {
        zmq_msg_t extra;
        zmq_msg_init(&extra);
        zmq_msg_recv(&extra, sock, 0);
        more = zmq_msg_more(&extra);
        body->bytes += zmq_msg_size(&extra);
        zmq_msg_close(&extra);
        body->frames++;
    }
    return 0;
}

/* A message over max_message, whatever it holds: refused before anything
 * in it is judged, so that no part of it is stored. */
static int oversize(struct rk_ingest *in, struct rk_ingest_msg *m, zmq_msg_t *hdr,
                    const struct body *body)
{
    struct oversize_log *o = &in->oversize;
    const char *key = zmq_msg_gets(hdr, "User-Id");
    char why[160];
    if (!in->max_message || body->bytes <= (size_t)in->max_message)
        return 0;
    snprintf(why, sizeof why, "message: %zu bytes in %d frames, over the broker's "
             "max_message of %lld", body->bytes, body->frames, (long long)in->max_message);
    rk_ack_refuse(in->ack, &m->ident, m->corr, "E_TOO_LONG", why);
    o->unlogged++;
    o->bytes = body->bytes;
    o->frames = body->frames;
    /* rk_zap's User-Id: Z85, no space or quote, so it goes bare */
    snprintf(o->key, sizeof o->key, "%s", key && key[0] ? key : "-");
    log_oversize(in, 0);
    return 1;
}

/* The ACL: the connection's key (sender() found its tenant) must still be
 * listed, and its tenant may publish for the municipality the event claims.
 * A key outside the ACL is refused at once: it is no tenant, so it may not
 * use up anyone's producer numbers. A tenant publishing for a municipality
 * it may not is refused like an invalid event: *code and why are set and
 * 1 returned. Returns 0 when refused at once. */
static int may_publish(struct rk_ingest *in, struct rk_ingest_msg *m,
                       const struct rk_event_info *info, const char **code, char *why,
                       size_t why_len)
{
    const struct rk_acl_tenant *t = in->tenant_now;
    if (!t) {
        rk_ack_refuse(in->ack, &m->ident, m->corr, "E_FORBIDDEN",
                      "key: this client's key is not in the broker's ACL (revoked?)");
        return 0;
    }
    memcpy(m->publisher, m->key, RK_KEY_Z85_LEN + 1);
    if (!rk_acl_may_publish(t, info->municipality)) {
        *code = "E_FORBIDDEN";
        snprintf(why, why_len, "event.municipality: tenant %s may not publish for %s",
                 rk_acl_tenant_name(t), info->municipality);
    }
    return 1;
}

/* A producer id must be well formed; whether its number is new, a retry or
 * out of order is rk_apply's to say, in the batch's transaction. Returns 0
 * when refused. */
static int admit_number(struct rk_ingest *in, struct rk_ingest_msg *m,
                        const struct rk_wire_hdr *h)
{
    if (!h->producer[0] || rk_event_id_valid(h->producer, strlen(h->producer)))
        return 1;
    char why[128];
    snprintf(why, sizeof why, "pub.producer: must be 1..%d characters of A-Z a-z 0-9 . _ : -",
             RK_WIRE_PRODUCER_MAX);
    rk_ack_refuse(in->ack, &m->ident, m->corr, "E_PRODUCER", why);
    return 0;
}

static void admit(struct rk_ingest_batch *b, const struct rk_wire_hdr *h, const void *event,
                  size_t len, const struct rk_event_info *info, const struct rk_aid_event *aid)
{
    struct rk_ingest_msg *m = &b->msgs[b->n];
    struct rk_apply_item *it = &b->items[b->n];
    m->group_ack = (h->flags & RK_WIRE_PUB_ACKS) != 0;
    rk_event_topic(info, m->topic);
    memcpy(m->producer, h->producer, sizeof m->producer);
    memcpy(m->entity, info->type == RK_EV_KPI_UPDATE ? info->kpi_id : info->request_id,
           sizeof m->entity);
    *it = (struct rk_apply_item){
        .rec = {.event = event, .event_len = len,
                .publisher = m->publisher, .publisher_len = strlen(m->publisher),
                .producer = m->producer, .producer_len = strlen(m->producer),
                .producer_seq = h->producer_seq,
                .tags = {.type = (uint8_t)info->type, .fiscal_year = (uint16_t)info->fiscal_year,
                         .entity = m->entity, .entity_len = strlen(m->entity)}},
        .aid = *aid};
    memcpy(it->rec.tags.municipality, info->municipality, 6);
    b->n++;
}

/* A numbered publish refused for its content or its rights joins the
 * batch, so that its number is used in order with the stored ones and a
 * retry gets the same answer (PROTOCOL.md 3.2); others are answered now. */
static int refuse_event(struct rk_ingest *in, struct rk_ingest_batch *b,
                        const struct rk_wire_hdr *h, const char *code, const char *why)
{
    struct rk_ingest_msg *m = &b->msgs[b->n];
    if (!h->producer[0] && !m->pubs_count) { /* a pubs is answered whole, after its batch */
        rk_ack_refuse(in->ack, &m->ident, h->corr, code, why);
        return 0;
    }
    memcpy(m->producer, h->producer, sizeof m->producer);
    m->topic[0] = m->entity[0] = '\0';
    struct rk_apply_item *it = &b->items[b->n];
    *it = (struct rk_apply_item){
        .rec = {.producer = m->producer, .producer_len = strlen(m->producer),
                .producer_seq = h->producer_seq},
        .admission_code = code};
    snprintf(it->message, sizeof it->message, "%s", why);
    b->n++;
    return 1;
}

/* The event of a well-formed pub: validated, then the ACL. Returns 1 when
 * it joined the batch, stored or to be refused there. */
static int judge_event(struct rk_ingest *in, struct rk_ingest_batch *b,
                       const struct rk_wire_hdr *h, const void *event, size_t len,
                       int64_t now_ns)
{
    struct rk_ingest_msg *m = &b->msgs[b->n];
    struct rk_event_info info;
    struct rk_aid_event aid;
    struct rk_verror verr;
    const char *code = NULL;
    char why[256];
    if (rk_aid_event_validate(event, len, now_ns, &info, &aid, &verr) != RK_V_OK)
        return refuse_event(in, b, h, rk_verr_name(verr.code), verr.message);
    if (in->acl && !may_publish(in, m, &info, &code, why, sizeof why))
        return 0; /* (a pubs checked its key first: never so) */
    if (code)
        return refuse_event(in, b, h, code, why);
    admit(b, h, event, len, &info, &aid);
    return 1;
}

/* Where each of the `count` events of a pubs frame begins: off[0..count],
 * off[count] its end. Returns 0, or -1 when the frame is not exactly
 * `count` complete MessagePack values. */
static int split_events(const unsigned char *p, size_t len, size_t count, size_t *off)
{
    struct rk_mp_reader r = {p, len, 0};
    for (size_t i = 0; i < count; i++) {
        off[i] = r.off;
        if (r.off == len || rk_mp_skip(&r))
            return -1;
    }
    off[count] = r.off;
    return r.off == len ? 0 : -1;
}

/* The message slot for event i of a pubs: the first holds the frame and
 * the connection; the others share them. */
static struct rk_ingest_msg *pubs_slot(struct rk_ingest_batch *b, struct rk_ingest_msg *first,
                                       const struct rk_wire_hdr *h, size_t i)
{
    struct rk_ingest_msg *m = &b->msgs[b->n];
    if (i > 0) {
        zmq_msg_init(&m->ident);
        zmq_msg_copy(&m->ident, &first->ident);
        zmq_msg_init(&m->event);
    }
    m->corr = h->corr;
    m->publisher[0] = '\0';
    if (m != first) {
        memcpy(m->key, first->key, sizeof m->key);
        memcpy(m->tenant, first->tenant, sizeof m->tenant);
        memcpy(m->address, first->address, sizeof m->address);
    }
    m->pubs_index = (uint32_t)i;
    m->pubs_count = (uint32_t)h->nrecords;
    return m;
}

/* A pubs: every event judged as a pub's, each joining the batch stored or
 * refused, so that one "outcomes" answers them all after the commit. The
 * events are numbered from the header's, one each. Returns how many
 * joined: the count, or 0 when the frame is refused whole. */
static int judge_pubs(struct rk_ingest *in, struct rk_ingest_batch *b,
                      const struct rk_wire_hdr *h, int64_t now_ns)
{
    struct rk_ingest_msg *first = &b->msgs[b->n];
    const unsigned char *frame = zmq_msg_data(&first->event);
    size_t off[RK_WIRE_PUBS_MAX + 1], count = (size_t)h->nrecords;
    if (split_events(frame, zmq_msg_size(&first->event), count, off)) {
        rk_ack_refuse(in->ack, &first->ident, h->corr, "E_FRAMES", "pubs: the event frame "
                      "must hold exactly `count` complete MessagePack values");
        return 0;
    }
    if (!admit_number(in, first, h))
        return 0;
    if (in->acl && !in->tenant_now) {
        rk_ack_refuse(in->ack, &first->ident, h->corr, "E_FORBIDDEN",
                      "key: this client's key is not in the broker's ACL (revoked?)");
        return 0;
    }
    struct rk_wire_hdr one = *h;
    for (size_t i = 0; i < count; i++) {
        pubs_slot(b, first, h, i);
        one.producer_seq = h->producer[0] ? h->producer_seq + i : 0;
        judge_event(in, b, &one, frame + off[i], off[i + 1] - off[i], now_ns);
    }
    return (int)count;
}

/* Who sent it, once per message: key, tenant (also kept as
 * in->tenant_now for the ACL checks of its events), address, for the
 * refusal log and the per-tenant metrics. */
static void sender(struct rk_ingest *in, struct rk_ingest_msg *m, zmq_msg_t *hdr)
{
    const char *key = zmq_msg_gets(hdr, "User-Id"), *address = zmq_msg_gets(hdr, "Peer-Address");
    in->tenant_now = in->acl_now && key ? rk_acl_find(in->acl_now, key) : NULL;
    snprintf(m->key, sizeof m->key, "%s", key ? key : "");
    snprintf(m->tenant, sizeof m->tenant, "%s",
             in->tenant_now ? rk_acl_tenant_name(in->tenant_now) : "");
    snprintf(m->address, sizeof m->address, "%s", address ? address : "");
    rk_ack_sender(in->ack, m->key, m->tenant, m->address);
}

/* Checks a received publish in order; answers the first check it fails.
 * Returns 1 when it joined the batch. */
static int judge(struct rk_ingest *in, struct rk_ingest_batch *b, zmq_msg_t *hdr,
                 const struct body *body, int64_t now_ns)
{
    struct rk_ingest_msg *m = &b->msgs[b->n];
    struct rk_wire_hdr h;
    sender(in, m, hdr);
    int bad = rk_wire_decode(zmq_msg_data(hdr), zmq_msg_size(hdr), &h) != 0;
    /* A refused header still names its corr when the client sent one. */
    m->corr = bad ? rk_ack_header_corr(zmq_msg_data(hdr), zmq_msg_size(hdr)) : h.corr;
    if (oversize(in, m, hdr, body)) {
        ; /* answered */
    } else if (bad) {
        char why[200];
        rk_wire_refusal_text(&h, why, sizeof why);
        rk_ack_refuse(in->ack, &m->ident, m->corr, "E_HEADER", why);
    } else if (h.cmd == RK_CMD_PING && body->frames == 1) {
        rk_ack_pong(in->ack, &m->ident, h.corr);
    } else if (h.cmd != RK_CMD_PUB && h.cmd != RK_CMD_PUBS && h.cmd != RK_CMD_PING) {
        rk_ack_refuse(in->ack, &m->ident, h.corr, "E_COMMAND", "header.command: the ingest "
                      "socket serves only \"pub\", \"pubs\" and \"ping\"");
    } else if (body->frames != (h.cmd == RK_CMD_PING ? 1 : 2)) {
        rk_ack_refuse(in->ack, &m->ident, h.corr, "E_FRAMES", h.cmd == RK_CMD_PING ?
                      "ping: takes no frame after the header" :
                      "pub: takes exactly one event frame after the header");
    } else if (h.cmd == RK_CMD_PUBS) {
        return judge_pubs(in, b, &h, now_ns);
    } else if (admit_number(in, m, &h)) {
        m->pubs_count = 0;
        return judge_event(in, b, &h, zmq_msg_data(&m->event), zmq_msg_size(&m->event), now_ns);
    }
    return 0;
}

/* Takes one message. Returns -1 when nothing was waiting. */
static int take_one(struct rk_ingest *in, struct rk_ingest_batch *b, int64_t now_ns)
{
    struct rk_ingest_msg *m = &b->msgs[b->n];
    zmq_msg_t hdr;
    int taken = 0;

    m->publisher[0] = '\0';
    m->pubs_count = 0;
    zmq_msg_init(&m->ident);
    if (zmq_msg_recv(&m->ident, in->sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m->ident);
        return -1;
    }
    zmq_msg_init(&hdr);
    zmq_msg_init(&m->event);
    struct body body;
    if (recv_body(in->sock, &hdr, &m->event, &body) == 0)
        taken = judge(in, b, &hdr, &body, now_ns);
    zmq_msg_close(&hdr);
    if (!taken) {
        zmq_msg_close(&m->event);
        zmq_msg_close(&m->ident);
    }
    return taken;
}

size_t rk_ingest_take(struct rk_ingest *in, struct rk_ingest_batch *b, int64_t now_ns)
{
    size_t taken = 0;
    in->acl_now = in->acl ? rk_acl_slot_get(in->acl) : NULL;
    while (b->n < b->max && take_one(in, b, now_ns) >= 0)
        taken++;
    rk_acl_release(in->acl_now);
    in->acl_now = NULL;
    return taken;
}
