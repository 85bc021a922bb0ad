#include "rk_gw_http.h"
#include "rk_asof.h"
#include "rk_diag.h"
#include "rk_json.h"
#include "rk_muni.h"
#include "rk_text.h"
#include "rk_time.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EVENTS_LIMIT_DEFAULT 1000
#define EVENTS_LIMIT_MAX 10000
#define KEEPALIVE_S 15
/* A posted body: a batch of RK_GW_POST_BATCH_MAX events of the broker's
 * 16 KiB each, as JSON, fits. */
#define POST_BODY_MAX (24u << 20)

/* One POST's body, gathered across the upload calls. */
struct upload {
    char *buf;
    size_t len, cap;
    int too_big;
};

struct rk_gw_http {
    struct rk_gw_model *m;
    struct rk_gw_http_options o;
    struct MHD_Daemon *d;
    char *cert, *key;   /* PEM texts, kept while the daemon runs */
};

/* ---- answers */

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type,
                                 char *body)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body,
                                                             MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, char *body)
{
    return send_text(c, status, "application/json; charset=utf-8", body);
}

static enum MHD_Result send_jsonv(struct MHD_Connection *c, unsigned status, json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(v);
    if (!s)
        abort();
    return send_json(c, status, s);
}

/* {"error": {"code", "field", "reason"}}; `reason` may quote outside
 * bytes: it is escaped to valid UTF-8 first. */
static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *code,
                                  const char *field, const char *reason)
{
    char safe[RK_TEXT_SIZE(512)];
    rk_text_escape(safe, sizeof safe, reason, strnlen(reason, 512), 0);
    return send_jsonv(c, status, json_pack("{s:{s:s,s:s,s:s}}", "error", "code", code, "field",
                                           field, "reason", safe));
}

/* `v` escaped for quoting in a reason. */
static const char *quoted(char *buf, size_t cap, const char *v)
{
    rk_text_escape(buf, cap, v, strnlen(v, 80), RK_TEXT_DQUOTE);
    return buf;
}

/* ---- query arguments */

struct args_check {
    const char *const *known;
    const char *unknown;
};

static enum MHD_Result check_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    struct args_check *a = cls;
    (void)kind;
    (void)value;
    for (const char *const *k = a->known; *k; k++)
        if (strcmp(*k, key) == 0)
            return MHD_YES;
    a->unknown = key;
    return MHD_NO;
}

/* NULL when every query argument is one of `known`; else the first other. */
static const char *unknown_arg(struct MHD_Connection *c, const char *const *known)
{
    struct args_check a = {known, NULL};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, check_arg, &a);
    return a.unknown;
}

static const char *arg(struct MHD_Connection *c, const char *key)
{
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
}

