/*
 * rk_groups - the live feed's subscriptions, one group per distinct filter.
 *
 * Subscribers subscribe to a key naming their whole filter (rk_wire_subkey,
 * PROTOCOL.md 3.3). The broker keeps one group per key that has at least
 * one subscriber and sends each event once per group it matches, on the
 * group's key, with `prev`: the sequence of the group's previous event, or
 * the log's head when the group was made. Because `prev` is exact for the
 * group's filter, a subscriber can tell "nothing of mine in between" from
 * "something of mine was dropped" without asking the log.
 *
 * Subscribers with the same filter share a group, so the work per event is
 * per distinct filter, not per subscriber; ZeroMQ's XPUB does the rest.
 *
 * Single-threaded: the broker's ingest thread owns it.
 */
#ifndef RK_GROUPS_H
#define RK_GROUPS_H

#include <stddef.h>
#include <stdint.h>

#define RK_GROUPS_MAX 65536 /* distinct filters at once; more are refused */

struct rk_groups;

/* Returns a new empty registry (aborts when out of memory). */
struct rk_groups *rk_groups_new(void);
void rk_groups_destroy(struct rk_groups **gp);

enum rk_groups_notice_rc {
    RK_GROUPS_ADDED,      /* a new group; its prev starts at `head` */
    RK_GROUPS_REMOVED,    /* its last subscriber left */
    RK_GROUPS_UNCHANGED,  /* one more or one fewer subscriber, or a key we do not have */
    RK_GROUPS_BAD_KEY,    /* not a subscription key: nothing will match it */
    RK_GROUPS_FULL,       /* RK_GROUPS_MAX reached */
};

/* Takes one message read from the XPUB socket: byte 1 (subscribe) or 0
 * (unsubscribe), then the key. `head` is the log's last sequence now. A
 * group counts its subscribe notices less its unsubscribe ones and goes
 * when that reaches 0: libzmq's XPUB_MANUAL passes each notice, and one
 * unsubscribe per key a connection held when it ends. (A connection that
 * unsubscribes a key it never subscribed can end the group early; a libzmq
 * SUB never does.) */
enum rk_groups_notice_rc rk_groups_notice(struct rk_groups *g, const void *msg, size_t len,
                                          uint64_t head);

/* Called once per group; `key` is not NUL-terminated. */
typedef void rk_groups_fn(void *arg, const char *key, size_t key_len, uint64_t prev);

/* Calls `fn` once for each group whose filter selects an event with `topic`
 * or with `requester_topic` (an aid event's second topic, PROTOCOL.md 3.3;
 * NULL or "" for none) and sequence `seq` (greater than any seq given
 * before), passing the group's prev, then makes `seq` the group's prev. */
void rk_groups_match(struct rk_groups *g, const char *topic, const char *requester_topic,
                     uint64_t seq, rk_groups_fn *fn, void *arg);

/* Calls `fn` for every group with its prev (for the feed's ticks). */
void rk_groups_each(struct rk_groups *g, rk_groups_fn *fn, void *arg);

size_t rk_groups_count(const struct rk_groups *g);

#endif
