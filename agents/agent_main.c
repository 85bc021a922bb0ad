/* renkei-agent: a municipality publishes KPI updates and disaster-support
 * events to the broker and learns, for each, its sequence number or why it
 * was refused. */
#include "rk_agentconf.h"
#include "rk_err.h"
#include "rk_event.h"
#include "rk_forward.h"
#include "rk_json.h"
#include "rk_kpi_csv.h"
#include "rk_outbox.h"
#include "rk_probe.h"
#include "rk_pub.h"
#include "rk_render.h"
#include "rk_time.h"
#include "rk_toolopt.h"
#include "rk_wire.h" /* RK_DEFAULT_INGEST */

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define DEFAULT_WINDOW 256
#define DEFAULT_TIMEOUT_MS 10000

static volatile sig_atomic_t stop_requested; /* SIGTERM or SIGINT in run --spool */

enum { EXIT_REFUSED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3, EXIT_OUTBOX = 4 };

/* A publish without an outbox waiting for its outcome: what to report
 * about it. */
struct inflight {
    uint64_t corr;
    long line;
    char event_id[RK_ID_MAX + 1];
};

/* Events read but not yet in the outbox: added together, one fsync. */
struct staged {
    msgpack_sbuffer bytes[1];      /* the events back to back */
    size_t *lens;
    long *lines;
    size_t n, cap;
};

struct agent {
    const char *broker;
    int json;
    int window;
    int timeout_ms;
    struct rk_client_options client; /* --broker-key, --key */
    struct rk_pub *pub;            /* without --outbox */
    struct inflight *slots;        /* its `window` entries; corr 0 = free */
    unsigned long ok, refused, held;
    int all;                       /* resend / discard --all */
    int unreachable;
    /* store and forward (--outbox DIR) */
    const char *outbox_dir;
    struct rk_forward *fw;
    enum rk_forward_state fw_state; /* what the last pump saw */
    int persist;                   /* run: retry forever instead of giving up */
    int input_done;                /* the input has ended: held events wait for the next run */
    struct staged stage;
    uint64_t run_first;            /* the first number this run added; 0 = none yet */
    long *run_lines;               /* line of number run_first + i */
    size_t run_count;
    const char *spool_dir;         /* run --spool DIR */
    const char *spool_file;        /* the spool file being read, for reports */
    int spool_kept;                /* files the last scan had to leave: slows the next */
    int said_silent;               /* the probe's word on a silent broker is said */
    const char *metrics_file;      /* --metrics-file PATH: node_exporter textfile */
    int64_t metrics_written_ns;
};

static void usage(FILE *out)
{
    fprintf(out,
        "Usage: renkei-agent [OPTION]... COMMAND [ARG]...\n"
        "Publish a municipality's events to a renkei broker and report, for each,\n"
        "the sequence number it was stored under or why it was refused.\n"
        "\n"
        "Commands:\n"
        "  kpi FILE           KPI updates from a CSV in the KPI-samples layout\n"
        "                     (kpi_id, city_code, policy_area_code, ..., current_fy),\n"
        "                     or from JSON lines with those names as keys (a file\n"
        "                     whose first character is '{'); '-' reads standard input\n"
        "  send [FILE]        events as JSON lines, one event object per line\n"
        "                     (default: standard input)\n"
        "  event JSON...      the events given as JSON objects on the command line\n"
        "  run                (with --outbox) a daemon: JSON lines from standard input\n"
        "                     for as long as it is open; waits out a broker that is\n"
        "                     down, for ever; exits 0 when stdin closed and all is sent.\n"
        "                     With --spool DIR: takes *.jsonl files from DIR instead (in\n"
        "                     name order; each file is in the outbox, whole, before it\n"
        "                     is removed) until SIGTERM; write a file under another\n"
        "                     name and rename it in when it is complete\n"
        "  flush              (with --outbox) send what waits in the outbox\n"
        "  status             (with --outbox) what waits: pending, held (next try, last\n"
        "                     refusal) and rejected events, and the last acknowledgement\n"
        "  rejected           (with --outbox) the dead letters, one JSON line each: outbox\n"
        "                     number, producer and its number, code, message, refused_at\n"
        "                     (local time) and the event\n"
        "  resend NUMBER...|--all  (with --outbox) dead letters back to pending: the\n"
        "                     running agent, or the next run or flush, sends them again\n"
        "  discard NUMBER...|--all (with --outbox) delete dead letters for good\n"
        "\n"
        "Options:\n"
        "  -b, --broker ENDPOINT  broker ingest endpoint [%s]\n"
        "                         (--ingest is the same option, as renkei-broker names it)\n"
        "  -o, --outbox DIR       store and forward: every event is written (fsync) to\n"
        "                         an outbox in DIR before it is sent, and leaves it when\n"
        "                         the broker has answered. Events the broker did not\n"
        "                         answer wait there, across restarts of either side,\n"
        "                         and go out first, in order, next time; numbered under\n"
        "                         the outbox's producer id, so none is stored twice.\n"
        "                         A refusal that may pass later (E_FORBIDDEN, E_STORAGE,\n"
        "                         a lifecycle code such as E_UNKNOWN_REQUEST) holds the\n"
        "                         event: it stays and is tried again, 1 s later, then at\n"
        "                         most 5 min apart (lifecycle codes for a day). Any other\n"
        "                         refusal makes it a dead letter: kept, never deleted\n"
        "                         but by discard (see rejected, resend, discard)\n"
        "      --all              with resend or discard: every dead letter\n"
        "  -s, --spool DIR        with run: the directory to take event files from\n"
        "  -j, --json             report one JSON object per event instead of text\n"
        "  -w, --window N         publishes in flight at once, 1..10000 [%d]\n"
        "  -t, --timeout MS       give up when the broker has not answered for MS\n"
        "                         milliseconds [%d]\n"
        RK_TOOLOPT_KEYS_HELP
        "      --encoding ENC     kpi: the file's encoding, auto, utf-8 or cp932\n"
        "                         (Shift_JIS, Excel's \"CSV\" on Japanese Windows) [auto:\n"
        "                         UTF-8 with or without a BOM, else CP932 if it is]\n"
        "      --metrics-file PATH  (with --outbox) keep PATH, a node_exporter textfile\n"
        "                         (Prometheus text), up to date: outbox depth, held and\n"
        "                         rejected events, acknowledged and refused totals, the\n"
        "                         last acknowledgement's time; rewritten (atomically)\n"
        "                         at most once a second and at exit\n"
        "      --config FILE      read broker, broker_key, key, outbox, spool, timeout,\n"
        "                         window and metrics_file from the [agent] section of\n"
        "                         FILE (INI; renkei-agent(1)); options given here win\n"
        "                         over it\n"
        "  -h, --help             show this help and exit\n"
        "      --version          print the version and exit\n"
        "\n"
        "Every event is checked here before it is sent; a bad row or line is reported\n"
        "with its line number and the others are still sent.\n"
        "Exit status: 0 all stored, 1 some refused or invalid, 2 usage error,\n"
        "3 the broker did not answer or held events (with --outbox: the events wait\n"
        "there),\n"
        "4 the outbox cannot be opened or written.\n"
        "\n"
        "Example:\n"
        "  renkei-agent event '{\"type\":\"aid.cancel\",\"event_id\":\"304018-0009\",\n"
        "    \"municipality\":\"304018\",\"sent_at\":\"2026-02-17T15:00:00+09:00\",\n"
        "    \"request_id\":\"REQ-304018-001\",\"reason\":\"generators restored\"}'\n",
        RK_DEFAULT_INGEST, DEFAULT_WINDOW, DEFAULT_TIMEOUT_MS);
}