static int digits(const char *s, size_t n)
{
    if (strlen(s) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static int one_of(const char *v, const char *const *set)
{
    for (; *set; set++)
        if (strcmp(v, *set) == 0)
            return 1;
    return 0;
}

/* A uint argument: 0 when absent, -1 (and an error sent) when bad. */
static int uint_arg(struct MHD_Connection *c, const char *key, uint64_t min, uint64_t max,
                    uint64_t *out, enum MHD_Result *sent)
{
    const char *v = arg(c, key);
    char *end, q[RK_TEXT_SIZE(80)], why[800];
    if (!v)
        return 0;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (!*v || *end || errno || *v == '-' || n < min || n > max) {
        snprintf(why, sizeof why, "%s: must be an integer %llu..%llu, got \"%s\"", key,
                 (unsigned long long)min, (unsigned long long)max, quoted(q, sizeof q, v));
        *sent = send_error(c, 400, "E_PARAM", key, why);
        return -1;
    }
    *out = n;
    return 1;
}

/* ---- /api/requests */

static const char *const urgencies[] = {"critical", "high", "medium", "low", NULL};
static const char *const states[] = {"open", "in_progress", "fulfilled", "cancelled", NULL};

static enum MHD_Result api_requests(struct rk_gw_http *h, struct MHD_Connection *c)
{
    static const char *const known[] = {"prefecture", "requester", "resource", "urgency",
                                        "state", NULL};
    struct rk_gw_req_filter f = {arg(c, "prefecture"), arg(c, "requester"),
                                 arg(c, "resource"), arg(c, "urgency"), arg(c, "state")};
    const char *bad = unknown_arg(c, known);
    char q[RK_TEXT_SIZE(80)], why[800];
    if (bad) {
        snprintf(why, sizeof why, "%s: not a filter of /api/requests (it takes prefecture, "
                 "requester, resource, urgency, state)", quoted(q, sizeof q, bad));
        return send_error(c, 400, "E_PARAM", "query", why);
    }
    if (f.prefecture && (!digits(f.prefecture, 2) || !rk_muni_prefecture(f.prefecture)))
        return send_error(c, 400, "E_PARAM", "prefecture",
                          "prefecture: must be a two-digit prefecture code 01..47, e.g. 27");
    if (f.requester && rk_muni_validate(f.requester, strlen(f.requester)) != RK_MUNI_OK)
        return send_error(c, 400, "E_PARAM", "requester",
                          "requester: must be an existing six-digit local-government code, "
                          "e.g. 271004");
    if (f.urgency && !one_of(f.urgency, urgencies))
        return send_error(c, 400, "E_PARAM", "urgency",
                          "urgency: must be critical, high, medium or low");
    if (f.state && !one_of(f.state, states))
        return send_error(c, 400, "E_PARAM", "state",
                          "state: must be open, in_progress, fulfilled or cancelled");
    if (f.resource && (!*f.resource || strlen(f.resource) > 64))
        return send_error(c, 400, "E_PARAM", "resource",
                          "resource: must be a resource code, e.g. water.drinking");
    return send_json(c, 200, rk_gw_model_requests(h->m, &f));
}

static struct rk_reader *reader(struct rk_gw_http *h)
{
    struct rk_reader *r = NULL;
    return rk_reader_open(h->o.replay, &h->o.client, &r) == 0 ? r : NULL;
}

static enum MHD_Result broker_error(struct MHD_Connection *c, struct rk_reader *r)
{
    char why[400];
    snprintf(why, sizeof why, "the broker's log could not be read: %s",
             r && *rk_reader_error(r) ? rk_reader_error(r) : "no answer (is the broker up?)");
    return send_error(c, 503, "E_BROKER", "broker", why);
}

/* One stored event as the API shows it. */
static json_t *record_json(const struct rk_record *rec)
{
    char t[RK_TIME_TEXT_MAX];
    json_t *ev = rk_msgpack_to_json(rec->event, rec->event_len);
    rk_time_format(rec->recv_ns, t);
    json_t *o = json_pack("{s:I,s:s}", "seq", (json_int_t)rec->seq, "recv_time", t);
    if (rec->publisher && *rec->publisher)
        json_object_set_new(o, "publisher", json_string(rec->publisher));
    const char *muni = json_string_value(json_object_get(ev, "municipality"));
    const char *name = muni ? rk_muni_name(muni) : NULL;
    json_object_set_new(o, "municipality_name", name ? json_string(name) : json_null());
    json_object_set_new(o, "event", ev ? ev : json_null());
    return o;
}

static enum MHD_Result api_request(struct rk_gw_http *h, struct MHD_Connection *c,
                                   const char *id)
{
    char q[RK_TEXT_SIZE(80)], why[800];
    struct rk_filter f;
    struct rk_record rec;
    if (!*id || strlen(id) > RK_FILTER_ID_MAX || unknown_arg(c, (const char *const[]){NULL}))
        return send_error(c, 400, "E_PARAM", "request_id",
                          "request_id: 1-64 characters of A-Z a-z 0-9 . _ : -, and no query");
    json_t *req = rk_gw_model_request(h->m, id);
    if (!req) {
        snprintf(why, sizeof why, "request_id: no request \"%s\" is known", quoted(q, sizeof q, id));
        return send_error(c, 404, "E_NOT_FOUND", "request_id", why);
    }
    struct rk_reader *r = reader(h);
    memset(&f, 0, sizeof f);
    snprintf(f.request_id, sizeof f.request_id, "%s", id);
    json_t *timeline = json_array();
    int rc = -1;
    if (r) {
        rk_reader_seek(r, 1, 0);
        rk_reader_set_filter(r, &f);
        while ((rc = rk_reader_next(r, h->o.timeout_ms, &rec)) == 0)
            json_array_append_new(timeline, record_json(&rec));
    }
    if (rc != RK_READER_EOF) {
        json_decref(req);
        json_decref(timeline);
        enum MHD_Result res = broker_error(c, r);
        rk_reader_destroy(&r);
        return res;
    }
    rk_reader_destroy(&r);
    json_object_set_new(req, "timeline", timeline);
    return send_jsonv(c, 200, req);
}

/* ---- /api/towns, /api/kpis, /api/status */

static enum MHD_Result api_towns(struct rk_gw_http *h, struct MHD_Connection *c)
{
    uint64_t s = (uint64_t)h->o.silent_s;
    enum MHD_Result sent;
    if (unknown_arg(c, (const char *const[]){"silent_after", NULL}))
        return send_error(c, 400, "E_PARAM", "query", "/api/towns takes only silent_after");
    if (uint_arg(c, "silent_after", 1, 86400 * 366, &s, &sent) < 0)
        return sent;
    return send_json(c, 200, rk_gw_model_towns(h->m, rk_time_now(), (int64_t)s));
}

static enum MHD_Result api_kpis(struct rk_gw_http *h, struct MHD_Connection *c)
{
    const char *muni = arg(c, "municipality");
    if (unknown_arg(c, (const char *const[]){"municipality", "region", NULL}))
        return send_error(c, 400, "E_PARAM", "query",
                          "/api/kpis takes only municipality and region");
    if (muni && rk_muni_validate(muni, strlen(muni)) != RK_MUNI_OK)
        return send_error(c, 400, "E_PARAM", "municipality",
                          "municipality: must be an existing six-digit local-government code");
    return send_json(c, 200, rk_gw_model_kpis(h->m, muni, arg(c, "region")));
}

/* ---- /api/events: NDJSON from the broker's log */

static enum MHD_Result api_events(struct rk_gw_http *h, struct MHD_Connection *c)
{
    uint64_t from = 0, limit = EVENTS_LIMIT_DEFAULT;
    enum MHD_Result sent;
    struct rk_record rec;
    char next[32];
    if (unknown_arg(c, (const char *const[]){"from", "limit", NULL}))
        return send_error(c, 400, "E_PARAM", "query", "/api/events takes only from and limit");
    int has = uint_arg(c, "from", 1, UINT64_MAX, &from, &sent);
    if (has < 0 || uint_arg(c, "limit", 1, EVENTS_LIMIT_MAX, &limit, &sent) < 0)
        return sent;
    if (!has)
        return send_error(c, 400, "E_PARAM", "from", "from: required, the first seq wanted (1 = "
                          "the whole log)");
    struct rk_reader *r = reader(h);
    size_t cap = 1 << 16, len = 0;
    char *body = malloc(cap);
    int rc = -1;
    uint64_t n = 0;
    if (!body)
        abort();
    if (r) {
        rk_reader_seek(r, from, 0);
        while (n < limit && (rc = rk_reader_next(r, h->o.timeout_ms, &rec)) == 0) {
            json_t *o = record_json(&rec);
            char *line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
            json_decref(o);
            size_t l = strlen(line);
            while (len + l + 2 > cap && (body = realloc(body, cap *= 2)) == NULL)
                abort();
            memcpy(body + len, line, l);
            len += l;
            body[len++] = '\n';
            free(line);
            n++;
            from = rec.seq + 1;
        }
    }
    if (rc != 0 && rc != RK_READER_EOF) {
        free(body);
        sent = broker_error(c, r);
        rk_reader_destroy(&r);
        return sent;
    }
    rk_reader_destroy(&r);
    struct MHD_Response *res = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    snprintf(next, sizeof next, "%llu", (unsigned long long)from);
    MHD_add_response_header(res, "Content-Type", "application/x-ndjson; charset=utf-8");
    /* Where the next call starts: after the last line, or where this one did. */
    MHD_add_response_header(res, "X-Renkei-Next-Seq", next);
    sent = MHD_queue_response(c, 200, res);
    MHD_destroy_response(res);
    return sent;
}

/* ---- /api/asof: the board as of a past moment, for an auditor */

static enum MHD_Result api_asof(struct rk_gw_http *h, struct MHD_Connection *c)
{
    const char *t = arg(c, "time"), *pref = arg(c, "prefecture");
    char why[800], q[RK_TEXT_SIZE(80)];
    int64_t at = 0;
    if (unknown_arg(c, (const char *const[]){"time", "prefecture", NULL}))
        return send_error(c, 400, "E_PARAM", "query", "/api/asof takes only time and prefecture");
    if (!t || rk_time_parse(t, strlen(t), &at)) {
        snprintf(why, sizeof why, "time: required, an RFC 3339 time with an offset, e.g. "
                 "2026-02-17T15:00:00+09:00; got \"%s\"", quoted(q, sizeof q, t ? t : ""));
        return send_error(c, 400, "E_PARAM", "time", why);
    }
    if (pref && (!digits(pref, 2) || !rk_muni_prefecture(pref)))
        return send_error(c, 400, "E_PARAM", "prefecture",
                          "prefecture: must be a two-digit prefecture code 01..47, e.g. 27");
    struct rk_asof_query aq = {.endpoint = h->o.replay, .client = &h->o.client,
                               .timeout_ms = h->o.timeout_ms, .at_ns = at, .prefecture = pref};
    char *body = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&body, &len);
    if (!out)
        abort();
    int rc = rk_asof_print(&aq, out, RK_RENDER_JSON, why, sizeof why);
    fclose(out);
    if (rc) {
        free(body);
        return send_error(c, 503, "E_BROKER", "broker", why);
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/x-ndjson; charset=utf-8");
    enum MHD_Result sent = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return sent;
}

/* ---- /api/stream: server-sent events */

struct stream {
    struct rk_gw_model *m;
    uint64_t next;
    char *pending;       /* text not yet handed to libmicrohttpd */
    size_t off, len;
    time_t last_write;
};

static void stream_set(struct stream *s, char *text)
{
    free(s->pending);
    s->pending = text;
    s->off = 0;
    s->len = strlen(text);
    s->last_write = time(NULL);
}

/* Fills s->pending with the next thing to say; 0 at the end. */
static int stream_fill(struct stream *s)
{
    for (;;) {
        char *line = NULL, *text;
        uint64_t seq = 0;
        int rc = rk_gw_model_next(s->m, s->next, 1000, &line, &seq);
        if (rc == ECANCELED)
            return 0;
        if (rc == 0) {
            if (asprintf(&text, "id: %llu\ndata: %s\n\n", (unsigned long long)seq, line) < 0)
                abort();
            free(line);
            s->next = seq + 1;
            stream_set(s, text);
            return 1;
        }
        if (rc == ERANGE) {
            uint64_t at = rk_gw_model_position(s->m);
            if (asprintf(&text, "event: reset\nid: %llu\ndata: {\"seq\":%llu,\"reason\":"
                         "\"older than the gateway keeps: take /api/requests again\"}\n\n",
                         (unsigned long long)(at - 1), (unsigned long long)at) < 0)
                abort();
            s->next = at;
            stream_set(s, text);
            return 1;
        }
        if (time(NULL) - s->last_write >= KEEPALIVE_S) {
            stream_set(s, strdup(": keepalive\n\n"));
            return 1;
        }
    }
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *s = cls;
    (void)pos;
    if (s->off == s->len && !stream_fill(s))
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = s->len - s->off < max ? s->len - s->off : max;
    memcpy(buf, s->pending + s->off, n);
    s->off += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    struct stream *s = cls;
    free(s->pending);
    free(s);
}

static enum MHD_Result api_stream(struct rk_gw_http *h, struct MHD_Connection *c)
{
    const char *last = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
    uint64_t from = 0;
    enum MHD_Result sent;
    if (unknown_arg(c, (const char *const[]){"from", NULL}))
        return send_error(c, 400, "E_PARAM", "query", "/api/stream takes only from");
    if (uint_arg(c, "from", 1, UINT64_MAX, &from, &sent) < 0)
        return sent;
    if (last) {
        char *end;
        errno = 0;
        unsigned long long id = strtoull(last, &end, 10);
        if (!*last || *end || errno || *last == '-')
            return send_error(c, 400, "E_PARAM", "Last-Event-ID",
                              "Last-Event-ID: must be the seq of an event this stream sent");
        from = id + 1;
    }
    struct stream *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->m = h->m;
    s->next = from ? from : rk_gw_model_position(h->m);
    /* Tell the browser to come back after 1 s when the link drops. */
    stream_set(s, strdup("retry: 1000\n\n"));
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, s, stream_free);
    MHD_add_response_header(r, "Content-Type", "text/event-stream; charset=utf-8");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    sent = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return sent;
}

/* ---- static files */

static const char *content_type(const char *path)
{
    static const char *const types[][2] = {
        {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
        {".json", "application/json"}, {".png", "image/png"}, {".svg", "image/svg+xml"},
        {".map", "application/json"}, {".ico", "image/x-icon"}};
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i][0]) == 0)
            return types[i][1];
    return "application/octet-stream";
}

