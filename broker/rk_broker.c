#include "rk_broker.h"
#include "rk_diag.h"
#include "rk_groups.h"
#include "rk_acl.h"
#include "rk_keys.h"
#include "rk_zap.h"
#include "rk_event.h"
#include "rk_lifecycle.h"
#include "rk_metrics.h"
#include "rk_producers.h"
#include "rk_replay.h"
#include "rk_time.h"
#include "rk_wire.h"

#include <errno.h>
#include <lmdb.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zmq.h>

/* Messages queued per subscriber before the feed skips it. A skipped
 * subscriber fills from the log, so this bounds broker memory per stalled
 * subscriber (about 0.17 KiB a message: three frames) rather than
 * protecting data. The kernel's socket buffer holds several hundred more
 * before this queue even fills. At 1,000, a thousand subscribers that
 * cannot keep up (W4) held 391 MiB of broker memory; at 300, 266 MiB,
 * and one subscriber at 20,000 events/s still needed no gap filled in
 * 10 s (W2); at 150 it needed two or three. */
#define FEED_SNDHWM 300
#define INGEST_HWM 100000
#define POLL_MS 100
#define INDEX_RETRY_NS 10000000000LL
/* How often each subscription group hears the log's head, so a subscriber
 * whose last events were skipped notices without new traffic. */
#define TICK_EVERY_NS 200000000LL
/* Retention runs between batches, a bounded number of deletions per write
 * transaction, so ingest never waits long behind it. */
#define PRUNE_BATCH 10000
#define PRUNE_EVERY_NS 1000000000LL
#define PRUNE_LOG_EVERY_NS (60 * 1000000000LL)
/* Refusals are events of interest, but a flood must not flood the log:
 * the first after a quiet spell is logged at once, the rest summed. */
#define REFUSAL_LOG_EVERY_NS (10 * 1000000000LL)

/* A publish that validated and waits for the batch's commit. */
struct pending {
    zmq_msg_t ident;        /* ROUTER identity of the publisher's connection */
    zmq_msg_t event;        /* the received event frame; stored as is */
    uint64_t corr;
    char topic[RK_TOPIC_MAX];
    char producer[RK_WIRE_PRODUCER_MAX + 1]; /* "" = not idempotent */
    char entity[RK_ID_MAX + 1];              /* request_id or kpi_id */
    char publisher[RK_KEY_Z85_LEN + 1];      /* its CURVE key; "" without CURVE */
    int group_ack;          /* the client accepts "acks" (RK_WIRE_PUB_ACKS) */
};

/* The acknowledgements of one commit for one connection that accepts
 * "acks": one message instead of one per event. A commit holds events of
 * a few publishers at a time, so a handful of open groups is enough; when
 * more connections take part, the oldest group is sent early and its slot
 * reused, which only costs an extra message. */
#define ACK_GROUPS 8
struct ack_group {
    zmq_msg_t *ident;       /* the connection; NULL = slot free */
    size_t n;
    uint64_t *pairs;        /* corr, seq; room for batch_max pairs */
};

struct rk_broker {
    const struct rk_broker_config *cfg;
    void *zctx;
    void *ingest;
    void *feed;
    struct rk_log *log;
    struct rk_replay *replay;
    struct rk_producers *producers; /* admitted numbers, batch included */
    struct rk_lifecycle *lifecycle; /* aid request states, batch included */
    struct rk_metrics *metrics;
    void *mon_ingest, *mon_feed;    /* socket monitors: connections come and go */
    struct rk_groups *groups;       /* live-feed subscriptions, one per filter */
    char curve_secret[RK_KEY_Z85_LEN + 1]; /* "" = plain sockets */
    struct rk_acl_slot *acl;        /* NULL without CURVE */
    struct rk_acl *acl_now;         /* held for one ingest turn */
    struct rk_zap *zap;
    int64_t next_tick_ns;
    unsigned long long bad_subscriptions, refused_subscriptions;
    unsigned feed_generation;       /* names the feed's monitor after a rebind */
    int64_t publishers, subscribers;
    int64_t refusals_logged_ns;
    unsigned long long refusals_unlogged;
    char last_refusal_code[32], last_refusal_why[256];
    struct pending *pend;
    struct rk_log_rec *recs;
    int npend;
    struct ack_group ack_groups[ACK_GROUPS];
    unsigned ack_evict;             /* the slot to send early when all are taken */
    unsigned char *ack_buf;         /* one encoded "acks" header */
    size_t ack_buf_cap;
    unsigned long long accepted, refused, duplicates;
    int64_t next_prune_ns, pruned_logged_ns;
    unsigned long long pruned, pruned_unlogged;
    int prune_catching_up;          /* the last pass hit PRUNE_BATCH */
    int64_t next_index_ns;          /* after a failed index write, the next try */
};

void rk_broker_config_defaults(struct rk_broker_config *cfg)
{
    cfg->ingest_endpoint = RK_DEFAULT_INGEST;
    cfg->feed_endpoint = RK_DEFAULT_FEED;
    cfg->replay_endpoint = RK_DEFAULT_REPLAY;
    cfg->data_dir = RK_DEFAULT_DATA_DIR;
    cfg->durability = RK_LOG_FULL;
    cfg->batch_max = RK_DEFAULT_BATCH_MAX;
    cfg->max_message = 65536;
    cfg->map_max = 0;
    cfg->retain_age_ns = 0;
    cfg->retain_size = 0;
    cfg->http = NULL;
}

/* mkdir -p for the data directory. */
static int make_dirs(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0750) != 0 && errno != EEXIST)
            return errno;
        *p = '/';
    }
    if (mkdir(buf, 0750) != 0 && errno != EEXIST)
        return errno;
    return 0;
}

