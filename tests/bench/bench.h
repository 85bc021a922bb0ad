/*
 * bench.h - what the parts of renkei-bench share: the options, the event
 * generator, the broker process, the publishers and result printing
 * (bench_main.c), used by the live-feed workloads W2 and W4 (bench_live.c).
 */
#ifndef RK_BENCH_H
#define RK_BENCH_H

#include <limits.h>
#include <msgpack.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#define PROG "renkei-bench"
#define MAX_PUBLISHERS 4
#define SLICE_MS 250            /* waits are cut into slices so Ctrl-C is seen */
#define REPLY_TIMEOUT_MS 30000  /* a broker silent this long has stalled */

struct opts {
    uint64_t events;         /* W1: events per measurement, all publishers together */
    uint64_t replay_events;  /* W3: events loaded, then read back */
    uint64_t window;         /* most publishes in flight per publisher */
    uint64_t batch;          /* most events per publish message ("pubs"); 1: a pub each */
    uint64_t w2_events;      /* W2: events per measurement, published at w2_rate */
    uint64_t w2_rate;        /* W2: events/s */
    uint64_t w4_events;      /* W4: events ingested while the subscribers follow */
    uint64_t w4_subscribers;
    int w1, w2, w3, w4;      /* which workloads run */
    unsigned w1_cases;       /* W1 cases that run: bit 2*d+p, d 0 full 1 os, p 0 one 1 four */
    int json;                /* one JSON object per result line */
    const char *broker_bin;  /* NULL: renkei-broker next to this program */
};

struct evgen {
    msgpack_sbuffer buf;     /* the event last made */
    msgpack_packer pk;
    unsigned publisher;      /* in ids, so they stay unique across publishers */
    char sent_at[32];        /* now: the broker refuses sent_at 24 h ahead of its clock */
    char deadline[32];       /* a request's, after sent_at */
};

void evgen_init(struct evgen *g, unsigned publisher);
void evgen_release(struct evgen *g);
/* Makes event number i (0-based) of this publisher into g->buf. */
void evgen_make(struct evgen *g, uint64_t i);
/* The municipality and type of event i, the same for every publisher. */
const char *event_muni(uint64_t i);
const char *event_type(uint64_t i);

struct broker {
    pid_t pid;                     /* 0 = not running */
    char data_dir[PATH_MAX];       /* LMDB environment, removed after the measurement */
    char log_path[PATH_MAX];       /* its stdout and stderr */
    char ingest[PATH_MAX];         /* ipc:// endpoints */
    char feed[PATH_MAX];
    char replay[PATH_MAX];
};

struct bench {
    const struct opts *o;
    char broker_bin[PATH_MAX];
    char tmp[PATH_MAX];  /* mkdtemp directory; everything of the run is in it */
    int brokers;         /* started so far: numbers their files */
};

/* Starts a broker with an empty data directory; 0 once it is ready. */
int broker_start(struct broker *b, const char *bin, const char *tmp, int n, const char *durability);
/* Stops it (peak RSS into *rss first when rss is not NULL), dumps its log
 * when rc says something failed, removes its data; returns rc or -1. */
int finish_broker(struct broker *b, int rc, double *rss);
double peak_rss_mib(pid_t pid);
void reset_peak_rss(pid_t pid);

struct result {
    const char *workload;   /* "W1", "W1fill", "W3", "W3filtered", "W3+ingest" */
    const char *durability; /* "full", "os" */
    unsigned publishers;    /* 0: not a publishing workload (W3...) */
    uint64_t window;        /* 0: as publishers */
    uint64_t events;        /* W3filtered: records scanned */
    double events_per_s;
    double p50_ms, p99_ms, p999_ms; /* NAN: not measured (W3...) */
    double rss_mib;         /* NAN: could not be read */
    const char *filter;     /* W3filtered, W3requester: e.g. "prefecture:28"; else NULL */
    uint64_t delivered;     /* W3filtered, W3requester: events the filter let through */
    double delivered_per_s;
    const struct result *ingest; /* W3+ingest: the concurrent publisher's; NULL otherwise */
};

struct ingest_spec {
    const char *workload;    /* "W1", "W1fill" or "W3+ingest" */
    const char *durability;  /* of the broker it runs against */
    unsigned publishers;     /* 1..MAX_PUBLISHERS */
    uint64_t window;
    uint64_t events;         /* in total; with `stop`, the most it may publish */
    int progress;            /* 10 % lines on stderr */
    atomic_int *stop;        /* NULL, or publish until it is set */
    atomic_uint_fast64_t *outcomes; /* NULL, or counts replies as they come */
    unsigned id_base;        /* publisher numbers (in event ids) start above it, so
                              * W3+ingest's ids do not collide with W1fill's */
    uint64_t rate;           /* events/s per publisher; 0 = as fast as acks allow */
    _Atomic uint64_t *sent_ns; /* NULL, or (one publisher) where the send time of
                              * event i goes, for subscribers to read */
    uint64_t batch;          /* most events per message; 0 or 1: one pub each */
};

/* Runs the publishers against `endpoint` until every event has its outcome. */
int run_ingest(const struct ingest_spec *s, const char *endpoint, struct result *r);

extern volatile sig_atomic_t interrupted;
__attribute__((format(printf, 1, 2))) void complain(const char *fmt, ...);
uint64_t now_ns(void);        /* CLOCK_MONOTONIC */
void sleep_ms(int ms);
int cmp_u64(const void *a, const void *b);
/* Nearest-rank percentile of sorted nanoseconds, in ms (NAN when n is 0). */
double pct_ms(const uint64_t *sorted, uint64_t n, double p);
const char *fmt_ms(double v, char out[32]);
const char *json_num(double v, int decimals, char out[48]);

/* The live-feed workloads (bench_live.c). */
int measure_w2(struct bench *bx, unsigned subscribers);
int measure_w4(struct bench *bx);

#endif
