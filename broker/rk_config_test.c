#include "rk_config.h"
#include "rk_test.h"

#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/rk_config_test.XXXXXX";
static char conf[64];   /* dir/t.conf: the file each test writes */

static void write_conf(const char *text)
{
    FILE *f = fopen(conf, "w");
    RK_CHECK(f != NULL);
    if (!f)
        return;
    fputs(text, f);
    fclose(f);
}

/* Loads `text` as a file into `cfg`; returns what was written to the error
 * stream (caller frees) and the result in *rc. */
static char *load(struct rk_config *cfg, const char *text, int *rc)
{
    char *out = NULL;
    size_t len = 0;
    FILE *err = open_memstream(&out, &len);
    write_conf(text);
    *rc = rk_config_load(cfg, conf, err);
    fclose(err);
    return out;
}

/* Runs the option parser on a NULL-terminated argv. */
static char *parse(struct rk_config *cfg, struct rk_config_cli *cli, int *rc, char **argv)
{
    char *out = NULL;
    size_t len = 0;
    int argc = 0;
    FILE *err = open_memstream(&out, &len);
    while (argv[argc])
        argc++;
    *rc = rk_config_parse_args(cfg, argc, argv, cli, err);
    fclose(err);
    return out;
}

static char *summary(const struct rk_config *cfg)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    rk_config_print_summary(cfg, f);
    fclose(f);
    return out;
}

static void test_defaults(void)
{
    struct rk_config cfg;
    rk_config_init(&cfg);
    RK_CHECK_STR(cfg.broker.ingest_endpoint, RK_DEFAULT_INGEST);
    RK_CHECK_STR(cfg.broker.feed_endpoint, RK_DEFAULT_FEED);
    RK_CHECK_STR(cfg.broker.replay_endpoint, RK_DEFAULT_REPLAY);
    RK_CHECK_STR(cfg.broker.data_dir, RK_DEFAULT_DATA_DIR);
    RK_CHECK(cfg.broker.durability == RK_LOG_FULL);
    RK_CHECK(cfg.broker.batch_max == RK_DEFAULT_BATCH_MAX);
    RK_CHECK(cfg.broker.map_max == 0);
    RK_CHECK(cfg.log_level == RK_DIAG_INFO);
    char *s = summary(&cfg);
    RK_CHECK_STR(s, "ingest=tcp://127.0.0.1:7701 feed=tcp://127.0.0.1:7702 "
                 "replay=tcp://127.0.0.1:7703 data_dir=renkei-data durability=full "
                 "batch_max=1024 map_max=none log_level=info retain_age=none retain_size=none http=none max_message=65536 "
        "curve_key=none acl=none insecure_no_curve=no");
    free(s);
    rk_config_release(&cfg);
    rk_config_release(&cfg);   /* twice is harmless */
}

static void test_good_file(void)
{
    struct rk_config cfg;
    int rc;
    rk_config_init(&cfg);
    char *err = load(&cfg,
        "\xEF\xBB\xBF# a comment\n"
        "; another\n"
        "\n"
        "[broker]\n"
        "ingest = ipc:///run/renkei/ingest\n"
        "  feed=ipc:///run/renkei/feed   # indented, trailing comment\n"
        "replay = tcp://0.0.0.0:7703 ; trailing comment\n"
        "data_dir = /var/lib/renkei data\r\n"
        "durability = os\n"
        "batch_max = 64\n"
        "map_max = 2G\n"
        "log_level = debug\n", &rc);
    RK_CHECK(rc == 0);
    RK_CHECK_STR(err, "");
    RK_CHECK_STR(cfg.broker.ingest_endpoint, "ipc:///run/renkei/ingest");
    RK_CHECK_STR(cfg.broker.feed_endpoint, "ipc:///run/renkei/feed");
    RK_CHECK_STR(cfg.broker.replay_endpoint, "tcp://0.0.0.0:7703");
    RK_CHECK_STR(cfg.broker.data_dir, "/var/lib/renkei data");
    RK_CHECK(cfg.broker.durability == RK_LOG_OS);
    RK_CHECK(cfg.broker.batch_max == 64);
    RK_CHECK(cfg.broker.map_max == 2ull << 30);
    RK_CHECK(cfg.log_level == RK_DIAG_DEBUG);
    char *s = summary(&cfg);
    RK_CHECK_STR(s, "ingest=ipc:///run/renkei/ingest feed=ipc:///run/renkei/feed "
                 "replay=tcp://0.0.0.0:7703 data_dir=\"/var/lib/renkei data\" durability=os "
                 "batch_max=64 map_max=2G log_level=debug retain_age=none retain_size=none http=none max_message=65536 "
        "curve_key=none acl=none insecure_no_curve=no");
    free(s);
    free(err);
    /* An empty file changes nothing and is valid. */
    err = load(&cfg, "", &rc);
    RK_CHECK(rc == 0 && cfg.broker.batch_max == 64);
    free(err);
    rk_config_release(&cfg);
}

