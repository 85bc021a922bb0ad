#include "rk_forward.h"
#include "rk_client.h"
#include "rk_event.h"
#include "rk_outbox.h"
#include "rk_pub.h"
#include "rk_time.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_WINDOW 256
#define DEFAULT_TIMEOUT_MS 10000
#define BACKOFF_FIRST_MS 200
#define BACKOFF_MAX_MS 5000
/* ZeroMQ says nothing when a connection comes up (IMMEDIATE only refuses
 * sends until then), so a publisher without one tries again this often. */
#define CONNECT_POLL_MS 5

_Static_assert(sizeof ((struct rk_forward_status *)0)->producer == RK_OUTBOX_PRODUCER_MAX + 1,
               "producer id");

/* A publish on the current connection, waiting for its answer. */
struct slot {
    uint64_t corr;                /* 0: free */
    uint64_t number;              /* in the outbox */
    char event_id[RK_ID_MAX + 1]; /* for the outcome */
};

struct rk_forward {
    struct rk_outbox *outbox;
    char *endpoint;               /* NULL until rk_forward_connect */
    struct rk_client_keys keys;   /* read once: every connection uses them */
    void *zmq_ctx;                /* the caller's, or NULL */
    struct rk_pub *pub;           /* NULL when a new connection could not be made */
    unsigned window;
    int timeout_ms;
    rk_forward_outcome_fn on_outcome;
    void *arg;
    struct slot *slots;           /* `window` of them */
    uint64_t sent_upto;           /* highest outbox number sent on this connection */
    int blocked;                  /* the last send left pending events unsent */
    int stalled;                  /* the next pump backs off and reconnects */
    int backoff_ms;
    int64_t progress_ns;          /* last answer or new connection */
    unsigned char *buf;           /* an event read from the outbox */
    char error[320];
};

static int fail(struct rk_forward *f, const char *step, int rc)
{
    snprintf(f->error, sizeof f->error, "%s", step);
    return rc;
}

static size_t in_flight(const struct rk_forward *f)
{
    return f->pub ? rk_pub_in_flight(f->pub) : 0;
}

static int64_t silent_ms(const struct rk_forward *f)
{
    return (rk_time_now() - f->progress_ns) / 1000000;
}

static struct slot *slot_of(struct rk_forward *f, uint64_t corr)
{
    for (unsigned i = 0; i < f->window; i++)
        if (f->slots[i].corr == corr)
            return &f->slots[i];
    return NULL;
}

int rk_forward_open(const char *dir, struct rk_forward **out, char *why, size_t why_len)
{
    struct rk_forward *f = calloc(1, sizeof *f);
    int rc;

    *out = NULL;
    if (!f || !(f->buf = malloc(RK_EVENT_MAX_BYTES)))
        abort();
    if ((rc = rk_outbox_open(dir, &f->outbox, why, why_len))) {
        rk_forward_close(&f);
        return rc;
    }
    *out = f;
    return RK_OK;
}

void rk_forward_close(struct rk_forward **fp)
{
    struct rk_forward *f = *fp;
    if (!f)
        return;
    rk_pub_destroy(&f->pub);
    rk_outbox_close(&f->outbox);
    rk_client_keys_wipe(&f->keys);
    free(f->endpoint);
    free(f->slots);
    free(f->buf);
    free(f);
    *fp = NULL;
}

/* A new connection forgets what was in flight on the old one, so the
 * oldest pending event goes out first; the broker answers what it stored
 * already with the original acknowledgement. Returns 0 or -1 with errno. */
static int connect_new(struct rk_forward *f)
{
    struct rk_client_options o = rk_client_keys_options(&f->keys, f->zmq_ctx);
    rk_pub_destroy(&f->pub);
    memset(f->slots, 0, f->window * sizeof *f->slots);
    f->sent_upto = 0;
    f->progress_ns = rk_time_now();
    return rk_pub_open_single(f->endpoint, &o, &f->pub);
}

