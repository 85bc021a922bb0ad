/* renkei-sub: follow the live feed, in order and without gaps, and print
 * each matching event as one line. */
#include "rk_render.h"
#include "rk_sub.h"
#include "rk_topics.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_FEED "tcp://127.0.0.1:7702"
#define DEFAULT_REPLAY "tcp://127.0.0.1:7703"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

struct opts {
    const char *feed, *replay;
    enum rk_render_format format;
    uint64_t from;
    long count;          /* stop after this many events; -1 = never */
    long idle_ms;        /* stop after this long without a matching event; -1 = never */
    const char *family, *type, *prefecture, *municipality;
};

static void usage(FILE *out)
{
    fprintf(out,
        "Usage: renkei-sub [OPTION]...\n"
        "Print renkei events as they are stored, one per line, in log order. Events\n"
        "missed on the live feed (late start, slow reader) are fetched from the\n"
        "broker's log, so none is skipped or printed twice.\n"
        "\n"
        "Filters (combined with AND; none = everything):\n"
        "  --family kpi|aid         event family\n"
        "  --type TYPE              e.g. aid.request, kpi.update\n"
        "  --prefecture NN          two-digit prefecture code, e.g. 27 for Osaka\n"
        "  --municipality CODE      six-digit local-government code, e.g. 271004\n"
        "  --topic PREFIX           a raw topic prefix (repeatable, OR-ed; see PROTOCOL.md)\n"
        "\n"
        "Options:\n"
        "  -f, --feed ENDPOINT      broker live feed [%s]\n"
        "  -r, --replay ENDPOINT    broker replay socket, for filling gaps [%s]\n"
        "      --from SEQ           start at sequence SEQ (1 = the whole log) instead of now\n"
        "  -n, --count N            exit after N events\n"
        "      --idle MS            exit after MS milliseconds without a matching event\n"
        "      --format json|table  JSON lines (default) or a table for people\n"
        "  -h, --help               show this help and exit\n"
        "\n"
        "On exit a summary goes to stderr: events printed, gaps filled from the log.\n",
        DEFAULT_FEED, DEFAULT_REPLAY);
}

/* Turns the filter options into topic prefixes "<type>/<pp>/<code>". */
static int add_filters(struct rk_sub *s, const struct opts *o)
{
    struct rk_topic_query q = {o->family, o->type, o->prefecture, o->municipality};
    char topics[8][RK_WIRE_TOPIC_MAX], why[256];
    int n = rk_topics_for(&q, topics, 8, why, sizeof why);
    if (n < 0) {
        fprintf(stderr, "renkei-sub: %s\n", why);
        return -1;
    }
    for (int i = 0; i < n; i++)
        rk_sub_filter(s, topics[i]);
    return 0;
}

static int parse(int argc, char **argv, struct opts *o, struct rk_sub **s)
{
    static const struct option lo[] = {
        {"feed", required_argument, NULL, 'f'}, {"replay", required_argument, NULL, 'r'},
        {"from", required_argument, NULL, 'F'}, {"count", required_argument, NULL, 'n'},
        {"idle", required_argument, NULL, 'I'}, {"format", required_argument, NULL, 'o'},
        {"family", required_argument, NULL, 'a'}, {"type", required_argument, NULL, 'T'},
        {"prefecture", required_argument, NULL, 'p'}, {"municipality", required_argument, NULL, 'm'},
        {"topic", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *topics[64];
    int ntopics = 0, c, fmt;
    char *end;

    while ((c = getopt_long(argc, argv, "f:r:n:h", lo, NULL)) != -1) {
        switch (c) {
        case 'f': o->feed = optarg; break;
        case 'r': o->replay = optarg; break;
        case 'F': o->from = strtoull(optarg, &end, 10);
            if (*end || o->from == 0) { fprintf(stderr, "renkei-sub: --from: must be a sequence number >= 1, got \"%s\"\n", optarg); return 2; }
            break;
        case 'n': o->count = strtol(optarg, &end, 10);
            if (*end || o->count < 1) { fprintf(stderr, "renkei-sub: --count: must be >= 1, got \"%s\"\n", optarg); return 2; }
            break;
        case 'I': o->idle_ms = strtol(optarg, &end, 10);
            if (*end || o->idle_ms < 1) { fprintf(stderr, "renkei-sub: --idle: must be >= 1 ms, got \"%s\"\n", optarg); return 2; }
            break;
        case 'o': fmt = rk_render_parse_format(optarg);
            if (fmt < 0) { fprintf(stderr, "renkei-sub: --format: must be json or table, got \"%s\"\n", optarg); return 2; }
            o->format = (enum rk_render_format)fmt;
            break;
        case 'a': o->family = optarg; break;
        case 'T': o->type = optarg; break;
        case 'p': o->prefecture = optarg; break;
        case 'm': o->municipality = optarg; break;
        case 't': if (ntopics < 64) topics[ntopics++] = optarg; break;
        case 'h': usage(stdout); return 0;
        default: fprintf(stderr, "Try 'renkei-sub --help'.\n"); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "renkei-sub: unexpected argument \"%s\"; try --help\n", argv[optind]);
        return 2;
    }
    if (rk_sub_new(o->feed, o->replay, s) != 0) {
        fprintf(stderr, "renkei-sub: cannot connect to %s / %s: %s\n", o->feed, o->replay, strerror(errno));
        return 2;
    }
    for (int i = 0; i < ntopics; i++)
        rk_sub_filter(*s, topics[i]);
    if (ntopics == 0 && add_filters(*s, o) != 0)
        return 2;
    return -1;
}

int main(int argc, char **argv)
{
    struct opts o = {.feed = DEFAULT_FEED, .replay = DEFAULT_REPLAY, .count = -1, .idle_ms = -1};
    struct rk_sub *s = NULL;
    struct rk_delivery d;
    long printed = 0;
    int rc = parse(argc, argv, &o, &s);
    struct sigaction sa = {.sa_handler = on_signal};

    if (rc >= 0)
        goto out;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    rc = 0;
    if (rk_sub_start(s, o.from, 5000) != 0) {
        fprintf(stderr, "renkei-sub: the broker's replay socket %s did not answer: is renkei-broker running?\n", o.replay);
        rc = 3;
        goto out;
    }
    fprintf(stderr, "renkei-sub: following from seq %llu\n", (unsigned long long)rk_sub_position(s));
    rk_render_header(stdout, o.format);
    fflush(stdout);
    while (!stop_requested && (o.count < 0 || printed < o.count)) {
        /* Short waits keep a signal's stop prompt. */
        int wait = o.idle_ms > 0 && o.idle_ms < 200 ? (int)o.idle_ms : 200;
        long waited = 0;
        int got;
        while (!(got = rk_sub_next(s, wait, &d) == 0) && errno == ETIMEDOUT && !stop_requested) {
            waited += wait;
            if (o.idle_ms > 0 && waited >= o.idle_ms)
                break;
        }
        if (!got) {
            if (errno != ETIMEDOUT) {
                fprintf(stderr, "renkei-sub: %s\n", strerror(errno));
                rc = 1;
            }
            break;
        }
        rk_render_event(stdout, o.format, d.seq, d.recv_ns, d.topic, d.event, d.event_len);
        fflush(stdout);
        printed++;
    }
    fprintf(stderr, "renkei-sub: %ld events, %llu gaps filled from the log (%llu events), next seq %llu\n",
            printed, (unsigned long long)rk_sub_gaps_filled(s),
            (unsigned long long)rk_sub_events_filled(s), (unsigned long long)rk_sub_position(s));
out:
    rk_sub_destroy(&s);
    return rc;
}
