/*
 * The live-feed workloads of renkei-bench.
 *
 *   W2  one publisher paced at --w2-rate against a fresh broker (durability
 *       os); N subscribers (unfiltered rk_sub, one receiving thread) started
 *       before it. Latency is publish (the publisher's send) to delivery
 *       (rk_sub_next returning), both CLOCK_MONOTONIC in this process, over
 *       every delivery after each subscriber's first W2_WARMUP events.
 *   W4  --subscribers rk_subs with mixed filters, one receiving thread,
 *       while one publisher ingests --w4-events at full speed (window
 *       --window). Each subscriber's deliveries are checked against the
 *       events its filter selects, exactly and in order; any difference
 *       fails the run. Delivered events/s counts deliveries over first
 *       publish -> last delivery.
 *
 * On a fresh broker with one publisher, event i (0-based) is stored as
 * seq i + 1: rk_pub sends in order on one connection and the broker stores
 * in arrival order. Both workloads rely on it and check it.
 */
#include "bench.h"
#include "rk_sub.h"
#include "rk_topics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define W2_WARMUP 1000
#define STALL_NS (30 * 1000000000ull)  /* no delivery this long: the run failed */
#define START_TIMEOUT_MS 10000

struct follower {
    struct rk_sub *sub;
    char what[96];          /* its filter, for messages */
    char prefixes[8][RK_WIRE_TOPIC_MAX];
    int nprefixes;
    uint64_t expect;        /* events its filter selects */
    uint64_t received;
    uint64_t next_idx;      /* W4: events below this are accounted for */
    uint64_t gaps;          /* filled from the log, read before it is destroyed */
    int wrong;              /* stopped checking after the first error */
};

struct live_run {
    const char *workload;
    struct broker *b;
    struct follower *f;
    unsigned n;
    uint64_t events;
    _Atomic uint64_t *sent_ns;  /* W2: send time of event i */
    const char *const *topics;  /* W4: topic of event i */
    uint64_t *lat_ns;           /* W2: every measured latency */
    uint64_t nlat;
    uint64_t last_delivery_ns;
    atomic_int ready, started, failed, publish_done;
    int rc;
};

static int matches(const struct follower *f, const char *topic)
{
    if (f->nprefixes == 0)
        return 1;
    for (int i = 0; i < f->nprefixes; i++)
        if (strncmp(topic, f->prefixes[i], strlen(f->prefixes[i])) == 0)
            return 1;
    return 0;
}

/* W4: is `seq` the next event this follower's filter selects? */
static void check_w4(struct live_run *lr, struct follower *f, uint64_t seq)
{
    uint64_t idx = seq - 1;
    if (f->wrong)
        return;
    if (seq == 0 || idx >= lr->events || idx < f->next_idx || !matches(f, lr->topics[idx])) {
        complain("W4 subscriber %s: got seq %llu, which it should not (next expected at or "
                 "after %llu)", f->what, (unsigned long long)seq,
                 (unsigned long long)f->next_idx + 1);
        f->wrong = 1;
        return;
    }
    for (uint64_t i = f->next_idx; i < idx; i++)
        if (matches(f, lr->topics[i])) {
            complain("W4 subscriber %s: missed seq %llu (got %llu next)", f->what,
                     (unsigned long long)i + 1, (unsigned long long)seq);
            f->wrong = 1;
            return;
        }
    f->next_idx = idx + 1;
}

static void take(struct live_run *lr, struct follower *f, const struct rk_delivery *d)
{
    uint64_t t = now_ns();
    f->received++;
    lr->last_delivery_ns = t;
    if (lr->topics) {
        check_w4(lr, f, d->seq);
        return;
    }
    /* W2: unfiltered, so dense from the start */
    if (d->seq != f->received && !f->wrong) {
        complain("W2: a subscriber got seq %llu as its event %llu", (unsigned long long)d->seq,
                 (unsigned long long)f->received);
        f->wrong = 1;
    }
    if (d->seq > W2_WARMUP && d->seq <= lr->events)
        lr->lat_ns[lr->nlat++] =
            t - atomic_load_explicit(&lr->sent_ns[d->seq - 1], memory_order_acquire);
}

static int start_followers(struct live_run *lr, void *zctx)
{
    for (unsigned i = 0; i < lr->n; i++) {
        struct follower *f = &lr->f[i];
        if (rk_sub_new_in(zctx, lr->b->feed, lr->b->replay, &f->sub) != 0) {
            complain("%s: subscriber %u: %s", lr->workload, i, strerror(errno));
            return -1;
        }
        for (int k = 0; k < f->nprefixes; k++)
            rk_sub_filter(f->sub, f->prefixes[k]);
        rk_sub_subscribe(f->sub);
    }
    for (unsigned i = 0; i < lr->n; i++)
        if (rk_sub_start(lr->f[i].sub, 0, START_TIMEOUT_MS) != 0) {
            complain("%s: subscriber %u did not start: %s", lr->workload, i,
                     rk_sub_error(lr->f[i].sub));
            return -1;
        }
    return 0;
}

