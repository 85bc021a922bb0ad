#include "rk_ingest.h"
#include "rk_aid.h"
#include "rk_sock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INGEST_HWM 100000

struct rk_ingest {
    void *sock, *mon;
    struct rk_ack *ack;
    struct rk_acl_slot *acl;
    struct rk_acl *acl_now;         /* held for one turn */
};

int rk_ingest_open(struct rk_ingest **out, void *zctx, const struct rk_ingest_options *opt)
{
    struct rk_sock_options so = {.type = ZMQ_ROUTER, .hwm = INGEST_HWM,
                                 .max_message = opt->max_message,
                                 .curve_secret = opt->curve_secret};
    struct rk_ingest *in = calloc(1, sizeof *in);
    if (!in)
        abort();
    in->acl = opt->acl;
    *out = in;
    in->sock = rk_sock_bind(zctx, opt->endpoint, &so, "ingest");
    if (!in->sock)
        return -1;
    in->mon = rk_sock_monitor(zctx, in->sock, "inproc://rk-monitor-ingest");
    return 0;
}

void rk_ingest_close(struct rk_ingest **ip)
{
    struct rk_ingest *in = *ip;
    if (!in)
        return;
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
    return rk_sock_monitor_drain(in->mon);
}

void rk_ingest_batch_init(struct rk_ingest_batch *b, size_t max)
{
    b->msgs = calloc(max, sizeof *b->msgs);
    b->items = calloc(max, sizeof *b->items);
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

/* Receives the frames after the identity: header into `hdr`, the first
 * following frame into `event`; counts and discards any further frames. */
static int recv_body(void *sock, zmq_msg_t *hdr, zmq_msg_t *event)
{
    int frames = 1;
    if (zmq_msg_recv(hdr, sock, 0) < 0)
        return -1;
    if (!zmq_msg_more(hdr))
        return frames;
    frames++;
    if (zmq_msg_recv(event, sock, 0) < 0)
        return -1;
    int more = zmq_msg_more(event);
    while (more) {
        zmq_msg_t extra;
        zmq_msg_init(&extra);
        zmq_msg_recv(&extra, sock, 0);
        more = zmq_msg_more(&extra);
        zmq_msg_close(&extra);
        frames++;
    }
    return frames;
}

/* The ACL: the connection's key (libzmq's User-Id, set by rk_zap) must
 * still be listed, and its tenant may publish for the municipality the
 * event claims. Records the key for the log. */
static int may_publish(struct rk_ingest *in, struct rk_ingest_msg *m, zmq_msg_t *hdr,
                       const struct rk_event_info *info)
{
    const char *key = zmq_msg_gets(hdr, "User-Id");
    const struct rk_acl_tenant *t = in->acl_now ? rk_acl_find(in->acl_now, key) : NULL;
    char why[256];
    if (!t) {
        rk_ack_refuse(in->ack, &m->ident, m->corr, "E_FORBIDDEN",
                      "key: this client's key is not in the broker's ACL (revoked?)");
        return 0;
    }
    if (!rk_acl_may_publish(t, info->municipality)) {
        snprintf(why, sizeof why, "event.municipality: tenant %s may not publish for %s",
                 rk_acl_tenant_name(t), info->municipality);
        rk_ack_refuse(in->ack, &m->ident, m->corr, "E_FORBIDDEN", why);
        return 0;
    }
    memcpy(m->publisher, key, RK_KEY_Z85_LEN + 1);
    return 1;
}

/* A producer id must be well formed; whether its number is new, a retry or
 * a late one is rk_apply's to say, in the batch's transaction. Returns 0
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

static void admit(struct rk_ingest_batch *b, const struct rk_wire_hdr *h,
                  const struct rk_event_info *info, const struct rk_aid_event *aid)
{
    struct rk_ingest_msg *m = &b->msgs[b->n];
    struct rk_apply_item *it = &b->items[b->n];
    m->group_ack = (h->flags & RK_WIRE_PUB_ACKS) != 0;
    rk_event_topic(info, m->topic);
    memcpy(m->producer, h->producer, sizeof m->producer);
    memcpy(m->entity, info->type == RK_EV_KPI_UPDATE ? info->kpi_id : info->request_id,
           sizeof m->entity);
    *it = (struct rk_apply_item){
        .rec = {.event = zmq_msg_data(&m->event), .event_len = zmq_msg_size(&m->event),
                .publisher = m->publisher, .publisher_len = strlen(m->publisher),
                .producer = m->producer, .producer_len = strlen(m->producer),
                .producer_seq = h->producer_seq,
                .tags = {.type = (uint8_t)info->type, .fiscal_year = (uint16_t)info->fiscal_year,
                         .entity = m->entity, .entity_len = strlen(m->entity)}},
        .aid = *aid};
    memcpy(it->rec.tags.municipality, info->municipality, 6);
    b->n++;
}

/* Checks a received publish in order; answers the first check it fails.
 * Returns 1 when it joined the batch. */
static int judge(struct rk_ingest *in, struct rk_ingest_batch *b, zmq_msg_t *hdr, int frames,
                 int64_t now_ns)
{
    struct rk_ingest_msg *m = &b->msgs[b->n];
    struct rk_wire_hdr h;
    struct rk_event_info info;
    struct rk_aid_event aid;
    struct rk_verror verr;
    int bad = rk_wire_decode(zmq_msg_data(hdr), zmq_msg_size(hdr), &h) != 0;
    m->corr = h.corr;
    if (bad) {
        rk_ack_refuse(in->ack, &m->ident, h.corr, "E_HEADER", "header: not a renkei version-1 header");
    } else if (h.cmd != RK_CMD_PUB) {
        rk_ack_refuse(in->ack, &m->ident, h.corr, "E_COMMAND",
                      "header.command: the ingest socket serves only \"pub\"");
    } else if (frames != 2) {
        rk_ack_refuse(in->ack, &m->ident, h.corr, "E_FRAMES",
                      "pub: takes exactly one event frame after the header");
    } else if (rk_aid_event_validate(zmq_msg_data(&m->event), zmq_msg_size(&m->event), now_ns,
                                     &info, &aid, &verr) != RK_V_OK) {
        rk_ack_refuse(in->ack, &m->ident, h.corr, rk_verr_name(verr.code), verr.message);
    } else if ((!in->acl || may_publish(in, m, hdr, &info)) &&
               admit_number(in, m, &h)) {
        admit(b, &h, &info, &aid);
        return 1;
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
    zmq_msg_init(&m->ident);
    if (zmq_msg_recv(&m->ident, in->sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m->ident);
        return -1;
    }
    zmq_msg_init(&hdr);
    zmq_msg_init(&m->event);
    int frames = recv_body(in->sock, &hdr, &m->event);
    if (frames >= 0)
        taken = judge(in, b, &hdr, frames, now_ns);
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
