/*
 * rk_pub - publishing to a renkei broker (client side of the ingest socket).
 *
 * A publisher is one DEALER connection. rk_pub_send() queues a publish and
 * returns at once, so many publishes can be in flight; rk_pub_recv()
 * returns their outcomes (acknowledgement or refusal) as they arrive,
 * matched by the `corr` number rk_pub_send() assigned. An acknowledged
 * event is in the broker's log: the broker acks only after its commit.
 * Every publish asks for gathered acknowledgements (PROTOCOL.md 3.2: one
 * "acks" message per commit); rk_pub_recv() hands them out one at a time,
 * so callers see one outcome per publish either way. A broker older than
 * that addition refuses such publishes with E_HEADER.
 *
 * Not thread-safe: use one rk_pub per thread.
 *
 * Errors: functions returning int give 0 (or a count) on success and -1
 * with errno set on failure; each function says which errno values mean
 * what. Nothing here exits or prints.
 */
#ifndef RK_PUB_H
#define RK_PUB_H

#include <stddef.h>
#include <stdint.h>

struct rk_pub;

/* Outcome of one publish. */
struct rk_pub_result {
    uint64_t corr;       /* as returned by rk_pub_send */
    int ok;              /* 1 = stored (seq/recv_ns set), 0 = refused (code/message set) */
    uint64_t seq;
    int64_t recv_ns;
    char code[32];       /* e.g. "E_RANGE", "E_STORAGE" */
    char message[256];   /* e.g. "offer.quantity: must be 1..10000000, got -5" */
};

/* Creates a publisher connected to `endpoint` (e.g. "tcp://127.0.0.1:7701").
 * Connecting is asynchronous: sends queue until the broker is reachable.
 * Returns 0, or -1 with errno set (EINVAL for a malformed endpoint). */
int rk_pub_new(const char *endpoint, struct rk_pub **out);

/* As rk_pub_new, for a sender that keeps order across broken connections
 * itself (the agent's outbox): the publisher makes one connection and never
 * reconnects, and queues nothing while it is not connected (rk_pub_send
 * fails with EAGAIN). What reaches the broker is then always a prefix of
 * what was sent; after silence the caller makes a new publisher and sends
 * again from its oldest unanswered event. ZeroMQ's own reconnect would
 * instead carry queued publishes to a restarted broker while the ones lost
 * with the old connection are missing, and the broker would store them out
 * of order. */
int rk_pub_new_single(const char *endpoint, struct rk_pub **out);

/* Closes the connection; publishes not yet acknowledged are abandoned.
 * Sets *pp to NULL. */
void rk_pub_destroy(struct rk_pub **pp);

/* Queues one event (MessagePack bytes, copied) and stores its correlation
 * number in *corr. Returns 0, or -1 with errno (EAGAIN when the local
 * queue is full: receive some results first). */
int rk_pub_send(struct rk_pub *p, const void *event, size_t len, uint64_t *corr);

/* As rk_pub_send, for an idempotent producer: `producer` (1..64 characters
 * of A-Z a-z 0-9 . _ : -, stable across restarts) numbers its events with
 * `number` >= 1, increasing. Sending the same (producer, number) again, on
 * any connection, even after a broker restart, is answered with the
 * original acknowledgement and stores nothing. Numbers may arrive out of
 * order (a retry after a reconnect): each is stored once.
 * EINVAL for an empty or over-long producer or number 0. */
int rk_pub_send_numbered(struct rk_pub *p, const char *producer, uint64_t number,
                         const void *event, size_t len, uint64_t *corr);

/* Waits up to `timeout_ms` (-1 = forever) for the next outcome. Returns 0
 * with *res filled, or -1 with errno ETIMEDOUT (nothing arrived) or
 * EPROTO (the broker sent something that is not a reply; it is skipped). */
int rk_pub_recv(struct rk_pub *p, int timeout_ms, struct rk_pub_result *res);

/* Number of publishes sent whose outcome has not been received. */
size_t rk_pub_in_flight(const struct rk_pub *p);

/* Completion callbacks. rk_pub_send_cb queues a publish like rk_pub_send
 * and remembers `done`/`arg`; rk_pub_dispatch waits up to `timeout_ms` for
 * outcomes and calls, for each, the callback of its publish (from the
 * calling thread, inside rk_pub_dispatch; `res` is valid during the call).
 * It returns how many callbacks ran (>= 1), or -1 with errno ETIMEDOUT when
 * none came in time. A callback may send more publishes. Use either these
 * or rk_pub_send/rk_pub_recv on one publisher, not both: an outcome of a
 * publish without a callback is dropped by rk_pub_dispatch. Publishes still
 * waiting at rk_pub_destroy never get their callback. Bookkeeping is a
 * list scanned per outcome: cheap for the windows of a few hundred that
 * agents use. */
typedef void (*rk_pub_done_fn)(void *arg, const struct rk_pub_result *res);

int rk_pub_send_cb(struct rk_pub *p, const void *event, size_t len, rk_pub_done_fn done,
                   void *arg);
int rk_pub_dispatch(struct rk_pub *p, int timeout_ms);

/* Blocking helper: send one event and wait for its own outcome, up to
 * `timeout_ms`. Outcomes of other publishes that arrive meanwhile are
 * discarded, so do not mix this with rk_pub_send on one publisher. */
int rk_pub_publish(struct rk_pub *p, const void *event, size_t len, int timeout_ms,
                   struct rk_pub_result *res);

#endif