/* ---- reporting */

static struct rk_agentconf conf;   /* --config FILE; freed by main */
static const char *conf_path;      /* that FILE, or NULL */

/* The command that sends what waits, with this run's endpoint and keys, so
 * that it works as printed. */
static const char *flush_command(const struct agent *a, char *buf, size_t len)
{
    const char *w[12];
    int n = 0;
    w[n++] = "renkei-agent";
    if (conf_path) {
        w[n++] = "--config";
        w[n++] = conf_path;
    }
    if (!conf_path || (conf.broker && strcmp(a->broker, conf.broker) != 0) ||
        (!conf.broker && strcmp(a->broker, RK_DEFAULT_INGEST) != 0)) {
        w[n++] = "--broker";
        w[n++] = a->broker;
    }
    if (a->client.broker_key && (!conf_path || a->client.broker_key != conf.broker_key)) {
        w[n++] = "--broker-key";
        w[n++] = a->client.broker_key;
        w[n++] = "--key";
        w[n++] = a->client.client_key;
    }
    w[n++] = "--outbox";
    w[n++] = a->outbox_dir;
    w[n++] = "flush";
    w[n] = NULL;
    return rk_toolopt_shell_line(buf, len, w);
}

/* The kpi command: each row is published as the one event of its own
 * producer (rk_kpi_row_producer), so the broker answers a row it already
 * has with its first acknowledgement, received before this run. */
static struct {
    int active;
    char producer[RK_KPI_PRODUCER_MAX + 1];
    int64_t started_ns;
    unsigned long again;          /* rows the broker had before this run */
    const char *encoding;         /* --encoding */
} kpi;

static const char *kpi_again(int64_t recv_ns)
{
    if (!kpi.active || recv_ns >= kpi.started_ns)
        return NULL;
    kpi.again++;
    return "stored before";
}

/* `number`: its outbox number, 0 without an outbox; `line` 0: an event an
 * earlier run left in the outbox. */
static void report_ok(struct agent *a, long line, uint64_t number, const char *event_id,
                      uint64_t seq, int64_t recv_ns)
{
    char when[RK_TIME_TEXT_MAX];
    const char *again = kpi_again(recv_ns);
    rk_time_format(recv_ns, when);
    a->ok++;
    if (again && !a->json)
        printf("already  line %-4ld seq %-8llu %s (%s; nothing new)\n", line,
               (unsigned long long)seq, event_id, again);
    else if (again)
        printf("{\"line\":%ld,\"event_id\":\"%s\",\"ok\":true,\"seq\":%llu,\"recv_time\":\"%s\","
               "\"already_stored\":true}\n", line, event_id, (unsigned long long)seq, when);
    else if (a->json && number)
        printf("{\"line\":%ld,\"event_id\":\"%s\",\"ok\":true,\"seq\":%llu,\"recv_time\":\"%s\","
               "\"outbox_number\":%llu}\n", line, event_id, (unsigned long long)seq, when,
               (unsigned long long)number);
    else if (a->json)
        printf("{\"line\":%ld,\"event_id\":\"%s\",\"ok\":true,\"seq\":%llu,\"recv_time\":\"%s\"}\n",
               line, event_id, (unsigned long long)seq, when);
    else if (line == 0)
        printf("stored   outbox #%-6llu seq %-8llu %s\n", (unsigned long long)number,
               (unsigned long long)seq, event_id);
    else
        printf("stored   line %-4ld seq %-8llu %s\n", line, (unsigned long long)seq, event_id);
}

static void report_refused(struct agent *a, long line, const char *event_id, const char *code,
                           const char *message)
{
    a->refused++;
    if (a->json) {
        json_t *o = json_pack("{s:I,s:s,s:b,s:s,s:s}", "line", (json_int_t)line, "event_id",
                              event_id ? event_id : "", "ok", 0, "code", code, "error", message);
        if (o && a->spool_file)
            json_object_set_new(o, "file", json_string(a->spool_file));
        char *s = o ? json_dumps(o, RK_RENDER_JSON_FLAGS) : NULL;
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(o);
    } else {
        printf("REFUSED  %s%sline %-4ld %s %s: %s\n", a->spool_file ? a->spool_file : "",
               a->spool_file ? " " : "", line, event_id && *event_id ? event_id : "-", code,
               message);
    }
}

/* `ns` as local time, ISO 8601 with the offset: 2026-02-17T15:00:00+09:00. */
static void local_time(int64_t ns, char *out, size_t cap)
{
    time_t t = (time_t)(ns / RK_NS_PER_SEC);
    struct tm tm;
    char z[8];
    if (!localtime_r(&t, &tm) || !strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm) ||
        !strftime(z, sizeof z, "%z", &tm) || strlen(z) != 5) {
        snprintf(out, cap, "?");
        return;
    }
    size_t n = strlen(out);
    snprintf(out + n, cap - n, "%.3s:%s", z, z + 3);
}

/* One compact JSON line on stdout; takes the reference. */
static void print_json(struct agent *a, json_t *o)
{
    char *s;
    if (o && a->spool_file)
        json_object_set_new(o, "file", json_string(a->spool_file));
    s = o ? json_dumps(o, RK_RENDER_JSON_FLAGS) : NULL;
    if (s)
        printf("%s\n", s);
    free(s);
    json_decref(o);
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
            if (!a->unreachable) {
                char why[1024];
                rk_probe(a->broker, ZMQ_DEALER, &a->client, "--broker", a->timeout_ms, 2000,
                         why, sizeof why);
                fprintf(stderr, "renkei-agent: %s (%zu events unconfirmed)\n", why,
                        rk_pub_in_flight(a->pub));
            }
            a->unreachable = 1;
            return -1;
        }
        struct inflight *f = slot_for(a, r.corr);
        if (!f)
            continue;   /* an answer to nothing we sent: ignore */
        if (r.ok)
            report_ok(a, f->line, 0, f->event_id, r.seq, r.recv_ns);
        else
            report_refused(a, f->line, f->event_id, r.code, r.message);
        f->corr = 0;
        return 0;
    }
}

static void outbox_submit(struct agent *a, long line, const void *event, size_t len);
static void write_metrics(struct agent *a, int force);

