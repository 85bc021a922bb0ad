/*
 * rk_zap - the broker's ZeroMQ authentication handler (ZAP, RFC 27).
 *
 * libzmq asks it about every CURVE handshake on the broker's sockets: the
 * client's public key is accepted when the current ACL lists it, and its
 * Z85 text becomes the connection's User-Id, which the broker reads on
 * every message to know whose key sent it. A key the ACL does not list is
 * refused before any message passes, and the refusal is logged (at most
 * once a second per reason, with a count).
 *
 * Runs in its own thread on the broker's ZeroMQ context; start it before
 * binding the sockets it guards.
 */
#ifndef RK_ZAP_H
#define RK_ZAP_H

#include <stdint.h>

#include "rk_acl.h"

struct rk_zap;

/* Returns 0, or -1 with errno. */
int rk_zap_start(struct rk_zap **out, void *zctx, struct rk_acl_slot *acl);
void rk_zap_stop(struct rk_zap **zp);

/* Makes `socket` (not yet bound) a CURVE server with the broker's secret
 * key (Z85) whose handshakes go to the ZAP handler. Returns 0 or -1 with
 * errno. */
int rk_zap_curve_server(void *socket, const char *secret_key);

/* Handshakes refused so far. */
uint64_t rk_zap_refused(const struct rk_zap *z);

#endif
