/* renkei-sub: follow the live feed, in order and without gaps, and print
 * each matching event as one line. */
#include "rk_reader.h"
#include "rk_render.h"
#include "rk_sub.h"
#include "rk_time.h"
#include "rk_probe.h"
#include "rk_toolopt.h"
#include "rk_topics.h"
#include "rk_wire.h" /* RK_DEFAULT_FEED, _REPLAY */

#include <errno.h>
#include <zmq.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


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
    const char *requester_prefecture, *requester; /* of the event's request */
    const char *cursor;  /* file holding where to resume */
    int snapshot;
    int state;           /* --state: the requests' state first */
    int restart_new_log; /* --restart-on-new-log */
    int filtered;        /* any filter option given */
    struct rk_client_options client;
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
        "  --prefecture NN          published by a municipality of this prefecture (two\n"
        "                           digits, e.g. 27 for Osaka)\n"
        "  --municipality CODE      published by this local government (six digits,\n"
        "                           e.g. 271004)\n"
        "  --requester-prefecture NN  disaster-support events about requests made in\n"
        "                           this prefecture, whoever published them: the\n"
        "                           requests, other towns' offers and dispatches for\n"
        "                           them... (e.g. 30 for Wakayama's disaster centre)\n"
        "  --requester CODE         the same, for requests made by this local government\n"
        "                           (not with --prefecture or --municipality)\n"
        "  --topic PREFIX           a raw topic prefix (repeatable, OR-ed; see PROTOCOL.md)\n"
        "\n"
        "Options:\n"
        "  -f, --feed ENDPOINT      broker live feed [%s]\n"
        "  -r, --replay ENDPOINT    broker replay socket, for filling gaps [%s]\n"
        "      --from SEQ           start at sequence SEQ (1 = the whole log) instead of now\n"
        "      --snapshot           start with the latest event of every KPI and request\n"
        "                           (one consistent moment), then follow on from there\n"
        "      --state              start with each disaster-support request's state as\n"
        "                           the broker folds it, all as of one seq S (JSON lines\n"
        "                           {\"kind\":\"request\",...}, then {\"state\":{\"seq\":S,..}}),\n"
        "                           then every event after S; without filters, aid.*;\n"
        "                           with --requester(-prefecture), those requests only\n"
        "      --cursor FILE        durable position: resume after the last event printed\n"
        "                           by an earlier run; made on first use (from --from,\n"
        "                           --snapshot, --state or now). It records the identity\n"
        "                           of the broker's log too: if the broker's log is\n"
        "                           another one (restored from a backup, or a copy) or\n"
        "                           ends below the cursor, renkei-sub stops with exit\n"
        "                           status 4 and says so. When standard output is a file\n"
        "                           of JSON lines, its last line counts too, so a killed\n"
        "                           run neither skips nor repeats an event\n"
        "      --restart-on-new-log  when the broker's log is another one, print a line\n"
        "                           {\"new_log\":{...}} (table: a ---- line) and start\n"
        "                           over from seq 1 of the new log, instead of stopping\n"
        "  -n, --count N            exit after N events\n"
        "      --idle MS            exit after MS milliseconds without a matching event\n"
        "      --format json|table  JSON lines (default) or a table for people\n"
        RK_TOOLOPT_KEYS_HELP
        "  -h, --help               show this help and exit\n"
        "      --version          print the version and exit\n"
        "\n"
        "On exit a summary goes to stderr: events printed, gaps filled from the log.\n"
        "Exit status: 0 done, 1 an error, 2 usage, 3 the broker did not answer,\n"
        "4 the broker's log is not the one the cursor (or this run) was following.\n",
        RK_DEFAULT_FEED, RK_DEFAULT_REPLAY);
}

