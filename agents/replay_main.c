/* renkei-replay: print the broker's stored history, or a range of it. */
#include "rk_asof.h"
#include "rk_event.h"
#include "rk_log.h"
#include "rk_probe.h"
#include "rk_reader.h"
#include "rk_render.h"
#include "rk_time.h"
#include "rk_wire.h" /* RK_DEFAULT_REPLAY */
#include "rk_toolopt.h"
#include "rk_topics.h"

#include <errno.h>
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <zmq.h>


static void usage(FILE *out)
{
    fprintf(out,
        "Usage: renkei-replay [OPTION]...\n"
        "Print events stored in the renkei broker's log, oldest first, one per line,\n"
        "with the sequence number and time the broker stored each under.\n"
        "\n"
        "  -r, --replay ENDPOINT    broker replay socket [%s]\n"
        "      --from SEQ           first sequence number [1]\n"
        "      --to SEQ             last sequence number [the end of the log]\n"
        "      --since TIME         first event received at or after TIME; found\n"
        "                           without scanning the log from its start. Every TIME\n"
        "                           is now, a local date and time (TZ): 2026-02-17 or\n"
        "                           \"2026-02-17 10:24\", or RFC 3339 with an offset:\n"
        "                           2026-02-17T10:24:00+09:00\n"
        "      --until TIME         last event received at or before TIME\n"
        "      --snapshot           print the latest event of each entity (each KPI of\n"
        "                           a municipality and fiscal year, each aid request)\n"
        "                           instead of the history; with --until, as of that\n"
        "                           time. The last JSON line, {\"snapshot\":{\"seq\":N,...}},\n"
        "                           names the sequence the state is consistent with\n"
        "      --at SEQ             with --snapshot: the state as of sequence SEQ\n"
        "      --as-of TIME         audit: the state every entity was in at TIME: each\n"
        "                           KPI's figures and each aid request's state and\n"
        "                           totals with its offers (folded through the\n"
        "                           lifecycle). Takes --family, --prefecture and\n"
        "                           --municipality (the publisher: of a KPI, or of a\n"
        "                           request's aid.request, i.e. its requester),\n"
        "                           --requester-prefecture and --requester (requests\n"
        "                           only), --request and --kpi; ends with a\n"
        "                           {\"as_of\":{...}} summary line\n"
        "      --state              each disaster-support request's state now, as the\n"
        "                           broker folds it (totals, offers), all consistent\n"
        "                           with one sequence; takes --request and one of\n"
        "                           --requester-prefecture, --requester (or, the same\n"
        "                           for a request, --prefecture, --municipality); ends with a\n"
        "                           {\"state\":{\"seq\":N,\"log_id\":...}} summary line\n"
        "\n"
        "Filters, applied by the broker (combined with AND):\n"
        "      --family kpi|aid     event family\n"
        "      --type TYPE          e.g. aid.request, kpi.update\n"
        "      --prefecture NN      published by a municipality of this prefecture (two\n"
        "                           digits, e.g. 30 for Wakayama)\n"
        "      --municipality CODE  published by this local government (six digits,\n"
        "                           e.g. 304280)\n"
        "      --requester-prefecture NN  disaster-support events about requests made\n"
        "                           in this prefecture, whoever published them (the\n"
        "                           requests, other towns' offers, dispatches...)\n"
        "      --requester CODE     the same, for the requests of this local government\n"
        "                           (not with --prefecture or --municipality)\n"
        "      --request ID         one disaster-support request and its offers etc.\n"
        "      --kpi ID             one KPI's updates\n"
        "\n"
        "Output and connection:\n"
        "      --format json|table  JSON lines (default) or a table for people\n"
        "  -t, --timeout MS         give up when the broker does not answer [5000]\n"
        "      --verify             check the log's hash chain instead of printing events:\n"
        "                           reads the LMDB files in --data-dir directly (the broker\n"
        "                           may keep running), names the first bad record, and\n"
        "                           prints the chain head to keep elsewhere; with --to\n"
        "                           SEQ, up to that record (the head at SEQ)\n"
        "      --expect-head HEX    with --verify: fail (exit 1) unless the chain head\n"
        "                           (at --to SEQ, or the end) is HEX, kept from earlier\n"
        "  -d, --data-dir DIR       the broker's data directory, for --verify [%s]\n"
        RK_TOOLOPT_KEYS_HELP
        "  -h, --help               show this help and exit\n"
        "      --version            print the version and exit\n"
        "\n"
        "A summary (events printed, the log's last sequence) goes to stderr.\n"
        "Exit status: 0 done, 1 refused or a bad record found, 2 usage error,\n"
        "3 the broker did not answer.\n",
        RK_DEFAULT_REPLAY, RK_DEFAULT_DATA_DIR);
}

