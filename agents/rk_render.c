#include "rk_render.h"
#include "rk_json.h"
#include "rk_muni.h"
#include "rk_time.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

int rk_render_parse_format(const char *name)
{
    if (strcmp(name, "json") == 0)
        return RK_RENDER_JSON;
    if (strcmp(name, "table") == 0)
        return RK_RENDER_TABLE;
    return -1;
}

const char *rk_render_number(double v, char *buf, size_t len)
{
    if (v == (double)(long long)v && v > -1e15 && v < 1e15) {
        snprintf(buf, len, "%lld", (long long)v);
        return buf;
    }
    snprintf(buf, len, "%.6f", v);
    char *dot = strchr(buf, '.');
    if (dot) {
        char *end = buf + strlen(buf);
        while (end > dot + 1 && end[-1] == '0')
            *--end = '\0';
        if (end == dot + 1)
            *dot = '\0';
    }
    return buf;
}

void rk_render_local_time(int64_t ns, char *buf, size_t len)
{
    time_t t = (time_t)(ns / 1000000000LL);
    struct tm tm;
    if (!localtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm))
        snprintf(buf, len, "?");
}

void rk_render_header(FILE *out, enum rk_render_format fmt)
{
    char zone[16] = "local";
    time_t now = time(NULL);
    struct tm tm;
    if (localtime_r(&now, &tm))
        strftime(zone, sizeof zone, "%Z", &tm);
    if (fmt == RK_RENDER_TABLE) {
        char head[32];
        snprintf(head, sizeof head, "RECEIVED (%s)", zone);
        fprintf(out, "%6s  %-19s  %-20s  %-12s  %s\n", "SEQ", head, "MUNICIPALITY", "EVENT",
                "DETAIL");
    }
}

static const char *str_field(json_t *ev, const char *key)
{
    const char *s = json_string_value(json_object_get(ev, key));
    return s ? s : "";
}

/* Appends " word" (or "word" at the start) when word is not empty. */
static void add(char *buf, size_t len, const char *word)
{
    size_t used = strlen(buf);
    if (*word && used < len)
        snprintf(buf + used, len - used, "%s%s", used ? " " : "", word);
}

/* The gist of an event in a few words, e.g. "REQ-304280-001 water.drinking 20000 L high". */
static void gist(json_t *ev, char *buf, size_t len)
{
    const char *type = str_field(ev, "type");
    json_t *q = json_object_get(ev, "quantity");
    char qty[32] = "";
    buf[0] = '\0';
    if (strcmp(type, "kpi.update") == 0) {
        json_t *cur = json_object_get(ev, "current");
        json_t *tgt = json_object_get(ev, "target");
        char c[32], t[32];
        snprintf(buf, len, "%s FY%lld %s: %s (target %s) %s", str_field(ev, "kpi_id"),
                 (long long)json_integer_value(json_object_get(ev, "fiscal_year")),
                 str_field(ev, "name"),
                 rk_render_number(json_number_value(json_object_get(cur, "value")), c, sizeof c),
                 rk_render_number(json_number_value(json_object_get(tgt, "value")), t, sizeof t),
                 str_field(ev, "unit"));
        return;
    }
    if (json_is_integer(q))
        snprintf(qty, sizeof qty, "%lld", (long long)json_integer_value(q));
    add(buf, len, str_field(ev, "request_id"));
    add(buf, len, str_field(ev, "offer_id"));
    add(buf, len, str_field(ev, "dispatch_id"));
    add(buf, len, str_field(ev, "resource"));
    add(buf, len, qty);
    add(buf, len, str_field(ev, "unit"));
    add(buf, len, str_field(ev, "urgency"));
    add(buf, len, str_field(ev, "transport"));
    add(buf, len, str_field(ev, "reason"));
}

/* Terminal columns a code point takes: 2 for East Asian wide characters
 * (the ranges that matter for Japanese names), 1 otherwise. */
static int columns(unsigned long cp)
{
    return (cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf) ||
                   (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) ||
                   (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
                   (cp >= 0xffe0 && cp <= 0xffe6)
               ? 2
               : 1;
}

int rk_render_display_width(const char *s)
{
    int width = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        unsigned long cp = *p;
        int extra = *p >= 0xf0 ? 3 : *p >= 0xe0 ? 2 : *p >= 0xc0 ? 1 : 0;
        if (extra)
            cp &= 0x3fu >> extra;
        p++;
        for (; extra > 0 && (*p & 0xc0) == 0x80; extra--, p++)
            cp = cp << 6 | (*p & 0x3f);
        width += columns(cp);
    }
    return width;
}

#define MUNI_COLUMNS 20

static int render_table(FILE *out, uint64_t seq, const char *when, json_t *ev)
{
    char detail[512], who[128];
    const char *code = str_field(ev, "municipality");
    const char *name = rk_muni_name(code);
    const char *type = str_field(ev, "type");
    gist(ev, detail, sizeof detail);
    snprintf(who, sizeof who, "%s(%s)", name ? name : "?", code);
    int pad = MUNI_COLUMNS - rk_render_display_width(who);
    return fprintf(out, "%6llu  %.19s  %s%*s  %-12s  %s\n", (unsigned long long)seq, when, who,
                   pad > 0 ? pad : 0, "", type, detail) < 0 ? -1 : 0;
}

