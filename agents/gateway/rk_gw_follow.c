#include "rk_gw_follow.h"
#include "rk_diag.h"
#include "rk_gw_state.h"
#include "rk_json.h"
#include "rk_time.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH 1000
#define TRIES 3

struct rk_gw_follow {
    struct rk_gw_model *m;
    struct rk_gw_follow_options o;
    struct rk_gw_state *state;
    struct rk_sub *sub;
    pthread_t thread;
    atomic_int stop;
    int linked;
};

/* One event of a batch, kept past the next rk_sub_next. */
struct held {
    uint64_t seq;
    int64_t recv_ns;
    char topic[RK_FILTER_TOPIC_MAX];
    json_t *ev;
};

static void take_state(void *arg, json_t *req, uint64_t seq)
{
    (void)seq;
    rk_gw_model_set_state(arg, req);
}

static void link_state(struct rk_gw_follow *f, int up, const char *why)
{
    char q[600];
    if (up != f->linked) {
        if (up)
            RK_DIAG(RK_DIAG_INFO, "broker_reached", "seq=%llu",
                    (unsigned long long)rk_gw_model_position(f->m));
        else
            RK_DIAG(RK_DIAG_WARN, "broker_unreachable", "why=%s",
                    rk_diag_quote(q, sizeof q, why, strlen(why)));
    }
    f->linked = up;
    rk_gw_model_set_link(f->m, up, up ? "" : why);
}

/* Sleeps a second between attempts while the broker is away: the passing
 * of time is the point. */
static void pause_retry(struct rk_gw_follow *f)
{
    for (int i = 0; i < 10 && !atomic_load(&f->stop); i++)
        nanosleep(&(struct timespec){0, 100000000L}, NULL);
}

static struct rk_client_options client(const struct rk_gw_follow *f)
{
    return f->o.client;
}

/* Reads the range the reader is set to, applying every event (or, with
 * `towns_only`, only the publisher's town). -1 on a broker failure. */
static int read_all(struct rk_gw_follow *f, struct rk_reader *r, int towns_only)
{
    struct rk_record rec;
    int rc;
    while ((rc = rk_reader_next(r, f->o.timeout_ms, &rec)) == 0) {
        json_t *ev = rk_msgpack_to_json(rec.event, rec.event_len);
        if (!ev)
            continue;
        if (towns_only)
            rk_gw_model_town(f->m, json_string_value(json_object_get(ev, "municipality")) ?
                                       json_string_value(json_object_get(ev, "municipality")) : "",
                             rec.seq, rec.recv_ns);
        else
            rk_gw_model_apply_uncounted(f->m, rec.seq, rec.recv_ns, ev);
        json_decref(ev);
    }
    return rc == RK_READER_EOF ? 0 : -1;
}

/* Steps 2 and 3 of the start (see the header), each up to `upto`, where
 * following starts, so that every event is counted in its town once. */
static int read_log(struct rk_gw_follow *f, uint64_t upto, char *why, size_t why_len)
{
    struct rk_client_options o = client(f);
    struct rk_reader *r = NULL;
    struct rk_filter flt;
    int rc = -1;
    if (rk_reader_open(f->o.replay, &o, &r)) {
        snprintf(why, why_len, "replay endpoint %s: %s", f->o.replay, strerror(errno));
        return -1;
    }
    memset(&flt, 0, sizeof flt);
    flt.ntopics = 1;
    snprintf(flt.topics[0], sizeof flt.topics[0], "aid.request/");
    rk_reader_seek(r, 1, upto);
    if (!upto)
        goto done; /* an empty log: nothing to read */
    if (rk_reader_set_filter(r, &flt) || read_all(f, r, 0))
        goto out;
    memset(&flt, 0, sizeof flt);
    flt.from_ns = rk_time_now() - f->o.town_window_s * 1000000000LL;
    rk_reader_seek(r, 1, upto);
    if (flt.from_ns > 0 && (rk_reader_set_filter(r, &flt) || read_all(f, r, 1)))
        goto out;
    memset(&flt, 0, sizeof flt);
    flt.ntopics = 1;
    snprintf(flt.topics[0], sizeof flt.topics[0], "kpi.");
    rk_reader_seek(r, 1, upto);
    if (rk_reader_set_filter(r, &flt))
        goto out;
    rk_reader_snapshot(r, upto);
    rc = read_all(f, r, 0);
    goto out;
done:
    rc = 0;
out:
    if (rc)
        snprintf(why, why_len, "reading the log: %s",
                 *rk_reader_error(r) ? rk_reader_error(r) : strerror(errno));
    rk_reader_destroy(&r);
    return rc;
}

/* The start; returns the seq to follow from, or 0 when stopped. */
static uint64_t load(struct rk_gw_follow *f)
{
    char why[400];
    while (!atomic_load(&f->stop)) {
        uint64_t s = 0;
        int rc = rk_gw_state_all(f->state, TRIES, take_state, f->m, &s);
        if (rc == ECANCELED)
            break;
        if (rc == 0 && read_log(f, s, why, sizeof why) == 0) {
            link_state(f, 1, "");
            return s + 1;
        }
        if (rc)
            snprintf(why, sizeof why, "%s", rk_gw_state_error(f->state));
        link_state(f, 0, why);
        pause_retry(f);
    }
    return 0;
}

