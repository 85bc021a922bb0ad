#include "rk_event.h"
#include "rk_json.h"
#include "rk_kpi_csv.h"
#include "rk_test.h"

struct seen {
    int rows, errors, invalid;
    long last_error_line;
    char last_error[256];
    char last_kpi[RK_ID_MAX + 1];
    int last_fy;
    json_t *last_event;
};

static void on_row(void *arg, long line, const void *event, size_t len, const char *error)
{
    struct seen *s = arg;
    struct rk_event_info info;
    struct rk_verror err;
    s->rows++;
    if (error) {
        s->errors++;
        s->last_error_line = line;
        snprintf(s->last_error, sizeof s->last_error, "%s", error);
        return;
    }
    if (rk_event_validate(event, len, 0, &info, &err) != RK_V_OK) {
        fprintf(stderr, "line %ld: %s\n", line, err.message);
        s->invalid++;
        return;
    }
    snprintf(s->last_kpi, sizeof s->last_kpi, "%s", info.kpi_id);
    s->last_fy = info.fiscal_year;
    json_decref(s->last_event);
    s->last_event = rk_msgpack_to_json(event, len);
}

static int read_file(const char *name, struct seen *s)
{
    char path[512], why[256];
    FILE *f;
    RK_CHECK(rk_test_shared(name, path, sizeof path) != NULL);
    f = fopen(path, "r");
    RK_CHECK(f != NULL);
    if (!f)
        return -1;
    int rc = rk_kpi_csv_read(f, 1771291326000000000LL, on_row, s, why, sizeof why);
    fclose(f);
    return rc;
}

static int read_text(const char *text, struct seen *s, char *why, size_t why_len)
{
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    int rc = rk_kpi_csv_read(f, 1771291326000000000LL, on_row, s, why, why_len);
    fclose(f);
    return rc;
}

static void test_shared_samples_all_valid(void)
{
    struct seen s = {0};
    RK_CHECK(read_file("kpi_samples.csv", &s) == 0);
    RK_CHECK(s.rows == 7);
    RK_CHECK(s.errors == 0 && s.invalid == 0);
    json_decref(s.last_event);
}

static void test_synthetic_updates_all_valid(void)
{
    struct seen s = {0};
    RK_CHECK(read_file("kpi_updates_synthetic.csv", &s) == 0);
    RK_CHECK(s.rows == 25);
    RK_CHECK(s.errors == 0 && s.invalid == 0);
    json_decref(s.last_event);
}

static const char header[] =
    "kpi_id,city_code,policy_area_code,kpi_name,unit,aggregation,baseline_value,baseline_fy,"
    "target_value,target_fy,target_fy_from,current_value,current_fy,note\n";

static void test_decimal_and_cumulative_values(void)
{
    char text[1024], why[256];
    struct seen s = {0};
    snprintf(text, sizeof text, "%sKPI-282014-101,282014,u.B.e,\"平均, 分\",分,annual_average,"
             "39.8,2019,30,2025,2021,35.5,2023,\"quoted \"\"note\"\"\"\n", header);
    RK_CHECK(read_text(text, &s, why, sizeof why) == 0);
    RK_CHECK(s.errors == 0 && s.invalid == 0);
    RK_CHECK_STR(s.last_kpi, "KPI-282014-101");
    RK_CHECK(s.last_fy == 2023);
    json_t *cur = json_object_get(s.last_event, "current");
    RK_CHECK(json_is_real(json_object_get(cur, "value")));
    RK_CHECK(json_real_value(json_object_get(cur, "value")) == 35.5);
    RK_CHECK(json_integer_value(json_object_get(json_object_get(s.last_event, "target"), "fy_from")) == 2021);
    RK_CHECK(json_is_integer(json_object_get(json_object_get(s.last_event, "target"), "value")));
    RK_CHECK_STR(json_string_value(json_object_get(s.last_event, "name")), "平均, 分");
    RK_CHECK_STR(json_string_value(json_object_get(s.last_event, "note")), "quoted \"note\"");
    json_decref(s.last_event);
}

