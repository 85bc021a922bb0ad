#include "rk_acl.h"
#include "rk_config.h"
#include "rk_err.h"
#include "rk_ini.h"
#include "rk_test.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <zmq.h>

static char dir[] = "/tmp/rk_ini_test.XXXXXX";
static char path[64];      /* dir/t.ini: the file each test writes */
static char conf_ok[64];   /* dir/ok.conf: a valid config file */
static char key1[41];

static void write_bytes(const char *p, const char *text, size_t len)
{
    FILE *f = fopen(p, "wb");
    RK_CHECK(f != NULL);
    if (!f)
        return;
    fwrite(text, 1, len, f);
    fclose(f);
}

static void write_text(const char *text)
{
    write_bytes(path, text, strlen(text));
}

/* "S<line>[name]" for a section, "K<line>[name]=[value]" for a key,
 * "E<line>{why}" for a bad line, one per entry, the whole file. */
static char *trace(void)
{
    char *out = NULL, why[RK_INI_WHY_MAX];
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    struct rk_ini *ini = NULL;
    struct rk_ini_entry e;
    int rc = rk_ini_open(path, &ini, why, sizeof why);
    RK_CHECK(rc == RK_OK);
    while (ini && (rc = rk_ini_next(ini, &e, why, sizeof why)) != RK_EOF) {
        if (rc == RK_EFORMAT)
            fprintf(f, "E%d{%s}", e.line, why + strlen(path) + 1);
        else if (rc != RK_OK)
            break;
        else if (e.kind == RK_INI_SECTION)
            fprintf(f, "S%d[%s]", e.line, e.section);
        else
            fprintf(f, "K%d[%s]=[%s]", e.line, e.name, e.value);
    }
    RK_CHECK(rc == RK_EOF);
    rk_ini_close(&ini);
    fclose(f);
    return out;
}

static void check_trace(const char *text, size_t len, const char *want)
{
    write_bytes(path, text, len);
    char *got = trace();
    RK_CHECK_STR(got, want);
    free(got);
}

#define CHECK_TRACE(text, want) check_trace(text, sizeof text - 1, want)

/* What rk_acl_load says about `path`: "ok" or its `why`, and its code. */
static char *acl_verdict(int *rc)
{
    struct rk_acl *acl = NULL;
    char why[RK_INI_WHY_MAX];
    *rc = rk_acl_load(path, &acl, why, sizeof why);
    rk_acl_release(acl);
    return strdup(*rc == RK_OK ? "ok" : why);
}

/* What rk_config_load writes about `path`, one line per problem. */
static char *config_verdict(int *rc)
{
    struct rk_config cfg;
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    rk_config_init(&cfg);
    *rc = rk_config_load(&cfg, path, f);
    rk_config_release(&cfg);
    fclose(f);
    return out;
}

/* ---- the old difference
 *
 * Before rk_ini, rk_acl_load ran libinih with whatever options the library
 * globals held: its defaults, unless rk_config_load had set its own (no
 * continuation lines, " #" comments, 4096-byte lines) earlier in the
 * process. So the broker read an ACL one way without --config and another
 * way with it. This test loads each ACL before and after a config file and
 * wants the same verdict; it must run before any other test loads a config
 * file, or the old code would already be in its "after" state. */

/* "subscribe = aid. kpi.update/01/ ... kpi.update/20/": 316 bytes. */
static void long_subscribe(char *out, size_t len)
{
    size_t n = (size_t)snprintf(out, len, "subscribe = aid.");
    for (int i = 1; i <= 20; i++)
        n += (size_t)snprintf(out + n, len - n, " kpi.update/%02d/", i);
    snprintf(out + n, len - n, "\n");
}

