/* rk_forward against a stub ingest socket in a thread: events go out in
 * outbox order and every outcome is reported once; a silent broker makes
 * the forwarder reconnect and send again from the oldest unanswered event;
 * E_STORAGE holds the event and stops new ones until it passes; a final
 * refusal makes a dead letter; an E_FORBIDDEN holds only its event; events
 * survive a reopen.
 * The stub answers like the broker: an idempotent producer's number stored
 * once gets its first seq again; a "pubs" is answered event by event, as
 * one "outcomes". */
#include "rk_event.h"
#include "rk_forward.h"
#include "rk_mp.h"
#include "rk_test.h"
#include "rk_time.h"
#include "rk_wire.h"

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <zmq.h>

#define MAX_NUMBER 100
#define MAX_LOG 400

struct stub {
    void *ctx, *router;
    char dir[64], endpoint[128];
    atomic_int silent;           /* read and drop, answer nothing */
    atomic_ullong storage_once;  /* this number gets one E_STORAGE */
    atomic_ullong refuse;        /* this number is refused, E_RANGE */
    atomic_ullong forbid;        /* this number is refused, E_FORBIDDEN, while set */
    atomic_ullong state;         /* this number is refused, E_STATE */
    atomic_int stop;
    pthread_mutex_t mu;
    uint64_t seq_of[MAX_NUMBER]; /* what a stored number got */
    uint64_t last_seq;
    uint64_t log[MAX_LOG];       /* numbers in arrival order */
    int conn_of[MAX_LOG];        /* and the connection each came on */
    int nlog, nconn;
    unsigned char last_id[256];
    size_t last_id_len;
    pthread_t thread;
};

/* Notes a publish and the connection it came on (a new routing id). */
static void note(struct stub *s, zmq_msg_t *id, uint64_t number)
{
    pthread_mutex_lock(&s->mu);
    if (zmq_msg_size(id) != s->last_id_len || memcmp(zmq_msg_data(id), s->last_id, s->last_id_len)) {
        s->nconn++;
        s->last_id_len = zmq_msg_size(id);
        memcpy(s->last_id, zmq_msg_data(id), s->last_id_len);
    }
    if (s->nlog < MAX_LOG) {
        s->log[s->nlog] = number;
        s->conn_of[s->nlog++] = s->nconn;
    }
    pthread_mutex_unlock(&s->mu);
}

static void refuse(struct rk_wire_hdr *r, const char *code, const char *message)
{
    r->cmd = RK_CMD_ERR;
    strcpy(r->code, code);
    strcpy(r->message, message);
}

static void answer(struct stub *s, const struct rk_wire_hdr *h, struct rk_wire_hdr *r)
{
    uint64_t n = h->producer_seq;
    r->corr = h->corr;
    if (n == atomic_load(&s->storage_once) && atomic_exchange(&s->storage_once, 0)) {
        refuse(r, "E_STORAGE", "disk full");
    } else if (n == atomic_load(&s->forbid)) {
        refuse(r, "E_FORBIDDEN", "may not publish");
    } else if (n == atomic_load(&s->state)) {
        refuse(r, "E_STATE", "request is cancelled");
    } else if (n == atomic_load(&s->refuse)) {
        refuse(r, "E_RANGE", "test refusal");
    } else {
        pthread_mutex_lock(&s->mu);
        if (n < MAX_NUMBER && !s->seq_of[n])
            s->seq_of[n] = ++s->last_seq;
        r->cmd = RK_CMD_ACK;
        r->seq = n < MAX_NUMBER ? s->seq_of[n] : 0;
        r->recv_ns = 1000;
        pthread_mutex_unlock(&s->mu);
    }
}

/* A "pubs": each event answered as a pub with its number, the answers as
 * one "outcomes" of one-event runs. */
