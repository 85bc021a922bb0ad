#include "rk_sub.h"
#include "rk_client.h"
#include "rk_event.h"
#include "rk_reader.h"
#include "rk_time.h"
#include "rk_wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define REPLAY_TIMEOUT_MS 5000

enum mode {
    MODE_LIVE,      /* following the feed */
    MODE_FILLING,   /* reading the log from `next` to its end */
    MODE_SNAPSHOT,  /* reading the starting snapshot */
};

struct rk_sub {
    void *zctx;
    int own_ctx;
    void *sub;
    char *replay_endpoint;
    struct rk_client_keys keys; /* for the reader, made on first use: most */
    struct rk_reader *reader;   /* never need one */
    char filters[RK_WIRE_TOPICS_MAX][RK_WIRE_TOPIC_MAX];
    unsigned nfilters;
    uint64_t next;              /* next sequence to deliver or pass over */
    enum mode mode;
    int64_t last_heard_ms;
    zmq_msg_t frames[3];        /* key, header, event of the last live message */
    char topic[RK_TOPIC_MAX];
    uint64_t gaps, filled;
    uint64_t snapshot_seq;      /* once the starting snapshot is read */
    int subscribed;
    char log_id[RK_WIRE_LOG_ID_MAX + 1];    /* the log `next` counts in; "" = not known yet */
    char broker_id[RK_WIRE_LOG_ID_MAX + 1]; /* the broker's, as last heard */
    uint64_t broker_head;
    uint64_t feed_high;         /* the highest seq the feed has said: ticks
                                 * queued while filling may be older than what
                                 * replay read, never older than this */
    int stale;                  /* the broker's log is not ours: stop (ESTALE) */
    char error[640];
};

static int64_t now_ms(void)
{
    return rk_time_now() / 1000000;
}

int rk_sub_open(const char *feed_endpoint, const char *replay_endpoint,
                const struct rk_client_options *o, struct rk_sub **out)
{
    struct rk_sub *s = calloc(1, sizeof *s);
    int linger = 0;
    if (!s)
        abort();
    *out = NULL;
    for (int i = 0; i < 3; i++)
        zmq_msg_init(&s->frames[i]);
    s->own_ctx = !o || !o->zmq_ctx;
    s->zctx = s->own_ctx ? zmq_ctx_new() : o->zmq_ctx;
    s->replay_endpoint = strdup(replay_endpoint);
    s->sub = zmq_socket(s->zctx, ZMQ_SUB);
    if (!s->sub || !s->replay_endpoint || rk_client_keys_load(o, &s->keys, NULL, 0) != 0 ||
        rk_client_keys_apply(&s->keys, s->sub) != 0)
        goto fail;
    zmq_setsockopt(s->sub, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(s->sub, feed_endpoint) != 0)
        goto fail;
    *out = s;
    return 0;
fail:
    {
        int e = errno;
        rk_sub_destroy(&s);
        errno = e;
    }
    return -1;
}

int rk_sub_new(const char *feed_endpoint, const char *replay_endpoint, struct rk_sub **out)
{
    return rk_sub_open(feed_endpoint, replay_endpoint, NULL, out);
}

int rk_sub_new_in(void *zctx, const char *feed_endpoint, const char *replay_endpoint,
                  struct rk_sub **out)
{
    struct rk_client_options o = {.zmq_ctx = zctx};
    return rk_sub_open(feed_endpoint, replay_endpoint, &o, out);
}

void rk_sub_destroy(struct rk_sub **sp)
{
    struct rk_sub *s = *sp;
    if (!s)
        return;
    for (int i = 0; i < 3; i++)
        zmq_msg_close(&s->frames[i]);
    rk_reader_destroy(&s->reader);
    if (s->sub)
        zmq_close(s->sub);
    if (s->own_ctx)
        zmq_ctx_term(s->zctx);
    free(s->replay_endpoint);
    rk_client_keys_wipe(&s->keys);
    free(s);
    *sp = NULL;
}

int rk_sub_filter(struct rk_sub *s, const char *prefix)
{
    char key[RK_WIRE_SUBKEY_MAX], why[128];
    if (s->nfilters == RK_WIRE_TOPICS_MAX) {
        errno = ENOSPC;
        return -1;
    }
    if (rk_wire_subkey(&prefix, 1, key, why, sizeof why) == 0) {
        errno = EINVAL;
        return -1;
    }
    strcpy(s->filters[s->nfilters++], prefix);
    return 0;
}

