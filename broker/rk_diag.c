#include "rk_diag.h"
#include "rk_time.h"

#include <stdio.h>
#include <string.h>

enum rk_diag_level rk_diag_threshold = RK_DIAG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void rk_diag_emit(enum rk_diag_level level, const char *msg, const char *fmt, ...)
{
    char ts[RK_TIME_TEXT_MAX], line[1024];
    va_list ap;
    int n;

    rk_time_format(rk_time_now(), ts);
    n = snprintf(line, sizeof line, "ts=%s level=%s msg=%s ", ts, level_names[level], msg);
    if (n < 0 || (size_t)n >= sizeof line)
        n = 0;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* One write per line, so lines from threads do not interleave. */
    fprintf(stderr, "%s\n", line);
}

int rk_diag_parse_level(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}
