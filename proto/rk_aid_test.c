/* The aid lifecycle: the shared scenario against its expected end state,
 * batches undone at every point of it, one case per rule, hostile bytes to
 * the parser, and a run large enough to expose quadratic behaviour. */
#include "rk_aid.h"
#include "rk_json.h"
#include "rk_test.h"

#include <stdint.h>
#include <string.h>

#define SCENARIO_LINES 204

/* ---- helpers ------------------------------------------------------------ */

/* JSON text -> MessagePack -> rk_aid_event_parse. */
static enum rk_verr parse_json(const char *text, struct rk_aid_event *ev, char *why, size_t n)
{
    json_t *j = json_loads(text, JSON_ALLOW_NUL, NULL);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    enum rk_verr rc = RK_V__COUNT;
    if (j && rk_json_to_msgpack(j, &sb) == 0)
        rc = rk_aid_event_parse(sb.data, sb.size, ev, why, n);
    msgpack_sbuffer_destroy(&sb);
    json_decref(j);
    return rc;
}

/* Every request and offer as the views show them, one line each, so two
 * states compare as strings. Caller frees. */
static char *dump(const struct rk_aid *a)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        abort();
    for (int s = 0; s < RK_AID__NSTATES; s++)
        fprintf(f, "%s=%zu ", rk_aid_state_name(s), rk_aid_count(a, s));
    fputc('\n', f);
    struct rk_aid_request_view r;
    for (size_t i = 0; rk_aid_request_at(a, i, &r) == 0; i++) {
        fprintf(f, "%s %s %s %s %s %d v%lld q%lld a%lld d%lld f%lld t%lld %s n%zu\n",
                r.request_id, r.requester, r.resource, r.unit, r.urgency, r.restricted,
                (long long)r.version, (long long)r.quantity, (long long)r.accepted,
                (long long)r.dispatched, (long long)r.fulfilled, (long long)r.in_transit,
                r.state_name, r.offers);
        struct rk_aid_offer_view o;
        for (size_t c = 0; rk_aid_offer_next(a, i, &c, &o);)
            fprintf(f, "  %s %s q%lld a%lld d%lld f%lld %s\n", o.offer_id, o.offerer,
                    (long long)o.quantity, (long long)o.accepted, (long long)o.dispatched,
                    (long long)o.fulfilled, o.state_name);
    }
    fclose(f);
    return buf;
}

static int load_scenario(struct rk_aid_event *evs, int max)
{
    char path[512];
    static char line[20000];
    FILE *f = fopen(rk_test_shared("disaster_scenario.jsonl", path, sizeof path), "r");
    RK_CHECK(f != NULL);
    if (!f)
        return 0;
    int n = 0;
    while (n < max && fgets(line, sizeof line, f)) {
        char why[300];
        enum rk_verr rc = parse_json(line, &evs[n], why, sizeof why);
        if (rc != RK_V_OK)
            fprintf(stderr, "scenario line %d: %s\n", n + 1, why);
        RK_CHECK(rc == RK_V_OK);
        n++;
    }
    fclose(f);
    return n;
}

static json_t *load_expected(void)
{
    char path[512];
    json_error_t jerr;
    json_t *j = json_load_file(rk_test_shared("disaster_scenario_expected.json", path, sizeof path),
                               0, &jerr);
    if (!j)
        fprintf(stderr, "expected JSON: %s\n", jerr.text);
    RK_CHECK(j != NULL);
    return j;
}

static int64_t jint(const json_t *obj, const char *key)
{
    return json_integer_value(json_object_get(obj, key));
}

static const char *jstr(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "(missing)";
}

/* ---- the shared scenario ------------------------------------------------ */

static struct rk_aid_event scenario[SCENARIO_LINES + 1];
static int scenario_n;

static void check_offers(const struct rk_aid *a, size_t i, const json_t *want)
{
    const char *oid;
    json_t *wo;
    size_t c = 0;
    struct rk_aid_offer_view o;
    json_object_foreach((json_t *)want, oid, wo) {
        RK_CHECK(rk_aid_offer_next(a, i, &c, &o) == 1);
        RK_CHECK_STR(o.offer_id, oid); /* arrival order */
        RK_CHECK_STR(o.offerer, jstr(wo, "offerer"));
        RK_CHECK_STR(o.state_name, jstr(wo, "state"));
        RK_CHECK(o.quantity == jint(wo, "quantity"));
        RK_CHECK(o.accepted == jint(wo, "accepted"));
        RK_CHECK(o.dispatched == jint(wo, "dispatched"));
        RK_CHECK(o.fulfilled == jint(wo, "fulfilled"));
    }
    RK_CHECK(rk_aid_offer_next(a, i, &c, &o) == 0);
}

