#include "rk_gw_state.h"
#include "rk_client.h"
#include "rk_json.h"
#include "rk_wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define PAGE 1000
/* Requests asked at once by rk_gw_state_some. The round trip, not the
 * broker's lookup, is the cost: 64 at once followed 10,000 new requests
 * at about 3,400-7,200 events/s on the 2-core test machine, 512 at about
 * 12,800 (tests/bench/gateway_bench.py). */
#define WINDOW 512

struct rk_gw_state {
    void *zctx;
    void *dealer;
    char endpoint[256];
    struct rk_client_keys keys;
    int timeout_ms;
    uint64_t corr;
    const atomic_int *cancel;
    char error[320];
};

void rk_gw_state_cancel_on(struct rk_gw_state *s, const atomic_int *flag)
{
    s->cancel = flag;
}

/* Waits up to the timeout for a reply, in slices, so that a cancel is seen:
 * 1 when one is there, 0 on the timeout, -1 when cancelled. */
static int wait_reply(struct rk_gw_state *s)
{
    zmq_pollitem_t it = {s->dealer, 0, ZMQ_POLLIN, 0};
    for (int left = s->timeout_ms; left > 0; left -= 100) {
        if (s->cancel && atomic_load(s->cancel))
            return -1;
        if (zmq_poll(&it, 1, left < 100 ? left : 100) > 0)
            return 1;
    }
    return 0;
}

static int connect_new(struct rk_gw_state *s)
{
    int linger = 0;
    if (s->dealer)
        zmq_close(s->dealer);
    s->dealer = zmq_socket(s->zctx, ZMQ_DEALER);
    if (!s->dealer)
        return errno;
    zmq_setsockopt(s->dealer, ZMQ_LINGER, &linger, sizeof linger);
    if (rk_client_keys_apply(&s->keys, s->dealer) != 0 || zmq_connect(s->dealer, s->endpoint))
        return EINVAL;
    return 0;
}

int rk_gw_state_open(void *zctx, const char *endpoint, const struct rk_client_options *o,
                     int timeout_ms, struct rk_gw_state **out)
{
    struct rk_gw_state *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    *out = NULL;
    s->zctx = zctx;
    s->timeout_ms = timeout_ms;
    snprintf(s->endpoint, sizeof s->endpoint, "%s", endpoint);
    if (strlen(endpoint) >= sizeof s->endpoint || rk_client_keys_load(o, &s->keys, NULL, 0) ||
        connect_new(s)) {
        rk_gw_state_close(&s);
        return EINVAL;
    }
    *out = s;
    return 0;
}

void rk_gw_state_close(struct rk_gw_state **sp)
{
    if (!sp || !*sp)
        return;
    if ((*sp)->dealer)
        zmq_close((*sp)->dealer);
    rk_client_keys_wipe(&(*sp)->keys);
    free(*sp);
    *sp = NULL;
}

const char *rk_gw_state_error(const struct rk_gw_state *s)
{
    return s->error;
}

/* Sends one "state" with `corr`; `id` NULL asks a page at `cursor`. */
static int ask(struct rk_gw_state *s, uint64_t corr, const char *id, const unsigned char *cursor,
               size_t cursor_len)
{
    struct rk_wire_hdr h;
    unsigned char buf[RK_WIRE_HDR_MAX];
    memset(&h, 0, sizeof h);
    h.cmd = RK_CMD_STATE;
    h.corr = corr;
    h.limit = PAGE;
    if (id)
        snprintf(h.filter.request_id, sizeof h.filter.request_id, "%s", id);
    if (cursor_len)
        memcpy(h.cursor, cursor, cursor_len);
    h.cursor_len = cursor_len;
    size_t n = rk_wire_encode(&h, buf, sizeof buf);
    if (!n)
        return EINVAL;
    return zmq_send(s->dealer, buf, n, ZMQ_DONTWAIT) < 0 ? errno : 0;
}

/* One reply: its header in *h and, for "reqs", its requests as a JSON
 * array in *reqs (caller decrefs). ETIMEDOUT when nothing came in time,
 * ECANCELED when told to give up;
 * EAGAIN for a reply that is not understood (skipped by the caller). */
static int receive(struct rk_gw_state *s, struct rk_wire_hdr *h, json_t **reqs)
{
    zmq_msg_t f0, f1;
    int rc = EAGAIN, more = 0;
    size_t more_len = sizeof more;
    *reqs = NULL;
    int w = wait_reply(s);
    if (w <= 0)
        return w < 0 ? ECANCELED : ETIMEDOUT;
    zmq_msg_init(&f0);
    zmq_msg_init(&f1);
    if (zmq_msg_recv(&f0, s->dealer, 0) < 0) {
        rc = errno;
        goto out;
    }
    zmq_getsockopt(s->dealer, ZMQ_RCVMORE, &more, &more_len);
    if (more && zmq_msg_recv(&f1, s->dealer, 0) < 0) {
        rc = errno;
        goto out;
    }
    /* Drop any frame beyond the two a reply has. */
    while (zmq_getsockopt(s->dealer, ZMQ_RCVMORE, &more, &more_len) == 0 && more) {
        zmq_msg_t x;
        zmq_msg_init(&x);
        zmq_msg_recv(&x, s->dealer, 0);
        zmq_msg_close(&x);
    }
    if (rk_wire_decode(zmq_msg_data(&f0), zmq_msg_size(&f0), h))
        goto out;
    if (h->cmd == RK_CMD_ERR) {
        rc = 0;
        goto out;
    }
    if (h->cmd != RK_CMD_REQS)
        goto out;
    *reqs = rk_msgpack_to_json(zmq_msg_data(&f1), zmq_msg_size(&f1));
    if (!json_is_array(*reqs)) {
        json_decref(*reqs);
        *reqs = NULL;
        goto out;
    }
    rc = 0;
out:
    zmq_msg_close(&f0);
    zmq_msg_close(&f1);
    return rc;
}