/* Validates locally, then sends; reports invalid events without sending. */
static void submit(struct agent *a, long line, const void *event, size_t len)
{
    struct rk_event_info info;
    struct rk_verror err;
    uint64_t corr;

    if (a->unreachable && !a->fw)
        return;
    if (rk_event_validate(event, len, rk_time_now(), &info, &err) != RK_V_OK) {
        report_refused(a, line, NULL, rk_verr_name(err.code), err.message);
        return;
    }
    if (a->fw) {
        /* Kept even when the broker is unreachable: it goes out later. */
        outbox_submit(a, line, event, len);
        return;
    }
    while (rk_pub_in_flight(a->pub) >= (size_t)a->window)
        if (collect_one(a) != 0)
            return;
    char row_producer[RK_KPI_PRODUCER_MAX + 1];
    if (kpi.active)
        rk_kpi_row_producer(kpi.producer, info.event_id, row_producer);
    if ((kpi.active ? rk_pub_send_numbered(a->pub, row_producer, 1, event, len, &corr)
                    : rk_pub_send(a->pub, event, len, &corr)) != 0) {
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


/* ---- store and forward: every event goes through the outbox (rk_forward) */

static void outbox_failed(struct agent *a, const char *what, int rc)
{
    fprintf(stderr, "renkei-agent: outbox %s: %s: %s\n", a->outbox_dir, what, rk_strerror(rc));
    exit(EXIT_OUTBOX);
}

static void stage(struct agent *a, long line, const void *event, size_t len)
{
    struct staged *st = &a->stage;
    size_t i = st->n++;
    if (st->n > st->cap) { /* a spool file is staged whole: grow by doubling */
        st->cap = st->cap ? 2 * st->cap : 256;
        st->lens = realloc(st->lens, st->cap * sizeof *st->lens);
        st->lines = realloc(st->lines, st->cap * sizeof *st->lines);
        if (!st->lens || !st->lines)
            abort();
    }
    st->lens[i] = len;
    st->lines[i] = line;
    msgpack_sbuffer_write(st->bytes, event, len);
}

static void stage_clear(struct staged *st)
{
    st->n = 0;
    msgpack_sbuffer_clear(st->bytes);
}

/* Remembers the input lines of the events just numbered from `first`. */
static void remember_lines(struct agent *a, uint64_t first, const long *lines, size_t n)
{
    if (!a->run_first)
        a->run_first = first;
    a->run_lines = realloc(a->run_lines, (first - a->run_first + n) * sizeof *a->run_lines);
    if (!a->run_lines)
        abort();
    memcpy(a->run_lines + (first - a->run_first), lines, n * sizeof *lines);
    a->run_count = first - a->run_first + n;
}

/* Makes the staged events durable in the outbox, in one transaction that
 * also records `tag` when not NULL. The stage is emptied either way: on an
 * error the caller still has the events' source (a spool file), or gives
 * up (stage_flush). */
static int stage_store(struct agent *a, const char *tag)
{
    struct staged *st = &a->stage;
    const void **events;
    const char *p = st->bytes->data;
    uint64_t first;
    int rc;

    if (!st->n && !tag)
        return RK_OK;
    events = malloc((st->n ? st->n : 1) * sizeof *events);
    if (!events)
        abort();
    for (size_t i = 0; i < st->n; p += st->lens[i], i++)
        events[i] = p;
    rc = rk_forward_add_tagged(a->fw, events, st->lens, st->n, tag, &first);
    free(events);
    if (rc == RK_OK && st->n)
        remember_lines(a, first, st->lines, st->n);
    stage_clear(st);
    return rc;
}

/* Events from standard input or the command line cannot be read again:
 * if the outbox cannot take them, the agent stops (exit 4) and says so. */
static void stage_flush(struct agent *a)
{
    int rc = stage_store(a, NULL);
    if (rc)
        outbox_failed(a, "cannot store events", rc);
}

/* The input line an outbox number came from in this run; 0 for earlier runs. */
static long line_of(const struct agent *a, uint64_t number)
{
    if (!a->run_first || number < a->run_first || number - a->run_first >= a->run_count)
        return 0;
    return a->run_lines[number - a->run_first];
}

/* A refusal that may pass later: the event stays, and is tried again. */
static void report_held(struct agent *a, long line, const struct rk_forward_outcome *o)
{
    char when[40];
    local_time(o->retry_ns, when, sizeof when);
    a->held++;
    if (a->json) {
        json_t *j = json_pack("{s:I,s:s,s:b,s:b,s:s,s:s,s:I,s:s}", "line", (json_int_t)line,
                              "event_id", o->event_id, "ok", 0, "held", 1, "code", o->code,
                              "error", o->message, "outbox_number", (json_int_t)o->number,
                              "retry_at", when);
        print_json(a, j);
    } else {
        printf("HELD     %s%soutbox #%llu line %ld %s %s: %s; kept, tried again at %s\n",
               a->spool_file ? a->spool_file : "", a->spool_file ? " " : "",
               (unsigned long long)o->number, line, *o->event_id ? o->event_id : "-", o->code,
               o->message, when);
    }
}

/* A refusal for good: the event is a dead letter, listed by `rejected`. */
static void report_dead(struct agent *a, long line, const struct rk_forward_outcome *o)
{
    a->refused++;
    if (a->json) {
        json_t *j = json_pack("{s:I,s:s,s:b,s:s,s:s,s:I,s:b}", "line", (json_int_t)line,
                              "event_id", o->event_id, "ok", 0, "code", o->code, "error",
                              o->message, "outbox_number", (json_int_t)o->number, "rejected", 1);
        print_json(a, j);
    } else {
        printf("REFUSED  %s%soutbox #%llu line %ld %s %s: %s; kept as a dead letter (renkei-agent "
               "--outbox %s rejected)\n", a->spool_file ? a->spool_file : "",
               a->spool_file ? " " : "", (unsigned long long)o->number, line,
               *o->event_id ? o->event_id : "-", o->code, o->message, a->outbox_dir);
    }
}

/* The forwarder recorded the answer in the outbox already. */
static void on_outcome(void *arg, const struct rk_forward_outcome *o)
{
    struct agent *a = arg;
    long line = line_of(a, o->number);
    if (o->ok)
        report_ok(a, line, o->number, o->event_id, o->seq, o->recv_ns);
    else if (o->held)
        report_held(a, line, o);
    else
        report_dead(a, line, o);
}

static uint64_t outbox_pending(struct agent *a)
{
    struct rk_forward_status st;
    int rc = rk_forward_status(a->fw, &st);
    if (rc)
        outbox_failed(a, "cannot read", rc);
    return st.pending;
}

static void say_waiting(struct agent *a, const char *why)
{
    char cmd[2048];
    fprintf(stderr, "renkei-agent: %s; %llu events wait in the outbox %s and go out, in "
            "order, the next time renkei-agent runs with it (e.g. %s)\n", why,
            (unsigned long long)outbox_pending(a), a->outbox_dir, flush_command(a, cmd, sizeof cmd));
}

/* Sends everything pending and collects the answers, waiting up to wait_ms
 * at a time. A broker silent for --timeout (or answering E_STORAGE) is
 * waited out for ever with `persist` (the run command): the next pump
 * backs off and connects again; otherwise the run ends, the events safe in
 * the outbox. */
static void outbox_drain(struct agent *a, int wait_ms)
{
    for (;;) {
        int rc = rk_forward_pump(a->fw, wait_ms, &a->fw_state);
        write_metrics(a, 0);
        if (rc)
            outbox_failed(a, rk_forward_error(a->fw), rc);
        if (a->fw_state == RK_FORWARD_IDLE || a->fw_state == RK_FORWARD_MOVING)
            a->said_silent = 0;
        if (a->fw_state == RK_FORWARD_IDLE)
            return; /* all answered */
        if (a->fw_state == RK_FORWARD_MOVING)
            continue;
        if (a->fw_state == RK_FORWARD_WAITING) {
            if (wait_ms < a->timeout_ms)
                return; /* the caller has other work; try again later */
            continue;
        }
        if (stop_requested)
            return;
        /* Held events wait for their retry (the next pump waits for it, a
         * little at a time) while input may still come; once it has
         * ended, they wait in the outbox for the next run. */
        if (a->fw_state == RK_FORWARD_HELD && !a->input_done)
            return;
        char why[1024] = "";
        if (a->fw_state == RK_FORWARD_SILENT && !a->said_silent) {
            rk_probe(a->broker, ZMQ_DEALER, &a->client, "--broker", a->timeout_ms, 2000, why,
                     sizeof why);
            a->said_silent = 1;
            if (a->persist) /* a daemon says it once, then waits it out */
                fprintf(stderr, "renkei-agent: %s; the events wait in the outbox %s and go "
                        "out when the broker answers\n", why, a->outbox_dir);
        }
        if (a->persist && a->fw_state != RK_FORWARD_HELD)
            continue;
        say_waiting(a, a->fw_state == RK_FORWARD_SILENT ? (why[0] ? why : "no answer from the broker")
                       : a->fw_state == RK_FORWARD_HELD ? "the broker refused some events for now "
                                                          "(held: see status)"
                                                        : "the broker cannot store now");
        a->unreachable = 1;
        return;
    }
}

/* A label value of the text format: \\, \" and \\n escaped. */
static void put_label(FILE *f, const char *v)
{
    for (; *v; v++)
        fprintf(f, *v == '"' || *v == '\\' ? "\\%c" : *v == '\n' ? "\\n" : "%c", *v);
}

static void put_metric(FILE *f, const char *name, const char *type, const char *help,
                       const char *outbox, double v)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s{outbox=\"", name, help, name, type, name);
    put_label(f, outbox);
    fprintf(f, "\"} %.17g\n", v);
}

/* --metrics-file: the outbox's state as a textfile for node_exporter,
 * written beside it and renamed over it, so that a scrape never reads half
 * a file. At most once a second unless `force` (at exit). A failure is
 * said once and does not stop the agent: sending matters more. */
static void write_metrics(struct agent *a, int force)
{
    static int warned;
    struct rk_outbox_status st;
    char tmp[4096];
    int64_t now = rk_time_now();
    if (!a->metrics_file || !a->fw || (!force && now - a->metrics_written_ns < 1000000000LL))
        return;
    a->metrics_written_ns = now;
    if (rk_forward_outbox_status(a->fw, &st) != RK_OK)
        return;
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", a->metrics_file, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (f) {
        const char *o = a->outbox_dir;
        put_metric(f, "renkei_agent_outbox_pending", "gauge",
                   "Events in the outbox waiting for the broker's answer (held ones not "
                   "counted).", o, (double)st.pending);
        put_metric(f, "renkei_agent_outbox_held", "gauge",
                   "Events refused for now, waiting for their next try.", o, (double)st.held);
        put_metric(f, "renkei_agent_outbox_rejected", "gauge",
                   "Dead letters in the outbox (see renkei-agent rejected).", o,
                   (double)st.rejected);
        put_metric(f, "renkei_agent_events_acked_total", "counter",
                   "Events acknowledged over the outbox's life.", o, (double)st.acked);
        put_metric(f, "renkei_agent_events_refused_total", "counter",
                   "Events refused for good over the outbox's life.", o, (double)st.refused);
        put_metric(f, "renkei_agent_last_ack_timestamp_seconds", "gauge",
                   "The broker's receive time of the last acknowledged event; 0: none yet.",
                   o, (double)st.last_ack_recv_ns / 1e9);
        put_metric(f, "renkei_agent_metrics_written_timestamp_seconds", "gauge",
                   "When this file was written.", o, (double)now / 1e9);
    }
    if (!f || fclose(f) != 0 || rename(tmp, a->metrics_file) != 0) {
        if (!warned++)
            fprintf(stderr, "renkei-agent: --metrics-file %s: cannot write it (%s); going "
                    "on without\n", a->metrics_file, strerror(errno));
        unlink(tmp);
    }
}