/* Each bad line, on line 3 of a file, gives exactly this error. */
static void test_bad_values(void)
{
    static const struct { const char *line, *msg; } cases[] = {
        {"durability = fsync", "durability: must be full or os, got \"fsync\""},
        {"log_level = verbose", "log_level: must be error, warn, info or debug, got \"verbose\""},
        {"batch_max = 0", "batch_max: must be 1..65536, got \"0\""},
        {"batch_max = 65537", "batch_max: must be 1..65536, got \"65537\""},
        {"batch_max = 12x", "batch_max: must be 1..65536, got \"12x\""},
        {"batch_max =", "batch_max: must be 1..65536, got \"\""},
        {"map_max = 512K", "map_max: must be none or a size of at least 1M, such as 800M, "
                           "64G or 2T, got \"512K\""},
        {"map_max = 5P", "map_max: must be none or a size of at least 1M, such as 800M, "
                         "64G or 2T, got \"5P\""},
        {"ingest = 127.0.0.1:7701", "ingest: must be a ZeroMQ endpoint such as "
                                    "tcp://127.0.0.1:7701 or ipc:///run/renkei/ingest, "
                                    "got \"127.0.0.1:7701\""},
        {"feed = tcp://", "feed: must be a ZeroMQ endpoint such as tcp://127.0.0.1:7701 or "
                          "ipc:///run/renkei/ingest, got \"tcp://\""},
        {"data_dir =", "data_dir: must be a directory path, got an empty value"},
        {"colour = blue", "colour: unknown key in [broker]"},
        {"just some words", "expected key = value, got \"just some words\""},
        {"[retention]", "[retention]: unknown section; known: [broker]"},
        {"[broker", "[broker: section header without a closing ]"},
    };
    char text[256], want[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rk_config cfg;
        int rc;
        rk_config_init(&cfg);
        snprintf(text, sizeof text, "[broker]\n# line 2\n%s\nreplay = ipc:///x\n", cases[i].line);
        snprintf(want, sizeof want, "%s:3: %s\n", conf, cases[i].msg);
        char *err = load(&cfg, text, &rc);
        RK_CHECK(rc == -1);
        RK_CHECK_STR(err, want);
        if (strcmp(cases[i].line, "[retention]") != 0)
            RK_CHECK_STR(cfg.broker.replay_endpoint, "ipc:///x");   /* valid lines still apply */
        free(err);
        rk_config_release(&cfg);
    }
}

