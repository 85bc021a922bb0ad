#include "rk_config.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <pwd.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rk_acl.h"
#include "rk_err.h"
#include "rk_ini.h"
#include "rk_keys.h"
#include "rk_security.h"

#define STR_(x) #x
#define STR(x) STR_(x)
#define FIELD(f) offsetof(struct rk_config, f)
#define WHY_MAX 256

struct key;

/* How one kind of value is read, shown and freed. `field` points into a
 * struct rk_config at the row's offset. parse() leaves the field unchanged
 * when it fails. */
struct type {
    int (*parse)(const struct key *k, const char *text, void *field, char *why, size_t len);
    void (*format)(const struct key *k, const void *field, char *buf, size_t len);
    void (*release)(void *field); /* NULL: nothing to free */
};

/* One setting. The option is `--flag` (and `-short_opt`); by convention
 * flag is the key with '-' for '_'. */
struct key {
    const char *section, *name; /* `[section] name = value` in the file */
    const char *flag;           /* long option without "--"; NULL = file only */
    int short_opt;              /* 0 = long option only */
    const char *arg;            /* the value's name in --help */
    const struct type *type;
    size_t offset;              /* of the field in struct rk_config */
    long min, max;              /* t_int: inclusive bounds */
    const char *const *names;   /* t_enum: names in enum order, NULL-ended;
                                 * the field is an int-sized enum */
    const char *def;            /* default in file syntax; NULL = zero */
    const char *help;           /* --help text; '\n' starts a new line */
};

/* ---- types */

static void *field_of(struct rk_config *cfg, const struct key *k)
{
    return (char *)cfg + k->offset;
}

static const void *cfield_of(const struct rk_config *cfg, const struct key *k)
{
    return (const char *)cfg + k->offset;
}

/* String fields are `const char *` in struct rk_broker_config because the
 * broker only reads them; here they always hold our own heap copies. */
static void set_string(void *field, const char *text)
{
    const char **p = field;
    char *copy = strdup(text);
    if (!copy)
        abort();
    free((char *)*p);
    *p = copy;
}

static void release_string(void *field)
{
    const char **p = field;
    free((char *)*p);
    *p = NULL;
}

static void format_string(const struct key *k, const void *field, char *buf, size_t len)
{
    const char *const *p = field;
    (void)k;
    snprintf(buf, len, "%s", *p ? *p : "");
}

/* A ZeroMQ address the broker can bind: tcp://HOST:PORT (PORT 1..65535 or
 * *) or ipc://PATH. Whether it can be bound is only known at bind time;
 * a typo of the transport or a missing port is known now. */
static int parse_endpoint(const struct key *k, const char *text, void *field, char *why, size_t len)
{
    static const char hint[] = "a ZeroMQ endpoint such as tcp://127.0.0.1:7701 or "
                               "ipc:///run/renkei/ingest";
    const char *sep = strstr(text, "://");
    size_t n = sep ? (size_t)(sep - text) : 0;
    (void)k;
    if (n == 0 || strspn(text, "abcdefghijklmnopqrstuvwxyz") != n || sep[3] == '\0') {
        snprintf(why, len, "must be %s, got \"%s\"", hint, text);
        return -1;
    }
    if (n == 3 && strncmp(text, "tcp", 3) == 0) {
        const char *colon = strrchr(sep + 3, ':'), *port = colon ? colon + 1 : "";
        size_t digits = strspn(port, "0123456789");
        int ok = colon && colon > sep + 3 &&
                 (strcmp(port, "*") == 0 ||
                  (digits > 0 && digits <= 5 && port[digits] == '\0' && atoi(port) >= 1 &&
                   atoi(port) <= 65535));
        if (!ok) {
            snprintf(why, len, "a tcp endpoint is tcp://HOST:PORT, such as tcp://0.0.0.0:7701, "
                     "got \"%s\"", text);
            return -1;
        }
    } else if (!(n == 3 && strncmp(text, "ipc", 3) == 0)) {
        snprintf(why, len, "unknown transport \"%.*s\": must be %s, got \"%s\"", (int)n, text,
                 hint, text);
        return -1;
    }
    set_string(field, text);
    return 0;
}

static int parse_path(const struct key *k, const char *text, void *field, char *why, size_t len)
{
    (void)k;
    if (text[0] == '\0') {
        snprintf(why, len, "must be a directory path, got an empty value");
        return -1;
    }
    set_string(field, text);
    return 0;
}