/* Stages one valid event; a full window goes to the outbox (one fsync)
 * and out to the broker, so reading and sending overlap. */
static void outbox_submit(struct agent *a, long line, const void *event, size_t len)
{
    stage(a, line, event, len);
    if (a->stage.n < (size_t)a->window || a->spool_file)
        return; /* a spool file goes in whole, in one transaction */
    stage_flush(a);
    if (!a->unreachable)
        outbox_drain(a, 0);
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

/* JSON lines, read one at a time by every source of events. */
struct line_reader {
    FILE *in;
    char *buf;
    size_t cap;
    long line;
};

/* Reads the next line and submits it (blank lines are skipped). Returns 1
 * after a line, 0 at the end of the input. */
static int submit_next_line(struct agent *a, struct line_reader *lr)
{
    ssize_t n = getline(&lr->buf, &lr->cap, lr->in);
    if (n < 0)
        return 0;
    lr->line++;
    while (n > 0 && (lr->buf[n - 1] == '\n' || lr->buf[n - 1] == '\r'))
        lr->buf[--n] = '\0';
    if (n)
        submit_json_text(a, lr->line, lr->buf);
    return 1;
}

static int run_send(struct agent *a, const char *path)
{
    struct line_reader lr = {.in = path && strcmp(path, "-") != 0 ? fopen(path, "r") : stdin};
    if (!lr.in) {
        fprintf(stderr, "renkei-agent: cannot open %s: %s\n", path, strerror(errno));
        return EXIT_USAGE;
    }
    while (submit_next_line(a, &lr))
        ;
    free(lr.buf);
    if (lr.in != stdin)
        fclose(lr.in);
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
    enum rk_kpi_encoding enc = RK_KPI_AUTO;
    char why[512], *text = NULL;
    const char *used = NULL;
    size_t len = 0;
    FILE *in;
    if (kpi.encoding && rk_kpi_encoding_parse(kpi.encoding, &enc) != 0) {
        fprintf(stderr, "renkei-agent: --encoding: must be auto, utf-8 or cp932, got \"%s\"\n",
                kpi.encoding);
        return EXIT_USAGE;
    }
    if (rk_kpi_load(path, enc, &text, &len, &used, why, sizeof why) != 0) {
        fprintf(stderr, "renkei-agent: %s: %s\n", path, why);
        return EXIT_USAGE;
    }
    if (strcmp(used, "utf-8") != 0)
        fprintf(stderr, "renkei-agent: %s: read as %s, converted to UTF-8\n", path, used);
    if (!a->fw) {
        kpi.active = rk_kpi_producer(a->client.client_key, kpi.producer) == 0;
        kpi.started_ns = rk_time_now();
    }
    in = fmemopen(text, len ? len : 1, "r");
    if (!in)
        abort();
    /* JSON lines start with '{'; a CSV file starts with its header. */
    size_t skip = strspn(text, " \t\r\n");
    int rc = (text[skip] == '{' ? rk_kpi_jsonl_read : rk_kpi_csv_read)(in, rk_time_now(),
                                                                   on_kpi_row, a, why, sizeof why);
    fclose(in);
    free(text);
    if (rc != 0) {
        fprintf(stderr, "renkei-agent: %s: %s\n", path, why);
        return EXIT_USAGE;
    }
    return 0;
}


/* The file's settings, which the options then override. */
static int apply_config(const char *path, struct agent *a, const char **broker_key,
                        const char **my_key)
{
    if (rk_agentconf_load(path, &conf, stderr) != 0)
        return -1;
    if (conf.broker)
        a->broker = conf.broker;
    a->outbox_dir = conf.outbox;
    a->spool_dir = conf.spool;
    a->metrics_file = conf.metrics_file;
    if (conf.timeout_ms)
        a->timeout_ms = conf.timeout_ms;
    if (conf.window)
        a->window = conf.window;
    *broker_key = conf.broker_key;
    *my_key = conf.key;
    return 0;
}

static int parse_options(int argc, char **argv, struct agent *a)
{
    static const struct option opts[] = {
        {"broker", required_argument, NULL, 'b'}, {"ingest", required_argument, NULL, 'b'},
        {"json", no_argument, NULL, 'j'}, {"outbox", required_argument, NULL, 'o'},
        {"spool", required_argument, NULL, 's'}, {"all", no_argument, NULL, 'A'},
        {"window", required_argument, NULL, 'w'}, {"timeout", required_argument, NULL, 't'},
        RK_TOOLOPT_KEYS_LONGOPTS, {"config", required_argument, NULL, 1003},
        {"encoding", required_argument, NULL, 1004},
        {"metrics-file", required_argument, NULL, 1005},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, RK_TOOLOPT_VERSION}, {NULL, 0, NULL, 0},
    };
    int c;
    char *end;
    const char *broker_key = NULL, *my_key = NULL;
    conf_path = rk_agentconf_find(argc, argv);
    if (conf_path && apply_config(conf_path, a, &broker_key, &my_key) != 0)
        return EXIT_USAGE;
    while ((c = getopt_long(argc, argv, "b:jo:s:w:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 1003: break; /* --config: read above */
        case 1004: kpi.encoding = optarg; break;
        case 1005: a->metrics_file = optarg; break;
        case 'b': a->broker = optarg; break;
        case 'o': a->outbox_dir = optarg; break;
        case 's': a->spool_dir = optarg; break;
        case 'j': a->json = 1; break;
        case 'A': a->all = 1; break;
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
        case RK_TOOLOPT_BROKER_KEY: broker_key = optarg; break;
        case RK_TOOLOPT_KEY: my_key = optarg; break;
        case 'h': usage(stdout); return 0;
        case RK_TOOLOPT_VERSION: printf("renkei-agent %s\n", RK_VERSION); return 0;
        default: fprintf(stderr, "Try 'renkei-agent --help'.\n"); return EXIT_USAGE;
        }
    }
    if (rk_toolopt_keys("renkei-agent", broker_key, my_key, &a->client) != 0 ||
        rk_toolopt_endpoint("renkei-agent", "--broker", a->broker) != 0)
        return EXIT_USAGE;
    if (optind >= argc) {
        fprintf(stderr, "renkei-agent: missing COMMAND (kpi, send, event, run, flush, status, "
                "rejected, resend or discard); try --help\n");
        return EXIT_USAGE;
    }
    return -1;
}

/* ---- the spool directory (run --spool DIR)
 *
 * A file leaves the spool in four steps, each safe to repeat after an
 * error, or a crash, at any point:
 *   1. its valid events go into the outbox in one transaction that also
 *      records the file's name (a tag);
 *   2. it is renamed to TAKEN_PREFIX + its name, out of the writers' way;
 *   3. the tag is dropped;
 *   4. it is removed.
 * A tag found before step 1 means an earlier try got past it: the file is
 * not read again. Every scan first finishes the files renamed at step 2,
 * so a tag a failed or crashed step 3 left behind never hides a new file
 * of the same name. On an outbox error the file stays where it is and the
 * scan ends there, so that no later file overtakes it; the next scan, a
 * little later each time, tries again. */

#define TAKEN_PREFIX ".renkei-taken."
#define SPOOL_NAME_MAX (255 - (sizeof TAKEN_PREFIX - 1))
#define SPOOL_IDLE_MS 200          /* between scans while nothing happens */
#define SPOOL_RETRY_MAX_MS 5000    /* at most between scans while files are kept */

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Finished files only: *.jsonl, not hidden. Writers create a file under
 * another name (or elsewhere on the same file system) and rename it in. */
static int is_spool_file(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return d->d_name[0] != '.' && n > 6 && strcmp(d->d_name + n - 6, ".jsonl") == 0;
}

/* A file at step 3 or 4. */
static int is_taken_file(const struct dirent *d)
{
    return strncmp(d->d_name, TAKEN_PREFIX, sizeof TAKEN_PREFIX - 1) == 0;
}

/* DIR/prefix+name. */
static int spool_path(const struct agent *a, const char *prefix, const char *name, char *buf,
                      size_t cap)
{
    int n = snprintf(buf, cap, "%s/%s%s", a->spool_dir, prefix, name);
    return n < 0 || (size_t)n >= cap ? ENAMETOOLONG : RK_OK;
}

/* A reason of the file's own (unreadable, misnamed): it stays, the other
 * files go on. */
static void spool_skip(struct agent *a, const char *path, const char *what, const char *why)
{
    fprintf(stderr, "renkei-agent: spool %s: %s: %s; the file stays in the spool and is tried "
            "again on the next scan\n", path, what, why);
    a->spool_kept++;
}

/* The outbox failed under a file: it is kept, and returns rc so the scan
 * ends there. */
static int spool_outbox_error(struct agent *a, const char *path, const char *what, int rc)
{
    fprintf(stderr, "renkei-agent: spool %s: %s: outbox %s: %s; the file is kept (nothing of "
            "it is lost) and tried again in a few seconds; if this goes on, check the outbox "
            "(renkei-agent --outbox %s status) and the free space of its disk\n", path, what,
            a->outbox_dir, rk_strerror(rc), a->outbox_dir);
    a->spool_kept++;
    return rc;
}

/* Steps 3 and 4, for the file `name` renamed at step 2. */
static int spool_finish(struct agent *a, const char *name)
{
    char path[4096];
    int rc = spool_path(a, TAKEN_PREFIX, name, path, sizeof path);
    if (rc == RK_OK && (rc = rk_forward_drop_tag(a->fw, name)))
        return spool_outbox_error(a, path, "its events are in, but not yet its name forgotten",
                                  rc);
    if (rc == RK_OK && unlink(path) != 0 && errno != ENOENT)
        fprintf(stderr, "renkei-agent: spool %s: cannot remove: %s\n", path, strerror(errno));
    return rc;
}

/* Step 1: every valid line of the file, and its name, in one outbox
 * transaction. Sets *stored to 0 when the file cannot be read (reported;
 * it stays). Lines the agent refuses are reported as they are read, so
 * again on each retry. */
static int spool_store(struct agent *a, const char *name, const char *path, int *stored)
{
    struct line_reader lr = {0};
    int rc = RK_OK, err;

    *stored = 0;
    if (!(lr.in = fopen(path, "r"))) {
        spool_skip(a, path, "cannot open", strerror(errno));
        return RK_OK;
    }
    a->spool_file = name;
    while (submit_next_line(a, &lr))
        ;
    err = errno;
    if (ferror(lr.in)) {
        /* Part of a file must never be recorded as the whole of it. */
        stage_clear(&a->stage);
        spool_skip(a, path, "cannot read", strerror(err ? err : EIO));
    } else if ((rc = stage_store(a, name)) == RK_OK) {
        *stored = 1;
    }
    a->spool_file = NULL;
    free(lr.buf);
    fclose(lr.in);
    return rc;
}

/* Steps 1 to 4 for one file of the spool. Returns RK_OK, or the outbox's
 * error: the file is then kept (under its name, or renamed once its events
 * are in) and the scan must end. */
static int spool_take(struct agent *a, const char *name)
{
    char from[4096], to[4096], why[80];
    int in, rc;

    if (strlen(name) > SPOOL_NAME_MAX || spool_path(a, "", name, from, sizeof from) ||
        spool_path(a, TAKEN_PREFIX, name, to, sizeof to)) {
        snprintf(why, sizeof why, "names of more than %zu bytes are not taken; rename it",
                 SPOOL_NAME_MAX);
        spool_skip(a, name, "cannot take", why);
        return RK_OK;
    }
    if ((rc = rk_forward_has_tag(a->fw, name, &in)))
        return spool_outbox_error(a, from, "cannot look up whether it was taken", rc);
    /* Already in: an earlier try stored the events, perhaps not to disk. */
    if (in && (rc = rk_forward_sync(a->fw)))
        return spool_outbox_error(a, from, "cannot sync the events it left", rc);
    if (!in && (rc = spool_store(a, name, from, &in)))
        return spool_outbox_error(a, from, "cannot store its events", rc);
    if (!in)
        return RK_OK; /* unreadable: reported, left for the next scan */
    /* ENOENT: gone already, and its events are in; forget its name. */
    if (rename(from, to) != 0 && errno != ENOENT) {
        spool_skip(a, from, "cannot rename it", strerror(errno));
        return RK_OK;
    }
    return spool_finish(a, name);
}

/* `step` on each name (from its byte `skip` on) in order until one fails
 * (the outbox's error, which it reported: the rest wait for the next
 * scan); frees the list. */
static int spool_each(struct agent *a, struct dirent **names, int n, size_t skip,
                      int (*step)(struct agent *, const char *))
{
    int rc = RK_OK;
    for (int i = 0; i < n; i++) {
        if (rc == RK_OK && !stop_requested)
            rc = step(a, names[i]->d_name + skip);
        free(names[i]);
    }
    free(names);
    return rc;
}

/* One pass: the files renamed at step 2, then the new files in name
 * order. Outbox errors end the pass (reported, counted in spool_kept).
 * Returns RK_OK, or errno when the directory cannot be read (reported). */
static int spool_scan(struct agent *a)
{
    struct dirent **names;
    int n;

    a->spool_kept = 0;
    if ((n = scandir(a->spool_dir, &names, is_taken_file, alphasort)) < 0)
        goto fail;
    if (spool_each(a, names, n, sizeof TAKEN_PREFIX - 1, spool_finish) != RK_OK)
        return RK_OK; /* a name must be forgotten before a new file of it comes */
    if ((n = scandir(a->spool_dir, &names, is_spool_file, alphasort)) < 0)
        goto fail;
    spool_each(a, names, n, 0, spool_take);
    return RK_OK;
fail:
    n = errno;
    fprintf(stderr, "renkei-agent: --spool %s: %s\n", a->spool_dir, strerror(n));
    return n;
}

/* The pause before the next scan: none while answers are awaited (the
 * drain waited already), growing while files are kept. */
static int spool_pause(struct agent *a, int pause_ms)
{
    if (a->spool_kept)
        pause_ms = pause_ms < SPOOL_RETRY_MAX_MS / 2 ? 2 * pause_ms : SPOOL_RETRY_MAX_MS;
    else
        pause_ms = SPOOL_IDLE_MS;
    if (a->spool_kept || a->fw_state == RK_FORWARD_IDLE)
        usleep((useconds_t)pause_ms * 1000); /* a signal ends it early */
    return pause_ms;
}

/* run --spool: takes finished files from the directory, in name order,
 * until SIGTERM or SIGINT; what is still unanswered then waits in the
 * outbox for the next start. */
static int run_spool(struct agent *a)
{
    struct sigaction sa = {.sa_handler = on_signal};
    int pause_ms = SPOOL_IDLE_MS;

    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (mkdir(a->spool_dir, 0770) != 0 && errno != EEXIST) {
        fprintf(stderr, "renkei-agent: --spool %s: %s\n", a->spool_dir, strerror(errno));
        return EXIT_USAGE;
    }
    fprintf(stderr, "renkei-agent: taking *.jsonl files from %s; outbox %s; broker %s\n",
            a->spool_dir, a->outbox_dir, a->broker);
    while (!stop_requested) {
        if (spool_scan(a) != RK_OK)
            return EXIT_USAGE;
        outbox_drain(a, 200);
        pause_ms = spool_pause(a, pause_ms);
    }
    a->persist = 0; /* at the stop: no more waiting for the broker */
    return 0;
}

/* Whether standard input's buffer is empty: poll sees only the pipe, and
 * the last lines of a burst are often all in the buffer already. */
static int stdin_buffer_empty(void)
{
    return stdin->_IO_read_ptr >= stdin->_IO_read_end; /* glibc's FILE, public */
}

/* Nothing staged and nothing waiting for the broker: only input can bring
 * work, so it is waited for without a timeout. */
static int stream_idle(const struct agent *a)
{
    return a->stage.n == 0 && a->fw_state == RK_FORWARD_IDLE;
}

/* run: JSON lines from standard input for as long as it is open. Each
 * line is in the outbox as soon as no more input is ready (or a window is
 * full), and goes out while the next is read. */
static int run_stream(struct agent *a)
{
    struct pollfd in = {.fd = STDIN_FILENO, .events = POLLIN};
    struct line_reader lr = {.in = stdin};

    for (;;) {
        while (stdin_buffer_empty() && poll(&in, 1, stream_idle(a) ? -1 : 0) == 0) {
            stage_flush(a);
            outbox_drain(a, 100);
        }
        if (!submit_next_line(a, &lr))
            break;
        fflush(stdout);
    }
    free(lr.buf);
    return 0;
}

/* ---- the outbox's own commands: status, rejected, resend, discard
 *
 * They open the outbox alone, without a forwarder or a connection, so they
 * change nothing but what they say (an agent may be sending from it). */

static struct rk_outbox *admin_open(struct agent *a)
{
    struct rk_outbox *ob;
    char why[512];
    if (rk_outbox_open(a->outbox_dir, &ob, why, sizeof why) != RK_OK) {
        fprintf(stderr, "renkei-agent: %s\n", why);
        exit(EXIT_OUTBOX);
    }
    return ob;
}

static json_t *json_time_or_null(int64_t ns)
{
    char when[40];
    if (!ns)
        return json_null();
    local_time(ns, when, sizeof when);
    return json_string(when);
}

static void print_status_text(struct agent *a, const struct rk_outbox_status *st)
{
    char when[40];
    printf("outbox %s (producer %s): %llu pending, %llu held, %llu rejected; %llu acknowledged "
           "and %llu refused for good in all\n", a->outbox_dir, st->producer,
           (unsigned long long)st->pending, (unsigned long long)st->held,
           (unsigned long long)st->rejected, (unsigned long long)st->acked,
           (unsigned long long)st->refused);
    if (st->held) {
        local_time(st->held_next_ns, when, sizeof when);
        printf("held: refused for now and tried again by the running agent; next try at %s; "
               "last refusal (outbox #%llu): %s: %s\n", when,
               (unsigned long long)st->held_last_number,
               st->held_last.code, st->held_last.message);
    }
    if (st->rejected)
        printf("rejected: refused for good; list them with renkei-agent --outbox %s rejected, "
               "then resend or discard them\n", a->outbox_dir);
    if (st->last_ack_number) {
        local_time(st->last_ack_recv_ns, when, sizeof when);
        printf("last acknowledged: number %llu, stored as seq %llu at %s\n",
               (unsigned long long)st->last_ack_number, (unsigned long long)st->last_ack_seq,
               when);
    } else {
        printf("nothing acknowledged yet\n");
    }
}

static int print_status(struct agent *a)
{
    struct rk_outbox *ob = admin_open(a);
    struct rk_outbox_status st;
    char when[RK_TIME_TEXT_MAX] = "";
    int rc = rk_outbox_status(ob, &st);
    rk_outbox_close(&ob);
    if (rc)
        outbox_failed(a, "cannot read", rc);
    if (!a->json) {
        print_status_text(a, &st);
        return 0;
    }
    json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "outbox", a->outbox_dir,
                          "producer", st.producer, "pending", (json_int_t)st.pending,
                          "first_pending", (json_int_t)st.first_pending,
                          "last_number", (json_int_t)st.last_number,
                          "acked", (json_int_t)st.acked, "refused", (json_int_t)st.refused,
                          "held", (json_int_t)st.held, "rejected", (json_int_t)st.rejected);
    json_object_set_new(o, "next_retry", json_time_or_null(st.held ? st.held_next_ns : 0));
    if (st.held)
        json_object_set_new(o, "held_last", json_pack("{s:I,s:s,s:s,s:o}", "number",
                            (json_int_t)st.held_last_number, "code", st.held_last.code,
                            "message", st.held_last.message, "refused_at",
                            json_time_or_null(st.held_last.last_ns)));
    else
        json_object_set_new(o, "held_last", json_null());
    if (st.last_ack_number) {
        rk_time_format(st.last_ack_recv_ns, when);
        json_object_set_new(o, "last_acked", json_pack("{s:I,s:I,s:s}", "number",
                            (json_int_t)st.last_ack_number, "seq", (json_int_t)st.last_ack_seq,
                            "recv_time", when));
    } else {
        json_object_set_new(o, "last_acked", json_null());
    }
    print_json(a, o);
    return 0;
}