static int all_done(const struct live_run *lr)
{
    for (unsigned i = 0; i < lr->n; i++)
        if (lr->f[i].received < lr->f[i].expect && !lr->f[i].wrong)
            return 0;
    return 1;
}

/* Takes every delivery there is from each readable subscriber. */
static int drain(struct live_run *lr, zmq_pollitem_t *items)
{
    struct rk_delivery d;
    for (unsigned i = 0; i < lr->n; i++) {
        if (!(items[i].revents & ZMQ_POLLIN))
            continue;
        while (rk_sub_next(lr->f[i].sub, 0, &d) == 0)
            take(lr, &lr->f[i], &d);
        if (errno != ETIMEDOUT) {
            complain("%s: subscriber %s: %s", lr->workload, lr->f[i].what,
                     rk_sub_error(lr->f[i].sub));
            return -1;
        }
    }
    return 0;
}

static void *receiver_main(void *arg)
{
    struct live_run *lr = arg;
    void *zctx = zmq_ctx_new();
    zmq_pollitem_t *items = calloc(lr->n, sizeof *items);
    uint64_t quiet_since = 0;

    zmq_ctx_set(zctx, ZMQ_MAX_SOCKETS, (int)(2 * lr->n + 64));
    lr->rc = -1;
    if (!items)
        abort();
    if (start_followers(lr, zctx) != 0)
        goto out;
    for (unsigned i = 0; i < lr->n; i++)
        items[i] = (zmq_pollitem_t){rk_sub_socket(lr->f[i].sub), 0, ZMQ_POLLIN, 0};
    atomic_store(&lr->started, 1);
    atomic_store(&lr->ready, 1);
    while (!interrupted && !atomic_load(&lr->failed)) {
        uint64_t before = lr->last_delivery_ns;
        if (atomic_load(&lr->publish_done) && all_done(lr)) {
            lr->rc = 0;
            break;
        }
        if (zmq_poll(items, (int)lr->n, 100) < 0 && errno != EINTR)
            break;
        if (drain(lr, items) != 0)
            break;
        if (lr->last_delivery_ns != before || !atomic_load(&lr->publish_done))
            quiet_since = now_ns();
        else if (now_ns() - quiet_since > STALL_NS) {
            complain("%s: no delivery for %llu s with subscribers still short", lr->workload,
                     STALL_NS / 1000000000ull);
            break;
        }
    }
out:
    for (unsigned i = 0; i < lr->n; i++) {
        if (lr->f[i].sub)
            lr->f[i].gaps = rk_sub_gaps_filled(lr->f[i].sub);
        rk_sub_destroy(&lr->f[i].sub);
    }
    free(items);
    zmq_ctx_term(zctx);
    atomic_store(&lr->ready, 1); /* also when it failed: the main thread waits on it */
    return NULL;
}

/* Starts the subscribers in their thread, publishes, waits for them. */
static int run_live(struct live_run *lr, const struct ingest_spec *spec, struct result *pub,
                    uint64_t *t_first)
{
    pthread_t thread;
    int rc;

    atomic_init(&lr->ready, 0);
    atomic_init(&lr->started, 0);
    atomic_init(&lr->failed, 0);
    atomic_init(&lr->publish_done, 0);
    if (pthread_create(&thread, NULL, receiver_main, lr) != 0)
        abort();
    while (!atomic_load(&lr->ready))
        sleep_ms(5);
    *t_first = now_ns();
    rc = atomic_load(&lr->started) ? run_ingest(spec, lr->b->ingest, pub) : -1;
    if (rc != 0)
        atomic_store(&lr->failed, 1);
    atomic_store(&lr->publish_done, 1);
    pthread_join(thread, NULL);
    for (unsigned i = 0; i < lr->n; i++)
        if (lr->f[i].wrong || lr->f[i].received != lr->f[i].expect) {
            if (!lr->f[i].wrong)
                complain("%s subscriber %s: %llu of %llu events", lr->workload, lr->f[i].what,
                         (unsigned long long)lr->f[i].received,
                         (unsigned long long)lr->f[i].expect);
            rc = -1;
        }
    return rc ? rc : lr->rc;
}