static int parse_seq(const char *opt, const char *v, uint64_t *out)
{
    char *end;
    errno = 0;
    *out = strtoull(v, &end, 10);
    if (*end || errno || *out == 0 || v[0] == '-') {
        fprintf(stderr, "renkei-replay: --%s: must be a sequence number >= 1, got \"%s\"\n", opt, v);
        return -1;
    }
    return 0;
}

/* A date and time without an offset, in local time (TZ): "2026-02-17",
 * "2026-02-17 10:24", "2026-02-17T10:24:00". Returns 0 with *ns. */
static int parse_local_time(const char *v, int64_t *ns)
{
    static const char *const forms[] = {"%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S",
                                        "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d"};
    for (size_t i = 0; i < sizeof forms / sizeof *forms; i++) {
        struct tm tm = {0};
        const char *end = strptime(v, forms[i], &tm);
        if (!end || *end)
            continue;
        tm.tm_isdst = -1;
        time_t t = mktime(&tm);
        if (t == (time_t)-1)
            return -1;
        *ns = (int64_t)t * 1000000000LL;
        return 0;
    }
    return -1;
}

static int parse_time(const char *opt, const char *v, int64_t *ns)
{
    if (strcmp(v, "now") == 0) {
        *ns = rk_time_now();
        return 0;
    }
    if ((rk_time_parse(v, strlen(v), ns) != 0 && parse_local_time(v, ns) != 0) || *ns <= 0) {
        fprintf(stderr, "renkei-replay: --%s: must be now, a local date and time such as "
                "2026-02-17 or 2026-02-17 10:24 (TZ), or an RFC 3339 time with an offset such "
                "as 2026-02-17T10:24:00+09:00, got \"%s\"\n", opt, v);
        return -1;
    }
    return 0;
}

static int parse_id(const char *opt, const char *v, char out[RK_WIRE_ID_MAX + 1])
{
    if (!rk_event_id_valid(v, strlen(v))) {
        fprintf(stderr, "renkei-replay: --%s: must be 1..64 characters of A-Z a-z 0-9 . _ : -, "
                "got \"%s\"\n", opt, v);
        return -1;
    }
    snprintf(out, RK_WIRE_ID_MAX + 1, "%s", v);
    return 0;
}

static int build_filter(const struct rk_topic_query *tq, struct rk_wire_filter *f)
{
    char why[256];
    int n = rk_topics_for(tq, f->topics, RK_WIRE_TOPICS_MAX, why, sizeof why);
    if (n < 0) {
        fprintf(stderr, "renkei-replay: %s\n", why);
        return -1;
    }
    f->ntopics = (unsigned)n;
    if (f->from_ns && f->to_ns && f->to_ns < f->from_ns) {
        fprintf(stderr, "renkei-replay: --until is before --since\n");
        return -1;
    }
    return 0;
}

static void show_progress(uint64_t records, void *arg)
{
    (void)arg;
    fprintf(stderr, "renkei-replay: %llu records verified so far\n", (unsigned long long)records);
}

