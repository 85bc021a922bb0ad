#include "rk_gw_model.h"
#include "rk_muni.h"
#include "rk_time.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The ring's lines together: an event's line carries its request's whole
 * state, so a count alone would not bound the memory. */
#define RING_BYTES (64u << 20)

struct ring_entry {
    uint64_t seq;
    char *line;
};

/* A request's place in the listing: what the filters compare and its JSON
 * text, made again only after the request changed, so that a listing of
 * 10,000 requests copies text instead of building JSON. */
struct row {
    json_t *r;          /* the request, owned by `requests` */
    int dirty;
    char requester[8], prefecture[3], resource[48], urgency[12], state[16];
    char *text;
    size_t len;
};

struct rk_gw_model {
    pthread_mutex_t mu;
    struct row *rows;   /* in the order the requests were first seen */
    size_t nrows, rows_cap;
    json_t *row_of;     /* request_id -> index in rows */
    pthread_cond_t grew;
    json_t *requests;   /* request_id -> request */
    json_t *towns;      /* code -> town */
    json_t *kpis;       /* "kpi_id|municipality|fy" -> kpi */
    struct ring_entry *ring;
    size_t cap, head, len; /* oldest at head */
    size_t bytes;       /* of the lines in the ring, at most RING_BYTES */
    uint64_t floor;     /* the lowest seq a stream may resume from */
    uint64_t position;
    int closed;
    int connected;
    char why[256];
};

struct rk_gw_model *rk_gw_model_new(size_t ring)
{
    struct rk_gw_model *m = calloc(1, sizeof *m);
    if (!m)
        abort();
    m->cap = ring < 16 ? 16 : ring;
    m->ring = calloc(m->cap, sizeof *m->ring);
    if (!m->ring)
        abort();
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->grew, NULL);
    m->requests = json_object();
    m->row_of = json_object();
    m->towns = json_object();
    m->kpis = json_object();
    m->position = 1;
    m->floor = 1;
    return m;
}