/* A file, or "none". */
static int parse_file_or_none(const struct key *k, const char *text, void *field, char *why,
                              size_t len)
{
    (void)k;
    if (strcmp(text, "none") == 0) {
        release_string(field);
        return 0;
    }
    if (text[0] == '\0') {
        snprintf(why, len, "must be a file path or none, got an empty value");
        return -1;
    }
    set_string(field, text);
    return 0;
}

static void format_file_or_none(const struct key *k, const void *field, char *buf, size_t len)
{
    const char *const *p = field;
    (void)k;
    snprintf(buf, len, "%s", *p ? *p : "none");
}

/* "none" (off), "PORT" (loopback) or "IPV4:PORT"; the address itself is
 * checked when the endpoint starts. */
static int parse_http(const struct key *k, const char *text, void *field, char *why, size_t len)
{
    const char *colon = strrchr(text, ':'), *port = colon ? colon + 1 : text;
    size_t digits = strspn(port, "0123456789");
    (void)k;
    if (strcmp(text, "none") == 0) {
        release_string(field);
        return 0;
    }
    if (digits == 0 || digits > 5 || port[digits] != '\0' || atoi(port) < 1 || atoi(port) > 65535 ||
        (colon && colon == text)) {
        snprintf(why, len, "must be none, a port (on loopback) or IPV4:PORT, e.g. 9701 or "
                 "0.0.0.0:9701, got \"%s\"", text);
        return -1;
    }
    set_string(field, text);
    return 0;
}

static void format_http(const struct key *k, const void *field, char *buf, size_t len)
{
    const char *const *p = field;
    (void)k;
    snprintf(buf, len, "%s", *p ? *p : "none");
}

static int parse_int(const struct key *k, const char *text, void *field, char *why, size_t len)
{
    char *end;
    long n;
    errno = 0;
    n = strtol(text, &end, 10);
    if (end == text || *end || errno || n < k->min || n > k->max) {
        snprintf(why, len, "must be %ld..%ld, got \"%s\"", k->min, k->max, text);
        return -1;
    }
    *(int *)field = (int)n;
    return 0;
}

static void format_int(const struct key *k, const void *field, char *buf, size_t len)
{
    (void)k;
    snprintf(buf, len, "%d", *(const int *)field);
}

