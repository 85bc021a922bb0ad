/* renkei-broker: command line and signals; the work is in rk_broker. */
#include "rk_broker.h"
#include "rk_diag.h"

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
        "Usage: renkei-broker [OPTION]...\n"
        "Relay and store renkei events: municipalities publish KPI updates and\n"
        "disaster-support events; every event is stored in an LMDB log before it is\n"
        "acknowledged, relayed live to subscribers, and can be replayed.\n"
        "\n"
        "Runs with no options: loopback endpoints, data in ./%s.\n"
        "\n"
        "  -i, --ingest ENDPOINT     where agents publish (ROUTER)     [%s]\n"
        "  -f, --feed ENDPOINT       live events for subscribers (XPUB) [%s]\n"
        "  -r, --replay ENDPOINT     replay requests (ROUTER)          [%s]\n"
        "  -d, --data-dir DIR        LMDB log directory, created if missing [%s]\n"
        "  -D, --durability MODE     full: fsync before each acknowledgement, survives a\n"
        "                            power cut (default); os: no fsync, survives a broker\n"
        "                            crash but not a power cut\n"
        "  -b, --batch-max N         most publishes committed in one transaction [%d]\n"
        "  -M, --map-max SIZE        cap on the log's size, e.g. 500G; the LMDB map\n"
        "                            starts at 256M and doubles when full [no cap: the\n"
        "                            disk is the limit]. At the cap, publishes are\n"
        "                            refused with E_STORAGE; reads go on\n"
        "  -l, --log-level LEVEL     error, warn, info or debug [info]\n"
        "  -h, --help                show this help and exit\n"
        "  -V, --version             show the version and exit\n"
        "\n"
        "Endpoints are ZeroMQ addresses: tcp://HOST:PORT or ipc:///path.\n"
        "Logs go to stderr as key=value lines; \"msg=ready\" means it accepts publishes.\n"
        "SIGINT or SIGTERM: commit and acknowledge what has arrived, then exit 0.\n",
        RK_DEFAULT_DATA_DIR, RK_DEFAULT_INGEST, RK_DEFAULT_FEED, RK_DEFAULT_REPLAY,
        RK_DEFAULT_DATA_DIR, RK_DEFAULT_BATCH_MAX);
}

/* "123", "800K", "64M", "2G", "1T" (powers of 1024) -> bytes. */
static int parse_size(const char *text, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    int shift = 0;
    if (end == text || errno || text[0] == '-')
        return -1;
    switch (*end) {
    case '\0': break;
    case 'K': case 'k': shift = 10; end++; break;
    case 'M': case 'm': shift = 20; end++; break;
    case 'G': case 'g': shift = 30; end++; break;
    case 'T': case 't': shift = 40; end++; break;
    default: return -1;
    }
    if (*end || v > (UINT64_MAX >> shift) || (v << shift) < (1u << 20))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

static int parse_args(int argc, char **argv, struct rk_broker_config *cfg)
{
    static const struct option opts[] = {
        {"ingest", required_argument, NULL, 'i'},
        {"feed", required_argument, NULL, 'f'},
        {"replay", required_argument, NULL, 'r'},
        {"data-dir", required_argument, NULL, 'd'},
        {"durability", required_argument, NULL, 'D'},
        {"batch-max", required_argument, NULL, 'b'},
        {"map-max", required_argument, NULL, 'M'},
        {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c, level;
    char *end;
    long n;

    while ((c = getopt_long(argc, argv, "i:f:r:d:D:b:M:l:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'i': cfg->ingest_endpoint = optarg; break;
        case 'f': cfg->feed_endpoint = optarg; break;
        case 'r': cfg->replay_endpoint = optarg; break;
        case 'd': cfg->data_dir = optarg; break;
        case 'D':
            if (strcmp(optarg, "full") == 0)
                cfg->durability = RK_LOG_FULL;
            else if (strcmp(optarg, "os") == 0)
                cfg->durability = RK_LOG_OS;
            else {
                fprintf(stderr, "renkei-broker: --durability: must be full or os, got \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'b':
            n = strtol(optarg, &end, 10);
            if (*end || n < 1 || n > 65536) {
                fprintf(stderr, "renkei-broker: --batch-max: must be 1..65536, got \"%s\"\n", optarg);
                return 2;
            }
            cfg->batch_max = (int)n;
            break;
        case 'M':
            if (parse_size(optarg, &cfg->map_max) != 0) {
                fprintf(stderr, "renkei-broker: --map-max: must be a size of at least 1M, "
                        "such as 800M, 64G or 2T, got \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'l':
            level = rk_diag_parse_level(optarg);
            if (level < 0) {
                fprintf(stderr, "renkei-broker: --log-level: must be error, warn, info or debug, got \"%s\"\n", optarg);
                return 2;
            }
            rk_diag_threshold = (enum rk_diag_level)level;
            break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("renkei-broker %s\n", RK_VERSION); return 0;
        default:
            fprintf(stderr, "Try 'renkei-broker --help'.\n");
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "renkei-broker: unexpected argument \"%s\"; try --help\n", argv[optind]);
        return 2;
    }
    return -1;
}

int main(int argc, char **argv)
{
    struct rk_broker_config cfg;
    struct sigaction sa;
    int rc;

    rk_broker_config_defaults(&cfg);
    rc = parse_args(argc, argv, &cfg);
    if (rc >= 0)
        return rc;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return rk_broker_run(&cfg, &stop_requested) == 0 ? 0 : 1;
}