/* Every request of the expected JSON, in its (first-seen) order. */
static void check_final_states(const struct rk_aid *a, const json_t *expected)
{
    const json_t *states = json_object_get(expected, "final_states");
    const json_t *summary = json_object_get(expected, "summary");
    RK_CHECK(rk_aid_request_count(a) == json_object_size(states));
    RK_CHECK(rk_aid_request_count(a) == (size_t)jint(summary, "requests"));
    const json_t *by_state = json_object_get(summary, "by_state");
    for (int s = 0; s < RK_AID__NSTATES; s++)
        RK_CHECK(rk_aid_count(a, s) == (size_t)jint(by_state, rk_aid_state_name(s)));
    const char *rid;
    json_t *w;
    size_t i = 0;
    json_object_foreach((json_t *)states, rid, w) {
        struct rk_aid_request_view r;
        RK_CHECK(rk_aid_request_at(a, i, &r) == 0);
        RK_CHECK_STR(r.request_id, rid);
        RK_CHECK(rk_aid_request_find(a, rid, NULL) == (long)i);
        RK_CHECK_STR(r.requester, jstr(w, "requester"));
        RK_CHECK_STR(r.resource, jstr(w, "resource"));
        RK_CHECK_STR(r.unit, jstr(w, "unit"));
        RK_CHECK_STR(r.urgency, jstr(w, "urgency"));
        RK_CHECK_STR(r.restricted ? "restricted" : "open", jstr(w, "data_class"));
        RK_CHECK_STR(r.state_name, jstr(w, "state"));
        RK_CHECK(r.version == jint(w, "version"));
        RK_CHECK(r.quantity == jint(w, "quantity"));
        RK_CHECK(r.accepted == jint(w, "accepted"));
        RK_CHECK(r.dispatched == jint(w, "dispatched"));
        RK_CHECK(r.fulfilled == jint(w, "fulfilled"));
        RK_CHECK(r.in_transit == jint(w, "in_transit"));
        RK_CHECK(r.offers == json_object_size(json_object_get(w, "offers")));
        check_offers(a, i, json_object_get(w, "offers"));
        i++;
    }
}

static void test_scenario(void)
{
    scenario_n = load_scenario(scenario, SCENARIO_LINES + 1);
    RK_CHECK(scenario_n == SCENARIO_LINES);
    json_t *expected = load_expected();
    if (!expected)
        return;
    const json_t *refused = json_object_get(expected, "rejected");
    struct rk_aid *a = rk_aid_new();
    size_t nref = 0;
    for (int i = 0; i < scenario_n; i++) {
        struct rk_aid_refusal why;
        char *before = dump(a);
        enum rk_aid_err rc = rk_aid_apply(a, &scenario[i], &why);
        if (rc == RK_AID_OK)
            goto next;
        const json_t *w = json_array_get(refused, nref++);
        if (!w || jint(w, "line") != i + 1) {
            fprintf(stderr, "line %d refused unexpectedly: %s %s: %s\n", i + 1,
                    rk_aid_err_name(rc), why.field, why.message);
            RK_CHECK(0);
            goto next;
        }
        RK_CHECK(why.code == rc);
        RK_CHECK_STR(rk_aid_err_name(rc), jstr(w, "code"));
        RK_CHECK_STR(why.field, jstr(w, "field"));
        RK_CHECK_STR(why.message, jstr(w, "message"));
        char *after = dump(a);
        RK_CHECK_STR(after, before); /* a refusal changes nothing */
        free(after);
    next:
        free(before);
    }
    RK_CHECK(nref == json_array_size(refused));
    RK_CHECK(nref == 6);
    RK_CHECK((size_t)scenario_n - nref ==
             (size_t)jint(json_object_get(expected, "summary"), "accepted"));
    check_final_states(a, expected);
    rk_aid_destroy(&a);
    RK_CHECK(a == NULL);
    rk_aid_destroy(&a); /* twice is harmless */
    json_decref(expected);
}

static struct rk_aid *fold(int from, int to, struct rk_aid *a)
{
    if (!a)
        a = rk_aid_new();
    for (int i = from; i < to; i++)
        rk_aid_apply(a, &scenario[i], NULL);
    return a;
}

/* A broker restarted after any line, or whose commit failed after any
 * line, must end where an uninterrupted run ends. */
static void test_batches(void)
{
    if (scenario_n != SCENARIO_LINES)
        return;
    struct rk_aid *whole = fold(0, scenario_n, NULL);
    char *final = dump(whole);
    rk_aid_destroy(&whole);
    int bad = 0;
    for (int k = 0; k <= scenario_n; k++) {
        for (int batch = 1; batch <= 64 && k + batch <= scenario_n; batch *= 4) {
            struct rk_aid *a = fold(0, k, NULL);
            char *at_k = dump(a);
            rk_aid_begin(a);
            fold(k, k + batch, a);
            rk_aid_rollback(a);
            char *undone = dump(a);
            bad += strcmp(undone, at_k) != 0;
            rk_aid_begin(a); /* the same batch again, now committed */
            fold(k, k + batch, a);
            rk_aid_commit(a);
            fold(k + batch, scenario_n, a);
            char *end = dump(a);
            bad += strcmp(end, final) != 0;
            free(at_k);
            free(undone);
            free(end);
            rk_aid_destroy(&a);
        }
    }
    RK_CHECK(bad == 0);
    free(final);
}

/* ---- one case per rule -------------------------------------------------- */

