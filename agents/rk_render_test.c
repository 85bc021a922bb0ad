/* What people read: numbers in plain digits, times in local time, JSON
 * reals without binary noise. */
#include "rk_render.h"
#include "rk_test.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static void test_numbers(void)
{
    char b[32];
    RK_CHECK_STR(rk_render_number(1234567, b, sizeof b), "1234567");
    RK_CHECK_STR(rk_render_number(-3, b, sizeof b), "-3");
    RK_CHECK_STR(rk_render_number(12.5, b, sizeof b), "12.5");
    RK_CHECK_STR(rk_render_number(0.00001, b, sizeof b), "0.00001");
    RK_CHECK_STR(rk_render_number(53.1, b, sizeof b), "53.1");
    RK_CHECK_STR(rk_render_number(1e20, b, sizeof b), "100000000000000000000");
}

static void test_local_time(void)
{
    char b[32];
    setenv("TZ", "Asia/Tokyo", 1);
    tzset();
    rk_render_local_time(1771308000123456789LL, b, sizeof b); /* 06:00:00Z */
    RK_CHECK_STR(b, "2026-02-17 15:00:00");
    setenv("TZ", "UTC", 1);
    tzset();
    rk_render_local_time(1771308000123456789LL, b, sizeof b);
    RK_CHECK_STR(b, "2026-02-17 06:00:00");
}

static void test_json_reals(void)
{
    json_t *o = json_pack("{s:f,s:f}", "lat", 34.214059, "lon", 135.165272);
    char *s = json_dumps(o, RK_RENDER_JSON_FLAGS);
    RK_CHECK_STR(s, "{\"lat\":34.214059,\"lon\":135.165272}");
    free(s);
    json_decref(o);
}

int main(void)
{
    RK_RUN(test_numbers);
    RK_RUN(test_local_time);
    RK_RUN(test_json_reals);
    return rk_test_result();
}