/* Subscribes to the key of the whole filter. */
void rk_sub_subscribe(struct rk_sub *s)
{
    const char *prefixes[RK_WIRE_TOPICS_MAX];
    char key[RK_WIRE_SUBKEY_MAX], why[128];
    if (s->subscribed++)
        return;
    for (unsigned i = 0; i < s->nfilters; i++)
        prefixes[i] = s->filters[i];
    size_t n = rk_wire_subkey(prefixes, s->nfilters, key, why, sizeof why);
    zmq_setsockopt(s->sub, ZMQ_SUBSCRIBE, key, n);
    s->last_heard_ms = now_ms();
}

static int ensure_reader(struct rk_sub *s)
{
    struct rk_wire_filter f = {0};
    struct rk_client_options o = rk_client_keys_options(&s->keys, s->own_ctx ? NULL : s->zctx);
    if (s->reader)
        return 0;
    if (rk_reader_open(s->replay_endpoint, &o, &s->reader) != 0)
        return -1;
    f.ntopics = s->nfilters;
    memcpy(f.topics, s->filters, sizeof f.topics);
    rk_reader_filter(s->reader, &f);
    return 0;
}

static int begin_fill(struct rk_sub *s)
{
    if (ensure_reader(s) != 0)
        return -1;
    rk_reader_seek(s->reader, s->next, 0);
    s->mode = MODE_FILLING;
    return 0;
}

/* Reads one feed message into s->frames without waiting. Returns 0 when
 * none is queued, else 1 with *cmd: the header's command, RK_CMD_NONE for
 * anything malformed. */
static int read_feed(struct rk_sub *s, struct rk_wire_hdr *h, enum rk_wire_cmd *cmd)
{
    int n = 0, more = 1;
    *cmd = RK_CMD_NONE;
    while (more) {
        zmq_msg_t *m = &s->frames[n < 3 ? n : 2];
        /* The rest of a message is there once its first frame is. */
        if (zmq_msg_recv(m, s->sub, n ? 0 : ZMQ_DONTWAIT) < 0)
            return n ? 1 : 0;
        more = zmq_msg_more(m);
        n++;
    }
    s->last_heard_ms = now_ms();
    if (n < 2 || n > 3 || rk_wire_decode(zmq_msg_data(&s->frames[1]), zmq_msg_size(&s->frames[1]), h) != 0)
        return 1;
    if ((h->cmd == RK_CMD_LIVE) != (n == 3))
        return 1;
    *cmd = h->cmd;
    return 1;
}

/* What the broker says of its log (a tick's or a replay end's identity
 * and head) against what `next` counts in. Adopts the identity when we
 * had none (a fresh start, an old cursor, or an old broker so far).
 * Returns 0, or -1 with errno ESTALE: the log is another one, or shorter
 * than what we have seen of it, so its sequence numbers may name other
 * events than ours; following it would skip or mix events silently. */
static int check_log(struct rk_sub *s, const char *id, uint64_t head, uint64_t next)
{
    if (id && id[0] && id != s->broker_id)
        snprintf(s->broker_id, sizeof s->broker_id, "%s", id);
    s->broker_head = head;
    if (s->stale)
        goto stale;
    if (id && id[0] && s->log_id[0] && strcmp(id, s->log_id) != 0) {
        snprintf(s->error, sizeof s->error,
                 "the broker's log is now %s (its last seq is %llu), not the log %s in which "
                 "this subscriber is at seq %llu: the broker's log was restored from a backup "
                 "or replaced by a copy, and its sequence numbers may name other events. Start "
                 "over on the new log (renkei-sub --restart-on-new-log; rk_sub_restart_new_log), "
                 "or connect to the broker that still has log %s",
                 id, (unsigned long long)head, s->log_id, (unsigned long long)next, s->log_id);
        s->stale = 1;
        goto stale;
    }
    if (next > 1 && head + 1 < next) {
        snprintf(s->error, sizeof s->error,
                 "the broker's log%s%s ends at seq %llu, below seq %llu this subscriber "
                 "has reached: it lost events or was restored from a backup, and the seqs from %llu on "
                 "may name other events. Start over on it (renkei-sub --restart-on-new-log; "
                 "rk_sub_restart_new_log), or connect to the broker that has seq %llu",
                 s->log_id[0] ? " " : "", s->log_id, (unsigned long long)head,
                 (unsigned long long)next, (unsigned long long)head + 1,
                 (unsigned long long)next - 1);
        s->stale = 1;
        goto stale;
    }
    if (id && id[0] && !s->log_id[0])
        snprintf(s->log_id, sizeof s->log_id, "%s", id);
    return 0;
stale:
    errno = ESTALE;
    return -1;
}