/* A tiny script: steps separated by ';', each "<verb> <who> <args>", with
 * A the requester (304280) and B, C offerers (271004, 262021):
 *   req WHO RID VERSION RESOURCE QTY [restricted|open]
 *   off WHO RID OID RESOURCE QTY     acc WHO RID OID QTY
 *   dsp WHO RID OID DID QTY          ful WHO RID OID DID|- QTY
 *   can WHO RID                      wdr WHO RID OID */
/* The test's ids fit; a runtime size keeps -Wformat-truncation quiet. */
static void copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src);
}

static struct rk_aid_event step(const char *text)
{
    struct rk_aid_event e;
    char verb[8] = "", who[8] = "", rid[70] = "", x[70] = "", y[70] = "", z[70] = "";
    long long n1 = 0, n2 = 0;
    memset(&e, 0, sizeof e);
    sscanf(text, "%7s %7s %69s %69s", verb, who, rid, x);
    const char *code = who[0] == 'A' ? "304280" : who[0] == 'B' ? "271004" : "262021";
    copy(e.municipality, sizeof e.municipality, code);
    copy(e.request_id, sizeof e.request_id, rid);
    if (!strcmp(verb, "req")) {
        e.type = RK_EV_AID_REQUEST;
        sscanf(text, "%*s %*s %*s %lld %69s %lld %69s", &n1, y, &n2, z);
        e.version = n1;
        e.quantity = n2;
        e.data_class = !strcmp(z, "restricted") ? RK_AID_CLASS_RESTRICTED
                       : !strcmp(z, "open")     ? RK_AID_CLASS_OPEN
                                                : RK_AID_CLASS_UNSET;
        snprintf(e.urgency, sizeof e.urgency, "high");
    } else if (!strcmp(verb, "off")) {
        e.type = RK_EV_AID_OFFER;
        sscanf(text, "%*s %*s %*s %*s %69s %lld", y, &n1);
        e.quantity = n1;
    } else if (!strcmp(verb, "acc") || !strcmp(verb, "can") || !strcmp(verb, "wdr")) {
        e.type = verb[0] == 'a' ? RK_EV_AID_ACCEPT : verb[0] == 'c' ? RK_EV_AID_CANCEL
                                                                    : RK_EV_AID_WITHDRAW;
        sscanf(text, "%*s %*s %*s %*s %lld", &n1);
        e.quantity = n1;
    } else {
        e.type = !strcmp(verb, "dsp") ? RK_EV_AID_DISPATCH : RK_EV_AID_FULFIL;
        sscanf(text, "%*s %*s %*s %*s %69s %lld", z, &n1);
        copy(e.dispatch_id, sizeof e.dispatch_id, strcmp(z, "-") ? z : "");
        e.quantity = n1;
    }
    if (e.type != RK_EV_AID_REQUEST && e.type != RK_EV_AID_CANCEL)
        copy(e.offer_id, sizeof e.offer_id, x);
    if (e.type == RK_EV_AID_REQUEST || e.type == RK_EV_AID_OFFER) {
        const char *unit = "";
        for (size_t i = 0; rk_event_resource_at(i, NULL); i++)
            if (!strcmp(rk_event_resource_at(i, &unit), y))
                break;
        copy(e.resource, sizeof e.resource, y);
        copy(e.unit, sizeof e.unit, unit);
    }
    return e;
}

/* Runs the steps of `script`; each must be allowed. */
static void run(struct rk_aid *a, const char *script)
{
    char buf[2048], *save = NULL;
    snprintf(buf, sizeof buf, "%s", script);
    for (char *s = strtok_r(buf, ";", &save); s; s = strtok_r(NULL, ";", &save)) {
        struct rk_aid_event e = step(s);
        struct rk_aid_refusal why;
        enum rk_aid_err rc = rk_aid_apply(a, &e, &why);
        if (rc != RK_AID_OK)
            fprintf(stderr, "setup step \"%s\": %s %s\n", s, rk_aid_err_name(rc), why.message);
        RK_CHECK(rc == RK_AID_OK);
    }
}

#define REQ "req A R1 1 water.drinking 100"
#define OFF_B "off B R1 O1 water.drinking 60"
#define OFF_C "off C R1 O2 water.drinking 60"

struct rule {
    const char *setup, *event;
    enum rk_aid_err want;
    const char *field, *in_message;
};

