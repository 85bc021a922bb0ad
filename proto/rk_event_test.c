/* Event validation: the shared scenario, one test per rule, hostile bytes. */
#include "rk_event.h"
#include "rk_muni.h"
#include "rk_json.h"
#include "rk_time.h"
#include "rk_test.h"

#include <string.h>

static const char base_offer[] =
    "{\"type\":\"aid.offer\",\"event_id\":\"271004-0001\",\"municipality\":\"271004\","
    "\"sent_at\":\"2026-02-17T12:00:00+09:00\",\"request_id\":\"REQ-304280-001\","
    "\"offer_id\":\"OFR-271004-001\",\"resource\":\"water.drinking\",\"quantity\":30000,"
    "\"unit\":\"L\",\"eta\":\"2026-02-17T18:00:00+09:00\",\"note\":\"給水車2台\"}";

static const char base_request[] =
    "{\"type\":\"aid.request\",\"event_id\":\"304280-0001\",\"municipality\":\"304280\","
    "\"sent_at\":\"2026-02-17T11:10:22+09:00\",\"request_id\":\"REQ-304280-001\",\"version\":1,"
    "\"resource\":\"water.drinking\",\"quantity\":20000,\"unit\":\"L\",\"urgency\":\"high\","
    "\"location\":{\"lat\":33.49,\"lon\":135.78,\"place\":\"串本町\"},"
    "\"deadline\":\"2026-02-17T23:10:00+09:00\"}";

static const char base_kpi[] =
    "{\"type\":\"kpi.update\",\"event_id\":\"KPI-431001-001:FY2018\",\"municipality\":\"431001\","
    "\"sent_at\":\"2026-04-01T09:00:00+09:00\",\"kpi_id\":\"KPI-431001-001\",\"policy_area\":\"a.b\","
    "\"name\":\"圏域内の創業者数（年間）\",\"unit\":\"人\",\"aggregation\":\"annual\",\"fiscal_year\":2018,"
    "\"baseline\":{\"value\":772,\"fy\":2016,\"label\":\"H28\"},"
    "\"target\":{\"value\":1000,\"fy\":2020,\"fy_from\":2016},"
    "\"current\":{\"value\":1084.5,\"fy\":2018,\"as_of\":\"2019-03\"}}";

/* Validates the JSON text after converting it to MessagePack. */
static enum rk_verr check_json_text(const char *text, int64_t now, struct rk_event_info *info,
                                    struct rk_verror *err)
{
    json_error_t jerr;
    json_t *j = json_loads(text, JSON_ALLOW_NUL, &jerr);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    enum rk_verr rc = RK_V__COUNT;
    if (j && rk_json_to_msgpack(j, &sb) == 0)
        rc = rk_event_validate(sb.data, sb.size, now, info, err);
    msgpack_sbuffer_destroy(&sb);
    json_decref(j);
    return rc;
}

/* Sets (or with value NULL deletes) the field at a dotted path in a copy of
 * `base`, then validates. */
static enum rk_verr mutate(const char *base, const char *path, const char *value,
                           struct rk_verror *err)
{
    json_t *j = json_loads(base, 0, NULL), *obj = j;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    char *key = buf, *dot = strchr(buf, '.');
    if (dot) { /* "location.lat": one level of nesting is all the rules use */
        *dot = '\0';
        obj = json_object_get(j, buf);
        key = dot + 1;
    }
    if (value)
        json_object_set_new(obj, key, json_loads(value, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL));
    else
        json_object_del(obj, key);
    char *text = json_dumps(j, 0); /* a NUL is written escaped */
    enum rk_verr rc = check_json_text(text, 0, NULL, err);
    free(text);
    json_decref(j);
    return rc;
}

struct rule {
    const char *base, *path, *value;
    enum rk_verr want;
    const char *in_message;
};

