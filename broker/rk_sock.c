#include "rk_sock.h"
#include "rk_diag.h"
#include "rk_zap.h"

#include "rk_time.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <sys/socket.h>
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

/* ---- connection lines
 *
 * Each connection that comes or goes is logged with its address (the
 * monitor gives the descriptor; getpeername the peer), up to CONN_LINES
 * per socket and interval; past that a client that flaps would fill the
 * log, so the rest are summed into one connections_summed line when the
 * interval ends. The main thread drains every monitor, so this state is
 * that thread's. Descriptors are process-wide, hence one table. */
#define CONN_LINES 8
#define CONN_EVERY_NS (10 * 1000000000LL)
#define CONN_FDS 1024

struct conn_sum {
    const char *role;
    int lines;
    unsigned long long opened, closed;
};

static struct {
    int fd;
    char address[64];
} peers[CONN_FDS];
static struct conn_sum sums[4];
static int64_t conn_interval_ns;

static struct conn_sum *sum_of(const char *role)
{
    for (int i = 0; i < 4; i++)
        if (!sums[i].role || strcmp(sums[i].role, role) == 0) {
            sums[i].role = role;
            return &sums[i];
        }
    return &sums[3];
}

/* The peer of fd as "IP:PORT" into the table at accept; looked up (and
 * forgotten) when it goes, since by then the descriptor is closed. */
static const char *peer_address(int fd, int opened)
{
    static char none[] = "-";
    int slot = fd >= 0 ? fd % CONN_FDS : 0;
    if (!opened) {
        if (peers[slot].fd != fd + 1)
            return none;
        peers[slot].fd = 0;
        return peers[slot].address;
    }
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    char host[INET6_ADDRSTRLEN] = "", port[8] = "";
    if (getpeername(fd, (struct sockaddr *)&sa, &len) != 0 ||
        getnameinfo((struct sockaddr *)&sa, len, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
        return none;
    peers[slot].fd = fd + 1;
    snprintf(peers[slot].address, sizeof peers[slot].address, "%s:%s", host, port);
    return peers[slot].address;
}

void rk_sock_log_flush(int64_t now_ns, int force)
{
    if (!force && now_ns - conn_interval_ns < CONN_EVERY_NS)
        return;
    for (int i = 0; i < 4; i++) {
        struct conn_sum *c = &sums[i];
        if (c->role && (c->opened || c->closed))
            RK_DIAG(RK_DIAG_INFO, "connections_summed", "socket=%s opened=%llu closed=%llu "
                    "why=\"more than %d changes in %d s; each one not logged\"", c->role,
                    c->opened, c->closed, CONN_LINES, (int)(CONN_EVERY_NS / 1000000000LL));
        c->lines = 0;
        c->opened = c->closed = 0;
    }
    conn_interval_ns = now_ns;
}

static void log_change(const char *role, int opened, int fd)
{
    const char *address = peer_address(fd, opened);
    struct conn_sum *c = sum_of(role);
    rk_sock_log_flush(rk_time_now(), 0);
    if (c->lines < CONN_LINES) {
        c->lines++;
        RK_DIAG(RK_DIAG_INFO, opened ? "connection_opened" : "connection_closed",
                "socket=%s address=%s", role, address);
    } else if (opened) {
        c->opened++;
    } else {
        c->closed++;
    }
}

/* One monitor event: +1 for a connection accepted, -1 for one gone, 0
 * for anything else; *got 0 when nothing waited. */
static int monitor_event(void *m, const char *role, int *got)
{
    zmq_msg_t ev, addr;
    uint16_t id = 0;
    uint32_t value = 0;
    zmq_msg_init(&ev);
    zmq_msg_init(&addr);
    *got = zmq_msg_recv(&ev, m, ZMQ_DONTWAIT) >= 0;
    if (*got && zmq_msg_size(&ev) >= 6) {
        memcpy(&id, zmq_msg_data(&ev), 2);
        memcpy(&value, (char *)zmq_msg_data(&ev) + 2, 4);
    }
    if (*got && zmq_msg_more(&ev))
        zmq_msg_recv(&addr, m, 0);
    zmq_msg_close(&ev);
    zmq_msg_close(&addr);
    if (id == ZMQ_EVENT_ACCEPTED || id == ZMQ_EVENT_DISCONNECTED)
        log_change(role, id == ZMQ_EVENT_ACCEPTED, (int)value);
    return id == ZMQ_EVENT_ACCEPTED ? 1 : id == ZMQ_EVENT_DISCONNECTED ? -1 : 0;
}

int64_t rk_sock_monitor_drain(void *mon, const char *role)
{
    int64_t d = 0;
    int got = 1;
    while (mon && got)
        d += monitor_event(mon, role, &got);
    return d;
}