static const struct rule rules[] = {
    /* request */
    {REQ, REQ, RK_AID_DUPLICATE_REQUEST, "request_id", "R1 already exists (an update needs version 2)"},
    {REQ, "req B R1 1 water.drinking 100", RK_AID_NOT_OWNER, "municipality", "belongs to 304280"},
    {"", "req A R1 2 water.drinking 100", RK_AID_VERSION, "version", "must have version 1, got 2"},
    {REQ, "req A R1 3 water.drinking 100", RK_AID_VERSION, "version", "expected 2, got 3"},
    {REQ ";can A R1", "req A R1 2 water.drinking 100", RK_AID_STATE, "request_id",
     "request is cancelled; it can no longer be updated"},
    {REQ ";" OFF_B ";acc A R1 O1 60;dsp B R1 O1 D1 60;ful A R1 O1 D1 60;req A R1 2 water.drinking 60",
     "req A R1 3 water.drinking 70", RK_AID_STATE, "request_id", "request is fulfilled"},
    {REQ, "req A R1 2 fuel.diesel 100", RK_AID_RESOURCE_MISMATCH, "resource",
     "cannot change the resource (water.drinking)"},
    {REQ ";" OFF_B ";acc A R1 O1 50", "req A R1 2 water.drinking 49", RK_AID_QUANTITY, "quantity",
     "cannot go below the 50 already accepted"},
    /* offer */
    {REQ, "off B R9 O1 water.drinking 5", RK_AID_UNKNOWN_REQUEST, "request_id", "no request R9"},
    {REQ ";can A R1", OFF_B, RK_AID_STATE, "request_id", "request is cancelled; offers are closed"},
    {REQ, "off A R1 O1 water.drinking 5", RK_AID_SELF_OFFER, "municipality", "own request"},
    {REQ ";req C R2 1 water.drinking 10;" OFF_B, "off B R2 O1 water.drinking 5",
     RK_AID_DUPLICATE_ID, "offer_id", "O1 already exists"},
    {REQ, "off B R1 O1 fuel.diesel 5", RK_AID_RESOURCE_MISMATCH, "resource",
     "request R1 is for water.drinking"},
    /* accept */
    {REQ ";" OFF_B, "acc B R1 O1 10", RK_AID_NOT_OWNER, "municipality", "only the requester 304280 may accept"},
    {REQ ";" OFF_B, "acc A R1 O7 10", RK_AID_UNKNOWN_OFFER, "offer_id", "no offer O7"},
    {REQ ";req C R2 1 water.drinking 10;off B R2 O2 water.drinking 5", "acc A R1 O2 5",
     RK_AID_UNKNOWN_OFFER, "offer_id", "offer O2 belongs to request R2"},
    {REQ ";" OFF_B ";can A R1", "acc A R1 O1 10", RK_AID_STATE, "request_id", "request is cancelled"},
    {REQ ";" OFF_B ";acc A R1 O1 10", "acc A R1 O1 10", RK_AID_STATE, "offer_id",
     "offer is accepted, not offered"},
    {REQ ";" OFF_B ";wdr B R1 O1", "acc A R1 O1 10", RK_AID_STATE, "offer_id", "offer is withdrawn"},
    {REQ ";" OFF_B, "acc A R1 O1 61", RK_AID_QUANTITY, "quantity", "accepts 61 but the offer is 60"},
    {REQ ";" OFF_B ";" OFF_C ";acc A R1 O1 60", "acc A R1 O2 41", RK_AID_QUANTITY, "quantity",
     "accepts 41 but only 40 of the request is not yet accepted"},
    /* withdraw */
    {REQ ";" OFF_B, "wdr C R1 O1", RK_AID_NOT_OWNER, "municipality", "only the offerer 271004 may withdraw"},
    {REQ ";" OFF_B, "wdr B R1 O9", RK_AID_UNKNOWN_OFFER, "offer_id", "no offer O9"},
    {REQ ";" OFF_B ";acc A R1 O1 10;dsp B R1 O1 D1 5", "wdr B R1 O1", RK_AID_STATE, "offer_id",
     "offer is dispatched; it can no longer be withdrawn"},
    {REQ ";" OFF_B ";wdr B R1 O1", "wdr B R1 O1", RK_AID_STATE, "offer_id", "offer is withdrawn"},
    {REQ ";" OFF_B ";can A R1", "wdr B R1 O1", RK_AID_STATE, "offer_id", "offer is closed"},
    /* dispatch */
    {REQ ";" OFF_B ";acc A R1 O1 10", "dsp C R1 O1 D1 5", RK_AID_NOT_OWNER, "municipality",
     "only the offerer 271004 may dispatch"},
    {REQ ";" OFF_B ";acc A R1 O1 10;can A R1", "dsp B R1 O1 D1 5", RK_AID_STATE, "request_id",
     "request is cancelled"},
    {REQ ";" OFF_B, "dsp B R1 O1 D1 5", RK_AID_STATE, "offer_id",
     "offer is offered; only an accepted offer can be dispatched"},
    {REQ ";" OFF_B ";" OFF_C ";acc A R1 O1 10;acc A R1 O2 10;dsp B R1 O1 D1 5",
     "dsp C R1 O2 D1 5", RK_AID_DUPLICATE_ID, "dispatch_id", "D1 already exists"},
    {REQ ";" OFF_B ";acc A R1 O1 50;dsp B R1 O1 D1 30", "dsp B R1 O1 D2 21", RK_AID_QUANTITY,
     "quantity", "would dispatch 51 in all, but 50 was accepted"},
    /* fulfil */
    {REQ ";" OFF_B ";acc A R1 O1 50;dsp B R1 O1 D1 30", "ful B R1 O1 D1 5", RK_AID_NOT_OWNER,
     "municipality", "only the requester 304280 confirms receipt"},
    {REQ ";" OFF_B ";acc A R1 O1 50", "ful A R1 O1 - 5", RK_AID_STATE, "offer_id",
     "nothing has been dispatched on offer O1"},
    {REQ ";" OFF_B ";acc A R1 O1 50;dsp B R1 O1 D1 30", "ful A R1 O1 D9 5", RK_AID_UNKNOWN_DISPATCH,
     "dispatch_id", "no dispatch D9 on offer O1"},
    {REQ ";" OFF_B ";" OFF_C ";acc A R1 O1 10;acc A R1 O2 10;dsp B R1 O1 D1 5;dsp C R1 O2 D2 5",
     "ful A R1 O1 D2 5", RK_AID_UNKNOWN_DISPATCH, "dispatch_id", "no dispatch D2 on offer O1"},
    {REQ ";" OFF_B ";acc A R1 O1 50;dsp B R1 O1 D1 30;dsp B R1 O1 D2 20", "ful A R1 O1 D1 31",
     RK_AID_QUANTITY, "quantity", "would confirm 31 in all for D1, but it carried 30"},
    {REQ ";" OFF_B ";acc A R1 O1 50;dsp B R1 O1 D1 30", "ful A R1 O1 - 31", RK_AID_QUANTITY,
     "quantity", "would confirm 31 in all, but 30 was dispatched"},
    /* per dispatch fine (15 of 30), per offer not (40 + 15 of 50) */
    {REQ ";" OFF_B ";acc A R1 O1 50;dsp B R1 O1 D1 30;dsp B R1 O1 D2 20;ful A R1 O1 - 40",
     "ful A R1 O1 D1 15", RK_AID_QUANTITY, "quantity", "would confirm 55 in all, but 50 was dispatched"},
    /* cancel */
    {REQ, "can B R1", RK_AID_NOT_OWNER, "municipality", "only the requester 304280 may cancel"},
    {"", "can A R1", RK_AID_UNKNOWN_REQUEST, "request_id", "no request R1"},
    {REQ ";can A R1", "can A R1", RK_AID_STATE, "request_id", "request is already cancelled"},
    {REQ ";off B R1 O1 water.drinking 100;acc A R1 O1 100;dsp B R1 O1 D1 100;ful A R1 O1 D1 100",
     "can A R1",
     RK_AID_STATE, "request_id", "request is already fulfilled"},
    {REQ ";" OFF_B ";acc A R1 O1 50;dsp B R1 O1 D1 30;ful A R1 O1 D1 10", "can A R1",
     RK_AID_IN_TRANSIT, "request_id", "20 L dispatched but not yet received; confirm receipt first"},
};