static void test_bad_rows_named_and_others_kept(void)
{
    char text[2048], why[256];
    struct seen s = {0};
    snprintf(text, sizeof text,
             "%s"
             "KPI-271004-101,271004,a.b,ok,人,annual,1,2019,2,2025,,3,2023,\n"
             "KPI-271004-102,271004,a.b,bad,人,annual,1,2019,2,2025,,abc,2023,\n"
             "KPI-271004-103,271004,a.b,ok,人,annual,1,2019,2,2025,,3,2023,\n",
             header);
    RK_CHECK(read_text(text, &s, why, sizeof why) == 0);
    RK_CHECK(s.rows == 3);
    RK_CHECK(s.errors == 1);
    RK_CHECK(s.last_error_line == 3);
    RK_CHECK(strstr(s.last_error, "current_value") != NULL);
    RK_CHECK(strstr(s.last_error, "abc") != NULL);
    json_decref(s.last_event);
}

static void test_missing_column_refuses_file(void)
{
    char why[256];
    struct seen s = {0};
    RK_CHECK(read_text("kpi_id,city_code\nKPI-1,271004\n", &s, why, sizeof why) == -1);
    RK_CHECK(strstr(why, "policy_area_code") != NULL);
    RK_CHECK(s.rows == 0);
    RK_CHECK(read_text("", &s, why, sizeof why) == -1);
    RK_CHECK(strstr(why, "empty") != NULL);
}

static void test_empty_required_field(void)
{
    char text[1024], why[256];
    struct seen s = {0};
    snprintf(text, sizeof text, "%sKPI-271004-101,271004,a.b,,人,annual,1,2019,2,2025,,3,2023,\n", header);
    RK_CHECK(read_text(text, &s, why, sizeof why) == 0);
    RK_CHECK(s.errors == 1);
    RK_CHECK(strstr(s.last_error, "kpi_name") != NULL);
}

/* JSON lines: the same columns as keys, numbers as numbers or text; a bad
 * line is reported with its number and the rest still come. */
static void test_json_lines(void)
{
    static const char text[] =
        "{\"kpi_id\":\"KPI-282014-101\",\"city_code\":\"282014\",\"policy_area_code\":\"u.B.e\","
        "\"kpi_name\":\"平均\",\"unit\":\"分\",\"aggregation\":\"annual_average\","
        "\"baseline_value\":39.8,\"baseline_fy\":2019,\"target_value\":\"30\",\"target_fy\":2025,"
        "\"current_value\":35.5,\"current_fy\":2023,\"extra\":[1]}\n"
        "\n"
        "not json\n"
        "{\"kpi_id\":\"KPI-282014-102\",\"city_code\":\"282014\",\"policy_area_code\":\"u.B.e\","
        "\"kpi_name\":true}\n"
        "{\"kpi_id\":\"KPI-282014-103\",\"city_code\":\"282014\",\"policy_area_code\":\"u.B.e\","
        "\"kpi_name\":\"x\",\"unit\":\"分\",\"aggregation\":\"annual\",\"baseline_value\":1,"
        "\"baseline_fy\":2019,\"target_value\":2,\"target_fy\":2025,\"current_value\":3}\n";
    char why[256];
    struct seen s = {0};
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    RK_CHECK(rk_kpi_jsonl_read(f, 1771291326000000000LL, on_row, &s, why, sizeof why) == 0);
    fclose(f);
    RK_CHECK(s.rows == 4 && s.invalid == 0);
    RK_CHECK(s.errors == 3);
    RK_CHECK(s.last_error_line == 5);
    RK_CHECK(strstr(s.last_error, "current_fy") != NULL);
    RK_CHECK_STR(s.last_kpi, "KPI-282014-101");
    json_t *cur = json_object_get(s.last_event, "current");
    RK_CHECK(json_real_value(json_object_get(cur, "value")) == 35.5);
    RK_CHECK(json_integer_value(json_object_get(json_object_get(s.last_event, "target"), "value")) == 30);
    json_decref(s.last_event);
}

/* A BOM goes; CP932 bytes (人 is 0x90 0x6c) become UTF-8 when detected or
 * named; bytes that are neither are refused with their line. */
