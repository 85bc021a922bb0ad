#include "rk_ini.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rk_err.h"

#define QUOTE_MAX 60   /* bytes of a bad line quoted back in a message */

struct rk_ini {
    FILE *in;
    char *path;
    int line;
    int read_err;              /* sticky: a failed read does not get better */
    char section[RK_INI_LINE_MAX + 1];
    /* The line as read: room for a BOM, RK_INI_LINE_MAX bytes and a CR, so
     * that the longest valid line is seen whole and one byte more tells
     * it is too long. Cut in place into name and value. */
    char buf[3 + RK_INI_LINE_MAX + 1 + 1];
};

static const char bom[] = "\xEF\xBB\xBF";

__attribute__((format(printf, 4, 5)))
static int bad(const struct rk_ini *ini, char *why, size_t why_len, const char *fmt, ...)
{
    char msg[RK_INI_WHY_MAX - 4096 - 32];   /* what is left beside the path and line */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (why_len)
        snprintf(why, why_len, "%s:%d: %s", ini->path, ini->line, msg);
    return RK_EFORMAT;
}

int rk_ini_open(const char *path, struct rk_ini **out, char *why, size_t why_len)
{
    struct rk_ini *ini = calloc(1, sizeof *ini);
    int rc = RK_OK;

    *out = NULL;
    if (!ini || !(ini->path = strdup(path))) {
        rc = ENOMEM;
        goto fail;
    }
    ini->in = fopen(path, "r");
    if (!ini->in) {
        rc = errno ? errno : EIO;
        goto fail;
    }
    *out = ini;
    return RK_OK;
fail:
    if (why_len)
        snprintf(why, why_len, "%s: cannot read: %s", path, rk_strerror(rc));
    rk_ini_close(&ini);
    return rc;
}

void rk_ini_close(struct rk_ini **inip)
{
    struct rk_ini *ini = *inip;
    if (!ini)
        return;
    if (ini->in)
        fclose(ini->in);
    free(ini->path);
    free(ini);
    *inip = NULL;
}

const char *rk_ini_path(const struct rk_ini *ini)
{
    return ini->path;
}

/* ---- reading a line */

/* Reads up to the next LF into buf, NUL-terminated, without the LF.
 * Bytes past the buffer are read and dropped, so that an over-long line
 * is still one line: *len says how long it really was. */
static int read_line(struct rk_ini *ini, size_t *len)
{
    size_t n = 0, cap = sizeof ini->buf - 1;
    int c;

    while ((c = getc(ini->in)) != EOF && c != '\n') {
        if (n < cap)
            ini->buf[n] = (char)c;
        n++;
    }
    if (c == EOF && ferror(ini->in))
        return errno ? errno : EIO;
    if (c == EOF && n == 0)
        return RK_EOF;
    ini->buf[n < cap ? n : cap] = '\0';
    *len = n;
    return RK_OK;
}

/* The line read, without its BOM and CR, or NULL when it is too long. */
static char *trim_line_end(struct rk_ini *ini, size_t *len)
{
    char *s = ini->buf;
    size_t n = *len;
    if (ini->line == 1 && n >= 3 && memcmp(s, bom, 3) == 0) {
        s += 3;
        n -= 3;
    }
    if (n > 0 && n <= RK_INI_LINE_MAX + 1 && s[n - 1] == '\r')
        s[--n] = '\0';
    *len = n;
    return n > RK_INI_LINE_MAX ? NULL : s;
}

/* ---- checking its bytes */

/* Length of the UTF-8 sequence at s (RFC 3629: shortest form, no
 * surrogates, at most U+10FFFF), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s)
{
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        return (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        unsigned char lo = s[0] == 0xE0 ? 0xA0 : 0x80, hi = s[0] == 0xED ? 0x9F : 0xBF;
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 ? 3 : 0;
    }
    if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        unsigned char lo = s[0] == 0xF0 ? 0x90 : 0x80, hi = s[0] == 0xF4 ? 0x8F : 0xBF;
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80
                   ? 4 : 0;
    }
    return 0;
}

/* Every byte of the line is text: UTF-8, no control character but tab.
 * `n` counts the bytes, so that a NUL inside the line is seen. Columns in
 * messages count characters, as an editor shows them. */