/* Only plain names: letters, digits, . _ - and /, no "..". */
static int safe_path(const char *p)
{
    if (*p != '/' || strstr(p, "..") || strstr(p, "//"))
        return 0;
    for (; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-' || *p == '/'))
            return 0;
    return 1;
}

static enum MHD_Result file(struct rk_gw_http *h, struct MHD_Connection *c, const char *url)
{
    char path[4096];
    struct stat st;
    if (strcmp(url, "/") == 0)
        url = "/index.html";
    if (!safe_path(url) || snprintf(path, sizeof path, "%s%s", h->o.web_dir, url) >= (int)sizeof path)
        return send_error(c, 404, "E_NOT_FOUND", "path", "no such file");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        return send_error(c, 404, "E_NOT_FOUND", "path", "no such file");
    }
    struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    MHD_add_response_header(r, "Content-Type", content_type(url));
    enum MHD_Result rc = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return rc;
}

/* ---- POST /api/events */

static enum MHD_Result post_events(struct rk_gw_http *h, struct MHD_Connection *c,
                                   struct upload *u)
{
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    const char *tenant = NULL;
    json_error_t jerr;
    char why[400];
    if (!h->o.post)
        return send_error(c, 405, "E_METHOD", "method",
                          "posting events is off: the gateway was started without --tokens");
    if (auth && strncmp(auth, "Bearer ", 7) == 0)
        tenant = rk_gw_post_tenant(h->o.post, auth + 7);
    if (!tenant)
        return send_error(c, 401, "E_AUTH", "Authorization",
                          auth ? "Authorization: not a token this gateway knows"
                               : "Authorization: required, \"Bearer TOKEN\" of your tenant");
    if (u->too_big)
        return send_error(c, 413, "E_TOO_LARGE", "body", "body: over 24 MiB; post fewer events");
    json_t *body = json_loadb(u->buf ? u->buf : "", u->len, JSON_REJECT_DUPLICATES, &jerr);
    if (!body) {
        snprintf(why, sizeof why, "body: not JSON (line %d, column %d: %s)", jerr.line,
                 jerr.column, jerr.text);
        return send_error(c, 400, "E_JSON", "body", why);
    }
    size_t n = json_is_array(body) ? json_array_size(body) : 1;
    if ((!json_is_object(body) && !json_is_array(body)) || n == 0 || n > RK_GW_POST_BATCH_MAX) {
        json_decref(body);
        snprintf(why, sizeof why, "body: one event (a JSON object) or an array of 1..%d",
                 RK_GW_POST_BATCH_MAX);
        return send_error(c, 400, "E_JSON", "body", why);
    }
    json_t *results = rk_gw_post_publish(h->o.post, tenant, body);
    json_decref(body);
    int all = 1;
    size_t i;
    json_t *r;
    json_array_foreach(results, i, r)
        all &= json_is_true(json_object_get(r, "ok"));
    return send_jsonv(c, all ? 200 : 422,
                      json_pack("{s:s,s:o}", "tenant", tenant, "results", results));
}

