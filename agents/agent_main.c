/* renkei-agent: a municipality publishes KPI updates and disaster-support
 * events to the broker and learns, for each, its sequence number or why it
 * was refused. */
#include "rk_event.h"
#include "rk_json.h"
#include "rk_kpi_csv.h"
#include "rk_pub.h"
#include "rk_time.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_BROKER "tcp://127.0.0.1:7701"
#define DEFAULT_WINDOW 256
#define DEFAULT_TIMEOUT_MS 10000

enum { EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3 };

/* A publish waiting for its outcome: what to report about it. */
struct inflight {
    uint64_t corr;
    long line;
    char event_id[RK_ID_MAX + 1];
};

struct agent {
    const char *broker;
    int json;
    int window;
    int timeout_ms;
    struct rk_pub *pub;
    struct inflight *slots;   /* `window` entries; corr 0 = free */
    unsigned long ok, refused;
    int unreachable;
};

static void usage(FILE *out)
{
    fprintf(out,
        "Usage: renkei-agent [OPTION]... COMMAND [ARG]...\n"
        "Publish a municipality's events to a renkei broker and report, for each,\n"
        "the sequence number it was stored under or why it was refused.\n"
        "\n"
        "Commands:\n"
        "  kpi FILE.csv       KPI updates from a CSV in the KPI-samples layout\n"
        "                     (kpi_id, city_code, policy_area_code, ..., current_fy);\n"
        "                     '-' reads standard input\n"
        "  send [FILE]        events as JSON lines, one event object per line\n"
        "                     (default: standard input)\n"
        "  event JSON...      the events given as JSON objects on the command line\n"
        "\n"
        "Options:\n"
        "  -b, --broker ENDPOINT  broker ingest endpoint [%s]\n"
        "                         (--ingest is the same option, as renkei-broker names it)\n"
        "  -j, --json             report one JSON object per event instead of text\n"
        "  -w, --window N         publishes in flight at once, 1..10000 [%d]\n"
        "  -t, --timeout MS       give up when the broker has not answered for MS\n"
        "                         milliseconds [%d]\n"
        "  -h, --help             show this help and exit\n"
        "\n"
        "Every event is checked here before it is sent; a bad row or line is reported\n"
        "with its line number and the others are still sent.\n"
        "Exit status: 0 all stored, 1 some refused or invalid, 2 usage error,\n"
        "3 the broker did not answer.\n"
        "\n"
        "Example:\n"
        "  renkei-agent event '{\"type\":\"aid.cancel\",\"event_id\":\"304018-0009\",\n"
        "    \"municipality\":\"304018\",\"sent_at\":\"2026-02-17T15:00:00+09:00\",\n"
        "    \"request_id\":\"REQ-304018-001\",\"reason\":\"generators restored\"}'\n",
        DEFAULT_BROKER, DEFAULT_WINDOW, DEFAULT_TIMEOUT_MS);
}

/* ---- reporting */

static void report_ok(struct agent *a, const struct inflight *f, const struct rk_pub_result *r)
{
    char when[RK_TIME_TEXT_MAX];
    rk_time_format(r->recv_ns, when);
    a->ok++;
    if (a->json)
        printf("{\"line\":%ld,\"event_id\":\"%s\",\"ok\":true,\"seq\":%llu,\"recv_time\":\"%s\"}\n",
               f->line, f->event_id, (unsigned long long)r->seq, when);
    else
        printf("stored   line %-4ld seq %-8llu %s\n", f->line, (unsigned long long)r->seq, f->event_id);
}

static void report_refused(struct agent *a, long line, const char *event_id, const char *code,
                           const char *message)
{
    a->refused++;
    if (a->json) {
        json_t *o = json_pack("{s:I,s:s,s:b,s:s,s:s}", "line", (json_int_t)line, "event_id",
                              event_id ? event_id : "", "ok", 0, "code", code, "error", message);
        char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(o);
    } else {
        printf("REFUSED  line %-4ld %s %s: %s\n", line, event_id && *event_id ? event_id : "-",
               code, message);
    }
}

/* ---- the publish window */

static struct inflight *slot_for(struct agent *a, uint64_t corr)
{
    for (int i = 0; i < a->window; i++)
        if (a->slots[i].corr == corr)
            return &a->slots[i];
    return NULL;
}

/* Waits for one outcome. Returns 0, or -1 when the broker is silent. */
static int collect_one(struct agent *a)
{
    struct rk_pub_result r;
    for (;;) {
        if (rk_pub_recv(a->pub, a->timeout_ms, &r) != 0) {
            if (errno == EPROTO)
                continue;
            if (!a->unreachable)
                fprintf(stderr, "renkei-agent: no answer from the broker at %s within %d ms; "
                        "is renkei-broker running there? (%zu events unconfirmed)\n",
                        a->broker, a->timeout_ms, rk_pub_in_flight(a->pub));
            a->unreachable = 1;
            return -1;
        }
        struct inflight *f = slot_for(a, r.corr);
        if (!f)
            continue;   /* an answer to nothing we sent: ignore */
        if (r.ok)
            report_ok(a, f, &r);
        else
            report_refused(a, f->line, f->event_id, r.code, r.message);
        f->corr = 0;
        return 0;
    }
}

/* Validates locally, then sends; reports invalid events without sending. */
static void submit(struct agent *a, long line, const void *event, size_t len)
{
    struct rk_event_info info;
    struct rk_verror err;
    uint64_t corr;

    if (a->unreachable)
        return;
    if (rk_event_validate(event, len, rk_time_now(), &info, &err) != RK_V_OK) {
        report_refused(a, line, NULL, rk_verr_name(err.code), err.message);
        return;
    }
    while (rk_pub_in_flight(a->pub) >= (size_t)a->window)
        if (collect_one(a) != 0)
            return;
    if (rk_pub_send(a->pub, event, len, &corr) != 0) {
        report_refused(a, line, info.event_id, "E_SEND", strerror(errno));
        return;
    }
    struct inflight *f = slot_for(a, 0);
    f->corr = corr;
    f->line = line;
    snprintf(f->event_id, sizeof f->event_id, "%s", info.event_id);
}