/* rejected: one JSON line per dead letter, oldest number first. */
static int list_rejected(struct agent *a)
{
    struct rk_outbox *ob = admin_open(a);
    struct rk_outbox_refusal r;
    unsigned char *buf = malloc(RK_EVENT_MAX_BYTES);
    uint64_t after = 0, number, n = 0;
    size_t len;
    int rc;
    if (!buf)
        abort();
    while ((rc = rk_outbox_next_dead(ob, after, &number, &r, buf, RK_EVENT_MAX_BYTES, &len)) ==
           RK_OK) {
        json_t *ev = rk_msgpack_to_json(buf, len);
        json_t *o = json_pack("{s:I,s:s,s:I,s:s,s:s,s:o,s:o,s:I}", "outbox_number",
                              (json_int_t)number, "producer", rk_outbox_producer(ob),
                              "producer_number", (json_int_t)number, "code", r.code, "message",
                              r.message, "refused_at", json_time_or_null(r.last_ns),
                              "first_refused_at", json_time_or_null(r.first_ns), "refusals",
                              (json_int_t)r.attempts);
        if (!o) /* never hide one: json_pack refuses only what is not text */
            o = json_pack("{s:I,s:s}", "outbox_number", (json_int_t)number, "error",
                          "this dead letter's code or message is not valid text");
        json_object_set_new(o, "event", ev ? ev : json_null());
        print_json(a, o);
        after = number;
        n++;
    }
    free(buf);
    rk_outbox_close(&ob);
    if (rc != RK_EOF)
        outbox_failed(a, "cannot read the dead letters", rc);
    if (!a->json)
        fprintf(stderr, "renkei-agent: %llu dead letters in %s\n", (unsigned long long)n,
                a->outbox_dir);
    return 0;
}

