#include "rk_kpi_csv.h"
#include "rk_keys.h"
#include "rk_text.h"
#include "rk_time.h"

#include <csv.h>
#include <errno.h>
#include <iconv.h>
#include <jansson.h>
#include <math.h>
#include <msgpack.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_COLS 64
#define MAX_FIELD 4096

/* Columns the importer understands; the index is the position in col_names. */
enum col {
    C_KPI_ID, C_CITY, C_AREA, C_PROJECT, C_NAME, C_UNIT, C_AGG, C_REGION,
    C_BASE_V, C_BASE_FY, C_BASE_LABEL,
    C_TGT_V, C_TGT_FY, C_TGT_FROM, C_TGT_LABEL,
    C_CUR_V, C_CUR_FY, C_CUR_FROM, C_CUR_ASOF, C_CUR_LABEL,
    C_NOTE, C__COUNT
};

static const struct {
    const char *name;
    int required;
} cols[C__COUNT] = {
    [C_KPI_ID] = {"kpi_id", 1}, [C_CITY] = {"city_code", 1}, [C_AREA] = {"policy_area_code", 1},
    [C_PROJECT] = {"project_name", 0}, [C_NAME] = {"kpi_name", 1}, [C_UNIT] = {"unit", 1},
    [C_AGG] = {"aggregation", 1}, [C_REGION] = {"region_name", 0},
    [C_BASE_V] = {"baseline_value", 1}, [C_BASE_FY] = {"baseline_fy", 1},
    [C_BASE_LABEL] = {"baseline_label", 0},
    [C_TGT_V] = {"target_value", 1}, [C_TGT_FY] = {"target_fy", 1},
    [C_TGT_FROM] = {"target_fy_from", 0}, [C_TGT_LABEL] = {"target_label", 0},
    [C_CUR_V] = {"current_value", 1}, [C_CUR_FY] = {"current_fy", 1},
    [C_CUR_FROM] = {"current_fy_from", 0}, [C_CUR_ASOF] = {"current_as_of", 0},
    [C_CUR_LABEL] = {"current_label", 0}, [C_NOTE] = {"note", 0},
};

struct reader {
    int64_t sent_at_ns;
    rk_kpi_row_fn fn;
    void *arg;
    long record;              /* 0 = header */
    int ncols;
    int where[C__COUNT];      /* CSV column of each known column, -1 if absent */
    char *field[MAX_COLS];
    size_t field_len[MAX_COLS];
    int nfields;
    char missing[64];         /* first required column absent from the header */
};

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static const char *get(const struct reader *r, enum col c)
{
    int i = r->where[c];
    return i >= 0 && i < r->nfields ? r->field[i] : "";
}

static int parse_int(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno)
        return -1;
    *out = v;
    return 0;
}

/* Packs a number as an integer when it is written as one, else float64. */
static int pack_number(msgpack_packer *pk, const char *s)
{
    long iv;
    char *end;
    if (parse_int(s, &iv) == 0)
        return msgpack_pack_int64(pk, iv);
    errno = 0;
    double d = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(d))
        return -1;
    return msgpack_pack_double(pk, d);
}

/* One of baseline/target/current: {value, fy[, fy_from][, as_of][, label]}. */
static int pack_point(msgpack_packer *pk, const struct reader *r, const char *key, enum col v,
                      enum col fy, enum col from, enum col asof, enum col label, char *err,
                      size_t errlen)
{
    long year = 0, year_from = 0;
    int has_from = from != C__COUNT && *get(r, from);
    int has_asof = asof != C__COUNT && *get(r, asof);
    int has_label = label != C__COUNT && *get(r, label);
    if (parse_int(get(r, fy), &year) != 0) {
        snprintf(err, errlen, "%s: must be a year, got \"%.40s\"", cols[fy].name, get(r, fy));
        return -1;
    }
    if (has_from && parse_int(get(r, from), &year_from) != 0) {
        snprintf(err, errlen, "%s: must be a year, got \"%.40s\"", cols[from].name, get(r, from));
        return -1;
    }
    pack_str(pk, key);
    msgpack_pack_map(pk, 2 + (size_t)has_from + (size_t)has_asof + (size_t)has_label);
    pack_str(pk, "value");
    if (pack_number(pk, get(r, v)) != 0) {
        snprintf(err, errlen, "%s: must be a number, got \"%.40s\"", cols[v].name, get(r, v));
        return -1;
    }
    pack_str(pk, "fy");
    msgpack_pack_int64(pk, year);
    if (has_from) {
        pack_str(pk, "fy_from");
        msgpack_pack_int64(pk, year_from);
    }
    if (has_asof) {
        pack_str(pk, "as_of");
        pack_str(pk, get(r, asof));
    }
    if (has_label) {
        pack_str(pk, "label");
        pack_str(pk, get(r, label));
    }
    return 0;
}