static void drain_all(struct agent *a)
{
    while (!a->unreachable && rk_pub_in_flight(a->pub) > 0)
        collect_one(a);
}

/* ---- sources */

static void submit_json_text(struct agent *a, long line, const char *text)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    msgpack_sbuffer sb;
    if (!j) {
        char msg[300];
        snprintf(msg, sizeof msg, "event: not valid JSON at column %d: %s", jerr.column, jerr.text);
        report_refused(a, line, NULL, "E_JSON", msg);
        return;
    }
    msgpack_sbuffer_init(&sb);
    if (!json_is_object(j) || rk_json_to_msgpack(j, &sb) != 0)
        report_refused(a, line, NULL, "E_JSON", "event: must be one JSON object, nested at most 32 deep");
    else
        submit(a, line, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    json_decref(j);
}

static int run_send(struct agent *a, const char *path)
{
    FILE *in = path && strcmp(path, "-") != 0 ? fopen(path, "r") : stdin;
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    long line = 0;

    if (!in) {
        fprintf(stderr, "renkei-agent: cannot open %s: %s\n", path, strerror(errno));
        return EXIT_USAGE;
    }
    while ((n = getline(&buf, &cap, in)) >= 0) {
        line++;
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            buf[--n] = '\0';
        if (n == 0)
            continue;
        submit_json_text(a, line, buf);
    }
    free(buf);
    if (in != stdin)
        fclose(in);
    return 0;
}

static void on_kpi_row(void *arg, long line, const void *event, size_t len, const char *error)
{
    struct agent *a = arg;
    if (error)
        report_refused(a, line, NULL, "E_CSV", error);
    else
        submit(a, line, event, len);
}

static int run_kpi(struct agent *a, const char *path)
{
    FILE *in = strcmp(path, "-") != 0 ? fopen(path, "r") : stdin;
    char why[256];
    if (!in) {
        fprintf(stderr, "renkei-agent: cannot open %s: %s\n", path, strerror(errno));
        return EXIT_USAGE;
    }
    int rc = rk_kpi_csv_read(in, rk_time_now(), on_kpi_row, a, why, sizeof why);
    if (in != stdin)
        fclose(in);
    if (rc != 0) {
        fprintf(stderr, "renkei-agent: %s: %s\n", path, why);
        return EXIT_USAGE;
    }
    return 0;
}

static int parse_options(int argc, char **argv, struct agent *a)
{
    static const struct option opts[] = {
        {"broker", required_argument, NULL, 'b'}, {"ingest", required_argument, NULL, 'b'},
        {"json", no_argument, NULL, 'j'},
        {"window", required_argument, NULL, 'w'}, {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "b:jw:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'b': a->broker = optarg; break;
        case 'j': a->json = 1; break;
        case 'w':
            a->window = (int)strtol(optarg, &end, 10);
            if (*end || a->window < 1 || a->window > 10000) {
                fprintf(stderr, "renkei-agent: --window: must be 1..10000, got \"%s\"\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 't':
            a->timeout_ms = (int)strtol(optarg, &end, 10);
            if (*end || a->timeout_ms < 1) {
                fprintf(stderr, "renkei-agent: --timeout: must be a positive number of ms, got \"%s\"\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'h': usage(stdout); return 0;
        default: fprintf(stderr, "Try 'renkei-agent --help'.\n"); return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "renkei-agent: missing COMMAND (kpi, send or event); try --help\n");
        return EXIT_USAGE;
    }
    return -1;
}

static int dispatch(struct agent *a, int argc, char **argv)
{
    const char *cmd = argv[optind];
    if (strcmp(cmd, "kpi") == 0) {
        if (optind + 2 != argc) {
            fprintf(stderr, "renkei-agent: kpi takes one FILE.csv ('-' for stdin)\n");
            return EXIT_USAGE;
        }
        return run_kpi(a, argv[optind + 1]);
    }
    if (strcmp(cmd, "send") == 0)
        return run_send(a, optind + 1 < argc ? argv[optind + 1] : "-");
    if (strcmp(cmd, "event") == 0) {
        for (int i = optind + 1; i < argc; i++)
            submit_json_text(a, i - optind, argv[i]);
        return 0;
    }
    fprintf(stderr, "renkei-agent: unknown command \"%s\"; expected kpi, send or event\n", cmd);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    struct agent a = {.broker = DEFAULT_BROKER, .window = DEFAULT_WINDOW,
                      .timeout_ms = DEFAULT_TIMEOUT_MS};
    int rc = parse_options(argc, argv, &a);
    if (rc >= 0)
        return rc;
    if (rk_pub_new(a.broker, &a.pub) != 0) {
        fprintf(stderr, "renkei-agent: --broker %s: %s\n", a.broker, strerror(errno));
        return EXIT_USAGE;
    }
    a.slots = calloc((size_t)a.window, sizeof *a.slots);
    if (!a.slots)
        abort();
    rc = dispatch(&a, argc, argv);
    drain_all(&a);
    if (!a.json)
        fprintf(stderr, "renkei-agent: %lu stored, %lu refused\n", a.ok, a.refused);
    rk_pub_destroy(&a.pub);
    free(a.slots);
    if (rc)
        return rc;
    if (a.unreachable)
        return EXIT_UNREACHABLE;
    return a.refused ? EXIT_REFUSED : 0;
}
