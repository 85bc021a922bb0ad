#include "rk_metrics.h"
#include "rk_refusal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every code a publish can be refused with (PROTOCOL.md 4.3, 4.6, 5);
 * anything else counts as "other". */
static const char *const reasons[] = {
    "E_HEADER", "E_COMMAND", "E_FRAMES", "E_STORAGE", "E_PRODUCER", "E_ORDER", "E_NUMBER",
    "E_FORBIDDEN",
    "E_DECODE", "E_TOO_LONG", "E_TYPE", "E_MISSING", "E_UNKNOWN_FIELD", "E_EVENT_TYPE",
    "E_ID", "E_VOCAB", "E_UNIT", "E_RANGE", "E_TEXT", "E_TIME", "E_CODE_FORMAT",
    "E_CODE_PREFECTURE", "E_CHECK_DIGIT", "E_UNKNOWN_MUNICIPALITY", "E_POLICY_AREA",
    "E_DUPLICATE_REQUEST", "E_VERSION", "E_UNKNOWN_REQUEST", "E_NOT_OWNER", "E_STATE",
    "E_RESOURCE_MISMATCH", "E_QUANTITY", "E_SELF_OFFER", "E_DUPLICATE_ID",
    "E_UNKNOWN_OFFER", "E_UNKNOWN_DISPATCH", "E_IN_TRANSIT", "E_INVALID", "E_PRUNED",
    "E_TOO_LARGE",
};
#define NREASONS (sizeof reasons / sizeof reasons[0])

/* Histogram bounds: batch sizes (events) and commit latency (seconds). */
static const double batch_bounds[] = {1, 4, 16, 64, 256, 1024, 4096};
static const double commit_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                       0.01, 0.025, 0.05, 0.1, 0.25, 1};
#define NB (sizeof batch_bounds / sizeof batch_bounds[0])
#define NC (sizeof commit_bounds / sizeof commit_bounds[0])

struct histogram {
    atomic_uint_least64_t bucket[16]; /* per bound, not cumulative; last = +Inf */
    atomic_uint_least64_t count;
    _Atomic double sum;
};

struct rk_metrics {
    atomic_uint_least64_t ingested, duplicates, replayed, batches;
    atomic_uint_least64_t refused[NREASONS + 1];      /* last: other */
    struct histogram batch_size, commit_seconds;
    atomic_uint_least64_t last_seq, map_size, map_used;
    atomic_int_least64_t publishers, subscribers;
    atomic_int writable;
    _Atomic(const char *) unwritable_why;
    atomic_uint_least64_t acl_reloads, acl_reload_failures;
    char log_id[64];    /* set before the HTTP thread starts, then fixed */
    /* Per tenant (names from the ACL, or "-" without one), so that the
     * label's values are bounded by the ACL file; behind `lock`. */
    pthread_mutex_t lock;
    struct tenant {
        char name[72];
        uint64_t published;
        int64_t last_ns;
    } tenants[RK_METRICS_TENANTS];
    size_t ntenants;
    struct MHD_Daemon *httpd;
};

void rk_metrics_log_id(struct rk_metrics *m, const char *log_id)
{
    snprintf(m->log_id, sizeof m->log_id, "%s", log_id);
}

struct rk_metrics *rk_metrics_new(void)
{
    struct rk_metrics *m = calloc(1, sizeof *m);
    if (!m)
        abort();
    atomic_store(&m->writable, 1);
    atomic_store(&m->unwritable_why, "");
    pthread_mutex_init(&m->lock, NULL);
    return m;
}

void rk_metrics_destroy(struct rk_metrics **mp)
{
    if (!mp || !*mp)
        return;
    if ((*mp)->httpd)
        MHD_stop_daemon((*mp)->httpd);
    pthread_mutex_destroy(&(*mp)->lock);
    free(*mp);
    *mp = NULL;
}