static void *bind_socket(struct rk_broker *b, int type, const char *endpoint, const char *role)
{
    void *s = zmq_socket(b->zctx, type);
    int linger = 2000;
    if (!s)
        return NULL;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (type == ZMQ_ROUTER) {
        /* Beyond this libzmq drops the peer before we see its frames. */
        int64_t max = b->cfg->max_message;
        int hwm = INGEST_HWM;
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof max);
        zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    } else {
        int hwm = FEED_SNDHWM, on = 1;
        zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
        /* With an ACL each subscription is allowed (or not) by us. */
        if (b->acl)
            zmq_setsockopt(s, ZMQ_XPUB_MANUAL, &on, sizeof on);
    }
    if (b->curve_secret[0] && rk_zap_curve_server(s, b->curve_secret) != 0) {
        zmq_close(s);
        return NULL;
    }
    if (zmq_bind(s, endpoint) != 0) {
        RK_DIAG(RK_DIAG_ERROR, "bind_failed", "role=%s endpoint=%s why=\"%s\"", role, endpoint,
                zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    return s;
}

/* Every stored aid event, folded: the lifecycle state the log implies. */
static int load_lifecycle(struct rk_broker *b)
{
    struct rk_lifecycle_stats st;
    int64_t t0 = rk_time_now();
    int rc = rk_lifecycle_load(&b->lifecycle, b->log, &st);
    if (rc) {
        RK_DIAG(RK_DIAG_ERROR, "lifecycle_load_failed", "why=\"%s\"", rk_log_strerror(rc));
        return -1;
    }
    RK_DIAG(RK_DIAG_INFO, "lifecycle_loaded", "requests=%zu aid_events=%llu refused=%llu ms=%lld",
            st.requests, (unsigned long long)st.folded, (unsigned long long)st.refused,
            (long long)((rk_time_now() - t0) / 1000000));
    if (st.refused)
        RK_DIAG(RK_DIAG_WARN, "lifecycle_stored_refusals",
                "events=%llu why=\"the log holds aid events the lifecycle refuses (stored before "
                "enforcement, or damaged); they are kept but change no request's state; "
                "renkei-replay --as-of lists them\"", (unsigned long long)st.refused);
    return 0;
}

/* A PAIR socket that hears `sock`'s connections arrive and leave. */
static void *monitor(struct rk_broker *b, void *sock, const char *name)
{
    void *m;
    if (zmq_socket_monitor(sock, name, ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) != 0 ||
        !(m = zmq_socket(b->zctx, ZMQ_PAIR)) || zmq_connect(m, name) != 0)
        abort(); /* inproc in our own context: cannot fail but for a bug */
    return m;
}

/* One monitor event: +1 for a connection accepted, -1 for one gone. */
static int monitor_event(void *m)
{
    zmq_msg_t ev, addr;
    uint16_t id = 0;
    zmq_msg_init(&ev);
    zmq_msg_init(&addr);
    if (zmq_msg_recv(&ev, m, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&ev);
        zmq_msg_close(&addr);
        return 0;
    }
    if (zmq_msg_size(&ev) >= 2)
        memcpy(&id, zmq_msg_data(&ev), 2);
    if (zmq_msg_more(&ev))
        zmq_msg_recv(&addr, m, 0);
    zmq_msg_close(&ev);
    zmq_msg_close(&addr);
    return id == ZMQ_EVENT_ACCEPTED ? 1 : id == ZMQ_EVENT_DISCONNECTED ? -1 : 0;
}

static void drain_monitors(struct rk_broker *b)
{
    int64_t pubs = b->publishers, subs = b->subscribers;
    int d;
    while ((d = monitor_event(b->mon_ingest)) != 0)
        b->publishers += d;
    while ((d = monitor_event(b->mon_feed)) != 0)
        b->subscribers += d;
    rk_metrics_connections(b->metrics, b->publishers, b->subscribers);
    if (pubs != b->publishers || subs != b->subscribers)
        RK_DIAG(RK_DIAG_INFO, "connections", "publishers=%lld subscribers=%lld",
                (long long)b->publishers, (long long)b->subscribers);
}

static const char *storage_error_text(int rc);

/* What /metrics and /healthz say of the log after a commit (rc its result). */
static void publish_log_state(struct rk_broker *b, int rc)
{
    rk_metrics_log(b->metrics, rk_log_last_seq(b->log), rk_log_map_size(b->log),
                   rk_log_map_used(b->log), rc == 0, rc ? storage_error_text(rc) : NULL);
}

/* Plain sockets are for loopback: anyone on a network could read the feed
 * and publish in any town's name. */
static int endpoint_is_local(const char *ep)
{
    static const char *const local[] = {"ipc://", "inproc://", "tcp://127.", "tcp://localhost:",
                                        "tcp://[::1]:"};
    for (size_t i = 0; i < sizeof local / sizeof local[0]; i++)
        if (strncmp(ep, local[i], strlen(local[i])) == 0)
            return 1;
    return 0;
}

static int check_plain_endpoints(const struct rk_broker_config *cfg)
{
    const char *eps[3] = {cfg->ingest_endpoint, cfg->feed_endpoint, cfg->replay_endpoint};
    for (int i = 0; i < 3; i++) {
        if (endpoint_is_local(eps[i]))
            continue;
        if (!cfg->insecure_no_curve) {
            RK_DIAG(RK_DIAG_ERROR, "insecure_endpoint", "endpoint=%s why=\"not loopback, and no "
                    "CURVE: give --curve-key FILE and --acl FILE (deploy/README.md), or, on a "
                    "closed test network only, --insecure-no-curve yes\"", eps[i]);
            return -1;
        }
        RK_DIAG(RK_DIAG_WARN, "INSECURE", "endpoint=%s why=\"--insecure-no-curve: anyone who "
                "can reach this endpoint can read every event and publish for any "
                "municipality\"", eps[i]);
    }
    return 0;
}

/* CURVE and the ACL, before any socket is bound. */
static int open_security(struct rk_broker *b)
{
    const struct rk_broker_config *cfg = b->cfg;
    struct rk_acl *acl;
    char why[512];
    if (!cfg->curve_key && cfg->acl) {
        RK_DIAG(RK_DIAG_ERROR, "acl_without_curve", "why=\"--acl needs --curve-key: without "
                "CURVE there are no keys to check\"");
        return -1;
    }
    if (!cfg->curve_key)
        return check_plain_endpoints(cfg);
    if (!cfg->acl) {
        RK_DIAG(RK_DIAG_ERROR, "curve_without_acl", "why=\"--curve-key needs --acl FILE "
                "listing the client keys and what each may do (deploy/README.md)\"");
        return -1;
    }
    if (rk_keys_read(cfg->curve_key, b->curve_secret, why, sizeof why) != 0 ||
        rk_acl_load(cfg->acl, &acl, why, sizeof why) != 0) {
        RK_DIAG(RK_DIAG_ERROR, "security_failed", "why=\"%s\"", why);
        return -1;
    }
    b->acl = rk_acl_slot_new(acl);
    if (rk_zap_start(&b->zap, b->zctx, b->acl) != 0) {
        RK_DIAG(RK_DIAG_ERROR, "zap_failed", "why=\"%s\"", zmq_strerror(errno));
        return -1;
    }
    char pub[RK_KEY_Z85_LEN + 1];
    rk_keys_public_of(b->curve_secret, pub);
    RK_DIAG(RK_DIAG_INFO, "curve", "public_key=%s acl=%s tenants=%zu keys=%zu", pub, cfg->acl,
            rk_acl_tenant_count(acl), rk_acl_key_count(acl));
    return 0;
}

static int broker_open(struct rk_broker *b, const struct rk_broker_config *cfg)
{
    struct rk_log_options lopt = {.durability = cfg->durability, .map_max = cfg->map_max};
    char why[512];
    int rc;

    b->cfg = cfg;
    rc = make_dirs(cfg->data_dir);
    if (rc) {
        RK_DIAG(RK_DIAG_ERROR, "data_dir_failed", "dir=%s why=\"%s\"", cfg->data_dir, strerror(rc));
        return -1;
    }
    if (rk_log_open(&b->log, cfg->data_dir, &lopt, why, sizeof why) != 0) {
        RK_DIAG(RK_DIAG_ERROR, "log_open_failed", "dir=%s why=\"%s\"", cfg->data_dir, why);
        return -1;
    }
    if (load_lifecycle(b) != 0)
        return -1;
    b->zctx = zmq_ctx_new();
    if (open_security(b) != 0)
        return -1;
    b->ingest = bind_socket(b, ZMQ_ROUTER, cfg->ingest_endpoint, "ingest");
    b->feed = bind_socket(b, ZMQ_XPUB, cfg->feed_endpoint, "feed");
    if (!b->ingest || !b->feed)
        return -1;
    if (rk_replay_start_secure(&b->replay, b->zctx, b->log, cfg->replay_endpoint,
                               b->curve_secret[0] ? b->curve_secret : NULL, b->acl, why,
                               sizeof why) != 0) {
        RK_DIAG(RK_DIAG_ERROR, "bind_failed", "role=replay why=\"%s\"", why);
        return -1;
    }
    b->metrics = rk_metrics_new();
    if (cfg->http && rk_metrics_serve(b->metrics, cfg->http, why, sizeof why) != 0) {
        RK_DIAG(RK_DIAG_ERROR, "http_failed", "why=\"%s\"", why);
        return -1;
    }
    if (cfg->http)
        RK_DIAG(RK_DIAG_INFO, "http_listening", "addr=%s paths=/metrics,/healthz", cfg->http);
    b->mon_ingest = monitor(b, b->ingest, "inproc://rk-monitor-ingest");
    b->mon_feed = monitor(b, b->feed, "inproc://rk-monitor-feed");
    publish_log_state(b, 0);
    b->pend = calloc((size_t)cfg->batch_max, sizeof *b->pend);
    b->recs = calloc((size_t)cfg->batch_max, sizeof *b->recs);
    b->ack_buf_cap = RK_WIRE_ACKS_SIZE(cfg->batch_max);
    b->ack_buf = malloc(b->ack_buf_cap);
    if (!b->pend || !b->recs || !b->ack_buf)
        abort();
    for (int i = 0; i < ACK_GROUPS; i++)
        if (!(b->ack_groups[i].pairs = calloc((size_t)cfg->batch_max, 2 * sizeof(uint64_t))))
            abort();
    b->producers = rk_producers_new();
    b->groups = rk_groups_new();
    return 0;
}

static void broker_close(struct rk_broker *b)
{
    rk_groups_destroy(&b->groups);
    memset(b->curve_secret, 0, sizeof b->curve_secret);
    rk_replay_stop(&b->replay);
    rk_metrics_destroy(&b->metrics);
    if (b->mon_ingest) {
        zmq_socket_monitor(b->ingest, NULL, 0);
        zmq_close(b->mon_ingest);
    }
    if (b->mon_feed) {
        zmq_socket_monitor(b->feed, NULL, 0);
        zmq_close(b->mon_feed);
    }
    if (b->ingest)
        zmq_close(b->ingest);
    if (b->feed)
        zmq_close(b->feed);
    rk_zap_stop(&b->zap);
    if (b->zctx)
        zmq_ctx_term(b->zctx);
    rk_acl_slot_destroy(&b->acl);
    rk_log_destroy(&b->log);
    rk_producers_destroy(&b->producers);
    rk_lifecycle_destroy(&b->lifecycle);
    free(b->pend);
    free(b->recs);
    free(b->ack_buf);
    for (int i = 0; i < ACK_GROUPS; i++)
        free(b->ack_groups[i].pairs);
}

static void send_reply(struct rk_broker *b, zmq_msg_t *ident, const struct rk_wire_hdr *h)
{
    unsigned char buf[RK_WIRE_HDR_MAX];
    size_t n = rk_wire_encode(h, buf, sizeof buf);
    /* A vanished peer is not an error: ROUTER drops what it cannot route. */
    if (zmq_send(b->ingest, zmq_msg_data(ident), zmq_msg_size(ident), ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
        zmq_send(b->ingest, buf, n, ZMQ_DONTWAIT);
}

/* "publish_refused count=N code=C why=...": N refusals since the last such
 * line, C and why those of the latest. Quotes in the reason become ' so
 * the line stays one logfmt record. */
static void log_refusals(struct rk_broker *b, int force)
{
    int64_t now = rk_time_now();
    if (!b->refusals_unlogged || (!force && now - b->refusals_logged_ns < REFUSAL_LOG_EVERY_NS))
        return;
    for (char *q = b->last_refusal_why; (q = strchr(q, '"')) != NULL;)
        *q = '\'';
    RK_DIAG(RK_DIAG_INFO, "publish_refused", "count=%llu code=%s why=\"%s\"",
            b->refusals_unlogged, b->last_refusal_code, b->last_refusal_why);
    b->refusals_unlogged = 0;
    b->refusals_logged_ns = now;
}

static void refuse(struct rk_broker *b, zmq_msg_t *ident, uint64_t corr, const char *code,
                   const char *message)
{
    struct rk_wire_hdr h = {.cmd = RK_CMD_ERR, .corr = corr};
    snprintf(h.code, sizeof h.code, "%s", code);
    snprintf(h.message, sizeof h.message, "%s", message);
    send_reply(b, ident, &h);
    b->refused++;
    rk_metrics_refused(b->metrics, code);
    b->refusals_unlogged++;
    snprintf(b->last_refusal_code, sizeof b->last_refusal_code, "%s", code);
    snprintf(b->last_refusal_why, sizeof b->last_refusal_why, "%s", message);
    log_refusals(b, 0);
}

/* Receives the frames after the identity: header into `hdr`, the first
 * following frame into `event`; counts and discards any further frames. */
static int recv_body(struct rk_broker *b, zmq_msg_t *hdr, zmq_msg_t *event)
{
    int frames = 1;
    if (zmq_msg_recv(hdr, b->ingest, 0) < 0)
        return -1;
    if (!zmq_msg_more(hdr))
        return frames;
    frames++;
    if (zmq_msg_recv(event, b->ingest, 0) < 0)
        return -1;
    int more = zmq_msg_more(event);
    while (more) {
        zmq_msg_t extra;
        zmq_msg_init(&extra);
        zmq_msg_recv(&extra, b->ingest, 0);
        more = zmq_msg_more(&extra);
        zmq_msg_close(&extra);
        frames++;
    }
    return frames;
}

static int commit_batch(struct rk_broker *b);

static void admit(struct rk_broker *b, struct pending *msg, const struct rk_wire_hdr *h,
                  const struct rk_event_info *info)
{
    /* A commit in between (admit_old_number) emptied the batch: the message
     * moves to the batch's first free slot. */
    struct pending *p = &b->pend[b->npend];
    if (p != msg) {
        zmq_msg_init(&p->ident);
        zmq_msg_init(&p->event);
        zmq_msg_move(&p->ident, &msg->ident);
        zmq_msg_move(&p->event, &msg->event);
        zmq_msg_close(&msg->ident);
        zmq_msg_close(&msg->event);
        memcpy(p->publisher, msg->publisher, sizeof p->publisher);
    }
    p->corr = h->corr;
    p->group_ack = (h->flags & RK_WIRE_PUB_ACKS) != 0;
    rk_event_topic(info, p->topic);
    memcpy(p->producer, h->producer, sizeof p->producer);
    memcpy(p->entity, info->type == RK_EV_KPI_UPDATE ? info->kpi_id : info->request_id,
           sizeof p->entity);
    b->recs[b->npend] = (struct rk_log_rec){
        .event = zmq_msg_data(&p->event), .event_len = zmq_msg_size(&p->event),
        .publisher = p->publisher, .publisher_len = strlen(p->publisher),
        .producer = p->producer, .producer_len = strlen(p->producer),
        .producer_seq = h->producer_seq,
        .tags = {.type = (uint8_t)info->type, .fiscal_year = (uint16_t)info->fiscal_year,
                 .entity = p->entity, .entity_len = strlen(p->entity)}};
    memcpy(b->recs[b->npend].tags.municipality, info->municipality, 6);
    b->npend++;
}

enum admission { ADMIT, ANSWERED };

/* The admitted-number slot of a producer, loaded from the log on first use. */
static uint64_t *producer_slot(struct rk_broker *b, const char *id)
{
    int fresh;
    size_t len = strlen(id);
    uint64_t *last = rk_producers_slot(b->producers, id, len, &fresh);
    if (last && fresh && rk_log_producer_last(b->log, id, len, last) != 0) {
        rk_producers_clear(b->producers);
        return NULL;
    }
    return last;
}

/* A number at or below the producer's last is a retry of a stored event
 * (answered with the original ack) or one that arrived late, e.g. sent on
 * a connection that broke while later numbers went through a new one: it
 * is stored then. Only the index can tell them apart. */
static enum admission admit_old_number(struct rk_broker *b, struct pending *p,
                                       const struct rk_wire_hdr *h)
{
    struct rk_wire_hdr ack = {.cmd = RK_CMD_ACK, .corr = h->corr};
    /* The original may sit in the uncommitted batch: commit it first. */
    if (b->npend)
        commit_batch(b);
    int rc = rk_log_producer_find(b->log, h->producer, strlen(h->producer), h->producer_seq,
                                  &ack.seq, &ack.recv_ns);
    if (rc == RK_LOG_EOF)
        return ADMIT;
    if (rc) {
        refuse(b, &p->ident, h->corr, "E_STORAGE", "log: cannot read the producer index; retry later");
        return ANSWERED;
    }
    send_reply(b, &p->ident, &ack);
    b->duplicates++;
    rk_metrics_duplicate(b->metrics);
    RK_DIAG(RK_DIAG_DEBUG, "publish_duplicate", "producer=%s number=%llu seq=%llu", h->producer,
            (unsigned long long)h->producer_seq, (unsigned long long)ack.seq);
    return ANSWERED;
}

static enum admission admit_number(struct rk_broker *b, struct pending *p,
                                   const struct rk_wire_hdr *h)
{
    if (!rk_event_id_valid(h->producer, strlen(h->producer))) {
        refuse(b, &p->ident, h->corr, "E_PRODUCER",
               "pub.producer: must be 1..64 characters of A-Z a-z 0-9 . _ : -");
        return ANSWERED;
    }
    uint64_t *last = producer_slot(b, h->producer);
    if (!last) {
        refuse(b, &p->ident, h->corr, "E_STORAGE", "log: cannot read the producer index; retry later");
        return ANSWERED;
    }
    if (h->producer_seq > *last) {
        *last = h->producer_seq;
        return ADMIT;
    }
    return admit_old_number(b, p, h);
}

/* The lifecycle's word on an aid event (kpi.update passes): refused ones are
 * answered as validation refusals are, "<type>.<field>: <reason>". */
static enum admission admit_lifecycle(struct rk_broker *b, struct pending *p,
                                      const struct rk_wire_hdr *h, const struct rk_event_info *info,
                                      const struct rk_aid_event *aid)
{
    struct rk_aid_refusal why;
    char message[sizeof why.message + 64];
    if (rk_lifecycle_admit(b->lifecycle, aid, &why) == RK_AID_OK)
        return ADMIT;
    /* "aid.offer" -> "offer", as in validation's messages */
    snprintf(message, sizeof message, "%s.%s: %s", rk_event_type_name(info->type) + 4,
             why.field, why.message);
    refuse(b, &p->ident, h->corr, rk_aid_err_name(why.code), message);
    return ANSWERED;
}

/* Takes one message off the ingest socket. Returns 1 when it validated and
 * joined the batch, 0 when it was refused, -1 when nothing was waiting. */
/* The ACL: the connection's key (libzmq's User-Id, set by rk_zap) must
 * still be listed, and its tenant may publish for the municipality the
 * event claims. Records the key for the log. */
static int may_publish(struct rk_broker *b, struct pending *p, zmq_msg_t *hdr,
                       const struct rk_wire_hdr *h, const struct rk_event_info *info)
{
    const char *key = zmq_msg_gets(hdr, "User-Id");
    const struct rk_acl_tenant *t = b->acl_now ? rk_acl_find(b->acl_now, key) : NULL;
    char why[256];
    if (!t) {
        refuse(b, &p->ident, h->corr, "E_FORBIDDEN",
               "key: this client's key is not in the broker's ACL (revoked?)");
        return 0;
    }
    if (!rk_acl_may_publish(t, info->municipality)) {
        snprintf(why, sizeof why, "event.municipality: tenant %s may not publish for %s",
                 rk_acl_tenant_name(t), info->municipality);
        refuse(b, &p->ident, h->corr, "E_FORBIDDEN", why);
        return 0;
    }
    memcpy(p->publisher, key, RK_KEY_Z85_LEN + 1);
    return 1;
}

static int take_publish(struct rk_broker *b, int64_t now)
{
    struct pending *p = &b->pend[b->npend];
    zmq_msg_t hdr;
    struct rk_wire_hdr h;
    struct rk_event_info info;
    struct rk_aid_event aid;
    struct rk_verror verr;
    int frames, taken = 0;

    p->publisher[0] = '\0';
    zmq_msg_init(&p->ident);
    if (zmq_msg_recv(&p->ident, b->ingest, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&p->ident);
        return -1;
    }
    zmq_msg_init(&hdr);
    zmq_msg_init(&p->event);
    frames = recv_body(b, &hdr, &p->event);
    if (frames < 0)
        goto out;
    if (rk_wire_decode(zmq_msg_data(&hdr), zmq_msg_size(&hdr), &h) != 0) {
        refuse(b, &p->ident, h.corr, "E_HEADER", "header: not a renkei version-1 header");
    } else if (h.cmd != RK_CMD_PUB) {
        refuse(b, &p->ident, h.corr, "E_COMMAND", "header.command: the ingest socket serves only \"pub\"");
    } else if (frames != 2) {
        refuse(b, &p->ident, h.corr, "E_FRAMES", "pub: takes exactly one event frame after the header");
    } else if (rk_aid_event_validate(zmq_msg_data(&p->event), zmq_msg_size(&p->event), now,
                                     &info, &aid, &verr) != RK_V_OK) {
        refuse(b, &p->ident, h.corr, rk_verr_name(verr.code), verr.message);
    } else if (b->acl && !may_publish(b, p, &hdr, &h, &info)) {
        ; /* refused */
    } else if ((!h.producer[0] || admit_number(b, p, &h) == ADMIT) &&
               admit_lifecycle(b, p, &h, &info, &aid) == ADMIT) {
        admit(b, p, &h, &info);
        taken = 1;
    }
out:
    zmq_msg_close(&hdr);
    if (!taken) {
        zmq_msg_close(&p->event);
        zmq_msg_close(&p->ident);
    }
    return taken;
}

/* Sends one live or tick message on a group's key. */
struct feed_send {
    struct rk_broker *b;
    struct rk_wire_hdr h;
    zmq_msg_t *event;       /* NULL for a tick */
};

static void send_on_group(void *arg, const char *key, size_t key_len, uint64_t prev)
{
    struct feed_send *fs = arg;
    unsigned char buf[RK_WIRE_HDR_MAX];
    zmq_msg_t copy;
    int more = fs->event ? ZMQ_SNDMORE : 0;

    fs->h.prev_seq = prev;
    size_t n = rk_wire_encode(&fs->h, buf, sizeof buf);
    if (zmq_send(fs->b->feed, key, key_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(fs->b->feed, buf, n, more | ZMQ_DONTWAIT) < 0 || !fs->event)
        return;
    zmq_msg_init(&copy);
    zmq_msg_copy(&copy, fs->event);
    if (zmq_msg_send(&copy, fs->b->feed, ZMQ_DONTWAIT) < 0)
        zmq_msg_close(&copy);
}

/* Relays a committed event once to each subscription group it matches; the
 * event frame is shared, not copied. A subscriber over its high-water mark
 * misses it and fills the gap from replay, which `prev` makes detectable.
 * `fs` is the batch's: the header is over 1 KiB, too much to zero anew for
 * every event. */
static void relay(struct feed_send *fs, struct pending *p, const struct rk_log_rec *rec)
{
    if (rk_groups_count(fs->b->groups) == 0)
        return;
    fs->h.seq = rec->seq;
    fs->h.recv_ns = rec->recv_ns;
    fs->event = &p->event;
    memcpy(fs->h.topic, p->topic, sizeof fs->h.topic);
    rk_groups_match(fs->b->groups, p->topic, rec->seq, send_on_group, fs);
}

static void tick(struct rk_broker *b, int64_t now)
{
    if (now < b->next_tick_ns)
        return;
    struct feed_send fs = {b, {.cmd = RK_CMD_TICK, .seq = rk_log_last_seq(b->log), .recv_ns = now},
                           NULL};
    rk_groups_each(b->groups, send_on_group, &fs);
    b->next_tick_ns = now + TICK_EVERY_NS;
}

/* What a publisher is told when its batch could not be stored. */
static const char *storage_error_text(int rc)
{
    switch (rc) {
    case MDB_MAP_FULL:
        return "log: full (the broker's --map-max is reached); nothing was stored";
    case ENOSPC:
    case EDQUOT:
        return "log: the disk holding the broker's data directory is full; nothing was "
               "stored. Retry later: the broker goes on once there is space";
    default:
        return "log: the event could not be stored; retry later";
    }
}

static void send_ack_group(struct rk_broker *b, struct ack_group *g)
{
    if (!g->ident)
        return;
    size_t n = rk_wire_encode_acks(b->recs[0].recv_ns, g->pairs, g->n, b->ack_buf, b->ack_buf_cap);
    if (zmq_send(b->ingest, zmq_msg_data(g->ident), zmq_msg_size(g->ident), ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
        zmq_send(b->ingest, b->ack_buf, n, ZMQ_DONTWAIT);
    g->ident = NULL;
    g->n = 0;
}

static struct ack_group *ack_group_of(struct rk_broker *b, zmq_msg_t *ident)
{
    size_t len = zmq_msg_size(ident);
    struct ack_group *free_slot = NULL;
    for (int i = 0; i < ACK_GROUPS; i++) {
        struct ack_group *g = &b->ack_groups[i];
        if (!g->ident) {
            if (!free_slot)
                free_slot = g;
        } else if (zmq_msg_size(g->ident) == len &&
                   memcmp(zmq_msg_data(g->ident), zmq_msg_data(ident), len) == 0) {
            return g;
        }
    }
    if (!free_slot) {
        free_slot = &b->ack_groups[b->ack_evict++ % ACK_GROUPS];
        send_ack_group(b, free_slot);
    }
    free_slot->ident = ident;
    return free_slot;
}

/* A stored event's ack: on its own, or gathered into its connection's
 * "acks" when the client asked for that. */
static void acknowledge(struct rk_broker *b, struct pending *p, const struct rk_log_rec *rec)
{
    if (!p->group_ack) {
        struct rk_wire_hdr ack = {.cmd = RK_CMD_ACK, .corr = p->corr, .seq = rec->seq,
                                  .recv_ns = rec->recv_ns};
        send_reply(b, &p->ident, &ack);
        return;
    }
    struct ack_group *g = ack_group_of(b, &p->ident);
    g->pairs[2 * g->n] = p->corr;
    g->pairs[2 * g->n + 1] = rec->seq;
    g->n++;
}

/* Says so when the map grew since rk_log_map_grown said `before`. */
static void log_map_growth(struct rk_broker *b, unsigned before)
{
    if (rk_log_map_grown(b->log) != before)
        RK_DIAG(RK_DIAG_INFO, "map_grown", "map_size_mib=%llu",
                (unsigned long long)(rk_log_map_size(b->log) >> 20));
}

/* The group commit: one transaction for the batch, then acks, then fan-out. */
static int commit_batch(struct rk_broker *b)
{
    struct feed_send fs = {b, {.cmd = RK_CMD_LIVE}, NULL};
    unsigned grown = rk_log_map_grown(b->log);
    int64_t t0 = rk_time_now();
    int rc = rk_log_append(b->log, b->recs, (size_t)b->npend, t0);
    if (rc == 0)
        rk_metrics_batch(b->metrics, (unsigned)b->npend, rk_time_now() - t0);
    publish_log_state(b, rc);
    rk_lifecycle_settle(b->lifecycle, rc == 0);
    log_map_growth(b, grown);
    if (rc) {
        RK_DIAG(RK_DIAG_ERROR, "append_failed", "events=%d why=\"%s\"", b->npend, rk_log_strerror(rc));
        /* The batch's numbers were admitted but not stored: forget them. */
        rk_producers_clear(b->producers);
    }
    for (int i = 0; i < b->npend; i++) {
        struct pending *p = &b->pend[i];
        if (rc) {
            refuse(b, &p->ident, p->corr, "E_STORAGE", storage_error_text(rc));
            continue;
        }
        acknowledge(b, p, &b->recs[i]);
        relay(&fs, p, &b->recs[i]);
        b->accepted++;
    }
    for (int i = 0; i < ACK_GROUPS; i++)
        send_ack_group(b, &b->ack_groups[i]);
    for (int i = 0; i < b->npend; i++) {
        zmq_msg_close(&b->pend[i].event);
        zmq_msg_close(&b->pend[i].ident);
    }
    b->npend = 0;
    return rc;
}

/* With an ACL (XPUB_MANUAL) a subscription reaches a subscriber only when
 * we pass it on: its key's tenant must be allowed every prefix of it. */
static int feed_allowed(struct rk_broker *b, zmq_msg_t *m)
{
    const char *data = zmq_msg_data(m), *key = zmq_msg_gets(m, "User-Id");
    size_t n = zmq_msg_size(m);
    char topics[RK_WIRE_TOPICS_MAX][RK_WIRE_TOPIC_MAX];
    if (data[0] != 1)
        return 1; /* unsubscribing is always allowed */
    struct rk_acl *acl = rk_acl_slot_get(b->acl);
    const struct rk_acl_tenant *t = acl ? rk_acl_find(acl, key) : NULL;
    int ntopics = rk_wire_subkey_parse(data + 1, n - 1, topics);
    int ok = t && ntopics >= 0 &&
             rk_acl_may_read(t, RK_ACL_SUBSCRIBE, (const char (*)[RK_WIRE_TOPIC_MAX])topics,
                             (unsigned)ntopics);
    if (!ok && b->refused_subscriptions++ % 1000 == 0)
        RK_DIAG(RK_DIAG_WARN, "subscription_refused", "count=%llu tenant=%s key=%s "
                "subscription=\"%.*s\" why=\"%s\"", b->refused_subscriptions,
                t ? rk_acl_tenant_name(t) : "-", key ? key : "-",
                (int)(n > 1 && data[n - 1] == '\n' ? n - 2 : n - 1), data + 1,
                !t ? "key not in the ACL" : ntopics < 0 ? "not a subscription key"
                   : "topics outside the tenant's subscribe list");
    rk_acl_release(acl);
    return ok;
}

/* XPUB hands us subscribe/unsubscribe notices: the first subscriber of a
 * key makes its group, the last one leaving removes it. With an ACL every
 * notice comes (manual mode) and groups stay until the feed is rebound. */
static void drain_feed(struct rk_broker *b)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    while (zmq_msg_recv(&m, b->feed, ZMQ_DONTWAIT) >= 0) {
        const char *buf = zmq_msg_data(&m);
        size_t n = zmq_msg_size(&m);
        enum rk_groups_notice_rc rc;
        if (n == 0 || (b->acl && !feed_allowed(b, &m)))
            continue;
        if (b->acl) {
            zmq_setsockopt(b->feed, buf[0] ? ZMQ_SUBSCRIBE : ZMQ_UNSUBSCRIBE, buf + 1, n - 1);
            if (!buf[0])
                continue;
        }
        rc = n > RK_WIRE_SUBKEY_MAX + 1
            ? RK_GROUPS_BAD_KEY : rk_groups_notice(b->groups, buf, n, rk_log_last_seq(b->log));
        if (rc == RK_GROUPS_ADDED || rc == RK_GROUPS_REMOVED)
            RK_DIAG(RK_DIAG_DEBUG, "feed_group", "added=%d groups=%zu", rc == RK_GROUPS_ADDED,
                    rk_groups_count(b->groups));
        if (rc == RK_GROUPS_FULL)
            RK_DIAG(RK_DIAG_WARN, "feed_groups_full", "groups=%d why=\"a subscription with a new "
                    "filter gets nothing until others leave\"", RK_GROUPS_MAX);
        /* A raw topic prefix (an older or foreign client) matches nothing. */
        if (rc == RK_GROUPS_BAD_KEY && buf[0] == 1 && b->bad_subscriptions++ % 1000 == 0)
            RK_DIAG(RK_DIAG_WARN, "feed_subscription_ignored", "count=%llu why=\"not a "
                    "subscription key (PROTOCOL.md 3.3): subscribe to ~PREFIX|PREFIX\\n\"",
                    b->bad_subscriptions);
    }
    zmq_msg_close(&m);
}

/* Closes the feed and binds it anew; subscribers reconnect by themselves.
 * Returns 0, or -1 when the endpoint cannot be bound again. */
static int rebind_feed(struct rk_broker *b)
{
    char name[64];
    zmq_socket_monitor(b->feed, NULL, 0);
    zmq_close(b->mon_feed);
    zmq_close(b->feed);
    b->mon_feed = NULL;
    b->feed = NULL;
    rk_groups_destroy(&b->groups);
    b->groups = rk_groups_new();
    b->subscribers = 0;
    /* libzmq closes the listener in its I/O thread: the port frees soon. */
    for (int i = 0; i < 50 && !b->feed; i++) {
        struct timespec ts = {0, 100000000L};
        nanosleep(&ts, NULL);
        b->feed = bind_socket(b, ZMQ_XPUB, b->cfg->feed_endpoint, "feed");
    }
    if (!b->feed)
        return -1;
    snprintf(name, sizeof name, "inproc://rk-monitor-feed-%u", ++b->feed_generation);
    b->mon_feed = monitor(b, b->feed, name);
    return 0;
}

/* SIGHUP: the ACL file again. Connections stay; every message is checked
 * against the new one at once. Live subscriptions were allowed when they
 * were made, so when some key may subscribe to less than before, the feed
 * is bound anew: every subscriber reconnects (a revoked key is refused by
 * ZAP) and fills the moment's gap from the log. */
static int reload_acl(struct rk_broker *b)
{
    struct rk_acl *acl, *old;
    char why[512];
    if (!b->acl) {
        RK_DIAG(RK_DIAG_INFO, "reload", "why=\"no --acl: nothing to reload\"");
        return 0;
    }
    if (rk_acl_load(b->cfg->acl, &acl, why, sizeof why) != 0) {
        RK_DIAG(RK_DIAG_ERROR, "acl_reload_failed", "why=\"%s; the previous ACL stays\"", why);
        return 0;
    }
    old = rk_acl_slot_swap(b->acl, acl);
    int rebind = rk_acl_subscriptions_shrink(old, acl);
    RK_DIAG(RK_DIAG_INFO, "acl_reloaded", "tenants=%zu keys=%zu feed_rebound=%d",
            rk_acl_tenant_count(acl), rk_acl_key_count(acl), rebind);
    rk_acl_release(old);
    if (rebind && rebind_feed(b) != 0) {
        RK_DIAG(RK_DIAG_ERROR, "feed_rebind_failed", "endpoint=%s why=\"cannot bind the feed "
                "again; stopping\"", b->cfg->feed_endpoint);
        return -1;
    }
    return 0;
}

static void log_pruned(struct rk_broker *b, int64_t now, int force)
{
    if (!b->pruned_unlogged || (!force && now - b->pruned_logged_ns < PRUNE_LOG_EVERY_NS))
        return;
    RK_DIAG(RK_DIAG_INFO, "pruned", "records=%llu total=%llu", b->pruned_unlogged, b->pruned);
    b->pruned_unlogged = 0;
    b->pruned_logged_ns = now;
}

/* Deletes what the retention settings say is too old or too much. */
static void retention_turn(struct rk_broker *b)
{
    const struct rk_broker_config *cfg = b->cfg;
    int64_t now = rk_time_now();
    uint64_t deleted;
    if ((!cfg->retain_age_ns && !cfg->retain_size) || now < b->next_prune_ns)
        return;
    int rc = rk_log_prune(b->log, cfg->retain_age_ns ? now - cfg->retain_age_ns : 0,
                          cfg->retain_size, PRUNE_BATCH, &deleted);
    if (rc) {
        RK_DIAG(RK_DIAG_ERROR, "prune_failed", "why=\"%s\"", rk_log_strerror(rc));
        b->next_prune_ns = now + 10 * PRUNE_EVERY_NS;
        return;
    }
    b->pruned += deleted;
    b->pruned_unlogged += deleted;
    /* A steady trickle is logged once a minute; a backlog when it is done. */
    log_pruned(b, now, b->prune_catching_up && deleted < PRUNE_BATCH);
    b->prune_catching_up = deleted == PRUNE_BATCH;
    b->next_prune_ns = deleted == PRUNE_BATCH ? now : now + PRUNE_EVERY_NS;
}

/* The entity index entries that wait go out with the next append; with
 * no append coming, they are written here once due. */
static void index_turn(struct rk_broker *b)
{
    int64_t now = rk_time_now();
    if (now < b->next_index_ns)
        return;
    int rc = rk_log_index_flush(b->log, now, 0);
    if (rc) { /* a full disk, say: the entries wait, appends will say more */
        RK_DIAG(RK_DIAG_ERROR, "index_failed", "why=\"%s\"", rk_log_strerror(rc));
        b->next_index_ns = now + INDEX_RETRY_NS;
    }
}

static void ingest_turn(struct rk_broker *b)
{
    int64_t now = rk_time_now();
    b->acl_now = b->acl ? rk_acl_slot_get(b->acl) : NULL;
    while (b->npend < b->cfg->batch_max && take_publish(b, now) >= 0)
        ;
    if (b->npend)
        commit_batch(b);
    rk_acl_release(b->acl_now);
    b->acl_now = NULL;
}

/* The chain head in hex, for the log lines an operator may copy elsewhere. */
static const char *head_hex(const struct rk_broker *b, char out[2 * RK_LOG_HASH_BYTES + 1])
{
    return sodium_bin2hex(out, 2 * RK_LOG_HASH_BYTES + 1, rk_log_head_hash(b->log),
                          RK_LOG_HASH_BYTES);
}

int rk_broker_run(const struct rk_broker_config *cfg, volatile sig_atomic_t *stop,
                  volatile sig_atomic_t *reload)
{
    char hex[2 * RK_LOG_HASH_BYTES + 1];
    struct rk_broker b = {0};
    int rc = -1;

    if (broker_open(&b, cfg) != 0)
        goto out;
    RK_DIAG(RK_DIAG_INFO, "ready",
            "ingest=%s feed=%s replay=%s data_dir=%s durability=%s map_size_mib=%llu "
            "last_seq=%llu chain_head=%s",
            cfg->ingest_endpoint, cfg->feed_endpoint, cfg->replay_endpoint, cfg->data_dir,
            cfg->durability == RK_LOG_OS ? "os" : "full",
            (unsigned long long)(rk_log_map_size(b.log) >> 20),
            (unsigned long long)rk_log_last_seq(b.log), head_hex(&b, hex));
    zmq_pollitem_t items[4] = {
        {b.ingest, 0, ZMQ_POLLIN, 0},
        {b.feed, 0, ZMQ_POLLIN, 0},
        {b.mon_ingest, 0, ZMQ_POLLIN, 0},
        {b.mon_feed, 0, ZMQ_POLLIN, 0},
    };
    while (!*stop) {
        if (zmq_poll(items, 4, POLL_MS) < 0) {
            if (errno == EINTR)
                continue;
            RK_DIAG(RK_DIAG_ERROR, "poll_failed", "why=\"%s\"", zmq_strerror(errno));
            goto out;
        }
        if (reload && *reload) {
            *reload = 0;
            if (reload_acl(&b) != 0)
                goto out;
            items[1].socket = b.feed;
            items[3].socket = b.mon_feed;
            continue;
        }
        if (items[0].revents & ZMQ_POLLIN)
            ingest_turn(&b);
        if (items[1].revents & ZMQ_POLLIN)
            drain_feed(&b);
        if ((items[2].revents | items[3].revents) & ZMQ_POLLIN)
            drain_monitors(&b);
        tick(&b, rk_time_now());
        unsigned grown = rk_log_map_grown(b.log);
        index_turn(&b);
        rk_metrics_replayed(b.metrics, rk_replay_events_sent(b.replay));
        log_refusals(&b, 0);
        retention_turn(&b);
        log_map_growth(&b, grown); /* index flushes and prunes grow it too */
    }
    /* Whatever already arrived is committed and acknowledged before we go. */
    ingest_turn(&b);
    log_pruned(&b, rk_time_now(), 1);
    log_refusals(&b, 1);
    rc = 0;
    RK_DIAG(RK_DIAG_INFO, "stopped",
            "last_seq=%llu chain_head=%s accepted=%llu refused=%llu duplicates=%llu",
            (unsigned long long)rk_log_last_seq(b.log), head_hex(&b, hex), b.accepted, b.refused,
            b.duplicates);
out:
    broker_close(&b);
    return rc;
}
