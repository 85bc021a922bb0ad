#include "rk_cursor.h"

#include <sodium.h>
#include <string.h>

static void tag(const char *log_id, char kind, const void *pos, size_t len,
                unsigned char out[RK_CURSOR_TAG])
{
    crypto_generichash_state st;
    unsigned char key[crypto_generichash_KEYBYTES];
    /* the identity as the key, padded: a log without one ("") still tags */
    memset(key, 0, sizeof key);
    memcpy(key, log_id, strnlen(log_id, sizeof key));
    crypto_generichash_init(&st, key, sizeof key, RK_CURSOR_TAG);
    crypto_generichash_update(&st, (const unsigned char *)&kind, 1);
    crypto_generichash_update(&st, pos, len);
    crypto_generichash_final(&st, out, RK_CURSOR_TAG);
}

size_t rk_cursor_seal(const char *log_id, char kind, const void *pos, size_t len,
                      unsigned char *out)
{
    if (len == 0)
        return 0;
    memmove(out, pos, len);
    tag(log_id, kind, out, len, out + len);
    return len + RK_CURSOR_TAG;
}

int rk_cursor_open(const char *log_id, char kind, const unsigned char *cur, size_t len,
                   size_t *pos_len)
{
    unsigned char want[RK_CURSOR_TAG];
    if (len <= RK_CURSOR_TAG)
        return -1;
    tag(log_id, kind, cur, len - RK_CURSOR_TAG, want);
    if (sodium_memcmp(want, cur + len - RK_CURSOR_TAG, RK_CURSOR_TAG) != 0)
        return -1;
    *pos_len = len - RK_CURSOR_TAG;
    return 0;
}
