/*
 * renkei-bench - renkei-broker on the standard workload of the peer
 * benchmarks (../shared/bench-peers/README.md), so its numbers sit next to
 * those of NATS JetStream, Redis Streams and Mosquitto.
 *
 *   W1      durable ingest: durability full and os, 1 and 4 publishers
 *           (threads, one rk_pub connection each), each keeping at most
 *           --window publishes in flight. events/s = acknowledged events
 *           over first publish -> last ack; publish->ack latency p50/p99/p999.
 *   W1fill  the load of W3: --replay-events events, 4 publishers,
 *           durability os (printed because it is a W1 measurement too).
 *   W3      replay: one rk_reader reads the loaded log back from seq 1.
 *   W3requester the same, filtered to the aid events of the requests made
 *           in FILTER_PREFECTURE (requester topics, PROTOCOL.md 3.3).
 *   W3filtered  the same, filtered by the broker to one prefecture
 *           (FILTER_PREFECTURE, the topic prefixes of renkei-replay
 *           --prefecture): events/s scanned (the log's records the replay
 *           covered, through the places index or one by one)
 *           and delivered; the count delivered must be the one the event
 *           generator put in that prefecture (20 % of the events).
 *   W3+ingest  the W3 replay again while one publisher ingests at full
 *           speed (window --window) until it ends: the replay's events/s,
 *           and the ingest's events/s and publish->ack latency, to set
 *           beside W3 and W1 durability=os publishers=1 of the same run.
 *
 * Every W1 measurement runs its own renkei-broker process with an empty
 * data directory, on ipc:// endpoints inside one mkdtemp directory: no
 * ports to collide, nothing left from an earlier run. The W3 family shares
 * one broker, loaded by W1fill, in the order W1fill, W3, W3filtered,
 * W3+ingest (the last appends to the log). A broker is stopped with
 * SIGTERM and must exit 0. broker_rss is its peak RSS (VmHWM) over one
 * measurement: read at the end of it, and reset (clear_refs) before each
 * of the W3 family, so that it does not carry the load's peak.
 */
#include "bench.h"
#include "rk_pub.h"
#include "rk_reader.h"
#include "rk_topics.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <msgpack.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READY_TIMEOUT_MS 15000
#define STOP_TIMEOUT_MS 60000   /* SIGTERM commits what arrived: allow a slow disk */
#define EVENTS_MAX 100000000ull /* 16 bytes of timing per event are kept */
#define WINDOW_MAX 100000       /* rk_pub's local queue (ZMQ_SNDHWM) */
#define BATCH_MAX 1024          /* events in one "pubs" (PROTOCOL.md 3.2) */
#define BATCH_BYTES 60000       /* under the broker's default max_message, 65,536 */
#define LOG_READ_MAX (1 << 20)  /* broker logs are a few lines at --log-level info */
#define FILTER_PREFECTURE "28"  /* W3filtered: Hyogo (Kobe), 20 % of the events */
#define INGEST_CAP_FACTOR 10    /* W3+ingest publishes at most this * --replay-events */

volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