/* Turns the filter options into topic prefixes "<type>/<pp>/<code>". */
static int add_filters(struct rk_sub *s, const struct opts *o)
{
    struct rk_topic_query q = {o->family, o->type, o->prefecture, o->municipality,
                               o->requester_prefecture, o->requester};
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
        {"version", no_argument, NULL, RK_TOOLOPT_VERSION},
        {"requester-prefecture", required_argument, NULL, 'P'},
        {"requester", required_argument, NULL, 'M'},
        {"cursor", required_argument, NULL, 'C'}, {"snapshot", no_argument, NULL, 'S'},
        {"state", no_argument, NULL, 'Z'}, {"restart-on-new-log", no_argument, NULL, 'R'},
        RK_TOOLOPT_KEYS_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    const char *topics[RK_WIRE_TOPICS_MAX];
    const char *broker_key = NULL, *my_key = NULL;
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
        case 'P': o->requester_prefecture = optarg; break;
        case 'M': o->requester = optarg; break;
        case 't':
            if (ntopics == RK_WIRE_TOPICS_MAX) {
                fprintf(stderr, "renkei-sub: --topic: at most %d prefixes\n", RK_WIRE_TOPICS_MAX);
                return 2;
            }
            topics[ntopics++] = optarg;
            break;
        case 'C': o->cursor = optarg; break;
        case RK_TOOLOPT_BROKER_KEY: broker_key = optarg; break;
        case RK_TOOLOPT_KEY: my_key = optarg; break;
        case 'S': o->snapshot = 1; break;
        case 'Z': o->state = 1; break;
        case 'R': o->restart_new_log = 1; break;
        case 'h': usage(stdout); return 0;
        case RK_TOOLOPT_VERSION: printf("renkei-sub %s\n", RK_VERSION); return 0;
        default: fprintf(stderr, "Try 'renkei-sub --help'.\n"); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "renkei-sub: unexpected argument \"%s\"; try --help\n", argv[optind]);
        return 2;
    }
    if (rk_toolopt_keys("renkei-sub", broker_key, my_key, &o->client) != 0 ||
        rk_toolopt_endpoint("renkei-sub", "--feed", o->feed) != 0 ||
        rk_toolopt_endpoint("renkei-sub", "--replay", o->replay) != 0)
        return 2;
    if (o->state && (o->snapshot || o->from)) {
        fprintf(stderr, "renkei-sub: --state: starts at the state's seq; not with --snapshot "
                "or --from\n");
        return 2;
    }
    o->filtered = ntopics || o->family || o->type || o->prefecture || o->municipality ||
                  o->requester_prefecture || o->requester;
    if (rk_sub_open(o->feed, o->replay, &o->client, s) != 0) {
        fprintf(stderr, "renkei-sub: cannot connect to %s / %s: %s\n", o->feed, o->replay, strerror(errno));
        return 2;
    }
    for (int i = 0; i < ntopics; i++)
        if (rk_sub_filter(*s, topics[i]) != 0) {
            fprintf(stderr, "renkei-sub: --topic \"%s\": printable ASCII without spaces or '|', "
                    "at most %d bytes\n", topics[i], RK_WIRE_TOPIC_MAX - 1);
            return 2;
        }
    if (ntopics == 0 && add_filters(*s, o) != 0)
        return 2;
    if (o->state && !o->filtered)
        rk_sub_filter(*s, "aid.");
    return -1;
}

/* ---- the durable cursor: 20 digits, a space, the log's identity (32 hex
 * digits) and a newline, rewritten in place. A cursor of an older
 * renkei-sub is the 20 digits and the newline alone: it is accepted, and
 * gains the identity of the broker's log at this start. */

#define CURSOR_OLD_LEN 21
#define CURSOR_LEN (21 + 1 + RK_WIRE_LOG_ID_MAX)
#define CURSOR_SYNC_NS 1000000000LL

struct cursor {
    int fd;
    uint64_t written;
    char log_id[RK_WIRE_LOG_ID_MAX + 1]; /* as written; "" = none known */
    int64_t synced_ns;
};

static int cursor_bad(const char *path)
{
    fprintf(stderr, "renkei-sub: --cursor %s: not a renkei-sub cursor (want 20 digits, a space, "
            "32 hex digits and a newline); remove it to start afresh\n", path);
    return -1;
}

/* Opens (making it if need be) the cursor file; *resume is its sequence,
 * or 0 when it was just made; c->log_id the identity it holds. */
static int cursor_open(struct cursor *c, const char *path, uint64_t *resume)
{
    char buf[CURSOR_LEN + 2] = {0}, *end;
    *resume = 0;
    c->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (c->fd < 0) {
        fprintf(stderr, "renkei-sub: --cursor %s: %s\n", path, strerror(errno));
        return -1;
    }
    ssize_t n = pread(c->fd, buf, CURSOR_LEN + 1, 0);
    if (n == 0)
        return 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (end != buf + 20 || v == 0)
        return cursor_bad(path);
    if (n == CURSOR_OLD_LEN && *end == '\n') {
        *resume = c->written = v;
        return 0;
    }
    if (n != CURSOR_LEN || *end != ' ' || buf[CURSOR_LEN - 1] != '\n' ||
        strspn(end + 1, "0123456789abcdef") != RK_WIRE_LOG_ID_MAX)
        return cursor_bad(path);
    memcpy(c->log_id, end + 1, RK_WIRE_LOG_ID_MAX);
    c->log_id[RK_WIRE_LOG_ID_MAX] = '\0';
    *resume = c->written = v;
    return 0;
}