static void test_acl_same_before_and_after_config(void)
{
    static const char *const bodies[] = {
        "subscribe = aid.\n    kpi.\n",      /* was: a continuation without --config */
        "publish = 271004 # osaka\n",        /* was: "#" a municipality without --config */
        NULL,                                /* a 316-byte line: was split without --config */
    };
    char text[1024], *before[3], *after[3];
    int rc_before[3], rc_after[3];

    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < 3; i++) {
            int n = snprintf(text, sizeof text, "[tenant a]\nkey = %s\n", key1);
            if (bodies[i])
                snprintf(text + n, sizeof text - (size_t)n, "%s", bodies[i]);
            else
                long_subscribe(text + n, sizeof text - (size_t)n);
            write_text(text);
            if (pass == 0)
                before[i] = acl_verdict(&rc_before[i]);
            else
                after[i] = acl_verdict(&rc_after[i]);
        }
        if (pass == 0) {
            struct rk_config cfg;
            rk_config_init(&cfg);
            RK_CHECK(rk_config_load(&cfg, conf_ok, stderr) == 0);
            rk_config_release(&cfg);
        }
    }
    for (int i = 0; i < 3; i++) {
        RK_CHECK(rc_before[i] == rc_after[i]);
        RK_CHECK_STR(after[i], before[i]);
    }
    /* And what the one reading is. */
    snprintf(text, sizeof text, "%s:4: expected key = value, got \"kpi.\"; a line never "
             "continues the one above: put the whole value on its key's line", path);
    RK_CHECK(rc_after[0] == RK_EFORMAT);
    RK_CHECK_STR(after[0], text);
    RK_CHECK(rc_after[1] == RK_OK && rc_after[2] == RK_OK);
    for (int i = 0; i < 3; i++) {
        free(before[i]);
        free(after[i]);
    }
}

/* ---- the rules, through rk_ini itself */

static void test_lines(void)
{
    /* BOM, CRLF, comments of both kinds, indented lines, a value's own # and ;. */
    CHECK_TRACE("\xEF\xBB\xBF# comment\r\n"
                "; comment\n"
                "   # indented comment\n"
                "\t\n"
                "\n"
                "[tenant a] ; trailing comment\r\n"
                "key = k1 # trailing comment\r\n"
                "  publish=271004\t; indented key line\n"
                "subscribe = a#b c;d\n"
                "replay =#x\n"
                "x =\n"
                "y = ; all comment\n"
                "name: value\n"
                "q = \"a b\"\n"
                "u = 大阪市 ; 日本語\n"
                "sp ace = v = w\n"
                "[tenant a]\n"
                "key = k1\n"
                "[t\xC3\xA9st]\n"
                "last = line\r",
                "S6[tenant a]K7[key]=[k1]K8[publish]=[271004]K9[subscribe]=[a#b c;d]"
                "K10[replay]=[#x]K11[x]=[]K12[y]=[]K13[name]=[value]K14[q]=[\"a b\"]"
                "K15[u]=[大阪市]K16[sp ace]=[v = w]S17[tenant a]K18[key]=[k1]"
                "S19[t\xC3\xA9st]K20[last]=[line]");
    /* A key before any section has section "". */
    CHECK_TRACE("a = 1\n[s]\n", "K1[a]=[1]S2[s]");
    CHECK_TRACE("", "");
    CHECK_TRACE("\n\n", "");
    CHECK_TRACE("\xEF\xBB\xBF", "");
}

/* Each bad line is one error naming its line; the next line is read. */
static void test_bad_lines(void)
{
    static const struct { const char *line; size_t len; const char *why; } cases[] = {
#define C(text, why) {text, sizeof text - 1, why}
        C("just words", "expected key = value, got \"just words\""),
        C("  kpi.", "expected key = value, got \"kpi.\"; a line never continues the one "
                    "above: put the whole value on its key's line"),
        C("key ; = v", "expected key = value, got \"key\""),
        C("= v", "expected key = value, got \"= v\"; the key is missing"),
        C("[broker", "[broker: section header without a closing ]"),
        C("[tenant a ; x]", "[tenant a: section header without a closing ]"),
        C("[]", "[]: a section header needs a name between the brackets"),
        C("[broker] junk", "[broker] junk: text after the section header; only a comment, "
                           "after a blank, may follow the ]"),
        C("[broker];x", "[broker];x: text after the section header; only a comment, "
                        "after a blank, may follow the ]"),
        C("a = b\rc", "a carriage return inside the line, at column 6; end lines with LF "
                      "or CR LF only"),
        C("a = \f", "control character 0x0C at column 5; remove it (blanks are spaces and "
                    "tabs)"),
        C("a = b\0c", "control character 0x00 at column 6; remove it (blanks are spaces and "
                      "tabs)"),
        C("a = \x7F", "control character 0x7F at column 5; remove it (blanks are spaces and "
                      "tabs)"),
        C("# \x91\xE5\x8D\xE3", "not UTF-8 at column 3; save the file as UTF-8 (Shift_JIS "
                                "and EUC-JP are not read)"),     /* Shift_JIS in a comment */
        C("a = 大\x80", "not UTF-8 at column 6; save the file as UTF-8 (Shift_JIS and EUC-JP "
                       "are not read)"),
        C("a = \xC0\xAF", "not UTF-8 at column 5; save the file as UTF-8 (Shift_JIS and "
                          "EUC-JP are not read)"),               /* overlong "/" */
        C("a = \xED\xA0\x80", "not UTF-8 at column 5; save the file as UTF-8 (Shift_JIS and "
                              "EUC-JP are not read)"),           /* a surrogate */
        C("a = \xF4\x90\x80\x80", "not UTF-8 at column 5; save the file as UTF-8 (Shift_JIS "
                                  "and EUC-JP are not read)"),   /* past U+10FFFF */
        C("a = \xE5\xA4", "not UTF-8 at column 5; save the file as UTF-8 (Shift_JIS and "
                          "EUC-JP are not read)"),               /* cut short */
#undef C
    };
    char text[256], want[1024];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = (size_t)snprintf(text, sizeof text, "[s]\n");
        memcpy(text + n, cases[i].line, cases[i].len);
        n += cases[i].len;
        n += (size_t)snprintf(text + n, sizeof text - n, "\nk = v\n");
        snprintf(want, sizeof want, "S1[s]E2{%d: %s}K3[k]=[v]", 2, cases[i].why);
        check_trace(text, n, want);
    }
}