__attribute__((format(printf, 1, 2)))
void complain(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, PROG ": %s\n", line);
}

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* snprintf that reports truncation, for paths built from $TMPDIR. */
__attribute__((format(printf, 3, 4)))
static int path_fmt(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* ---- options ------------------------------------------------------------ */


static void usage(FILE *out)
{
    fprintf(out,
        "Usage: " PROG " [OPTION]...\n"
        "Measure renkei-broker on the standard workload of the peer benchmarks\n"
        "(shared/bench-peers): ~220-byte events (the peers': 200), at most 256\n"
        "publishes in flight per publisher, a fresh broker and empty data directory\n"
        "for every measurement.\n"
        "\n"
        "  W1      durable ingest, durability full and os, 1 and 4 publishers (threads,\n"
        "          one connection each): events/s from the first publish to the last\n"
        "          ack, and publish->ack latency p50/p99/p999\n"
        "  W1fill  the load of W3: --replay-events events, 4 publishers, durability os\n"
        "  W3      replay: one reader reads the loaded log back from seq 1: events/s\n"
        "  W3filtered  the same replay filtered by the broker to prefecture " FILTER_PREFECTURE "\n"
        "          (20 %% of the events): events/s scanned and delivered\n"
        "  W3requester  the same replay filtered to the aid events of requests made in\n"
        "          prefecture " FILTER_PREFECTURE " (requester topics: offers from elsewhere too,\n"
        "          15 %%): events/s scanned and delivered\n"
        "  W3+ingest  the W3 replay while one publisher ingests at full speed until\n"
        "          it ends: replay events/s, and ingest events/s and latency, to set\n"
        "          beside W3 and W1 durability=os publishers=1\n"
        "\n"
        "  --window N          most publishes in flight per publisher [256]\n"
        "  --batch N           unpaced publishers send what the window has room for as\n"
        "                      one \"pubs\" message of at most N events (60,000 bytes);\n"
        "                      1 = one \"pub\" per event, as before [64]\n"
        "  W2      live latency: one publisher paced at --w2-rate, 1 and then 100\n"
        "          subscribers (unfiltered, rk_sub, one thread): publish->receive\n"
        "          latency p50/p99/p999/max over every delivery, the first 1,000\n"
        "          events of each subscriber left out (warm-up), as the peers do\n"
        "  W4      fan-out: --subscribers subscribers with mixed filters (family,\n"
        "          type, prefecture, municipality, their mixes, and one that matches\n"
        "          nothing) follow while one publisher ingests --w4-events at full\n"
        "          speed; each must receive exactly what its filter selects, in\n"
        "          order: delivered events/s and broker peak RSS\n"
        "\n"
        "  --events N          W1 events per measurement, split among publishers [200000]\n"
        "  --replay-events N   W3 events loaded and read back [1000000]\n"
        "  --w2-rate N         W2 events/s [20000]\n"
        "  --w2-events N       W2 events per measurement [10 s worth]\n"
        "  --w4-events N       W4 events [200000]\n"
        "  --subscribers N     W4 subscribers [1000]\n"
        "  --only LIST         comma-separated workloads among w1,w2,w3,w4 [all]\n"
        "  --w1 LIST           the W1 cases, DURABILITY:PUBLISHERS among full:1, full:4,\n"
        "                      os:1, os:4 [all four]; e.g. --w1 os:1 for profiling\n"
        "  --json              one JSON object per result line\n"
        "  --broker-bin PATH   renkei-broker to run [the one next to this program]\n"
        "  -h, --help          show this help and exit\n"
        "\n"
        "The brokers run on ipc:// endpoints in a new directory under $TMPDIR (default\n"
        "/tmp), removed at the end; keep it on a real disk, as fsync on tmpfs is free.\n"
        "Results go to stdout, one line per measurement; progress and errors to stderr.\n"
        "broker_rss is the broker's peak resident set (VmHWM) during the measurement;\n"
        "it includes the pages of the LMDB file the broker has mapped. The W3 family\n"
        "shares one broker loaded by W1fill; W3+ingest appends to its log last.\n"
        "With --json the W3filtered and W3requester lines add filter, delivered and\n"
        "delivered_per_s (events and events_per_s count the log's records covered),\n"
        "the W3+ingest line adds ingest_publishers, ingest_window, ingest_events,\n"
        "ingest_events_per_s and ingest_p50_ms/p99_ms/p999_ms. Each measurement keeps\n"
        "16 bytes of timing per event in memory.\n"
        "Exit status: 0; 1 when a broker fails or any event is refused; 2 on bad options.\n");
}

/* Digits only: strtoull would take "-1" as a huge number and " 5" as 5. */
static int parse_count(const char *opt, const char *text, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (text[0] < '0' || text[0] > '9')
        goto bad;
    errno = 0;
    v = strtoull(text, &end, 10);
    if (errno || *end || v < lo || v > hi)
        goto bad;
    *out = v;
    return 0;
bad:
    fprintf(stderr, PROG ": --%s: must be an integer from %llu to %llu, got \"%s\"\n", opt,
            (unsigned long long)lo, (unsigned long long)hi, text);
    return -1;
}

/* "w1,w3": which workloads run. */
static int parse_only(const char *text, struct opts *o)
{
    char buf[64], *save = NULL;
    o->w1 = o->w2 = o->w3 = o->w4 = 0;
    snprintf(buf, sizeof buf, "%s", text);
    for (char *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        int *flag = strcasecmp(w, "w1") == 0 ? &o->w1 : strcasecmp(w, "w2") == 0 ? &o->w2
                  : strcasecmp(w, "w3") == 0 ? &o->w3 : strcasecmp(w, "w4") == 0 ? &o->w4 : NULL;
        if (!flag) {
            fprintf(stderr, PROG ": --only: workloads are w1, w2, w3 and w4, got \"%s\"\n", w);
            return -1;
        }
        *flag = 1;
    }
    return 0;
}

/* "os:1,full:4": which W1 cases run (see w1_cases). */
static int parse_w1(const char *text, struct opts *o)
{
    static const char *const names[] = {"full:1", "full:4", "os:1", "os:4"};
    char buf[64], *save = NULL;
    o->w1_cases = 0;
    snprintf(buf, sizeof buf, "%s", text);
    for (char *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        unsigned i = 0;
        while (i < 4 && strcasecmp(w, names[i]) != 0)
            i++;
        if (i == 4) {
            fprintf(stderr, PROG ": --w1: cases are full:1, full:4, os:1 and os:4, got \"%s\"\n",
                    w);
            return -1;
        }
        o->w1_cases |= 1u << i;
    }
    return 0;
}

/* Returns -1 to go on, or the exit status (0 after --help, 2 on bad options). */
static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"events", required_argument, NULL, 'n'},
        {"replay-events", required_argument, NULL, 'r'},
        {"window", required_argument, NULL, 'w'},
        {"batch", required_argument, NULL, 'B'},
        {"only", required_argument, NULL, 'o'},
        {"w1", required_argument, NULL, '1'},
        {"w2-rate", required_argument, NULL, 'R'},
        {"w2-events", required_argument, NULL, 'E'},
        {"w4-events", required_argument, NULL, 'F'},
        {"subscribers", required_argument, NULL, 'S'},
        {"json", no_argument, NULL, 'j'},
        {"broker-bin", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c, bad = 0;

    *o = (struct opts){.events = 200000, .replay_events = 1000000, .window = 256, .batch = 64,
                       .w2_rate = 20000,
                       .w4_events = 200000, .w4_subscribers = 1000,
                       .w1 = 1, .w2 = 1, .w3 = 1, .w4 = 1, .w1_cases = 15};
    while (!bad && (c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'n': bad = parse_count("events", optarg, 1, EVENTS_MAX, &o->events); break;
        case 'r':
            bad = parse_count("replay-events", optarg, 1, EVENTS_MAX, &o->replay_events);
            break;
        case 'w': bad = parse_count("window", optarg, 1, WINDOW_MAX, &o->window); break;
        case 'B': bad = parse_count("batch", optarg, 1, BATCH_MAX, &o->batch); break;
        case 'o': bad = parse_only(optarg, o); break;
        case '1': bad = parse_w1(optarg, o); break;
        case 'R': bad = parse_count("w2-rate", optarg, 1, 1000000, &o->w2_rate); break;
        case 'E': bad = parse_count("w2-events", optarg, 1, EVENTS_MAX, &o->w2_events); break;
        case 'F': bad = parse_count("w4-events", optarg, 1, EVENTS_MAX, &o->w4_events); break;
        case 'S': bad = parse_count("subscribers", optarg, 1, 10000, &o->w4_subscribers); break;
        case 'j': o->json = 1; break;
        case 'b': o->broker_bin = optarg; break;
        case 'h': usage(stdout); return 0;
        default: bad = 1; break;
        }
    }
    if (!o->w2_events)
        o->w2_events = o->w2_rate * 10;
    if (!bad && optind < argc) {
        fprintf(stderr, PROG ": unexpected argument \"%s\"\n", argv[optind]);
        bad = 1;
    }
    if (bad) {
        fprintf(stderr, "Try '" PROG " --help'.\n");
        return 2;
    }
    return -1;
}

/* ---- events ------------------------------------------------------------- */

/* The publishing local governments (all in proto/data/municipalities.csv,
 * so validation accepts them). */
static const char *const munis[] = {"271004", "281000", "272078", "261009", "304280"};
#define NMUNIS (sizeof munis / sizeof munis[0])

/* Block j of four events (see evgen_make): who asks, who offers. */
static const char *requester(uint64_t j)
{
    return munis[j % NMUNIS];
}

static const char *offerer(uint64_t j)
{
    return munis[(j + 1) % NMUNIS]; /* never the requester: no self-offers */
}

/* The municipality publishing event number `i`. Each of the five publishes
 * a fifth of every kind, so by prefecture: 27 Osaka 40 %, 28 Hyogo 20 %,
 * 26 Kyoto 20 %, 30 Wakayama 20 %. */
const char *event_type(uint64_t i)
{
    static const char *const types[4] = {"kpi.update", "aid.request", "aid.offer", "aid.accept"};
    return types[i % 4];
}

const char *event_muni(uint64_t i)
{
    switch (i % 4) {
    case 0: return munis[i / 4 % NMUNIS]; /* kpi.update */
    case 2: return offerer(i / 4);        /* aid.offer */
    default: return requester(i / 4);     /* aid.request, aid.accept */
    }
}

/* Makes one publisher's events. They come in fours, a KPI update and one
 * support request's way through the lifecycle the broker enforces
 * (PROTOCOL.md 4.3): kpi.update, aid.request, aid.offer, aid.accept, 220
 * bytes a piece on average with every required field: 10 % more than the
 * peers' 200-byte payload, so renkei is not flattered. Ids carry the
 * publisher's number, so publishers never collide. */