static void each(json_t *reqs, uint64_t seq, rk_gw_state_fn fn, void *arg)
{
    size_t i;
    json_t *r;
    json_array_foreach(reqs, i, r)
        if (json_is_object(r) && json_is_string(json_object_get(r, "request_id")))
            fn(arg, r, seq);
}

static int refused(struct rk_gw_state *s, const struct rk_wire_hdr *h)
{
    snprintf(s->error, sizeof s->error, "%s: %s", h->code, h->message);
    return EPROTO;
}

/* The reply to `corr`, skipping stale ones (asked before a reconnect). */
static int reply_to(struct rk_gw_state *s, uint64_t corr, struct rk_wire_hdr *h, json_t **reqs)
{
    for (;;) {
        int rc = receive(s, h, reqs);
        if (rc == EAGAIN || (rc == 0 && h->corr != corr)) {
            json_decref(*reqs);
            *reqs = NULL;
            continue;
        }
        return rc;
    }
}

int rk_gw_state_all(struct rk_gw_state *s, int tries, rk_gw_state_fn fn, void *arg,
                    uint64_t *min_seq)
{
    unsigned char cursor[RK_WIRE_CURSOR_MAX];
    size_t cursor_len = 0;
    int failed = 0, have = 0;
    *min_seq = 0;
    s->error[0] = 0;
    for (;;) {
        struct rk_wire_hdr h;
        json_t *reqs = NULL;
        uint64_t corr = ++s->corr;
        int rc = ask(s, corr, NULL, cursor, cursor_len);
        if (rc == 0)
            rc = reply_to(s, corr, &h, &reqs);
        if (rc == ECANCELED)
            return rc;
        if (rc == ETIMEDOUT || (rc && rc != EPROTO)) {
            snprintf(s->error, sizeof s->error, "the broker did not answer \"state\" in %d ms",
                     s->timeout_ms);
            if (++failed >= tries)
                return ETIMEDOUT;
            connect_new(s);
            continue;
        }
        if (h.cmd == RK_CMD_ERR)
            return refused(s, &h);
        failed = 0;
        each(reqs, h.seq, fn, arg);
        json_decref(reqs);
        if (!have || h.seq < *min_seq)
            *min_seq = h.seq;
        have = 1;
        if (!h.cursor_len)
            return 0;
        memcpy(cursor, h.cursor, h.cursor_len);
        cursor_len = h.cursor_len;
    }
}

/* Asks ids[0..n) (n <= WINDOW) at once and takes every answer. */
static int some_window(struct rk_gw_state *s, const char *const *ids, size_t n,
                       rk_gw_state_fn fn, void *arg)
{
    uint64_t base = s->corr + 1;
    size_t got = 0;
    s->corr += n;
    for (size_t i = 0; i < n; i++) {
        int rc = ask(s, base + i, ids[i], NULL, 0);
        if (rc)
            return rc;
    }
    while (got < n) {
        struct rk_wire_hdr h;
        json_t *reqs = NULL;
        int rc = receive(s, &h, &reqs);
        if (rc == EAGAIN || (rc == 0 && (h.corr < base || h.corr >= base + n))) {
            json_decref(reqs);
            continue;
        }
        if (rc)
            return rc;
        if (h.cmd == RK_CMD_ERR)
            return refused(s, &h);
        each(reqs, h.seq, fn, arg);
        json_decref(reqs);
        got++;
    }
    return 0;
}

int rk_gw_state_some(struct rk_gw_state *s, const char *const *ids, size_t n, int tries,
                     rk_gw_state_fn fn, void *arg)
{
    s->error[0] = 0;
    for (size_t at = 0; at < n;) {
        size_t k = n - at < WINDOW ? n - at : WINDOW;
        int rc = 0;
        for (int t = 0; t < tries; t++) {
            rc = some_window(s, ids + at, k, fn, arg);
            if (rc != ETIMEDOUT)
                break;
            if (s->cancel && atomic_load(s->cancel))
                return ECANCELED;
            /* Answers already taken are taken again: harmless, a state is
             * a value, not a change. */
            connect_new(s);
        }
        if (rc == ETIMEDOUT)
            snprintf(s->error, sizeof s->error, "the broker did not answer \"state\" in %d ms",
                     s->timeout_ms);
        if (rc)
            return rc;
        at += k;
    }
    return 0;
}