static void test_line_length(void)
{
    size_t cap = RK_INI_LINE_MAX + 64;
    char *text = malloc(cap), *want = malloc(cap + 64);
    size_t n;
    /* Exactly RK_INI_LINE_MAX bytes, with CR LF and with a BOM: whole. */
    n = (size_t)snprintf(text, cap, "\xEF\xBB\xBF" "k = ");
    memset(text + n, 'x', RK_INI_LINE_MAX - 4);
    n += RK_INI_LINE_MAX - 4;
    n += (size_t)snprintf(text + n, cap - n, "\r\nnext = 1\n");
    snprintf(want, cap + 64, "K1[k]=[%.*s]K2[next]=[1]", RK_INI_LINE_MAX - 4, text + 7);
    check_trace(text, n, want);
    /* One byte more is an error, not a split: line 3 stays line 3. */
    n = (size_t)snprintf(text, cap, "[s]\nk = ");
    memset(text + n, 'x', RK_INI_LINE_MAX - 3);
    n += RK_INI_LINE_MAX - 3;
    n += (size_t)snprintf(text + n, cap - n, "\nnext = 1\n");
    snprintf(want, cap + 64, "S1[s]E2{2: line longer than %d characters}K3[next]=[1]",
             RK_INI_LINE_MAX);
    check_trace(text, n, want);
    /* A quoted bad line is cut between characters. */
    n = (size_t)snprintf(text, cap, "x");
    for (int i = 0; i < 30; i++)
        n += (size_t)snprintf(text + n, cap - n, "大");
    check_trace(text, n, "E1{1: expected key = value, got "
                "\"x大大大大大大大大大大大大大大大大大大大...\"}");   /* 1 + 19 * 3 bytes */
    free(text);
    free(want);
}

static void test_open_and_read_errors(void)
{
    struct rk_ini *ini = (struct rk_ini *)1;
    struct rk_ini_entry e;
    char why[RK_INI_WHY_MAX];

    RK_CHECK(rk_ini_open("/nonexistent/x.ini", &ini, why, sizeof why) == ENOENT);
    RK_CHECK(ini == NULL);
    RK_CHECK_STR(why, "/nonexistent/x.ini: cannot read: No such file or directory");
    rk_ini_close(&ini);   /* harmless on NULL */

    /* A directory opens but cannot be read; the error stays. */
    RK_CHECK(rk_ini_open(dir, &ini, why, sizeof why) == RK_OK);
    if (!ini)
        return;
    RK_CHECK_STR(rk_ini_path(ini), dir);
    RK_CHECK(rk_ini_next(ini, &e, why, sizeof why) == EISDIR);
    RK_CHECK(strstr(why, ": cannot read: Is a directory") != NULL);
    RK_CHECK(rk_ini_next(ini, &e, NULL, 0) == EISDIR);
    rk_ini_close(&ini);
    RK_CHECK(ini == NULL);
}

/* ---- one text, both files
 *
 * The same bytes as an ACL and as a config file: a line rk_ini rejects is
 * rejected by both with the same sentence (the config lists every problem,
 * the ACL stops at its first, so the ACL's is the config's last); a text
 * rk_ini accepts gives neither a syntax error. */

