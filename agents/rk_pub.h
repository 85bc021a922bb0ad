/*
 * rk_pub - publishing: renkei.h's rk_pub part (its documentation is
 * there), and what only code in this tree uses besides.
 */
#ifndef RK_PUB_H
#define RK_PUB_H

#include "renkei.h"

/* rk_pub_open(endpoint, NULL, out): plain, for the tests and benchmarks. */
int rk_pub_new(const char *endpoint, struct rk_pub **out);

/* As rk_pub_open, for a sender that keeps order across broken connections
 * itself (rk_forward): the publisher makes one connection and never
 * reconnects, and queues nothing while it is not connected (rk_pub_send
 * fails with EAGAIN). What reaches the broker is then always a prefix of
 * what was sent; after silence the caller makes a new publisher and sends
 * again from its oldest unanswered event. ZeroMQ's own reconnect would
 * instead carry queued publishes to a restarted broker while the ones lost
 * with the old connection are missing, and the broker would store them out
 * of order. */
int rk_pub_open_single(const char *endpoint, const struct rk_client_options *o,
                       struct rk_pub **out);

#endif