static void format_jst(time_t t, char out[32])
{
    struct tm tm;
    time_t jst = t + 9 * 3600;
    gmtime_r(&jst, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%S+09:00", &tm);
}

void evgen_init(struct evgen *g, unsigned publisher)
{
    msgpack_sbuffer_init(&g->buf);
    msgpack_packer_init(&g->pk, &g->buf, msgpack_sbuffer_write);
    g->publisher = publisher;
    format_jst(time(NULL), g->sent_at);
    format_jst(time(NULL) + 86400, g->deadline);
}

void evgen_release(struct evgen *g)
{
    msgpack_sbuffer_destroy(&g->buf);
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_kv(msgpack_packer *pk, const char *key, const char *val)
{
    pack_str(pk, key);
    pack_str(pk, val);
}

static void pack_kv_uint(msgpack_packer *pk, const char *key, uint32_t val)
{
    pack_str(pk, key);
    msgpack_pack_uint32(pk, val);
}

static void pack_kv_double(msgpack_packer *pk, const char *key, double val)
{
    pack_str(pk, key);
    msgpack_pack_double(pk, val);
}

/* A KPI point {value, fy}. */
static void pack_point(msgpack_packer *pk, const char *key, uint32_t value, int fy)
{
    pack_str(pk, key);
    msgpack_pack_map(pk, 2);
    pack_kv_uint(pk, "value", value);
    pack_kv_uint(pk, "fy", (uint32_t)fy);
}

/* The four keys every event starts with; `n` is the map's size. */
static void pack_envelope(struct evgen *g, size_t n, const char *type, const char *muni,
                          uint64_t i)
{
    char event_id[48];
    snprintf(event_id, sizeof event_id, "%s-%u-%06llu", muni, g->publisher,
             (unsigned long long)i);
    msgpack_pack_map(&g->pk, n);
    pack_kv(&g->pk, "type", type);
    pack_kv(&g->pk, "event_id", event_id);
    pack_kv(&g->pk, "municipality", muni);
    pack_kv(&g->pk, "sent_at", g->sent_at);
}

static void make_kpi_update(struct evgen *g, uint64_t i)
{
    msgpack_packer *pk = &g->pk;
    const char *muni = event_muni(i);
    char kpi_id[32];
    int fy = 2020 + (int)(i / 4 % 6);

    snprintf(kpi_id, sizeof kpi_id, "KPI-%s-%03u", muni, (unsigned)(i / 4 % 40 + 1));
    pack_envelope(g, 13, "kpi.update", muni, i);
    pack_kv(pk, "kpi_id", kpi_id);
    pack_kv(pk, "policy_area", "a.b");
    pack_kv(pk, "name", "創業者数");
    pack_kv(pk, "unit", "人");
    pack_kv(pk, "aggregation", "annual");
    pack_kv_uint(pk, "fiscal_year", (uint32_t)fy);
    pack_point(pk, "baseline", 772, 2016);
    pack_point(pk, "target", 1000, 2027);
    pack_point(pk, "current", 780 + (uint32_t)(i % 300), fy);
}

static void make_request(struct evgen *g, uint64_t i, const char *request_id, uint32_t quantity)
{
    msgpack_packer *pk = &g->pk;
    pack_envelope(g, 12, "aid.request", event_muni(i), i);
    pack_kv(pk, "request_id", request_id);
    pack_kv_uint(pk, "version", 1);
    pack_kv(pk, "resource", "water.drinking");
    pack_kv_uint(pk, "quantity", quantity);
    pack_kv(pk, "unit", "L");
    pack_kv(pk, "urgency", "high");
    pack_str(pk, "location");
    msgpack_pack_map(pk, 2);
    pack_kv_double(pk, "lat", 33.4758);
    pack_kv_double(pk, "lon", 135.7837);
    pack_kv(pk, "deadline", g->deadline);
}

/* Request, offer and accept of block i / 4 of this publisher. */
static void make_aid_event(struct evgen *g, uint64_t i)
{
    msgpack_packer *pk = &g->pk;
    char request_id[48], offer_id[48];
    uint32_t quantity = 2000 + (uint32_t)(i / 4 % 50) * 100;

    snprintf(request_id, sizeof request_id, "REQ-%s-%u-%llu", requester(i / 4), g->publisher,
             (unsigned long long)(i / 4));
    snprintf(offer_id, sizeof offer_id, "OFR-%s-%u-%llu", offerer(i / 4), g->publisher,
             (unsigned long long)(i / 4));
    switch (i % 4) {
    case 1:
        make_request(g, i, request_id, quantity);
        break;
    case 2:
        pack_envelope(g, 9, "aid.offer", event_muni(i), i);
        pack_kv(pk, "request_id", request_id);
        pack_kv(pk, "offer_id", offer_id);
        pack_kv(pk, "resource", "water.drinking");
        pack_kv_uint(pk, "quantity", quantity);
        pack_kv(pk, "unit", "L");
        break;
    default:
        pack_envelope(g, 7, "aid.accept", event_muni(i), i);
        pack_kv(pk, "request_id", request_id);
        pack_kv(pk, "offer_id", offer_id);
        pack_kv_uint(pk, "quantity", quantity);
        break;
    }
}

/* Event number `i` (0-based) of this publisher, into g->buf. */
void evgen_make(struct evgen *g, uint64_t i)
{
    msgpack_sbuffer_clear(&g->buf);
    if (i % 4 == 0)
        make_kpi_update(g, i);
    else
        make_aid_event(g, i);
}

/* Says on stderr what is published, so the sizes can be checked against
 * the peers' 200 bytes. */
static void describe_events(void)
{
    static const char *const names[4] = {"kpi.update", "aid.request", "aid.offer", "aid.accept"};
    struct evgen g;
    size_t sum[4] = {0, 0, 0, 0};
    const uint64_t n = 4000;

    evgen_init(&g, 1);
    for (uint64_t i = 0; i < n; i++) {
        evgen_make(&g, i);
        sum[i % 4] += g.buf.size;
    }
    evgen_release(&g);
    fprintf(stderr, PROG ": events: mean %.0f bytes (",
            (double)(sum[0] + sum[1] + sum[2] + sum[3]) / (double)n);
    for (int t = 0; t < 4; t++)
        fprintf(stderr, "%s%s %.0f", t ? ", " : "", names[t], (double)sum[t] / (double)(n / 4));
    fprintf(stderr, ")\n");
}

/* ---- the broker process ------------------------------------------------- */


/* Reads at most LOG_READ_MAX bytes of a file as a string (caller frees), or NULL. */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    char *text;
    size_t n;

    if (!f)
        return NULL;
    text = malloc(LOG_READ_MAX + 1);
    if (!text)
        abort();
    n = fread(text, 1, LOG_READ_MAX, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

static int file_contains(const char *path, const char *needle)
{
    char *text = read_text(path);
    int found = text && strstr(text, needle) != NULL;
    free(text);
    return found;
}

static void broker_dump_log(const struct broker *b)
{
    char *text = read_text(b->log_path);
    fprintf(stderr, "---- broker log %s ----\n%s---- end of broker log ----\n", b->log_path,
            text ? text : "(unreadable)\n");
    free(text);
}

static void describe_status(int st, char *out, size_t cap)
{
    if (WIFEXITED(st))
        snprintf(out, cap, "exit status %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(out, cap, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
        snprintf(out, cap, "wait status %#x", (unsigned)st);
}

/* In the child: becomes the broker, or exits 127. */
static void exec_broker(const struct broker *b, const char *bin, const char *durability, int log_fd)
{
    char *argv[] = {
        (char *)bin, "--ingest", (char *)b->ingest, "--feed", (char *)b->feed,
        "--replay", (char *)b->replay, "--data-dir", (char *)b->data_dir,
        "--durability", (char *)durability, "--log-level", "info", NULL,
    };
    /* If we die, the broker must not run on; in its own process group a
     * Ctrl-C reaches only us, and we stop it in order. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    setpgid(0, 0);
    if (dup2(log_fd, STDOUT_FILENO) < 0 || dup2(log_fd, STDERR_FILENO) < 0)
        _exit(127);
    execv(bin, argv);
    dprintf(STDERR_FILENO, PROG ": cannot run %s: %s\n", bin, strerror(errno));
    _exit(127);
}

/* Polls the log for the ready line; the broker binds before it writes it. */
static int wait_ready(struct broker *b)
{
    char why[128];
    int st;

    for (int waited = 0; waited < READY_TIMEOUT_MS && !interrupted; waited += 10) {
        if (file_contains(b->log_path, "msg=ready"))
            return 0;
        if (waitpid(b->pid, &st, WNOHANG) == b->pid) {
            b->pid = 0;
            describe_status(st, why, sizeof why);
            complain("broker ended before it was ready: %s", why);
            return -1;
        }
        sleep_ms(10);
    }
    if (interrupted)
        complain("interrupted");
    else
        complain("broker not ready within %d s", READY_TIMEOUT_MS / 1000);
    return -1;
}

static int broker_paths(struct broker *b, const char *tmp, int n)
{
    return path_fmt(b->data_dir, sizeof b->data_dir, "%s/data-%d", tmp, n) ||
           path_fmt(b->log_path, sizeof b->log_path, "%s/broker-%d.log", tmp, n) ||
           path_fmt(b->ingest, sizeof b->ingest, "ipc://%s/ingest-%d", tmp, n) ||
           path_fmt(b->feed, sizeof b->feed, "ipc://%s/feed-%d", tmp, n) ||
           path_fmt(b->replay, sizeof b->replay, "ipc://%s/replay-%d", tmp, n);
}

/* Starts broker number `n` with its files in `tmp` and waits until it is
 * ready. On failure the caller dumps its log. */
int broker_start(struct broker *b, const char *bin, const char *tmp, int n,
                        const char *durability)
{
    int fd;
    pid_t pid;

    memset(b, 0, sizeof *b);
    if (broker_paths(b, tmp, n) != 0) {
        complain("temporary path too long under %s", tmp);
        return -1;
    }
    fd = open(b->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        complain("cannot create %s: %s", b->log_path, strerror(errno));
        return -1;
    }
    pid = fork();
    if (pid == 0)
        exec_broker(b, bin, durability, fd);
    close(fd);
    if (pid < 0) {
        complain("cannot fork: %s", strerror(errno));
        return -1;
    }
    b->pid = pid;
    return wait_ready(b);
}

/* Peak resident set of a running process in MiB (VmHWM), or NAN. */
double peak_rss_mib(pid_t pid)
{
    char path[64], line[256];
    double mib = NAN;
    long kib;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    f = fopen(path, "r");
    if (!f)
        return NAN;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1) {
            mib = (double)kib / 1024.0;
            break;
        }
    fclose(f);
    return mib;
}

/* Sets the peak resident set (VmHWM) of a running process back to its
 * current RSS, so the next peak_rss_mib covers what happens from now. */
void reset_peak_rss(pid_t pid)
{
    static int told;
    char path[64];
    int fd;

    snprintf(path, sizeof path, "/proc/%ld/clear_refs", (long)pid);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "5", 1) != 1) {
        if (!told++)
            complain("cannot reset the broker's peak RSS through %s: %s; broker_rss of the "
                     "W3 family includes the load's peak", path, strerror(errno));
    }
    if (fd >= 0)
        close(fd);
}

static int wait_exit(pid_t pid, int timeout_ms, int *st)
{
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        pid_t r = waitpid(pid, st, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            return r == pid ? 0 : -1;
        sleep_ms(10);
    }
    return -1;
}

/* SIGTERM, then the broker must exit 0 (it commits and acks what arrived)
 * with a log free of sanitizer reports. */
static int broker_stop(struct broker *b)
{
    static const char *const marks[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                        "runtime error:"};
    char why[128];
    int st = 0;

    if (!b->pid)
        return -1; /* it ended on its own: already reported */
    kill(b->pid, SIGTERM);
    if (wait_exit(b->pid, STOP_TIMEOUT_MS, &st) != 0) {
        kill(b->pid, SIGKILL);
        waitpid(b->pid, &st, 0);
        b->pid = 0;
        complain("broker did not stop within %d s of SIGTERM; killed", STOP_TIMEOUT_MS / 1000);
        return -1;
    }
    b->pid = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        describe_status(st, why, sizeof why);
        complain("broker ended badly after SIGTERM: %s", why);
        return -1;
    }
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
        if (file_contains(b->log_path, marks[i])) {
            complain("sanitizer report in the broker's log");
            return -1;
        }
    return 0;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0)
        complain("cannot remove %s: %s", path, strerror(errno));
    return 0; /* remove what can be removed */
}

