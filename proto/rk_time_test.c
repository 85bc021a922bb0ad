#include "rk_time.h"
#include "rk_test.h"

#include <string.h>

static int64_t parse(const char *s)
{
    int64_t ns = -1;
    if (rk_time_parse(s, strlen(s), &ns))
        return -1;
    return ns;
}

static void test_valid(void)
{
    RK_CHECK(parse("1970-01-01T00:00:00Z") == 0);
    RK_CHECK(parse("2026-02-17T15:00:00+09:00") == 1771308000LL * RK_NS_PER_SEC);
    RK_CHECK(parse("2026-02-17T06:00:00Z") == 1771308000LL * RK_NS_PER_SEC);
    RK_CHECK(parse("2026-02-17t06:00:00z") == 1771308000LL * RK_NS_PER_SEC);
    RK_CHECK(parse("2026-02-17 05:30:00-00:30") == 1771308000LL * RK_NS_PER_SEC);
    RK_CHECK(parse("2026-02-17T06:00:00.123456789Z") == 1771308000123456789LL);
    RK_CHECK(parse("2026-02-17T06:00:00.5Z") == 1771308000500000000LL);
    RK_CHECK(parse("2024-02-29T00:00:00Z") > 0);
    RK_CHECK(parse("2000-02-29T00:00:00Z") > 0);
}

static void test_invalid(void)
{
    const char *bad[] = {
        "", "2026-02-17", "2026-02-17T06:00:00", "2026-02-17T06:00Z",
        "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z", "2026-02-30T00:00:00Z",
        "2025-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2026-02-17T24:00:00Z",
        "2026-02-17T23:60:00Z", "2016-12-31T23:59:60Z", "2026-02-17T06:00:00+0900",
        "2026-02-17T06:00:00+24:00", "2026-02-17T06:00:00.Z", "2026-02-17T06:00:00Zjunk",
        "2026-02-17X06:00:00Z", "２０２６-02-17T06:00:00Z", "2026-2-17T06:00:00Z",
        /* beyond int64 nanoseconds: found by fuzzing (a signed overflow) */
        "3182-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z",
        "2262-04-12T00:00:00Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ns;
        int rc = rk_time_parse(bad[i], strlen(bad[i]), &ns);
        if (rc != -1)
            fprintf(stderr, "accepted bad time \"%s\"\n", bad[i]);
        RK_CHECK(rc == -1);
    }
}

static void test_format_round_trip(void)
{
    char out[RK_TIME_TEXT_MAX];
    rk_time_format(1771308000123456789LL, out);
    RK_CHECK_STR(out, "2026-02-17T06:00:00.123456Z");
    rk_time_format(0, out);
    RK_CHECK_STR(out, "1970-01-01T00:00:00.000000Z");
    /* every day from 1970 to 2169 survives format -> parse */
    size_t wrong = 0;
    for (int64_t day = 0; day < 2 * 36525; day++) {
        int64_t ns = (day * 86400 + 3723) * RK_NS_PER_SEC + 456000;
        rk_time_format(ns, out);
        if (parse(out) != ns)
            wrong++;
    }
    RK_CHECK(wrong == 0);
    RK_CHECK(rk_time_now() > parse("2025-01-01T00:00:00Z"));
}

int main(void)
{
    RK_RUN(test_valid);
    RK_RUN(test_invalid);
    RK_RUN(test_format_round_trip);
    return rk_test_result();
}