/* resend / discard: NUMBER... or --all. */
static int move_dead(struct agent *a, int argc, char **argv, int resend)
{
    const char *cmd = resend ? "resend" : "discard";
    int first = optind + 1, missing = 0;
    uint64_t total = 0, done;
    struct rk_outbox *ob;
    char *end;
    int rc;

    if ((a->all && first < argc) || (!a->all && first >= argc)) {
        fprintf(stderr, "renkei-agent: %s takes outbox NUMBERs (see renkei-agent --outbox DIR "
                "rejected) or --all\n", cmd);
        return EXIT_USAGE;
    }
    for (int i = first; i < argc; i++) {
        errno = 0;
        unsigned long long v = strtoull(argv[i], &end, 10);
        if (errno || *end || v == 0 || argv[i][0] == '-') {
            fprintf(stderr, "renkei-agent: %s: not an outbox number: \"%s\"\n", cmd, argv[i]);
            return EXIT_USAGE;
        }
    }
    ob = admin_open(a);
    for (int i = a->all ? argc - 1 : first; i < argc; i++) {
        uint64_t number = a->all ? 0 : strtoull(argv[i], NULL, 10);
        rc = resend ? rk_outbox_resend(ob, number, rk_time_now(), &done)
                    : rk_outbox_discard(ob, number, &done);
        if (rc) {
            rk_outbox_close(&ob);
            outbox_failed(a, resend ? "cannot resend" : "cannot discard", rc);
        }
        if (!done && number) {
            fprintf(stderr, "renkei-agent: %s: no dead letter #%llu in %s\n", cmd,
                    (unsigned long long)number, a->outbox_dir);
            missing++;
        }
        total += done;
    }
    rk_outbox_close(&ob);
    if (a->json)
        printf("{\"%s\":%llu,\"missing\":%d}\n", resend ? "resent" : "discarded",
               (unsigned long long)total, missing);
    else if (resend)
        printf("resent %llu dead letters: they are pending again and go out with the running "
               "agent, or the next run or flush (renkei-agent --outbox %s flush)\n",
               (unsigned long long)total, a->outbox_dir);
    else
        printf("discarded %llu dead letters for good\n", (unsigned long long)total);
    return missing ? EXIT_REFUSED : 0;
}