static void take_pubs(struct stub *s, zmq_msg_t *id, const struct rk_wire_hdr *h,
                      const zmq_msg_t *ev)
{
    static struct rk_wire_run runs[RK_WIRE_PUBS_MAX];
    static unsigned char out[RK_WIRE_OUTCOMES_SIZE(RK_WIRE_PUBS_MAX)];
    struct rk_mp_reader rd = {zmq_msg_data((zmq_msg_t *)ev), zmq_msg_size((zmq_msg_t *)ev), 0};
    size_t n = (size_t)h->nrecords;
    for (size_t i = 0; i < n; i++) {
        struct rk_wire_hdr one = *h, r = {0};
        one.producer_seq = h->producer_seq + i;
        RK_CHECK(rk_mp_skip(&rd) == 0);
        note(s, id, one.producer_seq);
        answer(s, &one, &r);
        runs[i] = (struct rk_wire_run){.kind = r.cmd == RK_CMD_ACK ? RK_RUN_STORED : RK_RUN_REFUSED,
                                       .first = (uint32_t)i, .n = 1, .seq = r.seq};
        memcpy(runs[i].code, r.code, sizeof runs[i].code);
        memcpy(runs[i].message, r.message, sizeof runs[i].message);
    }
    if (atomic_load(&s->silent))
        return;
    size_t len = rk_wire_encode_outcomes(h->corr, 1000, runs, n, out, sizeof out);
    zmq_send(s->router, zmq_msg_data(id), zmq_msg_size(id), ZMQ_SNDMORE);
    zmq_send(s->router, out, len, 0);
}

static void take(struct stub *s)
{
    zmq_msg_t id, hdr, ev;
    struct rk_wire_hdr h, r = {0};
    unsigned char buf[RK_WIRE_HDR_MAX];
    zmq_msg_init(&id);
    zmq_msg_init(&hdr);
    zmq_msg_init(&ev);
    if (zmq_msg_recv(&id, s->router, 0) >= 0 && zmq_msg_recv(&hdr, s->router, 0) >= 0 &&
        zmq_msg_recv(&ev, s->router, 0) >= 0 &&
        rk_wire_decode(zmq_msg_data(&hdr), zmq_msg_size(&hdr), &h) == 0 &&
        h.cmd == RK_CMD_PUBS) {
        take_pubs(s, &id, &h, &ev);
    } else if (h.cmd == RK_CMD_PUB) {
        note(s, &id, h.producer_seq);
        if (!atomic_load(&s->silent)) {
            answer(s, &h, &r);
            size_t len = rk_wire_encode(&r, buf, sizeof buf);
            zmq_send(s->router, zmq_msg_data(&id), zmq_msg_size(&id), ZMQ_SNDMORE);
            zmq_send(s->router, buf, len, 0);
        }
    }
    zmq_msg_close(&id);
    zmq_msg_close(&hdr);
    zmq_msg_close(&ev);
}

static void *serve(void *arg)
{
    struct stub *s = arg;
    zmq_pollitem_t item = {s->router, 0, ZMQ_POLLIN, 0};
    while (!atomic_load(&s->stop))
        if (zmq_poll(&item, 1, 10) > 0)
            take(s);
    return NULL;
}

