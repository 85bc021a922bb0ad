#include "rk_secure.h"
#include "rk_keys.h"

#include <stdio.h>
#include <string.h>
#include <zmq.h>

static struct {
    int on;
    char server[RK_KEY_Z85_LEN + 1], public[RK_KEY_Z85_LEN + 1], secret[RK_KEY_Z85_LEN + 1];
} curve;

int rk_secure_client(const char *broker_key, const char *my_key, char *why, size_t why_len)
{
    char server[RK_KEY_Z85_LEN + 1], secret[RK_KEY_Z85_LEN + 1], err[300];
    if (rk_keys_resolve(broker_key, server, err, sizeof err) != 0) {
        snprintf(why, why_len, "broker key: %s", err);
        return -1;
    }
    if (rk_keys_resolve(my_key, secret, err, sizeof err) != 0) {
        snprintf(why, why_len, "own key: %s", err);
        return -1;
    }
    memcpy(curve.server, server, sizeof server);
    memcpy(curve.secret, secret, sizeof secret);
    rk_keys_public_of(secret, curve.public);
    curve.on = 1;
    return 0;
}

int rk_secure_options(const char *prog, const char *broker_key, const char *my_key)
{
    char why[400];
    if (!broker_key && !my_key)
        return 0;
    if (!broker_key || !my_key) {
        fprintf(stderr, "%s: --broker-key and --key go together: CURVE needs the broker's "
                "public key and this client's secret key\n", prog);
        return -1;
    }
    if (rk_secure_client(broker_key, my_key, why, sizeof why) != 0) {
        fprintf(stderr, "%s: %s\n", prog, why);
        return -1;
    }
    return 0;
}

int rk_secure_on(void)
{
    return curve.on;
}

int rk_secure_apply(void *socket)
{
    if (!curve.on)
        return 0;
    if (zmq_setsockopt(socket, ZMQ_CURVE_SERVERKEY, curve.server, RK_KEY_Z85_LEN) != 0 ||
        zmq_setsockopt(socket, ZMQ_CURVE_PUBLICKEY, curve.public, RK_KEY_Z85_LEN) != 0 ||
        zmq_setsockopt(socket, ZMQ_CURVE_SECRETKEY, curve.secret, RK_KEY_Z85_LEN) != 0)
        return -1;
    return 0;
}