static void remove_tree(const char *path)
{
    if (path[0])
        nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- results ------------------------------------------------------------ */


/* Three significant figures or so, without an exponent. */
const char *fmt_ms(double v, char out[32])
{
    snprintf(out, 32, "%.*f", v < 10 ? 2 : v < 100 ? 1 : 0, v);
    return out;
}

static void print_human(const struct result *r)
{
    char a[32], b[32], c[32];
    const struct result *in = r->ingest;

    if (r->filter)
        printf("%s replay durability=%s events=%llu filter=%s delivered=%llu (%.1f%%): "
               "%.0f ev/s scanned, %.0f ev/s delivered broker_rss=%.0fMiB\n",
               r->workload, r->durability, (unsigned long long)r->events, r->filter,
               (unsigned long long)r->delivered,
               r->events ? 100.0 * (double)r->delivered / (double)r->events : 0.0,
               r->events_per_s, r->delivered_per_s, r->rss_mib);
    else if (in)
        printf("%s replay durability=%s events=%llu: %.0f ev/s; concurrent ingest publishers=%u "
               "window=%llu events=%llu: %.0f ev/s p50=%sms p99=%sms p999=%sms "
               "broker_rss=%.0fMiB\n",
               r->workload, r->durability, (unsigned long long)r->events, r->events_per_s,
               in->publishers, (unsigned long long)in->window, (unsigned long long)in->events,
               in->events_per_s, fmt_ms(in->p50_ms, a), fmt_ms(in->p99_ms, b),
               fmt_ms(in->p999_ms, c), r->rss_mib);
    else if (r->publishers)
        printf("%s ingest durability=%s publishers=%u window=%llu events=%llu: %.0f ev/s "
               "p50=%sms p99=%sms p999=%sms broker_rss=%.0fMiB\n",
               r->workload, r->durability, r->publishers, (unsigned long long)r->window,
               (unsigned long long)r->events, r->events_per_s, fmt_ms(r->p50_ms, a),
               fmt_ms(r->p99_ms, b), fmt_ms(r->p999_ms, c), r->rss_mib);
    else
        printf("%s replay durability=%s events=%llu: %.0f ev/s broker_rss=%.0fMiB\n",
               r->workload, r->durability, (unsigned long long)r->events, r->events_per_s,
               r->rss_mib);
}

/* A JSON number, or null for "not applicable / unknown". */
const char *json_num(double v, int decimals, char out[48])
{
    if (isnan(v))
        snprintf(out, 48, "null");
    else
        snprintf(out, 48, "%.*f", decimals, v);
    return out;
}

static void print_json(const struct result *r)
{
    char pubs[48], win[48], a[48], b[48], c[48], rss[48];
    const struct result *in = r->ingest;

    printf("{\"workload\":\"%s\",\"durability\":\"%s\",\"publishers\":%s,\"window\":%s,"
           "\"events\":%llu,\"events_per_s\":%.0f,\"p50_ms\":%s,\"p99_ms\":%s,\"p999_ms\":%s,"
           "\"broker_peak_rss_mib\":%s",
           r->workload, r->durability,
           json_num(r->publishers ? r->publishers : NAN, 0, pubs),
           json_num(r->publishers ? (double)r->window : NAN, 0, win),
           (unsigned long long)r->events, r->events_per_s, json_num(r->p50_ms, 3, a),
           json_num(r->p99_ms, 3, b), json_num(r->p999_ms, 3, c), json_num(r->rss_mib, 1, rss));
    if (r->filter) /* the filter is ours: nothing to escape */
        printf(",\"filter\":\"%s\",\"delivered\":%llu,\"delivered_per_s\":%.0f", r->filter,
               (unsigned long long)r->delivered, r->delivered_per_s);
    if (in)
        printf(",\"ingest_publishers\":%u,\"ingest_window\":%llu,\"ingest_events\":%llu,"
               "\"ingest_events_per_s\":%.0f,\"ingest_p50_ms\":%s,\"ingest_p99_ms\":%s,"
               "\"ingest_p999_ms\":%s",
               in->publishers, (unsigned long long)in->window, (unsigned long long)in->events,
               in->events_per_s, json_num(in->p50_ms, 3, a), json_num(in->p99_ms, 3, b),
               json_num(in->p999_ms, 3, c));
    printf("}\n");
}

static void print_result(const struct result *r, int json)
{
    if (json)
        print_json(r);
    else
        print_human(r);
    fflush(stdout); /* lines appear as measurements end, also through a pipe */
}

/* ---- W1: publishers ----------------------------------------------------- */

/* Events acknowledged across publishers, for the 10 % progress lines. */
struct progress {
    const char *what;
    uint64_t total;
    atomic_uint_fast64_t done;
};

/* One publisher thread: its connection, its share, what it measured. */
struct publisher {
    struct rk_pub *pub;
    unsigned index;            /* 1-based; in event ids */
    uint64_t n;                /* events it publishes */
    uint64_t window;
    uint64_t batch;            /* most events per message; 1: a pub each */
    unsigned char *batch_buf;  /* BATCH_BYTES: the events of one pubs */
    pthread_barrier_t *start;  /* all publishers start together */
    struct progress *progress; /* NULL: quiet */
    atomic_int *stop;          /* NULL, or once set: send no more, collect what is in flight */
    atomic_uint_fast64_t *outcomes; /* NULL, or counts the replies as they come */
    uint64_t *sent_ns;         /* send time of event i = corr - 1 (rk_pub numbers from 1) */
    uint64_t rate;             /* events/s; 0 = unpaced */
    _Atomic uint64_t *shared_sent_ns; /* NULL, or a copy of sent_ns for subscribers */
    uint64_t *lat_ns;          /* publish -> ack of each acknowledged event */
    uint64_t sent, acked, refused;
    uint64_t first_send_ns, last_ack_ns;
    char refusal[320];         /* the first refusal, "CODE: message" */
    char error[256];           /* why it stopped early; "" = it did not */
};

__attribute__((format(printf, 2, 3)))
static void pub_fail(struct publisher *p, const char *fmt, ...)
{
    va_list ap;
    if (p->error[0])
        return;
    va_start(ap, fmt);
    vsnprintf(p->error, sizeof p->error, fmt, ap);
    va_end(ap);
}

static void progress_add(struct progress *pr, uint64_t k)
{
    if (!pr || !k)
        return;
    uint64_t before = atomic_fetch_add(&pr->done, k), after = before + k;
    if (before * 10 / pr->total != after * 10 / pr->total)
        fprintf(stderr, PROG ": %s: %llu%% (%llu of %llu events)\n", pr->what,
                (unsigned long long)(after * 100 / pr->total), (unsigned long long)after,
                (unsigned long long)pr->total);
}

/* After a send of n events at time t that returned rc, numbered from corr:
 * their send times noted, 0. -1 to stop filling: rk_pub's queue is full
 * (EAGAIN: collect first), or a failure, now in p->error. */
static int note_sent(struct publisher *p, int rc, uint64_t corr, size_t n, uint64_t t)
{
    if (rc != 0) {
        if (errno != EAGAIN)
            pub_fail(p, "send: %s", strerror(errno));
        return -1;
    }
    if (corr != p->sent + 1) {
        pub_fail(p, "rk_pub numbered event %llu as corr %llu; latencies need 1, 2, ...",
                 (unsigned long long)p->sent, (unsigned long long)corr);
        return -1;
    }
    if (p->sent == 0)
        p->first_send_ns = t;
    for (size_t i = 0; i < n; i++)
        p->sent_ns[p->sent++] = t;
    return 0;
}

/* Unpaced, with batches: what the window has room for goes out as pubs
 * messages of at most p->batch events and BATCH_BYTES, never waiting for
 * more. */
static void fill_window_batched(struct publisher *p, struct evgen *g)
{
    const void *ev[BATCH_MAX];
    size_t len[BATCH_MAX];
    while (p->sent < p->n && rk_pub_in_flight(p->pub) < p->window) {
        uint64_t room = p->window - rk_pub_in_flight(p->pub), corr = 0, t;
        size_t n = 0, used = 0;
        while (n < p->batch && n < room && p->sent + n < p->n) {
            evgen_make(g, p->sent + n);
            if (used + g->buf.size > BATCH_BYTES)
                break; /* made again for the next message */
            memcpy(p->batch_buf + used, g->buf.data, g->buf.size);
            ev[n] = p->batch_buf + used;
            len[n++] = g->buf.size;
            used += g->buf.size;
        }
        t = now_ns();
        int rc = rk_pub_send_batch(p->pub, NULL, 0, ev, len, n, &corr);
        if (note_sent(p, rc, corr, n, t))
            return;
    }
}

/* Sends until the window is full or every event is out. */
static void fill_window(struct publisher *p, struct evgen *g)
{
    if (p->batch > 1 && !p->rate && !p->shared_sent_ns) {
        fill_window_batched(p, g);
        return;
    }
    while (p->sent < p->n && rk_pub_in_flight(p->pub) < p->window) {
        uint64_t corr = 0, t = now_ns();
        if (p->rate && p->sent) {
            uint64_t due = p->first_send_ns + p->sent * 1000000000ull / p->rate;
            if (t < due && rk_pub_in_flight(p->pub))
                return; /* collect the acks meanwhile */
            if (t < due) {
                struct timespec ts = {0, (long)(due - t)};
                nanosleep(&ts, NULL);
            }
        }
        evgen_make(g, p->sent);
        t = now_ns();
        /* Before the send: a subscriber may see the event before we return. */
        if (p->shared_sent_ns)
            atomic_store_explicit(&p->shared_sent_ns[p->sent], t, memory_order_release);
        int rc = rk_pub_send(p->pub, g->buf.data, g->buf.size, &corr);
        if (note_sent(p, rc, corr, 1, t))
            return;
    }
}

static void take_result(struct publisher *p, const struct rk_pub_result *res, uint64_t t)
{
    if (res->corr == 0 || res->corr > p->sent || p->acked + p->refused >= p->sent) {
        pub_fail(p, "reply for corr %llu, which is not in flight", (unsigned long long)res->corr);
        return;
    }
    if (!res->ok) {
        if (p->refused++ == 0)
            snprintf(p->refusal, sizeof p->refusal, "%s: %s", res->code, res->message);
        return;
    }
    p->lat_ns[p->acked++] = t - p->sent_ns[res->corr - 1];
    p->last_ack_ns = t;
}

/* Waits for at least one outcome, then takes every one already there. */
static void collect(struct publisher *p)
{
    struct rk_pub_result res;
    uint64_t got = 0;
    int waited = 0;

    if (rk_pub_in_flight(p->pub) == 0) {
        if (!p->rate)
            sleep_ms(1); /* nothing to wait for: the send queue was full */
        return;
    }
    while (!p->error[0]) {
        if (rk_pub_recv(p->pub, got ? 0 : SLICE_MS, &res) == 0) {
            take_result(p, &res, now_ns());
            got++;
        } else if (errno == ETIMEDOUT && got) {
            break;
        } else if (errno != ETIMEDOUT && errno != EINTR) {
            pub_fail(p, "receive: %s", strerror(errno));
        } else if (interrupted) {
            pub_fail(p, "interrupted");
        } else if ((waited += SLICE_MS) >= REPLY_TIMEOUT_MS) {
            pub_fail(p, "no reply from the broker for %d s with %zu publishes in flight",
                     REPLY_TIMEOUT_MS / 1000, rk_pub_in_flight(p->pub));
        }
    }
    progress_add(p->progress, got);
    if (p->outcomes && got)
        atomic_fetch_add(p->outcomes, got);
}

static void *publisher_main(void *arg)
{
    struct publisher *p = arg;
    struct evgen g;

    evgen_init(&g, p->index);
    pthread_barrier_wait(p->start);
    while (!p->error[0] && p->acked + p->refused < p->n) {
        if (interrupted)
            pub_fail(p, "interrupted");
        if (p->stop && atomic_load(p->stop) && p->n > p->sent)
            p->n = p->sent; /* what is sent is what it publishes */
        fill_window(p, &g);
        if (!p->error[0])
            collect(p);
    }
    evgen_release(&g);
    return NULL;
}

/* What one ingest measurement is. */

/* Publisher i's (0-based) share of the events. */
static uint64_t share(const struct ingest_spec *s, unsigned i)
{
    return s->events / s->publishers + (i < s->events % s->publishers);
}

/* How many of the events the publishers of `s` make come from prefecture
 * `pref`: each publisher makes events 0..share-1 (evgen_make). */
static uint64_t events_in_prefecture(const struct ingest_spec *s, const char *pref)
{
    uint64_t total = 0;
    for (unsigned p = 0; p < s->publishers; p++)
        for (uint64_t i = 0, n = share(s, p); i < n; i++)
            total += strncmp(event_muni(i), pref, 2) == 0;
    return total;
}

/* The aid events of the requests made in `pref`: the request, and the
 * offer (by another town) and acceptance of its block of four. */
static uint64_t events_for_requester(const struct ingest_spec *s, const char *pref)
{
    uint64_t total = 0;
    for (unsigned p = 0; p < s->publishers; p++)
        for (uint64_t i = 0, n = share(s, p); i < n; i++)
            total += i % 4 != 0 && strncmp(requester(i / 4), pref, 2) == 0;
    return total;
}

/* Connects the publishers and gives each its share of the events. */
static int publishers_new(struct publisher *pubs, const struct ingest_spec *s,
                          const char *endpoint, pthread_barrier_t *start, struct progress *pr)
{
    for (unsigned i = 0; i < s->publishers; i++) {
        struct publisher *p = &pubs[i];
        p->index = s->id_base + i + 1;
        p->n = share(s, i);
        p->window = s->window;
        p->batch = s->batch ? s->batch : 1;
        if (!(p->batch_buf = malloc(BATCH_BYTES)))
            abort();
        p->start = start;
        p->progress = s->progress ? pr : NULL;
        p->stop = s->stop;
        p->outcomes = s->outcomes;
        p->rate = s->rate;
        p->shared_sent_ns = s->sent_ns;
        p->sent_ns = calloc(p->n ? p->n : 1, sizeof *p->sent_ns);
        p->lat_ns = calloc(p->n ? p->n : 1, sizeof *p->lat_ns);
        if (!p->sent_ns || !p->lat_ns)
            abort();
        if (rk_pub_new(endpoint, &p->pub) != 0) {
            complain("cannot connect a publisher to %s: %s", endpoint, strerror(errno));
            return -1;
        }
    }
    return 0;
}

static void publishers_destroy(struct publisher *pubs, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        rk_pub_destroy(&pubs[i].pub);
        free(pubs[i].batch_buf);
        pubs[i].batch_buf = NULL;
        free(pubs[i].sent_ns);
        free(pubs[i].lat_ns);
    }
}