/* (Re)makes the subscriber and starts it at `from`; 0 when stopped. */
static int subscribe(struct rk_gw_follow *f, uint64_t from)
{
    struct rk_client_options o = client(f);
    while (!atomic_load(&f->stop)) {
        rk_sub_destroy(&f->sub);
        if (rk_sub_open(f->o.feed, f->o.replay, &o, &f->sub) == 0 &&
            rk_sub_start(f->sub, from, f->o.timeout_ms) == 0)
            return 1;
        link_state(f, 0, f->sub && *rk_sub_error(f->sub) ? rk_sub_error(f->sub)
                                                         : "the broker's feed does not answer");
        pause_retry(f);
    }
    return 0;
}

/* Waits for the next event and takes every one ready after it, up to
 * BATCH. Returns how many, 0 on a quiet period, -1 on a failure. */
static int take_batch(struct rk_gw_follow *f, struct held *b)
{
    struct rk_delivery d;
    int n = 0;
    while (n < BATCH) {
        if (rk_sub_next(f->sub, n ? 0 : 200, &d) != 0)
            return errno == ETIMEDOUT ? n : (n ? n : -1);
        json_t *ev = rk_msgpack_to_json(d.event, d.event_len);
        if (!ev)
            continue; /* the broker validated it: not ours to judge */
        b[n].seq = d.seq;
        b[n].recv_ns = d.recv_ns;
        snprintf(b[n].topic, sizeof b[n].topic, "%s", d.topic);
        b[n].ev = ev;
        n++;
    }
    return n;
}

static int seen(const char *const *ids, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ids[i], id) == 0)
            return 1;
    return 0;
}

/* The batch into the model: events applied, the requests they touch
 * asked again, then each pushed to the stream with its request's state. */
static void take(struct rk_gw_follow *f, struct held *b, int n)
{
    const char *ids[BATCH];
    size_t nids = 0;
    for (int i = 0; i < n; i++) {
        const char *type = json_string_value(json_object_get(b[i].ev, "type"));
        const char *id = json_string_value(json_object_get(b[i].ev, "request_id"));
        rk_gw_model_apply(f->m, b[i].seq, b[i].recv_ns, b[i].ev);
        if (type && id && strncmp(type, "aid.", 4) == 0 && !seen(ids, nids, id))
            ids[nids++] = id;
    }
    while (nids && !atomic_load(&f->stop)) {
        if (rk_gw_state_some(f->state, ids, nids, TRIES, take_state, f->m) == 0)
            break;
        link_state(f, 0, rk_gw_state_error(f->state));
        pause_retry(f);
    }
    for (int i = 0; i < n; i++) {
        rk_gw_model_push(f->m, b[i].seq, b[i].recv_ns, b[i].topic, b[i].ev);
        json_decref(b[i].ev);
    }
}

static void *run(void *arg)
{
    struct rk_gw_follow *f = arg;
    struct held *batch = calloc(BATCH, sizeof *batch);
    uint64_t from = batch ? load(f) : 0;
    if (!from || !subscribe(f, from))
        goto out;
    rk_gw_model_set_position(f->m, from);
    RK_DIAG(RK_DIAG_INFO, "following", "from_seq=%llu", (unsigned long long)from);
    while (!atomic_load(&f->stop)) {
        int n = take_batch(f, batch);
        if (n < 0) {
            char q[600];
            const char *e = rk_sub_error(f->sub);
            RK_DIAG(RK_DIAG_WARN, "feed_failed", "why=%s", rk_diag_quote(q, sizeof q, e, strlen(e)));
            if (!subscribe(f, rk_sub_position(f->sub)))
                break;
            continue;
        }
        take(f, batch, n);
        rk_gw_model_set_position(f->m, rk_sub_position(f->sub));
        int quiet = rk_sub_silent_ms(f->sub) > 2000;
        link_state(f, !quiet, quiet ? "the broker's feed has been silent for over 2 s" : "");
    }
out:
    free(batch);
    return NULL;
}

int rk_gw_follow_start(struct rk_gw_model *m, const struct rk_gw_follow_options *o,
                       struct rk_gw_follow **out)
{
    struct rk_gw_follow *f = calloc(1, sizeof *f);
    int rc;
    if (!f)
        abort();
    *out = NULL;
    f->m = m;
    f->o = *o;
    f->linked = -1;
    rc = rk_gw_state_open(o->client.zmq_ctx, o->replay, &o->client, o->timeout_ms, &f->state);
    if (rc == 0)
        rk_gw_state_cancel_on(f->state, &f->stop);
    if (rc == 0)
        rc = pthread_create(&f->thread, NULL, run, f);
    if (rc) {
        rk_gw_state_close(&f->state);
        free(f);
        return rc;
    }
    *out = f;
    return 0;
}

void rk_gw_follow_stop(struct rk_gw_follow **fp)
{
    struct rk_gw_follow *f = fp ? *fp : NULL;
    if (!f)
        return;
    atomic_store(&f->stop, 1);
    pthread_join(f->thread, NULL);
    rk_sub_destroy(&f->sub);
    rk_gw_state_close(&f->state);
    free(f);
    *fp = NULL;
}