int rk_config_parse_size(const char *text, uint64_t *out)
{
    char *end;
    unsigned long long v;
    int shift = 0;
    errno = 0;
    v = strtoull(text, &end, 10);
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

/* A size cap: rk_config_parse_size(), or "none" for 0 (no cap), so an
 * option can lift a cap that the file set. */
static int parse_size_cap(const struct key *k, const char *text, void *field, char *why, size_t len)
{
    uint64_t v = 0;
    (void)k;
    if (strcmp(text, "none") != 0 && rk_config_parse_size(text, &v) != 0) {
        snprintf(why, len, "must be none or a size of at least 1M, such as 800M, 64G or 2T, "
                 "got \"%s\"", text);
        return -1;
    }
    *(uint64_t *)field = v;
    return 0;
}

static void format_size_cap(const struct key *k, const void *field, char *buf, size_t len)
{
    static const char suffix[] = "TGMK";
    uint64_t v = *(const uint64_t *)field;
    (void)k;
    if (v == 0) {
        snprintf(buf, len, "none");
        return;
    }
    for (int i = 0; i < 4; i++) {
        int shift = 40 - 10 * i;
        if (v % ((uint64_t)1 << shift) == 0) {
            snprintf(buf, len, "%llu%c", (unsigned long long)(v >> shift), suffix[i]);
            return;
        }
    }
    snprintf(buf, len, "%llu", (unsigned long long)v);
}

/* An age: a whole number with a unit, s m h or d ("400d", "36h"), or
 * "none" for 0 (keep everything). Stored as nanoseconds (int64_t). */
static int parse_age(const struct key *k, const char *text, void *field, char *why, size_t len)
{
    static const struct { char unit; int64_t secs; } units[] = {
        {'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400},
    };
    char *end;
    unsigned long long v;
    (void)k;
    if (strcmp(text, "none") == 0) {
        *(int64_t *)field = 0;
        return 0;
    }
    errno = 0;
    v = strtoull(text, &end, 10);
    for (size_t i = 0; end != text && !errno && text[0] != '-' && v > 0 && i < 4; i++) {
        if (end[0] == units[i].unit && end[1] == '\0' &&
            v <= (unsigned long long)(INT64_MAX / 1000000000 / units[i].secs)) {
            *(int64_t *)field = (int64_t)v * units[i].secs * 1000000000;
            return 0;
        }
    }
    snprintf(why, len, "must be none or a positive age with a unit s, m, h or d, such as "
             "400d or 36h, got \"%s\"", text);
    return -1;
}

static void format_age(const struct key *k, const void *field, char *buf, size_t len)
{
    int64_t secs = *(const int64_t *)field / 1000000000;
    (void)k;
    if (secs == 0)
        snprintf(buf, len, "none");
    else if (secs % 86400 == 0)
        snprintf(buf, len, "%lldd", (long long)(secs / 86400));
    else if (secs % 3600 == 0)
        snprintf(buf, len, "%lldh", (long long)(secs / 3600));
    else if (secs % 60 == 0)
        snprintf(buf, len, "%lldm", (long long)(secs / 60));
    else
        snprintf(buf, len, "%llds", (long long)secs);
}

_Static_assert(sizeof(enum rk_log_durability) == sizeof(int), "t_enum stores an int");
_Static_assert(sizeof(enum rk_diag_level) == sizeof(int), "t_enum stores an int");

/* "a, b or c": the error text lists every name, so it cannot go stale. */
static void list_names(const char *const *names, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; names[i] && used < len; i++) {
        const char *sep = i == 0 ? "" : names[i + 1] ? ", " : " or ";
        int n = snprintf(buf + used, len - used, "%s%s", sep, names[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

static int parse_enum(const struct key *k, const char *text, void *field, char *why, size_t len)
{
    char names[128];
    for (int i = 0; k->names[i]; i++) {
        if (strcmp(text, k->names[i]) == 0) {
            *(int *)field = i;
            return 0;
        }
    }
    list_names(k->names, names, sizeof names);
    snprintf(why, len, "must be %s, got \"%s\"", names, text);
    return -1;
}

static void format_enum(const struct key *k, const void *field, char *buf, size_t len)
{
    snprintf(buf, len, "%s", k->names[*(const int *)field]);
}

static const struct type t_endpoint = {parse_endpoint, format_string, release_string};
static const struct type t_path = {parse_path, format_string, release_string};
static const struct type t_http = {parse_http, format_http, release_string};
static const struct type t_int = {parse_int, format_int, NULL};
static const struct type t_file = {parse_file_or_none, format_file_or_none, release_string};
static const struct type t_size_cap = {parse_size_cap, format_size_cap, NULL};
static const struct type t_enum = {parse_enum, format_enum, NULL};
static const struct type t_age = {parse_age, format_age, NULL};

/* ---- the table: one row per setting; the rows of a section stay together */

static const char *const durability_names[] = {"full", "os", NULL};  /* enum rk_log_durability */
static const char *const yes_no[] = {"no", "yes", NULL};
static const char *const level_names[] = {"error", "warn", "info", "debug", NULL}; /* rk_diag_level */

static const struct key keys[] = {
    {.section = "broker", .name = "ingest", .flag = "ingest", .short_opt = 'i', .arg = "ENDPOINT",
     .type = &t_endpoint, .offset = FIELD(broker.ingest_endpoint), .def = RK_DEFAULT_INGEST,
     .help = "where agents publish (ROUTER)"},
    {.section = "broker", .name = "feed", .flag = "feed", .short_opt = 'f', .arg = "ENDPOINT",
     .type = &t_endpoint, .offset = FIELD(broker.feed_endpoint), .def = RK_DEFAULT_FEED,
     .help = "live events for subscribers (XPUB)"},
    {.section = "broker", .name = "replay", .flag = "replay", .short_opt = 'r', .arg = "ENDPOINT",
     .type = &t_endpoint, .offset = FIELD(broker.replay_endpoint), .def = RK_DEFAULT_REPLAY,
     .help = "replay requests (ROUTER)"},
    {.section = "broker", .name = "data_dir", .flag = "data-dir", .short_opt = 'd', .arg = "DIR",
     .type = &t_path, .offset = FIELD(broker.data_dir), .def = RK_DEFAULT_DATA_DIR,
     .help = "LMDB log directory, created if missing"},
    {.section = "broker", .name = "durability", .flag = "durability", .short_opt = 'D',
     .arg = "MODE", .type = &t_enum, .names = durability_names,
     .offset = FIELD(broker.durability), .def = "full",
     .help = "full: fsync at each commit, before acknowledging;\n"
             "an acknowledged event survives a power cut.\n"
             "os: no fsync per commit; an acknowledged event\n"
             "survives a broker crash, not a power cut or a\n"
             "kernel crash"},
    {.section = "broker", .name = "batch_max", .flag = "batch-max", .short_opt = 'b', .arg = "N",
     .type = &t_int, .min = 1, .max = 65536, .offset = FIELD(broker.batch_max),
     .def = STR(RK_DEFAULT_BATCH_MAX),
     .help = "most publishes committed in one transaction"},
    {.section = "broker", .name = "map_max", .flag = "map-max", .short_opt = 'M', .arg = "SIZE",
     .type = &t_size_cap, .offset = FIELD(broker.map_max), .def = "none",
     .help = "cap on the log's size, e.g. 500G, or none (the\n"
             "disk is the limit). The LMDB map starts at 256M\n"
             "and doubles when full. At the cap, publishes are\n"
             "refused with E_STORAGE; reads go on"},
    {.section = "broker", .name = "log_level", .flag = "log-level", .short_opt = 'l',
     .arg = "LEVEL", .type = &t_enum, .names = level_names, .offset = FIELD(log_level),
     .def = "info", .help = "error, warn, info or debug"},
    {.section = "broker", .name = "retain_age", .flag = "retain-age", .arg = "AGE",
     .type = &t_age, .offset = FIELD(broker.retain_age_ns), .def = "none",
     .help = "delete events received longer ago than AGE,\n"
             "e.g. 400d or 36h; none keeps everything. For\n"
             "deployments that archive the log elsewhere"},
    {.section = "broker", .name = "retain_size", .flag = "retain-size", .arg = "SIZE",
     .type = &t_size_cap, .offset = FIELD(broker.retain_size), .def = "none",
     .help = "delete the oldest events while the log's data\n"
             "takes more than SIZE, e.g. 200G; none keeps\n"
             "everything. The file keeps its size; LMDB\n"
             "reuses the freed pages"},
    {.section = "broker", .name = "http", .flag = "http", .arg = "ADDR",
     .type = &t_http, .offset = FIELD(broker.http), .def = "none",
     .help = "serve /metrics (Prometheus) and /healthz over HTTP\n"
             "on ADDR: a port (loopback only, e.g. 9701) or\n"
             "IPV4:PORT (0.0.0.0:9701 for every interface);\n"
             "none: off"},
    {.section = "broker", .name = "max_message", .flag = "max-message", .arg = "BYTES",
     .type = &t_int, .min = 20480, .max = 16777216, .offset = FIELD(broker.max_message),
     .def = "65536",
     .help = "a publish larger than this in all its frames is\n"
             "refused (E_TOO_LONG), logged and counted; a single\n"
             "frame over it disconnects the publisher unseen;\n"
             "events themselves stop at 16384 bytes (E_TOO_LONG);\n"
             "replay requests at 8192 bytes"},
    {.section = "broker", .name = "curve_key", .flag = "curve-key", .arg = "FILE",
     .type = &t_file, .offset = FIELD(broker.curve_key), .def = "none",
     .help = "the broker's secret key file (renkei-keys): every\n"
             "socket speaks CURVE (encrypted, and each client\n"
             "proves its key); needs --acl. none: plain sockets,\n"
             "loopback endpoints only"},
    {.section = "broker", .name = "acl", .flag = "acl", .arg = "FILE",
     .type = &t_file, .offset = FIELD(broker.acl), .def = "none",
     .help = "which client keys may connect, publish for which\n"
             "municipalities, and subscribe to or replay which\n"
             "topics (deploy/README.md); reread on SIGHUP"},
    {.section = "broker", .name = "insecure_no_curve", .flag = "insecure-no-curve",
     .arg = "yes|no", .type = &t_enum, .names = yes_no,
     .offset = FIELD(broker.insecure_no_curve), .def = "no",
     .help = "yes: allow plain sockets on endpoints other than\n"
             "loopback, readable and writable by anyone on the\n"
             "network. For a closed test network only"},
};

#define NKEYS (sizeof keys / sizeof keys[0])
_Static_assert(NKEYS <= RK_CONFIG_KEYS_MAX, "raise RK_CONFIG_KEYS_MAX");

static const struct key *find_key(const char *section, const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, name) == 0 && (!section || strcmp(keys[i].section, section) == 0))
            return &keys[i];
    return NULL;
}

static int section_known(const char *name, size_t len)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strlen(keys[i].section) == len && memcmp(keys[i].section, name, len) == 0)
            return 1;
    return 0;
}

/* "[broker], [retention]": each section once, in table order. */
static void list_sections(char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < NKEYS && used < len; i++) {
        int n;
        if (i > 0 && strcmp(keys[i - 1].section, keys[i].section) == 0)
            continue;   /* rows of a section stay together */
        n = snprintf(buf + used, len - used, "%s[%s]", used ? ", " : "", keys[i].section);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

const char *rk_config_key_at(size_t i, const char **section)
{
    if (i >= NKEYS)
        return NULL;
    if (section)
        *section = keys[i].section;
    return keys[i].name;
}

/* ---- lifecycle */

void rk_config_init(struct rk_config *cfg)
{
    char why[WHY_MAX];
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        if (k->def && k->type->parse(k, k->def, field_of(cfg, k), why, sizeof why) != 0) {
            fprintf(stderr, "rk_config: bad default for %s: %s\n", k->name, why);
            abort();   /* a bug in the table */
        }
    }
}

void rk_config_release(struct rk_config *cfg)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].type->release)
            keys[i].type->release(field_of(cfg, &keys[i]));
    memset(cfg, 0, sizeof *cfg);
}

