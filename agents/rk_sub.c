#include "rk_sub.h"
#include "rk_event.h"
#include "rk_time.h"
#include "rk_wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define MAX_FILTERS 64
#define QUIET_MS 500       /* after this long without live events, check replay */
#define REPLAY_TIMEOUT_MS 5000

struct rk_sub {
    void *zctx;
    void *sub;
    struct rk_reader *reader;
    char *filters[MAX_FILTERS];
    int nfilters;
    uint64_t next;          /* next sequence to deliver or pass over */
    int filling;            /* reading a gap from replay */
    int64_t last_live_ms;
    zmq_msg_t frames[3];    /* topic, header, event of the last live message */
    char topic[RK_TOPIC_MAX];
    uint64_t gaps, filled;
};

static int64_t now_ms(void)
{
    return rk_time_now() / 1000000;
}

int rk_sub_new(const char *feed_endpoint, const char *replay_endpoint, struct rk_sub **out)
{
    struct rk_sub *s = calloc(1, sizeof *s);
    int linger = 0;
    if (!s)
        abort();
    *out = NULL;
    for (int i = 0; i < 3; i++)
        zmq_msg_init(&s->frames[i]);
    s->zctx = zmq_ctx_new();
    s->sub = zmq_socket(s->zctx, ZMQ_SUB);
    if (!s->sub)
        goto fail;
    zmq_setsockopt(s->sub, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(s->sub, feed_endpoint) != 0)
        goto fail;
    if (rk_reader_new(replay_endpoint, &s->reader) != 0)
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

void rk_sub_destroy(struct rk_sub **sp)
{
    struct rk_sub *s = *sp;
    if (!s)
        return;
    for (int i = 0; i < 3; i++)
        zmq_msg_close(&s->frames[i]);
    for (int i = 0; i < s->nfilters; i++)
        free(s->filters[i]);
    rk_reader_destroy(&s->reader);
    if (s->sub)
        zmq_close(s->sub);
    zmq_ctx_term(s->zctx);
    free(s);
    *sp = NULL;
}

int rk_sub_filter(struct rk_sub *s, const char *prefix)
{
    if (s->nfilters == MAX_FILTERS) {
        errno = ENOSPC;
        return -1;
    }
    s->filters[s->nfilters] = strdup(prefix);
    if (!s->filters[s->nfilters])
        abort();
    s->nfilters++;
    return 0;
}

static int matches(const struct rk_sub *s, const char *topic)
{
    if (s->nfilters == 0)
        return 1;
    for (int i = 0; i < s->nfilters; i++)
        if (strncmp(topic, s->filters[i], strlen(s->filters[i])) == 0)
            return 1;
    return 0;
}

int rk_sub_start(struct rk_sub *s, uint64_t from, int timeout_ms)
{
    struct rk_record rec;
    if (s->nfilters == 0)
        zmq_setsockopt(s->sub, ZMQ_SUBSCRIBE, "", 0);
    for (int i = 0; i < s->nfilters; i++)
        zmq_setsockopt(s->sub, ZMQ_SUBSCRIBE, s->filters[i], strlen(s->filters[i]));
    if (from == 0) {
        /* Ask where the log ends now: an empty range past any sequence. */
        rk_reader_seek(s->reader, UINT64_MAX, 0);
        if (rk_reader_next(s->reader, timeout_ms, &rec) < 0)
            return -1;
        from = rk_reader_head(s->reader) + 1;
    }
    s->next = from;
    s->filling = 1;
    rk_reader_seek(s->reader, s->next, 0);
    s->last_live_ms = now_ms();
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

/* One step of gap filling. Returns 1 with *d set, 0 when the gap is
 * closed, -1 on error. */
static int fill_step(struct rk_sub *s, struct rk_delivery *d)
{
    struct rk_record rec;
    for (;;) {
        int rc = rk_reader_next(s->reader, REPLAY_TIMEOUT_MS, &rec);
        if (rc == RK_READER_EOF) {
            s->filling = 0;
            s->last_live_ms = now_ms();
            return 0;
        }
        if (rc < 0)
            return -1;
        if (rec.seq < s->next)
            continue;
        s->next = rec.seq + 1;
        topic_of(&rec, s->topic);
        if (!matches(s, s->topic))
            continue;
        s->filled++;
        *d = (struct rk_delivery){rec.seq, rec.recv_ns, s->topic, rec.event, rec.event_len, 1};
        return 1;
    }
}

static void begin_fill(struct rk_sub *s)
{
    s->filling = 1;
    rk_reader_seek(s->reader, s->next, 0);
}

/* Reads one live message into s->frames. Returns 1 when it is the next
 * event in order, 0 when it was skipped (duplicate, malformed, or a gap
 * that is now being filled). */
static int take_live(struct rk_sub *s, struct rk_delivery *d)
{
    struct rk_wire_hdr h;
    int n = 0, more = 1;
    while (more && n < 3) {
        if (zmq_msg_recv(&s->frames[n], s->sub, 0) < 0)
            return 0;
        more = zmq_msg_more(&s->frames[n]);
        n++;
    }
    while (more) {
        zmq_msg_t extra;
        zmq_msg_init(&extra);
        zmq_msg_recv(&extra, s->sub, 0);
        more = zmq_msg_more(&extra);
        zmq_msg_close(&extra);
        n++;
    }
    s->last_live_ms = now_ms();
    if (n != 3 || rk_wire_decode(zmq_msg_data(&s->frames[1]), zmq_msg_size(&s->frames[1]), &h) != 0 ||
        h.cmd != RK_CMD_LIVE)
        return 0;
    if (h.seq < s->next)
        return 0;
    if (h.seq > s->next) {
        /* The replay will include this event too: it was stored before it
         * was sent live. */
        s->gaps++;
        begin_fill(s);
        return 0;
    }
    size_t tlen = zmq_msg_size(&s->frames[0]);
    if (tlen >= RK_TOPIC_MAX)
        tlen = RK_TOPIC_MAX - 1;
    memcpy(s->topic, zmq_msg_data(&s->frames[0]), tlen);
    s->topic[tlen] = '\0';
    s->next = h.seq + 1;
    *d = (struct rk_delivery){h.seq, h.recv_ns, s->topic, zmq_msg_data(&s->frames[2]),
                              zmq_msg_size(&s->frames[2]), 0};
    return 1;
}

int rk_sub_next(struct rk_sub *s, int timeout_ms, struct rk_delivery *d)
{
    int64_t deadline = timeout_ms < 0 ? INT64_MAX : now_ms() + timeout_ms;
    zmq_pollitem_t item = {s->sub, 0, ZMQ_POLLIN, 0};

    for (;;) {
        if (s->filling) {
            int rc = fill_step(s, d);
            if (rc != 0)
                return rc > 0 ? 0 : -1;
            continue;
        }
        int64_t now = now_ms();
        if (now >= deadline) {
            errno = ETIMEDOUT;
            return -1;
        }
        int64_t quiet_left = s->last_live_ms + QUIET_MS - now;
        if (quiet_left <= 0) {
            /* A quiet feed may hide a dropped tail: look in the log. */
            begin_fill(s);
            continue;
        }
        int64_t wait = deadline - now < quiet_left ? deadline - now : quiet_left;
        int rc = zmq_poll(&item, 1, (long)wait);
        if (rc < 0 && errno != EINTR)
            return -1;
        if (rc > 0 && take_live(s, d))
            return 0;
    }
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
