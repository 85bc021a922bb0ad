/*
 * rk_kpi_csv - KPI updates from CSV (or JSON lines) in the layout of the shared KPI
 * samples (kpi_id, city_code, policy_area_code, kpi_name, unit,
 * aggregation, baseline_value, baseline_fy, target_value, target_fy,
 * current_value, current_fy, ... ; columns found by header name, extra
 * columns ignored), turned into kpi.update events (proto/PROTOCOL.md §4).
 *
 * Parsing is done by libcsv (RFC 4180 quoting). Each data row becomes one
 * MessagePack event or one error naming the column and the reason. Its
 * event_id is KPI_ID:FYyyyy:HASH, the hash (16 hex digits) of the row's
 * known columns: the same figures give the same id, whatever their line.
 *
 * rk_kpi_decode turns a town's file into the UTF-8 these readers take:
 * Excel writes "CSV UTF-8" with a byte order mark, and plain "CSV" on
 * Japanese Windows in CP932 (Shift_JIS with Microsoft's additions).
 */
#ifndef RK_KPI_CSV_H
#define RK_KPI_CSV_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Called once per data row. `line` is the row's line number (the header
 * is line 1; rows are assumed not to contain line breaks). On success
 * `event`/`len` hold the MessagePack event (valid during the call) and
 * `error` is NULL; otherwise `event` is NULL and `error` says what is wrong. */
typedef void (*rk_kpi_row_fn)(void *arg, long line, const void *event, size_t len,
                              const char *error);

/* Reads all of `in`. `sent_at_ns` is the time stamped on every event.
 * Returns 0, or -1 with a reason in `why` when the file as a whole cannot
 * be read (I/O error, malformed CSV, a required column missing). */
int rk_kpi_csv_read(FILE *in, int64_t sent_at_ns, rk_kpi_row_fn fn, void *arg,
                    char *why, size_t why_len);

/* The same from JSON lines (parsed by jansson): one object per line whose
 * members are named as the CSV columns, values strings or numbers (null or
 * absent = an empty cell); other members are ignored. Blank lines are
 * skipped; a line that is not a JSON object is reported to `fn` with its
 * line number, and reading goes on. Returns 0, or -1 on a read error. */
int rk_kpi_jsonl_read(FILE *in, int64_t sent_at_ns, rk_kpi_row_fn fn, void *arg,
                      char *why, size_t why_len);


enum rk_kpi_encoding {
    RK_KPI_AUTO,   /* UTF-8 if the bytes are, else CP932 if they are */
    RK_KPI_UTF8,
    RK_KPI_CP932,
};

/* "auto", "utf-8" (or utf8), "cp932" (or shift_jis, sjis), any case.
 * Returns 0, or -1 for another name. */
int rk_kpi_encoding_parse(const char *name, enum rk_kpi_encoding *out);

/* The `n` bytes of a file as UTF-8 without a byte order mark, in *out
 * (NUL-terminated, *out_len bytes; the caller frees it), converted from
 * CP932 with iconv when `enc` says so or, with RK_KPI_AUTO, when the bytes
 * are not UTF-8 and are CP932. *used is "utf-8" or "cp932". Returns 0, or
 * -1 with the line and byte that fit neither in `why`. */
int rk_kpi_decode(const char *in, size_t n, enum rk_kpi_encoding enc, char **out,
                  size_t *out_len, const char **used, char *why, size_t why_len);

/* Reads the file at `path` ("-": standard input; at most 64 MiB) and
 * decodes it as rk_kpi_decode does. Same returns; `why` does not repeat
 * the path. */
int rk_kpi_load(const char *path, enum rk_kpi_encoding enc, char **out, size_t *out_len,
                const char **used, char *why, size_t why_len);

/* The producer id an import publishes its rows under: "kpi-csv:" and a
 * hash of the client's secret key (its Z85 text or key file; NULL:
 * "kpi-csv:plain"), so it is the same for every import by one key and
 * cannot be guessed by another tenant, who could otherwise take a row's
 * number first. Returns 0, or -1 when the key cannot be read. */
#define RK_KPI_PRODUCER_MAX 64
int rk_kpi_producer(const char *client_key, char out[RK_KPI_PRODUCER_MAX + 1]);

/* The producer of one row: `base` (rk_kpi_producer), ':' and 16 hex digits
 * of a hash of its event_id. Each row is a producer of one event, number
 * 1 (PROTOCOL.md 3.2: a new producer starts anywhere; numbers are in
 * order per producer), so the broker answers a row sent again with its
 * first acknowledgement and stores nothing new, whatever else the file
 * holds and in whatever order the rows come. */
void rk_kpi_row_producer(const char *base, const char *event_id,
                         char out[RK_KPI_PRODUCER_MAX + 1]);

#endif