/* --verify --to SEQ: the log reaches SEQ; --expect-head: its chain hash
 * there is the one written down. Returns 0, or 1 after saying why. */
static int verify_target(const struct rk_log_verdict *v, uint64_t to, const char *head,
                         const char *expect)
{
    if (to && v->last_seq < to) {
        printf("{\"ok\":false,\"last_seq\":%llu,\"error\":\"the log ends before --to %llu\"}\n",
               (unsigned long long)v->last_seq, (unsigned long long)to);
        fprintf(stderr, "renkei-replay: the log ends at seq %llu, before --to %llu\n",
                (unsigned long long)v->last_seq, (unsigned long long)to);
        return 1;
    }
    if (expect && strcasecmp(expect, head) != 0) {
        printf("{\"ok\":false,\"last_seq\":%llu,\"chain_head\":\"%s\",\"expected\":\"%s\","
               "\"error\":\"chain head differs\"}\n", (unsigned long long)v->last_seq, head,
               expect);
        fprintf(stderr, "renkei-replay: the chain head at seq %llu is %s, not the expected %s: "
                "the log is not the one whose head was written down (altered, or another log)\n",
                (unsigned long long)v->last_seq, head, expect);
        return 1;
    }
    return 0;
}

/* --verify: walk the chain in the LMDB files (up to `to`, 0: the end); one
 * JSON line on stdout. */
static int verify(const char *data_dir, uint64_t to, const char *expect)
{
    struct rk_log *log;
    struct rk_log_verdict v;
    char why[512], head[2 * RK_LOG_HASH_BYTES + 1];
    int rc = rk_log_open_readonly(&log, data_dir, why, sizeof why);
    if (rc) {
        fprintf(stderr, "renkei-replay: --data-dir %s: %s\n", data_dir, why);
        return 2;
    }
    rc = rk_log_verify_to(log, to, &v, show_progress, 1000000, NULL);
    char id[RK_LOG_ID_HEX];
    snprintf(id, sizeof id, "%s", rk_log_id(log)); /* "" before any broker with identities */
    rk_log_destroy(&log);
    if (rc) {
        fprintf(stderr, "renkei-replay: reading %s: %s\n", data_dir, rk_log_strerror(rc));
        return 1;
    }
    sodium_bin2hex(head, sizeof head, v.head, RK_LOG_HASH_BYTES);
    if (v.bad_seq) {
        printf("{\"ok\":false,\"records_good\":%llu,\"bad_seq\":%llu,\"error\":\"%s\","
               "\"chain_head_before\":\"%s\"}\n", (unsigned long long)v.records,
               (unsigned long long)v.bad_seq, v.why, head);
        fprintf(stderr, "renkei-replay: record %llu is bad: %s (records before it verify)\n",
                (unsigned long long)v.bad_seq, v.why);
        return 1;
    }
    if ((rc = verify_target(&v, to, head, expect)) != 0)
        return rc;
    printf("{\"ok\":true,\"records\":%llu,\"first_seq\":%llu,\"last_seq\":%llu,"
           "\"chain_head\":\"%s\",\"log_id\":\"%s\"}\n", (unsigned long long)v.records,
           (unsigned long long)v.first_seq, (unsigned long long)v.last_seq, head, id);
    fprintf(stderr, "renkei-replay: chain verified: %llu records; chain head %s\n",
            (unsigned long long)v.records, head);
    return 0;
}