int measure_w2(struct bench *bx, unsigned subscribers)
{
    const struct opts *o = bx->o;
    struct broker b;
    struct live_run lr = {.workload = "W2", .b = &b, .n = subscribers, .events = o->w2_events};
    struct ingest_spec s = {"W2", "os", 1, o->window, o->w2_events, 0, NULL, NULL, 0,
                            o->w2_rate, NULL, 1};
    struct result pub;
    uint64_t t0, delivered = 0;
    double rss = NAN;
    char a[48], c[48], d[48], e[48];

    fprintf(stderr, PROG ": W2 rate=%llu/s subscribers=%u events=%llu ...\n",
            (unsigned long long)o->w2_rate, subscribers, (unsigned long long)o->w2_events);
    lr.f = calloc(subscribers, sizeof *lr.f);
    lr.sent_ns = calloc(o->w2_events, sizeof *lr.sent_ns);
    lr.lat_ns = calloc(subscribers * (o->w2_events > W2_WARMUP ? o->w2_events - W2_WARMUP : 1),
                       sizeof *lr.lat_ns);
    if (!lr.f || !lr.sent_ns || !lr.lat_ns)
        abort();
    s.sent_ns = lr.sent_ns;
    for (unsigned i = 0; i < subscribers; i++) {
        lr.f[i].expect = o->w2_events;
        snprintf(lr.f[i].what, sizeof lr.f[i].what, "%u (everything)", i);
    }
    int rc = broker_start(&b, bx->broker_bin, bx->tmp, ++bx->brokers, "os");
    if (rc == 0)
        rc = run_live(&lr, &s, &pub, &t0);
    rc = finish_broker(&b, rc, &rss);
    if (rc == 0) {
        uint64_t gaps = 0;
        for (unsigned i = 0; i < subscribers; i++) {
            delivered += lr.f[i].received;
            gaps += lr.f[i].gaps;
        }
        qsort(lr.lat_ns, lr.nlat, sizeof *lr.lat_ns, cmp_u64);
        double p50 = pct_ms(lr.lat_ns, lr.nlat, 0.50), p99 = pct_ms(lr.lat_ns, lr.nlat, 0.99);
        double p999 = pct_ms(lr.lat_ns, lr.nlat, 0.999);
        double max = lr.nlat ? (double)lr.lat_ns[lr.nlat - 1] / 1e6 : NAN;
        if (o->json)
            printf("{\"workload\":\"W2\",\"durability\":\"os\",\"rate\":%llu,\"achieved_rate\":%.0f,"
                   "\"subscribers\":%u,\"events\":%llu,\"delivered\":%llu,\"p50_ms\":%s,"
                   "\"p99_ms\":%s,\"p999_ms\":%s,\"max_ms\":%s,\"gaps_filled\":%llu,"
                   "\"broker_peak_rss_mib\":%.1f}\n",
                   (unsigned long long)o->w2_rate, pub.events_per_s, subscribers,
                   (unsigned long long)o->w2_events, (unsigned long long)delivered,
                   json_num(p50, 3, a), json_num(p99, 3, c), json_num(p999, 3, d),
                   json_num(max, 3, e), (unsigned long long)gaps, rss);
        else
            printf("W2 live durability=os rate=%llu/s (achieved %.0f) subscribers=%u events=%llu "
                   "delivered=%llu: p50=%sms p99=%sms p999=%sms max=%sms gaps_filled=%llu "
                   "broker_rss=%.0fMiB\n",
                   (unsigned long long)o->w2_rate, pub.events_per_s, subscribers,
                   (unsigned long long)o->w2_events, (unsigned long long)delivered,
                   fmt_ms(p50, a), fmt_ms(p99, c), fmt_ms(p999, d), fmt_ms(max, e),
                   (unsigned long long)gaps, rss);
        fflush(stdout);
    }
    free(lr.f);
    free((void *)lr.sent_ns);
    free(lr.lat_ns);
    return rc;
}

/* ---- W4 ---------------------------------------------------------------- */

/* The filter mix; those naming a prefecture or municipality rotate through
 * the publishers' ones, so there are many distinct filters. 431001
 * (Kumamoto city) publishes nothing here: its subscribers must get nothing. */
struct filter_kind {
    const char *family, *type;
    int by_prefecture, by_municipality;
    const char *fixed_municipality;
};

static const struct filter_kind kinds[] = {
    {NULL, NULL, 0, 0, NULL},          {"aid", NULL, 0, 0, NULL},
    {"kpi", NULL, 0, 0, NULL},         {NULL, "aid.request", 0, 0, NULL},
    {NULL, NULL, 1, 0, NULL},          {NULL, NULL, 0, 1, NULL},
    {"aid", NULL, 1, 0, NULL},         {NULL, "kpi.update", 0, 1, NULL},
    {NULL, "aid.offer", 1, 0, NULL},   {NULL, NULL, 0, 0, "431001"},
};
#define NKINDS (sizeof kinds / sizeof kinds[0])

