/* renkei-replay: print the broker's stored history, or a range of it. */
#include "rk_reader.h"
#include "rk_render.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_REPLAY "tcp://127.0.0.1:7703"

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
        "      --format json|table  JSON lines (default) or a table for people\n"
        "  -t, --timeout MS         give up when the broker does not answer [5000]\n"
        "  -h, --help               show this help and exit\n"
        "\n"
        "A summary (events printed, the log's last sequence) goes to stderr.\n",
        DEFAULT_REPLAY);
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

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"replay", required_argument, NULL, 'r'}, {"from", required_argument, NULL, 'F'},
        {"to", required_argument, NULL, 'T'}, {"format", required_argument, NULL, 'o'},
        {"timeout", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *endpoint = DEFAULT_REPLAY;
    enum rk_render_format format = RK_RENDER_JSON;
    uint64_t from = 1, to = 0, count = 0;
    int timeout_ms = 5000, c, rc;
    struct rk_reader *r = NULL;
    struct rk_record rec;

    while ((c = getopt_long(argc, argv, "r:t:h", lo, NULL)) != -1) {
        switch (c) {
        case 'r': endpoint = optarg; break;
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
        default: fprintf(stderr, "Try 'renkei-replay --help'.\n"); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "renkei-replay: unexpected argument \"%s\"; try --help\n", argv[optind]);
        return 2;
    }
    if (to && to < from) {
        fprintf(stderr, "renkei-replay: --to %llu is before --from %llu\n",
                (unsigned long long)to, (unsigned long long)from);
        return 2;
    }
    if (rk_reader_new(endpoint, &r) != 0) {
        fprintf(stderr, "renkei-replay: --replay %s: %s\n", endpoint, strerror(errno));
        return 2;
    }
    rk_reader_seek(r, from, to);
    rk_render_header(stdout, format);
    while ((rc = rk_reader_next(r, timeout_ms, &rec)) == 0) {
        if (rk_render_event(stdout, format, rec.seq, rec.recv_ns, NULL, rec.event, rec.event_len) != 0) {
            rc = -1;
            errno = EIO;
            break;
        }
        count++;
    }
    if (rc == RK_READER_EOF) {
        fprintf(stderr, "renkei-replay: %llu events; the log ends at seq %llu\n",
                (unsigned long long)count, (unsigned long long)rk_reader_head(r));
        rc = 0;
    } else if (errno == ETIMEDOUT) {
        fprintf(stderr, "renkei-replay: no answer from %s within %d ms: is renkei-broker running?\n",
                endpoint, timeout_ms);
        rc = 3;
    } else {
        fprintf(stderr, "renkei-replay: %s\n", errno == EPROTO ? rk_reader_error(r) : strerror(errno));
        rc = 1;
    }
    rk_reader_destroy(&r);
    return rc;
}
