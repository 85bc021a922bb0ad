/*
 * rk_sub - a subscriber that does not miss events.
 *
 * It subscribes to the broker's live feed with one subscription key naming
 * its whole filter (PROTOCOL.md 3.3). Each live message carries its log
 * sequence number and `prev`, the sequence of the previous event matching
 * the same filter; ticks carry the log's head. So the subscriber knows, for
 * its own filter, whether anything was skipped (the broker skips a
 * subscriber whose queue is full, or it was restarted): when it was, it
 * reads the missing stretch from the replay socket, filtered by the broker,
 * and then resumes the live feed. Events are delivered in sequence order and
 * each exactly once.
 *
 * Filters are prefixes of the topic "<type>/<prefecture>/<municipality>"
 * (see rk_event_topic): "aid." is every disaster-support event,
 * "kpi.update/27/" every KPI update in Osaka prefecture. No filter means
 * everything.
 *
 * Not thread-safe: use one rk_sub per thread.
 */
#ifndef RK_SUB_H
#define RK_SUB_H

#include <stddef.h>
#include <stdint.h>

#include "rk_reader.h"

struct rk_sub;

struct rk_delivery {
    uint64_t seq;
    int64_t recv_ns;
    const char *topic;       /* NUL-terminated */
    const void *event;       /* MessagePack bytes */
    size_t event_len;
    int from_replay;         /* 1 when it came through gap filling */
    int from_snapshot;       /* 1 when it is part of the starting snapshot:
                              * in entity order, not sequence order */
};

/* Creates a subscriber on the feed and replay endpoints. Returns 0 or -1
 * with errno. rk_sub_new_in does the same on a ZeroMQ context the caller
 * owns (terminate it after destroying the subscriber): a program holding
 * hundreds of subscribers then has one I/O thread, not hundreds. */
int rk_sub_new(const char *feed_endpoint, const char *replay_endpoint, struct rk_sub **out);
int rk_sub_new_in(void *zctx, const char *feed_endpoint, const char *replay_endpoint,
                  struct rk_sub **out);
void rk_sub_destroy(struct rk_sub **sp);

/* Adds a topic-prefix filter. Call before starting. At most
 * RK_WIRE_TOPICS_MAX (16); a prefix is printable ASCII without '|', at
 * most RK_WIRE_TOPIC_MAX - 1 bytes. Returns 0, or -1 with errno ENOSPC or
 * EINVAL. */
int rk_sub_filter(struct rk_sub *s, const char *prefix);

/* Sends the subscription now (the start functions do it otherwise). A
 * program starting many subscribers subscribes them all first, so their
 * waits for the broker's first tick overlap. */
void rk_sub_subscribe(struct rk_sub *s);

/* Starts delivery at sequence `from` (>= 1: the log is read from there,
 * then the feed follows on), or when `from` is 0 with the first event
 * stored after the broker has taken the subscription. Waits up to
 * `timeout_ms` for the broker (with `from` 0, for its first tick); returns
 * 0 or -1 with errno (ETIMEDOUT: the broker did not answer). */
int rk_sub_start(struct rk_sub *s, uint64_t from, int timeout_ms);

/* Starts with a snapshot: first the latest event of every entity (KPI of a
 * municipality and year, aid request) the filter selects, as of one
 * sequence S, with from_snapshot set; then every event after S, in order,
 * as with rk_sub_start(s, S + 1). Publishing may go on meanwhile: nothing
 * is missed at the handover and nothing is delivered twice. */
int rk_sub_start_snapshot(struct rk_sub *s, int timeout_ms);

/* Next matching event, waiting up to `timeout_ms` (-1 = forever). Returns 0
 * with *d filled (valid until the next call), or -1 with errno ETIMEDOUT
 * when nothing matched in time, or another errno on failure (EPROTO: the
 * broker refused a replay; the text is in rk_sub_error). */
int rk_sub_next(struct rk_sub *s, int timeout_ms, struct rk_delivery *d);

/* The feed socket, for zmq_poll over many subscribers: call rk_sub_next
 * (with timeout 0) when it is readable. Owned by the subscriber. */
void *rk_sub_socket(const struct rk_sub *s);

/* Sequence number the subscriber will deliver or pass over next: every
 * matching event below it has been delivered. It advances on ticks too,
 * so a durable cursor of a rare filter does not fall behind. */
uint64_t rk_sub_position(const struct rk_sub *s);

/* How many gaps were filled from replay (the start's catch-up not
 * counted), and how many events all replay reads delivered. */
uint64_t rk_sub_gaps_filled(const struct rk_sub *s);
uint64_t rk_sub_events_filled(const struct rk_sub *s);

/* The sequence the starting snapshot is consistent with, once it has been
 * delivered whole (0 before, or without a snapshot). */
uint64_t rk_sub_snapshot_seq(const struct rk_sub *s);

/* Milliseconds since the feed last said anything (an event or a tick,
 * which the broker sends every 200 ms). */
int64_t rk_sub_silent_ms(const struct rk_sub *s);

/* Text of the last failure, or "". */
const char *rk_sub_error(const struct rk_sub *s);

#endif