static const char *const w4_munis[] = {"271004", "281000", "272078", "261009", "304280"};
static const char *const w4_prefs[] = {"27", "28", "26", "30"};

static int make_filter(struct follower *f, unsigned i)
{
    const struct filter_kind *k = &kinds[i % NKINDS];
    unsigned turn = i / NKINDS;
    char pp[3] = "", why[160];
    struct rk_topic_query q = {.family = k->family, .type = k->type,
                               .municipality = k->fixed_municipality};
    if (k->by_prefecture)
        q.prefecture = strcpy(pp, w4_prefs[turn % 4]);
    if (k->by_municipality)
        q.municipality = w4_munis[turn % 5];
    f->nprefixes = rk_topics_for(&q, f->prefixes, 8, why, sizeof why);
    if (f->nprefixes < 0) {
        complain("W4: filter %u: %s", i, why);
        return -1;
    }
    snprintf(f->what, sizeof f->what, "%u (family=%s type=%s prefecture=%s municipality=%s)", i,
             q.family ? q.family : "*", q.type ? q.type : "*", q.prefecture ? q.prefecture : "*",
             q.municipality ? q.municipality : "*");
    return 0;
}

int measure_w4(struct bench *bx)
{
    const struct opts *o = bx->o;
    const unsigned n = (unsigned)o->w4_subscribers;
    const uint64_t events = o->w4_events;
    struct broker b;
    struct live_run lr = {.workload = "W4", .b = &b, .n = n, .events = events};
    struct ingest_spec s = {"W4", "os", 1, o->window, events, 0, NULL, NULL, 0, 0, NULL,
                            o->batch};
    struct result pub;
    char **topics = calloc(events, sizeof *topics);
    uint64_t t0 = 0, delivered = 0, empty = 0;
    double rss = NAN;
    int rc = 0;

    fprintf(stderr, PROG ": W4 subscribers=%u events=%llu ...\n", n, (unsigned long long)events);
    lr.f = calloc(n, sizeof *lr.f);
    if (!lr.f || !topics)
        abort();
    for (uint64_t i = 0; i < events; i++) {
        const char *m = event_muni(i);
        topics[i] = malloc(RK_WIRE_TOPIC_MAX);
        if (!topics[i])
            abort();
        snprintf(topics[i], RK_WIRE_TOPIC_MAX, "%s/%.2s/%s", event_type(i), m, m);
    }
    lr.topics = (const char *const *)topics;
    for (unsigned i = 0; i < n && rc == 0; i++) {
        rc = make_filter(&lr.f[i], i);
        for (uint64_t k = 0; k < events; k++)
            lr.f[i].expect += matches(&lr.f[i], topics[k]);
    }
    if (rc == 0)
        rc = broker_start(&b, bx->broker_bin, bx->tmp, ++bx->brokers, "os");
    if (rc == 0) {
        rc = run_live(&lr, &s, &pub, &t0);
        rc = finish_broker(&b, rc, &rss);
    }
    for (unsigned i = 0; i < n; i++) {
        delivered += lr.f[i].received;
        empty += lr.f[i].expect == 0;
    }
    if (rc == 0) {
        double secs = (double)(lr.last_delivery_ns - t0) / 1e9;
        if (o->json)
            printf("{\"workload\":\"W4\",\"durability\":\"os\",\"subscribers\":%u,\"events\":%llu,"
                   "\"ingest_events_per_s\":%.0f,\"delivered\":%llu,\"delivered_per_s\":%.0f,"
                   "\"exact\":true,\"empty_filters\":%llu,\"broker_peak_rss_mib\":%.1f}\n",
                   n, (unsigned long long)events, pub.events_per_s, (unsigned long long)delivered,
                   (double)delivered / secs, (unsigned long long)empty, rss);
        else
            printf("W4 fan-out durability=os subscribers=%u events=%llu (ingest %.0f ev/s): "
                   "delivered=%llu, every subscriber exactly its filter: %.0f deliveries/s "
                   "broker_rss=%.0fMiB\n",
                   n, (unsigned long long)events, pub.events_per_s, (unsigned long long)delivered,
                   (double)delivered / secs, rss);
        fflush(stdout);
    }
    for (uint64_t i = 0; i < events; i++)
        free(topics[i]);
    free(topics);
    free(lr.f);
    return rc;
}