static void pack_optional(msgpack_packer *pk, const struct reader *r, const char *key, enum col c)
{
    if (*get(r, c)) {
        pack_str(pk, key);
        pack_str(pk, get(r, c));
    }
}

/* FNV-1a, 64 bits: over every known column's name and value, so that a
 * change in any figure, label or note makes another id. */
static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t row_hash(const struct reader *r)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int c = 0; c < C__COUNT; c++) {
        const char *v = get(r, (enum col)c);
        h = fnv1a(h, cols[c].name, strlen(cols[c].name) + 1);
        h = fnv1a(h, v, strlen(v) + 1);
    }
    return h;
}

void rk_kpi_row_producer(const char *base, const char *event_id,
                         char out[RK_KPI_PRODUCER_MAX + 1])
{
    uint64_t h = fnv1a(0xcbf29ce484222325ULL, event_id, strlen(event_id));
    snprintf(out, RK_KPI_PRODUCER_MAX + 1, "%.47s:%016llx", base, (unsigned long long)h);
}

/* Builds the event for the current row into `sb`. */
static int build_event(struct reader *r, msgpack_sbuffer *sb, char *err, size_t errlen)
{
    msgpack_packer pk;
    char event_id[128], sent_at[RK_TIME_TEXT_MAX];
    long fy;
    size_t nopt = (size_t)(*get(r, C_PROJECT) != 0) + (*get(r, C_REGION) != 0) + (*get(r, C_NOTE) != 0);

    if (parse_int(get(r, C_CUR_FY), &fy) != 0) {
        snprintf(err, errlen, "current_fy: must be a year, got \"%.40s\"", get(r, C_CUR_FY));
        return -1;
    }
    /* The row's content and fiscal year, not its place in the file: the
     * same figures sent again (another run, a re-saved file) have the same
     * id, and the importer publishes each under its own producer
     * (rk_kpi_row_producer). */
    snprintf(event_id, sizeof event_id, "%.40s:FY%ld:%016llx", get(r, C_KPI_ID), fy,
             (unsigned long long)row_hash(r));
    rk_time_format(r->sent_at_ns, sent_at);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 13 + nopt);
    pack_str(&pk, "type"); pack_str(&pk, "kpi.update");
    pack_str(&pk, "event_id"); pack_str(&pk, event_id);
    pack_str(&pk, "municipality"); pack_str(&pk, get(r, C_CITY));
    pack_str(&pk, "sent_at"); pack_str(&pk, sent_at);
    pack_str(&pk, "kpi_id"); pack_str(&pk, get(r, C_KPI_ID));
    pack_str(&pk, "policy_area"); pack_str(&pk, get(r, C_AREA));
    pack_str(&pk, "name"); pack_str(&pk, get(r, C_NAME));
    pack_str(&pk, "unit"); pack_str(&pk, get(r, C_UNIT));
    pack_str(&pk, "aggregation"); pack_str(&pk, get(r, C_AGG));
    pack_str(&pk, "fiscal_year"); msgpack_pack_int64(&pk, fy);
    if (pack_point(&pk, r, "baseline", C_BASE_V, C_BASE_FY, C__COUNT, C__COUNT, C_BASE_LABEL, err, errlen) ||
        pack_point(&pk, r, "target", C_TGT_V, C_TGT_FY, C_TGT_FROM, C__COUNT, C_TGT_LABEL, err, errlen) ||
        pack_point(&pk, r, "current", C_CUR_V, C_CUR_FY, C_CUR_FROM, C_CUR_ASOF, C_CUR_LABEL, err, errlen))
        return -1;
    pack_optional(&pk, r, "project", C_PROJECT);
    pack_optional(&pk, r, "region", C_REGION);
    pack_optional(&pk, r, "note", C_NOTE);
    return 0;
}

