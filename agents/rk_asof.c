#include "rk_asof.h"
#include "rk_render.h"
#include "rk_aid.h"
#include "rk_json.h"
#include "rk_muni.h"
#include "rk_reader.h"
#include "rk_time.h"
#include "rk_topics.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* What one as-of run counts, for its summary line. */
struct asof_run {
    const struct rk_asof_query *q;
    FILE *out;
    enum rk_render_format fmt;
    uint64_t seq;            /* the state is consistent with this sequence */
    uint64_t kpis, requests, refused;
    uint64_t by_state[RK_AID__NSTATES]; /* of the requests printed */
};

static int emit_json(struct asof_run *run, json_t *line)
{
    int rc = json_dumpf(line, run->out, RK_RENDER_JSON_FLAGS);
    if (rc == 0 && fputc('\n', run->out) == EOF)
        rc = -1;
    json_decref(line);
    return rc;
}

#define PLACE_COLUMNS 22

/* "name(code)" padded with spaces to PLACE_COLUMNS terminal columns. */
static const char *place(const char *code, char *buf, size_t len)
{
    const char *name = rk_muni_name(code);
    snprintf(buf, len, "%s(%s)", name ? name : "?", code);
    for (int w = rk_render_display_width(buf); w < PLACE_COLUMNS && strlen(buf) + 1 < len; w++)
        strcat(buf, " ");
    return buf;
}

/* Copies the KPI's figures out of the stored event. */
static int print_kpi(struct asof_run *run, const struct rk_record *rec)
{
    static const char *const keys[] = {"kpi_id", "municipality", "fiscal_year", "name", "unit",
                                       "aggregation", "baseline", "target", "current"};
    char when[RK_TIME_TEXT_MAX], who[128];
    json_t *ev = rk_msgpack_to_json(rec->event, rec->event_len);
    if (!ev)
        return 0; /* the broker validated it; nothing sensible to print */
    run->kpis++;
    rk_time_format(rec->recv_ns, when);
    if (run->fmt == RK_RENDER_TABLE) {
        json_t *cur = json_object_get(ev, "current"), *tgt = json_object_get(ev, "target");
        char c[32], t[32];
        int rc = fprintf(run->out, "kpi      %-18s FY%-5lld %s current %s %s (target %s)  %s\n",
                         json_string_value(json_object_get(ev, "kpi_id")),
                         (long long)json_integer_value(json_object_get(ev, "fiscal_year")),
                         place(json_string_value(json_object_get(ev, "municipality")), who, sizeof who),
                         rk_render_number(json_number_value(json_object_get(cur, "value")), c,
                                          sizeof c),
                         json_string_value(json_object_get(ev, "unit")),
                         rk_render_number(json_number_value(json_object_get(tgt, "value")), t,
                                          sizeof t),
                         json_string_value(json_object_get(ev, "name"))) < 0 ? -1 : 0;
        json_decref(ev);
        return rc;
    }
    json_t *line = json_object();
    json_object_set_new(line, "kind", json_string("kpi"));
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (json_object_get(ev, keys[i]))
            json_object_set(line, keys[i], json_object_get(ev, keys[i]));
    json_object_set_new(line, "seq", json_integer((json_int_t)rec->seq));
    json_object_set_new(line, "recv_time", json_string(when));
    json_decref(ev);
    return emit_json(run, line);
}

static int kpi_wanted(const struct rk_asof_query *q)
{
    return !q->request_id && !q->requester && !q->requester_prefecture &&
           (!q->family || strcmp(q->family, "kpi") == 0);
}

static int aid_wanted(const struct rk_asof_query *q)
{
    return !q->kpi_id && (!q->family || strcmp(q->family, "aid") == 0);
}