static void check_both_reject(const char *text, size_t len, const char *why)
{
    char want[RK_INI_WHY_MAX + 2];
    int acl_rc, config_rc;
    write_bytes(path, text, len);
    char *acl = acl_verdict(&acl_rc), *config = config_verdict(&config_rc);
    snprintf(want, sizeof want, "%s:%s", path, why);
    RK_CHECK(acl_rc == RK_EFORMAT && config_rc == -1);
    RK_CHECK_STR(acl, want);
    strcat(want, "\n");
    size_t n = strlen(config), w = strlen(want);
    RK_CHECK(n >= w && strcmp(config + n - w, want) == 0);
    if (n < w || strcmp(config + n - w, want) != 0)
        fprintf(stderr, "config said: %s", config);
    free(acl);
    free(config);
}

static void test_same_text_both_files(void)
{
    size_t cap = RK_INI_LINE_MAX + 256;
    char *text = malloc(cap);
    char head[128];
    int n, rc;

    snprintf(head, sizeof head, "[tenant a]\nkey = %s\n", key1);

    /* An over-long line. */
    n = snprintf(text, cap, "%s# ", head);
    memset(text + n, '-', RK_INI_LINE_MAX);
    n += RK_INI_LINE_MAX;
    n += snprintf(text + n, cap - (size_t)n, "\npublish = 271004\n");
    check_both_reject(text, (size_t)n, "3: line longer than 4093 characters");

    /* A continuation-like indented line. */
    n = snprintf(text, cap, "%ssubscribe = aid.\n    kpi.\n", head);
    check_both_reject(text, (size_t)n, "4: expected key = value, got \"kpi.\"; a line never "
                      "continues the one above: put the whole value on its key's line");

    /* A line ending in a lone CR, and a Shift_JIS comment. */
    n = snprintf(text, cap, "%sreplay = aid.\rkpi.\n", head);
    check_both_reject(text, (size_t)n, "3: a carriage return inside the line, at column 14; "
                      "end lines with LF or CR LF only");
    n = snprintf(text, cap, "%s; \x91\xE5\x8D\xE3\x8E\x73\n", head);
    check_both_reject(text, (size_t)n, "3: not UTF-8 at column 3; save the file as UTF-8 "
                      "(Shift_JIS and EUC-JP are not read)");
    n = snprintf(text, cap, "%s[tenant b\n", head);
    check_both_reject(text, (size_t)n, "3: [tenant b: section header without a closing ]");

    /* BOM, CR LF, a comment after a value, an indented key: both read it all
     * (the config's only complaint is about the section's meaning). */
    n = snprintf(text, cap, "\xEF\xBB\xBF[tenant a]\r\nkey = %s ; the key\r\n"
                 "  subscribe = kpi. # research only\r\npublish =\r\n", key1);
    write_bytes(path, text, (size_t)n);
    char *acl = acl_verdict(&rc), *config = config_verdict(&rc), want[256];
    RK_CHECK_STR(acl, "ok");
    snprintf(want, sizeof want, "%s:1: [tenant a]: unknown section; known: [broker]\n", path);
    RK_CHECK_STR(config, want);
    free(acl);
    free(config);
    struct rk_acl *a = NULL;
    const char kpi[1][RK_WIRE_TOPIC_MAX] = {"kpi.update/27/"};
    RK_CHECK(rk_acl_load(path, &a, want, sizeof want) == RK_OK);
    const struct rk_acl_tenant *t = a ? rk_acl_find(a, key1) : NULL;
    RK_CHECK(t && rk_acl_may_read(t, RK_ACL_SUBSCRIBE, kpi, 1) && !rk_acl_may_publish(t, "271004"));
    rk_acl_release(a);
    free(text);
}

int main(void)
{
    char secret[41];
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/t.ini", dir);
    snprintf(conf_ok, sizeof conf_ok, "%s/ok.conf", dir);
    write_bytes(conf_ok, "[broker]\nbatch_max = 64\n", 24);
    zmq_curve_keypair(key1, secret);
    RK_RUN(test_acl_same_before_and_after_config);   /* first: see its comment */
    RK_RUN(test_lines);
    RK_RUN(test_bad_lines);
    RK_RUN(test_line_length);
    RK_RUN(test_open_and_read_errors);
    RK_RUN(test_same_text_both_files);
    unlink(path);
    unlink(conf_ok);
    rmdir(dir);
    return rk_test_result();
}