static int wait_first_tick(struct rk_sub *s, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    zmq_pollitem_t item = {s->sub, 0, ZMQ_POLLIN, 0};
    struct rk_wire_hdr h;
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            snprintf(s->error, sizeof s->error, "no tick from the broker's feed in %d ms", timeout_ms);
            errno = ETIMEDOUT;
            return -1;
        }
        int rc = zmq_poll(&item, 1, (long)left);
        if (rc < 0 && errno != EINTR)
            return -1;
        /* Events before the first tick are older than it: start after. */
        enum rk_wire_cmd cmd;
        while (rc > 0 && read_feed(s, &h, &cmd))
            if (cmd == RK_CMD_TICK) {
                s->next = h.seq + 1;
                snprintf(s->broker_id, sizeof s->broker_id, "%s", h.log_id);
                s->broker_head = s->feed_high = h.seq;
                return 0;
            }
    }
}

/* The first tick also shows the subscription has reached the broker. */
int rk_sub_start(struct rk_sub *s, uint64_t from, int timeout_ms)
{
    rk_sub_subscribe(s);
    if (wait_first_tick(s, timeout_ms) != 0)
        return -1;
    if (check_log(s, s->broker_id, s->broker_head, from) != 0)
        return -1;
    if (from == 0)
        return 0;
    s->next = from;
    return begin_fill(s);
}

int rk_sub_check_access(struct rk_sub *s, int timeout_ms)
{
    struct rk_record rec;
    int rc;
    if (ensure_reader(s) != 0)
        return -1;
    rk_reader_seek(s->reader, 1, 1); /* the smallest request: event 1 if it matches */
    rc = rk_reader_next(s->reader, timeout_ms, &rec);
    if (rc < 0 && errno == EPROTO && strncmp(rk_reader_error(s->reader), "E_FORBIDDEN", 11) == 0) {
        snprintf(s->error, sizeof s->error, "the broker refuses these topics to this key "
                 "(%s)", rk_reader_error(s->reader));
        errno = EACCES;
        return -1;
    }
    if (rc < 0 && errno == ETIMEDOUT)
        return -1;
    return 0; /* allowed, or a refusal of something else: the start will tell */
}

int rk_sub_start_snapshot(struct rk_sub *s, int timeout_ms)
{
    rk_sub_subscribe(s);
    if (wait_first_tick(s, timeout_ms) != 0 ||
        check_log(s, s->broker_id, s->broker_head, 0) != 0 || ensure_reader(s) != 0)
        return -1;
    rk_reader_snapshot(s->reader, 0);
    s->next = 1;
    s->mode = MODE_SNAPSHOT;
    return 0;
}

/* Topic of a replayed event: the same function the broker used. */
static void topic_of(const struct rk_record *rec, char *topic)
{
    struct rk_event_info info;
    if (rk_event_validate(rec->event, rec->event_len, 0, &info, NULL) == RK_V_OK)
        rk_event_topic(&info, topic);
    else
        topic[0] = '\0';
}

/* One step of reading the log. Returns 1 with *d set, 0 when the read is
 * over (the feed takes over), -1 on error. */
static int fill_step(struct rk_sub *s, struct rk_delivery *d)
{
    struct rk_record rec;
    for (;;) {
        int rc = rk_reader_next(s->reader, REPLAY_TIMEOUT_MS, &rec);
        if (rc == RK_READER_EOF && s->mode == MODE_SNAPSHOT) {
            s->snapshot_seq = rk_reader_snapshot_seq(s->reader);
            s->next = s->snapshot_seq + 1;
            rk_reader_seek(s->reader, s->next, 0);
            s->mode = MODE_FILLING;
            continue;
        }
        if (rc == RK_READER_EOF) {
            if (check_log(s, rk_reader_log_id(s->reader), rk_reader_head(s->reader),
                          s->next) != 0)
                return -1;
            if (rk_reader_position(s->reader) > s->next)
                s->next = rk_reader_position(s->reader);
            s->mode = MODE_LIVE;
            return 0;
        }
        if (rc < 0) {
            snprintf(s->error, sizeof s->error, "replay from %s: %s", s->replay_endpoint,
                     errno == EPROTO ? rk_reader_error(s->reader) : strerror(errno));
            return -1;
        }
        if (s->mode == MODE_FILLING && rec.seq < s->next)
            continue;
        if (s->mode == MODE_FILLING) {
            s->next = rec.seq + 1;
            s->filled++;
        }
        topic_of(&rec, s->topic);
        *d = (struct rk_delivery){rec.seq, rec.recv_ns, s->topic, rec.event, rec.event_len,
                                  s->mode == MODE_FILLING, s->mode == MODE_SNAPSHOT};
        return 1;
    }
}