static const struct rule rules[] = {
    {base_offer, "quantity", "-5", RK_V_RANGE, "offer.quantity: must be 1..10000000, got -5"},
    {base_offer, "quantity", "0", RK_V_RANGE, "got 0"},
    {base_offer, "quantity", "10000001", RK_V_RANGE, "10000001"},
    {base_offer, "quantity", "2.5", RK_V_TYPE, "must be an integer, got float"},
    {base_offer, "quantity", "\"5\"", RK_V_TYPE, "got string"},
    {base_offer, "quantity", "true", RK_V_TYPE, "got boolean"},
    {base_offer, "quantity", NULL, RK_V_MISSING, "offer.quantity: required"},
    {base_offer, "type", NULL, RK_V_MISSING, "event.type: required"},
    {base_offer, "type", "\"aid.gift\"", RK_V_EVENT_TYPE, "aid.gift"},
    {base_offer, "type", "7", RK_V_TYPE, "event.type"},
    {base_offer, "colour", "\"red\"", RK_V_UNKNOWN_FIELD, "colour"},
    {base_offer, "event_id", "\"\"", RK_V_ID, "event_id"},
    {base_offer, "event_id", "\"a b\"", RK_V_ID, "event_id"},
    {base_offer, "event_id", "\"x123456789x123456789x123456789x123456789x123456789x123456789xxxxx\"",
     RK_V_ID, "1..64"},
    {base_offer, "offer_id", "\"OFR/1\"", RK_V_ID, "offer_id"},
    {base_offer, "municipality", "\"27100\"", RK_V_CODE_FORMAT, "municipality"},
    {base_offer, "municipality", "\"481009\"", RK_V_CODE_PREFECTURE, "municipality"},
    {base_offer, "municipality", "\"271005\"", RK_V_CHECK_DIGIT, "must be 4"},
    {base_offer, "municipality", "\"271993\"", RK_V_UNKNOWN_MUNICIPALITY, "271993"},
    {base_offer, "resource", "\"water.wine\"", RK_V_VOCAB, "water.wine"},
    {base_offer, "unit", "\"kL\"", RK_V_UNIT, "counted in L"},
    {base_offer, "sent_at", "\"2026-02-17 12:00\"", RK_V_TIME, "sent_at"},
    {base_offer, "sent_at", "\"1999-12-31T23:59:59Z\"", RK_V_TIME, "2000"},
    {base_offer, "eta", "\"2026-02-17T10:59:59+09:00\"", RK_V_TIME, "1 h before"},
    {base_offer, "eta", "\"2027-02-19T12:00:00+09:00\"", RK_V_TIME, "366 days"},
    {base_offer, "note", "\"bell\\u0007\"", RK_V_TEXT, "control character"},
    {base_offer, "note", "\"\\u0000\"", RK_V_TEXT, "control character"},
    {base_offer, "note", "\"tab\\tand\\nnewline are fine\"", RK_V_OK, ""},
    {base_request, "deadline", "\"2026-02-17T11:10:22+09:00\"", RK_V_TIME, "after sent_at"},
    {base_request, "deadline", "\"2027-02-19T11:10:22+09:00\"", RK_V_TIME, "366 days"},
    {base_request, "urgency", "\"urgent\"", RK_V_VOCAB, "critical|high|medium|low"},
    {base_request, "data_class", "\"secret\"", RK_V_VOCAB, "open|restricted"},
    {base_request, "data_class", "\"restricted\"", RK_V_OK, ""},
    {base_request, "version", "0", RK_V_RANGE, "request.version"},
    {base_request, "location.lat", "19.9", RK_V_RANGE, "request.location.lat: must be 20..46"},
    {base_request, "location.lon", "155", RK_V_RANGE, "location.lon"},
    {base_request, "location.lon", NULL, RK_V_MISSING, "location.lon"},
    {base_request, "location.floor", "3", RK_V_UNKNOWN_FIELD, "floor"},
    {base_request, "location", "\"Kushimoto\"", RK_V_TYPE, "location"},
    {base_request, "location.place", "\"x\"", RK_V_OK, ""},
    {base_kpi, "policy_area", "\"a\"", RK_V_POLICY_AREA, "policy_area"},
    {base_kpi, "policy_area", "\"u.C.d\"", RK_V_OK, ""},
    {base_kpi, "aggregation", "\"sum\"", RK_V_VOCAB, "aggregation"},
    {base_kpi, "fiscal_year", "1999", RK_V_RANGE, "fiscal_year"},
    {base_kpi, "current.fy", "2017", RK_V_RANGE, "must equal fiscal_year (2018)"},
    {base_kpi, "baseline.value", "\"772\"", RK_V_TYPE, "kpi.update.baseline.value"},
    {base_kpi, "baseline.fy", NULL, RK_V_MISSING, "baseline.fy"},
    {base_kpi, "target.fy_from", "2021", RK_V_RANGE, "target.fy_from"},
    {base_kpi, "current.as_of", "\"2019-13\"", RK_V_TIME, "as_of"},
    {base_kpi, "current.label", "\"R1 but a label longer than thirty-two bytes\"", RK_V_TOO_LONG, "32"},
    {base_kpi, "name", "\"   \"", RK_V_TEXT, "blank"},
    {base_kpi, "name", "\"\\u3000\"", RK_V_TEXT, "blank"},
    {base_kpi, "unit", NULL, RK_V_MISSING, "kpi.update.unit"},
};