static void test_structure_errors(void)
{
    struct rk_config cfg;
    char want[1024];
    char *err;
    int rc;

    rk_config_init(&cfg);
    /* A key before any section; an unknown section's keys are not each
     * reported; a key set twice. Every error is reported, in line order. */
    err = load(&cfg,
        "durability = os\n"
        "[broker]\n"
        "durability = os\n"
        "\n"
        "[metrics]\n"
        "port = 9100\n"
        "[broker]\n"
        "durability = full\n"
        "nonsense = 1\n", &rc);
    RK_CHECK(rc == -1);
    snprintf(want, sizeof want,
             "%s:1: durability: outside any section; it belongs under [broker]\n"
             "%s:5: [metrics]: unknown section; known: [broker]\n"
             "%s:8: durability: set twice, first on line 3\n"
             "%s:9: nonsense: unknown key in [broker]\n", conf, conf, conf, conf);
    RK_CHECK_STR(err, want);
    free(err);

    /* A line too long for the parser is an error, not a silent split. */
    char *big = malloc(RK_CONFIG_LINE_MAX + 64);
    memset(big, 0, RK_CONFIG_LINE_MAX + 64);
    strcpy(big, "[broker]\ndata_dir = /");
    memset(big + strlen(big), 'x', RK_CONFIG_LINE_MAX);
    strcat(big, "\nbatch_max = 9\n");
    err = load(&cfg, big, &rc);
    snprintf(want, sizeof want, "%s:2: line longer than %d characters\n", conf, RK_CONFIG_LINE_MAX);
    RK_CHECK(rc == -1);
    RK_CHECK_STR(err, want);
    RK_CHECK(cfg.broker.batch_max == 9);   /* line 3 was still line 3 */
    free(err);
    free(big);

    /* A missing file. */
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    RK_CHECK(rk_config_load(&cfg, "/nonexistent/renkei.conf", f) == -1);
    fclose(f);
    RK_CHECK_STR(out, "/nonexistent/renkei.conf: cannot read: No such file or directory\n");
    free(out);
    rk_config_release(&cfg);
}

static void test_set(void)
{
    struct rk_config cfg;
    char why[256];
    rk_config_init(&cfg);
    RK_CHECK(rk_config_set(&cfg, "broker", "durability", "os", why, sizeof why) == 0);
    RK_CHECK(cfg.broker.durability == RK_LOG_OS);
    RK_CHECK(rk_config_set(&cfg, "broker", "durability", "fsync", why, sizeof why) ==
             RK_CONFIG_EVALUE);
    RK_CHECK_STR(why, "must be full or os, got \"fsync\"");
    RK_CHECK(cfg.broker.durability == RK_LOG_OS);   /* unchanged by a bad value */
    RK_CHECK(rk_config_set(&cfg, "broker", "nope", "1", why, sizeof why) == RK_CONFIG_EUNKNOWN);
    RK_CHECK(rk_config_set(&cfg, "other", "durability", "os", why, sizeof why) ==
             RK_CONFIG_EUNKNOWN);
    RK_CHECK(rk_config_set(&cfg, "broker", "map_max", "1T", why, sizeof why) == 0);
    RK_CHECK(cfg.broker.map_max == 1ull << 40);
    RK_CHECK(rk_config_set(&cfg, "broker", "map_max", "none", why, sizeof why) == 0);
    RK_CHECK(cfg.broker.map_max == 0);
    RK_CHECK(rk_config_set(&cfg, "broker", "retain_age", "36h", why, sizeof why) == 0);
    RK_CHECK(cfg.broker.retain_age_ns == 36 * 3600 * 1000000000LL);
    RK_CHECK(rk_config_set(&cfg, "broker", "retain_age", "400d", why, sizeof why) == 0);
    RK_CHECK(cfg.broker.retain_age_ns == 400 * 86400 * 1000000000LL);
    const char *bad_ages[] = {"0d", "-1d", "5", "5w", "d", "36h ", "99999999999999d"};
    for (size_t i = 0; i < sizeof bad_ages / sizeof bad_ages[0]; i++) {
        RK_CHECK(rk_config_set(&cfg, "broker", "retain_age", bad_ages[i], why, sizeof why) ==
                 RK_CONFIG_EVALUE);
        RK_CHECK(strstr(why, "positive age with a unit") != NULL);
    }
    RK_CHECK(cfg.broker.retain_age_ns == 400 * 86400 * 1000000000LL); /* unchanged */
    RK_CHECK(rk_config_set(&cfg, "broker", "retain_age", "none", why, sizeof why) == 0);
    RK_CHECK(cfg.broker.retain_age_ns == 0);
    RK_CHECK(rk_config_set(&cfg, "broker", "retain_size", "2M", why, sizeof why) == 0);
    RK_CHECK(cfg.broker.retain_size == 2u << 20);
    RK_CHECK(rk_config_set(&cfg, "broker", "http", "9701", why, sizeof why) == 0);
    RK_CHECK_STR(cfg.broker.http, "9701");
    RK_CHECK(rk_config_set(&cfg, "broker", "http", "0.0.0.0:9701", why, sizeof why) == 0);
    RK_CHECK_STR(cfg.broker.http, "0.0.0.0:9701");
    const char *bad_http[] = {"", "0", "70000", ":9701", "localhost:", "9701x", "x"};
    for (size_t i = 0; i < sizeof bad_http / sizeof bad_http[0]; i++) {
        RK_CHECK(rk_config_set(&cfg, "broker", "http", bad_http[i], why, sizeof why) ==
                 RK_CONFIG_EVALUE);
        RK_CHECK(strstr(why, "IPV4:PORT") != NULL);
    }
    RK_CHECK_STR(cfg.broker.http, "0.0.0.0:9701"); /* unchanged */
    RK_CHECK(rk_config_set(&cfg, "broker", "http", "none", why, sizeof why) == 0);
    RK_CHECK(cfg.broker.http == NULL);
    rk_config_release(&cfg);
}

