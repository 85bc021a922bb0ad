#include "rk_ack.h"
#include "rk_diag.h"
#include "rk_keys.h"
#include "rk_mp.h"
#include "rk_refusal.h"
#include "rk_text.h"
#include "rk_time.h"
#include "rk_wire.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The acknowledgements of one batch for one connection that accepts
 * "acks". A batch holds events of a few publishers at a time, so a handful
 * of open groups is enough; when more connections take part, the oldest
 * group is sent early and its slot reused, which only costs a message. */
#define ACK_GROUPS 8
struct ack_group {
    zmq_msg_t *ident;       /* the connection; NULL = slot free */
    int64_t recv_ns;
    size_t n;
    uint64_t *pairs;        /* corr, seq; room for batch_max pairs */
};

struct rk_ack {
    void *ingest;
    struct rk_metrics *metrics;
    struct ack_group groups[ACK_GROUPS];
    unsigned evict;         /* the slot to send early when all are taken */
    unsigned char *buf;     /* one encoded "acks" header */
    size_t buf_cap;
    struct rk_wire_run *runs;  /* the outcomes of the pubs being answered */
    size_t nruns;
    uint32_t pubs_events;      /* its events added so far */
    unsigned char *runs_buf;   /* its encoded "outcomes" */
    struct rk_ack_counts counts;
    /* who the refusals being answered are for (rk_ack_sender): the caller's */
    const char *key, *tenant, *address;
};

struct rk_ack *rk_ack_new(void *ingest, size_t batch_max, struct rk_metrics *metrics)
{
    struct rk_ack *a = calloc(1, sizeof *a);
    if (!a)
        abort();
    a->ingest = ingest;
    a->metrics = metrics;
    a->key = a->tenant = a->address = "";
    a->buf_cap = RK_WIRE_ACKS_SIZE(batch_max);
    if (!(a->buf = malloc(a->buf_cap)))
        abort();
    for (int i = 0; i < ACK_GROUPS; i++)
        if (!(a->groups[i].pairs = calloc(batch_max, 2 * sizeof(uint64_t))))
            abort();
    a->runs = calloc(RK_WIRE_PUBS_MAX, sizeof *a->runs);
    a->runs_buf = malloc(RK_WIRE_OUTCOMES_SIZE(RK_WIRE_PUBS_MAX));
    if (!a->runs || !a->runs_buf)
        abort();
    return a;
}

void rk_ack_destroy(struct rk_ack **ap)
{
    struct rk_ack *a = *ap;
    if (!a)
        return;
    for (int i = 0; i < ACK_GROUPS; i++)
        free(a->groups[i].pairs);
    free(a->runs);
    free(a->runs_buf);
    free(a->buf);
    free(a);
    *ap = NULL;
}