static void test_each_rule(void)
{
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        const struct rule *r = &rules[i];
        struct rk_aid *a = rk_aid_new();
        run(a, r->setup);
        char *before = dump(a);
        struct rk_aid_event e = step(r->event);
        struct rk_aid_refusal why;
        enum rk_aid_err rc = rk_aid_apply(a, &e, &why);
        int ok = rc == r->want && why.code == rc && strcmp(why.field, r->field) == 0 &&
                 strstr(why.message, r->in_message) != NULL;
        if (!ok)
            fprintf(stderr, "rule %zu (%s): got %s %s \"%s\", want %s %s \"%s\"\n", i, r->event,
                    rk_aid_err_name(rc), why.field, why.message, rk_aid_err_name(r->want),
                    r->field, r->in_message);
        RK_CHECK(ok);
        char *after = dump(a);
        RK_CHECK_STR(after, before);
        free(before);
        free(after);
        rk_aid_destroy(&a);
    }
}

static void want_request(const struct rk_aid *a, const char *rid, const char *state,
                         int64_t quantity, int64_t accepted, int restricted)
{
    struct rk_aid_request_view v;
    RK_CHECK(rk_aid_request_find(a, rid, &v) >= 0);
    RK_CHECK_STR(v.state_name, state);
    RK_CHECK(v.quantity == quantity);
    RK_CHECK(v.accepted == accepted);
    RK_CHECK(v.restricted == restricted);
}

static const char *offer_state(const struct rk_aid *a, const char *rid, const char *oid)
{
    struct rk_aid_offer_view o;
    size_t c = 0;
    long i = rk_aid_request_find(a, rid, NULL);
    while (i >= 0 && rk_aid_offer_next(a, (size_t)i, &c, &o))
        if (!strcmp(o.offer_id, oid))
            return o.state_name;
    return "(none)";
}