static int is_admin_command(const char *cmd)
{
    return strcmp(cmd, "status") == 0 || strcmp(cmd, "rejected") == 0 ||
           strcmp(cmd, "resend") == 0 || strcmp(cmd, "discard") == 0;
}

/* The commands that only read or edit the outbox; -1 for the others. */
static int admin(struct agent *a, int argc, char **argv)
{
    const char *cmd = argv[optind];
    if (strcmp(cmd, "status") == 0)
        return print_status(a);
    if (strcmp(cmd, "rejected") == 0)
        return list_rejected(a);
    if (strcmp(cmd, "resend") == 0)
        return move_dead(a, argc, argv, 1);
    if (strcmp(cmd, "discard") == 0)
        return move_dead(a, argc, argv, 0);
    return -1;
}

static int dispatch(struct agent *a, int argc, char **argv)
{
    const char *cmd = argv[optind];
    int needs_outbox = strcmp(cmd, "run") == 0 || strcmp(cmd, "flush") == 0;
    if (needs_outbox && !a->fw) {
        fprintf(stderr, "renkei-agent: %s needs --outbox DIR\n", cmd);
        return EXIT_USAGE;
    }
    if (strcmp(cmd, "flush") == 0)
        return 0; /* main sends what is pending */
    if (strcmp(cmd, "run") == 0) {
        a->persist = 1;
        return a->spool_dir ? run_spool(a) : run_stream(a);
    }
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
    fprintf(stderr, "renkei-agent: unknown command \"%s\"; expected kpi, send, event, run, "
            "flush, status, rejected, resend or discard\n", cmd);
    return EXIT_USAGE;
}

