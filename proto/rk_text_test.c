/* rk_text: hostile bytes in, safe and unambiguous text out. */
#include "rk_text.h"
#include "rk_test.h"

#include <stdint.h>
#include <string.h>

/* The text of `len` bytes with a roomy buffer and `flags`. */
static const char *esc(const char *s, size_t len, unsigned flags)
{
    static char buf[1024];
    rk_text_escape(buf, sizeof buf, s, len, flags);
    return buf;
}

#define E(lit) esc(lit, sizeof lit - 1, 0)

static void test_text_and_japanese_are_kept(void)
{
    RK_CHECK_STR(E("offer.quantity: 5"), "offer.quantity: 5");
    RK_CHECK_STR(E("熊本連携中枢都市圏"), "熊本連携中枢都市圏");
    RK_CHECK_STR(E("\xc2\xa0"), "\xc2\xa0");          /* U+00A0, just past the C1 block */
    RK_CHECK_STR(E("\xed\x9f\xbf"), "\xed\x9f\xbf");  /* U+D7FF, just below the surrogates */
    RK_CHECK_STR(E("\xee\x80\x80"), "\xee\x80\x80");  /* U+E000, just above them */
    RK_CHECK_STR(E("\xf0\x9f\x98\x80"), "\xf0\x9f\x98\x80"); /* U+1F600: 4 bytes */
    RK_CHECK_STR(E("\xf4\x8f\xbf\xbf"), "\xf4\x8f\xbf\xbf"); /* U+10FFFF, the last */
    RK_CHECK_STR(E("~ !\"#$%&'()*+,-./"), "~ !\"#$%&'()*+,-./");
}