int rk_config_set(struct rk_config *cfg, const char *section, const char *key,
                  const char *value, char *why, size_t why_len)
{
    const struct key *k = find_key(section, key);
    if (!k)
        return RK_CONFIG_EUNKNOWN;
    return k->type->parse(k, value, field_of(cfg, k), why, why_len) == 0 ? 0 : RK_CONFIG_EVALUE;
}

/* ---- the file
 *
 * rk_ini says what each line is, with the same rules as for the ACL file;
 * here only what the sections and keys mean. Every bad line is reported,
 * so that one --check-config run lists everything to fix. */

struct load {
    struct rk_config *cfg;
    FILE *err;
    const char *path;
    int seen[NKEYS];      /* line that set each key; 0 = not yet */
    int errors;
};

__attribute__((format(printf, 3, 4)))
static void report(struct load *ld, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(ld->err, "%s:%d: ", ld->path, line);
    va_start(ap, fmt);
    vfprintf(ld->err, fmt, ap);
    va_end(ap);
    fputc('\n', ld->err);
    ld->errors++;
}

static void on_section(struct load *ld, const struct rk_ini_entry *e)
{
    char known[256];
    if (section_known(e->section, strlen(e->section)))
        return;
    list_sections(known, sizeof known);
    report(ld, e->line, "[%s]: unknown section; known: %s", e->section, known);
}

