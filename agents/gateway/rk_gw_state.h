/*
 * rk_gw_state - the broker's request state (PROTOCOL.md 3.6, "state" on
 * the replay socket), asked by the gateway over its own DEALER.
 *
 * The client library has no function for "state" yet; this module is the
 * gateway's only user of it, written on proto/rk_wire, so that when the
 * library grows one, this pair is replaced and nothing else changes.
 *
 * Answers are JSON (jansson) in the wire's own shape: one object per
 * request with request_id, requester, resource, unit, urgency, data_class,
 * version, quantity, accepted, dispatched, fulfilled, in_transit, state and
 * offers. A lost answer (the broker restarted in between) is asked again on
 * a new connection, so a broker restart costs a retry, not an error.
 *
 * Threads: one thread at a time per object (the gateway's follower).
 */
#ifndef RK_GW_STATE_H
#define RK_GW_STATE_H

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "renkei.h"

struct rk_gw_state;

/* Connects to the replay `endpoint` with the keys of `o` (NULL: plain) on
 * `zctx` (owned by the caller, outliving the object). `timeout_ms` is how
 * long one answer may take before it is asked again on a new connection.
 * Returns 0, or EINVAL (bad endpoint or keys) with nothing allocated. */
int rk_gw_state_open(void *zctx, const char *endpoint, const struct rk_client_options *o,
                     int timeout_ms, struct rk_gw_state **out);
void rk_gw_state_close(struct rk_gw_state **sp);

/* Called for each request taken; `req` is borrowed (incref to keep it).
 * `seq` is the sequence the request's state is that after. */
typedef void (*rk_gw_state_fn)(void *arg, json_t *req, uint64_t seq);

/* Every request, in pages of 1000. Returns 0, ETIMEDOUT after `tries`
 * unanswered attempts of one page, ECANCELED (rk_gw_state_cancel_on), or
 * EPROTO when the broker refused (its
 * "<code>: <message>" in rk_gw_state_error). *min_seq gets the smallest
 * seq of the pages (0 for an empty log): every event up to it is in. */
int rk_gw_state_all(struct rk_gw_state *s, int tries, rk_gw_state_fn fn, void *arg,
                    uint64_t *min_seq);

/* The requests named in ids[0..n), asked all at once (one "state" with a
 * request_id filter each, pipelined) and answered through `fn`; a request
 * the broker does not know is skipped. Same returns as rk_gw_state_all. */
int rk_gw_state_some(struct rk_gw_state *s, const char *const *ids, size_t n, int tries,
                     rk_gw_state_fn fn, void *arg);

/* A flag another thread sets to give up: a call waiting for the broker
 * then returns ECANCELED within 100 ms. NULL: none. */
void rk_gw_state_cancel_on(struct rk_gw_state *s, const atomic_int *flag);

/* Text of the last failure, or "". */
const char *rk_gw_state_error(const struct rk_gw_state *s);

#endif