static void test_controls_become_hex(void)
{
    RK_CHECK_STR(E("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
    RK_CHECK_STR(E("line\r\nfake: record"), "line\\x0d\\x0afake: record");
    RK_CHECK_STR(E("a\tb"), "a\\x09b");
    RK_CHECK_STR(E("a\x7f" "b"), "a\\x7fb");
    RK_CHECK_STR(E("bell\a"), "bell\\x07");
    RK_CHECK_STR(E("\xc2\x85" "next line"), "\\xc2\\x85next line"); /* U+0085, C1 */
    RK_CHECK_STR(E("\xc2\x80\xc2\x9f"), "\\xc2\\x80\\xc2\\x9f");    /* C1's first and last */
    RK_CHECK_STR(E("\x1b]0;title\x07"), "\\x1b]0;title\\x07");      /* OSC: sets a window title */
}

static void test_nul_in_the_middle_is_not_an_end(void)
{
    RK_CHECK_STR(esc("27\0" "1004", 7, 0), "27\\x001004");
    RK_CHECK_STR(esc("\0", 1, 0), "\\x00");
    char buf[8];
    RK_CHECK(rk_text_escape(buf, sizeof buf, NULL, 0, 0) == 0 && buf[0] == '\0');
}

static void test_invalid_utf8_becomes_hex(void)
{
    RK_CHECK_STR(E("\xff\xfe"), "\\xff\\xfe");
    RK_CHECK_STR(E("\x80"), "\\x80");                   /* a stray continuation byte */
    RK_CHECK_STR(E("\xc0\xaf"), "\\xc0\\xaf");          /* overlong '/' */
    RK_CHECK_STR(E("\xc1\xbf"), "\\xc1\\xbf");          /* overlong DEL */
    RK_CHECK_STR(E("\xe0\x80\xaf"), "\\xe0\\x80\\xaf"); /* overlong, 3 bytes */
    RK_CHECK_STR(E("\xe0\x9f\xbf"), "\\xe0\\x9f\\xbf"); /* U+07FF in 3 bytes */
    RK_CHECK_STR(E("\xf0\x80\x80\xaf"), "\\xf0\\x80\\x80\\xaf");
    RK_CHECK_STR(E("\xf0\x8f\xbf\xbf"), "\\xf0\\x8f\\xbf\\xbf"); /* U+FFFF in 4 bytes */
    RK_CHECK_STR(E("\xed\xa0\x80"), "\\xed\\xa0\\x80");  /* U+D800, a surrogate */
    RK_CHECK_STR(E("\xed\xbf\xbf"), "\\xed\\xbf\\xbf");  /* U+DFFF */
    RK_CHECK_STR(E("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80"); /* U+110000 */
    RK_CHECK_STR(E("\xf5\x80\x80\x80"), "\\xf5\\x80\\x80\\x80");
    RK_CHECK_STR(E("\xf8\x88\x80\x80\x80"), "\\xf8\\x88\\x80\\x80\\x80"); /* old 5-byte form */
}

/* A sequence cut short: each of its bytes is escaped and what follows it
 * is read afresh, so one bad byte never swallows a good character. */
static void test_truncated_sequences(void)
{
    RK_CHECK_STR(E("ab\xe7\x86"), "ab\\xe7\\x86");                    /* at the end */
    RK_CHECK_STR(E("\xf0\x9f\x98"), "\\xf0\\x9f\\x98");
    RK_CHECK_STR(E("\xe7\x86" "A"), "\\xe7\\x86A");                   /* in the middle */
    RK_CHECK_STR(E("\xe7\x86\xe7\x86\x8a"), "\\xe7\\x86熊");           /* before a good one */
    RK_CHECK_STR(E("\xc3"), "\\xc3");
}

static void test_backslash_and_quote(void)
{
    /* A literal "\x1b" typed by a client and a real ESC must not read alike. */
    RK_CHECK_STR(E("\\x1b"), "\\\\x1b");
    RK_CHECK_STR(E("\x1b"), "\\x1b");
    RK_CHECK_STR(E("C:\\temp"), "C:\\\\temp");
    RK_CHECK_STR(esc("say \"hi\"", 8, 0), "say \"hi\"");
    RK_CHECK_STR(esc("say \"hi\" \\", 10, RK_TEXT_DQUOTE), "say \\\"hi\\\" \\\\");
    /* A message whose parts were escaped already keeps its backslashes,
     * but a raw control still cannot pass. */
    RK_CHECK_STR(esc("got \"\\x1b\"\n", 11, RK_TEXT_KEEP_BACKSLASH), "got \"\\x1b\"\\x0a");
}

/* What one escape pass makes is left alone by a KEEP_BACKSLASH pass, so a
 * last line of defence does not double the escapes of a message. */
static void test_last_line_is_idempotent_on_escaped_text(void)
{
    const char raw[] = "id \"\x1b[2J\xff\\\xc2\x85 熊\"";
    char once[256], twice[256];
    rk_text_escape(once, sizeof once, raw, sizeof raw - 1, 0);
    rk_text_escape(twice, sizeof twice, once, strlen(once), RK_TEXT_KEEP_BACKSLASH);
    RK_CHECK_STR(twice, once);
}

static void test_cut_only_between_characters(void)
{
    char buf[16];
    memset(buf, '#', sizeof buf);
    RK_CHECK(rk_text_escape(buf, 0, "abc", 3, 0) == 0 && buf[0] == '#'); /* no room: no write */
    RK_CHECK(rk_text_escape(buf, 1, "abc", 3, 0) == 0 && buf[0] == '\0');
    RK_CHECK(rk_text_escape(buf, 4, "abc", 3, 0) == 3);  /* exactly full */
    RK_CHECK_STR(buf, "abc");
    RK_CHECK(rk_text_escape(buf, 3, "abc", 3, 0) == 2);
    RK_CHECK_STR(buf, "ab");
    RK_CHECK(rk_text_escape(buf, 6, "a\x1b", 2, 0) == 5); /* an escape that just fits */
    RK_CHECK_STR(buf, "a\\x1b");
    RK_CHECK(rk_text_escape(buf, 5, "a\x1b", 2, 0) == 1); /* one byte short: left out whole */
    RK_CHECK_STR(buf, "a");
    RK_CHECK(rk_text_escape(buf, 5, "a熊", 4, 0) == 4);   /* a character that just fits */
    RK_CHECK_STR(buf, "a熊");
    RK_CHECK(rk_text_escape(buf, 4, "a熊", 4, 0) == 1);
    RK_CHECK_STR(buf, "a");
    RK_CHECK(rk_text_escape(buf, 8, "\xc2\x85", 2, 0) == 0); /* C1: both escapes or none */
    RK_CHECK(rk_text_escape(buf, 9, "\xc2\x85", 2, 0) == 8);
    RK_CHECK(rk_text_escape(buf, 2, "\\", 1, 0) == 0);       /* no half of "\\" */
    RK_CHECK(rk_text_escape(buf, 3, "\\", 1, 0) == 2);
    RK_CHECK(rk_text_escape(buf, 16, "\xf0\x9f\x98\x80", 4, 0) == 4);
    RK_CHECK(rk_text_escape(buf, 4, "\xf0\x9f\x98\x80", 4, 0) == 0);
}

/* The reader's side: \\ and \xHH back to bytes. -1 for anything else
 * after a backslash, which would make the text ambiguous. */
static long unescape(const char *t, unsigned char *out)
{
    long n = 0;
    for (size_t i = 0; t[i]; n++) {
        if (t[i] != '\\') {
            out[n] = (unsigned char)t[i++];
        } else if (t[i + 1] == '\\') {
            out[n] = '\\';
            i += 2;
        } else if (t[i + 1] == 'x' && t[i + 2] && t[i + 3]) {
            char hex[3] = {t[i + 2], t[i + 3], 0};
            out[n] = (unsigned char)strtoul(hex, NULL, 16);
            i += 4;
        } else {
            return -1;
        }
    }
    return n;
}

/* The text is safe to show: valid UTF-8, no control character. */
static int safe(const char *t)
{
    const unsigned char *s = (const unsigned char *)t;
    size_t n = strlen(t);
    for (size_t i = 0; i < n;) {
        uint32_t c;
        size_t len = rk_text_utf8_char(s + i, n - i, &c);
        if (len == 0 || c < 0x20 || (c >= 0x7f && c <= 0x9f))
            return 0;
        i += len;
    }
    return 1;
}

/* Every input of one and two bytes, and many longer ones: the text is safe
 * and gives back exactly the input. */
static void test_every_short_input_round_trips(void)
{
    unsigned char in[6], back[64];
    char text[RK_TEXT_SIZE(6)];
    size_t bad = 0;
    uint32_t x = 12345;
    for (unsigned v = 0; v < 65536 + 256; v++) {
        size_t len = v < 256 ? 1 : 2;
        in[0] = (unsigned char)(v < 256 ? v : (v - 256) >> 8);
        in[1] = (unsigned char)(v - 256);
        rk_text_escape(text, sizeof text, in, len, 0);
        bad += !safe(text) || unescape(text, back) != (long)len || memcmp(back, in, len) != 0;
    }
    for (int k = 0; k < 200000; k++) {
        for (size_t i = 0; i < sizeof in; i++) {
            x = x * 1103515245u + 12345u;
            in[i] = (unsigned char)(x >> 16);
        }
        if (k % 2) /* often the start of a multibyte sequence */
            in[k % 6] = (unsigned char)(0xc0 | (x >> 8 & 0x3f));
        rk_text_escape(text, sizeof text, in, sizeof in, 0);
        bad += !safe(text) || unescape(text, back) != (long)sizeof in ||
               memcmp(back, in, sizeof in) != 0;
    }
    RK_CHECK(bad == 0);
}

/* The encoder of the standard, to judge the decoder by. */
static size_t encode(uint32_t c, unsigned char *out)
{
    if (c < 0x80) {
        out[0] = (unsigned char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (unsigned char)(0xc0 | c >> 6);
        out[1] = (unsigned char)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (unsigned char)(0xe0 | c >> 12);
        out[1] = (unsigned char)(0x80 | (c >> 6 & 0x3f));
        out[2] = (unsigned char)(0x80 | (c & 0x3f));
        return 3;
    }
    out[0] = (unsigned char)(0xf0 | c >> 18);
    out[1] = (unsigned char)(0x80 | (c >> 12 & 0x3f));
    out[2] = (unsigned char)(0x80 | (c >> 6 & 0x3f));
    out[3] = (unsigned char)(0x80 | (c & 0x3f));
    return 4;
}

/* The decoder accepts every scalar value's encoding and, among all
 * sequences of two and three bytes and all 4-byte ones with lead 0xf0..0xf7,
 * exactly those. */
static void test_decoder_accepts_exactly_utf8(void)
{
    unsigned char b[4];
    size_t wrong = 0, accepted2 = 0, accepted3 = 0, accepted4 = 0;
    for (uint32_t c = 0; c <= 0x10ffff; c++) {
        uint32_t got = 0;
        size_t n = encode(c, b);
        int scalar = c < 0xd800 || c > 0xdfff;
        size_t len = rk_text_utf8_char(b, n, &got);
        wrong += scalar ? len != n || got != c : len != 0;
        wrong += n > 1 && rk_text_utf8_char(b, n - 1, &got) != 0; /* cut short */
    }
    for (uint32_t v = 0xc000; v <= 0xffff; v++) {
        b[0] = (unsigned char)(v >> 8), b[1] = (unsigned char)v;
        accepted2 += rk_text_utf8_char(b, 2, NULL) == 2;
    }
    for (uint32_t v = 0xe00000; v <= 0xefffff; v++) {
        b[0] = (unsigned char)(v >> 16), b[1] = (unsigned char)(v >> 8), b[2] = (unsigned char)v;
        accepted3 += rk_text_utf8_char(b, 3, NULL) == 3;
    }
    for (uint32_t v = 0; v < 8u * 64 * 64 * 64; v++) { /* every continuation, lead f0..f7 */
        b[0] = (unsigned char)(0xf0 | v >> 18);
        b[1] = (unsigned char)(0x80 | (v >> 12 & 0x3f));
        b[2] = (unsigned char)(0x80 | (v >> 6 & 0x3f));
        b[3] = (unsigned char)(0x80 | (v & 0x3f));
        accepted4 += rk_text_utf8_char(b, 4, NULL) == 4;
    }
    RK_CHECK(wrong == 0);
    RK_CHECK(accepted2 == 0x800 - 0x80);
    RK_CHECK(accepted3 == 0x10000 - 0x800 - 0x800);
    RK_CHECK(accepted4 == 0x110000 - 0x10000);
    RK_CHECK(rk_text_utf8_char((const unsigned char *)"", 0, NULL) == 0);
}

int main(void)
{
    RK_RUN(test_text_and_japanese_are_kept);
    RK_RUN(test_controls_become_hex);
    RK_RUN(test_nul_in_the_middle_is_not_an_end);
    RK_RUN(test_invalid_utf8_becomes_hex);
    RK_RUN(test_truncated_sequences);
    RK_RUN(test_backslash_and_quote);
    RK_RUN(test_last_line_is_idempotent_on_escaped_text);
    RK_RUN(test_cut_only_between_characters);
    RK_RUN(test_every_short_input_round_trips);
    RK_RUN(test_decoder_accepts_exactly_utf8);
    return rk_test_result();
}
