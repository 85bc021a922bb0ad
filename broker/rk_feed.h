/*
 * rk_feed - the live feed: the XPUB socket subscribers connect to, the
 * subscription groups (rk_groups), and the fan-out of every stored event
 * to each group it matches, after its batch is committed.
 *
 * A subscriber over its high-water mark misses events and fills the gap
 * from replay, which each message's `prev` makes detectable; a tick tells
 * every group the log's head so a subscriber notices a missed tail.
 * The XPUB is manual: a subscription is passed on to ZeroMQ only when it
 * is a well-formed key (PROTOCOL.md 3.3) and, with an ACL, its key's
 * tenant may read every prefix of it; anything else gets nothing and is
 * logged, summed. A frame longer than the longest key with its framing
 * drops the connection before ZeroMQ stores any of it (ZMQ_MAXMSGSIZE).
 * Thread-safety: the broker's loop thread.
 */
#ifndef RK_FEED_H
#define RK_FEED_H

#include "rk_acl.h"

#include <stdint.h>
#include <zmq.h>

struct rk_feed;

/* Binds the feed on `endpoint` (CURVE with curve_secret unless NULL; with
 * `acl`, subscriptions are checked). Returns 0 or -1 after logging why;
 * rk_feed_close *out either way. */
int rk_feed_open(struct rk_feed **out, void *zctx, const char *endpoint,
                 const char *curve_secret, struct rk_acl_slot *acl);
void rk_feed_close(struct rk_feed **fp);

/* The socket to poll for subscription notices, and its monitor. Both
 * change on rk_feed_rebind. */
void *rk_feed_socket(struct rk_feed *f);
void *rk_feed_monitor(struct rk_feed *f);

/* Takes the subscription notices that wait; a new group starts at `head`,
 * the log's last seq. */
void rk_feed_notices(struct rk_feed *f, uint64_t head);

/* Relays a committed event once to each group it matches by its topic or,
 * for an aid event, its requester's code `requester` (6 digits; NULL or ""
 * for none), through the requester topic (PROTOCOL.md 3.3). The event
 * frame is shared, not copied. */
void rk_feed_relay(struct rk_feed *f, const char *topic, const char *requester,
                   zmq_msg_t *event, uint64_t seq, int64_t recv_ns);

/* As rk_feed_relay, for an event that is a slice of a bigger frame (a
 * "pubs"): copied once into a message of its own when anyone listens. */
void rk_feed_relay_bytes(struct rk_feed *f, const char *topic, const char *requester,
                         const void *event, size_t len, uint64_t seq, int64_t recv_ns);

/* The identity of the log the feed relays (rk_log_id), said in every tick
 * (PROTOCOL.md 3.7). Copied. */
void rk_feed_set_log_id(struct rk_feed *f, const char *log_id);

/* Tells every group the head, at most once per tick interval; writes the
 * summed subscription log lines that are due. */
void rk_feed_tick(struct rk_feed *f, uint64_t head, int64_t now_ns);

/* Subscriber connections that came (+) or went (-) since the last call. */
int64_t rk_feed_connections(struct rk_feed *f);

/* Closes the feed and binds it anew (after an ACL shrank): every
 * subscriber reconnects, and a revoked key is refused by ZAP. Returns 0,
 * or -1 when the endpoint cannot be bound again. */
int rk_feed_rebind(struct rk_feed *f);

#endif
