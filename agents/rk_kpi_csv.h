/*
 * rk_kpi_csv - KPI updates from CSV (or JSON lines) in the layout of the shared KPI
 * samples (kpi_id, city_code, policy_area_code, kpi_name, unit,
 * aggregation, baseline_value, baseline_fy, target_value, target_fy,
 * current_value, current_fy, ... ; columns found by header name, extra
 * columns ignored), turned into kpi.update events (proto/PROTOCOL.md §4).
 *
 * Parsing is done by libcsv (RFC 4180 quoting). Each data row becomes one
 * MessagePack event or one error naming the column and the reason.
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

#endif