int rk_forward_connect(struct rk_forward *f, const char *endpoint,
                       const struct rk_forward_options *o)
{
    static const struct rk_forward_options defaults;
    char why[300];
    int rc;

    if (!o)
        o = &defaults;
    if (f->endpoint)
        return fail(f, "connected already", EISCONN);
    if (o->window > RK_FORWARD_WINDOW_MAX || o->timeout_ms < 0)
        return fail(f, "window or timeout out of range", EINVAL);
    if (rk_client_keys_load(&o->client, &f->keys, why, sizeof why) != 0)
        return fail(f, why, EINVAL);
    f->window = o->window ? o->window : DEFAULT_WINDOW;
    f->timeout_ms = o->timeout_ms ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
    f->on_outcome = o->on_outcome;
    f->arg = o->arg;
    f->zmq_ctx = o->client.zmq_ctx;
    f->backoff_ms = BACKOFF_FIRST_MS;
    f->slots = calloc(f->window, sizeof *f->slots);
    f->endpoint = strdup(endpoint);
    if (!f->slots || !f->endpoint)
        abort();
    if (connect_new(f) == 0)
        return RK_OK;
    rc = errno;
    rk_client_keys_wipe(&f->keys);
    free(f->endpoint);
    f->endpoint = NULL;
    free(f->slots);
    f->slots = NULL;
    return fail(f, "cannot connect", rc);
}

/* ---- sending and answers */

/* Sends pending events in number order while the window has room, adding
 * to *sent (may be NULL) how many went. */
static int send_pending(struct rk_forward *f, int *sent)
{
    struct rk_event_info info;
    struct slot *s;
    uint64_t number, corr;
    size_t len;
    int rc;

    f->blocked = 0;
    while (in_flight(f) < f->window) {
        rc = rk_outbox_next(f->outbox, f->sent_upto, &number, f->buf, RK_EVENT_MAX_BYTES, &len);
        if (rc == RK_EOF)
            break;
        if (rc)
            return fail(f, "cannot read", rc);
        if (!f->pub || rk_pub_send_numbered(f->pub, rk_outbox_producer(f->outbox), number,
                                            f->buf, len, &corr) != 0) {
            f->blocked = 1; /* not connected, or the local queue is full */
            break;
        }
        s = slot_of(f, 0);
        s->corr = corr;
        s->number = number;
        if (rk_event_validate(f->buf, len, 0, &info, NULL) != RK_V_OK)
            info.event_id[0] = '\0';
        snprintf(s->event_id, sizeof s->event_id, "%s", info.event_id);
        f->sent_upto = number;
        if (sent)
            (*sent)++;
    }
    return RK_OK;
}

/* Recorded before it is reported, so that no report names an event the
 * outbox still holds (and would send again). */
static int record(struct rk_forward *f, const struct slot *s, const struct rk_pub_result *r)
{
    struct rk_forward_outcome o = {s->number, s->event_id, r->ok, r->seq, r->recv_ns, r->code,
                                   r->message};
    int rc = rk_outbox_answer(f->outbox, s->number, r->ok, r->seq, r->recv_ns);
    if (rc)
        return fail(f, "cannot record an answer", rc);
    if (f->on_outcome)
        f->on_outcome(f->arg, &o);
    return RK_OK;
}

/* Waits up to wait_ms for the first answer, then takes those already
 * there. Counts them in *got; stops at an E_STORAGE (*storage). */
static int take_answers(struct rk_forward *f, int wait_ms, int *got, int *storage)
{
    struct rk_pub_result r;
    struct slot *s;
    int rc;

    for (;;) {
        if (rk_pub_recv(f->pub, *got ? 0 : wait_ms, &r) != 0) {
            if (errno == EPROTO)
                continue;
            return RK_OK;
        }
        if (!(s = slot_of(f, r.corr)))
            continue; /* an answer to nothing sent on this connection */
        s->corr = 0;
        if (!r.ok && strcmp(r.code, "E_STORAGE") == 0) {
            *storage = 1; /* not stored: it stays in the outbox */
            return RK_OK;
        }
        if ((rc = record(f, s, &r)))
            return rc;
        (*got)++;
    }
}

/* Nothing in flight but events waiting: tries to send until the
 * connection takes them or wait_ms has passed. */
static int wait_connection(struct rk_forward *f, int wait_ms, int *got)
{
    int rc = RK_OK;
    for (int waited = 0; waited < wait_ms && !*got && rc == RK_OK; waited += CONNECT_POLL_MS) {
        usleep(CONNECT_POLL_MS * 1000);
        rc = send_pending(f, got);
    }
    return rc;
}

static enum rk_forward_state stall(struct rk_forward *f, enum rk_forward_state why)
{
    f->stalled = 1;
    return why;
}