static void test_flags_override_file(void)
{
    struct rk_config cfg;
    struct rk_config_cli cli;
    char *err;
    int rc;

    write_conf("[broker]\ndata_dir = /from/file\ndurability = os\nmap_max = 8G\n");
    /* The option comes before --config and still wins; "none" lifts the cap. */
    char *argv1[] = {"renkei-broker", "--data-dir", "/from/flag", "-M", "none",
                     "--config", conf, NULL};
    rk_config_init(&cfg);
    err = parse(&cfg, &cli, &rc, argv1);
    RK_CHECK(rc == 0);
    RK_CHECK_STR(err, "");
    RK_CHECK_STR(cli.config_path, conf);
    RK_CHECK(!cli.check_only && !cli.help && !cli.version);
    RK_CHECK_STR(cfg.broker.data_dir, "/from/flag");
    RK_CHECK(cfg.broker.durability == RK_LOG_OS);   /* from the file */
    RK_CHECK(cfg.broker.map_max == 0);
    RK_CHECK_STR(cfg.broker.ingest_endpoint, RK_DEFAULT_INGEST);
    free(err);
    rk_config_release(&cfg);

    /* After --config, and a short option. */
    char *argv2[] = {"renkei-broker", "-c", conf, "--check-config", "-D", "full", NULL};
    rk_config_init(&cfg);
    err = parse(&cfg, &cli, &rc, argv2);
    RK_CHECK(rc == 0 && cli.check_only);
    RK_CHECK(cfg.broker.durability == RK_LOG_FULL);
    RK_CHECK_STR(cfg.broker.data_dir, "/from/file");
    RK_CHECK(cfg.broker.map_max == 8ull << 30);
    free(err);
    rk_config_release(&cfg);
}

static void test_flag_errors(void)
{
    struct rk_config cfg;
    struct rk_config_cli cli;
    char *err;
    int rc;

    /* The option and the key share one reason text. */
    char *argv1[] = {"renkei-broker", "stray", "--durability", "fsync", "-b", "0", "--bogus",
                     "--ingest", NULL};
    rk_config_init(&cfg);
    err = parse(&cfg, &cli, &rc, argv1);
    RK_CHECK(rc == -1);
    RK_CHECK_STR(err,
        "renkei-broker: --durability: must be full or os, got \"fsync\"\n"
        "renkei-broker: --batch-max: must be 1..65536, got \"0\"\n"
        "renkei-broker: unknown option \"--bogus\"; try --help\n"
        "renkei-broker: --ingest needs a value; try --help\n"
        "renkei-broker: unexpected argument \"stray\"; try --help\n");
    free(err);
    rk_config_release(&cfg);

    /* A bad file and a bad option are both reported. */
    write_conf("[broker]\nbatch_max = lots\n");
    char *argv2[] = {"renkei-broker", "--config", conf, "-l", "loud", "-x", NULL};
    char want[512];
    rk_config_init(&cfg);
    err = parse(&cfg, &cli, &rc, argv2);
    RK_CHECK(rc == -1);
    snprintf(want, sizeof want,
             "%s:2: batch_max: must be 1..65536, got \"lots\"\n"
             "renkei-broker: --log-level: must be error, warn, info or debug, got \"loud\"\n"
             "renkei-broker: unknown option \"-x\"; try --help\n", conf);
    RK_CHECK_STR(err, want);
    free(err);
    rk_config_release(&cfg);

    /* --help reads no file, however bad. */
    char *argv3[] = {"renkei-broker", "--config", "/nonexistent", "--help", NULL};
    rk_config_init(&cfg);
    err = parse(&cfg, &cli, &rc, argv3);
    RK_CHECK(rc == 0 && cli.help);
    RK_CHECK_STR(err, "");
    free(err);
    rk_config_release(&cfg);
}