static int take_upload(struct upload *u, const char *data, size_t n)
{
    if (u->too_big || u->len + n > POST_BODY_MAX) {
        u->too_big = 1;
        return 0;
    }
    if (u->len + n > u->cap) {
        u->cap = (u->len + n) * 2;
        u->buf = realloc(u->buf, u->cap);
        if (!u->buf)
            abort();
    }
    memcpy(u->buf + u->len, data, n);
    u->len += n;
    return 0;
}

static void completed(void *cls, struct MHD_Connection *c, void **state,
                      enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)c;
    (void)why;
    struct upload *u = *state;
    if (u && u != (void *)1) {
        free(u->buf);
        free(u);
    }
    *state = NULL;
}

/* ---- routing */

static enum MHD_Result route(void *cls, struct MHD_Connection *c, const char *url,
                             const char *method, const char *version, const char *upload,
                             size_t *upload_size, void **state)
{
    struct rk_gw_http *h = cls;
    (void)version;
    (void)upload;
    int posting = strcmp(method, "POST") == 0 && strcmp(url, "/api/events") == 0;
    if (!*state) {
        /* The first call has seen the headers only; answer on a later one. */
        *state = posting ? calloc(1, sizeof(struct upload)) : (void *)1;
        if (!*state)
            abort();
        return MHD_YES;
    }
    if (*upload_size) {
        if (posting)
            take_upload(*state, upload, *upload_size);
        *upload_size = 0; /* other methods' bodies are not read */
        return MHD_YES;
    }
    if (posting)
        return post_events(h, c, *state);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return send_error(c, 405, "E_METHOD", "method",
                          "only GET is served, and POST of /api/events");
    if (strcmp(url, "/api/requests") == 0)
        return api_requests(h, c);
    if (strncmp(url, "/api/requests/", 14) == 0)
        return api_request(h, c, url + 14);
    if (strcmp(url, "/api/towns") == 0)
        return api_towns(h, c);
    if (strcmp(url, "/api/kpis") == 0)
        return api_kpis(h, c);
    if (strcmp(url, "/api/events") == 0)
        return api_events(h, c);
    if (strcmp(url, "/api/stream") == 0)
        return api_stream(h, c);
    if (strcmp(url, "/api/asof") == 0)
        return api_asof(h, c);
    if (strcmp(url, "/api/status") == 0)
        return send_json(c, 200, rk_gw_model_status(h->m));
    if (strncmp(url, "/api/", 5) == 0 || strcmp(url, "/api") == 0)
        return send_error(c, 404, "E_NOT_FOUND", "path",
                          "no such API path; see renkei-gateway(8) for the list");
    return file(h, c, url);
}

