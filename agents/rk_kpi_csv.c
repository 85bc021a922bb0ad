#include "rk_kpi_csv.h"
#include "rk_time.h"

#include <csv.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

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
    /* Stable for a given file row, so a re-run is recognisable. */
    snprintf(event_id, sizeof event_id, "%.40s:FY%ld:L%ld", get(r, C_KPI_ID), fy, r->record + 1);
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