static void cursor_save(struct cursor *c, uint64_t next, const char *log_id, int sync)
{
    char buf[CURSOR_LEN + 1];
    int same_id = strcmp(log_id, c->log_id) == 0;
    if (c->fd < 0 || (next == c->written && same_id && !sync))
        return;
    if (!log_id[0] && c->log_id[0])
        log_id = c->log_id; /* never forget one */
    int n = log_id[0] ? snprintf(buf, sizeof buf, "%020llu %s\n", (unsigned long long)next, log_id)
                      : snprintf(buf, sizeof buf, "%020llu\n", (unsigned long long)next);
    if (pwrite(c->fd, buf, (size_t)n, 0) != n)
        fprintf(stderr, "renkei-sub: writing the cursor: %s\n", strerror(errno));
    c->written = next;
    snprintf(c->log_id, sizeof c->log_id, "%s", log_id);
    /* A kill leaves the page cache intact; only a power cut needs fsync. */
    int64_t now = rk_time_now();
    if (sync || !same_id || now - c->synced_ns > CURSOR_SYNC_NS) {
        fdatasync(c->fd);
        c->synced_ns = now;
    }
}

/* When standard output is a file of JSON lines, the sequence of its last
 * whole line (0 if none), after cutting a line a kill left half written.
 * An event is printed before the cursor moves past it, so this is the one
 * that may be ahead of the cursor. */