void rk_gw_model_destroy(struct rk_gw_model **mp)
{
    struct rk_gw_model *m = mp ? *mp : NULL;
    if (!m)
        return;
    for (size_t i = 0; i < m->len; i++)
        free(m->ring[(m->head + i) % m->cap].line);
    free(m->ring);
    for (size_t i = 0; i < m->nrows; i++)
        free(m->rows[i].text);
    free(m->rows);
    json_decref(m->row_of);
    json_decref(m->requests);
    json_decref(m->towns);
    json_decref(m->kpis);
    pthread_cond_destroy(&m->grew);
    pthread_mutex_destroy(&m->mu);
    free(m);
    *mp = NULL;
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static json_t *time_json(int64_t ns)
{
    char t[RK_TIME_TEXT_MAX];
    rk_time_format(ns, t);
    return json_string(t);
}

/* The name of the prefecture that `code` lies in: its own code is
 * pp000 and a check digit. */
static const char *prefecture_name(const char *code)
{
    char pref[7];
    if (rk_muni_prefecture(code) == 0)
        return NULL;
    snprintf(pref, sizeof pref, "%.2s000", code);
    int c = rk_muni_check_digit(pref);
    if (c < 0)
        return NULL;
    pref[5] = (char)c;
    pref[6] = 0;
    return rk_muni_name(pref);
}

static json_t *name_or_null(const char *name)
{
    return name ? json_string(name) : json_null();
}

/* The request `id`, made when new, and marked as changed: every caller
 * changes it. */
static json_t *request_slot(struct rk_gw_model *m, const char *id)
{
    json_t *r = json_object_get(m->requests, id);
    json_t *at = json_object_get(m->row_of, id);
    if (!r) {
        r = json_object();
        json_object_set_new(r, "request_id", json_string(id));
        json_object_set_new(m->requests, id, r);
        if (m->nrows == m->rows_cap) {
            m->rows_cap = m->rows_cap ? 2 * m->rows_cap : 1024;
            m->rows = realloc(m->rows, m->rows_cap * sizeof *m->rows);
            if (!m->rows)
                abort();
        }
        memset(&m->rows[m->nrows], 0, sizeof m->rows[0]);
        m->rows[m->nrows].r = r;
        at = json_integer((json_int_t)m->nrows++);
        json_object_set_new(m->row_of, id, at);
    }
    m->rows[json_integer_value(at)].dirty = 1;
    return r;
}

static json_int_t num(json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

void rk_gw_model_set_state(struct rk_gw_model *m, json_t *st)
{
    static const char *const copied[] = {"requester", "resource", "unit", "urgency",
                                         "data_class", "version", "quantity", "accepted",
                                         "dispatched", "in_transit", "state"};
    const char *id = str(st, "request_id");
    json_t *offers = json_array(), *o;
    json_int_t offered = 0;
    size_t i;
    json_array_foreach(json_object_get(st, "offers"), i, o) {
        json_t *c = json_deep_copy(o);
        json_object_set_new(c, "offerer_name", name_or_null(rk_muni_name(str(o, "offerer"))));
        json_object_set_new(c, "received", json_integer(num(o, "fulfilled")));
        if (strcmp(str(o, "state"), "withdrawn") != 0)
            offered += num(o, "quantity");
        json_array_append_new(offers, c);
    }
    pthread_mutex_lock(&m->mu);
    json_t *r = request_slot(m, id);
    for (i = 0; i < sizeof copied / sizeof copied[0]; i++) {
        json_t *v = json_object_get(st, copied[i]);
        if (v)
            json_object_set(r, copied[i], v);
    }
    const char *req = str(st, "requester");
    json_object_set_new(r, "requester_name", name_or_null(rk_muni_name(req)));
    json_object_set_new(r, "prefecture", json_stringn(req, strlen(req) >= 2 ? 2 : 0));
    json_object_set_new(r, "prefecture_name", name_or_null(prefecture_name(req)));
    json_object_set_new(r, "received", json_integer(num(st, "fulfilled")));
    json_object_set_new(r, "offered", json_integer(offered));
    json_object_set_new(r, "offers", offers);
    pthread_mutex_unlock(&m->mu);
}

static void touch_town(struct rk_gw_model *m, const char *code, uint64_t seq, int64_t recv_ns,
                       int count)
{
    json_t *t = json_object_get(m->towns, code);
    if (!*code)
        return;
    if (!t) {
        t = json_object();
        json_object_set_new(t, "code", json_string(code));
        json_object_set_new(t, "name", name_or_null(rk_muni_name(code)));
        json_object_set_new(t, "prefecture", json_stringn(code, strlen(code) >= 2 ? 2 : 0));
        json_object_set_new(t, "prefecture_name", name_or_null(prefecture_name(code)));
        json_object_set_new(t, "events", json_integer(0));
        json_object_set_new(t, "last_seq", json_integer(0));
        json_object_set_new(m->towns, code, t);
    }
    if (count)
        json_object_set_new(t, "events", json_integer(num(t, "events") + 1));
    if ((json_int_t)seq > num(t, "last_seq")) {
        json_object_set_new(t, "last_seq", json_integer((json_int_t)seq));
        json_object_set_new(t, "last_ns", json_integer(recv_ns));
    }
}

void rk_gw_model_town(struct rk_gw_model *m, const char *code, uint64_t seq, int64_t recv_ns)
{
    pthread_mutex_lock(&m->mu);
    touch_town(m, code, seq, recv_ns, 1);
    pthread_mutex_unlock(&m->mu);
}

static void take_request_event(struct rk_gw_model *m, uint64_t seq, int64_t recv_ns, json_t *ev)
{
    json_t *r = request_slot(m, str(ev, "request_id"));
    json_int_t version = num(ev, "version");
    if (!json_object_get(r, "created_at"))
        json_object_set_new(r, "created_at", time_json(recv_ns));
    if (version < num(r, "detail_version"))
        return;
    json_object_set_new(r, "detail_version", json_integer(version));
    json_object_set(r, "deadline", json_object_get(ev, "deadline"));
    json_object_set(r, "location", json_object_get(ev, "location"));
    json_object_set(r, "sent_at", json_object_get(ev, "sent_at"));
    json_t *note = json_object_get(ev, "note");
    json_object_set(r, "note", note ? note : json_null());
    (void)seq;
}

static void take_kpi(struct rk_gw_model *m, uint64_t seq, int64_t recv_ns, json_t *ev)
{
    char key[256];
    snprintf(key, sizeof key, "%s|%s|%lld", str(ev, "kpi_id"), str(ev, "municipality"),
             (long long)num(ev, "fiscal_year"));
    json_t *old = json_object_get(m->kpis, key);
    if (old && num(old, "seq") >= (json_int_t)seq)
        return;
    json_t *k = json_deep_copy(ev);
    json_object_del(k, "type");
    json_object_del(k, "event_id");
    json_object_set_new(k, "municipality_name", name_or_null(rk_muni_name(str(ev, "municipality"))));
    json_object_set_new(k, "seq", json_integer((json_int_t)seq));
    json_object_set_new(k, "recv_time", time_json(recv_ns));
    json_object_set_new(m->kpis, key, k);
}

static void apply(struct rk_gw_model *m, uint64_t seq, int64_t recv_ns, json_t *ev, int count)
{
    const char *type = str(ev, "type");
    pthread_mutex_lock(&m->mu);
    touch_town(m, str(ev, "municipality"), seq, recv_ns, count);
    if (strcmp(type, "kpi.update") == 0) {
        take_kpi(m, seq, recv_ns, ev);
    } else if (strncmp(type, "aid.", 4) == 0 && *str(ev, "request_id")) {
        json_t *r = request_slot(m, str(ev, "request_id"));
        if (strcmp(type, "aid.request") == 0)
            take_request_event(m, seq, recv_ns, ev);
        if ((json_int_t)seq > num(r, "last_seq")) {
            json_object_set_new(r, "last_seq", json_integer((json_int_t)seq));
            json_object_set_new(r, "updated_at", time_json(recv_ns));
        }
    }
    pthread_mutex_unlock(&m->mu);
}

void rk_gw_model_apply(struct rk_gw_model *m, uint64_t seq, int64_t recv_ns, json_t *ev)
{
    apply(m, seq, recv_ns, ev, 1);
}

void rk_gw_model_apply_uncounted(struct rk_gw_model *m, uint64_t seq, int64_t recv_ns,
                                 json_t *ev)
{
    apply(m, seq, recv_ns, ev, 0);
}

/* A request as the API shows it: without the model's bookkeeping. */
static json_t *shown(json_t *r)
{
    json_t *c = json_deep_copy(r);
    json_object_del(c, "detail_version");
    return c;
}

/* A town as the API shows it: its last publish as a time. */
static json_t *town_shown(json_t *t)
{
    json_t *c = json_deep_copy(t);
    int64_t last = num(t, "last_ns");
    json_object_del(c, "last_ns");
    json_object_set_new(c, "last_published", last ? time_json(last) : json_null());
    return c;
}

void rk_gw_model_push(struct rk_gw_model *m, uint64_t seq, int64_t recv_ns, const char *topic,
                      json_t *ev)
{
    json_t *line = json_object();
    json_object_set_new(line, "seq", json_integer((json_int_t)seq));
    json_object_set_new(line, "recv_time", time_json(recv_ns));
    json_object_set_new(line, "topic", json_string(topic));
    json_object_set(line, "event", ev);
    pthread_mutex_lock(&m->mu);
    json_t *r = json_object_get(m->requests, str(ev, "request_id"));
    if (r && strncmp(str(ev, "type"), "aid.", 4) == 0 && json_object_get(r, "state"))
        json_object_set_new(line, "request", shown(r));
    const char *town = str(ev, "municipality");
    json_t *t = json_object_get(m->towns, town);
    if (t)
        json_object_set_new(line, "town", town_shown(t));
    char *text = json_dumps(line, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (!text)
        abort();
    size_t n = strlen(text);
    while (m->len && (m->len == m->cap || m->bytes + n > RING_BYTES)) {
        struct ring_entry *old = &m->ring[m->head];
        m->floor = old->seq + 1;
        m->bytes -= strlen(old->line);
        free(old->line);
        m->head = (m->head + 1) % m->cap;
        m->len--;
    }
    m->ring[(m->head + m->len) % m->cap] = (struct ring_entry){seq, text};
    m->len++;
    m->bytes += n;
    pthread_cond_broadcast(&m->grew);
    pthread_mutex_unlock(&m->mu);
    json_decref(line);
}

void rk_gw_model_set_position(struct rk_gw_model *m, uint64_t next)
{
    pthread_mutex_lock(&m->mu);
    if (next > m->position)
        m->position = next;
    /* Before the first event comes, a stream may start at the position. */
    if (m->len == 0 && m->floor < m->position)
        m->floor = m->position;
    pthread_mutex_unlock(&m->mu);
}

void rk_gw_model_set_link(struct rk_gw_model *m, int connected, const char *why)
{
    pthread_mutex_lock(&m->mu);
    m->connected = connected;
    snprintf(m->why, sizeof m->why, "%s", why ? why : "");
    pthread_mutex_unlock(&m->mu);
}

void rk_gw_model_close(struct rk_gw_model *m)
{
    pthread_mutex_lock(&m->mu);
    m->closed = 1;
    pthread_cond_broadcast(&m->grew);
    pthread_mutex_unlock(&m->mu);
}

static json_t *shown(json_t *r);

/* Takes the request's filter fields and text anew. */
static void refresh_row(struct row *w)
{
    snprintf(w->requester, sizeof w->requester, "%s", str(w->r, "requester"));
    snprintf(w->prefecture, sizeof w->prefecture, "%s", str(w->r, "prefecture"));
    snprintf(w->resource, sizeof w->resource, "%s", str(w->r, "resource"));
    snprintf(w->urgency, sizeof w->urgency, "%s", str(w->r, "urgency"));
    snprintf(w->state, sizeof w->state, "%s", str(w->r, "state"));
    free(w->text);
    json_t *c = shown(w->r);
    w->text = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    json_decref(c);
    if (!w->text)
        abort();
    w->len = strlen(w->text);
    w->dirty = 0;
}

static int matches(const struct row *w, const struct rk_gw_req_filter *f)
{
    if (!w->state[0])
        return 0; /* seen in an event, its state not yet asked */
    return (!f->prefecture || strcmp(w->prefecture, f->prefecture) == 0) &&
           (!f->requester || strcmp(w->requester, f->requester) == 0) &&
           (!f->resource || strcmp(w->resource, f->resource) == 0) &&
           (!f->urgency || strcmp(w->urgency, f->urgency) == 0) &&
           (!f->state || strcmp(w->state, f->state) == 0);
}

struct text {
    char *buf;
    size_t len, cap;
};

static void put(struct text *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->buf = realloc(t->buf, t->cap);
        if (!t->buf)
            abort();
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = 0;
}

static char *dump(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    json_decref(o);
    if (!s)
        abort();
    return s;
}

char *rk_gw_model_requests(struct rk_gw_model *m, const struct rk_gw_req_filter *f)
{
    struct text t = {0};
    char head[64];
    size_t count = 0;
    put(&t, "{\"requests\":[", 13);
    pthread_mutex_lock(&m->mu);
    uint64_t seq = m->position;
    for (size_t i = 0; i < m->nrows; i++) {
        struct row *w = &m->rows[i];
        if (w->dirty)
            refresh_row(w);
        if (!matches(w, f))
            continue;
        if (count++)
            put(&t, ",", 1);
        put(&t, w->text, w->len);
    }
    pthread_mutex_unlock(&m->mu);
    int n = snprintf(head, sizeof head, "],\"count\":%zu,\"seq\":%llu}", count,
                     (unsigned long long)seq);
    put(&t, head, (size_t)n);
    return t.buf;
}

json_t *rk_gw_model_request(struct rk_gw_model *m, const char *id)
{
    pthread_mutex_lock(&m->mu);
    json_t *r = json_object_get(m->requests, id);
    json_t *c = r && json_object_get(r, "state") ? shown(r) : NULL;
    pthread_mutex_unlock(&m->mu);
    return c;
}

char *rk_gw_model_towns(struct rk_gw_model *m, int64_t now_ns, int64_t silent_s)
{
    json_t *out = json_object(), *list = json_array(), *t;
    const char *code;
    pthread_mutex_lock(&m->mu);
    json_object_set_new(out, "seq", json_integer((json_int_t)m->position));
    json_object_foreach(m->towns, code, t) {
        json_t *c = town_shown(t);
        int64_t last = num(t, "last_ns");
        json_object_set_new(c, "silent_s", json_integer((now_ns - last) / 1000000000));
        json_object_set_new(c, "silent", json_boolean(now_ns - last > silent_s * 1000000000));
        json_array_append_new(list, c);
    }
    pthread_mutex_unlock(&m->mu);
    json_object_set_new(out, "silent_after_s", json_integer(silent_s));
    json_object_set_new(out, "now", time_json(now_ns));
    json_object_set_new(out, "towns", list);
    return dump(out);
}

char *rk_gw_model_kpis(struct rk_gw_model *m, const char *muni, const char *region)
{
    json_t *out = json_object(), *list = json_array(), *k;
    const char *key;
    pthread_mutex_lock(&m->mu);
    json_object_set_new(out, "seq", json_integer((json_int_t)m->position));
    json_object_foreach(m->kpis, key, k)
        if ((!muni || strcmp(str(k, "municipality"), muni) == 0) &&
            (!region || strcmp(str(k, "region"), region) == 0))
            json_array_append_new(list, json_deep_copy(k));
    pthread_mutex_unlock(&m->mu);
    json_object_set_new(out, "count", json_integer((json_int_t)json_array_size(list)));
    json_object_set_new(out, "kpis", list);
    return dump(out);
}

char *rk_gw_model_status(struct rk_gw_model *m)
{
    json_t *out = json_object();
    pthread_mutex_lock(&m->mu);
    json_object_set_new(out, "seq", json_integer((json_int_t)m->position));
    json_object_set_new(out, "requests", json_integer((json_int_t)json_object_size(m->requests)));
    json_object_set_new(out, "towns", json_integer((json_int_t)json_object_size(m->towns)));
    json_object_set_new(out, "kpis", json_integer((json_int_t)json_object_size(m->kpis)));
    json_object_set_new(out, "broker", json_pack("{s:b,s:s}", "connected", m->connected,
                                                 "error", m->why));
    json_object_set_new(out, "stream", json_pack("{s:I,s:I}", "resume_from", (json_int_t)m->floor,
                                                 "events", (json_int_t)m->len));
    pthread_mutex_unlock(&m->mu);
    return dump(out);
}

/* The ring index of the first entry with seq >= from, or m->len. */
static size_t find(const struct rk_gw_model *m, uint64_t from)
{
    size_t lo = 0, hi = m->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->ring[(m->head + mid) % m->cap].seq < from)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int rk_gw_model_next(struct rk_gw_model *m, uint64_t from, int wait_ms, char **line,
                     uint64_t *seq)
{
    struct timespec until;
    int rc = 0;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    *line = NULL;
    pthread_mutex_lock(&m->mu);
    for (;;) {
        if (m->closed) {
            rc = ECANCELED;
            break;
        }
        if (from < m->floor) {
            rc = ERANGE;
            break;
        }
        size_t i = find(m, from);
        if (i < m->len) {
            struct ring_entry *e = &m->ring[(m->head + i) % m->cap];
            *line = strdup(e->line);
            *seq = e->seq;
            break;
        }
        if (pthread_cond_timedwait(&m->grew, &m->mu, &until) == ETIMEDOUT) {
            rc = ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

uint64_t rk_gw_model_position(struct rk_gw_model *m)
{
    pthread_mutex_lock(&m->mu);
    uint64_t p = m->position;
    pthread_mutex_unlock(&m->mu);
    return p;
}