int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile, as the peers' common.c computes it; in ms. */
double pct_ms(const uint64_t *sorted, uint64_t n, double p)
{
    uint64_t i = (uint64_t)ceil(p * (double)n);
    if (n == 0)
        return NAN;
    i = i ? i - 1 : 0;
    if (i >= n)
        i = n - 1;
    return (double)sorted[i] / 1e6;
}

/* Latency percentiles over every publisher's samples. */
static void latency_summary(const struct publisher *pubs, unsigned n, uint64_t acked,
                            struct result *r)
{
    uint64_t *all = malloc((acked ? acked : 1) * sizeof *all), k = 0;
    if (!all)
        abort();
    for (unsigned i = 0; i < n; i++) {
        memcpy(all + k, pubs[i].lat_ns, pubs[i].acked * sizeof *all);
        k += pubs[i].acked;
    }
    qsort(all, k, sizeof *all, cmp_u64);
    r->p50_ms = pct_ms(all, k, 0.50);
    r->p99_ms = pct_ms(all, k, 0.99);
    r->p999_ms = pct_ms(all, k, 0.999);
    free(all);
}

/* Failures and refusals, then the numbers. events/s counts acknowledged
 * events from the first publish to the last ack, as the peers do. */
static int summarize(const struct publisher *pubs, const struct ingest_spec *s, struct result *r)
{
    uint64_t acked = 0, refused = 0, want = 0, t0 = UINT64_MAX, t1 = 0;
    int rc = 0;

    for (unsigned i = 0; i < s->publishers; i++) {
        const struct publisher *p = &pubs[i];
        if (p->error[0]) {
            complain("%s publisher %u: %s", s->workload, p->index, p->error);
            rc = -1;
        }
        if (p->refused)
            complain("%s publisher %u: %llu of %llu events REFUSED; first: %s", s->workload,
                     p->index, (unsigned long long)p->refused, (unsigned long long)p->n,
                     p->refusal);
        acked += p->acked;
        refused += p->refused;
        want += p->n; /* s->events, or fewer when stopped */
        if (p->sent && p->first_send_ns < t0)
            t0 = p->first_send_ns;
        if (p->last_ack_ns > t1)
            t1 = p->last_ack_ns;
    }
    if (rc || refused)
        return -1;
    if (acked != want || t1 <= t0) {
        complain("%s: %llu of %llu events acknowledged", s->workload, (unsigned long long)acked,
                 (unsigned long long)want);
        return -1;
    }
    *r = (struct result){.workload = s->workload, .durability = s->durability,
                         .publishers = s->publishers, .window = s->window, .events = acked,
                         .events_per_s = (double)acked * 1e9 / (double)(t1 - t0)};
    latency_summary(pubs, s->publishers, acked, r);
    return 0;
}

