/* renkei-gateway: follows the broker like any subscriber and serves the
 * disaster board, its JSON API and the live stream over HTTP. */
#include "rk_diag.h"
#include "rk_gw_follow.h"
#include "rk_gw_http.h"
#include "rk_gw_model.h"
#include "rk_toolopt.h"
#include "rk_wire.h" /* RK_DEFAULT_FEED, _REPLAY */

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#ifndef RK_GW_WEB_DIR
#define RK_GW_WEB_DIR "/usr/local/share/renkei/web"
#endif
#ifndef RK_VERSION
#define RK_VERSION "0"
#endif

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

struct opts {
    const char *feed, *replay, *bind, *web;
    long port, silent_s, window_s, ring, timeout_ms;
    const char *broker_key, *key;
    const char *ingest, *tokens, *tls_cert, *tls_key;
};

static void usage(FILE *out)
{
    fprintf(out,
        "Usage: renkei-gateway [OPTION]...\n"
        "Follow a renkei broker and serve, over HTTP, the disaster board (a page in\n"
        "Japanese for a response centre: requests, map, towns, KPIs, live), its JSON\n"
        "API and the live stream (server-sent events). Open http://BIND:PORT/.\n"
        "\n"
        "Options:\n"
        "  -f, --feed ENDPOINT      broker live feed [%s]\n"
        "  -r, --replay ENDPOINT    broker replay socket (state, timelines) [%s]\n"
        "  -i, --ingest ENDPOINT    broker ingest socket, for posted events [%s]\n"
        RK_TOOLOPT_KEYS_HELP
        "      --bind ADDR          IPv4 address to listen on [127.0.0.1]\n"
        "  -p, --port PORT          HTTP port [7780]\n"
        "      --web DIR            the board's files [%s]\n"
        "      --silent-after SEC   a town is marked silent after SEC seconds without\n"
        "                           publishing [900]\n"
        "      --town-window SEC    at start, read this much of the log for the towns'\n"
        "                           last publishes [86400]\n"
        "      --ring N             recent events kept for resuming streams [65536]\n"
        "      --timeout-ms MS      one broker answer, before asking again [5000]\n"
        "      --tokens FILE        accept POST /api/events with bearer tokens: lines of\n"
        "                           TOKEN TENANT [KEYFILE] (the tenant's secret key);\n"
        "                           without it, posting is off\n"
        "      --tls-cert FILE      serve HTTPS with this PEM certificate (chain) ...\n"
        "      --tls-key FILE       ... and its PEM private key\n"
        "      --log-level LEVEL    error, warn, info or debug (libmicrohttpd's messages,\n"
        "                           such as a client gone mid-answer) [info]\n"
        "  -h, --help               this text\n"
        "      --version            the version\n"
        "\n"
        "API (JSON; see renkei-gateway(8)): /api/requests, /api/requests/ID,\n"
        "/api/towns, /api/kpis, /api/events?from=SEQ (NDJSON), /api/stream (SSE),\n"
        "/api/status; POST /api/events with --tokens. Stops cleanly on SIGTERM or SIGINT.\n",
        RK_DEFAULT_FEED, RK_DEFAULT_REPLAY, RK_DEFAULT_INGEST, RK_GW_WEB_DIR);
}

static int number(const char *name, const char *v, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (!*v || *end || errno || n < min || n > max) {
        fprintf(stderr, "renkei-gateway: %s: must be an integer %ld..%ld, got \"%s\"\n", name,
                min, max, v);
        return -1;
    }
    *out = n;
    return 0;
}

enum { O_BIND = 2001, O_WEB, O_SILENT, O_WINDOW, O_RING, O_TIMEOUT, O_VERSION, O_TOKENS, O_CERT, O_KEY, O_LEVEL };