static void test_each_rule(void)
{
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
        const struct rule *r = &rules[i];
        struct rk_verror err;
        enum rk_verr rc = mutate(r->base, r->path, r->value, &err);
        int ok = rc == r->want && strstr(err.message, r->in_message) != NULL;
        if (!ok)
            fprintf(stderr, "rule %zu (%s=%s): got %s \"%s\", want %s containing \"%s\"\n", i,
                    r->path, r->value ? r->value : "(deleted)", rk_verr_name(rc), err.message,
                    rk_verr_name(r->want), r->in_message);
        RK_CHECK(ok);
    }
}

static void test_text_limits(void)
{
    static char big[4096], doc[8192];
    struct rk_verror err;
    memset(big, 'x', 2049);
    big[2049] = '\0';
    snprintf(doc, sizeof doc, "\"%s\"", big);
    RK_CHECK(mutate(base_offer, "note", doc, &err) == RK_V_TOO_LONG);
    big[2048] = '\0';
    snprintf(doc, sizeof doc, "\"%s\"", big);
    RK_CHECK(mutate(base_offer, "note", doc, &err) == RK_V_OK);
    RK_CHECK(mutate(base_offer, "note", "\"emoji \xf0\x9f\x9a\xb0 ok\"", &err) == RK_V_OK);
}

static void test_sent_at_ahead_of_clock(void)
{
    struct rk_verror err;
    int64_t sent = 1771297200LL * RK_NS_PER_SEC; /* 2026-02-17T12:00:00+09:00 */
    int64_t day = 86400 * RK_NS_PER_SEC;
    RK_CHECK(check_json_text(base_offer, sent - day + 1, NULL, &err) == RK_V_OK);
    RK_CHECK(check_json_text(base_offer, sent - day - 1, NULL, &err) == RK_V_TIME);
    RK_CHECK(strstr(err.message, "24 h ahead") != NULL);
}

static void test_info_and_topic(void)
{
    struct rk_event_info info;
    struct rk_verror err;
    char topic[RK_TOPIC_MAX];
    RK_CHECK(check_json_text(base_offer, 0, &info, &err) == RK_V_OK);
    RK_CHECK(info.type == RK_EV_AID_OFFER);
    RK_CHECK_STR(info.municipality, "271004");
    RK_CHECK_STR(info.event_id, "271004-0001");
    RK_CHECK_STR(info.request_id, "REQ-304280-001");
    RK_CHECK(info.sent_at_ns == 1771297200LL * RK_NS_PER_SEC);
    rk_event_topic(&info, topic);
    RK_CHECK_STR(topic, "aid.offer/27/271004");
    RK_CHECK(check_json_text(base_kpi, 0, &info, &err) == RK_V_OK);
    RK_CHECK_STR(info.kpi_id, "KPI-431001-001");
    RK_CHECK(info.fiscal_year == 2018);
    rk_event_topic(&info, topic);
    RK_CHECK_STR(topic, "kpi.update/43/431001");
}

