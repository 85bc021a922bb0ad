#include "rk_forward.h"
#include "rk_client.h"
#include "rk_event.h"
#include "rk_outbox.h"
#include "rk_pub.h"
#include "rk_text.h"
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
/* A held event's next try: 1 s after its first refusal, doubling to 5 min. */
#define HOLD_FIRST_MS 1000
#define HOLD_MAX_MS (5 * 60 * 1000)
#define DAY_NS (24 * 3600 * RK_NS_PER_SEC)
/* Pending events go out together, as one "pubs" (PROTOCOL.md 3.2), up to
 * this many and this many bytes (under the broker's default max_message of
 * 65,536); never waiting to fill one. */
#define BATCH_EVENTS 256
#define BATCH_BYTES 60000
/* ZeroMQ says nothing when a connection comes up (IMMEDIATE only refuses
 * sends until then), so a publisher without one tries again this often. */
#define CONNECT_POLL_MS 5

_Static_assert(sizeof ((struct rk_forward_status *)0)->producer == RK_OUTBOX_PRODUCER_MAX + 1,
               "producer id");

/* ---- what a refusal means: the one table
 *
 * A refusal whose code is listed here may pass later, unchanged, so the
 * event is held (it stays pending and is tried again with a back-off), not
 * made a dead letter; every other code (validation, section 4.6 of
 * PROTOCOL.md; E_HEADER, E_PRODUCER, ...; a code this agent does not know)
 * is final and the event becomes a dead letter, which only an operator
 * sends again (rk_outbox_resend) or deletes.
 *
 * Why these (PROTOCOL.md section 5):
 *  - E_STORAGE: "retry: yes, later" (disk full, I/O error). The broker takes
 *    nothing now, so while such an event is held no new event goes out
 *    (STOP_NEW): the log keeps the outbox's order.
 *  - E_NOT_LEADER: a cluster member that is not the leader now (a future
 *    mode): the same, the broker and not the event is the cause.
 *  - E_FORBIDDEN: the key may not publish for this municipality, or is no
 *    longer listed. Section 5 says "ask the broker's operator": the ACL is
 *    fixed or the key rotated and SIGHUP'd, and then the same event passes.
 *    It concerns one municipality, so other events go on.
 *  - the lifecycle codes that section 5 says are "refused again until the
 *    state changes": those that another event can change (the request
 *    stored, the accept or dispatch stored, an offer withdrawn, goods
 *    received, the previous version stored). An event of this outbox that
 *    depends on a held one (an aid.cancel behind its held aid.request) is
 *    refused this way, and passes once that one does. Held a day at most
 *    (then a dead letter), because the state may also never change. The
 *    other lifecycle codes (E_DUPLICATE_REQUEST, E_DUPLICATE_ID,
 *    E_NOT_OWNER, E_SELF_OFFER, E_RESOURCE_MISMATCH) are judged on facts no
 *    later event changes: final. */
enum { HOLD = 1, STOP_NEW = 2 };

static const struct retryable {
    const char *code;
    int how;           /* HOLD, with STOP_NEW: nothing new goes out meanwhile */
    int64_t max_ns;    /* held at most this long (since the first refusal); 0: for ever */
} RETRYABLE[] = {
    {"E_STORAGE", HOLD | STOP_NEW, 0},
    {"E_NOT_LEADER", HOLD | STOP_NEW, 0},
    {"E_FORBIDDEN", HOLD, 0},
    {"E_STATE", HOLD, DAY_NS},
    {"E_VERSION", HOLD, DAY_NS},
    {"E_QUANTITY", HOLD, DAY_NS},
    {"E_IN_TRANSIT", HOLD, DAY_NS},
    {"E_UNKNOWN_REQUEST", HOLD, DAY_NS},
    {"E_UNKNOWN_OFFER", HOLD, DAY_NS},
    {"E_UNKNOWN_DISPATCH", HOLD, DAY_NS},
};

/* The table's entry for `code`; NULL: final. */
static const struct retryable *retryable(const char *code)
{
    for (size_t i = 0; i < sizeof RETRYABLE / sizeof *RETRYABLE; i++)
        if (strcmp(RETRYABLE[i].code, code) == 0)
            return &RETRYABLE[i];
    return NULL;
}

/* Whether the broker used the event's number refusing it (PROTOCOL.md
 * 3.2): then the event is a new one when sent again, under a new number.
 * Refusals of the message, not of the event, use nothing: a message over
 * max_message is E_TOO_LONG too, but its message begins "message:". */