/* A gap is "something of mine lies in [next, seq)": the feed says the
 * previous event of this filter is `prev`, and we have all below `next`.
 * Returns 1 with *d, 0 when a message was taken with nothing to deliver,
 * -1 on error, -2 when no message is queued. */
static int take_feed(struct rk_sub *s, struct rk_delivery *d)
{
    struct rk_wire_hdr h;
    enum rk_wire_cmd cmd;
    if (!read_feed(s, &h, &cmd))
        return -2;
    if (cmd == RK_CMD_TICK) {
        if (check_log(s, h.log_id, h.seq, s->feed_high + 1) != 0)
            return -1;
        s->feed_high = h.seq;
        if (h.prev_seq >= s->next) {
            s->gaps++;
            return begin_fill(s) == 0 ? 0 : -1;
        }
        if (h.seq >= s->next)
            s->next = h.seq + 1;
        return 0;
    }
    if (cmd != RK_CMD_LIVE || h.seq < s->next)
        return 0;
    if (h.seq > s->feed_high)
        s->feed_high = h.seq;
    if (h.prev_seq >= s->next) {
        /* The log has this event too: it was stored before it was sent. */
        s->gaps++;
        return begin_fill(s) == 0 ? 0 : -1;
    }
    strcpy(s->topic, h.topic);
    s->next = h.seq + 1;
    *d = (struct rk_delivery){h.seq, h.recv_ns, s->topic, zmq_msg_data(&s->frames[2]),
                              zmq_msg_size(&s->frames[2]), 0, 0};
    return 1;
}

int rk_sub_next(struct rk_sub *s, int timeout_ms, struct rk_delivery *d)
{
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : now_ms() + timeout_ms;
    zmq_pollitem_t item = {s->sub, 0, ZMQ_POLLIN, 0};

    if (s->stale) {
        errno = ESTALE;
        return -1;
    }
    for (;;) {
        int rc;
        if (s->mode != MODE_LIVE) {
            rc = fill_step(s, d);
            if (rc != 0)
                return rc > 0 ? 0 : -1;
            continue;
        }
        /* What is queued is taken without a poll (a system call) each. */
        rc = take_feed(s, d);
        if (rc == 1)
            return 0;
        if (rc == -1)
            return -1;
        if (rc == 0)
            continue;
        int64_t now = now_ms();
        if (now >= deadline) {
            errno = ETIMEDOUT;
            return -1;
        }
        rc = zmq_poll(&item, 1, deadline == INT64_MAX ? -1 : (long)(deadline - now));
        if (rc < 0 && errno != EINTR)
            return -1;
    }
}

void *rk_sub_socket(const struct rk_sub *s)
{
    return s->sub;
}

uint64_t rk_sub_position(const struct rk_sub *s)
{
    return s->next;
}

uint64_t rk_sub_gaps_filled(const struct rk_sub *s)
{
    return s->gaps;
}

uint64_t rk_sub_events_filled(const struct rk_sub *s)
{
    return s->filled;
}

uint64_t rk_sub_snapshot_seq(const struct rk_sub *s)
{
    return s->snapshot_seq;
}

int64_t rk_sub_silent_ms(const struct rk_sub *s)
{
    return now_ms() - s->last_heard_ms;
}

const char *rk_sub_error(const struct rk_sub *s)
{
    return s->error;
}

int rk_sub_set_log_id(struct rk_sub *s, const char *log_id)
{
    size_t n = log_id ? strlen(log_id) : 0;
    if (n != 0 && (n != RK_WIRE_LOG_ID_MAX || strspn(log_id, "0123456789abcdef") != n)) {
        errno = EINVAL;
        return -1;
    }
    snprintf(s->log_id, sizeof s->log_id, "%s", n ? log_id : "");
    return 0;
}

const char *rk_sub_log_id(const struct rk_sub *s)
{
    return s->log_id;
}

int rk_sub_restart_new_log(struct rk_sub *s, uint64_t from)
{
    if (!s->subscribed) {
        errno = EINVAL;
        return -1;
    }
    s->stale = 0;
    s->error[0] = '\0';
    snprintf(s->log_id, sizeof s->log_id, "%s", s->broker_id);
    s->snapshot_seq = 0;
    s->feed_high = s->broker_head;
    if (from == 0) {
        s->next = s->broker_head + 1;
        s->mode = MODE_LIVE;
        return 0;
    }
    s->next = from;
    return begin_fill(s);
}