/* Bytes that are not a sane MessagePack map, straight off a socket. */
static void test_hostile_bytes(void)
{
    struct {
        const char *what;
        unsigned char bytes[32];
        size_t len;
        enum rk_verr want;
    } cases[] = {
        {"empty", {0}, 0, RK_V_DECODE},
        {"array", {0x91, 0x01}, 2, RK_V_TYPE},
        {"integer", {0x05}, 1, RK_V_TYPE},
        {"truncated map", {0x82, 0xa1, 'a'}, 3, RK_V_DECODE},
        {"map32 of 2^32-1 pairs", {0xdf, 0xff, 0xff, 0xff, 0xff}, 5, RK_V_DECODE},
        {"array32 of 2^32-1", {0xdd, 0xff, 0xff, 0xff, 0xff, 0x00}, 6, RK_V_DECODE},
        {"str32 of 4 GiB", {0xdb, 0xff, 0xff, 0xff, 0xff, 'x'}, 6, RK_V_DECODE},
        {"bin32 of 4 GiB", {0xc6, 0xff, 0xff, 0xff, 0xff}, 5, RK_V_DECODE},
        {"ext32 of 4 GiB", {0xc9, 0xff, 0xff, 0xff, 0xff, 0x01}, 6, RK_V_DECODE},
        {"reserved 0xc1", {0xc1}, 1, RK_V_DECODE},
        {"trailing byte", {0x80, 0x00}, 2, RK_V_DECODE},
        {"int key", {0x81, 0x01, 0x01}, 3, RK_V_MISSING},
        {"nil type", {0x81, 0xa4, 't', 'y', 'p', 'e', 0xc0}, 7, RK_V_TYPE},
        /* container keys are skipped whole while "type" is looked for: a
         * key ["x"] before it, and a "type" inside a key ["type","aid.offer"] */
        {"array key, then type", {0x82, 0x91, 0xa1, 'x', 0x01, 0xa4, 't', 'y', 'p', 'e',
                                  0xa9, 'a', 'i', 'd', '.', 'o', 'f', 'f', 'e', 'r'}, 20, RK_V_TYPE},
        {"type inside an array key", {0x81, 0x92, 0xa4, 't', 'y', 'p', 'e', 0xa9, 'a', 'i', 'd',
                                      '.', 'o', 'f', 'f', 'e', 'r', 0x01}, 18, RK_V_MISSING},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rk_verror err;
        enum rk_verr rc = rk_event_validate(cases[i].bytes, cases[i].len, 0, NULL, &err);
        if (rc != cases[i].want)
            fprintf(stderr, "%s: got %s (%s)\n", cases[i].what, rk_verr_name(rc), err.message);
        RK_CHECK(rc == cases[i].want);
    }
    /* 10,000 nested arrays: refused without recursing that deep */
    static unsigned char deep[10001];
    memset(deep, 0x91, 10000);
    deep[10000] = 0x01;
    RK_CHECK(rk_event_validate(deep, sizeof deep, 0, NULL, NULL) == RK_V_DECODE);
    /* over the size limit, whatever it holds */
    static unsigned char big[RK_EVENT_MAX_BYTES + 1];
    RK_CHECK(rk_event_validate(big, sizeof big, 0, NULL, NULL) == RK_V_TOO_LONG);
    /* duplicate key */
    unsigned char dup[] = {0x82, 0xa4, 't', 'y', 'p', 'e', 0xa9, 'a', 'i', 'd', '.', 'o', 'f',
                           'f', 'e', 'r', 0xa4, 't', 'y', 'p', 'e', 0xa9, 'a', 'i', 'd', '.',
                           'o', 'f', 'f', 'e', 'r'};
    struct rk_verror err;
    RK_CHECK(rk_event_validate(dup, sizeof dup, 0, NULL, &err) == RK_V_DECODE);
    RK_CHECK(strstr(err.message, "twice") != NULL);
}

