#include "rk_feed.h"
#include "rk_diag.h"
#include "rk_groups.h"
#include "rk_sock.h"
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
/* How often each subscription group hears the log's head, so a subscriber
 * whose last events were skipped notices without new traffic. */
#define TICK_EVERY_NS 200000000LL

struct rk_feed {
    void *zctx;
    char *endpoint;
    const char *curve_secret;
    struct rk_acl_slot *acl;
    void *sock, *mon;
    unsigned generation;            /* names the monitor after a rebind */
    struct rk_groups *groups;
    int64_t next_tick_ns;
    unsigned long long bad_subscriptions, refused_subscriptions;
    /* The live header is over 1 KiB: built once, not zeroed per event. */
    struct rk_wire_hdr live;
    zmq_msg_t *event;               /* of the message being sent; NULL: a tick */
};

static int bind_feed(struct rk_feed *f)
{
    char name[64];
    struct rk_sock_options opt = {.type = ZMQ_XPUB, .hwm = FEED_SNDHWM,
                                  .xpub_manual = f->acl != NULL,
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
    return rk_sock_monitor_drain(f->mon);
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

void rk_feed_relay(struct rk_feed *f, const char *topic, zmq_msg_t *event, uint64_t seq,
                   int64_t recv_ns)
{
    if (rk_groups_count(f->groups) == 0)
        return;
    f->live.cmd = RK_CMD_LIVE;
    f->live.seq = seq;
    f->live.recv_ns = recv_ns;
    f->event = event;
    snprintf(f->live.topic, sizeof f->live.topic, "%s", topic);
    rk_groups_match(f->groups, topic, seq, send_on_group, f);
}

void rk_feed_relay_bytes(struct rk_feed *f, const char *topic, const void *event, size_t len,
                         uint64_t seq, int64_t recv_ns)
{
    zmq_msg_t m;
    if (rk_groups_count(f->groups) == 0)
        return;
    zmq_msg_init_size(&m, len);
    memcpy(zmq_msg_data(&m), event, len);
    rk_feed_relay(f, topic, &m, seq, recv_ns);
    zmq_msg_close(&m);
}

void rk_feed_tick(struct rk_feed *f, uint64_t head, int64_t now_ns)
{
    if (now_ns < f->next_tick_ns)
        return;
    struct rk_wire_hdr live = f->live;
    f->live = (struct rk_wire_hdr){.cmd = RK_CMD_TICK, .seq = head, .recv_ns = now_ns};
    f->event = NULL;
    rk_groups_each(f->groups, send_on_group, f);
    f->live = live;
    f->next_tick_ns = now_ns + TICK_EVERY_NS;
}

/* With an ACL (XPUB_MANUAL) a subscription reaches a subscriber only when
 * we pass it on: its key's tenant must be allowed every prefix of it. */
static int allowed(struct rk_feed *f, zmq_msg_t *m)
{
    const char *data = zmq_msg_data(m), *key = zmq_msg_gets(m, "User-Id");
    size_t n = zmq_msg_size(m);
    char topics[RK_WIRE_TOPICS_MAX][RK_WIRE_TOPIC_MAX];
    if (data[0] != 1)
        return 1; /* unsubscribing is always allowed */
    struct rk_acl *acl = rk_acl_slot_get(f->acl);
    const struct rk_acl_tenant *t = acl ? rk_acl_find(acl, key) : NULL;
    int ntopics = rk_wire_subkey_parse(data + 1, n - 1, topics);
    int ok = t && ntopics >= 0 &&
             rk_acl_may_read(t, RK_ACL_SUBSCRIBE, (const char (*)[RK_WIRE_TOPIC_MAX])topics,
                             (unsigned)ntopics);
    if (!ok && f->refused_subscriptions++ % 1000 == 0) {
        char sub[256]; /* client bytes: quoted and escaped, never raw */
        size_t len = n > 1 && data[n - 1] == '\n' ? n - 2 : n - 1;
        RK_DIAG(RK_DIAG_WARN, "subscription_refused", "count=%llu tenant=%s key=%s "
                "subscription=%s why=\"%s\"", f->refused_subscriptions,
                t ? rk_acl_tenant_name(t) : "-", key ? key : "-",
                rk_diag_quote(sub, sizeof sub, data + 1, len),
                !t ? "key not in the ACL" : ntopics < 0 ? "not a subscription key"
                   : "topics outside the tenant's subscribe list");
    }
    rk_acl_release(acl);
    return ok;
}

static void log_notice(struct rk_feed *f, enum rk_groups_notice_rc rc, const char *buf)
{
    if (rc == RK_GROUPS_ADDED || rc == RK_GROUPS_REMOVED)
        RK_DIAG(RK_DIAG_DEBUG, "feed_group", "added=%d groups=%zu", rc == RK_GROUPS_ADDED,
                rk_groups_count(f->groups));
    if (rc == RK_GROUPS_FULL)
        RK_DIAG(RK_DIAG_WARN, "feed_groups_full", "groups=%d why=\"a subscription with a new "
                "filter gets nothing until others leave\"", RK_GROUPS_MAX);
    /* A raw topic prefix (an older or foreign client) matches nothing. */
    if (rc == RK_GROUPS_BAD_KEY && buf[0] == 1 && f->bad_subscriptions++ % 1000 == 0)
        RK_DIAG(RK_DIAG_WARN, "feed_subscription_ignored", "count=%llu why=\"not a "
                "subscription key (PROTOCOL.md 3.3): subscribe to ~PREFIX|PREFIX\\n\"",
                f->bad_subscriptions);
}

/* XPUB hands us subscribe/unsubscribe notices: the first subscriber of a
 * key makes its group, the last one leaving removes it. With an ACL every
 * notice comes (manual mode) and groups stay until the feed is rebound. */
void rk_feed_notices(struct rk_feed *f, uint64_t head)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    while (zmq_msg_recv(&m, f->sock, ZMQ_DONTWAIT) >= 0) {
        const char *buf = zmq_msg_data(&m);
        size_t n = zmq_msg_size(&m);
        if (n == 0 || (f->acl && !allowed(f, &m)))
            continue;
        if (f->acl) {
            zmq_setsockopt(f->sock, buf[0] ? ZMQ_SUBSCRIBE : ZMQ_UNSUBSCRIBE, buf + 1, n - 1);
            if (!buf[0])
                continue;
        }
        log_notice(f, n > RK_WIRE_SUBKEY_MAX + 1 ? RK_GROUPS_BAD_KEY
                                                 : rk_groups_notice(f->groups, buf, n, head),
                   buf);
    }
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
