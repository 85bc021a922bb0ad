#include "rk_text.h"

#include <string.h>

size_t rk_text_utf8_char(const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t extra;
    uint32_t c, min;
    if (n == 0)
        return 0;
    if (s[0] < 0x80) {
        c = s[0], extra = 0, min = 0;
    } else if ((s[0] & 0xe0) == 0xc0) {
        c = s[0] & 0x1fu, extra = 1, min = 0x80;
    } else if ((s[0] & 0xf0) == 0xe0) {
        c = s[0] & 0x0fu, extra = 2, min = 0x800;
    } else if ((s[0] & 0xf8) == 0xf0) {
        c = s[0] & 0x07u, extra = 3, min = 0x10000;
    } else {
        return 0; /* a continuation byte, or 0xf8..0xff */
    }
    if (n <= extra)
        return 0;
    for (size_t k = 1; k <= extra; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (s[k] & 0x3fu);
    }
    /* An overlong form would let one character pass for another (C0 AF
     * for '/'); surrogates are not characters in UTF-8. */
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    if (cp)
        *cp = c;
    return extra + 1;
}

static int is_control(uint32_t c)
{
    return c < 0x20 || (c >= 0x7f && c <= 0x9f);
}

/* Appends \xHH for each of the `n` bytes at `s` to `piece`. */
static size_t hex_escape(char *piece, const unsigned char *s, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t k = 0; k < n; k++) {
        piece[4 * k] = '\\';
        piece[4 * k + 1] = 'x';
        piece[4 * k + 2] = digits[s[k] >> 4];
        piece[4 * k + 3] = digits[s[k] & 0xf];
    }
    return 4 * n;
}

/* The text of the one character (or the one invalid byte) the `n` bytes at
 * `s` start with, into `piece` (at least 8 bytes; not NUL-terminated).
 * Returns the piece's length; *used is the input bytes it stands for. */
static size_t one_piece(const unsigned char *s, size_t n, unsigned flags, char *piece,
                        size_t *used)
{
    uint32_t c;
    size_t len = rk_text_utf8_char(s, n, &c);
    if (len == 0) {
        *used = 1;
        return hex_escape(piece, s, 1);
    }
    *used = len;
    if (is_control(c))
        return hex_escape(piece, s, len);
    if ((c == '\\' && !(flags & RK_TEXT_KEEP_BACKSLASH)) || (c == '"' && (flags & RK_TEXT_DQUOTE))) {
        piece[0] = '\\';
        piece[1] = (char)c;
        return 2;
    }
    memcpy(piece, s, len);
    return len;
}

size_t rk_text_escape(char *dst, size_t cap, const void *src, size_t len, unsigned flags)
{
    const unsigned char *s = src;
    size_t out = 0;
    if (cap == 0)
        return 0;
    for (size_t i = 0; i < len;) {
        char piece[8];
        size_t used, n = one_piece(s + i, len - i, flags, piece, &used);
        if (n > cap - 1 - out)
            break; /* whole pieces only: no half escape, no half character */
        memcpy(dst + out, piece, n);
        out += n;
        i += used;
    }
    dst[out] = '\0';
    return out;
}