static void send_two(struct rk_ack *a, zmq_msg_t *ident, const void *buf, size_t n)
{
    if (zmq_send(a->ingest, zmq_msg_data(ident), zmq_msg_size(ident),
                 ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
        zmq_send(a->ingest, buf, n, ZMQ_DONTWAIT);
}

static void send_header(struct rk_ack *a, zmq_msg_t *ident, const struct rk_wire_hdr *h)
{
    unsigned char buf[RK_WIRE_HDR_MAX];
    size_t n = rk_wire_encode(h, buf, sizeof buf);
    send_two(a, ident, buf, n);
}

void rk_ack_sender(struct rk_ack *a, const char *key, const char *tenant, const char *address)
{
    /* called for every message: pointers, not copies */
    a->key = key ? key : "";
    a->tenant = tenant ? tenant : "";
    a->address = address ? address : "";
}

/* The log line and the count of one refusal (rk_refusal sums them). */
static void note(struct rk_ack *a, const char *code, const char *message)
{
    struct rk_refusal r = {RK_REFUSED_PUBLISH, a->key, a->tenant, a->address, code, message};
    a->counts.refused++;
    rk_metrics_refused(a->metrics, code);
    rk_refusal_note(&r);
}

static void refuse(struct rk_ack *a, zmq_msg_t *ident, struct rk_wire_hdr *h,
                   const char *code, const char *message)
{
    h->cmd = RK_CMD_ERR;
    snprintf(h->code, sizeof h->code, "%s", code);
    rk_text_escape(h->message, sizeof h->message, message, strlen(message), RK_TEXT_KEEP_BACKSLASH);
    send_header(a, ident, h);
    note(a, code, h->message); /* the log has the message sent */
}

void rk_ack_refuse(struct rk_ack *a, zmq_msg_t *ident, uint64_t corr, const char *code,
                   const char *message)
{
    struct rk_wire_hdr h = {.corr = corr};
    refuse(a, ident, &h, code, message);
}

void rk_ack_out_of_order(struct rk_ack *a, zmq_msg_t *ident, uint64_t corr, uint64_t expected,
                         const char *message)
{
    struct rk_wire_hdr h = {.corr = corr, .expected = expected};
    refuse(a, ident, &h, "E_ORDER", message);
}

void rk_ack_pong(struct rk_ack *a, zmq_msg_t *ident, uint64_t corr)
{
    struct rk_wire_hdr h = {.cmd = RK_CMD_PONG, .corr = corr};
    send_header(a, ident, &h);
}

uint64_t rk_ack_header_corr(const void *hdr, size_t len)
{
    struct rk_mp_reader r = {hdr, len, 0};
    struct rk_mp_val array, version, command, corr;
    if (rk_mp_next(&r, &array) || array.kind != RK_MP_ARRAY || array.n < 3 ||
        rk_mp_next(&r, &version) || version.kind != RK_MP_UINT ||
        version.v.u != RK_WIRE_VERSION || rk_mp_next(&r, &command) ||
        command.kind != RK_MP_STR || rk_mp_next(&r, &corr) || corr.kind != RK_MP_UINT)
        return 0;
    return corr.v.u;
}

void rk_ack_duplicate(struct rk_ack *a, zmq_msg_t *ident, uint64_t corr, uint64_t seq,
                      int64_t recv_ns)
{
    struct rk_wire_hdr h = {.cmd = RK_CMD_ACK, .corr = corr, .seq = seq, .recv_ns = recv_ns};
    send_header(a, ident, &h);
    a->counts.duplicates++;
    rk_metrics_duplicate(a->metrics);
}

static void send_group(struct rk_ack *a, struct ack_group *g)
{
    if (!g->ident)
        return;
    size_t n = rk_wire_encode_acks(g->recv_ns, g->pairs, g->n, a->buf, a->buf_cap);
    send_two(a, g->ident, a->buf, n);
    g->ident = NULL;
    g->n = 0;
}

static struct ack_group *group_of(struct rk_ack *a, zmq_msg_t *ident, int64_t recv_ns)
{
    size_t len = zmq_msg_size(ident);
    struct ack_group *free_slot = NULL;
    for (int i = 0; i < ACK_GROUPS; i++) {
        struct ack_group *g = &a->groups[i];
        if (!g->ident) {
            if (!free_slot)
                free_slot = g;
        } else if (zmq_msg_size(g->ident) == len && g->recv_ns == recv_ns &&
                   memcmp(zmq_msg_data(g->ident), zmq_msg_data(ident), len) == 0) {
            return g;
        }
    }
    if (!free_slot) {
        free_slot = &a->groups[a->evict++ % ACK_GROUPS];
        send_group(a, free_slot);
    }
    free_slot->ident = ident;
    free_slot->recv_ns = recv_ns;
    return free_slot;
}

void rk_ack_stored(struct rk_ack *a, zmq_msg_t *ident, int group, uint64_t corr, uint64_t seq,
                   int64_t recv_ns)
{
    a->counts.accepted++;
    if (!group) {
        struct rk_wire_hdr h = {.cmd = RK_CMD_ACK, .corr = corr, .seq = seq, .recv_ns = recv_ns};
        send_header(a, ident, &h);
        return;
    }
    struct ack_group *g = group_of(a, ident, recv_ns);
    g->pairs[2 * g->n] = corr;
    g->pairs[2 * g->n + 1] = seq;
    g->n++;
}

void rk_ack_flush(struct rk_ack *a)
{
    for (int i = 0; i < ACK_GROUPS; i++)
        send_group(a, &a->groups[i]);
}

const char *rk_ack_storage_text(int rc)
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

struct rk_ack_counts rk_ack_counts(const struct rk_ack *a)
{
    return a->counts;
}

/* Extends the last run when `r` (one event) continues it: the same kind,
 * consecutive seqs (and the same time, for retries), or the same refusal. */
static int continues(const struct rk_wire_run *last, const struct rk_wire_run *r)
{
    if (last->kind != r->kind)
        return 0;
    if (r->kind == RK_RUN_REFUSED)
        return last->expected == r->expected && strcmp(last->code, r->code) == 0 &&
               strcmp(last->message, r->message) == 0;
    return r->seq == last->seq + last->n &&
           (r->kind == RK_RUN_STORED || r->recv_ns == last->recv_ns);
}

static void add_run(struct rk_ack *a, struct rk_wire_run *r)
{
    r->first = a->pubs_events++;
    r->n = 1;
    if (a->nruns && continues(&a->runs[a->nruns - 1], r))
        a->runs[a->nruns - 1].n++;
    else
        a->runs[a->nruns++] = *r;
}

void rk_ack_pubs_stored(struct rk_ack *a, uint64_t seq, int retry, int64_t recv_ns)
{
    struct rk_wire_run r = {.kind = retry ? RK_RUN_RETRY : RK_RUN_STORED, .seq = seq,
                            .recv_ns = retry ? recv_ns : 0};
    add_run(a, &r);
    if (retry)
        a->counts.duplicates++;
    else
        a->counts.accepted++;
}

void rk_ack_pubs_refused(struct rk_ack *a, const char *code, const char *message,
                         uint64_t expected)
{
    struct rk_wire_run r = {.kind = RK_RUN_REFUSED, .expected = expected};
    snprintf(r.code, sizeof r.code, "%s", code);
    rk_text_escape(r.message, sizeof r.message, message, strlen(message), RK_TEXT_KEEP_BACKSLASH);
    add_run(a, &r);
    note(a, r.code, r.message);
}

void rk_ack_pubs_end(struct rk_ack *a, zmq_msg_t *ident, uint64_t corr, int64_t recv_ns)
{
    size_t n = rk_wire_encode_outcomes(corr, recv_ns, a->runs, a->nruns, a->runs_buf,
                                       RK_WIRE_OUTCOMES_SIZE(RK_WIRE_PUBS_MAX));
    if (n)
        send_two(a, ident, a->runs_buf, n);
    a->nruns = 0;
    a->pubs_events = 0;
}
