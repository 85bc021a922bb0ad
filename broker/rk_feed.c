#include "rk_feed.h"
#include "rk_refusal.h"
#include "rk_diag.h"
#include "rk_event.h"
#include "rk_groups.h"
#include "rk_sock.h"
#include "rk_keys.h"
#include "rk_text.h"
#include "rk_time.h"
#include "rk_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Messages queued per subscriber before the feed skips it. A skipped
 * subscriber fills from the log, so this bounds broker memory per stalled
 * subscriber (about 0.17 KiB a message: three frames) rather than
 * protecting data. The kernel's socket buffer holds several hundred more
 * before this queue even fills. At 1,000, a thousand subscribers that
 * cannot keep up (W4) held 391 MiB of broker memory; at 300, 266 MiB,
 * and one subscriber at 20,000 events/s still needed no gap filled in
 * 10 s (W2); at 150 it needed two or three. */
#define FEED_SNDHWM 300
/* The longest frame a subscriber has reason to send: the longest
 * subscription key (PROTOCOL.md 3.3: RK_WIRE_SUBKEY_MAX holds its NUL too)
 * as a ZMTP 3.1 SUBSCRIBE command, 10 bytes of name before it (the older
 * form has one), and under CURVE in a MESSAGE box, 33 bytes more. The
 * handshake's frames are shorter (a CURVE INITIATE is about 270 bytes).
 * On the XPUB this is ZMQ_MAXMSGSIZE: a connection whose frame header
 * announces more is dropped before libzmq allocates the frame, so a longer
 * subscription never reaches libzmq's subscription trie, which costs about
 * 32 bytes per byte of prefix and which even XPUB_MANUAL fills (to
 * unsubscribe a pipe when it ends). Before this limit one 10 MiB
 * subscription took 987 MiB of the broker at its peak, 960 MiB still
 * after the client left (it97c_feed_memory). */
#define SUB_FRAME_MAX (RK_WIRE_SUBKEY_MAX - 1 + 10)
#define CURVE_BOX_BYTES 33
/* Ignored and refused subscriptions are summed into one line per kind and
 * interval, the first after a quiet spell at once, as refused publishes. */
#define SUB_LOG_EVERY_NS (10 * 1000000000LL)
/* How often each subscription group hears the log's head, so a subscriber
 * whose last events were skipped notices without new traffic. */
#define TICK_EVERY_NS 200000000LL

/* Subscriptions of one kind not yet logged, and the latest of them. */
struct sub_log {
    const char *msg;                /* the log line's msg */
    unsigned long long unlogged, total;
    int64_t logged_ns;
    char sub[RK_TEXT_SIZE(64) + 2]; /* its first bytes, quoted */
    size_t len;                     /* its whole length */
    char tenant[64], key[RK_KEY_Z85_LEN + 1], why[80];
};

struct rk_feed {
    void *zctx;
    char *endpoint;
    const char *curve_secret;
    struct rk_acl_slot *acl;
    void *sock, *mon;
    unsigned generation;            /* names the monitor after a rebind */
    struct rk_groups *groups;
    int64_t next_tick_ns;
    char log_id[RK_WIRE_LOG_ID_MAX + 1]; /* said in every tick */
    struct sub_log ignored;
    /* The live header is over 1 KiB: built once, not zeroed per event. */
    struct rk_wire_hdr live;
    zmq_msg_t *event;               /* of the message being sent; NULL: a tick */
};

static void sub_log_flush(struct sub_log *l, int64_t now_ns, int force);

static int bind_feed(struct rk_feed *f)
{
    char name[64];
    int curve = f->curve_secret && f->curve_secret[0];
    /* Manual always: a subscription reaches a subscriber only when the
     * broker passes it on, so one that is not a key (a bare prefix, "",
     * "~") gets nothing, as PROTOCOL.md 3.3 says, instead of libzmq's
     * prefix match handing it every key's messages. */
    struct rk_sock_options opt = {.type = ZMQ_XPUB, .hwm = FEED_SNDHWM, .xpub_manual = 1,
                                  .max_message = SUB_FRAME_MAX + (curve ? CURVE_BOX_BYTES : 0),
                                  .curve_secret = f->curve_secret};
    f->sock = rk_sock_bind(f->zctx, f->endpoint, &opt, "feed");
    if (!f->sock)
        return -1;
    snprintf(name, sizeof name, "inproc://rk-monitor-feed-%u", f->generation++);
    f->mon = rk_sock_monitor(f->zctx, f->sock, name);
    return 0;
}

int rk_feed_open(struct rk_feed **out, void *zctx, const char *endpoint,
                 const char *curve_secret, struct rk_acl_slot *acl)
{
    struct rk_feed *f = calloc(1, sizeof *f);
    if (!f || !(f->endpoint = strdup(endpoint)))
        abort();
    f->zctx = zctx;
    f->curve_secret = curve_secret;
    f->acl = acl;
    f->groups = rk_groups_new();
    f->live.cmd = RK_CMD_LIVE;
    f->ignored.msg = "feed_subscription_ignored";
    *out = f;
    return bind_feed(f);
}