/* --as-of: takes only the filters that mean something for a state. */
static int audit_as_of(const char *endpoint, const struct rk_client_options *client,
                       int timeout_ms, int64_t at_ns, const struct rk_topic_query *tq,
                       const struct rk_wire_filter *f, enum rk_render_format format)
{
    struct rk_asof_query q = {.endpoint = endpoint, .client = client, .timeout_ms = timeout_ms,
                              .at_ns = at_ns, .family = tq->family, .prefecture = tq->prefecture,
                              .municipality = tq->municipality,
                              .requester_prefecture = tq->requester_prefecture,
                              .requester = tq->requester,
                              .request_id = f->request_id[0] ? f->request_id : NULL,
                              .kpi_id = f->kpi_id[0] ? f->kpi_id : NULL};
    char why[512];
    if (tq->type || f->from_ns || f->to_ns) {
        fprintf(stderr, "renkei-replay: --as-of: takes --family, --prefecture, --municipality, "
                "--requester-prefecture, --requester, --request and --kpi, not --type, "
                "--since or --until\n");
        return 2;
    }
    if (rk_asof_print(&q, stdout, format, why, sizeof why) != 0) {
        fprintf(stderr, "renkei-replay: --as-of: %s\n", why);
        return errno == ETIMEDOUT ? 3 : 1;
    }
    return 0;
}

/* --state: the broker's fold of every request, one moment. */
/* The broker did not answer within timeout_ms: why, from a probe. */
static void say_no_answer(const char *endpoint, const struct rk_client_options *client,
                          int timeout_ms)
{
    char why[1024];
    rk_probe(endpoint, ZMQ_DEALER, client, "--replay", timeout_ms, 2000, why, sizeof why);
    fprintf(stderr, "renkei-replay: %s\n", why);
}