int rk_render_event(FILE *out, enum rk_render_format fmt, uint64_t seq, int64_t recv_ns,
                    const char *topic, const char *publisher, const void *event,
                    size_t event_len)
{
    char when[RK_TIME_TEXT_MAX];
    json_t *ev = rk_msgpack_to_json(event, event_len);
    int rc;

    rk_time_format(recv_ns, when);
    if (fmt == RK_RENDER_TABLE && ev) {
        char local[32];
        rk_render_local_time(recv_ns, local, sizeof local);
        rc = render_table(out, seq, local, ev);
        json_decref(ev);
        return rc;
    }
    json_t *line = json_object();
    json_object_set_new(line, "seq", json_integer((json_int_t)seq));
    json_object_set_new(line, "recv_time", json_string(when));
    if (topic)
        json_object_set_new(line, "topic", json_string(topic));
    if (publisher && publisher[0])
        json_object_set_new(line, "publisher", json_string(publisher));
    if (ev) {
        json_object_set_new(line, "event", ev);
    } else {
        char *hex = malloc(2 * event_len + 1);
        if (!hex)
            abort();
        for (size_t i = 0; i < event_len; i++)
            sprintf(hex + 2 * i, "%02x", ((const unsigned char *)event)[i]);
        hex[2 * event_len] = '\0';
        json_object_set_new(line, "event", json_null());
        json_object_set_new(line, "raw_hex", json_string(hex));
        free(hex);
    }
    rc = json_dumpf(line, out, RK_RENDER_JSON_FLAGS);
    if (rc == 0 && fputc('\n', out) == EOF)
        rc = -1;
    json_decref(line);
    return rc;
}

static long long int_field(json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

int rk_render_request(FILE *out, enum rk_render_format fmt, uint64_t seq, const void *map,
                      size_t map_len)
{
    json_t *m = rk_msgpack_to_json(map, map_len);
    int rc;
    if (!json_is_object(m)) {
        json_decref(m);
        return fprintf(out, fmt == RK_RENDER_JSON ? "{\"kind\":\"request\",\"state_seq\":%llu,"
                       "\"request\":null}\n" : "request  (not a map)  at seq %llu\n",
                       (unsigned long long)seq) < 0 ? -1 : 0;
    }
    if (fmt == RK_RENDER_TABLE) {
        const char *code = str_field(m, "requester"), *name = rk_muni_name(code);
        char who[128];
        snprintf(who, sizeof who, "%s(%s)", name ? name : "?", code);
        for (int w = rk_render_display_width(who); w < 22 && strlen(who) + 1 < sizeof who; w++)
            strcat(who, " ");
        rc = fprintf(out, "%-18s %s %-11s %s %lld %s: accepted %lld, dispatched %lld, received "
                     "%lld, in transit %lld; offers: %zu\n", str_field(m, "request_id"), who,
                     str_field(m, "state"), str_field(m, "resource"), int_field(m, "quantity"),
                     str_field(m, "unit"), int_field(m, "accepted"), int_field(m, "dispatched"),
                     int_field(m, "fulfilled"), int_field(m, "in_transit"),
                     json_array_size(json_object_get(m, "offers"))) < 0 ? -1 : 0;
        json_decref(m);
        return rc;
    }
    json_t *line = json_pack("{s:s, s:I}", "kind", "request", "state_seq", (json_int_t)seq);
    json_object_update(line, m);
    json_decref(m);
    rc = json_dumpf(line, out, RK_RENDER_JSON_FLAGS);
    json_decref(line);
    return rc == 0 && fputc('\n', out) != EOF ? 0 : -1;
}

int rk_render_state_summary(FILE *out, enum rk_render_format fmt, uint64_t seq,
                            const char *log_id, const char *const *states, size_t n)
{
    static const char *const names[] = {"open", "in_progress", "fulfilled", "cancelled"};
    size_t by[4] = {0};
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++)
            by[k] += strcmp(states[i], names[k]) == 0;
    if (fmt == RK_RENDER_TABLE)
        return fprintf(out, "%zu requests as of log seq %llu (log %s): %zu open, %zu in progress, "
                       "%zu fulfilled, %zu cancelled\n", n, (unsigned long long)seq,
                       log_id[0] ? log_id : "without identity", by[0], by[1], by[2], by[3]) < 0
                   ? -1 : 0;
    json_t *line = json_pack("{s:{s:I, s:s, s:I, s:{s:I, s:I, s:I, s:I}}}", "state", "seq",
                             (json_int_t)seq, "log_id", log_id, "requests", (json_int_t)n,
                             "by_state", names[0], (json_int_t)by[0], names[1], (json_int_t)by[1],
                             names[2], (json_int_t)by[2], names[3], (json_int_t)by[3]);
    int rc = json_dumpf(line, out, RK_RENDER_JSON_FLAGS);
    json_decref(line);
    return rc == 0 && fputc('\n', out) != EOF ? 0 : -1;
}

int rk_render_state(FILE *out, enum rk_render_format fmt, const struct rk_state *st)
{
    const char **states = calloc(st->count ? st->count : 1, sizeof *states);
    int rc = 0;
    if (!states)
        abort();
    if (fmt == RK_RENDER_TABLE && st->count)
        fprintf(out, "%-18s %-22s %-11s %s\n", "REQUEST", "REQUESTER", "STATE", "WHAT");
    for (size_t i = 0; i < st->count && rc == 0; i++) {
        states[i] = st->requests[i].state;
        rc = rk_render_request(out, fmt, st->seq, st->requests[i].map, st->requests[i].map_len);
    }
    if (rc == 0)
        rc = rk_render_state_summary(out, fmt, st->seq, st->log_id, states, st->count);
    free(states);
    return rc;
}