static void on_key(struct load *ld, const struct rk_ini_entry *e)
{
    const struct key *k;
    char why[WHY_MAX];

    if (!section_known(e->section, strlen(e->section))) {
        k = find_key(NULL, e->name);
        if (e->section[0] == '\0' && k)
            report(ld, e->line, "%s: outside any section; it belongs under [%s]", e->name,
                   k->section);
        else if (e->section[0] == '\0')
            report(ld, e->line, "%s: outside any section", e->name);
        return;   /* an unknown section was reported at its header */
    }
    k = find_key(e->section, e->name);
    if (!k) {
        report(ld, e->line, "%s: unknown key in [%s]", e->name, e->section);
        return;
    }
    if (ld->seen[k - keys])
        report(ld, e->line, "%s: set twice, first on line %d", e->name, ld->seen[k - keys]);
    ld->seen[k - keys] = e->line;
    if (k->type->parse(k, e->value, field_of(ld->cfg, k), why, sizeof why) != 0)
        report(ld, e->line, "%s: %s", e->name, why);
    else
        ld->cfg->origin[k - keys] = e->line;
}

int rk_config_load(struct rk_config *cfg, const char *path, FILE *err)
{
    struct load ld = {.cfg = cfg, .err = err, .path = path};
    struct rk_ini *ini = NULL;
    struct rk_ini_entry e;
    char why[RK_INI_WHY_MAX];
    int rc;

    rc = rk_ini_open(path, &ini, why, sizeof why);
    if (rc != RK_OK) {
        fprintf(err, "%s\n", why);
        return -1;
    }
    while ((rc = rk_ini_next(ini, &e, why, sizeof why)) != RK_EOF) {
        if (rc != RK_OK) {
            fprintf(err, "%s\n", why);
            ld.errors++;
            if (rc != RK_EFORMAT)
                break;   /* a read error: nothing more will come */
        } else if (e.kind == RK_INI_SECTION) {
            on_section(&ld, &e);
        } else {
            on_key(&ld, &e);
        }
    }
    rk_ini_close(&ini);
    return ld.errors ? -1 : 0;
}