static int uses_number(const char *code, const char *message)
{
    static const char *const keep[] = {"E_ORDER", "E_STORAGE", "E_NOT_LEADER", "E_HEADER",
                                       "E_COMMAND", "E_FRAMES", "E_PRODUCER"};
    for (size_t i = 0; i < sizeof keep / sizeof *keep; i++)
        if (strcmp(code, keep[i]) == 0)
            return 0;
    return !(strcmp(code, "E_TOO_LONG") == 0 && strncmp(message, "message:", 8) == 0);
}

/* A refusal of a message the broker could not take apart (section 3.2's
 * E_HEADER ... E_TOO_LONG "message:"), not of one of its events. */
static int whole_message_refusal(const char *code, const char *message)
{
    return strcmp(code, "E_ORDER") != 0 && strcmp(code, "E_STORAGE") != 0 &&
           strcmp(code, "E_NOT_LEADER") != 0 && !uses_number(code, message);
}

int rk_forward_code_retryable(const char *code)
{
    return retryable(code) != NULL;
}

/* A publish on the current connection, waiting for its answer. */
struct slot {
    uint64_t corr;                /* 0: free */
    uint64_t number;              /* in the outbox */
    unsigned first_of;            /* the first of a pubs of this many: a refusal
                                   * of the whole message comes on its corr alone */
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
    int rewind;                   /* E_ORDER: the next pump reconnects at once and
                                   * sends again from the oldest pending event */
    uint64_t held;                /* held events the last send saw */
    int stop_new;                 /* one of them stops new events (STOP_NEW) */
    int64_t next_due_ns;          /* the earliest retry among those not due; 0: none */
    int was_held;                 /* the last pump said RK_FORWARD_HELD */
    int backoff_ms;
    int64_t progress_ns;          /* last answer, new connection, or publish into an empty window */
    unsigned char *buf;           /* an event read from the outbox */
    unsigned char *batch;         /* the events of one pubs: BATCH_BYTES + one event */
    int single;                   /* the broker refused a pubs: one pub per event */
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
    if (!f || !(f->buf = malloc(RK_EVENT_MAX_BYTES)) ||
        !(f->batch = malloc(BATCH_BYTES + RK_EVENT_MAX_BYTES)))
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
    free(f->batch);
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
    /* A new run tries held events at once: it may follow the fix. */
    if ((rc = rk_outbox_retry_now(f->outbox, 0, rk_time_now())))
        return fail(f, "cannot update held events", rc);
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

static int slot_has(const struct rk_forward *f, uint64_t number)
{
    for (unsigned i = 0; i < f->window; i++)
        if (f->slots[i].corr && f->slots[i].number == number)
            return 1;
    return 0;
}

/* Publishes event `number` (its bytes in f->buf) into a free slot. Returns
 * 0, or -1 when it cannot go now (not connected, local queue full). */
/* Fills a free slot for event `number` (bytes at ev) sent as `corr`. */
static void take_slot(struct rk_forward *f, uint64_t corr, uint64_t number, const void *ev,
                      size_t len)
{
    struct rk_event_info info;
    struct slot *s = slot_of(f, 0);
    s->corr = corr;
    s->number = number;
    s->first_of = 0;
    if (rk_event_validate(ev, len, 0, &info, NULL) != RK_V_OK)
        info.event_id[0] = '\0';
    snprintf(s->event_id, sizeof s->event_id, "%s", info.event_id);
}

/* Publishes the n events at evs (numbers first ..) as one message; with
 * n > 1 a pubs. Returns 0, or -1 when they cannot go now (not connected,
 * local queue full). */
static int send_events(struct rk_forward *f, uint64_t first, const void *const *evs,
                       const size_t *lens, size_t n)
{
    uint64_t corr;
    /* Silence counts from the first publish of a burst, not from the
     * last answer before an idle or held spell. */
    int was_idle = in_flight(f) == 0;
    if (!f->pub || rk_pub_send_batch(f->pub, rk_outbox_producer(f->outbox), first, evs, lens,
                                     n, &corr) != 0)
        return -1;
    if (was_idle)
        f->progress_ns = rk_time_now();
    for (size_t i = 0; i < n; i++)
        take_slot(f, corr + i, first + i, evs[i], lens[i]);
    if (n > 1)
        slot_of(f, corr)->first_of = (unsigned)n;
    return 0;
}

static int send_one(struct rk_forward *f, uint64_t number, size_t len)
{
    const void *ev = f->buf;
    return send_events(f, number, &ev, &len, 1);
}

/* Reads into f->batch the pending events after f->sent_upto with
 * consecutive numbers, while they fit `room`, BATCH_EVENTS and
 * BATCH_BYTES. Returns 0 with *n of them (0: none pending), or an error. */
static int gather(struct rk_forward *f, size_t room, const void **evs, size_t *lens,
                  uint64_t *first, size_t *n)
{
    size_t used = 0, max = f->single ? 1 : room < BATCH_EVENTS ? room : BATCH_EVENTS;
    uint64_t after = f->sent_upto, number;
    *n = 0;
    while (*n < max) {
        size_t cap = *n ? BATCH_BYTES - used : BATCH_BYTES + RK_EVENT_MAX_BYTES;
        int rc = rk_outbox_next(f->outbox, after, &number, f->batch + used, cap, &lens[*n]);
        if (rc == RK_EOF || rc == ENOBUFS || (*n && number != after + 1) ||
            (*n && used + lens[*n] > BATCH_BYTES))
            break; /* read again as the first of the next message */
        if (rc)
            return fail(f, "cannot read", rc);
        if (*n == 0)
            *first = number;
        evs[*n] = f->batch + used;
        used += lens[(*n)++];
        after = number;
    }
    return RK_OK;
}

/* A due held event whose number the broker used goes out as a new event,
 * under a new number after all the others, once every pending one before
 * it has gone out (so the numbers reach the broker in order). EAGAIN
 * while some have not. */
static int renumber_held(struct rk_forward *f, uint64_t *number)
{
    uint64_t next;
    size_t len;
    int rc = rk_outbox_next(f->outbox, f->sent_upto, &next, f->buf, RK_EVENT_MAX_BYTES, &len);
    if (rc == RK_OK)
        return EAGAIN;
    if (rc != RK_EOF || (rc = rk_outbox_renumber(f->outbox, *number, number)) != RK_OK)
        return fail(f, "cannot renumber a held event", rc);
    return RK_OK;
}

/* The held events, oldest first: those due and not in flight go out while
 * the window has room. Notes how many are held, whether one stops new
 * events, and the earliest retry of those not due. */
static int send_held(struct rk_forward *f, int *sent)
{
    struct rk_outbox_refusal r;
    const struct retryable *how;
    uint64_t after = 0, number;
    int64_t now = rk_time_now();
    size_t len;
    int rc;

    f->held = 0;
    f->stop_new = 0;
    f->next_due_ns = 0;
    while ((rc = rk_outbox_next_held(f->outbox, after, &number, &r)) == RK_OK) {
        after = number;
        f->held++;
        if ((how = retryable(r.code)) && (how->how & STOP_NEW))
            f->stop_new = 1;
        if (r.retry_ns > now) {
            if (!f->next_due_ns || r.retry_ns < f->next_due_ns)
                f->next_due_ns = r.retry_ns;
            continue;
        }
        if (f->blocked || in_flight(f) >= f->window || slot_has(f, number))
            continue;
        if (r.number_used && (rc = renumber_held(f, &number)) != RK_OK) {
            if (rc == EAGAIN)
                continue;
            return rc;
        }
        rc = rk_outbox_get(f->outbox, number, f->buf, RK_EVENT_MAX_BYTES, &len);
        if (rc == RK_EOF)
            continue; /* answered meanwhile */
        if (rc)
            return fail(f, "cannot read", rc);
        if (send_one(f, number, len) != 0)
            f->blocked = 1;
        else if (sent)
            (*sent)++;
    }
    return rc == RK_EOF ? RK_OK : fail(f, "cannot read", rc);
}

/* Sends due held events, then pending ones in number order (unless a held
 * one stops them), while the window has room, adding to *sent (may be
 * NULL) how many went. */
static int send_pending(struct rk_forward *f, int *sent)
{
    const void *evs[BATCH_EVENTS];
    size_t lens[BATCH_EVENTS], n;
    uint64_t first;
    int rc;

    f->blocked = 0;
    if ((rc = send_held(f, sent)) || f->blocked || f->stop_new)
        return rc;
    while (in_flight(f) < f->window) {
        if ((rc = gather(f, f->window - in_flight(f), evs, lens, &first, &n)) || n == 0)
            return rc;
        if (send_events(f, first, evs, lens, n) != 0) {
            f->blocked = 1; /* not connected, or the local queue is full */
            break;
        }
        f->sent_upto = first + n - 1;
        if (sent)
            *sent += (int)n;
    }
    return RK_OK;
}

static int64_t hold_delay_ns(uint32_t attempts)
{
    int64_t ms = HOLD_FIRST_MS;
    while (attempts-- > 1 && ms < HOLD_MAX_MS)
        ms *= 2;
    return (ms < HOLD_MAX_MS ? ms : HOLD_MAX_MS) * 1000000;
}

/* A refusal: the event is held (a code that may pass later, within its
 * time) or becomes a dead letter. Fills *ref (kept as the outcome's code
 * and message: valid UTF-8, as stored) and the outcome's held, retry_ns. */
static int refuse(struct rk_forward *f, const struct slot *s, const struct rk_pub_result *r,
                  struct rk_outbox_refusal *ref, struct rk_forward_outcome *o)
{
    const struct retryable *how = retryable(r->code);
    int64_t now = rk_time_now();
    int found, rc = rk_outbox_held(f->outbox, s->number, ref, &found);
    if (rc)
        return rc;
    if (!found)
        ref->first_ns = now;
    ref->attempts++;
    ref->last_ns = now;
    /* Escaped and cut between characters: what is kept is always text. */
    rk_text_escape(ref->code, sizeof ref->code, r->code, strlen(r->code), RK_TEXT_KEEP_BACKSLASH);
    rk_text_escape(ref->message, sizeof ref->message, r->message, strlen(r->message),
                   RK_TEXT_KEEP_BACKSLASH);
    ref->number_used = uses_number(r->code, r->message);
    o->code = ref->code;
    o->message = ref->message;
    if (how && (!how->max_ns || now - ref->first_ns < how->max_ns)) {
        ref->retry_ns = now + hold_delay_ns(ref->attempts);
        o->held = 1;
        o->retry_ns = ref->retry_ns;
        return rk_outbox_hold(f->outbox, s->number, ref);
    }
    return rk_outbox_reject(f->outbox, s->number, ref);
}

/* Recorded before it is reported, so that no report names an event the
 * outbox still holds (and would send again) as stored or refused for
 * good. An ack of a held event makes every later held event due at once:
 * one may have waited for it (an aid.cancel for its aid.request). */
static int record(struct rk_forward *f, const struct slot *s, const struct rk_pub_result *r)
{
    struct rk_forward_outcome o = {s->number, s->event_id, r->ok, r->seq, r->recv_ns, r->code,
                                   r->message, 0, 0};
    struct rk_outbox_refusal ref;
    int was_held = 0;
    int rc = r->ok ? rk_outbox_ack(f->outbox, s->number, r->seq, r->recv_ns, &was_held)
                   : refuse(f, s, r, &ref, &o);
    if (rc == RK_OK && was_held)
        rc = rk_outbox_retry_now(f->outbox, s->number, rk_time_now());
    if (rc)
        return fail(f, "cannot record an answer", rc);
    if (f->on_outcome)
        f->on_outcome(f->arg, &o);
    return RK_OK;
}

/* Waits up to wait_ms for the first answer, then takes those already
 * there. Counts them in *got; notes an E_STORAGE in *storage. */
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
        if (r.pong || !(s = slot_of(f, r.corr)))
            continue; /* an answer to nothing sent on this connection */
        s->corr = 0;
        if (!r.ok && s->first_of > 1 && whole_message_refusal(r.code, r.message)) {
            /* the whole pubs refused (a broker from before it, a smaller
             * max_message): one pub per event from now on, from the oldest */
            f->single = 1;
            f->rewind = 1;
            return RK_OK;
        }
        if (!r.ok && strcmp(r.code, "E_ORDER") == 0) {
            /* an earlier one was lost with a connection: it and all after
             * it go again, in order, on a new one */
            f->rewind = 1;
            return RK_OK;
        }
        if (!r.ok && strcmp(r.code, "E_STORAGE") == 0)
            *storage = 1; /* held: it stays in the outbox */
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
    if (f->rewind)
        *state = RK_FORWARD_WAITING; /* the next pump sends again */
    else if (storage)
        *state = RK_FORWARD_CANNOT_STORE; /* held; the connection stays */
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
    if (f->rewind) {
        f->rewind = 0;
        if (connect_new(f) != 0)
            return fail(f, "cannot connect again", errno);
    }
    if (f->stalled && reconnect(f) != RK_OK) {
        *state = RK_FORWARD_SILENT;
        return RK_OK;
    }
    if ((rc = send_pending(f, NULL)))
        return rc;
    if (in_flight(f) == 0 && !f->blocked) {
        *state = f->held ? RK_FORWARD_HELD : RK_FORWARD_IDLE;
        /* The second HELD in a row waits for the next retry: the first
         * returns at once, so that a one-shot sender can stop there. */
        if (f->held && f->was_held && f->next_due_ns) {
            int64_t ms = (f->next_due_ns - rk_time_now()) / 1000000 + 1;
            if (ms > 0)
                usleep((useconds_t)(ms < wait_ms ? ms : wait_ms) * 1000); /* a signal ends it */
        }
        f->was_held = f->held != 0;
        return RK_OK;
    }
    f->was_held = 0;
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
    st->pending = ob.pending + ob.held;
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

int rk_forward_outbox_status(struct rk_forward *f, struct rk_outbox_status *st)
{
    int rc = rk_outbox_status(f->outbox, st);
    return rc ? fail(f, "cannot read", rc) : RK_OK;
}
