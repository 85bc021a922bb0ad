#include "rk_pub.h"
#include "rk_client.h"
#include "rk_wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

struct pending_cb {
    uint64_t corr;
    rk_pub_done_fn done;
    void *arg;
};

struct rk_pub {
    void *zctx;
    int own_ctx;
    void *dealer;
    uint64_t next_corr;
    size_t in_flight;
    struct pending_cb *cbs;   /* publishes sent with rk_pub_send_cb, oldest first */
    size_t ncbs, cbs_cap;
    zmq_msg_t acks_msg;       /* the "acks" being handed out one by one */
    struct rk_wire_hdr acks;  /* its header; acks.nacks = 0 when none is held */
    zmq_msg_t outs_msg;       /* the "outcomes" being handed out one by one */
    struct rk_wire_hdr outs;  /* its header: outs.nruns runs not yet taken */
    struct rk_wire_run run;   /* the run being handed out ... */
    uint32_t run_left;        /* ... and how many of its events are left */
};

/* The socket options of a publisher; `single` as rk_pub_open_single. */
static int pub_socket(struct rk_pub *p, const struct rk_client_keys *k, int single)
{
    int linger = 0, hwm = 100000, never = -1, immediate = 1;
    p->dealer = zmq_socket(p->zctx, ZMQ_DEALER);
    if (!p->dealer || rk_client_keys_apply(k, p->dealer) != 0)
        return -1;
    zmq_setsockopt(p->dealer, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(p->dealer, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(p->dealer, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (single) {
        zmq_setsockopt(p->dealer, ZMQ_RECONNECT_IVL, &never, sizeof never);
        zmq_setsockopt(p->dealer, ZMQ_IMMEDIATE, &immediate, sizeof immediate);
    }
    return 0;
}

static int pub_open(const char *endpoint, const struct rk_client_options *o, int single,
                    struct rk_pub **out)
{
    struct rk_pub *p = calloc(1, sizeof *p);
    struct rk_client_keys k;
    int rc = -1;
    if (!p)
        abort();
    *out = NULL;
    zmq_msg_init(&p->acks_msg);
    zmq_msg_init(&p->outs_msg);
    p->own_ctx = !o || !o->zmq_ctx;
    p->zctx = p->own_ctx ? zmq_ctx_new() : o->zmq_ctx;
    /* ZeroMQ keeps the keys it was given: ours are wiped at once. */
    if (rk_client_keys_load(o, &k, NULL, 0) == 0 && pub_socket(p, &k, single) == 0 &&
        zmq_connect(p->dealer, endpoint) == 0)
        rc = 0;
    rk_client_keys_wipe(&k);
    if (rc != 0) {
        int e = errno;
        rk_pub_destroy(&p);
        errno = e;
        return -1;
    }
    p->next_corr = 1;
    *out = p;
    return 0;
}

int rk_pub_open(const char *endpoint, const struct rk_client_options *o, struct rk_pub **out)
{
    return pub_open(endpoint, o, 0, out);
}

int rk_pub_open_single(const char *endpoint, const struct rk_client_options *o,
                       struct rk_pub **out)
{
    return pub_open(endpoint, o, 1, out);
}

int rk_pub_new(const char *endpoint, struct rk_pub **out)
{
    return pub_open(endpoint, NULL, 0, out);
}

void rk_pub_destroy(struct rk_pub **pp)
{
    struct rk_pub *p = *pp;
    if (!p)
        return;
    zmq_msg_close(&p->acks_msg);
    zmq_msg_close(&p->outs_msg);
    if (p->dealer)
        zmq_close(p->dealer);
    if (p->own_ctx)
        zmq_ctx_term(p->zctx);
    free(p->cbs);
    free(p);
    *pp = NULL;
}

int rk_pub_send(struct rk_pub *p, const void *event, size_t len, uint64_t *corr)
{
    return rk_pub_send_numbered(p, NULL, 0, event, len, corr);
}

int rk_pub_send_numbered(struct rk_pub *p, const char *producer, uint64_t number,
                         const void *event, size_t len, uint64_t *corr)
{
    /* Replies may come gathered: one "acks" per commit, not one per event. */
    struct rk_wire_hdr h = {.cmd = RK_CMD_PUB, .corr = p->next_corr, .flags = RK_WIRE_PUB_ACKS};
    unsigned char buf[RK_WIRE_HDR_MAX];
    if (producer) {
        size_t plen = strlen(producer);
        if (plen == 0 || plen > RK_WIRE_PRODUCER_MAX || number == 0) {
            errno = EINVAL;
            return -1;
        }
        memcpy(h.producer, producer, plen + 1);
        h.producer_seq = number;
    }
    size_t n = rk_wire_encode(&h, buf, sizeof buf);

    if (zmq_send(p->dealer, buf, n, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -1;
    /* After the first frame the rest of a message always goes through. */
    if (zmq_send(p->dealer, event, len, 0) < 0)
        return -1;
    *corr = p->next_corr++;
    p->in_flight++;
    return 0;
}

int rk_pub_send_batch(struct rk_pub *p, const char *producer, uint64_t first,
                      const void *const *events, const size_t *lens, size_t n, uint64_t *corr)
{
    struct rk_wire_hdr h = {.cmd = RK_CMD_PUBS, .corr = p->next_corr, .nrecords = n};
    unsigned char buf[RK_WIRE_HDR_MAX];
    size_t total = 0;
    zmq_msg_t frame;
    if (n == 0 || n > RK_WIRE_PUBS_MAX || (producer && (!producer[0] || first == 0 ||
        strlen(producer) > RK_WIRE_PRODUCER_MAX))) {
        errno = EINVAL;
        return -1;
    }
    if (n == 1) /* the same on the wire as one pub, which every broker takes */
        return rk_pub_send_numbered(p, producer, first, events[0], lens[0], corr);
    if (producer) {
        memcpy(h.producer, producer, strlen(producer) + 1);
        h.producer_seq = first;
    }
    for (size_t i = 0; i < n; i++)
        total += lens[i];
    size_t hl = rk_wire_encode(&h, buf, sizeof buf);
    if (zmq_msg_init_size(&frame, total) != 0)
        return -1;
    unsigned char *at = zmq_msg_data(&frame);
    for (size_t i = 0; i < n; at += lens[i], i++)
        memcpy(at, events[i], lens[i]);
    if (zmq_send(p->dealer, buf, hl, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&frame);
        return -1;
    }
    zmq_msg_send(&frame, p->dealer, 0); /* after the first frame it goes through */
    *corr = p->next_corr;
    p->next_corr += n;
    p->in_flight += n;
    return 0;
}

static void skip_rest(void *sock)
{
    int more = 1;
    size_t sz = sizeof more;
    while (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz) == 0 && more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_msg_recv(&m, sock, 0);
        zmq_msg_close(&m);
    }
}

static void take_ack(struct rk_pub *p, struct rk_pub_result *res)
{
    memset(res, 0, sizeof *res);
    rk_wire_acks_next(&p->acks, &res->corr, &res->seq);
    res->ok = 1;
    res->recv_ns = p->acks.recv_ns;
    if (p->in_flight)
        p->in_flight--;
}

/* The next event's result of the "outcomes" held: its corr is the batch's
 * plus its place in it. */
static void take_outcome(struct rk_pub *p, struct rk_pub_result *res)
{
    if (p->run_left == 0) {
        rk_wire_outcomes_next(&p->outs, &p->run);
        p->run_left = p->run.n;
    }
    struct rk_wire_run *r = &p->run;
    uint32_t i = r->n - p->run_left--;
    memset(res, 0, sizeof *res);
    res->corr = p->outs.corr + r->first + i;
    res->ok = r->kind != RK_RUN_REFUSED;
    if (res->ok) {
        res->seq = r->seq + i;
        res->recv_ns = r->kind == RK_RUN_RETRY ? r->recv_ns : p->outs.recv_ns;
    } else {
        memcpy(res->code, r->code, sizeof res->code);
        memcpy(res->message, r->message, sizeof res->message);
        res->expected = r->expected;
    }
    if (p->in_flight)
        p->in_flight--;
}

static int outcomes_left(const struct rk_pub *p)
{
    return p->run_left || p->outs.nruns;
}

/* Waits for the next message and decodes its header; an "acks" stays in
 * p->acks_msg for take_ack, an "outcomes" in p->outs_msg for take_outcome. */
static int recv_reply(struct rk_pub *p, int timeout_ms, struct rk_wire_hdr *h)
{
    zmq_pollitem_t item = {p->dealer, 0, ZMQ_POLLIN, 0};
    zmq_msg_t m;
    int n, rc;

    zmq_msg_init(&m);
    n = zmq_msg_recv(&m, p->dealer, ZMQ_DONTWAIT);
    if (n < 0 && errno == EAGAIN) {
        rc = zmq_poll(&item, 1, timeout_ms);
        if (rc <= 0) {
            zmq_msg_close(&m);
            if (rc == 0)
                errno = ETIMEDOUT;
            return -1;
        }
        n = zmq_msg_recv(&m, p->dealer, 0);
    }
    if (n < 0) {
        zmq_msg_close(&m);
        return -1;
    }
    skip_rest(p->dealer);
    if (rk_wire_decode(zmq_msg_data(&m), zmq_msg_size(&m), h) != 0 ||
        (h->cmd != RK_CMD_ACK && h->cmd != RK_CMD_ERR && h->cmd != RK_CMD_ACKS &&
         h->cmd != RK_CMD_PONG && h->cmd != RK_CMD_OUTCOMES)) {
        zmq_msg_close(&m);
        errno = EPROTO;
        return -1;
    }
    if (h->cmd == RK_CMD_ACKS) {
        /* A small message lives inside its zmq_msg_t: moving it moves the
         * bytes, so the pairs are found again by their offset. */
        size_t off = (size_t)(h->acks - (const unsigned char *)zmq_msg_data(&m));
        zmq_msg_move(&p->acks_msg, &m);
        p->acks = *h;
        p->acks.acks = (const unsigned char *)zmq_msg_data(&p->acks_msg) + off;
    } else if (h->cmd == RK_CMD_OUTCOMES) {
        size_t off = (size_t)(h->runs - (const unsigned char *)zmq_msg_data(&m));
        zmq_msg_move(&p->outs_msg, &m);
        p->outs = *h;
        p->outs.runs = (const unsigned char *)zmq_msg_data(&p->outs_msg) + off;
        p->run_left = 0;
    }
    zmq_msg_close(&m);
    return 0;
}

int rk_pub_recv(struct rk_pub *p, int timeout_ms, struct rk_pub_result *res)
{
    struct rk_wire_hdr h;
    if (p->acks.nacks) {
        take_ack(p, res);
        return 0;
    }
    if (outcomes_left(p)) {
        take_outcome(p, res);
        return 0;
    }
    if (recv_reply(p, timeout_ms, &h) != 0)
        return -1;
    if (h.cmd == RK_CMD_ACKS) {
        take_ack(p, res);
        return 0;
    }
    if (h.cmd == RK_CMD_OUTCOMES) {
        take_outcome(p, res);
        return 0;
    }
    memset(res, 0, sizeof *res);
    res->corr = h.corr;
    if (h.cmd == RK_CMD_PONG) {
        res->pong = 1;
        return 0;
    }
    res->ok = h.cmd == RK_CMD_ACK;
    res->expected = h.expected;
    res->seq = h.seq;
    res->recv_ns = h.recv_ns;
    memcpy(res->code, h.code, sizeof res->code);
    memcpy(res->message, h.message, sizeof res->message);
    if (p->in_flight)
        p->in_flight--;
    return 0;
}

int rk_pub_ping(struct rk_pub *p, uint64_t *corr)
{
    struct rk_wire_hdr h = {.cmd = RK_CMD_PING, .corr = p->next_corr};
    unsigned char buf[RK_WIRE_HDR_MAX];
    size_t n = rk_wire_encode(&h, buf, sizeof buf);
    if (zmq_send(p->dealer, buf, n, ZMQ_DONTWAIT) < 0)
        return -1;
    *corr = p->next_corr++;
    return 0;
}

size_t rk_pub_in_flight(const struct rk_pub *p)
{
    return p->in_flight;
}

int rk_pub_publish(struct rk_pub *p, const void *event, size_t len, int timeout_ms,
                   struct rk_pub_result *res)
{
    uint64_t corr;
    if (rk_pub_send(p, event, len, &corr) != 0)
        return -1;
    for (;;) {
        if (rk_pub_recv(p, timeout_ms, res) != 0) {
            if (errno == EPROTO)
                continue;
            return -1;
        }
        if (res->corr == corr)
            return 0;
    }
}

int rk_pub_send_cb(struct rk_pub *p, const void *event, size_t len, rk_pub_done_fn done,
                   void *arg)
{
    uint64_t corr;
    if (!done) {
        errno = EINVAL;
        return -1;
    }
    if (rk_pub_send(p, event, len, &corr) != 0)
        return -1;
    if (p->ncbs == p->cbs_cap) {
        size_t cap = p->cbs_cap ? 2 * p->cbs_cap : 64;
        struct pending_cb *n = realloc(p->cbs, cap * sizeof *n);
        if (!n)
            abort();
        p->cbs = n;
        p->cbs_cap = cap;
    }
    p->cbs[p->ncbs++] = (struct pending_cb){corr, done, arg};
    return 0;
}

/* Takes the callback of `corr` off the list; outcomes mostly come in
 * sending order, so the search usually stops at the first entry. */
static int take_cb(struct rk_pub *p, uint64_t corr, struct pending_cb *out)
{
    for (size_t i = 0; i < p->ncbs; i++) {
        if (p->cbs[i].corr != corr)
            continue;
        *out = p->cbs[i];
        memmove(&p->cbs[i], &p->cbs[i + 1], (p->ncbs - i - 1) * sizeof *p->cbs);
        p->ncbs--;
        return 0;
    }
    return -1;
}

int rk_pub_dispatch(struct rk_pub *p, int timeout_ms)
{
    struct rk_pub_result res;
    struct pending_cb cb;
    int ran = 0;
    for (;;) {
        if (rk_pub_recv(p, ran ? 0 : timeout_ms, &res) != 0) {
            if (errno == EPROTO)
                continue;
            if (ran)
                return ran;
            return -1;
        }
        if (take_cb(p, res.corr, &cb) == 0) {
            cb.done(cb.arg, &res);
            ran++;
        }
    }
}