/* ---- the command line */

enum { OPT_CHECK = 0x100, OPT_KEY = 0x200 };
#define NFIXED 4   /* --config, --check-config, --help, --version */

static int opt_val(size_t i)
{
    return keys[i].short_opt ? keys[i].short_opt : OPT_KEY + (int)i;
}

static const struct key *key_for_opt(int val)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].flag && opt_val(i) == val)
            return &keys[i];
    return NULL;
}

/* `lo` holds NKEYS + NFIXED + 1 entries, `so` 2 * NKEYS + 8 chars. */
static void build_getopt(struct option *lo, char *so)
{
    size_t n = 0;
    *so++ = ':';   /* a missing value comes back as ':', not '?' */
    for (size_t i = 0; i < NKEYS; i++) {
        if (!keys[i].flag)
            continue;
        lo[n++] = (struct option){keys[i].flag, required_argument, NULL, opt_val(i)};
        if (keys[i].short_opt) {
            *so++ = (char)keys[i].short_opt;
            *so++ = ':';
        }
    }
    lo[n++] = (struct option){"config", required_argument, NULL, 'c'};
    lo[n++] = (struct option){"check-config", no_argument, NULL, OPT_CHECK};
    lo[n++] = (struct option){"help", no_argument, NULL, 'h'};
    lo[n++] = (struct option){"version", no_argument, NULL, 'V'};
    lo[n] = (struct option){NULL, 0, NULL, 0};
    strcpy(so, "c:hV");
}

/* First pass: only what decides how to read the rest. It works on a copy
 * of argv because GNU getopt reorders what it scans, and a reordered argv
 * can change meaning: in `stray --data-dir` the first pass moves "stray"
 * last, where the second pass would take it as the directory. */
static void scan_args(int argc, char **argv, const struct option *lo, const char *so,
                      struct rk_config_cli *cli)
{
    char **copy = malloc(((size_t)argc + 1) * sizeof *copy);
    int c;
    if (!copy)
        abort();
    memcpy(copy, argv, ((size_t)argc + 1) * sizeof *copy);
    optind = 0;   /* GNU: start over, reinitialising getopt */
    opterr = 0;
    while ((c = getopt_long(argc, copy, so, lo, NULL)) != -1) {
        switch (c) {
        case 'c': cli->config_path = optarg; break;
        case OPT_CHECK: cli->check_only = 1; break;
        case 'h': cli->help = 1; break;
        case 'V': cli->version = 1; break;
        default: break;   /* errors are reported by the second pass */
        }
    }
    free(copy);
}

static void report_bad_option(int c, char **argv, FILE *err)
{
    const char *arg = argv[optind - 1];
    if (c == ':')
        fprintf(err, "renkei-broker: %s needs a value; try --help\n", arg);
    else if (strncmp(arg, "--", 2) != 0 && optopt)
        fprintf(err, "renkei-broker: unknown option \"-%c\"; try --help\n", optopt);
    else
        fprintf(err, "renkei-broker: unknown option \"%s\"; try --help\n", arg);
}

/* Second pass: every setting given as an option, over the file's. */
static int apply_args(struct rk_config *cfg, int argc, char **argv, const struct option *lo,
                      const char *so, FILE *err)
{
    char why[WHY_MAX];
    int c, bad = 0;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, so, lo, NULL)) != -1) {
        const struct key *k = key_for_opt(c);
        if (k) {
            if (k->type->parse(k, optarg, field_of(cfg, k), why, sizeof why) != 0) {
                fprintf(err, "renkei-broker: --%s: %s\n", k->flag, why);
                bad = 1;
            } else {
                cfg->origin[k - keys] = RK_CONFIG_OPTION;
            }
        } else if (c == '?' || c == ':') {
            report_bad_option(c, argv, err);
            bad = 1;
        }
    }
    for (; optind < argc; optind++) {
        fprintf(err, "renkei-broker: unexpected argument \"%s\"; try --help\n", argv[optind]);
        bad = 1;
    }
    return bad ? -1 : 0;
}

int rk_config_parse_args(struct rk_config *cfg, int argc, char **argv,
                         struct rk_config_cli *cli, FILE *err)
{
    struct option lo[NKEYS + NFIXED + 1];
    char so[2 * NKEYS + 8];
    int rc = 0;