/* The KPI part: a snapshot as of at_ns, which also fixes run->seq. */
static int kpi_part(struct asof_run *run, struct rk_reader *r, int timeout_ms,
                    char *why, size_t why_len)
{
    const struct rk_asof_query *q = run->q;
    struct rk_topic_query tq = {.family = "kpi", .prefecture = q->prefecture,
                                .municipality = q->municipality};
    struct rk_wire_filter f = {.to_ns = q->at_ns};
    struct rk_record rec;
    /* every place option checked together, as the live and replay filters are */
    struct rk_topic_query all = {.family = q->family, .prefecture = q->prefecture,
                                 .municipality = q->municipality,
                                 .requester_prefecture = q->requester_prefecture,
                                 .requester = q->requester};
    if (rk_topics_for(&all, f.topics, RK_WIRE_TOPICS_MAX, why, why_len) < 0)
        return -1;
    int n = rk_topics_for(&tq, f.topics, RK_WIRE_TOPICS_MAX, why, why_len), rc;
    if (n < 0)
        return -1;
    f.ntopics = (unsigned)n;
    if (q->kpi_id)
        snprintf(f.kpi_id, sizeof f.kpi_id, "%s", q->kpi_id);
    rk_reader_filter(r, &f);
    rk_reader_snapshot(r, 0);
    while ((rc = rk_reader_next(r, timeout_ms, &rec)) == 0)
        if (kpi_wanted(q) && print_kpi(run, &rec) != 0)
            return -1;
    run->seq = rk_reader_snapshot_seq(r);
    return rc == RK_READER_EOF ? 0 : -1;
}

static int print_refusal(struct asof_run *run, const struct rk_record *rec,
                         const struct rk_aid_refusal *why)
{
    char event_id[RK_ID_MAX + 1] = "";
    json_t *ev = rk_msgpack_to_json(rec->event, rec->event_len);
    if (ev)
        snprintf(event_id, sizeof event_id, "%s", json_string_value(json_object_get(ev, "event_id")));
    json_decref(ev);
    run->refused++;
    if (run->fmt == RK_RENDER_TABLE)
        return fprintf(run->out, "refused  seq %llu %s: %s %s: %s\n", (unsigned long long)rec->seq,
                       event_id, rk_aid_err_name(why->code), why->field, why->message) < 0 ? -1 : 0;
    json_t *line = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s}", "kind", "refused", "seq",
                             (json_int_t)rec->seq, "event_id", event_id, "code",
                             rk_aid_err_name(why->code), "field", why->field, "message", why->message);
    return emit_json(run, line);
}

/* Folds every aid event up to run->seq through the lifecycle. */
static int fold_aid(struct asof_run *run, struct rk_reader *r, struct rk_aid *aid, int timeout_ms)
{
    struct rk_wire_filter f = {.ntopics = 1, .topics = {"aid."}};
    struct rk_record rec;
    struct rk_aid_event ev;
    struct rk_aid_refusal refusal;
    int rc;
    if (run->q->request_id)
        snprintf(f.request_id, sizeof f.request_id, "%s", run->q->request_id);
    rk_reader_seek(r, 1, run->seq);
    rk_reader_filter(r, &f);
    while ((rc = rk_reader_next(r, timeout_ms, &rec)) == 0) {
        if (rk_aid_event_parse(rec.event, rec.event_len, &ev, NULL, 0) != RK_V_OK)
            continue;
        if (rk_aid_apply(aid, &ev, &refusal) != RK_AID_OK && print_refusal(run, &rec, &refusal))
            return -1;
    }
    return rc == RK_READER_EOF ? 0 : -1;
}

/* A request's publisher is its requester: --municipality and --requester
 * mean the same town here. */
static int requester_wanted(const struct rk_asof_query *q, const char *requester)
{
    const char *muni = q->requester ? q->requester : q->municipality;
    const char *pp = q->requester_prefecture ? q->requester_prefecture : q->prefecture;
    if (muni && strcmp(muni, requester) != 0)
        return 0;
    return !pp || strncmp(pp, requester, 2) == 0;
}

static json_t *offers_json(const struct rk_aid *aid, size_t i)
{
    struct rk_aid_offer_view o;
    size_t cursor = 0;
    json_t *offers = json_object();
    while (rk_aid_offer_next(aid, i, &cursor, &o))
        json_object_set_new(offers, o.offer_id,
                            json_pack("{s:s, s:I, s:s, s:I, s:I, s:I}", "offerer", o.offerer,
                                      "quantity", (json_int_t)o.quantity, "state", o.state_name,
                                      "accepted", (json_int_t)o.accepted, "dispatched",
                                      (json_int_t)o.dispatched, "fulfilled", (json_int_t)o.fulfilled));
    return offers;
}