static int print_state(const char *endpoint, const struct rk_client_options *client,
                       int timeout_ms, const struct rk_topic_query *tq,
                       const struct rk_wire_filter *f, enum rk_render_format format)
{
    struct rk_reader *r = NULL;
    struct rk_state st;
    int rc = 0;
    int places = !!tq->prefecture + !!tq->municipality + !!tq->requester_prefecture +
                 !!tq->requester;
    if (tq->type || (tq->family && strcmp(tq->family, "aid") != 0) || f->from_ns || f->to_ns ||
        f->kpi_id[0] || places > 1) {
        fprintf(stderr, "renkei-replay: --state: takes --request and one of "
                "--requester-prefecture, --requester, --prefecture or --municipality (for a "
                "request, its publisher is its requester), not --type, --kpi, --since or "
                "--until\n");
        return 2;
    }
    const char *requester = tq->requester               ? tq->requester
                            : tq->requester_prefecture ? tq->requester_prefecture
                            : tq->municipality         ? tq->municipality
                                                       : tq->prefecture;
    const char *opt = tq->requester               ? "requester"
                      : tq->requester_prefecture ? "requester-prefecture"
                      : tq->municipality         ? "municipality"
                                                 : "prefecture";
    size_t want = tq->requester || tq->municipality ? 6u : 2u;
    if (requester && (strlen(requester) != want ||
                      strspn(requester, "0123456789") != strlen(requester))) {
        fprintf(stderr, "renkei-replay: --%s: must be %s digits, got \"%s\"\n", opt,
                want == 6 ? "six" : "two", requester);
        return 2;
    }
    if (rk_reader_open(endpoint, client, &r) != 0) {
        fprintf(stderr, "renkei-replay: --replay %s: %s\n", endpoint, strerror(errno));
        return 2;
    }
    if (rk_reader_state(r, f->request_id[0] ? f->request_id : NULL, requester, timeout_ms,
                        &st) != 0) {
        if (errno == ETIMEDOUT)
            say_no_answer(endpoint, client, timeout_ms);
        else
            fprintf(stderr, "renkei-replay: --state: %s\n",
                    rk_reader_error(r)[0] ? rk_reader_error(r) : strerror(errno));
        rk_reader_destroy(&r);
        return errno == ETIMEDOUT ? 3 : 1;
    }
    if (rk_render_state(stdout, format, &st) != 0 || fflush(stdout) != 0) {
        fprintf(stderr, "renkei-replay: writing standard output: %s\n", strerror(errno));
        rc = 1;
    } else {
        fprintf(stderr, "renkei-replay: state of %zu requests, consistent with seq %llu (log %s)\n",
                st.count, (unsigned long long)st.seq, st.log_id[0] ? st.log_id : "without identity");
    }
    rk_state_free(&st);
    rk_reader_destroy(&r);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"replay", required_argument, NULL, 'r'}, {"from", required_argument, NULL, 'F'},
        {"to", required_argument, NULL, 'T'}, {"format", required_argument, NULL, 'o'},
        {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, RK_TOOLOPT_VERSION},
        {"verify", no_argument, NULL, 'V'}, {"data-dir", required_argument, NULL, 'd'},
        {"expect-head", required_argument, NULL, 'H'},
        {"since", required_argument, NULL, 'S'}, {"until", required_argument, NULL, 'U'},
        {"family", required_argument, NULL, 'a'}, {"type", required_argument, NULL, 'y'},
        {"prefecture", required_argument, NULL, 'p'}, {"municipality", required_argument, NULL, 'm'},
        {"request", required_argument, NULL, 'q'}, {"kpi", required_argument, NULL, 'k'},
        {"snapshot", no_argument, NULL, 'N'}, {"at", required_argument, NULL, 'A'},
        {"as-of", required_argument, NULL, 'O'}, {"state", no_argument, NULL, 'Z'},
        {"requester-prefecture", required_argument, NULL, 'P'},
        {"requester", required_argument, NULL, 'M'},
        RK_TOOLOPT_KEYS_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    const char *endpoint = RK_DEFAULT_REPLAY, *data_dir = RK_DEFAULT_DATA_DIR;
    int want_verify = 0, want_snapshot = 0, want_state = 0;
    const char *expect_head = NULL; /* --verify: the chain head at --to (or the end) */
    struct rk_topic_query tq = {0};
    struct rk_wire_filter filter = {0};
    enum rk_render_format format = RK_RENDER_JSON;
    uint64_t from = 1, to = 0, at = 0, count = 0;
    int64_t as_of = 0;
    int timeout_ms = 5000, c, rc;
    struct rk_reader *r = NULL;
    struct rk_record rec;
    const char *broker_key = NULL, *my_key = NULL;
    struct rk_client_options client = {0};

    while ((c = getopt_long(argc, argv, "r:t:d:h", lo, NULL)) != -1) {
        switch (c) {
        case 'r': endpoint = optarg; break;
        case RK_TOOLOPT_BROKER_KEY: broker_key = optarg; break;
        case RK_TOOLOPT_KEY: my_key = optarg; break;
        case 'V': want_verify = 1; break;
        case 'H': expect_head = optarg; break;
        case 'N': want_snapshot = 1; break;
        case 'Z': want_state = 1; break;
        case 'A': if (parse_seq("at", optarg, &at)) return 2; break;
        case 'O': if (parse_time("as-of", optarg, &as_of)) return 2; break;
        case 'S': if (parse_time("since", optarg, &filter.from_ns)) return 2; break;
        case 'U': if (parse_time("until", optarg, &filter.to_ns)) return 2; break;
        case 'a': tq.family = optarg; break;
        case 'y': tq.type = optarg; break;
        case 'p': tq.prefecture = optarg; break;
        case 'm': tq.municipality = optarg; break;
        case 'P': tq.requester_prefecture = optarg; break;
        case 'M': tq.requester = optarg; break;
        case 'q': if (parse_id("request", optarg, filter.request_id)) return 2; break;
        case 'k': if (parse_id("kpi", optarg, filter.kpi_id)) return 2; break;
        case 'd': data_dir = optarg; break;
        case 'F': if (parse_seq("from", optarg, &from)) return 2; break;
        case 'T': if (parse_seq("to", optarg, &to)) return 2; break;
        case 'o':
            rc = rk_render_parse_format(optarg);
            if (rc < 0) {
                fprintf(stderr, "renkei-replay: --format: must be json or table, got \"%s\"\n", optarg);
                return 2;
            }
            format = (enum rk_render_format)rc;
            break;
        case 't':
            timeout_ms = atoi(optarg);
            if (timeout_ms < 1) {
                fprintf(stderr, "renkei-replay: --timeout: must be a positive number of ms, got \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'h': usage(stdout); return 0;
        case RK_TOOLOPT_VERSION: printf("renkei-replay %s\n", RK_VERSION); return 0;
        default: fprintf(stderr, "Try 'renkei-replay --help'.\n"); return 2;
        }
    }
    if (rk_toolopt_keys("renkei-replay", broker_key, my_key, &client) != 0 ||
        (!want_verify && rk_toolopt_endpoint("renkei-replay", "--replay", endpoint) != 0))
        return 2;
    if (optind < argc) {
        fprintf(stderr, "renkei-replay: unexpected argument \"%s\"; try --help\n", argv[optind]);
        return 2;
    }
    if (want_verify)
        return verify(data_dir, to, expect_head);
    if (to && to < from) {
        fprintf(stderr, "renkei-replay: --to %llu is before --from %llu\n",
                (unsigned long long)to, (unsigned long long)from);
        return 2;
    }
    if (want_state && (as_of || want_snapshot || at || from != 1 || to)) {
        fprintf(stderr, "renkei-replay: --state: the state now; not with --as-of, --snapshot, "
                "--at, --from or --to\n");
        return 2;
    }
    if (want_state)
        return print_state(endpoint, &client, timeout_ms, &tq, &filter, format);
    if (as_of)
        return audit_as_of(endpoint, &client, timeout_ms, as_of, &tq, &filter, format);
    if (at && !want_snapshot) {
        fprintf(stderr, "renkei-replay: --at: only with --snapshot (for a range, use --to)\n");
        return 2;
    }
    if (want_snapshot && (from != 1 || to)) {
        fprintf(stderr, "renkei-replay: --snapshot: takes --at SEQ or --until TIME, not --from/--to\n");
        return 2;
    }
    if (build_filter(&tq, &filter) != 0)
        return 2;
    if (rk_reader_open(endpoint, &client, &r) != 0) {
        fprintf(stderr, "renkei-replay: --replay %s: %s\n", endpoint, strerror(errno));
        return 2;
    }
    rk_reader_seek(r, from, to);
    rk_reader_filter(r, &filter);
    if (want_snapshot)
        rk_reader_snapshot(r, at);
    rk_render_header(stdout, format);
    while ((rc = rk_reader_next(r, timeout_ms, &rec)) == 0) {
        if (rk_render_event(stdout, format, rec.seq, rec.recv_ns, NULL, rec.publisher,
                            rec.event, rec.event_len) != 0) {
            rc = -1;
            errno = EIO;
            break;
        }
        count++;
    }
    if (rc == RK_READER_EOF && want_snapshot) {
        uint64_t seq = rk_reader_snapshot_seq(r);
        if (format == RK_RENDER_JSON)
            printf("{\"snapshot\":{\"seq\":%llu,\"entities\":%llu}}\n",
                   (unsigned long long)seq, (unsigned long long)count);
        fprintf(stderr, "renkei-replay: snapshot of %llu entities, consistent with seq %llu\n",
                (unsigned long long)count, (unsigned long long)seq);
        rc = 0;
    } else if (rc == RK_READER_EOF) {
        fprintf(stderr, "renkei-replay: %llu events; the log ends at seq %llu\n",
                (unsigned long long)count, (unsigned long long)rk_reader_head(r));
        rc = 0;
    } else if (errno == ETIMEDOUT) {
        say_no_answer(endpoint, &client, timeout_ms);
        rc = 3;
    } else {
        fprintf(stderr, "renkei-replay: %s\n", errno == EPROTO ? rk_reader_error(r) : strerror(errno));
        rc = 1;
    }
    rk_reader_destroy(&r);
    return rc;
}
