/*
 * rk_sock - the broker's sockets: bound with its options (CURVE when it has
 * a key), and their monitors, which tell connections arriving and leaving.
 * Thread-safety: as ZeroMQ sockets, one thread per socket.
 */
#ifndef RK_SOCK_H
#define RK_SOCK_H

#include <stdint.h>

/* Socket options of one of the broker's sockets. */
struct rk_sock_options {
    int type;                 /* ZMQ_ROUTER, ZMQ_XPUB */
    int hwm;                  /* send (and receive) high-water mark, messages */
    int64_t max_message;      /* a larger frame drops the peer unread; 0 = none */
    int xpub_manual;          /* XPUB: subscriptions pass only when we pass them */
    const char *curve_secret; /* Z85 secret key; NULL or "" = plain */
};

/* A socket of zctx with `opt`, bound to `endpoint`; `role` names it in the
 * log line of a failed bind. NULL on failure, after that line. */
void *rk_sock_bind(void *zctx, const char *endpoint, const struct rk_sock_options *opt,
                   const char *role);

/* A PAIR socket that hears `sock`'s connections arrive and leave, through
 * the inproc endpoint `name` (unique in zctx). */
void *rk_sock_monitor(void *zctx, void *sock, const char *name);

/* Stops `sock`'s monitor and closes it; *mon becomes NULL. */
void rk_sock_monitor_close(void *sock, void **mon);

/* The connections that came (+) and went (-) since the last call: drains
 * the monitor without waiting, logging each change as connection_opened
 * or connection_closed with socket=`role` (static text) and the peer's
 * address=IP:PORT; a flapping client's changes beyond 8 per socket in
 * 10 s are summed (connections_summed). Main thread only (all monitors). */
int64_t rk_sock_monitor_drain(void *mon, const char *role);

/* Logs the summed changes when the interval is over (or now, `force`).
 * Main thread. */
void rk_sock_log_flush(int64_t now_ns, int force);

#endif
