/*
 * rk_diag - the broker's and tools' own log lines, one per event of
 * interest, on stderr in logfmt: `ts=... level=info msg=ready key=value ...`.
 *
 * RK_DIAG checks the level before formatting anything, so a disabled line
 * costs one comparison. The format string holds the key=value pairs after
 * msg. A value that is not a number or a word of our own goes in double
 * quotes; one that holds bytes from outside (a client's, a file's, a
 * message that quotes them) goes through rk_diag_quote, which escapes it so
 * that no value can end its quotes early, forge a key or start a new line:
 *     RK_DIAG(RK_DIAG_WARN, "x_refused", "why=%s", rk_diag_quote(q, sizeof q, s, n));
 * As a last line, rk_diag_emit escapes (rk_text) any control byte or
 * invalid UTF-8 that still reaches it, so a line is always one line of
 * valid UTF-8; that keeps the log readable, not unambiguous: quote.
 */
#ifndef RK_DIAG_H
#define RK_DIAG_H

#include <stdarg.h>
#include <stddef.h>

enum rk_diag_level { RK_DIAG_ERROR, RK_DIAG_WARN, RK_DIAG_INFO, RK_DIAG_DEBUG };

/* Lines above this level are dropped. Default RK_DIAG_INFO. */
extern enum rk_diag_level rk_diag_threshold;

#define RK_DIAG(level, msg, ...) do { \
        if ((level) <= rk_diag_threshold) \
            rk_diag_emit((level), (msg), __VA_ARGS__); \
    } while (0)

/* Writes one line: timestamp, level, msg, then the formatted pairs.
 * Thread-safe: one write per line, so lines of threads do not interleave. */
void rk_diag_emit(enum rk_diag_level level, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The `len` bytes at `src` (any bytes) as one logfmt value in `dst`
 * (capacity `cap`, at least 3): between double quotes, `"` as \", `\` as
 * \\, and each byte of a control character, NUL or invalid UTF-8 as \xHH
 * (rk_text.h). A value that does not fit is cut between two characters,
 * and the quotes still close. Returns dst, for use as a printf argument;
 * RK_TEXT_SIZE(len) + 2 bytes always suffice. Thread-safe. */
const char *rk_diag_quote(char *dst, size_t cap, const void *src, size_t len);

/* Parses "error", "warn", "info" or "debug"; -1 if none of them. */
int rk_diag_parse_level(const char *name);

#endif