static int parse(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"feed", required_argument, NULL, 'f'}, {"replay", required_argument, NULL, 'r'},
        {"bind", required_argument, NULL, O_BIND}, {"port", required_argument, NULL, 'p'},
        {"web", required_argument, NULL, O_WEB}, {"silent-after", required_argument, NULL, O_SILENT},
        {"town-window", required_argument, NULL, O_WINDOW}, {"ring", required_argument, NULL, O_RING},
        {"timeout-ms", required_argument, NULL, O_TIMEOUT}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, O_VERSION}, {"ingest", required_argument, NULL, 'i'},
        {"tokens", required_argument, NULL, O_TOKENS}, {"tls-cert", required_argument, NULL, O_CERT},
        {"tls-key", required_argument, NULL, O_KEY}, {"log-level", required_argument, NULL, O_LEVEL},
        RK_TOOLOPT_KEYS_LONGOPTS, {NULL, 0, NULL, 0}};
    int c, bad = 0;
    while ((c = getopt_long(argc, argv, "f:r:i:p:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': o->feed = optarg; break;
        case 'r': o->replay = optarg; break;
        case 'i': o->ingest = optarg; break;
        case O_TOKENS: o->tokens = optarg; break;
        case O_CERT: o->tls_cert = optarg; break;
        case O_KEY: o->tls_key = optarg; break;
        case O_LEVEL: {
            int l = rk_diag_parse_level(optarg);
            if (l < 0) {
                fprintf(stderr, "renkei-gateway: --log-level: error, warn, info or debug, got "
                        "\"%s\"\n", optarg);
                bad = 1;
            } else {
                rk_diag_threshold = (enum rk_diag_level)l;
            }
            break;
        }
        case O_BIND: o->bind = optarg; break;
        case 'p': bad |= number("--port", optarg, 1, 65535, &o->port); break;
        case O_WEB: o->web = optarg; break;
        case O_SILENT: bad |= number("--silent-after", optarg, 1, 86400 * 366, &o->silent_s); break;
        case O_WINDOW: bad |= number("--town-window", optarg, 0, 86400 * 3660, &o->window_s); break;
        case O_RING: bad |= number("--ring", optarg, 16, 10000000, &o->ring); break;
        case O_TIMEOUT: bad |= number("--timeout-ms", optarg, 100, 600000, &o->timeout_ms); break;
        case RK_TOOLOPT_BROKER_KEY: o->broker_key = optarg; break;
        case RK_TOOLOPT_KEY: o->key = optarg; break;
        case 'h': usage(stdout); exit(0);
        case O_VERSION: printf("renkei-gateway %s\n", RK_VERSION); exit(0);
        default: bad = 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "renkei-gateway: unexpected argument \"%s\"\n", argv[optind]);
        bad = 1;
    }
    if (bad)
        fprintf(stderr, "Try 'renkei-gateway --help'.\n");
    return bad ? -1 : 0;
}

static int check_web(const char *dir)
{
    char index[4096];
    snprintf(index, sizeof index, "%s/index.html", dir);
    if (access(index, R_OK) == 0)
        return 0;
    fprintf(stderr, "renkei-gateway: --web %s: no readable index.html there (%s); give the "
            "directory the board was installed to\n", dir, strerror(errno));
    return -1;
}

int main(int argc, char **argv)
{
    struct opts o = {RK_DEFAULT_FEED, RK_DEFAULT_REPLAY, "127.0.0.1", RK_GW_WEB_DIR,
                     7780, 900, 86400, 65536, 5000, NULL, NULL, RK_DEFAULT_INGEST, NULL, NULL, NULL};
    struct rk_client_options client = {0};
    struct rk_gw_follow *follow = NULL;
    struct rk_gw_http *http = NULL;
    struct rk_gw_post *post = NULL;
    char why[300];
    int rc = 1;
    if (parse(argc, argv, &o) || check_web(o.web) ||
        rk_toolopt_keys("renkei-gateway", o.broker_key, o.key, &client))
        return 2;
    if (o.tokens && rk_gw_post_open(o.tokens, o.ingest, o.broker_key, (int)o.timeout_ms, &post,
                                    why, sizeof why)) {
        fprintf(stderr, "renkei-gateway: %s\n", why);
        return 2;
    }
    void *zctx = zmq_ctx_new();
    client.zmq_ctx = zctx;
    struct rk_gw_model *m = rk_gw_model_new((size_t)o.ring);
    struct rk_gw_follow_options fo = {o.feed, o.replay, client, o.window_s, (int)o.timeout_ms};
    struct rk_gw_http_options ho = {o.bind, (uint16_t)o.port, o.web, o.replay, client,
                                    o.silent_s, (int)o.timeout_ms, post, o.tls_cert, o.tls_key};
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    /* Listening first: a taken port or a bad certificate stops the start
     * at once; the API serves an empty model until the follower has loaded. */
    if (rk_gw_http_start(m, &ho, &http, why, sizeof why)) {
        fprintf(stderr, "renkei-gateway: %s\n", why);
        goto out;
    }
    int e = rk_gw_follow_start(m, &fo, &follow);
    if (e) {
        fprintf(stderr, "renkei-gateway: cannot follow %s / %s: %s\n", o.feed, o.replay,
                strerror(e));
        goto out;
    }
    RK_DIAG(RK_DIAG_INFO, "ready", "url=%s://%s:%ld/ feed=\"%s\" replay=\"%s\"",
            o.tls_cert ? "https" : "http", o.bind, o.port, o.feed, o.replay);
    while (!stop_requested)
        pause();
    rc = 0;
out:
    rk_gw_model_close(m);
    rk_gw_http_stop(&http);
    rk_gw_follow_stop(&follow);
    rk_gw_post_close(&post);
    rk_gw_model_destroy(&m);
    zmq_ctx_term(zctx);
    if (rc == 0)
        RK_DIAG(RK_DIAG_INFO, "stopped", "%s", "");
    return rc;
}