static void test_parse_size(void)
{
    uint64_t v = 0;
    RK_CHECK(rk_config_parse_size("1M", &v) == 0 && v == 1u << 20);
    RK_CHECK(rk_config_parse_size("800m", &v) == 0 && v == 800ull << 20);
    RK_CHECK(rk_config_parse_size("2T", &v) == 0 && v == 2ull << 40);
    RK_CHECK(rk_config_parse_size("1048576", &v) == 0 && v == 1u << 20);
    RK_CHECK(rk_config_parse_size("1023K", &v) == -1);
    RK_CHECK(rk_config_parse_size("-1G", &v) == -1);
    RK_CHECK(rk_config_parse_size("1GB", &v) == -1);
    RK_CHECK(rk_config_parse_size("", &v) == -1);
    RK_CHECK(rk_config_parse_size("99999999999T", &v) == -1);
}

/* The shipped example documents every key, parses, and sets the defaults. */
static void test_example_file(void)
{
    const char *src = getenv("RK_SOURCE_DIR");
    char path[4096], line[512], *err = NULL, *got, *want;
    size_t len = 0;
    struct rk_config cfg, defaults;
    const char *name, *section;
    FILE *f;

    RK_CHECK(src != NULL);
    if (!src)
        return;
    snprintf(path, sizeof path, "%s/deploy/renkei.conf.example", src);
    rk_config_init(&cfg);
    f = open_memstream(&err, &len);
    RK_CHECK(rk_config_load(&cfg, path, f) == 0);
    fclose(f);
    RK_CHECK_STR(err, "");
    free(err);
    rk_config_init(&defaults);
    got = summary(&cfg);
    want = summary(&defaults);
    RK_CHECK_STR(got, want);
    free(got);
    free(want);
    rk_config_release(&defaults);
    rk_config_release(&cfg);

    for (size_t i = 0; (name = rk_config_key_at(i, &section)) != NULL; i++) {
        int found = 0;
        size_t n = strlen(name);
        f = fopen(path, "r");
        RK_CHECK(f != NULL);
        while (f && fgets(line, sizeof line, f)) {
            const char *p = line + (line[0] == '#');
            if (strncmp(p, name, n) == 0 && strncmp(p + n, " = ", 3) == 0)
                found = 1;
        }
        if (f)
            fclose(f);
        if (!found)
            fprintf(stderr, "example lacks [%s] %s\n", section, name);
        RK_CHECK(found);
    }
}

static void test_help_lists_every_option(void)
{
    char *out = NULL, flag[64];
    size_t len = 0;
    const char *name;
    FILE *f = open_memstream(&out, &len);
    rk_config_print_options(f);
    fclose(f);
    for (size_t i = 0; (name = rk_config_key_at(i, NULL)) != NULL; i++) {
        snprintf(flag, sizeof flag, "--%s", name);
        for (char *p = flag; *p; p++)
            if (*p == '_')
                *p = '-';
        RK_CHECK(strstr(out, flag) != NULL);
    }
    RK_CHECK(strstr(out, "--config FILE") != NULL);
    RK_CHECK(strstr(out, "--check-config") != NULL);
    RK_CHECK(strstr(out, "[broker] ingest feed replay") != NULL);
    free(out);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(conf, sizeof conf, "%s/t.conf", dir);
    RK_RUN(test_defaults);
    RK_RUN(test_good_file);
    RK_RUN(test_bad_values);
    RK_RUN(test_structure_errors);
    RK_RUN(test_set);
    RK_RUN(test_flags_override_file);
    RK_RUN(test_flag_errors);
    RK_RUN(test_parse_size);
    RK_RUN(test_example_file);
    RK_RUN(test_help_lists_every_option);
    unlink(conf);
    rmdir(dir);
    return rk_test_result();
}