    memset(cli, 0, sizeof *cli);
    build_getopt(lo, so);
    scan_args(argc, argv, lo, so, cli);
    if (cli->help || cli->version)
        return 0;
    if (cli->config_path && rk_config_load(cfg, cli->config_path, err) != 0)
        rc = -1;
    if (apply_args(cfg, argc, argv, lo, so, err) != 0)
        rc = -1;
    return rc;
}

/* ---- help and summary */

#define HELP_COL 28
#define HELP_WIDTH 79

/* One option: its names in the left column, its help in the right, and
 * its default at the end, on a line of its own if it would not fit. */
static void print_option(FILE *out, int short_opt, const char *flag, const char *arg,
                         const char *help, const char *def)
{
    char left[80];
    size_t col;
    if (short_opt)
        snprintf(left, sizeof left, "  -%c, --%s%s%s", short_opt, flag, arg ? " " : "", arg ? arg : "");
    else
        snprintf(left, sizeof left, "      --%s%s%s", flag, arg ? " " : "", arg ? arg : "");
    if (strlen(left) >= HELP_COL - 1)
        fprintf(out, "%s\n%*s", left, HELP_COL, "");
    else
        fprintf(out, "%-*s", HELP_COL, left);
    col = HELP_COL;
    for (const char *p = help; *p; p++) {
        fputc(*p, out);
        col++;
        if (*p == '\n') {
            fprintf(out, "%*s", HELP_COL, "");
            col = HELP_COL;
        }
    }
    if (def && col + strlen(def) + 3 > HELP_WIDTH)
        fprintf(out, "\n%*s[%s]", HELP_COL, "", def);
    else if (def)
        fprintf(out, " [%s]", def);
    fputc('\n', out);
}

void rk_config_print_options(FILE *out)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].flag)
            print_option(out, keys[i].short_opt, keys[i].flag, keys[i].arg, keys[i].help,
                         keys[i].def);
    print_option(out, 'c', "config", "FILE", "read settings from the INI file FILE; see\n"
                 "renkei.conf.example", NULL);
    print_option(out, 0, "check-config", NULL, "check the settings (the file and the options),\n"
                 "print them on one line and exit: 0 if valid,\n"
                 "2 if not", NULL);
    print_option(out, 'h', "help", NULL, "show this help and exit", NULL);
    print_option(out, 'V', "version", NULL, "show the version and exit", NULL);
    fprintf(out, "\nIn a --config file the settings above are keys, spelled with _ for -:\n");
    for (size_t i = 0; i < NKEYS; i++) {
        int first = i == 0 || strcmp(keys[i - 1].section, keys[i].section) != 0;
        int last = i + 1 == NKEYS || strcmp(keys[i + 1].section, keys[i].section) != 0;
        if (first)
            fprintf(out, "  [%s]", keys[i].section);
        fprintf(out, " %s", keys[i].name);
        if (last)
            fputc('\n', out);
    }
}

void rk_config_print_summary(const struct rk_config *cfg, FILE *out)
{
    char buf[RK_CONFIG_LINE_MAX + 1];
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        k->type->format(k, cfield_of(cfg, k), buf, sizeof buf);
        if (i)
            fputc(' ', out);
        if (strcmp(k->section, keys[0].section) != 0)
            fprintf(out, "%s.", k->section);   /* keys of later sections may repeat names */
        if (buf[0] == '\0' || strpbrk(buf, " \t\""))
            fprintf(out, "%s=\"%s\"", k->name, buf);
        else
            fprintf(out, "%s=%s", k->name, buf);
    }
}

/* ---- what a start would find wrong (--check-config) */

struct check {
    const struct rk_config *cfg;
    const char *path;
    FILE *err;
    int problems;
};

__attribute__((format(printf, 3, 4)))
static void problem(struct check *c, const char *name, const char *fmt, ...)
{
    const struct key *k = find_key(NULL, name);
    int origin = c->cfg->origin[k - keys];
    va_list ap;
    if (origin > 0)
        fprintf(c->err, "%s:%d: %s: ", c->path, origin, name);
    else if (origin == RK_CONFIG_OPTION)
        fprintf(c->err, "renkei-broker: --%s: ", k->flag);
    else
        fprintf(c->err, "renkei-broker: %s: ", name);
    va_start(ap, fmt);
    vfprintf(c->err, fmt, ap);
    va_end(ap);
    fputc('\n', c->err);
    c->problems++;
}

static const char *whoami(char *buf, size_t len)
{
    struct passwd *pw = getpwuid(geteuid());
    if (pw)
        snprintf(buf, len, "%s", pw->pw_name);
    else
        snprintf(buf, len, "uid %u", (unsigned)geteuid());
    return buf;
}