static void on_header(struct reader *r)
{
    for (int c = 0; c < C__COUNT; c++) {
        r->where[c] = -1;
        for (int i = 0; i < r->nfields; i++)
            if (strcmp(r->field[i], cols[c].name) == 0)
                r->where[c] = i;
        if (cols[c].required && r->where[c] < 0 && !r->missing[0])
            snprintf(r->missing, sizeof r->missing, "%s", cols[c].name);
    }
}

static void on_row(struct reader *r)
{
    msgpack_sbuffer sb;
    char err[256];
    msgpack_sbuffer_init(&sb);
    for (int c = 0; c < C__COUNT; c++) {
        if (cols[c].required && !*get(r, c)) {
            snprintf(err, sizeof err, "%s: required, but empty", cols[c].name);
            r->fn(r->arg, r->record + 1, NULL, 0, err);
            goto out;
        }
    }
    if (build_event(r, &sb, err, sizeof err) != 0)
        r->fn(r->arg, r->record + 1, NULL, 0, err);
    else
        r->fn(r->arg, r->record + 1, sb.data, sb.size, NULL);
out:
    msgpack_sbuffer_destroy(&sb);
}

static void field_cb(void *data, size_t len, void *arg)
{
    struct reader *r = arg;
    if (r->nfields == MAX_COLS)
        return;
    if (len > MAX_FIELD)
        len = MAX_FIELD;
    char *f = malloc(len + 1);
    if (!f)
        abort();
    memcpy(f, data, len);
    f[len] = '\0';
    r->field[r->nfields] = f;
    r->field_len[r->nfields] = len;
    r->nfields++;
}

static void record_cb(int term, void *arg)
{
    struct reader *r = arg;
    (void)term;
    if (r->record == 0)
        on_header(r);
    else if (!r->missing[0] && !(r->nfields == 1 && r->field_len[0] == 0))
        on_row(r);
    for (int i = 0; i < r->nfields; i++)
        free(r->field[i]);
    r->nfields = 0;
    r->record++;
}

int rk_kpi_csv_read(FILE *in, int64_t sent_at_ns, rk_kpi_row_fn fn, void *arg,
                    char *why, size_t why_len)
{
    struct csv_parser p;
    struct reader r = {.sent_at_ns = sent_at_ns, .fn = fn, .arg = arg};
    char buf[8192];
    size_t n;
    int rc = 0;

    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI) != 0) {
        snprintf(why, why_len, "cannot initialise the CSV parser");
        return -1;
    }
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        if (csv_parse(&p, buf, n, field_cb, record_cb, &r) != n) {
            snprintf(why, why_len, "line %ld: malformed CSV: %s", r.record + 1,
                     csv_strerror(csv_error(&p)));
            rc = -1;
            goto out;
        }
        if (r.missing[0])
            break;
    }
    if (ferror(in)) {
        snprintf(why, why_len, "read error: %s", strerror(errno));
        rc = -1;
        goto out;
    }
    if (!r.missing[0] && csv_fini(&p, field_cb, record_cb, &r) != 0) {
        snprintf(why, why_len, "line %ld: malformed CSV: %s", r.record + 1,
                 csv_strerror(csv_error(&p)));
        rc = -1;
    }
    if (r.missing[0]) {
        snprintf(why, why_len, "line 1: the header has no \"%s\" column, which is required", r.missing);
        rc = -1;
    } else if (r.record == 0) {
        snprintf(why, why_len, "the file is empty: expected a header line");
        rc = -1;
    }
out:
    for (int i = 0; i < r.nfields; i++)
        free(r.field[i]);
    csv_free(&p);
    return rc;
}

/* One JSON value as the text a CSV cell would hold; -1 for a type a
 * cell cannot hold (array, object, true/false). */
