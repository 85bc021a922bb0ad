#include "rk_client.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

static int refuse(struct rk_client_keys *k, char *why, size_t why_len, const char *what,
                  const char *reason)
{
    if (why && why_len)
        snprintf(why, why_len, "%s%s", what, reason);
    rk_client_keys_wipe(k);
    errno = EINVAL;
    return -1;
}

int rk_client_keys_load(const struct rk_client_options *o, struct rk_client_keys *k,
                        char *why, size_t why_len)
{
    char err[300];
    memset(k, 0, sizeof *k);
    if (!o || (!o->broker_key && !o->client_key))
        return 0;
    if (!o->broker_key || !o->client_key)
        return refuse(k, why, why_len, "broker_key and client_key go together: CURVE needs "
                      "the broker's public key and this client's secret key", "");
    if (rk_keys_resolve(o->broker_key, k->server, err, sizeof err) != 0)
        return refuse(k, why, why_len, "broker key: ", err);
    /* a secret key file, checked as one: a .pub given here would make the
     * client someone nobody listed, refused by the broker with no word */
    if (rk_keys_valid(o->client_key))
        memcpy(k->secret, o->client_key, RK_KEY_Z85_LEN + 1);
    else if (rk_keys_read_secret(o->client_key, k->secret, err, sizeof err) != 0)
        return refuse(k, why, why_len, "own key: ", err);
    if (rk_keys_public_of(k->secret, k->public) != 0)
        return refuse(k, why, why_len, "own key: ", "not a key");
    k->on = 1;
    return 0;
}

int rk_client_check(const struct rk_client_options *o, char *why, size_t why_len)
{
    struct rk_client_keys k;
    int rc = rk_client_keys_load(o, &k, why, why_len);
    rk_client_keys_wipe(&k);
    return rc;
}

int rk_client_keys_apply(const struct rk_client_keys *k, void *socket)
{
    if (!k->on)
        return 0;
    if (zmq_setsockopt(socket, ZMQ_CURVE_SERVERKEY, k->server, RK_KEY_Z85_LEN) != 0 ||
        zmq_setsockopt(socket, ZMQ_CURVE_PUBLICKEY, k->public, RK_KEY_Z85_LEN) != 0 ||
        zmq_setsockopt(socket, ZMQ_CURVE_SECRETKEY, k->secret, RK_KEY_Z85_LEN) != 0)
        return -1;
    return 0;
}

struct rk_client_options rk_client_keys_options(const struct rk_client_keys *k, void *zmq_ctx)
{
    struct rk_client_options o = {.zmq_ctx = zmq_ctx};
    if (k->on) {
        o.broker_key = k->server;
        o.client_key = k->secret;
    }
    return o;
}

void rk_client_keys_wipe(struct rk_client_keys *k)
{
    explicit_bzero(k, sizeof *k);
}