static int print_request(struct asof_run *run, const struct rk_aid *aid, size_t i)
{
    struct rk_aid_request_view v;
    char who[128];
    if (rk_aid_request_at(aid, i, &v) != 0 || !requester_wanted(run->q, v.requester))
        return 0;
    run->requests++;
    run->by_state[v.state]++;
    if (run->fmt == RK_RENDER_TABLE)
        return fprintf(run->out, "request  %-18s v%-6lld %s %-12s %s %lld %s: accepted %lld, "
                       "dispatched %lld, received %lld\n", v.request_id, (long long)v.version,
                       place(v.requester, who, sizeof who), v.state_name, v.resource,
                       (long long)v.quantity, v.unit, (long long)v.accepted,
                       (long long)v.dispatched, (long long)v.fulfilled) < 0 ? -1 : 0;
    json_t *line = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:o}",
        "kind", "request", "request_id", v.request_id, "requester", v.requester, "resource",
        v.resource, "unit", v.unit, "version", (json_int_t)v.version, "quantity",
        (json_int_t)v.quantity, "urgency", v.urgency, "data_class",
        v.restricted ? "restricted" : "open", "state", v.state_name, "accepted",
        (json_int_t)v.accepted, "dispatched", (json_int_t)v.dispatched, "fulfilled",
        (json_int_t)v.fulfilled, "in_transit", (json_int_t)v.in_transit, "offers",
        offers_json(aid, i));
    return emit_json(run, line);
}

static int print_summary(struct asof_run *run)
{
    char when[RK_TIME_TEXT_MAX], local[32];
    rk_time_format(run->q->at_ns, when);
    rk_render_local_time(run->q->at_ns, local, sizeof local);
    if (run->fmt == RK_RENDER_TABLE)
        return fprintf(run->out, "as of %s local time (log seq %llu): %llu KPIs, %llu requests, "
                       "%llu stored events refused by the lifecycle\n", local,
                       (unsigned long long)run->seq, (unsigned long long)run->kpis,
                       (unsigned long long)run->requests, (unsigned long long)run->refused) < 0 ? -1 : 0;
    json_t *by_state = json_object();
    for (int s = 0; s < RK_AID__NSTATES; s++)
        json_object_set_new(by_state, rk_aid_state_name((enum rk_aid_state)s),
                            json_integer((json_int_t)run->by_state[s]));
    json_t *line = json_pack("{s:{s:s, s:I, s:I, s:I, s:o, s:I}}", "as_of", "time", when, "seq",
                             (json_int_t)run->seq, "kpis", (json_int_t)run->kpis, "requests",
                             (json_int_t)run->requests, "by_state", by_state, "refused",
                             (json_int_t)run->refused);
    return emit_json(run, line);
}

int rk_asof_print(const struct rk_asof_query *q, FILE *out, enum rk_render_format fmt,
                  char *why, size_t why_len)
{
    struct asof_run run = {.q = q, .out = out, .fmt = fmt};
    struct rk_reader *r = NULL;
    struct rk_aid *aid = rk_aid_new();
    int rc = -1;

    why[0] = '\0';
    if (rk_reader_open(q->endpoint, q->client, &r) != 0) {
        snprintf(why, why_len, "--replay %s: %s", q->endpoint, strerror(errno));
        goto out;
    }
    if (kpi_part(&run, r, q->timeout_ms, why, why_len) != 0)
        goto fail;
    if (aid_wanted(q) && run.seq && fold_aid(&run, r, aid, q->timeout_ms) != 0)
        goto fail;
    for (size_t i = 0; aid_wanted(q) && i < rk_aid_request_count(aid); i++)
        if (print_request(&run, aid, i) != 0)
            goto fail;
    rc = print_summary(&run);
    goto out;
fail:
    if (!why[0])
        snprintf(why, why_len, "%s", errno == ETIMEDOUT ? "the broker did not answer"
                                     : errno == EPROTO ? rk_reader_error(r) : strerror(errno));
out:
    rk_reader_destroy(&r);
    rk_aid_destroy(&aid);
    return rc;
}