/* Runs the publishers against `endpoint` until every event has its outcome. */
int run_ingest(const struct ingest_spec *s, const char *endpoint, struct result *r)
{
    struct publisher pubs[MAX_PUBLISHERS];
    pthread_t threads[MAX_PUBLISHERS];
    pthread_barrier_t start;
    struct progress pr = {.what = "loading the W3 log", .total = s->events};
    int rc = -1;

    memset(pubs, 0, sizeof pubs);
    atomic_init(&pr.done, 0);
    pthread_barrier_init(&start, NULL, s->publishers);
    if (publishers_new(pubs, s, endpoint, &start, &pr) != 0)
        goto out;
    for (unsigned i = 0; i < s->publishers; i++)
        if (pthread_create(&threads[i], NULL, publisher_main, &pubs[i]) != 0)
            abort(); /* the others would wait at the barrier for ever */
    for (unsigned i = 0; i < s->publishers; i++)
        pthread_join(threads[i], NULL);
    rc = summarize(pubs, s, r);
out:
    publishers_destroy(pubs, s->publishers);
    pthread_barrier_destroy(&start);
    return rc;
}

/* ---- W3: replay --------------------------------------------------------- */

/* Reads the reader's range to its end. Unfiltered (`dense`) every seq must
 * come, in order; filtered, seqs must increase. *count: records read. */
