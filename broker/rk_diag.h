/*
 * rk_diag - the broker's and tools' own log lines, one per event of
 * interest, on stderr in logfmt: `ts=... level=info msg=ready key=value ...`.
 *
 * RK_DIAG checks the level before formatting anything, so a disabled line
 * costs one comparison. The format string holds the key=value pairs after
 * msg; values with spaces must be quoted by the caller ("why=\"%s\"").
 */
#ifndef RK_DIAG_H
#define RK_DIAG_H

#include <stdarg.h>

enum rk_diag_level { RK_DIAG_ERROR, RK_DIAG_WARN, RK_DIAG_INFO, RK_DIAG_DEBUG };

/* Lines above this level are dropped. Default RK_DIAG_INFO. */
extern enum rk_diag_level rk_diag_threshold;

#define RK_DIAG(level, msg, ...) do { \
        if ((level) <= rk_diag_threshold) \
            rk_diag_emit((level), (msg), __VA_ARGS__); \
    } while (0)

/* Writes one line: timestamp, level, msg, then the formatted pairs. */
void rk_diag_emit(enum rk_diag_level level, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Parses "error", "warn", "info" or "debug"; -1 if none of them. */
int rk_diag_parse_level(const char *name);

#endif