static void stub_start(struct stub *s)
{
    int linger = 0;
    memset(s, 0, sizeof *s);
    strcpy(s->dir, "/tmp/rk-forward-test-XXXXXX");
    if (!mkdtemp(s->dir))
        abort();
    snprintf(s->endpoint, sizeof s->endpoint, "ipc://%s/ingest", s->dir);
    pthread_mutex_init(&s->mu, NULL);
    s->ctx = zmq_ctx_new();
    s->router = zmq_socket(s->ctx, ZMQ_ROUTER);
    zmq_setsockopt(s->router, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(s->router, s->endpoint) != 0)
        abort();
    pthread_create(&s->thread, NULL, serve, s);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void stub_stop(struct stub *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->thread, NULL);
    zmq_close(s->router);
    zmq_ctx_term(s->ctx);
    pthread_mutex_destroy(&s->mu);
    nftw(s->dir, remove_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* ---- the forwarder's side */

struct outcomes {
    uint64_t number[MAX_NUMBER], seq[MAX_NUMBER];
    int ok[MAX_NUMBER], held[MAX_NUMBER];
    char code[MAX_NUMBER][32];
    int n;
};

static void on_outcome(void *arg, const struct rk_forward_outcome *o)
{
    struct outcomes *out = arg;
    if (out->n == MAX_NUMBER)
        return;
    out->number[out->n] = o->number;
    out->seq[out->n] = o->seq;
    out->ok[out->n] = o->ok;
    out->held[out->n] = o->held;
    snprintf(out->code[out->n], sizeof out->code[0], "%s", o->code);
    out->n++;
}

static int add_events(struct rk_forward *f, int from, int n)
{
    char bodies[16][16];
    const void *events[16];
    size_t lens[16];
    uint64_t first;
    for (int i = 0; i < n; i++) {
        /* a MessagePack str, so that a pubs of them splits into events */
        int len = snprintf(bodies[i] + 1, sizeof bodies[i] - 1, "event-%d", from + i);
        bodies[i][0] = (char)(0xa0 | len);
        events[i] = bodies[i];
        lens[i] = (size_t)len + 1;
    }
    return rk_forward_add(f, events, lens, (size_t)n, &first) == RK_OK && first == (uint64_t)from
           ? 0 : -1;
}

/* Pumps until `want` is seen (or RK_FORWARD_IDLE when want is IDLE);
 * returns the last state, or -1 after 10 s or on an error. */
static int pump_until(struct rk_forward *f, enum rk_forward_state want)
{
    enum rk_forward_state st;
    for (int i = 0; i < 1000; i++) { /* the first retry of a held event is 1 s later */
        if (rk_forward_pump(f, 10, &st) != RK_OK)
            return -1;
        if (st == want)
            return (int)st;
    }
    return -1;
}

static struct rk_forward *open_connected(struct stub *s, struct outcomes *out)
{
    char box[128], why[300];
    struct rk_forward *f = NULL;
    struct rk_forward_options o = {.window = 4, .timeout_ms = 300, .on_outcome = on_outcome,
                                   .arg = out};
    snprintf(box, sizeof box, "%s/outbox", s->dir);
    if (rk_forward_open(box, &f, why, sizeof why) != RK_OK)
        return NULL;
    RK_CHECK(rk_forward_connect(f, s->endpoint, &o) == RK_OK);
    return f;
}

/* A forwarder connected to `s`, events 1..n added, pumped until `want`
 * (two checks: the events are added, `want` is reached). */
static struct rk_forward *send_until(struct stub *s, struct outcomes *out, int n,
                                     enum rk_forward_state want)
{
    struct rk_forward *f = open_connected(s, out);
    RK_CHECK(f && add_events(f, 1, n) == 0);
    RK_CHECK(f && pump_until(f, want) == (int)want);
    return f;
}

/* 1 when connection `conn` of the stub saw exactly numbers from..to, in order. */
static int conn_saw(struct stub *s, int conn, uint64_t from, uint64_t to)
{
    uint64_t next = from;
    int ok = 1;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->nlog; i++)
        if (s->conn_of[i] == conn)
            ok = ok && s->log[i] == next++;
    pthread_mutex_unlock(&s->mu);
    return ok && next == to + 1;
}

static void test_in_order_once(void)
{
    struct stub s;
    struct outcomes out = {0};
    struct rk_forward_status st;
    struct rk_forward *f;
    char box[128], why[300], big[RK_EVENT_MAX_BYTES + 1] = {0};
    const void *ev = big;
    size_t len = sizeof big;
    uint64_t first;
    enum rk_forward_state state;

    stub_start(&s);
    snprintf(box, sizeof box, "%s/outbox", s.dir);
    RK_CHECK(rk_forward_open(box, &f, why, sizeof why) == RK_OK);
    RK_CHECK(add_events(f, 1, 10) == 0); /* before any connection */
    RK_CHECK(rk_forward_pump(f, 0, &state) == ENOTCONN);
    RK_CHECK(rk_forward_add(f, &ev, &len, 1, &first) == EMSGSIZE);
    rk_forward_close(&f);
    RK_CHECK(f == NULL);

    f = open_connected(&s, &out);
    RK_CHECK(f && rk_forward_connect(f, s.endpoint, NULL) == EISCONN);
    RK_CHECK(pump_until(f, RK_FORWARD_IDLE) == RK_FORWARD_IDLE);
    RK_CHECK(out.n == 10);
    for (int i = 0; i < out.n; i++)
        RK_CHECK(out.number[i] == (uint64_t)i + 1 && out.ok[i] && out.seq[i] == (uint64_t)i + 1);
    RK_CHECK(conn_saw(&s, 1, 1, 10));
    RK_CHECK(rk_forward_status(f, &st) == RK_OK);
    RK_CHECK(st.pending == 0 && st.acked == 10 && st.last_number == 10 && st.in_flight == 0);
    RK_CHECK(st.last_ack_number == 10 && st.last_ack_seq == 10 && st.last_ack_recv_ns == 1000);
    RK_CHECK(strncmp(st.producer, "agent-", 6) == 0);
    rk_forward_close(&f);
    stub_stop(&s);
}

static void test_silence_resends_from_oldest(void)
{
    struct stub s;
    struct outcomes out = {0};
    struct rk_forward_status st;
    struct rk_forward *f;

    stub_start(&s);
    atomic_store(&s.silent, 1);
    f = send_until(&s, &out, 6, RK_FORWARD_SILENT);
    RK_CHECK(out.n == 0);
    RK_CHECK(rk_forward_status(f, &st) == RK_OK && st.pending == 6 && st.in_flight == 4);
    RK_CHECK(conn_saw(&s, 1, 1, 4)); /* the window's worth, unanswered */
    atomic_store(&s.silent, 0);
    RK_CHECK(pump_until(f, RK_FORWARD_IDLE) == RK_FORWARD_IDLE);
    RK_CHECK(out.n == 6);
    for (int i = 0; i < out.n; i++)
        RK_CHECK(out.number[i] == (uint64_t)i + 1 && out.ok[i]);
    RK_CHECK(conn_saw(&s, 2, 1, 6)); /* a new connection, from the oldest */
    rk_forward_close(&f);
    stub_stop(&s);
}

/* How often the stub saw `number` before the first `later`. */
static int sent_before(struct stub *s, uint64_t number, uint64_t later)
{
    int n = 0;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->nlog && s->log[i] != later; i++)
        n += s->log[i] == number;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void test_storage_holds_refusal_dead(void)
{
    struct stub s;
    struct outcomes out = {0};
    struct rk_forward_status st;
    struct rk_outbox_status ob;
    struct rk_forward *f;

    stub_start(&s);
    atomic_store(&s.storage_once, 1);
    atomic_store(&s.refuse, 2);
    f = send_until(&s, &out, 3, RK_FORWARD_CANNOT_STORE);
    RK_CHECK(rk_forward_status(f, &st) == RK_OK && st.first_pending == 1);
    RK_CHECK(out.n >= 1 && out.number[0] == 1 && !out.ok[0] && out.held[0] &&
             strcmp(out.code[0], "E_STORAGE") == 0);
    /* Held for E_STORAGE: a new event waits behind it. */
    RK_CHECK(add_events(f, 4, 1) == 0);
    RK_CHECK(pump_until(f, RK_FORWARD_HELD) == RK_FORWARD_HELD);
    RK_CHECK(rk_forward_outbox_status(f, &ob) == RK_OK && ob.held == 1 && ob.pending == 1);
    RK_CHECK(ob.held_last_number == 1 && strcmp(ob.held_last.code, "E_STORAGE") == 0);
    RK_CHECK(ob.held_next_ns > 0);
    RK_CHECK(pump_until(f, RK_FORWARD_IDLE) == RK_FORWARD_IDLE);
    RK_CHECK(sent_before(&s, 1, 4) == 2); /* 4 waited for the retry of 1 */
    int stored = 0, dead = 0, held = 0;
    for (int i = 0; i < out.n; i++) {
        stored += out.ok[i] && (out.number[i] == 1 || out.number[i] == 3 || out.number[i] == 4);
        dead += !out.ok[i] && !out.held[i] && out.number[i] == 2 &&
                strcmp(out.code[i], "E_RANGE") == 0;
        held += out.held[i];
    }
    RK_CHECK(out.n == 5 && stored == 3 && dead == 1 && held == 1);
    RK_CHECK(rk_forward_status(f, &st) == RK_OK);
    RK_CHECK(st.pending == 0 && st.acked == 3 && st.refused == 1);
    RK_CHECK(rk_forward_outbox_status(f, &ob) == RK_OK && ob.rejected == 1 && ob.held == 0);
    rk_forward_close(&f);
    stub_stop(&s);
}

/* E_FORBIDDEN holds only its event: the later ones go on. Once the stub
 * allows it, the retry stores it without anything else done. */
static void test_forbidden_holds_one(void)
{
    struct stub s;
    struct outcomes out = {0};
    struct rk_outbox_status ob;
    struct rk_forward *f;

    stub_start(&s);
    atomic_store(&s.forbid, 2);
    f = send_until(&s, &out, 3, RK_FORWARD_HELD);
    RK_CHECK(rk_forward_outbox_status(f, &ob) == RK_OK && ob.held == 1 && ob.pending == 0);
    RK_CHECK(ob.acked == 2 && ob.rejected == 0 && strcmp(ob.held_last.code, "E_FORBIDDEN") == 0);
    atomic_store(&s.forbid, 0);
    RK_CHECK(pump_until(f, RK_FORWARD_IDLE) == RK_FORWARD_IDLE);
    RK_CHECK(rk_forward_outbox_status(f, &ob) == RK_OK && ob.held == 0 && ob.acked == 3);
    /* the broker used number 2 refusing it: the retry is a new event, 4 */
    RK_CHECK(out.n == 4 && out.number[3] == 4 && out.ok[3]);
    RK_CHECK(rk_forward_code_retryable("E_UNKNOWN_REQUEST"));
    RK_CHECK(!rk_forward_code_retryable("E_RANGE") && !rk_forward_code_retryable("E_NOT_OWNER"));
    rk_forward_close(&f);
    stub_stop(&s);
}

/* A lifecycle refusal holds its event for a day, then makes it a dead
 * letter: event 1 was first refused 25 hours ago, event 2 just now. */
static void test_lifecycle_held_a_day(void)
{
    struct stub s;
    struct outcomes out = {0};
    struct rk_outbox_status st;
    struct rk_outbox *ob;
    struct rk_forward *f;
    struct rk_outbox_refusal old = {.code = "E_STATE", .attempts = 30};
    const void *ev[2] = {"event-1", "event-2"};
    size_t lens[2] = {7, 7};
    uint64_t first;
    char box[128];

    stub_start(&s);
    snprintf(box, sizeof box, "%s/outbox", s.dir);
    RK_CHECK(rk_outbox_open(box, &ob, NULL, 0) == RK_OK);
    RK_CHECK(rk_outbox_add(ob, ev, lens, 2, &first) == RK_OK && first == 1);
    old.first_ns = old.last_ns = rk_time_now() - 25 * 3600 * RK_NS_PER_SEC;
    old.retry_ns = old.last_ns + 300 * RK_NS_PER_SEC;
    RK_CHECK(rk_outbox_hold(ob, 1, &old) == RK_OK);
    rk_outbox_close(&ob);
    atomic_store(&s.state, 1);
    f = open_connected(&s, &out); /* a new run: held events are due at once */
    RK_CHECK(f && pump_until(f, RK_FORWARD_IDLE) == RK_FORWARD_IDLE);
    RK_CHECK(out.n == 2 && out.number[0] == 1 && !out.ok[0] && !out.held[0]);
    RK_CHECK(strcmp(out.code[0], "E_STATE") == 0 && out.ok[1]);
    RK_CHECK(rk_forward_outbox_status(f, &st) == RK_OK && st.rejected == 1 && st.held == 0);
    rk_forward_close(&f);

    atomic_store(&s.state, 3);
    f = open_connected(&s, &out);
    RK_CHECK(f && rk_forward_add(f, ev, lens, 1, &first) == RK_OK && first == 3);
    RK_CHECK(pump_until(f, RK_FORWARD_HELD) == RK_FORWARD_HELD);
    RK_CHECK(out.n == 3 && out.number[2] == 3 && out.held[2]);
    RK_CHECK(rk_forward_outbox_status(f, &st) == RK_OK && st.rejected == 1 && st.held == 1);
    rk_forward_close(&f);
    stub_stop(&s);
}

/* Closed with events unanswered, reopened: they go out, none twice. */
static void test_reopen_sends_what_waits(void)
{
    struct stub s;
    struct outcomes out = {0};
    struct rk_forward_status st;
    struct rk_forward *f;

    stub_start(&s);
    atomic_store(&s.silent, 1);
    f = send_until(&s, &out, 3, RK_FORWARD_WAITING);
    rk_forward_close(&f);
    atomic_store(&s.silent, 0);
    f = open_connected(&s, &out);
    RK_CHECK(f && rk_forward_status(f, &st) == RK_OK && st.pending == 3);
    RK_CHECK(pump_until(f, RK_FORWARD_IDLE) == RK_FORWARD_IDLE);
    RK_CHECK(out.n == 3 && out.number[0] == 1 && out.number[2] == 3);
    RK_CHECK(rk_forward_status(f, &st) == RK_OK && st.pending == 0 && st.acked == 3);
    rk_forward_close(&f);
    stub_stop(&s);
}

int main(void)
{
    RK_RUN(test_in_order_once);
    RK_RUN(test_silence_resends_from_oldest);
    RK_RUN(test_storage_holds_refusal_dead);
    RK_RUN(test_forbidden_holds_one);
    RK_RUN(test_lifecycle_held_a_day);
    RK_RUN(test_reopen_sends_what_waits);
    return rk_test_result();
}