/* Transitions the scenario shows only in passing. */
static void test_transitions(void)
{
    struct rk_aid *a = rk_aid_new();
    /* a withdrawn accepted offer frees its share: the request reopens */
    run(a, REQ ";" OFF_B ";" OFF_C ";acc A R1 O1 60;wdr B R1 O1");
    want_request(a, "R1", "open", 100, 0, 0);
    run(a, "acc A R1 O2 60;dsp C R1 O2 D1 60;ful A R1 O2 D1 60");
    want_request(a, "R1", "in_progress", 100, 60, 0);
    RK_CHECK_STR(offer_state(a, "R1", "O2"), "delivered");
    /* lowering the quantity to what was received completes the request and
     * closes the offers still on the table */
    run(a, "off B R1 O3 water.drinking 500;req A R1 2 water.drinking 60");
    want_request(a, "R1", "fulfilled", 60, 60, 0);
    RK_CHECK_STR(offer_state(a, "R1", "O3"), "closed");
    RK_CHECK_STR(offer_state(a, "R1", "O1"), "withdrawn");
    /* cancel closes offered, accepted and fully received dispatched offers */
    run(a, "req A R2 1 food.meal 100 restricted;off B R2 O4 food.meal 10;off C R2 O5 food.meal 10;"
           "off B R2 O6 food.meal 30;acc A R2 O5 10;acc A R2 O6 30;dsp B R2 O6 D2 10;"
           "ful A R2 O6 - 10;req A R2 2 food.meal 90");
    want_request(a, "R2", "in_progress", 90, 40, 1); /* an update without data_class keeps it */
    run(a, "can A R2");
    want_request(a, "R2", "cancelled", 90, 40, 1);
    RK_CHECK_STR(offer_state(a, "R2", "O4"), "closed");
    RK_CHECK_STR(offer_state(a, "R2", "O5"), "closed");
    RK_CHECK_STR(offer_state(a, "R2", "O6"), "closed");
    run(a, "req A R3 1 food.meal 10 restricted;req A R3 2 food.meal 10 open");
    want_request(a, "R3", "open", 10, 0, 0);
    RK_CHECK(rk_aid_count(a, RK_AID_FULFILLED) == 1);
    RK_CHECK(rk_aid_count(a, RK_AID_CANCELLED) == 1);
    RK_CHECK(rk_aid_count(a, RK_AID_OPEN) == 1);
    RK_CHECK(rk_aid_count(a, RK_AID__NSTATES) == 0);
    RK_CHECK(rk_aid_request_find(a, "R9", NULL) == -1);
    struct rk_aid_request_view v;
    RK_CHECK(rk_aid_request_at(a, 3, &v) == -1);
    rk_aid_destroy(&a);
}

/* Structs no validated event yields are refused as E_INVALID, changing nothing. */
static void test_invalid_structs(void)
{
    struct rk_aid *a = rk_aid_new();
    run(a, REQ ";" OFF_B);
    char *before = dump(a);
    struct rk_aid_event kpi, zero = step("acc A R1 O1 0"), huge = step("acc A R1 O1 1"),
                             unterminated = step(REQ), noid = step("wdr B R1 -");
    memset(&kpi, 0, sizeof kpi);
    kpi.type = RK_EV_KPI_UPDATE;
    snprintf(kpi.municipality, sizeof kpi.municipality, "431001");
    huge.quantity = INT64_MAX;
    memset(unterminated.request_id, 'x', sizeof unterminated.request_id);
    noid.offer_id[0] = '\0';
    const struct rk_aid_event *cases[] = {&kpi, &zero, &huge, &unterminated, &noid};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rk_aid_refusal why;
        RK_CHECK(rk_aid_apply(a, cases[i], &why) == RK_AID_INVALID);
        RK_CHECK_STR(rk_aid_err_name(why.code), "E_INVALID");
        RK_CHECK(rk_aid_apply(a, cases[i], NULL) == RK_AID_INVALID);
    }
    char *after = dump(a);
    RK_CHECK_STR(after, before);
    free(before);
    free(after);
    RK_CHECK_STR(rk_aid_err_name(RK_AID__COUNT), "E_UNKNOWN");
    RK_CHECK_STR(rk_aid_err_name(RK_AID_OK), "OK");
    RK_CHECK(rk_aid_state_name(RK_AID__NSTATES) == NULL);
    RK_CHECK_STR(rk_aid_offer_state_name(RK_AID_CLOSED), "closed");
    rk_aid_destroy(&a);
}

/* ---- the parser --------------------------------------------------------- */

static const char base_fulfil[] =
    "{\"type\":\"aid.fulfil\",\"event_id\":\"302074-0004\",\"municipality\":\"302074\","
    "\"sent_at\":\"2026-02-18T09:00:00+09:00\",\"request_id\":\"REQ-302074-001\","
    "\"offer_id\":\"OFR-290009-001\",\"dispatch_id\":\"DSP-290009-002\",\"quantity\":5000,"
    "\"note\":\"受領\"}";

static const char base_request[] =
    "{\"type\":\"aid.request\",\"event_id\":\"304280-0001\",\"municipality\":\"304280\","
    "\"sent_at\":\"2026-02-17T11:10:22+09:00\",\"request_id\":\"REQ-304280-002\",\"version\":3,"
    "\"resource\":\"team.dwat\",\"quantity\":2,\"unit\":\"team\",\"urgency\":\"high\","
    "\"location\":{\"lat\":33.49,\"lon\":135.78},\"data_class\":\"restricted\","
    "\"deadline\":\"2026-02-17T23:10:00+09:00\"}";

static const char base_kpi[] =
    "{\"type\":\"kpi.update\",\"event_id\":\"KPI-431001-001:FY2018\",\"municipality\":\"431001\","
    "\"sent_at\":\"2026-04-01T09:00:00+09:00\",\"kpi_id\":\"KPI-431001-001\",\"policy_area\":\"a.b\","
    "\"name\":\"圏域内の創業者数（年間）\",\"unit\":\"persons per year in the area, 32\","
    "\"aggregation\":\"annual\",\"fiscal_year\":2018,"
    "\"baseline\":{\"value\":772,\"fy\":2016,\"label\":\"H28\"},"
    "\"target\":{\"value\":1000,\"fy\":2020,\"fy_from\":2016},"
    "\"current\":{\"value\":1084.5,\"fy\":2018,\"as_of\":\"2019-03\"}}";

