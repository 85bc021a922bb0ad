/*
 * rk_render - how the tools print a stored or live event.
 *
 * JSON lines (the default, for scripts): one object per line,
 *   {"seq":12,"recv_time":"2026-02-17T02:02:06.123456Z","topic":"aid.request/30/300004",
 *    "event":{...the event as published...}}
 * Table (for an operator's terminal): one readable line per event,
 *   seq, receive time, municipality name, event type, ids and the gist.
 */
#ifndef RK_RENDER_H
#define RK_RENDER_H

#include <stdint.h>
#include <jansson.h>
#include <stdio.h>

#include "renkei.h" /* struct rk_state */

enum rk_render_format { RK_RENDER_JSON, RK_RENDER_TABLE };

/* Parses "json" or "table"; -1 otherwise. */
int rk_render_parse_format(const char *name);

/* Prints one event as a line on `out`. `topic` and `publisher` (the key
 * that published it) may be NULL or "" (left out). Events that do not
 * decode are printed with "event":null and a "raw_hex" field, never
 * dropped. Returns 0, or -1 on a write error. */
int rk_render_event(FILE *out, enum rk_render_format fmt, uint64_t seq, int64_t recv_ns,
                    const char *topic, const char *publisher, const void *event,
                    size_t event_len);

/* Prints one request's state as the broker said it (PROTOCOL.md 3.6: the
 * MessagePack map `map`), consistent with log sequence `seq`. JSON: the
 * map as an object, after "kind":"request" and "state_seq"; table: one
 * line, request, requester's name, state, resource, quantities. Returns 0,
 * or -1 on a write error. */
int rk_render_request(FILE *out, enum rk_render_format fmt, uint64_t seq, const void *map,
                      size_t map_len);

/* The line after the requests: JSON {"state":{"seq":..,"log_id":..,"requests":..,
 * "by_state":{"open":..,..}}}; table, a sentence. `states` are the
 * requests' state names, `n` of them. */
int rk_render_state_summary(FILE *out, enum rk_render_format fmt, uint64_t seq,
                            const char *log_id, const char *const *states, size_t n);

/* Prints every request of `st` (rk_render_request), then the summary
 * line. Returns 0, or -1 on a write error. */
int rk_render_state(FILE *out, enum rk_render_format fmt, const struct rk_state *st);

/* Terminal columns `s` (UTF-8) takes: Japanese characters count 2. For
 * padding table columns. */
int rk_render_display_width(const char *s);

/* Prints the column titles for the table format (nothing for JSON). */
void rk_render_header(FILE *out, enum rk_render_format fmt);

/* jansson's flags for every JSON line of the tools: compact, keys in
 * order, and reals with 15 significant digits, so that a latitude reads
 * 34.214059, not 34.214058999999999. */
#define RK_RENDER_JSON_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15))

/* A number for people: an integer as all its digits, a fraction in plain
 * decimals (at most 6 places, trailing zeros dropped), never e-notation:
 * 1234567, 0.00001, 12.5. Into buf (32 bytes is enough); returns buf. */
const char *rk_render_number(double v, char *buf, size_t len);

/* A receive time for a table: local time (TZ), "2026-02-17 15:00:00".
 * Into buf (at least 20 bytes). */
void rk_render_local_time(int64_t ns, char *buf, size_t len);

#endif
