/*
 * rk_sub - a subscriber that does not miss events.
 *
 * It joins the broker's live feed with topic-prefix filters and also holds
 * a replay reader. Every live event carries its log sequence number, so
 * the subscriber knows the next number it should see. When a live event
 * skips ahead (it joined late, or the broker dropped messages it could not
 * deliver in time), or when the feed has been quiet for a while, it reads
 * the missing stretch from the replay socket, filters it the same way, and
 * only then resumes the live feed. Events are delivered in sequence order
 * and each exactly once.
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
};

/* Creates a subscriber on the feed and replay endpoints. Returns 0 or -1
 * with errno. */
int rk_sub_new(const char *feed_endpoint, const char *replay_endpoint, struct rk_sub **out);
void rk_sub_destroy(struct rk_sub **sp);

/* Adds a topic-prefix filter. Call before rk_sub_start. At most 64. */
int rk_sub_filter(struct rk_sub *s, const char *prefix);

/* Starts delivery at sequence `from` (>= 1), or when `from` is 0 with the
 * first event stored after this call. Needs the broker to answer within
 * `timeout_ms`; returns 0 or -1 with errno. */
int rk_sub_start(struct rk_sub *s, uint64_t from, int timeout_ms);

/* Next matching event, waiting up to `timeout_ms` (-1 = forever). Returns 0
 * with *d filled (valid until the next call), or -1 with errno ETIMEDOUT
 * when nothing matched in time, or another errno on failure. */
int rk_sub_next(struct rk_sub *s, int timeout_ms, struct rk_delivery *d);

/* Sequence number the subscriber will deliver or pass over next. */
uint64_t rk_sub_position(const struct rk_sub *s);

/* How many times a gap was filled from replay, and how many events those
 * fills delivered. */
uint64_t rk_sub_gaps_filled(const struct rk_sub *s);
uint64_t rk_sub_events_filled(const struct rk_sub *s);

#endif