static int read_all(struct rk_reader *rd, int dense, uint64_t *count)
{
    struct rk_record rec;
    uint64_t last = 0;
    int waited = 0, rc;

    *count = 0;
    while (!interrupted) {
        rc = rk_reader_next(rd, SLICE_MS, &rec);
        if (rc == RK_READER_EOF)
            return 0;
        if (rc == 0) {
            if (dense ? rec.seq != last + 1 : rec.seq <= last) {
                complain("replay returned seq %llu after %llu", (unsigned long long)rec.seq,
                         (unsigned long long)last);
                return -1;
            }
            last = rec.seq;
            ++*count;
            waited = 0;
        } else if (errno != ETIMEDOUT && errno != EINTR) {
            complain("replay: %s", errno == EPROTO ? rk_reader_error(rd) : strerror(errno));
            return -1;
        } else if ((waited += SLICE_MS) >= REPLY_TIMEOUT_MS) {
            complain("replay: no answer from the broker for %d s", REPLY_TIMEOUT_MS / 1000);
            return -1;
        }
    }
    complain("interrupted");
    return -1;
}

/* A reader with its connection made: seq 1 alone is read first, so that
 * connecting is not timed. */
static int reader_connect(const char *endpoint, struct rk_reader **rd)
{
    uint64_t count;

    if (rk_reader_new(endpoint, rd) != 0) {
        complain("cannot connect a reader to %s: %s", endpoint, strerror(errno));
        return -1;
    }
    rk_reader_seek(*rd, 1, 1);
    return read_all(*rd, 1, &count);
}

/* Reads seqs 1..`expect` back (the log may grow meanwhile: W3+ingest). */
static int run_replay(const char *endpoint, uint64_t expect, struct result *r)
{
    struct rk_reader *rd = NULL;
    uint64_t count = 0, t0, t1;
    int rc = -1;

    if (reader_connect(endpoint, &rd) != 0)
        goto out;
    rk_reader_seek(rd, 1, expect);
    t0 = now_ns();
    if (read_all(rd, 1, &count) != 0)
        goto out;
    t1 = now_ns();
    if (count != expect) {
        complain("replay read %llu events, the log holds %llu", (unsigned long long)count,
                 (unsigned long long)expect);
        goto out;
    }
    *r = (struct result){.workload = "W3", .durability = "os", .events = count,
                         .events_per_s = (double)count * 1e9 / (double)(t1 - t0),
                         .p50_ms = NAN, .p99_ms = NAN, .p999_ms = NAN};
    rc = 0;
out:
    rk_reader_destroy(&rd);
    return rc;
}

/* Reads seqs 1..`records` back through the broker's filter `q`: on
 * FILTER_PREFECTURE, the publisher's (renkei-replay --prefecture) for
 * W3filtered, the requester's (--requester-prefecture, requester topics:
 * no places index, a state lookup per aid record) for W3requester;
 * exactly `expect` events must come. */
static int run_replay_filtered(const char *endpoint, uint64_t records, uint64_t expect,
                               const struct rk_topic_query *query, const char *workload,
                               const char *label, struct result *r)
{
    const struct rk_topic_query q = *query;
    struct rk_wire_filter f;
    struct rk_reader *rd = NULL;
    uint64_t count = 0, t0, t1;
    char why[256];
    int n, rc = -1;

    memset(&f, 0, sizeof f);
    n = rk_topics_for(&q, f.topics, RK_WIRE_TOPICS_MAX, why, sizeof why);
    if (n <= 0) {
        complain("prefecture filter: %s", n < 0 ? why : "no topics");
        return -1;
    }
    f.ntopics = (unsigned)n;
    if (reader_connect(endpoint, &rd) != 0)
        goto out;
    rk_reader_seek(rd, 1, records);
    rk_reader_filter(rd, &f);
    t0 = now_ns();
    if (read_all(rd, 0, &count) != 0)
        goto out;
    t1 = now_ns();
    if (count != expect) {
        complain("%s: replay read %llu events of %s; the log holds %llu", workload,
                 (unsigned long long)count, label, (unsigned long long)expect);
        goto out;
    }
    *r = (struct result){.workload = workload, .durability = "os", .events = records,
                         .events_per_s = (double)records * 1e9 / (double)(t1 - t0),
                         .p50_ms = NAN, .p99_ms = NAN, .p999_ms = NAN,
                         .filter = label, .delivered = count,
                         .delivered_per_s = (double)count * 1e9 / (double)(t1 - t0)};
    rc = 0;
out:
    rk_reader_destroy(&rd);
    return rc;
}

/* W3+ingest: a publisher in its own thread, the replay in ours. */
struct ingest_job {
    const struct ingest_spec *spec;
    const char *endpoint;
    struct result r;
    int rc;
    atomic_int finished;
};

static void *ingest_main(void *arg)
{
    struct ingest_job *j = arg;
    j->rc = run_ingest(j->spec, j->endpoint, &j->r);
    atomic_store(&j->finished, 1);
    return NULL;
}

/* Reads seqs 1..`loaded` back while one publisher ingests at full speed:
 * the publisher starts first, the replay once acks come, and the publisher
 * stops when the replay has ended. */
static int run_replay_ingest(const struct broker *b, uint64_t loaded, uint64_t window,
                             uint64_t batch, struct result *r, struct result *in)
{
    atomic_int stop;
    atomic_uint_fast64_t outcomes;
    uint64_t cap = loaded * INGEST_CAP_FACTOR < EVENTS_MAX ? loaded * INGEST_CAP_FACTOR : EVENTS_MAX;
    struct ingest_spec s = {"W3+ingest", "os", 1, window, cap, 0, &stop, &outcomes,
                            MAX_PUBLISHERS, 0, NULL, batch};
    struct ingest_job job = {.spec = &s, .endpoint = b->ingest};
    pthread_t thread;
    int rc = -1;

    atomic_init(&stop, 0);
    atomic_init(&outcomes, 0);
    atomic_init(&job.finished, 0);
    if (pthread_create(&thread, NULL, ingest_main, &job) != 0)
        abort();
    while (!atomic_load(&outcomes) && !atomic_load(&job.finished) && !interrupted)
        sleep_ms(1); /* the publisher gives up itself if the broker says nothing */
    if (atomic_load(&outcomes) && !atomic_load(&job.finished))
        rc = run_replay(b->replay, loaded, r);
    else if (interrupted)
        complain("interrupted");
    atomic_store(&stop, 1);
    pthread_join(thread, NULL);
    if (job.rc != 0)
        return -1;
    if (rc == 0 && job.r.events == cap)
        complain("W3+ingest: the publisher ran out of its %llu events before the replay "
                 "ended; they overlapped only in part", (unsigned long long)cap);
    *in = job.r;
    r->workload = "W3+ingest";
    r->ingest = in;
    return rc;
}