/* The whole shared disaster scenario is valid at the schema level. */
static void test_shared_scenario(void)
{
    char path[512], line[20000];
    FILE *f = fopen(rk_test_shared("disaster_scenario.jsonl", path, sizeof path), "r");
    RK_CHECK(f != NULL);
    if (!f)
        return;
    int n = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        struct rk_verror err;
        n++;
        if (check_json_text(line, 0, NULL, &err) != RK_V_OK) {
            fprintf(stderr, "scenario line %d: %s\n", n, err.message);
            bad++;
        }
    }
    fclose(f);
    RK_CHECK(n == 204);
    RK_CHECK(bad == 0);
}

/* The compiled vocabulary is the one proto/data/aid_resources.csv documents. */
static void test_resource_table_matches_csv(void)
{
    char path[512], line[1024];
    snprintf(path, sizeof path, "%s/proto/data/aid_resources.csv", getenv("RK_SOURCE_DIR"));
    FILE *f = fopen(path, "r");
    RK_CHECK(f != NULL);
    if (!f)
        return;
    size_t n = 0, mismatched = 0;
    if (!fgets(line, sizeof line, f))
        line[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        char *fields[5] = {0}, *save = NULL, *p = line;
        for (int k = 0; k < 5; k++, p = NULL)
            fields[k] = strtok_r(p, ",", &save);
        const char *unit = NULL, *code = rk_event_resource_at(n, &unit);
        if (!code || !fields[4] || strcmp(code, fields[0]) || strcmp(unit, fields[4]))
            mismatched++;
        n++;
    }
    fclose(f);
    RK_CHECK(n == rk_event_resource_count());
    RK_CHECK(n == 30);
    RK_CHECK(mismatched == 0);
}

static void test_names(void)
{
    RK_CHECK_STR(rk_verr_name(RK_V_CHECK_DIGIT), "E_CHECK_DIGIT");
    RK_CHECK_STR(rk_verr_name(RK_V__COUNT), "E_UNKNOWN");
    RK_CHECK(rk_event_type_parse("aid.fulfil", 10) == RK_EV_AID_FULFIL);
    RK_CHECK(rk_event_type_parse("aid.fulfill", 11) == RK_EV_NONE);
    RK_CHECK(rk_event_type_name(RK_EV_NONE) == NULL);
    for (int c = 1; c < RK_V__COUNT; c++)
        RK_CHECK(strncmp(rk_verr_name((enum rk_verr)c), "E_", 2) == 0);
}

/* The compiled prefix set selects exactly what writing the topic and
 * comparing each prefix selects: every prefix of real topics, and strays. */
static int reference_match(const char *const *prefixes, unsigned n, enum rk_event_type type,
                           const char *muni)
{
    struct rk_event_info info = {.type = type};
    char topic[RK_TOPIC_MAX];
    if (n == 0)
        return 1;
    if (!rk_event_type_name(type))
        return 0;
    memcpy(info.municipality, muni, 7);
    rk_event_topic(&info, topic);
    for (unsigned i = 0; i < n; i++)
        if (strncmp(topic, prefixes[i], strlen(prefixes[i])) == 0)
            return 1;
    return 0;
}

