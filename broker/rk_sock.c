#include "rk_sock.h"
#include "rk_diag.h"
#include "rk_zap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

void *rk_sock_bind(void *zctx, const char *endpoint, const struct rk_sock_options *opt,
                   const char *role)
{
    void *s = zmq_socket(zctx, opt->type);
    int linger = 2000, on = 1;
    if (!s)
        return NULL;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_SNDHWM, &opt->hwm, sizeof opt->hwm);
    if (opt->type == ZMQ_ROUTER)
        zmq_setsockopt(s, ZMQ_RCVHWM, &opt->hwm, sizeof opt->hwm);
    if (opt->max_message)
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &opt->max_message, sizeof opt->max_message);
    if (opt->xpub_manual)
        zmq_setsockopt(s, ZMQ_XPUB_MANUAL, &on, sizeof on);
    if (opt->curve_secret && opt->curve_secret[0] &&
        rk_zap_curve_server(s, opt->curve_secret) != 0) {
        zmq_close(s);
        return NULL;
    }
    if (zmq_bind(s, endpoint) != 0) {
        RK_DIAG(RK_DIAG_ERROR, "bind_failed", "role=%s endpoint=%s why=\"%s\"", role, endpoint,
                zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    return s;
}

void *rk_sock_monitor(void *zctx, void *sock, const char *name)
{
    void *m;
    if (zmq_socket_monitor(sock, name, ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) != 0 ||
        !(m = zmq_socket(zctx, ZMQ_PAIR)) || zmq_connect(m, name) != 0)
        abort(); /* inproc in our own context: cannot fail but for a bug */
    return m;
}

void rk_sock_monitor_close(void *sock, void **mon)
{
    if (!*mon)
        return;
    zmq_socket_monitor(sock, NULL, 0);
    zmq_close(*mon);
    *mon = NULL;
}

/* One monitor event: +1 for a connection accepted, -1 for one gone, 0
 * for anything else; *got 0 when nothing waited. */
static int monitor_event(void *m, int *got)
{
    zmq_msg_t ev, addr;
    uint16_t id = 0;
    zmq_msg_init(&ev);
    zmq_msg_init(&addr);
    *got = zmq_msg_recv(&ev, m, ZMQ_DONTWAIT) >= 0;
    if (*got && zmq_msg_size(&ev) >= 2)
        memcpy(&id, zmq_msg_data(&ev), 2);
    if (*got && zmq_msg_more(&ev))
        zmq_msg_recv(&addr, m, 0);
    zmq_msg_close(&ev);
    zmq_msg_close(&addr);
    return id == ZMQ_EVENT_ACCEPTED ? 1 : id == ZMQ_EVENT_DISCONNECTED ? -1 : 0;
}

int64_t rk_sock_monitor_drain(void *mon)
{
    int64_t d = 0;
    int got = 1;
    while (mon && got)
        d += monitor_event(mon, &got);
    return d;
}