static void test_parse_fields(void)
{
    struct rk_aid_event e;
    char why[300];
    RK_CHECK(parse_json(base_fulfil, &e, why, sizeof why) == RK_V_OK);
    RK_CHECK_STR(why, "");
    RK_CHECK(e.type == RK_EV_AID_FULFIL);
    RK_CHECK_STR(e.municipality, "302074");
    RK_CHECK_STR(e.request_id, "REQ-302074-001");
    RK_CHECK_STR(e.offer_id, "OFR-290009-001");
    RK_CHECK_STR(e.dispatch_id, "DSP-290009-002");
    RK_CHECK(e.quantity == 5000);
    RK_CHECK_STR(e.resource, "");
    RK_CHECK(e.data_class == RK_AID_CLASS_UNSET);
    RK_CHECK(parse_json(base_request, &e, NULL, 0) == RK_V_OK);
    RK_CHECK(e.type == RK_EV_AID_REQUEST);
    RK_CHECK(e.version == 3);
    RK_CHECK_STR(e.resource, "team.dwat");
    RK_CHECK_STR(e.unit, "team");
    RK_CHECK_STR(e.urgency, "high");
    RK_CHECK(e.data_class == RK_AID_CLASS_RESTRICTED);
    RK_CHECK_STR(e.offer_id, "");
    /* kpi.update parses, even with a unit longer than any aid unit */
    RK_CHECK(parse_json(base_kpi, &e, why, sizeof why) == RK_V_OK);
    RK_CHECK(e.type == RK_EV_KPI_UPDATE);
    RK_CHECK_STR(e.municipality, "431001");
    RK_CHECK_STR(e.request_id, "");
}

static void test_parse_hostile(void)
{
    static const struct {
        const char *what;
        unsigned char bytes[8];
        size_t len;
    } cases[] = {
        {"empty", {0}, 0},
        {"array", {0x91, 0x01}, 2},
        {"integer", {0x05}, 1},
        {"nil", {0xc0}, 1},
        {"truncated map", {0x82, 0xa1, 'a'}, 3},
        {"map32 of 2^32-1 pairs", {0xdf, 0xff, 0xff, 0xff, 0xff}, 5},
        {"str32 of 4 GiB", {0xdb, 0xff, 0xff, 0xff, 0xff, 'x'}, 6},
        {"reserved 0xc1", {0xc1}, 1},
        {"int key", {0x81, 0x01, 0x01}, 3},
    };
    struct rk_aid_event e;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char why[300] = "unset";
        enum rk_verr rc = rk_aid_event_parse(cases[i].bytes, cases[i].len, &e, why, sizeof why);
        if (rc == RK_V_OK)
            fprintf(stderr, "%s: parsed\n", cases[i].what);
        RK_CHECK(rc != RK_V_OK);
        RK_CHECK(strncmp(why, "E_", 2) == 0);
        RK_CHECK(rk_aid_event_parse(cases[i].bytes, cases[i].len, &e, NULL, 0) == rc);
    }
    /* wrong types, as rk_event_validate names them */
    char why[300], tiny[8];
    RK_CHECK(parse_json("{\"type\":\"aid.cancel\",\"quantity\":\"5\"}", &e, why, sizeof why) != RK_V_OK);
    RK_CHECK(parse_json("[1,2,3]", &e, why, sizeof why) == RK_V_TYPE);
    RK_CHECK(strstr(why, "E_TYPE: ") == why);
    RK_CHECK(parse_json("{\"type\":7}", &e, tiny, sizeof tiny) == RK_V_TYPE);
    RK_CHECK(strlen(tiny) == sizeof tiny - 1); /* truncated, terminated */
    json_t *j = json_loads(base_fulfil, 0, NULL);
    json_object_set_new(j, "quantity", json_string("5000"));
    char *text = json_dumps(j, 0);
    RK_CHECK(parse_json(text, &e, why, sizeof why) == RK_V_TYPE);
    free(text);
    json_object_set_new(j, "quantity", json_integer(5000));
    json_object_set_new(j, "offer_id", json_integer(1));
    text = json_dumps(j, 0);
    RK_CHECK(parse_json(text, &e, why, sizeof why) == RK_V_TYPE);
    free(text);
    json_decref(j);
}

/* Every truncation of a valid event, and many corrupted copies: an error or
 * a parse, never a crash (the sanitizer build watches the reads). */