static int check_text(const struct rk_ini *ini, const char *line, size_t n, char *why,
                      size_t why_len)
{
    const unsigned char *s = (const unsigned char *)line;
    int col = 1;
    for (size_t i = 0; i < n; col++) {
        size_t step = utf8_len(s + i);
        if (s[i] == '\r')
            return bad(ini, why, why_len, "a carriage return inside the line, at column %d; "
                       "end lines with LF or CR LF only", col);
        if ((s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7F)
            return bad(ini, why, why_len, "control character 0x%02X at column %d; remove it "
                       "(blanks are spaces and tabs)", s[i], col);
        if (step == 0 || i + step > n)
            return bad(ini, why, why_len, "not UTF-8 at column %d; save the file as UTF-8 "
                       "(Shift_JIS and EUC-JP are not read)", col);
        i += step;
    }
    return RK_OK;
}

/* ---- taking it apart */

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static char *skip_blanks(char *s)
{
    while (is_blank(*s))
        s++;
    return s;
}

static void strip_end(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && is_blank(s[n - 1]))
        s[--n] = '\0';
}

/* A comment runs from a # or ; that follows a blank: "a;b" and "a#b" stay
 * text because Z85 keys and other values may hold those characters. */
static void cut_comment(char *s)
{
    for (size_t i = 1; s[i]; i++) {
        if ((s[i] == '#' || s[i] == ';') && is_blank(s[i - 1])) {
            s[i] = '\0';
            return;
        }
    }
}

/* `s` in quotes for a message, at most QUOTE_MAX bytes, cut between
 * characters (the line is valid UTF-8 by now). */
static void quote(const char *s, char *out, size_t out_len)
{
    size_t n = strlen(s);
    const char *more = "";
    if (n > QUOTE_MAX) {
        n = QUOTE_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
        more = "...";
    }
    snprintf(out, out_len, "\"%.*s%s\"", (int)n, s, more);
}

static int parse_section(struct rk_ini *ini, char *s, struct rk_ini_entry *e, char *why,
                         size_t why_len)
{
    char *end = strchr(s, ']');
    if (!end)
        return bad(ini, why, why_len, "%s: section header without a closing ]", s);
    if (end == s + 1)
        return bad(ini, why, why_len, "[]: a section header needs a name between the brackets");
    if (*skip_blanks(end + 1))
        return bad(ini, why, why_len, "%s: text after the section header; only a comment, "
                   "after a blank, may follow the ]", s);
    *end = '\0';
    memcpy(ini->section, s + 1, (size_t)(end - s));
    e->kind = RK_INI_SECTION;
    e->name = e->value = NULL;
    return RK_OK;
}

static int parse_key(struct rk_ini *ini, char *s, int indented, struct rk_ini_entry *e,
                     char *why, size_t why_len)
{
    char *sep = s + strcspn(s, "=:"), quoted[QUOTE_MAX + 8];
    if (*sep == '\0') {
        quote(s, quoted, sizeof quoted);
        if (indented)
            return bad(ini, why, why_len, "expected key = value, got %s; a line never "
                       "continues the one above: put the whole value on its key's line", quoted);
        return bad(ini, why, why_len, "expected key = value, got %s", quoted);
    }
    if (sep == s) {
        quote(s, quoted, sizeof quoted);
        return bad(ini, why, why_len, "expected key = value, got %s; the key is missing", quoted);
    }
    *sep = '\0';
    strip_end(s);
    e->kind = RK_INI_KEY;
    e->name = s;
    e->value = skip_blanks(sep + 1);
    return RK_OK;
}

/* One line with content: a section header or a key. *skip when there is
 * none (blank or comment). */
static int parse_line(struct rk_ini *ini, char *line, struct rk_ini_entry *e, int *skip,
                      char *why, size_t why_len)
{
    char *s = skip_blanks(line);
    *skip = *s == '\0' || *s == '#' || *s == ';';
    if (*skip)
        return RK_OK;
    cut_comment(s);
    strip_end(s);
    if (*s == '[')
        return parse_section(ini, s, e, why, why_len);
    return parse_key(ini, s, s != line, e, why, why_len);
}

int rk_ini_next(struct rk_ini *ini, struct rk_ini_entry *e, char *why, size_t why_len)
{
    for (;;) {
        size_t n;
        char *line;
        int rc, skip;

        if (ini->read_err)
            goto read_failed;
        rc = read_line(ini, &n);
        if (rc == RK_EOF) {
            e->line = ini->line;
            return RK_EOF;
        }
        if (rc != RK_OK) {
            ini->read_err = rc;
            goto read_failed;
        }
        e->line = ++ini->line;
        e->section = ini->section;
        line = trim_line_end(ini, &n);
        if (!line)
            return bad(ini, why, why_len, "line longer than %d characters", RK_INI_LINE_MAX);
        rc = check_text(ini, line, n, why, why_len);
        if (rc == RK_OK)
            rc = parse_line(ini, line, e, &skip, why, why_len);
        if (rc != RK_OK || !skip)
            return rc;
    }
read_failed:
    if (why_len)
        snprintf(why, why_len, "%s: cannot read: %s", ini->path, rk_strerror(ini->read_err));
    return ini->read_err;
}