/* The file can be opened for reading by this process's user. */
static int check_readable(struct check *c, const char *name, const char *file)
{
    char who[64];
    FILE *f = fopen(file, "r");
    if (f) {
        fclose(f);
        return 0;
    }
    if (errno == EACCES)
        problem(c, name, "%s: not readable by %s (Permission denied)%s", file,
                whoami(who, sizeof who),
                strcmp(name, "curve_key") == 0 ? "; under systemd the key reaches the service "
                "as a credential (LoadCredential=, deploy/README.md)" : "");
    else
        problem(c, name, "%s: %s", file, strerror(errno));
    return -1;
}

static void check_security(struct check *c)
{
    const struct rk_broker_config *b = &c->cfg->broker;
    char key[RK_KEY_Z85_LEN + 1], why[RK_INI_WHY_MAX];
    struct rk_acl *acl = NULL;
    if (b->curve_key && !b->acl)
        problem(c, "curve_key", "needs acl = FILE listing the client keys and what each may do "
                "(deploy/README.md, 2a); without it no client could connect");
    if (b->acl && !b->curve_key)
        problem(c, "acl", "needs curve_key = FILE: without CURVE there are no keys to check");
    if (b->curve_key && check_readable(c, "curve_key", b->curve_key) == 0) {
        if (rk_keys_read_secret(b->curve_key, key, why, sizeof why) != 0)
            problem(c, "curve_key", "%s", why);
        sodium_memzero(key, sizeof key);
    }
    if (b->acl && check_readable(c, "acl", b->acl) == 0) {
        if (rk_acl_load(b->acl, &acl, why, sizeof why) != 0)
            problem(c, "acl", "does not load: %s", why);
        rk_acl_release(acl);
    }
}

/* An ipc endpoint's directory must exist; a plain socket stays local. */
static void check_endpoint(struct check *c, const char *name, const char *ep)
{
    const struct rk_broker_config *b = &c->cfg->broker;
    if (strncmp(ep, "ipc://", 6) == 0) {
        char dir[4096];
        const char *slash = strrchr(ep + 6, '/');
        struct stat st;
        size_t n = slash ? (size_t)(slash - (ep + 6)) : 0;
        if (n > 0 && n < sizeof dir) {
            memcpy(dir, ep + 6, n);
            dir[n] = '\0';
            if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
                problem(c, name, "%s: the directory %s does not exist", ep, dir);
        }
    }
    if (!b->curve_key && !b->insecure_no_curve && !rk_security_endpoint_is_local(ep))
        problem(c, name, "%s is not loopback and there is no curve_key: anyone on the network "
                "could read every event and publish for any town; set curve_key and acl "
                "(deploy/README.md, 2a), or bind 127.0.0.1", ep);
}

/* The data directory, or the nearest directory above it that exists (the
 * broker creates the rest), must be writable. */
static void check_data_dir(struct check *c)
{
    char dir[4096], who[64];
    const char *d = c->cfg->broker.data_dir;
    struct stat st;
    snprintf(dir, sizeof dir, "%s", d);
    while (stat(dir, &st) != 0) {
        char *slash = strrchr(dir, '/');
        if (!slash) {
            snprintf(dir, sizeof dir, ".");
            break;
        }
        if (slash == dir)
            slash[1] = '\0';
        else
            *slash = '\0';
    }
    if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode))
        problem(c, "data_dir", "%s is not a directory", dir);
    else if (access(dir, W_OK | X_OK) != 0 && strcmp(dir, d) == 0)
        problem(c, "data_dir", "%s: not writable by %s (%s)", dir, whoami(who, sizeof who),
                strerror(errno));
    else if (access(dir, W_OK | X_OK) != 0)
        problem(c, "data_dir", "%s cannot be created: %s is not writable by %s (%s)", d, dir,
                whoami(who, sizeof who), strerror(errno));
}

int rk_config_check(const struct rk_config *cfg, const char *config_path, FILE *err)
{
    struct check c = {.cfg = cfg, .path = config_path ? config_path : "renkei-broker", .err = err};
    check_endpoint(&c, "ingest", cfg->broker.ingest_endpoint);
    check_endpoint(&c, "feed", cfg->broker.feed_endpoint);
    check_endpoint(&c, "replay", cfg->broker.replay_endpoint);
    check_security(&c);
    check_data_dir(&c);
    return c.problems;
}
