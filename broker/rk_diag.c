#include "rk_diag.h"
#include "rk_text.h"
#include "rk_time.h"

#include <stdio.h>
#include <string.h>

enum rk_diag_level rk_diag_threshold = RK_DIAG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

#define LINE_MAX_BYTES 1024

void rk_diag_emit(enum rk_diag_level level, const char *msg, const char *fmt, ...)
{
    char ts[RK_TIME_TEXT_MAX], line[LINE_MAX_BYTES], safe[RK_TEXT_SIZE(LINE_MAX_BYTES)];
    va_list ap;
    int n;

    rk_time_format(rk_time_now(), ts);
    n = snprintf(line, sizeof line, "ts=%s level=%s msg=%s ", ts, level_names[level], msg);
    if (n < 0 || (size_t)n >= sizeof line)
        n = 0;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* A value a caller forgot to quote must still not split the line or
     * send a terminal escape to whoever tails the log. Quoted values have
     * no raw control left, and their backslashes stay as they are. */
    rk_text_escape(safe, sizeof safe, line, strlen(line), RK_TEXT_KEEP_BACKSLASH);
    /* One write per line, so lines from threads do not interleave. */
    fprintf(stderr, "%s\n", safe);
}

const char *rk_diag_quote(char *dst, size_t cap, const void *src, size_t len)
{
    if (cap < 3) {
        if (cap)
            dst[0] = '\0';
        return dst;
    }
    dst[0] = '"';
    size_t n = rk_text_escape(dst + 1, cap - 2, src, len, RK_TEXT_DQUOTE);
    dst[1 + n] = '"';
    dst[2 + n] = '\0';
    return dst;
}

int rk_diag_parse_level(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}
