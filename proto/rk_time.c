#include "rk_time.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : mdays[m - 1];
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (the era-based method: no tables, exact for every year we accept). */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* "YYYY-MM-DD?hh:mm:ss" is 19 bytes; the fraction and offset follow. */
static int parse_fields(const char *s, size_t len, int f[6])
{
    if (len < 20 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':')
        return -1;
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
        return -1;
    if (digits(s, 4, &f[0]) || digits(s + 5, 2, &f[1]) || digits(s + 8, 2, &f[2]) ||
        digits(s + 11, 2, &f[3]) || digits(s + 14, 2, &f[4]) || digits(s + 17, 2, &f[5]))
        return -1;
    if (f[1] < 1 || f[1] > 12 || f[2] < 1 || f[2] > days_in_month(f[0], f[1]))
        return -1;
    if (f[3] > 23 || f[4] > 59 || f[5] > 59)
        return -1;
    return 0;
}

int rk_time_parse(const char *s, size_t len, int64_t *ns)
{
    int f[6];
    if (parse_fields(s, len, f))
        return -1;
    size_t i = 19;
    int64_t frac = 0;
    if (s[i] == '.') {
        size_t start = ++i;
        int64_t scale = 100000000;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            frac += (s[i] - '0') * scale; /* digits past 1 ns are dropped */
            scale /= 10;
            i++;
        }
        if (i == start || i - start > 18)
            return -1;
    }
    if (i >= len)
        return -1;
    int offset_min = 0;
    if (s[i] == 'Z' || s[i] == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        int oh, om;
        if (len - i != 6 || s[i + 3] != ':' || digits(s + i + 1, 2, &oh) ||
            digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        offset_min = (oh * 60 + om) * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return -1;
    }
    if (i != len)
        return -1;
    int64_t secs = days_from_civil(f[0], f[1], f[2]) * 86400 + f[3] * 3600 + f[4] * 60 +
                   f[5] - (int64_t)offset_min * 60;
    /* Nanoseconds in 64 bits end in 2262 (and begin in 1677). */
    if (secs >= INT64_MAX / RK_NS_PER_SEC || secs <= INT64_MIN / RK_NS_PER_SEC)
        return -1;
    *ns = secs * RK_NS_PER_SEC + frac;
    return 0;
}

/* Inverse of days_from_civil. */
static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

void rk_time_format(int64_t ns, char *out)
{
    int64_t secs = ns / RK_NS_PER_SEC, rem = ns % RK_NS_PER_SEC;
    if (rem < 0) {
        rem += RK_NS_PER_SEC;
        secs--;
    }
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    char text[64]; /* roomier than needed, so the compiler can see no truncation */
    snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", y % 10000, m, d,
             (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60), (int)(rem / 1000));
    memcpy(out, text, RK_TIME_TEXT_MAX - 1); /* 27 characters and the NUL fit */
    out[RK_TIME_TEXT_MAX - 1] = '\0';
}

int64_t rk_time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * RK_NS_PER_SEC + ts.tv_nsec;
}