static void test_topic_set(void)
{
    static const char *const munis[] = {"271004", "281000", "282014", "431001", "011002"};
    static const char *const strays[] = {"aid", "aid.x", "kpi.update/2", "aid.request/27/2710049",
                                         "aid.request/28/271004", "aid.request/27//", "zzz",
                                         "kpi.update/28/28", "aid.offer/27/271004/", ""};
    char pool[400][RK_TOPIC_MAX];
    const char *prefixes[400];
    unsigned np = 0;
    for (int t = 1; t < RK_EV__COUNT; t++)
        for (size_t m = 0; m < 2; m++) {
            struct rk_event_info info = {.type = (enum rk_event_type)t};
            char topic[RK_TOPIC_MAX];
            memcpy(info.municipality, munis[m], 7);
            rk_event_topic(&info, topic);
            for (size_t len = 0; len <= strlen(topic); len += 1 + (len > 3)) {
                memcpy(pool[np], topic, len);
                pool[np][len] = '\0';
                prefixes[np] = pool[np];
                np++;
            }
        }
    for (size_t i = 0; i < sizeof strays / sizeof strays[0]; i++)
        prefixes[np++] = strays[i];
    RK_CHECK(np < 400);
    struct rk_topic_set set;
    size_t checked = 0, matched = 0;
    /* each prefix alone, then sliding windows of 1..16 of them together */
    for (unsigned width = 1; width <= RK_TOPIC_SET_MAX; width += 5)
        for (unsigned at = 0; at + width <= np; at++) {
            RK_CHECK(rk_topic_set_init(&set, prefixes + at, width) == 0);
            for (int t = 0; t <= RK_EV__COUNT; t++)
                for (size_t m = 0; m < sizeof munis / sizeof munis[0]; m++) {
                    int want = reference_match(prefixes + at, width, (enum rk_event_type)t, munis[m]);
                    if (rk_topic_set_match(&set, (enum rk_event_type)t, munis[m]) != want) {
                        fprintf(stderr, "topic set %s... (%u) type %d muni %s: want %d\n",
                                prefixes[at], width, t, munis[m], want);
                        RK_CHECK(0);
                    }
                    checked++;
                    matched += (size_t)want;
                    /* the prefecture mask lets through every match */
                    uint64_t mask = rk_topic_set_prefectures(&set);
                    int pp = rk_muni_prefecture(munis[m]);
                    if (want && t != RK_EV_NONE && mask && !(mask >> pp & 1)) {
                        fprintf(stderr, "topic set %s... (%u) muni %s: prefecture mask %llx\n",
                                prefixes[at], width, munis[m], (unsigned long long)mask);
                        RK_CHECK(0);
                    }
                }
        }
    RK_CHECK(matched > checked / 20 && matched < checked); /* both outcomes were tried */
    RK_CHECK(rk_topic_set_init(&set, NULL, 0) == 0 && rk_topic_set_match(&set, RK_EV_NONE, "271004"));
    RK_CHECK(rk_topic_set_init(&set, prefixes, RK_TOPIC_SET_MAX + 1) == -1);
}

/* An event matches a set when its topic or its requester topic starts with
 * a prefix: the set's two answers together equal that, for prefixes cut
 * from both kinds of topic, and the prefecture mask gives up. */
