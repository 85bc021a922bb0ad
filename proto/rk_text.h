/*
 * rk_text - any bytes as text that is safe to show: valid UTF-8 without
 * control characters, for refusal messages and log lines that quote what a
 * client sent.
 *
 * The escaping (proto/PROTOCOL.md section 5 states it for clients):
 *   - a valid UTF-8 character from U+0020 up is kept as it is, except DEL
 *     and the C1 controls below, so Japanese stays readable;
 *   - `\` becomes `\\`, so every other backslash starts an escape;
 *   - each byte of a C0 control (U+0000..U+001F: NUL, TAB, LF, CR, ESC...),
 *     of DEL (U+007F), of a C1 control (U+0080..U+009F, two bytes in UTF-8)
 *     and each byte that is not part of valid UTF-8 (a stray continuation
 *     byte, 0xc0, 0xc1, 0xf5..0xff, a sequence cut short, an overlong form,
 *     a surrogate U+D800..U+DFFF, anything above U+10FFFF) becomes \xHH,
 *     two lowercase hex digits: NUL is \x00, ESC \x1b, U+0085 \xc2\x85.
 * Each escape stands for exactly one byte of the input, so the input can
 * be recovered whole from the text (unless the text was cut).
 *
 * The text is cut, when it must be, only between two characters of the
 * input: never inside an escape or a UTF-8 sequence.
 *
 * No allocation, no global state: every function is thread-safe.
 */
#ifndef RK_TEXT_H
#define RK_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of `dst` that always hold the text of `n` input bytes, NUL
 * included: no input byte takes more than four (\xHH). */
#define RK_TEXT_SIZE(n) (4 * (size_t)(n) + 1)

/* Flags of rk_text_escape. */
enum {
    /* Also `"` as `\"`: for a value between double quotes (logfmt). */
    RK_TEXT_DQUOTE = 1,
    /* Leave `\` as it is: for a message assembled from parts escaped
     * already, which a second escape would double. Controls, NUL and
     * invalid bytes are still escaped, so the result stays safe to show;
     * a backslash that came in raw is then ambiguous, so escape client
     * bytes where they are quoted and use this only as a last line. */
    RK_TEXT_KEEP_BACKSLASH = 2,
};

/* Writes the `len` bytes at `src` (any bytes, NUL included; NULL when len
 * is 0) as escaped text into `dst`, whose capacity `cap` includes the
 * terminating NUL, with the rules above and `flags`. What does not fit is
 * left out from the first character that does not fit whole.
 * Returns the length of the text (dst is NUL-terminated when cap >= 1;
 * nothing is written when cap is 0). `src` and `dst` must not overlap. */
size_t rk_text_escape(char *dst, size_t cap, const void *src, size_t len, unsigned flags);

/* The length (1..4) of the valid UTF-8 sequence the `n` bytes at `s`
 * start with, its code point in *cp (may be NULL); 0 when they do not start
 * with one (n == 0 included). Valid means shortest form, not a surrogate,
 * at most U+10FFFF. */
size_t rk_text_utf8_char(const unsigned char *s, size_t n, uint32_t *cp);

#endif
