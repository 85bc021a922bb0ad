#include "rk_toolopt.h"

#include <stdio.h>
#include <string.h>

int rk_toolopt_keys(const char *prog, const char *broker_key, const char *key,
                    struct rk_client_options *o)
{
    char why[400];
    if (!broker_key != !key) {
        fprintf(stderr, "%s: --broker-key and --key go together: CURVE needs the broker's "
                "public key and this client's secret key\n", prog);
        return -1;
    }
    o->broker_key = broker_key;
    o->client_key = key;
    if (rk_client_check(o, why, sizeof why) != 0) {
        fprintf(stderr, "%s: %s\n", prog, why);
        return -1;
    }
    return 0;
}

int rk_toolopt_endpoint(const char *prog, const char *opt, const char *endpoint)
{
    if (strstr(endpoint, "://"))
        return 0;
    fprintf(stderr, "%s: %s %s: no transport; write tcp://%s (or ipc:///path for a Unix "
            "socket)\n", prog, opt, endpoint, endpoint);
    return -1;
}

static int plain_word(const char *w)
{
    return *w && strspn(w, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                           "-_./:@%+=,") == strlen(w);
}

char *rk_toolopt_shell_line(char *buf, size_t len, const char *const *words)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; words[i] && used + 8 < len; i++) {
        const char *w = words[i];
        if (i)
            buf[used++] = ' ';
        if (plain_word(w)) {
            used += (size_t)snprintf(buf + used, len - used, "%s", w);
        } else {
            buf[used++] = '\'';
            for (; *w && used + 5 < len; w++) {
                if (*w == '\'') {   /* 'it'\''s' */
                    memcpy(buf + used, "'\\''", 4);
                    used += 4;
                } else {
                    buf[used++] = *w;
                }
            }
            buf[used++] = '\'';
            buf[used] = '\0';
        }
        if (used >= len)
            used = len - 1;
    }
    buf[used < len ? used : len - 1] = '\0';
    return buf;
}