static void test_topic_set_requester(void)
{
    static const char *const munis[] = {"271004", "304280", "304018"};
    static const char *const strays[] = {"aid.offer/f", "aid.offer/for", "aid.offer/for/",
                                         "kpi.update/for/", "aid.offer/for/3042801",
                                         "aid.offer/fox/", "aid.request/for//"};
    char pool[600][RK_TOPIC_MAX], topic[RK_TOPIC_MAX], rtopic[RK_TOPIC_MAX];
    const char *prefixes[600];
    unsigned np = 0;
    for (int t = 1; t < RK_EV__COUNT; t++)
        for (size_t m = 0; m < 2; m++) {
            rk_event_requester_topic((enum rk_event_type)t, munis[m], rtopic);
            RK_CHECK((t == RK_EV_KPI_UPDATE) == (rtopic[0] == '\0'));
            for (size_t len = 1; len <= strlen(rtopic); len += 1 + (len > 8)) {
                memcpy(pool[np], rtopic, len);
                pool[np][len] = '\0';
                prefixes[np] = pool[np];
                np++;
            }
        }
    for (size_t i = 0; i < sizeof strays / sizeof strays[0]; i++)
        prefixes[np++] = strays[i];
    RK_CHECK(np < 600);
    rk_event_requester_topic(RK_EV_AID_OFFER, "304280", rtopic);
    RK_CHECK(strcmp(rtopic, "aid.offer/for/30/304280") == 0);
    struct rk_topic_set set;
    size_t matched = 0, checked = 0;
    for (unsigned width = 1; width <= 3; width++)
        for (unsigned at = 0; at + width <= np; at++) {
            RK_CHECK(rk_topic_set_init(&set, prefixes + at, width) == 0);
            for (int t = 1; t < RK_EV__COUNT; t++)
                for (size_t m = 0; m < 3; m++)
                    for (size_t r = 0; r < 3; r++) {
                        struct rk_event_info info = {.type = (enum rk_event_type)t};
                        memcpy(info.municipality, munis[m], 7);
                        rk_event_topic(&info, topic);
                        rk_event_requester_topic((enum rk_event_type)t, munis[r], rtopic);
                        int want = 0;
                        for (unsigned i = at; i < at + width; i++)
                            want |= strncmp(topic, prefixes[i], strlen(prefixes[i])) == 0 ||
                                    (rtopic[0] &&
                                     strncmp(rtopic, prefixes[i], strlen(prefixes[i])) == 0);
                        int own = rk_topic_set_match(&set, (enum rk_event_type)t, munis[m]);
                        int got = own || (rk_topic_set_wants_requester(&set, (enum rk_event_type)t) &&
                                          rk_topic_set_match_requester(&set, (enum rk_event_type)t,
                                                                       munis[r]));
                        if (got != want) {
                            fprintf(stderr, "requester set %s... (%u) type %d muni %s for %s: "
                                    "want %d\n", prefixes[at], width, t, munis[m], munis[r], want);
                            RK_CHECK(0);
                        }
                        if (want && rtopic[0] && !own)
                            RK_CHECK(rk_topic_set_prefectures(&set) == 0);
                        checked++;
                        matched += (size_t)want;
                    }
        }
    RK_CHECK(matched > checked / 50 && matched < checked);
}

static uint64_t prefectures_of(const char *const *prefixes, unsigned n)
{
    struct rk_topic_set set;
    rk_topic_set_init(&set, prefixes, n);
    return rk_topic_set_prefectures(&set);
}

static void test_topic_set_prefectures(void)
{
    const char *one[] = {"aid.offer/28/"}, *two[] = {"kpi.update/28/281000", "aid.request/13/"},
               *digit[] = {"aid.offer/2"}, *family[] = {"aid."}, *mixed[] = {"aid.offer/28/", "kpi."},
               *type_only[] = {"aid.offer/"}, *none[] = {"zzz"};
    RK_CHECK(prefectures_of(one, 1) == 1ull << 28);
    RK_CHECK(prefectures_of(two, 2) == (1ull << 28 | 1ull << 13));
    RK_CHECK(prefectures_of(digit, 1) == 0x3ffull << 20);
    RK_CHECK(prefectures_of(family, 1) == 0);
    RK_CHECK(prefectures_of(mixed, 2) == 0);
    RK_CHECK(prefectures_of(type_only, 1) == 0);
    RK_CHECK(prefectures_of(NULL, 0) == 0);
    RK_CHECK(prefectures_of(none, 1) == 1);
}

int main(void)
{
    RK_RUN(test_each_rule);
    RK_RUN(test_text_limits);
    RK_RUN(test_sent_at_ahead_of_clock);
    RK_RUN(test_info_and_topic);
    RK_RUN(test_topic_set);
    RK_RUN(test_topic_set_prefectures);
    RK_RUN(test_topic_set_requester);
    RK_RUN(test_hostile_bytes);
    RK_RUN(test_shared_scenario);
    RK_RUN(test_resource_table_matches_csv);
    RK_RUN(test_names);
    return rk_test_result();
}