static void unbind(struct rk_feed *f)
{
    if (f->sock) {
        rk_sock_monitor_close(f->sock, &f->mon);
        zmq_close(f->sock);
        f->sock = NULL;
    }
}

void rk_feed_close(struct rk_feed **fp)
{
    struct rk_feed *f = *fp;
    if (!f)
        return;
    sub_log_flush(&f->ignored, rk_time_now(), 1);
    unbind(f);
    rk_groups_destroy(&f->groups);
    free(f->endpoint);
    free(f);
    *fp = NULL;
}

void *rk_feed_socket(struct rk_feed *f)
{
    return f->sock;
}

void *rk_feed_monitor(struct rk_feed *f)
{
    return f->mon;
}

int64_t rk_feed_connections(struct rk_feed *f)
{
    return rk_sock_monitor_drain(f->mon, "feed");
}

/* Sends one live or tick message on a group's key. */
static void send_on_group(void *arg, const char *key, size_t key_len, uint64_t prev)
{
    struct rk_feed *f = arg;
    unsigned char buf[RK_WIRE_HDR_MAX];
    zmq_msg_t copy;
    int more = f->event ? ZMQ_SNDMORE : 0;

    f->live.prev_seq = prev;
    size_t n = rk_wire_encode(&f->live, buf, sizeof buf);
    if (n == 0 || zmq_send(f->sock, key, key_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(f->sock, buf, n, more | ZMQ_DONTWAIT) < 0 || !f->event)
        return;
    zmq_msg_init(&copy);
    zmq_msg_copy(&copy, f->event);
    if (zmq_msg_send(&copy, f->sock, ZMQ_DONTWAIT) < 0)
        zmq_msg_close(&copy);
}

void rk_feed_relay(struct rk_feed *f, const char *topic, const char *requester,
                   zmq_msg_t *event, uint64_t seq, int64_t recv_ns)
{
    char rtopic[RK_TOPIC_MAX] = "";
    if (rk_groups_count(f->groups) == 0)
        return;
    if (requester && requester[0]) {
        enum rk_event_type type = rk_event_type_parse(topic, strcspn(topic, "/"));
        rk_event_requester_topic(type, requester, rtopic);
    }
    f->live.cmd = RK_CMD_LIVE;
    f->live.seq = seq;
    f->live.recv_ns = recv_ns;
    f->event = event;
    snprintf(f->live.topic, sizeof f->live.topic, "%s", topic);
    rk_groups_match(f->groups, topic, rtopic, seq, send_on_group, f);
}

void rk_feed_relay_bytes(struct rk_feed *f, const char *topic, const char *requester,
                         const void *event, size_t len, uint64_t seq, int64_t recv_ns)
{
    zmq_msg_t m;
    if (rk_groups_count(f->groups) == 0)
        return;
    zmq_msg_init_size(&m, len);
    memcpy(zmq_msg_data(&m), event, len);
    rk_feed_relay(f, topic, requester, &m, seq, recv_ns);
    zmq_msg_close(&m);
}

void rk_feed_set_log_id(struct rk_feed *f, const char *log_id)
{
    snprintf(f->log_id, sizeof f->log_id, "%s", log_id);
}

void rk_feed_tick(struct rk_feed *f, uint64_t head, int64_t now_ns)
{
    if (now_ns < f->next_tick_ns)
        return;
    sub_log_flush(&f->ignored, now_ns, 0);
    struct rk_wire_hdr live = f->live;
    f->live = (struct rk_wire_hdr){.cmd = RK_CMD_TICK, .seq = head, .recv_ns = now_ns};
    memcpy(f->live.log_id, f->log_id, sizeof f->live.log_id);
    f->event = NULL;
    rk_groups_each(f->groups, send_on_group, f);
    f->live = live;
    f->next_tick_ns = now_ns + TICK_EVERY_NS;
}

/* "feed_subscription_ignored count=N total=T subscription=S bytes=B
 * why=W" (or subscription_refused, with tenant and key): N since the last
 * such line, S the first 64 bytes of the latest, quoted (client bytes are
 * never raw in the log), B its whole length. */
static void sub_log_flush(struct sub_log *l, int64_t now_ns, int force)
{
    if (!l->unlogged || (!force && now_ns - l->logged_ns < SUB_LOG_EVERY_NS))
        return;
    RK_DIAG(RK_DIAG_WARN, l->msg, "count=%llu total=%llu tenant=%s key=%s subscription=%s "
            "bytes=%zu why=\"%s\"", l->unlogged, l->total, l->tenant, l->key, l->sub, l->len,
            l->why);
    l->unlogged = 0;
    l->logged_ns = now_ns;
}

static void sub_log_add(struct sub_log *l, const char *data, size_t len, const char *tenant,
                        const char *key, const char *why)
{
    int64_t now = rk_time_now();
    l->unlogged++;
    l->total++;
    rk_diag_quote(l->sub, sizeof l->sub, data, len < 64 ? len : 64);
    l->len = len;
    snprintf(l->tenant, sizeof l->tenant, "%s", tenant);
    /* rk_zap's User-Id: Z85, no space or quote, so it goes bare */
    snprintf(l->key, sizeof l->key, "%s", key && key[0] ? key : "-");
    snprintf(l->why, sizeof l->why, "%s", why);
    sub_log_flush(l, now, 0);
}

/* With an ACL a subscription reaches a subscriber only when its key's
 * tenant may read every prefix of it. */
static int allowed(struct rk_feed *f, zmq_msg_t *m, const char *data, size_t len,
                   char topics[][RK_WIRE_TOPIC_MAX], int ntopics)
{
    const char *key = zmq_msg_gets(m, "User-Id");
    struct rk_acl *acl = rk_acl_slot_get(f->acl);
    const struct rk_acl_tenant *t = acl ? rk_acl_find(acl, key) : NULL;
    int ok = t && rk_acl_may_read(t, RK_ACL_SUBSCRIBE, (const char (*)[RK_WIRE_TOPIC_MAX])topics,
                                  (unsigned)ntopics);
    if (!ok) {
        /* the subscription's first bytes are the client's: rk_refusal quotes */
        char why[160];
        snprintf(why, sizeof why, "%s: %.*s", !t ? "key not in the ACL" :
                 "topics outside the tenant's subscribe list", (int)(len < 64 ? len : 64), data);
        struct rk_refusal r = {RK_REFUSED_SUBSCRIPTION, key, t ? rk_acl_tenant_name(t) : NULL,
                               zmq_msg_gets(m, "Peer-Address"), "E_FORBIDDEN", why};
        rk_refusal_note(&r);
    }
    rk_acl_release(acl);
    return ok;
}

static void log_group(struct rk_feed *f, enum rk_groups_notice_rc rc)
{
    if (rc == RK_GROUPS_ADDED || rc == RK_GROUPS_REMOVED)
        RK_DIAG(RK_DIAG_DEBUG, "feed_group", "added=%d groups=%zu", rc == RK_GROUPS_ADDED,
                rk_groups_count(f->groups));
    if (rc == RK_GROUPS_FULL)
        RK_DIAG(RK_DIAG_WARN, "feed_groups_full", "groups=%d why=\"a subscription with a new "
                "filter gets nothing until others leave\"", RK_GROUPS_MAX);
}

/* One subscribe (byte 1) or unsubscribe (0) notice. libzmq (XPUB_MANUAL)
 * passes every one, and one unsubscribe per key a connection held when it
 * ends; the groups count them. Only a well-formed key, allowed by the ACL,
 * is passed on to libzmq (ZMQ_SUBSCRIBE): anything else gets nothing.
 * Every well-formed key is counted, refused or not, because a connection's
 * ending unsubscribes it without saying whose it was. */
static void notice(struct rk_feed *f, zmq_msg_t *m, uint64_t head)
{
    const char *buf = zmq_msg_data(m);
    size_t n = zmq_msg_size(m);
    char topics[RK_WIRE_TOPICS_MAX][RK_WIRE_TOPIC_MAX];
    if (n == 0 || (buf[0] != 0 && buf[0] != 1))
        return; /* a message, not a notice: a subscriber has nothing to say */
    int ntopics = n - 1 >= RK_WIRE_SUBKEY_MAX ? -1 : rk_wire_subkey_parse(buf + 1, n - 1, topics);
    if (ntopics < 0) {
        if (buf[0] == 1)
            sub_log_add(&f->ignored, buf + 1, n - 1, "-", zmq_msg_gets(m, "User-Id"),
                        "not a subscription key (PROTOCOL.md 3.3): subscribe to "
                        "~PREFIX|PREFIX\\n");
        return;
    }
    if (buf[0] == 1 && (!f->acl || allowed(f, m, buf + 1, n - 1, topics, ntopics)))
        zmq_setsockopt(f->sock, ZMQ_SUBSCRIBE, buf + 1, n - 1);
    else if (buf[0] == 0)
        zmq_setsockopt(f->sock, ZMQ_UNSUBSCRIBE, buf + 1, n - 1);
    log_group(f, rk_groups_notice(f->groups, buf, n, head));
}

/* XPUB hands us subscribe/unsubscribe notices: the first subscriber of a
 * key makes its group, the last one leaving removes it. */
void rk_feed_notices(struct rk_feed *f, uint64_t head)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    while (zmq_msg_recv(&m, f->sock, ZMQ_DONTWAIT) >= 0)
        notice(f, &m, head);
    zmq_msg_close(&m);
}

int rk_feed_rebind(struct rk_feed *f)
{
    unbind(f);
    rk_groups_destroy(&f->groups);
    f->groups = rk_groups_new();
    /* libzmq closes the listener in its I/O thread: the port frees soon. */
    for (int i = 0; i < 50 && !f->sock; i++) {
        struct timespec ts = {0, 100000000L};
        nanosleep(&ts, NULL);
        if (bind_feed(f) == 0)
            return 0;
    }
    return -1;
}