static void test_decode(void)
{
    static const char bom[] = "\xef\xbb\xbfkpi_id\n";
    static const char sjis[] = "unit\n\x90\x6c\n";
    char *out = NULL, why[256];
    size_t len = 0;
    const char *used = NULL;
    enum rk_kpi_encoding e;
    RK_CHECK(rk_kpi_decode(bom, strlen(bom), RK_KPI_AUTO, &out, &len, &used, why, sizeof why) == 0);
    RK_CHECK_STR(out, "kpi_id\n");
    RK_CHECK_STR(used, "utf-8");
    free(out);
    RK_CHECK(rk_kpi_decode(sjis, strlen(sjis), RK_KPI_AUTO, &out, &len, &used, why, sizeof why) == 0);
    RK_CHECK_STR(out, "unit\n\xe4\xba\xba\n");
    RK_CHECK_STR(used, "cp932");
    free(out);
    RK_CHECK(rk_kpi_decode(sjis, strlen(sjis), RK_KPI_UTF8, &out, &len, &used, why, sizeof why) != 0);
    RK_CHECK(strstr(why, "line 2") != NULL && strstr(why, "--encoding cp932") != NULL);
    RK_CHECK(rk_kpi_decode("a\n\xff\xff", 4, RK_KPI_AUTO, &out, &len, &used, why, sizeof why) != 0);
    RK_CHECK(strstr(why, "line 2") != NULL);
    RK_CHECK(rk_kpi_encoding_parse("CP932", &e) == 0 && e == RK_KPI_CP932);
    RK_CHECK(rk_kpi_encoding_parse("latin1", &e) != 0);
}

/* The id is the row's content and year, not its line; numbers follow ids. */
static void test_event_id_from_content(void)
{
    static const char head[] = "kpi_id,city_code,policy_area_code,kpi_name,unit,aggregation,"
        "baseline_value,baseline_fy,target_value,target_fy,current_value,current_fy\n";
    static const char row[] = "KPI-431001-001,431001,a.b,x,p,annual,1,2016,2,2020,3,2018\n";
    char text[1024], why[256], first[RK_ID_MAX + 1];
    struct seen s = {0};
    snprintf(text, sizeof text, "%s%s", head, row);
    RK_CHECK(read_text(text, &s, why, sizeof why) == 0 && s.rows == 1 && s.invalid == 0);
    snprintf(first, sizeof first, "%s",
             json_string_value(json_object_get(s.last_event, "event_id")));
    RK_CHECK(strncmp(first, "KPI-431001-001:FY2018:", 22) == 0 && strlen(first) == 38);
    snprintf(text, sizeof text, "%s\n\n%s", head, row);  /* another line, same row */
    RK_CHECK(read_text(text, &s, why, sizeof why) == 0);
    RK_CHECK_STR(json_string_value(json_object_get(s.last_event, "event_id")), first);
    snprintf(text, sizeof text, "%sKPI-431001-001,431001,a.b,x,p,annual,1,2016,2,2020,4,2018\n",
             head);
    RK_CHECK(read_text(text, &s, why, sizeof why) == 0);
    RK_CHECK(strcmp(json_string_value(json_object_get(s.last_event, "event_id")), first) != 0);
    char p1[RK_KPI_PRODUCER_MAX + 1], p2[RK_KPI_PRODUCER_MAX + 1];
    rk_kpi_row_producer("kpi-csv:0123456789abcdef0123456789abcdef", first, p1);
    rk_kpi_row_producer("kpi-csv:0123456789abcdef0123456789abcdef", first, p2);
    RK_CHECK(strcmp(p1, p2) == 0 && strlen(p1) == 57 && p1[40] == ':');
    json_decref(s.last_event);
}

int main(void)
{
    RK_RUN(test_decode);
    RK_RUN(test_event_id_from_content);
    RK_RUN(test_json_lines);
    RK_RUN(test_shared_samples_all_valid);
    RK_RUN(test_synthetic_updates_all_valid);
    RK_RUN(test_decimal_and_cumulative_values);
    RK_RUN(test_bad_rows_named_and_others_kept);
    RK_RUN(test_missing_column_refuses_file);
    RK_RUN(test_empty_required_field);
    return rk_test_result();
}