static uint64_t last_seq_printed(void)
{
    struct stat st;
    static char buf[1 << 18];
    if (fstat(STDOUT_FILENO, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0)
        return 0;
    off_t from = st.st_size > (off_t)sizeof buf ? st.st_size - (off_t)sizeof buf : 0;
    /* Standard output is usually open for writing only: read it anew. */
    int fd = open("/proc/self/fd/1", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : pread(fd, buf, (size_t)(st.st_size - from), from);
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return 0;
    ssize_t end = n;
    while (end > 0 && buf[end - 1] != '\n')
        end--;
    if (end < n && ftruncate(STDOUT_FILENO, from + end) != 0)
        return 0;
    if (end == 0)
        return 0;
    ssize_t start = end - 1;
    while (start > 0 && buf[start - 1] != '\n')
        start--;
    json_t *line = json_loadb(buf + start, (size_t)(end - start), 0, NULL);
    json_int_t seq = json_integer_value(json_object_get(line, "seq"));
    json_decref(line);
    return seq > 0 ? (uint64_t)seq : 0;
}

/* The broker's log is not the one we were following (ESTALE). Without
 * --restart-on-new-log: say so and stop (exit 4). With it: mark the break
 * in the output, so an archive shows where the new log's seqs begin and a
 * resumed run does not read the old log's last seq as its own, and start
 * over from seq 1 of the new log. Returns -1 to go on, else the exit code. */
static int new_log(struct rk_sub *s, const struct opts *o, struct cursor *c)
{
    char old[RK_WIRE_LOG_ID_MAX + 1], when[RK_TIME_TEXT_MAX];
    if (!o->restart_new_log) {
        fprintf(stderr, "renkei-sub: %s\n", rk_sub_error(s));
        return 4;
    }
    fprintf(stderr, "renkei-sub: warning: %s\nrenkei-sub: --restart-on-new-log: starting over "
            "from seq 1 of the broker's log\n", rk_sub_error(s));
    snprintf(old, sizeof old, "%s", rk_sub_log_id(s));
    if (rk_sub_restart_new_log(s, 1) != 0) {
        fprintf(stderr, "renkei-sub: %s\n", rk_sub_error(s));
        return 1;
    }
    rk_time_format(rk_time_now(), when);
    if (o->format == RK_RENDER_JSON)
        printf("{\"new_log\":{\"log_id\":\"%s\",\"previous_log_id\":\"%s\",\"from_seq\":1,"
               "\"time\":\"%s\"}}\n", rk_sub_log_id(s), old, when);
    else
        printf("---- %s: the broker's log is now %s (was %s); its events from seq 1 follow ----\n",
               when, rk_sub_log_id(s)[0] ? rk_sub_log_id(s) : "one without identity",
               old[0] ? old : "unknown");
    fflush(stdout);
    cursor_save(c, 1, rk_sub_log_id(s), 1);
    return -1;
}

/* --state: the broker's fold of every request at one seq S, printed; then
 * the feed from S + 1. */
static int start_with_state(struct rk_sub *s, const struct opts *o)
{
    struct rk_reader *r = NULL;
    struct rk_state st;
    if (rk_reader_open(o->replay, &o->client, &r) != 0) {
        fprintf(stderr, "renkei-sub: --replay %s: %s\n", o->replay, strerror(errno));
        return 2;
    }
    rk_sub_subscribe(s);
    /* the requests of the requester filter, or all */
    const char *requester = o->requester ? o->requester : o->requester_prefecture;
    if (rk_reader_state(r, NULL, requester, 5000, &st) != 0) {
        fprintf(stderr, "renkei-sub: --state: %s\n", errno == ETIMEDOUT
                ? "the broker's replay socket did not answer: is renkei-broker running?"
                : rk_reader_error(r)[0] ? rk_reader_error(r) : strerror(errno));
        rk_reader_destroy(&r);
        return errno == ETIMEDOUT ? 3 : 1;
    }
    rk_reader_destroy(&r);
    int rc = rk_render_state(stdout, o->format, &st) == 0 && fflush(stdout) == 0 ? -1 : 1;
    uint64_t seq = st.seq;
    size_t n = st.count;
    rk_sub_set_log_id(s, st.log_id);
    rk_state_free(&st);
    if (rc == 1) {
        fprintf(stderr, "renkei-sub: writing standard output: %s\n", strerror(errno));
        return 1;
    }
    fprintf(stderr, "renkei-sub: starting with the state of %zu requests, consistent with seq "
            "%llu; following on from seq %llu\n", n, (unsigned long long)seq,
            (unsigned long long)seq + 1);
    return rk_sub_start(s, seq + 1, 5000) == 0 ? -1 : -2;
}

/* The broker did not answer on `endpoint`: why, from a probe (rk_probe);
 * exit status 3. */
static int no_answer(const struct opts *o, const char *endpoint, const char *option, int type,
                     int timeout_ms)
{
    char why[1024];
    rk_probe(endpoint, type, &o->client, option, timeout_ms, 2000, why, sizeof why);
    fprintf(stderr, "renkei-sub: %s\n", why);
    return 3;
}

static int start(struct rk_sub *s, const struct opts *o, struct cursor *c)
{
    uint64_t resume = 0;
    int rc;
    if (o->cursor && cursor_open(c, o->cursor, &resume) != 0)
        return 2;
    if (resume && o->format == RK_RENDER_JSON) {
        uint64_t printed = last_seq_printed();
        if (printed >= resume)
            resume = printed + 1;
    }
    if (resume && c->log_id[0])
        rk_sub_set_log_id(s, c->log_id);
    /* A subscription outside the ACL is dropped without a word: ask the
     * replay socket first, so that a refusal is said, not waited out. */
    int forbidden = 0, start_ms = 5000;
    char refusal[700] = "";
    if (rk_sub_check_access(s, 5000) != 0) {
        if (errno == ETIMEDOUT)
            return no_answer(o, o->replay, "--replay", ZMQ_DEALER, 5000);
        forbidden = 1;
        start_ms = 1500; /* allowed live all the same? (subscribe rights, no replay) */
        snprintf(refusal, sizeof refusal, "%s", rk_sub_error(s));
    }
    if (resume)
        rc = rk_sub_start(s, resume, start_ms);
    else if (o->state) {
        if ((rc = start_with_state(s, o)) >= 0)
            return rc;
        rc = rc == -1 ? 0 : -1;
    } else if (o->snapshot)
        rc = rk_sub_start_snapshot(s, start_ms);
    else
        rc = rk_sub_start(s, o->from, start_ms);
    if (rc != 0 && errno == ESTALE) {
        if ((rc = new_log(s, o, c)) >= 0)
            return rc;
    } else if (rc != 0 && forbidden) {
        fprintf(stderr, "renkei-sub: refused: %s; the subscribe and replay lines of this "
                "key's tenant in the broker's ACL say what it may read\n", refusal);
        return 1;
    } else if (rc != 0) {
        return no_answer(o, o->feed, "--feed", ZMQ_SUB, start_ms);
    }
    if (resume)
        fprintf(stderr, "renkei-sub: resuming from seq %llu (cursor %s, log %s)\n",
                (unsigned long long)resume, o->cursor,
                rk_sub_log_id(s)[0] ? rk_sub_log_id(s) : "without identity");
    else if (o->snapshot)
        fprintf(stderr, "renkei-sub: starting with a snapshot\n");
    else if (!o->state)
        fprintf(stderr, "renkei-sub: following from seq %llu\n",
                (unsigned long long)rk_sub_position(s));
    /* Written at once, so a kill before the first event still resumes here. */
    if (!o->snapshot || resume)
        cursor_save(c, rk_sub_position(s), rk_sub_log_id(s), 1);
    return -1;
}

/* Waits for the next event in short steps, so a signal stops it promptly
 * and a silent broker is reported. Returns 1 with *d, 0 when done. */
static int next_event(struct rk_sub *s, const struct opts *o, struct cursor *c,
                      struct rk_delivery *d, int *rc)
{
    int wait = o->idle_ms > 0 && o->idle_ms < 200 ? (int)o->idle_ms : 200;
    long waited = 0;
    int warned = 0;
    while (!stop_requested) {
        if (rk_sub_next(s, wait, d) == 0)
            return 1;
        if (errno == ESTALE) {
            if ((*rc = new_log(s, o, c)) >= 0)
                return 0;
            *rc = 0;
            continue;
        }
        if (errno != ETIMEDOUT) {
            fprintf(stderr, "renkei-sub: %s\n", rk_sub_error(s)[0] ? rk_sub_error(s) : strerror(errno));
            *rc = 1;
            return 0;
        }
        cursor_save(c, rk_sub_position(s), rk_sub_log_id(s), 0);
        waited += wait;
        if (o->idle_ms > 0 && waited >= o->idle_ms)
            return 0;
        if (!warned && rk_sub_silent_ms(s) > 5000) {
            fprintf(stderr, "renkei-sub: no word from the broker's feed %s for 5 s (it ticks "
                    "every 200 ms); waiting for it to come back\n", o->feed);
            warned = 1;
        }
    }
    return 0;
}

/* Where the snapshot ends and the sequence begins, for people and tests. */
static void announce_snapshot(struct rk_sub *s, long events, int *announced)
{
    if (*announced || !rk_sub_snapshot_seq(s))
        return;
    fprintf(stderr, "renkei-sub: snapshot of %ld events, consistent with seq %llu; following on\n",
            events, (unsigned long long)rk_sub_snapshot_seq(s));
    *announced = 1;
}

int main(int argc, char **argv)
{
    struct opts o = {.feed = RK_DEFAULT_FEED, .replay = RK_DEFAULT_REPLAY, .count = -1, .idle_ms = -1};
    struct rk_sub *s = NULL;
    struct rk_delivery d;
    struct cursor c = {.fd = -1};
    long printed = 0, in_snapshot = 0;
    int rc = parse(argc, argv, &o, &s), announced = 0;
    struct sigaction sa = {.sa_handler = on_signal};

    if (rc >= 0)
        goto out;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    rc = start(s, &o, &c);
    if (rc >= 0)
        goto out;
    rc = 0;
    rk_render_header(stdout, o.format);
    fflush(stdout);
    while ((o.count < 0 || printed < o.count) && next_event(s, &o, &c, &d, &rc)) {
        rk_render_event(stdout, o.format, d.seq, d.recv_ns, d.topic, NULL, d.event, d.event_len);
        if (fflush(stdout) != 0) {
            fprintf(stderr, "renkei-sub: writing standard output: %s\n", strerror(errno));
            rc = 1;
            break;
        }
        if (!d.from_snapshot)
            cursor_save(&c, rk_sub_position(s), rk_sub_log_id(s), 0);
        in_snapshot += d.from_snapshot;
        printed++;
        announce_snapshot(s, in_snapshot, &announced);
    }
    announce_snapshot(s, in_snapshot, &announced);
    cursor_save(&c, rk_sub_position(s), rk_sub_log_id(s), 1);
    fprintf(stderr, "renkei-sub: %ld events, %llu gaps filled from the log (%llu events), next seq %llu\n",
            printed, (unsigned long long)rk_sub_gaps_filled(s),
            (unsigned long long)rk_sub_events_filled(s), (unsigned long long)rk_sub_position(s));
out:
    if (c.fd >= 0)
        close(c.fd);
    rk_sub_destroy(&s);
    return rc;
}