static void test_parse_truncated_and_corrupt(void)
{
    json_t *j = json_loads(base_request, 0, NULL);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    RK_CHECK(rk_json_to_msgpack(j, &sb) == 0);
    struct rk_aid_event e;
    int parsed = 0;
    for (size_t n = 0; n < sb.size; n++) {
        unsigned char *copy = malloc(n ? n : 1); /* exact size: ASan sees overreads */
        memcpy(copy, sb.data, n);
        parsed += rk_aid_event_parse(copy, n, &e, NULL, 0) == RK_V_OK;
        free(copy);
    }
    RK_CHECK(parsed == 0);
    uint32_t x = 2463534242u; /* xorshift32: the same corruptions every run */
    unsigned char *copy = malloc(sb.size);
    for (int round = 0; round < 5000; round++) {
        memcpy(copy, sb.data, sb.size);
        for (int k = 0; k < 1 + round % 4; k++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            copy[x % sb.size] = (unsigned char)(x >> 8);
        }
        char why[64];
        if (rk_aid_event_parse(copy, sb.size, &e, why, sizeof why) == RK_V_OK)
            RK_CHECK(strlen(e.request_id) <= RK_ID_MAX && strlen(e.municipality) == 6);
    }
    free(copy);
    msgpack_sbuffer_destroy(&sb);
    json_decref(j);
}

/* ---- scale -------------------------------------------------------------- */

/* 100,000 requests through the whole lifecycle, then a batch rolled back:
 * quadratic look-ups would take minutes, and ctest would time out. */
static void test_scale(void)
{
    enum { N = 100000 };
    struct rk_aid *a = rk_aid_new();
    struct rk_aid_event e = step("req A R 1 water.drinking 10"), o = step("off B R O water.drinking 10"),
                        ac = step("acc A R O 10"), d = step("dsp B R O D 10"), f = step("ful A R O D 10");
    int bad = 0;
    for (int i = 0; i < N; i++) {
        snprintf(e.request_id, sizeof e.request_id, "REQ-%06d", i);
        memcpy(o.request_id, e.request_id, sizeof o.request_id);
        memcpy(ac.request_id, e.request_id, sizeof ac.request_id);
        memcpy(d.request_id, e.request_id, sizeof d.request_id);
        memcpy(f.request_id, e.request_id, sizeof f.request_id);
        snprintf(o.offer_id, sizeof o.offer_id, "OFR-%06d", i);
        memcpy(ac.offer_id, o.offer_id, sizeof ac.offer_id);
        memcpy(d.offer_id, o.offer_id, sizeof d.offer_id);
        memcpy(f.offer_id, o.offer_id, sizeof f.offer_id);
        snprintf(d.dispatch_id, sizeof d.dispatch_id, "DSP-%06d", i);
        memcpy(f.dispatch_id, d.dispatch_id, sizeof f.dispatch_id);
        bad += rk_aid_apply(a, &e, NULL) != RK_AID_OK;
        bad += rk_aid_apply(a, &o, NULL) != RK_AID_OK;
        if (i % 2 == 0) {
            bad += rk_aid_apply(a, &ac, NULL) != RK_AID_OK;
            bad += rk_aid_apply(a, &d, NULL) != RK_AID_OK;
            bad += rk_aid_apply(a, &f, NULL) != RK_AID_OK;
        }
    }
    RK_CHECK(bad == 0);
    RK_CHECK(rk_aid_request_count(a) == N);
    RK_CHECK(rk_aid_count(a, RK_AID_FULFILLED) == N / 2);
    RK_CHECK(rk_aid_count(a, RK_AID_OPEN) == N / 2);
    /* a batch over half the requests (growing every table) undone */
    rk_aid_begin(a);
    for (int i = 1; i < N; i += 2) {
        snprintf(ac.request_id, sizeof ac.request_id, "REQ-%06d", i);
        snprintf(ac.offer_id, sizeof ac.offer_id, "OFR-%06d", i);
        bad += rk_aid_apply(a, &ac, NULL) != RK_AID_OK;
        snprintf(e.request_id, sizeof e.request_id, "NEW-%06d", i);
        bad += rk_aid_apply(a, &e, NULL) != RK_AID_OK;
    }
    RK_CHECK(bad == 0);
    RK_CHECK(rk_aid_count(a, RK_AID_IN_PROGRESS) == N / 2);
    rk_aid_rollback(a);
    RK_CHECK(rk_aid_request_count(a) == N);
    RK_CHECK(rk_aid_count(a, RK_AID_OPEN) == N / 2);
    RK_CHECK(rk_aid_count(a, RK_AID_IN_PROGRESS) == 0);
    RK_CHECK(rk_aid_request_find(a, "NEW-000001", NULL) == -1);
    RK_CHECK(rk_aid_request_find(a, "REQ-099999", NULL) == N - 1);
    /* what the batch did can be done again: nothing of it lingers */
    RK_CHECK(rk_aid_apply(a, &e, NULL) == RK_AID_OK);
    RK_CHECK(rk_aid_apply(a, &ac, NULL) == RK_AID_OK);
    rk_aid_destroy(&a);
}

int main(void)
{
    RK_RUN(test_scenario);
    RK_RUN(test_batches);
    RK_RUN(test_each_rule);
    RK_RUN(test_transitions);
    RK_RUN(test_invalid_structs);
    RK_RUN(test_parse_fields);
    RK_RUN(test_parse_hostile);
    RK_RUN(test_parse_truncated_and_corrupt);
    RK_RUN(test_scale);
    return rk_test_result();
}
