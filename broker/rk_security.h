/*
 * rk_security - who may talk to the broker: its CURVE key, the ACL of
 * client keys and what each may do, the ZAP handler that checks every
 * handshake, and the rule that plain sockets stay on loopback.
 *
 * Without a key the broker runs plain; that is refused for an endpoint off
 * loopback unless insecure_no_curve says otherwise. A key needs an ACL and
 * an ACL needs a key. Every refusal is logged with what to do.
 * Thread-safety: the broker's loop thread; the ACL slot itself is
 * thread-safe (rk_acl.h).
 */
#ifndef RK_SECURITY_H
#define RK_SECURITY_H

#include "rk_acl.h"
#include "rk_broker.h"

struct rk_security;

/* Reads the key and the ACL of `cfg` and starts ZAP on zctx, before any
 * socket is bound. Returns 0 or an error (rk_err.h: EINVAL for a setting
 * that is refused, EACCES/ENOENT for files), after logging why. *out is
 * NULL then; rk_security_close it either way. */
int rk_security_open(struct rk_security **out, void *zctx, const struct rk_broker_config *cfg);

void rk_security_close(struct rk_security **sp);

/* 1 when a plain socket may bind `ep` (ipc, inproc, loopback TCP). */
int rk_security_endpoint_is_local(const char *ep);

/* The broker's secret key in Z85, or NULL when it runs plain. */
const char *rk_security_secret(const struct rk_security *s);

/* The current ACL's slot, or NULL when it runs plain. */
struct rk_acl_slot *rk_security_acl(const struct rk_security *s);

/* SIGHUP: reads the ACL file again. A file that does not load leaves the
 * previous ACL (logged). *shrunk is 1 when some key may now subscribe to
 * less than before, so live subscriptions must be made again. Returns 0
 * (also with no ACL to reload), or rk_acl_load's error when the file did
 * not load. */
int rk_security_reload(struct rk_security *s, int *shrunk);

#endif