/* libmicrohttpd's own messages (mostly a client gone mid-answer, routine
 * for a stream a browser tab closes), as logfmt lines at debug level. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char text[512], q[600];
    (void)cls;
    int n = vsnprintf(text, sizeof text, fmt, ap);
    size_t len = n < 0 ? 0 : (size_t)n >= sizeof text ? sizeof text - 1 : (size_t)n;
    while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
        len--;
    RK_DIAG(RK_DIAG_DEBUG, "http", "what=%s", rk_diag_quote(q, sizeof q, text, len));
}

/* The whole file at `path` as a string (caller frees), or NULL with errno. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t len = 0;
    if (!f)
        return NULL;
    FILE *mem = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, mem);
    int bad = ferror(f);
    fclose(f);
    fclose(mem);
    if (bad || len == 0) {
        free(buf);
        errno = bad ? EIO : EINVAL;
        return NULL;
    }
    return buf;
}

int rk_gw_http_start(struct rk_gw_model *m, const struct rk_gw_http_options *o,
                     struct rk_gw_http **out, char *why, size_t why_len)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(o->port);
    *out = NULL;
    if (inet_pton(AF_INET, o->bind, &sa.sin_addr) != 1) {
        snprintf(why, why_len, "--bind %s: not an IPv4 address", o->bind);
        return EINVAL;
    }
    char *cert = NULL, *key = NULL;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_ERROR_LOG;
    if ((o->tls_cert != NULL) != (o->tls_key != NULL)) {
        snprintf(why, why_len, "--tls-cert and --tls-key go together");
        return EINVAL;
    }
    if (o->tls_cert) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            snprintf(why, why_len, "--tls-cert: this libmicrohttpd was built without TLS");
            return ENOTSUP;
        }
        const char *bad = !(cert = slurp(o->tls_cert)) ? o->tls_cert
                          : !(key = slurp(o->tls_key)) ? o->tls_key : NULL;
        if (bad) {
            int e = errno;
            snprintf(why, why_len, "%s: cannot read it: %s", bad, strerror(e));
            free(cert);
            return e;
        }
        flags |= MHD_USE_TLS;
    }
    struct rk_gw_http *h = calloc(1, sizeof *h);
    if (!h)
        abort();
    h->m = m;
    h->o = *o;
    /* libmicrohttpd takes the PEM texts only with TLS on, and keeps the
     * pointers: they live as long as the daemon. */
    h->cert = cert;
    h->key = key;
    h->d = cert ? MHD_start_daemon(flags, o->port, NULL, NULL, route, h, MHD_OPTION_SOCK_ADDR, &sa,
                                   MHD_OPTION_CONNECTION_LIMIT, 512u,
                                   MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                                   MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                                   MHD_OPTION_HTTPS_MEM_CERT, cert, MHD_OPTION_HTTPS_MEM_KEY, key,
                                   MHD_OPTION_END)
                : MHD_start_daemon(flags, o->port, NULL, NULL, route, h, MHD_OPTION_SOCK_ADDR, &sa,
                                   MHD_OPTION_CONNECTION_LIMIT, 512u,
                                   MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                                   MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
    if (!h->d) {
        int e = errno ? errno : EADDRINUSE;
        snprintf(why, why_len, "cannot listen on %s:%u%s: %s", o->bind, o->port,
                 o->tls_cert ? " with TLS (is the key the certificate's?)" : "", strerror(e));
        free(h->cert);
        free(h->key);
        free(h);
        return e;
    }
    *out = h;
    return 0;
}

void rk_gw_http_stop(struct rk_gw_http **hp)
{
    if (!hp || !*hp)
        return;
    MHD_stop_daemon((*hp)->d);
    free((*hp)->cert);
    free((*hp)->key);
    free(*hp);
    *hp = NULL;
}