static int wait_answers(struct rk_forward *f, int wait_ms, enum rk_forward_state *state)
{
    int got = 0, storage = 0;
    int rc = in_flight(f) ? take_answers(f, wait_ms, &got, &storage)
                          : wait_connection(f, wait_ms, &got);
    if (rc)
        return rc;
    if (got) {
        f->progress_ns = rk_time_now();
        f->backoff_ms = BACKOFF_FIRST_MS;
    }
    if (storage)
        *state = stall(f, RK_FORWARD_CANNOT_STORE);
    else if (got)
        *state = RK_FORWARD_MOVING;
    else if (silent_ms(f) < f->timeout_ms)
        *state = RK_FORWARD_WAITING;
    else
        *state = stall(f, RK_FORWARD_SILENT);
    return RK_OK;
}

/* The back-off grows while no answer comes, so a broker that is down for
 * long is asked every 5 s, not every 0.2 s. */
static int reconnect(struct rk_forward *f)
{
    usleep((useconds_t)f->backoff_ms * 1000); /* a signal ends it early */
    f->backoff_ms = f->backoff_ms < BACKOFF_MAX_MS / 2 ? 2 * f->backoff_ms : BACKOFF_MAX_MS;
    if (connect_new(f) != 0)
        return fail(f, "cannot connect again", errno);
    f->stalled = 0;
    return RK_OK;
}

int rk_forward_pump(struct rk_forward *f, int wait_ms, enum rk_forward_state *state)
{
    int rc;

    if (!f->endpoint)
        return fail(f, "not connected", ENOTCONN);
    if (f->stalled && reconnect(f) != RK_OK) {
        *state = RK_FORWARD_SILENT;
        return RK_OK;
    }
    if ((rc = send_pending(f, NULL)))
        return rc;
    if (in_flight(f) == 0 && !f->blocked) {
        *state = RK_FORWARD_IDLE;
        return RK_OK;
    }
    return wait_answers(f, wait_ms, state);
}

/* ---- the outbox */

int rk_forward_add(struct rk_forward *f, const void *const *events, const size_t *lens,
                   size_t n, uint64_t *first)
{
    return rk_forward_add_tagged(f, events, lens, n, NULL, first);
}

int rk_forward_add_tagged(struct rk_forward *f, const void *const *events, const size_t *lens,
                          size_t n, const char *tag, uint64_t *first)
{
    int rc;
    /* A bigger one could never be sent, and would hold up all after it. */
    for (size_t i = 0; i < n; i++)
        if (lens[i] > RK_EVENT_MAX_BYTES)
            return fail(f, "an event is over 16 KiB", EMSGSIZE);
    if ((rc = rk_outbox_add_tagged(f->outbox, events, lens, n, tag, first)))
        return fail(f, "cannot store events", rc);
    return RK_OK;
}

int rk_forward_has_tag(struct rk_forward *f, const char *tag, int *found)
{
    int rc = rk_outbox_has_tag(f->outbox, tag, found);
    return rc ? fail(f, "cannot look up a tag", rc) : RK_OK;
}

int rk_forward_drop_tag(struct rk_forward *f, const char *tag)
{
    int rc = rk_outbox_drop_tag(f->outbox, tag);
    return rc ? fail(f, "cannot drop a tag", rc) : RK_OK;
}

int rk_forward_sync(struct rk_forward *f)
{
    int rc = rk_outbox_sync(f->outbox);
    return rc ? fail(f, "cannot sync", rc) : RK_OK;
}

int rk_forward_status(struct rk_forward *f, struct rk_forward_status *st)
{
    struct rk_outbox_status ob;
    int rc = rk_outbox_status(f->outbox, &ob);
    if (rc)
        return fail(f, "cannot read", rc);
    memset(st, 0, sizeof *st);
    memcpy(st->producer, ob.producer, sizeof st->producer);
    st->pending = ob.pending;
    st->first_pending = ob.first_pending;
    st->last_number = ob.last_number;
    st->acked = ob.acked;
    st->refused = ob.refused;
    st->last_ack_number = ob.last_ack_number;
    st->last_ack_seq = ob.last_ack_seq;
    st->last_ack_recv_ns = ob.last_ack_recv_ns;
    st->in_flight = in_flight(f);
    st->silent_ms = f->endpoint ? silent_ms(f) : 0;
    return RK_OK;
}

const char *rk_forward_error(const struct rk_forward *f)
{
    return f->error;
}
