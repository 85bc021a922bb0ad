#include "rk_probe.h"
#include "rk_client.h"

#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <zmq.h>

/* The host of a tcp:// endpoint into host (empty for other transports or
 * a wildcard); "[v6]" loses its brackets. */
static void tcp_host(const char *endpoint, char *host, size_t len)
{
    host[0] = '\0';
    if (strncmp(endpoint, "tcp://", 6) != 0)
        return;
    const char *h = endpoint + 6, *end = strrchr(h, ':');
    if (!end)
        return;
    if (*h == '[' && end > h && end[-1] == ']') {
        h++;
        end--;
    }
    const char *semi = memchr(h, ';', (size_t)(end - h)); /* "src;dst": the destination */
    if (semi)
        h = semi + 1;
    size_t n = (size_t)(end - h);
    if (n >= len || (n == 1 && *h == '*'))
        return;
    memcpy(host, h, n);
    host[n] = '\0';
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The next monitor event's id and value; 0 when none came within ms. */
static uint16_t next_event(void *mon, int ms, uint32_t *value)
{
    zmq_pollitem_t item = {mon, 0, ZMQ_POLLIN, 0};
    zmq_msg_t ev, addr;
    uint16_t id = 0;
    if (zmq_poll(&item, 1, ms) <= 0)
        return 0;
    zmq_msg_init(&ev);
    zmq_msg_init(&addr);
    if (zmq_msg_recv(&ev, mon, 0) >= 0 && zmq_msg_size(&ev) >= 6) {
        memcpy(&id, zmq_msg_data(&ev), 2);
        memcpy(value, (char *)zmq_msg_data(&ev) + 2, 4);
    }
    if (zmq_msg_more(&ev))
        zmq_msg_recv(&addr, mon, 0);
    zmq_msg_close(&ev);
    zmq_msg_close(&addr);
    return id;
}

/* Reads the monitor until a decisive event or the deadline. */
static enum rk_probe_result watch(void *mon, int wait_ms, uint32_t *status)
{
    int64_t deadline = now_ms() + wait_ms;
    int connected = 0, retried = 0;
    for (int64_t left; (left = deadline - now_ms()) > 0;) {
        uint32_t value = 0;
        switch (next_event(mon, (int)left, &value)) {
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
            *status = value;
            return RK_PROBE_KEY_REFUSED;
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
            return RK_PROBE_HANDSHAKE;
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
            return RK_PROBE_OK;
        case ZMQ_EVENT_CONNECTED:
            connected = 1;
            break;
        case ZMQ_EVENT_CONNECT_RETRIED:
            if (!connected && ++retried >= 2)
                return RK_PROBE_NOTHING_LISTENS;
            break;
        default:
            break;
        }
    }
    return connected || !retried ? RK_PROBE_SILENT : RK_PROBE_NOTHING_LISTENS;
}

static enum rk_probe_result run(const char *endpoint, int type, const struct rk_client_keys *k,
                                int wait_ms, uint32_t *status)
{
    enum rk_probe_result r = RK_PROBE_ERROR;
    char name[64];
    int linger = 0, ivl = 100;
    void *ctx = zmq_ctx_new(), *s = ctx ? zmq_socket(ctx, type) : NULL, *mon = NULL;
    snprintf(name, sizeof name, "inproc://rk-probe-%p", (void *)s);
    if (!s || zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl) != 0 ||
        rk_client_keys_apply(k, s) != 0 || zmq_socket_monitor(s, name, ZMQ_EVENT_ALL) != 0)
        goto out;
    if (!(mon = zmq_socket(ctx, ZMQ_PAIR)) || zmq_connect(mon, name) != 0 ||
        zmq_connect(s, endpoint) != 0)
        goto out;
    r = watch(mon, wait_ms, status);
out:
    if (s)
        zmq_socket_monitor(s, NULL, 0);
    if (mon)
        zmq_setsockopt(mon, ZMQ_LINGER, &linger, sizeof linger), zmq_close(mon);
    if (s)
        zmq_close(s);
    if (ctx)
        zmq_ctx_term(ctx);
    return r;
}

enum rk_probe_result rk_probe(const char *endpoint, int zmq_type,
                              const struct rk_client_options *o, const char *option,
                              int timeout_ms, int wait_ms, char *why, size_t why_len)
{
    struct rk_client_keys k;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    char host[256], err[300];
    uint32_t status = 0;
    enum rk_probe_result r;
    tcp_host(endpoint, host, sizeof host);
    if (host[0]) {
        int gai = getaddrinfo(host, NULL, &hints, &ai);
        if (ai)
            freeaddrinfo(ai);
        if (gai != 0) {
            snprintf(why, why_len, "%s %s: unknown host \"%s\" (%s); check the name, or give "
                     "the broker's address, e.g. tcp://192.0.2.10:7701", option, endpoint,
                     host, gai_strerror(gai));
            return RK_PROBE_UNKNOWN_HOST;
        }
    }
    if (rk_client_keys_load(o, &k, err, sizeof err) != 0) {
        snprintf(why, why_len, "%s", err);
        return RK_PROBE_ERROR;
    }
    r = run(endpoint, zmq_type, &k, wait_ms, &status);
    switch (r) {
    case RK_PROBE_KEY_REFUSED:
        snprintf(why, why_len, "the broker at %s refused this client's key (ZAP status %u): "
                 "its public key %s is not in the broker's ACL (or was revoked); ask the "
                 "broker's administrator to add it to a tenant's key lines and reload "
                 "(systemctl reload renkei-broker)", endpoint, (unsigned)status, k.public);
        break;
    case RK_PROBE_HANDSHAKE:
        if (k.on)
            snprintf(why, why_len, "the CURVE handshake with %s failed: --broker-key is not "
                     "the key of the broker there (compare it with public_key= in the "
                     "broker's msg=curve log line, or its broker.pub), or that broker runs "
                     "without CURVE", endpoint);
        else
            snprintf(why, why_len, "the broker at %s speaks CURVE: give --broker-key "
                     "(its broker.pub) and --key (this client's .key from renkei-keys)",
                     endpoint);
        break;
    case RK_PROBE_NOTHING_LISTENS:
        snprintf(why, why_len, "nothing listens at %s (connection refused): is renkei-broker "
                 "running there (systemctl status renkei-broker), and is %s its endpoint?",
                 endpoint, option);
        break;
    case RK_PROBE_SILENT:
        snprintf(why, why_len, "%s accepted the connection but never answered within %d ms: "
                 "is it a renkei-broker (the port of another service?), or is the broker "
                 "stuck? Check %s and the broker's log", endpoint, timeout_ms + wait_ms,
                 option);
        break;
    case RK_PROBE_OK:
        snprintf(why, why_len, "the broker at %s accepts this client but did not answer "
                 "within %d ms: it may be busy or stopping; try again, or give a larger "
                 "--timeout", endpoint, timeout_ms);
        break;
    default:
        snprintf(why, why_len, "no answer from %s within %d ms", endpoint, timeout_ms);
        break;
    }
    rk_client_keys_wipe(&k);
    return r;
}