static void finish(struct agent *a)
{
    if (!a->fw) {
        drain_all(a);
        return;
    }
    stage_flush(a);
    a->input_done = 1;
    if (!a->unreachable)
        outbox_drain(a, a->timeout_ms);
}

/* With --outbox: the forwarder, its outbox open and its first connection
 * made. Returns an exit status, or -1 to go on. */
static int connect_outbox(struct agent *a)
{
    struct rk_forward_options fo = {.client = a->client, .window = (unsigned)a->window,
                                    .timeout_ms = a->timeout_ms, .on_outcome = on_outcome,
                                    .arg = a};
    char why[512];
    int rc = rk_forward_open(a->outbox_dir, &a->fw, why, sizeof why);
    if (rc) {
        fprintf(stderr, "renkei-agent: %s\n", why);
        return EXIT_OUTBOX;
    }
    if ((rc = rk_forward_connect(a->fw, a->broker, &fo))) {
        fprintf(stderr, "renkei-agent: --broker %s: %s\n", a->broker, strerror(rc));
        return EXIT_USAGE;
    }
    return -1;
}

/* Without an outbox: one publisher and its window. */
static int connect_direct(struct agent *a)
{
    if (rk_pub_open(a->broker, &a->client, &a->pub) != 0) {
        fprintf(stderr, "renkei-agent: --broker %s: %s\n", a->broker, strerror(errno));
        return EXIT_USAGE;
    }
    a->slots = calloc((size_t)a->window, sizeof *a->slots);
    if (!a->slots)
        abort();
    return -1;
}

/* The command, the last answers and the summary; the exit status. */
static int execute(struct agent *a, int argc, char **argv)
{
    int rc = dispatch(a, argc, argv);
    {
        finish(a);
        if (!a->json && kpi.active)
            fprintf(stderr, "renkei-agent: %lu stored, %lu already stored before (the same "
                    "rows sent again: nothing new), %lu refused, %lu held (kept, tried "
                    "again)\n", a->ok - kpi.again, kpi.again, a->refused, a->held);
        else if (!a->json && a->held)
            fprintf(stderr, "renkei-agent: %lu stored, %lu refused, %lu held (kept, tried "
                    "again)\n", a->ok, a->refused, a->held);
        else if (!a->json)
            fprintf(stderr, "renkei-agent: %lu stored, %lu refused\n", a->ok, a->refused);
    }
    if (rc)
        return rc;
    if (a->unreachable)
        return EXIT_UNREACHABLE;
    return a->refused ? EXIT_REFUSED : 0;
}

int main(int argc, char **argv)
{
    struct agent a = {.broker = RK_DEFAULT_INGEST, .window = DEFAULT_WINDOW,
                      .timeout_ms = DEFAULT_TIMEOUT_MS, .fw_state = RK_FORWARD_WAITING};
    int rc = parse_options(argc, argv, &a);
    if (rc >= 0)
        return rc;
    if (strcmp(argv[optind], "run") == 0) {
        /* A service's reports go to a journal (a pipe, block-buffered by
         * default): each line as it happens, not a buffer's worth when the
         * next file is taken or the agent stops. */
        setvbuf(stdout, NULL, _IOLBF, 0);
        setvbuf(stderr, NULL, _IOLBF, 0);
    }
    if (is_admin_command(argv[optind])) {
        if (!a.outbox_dir) {
            fprintf(stderr, "renkei-agent: %s needs --outbox DIR\n", argv[optind]);
            return EXIT_USAGE;
        }
        return admin(&a, argc, argv);
    }
    if (a.metrics_file && !a.outbox_dir) {
        fprintf(stderr, "renkei-agent: --metrics-file: needs --outbox DIR (it reports the "
                "outbox)\n");
        return EXIT_USAGE;
    }
    rc = a.outbox_dir ? connect_outbox(&a) : connect_direct(&a);
    if (rc < 0)
        rc = execute(&a, argc, argv);
    write_metrics(&a, 1);
    rk_pub_destroy(&a.pub);
    rk_forward_close(&a.fw);
    msgpack_sbuffer_destroy(a.stage.bytes);
    free(a.stage.lens);
    free(a.stage.lines);
    free(a.run_lines);
    free(a.slots);
    rk_agentconf_release(&conf);
    return rc;
}