static int cell_text(const json_t *v, char *buf, size_t cap)
{
    if (!v || json_is_null(v))
        buf[0] = '\0';
    else if (json_is_string(v))
        snprintf(buf, cap, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, cap, "%.17g", json_real_value(v));
    else
        return -1;
    return 0;
}

/* A JSON object's members as the columns of one CSV row. */
static int json_row(struct reader *r, const json_t *row, char *err, size_t errlen)
{
    char cell[MAX_FIELD + 1];
    for (int c = 0; c < C__COUNT; c++) {
        if (cell_text(json_object_get(row, cols[c].name), cell, sizeof cell) != 0) {
            snprintf(err, errlen, "%s: must be a string or a number", cols[c].name);
            return -1;
        }
        r->field[c] = strdup(cell);
        if (!r->field[c])
            abort();
        r->field_len[c] = strlen(cell);
        r->where[c] = c;
        r->nfields = c + 1;
    }
    return 0;
}

int rk_kpi_jsonl_read(FILE *in, int64_t sent_at_ns, rk_kpi_row_fn fn, void *arg,
                      char *why, size_t why_len)
{
    struct reader r = {.sent_at_ns = sent_at_ns, .fn = fn, .arg = arg};
    char *line = NULL, err[300];
    size_t cap = 0;
    ssize_t n;

    for (r.record = 0; (n = getline(&line, &cap, in)) >= 0; r.record++) {
        json_error_t jerr;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0)
            continue;
        json_t *row = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(row))
            snprintf(err, sizeof err, row ? "row: must be one JSON object"
                     : "row: not valid JSON at column %d: %s", jerr.column, jerr.text);
        else if (json_row(&r, row, err, sizeof err) == 0)
            err[0] = '\0';
        if (err[0])
            fn(arg, r.record + 1, NULL, 0, err);
        else
            on_row(&r); /* reports line r.record + 1 */
        for (int i = 0; i < r.nfields; i++)
            free(r.field[i]);
        r.nfields = 0;
        json_decref(row);
    }
    free(line);
    if (ferror(in)) {
        snprintf(why, why_len, "read error: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- encodings */

int rk_kpi_encoding_parse(const char *name, enum rk_kpi_encoding *out)
{
    static const struct { const char *name; enum rk_kpi_encoding e; } names[] = {
        {"auto", RK_KPI_AUTO}, {"utf-8", RK_KPI_UTF8}, {"utf8", RK_KPI_UTF8},
        {"cp932", RK_KPI_CP932}, {"shift_jis", RK_KPI_CP932}, {"sjis", RK_KPI_CP932},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(name, names[i].name) == 0) {
            *out = names[i].e;
            return 0;
        }
    return -1;
}

/* Offset of the first byte that is not valid UTF-8, or n. */
static size_t utf8_prefix(const char *s, size_t n)
{
    size_t i = 0, k;
    while (i < n && (k = rk_text_utf8_char((const unsigned char *)s + i, n - i, NULL)) > 0)
        i += k;
    return i;
}

static long line_at(const char *s, size_t off)
{
    long line = 1;
    for (size_t i = 0; i < off; i++)
        line += s[i] == '\n';
    return line;
}

/* CP932 to UTF-8 with glibc's iconv. Returns 0, or -1 with the offset of
 * the first byte that is not CP932 in *bad. */
static int from_cp932(const char *in, size_t n, char **out, size_t *out_len, size_t *bad)
{
    iconv_t cd = iconv_open("UTF-8", "CP932");
    size_t cap = 3 * n + 1, left_in = n, left_out = cap;
    char *buf, *src = (char *)in, *dst;
    if (cd == (iconv_t)-1)
        return -2;
    buf = dst = malloc(cap);
    if (!buf)
        abort();
    if (iconv(cd, &src, &left_in, &dst, &left_out) == (size_t)-1) {
        *bad = (size_t)(src - in);
        iconv_close(cd);
        free(buf);
        return -1;
    }
    iconv_close(cd);
    *dst = '\0';
    *out = buf;
    *out_len = (size_t)(dst - buf);
    return 0;
}

int rk_kpi_decode(const char *in, size_t n, enum rk_kpi_encoding enc, char **out,
                  size_t *out_len, const char **used, char *why, size_t why_len)
{
    size_t ok, bad = 0;
    int rc;
    if (n >= 3 && memcmp(in, "\xef\xbb\xbf", 3) == 0 && enc != RK_KPI_CP932) {
        in += 3;   /* Excel's "CSV UTF-8" starts with a byte order mark */
        n -= 3;
        enc = RK_KPI_UTF8;
    }
    ok = utf8_prefix(in, n);
    if (enc != RK_KPI_CP932 && ok == n) {
        *out = malloc(n + 1);
        if (!*out)
            abort();
        memcpy(*out, in, n);
        (*out)[n] = '\0';
        *out_len = n;
        *used = "utf-8";
        return 0;
    }
    if (enc == RK_KPI_UTF8) {
        snprintf(why, why_len, "line %ld: byte %zu is not UTF-8 (0x%02x); if the file is "
                 "Shift_JIS (Excel's \"CSV\" on Japanese Windows), give --encoding cp932",
                 line_at(in, ok), ok, (unsigned char)in[ok]);
        return -1;
    }
    rc = from_cp932(in, n, out, out_len, &bad);
    if (rc == -2) {
        snprintf(why, why_len, "this system's iconv has no CP932 converter");
        return -1;
    }
    if (rc != 0) {
        if (enc == RK_KPI_CP932)
            snprintf(why, why_len, "line %ld: byte %zu is not CP932 (0x%02x), as --encoding "
                     "cp932 says it is", line_at(in, bad), bad, (unsigned char)in[bad]);
        else
            snprintf(why, why_len, "line %ld: byte %zu is not UTF-8 (0x%02x), and the file is "
                     "not CP932/Shift_JIS either (line %ld, byte %zu); save it as \"CSV UTF-8\"",
                     line_at(in, ok), ok, (unsigned char)in[ok], line_at(in, bad), bad);
        return -1;
    }
    *used = "cp932";
    return 0;
}

/* ---- a file, whole */

#define FILE_MAX (64u << 20)

int rk_kpi_load(const char *path, enum rk_kpi_encoding enc, char **out, size_t *out_len,
                const char **used, char *why, size_t why_len)
{
    FILE *in = strcmp(path, "-") != 0 ? fopen(path, "rb") : stdin;
    char *raw = NULL;
    size_t n = 0, cap = 0, got;
    int rc = -1;
    if (!in) {
        snprintf(why, why_len, "cannot open: %s", strerror(errno));
        return -1;
    }
    do {
        if (n == cap) {
            cap = cap ? 2 * cap : 65536;
            if (!(raw = realloc(raw, cap)))
                abort();
        }
        got = fread(raw + n, 1, cap - n, in);
        n += got;
    } while (got > 0 && n <= FILE_MAX);
    if (ferror(in))
        snprintf(why, why_len, "read error: %s", strerror(errno));
    else if (n > FILE_MAX)
        snprintf(why, why_len, "larger than %u MiB: split it", FILE_MAX >> 20);
    else
        rc = rk_kpi_decode(raw ? raw : "", n, enc, out, out_len, used, why, why_len);
    if (in != stdin)
        fclose(in);
    free(raw);
    return rc;
}

int rk_kpi_producer(const char *client_key, char out[RK_KPI_PRODUCER_MAX + 1])
{
    char secret[RK_KEY_Z85_LEN + 1], why[256];
    unsigned char h[16];
    if (!client_key) {
        snprintf(out, RK_KPI_PRODUCER_MAX + 1, "kpi-csv:plain");
        return 0;
    }
    if (rk_keys_resolve(client_key, secret, why, sizeof why) != 0)
        return -1;
    crypto_generichash(h, sizeof h, (const unsigned char *)secret, RK_KEY_Z85_LEN,
                       (const unsigned char *)"renkei-kpi-csv", 14);
    sodium_memzero(secret, sizeof secret);
    strcpy(out, "kpi-csv:");
    for (size_t i = 0; i < sizeof h; i++)
        snprintf(out + 8 + 2 * i, 3, "%02x", h[i]);
    return 0;
}