/* ---- measurements ------------------------------------------------------- */


/* Stops the broker (its peak RSS read first into *rss when asked), dumps
 * its log when anything failed, and removes its data. */
int finish_broker(struct broker *b, int rc, double *rss)
{
    if (rss && b->pid)
        *rss = peak_rss_mib(b->pid);
    if (broker_stop(b) != 0)
        rc = -1;
    if (rc)
        broker_dump_log(b);
    remove_tree(b->data_dir);
    return rc;
}

static int measure_w1(struct bench *bx, const char *durability, unsigned publishers)
{
    struct ingest_spec s = {"W1", durability, publishers, bx->o->window, bx->o->events, 0,
                            NULL, NULL, 0, 0, NULL, bx->o->batch};
    struct broker b;
    struct result r;
    double rss = NAN;
    int rc;

    fprintf(stderr, PROG ": W1 durability=%s publishers=%u ...\n", durability, publishers);
    rc = broker_start(&b, bx->broker_bin, bx->tmp, ++bx->brokers, durability);
    if (rc == 0)
        rc = run_ingest(&s, b.ingest, &r);
    rc = finish_broker(&b, rc, &rss);
    if (rc == 0) {
        r.rss_mib = rss;
        print_result(&r, bx->o->json);
    }
    return rc;
}

/* Loads one broker (printed as W1fill), then runs the W3 family on it:
 * W3, W3filtered, and W3+ingest last, since it appends to the log. */
static int measure_w3(struct bench *bx)
{
    struct ingest_spec s = {"W1fill", "os", MAX_PUBLISHERS, bx->o->window,
                            bx->o->replay_events, 1, NULL, NULL, 0, 0, NULL, bx->o->batch};
    static const struct rk_topic_query by_publisher = {.prefecture = FILTER_PREFECTURE},
                                       by_requester = {.requester_prefecture = FILTER_PREFECTURE};
    struct broker b;
    struct result fill, r, in;
    int rc;

    fprintf(stderr, PROG ": W3: loading %llu events (durability=os, publishers=%u) ...\n",
            (unsigned long long)s.events, s.publishers);
    rc = broker_start(&b, bx->broker_bin, bx->tmp, ++bx->brokers, "os");
    if (rc == 0)
        rc = run_ingest(&s, b.ingest, &fill);
    if (rc == 0) {
        fill.rss_mib = peak_rss_mib(b.pid);
        print_result(&fill, bx->o->json);
        fprintf(stderr, PROG ": W3: reading them back ...\n");
        reset_peak_rss(b.pid);
        rc = run_replay(b.replay, s.events, &r);
    }
    if (rc == 0) {
        r.rss_mib = peak_rss_mib(b.pid);
        print_result(&r, bx->o->json);
        fprintf(stderr, PROG ": W3filtered: reading prefecture %s back ...\n", FILTER_PREFECTURE);
        reset_peak_rss(b.pid);
        rc = run_replay_filtered(b.replay, s.events, events_in_prefecture(&s, FILTER_PREFECTURE),
                                 &by_publisher, "W3filtered", "prefecture:" FILTER_PREFECTURE,
                                 &r);
    }
    if (rc == 0) {
        r.rss_mib = peak_rss_mib(b.pid);
        print_result(&r, bx->o->json);
        fprintf(stderr, PROG ": W3requester: reading the aid events of requests of prefecture "
                "%s back ...\n", FILTER_PREFECTURE);
        reset_peak_rss(b.pid);
        rc = run_replay_filtered(b.replay, s.events, events_for_requester(&s, FILTER_PREFECTURE),
                                 &by_requester, "W3requester",
                                 "requester_prefecture:" FILTER_PREFECTURE, &r);
    }
    if (rc == 0) {
        r.rss_mib = peak_rss_mib(b.pid);
        print_result(&r, bx->o->json);
        fprintf(stderr, PROG ": W3+ingest: reading them back while one publisher ingests ...\n");
        reset_peak_rss(b.pid);
        rc = run_replay_ingest(&b, s.events, bx->o->window, bx->o->batch, &r, &in);
    }
    if (rc == 0) {
        r.rss_mib = peak_rss_mib(b.pid);
        print_result(&r, bx->o->json);
    }
    return finish_broker(&b, rc, NULL);
}

static int run_all(struct bench *bx)
{
    static const char *const durabilities[] = {"full", "os"};
    static const unsigned publishers[] = {1, MAX_PUBLISHERS};

    describe_events();
    if (bx->o->w1)
        for (size_t d = 0; d < 2; d++)
            for (size_t p = 0; p < 2; p++)
                if ((bx->o->w1_cases >> (2 * d + p) & 1) &&
                    measure_w1(bx, durabilities[d], publishers[p]) != 0)
                    return -1;
    if (bx->o->w2 && (measure_w2(bx, 1) != 0 || measure_w2(bx, 100) != 0))
        return -1;
    if (bx->o->w3 && measure_w3(bx) != 0)
        return -1;
    if (bx->o->w4 && measure_w4(bx) != 0)
        return -1;
    return 0;
}

/* ---- setup -------------------------------------------------------------- */

/* --broker-bin, or renkei-broker in the directory of our own executable. */
static int find_broker(const char *given, char out[PATH_MAX])
{
    ssize_t n;
    char *slash;

    if (given) {
        if (path_fmt(out, PATH_MAX, "%s", given) != 0)
            return -1;
    } else {
        n = readlink("/proc/self/exe", out, PATH_MAX - 1);
        if (n < 0) {
            complain("cannot read /proc/self/exe: %s; pass --broker-bin", strerror(errno));
            return -1;
        }
        out[n] = '\0';
        slash = strrchr(out, '/');
        if (!slash || path_fmt(slash + 1, PATH_MAX - (size_t)(slash + 1 - out), "renkei-broker"))
            return -1;
    }
    if (access(out, X_OK) != 0) {
        complain("cannot run the broker %s: %s (build renkei-broker, or pass --broker-bin PATH)",
                 out, strerror(errno));
        return -1;
    }
    return 0;
}

/* A fresh directory under $TMPDIR, short enough for ipc:// socket paths. */
static int make_tmpdir(char out[PATH_MAX])
{
    const char *base = getenv("TMPDIR");
    const size_t longest_name = sizeof "/replay-999"; /* of what broker_paths adds */

    if (!base || !base[0])
        base = "/tmp";
    if (path_fmt(out, PATH_MAX, "%s/renkei-bench.XXXXXX", base) != 0 || !mkdtemp(out)) {
        complain("cannot create a temporary directory under %s: %s", base, strerror(errno));
        out[0] = '\0';
        return -1;
    }
    if (strlen(out) + longest_name > sizeof ((struct sockaddr_un *)0)->sun_path) {
        complain("temporary directory %s is too long for ipc:// endpoints; set TMPDIR", out);
        remove_tree(out);
        out[0] = '\0';
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o;
    struct bench bx = {.o = &o};
    struct sigaction sa;
    int rc = parse_args(argc, argv, &o);

    if (rc >= 0)
        return rc;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL); /* stdout piped into head: stop, but clean up */
    struct rlimit rl; /* W4 holds two descriptors per subscriber */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (find_broker(o.broker_bin, bx.broker_bin) != 0 || make_tmpdir(bx.tmp) != 0)
        return 1;
    fprintf(stderr, PROG ": broker %s, files in %s\n", bx.broker_bin, bx.tmp);
    rc = run_all(&bx);
    remove_tree(bx.tmp);
    return rc == 0 ? 0 : 1;
}