static void observe(struct histogram *h, const double *bounds, size_t n, double v)
{
    size_t i = 0;
    while (i < n && v > bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    /* Only the ingest thread writes, so load + store cannot lose an add. */
    atomic_store_explicit(&h->sum, atomic_load_explicit(&h->sum, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

void rk_metrics_batch(struct rk_metrics *m, unsigned events, int64_t commit_ns)
{
    atomic_fetch_add_explicit(&m->ingested, events, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->batches, 1, memory_order_relaxed);
    observe(&m->batch_size, batch_bounds, NB, events);
    observe(&m->commit_seconds, commit_bounds, NC, (double)commit_ns / 1e9);
}

void rk_metrics_refused(struct rk_metrics *m, const char *code)
{
    size_t i = 0;
    while (i < NREASONS && strcmp(reasons[i], code) != 0)
        i++;
    atomic_fetch_add_explicit(&m->refused[i], 1, memory_order_relaxed);
}

void rk_metrics_duplicate(struct rk_metrics *m)
{
    atomic_fetch_add_explicit(&m->duplicates, 1, memory_order_relaxed);
}

void rk_metrics_log(struct rk_metrics *m, uint64_t last_seq, uint64_t map_size,
                    uint64_t map_used, int writable, const char *why)
{
    atomic_store_explicit(&m->last_seq, last_seq, memory_order_relaxed);
    atomic_store_explicit(&m->map_size, map_size, memory_order_relaxed);
    atomic_store_explicit(&m->map_used, map_used, memory_order_relaxed);
    atomic_store(&m->unwritable_why, why ? why : "");
    atomic_store(&m->writable, writable);
}

void rk_metrics_replayed(struct rk_metrics *m, uint64_t events)
{
    atomic_store_explicit(&m->replayed, events, memory_order_relaxed);
}

void rk_metrics_connections(struct rk_metrics *m, int64_t publishers, int64_t subscribers)
{
    atomic_store_explicit(&m->publishers, publishers, memory_order_relaxed);
    atomic_store_explicit(&m->subscribers, subscribers, memory_order_relaxed);
}

void rk_metrics_acl_reload(struct rk_metrics *m, int ok)
{
    atomic_fetch_add(ok ? &m->acl_reloads : &m->acl_reload_failures, 1);
}

static struct tenant *tenant_named(struct rk_metrics *m, const char *name)
{
    for (size_t i = 0; i < m->ntenants; i++)
        if (strcmp(m->tenants[i].name, name) == 0)
            return &m->tenants[i];
    return NULL;
}

void rk_metrics_tenant(struct rk_metrics *m, const char *name)
{
    pthread_mutex_lock(&m->lock);
    if (!tenant_named(m, name) && m->ntenants < RK_METRICS_TENANTS) {
        struct tenant *t = &m->tenants[m->ntenants++];
        snprintf(t->name, sizeof t->name, "%s", name);
    }
    pthread_mutex_unlock(&m->lock);
}

void rk_metrics_published(struct rk_metrics *m, const char *tenant, int64_t recv_ns)
{
    pthread_mutex_lock(&m->lock);
    struct tenant *t = tenant_named(m, tenant && tenant[0] ? tenant : "-");
    if (t) {
        t->published++;
        t->last_ns = recv_ns;
    }
    pthread_mutex_unlock(&m->lock);
}

/* ---- rendering */

struct out {
    char *buf;
    size_t len, used;
};

static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = o->used < o->len ? o->len - o->used : 0;
    int n = vsnprintf(room ? o->buf + o->used : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->used += (size_t)n;
}

static uint64_t get(atomic_uint_least64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

static void put_counter(struct out *o, const char *name, const char *help, uint64_t v)
{
    put(o, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
        (unsigned long long)v);
}

static void put_gauge(struct out *o, const char *name, const char *help, long long v)
{
    put(o, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", name, help, name, name, v);
}

static void put_histogram(struct out *o, const char *name, const char *help, struct histogram *h,
                          const double *bounds, size_t n)
{
    uint64_t cum = 0;
    put(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (size_t i = 0; i < n; i++) {
        cum += get(&h->bucket[i]);
        put(o, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i], (unsigned long long)cum);
    }
    cum += get(&h->bucket[n]);
    put(o, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9g\n%s_count %llu\n", name,
        (unsigned long long)cum, name, atomic_load(&h->sum), name,
        (unsigned long long)get(&h->count));
}

static void put_refusals(struct out *o, struct rk_metrics *m)
{
    put_counter(o, "renkei_connections_refused_total",
                "CURVE handshakes refused by the ACL (key not listed, or not CURVE).",
                rk_refusal_total(RK_REFUSED_CONNECTION));
    put_counter(o, "renkei_subscriptions_refused_total",
                "Live subscriptions refused by the ACL.", rk_refusal_total(RK_REFUSED_SUBSCRIPTION));
    put_counter(o, "renkei_replays_refused_total",
                "Replay, snapshot and state requests refused by the ACL.",
                rk_refusal_total(RK_REFUSED_REPLAY));
    put_counter(o, "renkei_acl_reloads_total", "ACL files loaded on SIGHUP.",
                get(&m->acl_reloads));
    put_counter(o, "renkei_acl_reload_failures_total",
                "ACL reloads that failed (the previous ACL stayed).", get(&m->acl_reload_failures));
}

/* Tenant names come from the ACL file, which rk_acl checks; quoted as
 * Prometheus label values all the same. */
static void put_label(struct out *o, const char *v)
{
    for (; *v; v++)
        put(o, *v == '"' || *v == '\\' ? "\\%c" : *v == '\n' ? "\\n" : "%c", *v);
}

static void put_tenants(struct out *o, struct rk_metrics *m)
{
    static const char *const names[2][3] = {
        {"renkei_tenant_events_published_total", "counter", "Events stored, by publishing tenant."},
        {"renkei_tenant_last_publish_timestamp_seconds", "gauge",
         "When the tenant's latest stored event was received (0: none since the start)."}};
    pthread_mutex_lock(&m->lock);
    for (int k = 0; k < 2; k++) {
        put(o, "# HELP %s %s\n# TYPE %s %s\n", names[k][0], names[k][2], names[k][0],
            names[k][1]);
        for (size_t i = 0; i < m->ntenants; i++) {
            put(o, "%s{tenant=\"", names[k][0]);
            put_label(o, m->tenants[i].name);
            if (k == 0)
                put(o, "\"} %llu\n", (unsigned long long)m->tenants[i].published);
            else
                put(o, "\"} %.3f\n", (double)m->tenants[i].last_ns / 1e9);
        }
    }
    pthread_mutex_unlock(&m->lock);
}

size_t rk_metrics_render(struct rk_metrics *m, char *buf, size_t len)
{
    struct out o = {buf, len, 0};
    if (len)
        buf[0] = '\0';
    put_counter(&o, "renkei_events_ingested_total", "Events stored and acknowledged.",
                get(&m->ingested));
    put(&o, "# HELP renkei_events_rejected_total Publishes refused, by reason (wire error code).\n"
            "# TYPE renkei_events_rejected_total counter\n");
    for (size_t i = 0; i <= NREASONS; i++)
        put(&o, "renkei_events_rejected_total{reason=\"%s\"} %llu\n",
            i < NREASONS ? reasons[i] : "other", (unsigned long long)get(&m->refused[i]));
    put_counter(&o, "renkei_events_duplicate_total",
                "Retried publishes answered with their original acknowledgement.",
                get(&m->duplicates));
    put_counter(&o, "renkei_events_replayed_total", "Events sent by replay and snapshot.",
                get(&m->replayed));
    put_histogram(&o, "renkei_ingest_batch_events", "Events per group commit.", &m->batch_size,
                  batch_bounds, NB);
    put_histogram(&o, "renkei_commit_seconds", "Time of one group commit, fsync included.",
                  &m->commit_seconds, commit_bounds, NC);
    put_gauge(&o, "renkei_log_last_seq", "Sequence number of the newest stored event.",
              (long long)get(&m->last_seq));
    put(&o, "# HELP renkei_log_info The identity of the log (new after a restore or a copy).\n"
            "# TYPE renkei_log_info gauge\nrenkei_log_info{log_id=\"%s\"} 1\n", m->log_id);
    put_gauge(&o, "renkei_log_map_size_bytes", "Size of the LMDB map (grows when needed).",
              (long long)get(&m->map_size));
    put_gauge(&o, "renkei_log_map_used_bytes", "Bytes of the LMDB map in use.",
              (long long)get(&m->map_used));
    put_gauge(&o, "renkei_log_writable", "1 while the log takes writes, 0 after a failed commit.",
              atomic_load(&m->writable));
    put_gauge(&o, "renkei_publisher_connections", "Connections on the ingest socket.",
              (long long)atomic_load(&m->publishers));
    put_gauge(&o, "renkei_subscriber_connections", "Connections on the live feed socket.",
              (long long)atomic_load(&m->subscribers));
    put_refusals(&o, m);
    put_tenants(&o, m);
    put(&o, "# HELP renkei_build_info The broker's version.\n# TYPE renkei_build_info gauge\n"
            "renkei_build_info{version=\"%s\"} 1\n", RK_VERSION);
    return o.used;
}

/* ---- HTTP */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned status, const char *s)
{
    char *body = strdup(s);
    if (!body)
        abort();
    return reply(c, status, "text/plain; charset=utf-8", body, strlen(body));
}

static enum MHD_Result serve_metrics(struct rk_metrics *m, struct MHD_Connection *c)
{
    size_t need = rk_metrics_render(m, NULL, 0) + 256; /* counters may grow meanwhile */
    char *body = malloc(need);
    if (!body)
        abort();
    size_t len = rk_metrics_render(m, body, need);
    if (len >= need)
        len = need - 1;
    return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **state)
{
    struct rk_metrics *m = cls;
    char msg[512];
    (void)version;
    (void)upload_data;
    (void)upload_size;
    (void)state;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET\n");
    if (strcmp(url, "/metrics") == 0)
        return serve_metrics(m, c);
    if (strcmp(url, "/healthz") == 0) {
        if (atomic_load(&m->writable))
            return text(c, MHD_HTTP_OK, "ok\n");
        snprintf(msg, sizeof msg, "log not writable: %s\n", atomic_load(&m->unwritable_why));
        return text(c, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
    }
    return text(c, MHD_HTTP_NOT_FOUND, "renkei-broker serves /metrics and /healthz\n");
}

/* "PORT" or "HOST:PORT" (IPv4) into sa. */
static int parse_addr(const char *addr, struct sockaddr_in *sa)
{
    char host[64] = "127.0.0.1";
    const char *colon = strrchr(addr, ':'), *port = colon ? colon + 1 : addr;
    char *end;
    long p = strtol(port, &end, 10);
    if (*port == '\0' || *end || p < 1 || p > 65535)
        return -1;
    if (colon) {
        size_t n = (size_t)(colon - addr);
        if (n == 0 || n >= sizeof host)
            return -1;
        memcpy(host, addr, n);
        host[n] = '\0';
    }
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)p);
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

int rk_metrics_serve(struct rk_metrics *m, const char *addr, char *why, size_t why_len)
{
    struct sockaddr_in sa;
    if (parse_addr(addr, &sa) != 0) {
        snprintf(why, why_len, "http \"%s\": must be PORT or IPV4:PORT, e.g. 9701 or "
                 "0.0.0.0:9701", addr);
        return -1;
    }
    m->httpd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL,
                                NULL, on_request, m, MHD_OPTION_SOCK_ADDR, &sa,
                                MHD_OPTION_CONNECTION_LIMIT, 64u,
                                MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (!m->httpd) {
        snprintf(why, why_len, "http %s: cannot listen (%s)", addr,
                 errno ? strerror(errno) : "address in use?");
        return -1;
    }
    return 0;
}
